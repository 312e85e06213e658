"""
The supervisor (`postern up`) and the daemons' life cycle as an operator
and the connected clients see it: restart, reload, kill -9 under load, and
each daemon's own user.
"""
import os
import pwd
import re
import signal
import smtplib
import threading
import time
import uuid

import pytest

from harness import needs_root
from mailtest import RawSMTP, make_message, qid_of, send_mail

DAEMONS = ("resolverd", "queued", "smtpd", "pop3d", "imapd")


def try_send(port, msg, rcpt="alice@example.test", timeout=20):
    """One attempt: ('ok', qid), ('temp', reply), or ('fail', reply/exception text)."""
    try:
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=timeout) as s:
            s.ehlo()
            code, text = s.mail("sender@client.test")
            if code != 250:
                return ("temp" if 400 <= code < 500 else "fail", f"MAIL {code} {text!r}")
            code, text = s.rcpt(rcpt)
            if code != 250:
                return ("temp" if 400 <= code < 500 else "fail", f"RCPT {code} {text!r}")
            code, text = s.data(msg.as_bytes())
            if code == 250:
                return ("ok", qid_of(text))
            return ("temp" if 400 <= code < 500 else "fail", f"DATA {code} {text!r}")
    except (smtplib.SMTPServerDisconnected, smtplib.SMTPDataError, smtplib.SMTPResponseException,
            ConnectionError, OSError) as e:
        return ("temp", f"{type(e).__name__}: {e}")


def msgids_in_new(inst, user="alice"):
    ids = []
    for f in inst.new_files(user):
        try:
            head = f.read_bytes().split(b"\n\n", 1)[0]
        except FileNotFoundError:
            continue
        m = re.search(rb"^Message-ID:\s*(<[^>]*>)", head, re.M | re.I)
        if m:
            ids.append(m.group(1).decode())
    return ids


def test_restart_smtpd_only_smtpd_changes(inst):
    before = inst.pids()
    c = RawSMTP(inst.ports["smtp"])
    c.greeting()
    c.ehlo()
    inst.tool("restart", "smtpd", timeout=60)
    after = inst.pids()
    assert after["smtpd"] != before["smtpd"], (before, after)
    for name in DAEMONS:
        if name != "smtpd":
            assert after[name] == before[name], (name, before, after)
    # The client connected during the restart was told to come back later.
    try:
        if c.nothing_pending(5.0):
            c.send(b"NOOP\r\n")
        code, lines = c.reply(timeout=10)
    except EOFError:
        pytest.fail("the connected client was dropped without a 421 reply")
    finally:
        c.close()
    assert code == 421, lines
    # And it succeeds on reconnecting.
    code, text = send_mail(inst.ports["smtp"])
    assert code == 250, text
    inst.wait_new(1)


def test_restart_queued_during_session(inst):
    before = inst.pids()
    msg = make_message(subject="across a queued restart")
    restarter = threading.Thread(target=inst.tool, args=("restart", "queued"), kwargs={"timeout": 60})
    replies = []
    with RawSMTP(inst.ports["smtp"], timeout=30) as c:
        c.greeting()
        c.ehlo()
        restarter.start()
        deadline = time.monotonic() + 30
        delivered_qid = None
        while time.monotonic() < deadline and delivered_qid is None:
            code, lines = c.cmd("MAIL FROM:<sender@client.test>")
            replies.append(lines[-1])
            if code == 250:
                code, lines = c.cmd("RCPT TO:<alice@example.test>")
                replies.append(lines[-1])
            if code == 250:
                code, lines = c.cmd("DATA")
                replies.append(lines[-1])
            if code == 354:
                c.send(msg.as_bytes().replace(b"\n", b"\r\n") + b".\r\n")
                code, lines = c.reply()
                replies.append(lines[-1])
                if code == 250:
                    delivered_qid = qid_of(lines[-1])
                    break
            assert 400 <= code < 500, f"a permanent error while queued restarted: {replies}"
            assert lines[-1].startswith(f"{code} 4.3.0") or code == 421, replies
            c.cmd("RSET")
            time.sleep(0.2)
    restarter.join(60)
    assert delivered_qid, f"never accepted within 30 s: {replies}"
    assert inst.pids()["queued"] != before["queued"]
    files = inst.wait_new(1)
    assert msg["Message-ID"].encode() in files[0].read_bytes()


