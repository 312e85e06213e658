/*
 * smtpd.h - smtpd's internal types: the server (what every session
 * shares), one session (a client connection), one mail transaction, and
 * the functions the files of smtpd/ call in each other.
 *
 *   session.c   accept, greeting, the input loop (lines, DATA, BDAT),
 *               reply batching, TLS, timeouts, limits, close and log
 *   commands.c  the command table and the handlers of simple commands
 *   tx.c        MAIL .. DATA/BDAT: queue submission, body file, Received:,
 *               commit
 *   auth.c      AUTH PLAIN and LOGIN (RFC 4954, RFC 4616)
 *   main.c      the thin main
 *
 * Not installed, not used outside smtpd/ (and its unit test).
 */
#ifndef SMTPD_SMTPD_H
#define SMTPD_SMTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "mail/dotstuff.h"
#include "mail/envelope.h"
#include "smtpd/parse.h"
#include "util/buf.h"
#include "util/config.h"
#include "util/conn.h"
#include "util/tls.h"

struct mc_daemon;
struct mc_resolver;
struct mc_queue_client;

/* Listener tags. */
enum smtpd_tag {
	SMTPD_MX = 0,           /* [smtpd] listen: port 25 */
	SMTPD_SUBMISSION,       /* [smtpd] submission: AUTH required */
	SMTPD_SUBMISSIONS,      /* [smtpd] submissions: implicit TLS, AUTH required */
};

/* What a reload may change without a restart. */
struct smtpd_limits {
	char hostname[256];
	uint64_t max_message_size;
	unsigned max_recipients;
	unsigned max_errors;
	unsigned max_connections;
	unsigned timeout_ms;
	unsigned data_timeout_ms;
	int plain_auth;          /* enum mc_plain_auth */
	uint64_t min_free_space;
};

struct smtpd_session;

struct smtpd_server {
	uv_loop_t *loop;
	struct smtpd_limits lim;
	struct mc_tls *tls;               /* tls->server may be NULL: no STARTTLS */
	struct mc_resolver *res;
	struct mc_queue_client *queue;
	struct mc_daemon *daemon;         /* NULL in tests; its connections count is kept current */
	struct smtpd_session *sessions;   /* every live session */
	unsigned nsessions;
	uint32_t next_id;
	bool stopping;
	void (*on_empty)(struct smtpd_server *srv);  /* stopping and the last session is gone */
};

enum smtpd_state {
	SMTPD_ST_TLS = 0,        /* a TLS handshake is running (implicit TLS or after STARTTLS) */
	SMTPD_ST_CMD,            /* reading command lines */
	SMTPD_ST_AUTH,           /* reading a SASL response line */
	SMTPD_ST_DATA,           /* reading DATA up to <CRLF>.<CRLF> */
	SMTPD_ST_BDAT,           /* reading a BDAT chunk */
};

/* Size of the body write buffer: the body fd gets writes of this size, not one per line. */
#define SMTPD_WBUF 65536

struct smtpd_tx {
	char qid[MC_QID_MAX];
	int fd;                    /* the body file from queued; -1 before begin and after close */
	struct mc_envelope env;
	bool smtputf8;
	bool binary;               /* BODY=BINARYMIME: BDAT chunks stored as they are */
	uint64_t size_hint;
	unsigned rcpt_tried;       /* RCPT commands seen (for "no valid recipients") */
	bool data_started;         /* DATA or a first BDAT: Received: is written */
	bool bdat;                 /* the body came by BDAT */
	struct mc_dotstuff_dec dec;
	char *wbuf;                /* SMTPD_WBUF bytes once the data starts */
	size_t wlen;
	uint64_t size;             /* bytes of the message (client's data, normalised) */
	uint64_t stored;           /* bytes written to the body file, Received: included */
	bool too_big;
	int write_errno;           /* first write error, 0 if none */
};

struct smtpd_session {
	struct smtpd_session *prev, *next;
	struct smtpd_server *srv;
	struct mc_conn *conn;
	char id[12];               /* "S0A1B2C3" */
	int tag;                   /* enum smtpd_tag */
	enum smtpd_state state;
	char ip[64];
	unsigned port;
	char helo[256];            /* as given, cleaned of control characters */
	bool helo_seen;
	bool esmtp;
	bool tls;
	bool authenticated;
	char auth_user[MC_ADDR_MAX];
	unsigned errors;
	bool busy;                 /* waiting for resolverd or queued: input is paused */
	bool closing;
	bool over_limit;           /* too many connections: 421 instead of the greeting */
	bool discarding;           /* inside an overlong line, dropping to its LF */
	uint32_t res_call;         /* pending resolver call, 0 if none */
	uint32_t q_call;           /* pending queue call, 0 if none */
	struct mc_buf out;         /* replies of the current pipelined batch */
	char line[SMTPD_AUTH_LINE_MAX + 2];
	struct smtpd_tx *tx;
	/* BDAT chunk in progress */
	uint64_t bdat_left;
	uint64_t bdat_size;
	bool bdat_last;
	const char *bdat_error;    /* reply after the chunk when it is discarded */
	/* AUTH exchange in progress */
	int auth_mech;             /* 0, or which mechanism waits for a line */
	int auth_step;
	char auth_login_user[512];
	/* RCPT in progress */
	struct smtpd_rcpt rcpt;
	bool greeted;
	/* counters for the disconnect line: per command, accepted (a 2xx reply) and total */
	int cur_cmd;               /* row of the command being answered, -1 before the first */
	bool cur_ok;
	unsigned cmd_ok[16];
	unsigned cmd_all[16];
	unsigned ncommands;
};

