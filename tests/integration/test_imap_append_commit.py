"""
test_imap_append_commit.py - APPEND's index commit runs on imapd's thread
pool with the user's store lent to it; what a user must see is unchanged:

- a second session of the same user runs FETCH, STORE and SEARCH while
  10 APPENDs of that user are in flight, and every answer is right (the
  session waits while the store is lent, it never sees half a change or
  an error), and nothing appended is lost;
- two APPENDs in flight at once that together exceed the user's quota:
  one OK, the other NO [OVERQUOTA] (the first one's size is reserved from
  its announcement until its commit);
- a file a crash left in a Maildir's tmp/ more than 36 hours ago is gone
  after the next login (with a log line saying how many went), a fresh
  one stays.

Driven with imaplib from threads and with raw sockets (imapraw).
"""
import contextlib
import imaplib
import os
import re
import threading
import time

import pytest

import imapraw
from harness import PASSWORDS

ALICE = "alice@example.test"


def login(inst, user=ALICE):
    c = imaplib.IMAP4("127.0.0.1", inst.ports["imap"], timeout=60)
    c.login(user, PASSWORDS[user])
    return c


class Raw(imapraw.LoggedIn):
    """alice unless told otherwise."""

    def __init__(self, inst, user=ALICE):
        super().__init__(inst, user)


def base_message(i):
    return b"From: base@client.test\r\nSubject: base %d\r\n\r\nbase body %d\r\n" % (i, i)


def appended_message(k, i):
    return (b"From: c%d@client.test\r\nSubject: appended c%d m%d\r\n\r\n" % (k, k, i)
            + b"".join(b"line %d of c%d m%d\r\n" % (n, k, i) for n in range(1 + 3 * i + k)))


def uid_of(data):
    m = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
    return int(m.group(1)) if m else None


def test_second_session_while_appends_in_flight(inst):
    """FETCH, STORE and SEARCH of one session stay right while 10 others of the user append."""
    c = login(inst)
    base = {}
    for i in range(5):
        typ, data = c.append("INBOX", None, None, base_message(i))
        assert typ == "OK"
        base[uid_of(data)] = base_message(i)
    c.select("INBOX")

    acked, errors, stop = [], [], threading.Event()

    def appender(k):
        try:
            a = login(inst)
            for i in range(8):
                msg = appended_message(k, i)
                typ, data = a.append("INBOX", None, None, msg)
                if typ != "OK" or uid_of(data) is None:
                    errors.append((k, i, typ, data))
                    continue
                acked.append((uid_of(data), msg))
            a.logout()
        except Exception as e:   # reported below
            errors.append((k, repr(e)))

    threads = [threading.Thread(target=appender, args=(k,)) for k in range(10)]
    for t in threads:
        t.start()
    rounds = 0
    flagged = set()
    uids = sorted(base)
    # The second session works the whole time the appends run (and at least a few rounds).
    while rounds < 5 or any(t.is_alive() for t in threads):
        uid = uids[rounds % len(uids)]
        typ, data = c.uid("FETCH", str(uid), "(BODY.PEEK[])")
        assert typ == "OK", data
        bodies = [d[1] for d in data if isinstance(d, tuple)]
        assert bodies == [base[uid]], f"FETCH of uid {uid} came back wrong: {data}"
        op = "+FLAGS" if uid not in flagged else "-FLAGS"
        typ, data = c.uid("STORE", str(uid), op, r"(\Flagged)")
        assert typ == "OK", data
        flagged.symmetric_difference_update({uid})
        typ, data = c.uid("SEARCH", "FLAGGED")
        assert typ == "OK", data
        assert sorted(int(x) for x in data[0].split()) == sorted(flagged)
        typ, data = c.uid("SEARCH", "SUBJECT", "base")
        assert typ == "OK", data
        assert sorted(int(x) for x in data[0].split()) == uids
        rounds += 1
        if rounds > 2000:
            break
    for t in threads:
        t.join(120)
    assert not [t for t in threads if t.is_alive()], "an APPEND client hung"
    assert errors == []
    assert len(acked) == 80
    # Nothing lost: every acknowledged UID is there with its bytes, the UIDs contiguous after the base.
    got = sorted(u for u, _ in acked)
    assert got == list(range(max(uids) + 1, max(uids) + 81))
    typ, data = c.uid("SEARCH", "SUBJECT", "appended")
    assert sorted(int(x) for x in data[0].split()) == got
    for uid, msg in acked:
        typ, data = c.uid("FETCH", str(uid), "(BODY.PEEK[])")
        assert typ == "OK" and data[0][1] == msg, f"uid {uid} came back changed"
    # The waiting session saw every new message (EXISTS), in order.
    typ, data = c.select("INBOX", readonly=True)
    assert int(data[0]) == 85
    c.logout()
    rows = [r for r in inst.index_rows() if r["mailbox"] == "INBOX"]
    assert len(rows) == 85
    print(f"{rounds} rounds of FETCH/STORE/SEARCH while 80 APPENDs ran")


