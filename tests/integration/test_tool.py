"""
The postern command-line tool: directory commands, status, config errors,
and the documented example configuration.
"""
import re
import shutil
import subprocess

from harness import POSTERN, REPO
from mailtest import send_mail


def test_domain_add_list_del(inst):
    inst.tool("domain", "add", "second.test")
    out = inst.tool("domain", "list").stdout
    assert "example.test" in out and "second.test" in out
    names = [d["name"] for d in inst.json("domain", "list")]
    assert names == sorted(names) and {"example.test", "second.test"} <= set(names)
    inst.tool("domain", "del", "second.test")
    names = [d["name"] for d in inst.json("domain", "list")]
    assert "second.test" not in names


def test_user_add_list_del(inst):
    inst.add_user("carol@example.test", "carol-pass")
    users = inst.json("user", "list")
    addrs = [u["address"] for u in users]
    assert {"alice@example.test", "bob@example.test", "carol@example.test"} <= set(addrs)
    assert "carol@example.test" in inst.tool("user", "list").stdout
    # No password hash is ever shown.
    assert "$" not in inst.tool("user", "list", json_out=True).stdout
    inst.tool("user", "del", "carol@example.test")
    addrs = [u["address"] for u in inst.json("user", "list")]
    assert "carol@example.test" not in addrs


def test_alias_add_list_del(inst):
    inst.tool("alias", "add", "info@example.test", "bob@example.test")
    aliases = inst.json("alias", "list")
    assert any(a["source"] == "info@example.test" and a["target"] == "bob@example.test" for a in aliases), aliases
    assert "info@example.test" in inst.tool("alias", "list").stdout
    inst.tool("alias", "del", "info@example.test", "bob@example.test")
    aliases = inst.json("alias", "list")
    assert not any(a["source"] == "info@example.test" for a in aliases), aliases


def test_duplicate_add_fails_exit_1(inst):
    r = inst.tool("domain", "add", "example.test", check=False)
    assert r.returncode == 1 and r.stderr.strip(), (r.returncode, r.stderr)
    r = inst.tool("user", "add", "alice@example.test", "--password-stdin", input="x\n", check=False)
    assert r.returncode == 1 and "alice@example.test" in r.stderr, (r.returncode, r.stderr)


def test_usage_error_exit_2(inst):
    for args in (["domain"], ["domain", "frobnicate"], ["no-such-command"], ["user", "add"]):
        r = inst.tool(*args, check=False)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert r.stderr.strip(), args


def test_user_in_unknown_domain_fails_clearly(inst):
    r = inst.tool("user", "add", "dave@unknown.test", "--password-stdin", input="pw\n", check=False)
    assert r.returncode == 1
    assert "unknown.test" in r.stderr and re.search(r"domain", r.stderr, re.I), r.stderr


def test_unknown_config_key_refused(make_instance):
    inst = make_instance(start=False)
    lines = inst.conf.read_text().splitlines()
    at = lines.index("[smtpd]") + 1
    lines.insert(at, "no_such_key = 1")
    inst.conf.write_text("\n".join(lines) + "\n")
    r = inst.tool("up", check=False, timeout=30)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert f"{inst.conf.name}:{at + 1}:" in r.stderr and "no_such_key" in r.stderr, r.stderr


def test_status_table_and_json(inst):
    out = inst.tool("status").stdout
    header, *rows = [ln for ln in out.splitlines() if ln.strip()]
    for col in ("NAME", "PID", "UPTIME", "CONNECTIONS", "STATE"):
        assert col in header, header
    for name in ("resolverd", "queued", "smtpd", "pop3d", "imapd"):
        assert any(r.split()[0] == name for r in rows), (name, out)
    st = inst.status()
    assert set(st) == {"resolverd", "queued", "smtpd", "pop3d", "imapd"}, st
    for name, row in st.items():
        assert isinstance(row["pid"], int) and row["pid"] > 0, row
        assert isinstance(row["uptime_seconds"], int) and row["uptime_seconds"] >= 0, row
        assert isinstance(row["connections"], int), row
        assert isinstance(row["state"], str) and row["state"], row


def test_status_wait_on_stopped_instance_exit_1(inst):
    inst.stop()
    r = inst.tool("status", "--wait", "1", check=False, timeout=30)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)


def test_status_of_never_started_instance_exit_1(make_instance):
    inst = make_instance(start=False)
    r = inst.tool("status", check=False, timeout=30)
    assert r.returncode == 1 and r.stderr.strip(), (r.returncode, r.stderr)


def test_example_config_loads():
    """etc/postern.conf as shipped: the loader accepts it (status fails only because nothing runs)."""
    conf = REPO / "etc" / "postern.conf"
    r = subprocess.run([str(POSTERN), "-c", str(conf), "status"], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert not re.search(r"postern\.conf:\d+:", r.stderr), r.stderr
    assert r.returncode in (0, 1), (r.returncode, r.stderr)


def test_example_config_runs(make_instance):
    """etc/postern.conf with only paths and ports changed starts an instance that accepts mail."""
    inst = make_instance(start=False)
    mine = {}
    section = None
    for line in inst.conf.read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line and not line.startswith(";"):
            k, v = (x.strip() for x in line.split("=", 1))
            mine[(section, k)] = v
    out = []
    section = None
    for line in (REPO / "etc" / "postern.conf").read_text().splitlines():
        s = line.strip()
        if s.startswith("["):
            section = s.strip("[]")
        elif s and s[0] not in ";#" and "=" in s:
            k = s.split("=", 1)[0].strip()
            if (section, k) in mine:
                line = f"{k} = {mine[(section, k)]}"
            elif k in ("run_dir", "tls_cert", "tls_key") and section == "global":
                line = f"{k} ="
        out.append(line)
    inst.conf.write_text("\n".join(out) + "\n")
    shutil.copy(inst.conf, inst.dir / "example-as-used.conf")
    inst.start()
    inst.tool("domain", "add", "example.test")
    inst.add_user("alice@example.test", "pw-alice-1")
    code, text = send_mail(inst.ports["smtp"])
    assert code == 250, text
    inst.wait_new(1, "alice")


def test_example_config_documents_every_key():
    """Every key of config.c's table is in etc/postern.conf, in its section, and nothing else is."""
    table = re.findall(r'\{ "(\w+)", "(\w+)", K_\w+, F\([\w.]+\), "([^"]*)" \}',
                       (REPO / "libmailcore" / "util" / "config.c").read_text())
    assert len(table) > 30
    documented = set()
    section = None
    for line in (REPO / "etc" / "postern.conf").read_text().splitlines():
        s = line.strip()
        if s.startswith("["):
            section = s.strip("[]")
        elif s and s[0] not in ";#":
            documented.add((section, s.split("=", 1)[0].strip()))
    keys = {(sec, key) for sec, key, _ in table}
    assert keys - documented == set(), "keys missing from etc/postern.conf"
    assert documented - keys == set(), "etc/postern.conf has keys the loader does not know"
