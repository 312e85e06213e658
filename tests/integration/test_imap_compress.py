"""
test_imap_compress.py - COMPRESS=DEFLATE (RFC 4978) against a real
instance, from a raw socket compressing with Python's zlib (raw deflate,
wbits -15, as RFC 4978 asks), over plaintext and over TLS (STARTTLS and
implicit TLS, compression inside TLS): the capability after login only,
SELECT/FETCH/APPEND of a literal, an IDLE notice delivered compressed
after a delivery, a command pipelined in the same packet as COMPRESS, a
second COMPRESS (NO [COMPRESSIONACTIVE]), an unknown mechanism (BAD), a
decompression bomb (the inflated line hits the usual limit; the server
goes on serving others), a corrupt stream (closed, with a log line),
and mbsync (isync 1.4.4), which turns COMPRESS on by itself.
"""
import re
import shutil
import socket
import time
import zlib

import pytest

from harness import PASSWORDS
from imapraw import Raw
from mailtest import client_tls_context, make_message, send_mail
from test_imap import deliver

ALICE = "alice@example.test"
LOGIN = f"a LOGIN {ALICE} {PASSWORDS[ALICE]}\r\n".encode()


class ZClient(Raw):
    """IMAP over a socket that turns compression on after COMPRESS DEFLATE."""

    def __init__(self, port, tls=False, starttls=False):
        self.z_out = None
        self.z_in = None
        super().__init__(port, tls)
        if starttls:
            self.send(b"t STARTTLS\r\n")
            assert self.until_tagged(b"t")[-1].startswith(b"t OK")
            self.s = client_tls_context().wrap_socket(self.s)

    def compress(self):
        self.z_out = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.z_in = zlib.decompressobj(-15)

    def raw(self, data):
        """Bytes as they are, compressed or not, already packed."""
        self.s.sendall(data)

    def pack(self, data):
        return self.z_out.compress(data) + self.z_out.flush(zlib.Z_SYNC_FLUSH)

    def send(self, data):
        self.s.sendall(self.pack(data) if self.z_out else data)

    def _decode(self, data):
        return self.z_in.decompress(data) if self.z_in else data

    def login_and_compress(self):
        self.send(LOGIN)
        ok = self.until_tagged(b"a")[-1]
        assert ok.startswith(b"a OK") and b"COMPRESS=DEFLATE" in ok, ok
        self.send(b"z COMPRESS DEFLATE\r\n")
        # The tagged OK comes uncompressed; every byte after its CRLF is compressed.
        assert self.line().startswith(b"z OK"), self.buf
        assert self.buf == b""
        self.compress()

    def eof_or_reset(self, timeout=10):
        """True once the server closed (EOF or reset) within timeout."""
        self.s.settimeout(timeout)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        except Exception:
            return True


def session_work(c, inst):
    """SELECT, FETCH and APPEND of a literal, all compressed; returns the FETCHed body."""
    sel = c.command(b"s", b"SELECT INBOX")
    assert b"* 2 EXISTS" in sel and sel[-1].startswith(b"s OK"), sel
    msg = b"From: a@example.test\r\nSubject: compressed append\r\n\r\n" + b"line of text\r\n" * 2000
    c.send(b"p APPEND INBOX {%d}\r\n" % len(msg))
    assert c.line().startswith(b"+")
    c.send(msg + b"\r\n")
    res = c.until_tagged(b"p")
    assert res[-1].startswith(b"p OK") and b"APPENDUID" in res[-1], res
    c.send(b"f FETCH 3 BODY.PEEK[]\r\n")
    head = c.line()
    m = re.match(rb"\* 3 FETCH \(.*BODY\[\] \{(\d+)\}$", head)
    assert m, head
    body = c.read(int(m.group(1)))
    rest = c.until_tagged(b"f")
    assert rest[-1].startswith(b"f OK"), rest
    assert body == msg
    return body


def test_capability_only_after_login(inst):
    c = ZClient(inst.ports["imap"])
    assert b"COMPRESS=DEFLATE" not in c.greeting
    c.send(b"x COMPRESS DEFLATE\r\n")
    assert c.until_tagged(b"x")[-1].startswith(b"x BAD")
    c.send(LOGIN)
    assert b"COMPRESS=DEFLATE" in c.until_tagged(b"a")[-1]
    caps = c.command(b"c", b"CAPABILITY")
    assert b"COMPRESS=DEFLATE" in caps[0]


def test_compress_plain_select_fetch_append(inst):
    deliver(inst, 2)
    c = ZClient(inst.ports["imap"])
    c.login_and_compress()
    session_work(c, inst)
    # A second COMPRESS is refused with the code RFC 4978 defines; the session goes on compressed.
    again = c.command(b"y", b"COMPRESS DEFLATE")
    assert again[-1].startswith(b"y NO [COMPRESSIONACTIVE]"), again
    assert c.command(b"n", b"NOOP")[-1].startswith(b"n OK")
    bye = c.command(b"l", b"LOGOUT")
    assert bye[0].startswith(b"* BYE") and bye[-1].startswith(b"l OK")
    inst.wait_log(r"compress deflate from \[127\.0\.0\.1\] user=alice@example\.test")


@pytest.mark.parametrize("how", ["starttls", "implicit"])
def test_compress_inside_tls(inst, how):
    deliver(inst, 2)
    if how == "starttls":
        c = ZClient(inst.ports["imap"], starttls=True)
    else:
        c = ZClient(inst.ports["imaps"], tls=True)
    c.login_and_compress()
    session_work(c, inst)
    assert c.command(b"l", b"LOGOUT")[-1].startswith(b"l OK")


