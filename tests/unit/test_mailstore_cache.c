/*
 * test_mailstore_cache.c - the message cache in index.sqlite: every
 * message of the reference corpus delivered as queued delivers it (CRLF
 * source, LF file) comes back from the index with the ENVELOPE,
 * BODYSTRUCTURE and BODY of the reference; BODY[section] spans from the
 * stored part table point at the right bytes of the file; decoded fields
 * for SEARCH/SORT; an index of schema version 1 is migrated and its rows
 * get a cache on first use; reindex fills rows without one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/imapstruct.h"
#include "mail/mailstore.h"
#include "mail/mailstore_ops.h"
#include "mail/mime.h"

#include "index_sql.h"

#ifndef POSTERN_SOURCE_ROOT
#define POSTERN_SOURCE_ROOT "."
#endif
#define DATA_DIR POSTERN_SOURCE_ROOT "/tests/data/mime"

struct fx {
	char root[256];
	char store[300];
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->root, sizeof(f->root), "/tmp/test_mscache.XXXXXX");
	if (mkdtemp(f->root) == NULL)
		return -1;
	snprintf(f->store, sizeof(f->store), "%s/user", f->root);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static struct mc_store *
open_store(struct fx *f)
{
	char err[256] = "";
	struct mc_store *s = mc_store_open(f->store, MC_STORE_CREATE, err, sizeof(err));
	if (s == NULL)
		fail_msg("open: %s", err);
	return s;
}

static uint32_t
deliver_file(struct mc_store *s, const char *path)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	struct stat sb;
	assert_int_equal(fstat(fd, &sb), 0);
	char err[256] = "";
	uint32_t uid = 0;
	if (mc_store_deliver(s, NULL, NULL, 0, fd, 0, (uint64_t)sb.st_size, &uid, err, sizeof(err)) < 0)
		fail_msg("deliver %s: %s", path, err);
	close(fd);
	return uid;
}

/* What the parser says of the original file (test_mime checks that against the reference). */
static void
describe(const char *path, char **env, char **bs, char **body)
{
	int fd = open(path, O_RDONLY);
	struct stat sb;
	assert_int_equal(fstat(fd, &sb), 0);
	struct mc_store_cache c;
	assert_int_equal(mc_store_cache_parse_fd(fd, 0, (uint64_t)sb.st_size, &c), 0);
	close(fd);
	*env = strdup(c.envelope);
	*bs = strdup(c.bodystructure);
	*body = strdup(c.body);
	mc_store_cache_free(&c);
}

static int
eml_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);
	return n > 4 && strcmp(d->d_name + n - 4, ".eml") == 0;
}

