/*
 * header.c - header values: address lists, parameters, encoded words
 * (see header.h).
 *
 * A small RFC 5322 lexer (CFWS, atoms, quoted strings, domain literals)
 * underlies the address and parameter parsers. It is forgiving in the
 * manner of Dovecot's: a byte it cannot place is skipped, never an error,
 * because ENVELOPE and BODYSTRUCTURE must describe every message. All
 * scanning is bounded by the end pointer; nothing is NUL-terminated on
 * input.
 */
#include "mail/header.h"
#include "util/hex.h"

#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct lex {
	const char *p, *end;
	struct mc_buf comment;   /* the last comment seen (Dovecot uses it as a missing display name) */
	bool want_comment;
};

static bool
is_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* atext of RFC 5322 plus 8-bit bytes (RFC 6532); dot_ok adds '.' for phrases and dot-atoms. */
static bool
is_atext(unsigned char c, bool dot_ok)
{
	if (c >= 0x80)
		return true;
	if (c <= 0x20 || c == 0x7f)
		return false;
	switch (c) {
	case '(': case ')': case '<': case '>': case '[': case ']': case ':': case ';':
	case '@': case '\\': case ',': case '"':
		return false;
	case '.':
		return dot_ok;
	default:
		return true;
	}
}

/* Skip whitespace and (nested) comments; remember the last comment's text if asked. */
static void
skip_cfws(struct lex *l)
{
	while (l->p < l->end) {
		if (is_wsp(*l->p)) {
			l->p++;
			continue;
		}
		if (*l->p != '(')
			return;
		int depth = 0;
		if (l->want_comment)
			mc_buf_reset(&l->comment);
		while (l->p < l->end) {
			char c = *l->p++;
			if (c == '\\' && l->p < l->end) {
				c = *l->p++;
			} else if (c == '(') {
				if (++depth == 1)
					continue;
				if (depth > MC_HEADER_COMMENT_DEPTH) {
					l->p = l->end;
					mc_buf_reset(&l->comment);
					return;
				}
			} else if (c == ')') {
				if (--depth == 0)
					break;
			}
			if (c == '\r' || c == '\n')
				continue;
			if (l->want_comment)
				mc_buf_add(&l->comment, &c, 1);
		}
		if (depth > 0)   /* unterminated: not a name */
			mc_buf_reset(&l->comment);
	}
}

/* Quoted string at l->p (which is '"'): content, unescaped and unfolded, appended to out. */
static void
lex_quoted(struct lex *l, struct mc_buf *out)
{
	l->p++;
	while (l->p < l->end) {
		char c = *l->p++;
		if (c == '"')
			return;
		if (c == '\\' && l->p < l->end)
			c = *l->p++;
		else if (c == '\r' || c == '\n')
			continue;
		mc_buf_add(out, &c, 1);
	}
}

static void
lex_atom(struct lex *l, struct mc_buf *out, bool dot_ok)
{
	const char *s = l->p;
	while (l->p < l->end && is_atext((unsigned char)*l->p, dot_ok))
		l->p++;
	mc_buf_add(out, s, (size_t)(l->p - s));
}

/* A phrase: words (atoms with dots, quoted strings) joined by one space. false when empty. */
static bool
lex_phrase(struct lex *l, struct mc_buf *out)
{
	bool any = false;
	for (;;) {
		skip_cfws(l);
		if (l->p >= l->end)
			break;
		if (*l->p == '"' || is_atext((unsigned char)*l->p, true)) {
			if (any)
				mc_buf_add(out, " ", 1);
			if (*l->p == '"')
				lex_quoted(l, out);
			else
				lex_atom(l, out, true);
			any = true;
			continue;
		}
		break;
	}
	return any;
}

