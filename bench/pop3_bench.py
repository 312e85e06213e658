#!/usr/bin/python3
"""
pop3_bench.py - the measuring half of bench/pop3-bench.sh.

Drives two running POP3 servers (Postern's pop3d and Dovecot's pop3) with
the same users, passwords (the same crypt(3) hashes) and Maildir messages,
in interleaved rounds (postern, dovecot, postern, ...):

  logins    CLIENTS processes at once, each with its own user, repeat
            connect, USER, PASS, STAT, QUIT until LOGINS sessions are done
            in total; logins per second over the wall time;
  download  one client logs in as the download user, sends RETR 1..N one
            at a time (no pipelining, as common clients do) and reads each
            answer to its end; messages/s and MB/s (bytes on the wire).

Each phase's client work runs in child processes, so the client's CPU time
(user + system of the children) is reported beside the server's (from the
cgroup the server was started in; machine-wide /proc/stat when none: then
the report says so and the client is included). A client that uses most of
a core marks a client-bound figure.

Usage (normally called by pop3-bench.sh):
  pop3_bench.py fill --port SMTP --users 20 --messages 2000 ...
  pop3_bench.py run --rounds R --clients 20 --logins N --cpu KIND \
      --system postern:PORT:CGROUP --system dovecot:PORT:CGROUP [--markdown FILE]
"""
import argparse
import multiprocessing as mp
import os
import random
import resource
import smtplib
import socket
import statistics
import sys
import time

from benchlib import Table, add_run_args, body_text, dispatch, systems as parse_systems
from smtp_bench import cpu_seconds   # the same CPU accounting as the SMTP bench

PASSWORD = "bench-password"


def user_name(i):
    return f"bench{i:02d}@example.test"


DOWNLOAD_USER = "download@example.test"


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# ---- filling the mailboxes (over SMTP, into Postern; the script copies the Maildirs for Dovecot) ----

WORDS = ["alpha", "beta", "gamma", "delta", "mail", "post", "queue", "store", ".dot", "x" * 12]


def body_of(size, seed):
    return body_text(size, random.Random(seed), WORDS)


def fill(args):
    rnd = random.Random(1)
    with smtplib.SMTP("127.0.0.1", args.port, local_hostname="bench.test", timeout=60) as s:
        for i in range(1, args.users + 1):
            for k in range(args.small):
                msg = (f"From: sender@bench.test\r\nTo: {user_name(i)}\r\nSubject: small {k}\r\n"
                       f"Message-ID: <s{i}.{k}@bench.test>\r\n\r\n" + body_of(2000, i * 1000 + k))
                s.sendmail("sender@bench.test", [user_name(i)], msg.encode())
        for k in range(args.messages):
            # Sizes as a mailbox has them: mostly a few KB, some tens of KB, a few hundred KB.
            r = rnd.random()
            size = rnd.randint(1000, 8000) if r < 0.8 else rnd.randint(8000, 60000) if r < 0.98 else \
                rnd.randint(60000, 400000)
            msg = (f"From: sender@bench.test\r\nTo: {DOWNLOAD_USER}\r\nSubject: message {k}\r\n"
                   f"Message-ID: <d{k}@bench.test>\r\n\r\n" + body_of(size, k))
            s.sendmail("sender@bench.test", [DOWNLOAD_USER], msg.encode())


# ---- the clients ----

class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                ln = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return ln
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("closed")
            self.buf += chunk

    def cmd(self, text):
        self.s.sendall(text.encode() + b"\r\n")
        ln = self.line()
        if not ln.startswith(b"+OK"):
            raise RuntimeError(f"{text.split()[0]}: {ln!r}")
        return ln

    def multi(self):
        """The rest of a multi-line answer (after its +OK line): bytes up to and with the final .CRLF."""
        buf = self.buf
        while not (buf.endswith(b"\r\n.\r\n") or buf == b".\r\n"):
            chunk = self.s.recv(262144)
            if not chunk:
                raise EOFError("closed")
            buf += chunk
        n = len(buf)
        self.buf = bytearray()
        return n

    def close(self):
        self.s.close()


def login_worker(port, user, count, q):
    errors = 0
    for _ in range(count):
        try:
            c = Conn(port)
            if not c.line().startswith(b"+OK"):
                raise RuntimeError("greeting")
            c.cmd(f"USER {user}")
            c.cmd(f"PASS {PASSWORD}")
            c.cmd("STAT")
            c.cmd("QUIT")
            c.close()
        except (OSError, EOFError, RuntimeError) as e:
            errors += 1
            if errors == 1:
                print(f"login error ({user}): {e}", file=sys.stderr)
    q.put(errors)


