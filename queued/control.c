/*
 * control.c - queued's part of `postern queue ...`: the Q_CTL_* messages
 * that reach run_dir/queued.ctl (admin group only: chan.c checks the
 * sender's role before mc_daemon hands them to the on_ctl hook here).
 *
 *   LIST, SHOW, SUMMARY  read-only: one query at a time on the threadpool
 *                        with control's own read-only connection (WAL: it
 *                        reads a snapshot while the lane writes, so a
 *                        listing of 100,000 messages holds up no commit);
 *                        the SQL is in qview.c
 *   ACT                  flush, hold, release, delete: one lane job selects
 *                        the messages and changes them in the writer's
 *                        transaction; the body files of deleted messages go
 *                        after the commit; then the log lines, the replies,
 *                        and a kick of the scheduler. bounce: the lane job
 *                        selects, then bounce.c's q_bounce_now_cb returns
 *                        each message to its sender, and the reply waits for
 *                        every one of them
 *   PAUSE                q->paused: no message starts a delivery round
 *                        (sched.c loads nothing, q_deliver_add refuses);
 *                        accepting goes on and rounds already running end
 *   WATCH                the channel gets a Q_CTL_EVENT notice for every
 *                        queue event (q_ctl_event) until it closes
 *
 * Owns the read connection, the requests in progress (forgotten, not
 * answered, when their channel goes away) and the watchers. Runs on the
 * loop thread except the work callbacks marked "worker".
 */
#include "queued/control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/proto.h"
#include "util/log.h"

#define LIST_PAGE_MAX 5000
#define BUSY_TIMEOUT_MS 10000

struct req {
	struct q_ctl *c;
	struct mc_chan *ch;          /* NULL once the channel is gone */
	uint32_t reqid;
	uint16_t type;
	struct req *prev, *next;     /* requests in progress */
};

/* A read-only query on the threadpool. */
struct rjob {
	struct req r;
	uv_work_t w;
	struct mc_qctl_filter f;
	char after[MC_QID_MAX];
	uint32_t max;
	char qid[MC_QID_MAX];
	bool body;
	struct mc_msg out;
	int status;                  /* 0 answered in out, 1 no such message, -1 failed */
	struct rjob *qnext;
};

/* An action in the lane. */
struct ajob {
	struct q_job job;            /* first: the lane hands back this pointer */
	struct req r;
	uint32_t action;
	struct mc_qctl_filter f;
	struct qv_sel *sel;
	size_t n;
	double now;
	unsigned waiting;            /* bounce: q_bounce_now_cb calls not answered yet (+1 while starting them) */
	int status;
};

struct watcher {
	struct mc_chan *ch;
	struct watcher *next;
};

struct q_ctl {
	struct queued *q;
	char dbpath[MC_PATH_MAX + 32];
	sqlite3 *rdb;                /* worker only, one job at a time */
	struct rjob *rq_head, **rq_tail;
	bool rbusy;
	struct req *reqs;
	struct watcher *watchers;
};

static void read_next(struct q_ctl *c);

static void
req_start(struct q_ctl *c, struct req *r, struct mc_chan *ch, struct mc_msg *m)
{
	r->c = c;
	r->ch = ch;
	r->reqid = m->reqid;
	r->type = m->type;
	r->prev = NULL;
	r->next = c->reqs;
	if (c->reqs)
		c->reqs->prev = r;
	c->reqs = r;
}

