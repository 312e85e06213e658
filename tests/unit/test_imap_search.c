/*
 * test_imap_search.c - the SEARCH program: every RFC 3501 key parsed from
 * the raw command text (quoted strings, literals, sequence sets with '*'
 * and ranges either way round) and evaluated against a small mailbox
 * whose index rows, cached fields and message files the test stands in
 * for; BODY/TEXT/HEADER read a real file, and a key the index can answer
 * never opens one. Bad programs (too deep, unknown keys, lying literals,
 * other charsets) are refused with a reason; the SEARCH and ESEARCH
 * answers are formatted as RFC 3501 and RFC 4731 show them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imapd/search.h"
#include "mail/mailstore.h"

#define DAY 86400
/* 2024-03-10 12:00 UTC and friends */
#define T_MAR10 (1710072000)

struct fake {
	const char *subject, *from, *to, *cc, *bcc;
	int64_t sent;             /* 0: no Date: */
	int tz;
	const char *file;         /* the message as stored (LF) */
};

static const struct fake fakes[] = {
	{ "Lunch on Friday", "Alice <alice@example.org>", "bob@example.net", "carol@example.com", NULL, T_MAR10, 0,
	  "Subject: Lunch on Friday\nFrom: Alice <alice@example.org>\nX-Mailer: TestMail 1.0\n\nWhere shall we "
	  "go?\nThe Thai place?\n" },
	{ "Café menu", "Bäcker <baker@example.org>", "bob@example.net", NULL, NULL, T_MAR10 + DAY, -300,
	  "Subject: =?utf-8?q?Caf=C3=A9_menu?=\nFrom: baker@example.org\nX-Priority:\n  1 (Highest)\n\nCroissants\n" },
	{ "Re: Lunch on Friday", "bob@example.net", "alice@example.org", NULL, "secret@example.net", 0, 0,
	  "Subject: Re: Lunch on Friday\n\nThai is fine. NEEDLE-at-the-end" },
};

struct mbox {
	struct imap_search_msg m[3];
	int opens;
	char dir[64];
};

static const char *
fake_field(void *arg, const struct imap_search_msg *m, enum imap_search_field f)
{
	(void)arg;
	const struct fake *x = &fakes[m->seq - 1];
	switch (f) {
	case ISF_SUBJECT: return x->subject;
	case ISF_FROM: return x->from;
	case ISF_TO: return x->to;
	case ISF_CC: return x->cc;
	case ISF_BCC: return x->bcc;
	default: return NULL;
	}
}

static int
fake_sent(void *arg, const struct imap_search_msg *m, int64_t *t, int *tz)
{
	(void)arg;
	const struct fake *x = &fakes[m->seq - 1];
	if (x->sent == 0)
		return -1;
	*t = x->sent;
	*tz = x->tz;
	return 0;
}

static int
fake_open(void *arg, const struct imap_search_msg *m)
{
	struct mbox *b = arg;
	char p[128];
	snprintf(p, sizeof(p), "%s/%u", b->dir, m->uid);
	b->opens++;
	return open(p, O_RDONLY);
}

static bool
fake_saved(void *arg, const struct imap_search_msg *m)
{
	(void)arg;
	return m->uid == 30;
}

static int
setup(void **state)
{
	struct mbox *b = calloc(1, sizeof(*b));
	snprintf(b->dir, sizeof(b->dir), "/tmp/test_imap_search.XXXXXX");
	if (mkdtemp(b->dir) == NULL)
		return -1;
	static const uint32_t flags[3] = { MC_FLAG_SEEN | MC_FLAG_ANSWERED, MC_FLAG_FLAGGED,
					   MC_FLAG_SEEN | MC_FLAG_DELETED | MC_FLAG_FORWARDED };
	static const char *const kw[3] = { "Work $Label1", "", "work" };
	for (int i = 0; i < 3; i++) {
		b->m[i] = (struct imap_search_msg){
			.seq = (uint32_t)i + 1, .uid = (uint32_t)(i + 1) * 10, .flags = flags[i], .recent = i == 1,
			.keywords = kw[i], .size = (uint64_t)(1000 * (i + 1)), .internal_date = T_MAR10 + i * DAY,
			.modseq = (uint64_t)(5 + i),
		};
		char p[128];
		snprintf(p, sizeof(p), "%s/%u", b->dir, b->m[i].uid);
		FILE *f = fopen(p, "w");
		if (f == NULL)
			return -1;
		fputs(fakes[i].file, f);
		fclose(f);
	}
	*state = b;
	return 0;
}

