/*
 * qview.c - the queue database as an administrator asks about it: the
 * SQL behind `postern queue list`, `show`, `summary`, and the selection
 * of the messages an action (hold, delete, ...) applies to.
 *
 * Called by control.c on worker threads only: the read-only queries on
 * control.c's own connection (WAL lets it read while the lane writes, so
 * a listing of 100,000 messages never holds up a commit), the selection
 * inside a lane job on the writer's connection. Builds reply payloads
 * through mail/queue_ctl.h. Owns nothing between calls; never writes.
 *
 * A message's state as listed: held and corrupt as stored; an active
 * message with a deferred recipient is "deferred"; otherwise "active"
 * (waiting for its first try, or being tried now).
 */
#include "queued/control.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/log.h"

/* Recipients shown per message in a listing (show gives them all). */
#define LIST_RCPT_MAX 100
/* Domains in a summary; the rest are added up in one row. */
#define SUMMARY_DOMAINS_MAX 2000

/*
 * The correlated subqueries below look a message's recipients up by the
 * primary key (qid, idx). The unary + keeps SQLite from choosing the
 * state or domain index instead, which would scan every recipient in that
 * state or domain once per message: minutes instead of milliseconds on a
 * queue of 100,000.
 */
static const char has_deferred[] =
	"EXISTS(SELECT 1 FROM recipients d WHERE d.qid = m.qid AND +d.state = 'deferred')";

static const char *
col(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	return s ? s : "";
}

/* The conditions of f on messages m (named parameters, bound by bind_filter). */
static void
where_filter(struct mc_buf *sql, const struct mc_qctl_filter *f)
{
	mc_buf_adds(sql, " WHERE 1");
	if (f->qid[0])
		mc_buf_adds(sql, " AND m.qid = :qid");
	if (f->from[0])
		mc_buf_adds(sql, " AND m.sender = :from COLLATE NOCASE");
	if (f->to[0])
		mc_buf_printf(sql, " AND EXISTS(SELECT 1 FROM recipients t WHERE t.qid = m.qid"
				   " AND +t.state NOT IN ('delivered', 'bounced') AND %s)",
			      strchr(f->to, '@') ? "+t.address = :to COLLATE NOCASE" : "+t.domain = lower(:to)");
	if (strcmp(f->state, "held") == 0 || strcmp(f->state, "corrupt") == 0)
		mc_buf_adds(sql, " AND m.state = :state");
	else if (strcmp(f->state, "deferred") == 0)
		mc_buf_printf(sql, " AND m.state = 'active' AND %s", has_deferred);
	else if (strcmp(f->state, "active") == 0)
		mc_buf_printf(sql, " AND m.state = 'active' AND NOT %s", has_deferred);
	if (f->older_than)
		mc_buf_adds(sql, " AND m.arrival <= :cut");
}

static void
bind_name(sqlite3_stmt *st, const char *name, const char *v)
{
	int i = sqlite3_bind_parameter_index(st, name);
	if (i > 0)
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
}

static void
bind_filter(sqlite3_stmt *st, const struct mc_qctl_filter *f, int64_t now)
{
	bind_name(st, ":qid", f->qid);
	bind_name(st, ":from", strcmp(f->from, "<>") == 0 ? "" : f->from);
	bind_name(st, ":to", f->to);
	bind_name(st, ":state", f->state);
	int i = sqlite3_bind_parameter_index(st, ":cut");
	if (i > 0)
		sqlite3_bind_int64(st, i, now - (int64_t)(f->older_than > (uint64_t)now ? (uint64_t)now : f->older_than));
}

static sqlite3_stmt *
prepare(sqlite3 *db, const struct mc_buf *sql)
{
	sqlite3_stmt *st = NULL;
	if (sql->data == NULL || sqlite3_prepare_v2(db, sql->data, -1, &st, NULL) != SQLITE_OK) {
		mc_error("queue control: %s", sqlite3_errmsg(db));
		return NULL;
	}
	return st;
}

