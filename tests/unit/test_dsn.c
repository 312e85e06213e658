/*
 * test_dsn.c - delivery status notifications: the report's structure
 * (multipart/report with its three parts), the per-recipient fields, ENVID
 * and ORCPT decoded from xtext, RET=FULL within and past its bound, the
 * header block cut at its bound, line ends made CRLF, texts from outside
 * cleaned of control characters, a writer that fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mail/dsn.h"
#include "util/buf.h"

static int
to_buf(void *arg, const void *p, size_t n)
{
	return mc_buf_add(arg, p, n);
}

static int
fail_writer(void *arg, const void *p, size_t n)
{
	(void)arg;
	(void)p;
	(void)n;
	return -1;
}

/* A file holding s, for the original message. */
static int
original(const char *s)
{
	FILE *f = tmpfile();
	assert_non_null(f);
	int fd = dup(fileno(f));
	fclose(f);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	return fd;
}

static const char msg1[] = "Received: from client.test\r\n"
			   "From: Sender <sender@client.test>\r\n"
			   "To: bob@example.test\r\n"
			   "Subject: hello\r\n"
			   "Message-ID: <m1@client.test>\r\n"
			   "\r\n"
			   "The body line that must not be returned.\r\n";

static struct mc_dsn
base(const struct mc_dsn_rcpt *r, size_t n)
{
	struct mc_dsn d = {
		.reporting_mta = "mx.example.test",
		.sender = "sender@client.test",
		.envid = "QQ+2B314",
		.qid = "0123456789ABCDEF",
		.report_id = "0123456789ABCDF0",
		.arrival = 1700000000,
		.now = 1700000100,
		.max_full = 100000,
		.max_headers = 100000,
		.rcpt = r,
		.nrcpt = n,
	};
	return d;
}

static char *
report(const struct mc_dsn *d, const char *orig, struct mc_buf *b)
{
	mc_buf_init(b, 1 << 20);
	int fd = orig ? original(orig) : -1;
	assert_int_equal(mc_dsn_write(d, fd, orig ? strlen(orig) : 0, to_buf, b), 0);
	if (fd >= 0)
		close(fd);
	/* every line ends in CRLF, and no CR stands alone */
	for (size_t i = 0; i < b->len; i++) {
		if (b->data[i] == '\n')
			assert_true(i > 0 && b->data[i - 1] == '\r');
		if (b->data[i] == '\r')
			assert_true(i + 1 < b->len && b->data[i + 1] == '\n');
	}
	return b->data;
}

