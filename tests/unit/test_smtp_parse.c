/*
 * test_smtp_parse.c - smtpd's command-line parser: verbs in any case,
 * MAIL and RCPT with their ESMTP parameters, xtext, SIZE overflow,
 * duplicate and unknown parameters, BDAT arguments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "smtpd/parse.h"

static void
cmd(const char *line, struct smtpd_cmdline *c, char *buf, size_t bufsz)
{
	size_t n = strlen(line);
	assert_true(n < bufsz);
	memcpy(buf, line, n + 1);
	assert_int_equal(smtpd_parse_cmd(buf, n, c), 0);
}

static void
test_verbs(void **state)
{
	struct smtpd_cmdline c;
	char buf[128];

	cmd("ehlo client.test", &c, buf, sizeof(buf));
	assert_string_equal(c.verb, "EHLO");
	assert_string_equal(c.args, "client.test");
	cmd("MaIl FROM:<a@b.test>  \t", &c, buf, sizeof(buf));
	assert_string_equal(c.verb, "MAIL");
	assert_string_equal(c.args, "FROM:<a@b.test>");
	cmd("QUIT\r", &c, buf, sizeof(buf));
	assert_string_equal(c.verb, "QUIT");
	assert_string_equal(c.args, "");
	cmd("noop   ", &c, buf, sizeof(buf));
	assert_string_equal(c.verb, "NOOP");
	cmd("", &c, buf, sizeof(buf));
	assert_string_equal(c.verb, "");
	cmd("MAIL:FROM", &c, buf, sizeof(buf));
	assert_string_equal(c.verb, "");
	cmd("ABCDEFGHIJKLMNOPQRSTUVWXYZ x", &c, buf, sizeof(buf));
	assert_string_equal(c.verb, "");
	cmd("\xc3\xa9HLO x", &c, buf, sizeof(buf));
	assert_string_equal(c.verb, "");

	/* A NUL byte anywhere: refused. */
	memcpy(buf, "NOOP\0x", 6);
	assert_int_equal(smtpd_parse_cmd(buf, 6, &c), -1);
}

static void
test_mail(void **state)
{
	struct smtpd_mail m;
	char reply[256];

	assert_int_equal(smtpd_parse_mail("FROM:<Alice@Example.test>", &m, reply, sizeof(reply)), 0);
	assert_string_equal(m.addr.local, "Alice");
	assert_string_equal(m.addr.domain, "example.test");
	assert_false(m.size_given);

	assert_int_equal(smtpd_parse_mail("from: <> SIZE=12345 BODY=8bitmime RET=HDRS ENVID=QQ+2B1 AUTH=<>", &m,
					  reply, sizeof(reply)), 0);
	assert_true(m.addr.null);
	assert_true(m.size_given);
	assert_int_equal(m.size, 12345);
	assert_int_equal(m.body, SMTPD_BODY_8BITMIME);
	assert_int_equal(m.ret, MC_ENV_RET_HDRS);
	assert_string_equal(m.envid, "QQ+2B1");
	assert_string_equal(m.auth, "<>");

	assert_int_equal(smtpd_parse_mail("FROM:<a@b.test> body=BINARYMIME", &m, reply, sizeof(reply)), 0);
	assert_int_equal(m.body, SMTPD_BODY_BINARYMIME);
	assert_int_equal(smtpd_parse_mail("FROM:<a@b.test> BODY=7BIT RET=full", &m, reply, sizeof(reply)), 0);
	assert_int_equal(m.body, SMTPD_BODY_7BIT);
	assert_int_equal(m.ret, MC_ENV_RET_FULL);

	/* SIZE that overflows 64 bits: certainly too big, not a syntax error. */
	assert_int_equal(smtpd_parse_mail("FROM:<a@b.test> SIZE=99999999999999999999999999", &m, reply,
					  sizeof(reply)), 0);
	assert_int_equal(m.size, UINT64_MAX);
	assert_int_equal(smtpd_parse_mail("FROM:<a@b.test> SIZE=18446744073709551615", &m, reply, sizeof(reply)), 0);
	assert_int_equal(m.size, UINT64_MAX);
	assert_int_equal(smtpd_parse_mail("FROM:<a@b.test> SIZE=18446744073709551614", &m, reply, sizeof(reply)), 0);
	assert_int_equal(m.size, UINT64_MAX - 1);
}

