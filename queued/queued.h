/*
 * queued.h - what the files of the queue manager share.
 *
 *   main.c     start-up: config, socket, privilege drop, database, check, run
 *   submit.c   Q_SUBMIT_BEGIN/COMMIT/ABORT from smtpd, and the group commit
 *   qdb.c      the queue database (queue.sqlite) and its single writer lane
 *   deliver.c  one delivery round per message: expansion by resolverd, local
 *              delivery into Maildirs on the threadpool, outcomes recorded
 *   sched.c    when a recipient is tried: the due-work timer, retries, expiry
 *   backoff.c  the delay before a retry, with its jitter
 *   bounce.c   what a sender is told (RFC 3464 reports: failures, delays,
 *              successes), double bounces held, q_bounce_now
 *   relay.c    remote delivery per destination: MX lookup through resolverd,
 *              hosts and addresses in turn, connection cache, concurrency,
 *              rate limit and backoff per destination
 *   smtpc.c    one outbound SMTP connection (the client state machine)
 *   check.c    the start-up check of files against envelopes
 *   control.c  the queue control socket (postern queue ...); qview.c its queries
 *   spool.c    body files: made for a submission, kept as spares after delivery
 *
 * Threads: everything here runs on the loop thread except the functions
 * marked "worker", which run on the libuv threadpool and touch only what
 * their job owns. The database connection is used by one worker at a time
 * (the lane), never by the loop thread once the loop runs.
 */
#ifndef QUEUED_H
#define QUEUED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "mail/daemon.h"
#include "mail/envelope.h"
#include "mail/resolver_client.h"
#include "mail/smtp_reply.h"

#define Q_SCHEMA_VERSION 2
#define Q_ERR_MAX 256

/* Recipient states, as stored (text) in recipients.state. */
enum q_rstate {
	Q_R_PENDING = 0,   /* not tried yet */
	Q_R_DEFERRED,      /* tried, to be tried again at next_try */
	Q_R_DELIVERED,
	Q_R_BOUNCED,
	Q_R_HELD,          /* set aside by an administrator */
	Q_R_COUNT
};

/* Message states, as stored in messages.state. */
enum q_mstate {
	Q_M_ACTIVE = 0,
	Q_M_HELD,
	Q_M_CORRUPT,       /* the body could not be read at start: kept, never delivered, never dropped */
	Q_M_COUNT
};

const char *q_rstate_name(enum q_rstate s);
int q_rstate_parse(const char *s);
const char *q_mstate_name(enum q_mstate s);
int q_mstate_parse(const char *s);

struct q_msg;
struct q_bounce_req;

/* A recipient's scheduling state (recipients table), and its work in the current round. */
struct q_rcpt {
	struct q_msg *msg;
	uint32_t idx;                /* position in the envelope: the row's key with the qid */
	enum q_rstate state;
	uint32_t attempts;
	int64_t next_try;
	char last_error[Q_ERR_MAX];
	char *done_dests;            /* final addresses already delivered, '\n'-separated; NULL: none */

	/* the current round (deliver.c) */
	bool in_round;
	bool abandoned;              /* the round was cut short (stop): the state stays as it was */
	bool changed;                /* the row must be written */
	unsigned dests_left;         /* local deliveries queued or running */
	unsigned n_ok, n_unknown, n_temp;
	char reason[Q_ERR_MAX];      /* why it is deferred or bounced */
	/*
	 * What the sender's report says of this round's outcome (bounce.c).
	 * A remote failure's reason reads as Postfix's, "host mx.example[192.0.2.1]
	 * said: 550 5.1.1 <x>: unknown (in reply to RCPT TO command)": bounce.c
	 * takes Remote-MTA and Diagnostic-Code from that form, and the status from
	 * status[] or else from a code at the start of the reason or of the reply.
	 */
	char status[12];             /* enhanced status code ("5.1.1"), "" : from the reason */
	bool remote;                 /* concluded at a remote MTA (relay) */
	bool remote_dsn;             /* that MTA took NOTIFY/ORCPT: success is its to report */
	unsigned n_perm;             /* remote destinations refused for good */
	char *ev_detail;             /* the event's detail when delivered remotely ("host=... reply=..."), malloc'd */
	uint32_t res_handle;         /* pending resolverd call, 0 when none */
	struct q_rcpt *rq_next;      /* in the queue waiting for resolverd */
	double rq_since;
};

