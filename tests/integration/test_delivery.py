"""
Local delivery over the MX port: what a sender and the recipient see.

A message accepted with 250 ("queued as QID") must appear as a file in the
recipient's Maildir new/ and as a row in her index.sqlite, with Received:
(naming mx.example.test and the queue id) and Return-Path: headers, and the
log must tell its story under that queue id.
"""
import re
import subprocess

from harness import HOSTNAME, QID_RE
from mailtest import RawSMTP, header, make_message, new_msgid, qid_of, send_mail


def assert_delivered(inst, qid, msgid, sender="sender@client.test", user="alice"):
    files = inst.wait_new(1, user)
    raw = [f.read_bytes() for f in files]
    mine = [r for r in raw if msgid.encode() in r]
    assert len(mine) == 1, f"message {msgid} found {len(mine)} times in {user}'s new/"
    msg = mine[0]
    received = header(msg, "Received")
    assert received, f"no Received: header in {msg[:500]!r}"
    assert HOSTNAME in received[0] and qid in received[0], f"Received: {received[0]!r}"
    assert header(msg, "Return-Path") == [f"<{sender}>"], header(msg, "Return-Path")
    name = [f.name for f, r in zip(files, raw) if msgid.encode() in r][0]
    rows = inst.wait_for(lambda: [r for r in inst.index_rows(user) if r["file"] == f"new/{name}"],
                         what=f"the row of new/{name} in {user}'s index.sqlite")
    assert rows[0]["mailbox"] == "INBOX" and rows[0]["uid"] >= 1, rows
    inst.wait_log(rf"{qid}: accepted")
    inst.wait_log(rf"{qid}: .*status=sent")
    return msg


def test_swaks_delivery(inst):
    msgid = new_msgid()
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{inst.ports['smtp']}", "--to", "alice@example.test",
                        "--from", "sender@client.test", "--helo", "client.test",
                        "--header", f"Message-Id: {msgid}", "--header", "Subject: swaks test",
                        "--body", "Hello from swaks."],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    qid = qid_of(r.stdout)
    msg = assert_delivered(inst, qid, msgid)
    assert b"Hello from swaks." in msg
    rows = inst.index_rows("alice")
    assert len(rows) == 1, rows


def test_smtplib_delivery(inst):
    msg = make_message(subject="smtplib test", body="Hello from smtplib.\n")
    code, text = send_mail(inst.ports["smtp"], msg=msg)
    assert code == 250, text
    qid = qid_of(text)
    assert re.fullmatch(QID_RE, qid)
    assert_delivered(inst, qid, msg["Message-ID"])
    # The accepted and sent lines carry the same queue id as the 250 reply.
    accepted = re.findall(rf"({QID_RE}): accepted", inst.log())
    assert qid in accepted


def test_unknown_user_550(inst):
    with RawSMTP(inst.ports["smtp"]) as c:
        c.greeting()
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@client.test>")[0] == 250
        code, lines = c.cmd("RCPT TO:<nobody@example.test>")
        assert code == 550 and lines[-1].startswith("550 5.1.1"), lines


def test_relay_denied_554(inst):
    with RawSMTP(inst.ports["smtp"]) as c:
        c.greeting()
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@client.test>")[0] == 250
        code, lines = c.cmd("RCPT TO:<someone@elsewhere.test>")
        assert code == 554 and lines[-1].startswith("554 5.7.1"), lines
        code, lines = c.cmd("DATA")
        assert code >= 500, f"DATA with no accepted recipient: {lines}"
        c.cmd("QUIT")
    assert not re.search(rf"{QID_RE}: accepted", inst.log()), "something was queued"
    assert inst.new_files("alice") == [] and inst.new_files("bob") == []


def test_authenticated_relay_accepted(inst):
    msg = make_message(to="someone@elsewhere.test", sender="alice@example.test")
    code, text = send_mail(inst.ports["submission"], rcpts=("someone@elsewhere.test",),
                           sender="alice@example.test", msg=msg,
                           login=("alice@example.test", "alice-pass-1234"))
    assert code == 250, text
    inst.wait_log(rf"{qid_of(text)}: accepted")


def test_plus_tag_delivered_to_user(inst):
    msg = make_message(to="alice+news@example.test")
    code, text = send_mail(inst.ports["smtp"], rcpts=("alice+news@example.test",), msg=msg)
    assert code == 250, text
    files = inst.wait_new(1, "alice")
    raw = files[0].read_bytes()
    assert msg["Message-ID"].encode() in raw
    assert "alice+news@example.test" in " ".join(header(raw, "Delivered-To")), header(raw, "Delivered-To")
    assert inst.new_files("bob") == []


def test_alias_postmaster_to_alice(inst):
    inst.tool("alias", "add", "postmaster@example.test", "alice@example.test")
    msg = make_message(to="postmaster@example.test")
    code, text = send_mail(inst.ports["smtp"], rcpts=("postmaster@example.test",), msg=msg)
    assert code == 250, text
    files = inst.wait_new(1, "alice")
    assert msg["Message-ID"].encode() in files[0].read_bytes()


def test_alias_to_other_user(inst):
    inst.tool("alias", "add", "sales@example.test", "bob@example.test")
    msg = make_message(to="sales@example.test")
    code, text = send_mail(inst.ports["smtp"], rcpts=("sales@example.test",), msg=msg)
    assert code == 250, text
    files = inst.wait_new(1, "bob")
    assert msg["Message-ID"].encode() in files[0].read_bytes()
    assert inst.new_files("alice") == []


def test_two_recipients_one_transaction(inst):
    msg = make_message(to="alice@example.test, bob@example.test")
    code, text = send_mail(inst.ports["smtp"], rcpts=("alice@example.test", "bob@example.test"), msg=msg)
    assert code == 250, text
    for user in ("alice", "bob"):
        files = inst.wait_new(1, user)
        assert len(files) == 1 and msg["Message-ID"].encode() in files[0].read_bytes()


def test_many_at_once_into_one_mailbox(inst):
    """Sixty messages from ten parallel clients into one Maildir: each lands once, with its own UID.

    queued writes the files of one mailbox on several threads at once and
    gives them their UIDs in shared index transactions (queued/deliver.c):
    every file in new/ must have exactly one row, the UIDs must be 1..60
    without a gap or a repeat, and the log must say "sent" once per message.
    """
    import threading

    ids, errors = [], []
    lock = threading.Lock()

    def client(t):
        for i in range(6):
            msg = make_message(subject=f"burst {t}/{i}")
            code, text = send_mail(inst.ports["smtp"], msg=msg)
            with lock:
                (ids if code == 250 else errors).append(msg["Message-ID"] if code == 250 else text)

    threads = [threading.Thread(target=client, args=(t,)) for t in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert len(ids) == 60
    files = inst.wait_new(60, timeout=60)
    assert len(files) == 60, [f.name for f in files]
    found = [[m for m in ids if m.encode() in f.read_bytes()] for f in files]
    assert sorted(m for ms in found for m in ms) == sorted(ids), "a message is missing or doubled"
    rows = inst.wait_for(lambda: (lambda r: r if len(r) == 60 else None)(inst.index_rows()),
                         what="60 rows in alice's index.sqlite")
    assert sorted(r["uid"] for r in rows) == list(range(1, 61)), sorted(r["uid"] for r in rows)
    assert sorted(r["file"] for r in rows) == sorted(f"new/{f.name}" for f in files)
    log = inst.log()
    assert len(re.findall(r"to=<alice@example\.test>.*relay=local .*status=sent", log)) == 60