static int
teardown(void **state)
{
	struct mbox *b = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", b->dir);
	if (system(cmd) != 0)
		return -1;
	free(b);
	return 0;
}

/* Parse text (the part after "SEARCH "), run it, and write the matching sequence numbers as "1 3". */
static const char *
run_src(struct mbox *b, const char *text, bool with_fields, char *out, size_t outsz)
{
	static char why_buf[128];
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "%s\r\n", text);
	char *p = cmd;
	const char *why = NULL;
	struct imap_search prog = { 0 };
	if (imap_search_parse_return(&p, cmd + strlen(cmd), &prog, &why) < 0 ||
	    imap_search_parse(&p, cmd + strlen(cmd), false, &prog, &why) < 0) {
		snprintf(why_buf, sizeof(why_buf), "ERR %s", why);
		snprintf(out, outsz, "%s", why_buf);
		return out;
	}
	if (strcmp(p, "\r\n") != 0)
		fail_msg("parser stopped at '%s'", p);
	struct imap_search_src src = {
		.arg = b, .max_seq = 3, .max_uid = 30, .field = with_fields ? fake_field : NULL, .sent_date = fake_sent,
		.open = fake_open, .saved = fake_saved,
	};
	out[0] = '\0';
	size_t o = 0;
	for (int i = 0; i < 3; i++)
		if (imap_search_match(&prog, &b->m[i], &src))
			o += (size_t)snprintf(out + o, outsz - o, "%s%u", o ? " " : "", b->m[i].seq);
	imap_search_free(&prog);
	return out;
}

static const char *
run(struct mbox *b, const char *text)
{
	static char out[256];
	return run_src(b, text, true, out, sizeof(out));
}

static void
test_index_keys(void **state)
{
	struct mbox *b = *state;
	assert_string_equal(run(b, "ALL"), "1 2 3");
	assert_string_equal(run(b, "SEEN"), "1 3");
	assert_string_equal(run(b, "UNSEEN"), "2");
	assert_string_equal(run(b, "answered"), "1");
	assert_string_equal(run(b, "UNANSWERED"), "2 3");
	assert_string_equal(run(b, "DELETED"), "3");
	assert_string_equal(run(b, "UNDELETED"), "1 2");
	assert_string_equal(run(b, "FLAGGED"), "2");
	assert_string_equal(run(b, "UNFLAGGED"), "1 3");
	assert_string_equal(run(b, "DRAFT"), "");
	assert_string_equal(run(b, "UNDRAFT"), "1 2 3");
	assert_string_equal(run(b, "RECENT"), "2");
	assert_string_equal(run(b, "OLD"), "1 3");
	assert_string_equal(run(b, "NEW"), "2");
	assert_string_equal(run(b, "KEYWORD work"), "1 3");
	assert_string_equal(run(b, "KEYWORD $label1"), "1");
	assert_string_equal(run(b, "UNKEYWORD Work"), "2");
	assert_string_equal(run(b, "KEYWORD $Forwarded"), "3");
	assert_string_equal(run(b, "LARGER 1000"), "2 3");
	assert_string_equal(run(b, "SMALLER 2000"), "1");
	assert_string_equal(run(b, "BEFORE 11-Mar-2024"), "1");
	assert_string_equal(run(b, "ON 11-mar-2024"), "2");
	assert_string_equal(run(b, "SINCE \"11-Mar-2024\""), "2 3");
	assert_string_equal(run(b, "MODSEQ 6"), "2 3");
	assert_string_equal(run(b, "MODSEQ \"/flags/\\\\Seen\" all 7"), "3");
	/* sequence sets: ranges either way round, '*', UID sets, "$" */
	assert_string_equal(run(b, "2:*"), "2 3");
	assert_string_equal(run(b, "*:2"), "2 3");
	assert_string_equal(run(b, "3:1"), "1 2 3");
	assert_string_equal(run(b, "1,3"), "1 3");
	assert_string_equal(run(b, "UID 20:*"), "2 3");
	assert_string_equal(run(b, "UID 15,30:40"), "3");
	assert_string_equal(run(b, "UID 4294967295:25"), "3");
	assert_string_equal(run(b, "$"), "3");
	assert_string_equal(run(b, "1,$"), "1 3");            /* "$" last in a set (RFC 5182) */
	assert_string_equal(run(b, "UID 10,$ NOT 1"), "3");
	/* NOT, OR, lists, several keys */
	assert_string_equal(run(b, "NOT SEEN"), "2");
	assert_string_equal(run(b, "OR FLAGGED DELETED"), "2 3");
	assert_string_equal(run(b, "OR (SEEN ANSWERED) FLAGGED"), "1 2");
	assert_string_equal(run(b, "SEEN NOT DELETED"), "1");
	assert_string_equal(run(b, "NOT NOT NOT (UID 10 SEEN)"), "2 3");
	/* none of them opened a file */
	assert_int_equal(b->opens, 0);
}

