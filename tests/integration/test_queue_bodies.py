"""
Queue body files as queued makes and recycles them (queued/spool.c, queued/submit.c).

queued makes body files ahead, empty and under their queue ids straight in
queue/active/ (one fsync of the directory for a handful), and hands the
oldest to a session at MAIL; a delivered body is kept as an empty spare in
queue/incoming/ and a later fill takes it again, so the file system does
not free and allocate an inode per message. A body made ahead that no
message took is nothing to keep: after a kill -9 the start-up check removes
it as unfinished, not as a lost body, and every message that got 250 is
still delivered.
"""
import os
import signal
import smtplib

from mailtest import make_message, qid_of, send_mail


def empty_bodies(inst):
    active = inst.state / "queue" / "active"
    try:
        return sorted(p.name for p in active.iterdir() if p.stat().st_size == 0)
    except FileNotFoundError:
        return []


def inodes(inst):
    out = {}
    for sub in ("incoming", "active"):
        for p in (inst.state / "queue" / sub).iterdir():
            try:
                out[p.stat().st_ino] = f"{sub}/{p.name}"
            except FileNotFoundError:
                pass
    return out


def send_many(inst, n, prefix):
    ids = []
    with smtplib.SMTP("127.0.0.1", inst.ports["smtp"], local_hostname="client.test", timeout=30) as s:
        for i in range(n):
            msg = make_message(subject=f"{prefix} {i}")
            refused = s.sendmail("sender@client.test", ["alice@example.test"], msg.as_bytes())
            assert not refused, refused
            ids.append(msg["Message-ID"])
    return ids


def test_bodies_are_made_ahead_and_the_oldest_is_taken(inst):
    active = inst.state / "queue" / "active"
    ready = inst.wait_for(lambda: empty_bodies(inst) or None, what="bodies made ahead in queue/active")
    for name in ready:
        st = (active / name).stat()
        assert st.st_size == 0 and oct(st.st_mode & 0o777) == "0o600", (name, st)
    code, text = send_mail(inst.ports["smtp"], msg=make_message(subject="made ahead"))
    assert code == 250, text
    # The body file existed before MAIL: the message went into the oldest one made ahead.
    assert qid_of(text) == ready[0], (qid_of(text), ready[:3])
    inst.wait_new(1)


def test_body_files_are_recycled_not_freed(inst):
    """A delivered body becomes an empty spare; the next fill takes spares before it makes files.

    The same inodes going round (made ahead -> body -> spare -> made ahead
    again) is what spares the file system an inode free and an allocation
    per message; a spare that is not empty is never handed out.
    """
    incoming = inst.state / "queue" / "incoming"

    def spares():
        return {p.name: p.stat() for p in incoming.iterdir() if p.name.startswith("spare.")}

    code, text = send_mail(inst.ports["smtp"], msg=make_message(subject="first"))
    assert code == 250, text
    inst.wait_new(1)
    first = inst.wait_for(spares, what="a spare body file in queue/incoming")
    assert len(first) == 1, first
    (name, st), = first.items()
    assert st.st_size == 0 and oct(st.st_mode & 0o777) == "0o600", st
    # A spare with content (tampered with) must never be given to smtpd.
    (incoming / name).write_bytes(b"stale data of another message\n")
    before = inodes(inst)

    n = 60
    send_many(inst, n, "wave")
    files = inst.wait_new(1 + n, timeout=60)
    inst.wait_for(lambda: len(empty_bodies(inst)) == len(list((inst.state / "queue" / "active").iterdir())),
                  what="every delivered body out of queue/active")
    after = inodes(inst)
    # Nothing freed: every body file of before is still there (as a spare or made ahead)
    # except the tampered spare, which was removed rather than handed out.
    lost = {i: p for i, p in before.items() if i not in after and i != st.st_ino}
    assert not lost, lost
    # (its inode number may come back for a new file: the file system is free to reuse it)
    assert not (incoming / name).exists() or (incoming / name).stat().st_size == 0
    # ... and reused: 61 messages did not need 61 new files on top of the ones made ahead.
    assert len(after) < len(before) + n, (len(before), len(after))
    assert not any(b"stale data" in f.read_bytes() for f in files)


def test_kill_queued_removes_unused_bodies_and_loses_nothing(inst):
    ready = inst.wait_for(lambda: empty_bodies(inst) or None, what="bodies made ahead in queue/active")
    msg = make_message(subject="before the kill")
    code, text = send_mail(inst.ports["smtp"], msg=msg)
    assert code == 250, text
    qid = qid_of(text)
    old = inst.pids()["queued"]
    os.kill(old, signal.SIGKILL)
    inst.wait_for(lambda: inst.tool("status", "--wait", "5", check=False).returncode == 0, timeout=30,
                  what="all daemons answering again")
    assert inst.pids()["queued"] not in (None, 0, old)
    # The bodies nobody took are counted as unfinished, none as a body without its envelope.
    inst.wait_log(r"queue checked: .*unfinished_removed=[1-9]\d* orphans_removed=0", timeout=30)
    files = inst.wait_new(1, timeout=30)
    assert any(msg["Message-ID"].encode() in f.read_bytes() for f in files)
    left = set(p.name for p in (inst.state / "queue" / "active").iterdir())
    assert not (set(ready) - {qid}) & left, sorted((set(ready) - {qid}) & left)[:3]
    # and the new queued makes new ones
    inst.wait_for(lambda: set(empty_bodies(inst)) - set(ready), what="bodies made ahead again")