/* ---- session.c ---- */

/* Prepare a server (no sessions yet); limits from cfg. */
void smtpd_server_init(struct smtpd_server *srv, uv_loop_t *loop, const struct mc_config *cfg);
/* Copy the limits a reload may change from cfg. */
void smtpd_server_limits(struct smtpd_server *srv, const struct mc_config *cfg);
/* mc_listen_cb: a client is waiting on a listener tagged tag; arg is the server. */
void smtpd_server_accept(uv_stream_t *server, int tag, void *arg);
/* Stop: idle sessions get 421 and close now, busy ones after their transaction. */
void smtpd_server_stop(struct smtpd_server *srv);
/* Close every session now (421), e.g. when the stop grace time is over. */
void smtpd_server_close_all(struct smtpd_server *srv);

/* Queue a reply line (CRLF added). 5xx replies count as errors. */
void smtpd_reply(struct smtpd_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A reply to MAIL, RCPT, DATA or BDAT that refuses: sent, and logged with the envelope. */
void smtpd_reject(struct smtpd_session *s, const char *cmd, const char *rcpt, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Send the queued replies now. */
void smtpd_flush(struct smtpd_session *s);
/* Say goodbye (reply already queued) and close after the output is flushed. */
void smtpd_session_close(struct smtpd_session *s, const char *why);
/* A call to resolverd or queued starts: stop reading input. */
void smtpd_session_wait(struct smtpd_session *s);
/* The call answered: go on with the input already buffered. */
void smtpd_session_done(struct smtpd_session *s);
/* Forget EHLO, AUTH and the transaction (after STARTTLS). */
void smtpd_session_reset(struct smtpd_session *s);
/* Switch to state st (and its idle timeout). */
void smtpd_session_state(struct smtpd_session *s, enum smtpd_state st);
/* Is AUTH allowed now (TLS, or plaintext permitted for this client)? */
bool smtpd_session_auth_allowed(const struct smtpd_session *s);
/* The submission ports require AUTH before MAIL. */
bool smtpd_session_auth_required(const struct smtpd_session *s);

/* ---- commands.c ---- */

/* Run one command line (line[0..len) without its line end; line[len] writable). */
void smtpd_cmd_run(struct smtpd_session *s, char *line, size_t len);
/* Number of counters (the table's rows and "unknown"), and a counter's name (for the disconnect log). */
size_t smtpd_cmd_count(void);
const char *smtpd_cmd_name(size_t i);

/* ---- tx.c ---- */

/* MAIL FROM: begin a submission with queued (async). */
void smtpd_tx_mail(struct smtpd_session *s, const struct smtpd_mail *m);
/* RCPT TO accepted by resolverd: add it to the envelope. -1 past max_recipients. */
int smtpd_tx_add_rcpt(struct smtpd_session *s, const char *addr, const struct smtpd_rcpt *r);
/* DATA: checks, Received:, 354, and the data state. */
void smtpd_tx_data(struct smtpd_session *s);
/* BDAT n [LAST]: start reading a chunk. */
void smtpd_tx_bdat(struct smtpd_session *s, uint64_t size, bool last);
/* Data bytes in DATA or BDAT state; returns the bytes taken from p. */
size_t smtpd_tx_input(struct smtpd_session *s, const char *p, size_t n);
/* Forget the transaction; an uncommitted submission is aborted with queued. */
void smtpd_tx_abort(struct smtpd_session *s);
/* The envelope sender as text for logs ("" for <>). */
const char *smtpd_tx_sender(const struct smtpd_session *s);

/* ---- auth.c ---- */

/* AUTH mechanism [initial-response]. */
void smtpd_auth_cmd(struct smtpd_session *s, const char *args);
/* A SASL response line while in SMTPD_ST_AUTH. */
void smtpd_auth_line(struct smtpd_session *s, const char *line, size_t len);

#endif
