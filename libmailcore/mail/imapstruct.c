/*
 * imapstruct.c - ENVELOPE / BODYSTRUCTURE / BODY writers (see imapstruct.h).
 *
 * Recursion follows the MIME tree, whose depth the parser bounds
 * (MC_MIME_MAX_DEPTH), so the stack use is bounded too.
 */
#include "mail/imapstruct.h"

#include "mail/header.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* What Dovecot writes for a multipart without parts (RFC 3501 requires at least one). */
#define EMPTY_BODY "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0"
#define EMPTY_ENVELOPE "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"

int
mc_imap_nstring(struct mc_buf *out, const char *s, size_t n)
{
	if (s == NULL)
		return mc_buf_adds(out, "NIL");
	unsigned esc = 0;
	bool literal = false;
	for (size_t i = 0; i < n && !literal; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			literal = ++esc > 4;
		else if (c == '\r' || c == '\n' || c >= 0x80 || c == 0)
			literal = true;
	}
	if (literal)
		return mc_buf_printf(out, "{%zu}\r\n", n) < 0 ? -1 : mc_buf_add(out, s, n);
	char *d = mc_buf_reserve(out, n + esc + 2);
	if (d == NULL)
		return -1;
	size_t o = 0;
	d[o++] = '"';
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			d[o++] = '\\';
		d[o++] = s[i];
	}
	d[o++] = '"';
	mc_buf_commit(out, o);
	return 0;
}

static int
str(struct mc_buf *out, const char *s)
{
	return mc_imap_nstring(out, s, s ? strlen(s) : 0);
}

/* A raw header value: folds removed; a folded value goes out as a literal, as Dovecot's nstring_nolf does. */
static int
str_nolf(struct mc_buf *out, const char *s)
{
	if (s == NULL)
		return mc_buf_adds(out, "NIL");
	size_t n = strlen(s);
	if (strpbrk(s, "\r\n") == NULL)
		return mc_imap_nstring(out, s, n);
	char *tmp = malloc(n + 1);
	if (tmp == NULL)
		return -1;
	size_t m = mc_header_unfold(s, n, tmp);
	int r = mc_buf_printf(out, "{%zu}\r\n", m) < 0 ? -1 : mc_buf_add(out, tmp, m);
	free(tmp);
	return r;
}

static int
addr_list(struct mc_buf *out, const struct mc_address *a)
{
	if (a == NULL)
		return mc_buf_adds(out, "NIL");
	int r = mc_buf_adds(out, "(");
	for (; a && r == 0; a = a->next) {
		r |= mc_buf_adds(out, "(");
		r |= str(out, a->name);
		r |= mc_buf_adds(out, " ");
		r |= str(out, a->route);
		r |= mc_buf_adds(out, " ");
		r |= str(out, a->mailbox);
		r |= mc_buf_adds(out, " ");
		r |= str(out, a->domain);
		r |= mc_buf_adds(out, ")");
	}
	r |= mc_buf_adds(out, ")");
	return r ? -1 : 0;
}

static struct mc_address *
parse_hdr(const struct mc_mime_part *m, int kind)
{
	const char *v = m->hdr[kind];
	return v ? mc_address_parse(v, strlen(v)) : NULL;
}