/* A message in memory: its envelope, its recipients' states, and its round. */
struct q_msg {
	struct queued *q;            /* set while in flight */
	struct mc_envelope env;
	struct q_rcpt *rs;           /* env.nrcpt entries */
	enum q_mstate state;
	double t_arrival;            /* for delay=: precise when committed by this process */
	unsigned round_left;         /* recipients of the round still working */
	bool in_lane;                /* its outcome is being written */
	bool all_final;              /* every recipient delivered or bounced: the message goes */
	int64_t warned;              /* when the sender was told of a delay (messages.warned), 0: never */
	struct q_bounce_req *bounce_req; /* an administrator's "bounce now", applied at the round's end */
	unsigned expanding;          /* recipients of the round still waiting for their expansion */
	struct q_rdest *remote;      /* remote destinations gathered until every expansion is in */
	struct q_msg *hnext;         /* in-flight table */
};

/* Make a message from an envelope (moved into it; e is emptied). */
struct q_msg *q_msg_new(struct mc_envelope *e, double t_arrival);
void q_msg_free(struct q_msg *m);
/* Is addr among m's recipient's delivered destinations? */
bool q_rcpt_done_has(const struct q_rcpt *r, const char *addr);
int q_rcpt_done_add(struct q_rcpt *r, const char *addr);

/* ---- relay.c, smtpc.c: remote delivery ---- */

struct queued;

enum q_rres { Q_RR_NONE = 0, Q_RR_OK, Q_RR_TEMP, Q_RR_PERM };

/*
 * One remote destination address of a message, from one recipient's
 * expansion. Its outcome goes back to deliver.c (q_deliver_remote_done)
 * with reply: the server's reply on one line ("550 5.1.1 No such user"),
 * or why the client gave up ("lost connection with ... while ..."); dsn:
 * the enhanced status code that applies.
 */
struct q_rdest {
	struct q_rcpt *r;
	char addr[MC_ADDR_MAX];
	enum q_rres res;
	bool again;                  /* 452 too many recipients: into a further transaction */
	bool accepted;               /* 2xx to RCPT in the transaction under way */
	bool remote_dsn;             /* delivered to a server that took our DSN parameters (it reports success) */
	char dsn[MC_SMTP_ESC_MAX];
	char reply[Q_ERR_MAX];
	struct q_rdest *next;
};

/* One message's destinations in one domain: what a transaction (or a few, after 452) carries. */
struct q_rjob {
	struct q_msg *m;
	char domain[256];
	struct q_rdest **d;
	unsigned n;
	bool started;                /* MAIL was sent: the outcome is decided by the session */
	char relay[320];             /* "host[ip]:port" that decided, or "none" */
	char body[MC_PATH_MAX + 64]; /* the queue file */
	struct q_rjob *next;
};

/* deliver.c: a remote destination has its outcome (or none, when abandoned at stop); d is freed. */
void q_deliver_remote_done(struct queued *q, struct q_rdest *d, const char *relay);

/* relay.c */
/* Read the relayhost password (before the privilege drop); the client TLS context. Fatal on error. */
void q_relay_preinit(struct queued *q);
int q_relay_init(struct queued *q);
/* Take a message's remote destinations (a list): grouped per domain, delivered, reported one by one. */
void q_relay_submit(struct queued *q, struct q_msg *m, struct q_rdest *list);
void q_relay_tick(struct queued *q, double now);
/* Give up everything not decided (reported as abandoned); close the connections. */
void q_relay_stop(struct queued *q);
void q_relay_free(struct queued *q);

/* smtpc.c: one outbound SMTP connection */
struct q_smtpc;

struct q_smtpc_opts {
	const char *helo;            /* [global] hostname */
	const char *host;            /* the server's name (logs, SNI) */
	int tls;                     /* enum mc_outbound_tls for this attempt */
	SSL_CTX *tls_ctx;
	const char *auth_user;       /* NULL: no AUTH */
	const char *auth_pass;
	unsigned connect_ms, cmd_ms, data_ms;
};

/* Why a connection ended, for on_gone. */
struct q_smtpc_gone {
	const char *why;             /* "connect to host[ip]:port: connection refused", "host said: 421 ..." */
	bool ready;                  /* it had been ready for mail */
	bool tls_failed;             /* the TLS handshake failed (a plaintext retry may help) */
	bool perm;                   /* the server refused us for good (5xx greeting/EHLO) */
	struct q_rjob *job;          /* the job in hand: settled if job->started, untouched otherwise */
};

struct q_smtpc_cbs {
	void (*on_ready)(struct q_smtpc *c, void *arg);              /* greeted, EHLO, TLS, AUTH done */
	void (*on_done)(struct q_smtpc *c, void *arg, struct q_rjob *j); /* every destination of j settled */
	void (*on_gone)(struct q_smtpc *c, void *arg, const struct q_smtpc_gone *g); /* c is freed after */
};

