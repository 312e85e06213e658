"""
test_imap_scale.py - what lets one imapd hold thousands of sessions, as a
user sees it: the daemons take the hard open files limit, the sessions of
one user share one open store (one logging out leaves the others working,
and each sees the others' changes), and a store made by a first IMAP login
is one that queued can still deliver into (umask 007, as queued's). The
figures are bench/imap_idle_mem.py's, not a test's.
"""
import imaplib
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
