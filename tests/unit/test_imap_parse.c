/*
 * test_imap_parse.c - imapd's reader and grammar cursor: commands split
 * from a byte stream fed in any pieces, literals (synchronising, LITERAL+,
 * refused by their announced length before any byte is kept, {4294967296},
 * {-1}), quoted strings (escapes, NUL), atoms and tags, lists with their
 * nesting bound, sequence sets (ranges either way, '*', 1:4294967295
 * walked without allocating), dates.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "imapd/parse.h"

static const struct imap_reader_limits lim = { 1024, 4096, 16384, true };

/* Feed all of in, one byte at a time when slow; collect events into a string like "C+C". */
static void
feed_all(struct imap_reader *r, const char *in, size_t n, bool slow, char *events, size_t evsz)
{
	size_t off = 0, e = 0;
	while (off < n && e + 1 < evsz) {
		size_t used;
		size_t give = slow ? 1 : n - off;
		enum imap_rd res = imap_reader_feed(r, in + off, give, &used);
		off += used;
		switch (res) {
		case IMAP_RD_MORE:
			break;
		case IMAP_RD_COMMAND:
			events[e++] = 'C';
			imap_reader_next(r);
			break;
		case IMAP_RD_CONTINUE:
			events[e++] = '+';
			break;
		case IMAP_RD_REFUSED:
			events[e++] = 'R';
			break;
		case IMAP_RD_FATAL:
			events[e++] = 'F';
			off = n;
			break;
		case IMAP_RD_LITERAL:   /* an APPEND's literal: kept here as any other */
			events[e++] = 'L';
			if (imap_reader_literal(r, IMAP_LIT_KEEP) == IMAP_RD_CONTINUE)
				events[e++] = '+';
			break;
		case IMAP_RD_DATA:
			events[e++] = 'D';
			break;
		}
	}
	events[e] = '\0';
}

static void
test_reader_lines_and_literals(void **state)
{
	static const char in[] = "a NOOP\r\nb LOGIN {5}\r\nalice {3+}\r\npw!\r\nc LOGOUT\n";
	for (int slow = 0; slow < 2; slow++) {
		struct imap_reader r;
		char ev[16];
		imap_reader_init(&r, &lim);
		feed_all(&r, in, sizeof(in) - 1, slow, ev, sizeof(ev));
		assert_string_equal(ev, "C+CC");
		imap_reader_free(&r);
	}
	/* The command keeps its literal bytes in place. */
	struct imap_reader r;
	size_t used, len;
	imap_reader_init(&r, &lim);
	const char *c1 = "x LOGIN {3}\r\n";
	assert_int_equal(imap_reader_feed(&r, c1, strlen(c1), &used), IMAP_RD_CONTINUE);
	assert_int_equal(imap_reader_feed(&r, "a\0c y\r\n", 7, &used), IMAP_RD_COMMAND);
	char *cmd = imap_reader_command(&r, &len);
	assert_int_equal(len, strlen(c1) + 7);
	assert_memory_equal(cmd + strlen(c1), "a\0c y\r\n", 7);
	imap_reader_free(&r);
}