/* Connect to addr (ip text, port); NULL when the connect cannot start. */
struct q_smtpc *q_smtpc_open(uv_loop_t *loop, const char *ip, unsigned port, const struct q_smtpc_opts *o,
			     const struct q_smtpc_cbs *cbs, void *arg);
/* Deliver j over a ready connection (RSET first unless it is the first transaction). */
void q_smtpc_send(struct q_smtpc *c, struct q_rjob *j);
/* QUIT and close (an idle connection); abort: close now. on_gone follows either way. */
void q_smtpc_quit(struct q_smtpc *c);
void q_smtpc_abort(struct q_smtpc *c);
/* "host[ip]:port" */
const char *q_smtpc_relay(const struct q_smtpc *c);
bool q_smtpc_is_tls(const struct q_smtpc *c);
/*
 * The MAIL and RCPT commands for a message (pure: unit-tested). ext: what
 * the server offers. q_smtpc_needs_utf8: the envelope needs SMTPUTF8.
 */
int q_smtpc_mail_cmd(char *out, size_t outsz, const struct mc_envelope *e, const struct mc_smtp_ehlo *ext);
int q_smtpc_rcpt_cmd(char *out, size_t outsz, const char *addr, const struct mc_rcpt *orig,
		     const struct mc_smtp_ehlo *ext);
bool q_smtpc_needs_utf8(const struct mc_envelope *e);

/* ---- qdb.c: the queue database (synchronous; one thread at a time) ---- */

struct qdb;

struct qdb *qdb_open(const char *path, char *err, size_t errsz);
void qdb_close(struct qdb *db);
const char *qdb_errmsg(struct qdb *db);
int qdb_begin(struct qdb *db);
int qdb_commit(struct qdb *db);
void qdb_rollback(struct qdb *db);
int qdb_savepoint(struct qdb *db);
int qdb_release(struct qdb *db);
void qdb_rollback_to(struct qdb *db);

/* A committed message: the messages row, a row per recipient (pending), the "queued" event. */
int qdb_insert(struct qdb *db, const struct mc_envelope *e, double now);
/* Write the changed recipients of m (state, attempts, next_try, last_error, done_dests) and an event each. */
int qdb_save_rcpts(struct qdb *db, const struct q_msg *m, double now);
/* Remember that m's sender was told of a delay (messages.warned). */
int qdb_set_warned(struct qdb *db, const char *qid, int64_t when);
/* Forget a message: its rows and events. */
int qdb_delete(struct qdb *db, const char *qid);
int qdb_set_state(struct qdb *db, const char *qid, enum q_mstate state, const char *why, double now);
int qdb_event(struct qdb *db, const char *qid, double when, const char *rcpt, const char *what, const char *detail);
/* Load a message with its recipients. NULL when absent or on error (*err set: -1 error, 0 absent). */
struct q_msg *qdb_load(struct qdb *db, const char *qid, int *err);
/*
 * Active messages with a recipient due by now (pending, or deferred with
 * next_try <= now), oldest first, skipping the sorted qids in skip[];
 * at most max into qids. *next_due: the earliest next_try after now of
 * the rest (INT64_MAX when none). Returns the number found, -1 on error.
 */
int qdb_due(struct qdb *db, int64_t now, const char (*skip)[MC_QID_MAX], size_t nskip, char (*qids)[MC_QID_MAX],
	    size_t max, int64_t *next_due);
/* Every message's qid, size and state, in qid order. cb returns non-zero to stop. */
int qdb_foreach(struct qdb *db, int (*cb)(void *arg, const char *qid, uint64_t size, enum q_mstate st), void *arg);
/* Make deferred recipients whose last error is last_error due at when (resolverd is back). */
int qdb_reschedule(struct qdb *db, const char *last_error, int64_t when);
/* Count rows (tests, status): recipients in state st (or all when st < 0). */
long qdb_count_rcpts(struct qdb *db, int st);
long qdb_count_messages(struct qdb *db);
/* The connection, for control.c's queries and changes inside a lane job. */
struct sqlite3 *qdb_sqlite(struct qdb *db);

/* ---- qdb.c: the writer lane, on the loop thread ---- */

/*
 * Jobs queued while a transaction runs form the next one: one BEGIN ...
 * COMMIT (one fsync of the WAL) for many commits and outcomes. Each job
 * runs in its own savepoint, so one job's failure does not undo the rest.
 */
