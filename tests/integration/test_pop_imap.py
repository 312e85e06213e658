"""
POP3 and IMAP, as they stand: both servers listen and greet with a
temporary error until their issues are done (then these tests are
replaced by real mailbox access tests).
"""
import imaplib
import poplib

import pytest

from mailtest import client_tls_context


def test_pop3_temporary_error(inst):
    with pytest.raises(poplib.error_proto) as e:
        poplib.POP3("127.0.0.1", inst.ports["pop3"], timeout=10)
    assert "-ERR [SYS/TEMP]" in str(e.value)


def test_pop3s_temporary_error(inst):
    with pytest.raises(poplib.error_proto) as e:
        poplib.POP3_SSL("127.0.0.1", inst.ports["pop3s"], timeout=10, context=client_tls_context())
    assert "[SYS/TEMP]" in str(e.value)


def test_imap_unavailable(inst):
    with pytest.raises((imaplib.IMAP4.error, imaplib.IMAP4.abort)) as e:
        imaplib.IMAP4("127.0.0.1", inst.ports["imap"], timeout=10)
    assert "UNAVAILABLE" in str(e.value)


def test_imaps_unavailable(inst):
    with pytest.raises((imaplib.IMAP4.error, imaplib.IMAP4.abort)) as e:
        imaplib.IMAP4_SSL("127.0.0.1", inst.ports["imaps"], timeout=10, ssl_context=client_tls_context())
    assert "UNAVAILABLE" in str(e.value)
