"""
test_imap.py - imapd against a real instance with Python's imaplib (and
curl, and raw sockets for what imaplib would never send): login, STARTTLS
and implicit TLS, LOGINDISABLED, mailboxes, SELECT counts, FETCH byte for
byte against what was sent over SMTP, IDLE seeing a delivery, two sessions
seeing each other, and hostile input.
"""
import base64
import email.policy
import imaplib
import re
import ssl
import subprocess
import time

import pytest

from harness import PASSWORDS
from imapraw import Raw
from mailtest import client_tls_context, make_message, send_mail

ALICE = "alice@example.test"


def login(inst, user=ALICE):
    c = imaplib.IMAP4("127.0.0.1", inst.ports["imap"], timeout=15)
    c.login(user, PASSWORDS[user])
    return c


def deliver(inst, n=1, subject="test", body="Hello.\n"):
    """n messages to alice over SMTP; waits until they are in her Maildir. Returns their bytes as sent."""
    sent = []
    before = len(inst.index_rows())
    for i in range(n):
        msg = make_message(subject=f"{subject} {i}", body=body)
        raw = msg.as_bytes(policy=email.policy.SMTP)   # CRLF, as SMTP carries it
        send_mail(inst.ports["smtp"], msg=raw)
        sent.append(raw)
    # The index row commits a moment after the file reaches new/: wait for the row, which IMAP shows.
    inst.wait_for(lambda: len(inst.index_rows()) >= before + n, what=f"{before + n} index rows")
    return sent


def test_greeting_capability_login_logout(inst):
    c = imaplib.IMAP4("127.0.0.1", inst.ports["imap"], timeout=15)
    assert c.welcome.startswith(b"* OK [CAPABILITY IMAP4rev1")
    caps = c.capabilities
    assert "STARTTLS" in caps and "AUTH=PLAIN" in caps and "IDLE" in caps
    with pytest.raises(imaplib.IMAP4.error):
        c.login(ALICE, "wrong")
    typ, data = c.login(ALICE, PASSWORDS[ALICE])
    assert typ == "OK"
    typ, data = c.capability()
    assert "STARTTLS" not in data[0].decode() and "LOGINDISABLED" not in data[0].decode()
    assert c.logout()[0] == "BYE"
    assert re.search(r"I[0-9A-F]+: login user=alice@example.test", inst.log())


def test_authenticate_plain_sasl_ir(inst):
    c = imaplib.IMAP4("127.0.0.1", inst.ports["imap"], timeout=15)
    # imaplib sends AUTHENTICATE PLAIN and answers the "+ " continuation.
    typ, _ = c.authenticate("PLAIN", lambda _: f"\0{ALICE}\0{PASSWORDS[ALICE]}".encode())
    assert typ == "OK"
    c.logout()
    r = Raw(inst.ports["imap"])
    ir = base64.b64encode(f"\0{ALICE}\0{PASSWORDS[ALICE]}".encode())
    r.send(b"a AUTHENTICATE PLAIN " + ir + b"\r\n")
    assert r.until_tagged(b"a")[-1].startswith(b"a OK")
    r.send(b"b AUTHENTICATE PLAIN " + ir + b"\r\n")
    assert r.until_tagged(b"b")[-1].startswith(b"b BAD")   # already logged in
    r = Raw(inst.ports["imap"])
    r.send(b"c AUTHENTICATE PLAIN " + base64.b64encode(f"\0{ALICE}\0nope".encode()) + b"\r\n")
    assert r.until_tagged(b"c")[-1].startswith(b"c NO [AUTHENTICATIONFAILED]")
    r.send(b"d AUTHENTICATE PLAIN " + base64.b64encode(f"bob@example.test\0{ALICE}\0x".encode()) + b"\r\n")
    assert r.until_tagged(b"d")[-1].startswith(b"d NO [AUTHENTICATIONFAILED]")
    r.send(b"e AUTHENTICATE PLAIN\r\n")
    assert r.line() == b"+ "
    r.send(b"*\r\n")
    assert r.until_tagged(b"e")[-1].startswith(b"e BAD")


def test_starttls_and_implicit_tls(inst):
    c = imaplib.IMAP4("127.0.0.1", inst.ports["imap"], timeout=15)
    c.starttls(ssl_context=client_tls_context())
    typ, data = c.capability()
    assert "STARTTLS" not in data[0].decode()
    c.login(ALICE, PASSWORDS[ALICE])
    c.logout()
    s = imaplib.IMAP4_SSL("127.0.0.1", inst.ports["imaps"], timeout=15, ssl_context=client_tls_context())
    assert "STARTTLS" not in s.capabilities
    s.login(ALICE, PASSWORDS[ALICE])
    assert s.select("INBOX")[0] == "OK"
    s.logout()


@pytest.mark.postern_config({"imapd": {"allow_plaintext_auth": "no"}})
def test_logindisabled_before_tls(inst):
    c = imaplib.IMAP4("127.0.0.1", inst.ports["imap"], timeout=15)
    assert "LOGINDISABLED" in c.capabilities and "AUTH=PLAIN" not in c.capabilities
    r = Raw(inst.ports["imap"])
    r.send(b"a LOGIN alice@example.test x\r\n")
    assert b"a NO [PRIVACYREQUIRED]" in r.until_tagged(b"a")[-1]
    c.starttls(ssl_context=client_tls_context())
    assert "LOGINDISABLED" not in c.capability()[1][0].decode()
    assert c.login(ALICE, PASSWORDS[ALICE])[0] == "OK"
    c.logout()


