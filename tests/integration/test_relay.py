"""
Remote delivery: queued's SMTP client against real peers.

The remote MTAs are aiosmtpd servers (smtppeer.py) on 127.0.0.2 and
127.0.0.3, scripted per test, on a free port that is the instance's
remote_smtp_port; DNS is the stub server (MX records pointing at them), or
a relayhost given by address. Mail goes in as a user would send it: over
submission with AUTH to an address at another domain. Each test asserts
what the peer received (the exact bytes, CRLF and stuffed dots), and what
the sender's side shows: the log line per recipient and the recipient's
state and events in the queue database.
"""
import smtplib
import socket
import sqlite3
import threading
import time

import pytest

from harness import PASSWORDS, free_ports, wait_for
from mailtest import make_message, qid_of, send_mail
from smtppeer import Peer

ALICE = ("alice@example.test", PASSWORDS["alice@example.test"])


@pytest.fixture
def port():
    return free_ports(1)[0]


def relay_inst(make_instance, port, queued=None, host="127.0.0.2"):
    q = {"remote_smtp_port": str(port), "relayhost": f"[{host}]", "retry_min": "1s", "retry_max": "2s",
         "connect_timeout": "5s", "command_timeout": "10s", "data_timeout": "10s"}
    q.update(queued or {})
    return make_instance({"queued": q})


def mx_inst(make_instance, port, queued=None):
    q = {"remote_smtp_port": str(port), "retry_min": "1s", "retry_max": "2s",
         "connect_timeout": "5s", "command_timeout": "10s"}
    q.update(queued or {})
    return make_instance({"queued": q})


def submit(inst, rcpts, msg=None, **kw):
    code, text = send_mail(inst.ports["submission"], rcpts=rcpts, sender="alice@example.test", msg=msg,
                           login=ALICE, **kw)
    assert code == 250, text
    return qid_of(text)


def rcpt_rows(inst, qid):
    db = sqlite3.connect(f"file:{inst.state}/queue/queue.sqlite?mode=ro", uri=True)
    try:
        return {r[0]: (r[1], r[2]) for r in db.execute(
            "SELECT address, state, last_error FROM recipients WHERE qid = ?", (qid,))}
    finally:
        db.close()


def events(inst, qid):
    db = sqlite3.connect(f"file:{inst.state}/queue/queue.sqlite?mode=ro", uri=True)
    try:
        return [tuple(r) for r in db.execute(
            "SELECT recipient, what, detail FROM events WHERE qid = ? ORDER BY id", (qid,))]
    finally:
        db.close()


def wait_tx(peer, n, timeout=20):
    return wait_for(lambda: peer.transactions if len(peer.transactions) >= n else None, timeout,
                    f"{n} transaction(s) at the peer (have {len(peer.transactions)})")


def test_relayhost_delivers_exact_bytes(make_instance, port):
    """The peer gets the message as queued: CRLF line ends, a leading dot survives (stuffed on the wire)."""
    with Peer("127.0.0.2", port, pipelining=True) as peer:
        inst = relay_inst(make_instance, port)
        body = "first line\n.hidden dot line\n..two dots\n.\nlast\n"
        msg = make_message(to="bob@relay.test", sender="alice@example.test", subject="relay", body=body)
        qid = submit(inst, ["bob@relay.test", "carol@relay.test"], msg=msg)
        t = wait_tx(peer, 1)[0]
        assert t.mail_from == "alice@example.test"
        assert sorted(t.rcpts) == ["bob@relay.test", "carol@relay.test"]
        data = t.data
        assert b"\r\n.hidden dot line\r\n..two dots\r\n.\r\nlast\r\n" in data, data
        assert data.count(b"\n") == data.count(b"\r\n"), "a bare LF on the wire"
        assert b"Received:" in data and qid.encode() in data
        for r in ("bob", "carol"):
            inst.wait_log(rf"{qid}: to=<{r}@relay.test>, relay=127\.0\.0\.2\[127\.0\.0\.2\]:{port}, delay=[0-9.]+, "
                          rf"dsn=2\.0\.0, status=sent \(250 2\.0\.0 Ok: queued as PEER1\)")
        # everything delivered: the message left the queue
        inst.wait_for(lambda: not (inst.state / "queue" / "active" / qid).exists(), what="the queue file to go")


