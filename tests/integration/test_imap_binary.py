"""
test_imap_binary.py - FETCH BINARY (RFC 3516 / RFC 9051 6.4.5) and SEARCH
on decoded text, against a real instance with imaplib (and a raw socket
for literal8 APPEND, which imaplib cannot send).

One MIME message goes over SMTP: a base64 text part, a quoted-printable
text part in ISO-8859-1, a base64 binary part that decodes to bytes with
NUL, a part in an encoding nobody knows, and a subject in an RFC 2047
encoded word. BINARY[n] must give the decoded octets, BINARY.SIZE[n] their
count, partial fetches their window, literal8 when a NUL is in it, and
NO [UNKNOWN-CTE] for the unknown encoding. SEARCH BODY/TEXT must find words
that only the decoded text holds, and no longer the raw base64.
"""
import base64
import imaplib
import re

import pytest

from harness import PASSWORDS
from imapraw import Raw
from mailtest import send_mail

ALICE = "alice@example.test"

TEXT1 = "The secret word is zanzibar.\r\nSecond line of part one.\r\n"
B64_1 = base64.encodebytes(TEXT1.encode()).decode()
BLOB = bytes(range(256)) * 3 + b"\x00tail"
B64_BLOB = base64.encodebytes(BLOB).decode()
SUBJECT_WORD = "zebracorn"
SUBJECT = "=?utf-8?B?" + base64.b64encode(f"Invoice {SUBJECT_WORD} r\u00e9sum\u00e9".encode()).decode() + "?="

MESSAGE = (
    "From: sender@client.test\r\n"
    "To: alice@example.test\r\n"
    f"Subject: {SUBJECT}\r\n"
    "Message-ID: <binary-1@client.test>\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="b1"\r\n'
    "\r\n"
    "preamble\r\n"
    "--b1\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    f"{B64_1}"
    "--b1\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Caf=E9 au lait, extra=\r\n"
    "ordinary =3D equal=3d lowercase   \r\n"
    "last line=\r\n"
    "--b1\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    f"{B64_BLOB}"
    "--b1\r\n"
    "Content-Type: application/x-strange\r\n"
    "Content-Transfer-Encoding: x-uuencode\r\n"
    "\r\n"
    "begin 644 x\r\n"
    "end\r\n"
    "--b1--\r\n"
).encode()

QP_DECODED = "Caf\u00e9 au lait, extraordinary = equal= lowercase\r\nlast line".encode("latin-1")


def login(inst):
    c = imaplib.IMAP4("127.0.0.1", inst.ports["imap"], timeout=15)
    c.login(ALICE, PASSWORDS[ALICE])
    return c


def deliver(inst, raw):
    before = len(inst.index_rows())
    send_mail(inst.ports["smtp"], msg=raw)
    inst.wait_for(lambda: len(inst.index_rows()) >= before + 1, what="the index row")


def fetch_one(c, item):
    """FETCH 1 item: (typ, the response's head line, the literal or None)."""
    typ, data = c.fetch("1", item)
    if typ != "OK":
        return typ, data, None
    for d in data:
        if isinstance(d, tuple):
            return typ, d[0], d[1]
    return typ, data[0], None


@pytest.fixture
def mbox(inst):
    deliver(inst, MESSAGE)
    c = login(inst)
    c.select("INBOX")
    yield c
    c.logout()


def test_capability_binary(inst):
    c = login(inst)
    assert "BINARY" in c.capabilities or "BINARY" in c.capability()[1][0].decode().split()
    c.logout()


def test_fetch_binary_base64_text(mbox):
    typ, head, lit = fetch_one(mbox, "(BINARY.PEEK[1])")
    assert typ == "OK"
    assert lit == TEXT1.encode()
    assert head.endswith(b"BINARY[1] {%d}" % len(TEXT1))
    # the raw part is base64, BODY[1] still gives it as stored
    typ, head, raw = fetch_one(mbox, "(BODY.PEEK[1])")
    assert raw.replace(b"\r\n", b"") == B64_1.replace("\n", "").encode()


