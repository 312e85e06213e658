/*
 * test_config.c - the config loader: defaults, every value form, and the
 * errors that name file, line and key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/config.h"
#include "util/log.h"

static char tmpdir[256];

static const char *
write_conf(const char *name, const char *text)
{
	static char path[512];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void
test_defaults(void **state)
{
	struct mc_config cfg;
	char err[256];
	assert_int_equal(mc_config_load(&cfg, NULL, err, sizeof(err)), 0);
	assert_int_equal(cfg.smtpd.listen.n, 1);
	assert_string_equal(cfg.smtpd.listen.a[0].text, "127.0.0.1:2525");
	assert_string_equal(cfg.smtpd.submission.a[0].text, "127.0.0.1:2587");
	assert_string_equal(cfg.smtpd.submissions.a[0].text, "127.0.0.1:2465");
	assert_string_equal(cfg.pop3d.listen_tls.a[0].text, "127.0.0.1:1995");
	assert_string_equal(cfg.imapd.listen.a[0].text, "127.0.0.1:1143");
	assert_int_equal(cfg.imapd.processes, 0);   /* auto: one per online CPU */
	assert_int_equal(cfg.smtpd.max_message_size, 35ull * 1024 * 1024);
	assert_int_equal(cfg.queued.retry_min, 300);
	assert_int_equal(cfg.queued.max_queue_lifetime, 5 * 86400);
	assert_int_equal(cfg.smtpd.allow_plaintext_auth, MC_PLAIN_LOOPBACK);
	assert_true(cfg.global.tls_self_signed);
	char cwd[512];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	char want[600];
	snprintf(want, sizeof(want), "%s/var", cwd);
	assert_string_equal(cfg.global.state_dir, want);
	snprintf(want, sizeof(want), "%s/var/run", cwd);
	assert_string_equal(cfg.global.run_dir, want);
}

static void
test_values_and_relative_paths(void **state)
{
	struct mc_config cfg;
	char err[256];
	const char *p = write_conf("ok.conf", "[global]\n"
					      "hostname = mx.example.test   ; inline comment\n"
					      "state_dir = ./spool\n"
					      "log_level = debug\n"
					      "[smtpd]\n"
					      "listen = 127.0.0.1:25, [::1]:25\n"
					      "submission =\n"
					      "max_message_size = 10M\n"
					      "timeout = 90s\n"
					      "allow_plaintext_auth = no\n"
					      "[queued]\n"
					      "retry_max = 2h\n"
					      "[resolverd]\n"
					      "nameservers = 127.0.0.1:5353\n"
					      "[imapd]\n"
					      "processes = 3\n");
	assert_int_equal(mc_config_load(&cfg, p, err, sizeof(err)), 0);
	assert_string_equal(cfg.global.hostname, "mx.example.test");
	char want[600];
	snprintf(want, sizeof(want), "%s/spool", tmpdir);
	assert_string_equal(cfg.global.state_dir, want);
	snprintf(want, sizeof(want), "%s/spool/run", tmpdir);
	assert_string_equal(cfg.global.run_dir, want);
	assert_int_equal(cfg.global.log_level, MC_LOG_DEBUG);
	assert_int_equal(cfg.smtpd.listen.n, 2);
	assert_string_equal(cfg.smtpd.listen.a[1].text, "[::1]:25");
	assert_int_equal(cfg.smtpd.submission.n, 0);
	assert_int_equal(cfg.smtpd.max_message_size, 10ull * 1024 * 1024);
	assert_int_equal(cfg.smtpd.timeout, 90);
	assert_int_equal(cfg.smtpd.allow_plaintext_auth, MC_PLAIN_NO);
	assert_int_equal(cfg.queued.retry_max, 7200);
	assert_string_equal(cfg.resolverd.nameservers, "127.0.0.1:5353");
	assert_int_equal(cfg.imapd.processes, 3);
}

static void
expect_error(const char *text, const char *want)
{
	struct mc_config cfg;
	char err[256];
	const char *p = write_conf("bad.conf", text);
	assert_int_equal(mc_config_load(&cfg, p, err, sizeof(err)), -1);
	if (strstr(err, want) == NULL)
		fail_msg("error '%s' does not contain '%s'", err, want);
}