@contextlib.contextmanager
def carol_with_quota(inst):
    """carol, 100K of quota; her raw sessions opened through the yielded list are closed after."""
    inst.tool("user", "add", "carol@example.test", "--password-stdin", "--quota", "100K",
              input="carol-pass-999\n")
    PASSWORDS["carol@example.test"] = "carol-pass-999"
    opened = []
    try:
        yield opened
    finally:
        for r in opened:
            r.s.close()
        del PASSWORDS["carol@example.test"]


SIXTY_KB = b"Subject: sixty\r\n\r\n" + b"z" * 60000 + b"\r\n"


def one_of_two_over_quota(inst, r1, r2):
    """r1 and r2 (carol) send a 60 KB APPEND each at once (LITERAL+): exactly one is stored."""
    answers = {}

    def send(r, tag):
        r.send(b"%s APPEND INBOX {%d+}\r\n%s\r\n" % (tag, len(SIXTY_KB), SIXTY_KB))
        answers[tag] = r.until_tagged(tag)[-1]

    ts = [threading.Thread(target=send, args=(r, t)) for r, t in ((r1, b"c"), (r2, b"d"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    oks = [a for a in answers.values() if b" OK " in a]
    nos = [a for a in answers.values() if b" NO [OVERQUOTA]" in a]
    assert len(oks) == 1 and len(nos) == 1, answers
    rows = [row for row in inst.index_rows("carol") if row["mailbox"] == "INBOX"]
    assert len(rows) == 1
    # The refused one's file went with it.
    assert sorted(p.name for p in (inst.maildir("carol") / "tmp").iterdir()) == []


# The reservations of APPENDs in flight are counted in the imapd process that holds them: with
# several processes ([imapd] processes) two sessions of one user may sit in two workers, and each sees
# only its own. One process, so both sessions are in it.
@pytest.mark.postern_config({"imapd": {"processes": "1"}})
def test_concurrent_appends_over_quota_one_refused(inst):
    """Two APPENDs in flight that together pass the quota: one OK, one NO [OVERQUOTA]."""
    with carol_with_quota(inst) as opened:
        # Announced at once: the first one's size counts before a byte of it arrived.
        r1, r2 = Raw(inst, "carol@example.test"), Raw(inst, "carol@example.test")
        opened += [r1, r2]
        r1.send(b"a APPEND INBOX {%d}\r\n" % len(SIXTY_KB))
        assert r1.line().startswith(b"+ ")
        r2.send(b"b APPEND INBOX {%d}\r\n" % len(SIXTY_KB))
        assert r2.line().startswith(b"b NO [OVERQUOTA]")
        r1.send(SIXTY_KB + b"\r\n")
        assert r1.until_tagged(b"a")[-1].startswith(b"a OK [APPENDUID")
        # Both whole at the same moment (LITERAL+), from two sessions: exactly one is stored.
        assert r1.command(b"x", b"SELECT INBOX")[-1].startswith(b"x OK")
        assert r1.command(b"y", b"STORE 1 +FLAGS (\\Deleted)")[-1].startswith(b"y OK")
        assert r1.command(b"z", b"EXPUNGE")[-1].startswith(b"z OK")
        one_of_two_over_quota(inst, r1, r2)


@pytest.mark.postern_config({"imapd": {"processes": "2"}})
def test_quota_holds_across_imapd_processes(inst):
    """Two sessions of one user in two imapd workers APPEND at once past the quota: exactly one is stored.

    Each worker's early check sees only its own APPENDs in flight, so both literals are taken; the
    check in the index's write transaction (one writer at a time across processes) refuses the second.
    """
    from test_imap_procs import serving_pid
    with carol_with_quota(inst) as opened:
        by_pid = {}
        for _ in range(60):
            r = Raw(inst, "carol@example.test")
            opened.append(r)
            by_pid.setdefault(serving_pid(inst, r.s), r)
            if len(by_pid) == 2:
                break
        assert len(by_pid) == 2, "60 connections all went to one worker"
        one_of_two_over_quota(inst, *by_pid.values())


def test_stale_tmp_files_swept_at_login(inst):
    c = login(inst)   # the first login makes the store and its default mailboxes
    c.logout()
    inst.wait_log(r"disconnect from .* user=alice@example\.test", what="the first session's end")
    time.sleep(0.2)   # the store is closed when its last session is gone
    old_inbox = inst.maildir() / "tmp" / "1700000000.M1P1.crashed"
    old_sent = inst.maildir() / ".Sent" / "tmp" / "1700000001.M2P2.crashed"
    fresh = inst.maildir() / "tmp" / "1700000002.M3P3.writing"
    for p in (old_inbox, old_sent, fresh):
        p.write_bytes(b"Subject: half a message\r\n")
    day_and_a_half = time.time() - 37 * 3600
    os.utime(old_inbox, (day_and_a_half, day_and_a_half))
    os.utime(old_sent, (day_and_a_half - 3600, day_and_a_half - 3600))
    c = login(inst)
    assert not old_inbox.exists()
    assert not old_sent.exists()
    assert fresh.exists(), "a fresh tmp/ file (a delivery being written) was removed"
    inst.wait_log(r"removed 2 stale files from tmp/ user=alice@example\.test")
    # The mailboxes work as before.
    typ, data = c.append("INBOX", None, None, b"Subject: after the sweep\r\n\r\nhello\r\n")
    assert typ == "OK"
    c.logout()

