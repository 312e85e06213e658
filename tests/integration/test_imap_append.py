"""
test_imap_append.py - APPEND streamed into the mail store: a 20 MB message
costs imapd far less than 20 MB of memory (its peak RSS, VmHWM in
/proc/PID/status, before and after), the message goes through tmp/ while
it arrives and nothing stays there when the client drops mid-literal,
flags, keywords and the internal date are kept, the MIME structure is
cached from the stream, and what can be refused from the announcement
(APPENDLIMIT, quota, a missing mailbox, bad syntax) is refused before "+";
a refused LITERAL+ message is read and dropped and the session goes on.

Driven with imaplib and with raw sockets for what imaplib would not send.
"""
import base64
import imaplib
import re
import time

import pytest

import imapraw
from harness import PASSWORDS, wait_for
from mailtest import make_message, send_mail

ALICE = "alice@example.test"
MB = 1024 * 1024


def login(inst, user=ALICE):
    c = imaplib.IMAP4("127.0.0.1", inst.ports["imap"], timeout=30)
    c.login(user, PASSWORDS[user])
    return c


class Raw(imapraw.LoggedIn):
    """alice unless told otherwise."""

    def __init__(self, inst, user=ALICE):
        super().__init__(inst, user)

    def close(self):
        self.s.close()


def big_message(size):
    """A multipart message of about size bytes: a text part and a base64 attachment (CRLF lines)."""
    head = (b"From: Ann <ann@client.test>\r\nTo: alice@example.test\r\nSubject: big one\r\n"
            b"Date: Fri, 27 Nov 2026 01:02:03 +0000\r\nMessage-ID: <big@client.test>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n"
            b"--zz\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nsee the attachment\r\n"
            b"--zz\r\nContent-Type: application/octet-stream; name=\"blob.bin\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n")
    tail = b"\r\n--zz--\r\n"
    line = base64.b64encode(bytes(range(57))) + b"\r\n"   # 78 bytes per line
    n = (size - len(head) - len(tail)) // len(line)
    return head + line * n + tail


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            if ln.startswith("VmHWM:"):
                return int(ln.split()[1])
    pytest.fail(f"no VmHWM in /proc/{pid}/status")


def tmp_files(inst, folder=""):
    d = inst.maildir() / (("." + folder) if folder else "") / "tmp"
    return sorted(p for p in d.iterdir() if p.is_file())


def append_raw(r, tag, mailbox, msg, extra=b"", chunk=MB):
    """APPEND with a synchronising literal; returns the tagged answer."""
    r.send(b"%s APPEND %s %s{%d}\r\n" % (tag, mailbox, extra, len(msg)))
    assert r.line().startswith(b"+ ")
    for i in range(0, len(msg), chunk):
        r.send(msg[i:i + chunk])
    r.send(b"\r\n")
    return r.until_tagged(tag)[-1]


def test_append_20mb_streams_with_bounded_memory(inst):
    pid = inst.pids()["imapd"]
    r = Raw(inst)
    # A small APPEND first, so that what every APPEND allocates is in the baseline.
    assert append_raw(r, b"w", b"INBOX", b"Subject: warm-up\r\n\r\nhi\r\n").startswith(b"w OK [APPENDUID")
    before = vm_hwm_kib(pid)
    msg = big_message(20 * MB)
    answer = append_raw(r, b"a", b"INBOX", msg)
    assert answer.startswith(b"a OK [APPENDUID"), answer
    growth = vm_hwm_kib(pid) - before
    print(f"imapd VmHWM {before} KiB before, grew by {growth} KiB for {len(msg)} bytes")
    # Holding the literal would cost 20 MB at least; streamed, only a few buffers.
    assert growth < 6 * 1024, f"imapd's peak RSS grew by {growth} KiB for a 20 MB APPEND"
    uid = int(re.search(rb"APPENDUID \d+ (\d+)", answer).group(1))
    assert tmp_files(inst) == []
    # What was stored is the message, byte for byte, and its structure was cached from the stream.
    rows = [row for row in inst.index_rows() if row["uid"] == uid]
    assert rows and rows[0]["vsize"] == len(msg)
    assert rows[0]["bodystructure"] and b"blob.bin" in rows[0]["bodystructure"].encode().lower()
    c = login(inst)
    c.select("INBOX", readonly=True)
    typ, data = c.uid("FETCH", str(uid), "(RFC822.SIZE BODYSTRUCTURE)")
    assert typ == "OK" and b"RFC822.SIZE %d" % len(msg) in data[0], data[0][:200]
    assert b'"application" "octet-stream"' in data[0].lower()
    typ, data = c.uid("FETCH", str(uid), "(BODY.PEEK[])")
    assert data[0][1] == msg
    typ, data = c.uid("FETCH", str(uid), "(BODY.PEEK[1])")
    assert data[0][1] == b"see the attachment"
    c.logout()
    r.close()