static void
test_header_keys(void **state)
{
	struct mbox *b = *state;
	assert_string_equal(run(b, "FROM alice"), "1");
	assert_string_equal(run(b, "FROM \"EXAMPLE.ORG\""), "1 2");
	assert_string_equal(run(b, "TO bob"), "1 2");
	assert_string_equal(run(b, "CC carol"), "1");
	assert_string_equal(run(b, "BCC secret"), "3");
	assert_string_equal(run(b, "SUBJECT lunch"), "1 3");
	assert_string_equal(run(b, "CHARSET UTF-8 SUBJECT {5}\r\nCAFé"), "2");
	assert_string_equal(run(b, "charset us-ascii FROM {7+}\r\nbäcker"), "2");
	/* case folding beyond ASCII: É/é, Ä/ä */
	assert_string_equal(run(b, "SUBJECT \"CAFÉ MENU\""), "2");
	assert_string_equal(run(b, "FROM {7}\r\nBÄCKER"), "2");
	assert_string_equal(run(b, "SENTON 10-Mar-2024"), "1");
	/* message 2 was sent 2024-03-11 12:00 UTC at -0500: its own day is the 11th */
	assert_string_equal(run(b, "SENTBEFORE 11-Mar-2024"), "1");
	/* message 3 has no Date: its internal date (the 12th) stands in */
	assert_string_equal(run(b, "SENTSINCE 12-Mar-2024"), "3");
	assert_int_equal(b->opens, 0);
}

static void
test_file_keys(void **state)
{
	struct mbox *b = *state;
	assert_string_equal(run(b, "BODY thai"), "1 3");
	assert_int_equal(b->opens, 3);
	b->opens = 0;
	/* the index rules message 2 and 3 out before their files are read */
	assert_string_equal(run(b, "BODY thai ANSWERED"), "1");
	assert_int_equal(b->opens, 1);
	assert_string_equal(run(b, "BODY subject"), "");
	assert_string_equal(run(b, "TEXT subject"), "1 2 3");
	assert_string_equal(run(b, "TEXT needle-AT-the-end"), "3");
	assert_string_equal(run(b, "HEADER X-Mailer testmail"), "1");
	assert_string_equal(run(b, "HEADER x-priority \"1 (high\""), "2");
	assert_string_equal(run(b, "HEADER X-Priority \"\""), "2");
	assert_string_equal(run(b, "HEADER Subject \"re: lunch\""), "3");
	/* without cached fields, FROM and SUBJECT read the header block */
	char out[256];
	assert_string_equal(run_src(b, "FROM baker", false, out, sizeof(out)), "2");
	assert_string_equal(run_src(b, "SUBJECT \"lunch on\"", false, out, sizeof(out)), "1 3");
}

static void
test_bad_programs(void **state)
{
	struct mbox *b = *state;
	assert_string_equal(run(b, ""), "ERR expected a search key");
	assert_string_equal(run(b, "FOO"), "ERR unknown search key");
	assert_string_equal(run(b, "SEEN "), "ERR expected a search key");
	assert_string_equal(run(b, "CHARSET KOI8-R SEEN"), "ERR BADCHARSET");
	assert_string_equal(run(b, "BEFORE 31-Foo-2024"), "ERR bad date");
	assert_string_equal(run(b, "LARGER x"), "ERR expected a number");
	assert_string_equal(run(b, "UID 0"), "ERR bad sequence set");
	assert_string_equal(run(b, "UID 4294967296"), "ERR number too large");
	assert_string_equal(run(b, "SUBJECT \"open"), "ERR unterminated quoted string");
	assert_string_equal(run(b, "SUBJECT {99}\r\nshort"), "ERR literal shorter than announced");
	assert_string_equal(run(b, "SUBJECT {4294967296}\r\nx"), "ERR number too large");
	assert_string_equal(run(b, "(SEEN"), "ERR expected a space");
	assert_string_equal(run(b, "OR SEEN"), "ERR expected a space");
	assert_string_equal(run(b, "MODSEQ \"/flags/x\" bogus 1"), "ERR bad MODSEQ entry type");
	assert_string_equal(run(b, "RETURN (MIN FOO) ALL"), "ERR unknown RETURN option");
	/* nesting: 16 levels are fine, 17 are not; the same for NOT chains */
	char deep[512] = "", q[512];
	for (int i = 0; i < 16; i++)
		strcat(deep, "(");
	strcat(deep, "SEEN");
	for (int i = 0; i < 16; i++)
		strcat(deep, ")");
	assert_string_equal(run(b, deep), "1 3");
	snprintf(q, sizeof(q), "(%s)", deep);
	assert_string_equal(run(b, q), "ERR search program nested too deep");
	char nots[512] = "";
	for (int i = 0; i < 20; i++)
		strcat(nots, "NOT ");
	strcat(nots, "SEEN");
	assert_string_equal(run(b, nots), "ERR search program nested too deep");
	/* too many keys */
	char *many = malloc(IMAP_SEARCH_KEYS_MAX * 5 + 16);
	many[0] = '\0';
	for (int i = 0; i <= IMAP_SEARCH_KEYS_MAX; i++)
		strcat(many, i ? " SEEN" : "SEEN");
	char cmd[IMAP_SEARCH_KEYS_MAX * 5 + 32];
	snprintf(cmd, sizeof(cmd), "%s\r\n", many);
	char *p = cmd;
	const char *why = NULL;
	struct imap_search prog = { 0 };
	assert_int_equal(imap_search_parse(&p, cmd + strlen(cmd), false, &prog, &why), -1);
	assert_string_equal(why, "search program too large");
	free(many);
}