static void
test_reader_refuses_by_announcement(void **state)
{
	struct imap_reader r;
	size_t used;
	imap_reader_init(&r, &lim);
	/* Synchronising and too big: refused with the tag, nothing of it kept. */
	const char *big = "t1 LOGIN x {4097}\r\n";
	assert_int_equal(imap_reader_feed(&r, big, strlen(big), &used), IMAP_RD_REFUSED);
	assert_int_equal(used, strlen(big));
	assert_string_equal(r.tag, "t1");
	assert_string_equal(r.why, "literal too big");
	assert_false(imap_reader_busy(&r));
	/* Not a 32-bit number. */
	const char *huge = "t2 LOGIN {4294967296}\r\n";
	assert_int_equal(imap_reader_feed(&r, huge, strlen(huge), &used), IMAP_RD_REFUSED);
	assert_string_equal(r.tag, "t2");
	/* {-1} announces nothing: the line is a (malformed) command. */
	const char *neg = "t3 LOGIN {-1}\r\n";
	assert_int_equal(imap_reader_feed(&r, neg, strlen(neg), &used), IMAP_RD_COMMAND);
	imap_reader_next(&r);
	/* Non-synchronising and too big: the stream cannot be resynchronised. */
	const char *plus = "t4 LOGIN {99999+}\r\n";
	assert_int_equal(imap_reader_feed(&r, plus, strlen(plus), &used), IMAP_RD_FATAL);
	imap_reader_free(&r);
	/* A line over the limit. */
	imap_reader_init(&r, &lim);
	char line[2000];
	memset(line, 'a', sizeof(line));
	assert_int_equal(imap_reader_feed(&r, line, sizeof(line), &used), IMAP_RD_FATAL);
	imap_reader_free(&r);
	/* The whole command's bound counts literals too. */
	struct imap_reader_limits small = { 1024, 4096, 5000, false };
	imap_reader_init(&r, &small);
	assert_int_equal(imap_reader_feed(&r, "a X {4000}\r\n", 12, &used), IMAP_RD_CONTINUE);
	char lit[4000];
	memset(lit, 'x', sizeof(lit));
	assert_int_equal(imap_reader_feed(&r, lit, sizeof(lit), &used), IMAP_RD_MORE);
	assert_int_equal(imap_reader_feed(&r, " {4000}\r\n", 9, &used), IMAP_RD_REFUSED);
	assert_string_equal(r.why, "command too long");
	imap_reader_free(&r);
	/*
	 * An APPEND's literals go to the caller first. Streamed, the message
	 * comes out as DATA and is never kept: the command holds only its lines.
	 */
	imap_reader_init(&r, &lim);
	const char *app = "a1 append INBOX (\\Seen) {50000}\r\n";
	assert_int_equal(imap_reader_feed(&r, app, strlen(app), &used), IMAP_RD_LITERAL);
	assert_int_equal(used, strlen(app));
	assert_int_equal(r.lit_len, 50000);
	assert_true(r.lit_sync);
	/* Until the caller decides, nothing more is taken. */
	assert_int_equal(imap_reader_feed(&r, "x", 1, &used), IMAP_RD_LITERAL);
	assert_int_equal(used, 0);
	assert_int_equal(imap_reader_literal(&r, IMAP_LIT_STREAM), IMAP_RD_CONTINUE);
	static char msg[50002];
	memset(msg, 'm', 50000);
	memcpy(msg + 50000, "\r\n", 2);
	size_t off = 0, data = 0;
	enum imap_rd ev;
	while ((ev = imap_reader_feed(&r, msg + off, sizeof(msg) - off < 7000 ? sizeof(msg) - off : 7000, &used)) ==
	       IMAP_RD_DATA) {
		assert_true(used > 0 && used <= 7000);
		data += used;
		off += used;
	}
	assert_int_equal(data, 50000);
	assert_true(r.cmd.len < 100);   /* the message was not kept */
	off += used;
	if (ev == IMAP_RD_MORE)
		ev = imap_reader_feed(&r, msg + off, sizeof(msg) - off, &used);
	assert_int_equal(ev, IMAP_RD_COMMAND);
	size_t clen;
	char *c = imap_reader_command(&r, &clen);
	assert_int_equal(clen, strlen(app) + 2);
	assert_memory_equal(c, "a1 append INBOX (\\Seen) {50000}\r\n\r\n", clen);
	imap_reader_next(&r);
	/* Kept, an APPEND's literal has the ordinary bound. */
	const char *app2 = "a2 APPEND INBOX {100001}\r\n";
	assert_int_equal(imap_reader_feed(&r, app2, strlen(app2), &used), IMAP_RD_LITERAL);
	assert_int_equal(imap_reader_literal(&r, IMAP_LIT_KEEP), IMAP_RD_REFUSED);
	assert_string_equal(r.tag, "a2");
	/* Non-synchronising, streamed: no "+", the bytes come at once. */
	const char *app3 = "a3 APPEND INBOX {3+}\r\nabc\r\n";
	assert_int_equal(imap_reader_feed(&r, app3, strlen(app3), &used), IMAP_RD_LITERAL);
	assert_false(r.lit_sync);
	off = used;
	assert_int_equal(imap_reader_literal(&r, IMAP_LIT_STREAM), IMAP_RD_MORE);
	assert_int_equal(imap_reader_feed(&r, app3 + off, strlen(app3) - off, &used), IMAP_RD_DATA);
	assert_int_equal(used, 3);
	off += used;
	assert_int_equal(imap_reader_feed(&r, app3 + off, strlen(app3) - off, &used), IMAP_RD_COMMAND);
	imap_reader_next(&r);
	/* Dropped after the announcement (refused before "+"): the next command reads cleanly. */
	assert_int_equal(imap_reader_feed(&r, app2, strlen(app2), &used), IMAP_RD_LITERAL);
	imap_reader_next(&r);
	assert_int_equal(imap_reader_feed(&r, "a4 NOOP\r\n", 9, &used), IMAP_RD_COMMAND);
	imap_reader_next(&r);
	/* Not an APPEND: the ordinary bound, decided by the reader. */
	const char *other = "a5 LOGIN {50000}\r\n";
	assert_int_equal(imap_reader_feed(&r, other, strlen(other), &used), IMAP_RD_REFUSED);
	imap_reader_free(&r);
	/* Without append_literals (before login) an APPEND's literal is an ordinary one. */
	struct imap_reader_limits pre = { 1024, 4096, 16384, false };
	imap_reader_init(&r, &pre);
	assert_int_equal(imap_reader_feed(&r, app2, strlen(app2), &used), IMAP_RD_REFUSED);
	imap_reader_free(&r);
}

