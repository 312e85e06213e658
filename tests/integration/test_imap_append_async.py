"""
test_imap_append_async.py - APPEND's file step (fsync, rename, directory
fsync) runs in imapd's thread pool while the session waits: many clients
appending at once, into one mailbox and into several users' stores, each
get a distinct UID, the UIDs of a mailbox are contiguous, and every
message comes back byte for byte; a client that drops right after its
literal leaves either a whole message (file and row) or nothing, never a
file without its row, a row without its file, or a tmp/ leftover.

Driven with imaplib from threads, and with raw sockets for the drops.
"""
import imaplib
import re
import socket
import struct
import threading

from harness import PASSWORDS

ALICE = "alice@example.test"
BOB = "bob@example.test"
CAROL = "carol@example.test"
CAROL_PW = "carol-pass-9012"


def login(inst, user, pw=None):
    c = imaplib.IMAP4("127.0.0.1", inst.ports["imap"], timeout=60)
    c.login(user, pw or PASSWORDS[user])
    return c


def message(user, client, i):
    # CRLF lines, different sizes: what FETCH BODY[] must give back unchanged.
    body = b"".join(b"line %d of message %d from client %d\r\n" % (k, i, client) for k in range(1 + 7 * i + client))
    return (b"From: c%d@client.test\r\nTo: %s\r\nSubject: %s c%d m%d\r\n\r\n"
            % (client, user.encode(), user.encode(), client, i)) + body


def appender(inst, user, pw, client, n, out, errors):
    try:
        c = login(inst, user, pw)
        for i in range(n):
            msg = message(user, client, i)
            typ, data = c.append("INBOX", None, None, msg)
            m = re.search(rb"APPENDUID (\d+) (\d+)", data[0] or b"")
            if typ != "OK" or not m:
                errors.append((user, client, i, typ, data))
                continue
            out.append((user, int(m.group(1)), int(m.group(2)), msg))
        c.logout()
    except Exception as e:   # reported by the main thread
        errors.append((user, client, repr(e)))


def maildir_files(inst, user, sub):
    d = inst.maildir(user.split("@")[0]) / sub
    try:
        return sorted(p.name for p in d.iterdir() if p.is_file())
    except FileNotFoundError:
        return []


def assert_consistent(inst, user):
    """Every row has its file, every file in new/ and cur/ has its row, tmp/ is empty."""
    rows = [r for r in inst.index_rows(user.split("@")[0]) if r["mailbox"] == "INBOX"]
    assert (inst.maildir(user.split("@")[0]) / "index.sqlite").exists()
    files = {"new/" + f for f in maildir_files(inst, user, "new")} | {"cur/" + f for f in maildir_files(inst, user, "cur")}
    indexed = {r["file"] for r in rows}
    assert indexed == files, f"{user}: rows {sorted(indexed)} against files {sorted(files)}"
    assert maildir_files(inst, user, "tmp") == [], f"{user}: tmp/ leftovers"
    return rows


def test_concurrent_appends_distinct_contiguous_uids(inst):
    inst.add_user(CAROL, CAROL_PW)
    users = [(ALICE, None), (BOB, None), (CAROL, CAROL_PW)]
    # 10 clients into alice's INBOX at once, 3 more each into bob's and carol's.
    plan = [(ALICE, None, k, 6) for k in range(10)] + [(u, pw, k, 6) for u, pw in users[1:] for k in range(3)]
    out, errors = [], []
    threads = [threading.Thread(target=appender, args=(inst, u, pw, k, n, out, errors)) for u, pw, k, n in plan]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not [t for t in threads if t.is_alive()], "an APPEND client hung"
    assert errors == []
    for user, pw in users:
        mine = [o for o in out if o[0] == user]
        want = sum(n for u, _, _, n in plan if u == user)
        assert len(mine) == want
        uids = sorted(o[2] for o in mine)
        assert len(set(uids)) == len(uids), f"{user}: a UID given twice: {uids}"
        assert uids == list(range(uids[0], uids[0] + len(uids))), f"{user}: UIDs not contiguous: {uids}"
        assert len({o[1] for o in mine}) == 1   # one UIDVALIDITY
        rows = assert_consistent(inst, user)
        assert sorted(r["uid"] for r in rows) == uids
        # Every message back, byte for byte.
        c = login(inst, user, pw)
        c.select("INBOX", readonly=True)
        for _, _, uid, msg in mine:
            typ, data = c.uid("FETCH", str(uid), "(BODY.PEEK[])")
            assert typ == "OK"
            assert data[0][1] == msg, f"{user} uid {uid} came back changed"
        c.logout()


