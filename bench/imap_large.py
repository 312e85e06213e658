#!/usr/bin/python3
"""
imap_large.py - SELECT, UID FETCH 1:* (FLAGS) and SEARCH on flags in one
100,000-message mailbox of Postern's imapd, and proof that none of them
opens a message file.

Starts a whole instance (the integration harness, on free loopback ports),
fills big@example.test's INBOX through the mail store itself
(build/bench/imapstore/fill_store: mc_store_deliver_many in batches of
1,000, as queued delivers; every 3rd message \\Seen, every 10th \\Flagged),
then over one IMAP connection times, R rounds each (the median is printed):

    LOGIN (opens the user's store)   SELECT INBOX   UID FETCH 1:* (FLAGS)
    SEARCH UNSEEN   UID SEARCH FLAGGED   SEARCH SEEN UNFLAGGED   STATUS INBOX (...)

and counts the FETCH responses and their bytes. imapd's memory (VmRSS,
VmHWM) is read before login, after SELECT and after the FETCH. Then the same
commands run once more with `strace -f -e trace=openat,open -p <imapd>`
attached, and the files imapd opened are listed: a path under cur/ or new/
is a message file and fails the run. Last, a session IDLEs on the big
INBOX and one more message comes over SMTP: the time from the 250 to its
EXISTS is printed (the target is under 1 s).

With --idle N, N sessions IDLE on the big INBOX at once and one message
comes over SMTP: printed are the seconds from the 250 to each session's
EXISTS (first, median, last) and the CPU seconds imapd (its master and
workers) spent meanwhile (/proc/PID/task/*/schedstat: the wake-ups' syncs,
one per session). --only-idle
skips the command rounds and the strace probe.

Usage (from the repository, after a build):

    python3 bench/imap_large.py [-m 100000] [-r 3] [--idle 20 [--only-idle]]

Owns its instance and its temporary directory.
"""
import argparse
import os
import pwd
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from benchlib import private_instance  # noqa: E402
from harness import BUILD, DOMAIN  # noqa: E402
from mailtest import send_mail  # noqa: E402

USER = f"big@{DOMAIN}"
PASSWORD = "large-bench-pw"
FILL = BUILD / "bench" / "imapstore" / "fill_store"


