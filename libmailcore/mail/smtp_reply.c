/*
 * smtp_reply.c - the bounded SMTP reply parser and the EHLO keyword reader
 * (see smtp_reply.h).
 *
 * Called by queued's SMTP client (queued/smtpc.c) with the bytes of its
 * connection's input buffer. Owns nothing but the struct the caller gives
 * it; copies what it keeps, so the input may go as soon as it was taken.
 * Never reads past len, never writes past its buffers, never lets a
 * control character through into the text it keeps.
 */
#include "mail/smtp_reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void
mc_smtp_reply_init(struct mc_smtp_reply *r)
{
	r->code = 0;
	r->esc[0] = '\0';
	r->nlines = r->nkept = 0;
	r->used = 0;
	r->buf[0] = '\0';
	r->err[0] = '\0';
	r->linelen = 0;
	r->overlong = false;
	r->done = false;
}

size_t
mc_smtp_esc_len(const char *t, char cls)
{
	size_t i = 0;
	if (t[i] != cls || t[i + 1] != '.')
		return 0;
	i += 2;
	for (int part = 0; part < 2; part++) {
		size_t d = 0;
		while (d < 3 && t[i] >= '0' && t[i] <= '9') {
			i++;
			d++;
		}
		if (d == 0)
			return 0;
		if (part == 0) {
			if (t[i] != '.')
				return 0;
			i++;
		}
	}
	return (t[i] == ' ' || t[i] == '\0') ? i : 0;
}

static int
fail(struct mc_smtp_reply *r, const char *why)
{
	snprintf(r->err, sizeof(r->err), "%s", why);
	return -1;
}

/* Keep a line's text, cleaned, while there is room. */
static void
keep(struct mc_smtp_reply *r, const char *t, size_t n)
{
	if (r->nkept >= MC_SMTP_REPLY_LINES || r->used + 1 >= sizeof(r->buf))
		return;
	size_t room = sizeof(r->buf) - r->used - 1;
	if (n > room)
		n = room;
	char *o = r->buf + r->used;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)t[i];
		o[i] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	o[n] = '\0';
	r->off[r->nkept++] = (uint16_t)r->used;
	r->used += n + 1;
}

/* A whole line (without its line end) is in r->line. 1: the reply is complete. */
static int
line_done(struct mc_smtp_reply *r)
{
	const char *l = r->line;
	size_t n = r->linelen;
	if (n > 0 && l[n - 1] == '\r')
		n--;
	if (n < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' || l[2] < '0' || l[2] > '9')
		return fail(r, "reply line without a code");
	if (n > 3 && l[3] != ' ' && l[3] != '-')
		return fail(r, "reply code not followed by a space or '-'");
	int code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	if (r->nlines > 0 && code != r->code)
		return fail(r, "reply lines with different codes");
	if (++r->nlines > MC_SMTP_REPLY_LINES)
		return fail(r, "reply with too many lines");
	r->code = code;
	size_t tn = n > 4 ? n - 4 : 0;
	keep(r, tn ? l + 4 : "", tn);
	if (r->nlines == 1 && r->nkept == 1) {
		size_t e = mc_smtp_esc_len(r->buf + r->off[0], l[0]);
		if (e && e < sizeof(r->esc)) {
			memcpy(r->esc, r->buf + r->off[0], e);
			r->esc[e] = '\0';
		}
	}
	return (n == 3 || l[3] == ' ') ? 1 : 0;
}

int
mc_smtp_reply_feed(struct mc_smtp_reply *r, const char *in, size_t len, size_t *used)
{
	size_t i = 0;
	int rc = 0;
	*used = 0;
	if (r->done)
		return 1;
	if (r->err[0])
		return -1;
	while (i < len) {
		const char *nl = memchr(in + i, '\n', len - i);
		size_t take = nl ? (size_t)(nl - (in + i)) : len - i;
		if (!r->overlong) {
			size_t room = sizeof(r->line) - 1 - r->linelen;
			size_t k = take < room ? take : room;
			memcpy(r->line + r->linelen, in + i, k);
			r->linelen += k;
			if (k < take)
				r->overlong = true;   /* the rest of this line is dropped */
		}
		i += take;
		if (nl == NULL)
			break;
		i++;   /* the LF */
		rc = line_done(r);
		r->linelen = 0;
		r->overlong = false;
		if (rc != 0)
			break;
	}
	*used = i;
	if (rc == 1)
		r->done = true;
	return rc;
}

const char *
mc_smtp_reply_line(const struct mc_smtp_reply *r, unsigned i)
{
	return i < r->nkept ? r->buf + r->off[i] : "";
}

size_t
mc_smtp_reply_format(const struct mc_smtp_reply *r, char *out, size_t outsz)
{
	if (outsz == 0)
		return 0;
	int n = snprintf(out, outsz, "%03d", r->code);
	size_t o = n < 0 ? 0 : (size_t)n >= outsz ? outsz - 1 : (size_t)n;
	size_t esclen = strlen(r->esc);
	for (unsigned i = 0; i < r->nkept && o + 1 < outsz; i++) {
		const char *t = r->buf + r->off[i];
		if (i > 0 && esclen && strncmp(t, r->esc, esclen) == 0 && (t[esclen] == ' ' || t[esclen] == '\0'))
			t += esclen + (t[esclen] == ' ');
		if (*t == '\0')
			continue;
		n = snprintf(out + o, outsz - o, " %s", t);
		o = n < 0 ? o : o + (size_t)n >= outsz ? outsz - 1 : o + (size_t)n;
	}
	out[o] = '\0';
	return o;
}

/* Does keyword kw (case-insensitive) start line t, followed by its end, a space or '='? The rest. */
static const char *
kw(const char *t, const char *k)
{
	size_t n = strlen(k);
	if (strncasecmp(t, k, n) != 0 || (t[n] != '\0' && t[n] != ' ' && t[n] != '='))
		return NULL;
	return t + n;
}

void
mc_smtp_ehlo_parse(const struct mc_smtp_reply *r, struct mc_smtp_ehlo *e)
{
	memset(e, 0, sizeof(*e));
	if (r->code != 250)
		return;
	for (unsigned i = 1; i < r->nkept; i++) {
		const char *t = mc_smtp_reply_line(r, i), *rest;
		if (kw(t, "PIPELINING"))
			e->pipelining = true;
		else if (kw(t, "STARTTLS"))
			e->starttls = true;
		else if (kw(t, "8BITMIME"))
			e->eightbitmime = true;
		else if (kw(t, "SMTPUTF8"))
			e->smtputf8 = true;
		else if (kw(t, "DSN"))
			e->dsn = true;
		else if (kw(t, "CHUNKING"))
			e->chunking = true;
		else if ((rest = kw(t, "SIZE")) != NULL) {
			e->size = true;
			while (*rest == ' ' || *rest == '=')
				rest++;
			char *end;
			unsigned long long v = 0;
			if (*rest >= '0' && *rest <= '9')
				v = strtoull(rest, &end, 10);
			e->size_max = (uint64_t)v;
		} else if ((rest = kw(t, "AUTH")) != NULL) {
			/* "AUTH PLAIN LOGIN", and the old "AUTH=LOGIN PLAIN" form */
			while (*rest) {
				while (*rest == ' ' || *rest == '=')
					rest++;
				size_t n = strcspn(rest, " =");
				if (n == 5 && strncasecmp(rest, "PLAIN", 5) == 0)
					e->auth_plain = true;
				else if (n == 5 && strncasecmp(rest, "LOGIN", 5) == 0)
					e->auth_login = true;
				rest += n;
			}
		}
	}
}
