/*
 * test_passwd.c - crypt(3) password hashes: yescrypt for new ones, and the
 * formats carried over from Dovecot (SHA512-CRYPT, bcrypt, scheme prefixes).
 *
 * The known hashes were made when this test was written, outside Postern:
 *   openssl passwd -6 -salt saltsaltsalt 'Secret-Pass1'
 *   python3 -c 'import crypt; print(crypt.crypt("Secret-Pass1", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))'
 *   python3 -c 'import crypt; print(crypt.crypt("Secret-Pass1", "$2y$05$abcdefghijklmnopqrstuu"))'
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "util/passwd.h"

#define SHA512_HASH                                                                                    \
	"$6$saltsaltsalt$zB6Twk2LCyOr9nIp4jb.XseXmAlBM2v/3cTZ36xVcA2fqlqzrmMgwUz0PEn38G8TfXZrIzS3g4itia3DUjXBb0"
#define BCRYPT_2B "$2b$04$bo6wbeXwsLHNY.DiPTPmbuF11kAm9hpwWevxBxvvfVKsrQDN6RsRG"
#define BCRYPT_2Y "$2y$05$abcdefghijklmnopqrstuuUf2JQ97l/u14nYw/kU.PWtlcIM3aO7S"

static void
test_yescrypt_roundtrip(void **state)
{
	char h[MC_PASSWD_HASH_MAX], h2[MC_PASSWD_HASH_MAX], err[128];
	assert_int_equal(mc_passwd_hash("correct horse", h, sizeof(h), err, sizeof(err)), 0);
	assert_memory_equal(h, "$y$", 3);
	assert_true(mc_passwd_verify("correct horse", h));
	assert_false(mc_passwd_verify("correct horsE", h));
	assert_false(mc_passwd_verify("correct hors", h));
	assert_false(mc_passwd_verify("", h));
	/* A fresh salt every time. */
	assert_int_equal(mc_passwd_hash("correct horse", h2, sizeof(h2), err, sizeof(err)), 0);
	assert_string_not_equal(h, h2);
	assert_true(mc_passwd_verify("correct horse", h2));
}

static void
test_hash_refuses_bad_input(void **state)
{
	char h[MC_PASSWD_HASH_MAX], err[128];
	assert_int_equal(mc_passwd_hash("", h, sizeof(h), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "password"));
	char small[10];
	assert_int_equal(mc_passwd_hash("x", small, sizeof(small), err, sizeof(err)), -1);
	static char big[MC_PASSWD_MAX + 2];
	memset(big, 'a', sizeof(big) - 1);
	assert_int_equal(mc_passwd_hash(big, h, sizeof(h), err, sizeof(err)), -1);
	assert_false(mc_passwd_verify(big, SHA512_HASH));
}

static void
test_known_sha512_and_bcrypt(void **state)
{
	assert_true(mc_passwd_verify("Secret-Pass1", SHA512_HASH));
	assert_false(mc_passwd_verify("Secret-Pass2", SHA512_HASH));
	assert_true(mc_passwd_verify("Secret-Pass1", BCRYPT_2B));
	assert_false(mc_passwd_verify("secret-Pass1", BCRYPT_2B));
	assert_true(mc_passwd_verify("Secret-Pass1", BCRYPT_2Y));
	assert_false(mc_passwd_verify("Secret-Pass", BCRYPT_2Y));
}

static void
test_scheme_prefixes(void **state)
{
	assert_true(mc_passwd_verify("Secret-Pass1", "{SHA512-CRYPT}" SHA512_HASH));
	assert_true(mc_passwd_verify("Secret-Pass1", "{CRYPT}" SHA512_HASH));
	assert_true(mc_passwd_verify("Secret-Pass1", "{BLF-CRYPT}" BCRYPT_2Y));
	assert_false(mc_passwd_verify("Secret-Pass1", "{BLF-CRYPT}" SHA512_HASH));  /* scheme and hash disagree */
	assert_false(mc_passwd_verify("Secret-Pass1", "{PLAIN}Secret-Pass1"));
	assert_false(mc_passwd_verify("Secret-Pass1", "{SSHA}" SHA512_HASH));

	char out[MC_PASSWD_HASH_MAX], err[200];
	assert_int_equal(mc_passwd_import("{SHA512-CRYPT}" SHA512_HASH, out, sizeof(out), err, sizeof(err)), 0);
	assert_string_equal(out, SHA512_HASH);
	assert_int_equal(mc_passwd_import("{BLF-CRYPT}" BCRYPT_2Y, out, sizeof(out), err, sizeof(err)), 0);
	assert_string_equal(out, BCRYPT_2Y);
	assert_int_equal(mc_passwd_import(BCRYPT_2B, out, sizeof(out), err, sizeof(err)), 0);
	assert_string_equal(out, BCRYPT_2B);
	assert_int_equal(mc_passwd_import("{CRYPT}" SHA512_HASH, out, sizeof(out), err, sizeof(err)), 0);
	assert_string_equal(out, SHA512_HASH);
}

static void
test_import_refuses(void **state)
{
	char out[MC_PASSWD_HASH_MAX], err[200];
	assert_int_equal(mc_passwd_import("{PLAIN}hunter2", out, sizeof(out), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unsupported password scheme {PLAIN}"));
	assert_int_equal(mc_passwd_import("hunter2", out, sizeof(out), err, sizeof(err)), -1);
	assert_int_equal(mc_passwd_import("", out, sizeof(out), err, sizeof(err)), -1);
	/* A setting, without the hash. */
	assert_int_equal(mc_passwd_import("$6$saltsaltsalt", out, sizeof(out), err, sizeof(err)), -1);
	assert_int_equal(mc_passwd_import("$6$salt salt$abc", out, sizeof(out), err, sizeof(err)), -1);
	/* A truncated hash is not complete. */
	char cut[sizeof(SHA512_HASH)];
	memcpy(cut, SHA512_HASH, sizeof(cut));
	cut[sizeof(cut) - 5] = '\0';
	assert_int_equal(mc_passwd_import(cut, out, sizeof(out), err, sizeof(err)), -1);
}

static void
test_malformed_hashes_never_verify(void **state)
{
	assert_false(mc_passwd_verify("x", ""));
	assert_false(mc_passwd_verify("x", "*"));
	assert_false(mc_passwd_verify("x", "!locked"));
	assert_false(mc_passwd_verify("x", "$y$"));
	assert_false(mc_passwd_verify("x", "$9$nonsense"));
	assert_false(mc_passwd_verify(NULL, SHA512_HASH));
	assert_false(mc_passwd_verify("x", NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_yescrypt_roundtrip),
		cmocka_unit_test(test_hash_refuses_bad_input),
		cmocka_unit_test(test_known_sha512_and_bcrypt),
		cmocka_unit_test(test_scheme_prefixes),
		cmocka_unit_test(test_import_refuses),
		cmocka_unit_test(test_malformed_hashes_never_verify),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
