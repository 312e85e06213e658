/*
 * parse.h - smtpd's parsers of client text: the command line, MAIL FROM
 * and RCPT TO with their ESMTP parameters (RFC 1870 SIZE, RFC 6152 BODY,
 * RFC 6531 SMTPUTF8, RFC 3461 DSN, RFC 4954 AUTH=), and BDAT's arguments.
 *
 * Pure functions on a bounded line: no I/O, no allocation, no state.
 * Errors come back as a complete SMTP reply line (without CRLF) for the
 * session to send as it is. Fuzzed by tests/fuzz/fuzz_smtp_cmd.c.
 */
#ifndef SMTPD_PARSE_H
#define SMTPD_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/addr.h"
#include "mail/envelope.h"

/* Command lines longer than this (without the line end) are refused. */
#define SMTPD_LINE_MAX 4096
/* SASL continuation lines may be longer (RFC 4954 §4: 12288 octets). */
#define SMTPD_AUTH_LINE_MAX 12288
/* RFC 3461 §4.4: ENVID is at most 100 characters. */
#define SMTPD_ENVID_MAX 100

enum smtpd_body { SMTPD_BODY_NONE = 0, SMTPD_BODY_7BIT, SMTPD_BODY_8BITMIME, SMTPD_BODY_BINARYMIME };

struct smtpd_cmdline {
	char verb[16];          /* uppercased; "" when the line has no verb of letters */
	const char *args;       /* after the verb and its spaces, trailing blanks cut; "" when none */
};

struct smtpd_mail {
	struct mc_addr addr;
	bool size_given;
	uint64_t size;          /* SIZE=; UINT64_MAX when it overflowed (certainly too big) */
	enum smtpd_body body;
	bool smtputf8;
	uint32_t ret;           /* 0, MC_ENV_RET_FULL or MC_ENV_RET_HDRS */
	char envid[MC_DSN_PARAM_MAX];
	char auth[MC_ADDR_MAX]; /* AUTH= as given (xtext or "<>") */
};

struct smtpd_rcpt {
	struct mc_addr addr;
	bool postmaster;        /* "<postmaster>" without a domain (RFC 5321 §4.5.1) */
	uint32_t notify;        /* enum mc_notify bits, 0: not given */
	char orcpt[MC_DSN_PARAM_MAX];
};

/*
 * Split a command line (line[0..len), without its LF; line[len] must be
 * writable: a NUL ends the arguments). -1 when the line holds a NUL byte.
 */
int smtpd_parse_cmd(char *line, size_t len, struct smtpd_cmdline *out);
/* "FROM:<path> [params]"; -1 with a reply line in reply. */
int smtpd_parse_mail(const char *args, struct smtpd_mail *m, char *reply, size_t replysz);
/* "TO:<path> [params]"; smtputf8: the transaction's MAIL had SMTPUTF8. -1 with a reply line. */
int smtpd_parse_rcpt(const char *args, bool smtputf8, struct smtpd_rcpt *r, char *reply, size_t replysz);
/* "n [LAST]"; -1 when malformed. */
int smtpd_parse_bdat(const char *args, uint64_t *size, bool *last);
/* Is s[0..n) valid xtext (RFC 3461 §4)? utf8: allow UTF-8 as in RFC 6533 utf-8-addr-unitext. */
bool smtpd_xtext_ok(const char *s, size_t n, bool utf8);

#endif
