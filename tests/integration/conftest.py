"""
conftest.py - the integration harness: a whole Postern instance per test.

Each test that asks for `inst` gets a fresh temporary directory holding a
config file (hostname mx.example.test, state_dir ./var, every listener on
127.0.0.1 and a free port, plaintext AUTH on loopback, DNS pointed at a
local stub server) and a running `postern -c CONF up`, whose stdout and
stderr go to postern.log in that directory. Before the test runs, the
instance answers `postern status --wait 15`, the domain example.test exists
and alice@example.test and bob@example.test have known passwords.

Extra config keys for one test: @pytest.mark.postern_config({"smtpd":
{"max_recipients": "3"}}). Tests that need more than one instance, or one
started differently, use the `make_instance` factory.

At teardown the instance is stopped (SIGINT; it must exit 0 and leave no
process behind), its log is scanned for sanitizer reports (a report fails
the test that produced it), and the directory is removed unless the test
failed, in which case its path is printed.

The instance itself is harness.Instance; build directory: $POSTERN_BUILD, default <repo>/build.
"""
import os
import shutil
import sys
import tempfile

import pytest

from dnsstub import DnsStub
from harness import DOMAIN, PASSWORDS, POSTERN, Instance


def pytest_configure(config):
    config.addinivalue_line("markers", "postern_config(dict): extra config keys {section: {key: value}}")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(scope="session")
def dns():
    """A stub DNS server on 127.0.0.1 (UDP and TCP): NXDOMAIN unless a test adds records."""
    if not POSTERN.exists():
        pytest.fail(f"{POSTERN} not found: build first (meson setup build && ninja -C build), "
                    f"or set POSTERN_BUILD")
    stub = DnsStub()
    stub.start()
    yield stub
    stub.stop()


class _Factory:
    def __init__(self, request, dns_stub):
        self.request = request
        self.dns = dns_stub
        self.instances = []
        self.dirs = []

    def __call__(self, extra=None, start=True, setup_users=True, state_dir=None):
        base = tempfile.mkdtemp(prefix="postern-it-")
        os.chmod(base, 0o755)   # daemons that dropped privileges must reach their state and config
        self.dirs.append(base)
        inst = Instance(base, self.dns.port, extra, state_dir)
        self.instances.append(inst)
        if start:
            inst.start()
            if setup_users:
                inst.tool("domain", "add", DOMAIN)
                for addr, pw in PASSWORDS.items():
                    inst.add_user(addr, pw)
        return inst

    def finish(self):
        problems = []
        for inst in self.instances:
            try:
                if inst.running():
                    inst.stop(check=False)
                    if inst.exit_status != 0:
                        problems.append(f"postern up exited {inst.exit_status} at teardown")
            except BaseException as e:     # pytest.fail inside stop
                problems.append(f"stopping the instance: {e}")
            reports = inst.sanitizer_reports()
            if reports:
                problems.append("sanitizer reports in the log:\n" + "\n".join(reports[:20]))
        item = self.request.node
        failed = problems or any(getattr(item, "rep_" + w, None) is not None and getattr(item, "rep_" + w).failed
                                 for w in ("setup", "call"))
        for d in self.dirs:
            if failed:
                # Past pytest's capture, so the path is seen even when only the call phase failed.
                print(f"\n[postern] {item.nodeid}: kept instance directory {d} (log: {d}/postern.log)",
                      file=sys.__stderr__)
            else:
                shutil.rmtree(d, ignore_errors=True)
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def make_instance(request, dns):
    """Factory: make_instance(extra={...}, start=True, setup_users=True, state_dir=None) -> Instance."""
    f = _Factory(request, dns)
    yield f
    f.finish()


@pytest.fixture
def inst(request, make_instance):
    """A running instance with example.test, alice and bob; config extras from @pytest.mark.postern_config."""
    extra = {}
    for m in reversed(list(request.node.iter_markers("postern_config"))):
        for sec, kv in (m.args[0] if m.args else m.kwargs).items():
            extra.setdefault(sec, {}).update(kv)
    return make_instance(extra)