static void
req_end(struct req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		r->c->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

static void
refuse(struct mc_chan *ch, struct mc_msg *m, uint32_t code, const char *why)
{
	if (ch && !(m->flags & MC_MSG_F_NOREPLY))
		mc_chan_reply_error(ch, m->reqid, m->type, code, why);
}

/* ---- read-only queries ---- */

/* worker */
static void
read_work(uv_work_t *w)
{
	struct rjob *j = w->data;
	struct q_ctl *c = j->r.c;
	j->status = -1;
	mc_msg_init(&j->out, j->r.type);
	if (c->rdb == NULL) {
		if (sqlite3_open_v2(c->dbpath, &c->rdb, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
			mc_error("queue control: cannot open %s: %s", c->dbpath,
				 c->rdb ? sqlite3_errmsg(c->rdb) : "out of memory");
			sqlite3_close(c->rdb);
			c->rdb = NULL;
			return;
		}
		sqlite3_busy_timeout(c->rdb, BUSY_TIMEOUT_MS);
	}
	/* one snapshot for the whole answer */
	if (sqlite3_exec(c->rdb, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return;
	switch (j->r.type) {
	case MC_MSG_Q_CTL_LIST:
		j->status = qv_list(c->rdb, &j->f, j->after, j->max, &j->out);
		break;
	case MC_MSG_Q_CTL_SHOW:
		j->status = qv_show(c->rdb, c->q->active, j->qid, j->body, &j->out);
		break;
	case MC_MSG_Q_CTL_SUMMARY:
		j->status = qv_summary(c->rdb, &j->f, &j->out);
		break;
	}
	sqlite3_exec(c->rdb, "COMMIT", NULL, NULL, NULL);
}

static void
read_after(uv_work_t *w, int status)
{
	struct rjob *j = w->data;
	struct q_ctl *c = j->r.c;
	c->rbusy = false;
	req_end(&j->r);
	if (status != 0)
		j->status = -1;
	if (j->r.ch == NULL)
		mc_msg_free(&j->out);
	else if (j->status == 0)
		mc_chan_reply(j->r.ch, j->r.reqid, &j->out);
	else {
		mc_msg_free(&j->out);
		if (j->status == 1)
			mc_chan_reply_error(j->r.ch, j->r.reqid, j->r.type, MC_QCTL_E_NOTFOUND, "no such message");
		else
			mc_chan_reply_error(j->r.ch, j->r.reqid, j->r.type, MC_QCTL_E_FAILED,
					    "cannot read the queue database (see queued's log)");
	}
	free(j);
	read_next(c);
}

static void
read_next(struct q_ctl *c)
{
	if (c->rbusy || c->rq_head == NULL)
		return;
	struct rjob *j = c->rq_head;
	c->rq_head = j->qnext;
	if (c->rq_head == NULL)
		c->rq_tail = &c->rq_head;
	c->rbusy = true;
	j->w.data = j;
	if (uv_queue_work(c->q->loop, &j->w, read_work, read_after) != 0)
		mc_panic("uv_queue_work failed");
}

static void
read_request(struct q_ctl *c, struct mc_chan *ch, struct mc_msg *m)
{
	struct rjob *j = calloc(1, sizeof(*j));
	if (j == NULL)
		mc_panic("out of memory");
	int rc = -1;
	switch (m->type) {
	case MC_MSG_Q_CTL_LIST:
		rc = mc_qctl_get_list_req(m, &j->f, j->after, sizeof(j->after), &j->max);
		if (j->max == 0 || j->max > LIST_PAGE_MAX)
			j->max = LIST_PAGE_MAX;
		break;
	case MC_MSG_Q_CTL_SHOW:
		rc = mc_qctl_get_show_req(m, j->qid, sizeof(j->qid), &j->body);
		break;
	case MC_MSG_Q_CTL_SUMMARY:
		rc = mc_qctl_get_summary_req(m, &j->f);
		break;
	}
	if (rc < 0) {
		free(j);
		refuse(ch, m, MC_QCTL_E_REFUSED, "malformed request");
		return;
	}
	req_start(c, &j->r, ch, m);
	*c->rq_tail = j;
	c->rq_tail = &j->qnext;
	read_next(c);
}

/* ---- actions, in the lane ---- */

static int
set_next_try(sqlite3 *db, const char *qid, int64_t when)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "UPDATE recipients SET next_try = ? WHERE qid = ? AND state = 'deferred'", -1, &st,
			       NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, when);
	sqlite3_bind_text(st, 2, qid, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static void
result(struct qv_sel *s, bool changed, const char *what)
{
	s->changed = changed;
	snprintf(s->result, sizeof(s->result), "%s", what);
}

/* worker, inside the lane's transaction */
static int
act_one(struct qdb *db, struct ajob *a, struct qv_sel *s)
{
	bool active = strcmp(s->state, "active") == 0, held = strcmp(s->state, "held") == 0;
	switch (a->action) {
	case MC_QCTL_HOLD:
		if (!active) {
			result(s, false, held ? "already held" : "corrupt: left as it is");
			return 0;
		}
		result(s, true, "held");
		return qdb_set_state(db, s->qid, Q_M_HELD, "by admin", a->now);
	case MC_QCTL_RELEASE:
		if (!held) {
			result(s, false, "not held");
			return 0;
		}
		result(s, true, "released");
		if (qdb_set_state(db, s->qid, Q_M_ACTIVE, "released by admin", a->now) < 0)
			return -1;
		return set_next_try(qdb_sqlite(db), s->qid, (int64_t)a->now);
	case MC_QCTL_FLUSH:
		if (!active) {
			result(s, false, held ? "held: not flushed" : "corrupt: not flushed");
			return 0;
		}
		result(s, true, "flush requested");
		if (set_next_try(qdb_sqlite(db), s->qid, (int64_t)a->now) < 0)
			return -1;
		return qdb_event(db, s->qid, a->now, NULL, "flush", "requested by admin");
	case MC_QCTL_DELETE:
		result(s, true, "removed");
		return qdb_delete(db, s->qid);
	case MC_QCTL_BOUNCE:
		/* bounce.c does the work, from the loop (act_done) */
		if (!active && !held)
			result(s, false, "corrupt: not bounced");
		else
			result(s, true, "bounce requested");
		return 0;
	default:
		result(s, false, "not done");
		return 0;
	}
}

/* worker */
static int
act_run(struct qdb *db, struct q_job *j)
{
	struct ajob *a = (struct ajob *)j;
	if (qv_select(qdb_sqlite(db), &a->f, &a->sel, &a->n) < 0)
		return -1;
	for (size_t i = 0; i < a->n; i++)
		if (act_one(db, a, &a->sel[i]) < 0)
			return -1;
	return 0;
}

/*
 * worker, after the commit: the body files of removed messages. Unlinked,
 * not kept as spares (spool.c truncates those): a message removed while
 * its round delivers it may have its body open in a delivery, which must
 * read the whole body or fail, never a truncated one.
 */
static void
act_post(struct q_job *j, int status)
{
	struct ajob *a = (struct ajob *)j;
	struct queued *q = a->r.c->q;
	if (status != 0 || a->action != MC_QCTL_DELETE)
		return;
	char p[MC_PATH_MAX + 64];
	for (size_t i = 0; i < a->n; i++) {
		snprintf(p, sizeof(p), "%s/%s", q->active, a->sel[i].qid);
		if (unlink(p) < 0 && errno != ENOENT)
			mc_warn("%s: cannot remove the queue file: %s", a->sel[i].qid, strerror(errno));
	}
}

static void
act_reply(struct ajob *a, int status)
{
	struct mc_chan *ch = a->r.ch;
	if (ch == NULL)
		return;
	if (status != 0) {
		mc_chan_reply_error(ch, a->r.reqid, a->r.type, MC_QCTL_E_FAILED,
				    "the queue database refused the change (see queued's log); nothing was changed");
		return;
	}
	if (a->f.qid[0] && a->n == 0) {
		mc_chan_reply_error(ch, a->r.reqid, a->r.type, MC_QCTL_E_NOTFOUND, "no such message");
		return;
	}
	uint32_t changed = 0, listed = 0;
	size_t bytes = 64;
	for (size_t i = 0; i < a->n; i++) {
		changed += a->sel[i].changed;
		if (bytes < MC_QCTL_REPLY_BUDGET) {
			bytes += 10 + strlen(a->sel[i].qid) + strlen(a->sel[i].result);
			listed++;
		}
	}
	struct mc_msg r;
	mc_msg_init(&r, a->r.type);
	mc_qctl_put_act_head(&r, (uint32_t)a->n, changed, listed);
	for (uint32_t i = 0; i < listed; i++)
		mc_qctl_put_act_result(&r, a->sel[i].qid, a->sel[i].result);
	mc_chan_reply(ch, a->r.reqid, &r);
}

static void
act_finish(struct ajob *a)
{
	req_end(&a->r);
	act_reply(a, a->status);
	free(a->sel);
	free(a);
}

static int
sel_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct qv_sel *)elem)->qid);
}

