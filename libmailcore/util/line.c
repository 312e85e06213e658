/*
 * line.c - bounded command lines out of an input buffer (see line.h).
 *
 * Called by the protocol sessions of smtpd-like servers (pop3d, imapd).
 * Owns nothing; the state is the caller's struct mc_line.
 */
#include "util/line.h"

#include <string.h>

enum mc_line_result
mc_line_take(struct mc_line *l, struct mc_buf *in, size_t max, char *out, size_t *outlen)
{
	size_t n = mc_buf_line(in);
	*outlen = 0;
	out[0] = '\0';
	if (n == 0) {
		/* No LF yet: a line already too long is dropped as it comes, to bounded memory. */
		if (in->len > max + 1) {
			l->discarding = true;
			/* Keep a trailing CR: its LF may come in the next read. */
			mc_buf_consume(in, in->len - 1);
		}
		return MC_LINE_NONE;
	}
	size_t len = n - 1;
	if (len > 0 && in->data[len - 1] == '\r')
		len--;
	if (l->discarding || len > max) {
		l->discarding = false;
		mc_buf_consume(in, n);
		return MC_LINE_TOOLONG;
	}
	memcpy(out, in->data, len);
	out[len] = '\0';
	*outlen = len;
	mc_buf_consume(in, n);
	return MC_LINE_OK;
}
