#!/usr/bin/python3
"""
imap_bench.py - the measuring half of bench/imap-bench.sh.

Drives two running IMAP servers (Postern's imapd and Dovecot's imap) with
the same users, passwords (the same crypt(3) hashes) and Maildir messages,
through bench/imaptest/imapload (C, one thread, epoll: the load costs far
less CPU than either server), in interleaved rounds (postern, dovecot,
postern, ...). Each round runs these phases on each system in turn, each
for SECONDS with CLIENTS clients, one user each:

  logins     connect, LOGIN, SELECT INBOX, LOGOUT, again;
  fetchhdr   sessions kept open: FETCH n (BODY.PEEK[HEADER]), n random;
  fetchbody  FETCH n (BODY.PEEK[]);
  search     SEARCH, four programs in turn (flags, a subject, size and
             flags, sender and date);
  store      STORE n +FLAGS/-FLAGS (\\Flagged);
  append     APPEND of a 4 KB message, APPENDS of them on each system (not
             SECONDS: see below; the appended messages are expunged
             afterwards, unmeasured, so every round sees the same mailboxes);
  mix        imaptest's kind of load: FETCH headers 30 %, bodies 30 %,
             SEARCH, STORE, APPEND and EXPUNGE 10 % each, a logout and a
             new login every 20 commands.

Why the APPEND phase is a number of APPENDs and not a time: the messages
it appended are expunged after it, and on a file system that keeps freed
inodes out of reuse for a while (ext4 without a journal: 60-360 s, and
every creation scans past them; docs/performance.md, Run 6) the next
round's APPENDs pay for every file the last one deleted. In a fixed time
the faster server appends, and so deletes, more, and pays more the next
round; with a fixed number both leave the same behind.

Server CPU per operation comes from the cgroup each server runs in
(machine-wide /proc/stat when none: then the client is included), the
client's from its rusage. First of all (before any load, so that imapd's
heap has no memory left over by busy sessions to hand out), memory per
idle connection: IDLE_N clients log in, SELECT and IDLE; the proportional
(PSS) and resident (RSS) memory of all the server's processes
(smaps_rollup of the cgroup's processes) before and with them, divided by
IDLE_N.

Usage (normally called by imap-bench.sh):
  imap_bench.py fill --port SMTP --users 20 --messages 200
  imap_bench.py run --imapload PATH --rounds R --clients 20 --seconds 10 --appends 25000 --cpu KIND \\
      --system postern:PORT:CGROUP --system dovecot:PORT:CGROUP [--idle N] [--markdown FILE]
"""
import argparse
import imaplib
import os
import random
import resource
import signal
import smtplib
import statistics
import subprocess
import sys
import threading
import time

from benchlib import Table, add_run_args, body_text, dispatch, systems as parse_systems
from smtp_bench import cpu_seconds   # the same CPU accounting as the SMTP bench

PASSWORD = "bench-password"
USERFMT = "bench%02u@example.test"
APPEND_FROM = "load@bench.test"      # imapload's appended messages, removed after a phase

PHASES = [
    # name, imapload arguments, the kind whose rate is the phase's figure, label
    ("logins", ["-M", "logins"], "logout", "logins/s (connect, LOGIN, SELECT, LOGOUT)"),
    ("fetchhdr", ["-M", "sessions", "-x", "fetchhdr=1"], "fetchhdr", "FETCH headers/s (BODY.PEEK[HEADER])"),
    ("fetchbody", ["-M", "sessions", "-x", "fetchbody=1"], "fetchbody", "FETCH bodies/s (BODY.PEEK[])"),
    ("search", ["-M", "sessions", "-x", "search=1"], "search", "SEARCH/s"),
    ("store", ["-M", "sessions", "-x", "store=1"], "store", "STORE/s (+/-FLAGS \\Flagged)"),
    ("append", ["-M", "sessions", "-x", "append=1"], "append", "APPEND/s (4 KB)"),
    ("mix", ["-M", "sessions", "-L", "20"], "commands", "mix: commands/s (logout every 20)"),
]
MIX_KINDS = [("login", "mix: logins/s"), ("fetchhdr", "mix: FETCH headers/s"),
             ("fetchbody", "mix: FETCH bodies/s"), ("search", "mix: SEARCH/s"), ("store", "mix: STORE/s"),
             ("append", "mix: APPEND/s"), ("expunge", "mix: EXPUNGE/s")]


def user_name(i):
    return USERFMT % i


# ---- filling the mailboxes (over SMTP, into Postern; the script copies the Maildirs for Dovecot) ----

WORDS = ["alpha", "beta", "gamma", "delta", "mail", "post", "queue", "store", "imap", "fetch", "x" * 12]


def body_of(size, rnd):
    return body_text(size, rnd, WORDS)


