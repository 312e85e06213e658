"""
harness.py - a whole Postern instance in a temporary directory, for the integration tests.

An Instance writes a config file (hostname mx.example.test, state_dir ./var,
every listener on 127.0.0.1 and a free port, plaintext AUTH on loopback, DNS
pointed at the stub server of dnsstub.py) and runs `postern -c CONF up` with
stdout and stderr into postern.log beside it. It gives tests what a user
sees: the tool's output and exit status, the log, the recipient's Maildir
files and index rows, the ports. conftest.py makes instances into fixtures.

Build directory: $POSTERN_BUILD, default <repo>/build.
"""
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[2]


def _build_dir():
    p = Path(os.environ.get("POSTERN_BUILD", "build"))
    return p if p.is_absolute() else REPO / p


BUILD = _build_dir()
POSTERN = BUILD / "postern" / "postern"
IS_ROOT = os.geteuid() == 0
DOMAIN = "example.test"
HOSTNAME = "mx.example.test"
PASSWORDS = {
    "alice@example.test": "alice-pass-1234",
    "bob@example.test": "bob-pass-5678",
}
# Lines a sanitizer writes when it finds something.
SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer)|runtime error:")
QID_RE = r"[0-9A-F]{16}"

needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root")


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (held open together while choosing)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_for(cond, timeout=15.0, what="condition", interval=0.05):
    """Poll cond() until it returns something true; return that, or fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Instance:
    """One Postern instance in its own directory."""

    PORT_NAMES = ("smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps")

    def __init__(self, base, dns_port, extra=None, state_dir=None):
        self.dir = Path(base)
        self.conf = self.dir / "postern.conf"
        self.log_path = self.dir / "postern.log"
        self.state = Path(state_dir) if state_dir else self.dir / "var"
        self.ports = dict(zip(self.PORT_NAMES, free_ports(len(self.PORT_NAMES))))
        self.dns_port = dns_port
        self.proc = None
        self.exit_status = None
        self.write_config(extra or {})

    # -- config --------------------------------------------------------
    def config_sections(self, extra):
        p = self.ports
        sections = {
            "global": {
                "hostname": HOSTNAME,
                "state_dir": str(self.state) if self.state != self.dir / "var" else "./var",
                "log_level": "info",
            },
            "smtpd": {
                "listen": f"127.0.0.1:{p['smtp']}",
                "submission": f"127.0.0.1:{p['submission']}",
                "submissions": f"127.0.0.1:{p['submissions']}",
                "allow_plaintext_auth": "loopback",
            },
            "queued": {},
            "resolverd": {"nameservers": f"127.0.0.1:{self.dns_port}"},
            "pop3d": {
                "listen": f"127.0.0.1:{p['pop3']}",
                "listen_tls": f"127.0.0.1:{p['pop3s']}",
                "allow_plaintext_auth": "loopback",
            },
            "imapd": {
                "listen": f"127.0.0.1:{p['imap']}",
                "listen_tls": f"127.0.0.1:{p['imaps']}",
                "allow_plaintext_auth": "loopback",
            },
        }
        for sec, kv in extra.items():
            sections.setdefault(sec, {}).update({k: str(v) for k, v in kv.items()})
        return sections

    def write_config(self, extra):
        lines = ["; written by tests/integration/conftest.py"]
        for sec, kv in self.config_sections(extra).items():
            lines.append(f"[{sec}]")
            lines += [f"{k} = {v}" for k, v in kv.items()]
            lines.append("")
        self.conf.write_text("\n".join(lines))
        self.conf.chmod(0o644)

    # -- processes -----------------------------------------------------
    def start(self, wait=15):
        """Run `postern -c CONF up` with output to the log; wait until every daemon answers."""
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(POSTERN), "-c", str(self.conf), "up"],
            cwd=self.dir, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
            start_new_session=True)
        logf.close()
        self.exit_status = None
        if wait:
            r = self.tool("status", "--wait", str(wait), check=False, timeout=wait + 15)
            if r.returncode != 0:
                pytest.fail(f"instance did not come up (status --wait {wait}: exit {r.returncode})\n"
                            f"{r.stdout}{r.stderr}\n--- log ---\n{self.log()[-6000:]}")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGINT, timeout=30, check=True):
        """Stop the supervisor with sig; it must exit 0 and leave no process of its group behind."""
        if self.proc is None:
            return self.exit_status
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_group()
                self.proc.wait(10)
                self.proc = None
                pytest.fail(f"postern up did not exit within {timeout}s of signal {sig}")
        self.exit_status = self.proc.returncode
        pgid = self.proc.pid
        self.proc = None
        left = wait_for_nothing_left(pgid)
        if left:
            self._kill_pgid(pgid)
        if check:
            assert self.exit_status == 0, f"postern up exited {self.exit_status}\n{self.log()[-3000:]}"
            assert not left, f"processes left running after postern up exited: {left}"
        return self.exit_status

    def _kill_group(self):
        if self.proc is not None:
            self._kill_pgid(self.proc.pid)

    @staticmethod
    def _kill_pgid(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def tool(self, *args, input=None, check=True, timeout=60, json_out=False):
        """Run `postern -c CONF [--json] ARGS...`; returns the CompletedProcess (text)."""
        opts = ["-c", str(self.conf)] + (["--json"] if json_out else [])
        r = subprocess.run([str(POSTERN), *opts, *args], cwd=self.dir, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            pytest.fail(f"postern {' '.join(args)}: exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    def json(self, *args):
        """`postern -c CONF --json ARGS...`, parsed."""
        r = self.tool(*args, json_out=True)
        try:
            return json.loads(r.stdout)
        except ValueError:
            pytest.fail(f"postern --json {' '.join(args)}: not JSON: {r.stdout!r}")

    def status(self):
        """`postern --json status`, as a dict name -> row."""
        return {row["name"]: row for row in self.json("status")}

    def pids(self):
        return {name: row.get("pid") for name, row in self.status().items()}

    def proc_tree(self, name):
        """The pids of a daemon: the one `postern status` shows and its children (imapd's workers)."""
        pids, todo = [], [self.pids()[name]]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            try:
                todo += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
            except (FileNotFoundError, ProcessLookupError):
                pass
        return pids

    def add_user(self, address, password):
        self.tool("user", "add", address, "--password-stdin", input=password + "\n")

    # -- what the user sees --------------------------------------------
    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, cond, timeout=15.0, what="condition"):
        return wait_for(cond, timeout, what)

    def wait_log(self, pattern, timeout=15.0, what=None):
        """Wait for a log line matching the regex; returns the match."""
        rx = re.compile(pattern, re.M)
        return wait_for(lambda: rx.search(self.log()), timeout, what or f"log line /{pattern}/")

    def maildir(self, user="alice", domain=DOMAIN):
        return self.state / "mail" / domain / user

    def new_files(self, user="alice", domain=DOMAIN):
        """Files in the user's Maildir new/ (sorted by name: arrival order)."""
        d = self.maildir(user, domain) / "new"
        try:
            return sorted((p for p in d.iterdir() if p.is_file()), key=lambda p: p.name)
        except FileNotFoundError:
            return []

    def wait_new(self, n, user="alice", timeout=20.0):
        """Wait until the user's new/ holds at least n files; returns them."""
        return wait_for(lambda: (lambda f: f if len(f) >= n else None)(self.new_files(user)), timeout,
                        f"{n} message(s) in {user}'s new/ (have {len(self.new_files(user))})")

    def index_rows(self, user="alice", domain=DOMAIN):
        """The user's messages as her index.sqlite lists them: dicts with mailbox, uid, file, size, ...

        Reads a copy (database and WAL) so the test never creates files
        in the mail store with its own owner.
        """
        src = self.maildir(user, domain) / "index.sqlite"
        if not src.exists():
            return []
        with tempfile.TemporaryDirectory() as tmp:
            for suffix in ("", "-wal"):
                try:
                    shutil.copyfile(str(src) + suffix, os.path.join(tmp, "index.sqlite" + suffix))
                except FileNotFoundError:
                    pass
            db = sqlite3.connect(os.path.join(tmp, "index.sqlite"))
            db.row_factory = sqlite3.Row
            try:
                return [dict(r) for r in db.execute(
                    "SELECT mailboxes.name AS mailbox, messages.* FROM messages"
                    " JOIN mailboxes ON mailboxes.id = messages.mailbox ORDER BY messages.uid")]
            except sqlite3.DatabaseError:
                return []
            finally:
                db.close()

    def sanitizer_reports(self):
        return [ln for ln in self.log().splitlines() if SANITIZER_RE.search(ln)]


def wait_for_nothing_left(pgid, timeout=10.0):
    """Processes still in process group pgid after timeout seconds (normally none)."""
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            try:
                fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
                comm = (p / "comm").read_text().strip()
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                left.append(f"{p.name}({comm})")
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