/* bounce.c's answer for one message: n recipients returned, or -1. */
static void
bounce_cb(void *arg, const char *qid, int n)
{
	struct ajob *a = arg;
	struct qv_sel *s = bsearch(qid, a->sel, a->n, sizeof(*a->sel), sel_cmp);
	if (s != NULL) {
		if (n >= 0)
			snprintf(s->result, sizeof(s->result), "returned to sender (%d recipient%s)", n, n == 1 ? "" : "s");
		else
			result(s, false, "not bounced: gone meanwhile, or the bounce failed (see queued's log)");
	}
	if (--a->waiting == 0)
		act_finish(a);
}

static void
bounce_start(struct ajob *a)
{
	struct queued *q = a->r.c->q;
	a->waiting = 1;
	for (size_t i = 0; i < a->n; i++) {
		struct qv_sel *s = &a->sel[i];
		if (!s->changed)
			continue;
		a->waiting++;
		q_ctl_event(q, s->qid, NULL, "bounce", "requested by admin");
		if (q_bounce_now_cb(q, s->qid, "returned to sender by the mail system administrator", bounce_cb, a) < 0) {
			a->waiting--;
			result(s, false, "not bounced: a bounce of it is under way, or queued is stopping");
		}
	}
	if (--a->waiting == 0)
		act_finish(a);
}

