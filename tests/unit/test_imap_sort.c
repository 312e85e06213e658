/*
 * test_imap_sort.c - SORT and THREAD (RFC 5256) on cached fields: base
 * subjects as section 2.1 extracts them, the first address's mailbox,
 * every sort criterion with REVERSE and ties by sequence number, the
 * criteria parser, and the THREAD answers of ORDEREDSUBJECT and
 * REFERENCES (replies under their parents, a missing parent as a dummy,
 * threads gathered by subject, reference loops that must not hang).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imapd/search.h"
#include "imapd/sort.h"
#include "imapd/thread.h"

struct fm {
	const char *subject, *from, *to, *cc, *msgid, *irt, *refs;
	int64_t sent;     /* 0: none */
};

static const struct fm *cur_fm;

static const char *
fm_field(void *arg, const struct imap_search_msg *m, enum imap_search_field f)
{
	(void)arg;
	const struct fm *x = &cur_fm[m->seq - 1];
	switch (f) {
	case ISF_SUBJECT: return x->subject;
	case ISF_FROM: return x->from;
	case ISF_TO: return x->to;
	case ISF_CC: return x->cc;
	case ISF_MESSAGE_ID: return x->msgid;
	case ISF_IN_REPLY_TO: return x->irt;
	case ISF_REFERENCES: return x->refs;
	case ISF_TO_SORT: return x->to && strcmp(x->to, "c@x") == 0 ? "AAA" : NULL;   /* the index's own, used as is */
	default: return NULL;
	}
}

static int
fm_sent(void *arg, const struct imap_search_msg *m, int64_t *t, int *tz)
{
	(void)arg;
	const struct fm *x = &cur_fm[m->seq - 1];
	if (x->sent == 0)
		return -1;
	*t = x->sent;
	*tz = 0;
	return 0;
}

static const struct imap_search_src src = { .field = fm_field, .sent_date = fm_sent };

static void
msgs_for(const struct fm *v, size_t n, struct imap_search_msg *m)
{
	cur_fm = v;
	for (size_t i = 0; i < n; i++)
		m[i] = (struct imap_search_msg){ .seq = (uint32_t)i + 1, .uid = (uint32_t)i + 101, .keywords = "",
						 .size = 100 * ((i * 7) % 5 + 1), .internal_date = 1000 - (int64_t)i };
}

static const char *
base(const char *s, bool *reply)
{
	static struct mc_buf b;
	if (b.max == 0)
		mc_buf_init(&b, 8192);
	*reply = imap_base_subject(s, &b);
	return b.data ? b.data : "";
}

static void
test_base_subject(void **state)
{
	(void)state;
	bool r;
	assert_string_equal(base("Re: Re: [list] Fwd: Hello (fwd)", &r), "hello");
	assert_true(r);
	assert_string_equal(base("[PATCH] fix the thing", &r), "fix the thing");
	assert_false(r);
	assert_string_equal(base("[fwd: Lunch]", &r), "lunch");
	assert_true(r);
	assert_string_equal(base("Re:", &r), "");
	assert_string_equal(base("  spaced \t  out  ", &r), "spaced out");
	assert_false(r);
	assert_string_equal(base("[only]", &r), "[only]");
	assert_string_equal(base("RE [x]: y", &r), "y");
	assert_string_equal(base("Fw: Re:  Thing  ", &r), "thing");
	assert_string_equal(base("Fwd: [fwd: Re: inner] (fwd) (FWD)", &r), "inner");
	assert_string_equal(base("Reply to all", &r), "reply to all");
	assert_false(r);
	assert_string_equal(base(NULL, &r), "");

	char mb[64];
	imap_sort_first_mailbox("Alice <Alice@x.example>", mb, sizeof(mb));
	assert_string_equal(mb, "alice");
	imap_sort_first_mailbox("\"Doe, John\" <jd@x>, b@y", mb, sizeof(mb));
	assert_string_equal(mb, "jd");
	imap_sort_first_mailbox("bob@x (Bob, the builder)", mb, sizeof(mb));
	assert_string_equal(mb, "bob");
	imap_sort_first_mailbox("team: a@x, b@y;", mb, sizeof(mb));
	assert_string_equal(mb, "a");
	imap_sort_first_mailbox("", mb, sizeof(mb));
	assert_string_equal(mb, "");
	imap_sort_first_mailbox(NULL, mb, sizeof(mb));
	assert_string_equal(mb, "");
}