def test_binary_size_matches(mbox):
    typ, data = mbox.fetch("1", "(BINARY.SIZE[1] BINARY.SIZE[2] BINARY.SIZE[3])")
    assert typ == "OK"
    line = data[0].decode()
    assert f"BINARY.SIZE[1] {len(TEXT1)}" in line
    assert f"BINARY.SIZE[2] {len(QP_DECODED)}" in line
    assert f"BINARY.SIZE[3] {len(BLOB)}" in line


def test_fetch_binary_quoted_printable(mbox):
    typ, head, lit = fetch_one(mbox, "(BINARY.PEEK[2])")
    assert typ == "OK" and lit == QP_DECODED


def test_partial_binary(mbox):
    typ, head, lit = fetch_one(mbox, "(BINARY.PEEK[1]<0.10>)")
    assert typ == "OK"
    assert lit == TEXT1.encode()[:10]
    assert head.endswith(b"BINARY[1]<0> {10}")
    typ, head, lit = fetch_one(mbox, "(BINARY.PEEK[1]<11.4>)")
    assert lit == TEXT1.encode()[11:15]
    # a window past the end is empty
    typ, head, lit = fetch_one(mbox, "(BINARY.PEEK[1]<5000.10>)")
    assert typ == "OK"
    assert (lit or b"") == b""


def test_nul_gives_literal8(mbox):
    typ, head, lit = fetch_one(mbox, "(BINARY.PEEK[3])")
    assert typ == "OK"
    assert head.endswith(b"BINARY[3] ~{%d}" % len(BLOB)), head
    assert lit == BLOB
    # a window without the NUL at the start is a plain literal... and one that holds it a literal8
    typ, head, lit = fetch_one(mbox, "(BINARY.PEEK[3]<1.20>)")
    assert head.endswith(b"BINARY[3]<1> {20}") and lit == BLOB[1:21]
    typ, head, lit = fetch_one(mbox, "(BINARY.PEEK[3]<0.20>)")
    assert head.endswith(b"BINARY[3]<0> ~{20}") and lit == BLOB[:20]


def test_unknown_cte(mbox):
    typ, data = mbox.fetch("1", "(BINARY.PEEK[4])")
    assert typ == "NO"
    assert data[0].startswith(b"[UNKNOWN-CTE]")
    typ, data = mbox.fetch("1", "(BINARY.SIZE[4])")
    assert typ == "NO" and data[0].startswith(b"[UNKNOWN-CTE]")
    # the session goes on
    assert mbox.noop()[0] == "OK"


def test_binary_non_leaf_and_missing(mbox):
    # the whole message and a multipart are no leaf: sent as stored, as BODY[] is
    typ, head, whole = fetch_one(mbox, "(BINARY.PEEK[])")
    typ2, head2, body = fetch_one(mbox, "(BODY.PEEK[])")
    assert typ == "OK" and whole == body
    typ, data = mbox.fetch("1", "(BINARY.PEEK[9])")
    assert typ == "OK" and b"BINARY[9] NIL" in data[0]
    with pytest.raises(imaplib.IMAP4.error, match="BAD"):
        mbox.fetch("1", "(BINARY.PEEK[1.x])")
    with pytest.raises(imaplib.IMAP4.error, match="BAD"):
        mbox.fetch("1", "(BINARY.SIZE[1]<0.5>)")


def test_binary_sets_seen_peek_does_not(mbox):
    typ, data = mbox.fetch("1", "(FLAGS)")
    assert b"\\Seen" not in data[0]
    fetch_one(mbox, "(BINARY.PEEK[1])")
    typ, data = mbox.fetch("1", "(FLAGS)")
    assert b"\\Seen" not in data[0]
    typ, data = mbox.fetch("1", "(BINARY[1])")
    assert typ == "OK"
    typ, data = mbox.fetch("1", "(FLAGS)")
    assert b"\\Seen" in data[0]


