"""
IMAP, as it stands: the server listens and greets with a temporary error
until its issue is done (then these tests are replaced by real mailbox
access tests). Moved unchanged from test_pop_imap.py when POP3 got its
own tests (test_pop3.py).
"""
import imaplib

import pytest

from mailtest import client_tls_context


def test_imap_unavailable(inst):
    with pytest.raises((imaplib.IMAP4.error, imaplib.IMAP4.abort)) as e:
        imaplib.IMAP4("127.0.0.1", inst.ports["imap"], timeout=10)
    assert "UNAVAILABLE" in str(e.value)


def test_imaps_unavailable(inst):
    with pytest.raises((imaplib.IMAP4.error, imaplib.IMAP4.abort)) as e:
        imaplib.IMAP4_SSL("127.0.0.1", inst.ports["imaps"], timeout=10, ssl_context=client_tls_context())
    assert "UNAVAILABLE" in str(e.value)
