/*
 * test_envelope.c - the Q_SUBMIT_COMMIT payload: an envelope with many
 * recipients comes back as it went, the recipient limit holds on both
 * sides, and overlong fields are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail/envelope.h"

/* Encode then decode, as queued would read it off the wire. */
static void
transfer(const struct mc_msg *m, struct mc_msg *out)
{
	struct mc_buf b;
	size_t used;
	mc_buf_init(&b, 0);
	assert_int_equal(mc_msg_encode(m, &b), 0);
	assert_int_equal(mc_msg_decode((const uint8_t *)b.data, b.len, MC_MSG_MAX_PAYLOAD, out, &used), 1);
	mc_buf_free(&b);
}

static void
fill(struct mc_envelope *e, unsigned n)
{
	mc_envelope_init(e);
	snprintf(e->qid, sizeof(e->qid), "0123456789ABCDEF");
	snprintf(e->sender, sizeof(e->sender), "sender@example.org");
	snprintf(e->envid, sizeof(e->envid), "QQ314159");
	snprintf(e->auth_user, sizeof(e->auth_user), "alice@example.org");
	snprintf(e->client, sizeof(e->client), "mail.example.net [192.0.2.1]");
	e->flags = MC_ENV_8BITMIME | MC_ENV_RET_HDRS;
	e->size = 123456789012ull;
	e->arrival = 1700000000;
	for (unsigned i = 0; i < n; i++) {
		char a[64], o[80];
		snprintf(a, sizeof(a), "user%u@example.com", i);
		snprintf(o, sizeof(o), "rfc822;user%u@example.com", i);
		assert_int_equal(mc_envelope_add_rcpt(e, a, i % 2 ? o : NULL, i % 3, 1000), 0);
	}
}

static void
test_roundtrip_many(void **state)
{
	(void)state;
	struct mc_envelope e, g;
	struct mc_msg m, r;
	fill(&e, 1000);
	assert_int_equal(e.nrcpt, 1000);
	mc_msg_init(&m, 6);
	mc_envelope_put(&m, &e);
	assert_false(m.err);
	transfer(&m, &r);
	assert_int_equal(mc_envelope_get(&r, &g, 1000), 0);
	assert_string_equal(g.qid, e.qid);
	assert_string_equal(g.sender, e.sender);
	assert_string_equal(g.envid, e.envid);
	assert_string_equal(g.auth_user, e.auth_user);
	assert_string_equal(g.client, e.client);
	assert_int_equal(g.flags, e.flags);
	assert_true(g.size == e.size);
	assert_true(g.arrival == e.arrival);
	assert_int_equal(g.nrcpt, 1000);
	for (unsigned i = 0; i < 1000; i++) {
		assert_string_equal(g.rcpt[i].addr, e.rcpt[i].addr);
		assert_string_equal(g.rcpt[i].orcpt, e.rcpt[i].orcpt);
		assert_int_equal(g.rcpt[i].notify, e.rcpt[i].notify);
	}
	/* the decoded envelope can grow like one built locally */
	assert_int_equal(mc_envelope_add_rcpt(&g, "late@example.com", "", 0, 2000), 0);
	assert_string_equal(g.rcpt[1000].addr, "late@example.com");
	assert_string_equal(g.rcpt[999].addr, "user999@example.com");
	mc_envelope_free(&g);
	mc_envelope_free(&g);
	mc_envelope_free(&e);
	mc_msg_free(&r);
	mc_msg_free(&m);
}

static void
test_null_sender_no_rcpt(void **state)
{
	(void)state;
	struct mc_envelope e, g;
	struct mc_msg m, r;
	mc_envelope_init(&e);
	mc_msg_init(&m, 6);
	mc_envelope_put(&m, &e);
	transfer(&m, &r);
	assert_int_equal(mc_envelope_get(&r, &g, 10), 0);
	assert_string_equal(g.sender, "");
	assert_int_equal(g.nrcpt, 0);
	mc_envelope_free(&g);
	mc_msg_free(&r);
	mc_msg_free(&m);
}