static void
test_mail_errors(void **state)
{
	struct smtpd_mail m;
	char reply[256];
	static const struct {
		const char *args;
		const char *reply;
	} cases[] = {
		{ "TO:<a@b.test>", "501 5.5.4 Syntax: MAIL FROM:<address>" },
		{ "FROM:a@b.test", "501 5.1.7 Bad sender address syntax" },
		{ "FROM:<a@@b.test>", "501 5.1.7 Bad sender address syntax" },
		{ "FROM:<a@b.test> FOO=1", "555 5.5.4 Unsupported option: FOO" },
		{ "FROM:<a@b.test> NOTIFY=NEVER", "555 5.5.4 Unsupported option: NOTIFY" },
		{ "FROM:<a@b.test> SIZE=1 SIZE=2", "501 5.5.4 Duplicate parameter: SIZE" },
		{ "FROM:<a@b.test> SIZE=1 size=1", "501 5.5.4 Duplicate parameter: size" },
		{ "FROM:<a@b.test> SIZE=abc", "501 5.5.4 Bad parameter value: SIZE" },
		{ "FROM:<a@b.test> SIZE=", "501 5.5.4 Syntax error in parameters" },
		{ "FROM:<a@b.test> SIZE", "501 5.5.4 Bad parameter value: SIZE" },
		{ "FROM:<a@b.test> BODY=9BIT", "501 5.5.4 Bad parameter value: BODY" },
		{ "FROM:<a@b.test> SMTPUTF8=yes", "501 5.5.4 Bad parameter value: SMTPUTF8" },
		{ "FROM:<a@b.test> RET=ALL", "501 5.5.4 Bad parameter value: RET" },
		{ "FROM:<a@b.test> ENVID=a+zz", "501 5.5.4 Bad parameter value: ENVID" },
		{ "FROM:<a@b.test> ENVID=a+4", "501 5.5.4 Bad parameter value: ENVID" },
		{ "FROM:<a@b.test>SIZE=1", "501 5.5.4 Syntax error in parameters" },
		{ "FROM:<a@b.test> =1", "501 5.5.4 Syntax error in parameters" },
		{ "FROM:<j\xc3\xb6rg@b.test>", "553 5.6.7 Must declare SMTPUTF8 to send a UTF-8 address" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		reply[0] = '\0';
		if (smtpd_parse_mail(cases[i].args, &m, reply, sizeof(reply)) == 0)
			fail_msg("accepted: %s", cases[i].args);
		assert_string_equal(reply, cases[i].reply);
	}
	/* ENVID is at most 100 characters. */
	char args[300] = "FROM:<a@b.test> ENVID=";
	for (int i = 0; i < 101; i++)
		strcat(args, "x");
	assert_int_equal(smtpd_parse_mail(args, &m, reply, sizeof(reply)), -1);
	args[strlen(args) - 1] = '\0';
	assert_int_equal(smtpd_parse_mail(args, &m, reply, sizeof(reply)), 0);
}

static void
test_mail_utf8(void **state)
{
	struct smtpd_mail m;
	char reply[256];
	assert_int_equal(smtpd_parse_mail("FROM:<j\xc3\xb6rg@b\xc3\xbc" "cher.test> SMTPUTF8", &m, reply, sizeof(reply)),
			 0);
	assert_true(m.smtputf8);
	assert_true(m.addr.utf8);
	assert_int_equal(smtpd_parse_mail("FROM:<a@b.test> smtputf8 BODY=8BITMIME", &m, reply, sizeof(reply)), 0);
	assert_true(m.smtputf8);
}

static void
test_rcpt(void **state)
{
	struct smtpd_rcpt r;
	char reply[256];

	assert_int_equal(smtpd_parse_rcpt("TO:<Bob@Example.TEST>", false, &r, reply, sizeof(reply)), 0);
	assert_string_equal(r.addr.local, "Bob");
	assert_string_equal(r.addr.domain, "example.test");
	assert_int_equal(r.notify, 0);

	assert_int_equal(smtpd_parse_rcpt("to:<b@x.test> NOTIFY=SUCCESS,delay ORCPT=rfc822;b+40x.test", false, &r,
					  reply, sizeof(reply)), 0);
	assert_int_equal(r.notify, MC_NOTIFY_SUCCESS | MC_NOTIFY_DELAY);
	assert_string_equal(r.orcpt, "rfc822;b+40x.test");

	assert_int_equal(smtpd_parse_rcpt("TO:<b@x.test> NOTIFY=NEVER", false, &r, reply, sizeof(reply)), 0);
	assert_int_equal(r.notify, MC_NOTIFY_NEVER);

	assert_int_equal(smtpd_parse_rcpt("TO:<PostMaster>", false, &r, reply, sizeof(reply)), 0);
	assert_true(r.postmaster);

	static const struct {
		const char *args;
		const char *reply;
	} bad[] = {
		{ "FROM:<b@x.test>", "501 5.5.4 Syntax: RCPT TO:<address>" },
		{ "TO:<>", "501 5.1.3 Bad recipient address syntax" },
		{ "TO:<b@x.test", "501 5.1.3 Bad recipient address syntax" },
		{ "TO:<b\xc3\xb6@x.test>", "553 5.6.7 Must declare SMTPUTF8 to send a UTF-8 address" },
		{ "TO:<b@x.test> NOTIFY=NEVER,SUCCESS", "501 5.5.4 Bad parameter value: NOTIFY" },
		{ "TO:<b@x.test> NOTIFY=SOMETIMES", "501 5.5.4 Bad parameter value: NOTIFY" },
		{ "TO:<b@x.test> NOTIFY=SUCCESS,", "501 5.5.4 Bad parameter value: NOTIFY" },
		{ "TO:<b@x.test> ORCPT=b@x.test", "501 5.5.4 Bad parameter value: ORCPT" },
		{ "TO:<b@x.test> ORCPT=rfc822;", "501 5.5.4 Bad parameter value: ORCPT" },
		{ "TO:<b@x.test> ORCPT=rfc822;a+2", "501 5.5.4 Bad parameter value: ORCPT" },
		{ "TO:<b@x.test> SIZE=10", "555 5.5.4 Unsupported option: SIZE" },
		{ "TO:<b@x.test> NOTIFY=NEVER NOTIFY=NEVER", "501 5.5.4 Duplicate parameter: NOTIFY" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		reply[0] = '\0';
		if (smtpd_parse_rcpt(bad[i].args, false, &r, reply, sizeof(reply)) == 0)
			fail_msg("accepted: %s", bad[i].args);
		assert_string_equal(reply, bad[i].reply);
	}
	/* With SMTPUTF8 on the transaction, a UTF-8 recipient is fine. */
	assert_int_equal(smtpd_parse_rcpt("TO:<b\xc3\xb6@x.test>", true, &r, reply, sizeof(reply)), 0);
}

static void
test_xtext(void **state)
{
	assert_true(smtpd_xtext_ok("abc+2B+3D", 9, false));
	assert_true(smtpd_xtext_ok("", 0, false));
	assert_false(smtpd_xtext_ok("a=b", 3, false));
	assert_false(smtpd_xtext_ok("a+2b", 4, false));
	assert_false(smtpd_xtext_ok("a+", 2, false));
	assert_false(smtpd_xtext_ok("a b", 3, false));
	assert_false(smtpd_xtext_ok("\xc3\xb6", 2, false));
	assert_true(smtpd_xtext_ok("\xc3\xb6", 2, true));
}

static void
test_bdat(void **state)
{
	uint64_t n;
	bool last;

	assert_int_equal(smtpd_parse_bdat("1000", &n, &last), 0);
	assert_int_equal(n, 1000);
	assert_false(last);
	assert_int_equal(smtpd_parse_bdat("0 last", &n, &last), 0);
	assert_int_equal(n, 0);
	assert_true(last);
	assert_int_equal(smtpd_parse_bdat("", &n, &last), -1);
	assert_int_equal(smtpd_parse_bdat("-1", &n, &last), -1);
	assert_int_equal(smtpd_parse_bdat("10 FIRST", &n, &last), -1);
	assert_int_equal(smtpd_parse_bdat("10x", &n, &last), -1);
	assert_int_equal(smtpd_parse_bdat("99999999999999999999999", &n, &last), -1);
	assert_int_equal(smtpd_parse_bdat("18446744073709551615", &n, &last), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verbs), cmocka_unit_test(test_mail), cmocka_unit_test(test_mail_errors),
		cmocka_unit_test(test_mail_utf8), cmocka_unit_test(test_rcpt), cmocka_unit_test(test_xtext),
		cmocka_unit_test(test_bdat),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
