"""
Certificates replaced on disk reach the running daemons on `postern reload`
(and SIGHUP to the supervisor) without dropping connections.

As root the daemons have dropped privileges and cannot open the root-only
key in state_dir/tls themselves: the supervisor opens the files and passes
them with CTL_RELOAD. As an ordinary user the same path runs. The harness
leaves tls_cert unset, so the instance serves the self-signed pair under
state_dir/tls; the tests overwrite that pair with a new one made by openssl.
"""
import hashlib
import os
import re
import signal
import smtplib
import ssl
import subprocess

import pytest

from harness import IS_ROOT, needs_root
from mailtest import client_tls_context, make_message


def tls_paths(inst):
    return inst.state / "tls" / "selfsigned.crt", inst.state / "tls" / "selfsigned.key"


def fingerprint_pem(pem):
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def replace_pair(inst, cn="mx.example.test"):
    """A new self-signed P-256 pair over the instance's files (key 0600, as the daemons made it); its fingerprint."""
    cert, key = tls_paths(inst)
    tmp_cert, tmp_key = cert.with_name("new.crt"), key.with_name("new.key")
    old_umask = os.umask(0o077)
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-subj", f"/CN={cn}", "-days", "1", "-keyout", str(tmp_key), "-out", str(tmp_cert)],
                       check=True, capture_output=True, timeout=30)
    finally:
        os.umask(old_umask)
    tmp_cert.chmod(0o644)
    os.replace(tmp_key, key)
    os.replace(tmp_cert, cert)
    return fingerprint_pem(cert.read_text())


def starttls_fingerprint(port):
    """The certificate a new SMTP session sees after STARTTLS."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=15) as s:
        s.ehlo()
        s.starttls(context=client_tls_context())
        return hashlib.sha256(s.sock.getpeercert(binary_form=True)).hexdigest()


def implicit_fingerprint(port):
    return fingerprint_pem(ssl.get_server_certificate(("127.0.0.1", port), timeout=15))


def served(inst):
    """Fingerprint each TLS listener serves to a new client: SMTP STARTTLS, submissions, POP3S, IMAPS."""
    p = inst.ports
    return {
        "smtp starttls": starttls_fingerprint(p["smtp"]),
        "submissions": implicit_fingerprint(p["submissions"]),
        "pop3s": implicit_fingerprint(p["pop3s"]),
        "imaps": implicit_fingerprint(p["imaps"]),
    }


def not_reloaded_lines(inst):
    return [ln for ln in inst.log().splitlines() if "certificate not reloaded" in ln or "reload refused" in ln]


def passed_reloads(inst):
    """Daemons that said they loaded the certificate from the files passed with the reload."""
    return re.findall(r"postern/(\w+)\[\d+\]: reloaded certificate=\S+ from the files passed", inst.log())


def check_reload(inst, trigger):
    """Replace the pair, trigger the reload; new sessions see the new certificate, one opened before delivers."""
    cert, key = tls_paths(inst)
    before = served(inst)
    old = fingerprint_pem(cert.read_text())
    assert set(before.values()) == {old}, before
    if IS_ROOT:
        st = os.stat(key)
        assert (st.st_uid, st.st_mode & 0o777) == (0, 0o600), "the key must be root's alone"
        assert (os.stat(key.parent).st_mode & 0o777) == 0o700
    n_passed = len(passed_reloads(inst))

    msg = make_message(subject="across a certificate reload")
    with smtplib.SMTP("127.0.0.1", inst.ports["smtp"], local_hostname="client.test", timeout=20) as s:
        s.ehlo()
        s.starttls(context=client_tls_context())
        s.ehlo()
        assert hashlib.sha256(s.sock.getpeercert(binary_form=True)).hexdigest() == old
        assert s.mail("sender@client.test")[0] == 250

        new = replace_pair(inst)
        assert new != old
        trigger()
        # `postern reload` answers once every daemon has; SIGHUP is not waited for.
        inst.wait_for(lambda: set(served(inst).values()) == {new}, timeout=10,
                      what=f"the new certificate on every TLS listener (serving: {served(inst)}, new: {new}, "
                           f"log: {not_reloaded_lines(inst)})")

        # The session opened before the reload goes on over its old TLS connection.
        assert s.rcpt("alice@example.test")[0] == 250
        code, text = s.data(msg.as_bytes())
        assert code == 250, text
    files = inst.wait_new(1)
    assert msg["Message-ID"].encode() in files[0].read_bytes()
    assert not not_reloaded_lines(inst), not_reloaded_lines(inst)
    # Every daemon once, imapd once per process (its master passes the files on to each worker).
    imapd_procs = len(inst.proc_tree("imapd"))
    inst.wait_for(lambda: sorted(passed_reloads(inst)[n_passed:]) == sorted(["imapd"] * imapd_procs + ["pop3d", "smtpd"]),
                  timeout=5, what=f"one reload from the files passed per process: {passed_reloads(inst)[n_passed:]}")


def test_postern_reload_serves_new_certificate(inst):
    def trigger():
        r = inst.tool("reload", check=False)
        assert r.returncode == 0 and "reloaded" in r.stdout, (r.returncode, r.stdout, r.stderr)
        assert r.stderr == "", r.stderr
    check_reload(inst, trigger)


def test_sighup_to_supervisor_serves_new_certificate(inst):
    check_reload(inst, lambda: inst.proc.send_signal(signal.SIGHUP))
    inst.wait_log(r"reload requested by=SIGHUP")
    assert inst.running()


def test_broken_key_keeps_current_certificate(inst):
    cert, key = tls_paths(inst)
    old = fingerprint_pem(cert.read_text())
    key.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    r = inst.tool("reload", check=False)
    # The rest of the config applies; the certificate stays, and each TLS daemon says why.
    assert r.returncode == 0, (r.stdout, r.stderr)
    inst.wait_for(lambda: {m for m in re.findall(r"postern/(\w+)\[\d+\]: warning: certificate not reloaded, the "
                                                  r"current one stays: cannot load the private key passed",
                                                  inst.log())}
                  >= {"smtpd", "pop3d", "imapd"}, what="each TLS daemon's warning about the key")
    after = served(inst)
    assert after == {k: old for k in after}, after


@needs_root
def test_sighup_to_smtpd_cannot_read_root_key(inst):
    """A daemon that dropped root, reloaded by a bare SIGHUP, keeps its certificate and says what to do."""
    cert, _ = tls_paths(inst)
    old = fingerprint_pem(cert.read_text())
    new = replace_pair(inst)
    os.kill(inst.pids()["smtpd"], signal.SIGHUP)
    line = inst.wait_log(r"postern/smtpd\[\d+\]: warning: certificate not reloaded, the current one stays: .*\n",
                         what="smtpd's warning").group(0)
    assert "Permission denied" in line and "postern reload" in line, line
    assert starttls_fingerprint(inst.ports["smtp"]) == old
    inst.wait_log(r"postern/smtpd\[\d+\]: reloaded config \(SIGHUP\)")
    # `postern reload` (as root) passes the files, and the new one serves.
    inst.tool("reload")
    inst.wait_for(lambda: starttls_fingerprint(inst.ports["smtp"]) == new, timeout=10,
                  what="the new certificate after postern reload")
