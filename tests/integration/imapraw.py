"""
imapraw.py - IMAP over a plain socket, byte for byte, for the IMAP tests
that must send what imaplib would not (bad input, literal8, pipelining,
COMPRESS) or read a literal exactly as it comes.

Raw reads the greeting on connect; line() returns one line without its
CRLF, read(n) n bytes of a literal, until_tagged(tag) every line up to and
including the tagged one, closed() whether the server ended the
connection. A subclass that transforms the incoming bytes (test_imap_compress's
inflating client) overrides _decode(). LoggedIn is a Raw already past
LOGIN as one of the instance's users.
"""
import socket

from harness import PASSWORDS
from mailtest import client_tls_context


class Raw:
    """A plain socket speaking IMAP, for bytes imaplib would not send."""

    def __init__(self, port, tls=False):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if tls:
            self.s = client_tls_context().wrap_socket(self.s)
        self.buf = b""
        self.greeting = self.line()

    def send(self, data):
        self.s.sendall(data)

    def _decode(self, data):
        """What arrived, as the lines are read from it (as it is here)."""
        return data

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError(self.buf)
        self.buf += self._decode(d)

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def read(self, n):
        """Exactly n bytes (a literal's contents)."""
        while len(self.buf) < n:
            self._fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def until_tagged(self, tag):
        lines = []
        while True:
            ln = self.line()
            lines.append(ln)
            if ln.startswith(tag + b" "):
                return lines

    def command(self, tag, text):
        """Send 'tag text' and return every line up to the tagged one."""
        self.send(tag + b" " + text + b"\r\n")
        return self.until_tagged(tag)

    def closed(self):
        """True once the server closed cleanly; False on a reset or no close within the timeout."""
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
                self.buf += d
        except (ConnectionResetError, socket.timeout):
            return False


class LoggedIn(Raw):
    """A Raw logged in as user (a key of harness.PASSWORDS), with a timeout for large literals."""

    def __init__(self, inst, user, timeout=30):
        super().__init__(inst.ports["imap"])
        self.s.settimeout(timeout)   # a 20 MB literal on a loaded machine
        assert self.greeting.startswith(b"* OK")
        self.send(b"L LOGIN %s %s\r\n" % (user.encode(), PASSWORDS[user].encode()))
        assert self.until_tagged(b"L")[-1].startswith(b"L OK")