static const char rcpts_sql[] = "SELECT address, state, attempts, next_try, last_error FROM recipients"
				" WHERE qid = ? ORDER BY idx LIMIT ?";

/* The recipients of e->qid into e (at most max), with st prepared from rcpts_sql (reset here). */
static int
load_rcpts(sqlite3_stmt *st, struct mc_qctl_entry *e, uint32_t max)
{
	sqlite3_bind_text(st, 1, e->qid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, max);
	e->rcpt = calloc(e->nrcpt < max ? (e->nrcpt ? e->nrcpt : 1) : max, sizeof(*e->rcpt));
	if (e->rcpt == NULL) {
		sqlite3_reset(st);
		return -1;
	}
	int rc;
	e->n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && e->n < max && e->n < e->nrcpt) {
		struct mc_qctl_rcpt *r = &e->rcpt[e->n++];
		snprintf(r->addr, sizeof(r->addr), "%s", col(st, 0));
		snprintf(r->state, sizeof(r->state), "%s", col(st, 1));
		r->attempts = (uint32_t)sqlite3_column_int64(st, 2);
		r->next_try = strcmp(r->state, "deferred") == 0 ? sqlite3_column_int64(st, 3) : 0;
		snprintf(r->last_error, sizeof(r->last_error), "%s", col(st, 4));
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

static const char entry_cols[] =
	"SELECT m.qid, CASE WHEN m.state = 'active' AND EXISTS(SELECT 1 FROM recipients d WHERE d.qid = m.qid"
	" AND +d.state = 'deferred') THEN 'deferred' ELSE m.state END, m.arrival, m.size, m.sender,"
	" (SELECT min(d.next_try) FROM recipients d WHERE d.qid = m.qid AND +d.state = 'deferred'),"
	" (SELECT count(*) FROM recipients d WHERE d.qid = m.qid)";

static void
entry_from_row(sqlite3_stmt *st, struct mc_qctl_entry *e)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->qid, sizeof(e->qid), "%s", col(st, 0));
	snprintf(e->state, sizeof(e->state), "%s", col(st, 1));
	e->arrival = sqlite3_column_int64(st, 2);
	e->size = (uint64_t)sqlite3_column_int64(st, 3);
	snprintf(e->sender, sizeof(e->sender), "%s", col(st, 4));
	e->next_try = sqlite3_column_type(st, 5) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 5);
	e->nrcpt = (uint32_t)sqlite3_column_int64(st, 6);
}

/* The message being assembled from the rows of the listing's join. */
struct acc {
	struct mc_qctl_entry e;
	uint32_t cap;
	bool deferred;
};

static void
acc_start(struct acc *a, sqlite3_stmt *st)
{
	free(a->e.rcpt);
	memset(a, 0, sizeof(*a));
	snprintf(a->e.qid, sizeof(a->e.qid), "%s", col(st, 0));
	snprintf(a->e.state, sizeof(a->e.state), "%s", col(st, 1));
	a->e.arrival = sqlite3_column_int64(st, 2);
	a->e.size = (uint64_t)sqlite3_column_int64(st, 3);
	snprintf(a->e.sender, sizeof(a->e.sender), "%s", col(st, 4));
}

static int
acc_rcpt(struct acc *a, sqlite3_stmt *st)
{
	const char *state = col(st, 6);
	int64_t next = sqlite3_column_int64(st, 8);
	a->e.nrcpt++;
	if (strcmp(state, "deferred") == 0) {
		if (!a->deferred || next < a->e.next_try)
			a->e.next_try = next;
		a->deferred = true;
	}
	if (a->e.n >= LIST_RCPT_MAX)
		return 0;
	if (a->e.n == a->cap) {
		uint32_t cap = a->cap ? a->cap * 2 : 4;
		void *p = realloc(a->e.rcpt, cap * sizeof(*a->e.rcpt));
		if (p == NULL)
			return -1;
		a->e.rcpt = p;
		a->cap = cap;
	}
	struct mc_qctl_rcpt *r = &a->e.rcpt[a->e.n++];
	snprintf(r->addr, sizeof(r->addr), "%s", col(st, 5));
	snprintf(r->state, sizeof(r->state), "%s", state);
	r->attempts = (uint32_t)sqlite3_column_int64(st, 7);
	r->next_try = strcmp(state, "deferred") == 0 ? next : 0;
	snprintf(r->last_error, sizeof(r->last_error), "%s", col(st, 9));
	return 0;
}

