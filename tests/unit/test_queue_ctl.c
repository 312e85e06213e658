/*
 * test_queue_ctl.c - the Q_CTL_* payloads of mail/queue_ctl.c: every
 * request and reply comes back as it went, long strings are cut to what
 * the reader takes, and truncated, padded or lying frames are refused
 * without reading past the frame or allocating what a count claims.
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

#include "mail/queue_ctl.h"

/* Encode then decode, as the other side reads it off the wire. */
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

/* The first len payload bytes of m as a frame of their own. */
static void
truncated(const struct mc_msg *m, size_t len, struct mc_msg *out)
{
	mc_msg_init(out, m->type);
	if (len)
		assert_int_equal(mc_buf_add(&out->payload, m->payload.data, len), 0);
}

static void
sample_filter(struct mc_qctl_filter *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->from, sizeof(f->from), "bob@example.org");
	snprintf(f->to, sizeof(f->to), "spam.example");
	snprintf(f->state, sizeof(f->state), "deferred");
	f->older_than = 3600;
}

static void
sample_entry(struct mc_qctl_entry *e, struct mc_qctl_rcpt *r, uint32_t n)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->qid, sizeof(e->qid), "0123456789ABC000");
	snprintf(e->state, sizeof(e->state), "deferred");
	e->arrival = 1700000000;
	e->size = 4242;
	snprintf(e->sender, sizeof(e->sender), "bob@example.org");
	e->next_try = 1700003600;
	e->nrcpt = n + 2;
	e->n = n;
	e->rcpt = r;
	for (uint32_t i = 0; i < n; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		snprintf(r[i].addr, sizeof(r[i].addr), "user%u@spam.example", i);
		snprintf(r[i].state, sizeof(r[i].state), "deferred");
		r[i].attempts = i + 1;
		r[i].next_try = 1700003600 + i;
		snprintf(r[i].last_error, sizeof(r[i].last_error), "451 4.7.1 try later (%u)", i);
	}
}

static void
test_list_req_roundtrip(void **state)
{
	(void)state;
	struct mc_qctl_filter f, g;
	struct mc_msg m, r;
	char after[MC_QID_MAX];
	uint32_t max;
	sample_filter(&f);
	mc_msg_init(&m, 1);
	mc_qctl_put_list_req(&m, &f, "0123456789ABC000", 1000);
	transfer(&m, &r);
	assert_int_equal(mc_qctl_get_list_req(&r, &g, after, sizeof(after), &max), 0);
	assert_string_equal(g.from, "bob@example.org");
	assert_string_equal(g.to, "spam.example");
	assert_string_equal(g.state, "deferred");
	assert_int_equal(g.older_than, 3600);
	assert_false(g.all);
	assert_string_equal(after, "0123456789ABC000");
	assert_int_equal(max, 1000);
	assert_false(mc_qctl_filter_empty(&g));
	mc_msg_free(&m);
	mc_msg_free(&r);

	/* every shorter frame is refused */
	mc_msg_init(&m, 1);
	mc_qctl_put_list_req(&m, &f, "", 5);
	for (size_t len = 0; len < m.payload.len; len++) {
		truncated(&m, len, &r);
		assert_int_equal(mc_qctl_get_list_req(&r, &g, after, sizeof(after), &max), -1);
		mc_msg_free(&r);
	}
	/* and a longer one */
	mc_msg_put_u32(&m, 7);
	transfer(&m, &r);
	assert_int_equal(mc_qctl_get_list_req(&r, &g, after, sizeof(after), &max), -1);
	mc_msg_free(&m);
	mc_msg_free(&r);
}

