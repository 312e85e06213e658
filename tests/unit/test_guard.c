/*
 * test_guard.c - the guard against password guessing, on a clock moved by
 * hand: delays after N failures, blocks after M, expiry, decay, IPv6 /64
 * grouping, success clearing, the bounded table, and the log lines.
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
#include <unistd.h>

#include "resolverd/guard.h"
#include "util/log.h"

static uint64_t fake_ms = 1000000;

static uint64_t
fake_now(void *arg)
{
	return fake_ms;
}

static const struct guard_clock fake_clock = { fake_now, NULL };
static const struct guard_limits limits = { .delay_after = 3, .block_after = 10, .block_time = 900 };

static struct guard *
new_guard(size_t max)
{
	fake_ms = 1000000;
	return guard_new(&limits, max, &fake_clock);
}

/* One attempt that fails; returns the verdict it got before failing. */
static struct guard_verdict
fail_once(struct guard *g, const char *client, const char *user)
{
	struct guard_verdict v;
	guard_check(g, client, user, &v);
	if (!v.blocked)
		guard_failed(g, "smtp", client, user, v.delay_ms);
	return v;
}

static void
test_delay_after_n_failures(void **state)
{
	struct guard *g = new_guard(100);
	struct guard_verdict v;
	for (int i = 0; i < 3; i++) {
		v = fail_once(g, "192.0.2.7", "alice@example.test");
		assert_false(v.blocked);
		assert_int_equal(v.delay_ms, 0);
	}
	/* The 4th attempt is held 1 s, whatever its outcome; then 2 s, ... */
	guard_check(g, "192.0.2.7", "bob@example.test", &v);
	assert_int_equal(v.failures, 3);
	assert_int_equal(v.delay_ms, 1000);
	v = fail_once(g, "192.0.2.7", "alice@example.test");
	assert_int_equal(v.delay_ms, 1000);
	v = fail_once(g, "192.0.2.7", "alice@example.test");
	assert_int_equal(v.delay_ms, 2000);
	/* Another client trying the same account is slowed by the account's count. */
	guard_check(g, "198.51.100.1", "ALICE@example.test", &v);
	assert_int_equal(v.delay_ms, 3000);
	/* An unrelated client and account are not. */
	guard_check(g, "198.51.100.1", "carol@example.test", &v);
	assert_int_equal(v.delay_ms, 0);
	assert_false(v.blocked);
	guard_free(g);
}

static void
test_delay_capped_and_block(void **state)
{
	struct guard *g = new_guard(100);
	struct guard_verdict v;
	struct guard_limits lim = { .delay_after = 1, .block_after = 20, .block_time = 60 };
	guard_set_limits(g, &lim);
	for (int i = 0; i < 15; i++)
		v = fail_once(g, "192.0.2.8", "u@example.test");
	assert_int_equal(v.delay_ms, 10000);  /* capped */
	guard_free(g);
	g = new_guard(100);

	for (int i = 0; i < 10; i++) {
		v = fail_once(g, "192.0.2.9", "alice@example.test");
		assert_false(v.blocked);
	}
	/* The 10th failure blocked the address and the account, for the right password too. */
	guard_check(g, "192.0.2.9", "alice@example.test", &v);
	assert_true(v.blocked);
	guard_check(g, "192.0.2.9", "other@example.test", &v);
	assert_true(v.blocked);
	guard_check(g, "203.0.113.5", "alice@example.test", &v);
	assert_true(v.blocked);
	guard_check(g, "203.0.113.5", "other@example.test", &v);
	assert_false(v.blocked);

	/* Still blocked a second before block_time ends; free after it. */
	fake_ms += 899 * 1000;
	guard_check(g, "192.0.2.9", "other@example.test", &v);
	assert_true(v.blocked);
	fake_ms += 1000;
	guard_check(g, "192.0.2.9", "alice@example.test", &v);
	assert_false(v.blocked);
	assert_int_equal(v.failures, 0);
	assert_int_equal(v.delay_ms, 0);
	guard_free(g);
}

static void
test_decay(void **state)
{
	struct guard *g = new_guard(100);
	struct guard_verdict v;
	for (int i = 0; i < 5; i++)
		fail_once(g, "192.0.2.10", "alice@example.test");
	fake_ms += 899 * 1000;
	guard_check(g, "192.0.2.10", "x@example.test", &v);
	assert_int_equal(v.failures, 5);
	fake_ms += 1000;  /* block_time without a failure: forgotten */
	guard_check(g, "192.0.2.10", "alice@example.test", &v);
	assert_int_equal(v.failures, 0);
	assert_int_equal(v.delay_ms, 0);
	guard_free(g);
}

