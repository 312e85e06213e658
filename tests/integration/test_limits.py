"""
Limits a sending client runs into: size, recipients, line length, errors,
free space in the queue's file system.
"""
import os
import re
import subprocess
import tempfile

import pytest

from harness import QID_RE, needs_root
from mailtest import RawSMTP, make_message, send_mail


def begin(c, sender="sender@client.test"):
    c.greeting()
    c.ehlo()
    code, lines = c.cmd(f"MAIL FROM:<{sender}>")
    return code, lines


@pytest.mark.postern_config({"smtpd": {"max_message_size": "10K"}})
def test_message_too_big_552(inst):
    with RawSMTP(inst.ports["smtp"]) as c:
        assert begin(c)[0] == 250
        assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        body = b"Subject: big\r\n\r\n" + (b"x" * 76 + b"\r\n") * 400   # about 31 KB
        c.send(body + b".\r\n")
        code, lines = c.reply()
        assert code == 552 and lines[-1].startswith("552 5.3.4"), lines
        assert c.cmd("QUIT")[0] == 221
    assert not re.search(rf"{QID_RE}: accepted", inst.log())
    assert inst.new_files("alice") == []


@pytest.mark.postern_config({"smtpd": {"max_message_size": "10K"}})
def test_size_parameter_above_limit_552(inst):
    with RawSMTP(inst.ports["smtp"]) as c:
        c.greeting()
        caps = c.ehlo()
        assert "SIZE 10240" in caps, caps
        code, lines = c.cmd("MAIL FROM:<sender@client.test> SIZE=20000")
        assert code == 552 and lines[-1].startswith("552 5.3.4"), lines


@pytest.mark.postern_config({"smtpd": {"max_recipients": "3"}})
def test_too_many_recipients_452(inst):
    with RawSMTP(inst.ports["smtp"]) as c:
        assert begin(c)[0] == 250
        for rcpt in ("alice@example.test", "bob@example.test", "alice+a@example.test"):
            assert c.cmd(f"RCPT TO:<{rcpt}>")[0] == 250
        code, lines = c.cmd("RCPT TO:<alice+b@example.test>")
        assert code == 452 and lines[-1].startswith("452 4.5.3"), lines
        # The transaction goes on with the three accepted recipients.
        assert c.cmd("DATA")[0] == 354
        c.send(b"Subject: three\r\n\r\nhi\r\n.\r\n")
        assert c.reply()[0] == 250
    inst.wait_new(2, "alice")
    inst.wait_new(1, "bob")


def test_line_too_long_500(inst):
    with RawSMTP(inst.ports["smtp"]) as c:
        c.greeting()
        c.ehlo()
        # RFC 5321 requires 512 octets; no server needs to take 10000.
        code, lines = c.cmd("NOOP " + "x" * 10000)
        assert code == 500 and lines[-1].startswith("500 5.5.2"), lines
        # The session goes on.
        assert c.cmd("NOOP")[0] == 250


@pytest.mark.postern_config({"smtpd": {"max_errors": "3"}})
def test_too_many_errors_421(inst):
    with RawSMTP(inst.ports["smtp"]) as c:
        c.greeting()
        codes = []
        for _ in range(10):
            try:
                code, lines = c.cmd("BOGUS command")
            except (EOFError, ConnectionError):
                break
            codes.append(code)
            if code == 421:
                break
        assert 421 in codes, codes
        assert all(code >= 500 for code in codes[:-1]), codes
        assert len(codes) <= 4, codes
        assert c.closed_by_server()


@pytest.mark.postern_config({"queued": {"min_free_space": "1000000G"}})
def test_no_free_space_452(inst):
    with RawSMTP(inst.ports["smtp"]) as c:
        code, lines = begin(c)
        if code == 250:
            assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
            code, lines = c.cmd("DATA")
        assert code == 452 and lines[-1].startswith("452 4.3.1"), lines


@needs_root
def test_disk_full_is_refused_and_cleaned_up(make_instance):
    mnt = tempfile.mkdtemp(prefix="postern-tmpfs-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", mnt], check=True)
    try:
        inst = make_instance({"queued": {"min_free_space": "0"}}, state_dir=mnt)
        big = make_message(subject="too big for the disk", body=("y" * 76 + "\n") * 80000)   # ~6 MB
        with RawSMTP(inst.ports["smtp"], timeout=60) as c:
            assert begin(c)[0] == 250
            assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
            assert c.cmd("DATA")[0] == 354
            data = big.as_bytes().replace(b"\n", b"\r\n")
            c.send(data + b".\r\n")
            code, lines = c.reply(timeout=60)
            assert code in (451, 452), lines
        incoming = os.path.join(mnt, "queue", "incoming")

        def left():
            return os.listdir(incoming) if os.path.isdir(incoming) else []
        # The refused body goes away (queued removes it when smtpd gives up on it).
        inst.wait_for(lambda: left() == [], timeout=10, what=f"queue/incoming to be empty (has {left()})")
        # Still serving: a small message goes through.
        code, text = send_mail(inst.ports["smtp"])
        assert code == 250, text
        inst.wait_new(1, "alice")
        inst.stop()
    finally:
        subprocess.run(["umount", "-l", mnt], check=False)
        os.rmdir(mnt)
