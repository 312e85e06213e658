/*
 * tls.c - OpenSSL 3 contexts for Postern's servers and its SMTP client
 * (see tls.h).
 *
 * Called by smtpd, pop3d and imapd (server context, loaded while still
 * root, rebuilt on reload from the paths or from the descriptors the
 * requester passed) and by queued (client context). Both ways into a
 * server context read the files whole (bounded, with pread) and build it
 * in server_ctx_from_fds(); key bytes are wiped after use. Owns the
 * SSL_CTX objects in struct mc_tls; connections made from a context hold
 * their own reference, so replacing a context never disturbs them.
 * mc_tls_selfsigned() owns the files it writes: it writes them under
 * temporary names and renames, so a crash never leaves half a key, and it
 * never touches a pair that is already complete.
 *
 * Never: allow TLS below 1.2 (RFC 8996), allow renegotiation, or leave a
 * private key readable by anyone but its owner.
 */
#include "util/tls.h"
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define SELFSIGNED_DAYS (10 * 365 + 3)
/* "certificate PATH" / "private key PATH", as errors name a file. */
#define WHAT_MAX (PATH_MAX + 16)

const char *
mc_tls_errstr(char *buf, size_t bufsz)
{
	unsigned long e = ERR_peek_last_error();
	if (bufsz == 0)
		return buf;
	if (e == 0)
		snprintf(buf, bufsz, "unknown TLS error");
	else
		ERR_error_string_n(e, buf, bufsz);
	ERR_clear_error();
	return buf;
}

static void
set_err(char *err, size_t errsz, const char *what, const char *path)
{
	char ebuf[256];
	mc_tls_errstr(ebuf, sizeof(ebuf));
	snprintf(err, errsz, "%s %s: %s", what, path, ebuf);
}

static bool
key_mismatch(void)
{
	unsigned long e = ERR_peek_last_error();
	return ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH;
}

/* A daemon has nobody to type a passphrase: an encrypted key fails to load instead of prompting. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/*
 * Read the whole regular file behind fd, from offset 0 whatever the
 * descriptor's offset (a passed descriptor may share it with others),
 * into a new buffer of *len bytes. what names the file in err.
 */
static char *
read_pem(int fd, const char *what, size_t *len, char *err, size_t errsz)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		snprintf(err, errsz, "cannot read %s: %s", what, strerror(errno));
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errsz, "cannot read %s: not a regular file", what);
		return NULL;
	}
	if (st.st_size <= 0 || st.st_size > MC_TLS_PEM_MAX) {
		snprintf(err, errsz, "cannot read %s: %s (%lld bytes; at most %d)", what,
			 st.st_size <= 0 ? "empty" : "too large", (long long)st.st_size, MC_TLS_PEM_MAX);
		return NULL;
	}
	size_t size = (size_t)st.st_size, n = 0;
	char *buf = OPENSSL_malloc(size);
	if (buf == NULL) {
		snprintf(err, errsz, "cannot read %s: out of memory", what);
		return NULL;
	}
	/* A file that shrank since fstat() gives what is there; one that grew is read up to its old size. */
	while (n < size) {
		ssize_t r = pread(fd, buf + n, size - n, (off_t)n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errsz, "cannot read %s: %s", what, strerror(errno));
			OPENSSL_clear_free(buf, size);
			return NULL;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*len = n;
	return buf;
}

/* Put the certificate chain (leaf first, then its issuers) of a PEM buffer into ctx; -1 with err. */
static int
use_chain(SSL_CTX *ctx, const char *pem, size_t len, const char *what, char *err, size_t errsz)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL) {
		set_err(err, errsz, "cannot load", what);
		return -1;
	}
	int rc = -1;
	X509 *leaf = PEM_read_bio_X509_AUX(bio, NULL, no_passphrase, NULL);
	if (leaf == NULL || SSL_CTX_use_certificate(ctx, leaf) != 1 || SSL_CTX_clear_chain_certs(ctx) != 1) {
		set_err(err, errsz, "cannot load", what);
		goto out;
	}
	X509 *ca;
	while ((ca = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)) != NULL) {
		if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
			X509_free(ca);
			set_err(err, errsz, "cannot load", what);
			goto out;
		}
	}
	/* The end of the chain reads as "no start line"; anything else is a broken certificate. */
	unsigned long e = ERR_peek_last_error();
	if (ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
		set_err(err, errsz, "cannot load", what);
		goto out;
	}
	ERR_clear_error();
	rc = 0;
out:
	X509_free(leaf);
	BIO_free(bio);
	return rc;
}

/* Put the private key of a PEM buffer into ctx; a key that does not fit is told apart from one that does not load. */
static int
use_key(SSL_CTX *ctx, const char *pem, size_t len, const char *what, const char *certwhat, char *err, size_t errsz)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
	BIO_free(bio);
	if (pkey == NULL) {
		set_err(err, errsz, "cannot load", what);
		return -1;
	}
	int ok = SSL_CTX_use_PrivateKey(ctx, pkey);
	EVP_PKEY_free(pkey);
	if (ok != 1 && !key_mismatch()) {
		set_err(err, errsz, "cannot load", what);
		return -1;
	}
	if (ok != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		snprintf(err, errsz, "%s does not match %s", what, certwhat);
		return -1;
	}
	return 0;
}