static void
test_failed_report(void **state)
{
	(void)state;
	struct mc_dsn_rcpt r[2] = {
		{ .final = "bob@example.test", .orcpt = "rfc822;bob+2Bx@example.test", .action = MC_DSN_FAILED,
		  .status = "5.1.1", .reason = "user unknown" },
		{ .final = "carol@remote.test", .action = MC_DSN_FAILED, .status = "5.7.1",
		  .reason = "host mx.remote.test[192.0.2.7] said: 550 5.7.1 go away", .remote_mta = "mx.remote.test",
		  .diag_type = "smtp", .diag = "550 5.7.1 go away", .last_attempt = 1700000090 },
	};
	struct mc_dsn d = base(r, 2);
	struct mc_buf b;
	const char *s = report(&d, msg1, &b);
	assert_non_null(strstr(s, "Subject: Undelivered Mail Returned to Sender\r\n"));
	assert_non_null(strstr(s, "From: MAILER-DAEMON@mx.example.test"));
	assert_non_null(strstr(s, "To: <sender@client.test>\r\n"));
	assert_non_null(strstr(s, "Auto-Submitted: auto-replied\r\n"));
	assert_non_null(strstr(s, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
				  "\tboundary=\"0123456789ABCDF0/mx.example.test\"\r\n"));
	assert_non_null(strstr(s, "--0123456789ABCDF0/mx.example.test\r\nContent-Description: Notification"));
	assert_non_null(strstr(s, "<bob@example.test>: user unknown\r\n"));
	assert_non_null(strstr(s, "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.test\r\n"));
	assert_non_null(strstr(s, "Original-Envelope-Id: QQ+314\r\n"));
	assert_non_null(strstr(s, "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
	assert_non_null(strstr(s, "\r\n\r\nFinal-Recipient: rfc822; bob@example.test\r\n"
				  "Original-Recipient: rfc822;bob+x@example.test\r\n"
				  "Action: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: X-Postern; user unknown\r\n"));
	assert_non_null(strstr(s, "Final-Recipient: rfc822; carol@remote.test\r\nAction: failed\r\nStatus: 5.7.1\r\n"
				  "Remote-MTA: dns; mx.remote.test\r\nDiagnostic-Code: smtp; 550 5.7.1 go away\r\n"
				  "Last-Attempt-Date: Tue, 14 Nov 2023 22:14:50 +0000\r\n"));
	assert_non_null(strstr(s, "Content-Type: text/rfc822-headers\r\n\r\nReceived: from client.test\r\n"));
	assert_non_null(strstr(s, "Message-ID: <m1@client.test>\r\n\r\n--0123456789ABCDF0/mx.example.test--\r\n"));
	assert_null(strstr(s, "must not be returned"));
	mc_buf_free(&b);
}

static void
test_ret_full(void **state)
{
	(void)state;
	struct mc_dsn_rcpt r = { .final = "bob@example.test", .action = MC_DSN_FAILED };
	struct mc_dsn d = base(&r, 1);
	d.ret_full = true;
	struct mc_buf b;
	const char *s = report(&d, msg1, &b);
	assert_non_null(strstr(s, "Content-Type: message/rfc822\r\n"));
	assert_non_null(strstr(s, "must not be returned.\r\n\r\n--0123456789ABCDF0/mx.example.test--"));
	assert_non_null(strstr(s, "Status: 5.0.0\r\n"));
	mc_buf_free(&b);

	/* past the bound: the headers only */
	d.max_full = 50;
	s = report(&d, msg1, &b);
	assert_null(strstr(s, "message/rfc822"));
	assert_non_null(strstr(s, "text/rfc822-headers"));
	assert_null(strstr(s, "must not be returned"));
	mc_buf_free(&b);
}

static void
test_header_bound_and_line_ends(void **state)
{
	(void)state;
	struct mc_dsn_rcpt r = { .final = "bob@example.test", .action = MC_DSN_FAILED };
	struct mc_dsn d = base(&r, 1);
	d.max_headers = 40;
	struct mc_buf b;
	/* bare LF line ends, and a header block bigger than the bound */
	const char *s = report(&d, "A: 1\nB: 22222\r22222\nC: 3333333333333333333333\n\nbody\n", &b);
	assert_non_null(strstr(s, "text/rfc822-headers\r\n\r\nA: 1\r\nB: 22222 22222\r\n\r\n--"));
	assert_null(strstr(s, "C: 333"));
	mc_buf_free(&b);

	/* no original at all: two parts */
	s = report(&d, NULL, &b);
	assert_null(strstr(s, "rfc822-headers"));
	assert_non_null(strstr(s, "Action: failed"));
	mc_buf_free(&b);

	/* a huge original: the report stays small */
	size_t big = 4 << 20;
	char *m = malloc(big + 1);
	assert_non_null(m);
	memset(m, 'x', big);
	memcpy(m, "X-Long: ", 8);
	m[big - 1] = '\n';
	m[big] = '\0';
	d.max_headers = 100000;
	s = report(&d, m, &b);
	assert_true(b.len < 8000);
	free(m);
	mc_buf_free(&b);
}

static void
test_injection_cleaned(void **state)
{
	(void)state;
	struct mc_dsn_rcpt r = { .final = "bob@example.test\r\nBcc: x@evil.test", .action = MC_DSN_FAILED,
				 .reason = "bad\r\nX-Injected: yes", .status = "5.1.1x" };
	struct mc_dsn d = base(&r, 1);
	d.sender = "s@client.test\r\nX-Evil: 1";
	d.envid = "A+0D+0AX-Evil:+201";
	struct mc_buf b;
	const char *s = report(&d, msg1, &b);
	assert_null(strstr(s, "\r\nBcc:"));
	assert_null(strstr(s, "\r\nX-Injected"));
	assert_null(strstr(s, "\r\nX-Evil"));
	/* a malformed status falls back to the action's own */
	assert_non_null(strstr(s, "Status: 5.0.0\r\n"));
	mc_buf_free(&b);
}

static void
test_delayed_and_delivered(void **state)
{
	(void)state;
	struct mc_dsn_rcpt r[2] = {
		{ .final = "slow@remote.test", .action = MC_DSN_DELAYED, .status = "4.4.1",
		  .reason = "connection timed out", .retry_until = 1700432000, .last_attempt = 1700000050 },
		{ .final = "bob@example.test", .action = MC_DSN_DELIVERED, .reason = "delivered to mailbox" },
	};
	struct mc_dsn d = base(r, 2);
	d.envid = NULL;
	struct mc_buf b;
	const char *s = report(&d, msg1, &b);
	assert_non_null(strstr(s, "Subject: Delayed Mail (still being retried)\r\n"));
	assert_non_null(strstr(s, "THIS IS A WARNING ONLY"));
	assert_non_null(strstr(s, "Action: delayed\r\nStatus: 4.4.1\r\n"));
	assert_non_null(strstr(s, "Will-Retry-Until: "));
	assert_non_null(strstr(s, "Action: delivered\r\nStatus: 2.0.0\r\n\r\n--"));
	assert_null(strstr(s, "Original-Envelope-Id"));
	mc_buf_free(&b);

	r[0].action = MC_DSN_DELIVERED;
	d.nrcpt = 1;
	assert_string_equal(mc_dsn_subject(&d), "Successful Mail Delivery Report");
}

static void
test_helpers_and_failures(void **state)
{
	(void)state;
	char st[12];
	assert_true(mc_dsn_status_of("5.1.1 user unknown", st, sizeof(st)));
	assert_string_equal(st, "5.1.1");
	assert_true(mc_dsn_status_of("4.4.7", st, sizeof(st)));
	assert_true(mc_dsn_status_of("2.123.456 ok", st, sizeof(st)));
	assert_false(mc_dsn_status_of("3.1.1 no", st, sizeof(st)));
	assert_false(mc_dsn_status_of("5.1 no", st, sizeof(st)));
	assert_false(mc_dsn_status_of("5.1.1234 no", st, sizeof(st)));
	assert_false(mc_dsn_status_of("5.1.1x", st, sizeof(st)));
	assert_false(mc_dsn_status_of("user unknown", st, sizeof(st)));
	assert_false(mc_dsn_status_of(NULL, st, sizeof(st)));

	char x[16];
	assert_string_equal(mc_dsn_xtext_decode(x, sizeof(x), "a+2Bb+3Dc"), "a+b=c");
	assert_string_equal(mc_dsn_xtext_decode(x, sizeof(x), "a+zz+4"), "a+zz+4");
	assert_string_equal(mc_dsn_xtext_decode(x, 4, "abcdef"), "abc");

	struct mc_dsn_rcpt r = { .final = "bob@example.test", .action = MC_DSN_FAILED };
	struct mc_dsn d = base(&r, 1);
	int fd = original(msg1);
	assert_int_equal(mc_dsn_write(&d, fd, strlen(msg1), fail_writer, NULL), -1);
	d.nrcpt = 0;
	struct mc_buf b;
	mc_buf_init(&b, 0);
	assert_int_equal(mc_dsn_write(&d, fd, strlen(msg1), to_buf, &b), -1);
	/* an original shorter than its stated size is an error */
	d.nrcpt = 1;
	d.ret_full = true;
	assert_int_equal(mc_dsn_write(&d, fd, strlen(msg1) + 100, to_buf, &b), -1);
	mc_buf_free(&b);
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_failed_report),
		cmocka_unit_test(test_ret_full),
		cmocka_unit_test(test_header_bound_and_line_ends),
		cmocka_unit_test(test_injection_cleaned),
		cmocka_unit_test(test_delayed_and_delivered),
		cmocka_unit_test(test_helpers_and_failures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
