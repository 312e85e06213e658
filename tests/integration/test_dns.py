"""
resolverd's DNS (RES_MX) against real DNS servers, asked the way queued asks.

A real dnsmasq (dnsmasq.py) on a loopback port serves the zone dns.test
authoritatively; a small scripted server (ScriptedDns, below, on dnslib)
produces what dnsmasq cannot: SERVFAIL, silence, answers to another
question, malformed MX targets, a null MX, one-second TTLs. Each has its own
Postern instance whose [resolverd] nameservers = 127.0.0.1:PORT points at it.
The questions go through the real IPC: tests/tools/mxask.c calls
mc_resolver_mx() on run_dir/resolverd.sock and prints each answer as JSON.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from dnslib import CNAME, MX, QTYPE, RCODE, RR, A, DNSLabel, DNSRecord

from dnsmasq import Dnsmasq, free_udp_tcp_port, has_ipv6_loopback
from harness import BUILD, POSTERN, Instance

MXASK = BUILD / "tests" / "mxask"

DNSMASQ_RECORDS = [
    # four exchangers, three of them at preference 10
    "--mx-host=order.dns.test,a.order.dns.test,10", "--mx-host=order.dns.test,b.order.dns.test,10",
    "--mx-host=order.dns.test,c.order.dns.test,10", "--mx-host=order.dns.test,d.order.dns.test,20",
    "--host-record=a.order.dns.test,192.0.2.1", "--host-record=b.order.dns.test,192.0.2.2",
    "--host-record=c.order.dns.test,192.0.2.3", "--host-record=d.order.dns.test,192.0.2.4",
    # an exchanger with both families, and a domain that is a CNAME of that domain
    "--mx-host=dual.dns.test,mx.dual.dns.test,5", "--host-record=mx.dual.dns.test,192.0.2.10,2001:db8::10",
    "--cname=alias.dns.test,dual.dns.test",
    # an exchanger whose name is a CNAME
    "--mx-host=mxcname.dns.test,host.alias.dns.test,10", "--cname=host.alias.dns.test,mx.dual.dns.test",
    # no MX: the domain's own addresses (implicit MX)
    "--host-record=implicit.dns.test,192.0.2.20,2001:db8::20",
    # exists, but no MX and no address
    "--txt-record=noaddr.dns.test,nothing here",
    # the only exchanger has no address
    "--mx-host=deadmx.dns.test,gone.dns.test,10",
    # an exchanger that is an IP address written as a name, beside a good one
    "--mx-host=literal.dns.test,192.0.2.99,5", "--mx-host=literal.dns.test,mx.dual.dns.test,10",
    # for the cache tests, each asked by one test only
    "--mx-host=cached.dns.test,mx.cached.dns.test,10", "--host-record=mx.cached.dns.test,192.0.2.30",
    "--mx-host=merged.dns.test,mx.merged.dns.test,10", "--host-record=mx.merged.dns.test,192.0.2.31",
    "--host-record=v4only.dns.test,192.0.2.40",
]
# a burst of domains asked at once
BURST = 300
# sixty exchangers: the answer is too big for UDP (c-ares asks again over TCP), and only the 32 best are kept
DNSMASQ_RECORDS += [f"--mx-host=big.dns.test,exchanger-{i:02}.big.dns.test,{i}" for i in range(1, 61)]
DNSMASQ_RECORDS += [f"--host-record=exchanger-{i:02}.big.dns.test,192.0.2.{100 + i}" for i in range(1, 61)]


def mxask(inst, *domains, family=0, repeat=1, host_only=False, timeout=60):
    """Ask resolverd for each domain; the answers as dicts, in the order they came."""
    opts = ["-H"] if host_only else []
    r = subprocess.run([str(MXASK), "-c", str(inst.conf), "-f", str(family), "-r", str(repeat), *opts, "--",
                        *domains],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"mxask exit {r.returncode}: {r.stderr}"
    return [json.loads(line) for line in r.stdout.splitlines()]


def ask1(inst, domain, family=0, host_only=False):
    (a,) = mxask(inst, domain, family=family, host_only=host_only)
    assert a["domain"] == domain
    return a


def hosts(answer):
    return [(h["name"], h["pref"], h["addrs"]) for h in answer["hosts"]]


class ScriptedDns:
    """A UDP DNS server on 127.0.0.1 whose answers are scripted per name (dnslib); logs every question."""

    def __init__(self):
        self.port = free_udp_tcp_port()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.settimeout(0.2)
        self.queries = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def stop(self):
        self.running = False
        self.thread.join(5)
        self.sock.close()

    def count(self, name, qtype):
        with self.lock:
            return sum(1 for n, t in self.queries if n == name and t == qtype)

    def serve(self):
        while self.running:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                q = DNSRecord.parse(data)
            except Exception:
                continue
            name, qtype = str(q.q.qname).rstrip(".").lower(), QTYPE[q.q.qtype]
            with self.lock:
                self.queries.append((name, qtype))
            reply = self.answer(q, name, qtype)
            if reply is not None:
                self.sock.sendto(reply.pack(), peer)

    def answer(self, q, name, qtype):
        reply = q.reply()
        z = "stub.test"
        if name == f"servfail.{z}":
            reply.header.rcode = RCODE.SERVFAIL
        elif name.startswith("silent"):
            return None
        elif name == f"otherq.{z}":
            # an answer to a question that was not asked
            other = DNSRecord.question(f"elsewhere.{z}", qtype)
            other.header.id = q.header.id
            reply = other.reply()
            reply.add_answer(RR(f"elsewhere.{z}", QTYPE.MX, rdata=MX(f"mx.good.{z}", 10), ttl=60))
        elif name == f"badmx.{z}" and qtype == "MX":
            reply.add_answer(RR(name, QTYPE.MX, rdata=MX(DNSLabel([b"bad_host", b"stub", b"test"]), 5), ttl=60))
            reply.add_answer(RR(name, QTYPE.MX, rdata=MX(DNSLabel([b"sp ace", b"stub", b"test"]), 6), ttl=60))
            reply.add_answer(RR(name, QTYPE.MX, rdata=MX(f"mx.good.{z}", 10), ttl=60))
        elif name == f"nullmx.{z}" and qtype == "MX":
            reply.add_answer(RR(name, QTYPE.MX, rdata=MX(".", 0), ttl=60))
        elif name == f"foreign.{z}" and qtype == "MX":
            # records owned by another name than the one asked
            reply.add_answer(RR(f"victim.{z}", QTYPE.MX, rdata=MX(f"mx.good.{z}", 10), ttl=60))
        elif name == f"loop.{z}":
            reply.add_answer(RR(name, QTYPE.CNAME, rdata=CNAME(f"loop2.{z}"), ttl=60))
            reply.add_answer(RR(f"loop2.{z}", QTYPE.CNAME, rdata=CNAME(name), ttl=60))
        elif name == f"short.{z}" and qtype == "MX":
            reply.add_answer(RR(name, QTYPE.MX, rdata=MX(f"mx.good.{z}", 10), ttl=1))
        elif name == f"mx.good.{z}" and qtype == "A":
            reply.add_answer(RR(name, QTYPE.A, rdata=A("192.0.2.50"), ttl=1))
        elif name in (f"mx.good.{z}", f"badmx.{z}", f"short.{z}", f"foreign.{z}", f"nullmx.{z}"):
            pass        # NODATA
        else:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


def _instance(tmp, dns_port, extra=None):
    os.chmod(tmp, 0o755)
    cfg = {"resolverd": {"nameservers": f"127.0.0.1:{dns_port}", "dns_timeout": "1s"}}
    for sec, kv in (extra or {}).items():
        cfg.setdefault(sec, {}).update(kv)
    inst = Instance(tmp, dns_port, cfg)
    inst.start()
    return inst


@pytest.fixture(scope="module")
def dm():
    if not MXASK.exists():
        pytest.fail(f"{MXASK} not found: build first")
    with tempfile.TemporaryDirectory(prefix="postern-dns-") as tmp:
        server = Dnsmasq(tmp, ["dns.test"], DNSMASQ_RECORDS, ttl=300, ipv6=has_ipv6_loopback()).start()
        inst = _instance(tmp, server.port)
        try:
            yield server, inst
        finally:
            inst.stop(check=False)
            server.stop()
            assert not inst.sanitizer_reports(), inst.sanitizer_reports()


@pytest.fixture(scope="module")
def stub():
    with tempfile.TemporaryDirectory(prefix="postern-dns-") as tmp:
        server = ScriptedDns()
        inst = _instance(tmp, server.port)
        try:
            yield server, inst
        finally:
            inst.stop(check=False)
            server.stop()
            assert not inst.sanitizer_reports(), inst.sanitizer_reports()


# ---- dnsmasq ----

def test_mx_order_and_equal_preferences_shuffled(dm):
    server, inst = dm
    answers = mxask(inst, "order.dns.test", repeat=30)
    assert len(answers) == 30
    firsts = set()
    for a in answers:
        assert a["result"] == "ok", a
        got = hosts(a)
        assert [p for _, p, _ in got] == [10, 10, 10, 20]
        assert sorted(n for n, p, _ in got if p == 10) == ["a.order.dns.test", "b.order.dns.test",
                                                           "c.order.dns.test"]
        assert got[3] == ("d.order.dns.test", 20, ["192.0.2.4"])
        assert dict((n, ad) for n, _, ad in got)["b.order.dns.test"] == ["192.0.2.2"]
        firsts.add(got[0][0])
    # 30 answers, three equal hosts: all in first place at least once (chance of failing ~ 3 * (2/3)^30)
    assert firsts == {"a.order.dns.test", "b.order.dns.test", "c.order.dns.test"}


def test_both_families_ipv6_first(dm):
    _, inst = dm
    a = ask1(inst, "dual.dns.test")
    assert a["result"] == "ok"
    assert hosts(a) == [("mx.dual.dns.test", 5, ["2001:db8::10", "192.0.2.10"])]
    assert hosts(ask1(inst, "dual.dns.test", family=4)) == [("mx.dual.dns.test", 5, ["192.0.2.10"])]
    assert hosts(ask1(inst, "dual.dns.test", family=6)) == [("mx.dual.dns.test", 5, ["2001:db8::10"])]


def test_family_without_addresses_is_nohost(dm):
    server, inst = dm
    a = ask1(inst, "v4only.dns.test", family=6)
    assert a["result"] == "nohost" and a["hosts"] == []
    assert "IPv6" in a["detail"]
    assert server.queries("v4only.dns.test", "A") == []


def test_implicit_mx(dm):
    _, inst = dm
    a = ask1(inst, "implicit.dns.test")
    assert a["result"] == "ok"
    assert hosts(a) == [("implicit.dns.test", 0, ["2001:db8::20", "192.0.2.20"])]


def test_no_mx_no_address_is_permanent(dm):
    _, inst = dm
    a = ask1(inst, "noaddr.dns.test")
    assert a["result"] == "nohost", a
    assert "no MX and no address" in a["detail"]
    a = ask1(inst, "deadmx.dns.test")
    assert a["result"] == "nohost", a
    assert "no MX host of deadmx.dns.test has an address" in a["detail"]


def test_cname_chains(dm):
    _, inst = dm
    # the domain is a CNAME: its target's MX
    a = ask1(inst, "alias.dns.test")
    assert hosts(a) == [("mx.dual.dns.test", 5, ["2001:db8::10", "192.0.2.10"])], a
    # the exchanger's name is a CNAME: the target's addresses, under the name the MX gave
    a = ask1(inst, "mxcname.dns.test")
    assert hosts(a) == [("host.alias.dns.test", 10, ["2001:db8::10", "192.0.2.10"])], a


def test_nxdomain_is_permanent(dm):
    _, inst = dm
    a = ask1(inst, "nonexistent.dns.test")
    assert a["result"] == "nxdomain"
    assert "does not exist" in a["detail"]


def test_refused_is_temporary(dm):
    _, inst = dm
    a = ask1(inst, "outside.example")
    assert a["result"] == "tempfail", a
    assert "refused" in a["detail"].lower() and f"127.0.0.1:{dm[0].port}" in a["detail"], a


def test_ip_literal_mx_target_ignored(dm):
    _, inst = dm
    a = ask1(inst, "literal.dns.test")
    assert hosts(a) == [("mx.dual.dns.test", 10, ["2001:db8::10", "192.0.2.10"])], a
    inst.wait_log(r"dns: MX literal\.dns\.test: 1 record ignored: MX target is not a host name")


def test_positive_answers_cached(dm):
    server, inst = dm
    first = ask1(inst, "cached.dns.test")
    assert hosts(first) == [("mx.cached.dns.test", 10, ["192.0.2.30"])]
    for _ in range(3):
        assert ask1(inst, "cached.dns.test") == first
    assert len(server.queries("cached.dns.test", "MX")) == 1, server.queries("cached.dns.test")
    assert len(server.queries("mx.cached.dns.test", "A")) == 1
    assert len(server.queries("mx.cached.dns.test", "AAAA")) == 1


def test_negative_answers_cached(dm):
    server, inst = dm
    for _ in range(3):
        assert ask1(inst, "negative.dns.test")["result"] == "nxdomain"
    assert len(server.queries("negative.dns.test", "MX")) == 1
    # NODATA too: the implicit MX's empty AAAA is asked once
    for _ in range(2):
        assert ask1(inst, "v4only.dns.test")["result"] == "ok"
    assert len(server.queries("v4only.dns.test", "AAAA")) == 1


def test_concurrent_identical_questions_merged(dm):
    server, inst = dm
    answers = mxask(inst, "merged.dns.test", repeat=20)
    assert len(answers) == 20
    assert all(hosts(a) == [("mx.merged.dns.test", 10, ["192.0.2.31"])] for a in answers)
    assert len(server.queries("merged.dns.test", "MX")) == 1
    assert len(server.queries("mx.merged.dns.test", "A")) == 1


def test_burst_of_questions_not_lost():
    # its own server and instance, cold: the burst meets a name server that has not answered anything yet
    tmp_path = Path(tempfile.mkdtemp(prefix="postern-dnsb-"))
    recs = [f"--mx-host=burst{i}.dns.test,mx.burst{i}.dns.test,10" for i in range(BURST)]
    recs += [f"--host-record=mx.burst{i}.dns.test,198.51.{100 + i // 250}.{i % 250 + 1}" for i in range(BURST)]
    server = Dnsmasq(tmp_path, ["dns.test"], recs).start()
    inst = None
    try:
        inst = _instance(tmp_path, server.port, {"resolverd": {"dns_timeout": "5s"}})
        inst.tool("trace", "resolverd", "dns")
        domains = [f"burst{i}.dns.test" for i in range(BURST)]
        answers = mxask(inst, *domains)
        assert sorted(a["domain"] for a in answers) == sorted(domains)
        for a in answers:
            i = int(a["domain"][5:].split(".")[0])
            assert hosts(a) == [(f"mx.burst{i}.dns.test", 10, [f"198.51.{100 + i // 250}.{i % 250 + 1}"])], a
        # 900 questions at once: resolverd paces them, so none is lost on the way and waited out a timeout
        inst.wait_for(lambda: inst.log().count("dns: answer ") >= 3 * BURST, what="every answer traced")
        slow = re.findall(r"dns: answer .* timeouts=[1-9].*", inst.log())
        assert slow == [], f"{len(slow)} answers came only after a timeout: {slow[:3]}"
    finally:
        if inst is not None:
            inst.stop(check=False)
        server.stop()
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_malformed_names_refused(dm):
    server, inst = dm
    before = len(server.queries())
    for bad in ["bad..dns.test", "under_score.dns.test", "-lead.dns.test", "x" * 64 + ".dns.test",
                ("a" * 60 + ".") * 5 + "test", "sp ace.dns.test", "192.0.2.1", ""]:
        a = ask1(inst, bad)
        assert a["result"] == "nxdomain" and a["detail"] == "not a valid domain name", (bad, a)
    assert len(server.queries()) == before
    inst.wait_log(r'dns: MX for "under_score\.dns\.test" refused: not a valid domain name')


def test_address_literal_domain(dm):
    _, inst = dm
    assert hosts(ask1(inst, "[192.0.2.7]")) == [("[192.0.2.7]", 0, ["192.0.2.7"])]
    assert hosts(ask1(inst, "[IPv6:2001:db8::7]")) == [("[IPv6:2001:db8::7]", 0, ["2001:db8::7"])]
    assert ask1(inst, "[IPv6:2001:db8::7]", family=4)["result"] == "nohost"
    assert ask1(inst, "[300.1.2.3]")["result"] == "nxdomain"


def test_host_only_skips_mx(dm):
    server, inst = dm
    # a smarthost written [mx.dual.dns.test]: its own addresses, and no MX question at all
    assert hosts(ask1(inst, "mx.dual.dns.test", host_only=True)) == [("mx.dual.dns.test", 0,
                                                                      ["2001:db8::10", "192.0.2.10"])]
    assert hosts(ask1(inst, "mx.dual.dns.test", host_only=True, family=4)) == [("mx.dual.dns.test", 0,
                                                                                ["192.0.2.10"])]
    assert server.queries("mx.dual.dns.test", "MX") == []
    # a domain with MX records but no address of its own has none to give
    a = ask1(inst, "order.dns.test", host_only=True)
    assert a["result"] == "nohost" and "order.dns.test has no address record" in a["detail"], a


def test_dns_trace(dm):
    _, inst = dm
    inst.tool("trace", "resolverd", "dns")
    try:
        ask1(inst, "dual.dns.test")
        ask1(inst, "dual.dns.test")
        ask1(inst, "traced.dns.test")
        inst.wait_log(r"dns: cached MX dual\.dns\.test status=ok n=1")
        inst.wait_log(r"dns: query MX traced\.dns\.test")
        inst.wait_log(r"dns: answer MX traced\.dns\.test status=nxdomain n=0 ttl=300")
        inst.wait_log(r"dns: mx domain=traced\.dns\.test family=0 result=3 hosts=0")
    finally:
        inst.tool("trace", "resolverd", "none")


def test_trailing_dot_and_case(dm):
    _, inst = dm
    assert hosts(ask1(inst, "DUAL.Dns.Test.")) == [("mx.dual.dns.test", 5, ["2001:db8::10", "192.0.2.10"])]


def test_large_answer_over_tcp(dm):
    server, inst = dm
    a = ask1(inst, "big.dns.test")
    assert a["result"] == "ok", a
    got = hosts(a)
    assert [p for _, p, _ in got] == list(range(1, 33))
    assert got[0] == ("exchanger-01.big.dns.test", 1, ["192.0.2.101"])
    # asked over UDP, truncated, asked again over TCP
    assert len(server.queries("big.dns.test", "MX")) == 2, server.queries("big.dns.test")


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no ::1 on this machine")
def test_ipv6_nameserver(dm):
    server, _ = dm
    tmp = tempfile.mkdtemp(prefix="postern-dns6-")
    inst = _instance(tmp, server.port, {"resolverd": {"nameservers": f"[::1]:{server.port}"}})
    try:
        assert hosts(ask1(inst, "dual.dns.test")) == [("mx.dual.dns.test", 5, ["2001:db8::10", "192.0.2.10"])]
        assert re.search(r"dns: nameservers \[::1\]:%d " % server.port, inst.log())
    finally:
        inst.stop(check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def test_reload_changes_nameservers(dm, stub):
    server, _ = dm
    tmp = tempfile.mkdtemp(prefix="postern-dnsr-")
    inst = _instance(tmp, stub[0].port)
    try:
        # the scripted server knows nothing of dns.test (and its NXDOMAIN has no SOA: not cached)
        assert ask1(inst, "implicit.dns.test")["result"] == "nxdomain"
        # a lookup still waiting on the old server does not hold the reload up, and still gets its answer
        slow = subprocess.Popen([str(MXASK), "-c", str(inst.conf), "silent3.stub.test"], stdout=subprocess.PIPE,
                                text=True)
        try:
            time.sleep(0.3)
            inst.write_config({"resolverd": {"nameservers": f"127.0.0.1:{server.port}", "dns_timeout": "1s"}})
            inst.tool("reload")
            a = ask1(inst, "implicit.dns.test")
            assert hosts(a) == [("implicit.dns.test", 0, ["2001:db8::20", "192.0.2.20"])], a
        finally:
            out, _ = slow.communicate(timeout=30)
        assert json.loads(out)["result"] == "tempfail"
        inst.wait_log(r"dns: the lookups sent to the nameservers before the reload have ended")
    finally:
        inst.stop(check=False)
        shutil.rmtree(tmp, ignore_errors=True)


# ---- the scripted server ----

def test_servfail_is_temporary(stub):
    server, inst = stub
    a = ask1(inst, "servfail.stub.test")
    assert a["result"] == "tempfail" and a["hosts"] == []
    assert "SERVFAIL" in a["detail"] and f"127.0.0.1:{server.port}" in a["detail"], a
    # not cached: asked again, sent again
    n = server.count("servfail.stub.test", "MX")
    ask1(inst, "servfail.stub.test")
    assert server.count("servfail.stub.test", "MX") > n


def test_timeout_is_temporary(stub):
    server, inst = stub
    t = time.monotonic()
    a = ask1(inst, "silent.stub.test")
    took = time.monotonic() - t
    assert a["result"] == "tempfail", a
    assert "timeout" in a["detail"], a
    # dns_timeout = 1s, two tries (1s + 2s)
    assert 2.5 < took < 15, took
    assert server.count("silent.stub.test", "MX") == 2


def test_slow_dns_does_not_delay_other_answers(stub):
    server, inst = stub
    # the slow question first; the quick one must not wait for it
    r = subprocess.Popen([str(MXASK), "-c", str(inst.conf), "silent2.stub.test"], stdout=subprocess.PIPE,
                         text=True)
    try:
        time.sleep(0.3)
        t = time.monotonic()
        assert ask1(inst, "nullmx.stub.test")["result"] == "nullmx"
        assert time.monotonic() - t < 1.5
        assert r.poll() is None, "the slow question was answered already: it was not slow"
    finally:
        out, _ = r.communicate(timeout=30)
    assert json.loads(out)["result"] == "tempfail"


def test_answer_to_another_question_refused(stub):
    _, inst = stub
    a = ask1(inst, "otherq.stub.test")
    assert a["result"] == "tempfail", a
    assert a["hosts"] == []


def test_malformed_mx_targets_ignored(stub):
    _, inst = stub
    a = ask1(inst, "badmx.stub.test")
    assert hosts(a) == [("mx.good.stub.test", 10, ["192.0.2.50"])], a
    inst.wait_log(r"dns: MX badmx\.stub\.test: 2 records ignored: MX target is not a host name")


def test_null_mx(stub):
    _, inst = stub
    a = ask1(inst, "nullmx.stub.test")
    assert a["result"] == "nullmx" and a["hosts"] == []
    assert "accepts no mail" in a["detail"]


def test_records_of_another_owner_not_used(stub):
    server, inst = stub
    a = ask1(inst, "foreign.stub.test")
    # the MX for victim.stub.test is not taken: no MX, so the implicit MX, which has no address
    assert a["result"] == "nohost", a
    inst.wait_log(r"dns: MX foreign\.stub\.test: 1 record ignored: record for another name")


def test_cname_loop_is_temporary(stub):
    _, inst = stub
    a = ask1(inst, "loop.stub.test")
    assert a["result"] == "tempfail" and "CNAME chain too long" in a["detail"], a


def test_ttl_expiry(stub):
    server, inst = stub
    assert ask1(inst, "short.stub.test")["result"] == "ok"
    assert ask1(inst, "short.stub.test")["result"] == "ok"
    assert server.count("short.stub.test", "MX") == 1
    time.sleep(2.2)
    assert ask1(inst, "short.stub.test")["result"] == "ok"
    assert server.count("short.stub.test", "MX") == 2


def test_bad_nameservers_setting_refused(tmp_path):
    conf = tmp_path / "postern.conf"
    for bad in ["127.0.0.1:99999", "not-an-address", "[192.0.2.1]:53", "*:53"]:
        conf.write_text(f"[global]\nstate_dir = {tmp_path}/var\n[resolverd]\nnameservers = {bad}\n")
        r = subprocess.run([str(POSTERN), "-c", str(conf), "up"], capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        assert r.returncode != 0
        assert f"{conf}:4" in r.stderr and "nameservers" in r.stderr and "not a list of name servers" in r.stderr, \
            r.stderr