def test_pipelined_after_starttls_discarded(inst):
    r = Raw(inst.ports["imap"])
    r.send(b"a STARTTLS\r\nb LOGIN alice@example.test " + PASSWORDS[ALICE].encode() + b"\r\n")
    assert r.until_tagged(b"a")[-1].startswith(b"a OK")
    t = client_tls_context().wrap_socket(r.s)
    t.settimeout(3)
    # Nothing answers "b": it was sent before TLS and must be discarded.
    t.sendall(b"c NOOP\r\n")
    data = b""
    while b"c OK" not in data:
        data += t.recv(4096)
    assert b"b OK" not in data and b"b NO" not in data
    t.sendall(b"d SELECT INBOX\r\n")
    data = t.recv(4096)
    assert data.startswith(b"d BAD")   # still not logged in


def test_mailboxes_list_create(inst):
    c = login(inst)
    typ, data = c.list()
    assert typ == "OK"
    names = {re.search(rb'"([^"]*)"$', d).group(1) for d in data}
    assert {b"INBOX", b"Sent", b"Drafts", b"Trash", b"Junk", b"Archive"} <= names
    sent = [d for d in data if d.endswith(b'"Sent"')][0]
    assert b"\\Sent" in sent
    assert c.create("Lists.pg")[0] == "OK"
    assert c.create("Lists.pg")[0] == "NO"
    typ, data = c.list('""', "Lists.%")
    assert data == [b'(\\HasNoChildren) "." Lists.pg'] or data == [b'(\\HasNoChildren) "." "Lists.pg"']
    typ, data = c.list('""', "%")
    lists = [d for d in data if d.endswith(b'Lists"') or d.endswith(b" Lists")]
    assert lists and b"\\Noselect" in lists[0] and b"\\HasChildren" in lists[0]
    # imaplib sends arguments as they are: quote them here.
    for bad in ('"../x"', '"a..b"', '"/etc"', '".hidden"', '"x\\\\y"', '"~x"', '"a.&Jjo"'):
        assert c.create(bad)[0] == "NO", bad
    typ, data = c.list('""', '""')
    assert data == [b'(\\Noselect) "." ""']
    c.logout()


def test_select_counts_and_status(inst):
    deliver(inst, 3)
    c = login(inst)
    typ, data = c.select("INBOX")
    assert typ == "OK" and data == [b"3"]
    assert c.response("UIDVALIDITY")[1][0] is not None
    assert c.response("UIDNEXT")[1] == [b"4"]
    typ, data = c.status("INBOX", "(MESSAGES UNSEEN UIDNEXT SIZE)")
    m = re.search(rb"MESSAGES (\d+) UNSEEN (\d+) UIDNEXT (\d+) SIZE (\d+)", data[0])
    assert m and m.group(1) == b"3" and m.group(2) == b"3" and m.group(3) == b"4" and int(m.group(4)) > 0
    assert c.select("Nope")[0] == "NO"
    typ, data = c.select("INBOX", readonly=True)
    assert typ == "OK" and data == [b"3"]
    c.logout()


def test_fetch_items_byte_exact(inst):
    sent = deliver(inst, 2, body="Line one.\nLine two.\n\nLast.\n")
    rows = inst.index_rows()
    c = login(inst)
    c.select("INBOX")
    for i, raw in enumerate(sent, start=1):
        typ, data = c.fetch(str(i), "(BODY.PEEK[])")
        assert typ == "OK"
        got = data[0][1]
        # What arrives is the message as sent, below the two lines delivery prepends.
        assert got.endswith(raw), (got, raw)
        assert got.startswith(b"Return-Path: <sender@client.test>\r\nDelivered-To: alice@example.test\r\n")
        head, body = got.split(b"\r\n\r\n", 1)
        typ, data = c.fetch(str(i), "(RFC822.SIZE BODY.PEEK[HEADER] BODY.PEEK[TEXT] FLAGS INTERNALDATE UID)")
        resp = data[0][0]
        assert re.search(rb"RFC822.SIZE %d\b" % len(got), resp)
        assert data[0][1] == head + b"\r\n\r\n"
        assert data[1][1] == body
        # the first session to select the mailbox has its new messages \Recent (RFC 3501 2.3.2)
        assert b"FLAGS (\\Recent)" in b"".join(x if isinstance(x, bytes) else x[0] for x in data)
        typ, data = c.fetch(str(i), "(BODY.PEEK[HEADER.FIELDS (Subject FROM)])")
        assert data[0][1] == b"From: sender@client.test\r\nSubject: test %d\r\n\r\n" % (i - 1)
        typ, data = c.fetch(str(i), "(BODY.PEEK[HEADER.FIELDS.NOT (Subject From Return-Path Delivered-To "
                                    "Received To Message-ID)])")
        assert b"Subject" not in data[0][1] and b"Content-Type" in data[0][1]
        typ, data = c.fetch(str(i), "(BODY.PEEK[]<5.10>)")
        assert data[0][1] == got[5:15] and b"BODY[]<5>" in data[0][0]
        typ, data = c.fetch(str(i), "(RFC822.HEADER)")
        assert data[0][1] == head + b"\r\n\r\n"
    typ, data = c.uid("FETCH", "1:*", "(FLAGS)")
    assert typ == "OK" and len(data) == 2 and b"UID 1" in data[0] and b"UID 2" in data[1]
    with pytest.raises(imaplib.IMAP4.error, match="Invalid message sequence"):
        c.fetch("1:4294967295", "(UID)")
    typ, data = c.uid("FETCH", "1:4294967295", "(UID)")
    assert typ == "OK" and len(data) == 2
    typ, data = c.uid("FETCH", "*:1", "(UID)")
    assert typ == "OK" and len(data) == 2
    c.logout()