def load_with_kill(inst, victim, threads=5, per_thread=10, kill_after=10):
    """Send threads*per_thread messages in parallel, kill -9 victim once kill_after got 250."""
    accepted = {}
    lock = threading.Lock()
    failures = []
    enough = threading.Event()
    port = inst.ports["smtp"]

    def worker(t):
        for i in range(per_thread):
            msgid = f"<load-{t}-{i}-{uuid.uuid4().hex[:8]}@client.test>"
            msg = make_message(msgid=msgid, subject=f"load {t}/{i}")
            deadline = time.monotonic() + 90
            while True:
                kind, what = try_send(port, msg)
                if kind == "ok":
                    with lock:
                        accepted[msgid] = what
                        if len(accepted) >= kill_after:
                            enough.set()
                    break
                if kind == "fail" or time.monotonic() > deadline:
                    with lock:
                        failures.append((msgid, what))
                    break
                time.sleep(0.3)      # the client's own retry delay

    old_pid = inst.pids()[victim]
    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    assert enough.wait(60), f"fewer than {kill_after} messages accepted before the kill"
    os.kill(old_pid, signal.SIGKILL)
    for w in workers:
        w.join(180)
    assert not failures, f"messages never accepted: {failures[:5]}"
    assert len(accepted) == threads * per_thread
    # Every message that got 250 is delivered (duplicates are allowed: at-least-once).
    want = set(accepted)
    inst.wait_for(lambda: want <= set(msgids_in_new(inst)), timeout=90,
                  what=f"all {len(want)} accepted messages in alice's new/ "
                       f"(missing: {sorted(want - set(msgids_in_new(inst)))[:5]})")
    # The supervisor brought the victim back and said why it had gone.
    inst.wait_for(lambda: inst.tool("status", "--wait", "5", check=False).returncode == 0, timeout=30,
                  what="all daemons answering again")
    assert inst.pids()[victim] not in (0, old_pid, None)
    inst.wait_log(rf"{victim}.*(signal 9|SIGKILL|killed)", what=f"the supervisor's line about {victim}'s death")


def test_kill_queued_under_load_loses_nothing(inst):
    load_with_kill(inst, "queued")


def test_kill_smtpd_under_load_loses_nothing(inst):
    load_with_kill(inst, "smtpd")


def session_survives(inst, trigger):
    msg = make_message(subject="across a reload")
    with smtplib.SMTP("127.0.0.1", inst.ports["smtp"], local_hostname="client.test", timeout=20) as s:
        s.ehlo()
        assert s.mail("sender@client.test")[0] == 250
        trigger()
        assert s.rcpt("alice@example.test")[0] == 250
        code, text = s.data(msg.as_bytes())
        assert code == 250, text
    files = inst.wait_new(1)
    assert msg["Message-ID"].encode() in files[0].read_bytes()


def count_reloaded(inst):
    """Lines where smtpd (whose session is open) says it re-read the config."""
    return len(re.findall(r"postern/smtpd\[\d+\]: reloaded config", inst.log()))


def assert_no_refusal(inst):
    refused = [ln for ln in inst.log().splitlines() if "reload refused" in ln]
    assert not refused, "\n".join(refused)


def test_reload_keeps_sessions(inst):
    n = count_reloaded(inst)

    def trigger():
        r = inst.tool("reload", check=False)
        assert r.returncode == 0 and "reloaded" in r.stdout, (r.returncode, r.stdout, r.stderr)
        inst.wait_for(lambda: count_reloaded(inst) > n, what="smtpd's log line about the reload")
    session_survives(inst, trigger)
    assert_no_refusal(inst)


def test_sighup_to_supervisor_keeps_sessions(inst):
    n = count_reloaded(inst)

    def trigger():
        inst.proc.send_signal(signal.SIGHUP)
        inst.wait_for(lambda: count_reloaded(inst) > n or "reload refused" in inst.log(),
                      what="smtpd's log line about the reload")
        assert_no_refusal(inst)
    session_survives(inst, trigger)
    assert inst.running()


def uids(pid):
    status = open(f"/proc/{pid}/status").read()
    real, eff, saved, fs = (int(x) for x in re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split())
    groups = re.search(r"^Groups:[ \t]*(.*)$", status, re.M).group(1).split()
    gid = int(re.search(r"^Gid:\s+(\d+)", status, re.M).group(1))
    return (real, eff, saved, fs), gid, [int(g) for g in groups]


@needs_root
def test_each_daemon_runs_as_its_own_user(inst):
    expected = {"smtpd": "postern-smtpd", "queued": "postern-queue", "resolverd": "postern-resolver",
                "pop3d": "postern-mail", "imapd": "postern-mail"}
    pids = inst.pids()
    for name, user in expected.items():
        pw = pwd.getpwnam(user)
        ids, gid, groups = uids(pids[name])
        assert ids == (pw.pw_uid,) * 4, (name, ids, user)
        assert gid != 0 and 0 not in groups, (name, gid, groups)
    assert uids(inst.proc.pid)[0][1] == 0, "the supervisor runs as root"
