/*
 * test_smtp_reply.c - the SMTP reply parser: single and multi-line
 * replies fed whole and byte by byte, pipelined replies taken one at a
 * time, bare LF, overlong lines cut, garbage and mixed codes refused,
 * control characters cleaned, enhanced status codes, the one-line form
 * for logs, and the EHLO keywords.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/smtp_reply.h"

static struct mc_smtp_reply rep;

/* Feed s whole; returns the parser's result and sets *used. */
static int
feed(const char *s, size_t *used)
{
	mc_smtp_reply_init(&rep);
	return mc_smtp_reply_feed(&rep, s, strlen(s), used);
}

static void
test_single(void **state)
{
	(void)state;
	size_t used;
	assert_int_equal(feed("250 2.0.0 Ok: queued as ABC\r\n", &used), 1);
	assert_int_equal(used, 29);
	assert_int_equal(rep.code, 250);
	assert_string_equal(rep.esc, "2.0.0");
	assert_string_equal(mc_smtp_reply_line(&rep, 0), "2.0.0 Ok: queued as ABC");
	char out[256];
	mc_smtp_reply_format(&rep, out, sizeof(out));
	assert_string_equal(out, "250 2.0.0 Ok: queued as ABC");
	/* a bare code is a whole reply */
	assert_int_equal(feed("354\r\n", &used), 1);
	assert_int_equal(rep.code, 354);
	mc_smtp_reply_format(&rep, out, sizeof(out));
	assert_string_equal(out, "354");
}

static void
test_multiline_bytewise(void **state)
{
	(void)state;
	const char *s = "550-5.1.1 No such user\r\n550-5.1.1 here at all\r\n550 5.1.1 Bye\r\n";
	mc_smtp_reply_init(&rep);
	size_t total = 0;
	int rc = 0;
	for (size_t i = 0; i < strlen(s); i++) {
		size_t used;
		rc = mc_smtp_reply_feed(&rep, s + i, 1, &used);
		total += used;
		if (rc != 0)
			break;
	}
	assert_int_equal(rc, 1);
	assert_int_equal(total, strlen(s));
	assert_int_equal(rep.nlines, 3);
	assert_string_equal(rep.esc, "5.1.1");
	char out[256];
	mc_smtp_reply_format(&rep, out, sizeof(out));
	assert_string_equal(out, "550 5.1.1 No such user here at all Bye");
}

static void
test_pipelined(void **state)
{
	(void)state;
	const char *s = "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n";
	size_t used, off = 0;
	int codes[3];
	for (int k = 0; k < 3; k++) {
		mc_smtp_reply_init(&rep);
		assert_int_equal(mc_smtp_reply_feed(&rep, s + off, strlen(s) - off, &used), 1);
		off += used;
		codes[k] = rep.code;
	}
	assert_int_equal(off, strlen(s));
	assert_int_equal(codes[0], 250);
	assert_int_equal(codes[2], 354);
	/* half a reply: more is needed, and all of it is taken */
	assert_int_equal(feed("250-first\r\n250 sec", &used), 0);
	assert_int_equal(used, strlen("250-first\r\n250 sec"));
	assert_int_equal(mc_smtp_reply_feed(&rep, "ond\r\n", 5, &used), 1);
	assert_string_equal(mc_smtp_reply_line(&rep, 1), "second");
}

static void
test_bare_lf(void **state)
{
	(void)state;
	size_t used;
	assert_int_equal(feed("451-4.3.0 a\n451 4.3.0 b\nNEXT", &used), 1);
	assert_int_equal(used, strlen("451-4.3.0 a\n451 4.3.0 b\n"));
	assert_int_equal(rep.code, 451);
	assert_string_equal(mc_smtp_reply_line(&rep, 1), "4.3.0 b");
}

