"""
test_imap_procs.py - imapd on several processes ([imapd] processes = 2), as
a user and an operator see it: sessions that land in two different worker
processes see each other's STORE, EXPUNGE and APPEND (one of them in IDLE,
told at once), a delivery wakes IDLE sessions in every worker, a worker
killed with SIGKILL comes back while the other goes on serving, postern
status shows the master with the connections of all workers, max_connections
bounds them all together, and restart, stop or a SIGKILL of the master
leave no worker behind.

Which worker serves a connection is read from /proc: the kernel's socket
table gives the inode of the server's end, and the worker holding that
inode among its descriptors is the one.
"""
import json
import os
import re
import signal
import socket
import time

import pytest

from harness import PASSWORDS, wait_for
from imapraw import Raw
from mailtest import make_message, send_mail

ALICE = "alice@example.test"
PROCS = pytest.mark.postern_config({"imapd": {"processes": "2"}})


def imapd_pid(inst):
    """imapd's pid as postern status shows it (None while it is down or restarting)."""
    r = inst.tool("status", json_out=True, check=False)
    try:
        return next(row["pid"] for row in json.loads(r.stdout) if row["name"] == "imapd")
    except (ValueError, StopIteration):
        return None


def workers(inst):
    """imapd's worker pids (its master's children; none while imapd is down)."""
    pid = imapd_pid(inst)
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except (FileNotFoundError, ProcessLookupError, TypeError):
        return []


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def server_inode(client, server_port):
    """Inode of the server's end of the TCP connection client has to server_port."""
    cport = client.getsockname()[1]
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == cport:
                return fields[9]
    return None


def serving_pid(inst, client):
    """The imapd process that holds the server end of client's connection."""
    inode = server_inode(client, inst.ports["imap"])
    assert inode, "the connection is not in /proc/net/tcp"
    for pid in workers(inst):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                pass
    return None


class Session(Raw):
    """alice, logged in, INBOX selected."""

    def __init__(self, inst):
        super().__init__(inst.ports["imap"])
        assert self.command(b"a", f"LOGIN {ALICE} {PASSWORDS[ALICE]}".encode())[-1].startswith(b"a OK")
        assert self.command(b"s", b"SELECT INBOX")[-1].startswith(b"s OK")

    def idle(self):
        self.send(b"i IDLE\r\n")
        assert self.line().startswith(b"+")

    def done(self):
        self.send(b"DONE\r\n")
        return self.until_tagged(b"i")

    def close(self):
        try:
            self.command(b"z", b"LOGOUT")
        except (EOFError, OSError):
            pass
        self.s.close()


def spread(inst, n_workers=2, tries=60):
    """Sessions of alice, one served by each worker (more are opened until each worker has one)."""
    got, extra = {}, []
    for _ in range(tries):
        s = Session(inst)
        pid = serving_pid(inst, s.s)
        assert pid is not None, "no worker holds the connection"
        if pid in got:
            extra.append(s)
        else:
            got[pid] = s
        if len(got) == n_workers:
            break
    for s in extra:
        s.close()
    assert len(got) == n_workers, f"{tries} connections all went to workers {list(got)}"
    return list(got.values())


def deliver(inst, n=1):
    before = len(inst.index_rows())
    for i in range(n):
        send_mail(inst.ports["smtp"], msg=make_message(subject=f"procs {i}"))
    inst.wait_for(lambda: len(inst.index_rows()) >= before + n, what=f"{before + n} index rows")


@PROCS
def test_master_and_two_workers(inst):
    ws = workers(inst)
    assert len(ws) == 2, ws
    inst.wait_for(lambda: inst.status()["imapd"]["state"] == "running", what="imapd running")
    st = inst.status()["imapd"]
    assert st["pid"] not in ws
    log = inst.log()
    for i, pid in enumerate(ws, 1):
        assert re.search(rf"imapd\[{st['pid']}\]: worker \d pid={pid} started", log), log[-3000:]
    # The master holds no client: only workers accept.
    a, b = spread(inst)
    assert {serving_pid(inst, a.s), serving_pid(inst, b.s)} == set(ws)
    inst.wait_for(lambda: inst.status()["imapd"]["connections"] == 2, what="2 connections in postern status")
    a.close()
    b.close()


