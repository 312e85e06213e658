/*
 * tls.h - OpenSSL 3 contexts for Postern's servers and its SMTP client.
 *
 * Server contexts: TLS 1.2 and 1.3 only (RFC 8996), the certificate and key
 * of [global] tls_cert/tls_key, loaded while the daemon is still root.
 * mc_tls_reload() builds a new context from the files (for SIGHUP); new
 * connections use it, established ones keep theirs (OpenSSL refcounts).
 * A daemon that has dropped root cannot open a root-only key again:
 * mc_tls_reload_fds() builds it from descriptors the reload's requester
 * opened and passed (CTL_RELOAD), read from offset 0 and bounded by
 * MC_TLS_PEM_MAX. Either way an encrypted key is refused, never prompted for.
 * When the config has no certificate, mc_tls_selfsigned() makes one on
 * first start (RSA 2048 or P-256, the hostname as CN and subjectAltName).
 */
#ifndef MC_TLS_H
#define MC_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

/* Largest certificate chain or key file read, in bytes. */
#define MC_TLS_PEM_MAX (1024 * 1024)

struct mc_tls {
	SSL_CTX *server;   /* current server context (NULL before load) */
	SSL_CTX *client;   /* outbound client context */
};

/* Load the server context from cert and key files (and make the client context if missing); -1 with err on failure. */
int mc_tls_load(struct mc_tls *t, const char *cert, const char *key, char *err, size_t errsz);
/* Re-read cert and key; on failure the old context stays and -1 is returned. */
int mc_tls_reload(struct mc_tls *t, const char *cert, const char *key, char *err, size_t errsz);
/* The same from open descriptors of the PEM files (the caller keeps and closes them); on failure the old stays. */
int mc_tls_reload_fds(struct mc_tls *t, int cert_fd, int key_fd, char *err, size_t errsz);
/* Free both contexts (t itself is the caller's); NULL is a no-op. */
void mc_tls_free(struct mc_tls *t);
/* Make the client context if missing: TLS 1.2+, no certificate verification (opportunistic SMTP). */
int mc_tls_client_init(struct mc_tls *t, char *err, size_t errsz);
/* Turn verification of servers' certificates on (system trust store) or off for the client context. */
int mc_tls_client_verify(struct mc_tls *t, bool on, char *err, size_t errsz);
/* Create a self-signed certificate and key (key mode 0600) unless both exist. */
int mc_tls_selfsigned(const char *cert, const char *key, const char *hostname, char *err, size_t errsz);
/* The last OpenSSL error as text, for logs. */
const char *mc_tls_errstr(char *buf, size_t bufsz);

#endif