def test_fetch_large_message_streamed(inst):
    body = "".join(f"line {i:06d} " + "x" * 60 + "\n" for i in range(40000))   # ~2.8 MB
    sent = deliver(inst, 1, body=body)
    c = login(inst)
    c.select("INBOX")
    typ, data = c.fetch("1", "(BODY.PEEK[])")
    assert data[0][1].endswith(sent[0])
    c.logout()


def test_curl_fetch(inst):
    sent = deliver(inst, 1)
    out = subprocess.run(["curl", "-s", "--max-time", "20",
                          f"imap://127.0.0.1:{inst.ports['imap']}/INBOX;UID=1",
                          "-u", f"{ALICE}:{PASSWORDS[ALICE]}"], capture_output=True, check=True).stdout
    assert out.endswith(sent[0])


def test_idle_sees_delivery_within_one_second(inst):
    deliver(inst, 1)
    c = login(inst)
    c.select("INBOX")
    tag = c._new_tag()
    c.send(tag + b" IDLE\r\n")
    assert c.readline().startswith(b"+")
    send_mail(inst.ports["smtp"], msg=make_message(subject="while idle"))
    t0 = time.monotonic()
    c.sock.settimeout(10)
    line = c.readline()
    assert line == b"* 2 EXISTS\r\n", line
    # From the SMTP reply to the untagged EXISTS; the delivery itself is queued's.
    assert time.monotonic() - t0 < 1.5
    assert c.readline() == b"* 2 RECENT\r\n"
    c.send(b"DONE\r\n")
    assert c.readline().startswith(tag + b" OK")
    c.logout()


def test_two_sessions_see_each_other(inst):
    deliver(inst, 2)
    a = login(inst)
    b = login(inst)
    a.select("INBOX")
    b.select("INBOX")
    deliver(inst, 1)
    # The file is in new/ a moment before its index row commits: NOOP until the row is there.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        a.noop()
        if a.untagged_responses.get("EXISTS", [b""])[-1] == b"3":
            break
        time.sleep(0.05)
    assert a.untagged_responses.get("EXISTS")[-1] == b"3"
    typ, data = b.fetch("1:*", "(UID)")
    assert len(data) == 2 or len(data) == 3
    b.noop()
    a.logout()
    b.logout()


def test_bad_input(inst):
    r = Raw(inst.ports["imap"])
    # A synchronising literal over the pre-login limit: refused before a byte is sent.
    r.send(b"a LOGIN {999999999}\r\n")
    assert r.line().startswith(b"a NO [TOOBIG]")
    r.send(b"b LOGIN {4294967296}\r\n")
    assert r.line().startswith(b"b BAD")
    r.send(b"c LOGIN {-1}\r\n")
    assert r.line().startswith(b"c BAD")
    r.send(b'd LOGIN "al\x00ice" x\r\n')
    assert r.line().startswith(b"d BAD")
    r.send(b"e ID " + b"(" * 100 + b")" * 100 + b"\r\n")
    assert r.line().startswith(b"e BAD")
    r.send(b"f NOOP\r\n")
    assert r.line().startswith(b"f OK")
    # A literal within the limit, synchronising: "+" first.
    r.send(b"g LOGIN {18}\r\n")
    assert r.line().startswith(b"+ ")
    r.send(ALICE.encode() + b" {%d+}\r\n" % len(PASSWORDS[ALICE]) + PASSWORDS[ALICE].encode() + b"\r\n")
    assert r.until_tagged(b"g")[-1].startswith(b"g OK")
    r.send(b"h SELECT INBOX\r\n")
    r.until_tagged(b"h")
    r.send(b"i FETCH 1:4294967295 (UID)\r\ni2 UID FETCH 1:4294967295 (UID)\r\n")
    assert r.until_tagged(b"i")[-1].startswith(b"i ")
    assert r.until_tagged(b"i2")[-1].startswith(b"i2 OK")
    # A non-synchronising literal over the limit ends the session (nothing to resynchronise on).
    r2 = Raw(inst.ports["imap"])
    r2.send(b"a LOGIN {99999999+}\r\n")
    assert r2.line().startswith(b"* BYE")
    assert r2.closed()
    # The daemon goes on.
    c = login(inst)
    c.logout()


def test_store_expunge_and_seen(inst):
    deliver(inst, 4)
    c = login(inst)
    c.select("INBOX")
    typ, data = c.store("1:2", "+FLAGS", r"(\Flagged $Label1)")
    assert typ == "OK"
    assert any(b"FLAGS (\\Recent \\Flagged $Label1)" in d for d in data), data
    typ, data = c.fetch("1", "(FLAGS)")
    assert b"\\Flagged" in data[0] and b"$Label1" in data[0]
    typ, data = c.uid("STORE", "2", "-FLAGS.SILENT", r"(\Flagged)")
    assert typ == "OK" and data == [None]
    # A non-PEEK body fetch sets \Seen, and the answer carries FLAGS.
    typ, data = c.fetch("3", "(BODY[TEXT])")
    assert b"\\Seen" in b"".join(d if isinstance(d, bytes) else d[0] for d in data), data
    typ, data = c.fetch("3", "(FLAGS)")
    assert b"\\Seen" in data[0]
    typ, data = c.store("2,4", "+FLAGS", r"(\Deleted)")
    typ, data = c.expunge()
    assert typ == "OK" and data == [b"2", b"3"], data     # 2 goes, then 4 is 3
    typ, data = c.fetch("1:*", "(UID)")
    assert [re.search(rb"UID (\d+)", d).group(1) for d in data] == [b"1", b"3"]
    # UID EXPUNGE only takes the named ones.
    c.store("1:2", "+FLAGS", r"(\Deleted)")
    typ, data = c.uid("EXPUNGE", "3")
    assert typ == "OK"
    typ, data = c.fetch("1:*", "(UID)")
    assert len(data) == 1 and b"UID 1" in data[0]
    # CLOSE expunges silently.
    assert c.close()[0] == "OK"
    c.select("INBOX")
    assert c.response("EXISTS")[1] == [b"0"]
    deliver(inst, 1)
    c.select("INBOX", readonly=True)
    typ, data = c.store("1", "+FLAGS", r"(\Seen)")
    assert typ == "NO" and b"READ-ONLY" in data[0]
    c.logout()


