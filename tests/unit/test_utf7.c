/*
 * test_utf7.c - modified UTF-7 (RFC 3501 5.1.3): the RFC's examples,
 * astral characters, round trips, and every non-canonical or broken form a
 * client might send.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "mail/utf7imap.h"

static void
enc_is(const char *utf8, const char *want)
{
	char out[256];
	assert_int_equal(mc_utf7imap_encode(utf8, strlen(utf8), out, sizeof(out)), (int)strlen(want));
	assert_string_equal(out, want);
	char back[256];
	assert_int_equal(mc_utf7imap_decode(out, strlen(out), back, sizeof(back)), (int)strlen(utf8));
	assert_string_equal(back, utf8);
}

static void
test_encode_examples(void **state)
{
	enc_is("INBOX", "INBOX");
	enc_is("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
	       "~peter/mail/&U,BTFw-/&ZeVnLIqe-");   /* RFC 3501's example */
	enc_is("&", "&-");
	enc_is("A&B", "A&-B");
	enc_is("Gr\xc3\xbc\xc3\x9f" "e", "Gr&APwA3w-e");
	enc_is("\xf0\x9f\x98\x80", "&2D3eAA-");   /* U+1F600, a surrogate pair */
	enc_is("a\tb", "a&AAk-b");
	enc_is("", "");
}

static void
test_encode_rejects(void **state)
{
	char out[8];
	assert_int_equal(mc_utf7imap_encode("\xff", 1, out, sizeof(out)), -1);
	assert_int_equal(mc_utf7imap_encode("\xc3", 1, out, sizeof(out)), -1);
	assert_int_equal(mc_utf7imap_encode("\xed\xa0\x80", 3, out, sizeof(out)), -1);   /* UTF-8 surrogate */
	assert_int_equal(mc_utf7imap_encode("a\0b", 3, out, sizeof(out)), -1);
	assert_int_equal(mc_utf7imap_encode("0123456789", 10, out, sizeof(out)), -1);   /* too long */
}

static void
test_decode_rejects(void **state)
{
	const char *bad[] = {
		"&",          /* no '-' */
		"&U,BTFw",    /* no '-' */
		"&AGE-",      /* 'a' encoded */
		"&AAA-",      /* NUL */
		"&U,BTFw-&ZeVnLIqe-",   /* needlessly split */
		"&2D3-",      /* lone high surrogate */
		"&3gA-",      /* lone low surrogate */
		"&U,BTF-",    /* leftover bits not zero / partial unit */
		"&U/BTFw-",   /* '/' is ',' in modified UTF-7 */
		"a\x80",
		"a\tb",
		"&-&",
	};
	char out[64];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (mc_utf7imap_decode(bad[i], strlen(bad[i]), out, sizeof(out)) != -1)
			fail_msg("accepted %s", bad[i]);
	assert_int_equal(mc_utf7imap_decode("&-&-", 4, out, sizeof(out)), 2);
	assert_int_equal(mc_utf7imap_decode("abcdef", 6, out, 4), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_examples),
		cmocka_unit_test(test_encode_rejects),
		cmocka_unit_test(test_decode_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
