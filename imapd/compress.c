/*
 * compress.c - COMPRESS DEFLATE (RFC 4978): the command, and when a
 * compressed session may let its compression state go.
 *
 * Called by commands.c's table (COMPRESS, authenticated and selected
 * states: RFC 4978 section 5 extends command-auth, so STARTTLS, which is
 * only allowed before login, always comes first and TLS lies beneath
 * compression) and by session.c after each batch of output. The
 * compression itself is mc_conn's (util/conn.c, util/zstream.c): the
 * tagged OK goes out uncompressed, and every byte after the CRLF of the
 * COMPRESS command line, including a command the client pipelined behind
 * it, is compressed input. Inflated input meets the reader's usual line
 * and literal limits, and a corrupt stream closes the session with its
 * reason in the disconnect line.
 *
 * Owns nothing. Never: compress before the tagged OK is out, or start a
 * second compression layer.
 */
#include "imapd/imapd.h"

#include <strings.h>

#include "util/log.h"

void
imapd_cmd_compress(struct imapd_session *s, struct imap_p *p, bool uid)
{
	char mech[IMAP_ATOM_MAX + 1];
	if (imap_p_sp(p) < 0 || imap_p_atom_upper(p, mech, sizeof(mech)) < 0 || imap_p_end(p) < 0) {
		imapd_done(s, "BAD", "COMPRESS needs a mechanism: COMPRESS DEFLATE");
		return;
	}
	if (strcmp(mech, "DEFLATE") != 0) {
		imapd_done(s, "BAD", "Unknown compression mechanism");
		return;
	}
	if (mc_conn_is_compressed(s->conn)) {
		imapd_done(s, "NO", "[COMPRESSIONACTIVE] DEFLATE is already active");
		return;
	}
	imapd_done(s, "OK", "DEFLATE active");
	imapd_flush(s);
	if (mc_conn_compress(s->conn) < 0) {
		/* The OK is out: the client compresses from now on, so the session cannot go on uncompressed. */
		mc_warn("%s: cannot start compression for [%s]", s->id, s->ip);
		imapd_session_close(s, NULL, "cannot start compression");
		return;
	}
	mc_info("%s: compress deflate from [%s] user=%s", s->id, s->ip, s->user);
	(void)uid;
}

void
imapd_compress_batch_done(struct imapd_session *s)
{
	/* Output is flushed: an IDLE session may sit for hours, so it keeps only what it cannot rebuild. */
	if (s->wait == IMAPD_W_IDLE && !s->busy)
		mc_conn_shrink(s->conn);
}
