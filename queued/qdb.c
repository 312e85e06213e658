/*
 * qdb.c - the queue database (state_dir/queue/queue.sqlite) and the lane
 * that writes it.
 *
 * Tables: messages (one row per committed message: the envelope and the
 * message's state), recipients (one per recipient: state, attempts,
 * next_try, last_error, the destinations already delivered), events (the
 * history `postern queue show` tells). WAL with synchronous=FULL: a
 * COMMIT that returned is on disk. An administrator's question is a
 * query:
 *
 *   SELECT qid, address, last_error FROM recipients
 *    WHERE state = 'deferred' AND domain = 'gmail.com';
 *
 * Called from worker threads only, one at a time: the lane (at the end of
 * this file) owns the connection while the loop runs; main.c and check.c
 * use it before. Never touches the spool files except through a job's own
 * post-commit step.
 */
#include "queued/queued.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

#define BUSY_TIMEOUT_MS 10000

static const char *const rstate_names[Q_R_COUNT] = {
	[Q_R_PENDING] = "pending", [Q_R_DEFERRED] = "deferred", [Q_R_DELIVERED] = "delivered",
	[Q_R_BOUNCED] = "bounced", [Q_R_HELD] = "held",
};
static const char *const mstate_names[Q_M_COUNT] = {
	[Q_M_ACTIVE] = "active", [Q_M_HELD] = "held", [Q_M_CORRUPT] = "corrupt",
};

const char *
q_rstate_name(enum q_rstate s)
{
	return (unsigned)s < Q_R_COUNT ? rstate_names[s] : "?";
}

int
q_rstate_parse(const char *s)
{
	for (int i = 0; i < Q_R_COUNT; i++)
		if (s && strcmp(s, rstate_names[i]) == 0)
			return i;
	return -1;
}

const char *
q_mstate_name(enum q_mstate s)
{
	return (unsigned)s < Q_M_COUNT ? mstate_names[s] : "?";
}

int
q_mstate_parse(const char *s)
{
	for (int i = 0; i < Q_M_COUNT; i++)
		if (s && strcmp(s, mstate_names[i]) == 0)
			return i;
	return -1;
}

/* ---- messages in memory ---- */

struct q_msg *
q_msg_new(struct mc_envelope *e, double t_arrival)
{
	struct q_msg *m = calloc(1, sizeof(*m));
	if (m == NULL)
		mc_panic("out of memory");
	m->env = *e;
	mc_envelope_init(e);
	m->rs = calloc(m->env.nrcpt ? m->env.nrcpt : 1, sizeof(*m->rs));
	if (m->rs == NULL)
		mc_panic("out of memory");
	for (uint32_t i = 0; i < m->env.nrcpt; i++) {
		m->rs[i].msg = m;
		m->rs[i].idx = i;
		m->rs[i].state = Q_R_PENDING;
	}
	m->state = Q_M_ACTIVE;
	m->t_arrival = t_arrival;
	return m;
}

void
q_msg_free(struct q_msg *m)
{
	if (m == NULL)
		return;
	for (uint32_t i = 0; i < m->env.nrcpt; i++) {
		free(m->rs[i].done_dests);
		free(m->rs[i].ev_detail);
	}
	free(m->rs);
	free(m->bounce_req);   /* an administrator's bounce never applied (the daemon stops) */
	mc_envelope_free(&m->env);
	free(m);
}

