/*
 * pop3d.h - pop3d's internal types: the server (what every session
 * shares), one session (a client connection), the maildrop (the mailbox
 * as one session sees it), and the functions the files of pop3d/ call in
 * each other.
 *
 *   session.c   a client from netsvc: greeting, the input loop, replies,
 *               STLS, timeouts, limits, RETR/TOP streaming, close and log
 *   commands.c  the command table (verb, states, TLS rule, action) and
 *               its handlers, AUTH PLAIN/LOGIN and USER/PASS via resolverd
 *   maildrop.c  the mailbox view: the index's list at login, the lock,
 *               deletions at QUIT, opening a message for streaming
 *   parse.c     the command line parser (fuzzed)
 *   main.c      the thin main
 *
 * Not installed, not used outside pop3d/ (and its unit test).
 */
#ifndef POP3D_POP3D_H
#define POP3D_POP3D_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "mail/dotstuff.h"
#include "mail/sasl.h"
#include "pop3d/parse.h"
#include "util/buf.h"
#include "util/config.h"
#include "util/conn.h"
#include "util/line.h"

struct mc_netsvc;
struct mc_netsvc_client;
struct mc_resolver;
struct mc_store;

/* What a reload may change without a restart. */
struct pop3_limits {
	char hostname[256];
	int plain_auth;            /* enum mc_plain_auth */
	unsigned timeout_ms;       /* idle, RFC 1939 §3: at least 10 minutes in production */
	unsigned max_bad;          /* bad commands before the session is closed */
};

struct pop3_server {
	uv_loop_t *loop;
	struct pop3_limits lim;
	struct mc_netsvc *svc;     /* NULL in tests: no STLS context */
	SSL_CTX *tls_test;         /* tests: the STLS context when svc is NULL */
	struct mc_resolver *res;
	struct pop3_session *sessions;
	unsigned nsessions;
};

/* RFC 1939 §3 states, as bits so a command row lists where it is allowed. */
enum pop3_state {
	POP3_ST_AUTH = 1u << 0,    /* AUTHORIZATION */
	POP3_ST_TRANS = 1u << 1,   /* TRANSACTION */
	POP3_ST_UPDATE = 1u << 2,  /* UPDATE (after QUIT in TRANSACTION) */
};

struct pop3_msg {
	uint32_t uid;
	bool deleted;
	uint64_t vsize;            /* octets with CRLF line ends, as LIST says */
	char *file;                /* relative to the mailbox directory; may move (found again by uid) */
};

struct pop3_maildrop {
	struct mc_store *store;
	int lock_fd;
	char dir[2048];            /* the INBOX directory */
	uint32_t uidvalidity;
	struct pop3_msg *msgs;
	size_t n;
	size_t ndeleted;
	uint64_t total, deleted_size;
};

/* A RETR or TOP answer being streamed from its file. */
struct pop3_stream {
	int fd;                    /* -1: none */
	struct mc_dotstuff_enc enc;
	bool top;                  /* TOP: stop after the header and top_left body lines */
	bool in_body, blank, cut;
	uint32_t top_left;
	uint64_t left;             /* file bytes not read yet */
	uint64_t sent;
};

struct pop3_session {
	struct pop3_session *prev, *next;
	struct pop3_server *srv;
	struct mc_conn *conn;
	char id[16];
	char ip[64];
	unsigned state;            /* enum pop3_state */
	bool tls;
	bool handshake;            /* STLS handshake running */
	bool busy;                 /* waiting for resolverd: input paused */
	bool closing;
	bool streaming;
	unsigned bad;              /* bad commands so far */
	struct mc_line lr;
	char line[MC_SASL_LINE_MAX + 2];
	struct mc_buf out;         /* replies of the current pipelined batch */
	/* AUTHORIZATION */
	char user[512];
	bool user_given;
	int sasl_mech;             /* 0, or the mechanism waiting for a continuation line */
	int sasl_step;
	uint32_t res_call;
	char account[512];         /* canonical address after login */
	/* TRANSACTION */
	struct pop3_maildrop drop;
	bool have_drop;
	struct pop3_stream st;
	unsigned retrieved, deleted_at_quit;
	uint64_t retrieved_bytes;
};

/* ---- session.c ---- */

void pop3_server_init(struct pop3_server *srv, uv_loop_t *loop, const struct mc_config *cfg);
void pop3_server_limits(struct pop3_server *srv, const struct mc_config *cfg);
/* netsvc's on_client: arg is the server. */
void *pop3_session_new(struct mc_netsvc *svc, const struct mc_netsvc_client *cl, void *arg);
/* mc_listen_cb for tests (plain listeners without netsvc): arg is the server. */
void pop3_server_accept(uv_stream_t *server, int tag, void *arg);
/* The conn callbacks of a session (the arg is the session). */
extern const struct mc_conn_cbs pop3_session_cbs;
/* Stop: "-ERR [SYS/TEMP] shutting down" (between commands) and close. */
void pop3_session_shutdown(void *sess);

/* Queue a reply line (CRLF added). */
void pop3_reply(struct pop3_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Queue raw bytes (multi-line answers build their lines themselves). */
void pop3_reply_raw(struct pop3_session *s, const char *p, size_t n);
void pop3_flush(struct pop3_session *s);
/* Close after the queued output (why: logged). */
void pop3_session_close(struct pop3_session *s, const char *why);
/* A call to resolverd starts / ended: input paused / resumed. */
void pop3_session_wait(struct pop3_session *s);
void pop3_session_done(struct pop3_session *s);
/* Start streaming message i (0-based), all of it or the header and lines body lines. */
void pop3_session_stream(struct pop3_session *s, size_t i, bool top, uint32_t lines);
/* Is a password allowed now (TLS, or allow_plaintext_auth for this client)? */
bool pop3_session_auth_allowed(const struct pop3_session *s);
/* Start TLS (STLS) after "+OK" was queued. */
void pop3_session_starttls(struct pop3_session *s);
SSL_CTX *pop3_session_tls_ctx(const struct pop3_session *s);

/* ---- commands.c ---- */

/* Run one command line (line[0..len), line[len] writable). */
void pop3_cmd_run(struct pop3_session *s, char *line, size_t len);
/* A SASL continuation line (after "+ "). */
void pop3_cmd_sasl_line(struct pop3_session *s, char *line, size_t len);
/* A line too long for the state we are in. */
void pop3_cmd_too_long(struct pop3_session *s);
/* Forget an exchange in progress (STLS, close). */
void pop3_cmd_reset_auth(struct pop3_session *s);

/* ---- maildrop.c ---- */

/*
 * Open the user's store at dir, take the POP3 lock, and read INBOX's list
 * from the index. 0; 1 when another session holds the lock ([IN-USE]);
 * -1 with err.
 */
int pop3_maildrop_open(struct pop3_maildrop *m, const char *dir, char *err, size_t errsz);
/* Release the lock and the store; nothing is deleted. */
void pop3_maildrop_close(struct pop3_maildrop *m);
/* Remove the messages marked deleted (UPDATE state). The number removed, -1 with err. */
int pop3_maildrop_commit(struct pop3_maildrop *m, char *err, size_t errsz);
/* Open message i for reading (found again by UID if its file moved); -1 with errno. */
int pop3_maildrop_open_msg(struct pop3_maildrop *m, size_t i);
/* The UIDL of message i: "<uidvalidity>.<uid>" into out. */
void pop3_maildrop_uidl(const struct pop3_maildrop *m, size_t i, char *out, size_t outsz);

#endif
