#!/usr/bin/python3
"""
queue_bench.py - the measuring half of bench/queue-bench.sh.

Both queues are already full (the script filled them). Times the
administrator's commands on each, in interleaved rounds, each command's
output going to /dev/null (it is produced in full: nothing is skipped):

  postern queue list              vs  postqueue -p        (mailq)
  postern --json queue list       vs  postqueue -j
  postern queue list --to DOMAIN  vs  postqueue -p        (Postfix has no filter: mailq | grep is what one does)
  postern queue summary           vs  qshape deferred
  postern queue show QID          vs  postcat -q QID

and, once per system, how long 200 SMTP transactions take while nothing
else runs and while that system's full JSON listings run back to back
(accepting must not stall behind a listing). Prints the medians and the ratios postern/postfix
(below 1: Postern is faster); --markdown FILE writes the table.

Usage (normally called by queue-bench.sh):
  queue_bench.py --rounds R --postern "POSTERN -c CONF" --postfix-etc DIR --domain D \
      --postern-qid QID --postfix-qid QID --smtp-port PORT --probe-rcpt ADDR \
      --postfix-smtp-port PORT --postfix-probe-rcpt ADDR [--markdown FILE]
"""
import argparse
import os
import resource
import shlex
import statistics
import subprocess
import sys
import threading
import time


def find_cgroup(name, parent_pid):
    """queue-bench.sh's cgroup for one system (bench/lib/common.sh: MOUNT/postern-bench-PID/NAME), or None."""
    with open("/proc/mounts") as f:
        mounts = [ln.split() for ln in f]
    for dev, mnt, kind, opts, *_ in mounts:
        if kind == "cgroup2" or (kind == "cgroup" and "cpuacct" in opts.split(",")):
            d = os.path.join(mnt, f"postern-bench-{parent_pid}", name)
            stat = "cpu.stat" if kind == "cgroup2" else "cpuacct.usage"
            if os.path.exists(os.path.join(d, stat)):
                return d, kind
    return None


