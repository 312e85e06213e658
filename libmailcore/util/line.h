/*
 * line.h - taking bounded command lines out of a connection's input buffer,
 * for the line-based protocols (SMTP, POP3, IMAP command lines).
 *
 * A line ends in LF; a CR before it is dropped. A line longer than the
 * caller's maximum is never kept: what has arrived of it is thrown away as
 * it comes (so the input buffer never holds more than max + 2 bytes of
 * it) and, once its LF arrives, the caller hears MC_LINE_TOOLONG once and
 * answers with its protocol's error. NUL bytes are kept (the caller gets
 * the length and decides). The input buffer must be able to hold max + 2
 * bytes, or a long line could never be seen to end.
 */
#ifndef MC_LINE_H
#define MC_LINE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

enum mc_line_result {
	MC_LINE_NONE = 0,     /* no complete line buffered yet */
	MC_LINE_OK,           /* out holds a line, NUL-terminated, *outlen bytes */
	MC_LINE_TOOLONG,      /* a line over max ended (and was consumed); out is empty */
};

struct mc_line {
	bool discarding;      /* inside an overlong line, dropping up to its LF */
};

/* Take one line from in into out (room for max + 1 bytes). */
enum mc_line_result mc_line_take(struct mc_line *l, struct mc_buf *in, size_t max, char *out, size_t *outlen);

#endif
