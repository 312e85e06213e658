/*
 * smtp_reply.h - reading SMTP server replies, for queued's SMTP client.
 *
 * A reply (RFC 5321 §4.2) is one or more lines "NNN-text" ending with
 * "NNN text" (or a bare "NNN"). The parser is fed the bytes a server sent,
 * in pieces of any size, and stops right after the last line of one reply,
 * so replies to pipelined commands (RFC 2920) are taken one at a time.
 *
 * Bounded: a line longer than MC_SMTP_REPLY_LINE_MAX is cut (the rest up
 * to its LF is dropped), at most MC_SMTP_REPLY_LINES lines are accepted,
 * and only the first MC_SMTP_REPLY_BUF bytes of text are kept. Bare LF
 * ends a line as CRLF does. Anything else - a line without a three-digit
 * code, codes that differ between lines, a code outside 200..599, too many
 * lines - is a malformed reply, which the client treats as a temporary
 * failure of the connection.
 *
 * Kept text is cleaned: control characters and bytes outside ASCII become
 * '?', so a reply can go into a log line, a DSN or the queue database as
 * it is. The enhanced status code (RFC 3463) of the first line is taken
 * out when its class matches the reply's.
 *
 * Also here: the EHLO keywords the client acts on.
 * Fuzzed by tests/fuzz/fuzz_smtp_reply.c.
 */
#ifndef MC_SMTP_REPLY_H
#define MC_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MC_SMTP_REPLY_LINE_MAX 512    /* RFC 5321 §4.5.3.1.5, with the CRLF */
#define MC_SMTP_REPLY_LINES 128       /* lines in one reply (EHLO lists are the longest) */
#define MC_SMTP_REPLY_BUF 4096        /* text kept, all lines together */
#define MC_SMTP_ESC_MAX 16            /* "5.123.123" and its NUL */

struct mc_smtp_reply {
	int code;                           /* 200..599 once complete */
	char esc[MC_SMTP_ESC_MAX];          /* "5.1.1", "" when the reply has none */
	unsigned nlines;                    /* lines received */
	unsigned nkept;                     /* lines whose text is kept */
	uint16_t off[MC_SMTP_REPLY_LINES];  /* where line i's text starts in buf */
	char buf[MC_SMTP_REPLY_BUF];        /* each kept line's text (after "NNN-"), NUL-terminated */
	size_t used;
	char err[80];                       /* why the reply is malformed */

	/* the line being read */
	char line[MC_SMTP_REPLY_LINE_MAX];
	size_t linelen;
	bool overlong;                      /* cut: dropping bytes up to the LF */
	bool done;
};

/* Make ready for the next reply. */
void mc_smtp_reply_init(struct mc_smtp_reply *r);
/*
 * Take bytes in[0..len); *used: how many were taken (never past the end of
 * the reply). Returns 1 when the reply is complete, 0 when more input is
 * needed, -1 when it is malformed (r->err says why; the connection cannot
 * be trusted any more).
 */
int mc_smtp_reply_feed(struct mc_smtp_reply *r, const char *in, size_t len, size_t *used);
/* Line i's cleaned text (after the code and separator), "" past the kept lines. */
const char *mc_smtp_reply_line(const struct mc_smtp_reply *r, unsigned i);
/*
 * The whole reply on one line for logs, DSNs and the queue: "550 5.1.1
 * first line second line", a repeated enhanced code dropped from the
 * continuation lines. Always NUL-terminated; returns the length.
 */
size_t mc_smtp_reply_format(const struct mc_smtp_reply *r, char *out, size_t outsz);

/* Is text an enhanced status code of class cls ('2','4','5') followed by a space or its end? Its length. */
size_t mc_smtp_esc_len(const char *text, char cls);

/* What a server offers in its EHLO reply. */
struct mc_smtp_ehlo {
	bool pipelining, starttls, eightbitmime, smtputf8, dsn, chunking;
	bool auth_plain, auth_login;
	bool size;                          /* SIZE was listed */
	uint64_t size_max;                  /* its limit; 0: none given */
};

/* Read the keywords of a complete 250 reply to EHLO (the first line is the greeting). */
void mc_smtp_ehlo_parse(const struct mc_smtp_reply *r, struct mc_smtp_ehlo *e);

#endif
