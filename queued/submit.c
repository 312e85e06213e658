/*
 * submit.c - the Q_SUBMIT_* server for smtpd, and the group commit.
 *
 *   BEGIN   free space checked (452 4.3.1 below cfg min_free_space + the
 *           size hint), then a body file made ahead (spool.c: active/<qid>,
 *           mode 0600, its name already durable) is passed back with its
 *           qid at once; when none is left the BEGIN waits for the next
 *           fill. queued keeps its own descriptor of the file. smtpd
 *           writes the body.
 *   COMMIT  the envelope. The body is checked (size) and fsynced on the
 *           threadpool at once, side by side with the other sessions'
 *           bodies; then the envelope goes to the lane, whose next
 *           transaction takes every job waiting: a group commit that
 *           closes as soon as the previous transaction is on disk, never
 *           on a timer. Only after that COMMIT each smtpd hears
 *           "committed" (and may answer 250), and the message goes to
 *           delivery.
 *   ABORT   (or the smtpd channel going down) the unfinished file goes.
 *
 * So a 250 comes after: the body's name durable (before the body was
 * handed out), the body fsynced, the envelope's transaction committed.
 *
 * Owns the submissions between BEGIN and the reply to COMMIT, and the
 * bodies made ahead. Never replies "committed" before the envelope's
 * transaction has committed; never does file I/O on the loop thread
 * (uv_fs_* and the threadpool).
 */
#include "queued/queued.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/qid.h"
#include "mail/queue_client.h"
#include "util/fsutil.h"
#include "util/log.h"

/*
 * Bodies made per fill, and the floor below which the next fill starts:
 * a burst of BEGINs at 20-odd sessions finds one ready, and a fill's one
 * fsync of active/ is shared by this many files.
 */
#define FILL_MIN 32
#define FILL_MAX 128             /* when more BEGINs are waiting than that, the next fill makes more */
#define POOL_RING (2 * FILL_MAX)

enum sub_state { SUB_WAITING, SUB_OPEN, SUB_SYNCING, SUB_COMMITTING };

struct q_peer;

struct q_sub {
	struct q_job job;            /* first: the lane hands back this pointer */
	struct queued *q;
	struct q_peer *peer;         /* NULL once the channel is gone */
	struct q_sub *pnext;         /* in the peer's list */
	struct q_sub *wnext;         /* in the list of BEGINs waiting for a body */
	enum sub_state state;
	char qid[MC_QID_MAX];
	int fd;                      /* queued's own descriptor of the body, until it is fsynced */
	uint32_t begin_reqid;
	uint32_t commit_reqid;

	/* the commit */
	struct mc_envelope env;
	uv_work_t work;
	double now;
	int status;                  /* 0 ok, -1 failed (why in err) */
	char err[160];
};

struct q_peer {
	struct mc_chan *ch;
	struct q_sub *subs;
	bool smtpd;
};

/* A fill of the pool, on the threadpool. */
struct q_fill {
	uv_work_t w;
	struct queued *q;
	size_t want;
	int got;                     /* bodies made, or -errno */
	struct q_body b[FILL_MAX];
};

/* Bodies dropped on the threadpool (at stop, or made after the stop). */
struct q_drop {
	uv_work_t w;
	struct queued *q;
	bool recycle;                /* never handed out: may become spares */
	size_t n;
	struct q_body b[];
};

struct q_submit {
	struct q_body pool[POOL_RING];   /* ready bodies, oldest (smallest qid) first */
	size_t head, n;
	struct q_sub *waiting, **wtail;  /* BEGINs without a body yet, in arrival order */
	size_t nwaiting;
	bool filling;
	unsigned fills, committed;       /* counters for tracing */
};

static void fill_kick(struct queued *q);

static struct q_peer *
peer_of(struct queued *q, struct mc_chan *ch)
{
	struct q_peer *p = mc_chan_get_data(ch);
	if (p == NULL) {
		p = calloc(1, sizeof(*p));
		if (p == NULL)
			mc_panic("out of memory");
		p->ch = ch;
		mc_chan_set_data(ch, p);
		if (mc_chan_peer_role(ch) == MC_ROLE_SMTPD) {
			p->smtpd = true;
			q->smtpd_peers++;
			q->d->connections = q->smtpd_peers;
		}
	}
	return p;
}

static struct q_sub *
find_sub(struct q_peer *p, const char *qid)
{
	for (struct q_sub *s = p->subs; s; s = s->pnext)
		if (strcmp(s->qid, qid) == 0)
			return s;
	return NULL;
}

