#!/usr/bin/python3
"""
smtp_bench.py - the measuring half of bench/smtp-bench.sh.

Drives two running mail systems (Postern and Postfix) with Postfix's load
generator smtp-source, in interleaved rounds (postern, postfix, postern,
...). A round is timed from the start of smtp-source until every message
is a file in the recipient's Maildir new/; the CPU time of the system's
processes over the same span comes from the cgroup each system was started
in (cgroup v2 cpu.stat usage_usec, or v1 cpuacct.usage), or, when no cgroup
could be made, from machine-wide /proc/stat totals (which then include
smtp-source itself; the report says which).

Usage (normally called by smtp-bench.sh):
  smtp_bench.py --rounds R --messages N --sessions S --length L --cpu KIND \
      --system postern:PORT:MAILDIR:CGROUP --system postfix:PORT:MAILDIR:CGROUP \
      [--markdown FILE]
"""
import argparse
import os
import statistics
import subprocess
import sys
import time


def count_files(d):
    try:
        with os.scandir(d) as it:
            return sum(1 for e in it if e.is_file())
    except FileNotFoundError:
        return 0


def cpu_seconds(kind, cgroup):
    """CPU seconds used so far by the cgroup (or the whole machine for kind 'procstat')."""
    if kind == "v2":
        with open(os.path.join(cgroup, "cpu.stat")) as f:
            for line in f:
                k, v = line.split()
                if k == "usage_usec":
                    return int(v) / 1e6
        raise RuntimeError(f"no usage_usec in {cgroup}/cpu.stat")
    if kind == "v1":
        with open(os.path.join(cgroup, "cpuacct.usage")) as f:
            return int(f.read()) / 1e9
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    # user nice system idle iowait irq softirq steal: everything but idle and iowait
    vals = [int(x) for x in fields[:8]]
    busy = sum(vals) - vals[3] - vals[4]
    return busy / os.sysconf("SC_CLK_TCK")


def one_round(sysname, port, maildir, cgroup, args):
    new = os.path.join(maildir, "new")
    before = count_files(new)
    cpu0 = cpu_seconds(args.cpu, cgroup)
    t0 = time.monotonic()
    cmd = ["smtp-source", "-s", str(args.sessions), "-l", str(args.length), "-m", str(args.messages), "-c",
           "-f", "sender@example.test", "-t", "alice@example.test", f"127.0.0.1:{port}"]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True, timeout=args.timeout)
    if r.returncode != 0:
        sys.exit(f"{sysname}: smtp-source exited {r.returncode}: {r.stderr.strip()[-2000:]}")
    t_sent = time.monotonic()
    want = before + args.messages
    deadline = t0 + args.timeout
    while count_files(new) < want:
        if time.monotonic() > deadline:
            sys.exit(f"{sysname}: only {count_files(new) - before} of {args.messages} messages delivered "
                     f"after {args.timeout}s")
        time.sleep(0.005)
    t1 = time.monotonic()
    cpu1 = cpu_seconds(args.cpu, cgroup)
    return {"system": sysname, "seconds": t1 - t0, "send_seconds": t_sent - t0,
            "rate": args.messages / (t1 - t0), "cpu_ms_per_msg": (cpu1 - cpu0) * 1000 / args.messages}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--length", type=int, default=4096)
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--cpu", choices=("v2", "v1", "procstat"), required=True)
    ap.add_argument("--system", action="append", required=True, help="NAME:PORT:MAILDIR:CGROUP")
    ap.add_argument("--pause", type=float, default=12.0,
                    help="seconds of quiet before each round (see below)")
    ap.add_argument("--markdown")
    args = ap.parse_args()

    systems = [s.split(":", 3) for s in args.system]
    results = {name: [] for name, *_ in systems}
    for rnd in range(1, args.rounds + 1):
        for name, port, maildir, cgroup in systems:
            # ext4 without a journal will not reuse an inode freed in the last 60-360 s and
            # reads every such inode on each file creation: a round that follows another
            # system's round would pay for that system's deleted files. The pause lets the most
            # recent of them age out (--pause 360 would shield a round completely).
            time.sleep(args.pause)
            res = one_round(name, int(port), maildir, cgroup, args)
            results[name].append(res)
            print(f"round {rnd} {name:8s} {res['seconds']:7.2f} s  {res['rate']:8.1f} msg/s  "
                  f"{res['cpu_ms_per_msg']:6.2f} ms CPU/msg  (smtp-source done after {res['send_seconds']:.2f} s)",
                  flush=True)

    def med(name, key):
        return statistics.median(r[key] for r in results[name])

    names = [s[0] for s in systems]
    lines = ["| system | msg/s (median of %d rounds) | CPU ms per message (median) | all rounds, msg/s |" % args.rounds,
             "|---|---|---|---|"]
    for n in names:
        lines.append(f"| {n} | {med(n, 'rate'):.1f} | {med(n, 'cpu_ms_per_msg'):.2f} | "
                     + ", ".join(f"{r['rate']:.1f}" for r in results[n]) + " |")
    summary = "\n".join(lines)
    ratio = ""
    if "postern" in results and "postfix" in results:
        ratio = (f"throughput ratio postern/postfix: {med('postern', 'rate') / med('postfix', 'rate'):.2f}; "
                 f"CPU per message postern/postfix: "
                 f"{med('postern', 'cpu_ms_per_msg') / max(med('postfix', 'cpu_ms_per_msg'), 1e-9):.2f}")
    cpu_note = {"v2": "cgroup v2 cpu.stat usage_usec of each system's own cgroup",
                "v1": "cgroup v1 cpuacct.usage of each system's own cgroup",
                "procstat": "machine-wide /proc/stat busy time (includes smtp-source and anything else running)"}[args.cpu]
    print()
    print(summary)
    print(ratio)
    print(f"CPU time measured from: {cpu_note}")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(summary + "\n\n" + ratio + "\n\nCPU time measured from: " + cpu_note + "\n")


if __name__ == "__main__":
    main()
