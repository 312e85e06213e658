"""
test_imap_expunge_pool.py - EXPUNGE, UID EXPUNGE and CLOSE remove the
messages in imapd's thread pool with the user's store lent to it (so that
no session of the process waits for their syncs); what a user must see is
unchanged:

- the session's own EXPUNGE responses, then the tagged OK, and the
  commands it pipelined behind the EXPUNGE answered after it, in order;
- another session of the user on the mailbox, in IDLE, is told of each
  expunge; one that is not idling sees them at its next command; their
  views agree with the index every time;
- CLOSE removes the \\Deleted messages with no untagged response at all;
- a client that drops right after sending EXPUNGE leaves a consistent
  store (every row's file is there, every file of cur/ has its row), a
  log line, and a server that goes on serving it.

Driven with raw sockets (imapraw) and imaplib.
"""
import imaplib
import os
import re

import imapraw
from harness import PASSWORDS, wait_for

ALICE = "alice@example.test"


class Raw(imapraw.LoggedIn):
    """alice unless told otherwise."""

    def __init__(self, inst, user=ALICE):
        super().__init__(inst, user)

    def close(self):
        self.s.close()


def fill(inst, n):
    c = imaplib.IMAP4("127.0.0.1", inst.ports["imap"], timeout=30)
    c.login(ALICE, PASSWORDS[ALICE])
    for i in range(n):
        typ, _ = c.append("INBOX", None, None, b"From: x@client.test\r\nSubject: m%d\r\n\r\nbody %d\r\n" % (i, i))
        assert typ == "OK"
    c.logout()


def consistent(inst):
    """Every row of INBOX names a file that is there, and every file of cur/ and new/ has its row."""
    md = inst.maildir()
    rows = [r for r in inst.index_rows() if r["mailbox"] == "INBOX"]
    on_disk = {f"{d}/{name}" for d in ("cur", "new") for name in os.listdir(md / d)}
    assert {r["file"] for r in rows} == on_disk
    return len(rows)


def test_expunge_answers_in_order_and_other_sessions_see_it(inst):
    fill(inst, 12)
    idler = Raw(inst)
    idler.send(b"s SELECT INBOX\r\n")
    assert b"* 12 EXISTS" in idler.until_tagged(b"s")
    idler.send(b"i IDLE\r\n")
    assert idler.line().startswith(b"+")
    other = Raw(inst)
    other.send(b"s SELECT INBOX\r\n")
    other.until_tagged(b"s")
    a = Raw(inst)
    a.send(b"s SELECT INBOX\r\n")
    a.until_tagged(b"s")
    # 3, 5 and 7 go; NOOP and FETCH pipelined behind the EXPUNGE are answered after it
    a.send(b"1 STORE 3,5,7 +FLAGS.SILENT (\\Deleted)\r\n2 EXPUNGE\r\n3 NOOP\r\n4 FETCH 1:* (UID)\r\n")
    assert a.until_tagged(b"1")[-1].startswith(b"1 OK")
    assert a.until_tagged(b"2") == [b"* 3 EXPUNGE", b"* 4 EXPUNGE", b"* 5 EXPUNGE", b"* 9 EXISTS", b"* 0 RECENT",
                                    b"2 OK EXPUNGE completed"]
    assert a.until_tagged(b"3")[-1].startswith(b"3 OK")
    uids = [int(re.search(rb"UID (\d+)", ln).group(1)) for ln in a.until_tagged(b"4")[:-1]]
    assert uids == [1, 2, 4, 6, 8, 9, 10, 11, 12]
    # the idler is told (its store was lent meanwhile); the other one at its next command
    got = []
    while not got or got[-1] != b"* 9 EXISTS":
        got.append(idler.line())
    assert [ln for ln in got if ln.endswith(b"EXPUNGE")] == [b"* 3 EXPUNGE", b"* 4 EXPUNGE", b"* 5 EXPUNGE"]
    idler.send(b"DONE\r\n")
    assert idler.until_tagged(b"i")[-1].startswith(b"i OK")
    other.send(b"n NOOP\r\n")
    assert other.until_tagged(b"n") == [b"* 3 EXPUNGE", b"* 4 EXPUNGE", b"* 5 EXPUNGE", b"* 9 EXISTS", b"* 0 RECENT",
                                        b"n OK NOOP completed"]
    # UID EXPUNGE of one of two \Deleted messages
    a.send(b"5 STORE 1,2 +FLAGS.SILENT (\\Deleted)\r\n6 UID EXPUNGE 2\r\n")
    a.until_tagged(b"5")
    assert a.until_tagged(b"6") == [b"* 2 EXPUNGE", b"* 8 EXISTS", b"* 0 RECENT", b"6 OK EXPUNGE completed"]
    assert consistent(inst) == 8
    inst.wait_log(r"expunged 3 from mailbox=INBOX user=alice@example\.test")
    for r in (a, other, idler):
        r.close()


def test_close_expunges_silently(inst):
    fill(inst, 4)
    a = Raw(inst)
    a.send(b"s SELECT INBOX\r\n1 STORE 2:3 +FLAGS.SILENT (\\Deleted)\r\n2 CLOSE\r\n3 NOOP\r\n")
    a.until_tagged(b"s")
    a.until_tagged(b"1")
    assert a.until_tagged(b"2") == [b"2 OK CLOSE completed"]
    assert a.until_tagged(b"3") == [b"3 OK NOOP completed"]
    a.send(b"4 FETCH 1 UID\r\n")
    assert a.until_tagged(b"4")[-1].startswith(b"4 BAD")   # no mailbox selected any more
    assert consistent(inst) == 2
    a.close()


def test_client_gone_during_expunge_leaves_a_consistent_store(inst):
    fill(inst, 300)
    a = Raw(inst)
    a.send(b"s SELECT INBOX\r\n1 STORE 1:* +FLAGS.SILENT (\\Deleted)\r\n")
    a.until_tagged(b"1")
    a.send(b"2 EXPUNGE\r\n")
    a.s.close()   # gone before the answer
    inst.wait_log(r"(expunged 300 from mailbox=INBOX|expunge of mailbox=INBOX: the session ended first)")
    left = consistent(inst)
    assert left in (0, 300)
    b = Raw(inst)
    b.send(b"s SELECT INBOX\r\n")
    assert b"* %d EXISTS" % left in b.until_tagged(b"s")
    b.close()
