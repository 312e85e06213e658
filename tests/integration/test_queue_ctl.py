"""
`postern queue ...` against a real instance: list (every filter, text and
--json), show (--body, --json), summary, flush, hold/release, delete (one
and bulk by --to domain), bounce, pause/resume, watch, and who may use it.

Messages that must stay in the queue go to defer.test / slow.test, whose
MX is 127.0.0.1 on a port where nothing listens (remote_smtp_port): they
are deferred whether or not this build delivers to remote domains yet.
retry_min = 1h, so nothing is retried unless a test asks for it.
Messages that must be held before their first delivery are local ones
submitted while delivery is paused.
"""
import json
import os
import pwd
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time

import pytest

from harness import POSTERN, QID_RE, free_ports, needs_root, wait_for
from mailtest import make_message, qid_of, send_mail

ALICE = ("alice@example.test", "alice-pass-1234")
DEAD_PORT = free_ports(1)[0]
CONFIG = {"queued": {"remote_smtp_port": str(DEAD_PORT), "retry_min": "1h", "retry_max": "2h"}}
pytestmark = pytest.mark.postern_config(CONFIG)


@pytest.fixture(autouse=True)
def remote_dns(dns):
    dns.add("defer.test. 60 IN MX 10 mx.defer.test.\n"
            "mx.defer.test. 60 IN A 127.0.0.1\n"
            "slow.test. 60 IN MX 10 mx.slow.test.\n"
            "mx.slow.test. 60 IN A 127.0.0.1\n"
            "spam.test. 60 IN MX 10 mx.spam.test.\n"
            "mx.spam.test. 60 IN A 127.0.0.1\n")


def submit(inst, to, sender="alice@example.test", subject="queued", body="Hello.\n"):
    """Send through submission as alice (relay allowed); returns the queue id."""
    rcpts = (to,) if isinstance(to, str) else tuple(to)
    msg = make_message(to=rcpts[0], sender=sender, subject=subject, body=body)
    code, text = send_mail(inst.ports["submission"], rcpts=rcpts, sender=sender, msg=msg, login=ALICE)
    assert code == 250, text
    return qid_of(text)


def q(inst, *args, check=True):
    return inst.tool("queue", *args, check=check)


def qjson(inst, *args):
    return inst.json("queue", *args)


def listed(inst, *args):
    return {e["id"]: e for e in qjson(inst, "list", *args)}


def wait_deferred(inst, qid, attempts=1, timeout=20):
    def ok():
        e = listed(inst).get(qid)
        return e if e and e["state"] == "deferred" and all(
            r["attempts"] >= attempts for r in e["recipients"]) else None
    return wait_for(ok, timeout, f"{qid} deferred with {attempts} attempt(s)")


def db_rows(inst, sql, args=()):
    """Rows of the queue database, read from a copy (never touching queued's files)."""
    src = inst.state / "queue" / "queue.sqlite"
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in ("", "-wal"):
            try:
                shutil.copyfile(str(src) + suffix, os.path.join(tmp, "q.sqlite" + suffix))
            except FileNotFoundError:
                pass
        db = sqlite3.connect(os.path.join(tmp, "q.sqlite"))
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()


def test_list_filters_text_and_json(inst):
    a = submit(inst, "one@defer.test", subject="first")
    b = submit(inst, ["two@defer.test", "three@slow.test"], subject="second")
    c = submit(inst, "four@slow.test", sender="bob@example.test")
    for qid in (a, b, c):
        wait_deferred(inst, qid)

    out = q(inst, "list").stdout
    for qid in (a, b, c):
        assert qid in out, out
    assert "<one@defer.test>" in out and "deferred" in out and "attempts=1" in out, out
    assert re.search(r"-- 3 messages, \d+ bytes", out), out

    every = listed(inst)
    assert set(every) == {a, b, c}
    e = every[b]
    assert e["sender"] == "alice@example.test" and e["size"] > 0 and e["recipients_total"] == 2
    assert {r["address"] for r in e["recipients"]} == {"two@defer.test", "three@slow.test"}
    assert all(r["state"] == "deferred" and r["last_error"] for r in e["recipients"]), e
    assert e["next_try"] > time.time() + 1800, e          # retry_min = 1h
    assert 0 <= e["age_seconds"] < 120

    # --json after the command works as well as before it
    r = q(inst, "list", "--json")
    assert {x["id"] for x in json.loads(r.stdout)} == {a, b, c}

    assert set(listed(inst, "--to", "defer.test")) == {a, b}
    assert set(listed(inst, "--to", "slow.test")) == {b, c}
    assert set(listed(inst, "--to", "FOUR@slow.test")) == {c}
    assert set(listed(inst, "--from", "bob@example.test")) == {c}
    assert set(listed(inst, "--state", "deferred")) == {a, b, c}
    assert set(listed(inst, "--state", "held")) == set()
    assert set(listed(inst, "--older-than", "1h")) == set()
    time.sleep(2.1)     # arrival is kept in whole seconds
    assert set(listed(inst, "--older-than", "1s", "--to", "defer.test")) == {a, b}
    assert "-- no messages" in q(inst, "list", "--to", "nowhere.test").stdout

    for bad in (["--state", "frozen"], ["--older-than", "soon"], ["--frobnicate"], ["extra-word"]):
        r = q(inst, "list", *bad, check=False)
        assert r.returncode == 2 and r.stderr.strip(), (bad, r.returncode, r.stderr)


