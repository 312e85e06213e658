/*
 * deliver.c - delivery rounds: every due recipient of a message is
 * expanded by resolverd (aliases, +tag, catch-all) and each local
 * destination gets the message in its Maildir; the outcomes are written
 * to the queue database in the lane's shared transactions.
 *
 * Called by submit.c (a message just committed), sched.c (due work from
 * the database) and the tick. Owns the messages in flight (a table by
 * qid), the recipients waiting for resolverd, and the local deliveries,
 * in two phases per mailbox. File works (at most cfg.queued.delivery_workers
 * at once, several for one mailbox) write, fsync and rename the files
 * (mc_store_files_write): a new file's fsync is what a delivery waits for,
 * and the disk does many side by side. Their batches then wait for the
 * mailbox's one index work, which takes every batch done meanwhile, in the
 * order they started (UIDs in the order mail came in): one fsync of new/
 * and one index transaction for all of them (mc_store_files_index). Only the index work (and the mailbox's first
 * file work, which opens it) touches the open mc_store, one at a time,
 * which is what lets it be used without a lock. A recipient counts as
 * delivered only after its row is committed. The loop thread never
 * touches a file.
 *
 * Remote destinations are gathered per message until every recipient of
 * the round is expanded, then handed to relay.c in one go (one
 * transaction per domain); their outcomes come back one by one through
 * q_deliver_remote_done into the same per-recipient accounting.
 *
 * A message leaves memory once its round's outcome is committed; a
 * message whose recipients are all delivered or bounced is deleted with
 * its body in the same lane transaction as its last outcome. What the
 * sender is told of a round (bounce.c) is queued in that transaction too.
 */
#include "queued/queued.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mail/mailstore.h"
#include "util/log.h"

#define MAX_INFLIGHT 2000       /* messages in memory; the rest waits in the database */
#define MAX_RESOLVING 256       /* resolverd calls at once */
#define RESOLVER_WAIT 30.0      /* seconds a recipient waits for resolverd to come back */
#define JOBS_PER_WORK 64        /* deliveries into one mailbox per work item */
#define INDEX_BATCH 32          /* files a mailbox's index commit waits for while others are being written */
#define STORE_IDLE 60.0         /* seconds an unused mailbox stays open */
#define STORES_MAX 256
#define MSG_BUCKETS 4096
#define MBOX_BUCKETS 1024
#define PREFIX_MAX (2 * MC_ADDR_MAX + 64)

static const char resolver_unreachable[] = "resolverd unreachable";

/* One local delivery: a message to one final address in one Maildir. */
struct ljob {
	struct q_rcpt *r;
	struct ljob *next;
	char dest[MC_ADDR_MAX];
	char prefix[PREFIX_MAX];
	size_t prefixlen;
	uint32_t uid;
	char err[160];
};

struct lwork;

struct mbox {
	char *path;
	struct mc_store *store;      /* touched by the index work only (and the opening file work) */
	struct ljob *head, **tail;   /* deliveries not started */
	size_t n;
	unsigned writing;            /* file works running */
	bool opened;                 /* the Maildir was made (mc_store_open once): file works may run */
	bool opening;                /* the first file work opens the store */
	bool indexing;               /* the index work runs */
	bool ready;                  /* in the ready list */
	struct lwork *flight, **flight_tail;   /* file works not yet indexed, in the order they started */
	double last_used;
	struct mbox *hnext, *rnext;
};

/* A file work: some deliveries into one mailbox, later indexed with others. */
struct lwork {
	uv_work_t w;
	struct queued *q;
	struct mbox *mb;
	bool opens;                  /* the mailbox's first: opens the store before writing */
	bool done;                   /* its files are written */
	struct mc_store_files *files;
	struct lwork *next;          /* in mb->flight, then in the index work */
	size_t n, k;
	size_t nwritten;             /* items whose file is in new/, waiting for their row */
	struct ljob *jobs[JOBS_PER_WORK];
	size_t map[JOBS_PER_WORK];   /* items[i] is jobs[map[i]] */
	struct mc_store_item items[JOBS_PER_WORK];
};

/* The index work of a mailbox: every batch written since the last one, in one transaction. */
struct iwork {
	uv_work_t w;
	struct queued *q;
	struct mbox *mb;
	struct lwork *list;
	size_t nb;
};

struct q_deliver {
	struct q_msg *msgs[MSG_BUCKETS];
	size_t inflight;
	struct mbox *mboxes[MBOX_BUCKETS];
	size_t nmbox;
	struct mbox *ready_head, **ready_tail;
	unsigned workers_busy;
	struct q_rcpt *rq_head, **rq_tail;
	unsigned resolving;
	struct mc_chan *imapd;       /* change notices for IDLE sessions (run_dir/imapd.sock) */
	struct held_notice *held;    /* notices of the last seconds while imapd.sock was not up */
};

static void rcpt_finish(struct queued *q, struct q_rcpt *r);
static void dispatch_workers(struct queued *q);

/* ---- small things ---- */

