/*
 * passwd.h - password hashes in crypt(3) formats (libxcrypt).
 *
 * New hashes are yescrypt ("$y$..."), with salt bytes from libxcrypt's own
 * entropy source. Verification accepts every format libxcrypt accepts, so
 * SHA512-CRYPT ("$6$") and bcrypt ("$2b$", "$2y$") hashes carried over from
 * Dovecot verify as they are; a Dovecot-style scheme prefix
 * ("{SHA512-CRYPT}", "{BLF-CRYPT}", "{CRYPT}", ...) is stripped.
 *
 * Called by resolverd (verification, on the libuv threadpool: every
 * function here is thread-safe and may take tens of milliseconds by design)
 * and by the postern tool (hashing, importing). General tier: knows nothing
 * of mail. Never logs or keeps a password; scratch memory that held one is
 * wiped before it is freed.
 */
#ifndef MC_PASSWD_H
#define MC_PASSWD_H

#include <stdbool.h>
#include <stddef.h>

/* Room for any hash libxcrypt produces (CRYPT_OUTPUT_SIZE). */
#define MC_PASSWD_HASH_MAX 384
/* Longest password accepted (longer ones never verify and are refused when hashing). */
#define MC_PASSWD_MAX 1024

/* Hash password with yescrypt into out. 0, or -1 with err (empty or too long password, no entropy). */
int mc_passwd_hash(const char *password, char *out, size_t outsz, char *err, size_t errsz);

/*
 * Does password match hash? Any crypt(3) format libxcrypt accepts, with an
 * optional Dovecot scheme prefix; the final comparison is constant-time.
 * false for a malformed or disabled hash, an empty or too long password.
 */
bool mc_passwd_verify(const char *password, const char *hash);

/*
 * Check a hash given by an administrator (migration): strip a Dovecot
 * scheme prefix, make sure libxcrypt can verify it, and copy it to out.
 * 0, or -1 with err ("unsupported password scheme {PLAIN}: ...").
 */
int mc_passwd_import(const char *in, char *out, size_t outsz, char *err, size_t errsz);

#endif
