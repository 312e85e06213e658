#!/usr/bin/python3
"""
dns_bench.py - how fast resolverd answers RES_MX (docs/performance.md, "DNS").

Starts dnsmasq (authoritative for dns.test, N domains with one MX host
each) and a Postern instance whose [resolverd] nameservers points at it,
then asks with tests/tools/mxask (the same call queued makes):
  cold     N distinct domains at once (3 DNS questions each: MX, AAAA, A)
  cached   the same N again (answered from resolverd's cache)
  merged   one new domain asked R times at once (one set of DNS questions)
Prints wall time and answers per second for each. Nothing here has a
Postfix counterpart: Postfix's smtp client resolves with the blocking
system resolver in each delivery process.

    /usr/bin/python3 bench/dns_bench.py [-n DOMAINS] [-r REPEAT] [--build DIR]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=500, help="distinct domains (default 500)")
    ap.add_argument("-r", type=int, default=1000, help="concurrent asks of one domain (default 1000)")
    ap.add_argument("--build", default=str(REPO / "build"))
    a = ap.parse_args()
    os.environ["POSTERN_BUILD"] = a.build
    from dnsmasq import Dnsmasq          # after POSTERN_BUILD is set
    from harness import BUILD, Instance

    mxask = BUILD / "tests" / "mxask"
    recs = [f"--mx-host=d{i}.dns.test,mx.d{i}.dns.test,10" for i in range(a.n)]
    recs += [f"--host-record=mx.d{i}.dns.test,10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(a.n)]
    recs += ["--mx-host=merged.dns.test,mx.merged.dns.test,10", "--host-record=mx.merged.dns.test,10.255.0.1"]
    tmp = tempfile.mkdtemp(prefix="postern-dnsbench-")
    os.chmod(tmp, 0o755)
    dm = Dnsmasq(tmp, ["dns.test"], recs).start()
    inst = Instance(tmp, dm.port, {"resolverd": {"nameservers": f"127.0.0.1:{dm.port}"}})
    try:
        inst.start()

        def run(label, *args, expect):
            t = time.monotonic()
            r = subprocess.run([str(mxask), "-c", str(inst.conf), *args], capture_output=True, text=True)
            dt = time.monotonic() - t
            lines = r.stdout.splitlines()
            ok = sum('"result": "ok"' in ln for ln in lines)
            if r.returncode != 0 or ok != expect:
                sys.exit(f"{label}: exit {r.returncode}, {ok} of {expect} answers ok: {r.stderr}")
            print(f"{label:8} {expect:6} answers  {dt * 1000:9.1f} ms  {expect / dt:10.0f} answers/s")

        domains = [f"d{i}.dns.test" for i in range(a.n)]
        run("cold", *domains, expect=a.n)
        run("cached", *domains, expect=a.n)
        run("merged", "-r", str(a.r), "merged.dns.test", expect=a.r)
        print(f"dnsmasq saw {len(dm.queries())} questions for {a.n + 1} domains")
    finally:
        inst.stop(check=False)
        dm.stop()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