static void
test_errors_name_file_line_key(void **state)
{
	expect_error("[global]\nhostname = a\nbogus = 1\n", "bad.conf:3: [global] bogus: unknown key");
	expect_error("[smtpd]\n\nmax_recipients = many\n", "bad.conf:3: [smtpd] max_recipients: not a number: 'many'");
	expect_error("[nosuch]\nx = 1\n", "bad.conf:2: unknown section [nosuch]");
	expect_error("[smtpd]\nlisten = 127.0.0.1:99999\n", "bad.conf:2: [smtpd] listen: not a list of addresses");
	expect_error("[queued]\nretry_min = 5 minutes\n", "bad.conf:2: [queued] retry_min: not a duration");
	expect_error("[smtpd]\nmax_message_size = 10X\n", "[smtpd] max_message_size: not a size");
	expect_error("[global]\nlog_level = loud\n", "bad.conf:2: [global] log_level: not a log level");
	expect_error("[smtpd]\nallow_plaintext_auth = maybe\n", "allow_plaintext_auth: not yes, no or loopback");
	expect_error("[smtpd]\ntimeout = 1m\ntimeout = 2m\n", "bad.conf:3: [smtpd] timeout: set twice");
	expect_error("[global]\nthis line is not ini\n", "bad.conf:2: syntax error");
	expect_error("[queued]\nretry_min = 2h\nretry_max = 1h\n", "retry_max must be at least retry_min");
	expect_error("[global]\ntls_cert = /x.pem\n", "tls_cert and tls_key must be set together");
	expect_error("[imapd]\nprocesses = 0\n", "bad.conf:2: [imapd] processes: not auto or a number of processes (1-64)");
	expect_error("[imapd]\nprocesses = 65\n", "[imapd] processes: not auto or a number");
	expect_error("[imapd]\nprocesses = two\n", "[imapd] processes: not auto or a number");
	expect_error("[imapd]\nprocesses = 2k\n", "[imapd] processes: not auto or a number");
}

static void
test_missing_file(void **state)
{
	struct mc_config cfg;
	char err[256];
	assert_int_equal(mc_config_load(&cfg, "/nonexistent/postern.conf", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/postern.conf"));
}

static void
test_value_parsers(void **state)
{
	uint64_t sz;
	unsigned d;
	bool b;
	assert_int_equal(mc_parse_size("512K", &sz), 0);
	assert_int_equal(sz, 512 * 1024);
	assert_int_equal(mc_parse_size("1G", &sz), 0);
	assert_int_equal(sz, 1024ull * 1024 * 1024);
	assert_int_equal(mc_parse_size("-1", &sz), -1);
	assert_int_equal(mc_parse_size("99999999999999999999", &sz), -1);
	assert_int_equal(mc_parse_duration("5d", &d), 0);
	assert_int_equal(d, 5 * 86400);
	assert_int_equal(mc_parse_duration("", &d), -1);
	assert_int_equal(mc_parse_duration("99999999999d", &d), -1);
	assert_int_equal(mc_parse_bool("Yes", &b), 0);
	assert_true(b);
	assert_int_equal(mc_parse_bool("nope", &b), -1);
	struct mc_listen_addr a;
	assert_int_equal(mc_parse_listen_addr("*:25", &a), 0);
	assert_string_equal(a.text, "0.0.0.0:25");
	assert_int_equal(mc_parse_listen_addr("[::1:25", &a), -1);
	assert_int_equal(mc_parse_listen_addr("localhost:25", &a), -1);
	assert_int_equal(mc_parse_listen_addr("127.0.0.1:0", &a), -1);
}

static int
setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	char real[256];
	if (realpath(tmpdir, real) == NULL)
		return -1;
	snprintf(tmpdir, sizeof(tmpdir), "%s", real);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values_and_relative_paths),
		cmocka_unit_test(test_errors_name_file_line_key),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_value_parsers),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
