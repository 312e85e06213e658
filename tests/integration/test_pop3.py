"""
test_pop3.py - pop3d against real clients: Python's poplib, curl (pop3://,
pop3s://, STLS), fetchmail, and a raw socket for what clients never send.

Messages are delivered over SMTP first (smtplib to the MX port), so what a
POP3 client downloads is compared with what was sent: byte-exact apart
from line ends (the stored copy starts with the Received: header Postern
adds, so the sent message is the tail of what RETR returns, and the whole
answer equals the Maildir file with CRLF line ends). Deletions are checked
in the Maildir and in the index (index.sqlite's messages and expunged).
"""
import base64
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time

import poplib
import pytest

from harness import PASSWORDS, needs_root, wait_for
from mailtest import client_tls_context, make_message, send_mail

ALICE = "alice@example.test"
ALICE_PW = PASSWORDS[ALICE]
BOB = "bob@example.test"


def crlf(b):
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def deliver(inst, n, user="alice", bodies=None):
    """Send n messages to user over SMTP and wait until they are in the Maildir; returns the sent bytes."""
    sent = []
    for i in range(n):
        body = bodies[i] if bodies else f"Message number {i}.\n.leading dot line\n..two dots\nend\n"
        msg = make_message(to=f"{user}@example.test", subject=f"pop3 test {i}", body=body)
        # CRLF already: smtplib would add a CRLF to data that ends in a bare LF.
        data = crlf(msg.as_bytes())
        code, _ = send_mail(inst.ports["smtp"], rcpts=(f"{user}@example.test",), msg=data)
        assert code == 250
        sent.append(data)
    inst.wait_new(n, user=user)
    wait_for(lambda: len(inst.index_rows(user)) >= n, what="index rows")
    return sent


def login(inst, tls=False, user=ALICE, pw=ALICE_PW):
    if tls:
        p = poplib.POP3_SSL("127.0.0.1", inst.ports["pop3s"], timeout=15, context=client_tls_context())
    else:
        p = poplib.POP3("127.0.0.1", inst.ports["pop3"], timeout=15)
    p.user(user)
    p.pass_(pw)
    return p


def retr_bytes(p, i):
    """RETR i as the bytes on the wire before dot-stuffing (CRLF line ends)."""
    _, lines, octets = p.retr(i)
    return b"".join(ln + b"\r\n" for ln in lines)


def stored_files(inst, user="alice"):
    d = inst.maildir(user)
    out = []
    for sub in ("new", "cur"):
        try:
            out += [p for p in (d / sub).iterdir() if p.is_file()]
        except FileNotFoundError:
            pass
    return out


def expunged_uids(inst, user="alice"):
    src = inst.maildir(user) / "index.sqlite"
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in ("", "-wal"):
            try:
                shutil.copyfile(str(src) + suffix, os.path.join(tmp, "index.sqlite" + suffix))
            except FileNotFoundError:
                pass
        db = sqlite3.connect(os.path.join(tmp, "index.sqlite"))
        try:
            return sorted(r[0] for r in db.execute("SELECT uid FROM expunged"))
        finally:
            db.close()


