#!/usr/bin/python3
"""
imap_idle_mem.py - memory per IDLE connection of Postern's imapd, up to
10,000 connections on one imapd, and whether IDLE still sees new mail then.

Starts a whole instance (the integration harness, on free loopback ports)
with max_connections above N, gives it U users (SHA512-CRYPT hashes, so
10,000 logins take seconds, not minutes of yescrypt), then opens N
connections from one process (non-blocking sockets on epoll, at most W
logins in flight) that each LOGIN as user i % U, SELECT INBOX and IDLE.
imapd's memory is read at checkpoints (VmRSS, and Rss/Pss/Private_Dirty
from /proc/PID/smaps_rollup) together with its open descriptors, so the
cost per connection is the slope, not a fixed part divided by N. Then:

  - one message is sent over SMTP to user 0, and the time from the SMTP
    250 to the "* 1 EXISTS" of each of that user's IDLE sessions is
    printed (first, median, last); the target is under 1 s;
  - every session is sent DONE, and the tagged OKs are counted: each of
    the N sessions must still answer.

Usage (from the repository, after a build; the instance inherits the
client's hard open files limit, which only root may raise):

    python3 bench/imap_idle_mem.py [-n 10000] [-u USERS] [-w WINDOW] [--compress]

--compress: each session sends COMPRESS DEFLATE behind its LOGIN, and
SELECT, IDLE and DONE compressed (what a compressed idle session costs).

Exits 1 when a session failed to get to IDLE, missed the delivery, or
did not answer DONE. Owns its instance and its temporary directory.
"""
import argparse
import os
import re
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from benchlib import private_instance  # noqa: E402
from harness import DOMAIN, POSTERN  # noqa: E402
from mailtest import send_mail  # noqa: E402

PASSWORD = "idle-bench-pw"


def user_name(i):
    return f"idle{i:05d}@{DOMAIN}"


def proc_mem(pid):
    """VmRSS, and Rss, Pss, Private_Dirty from smaps_rollup; KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                out["vmrss"] = int(line.split()[1])
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            k, _, rest = line.partition(":")
            if k in ("Rss", "Pss", "Private_Dirty"):
                out[k.lower()] = int(rest.split()[0])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def top_mappings(pid, k=6):
    """The k mappings of pid with the most resident memory: (Rss KiB, what)."""
    out, cur = [], None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            w = line.split()
            if "-" in w[0] and ":" not in w[0]:
                cur = " ".join(w[5:]) or f"[anon {w[0]}]"
            elif w[0] == "Rss:":
                out.append((int(w[1]), cur))
    return sorted(out, reverse=True)[:k]


def tcp_mem_kib():
    """Kernel memory of all TCP sockets (pages in /proc/net/sockstat), KiB."""
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                w = line.split()
                return int(w[w.index("mem") + 1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    return 0


def raise_nofile(n, users, window):
    """Soft limit to the hard one (the client needs n sockets); say when imapd's need is above it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # imapd: a socket per session; index, -wal and -shm of each user with a session not (yet) in IDLE.
    need = n + 3 * min(users, 2 * window) + 256
    if hard != resource.RLIM_INFINITY and hard < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))   # root with CAP_SYS_RESOURCE only
            hard = need
        except (ValueError, OSError):
            sys.exit(f"imapd would need about {need} open files for {n} sessions of {users} users; "
                     f"the hard limit is {hard} and cannot be raised here (ulimit -Hn, as root)")
    # The instance started below inherits the hard limit; each daemon raises its own soft limit to it.
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Client:
    __slots__ = ("sock", "idx", "user", "buf", "state", "t0", "zo", "zi", "raw")

    def __init__(self, sock, idx, user):
        self.sock, self.idx, self.user = sock, idx, user
        self.buf = b""
        self.state = "greet"   # greet -> login (LOGIN, SELECT, IDLE sent) -> idle -> done
        self.t0 = time.monotonic()
        self.zo = self.zi = None   # --compress: our compressor, the server's stream once its OK is in
        self.raw = None

    def feed(self, data):
        """Received bytes; with --compress, inflated from the byte after COMPRESS's tagged OK on."""
        if self.zi:
            self.buf += self.zi.decompress(data)
            return
        if self.raw is None:
            self.buf += data
            return
        self.raw += data
        m = re.search(rb"^z OK[^\r]*\r\n", self.raw, re.M)
        if m is None:
            self.buf = self.raw
            return
        self.zi = zlib.decompressobj(-15)
        self.buf = self.raw[:m.end()] + self.zi.decompress(self.raw[m.end():])

    def pack(self, data):
        return self.zo.compress(data) + self.zo.flush(zlib.Z_SYNC_FLUSH) if self.zo else data