/* Put the assembled message into body unless it would pass the budget (then 1). */
static int
acc_put(struct acc *a, struct mc_msg *body, uint32_t n)
{
	if (a->deferred && strcmp(a->e.state, "active") == 0)
		snprintf(a->e.state, sizeof(a->e.state), "deferred");
	if (n > 0 && body->payload.len + mc_qctl_entry_size(&a->e) > MC_QCTL_REPLY_BUDGET)
		return 1;
	mc_qctl_put_entry(body, &a->e);
	return 0;
}

/*
 * One join for the page: the page's messages (found through the primary
 * key, filtered), each with its recipients (adjacent in their table, which
 * is keyed by qid too). Four lookups per message cost 2.5 times as much.
 */
int
qv_list(sqlite3 *db, const struct mc_qctl_filter *f, const char *after, uint32_t max, struct mc_msg *out)
{
	struct mc_buf sql;
	mc_buf_init(&sql, 0);
	mc_buf_adds(&sql, "SELECT m.qid, m.state, m.arrival, m.size, m.sender, r.address, r.state, r.attempts,"
			  " r.next_try, r.last_error FROM (SELECT * FROM messages m");
	where_filter(&sql, f);
	mc_buf_adds(&sql, " AND m.qid > :after ORDER BY m.qid LIMIT :max) m JOIN recipients r ON r.qid = m.qid"
			  " ORDER BY m.qid, r.idx");
	sqlite3_stmt *st = prepare(db, &sql);
	mc_buf_free(&sql);
	if (st == NULL)
		return -1;
	bind_filter(st, f, (int64_t)time(NULL));
	bind_name(st, ":after", after);
	sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":max"), max);

	/* the count goes first: write the entries aside, then assemble */
	struct mc_msg body;
	mc_msg_init(&body, out->type);
	struct acc a;
	memset(&a, 0, sizeof(a));
	uint32_t n = 0;
	char last[MC_QID_MAX] = "";
	int rc;
	bool full = false, open = false;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!open || strcmp(a.e.qid, col(st, 0)) != 0) {
			if (open) {
				if ((full = acc_put(&a, &body, n) == 1))
					break;
				snprintf(last, sizeof(last), "%s", a.e.qid);
				n++;
			}
			acc_start(&a, st);
			open = true;
		}
		if (acc_rcpt(&a, st) < 0) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	if (rc == SQLITE_DONE && open) {
		if (!(full = acc_put(&a, &body, n) == 1)) {
			snprintf(last, sizeof(last), "%s", a.e.qid);
			n++;
		}
	}
	free(a.e.rcpt);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && !full) {
		mc_msg_free(&body);
		return -1;
	}
	/* a page that came back full may have more behind it */
	mc_msg_put_u32(out, n);
	mc_buf_add(&out->payload, body.payload.data ? body.payload.data : "", body.payload.len);
	mc_qctl_put_next(out, (full || n >= max) ? last : "");
	mc_msg_free(&body);
	return 0;
}

/* The header block of the body file (up to the first empty line), or "" when unreadable. */
static char *
read_headers(const char *path)
{
	char *h = calloc(1, MC_QCTL_HEADERS_MAX + 1);
	if (h == NULL)
		return NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return h;
	size_t n = 0;
	ssize_t r;
	while (n < MC_QCTL_HEADERS_MAX && (r = read(fd, h + n, MC_QCTL_HEADERS_MAX - n)) > 0)
		n += (size_t)r;
	close(fd);
	h[n] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (h[i] == '\0')
			h[i] = '?';
		if (h[i] == '\n' && (h[i + 1] == '\n' || (h[i + 1] == '\r' && i + 2 <= n && h[i + 2] == '\n'))) {
			h[i + 1] = '\0';
			break;
		}
	}
	return h;
}

