/*
 * addr.c - mail addresses as SMTP carries them (see addr.h).
 *
 * Called by smtpd for MAIL FROM / RCPT TO, by resolverd and the tool for
 * bare addresses. Parses the RFC 5321 §4.1.2 grammar (Dot-string or
 * Quoted-string local part, domain or address literal) with the RFC 6531
 * extension (UTF-8 in both parts) and the §4.5.3.1 length limits.
 *
 * Owns nothing: results go into the caller's struct mc_addr. Never reads
 * past the NUL of its input, never writes past a field of struct mc_addr.
 * Fuzzed by tests/fuzz/fuzz_addr.c.
 */
#include "mail/addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 when it is not one. */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len;
	unsigned min;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static bool
is_atext(unsigned char c)
{
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/*
 * An address literal at s ("[1.2.3.4]", "[IPv6:::1]"); returns its length
 * including the brackets, 0 when it is not a valid one.
 */
static size_t
parse_literal(const char *s)
{
	char tmp[64];
	unsigned char bin[16];
	const char *end = strchr(s, ']');

	if (*s != '[' || end == NULL)
		return 0;
	size_t n = (size_t)(end - s - 1);
	if (n == 0 || n >= sizeof(tmp))
		return 0;
	memcpy(tmp, s + 1, n);
	tmp[n] = '\0';
	if (strncasecmp(tmp, "IPv6:", 5) == 0) {
		if (inet_pton(AF_INET6, tmp + 5, bin) != 1)
			return 0;
	} else if (inet_pton(AF_INET, tmp, bin) != 1) {
		return 0;
	}
	return n + 2;
}

/*
 * A domain (or address literal) at s, ending at the first byte that cannot
 * continue it. Copies it lowercased into out (outsz > MC_DOMAIN_MAX) when
 * out is not NULL. Returns the bytes consumed, or 0 with *err set.
 */
static size_t
parse_domain(const char *s, bool *utf8, char *out, size_t outsz, int *err)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, label = 0;

	*err = MC_ADDR_SYNTAX;
	if (*p == '[') {
		size_t n = parse_literal(s);
		if (n == 0)
			return 0;
		if (out) {
			if (n >= outsz)
				return 0;
			memcpy(out, s, n);
			out[n] = '\0';
		}
		*err = MC_ADDR_OK;
		return n;
	}
	for (;;) {
		unsigned char c = p[i];
		if (c == '.' || !(isalnum(c) || c == '-' || c >= 0x80)) {
			/* End of a label. */
			if (label == 0 || p[i - 1] == '-' || p[i - label] == '-')
				return 0;
			if (label > 63)
				return 0;
			if (c != '.')
				break;
			if (out) {
				if (i + 1 >= outsz)
					return 0;
				out[i] = '.';
			}
			label = 0;
			i++;
			continue;
		}
		size_t n = 1;
		if (c >= 0x80) {
			n = utf8_seq(p + i, strnlen(s + i, 4));
			if (n == 0)
				return 0;
			*utf8 = true;
		}
		if (i + n > MC_DOMAIN_MAX) {
			*err = MC_ADDR_TOO_LONG;
			return 0;
		}
		if (out) {
			if (i + n >= outsz)
				return 0;
			for (size_t k = 0; k < n; k++)
				out[i + k] = (char)(p[i + k] < 0x80 ? tolower(p[i + k]) : p[i + k]);
		}
		i += n;
		label += n;
	}
	if (out)
		out[i] = '\0';
	*err = MC_ADDR_OK;
	return i;
}

/*
 * A local part at s (Dot-string or Quoted-string), copied as written into
 * out. Returns the bytes consumed, or 0 with *err set.
 */
static size_t
parse_local(const char *s, bool *utf8, char *out, size_t outsz, int *err)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, octets = 0;

	*err = MC_ADDR_SYNTAX;
	if (*p == '"') {
		i = 1;
		for (;;) {
			unsigned char c = p[i];
			size_t n = 1;
			if (c == '"')
				break;
			if (c == '\\') {
				if (p[i + 1] < 32 || p[i + 1] > 126)
					return 0;
				n = 2;
			} else if (c >= 0x80) {
				n = utf8_seq(p + i, strnlen(s + i, 4));
				if (n == 0)
					return 0;
				*utf8 = true;
			} else if (c < 32 || c > 126) {
				return 0;
			}
			octets += c == '\\' ? 1 : n;
			if (octets > MC_LOCAL_MAX) {
				*err = MC_ADDR_TOO_LONG;
				return 0;
			}
			i += n;
		}
		i++;
	} else {
		bool atom_start = true;
		for (;;) {
			unsigned char c = p[i];
			size_t n = 1;
			if (c == '.') {
				if (atom_start)
					return 0;
				atom_start = true;
				i++;
				octets++;
				continue;
			}
			if (c >= 0x80) {
				n = utf8_seq(p + i, strnlen(s + i, 4));
				if (n == 0)
					return 0;
				*utf8 = true;
			} else if (!is_atext(c)) {
				break;
			}
			atom_start = false;
			i += n;
			octets += n;
			if (octets > MC_LOCAL_MAX) {
				*err = MC_ADDR_TOO_LONG;
				return 0;
			}
		}
		if (i == 0 || atom_start)
			return 0;
	}
	if (i >= outsz)
		return 0;
	memcpy(out, s, i);
	out[i] = '\0';
	*err = MC_ADDR_OK;
	return i;
}