def cgroup_cpu(cg):
    """CPU seconds used so far by every process of the cgroup."""
    if cg is None:
        return 0.0
    d, kind = cg
    if kind == "cgroup2":
        with open(os.path.join(d, "cpu.stat")) as f:
            for line in f:
                k, v = line.split()
                if k == "usage_usec":
                    return int(v) / 1e6
        return 0.0
    with open(os.path.join(d, "cpuacct.usage")) as f:
        return int(f.read()) / 1e9


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd, timeout=900, cg=None):
    """Wall seconds, output bytes, and CPU seconds: the command itself (and its pipeline) plus the
    system's own processes that answered it (queued for postern; showq for postqueue), from its cgroup."""
    c0, g0 = children_cpu(), cgroup_cpu(cg)
    t0 = time.monotonic()
    r = subprocess.run(cmd, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    dt = time.monotonic() - t0
    cpu = children_cpu() - c0 + cgroup_cpu(cg) - g0
    if r.returncode != 0:
        sys.exit(f"`{cmd}` exited {r.returncode}: {r.stderr.decode(errors='replace')[-2000:]}")
    return dt, len(r.stdout), cpu


def probe(port, rcpt, n=200):
    """Seconds for n one-message SMTP sessions, one after another (smtp-source -s 1)."""
    cmd = f"smtp-source -s 1 -m {n} -l 512 -f probe@example.test -t {rcpt} 127.0.0.1:{port}"
    return timed(cmd)[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--postern", required=True, help="the tool with its -c option")
    ap.add_argument("--postfix-etc", required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--postern-qid", required=True)
    ap.add_argument("--postfix-qid", required=True)
    ap.add_argument("--smtp-port", type=int, required=True)
    ap.add_argument("--probe-rcpt", required=True)
    ap.add_argument("--postfix-smtp-port", type=int, required=True)
    ap.add_argument("--postfix-probe-rcpt", required=True)
    ap.add_argument("--markdown")
    a = ap.parse_args()

    pt = a.postern
    pf = shlex.quote(a.postfix_etc)
    dom = shlex.quote(a.domain)
    pairs = [
        ("list", f"{pt} queue list", f"postqueue -c {pf} -p"),
        ("list --json", f"{pt} --json queue list", f"postqueue -c {pf} -j"),
        (f"list --to {a.domain}", f"{pt} queue list --to {dom}", f"postqueue -c {pf} -p | grep -c -F {dom}"),
        ("summary", f"{pt} queue summary", f"qshape -c {pf} deferred"),
        ("show ID", f"{pt} queue show {a.postern_qid}", f"postcat -c {pf} -q {a.postfix_qid}"),
    ]
    cgs = {n: find_cgroup(n, os.getppid()) for n in ("postern", "postfix")}
    res = {name: {"postern": [], "postfix": [], "cpu_postern": [], "cpu_postfix": [], "bytes": {}}
           for name, _, _ in pairs}
    for rnd in range(1, a.rounds + 1):
        for name, pc, fc in pairs:
            for sysname, cmd in (("postern", pc), ("postfix", fc)):
                dt, nbytes, cpu = timed(cmd, cg=cgs[sysname])
                res[name][sysname].append(dt)
                res[name]["cpu_" + sysname].append(cpu)
                res[name]["bytes"][sysname] = nbytes
                print(f"round {rnd} {sysname:8s} {name:24s} {dt:8.3f} s  {cpu:8.3f} s CPU  ({nbytes} bytes of output)",
                      flush=True)

    # accepting while listings run, each system with its own listing
    def under_load(port, rcpt, list_cmd):
        idle = probe(port, rcpt)
        stop = threading.Event()
        count = [0]

        def lister():
            while not stop.is_set():
                timed(list_cmd)
                count[0] += 1

        th = threading.Thread(target=lister)
        th.start()
        time.sleep(0.5)
        busy = probe(port, rcpt)
        stop.set()
        th.join()
        return idle, busy, count[0]

    loads = {
        "postern": under_load(a.smtp_port, a.probe_rcpt, f"{pt} --json queue list"),
        "postfix": under_load(a.postfix_smtp_port, a.postfix_probe_rcpt, f"postqueue -c {pf} -j"),
    }
    lines = [f"| command (Postern / Postfix) | Postern s (median of {a.rounds}) | Postfix s | ratio "
             f"| Postern CPU s | Postfix CPU s | CPU ratio |",
             "|---|---|---|---|---|---|---|"]
    for name, pc, fc in pairs:
        p = statistics.median(res[name]["postern"])
        f = statistics.median(res[name]["postfix"])
        cp = statistics.median(res[name]["cpu_postern"])
        cf = statistics.median(res[name]["cpu_postfix"])
        lines.append(f"| `{pc.replace(pt, 'postern').replace(a.postfix_etc, 'ETC')}` / "
                     f"`{fc.replace(a.postfix_etc, 'ETC')}` | {p:.3f} | {f:.3f} | {p / max(f, 1e-9):.2f} "
                     f"| {cp:.3f} | {cf:.3f} | {cp / max(cf, 1e-9):.2f} |")
    table = "\n".join(lines)
    note = "\n".join(
        f"- {name}: 200 SMTP sessions one after another took {idle:.2f} s idle and {busy:.2f} s while its JSON "
        f"listing ran back to back ({n} listings meanwhile): {busy / idle:.2f}x"
        for name, (idle, busy, n) in loads.items())
    print()
    print(table)
    print()
    print("ratio = Postern / Postfix (below 1: Postern is faster). CPU: the command and what it ran, plus the"
          " system's cgroup over the same span (queued for Postern, showq for Postfix): "
          + ", ".join(f"{n}: {'cgroup ' + c[0] if c else 'no cgroup, the command only'}" for n, c in cgs.items()))
    print(note)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(table + "\n\n" + note + "\n")


if __name__ == "__main__":
    main()
