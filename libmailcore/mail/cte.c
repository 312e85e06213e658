/*
 * cte.c - Content-Transfer-Encoding decoders (see cte.h).
 *
 * Base64 is OpenSSL's EVP_DecodeBlock on batches of filtered characters:
 * the alphabet is picked out here first (mail has line ends and junk in
 * base64, which RFC 2045 says to ignore; EVP_DecodeUpdate would stop at
 * junk and at '-'), padding is read here, and a group cut short is
 * completed with 'A' so that OpenSSL only ever sees whole groups.
 * Quoted-printable is a small state machine, since no library at hand
 * decodes it as a stream. CRLF in the input is taken as one line end
 * first, so the machines below see LF only. Bounded: a decoder holds at
 * most MC_CTE_B64_BATCH characters and MC_CTE_WS_MAX blanks. Never
 * allocates, never reads past n.
 */
#include "mail/cte.h"
#include "util/hex.h"

#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

enum { Q_TEXT, Q_EQ, Q_EQ1, Q_EQWS };

static const char b64_alpha[256] = {
#define R(a, b) [a] = 1, [b] = 1
	R('A', 'B'), R('C', 'D'), R('E', 'F'), R('G', 'H'), R('I', 'J'), R('K', 'L'), R('M', 'N'), R('O', 'P'),
	R('Q', 'R'), R('S', 'T'), R('U', 'V'), R('W', 'X'), R('Y', 'Z'), R('a', 'b'), R('c', 'd'), R('e', 'f'),
	R('g', 'h'), R('i', 'j'), R('k', 'l'), R('m', 'n'), R('o', 'p'), R('q', 'r'), R('s', 't'), R('u', 'v'),
	R('w', 'x'), R('y', 'z'), R('0', '1'), R('2', '3'), R('4', '5'), R('6', '7'), R('8', '9'), R('+', '/'),
#undef R
};

enum mc_cte
mc_cte_parse(const char *value)
{
	if (value == NULL)
		return MC_CTE_7BIT;
	char tok[24];
	size_t n = 0;
	int depth = 0;
	bool done = false;   /* the token ended: only blanks and comments may follow */
	for (const char *p = value; *p; p++) {
		char c = *p;
		if (c == '(') {
			depth++;
			if (n)
				done = true;
			continue;
		}
		if (depth > 0) {
			if (c == ')')
				depth--;
			else if (c == '\\' && p[1])
				p++;
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			if (n)
				done = true;
			continue;
		}
		if (done || n + 1 >= sizeof(tok))
			return MC_CTE_UNKNOWN;
		tok[n++] = c;
	}
	tok[n] = '\0';
	if (n == 0 || strcasecmp(tok, "7bit") == 0)
		return MC_CTE_7BIT;
	if (strcasecmp(tok, "8bit") == 0)
		return MC_CTE_8BIT;
	if (strcasecmp(tok, "binary") == 0)
		return MC_CTE_BINARY;
	if (strcasecmp(tok, "base64") == 0)
		return MC_CTE_BASE64;
	if (strcasecmp(tok, "quoted-printable") == 0)
		return MC_CTE_QP;
	return MC_CTE_UNKNOWN;
}

void
mc_cte_dec_init(struct mc_cte_dec *d, enum mc_cte cte, bool text)
{
	memset(d, 0, sizeof(*d));
	d->cte = cte;
	d->text = text;
	d->prev = '\n';
	d->qstate = Q_TEXT;
}

/* One decoded byte out, with LF as CRLF when conv. */
static inline size_t
put(struct mc_cte_dec *d, unsigned char *o, char c, bool conv)
{
	size_t k = 0;
	if (conv && c == '\n' && d->prev != '\r')
		o[k++] = '\r';
	o[k++] = (unsigned char)c;
	d->prev = c;
	return k;
}

/* ---- base64 ---- */

/* Decode the whole groups held (nb64 is a multiple of 4). */
static size_t
b64_flush(struct mc_cte_dec *d, unsigned char *o)
{
	unsigned char tmp[MC_CTE_B64_BATCH / 4 * 3];
	if (d->nb64 == 0)
		return 0;
	int r = EVP_DecodeBlock(tmp, d->b64, (int)d->nb64);
	d->nb64 = 0;
	size_t k = 0;
	for (int i = 0; i < r; i++)
		k += put(d, o + k, (char)tmp[i], d->text);
	return k;
}

/* A group cut short (by padding or the end): its 2 or 3 characters give 1 or 2 bytes; 1 is dropped. */
static size_t
b64_partial(struct mc_cte_dec *d, unsigned char *o)
{
	size_t rest = d->nb64 % 4, whole = d->nb64 - rest;
	unsigned char last[4];
	memcpy(last, d->b64 + whole, rest);
	d->nb64 = whole;
	size_t k = b64_flush(d, o);
	if (rest < 2) {
		if (rest)
			d->errors++;
		return k;
	}
	unsigned char tmp[3];
	for (size_t i = rest; i < 4; i++)
		last[i] = 'A';   /* zero bits: what padding stands for */
	EVP_DecodeBlock(tmp, last, 4);
	for (size_t i = 0; i < rest - 1; i++)
		k += put(d, o + k, (char)tmp[i], d->text);
	return k;
}

