/*
 * sasl.h - the server side of SASL PLAIN (RFC 4616) and LOGIN
 * (draft-murchison-sasl-login) as SMTP AUTH (RFC 4954), POP3 AUTH
 * (RFC 5034) and IMAP AUTHENTICATE (RFC 9051) carry them: base64 lines.
 *
 * Only the decoding lives here: the protocols keep their own replies and
 * states, and hand the user name and password to resolverd. Inputs come
 * straight from network clients: every length is checked, nothing is
 * trusted; fuzzed through the protocols' command targets. Callers wipe
 * (OPENSSL_cleanse) every buffer that held a password.
 */
#ifndef MC_SASL_H
#define MC_SASL_H

#include <stddef.h>

/* The longest SASL response line accepted (RFC 4954 §4: 12288 octets of base64). */
#define MC_SASL_LINE_MAX 12288
/* Room for its decoding, plus a NUL. */
#define MC_SASL_DECODED_MAX (MC_SASL_LINE_MAX / 4 * 3 + 1)

enum mc_sasl_result {
	MC_SASL_OK = 0,
	MC_SASL_ABORT,        /* the client sent "*": the exchange is cancelled */
	MC_SASL_BAD,          /* not base64, or not a PLAIN message */
	MC_SASL_REFUSED,      /* well-formed but refused (another user's authzid, empty user): as bad credentials */
};

/* Decode base64 (RFC 4648, padding required, no blanks) into out; -1 when malformed or out is too small. */
int mc_sasl_b64decode(const char *in, size_t inlen, unsigned char *out, size_t outsz, size_t *outlen);
/*
 * One client response line: "*" is ABORT, "=" is an empty response (RFC
 * 4954 §4, RFC 5034 §4), else base64 decoded into out (outsz >=
 * MC_SASL_DECODED_MAX for any accepted line); out is NUL-terminated.
 */
enum mc_sasl_result mc_sasl_response(const char *line, size_t len, unsigned char *out, size_t outsz,
				     size_t *outlen);
/*
 * A decoded PLAIN message, authzid NUL authcid NUL passwd, of n bytes in
 * msg (msg[n] must be writable: it becomes a NUL). *user and *pass point
 * into msg. An authzid other than the user (acting for another user is
 * not offered) or an empty user is REFUSED; a missing or third NUL is BAD.
 */
enum mc_sasl_result mc_sasl_plain(unsigned char *msg, size_t n, const char **user, const char **pass);

#endif
