/*
 * test_mailstore_expunge.c - the POP3 maildrop lock and mc_store_expunge
 * (kept beside test_mailstore.c, which IMAP's store work extends): one
 * exclusive holder, shared holders together, released on unlock; expunge
 * removes files and rows in one go, records the UIDs with rising MODSEQ,
 * skips unknown UIDs, finds a file that moved from new/ to cur/, and
 * leaves the other messages and their UIDs alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/mailstore.h"

static const char msg[] = "Subject: x\r\n\r\nbody\r\n";

#include "store_fx.h"

static int
setup(void **state)
{
	return store_fx_setup(state, "test_mailstore_expunge", "", msg);
}

static uint32_t
deliver(struct mc_store *s, struct fx *f)
{
	char err[256] = "";
	uint32_t uid = 0;
	if (mc_store_deliver(s, NULL, "", 0, f->src, 0, strlen(msg), &uid, err, sizeof(err)) < 0)
		fail_msg("deliver: %s", err);
	return uid;
}

struct list {
	size_t n;
	uint32_t uid[16];
	char file[16][300];
};

static int
list_cb(void *arg, const struct mc_store_msg *m)
{
	struct list *l = arg;
	if (l->n < 16) {
		l->uid[l->n] = m->uid;
		snprintf(l->file[l->n], sizeof(l->file[0]), "%s", m->file);
	}
	l->n++;
	return 0;
}

static size_t
count_files(const char *dir)
{
	DIR *d = opendir(dir);
	size_t n = 0;
	struct dirent *de;
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void
test_lock(void **state)
{
	struct fx *f = *state;
	struct mc_store *a = open_store(f), *b = open_store(f);
	int ex = mc_store_lock(a, true);
	assert_true(ex >= 0);
	errno = 0;
	assert_int_equal(mc_store_lock(b, true), -1);
	assert_int_equal(errno, EWOULDBLOCK);
	assert_int_equal(mc_store_lock(b, false), -1);   /* an IMAP expunge waits for the POP3 session */
	mc_store_unlock(ex);
	int sh1 = mc_store_lock(a, false), sh2 = mc_store_lock(b, false);
	assert_true(sh1 >= 0 && sh2 >= 0);                /* IMAP sessions expunge side by side */
	assert_int_equal(mc_store_lock(b, true), -1);     /* but no POP3 login meanwhile */
	mc_store_unlock(sh1);
	mc_store_unlock(sh2);
	ex = mc_store_lock(b, true);
	assert_true(ex >= 0);
	mc_store_unlock(ex);
	mc_store_close(a);
	mc_store_close(b);
}

static void
test_expunge(void **state)
{
	struct fx *f = *state;
	char err[256] = "", dir[400], from[800], to[800];
	struct mc_store *s = open_store(f);
	uint32_t u[4];
	for (int i = 0; i < 4; i++)
		u[i] = deliver(s, f);
	struct mc_store_mailbox before, after;
	assert_int_equal(mc_store_mailbox_get(s, "INBOX", &before), 0);

	/* Message 2 moved to cur/ with a flag since its row was read: found by its base name. */
	struct list l = { 0 };
	assert_int_equal(mc_store_messages(s, NULL, 1, list_cb, &l), 0);
	snprintf(from, sizeof(from), "%s/%s", f->store, l.file[1]);
	snprintf(to, sizeof(to), "%s/cur/%s:2,S", f->store, strchr(l.file[1], '/') + 1);
	assert_int_equal(rename(from, to), 0);

	uint32_t gone[] = { u[1], u[3], 999 };
	assert_int_equal(mc_store_expunge(s, NULL, gone, 3, err, sizeof(err)), 2);
	memset(&l, 0, sizeof(l));
	assert_int_equal(mc_store_messages(s, NULL, 1, list_cb, &l), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.uid[0], u[0]);
	assert_int_equal(l.uid[1], u[2]);
	snprintf(dir, sizeof(dir), "%s/new", f->store);
	assert_int_equal(count_files(dir), 2);
	snprintf(dir, sizeof(dir), "%s/cur", f->store);
	assert_int_equal(count_files(dir), 0);
	assert_int_equal(mc_store_mailbox_get(s, "INBOX", &after), 0);
	assert_true(after.highestmodseq == before.highestmodseq + 2);
	assert_int_equal(after.uidnext, before.uidnext);

	/* The expunged table holds both UIDs with the MODSEQs of their removal. */
	char idx[400];
	snprintf(idx, sizeof(idx), "%s/%s", f->store, MC_STORE_INDEX_NAME);
	sqlite3 *db;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_open(idx, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT uid, modseq FROM expunged ORDER BY uid", -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int64(st, 0), u[1]);
	assert_true((uint64_t)sqlite3_column_int64(st, 1) > before.highestmodseq);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int64(st, 0), u[3]);
	assert_int_equal((uint64_t)sqlite3_column_int64(st, 1), after.highestmodseq);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(db);

	/* Again: nothing left to do. A reopen sees the same. */
	assert_int_equal(mc_store_expunge(s, NULL, gone, 2, err, sizeof(err)), 0);
	assert_int_equal(mc_store_expunge(s, NULL, gone, 0, err, sizeof(err)), 0);
	assert_int_equal(mc_store_expunge(s, "NoSuchBox", gone, 1, err, sizeof(err)), -1);
	mc_store_close(s);
	s = open_store(f);
	memset(&l, 0, sizeof(l));
	assert_int_equal(mc_store_messages(s, NULL, 1, list_cb, &l), 0);
	assert_int_equal(l.n, 2);
	mc_store_close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expunge, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
