/*
 * dsn.h - delivery status notifications (RFC 3464): the message a queue
 * sends back to a sender when delivery failed, was delayed, or (when the
 * sender asked with NOTIFY=SUCCESS, RFC 3461) succeeded.
 *
 * mc_dsn_write() is a pure function of its description and of the
 * original message it reads from a descriptor: it writes a whole
 * multipart/report message (CRLF line ends) through a caller's writer, in
 * bounded memory (a few kilobytes whatever the size of the original), so
 * queued can stream it into a queue file and a test into a buffer.
 *
 * The parts, in the manner of Postfix's "Undelivered Mail Returned to
 * Sender":
 *   1. text/plain: what happened, naming each recipient and the reason;
 *   2. message/delivery-status: Reporting-MTA, Original-Envelope-Id,
 *      Arrival-Date, then per recipient Final-Recipient, Original-Recipient,
 *      Action, Status, Remote-MTA, Diagnostic-Code, Last-Attempt-Date,
 *      Will-Retry-Until;
 *   3. the original: text/rfc822-headers, or message/rfc822 when the
 *      sender asked for RET=FULL and the message is within the bound.
 * Every text that came from outside (addresses, reasons, remote replies)
 * is cleaned of control characters before it reaches a header field.
 */
#ifndef MC_DSN_H
#define MC_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mc_dsn_action {
	MC_DSN_FAILED = 0,
	MC_DSN_DELAYED,
	MC_DSN_DELIVERED,
	MC_DSN_RELAYED,
};

struct mc_dsn_rcpt {
	const char *final;          /* the address the report is about (no brackets) */
	const char *orcpt;          /* the ORCPT parameter as received ("rfc822;xtext"), or NULL/"" */
	enum mc_dsn_action action;
	const char *status;         /* "5.1.1"; NULL: derived from the action (5.0.0, 4.0.0, 2.0.0) */
	const char *reason;         /* human text for part 1, NULL: none */
	const char *remote_mta;     /* host name of the remote MTA, NULL when not remote */
	const char *diag_type;      /* "smtp" for a remote reply, NULL: "x-postern" */
	const char *diag;           /* Diagnostic-Code text (a remote reply), NULL: none */
	int64_t last_attempt;       /* unix time, 0: none */
	int64_t retry_until;        /* unix time (delayed), 0: none */
};

struct mc_dsn {
	const char *reporting_mta;  /* this host's name */
	const char *sender;         /* the original envelope sender: the report's recipient */
	const char *envid;          /* ENVID as received (xtext), NULL/"": none */
	const char *qid;            /* the original message's queue id */
	const char *report_id;      /* the report's own queue id: Message-ID and boundary */
	int64_t arrival;            /* unix time the original arrived */
	int64_t now;                /* the report's Date */
	bool ret_full;              /* RET=FULL: return the whole message when within max_full */
	uint64_t max_full;          /* bound on a returned message; larger ones return headers */
	uint64_t max_headers;       /* bound on the returned header block */
	const struct mc_dsn_rcpt *rcpt;
	size_t nrcpt;
};

/* Where the report goes: returns 0, or -1 to stop (the error is the writer's to keep). */
typedef int (*mc_dsn_writer)(void *arg, const void *p, size_t n);

/*
 * Write the report for d, with the original message read from in_fd
 * (in_size bytes from offset 0, read with pread: the descriptor's offset
 * is untouched; -1: no original available). Returns 0, or -1 when the
 * writer failed or d is unusable (no recipient).
 */
int mc_dsn_write(const struct mc_dsn *d, int in_fd, uint64_t in_size, mc_dsn_writer w, void *warg);

/* Decode RFC 3461 xtext ("+2B" is '+') into out, with control characters replaced by '?'. */
char *mc_dsn_xtext_decode(char *out, size_t outsz, const char *in);

/* The enhanced status code at the start of text ("5.1.1 ..."), copied into out (12 bytes); false when none. */
bool mc_dsn_status_of(const char *text, char *out, size_t outsz);

/* The report's Subject for its most severe action. */
const char *mc_dsn_subject(const struct mc_dsn *d);

/* An RFC 5322 date (UTC) for t into out (at least 40 bytes). */
char *mc_dsn_date(char *out, size_t outsz, int64_t t);

#endif
