/*
 * utf7imap.h - IMAP's modified UTF-7 for mailbox names (RFC 3501 5.1.3).
 *
 * Who calls it: imapd (LIST/SELECT/CREATE... names on the wire are
 * modified UTF-7 unless the client enabled UTF8=ACCEPT; the store keeps
 * UTF-8). Pure functions writing into a caller's buffer; never writes past
 * outsz, never reads past n.
 */
#ifndef MC_UTF7IMAP_H
#define MC_UTF7IMAP_H

#include <stddef.h>

/*
 * UTF-8 to modified UTF-7. -1 when the input is not valid UTF-8 (or holds
 * NUL) or the result (with its NUL) does not fit outsz; else the length.
 */
int mc_utf7imap_encode(const char *s, size_t n, char *out, size_t outsz);

/*
 * Modified UTF-7 to UTF-8, strictly: -1 for anything RFC 3501 does not
 * allow a client to send (bytes outside 0x20-0x7e, '&' runs without '-',
 * base64 that encodes printable ASCII or is split needlessly ("&AGE-&AGE-"),
 * bad padding bits, broken surrogate pairs, NUL), or when the result does
 * not fit; else the length.
 */
int mc_utf7imap_decode(const char *s, size_t n, char *out, size_t outsz);

#endif