bool
q_rcpt_done_has(const struct q_rcpt *r, const char *addr)
{
	if (r->done_dests == NULL)
		return false;
	size_t n = strlen(addr);
	for (const char *p = r->done_dests; *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (len == n && memcmp(p, addr, n) == 0)
			return true;
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return false;
}

int
q_rcpt_done_add(struct q_rcpt *r, const char *addr)
{
	if (q_rcpt_done_has(r, addr) || strchr(addr, '\n'))
		return 0;
	size_t old = r->done_dests ? strlen(r->done_dests) : 0, n = strlen(addr);
	char *p = realloc(r->done_dests, old + n + 2);
	if (p == NULL)
		return -1;
	if (old)
		p[old++] = '\n';
	memcpy(p + old, addr, n + 1);
	r->done_dests = p;
	return 0;
}

/* ---- the database ---- */

enum {
	ST_INS_MSG,
	ST_INS_RCPT,
	ST_UPD_RCPT,
	ST_EVENT,
	ST_DEL_MSG,
	ST_DEL_EVENTS,
	ST_SET_STATE,
	ST_GET_MSG,
	ST_GET_RCPTS,
	ST_SET_WARNED,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_INS_MSG] = "INSERT INTO messages(qid, sender, envid, flags, size, arrival, auth_user, client, state)"
		       " VALUES(?, ?, ?, ?, ?, ?, ?, ?, 'active')",
	[ST_INS_RCPT] = "INSERT INTO recipients(qid, idx, address, domain, orcpt, notify) VALUES(?, ?, ?, ?, ?, ?)",
	[ST_UPD_RCPT] = "UPDATE recipients SET state = ?, attempts = ?, next_try = ?, last_error = ?, done_dests = ?"
			" WHERE qid = ? AND idx = ?",
	[ST_EVENT] = "INSERT INTO events(qid, time, recipient, what, detail) VALUES(?, ?, ?, ?, ?)",
	[ST_DEL_MSG] = "DELETE FROM messages WHERE qid = ?",
	[ST_DEL_EVENTS] = "DELETE FROM events WHERE qid = ?",
	[ST_SET_STATE] = "UPDATE messages SET state = ? WHERE qid = ?",
	[ST_GET_MSG] = "SELECT sender, envid, flags, size, arrival, auth_user, client, state, warned FROM messages"
		       " WHERE qid = ?",
	[ST_GET_RCPTS] = "SELECT idx, address, orcpt, notify, state, attempts, next_try, last_error, done_dests"
			 " FROM recipients WHERE qid = ? ORDER BY idx",
	[ST_SET_WARNED] = "UPDATE messages SET warned = ? WHERE qid = ?",
};

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS messages("
	" qid TEXT PRIMARY KEY,"
	" sender TEXT NOT NULL,"                    /* '' is the null sender */
	" envid TEXT NOT NULL DEFAULT '',"
	" flags INTEGER NOT NULL DEFAULT 0,"        /* enum mc_env_flags */
	" size INTEGER NOT NULL,"
	" arrival INTEGER NOT NULL,"
	" auth_user TEXT NOT NULL DEFAULT '',"
	" client TEXT NOT NULL DEFAULT '',"
	" state TEXT NOT NULL DEFAULT 'active',"    /* active, held, corrupt */
	" warned INTEGER NOT NULL DEFAULT 0"        /* when the sender was told of a delay (version 2) */
	") WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS recipients("
	" qid TEXT NOT NULL REFERENCES messages(qid) ON DELETE CASCADE,"
	" idx INTEGER NOT NULL,"
	" address TEXT NOT NULL,"
	" domain TEXT NOT NULL DEFAULT '',"
	" orcpt TEXT NOT NULL DEFAULT '',"
	" notify INTEGER NOT NULL DEFAULT 0,"       /* enum mc_notify */
	" state TEXT NOT NULL DEFAULT 'pending',"   /* pending, deferred, delivered, bounced, held */
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" next_try INTEGER NOT NULL DEFAULT 0,"
	" last_error TEXT NOT NULL DEFAULT '',"
	" done_dests TEXT NOT NULL DEFAULT '',"     /* destinations already delivered, one per line */
	" PRIMARY KEY(qid, idx)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS recipients_due ON recipients(state, next_try);"
	"CREATE INDEX IF NOT EXISTS recipients_domain ON recipients(domain, state);"
	"CREATE TABLE IF NOT EXISTS events("
	" id INTEGER PRIMARY KEY,"
	" qid TEXT NOT NULL,"
	" time REAL NOT NULL,"
	" recipient TEXT NOT NULL DEFAULT '',"
	" what TEXT NOT NULL,"                      /* queued, delivered, deferred, bounced, corrupt, ... */
	" detail TEXT NOT NULL DEFAULT '');"
	"CREATE INDEX IF NOT EXISTS events_qid ON events(qid, id);";

struct qdb {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
};

static int
exec(struct qdb *q, const char *sql)
{
	return sqlite3_exec(q->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

struct qdb *
qdb_open(const char *path, char *err, size_t errsz)
{
	struct qdb *q = calloc(1, sizeof(*q));
	if (q == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	int rc = sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(q->db, BUSY_TIMEOUT_MS);
	if (exec(q, "PRAGMA journal_mode=WAL") < 0 || exec(q, "PRAGMA synchronous=FULL") < 0 ||
	    exec(q, "PRAGMA foreign_keys=ON") < 0 || exec(q, "PRAGMA temp_store=MEMORY") < 0 ||
	    exec(q, "BEGIN IMMEDIATE") < 0)
		goto fail;
	sqlite3_stmt *st;
	long version = -1;
	if (sqlite3_prepare_v2(q->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			version = (long)sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	/* a new database gets the whole schema; an older one its migrations, in the same transaction */
	bool made = version == 0 && (exec(q, schema_sql) < 0 || exec(q, "PRAGMA user_version=2") < 0);
	bool v1 = version == 1 && (exec(q, "ALTER TABLE messages ADD COLUMN warned INTEGER NOT NULL DEFAULT 0") < 0 ||
				   exec(q, "PRAGMA user_version=2") < 0);
	if (made || v1) {
		exec(q, "ROLLBACK");
		goto fail;
	}
	if (version == 0 || version == 1)
		version = Q_SCHEMA_VERSION;
	if (exec(q, "COMMIT") < 0)
		goto fail;
	if (version < 0 || version > Q_SCHEMA_VERSION) {
		snprintf(err, errsz, "%s: schema version %ld is not %d", path, version, Q_SCHEMA_VERSION);
		qdb_close(q);
		return NULL;
	}
	for (int i = 0; i < ST_COUNT; i++)
		if (sqlite3_prepare_v3(q->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &q->st[i], NULL) != SQLITE_OK)
			goto fail;
	return q;
fail:
	snprintf(err, errsz, "%s: %s", path, q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
	qdb_close(q);
	return NULL;
}

void
qdb_close(struct qdb *q)
{
	if (q == NULL)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(q->st[i]);
	sqlite3_close_v2(q->db);
	free(q);
}

struct sqlite3 *
qdb_sqlite(struct qdb *q)
{
	return q->db;
}

const char *
qdb_errmsg(struct qdb *q)
{
	return sqlite3_errmsg(q->db);
}

int
qdb_begin(struct qdb *q)
{
	return exec(q, "BEGIN IMMEDIATE");
}

int
qdb_commit(struct qdb *q)
{
	return exec(q, "COMMIT");
}

void
qdb_rollback(struct qdb *q)
{
	exec(q, "ROLLBACK");
}

int
qdb_savepoint(struct qdb *q)
{
	return exec(q, "SAVEPOINT job");
}

int
qdb_release(struct qdb *q)
{
	return exec(q, "RELEASE job");
}

void
qdb_rollback_to(struct qdb *q)
{
	exec(q, "ROLLBACK TO job");
	exec(q, "RELEASE job");
}

/* Step a prepared statement that returns no rows, and make it ready again. */
static int
step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
qdb_event(struct qdb *q, const char *qid, double when, const char *rcpt, const char *what, const char *detail)
{
	sqlite3_stmt *st = q->st[ST_EVENT];
	sqlite3_bind_text(st, 1, qid, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 2, when);
	sqlite3_bind_text(st, 3, rcpt ? rcpt : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, what, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, detail ? detail : "", -1, SQLITE_STATIC);
	return step_done(st);
}

static const char *
domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at ? at + 1 : "";
}

int
qdb_insert(struct qdb *q, const struct mc_envelope *e, double now)
{
	sqlite3_stmt *st = q->st[ST_INS_MSG];
	sqlite3_bind_text(st, 1, e->qid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, e->sender, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, e->envid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, e->flags);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)e->size);
	sqlite3_bind_int64(st, 6, e->arrival);
	sqlite3_bind_text(st, 7, e->auth_user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, e->client, -1, SQLITE_STATIC);
	if (step_done(st) < 0)
		return -1;
	st = q->st[ST_INS_RCPT];
	char dom[MC_ADDR_MAX];
	for (uint32_t i = 0; i < e->nrcpt; i++) {
		snprintf(dom, sizeof(dom), "%s", domain_of(e->rcpt[i].addr));
		for (char *p = dom; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		sqlite3_bind_text(st, 1, e->qid, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, i);
		sqlite3_bind_text(st, 3, e->rcpt[i].addr, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, dom, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, e->rcpt[i].orcpt, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, e->rcpt[i].notify);
		if (step_done(st) < 0)
			return -1;
	}
	char detail[MC_ADDR_MAX + 400];
	snprintf(detail, sizeof(detail), "from=<%s> size=%llu nrcpt=%u client=%s", e->sender,
		 (unsigned long long)e->size, e->nrcpt, e->client);
	return qdb_event(q, e->qid, now, NULL, "queued", detail);
}

int
qdb_save_rcpts(struct qdb *q, const struct q_msg *m, double now)
{
	sqlite3_stmt *st = q->st[ST_UPD_RCPT];
	for (uint32_t i = 0; i < m->env.nrcpt; i++) {
		const struct q_rcpt *r = &m->rs[i];
		if (!r->changed)
			continue;
		sqlite3_bind_text(st, 1, q_rstate_name(r->state), -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, r->attempts);
		sqlite3_bind_int64(st, 3, r->next_try);
		sqlite3_bind_text(st, 4, r->last_error, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, r->done_dests ? r->done_dests : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, m->env.qid, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 7, r->idx);
		if (step_done(st) < 0)
			return -1;
		if (sqlite3_changes(q->db) == 0)
			continue;   /* removed meanwhile (postern queue delete): no history for it */
		const char *detail = r->state == Q_R_DELIVERED ? (r->ev_detail ? r->ev_detail : r->done_dests)
							       : r->last_error;
		if (r->state == Q_R_PENDING && !r->abandoned)
			continue;
		if (qdb_event(q, m->env.qid, now, m->env.rcpt[i].addr,
			      r->abandoned ? "interrupted" : q_rstate_name(r->state), detail) < 0)
			return -1;
	}
	return 0;
}

int
qdb_set_warned(struct qdb *q, const char *qid, int64_t when)
{
	sqlite3_stmt *st = q->st[ST_SET_WARNED];
	sqlite3_bind_int64(st, 1, when);
	sqlite3_bind_text(st, 2, qid, -1, SQLITE_STATIC);
	return step_done(st);
}

int
qdb_delete(struct qdb *q, const char *qid)
{
	sqlite3_bind_text(q->st[ST_DEL_EVENTS], 1, qid, -1, SQLITE_STATIC);
	if (step_done(q->st[ST_DEL_EVENTS]) < 0)
		return -1;
	/* recipients go with the message (ON DELETE CASCADE) */
	sqlite3_bind_text(q->st[ST_DEL_MSG], 1, qid, -1, SQLITE_STATIC);
	return step_done(q->st[ST_DEL_MSG]);
}

int
qdb_set_state(struct qdb *q, const char *qid, enum q_mstate state, const char *why, double now)
{
	sqlite3_stmt *st = q->st[ST_SET_STATE];
	sqlite3_bind_text(st, 1, q_mstate_name(state), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, qid, -1, SQLITE_STATIC);
	if (step_done(st) < 0)
		return -1;
	return qdb_event(q, qid, now, NULL, q_mstate_name(state), why);
}

static const char *
col_text(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	return s ? s : "";
}

struct q_msg *
qdb_load(struct qdb *q, const char *qid, int *err)
{
	*err = 0;
	struct mc_envelope e;
	mc_envelope_init(&e);
	sqlite3_stmt *st = q->st[ST_GET_MSG];
	sqlite3_bind_text(st, 1, qid, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		*err = rc == SQLITE_DONE ? 0 : -1;
		return NULL;
	}
	snprintf(e.qid, sizeof(e.qid), "%s", qid);
	snprintf(e.sender, sizeof(e.sender), "%s", col_text(st, 0));
	snprintf(e.envid, sizeof(e.envid), "%s", col_text(st, 1));
	e.flags = (uint32_t)sqlite3_column_int64(st, 2);
	e.size = (uint64_t)sqlite3_column_int64(st, 3);
	e.arrival = sqlite3_column_int64(st, 4);
	snprintf(e.auth_user, sizeof(e.auth_user), "%s", col_text(st, 5));
	snprintf(e.client, sizeof(e.client), "%s", col_text(st, 6));
	int mstate = q_mstate_parse(col_text(st, 7));
	int64_t warned = sqlite3_column_int64(st, 8);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);

	struct {
		uint32_t idx, attempts;
		int state;
		int64_t next_try;
		char *last_error, *done;
	} *rows = NULL;
	size_t n = 0, cap = 0;
	st = q->st[ST_GET_RCPTS];
	sqlite3_bind_text(st, 1, qid, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			void *nr = realloc(rows, cap * sizeof(*rows));
			if (nr == NULL)
				mc_panic("out of memory");
			rows = nr;
		}
		rows[n].idx = (uint32_t)sqlite3_column_int64(st, 0);
		rows[n].state = q_rstate_parse(col_text(st, 4));
		rows[n].attempts = (uint32_t)sqlite3_column_int64(st, 5);
		rows[n].next_try = sqlite3_column_int64(st, 6);
		rows[n].last_error = strdup(col_text(st, 7));
		rows[n].done = col_text(st, 8)[0] ? strdup(col_text(st, 8)) : NULL;
		if (mc_envelope_add_rcpt(&e, col_text(st, 1), col_text(st, 2), (uint32_t)sqlite3_column_int64(st, 3),
					 UINT32_MAX) < 0)
			rc = SQLITE_ERROR;
		n++;
		if (rc == SQLITE_ERROR)
			break;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	struct q_msg *m = NULL;
	if (rc == SQLITE_DONE && n == e.nrcpt) {
		m = q_msg_new(&e, (double)e.arrival);
		m->state = mstate < 0 ? Q_M_CORRUPT : (enum q_mstate)mstate;
		m->warned = warned;
		for (size_t i = 0; i < n; i++) {
			struct q_rcpt *r = &m->rs[i];
			r->idx = rows[i].idx;
			r->state = rows[i].state < 0 ? Q_R_HELD : (enum q_rstate)rows[i].state;
			r->attempts = rows[i].attempts;
			r->next_try = rows[i].next_try;
			snprintf(r->last_error, sizeof(r->last_error), "%s", rows[i].last_error ? rows[i].last_error : "");
			r->done_dests = rows[i].done;
			rows[i].done = NULL;
		}
	} else {
		*err = -1;
	}
	for (size_t i = 0; i < n; i++) {
		free(rows[i].last_error);
		free(rows[i].done);
	}
	free(rows);
	mc_envelope_free(&e);
	return m;
}

static int
qid_cmp(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

int
qdb_due(struct qdb *q, int64_t now, const char (*skip)[MC_QID_MAX], size_t nskip, char (*qids)[MC_QID_MAX],
	size_t max, int64_t *next_due)
{
	sqlite3_stmt *st;
	*next_due = INT64_MAX;
	if (sqlite3_prepare_v2(q->db,
			       "SELECT r.qid, min(CASE r.state WHEN 'pending' THEN 0 ELSE r.next_try END) AS due"
			       " FROM recipients r JOIN messages m ON m.qid = r.qid"
			       " WHERE m.state = 'active' AND r.state IN ('pending', 'deferred')"
			       " GROUP BY r.qid HAVING due <= ?1 ORDER BY due, r.qid LIMIT ?2",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)(max + nskip));
	size_t n = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < max) {
		const char *qid = col_text(st, 0);
		char key[MC_QID_MAX];
		snprintf(key, sizeof(key), "%s", qid);
		if (nskip && bsearch(key, skip, nskip, sizeof(*skip), qid_cmp))
			continue;
		memcpy(qids[n++], key, sizeof(key));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return -1;
	if (sqlite3_prepare_v2(q->db,
			       "SELECT min(r.next_try) FROM recipients r JOIN messages m ON m.qid = r.qid"
			       " WHERE m.state = 'active' AND r.state = 'deferred' AND r.next_try > ?",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, now);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		*next_due = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return (int)n;
}

int
qdb_foreach(struct qdb *q, int (*cb)(void *arg, const char *qid, uint64_t size, enum q_mstate st), void *arg)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(q->db, "SELECT qid, size, state FROM messages ORDER BY qid", -1, &st, NULL) !=
	    SQLITE_OK)
		return -1;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int ms = q_mstate_parse(col_text(st, 2));
		if (cb(arg, col_text(st, 0), (uint64_t)sqlite3_column_int64(st, 1),
		       ms < 0 ? Q_M_CORRUPT : (enum q_mstate)ms) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
qdb_reschedule(struct qdb *q, const char *last_error, int64_t when)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(q->db, "UPDATE recipients SET next_try = ? WHERE state = 'deferred' AND last_error = ?",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, when);
	sqlite3_bind_text(st, 2, last_error, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? sqlite3_changes(q->db) : -1;
}

static long
count(struct qdb *q, const char *sql, const char *arg)
{
	sqlite3_stmt *st;
	long n = -1;
	if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (arg)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = (long)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

long
qdb_count_rcpts(struct qdb *q, int state)
{
	if (state < 0)
		return count(q, "SELECT count(*) FROM recipients", NULL);
	return count(q, "SELECT count(*) FROM recipients WHERE state = ?", q_rstate_name((enum q_rstate)state));
}

long
qdb_count_messages(struct qdb *q)
{
	return count(q, "SELECT count(*) FROM messages", NULL);
}

/* ---- the lane: one writer transaction at a time, shared by every job queued meanwhile ---- */

static void lane_kick(struct q_lane *l);

static void
lane_work(uv_work_t *w)
{
	struct q_lane *l = w->data;
	bool any = false;
	for (struct q_job *j = l->running; j; j = j->next) {
		j->status = j->pre ? j->pre(j) : 0;
		if (j->status == 0 && j->run)
			any = true;
	}
	if (any) {
		bool tx_ok = qdb_begin(l->db) == 0;
		if (!tx_ok)
			mc_error("queue database: begin: %s", qdb_errmsg(l->db));
		for (struct q_job *j = l->running; tx_ok && j; j = j->next) {
			if (j->status != 0 || j->run == NULL)
				continue;
			if (qdb_savepoint(l->db) < 0) {
				j->status = -1;
				continue;
			}
			if (j->run(l->db, j) < 0) {
				mc_error("queue database: %s", qdb_errmsg(l->db));
				qdb_rollback_to(l->db);
				j->status = -1;
			} else if (qdb_release(l->db) < 0) {
				j->status = -1;
			}
		}
		if (tx_ok && qdb_commit(l->db) < 0) {
			mc_error("queue database: commit: %s", qdb_errmsg(l->db));
			qdb_rollback(l->db);
			tx_ok = false;
		}
		if (!tx_ok)
			for (struct q_job *j = l->running; j; j = j->next)
				if (j->run)
					j->status = -1;
	}
	for (struct q_job *j = l->running; j; j = j->next)
		if (j->post)
			j->post(j, j->status);
}

static void
lane_after(uv_work_t *w, int status)
{
	struct q_lane *l = w->data;
	struct q_job *j = l->running;
	l->running = NULL;
	l->busy = false;
	while (j) {
		struct q_job *next = j->next;
		if (status != 0)
			j->status = -1;   /* cancelled: never happens, the loop does not cancel work */
		if (j->done)
			j->done(j, j->status);
		j = next;
	}
	lane_kick(l);
}

static void
lane_kick(struct q_lane *l)
{
	if (l->busy || l->pending == NULL)
		return;
	l->running = l->pending;
	l->pending = NULL;
	l->ptail = &l->pending;
	l->busy = true;
	l->batches++;
	for (struct q_job *j = l->running; j; j = j->next)
		l->jobs++;
	l->work.data = l;
	if (uv_queue_work(l->loop, &l->work, lane_work, lane_after) != 0)
		mc_panic("uv_queue_work failed");
}

void
q_lane_init(struct q_lane *l, uv_loop_t *loop, struct qdb *db)
{
	memset(l, 0, sizeof(*l));
	l->loop = loop;
	l->db = db;
	l->ptail = &l->pending;
}

void
q_lane_submit(struct q_lane *l, struct q_job *j)
{
	j->next = NULL;
	j->status = 0;
	*l->ptail = j;
	l->ptail = &j->next;
	lane_kick(l);
}

bool
q_lane_idle(const struct q_lane *l)
{
	return !l->busy && l->pending == NULL;
}