static const struct fm sortset[] = {
	{ "Re: beta", "Zed <z@x>", "b@x", NULL, NULL, NULL, NULL, 300 },
	{ "alpha", "adam@x", "c@x", "m@x", NULL, NULL, NULL, 100 },
	{ "Beta", "Mary <mary@x>", "a@x", "a@x", NULL, NULL, NULL, 0 },
	{ "[list] ALPHA", "adam@x", NULL, NULL, NULL, NULL, NULL, 200 },
};

static const char *
sorted(const char *criteria)
{
	static char out[256];
	struct imap_search_msg m[4];
	msgs_for(sortset, 4, m);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "%s UTF-8 ALL\r\n", criteria);
	char *p = cmd;
	const char *why = NULL;
	struct imap_sort_crit crit[IMAP_SORT_CRIT_MAX];
	size_t nc = 0;
	if (imap_sort_parse(&p, cmd + strlen(cmd), crit, &nc, &why) < 0) {
		snprintf(out, sizeof(out), "ERR %s", why);
		return out;
	}
	struct imap_search prog = { 0 };
	assert_int_equal(imap_search_parse(&p, cmd + strlen(cmd), true, &prog, &why), 0);
	imap_search_free(&prog);
	size_t order[4];
	assert_int_equal(imap_sort_run(crit, nc, m, 4, &src, order), 0);
	struct mc_buf b;
	mc_buf_init(&b, 1024);
	assert_int_equal(imap_sort_format(&b, m, order, 4, false, 0), 0);
	snprintf(out, sizeof(out), "%s", b.data);
	mc_buf_free(&b);
	return out;
}

static void
test_sort(void **state)
{
	(void)state;
	/* sizes: 100, 300, 500, 200; internal dates fall with the sequence number */
	assert_string_equal(sorted("(SUBJECT)"), "* SORT 2 4 1 3\r\n");
	assert_string_equal(sorted("(REVERSE SUBJECT)"), "* SORT 1 3 2 4\r\n");
	assert_string_equal(sorted("(SIZE)"), "* SORT 1 4 2 3\r\n");
	assert_string_equal(sorted("(reverse size)"), "* SORT 3 2 4 1\r\n");
	assert_string_equal(sorted("(ARRIVAL)"), "* SORT 4 3 2 1\r\n");
	/* DATE: message 3 has no Date: and sorts by its internal date (998) */
	assert_string_equal(sorted("(DATE)"), "* SORT 2 4 1 3\r\n");
	assert_string_equal(sorted("(FROM)"), "* SORT 2 4 3 1\r\n");
	assert_string_equal(sorted("(FROM REVERSE DATE)"), "* SORT 4 2 3 1\r\n");
	/* no To: sorts as "" first; no Cc: too */
	assert_string_equal(sorted("(TO)"), "* SORT 4 3 2 1\r\n");   /* message 2 sorts by its cached to_sort "AAA", not "c" */
	assert_string_equal(sorted("(CC SUBJECT)"), "* SORT 4 1 3 2\r\n");
	assert_string_equal(sorted("(FOO)"), "ERR unknown sort criterion");
	assert_string_equal(sorted("(DATE"), "ERR unknown sort criterion");   /* it reads on into "UTF" */
	assert_string_equal(sorted("DATE"), "ERR SORT wants a list of criteria");
	assert_string_equal(sorted("(REVERSE REVERSE DATE)"), "ERR unknown sort criterion");
	assert_string_equal(sorted("(DATE)x"), "ERR expected a space after the sort criteria");

	/* SORT/THREAD want the charset before the keys */
	char cmd[] = "KOI8-R ALL\r\n";
	char *p = cmd;
	const char *why;
	struct imap_search prog = { 0 };
	assert_int_equal(imap_search_parse(&p, cmd + strlen(cmd), true, &prog, &why), -1);
	assert_string_equal(why, IMAP_SEARCH_BADCHARSET);
}