@PROCS
def test_workers_see_each_others_changes_in_idle(inst):
    deliver(inst, 3)
    a, b = spread(inst)
    a.s.settimeout(5)
    a.idle()
    assert b.command(b"f", b"STORE 2 +FLAGS (\\Flagged)")[-1].startswith(b"f OK")
    assert re.match(rb"\* 2 FETCH \(FLAGS \((\\Recent )?\\Flagged\)\)", a.line())
    assert b.command(b"d", b"STORE 1 +FLAGS (\\Deleted)")[-1].startswith(b"d OK")
    assert re.match(rb"\* 1 FETCH \(FLAGS \((\\Recent )?\\Deleted\)\)", a.line())
    assert b.command(b"e", b"EXPUNGE")[-1].startswith(b"e OK")
    assert a.line() == b"* 1 EXPUNGE"
    msg = make_message(subject="appended in the other worker").as_bytes().replace(b"\n", b"\r\n")
    b.send(b"p APPEND INBOX {%d}\r\n" % len(msg))
    assert b.line().startswith(b"+")
    b.send(msg + b"\r\n")
    assert b.until_tagged(b"p")[-1].startswith(b"p OK")
    lines = []
    while b"* 3 EXISTS" not in lines:
        lines.append(a.line())
    assert a.done()[-1].startswith(b"i OK")
    # And the other way: b idles, a (in the other worker) changes.
    b.s.settimeout(5)
    b.idle()
    assert a.command(b"g", b"STORE 1 +FLAGS (\\Seen)")[-1].startswith(b"g OK")
    assert re.match(rb"\* 1 FETCH \(FLAGS \(.*\\Seen.*\)\)", b.line())
    assert b.done()[-1].startswith(b"i OK")
    a.close()
    b.close()


@PROCS
def test_workers_see_each_others_changes_without_idle(inst):
    """Sessions that do not idle see the other worker's changes at their next command, with no notice sent."""
    deliver(inst, 2)
    a, b = spread(inst)
    # queued's notices of the two deliveries may reach imapd after their rows: counted once they have
    wait_for(lambda: re.search(r"mailbox changed", inst.log()), what="the deliveries' notice")
    notices, since = -1, time.monotonic()
    while time.monotonic() - since < 1.0:
        n = len(re.findall(r"mailbox changed", inst.log()))
        if n != notices:
            notices, since = n, time.monotonic()
        time.sleep(0.1)
    assert b.command(b"f", b"STORE 2 +FLAGS (\\Answered)")[-1].startswith(b"f OK")
    out = a.command(b"n", b"NOOP")
    assert any(re.match(rb"\* 2 FETCH \(FLAGS \(.*\\Answered.*\)\)", ln) for ln in out), out
    assert b.command(b"c", b"COPY 1 INBOX")[-1].startswith(b"c OK")
    out = a.command(b"n", b"NOOP")
    assert b"* 3 EXISTS" in out, out
    # Nobody idled: the changes cost no notice to the master (the sessions read the index instead).
    assert len(re.findall(r"mailbox changed", inst.log())) == notices
    a.close()
    b.close()


@PROCS
def test_delivery_wakes_idle_in_every_worker(inst):
    a, b = spread(inst)
    for s in (a, b):
        s.s.settimeout(10)
        s.idle()
    deliver(inst, 1)
    for s in (a, b):
        lines = []
        while b"* 1 EXISTS" not in lines:
            lines.append(s.line())
        assert s.done()[-1].startswith(b"i OK")
    assert len(re.findall(r"imapd\[\d+\]: imapd.sock: mailbox changed: alice@example.test INBOX", inst.log())) == 1
    a.close()
    b.close()


@PROCS
def test_killed_worker_comes_back_the_other_serves_on(inst):
    deliver(inst, 1)
    a, b = spread(inst)
    victim, other = serving_pid(inst, a.s), serving_pid(inst, b.s)
    master = inst.pids()["imapd"]
    os.kill(victim, signal.SIGKILL)
    line = inst.wait_log(rf"imapd\[{master}\]: warning: worker (\d) pid={victim} died: signal Killed; restarting")
    # The session in the other worker goes on as if nothing happened.
    assert b.command(b"n", b"NOOP")[-1].startswith(b"n OK")
    assert b.command(b"f", b"FETCH 1 (FLAGS)")[-1].startswith(b"f OK")
    # The killed worker's client is cut off, not hung.
    with pytest.raises((EOFError, ConnectionResetError)):
        a.command(b"n", b"NOOP")
    inst.wait_for(lambda: len(workers(inst)) == 2 and victim not in workers(inst),
                  what=f"a new worker instead of {victim}")
    inst.wait_for(lambda: re.search(rf"imapd\[{master}\]: worker {line.group(1)} pid=\d+ started",
                                    inst.log()[line.end():]), what="the restarted worker's log line")
    assert other in workers(inst)
    assert inst.pids()["imapd"] == master
    # Both serve again.
    c, d = spread(inst)
    c.close()
    d.close()
    b.close()