def test_mixed_recipients(make_instance, port):
    """250, 550 and 451 to three recipients of one message: delivered, bounced, deferred - each on its own."""
    script = {"rcpt": {"no@relay.test": "550 5.1.1 <no@relay.test>: No such user",
                       "later@relay.test": "451 4.3.0 Try again later"}}
    with Peer("127.0.0.2", port, **script) as peer:
        inst = relay_inst(make_instance, port, {"retry_min": "1h", "retry_max": "2h"})
        qid = submit(inst, ["yes@relay.test", "no@relay.test", "later@relay.test"])
        t = wait_tx(peer, 1)[0]
        assert t.rcpts == ["yes@relay.test"]
        inst.wait_log(rf"{qid}: to=<later@relay.test>, .*status=deferred \(451 4\.3\.0 Try again later\)")
        rows = inst.wait_for(lambda: (lambda r: r if r.get("later@relay.test", ("",))[0] == "deferred" else None)(
            rcpt_rows(inst, qid)), what="the deferred row")
        assert rows["yes@relay.test"][0] == "delivered"
        assert rows["no@relay.test"][0] == "bounced"
        assert f"host=127.0.0.2[127.0.0.2]:{port}" in rows["no@relay.test"][1]
        assert "dsn=5.1.1" in rows["no@relay.test"][1] and "reply=550 5.1.1" in rows["no@relay.test"][1]
        assert "reply=451 4.3.0 Try again later" in rows["later@relay.test"][1]
        ev = events(inst, qid)
        delivered = [e for e in ev if e[0] == "yes@relay.test" and e[1] == "delivered"]
        assert delivered and delivered[0][2] == f"host=127.0.0.2[127.0.0.2]:{port} reply=250 2.0.0 Ok: queued as PEER1"
        assert any(e[0] == "no@relay.test" and e[1] == "bounced" for e in ev), ev


def test_452_rest_in_next_transaction(make_instance, port):
    """A server that takes 2 recipients per transaction gets 5 in three transactions over one connection."""
    with Peer("127.0.0.2", port, max_rcpts=2, pipelining=True) as peer:
        inst = relay_inst(make_instance, port)
        rcpts = [f"u{i}@relay.test" for i in range(5)]
        qid = submit(inst, rcpts)
        txs = wait_tx(peer, 3)
        assert sorted(r for t in txs for r in t.rcpts) == rcpts
        assert [len(t.rcpts) for t in txs] == [2, 2, 1]
        assert peer.connections == 1
        for r in rcpts:
            inst.wait_log(rf"{qid}: to=<{r}>, .*status=sent")


@pytest.mark.parametrize("reply", ["421 4.3.2 Service shutting down", "drop", "451 4.3.0 Later"])
def test_failure_after_dot_defers(make_instance, port, reply):
    """421, a dropped connection or 451 after the final dot: deferred, never bounced."""
    with Peer("127.0.0.2", port, data=reply) as peer:
        inst = relay_inst(make_instance, port, {"retry_min": "1h", "retry_max": "2h"})
        qid = submit(inst, ["bob@relay.test"])
        inst.wait_log(rf"{qid}: to=<bob@relay.test>, .*status=deferred")
        rows = inst.wait_for(lambda: (lambda r: r if r["bob@relay.test"][0] != "pending" else None)(
            rcpt_rows(inst, qid)), what="the recipient's outcome")
        assert rows["bob@relay.test"][0] == "deferred", rows
        assert "status=bounced" not in inst.log()
        assert (inst.state / "queue" / "active" / qid).exists()
        assert peer.transactions == [] and peer.connections >= 1
        if reply == "drop":
            assert "lost connection" in rows["bob@relay.test"][1]
        else:
            assert reply in rows["bob@relay.test"][1]