/* local-part: dot-atom / quoted-string / obs-local-part, unquoted. */
static bool
lex_local(struct lex *l, struct mc_buf *out)
{
	bool any = false;
	for (;;) {
		skip_cfws(l);
		if (l->p >= l->end)
			break;
		if (*l->p == '"')
			lex_quoted(l, out);
		else if (is_atext((unsigned char)*l->p, false))
			lex_atom(l, out, false);
		else
			break;
		any = true;
		skip_cfws(l);
		if (l->p < l->end && *l->p == '.') {
			mc_buf_add(out, ".", 1);
			l->p++;
			continue;
		}
		break;
	}
	return any;
}

/* domain: dot-atom or [domain literal] (brackets kept). */
static bool
lex_domain(struct lex *l, struct mc_buf *out)
{
	skip_cfws(l);
	if (l->p < l->end && *l->p == '[') {
		const char *s = l->p;
		while (l->p < l->end && *l->p != ']')
			l->p++;
		if (l->p < l->end)
			l->p++;
		for (const char *q = s; q < l->p; q++)
			if (*q != '\r' && *q != '\n')
				mc_buf_add(out, q, 1);
		return true;
	}
	bool any = false;
	for (;;) {
		skip_cfws(l);
		if (l->p >= l->end || !is_atext((unsigned char)*l->p, false))
			break;
		lex_atom(l, out, false);
		any = true;
		skip_cfws(l);
		if (l->p < l->end && *l->p == '.') {
			mc_buf_add(out, ".", 1);
			l->p++;
			continue;
		}
		break;
	}
	return any;
}

static char *
dup_buf(const struct mc_buf *b)
{
	char *s = malloc(b->len + 1);
	if (s) {
		if (b->len)
			memcpy(s, b->data, b->len);
		s[b->len] = '\0';
	}
	return s;
}

struct alist {
	struct mc_address *head, **tail;
	unsigned n;
	bool oom;
};

static struct mc_address *
alist_add(struct alist *al)
{
	if (al->n >= MC_HEADER_ADDR_MAX || al->oom)
		return NULL;
	struct mc_address *a = calloc(1, sizeof(*a));
	if (a == NULL) {
		al->oom = true;
		return NULL;
	}
	*al->tail = a;
	al->tail = &a->next;
	al->n++;
	return a;
}

static char *
xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* [route ":"] local "@" domain, after a '<' was consumed; up to and including '>'. */
static void
parse_angle(struct lex *l, struct mc_buf *route, struct mc_buf *local, struct mc_buf *dom)
{
	skip_cfws(l);
	if (l->p < l->end && *l->p == '@') {
		/* obs-route: @a,@b: */
		while (l->p < l->end && *l->p != ':' && *l->p != '>') {
			if (!is_wsp(*l->p))
				mc_buf_add(route, l->p, 1);
			l->p++;
		}
		if (l->p < l->end && *l->p == ':')
			l->p++;
	}
	lex_local(l, local);
	skip_cfws(l);
	if (l->p < l->end && *l->p == '@') {
		l->p++;
		lex_domain(l, dom);
	}
	/* Whatever else is inside the brackets is dropped. */
	while (l->p < l->end && *l->p != '>' && *l->p != ',')
		l->p++;
	if (l->p < l->end && *l->p == '>')
		l->p++;
}

static void
add_mailbox(struct alist *al, const struct mc_buf *name, const struct mc_buf *route, const struct mc_buf *local,
	    const struct mc_buf *dom)
{
	struct mc_address *a = alist_add(al);
	if (a == NULL)
		return;
	a->name = name->len ? dup_buf(name) : NULL;
	a->route = route->len ? dup_buf(route) : NULL;
	a->mailbox = local->len ? dup_buf(local) : xstrdup("MISSING_MAILBOX");
	a->domain = dom->len ? dup_buf(dom) : xstrdup("MISSING_DOMAIN");
	if (a->mailbox == NULL || a->domain == NULL || (name->len && !a->name) || (route->len && !a->route))
		al->oom = true;
}

/*
 * One mailbox or group at l->p. in_group: a ':' no longer starts a
 * group (RFC 5322 groups do not nest). Returns false at the end of input.
 */