def fill_user(port, i, count, errors):
    rnd = random.Random(i)
    try:
        with smtplib.SMTP("127.0.0.1", port, local_hostname="bench.test", timeout=120) as s:
            for k in range(count):
                # Sizes as a mailbox has them: mostly a few KB, some tens of KB, a few hundred KB.
                r = rnd.random()
                size = rnd.randint(1000, 8000) if r < 0.8 else rnd.randint(8000, 60000) if r < 0.98 else \
                    rnd.randint(60000, 300000)
                snd = rnd.randint(0, 49)
                msg = (f"From: Sender {snd} <sender{snd}@bench.test>\r\nTo: {user_name(i)}\r\n"
                       f"Subject: message {k}\r\nDate: Thu, 26 Nov 2026 {k % 24:02d}:{k % 60:02d}:00 +0000\r\n"
                       f"Message-ID: <m{i}.{k}@bench.test>\r\nMIME-Version: 1.0\r\n"
                       f"Content-Type: text/plain; charset=us-ascii\r\n\r\n" + body_of(size, rnd))
                s.sendmail(f"sender{snd}@bench.test", [user_name(i)], msg.encode())
    except (OSError, smtplib.SMTPException) as e:
        errors.append(f"{user_name(i)}: {e}")


def fill(args):
    errors = []
    threads = [threading.Thread(target=fill_user, args=(args.port, i, args.messages, errors))
               for i in range(1, args.users + 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit("fill: " + "; ".join(errors[:5]))


# ---- one phase ----

def imapload(args, port, extra):
    cmd = [args.imapload, "-p", str(port), "-c", str(args.clients), "-n", str(args.users),
           "-u", USERFMT, "-w", PASSWORD, "-d", str(args.seconds)] + extra
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=args.seconds + 300)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit(f"imapload {' '.join(cmd)} exited {p.returncode}: {p.stderr[-2000:]}")
    res = {}
    for line in p.stdout.splitlines():
        f = line.split()
        if f and f[0] == "result":
            if f[1] == "seconds":
                res["seconds"] = float(f[2])
            else:
                res[f[1]] = {"ops": int(f[2]), "rate": float(f[3]), "errors": int(f[4]), "avg_ms": float(f[5])}
    if p.stderr.strip():
        print(p.stderr.strip()[-1000:], file=sys.stderr)
    res["client_cpu"] = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    return res


def remove_appended(port, users):
    """Expunges the messages imapload appended (From: load@bench.test), unmeasured."""
    removed = 0
    for i in range(1, users + 1):
        m = imaplib.IMAP4("127.0.0.1", port)
        m.login(user_name(i), PASSWORD)
        m.select("INBOX")
        typ, data = m.uid("SEARCH", None, "FROM", f'"{APPEND_FROM}"')
        uids = data[0].split() if typ == "OK" and data and data[0] else []
        if uids:
            for k in range(0, len(uids), 500):
                m.uid("STORE", b",".join(uids[k:k + 500]).decode(), "+FLAGS.SILENT", "(\\Deleted)")
            m.expunge()
            removed += len(uids)
        m.logout()
    return removed


def phase(args, name, extra, key, system):
    sysname, port, cg = system
    s0 = cpu_seconds(args.cpu, cg)
    res = imapload(args, port, extra)
    s1 = cpu_seconds(args.cpu, cg)
    if name in ("append", "mix"):
        remove_appended(port, args.users)
    ops = res[key]["ops"]
    errors = sum(v["errors"] for k, v in res.items() if isinstance(v, dict))
    return {"rate": res[key]["rate"], "errors": errors, "server_cpu_ms": (s1 - s0) * 1000 / max(ops, 1),
            "server_cores": (s1 - s0) / res["seconds"], "client_cores": res["client_cpu"] / res["seconds"],
            "latency_ms": res[key]["avg_ms"], "all": res}


# ---- memory per idle connection ----

def cgroup_procs(cg):
    with open(os.path.join(cg, "cgroup.procs")) as f:
        return [int(x) for x in f.read().split()]


def memory_kib(cg):
    """PSS and RSS (KiB) summed over the cgroup's processes."""
    pss = rss = 0
    for pid in cgroup_procs(cg):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                    elif line.startswith("Rss:"):
                        rss += int(line.split()[1])
        except OSError:
            pass   # a process that ended meanwhile
    return pss, rss


def idle_memory(args, system):
    sysname, port, cg = system
    if not os.path.isdir(cg):
        return None
    time.sleep(2)
    pss0, rss0 = memory_kib(cg)
    n0 = len(cgroup_procs(cg))
    cmd = [args.imapload, "-M", "idle", "-p", str(port), "-c", str(args.idle), "-n", str(args.users),
           "-u", USERFMT, "-w", PASSWORD, "-C", "20", "-d", "0"]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    ready = False
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        if line.startswith("ready"):
            ready = True
            break
    if not ready:
        p.kill()
        p.wait()
        sys.exit(f"{sysname}: {args.idle} idle connections did not all get ready")
    time.sleep(3)
    pss1, rss1 = memory_kib(cg)
    n1 = len(cgroup_procs(cg))
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=60)
    return {"pss_kib": (pss1 - pss0) / args.idle, "rss_kib": (rss1 - rss0) / args.idle,
            "procs": n1 - n0, "pss_total_mib": pss1 / 1024}