def test_copy_move_uidplus(inst):
    deliver(inst, 3)
    c = login(inst)
    assert "UIDPLUS" in c.capabilities and "MOVE" in c.capabilities
    c.select("INBOX")
    typ, data = c.copy("1:2", "Archive")
    assert typ == "OK"
    typ, data = c.uid("COPY", "3", "Nope")
    assert typ == "NO" and b"TRYCREATE" in data[0]
    tag = c._command("UID", "MOVE", "1", "Trash")
    typ, data = c._command_complete("MOVE", tag)
    assert typ == "OK"
    assert c.untagged_responses.get("EXPUNGE") == [b"1"]
    typ, data = c.status("Archive", "(MESSAGES)")
    assert b"MESSAGES 2" in data[0]
    typ, data = c.status("Trash", "(MESSAGES)")
    assert b"MESSAGES 1" in data[0]
    c.select("Trash")
    typ, data = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert data[0][1] == b"Subject: test 0\r\n\r\n"
    c.logout()


def test_delete_rename_subscribe(inst):
    c = login(inst)
    assert c.create("Work")[0] == "OK"
    assert c.create("Work.Reports")[0] == "OK"
    assert c.rename("Work", "Job")[0] == "OK"
    typ, data = c.list('""', "Job*")
    names = sorted(d.split(b' "." ')[1].strip(b'"') for d in data)
    assert names == [b"Job", b"Job.Reports"], data
    assert c.subscribe("Job.Reports")[0] == "OK"
    typ, data = c.lsub('""', "*")
    assert any(d.endswith(b"Job.Reports") or d.endswith(b'"Job.Reports"') for d in data), data
    assert c.unsubscribe("Job.Reports")[0] == "OK"
    typ, data = c.lsub('""', "Job*")
    assert data == [None]
    assert c.delete("Job.Reports")[0] == "OK"
    assert c.delete("Job.Reports")[0] == "NO"
    assert c.delete("INBOX")[0] == "NO"
    c.logout()


MULTIPART = (b"From: Ann <ann@client.test>\r\nTo: alice@example.test\r\nSubject: parts\r\n"
             b"Date: Fri, 27 Nov 2026 01:02:03 +0000\r\nMessage-ID: <parts@client.test>\r\n"
             b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
             b"preamble\r\n--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nfirst part\r\n"
             b"--b1\r\nContent-Type: text/html\r\n\r\n<p>second</p>\r\n--b1--\r\n")


def test_envelope_bodystructure_parts(inst):
    send_mail(inst.ports["smtp"], msg=MULTIPART)
    inst.wait_for(lambda: len(inst.index_rows()) >= 1, what="the message's row")
    c = login(inst)
    c.select("INBOX")
    typ, data = c.fetch("1", "(ENVELOPE)")
    assert b'"parts"' in data[0] and b'"ann" NIL "ann" "client.test"' in data[0].replace(b'"Ann"', b'"ann"')
    typ, data = c.fetch("1", "(BODYSTRUCTURE)")
    assert b'"mixed"' in data[0].lower() and b'"plain"' in data[0].lower() and b'"html"' in data[0].lower()
    typ, data = c.fetch("1", "(BODY.PEEK[1] BODY.PEEK[2] BODY.PEEK[2.MIME] BODY.PEEK[3])")
    flat = [d for d in data if isinstance(d, tuple)]
    assert flat[0][1] == b"first part"
    assert flat[1][1] == b"<p>second</p>"
    assert flat[2][1] == b"Content-Type: text/html\r\n\r\n"
    assert b"BODY[3] NIL" in b"".join(d if isinstance(d, bytes) else d[0] for d in data)
    typ, data = c.fetch("1", "ALL")
    assert typ == "OK" and b"ENVELOPE" in data[0]
    c.logout()


