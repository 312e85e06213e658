/*
 * test_imap_uidset.c - imapd/uidset.c: ranges that merge as they grow,
 * lookups by halves, the saved SEARCH result kept as UIDs and turned back
 * into UIDs or sequence numbers of the view for "$" (RFC 5182), and the
 * \Recent count (none after ENABLE IMAP4rev2). A session and its view are
 * built by hand: no store, no network.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imapd/imapd.h"

/* A view of UIDs 10, 11, 12, 20, 21, 30 (sequence numbers 1..6). */
static const uint32_t view_uids[] = { 10, 11, 12, 20, 21, 30 };

struct fx {
	struct imapd_session s;
	struct imapd_view v;
	struct imapd_msg msgs[6];
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	for (size_t i = 0; i < 6; i++)
		f->msgs[i].uid = view_uids[i];
	f->v.msgs = f->msgs;
	f->v.n = f->v.cap = 6;
	f->s.view = &f->v;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	imapd_uidset_free(&f->v.recent);
	imapd_uidset_free(&f->v.saved);
	imapd_uidset_free(&f->s.dollar);
	free(f);
	return 0;
}

static void
test_ranges(void **state)
{
	struct imapd_uidset u = { 0 };
	(void)state;
	assert_false(imapd_uidset_has(&u, 1));
	assert_int_equal(imapd_uidset_add(&u, 1, 1), 0);
	assert_int_equal(imapd_uidset_add(&u, 2, 4), 0);     /* adjacent: one range */
	assert_int_equal(imapd_uidset_add(&u, 3, 5), 0);     /* overlapping: still one */
	assert_int_equal(u.n, 1);
	assert_int_equal(u.r[0].hi, 5);
	for (uint32_t i = 0; i < 100; i++)
		assert_int_equal(imapd_uidset_add(&u, 10 + 2 * i, 10 + 2 * i), 0);   /* gaps: a range each */
	assert_int_equal(u.n, 101);
	assert_true(imapd_uidset_has(&u, 1));
	assert_true(imapd_uidset_has(&u, 5));
	assert_false(imapd_uidset_has(&u, 6));
	assert_true(imapd_uidset_has(&u, 208));
	assert_false(imapd_uidset_has(&u, 209));
	assert_false(imapd_uidset_has(&u, 0));
	assert_false(imapd_uidset_has(&u, UINT32_MAX));
	assert_int_equal(imapd_uidset_add(&u, UINT32_MAX, UINT32_MAX), 0);   /* no overflow at the top */
	assert_true(imapd_uidset_has(&u, UINT32_MAX));
	imapd_uidset_free(&u);
	imapd_uidset_free(&u);
	assert_int_equal(u.n, 0);
}

/* The ranges "$" stands for in a command, as "lo:hi,..." */
static void
resolved(struct fx *f, bool uid, char *out, size_t outsz)
{
	struct imap_seqset set = { .s = "", .dollar = true };
	f->s.cmd_uid = uid;
	assert_int_equal(imapd_saved_resolve(&f->s, &set), 0);
	size_t n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < set.nranges; i++)
		n += (size_t)snprintf(out + n, outsz - n, "%s%u:%u", i ? "," : "", set.ranges[i].lo, set.ranges[i].hi);
}

static void
test_saved(void **state)
{
	struct fx *f = *state;
	char got[128];
	/* SEARCH found sequence numbers 2, 3, 4 and 6: kept as UIDs 11, 12, 20, 30 */
	static const uint32_t seqs[] = { 2, 3, 4, 6, 99 };
	assert_int_equal(imapd_saved_keep(&f->s, seqs, 5, false), 0);
	assert_true(imapd_uidset_has(&f->v.saved, 12));
	assert_false(imapd_uidset_has(&f->v.saved, 21));
	resolved(f, false, got, sizeof(got));
	assert_string_equal(got, "2:4,6:6");
	resolved(f, true, got, sizeof(got));
	assert_string_equal(got, "11:20,30:30");   /* neighbours in the view make one range */
	/* 11 and 12 expunged and reported: they leave "$", the numbers shift */
	memmove(&f->msgs[1], &f->msgs[3], 3 * sizeof(f->msgs[0]));
	f->v.n = 4;
	resolved(f, false, got, sizeof(got));
	assert_string_equal(got, "2:2,4:4");
	resolved(f, true, got, sizeof(got));
	assert_string_equal(got, "20:20,30:30");
	/* the empty result, and no view at all */
	assert_int_equal(imapd_saved_keep(&f->s, NULL, 0, true), 0);
	resolved(f, true, got, sizeof(got));
	assert_string_equal(got, "");
	struct imap_seqset set = { .dollar = true };
	f->s.view = NULL;
	assert_int_equal(imapd_saved_resolve(&f->s, &set), 0);
	assert_int_equal(set.nranges, 0);
}

static void
test_recent(void **state)
{
	struct fx *f = *state;
	assert_int_equal(imapd_recent_count(&f->s), 0);
	assert_int_equal(imapd_uidset_add(&f->v.recent, 20, 30), 0);
	assert_int_equal(imapd_recent_count(&f->s), 3);
	assert_true(imapd_recent_has(&f->s, 21));
	assert_false(imapd_recent_has(&f->s, 12));
	f->s.rev2 = true;   /* ENABLE IMAP4rev2: nothing is \Recent */
	assert_false(imapd_recent_has(&f->s, 21));
	f->s.rev2 = false;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ranges),
		cmocka_unit_test_setup_teardown(test_saved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recent, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