static void
cur(struct imap_p *p, char *buf, size_t bufsz, const char *s)
{
	size_t n = strlen(s);
	assert_true(n < bufsz);
	memcpy(buf, s, n + 1);
	imap_p_init(p, buf, n);
}

static void
test_cursor_strings(void **state)
{
	struct imap_p p;
	char buf[256], tag[IMAP_TAG_MAX + 1], name[IMAP_ATOM_MAX + 1], a[64], b[64];

	cur(&p, buf, sizeof(buf), "A001 login \"al\\\"ice\" {3}\r\nx\\y\r\n");
	assert_int_equal(imap_p_tag(&p, tag, sizeof(tag)), 0);
	assert_string_equal(tag, "A001");
	assert_int_equal(imap_p_sp(&p), 0);
	assert_int_equal(imap_p_atom_upper(&p, name, sizeof(name)), 0);
	assert_string_equal(name, "LOGIN");
	assert_int_equal(imap_p_sp(&p), 0);
	assert_int_equal(imap_p_astring(&p, a, sizeof(a)), 0);
	assert_string_equal(a, "al\"ice");
	assert_int_equal(imap_p_sp(&p), 0);
	assert_int_equal(imap_p_astring(&p, b, sizeof(b)), 0);
	assert_string_equal(b, "x\\y");
	assert_int_equal(imap_p_end(&p), 0);

	/* NUL, a bad escape, an unterminated string, 8-bit without UTF8=ACCEPT. */
	const char nul[] = "a LOGIN \"x\0y\" z\r\n";
	memcpy(buf, nul, sizeof(nul));
	imap_p_init(&p, buf, sizeof(nul) - 1);
	imap_p_tag(&p, tag, sizeof(tag));
	imap_p_sp(&p);
	imap_p_atom_upper(&p, name, sizeof(name));
	imap_p_sp(&p);
	assert_int_equal(imap_p_astring(&p, a, sizeof(a)), -1);
	assert_string_equal(p.err, "NUL in quoted string");
	cur(&p, buf, sizeof(buf), "\"a\\b\"\r\n");
	assert_int_equal(imap_p_astring(&p, a, sizeof(a)), -1);
	cur(&p, buf, sizeof(buf), "\"abc\r\n");
	assert_int_equal(imap_p_astring(&p, a, sizeof(a)), -1);
	cur(&p, buf, sizeof(buf), "\"caf\xc3\xa9\"\r\n");
	assert_int_equal(imap_p_astring(&p, a, sizeof(a)), -1);
	cur(&p, buf, sizeof(buf), "\"caf\xc3\xa9\"\r\n");
	p.utf8 = true;
	assert_int_equal(imap_p_astring(&p, a, sizeof(a)), 0);
	/* A literal announcing more than is there. */
	cur(&p, buf, sizeof(buf), "{10}\r\nabc\r\n");
	assert_int_equal(imap_p_astring(&p, a, sizeof(a)), -1);
	assert_string_equal(p.err, "literal shorter than announced");
	/* Too long for the caller's buffer. */
	cur(&p, buf, sizeof(buf), "abcdefgh\r\n");
	assert_int_equal(imap_p_astring(&p, a, 4), -1);
	/* A tag may not hold '+', '(' or '*'. */
	cur(&p, buf, sizeof(buf), "+x NOOP\r\n");
	assert_int_equal(imap_p_tag(&p, tag, sizeof(tag)), -1);
	/* NIL */
	struct imap_str s;
	cur(&p, buf, sizeof(buf), "NIL\r\n");
	assert_int_equal(imap_p_nstring(&p, &s), 0);
	assert_null(s.s);
	/* list-mailbox keeps the wildcards. */
	cur(&p, buf, sizeof(buf), "Lists.%]*\r\n");
	assert_int_equal(imap_p_list_mailbox(&p, a, sizeof(a)), 0);
	assert_string_equal(a, "Lists.%]*");
}