/* "local@domain" at s into a; returns the bytes consumed or 0 with *err set. */
static size_t
parse_mailbox(const char *s, struct mc_addr *a, int *err)
{
	size_t n = parse_local(s, &a->utf8, a->local, sizeof(a->local), err);
	if (n == 0)
		return 0;
	if (s[n] != '@') {
		*err = MC_ADDR_SYNTAX;
		return 0;
	}
	size_t d = parse_domain(s + n + 1, &a->utf8, a->domain, sizeof(a->domain), err);
	if (d == 0)
		return 0;
	return n + 1 + d;
}

int
mc_addr_parse_path(const char *s, bool allow_null, bool utf8_ok, struct mc_addr *a, const char **rest)
{
	int err;
	bool dummy = false;

	memset(a, 0, sizeof(*a));
	*rest = s;
	if (*s != '<')
		return MC_ADDR_SYNTAX;
	const char *p = s + 1;
	if (*p == '>') {
		if (!allow_null)
			return MC_ADDR_SYNTAX;
		a->null = true;
		*rest = p + 1;
		return MC_ADDR_OK;
	}
	/* A source route "@one,@two:" is read and ignored (RFC 5321 §4.1.2, appendix C). */
	if (*p == '@') {
		for (;;) {
			size_t n = parse_domain(p + 1, &dummy, NULL, 0, &err);
			if (n == 0)
				return err;
			p += 1 + n;
			if (*p == ':')
				break;
			if (p[0] != ',' || p[1] != '@')
				return MC_ADDR_SYNTAX;
			p++;
			if (p - s > MC_PATH_LEN_MAX)
				return MC_ADDR_TOO_LONG;
		}
		p++;
	}
	size_t n = parse_mailbox(p, a, &err);
	if (n == 0) {
		memset(a, 0, sizeof(*a));
		return err;
	}
	p += n;
	if (*p != '>') {
		memset(a, 0, sizeof(*a));
		return MC_ADDR_SYNTAX;
	}
	if (p + 1 - s > MC_PATH_LEN_MAX) {
		memset(a, 0, sizeof(*a));
		return MC_ADDR_TOO_LONG;
	}
	if (a->utf8 && !utf8_ok)
		return MC_ADDR_NEED_UTF8;
	*rest = p + 1;
	return MC_ADDR_OK;
}

int
mc_addr_parse(const char *s, bool utf8_ok, struct mc_addr *a)
{
	int err;

	memset(a, 0, sizeof(*a));
	size_t n = parse_mailbox(s, a, &err);
	if (n == 0 || s[n] != '\0') {
		memset(a, 0, sizeof(*a));
		return n == 0 ? err : MC_ADDR_SYNTAX;
	}
	if (a->utf8 && !utf8_ok)
		return MC_ADDR_NEED_UTF8;
	return MC_ADDR_OK;
}

int
mc_addr_format(const struct mc_addr *a, char *out, size_t outsz)
{
	int n;
	if (a->null)
		n = snprintf(out, outsz, "%s", "");
	else
		n = snprintf(out, outsz, "%s@%s", a->local, a->domain);
	return n < 0 || (size_t)n >= outsz ? -1 : 0;
}

int
mc_addr_lookup_key(const char *addr, char *out, size_t outsz)
{
	const char *at = strrchr(addr, '@');
	size_t llen = at ? (size_t)(at - addr) : strlen(addr);
	const char *plus = memchr(addr, '+', llen);

	/* "+tag" goes, unless the local part would become empty. */
	size_t keep = plus && plus > addr ? (size_t)(plus - addr) : llen;
	size_t dlen = at ? strlen(at) : 0;
	if (keep + dlen >= outsz)
		return -1;
	for (size_t i = 0; i < keep; i++)
		out[i] = (char)tolower((unsigned char)addr[i]);
	for (size_t i = 0; i < dlen; i++)
		out[keep + i] = (char)tolower((unsigned char)at[i]);
	out[keep + dlen] = '\0';
	return 0;
}

bool
mc_addr_domain_ok(const char *domain, bool utf8_ok)
{
	bool utf8 = false;
	int err;
	size_t n = parse_domain(domain, &utf8, NULL, 0, &err);
	return n > 0 && domain[n] == '\0' && (utf8_ok || !utf8);
}
