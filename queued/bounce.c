/*
 * bounce.c - what a message's sender is told, and when a report itself
 * cannot be delivered.
 *
 * At the end of every delivery round (deliver.c's finish_round, for local
 * and remote outcomes alike) q_bounce_plan looks at the recipients the
 * round concluded and decides on one RFC 3464 report for the message:
 * failures (NOTIFY default or FAILURE), successes (NOTIFY=SUCCESS, when no
 * remote MTA reports them itself), and once per message a delay warning
 * after [queued] delay_warning_time (NOTIFY default or DELAY). The report
 * is a message of its own from <> to the sender, written by
 * libmailcore's mc_dsn_write into a new queue file (fsynced, renamed into
 * active/, active/ fsynced) before the round's transaction, and its
 * envelope is inserted in the SAME transaction that marks the recipients
 * bounced: a bounce is queued before its recipient is marked done, and
 * never without it. If the file cannot be written the failed recipients
 * stay deferred and are tried again; nothing is marked done unreported.
 *
 * Never a report to the null sender (RFC 5321 §6.1, RFC 3834): that is
 * logged. A report that cannot be delivered itself (a double bounce) is
 * held for the administrator with the reason, never bounced again.
 *
 * q_bounce_now (postern queue bounce) returns every recipient not yet
 * final of one message: a message in flight gets the request at its
 * round's end; one in the database is read through the lane and taken
 * into flight with no recipient to try, so the same end-of-round path
 * does the work. Owns the reports between plan and done and the
 * administrators' requests; runs on the loop except the functions marked
 * "worker", which touch only their report and its message (owned by the
 * outcome job while it is in the lane).
 */
#include "queued/queued.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/dsn.h"
#include "mail/qid.h"
#include "util/fsutil.h"
#include "util/log.h"

#define REPORT_MAX_FULL (512u * 1024)    /* RET=FULL returns a message up to this size, else its headers */
#define REPORT_MAX_HEADERS (64u * 1024)  /* the returned header block */

struct q_bounce_req {
	struct queued *q;
	char qid[MC_QID_MAX];
	char reason[Q_ERR_MAX];
	void (*cb)(void *arg, const char *qid, int n);
	void *arg;
	struct q_bounce_req *next;   /* in q->bouncing while its message is read */
};

struct rep_rcpt {
	uint32_t idx;
	enum mc_dsn_action action;
	char status[12];
	char reason[Q_ERR_MAX];
	char remote[256];
	char diag[Q_ERR_MAX];
	bool smtp;                   /* diag is an SMTP reply */
	int64_t last_attempt, retry_until;
};

struct q_report {
	struct queued *q;
	struct q_msg *m;
	double now;
	struct rep_rcpt *rr;         /* the recipients the report is about */
	size_t n, cap;
	bool failures, delay, success;
	bool expired;                /* a recipient bounced for its age: logged as Postfix does */
	bool hold;                   /* m is an undeliverable report: held */
	char hold_why[Q_ERR_MAX + 64];
	struct q_bounce_req *req;    /* the administrator's bounce this round answers */
	int nbounced;                /* recipients bounced by req */
	struct mc_envelope env;      /* the report's own envelope */
	bool written;                /* its body is durable in active/ */
	bool reverted;               /* the body could not be written: failures stay deferred */
	char err[200];
};

/* ---- planning (loop) ---- */

static struct q_report *
rep_get(struct q_report **rp, struct queued *q, struct q_msg *m, double now)
{
	if (*rp == NULL) {
		struct q_report *rep = calloc(1, sizeof(*rep));
		if (rep == NULL)
			mc_panic("out of memory");
		rep->q = q;
		rep->m = m;
		rep->now = now;
		mc_envelope_init(&rep->env);
		*rp = rep;
	}
	return *rp;
}

/* The token starting with key ("host=") in why, at its start or after a space; NULL when none. */
static const char *
token(const char *why, const char *key)
{
	for (const char *p = strstr(why, key); p; p = strstr(p + 1, key))
		if (p == why || p[-1] == ' ')
			return p;
	return NULL;
}

static bool
smtp_reply(const char *s)
{
	return s[0] >= '2' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9' &&
	       (s[3] == ' ' || s[3] == '-' || s[3] == '\0');
}

