/*
 * test_backoff.c - the retry schedule: retry_min doubling up to retry_max,
 * each delay spread by a quarter either way and never outside
 * [retry_min, retry_max], over every random value's extremes and many
 * values between; a spread that really spreads (a queue of thousands does
 * not come back in one second).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "queued/queued.h"

static void
check_bounds(uint64_t min, uint64_t max)
{
	static const uint32_t rnds[] = { 0, 1, 2, 3, 7, 1000, 65535, 0x7fffffffu, 0xfffffffeu, 0xffffffffu };
	for (uint32_t a = 1; a < 40; a++) {
		uint64_t d = min;
		for (uint32_t i = 1; i < a && d < max; i++)
			d *= 2;
		if (d > max)
			d = max;
		uint64_t lo = d - d / 4 > min ? d - d / 4 : min;
		uint64_t hi = d + d / 4 < max ? d + d / 4 : max;
		for (size_t k = 0; k < sizeof(rnds) / sizeof(rnds[0]); k++) {
			uint64_t v = q_backoff(min, max, a, rnds[k]);
			assert_true(v >= lo && v <= hi);
			assert_true(v >= min && v <= max);
		}
		for (uint32_t r = 0; r < 5000; r += 7) {
			uint64_t v = q_backoff(min, max, a, r * 2654435761u);
			assert_true(v >= lo && v <= hi);
		}
	}
}

static void
test_bounds(void **state)
{
	(void)state;
	check_bounds(300, 3600);      /* the defaults: 5m to 1h */
	check_bounds(1, 4);
	check_bounds(1, 1);
	check_bounds(60, 60);
	check_bounds(7, 1000000);
}

static void
test_doubling(void **state)
{
	(void)state;
	/* with the middle of the spread, the delays double to the cap */
	uint64_t prev = 0;
	for (uint32_t a = 1; a <= 5; a++) {
		uint64_t lo = q_backoff(300, 3600, a, 0);
		assert_true(lo > prev || lo == 3600 * 3 / 4);
		prev = lo;
	}
	assert_int_equal(q_backoff(300, 3600, 1, 0), 300);     /* never under retry_min */
	assert_int_equal(q_backoff(300, 3600, 2, 0), 450);     /* 600 less a quarter */
	assert_int_equal(q_backoff(300, 3600, 2, 300), 750);   /* 600 and a quarter */
	assert_int_equal(q_backoff(300, 3600, 30, 0), 2700);
	assert_int_equal(q_backoff(300, 3600, 30, 900), 3600); /* never over retry_max */
	assert_int_equal(q_backoff(300, 3600, 1000000, 5), 2705);
	/* nonsense settings still give a delay of at least a second */
	assert_int_equal(q_backoff(0, 0, 1, 12345), 1);
	assert_int_equal(q_backoff(10, 5, 3, 12345), 10);
}

static void
test_spread(void **state)
{
	(void)state;
	/* 2000 messages that failed together at attempt 4 (40 min): spread over most of [30, 50] minutes */
	uint64_t lo = UINT64_MAX, hi = 0;
	uint32_t x = 12345;
	for (int i = 0; i < 2000; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		uint64_t v = q_backoff(300, 3600, 4, x);
		lo = v < lo ? v : lo;
		hi = v > hi ? v : hi;
	}
	assert_true(hi - lo > 1100 && lo >= 1800 && hi <= 3000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_doubling),
		cmocka_unit_test(test_spread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