static void
parse_one(struct lex *l, struct alist *al, bool in_group, struct mc_buf *b)
{
	struct mc_buf *name = &b[0], *route = &b[1], *local = &b[2], *dom = &b[3];
	for (int i = 0; i < 4; i++)
		mc_buf_reset(&b[i]);
	mc_buf_reset(&l->comment);

	/* First try addr-spec (local@domain), the common bare form. */
	const char *start = l->p;
	if (lex_local(l, local)) {
		skip_cfws(l);
		if (l->p < l->end && *l->p == '@') {
			l->p++;
			lex_domain(l, dom);
			skip_cfws(l);
			if (l->p >= l->end || *l->p == ',' || (in_group && *l->p == ';')) {
				if (l->comment.len)
					mc_buf_add(name, l->comment.data, l->comment.len);
				add_mailbox(al, name, route, local, dom);
				return;
			}
		}
	}
	/* Not a bare addr-spec: display name, then <addr> or ':' group. */
	l->p = start;
	mc_buf_reset(local);
	mc_buf_reset(dom);
	mc_buf_reset(&l->comment);
	lex_phrase(l, name);
	skip_cfws(l);
	if (l->p < l->end && *l->p == '<') {
		l->p++;
		size_t keep = l->comment.len;
		parse_angle(l, route, local, dom);
		skip_cfws(l);
		if (name->len == 0 && keep == 0 && l->comment.len)
			mc_buf_add(name, l->comment.data, l->comment.len);
		add_mailbox(al, name, route, local, dom);
		return;
	}
	if (l->p < l->end && *l->p == ':' && !in_group) {
		l->p++;
		struct mc_address *g = alist_add(al);
		if (g) {
			g->mailbox = dup_buf(name);
			if (g->mailbox == NULL)
				al->oom = true;
		}
		for (;;) {
			skip_cfws(l);
			if (l->p >= l->end)
				break;
			if (*l->p == ';') {
				l->p++;
				break;
			}
			if (*l->p == ',') {
				l->p++;
				continue;
			}
			const char *before = l->p;
			parse_one(l, al, true, b);
			if (l->p == before)
				l->p++;   /* a byte no rule takes: skip it */
		}
		alist_add(al);   /* group end: all NIL */
		return;
	}
	/* A phrase with no address: "undisclosed-recipients", "bob". */
	if (name->len) {
		if (l->p < l->end && *l->p == '@') {
			/* "a b@c": take the phrase as the local part */
			l->p++;
			lex_domain(l, dom);
		}
		mc_buf_reset(route);
		add_mailbox(al, route, route, name, dom);
	}
}

struct mc_address *
mc_address_parse(const char *s, size_t n)
{
	struct lex l = { .p = s, .end = s + n, .want_comment = true };
	struct alist al = { .tail = &al.head };
	struct mc_buf b[4];
	mc_buf_init(&l.comment, 1024);
	for (int i = 0; i < 4; i++)
		mc_buf_init(&b[i], 16384);
	while (l.p < l.end && !al.oom && al.n < MC_HEADER_ADDR_MAX) {
		skip_cfws(&l);
		if (l.p >= l.end)
			break;
		if (*l.p == ',' || *l.p == ';' || *l.p == '>') {
			l.p++;
			continue;
		}
		const char *before = l.p;
		parse_one(&l, &al, false, b);
		if (l.p == before)
			l.p++;
	}
	mc_buf_free(&l.comment);
	for (int i = 0; i < 4; i++)
		mc_buf_free(&b[i]);
	if (al.oom) {
		mc_address_free(al.head);
		return NULL;
	}
	return al.head;
}

void
mc_address_free(struct mc_address *a)
{
	while (a) {
		struct mc_address *next = a->next;
		free(a->name);
		free(a->route);
		free(a->mailbox);
		free(a->domain);
		free(a);
		a = next;
	}
}

/* The end of the line at p (after its LF, or end). */
static const char *
line_end(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	return nl ? nl + 1 : end;
}

static bool
blank_line(const char *p, const char *end)
{
	return (p < end && *p == '\n') || (end - p >= 2 && p[0] == '\r' && p[1] == '\n');
}

