"""
dnsmasq.py - a real DNS server for the tests: dnsmasq (Debian dnsmasq-base)
on 127.0.0.1 and a free port, authoritative for the zones it is given.

    dm = Dnsmasq(tmpdir, zones=["relay.test"], ttl=300, args=["--mx-host=relay.test,mx.relay.test,10", ...],
                 ipv6=False)   # True: on [::1] too
    dm.start(); ...; dm.queries("mx.relay.test")  # what resolverd asked, from --log-queries
    dm.stop()

Queries for names in its zones get authoritative answers (NODATA and
NXDOMAIN with the zone's SOA, so negative answers can be cached); names
outside them are REFUSED (no upstream server: --no-resolv). It runs in the
foreground (-k) as the test's own process, reads no file of the system
(-C /dev/null, --no-hosts) and logs every query to a file in tmpdir.
"""
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


def free_udp_tcp_port():
    """A port free for both UDP and TCP on 127.0.0.1 (and on ::1, when it exists)."""
    while True:
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            if has_ipv6_loopback():
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    with socket.socket(socket.AF_INET6, kind) as s6:
                        s6.bind(("::1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class Dnsmasq:
    def __init__(self, tmpdir, zones, args, ttl=300, ipv6=False):
        self.dir = Path(tmpdir)
        self.port = free_udp_tcp_port()
        self.log_path = self.dir / "dnsmasq.log"
        self.zones = zones
        self.args = args
        self.ttl = ttl
        self.ipv6 = ipv6
        self.proc = None

    def command(self):
        listen = "127.0.0.1,::1" if self.ipv6 else "127.0.0.1"
        cmd = [DNSMASQ, "-k", "-C", "/dev/null", f"--port={self.port}", f"--listen-address={listen}",
               "--bind-interfaces", "--no-resolv", "--no-hosts", "--no-negcache", "--cache-size=0",
               f"--pid-file={self.dir / 'dnsmasq.pid'}", "--log-queries", f"--log-facility={self.log_path}",
               f"--auth-server=ns.{self.zones[0]},{listen}", f"--auth-ttl={self.ttl}",
               f"--auth-soa=1,hostmaster.{self.zones[0]},1200,120,1209600"]
        cmd += [f"--auth-zone={z}" for z in self.zones]
        if os.geteuid() == 0:
            # Stays root: it would drop to the dnsmasq user, who cannot write the log in the test's directory.
            cmd.append("--user=root")
        return cmd + self.args

    def start(self):
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "dnsmasq.err", "wb"))
        deadline = time.monotonic() + 10
        while "started, version" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dnsmasq did not start: {(self.dir / 'dnsmasq.err').read_text()}{self.log()}")
            time.sleep(0.05)
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def queries(self, name=None, qtype=None):
        """The queries dnsmasq received, as (type, name), optionally only those for name (and type)."""
        got = re.findall(r"(?:auth|query)\[(\w+)\] (\S+) from", self.log())
        return [(t, n) for t, n in got
                if (name is None or n.lower() == name.lower()) and (qtype is None or t == qtype)]