def test_show_history_headers_body(inst):
    qid = submit(inst, "someone@defer.test", subject="show me", body="The body line.\n")
    wait_deferred(inst, qid)
    out = q(inst, "show", qid).stdout
    assert f"Queue id:   {qid}" in out and "State:      deferred" in out, out
    assert "Sender:     <alice@example.test>" in out, out
    assert "<someone@defer.test>  deferred  attempts=1" in out, out
    assert re.search(r"waits until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in (59m|1h)", out), out
    hist = out.split("History:", 1)[1]
    assert re.search(r"queued\s+from=<alice@example.test>", hist), hist
    assert re.search(r"deferred\s+<someone@defer.test>", hist), hist
    assert "Subject: show me" in out.split("Headers:", 1)[1], out
    assert "The body line." not in out

    body = q(inst, "show", qid, "--body").stdout
    assert "Message:" in body and "The body line." in body and "\r" not in body, body

    j = qjson(inst, "show", qid, "--body")
    assert j["id"] == qid and j["state"] == "deferred" and "Subject: show me" in j["headers"]
    assert [h["event"] for h in j["history"]][:2] == ["queued", "deferred"], j["history"]
    assert j["history"][1]["recipient"] == "someone@defer.test" and j["history"][1]["detail"]
    assert "The body line." in j["body"]


def test_summary_by_domain_and_age(inst):
    for to in ("a@defer.test", "b@defer.test", "c@slow.test"):
        wait_deferred(inst, submit(inst, to))
    out = q(inst, "summary").stdout
    lines = {ln.split()[0]: ln.split() for ln in out.splitlines() if ln.strip() and ln.split()[0] != "T"}
    assert lines["TOTAL"][1] == "3" and lines["defer.test"][1] == "2" and lines["slow.test"][1] == "1", out
    assert lines["defer.test"][3] == "2", out      # both younger than 5 minutes
    j = qjson(inst, "summary")
    doms = {d["domain"]: d for d in j["domains"]}
    assert doms["defer.test"]["messages"] == 2 and doms["defer.test"]["bytes"] > 0
    assert doms["defer.test"]["ages"][0] == 2 and sum(doms["slow.test"]["ages"]) == 1
    assert j["total"]["messages"] == 3 and j["bucket_minutes"][0] == 5
    assert {d["domain"] for d in qjson(inst, "summary", "--to", "slow.test")["domains"]} == {"slow.test"}


def test_unknown_id_fails_and_usage_errors(inst):
    for cmd in ("show", "hold", "release", "delete", "flush", "bounce"):
        r = q(inst, cmd, "0123456789ABCDEF", check=False)
        assert r.returncode == 1 and "no such message" in r.stderr, (cmd, r.returncode, r.stderr)
    for args in ([], ["frobnicate"], ["hold"], ["delete"], ["show"], ["pause", "now"], ["show", "X", "--to", "a"]):
        r = q(inst, *args, check=False)
        assert r.returncode == 2 and r.stderr.strip(), (args, r.returncode, r.stderr)


def test_bulk_delete_by_domain_removes_rows_and_files(inst):
    spam = [submit(inst, f"victim{i}@spam.test") for i in range(3)]
    keep = submit(inst, "friend@defer.test")
    for qid in spam + [keep]:
        wait_deferred(inst, qid)
    active = inst.state / "queue" / "active"
    assert all((active / qid).exists() for qid in spam)

    r = q(inst, "delete", "--to", "spam.test")
    for qid in spam:
        assert f"{qid}: removed" in r.stdout, r.stdout
    assert "delete: 3 of 3 matching messages" in r.stdout, r.stdout
    for qid in spam:
        inst.wait_log(rf"{qid}: removed by admin")
        assert not (active / qid).exists()
    assert set(listed(inst)) == {keep}
    rows = db_rows(inst, "SELECT count(*) FROM messages WHERE qid IN (?, ?, ?)", spam)
    assert rows == [(0,)]
    rows = db_rows(inst, "SELECT count(*) FROM recipients WHERE qid IN (?, ?, ?)", spam)
    assert rows == [(0,)]
    assert db_rows(inst, "SELECT count(*) FROM events WHERE qid = ?", (spam[0],)) == [(0,)]

    # one by id, JSON
    j = qjson(inst, "delete", keep)
    assert j["matched"] == 1 and j["changed"] == 1 and j["results"] == [{"id": keep, "result": "removed"}]
    assert listed(inst) == {}
    assert not (active / keep).exists()