def test_unknown_mechanism_and_syntax(inst):
    c = ZClient(inst.ports["imap"])
    c.send(LOGIN)
    c.until_tagged(b"a")
    assert c.command(b"u", b"COMPRESS LZMA")[-1].startswith(b"u BAD")
    assert c.command(b"v", b"COMPRESS")[-1].startswith(b"v BAD")
    assert c.command(b"w", b"COMPRESS DEFLATE extra")[-1].startswith(b"w BAD")
    # Nothing was turned on: plain commands still work.
    assert c.command(b"n", b"NOOP")[-1].startswith(b"n OK")


def test_command_pipelined_with_compress(inst):
    deliver(inst, 1)
    c = ZClient(inst.ports["imap"])
    c.send(LOGIN)
    c.until_tagged(b"a")
    z = zlib.compressobj(6, zlib.DEFLATED, -15)
    packed = z.compress(b"s SELECT INBOX\r\nn NOOP\r\n") + z.flush(zlib.Z_SYNC_FLUSH)
    # One write: the COMPRESS line and, right behind its CRLF, compressed commands.
    c.raw(b"z COMPRESS DEFLATE\r\n" + packed)
    while b"\r\n" not in c.buf:
        c.buf += c.s.recv(65536)
    ok, rest = c.buf.split(b"\r\n", 1)
    assert ok.startswith(b"z OK"), ok
    c.buf = b""
    c.z_out = z
    c.z_in = zlib.decompressobj(-15)
    c.buf = c.z_in.decompress(rest)
    sel = c.until_tagged(b"s")
    assert b"* 1 EXISTS" in sel and sel[-1].startswith(b"s OK"), sel
    assert c.until_tagged(b"n")[-1].startswith(b"n OK")


def test_idle_notice_arrives_compressed(inst):
    deliver(inst, 1)
    c = ZClient(inst.ports["imap"])
    c.login_and_compress()
    c.command(b"s", b"SELECT INBOX")
    c.send(b"i IDLE\r\n")
    assert c.line().startswith(b"+")
    send_mail(inst.ports["smtp"], msg=make_message(subject="while idle"))
    t0 = time.monotonic()
    assert c.line() == b"* 2 EXISTS"
    assert time.monotonic() - t0 < 1.5
    assert c.line() == b"* 2 RECENT"   # the first session to select INBOX: new mail is \Recent to it
    # The server let its compressor go while idle; the next responses still inflate in the same stream.
    send_mail(inst.ports["smtp"], msg=make_message(subject="while idle again"))
    assert c.line() == b"* 3 EXISTS"
    assert c.line() == b"* 3 RECENT"
    c.send(b"DONE\r\n")
    assert c.until_tagged(b"i")[-1].startswith(b"i OK")
    f = c.command(b"f", b"FETCH 1:3 (FLAGS)")
    assert len(f) == 4 and f[-1].startswith(b"f OK"), f


def test_bomb_is_bounded_and_server_goes_on(inst):
    deliver(inst, 1)
    c = ZClient(inst.ports["imap"])
    c.login_and_compress()
    # 100 MB of 'a' without a line end compresses to about 100 KB.
    z = c.z_out
    chunk = b"a" * (1 << 20)
    try:
        for _ in range(100):
            c.raw(z.compress(chunk) + z.flush(zlib.Z_SYNC_FLUSH))
    except (BrokenPipeError, ConnectionResetError):
        pass   # the server hung up before taking it all
    got = b""
    try:
        c.s.settimeout(10)
        while True:
            d = c.s.recv(65536)
            if not d:
                break
            got += c.z_in.decompress(d)
    except (ConnectionResetError, socket.timeout):
        pass
    assert b"* BYE" in got or got == b"", got
    inst.wait_log(r"input refused from \[127\.0\.0\.1\]: ")
    # Still serving: another client logs in and reads mail.
    d = ZClient(inst.ports["imap"])
    d.login_and_compress()
    assert b"* 1 EXISTS" in d.command(b"s", b"SELECT INBOX")


def test_corrupt_stream_closes_with_log_line(inst):
    c = ZClient(inst.ports["imap"])
    c.login_and_compress()
    assert c.command(b"n", b"NOOP")[-1].startswith(b"n OK")
    # A stored block whose length and its complement disagree: invalid in any deflate stream.
    c.raw(b"\x00\x05\x00\x00\x00hello")
    assert c.eof_or_reset()
    inst.wait_log(r"disconnect from \[127\.0\.0\.1\] user=alice@example\.test .*reason=corrupt compressed input")
    d = ZClient(inst.ports["imap"])
    d.send(LOGIN)
    assert d.until_tagged(b"a")[-1].startswith(b"a OK")


@pytest.mark.skipif(shutil.which("mbsync") is None, reason="mbsync (Debian package isync) is not installed")
def test_mbsync_syncs_compressed(inst, tmp_path):
    """isync 1.4.4 turns COMPRESS DEFLATE on by itself when it sees the capability (inside IMAPS here)."""
    from test_imap_mbsync import mbsync_setup, run_mbsync
    sent = deliver(inst, 3, body="compressible line\n" * 500)
    local, conf = mbsync_setup(inst, tmp_path)
    run_mbsync(conf)
    inst.wait_log(r"compress deflate from \[127\.0\.0\.1\] user=alice@example\.test")
    inbox = [p.read_bytes() for d in ("new", "cur") for p in (local / "INBOX" / d).iterdir()]
    assert len(inbox) == 3
    for raw in sent:
        body = raw.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n")
        assert any(g.endswith(b"\n\n" + body) for g in inbox)
    # The second run finds nothing new and still ends cleanly over the compressed stream.
    run_mbsync(conf)
    assert "corrupt compressed input" not in inst.log()
