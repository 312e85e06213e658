/*
 * test_qdb.c - the queue database and the start-up check: envelopes
 * committed in batches through the lane (one transaction for many, one
 * failing job not undoing the others), recipient state transitions and
 * what is due when, and the check's cases (unfinished submission, body
 * without envelope, envelope without body), the migration of a version 1
 * queue.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "mail/qid.h"
#include "queued/queued.h"

struct fx {
	char dir[128];
	char dbpath[200];
	struct qdb *db;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_qdb.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	char p[300];
	snprintf(p, sizeof(p), "%s/incoming", f->dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/active", f->dir);
	mkdir(p, 0700);
	snprintf(f->dbpath, sizeof(f->dbpath), "%s/queue.sqlite", f->dir);
	char err[256];
	f->db = qdb_open(f->dbpath, err, sizeof(err));
	if (f->db == NULL) {
		fprintf(stderr, "qdb_open: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	qdb_close(f->db);
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void
make_env(struct mc_envelope *e, const char *qid, unsigned nrcpt, uint64_t size)
{
	mc_envelope_init(e);
	if (qid)
		snprintf(e->qid, sizeof(e->qid), "%s", qid);
	else
		mc_qid_new(e->qid);
	snprintf(e->sender, sizeof(e->sender), "alice@example.org");
	snprintf(e->client, sizeof(e->client), "client.example [127.0.0.1]");
	e->size = size;
	e->arrival = (int64_t)time(NULL);
	for (unsigned i = 0; i < nrcpt; i++) {
		char a[64];
		snprintf(a, sizeof(a), "user%u@Example.NET", i);
		assert_int_equal(mc_envelope_add_rcpt(e, a, i == 0 ? "rfc822;orig@example.net" : "", MC_NOTIFY_FAILURE,
						      1000),
				 0);
	}
}

static void
test_insert_and_load(void **state)
{
	struct fx *f = *state;
	char qids[10][MC_QID_MAX];
	assert_int_equal(qdb_begin(f->db), 0);
	for (int i = 0; i < 10; i++) {
		struct mc_envelope e;
		make_env(&e, NULL, 1 + (unsigned)i % 3, 100 + (uint64_t)i);
		memcpy(qids[i], e.qid, MC_QID_MAX);
		assert_int_equal(qdb_insert(f->db, &e, 1.0), 0);
		mc_envelope_free(&e);
	}
	assert_int_equal(qdb_commit(f->db), 0);
	assert_int_equal(qdb_count_messages(f->db), 10);
	assert_int_equal(qdb_count_rcpts(f->db, -1), 4 * 1 + 3 * 2 + 3 * 3);
	assert_int_equal(qdb_count_rcpts(f->db, Q_R_PENDING), 19);

	int err;
	struct q_msg *m = qdb_load(f->db, qids[2], &err);
	assert_non_null(m);
	assert_string_equal(m->env.qid, qids[2]);
	assert_string_equal(m->env.sender, "alice@example.org");
	assert_int_equal(m->env.size, 102);
	assert_int_equal(m->env.nrcpt, 3);
	assert_string_equal(m->env.rcpt[0].addr, "user0@Example.NET");
	assert_string_equal(m->env.rcpt[0].orcpt, "rfc822;orig@example.net");
	assert_int_equal(m->env.rcpt[1].notify, MC_NOTIFY_FAILURE);
	assert_int_equal(m->state, Q_M_ACTIVE);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(m->rs[i].state, Q_R_PENDING);
		assert_int_equal(m->rs[i].idx, i);
	}
	q_msg_free(m);
	assert_null(qdb_load(f->db, "0000000000000000", &err));
	assert_int_equal(err, 0);

	/* the same qid twice is refused (ids are never reused) */
	struct mc_envelope e;
	make_env(&e, qids[0], 1, 5);
	assert_int_equal(qdb_begin(f->db), 0);
	assert_int_equal(qdb_insert(f->db, &e, 1.0), -1);
	qdb_rollback(f->db);
	mc_envelope_free(&e);
}

