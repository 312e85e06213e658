"""
SMTP protocol behaviour seen on the wire: PIPELINING, BDAT, the SMTP
smuggling attack (CVE-2023-51764) and STARTTLS command injection.
"""
import pytest

from mailtest import RawSMTP, header, qid_of


def test_pipelining_replies_in_order(inst):
    with RawSMTP(inst.ports["smtp"]) as c:
        c.greeting()
        caps = c.ehlo()
        assert "PIPELINING" in caps, caps
        c.send(b"MAIL FROM:<sender@client.test>\r\n"
               b"RCPT TO:<alice@example.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"DATA\r\n")
        codes = [c.reply()[0] for _ in range(4)]
        assert codes == [250, 250, 250, 354], codes
        c.send(b"Subject: pipelined\r\nMessage-ID: <pipe@client.test>\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        code, lines = c.reply()
        assert code == 250, lines
        assert c.reply()[0] == 221
    for user in ("alice", "bob"):
        files = inst.wait_new(1, user)
        assert b"<pipe@client.test>" in files[0].read_bytes()


def test_bdat_exact_bytes(inst):
    chunk1 = b"Subject: bdat test\r\n"
    chunk2 = b"\r\nHello!\r\n"
    assert len(chunk1) == 20 and len(chunk2) == 10
    with RawSMTP(inst.ports["smtp"]) as c:
        c.greeting()
        caps = c.ehlo()
        assert "CHUNKING" in caps, caps
        assert c.cmd("MAIL FROM:<sender@client.test>")[0] == 250
        assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
        c.send(b"BDAT 20\r\n" + chunk1)
        code, lines = c.reply()
        assert code == 250, lines
        c.send(b"BDAT 10 LAST\r\n" + chunk2)
        code, lines = c.reply()
        assert code == 250, lines
        qid_of(lines[-1])
    raw = inst.wait_new(1, "alice")[0].read_bytes()
    # The store keeps LF line ends; everything after the headers Postern adds is the client's bytes.
    sent = (chunk1 + chunk2).replace(b"\r\n", b"\n")
    assert raw.endswith(b"\n" + sent) and raw.count(b"Hello!") == 1, raw


SMUGGLE_SEPARATORS = {
    "lf-dot-lf": b"\n.\n",
    "crlf-dot-lf": b"\r\n.\n",
    "lf-dot-crlf": b"\n.\r\n",
}


@pytest.mark.parametrize("sep", list(SMUGGLE_SEPARATORS), ids=list(SMUGGLE_SEPARATORS))
def test_smuggling_is_one_message(inst, sep):
    with RawSMTP(inst.ports["smtp"]) as c:
        c.greeting()
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@client.test>")[0] == 250
        assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(b"Subject: outer\r\nMessage-ID: <outer@client.test>\r\n\r\nouter body"
               + SMUGGLE_SEPARATORS[sep]
               + b"MAIL FROM:<x@evil.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
               + b"Subject: smuggled\r\n\r\nsmuggled body"
               + b"\r\n.\r\n")
        code, lines = c.reply()
        # Exactly one answer to the one message, then QUIT's: the smuggled commands were data.
        assert code == 250, lines
        qid_of(lines[-1])
        code, lines = c.cmd("QUIT")
        assert code == 221, f"a reply to a smuggled command: {lines}"
    files = inst.wait_new(1, "alice")
    assert len(files) == 1
    assert b"<outer@client.test>" in files[0].read_bytes()
    # Give queued every chance to deliver a second message, then check nothing else came.
    inst.wait_log(r"status=sent")
    code_files = inst.new_files("bob")
    assert code_files == [], "bob received a smuggled message"
    assert "evil.test" not in "\n".join(ln for ln in inst.log().splitlines() if "accepted" in ln)


def test_starttls_injection_discarded(inst):
    with RawSMTP(inst.ports["smtp"]) as c:
        c.greeting()
        caps = c.ehlo()
        assert "STARTTLS" in caps, caps
        c.send(b"STARTTLS\r\nNOOP\r\n")
        code, lines = c.reply()
        assert code == 220, lines
        assert c.buf == b"", f"the server answered the injected command in plaintext: {c.buf!r}"
        c.starttls()
        assert c.nothing_pending(1.0), f"a reply arrived before the client's EHLO: {c.buf!r}"
        code, lines = c.cmd("EHLO client.test")
        assert code == 250 and len(lines) > 1 and "mx.example.test" in lines[0], lines
        # Nothing left over: the next reply belongs to the next command.
        code, lines = c.cmd("RSET")
        assert code == 250 and len(lines) == 1, lines


def test_received_and_return_path_with_null_sender(inst):
    with RawSMTP(inst.ports["smtp"]) as c:
        c.greeting()
        c.ehlo()
        assert c.cmd("MAIL FROM:<>")[0] == 250
        assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(b"Subject: bounce-like\r\n\r\nnull sender\r\n.\r\n")
        assert c.reply()[0] == 250
    raw = inst.wait_new(1, "alice")[0].read_bytes()
    assert header(raw, "Return-Path") == ["<>"], header(raw, "Return-Path")