/*
 * Read a failure's reason (x->reason) in the forms deliver.c's relay
 * accounting and a Postfix-minded reader write, after any prefix such as
 * "message expired after 5 days in the queue: ":
 *   "host=NAME[addr]:port dsn=5.1.1 reply=550 5.1.1 <x>: unknown"
 *   "dsn=5.1.2 reply=Host or domain name not found"     (no server reached)
 *   "host NAME[addr] said: 550 5.1.1 <x>: unknown (in reply to RCPT TO command)"
 * into the remote MTA's name (x->remote), its reply (x->diag; x->smtp when
 * it is an SMTP reply, three digits first, rather than the client's own
 * words such as "lost connection ..."), the status the relay gave, and
 * x->reason reworded for people ("host NAME[addr]:port said: REPLY").
 */
static void
read_reason(struct rep_rcpt *x, char *status, size_t statussz)
{
	char why[Q_ERR_MAX];
	snprintf(why, sizeof(why), "%s", x->reason);
	const char *h = token(why, "host="), *d = token(why, "dsn="), *rp = token(why, "reply=");
	const char *at = h ? h : d;
	if (at && rp && rp > at) {
		const char *reply = rp + 6;
		if (d)
			mc_dsn_status_of(d + 4, status, statussz);
		snprintf(x->diag, sizeof(x->diag), "%s", reply);
		x->smtp = smtp_reply(reply);
		char relay[300] = "";
		if (h) {
			size_t n = strcspn(h + 5, " ");
			snprintf(relay, sizeof(relay), "%.*s", (int)(n < 299 ? n : 299), h + 5);
			size_t k = strcspn(relay, "[:");
			if (k > 0 && k < sizeof(x->remote))
				snprintf(x->remote, sizeof(x->remote), "%.*s", (int)k, relay);
		}
		int plen = (int)(at - why);
		if (relay[0])
			snprintf(x->reason, sizeof(x->reason), "%.*shost %s%s %s", plen, why, relay,
				 x->smtp ? " said:" : ":", reply);
		else
			snprintf(x->reason, sizeof(x->reason), "%.*s%s", plen, why, reply);
		return;
	}
	const char *p = strstr(why, "host ");
	const char *said = p ? strstr(p, " said: ") : NULL;
	if (said == NULL)
		return;
	size_t n = strcspn(p + 5, "[ ");
	if (n == 0 || n >= sizeof(x->remote) || p + 5 + n > said)
		return;
	snprintf(x->remote, sizeof(x->remote), "%.*s", (int)n, p + 5);
	snprintf(x->diag, sizeof(x->diag), "%s", said + 7);
	x->smtp = smtp_reply(said + 7);
}

/* The status: the recipient's own, the relay's, a code at the start of the reason, or in the reply. */
static void
status_of(const struct q_rcpt *r, const char *why, const char *relay_status, const char *diag, const char *dflt,
	  char *out, size_t outsz)
{
	if (mc_dsn_status_of(r->status, out, outsz) || mc_dsn_status_of(relay_status, out, outsz) ||
	    mc_dsn_status_of(why, out, outsz))
		return;
	/* "550 5.1.1 text": the enhanced code after the reply code */
	if (strlen(diag) > 4 && diag[3] == ' ' && mc_dsn_status_of(diag + 4, out, outsz))
		return;
	snprintf(out, outsz, "%s", dflt);
}

static void
rep_add(struct q_report *rep, const struct q_rcpt *r, enum mc_dsn_action action, const char *dflt_status,
	int64_t last_attempt)
{
	if (rep->n == rep->cap) {
		size_t nc = rep->cap ? rep->cap * 2 : 4;
		struct rep_rcpt *p = realloc(rep->rr, nc * sizeof(*p));
		if (p == NULL)
			mc_panic("out of memory");
		rep->rr = p;
		rep->cap = nc;
	}
	struct rep_rcpt *x = &rep->rr[rep->n++];
	memset(x, 0, sizeof(*x));
	x->idx = (uint32_t)(r - rep->m->rs);
	x->action = action;
	x->last_attempt = last_attempt;
	if (action == MC_DSN_DELIVERED || action == MC_DSN_RELAYED) {
		snprintf(x->status, sizeof(x->status), "%s", dflt_status);
		snprintf(x->reason, sizeof(x->reason), "%s",
			 action == MC_DSN_DELIVERED ? "delivered to the mailbox" : "relayed to a system that does not report");
		return;
	}
	char relay_status[12] = "";
	snprintf(x->reason, sizeof(x->reason), "%s", r->last_error);
	read_reason(x, relay_status, sizeof(relay_status));
	status_of(r, r->last_error, relay_status, x->diag, dflt_status, x->status, sizeof(x->status));
}