def add_users(inst, n):
    import crypt  # deprecated in 3.11, still in Debian 12's Python; only for the hash
    h = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_SHA512))
    procs = []
    for i in range(n):
        p = subprocess.Popen([str(POSTERN), "-c", str(inst.conf), "user", "add", user_name(i), "--hash-stdin"],
                             cwd=inst.dir, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        p.stdin.write((h + "\n").encode())
        p.stdin.close()
        procs.append(p)
        if len(procs) >= 8:
            if procs.pop(0).wait() != 0:
                sys.exit("postern user add failed")
    for p in procs:
        if p.wait() != 0:
            sys.exit("postern user add failed")


def open_sessions(port, n, users, window, pid, checkpoints, timeout, compress=False):
    """Bring n clients to IDLE; returns (clients, selector, memory rows, seconds)."""
    sel = selectors.DefaultSelector()
    clients, pending = [], 0
    idle, failed = 0, []
    rows = []
    started = time.monotonic()
    next_cp = 0
    deadline = started + timeout
    while idle + len(failed) < n:
        while pending < window and len(clients) < n:
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            c = Client(s, len(clients), user_name(len(clients) % users))
            clients.append(c)
            sel.register(s, selectors.EVENT_READ, c)
            pending += 1
        if time.monotonic() > deadline:
            sys.exit(f"only {idle} of {n} sessions reached IDLE in {timeout} s")
        for key, _ in sel.select(1.0):
            c = key.data
            try:
                data = c.sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                data, err = b"", str(e)
            else:
                err = "closed by the server"
            if not data:
                failed.append((c.idx, c.state, err + " " + c.buf[-200:].decode("latin-1")))
                sel.unregister(c.sock)
                pending -= 1
                continue
            c.feed(data)
            if c.state == "greet" and b"\r\n" in c.buf:
                if not c.buf.startswith(b"* OK"):
                    failed.append((c.idx, c.state, c.buf[:200].decode("latin-1")))
                    sel.unregister(c.sock)
                    pending -= 1
                    continue
                c.buf = b""
                c.state = "login"
                login = f"a LOGIN {c.user} {PASSWORD}\r\n".encode()
                rest = b"b SELECT INBOX\r\nc IDLE\r\n"
                if compress:
                    # RFC 4978 COMPRESS DEFLATE pipelined: every byte after its line is compressed.
                    c.zo = zlib.compressobj(6, zlib.DEFLATED, -15)
                    c.raw = b""
                    rest = b"z COMPRESS DEFLATE\r\n" + c.pack(rest)
                c.sock.sendall(login + rest)
            elif c.state == "login":
                if re.search(rb"^[ab] (NO|BAD)", c.buf, re.M):
                    failed.append((c.idx, c.state, c.buf[-300:].decode("latin-1")))
                    sel.unregister(c.sock)
                    pending -= 1
                elif re.search(rb"^\+ ", c.buf, re.M):
                    c.state = "idle"
                    c.buf = b""
                    idle += 1
                    pending -= 1
        if failed and len(failed) > n // 100 + 5:
            break
        while next_cp < len(checkpoints) and idle >= checkpoints[next_cp]:
            time.sleep(0.5)
            rows.append((checkpoints[next_cp], time.monotonic() - started, proc_mem(pid), tcp_mem_kib()))
            next_cp += 1
    return clients, sel, rows, time.monotonic() - started, failed


def read_until(c, pattern, deadline):
    rx = re.compile(pattern, re.M)
    c.sock.setblocking(True)
    try:
        while not rx.search(c.buf):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            c.sock.settimeout(left)
            try:
                data = c.sock.recv(4096)
            except socket.timeout:
                return False
            if not data:
                return False
            c.feed(data)
        return True
    finally:
        c.sock.setblocking(False)


def cpu_s(pid):
    """utime + stime of pid, seconds."""
    with open(f"/proc/{pid}/stat") as f:
        w = f.read().rsplit(")", 1)[1].split()
    return (int(w[11]) + int(w[12])) / os.sysconf("SC_CLK_TCK")


def delivery_check(inst, clients, sel, users):
    """Mail to user 0; seconds from the SMTP 250 to each of its sessions' EXISTS."""
    mine = [c for c in clients if c.state == "idle" and c.user == user_name(0)]
    for c in mine:
        c.buf = b""
    t_send = time.monotonic()
    code, text = send_mail(inst.ports["smtp"], rcpts=(user_name(0),))
    t_250 = time.monotonic()
    if code != 250:
        sys.exit(f"SMTP DATA answered {code} {text}")
    seen = {}
    deadline = t_250 + 30
    waiting = {c.sock: c for c in mine}
    while waiting and time.monotonic() < deadline:
        for key, _ in sel.select(0.5):
            c = key.data
            if c.sock not in waiting:
                try:
                    c.sock.recv(4096)   # other users' sessions must stay quiet; drain
                except OSError:
                    pass
                continue
            try:
                data = c.sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            c.feed(data)
            if re.search(rb"^\* 1 EXISTS", c.buf, re.M):
                seen[c.idx] = time.monotonic() - t_250
                del waiting[c.sock]
    return t_250 - t_send, sorted(seen.values()), len(mine)


def done_all(clients, sel, timeout, batch):
    """DONE to every idle session, batch at a time; count the tagged OKs.

    Each batch then logs out: a session that leaves IDLE takes its user's
    index connection back (three descriptors), so 10,000 users all busy at
    once would need 40,000 open files; what is checked is that every
    session still answers.
    """
    live = [c for c in clients if c.state == "idle"]
    t0 = time.monotonic()
    deadline = t0 + timeout
    ok = 0
    for i in range(0, len(live), batch):
        part = live[i:i + batch]
        for c in part:
            c.buf = b""
            done = c.pack(b"DONE\r\n")
            try:
                c.sock.sendall(done)
            except BlockingIOError:
                c.sock.setblocking(True)
                c.sock.sendall(done)
                c.sock.setblocking(False)
        waiting = len(part)
        while waiting and time.monotonic() < deadline:
            for key, _ in sel.select(0.5):
                c = key.data
                try:
                    data = c.sock.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(c.sock)
                    if c.state == "idle" and c in part:
                        waiting -= 1
                    c.state = "closed"
                    continue
                c.feed(data)
                if c.state == "idle" and re.search(rb"^c OK", c.buf, re.M):
                    c.state = "done"
                    ok += 1
                    waiting -= 1
                    try:
                        c.sock.sendall(c.pack(b"z LOGOUT\r\n"))
                    except OSError:
                        pass
    return ok, len(live), time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--connections", type=int, default=10000)
    ap.add_argument("-u", "--users", type=int, default=1, help="connection i logs in as user i %% USERS")
    ap.add_argument("-w", "--window", type=int, default=64, help="logins in flight at once")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--smaps", action="store_true", help="print imapd's largest mappings at the end")
    ap.add_argument("--compress", action="store_true", help="every session turns on COMPRESS DEFLATE (RFC 4978)")
    a = ap.parse_args()
    n, users = a.connections, max(1, min(a.users, a.connections))
    nofile = raise_nofile(n, users, a.window)

    with private_instance("postern-imapmem-", {"imapd": {"max_connections": str(n + 100)}}) as run:
        inst = run.inst
        inst.tool("domain", "add", DOMAIN)
        t = time.monotonic()
        add_users(inst, users)
        t_users = time.monotonic() - t
        pid = int(re.search(r"imapd: started pid=(\d+)", inst.log()).group(1))
        m = re.search(r"imapd\[\d+\].*open_files=(\d+)", inst.log()) or re.search(r"open_files=(\d+)", inst.log())
        print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; open files: client {nofile}, "
              f"imapd {m.group(1) if m else '?'}")
        print(f"{n} connections, {users} user(s) ({t_users:.1f} s to add them), {a.window} logins in flight")
        time.sleep(1)
        before = proc_mem(pid)
        tcp0 = tcp_mem_kib()
        step = max(1, n // 5)
        cps = sorted(set([min(1000, n)] + list(range(step, n + 1, step)) + [n]))
        clients, sel, rows, secs, failed = open_sessions(inst.ports["imap"], n, users, a.window, pid, cps,
                                                         a.timeout, a.compress)
        idle = sum(1 for c in clients if c.state == "idle")
        print(f"{idle} sessions in IDLE after {secs:.1f} s ({idle / secs:.0f} logins+SELECT+IDLE per s)")
        if failed:
            run.ok = False
            print(f"FAILED: {len(failed)} sessions, e.g. {failed[:3]}")
        print("| IDLE sessions | VmRSS KiB | Pss KiB | Private_Dirty KiB | imapd fds | kernel TCP KiB |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        print(f"| 0 | {before['vmrss']} | {before['pss']} | {before['private_dirty']} | {before['fds']} | {tcp0} |")
        for k, _, mem, tcp in rows:
            print(f"| {k} | {mem['vmrss']} | {mem['pss']} | {mem['private_dirty']} | {mem['fds']} | {tcp} |")
        if rows:
            k, _, last, _ = rows[-1]
            print(f"per IDLE session (all {k}, from 0): RSS {(last['vmrss'] - before['vmrss']) / k:.1f} KiB, "
                  f"PSS {(last['pss'] - before['pss']) / k:.1f} KiB")
            if len(rows) >= 2:
                k0, _, first, _ = rows[0]
                print(f"per IDLE session (slope {k0} -> {k}): "
                      f"RSS {(last['vmrss'] - first['vmrss']) / (k - k0):.1f} KiB, "
                      f"PSS {(last['pss'] - first['pss']) / (k - k0):.1f} KiB, "
                      f"fds {(last['fds'] - first['fds']) / (k - k0):.2f}")
        if a.smaps:
            print("imapd's largest mappings (Rss KiB):", top_mappings(pid))
        cpu0 = cpu_s(pid)
        smtp_s, lat, mine = delivery_check(inst, clients, sel, users)
        cpu1 = cpu_s(pid)
        if len(lat) < mine:
            run.ok = False
        if lat:
            print(f"delivery to {user_name(0)} (SMTP took {smtp_s * 1000:.0f} ms): {len(lat)} of its {mine} IDLE "
                  f"session(s) saw EXISTS; after the 250: first {lat[0] * 1000:.0f} ms, "
                  f"median {statistics.median(lat) * 1000:.0f} ms, last {lat[-1] * 1000:.0f} ms "
                  f"({'within' if lat[-1] < 1 else 'NOT within'} 1 s); imapd CPU meanwhile "
                  f"{(cpu1 - cpu0) * 1000:.0f} ms")
        else:
            print(f"delivery to {user_name(0)}: no IDLE session saw it within 30 s")
        done, live, dsecs = done_all(clients, sel, 300, 8 * a.window)
        print(f"DONE to {live} sessions: {done} answered OK in {dsecs:.1f} s")
        if done < live or idle < n:
            run.ok = False
        for c in clients:
            c.sock.close()
    sys.exit(0 if run.ok else 1)


if __name__ == "__main__":
    main()