/* Every corpus message, delivered, reads back from the index as the parser describes the original. */
static void
test_delivery_caches_corpus(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	struct dirent **names;
	int n = scandir(DATA_DIR, &names, eml_filter, alphasort);
	assert_int_equal(n, 30);
	for (int i = 0; i < n; i++) {
		char path[512], err[256] = "";
		snprintf(path, sizeof(path), DATA_DIR "/%s", names[i]->d_name);
		uint32_t uid = deliver_file(s, path);
		char *env, *bs, *body;
		describe(path, &env, &bs, &body);
		struct mc_store_cache c;
		if (mc_store_msg_cache(s, "INBOX", uid, &c, err, sizeof(err)) != 0)
			fail_msg("cache %s: %s", names[i]->d_name, err);
		assert_string_equal(c.envelope, env);
		assert_string_equal(c.bodystructure, bs);
		assert_string_equal(c.body, body);
		assert_true(c.partslen > 0);
		mc_store_cache_free(&c);
		free(env);
		free(bs);
		free(body);
		free(names[i]);
	}
	free(names);
	/* the cache was written at delivery: no row lacks one */
	sqlite3 *db;
	char idx[400];
	snprintf(idx, sizeof(idx), "%s/index.sqlite", f->store);
	assert_int_equal(sqlite3_open(idx, &db), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM messages WHERE cache_ver IS NULL", -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	mc_store_close(s);
}

/* The file of a message (its only file in new/). */
static char *
read_stored(struct fx *f, size_t *len)
{
	char dir[400];
	snprintf(dir, sizeof(dir), "%s/new", f->store);
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[800] = "";
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
	closedir(d);
	int fd = open(path, O_RDONLY);
	struct stat sb;
	assert_int_equal(fstat(fd, &sb), 0);
	char *b = malloc((size_t)sb.st_size + 1);
	assert_int_equal(read(fd, b, (size_t)sb.st_size), sb.st_size);
	close(fd);
	*len = (size_t)sb.st_size;
	return b;
}

/* BODY[2], BODY[2.HEADER], BODY[2.1] of a forwarded message, from the stored table and the LF file. */
static void
test_sections_from_cache(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	uint32_t uid = deliver_file(s, DATA_DIR "/07-rfc822-attached.eml");
	struct mc_store_cache c;
	char err[256];
	assert_int_equal(mc_store_msg_cache(s, NULL, uid, &c, err, sizeof(err)), 0);
	size_t len;
	char *file = read_stored(f, &len);
	struct mc_mime_section sec;
	unsigned p2[] = { 2 }, p21[] = { 2, 1 }, p1[] = { 1 };
	assert_int_equal(mc_mime_section_find(c.parts, c.partslen, p2, 1, &sec), 0);
	assert_true(sec.is_message);
	assert_int_equal(sec.body.vsize, 217);   /* the size BODYSTRUCTURE gives */
	assert_true(sec.body.off + sec.body.len <= len);
	assert_memory_equal(file + sec.header.off, "From: Carol <carol@example.test>\n", 33);
	assert_memory_equal(file + sec.text.off, "inner body", sec.text.len);
	assert_int_equal(mc_mime_section_find(c.parts, c.partslen, p21, 2, &sec), 0);
	assert_memory_equal(file + sec.body.off, "inner body", sec.body.len);
	assert_int_equal(mc_mime_section_find(c.parts, c.partslen, p1, 1, &sec), 0);
	assert_memory_equal(file + sec.body.off, "forwarding", sec.body.len);
	assert_memory_equal(file + sec.mime.off, "Content-Type: text/plain\n\n", sec.mime.len);
	free(file);
	mc_store_cache_free(&c);
	mc_store_close(s);
}

/* What SEARCH and SORT read: decoded subject and addresses, the Date as a time, threading ids. */
static void
test_search_fields(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	char err[256];
	struct mc_store_cache c;
	uint32_t uid = deliver_file(s, DATA_DIR "/12-encoded-words-addresses.eml");
	assert_int_equal(mc_store_msg_cache(s, "INBOX", uid, &c, err, sizeof(err)), 0);
	assert_string_equal(c.subject, "Café\xc3\xa9 mixed");
	assert_string_equal(c.from, "Älice <alice@example.test>");
	assert_string_equal(c.from_sort, "alice");
	assert_string_equal(c.cc_sort, "john");
	assert_true(strstr(c.cc, "Jörg <jorg@example.test>") != NULL);
	assert_true(c.has_date);
	assert_int_equal(c.date, 1795687200);
	mc_store_cache_free(&c);
	uid = deliver_file(s, DATA_DIR "/26-date-variants.eml");
	assert_int_equal(mc_store_msg_cache(s, "INBOX", uid, &c, err, sizeof(err)), 0);
	assert_int_equal(c.date, 1795687200 + 5 * 3600);   /* 26 Nov 2026 10:00 EST */
	assert_int_equal(c.date_tz, -300);
	mc_store_cache_free(&c);
	uid = deliver_file(s, DATA_DIR "/27-in-reply-to-refs.eml");
	assert_int_equal(mc_store_msg_cache(s, "INBOX", uid, &c, err, sizeof(err)), 0);
	assert_string_equal(c.in_reply_to, "<parent@example.test>");
	assert_string_equal(c.references, "<root@example.test> <parent@example.test>");
	assert_string_equal(c.message_id, "<394544644.10@example.test>");
	mc_store_cache_free(&c);
	uid = deliver_file(s, DATA_DIR "/02-no-headers-body.eml");
	assert_int_equal(mc_store_msg_cache(s, "INBOX", uid, &c, err, sizeof(err)), 0);
	assert_false(c.has_date);
	assert_string_equal(c.from_sort, "");
	mc_store_cache_free(&c);
	assert_int_equal(mc_store_msg_cache(s, "INBOX", 999, &c, err, sizeof(err)), -2);
	assert_int_equal(mc_store_msg_cache(s, "Nope", 1, &c, err, sizeof(err)), -2);
	mc_store_close(s);
}


/* A version 1 index (as the first releases wrote it) is migrated; its messages get a cache when asked. */
static void
test_migrate_v1(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	uint32_t uid = deliver_file(s, DATA_DIR "/04-alt-html.eml");
	mc_store_close(s);
	char idx[400];
	snprintf(idx, sizeof(idx), "%s/index.sqlite", f->store);
	/* Make it version 1 again: the v1 messages table, the same rows, no cache columns. */
	index_sql(idx, "BEGIN;"
		 "CREATE TABLE m1(mailbox INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,"
		 " uid INTEGER NOT NULL, base TEXT NOT NULL, file TEXT NOT NULL, size INTEGER NOT NULL,"
		 " vsize INTEGER NOT NULL, internal_date INTEGER NOT NULL, flags INTEGER NOT NULL DEFAULT 0,"
		 " keywords TEXT NOT NULL DEFAULT '', modseq INTEGER NOT NULL, envelope TEXT, bodystructure TEXT,"
		 " PRIMARY KEY(mailbox, uid), UNIQUE(mailbox, base)) WITHOUT ROWID;"
		 "INSERT INTO m1 SELECT mailbox, uid, base, file, size, vsize, internal_date, flags, keywords, modseq,"
		 " NULL, NULL FROM messages;"
		 "DROP TABLE messages; ALTER TABLE m1 RENAME TO messages;"
		 "CREATE INDEX messages_modseq ON messages(mailbox, modseq);"
		 "ALTER TABLE mailboxes DROP COLUMN recent_uid;"
		 "PRAGMA user_version=1; COMMIT;");
	s = open_store(f);
	assert_int_equal(index_sql_int(idx, "PRAGMA user_version"), MC_STORE_SCHEMA_VERSION);
	/* what was there before the upgrade is not \Recent */
	assert_int_equal(index_sql_int(idx, "SELECT recent_uid FROM mailboxes WHERE name = 'INBOX'"), (int)uid);
	assert_int_equal(index_sql_int(idx, "SELECT count(*) FROM messages WHERE cache_ver IS NULL"), 1);
	struct mc_store_cache c;
	char err[256];
	assert_int_equal(mc_store_msg_cache(s, "INBOX", uid, &c, err, sizeof(err)), 0);
	assert_non_null(strstr(c.bodystructure, "\"alternative\" (\"boundary\" \"b1_4439\")"));
	mc_store_cache_free(&c);
	/* ... and it was kept */
	assert_int_equal(index_sql_int(idx, "SELECT count(*) FROM messages WHERE cache_ver IS NULL"), 0);
	mc_store_close(s);
}

/*
 * A store with one delivered message whose index is then taken back to an
 * older schema by downgrade (SQL; a count query gone, when given, must then
 * answer 0), reopened: the migration ran. idx gets the index's path, *uid
 * the message's UID.
 */
static struct mc_store *
migrated(struct fx *f, const char *downgrade, const char *gone, char *idx, size_t idxsz, uint32_t *uid)
{
	struct mc_store *s = open_store(f);
	*uid = deliver_file(s, DATA_DIR "/04-alt-html.eml");
	mc_store_close(s);
	snprintf(idx, idxsz, "%s/index.sqlite", f->store);
	index_sql(idx, downgrade);
	if (gone)
		assert_int_equal(index_sql_int(idx, gone), 0);
	s = open_store(f);
	assert_int_equal(index_sql_int(idx, "PRAGMA user_version"), MC_STORE_SCHEMA_VERSION);
	return s;
}

/* A version 2 index (no \Recent mark) is migrated: its mail counts as seen, new mail is recent. */
static void
test_migrate_v2(void **state)
{
	struct fx *f = *state;
	char idx[400];
	uint32_t uid;
	struct mc_store *s = migrated(f, "BEGIN; ALTER TABLE mailboxes DROP COLUMN recent_uid; PRAGMA user_version=2; COMMIT;",
				      NULL, idx, sizeof(idx), &uid);
	struct mc_store_mailbox mb;
	assert_int_equal(mc_store_mailbox_get(s, "INBOX", &mb), 0);
	assert_int_equal(mb.recent_uid, uid);
	uint32_t uid2 = deliver_file(s, DATA_DIR "/04-alt-html.eml");
	uint32_t prev = 0;
	assert_int_equal(mc_store_recent(s, "INBOX", uid2, true, &prev), 0);
	assert_int_equal(prev, uid);
	mc_store_close(s);
}

static int
note_gone(void *arg, uint32_t uid, uint64_t modseq)
{
	(void)modseq;
	*(uint32_t *)arg = uid;
	return 0;
}

/* A version 3 index gets the tombstones' MODSEQ index, which the changes since a MODSEQ are read through. */
static void
test_migrate_v3(void **state)
{
	struct fx *f = *state;
	char idx[400];
	uint32_t uid;
	struct mc_store *s = migrated(f, "BEGIN; DROP INDEX expunged_modseq; PRAGMA user_version=3; COMMIT;",
				      "SELECT count(*) FROM sqlite_master WHERE name = 'expunged_modseq'", idx,
				      sizeof(idx), &uid);
	assert_int_equal(index_sql_int(idx, "SELECT count(*) FROM sqlite_master WHERE name = 'expunged_modseq'"), 1);
	char err[256];
	assert_int_equal(mc_store_expunge(s, "INBOX", &uid, 1, err, sizeof(err)), 1);
	uint32_t gone = 0;
	assert_int_equal(mc_store_changes_since(s, "INBOX", 1, NULL, note_gone, &gone), 0);
	assert_int_equal(gone, uid);
	mc_store_close(s);
}

/* Reindex gives a cache to rows without one and to files it finds. */
static void
test_reindex_fills(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	deliver_file(s, DATA_DIR "/05-mixed-attachment.eml");
	mc_store_close(s);
	char idx[400], cmd[1200];
	snprintf(idx, sizeof(idx), "%s/index.sqlite", f->store);
	index_sql(idx, "UPDATE messages SET cache_ver = NULL, envelope = NULL, bodystructure = NULL");
	/* a file dropped in by hand (another MDA, a restore) */
	snprintf(cmd, sizeof(cmd), "cp '%s/06-nested.eml' '%s/cur/1700000000.M1P1Q1.host:2,S'", DATA_DIR, f->store);
	assert_int_equal(system(cmd), 0);
	s = open_store(f);
	char err[256] = "";
	struct mc_store_reindex_stats st;
	if (mc_store_reindex(s, &st, err, sizeof(err)) < 0)
		fail_msg("reindex: %s", err);
	assert_int_equal(st.added, 1);
	assert_int_equal(index_sql_int(idx, "SELECT count(*) FROM messages WHERE cache_ver IS NULL"), 0);
	assert_int_equal(index_sql_int(idx, "SELECT count(*) FROM messages WHERE bodystructure LIKE '((\"text\" \"plain\"%'"),
			 1);
	mc_store_close(s);
}

/* APPEND-style: a row whose cache is filled on request. */
static void
test_cache_fill(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	uint32_t uid = deliver_file(s, DATA_DIR "/00-plain.eml");
	char idx[400], err[256];
	snprintf(idx, sizeof(idx), "%s/index.sqlite", f->store);
	index_sql(idx, "UPDATE messages SET cache_ver = NULL, envelope = NULL");
	assert_int_equal(mc_store_cache_fill(s, "INBOX", uid, err, sizeof(err)), 0);
	assert_int_equal(index_sql_int(idx, "SELECT count(*) FROM messages WHERE envelope LIKE '(\"Thu, 26 Nov%'"), 1);
	assert_int_equal(mc_store_cache_fill(s, "INBOX", uid + 1, err, sizeof(err)), -2);
	mc_store_close(s);
}

struct each {
	unsigned n, nulls;
	uint32_t uids[16];
	char subj[16][64];
};

static int
each_cb(void *arg, uint32_t uid, const struct mc_store_cache *c)
{
	struct each *e = arg;
	e->uids[e->n] = uid;
	snprintf(e->subj[e->n], sizeof(e->subj[0]), "%s", c ? c->subject : "(none)");
	e->nulls += c == NULL;
	return ++e->n == 16;
}

/* A range in one pass: rows without a cache are filled first, a lost file is reported, not skipped. */
static void
test_cache_each(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	deliver_file(s, DATA_DIR "/00-plain.eml");
	deliver_file(s, DATA_DIR "/03-qp-utf8.eml");
	deliver_file(s, DATA_DIR "/04-alt-html.eml");
	char idx[400], err[256], cmd[600];
	snprintf(idx, sizeof(idx), "%s/index.sqlite", f->store);
	index_sql(idx, "UPDATE messages SET cache_ver = NULL WHERE uid >= 2");
	/* the third message's file is gone (and the index does not know yet) */
	sqlite3 *db;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_open(idx, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT file FROM messages WHERE uid = 3", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(cmd, sizeof(cmd), "%s/%s", f->store, (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_int_equal(unlink(cmd), 0);
	struct each e = { 0 };
	assert_int_equal(mc_store_cache_each(s, "INBOX", 1, UINT32_MAX, each_cb, &e, err, sizeof(err)), 0);
	assert_int_equal(e.n, 3);
	assert_int_equal(e.uids[0], 1);
	assert_string_equal(e.subj[0], "plain text");
	assert_string_equal(e.subj[1], "Grüße");
	assert_string_equal(e.subj[2], "(none)");
	assert_int_equal(e.nulls, 1);
	memset(&e, 0, sizeof(e));
	assert_int_equal(mc_store_cache_each(s, "INBOX", 2, 2, each_cb, &e, err, sizeof(err)), 0);
	assert_int_equal(e.n, 1);
	assert_int_equal(mc_store_cache_each(s, "Nope", 1, 5, each_cb, &e, err, sizeof(err)), -2);
	mc_store_close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_delivery_caches_corpus, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sections_from_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_search_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_v2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_v3, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reindex_fills, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_fill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_each, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
