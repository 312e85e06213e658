/*
 * addr.h - mail addresses as SMTP carries them (RFC 5321 §4.1.2, RFC 6531).
 *
 * mc_addr_parse_path() reads a reverse-path or forward-path ("<a@b>",
 * "<>", "<@relay:a@b>" source routes are accepted and ignored) and the
 * ESMTP parameters after it. Bounded: a local part of at most 64 octets
 * (RFC 5321 §4.5.3.1.1), a domain of at most 255, a path of at most 256.
 * UTF-8 in the local part or domain is allowed only when the caller says
 * SMTPUTF8 was given. Domains are returned lowercased; local parts as
 * written. Parsers of outside input: fuzzed by tests/fuzz/fuzz_addr.c.
 */
#ifndef MC_ADDR_H
#define MC_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#define MC_LOCAL_MAX 64
#define MC_DOMAIN_MAX 255
#define MC_PATH_LEN_MAX 256

struct mc_addr {
	char local[MC_LOCAL_MAX * 2 + 3]; /* room for a quoted local part as written */
	char domain[MC_DOMAIN_MAX + 1];
	bool null;                         /* "<>" */
	bool utf8;                         /* contains non-ASCII */
};

enum mc_addr_err {
	MC_ADDR_OK = 0,
	MC_ADDR_SYNTAX,        /* 501 5.1.3 / 5.1.7 */
	MC_ADDR_TOO_LONG,      /* 501 5.1.3 */
	MC_ADDR_NEED_UTF8,     /* 553 5.6.7 (RFC 6531) */
};

/*
 * Parse "<path>" at the start of s; *rest points after the closing '>'.
 * allow_null: "<>" is acceptable (MAIL FROM). Returns enum mc_addr_err.
 */
int mc_addr_parse_path(const char *s, bool allow_null, bool utf8_ok, struct mc_addr *a, const char **rest);
/* Parse a bare "local@domain" (no brackets), as used in the directory and by the tool. */
int mc_addr_parse(const char *s, bool utf8_ok, struct mc_addr *a);
/* "local@domain" (or "" for the null address) into out; -1 if it does not fit. */
int mc_addr_format(const struct mc_addr *a, char *out, size_t outsz);
/* Lowercase copy of "local@domain" without a +tag, for directory lookups. */
int mc_addr_lookup_key(const char *addr, char *out, size_t outsz);
/* Validate a domain name (LDH labels, or UTF-8 when utf8_ok; or an address literal "[1.2.3.4]"). */
bool mc_addr_domain_ok(const char *domain, bool utf8_ok);

#endif