/*
 * The one place a server context is built: from the certificate chain and
 * key files open at cert_fd and key_fd (named certwhat and keywhat in
 * errors). The descriptors stay the caller's.
 */
static SSL_CTX *
server_ctx_from_fds(int cert_fd, int key_fd, const char *certwhat, const char *keywhat, char *err, size_t errsz)
{
	size_t certlen = 0, keylen = 0;
	char *certpem = NULL, *keypem = NULL;
	SSL_CTX *ctx = NULL;

	ERR_clear_error();
	if ((certpem = read_pem(cert_fd, certwhat, &certlen, err, errsz)) == NULL ||
	    (keypem = read_pem(key_fd, keywhat, &keylen, err, errsz)) == NULL)
		goto out;
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		set_err(err, errsz, "cannot create TLS context for", certwhat);
		goto out;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Many connections sit idle between commands; free their record buffers meanwhile. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (use_chain(ctx, certpem, certlen, certwhat, err, errsz) < 0 ||
	    use_key(ctx, keypem, keylen, keywhat, certwhat, err, errsz) < 0) {
		SSL_CTX_free(ctx);
		ctx = NULL;
	}
out:
	if (certpem)
		OPENSSL_clear_free(certpem, certlen);
	if (keypem)
		OPENSSL_clear_free(keypem, keylen);
	return ctx;
}

static SSL_CTX *
server_ctx_new(const char *cert, const char *key, char *err, size_t errsz)
{
	/* O_NONBLOCK: a FIFO put in the key's place must not hang the daemon; read_pem refuses it. */
	int cert_fd = open(cert, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (cert_fd < 0) {
		snprintf(err, errsz, "cannot read %s: %s", cert, strerror(errno));
		return NULL;
	}
	int key_fd = open(key, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (key_fd < 0) {
		snprintf(err, errsz, "cannot read %s: %s", key, strerror(errno));
		close(cert_fd);
		return NULL;
	}
	char certwhat[WHAT_MAX], keywhat[WHAT_MAX];
	snprintf(certwhat, sizeof(certwhat), "certificate %s", cert);
	snprintf(keywhat, sizeof(keywhat), "private key %s", key);
	SSL_CTX *ctx = server_ctx_from_fds(cert_fd, key_fd, certwhat, keywhat, err, errsz);
	close(cert_fd);
	close(key_fd);
	return ctx;
}

int
mc_tls_client_init(struct mc_tls *t, char *err, size_t errsz)
{
	if (t->client)
		return 0;
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		set_err(err, errsz, "cannot create TLS context for", "the client");
		return -1;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* Opportunistic SMTP (RFC 3207 section 4.1): any certificate is better than plaintext. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	t->client = ctx;
	return 0;
}

int
mc_tls_client_verify(struct mc_tls *t, bool on, char *err, size_t errsz)
{
	if (mc_tls_client_init(t, err, errsz) < 0)
		return -1;
	if (!on) {
		SSL_CTX_set_verify(t->client, SSL_VERIFY_NONE, NULL);
		return 0;
	}
	ERR_clear_error();
	if (SSL_CTX_set_default_verify_paths(t->client) != 1) {
		set_err(err, errsz, "cannot load", "the system's trusted certificates");
		return -1;
	}
	SSL_CTX_set_verify(t->client, SSL_VERIFY_PEER, NULL);
	return 0;
}

int
mc_tls_load(struct mc_tls *t, const char *cert, const char *key, char *err, size_t errsz)
{
	SSL_CTX *ctx = server_ctx_new(cert, key, err, errsz);
	if (ctx == NULL)
		return -1;
	if (mc_tls_client_init(t, err, errsz) < 0) {
		SSL_CTX_free(ctx);
		return -1;
	}
	SSL_CTX_free(t->server);
	t->server = ctx;
	return 0;
}

int
mc_tls_reload(struct mc_tls *t, const char *cert, const char *key, char *err, size_t errsz)
{
	SSL_CTX *ctx = server_ctx_new(cert, key, err, errsz);
	if (ctx == NULL)
		return -1;
	SSL_CTX_free(t->server);
	t->server = ctx;
	return 0;
}

int
mc_tls_reload_fds(struct mc_tls *t, int cert_fd, int key_fd, char *err, size_t errsz)
{
	SSL_CTX *ctx =
		server_ctx_from_fds(cert_fd, key_fd, "the certificate passed", "the private key passed", err, errsz);
	if (ctx == NULL)
		return -1;
	SSL_CTX_free(t->server);
	t->server = ctx;
	return 0;
}

void
mc_tls_free(struct mc_tls *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->server);
	SSL_CTX_free(t->client);
	t->server = NULL;
	t->client = NULL;
}

/* Add one X509v3 extension written in OpenSSL's config syntax. */
static int
add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (ext == NULL)
		return -1;
	int ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

static X509 *
make_cert(EVP_PKEY *pkey, const char *hostname)
{
	X509 *x = X509_new();
	if (x == NULL)
		return NULL;
	unsigned char serial[16];
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		goto fail;
	serial[0] &= 0x7f;  /* positive, as RFC 5280 wants */
	serial[0] |= 0x01;
	BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (bn == NULL)
		goto fail;
	ASN1_INTEGER *sn = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	if (sn == NULL)
		goto fail;
	if (X509_set_version(x, 2) != 1)  /* v3 */
		goto fail;
	if (X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), SELFSIGNED_DAYS, 0, NULL) == NULL)
		goto fail;
	if (X509_set_pubkey(x, pkey) != 1)
		goto fail;
	X509_NAME *name = X509_get_subject_name(x);
	/* A CN holds at most 64 characters (RFC 5280); the subjectAltName carries the full name. */
	const char *cn = strlen(hostname) <= 64 ? hostname : "postern";
	if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) != 1)
		goto fail;
	if (X509_set_issuer_name(x, name) != 1)
		goto fail;
	char san[300];
	snprintf(san, sizeof(san), "DNS:%s", hostname);
	if (add_ext(x, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(x, NID_key_usage, "critical,digitalSignature") < 0 ||
	    add_ext(x, NID_ext_key_usage, "serverAuth") < 0 || add_ext(x, NID_subject_key_identifier, "hash") < 0 ||
	    add_ext(x, NID_subject_alt_name, san) < 0)
		goto fail;
	if (X509_sign(x, pkey, EVP_sha256()) <= 0)
		goto fail;
	return x;
fail:
	X509_free(x);
	return NULL;
}