static size_t
b64_update(struct mc_cte_dec *d, const unsigned char *in, size_t n, unsigned char *o)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = in[i];
		if (b64_alpha[c]) {
			d->b64[d->nb64++] = c;
			if (d->nb64 == sizeof(d->b64))
				k += b64_flush(d, o + k);
		} else if (c == '=') {
			/* padding ends the group; a second '=' finds none open and is passed over */
			if (d->nb64 % 4)
				k += b64_partial(d, o + k);
		} else if (c != '\n' && c != '\r' && c != ' ' && c != '\t') {
			d->errors++;
		}
	}
	return k;
}

/* ---- quoted-printable ---- */

/* The blanks held back were not trailing ones: out as they are. */
static size_t
qp_ws_out(struct mc_cte_dec *d, unsigned char *o)
{
	size_t k = 0;
	for (size_t i = 0; i < d->nws; i++)
		k += put(d, o + k, d->ws[i], d->text);
	d->nws = 0;
	return k;
}

/* One byte of the line-end-normalised input (LF is the only line end). */
static size_t
qp_byte(struct mc_cte_dec *d, unsigned char c, unsigned char *o)
{
	size_t k = 0;
	for (;;) {
		switch (d->qstate) {
		case Q_TEXT:
			if (c == ' ' || c == '\t') {
				if (d->nws == sizeof(d->ws))
					k += qp_ws_out(d, o + k);
				d->ws[d->nws++] = (char)c;
			} else if (c == '\n') {
				d->nws = 0;   /* trailing blanks were added in transport (rule 3) */
				k += put(d, o + k, '\r', false);
				k += put(d, o + k, '\n', false);
			} else {
				k += qp_ws_out(d, o + k);
				if (c == '=')
					d->qstate = Q_EQ;
				else
					k += put(d, o + k, (char)c, d->text);
			}
			return k;
		case Q_EQ:
			if (mc_hex_val(c) >= 0) {
				d->hex1 = c;
				d->qstate = Q_EQ1;
				return k;
			}
			if (c == '\n') {   /* soft line break */
				d->qstate = Q_TEXT;
				return k;
			}
			if (c == ' ' || c == '\t') {   /* "=" then blanks: a soft line break if the line ends here */
				d->ws[d->nws++] = (char)c;
				d->qstate = Q_EQWS;
				return k;
			}
			d->errors++;
			k += put(d, o + k, '=', d->text);
			d->qstate = Q_TEXT;
			continue;   /* c again, as text */
		case Q_EQ1:
			d->qstate = Q_TEXT;
			if (mc_hex_val(c) >= 0)
				return k + put(d, o + k, (char)(mc_hex_val(d->hex1) * 16 + mc_hex_val(c)), d->text);
			d->errors++;
			k += put(d, o + k, '=', d->text);
			k += put(d, o + k, (char)d->hex1, d->text);
			continue;
		case Q_EQWS:
			if ((c == ' ' || c == '\t') && d->nws < sizeof(d->ws)) {
				d->ws[d->nws++] = (char)c;
				return k;
			}
			d->qstate = Q_TEXT;
			if (c == '\n') {
				d->nws = 0;
				return k;
			}
			d->errors++;
			k += put(d, o + k, '=', d->text);
			k += qp_ws_out(d, o + k);
			continue;
		}
		return k;
	}
}

static size_t
qp_update(struct mc_cte_dec *d, const unsigned char *in, size_t n, unsigned char *o)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = in[i];
		if (d->cr) {
			d->cr = false;
			if (c == '\n') {
				k += qp_byte(d, '\n', o + k);
				continue;
			}
			k += qp_byte(d, '\r', o + k);   /* a lone CR is data */
		}
		if (c == '\r')
			d->cr = true;
		else
			k += qp_byte(d, c, o + k);
	}
	return k;
}

/* ---- the interface ---- */

size_t
mc_cte_dec_update(struct mc_cte_dec *d, const void *in, size_t n, void *out)
{
	const unsigned char *s = in;
	unsigned char *o = out;
	switch (d->cte) {
	case MC_CTE_BASE64:
		return b64_update(d, s, n, o);
	case MC_CTE_QP:
		return qp_update(d, s, n, o);
	default: {
		size_t k = 0;
		for (size_t i = 0; i < n; i++)
			k += put(d, o + k, (char)s[i], true);
		return k;
	}
	}
}

size_t
mc_cte_dec_final(struct mc_cte_dec *d, void *out)
{
	unsigned char *o = out;
	size_t k = 0;
	if (d->cte == MC_CTE_BASE64) {
		if (d->nb64 % 4 >= 2)
			d->errors++;   /* no padding where it was due (a lone character is counted below) */
		k = b64_partial(d, o);
	} else if (d->cte == MC_CTE_QP) {
		if (d->cr) {
			d->cr = false;
			k += qp_byte(d, '\r', o + k);
		}
		if (d->qstate == Q_EQ1) {
			d->errors++;
			k += put(d, o + k, '=', d->text);
			k += put(d, o + k, (char)d->hex1, d->text);
		}
		/* Q_EQ, Q_EQWS: a soft line break at the end; Q_TEXT: blanks at the end are trailing ones */
		d->qstate = Q_TEXT;
		d->nws = 0;
	}
	return k;
}

bool
mc_cte_store_keeps(const void *p, size_t n, unsigned *tail)
{
	const unsigned char *s = p;
	unsigned t = *tail;   /* bit 0: the byte before s[i] was CR; bit 1: the one before that was */
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n' && (!(t & 1) || (t & 2)))
			return false;
		t = ((t & 1) << 1) | (s[i] == '\r');
	}
	*tail = t;
	return true;
}
