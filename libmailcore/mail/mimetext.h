/*
 * mimetext.h - the text of a stored message as its reader sees it, for
 * SEARCH BODY and TEXT (RFC 3501 §6.4.4): header fields with their RFC
 * 2047 encoded words decoded, and the bodies of text/ parts with their
 * Content-Transfer-Encoding undone (cte.h) and their charset converted to
 * UTF-8 (iconv), handed to a callback piece by piece.
 *
 * Who calls it: imapd's search evaluator (search.c). Owns nothing after
 * it returns. Bounded: the message is parsed by the streaming MIME parser
 * (its limits), a header block is read up to MC_MIMETEXT_HDR_MAX bytes,
 * bodies are streamed in MC_MIMETEXT_CHUNK pieces; a large message never
 * sits in memory. Parts of other types (attachments) are not read; a
 * text part with an unknown encoding or charset is given as stored.
 */
#ifndef MC_MIMETEXT_H
#define MC_MIMETEXT_H

#include <stdbool.h>
#include <stddef.h>

#define MC_MIMETEXT_HDR_MAX (256 * 1024)
#define MC_MIMETEXT_CHUNK (48 * 1024)   /* its decoding buffer stays under malloc's mmap threshold */

enum {
	MC_MIMETEXT_HEADER = 1u << 0,   /* the message's own header fields */
	MC_MIMETEXT_BODY = 1u << 1,     /* what is below it: the parts' header fields and text bodies */
};

/*
 * One piece of text (UTF-8 where the charset was known). cont: it goes on
 * from the previous piece (the same body), so a match may span the two;
 * otherwise it starts a new field or body. Non-zero stops the walk.
 */
typedef int (*mc_mimetext_cb)(void *arg, const char *s, size_t n, bool cont);

/* Walk the message file fd (what: MC_MIMETEXT_*). 1 when cb stopped it, 0 at the end, -1 on a read error or no memory. */
int mc_mimetext_scan(int fd, unsigned what, mc_mimetext_cb cb, void *arg);

#endif