class RawPOP:
    """A POP3 client that writes exactly the bytes it is given."""

    def __init__(self, port, tls=False, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            self.sock = client_tls_context().wrap_socket(self.sock)
        self.buf = b""
        self.timeout = timeout

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def line(self):
        while b"\n" not in self.buf:
            self.sock.settimeout(self.timeout)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("closed by the server")
            self.buf += chunk
        ln, _, self.buf = self.buf.partition(b"\n")
        return ln.rstrip(b"\r").decode(errors="replace")

    def multi(self):
        """The lines of a multi-line answer after its +OK line, unstuffed."""
        out = []
        while True:
            ln = self.line()
            if ln == ".":
                return out
            out.append(ln[1:] if ln.startswith("..") else ln)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.line()

    def starttls(self):
        self.sock = client_tls_context().wrap_socket(self.sock)
        self.buf = b""

    def closed(self, wait=5.0):
        self.sock.settimeout(wait)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except (socket.timeout, TimeoutError):
            return False


def raw_login(inst, tls=False):
    c = RawPOP(inst.ports["pop3s" if tls else "pop3"], tls=tls)
    assert c.line().startswith("+OK")
    assert c.cmd(f"USER {ALICE}").startswith("+OK")
    assert c.cmd(f"PASS {ALICE_PW}").startswith("+OK")
    return c


# ---- login, listing and retrieval ----

def test_user_pass_stat_list_retr_byte_exact(inst):
    sent = deliver(inst, 3)
    p = login(inst)
    try:
        count, size = p.stat()
        assert count == 3
        _, listing, _ = p.list()
        sizes = [int(ln.split()[1]) for ln in listing]
        assert size == sum(sizes)
        # in message-number (UID) order: file names do not sort by arrival (microseconds unpadded)
        uid_of = {r["file"]: r["uid"] for r in inst.index_rows()}
        files = sorted(stored_files(inst), key=lambda f: uid_of[f"{f.parent.name}/{f.name}"])
        for i in range(3):
            got = retr_bytes(p, i + 1)
            # LIST says what RETR sends (CRLF, unstuffed), and the message is what was sent.
            assert len(got) == sizes[i]
            assert got.endswith(crlf(sent[i]))
            assert got.startswith(b"Return-Path: ")
            assert got == crlf(files[i].read_bytes())
            assert b"\r\n.leading dot line\r\n" in got and b"\r\n..two dots\r\n" in got
    finally:
        p.quit()


def test_large_message_streams_byte_exact(inst):
    # 3 MB with long lines and dots at line starts: well past any buffer, streamed in pieces.
    body = "".join(f".{i:07d} " + "x" * 90 + "\n" for i in range(30000))
    sent = deliver(inst, 1, bodies=[body])
    p = login(inst)
    try:
        _, listing, _ = p.list()
        got = retr_bytes(p, 1)
        assert len(got) == int(listing[0].split()[1])
        assert got.endswith(crlf(sent[0]))
    finally:
        p.quit()


def test_auth_plain_and_login(inst):
    deliver(inst, 1)
    token = base64.b64encode(f"\0{ALICE}\0{ALICE_PW}".encode()).decode()
    with RawPOP(inst.ports["pop3"]) as c:
        c.line()
        assert c.cmd(f"AUTH PLAIN {token}").startswith("+OK")
        assert c.cmd("STAT").startswith("+OK 1 ")
        assert c.cmd("QUIT").startswith("+OK")
    with RawPOP(inst.ports["pop3"]) as c:
        c.line()
        assert c.cmd("AUTH PLAIN") == "+ "
        assert c.cmd(token).startswith("+OK")
        assert c.cmd("QUIT").startswith("+OK")
    with RawPOP(inst.ports["pop3"]) as c:
        c.line()
        assert c.cmd("AUTH LOGIN") == "+ VXNlcm5hbWU6"
        assert c.cmd(base64.b64encode(ALICE.encode()).decode()) == "+ UGFzc3dvcmQ6"
        assert c.cmd(base64.b64encode(ALICE_PW.encode()).decode()).startswith("+OK")
        assert c.cmd("QUIT").startswith("+OK")


def test_wrong_password_is_refused_and_logged(inst):
    with RawPOP(inst.ports["pop3"]) as c:
        c.line()
        assert c.cmd(f"USER {ALICE}").startswith("+OK")
        assert c.cmd("PASS wrong").startswith("-ERR [AUTH]")
        bad = base64.b64encode(f"\0{ALICE}\0nope".encode()).decode()
        assert c.cmd(f"AUTH PLAIN {bad}").startswith("-ERR [AUTH]")
        # Still in AUTHORIZATION: the right password works afterwards.
        assert c.cmd(f"USER {ALICE}").startswith("+OK")
        assert c.cmd(f"PASS {ALICE_PW}").startswith("+OK")
    inst.wait_log(r"auth failed user=alice@example\.test ip=127\.0\.0\.1 reason=credentials")


def test_capa(inst):
    with RawPOP(inst.ports["pop3"]) as c:
        c.line()
        assert c.cmd("CAPA").startswith("+OK")
        caps = c.multi()
        for cap in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "USER", "SASL PLAIN LOGIN",
                    "STLS", "EXPIRE NEVER", "IMPLEMENTATION Postern"):
            assert cap in caps, caps
        assert c.cmd(f"USER {ALICE}").startswith("+OK")
        assert c.cmd(f"PASS {ALICE_PW}").startswith("+OK")
        assert c.cmd("CAPA").startswith("+OK")
        caps = c.multi()
        assert "STLS" not in caps and "USER" not in caps and "UIDL" in caps


