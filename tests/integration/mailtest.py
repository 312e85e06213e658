"""
mailtest.py - small client helpers the integration tests share.

RawSMTP speaks SMTP over a plain socket, byte for byte, for the tests that
must control exactly what is written in one go (pipelining, BDAT,
smuggling, STARTTLS injection). send_mail() is one whole transaction with
smtplib that returns the 250 reply, from which qid_of() takes the queue id.
"""
import re
import smtplib
import socket
import ssl
import time
import uuid
from email.message import EmailMessage

QID_IN_REPLY = re.compile(r"queued as ([0-9A-F]{16})")


def qid_of(reply_text):
    """The queue id from a '250 ... queued as QID' reply text (str or bytes)."""
    if isinstance(reply_text, bytes):
        reply_text = reply_text.decode(errors="replace")
    m = QID_IN_REPLY.search(reply_text)
    assert m, f"no 'queued as <QID>' in reply: {reply_text!r}"
    return m.group(1)


def new_msgid():
    return f"<{uuid.uuid4().hex}@client.test>"


def make_message(to="alice@example.test", sender="sender@client.test", subject="test", body="Hello.\n",
                 msgid=None):
    m = EmailMessage()
    m["From"] = sender
    m["To"] = to
    m["Subject"] = subject
    m["Message-ID"] = msgid or new_msgid()
    m.set_content(body)
    return m


def client_tls_context():
    """TLS context for the instance's self-signed certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def send_mail(port, rcpts=("alice@example.test",), sender="sender@client.test", msg=None, timeout=15,
              login=None, starttls=False):
    """One transaction with smtplib; returns (code, text) of the reply to DATA."""
    if isinstance(rcpts, str):
        rcpts = (rcpts,)
    msg = msg or make_message(to=rcpts[0], sender=sender)
    data = msg.as_bytes() if isinstance(msg, EmailMessage) else msg
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=timeout) as s:
        s.ehlo()
        if starttls:
            s.starttls(context=client_tls_context())
            s.ehlo()
        if login:
            s.login(*login)
        code, text = s.mail(sender)
        assert code == 250, f"MAIL: {code} {text!r}"
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250, f"RCPT {r}: {code} {text!r}"
        code, text = s.data(data)
        return code, text.decode(errors="replace")


def header(raw, name):
    """The unfolded values of header `name` in the message's header block (bytes or str)."""
    if isinstance(raw, bytes):
        raw = raw.decode(errors="replace")
    head = re.split(r"\r?\n\r?\n", raw, maxsplit=1)[0]
    unfolded = re.sub(r"\r?\n[ \t]+", " ", head)
    out = []
    for line in unfolded.splitlines():
        k, sep, v = line.partition(":")
        if sep and k.strip().lower() == name.lower():
            out.append(v.strip())
    return out


class RawSMTP:
    """An SMTP client that writes exactly the bytes it is given."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, tls=False):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if tls:
            self.sock = client_tls_context().wrap_socket(self.sock)
        self.buf = b""
        self.timeout = timeout

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, timeout=None):
        self.sock.settimeout(timeout if timeout is not None else self.timeout)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by the server")
        self.buf += chunk

    def read_line(self, timeout=None):
        while b"\n" not in self.buf:
            self._fill(timeout)
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode(errors="replace")

    def reply(self, timeout=None):
        """One reply: (code, [text lines]) with the code as int."""
        lines = []
        while True:
            line = self.read_line(timeout)
            assert len(line) >= 3 and line[:3].isdigit(), f"not a reply line: {line!r}"
            lines.append(line)
            if len(line) == 3 or line[3] == " ":
                return int(line[:3]), lines
            assert line[3] == "-", f"bad continuation: {line!r}"

    def cmd(self, line):
        self.send(line.encode() + b"\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.reply()

    def greeting(self):
        code, lines = self.reply()
        assert code == 220, f"greeting: {lines}"
        return lines

    def ehlo(self, name="client.test"):
        code, lines = self.cmd(f"EHLO {name}")
        assert code == 250, f"EHLO: {lines}"
        return [ln[4:] for ln in lines]

    def nothing_pending(self, wait=1.0):
        """True when nothing arrives from the server within wait seconds."""
        if self.buf:
            return False
        try:
            self._fill(wait)
        except (socket.timeout, TimeoutError, ssl.SSLError):
            return True
        except EOFError:
            return True
        return False

    def closed_by_server(self, wait=5.0):
        """True when the server closes the connection within wait seconds (after any pending data)."""
        deadline = time.monotonic() + wait
        try:
            while time.monotonic() < deadline:
                self.buf = b""
                self._fill(max(0.05, deadline - time.monotonic()))
        except EOFError:
            return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except (socket.timeout, TimeoutError):
            return False
        return False

    def starttls(self):
        """Upgrade the connection (after a 220 reply to STARTTLS has been read)."""
        self.sock = client_tls_context().wrap_socket(self.sock)
        self.buf = b""
