/*
 * test_mailstore_reconcile.c - the first mc_store_open after a reboot puts
 * back the rows of APPENDs a power loss took (mailstore_reconcile.c).
 *
 * A power loss is played with SQLite directly: the APPENDs' rows deleted,
 * uidnext and highestmodseq rolled back as the lost commits would leave
 * them, an old boot id written into meta. The files' ctime cannot be set,
 * so the test-only POSTERN_TEST_BOOT_TIME moves the boot time past them.
 * Then: the messages are back with UIDs above any that was reported, flags
 * from their names, one log line; the same boot again scans nothing; a
 * file renamed after the boot is left to its own commit; an expunged or
 * moved message does not come back; two opens at once reconcile once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mail/mailstore.h"
#include "mail/mailstore_ops.h"
#include "util/log.h"

static const char body[] = "Subject: lost row\r\nFrom: a@example.org\r\n\r\nthe body\r\n";

#include "index_sql.h"
#include "store_fx.h"

static int
setup(void **state)
{
	unsetenv("POSTERN_TEST_BOOT_TIME");
	return store_fx_setup(state, "test_mailstore_reconcile", "", body);
}

/* APPEND one message; its UID. */
static uint32_t
append(struct mc_store *s, struct fx *f, const char *mailbox, uint32_t flags, int64_t when)
{
	char err[256] = "";
	struct mc_store_append a = { .fd = f->src, .length = strlen(body), .flags = flags, .internal_date = when };
	if (mc_store_append(s, mailbox, &a, 0, err, sizeof(err)) != 0)
		fail_msg("append: %s", err);
	return a.uid;
}

static void
sql(struct fx *f, const char *q)
{
	char p[400];
	snprintf(p, sizeof(p), "%s/%s", f->store, MC_STORE_INDEX_NAME);
	index_sql(p, q);
}

static int64_t
sql_int(struct fx *f, const char *q)
{
	char p[400];
	snprintf(p, sizeof(p), "%s/%s", f->store, MC_STORE_INDEX_NAME);
	return index_sql_int(p, q);
}

/*
 * The power loss: the rows of mailbox from UID `from` on are gone, and the
 * mailbox's uidnext and highestmodseq are what they were before those
 * commits; the index remembers another boot.
 */
static void
lose_rows(struct fx *f, const char *mailbox, uint32_t from, int64_t modseq)
{
	char q[600];
	snprintf(q, sizeof(q),
		 "DELETE FROM messages WHERE mailbox = (SELECT id FROM mailboxes WHERE name = '%s') AND uid >= %u;"
		 "UPDATE mailboxes SET uidnext = %u, highestmodseq = %lld WHERE name = '%s';"
		 "INSERT OR REPLACE INTO meta(key, value) VALUES('boot', 12345)",
		 mailbox, from, from, (long long)modseq, mailbox);
	sql(f, q);
}

/* This boot began at when (the test-only hook of mailstore_reconcile.c). */
static void
boot_at(int64_t when)
{
	char v[32];
	snprintf(v, sizeof(v), "%lld", (long long)when);
	setenv("POSTERN_TEST_BOOT_TIME", v, 1);
}

/* Standard error into a file between capture_start and capture_end, which reads it back. */
struct capture {
	int saved;
	char path[300];
};

static void
capture_start(struct capture *c, struct fx *f)
{
	snprintf(c->path, sizeof(c->path), "%s/stderr", f->root);
	int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	c->saved = dup(2);
	dup2(fd, 2);
	close(fd);
}

static void
capture_end(struct capture *c, char *out, size_t outsz)
{
	dup2(c->saved, 2);
	close(c->saved);
	int fd = open(c->path, O_RDONLY);
	assert_true(fd >= 0);
	ssize_t r = read(fd, out, outsz - 1);
	close(fd);
	out[r > 0 ? r : 0] = '\0';
}