@pytest.mark.postern_config({"smtpd": {"max_message_size": "200K"}})
def test_append(inst):
    c = login(inst)
    caps = c.capability()[1][0].decode()
    assert "APPENDLIMIT=204800" in caps
    msg = MULTIPART
    typ, data = c.append("Drafts", r"(\Draft \Seen)", '"27-Nov-2026 01:02:03 +0100"', msg)
    assert typ == "OK" and b"APPENDUID" in data[0]
    uidv, uid = re.search(rb"APPENDUID (\d+) (\d+)", data[0]).groups()
    c.select("Drafts")
    typ, data = c.uid("FETCH", uid.decode(), "(FLAGS INTERNALDATE BODY.PEEK[] BODY.PEEK[1])")
    flat = [d for d in data if isinstance(d, tuple)]
    assert flat[0][1] == msg
    assert flat[1][1] == b"first part"
    head = b"".join(d if isinstance(d, bytes) else d[0] for d in data)
    assert b"\\Draft" in head and b"\\Seen" in head and b'"27-Nov-2026 00:02:03 +0000"' in head
    assert c.append("Nope", None, None, msg)[0] == "NO"
    c.logout()
    # LITERAL+, and a message over APPENDLIMIT refused from its announced length.
    r = Raw(inst.ports["imap"])
    r.send(b"a LOGIN alice@example.test " + PASSWORDS[ALICE].encode() + b"\r\n")
    r.until_tagged(b"a")
    r.send(b"b APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
    assert r.until_tagged(b"b")[-1].startswith(b"b OK [APPENDUID")
    r.send(b"c APPEND INBOX {300000}\r\n")
    assert r.line().startswith(b"c NO [TOOBIG]")
    r.send(b"d NOOP\r\n")
    assert r.until_tagged(b"d")[-1].startswith(b"d OK")


def test_mailbox_names_utf7_and_utf8_accept(inst):
    c = login(inst)
    assert "UTF8=ACCEPT" in c.capabilities or "UTF8=ACCEPT" in c.capability()[1][0].decode()
    assert c.create("Caf&AOk-")[0] == "OK"
    typ, data = c.list('""', "Caf*")
    assert data == [b'(\\HasNoChildren) "." Caf&AOk-'] or data == [b'(\\HasNoChildren) "." "Caf&AOk-"'], data
    assert c.select("Caf&AOk-")[0] == "OK"
    # The store names it in UTF-8: the folder on disk is the UTF-8 name, as the index has it.
    assert (inst.maildir() / ".Caf\u00e9").is_dir()
    typ, data = c.status("Caf&AOk-", "(MESSAGES)")
    assert b"Caf&AOk-" in data[0]
    assert c.create('"Caf&AOk"')[0] == "NO"        # no closing '-'
    assert c.create('"x&AGE-"')[0] == "NO"         # base64 for plain ASCII: not allowed
    c.logout()
    r = Raw(inst.ports["imap"])
    r.send(b"a LOGIN alice@example.test " + PASSWORDS[ALICE].encode() + b"\r\n")
    r.until_tagged(b"a")
    r.send(b"b ENABLE UTF8=ACCEPT\r\n")
    lines = r.until_tagged(b"b")
    assert b"* ENABLED UTF8=ACCEPT" in lines
    r.send(b'c LIST "" "Caf*"\r\n')
    lines = r.until_tagged(b"c")
    assert b'* LIST (\\HasNoChildren) "." "Caf\xc3\xa9"' in lines, lines
    r.send(b'd CREATE "\xe2\x82\xac uro"\r\n')
    assert r.until_tagged(b"d")[-1].startswith(b"d OK")


def test_two_sessions_flags_and_expunge(inst):
    deliver(inst, 3)
    a = login(inst)
    b = login(inst)
    a.select("INBOX")
    b.select("INBOX")
    a.store("2", "+FLAGS", r"(\Deleted \Flagged)")
    a.expunge()
    # b is told at its next command; during a FETCH the expunge must wait (RFC 3501 7.4.1).
    # Message 2 keeps its number; its data is gone, so it is left out (RFC 2180 4.1.3).
    typ, data = b.fetch("1:3", "(UID)")
    assert typ == "OK" and [d.split(b" ")[0] for d in data] == [b"1", b"3"]
    assert "EXPUNGE" not in b.untagged_responses
    typ, data = b.noop()
    assert b.untagged_responses.get("EXPUNGE") == [b"2"]
    typ, data = b.fetch("1:*", "(UID)")
    assert [re.search(rb"UID (\d+)", d).group(1) for d in data] == [b"1", b"3"]
    # A flag change shows as an untagged FETCH in the other session.
    a.store("1", "+FLAGS", r"(\Answered)")
    b.noop()
    fetches = b.untagged_responses.get("FETCH", [])
    assert any(b"\\Answered" in f for f in fetches), fetches
    a.logout()
    b.logout()


def test_list_extended_and_status(inst):
    deliver(inst, 2)
    r = Raw(inst.ports["imap"])
    r.send(b"a LOGIN alice@example.test " + PASSWORDS[ALICE].encode() + b"\r\n")
    caps = b" ".join(r.until_tagged(b"a"))
    assert b"LIST-EXTENDED" in caps and b"LIST-STATUS" in caps
    r.send(b"b CREATE Lists.pg\r\nc SUBSCRIBE Lists.pg\r\nd SUBSCRIBE Gone\r\n")
    r.until_tagged(b"d")
    r.send(b'e LIST (SPECIAL-USE) "" "*"\r\n')
    lines = r.until_tagged(b"e")
    assert len(lines) == 6 and all(b"\\Sent" in l or b"\\Drafts" in l or b"\\Trash" in l or b"\\Junk" in l
                                   or b"\\Archive" in l for l in lines[:-1]), lines
    r.send(b'f LIST (SUBSCRIBED) "" "*"\r\n')
    lines = r.until_tagged(b"f")
    assert b'* LIST (\\HasNoChildren \\Subscribed) "." "Lists.pg"' in lines, lines
    assert b'* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "." "Gone"' in lines, lines
    r.send(b'g LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"\r\n')
    lines = r.until_tagged(b"g")
    assert b'* LIST (\\Noselect \\HasChildren) "." "Lists" ("CHILDINFO" ("SUBSCRIBED"))' in lines, lines
    r.send(b'h LIST "" ("INBOX" "Sent") RETURN (STATUS (MESSAGES UNSEEN SIZE) SPECIAL-USE)\r\n')
    lines = r.until_tagged(b"h")
    assert lines[0] == b'* LIST (\\HasNoChildren) "." "INBOX"', lines
    assert re.match(rb'\* STATUS "INBOX" \(MESSAGES 2 UNSEEN 2 SIZE \d+\)', lines[1]), lines
    assert lines[2] == b'* LIST (\\HasNoChildren \\Sent) "." "Sent"' and lines[3].startswith(b'* STATUS "Sent"')
    r.send(b'i LIST (RECURSIVEMATCH) "" "*"\r\nj LIST (BOGUS) "" "*"\r\n')
    assert r.until_tagged(b"i")[-1].startswith(b"i BAD")
    assert r.until_tagged(b"j")[-1].startswith(b"j BAD")


@pytest.mark.postern_config({"imapd": {"hierarchy_separator": "/"}})
def test_slash_separator(inst):
    c = login(inst)
    typ, data = c.list('""', '""')
    assert data == [b'(\\Noselect) "/" ""']
    assert c.create("Lists/pg")[0] == "OK"
    assert (inst.maildir() / ".Lists.pg").is_dir()     # stored the Maildir++ way all the same
    typ, data = c.list('""', "Lists/%")
    assert data == [b'(\\HasNoChildren) "/" "Lists/pg"'], data
    assert c.create('"a.b"')[0] == "NO"
    assert c.select("Lists/pg")[0] == "OK"
    assert c.rename("Lists/pg", "Lists/sql")[0] == "OK"
    typ, data = c.status("Lists/sql", "(MESSAGES)")
    assert data[0] == b'"Lists/sql" (MESSAGES 0)'
    c.logout()


def test_search_sort_thread(inst):
    sent = []
    for i, (subj, body) in enumerate([("apple pie", "crust and apples"), ("Re: apple pie", "more apples"),
                                      ("banana", "yellow fruit")]):
        msg = make_message(subject=subj, body=body + "\n")
        if i == 1:
            msg["In-Reply-To"] = first_id
            msg["References"] = first_id
        if i == 0:
            first_id = msg["Message-ID"]
        send_mail(inst.ports["smtp"], msg=msg.as_bytes(policy=email.policy.SMTP))
    inst.wait_for(lambda: len(inst.index_rows()) >= 3, what="3 index rows")
    c = login(inst)
    caps = c.capability()[1][0].decode()
    assert "ESEARCH" in caps and "SORT" in caps and "THREAD=REFERENCES" in caps
    c.select("INBOX")
    c.store("3", "+FLAGS", r"(\Flagged)")
    assert c.search(None, "SUBJECT", '"apple"') == ("OK", [b"1 2"])
    assert c.search(None, "FLAGGED") == ("OK", [b"3"])
    assert c.search(None, "NOT", "FLAGGED", "BODY", "apples") == ("OK", [b"1 2"])
    assert c.search("UTF-8", "TEXT", "yellow") == ("OK", [b"3"])
    assert c.uid("SEARCH", "OR", "FLAGGED", "SUBJECT", "banana") == ("OK", [b"3"])
    typ, data = c.search("KOI8-R", "ALL")
    assert typ == "NO" and b"BADCHARSET" in data[0]
    typ, data = c._simple_command("SEARCH", "RETURN", "(MIN MAX COUNT)", "ALL")
    assert typ == "OK" and c.untagged_responses.pop("ESEARCH")[0].endswith(b"MIN 1 MAX 3 COUNT 3")
    typ, data = c.sort("(REVERSE SUBJECT)", "UTF-8", "ALL")
    assert typ == "OK" and data == [b"3 1 2"], data   # equal base subjects keep their order (RFC 5256)
    typ, data = c.thread("REFERENCES", "UTF-8", "ALL")
    assert typ == "OK" and data == [b"(1 2)(3)"], data
    typ, data = c.uid("THREAD", "ORDEREDSUBJECT", "UTF-8", "ALL")
    assert typ == "OK" and data[0].startswith(b"(")
    with pytest.raises(imaplib.IMAP4.error):
        c.search(None, "(" * 50 + "ALL" + ")" * 50)
    c.logout()


def test_quota(inst):
    inst.tool("user", "add", "carol@example.test", "--password-stdin", "--quota", "20K", input="carol-pass-999\n")
    c = imaplib.IMAP4("127.0.0.1", inst.ports["imap"], timeout=15)
    c.login("carol@example.test", "carol-pass-999")
    assert "QUOTA" in c.capability()[1][0].decode().split()
    typ, data = c.getquotaroot("INBOX")
    assert typ == "OK" and data == [[b'"INBOX" ""'], [b'"" (STORAGE 0 20)']], data
    msg = b"Subject: big\r\n\r\n" + b"x" * 12000 + b"\r\n"
    assert c.append("INBOX", None, None, msg)[0] == "OK"
    typ, data = c.getquota('""')
    assert data == [b'"" (STORAGE 12 20)'], data
    typ, data = c.append("INBOX", None, None, msg)
    assert typ == "NO" and b"OVERQUOTA" in data[0]
    assert c.setquota('""', "(STORAGE 100)")[0] == "NO"
    c.logout()
    # A user without a limit has no quota root.
    a = login(inst)
    typ, data = a.getquotaroot("INBOX")
    assert typ == "OK" and data[0] == [b'"INBOX"'], data
    a.logout()


def test_condstore(inst):
    deliver(inst, 3)
    r = Raw(inst.ports["imap"])
    r.send(b"a LOGIN alice@example.test " + PASSWORDS[ALICE].encode() + b"\r\n")
    assert b"CONDSTORE" in b" ".join(r.until_tagged(b"a"))
    r.send(b"b SELECT INBOX (CONDSTORE)\r\n")
    lines = r.until_tagged(b"b")
    hms = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"\n".join(lines)).group(1))
    r.send(b"c FETCH 1:* (UID MODSEQ)\r\n")
    lines = r.until_tagged(b"c")
    mods = [int(m) for m in re.findall(rb"MODSEQ \((\d+)\)", b"\n".join(lines))]
    assert len(mods) == 3 and max(mods) <= hms
    r.send(b"d STORE 2 +FLAGS (\\Flagged)\r\n")
    lines = r.until_tagged(b"d")
    new = int(re.search(rb"\* 2 FETCH \(FLAGS \(\\Recent \\Flagged\) MODSEQ \((\d+)\)\)", b"\n".join(lines)).group(1))
    assert new > hms
    r.send(b"e FETCH 1:* (FLAGS) (CHANGEDSINCE %d)\r\n" % hms)
    lines = r.until_tagged(b"e")
    assert [l for l in lines if l.startswith(b"* ")] == [b"* 2 FETCH (FLAGS (\\Recent \\Flagged) MODSEQ (%d))" % new], lines
    # UNCHANGEDSINCE below the message's MODSEQ: not changed, reported as MODIFIED.
    r.send(b"f STORE 2,3 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)\r\n" % hms)
    lines = r.until_tagged(b"f")
    assert lines[-1].startswith(b"f OK [MODIFIED 2]"), lines
    assert any(l.startswith(b"* 3 FETCH (FLAGS (\\Recent \\Seen) MODSEQ (") for l in lines), lines
    # UNCHANGEDSINCE 0 fails every message (RFC 7162 3.1.3): nothing changes.
    r.send(b"f2 STORE 1 (UNCHANGEDSINCE 0) +FLAGS (\\Answered)\r\n")
    lines = r.until_tagged(b"f2")
    assert lines[-1].startswith(b"f2 OK [MODIFIED 1]"), lines
    assert not any(b"Answered" in l for l in lines), lines
    r.send(b"g STATUS INBOX (HIGHESTMODSEQ)\r\n")
    lines = r.until_tagged(b"g")
    assert int(re.search(rb"HIGHESTMODSEQ (\d+)", lines[0]).group(1)) > new
    r.send(b"h UID SEARCH MODSEQ %d\r\n" % new)
    lines = r.until_tagged(b"h")
    assert re.match(rb"\* SEARCH 2 3 \(MODSEQ \d+\)", lines[0]), lines


