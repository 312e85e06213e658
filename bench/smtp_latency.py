#!/usr/bin/python3
"""
smtp_latency.py - where one SMTP transaction waits, while smtp-source loads the server.

Starts smtp-source with SESSIONS-1 sessions (one connection per message, as
bench/smtp-bench.sh does) against a running server, then sends MESSAGES
messages of about 4 KiB itself, one connection each, and times every step
from the client's side: connect and greeting, EHLO, MAIL, RCPT, DATA, the
body up to the 250 after ".", QUIT. Prints the median and the 90th
percentile of each step in milliseconds. The server is whatever listens on
PORT (a Postern or Postfix instance started by hand or kept by the bench);
this script never starts or stops one. Mail goes to alice@example.test.

Usage: bench/smtp_latency.py PORT [--messages 400] [--sessions 20]
"""
import argparse
import socket
import statistics
import subprocess
import time

STEPS = ("connect+greet", "ehlo", "mail", "rcpt", "data", "dot->250", "quit", "total")
BODY = b"Subject: latency probe\r\n\r\n" + (b"x" * 76 + b"\r\n") * 52 + b".\r\n"


def reply(f):
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("connection closed")
        if line[3:4] != b"-":
            return line


def one(port):
    t = [time.perf_counter()]
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")
    reply(f)
    t.append(time.perf_counter())
    for cmd in (b"EHLO probe.test", b"MAIL FROM:<sender@example.test>", b"RCPT TO:<alice@example.test>", b"DATA"):
        s.sendall(cmd + b"\r\n")
        r = reply(f)
        if r[:1] not in (b"2", b"3"):
            raise RuntimeError(f"{cmd!r}: {r!r}")
        t.append(time.perf_counter())
    s.sendall(BODY)
    r = reply(f)
    if not r.startswith(b"250"):
        raise RuntimeError(f"end of data: {r!r}")
    t.append(time.perf_counter())
    s.sendall(b"QUIT\r\n")
    reply(f)
    s.close()
    t.append(time.perf_counter())
    steps = [(b - a) * 1000 for a, b in zip(t, t[1:])]
    return steps + [(t[-1] - t[0]) * 1000]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--messages", type=int, default=400)
    ap.add_argument("--sessions", type=int, default=20)
    args = ap.parse_args()
    load = subprocess.Popen(["smtp-source", "-s", str(args.sessions - 1), "-l", "4096", "-m", "1000000", "-c",
                             "-f", "sender@example.test", "-t", "alice@example.test", f"127.0.0.1:{args.port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        runs = [one(args.port) for _ in range(args.messages)]
    finally:
        load.terminate()
        load.wait()
    cols = list(zip(*runs))
    print("  ".join(f"{name} {statistics.median(c):.2f}/{sorted(c)[int(len(c) * 0.9)]:.2f}"
                    for name, c in zip(STEPS, cols)))


if __name__ == "__main__":
    main()