# ---- TLS ----

def test_stls_then_login(inst):
    sent = deliver(inst, 1)
    p = poplib.POP3("127.0.0.1", inst.ports["pop3"], timeout=15)
    p.stls(context=client_tls_context())
    p.user(ALICE)
    p.pass_(ALICE_PW)
    assert retr_bytes(p, 1).endswith(crlf(sent[0]))
    p.quit()
    inst.wait_log(r"P[0-9A-F]{8}: tls TLSv1\.[23]")


def test_implicit_tls(inst):
    sent = deliver(inst, 1)
    p = login(inst, tls=True)
    assert retr_bytes(p, 1).endswith(crlf(sent[0]))
    assert "STLS" not in [c.decode() if isinstance(c, bytes) else c for c in p.capa()]
    p.quit()


def test_stls_discards_pipelined_commands(inst):
    with RawPOP(inst.ports["pop3"]) as c:
        c.line()
        # An attacker's USER rides behind STLS in the same packet: it must not count after the handshake.
        c.send(f"STLS\r\nUSER {ALICE}\r\n")
        assert c.line().startswith("+OK")
        c.starttls()
        assert c.cmd(f"PASS {ALICE_PW}").startswith("-ERR")   # no USER was given in the TLS session
        assert c.cmd("STLS").startswith("-ERR")
        assert c.cmd(f"USER {ALICE}").startswith("+OK")
        assert c.cmd(f"PASS {ALICE_PW}").startswith("+OK")


@pytest.mark.postern_config({"pop3d": {"allow_plaintext_auth": "no"}})
def test_plaintext_login_refused_before_tls(inst):
    with RawPOP(inst.ports["pop3"]) as c:
        c.line()
        assert c.cmd("CAPA").startswith("+OK")
        caps = c.multi()
        assert "STLS" in caps and "USER" not in caps and not any(x.startswith("SASL") for x in caps)
        assert c.cmd(f"USER {ALICE}").startswith("-ERR")
        token = base64.b64encode(f"\0{ALICE}\0{ALICE_PW}".encode()).decode()
        assert c.cmd(f"AUTH PLAIN {token}").startswith("-ERR")
        assert c.cmd("STLS").startswith("+OK")
        c.starttls()
        assert c.cmd(f"USER {ALICE}").startswith("+OK")
        assert c.cmd(f"PASS {ALICE_PW}").startswith("+OK")


# ---- TOP, UIDL ----

def test_top(inst):
    body = "line1\nline2\n.line3\nline4\n"
    sent = deliver(inst, 1, bodies=[body])
    head = crlf(sent[0]).split(b"\r\n\r\n", 1)[0]
    with raw_login(inst) as c:
        assert c.cmd("TOP 1 0").startswith("+OK")
        lines = c.multi()
        assert lines[-1] == ""                       # the blank line ending the header
        assert "\r\n".join(lines[:-1]).encode().endswith(head)
        assert c.cmd("TOP 1 3").startswith("+OK")
        lines = c.multi()
        assert lines[-4:] == ["", "line1", "line2", ".line3"]
        assert c.cmd("TOP 1 100").startswith("+OK")
        assert c.multi()[-4:] == ["line1", "line2", ".line3", "line4"]