def test_small_commands_and_states(inst):
    r = Raw(inst.ports["imap"])
    r.send(b"a NOOP\r\nb SELECT INBOX\r\nc FOO\r\nd ID NIL\r\n")
    assert r.until_tagged(b"a")[-1].startswith(b"a OK")
    assert r.until_tagged(b"b")[-1] == b"b BAD Log in first"
    assert r.until_tagged(b"c")[-1] == b"c BAD Unknown command"
    lines = r.until_tagged(b"d")
    assert lines[0].startswith(b'* ID ("name" "Postern"') and lines[-1].startswith(b"d OK")
    r.send(b"e LOGIN alice@example.test " + PASSWORDS[ALICE].encode() + b"\r\n")
    r.until_tagged(b"e")
    r.send(b'f NAMESPACE\r\ng ID ("name" "test" "version" "1")\r\nh FETCH 1 FLAGS\r\ni SELECT INBOX\r\n')
    assert r.until_tagged(b"f")[0] == b'* NAMESPACE (("" ".")) NIL NIL'
    assert r.until_tagged(b"g")[-1].startswith(b"g OK")
    assert r.until_tagged(b"h")[-1] == b"h BAD No mailbox selected"
    assert r.until_tagged(b"i")[-1].startswith(b"i OK [READ-WRITE]")
    r.send(b"j CHECK\r\nk UNSELECT\r\nl CHECK\r\nm ENABLE FOO\r\n")
    assert r.until_tagged(b"j")[-1].startswith(b"j OK")
    assert r.until_tagged(b"k")[-1].startswith(b"k OK")
    assert r.until_tagged(b"l")[-1].startswith(b"l BAD")
    assert r.until_tagged(b"m")[:2] == [b"* ENABLED", b"m OK ENABLE completed"]
    r.send(b"n LOGOUT\r\n")
    lines = r.until_tagged(b"n")
    assert lines == [b"* BYE Logging out", b"n OK LOGOUT completed"]
    assert r.closed()
    # Before login a line is at most 8 KiB: a longer one ends the session.
    r = Raw(inst.ports["imap"])
    r.send(b"a LOGIN " + b"x" * 9000 + b"\r\n")
    assert r.line().startswith(b"* BYE [TOOBIG]")
    assert r.closed()
    assert re.search(r"input refused from \[127\.0\.0\.1\]: command line too long", inst.log())


