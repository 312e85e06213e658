"""
test_imap_append_reconcile.py - APPEND's index row commits without a WAL
sync; a power loss that takes it is repaired by the first open of the
store after the reboot (libmailcore/mail/mailstore_reconcile.c):

- alice APPENDs 3 messages (APPENDUIDs reported), the instance stops, and
  the power loss is played on her index.sqlite with python's sqlite3: the
  3 rows deleted, uidnext and highestmodseq rolled back, the recorded boot
  id made bogus. Started again, SELECT shows the 3 messages with their
  bodies and flags, under new UIDs above every reported one; a 4th APPEND
  gets a UID none of them had; one log line names the store, the mailbox
  and the count.

A file's ctime cannot be set from outside, so the restarted daemons get
POSTERN_TEST_BOOT_TIME (a test-only hook, compiled only with -Dtests=true)
saying the boot began after the files were written.
"""
import imaplib
import os
import re
import sqlite3
import time
from pathlib import Path

from harness import PASSWORDS

ALICE = "alice@example.test"


def login(inst, user=ALICE):
    c = imaplib.IMAP4("127.0.0.1", inst.ports["imap"], timeout=30)
    c.login(user, PASSWORDS[user])
    return c


def message(i):
    return (b"From: writer@client.test\r\nTo: alice@example.test\r\nSubject: draft %d\r\n\r\n" % i
            + b"".join(b"line %d of draft %d\r\n" % (n, i) for n in range(3 + i)))


def appenduid(data):
    m = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
    assert m, data
    return int(m.group(1))


def lose_rows(index, uids):
    """What a power loss after these APPENDs' unsynced commits leaves: their rows gone, another boot recorded."""
    st = os.stat(index)
    db = sqlite3.connect(str(index))
    try:
        with db:
            q = ",".join("?" * len(uids))
            db.execute(f"DELETE FROM messages WHERE uid IN ({q})"
                       " AND mailbox = (SELECT id FROM mailboxes WHERE name = 'INBOX')", uids)
            db.execute("UPDATE mailboxes SET uidnext = ?, highestmodseq = highestmodseq - ? WHERE name = 'INBOX'",
                       (min(uids), len(uids)))
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('boot', 1)")
    finally:
        db.close()
    # the daemons must still be able to write what sqlite3 may have left beside the index
    for sfx in ("-wal", "-shm"):
        p = Path(str(index) + sfx)
        if p.exists() and os.geteuid() == 0:
            os.chown(p, st.st_uid, st.st_gid)


def test_appends_lost_to_a_power_loss_come_back(inst, monkeypatch):
    c = login(inst)
    typ, data = c.append("INBOX", None, None, b"From: x@client.test\r\nSubject: kept\r\n\r\nkept\r\n")
    assert typ == "OK"
    kept = appenduid(data)
    reported = {}
    for i, flags in enumerate(("(\\Seen)", None, "(\\Flagged)")):
        typ, data = c.append("INBOX", flags, None, message(i))
        assert typ == "OK", data
        reported[appenduid(data)] = (message(i), flags)
    c.logout()
    assert sorted(reported) == [kept + 1, kept + 2, kept + 3]
    inst.stop()

    index = inst.maildir() / "index.sqlite"
    lose_rows(index, sorted(reported))
    assert [r["uid"] for r in inst.index_rows()] == [kept]   # the power loss took them

    monkeypatch.setenv("POSTERN_TEST_BOOT_TIME", str(int(time.time()) + 3600))
    inst.start()
    c = login(inst)
    typ, data = c.select("INBOX")
    assert typ == "OK" and int(data[0]) == 4
    typ, data = c.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
    assert typ == "OK"
    got = {}
    for item in data:
        if isinstance(item, tuple):
            uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
            flags = re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1)
            got[uid] = (item[1], flags)
    assert kept in got
    back = sorted(u for u in got if u != kept)
    # never a UID that APPENDUID reported: the files get the three after them, in arrival order
    assert back == [kept + 4, kept + 5, kept + 6]
    for uid, (i, expect_flag) in zip(back, [(0, b"\\Seen"), (1, None), (2, b"\\Flagged")]):
        body, flags = got[uid]
        assert body == message(i)
        if expect_flag:
            assert expect_flag in flags.split()
        else:
            assert b"\\Seen" not in flags.split() and b"\\Flagged" not in flags.split()

    typ, data = c.append("INBOX", None, None, b"From: x@client.test\r\nSubject: fourth\r\n\r\nfourth\r\n")
    assert typ == "OK"
    fourth = appenduid(data)
    assert fourth not in reported and fourth not in got and fourth > max(back)
    c.logout()

    m = inst.wait_log(r"notice: store (\S+): mailbox INBOX: 3 message\(s\) whose index row a power loss took"
                      r" are indexed again")
    assert Path(m.group(1)) == inst.maildir()
    assert len(re.findall(r"indexed again", inst.log())) == 1
