/*
 * test_qid.c - queue ids: unique, well-formed, sortable, and the validator
 * refuses anything that could be unsafe in a spool path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <cmocka.h>

#include "mail/qid.h"

#define NIDS 100000

static int
cmp_id(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

static void
test_unique_and_sorted(void **state)
{
	(void)state;
	char(*ids)[MC_QID_LEN + 1] = calloc(NIDS, sizeof(*ids));
	assert_non_null(ids);
	for (size_t i = 0; i < NIDS; i++) {
		mc_qid_new(ids[i]);
		assert_true(mc_qid_valid(ids[i]));
		assert_int_equal(strlen(ids[i]), MC_QID_LEN);
		/* made in order, they sort in order: the id says when it arrived */
		if (i > 0)
			assert_true(strcmp(ids[i - 1], ids[i]) < 0);
	}
	qsort(ids, NIDS, sizeof(*ids), cmp_id);
	for (size_t i = 1; i < NIDS; i++)
		assert_string_not_equal(ids[i - 1], ids[i]);
	free(ids);
}

static void
test_time_prefix(void **state)
{
	(void)state;
	char id[MC_QID_LEN + 1];
	struct timeval tv;
	gettimeofday(&tv, NULL);
	mc_qid_new(id);
	char head[14];
	memcpy(head, id, 13);
	head[13] = '\0';
	uint64_t us = strtoull(head, NULL, 16);
	uint64_t now = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
	/* the first 13 digits are the time in microseconds (within a generous second) */
	assert_true(us + 1000000u > now);
	assert_true(us < now + 1000000u);
}

static void
test_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"0123456789ABCDE",          /* too short */
		"0123456789ABCDEF0",        /* too long */
		"0123456789abcdef",         /* lowercase is not ours */
		"../../etc/passwd",
		"0123456789ABCDE/",
		"0123456789ABCD..",
		"0123456789ABCDE\n",
		"0123456789ABCDEG",
		" 123456789ABCDEF",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(mc_qid_valid(bad[i]));
	assert_false(mc_qid_valid(NULL));
	assert_true(mc_qid_valid("0123456789ABCDEF"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unique_and_sorted),
		cmocka_unit_test(test_time_prefix),
		cmocka_unit_test(test_invalid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
