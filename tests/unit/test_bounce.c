/*
 * test_bounce.c - what a sender is told at the end of a round (queued's
 * bounce.c) with a real queue database and spool directories: a failure
 * report queued in the same transaction as the outcome, NOTIFY=NEVER and
 * the null sender told nothing, a report that fails held (double bounce),
 * a remote reply in either reason form giving Remote-MTA and an smtp
 * Diagnostic-Code, a delay warning once, success reports, expiry's 4.4.7,
 * and recipients left deferred when the report cannot be written.
 *
 * deliver.c is replaced by the few functions bounce.c calls.
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

#include "mail/qid.h"
#include "queued/queued.h"
#include "util/fsutil.h"

/* ---- what bounce.c needs of deliver.c ---- */

static struct q_msg *added;       /* the last report handed to delivery */

bool
q_deliver_add(struct queued *q, struct q_msg *m)
{
	(void)q;
	q_msg_free(added);
	added = m;
	return true;
}

struct q_msg *
q_deliver_find(struct queued *q, const char *qid)
{
	(void)q;
	(void)qid;
	return NULL;
}

bool
q_deliver_adopt(struct queued *q, struct q_msg *m)
{
	(void)q;
	(void)m;
	return false;
}

char *
q_sanitize(char *out, size_t outsz, const char *in)
{
	snprintf(out, outsz, "%s", in);
	return out;
}

/* ---- fixture ---- */