static bool
notify_allows(uint32_t notify, uint32_t what)
{
	if (notify & MC_NOTIFY_NEVER)
		return false;
	/* none given: FAILURE and DELAY (RFC 3461 §4.1 leaves the default to the MTA) */
	if ((notify & (MC_NOTIFY_SUCCESS | MC_NOTIFY_FAILURE | MC_NOTIFY_DELAY)) == 0)
		return what != MC_NOTIFY_SUCCESS;
	return (notify & what) != 0;
}

/* The administrator's bounce: every recipient not yet final is bounced now. */
static void
apply_req(struct q_report *rep, struct q_msg *m)
{
	for (uint32_t i = 0; i < m->env.nrcpt; i++) {
		struct q_rcpt *r = &m->rs[i];
		if (r->state == Q_R_DELIVERED || r->state == Q_R_BOUNCED || r->in_round)
			continue;
		r->state = Q_R_BOUNCED;
		snprintf(r->last_error, sizeof(r->last_error), "%s", rep->req->reason);
		snprintf(r->status, sizeof(r->status), "5.0.0");
		r->changed = true;
		r->abandoned = false;
		rep->nbounced++;
		mc_info("%s: to=<%s> relay=none status=bounced (%s)", m->env.qid, m->env.rcpt[i].addr, r->last_error);
	}
}

struct q_report *
q_bounce_plan(struct queued *q, struct q_msg *m, double now)
{
	const struct mc_config *cfg = &q->d->cfg;
	struct q_report *rep = NULL;
	int64_t t = (int64_t)now;
	bool is_report = (m->env.flags & MC_ENV_DSN) != 0;
	bool null_sender = m->env.sender[0] == '\0';
	bool told_null = false;

	if (m->bounce_req) {
		rep_get(&rep, q, m, now)->req = m->bounce_req;
		m->bounce_req = NULL;
		apply_req(rep, m);
	}
	for (uint32_t i = 0; i < m->env.nrcpt; i++) {
		struct q_rcpt *r = &m->rs[i];
		const char *addr = m->env.rcpt[i].addr;
		uint32_t notify = m->env.rcpt[i].notify;
		if (!r->changed || r->abandoned)
			continue;
		if (r->state == Q_R_BOUNCED) {
			/* an administrator's bounce is final whoever the message is from */
			bool by_admin = rep && rep->req;
			if (is_report && !by_admin) {
				/* a report that cannot be delivered: kept for the administrator, never bounced */
				struct q_report *x = rep_get(&rep, q, m, now);
				x->hold = true;
				snprintf(x->hold_why, sizeof(x->hold_why),
					 "undeliverable delivery status notification (double bounce): %s", r->last_error);
				r->state = Q_R_DEFERRED;
				r->next_try = t;
				continue;
			}
			if (null_sender) {
				if (!told_null)
					mc_info("%s: from=<> to=<%s>: no non-delivery notification to the null sender",
						m->env.qid, addr);
				told_null = true;
				continue;
			}
			if (!notify_allows(notify, MC_NOTIFY_FAILURE)) {
				mc_info("%s: to=<%s>: no non-delivery notification (%s)", m->env.qid, addr,
					(notify & MC_NOTIFY_NEVER) ? "NOTIFY=NEVER" : "NOTIFY leaves out FAILURE");
				continue;
			}
			struct q_report *x = rep_get(&rep, q, m, now);
			rep_add(x, r, MC_DSN_FAILED, "5.0.0", by_admin ? 0 : t);
			x->failures = true;
			x->expired |= strcmp(r->status, "4.4.7") == 0;
		} else if (r->state == Q_R_DELIVERED && !null_sender && !is_report &&
			   (notify & MC_NOTIFY_SUCCESS) && !(r->remote && r->remote_dsn)) {
			struct q_report *x = rep_get(&rep, q, m, now);
			rep_add(x, r, r->remote ? MC_DSN_RELAYED : MC_DSN_DELIVERED, "2.0.0", t);
			x->success = true;
		}
	}
	/* a delay warning, once per message, naming every recipient still waiting */
	unsigned warn_after = cfg->queued.delay_warning_time;
	if (warn_after && !null_sender && !is_report && m->warned == 0 && t - m->env.arrival >= (int64_t)warn_after &&
	    m->state == Q_M_ACTIVE) {
		bool any = false;
		for (uint32_t i = 0; i < m->env.nrcpt; i++) {
			struct q_rcpt *r = &m->rs[i];
			if (r->state != Q_R_DEFERRED || !notify_allows(m->env.rcpt[i].notify, MC_NOTIFY_DELAY))
				continue;
			struct q_report *x = rep_get(&rep, q, m, now);
			rep_add(x, r, MC_DSN_DELAYED, "4.0.0", r->attempts ? t : 0);
			x->rr[x->n - 1].retry_until = m->env.arrival + (int64_t)cfg->queued.max_queue_lifetime;
			any = true;
		}
		if (any) {
			rep->delay = true;
			m->warned = t;
		}
	}
	if (rep == NULL)
		return NULL;
	if (rep->n) {
		struct mc_envelope *e = &rep->env;
		mc_qid_new(e->qid);
		e->sender[0] = '\0';
		e->flags = MC_ENV_DSN;
		e->arrival = t;
		snprintf(e->client, sizeof(e->client), "queued [report on %s]", m->env.qid);
		if (mc_envelope_add_rcpt(e, m->env.sender, "", MC_NOTIFY_NEVER, 1) < 0)
			mc_panic("envelope: cannot add the report's recipient");
	}
	if (rep->hold)
		m->all_final = false;
	return rep;
}