# ---- the run ----

def run(args):
    systems = parse_systems(args.system)
    names = [n for n, _, _ in systems]
    # Memory first, on servers that have not served the load yet: imapd's heap would otherwise
    # hand the idle sessions memory that the busy ones left (Dovecot starts a process for each).
    mem = {}
    if args.idle > 0:
        for s in systems:
            mem[s[0]] = idle_memory(args, s)
            if mem[s[0]]:
                m = mem[s[0]]
                print(f"{s[0]:8} {args.idle} idle connections: {m['pss_kib']:.1f} KiB PSS, {m['rss_kib']:.1f} KiB RSS "
                      f"per connection ({m['procs']} more processes)", flush=True)
    # Warm-up: every user logs in and reads on each system (Dovecot completes its index and cache then).
    for s in systems:
        imapload(args, s[1], ["-M", "sessions", "-x", "fetchhdr=1,fetchbody=1,search=1", "-d", "3"])
    results = {p[0]: {n: [] for n in names} for p in PHASES}
    phases = [p for p in PHASES if not args.phases or p[0] in args.phases.split(",")]
    for r in range(args.rounds):
        for name, extra, key, label in phases:
            if name == "append":   # a number of APPENDs, with time enough for the slower system
                extra = extra + ["-N", str(args.appends), "-d", str(max(args.seconds, 1) * 10)]
            for s in systems:
                res = phase(args, name, extra, key, s)
                results[name][s[0]].append(res)
                print(f"round {r + 1} {s[0]:8} {name:9} {res['rate']:9.1f}/s  errors {res['errors']:3}  "
                      f"server {res['server_cpu_ms']:6.2f} ms/op {res['server_cores']:4.2f} cores  "
                      f"client {res['client_cores']:4.2f} cores  latency {res['latency_ms']:.2f} ms", flush=True)

    def med(name, sysname, f):
        return statistics.median(f(x) for x in results[name][sysname])

    table = Table(names)
    row = table.row

    for name, extra, key, label in phases:
        row(label, [med(name, n, lambda x: x["rate"]) for n in names], "{:.0f}")
    if "mix" in [p[0] for p in phases]:
        for kind, label in MIX_KINDS:
            row(label, [med("mix", n, lambda x: x["all"][kind]["rate"]) for n in names], "{:.0f}")
    for name, extra, key, label in phases:
        row(f"server CPU ms per op: {name}", [med(name, n, lambda x: x["server_cpu_ms"]) for n in names], "{:.2f}")
    for name, extra, key, label in phases:
        row(f"client CPU (cores): {name}", [med(name, n, lambda x: x["client_cores"]) for n in names], "{:.2f}")
    errs = [sum(x["errors"] for p in phases for x in results[p[0]][n]) for n in names]
    table.line("| errors (all phases and rounds) | " + " | ".join(str(e) for e in errs) + (" | |" if table.two else " |"))
    if mem:
        row(f"memory per idle connection, PSS KiB ({args.idle} in IDLE)",
            [mem[n]["pss_kib"] if mem.get(n) else None for n in names], "{:.1f}")
        row("memory per idle connection, RSS KiB",
            [mem[n]["rss_kib"] if mem.get(n) else None for n in names], "{:.1f}")
    table.emit(f"\nmedians of {args.rounds} rounds of {args.seconds} s (append: {args.appends} APPENDs), {args.clients} clients "
               f"(ratio = {names[0]} / {names[-1]}; CPU accounting: {args.cpu})", args.markdown)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="what", required=True)
    f = sub.add_parser("fill")
    f.add_argument("--port", type=int, required=True)
    f.add_argument("--users", type=int, default=20)
    f.add_argument("--messages", type=int, default=200, help="messages per user")
    r = sub.add_parser("run")
    r.add_argument("--imapload", required=True)
    r.add_argument("--rounds", type=int, default=3)
    r.add_argument("--clients", type=int, default=20)
    r.add_argument("--users", type=int, default=20)
    r.add_argument("--seconds", type=float, default=10)
    r.add_argument("--appends", type=int, default=25000, help="APPENDs per append phase and system")
    r.add_argument("--idle", type=int, default=500, help="idle connections for the memory figure (0: none)")
    r.add_argument("--phases", help="comma-separated subset of " + ",".join(p[0] for p in PHASES))
    add_run_args(r)
    dispatch(ap, fill, run)


if __name__ == "__main__":
    main()