def test_dropped_mid_literal_leaves_nothing(inst):
    rows_before = len(inst.index_rows())
    r = Raw(inst)
    msg = big_message(10 * MB)
    r.send(b"a APPEND INBOX (\\Seen) {%d}\r\n" % len(msg))
    assert r.line().startswith(b"+ ")
    r.send(msg[:3 * MB])
    # The message goes into tmp/ as it arrives ...
    inst.wait_for(lambda: any(p.stat().st_size > 0 for p in tmp_files(inst)), what="the message growing in tmp/")
    r.close()
    # ... and once the client is gone, it is gone too, and nothing was indexed.
    inst.wait_for(lambda: tmp_files(inst) == [], what="tmp/ empty after the drop")
    inst.wait_log(r"APPEND of \d+ bytes to mailbox=INBOX ended before the message was whole")
    assert len(inst.index_rows()) == rows_before
    assert not [p for p in (inst.maildir() / "new").iterdir()]
    # The daemon goes on.
    c = login(inst)
    c.select("INBOX")
    assert c.append("INBOX", None, None, b"Subject: after\r\n\r\nstill here\r\n")[0] == "OK"
    c.logout()


def test_append_flags_keywords_date(inst):
    c = login(inst)
    msg = b"From: a@client.test\r\nSubject: flagged\r\n\r\nbody line\r\n"
    typ, data = c.append("Drafts", r"(\Draft \Flagged $Label1)", '"01-Feb-2025 10:20:30 -0500"', msg)
    assert typ == "OK", data
    uidv, uid = re.search(rb"APPENDUID (\d+) (\d+)", data[0]).groups()
    c.select("Drafts")
    typ, data = c.uid("FETCH", uid.decode(), "(FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
    head = b"".join(d[0] if isinstance(d, tuple) else d for d in data)
    assert b"\\Draft" in head and b"\\Flagged" in head and b"$Label1" in head
    assert b'INTERNALDATE "01-Feb-2025 15:20:30 +0000"' in head
    assert b"RFC822.SIZE %d" % len(msg) in head
    assert [d for d in data if isinstance(d, tuple)][0][1] == msg
    # The file is in cur/ with its flags, dated as the message.
    files = list((inst.maildir() / ".Drafts" / "cur").iterdir())
    assert len(files) == 1 and files[0].name.endswith(":2,DF")
    assert int(files[0].stat().st_mtime) == 1738423230
    # LITERAL+ works the same; the message goes into the selected mailbox, which hears of it.
    r = Raw(inst)
    r.send(b"s SELECT Drafts\r\n")
    r.until_tagged(b"s")
    r.send(b"b APPEND Drafts (\\Seen) {%d+}\r\n" % len(msg) + msg + b"\r\n")
    lines = r.until_tagged(b"b")
    assert lines[-1].startswith(b"b OK [APPENDUID " + uidv), lines
    assert b"* 2 EXISTS" in lines
    c.logout()
    r.close()


@pytest.mark.postern_config({"smtpd": {"max_message_size": "1M"}})
def test_refused_before_continuation(inst):
    r = Raw(inst)
    # Over APPENDLIMIT: NO at once, no "+" (the client sends nothing more of it).
    r.send(b"a APPEND INBOX {%d}\r\n" % (2 * MB))
    assert r.line().startswith(b"a NO [TOOBIG]")
    # No such mailbox, a name that would escape the store, bad syntax, an empty message: the same.
    r.send(b"b APPEND Nope {10}\r\n")
    assert r.line().startswith(b"b NO [TRYCREATE]")
    r.send(b"c APPEND ../x {10}\r\n")
    assert r.line().startswith(b"c NO")
    r.send(b"d APPEND INBOX (\\Bogus) {10}\r\n")
    assert r.line().startswith(b"d BAD")
    r.send(b"e APPEND INBOX \"not a date\" {10}\r\n")
    assert r.line().startswith(b"e BAD")
    r.send(b"f APPEND INBOX {0}\r\n")
    assert r.line().startswith(b"f NO")
    r.send(b"g APPEND INBOX {4294967296}\r\n")
    assert r.line().startswith(b"g BAD")
    # A refused LITERAL+ message is read and dropped: the session goes on right after it.
    big = b"x" * (2 * MB)
    r.send(b"h APPEND INBOX {%d+}\r\n" % len(big) + big + b"\r\ni NOOP\r\n")
    assert r.line().startswith(b"h NO [TOOBIG]")
    assert r.until_tagged(b"i")[-1].startswith(b"i OK")
    # MULTIAPPEND is not offered: a second message is refused, the first one not stored.
    first = b"Subject: 1\r\n\r\n"
    r.send(b"j APPEND INBOX {%d+}\r\n" % len(first) + first + b" {5}\r\n")
    assert r.until_tagged(b"j")[-1].startswith(b"j BAD")
    r.send(b"k NOOP\r\n")
    assert r.until_tagged(b"k")[-1].startswith(b"k OK")
    # A message as a quoted string is no literal.
    r.send(b'l APPEND INBOX "Subject: x"\r\n')
    assert r.until_tagged(b"l")[-1].startswith(b"l BAD")
    # Within the limit, the same session appends.
    assert append_raw(r, b"m", b"INBOX", b"Subject: ok\r\n\r\nfits\r\n").startswith(b"m OK [APPENDUID")
    assert len(inst.index_rows()) == 1
    assert tmp_files(inst) == []
    r.close()


def test_over_quota_refused_before_continuation(inst):
    inst.tool("user", "add", "carol@example.test", "--password-stdin", "--quota", "100K",
              input="carol-pass-999\n")
    PASSWORDS["carol@example.test"] = "carol-pass-999"
    try:
        r = Raw(inst, "carol@example.test")
        r.send(b"a APPEND INBOX {200000}\r\n")
        assert r.line().startswith(b"a NO [OVERQUOTA]")
        assert append_raw(r, b"b", b"INBOX", b"Subject: small\r\n\r\n" + b"y" * 50000 + b"\r\n").startswith(b"b OK")
        r.send(b"c APPEND INBOX {60000}\r\n")
        assert r.line().startswith(b"c NO [OVERQUOTA]")
        r.close()
    finally:
        del PASSWORDS["carol@example.test"]


def test_append_into_selected_mailbox_is_recent_to_that_session_only(inst):
    """RFC 3501 2.3.2: \\Recent to exactly one session. The appending session with the
    mailbox selected takes it (the APPEND's own commit claims it); a delivery it has not
    seen yet is not taken from it by the APPEND; a session appending from elsewhere claims
    nothing, so the next to select gets it."""
    a = Raw(inst)
    a.send(b"s SELECT INBOX\r\n")
    assert b"* 0 RECENT" in a.until_tagged(b"s")
    msg = b"From: a@client.test\r\nSubject: own\r\n\r\nbody\r\n"
    a.send(b"1 APPEND INBOX (\\Seen) {%d+}\r\n" % len(msg) + msg + b"\r\n")
    lines = a.until_tagged(b"1")
    assert lines[-1].startswith(b"1 OK [APPENDUID "), lines
    assert lines[:-1] == [b"* 1 EXISTS", b"* 1 RECENT"], lines
    a.send(b"2 FETCH 1 FLAGS\r\n")
    assert a.until_tagged(b"2")[0] == b"* 1 FETCH (FLAGS (\\Recent \\Seen))"
    # a's view took its own message in without asking the index: a change by another session
    # after it is reported once, and the APPEND is not reported again
    o = Raw(inst)
    o.send(b"s SELECT INBOX\r\no1 STORE 1 +FLAGS.SILENT (\\Flagged)\r\n")
    assert o.until_tagged(b"o1")[-1].startswith(b"o1 OK")
    o.close()
    a.send(b"n NOOP\r\n")
    assert a.until_tagged(b"n")[:-1] == [b"* 1 FETCH (FLAGS (\\Recent \\Seen \\Flagged))"]
    # delivered while a is busy appending: both come in at the APPEND, both recent to a
    send_mail(inst.ports["smtp"], msg=make_message(subject="delivered"))
    wait_for(lambda: len(inst.index_rows()) == 2, what="the delivered message's row")
    a.send(b"3 APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
    lines = a.until_tagged(b"3")
    assert lines[:-1] == [b"* 3 EXISTS", b"* 3 RECENT"], lines
    # another session appending with INBOX not selected claims nothing
    b = Raw(inst)
    b.send(b"s SELECT Drafts\r\n")
    b.until_tagged(b"s")
    b.send(b"4 APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
    assert b.until_tagged(b"4")[-1].startswith(b"4 OK [APPENDUID ")
    a.send(b"5 NOOP\r\n")
    assert a.until_tagged(b"5")[:-1] == [b"* 4 EXISTS", b"* 4 RECENT"]   # a saw it first
    c = Raw(inst)
    c.send(b"s SELECT INBOX\r\n")
    assert b"* 0 RECENT" in c.until_tagged(b"s")
    c.send(b"6 APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
    assert c.until_tagged(b"6")[:-1] == [b"* 5 EXISTS", b"* 1 RECENT"]
    for r in (a, b, c):
        r.close()


def test_message_file_that_cannot_be_created_is_a_no_and_the_session_goes_on(inst):
    """A message of 64 KiB or more gets its tmp/ file in imapd's thread pool while the session
    waits, before its literal is read; a shorter one is held in memory and its file created with
    its write and fsync once it is whole. When the creation fails, either way, the APPEND gets NO
    with a log line (the big literal is read and dropped), and the same session (and the next
    APPEND, once tmp/ is writable again) works."""
    tmp = inst.maildir() / "tmp"
    small = b"From: a@client.test\r\nSubject: nowhere\r\n\r\nbody\r\n"
    big = b"From: a@client.test\r\nSubject: nowhere, big\r\n\r\n" + b"0123456789abcdef\r\n" * 4000
    assert len(big) >= 64 * 1024
    r = Raw(inst)
    mode = tmp.stat().st_mode
    tmp.chmod(0o500)
    try:
        # non-synchronising: the bytes come at once, while the file is being created
        r.send(b"1 APPEND INBOX {%d+}\r\n" % len(big) + big + b"\r\n")
        assert r.until_tagged(b"1")[-1] == b"1 NO [SERVERBUG] Cannot store the message now"
        r.send(b"2 NOOP\r\n")
        assert r.until_tagged(b"2")[-1].startswith(b"2 OK")
        inst.wait_log(r"APPEND for user=alice@example.test mailbox=INBOX: cannot create the message file: ")
        r.send(b"3 APPEND INBOX {%d+}\r\n" % len(small) + small + b"\r\n")
        assert r.until_tagged(b"3")[-1] == b"3 NO [SERVERBUG] APPEND failed"
        r.send(b"4 NOOP\r\n")
        assert r.until_tagged(b"4")[-1].startswith(b"4 OK")
        inst.wait_log(r"APPEND for user=alice@example.test: create tmp/\S+: Permission denied")
    finally:
        tmp.chmod(mode & 0o7777)
    for n, msg in ((5, small), (6, big)):
        r.send(b"%d APPEND INBOX {%d}\r\n" % (n, len(msg)))
        assert r.line().startswith(b"+")
        r.send(msg + b"\r\n")
        assert r.until_tagged(b"%d" % n)[-1].startswith(b"%d OK [APPENDUID " % n)
    assert list(tmp.iterdir()) == []
    r.send(b"7 SELECT INBOX\r\n")
    r.until_tagged(b"7")
    r.send(b"8 FETCH 1:* (RFC822.SIZE)\r\n")
    sizes = [ln for ln in r.until_tagged(b"8") if b"RFC822.SIZE" in ln]
    assert sizes == [b"* 1 FETCH (RFC822.SIZE %d)" % len(small), b"* 2 FETCH (RFC822.SIZE %d)" % len(big)]
    r.close()