def test_idle_sees_other_sessions_changes(inst):
    deliver(inst, 3)
    a = login(inst)
    b = login(inst)
    a.select("INBOX")
    b.select("INBOX")
    tag = a._new_tag()
    a.send(tag + b" IDLE\r\n")
    assert a.readline().startswith(b"+")
    a.sock.settimeout(5)
    b.store("2", "+FLAGS", r"(\Flagged)")
    # a selected first: the three are \Recent to it (RFC 3501 2.3.2), and stay so in its FETCH responses
    assert a.readline() == b"* 2 FETCH (FLAGS (\\Recent \\Flagged))\r\n"
    b.store("1", "+FLAGS", r"(\Deleted)")
    assert a.readline() == b"* 1 FETCH (FLAGS (\\Recent \\Deleted))\r\n"
    b.expunge()
    assert a.readline() == b"* 1 EXPUNGE\r\n"
    assert a.readline() == b"* 2 EXISTS\r\n"
    assert a.readline() == b"* 2 RECENT\r\n"
    b.append("INBOX", None, None, MULTIPART)
    assert a.readline() == b"* 3 EXISTS\r\n"
    # \Recent goes to the session told of the message first: a, idling, when b runs in the same imapd
    # process (told before b's APPEND completes); b itself when they run in two of imapd's worker
    # processes ([imapd] processes), where a hears of it through the master after b's own sync.
    assert a.readline() in (b"* 3 RECENT\r\n", b"* 2 RECENT\r\n")
    a.send(b"DONE\r\n")
    assert a.readline().startswith(tag + b" OK")
    a.logout()
    b.logout()