static const struct fm threadset[] = {
	{ "Plan", NULL, NULL, NULL, "<a@x>", NULL, NULL, 10 },
	{ "Re: Plan", NULL, NULL, NULL, "<b@x>", NULL, "<a@x>", 20 },
	{ "Re: Plan", NULL, NULL, NULL, "<c@x>", NULL, "<a@x> <b@x>", 30 },
	{ "Re: Plan", NULL, NULL, NULL, "<d@x>", "<a@x>", NULL, 40 },
	{ "Other", NULL, NULL, NULL, "<e@x>", NULL, NULL, 50 },
	{ "Other", NULL, NULL, NULL, "<f@x>", NULL, "<zz@x>", 60 },
	{ "Topic", NULL, NULL, NULL, "<g@x>", NULL, "<x1@x>", 70 },
	{ "Re: Topic", NULL, NULL, NULL, "<h@x>", NULL, "<x1@x>", 80 },
	/* a duplicate Message-ID, and one without any */
	{ "Lone", NULL, NULL, NULL, "<a@x>", NULL, NULL, 5 },
	{ "Nothing", NULL, NULL, NULL, NULL, NULL, NULL, 90 },
};

static const char *
threaded(enum imap_thread_alg alg, const struct fm *v, size_t n, bool uid)
{
	static char out[512];
	struct imap_search_msg m[16];
	msgs_for(v, n, m);
	struct mc_buf b;
	mc_buf_init(&b, 4096);
	assert_int_equal(imap_thread_run(alg, m, n, &src, uid, &b), 0);
	snprintf(out, sizeof(out), "%s", b.data);
	mc_buf_free(&b);
	return out;
}

static void
test_thread(void **state)
{
	(void)state;
	assert_string_equal(threaded(IMAP_THREAD_REFERENCES, threadset, 8, false),
			    "* THREAD (1 (2 3)(4))((5)(6))((7)(8))\r\n");
	assert_string_equal(threaded(IMAP_THREAD_REFERENCES, threadset, 10, false),
			    "* THREAD (9)(1 (2 3)(4))((5)(6))((7)(8))(10)\r\n");
	assert_string_equal(threaded(IMAP_THREAD_REFERENCES, threadset, 2, true), "* THREAD (101 102)\r\n");
	assert_string_equal(threaded(IMAP_THREAD_ORDEREDSUBJECT, threadset, 6, false),
			    "* THREAD (1 (2)(3)(4))(5 6)\r\n");
	assert_string_equal(threaded(IMAP_THREAD_ORDEREDSUBJECT, threadset, 0, false), "* THREAD\r\n");

	/* references that loop: each claims the other as parent; answered, once each */
	static const struct fm loop[] = {
		{ "Loop", NULL, NULL, NULL, "<l1@x>", NULL, "<l2@x>", 1 },
		{ "Loop", NULL, NULL, NULL, "<l2@x>", NULL, "<l1@x>", 2 },
		{ "Self", NULL, NULL, NULL, "<s@x>", NULL, "<s@x> <s@x>", 3 },
	};
	assert_string_equal(threaded(IMAP_THREAD_REFERENCES, loop, 3, false), "* THREAD (2 1)(3)\r\n");

	/* a reply chain as long as a big mailbox: no recursion, still one thread */
	enum { N = 5000 };
	struct fm *chain = calloc(N, sizeof(*chain));
	char (*ids)[24] = calloc(N, sizeof(*ids));
	struct imap_search_msg *m = calloc(N, sizeof(*m));
	for (int i = 0; i < N; i++) {
		snprintf(ids[i], sizeof(ids[i]), "<m%d@x>", i);
		chain[i] = (struct fm){ .subject = "Re: long", .msgid = ids[i], .irt = i ? ids[i - 1] : NULL,
					.sent = i + 1 };
	}
	msgs_for(chain, N, m);
	struct mc_buf b;
	mc_buf_init(&b, 1 << 20);
	assert_int_equal(imap_thread_run(IMAP_THREAD_REFERENCES, m, N, &src, false, &b), 0);
	assert_true(strncmp(b.data, "* THREAD (1 2 3 ", 16) == 0);
	assert_non_null(strstr(b.data, " 4999 5000)\r\n"));
	mc_buf_free(&b);
	free(chain);
	free(ids);
	free(m);

	char cmd[] = "REFERENCES UTF-8 ALL\r\n", bad[] = "THREADALL x\r\n";
	char *p = cmd;
	const char *why;
	enum imap_thread_alg alg;
	assert_int_equal(imap_thread_parse_alg(&p, cmd + strlen(cmd), &alg, &why), 0);
	assert_int_equal(alg, IMAP_THREAD_REFERENCES);
	assert_string_equal(p, "UTF-8 ALL\r\n");
	p = bad;
	assert_int_equal(imap_thread_parse_alg(&p, bad + strlen(bad), &alg, &why), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base_subject),
		cmocka_unit_test(test_sort),
		cmocka_unit_test(test_thread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