def test_uidl_stable_and_tied_to_imap_uid(inst):
    deliver(inst, 3)
    p = login(inst)
    _, first, _ = p.uidl()
    p.quit()
    rows = inst.index_rows()
    ids = [ln.split()[1].decode() for ln in first]
    assert [i.split(".")[1] for i in ids] == [str(r["uid"]) for r in rows]
    assert len(set(ids)) == 3 and all(0x21 <= ord(ch) <= 0x7e for i in ids for ch in i)
    p = login(inst)
    _, again, _ = p.uidl()
    assert again == first
    assert p.uidl(2).split()[2].decode() == ids[1]
    p.quit()


# ---- deletion ----

def test_dele_quit_removes_from_maildir_and_index(inst):
    deliver(inst, 3)
    p = login(inst)
    _, before, _ = p.uidl()
    p.dele(2)
    assert p.stat()[0] == 2
    with pytest.raises(poplib.error_proto):
        p.retr(2)
    p.quit()
    rows = inst.index_rows()
    assert len(rows) == 2 and len(stored_files(inst)) == 2
    gone_uid = int(before[1].split()[1].decode().split(".")[1])
    assert gone_uid not in [r["uid"] for r in rows]
    assert expunged_uids(inst) == [gone_uid]
    p = login(inst)
    _, after, _ = p.uidl()
    p.quit()
    assert [ln.split()[1] for ln in after] == [before[0].split()[1], before[2].split()[1]]


def test_dele_then_dropped_connection_keeps(inst):
    deliver(inst, 2)
    c = raw_login(inst)
    assert c.cmd("DELE 1").startswith("+OK")
    assert c.cmd("DELE 2").startswith("+OK")
    c.close()   # no QUIT: no UPDATE state
    inst.wait_log(r"2 deletions not done \(no QUIT\)")
    assert len(inst.index_rows()) == 2 and len(stored_files(inst)) == 2
    p = login(inst)
    assert p.stat()[0] == 2
    p.quit()


def test_rset_undeletes(inst):
    deliver(inst, 2)
    with raw_login(inst) as c:
        assert c.cmd("DELE 1").startswith("+OK")
        assert c.cmd("DELE 1").startswith("-ERR")
        assert c.cmd("RSET").startswith("+OK 2 ")
        assert c.cmd("QUIT").startswith("+OK")
    assert len(stored_files(inst)) == 2


def test_concurrent_session_in_use(inst):
    deliver(inst, 1)
    first = raw_login(inst)
    with RawPOP(inst.ports["pop3"]) as c:
        c.line()
        c.cmd(f"USER {ALICE}")
        assert c.cmd(f"PASS {ALICE_PW}").startswith("-ERR [IN-USE]")
    assert first.cmd("QUIT").startswith("+OK")
    first.close()
    p = login(inst)
    p.quit()


# ---- bad input ----

@pytest.mark.postern_config({"pop3d": {"max_bad_commands": "50"}})
def test_bad_commands(inst):
    deliver(inst, 1)
    with RawPOP(inst.ports["pop3"]) as c:
        c.line()
        assert c.cmd("STAT").startswith("-ERR")              # before login
        assert c.cmd("XYZZY").startswith("-ERR")
        assert c.cmd("USER a\0b").startswith("-ERR")
        assert c.cmd("AUTH PLAIN !!notbase64!!").startswith("-ERR")
        assert c.cmd("AUTH PLAIN " + base64.b64encode(b"no-nuls").decode()).startswith("-ERR")
        assert c.cmd("AUTH CRAM-MD5").startswith("-ERR")
        c.send("USER " + "x" * 5000 + "\r\n")
        assert c.line().startswith("-ERR")
        assert c.cmd(f"USER {ALICE}").startswith("+OK")     # the session goes on
        assert c.cmd(f"PASS {ALICE_PW}").startswith("+OK")
        assert c.cmd("RETR 0").startswith("-ERR")
        assert c.cmd("RETR 99999999999").startswith("-ERR")
        assert c.cmd("RETR 2").startswith("-ERR")
        assert c.cmd("TOP 1 -1").startswith("-ERR")
        assert c.cmd("LIST 1 2").startswith("-ERR")
        assert c.cmd("USER bob").startswith("-ERR")          # after login
        assert c.cmd("STAT").startswith("+OK 1 ")
        assert c.cmd("QUIT").startswith("+OK")
    assert len(stored_files(inst)) == 1