def download_worker(port, q):
    c = Conn(port)
    c.line()
    c.cmd(f"USER {DOWNLOAD_USER}")
    c.cmd(f"PASS {PASSWORD}")
    n = int(c.cmd("STAT").split()[1])
    total = 0
    for i in range(1, n + 1):
        c.s.sendall(b"RETR %d\r\n" % i)
        first = c.line()
        if not first.startswith(b"+OK"):
            raise RuntimeError(f"RETR {i}: {first!r}")
        total += len(first) + 2 + c.multi()
    c.cmd("QUIT")
    c.close()
    q.put((n, total))


def run_children(procs):
    cpu0 = children_cpu()
    t0 = time.monotonic()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return time.monotonic() - t0, children_cpu() - cpu0


def logins_round(name, port, cgroup, args):
    q = mp.Queue()
    per = args.logins // args.clients
    procs = [mp.Process(target=login_worker, args=(port, user_name(i + 1), per, q)) for i in range(args.clients)]
    s0 = cpu_seconds(args.cpu, cgroup)
    wall, ccpu = run_children(procs)
    s1 = cpu_seconds(args.cpu, cgroup)
    errors = sum(q.get() for _ in procs)
    done = per * args.clients - errors
    return {"system": name, "rate": done / wall, "errors": errors, "seconds": wall,
            "server_cpu_ms": (s1 - s0) * 1000 / max(done, 1), "client_cpu": ccpu / wall}


def download_round(name, port, cgroup, args):
    q = mp.Queue()
    p = mp.Process(target=download_worker, args=(port, q))
    s0 = cpu_seconds(args.cpu, cgroup)
    wall, ccpu = run_children([p])
    s1 = cpu_seconds(args.cpu, cgroup)
    if p.exitcode != 0:
        sys.exit(f"{name}: download client failed")
    n, total = q.get()
    return {"system": name, "messages": n, "bytes": total, "rate": n / wall, "mbps": total / wall / 1e6,
            "seconds": wall, "server_cpu": (s1 - s0) / wall, "client_cpu": ccpu / wall}


def run(args):
    systems = parse_systems(args.system)
    # Warm-up: a first login and download on each (Dovecot builds its own index of the Maildir then).
    for name, port, cg in systems:
        download_round(name, port, cg, args)
        for i in range(args.clients):
            q = mp.Queue()
            login_worker(port, user_name(i + 1), 1, q)
    logins = {n: [] for n, _, _ in systems}
    downloads = {n: [] for n, _, _ in systems}
    for r in range(args.rounds):
        for name, port, cg in systems:
            res = logins_round(name, port, cg, args)
            logins[name].append(res)
            print(f"round {r + 1} {name:8} logins: {res['rate']:8.0f}/s  errors {res['errors']}  "
                  f"server CPU {res['server_cpu_ms']:.2f} ms/login  client CPU {res['client_cpu'] * 100:.0f}%",
                  flush=True)
        for name, port, cg in systems:
            res = download_round(name, port, cg, args)
            downloads[name].append(res)
            print(f"round {r + 1} {name:8} download: {res['rate']:8.0f} msg/s  {res['mbps']:7.1f} MB/s  "
                  f"({res['messages']} messages, {res['bytes'] / 1e6:.1f} MB)  server CPU "
                  f"{res['server_cpu'] * 100:.0f}%  client CPU {res['client_cpu'] * 100:.0f}%", flush=True)

    def med(d, name, key):
        return statistics.median(x[key] for x in d[name])

    names = [n for n, _, _ in systems]
    table = Table(names)

    def row(label, d, key, fmt):
        table.row(label, [med(d, n, key) for n in names], fmt)

    row(f"logins/s ({args.clients} clients, USER/PASS/STAT/QUIT)", logins, "rate", "{:.0f}")
    row("server CPU per login (ms)", logins, "server_cpu_ms", "{:.2f}")
    row("client CPU during logins (cores)", logins, "client_cpu", "{:.2f}")
    row("download: messages/s", downloads, "rate", "{:.0f}")
    row("download: MB/s", downloads, "mbps", "{:.1f}")
    row("server CPU during download (cores)", downloads, "server_cpu", "{:.2f}")
    row("client CPU during download (cores)", downloads, "client_cpu", "{:.2f}")
    table.emit(f"\nmedians of {args.rounds} rounds (ratio = {names[0]} / {names[-1]}; CPU accounting: {args.cpu})",
               args.markdown)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="what", required=True)
    f = sub.add_parser("fill")
    f.add_argument("--port", type=int, required=True)
    f.add_argument("--users", type=int, default=20)
    f.add_argument("--small", type=int, default=5, help="messages per login user")
    f.add_argument("--messages", type=int, default=2000, help="messages of the download user")
    r = sub.add_parser("run")
    r.add_argument("--rounds", type=int, default=3)
    r.add_argument("--clients", type=int, default=20)
    r.add_argument("--logins", type=int, default=2000, help="logins per round, all clients together")
    add_run_args(r)
    dispatch(ap, fill, run)


if __name__ == "__main__":
    main()