static void
test_cursor_lists_and_numbers(void **state)
{
	struct imap_p p;
	char buf[256];
	uint32_t n;
	uint64_t n64;

	/* Nesting is bounded. */
	char deep[128];
	memset(deep, '(', 40);
	memcpy(deep + 40, "\r\n", 3);
	cur(&p, buf, sizeof(buf), deep);
	int i, r = 0;
	for (i = 0; i < 40 && r == 0; i++)
		r = imap_p_list_open(&p);
	assert_int_equal(r, -1);
	assert_int_equal(i, IMAP_NEST_MAX + 1);
	assert_string_equal(p.err, "lists nested too deep");

	cur(&p, buf, sizeof(buf), "4294967295\r\n");
	assert_int_equal(imap_p_number(&p, &n), 0);
	assert_int_equal(n, 4294967295u);
	cur(&p, buf, sizeof(buf), "4294967296\r\n");
	assert_int_equal(imap_p_number(&p, &n), -1);
	cur(&p, buf, sizeof(buf), "0\r\n");
	assert_int_equal(imap_p_nz_number(&p, &n), -1);
	cur(&p, buf, sizeof(buf), "9223372036854775807\r\n");
	assert_int_equal(imap_p_number64(&p, &n64), 0);
	cur(&p, buf, sizeof(buf), "9223372036854775808\r\n");
	assert_int_equal(imap_p_number64(&p, &n64), -1);
	/* Flags */
	char f[32];
	cur(&p, buf, sizeof(buf), "\\Seen $Label \\*\r\n");
	assert_int_equal(imap_p_flag(&p, f, sizeof(f), false), 0);
	assert_string_equal(f, "\\Seen");
	imap_p_sp(&p);
	assert_int_equal(imap_p_flag(&p, f, sizeof(f), false), 0);
	assert_string_equal(f, "$Label");
	imap_p_sp(&p);
	assert_int_equal(imap_p_flag(&p, f, sizeof(f), true), 0);
	assert_string_equal(f, "\\*");
}

