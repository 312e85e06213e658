/*
 * submit.c - the Q_SUBMIT_* server for smtpd, and the group commit.
 *
 *   BEGIN   free space checked (452 4.3.1 below cfg min_free_space + the
 *           size hint), incoming/<qid> created O_EXCL mode 0600, its
 *           descriptor passed back with the qid. smtpd writes the body.
 *   COMMIT  the envelope. Commits that arrive while a batch is in flight
 *           form the next batch: every body is checked (size), fsynced
 *           and renamed into active/ on the threadpool in parallel, then
 *           one lane job fsyncs active/ once and inserts every envelope in
 *           one transaction; only then each smtpd hears "committed" (and
 *           may answer 250), and the message goes to delivery.
 *   ABORT   (or the smtpd channel going down) the unfinished file goes.
 *
 * Owns the submissions between BEGIN and the reply to COMMIT. Never
 * replies "committed" before the envelope's transaction has committed;
 * never does file I/O on the loop thread (uv_fs_* and the threadpool).
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

/* New ids tried when a file with the id exists (it never should: ids are never reused). */
#define QID_TRIES 4

enum sub_state { SUB_OPENING, SUB_OPEN, SUB_COMMITTING };

struct q_peer;

struct q_sub {
	struct queued *q;
	struct q_peer *peer;         /* NULL once the channel is gone */
	struct q_sub *pnext;         /* in the peer's list */
	enum sub_state state;
	char qid[MC_QID_MAX];
	uint32_t begin_reqid;
	uint32_t commit_reqid;
	uv_work_t openreq;           /* the body file's creation (spool.c) */
	int open_result;             /* its fd, or -errno */
	int tries;                   /* ids left to try when one exists already */

	/* the commit */
	struct mc_envelope env;
	struct q_sub *bnext;         /* in a batch */
	struct q_batch *batch;
	uv_work_t work;
	int status;                  /* 0 ok, -1 failed (why in err) */
	bool renamed;                /* the body is in active/ */
	char err[160];
};

struct q_peer {
	struct mc_chan *ch;
	struct q_sub *subs;
	bool smtpd;
};

struct q_batch {
	struct q_job job;            /* first: the lane hands back this pointer */
	struct queued *q;
	struct q_sub *subs;
	size_t n, left;
	double now;
};

static void batch_start(struct queued *q);

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
sub_free(struct q_sub *s)
{
	peer_unlink(s);
	mc_envelope_free(&s->env);
	free(s);
}

static void
unlink_done(uv_fs_t *req)
{
	if (req->result < 0 && req->result != UV_ENOENT)
		mc_warn("queue: cannot remove %s: %s", req->path, uv_strerror((int)req->result));
	uv_fs_req_cleanup(req);
	free(req);
}

/* Remove a spool file without blocking the loop. */
static void
unlink_async(struct queued *q, const char *dir, const char *qid)
{
	char p[MC_PATH_MAX + 64];
	snprintf(p, sizeof(p), "%s/%s", dir, qid);
	uv_fs_t *req = malloc(sizeof(*req));
	if (req == NULL)
		mc_panic("out of memory");
	if (uv_fs_unlink(q->loop, req, p, unlink_done) < 0) {
		mc_warn("%s: cannot remove %s", qid, p);
		free(req);
	}
}

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

static void begin_open(struct q_sub *s);

/* worker */
static void
begin_work(uv_work_t *w)
{
	struct q_sub *s = w->data;
	s->open_result = q_spool_open(s->q, s->qid);
}

static void
begin_opened(uv_work_t *w, int status)
{
	struct q_sub *s = w->data;
	struct queued *q = s->q;
	int fd = status < 0 ? status : s->open_result;

	if (fd == -EEXIST && s->tries > 0 && s->peer) {
		/* ids are never reused: an existing file means take the next id */
		mc_qid_new(s->qid);
		begin_open(s);
		return;
	}
	if (s->peer == NULL) {
		/* smtpd went away meanwhile */
		if (fd >= 0) {
			close(fd);
			unlink_async(q, q->incoming, s->qid);
		}
		sub_free(s);
		return;
	}
	struct mc_chan *ch = s->peer->ch;
	if (fd < 0) {
		mc_error("%s: cannot create queue file: %s", s->qid, strerror(-fd));
		reply_error(ch, s->begin_reqid, MC_MSG_Q_SUBMIT_BEGIN, 451, "4.3.0 Cannot create queue file");
		sub_free(s);
		return;
	}
	s->state = SUB_OPEN;
	if (mc_queue_reply_begin(ch, s->begin_reqid, s->qid, fd) < 0) {
		unlink_async(q, q->incoming, s->qid);
		sub_free(s);
		return;
	}
	mc_trace(MC_TRACE_QUEUE, "%s: submission opened for %s", s->qid, mc_chan_peer_name(ch));
}

