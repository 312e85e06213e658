"""
Submission and AUTH: what a mail client sees on ports 587 and 465.
"""
import base64
import re
import smtplib
import time

import pytest

from harness import PASSWORDS
from mailtest import RawSMTP, client_tls_context, make_message, qid_of

ALICE = "alice@example.test"
ALICE_PW = PASSWORDS[ALICE]


def b64(s):
    return base64.b64encode(s.encode()).decode()


def plain(user, pw):
    return b64(f"\0{user}\0{pw}")


def test_submission_mail_without_auth_530(inst):
    with RawSMTP(inst.ports["submission"]) as c:
        c.greeting()
        c.ehlo()
        code, lines = c.cmd(f"MAIL FROM:<{ALICE}>")
        assert code == 530 and lines[-1].startswith("530 5.7.0"), lines


def test_auth_plain_succeeds(inst):
    with RawSMTP(inst.ports["submission"]) as c:
        c.greeting()
        caps = c.ehlo()
        assert any(re.match(r"AUTH\b.*\bPLAIN\b", cap) for cap in caps), caps
        code, lines = c.cmd(f"AUTH PLAIN {plain(ALICE, ALICE_PW)}")
        assert code == 235 and lines[-1].startswith("235 2.7.0"), lines
        assert c.cmd(f"MAIL FROM:<{ALICE}>")[0] == 250


def test_auth_login_succeeds(inst):
    with RawSMTP(inst.ports["submission"]) as c:
        c.greeting()
        caps = c.ehlo()
        assert any(re.match(r"AUTH\b.*\bLOGIN\b", cap) for cap in caps), caps
        code, lines = c.cmd("AUTH LOGIN")
        assert code == 334, lines
        assert base64.b64decode(lines[0][4:]).lower().startswith(b"username"), lines
        code, lines = c.cmd(b64(ALICE))
        assert code == 334, lines
        code, lines = c.cmd(b64(ALICE_PW))
        assert code == 235, lines


def test_auth_smtplib_login(inst):
    with smtplib.SMTP("127.0.0.1", inst.ports["submission"], timeout=15) as s:
        s.ehlo("client.test")
        code, _ = s.login(ALICE, ALICE_PW)
        assert code == 235


def test_wrong_password_535_same_as_unknown_user(inst):
    with RawSMTP(inst.ports["submission"]) as c:
        c.greeting()
        c.ehlo()
        code, wrong = c.cmd(f"AUTH PLAIN {plain(ALICE, 'not-the-password')}")
        assert code == 535 and wrong[-1].startswith("535 5.7.8"), wrong
        code, unknown = c.cmd(f"AUTH PLAIN {plain('nobody@example.test', 'whatever')}")
        assert code == 535, unknown
        assert unknown == wrong, "unknown user and wrong password must read the same"
        # Still not authenticated.
        assert c.cmd(f"MAIL FROM:<{ALICE}>")[0] == 530


def test_starttls_then_auth_and_send(inst):
    msg = make_message(to="bob@example.test", sender=ALICE)
    with smtplib.SMTP("127.0.0.1", inst.ports["submission"], local_hostname="client.test", timeout=15) as s:
        s.ehlo()
        assert s.has_extn("starttls")
        s.starttls(context=client_tls_context())
        s.ehlo()
        s.login(ALICE, ALICE_PW)
        s.mail(ALICE)
        assert s.rcpt("bob@example.test")[0] == 250
        code, text = s.data(msg.as_bytes())
    assert code == 250
    qid_of(text)
    files = inst.wait_new(1, "bob")
    assert msg["Message-ID"].encode() in files[0].read_bytes()


def test_implicit_tls_submissions(inst):
    msg = make_message(to="bob@example.test", sender=ALICE)
    with smtplib.SMTP_SSL("127.0.0.1", inst.ports["submissions"], local_hostname="client.test", timeout=15,
                          context=client_tls_context()) as s:
        s.ehlo()
        s.login(ALICE, ALICE_PW)
        s.mail(ALICE)
        assert s.rcpt("bob@example.test")[0] == 250
        code, text = s.data(msg.as_bytes())
    assert code == 250, text
    files = inst.wait_new(1, "bob")
    assert msg["Message-ID"].encode() in files[0].read_bytes()


@pytest.mark.postern_config({"smtpd": {"allow_plaintext_auth": "no"}})
def test_no_plaintext_auth_538_and_not_advertised(inst):
    with RawSMTP(inst.ports["submission"]) as c:
        c.greeting()
        caps = c.ehlo()
        assert not any(cap.upper().startswith("AUTH") for cap in caps), caps
        assert "STARTTLS" in [cap.upper() for cap in caps], caps
        code, lines = c.cmd(f"AUTH PLAIN {plain(ALICE, ALICE_PW)}")
        assert code == 538, lines
        # After STARTTLS, AUTH is offered and works.
        assert c.cmd("STARTTLS")[0] == 220
        c.starttls()
        caps = c.ehlo()
        assert any(cap.upper().startswith("AUTH") for cap in caps), caps
        assert c.cmd(f"AUTH PLAIN {plain(ALICE, ALICE_PW)}")[0] == 235


@pytest.mark.postern_config({"resolverd": {"auth_delay_after": "2", "auth_block_after": "4",
                                           "auth_block_time": "5m"}})
def test_repeated_failures_slowed_then_blocked(inst):
    timings = []
    with RawSMTP(inst.ports["submission"], timeout=60) as c:
        c.greeting()
        c.ehlo()
        for i in range(4):
            t0 = time.monotonic()
            code, lines = c.cmd(f"AUTH PLAIN {plain(ALICE, f'wrong-{i}')}")
            timings.append(time.monotonic() - t0)
            assert code == 535, (i, lines)
    # The answers after auth_delay_after failures come slower than the first ones.
    assert max(timings[2:]) > min(timings[:2]) + 0.4, f"answers were not slowed: {timings}"
    # Past auth_block_after: refused, even with the right password, on a new connection.
    with RawSMTP(inst.ports["submission"], timeout=60) as c:
        c.greeting()
        c.ehlo()
        code, lines = c.cmd(f"AUTH PLAIN {plain(ALICE, ALICE_PW)}")
        assert code == 454, lines
        assert c.cmd(f"MAIL FROM:<{ALICE}>")[0] == 530
    log = inst.log()
    failures = [ln for ln in log.splitlines() if re.search(r"auth", ln, re.I) and "alice@example.test" in ln
                and re.search(r"fail|denied|bad|wrong|block", ln, re.I)]
    assert len(failures) >= 4, "the log does not show the failed logins:\n" + "\n".join(failures)