static void
act_done(struct q_job *j, int status)
{
	struct ajob *a = (struct ajob *)j;
	struct queued *q = a->r.c->q;
	bool kick = false;
	a->status = status;
	for (size_t i = 0; status == 0 && i < a->n; i++) {
		struct qv_sel *s = &a->sel[i];
		if (!s->changed)
			continue;
		switch (a->action) {
		case MC_QCTL_HOLD:
			mc_info("%s: held by admin", s->qid);
			q_ctl_event(q, s->qid, NULL, "held", "by admin");
			break;
		case MC_QCTL_RELEASE:
			mc_info("%s: released", s->qid);
			q_ctl_event(q, s->qid, NULL, "released", "by admin");
			kick = true;
			break;
		case MC_QCTL_FLUSH:
			mc_info("%s: flush requested", s->qid);
			q_ctl_event(q, s->qid, NULL, "flush", "requested by admin");
			kick = true;
			break;
		case MC_QCTL_DELETE:
			mc_info("%s: removed by admin", s->qid);
			q_ctl_event(q, s->qid, NULL, "removed", "by admin");
			break;
		}
	}
	if (status != 0)
		mc_error("queue control: %s failed; nothing was changed", mc_qctl_action_name(a->action));
	if (kick) {
		/* due now: the next look at the database takes them (the lane ran this after any earlier load) */
		q_sched_note_due(q, (int64_t)a->now);
		q->db_pending = true;
		q_sched_kick(q);
	}
	if (status == 0 && a->action == MC_QCTL_BOUNCE)
		bounce_start(a);   /* answers once every bounce has */
	else
		act_finish(a);
}

static void
act_request(struct q_ctl *c, struct mc_chan *ch, struct mc_msg *m)
{
	struct ajob *a = calloc(1, sizeof(*a));
	if (a == NULL)
		mc_panic("out of memory");
	if (mc_qctl_get_act_req(m, &a->action, &a->f) < 0) {
		free(a);
		refuse(ch, m, MC_QCTL_E_REFUSED, "malformed request");
		return;
	}
	if (mc_qctl_filter_empty(&a->f) && !a->f.all) {
		free(a);
		refuse(ch, m, MC_QCTL_E_REFUSED, "give a queue id, a filter, or ALL");
		return;
	}
	req_start(c, &a->r, ch, m);
	a->now = q_now();
	a->job.run = act_run;
	a->job.post = act_post;
	a->job.done = act_done;
	q_lane_submit(&c->q->lane, &a->job);
}

/* ---- pause, watch ---- */

static void
pause_request(struct q_ctl *c, struct mc_chan *ch, struct mc_msg *m)
{
	struct queued *q = c->q;
	bool pause;
	if (mc_qctl_get_pause_req(m, &pause) < 0) {
		refuse(ch, m, MC_QCTL_E_REFUSED, "malformed request");
		return;
	}
	bool was = q->paused;
	q->paused = pause;
	/* postern status shows it (sched.c keeps the suffix when resolverd comes and goes) */
	mc_daemon_set_state(q->d, "%s%s", q->res_was_up ? "running" : "resolverd unreachable",
			    pause ? ", delivery paused" : "");
	if (pause != was) {
		mc_notice("queue: delivery %s by admin", pause ? "paused" : "resumed");
		q_ctl_event(q, "", NULL, pause ? "paused" : "resumed", "delivery, by admin");
	}
	if (!pause && was) {
		/* what waited meanwhile is in the database */
		q->db_pending = true;
		q_sched_note_due(q, (int64_t)q_now());
		q_sched_kick(q);
	}
	struct mc_msg r;
	mc_msg_init(&r, m->type);
	mc_msg_put_u32(&r, was ? 1 : 0);
	mc_chan_reply(ch, m->reqid, &r);
}

