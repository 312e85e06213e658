/*
 * index_sql.h - the mail-store unit tests' own look into an index.sqlite:
 * run SQL on it, or read one integer from it, for what a test sets up or
 * checks behind the store's back (a schema downgraded, rows a power loss
 * took). Included by test programs only, after cmocka.h (its asserts);
 * static functions.
 */
#ifndef TEST_INDEX_SQL_H
#define TEST_INDEX_SQL_H

#include <sqlite3.h>
#include <stdint.h>

static void
index_sql(const char *index, const char *q)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(index, &db), SQLITE_OK);
	char *e = NULL;
	if (sqlite3_exec(db, q, NULL, NULL, &e) != SQLITE_OK)
		fail_msg("%s: %s", q, e);
	sqlite3_close(db);
}

/* The first column of the first row; -1 when there is no row. */
static int64_t
index_sql_int(const char *index, const char *q)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t v = -1;
	assert_int_equal(sqlite3_open(index, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

#endif