int
mc_imap_envelope(const struct mc_mime_part *m, struct mc_buf *out)
{
	if (m == NULL)
		return mc_buf_adds(out, EMPTY_ENVELOPE);
	struct mc_address *from = parse_hdr(m, MC_HDR_FROM), *sender = parse_hdr(m, MC_HDR_SENDER),
			  *reply = parse_hdr(m, MC_HDR_REPLY_TO), *to = parse_hdr(m, MC_HDR_TO),
			  *cc = parse_hdr(m, MC_HDR_CC), *bcc = parse_hdr(m, MC_HDR_BCC);
	int r = mc_buf_adds(out, "(");
	r |= str_nolf(out, m->hdr[MC_HDR_DATE]);
	r |= mc_buf_adds(out, " ");
	r |= str_nolf(out, m->hdr[MC_HDR_SUBJECT]);
	r |= mc_buf_adds(out, " ");
	r |= addr_list(out, from);
	r |= mc_buf_adds(out, " ");
	/* RFC 3501: a missing Sender or Reply-To is given as From */
	r |= addr_list(out, sender ? sender : from);
	r |= mc_buf_adds(out, " ");
	r |= addr_list(out, reply ? reply : from);
	r |= mc_buf_adds(out, " ");
	r |= addr_list(out, to);
	r |= mc_buf_adds(out, " ");
	r |= addr_list(out, cc);
	r |= mc_buf_adds(out, " ");
	r |= addr_list(out, bcc);
	r |= mc_buf_adds(out, " ");
	r |= str_nolf(out, m->hdr[MC_HDR_IN_REPLY_TO]);
	r |= mc_buf_adds(out, " ");
	r |= str_nolf(out, m->hdr[MC_HDR_MESSAGE_ID]);
	r |= mc_buf_adds(out, ")");
	mc_address_free(from);
	mc_address_free(sender);
	mc_address_free(reply);
	mc_address_free(to);
	mc_address_free(cc);
	mc_address_free(bcc);
	return r ? -1 : 0;
}

/* ("name" "value" ...) or NIL; text parts get charset=us-ascii when they name none (RFC 2045 5.2). */
static int
params(struct mc_buf *out, const struct mc_param *p, int n, bool add_charset)
{
	if (n == 0 && !add_charset)
		return mc_buf_adds(out, "NIL");
	int r = mc_buf_adds(out, "(");
	for (int i = 0; i < n; i++) {
		if (i)
			r |= mc_buf_adds(out, " ");
		r |= str(out, p[i].name);
		r |= mc_buf_adds(out, " ");
		r |= str(out, p[i].value);
	}
	if (add_charset)
		r |= mc_buf_adds(out, n ? " \"charset\" \"us-ascii\"" : "\"charset\" \"us-ascii\"");
	r |= mc_buf_adds(out, ")");
	return r ? -1 : 0;
}

/* body-fld-dsp: ("type" params) or NIL */
static int
disposition(struct mc_buf *out, const char *v)
{
	if (v == NULL)
		return mc_buf_adds(out, "NIL");
	char *type = NULL, *sub = NULL;
	struct mc_param *p = NULL;
	int n = mc_header_parse_params(v, strlen(v), false, &type, &sub, &p);
	int r;
	if (n < 0 || type == NULL) {
		r = mc_buf_adds(out, "NIL");
	} else {
		r = mc_buf_adds(out, "(");
		r |= str(out, type);
		r |= mc_buf_adds(out, " ");
		r |= params(out, p, n, false);
		r |= mc_buf_adds(out, ")");
	}
	free(type);
	free(sub);
	if (n > 0)
		mc_header_params_free(p, n);
	else
		free(p);
	return r ? -1 : 0;
}

/* body-fld-lang: a list of the language tags, or NIL */
static int
language(struct mc_buf *out, const char *v)
{
	if (v == NULL)
		return mc_buf_adds(out, "NIL");
	int r = 0, k = 0;
	const char *p = v;
	while (*p && r == 0) {
		while (*p == ' ' || *p == '\t' || *p == ',' || *p == '\r' || *p == '\n')
			p++;
		if (*p == '(') {   /* a comment */
			while (*p && *p != ')')
				p++;
			if (*p)
				p++;
			continue;
		}
		const char *s = p;
		while (*p && *p != ' ' && *p != '\t' && *p != ',' && *p != '\r' && *p != '\n' && *p != '(')
			p++;
		if (p == s)
			continue;
		r |= mc_buf_adds(out, k++ ? " " : "(");
		r |= mc_imap_nstring(out, s, (size_t)(p - s));
	}
	if (k == 0)
		return mc_buf_adds(out, "NIL");
	r |= mc_buf_adds(out, ")");
	return r ? -1 : 0;
}

/* Content-Transfer-Encoding: the token, default 7bit */
static int
encoding(struct mc_buf *out, const char *v)
{
	if (v) {
		while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
			v++;
		size_t n = strcspn(v, " \t\r\n;(");
		if (n)
			return mc_imap_nstring(out, v, n);
	}
	return mc_buf_adds(out, "\"7bit\"");
}