static void
test_max_rcpt(void **state)
{
	(void)state;
	struct mc_envelope e, g;
	struct mc_msg m, r;
	mc_envelope_init(&e);
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(mc_envelope_add_rcpt(&e, "a@b.example", "", 0, 5), 0);
	assert_int_equal(mc_envelope_add_rcpt(&e, "a@b.example", "", 0, 5), -1);
	assert_int_equal(e.nrcpt, 5);
	mc_msg_init(&m, 6);
	mc_envelope_put(&m, &e);
	transfer(&m, &r);
	assert_int_equal(mc_envelope_get(&r, &g, 4), -1);
	assert_null(g.rcpt);
	assert_int_equal(g.nrcpt, 0);
	mc_msg_free(&r);
	transfer(&m, &r);
	assert_int_equal(mc_envelope_get(&r, &g, 5), 0);
	assert_int_equal(g.nrcpt, 5);
	mc_envelope_free(&g);
	mc_msg_free(&r);
	mc_msg_free(&m);
	mc_envelope_free(&e);
}

static void
test_overlong_refused(void **state)
{
	(void)state;
	struct mc_envelope e, g;
	struct mc_msg m, r;
	char longaddr[MC_ADDR_MAX + 1];
	memset(longaddr, 'a', sizeof(longaddr));
	longaddr[MC_ADDR_MAX] = '\0';
	mc_envelope_init(&e);
	/* MC_ADDR_MAX bytes do not fit with the NUL; one less does */
	assert_int_equal(mc_envelope_add_rcpt(&e, longaddr, "", 0, 10), -1);
	longaddr[MC_ADDR_MAX - 1] = '\0';
	assert_int_equal(mc_envelope_add_rcpt(&e, longaddr, "", 0, 10), 0);
	mc_envelope_free(&e);

	/* a peer sending an overlong recipient: the whole envelope is refused */
	mc_msg_init(&m, 6);
	mc_msg_put_str(&m, "QID");
	mc_msg_put_str(&m, "s@example.org");
	mc_msg_put_str(&m, "");
	mc_msg_put_str(&m, "");
	mc_msg_put_str(&m, "client");
	mc_msg_put_u32(&m, 0);
	mc_msg_put_u64(&m, 10);
	mc_msg_put_u64(&m, 0);
	mc_msg_put_u32(&m, 2);
	mc_msg_put_str(&m, "ok@example.org");
	mc_msg_put_str(&m, "");
	mc_msg_put_u32(&m, 0);
	longaddr[MC_ADDR_MAX - 1] = 'a';
	mc_msg_put_str(&m, longaddr);
	mc_msg_put_str(&m, "");
	mc_msg_put_u32(&m, 0);
	transfer(&m, &r);
	assert_int_equal(mc_envelope_get(&r, &g, 10), -1);
	assert_null(g.rcpt);
	mc_msg_free(&r);
	mc_msg_free(&m);

	/* an overlong sender, and a trailing field after the last recipient */
	mc_msg_init(&m, 6);
	mc_msg_put_str(&m, "QID");
	mc_msg_put_str(&m, longaddr);
	transfer(&m, &r);
	assert_int_equal(mc_envelope_get(&r, &g, 10), -1);
	mc_msg_free(&r);
	mc_msg_free(&m);

	fill(&e, 1);
	mc_msg_init(&m, 6);
	mc_envelope_put(&m, &e);
	mc_msg_put_u32(&m, 99);
	transfer(&m, &r);
	assert_int_equal(mc_envelope_get(&r, &g, 10), -1);
	mc_msg_free(&r);
	mc_msg_free(&m);
	mc_envelope_free(&e);

	/* a recipient count the frame cannot hold is refused before allocating */
	mc_msg_init(&m, 6);
	for (int i = 0; i < 5; i++)
		mc_msg_put_str(&m, "");
	mc_msg_put_u32(&m, 0);
	mc_msg_put_u64(&m, 0);
	mc_msg_put_u64(&m, 0);
	mc_msg_put_u32(&m, 1000);
	transfer(&m, &r);
	assert_int_equal(mc_envelope_get(&r, &g, 100000), -1);
	assert_null(g.rcpt);
	mc_msg_free(&r);
	mc_msg_free(&m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_many),
		cmocka_unit_test(test_null_sender_no_rcpt),
		cmocka_unit_test(test_max_rcpt),
		cmocka_unit_test(test_overlong_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
