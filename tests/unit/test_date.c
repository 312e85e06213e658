/*
 * test_date.c - RFC 5322 dates with their obsolete forms, zones and
 * garbage; IMAP date-time and SEARCH dates, both ways.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "mail/date.h"

static int64_t
d5322(const char *s, int *tz)
{
	int64_t t;
	int z;
	if (mc_date_parse_rfc5322(s, strlen(s), &t, &z) < 0)
		return -1;
	if (tz)
		*tz = z;
	return t;
}

static void
test_rfc5322(void **state)
{
	int tz;
	/* 2026-11-26 10:00:00 UTC */
	const int64_t base = 1795687200;
	assert_int_equal(d5322("Thu, 26 Nov 2026 10:00:00 +0000", &tz), base);
	assert_int_equal(tz, 0);
	assert_int_equal(d5322("26 Nov 2026 11:30:00 +0130", &tz), base);
	assert_int_equal(tz, 90);
	assert_int_equal(d5322("Thu, 26 Nov 2026 05:00:00 -0500 (EST)", &tz), base);
	assert_int_equal(tz, -300);
	/* obsolete: two-digit year, no seconds, named zone */
	assert_int_equal(d5322("26 Nov 26 05:00 EST", &tz), base);
	assert_int_equal(tz, -300);
	assert_int_equal(d5322("Thursday, 26 Nov 2026 02:00:00 PST", NULL), base);
	assert_int_equal(d5322("26 Nov 2026 10:00:00 GMT", NULL), base);
	assert_int_equal(d5322("26 Nov 2026 10:00:00 Z", NULL), base);
	assert_int_equal(d5322("26 Nov 2026 10:00:00 A", NULL), base);   /* military: +0000 (RFC 5322 4.3) */
	assert_int_equal(d5322("26 Nov 2026 10:00:00", NULL), base);     /* no zone */
	assert_int_equal(d5322("  26  nov  2026  10 : 00 : 00  +0000 ", NULL), base);
	assert_int_equal(d5322("1 Jan 70 00:00:00 +0000", NULL), 0);
	assert_int_equal(d5322("1 Jan 49 00:00:00 +0000", NULL), 2493072000LL);   /* 2049 */
	assert_int_equal(d5322("1 Jan 050 00:00:00 +0000", NULL), -631152000LL);  /* three digits: 1950 */
	assert_int_equal(d5322("29 Feb 2024 00:00:00 +0000", NULL), 1709164800LL);
	assert_int_equal(d5322("29 Feb 2023 00:00:00 +0000", NULL), -1);
	assert_int_equal(d5322("31 Apr 2026 00:00:00 +0000", NULL), -1);
	assert_int_equal(d5322("26 Foo 2026 10:00:00 +0000", NULL), -1);
	assert_int_equal(d5322("26 Nov 2026 25:00:00 +0000", NULL), -1);
	assert_int_equal(d5322("26 Nov 2026 10:00:00 +00", NULL), -1);
	assert_int_equal(d5322("", NULL), -1);
	assert_int_equal(d5322("Thu,", NULL), -1);
	assert_int_equal(d5322("99999999999999999999 Nov 2026", NULL), -1);
}

static void
test_imap_format_parse(void **state)
{
	char out[MC_DATE_IMAP_LEN + 1];
	mc_date_format_imap(1795687200, 60, out);
	assert_string_equal(out, "26-Nov-2026 11:00:00 +0100");
	mc_date_format_imap(0, -330, out);
	assert_string_equal(out, "31-Dec-1969 18:30:00 -0530");
	mc_date_format_imap(760060800, 0, out);
	assert_string_equal(out, " 1-Feb-1994 00:00:00 +0000");
	int64_t t;
	int tz;
	assert_int_equal(mc_date_parse_imap(" 1-Feb-1994 00:00:00 +0000", 26, &t, &tz), 0);
	assert_int_equal(t, 760060800);
	assert_int_equal(mc_date_parse_imap("01-Feb-1994 01:00:00 +0100", 26, &t, &tz), 0);
	assert_int_equal(t, 760060800);
	assert_int_equal(tz, 60);
	assert_int_equal(mc_date_parse_imap("1-Feb-1994 00:00:00 +0000", 25, &t, &tz), 0);
	const char *bad[] = { "01-Feb-1994 00:00:00", "01-Feb-94 00:00:00 +0000", "32-Jan-1994 00:00:00 +0000",
			      "01-Fex-1994 00:00:00 +0000", "01-Feb-1994 0:00:00 +0000", "01-Feb-1994 00:00:00 +000",
			      "01-Feb-1994 00:00:00 +0000x", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(mc_date_parse_imap(bad[i], strlen(bad[i]), &t, &tz), -1);
	/* round trip */
	for (int64_t x = -86400 * 400; x < 86400LL * 365 * 60; x += 86400 * 37 + 3607) {
		mc_date_format_imap(x, -480, out);
		assert_int_equal(mc_date_parse_imap(out, strlen(out), &t, &tz), 0);
		assert_int_equal(t, x);
		assert_int_equal(tz, -480);
	}
}

static void
test_search_day(void **state)
{
	int64_t d;
	assert_int_equal(mc_date_parse_imap_day("1-Feb-1994", 10, &d), 0);
	assert_int_equal(d, 760060800);
	assert_int_equal(mc_date_parse_imap_day("01-feb-1994", 11, &d), 0);
	assert_int_equal(d, 760060800);
	assert_int_equal(mc_date_parse_imap_day("1-Feb-1994 ", 11, &d), -1);
	assert_int_equal(mc_date_parse_imap_day("1-Feb-94", 8, &d), -1);
	assert_int_equal(mc_date_parse_imap_day("30-Feb-1994", 11, &d), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc5322),
		cmocka_unit_test(test_imap_format_parse),
		cmocka_unit_test(test_search_day),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
