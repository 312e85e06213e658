/*
 * imapstruct.h - IMAP4rev1 ENVELOPE, BODYSTRUCTURE and BODY text (RFC 3501
 * 7.4.2) from a parsed MIME tree.
 *
 * IMAP-specific, but in libmailcore because queued caches these strings in
 * the index at delivery, and imapd writes them for APPEND and for messages
 * without a cache. The output matches what Dovecot 2.3 answers for the same
 * message (tests/data/mime/expected.json), byte for byte: string values
 * quoted, or as a literal "{n}\r\n..." when they hold 8-bit bytes, were
 * folded (the CR/LF removed, as Dovecot's nstring_nolf does) or need more
 * than four escapes; NIL for what is absent.
 *
 * Who calls it: mailstore.c (the index cache), imapd. Appends to a caller's
 * bounded mc_buf; never reads the message file (everything comes from the
 * tree).
 */
#ifndef MC_IMAPSTRUCT_H
#define MC_IMAPSTRUCT_H

#include <stdbool.h>
#include <stddef.h>

#include "mail/mime.h"
#include "util/buf.h"

/* ENVELOPE of a message node (the root, or the child of a message/rfc822 part). -1 if out's bound is hit. */
int mc_imap_envelope(const struct mc_mime_part *msg, struct mc_buf *out);

/* BODYSTRUCTURE (extended) or BODY (!extended) of a message node. -1 if out's bound is hit. */
int mc_imap_bodystructure(const struct mc_mime_part *msg, bool extended, struct mc_buf *out);

/* An IMAP nstring for n bytes of s (NULL: NIL), quoted or literal as above. */
int mc_imap_nstring(struct mc_buf *out, const char *s, size_t n);

#endif
