/*
 * test_tls.c - TLS contexts: the self-signed certificate maker (files,
 * modes, names, idempotence), loading, reload keeping the old context on
 * failure, a key that does not match its certificate, and reload from
 * passed descriptors (what `postern reload` gives a daemon that dropped
 * root): the new certificate serves, garbage, a mismatch, an oversized or
 * non-regular file or an encrypted key keep the old context, and the
 * descriptors stay open for their owner.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "util/log.h"
#include "util/tls.h"

static char tmpdir[256];

static const char *
path(const char *name)
{
	static char bufs[4][512];
	static int i;
	char *p = bufs[i++ % 4];
	snprintf(p, 512, "%s/%s", tmpdir, name);
	return p;
}

static void
write_file(const char *p, const char *text)
{
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *
slurp(const char *p)
{
	FILE *f = fopen(p, "r");
	assert_non_null(f);
	static char buf[8192];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return strdup(buf);
}

static void
test_selfsigned(void **state)
{
	char err[512];
	char cert[512], key[512];
	snprintf(cert, sizeof(cert), "%s", path("tls/cert.pem"));
	snprintf(key, sizeof(key), "%s", path("tls/key.pem"));
	assert_int_equal(mc_tls_selfsigned(cert, key, "mx.example.org", err, sizeof(err)), 0);

	struct stat st;
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(path("tls"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(stat(cert, &st), 0);

	/* No temporary files are left beside them. */
	DIR *d = opendir(path("tls"));
	assert_non_null(d);
	int n = 0;
	for (struct dirent *e; (e = readdir(d));)
		if (e->d_name[0] != '.') {
			assert_null(strstr(e->d_name, ".tmp"));
			n++;
		}
	closedir(d);
	assert_int_equal(n, 2);

	/* The certificate names the host in CN and subjectAltName, v3, about ten years. */
	FILE *f = fopen(cert, "r");
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	assert_int_equal(X509_get_version(x), 2);
	char cn[256];
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)) > 0);
	assert_string_equal(cn, "mx.example.org");
	assert_int_equal(X509_check_host(x, "mx.example.org", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(x, "other.example.org", 0, 0, NULL), 0);
	int days, secs;
	assert_int_equal(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)), 1);
	assert_true(days > 3640 && days < 3660);
	X509_free(x);

	/* A second call keeps the pair as it is. */
	char *before_cert = slurp(cert), *before_key = slurp(key);
	assert_int_equal(mc_tls_selfsigned(cert, key, "mx.example.org", err, sizeof(err)), 0);
	char *after_cert = slurp(cert), *after_key = slurp(key);
	assert_string_equal(before_cert, after_cert);
	assert_string_equal(before_key, after_key);

	/* One of the pair missing: both are made again. */
	unlink(cert);
	assert_int_equal(mc_tls_selfsigned(cert, key, "mx.example.org", err, sizeof(err)), 0);
	char *new_key = slurp(key);
	assert_string_not_equal(before_key, new_key);
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(before_cert);
	free(before_key);
	free(after_cert);
	free(after_key);
	free(new_key);
}

