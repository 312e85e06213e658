#!/usr/bin/python3
"""
imap_idle_sync.py - what one delivery costs the IMAP server when many
sessions IDLE on one big mailbox: N sessions log in, SELECT INBOX and IDLE;
then R times one message is delivered, and for each delivery the seconds
until every session has its new EXISTS and the CPU time the server's IMAP
processes spent meanwhile are taken. The medians over the R deliveries are
printed per system, side by side, with their ratio (first system / second).

Run by bench/imap-idle-bench.sh (Postern and Dovecot on the same
100,000-message Maildir); usable alone against running servers:

    imap_idle_sync.py --user U --password P --sessions N --rounds R \\
        --system NAME:PORT:DELIVER:PIDS [--system ...] [--markdown FILE]

DELIVER is "smtp:PORT" (one message over SMTP; the 250 starts the clock) or
a shell command that reads the message on stdin and returns once it is
delivered (dovecot-lda). PIDS is a shell command printing the pids whose
CPU counts (the server's IMAP processes; read once, after the logins):
/proc/PID/task/*/schedstat, in nanoseconds.

Owns its connections only; never starts or stops a server.
"""
import argparse
import os
import re
import selectors
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from benchlib import Table  # noqa: E402
from imap_large import Imap  # noqa: E402
from mailtest import make_message, send_mail  # noqa: E402


def cpu_ns(pids):
    total = 0
    for pid in pids:
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass   # gone meanwhile: its time is lost to both readings alike
    return total


def deliver(spec, user, n):
    msg = make_message(to=user, subject=f"idle sync {n}", body="One more.\n")
    if spec.startswith("smtp:"):
        code, text = send_mail(int(spec[5:]), rcpts=(user,), msg=msg)
        if code != 250:
            raise RuntimeError(f"SMTP: {code} {text}")
        return
    subprocess.run(spec, shell=True, input=msg.as_bytes(), check=True)


def run_system(name, port, dspec, pids_cmd, a):
    cs = []
    for _ in range(a.sessions):
        c = Imap(port)
        c.cmd(f'LOGIN "{a.user}" "{a.password}"')
        _, out = c.cmd("SELECT INBOX")
        c.exists = int(re.search(rb"\* (\d+) EXISTS", out).group(1))
        c.s.sendall(b"i IDLE\r\n")
        c.read_until(rb"^\+ ")
        c.buf = b""
        cs.append(c)
    pids = [int(p) for p in subprocess.run(pids_cmd, shell=True, capture_output=True, text=True).stdout.split()]
    if not pids:
        raise RuntimeError(f"{name}: no pids from {pids_cmd!r}")
    time.sleep(2.0)   # the logins' work is over; idle sessions settle as they would
    sel = selectors.DefaultSelector()
    for c in cs:
        sel.register(c.s, selectors.EVENT_READ, c)
    firsts, lasts, cpus = [], [], []
    for r in range(a.rounds):
        cpu0 = cpu_ns(pids)
        deliver(dspec, a.user, r)
        t0 = time.monotonic()
        pending, waits = set(cs), []
        while pending:
            if time.monotonic() - t0 > 60:
                raise RuntimeError(f"{name}: {len(pending)} sessions without EXISTS after 60 s")
            for key, _ in sel.select(1.0):
                c = key.data
                data = c.s.recv(1 << 16)
                if not data:
                    raise RuntimeError(f"{name}: connection closed")
                c.buf += data
                m = re.search(rb"^\* (\d+) EXISTS\r$", c.buf, re.M)
                if c in pending and m and int(m.group(1)) > c.exists:
                    c.exists = int(m.group(1))
                    c.buf = b""
                    waits.append(time.monotonic() - t0)
                    pending.discard(c)
        time.sleep(1.0)   # what a wake-up does after the EXISTS (Dovecot's index writes) counts too
        cpus.append((cpu_ns(pids) - cpu0) / 1e6)
        firsts.append(min(waits) * 1000)
        lasts.append(max(waits) * 1000)
        print(f"{name} round {r + 1}: EXISTS after {min(waits) * 1000:.0f}-{max(waits) * 1000:.0f} ms, "
              f"CPU {cpus[-1]:.1f} ms ({len(pids)} processes)", flush=True)
    for c in cs:
        c.s.sendall(b"DONE\r\n")
        c.read_until(rb"^i OK")
        c.cmd("LOGOUT")
        c.s.close()
    return statistics.median(firsts), statistics.median(lasts), statistics.median(cpus)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--system", action="append", required=True, help="NAME:PORT:DELIVER:PIDS")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--markdown")
    a = ap.parse_args()
    names, results = [], []
    for spec in a.system:
        name, port, rest = spec.split(":", 2)
        # DELIVER may itself be "smtp:PORT"; PIDS is after the last ':' that is not part of it
        if rest.startswith("smtp:"):
            p, pids_cmd = rest[5:].split(":", 1)
            dspec = "smtp:" + p
        else:
            dspec, pids_cmd = rest.rsplit(":", 1)
        names.append(name)
        results.append(run_system(name, int(port), dspec, pids_cmd, a))
    t = Table(names)
    t.row("first EXISTS after the delivery, ms", [r[0] for r in results], "{:.0f}")
    t.row("last EXISTS after the delivery, ms", [r[1] for r in results], "{:.0f}")
    t.row(f"CPU of the IMAP processes per delivery, ms ({a.sessions} sessions)", [r[2] for r in results], "{:.1f}")
    t.row("CPU per woken session, ms", [r[2] / a.sessions for r in results], "{:.3f}")
    t.emit(f"{a.sessions} sessions IDLE, {a.rounds} deliveries, medians:", a.markdown)


if __name__ == "__main__":
    main()