@PROCS
def test_status_sums_connections_and_limit_is_for_all(make_instance):
    inst = make_instance({"imapd": {"processes": "2", "max_connections": "3"}})
    # Wherever the three land (one worker or both), a fourth finds the limit reached in either.
    held = [Session(inst) for _ in range(3)]
    inst.wait_for(lambda: inst.status()["imapd"]["connections"] == 3, what="3 connections in postern status")
    # A fourth is turned away whichever worker takes it.
    for _ in range(4):
        r = Raw(inst.ports["imap"])
        assert r.greeting.startswith(b"* BYE"), r.greeting
        assert r.closed()
    held.pop().close()
    inst.wait_for(lambda: inst.status()["imapd"]["connections"] == 2, what="2 connections in postern status")
    s = Session(inst)
    s.close()
    for h in held:
        h.close()


@PROCS
def test_restart_and_stop_leave_no_worker(inst):
    old_master, old = inst.pids()["imapd"], workers(inst)
    assert len(old) == 2
    inst.tool("restart", "imapd")
    wait_for(lambda: not any(alive(p) for p in [old_master] + old), timeout=10,
             what=f"the old master {old_master} and workers {old} gone")
    inst.wait_for(lambda: len(workers(inst)) == 2, what="two new workers")
    new = workers(inst)
    assert not set(new) & set(old)
    s = Session(inst)
    s.close()
    inst.stop()   # exits 0, nothing of the process group left (harness)
    assert not any(alive(p) for p in new)


@PROCS
def test_master_killed_takes_its_workers(inst):
    master, ws = inst.pids()["imapd"], workers(inst)
    a = Session(inst)
    os.kill(master, signal.SIGKILL)
    wait_for(lambda: not any(alive(p) for p in ws), timeout=15, what=f"workers {ws} gone with their master")
    # The supervisor starts a new imapd, with workers of its own, that serves.
    inst.wait_for(lambda: imapd_pid(inst) not in (None, 0, master) and len(workers(inst)) == 2,
                  timeout=20, what="a new imapd with two workers")
    s = Session(inst)
    s.close()
    a.s.close()


@pytest.mark.postern_config({"imapd": {"processes": "1"}})
def test_one_process_is_one_process(inst):
    assert workers(inst) == []
    s = Session(inst)
    assert s.command(b"n", b"NOOP")[-1].startswith(b"n OK")
    s.close()
    assert "worker" not in "".join(ln for ln in inst.log().splitlines() if "imapd[" in ln)


@PROCS
def test_burst_of_clients_spread_over_workers(inst):
    """20 clients connecting at once (as a load tool does) end up in both workers, not all in the first awake."""
    for _ in range(2):
        socks = []
        for _ in range(20):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", inst.ports["imap"]))
            except BlockingIOError:
                pass
            socks.append(s)
        for s in socks:
            s.setblocking(True)
            s.settimeout(10)
            assert s.recv(100).startswith(b"* OK")
        per = {}
        for s in socks:
            pid = serving_pid(inst, s)
            per[pid] = per.get(pid, 0) + 1
        assert set(per) == set(workers(inst)) and min(per.values()) >= 6, per
        for s in socks:
            s.close()
        inst.wait_for(lambda: inst.status()["imapd"]["connections"] == 0, what="every connection closed")


@PROCS
def test_reload_reaches_every_worker(inst):
    """postern reload: new limits in every worker; a changed process count waits for a restart, and says so."""
    master, ws = imapd_pid(inst), workers(inst)
    inst.write_config({"imapd": {"processes": "3", "max_connections": "1"}})
    inst.tool("reload")
    inst.wait_log(rf"imapd\[{master}\]: warning: \[imapd\] processes: 2 now, 3 after the next restart of imapd")
    for pid in ws:
        inst.wait_log(rf"imapd\[{pid}\]: worker \d: reloaded config")
    assert workers(inst) == ws
    # max_connections = 1 holds in whichever worker takes the next clients.
    held = Session(inst)
    for _ in range(4):
        r = Raw(inst.ports["imap"])
        assert r.greeting.startswith(b"* BYE"), r.greeting
        r.s.close()
    held.close()
