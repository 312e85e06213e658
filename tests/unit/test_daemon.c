/*
 * test_daemon.c - the pure rules of supervising: restart backoff, where
 * the daemons' programs are found, how a child's end is described, how
 * `postern status` prints (table, JSON, uptime), and the tool's global
 * option parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "postern/args.h"
#include "postern/svc.h"

static void
test_backoff_schedule(void **state)
{
	/* 1 s doubling, capped at 60 s. */
	assert_int_equal(postern_backoff_delay_ms(1), 1000);
	assert_int_equal(postern_backoff_delay_ms(2), 2000);
	assert_int_equal(postern_backoff_delay_ms(3), 4000);
	assert_int_equal(postern_backoff_delay_ms(6), 32000);
	assert_int_equal(postern_backoff_delay_ms(7), 60000);
	assert_int_equal(postern_backoff_delay_ms(1000), 60000);
	assert_int_equal(postern_backoff_delay_ms(0), 1000);
}

static void
test_backoff_reset(void **state)
{
	unsigned f = 0;
	/* A crash loop: each quick exit counts one more. */
	f = postern_backoff_failures(f, 200);
	assert_int_equal(f, 1);
	f = postern_backoff_failures(f, 1500);
	assert_int_equal(f, 2);
	f = postern_backoff_failures(f, 59999);
	assert_int_equal(f, 3);
	assert_int_equal(postern_backoff_delay_ms(f), 4000);
	/* A run of a minute or more forgets the earlier failures. */
	f = postern_backoff_failures(f, 60000);
	assert_int_equal(f, 1);
	assert_int_equal(postern_backoff_delay_ms(f), 1000);
	/* The count never wraps around to a short delay. */
	f = 0;
	for (int i = 0; i < 10000; i++)
		f = postern_backoff_failures(f, 10);
	assert_int_equal(postern_backoff_delay_ms(f), 60000);
}

static const char *existing[8];

static bool
usable(const char *path)
{
	for (size_t i = 0; i < 8 && existing[i]; i++)
		if (strcmp(existing[i], path) == 0)
			return true;
	return false;
}

static void
test_daemon_path(void **state)
{
	char out[256];
	memset(existing, 0, sizeof(existing));
	existing[0] = "/src/build/smtpd/smtpd";

	/* Build tree: next to <builddir>/postern/postern. */
	assert_int_equal(postern_daemon_path("smtpd", "/src/build/postern/postern", NULL, "/usr/libexec/postern",
					     usable, out, sizeof(out)), 0);
	assert_string_equal(out, "/src/build/smtpd/smtpd");
	/* Not built there: the libexec directory. */
	assert_int_equal(postern_daemon_path("queued", "/src/build/postern/postern", NULL, "/usr/libexec/postern",
					     usable, out, sizeof(out)), 0);
	assert_string_equal(out, "/usr/libexec/postern/queued");
	/* Installed: /usr/bin/postern is not in a directory called postern. */
	assert_int_equal(postern_daemon_path("smtpd", "/usr/bin/postern", NULL, "/usr/libexec/postern", usable, out,
					     sizeof(out)), 0);
	assert_string_equal(out, "/usr/libexec/postern/smtpd");
	/* The environment wins over both. */
	assert_int_equal(postern_daemon_path("smtpd", "/src/build/postern/postern", "/opt/p", "/usr/libexec/postern",
					     usable, out, sizeof(out)), 0);
	assert_string_equal(out, "/opt/p/smtpd");
	/* An empty variable counts as unset. */
	assert_int_equal(postern_daemon_path("smtpd", "/src/build/postern/postern", "", "/usr/libexec/postern",
					     usable, out, sizeof(out)), 0);
	assert_string_equal(out, "/src/build/smtpd/smtpd");
	/* A build directory at the root. */
	existing[1] = "/imapd/imapd";
	assert_int_equal(postern_daemon_path("imapd", "/postern/postern", NULL, "/l", usable, out, sizeof(out)), 0);
	assert_string_equal(out, "/imapd/imapd");
	/* Too long for the caller's buffer. */
	char small[8];
	assert_int_equal(postern_daemon_path("smtpd", "/usr/bin/postern", NULL, "/usr/libexec/postern", usable, small,
					     sizeof(small)), -1);
}

static void
test_exit_desc(void **state)
{
	char buf[64];
	assert_string_equal(postern_exit_desc(1, 0, buf, sizeof(buf)), "exit status 1");
	assert_string_equal(postern_exit_desc(0, 0, buf, sizeof(buf)), "exit status 0");
	assert_string_equal(postern_exit_desc(0, SIGKILL, buf, sizeof(buf)), "signal SIGKILL");
	assert_string_equal(postern_exit_desc(0, SIGSEGV, buf, sizeof(buf)), "signal SIGSEGV");
}

static void
test_uptime(void **state)
{
	char buf[32];
	assert_string_equal(postern_fmt_uptime(0, buf, sizeof(buf)), "0s");
	assert_string_equal(postern_fmt_uptime(59, buf, sizeof(buf)), "59s");
	assert_string_equal(postern_fmt_uptime(60, buf, sizeof(buf)), "1m00s");
	assert_string_equal(postern_fmt_uptime(192, buf, sizeof(buf)), "3m12s");
	assert_string_equal(postern_fmt_uptime(3600 * 2 + 5 * 60 + 9, buf, sizeof(buf)), "2h05m");
	assert_string_equal(postern_fmt_uptime(86400 * 3 + 4 * 3600 + 59, buf, sizeof(buf)), "3d04h");
}