struct fx {
	char dir[128];
	struct mc_daemon d;
	struct queued q;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[256];
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_bounce.XXXXXX");
	if (f == NULL || mkdtemp(f->dir) == NULL || mc_config_defaults(&f->d.cfg, err, sizeof(err)) < 0)
		return -1;
	snprintf(f->d.cfg.global.hostname, sizeof(f->d.cfg.global.hostname), "mx.example.test");
	f->q.d = &f->d;
	snprintf(f->q.incoming, sizeof(f->q.incoming), "%s/incoming", f->dir);
	snprintf(f->q.active, sizeof(f->q.active), "%s/active", f->dir);
	mkdir(f->q.incoming, 0700);
	mkdir(f->q.active, 0700);
	char p[300];
	snprintf(p, sizeof(p), "%s/queue.sqlite", f->dir);
	f->q.db = qdb_open(p, err, sizeof(err));
	if (f->q.db == NULL)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	qdb_close(f->q.db);
	q_msg_free(added);
	added = NULL;
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static const char body[] = "From: alice@example.test\r\nSubject: original\r\nMessage-ID: <o1@example.test>\r\n\r\n"
			   "the body\r\n";

/* A committed message with n recipients (rcpt0@..., notify as given), its body in active/. */
static struct q_msg *
message(struct fx *f, const char *sender, unsigned n, const uint32_t *notify, uint32_t flags)
{
	struct mc_envelope e;
	mc_envelope_init(&e);
	mc_qid_new(e.qid);
	snprintf(e.sender, sizeof(e.sender), "%s", sender);
	snprintf(e.envid, sizeof(e.envid), "env-7");
	e.flags = flags;
	e.size = strlen(body);
	e.arrival = (int64_t)time(NULL) - 100;
	for (unsigned i = 0; i < n; i++) {
		char a[64];
		snprintf(a, sizeof(a), "rcpt%u@example.test", i);
		assert_int_equal(mc_envelope_add_rcpt(&e, a, i == 0 ? "rfc822;orig0@example.test" : "",
						      notify ? notify[i] : 0, 100),
				 0);
	}
	char p[MC_PATH_MAX + 64];
	snprintf(p, sizeof(p), "%s/%s", f->q.active, e.qid);
	int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(mc_write_all(fd, body, strlen(body)), 0);
	close(fd);
	assert_int_equal(qdb_begin(f->q.db), 0);
	assert_int_equal(qdb_insert(f->q.db, &e, 1.0), 0);
	assert_int_equal(qdb_commit(f->q.db), 0);
	struct q_msg *m = q_msg_new(&e, 1.0);
	m->q = &f->q;
	return m;
}

static void
conclude(struct q_msg *m, uint32_t i, enum q_rstate st, const char *why, const char *status)
{
	struct q_rcpt *r = &m->rs[i];
	r->state = st;
	r->changed = true;
	snprintf(r->last_error, sizeof(r->last_error), "%s", why ? why : "");
	snprintf(r->status, sizeof(r->status), "%s", status ? status : "");
	if (st == Q_R_DEFERRED)
		r->attempts++;
}

/* The whole end of a round as deliver.c's outcome job runs it; returns the report's text or NULL. */
static char *
round_end(struct fx *f, struct q_msg *m, bool *had_report)
{
	struct q_report *rep = q_bounce_plan(&f->q, m, (double)time(NULL));
	*had_report = rep != NULL;
	if (rep == NULL)
		return NULL;
	q_bounce_pre(rep);
	assert_int_equal(qdb_begin(f->q.db), 0);
	assert_int_equal(q_bounce_run(f->q.db, rep), 0);
	assert_int_equal(qdb_save_rcpts(f->q.db, m, 2.0), 0);
	assert_int_equal(qdb_commit(f->q.db), 0);
	q_bounce_post(rep, 0);
	q_msg_free(added);
	added = NULL;
	q_bounce_done(rep, 0);
	if (added == NULL)
		return NULL;
	char p[MC_PATH_MAX + 64], *text = NULL;
	size_t len;
	snprintf(p, sizeof(p), "%s/%s", f->q.active, added->env.qid);
	assert_int_equal(mc_read_file(p, 1 << 20, &text, &len), 0);
	assert_int_equal(len, added->env.size);
	/* the report's envelope is in the database, from <> to the sender, marked as a report */
	int err;
	struct q_msg *b = qdb_load(f->q.db, added->env.qid, &err);
	assert_non_null(b);
	assert_string_equal(b->env.sender, "");
	assert_int_equal(b->env.nrcpt, 1);
	assert_string_equal(b->env.rcpt[0].addr, m->env.sender);
	assert_true(b->env.flags & MC_ENV_DSN);
	q_msg_free(b);
	return text;
}

static void
test_failure_report(void **state)
{
	struct fx *f = *state;
	uint32_t notify[4] = { 0, MC_NOTIFY_FAILURE, MC_NOTIFY_NEVER, 0 };
	struct q_msg *m = message(f, "alice@example.test", 4, notify, 0);
	conclude(m, 0, Q_R_BOUNCED, "user unknown", "5.1.1");
	conclude(m, 1, Q_R_BOUNCED,
		 "host=mx.remote.test[192.0.2.7]:25 dsn=5.7.1 reply=550 5.7.1 <rcpt1@example.test>: relaying denied",
		 NULL);
	conclude(m, 2, Q_R_BOUNCED, "user unknown", "5.1.1");
	conclude(m, 3, Q_R_BOUNCED, "dsn=5.1.2 reply=Host or domain name not found", NULL);
	bool had;
	char *t = round_end(f, m, &had);
	assert_non_null(t);
	assert_non_null(strstr(t, "Subject: Undelivered Mail Returned to Sender\r\n"));
	/* the reasons in words */
	assert_non_null(strstr(t, "<rcpt0@example.test>: user unknown\r\n"));
	assert_non_null(strstr(t, "<rcpt1@example.test>: host mx.remote.test[192.0.2.7]:25 said: 550 5.7.1 "
				  "<rcpt1@example.test>: relaying denied\r\n"));
	assert_non_null(strstr(t, "<rcpt3@example.test>: Host or domain name not found\r\n"));
	/* no server reached: the relay's status, no Remote-MTA, the client's words */
	assert_non_null(strstr(t, "Final-Recipient: rfc822; rcpt3@example.test\r\nAction: failed\r\nStatus: 5.1.2\r\n"
				  "Diagnostic-Code: X-Postern; Host or domain name not found\r\n"));
	assert_non_null(strstr(t, "Original-Envelope-Id: env-7\r\n"));
	assert_non_null(strstr(t, "Final-Recipient: rfc822; rcpt0@example.test\r\n"
				  "Original-Recipient: rfc822;orig0@example.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"));
	assert_non_null(strstr(t, "Final-Recipient: rfc822; rcpt1@example.test\r\nAction: failed\r\nStatus: 5.7.1\r\n"
				  "Remote-MTA: dns; mx.remote.test\r\nDiagnostic-Code: smtp; 550 5.7.1"));
	/* NOTIFY=NEVER: not in the report */
	assert_null(strstr(t, "rcpt2@example.test"));
	assert_non_null(strstr(t, "Subject: original\r\n"));
	assert_null(strstr(t, "the body"));
	free(t);
	q_msg_free(m);
}

static void
test_postfix_form_and_expiry(void **state)
{
	struct fx *f = *state;
	struct q_msg *m = message(f, "alice@example.test", 2, NULL, MC_ENV_RET_FULL);
	conclude(m, 0, Q_R_BOUNCED, "host mx.r.test[192.0.2.8] said: 554 5.7.1 no thanks (in reply to end of DATA command)",
		 NULL);
	conclude(m, 1, Q_R_BOUNCED,
		 "message expired after 5 days in the queue: host=mx.r.test[192.0.2.8]:25 dsn=4.4.2 reply=lost connection",
		 "4.4.7");
	bool had;
	char *t = round_end(f, m, &had);
	assert_non_null(t);
	assert_non_null(strstr(t, "Status: 5.7.1\r\nRemote-MTA: dns; mx.r.test\r\nDiagnostic-Code: smtp; 554 5.7.1 no"));
	assert_non_null(strstr(t, "Final-Recipient: rfc822; rcpt1@example.test\r\nAction: failed\r\nStatus: 4.4.7\r\n"
				  "Remote-MTA: dns; mx.r.test\r\nDiagnostic-Code: X-Postern; lost connection\r\n"));
	assert_non_null(strstr(t, "<rcpt1@example.test>: message expired after 5 days in the queue: host "
				  "mx.r.test[192.0.2.8]:25: lost connection\r\n"));
	/* RET=FULL: the whole message */
	assert_non_null(strstr(t, "message/rfc822"));
	assert_non_null(strstr(t, "the body"));
	free(t);
	q_msg_free(m);
}

static void
test_null_sender_and_never(void **state)
{
	struct fx *f = *state;
	struct q_msg *m = message(f, "", 1, NULL, 0);
	conclude(m, 0, Q_R_BOUNCED, "user unknown", "5.1.1");
	bool had;
	assert_null(round_end(f, m, &had));
	assert_false(had);
	assert_int_equal(m->rs[0].state, Q_R_BOUNCED);
	q_msg_free(m);

	uint32_t never = MC_NOTIFY_NEVER;
	m = message(f, "alice@example.test", 1, &never, 0);
	conclude(m, 0, Q_R_BOUNCED, "user unknown", "5.1.1");
	assert_null(round_end(f, m, &had));
	assert_false(had);
	q_msg_free(m);
}

static void
test_double_bounce_held(void **state)
{
	struct fx *f = *state;
	struct q_msg *m = message(f, "", 1, NULL, MC_ENV_DSN);
	conclude(m, 0, Q_R_BOUNCED, "user unknown", "5.1.1");
	bool had;
	assert_null(round_end(f, m, &had));
	assert_true(had);
	/* not bounced: deferred, and the message held with the reason */
	assert_int_equal(m->rs[0].state, Q_R_DEFERRED);
	int err;
	struct q_msg *l = qdb_load(f->q.db, m->env.qid, &err);
	assert_int_equal(l->state, Q_M_HELD);
	assert_int_equal(l->rs[0].state, Q_R_DEFERRED);
	q_msg_free(l);
	q_msg_free(m);
}

static void
test_delay_warning_once(void **state)
{
	struct fx *f = *state;
	f->d.cfg.queued.delay_warning_time = 60;   /* the message is 100 s old */
	uint32_t notify[3] = { MC_NOTIFY_DELAY, MC_NOTIFY_FAILURE, 0 };
	struct q_msg *m = message(f, "alice@example.test", 3, notify, 0);
	conclude(m, 0, Q_R_DEFERRED, "host=mx.slow.test[192.0.2.9]:25 dsn=4.4.1 reply=connection timed out", NULL);
	conclude(m, 1, Q_R_DEFERRED, "lost connection", NULL);
	conclude(m, 2, Q_R_DEFERRED, "lost connection", NULL);
	bool had;
	char *t = round_end(f, m, &had);
	assert_non_null(t);
	assert_non_null(strstr(t, "Subject: Delayed Mail (still being retried)\r\n"));
	assert_non_null(strstr(t, "Final-Recipient: rfc822; rcpt0@example.test\r\nOriginal-Recipient: "
				  "rfc822;orig0@example.test\r\nAction: delayed\r\nStatus: 4.4.1\r\n"
				  "Remote-MTA: dns; mx.slow.test\r\nDiagnostic-Code: X-Postern; connection timed out"));
	assert_null(strstr(t, "rcpt1@example.test"));   /* NOTIFY=FAILURE only */
	assert_non_null(strstr(t, "Final-Recipient: rfc822; rcpt2@example.test\r\nAction: delayed\r\nStatus: 4.0.0"));
	free(t);
	int err;
	struct q_msg *l = qdb_load(f->q.db, m->env.qid, &err);
	assert_true(l->warned > 0);
	/* the next round: no second warning */
	l->q = &f->q;
	conclude(l, 0, Q_R_DEFERRED, "lost connection", NULL);
	assert_null(round_end(f, l, &had));
	assert_false(had);
	q_msg_free(l);
	q_msg_free(m);
	f->d.cfg.queued.delay_warning_time = 0;
}

static void
test_success_report(void **state)
{
	struct fx *f = *state;
	uint32_t notify[3] = { MC_NOTIFY_SUCCESS | MC_NOTIFY_FAILURE, 0, MC_NOTIFY_SUCCESS };
	struct q_msg *m = message(f, "alice@example.test", 3, notify, 0);
	conclude(m, 0, Q_R_DELIVERED, NULL, NULL);
	conclude(m, 1, Q_R_DELIVERED, NULL, NULL);
	conclude(m, 2, Q_R_DELIVERED, NULL, NULL);
	m->rs[2].remote = m->rs[2].remote_dsn = true;   /* the remote MTA reports it itself */
	bool had;
	char *t = round_end(f, m, &had);
	assert_non_null(t);
	assert_non_null(strstr(t, "Subject: Successful Mail Delivery Report\r\n"));
	assert_non_null(strstr(t, "Final-Recipient: rfc822; rcpt0@example.test\r\nOriginal-Recipient: "
				  "rfc822;orig0@example.test\r\nAction: delivered\r\nStatus: 2.0.0\r\n"));
	assert_null(strstr(t, "rcpt1@example.test"));
	assert_null(strstr(t, "rcpt2@example.test"));
	free(t);
	q_msg_free(m);
}

static void
test_unwritable_report_keeps_recipients(void **state)
{
	struct fx *f = *state;
	struct q_msg *m = message(f, "alice@example.test", 2, NULL, 0);
	conclude(m, 0, Q_R_BOUNCED, "user unknown", "5.1.1");
	conclude(m, 1, Q_R_DELIVERED, NULL, NULL);
	m->all_final = true;
	char gone[MC_PATH_MAX + 64];
	snprintf(gone, sizeof(gone), "%s.gone", f->q.incoming);
	assert_int_equal(rename(f->q.incoming, gone), 0);
	bool had;
	assert_null(round_end(f, m, &had));
	assert_true(had);
	assert_int_equal(rename(gone, f->q.incoming), 0);
	/* the failure was not reported, so it is not final: it waits to be tried again */
	assert_int_equal(m->rs[0].state, Q_R_DEFERRED);
	assert_false(m->all_final);
	assert_int_equal(qdb_count_messages(f->q.db), 1);
	q_msg_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_failure_report, setup, teardown),
		cmocka_unit_test_setup_teardown(test_postfix_form_and_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_null_sender_and_never, setup, teardown),
		cmocka_unit_test_setup_teardown(test_double_bounce_held, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delay_warning_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_success_report, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unwritable_report_keeps_recipients, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
