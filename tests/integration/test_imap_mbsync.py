"""
test_imap_mbsync.py - a real sync tool against imapd: mbsync (isync)
copies a mailbox filled over SMTP into a local Maildir over implicit TLS,
then a change on each side (a flag and a new folder with a message
locally, a new delivery on the server) travels the other way at the
second sync, as a user's laptop would see it.
"""
import os
import shutil
import subprocess

import pytest

from harness import PASSWORDS
from test_imap import ALICE, deliver, login

MBSYNC = shutil.which("mbsync")


def rc(inst, local):
    cert = inst.state / "tls" / "selfsigned.crt"
    return f"""
IMAPAccount postern
Host 127.0.0.1
Port {inst.ports['imaps']}
User {ALICE}
Pass {PASSWORDS[ALICE]}
TLSType IMAPS
CertificateFile {cert}

IMAPStore remote
Account postern

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
"""


def mbsync_setup(inst, tmp_path):
    """An empty local Maildir and an mbsyncrc for it (isync 1.4 spells TLSType SSLType): (local, conf)."""
    local = tmp_path / "mail"
    local.mkdir()
    conf = tmp_path / "mbsyncrc"
    text = rc(inst, local)
    if b"1.4" in subprocess.run([MBSYNC, "--version"], capture_output=True).stdout:
        text = text.replace("TLSType IMAPS", "SSLType IMAPS")
    conf.write_text(text)
    return local, conf


def run_mbsync(conf):
    p = subprocess.run([MBSYNC, "-c", conf, "-a"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


@pytest.mark.skipif(MBSYNC is None, reason="mbsync (Debian package isync) is not installed")
def test_mbsync_two_way(inst, tmp_path):
    sent = deliver(inst, 3)
    local, conf = mbsync_setup(inst, tmp_path)
    run_mbsync(conf)
    inbox = [p for d in ("new", "cur") for p in (local / "INBOX" / d).iterdir()]
    assert len(inbox) == 3
    got = [p.read_bytes() for p in inbox]
    for raw in sent:
        # mbsync adds its own X-TUID header line; everything else arrives as sent.
        msgid = [ln for ln in raw.split(b"\r\n") if ln.startswith(b"Message-ID:")][0]
        body = raw.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n")
        assert any(msgid in g and g.endswith(b"\n\n" + body) for g in got), msgid
    assert (local / "Sent").is_dir() and (local / "Trash").is_dir()

    # Local changes: one message seen, a new folder with a message in it.
    first = inbox[0]
    cur = local / "INBOX" / "cur"
    base = first.name.split(":2,")[0]
    first.rename(cur / (base + ":2,S"))
    (local / "Projects" / "cur").mkdir(parents=True)
    (local / "Projects" / "new").mkdir()
    (local / "Projects" / "tmp").mkdir()
    (local / "Projects" / "new" / "1700000000.local.test").write_bytes(
        b"From: me@example.test\nSubject: local note\n\nwritten offline\n")
    # Server change: a new delivery.
    deliver(inst, 1, subject="later")
    run_mbsync(conf)

    c = login(inst)
    typ, data = c.status("Projects", "(MESSAGES)")
    assert typ == "OK" and b"MESSAGES 1" in data[0]
    c.select("Projects")
    typ, data = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert data[0][1] == b"Subject: local note\r\n\r\n"
    c.select("INBOX")
    typ, data = c.search(None, "SEEN")
    assert len(data[0].split()) == 1
    c.logout()
    inbox = [p for d in ("new", "cur") for p in (local / "INBOX" / d).iterdir()]
    assert len(inbox) == 4
    assert any(b"Subject: later 0" in p.read_bytes() for p in inbox)
