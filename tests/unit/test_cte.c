/*
 * test_cte.c - the Content-Transfer-Encoding decoders (mail/cte.c): base64
 * with line breaks, junk, missing or early padding; quoted-printable soft
 * line breaks, lowercase hex, broken escapes, trailing blanks and a
 * trailing "="; identity line ends; every input fed whole and byte by byte
 * must decode the same; the field value parser; the store round-trip check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "mail/cte.h"

/* Decode in pieces of step bytes (0: all at once); returns a malloc'd buffer and its length and error count. */
static char *
decode(enum mc_cte cte, bool text, const char *in, size_t n, size_t step, size_t *outlen, unsigned *errors)
{
	struct mc_cte_dec d;
	mc_cte_dec_init(&d, cte, text);
	char *out = malloc(mc_cte_dec_bound(n) + MC_CTE_SLACK);
	size_t k = 0;
	if (step == 0)
		step = n ? n : 1;
	for (size_t i = 0; i < n; i += step) {
		size_t m = n - i < step ? n - i : step;
		k += mc_cte_dec_update(&d, in + i, m, out + k);
	}
	k += mc_cte_dec_final(&d, out + k);
	out[k] = '\0';
	*outlen = k;
	if (errors)
		*errors = d.errors;
	return out;
}

/* Decoded whole and byte by byte, in must give want (wlen bytes) with nerr errors. */
static void
expect(enum mc_cte cte, bool text, const char *in, const char *want, size_t wlen, unsigned nerr)
{
	size_t steps[] = { 0, 1, 2, 3, 5, 7 };
	for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
		size_t n;
		unsigned errors;
		char *out = decode(cte, text, in, strlen(in), steps[s], &n, &errors);
		if (n != wlen || memcmp(out, want, wlen) != 0)
			fail_msg("step %zu: %s decoded to [%.*s] (%zu), want [%.*s] (%zu)", steps[s], in, (int)n, out, n,
				 (int)wlen, want, wlen);
		assert_int_equal(errors, nerr);
		free(out);
	}
}

#define EXPECT(cte, text, in, want, nerr) expect(cte, text, in, want, sizeof(want) - 1, nerr)

static void
test_base64(void **state)
{
	EXPECT(MC_CTE_BASE64, false, "SGVsbG8=", "Hello", 0);
	EXPECT(MC_CTE_BASE64, false, "SGVs\nbG8g\r\nd29y\nbGQ=\n", "Hello world", 0);
	EXPECT(MC_CTE_BASE64, false, "SGVsbA==", "Hell", 0);
	EXPECT(MC_CTE_BASE64, false, "", "", 0);
	EXPECT(MC_CTE_BASE64, false, "AAEC", "\x00\x01\x02", 0);
	/* a longer run than one batch */
	char big[4 * 200 + 1];
	char want[3 * 200];
	for (int i = 0; i < 200; i++) {
		memcpy(big + 4 * i, "QUJD", 4);
		memcpy(want + 3 * i, "ABC", 3);
	}
	big[800] = '\0';
	expect(MC_CTE_BASE64, false, big, want, sizeof(want), 0);
	(void)state;
}

static void
test_base64_bad(void **state)
{
	/* junk outside the alphabet is ignored (RFC 2045 6.8), and counted */
	EXPECT(MC_CTE_BASE64, false, "SG!Vs*bG8=", "Hello", 2);
	/* no padding at the end: decoded as if padded */
	EXPECT(MC_CTE_BASE64, false, "SGVsbG8", "Hello", 1);
	EXPECT(MC_CTE_BASE64, false, "SGVsbA", "Hell", 1);
	/* one lone character is dropped */
	EXPECT(MC_CTE_BASE64, false, "SGVsbG8hS", "Hello!", 1);
	/* data after padding: concatenated base64 goes on */
	EXPECT(MC_CTE_BASE64, false, "SGk=SGk=", "HiHi", 0);
	EXPECT(MC_CTE_BASE64, false, "SGk==\nIQ==", "Hi!", 0);
	/* stray padding with no group open */
	EXPECT(MC_CTE_BASE64, false, "====", "", 0);
	(void)state;
}

static void
test_base64_text_line_ends(void **state)
{
	/* "a\nb\r\nc\n" */
	EXPECT(MC_CTE_BASE64, true, "YQpiDQpjCg==", "a\r\nb\r\nc\r\n", 0);
	EXPECT(MC_CTE_BASE64, false, "YQpiDQpjCg==", "a\nb\r\nc\n", 0);
	(void)state;
}