def test_bounce_returns_to_sender_now(inst):
    qid = submit(inst, ["gone@defer.test", "gone@slow.test"], subject="bounce me")
    keep = submit(inst, "stays@defer.test")
    wait_deferred(inst, qid)
    r = q(inst, "bounce", qid)
    assert f"{qid}: returned to sender (2 recipients)" in r.stdout, r.stdout
    assert "bounce: 1 of 1 matching message" in r.stdout, r.stdout
    wait_for(lambda: qid not in listed(inst), 15, "the bounced message to leave the queue")
    assert keep in listed(inst)
    files = inst.wait_new(1, "alice")       # the report, to the sender alice@example.test
    raw = files[-1].read_bytes()
    assert b"report-type=delivery-status" in raw and b"gone@defer.test" in raw and b"gone@slow.test" in raw, raw[:2000]


def test_flush_retries_deferred_now(inst):
    qid = submit(inst, "later@defer.test")
    other = submit(inst, "later@slow.test")
    wait_deferred(inst, qid)
    wait_deferred(inst, other)
    r = q(inst, "flush", "defer.test")
    assert f"{qid}: flush requested" in r.stdout and other not in r.stdout, r.stdout
    inst.wait_log(rf"{qid}: flush requested")
    e = wait_deferred(inst, qid, attempts=2)
    assert e["recipients"][0]["attempts"] == 2
    assert listed(inst)[other]["recipients"][0]["attempts"] == 1
    # by id, and everything
    q(inst, "flush", other)
    wait_deferred(inst, other, attempts=2)
    r = q(inst, "flush")
    assert "flush: 2 of 2 matching messages" in r.stdout, r.stdout
    wait_deferred(inst, qid, attempts=3)


def test_pause_holds_delivery_until_resume(inst):
    r = q(inst, "pause")
    assert "paused" in r.stdout
    try:
        code, text = send_mail(inst.ports["smtp"], rcpts=("alice@example.test",))
        assert code == 250, text            # accepting goes on
        qid = qid_of(text)
        time.sleep(2.5)
        assert inst.new_files("alice") == []
        assert listed(inst)[qid]["state"] == "active"
        assert qjson(inst, "pause") == {"paused": True, "was_paused": True}
        assert inst.status()["queued"]["state"] == "running, delivery paused"
    finally:
        r = q(inst, "resume")
    assert "resumed" in r.stdout
    assert inst.status()["queued"]["state"] == "running"
    inst.wait_new(1, "alice")
    wait_for(lambda: qid not in listed(inst), 15, "the delivered message to leave the queue")


def test_hold_prevents_delivery_release_lets_it_go(inst):
    q(inst, "pause")
    code, text = send_mail(inst.ports["smtp"], rcpts=("alice@example.test",))
    assert code == 250, text
    held = qid_of(text)
    code, text = send_mail(inst.ports["smtp"], rcpts=("bob@example.test",))
    free = qid_of(text)
    r = q(inst, "hold", held)
    assert f"{held}: held" in r.stdout, r.stdout
    inst.wait_log(rf"{held}: held by admin")
    assert "already held" in q(inst, "hold", held).stdout
    assert set(listed(inst, "--state", "held")) == {held}
    q(inst, "resume")
    inst.wait_new(1, "bob")               # delivery runs again ...
    time.sleep(2.5)
    assert inst.new_files("alice") == []  # ... but not for the held message
    assert listed(inst)[held]["state"] == "held"
    assert "held by an administrator" in q(inst, "show", held).stdout
    wait_for(lambda: free not in listed(inst), 15, "the delivered message to leave the queue")

    r = q(inst, "release", held)
    assert f"{held}: released" in r.stdout, r.stdout
    inst.wait_log(rf"{held}: released")
    inst.wait_new(1, "alice")
    wait_for(lambda: held not in listed(inst), 15, "the released message to be delivered")
    r = q(inst, "release", "ALL")
    assert "release: 0 of 0 matching messages" in r.stdout, r.stdout


def test_watch_shows_new_message(inst):
    proc = subprocess.Popen([str(POSTERN), "-c", str(inst.conf), "--json", "queue", "watch"], cwd=inst.dir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        inst.wait_log(r"queue: watched by=postern")
        code, text = send_mail(inst.ports["smtp"], rcpts=("alice@example.test",))
        qid = qid_of(text)
        events = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            ev = json.loads(line)
            if ev["id"] == qid:
                events.append(ev)
                if ev["event"] == "removed":
                    break
        kinds = [e["event"] for e in events]
        assert kinds[0] == "queued" and "delivered" in kinds and kinds[-1] == "removed", events
        assert any(e["recipient"] == "alice@example.test" for e in events if e["event"] == "delivered")
    finally:
        proc.send_signal(2)
        try:
            rc = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait(5)
    assert rc == 0, (rc, proc.stderr.read())


@needs_root
def test_non_admin_user_refused(inst):
    user = "nobody"
    pw = pwd.getpwnam(user)
    r = subprocess.run(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups",
                        str(POSTERN), "-c", str(inst.conf), "queue", "list"],
                       cwd="/", capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "queued.ctl" in r.stderr and "admin group" in r.stderr, r.stderr
    assert r.stdout == ""