/* ---- the lane ---- */

struct ins_job {
	struct q_job job;
	struct mc_envelope env;
	int done_status;
	bool done;
};

static int
ins_run(struct qdb *db, struct q_job *j)
{
	struct ins_job *ij = (struct ins_job *)j;
	return qdb_insert(db, &ij->env, 2.0);
}

static void
ins_done(struct q_job *j, int status)
{
	struct ins_job *ij = (struct ins_job *)j;
	ij->done = true;
	ij->done_status = status;
}

static void
test_lane_batches(void **state)
{
	struct fx *f = *state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct q_lane lane;
	q_lane_init(&lane, &loop, f->db);
	struct ins_job jobs[20];
	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < 20; i++) {
		make_env(&jobs[i].env, NULL, 2, 10);
		/* job 7 repeats job 3's qid: it must fail alone */
		if (i == 7)
			memcpy(jobs[i].env.qid, jobs[3].env.qid, MC_QID_MAX);
		jobs[i].job.run = ins_run;
		jobs[i].job.done = ins_done;
		q_lane_submit(&lane, &jobs[i].job);
	}
	assert_false(q_lane_idle(&lane));
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_true(q_lane_idle(&lane));
	/* the first job started a transaction alone; the 19 that came meanwhile shared the next */
	assert_int_equal(lane.batches, 2);
	assert_int_equal(lane.jobs, 20);
	for (int i = 0; i < 20; i++) {
		assert_true(jobs[i].done);
		assert_int_equal(jobs[i].done_status, i == 7 ? -1 : 0);
		mc_envelope_free(&jobs[i].env);
	}
	assert_int_equal(qdb_count_messages(f->db), 19);
	assert_int_equal(qdb_count_rcpts(f->db, -1), 38);
	uv_loop_close(&loop);
}

static void
test_rcpt_transitions(void **state)
{
	struct fx *f = *state;
	struct mc_envelope e;
	make_env(&e, NULL, 3, 10);
	char qid[MC_QID_MAX];
	memcpy(qid, e.qid, sizeof(qid));
	assert_int_equal(qdb_begin(f->db), 0);
	assert_int_equal(qdb_insert(f->db, &e, 1.0), 0);
	assert_int_equal(qdb_commit(f->db), 0);
	mc_envelope_free(&e);

	int64_t now = (int64_t)time(NULL), next;
	char got[4][MC_QID_MAX];
	assert_int_equal(qdb_due(f->db, now, NULL, 0, got, 4, &next), 1);
	assert_string_equal(got[0], qid);
	/* in flight: skipped */
	assert_int_equal(qdb_due(f->db, now, (const char(*)[MC_QID_MAX])got, 1, got + 1, 3, &next), 0);

	int err;
	struct q_msg *m = qdb_load(f->db, qid, &err);
	assert_non_null(m);
	m->rs[0].state = Q_R_DEFERRED;
	m->rs[0].attempts = 1;
	m->rs[0].next_try = now + 300;
	snprintf(m->rs[0].last_error, sizeof(m->rs[0].last_error), "mailbox busy");
	m->rs[0].changed = true;
	m->rs[1].state = Q_R_DELIVERED;
	assert_int_equal(q_rcpt_done_add(&m->rs[1], "user1@example.net"), 0);
	assert_int_equal(q_rcpt_done_add(&m->rs[1], "other@example.net"), 0);
	assert_int_equal(q_rcpt_done_add(&m->rs[1], "user1@example.net"), 0);
	assert_true(q_rcpt_done_has(&m->rs[1], "other@example.net"));
	assert_false(q_rcpt_done_has(&m->rs[1], "other@example.ne"));
	m->rs[1].changed = true;
	m->rs[2].state = Q_R_BOUNCED;
	snprintf(m->rs[2].last_error, sizeof(m->rs[2].last_error), "user unknown");
	m->rs[2].changed = true;
	assert_int_equal(qdb_begin(f->db), 0);
	assert_int_equal(qdb_save_rcpts(f->db, m, 3.0), 0);
	assert_int_equal(qdb_commit(f->db), 0);
	q_msg_free(m);

	m = qdb_load(f->db, qid, &err);
	assert_non_null(m);
	assert_int_equal(m->rs[0].state, Q_R_DEFERRED);
	assert_int_equal(m->rs[0].attempts, 1);
	assert_int_equal(m->rs[0].next_try, now + 300);
	assert_string_equal(m->rs[0].last_error, "mailbox busy");
	assert_int_equal(m->rs[1].state, Q_R_DELIVERED);
	assert_string_equal(m->rs[1].done_dests, "user1@example.net\nother@example.net");
	assert_int_equal(m->rs[2].state, Q_R_BOUNCED);
	q_msg_free(m);
	assert_int_equal(qdb_count_rcpts(f->db, Q_R_DEFERRED), 1);

	/* deferred until now+300: not due now, due then */
	assert_int_equal(qdb_due(f->db, now, NULL, 0, got, 4, &next), 0);
	assert_int_equal(next, now + 300);
	assert_int_equal(qdb_due(f->db, now + 300, NULL, 0, got, 4, &next), 1);

	/* held messages are not due */
	assert_int_equal(qdb_begin(f->db), 0);
	assert_int_equal(qdb_set_state(f->db, qid, Q_M_HELD, "by admin", 4.0), 0);
	assert_int_equal(qdb_commit(f->db), 0);
	assert_int_equal(qdb_due(f->db, now + 300, NULL, 0, got, 4, &next), 0);

	assert_int_equal(qdb_begin(f->db), 0);
	assert_int_equal(qdb_delete(f->db, qid), 0);
	assert_int_equal(qdb_commit(f->db), 0);
	assert_int_equal(qdb_count_messages(f->db), 0);
	assert_int_equal(qdb_count_rcpts(f->db, -1), 0);
}