/* ---- the report's body (worker) ---- */

struct fdw {
	int fd;
	uint64_t n;
};

static int
fd_write(void *arg, const void *p, size_t n)
{
	struct fdw *w = arg;
	if (mc_write_all(w->fd, p, n) < 0)
		return -1;
	w->n += n;
	return 0;
}

/* worker: the report as a queue file, durable in active/ before its envelope commits */
static int
write_report(struct q_report *rep)
{
	struct queued *q = rep->q;
	struct q_msg *m = rep->m;
	char tmp[MC_PATH_MAX + 64], dst[MC_PATH_MAX + 64], src[MC_PATH_MAX + 64];
	snprintf(tmp, sizeof(tmp), "%s/%s", q->incoming, rep->env.qid);
	snprintf(dst, sizeof(dst), "%s/%s", q->active, rep->env.qid);
	snprintf(src, sizeof(src), "%s/%s", q->active, m->env.qid);

	struct mc_dsn_rcpt *dr = calloc(rep->n, sizeof(*dr));
	if (dr == NULL) {
		snprintf(rep->err, sizeof(rep->err), "out of memory");
		return -1;
	}
	for (size_t i = 0; i < rep->n; i++) {
		const struct rep_rcpt *x = &rep->rr[i];
		dr[i].final = m->env.rcpt[x->idx].addr;
		dr[i].orcpt = m->env.rcpt[x->idx].orcpt;
		dr[i].action = x->action;
		dr[i].status = x->status;
		dr[i].reason = x->reason;
		dr[i].remote_mta = x->remote[0] ? x->remote : NULL;
		dr[i].diag_type = x->smtp ? "smtp" : "X-Postern";
		dr[i].diag = x->diag[0] ? x->diag : NULL;
		dr[i].last_attempt = x->last_attempt;
		dr[i].retry_until = x->retry_until;
	}
	struct mc_dsn d = {
		.reporting_mta = q->d->cfg.global.hostname,
		.sender = m->env.sender,
		.envid = m->env.envid,
		.qid = m->env.qid,
		.report_id = rep->env.qid,
		.arrival = m->env.arrival,
		.now = (int64_t)rep->now,
		.ret_full = (m->env.flags & MC_ENV_RET_FULL) != 0,
		.max_full = REPORT_MAX_FULL,
		.max_headers = REPORT_MAX_HEADERS,
		.rcpt = dr,
		.nrcpt = rep->n,
	};
	int rc = -1;
	int in = open(src, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	uint64_t in_size = 0;
	if (in >= 0 && fstat(in, &sb) == 0)
		in_size = (uint64_t)sb.st_size < m->env.size ? (uint64_t)sb.st_size : m->env.size;
	int out = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	struct fdw w = { .fd = out };
	if (out < 0) {
		snprintf(rep->err, sizeof(rep->err), "cannot create incoming/%s: %s", rep->env.qid, strerror(errno));
	} else if (mc_dsn_write(&d, in, in_size, fd_write, &w) < 0) {
		snprintf(rep->err, sizeof(rep->err), "cannot write the report: %s", strerror(errno));
	} else if (fsync(out) < 0) {
		snprintf(rep->err, sizeof(rep->err), "fsync: %s", strerror(errno));
	} else if (rename(tmp, dst) < 0) {
		snprintf(rep->err, sizeof(rep->err), "rename into active/: %s", strerror(errno));
	} else if (mc_fsync_dir(q->active) < 0) {
		snprintf(rep->err, sizeof(rep->err), "fsync active/: %s", strerror(errno));
		unlink(dst);
	} else {
		rc = 0;
	}
	if (out >= 0) {
		close(out);
		if (rc < 0)
			unlink(tmp);
	}
	if (in >= 0)
		close(in);
	free(dr);
	rep->env.size = w.n;
	return rc;
}

void
q_bounce_pre(struct q_report *rep)
{
	if (rep->n == 0)
		return;
	if (write_report(rep) == 0) {
		rep->written = true;
		return;
	}
	/* nothing is marked done unreported: the failures wait and are tried again */
	struct q_msg *m = rep->m;
	int64_t t = (int64_t)rep->now;
	for (size_t i = 0; i < rep->n; i++) {
		if (rep->rr[i].action != MC_DSN_FAILED)
			continue;
		struct q_rcpt *r = &m->rs[rep->rr[i].idx];
		r->state = Q_R_DEFERRED;
		r->next_try = t + (int64_t)rep->q->d->cfg.queued.retry_min;
		r->changed = true;
		m->all_final = false;
	}
	rep->delay = false;
	rep->reverted = true;
}

int
q_bounce_run(struct qdb *db, struct q_report *rep)
{
	struct q_msg *m = rep->m;
	if (rep->written) {
		if (qdb_insert(db, &rep->env, rep->now) < 0)
			return -1;
		char detail[64];
		snprintf(detail, sizeof(detail), "report=%s", rep->env.qid);
		if (qdb_event(db, m->env.qid, rep->now, NULL, "notified", detail) < 0)
			return -1;
		if (rep->delay && qdb_set_warned(db, m->env.qid, (int64_t)rep->now) < 0)
			return -1;
	}
	if (rep->hold && qdb_set_state(db, m->env.qid, Q_M_HELD, rep->hold_why, rep->now) < 0)
		return -1;
	return 0;
}

void
q_bounce_post(struct q_report *rep, int status)
{
	if (status == 0 || !rep->written)
		return;
	char p[MC_PATH_MAX + 64];
	snprintf(p, sizeof(p), "%s/%s", rep->q->active, rep->env.qid);
	unlink(p);
	rep->written = false;
}

/* ---- the end (loop) ---- */

static void
req_finish(struct q_bounce_req *req, int n)
{
	if (req->cb)
		req->cb(req->arg, req->qid, n);
	free(req);
}

void
q_bounce_done(struct q_report *rep, int status)
{
	struct queued *q = rep->q;
	struct q_msg *m = rep->m;
	if (rep->reverted)
		mc_error("%s: cannot queue the delivery status notification (%s); the failed recipients stay deferred",
			 m->env.qid, rep->err);
	if (status == 0 && rep->expired && !rep->reverted)
		mc_info("%s: from=<%s> status=expired, returned to sender", m->env.qid, m->env.sender);
	if (status == 0 && rep->written) {
		const char *what = rep->failures ? "non-delivery" : rep->delay ? "delay" : "delivery status";
		mc_info("%s: sender %s notification: %s", m->env.qid, what, rep->env.qid);
		mc_info("%s: from=<> size=%llu nrcpt=1 (report on %s)", rep->env.qid, (unsigned long long)rep->env.size,
			m->env.qid);
		struct q_msg *bm = q_msg_new(&rep->env, rep->now);
		if (!q_deliver_add(q, bm)) {
			q_msg_free(bm);
			q->db_pending = true;
		}
	}
	if (status == 0 && rep->hold)
		mc_error("%s: %s: held for the administrator", m->env.qid, rep->hold_why);
	if (rep->req) {
		if (status == 0 && !rep->reverted)
			mc_notice("%s: returned to sender by the administrator: %d recipient(s) bounced", m->env.qid,
				  rep->nbounced);
		req_finish(rep->req, status == 0 && !rep->reverted ? rep->nbounced : -1);
	}
	mc_envelope_free(&rep->env);
	free(rep->rr);
	free(rep);
}

/* ---- q_bounce_now ---- */

struct load_job {
	struct q_job job;
	struct q_bounce_req *req;
	struct q_msg *m;
};

static int
load_run(struct qdb *db, struct q_job *j)
{
	struct load_job *l = (struct load_job *)j;
	int err;
	l->m = qdb_load(db, l->req->qid, &err);
	return err < 0 ? -1 : 0;
}

static void
busy_remove(struct queued *q, struct q_bounce_req *req)
{
	for (struct q_bounce_req **pp = &q->bouncing; *pp; pp = &(*pp)->next) {
		if (*pp == req) {
			*pp = req->next;
			break;
		}
	}
	req->next = NULL;
}

static void
load_done(struct q_job *j, int status)
{
	struct load_job *l = (struct load_job *)j;
	struct q_bounce_req *req = l->req;
	struct queued *q = req->q;
	struct q_msg *m = l->m;
	busy_remove(q, req);
	free(l);
	if (status != 0 || m == NULL || q->stopping) {
		if (status != 0)
			mc_error("%s: bounce requested: cannot read the message from the queue database", req->qid);
		else if (m == NULL)
			mc_warn("%s: bounce requested: no such message in the queue", req->qid);
		q_msg_free(m);
		req_finish(req, -1);
		return;
	}
	struct q_msg *cur = q_deliver_find(q, req->qid);
	if (cur) {
		/* taken into flight meanwhile (it cannot be: q_bounce_busy keeps it out); its round applies it */
		q_msg_free(m);
		if (cur->bounce_req == NULL) {
			cur->bounce_req = req;
			return;
		}
		req_finish(req, -1);
		return;
	}
	m->bounce_req = req;
	if (!q_deliver_adopt(q, m)) {
		q_msg_free(m);   /* frees req */
		mc_error("%s: bounce requested: the message cannot be taken now", req->qid);
	}
}

static void
start_load(struct queued *q, struct q_bounce_req *req)
{
	struct load_job *l = calloc(1, sizeof(*l));
	if (l == NULL)
		mc_panic("out of memory");
	l->req = req;
	req->next = q->bouncing;
	q->bouncing = req;
	l->job.run = load_run;
	l->job.done = load_done;
	q_lane_submit(&q->lane, &l->job);
}

bool
q_bounce_busy(struct queued *q, const char *qid)
{
	for (struct q_bounce_req *r = q->bouncing; r; r = r->next)
		if (strcmp(r->qid, qid) == 0)
			return true;
	return false;
}

void
q_bounce_again(struct queued *q, struct q_bounce_req *req)
{
	if (q->stopping) {
		req_finish(req, -1);
		return;
	}
	start_load(q, req);
}

int
q_bounce_now_cb(struct queued *q, const char *qid, const char *reason, void (*cb)(void *arg, const char *qid, int n),
		void *arg)
{
	if (!mc_qid_valid(qid) || q->stopping)
		return -1;
	struct q_msg *m = q_deliver_find(q, qid);
	if ((m && m->bounce_req) || q_bounce_busy(q, qid))
		return -1;   /* one at a time per message */
	struct q_bounce_req *req = calloc(1, sizeof(*req));
	if (req == NULL)
		mc_panic("out of memory");
	req->q = q;
	snprintf(req->qid, sizeof(req->qid), "%s", qid);
	q_sanitize(req->reason, sizeof(req->reason),
		   reason && reason[0] ? reason : "returned to sender by the mail system administrator");
	req->cb = cb;
	req->arg = arg;
	mc_info("%s: bounce requested (%s)", qid, req->reason);
	if (m) {
		/* in flight: its round's end applies it (or hands it back, when its outcome is being written) */
		m->bounce_req = req;
		return 0;
	}
	start_load(q, req);
	return 0;
}

int
q_bounce_now(struct queued *q, const char *qid, const char *reason)
{
	return q_bounce_now_cb(q, qid, reason, NULL, NULL);
}