def test_too_many_bad_commands_closes(inst):
    with RawPOP(inst.ports["pop3"]) as c:
        c.line()
        for _ in range(9):
            assert c.cmd("BOGUS").startswith("-ERR")
        c.send("BOGUS\r\n")
        assert c.line().startswith("-ERR")
        assert "Too many bad commands" in c.line()
        assert c.closed()


def test_pipelined_commands(inst):
    deliver(inst, 2)
    with RawPOP(inst.ports["pop3"]) as c:
        c.line()
        c.send(f"CAPA\r\nUSER {ALICE}\r\nPASS {ALICE_PW}\r\nSTAT\r\nLIST\r\nUIDL 1\r\nRETR 1\r\nNOOP\r\nQUIT\r\n")
        assert c.line().startswith("+OK")
        assert "PIPELINING" in c.multi()
        assert c.line().startswith("+OK")
        assert c.line().startswith("+OK")
        assert c.line().startswith("+OK 2 ")
        assert c.line().startswith("+OK")
        assert len(c.multi()) == 2
        assert c.line().startswith("+OK 1 ")
        assert c.line().startswith("+OK")
        assert c.multi()[0].startswith("Return-Path: ")
        assert c.line() == "+OK"
        assert c.line().startswith("+OK")
        assert c.closed()


@pytest.mark.postern_config({"pop3d": {"timeout": "2s"}})
def test_idle_timeout(inst):
    with RawPOP(inst.ports["pop3"]) as c:
        c.line()
        time.sleep(3)
        assert "timeout" in c.line().lower()
        assert c.closed()


@pytest.mark.postern_config({"pop3d": {"max_connections": "2"}})
def test_max_connections(inst):
    a = RawPOP(inst.ports["pop3"])
    b = RawPOP(inst.ports["pop3"])
    assert a.line().startswith("+OK") and b.line().startswith("+OK")
    with RawPOP(inst.ports["pop3"]) as c:
        assert c.line().startswith("-ERR [SYS/TEMP]")
        assert c.closed()
    a.close()
    b.close()


def test_status_counts_connections(inst):
    with RawPOP(inst.ports["pop3"]) as c:
        c.line()
        st = inst.json("status")
        pop = [d for d in st["daemons"] if d["name"] == "pop3d"][0] if isinstance(st, dict) else \
            [d for d in st if d["name"] == "pop3d"][0]
        assert pop["connections"] >= 1


# ---- curl and fetchmail ----

def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "20", *args], capture_output=True, timeout=30)


def test_curl_pop3_and_pop3s(inst):
    sent = deliver(inst, 2)
    user = f"{ALICE}:{ALICE_PW}"
    r = curl("-u", user, f"pop3://127.0.0.1:{inst.ports['pop3']}/2")
    assert r.returncode == 0, r.stderr
    assert crlf(r.stdout).endswith(crlf(sent[1]))
    r = curl("-k", "-u", user, f"pop3s://127.0.0.1:{inst.ports['pop3s']}/1")
    assert r.returncode == 0, r.stderr
    assert crlf(r.stdout).endswith(crlf(sent[0]))
    r = curl("-k", "--ssl-reqd", "-u", user, f"pop3://127.0.0.1:{inst.ports['pop3']}/1")   # STLS
    assert r.returncode == 0, r.stderr
    assert crlf(r.stdout).endswith(crlf(sent[0]))
    r = curl("-u", user, f"pop3://127.0.0.1:{inst.ports['pop3']}/")                         # LIST
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2
    r = curl("-u", user, "--login-options", "AUTH=PLAIN", f"pop3://127.0.0.1:{inst.ports['pop3']}/1")
    assert r.returncode == 0 and crlf(r.stdout).endswith(crlf(sent[0]))


@pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail not installed (scripts/install-deps.sh)")
def test_fetchmail(inst, tmp_path):
    sent = deliver(inst, 3)
    out = tmp_path / "mbox"
    rc = tmp_path / "fetchmailrc"
    rc.write_text(f'poll 127.0.0.1 protocol pop3 port {inst.ports["pop3s"]}\n'
                  f'  user "{ALICE}" password "{ALICE_PW}" ssl no sslcertck\n'
                  f'  mda "cat >> {out}; echo >> {out}"\n')
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))
    r = subprocess.run(["fetchmail", "-f", str(rc), "--nodetach", "--nosyslog", "-v"], env=env,
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    got = out.read_bytes().replace(b"\r\n", b"\n")
    for m in sent:
        assert m.replace(b"\r\n", b"\n") in got
    # fetchmail deletes what it fetched (no "keep"): through QUIT, from Maildir and index.
    wait_for(lambda: not stored_files(inst), what="Maildir emptied by fetchmail")
    assert inst.index_rows() == []


# ---- failed logins are slowed and blocked by resolverd; privileges ----

@pytest.mark.postern_config({"resolverd": {"auth_delay_after": "100", "auth_block_after": "3"}})
def test_failed_logins_blocked_per_account(inst):
    with RawPOP(inst.ports["pop3"]) as c:
        c.line()
        for _ in range(3):
            c.cmd(f"USER {ALICE}")
            assert c.cmd("PASS wrong").startswith("-ERR [AUTH]")
        c.cmd(f"USER {ALICE}")
        c.timeout = 40   # a blocked answer is held back (resolverd's delay) before it comes
        # Now even the right password is turned away for a while, without saying whether it was right.
        assert c.cmd(f"PASS {ALICE_PW}").startswith("-ERR [SYS/TEMP]")
    inst.wait_log(r"auth failed user=alice@example\.test ip=127\.0\.0\.1 reason=blocked")


@needs_root
def test_pop3d_runs_as_mail_user(inst):
    import pwd
    deliver(inst, 1)
    p = login(inst)
    p.quit()
    pid = inst.pids()["pop3d"]
    with open(f"/proc/{pid}/status") as f:
        uids = [ln.split()[1:] for ln in f if ln.startswith("Uid:")][0]
    mail = pwd.getpwnam("postern-mail").pw_uid
    assert all(int(u) == mail for u in uids), uids
    # The maildrop lock was made by pop3d, as the mail store's owner.
    assert (inst.maildir() / "pop3.lock").stat().st_uid == mail


# ---- POP3 and IMAP on the same mailbox ----

def test_imap_expunge_waits_for_pop3_session_and_sees_pop3_deletions(inst):
    import imaplib
    deliver(inst, 3)
    pop = raw_login(inst)
    im = imaplib.IMAP4("127.0.0.1", inst.ports["imap"], timeout=15)
    im.login(ALICE, ALICE_PW)
    im.select("INBOX")
    im.store("1", "+FLAGS", "\\Deleted")
    # A POP3 session holds the maildrop: message numbers must not change under it.
    typ, data = im.expunge()
    assert typ == "NO" and b"[INUSE]" in data[0], (typ, data)
    assert len(stored_files(inst)) == 3
    assert pop.cmd("STAT").startswith("+OK 3 ")
    assert pop.cmd("DELE 3").startswith("+OK")
    assert pop.cmd("QUIT").startswith("+OK Bye, 1 messages deleted")
    pop.close()
    # POP3's deletion is an expunge IMAP sees; IMAP's own expunge goes through now.
    im.noop()
    typ, data = im.expunge()
    assert typ == "OK"
    typ, data = im.select("INBOX")
    assert int(data[0]) == 1
    im.logout()
    assert len(stored_files(inst)) == 1 and len(inst.index_rows()) == 1


def test_long_user_name(inst):
    # Longer than RFC 2449's 40-octet argument: user names are addresses and may be.
    addr = "a.rather.long.mailbox.name.for.pop3@example.test"
    inst.add_user(addr, "long-user-pass-1")
    p = login(inst, user=addr, pw="long-user-pass-1")
    assert p.stat()[0] == 0
    p.quit()
