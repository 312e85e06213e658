/*
 * test_sasl.c - SASL decoding (mail/sasl) and bounded line taking
 * (util/line): base64 alphabet and padding, "*" and "=", PLAIN messages
 * with and without authzid, malformed ones; lines split across reads,
 * overlong lines dropped to bounded memory, NUL bytes kept.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mail/sasl.h"
#include "util/line.h"

static void
test_b64(void **state)
{
	unsigned char out[MC_SASL_DECODED_MAX];
	size_t n;
	assert_int_equal(mc_sasl_b64decode("Zm9v", 4, out, sizeof(out), &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "foo", 3);
	assert_int_equal(mc_sasl_b64decode("Zm8=", 4, out, sizeof(out), &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(mc_sasl_b64decode("Zg==", 4, out, sizeof(out), &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(mc_sasl_b64decode("", 0, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(mc_sasl_b64decode("Zm9", 3, out, sizeof(out), &n), -1);     /* no padding */
	assert_int_equal(mc_sasl_b64decode("Z=9v", 4, out, sizeof(out), &n), -1);    /* '=' inside */
	assert_int_equal(mc_sasl_b64decode("Zm 9", 4, out, sizeof(out), &n), -1);    /* blank */
	assert_int_equal(mc_sasl_b64decode("Zm9v", 4, out, 2, &n), -1);              /* no room */
	(void)state;
}

static void
test_response(void **state)
{
	unsigned char out[MC_SASL_DECODED_MAX];
	size_t n;
	assert_int_equal(mc_sasl_response("*", 1, out, sizeof(out), &n), MC_SASL_ABORT);
	assert_int_equal(mc_sasl_response("=", 1, out, sizeof(out), &n), MC_SASL_OK);
	assert_int_equal(n, 0);
	assert_int_equal(mc_sasl_response("!!!!", 4, out, sizeof(out), &n), MC_SASL_BAD);
	assert_int_equal(mc_sasl_response("dXNlcg==", 8, out, sizeof(out), &n), MC_SASL_OK);
	assert_string_equal((char *)out, "user");
	(void)state;
}

static void
test_plain(void **state)
{
	unsigned char m[64];
	const char *u, *p;
	memcpy(m, "\0bob\0secret", 11);
	assert_int_equal(mc_sasl_plain(m, 11, &u, &p), MC_SASL_OK);
	assert_string_equal(u, "bob");
	assert_string_equal(p, "secret");
	memcpy(m, "bob\0bob\0pw", 10);
	assert_int_equal(mc_sasl_plain(m, 10, &u, &p), MC_SASL_OK);
	memcpy(m, "eve\0bob\0pw", 10);
	assert_int_equal(mc_sasl_plain(m, 10, &u, &p), MC_SASL_REFUSED);
	memcpy(m, "\0\0pw", 4);
	assert_int_equal(mc_sasl_plain(m, 4, &u, &p), MC_SASL_REFUSED);
	memcpy(m, "bobpw", 5);
	assert_int_equal(mc_sasl_plain(m, 5, &u, &p), MC_SASL_BAD);
	memcpy(m, "\0bob\0pw\0x", 9);
	assert_int_equal(mc_sasl_plain(m, 9, &u, &p), MC_SASL_BAD);
	(void)state;
}

static void
test_lines(void **state)
{
	struct mc_buf in;
	struct mc_line l = { 0 };
	char out[9];
	size_t n;
	mc_buf_init(&in, 64);
	mc_buf_adds(&in, "USER a\r\nNO");
	assert_int_equal(mc_line_take(&l, &in, 8, out, &n), MC_LINE_OK);
	assert_string_equal(out, "USER a");
	assert_int_equal(mc_line_take(&l, &in, 8, out, &n), MC_LINE_NONE);
	mc_buf_adds(&in, "OP\n");
	assert_int_equal(mc_line_take(&l, &in, 8, out, &n), MC_LINE_OK);
	assert_string_equal(out, "NOOP");
	/* Overlong: dropped as it comes, reported once at its LF, then the next line is fine. */
	mc_buf_adds(&in, "0123456789abcdef");
	assert_int_equal(mc_line_take(&l, &in, 8, out, &n), MC_LINE_NONE);
	assert_true(in.len <= 10);
	mc_buf_adds(&in, "xyz\r\nQUIT\r\n");
	assert_int_equal(mc_line_take(&l, &in, 8, out, &n), MC_LINE_TOOLONG);
	assert_int_equal(mc_line_take(&l, &in, 8, out, &n), MC_LINE_OK);
	assert_string_equal(out, "QUIT");
	/* A NUL is kept, the length tells. */
	mc_buf_add(&in, "A\0B\n", 4);
	assert_int_equal(mc_line_take(&l, &in, 8, out, &n), MC_LINE_OK);
	assert_int_equal(n, 3);
	mc_buf_free(&in);
	(void)state;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64),
		cmocka_unit_test(test_response),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