static void
begin_open(struct q_sub *s)
{
	s->tries--;
	s->openreq.data = s;
	int r = uv_queue_work(s->q->loop, &s->openreq, begin_work, begin_opened);
	if (r < 0) {
		s->tries = 0;
		s->open_result = r;
		begin_opened(&s->openreq, 0);
	}
}

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
	mc_envelope_init(&s->env);
	s->peer = peer_of(q, ch);
	s->pnext = s->peer->subs;
	s->peer->subs = s;
	s->state = SUB_OPENING;
	s->begin_reqid = m->reqid;
	mc_qid_new(s->qid);
	s->tries = QID_TRIES;
	begin_open(s);
}

/* ---- COMMIT: the batch ---- */

/* worker: check, fsync and move one body into active/ */
static void
body_work(uv_work_t *w)
{
	struct q_sub *s = w->data;
	struct queued *q = s->q;
	char from[MC_PATH_MAX + 64], to[MC_PATH_MAX + 64];
	snprintf(from, sizeof(from), "%s/%s", q->incoming, s->qid);
	snprintf(to, sizeof(to), "%s/%s", q->active, s->qid);
	int fd = open(from, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	if (fd < 0) {
		snprintf(s->err, sizeof(s->err), "open: %s", strerror(errno));
	} else if (fstat(fd, &sb) < 0) {
		snprintf(s->err, sizeof(s->err), "fstat: %s", strerror(errno));
	} else if ((uint64_t)sb.st_size != s->env.size) {
		snprintf(s->err, sizeof(s->err), "body has %llu bytes, the envelope says %llu",
			 (unsigned long long)sb.st_size, (unsigned long long)s->env.size);
	} else if (fsync(fd) < 0) {
		snprintf(s->err, sizeof(s->err), "fsync: %s", strerror(errno));
	} else if (rename(from, to) < 0) {
		snprintf(s->err, sizeof(s->err), "rename into active/: %s", strerror(errno));
	} else {
		s->renamed = true;
	}
	if (fd >= 0)
		close(fd);
	if (!s->renamed) {
		s->status = -1;
		unlink(from);
	}
}

/* worker: one fsync of active/ makes every rename of the batch durable */
static int
batch_pre(struct q_job *j)
{
	struct q_batch *b = (struct q_batch *)j;
	bool any = false;
	for (struct q_sub *s = b->subs; s; s = s->bnext)
		any |= s->renamed;
	if (!any)
		return -1;
	if (mc_fsync_dir(b->q->active) < 0) {
		for (struct q_sub *s = b->subs; s; s = s->bnext) {
			if (s->status == 0) {
				s->status = -1;
				snprintf(s->err, sizeof(s->err), "fsync active/: %s", strerror(errno));
			}
		}
		return -1;
	}
	return 0;
}

/* worker, inside the lane's transaction */
static int
batch_run(struct qdb *db, struct q_job *j)
{
	struct q_batch *b = (struct q_batch *)j;
	for (struct q_sub *s = b->subs; s; s = s->bnext) {
		if (s->status != 0)
			continue;
		if (qdb_savepoint(db) < 0 || qdb_insert(db, &s->env, b->now) < 0) {
			snprintf(s->err, sizeof(s->err), "queue database: %s", qdb_errmsg(db));
			qdb_rollback_to(db);
			s->status = -1;
			continue;
		}
		qdb_release(db);
	}
	return 0;
}

/* worker: a body whose envelope did not commit must not stay in active/ */
static void
batch_post(struct q_job *j, int status)
{
	struct q_batch *b = (struct q_batch *)j;
	char p[MC_PATH_MAX + 64];
	for (struct q_sub *s = b->subs; s; s = s->bnext) {
		if (status != 0 && s->status == 0) {
			s->status = -1;
			snprintf(s->err, sizeof(s->err), "queue database commit failed");
		}
		if (s->status != 0 && s->renamed) {
			snprintf(p, sizeof(p), "%s/%s", b->q->active, s->qid);
			unlink(p);
			s->renamed = false;
		}
	}
}

/* loop: answer smtpd, hand the messages to delivery */
static void
batch_done(struct q_job *j, int status)
{
	struct q_batch *b = (struct q_batch *)j;
	struct queued *q = b->q;
	(void)status;
	struct q_sub *s = b->subs;
	while (s) {
		struct q_sub *next = s->bnext;
		struct mc_chan *ch = s->peer ? s->peer->ch : NULL;
		if (s->status == 0) {
			char client[256];
			mc_info("%s: accepted from=<%s> size=%llu nrcpt=%u client=%s", s->qid, s->env.sender,
				(unsigned long long)s->env.size, s->env.nrcpt,
				q_sanitize(client, sizeof(client), s->env.client));
			if (ch)
				mc_queue_reply_commit(ch, s->commit_reqid);
			q_ctl_event(q, s->qid, NULL, "queued", s->env.sender);
			struct q_msg *m = q_msg_new(&s->env, b->now);
			if (!q_deliver_add(q, m)) {
				q_msg_free(m);
				q->db_pending = true;
			}
		} else {
			mc_error("%s: commit failed: %s", s->qid, s->err);
			reply_error(ch, s->commit_reqid, MC_MSG_Q_SUBMIT_COMMIT, 451, "4.3.0 Queue write failed");
		}
		sub_free(s);
		s = next;
	}
	free(b);
	q->batch_running = false;
	batch_start(q);
}

static void
body_after(uv_work_t *w, int status)
{
	struct q_sub *s = w->data;
	struct q_batch *b = s->batch;
	if (status != 0 && s->status == 0) {
		s->status = -1;
		snprintf(s->err, sizeof(s->err), "cancelled");
	}
	if (s->status != 0 && s->err[0])
		mc_error("%s: cannot make the body durable: %s", s->qid, s->err);
	if (--b->left > 0)
		return;
	b->now = q_now();
	b->job.pre = batch_pre;
	b->job.run = batch_run;
	b->job.post = batch_post;
	b->job.done = batch_done;
	q_lane_submit(&b->q->lane, &b->job);
}

static void
batch_start(struct queued *q)
{
	if (q->batch_running || q->next_batch == NULL)
		return;
	struct q_batch *b = calloc(1, sizeof(*b));
	if (b == NULL)
		mc_panic("out of memory");
	b->q = q;
	b->subs = q->next_batch;
	b->n = b->left = q->next_n;
	q->next_batch = NULL;
	q->next_tail = &q->next_batch;
	q->next_n = 0;
	q->batch_running = true;
	mc_trace(MC_TRACE_QUEUE, "queue: group commit of %zu message(s)", b->n);
	for (struct q_sub *s = b->subs; s; s = s->bnext) {
		s->batch = b;
		s->work.data = s;
		if (uv_queue_work(q->loop, &s->work, body_work, body_after) != 0)
			mc_panic("uv_queue_work failed");
	}
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
		unlink_async(q, q->incoming, s->qid);
		sub_free(s);
		return;
	}
	s->env = env;
	s->state = SUB_COMMITTING;
	s->commit_reqid = m->reqid;
	s->bnext = NULL;
	*q->next_tail = s;
	q->next_tail = &s->bnext;
	q->next_n++;
	batch_start(q);
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
	unlink_async(q, q->incoming, s->qid);
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
		if (s->state == SUB_OPEN) {
			/* never committed: the file goes */
			mc_info("%s: submission dropped, smtpd went away", s->qid);
			unlink_async(q, q->incoming, s->qid);
			sub_free(s);
		}
		/* OPENING: begin_opened cleans up; COMMITTING: the batch finishes, nobody hears the reply */
	}
	if (p->smtpd && q->smtpd_peers > 0) {
		q->smtpd_peers--;
		q->d->connections = q->smtpd_peers;
	}
	free(p);
}