bool
mc_header_next(const char **pp, const char *end, struct mc_header_field *f)
{
	const char *p = *pp;
	for (;;) {
		if (p >= end || blank_line(p, end)) {
			*pp = p;
			return false;
		}
		const char *le = line_end(p, end);
		const char *colon = memchr(p, ':', (size_t)(le - p));
		if (colon == NULL || *p == ' ' || *p == '\t') {
			p = le;   /* not a field (or a continuation with nothing before it) */
			continue;
		}
		f->name = p;
		f->namelen = (size_t)(colon - p);
		while (f->namelen > 0 && (p[f->namelen - 1] == ' ' || p[f->namelen - 1] == '\t'))
			f->namelen--;
		const char *q = le;
		while (q < end && (*q == ' ' || *q == '\t'))
			q = line_end(q, end);
		f->raw = p;
		f->rawlen = (size_t)(q - p);
		const char *v = colon + 1;
		while (v < q && (*v == ' ' || *v == '\t'))
			v++;
		const char *ve = q;
		if (ve > v && ve[-1] == '\n')
			ve--;
		if (ve > v && ve[-1] == '\r')
			ve--;
		f->value = v;
		f->valuelen = ve > v ? (size_t)(ve - v) : 0;
		*pp = q;
		return true;
	}
}

size_t
mc_header_unfold(const char *s, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] != '\r' && s[i] != '\n')
			out[o++] = s[i];
	return o;
}

/* ---- parameters (RFC 2045 with RFC 2231 continuations) ---- */

struct rawparam {
	char *name;    /* as written, without the "*N" / "*" suffix for continuations */
	char *value;
	int section;   /* -1: not a continuation */
	bool ext;      /* this segment is "*"-encoded */
	bool used;
};

/* "name*3*" -> base "name", section 3, ext; "name*" -> section -1, ext (kept whole). */
static void
split_2231(char *name, int *section, bool *ext)
{
	*section = -1;
	*ext = false;
	char *star = strchr(name, '*');
	if (star == NULL)
		return;
	char *q = star + 1;
	if (*q >= '0' && *q <= '9') {
		int v = 0;
		while (*q >= '0' && *q <= '9' && v < 100000)
			v = v * 10 + (*q++ - '0');
		bool e = false;
		if (*q == '*') {
			e = true;
			q++;
		}
		if (*q == '\0') {
			*star = '\0';
			*section = v;
			*ext = e;
		}
	}
}

static int
param_append(struct mc_param **v, int *n, int *cap, char *name, char *value)
{
	if (*n >= MC_HEADER_PARAM_MAX) {
		free(name);
		free(value);
		return 0;
	}
	if (*n == *cap) {
		int nc = *cap ? *cap * 2 : 4;
		struct mc_param *nv = realloc(*v, (size_t)nc * sizeof(**v));
		if (nv == NULL) {
			free(name);
			free(value);
			return -1;
		}
		*v = nv;
		*cap = nc;
	}
	(*v)[*n].name = name;
	(*v)[*n].value = value;
	(*n)++;
	return 0;
}

/* Percent-encode what a plain continuation segment adds to an extended value. */
static void
add_pct(struct mc_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '%' || c <= 0x20 || c >= 0x7f || c == '\'' || c == '*')
			mc_buf_printf(b, "%%%02X", c);
		else
			mc_buf_add(b, s, 1);
	}
}