static void
test_svc_names(void **state)
{
	assert_string_equal(postern_svc_names[0], "resolverd");
	assert_string_equal(postern_svc_names[POSTERN_NSVC - 1], "imapd");
	assert_int_equal(postern_svc_index("smtpd"), 2);
	assert_int_equal(postern_svc_index("postfix"), -1);
	assert_int_equal(postern_svc_index(""), -1);
}

static struct postern_status_row rows[2];

static void
fill_rows(void)
{
	memset(rows, 0, sizeof(rows));
	snprintf(rows[0].name, sizeof(rows[0].name), "smtpd");
	rows[0].pid = 4711;
	rows[0].answered = true;
	rows[0].uptime = 75;
	rows[0].connections = 3;
	snprintf(rows[0].state, sizeof(rows[0].state), "running");
	rows[0].has_restarts = true;
	rows[0].restarts = 2;
	snprintf(rows[1].name, sizeof(rows[1].name), "queued");
	snprintf(rows[1].state, sizeof(rows[1].state), "not responding (\"x\"\n)");
}

static void
test_status_json(void **state)
{
	struct mc_buf b;
	mc_buf_init(&b, 0);
	fill_rows();
	postern_status_json(&b, rows, 2);
	assert_string_equal(b.data, "[\n"
				    " {\"name\":\"smtpd\",\"pid\":4711,\"uptime_seconds\":75,\"connections\":3,"
				    "\"state\":\"running\",\"restarts\":2},\n"
				    " {\"name\":\"queued\",\"pid\":null,\"uptime_seconds\":null,\"connections\":null,"
				    "\"state\":\"not responding (\\\"x\\\"\\n)\",\"restarts\":null}\n"
				    "]\n");
	mc_buf_reset(&b);
	postern_status_json(&b, rows, 0);
	assert_string_equal(b.data, "[]\n");
	mc_buf_reset(&b);
	postern_json_str(&b, "a\x01\\b");
	assert_string_equal(b.data, "\"a\\u0001\\\\b\"");
	mc_buf_free(&b);
}

static void
test_status_table(void **state)
{
	struct mc_buf b;
	mc_buf_init(&b, 0);
	fill_rows();
	postern_status_table(&b, rows, 2);
	const char *want = "NAME            PID   UPTIME CONNECTIONS  STATE\n"
			   "smtpd          4711    1m15s           3  running\n"
			   "queued            -        -           -  not responding (\"x\"?)\n";
	assert_string_equal(b.data, want);
	mc_buf_free(&b);
}

static int
parse(const char *const *words, struct postern_args *a, char *err, size_t errsz)
{
	char *argv[16];
	int argc = 0;
	for (; words[argc]; argc++)
		argv[argc] = (char *)words[argc];
	argv[argc] = NULL;
	return postern_args_parse(argc, argv, a, err, errsz);
}

static void
test_args(void **state)
{
	struct postern_args a;
	char err[128];

	const char *w1[] = { "postern", "-c", "x.conf", "--json", "status", "--wait", "5", NULL };
	assert_int_equal(parse(w1, &a, err, sizeof(err)), 0);
	assert_string_equal(a.config_path, "x.conf");
	assert_true(a.json);
	assert_int_equal(a.cmd, 4);

	const char *w2[] = { "postern", "--json", "--config=/e/p.conf", "user", "-c", "other", NULL };
	assert_int_equal(parse(w2, &a, err, sizeof(err)), 0);
	assert_string_equal(a.config_path, "/e/p.conf");
	assert_int_equal(a.cmd, 3);

	const char *w3[] = { "postern", "-cfoo.conf", "up", NULL };
	assert_int_equal(parse(w3, &a, err, sizeof(err)), 0);
	assert_string_equal(a.config_path, "foo.conf");
	assert_false(a.json);

	const char *w4[] = { "postern", "-x", "up", NULL };
	assert_int_equal(parse(w4, &a, err, sizeof(err)), -1);
	assert_string_equal(err, "unknown option '-x'");

	const char *w5[] = { "postern", "-c", NULL };
	assert_int_equal(parse(w5, &a, err, sizeof(err)), -1);
	assert_string_equal(err, "option -c needs a file name");

	const char *w6[] = { "postern", "--json", NULL };
	assert_int_equal(parse(w6, &a, err, sizeof(err)), -1);
	assert_string_equal(err, "no command given");

	const char *w7[] = { "postern", "--version", NULL };
	assert_int_equal(parse(w7, &a, err, sizeof(err)), 0);
	assert_true(a.version);

	const char *w8[] = { "postern", "-h", NULL };
	assert_int_equal(parse(w8, &a, err, sizeof(err)), 0);
	assert_true(a.help);

	const char *w9[] = { "postern", "--", "-odd", NULL };
	assert_int_equal(parse(w9, &a, err, sizeof(err)), 0);
	assert_int_equal(a.cmd, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff_schedule),
		cmocka_unit_test(test_backoff_reset),
		cmocka_unit_test(test_daemon_path),
		cmocka_unit_test(test_exit_desc),
		cmocka_unit_test(test_uptime),
		cmocka_unit_test(test_svc_names),
		cmocka_unit_test(test_status_json),
		cmocka_unit_test(test_status_table),
		cmocka_unit_test(test_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
