/*
 * test_smtpc.c - the pieces of queued's SMTP client that need no network:
 * MAIL FROM and RCPT TO with the parameters a server offers (SIZE=,
 * BODY=8BITMIME, SMTPUTF8, RET, ENVID, NOTIFY, ORCPT) and none it does not,
 * and when a message needs SMTPUTF8.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "queued/queued.h"

static void
test_mail_cmd(void **state)
{
	(void)state;
	struct mc_envelope e;
	mc_envelope_init(&e);
	snprintf(e.sender, sizeof(e.sender), "alice@example.test");
	snprintf(e.envid, sizeof(e.envid), "QQ+2Bid");
	e.size = 1234;
	e.flags = MC_ENV_8BITMIME | MC_ENV_RET_HDRS | MC_ENV_SMTPUTF8;
	struct mc_smtp_ehlo none, all;
	memset(&none, 0, sizeof(none));
	memset(&all, 0, sizeof(all));
	all.size = all.eightbitmime = all.smtputf8 = all.dsn = true;
	char out[512];
	assert_int_equal(q_smtpc_mail_cmd(out, sizeof(out), &e, &none), 0);
	assert_string_equal(out, "MAIL FROM:<alice@example.test>");
	assert_int_equal(q_smtpc_mail_cmd(out, sizeof(out), &e, &all), 0);
	assert_string_equal(out, "MAIL FROM:<alice@example.test> SIZE=1234 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ+2Bid");
	/* the null sender, and a buffer too small */
	e.sender[0] = '\0';
	e.flags = 0;
	assert_int_equal(q_smtpc_mail_cmd(out, sizeof(out), &e, &none), 0);
	assert_string_equal(out, "MAIL FROM:<>");
	assert_int_equal(q_smtpc_mail_cmd(out, 10, &e, &all), -1);
	mc_envelope_free(&e);
}

static void
test_rcpt_cmd(void **state)
{
	(void)state;
	struct mc_rcpt r;
	memset(&r, 0, sizeof(r));
	snprintf(r.addr, sizeof(r.addr), "bob@relay.test");
	snprintf(r.orcpt, sizeof(r.orcpt), "rfc822;bob@relay.test");
	r.notify = MC_NOTIFY_SUCCESS | MC_NOTIFY_DELAY;
	struct mc_smtp_ehlo none, dsn;
	memset(&none, 0, sizeof(none));
	memset(&dsn, 0, sizeof(dsn));
	dsn.dsn = true;
	char out[512];
	assert_int_equal(q_smtpc_rcpt_cmd(out, sizeof(out), "bob@relay.test", &r, &none), 0);
	assert_string_equal(out, "RCPT TO:<bob@relay.test>");
	assert_int_equal(q_smtpc_rcpt_cmd(out, sizeof(out), "bob@relay.test", &r, &dsn), 0);
	assert_string_equal(out, "RCPT TO:<bob@relay.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;bob@relay.test");
	r.notify = MC_NOTIFY_NEVER;
	r.orcpt[0] = '\0';
	assert_int_equal(q_smtpc_rcpt_cmd(out, sizeof(out), "x@relay.test", &r, &dsn), 0);
	assert_string_equal(out, "RCPT TO:<x@relay.test> NOTIFY=NEVER");
}

static void
test_needs_utf8(void **state)
{
	(void)state;
	struct mc_envelope e;
	mc_envelope_init(&e);
	snprintf(e.sender, sizeof(e.sender), "alice@example.test");
	assert_int_equal(mc_envelope_add_rcpt(&e, "bob@relay.test", "", 0, 10), 0);
	assert_false(q_smtpc_needs_utf8(&e));
	e.flags = MC_ENV_SMTPUTF8;
	assert_false(q_smtpc_needs_utf8(&e));   /* declared, but every address is ASCII */
	assert_int_equal(mc_envelope_add_rcpt(&e, "d\xc3\xa9j\xc3\xa0@relay.test", "", 0, 10), 0);
	assert_true(q_smtpc_needs_utf8(&e));
	e.flags = 0;
	assert_false(q_smtpc_needs_utf8(&e));   /* not declared: sent as it is */
	mc_envelope_free(&e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mail_cmd),
		cmocka_unit_test(test_rcpt_cmd),
		cmocka_unit_test(test_needs_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
