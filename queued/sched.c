/*
 * sched.c - which recipient is tried when.
 *
 * A message just committed goes to delivery at once (submit.c). What
 * waits in the database - deferred recipients whose next_try has come,
 * pending ones left from before a restart, or committed while too many
 * messages were in flight - is found by a once-a-second tick: a bounded
 * query in the lane (at most LOAD_BATCH messages a tick), skipping the
 * messages already in memory. The tick also follows resolverd: when it
 * comes back, recipients deferred only because it was away are retried
 * at once.
 *
 * Retries: retry_min, doubling, up to retry_max (RFC 5321 §4.5.4.1),
 * each spread by a quarter either way so that messages that failed
 * together (a destination down for an hour) come back spread out, not in
 * one burst; a recipient still failing after max_queue_lifetime is bounced
 * (deliver.c decides that when it concludes an attempt or starts a round,
 * bounce.c tells the sender).
 */
#include "queued/queued.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "util/log.h"

#define TICK_MS 1000
#define LOAD_BATCH 200
#define INFLIGHT_MAX 2000    /* as deliver.c's limit: ask for no more than can be taken */

double
q_now(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* xorshift32: jitter needs spread, not secrecy; the loop thread is its only caller */
static uint32_t
jitter_rand(void)
{
	static uint32_t x;
	if (x == 0) {
		struct timeval tv;
		gettimeofday(&tv, NULL);
		x = (uint32_t)tv.tv_usec ^ ((uint32_t)tv.tv_sec << 11) ^ (uint32_t)getpid();
		if (x == 0)
			x = 2463534242u;
	}
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return x;
}

int64_t
q_sched_next_try(const struct mc_config *cfg, uint32_t attempts, int64_t now)
{
	return now + (int64_t)q_backoff(cfg->queued.retry_min, cfg->queued.retry_max, attempts, jitter_rand());
}

void
q_sched_note_due(struct queued *q, int64_t next_try)
{
	if (next_try < q->next_due)
		q->next_due = next_try;
}

/* ---- loading due work ---- */

struct load_job {
	struct q_job job;
	struct queued *q;
	int64_t now;
	char (*skip)[MC_QID_MAX];
	size_t nskip;
	size_t max;
	char (*qids)[MC_QID_MAX];
	struct q_msg **msgs;
	int n;
	int64_t next_due;
};

/* worker */
static int
load_run(struct qdb *db, struct q_job *j)
{
	struct load_job *l = (struct load_job *)j;
	l->n = qdb_due(db, l->now, (const char(*)[MC_QID_MAX])l->skip, l->nskip, l->qids, l->max, &l->next_due);
	if (l->n < 0)
		return -1;
	for (int i = 0; i < l->n; i++) {
		int err;
		l->msgs[i] = qdb_load(db, l->qids[i], &err);
	}
	return 0;
}

static void
load_done(struct q_job *j, int status)
{
	struct load_job *l = (struct load_job *)j;
	struct queued *q = l->q;
	q->loading = false;
	if (status == 0) {
		size_t taken = 0;
		for (int i = 0; i < l->n; i++) {
			struct q_msg *m = l->msgs[i];
			if (m == NULL)
				continue;
			if (!q_deliver_has(q, m->env.qid) && q_deliver_add(q, m)) {
				taken++;
				continue;
			}
			q_msg_free(m);
		}
		q->next_due = l->next_due;
		/* a full batch means more may be due: look again at the next tick */
		q->db_pending = (size_t)l->n >= l->max;
		if (taken)
			mc_trace(MC_TRACE_QUEUE, "queue: %zu message(s) taken from the database", taken);
	} else {
		for (int i = 0; i < l->n; i++)
			q_msg_free(l->msgs[i]);
		mc_error("queue: cannot read due work from the database");
		q->next_due = (int64_t)q_now() + 5;
	}
	free(l->skip);
	free(l->qids);
	free(l->msgs);
	free(l);
}

static void
maybe_load(struct queued *q)
{
	int64_t now = (int64_t)q_now();
	if (q->stopping || q->paused || q->loading || (!q->db_pending && q->next_due > now))
		return;
	size_t inflight = q_deliver_inflight(q);
	if (inflight >= INFLIGHT_MAX)
		return;
	struct load_job *l = calloc(1, sizeof(*l));
	if (l == NULL)
		mc_panic("out of memory");
	l->q = q;
	l->now = now;
	l->max = INFLIGHT_MAX - inflight < LOAD_BATCH ? INFLIGHT_MAX - inflight : LOAD_BATCH;
	l->nskip = q_deliver_snapshot(q, &l->skip);
	l->qids = calloc(l->max, sizeof(*l->qids));
	l->msgs = calloc(l->max, sizeof(*l->msgs));
	if (l->qids == NULL || l->msgs == NULL)
		mc_panic("out of memory");
	l->job.run = load_run;
	l->job.done = load_done;
	q->loading = true;
	/* until the query says otherwise, nothing else is known to be due */
	q->next_due = INT64_MAX;
	q->db_pending = false;
	q_lane_submit(&q->lane, &l->job);
}

void
q_sched_kick(struct queued *q)
{
	maybe_load(q);
}

/* ---- resolverd coming back ---- */

struct resched_job {
	struct q_job job;
	struct queued *q;
	int64_t now;
	int n;
};

static int
resched_run(struct qdb *db, struct q_job *j)
{
	struct resched_job *r = (struct resched_job *)j;
	r->n = qdb_reschedule(db, "resolverd unreachable", r->now);
	return r->n < 0 ? -1 : 0;
}

static void
resched_done(struct q_job *j, int status)
{
	struct resched_job *r = (struct resched_job *)j;
	if (status == 0 && r->n > 0) {
		mc_info("queue: resolverd is back: %d recipient(s) retried now", r->n);
		q_sched_note_due(r->q, r->now);
		maybe_load(r->q);
	}
	free(r);
}

static void
on_tick(uv_timer_t *t)
{
	struct queued *q = t->data;
	double now = q_now();
	bool up = mc_resolver_is_up(q->res);
	if (up != q->res_was_up) {
		q->res_was_up = up;
		mc_daemon_set_state(q->d, "%s%s", up ? "running" : "resolverd unreachable",
				    q->paused ? ", delivery paused" : "");
		if (up) {
			struct resched_job *r = calloc(1, sizeof(*r));
			if (r == NULL)
				mc_panic("out of memory");
			r->q = q;
			r->now = (int64_t)now;
			r->job.run = resched_run;
			r->job.done = resched_done;
			q_lane_submit(&q->lane, &r->job);
		} else {
			mc_warn("queue: resolverd unreachable; deliveries wait for it");
		}
	}
	q_deliver_tick(q, now);
	if (up)
		maybe_load(q);
}

void
q_sched_start(struct queued *q)
{
	q->next_due = 0;           /* look at the database at the first tick */
	q->res_was_up = false;     /* main.c says "resolverd unreachable" until the first tick sees it */
	uv_timer_init(q->loop, &q->tick);
	q->tick.data = q;
	uv_timer_start(&q->tick, on_tick, 0, TICK_MS);
}

void
q_sched_stop(struct queued *q)
{
	uv_timer_stop(&q->tick);
	uv_close((uv_handle_t *)&q->tick, NULL);
}
