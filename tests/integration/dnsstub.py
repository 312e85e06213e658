"""
dnsstub.py - a small authoritative DNS server on 127.0.0.1 for the tests (dnslib).

Every instance's resolverd is pointed at it, so no test ever asks a real
resolver. It answers from a table that tests fill with zone-file lines
(stub.add("relay.test. 60 IN MX 10 mx.relay.test.")); any other name gets
NXDOMAIN. stub.servfail("name.test.") makes every question about that
name fail with SERVFAIL (a broken authoritative server) until
stub.servfail("name.test.", False). Serves UDP and TCP on the same port.
"""
import socket
import threading

from dnslib import QTYPE, RCODE, RR
from dnslib.server import DNSLogger, DNSServer


class _Resolver:
    def __init__(self):
        self.lock = threading.Lock()
        self.rrs = []
        self.queries = []
        self.failing = set()

    def resolve(self, request, handler):
        reply = request.reply()
        q = request.q
        with self.lock:
            self.queries.append((str(q.qname), QTYPE[q.qtype]))
            found = [rr for rr in self.rrs if rr.rname == q.qname]
            failing = str(q.qname).lower() in self.failing
        if failing:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        answers = [rr for rr in found if rr.rtype == q.qtype or q.qtype == QTYPE.ANY]
        for rr in answers:
            reply.add_answer(rr)
        if not found:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


def _free_udp_tcp_port():
    while True:
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()


class DnsStub:
    def __init__(self):
        self.resolver = _Resolver()
        self.port = _free_udp_tcp_port()
        quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", logf=lambda s: None)
        self.servers = [DNSServer(self.resolver, address="127.0.0.1", port=self.port, tcp=tcp, logger=quiet)
                        for tcp in (False, True)]

    def start(self):
        for s in self.servers:
            s.start_thread()

    def stop(self):
        for s in self.servers:
            s.stop()

    def add(self, zone_text):
        """Add records given in zone-file form."""
        with self.resolver.lock:
            self.resolver.rrs += RR.fromZone(zone_text)

    def servfail(self, name, on=True):
        """Answer SERVFAIL to every question about name (on=False: answer it normally again)."""
        name = name.lower() if name.endswith(".") else name.lower() + "."
        with self.resolver.lock:
            (self.resolver.failing.add if on else self.resolver.failing.discard)(name)

    def clear(self):
        with self.resolver.lock:
            self.resolver.rrs = []
            self.resolver.queries = []
            self.resolver.failing = set()

    @property
    def queries(self):
        with self.resolver.lock:
            return list(self.resolver.queries)