static void
watch_request(struct q_ctl *c, struct mc_chan *ch, struct mc_msg *m)
{
	if (mc_msg_end(m) < 0) {
		refuse(ch, m, MC_QCTL_E_REFUSED, "malformed request");
		return;
	}
	struct watcher *w = calloc(1, sizeof(*w));
	if (w == NULL)
		mc_panic("out of memory");
	w->ch = ch;
	w->next = c->watchers;
	c->watchers = w;
	mc_info("queue: watched by=%s", mc_chan_peer_name(ch));
	struct mc_msg r;
	mc_msg_init(&r, m->type);
	mc_chan_reply(ch, m->reqid, &r);
}

void
q_ctl_event(struct queued *q, const char *qid, const char *rcpt, const char *what, const char *detail)
{
	struct q_ctl *c = q->ctl;
	if (c == NULL || c->watchers == NULL)
		return;
	struct mc_qctl_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.time_ms = (int64_t)(q_now() * 1000.0);
	snprintf(ev.qid, sizeof(ev.qid), "%s", qid ? qid : "");
	q_sanitize(ev.rcpt, sizeof(ev.rcpt), rcpt);
	snprintf(ev.what, sizeof(ev.what), "%s", what);
	q_sanitize(ev.detail, sizeof(ev.detail), detail);
	for (struct watcher *w = c->watchers; w; w = w->next) {
		struct mc_msg m;
		mc_msg_init(&m, MC_MSG_Q_CTL_EVENT);
		mc_qctl_put_event(&m, &ev);
		mc_chan_send(w->ch, &m);
	}
}

void
q_ctl_round_done(struct queued *q, const struct q_msg *m)
{
	if (q->ctl == NULL || q->ctl->watchers == NULL)
		return;
	for (uint32_t i = 0; i < m->env.nrcpt; i++) {
		const struct q_rcpt *r = &m->rs[i];
		if (!r->changed)
			continue;
		const char *what = r->abandoned ? "interrupted" : q_rstate_name(r->state);
		q_ctl_event(q, m->env.qid, m->env.rcpt[i].addr, what,
			    r->state == Q_R_DELIVERED ? r->done_dests : r->last_error);
	}
	if (m->all_final)
		q_ctl_event(q, m->env.qid, NULL, "removed", "every recipient delivered or bounced");
}

/* ---- the hooks ---- */

void
q_ctl_on_msg(struct queued *q, struct mc_chan *ch, struct mc_msg *m)
{
	struct q_ctl *c = q->ctl;
	switch (m->type) {
	case MC_MSG_Q_CTL_LIST:
	case MC_MSG_Q_CTL_SHOW:
	case MC_MSG_Q_CTL_SUMMARY:
		read_request(c, ch, m);
		break;
	case MC_MSG_Q_CTL_ACT:
		act_request(c, ch, m);
		break;
	case MC_MSG_Q_CTL_PAUSE:
		pause_request(c, ch, m);
		break;
	case MC_MSG_Q_CTL_WATCH:
		watch_request(c, ch, m);
		break;
	default: {
		char why[128];
		snprintf(why, sizeof(why), "queued does not handle %s", mc_msg_type_name(m->type));
		refuse(ch, m, MC_QCTL_E_REFUSED, why);
	}
	}
}

void
q_ctl_on_down(struct queued *q, struct mc_chan *ch)
{
	struct q_ctl *c = q->ctl;
	if (c == NULL)
		return;
	for (struct req *r = c->reqs; r; r = r->next)
		if (r->ch == ch)
			r->ch = NULL;
	for (struct watcher **pp = &c->watchers; *pp;) {
		struct watcher *w = *pp;
		if (w->ch == ch) {
			*pp = w->next;
			free(w);
		} else {
			pp = &w->next;
		}
	}
}

int
q_ctl_init(struct queued *q)
{
	struct q_ctl *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -1;
	c->q = q;
	c->rq_tail = &c->rq_head;
	snprintf(c->dbpath, sizeof(c->dbpath), "%s/queue.sqlite", q->qdir);
	q->ctl = c;
	return 0;
}

void
q_ctl_free(struct queued *q)
{
	struct q_ctl *c = q->ctl;
	if (c == NULL)
		return;
	while (c->watchers) {
		struct watcher *w = c->watchers;
		c->watchers = w->next;
		free(w);
	}
	/* the loop has ended: no query runs, none waits (their channels closed with the server) */
	while (c->rq_head) {
		struct rjob *j = c->rq_head;
		c->rq_head = j->qnext;
		free(j);
	}
	sqlite3_close(c->rdb);
	free(c);
	q->ctl = NULL;
}