static void
test_seqsets(void **state)
{
	struct imap_p p;
	struct imap_seqset set;
	char buf[128];
	size_t pos = 0;
	uint32_t lo, hi;

	cur(&p, buf, sizeof(buf), "5:3,7,*:9,1:4294967295 ");
	assert_int_equal(imap_p_seqset(&p, &set), 0);
	assert_int_equal(imap_p_peek(&p), ' ');
	assert_true(imap_seqset_next(&set, &pos, 20, &lo, &hi));
	assert_int_equal(lo, 3);
	assert_int_equal(hi, 5);
	assert_true(imap_seqset_next(&set, &pos, 20, &lo, &hi));
	assert_int_equal(lo, 7);
	assert_int_equal(hi, 7);
	assert_true(imap_seqset_next(&set, &pos, 20, &lo, &hi));
	assert_int_equal(lo, 9);
	assert_int_equal(hi, 20);
	assert_true(imap_seqset_next(&set, &pos, 20, &lo, &hi));
	assert_int_equal(hi, 4294967295u);
	assert_false(imap_seqset_next(&set, &pos, 20, &lo, &hi));
	assert_true(imap_seqset_has(&set, 4, 20));
	assert_false(imap_seqset_has(&set, 0, 20));
	assert_int_equal(imap_seqset_max(&set, 20), 4294967295u);

	static const char *const bad[] = { "0", "1:0", ",1", "1,", "1::2", "4294967296", "a", "1:*:", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char t[32];
		snprintf(t, sizeof(t), "%s\r\n", bad[i]);
		cur(&p, buf, sizeof(buf), t);
		if (imap_p_seqset(&p, &set) == 0)
			assert_int_not_equal(imap_p_end(&p), 0);
	}
	cur(&p, buf, sizeof(buf), "$\r\n");
	assert_int_equal(imap_p_seqset(&p, &set), 0);
	assert_true(set.dollar);
	/* no saved callback: "$" is the empty set */
	pos = 0;
	assert_false(imap_seqset_next(&set, &pos, 20, &lo, &hi));
	assert_false(imap_seqset_has(&set, 1, 20));
	assert_int_equal(imap_seqset_max(&set, 20), 0);
}

/* SEARCHRES (RFC 5182): "$" is resolved by the session's callback into ranges, alone or last in a list. */
static const struct imap_seqrange saved_ranges[] = { { 2, 3 }, { 10, 10 }, { 40, 45 } };
static int saved_calls;

static int
saved_cb(void *arg, struct imap_seqset *set)
{
	saved_calls++;
	if (arg != NULL)
		return -1;   /* the session cannot resolve it */
	set->ranges = saved_ranges;
	set->nranges = 3;
	return 0;
}