static void
test_return_and_format(void **state)
{
	(void)state;
	char cmd[] = "RETURN (MIN COUNT) CHARSET UTF-8 UNSEEN\r\n";
	char *p = cmd;
	const char *why = NULL;
	struct imap_search prog = { 0 };
	assert_int_equal(imap_search_parse_return(&p, cmd + strlen(cmd), &prog, &why), 0);
	assert_true(prog.esearch);
	assert_int_equal(prog.ret, IMAP_RET_MIN | IMAP_RET_COUNT);
	assert_int_equal(imap_search_parse(&p, cmd + strlen(cmd), false, &prog, &why), 0);
	imap_search_free(&prog);
	char cmd2[] = "RETURN () ALL\r\n";
	p = cmd2;
	struct imap_search prog2 = { 0 };
	assert_int_equal(imap_search_parse_return(&p, cmd2 + strlen(cmd2), &prog2, &why), 0);
	assert_int_equal(prog2.ret, IMAP_RET_ALL);

	struct mc_buf out;
	mc_buf_init(&out, 4096);
	uint32_t nums[] = { 2, 10, 11, 12, 13, 17, 20, 21 };
	assert_int_equal(imap_search_format(&out, nums, 3, 0), 0);
	assert_string_equal(out.data, "* SEARCH 2 10 11\r\n");
	mc_buf_reset(&out);
	assert_int_equal(imap_search_format(&out, NULL, 0, 9), 0);
	assert_string_equal(out.data, "* SEARCH\r\n");
	mc_buf_reset(&out);
	assert_int_equal(imap_search_format(&out, nums, 1, 917162500), 0);
	assert_string_equal(out.data, "* SEARCH 2 (MODSEQ 917162500)\r\n");
	mc_buf_reset(&out);
	assert_int_equal(imap_esearch_format(&out, "A282", true,
					     IMAP_RET_MIN | IMAP_RET_MAX | IMAP_RET_COUNT | IMAP_RET_ALL, nums, 8, 0),
			 0);
	assert_string_equal(out.data, "* ESEARCH (TAG \"A282\") UID MIN 2 MAX 21 COUNT 8 ALL 2,10:13,17,20:21\r\n");
	mc_buf_reset(&out);
	assert_int_equal(imap_esearch_format(&out, "A283", false, IMAP_RET_MIN | IMAP_RET_COUNT, nums, 0, 0), 0);
	assert_string_equal(out.data, "* ESEARCH (TAG \"A283\") COUNT 0\r\n");
	mc_buf_free(&out);

	assert_true(imap_search_contains("Hello World", 11, "o w", 3));
	assert_true(imap_search_contains("ПРИВЕТ мир", strlen("ПРИВЕТ мир"), "привет", strlen("привет")));
	assert_true(imap_search_contains("ΣΟΦΊΑ", strlen("ΣΟΦΊΑ"), "σοφ", strlen("σοφ")));
	assert_true(imap_search_contains("xŁÓDŹ", strlen("xŁÓDŹ"), "łódź", strlen("łódź")));
	assert_false(imap_search_contains("é", strlen("é"), "e", 1));
	assert_false(imap_search_contains("\xc3", 1, "\xc3\xa9", 2));
	assert_false(imap_search_contains("Hello", 5, "hello!", 6));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_index_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_programs, setup, teardown),
		cmocka_unit_test(test_return_and_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