def test_5xx_to_data_bounces_and_4xx_retried(make_instance, port):
    """554 after the dot bounces every recipient of the transaction; a 451 first then success is delivered."""
    with Peer("127.0.0.2", port, data="554 5.7.1 Rejected for policy") as peer:
        inst = relay_inst(make_instance, port)
        qid = submit(inst, ["bob@relay.test", "carol@relay.test"])
        for r in ("bob", "carol"):
            inst.wait_log(rf"{qid}: to=<{r}@relay.test>, .*dsn=5\.7\.1, status=bounced \(554 5\.7\.1 Rejected")
        peer.script["data"] = "451 4.3.0 Not now"
        qid2 = submit(inst, ["dave@relay.test"])
        inst.wait_log(rf"{qid2}: to=<dave@relay.test>, .*status=deferred")
        peer.script["data"] = None
        inst.wait_log(rf"{qid2}: to=<dave@relay.test>, .*status=sent", timeout=20)
        assert [t.rcpts for t in peer.transactions] == [["dave@relay.test"]]


def test_mail_from_refused(make_instance, port):
    """5xx to MAIL FROM bounces the transaction's recipients; nothing reaches DATA."""
    with Peer("127.0.0.2", port, mail="550 5.7.1 Sender refused") as peer:
        inst = relay_inst(make_instance, port)
        qid = submit(inst, ["bob@relay.test"])
        inst.wait_log(rf"{qid}: to=<bob@relay.test>, .*dsn=5\.7\.1, status=bounced \(550 5\.7\.1 Sender refused\)")
        assert peer.transactions == []
        # the sender is told (bounce.c), with the remote MTA and its exact reply
        dsn = inst.wait_new(1, user="alice")[0].read_bytes()
        assert b"Remote-MTA: dns; 127.0.0.2" in dsn, dsn
        assert b"Diagnostic-Code: smtp; 550 5.7.1 Sender refused" in dsn, dsn
        assert b"Status: 5.7.1" in dsn, dsn