struct q_job {
	int (*pre)(struct q_job *j);                 /* worker, before the transaction; -1 skips run */
	int (*run)(struct qdb *db, struct q_job *j); /* worker, inside the transaction */
	void (*post)(struct q_job *j, int status);   /* worker, after COMMIT (0) or a failure (-1) */
	void (*done)(struct q_job *j, int status);   /* loop */
	int status;
	struct q_job *next;
};

struct q_lane {
	uv_loop_t *loop;
	struct qdb *db;
	struct q_job *pending, **ptail;
	struct q_job *running;
	uv_work_t work;
	bool busy;
	unsigned batches, jobs;      /* counters for tests and tracing */
};

void q_lane_init(struct q_lane *l, uv_loop_t *loop, struct qdb *db);
void q_lane_submit(struct q_lane *l, struct q_job *j);
bool q_lane_idle(const struct q_lane *l);

/* ---- check.c ---- */

struct q_check_stats {
	unsigned incoming_removed;   /* never committed */
	unsigned orphans_removed;    /* bodies without an envelope */
	unsigned corrupt;            /* envelopes without a readable body */
	unsigned messages;           /* envelopes that are fine */
};

/* The start-up check of queue_dir (incoming/, active/) against db. Blocking; before the loop runs. */
int q_check_run(const char *queue_dir, struct qdb *db, struct q_check_stats *st, char *err, size_t errsz);

/* ---- the daemon ---- */

struct q_sub;
struct q_submit;
struct q_deliver;
struct q_ctl;
struct q_spool;
struct q_relay;

struct queued {
	struct mc_daemon *d;
	uv_loop_t *loop;
	char qdir[MC_PATH_MAX];
	char incoming[MC_PATH_MAX + 16];
	char active[MC_PATH_MAX + 16];
	char mail_root[MC_PATH_MAX + 16];   /* state_dir/mail: every Maildir must be under it */
	int qdir_fd;
	struct q_spool *spool;
	struct qdb *db;
	struct q_lane lane;
	struct mc_resolver *res;
	struct mc_chan_server *srv;
	unsigned smtpd_peers;
	bool stopping;
	bool paused;                 /* postern queue pause: no delivery round starts (accepting goes on) */

	/* control.c */
	struct q_ctl *ctl;

	/* submit.c: the bodies made ahead, the BEGINs waiting for one */
	struct q_submit *sub;

	/* deliver.c */
	struct q_deliver *dl;

	/* bounce.c: administrators' bounces waiting for their message to be read */
	struct q_bounce_req *bouncing;
	/* relay.c */
	struct q_relay *relay;

	/* sched.c */
	uv_timer_t tick;
	int64_t next_due;            /* earliest next_try known to be waiting in the database */
	bool db_pending;             /* committed work left in the database (in-flight limit) */
	bool loading;                /* a due-work query is in the lane */
	bool res_was_up;
};

/* spool.c */
/* A body file made ahead: active/<qid>, its name already durable, open write-only. */
struct q_body {
	char qid[MC_QID_MAX];
	int fd;
};
int q_spool_init(struct queued *q);
void q_spool_free(struct queued *q);
/*
 * worker: up to n new body files into out, each under a new qid in
 * active/ (spares first), then one fsync of active/ for all of them.
 * Returns how many (at least one), or -errno when none could be made.
 */
int q_spool_fill(struct queued *q, struct q_body *out, size_t n);
/* worker: close and remove bodies nobody committed; recycle: kept as spares (smtpd never had them). */
void q_spool_drop(struct queued *q, struct q_body *b, size_t n, bool recycle);
/* worker: the body at path (of qid, for the log) is not needed any more: kept as a spare, or unlinked. */
void q_spool_discard(struct queued *q, const char *path, const char *qid);
/* loop: the body of qid (its envelope deleted) goes the same way soon, with others in one threadpool item. */
void q_spool_discard_later(struct queued *q, const char *qid);

/* submit.c */
int q_submit_init(struct queued *q);
/* The daemon stops: waiting BEGINs get 451, the bodies made ahead go. */
void q_submit_stop(struct queued *q);
void q_submit_free(struct queued *q);
void q_submit_on_msg(struct queued *q, struct mc_chan *ch, struct mc_msg *m);
/* A peer finished HELLO: smtpd channels are what postern status counts as connections. */
void q_submit_on_up(struct queued *q, struct mc_chan *ch);
void q_submit_on_down(struct queued *q, struct mc_chan *ch);