static void
reply_error(struct mc_chan *ch, uint32_t reqid, uint16_t type, unsigned code, const char *text)
{
	if (ch)
		mc_chan_reply_error(ch, reqid, type, code, text);
}

/* ---- BEGIN ---- */

/* ---- bodies: dropped, made ahead ---- */

static void
drop_work(uv_work_t *w)
{
	struct q_drop *d = w->data;
	q_spool_drop(d->q, d->b, d->n, d->recycle);
}

static void
drop_done(uv_work_t *w, int status)
{
	(void)status;
	free(w->data);
}

/*
 * Close and discard bodies nobody will commit, on the threadpool. Only a
 * body smtpd never had may become a spare: an smtpd that still holds its
 * descriptor (a session cut off from queued) must not write into the body
 * of another message.
 */
static void
drop_async(struct queued *q, const struct q_body *b, size_t n, bool recycle)
{
	if (n == 0)
		return;
	struct q_drop *d = malloc(sizeof(*d) + n * sizeof(*b));
	if (d == NULL)
		mc_panic("out of memory");
	d->q = q;
	d->recycle = recycle;
	d->n = n;
	memcpy(d->b, b, n * sizeof(*b));
	d->w.data = d;
	if (uv_queue_work(q->loop, &d->w, drop_work, drop_done) != 0)
		mc_panic("uv_queue_work failed");
}

static void
drop_one(struct queued *q, const char *qid, int fd)
{
	struct q_body b;
	snprintf(b.qid, sizeof(b.qid), "%s", qid);
	b.fd = fd;
	drop_async(q, &b, 1, false);
}

static void
peer_unlink(struct q_sub *s)
{
	if (s->peer == NULL)
		return;
	for (struct q_sub **pp = &s->peer->subs; *pp; pp = &(*pp)->pnext) {
		if (*pp == s) {
			*pp = s->pnext;
			break;
		}
	}
	s->peer = NULL;
	s->pnext = NULL;
}

static void
waiting_unlink(struct queued *q, struct q_sub *s)
{
	struct q_submit *sb = q->sub;
	for (struct q_sub **pp = &sb->waiting; *pp; pp = &(*pp)->wnext) {
		if (*pp == s) {
			*pp = s->wnext;
			if (*pp == NULL)
				sb->wtail = pp;
			sb->nwaiting--;
			break;
		}
	}
	s->wnext = NULL;
}

/* Forget a submission; a body it still holds open (never committed) goes. */
static void
sub_free(struct q_sub *s)
{
	peer_unlink(s);
	if (s->state == SUB_WAITING)
		waiting_unlink(s->q, s);
	if (s->fd >= 0)
		drop_one(s->q, s->qid, s->fd);
	mc_envelope_free(&s->env);
	free(s);
}

/* Give s a body and tell smtpd: smtpd gets a descriptor of its own. */
static void
begin_reply(struct queued *q, struct q_sub *s, const struct q_body *b)
{
	snprintf(s->qid, sizeof(s->qid), "%s", b->qid);
	s->fd = b->fd;
	s->state = SUB_OPEN;
	int theirs = dup(s->fd);
	if (theirs < 0) {
		mc_error("%s: cannot pass the queue file: %s", s->qid, strerror(errno));
		reply_error(s->peer->ch, s->begin_reqid, MC_MSG_Q_SUBMIT_BEGIN, 451, "4.3.0 Cannot create queue file");
		sub_free(s);
		return;
	}
	if (mc_queue_reply_begin(s->peer->ch, s->begin_reqid, s->qid, theirs) < 0) {
		sub_free(s);
		return;
	}
	mc_trace(MC_TRACE_QUEUE, "%s: submission opened for %s", s->qid, mc_chan_peer_name(s->peer->ch));
	(void)q;
}

static bool
pool_pop(struct q_submit *sb, struct q_body *b)
{
	if (sb->n == 0)
		return false;
	*b = sb->pool[sb->head];
	sb->head = (sb->head + 1) % POOL_RING;
	sb->n--;
	return true;
}

/* worker */
static void
fill_work(uv_work_t *w)
{
	struct q_fill *f = w->data;
	f->got = q_spool_fill(f->q, f->b, f->want);
}