static void
test_filter_state_checked(void **state)
{
	(void)state;
	struct mc_qctl_filter f, g;
	struct mc_msg m, r;
	uint32_t action;
	memset(&f, 0, sizeof(f));
	assert_true(mc_qctl_filter_empty(&f));
	snprintf(f.state, sizeof(f.state), "frozen");
	mc_msg_init(&m, 1);
	mc_qctl_put_act_req(&m, MC_QCTL_HOLD, &f);
	transfer(&m, &r);
	assert_int_equal(mc_qctl_get_act_req(&r, &action, &g), -1);
	mc_msg_free(&m);
	mc_msg_free(&r);

	/* an action number out of range */
	f.state[0] = '\0';
	f.all = true;
	mc_msg_init(&m, 1);
	mc_qctl_put_act_req(&m, MC_QCTL_ACTION_COUNT, &f);
	transfer(&m, &r);
	assert_int_equal(mc_qctl_get_act_req(&r, &action, &g), -1);
	mc_msg_free(&m);
	mc_msg_free(&r);

	mc_msg_init(&m, 1);
	mc_qctl_put_act_req(&m, MC_QCTL_DELETE, &f);
	transfer(&m, &r);
	assert_int_equal(mc_qctl_get_act_req(&r, &action, &g), 0);
	assert_int_equal(action, MC_QCTL_DELETE);
	assert_true(g.all);
	assert_string_equal(mc_qctl_action_name(action), "delete");
	mc_msg_free(&m);
	mc_msg_free(&r);
}