def raw_login(inst, user):
    s = socket.create_connection(("127.0.0.1", inst.ports["imap"]), timeout=30)
    f = s.makefile("rb")
    assert f.readline().startswith(b"* OK")
    s.sendall(b"L LOGIN %s %s\r\n" % (user.encode(), PASSWORDS[user].encode()))
    while True:
        ln = f.readline()
        if ln.startswith(b"L "):
            assert ln.startswith(b"L OK"), ln
            return s, f


def test_drop_right_after_literal_leaves_whole_or_nothing(inst):
    msg = b"Subject: dropped\r\n\r\n" + b"x" * 200 + b"\r\n"
    for k in range(8):
        s, f = raw_login(inst, ALICE)
        # LITERAL+: the whole command in one write, then gone at once (every other time with a reset).
        s.sendall(b"a APPEND INBOX {%d+}\r\n%s\r\n" % (len(msg), msg))
        if k % 2:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        f.close()
        s.close()
    inst.wait_for(lambda: len(re.findall(r"imapd\[\d+\]: \S+: disconnect from", inst.log())) >= 8,
                  what="the 8 dropped sessions' disconnect lines")
    inst.wait_for(lambda: maildir_files(inst, ALICE, "tmp") == [], what="tmp/ empty after the drops")
    rows = assert_consistent(inst, ALICE)
    # What was indexed is whole; the daemon goes on, and the next APPEND gets the next UID.
    c = login(inst, ALICE)
    c.select("INBOX", readonly=True)
    for r in rows:
        typ, data = c.uid("FETCH", str(r["uid"]), "(BODY.PEEK[])")
        assert typ == "OK" and data[0][1] == msg
    typ, data = c.append("INBOX", None, None, b"Subject: after\r\n\r\nstill here\r\n")
    assert typ == "OK"
    uid = int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1))
    assert uid == (max(r["uid"] for r in rows) + 1 if rows else uid)
    c.logout()
    assert_consistent(inst, ALICE)


def test_shutdown_while_appending_loses_nothing_acknowledged(inst):
    """Stopped while 10 clients append: every OK'd UID is indexed with its file, nothing else is left."""
    acked, stop = [], threading.Event()

    def run(k):
        try:
            c = login(inst, ALICE)
            i = 0
            while not stop.is_set():
                typ, data = c.append("INBOX", None, None, message(ALICE, k, i % 5))
                if typ == "OK":
                    acked.append(int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1)))
                i += 1
        except (OSError, imaplib.IMAP4.error, EOFError):
            pass   # the server went away mid-command: that APPEND was not acknowledged

    threads = [threading.Thread(target=run, args=(k,)) for k in range(10)]
    for t in threads:
        t.start()
    inst.wait_for(lambda: len(acked) >= 30, timeout=60, what="30 APPENDs acknowledged")
    inst.stop()   # SIGINT while APPENDs are in flight: sessions close, their file steps complete
    stop.set()
    for t in threads:
        t.join(30)
    rows = assert_consistent(inst, ALICE)
    assert set(acked) <= {r["uid"] for r in rows}, "an acknowledged APPEND is missing"
    dropped = len(re.findall(r"the session ended before it was indexed", inst.log()))
    print(f"{len(acked)} acknowledged, {len(rows)} indexed, {dropped} removed after their session ended")