static void
test_overlong(void **state)
{
	(void)state;
	char big[3000];
	memset(big, 'x', sizeof(big));
	memcpy(big, "250 ", 4);
	memcpy(big + sizeof(big) - 2, "\r\n", 2);
	mc_smtp_reply_init(&rep);
	size_t used;
	assert_int_equal(mc_smtp_reply_feed(&rep, big, sizeof(big), &used), 1);
	assert_int_equal(used, sizeof(big));
	assert_true(strlen(mc_smtp_reply_line(&rep, 0)) < MC_SMTP_REPLY_LINE_MAX);
	/* too many lines */
	char *many = malloc(200 * 10 + 16);
	size_t o = 0;
	for (int i = 0; i < 200; i++)
		o += (size_t)sprintf(many + o, "250-x%03d\r\n", i);
	sprintf(many + o, "250 end\r\n");
	assert_int_equal(feed(many, &used), -1);
	assert_string_equal(rep.err, "reply with too many lines");
	free(many);
}

static void
test_garbage(void **state)
{
	(void)state;
	size_t used;
	assert_int_equal(feed("hello there\r\n", &used), -1);
	assert_int_equal(feed("25\r\n", &used), -1);
	assert_int_equal(feed("250x\r\n", &used), -1);
	assert_int_equal(feed("650 nope\r\n", &used), -1);
	assert_int_equal(feed("250-a\r\n550 b\r\n", &used), -1);
	assert_string_equal(rep.err, "reply lines with different codes");
	/* a malformed parser stays malformed */
	assert_int_equal(mc_smtp_reply_feed(&rep, "250 ok\r\n", 8, &used), -1);
}

static void
test_cleaning_and_esc(void **state)
{
	(void)state;
	size_t used;
	assert_int_equal(feed("550 5.7.1 bad\x01\x1b[31m\xc3\xa9 text\r\n", &used), 1);
	assert_string_equal(mc_smtp_reply_line(&rep, 0), "5.7.1 bad??[31m?? text");
	/* the enhanced code must match the reply's class */
	assert_int_equal(feed("550 4.1.1 odd\r\n", &used), 1);
	assert_string_equal(rep.esc, "");
	assert_int_equal(feed("250 2.0.0\r\n", &used), 1);
	assert_string_equal(rep.esc, "2.0.0");
	assert_int_equal(feed("250 2.0.0000 x\r\n", &used), 1);
	assert_string_equal(rep.esc, "");
	assert_int_equal(mc_smtp_esc_len("5.1.10 null MX", '5'), 6);
	assert_int_equal(mc_smtp_esc_len("5.1", '5'), 0);
	/* a small output buffer still ends in NUL */
	assert_int_equal(feed("250 2.0.0 a long enough text\r\n", &used), 1);
	char out[8];
	mc_smtp_reply_format(&rep, out, sizeof(out));
	assert_string_equal(out, "250 2.0");
}

static void
test_ehlo(void **state)
{
	(void)state;
	size_t used;
	struct mc_smtp_ehlo e;
	assert_int_equal(feed("250-mx.example.test hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n"
			      "250-STARTTLS\r\n250-AUTH=LOGIN\r\n250-AUTH PLAIN\r\n250-DSN\r\n250-SMTPUTF8\r\n"
			      "250 CHUNKING\r\n",
			      &used),
			 1);
	mc_smtp_ehlo_parse(&rep, &e);
	assert_true(e.pipelining && e.starttls && e.eightbitmime && e.smtputf8 && e.dsn && e.chunking);
	assert_true(e.auth_plain && e.auth_login && e.size);
	assert_int_equal(e.size_max, 1000);
	assert_int_equal(feed("250-mx\r\n250-SIZE\r\n250 PIPELININGX\r\n", &used), 1);
	mc_smtp_ehlo_parse(&rep, &e);
	assert_true(e.size && e.size_max == 0);
	assert_false(e.pipelining || e.starttls || e.auth_plain);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single),
		cmocka_unit_test(test_multiline_bytewise),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_bare_lf),
		cmocka_unit_test(test_overlong),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_cleaning_and_esc),
		cmocka_unit_test(test_ehlo),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