/* Merge name*0, name*1... into one parameter; the rest kept as written, in order of first appearance. */
static int
merge_params(struct rawparam *rp, int nrp, struct mc_param **out)
{
	struct mc_param *v = NULL;
	int n = 0, cap = 0;
	struct mc_buf b;
	mc_buf_init(&b, 1 << 16);
	for (int i = 0; i < nrp; i++) {
		if (rp[i].used)
			continue;
		rp[i].used = true;
		if (rp[i].section < 0) {
			if (param_append(&v, &n, &cap, rp[i].name, rp[i].value) < 0)
				goto oom;
			rp[i].name = rp[i].value = NULL;
			continue;
		}
		/* Collect sections 0, 1, 2... of this name, in number order; stop at a gap. */
		mc_buf_reset(&b);
		bool ext = false;
		for (int sec = 0;; sec++) {
			int found = -1;
			for (int j = i; j < nrp; j++)
				if (rp[j].section == sec && rp[j].name && strcasecmp(rp[j].name, rp[i].name) == 0 &&
				    (j == i || !rp[j].used)) {
					found = j;
					break;
				}
			if (found < 0)
				break;
			rp[found].used = true;
			if (sec == 0)
				ext = rp[found].ext;
			if (ext && !rp[found].ext && sec > 0)
				add_pct(&b, rp[found].value);
			else
				mc_buf_adds(&b, rp[found].value);
		}
		/* sections of this name that were not reached (a gap) are dropped with it */
		for (int j = i + 1; j < nrp; j++)
			if (rp[j].section >= 0 && rp[j].name && strcasecmp(rp[j].name, rp[i].name) == 0)
				rp[j].used = true;
		size_t nl = strlen(rp[i].name);
		char *name = malloc(nl + 2);
		char *val = dup_buf(&b);
		if (name == NULL || val == NULL) {
			free(name);
			free(val);
			goto oom;
		}
		memcpy(name, rp[i].name, nl);
		if (ext)
			name[nl++] = '*';
		name[nl] = '\0';
		if (param_append(&v, &n, &cap, name, val) < 0)
			goto oom;
	}
	mc_buf_free(&b);
	*out = v;
	return n;
oom:
	mc_buf_free(&b);
	mc_header_params_free(v, n);
	return -1;
}

int
mc_header_parse_params(const char *s, size_t n, bool want_subtype, char **type, char **subtype,
		       struct mc_param **params)
{
	struct lex l = { .p = s, .end = s + n };
	struct mc_buf b;
	mc_buf_init(&b, 1 << 16);
	mc_buf_init(&l.comment, 16);
	*type = *subtype = NULL;
	*params = NULL;
	struct rawparam rp[MC_HEADER_PARAM_MAX];
	int nrp = 0, ret = -1;

	/* type, "/" subtype: tokens (RFC 2045 token: atext plus '.', minus nothing we care about) */
	skip_cfws(&l);
	while (l.p < l.end && *l.p != '/' && *l.p != ';' && !is_wsp(*l.p) && *l.p != '(')
		mc_buf_add(&b, l.p++, 1);
	if (b.len && (*type = dup_buf(&b)) == NULL)
		goto out;
	skip_cfws(&l);
	if (want_subtype && l.p < l.end && *l.p == '/') {
		l.p++;
		skip_cfws(&l);
		mc_buf_reset(&b);
		while (l.p < l.end && *l.p != ';' && !is_wsp(*l.p) && *l.p != '(')
			mc_buf_add(&b, l.p++, 1);
		if (b.len && (*subtype = dup_buf(&b)) == NULL)
			goto out;
	}
	/* parameters */
	while (l.p < l.end && nrp < MC_HEADER_PARAM_MAX) {
		while (l.p < l.end && *l.p != ';')
			l.p++;   /* junk after the type or a value is skipped, as Dovecot does */
		if (l.p >= l.end)
			break;
		l.p++;
		skip_cfws(&l);
		mc_buf_reset(&b);
		while (l.p < l.end && *l.p != '=' && *l.p != ';' && !is_wsp(*l.p) && *l.p != '(')
			mc_buf_add(&b, l.p++, 1);
		skip_cfws(&l);
		if (b.len == 0 || l.p >= l.end || *l.p != '=')
			continue;
		char *name = dup_buf(&b);
		if (name == NULL)
			goto out;
		l.p++;
		skip_cfws(&l);
		mc_buf_reset(&b);
		if (l.p < l.end && *l.p == '"') {
			lex_quoted(&l, &b);
		} else {
			while (l.p < l.end && *l.p != ';' && !is_wsp(*l.p) && *l.p != '(' && *l.p != '"')
				mc_buf_add(&b, l.p++, 1);
		}
		char *val = dup_buf(&b);
		if (val == NULL) {
			free(name);
			goto out;
		}
		rp[nrp].name = name;
		rp[nrp].value = val;
		rp[nrp].used = false;
		split_2231(name, &rp[nrp].section, &rp[nrp].ext);
		nrp++;
		skip_cfws(&l);
	}
	ret = merge_params(rp, nrp, params);
out:
	for (int i = 0; i < nrp; i++) {
		free(rp[i].name);
		free(rp[i].value);
	}
	mc_buf_free(&b);
	mc_buf_free(&l.comment);
	if (ret < 0) {
		free(*type);
		free(*subtype);
		*type = *subtype = NULL;
	}
	return ret;
}