static void
fill_done(uv_work_t *w, int status)
{
	struct q_fill *f = w->data;
	struct queued *q = f->q;
	struct q_submit *sb = q->sub;
	size_t got = status == 0 && f->got > 0 ? (size_t)f->got : 0;
	sb->filling = false;
	sb->fills++;
	if (q->stopping) {
		drop_async(q, f->b, got, true);
		free(f);
		return;
	}
	mc_trace(MC_TRACE_QUEUE, "queue: %zu body file(s) made ahead (fill %u)", got, sb->fills);
	size_t i = 0;
	/* the oldest BEGINs first, then the pool (ids stay in the order they were made) */
	while (i < got && sb->waiting) {
		struct q_sub *s = sb->waiting;
		waiting_unlink(q, s);
		begin_reply(q, s, &f->b[i++]);
	}
	while (i < got) {
		sb->pool[(sb->head + sb->n) % POOL_RING] = f->b[i++];
		sb->n++;
	}
	if (got == 0) {
		/* nothing could be made (the log says why): the waiting clients try again later */
		while (sb->waiting) {
			struct q_sub *s = sb->waiting;
			waiting_unlink(q, s);
			reply_error(s->peer ? s->peer->ch : NULL, s->begin_reqid, MC_MSG_Q_SUBMIT_BEGIN, 451,
				    "4.3.0 Cannot create queue file");
			sub_free(s);
		}
		free(f);
		return;   /* the next BEGIN tries again */
	}
	free(f);
	fill_kick(q);
}

/* Start a fill when the pool runs low or BEGINs wait, one at a time. */
static void
fill_kick(struct queued *q)
{
	struct q_submit *sb = q->sub;
	if (sb->filling || q->stopping || (sb->n >= FILL_MIN / 2 && sb->nwaiting == 0))
		return;
	size_t want = FILL_MIN;
	if (sb->nwaiting > want)
		want = sb->nwaiting;
	if (want > FILL_MAX)
		want = FILL_MAX;
	if (want > POOL_RING - sb->n)
		want = POOL_RING - sb->n;
	if (want == 0)
		return;
	struct q_fill *f = calloc(1, sizeof(*f));
	if (f == NULL)
		mc_panic("out of memory");
	f->q = q;
	f->want = want;
	f->w.data = f;
	sb->filling = true;
	if (uv_queue_work(q->loop, &f->w, fill_work, fill_done) != 0)
		mc_panic("uv_queue_work failed");
}

/* ---- BEGIN ---- */

static void
on_begin(struct queued *q, struct mc_chan *ch, struct mc_msg *m)
{
	uint64_t hint;
	char client[256];
	if (mc_queue_req_begin(m, &hint, client, sizeof(client)) < 0) {
		mc_warn("queue: malformed Q_SUBMIT_BEGIN from %s", mc_chan_peer_name(ch));
		reply_error(ch, m->reqid, m->type, 451, "4.3.0 Malformed request");
		return;
	}
	if (q->stopping) {
		reply_error(ch, m->reqid, m->type, 451, "4.3.0 Queue manager is stopping");
		return;
	}
	uint64_t avail;
	uint64_t need = q->d->cfg.queued.min_free_space + hint;
	if (mc_fs_free(q->qdir_fd, &avail) == 0 && avail < need) {
		char c[128];
		mc_warn("queue: refusing a submission: free=%llu needed=%llu client=%s", (unsigned long long)avail,
			(unsigned long long)need, q_sanitize(c, sizeof(c), client));
		reply_error(ch, m->reqid, m->type, 452, "4.3.1 Insufficient system storage");
		return;
	}
	struct q_sub *s = calloc(1, sizeof(*s));
	if (s == NULL)
		mc_panic("out of memory");
	s->q = q;
	s->fd = -1;
	mc_envelope_init(&s->env);
	s->peer = peer_of(q, ch);
	s->pnext = s->peer->subs;
	s->peer->subs = s;
	s->begin_reqid = m->reqid;
	struct q_submit *sb = q->sub;
	struct q_body b;
	if (sb->waiting == NULL && pool_pop(sb, &b)) {
		begin_reply(q, s, &b);
	} else {
		s->state = SUB_WAITING;
		*sb->wtail = s;
		sb->wtail = &s->wnext;
		sb->nwaiting++;
	}
	fill_kick(q);
}

/* ---- COMMIT: the body on the threadpool, the envelope in the lane ---- */