static void
test_ipv6_grouping(void **state)
{
	char k[100];
	guard_client_key("2001:db8:1:2:aaaa::1", k, sizeof(k));
	assert_string_equal(k, "2001:db8:1:2::/64");
	guard_client_key("::ffff:192.0.2.7", k, sizeof(k));
	assert_string_equal(k, "192.0.2.7");
	guard_client_key("192.0.2.7", k, sizeof(k));
	assert_string_equal(k, "192.0.2.7");
	guard_client_key("not an\naddress", k, sizeof(k));
	assert_string_equal(k, "not an?address");

	struct guard *g = new_guard(100);
	struct guard_verdict v;
	for (int i = 0; i < 4; i++) {
		char ip[64];
		snprintf(ip, sizeof(ip), "2001:db8:1:2::%x", i + 1);
		char user[64];
		snprintf(user, sizeof(user), "user%d@example.test", i);
		fail_once(g, ip, user);
	}
	/* Four addresses of one /64 count as one client. */
	guard_check(g, "2001:db8:1:2:ffff:ffff:ffff:ffff", "new@example.test", &v);
	assert_int_equal(v.failures, 4);
	assert_int_equal(v.delay_ms, 2000);
	/* The neighbouring /64 is someone else. */
	guard_check(g, "2001:db8:1:3::1", "new@example.test", &v);
	assert_int_equal(v.failures, 0);
	guard_free(g);
}

static void
test_success_clears(void **state)
{
	struct guard *g = new_guard(100);
	struct guard_verdict v;
	for (int i = 0; i < 5; i++)
		fail_once(g, "192.0.2.11", "alice@example.test");
	guard_check(g, "192.0.2.11", "alice@example.test", &v);
	assert_int_equal(v.delay_ms, 3000);
	guard_succeeded(g, "192.0.2.11", "Alice@Example.test");
	guard_check(g, "192.0.2.11", "alice@example.test", &v);
	assert_int_equal(v.failures, 0);
	assert_int_equal(v.delay_ms, 0);
	assert_int_equal(guard_size(g), 0);
	guard_free(g);
}

static void
test_table_bounded(void **state)
{
	struct guard *g = new_guard(6);
	struct guard_verdict v;
	/* Each failure makes two entries (client, account). */
	for (int i = 0; i < 3; i++) {
		char ip[32], user[32];
		snprintf(ip, sizeof(ip), "192.0.2.%d", 100 + i);
		snprintf(user, sizeof(user), "u%d@example.test", i);
		for (int j = 0; j < 4; j++)
			fail_once(g, ip, user);
	}
	assert_int_equal(guard_size(g), 6);
	fail_once(g, "192.0.2.200", "z@example.test");
	assert_int_equal(guard_size(g), 6);
	/* The oldest (192.0.2.100 and u0) were forgotten; the newest are kept. */
	guard_check(g, "192.0.2.100", "u0@example.test", &v);
	assert_int_equal(v.failures, 0);
	guard_check(g, "192.0.2.102", "nobody@example.test", &v);
	assert_int_equal(v.failures, 4);
	for (int i = 0; i < 1000; i++) {
		char ip[32];
		snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 250, i % 250);
		fail_once(g, ip, ip);
	}
	assert_int_equal(guard_size(g), 6);
	guard_free(g);
}

static void
test_log_lines(void **state)
{
	char path[] = "/tmp/test_guard_log.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	int saved = dup(2);
	dup2(fd, 2);

	struct guard *g = new_guard(100);
	for (int i = 0; i < 10; i++)
		fail_once(g, "192.0.2.7", "alice@example.test");
	guard_free(g);

	dup2(saved, 2);
	close(saved);
	char buf[8192] = "";
	assert_true(pread(fd, buf, sizeof(buf) - 1, 0) > 0);
	close(fd);
	unlink(path);
	assert_non_null(strstr(buf, "auth failed service=smtp client=192.0.2.7 user=alice@example.test failures=3 "
				    "delay=0s\n"));
	assert_non_null(strstr(buf, "auth failed service=smtp client=192.0.2.7 user=alice@example.test failures=4 "
				    "delay=1s\n"));
	assert_non_null(strstr(buf, "auth blocked client=192.0.2.7 for 900s\n"));
	assert_non_null(strstr(buf, "auth blocked user=alice@example.test for 900s\n"));
	assert_null(strstr(buf, "failures=11"));
}

int
main(void)
{
	mc_log_init("test_guard", MC_LOG_INFO);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delay_after_n_failures),
		cmocka_unit_test(test_delay_capped_and_block),
		cmocka_unit_test(test_decay),
		cmocka_unit_test(test_ipv6_grouping),
		cmocka_unit_test(test_success_clears),
		cmocka_unit_test(test_table_bounded),
		cmocka_unit_test(test_log_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