def test_search_decoded_body_and_subject(mbox):
    assert mbox.search(None, "BODY", "zanzibar") == ("OK", [b"1"])
    # the raw base64 is no longer text of the message
    raw_piece = B64_1.split("\n")[0][4:14]
    assert mbox.search(None, "BODY", raw_piece) == ("OK", [b""])
    # quoted-printable soft line breaks are gone, case does not matter
    assert mbox.search(None, "BODY", "EXTRAORDINARY") == ("OK", [b"1"])
    assert mbox.search(None, "TEXT", SUBJECT_WORD) == ("OK", [b"1"])
    assert mbox.search(None, "BODY", SUBJECT_WORD) == ("OK", [b""])
    # ISO-8859-1 converted to UTF-8
    mbox.literal = "caf\u00e9 AU".encode()
    assert mbox.search("UTF-8", "BODY") == ("OK", [b"1"])
    mbox.literal = "R\u00c9SUM\u00c9".encode()
    assert mbox.search("UTF-8", "TEXT") == ("OK", [b"1"])


def test_append_literal8(inst):
    r = Raw(inst.ports["imap"])
    r.s.sendall(b'a LOGIN "%s" "%s"\r\n' % (ALICE.encode(), PASSWORDS[ALICE].encode()))
    assert r.until_tagged(b"a")[-1].startswith(b"a OK")
    body = b"Subject: binary append\r\nContent-Type: application/octet-stream\r\n" \
           b"Content-Transfer-Encoding: binary\r\n\r\nzero\x00byte\r\nand \x01\x02\xff\r\n"
    r.s.sendall(b"b APPEND INBOX ~{%d}\r\n" % len(body))
    assert r.line().startswith(b"+")
    r.s.sendall(body + b"\r\n")
    done = r.until_tagged(b"b")[-1]
    assert done.startswith(b"b OK [APPENDUID "), done
    uid = int(done.split()[4].rstrip(b"]"))
    # non-synchronising literal8 too (LITERAL+)
    r.s.sendall(b"c APPEND INBOX ~{%d+}\r\n" % len(body) + body + b"\r\n")
    assert r.until_tagged(b"c")[-1].startswith(b"c OK [APPENDUID ")
    # a NUL in a plain literal is refused
    r.s.sendall(b"d APPEND INBOX {%d+}\r\n" % len(body) + body + b"\r\n")
    assert r.until_tagged(b"d")[-1].startswith(b"d BAD")
    # binary with a bare LF would come back changed: refused, nothing stored
    r.s.sendall(b"e APPEND INBOX ~{12+}\r\nSubject: x\n\x00\r\n")
    assert r.until_tagged(b"e")[-1].startswith(b"e NO [UNKNOWN-CTE]")
    r.s.sendall(b"f SELECT INBOX\r\n")
    lines = r.until_tagged(b"f")
    assert b"* 2 EXISTS" in lines
    r.s.sendall(b"g UID FETCH %d (BINARY.PEEK[1] BINARY.SIZE[1])\r\n" % uid)
    head = r.line()
    m = re.search(rb"BINARY\[1\] ~\{(\d+)\}$", head)
    assert m, head
    data = r.read(int(m.group(1)))
    assert data == b"zero\x00byte\r\nand \x01\x02\xff\r\n"
    rest = r.until_tagged(b"g")
    assert b"BINARY.SIZE[1] %d" % len(data) in rest[0]
    assert rest[-1].startswith(b"g OK")


def test_literal8_before_login_is_bounded(inst):
    r = Raw(inst.ports["imap"])
    # literal8 is no astring: LOGIN refuses it
    r.s.sendall(b"a LOGIN ~{5}\r\n")
    first = r.line()
    if first.startswith(b"+"):
        r.s.sendall(b"alice x\r\n")
        first = r.line()
    assert first.startswith(b"a BAD")
    # over the pre-login literal bound: refused before any byte is sent
    r.s.sendall(b"b LOGIN ~{100000}\r\n")
    assert r.line().startswith(b"b ")