/* worker: check and fsync the body (its name in active/ is durable already) */
static void
body_work(uv_work_t *w)
{
	struct q_sub *s = w->data;
	struct stat st;
	if (fstat(s->fd, &st) < 0) {
		snprintf(s->err, sizeof(s->err), "fstat: %s", strerror(errno));
	} else if ((uint64_t)st.st_size != s->env.size) {
		snprintf(s->err, sizeof(s->err), "body has %llu bytes, the envelope says %llu",
			 (unsigned long long)st.st_size, (unsigned long long)s->env.size);
	} else if (fsync(s->fd) < 0) {
		snprintf(s->err, sizeof(s->err), "fsync: %s", strerror(errno));
	} else {
		close(s->fd);
		s->fd = -1;
		return;
	}
	s->status = -1;   /* sub_free drops the file */
}

/* worker, inside the lane's transaction (in a savepoint of its own) */
static int
sub_run(struct qdb *db, struct q_job *j)
{
	struct q_sub *s = (struct q_sub *)j;
	if (qdb_insert(db, &s->env, s->now) < 0) {
		snprintf(s->err, sizeof(s->err), "queue database: %s", qdb_errmsg(db));
		return -1;
	}
	return 0;
}

/* worker: a body whose envelope did not commit must not stay in active/ */
static void
sub_post(struct q_job *j, int status)
{
	struct q_sub *s = (struct q_sub *)j;
	if (status == 0)
		return;
	if (s->err[0] == '\0')
		snprintf(s->err, sizeof(s->err), "queue database commit failed");
	char p[MC_PATH_MAX + 64];
	snprintf(p, sizeof(p), "%s/%s", s->q->active, s->qid);
	q_spool_discard(s->q, p, s->qid);
}

/* loop: answer smtpd, hand the message to delivery */
static void
sub_done(struct q_job *j, int status)
{
	struct q_sub *s = (struct q_sub *)j;
	struct queued *q = s->q;
	struct mc_chan *ch = s->peer ? s->peer->ch : NULL;
	if (status == 0) {
		char client[256];
		q->sub->committed++;
		mc_info("%s: accepted from=<%s> size=%llu nrcpt=%u client=%s", s->qid, s->env.sender,
			(unsigned long long)s->env.size, s->env.nrcpt, q_sanitize(client, sizeof(client), s->env.client));
		if (ch)
			mc_queue_reply_commit(ch, s->commit_reqid);
		q_ctl_event(q, s->qid, NULL, "queued", s->env.sender);
		struct q_msg *m = q_msg_new(&s->env, s->now);
		if (!q_deliver_add(q, m)) {
			q_msg_free(m);
			q->db_pending = true;
		}
	} else {
		mc_error("%s: commit failed: %s", s->qid, s->err);
		reply_error(ch, s->commit_reqid, MC_MSG_Q_SUBMIT_COMMIT, 451, "4.3.0 Queue write failed");
	}
	sub_free(s);
}

static void
body_after(uv_work_t *w, int status)
{
	struct q_sub *s = w->data;
	if (status != 0 && s->status == 0) {
		s->status = -1;
		snprintf(s->err, sizeof(s->err), "cancelled");
	}
	if (s->status != 0) {
		mc_error("%s: cannot make the body durable: %s", s->qid, s->err);
		reply_error(s->peer ? s->peer->ch : NULL, s->commit_reqid, MC_MSG_Q_SUBMIT_COMMIT, 451,
			    "4.3.0 Queue write failed");
		sub_free(s);
		return;
	}
	s->state = SUB_COMMITTING;
	s->now = q_now();
	s->job.pre = NULL;
	s->job.run = sub_run;
	s->job.post = sub_post;
	s->job.done = sub_done;
	q_lane_submit(&s->q->lane, &s->job);
}