int
qv_show(sqlite3 *db, const char *active_dir, const char *qid, bool body, struct mc_msg *out)
{
	struct mc_qctl_show s;
	memset(&s, 0, sizeof(s));
	s.body_fd = -1;
	struct mc_buf sql;
	mc_buf_init(&sql, 0);
	mc_buf_adds(&sql, entry_cols);
	mc_buf_adds(&sql, ", m.envid, m.auth_user, m.client, m.flags FROM messages m WHERE m.qid = ?");
	sqlite3_stmt *st = prepare(db, &sql);
	mc_buf_free(&sql);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, qid, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return rc == SQLITE_DONE ? 1 : -1;
	}
	entry_from_row(st, &s.e);
	snprintf(s.envid, sizeof(s.envid), "%s", col(st, 7));
	snprintf(s.auth_user, sizeof(s.auth_user), "%s", col(st, 8));
	snprintf(s.client, sizeof(s.client), "%s", col(st, 9));
	s.flags = (uint32_t)sqlite3_column_int64(st, 10);
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(db, rcpts_sql, -1, &st, NULL) != SQLITE_OK)
		goto fail;
	rc = load_rcpts(st, &s.e, UINT32_MAX);
	sqlite3_finalize(st);
	if (rc < 0)
		goto fail;

	char path[MC_PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/%s", active_dir, s.e.qid);
	if ((s.headers = read_headers(path)) == NULL)
		goto fail;

	/* the history, as much of it as the frame takes; the end is the part an administrator needs */
	size_t budget = MC_QCTL_REPLY_BUDGET - mc_qctl_entry_size(&s.e) - strlen(s.headers) - 4096;
	if (sqlite3_prepare_v2(db, "SELECT time, recipient, what, detail FROM events WHERE qid = ? ORDER BY id", -1, &st,
			       NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(st, 1, qid, -1, SQLITE_STATIC);
	size_t cap = 0, used = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (s.nevents == cap) {
			cap = cap ? cap * 2 : 16;
			void *p = realloc(s.events, cap * sizeof(*s.events));
			if (p == NULL)
				break;
			s.events = p;
		}
		struct mc_qctl_event *ev = &s.events[s.nevents++];
		memset(ev, 0, sizeof(*ev));
		ev->time_ms = (int64_t)(sqlite3_column_double(st, 0) * 1000.0);
		snprintf(ev->qid, sizeof(ev->qid), "%s", qid);
		snprintf(ev->rcpt, sizeof(ev->rcpt), "%s", col(st, 1));
		snprintf(ev->what, sizeof(ev->what), "%s", col(st, 2));
		snprintf(ev->detail, sizeof(ev->detail), "%s", col(st, 3));
		used += 64 + strlen(ev->rcpt) + strlen(ev->what) + strlen(ev->detail);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		goto fail;
	/* too long a history: the first line (queued) and the latest ones */
	uint32_t first = 0;
	while (used > budget && s.nevents - first > 2) {
		struct mc_qctl_event *ev = &s.events[1 + first++];
		used -= 64 + strlen(ev->rcpt) + strlen(ev->what) + strlen(ev->detail);
	}
	if (first) {
		snprintf(s.events[1].what, sizeof(s.events[1].what), "(history)");
		snprintf(s.events[1].detail, sizeof(s.events[1].detail), "%u earlier events not shown", first);
		s.events[1].rcpt[0] = '\0';
		memmove(&s.events[2], &s.events[1 + first], (s.nevents - 1 - first) * sizeof(*s.events));
		s.nevents -= first - 1;
	}
	if (body && (s.body_fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		mc_warn("%s: queue show --body: cannot open the queue file: %s", qid, strerror(errno));
	mc_qctl_put_show(out, &s);   /* takes body_fd */
	s.body_fd = -1;
	mc_qctl_show_free(&s);
	return 0;
fail:
	mc_qctl_show_free(&s);
	return -1;
}

int
qv_summary(sqlite3 *db, const struct mc_qctl_filter *f, struct mc_msg *out)
{
	int64_t now = (int64_t)time(NULL);
	struct mc_buf sql;
	mc_buf_init(&sql, 0);
	mc_buf_adds(&sql, "SELECT dom, count(*), sum(size)");
	int64_t lo = -1;
	for (unsigned b = 0; b < MC_QCTL_BUCKETS; b++) {
		int64_t hi = b + 1 < MC_QCTL_BUCKETS ? (int64_t)mc_qctl_bucket_minutes[b] * 60 : INT64_MAX;
		mc_buf_printf(&sql, ", sum(age > %lld AND age <= %lld)", (long long)lo, (long long)hi);
		lo = hi;
	}
	mc_buf_adds(&sql, " FROM (SELECT DISTINCT r.domain AS dom, m.qid, m.size AS size, :now - m.arrival AS age"
			  " FROM messages m JOIN recipients r ON r.qid = m.qid");
	where_filter(&sql, f);
	mc_buf_adds(&sql, " AND r.state IN ('pending', 'deferred', 'held')) GROUP BY dom ORDER BY count(*) DESC, dom");
	sqlite3_stmt *st = prepare(db, &sql);
	mc_buf_free(&sql);
	if (st == NULL)
		return -1;
	bind_filter(st, f, now);
	sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":now"), now);

	struct mc_qctl_dom *d = calloc(SUMMARY_DOMAINS_MAX + 1, sizeof(*d));
	if (d == NULL) {
		sqlite3_finalize(st);
		return -1;
	}
	uint32_t n = 0, other = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct mc_qctl_dom *x = &d[n < SUMMARY_DOMAINS_MAX ? n : SUMMARY_DOMAINS_MAX];
		if (n < SUMMARY_DOMAINS_MAX) {
			snprintf(x->domain, sizeof(x->domain), "%s", col(st, 0));
			n++;
		} else {
			snprintf(x->domain, sizeof(x->domain), "(other domains)");
			other++;
		}
		x->msgs += (uint32_t)sqlite3_column_int64(st, 1);
		x->bytes += (uint64_t)sqlite3_column_int64(st, 2);
		for (unsigned b = 0; b < MC_QCTL_BUCKETS; b++)
			x->count[b] += (uint32_t)sqlite3_column_int64(st, 3 + (int)b);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		mc_qctl_put_summary(out, d, n + (other ? 1 : 0), other);
	free(d);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
qv_select(sqlite3 *db, const struct mc_qctl_filter *f, struct qv_sel **out, size_t *nout)
{
	struct mc_buf sql;
	mc_buf_init(&sql, 0);
	mc_buf_adds(&sql, "SELECT m.qid, m.state FROM messages m");
	where_filter(&sql, f);
	mc_buf_adds(&sql, " ORDER BY m.qid");
	sqlite3_stmt *st = prepare(db, &sql);
	mc_buf_free(&sql);
	*out = NULL;
	*nout = 0;
	if (st == NULL)
		return -1;
	bind_filter(st, f, (int64_t)time(NULL));
	size_t n = 0, cap = 0;
	struct qv_sel *v = NULL;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			void *p = realloc(v, cap * sizeof(*v));
			if (p == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			v = p;
		}
		snprintf(v[n].qid, sizeof(v[n].qid), "%s", col(st, 0));
		snprintf(v[n].state, sizeof(v[n].state), "%s", col(st, 1));
		v[n].result[0] = '\0';
		v[n].changed = false;
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return -1;
	}
	*out = v;
	*nout = n;
	return 0;
}