char *
q_sanitize(char *out, size_t outsz, const char *in)
{
	size_t o = 0;
	for (; in && *in && o + 1 < outsz; in++) {
		unsigned char c = (unsigned char)*in;
		out[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (outsz)
		out[o] = '\0';
	return out;
}

static unsigned
hash_str(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static double
delay_of(const struct q_msg *m)
{
	double d = q_now() - m->t_arrival;
	return d < 0 ? 0 : d;
}

/* Is path a mailbox under state_dir/mail, with no "." or ".." component? */
static bool
mailbox_ok(const struct queued *q, const char *path)
{
	size_t root = strlen(q->mail_root);
	if (strncmp(path, q->mail_root, root) != 0 || path[root] != '/' || strlen(path) >= MC_PATH_MAX)
		return false;
	for (const char *p = path + root; *p; p++) {
		if (*p != '/')
			continue;
		const char *c = p + 1;
		if (*c == '\0' || *c == '/' || (c[0] == '.' && (c[1] == '/' || c[1] == '\0')) ||
		    (c[0] == '.' && c[1] == '.' && (c[2] == '/' || c[2] == '\0')))
			return false;
	}
	return true;
}

/* ---- the table of messages in flight ---- */

static struct q_msg **
msg_slot(struct q_deliver *dl, const char *qid)
{
	struct q_msg **pp = &dl->msgs[hash_str(qid) % MSG_BUCKETS];
	while (*pp && strcmp((*pp)->env.qid, qid) != 0)
		pp = &(*pp)->hnext;
	return pp;
}

bool
q_deliver_has(struct queued *q, const char *qid)
{
	return *msg_slot(q->dl, qid) != NULL;
}

struct q_msg *
q_deliver_find(struct queued *q, const char *qid)
{
	return *msg_slot(q->dl, qid);
}

size_t
q_deliver_inflight(struct queued *q)
{
	return q->dl->inflight;
}

static int
qid_cmp(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

size_t
q_deliver_snapshot(struct queued *q, char (**out)[MC_QID_MAX])
{
	struct q_deliver *dl = q->dl;
	char(*v)[MC_QID_MAX] = malloc((dl->inflight ? dl->inflight : 1) * sizeof(*v));
	if (v == NULL)
		mc_panic("out of memory");
	size_t n = 0;
	for (size_t b = 0; b < MSG_BUCKETS; b++)
		for (struct q_msg *m = dl->msgs[b]; m && n < dl->inflight; m = m->hnext)
			memcpy(v[n++], m->env.qid, MC_QID_MAX);
	qsort(v, n, sizeof(*v), qid_cmp);
	*out = v;
	return n;
}

static void
release(struct queued *q, struct q_msg *m)
{
	struct q_msg **pp = msg_slot(q->dl, m->env.qid);
	if (*pp == m) {
		*pp = m->hnext;
		q->dl->inflight--;
	}
	q_msg_free(m);
	if (q->db_pending)
		q_sched_kick(q);
}

/* ---- the end of a round: outcomes into the database ---- */

struct outcome_job {
	struct q_job job;
	struct queued *q;
	struct q_msg *m;
	struct q_report *rep;        /* what the sender is told, NULL: nothing */
	uv_work_t work;              /* writing rep's file */
	double now;
};

/*
 * worker: the sender's report is made durable before the transaction that
 * marks its recipients. On the threadpool rather than in the lane's pre
 * step, so that the fsyncs of many reports run side by side and never
 * hold up the lane's next group commit.
 */
static void
outcome_report_work(uv_work_t *w)
{
	struct outcome_job *o = w->data;
	q_bounce_pre(o->rep);
}

static void
outcome_report_after(uv_work_t *w, int status)
{
	struct outcome_job *o = w->data;
	(void)status;   /* the loop never cancels work; a report not written leaves its recipients deferred */
	q_lane_submit(&o->q->lane, &o->job);
}

static int
outcome_run(struct qdb *db, struct q_job *j)
{
	struct outcome_job *o = (struct outcome_job *)j;
	if (o->rep && q_bounce_run(db, o->rep) < 0)
		return -1;
	if (o->m->all_final)
		return qdb_delete(db, o->m->env.qid);
	return qdb_save_rcpts(db, o->m, o->now);
}

static void
outcome_post(struct q_job *j, int status)
{
	struct outcome_job *o = (struct outcome_job *)j;
	if (o->rep)
		q_bounce_post(o->rep, status);
}

static void
outcome_done(struct q_job *j, int status)
{
	struct outcome_job *o = (struct outcome_job *)j;
	struct q_msg *m = o->m;
	if (status != 0)
		mc_error("%s: could not record the delivery outcome; the recipients will be tried again",
			 m->env.qid);
	else if (m->all_final)
		mc_info("%s: removed", m->env.qid);
	if (status == 0 && m->all_final)
		q_spool_discard_later(o->q, m->env.qid);   /* off the lane: its next commit need not wait */
	if (status == 0)
		q_ctl_round_done(o->q, m);
	for (uint32_t i = 0; status == 0 && i < m->env.nrcpt; i++)
		if (m->rs[i].state == Q_R_DEFERRED && m->rs[i].changed)
			q_sched_note_due(o->q, m->rs[i].next_try);
	if (o->rep)
		q_bounce_done(o->rep, status);
	/* an administrator's bounce that came while the outcome was written starts again */
	struct q_bounce_req *again = m->bounce_req;
	m->bounce_req = NULL;
	m->in_lane = false;
	release(o->q, m);
	if (again)
		q_bounce_again(o->q, again);
	free(o);
}

static void
finish_round(struct queued *q, struct q_msg *m)
{
	double now = q_now();
	struct q_report *rep = q_bounce_plan(q, m, now);
	bool changed = false, final = true;
	for (uint32_t i = 0; i < m->env.nrcpt; i++) {
		changed |= m->rs[i].changed;
		if (m->rs[i].state != Q_R_DELIVERED && m->rs[i].state != Q_R_BOUNCED)
			final = false;
	}
	if (!changed && !final && rep == NULL) {
		release(q, m);
		return;
	}
	m->all_final = final;
	m->in_lane = true;
	struct outcome_job *o = calloc(1, sizeof(*o));
	if (o == NULL)
		mc_panic("out of memory");
	o->q = q;
	o->m = m;
	o->rep = rep;
	o->now = now;
	o->job.run = outcome_run;
	o->job.post = outcome_post;
	o->job.done = outcome_done;
	if (rep) {
		o->work.data = o;
		if (uv_queue_work(q->loop, &o->work, outcome_report_work, outcome_report_after) != 0)
			mc_panic("uv_queue_work failed");
		return;
	}
	q_lane_submit(&q->lane, &o->job);
}

/* ---- recipients ---- */

static void
set_reason(struct q_rcpt *r, const char *why)
{
	snprintf(r->reason, sizeof(r->reason), "%s", why);
}

static void
bounce(struct queued *q, struct q_rcpt *r, const char *why, const char *relay)
{
	struct q_msg *m = r->msg;
	r->state = Q_R_BOUNCED;
	snprintf(r->last_error, sizeof(r->last_error), "%s", why);
	r->changed = true;
	mc_info("%s: to=<%s> relay=%s delay=%.2f status=bounced (%s)", m->env.qid, m->env.rcpt[r - m->rs].addr, relay,
		delay_of(m), why);
	(void)q;
}

static bool
expired(const struct queued *q, const struct q_msg *m, int64_t now)
{
	return now - m->env.arrival >= (int64_t)q->d->cfg.queued.max_queue_lifetime;
}

static void
expire(struct queued *q, struct q_rcpt *r, const char *last)
{
	char why[Q_ERR_MAX];
	unsigned days = q->d->cfg.queued.max_queue_lifetime / 86400;
	if (days)
		snprintf(why, sizeof(why), "message expired after %u day%s in the queue: %.180s", days,
			 days == 1 ? "" : "s", last);
	else
		snprintf(why, sizeof(why), "message expired after %us in the queue: %.180s",
			 q->d->cfg.queued.max_queue_lifetime, last);
	snprintf(r->status, sizeof(r->status), "4.4.7");   /* RFC 3463: delivery time expired */
	bounce(q, r, why, "none");
}

/* The recipient's outcome from its destinations' outcomes (round bookkeeping aside). */
static void
rcpt_conclude(struct queued *q, struct q_rcpt *r)
{
	struct q_msg *m = r->msg;
	int64_t now = (int64_t)q_now();
	if (r->abandoned) {
		/* cut short by a stop: the state stays, what was delivered is remembered */
		if (r->n_ok)
			r->changed = true;
	} else if (r->n_temp) {
		r->attempts++;
		if (expired(q, m, now)) {
			expire(q, r, r->reason);
		} else {
			r->state = Q_R_DEFERRED;
			r->next_try = q_sched_next_try(&q->d->cfg, r->attempts, now);
			snprintf(r->last_error, sizeof(r->last_error), "%s", r->reason);
			r->changed = true;
		}
	} else if (r->n_ok) {
		r->state = Q_R_DELIVERED;
		r->last_error[0] = '\0';
		r->changed = true;
	} else {
		if (r->n_unknown && r->status[0] == '\0')
			snprintf(r->status, sizeof(r->status), "5.1.1");
		bounce(q, r, r->reason[0] ? r->reason : "user unknown", r->n_perm ? "remote" : "local");
	}
	r->in_round = false;
}

static void
rcpt_finish(struct queued *q, struct q_rcpt *r)
{
	struct q_msg *m = r->msg;
	rcpt_conclude(q, r);
	if (--m->round_left == 0)
		finish_round(q, m);
}

/* ---- local delivery on the threadpool ---- */

static struct mbox *
mbox_get(struct queued *q, const char *path)
{
	struct q_deliver *dl = q->dl;
	struct mbox **pp = &dl->mboxes[hash_str(path) % MBOX_BUCKETS];
	for (; *pp; pp = &(*pp)->hnext)
		if (strcmp((*pp)->path, path) == 0)
			return *pp;
	struct mbox *mb = calloc(1, sizeof(*mb));
	if (mb == NULL || (mb->path = strdup(path)) == NULL)
		mc_panic("out of memory");
	mb->tail = &mb->head;
	mb->flight_tail = &mb->flight;
	*pp = mb;
	dl->nmbox++;
	return mb;
}

/* May a file work start for mb? Once the Maildir is made, any number; before, one that opens it. */
static bool
mbox_can_write(const struct mbox *mb)
{
	return mb->opened || (!mb->opening && !mb->indexing && mb->writing == 0);
}

static void
mbox_make_ready(struct q_deliver *dl, struct mbox *mb)
{
	if (mb->ready || mb->n == 0 || !mbox_can_write(mb))
		return;
	mb->ready = true;
	mb->rnext = NULL;
	*dl->ready_tail = mb;
	dl->ready_tail = &mb->rnext;
}

static void
queue_local(struct queued *q, struct q_rcpt *r, const struct mc_dest *d)
{
	struct q_msg *m = r->msg;
	struct ljob *j = calloc(1, sizeof(*j));
	if (j == NULL)
		mc_panic("out of memory");
	char sender[MC_ADDR_MAX];
	j->r = r;
	q_sanitize(j->dest, sizeof(j->dest), d->address);
	q_sanitize(sender, sizeof(sender), m->env.sender);
	int n = snprintf(j->prefix, sizeof(j->prefix), "Return-Path: <%s>\r\nDelivered-To: %s\r\n", sender, j->dest);
	j->prefixlen = n < 0 ? 0 : (size_t)n >= sizeof(j->prefix) ? sizeof(j->prefix) - 1 : (size_t)n;
	struct mbox *mb = mbox_get(q, d->mailbox);
	*mb->tail = j;
	mb->tail = &j->next;
	mb->n++;
	r->dests_left++;
	mbox_make_ready(q->dl, mb);
}

/*
 * worker: the file phase of some deliveries into one mailbox: each file
 * written, fsynced and renamed into new/, side by side with the mailbox's
 * other file works. No index row yet: that is the index work's.
 */
static void
file_work(uv_work_t *w)
{
	struct lwork *lw = w->data;
	struct mbox *mb = lw->mb;
	char err[200] = "";
	if (lw->opens) {
		/* nothing else runs for this mailbox while it is opened (mbox_can_write) */
		mb->store = mc_store_open(mb->path, MC_STORE_CREATE, err, sizeof(err));
		if (mb->store == NULL) {
			for (size_t i = 0; i < lw->n; i++)
				snprintf(lw->jobs[i]->err, sizeof(lw->jobs[i]->err), "cannot open mailbox: %.120s",
					 err);
			return;
		}
	}
	char p[MC_PATH_MAX + 64];
	size_t k = 0;
	for (size_t i = 0; i < lw->n; i++) {
		struct ljob *j = lw->jobs[i];
		snprintf(p, sizeof(p), "%s/%s", lw->q->active, j->r->msg->env.qid);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			snprintf(j->err, sizeof(j->err), "cannot open the queue file: %s", strerror(errno));
			continue;
		}
		struct mc_store_item *it = &lw->items[k];
		memset(it, 0, sizeof(*it));
		it->prefix = j->prefix;
		it->prefixlen = j->prefixlen;
		it->fd = fd;
		it->offset = 0;
		it->length = j->r->msg->env.size;
		lw->map[k++] = i;
	}
	lw->k = k;
	if (k == 0)
		return;
	lw->files = mc_store_files_write(mb->path, NULL, lw->items, k);
	for (size_t i = 0; i < k; i++) {
		close(lw->items[i].fd);
		lw->items[i].fd = -1;
		if (lw->files && lw->items[i].err[0] == '\0')
			lw->nwritten++;
	}
}

/* A notice kept while the channel to imapd is not up (it connects with backoff after imapd starts). */
#define HELD_NOTICES 16
#define HELD_NOTICE_SECONDS 10.0
struct held_notice {
	double at;                   /* 0: free */
	char addr[MC_ADDR_MAX];
	char path[MC_PATH_MAX + 400];
};

static void
send_notice(struct mc_chan *ch, const char *addr, const char *path)
{
	struct mc_msg m;
	mc_msg_init(&m, MC_MSG_MBOX_CHANGED);
	mc_msg_put_str(&m, addr);
	mc_msg_put_str(&m, "INBOX");
	mc_msg_put_str(&m, path);
	mc_chan_send(ch, &m);
}

/*
 * Tell imapd that the mailbox at path got mail, so IDLE sessions see it at
 * once (MBOX_CHANGED: address, mailbox name, store path). A hint only:
 * while the channel is down the last few are held for some seconds and
 * sent when it comes up (imapd just started), else dropped; imapd's
 * sessions still see the mail at their next command.
 */
static void
notify_imapd(struct queued *q, const char *addr, const char *path)
{
	struct q_deliver *dl = q->dl;
	if (dl->imapd == NULL)
		return;
	if (mc_chan_is_up(dl->imapd)) {
		send_notice(dl->imapd, addr, path);
		return;
	}
	if (dl->held == NULL && (dl->held = calloc(HELD_NOTICES, sizeof(*dl->held))) == NULL)
		return;
	size_t oldest = 0;
	for (size_t i = 0; i < HELD_NOTICES; i++)
		if (dl->held[i].at < dl->held[oldest].at)
			oldest = i;
	struct held_notice *h = &dl->held[oldest];
	h->at = q_now();
	snprintf(h->addr, sizeof(h->addr), "%s", addr);
	snprintf(h->path, sizeof(h->path), "%s", path);
}

static void
imapd_up(struct mc_chan *ch, void *arg)
{
	struct queued *q = arg;
	struct q_deliver *dl = q->dl;
	if (dl == NULL || dl->held == NULL)
		return;
	double now = q_now();
	for (size_t i = 0; i < HELD_NOTICES; i++) {
		if (dl->held[i].at > 0 && now - dl->held[i].at < HELD_NOTICE_SECONDS)
			send_notice(ch, dl->held[i].addr, dl->held[i].path);
		dl->held[i].at = 0;
	}
}

/* The outcome of a file work's deliveries, now that the index work (or the file work) decided it. */
static void
report_jobs(struct queued *q, struct lwork *lw, bool *delivered, char *addr, size_t addrsz)
{
	for (size_t i = 0; i < lw->n; i++) {
		struct ljob *j = lw->jobs[i];
		struct q_rcpt *r = j->r;
		struct q_msg *m = r->msg;
		const char *orig = m->env.rcpt[r - m->rs].addr;
		if (j->uid) {
			if (!*delivered)
				snprintf(addr, addrsz, "%s", j->dest);
			*delivered = true;
			mc_info("%s: to=<%s> orig_to=<%s> relay=local delay=%.2f status=sent (delivered to maildir uid=%u)",
				m->env.qid, j->dest, orig, delay_of(m), j->uid);
			if (q_rcpt_done_add(r, j->dest) < 0)
				mc_panic("out of memory");
			r->n_ok++;
		} else {
			if (j->err[0] == '\0')
				snprintf(j->err, sizeof(j->err), "delivery cancelled");
			mc_info("%s: to=<%s> orig_to=<%s> relay=local delay=%.2f status=deferred (%s)", m->env.qid,
				j->dest, orig, delay_of(m), j->err);
			r->n_temp++;
			set_reason(r, j->err);
		}
		free(j);
		if (--r->dests_left == 0 && r->res_handle == 0)
			rcpt_finish(q, r);
	}
}

/* Copy the items' outcomes to their jobs (worker or loop: whoever holds lw). */
static void
take_results(struct lwork *lw)
{
	for (size_t i = 0; i < lw->k; i++) {
		struct ljob *j = lw->jobs[lw->map[i]];
		j->uid = lw->items[i].uid;
		if (j->uid == 0)
			snprintf(j->err, sizeof(j->err), "%.150s", lw->items[i].err[0] ? lw->items[i].err : "not delivered");
	}
}

/*
 * worker: the index phase of every batch written into one mailbox since
 * the last: one fsync of new/ and one transaction give them their UIDs.
 * Batches whose rows could not be written lose their files again.
 */
static void
index_work(uv_work_t *w)
{
	struct iwork *iw = w->data;
	struct mbox *mb = iw->mb;
	char err[200] = "", why[240] = "";
	struct mc_store_files *one[1], **v = iw->nb <= 1 ? one : malloc(iw->nb * sizeof(*v));
	size_t nb = 0;
	for (struct lwork *lw = iw->list; v && lw; lw = lw->next)
		if (lw->nwritten)
			v[nb++] = lw->files;
	if (nb && mb->store == NULL)   /* closed after an index failure: opened afresh (a corrupt index is rebuilt) */
		mb->store = mc_store_open(mb->path, MC_STORE_CREATE, err, sizeof(err));
	if (v == NULL) {
		snprintf(why, sizeof(why), "out of memory");
	} else if (nb && mb->store == NULL) {
		snprintf(why, sizeof(why), "cannot open mailbox: %.150s", err);
	} else if (nb && mc_store_files_index(mb->store, v, nb, err, sizeof(err)) < 0) {
		/* the index failed: open it afresh next time (a corrupt one is rebuilt then) */
		mc_store_close(mb->store);
		mb->store = NULL;
	}
	for (struct lwork *lw = iw->list; lw; lw = lw->next) {
		mc_store_files_free(lw->files, why);   /* a batch never indexed loses its files here */
		lw->files = NULL;
		take_results(lw);
	}
	if (v != one)
		free(v);
}

static void index_after(uv_work_t *w, int status);

/*
 * Start mb's index work for the file works that are done, in the order
 * they started (so UIDs follow the order mail came in), unless one runs:
 * it takes the rest when it ends. A commit costs an fsync of new/, one of
 * the index's log and the CPU of a transaction whether it holds one
 * message or many: while other file works of the mailbox are still
 * writing it waits for them, up to INDEX_BATCH files (some tens of
 * milliseconds under load; at once when the mailbox has nothing else).
 */
static void
index_start(struct queued *q, struct mbox *mb)
{
	if (mb->indexing)
		return;
	size_t nb = 0, files = 0;
	struct lwork **end = &mb->flight;
	while (*end && (*end)->done) {
		nb++;
		files += (*end)->nwritten;
		end = &(*end)->next;
	}
	if (nb == 0 || (*end && files < INDEX_BATCH))
		return;
	struct iwork *iw = calloc(1, sizeof(*iw));
	if (iw == NULL)
		mc_panic("out of memory");
	iw->q = q;
	iw->mb = mb;
	iw->nb = nb;
	iw->list = mb->flight;
	mb->flight = *end;
	*end = NULL;
	if (mb->flight == NULL)
		mb->flight_tail = &mb->flight;
	mb->indexing = true;
	iw->w.data = iw;
	if (uv_queue_work(q->loop, &iw->w, index_work, index_after) != 0)
		mc_panic("uv_queue_work failed");
}

static void
file_after(uv_work_t *w, int status)
{
	struct lwork *lw = w->data;
	struct queued *q = lw->q;
	struct mbox *mb = lw->mb;
	(void)status;   /* the loop never cancels work */
	q->dl->workers_busy--;
	mb->writing--;
	if (lw->opens) {
		mb->opening = false;
		mb->opened = mb->store != NULL;
	}
	mb->last_used = q_now();
	lw->done = true;
	index_start(q, mb);   /* also while stopping: written files get their rows */
	if (!q->stopping)
		mbox_make_ready(q->dl, mb);
	dispatch_workers(q);
}

static void
index_after(uv_work_t *w, int status)
{
	struct iwork *iw = w->data;
	struct queued *q = iw->q;
	struct mbox *mb = iw->mb;
	bool delivered = false;
	char addr[MC_ADDR_MAX] = "";
	(void)status;   /* the loop never cancels work */
	mb->indexing = false;
	mb->last_used = q_now();
	while (iw->list) {
		struct lwork *lw = iw->list;
		iw->list = lw->next;
		report_jobs(q, lw, &delivered, addr, sizeof(addr));
		free(lw);
	}
	free(iw);
	if (delivered)
		notify_imapd(q, addr, mb->path);
	index_start(q, mb);
	if (!q->stopping)
		mbox_make_ready(q->dl, mb);
	dispatch_workers(q);
}

static void
dispatch_workers(struct queued *q)
{
	struct q_deliver *dl = q->dl;
	unsigned max = q->d->cfg.queued.delivery_workers ? q->d->cfg.queued.delivery_workers : 1;
	while (!q->stopping && dl->workers_busy < max && dl->ready_head) {
		struct mbox *mb = dl->ready_head;
		dl->ready_head = mb->rnext;
		if (dl->ready_head == NULL)
			dl->ready_tail = &dl->ready_head;
		mb->ready = false;
		if (mb->n == 0 || !mbox_can_write(mb))
			continue;   /* made ready again when it can */
		/*
		 * A share of the mailbox's waiting deliveries: a queue that built
		 * up while every worker was busy is spread over the next ones
		 * rather than written one by one by the first worker to be free.
		 */
		size_t take = (mb->n + max - 1) / max;
		if (take > JOBS_PER_WORK)
			take = JOBS_PER_WORK;
		struct lwork *lw = calloc(1, sizeof(*lw));
		if (lw == NULL)
			mc_panic("out of memory");
		lw->q = q;
		lw->mb = mb;
		while (mb->head && lw->n < take) {
			struct ljob *j = mb->head;
			mb->head = j->next;
			lw->jobs[lw->n++] = j;
			mb->n--;
		}
		if (mb->head == NULL)
			mb->tail = &mb->head;
		if (!mb->opened) {
			lw->opens = true;
			mb->opening = true;
		}
		*mb->flight_tail = lw;
		mb->flight_tail = &lw->next;
		mb->writing++;
		dl->workers_busy++;
		lw->w.data = lw;
		if (uv_queue_work(q->loop, &lw->w, file_work, file_after) != 0)
			mc_panic("uv_queue_work failed");
		mbox_make_ready(dl, mb);   /* the rest of its queue: after the other ready mailboxes */
	}
}

/* ---- remote destinations (relay.c delivers them) ---- */

static void
remote_add(struct q_rcpt *r, const char *dest)
{
	struct q_rdest *d = calloc(1, sizeof(*d));
	if (d == NULL)
		mc_panic("out of memory");
	d->r = r;
	snprintf(d->addr, sizeof(d->addr), "%s", dest);
	d->next = r->msg->remote;
	r->msg->remote = d;
	r->dests_left++;
}

/* Every recipient of the round is expanded: the remote destinations go to relay.c together. */
static void
remote_flush(struct queued *q, struct q_msg *m)
{
	if (m->expanding > 0 || m->remote == NULL || q->stopping)
		return;
	/* the list was built backwards: envelope order on the wire */
	struct q_rdest *list = NULL;
	while (m->remote) {
		struct q_rdest *d = m->remote;
		m->remote = d->next;
		d->next = list;
		list = d;
	}
	q_relay_submit(q, m, list);
}

/* Stop: gathered destinations never handed over are abandoned. */
static void
remote_abandon(struct q_msg *m)
{
	while (m->remote) {
		struct q_rdest *d = m->remote;
		m->remote = d->next;
		d->r->dests_left--;
		d->r->abandoned = true;
		free(d);
	}
}

void
q_deliver_remote_done(struct queued *q, struct q_rdest *d, const char *relay)
{
	struct q_rcpt *r = d->r;
	char why[Q_ERR_MAX];
	switch (d->res) {
	case Q_RR_OK:
		if (q_rcpt_done_add(r, d->addr) < 0)
			mc_panic("out of memory");
		r->n_ok++;
		r->remote = true;
		r->remote_dsn = d->remote_dsn;
		free(r->ev_detail);
		if (asprintf(&r->ev_detail, "host=%s reply=%s", relay, d->reply) < 0)
			r->ev_detail = NULL;
		break;
	case Q_RR_TEMP:
	case Q_RR_PERM:
		if (strcmp(d->reply, resolver_unreachable) == 0)   /* retried at once when it is back (sched.c) */
			snprintf(why, sizeof(why), "%s", resolver_unreachable);
		else if (strcmp(relay, "none") == 0)   /* no server was reached (DNS, backoff) */
			snprintf(why, sizeof(why), "dsn=%.15s reply=%.200s", d->dsn, d->reply);
		else
			snprintf(why, sizeof(why), "host=%.80s dsn=%.15s reply=%.140s", relay, d->dsn, d->reply);
		if (d->res == Q_RR_TEMP)
			r->n_temp++;
		else
			r->n_perm++;
		if (d->res == Q_RR_TEMP || r->n_temp == 0) {
			set_reason(r, why);
			snprintf(r->status, sizeof(r->status), "%.11s", d->dsn);
			r->remote = strcmp(relay, "none") != 0;
		}
		break;
	default:
		r->abandoned = true;
		break;
	}
	free(d);
	if (--r->dests_left == 0 && r->res_handle == 0)
		rcpt_finish(q, r);
}

/* ---- expansion by resolverd ---- */

static void resolve_dispatch(struct queued *q);

static void
on_expand(void *arg, int err, const struct mc_dest *dests, unsigned n)
{
	struct q_rcpt *r = arg;
	struct q_msg *m = r->msg;
	struct queued *q = m->q;
	const char *addr = m->env.rcpt[r - m->rs].addr;
	r->res_handle = 0;
	q->dl->resolving--;
	m->expanding--;
	if (err != 0) {
		mc_info("%s: to=<%s> relay=none delay=%.2f status=deferred (%s)", m->env.qid, addr, delay_of(m),
			resolver_unreachable);
		r->n_temp++;
		set_reason(r, resolver_unreachable);
	} else if (n == 0) {
		set_reason(r, "no destination for this address");
	}
	for (unsigned i = 0; err == 0 && i < n; i++) {
		const struct mc_dest *d = &dests[i];
		char dest[MC_ADDR_MAX];
		q_sanitize(dest, sizeof(dest), d->address);
		switch (d->kind) {
		case MC_DEST_LOCAL:
			if (q_rcpt_done_has(r, dest)) {
				r->n_ok++;   /* delivered in an earlier round */
			} else if (!mailbox_ok(q, d->mailbox)) {
				char mb[256];
				mc_error("%s: to=<%s> orig_to=<%s> relay=local status=deferred (mailbox path %s is not"
					 " under %s)", m->env.qid, dest, addr, q_sanitize(mb, sizeof(mb), d->mailbox),
					 q->mail_root);
				r->n_temp++;
				set_reason(r, "resolverd gave a mailbox outside the mail store");
			} else {
				queue_local(q, r, d);
			}
			break;
		case MC_DEST_REMOTE:
			if (q_rcpt_done_has(r, dest))
				r->n_ok++;   /* delivered in an earlier round */
			else
				remote_add(r, dest);
			break;
		case MC_DEST_UNKNOWN:
			r->n_unknown++;
			if (r->reason[0] == '\0' && strcasecmp(dest, addr) == 0)
				set_reason(r, "user unknown");
			else if (r->reason[0] == '\0')
				snprintf(r->reason, sizeof(r->reason), "user unknown: %.200s", dest);
			break;
		default:
			r->n_temp++;
			set_reason(r, "unexpected answer from resolverd");
			break;
		}
	}
	remote_flush(q, m);
	if (r->dests_left == 0)
		rcpt_finish(q, r);
	dispatch_workers(q);
	resolve_dispatch(q);
}

static void
resolve_dispatch(struct queued *q)
{
	struct q_deliver *dl = q->dl;
	if (q->stopping || !mc_resolver_is_up(q->res))
		return;
	while (dl->rq_head && dl->resolving < MAX_RESOLVING) {
		struct q_rcpt *r = dl->rq_head;
		dl->rq_head = r->rq_next;
		if (dl->rq_head == NULL)
			dl->rq_tail = &dl->rq_head;
		r->rq_next = NULL;
		dl->resolving++;
		struct q_msg *m = r->msg;
		r->res_handle = mc_resolver_expand(q->res, m->env.rcpt[r - m->rs].addr, on_expand, r);
	}
}

/* ---- rounds ---- */

bool
q_deliver_add(struct queued *q, struct q_msg *m)
{
	struct q_deliver *dl = q->dl;
	if (q->stopping || q->paused || dl->inflight >= MAX_INFLIGHT)
		return false;
	struct q_msg **slot = msg_slot(dl, m->env.qid);
	if (*slot || q_bounce_busy(q, m->env.qid))
		return false;
	*slot = m;
	m->hnext = NULL;
	m->q = q;
	dl->inflight++;

	int64_t now = (int64_t)q_now();
	double t = q_now();
	m->round_left = 0;
	for (uint32_t i = 0; i < m->env.nrcpt && m->state == Q_M_ACTIVE; i++) {
		struct q_rcpt *r = &m->rs[i];
		r->changed = r->abandoned = false;
		r->n_ok = r->n_unknown = r->n_temp = r->n_perm = 0;
		r->reason[0] = r->status[0] = '\0';
		r->remote = r->remote_dsn = false;
		free(r->ev_detail);
		r->ev_detail = NULL;
		bool due = r->state == Q_R_PENDING || (r->state == Q_R_DEFERRED && r->next_try <= now);
		if (!due)
			continue;
		if (r->state == Q_R_DEFERRED && expired(q, m, now)) {
			expire(q, r, r->last_error);
			continue;
		}
		r->in_round = true;
		r->rq_since = t;
		r->rq_next = NULL;
		*dl->rq_tail = r;
		dl->rq_tail = &r->rq_next;
		m->round_left++;
		m->expanding++;
	}
	if (m->round_left == 0)
		finish_round(q, m);
	else
		resolve_dispatch(q);
	return true;
}

bool
q_deliver_adopt(struct queued *q, struct q_msg *m)
{
	struct q_deliver *dl = q->dl;
	struct q_msg **slot = msg_slot(dl, m->env.qid);
	if (q->stopping || *slot)
		return false;
	*slot = m;
	m->hnext = NULL;
	m->q = q;
	dl->inflight++;
	m->round_left = 0;
	for (uint32_t i = 0; i < m->env.nrcpt; i++) {
		struct q_rcpt *r = &m->rs[i];
		r->changed = r->abandoned = r->in_round = false;
		r->reason[0] = r->status[0] = '\0';
	}
	finish_round(q, m);
	return true;
}

int
q_deliver_init(struct queued *q)
{
	struct q_deliver *dl = calloc(1, sizeof(*dl));
	if (dl == NULL)
		return -1;
	dl->ready_tail = &dl->ready_head;
	dl->rq_tail = &dl->rq_head;
	q->dl = dl;
	char sock[MC_PATH_MAX + 32];
	static const struct mc_chan_cbs notice_cbs = { .on_up = imapd_up };
	mc_config_sock(&q->d->cfg, sock, sizeof(sock), MC_SOCK_IMAPD);
	dl->imapd = mc_chan_connect(q->loop, sock, &mc_proto, MC_ROLE_QUEUED, "queued", &notice_cbs, q);
	return q_relay_init(q);
}

static void
close_work(uv_work_t *w)
{
	struct mbox *mb = w->data;
	mc_store_close(mb->store);
	mb->store = NULL;
}

static void
close_after(uv_work_t *w, int status)
{
	struct mbox *mb = w->data;
	(void)status;
	free(mb->path);
	free(mb);
	free(w);
}

void
q_deliver_tick(struct queued *q, double now)
{
	struct q_deliver *dl = q->dl;
	if (mc_resolver_is_up(q->res)) {
		resolve_dispatch(q);
	} else {
		/* resolverd is away: those who waited long enough are deferred */
		while (dl->rq_head && now - dl->rq_head->rq_since >= RESOLVER_WAIT) {
			struct q_rcpt *r = dl->rq_head;
			dl->rq_head = r->rq_next;
			if (dl->rq_head == NULL)
				dl->rq_tail = &dl->rq_head;
			r->rq_next = NULL;
			struct q_msg *m = r->msg;
			mc_info("%s: to=<%s> relay=none delay=%.2f status=deferred (%s)", m->env.qid,
				m->env.rcpt[r - m->rs].addr, delay_of(m), resolver_unreachable);
			r->n_temp++;
			set_reason(r, resolver_unreachable);
			m->expanding--;
			remote_flush(q, m);
			rcpt_finish(q, r);
		}
	}
	q_relay_tick(q, now);
	/* close mailboxes nobody delivered to for a while */
	for (size_t b = 0; b < MBOX_BUCKETS; b++) {
		struct mbox **pp = &dl->mboxes[b];
		while (*pp) {
			struct mbox *mb = *pp;
			bool idle = mb->writing == 0 && !mb->indexing && mb->flight == NULL && mb->n == 0 && !mb->ready;
			if (idle && (now - mb->last_used >= STORE_IDLE || dl->nmbox > STORES_MAX)) {
				*pp = mb->hnext;
				dl->nmbox--;
				uv_work_t *w = calloc(1, sizeof(*w));
				if (w == NULL)
					mc_panic("out of memory");
				w->data = mb;
				if (uv_queue_work(q->loop, w, close_work, close_after) != 0)
					mc_panic("uv_queue_work failed");
				continue;
			}
			pp = &mb->hnext;
		}
	}
}

void
q_deliver_stop(struct queued *q)
{
	struct q_deliver *dl = q->dl;
	if (dl->imapd) {
		mc_chan_close(dl->imapd);
		dl->imapd = NULL;
	}
	free(dl->held);
	dl->held = NULL;
	/* remote deliveries: what is not decided is abandoned */
	q_relay_stop(q);
	/* recipients waiting for resolverd */
	while (dl->rq_head) {
		struct q_rcpt *r = dl->rq_head;
		dl->rq_head = r->rq_next;
		r->rq_next = NULL;
		r->abandoned = true;
	}
	dl->rq_tail = &dl->rq_head;
	/* deliveries not started */
	for (size_t b = 0; b < MBOX_BUCKETS; b++) {
		for (struct mbox *mb = dl->mboxes[b]; mb; mb = mb->hnext) {
			while (mb->head) {
				struct ljob *j = mb->head;
				mb->head = j->next;
				j->r->dests_left--;
				j->r->abandoned = true;
				free(j);
			}
			mb->tail = &mb->head;
			mb->n = 0;
			mb->ready = false;
		}
	}
	dl->ready_head = NULL;
	dl->ready_tail = &dl->ready_head;
	/* calls to resolverd, and every recipient with nothing running any more */
	struct q_msg **all = malloc((dl->inflight ? dl->inflight : 1) * sizeof(*all));
	if (all == NULL)
		mc_panic("out of memory");
	size_t n = 0;
	for (size_t b = 0; b < MSG_BUCKETS; b++)
		for (struct q_msg *m = dl->msgs[b]; m && n < dl->inflight; m = m->hnext)
			all[n++] = m;
	for (size_t k = 0; k < n; k++) {
		struct q_msg *m = all[k];
		if (m->in_lane || m->round_left == 0)
			continue;
		remote_abandon(m);
		for (uint32_t i = 0; i < m->env.nrcpt; i++) {
			struct q_rcpt *r = &m->rs[i];
			if (!r->in_round)
				continue;
			if (r->res_handle) {
				mc_resolver_cancel(q->res, r->res_handle);
				r->res_handle = 0;
				dl->resolving--;
				r->abandoned = true;
			}
			if (r->dests_left == 0) {
				rcpt_conclude(q, r);
				m->round_left--;
			}
		}
		if (m->round_left == 0)
			finish_round(q, m);
	}
	free(all);
}

void
q_deliver_free(struct queued *q)
{
	struct q_deliver *dl = q->dl;
	if (dl == NULL)
		return;
	q_relay_free(q);
	for (size_t b = 0; b < MBOX_BUCKETS; b++) {
		struct mbox *mb = dl->mboxes[b];
		while (mb) {
			struct mbox *next = mb->hnext;
			mc_store_close(mb->store);
			free(mb->path);
			free(mb);
			mb = next;
		}
	}
	for (size_t b = 0; b < MSG_BUCKETS; b++) {
		struct q_msg *m = dl->msgs[b];
		while (m) {
			struct q_msg *next = m->hnext;
			q_msg_free(m);
			m = next;
		}
	}
	free(dl);
	q->dl = NULL;
}