static void
on_commit(struct queued *q, struct mc_chan *ch, struct mc_msg *m)
{
	struct mc_envelope env;
	mc_envelope_init(&env);
	unsigned max = q->d->cfg.smtpd.max_recipients > 100 ? q->d->cfg.smtpd.max_recipients : 100;
	if (mc_envelope_get(m, &env, max) < 0) {
		mc_warn("queue: malformed Q_SUBMIT_COMMIT from %s", mc_chan_peer_name(ch));
		reply_error(ch, m->reqid, m->type, 451, "4.3.0 Malformed envelope");
		mc_envelope_free(&env);
		return;
	}
	struct q_peer *p = peer_of(q, ch);
	struct q_sub *s = mc_qid_valid(env.qid) ? find_sub(p, env.qid) : NULL;
	if (s == NULL || s->state != SUB_OPEN) {
		char qid[MC_QID_MAX];
		mc_warn("%s: commit of an unknown submission from %s", mc_log_clean(qid, sizeof(qid), env.qid,
										    strlen(env.qid)),
			mc_chan_peer_name(ch));
		reply_error(ch, m->reqid, m->type, 451, "4.3.0 No such submission");
		mc_envelope_free(&env);
		return;
	}
	if (env.nrcpt == 0 || q->stopping) {
		reply_error(ch, m->reqid, m->type, 451,
			    q->stopping ? "4.3.0 Queue manager is stopping" : "4.3.0 No recipients");
		mc_envelope_free(&env);
		sub_free(s);
		return;
	}
	s->env = env;
	s->state = SUB_SYNCING;
	s->commit_reqid = m->reqid;
	s->work.data = s;
	if (uv_queue_work(q->loop, &s->work, body_work, body_after) != 0)
		mc_panic("uv_queue_work failed");
}

static void
on_abort(struct queued *q, struct mc_chan *ch, struct mc_msg *m)
{
	char qid[MC_QID_MAX];
	if (mc_queue_req_abort(m, qid, sizeof(qid)) < 0 || !mc_qid_valid(qid))
		return;
	struct q_sub *s = find_sub(peer_of(q, ch), qid);
	if (s == NULL || s->state != SUB_OPEN)
		return;
	mc_trace(MC_TRACE_QUEUE, "%s: submission aborted", qid);
	sub_free(s);
}

void
q_submit_on_msg(struct queued *q, struct mc_chan *ch, struct mc_msg *m)
{
	switch (m->type) {
	case MC_MSG_Q_SUBMIT_BEGIN:
		on_begin(q, ch, m);
		break;
	case MC_MSG_Q_SUBMIT_COMMIT:
		on_commit(q, ch, m);
		break;
	case MC_MSG_Q_SUBMIT_ABORT:
		on_abort(q, ch, m);
		break;
	default:
		if (!(m->flags & MC_MSG_F_NOREPLY) && !(m->flags & MC_MSG_F_REPLY))
			mc_chan_reply_error(ch, m->reqid, m->type, 451, "4.3.0 Not handled by queued");
		break;
	}
}

void
q_submit_on_up(struct queued *q, struct mc_chan *ch)
{
	peer_of(q, ch);
	if (mc_chan_peer_role(ch) == MC_ROLE_SMTPD)
		fill_kick(q);   /* the first MAIL finds a body ready */
}

void
q_submit_on_down(struct queued *q, struct mc_chan *ch)
{
	struct q_peer *p = mc_chan_get_data(ch);
	if (p == NULL)
		return;
	mc_chan_set_data(ch, NULL);
	while (p->subs) {
		struct q_sub *s = p->subs;
		p->subs = s->pnext;
		s->peer = NULL;
		s->pnext = NULL;
		if (s->state == SUB_OPEN || s->state == SUB_WAITING) {
			/* never committed: the file goes */
			if (s->state == SUB_OPEN)
				mc_info("%s: submission dropped, smtpd went away", s->qid);
			sub_free(s);
		}
		/* SYNCING, COMMITTING: the commit finishes, nobody hears the reply */
	}
	if (p->smtpd && q->smtpd_peers > 0) {
		q->smtpd_peers--;
		q->d->connections = q->smtpd_peers;
	}
	free(p);
}

int
q_submit_init(struct queued *q)
{
	struct q_submit *sb = calloc(1, sizeof(*sb));
	if (sb == NULL)
		return -1;
	sb->wtail = &sb->waiting;
	q->sub = sb;
	return 0;
}

void
q_submit_stop(struct queued *q)
{
	struct q_submit *sb = q->sub;
	if (sb == NULL)
		return;
	while (sb->waiting) {
		struct q_sub *s = sb->waiting;
		reply_error(s->peer ? s->peer->ch : NULL, s->begin_reqid, MC_MSG_Q_SUBMIT_BEGIN, 451,
			    "4.3.0 Queue manager is stopping");
		sub_free(s);
	}
	struct q_body b[POOL_RING];
	size_t n = 0;
	while (pool_pop(sb, &b[n]))
		n++;
	drop_async(q, b, n, true);
}

void
q_submit_free(struct queued *q)
{
	free(q->sub);
	q->sub = NULL;
}
