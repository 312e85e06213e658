"""
smtppeer.py - a scripted remote MTA for the relay tests (aiosmtpd, Debian python3-aiosmtpd).

Peer(host, port, **script) listens on host:port in its own thread and
records what a real receiving server would see: every connection (how many
at once at most, when each came), the client's EHLO/HELO name, and every
transaction (MAIL FROM with its parameters, the recipients it accepted,
the message bytes after dot-unstuffing, whether it ran over TLS, who
logged in). The script says how it answers:

    rcpt={"x@relay.test": "550 5.1.1 No such user"}   per-recipient replies
    max_rcpts=N          "452 4.5.3 Too many recipients" after N in one transaction
    data="451 4.3.0 later" | "421 4.3.2 bye" | "drop"   the reply to the final dot
                         ("drop": the connection is closed with no reply)
    mail="550 5.7.1 no"  the reply to MAIL FROM
    ehlo=False           EHLO is refused with 502 (the client must say HELO)
    pipelining=True      PIPELINING is offered
    size=N               SIZE N is offered and enforced
    smtputf8=True        SMTPUTF8 is offered
    tls=True             STARTTLS with a self-signed certificate
    tls_fail=True        STARTTLS offered, but every handshake fails
    auth={"user": "pw"}  AUTH PLAIN/LOGIN (over TLS only)
    greeting="421 ..."   the greeting (default 220)
    delay=SECONDS        wait before answering the final dot
    dsn=True             DSN is offered; its parameters are recorded in dsn_params
"""
import asyncio
import os
import ssl
import subprocess
import tempfile
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def self_signed(directory, cn="mx.relay.test"):
    """A self-signed certificate and key in directory; returns an SSLContext for a server."""
    cert = os.path.join(directory, "peer.crt")
    key = os.path.join(directory, "peer.key")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", f"/CN={cn}", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


class Transaction:
    def __init__(self, mail_from, mail_options, rcpts, rcpt_options, data, tls, login, peer):
        self.mail_from = mail_from
        self.mail_options = mail_options
        self.rcpts = rcpts
        self.rcpt_options = rcpt_options
        self.data = data
        self.tls = tls
        self.login = login
        self.peer = peer

    def __repr__(self):
        return f"<Transaction from={self.mail_from} to={self.rcpts} {len(self.data)} bytes tls={self.tls}>"


class _Handler:
    def __init__(self, peer):
        self.peer = peer

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        p = self.peer
        with p.lock:
            p.helo_names.append(("EHLO", hostname))
        if not p.script.get("ehlo", True):
            return ["502 5.5.2 Error: command not recognized"]
        session.host_name = hostname
        out = list(responses)
        if p.script.get("pipelining"):
            out.insert(1, "250-PIPELINING")
        if p.script.get("dsn"):
            out.insert(1, "250-DSN")
        return out

    async def handle_HELO(self, server, session, envelope, hostname):
        with self.peer.lock:
            self.peer.helo_names.append(("HELO", hostname))
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_MAIL(self, server, session, envelope, address, options):
        r = self.peer.script.get("mail")
        if r:
            return r
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, options):
        p = self.peer
        r = p.script.get("rcpt", {}).get(address)
        if r:
            return r
        mx = p.script.get("max_rcpts")
        if mx is not None and len(envelope.rcpt_tos) >= mx:
            return "452 4.5.3 Error: too many recipients"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        p = self.peer
        delay = p.script.get("delay")
        if delay:
            await asyncio.sleep(delay)
        data = p.script.get("data")
        if data == "drop":
            server.transport.abort()
            with p.lock:
                p.dropped += 1
            return "250 never seen"
        if data:
            return data
        login = getattr(session, "peer_login", None)
        t = Transaction(envelope.mail_from, list(envelope.mail_options), list(envelope.rcpt_tos),
                        list(envelope.rcpt_options), envelope.original_content,
                        server._tls_protocol is not None, login, session.peer)
        t.time = time.monotonic()
        with p.lock:
            p.transactions.append(t)
        return f"250 2.0.0 Ok: queued as PEER{len(p.transactions)}"


class _SMTP(SMTP):
    def __init__(self, peer, *a, **kw):
        self._peer = peer
        super().__init__(*a, **kw)

    def connection_made(self, transport):
        p = self._peer
        with p.lock:
            p.connections += 1
            p.current += 1
            p.max_current = max(p.max_current, p.current)
            p.connect_times.append(time.monotonic())
        super().connection_made(transport)

    def connection_lost(self, error):
        with self._peer.lock:
            self._peer.current -= 1
        super().connection_lost(error)

    def _strip_dsn(self, arg, names):
        """Take the DSN parameters out (aiosmtpd knows none of them) and remember them."""
        if not self._peer.script.get("dsn"):
            return arg
        kept = []
        for word in arg.split(" "):
            if word.split("=", 1)[0].upper() in names:
                with self._peer.lock:
                    self._peer.dsn_params.append(word)
            else:
                kept.append(word)
        return " ".join(kept)

    async def smtp_MAIL(self, arg):
        await super().smtp_MAIL(self._strip_dsn(arg, ("RET", "ENVID")) if arg else arg)

    async def smtp_RCPT(self, arg):
        await super().smtp_RCPT(self._strip_dsn(arg, ("NOTIFY", "ORCPT")) if arg else arg)

    async def _handle_client(self):
        g = self._peer.script.get("greeting")
        if g:
            await self.push(g)
            self.transport.close()
            return
        await super()._handle_client()


class _Controller(Controller):
    def __init__(self, peer, *a, **kw):
        self._peer = peer
        super().__init__(*a, **kw)

    def factory(self):
        return _SMTP(self._peer, self.handler, **self.SMTP_kwargs)


class Peer:
    def __init__(self, host, port, **script):
        self.host = host
        self.port = port
        self.script = script
        self.lock = threading.Lock()
        self.transactions = []
        self.helo_names = []
        self.connections = 0
        self.current = 0
        self.max_current = 0
        self.connect_times = []
        self.dropped = 0
        self.dsn_params = []
        self._tmp = tempfile.mkdtemp(prefix="smtppeer-")
        kw = {"enable_SMTPUTF8": bool(script.get("smtputf8")),
              "data_size_limit": script.get("size", None) or None,
              "server_hostname": f"peer-{host}"}
        if script.get("tls") or script.get("tls_fail"):
            kw["tls_context"] = self_signed(self._tmp)
        if script.get("tls_fail"):
            # a client certificate is demanded, so the client's handshake fails
            kw["tls_context"].verify_mode = ssl.CERT_REQUIRED
            kw["tls_context"].load_verify_locations(os.path.join(self._tmp, "peer.crt"))
        users = script.get("auth")
        if users:
            def check(server, session, envelope, mechanism, auth_data):
                ok = (isinstance(auth_data, LoginPassword)
                      and users.get(auth_data.login.decode()) == auth_data.password.decode())
                if ok:
                    session.peer_login = auth_data.login.decode()
                return AuthResult(success=ok, handled=False)
            kw["authenticator"] = check
            kw["auth_require_tls"] = True
        else:
            kw["auth_exclude_mechanism"] = ["LOGIN", "PLAIN"]
        self.ctl = _Controller(self, _Handler(self), hostname=host, port=port, **kw)

    def start(self):
        self.ctl.start()
        deadline = time.monotonic() + 2
        while self.current and time.monotonic() < deadline:
            time.sleep(0.02)
        with self.lock:     # the controller's own readiness probe is not a client
            self.connections = 0
            self.max_current = 0
            self.connect_times = []
        return self

    def stop(self):
        try:
            self.ctl.stop()
        except Exception:
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
