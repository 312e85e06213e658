/*
 * passwd.c - crypt(3) password hashes (see passwd.h).
 *
 * libxcrypt does the hashing: crypt_gensalt_rn for a yescrypt setting with
 * salt from the library's default entropy source, crypt_rn with a caller-
 * owned struct crypt_data so the functions are thread-safe (resolverd runs
 * verification on the libuv threadpool). The struct is 32 KiB, so it lives
 * on the heap, and it is wiped before it is freed because it held the
 * password. Nothing here logs.
 */
#include "util/passwd.h"

#include <crypt.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Dovecot's names for the schemes that are crypt(3) formats, and the hash
 * prefix each implies ("" = any format libxcrypt knows).
 */
static const struct {
	const char *scheme;
	const char *prefix;
} schemes[] = {
	{ "{CRYPT}", "" },
	{ "{SHA512-CRYPT}", "$6$" },
	{ "{SHA256-CRYPT}", "$5$" },
	{ "{BLF-CRYPT}", "$2" },
	{ "{MD5-CRYPT}", "$1$" },
};

/*
 * Point past a scheme prefix. NULL when the hash has a scheme that is not a
 * crypt format (Dovecot's {PLAIN}, {SSHA}, ...) or one that disagrees with
 * the hash after it.
 */
static const char *
strip_scheme(const char *hash)
{
	if (hash[0] != '{')
		return hash;
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		size_t n = strlen(schemes[i].scheme);
		if (strncmp(hash, schemes[i].scheme, n) != 0)
			continue;
		if (strncmp(hash + n, schemes[i].prefix, strlen(schemes[i].prefix)) != 0)
			return NULL;
		return hash + n;
	}
	return NULL;
}

/* crypt_rn into a fresh heap crypt_data; the result is copied to out. 0, or -1. */
static int
run_crypt(const char *password, const char *setting, char *out, size_t outsz)
{
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	if (cd == NULL)
		return -1;
	int rc = -1;
	const char *r = crypt_rn(password, setting, cd, sizeof(*cd));
	if (r != NULL && r[0] != '*' && strlen(r) < outsz) {
		memcpy(out, r, strlen(r) + 1);
		rc = 0;
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return rc;
}

static bool
password_ok(const char *password)
{
	size_t n = strnlen(password, MC_PASSWD_MAX + 1);
	return n > 0 && n <= MC_PASSWD_MAX;
}

int
mc_passwd_hash(const char *password, char *out, size_t outsz, char *err, size_t errsz)
{
	if (!password_ok(password)) {
		snprintf(err, errsz, "a password must be 1 to %d bytes long", MC_PASSWD_MAX);
		return -1;
	}
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof(setting)) == NULL) {
		snprintf(err, errsz, "cannot make a yescrypt salt: %s", strerror(errno));
		return -1;
	}
	char h[CRYPT_OUTPUT_SIZE];
	int rc = run_crypt(password, setting, h, sizeof(h));
	if (rc == 0 && strlen(h) >= outsz)
		rc = -1;
	if (rc != 0) {
		snprintf(err, errsz, "yescrypt hashing failed");
		explicit_bzero(h, sizeof(h));
		return -1;
	}
	memcpy(out, h, strlen(h) + 1);
	explicit_bzero(h, sizeof(h));
	return 0;
}

bool
mc_passwd_verify(const char *password, const char *hash)
{
	if (password == NULL || hash == NULL || !password_ok(password))
		return false;
	const char *h = strip_scheme(hash);
	if (h == NULL)
		return false;
	size_t hlen = strnlen(h, CRYPT_OUTPUT_SIZE);
	if (hlen == 0 || hlen >= CRYPT_OUTPUT_SIZE || h[0] == '*' || h[0] == '!')
		return false;
	char r[CRYPT_OUTPUT_SIZE];
	if (run_crypt(password, h, r, sizeof(r)) != 0)
		return false;
	/* The lengths of hashes are no secret; their bytes are compared in constant time. */
	bool ok = strlen(r) == hlen && CRYPTO_memcmp(r, h, hlen) == 0;
	explicit_bzero(r, sizeof(r));
	return ok;
}

int
mc_passwd_import(const char *in, char *out, size_t outsz, char *err, size_t errsz)
{
	const char *h = strip_scheme(in);
	if (h == NULL) {
		size_t n = strcspn(in, "}");
		snprintf(err, errsz,
			 "unsupported password scheme %.*s: give a crypt(3) hash (yescrypt, SHA512-CRYPT, "
			 "SHA256-CRYPT, BLF-CRYPT)", (int)(n < 32 ? n + 1 : 32), in);
		return -1;
	}
	size_t hlen = strnlen(h, CRYPT_OUTPUT_SIZE);
	if (hlen == 0 || hlen >= CRYPT_OUTPUT_SIZE || hlen >= outsz) {
		snprintf(err, errsz, "not a crypt(3) hash: empty or too long");
		return -1;
	}
	for (size_t i = 0; i < hlen; i++) {
		unsigned char c = (unsigned char)h[i];
		if (c <= ' ' || c >= 0x7f || c == ':') {
			snprintf(err, errsz, "not a crypt(3) hash: it contains spaces or control characters");
			return -1;
		}
	}
	int cs = crypt_checksalt(h);
	if (cs != CRYPT_SALT_OK && cs != CRYPT_SALT_METHOD_LEGACY) {
		snprintf(err, errsz, "not a crypt(3) hash this system can verify");
		return -1;
	}
	/* A complete hash re-hashes to a string of its own length; a bare setting does not. */
	char r[CRYPT_OUTPUT_SIZE];
	if (run_crypt("postern-import-check", h, r, sizeof(r)) != 0 || strlen(r) != hlen) {
		snprintf(err, errsz, "not a complete crypt(3) hash");
		return -1;
	}
	memcpy(out, h, hlen + 1);
	return 0;
}