static void
test_load_reload(void **state)
{
	char err[512];
	char cert[512], key[512];
	snprintf(cert, sizeof(cert), "%s", path("a/cert.pem"));
	snprintf(key, sizeof(key), "%s", path("a/key.pem"));
	assert_int_equal(mc_tls_selfsigned(cert, key, "localhost", err, sizeof(err)), 0);
	struct mc_tls t = { 0 };
	if (mc_tls_load(&t, cert, key, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	assert_non_null(t.server);
	assert_non_null(t.client);
	assert_int_equal(SSL_CTX_get_min_proto_version(t.server), TLS1_2_VERSION);
	assert_true(SSL_CTX_get_options(t.server) & SSL_OP_NO_RENEGOTIATION);
	assert_int_equal(SSL_CTX_get_verify_mode(t.client), SSL_VERIFY_NONE);
	SSL_CTX *old = t.server;

	/* Missing file: refused, named, and the old context stays. */
	assert_int_equal(mc_tls_reload(&t, path("a/nope.pem"), key, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "nope.pem"));
	assert_ptr_equal(t.server, old);

	/* Garbage certificate: refused, the old context stays. */
	write_file(path("garbage.pem"), "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
	assert_int_equal(mc_tls_reload(&t, path("garbage.pem"), key, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "garbage.pem"));
	assert_ptr_equal(t.server, old);
	assert_int_equal(mc_tls_reload(&t, cert, path("garbage.pem"), err, sizeof(err)), -1);
	assert_ptr_equal(t.server, old);

	/* A good reload replaces it. */
	assert_int_equal(mc_tls_reload(&t, cert, key, err, sizeof(err)), 0);
	assert_non_null(t.server);
	assert_ptr_not_equal(t.server, NULL);

	assert_int_equal(mc_tls_client_verify(&t, true, err, sizeof(err)), 0);
	assert_int_equal(SSL_CTX_get_verify_mode(t.client), SSL_VERIFY_PEER);
	assert_int_equal(mc_tls_client_verify(&t, false, err, sizeof(err)), 0);
	assert_int_equal(SSL_CTX_get_verify_mode(t.client), SSL_VERIFY_NONE);

	mc_tls_free(&t);
	assert_null(t.server);
	assert_null(t.client);
	mc_tls_free(&t);  /* twice is harmless */
	mc_tls_free(NULL);
}

static void
test_mismatch(void **state)
{
	char err[512];
	assert_int_equal(mc_tls_selfsigned(path("b/cert.pem"), path("b/key.pem"), "localhost", err, sizeof(err)), 0);
	assert_int_equal(mc_tls_selfsigned(path("c/cert.pem"), path("c/key.pem"), "localhost", err, sizeof(err)), 0);
	struct mc_tls t = { 0 };
	assert_int_equal(mc_tls_load(&t, path("b/cert.pem"), path("c/key.pem"), err, sizeof(err)), -1);
	if (strstr(err, "does not match") == NULL)
		fail_msg("%s", err);
	assert_null(t.server);
	mc_tls_free(&t);
}

static int
open_ro(const char *p)
{
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

/* The leaf certificate the context serves equals the one in the file at p. */
static void
assert_serves(SSL_CTX *ctx, const char *p)
{
	FILE *f = fopen(p, "r");
	assert_non_null(f);
	X509 *want = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(want);
	X509 *have = SSL_CTX_get0_certificate(ctx);
	assert_non_null(have);
	assert_int_equal(X509_cmp(have, want), 0);
	X509_free(want);
}

/* Reload from descriptors with the pair at cert/key; returns what mc_tls_reload_fds did. */
static int
reload_fds(struct mc_tls *t, const char *cert, const char *key, char *err, size_t errsz)
{
	int cfd = open_ro(cert), kfd = open_ro(key);
	int rc = mc_tls_reload_fds(t, cfd, kfd, err, errsz);
	/* The descriptors are still the caller's. */
	assert_int_not_equal(fcntl(cfd, F_GETFD), -1);
	assert_int_not_equal(fcntl(kfd, F_GETFD), -1);
	close(cfd);
	close(kfd);
	return rc;
}

static void
test_reload_fds(void **state)
{
	char err[512];
	assert_int_equal(mc_tls_selfsigned(path("d/cert.pem"), path("d/key.pem"), "localhost", err, sizeof(err)), 0);
	assert_int_equal(mc_tls_selfsigned(path("e/cert.pem"), path("e/key.pem"), "localhost", err, sizeof(err)), 0);
	struct mc_tls t = { 0 };
	if (mc_tls_load(&t, path("d/cert.pem"), path("d/key.pem"), err, sizeof(err)) < 0)
		fail_msg("%s", err);
	assert_serves(t.server, path("d/cert.pem"));
	SSL_CTX *client = t.client;

	/* The new pair, read from descriptors whose offset is at the end: served from now on. */
	int cfd = open_ro(path("e/cert.pem")), kfd = open_ro(path("e/key.pem"));
	assert_true(lseek(cfd, 0, SEEK_END) > 0);
	assert_true(lseek(kfd, 0, SEEK_END) > 0);
	if (mc_tls_reload_fds(&t, cfd, kfd, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	close(cfd);
	close(kfd);
	assert_serves(t.server, path("e/cert.pem"));
	assert_int_equal(SSL_CTX_get_min_proto_version(t.server), TLS1_2_VERSION);
	assert_true(SSL_CTX_get_options(t.server) & SSL_OP_NO_RENEGOTIATION);
	assert_ptr_equal(t.client, client);
	SSL_CTX *old = t.server;

	/* Garbage certificate or key: refused, named as passed, and the old context stays. */
	write_file(path("garbage2.pem"), "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
	assert_int_equal(reload_fds(&t, path("garbage2.pem"), path("d/key.pem"), err, sizeof(err)), -1);
	if (strstr(err, "certificate passed") == NULL)
		fail_msg("%s", err);
	assert_ptr_equal(t.server, old);
	assert_int_equal(reload_fds(&t, path("d/cert.pem"), path("garbage2.pem"), err, sizeof(err)), -1);
	if (strstr(err, "private key passed") == NULL)
		fail_msg("%s", err);
	assert_ptr_equal(t.server, old);
	write_file(path("text.pem"), "hello\n");
	assert_int_equal(reload_fds(&t, path("text.pem"), path("d/key.pem"), err, sizeof(err)), -1);
	assert_ptr_equal(t.server, old);

	/* A key of another certificate. */
	assert_int_equal(reload_fds(&t, path("d/cert.pem"), path("e/key.pem"), err, sizeof(err)), -1);
	if (strstr(err, "does not match") == NULL)
		fail_msg("%s", err);
	assert_ptr_equal(t.server, old);

	/* Empty and oversized files are not read. */
	write_file(path("empty.pem"), "");
	assert_int_equal(reload_fds(&t, path("empty.pem"), path("d/key.pem"), err, sizeof(err)), -1);
	if (strstr(err, "empty") == NULL)
		fail_msg("%s", err);
	FILE *f = fopen(path("big.pem"), "w");
	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), MC_TLS_PEM_MAX + 1), 0);
	fclose(f);
	assert_int_equal(reload_fds(&t, path("big.pem"), path("d/key.pem"), err, sizeof(err)), -1);
	if (strstr(err, "too large") == NULL)
		fail_msg("%s", err);
	assert_ptr_equal(t.server, old);

	/* A pipe is not a file: refused at once rather than read until the writer stops. */
	int p[2];
	assert_int_equal(pipe(p), 0);
	kfd = open_ro(path("d/key.pem"));
	assert_int_equal(mc_tls_reload_fds(&t, p[0], kfd, err, sizeof(err)), -1);
	if (strstr(err, "not a regular file") == NULL)
		fail_msg("%s", err);
	close(p[0]);
	close(p[1]);
	close(kfd);
	assert_ptr_equal(t.server, old);

	/* An encrypted key is refused, not prompted for. */
	f = fopen(path("d/key.pem"), "r");
	assert_non_null(f);
	EVP_PKEY *pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(pkey);
	f = fopen(path("enc.pem"), "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, pkey, EVP_aes_128_cbc(), NULL, 0, NULL, (void *)"secret"), 1);
	fclose(f);
	EVP_PKEY_free(pkey);
	assert_int_equal(reload_fds(&t, path("d/cert.pem"), path("enc.pem"), err, sizeof(err)), -1);
	assert_ptr_equal(t.server, old);

	/* A chain file: the leaf first, its issuer after it. */
	char *leaf = slurp(path("d/cert.pem")), *issuer = slurp(path("e/cert.pem"));
	f = fopen(path("chain.pem"), "w");
	assert_non_null(f);
	fputs(leaf, f);
	fputs(issuer, f);
	fclose(f);
	free(leaf);
	free(issuer);
	if (reload_fds(&t, path("chain.pem"), path("d/key.pem"), err, sizeof(err)) < 0)
		fail_msg("%s", err);
	assert_serves(t.server, path("d/cert.pem"));
	STACK_OF(X509) *chain = NULL;
	assert_int_equal(SSL_CTX_get0_chain_certs(t.server, &chain), 1);
	assert_non_null(chain);
	assert_int_equal(sk_X509_num(chain), 1);

	/* The path-based load reads chains the same way. */
	if (mc_tls_reload(&t, path("chain.pem"), path("d/key.pem"), err, sizeof(err)) < 0)
		fail_msg("%s", err);
	chain = NULL;
	assert_int_equal(SSL_CTX_get0_chain_certs(t.server, &chain), 1);
	assert_int_equal(sk_X509_num(chain), 1);
	mc_tls_free(&t);
}

static int
setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_tls.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	mc_log_init("test_tls", MC_LOG_WARNING);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_selfsigned),
		cmocka_unit_test(test_load_reload),
		cmocka_unit_test(test_mismatch),
		cmocka_unit_test(test_reload_fds),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
