"""
test_imap_scale.py - what lets one imapd hold thousands of sessions, as a
user sees it: the daemons take the hard open files limit, the sessions of
one user share one open store (one logging out leaves the others working,
and each sees the others' changes), and a store made by a first IMAP login
is one that queued can still deliver into (umask 007, as queued's), and
while all of a user's sessions IDLE imapd closes that user's index (and
opens it again for new mail, DONE or another login). The
figures are bench/imap_idle_mem.py's, not a test's.
"""
import imaplib
import socket
import os
import re
import resource

from harness import PASSWORDS
from mailtest import send_mail

ALICE = "alice@example.test"


def login(inst):
    c = imaplib.IMAP4("127.0.0.1", inst.ports["imap"], timeout=15)
    c.login(ALICE, PASSWORDS[ALICE])
    return c


def test_daemons_raise_open_files_soft_limit(make_instance):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(hard, 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        inst = make_instance()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    m = inst.wait_log(r"imapd\[(\d+)\]: starting .* open_files=(\d+)")
    assert int(m.group(2)) == hard
    with open(f"/proc/{m.group(1)}/limits") as f:
        row = next(line for line in f if line.startswith("Max open files"))
    assert row.split()[3] == str(hard), row


def test_sessions_of_one_user_share_the_store(inst):
    a, b, c = login(inst), login(inst), login(inst)
    send_mail(inst.ports["smtp"])
    inst.wait_for(lambda: len(inst.index_rows()) >= 1, what="the delivery")
    for s in (a, b, c):
        assert s.select("INBOX")[1] == [b"1"]
    a.store("1", "+FLAGS", "\\Flagged")
    a.logout()   # the first session to log in goes: the others keep the store
    typ, data = b.fetch("1", "(FLAGS)")
    assert typ == "OK" and b"\\Flagged" in data[0], data
    b.store("1", "+FLAGS", "\\Seen")
    b.logout()
    typ, data = c.fetch("1", "(FLAGS)")
    assert typ == "OK" and b"\\Seen" in data[0] and b"\\Flagged" in data[0], data
    c.logout()
    # All gone and back: the store is opened afresh and still right.
    d = login(inst)
    assert d.select("INBOX")[1] == [b"1"]
    d.logout()


def test_store_made_by_imap_login_takes_deliveries(inst):
    # The first thing to touch alice's store is an IMAP login (it creates the Maildir and the index).
    c = login(inst)
    assert c.select("INBOX")[1] == [b"0"]
    home = inst.maildir()
    for p in (home, home / "cur", home / "new", home / "tmp"):
        assert os.stat(p).st_mode & 0o070 == 0o070, f"{p} is not group-writable"
    assert os.stat(home / "index.sqlite").st_mode & 0o060 == 0o060
    code, _ = send_mail(inst.ports["smtp"])
    assert code == 250
    inst.wait_for(lambda: len(inst.index_rows()) >= 1, what="the delivery into the store imapd made")
    c.noop()
    assert c.select("INBOX")[1] == [b"1"]
    c.logout()
    assert not re.search(r"Permission denied", inst.log())


class Idler:
    """A raw IMAP session of alice that SELECTs INBOX and IDLEs."""

    def __init__(self, inst):
        self.s = socket.create_connection(("127.0.0.1", inst.ports["imap"]), timeout=10)
        self.buf = b""
        self.until(rb"^\* OK")
        self.s.sendall(f"a LOGIN {ALICE} {PASSWORDS[ALICE]}\r\nb SELECT INBOX\r\n".encode())
        self.until(rb"^b OK")

    def until(self, pattern):
        rx = re.compile(pattern, re.M)
        while not rx.search(self.buf):
            data = self.s.recv(65536)
            assert data, f"closed; got {self.buf!r}"
            self.buf += data
        out, self.buf = self.buf, b""
        return out

    def idle(self):
        self.s.sendall(b"i IDLE\r\n")
        self.until(rb"^\+ ")

    def done(self):
        self.s.sendall(b"DONE\r\n")
        self.until(rb"^i OK")

    def cmd(self, text):
        self.s.sendall(b"c " + text.encode() + b"\r\n")
        return self.until(rb"^c (OK|NO|BAD)")


def index_open(inst):
    """Does imapd (any of its processes) hold alice's index.sqlite open?"""
    links = []
    for pid in inst.proc_tree("imapd"):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                pass
    return any(p.startswith(str(inst.maildir())) and "index.sqlite" in p for p in links)


def test_idle_sessions_let_the_index_go_and_still_see_mail(inst):
    a, b = Idler(inst), Idler(inst)
    assert index_open(inst)
    a.idle()
    assert index_open(inst), "b still works: the index stays open"
    b.idle()
    inst.wait_for(lambda: not index_open(inst), what="the index closed while every session of alice idles")
    send_mail(inst.ports["smtp"])
    assert b"* 1 EXISTS" in a.until(rb"^\* 1 EXISTS")
    assert b"* 1 EXISTS" in b.until(rb"^\* 1 EXISTS")
    inst.wait_for(lambda: not index_open(inst), what="the index closed again after the sync")
    a.done()   # a works again; b still idles and still sees mail
    assert b"FLAGS" in a.cmd("FETCH 1 (FLAGS)")
    assert index_open(inst)
    send_mail(inst.ports["smtp"])
    assert b"* 2 EXISTS" in b.until(rb"^\* 2 EXISTS")
    assert b"* 2 EXISTS" in a.cmd("NOOP")
    b.done()
    assert b"* 2 EXISTS" in b.cmd("SELECT INBOX")
    # A third session logs in while the other two idle: it gets a working store.
    a.idle()
    b.idle()
    inst.wait_for(lambda: not index_open(inst), what="the index closed")
    c = Idler(inst)
    assert b"MESSAGES 2" in c.cmd("STATUS INBOX (MESSAGES)")
    a.done()
    b.done()