static size_t
count_lines(const char *text, const char *needle)
{
	size_t n = 0;
	for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

struct seen {
	size_t n;
	uint32_t uid[16], flags[16];
	int64_t idate[16];
	uint64_t modseq[16], vsize[16];
};

static int
seen_cb(void *arg, const struct mc_store_msg *m)
{
	struct seen *v = arg;
	if (v->n < 16) {
		v->uid[v->n] = m->uid;
		v->flags[v->n] = m->flags;
		v->idate[v->n] = m->internal_date;
		v->modseq[v->n] = m->modseq;
		v->vsize[v->n] = m->vsize;
	}
	v->n++;
	return 0;
}

static void
list(struct mc_store *s, const char *mailbox, struct seen *v)
{
	memset(v, 0, sizeof(*v));
	assert_int_equal(mc_store_messages(s, mailbox, 1, seen_cb, v), 0);
}

static void
test_lost_appends_come_back(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	/* a fresh index records its boot: the next open of this boot is one SELECT */
	assert_true(sql_int(f, "SELECT value FROM meta WHERE key = 'boot'") > 0);
	uint32_t kept = append(s, f, "INBOX", 0, 0);
	struct mc_store_mailbox mb;
	assert_int_equal(mc_store_mailbox_get(s, "INBOX", &mb), 0);
	uint64_t modseq0 = mb.highestmodseq;
	uint32_t u1 = append(s, f, "INBOX", MC_FLAG_SEEN, 1000000000);
	uint32_t u2 = append(s, f, "INBOX", MC_FLAG_FLAGGED | MC_FLAG_ANSWERED, 1100000000);
	uint32_t u3 = append(s, f, "INBOX", 0, 1200000000);
	assert_int_equal(u2, u1 + 1);
	assert_int_equal(u3, u1 + 2);
	mc_store_close(s);

	lose_rows(f, "INBOX", u1, (int64_t)modseq0);
	boot_at((int64_t)time(NULL) + 60);
	struct capture c;
	char log[4096];
	capture_start(&c, f);
	s = open_store(f);
	capture_end(&c, log, sizeof(log));

	struct seen v;
	list(s, "INBOX", &v);
	assert_int_equal(v.n, 4);
	assert_int_equal(v.uid[0], kept);
	/* UIDs u1..u3 may have been reported (APPENDUID): the files get the three after them */
	assert_int_equal(v.uid[1], u3 + 1);
	assert_int_equal(v.uid[2], u3 + 2);
	assert_int_equal(v.uid[3], u3 + 3);
	/* in arrival order, flags from the names, internal date from the mtime */
	assert_int_equal(v.flags[1], MC_FLAG_SEEN);
	assert_int_equal(v.flags[2], MC_FLAG_FLAGGED | MC_FLAG_ANSWERED);
	assert_int_equal(v.flags[3], 0);
	assert_int_equal(v.idate[1], 1000000000);
	assert_int_equal(v.idate[3], 1200000000);
	assert_int_equal(v.vsize[1], strlen(body));
	for (int i = 1; i < 4; i++)
		assert_true(v.modseq[i] > modseq0);
	assert_int_equal(mc_store_mailbox_get(s, "INBOX", &mb), 0);
	assert_int_equal(mb.uidnext, u3 + 4);
	assert_true(mb.highestmodseq >= modseq0 + 3);
	assert_int_equal(count_lines(log, "indexed again"), 1);
	assert_non_null(strstr(log, "mailbox INBOX: 3 message(s)"));
	assert_non_null(strstr(log, f->store));

	/* the body reads back */
	uint64_t size = 0;
	int fd = mc_store_msg_open(s, "INBOX", u3 + 2, &size);
	assert_true(fd >= 0);
	char buf[256] = "";
	assert_int_equal(read(fd, buf, sizeof(buf) - 1), (ssize_t)size);
	close(fd);
	assert_string_equal(buf, "Subject: lost row\nFrom: a@example.org\n\nthe body\n");
	/* a new APPEND goes above them */
	assert_int_equal(append(s, f, "INBOX", 0, 0), u3 + 4);
	mc_store_close(s);

	/* Same boot: nothing is scanned (a row deleted behind the store's back stays missing), nothing logged. */
	sql(f, "DELETE FROM messages WHERE uid = (SELECT max(uid) FROM messages)");
	capture_start(&c, f);
	s = open_store(f);
	capture_end(&c, log, sizeof(log));
	list(s, "INBOX", &v);
	assert_int_equal(v.n, 4);
	assert_string_equal(log, "");
	mc_store_close(s);
}

static void
test_renamed_after_boot_is_left(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	struct mc_store_mailbox mb;
	assert_int_equal(mc_store_mailbox_get(s, "INBOX", &mb), 0);
	uint32_t old = append(s, f, "INBOX", 0, 0);
	/* the boot "began" after the first file's rename and before the second's (ctime has whole seconds here) */
	char p[700];
	int64_t btime = (int64_t)time(NULL) + 1;
	while ((int64_t)time(NULL) < btime)
		usleep(20000);
	usleep(50000);   /* the kernel's coarse clock stamps ctime a tick behind time() */
	uint32_t young = append(s, f, "INBOX", 0, 0);
	assert_int_equal(young, old + 1);
	mc_store_close(s);

	lose_rows(f, "INBOX", old, (int64_t)mb.highestmodseq);
	boot_at(btime);
	s = open_store(f);
	struct seen v;
	list(s, "INBOX", &v);
	assert_int_equal(v.n, 1);
	/* k = 1 file: UID old may have been reported, so it gets old + 1 (young was never indexed again) */
	assert_int_equal(v.uid[0], old + 1);
	/* the young file is still there, waiting for its own (in flight) commit or a reindex */
	assert_int_equal(mc_store_mailbox_get(s, "INBOX", &mb), 0);
	assert_int_equal(mb.uidnext, old + 2);
	snprintf(p, sizeof(p), "%s/new", f->store);
	DIR *d = opendir(p);
	assert_non_null(d);
	size_t files = 0;
	for (struct dirent *de; (de = readdir(d)) != NULL;)
		files += de->d_name[0] != '.';
	closedir(d);
	assert_int_equal(files, 2);
	mc_store_close(s);
}

static void
test_expunged_and_moved_stay_gone(void **state)
{
	struct fx *f = *state;
	char err[256] = "";
	struct mc_store *s = open_store(f);
	assert_int_equal(mc_store_mailbox_create(s, "Archive", NULL, err, sizeof(err)), 0);
	uint32_t gone = append(s, f, "INBOX", MC_FLAG_DELETED, 0);
	uint32_t moved = append(s, f, "INBOX", MC_FLAG_SEEN, 0);
	assert_int_equal(mc_store_expunge(s, "INBOX", &gone, 1, err, sizeof(err)), 1);
	uint32_t dst = 0;
	assert_int_equal(mc_store_copy(s, "INBOX", &moved, 1, "Archive", true, NULL, &dst, NULL, err, sizeof(err)), 1);
	struct mc_store_mailbox mb;
	assert_int_equal(mc_store_mailbox_get(s, "INBOX", &mb), 0);
	uint32_t lost = append(s, f, "INBOX", 0, 0);
	append(s, f, "INBOX", 0, 0);
	mc_store_close(s);

	lose_rows(f, "INBOX", lost, (int64_t)mb.highestmodseq);
	boot_at((int64_t)time(NULL) + 60);
	s = open_store(f);
	struct seen v;
	list(s, "INBOX", &v);
	assert_int_equal(v.n, 2);   /* the two lost APPENDs; neither the expunged nor the moved message */
	assert_int_equal(v.uid[0], lost + 2);
	assert_int_equal(v.uid[1], lost + 3);
	list(s, "Archive", &v);
	assert_int_equal(v.n, 1);
	assert_int_equal(v.uid[0], dst);
	mc_store_close(s);
}

struct opener {
	struct fx *f;
	pthread_barrier_t *go;
	struct mc_store *s;
	char err[256];
};

static void *
open_thread(void *arg)
{
	struct opener *o = arg;
	pthread_barrier_wait(o->go);
	o->s = mc_store_open(o->f->store, 0, o->err, sizeof(o->err));
	return NULL;
}

static void
test_two_opens_reconcile_once(void **state)
{
	struct fx *f = *state;
	char err[256] = "";
	struct mc_store *s = open_store(f);
	assert_int_equal(mc_store_mailbox_create(s, "Work", NULL, err, sizeof(err)), 0);
	struct mc_store_mailbox in, work;
	assert_int_equal(mc_store_mailbox_get(s, "INBOX", &in), 0);
	assert_int_equal(mc_store_mailbox_get(s, "Work", &work), 0);
	uint32_t a = append(s, f, "INBOX", 0, 0);
	append(s, f, "INBOX", 0, 0);
	uint32_t w = append(s, f, "Work", MC_FLAG_DRAFT, 0);
	mc_store_close(s);
	lose_rows(f, "INBOX", a, (int64_t)in.highestmodseq);
	lose_rows(f, "Work", w, (int64_t)work.highestmodseq);
	boot_at((int64_t)time(NULL) + 60);

	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, 2);
	struct opener o[2] = { { .f = f, .go = &go }, { .f = f, .go = &go } };
	pthread_t t[2];
	struct capture c;
	char log[4096];
	capture_start(&c, f);
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, open_thread, &o[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	capture_end(&c, log, sizeof(log));
	pthread_barrier_destroy(&go);
	assert_non_null(o[0].s);
	assert_non_null(o[1].s);
	/* one line per mailbox that got rows, from one of the two */
	assert_int_equal(count_lines(log, "indexed again"), 2);
	assert_int_equal(count_lines(log, "mailbox INBOX: 2 message(s)"), 1);
	assert_int_equal(count_lines(log, "mailbox Work: 1 message(s)"), 1);
	struct seen v;
	list(o[1].s, "INBOX", &v);
	assert_int_equal(v.n, 2);
	assert_int_equal(v.uid[0], a + 2);
	assert_int_equal(v.uid[1], a + 3);
	list(o[0].s, "Work", &v);
	assert_int_equal(v.n, 1);
	assert_int_equal(v.uid[0], w + 1);
	assert_int_equal(v.flags[0], MC_FLAG_DRAFT);
	mc_store_close(o[0].s);
	mc_store_close(o[1].s);
}

int
main(void)
{
	mc_log_init("test_mailstore_reconcile", MC_LOG_NOTICE);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lost_appends_come_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renamed_after_boot_is_left, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expunged_and_moved_stay_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_opens_reconcile_once, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
