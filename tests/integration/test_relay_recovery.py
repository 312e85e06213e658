"""
Remote delivery that recovers: the implicit MX, DNS that fails and comes
back, and a restart of queued with messages in several states (issue 3).

The remote MTA is an aiosmtpd peer (smtppeer.py) on 127.0.0.2 on a free
port that is the instance's remote_smtp_port; DNS is the session's stub
server (dnsstub.py), whose servfail() switch plays a broken name server.
retry_min = 1h where a test steers retries itself, so nothing is tried
again unless `postern queue flush` asks for it. Each test asserts what the
peer received (how many times each message) and what an administrator sees:
the log line per recipient and `postern queue list`.
"""
import time

from harness import wait_for
from mailtest import make_message
from smtppeer import Peer
from test_queue_ctl import listed, q
from test_relay import mx_inst, port, relay_inst, submit, wait_tx  # noqa: F401  (port is a fixture)

NO_RETRY = {"retry_min": "1h", "retry_max": "2h"}


def message_ids(peer):
    """The Message-ID of every transaction the peer accepted, in order."""
    out = []
    for t in peer.transactions:
        for line in t.data.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                out.append(line.split(b":", 1)[1].strip().decode())
                break
        else:
            out.append(None)
    return out


def gone_from_queue(inst, qid):
    return wait_for(lambda: qid not in listed(inst), 15, f"{qid} to leave the queue")


def test_fallback_to_a_record(make_instance, port, dns):
    """No MX, only an A record (RFC 5321 5.1): the domain itself is the mail exchanger."""
    dns.add("amx.test. 60 IN A 127.0.0.2\n")
    with Peer("127.0.0.2", port) as peer:
        inst = mx_inst(make_instance, port)
        msg = make_message(to="bob@amx.test", sender="alice@example.test", subject="implicit mx")
        qid = submit(inst, ["bob@amx.test"], msg=msg)
        t = wait_tx(peer, 1)[0]
        assert t.mail_from == "alice@example.test" and t.rcpts == ["bob@amx.test"]
        assert message_ids(peer) == [msg["Message-ID"]]
        inst.wait_log(rf"{qid}: to=<bob@amx.test>, relay=amx\.test\[127\.0\.0\.2\]:{port}, .*dsn=2\.0\.0, "
                      rf"status=sent")
        assert ("amx.test.", "MX") in dns.queries    # it asked for MX first, and found none
        gone_from_queue(inst, qid)


def test_dns_down_then_up(make_instance, port, dns):
    """SERVFAIL for the domain: deferred (no bounce, no DSN); records there and a flush: delivered once."""
    dns.servfail("down.test")
    try:
        with Peer("127.0.0.2", port) as peer:
            inst = mx_inst(make_instance, port, NO_RETRY)
            msg = make_message(to="bob@down.test", sender="alice@example.test", subject="dns down")
            qid = submit(inst, ["bob@down.test"], msg=msg)
            inst.wait_log(rf"{qid}: to=<bob@down.test>, .*dsn=4\.4\.3, status=deferred \(DNS lookup of "
                          rf"down\.test failed, will try again .*SERVFAIL")
            e = wait_for(lambda: (lambda x: x if x and x["state"] == "deferred" else None)(listed(inst).get(qid)),
                         15, f"{qid} deferred in `postern queue list`")
            r = e["recipients"][0]
            assert r["address"] == "bob@down.test" and r["state"] == "deferred", e
            assert "SERVFAIL" in r["last_error"], e
            time.sleep(1.5)
            assert "status=bounced" not in inst.log()
            assert inst.new_files("alice") == [], "the sender got a notice for a temporary DNS failure"
            assert peer.connections == 0
            assert listed(inst)[qid]["state"] == "deferred"

            dns.servfail("down.test", False)
            dns.add("down.test. 60 IN MX 10 mx.down.test.\nmx.down.test. 60 IN A 127.0.0.2\n")
            out = q(inst, "flush", qid).stdout
            assert f"{qid}: flush requested" in out, out
            wait_tx(peer, 1)
            inst.wait_log(rf"{qid}: to=<bob@down.test>, relay=mx\.down\.test\[127\.0\.0\.2\]:{port}, .*status=sent")
            gone_from_queue(inst, qid)
            time.sleep(1.5)
            assert message_ids(peer) == [msg["Message-ID"]]
            assert inst.new_files("alice") == []
            assert "status=bounced" not in inst.log()
    finally:
        dns.servfail("down.test", False)


def test_restart_queued_keeps_states_and_delivers_once(make_instance, port):
    """Deferred, held and delivered messages across `postern restart queued`: nothing lost, nothing twice."""
    with Peer("127.0.0.2", port, rcpt={"later@relay.test": "451 4.3.0 Try again later"}) as peer:
        inst = relay_inst(make_instance, port, NO_RETRY)
        msgs = {to: make_message(to=f"{to}@relay.test", sender="alice@example.test", subject=to)
                for to in ("now", "later", "held")}

        done = submit(inst, ["now@relay.test"], msg=msgs["now"])
        wait_tx(peer, 1)
        inst.wait_log(rf"{done}: to=<now@relay.test>, .*status=sent")
        gone_from_queue(inst, done)

        deferred = submit(inst, ["later@relay.test"], msg=msgs["later"])
        inst.wait_log(rf"{deferred}: to=<later@relay.test>, .*status=deferred \(451 4\.3\.0 Try again later\)")

        q(inst, "pause")                 # so the held message is never tried before the hold
        held = submit(inst, ["held@relay.test"], msg=msgs["held"])
        assert f"{held}: held" in q(inst, "hold", held).stdout
        q(inst, "resume")

        def states():
            every = listed(inst)
            return {qid: every[qid]["state"] if qid in every else None for qid in (done, deferred, held)}
        want = {done: None, deferred: "deferred", held: "held"}
        wait_for(lambda: states() == want, 15, f"the queue to show {want} (has {states()})")

        before = inst.pids()["queued"]
        out = inst.tool("restart", "queued", timeout=90).stdout
        assert "queued restarted" in out, out
        after = inst.pids()["queued"]
        assert after and after != before, (before, after)
        wait_for(lambda: states() == want, 20, f"the queue after the restart to show {want} (has {states()})")
        time.sleep(2.5)                  # room for a wrong re-delivery or a lost state to show
        assert states() == want, states()
        assert message_ids(peer) == [msgs["now"]["Message-ID"]], "delivered again after the restart"
        assert inst.new_files("alice") == [] and "status=bounced" not in inst.log()

        peer.script["rcpt"] = {}         # the peer takes everything now
        assert f"{held}: released" in q(inst, "release", held).stdout
        assert f"{deferred}: flush requested" in q(inst, "flush", deferred).stdout
        wait_tx(peer, 3)
        for qid, to in ((deferred, "later"), (held, "held")):
            inst.wait_log(rf"{qid}: to=<{to}@relay.test>, .*status=sent")
            gone_from_queue(inst, qid)
        time.sleep(2.5)
        ids = message_ids(peer)
        assert sorted(ids) == sorted(m["Message-ID"] for m in msgs.values()), ids
        assert len(ids) == 3, ids
        assert listed(inst) == {}
