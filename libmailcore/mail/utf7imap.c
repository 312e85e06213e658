/*
 * utf7imap.c - modified UTF-7 (see utf7imap.h).
 *
 * Encoding: printable ASCII stands for itself ('&' as "&-"), every other
 * run of characters is UTF-16BE in base64 with ',' for '/', between '&'
 * and '-'. Decoding accepts exactly the canonical form encode produces,
 * so a name has one spelling and cannot alias another mailbox.
 */
#include "mail/utf7imap.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int
b64v(unsigned char c)
{
	const char *p = c ? strchr(b64, c) : NULL;
	return p ? (int)(p - b64) : -1;
}

/* Next code point of UTF-8 at s[*i]; -1 when invalid. */
static int32_t
utf8_next(const unsigned char *s, size_t n, size_t *i)
{
	unsigned char c = s[*i];
	if (c < 0x80) {
		(*i)++;
		return c;
	}
	size_t len;
	uint32_t cp;
	if ((c & 0xe0) == 0xc0) {
		len = 2;
		cp = c & 0x1f;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3;
		cp = c & 0x0f;
	} else if ((c & 0xf8) == 0xf0) {
		len = 4;
		cp = c & 0x07;
	} else {
		return -1;
	}
	if (*i + len > n)
		return -1;
	for (size_t k = 1; k < len; k++) {
		if ((s[*i + k] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (s[*i + k] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*i += len;
	return (int32_t)cp;
}

struct out {
	char *p;
	size_t len, sz;
	bool full;
};

static void
put(struct out *o, char c)
{
	if (o->len + 1 >= o->sz) {
		o->full = true;
		return;
	}
	o->p[o->len++] = c;
}

int
mc_utf7imap_encode(const char *s, size_t n, char *out, size_t outsz)
{
	struct out o = { out, 0, outsz, outsz == 0 };
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < n && !o.full) {
		if (u[i] >= 0x20 && u[i] <= 0x7e) {
			put(&o, (char)u[i]);
			if (u[i] == '&')
				put(&o, '-');
			i++;
			continue;
		}
		put(&o, '&');
		uint32_t acc = 0;
		int bits = 0;
		while (i < n && !(u[i] >= 0x20 && u[i] <= 0x7e)) {
			int32_t cp = utf8_next(u, n, &i);
			if (cp <= 0)
				return -1;
			uint16_t units[2];
			int nu = 1;
			if (cp >= 0x10000) {
				cp -= 0x10000;
				units[0] = (uint16_t)(0xd800 + (cp >> 10));
				units[1] = (uint16_t)(0xdc00 + (cp & 0x3ff));
				nu = 2;
			} else {
				units[0] = (uint16_t)cp;
			}
			for (int k = 0; k < nu; k++) {
				acc = (acc << 16) | units[k];
				bits += 16;
				while (bits >= 6) {
					bits -= 6;
					put(&o, b64[(acc >> bits) & 0x3f]);
				}
			}
		}
		if (bits > 0)
			put(&o, b64[(acc << (6 - bits)) & 0x3f]);
		put(&o, '-');
	}
	if (o.full)
		return -1;
	out[o.len] = '\0';
	return (int)o.len;
}

static void
put_utf8(struct out *o, uint32_t cp)
{
	if (cp < 0x80) {
		put(o, (char)cp);
	} else if (cp < 0x800) {
		put(o, (char)(0xc0 | (cp >> 6)));
		put(o, (char)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		put(o, (char)(0xe0 | (cp >> 12)));
		put(o, (char)(0x80 | ((cp >> 6) & 0x3f)));
		put(o, (char)(0x80 | (cp & 0x3f)));
	} else {
		put(o, (char)(0xf0 | (cp >> 18)));
		put(o, (char)(0x80 | ((cp >> 12) & 0x3f)));
		put(o, (char)(0x80 | ((cp >> 6) & 0x3f)));
		put(o, (char)(0x80 | (cp & 0x3f)));
	}
}

int
mc_utf7imap_decode(const char *s, size_t n, char *out, size_t outsz)
{
	struct out o = { out, 0, outsz, outsz == 0 };
	size_t i = 0;
	bool prev_encoded = false;   /* the last thing was a "&...-" run: another may not follow at once */
	while (i < n && !o.full) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c > 0x7e)
			return -1;
		if (c != '&') {
			put(&o, (char)c);
			i++;
			prev_encoded = false;
			continue;
		}
		i++;
		if (i < n && s[i] == '-') {
			put(&o, '&');
			i++;
			prev_encoded = false;
			continue;
		}
		if (prev_encoded)
			return -1;
		uint32_t acc = 0, hi = 0;
		int bits = 0, units = 0;
		while (i < n && s[i] != '-') {
			int v = b64v((unsigned char)s[i]);
			if (v < 0)
				return -1;
			acc = (acc << 6) | (uint32_t)v;
			bits += 6;
			i++;
			if (bits >= 16) {
				bits -= 16;
				uint32_t u = (acc >> bits) & 0xffff;
				units++;
				if (hi) {
					if (u < 0xdc00 || u > 0xdfff)
						return -1;
					put_utf8(&o, 0x10000 + ((hi - 0xd800) << 10) + (u - 0xdc00));
					hi = 0;
				} else if (u >= 0xd800 && u <= 0xdbff) {
					hi = u;
				} else if (u >= 0xdc00 && u <= 0xdfff) {
					return -1;
				} else if (u == 0 || (u >= 0x20 && u <= 0x7e)) {
					return -1;   /* NUL, or ASCII that should have been written as itself */
				} else {
					put_utf8(&o, u);
				}
			}
		}
		/* must end in '-', hold at least one unit, no dangling surrogate, padding bits zero, < 6 of them */
		if (i >= n || units == 0 || hi || bits >= 6 || (acc & ((1u << bits) - 1)) != 0)
			return -1;
		i++;
		prev_encoded = true;
	}
	if (o.full)
		return -1;
	out[o.len] = '\0';
	return (int)o.len;
}