void
mc_header_params_free(struct mc_param *p, int n)
{
	for (int i = 0; i < n; i++) {
		free(p[i].name);
		free(p[i].value);
	}
	free(p);
}

/* ---- charsets and encoded words ---- */

static bool
utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		if (c < 0x80) {
			i++;
			continue;
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
			return false;
		}
		if (i + len > n)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

int
mc_header_charset_to_utf8(const char *charset, const char *s, size_t n, struct mc_buf *out)
{
	if (strcasecmp(charset, "utf-8") == 0 || strcasecmp(charset, "utf8") == 0 ||
	    strcasecmp(charset, "us-ascii") == 0 || strcasecmp(charset, "ascii") == 0) {
		if (!utf8_valid((const unsigned char *)s, n))
			return -1;
		return mc_buf_add(out, s, n);
	}
	iconv_t cd = iconv_open("UTF-8", charset);
	if (cd == (iconv_t)-1)
		return -1;
	size_t start = out->len;
	char *in = (char *)(uintptr_t)s;
	size_t inleft = n;
	int r = 0;
	while (inleft > 0) {
		char *dst = mc_buf_reserve(out, inleft * 4 + 16);
		if (dst == NULL) {
			r = -1;
			break;
		}
		size_t room = inleft * 4 + 16, before = room;
		size_t k = iconv(cd, &in, &inleft, &dst, &room);
		mc_buf_commit(out, before - room);
		if (k == (size_t)-1 && errno != E2BIG) {
			r = -1;
			break;
		}
	}
	iconv_close(cd);
	if (r < 0) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
	}
	return r;
}

static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decode the text of one encoded word into raw bytes; -1 if malformed. */
static int
ew_decode(char enc, const char *t, size_t n, struct mc_buf *raw)
{
	if (enc == 'Q' || enc == 'q') {
		for (size_t i = 0; i < n; i++) {
			char c = t[i];
			if (c == '_') {
				c = ' ';
			} else if (c == '=') {
				if (i + 2 >= n)
					return -1;
				int h = mc_hex_val((unsigned char)t[i + 1]), lo = mc_hex_val((unsigned char)t[i + 2]);
				if (h < 0 || lo < 0)
					return -1;
				c = (char)(h * 16 + lo);
				i += 2;
			}
			mc_buf_add(raw, &c, 1);
		}
		return 0;
	}
	uint32_t acc = 0;
	int bits = 0;
	size_t pad = 0;
	for (size_t i = 0; i < n; i++) {
		if (t[i] == '=') {
			pad++;
			continue;
		}
		int v = b64val((unsigned char)t[i]);
		if (v < 0 || pad)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			char c = (char)((acc >> bits) & 0xff);
			mc_buf_add(raw, &c, 1);
		}
	}
	if (bits >= 6 || pad > 2)
		return -1;
	return 0;
}