def _send_dsn(inst):
    msg = make_message(to="bob@relay.test", sender="alice@example.test")
    with smtplib.SMTP("127.0.0.1", inst.ports["submission"], local_hostname="client.test") as s:
        s.ehlo()
        s.login(*ALICE)
        r = s.sendmail("alice@example.test", ["bob@relay.test"], msg.as_bytes(),
                       mail_options=["RET=HDRS", "ENVID=env+2B1"],
                       rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;bob@relay.test"])
        assert r == {}


def test_dsn_parameters_passed_on(make_instance, port):
    """A server offering DSN gets NOTIFY, ORCPT, RET and ENVID as the client gave them, and reports success itself."""
    with Peer("127.0.0.2", port, dsn=True) as peer:
        inst = relay_inst(make_instance, port)
        _send_dsn(inst)
        wait_tx(peer, 1)
        assert sorted(peer.dsn_params) == sorted(["RET=HDRS", "ENVID=env+2B1", "NOTIFY=SUCCESS,FAILURE",
                                                  "ORCPT=rfc822;bob@relay.test"])
        inst.wait_log(r"to=<bob@relay.test>, .*status=sent")
        time.sleep(1)
        assert inst.new_files("alice") == [], "a success notice although the next server reports it"


def test_dsn_relayed_notice_without_dsn(make_instance, port):
    """A server without DSN gets no DSN parameters; the sender who asked for success hears 'relayed'."""
    with Peer("127.0.0.2", port) as peer:
        inst = relay_inst(make_instance, port)
        _send_dsn(inst)
        t = wait_tx(peer, 1)[0]
        assert peer.dsn_params == [] and t.rcpt_options == []
        notice = inst.wait_new(1, user="alice")[0].read_bytes()
        assert b"Action: relayed" in notice, notice


def _raw_server(host, port, script):
    """A server that answers each line it reads with the next reply of script (bytes), then closes."""
    srv = socket.create_server((host, port))
    seen = []

    def run():
        conn, _ = srv.accept()
        with conn:
            conn.sendall(script[0])
            f = conn.makefile("rb")
            for reply in script[1:]:
                line = f.readline()
                if not line:
                    return
                seen.append(line)
                conn.sendall(reply)
            f.readline()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return srv, th, seen


def test_malformed_replies_defer(make_instance, port):
    """An overlong multi-line EHLO reply with bare LFs is read; a garbage reply to MAIL defers, cleaned."""
    long_line = b"250-" + b"X" * 3000 + b"\n"
    srv, th, seen = _raw_server("127.0.0.2", port, [
        b"220 raw.test ESMTP\r\n",
        b"250-raw.test\n" + long_line + b"250 8BITMIME\r\n",
        b"hello \x1b[31mthere\r\n"])
    try:
        inst = relay_inst(make_instance, port, {"retry_min": "1h", "retry_max": "2h"})
        qid = submit(inst, ["bob@relay.test"])
        m = inst.wait_log(rf"{qid}: to=<bob@relay.test>, .*status=deferred \((.*)\)$")
        assert "malformed reply" in m.group(1), m.group(1)
        assert "\x1b" not in inst.log()
        assert seen[0].startswith(b"EHLO mx.example.test") and seen[1].startswith(b"MAIL FROM:<alice@example.test>")
    finally:
        srv.close()
        th.join(5)


def test_8bitmime_declared(make_instance, port):
    """A message sent with BODY=8BITMIME goes on with BODY=8BITMIME to a server that offers it, bytes intact."""
    with Peer("127.0.0.2", port) as peer:
        inst = relay_inst(make_instance, port)
        raw = ("From: alice@example.test\r\nTo: bob@relay.test\r\nSubject: 8bit\r\n"
               "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
               "gr\u00fc\u00dfe\r\n").encode()
        with smtplib.SMTP("127.0.0.1", inst.ports["submission"], local_hostname="client.test") as s:
            s.ehlo()
            s.login(*ALICE)
            assert s.sendmail("alice@example.test", ["bob@relay.test"], raw, mail_options=["BODY=8BITMIME"]) == {}
        t = wait_tx(peer, 1)[0]
        assert "BODY=8BITMIME" in t.mail_options, t.mail_options
        assert "gr\u00fc\u00dfe\r\n".encode() in t.data


def test_timeout_after_dot_defers(make_instance, port):
    """No answer to the final dot within data_timeout: deferred, never bounced."""
    with Peer("127.0.0.2", port, delay=4):
        inst = relay_inst(make_instance, port, {"data_timeout": "1s", "retry_min": "1h", "retry_max": "2h"})
        qid = submit(inst, ["bob@relay.test"])
        inst.wait_log(rf"{qid}: to=<bob@relay.test>, .*status=deferred \(conversation with .* timed out while "
                      rf"sending end of data\)")
        assert "status=bounced" not in inst.log()


def test_helo_fallback(make_instance, port):
    """A server that refuses EHLO gets HELO, and the message."""
    with Peer("127.0.0.2", port, ehlo=False) as peer:
        inst = relay_inst(make_instance, port)
        qid = submit(inst, ["bob@relay.test"])
        wait_tx(peer, 1)
        assert [k for k, _ in peer.helo_names] == ["EHLO", "HELO"]
        assert peer.helo_names[0][1] == "mx.example.test"
        inst.wait_log(rf"{qid}: to=<bob@relay.test>, .*status=sent")


def test_size_limit_of_server(make_instance, port):
    """A message larger than the server's SIZE is never sent: bounced 5.3.4."""
    with Peer("127.0.0.2", port, size=2000) as peer:
        inst = relay_inst(make_instance, port)
        msg = make_message(to="bob@relay.test", sender="alice@example.test", body=("y" * 70 + "\n") * 60)
        qid = submit(inst, ["bob@relay.test"], msg=msg)
        inst.wait_log(rf"{qid}: to=<bob@relay.test>, .*dsn=5\.3\.4, status=bounced \(message size \d+ exceeds size limit 2000")
        small = submit(inst, ["bob@relay.test"])
        t = wait_tx(peer, 1)[0]
        assert any(o.startswith("SIZE=") for o in t.mail_options), t.mail_options
        inst.wait_log(rf"{small}: to=<bob@relay.test>, .*status=sent")


def test_smtputf8_needed_but_not_offered(make_instance, port):
    """An internationalised address to a server without SMTPUTF8: bounced 5.6.7; with it: sent."""
    with Peer("127.0.0.2", port, smtputf8=False) as peer:
        inst = relay_inst(make_instance, port)
        rcpt = "d\u00e9j\u00e0@relay.test"
        msg = make_message(to="x@relay.test", sender="alice@example.test")
        with smtplib.SMTP("127.0.0.1", inst.ports["submission"], local_hostname="client.test") as s:
            s.ehlo()
            s.login(*ALICE)
            r = s.sendmail("alice@example.test", [rcpt], msg.as_bytes(), mail_options=["SMTPUTF8"])
            assert r == {}
        inst.wait_log(r"[0-9A-F]{16}: to=<d\S+@relay.test>, .*dsn=5\.6\.7, status=bounced \(SMTPUTF8 is required")
        assert peer.transactions == []


def test_starttls_used(make_instance, port):
    """STARTTLS offered: the message goes over TLS (EHLO again after the handshake)."""
    with Peer("127.0.0.2", port, tls=True) as peer:
        inst = relay_inst(make_instance, port)
        qid = submit(inst, ["bob@relay.test"])
        t = wait_tx(peer, 1)[0]
        assert t.tls
        assert [k for k, _ in peer.helo_names] == ["EHLO", "EHLO"]
        inst.wait_log(rf"{qid}: to=<bob@relay.test>, .*status=sent")


def test_tls_failure_falls_back_to_plaintext(make_instance, port):
    """outbound_tls = may: a failed handshake is retried in plaintext on a new connection."""
    with Peer("127.0.0.2", port, tls_fail=True) as peer:
        inst = relay_inst(make_instance, port)
        qid = submit(inst, ["bob@relay.test"])
        t = wait_tx(peer, 1)[0]
        assert not t.tls
        assert peer.connections == 2
        inst.wait_log(r"relay: 127.0.0.2: TLS handshake with .* failed")
        inst.wait_log(rf"{qid}: to=<bob@relay.test>, .*status=sent")


def test_tls_required_but_not_offered_defers(make_instance, port):
    """outbound_tls = encrypt and no STARTTLS: deferred, nothing sent."""
    with Peer("127.0.0.2", port) as peer:
        inst = relay_inst(make_instance, port, {"outbound_tls": "encrypt", "retry_min": "1h", "retry_max": "2h"})
        qid = submit(inst, ["bob@relay.test"])
        inst.wait_log(rf"{qid}: to=<bob@relay.test>, .*status=deferred \(TLS is required")
        assert peer.transactions == []


def test_smarthost_auth_over_tls(make_instance, port, tmp_path):
    """relayhost with a login: AUTH over TLS, the message relayed as that user."""
    pw = tmp_path / "relay.pw"
    pw.write_text("s3cret-relay\n")
    pw.chmod(0o644)
    with Peer("127.0.0.2", port, tls=True, auth={"relayuser": "s3cret-relay"}) as peer:
        inst = relay_inst(make_instance, port, {"relayhost": f"[127.0.0.2]:{port}", "relayhost_user": "relayuser",
                                                "relayhost_password_file": str(pw)})
        qid = submit(inst, ["bob@far.test", "x@other.test"])
        t = wait_tx(peer, 1)[0]
        assert t.tls and t.login == "relayuser"
        assert sorted(t.rcpts) == ["bob@far.test", "x@other.test"]   # one transaction through the smarthost
        inst.wait_log(rf"{qid}: to=<bob@far.test>, .*status=sent")
        assert "s3cret" not in inst.log()


def test_smarthost_auth_never_in_plaintext(make_instance, port, tmp_path):
    pw = tmp_path / "relay.pw"
    pw.write_text("s3cret-relay\n")
    pw.chmod(0o644)
    with Peer("127.0.0.2", port) as peer:
        inst = relay_inst(make_instance, port, {"relayhost_user": "relayuser", "relayhost_password_file": str(pw),
                                                "retry_min": "1h", "retry_max": "2h"})
        qid = submit(inst, ["bob@far.test"])
        inst.wait_log(rf"{qid}: to=<bob@far.test>, .*status=deferred \(TLS is required")
        assert peer.transactions == []


def test_relayhost_by_name_without_mx(make_instance, port, dns):
    """relayhost = [name]: the name's own address, not its MX hosts; a name not in DNS defers."""
    dns.add("smarthost.test. 60 IN A 127.0.0.2\nsmarthost.test. 60 IN MX 10 other.smarthost.test.\n"
            "other.smarthost.test. 60 IN A 127.0.0.3\n")
    with Peer("127.0.0.2", port) as p2, Peer("127.0.0.3", port) as p3:
        inst = relay_inst(make_instance, port, {"relayhost": "[smarthost.test]"})
        qid = submit(inst, ["bob@far.test"])
        wait_tx(p2, 1)
        assert p3.connections == 0
        inst.wait_log(rf"{qid}: to=<bob@far.test>, relay=smarthost\.test\[127\.0\.0\.2\]:{port}, .*status=sent")
    inst2 = relay_inst(make_instance, port, {"relayhost": "[missing.smarthost.test]", "retry_min": "1h",
                                             "retry_max": "2h"})
    q2 = submit(inst2, ["bob@far.test"])
    inst2.wait_log(rf"{q2}: to=<bob@far.test>, .*dsn=4\.4\.4, status=deferred \(relayhost missing")


def test_connection_reused(make_instance, port):
    """Two messages to one destination, one after the other: one connection, RSET between."""
    with Peer("127.0.0.2", port) as peer:
        inst = relay_inst(make_instance, port)
        q1 = submit(inst, ["bob@relay.test"])
        wait_tx(peer, 1)
        inst.wait_log(rf"{q1}: to=<bob@relay.test>, .*status=sent")
        q2 = submit(inst, ["carol@relay.test"])
        wait_tx(peer, 2)
        inst.wait_log(rf"{q2}: to=<carol@relay.test>, .*status=sent")
        assert peer.connections == 1


def test_no_reuse(make_instance, port):
    """connection_reuse_limit = 0 (or 1): one message per connection, and still every message goes."""
    with Peer("127.0.0.2", port) as peer:
        inst = relay_inst(make_instance, port, {"connection_reuse_limit": "0"})
        for i in range(3):
            submit(inst, [f"u{i}@relay.test"])
        wait_tx(peer, 3)
        inst.wait_for(lambda: peer.connections == 3, what="three connections")


def test_concurrency_limit(make_instance, port):
    """destination_concurrency = 2: the peer never sees more than two connections at once."""
    with Peer("127.0.0.2", port, delay=0.7) as peer:
        inst = relay_inst(make_instance, port, {"destination_concurrency": "2"})
        qids = [submit(inst, [f"u{i}@relay.test"]) for i in range(6)]
        wait_tx(peer, 6, timeout=30)
        assert peer.max_current <= 2, peer.max_current
        assert peer.max_current == 2
        for q in qids:
            inst.wait_log(rf"{q}: to=<.*status=sent")


def test_rate_limit(make_instance, port):
    """destination_rate = 60 per minute: messages start at least about a second apart."""
    with Peer("127.0.0.2", port) as peer:
        inst = relay_inst(make_instance, port, {"destination_rate": "60"})
        for i in range(3):
            submit(inst, [f"u{i}@relay.test"])
        txs = wait_tx(peer, 3, timeout=30)
        times = sorted(t.time for t in txs)
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert all(g >= 0.8 for g in gaps), gaps


def test_dead_destination_backed_off(make_instance, port):
    """Nothing listens: deferred with the connect error; the next message within the backoff is not tried."""
    inst = relay_inst(make_instance, port, {"retry_min": "1h", "retry_max": "2h"})
    q1 = submit(inst, ["bob@relay.test"])
    inst.wait_log(rf"{q1}: to=<bob@relay.test>, .*status=deferred \(connect to .*refused")
    inst.wait_log(r"relay: destination 127.0.0.2 unreachable .*backed off")
    q2 = submit(inst, ["carol@relay.test"])
    inst.wait_log(rf"{q2}: to=<carol@relay.test>, .*status=deferred \(connect to")
    assert inst.log().count("relay: 127.0.0.2: connect to") == 1


def test_mx_hosts_in_order(make_instance, port, dns):
    """MX 10 -> 127.0.0.2 (refuses at greeting), MX 20 -> 127.0.0.3 accepts: delivered via the second."""
    dns.add("mxorder.test. 60 IN MX 10 mx1.mxorder.test.\nmxorder.test. 60 IN MX 20 mx2.mxorder.test.\n"
            "mx1.mxorder.test. 60 IN A 127.0.0.2\nmx2.mxorder.test. 60 IN A 127.0.0.3\n")
    with Peer("127.0.0.2", port, greeting="421 4.3.2 busy") as p1, Peer("127.0.0.3", port) as p2:
        inst = mx_inst(make_instance, port)
        qid = submit(inst, ["bob@mxorder.test"])
        wait_tx(p2, 1)
        assert p1.connections == 1
        inst.wait_log(rf"{qid}: to=<bob@mxorder.test>, relay=mx2\.mxorder\.test\[127\.0\.0\.3\]:{port}, .*status=sent")


def test_nxdomain_and_null_mx_bounce(make_instance, port, dns):
    dns.add("nullmx.test. 60 IN MX 0 .\n")
    inst = mx_inst(make_instance, port)
    q1 = submit(inst, ["bob@nxdomain.test"])
    inst.wait_log(rf"{q1}: to=<bob@nxdomain.test>, .*dsn=5\.1\.2, status=bounced")
    q2 = submit(inst, ["bob@nullmx.test"])
    inst.wait_log(rf"{q2}: to=<bob@nullmx.test>, .*dsn=5\.1\.10, status=bounced")


def test_ipv4_forced(make_instance, port, dns):
    """outbound_family = ipv4: an MX host with AAAA ::1 and A 127.0.0.2 is reached over IPv4."""
    dns.add("fam.test. 60 IN MX 10 mx.fam.test.\nmx.fam.test. 60 IN AAAA ::1\nmx.fam.test. 60 IN A 127.0.0.2\n")
    with Peer("::1", port) as p6, Peer("127.0.0.2", port) as p4:
        inst = mx_inst(make_instance, port, {"outbound_family": "ipv4"})
        qid = submit(inst, ["bob@fam.test"])
        wait_tx(p4, 1)
        assert p6.connections == 0
        inst.wait_log(rf"{qid}: to=<bob@fam.test>, relay=mx\.fam\.test\[127\.0\.0\.2\]")


def test_end_to_end_second_instance(make_instance, dns):
    """Submission with AUTH on one instance, relayed by MX to a second instance, delivered into its Maildir."""
    b = make_instance()
    b.tool("domain", "add", "remote.test")
    b.add_user("rita@remote.test", "rita-pass-1234")
    dns.add("remote.test. 60 IN MX 10 mx.remote.test.\nmx.remote.test. 60 IN A 127.0.0.1\n")
    a = mx_inst(make_instance, b.ports["smtp"])
    body = "Hello Rita.\n.a dotted line\n"
    msg = make_message(to="rita@remote.test", sender="alice@example.test", subject="e2e", body=body)
    qid = submit(a, ["rita@remote.test"], msg=msg)
    new = b.state / "mail" / "remote.test" / "rita" / "new"
    files = wait_for(lambda: list(new.glob("*")) if new.exists() else None, 30, "the message in rita's new/")
    raw = files[0].read_bytes()
    assert b"\n.a dotted line\n" in raw or b"\n.a dotted line\r\n" in raw   # the dot arrived unstuffed
    assert msg["Message-ID"].encode() in raw
    a.wait_log(rf"{qid}: to=<rita@remote.test>, relay=mx\.remote\.test\[127\.0\.0\.1\]:{b.ports['smtp']}, .*status=sent")