static void
test_entry_roundtrip_and_truncation(void **state)
{
	(void)state;
	struct mc_qctl_rcpt rs[3];
	struct mc_qctl_entry e, g;
	struct mc_msg m, r;
	sample_entry(&e, rs, 3);
	mc_msg_init(&m, 1);
	mc_msg_put_u32(&m, 1);
	mc_qctl_put_entry(&m, &e);
	mc_qctl_put_next(&m, "0123456789ABC000");
	size_t body = m.payload.len - 5 - (5 + 16);
	assert_true(mc_qctl_entry_size(&e) >= body);
	transfer(&m, &r);
	uint32_t n;
	char next[MC_QID_MAX];
	assert_int_equal(mc_msg_get_u32(&r, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(mc_qctl_get_entry(&r, &g), 0);
	assert_string_equal(g.qid, e.qid);
	assert_string_equal(g.state, "deferred");
	assert_int_equal(g.arrival, 1700000000);
	assert_int_equal(g.size, 4242);
	assert_int_equal(g.next_try, 1700003600);
	assert_int_equal(g.nrcpt, 5);
	assert_int_equal(g.n, 3);
	for (uint32_t i = 0; i < 3; i++) {
		assert_string_equal(g.rcpt[i].addr, rs[i].addr);
		assert_int_equal(g.rcpt[i].attempts, i + 1);
		assert_int_equal(g.rcpt[i].next_try, 1700003600 + i);
		assert_string_equal(g.rcpt[i].last_error, rs[i].last_error);
	}
	mc_qctl_entry_free(&g);
	assert_null(g.rcpt);
	assert_int_equal(mc_qctl_get_next(&r, next, sizeof(next)), 0);
	assert_string_equal(next, "0123456789ABC000");
	mc_msg_free(&r);

	/* cut anywhere inside the entry: refused, nothing left allocated (ASan checks) */
	for (size_t len = 5; len < m.payload.len - (5 + 16); len++) {
		truncated(&m, len, &r);
		assert_int_equal(mc_msg_get_u32(&r, &n), 0);
		assert_int_equal(mc_qctl_get_entry(&r, &g), -1);
		assert_null(g.rcpt);
		mc_msg_free(&r);
	}
	mc_msg_free(&m);
}

static void
test_entry_lying_count(void **state)
{
	(void)state;
	struct mc_qctl_entry e, g;
	struct mc_msg m, r;
	/* n claims four billion recipients in a frame that holds none */
	sample_entry(&e, NULL, 0);
	e.nrcpt = UINT32_MAX;
	mc_msg_init(&m, 1);
	mc_qctl_put_entry(&m, &e);
	assert_int_equal(m.payload.len > 5, 1);
	/* patch the last u32 (n): kind byte then 4 bytes big-endian */
	memset(m.payload.data + m.payload.len - 4, 0xff, 4);
	transfer(&m, &r);
	assert_int_equal(mc_qctl_get_entry(&r, &g), -1);
	assert_null(g.rcpt);
	mc_msg_free(&m);
	mc_msg_free(&r);

	/* more listed than the envelope has */
	struct mc_qctl_rcpt rs[2];
	sample_entry(&e, rs, 2);
	e.nrcpt = 1;
	mc_msg_init(&m, 1);
	mc_qctl_put_entry(&m, &e);
	transfer(&m, &r);
	assert_int_equal(mc_qctl_get_entry(&r, &g), -1);
	mc_msg_free(&m);
	mc_msg_free(&r);
}

static void
test_long_strings_cut_to_fit(void **state)
{
	(void)state;
	struct mc_qctl_rcpt rs[1];
	struct mc_qctl_entry e, g;
	struct mc_msg m, r;
	sample_entry(&e, rs, 1);
	/* a last error exactly as long as its buffer takes, ending in a 2-byte UTF-8 character */
	memset(rs[0].last_error, 'x', sizeof(rs[0].last_error) - 1);
	rs[0].last_error[sizeof(rs[0].last_error) - 3] = '\xc3';
	rs[0].last_error[sizeof(rs[0].last_error) - 2] = '\xa9';
	rs[0].last_error[sizeof(rs[0].last_error) - 1] = '\0';
	mc_msg_init(&m, 1);
	mc_qctl_put_entry(&m, &e);
	transfer(&m, &r);
	assert_int_equal(mc_qctl_get_entry(&r, &g), 0);
	assert_int_equal(strlen(g.rcpt[0].last_error), sizeof(rs[0].last_error) - 1);
	mc_qctl_entry_free(&g);
	mc_msg_free(&m);
	mc_msg_free(&r);

	/* an event detail longer than the reader's buffer is cut before the UTF-8 character, not inside it */
	struct mc_qctl_event ev, got;
	char big[2 * MC_QCTL_ERR_MAX];
	memset(&ev, 0, sizeof(ev));
	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[MC_QCTL_ERR_MAX - 2] = '\xc3';
	big[MC_QCTL_ERR_MAX - 1] = '\xa9';
	ev.time_ms = 1700000000123;
	snprintf(ev.qid, sizeof(ev.qid), "0123456789ABC000");
	snprintf(ev.what, sizeof(ev.what), "deferred");
	mc_msg_init(&m, 1);
	/* put the long text through the event writer by way of a shorter struct field: build it by hand */
	mc_msg_put_u64(&m, (uint64_t)ev.time_ms);
	mc_msg_put_str(&m, ev.qid);
	mc_msg_put_str(&m, "");
	mc_msg_put_str(&m, ev.what);
	mc_msg_put_str(&m, big);
	transfer(&m, &r);
	assert_int_equal(mc_qctl_get_event(&r, &got), -1);   /* a writer that does not cut is refused */
	mc_msg_free(&m);
	mc_msg_free(&r);

	/* a result text longer than the reader takes is cut before the UTF-8 character, not inside it */
	char qid[MC_QID_MAX], what[MC_QCTL_ERR_MAX];
	mc_msg_init(&m, 1);
	mc_qctl_put_act_result(&m, "0123456789ABC000", big);
	transfer(&m, &r);
	assert_int_equal(mc_qctl_get_act_result(&r, qid, sizeof(qid), what, sizeof(what)), 0);
	assert_int_equal(strlen(what), MC_QCTL_ERR_MAX - 2);
	assert_int_equal(mc_msg_end(&r), 0);
	mc_msg_free(&m);
	mc_msg_free(&r);
}

static void
test_show_roundtrip_with_fd(void **state)
{
	(void)state;
	struct mc_qctl_rcpt rs[2];
	struct mc_qctl_event evs[3];
	struct mc_qctl_show s, g;
	struct mc_msg m, r;
	memset(&s, 0, sizeof(s));
	sample_entry(&s.e, rs, 2);
	snprintf(s.envid, sizeof(s.envid), "ENV1");
	snprintf(s.auth_user, sizeof(s.auth_user), "alice@example.test");
	snprintf(s.client, sizeof(s.client), "client.test [127.0.0.1]");
	s.flags = 5;
	char headers[] = "Subject: hi\r\nFrom: a@b\r\n\r\n";
	s.headers = headers;
	memset(evs, 0, sizeof(evs));
	for (int i = 0; i < 3; i++) {
		evs[i].time_ms = 1700000000000 + i;
		snprintf(evs[i].what, sizeof(evs[i].what), i ? "deferred" : "queued");
		snprintf(evs[i].detail, sizeof(evs[i].detail), "detail %d", i);
	}
	s.events = evs;
	s.nevents = 3;
	int p[2];
	assert_int_equal(pipe(p), 0);
	s.body_fd = p[0];
	mc_msg_init(&m, 1);
	mc_qctl_put_show(&m, &s);
	/* as the channel would: the descriptor travels beside the payload */
	assert_int_equal(m.nfds, 1);
	struct mc_buf b;
	size_t used;
	mc_buf_init(&b, 0);
	assert_int_equal(mc_msg_encode(&m, &b), 0);
	assert_int_equal(mc_msg_decode((const uint8_t *)b.data, b.len, MC_MSG_MAX_PAYLOAD, &r, &used), 1);
	mc_msg_attach_fd(&r, dup(p[0]));
	mc_buf_free(&b);
	assert_int_equal(mc_qctl_get_show(&r, &g), 0);
	assert_string_equal(g.envid, "ENV1");
	assert_string_equal(g.auth_user, "alice@example.test");
	assert_string_equal(g.client, "client.test [127.0.0.1]");
	assert_int_equal(g.flags, 5);
	assert_string_equal(g.headers, s.headers);
	assert_int_equal(g.nevents, 3);
	assert_string_equal(g.events[0].what, "queued");
	assert_string_equal(g.events[2].detail, "detail 2");
	assert_int_equal(g.e.n, 2);
	assert_true(g.body_fd >= 0);
	close(g.body_fd);
	mc_qctl_show_free(&g);
	mc_msg_free(&r);
	mc_msg_free(&m);
	close(p[1]);

	/* without a descriptor, and cut short everywhere */
	s.body_fd = -1;
	mc_msg_init(&m, 1);
	mc_qctl_put_show(&m, &s);
	transfer(&m, &r);
	assert_int_equal(mc_qctl_get_show(&r, &g), 0);
	assert_int_equal(g.body_fd, -1);
	mc_qctl_show_free(&g);
	mc_msg_free(&r);
	for (size_t len = 0; len < m.payload.len; len++) {
		truncated(&m, len, &r);
		assert_int_equal(mc_qctl_get_show(&r, &g), -1);
		assert_null(g.events);
		assert_null(g.headers);
		mc_msg_free(&r);
	}
	mc_msg_free(&m);
}

static void
test_summary_roundtrip_and_refusals(void **state)
{
	(void)state;
	struct mc_qctl_dom d[2], *g;
	struct mc_msg m, r;
	uint32_t n, other;
	memset(d, 0, sizeof(d));
	snprintf(d[0].domain, sizeof(d[0].domain), "gmail.com");
	d[0].msgs = 7;
	d[0].bytes = 70000;
	d[0].count[0] = 3;
	d[0].count[MC_QCTL_BUCKETS - 1] = 4;
	snprintf(d[1].domain, sizeof(d[1].domain), "(other domains)");
	d[1].msgs = 1;
	mc_msg_init(&m, 1);
	mc_qctl_put_summary(&m, d, 2, 12);
	transfer(&m, &r);
	assert_int_equal(mc_qctl_get_summary(&r, &g, &n, &other), 0);
	assert_int_equal(n, 2);
	assert_int_equal(other, 12);
	assert_string_equal(g[0].domain, "gmail.com");
	assert_int_equal(g[0].bytes, 70000);
	assert_int_equal(g[0].count[MC_QCTL_BUCKETS - 1], 4);
	free(g);
	mc_msg_free(&r);
	for (size_t len = 0; len < m.payload.len; len++) {
		truncated(&m, len, &r);
		assert_int_equal(mc_qctl_get_summary(&r, &g, &n, &other), -1);
		assert_null(g);
		mc_msg_free(&r);
	}
	mc_msg_free(&m);

	/* another number of buckets than this build knows */
	mc_msg_init(&m, 1);
	mc_msg_put_u32(&m, MC_QCTL_BUCKETS + 1);
	mc_msg_put_u32(&m, 0);
	mc_msg_put_u32(&m, 0);
	transfer(&m, &r);
	assert_int_equal(mc_qctl_get_summary(&r, &g, &n, &other), -1);
	mc_msg_free(&m);
	mc_msg_free(&r);

	/* a domain count the frame cannot hold */
	mc_msg_init(&m, 1);
	mc_msg_put_u32(&m, MC_QCTL_BUCKETS);
	mc_msg_put_u32(&m, 0);
	mc_msg_put_u32(&m, 100000000);
	transfer(&m, &r);
	assert_int_equal(mc_qctl_get_summary(&r, &g, &n, &other), -1);
	mc_msg_free(&m);
	mc_msg_free(&r);
}

static void
test_act_reply_and_small_requests(void **state)
{
	(void)state;
	struct mc_msg m, r;
	uint32_t matched, changed, n;
	char qid[MC_QID_MAX], what[MC_QCTL_ERR_MAX];
	mc_msg_init(&m, 1);
	mc_qctl_put_act_head(&m, 3, 2, 2);
	mc_qctl_put_act_result(&m, "0123456789ABC000", "held");
	mc_qctl_put_act_result(&m, "0123456789ABC001", "already held");
	transfer(&m, &r);
	assert_int_equal(mc_qctl_get_act_head(&r, &matched, &changed, &n), 0);
	assert_int_equal(matched, 3);
	assert_int_equal(changed, 2);
	assert_int_equal(n, 2);
	assert_int_equal(mc_qctl_get_act_result(&r, qid, sizeof(qid), what, sizeof(what)), 0);
	assert_string_equal(what, "held");
	assert_int_equal(mc_qctl_get_act_result(&r, qid, sizeof(qid), what, sizeof(what)), 0);
	assert_string_equal(qid, "0123456789ABC001");
	assert_int_equal(mc_msg_end(&r), 0);
	mc_msg_free(&m);
	mc_msg_free(&r);

	/* a head that lies: more changed than matched, more listed than the frame holds */
	mc_msg_init(&m, 1);
	mc_qctl_put_act_head(&m, 1, 2, 0);
	transfer(&m, &r);
	assert_int_equal(mc_qctl_get_act_head(&r, &matched, &changed, &n), -1);
	mc_msg_free(&m);
	mc_msg_free(&r);
	mc_msg_init(&m, 1);
	mc_qctl_put_act_head(&m, 100000, 0, 100000);
	transfer(&m, &r);
	assert_int_equal(mc_qctl_get_act_head(&r, &matched, &changed, &n), -1);
	mc_msg_free(&m);
	mc_msg_free(&r);

	/* pause: 0 or 1 only */
	bool pause;
	mc_msg_init(&m, 1);
	mc_qctl_put_pause_req(&m, true);
	transfer(&m, &r);
	assert_int_equal(mc_qctl_get_pause_req(&r, &pause), 0);
	assert_true(pause);
	mc_msg_free(&m);
	mc_msg_free(&r);
	mc_msg_init(&m, 1);
	mc_msg_put_u32(&m, 2);
	transfer(&m, &r);
	assert_int_equal(mc_qctl_get_pause_req(&r, &pause), -1);
	mc_msg_free(&m);
	mc_msg_free(&r);

	/* show request: an id too long for the reader, and a trailing field */
	bool body;
	mc_msg_init(&m, 1);
	mc_qctl_put_show_req(&m, "0123456789ABC000", true);
	transfer(&m, &r);
	assert_int_equal(mc_qctl_get_show_req(&r, qid, sizeof(qid), &body), 0);
	assert_true(body);
	mc_msg_free(&r);
	mc_msg_put_u32(&m, 0);
	transfer(&m, &r);
	assert_int_equal(mc_qctl_get_show_req(&r, qid, sizeof(qid), &body), -1);
	mc_msg_free(&m);
	mc_msg_free(&r);
	mc_msg_init(&m, 1);
	mc_qctl_put_show_req(&m, "0123456789ABC000", false);
	transfer(&m, &r);
	assert_int_equal(mc_qctl_get_show_req(&r, qid, 8, &body), -1);
	mc_msg_free(&m);
	mc_msg_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_req_roundtrip),
		cmocka_unit_test(test_filter_state_checked),
		cmocka_unit_test(test_entry_roundtrip_and_truncation),
		cmocka_unit_test(test_entry_lying_count),
		cmocka_unit_test(test_long_strings_cut_to_fit),
		cmocka_unit_test(test_show_roundtrip_with_fd),
		cmocka_unit_test(test_summary_roundtrip_and_refusals),
		cmocka_unit_test(test_act_reply_and_small_requests),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