def mem(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


class Imap:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.buf = b""
        self.n = 0
        self.read_until(rb"^\* OK")

    def read_until(self, pattern):
        rx = re.compile(pattern, re.M)
        start = 0
        while True:
            m = rx.search(self.buf, start)
            if m:
                end = self.buf.index(b"\r\n", m.start()) + 2
                out, self.buf = self.buf[:end], self.buf[end:]
                return out
            start = max(0, len(self.buf) - 256)
            data = self.s.recv(1 << 20)
            if not data:
                raise RuntimeError("connection closed")
            self.buf += data

    def cmd(self, text):
        """Send a command; return (seconds to the tagged answer, the whole answer)."""
        self.n += 1
        tag = f"t{self.n}".encode()
        t0 = time.monotonic()
        self.s.sendall(tag + b" " + text.encode() + b"\r\n")
        out = self.read_until(rb"^" + tag + rb" (OK|NO|BAD)")
        dt = time.monotonic() - t0
        last = out[out.rindex(tag + b" "):]
        if not last.startswith(tag + b" OK"):
            raise RuntimeError(f"{text}: {last!r}")
        return dt, out


def fill(inst, n):
    """fill_store as the mail store's owner (the owner of state_dir/mail)."""
    st = os.stat(inst.state / "mail")

    def become():
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(st.st_gid)
            os.setuid(st.st_uid)
        os.umask(0o007)

    r = subprocess.run([str(FILL), str(inst.maildir("big")), str(n)], preexec_fn=become, capture_output=True,
                       text=True)
    sys.stdout.write(r.stdout)
    if r.returncode != 0:
        sys.exit(f"fill_store failed: {r.stderr}")


COMMANDS = [
    ("SELECT INBOX", "SELECT INBOX"),
    ("UID FETCH 1:* (FLAGS)", "UID FETCH 1:* (FLAGS)"),
    ("FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)", "FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)"),
    ("SEARCH UNSEEN", "SEARCH UNSEEN"),
    ("UID SEARCH FLAGGED", "UID SEARCH FLAGGED"),
    ("SEARCH SEEN UNFLAGGED", "SEARCH SEEN UNFLAGGED"),
    ("STATUS INBOX (MESSAGES UNSEEN UIDNEXT)", "STATUS INBOX (MESSAGES UNSEEN UIDNEXT)"),
]


def session(port, times, sizes, pid=None, mems=None):
    t0 = time.monotonic()
    c = Imap(port)
    c.cmd(f"LOGIN {USER} {PASSWORD}")
    times.setdefault("LOGIN (opens the store)", []).append(time.monotonic() - t0)
    for label, text in COMMANDS:
        if label.startswith("STATUS"):
            c.cmd("UNSELECT")
        dt, out = c.cmd(text)
        times.setdefault(label, []).append(dt)
        sizes[label] = (out.count(b"\r\n* ") + out.startswith(b"* "), len(out))
        if label.startswith("SELECT"):
            sizes["exists"] = int(re.search(rb"\* (\d+) EXISTS", out).group(1))
        if mems is not None and pid:
            mems[label] = mem(pid)
    c.cmd("LOGOUT")
    c.s.close()


def idle_delivery(inst, port):
    """A session IDLE on the big INBOX; seconds from the SMTP 250 of one more message to its EXISTS."""
    c = Imap(port)
    c.cmd(f"LOGIN {USER} {PASSWORD}")
    _, out = c.cmd("SELECT INBOX")
    n = int(re.search(rb"\* (\d+) EXISTS", out).group(1))
    c.s.sendall(b"i IDLE\r\n")
    c.read_until(rb"^\+ ")
    code, text = send_mail(inst.ports["smtp"], rcpts=(USER,))
    t0 = time.monotonic()
    if code != 250:
        raise RuntimeError(f"SMTP: {code} {text}")
    c.read_until(rb"^\* %d EXISTS" % (n + 1))
    dt = time.monotonic() - t0
    c.s.sendall(b"DONE\r\n")
    c.read_until(rb"^i OK")
    c.cmd("LOGOUT")
    return dt


def family(pid):
    """pid and its children: imapd's master and the workers it forked ([imapd] processes)."""
    out = [pid]
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


def cpu_seconds(pids):
    """CPU time so far of pids, all their threads (schedstat: nanoseconds; /proc/PID/stat counts 10 ms ticks)."""
    total = 0
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
    return total / 1e9


def idle_many(inst, port, pid, nsess):
    """nsess sessions IDLE on the big INBOX; one delivery; seconds to each EXISTS and imapd's CPU seconds."""
    cs = []
    for _ in range(nsess):
        c = Imap(port)
        c.cmd(f"LOGIN {USER} {PASSWORD}")
        _, out = c.cmd("SELECT INBOX")
        c.exists = int(re.search(rb"\* (\d+) EXISTS", out).group(1))
        c.s.sendall(b"i IDLE\r\n")
        c.read_until(rb"^\+ ")
        cs.append(c)
    print(f"{nsess} sessions idle; one delivery in 1 s", flush=True)
    time.sleep(1.0)   # the sessions' stores rest (imapd_store_idle) as they would
    pids = family(pid)
    cpu0 = cpu_seconds(pids)
    code, text = send_mail(inst.ports["smtp"], rcpts=(USER,))
    t0 = time.monotonic()
    if code != 250:
        raise RuntimeError(f"SMTP: {code} {text}")
    import selectors
    sel = selectors.DefaultSelector()
    for c in cs:
        sel.register(c.s, selectors.EVENT_READ, c)
    waits, pending = [], set(cs)
    while pending:
        if time.monotonic() - t0 > 60:
            raise RuntimeError(f"{len(pending)} sessions without EXISTS after 60 s")
        for key, _ in sel.select(1.0):
            c = key.data
            data = c.s.recv(1 << 16)
            if not data:
                raise RuntimeError("connection closed")
            c.buf += data
            if c in pending and re.search(rb"^\* %d EXISTS\r$" % (c.exists + 1), c.buf, re.M):
                waits.append(time.monotonic() - t0)
                pending.discard(c)
    cpu = cpu_seconds(pids) - cpu0
    for c in cs:
        c.s.sendall(b"DONE\r\n")
        c.read_until(rb"^i OK")
        c.cmd("LOGOUT")
        c.s.close()
    return waits, cpu


def files_opened(pid, port):
    """Run one session under strace; the paths imapd opened."""
    log = tempfile.NamedTemporaryFile(prefix="imap-large-strace.", delete=False)
    log.close()
    tr = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=openat,open", "-o", log.name, "-p", str(pid)],
                          stderr=subprocess.DEVNULL)
    time.sleep(1.0)   # strace attaches
    session(port, {}, {})
    time.sleep(0.5)
    tr.terminate()
    tr.wait(10)
    paths = re.findall(r'open(?:at)?\([^"]*"([^"]+)"', open(log.name).read())
    os.unlink(log.name)
    return paths


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--messages", type=int, default=100000)
    ap.add_argument("-r", "--rounds", type=int, default=3)
    ap.add_argument("--idle", type=int, default=0, help="sessions that IDLE together for one delivery")
    ap.add_argument("--only-idle", action="store_true", help="only the --idle measurement")
    a = ap.parse_args()
    if not FILL.exists():
        sys.exit(f"{FILL} missing: build first (ninja -C {BUILD})")

    with private_instance("postern-imaplarge-", {}) as run:
        inst = run.inst
        inst.tool("domain", "add", DOMAIN)
        import crypt  # deprecated in 3.11, still in Debian 12's Python; only for the hash
        inst.tool("user", "add", USER, "--hash-stdin", input=crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_SHA512)))
        fill(inst, a.messages)
        idx = inst.maildir("big") / "index.sqlite"
        print(f"index.sqlite: {idx.stat().st_size / 1e6:.1f} MB; machine: {os.cpu_count()} cores, "
              f"load {os.getloadavg()[0]:.1f}")
        pid = int(re.search(r"imapd: started pid=(\d+)", inst.log()).group(1))
        port = inst.ports["imap"]
        if a.idle:
            waits, cpu = idle_many(inst, port, pid, a.idle)
            waits.sort()
            print(f"{a.idle} sessions IDLE on the {a.messages}-message INBOX, one delivery: EXISTS after "
                  f"first {waits[0] * 1000:.0f} ms, median {statistics.median(waits) * 1000:.0f} ms, "
                  f"last {waits[-1] * 1000:.0f} ms after the SMTP 250; imapd CPU {cpu * 1000:.1f} ms "
                  f"({cpu * 1000 / a.idle:.2f} ms per session)")
            if a.only_idle:
                sys.exit(0 if run.ok else 1)
        m0 = mem(pid)
        times, sizes, mems = {}, {}, {}
        for r in range(a.rounds):
            session(port, times, sizes, pid, mems if r == 0 else None)
        print(f"{sizes['exists']} messages; {a.rounds} rounds, median (min-max) seconds:")
        print("| command | responses | bytes | median s | min s | max s |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for label, ts in times.items():
            cnt, nb = sizes.get(label, ("", ""))
            print(f"| {label} | {cnt} | {nb} | {statistics.median(ts):.3f} | {min(ts):.3f} | {max(ts):.3f} |")
        print(f"imapd memory (KiB): before login VmRSS {m0['VmRSS']}; "
              + "; ".join(f"after {k.split(' ')[0]} {k.split(' ')[1] if ' ' in k else ''} VmRSS {v['VmRSS']} "
                          f"VmHWM {v['VmHWM']}" for k, v in mems.items() if k.startswith(("SELECT", "UID FETCH"))))
        print(f"selected view: {sizes['exists']} x 16 bytes = {sizes['exists'] * 16 / 1024:.0f} KiB per session")
        dt = idle_delivery(inst, port)
        print(f"IDLE on the {sizes['exists']}-message INBOX: a new message's EXISTS {dt * 1000:.0f} ms after the "
              f"SMTP 250 ({'within' if dt < 1 else 'NOT within'} 1 s)")
        paths = files_opened(pid, port)
        msgs = [p for p in paths if re.search(r"/(cur|new)/[^/]+$", p)]
        print(f"strace: imapd opened {len(paths)} files during one session: "
              f"{sorted(set(os.path.basename(p) for p in paths))[:8]}")
        if msgs:
            run.ok = False
            print(f"FAILED: {len(msgs)} message files opened, e.g. {msgs[:3]}")
        else:
            print("no message file (cur/ or new/) was opened")
    sys.exit(0 if run.ok else 1)


if __name__ == "__main__":
    main()