def test_idle_sees_expunges_and_stores_exactly(inst):
    """One session idles while another flags, expunges two at once and flags again: each untagged reply exactly."""
    deliver(inst, 5)
    a = login(inst)
    b = login(inst)
    a.select("INBOX")            # first: all five are \Recent to a
    b.select("INBOX")
    tag = a._new_tag()
    a.send(tag + b" IDLE\r\n")
    assert a.readline().startswith(b"+")
    a.sock.settimeout(5)
    b.store("2,4", "+FLAGS", r"(\Deleted)")
    assert a.readline() == b"* 2 FETCH (FLAGS (\\Recent \\Deleted))\r\n"
    assert a.readline() == b"* 4 FETCH (FLAGS (\\Recent \\Deleted))\r\n"
    b.expunge()
    # two EXPUNGEs, each numbered as the mailbox is after the one before (RFC 3501 7.4.1)
    assert a.readline() == b"* 2 EXPUNGE\r\n"
    assert a.readline() == b"* 3 EXPUNGE\r\n"
    assert a.readline() == b"* 3 EXISTS\r\n"
    assert a.readline() == b"* 3 RECENT\r\n"
    b.store("3", "+FLAGS", r"(\Seen $Forwarded)")   # UID 5, number 3 now in both sessions
    assert a.readline() == b"* 3 FETCH (FLAGS (\\Recent \\Seen $Forwarded))\r\n"
    b.store("1", "+FLAGS", r"(\Deleted)")
    assert a.readline() == b"* 1 FETCH (FLAGS (\\Recent \\Deleted))\r\n"
    b.expunge()
    assert a.readline() == b"* 1 EXPUNGE\r\n"
    assert a.readline() == b"* 2 EXISTS\r\n"
    assert a.readline() == b"* 2 RECENT\r\n"
    a.send(b"DONE\r\n")
    assert a.readline().startswith(tag + b" OK")
    typ, data = a.fetch("1:*", "(UID FLAGS)")
    assert typ == "OK" and data == [b"1 (UID 3 FLAGS (\\Recent))", b"2 (UID 5 FLAGS (\\Recent \\Seen $Forwarded))"], data
    a.logout()
    b.logout()


def test_qresync(inst):
    deliver(inst, 4)
    r = Raw(inst.ports["imap"])
    r.send(b"a LOGIN alice@example.test " + PASSWORDS[ALICE].encode() + b"\r\n")
    assert b"QRESYNC" in b" ".join(r.until_tagged(b"a"))
    r.send(b"b ENABLE QRESYNC\r\n")
    assert r.until_tagged(b"b")[0] == b"* ENABLED CONDSTORE QRESYNC"
    r.send(b"c SELECT INBOX\r\n")
    lines = b"\n".join(r.until_tagged(b"c"))
    uidv = int(re.search(rb"UIDVALIDITY (\d+)", lines).group(1))
    hms = int(re.search(rb"HIGHESTMODSEQ (\d+)", lines).group(1))
    # Another session expunges 2 and flags 3; this one is told with VANISHED, never EXPUNGE.
    o = login(inst)
    o.select("INBOX")
    o.store("2", "+FLAGS", r"(\Deleted)")
    o.expunge()
    o.store("2", "+FLAGS", r"(\Flagged)")    # message UID 3 is now number 2
    r.send(b"d NOOP\r\n")
    lines = r.until_tagged(b"d")
    assert lines[0] == b"* VANISHED 2", lines
    assert re.match(rb"\* 2 FETCH \(UID 3 FLAGS \(\\Recent \\Flagged\) MODSEQ \(\d+\)\)", lines[1]), lines
    assert not any(b"EXPUNGE" in l for l in lines)
    # A client coming back with what it knew: what vanished and what changed since.
    r.send(b"e UNSELECT\r\nf SELECT INBOX (QRESYNC (%d %d 1:4))\r\n" % (uidv, hms))
    r.until_tagged(b"e")
    lines = r.until_tagged(b"f")
    assert b"* VANISHED (EARLIER) 2" in lines, lines
    assert any(re.match(rb"\* 2 FETCH \(UID 3 FLAGS \(\\Flagged\) MODSEQ", l) for l in lines), lines
    r.send(b"g UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)\r\n" % hms)
    lines = r.until_tagged(b"g")
    assert lines[0] == b"* VANISHED (EARLIER) 2", lines
    assert [l for l in lines if b"FETCH (" in l] == [l for l in lines if b"UID 3" in l], lines
    r.send(b"h FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n")
    assert r.until_tagged(b"h")[-1].startswith(b"h BAD")
    o.logout()