/* deliver.c */
/* Copy in into out with control characters (CR, LF, ...) replaced: safe in a header line or a log line. */
char *q_sanitize(char *out, size_t outsz, const char *in);
int q_deliver_init(struct queued *q);
/* Take a message into a delivery round (its due recipients); false if the in-flight limit is reached. */
bool q_deliver_add(struct queued *q, struct q_msg *m);
bool q_deliver_has(struct queued *q, const char *qid);
size_t q_deliver_inflight(struct queued *q);
/* The qids in flight, sorted, into a malloc'd array (for qdb_due's skip list). */
size_t q_deliver_snapshot(struct queued *q, char (**out)[MC_QID_MAX]);
/* The message qid in flight, or NULL. */
struct q_msg *q_deliver_find(struct queued *q, const char *qid);
/* Take m into the in-flight table with no recipient to try, so its round ends at once (q_bounce_now). */
bool q_deliver_adopt(struct queued *q, struct q_msg *m);
/* Called by the tick: resolverd waits, idle stores. */
void q_deliver_tick(struct queued *q, double now);
void q_deliver_stop(struct queued *q);
void q_deliver_free(struct queued *q);

/* sched.c */
void q_sched_start(struct queued *q);
void q_sched_stop(struct queued *q);
/* New work is waiting in the database, or a deferral set an earlier next_try. */
void q_sched_kick(struct queued *q);
void q_sched_note_due(struct queued *q, int64_t next_try);
/*
 * When attempt number attempts (1 = the first failure) is retried:
 * retry_min doubling to retry_max, with jitter (q_backoff).
 */
int64_t q_sched_next_try(const struct mc_config *cfg, uint32_t attempts, int64_t now);
/* backoff.c */
/*
 * The delay before retry number attempts: d = min doubling (attempts - 1)
 * times, capped at max; then d spread by rnd over [d - d/4, d + d/4] and
 * kept within [min, max], so a queue of thousands that failed together
 * does not retry in one burst. Pure: rnd is any 32-bit random number.
 */
uint64_t q_backoff(uint64_t min, uint64_t max, uint32_t attempts, uint32_t rnd);

/* bounce.c */
struct q_report;
struct q_bounce_req;
/*
 * At the end of m's round (loop): apply an administrator's bounce, hold an
 * undeliverable report (a double bounce), and decide what m's sender must
 * be told of the recipients of this round: NULL when nothing. May change
 * recipients' states, so it runs before the round's outcome is counted.
 */
struct q_report *q_bounce_plan(struct queued *q, struct q_msg *m, double now);
/* worker (a threadpool item before the outcome's lane job): the report's body file made durable in active/ */
void q_bounce_pre(struct q_report *rep);
/* worker, inside the outcome's transaction: the report's envelope, the hold, the delay mark */
int q_bounce_run(struct qdb *db, struct q_report *rep);
/* worker, after the transaction: a report whose envelope did not commit loses its file */
void q_bounce_post(struct q_report *rep, int status);
/* loop: log, hand the report to delivery, free it */
void q_bounce_done(struct q_report *rep, int status);
/* Is an administrator's bounce of qid under way (delivery must not take the message)? */
bool q_bounce_busy(struct queued *q, const char *qid);
/* An administrator's bounce of a message in flight came after its round's plan: start it again. */
void q_bounce_again(struct queued *q, struct q_bounce_req *req);
/*
 * Return every recipient of qid that is not yet delivered or bounced to
 * its sender now (postern queue bounce): one report, the recipients marked
 * bounced, the message removed once all are final. Asynchronous: 0 when
 * under way (the outcome is logged), -1 for a malformed qid or while
 * stopping. The _cb form calls cb once with the number of recipients
 * bounced, or -1 when there is no such message or it failed.
 */
int q_bounce_now(struct queued *q, const char *qid, const char *reason);
int q_bounce_now_cb(struct queued *q, const char *qid, const char *reason,
		    void (*cb)(void *arg, const char *qid, int n), void *arg);

double q_now(void);

/* control.c: Q_CTL_* from the control socket (the daemon's on_ctl and on_ctl_down hooks). */
int q_ctl_init(struct queued *q);
void q_ctl_free(struct queued *q);
void q_ctl_on_msg(struct queued *q, struct mc_chan *ch, struct mc_msg *m);
void q_ctl_on_down(struct queued *q, struct mc_chan *ch);
/* Tell watchers (postern queue watch) of an event; qid "" for the queue as a whole. */
void q_ctl_event(struct queued *q, const char *qid, const char *rcpt, const char *what, const char *detail);
/* A round's outcome is committed: its recipients' new states, to watchers. */
void q_ctl_round_done(struct queued *q, const struct q_msg *m);

#endif