/* Is s[0..] "=?charset?e?text?=": then its length and parts. */
static size_t
ew_match(const char *s, const char *end, const char **cs, size_t *csl, char *enc, const char **txt, size_t *txtl)
{
	if (end - s < 8 || s[0] != '=' || s[1] != '?')
		return 0;
	const char *p = s + 2, *c0 = p;
	while (p < end && *p != '?' && !is_wsp(*p))
		p++;
	if (p >= end || *p != '?' || p == c0 || end - p < 5)
		return 0;
	*cs = c0;
	*csl = (size_t)(p - c0);
	p++;
	if (!(*p == 'Q' || *p == 'q' || *p == 'B' || *p == 'b') || p[1] != '?')
		return 0;
	*enc = *p;
	p += 2;
	const char *t0 = p;
	while (p + 1 < end && !(p[0] == '?' && p[1] == '=')) {
		if (is_wsp(*p))
			return 0;
		p++;
	}
	if (p + 1 >= end)
		return 0;
	*txt = t0;
	*txtl = (size_t)(p - t0);
	return (size_t)(p + 2 - s);
}

int
mc_header_decode(const char *s, size_t n, struct mc_buf *out)
{
	const char *p = s, *end = s + n;
	struct mc_buf raw;
	mc_buf_init(&raw, n + 16);
	char cs[80];
	int ret = 0;
	bool prev_ew = false;
	while (p < end && ret == 0) {
		if (*p == '\r' || *p == '\n') {
			p++;
			continue;
		}
		const char *csp, *txt;
		size_t csl, txtl;
		char enc;
		size_t m = ew_match(p, end, &csp, &csl, &enc, &txt, &txtl);
		if (m) {
			mc_buf_reset(&raw);
			size_t cl = csl < sizeof(cs) - 1 ? csl : sizeof(cs) - 1;
			memcpy(cs, csp, cl);
			cs[cl] = '\0';
			char *star = strchr(cs, '*');   /* RFC 2231 language suffix */
			if (star)
				*star = '\0';
			if (ew_decode(enc, txt, txtl, &raw) == 0 &&
			    mc_header_charset_to_utf8(cs, raw.data ? raw.data : "", raw.len, out) == 0) {
				p += m;
				prev_ew = true;
				continue;
			}
			ret = mc_buf_add(out, p, m);
			p += m;
			prev_ew = false;
			continue;
		}
		if (*p == ' ' || *p == '\t') {
			/* whitespace between two encoded words is dropped (RFC 2047 6.2) */
			const char *q = p;
			while (q < end && is_wsp(*q))
				q++;
			if (prev_ew && q < end && ew_match(q, end, &csp, &csl, &enc, &txt, &txtl)) {
				p = q;
				continue;
			}
			/* other blanks are kept as written, minus the folding */
			for (; p < q && ret == 0; p++)
				if (*p != '\r' && *p != '\n')
					ret = mc_buf_add(out, p, 1);
			prev_ew = false;
			continue;
		}
		ret = mc_buf_add(out, p, 1);
		p++;
		prev_ew = false;
	}
	mc_buf_free(&raw);
	return ret;
}

int
mc_header_decode_2231(const char *s, size_t n, struct mc_buf *out)
{
	const char *q1 = memchr(s, '\'', n);
	if (q1 == NULL)
		return -1;
	const char *q2 = memchr(q1 + 1, '\'', (size_t)(s + n - q1 - 1));
	if (q2 == NULL)
		return -1;
	char cs[80];
	size_t cl = (size_t)(q1 - s);
	if (cl >= sizeof(cs))
		return -1;
	memcpy(cs, s, cl);
	cs[cl] = '\0';
	struct mc_buf raw;
	mc_buf_init(&raw, n + 1);
	for (const char *p = q2 + 1; p < s + n; p++) {
		char c = *p;
		if (c == '%' && s + n - p >= 3 && mc_hex_val((unsigned char)p[1]) >= 0 && mc_hex_val((unsigned char)p[2]) >= 0) {
			c = (char)(mc_hex_val((unsigned char)p[1]) * 16 + mc_hex_val((unsigned char)p[2]));
			p += 2;
		}
		mc_buf_add(&raw, &c, 1);
	}
	int r = mc_header_charset_to_utf8(cl ? cs : "us-ascii", raw.data ? raw.data : "", raw.len, out);
	mc_buf_free(&raw);
	return r;
}