static void
test_qp(void **state)
{
	EXPECT(MC_CTE_QP, true, "Caf=E9 au lait", "Caf\xe9 au lait", 0);
	/* lowercase hex is taken */
	EXPECT(MC_CTE_QP, true, "=3d=3D=c3=a9", "==\xc3\xa9", 0);
	/* soft line breaks, LF and CRLF */
	EXPECT(MC_CTE_QP, true, "extra=\nordinary", "extraordinary", 0);
	EXPECT(MC_CTE_QP, true, "extra=\r\nordinary\r\n", "extraordinary\r\n", 0);
	/* "=" then blanks then the line end is a soft line break too */
	EXPECT(MC_CTE_QP, true, "a= \t\nb", "ab", 0);
	/* hard line breaks become CRLF, trailing blanks go */
	EXPECT(MC_CTE_QP, true, "one  \ntwo\t\r\nthree", "one\r\ntwo\r\nthree", 0);
	/* blanks inside a line stay */
	EXPECT(MC_CTE_QP, true, "a  b", "a  b", 0);
	/* a trailing "=" at the end of the data: a soft line break */
	EXPECT(MC_CTE_QP, true, "last line=", "last line", 0);
	EXPECT(MC_CTE_QP, true, "last line=  ", "last line", 0);
	/* blanks at the very end are trailing ones */
	EXPECT(MC_CTE_QP, true, "end   ", "end", 0);
	/* an encoded CRLF */
	EXPECT(MC_CTE_QP, false, "a=0D=0Ab", "a\r\nb", 0);
	(void)state;
}

static void
test_qp_bad(void **state)
{
	/* an "=" without two hex digits stays as written */
	EXPECT(MC_CTE_QP, true, "a=G1b", "a=G1b", 1);
	EXPECT(MC_CTE_QP, true, "a=4", "a=4", 1);
	EXPECT(MC_CTE_QP, true, "a=4x", "a=4x", 1);
	EXPECT(MC_CTE_QP, true, "100% = sure", "100% = sure", 1);
	EXPECT(MC_CTE_QP, true, "x==41", "x=A", 1);
	/* a lone CR is data */
	EXPECT(MC_CTE_QP, false, "a\rb", "a\rb", 0);
	EXPECT(MC_CTE_QP, false, "a\r", "a\r", 0);
	/* a long run of blanks inside a line is kept, bounded */
	char in[2 * MC_CTE_WS_MAX + 3], want[2 * MC_CTE_WS_MAX + 3];
	in[0] = want[0] = 'a';
	memset(in + 1, ' ', 2 * MC_CTE_WS_MAX);
	memset(want + 1, ' ', 2 * MC_CTE_WS_MAX);
	in[2 * MC_CTE_WS_MAX + 1] = want[2 * MC_CTE_WS_MAX + 1] = 'b';
	in[2 * MC_CTE_WS_MAX + 2] = '\0';
	expect(MC_CTE_QP, true, in, want, 2 * MC_CTE_WS_MAX + 2, 0);
	(void)state;
}

static void
test_identity(void **state)
{
	EXPECT(MC_CTE_7BIT, false, "a\nb\r\nc", "a\r\nb\r\nc", 0);
	EXPECT(MC_CTE_BINARY, false, "\n\n", "\r\n\r\n", 0);
	EXPECT(MC_CTE_8BIT, true, "caf\xc3\xa9=41", "caf\xc3\xa9=41", 0);
	(void)state;
}

static void
test_parse(void **state)
{
	assert_int_equal(mc_cte_parse(NULL), MC_CTE_7BIT);
	assert_int_equal(mc_cte_parse(""), MC_CTE_7BIT);
	assert_int_equal(mc_cte_parse("7bit"), MC_CTE_7BIT);
	assert_int_equal(mc_cte_parse("8BIT"), MC_CTE_8BIT);
	assert_int_equal(mc_cte_parse("Binary"), MC_CTE_BINARY);
	assert_int_equal(mc_cte_parse(" BASE64 "), MC_CTE_BASE64);
	assert_int_equal(mc_cte_parse("base64 (the usual)\r\n"), MC_CTE_BASE64);
	assert_int_equal(mc_cte_parse("(x) quoted-printable"), MC_CTE_QP);
	assert_int_equal(mc_cte_parse("\r\n\tQuoted-Printable"), MC_CTE_QP);
	assert_int_equal(mc_cte_parse("x-uuencode"), MC_CTE_UNKNOWN);
	assert_int_equal(mc_cte_parse("base64 junk"), MC_CTE_UNKNOWN);
	assert_int_equal(mc_cte_parse("base-64"), MC_CTE_UNKNOWN);
	assert_int_equal(mc_cte_parse("a-token-far-too-long-to-be-any-encoding"), MC_CTE_UNKNOWN);
	(void)state;
}

static bool
keeps(const char *s, size_t n)
{
	unsigned t = 0;
	bool whole = mc_cte_store_keeps(s, n, &t);
	/* byte by byte must agree */
	t = 0;
	bool pieces = true;
	for (size_t i = 0; i < n && pieces; i++)
		pieces = mc_cte_store_keeps(s + i, 1, &t);
	assert_int_equal(whole, pieces);
	return whole;
}

static void
test_store_keeps(void **state)
{
	assert_true(keeps("a\r\nb\r\n\x00\xff", 7));
	assert_true(keeps("", 0));
	assert_true(keeps("a\rb", 3));
	assert_true(keeps("\r\n\r\n", 4));
	assert_false(keeps("a\nb", 3));
	assert_false(keeps("\n", 1));
	assert_false(keeps("a\r\r\nb", 5));
	assert_false(keeps("\r\n\n", 3));
	(void)state;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_base64_bad),
		cmocka_unit_test(test_base64_text_line_ends),
		cmocka_unit_test(test_qp),
		cmocka_unit_test(test_qp_bad),
		cmocka_unit_test(test_identity),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_store_keeps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