/* Write a PEM object to path through a temporary file and rename. */
static int
write_pem(const char *path, mode_t mode, EVP_PKEY *pkey, X509 *x, char *err, size_t errsz)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
		snprintf(err, errsz, "path too long: %s", path);
		return -1;
	}
	unlink(tmp);  /* a leftover of an earlier crash with the same pid */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		snprintf(err, errsz, "cannot create %s: %s", tmp, strerror(errno));
		return -1;
	}
	FILE *f = fdopen(fd, "w");
	if (f == NULL) {
		snprintf(err, errsz, "cannot write %s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	int ok = pkey ? PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, x);
	if (ok != 1) {
		set_err(err, errsz, "cannot write", tmp);
		fclose(f);
		unlink(tmp);
		return -1;
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		snprintf(err, errsz, "cannot write %s: %s", tmp, strerror(errno));
		fclose(f);
		unlink(tmp);
		return -1;
	}
	if (fclose(f) != 0) {
		snprintf(err, errsz, "cannot write %s: %s", tmp, strerror(errno));
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) < 0) {
		snprintf(err, errsz, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Create the directory holding path (0700 for what is made) and return it in dir. */
static int
make_parent(const char *path, char *dir, size_t dirsz, char *err, size_t errsz)
{
	snprintf(dir, dirsz, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash == NULL) {
		snprintf(dir, dirsz, ".");
		return 0;
	}
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (mc_mkdir_p(dir, 0700) < 0) {
		snprintf(err, errsz, "cannot create directory %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

int
mc_tls_selfsigned(const char *cert, const char *key, const char *hostname, char *err, size_t errsz)
{
	struct stat st;
	if (stat(cert, &st) == 0 && stat(key, &st) == 0)
		return 0;
	if (hostname == NULL || *hostname == '\0' || strlen(hostname) > 253) {
		snprintf(err, errsz, "cannot make a certificate: bad hostname");
		return -1;
	}
	char certdir[PATH_MAX], keydir[PATH_MAX];
	if (make_parent(cert, certdir, sizeof(certdir), err, errsz) < 0 ||
	    make_parent(key, keydir, sizeof(keydir), err, errsz) < 0)
		return -1;

	ERR_clear_error();
	EVP_PKEY *pkey = EVP_EC_gen("P-256");
	if (pkey == NULL) {
		set_err(err, errsz, "cannot generate a key for", key);
		return -1;
	}
	X509 *x = make_cert(pkey, hostname);
	if (x == NULL) {
		set_err(err, errsz, "cannot make certificate", cert);
		EVP_PKEY_free(pkey);
		return -1;
	}
	/* Key first: a crash in between leaves the certificate missing, so the next start makes both again. */
	int r = write_pem(key, 0600, pkey, NULL, err, errsz);
	if (r == 0)
		r = write_pem(cert, 0644, NULL, x, err, errsz);
	X509_free(x);
	EVP_PKEY_free(pkey);
	if (r < 0)
		return -1;
	mc_fsync_dir(keydir);
	if (strcmp(keydir, certdir) != 0)
		mc_fsync_dir(certdir);
	return 0;
}