static int write_part(const struct mc_mime_part *m, bool ext, struct mc_buf *out);

static int
write_multipart(const struct mc_mime_part *m, bool ext, struct mc_buf *out)
{
	int r = mc_buf_adds(out, "(");
	if (m->children == NULL) {
		r |= mc_buf_adds(out, ext ? EMPTY_BODY " NIL NIL NIL NIL)" : EMPTY_BODY ")");
	}
	for (const struct mc_mime_part *c = m->children; c && r == 0; c = c->next)
		r |= write_part(c, ext, out);
	r |= mc_buf_adds(out, " ");
	r |= str(out, m->subtype);
	if (ext) {
		r |= mc_buf_adds(out, " ");
		r |= params(out, m->params, m->nparams, false);
		r |= mc_buf_adds(out, " ");
		r |= disposition(out, m->hdr[MC_HDR_CONTENT_DISPOSITION]);
		r |= mc_buf_adds(out, " ");
		r |= language(out, m->hdr[MC_HDR_CONTENT_LANGUAGE]);
		r |= mc_buf_adds(out, " ");
		r |= str_nolf(out, m->hdr[MC_HDR_CONTENT_LOCATION]);
	}
	r |= mc_buf_adds(out, ")");
	return r ? -1 : 0;
}

static int
write_part(const struct mc_mime_part *m, bool ext, struct mc_buf *out)
{
	if (m->flags & MC_MIME_MULTIPART)
		return write_multipart(m, ext, out);
	bool text = strcasecmp(m->type, "text") == 0;
	int r = mc_buf_adds(out, "(");
	r |= str(out, m->type);
	r |= mc_buf_adds(out, " ");
	r |= str(out, m->subtype);
	r |= mc_buf_adds(out, " ");
	r |= params(out, m->params, m->nparams, text && mc_mime_param(m, "charset") == NULL);
	r |= mc_buf_adds(out, " ");
	r |= str_nolf(out, m->hdr[MC_HDR_CONTENT_ID]);
	r |= mc_buf_adds(out, " ");
	r |= str_nolf(out, m->hdr[MC_HDR_CONTENT_DESCRIPTION]);
	r |= mc_buf_adds(out, " ");
	r |= encoding(out, m->hdr[MC_HDR_CONTENT_TRANSFER_ENCODING]);
	r |= mc_buf_printf(out, " %llu", (unsigned long long)m->body_vsize) < 0;
	if (m->flags & MC_MIME_RFC822) {
		r |= mc_buf_adds(out, " ");
		if (m->children) {
			r |= mc_imap_envelope(m->children, out);
			r |= mc_buf_adds(out, " ");
			r |= write_part(m->children, ext, out);
		} else {
			r |= mc_buf_adds(out, EMPTY_ENVELOPE " ");
			r |= mc_buf_adds(out, ext ? EMPTY_BODY " NIL NIL NIL NIL)" : EMPTY_BODY ")");
		}
		r |= mc_buf_printf(out, " %llu", (unsigned long long)m->body_lines) < 0;
	} else if (text) {
		r |= mc_buf_printf(out, " %llu", (unsigned long long)m->body_lines) < 0;
	}
	if (ext) {
		r |= mc_buf_adds(out, " ");
		r |= str_nolf(out, m->hdr[MC_HDR_CONTENT_MD5]);
		r |= mc_buf_adds(out, " ");
		r |= disposition(out, m->hdr[MC_HDR_CONTENT_DISPOSITION]);
		r |= mc_buf_adds(out, " ");
		r |= language(out, m->hdr[MC_HDR_CONTENT_LANGUAGE]);
		r |= mc_buf_adds(out, " ");
		r |= str_nolf(out, m->hdr[MC_HDR_CONTENT_LOCATION]);
	}
	r |= mc_buf_adds(out, ")");
	return r ? -1 : 0;
}

int
mc_imap_bodystructure(const struct mc_mime_part *msg, bool extended, struct mc_buf *out)
{
	return write_part(msg, extended, out);
}