/* ---- the start-up check ---- */

static void
write_file(struct fx *f, const char *sub, const char *name, size_t size)
{
	char p[300];
	snprintf(p, sizeof(p), "%s/%s/%s", f->dir, sub, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	char buf[256];
	memset(buf, 'x', sizeof(buf));
	while (size) {
		size_t n = size < sizeof(buf) ? size : sizeof(buf);
		assert_int_equal(write(fd, buf, n), n);
		size -= n;
	}
	close(fd);
}

static bool
exists(struct fx *f, const char *sub, const char *name)
{
	char p[300];
	struct stat sb;
	snprintf(p, sizeof(p), "%s/%s/%s", f->dir, sub, name);
	return stat(p, &sb) == 0;
}

static void
test_check(void **state)
{
	struct fx *f = *state;
	char good[MC_QID_MAX], orphan[MC_QID_MAX], nobody[MC_QID_MAX], wrongsize[MC_QID_MAX], unfinished[MC_QID_MAX];
	struct mc_envelope e;
	assert_int_equal(qdb_begin(f->db), 0);
	make_env(&e, NULL, 1, 300);
	memcpy(good, e.qid, MC_QID_MAX);
	assert_int_equal(qdb_insert(f->db, &e, 1.0), 0);
	mc_envelope_free(&e);
	make_env(&e, NULL, 2, 300);
	memcpy(nobody, e.qid, MC_QID_MAX);
	assert_int_equal(qdb_insert(f->db, &e, 1.0), 0);
	mc_envelope_free(&e);
	make_env(&e, NULL, 1, 300);
	memcpy(wrongsize, e.qid, MC_QID_MAX);
	assert_int_equal(qdb_insert(f->db, &e, 1.0), 0);
	mc_envelope_free(&e);
	assert_int_equal(qdb_commit(f->db), 0);
	mc_qid_new(orphan);
	mc_qid_new(unfinished);

	write_file(f, "active", good, 300);
	write_file(f, "active", wrongsize, 299);
	write_file(f, "active", orphan, 50);
	write_file(f, "active", "README", 5);
	write_file(f, "incoming", unfinished, 10);

	struct q_check_stats st;
	char err[256];
	assert_int_equal(q_check_run(f->dir, f->db, &st, err, sizeof(err)), 0);
	assert_int_equal(st.incoming_removed, 1);
	assert_int_equal(st.orphans_removed, 1);
	assert_int_equal(st.corrupt, 2);
	assert_int_equal(st.messages, 1);

	assert_false(exists(f, "incoming", unfinished));
	assert_false(exists(f, "active", orphan));
	assert_true(exists(f, "active", good));
	assert_true(exists(f, "active", wrongsize));  /* kept for the administrator */
	assert_true(exists(f, "active", "README"));   /* not ours: left alone */

	/* never dropped: the envelopes are still there, marked corrupt, and no longer due */
	assert_int_equal(qdb_count_messages(f->db), 3);
	int lerr;
	struct q_msg *m = qdb_load(f->db, nobody, &lerr);
	assert_non_null(m);
	assert_int_equal(m->state, Q_M_CORRUPT);
	q_msg_free(m);
	m = qdb_load(f->db, wrongsize, &lerr);
	assert_int_equal(m->state, Q_M_CORRUPT);
	q_msg_free(m);
	char got[4][MC_QID_MAX];
	int64_t next;
	assert_int_equal(qdb_due(f->db, (int64_t)time(NULL), NULL, 0, got, 4, &next), 1);
	assert_string_equal(got[0], good);

	/* a second run finds nothing more to do */
	assert_int_equal(q_check_run(f->dir, f->db, &st, err, sizeof(err)), 0);
	assert_int_equal(st.incoming_removed + st.orphans_removed + st.corrupt, 0);
	assert_int_equal(st.messages, 1);
}

/* A version 1 queue (no messages.warned) is migrated in place; a newer one is refused. */
static void
test_migration(void **state)
{
	struct fx *f = *state;
	struct mc_envelope e;
	make_env(&e, NULL, 2, 10);
	assert_int_equal(qdb_begin(f->db), 0);
	assert_int_equal(qdb_insert(f->db, &e, 1.0), 0);
	assert_int_equal(qdb_commit(f->db), 0);
	qdb_close(f->db);
	f->db = NULL;

	sqlite3 *raw;
	assert_int_equal(sqlite3_open(f->dbpath, &raw), SQLITE_OK);
	assert_int_equal(sqlite3_exec(raw, "ALTER TABLE messages DROP COLUMN warned; PRAGMA user_version=1", NULL, NULL,
				      NULL),
			 SQLITE_OK);
	sqlite3_close(raw);

	char err[256];
	f->db = qdb_open(f->dbpath, err, sizeof(err));
	assert_non_null(f->db);
	int lerr;
	struct q_msg *m = qdb_load(f->db, e.qid, &lerr);
	assert_non_null(m);
	assert_int_equal(m->env.nrcpt, 2);
	assert_int_equal(m->warned, 0);
	q_msg_free(m);
	assert_int_equal(qdb_begin(f->db), 0);
	assert_int_equal(qdb_set_warned(f->db, e.qid, 12345), 0);
	assert_int_equal(qdb_commit(f->db), 0);
	m = qdb_load(f->db, e.qid, &lerr);
	assert_int_equal(m->warned, 12345);
	q_msg_free(m);
	qdb_close(f->db);
	f->db = NULL;

	/* opened again: nothing more to migrate */
	f->db = qdb_open(f->dbpath, err, sizeof(err));
	assert_non_null(f->db);
	qdb_close(f->db);
	f->db = NULL;

	/* a queue from a newer version is not touched */
	assert_int_equal(sqlite3_open(f->dbpath, &raw), SQLITE_OK);
	assert_int_equal(sqlite3_exec(raw, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(raw);
	assert_null(qdb_open(f->dbpath, err, sizeof(err)));
	assert_non_null(strstr(err, "schema version 99"));
	mc_envelope_free(&e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_insert_and_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lane_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rcpt_transitions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migration, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
