#!/usr/bin/python3
"""
imap_idle_mem.py - memory per IDLE connection of Postern's imapd.

Starts a whole instance (the integration harness, on free loopback
ports), opens N connections that each log in, SELECT INBOX and IDLE, and
prints imapd's resident memory before and after: the cost of one idle
IMAP client. Usage (from the repository, after a build):

    python3 bench/imap_idle_mem.py [N]        # default 1000
"""
import os
import re
import resource
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from dnsstub import DnsStub  # noqa: E402
from harness import DOMAIN, PASSWORDS, Instance  # noqa: E402

USER = "alice@example.test"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    resource.setrlimit(resource.RLIMIT_NOFILE, (n + 1024, n + 1024))
    dns = DnsStub()
    dns.start()
    base = tempfile.mkdtemp(prefix="postern-imapmem-")
    os.chmod(base, 0o755)
    inst = Instance(base, dns.port, {"imapd": {"max_connections": str(n + 100)}}, None)
    inst.start()
    try:
        inst.tool("domain", "add", DOMAIN)
        inst.add_user(USER, PASSWORDS[USER])
        pid = re.search(r"imapd: started pid=(\d+)", inst.log()).group(1)
        before = rss_kib(pid)
        socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", inst.ports["imap"]))
            s.recv(4096)
            s.sendall(b"a LOGIN " + USER.encode() + b" " + PASSWORDS[USER].encode() +
                      b"\r\nb SELECT INBOX\r\nc IDLE\r\n")
            socks.append(s)
        time.sleep(3)
        for s in socks:
            s.setblocking(False)
            try:
                s.recv(65536)
            except BlockingIOError:
                pass
        time.sleep(1)
        after = rss_kib(pid)
        print(f"imapd RSS: {before} KiB idle, {after} KiB with {n} IDLE sessions: "
              f"{(after - before) / n:.1f} KiB per IDLE session")
        for s in socks:
            s.close()
    finally:
        inst.stop(check=False)
        dns.stop()


if __name__ == "__main__":
    main()