static void
test_seqset_saved(void **state)
{
	struct imap_p p;
	struct imap_seqset set;
	char buf[128];
	size_t pos = 0;
	uint32_t lo, hi;

	saved_calls = 0;
	cur(&p, buf, sizeof(buf), "$ (FLAGS)\r\n");
	p.saved = saved_cb;
	assert_int_equal(imap_p_seqset(&p, &set), 0);
	assert_int_equal(imap_p_peek(&p), ' ');
	assert_int_equal(saved_calls, 1);
	assert_true(set.dollar);
	assert_true(imap_seqset_next(&set, &pos, 50, &lo, &hi));
	assert_int_equal(lo, 2);
	assert_int_equal(hi, 3);
	assert_true(imap_seqset_next(&set, &pos, 50, &lo, &hi));
	assert_true(imap_seqset_next(&set, &pos, 50, &lo, &hi));
	assert_int_equal(lo, 40);
	assert_false(imap_seqset_next(&set, &pos, 50, &lo, &hi));
	assert_true(imap_seqset_has(&set, 3, 50));
	assert_true(imap_seqset_has(&set, 10, 50));
	assert_true(imap_seqset_has(&set, 45, 50));
	assert_false(imap_seqset_has(&set, 4, 50));
	assert_false(imap_seqset_has(&set, 46, 50));
	assert_false(imap_seqset_has(&set, 1, 50));
	assert_int_equal(imap_seqset_max(&set, 50), 45);

	/* "1,7:8,$": the numbers, then the saved ranges */
	cur(&p, buf, sizeof(buf), "1,7:8,$\r\n");
	p.saved = saved_cb;
	assert_int_equal(imap_p_seqset(&p, &set), 0);
	assert_int_equal(imap_p_end(&p), 0);
	pos = 0;
	assert_true(imap_seqset_next(&set, &pos, 50, &lo, &hi));
	assert_int_equal(lo, 1);
	assert_true(imap_seqset_next(&set, &pos, 50, &lo, &hi));
	assert_int_equal(hi, 8);
	assert_true(imap_seqset_next(&set, &pos, 50, &lo, &hi));
	assert_int_equal(lo, 2);
	assert_true(imap_seqset_has(&set, 8, 50));
	assert_true(imap_seqset_has(&set, 42, 50));
	assert_false(imap_seqset_has(&set, 9, 50));
	assert_int_equal(imap_seqset_max(&set, 50), 45);

	/* "$" first in a list, or in a range, is not the grammar; a failing callback fails the set */
	static const char *const bad[] = { "$,1", "$:4", "1,$,2", "1:$", "3,$:4", "$$" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char t[32];
		snprintf(t, sizeof(t), "%s\r\n", bad[i]);
		cur(&p, buf, sizeof(buf), t);
		p.saved = saved_cb;
		if (imap_p_seqset(&p, &set) == 0)
			assert_int_not_equal(imap_p_end(&p), 0);
	}
	cur(&p, buf, sizeof(buf), "$\r\n");
	p.saved = saved_cb;
	p.saved_arg = &p;
	assert_int_equal(imap_p_seqset(&p, &set), -1);
	assert_non_null(p.err);
}

static void
test_dates(void **state)
{
	struct imap_p p;
	char buf[128];
	time_t t;
	cur(&p, buf, sizeof(buf), "\"17-Jul-1996 02:44:25 -0700\"\r\n");
	assert_int_equal(imap_p_date_time(&p, &t), 0);
	assert_int_equal((long long)t, 837596665LL);
	cur(&p, buf, sizeof(buf), "\" 1-Jan-2000 00:00:00 +0000\"\r\n");
	assert_int_equal(imap_p_date_time(&p, &t), 0);
	assert_int_equal((long long)t, 946684800LL);
	cur(&p, buf, sizeof(buf), "\"31-Feb-2000 00:00:00 +0000\"\r\n");
	assert_int_equal(imap_p_date_time(&p, &t), -1);
	cur(&p, buf, sizeof(buf), "1-Feb-1994\r\n");
	assert_int_equal(imap_p_date(&p, &t), 0);
	assert_int_equal((long long)t, 760060800LL);
	cur(&p, buf, sizeof(buf), "\"1-Feb-1994\"\r\n");
	assert_int_equal(imap_p_date(&p, &t), 0);
	cur(&p, buf, sizeof(buf), "1-Fob-1994\r\n");
	assert_int_equal(imap_p_date(&p, &t), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reader_lines_and_literals),
		cmocka_unit_test(test_reader_refuses_by_announcement),
		cmocka_unit_test(test_cursor_strings),
		cmocka_unit_test(test_cursor_lists_and_numbers),
		cmocka_unit_test(test_seqsets),
		cmocka_unit_test(test_seqset_saved),
		cmocka_unit_test(test_dates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
