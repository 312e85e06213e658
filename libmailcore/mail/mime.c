/*
 * mime.c - the streaming MIME parser and the part-offset table (see mime.h).
 *
 * Line-oriented: bytes are cut at LF; of each line only the first
 * LINE_KEEP bytes are kept (enough to recognise a blank line or a
 * boundary), and in a header the field being read is gathered (bounded)
 * for the fields we keep. A boundary line is matched against every open
 * multipart from the innermost out, by prefix as RFC 2046 5.1.1 says
 * ("--b1_99-- not quite" closes b1_99), so a missing inner close delimiter
 * is ended by an outer one, and a missing outer one by the end of input.
 */
#include "mail/mime.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LINE_KEEP (MC_MIME_BOUNDARY_MAX + 8)
#define TABLE_VERSION 1

enum state { ST_HEADER, ST_BODY };

struct mc_mime_parser {
	struct mc_mime_part *root, *cur;
	enum state state;
	uint64_t off, voff, lines;                /* totals so far */
	uint64_t line_off, line_voff, line_lines; /* at the start of the current line */
	size_t line_total;
	size_t line_len;
	char line[LINE_KEEP];
	char last, prev;                          /* last two bytes of the current line */
	bool prev_crlf;                           /* the previous line ended in CR LF */
	bool prev_boundary;                       /* the previous line was a boundary line */
	struct mc_buf field;                      /* the header field being read */
	bool in_field;
	unsigned nfields;                         /* fields seen in the current header block */
	unsigned nparts, max_depth;
	size_t mem;
	bool oom, finished;
};

static const struct {
	const char *name;
	size_t len;
} hdr_names[MC_HDR_COUNT] = {
#define H(s) { s, sizeof(s) - 1 }
	H("Content-Type"), H("Content-Transfer-Encoding"), H("Content-ID"), H("Content-Description"),
	H("Content-Disposition"), H("Content-Language"), H("Content-Location"), H("Content-MD5"),
	H("Date"), H("Subject"), H("From"), H("Sender"), H("Reply-To"), H("To"), H("Cc"), H("Bcc"),
	H("In-Reply-To"), H("Message-ID"), H("References"),
#undef H
};

static struct mc_mime_part *
new_part(struct mc_mime_parser *p, struct mc_mime_part *parent, unsigned flags)
{
	struct mc_mime_part *m = calloc(1, sizeof(*m));
	if (m == NULL) {
		p->oom = true;
		return NULL;
	}
	m->parent = parent;
	m->flags = flags;
	m->depth = parent ? parent->depth + 1 : 0;
	if (m->depth > p->max_depth)
		p->max_depth = m->depth;
	m->hdr_off = p->off;
	m->hdr_voff = p->voff;
	if (parent) {
		if (parent->last_child)
			parent->last_child->next = m;
		else
			parent->children = m;
		parent->last_child = m;
		parent->nchildren++;
	}
	p->nparts++;
	p->nfields = 0;
	p->mem += sizeof(*m);
	return m;
}

static void
free_tree(struct mc_mime_part *m)
{
	while (m) {
		struct mc_mime_part *next = m->next;
		free_tree(m->children);
		free(m->type);
		free(m->subtype);
		free(m->boundary);
		mc_header_params_free(m->params, m->nparams);
		for (int i = 0; i < MC_HDR_COUNT; i++)
			free(m->hdr[i]);
		free(m);
		m = next;
	}
}

struct mc_mime_parser *
mc_mime_parser_new(void)
{
	struct mc_mime_parser *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	mc_buf_init(&p->field, MC_MIME_FIELD_MAX + 128);
	p->root = new_part(p, NULL, MC_MIME_MESSAGE);
	if (p->root == NULL) {
		mc_buf_free(&p->field);
		free(p);
		return NULL;
	}
	p->cur = p->root;
	p->state = ST_HEADER;
	return p;
}

void
mc_mime_parser_free(struct mc_mime_parser *p)
{
	if (p == NULL)
		return;
	free_tree(p->root);
	mc_buf_free(&p->field);
	free(p);
}

unsigned
mc_mime_parser_parts(const struct mc_mime_parser *p)
{
	return p->nparts;
}

unsigned
mc_mime_parser_max_depth(const struct mc_mime_parser *p)
{
	return p->max_depth;
}

const char *
mc_mime_param(const struct mc_mime_part *part, const char *name)
{
	for (int i = 0; i < part->nparams; i++)
		if (strcasecmp(part->params[i].name, name) == 0)
			return part->params[i].value;
	return NULL;
}

static char *
budget_dup(struct mc_mime_parser *p, const char *s, size_t n)
{
	if (p->mem + n + 1 > MC_MIME_MEM_MAX)
		return NULL;
	char *d = malloc(n + 1);
	if (d == NULL) {
		p->oom = true;
		return NULL;
	}
	memcpy(d, s, n);
	d[n] = '\0';
	p->mem += n + 1;
	return d;
}

/* The gathered field is complete: keep it if it is one we want. */
static void
finish_field(struct mc_mime_parser *p)
{
	if (!p->in_field)
		return;
	p->in_field = false;
	const char *f = p->field.data;
	size_t n = p->field.len;
	if (++p->nfields > MC_MIME_HEADER_FIELDS_MAX) {
		/* a header of endless fields: the rest are counted in its size, not looked at */
		mc_buf_reset(&p->field);
		return;
	}
	const char *colon = f ? memchr(f, ':', n) : NULL;
	if (colon == NULL) {
		mc_buf_reset(&p->field);
		return;
	}
	size_t nl = (size_t)(colon - f);
	while (nl > 0 && (f[nl - 1] == ' ' || f[nl - 1] == '\t'))
		nl--;
	int kind = -1;
	for (int i = 0; i < MC_HDR_COUNT; i++)
		if (hdr_names[i].len == nl && strncasecmp(f, hdr_names[i].name, nl) == 0) {
			kind = i;
			break;
		}
	struct mc_mime_part *m = p->cur;
	if (kind < 0 || m->hdr[kind] || (kind >= MC_HDR_DATE && !(m->flags & MC_MIME_MESSAGE))) {
		mc_buf_reset(&p->field);
		return;
	}
	const char *v = colon + 1, *end = f + n;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	if (end > v && end[-1] == '\n')
		end--;
	if (end > v && end[-1] == '\r')
		end--;
	m->hdr[kind] = budget_dup(p, v, (size_t)(end - v));
	mc_buf_reset(&p->field);
}

/* Content-Type known: decide what the part is. */
static void
classify(struct mc_mime_parser *p, struct mc_mime_part *m)
{
	const char *ct = m->hdr[MC_HDR_CONTENT_TYPE];
	if (ct) {
		int np = mc_header_parse_params(ct, strlen(ct), true, &m->type, &m->subtype, &m->params);
		if (np < 0) {
			p->oom = true;
			np = 0;
		}
		m->nparams = np;
		p->mem += strlen(ct) * 2;
		if (m->type == NULL || m->subtype == NULL) {
			free(m->type);
			free(m->subtype);
			m->type = m->subtype = NULL;
		}
	}
	if (m->type == NULL) {
		bool digest = m->parent && (m->parent->flags & MC_MIME_MULTIPART) && m->parent->subtype &&
			      strcasecmp(m->parent->subtype, "digest") == 0;
		m->type = strdup(digest ? "message" : "text");
		m->subtype = strdup(digest ? "rfc822" : "plain");
		m->default_type = true;
		if (m->type == NULL || m->subtype == NULL)
			p->oom = true;
	}
	if (m->type == NULL || m->subtype == NULL)
		return;
	bool room = m->depth < MC_MIME_MAX_DEPTH && p->nparts < MC_MIME_MAX_PARTS;
	if (strcasecmp(m->type, "multipart") == 0) {
		m->flags |= MC_MIME_MULTIPART;
		const char *b = mc_mime_param(m, "boundary");
		size_t bl = b ? strlen(b) : 0;
		if (bl > 0 && bl <= MC_MIME_BOUNDARY_MAX && room)
			m->boundary = strdup(b);
		else if (!room)
			m->flags |= MC_MIME_TRUNCATED;
	} else if (strcasecmp(m->type, "message") == 0 && strcasecmp(m->subtype, "rfc822") == 0) {
		m->flags |= MC_MIME_RFC822;
		if (!room)
			m->flags |= MC_MIME_TRUNCATED;
	}
}

/* The header of p->cur ends; descend: a message/rfc822 body may start its own header now. */
static void
end_header(struct mc_mime_parser *p, uint64_t off, uint64_t voff, uint64_t lines, bool descend)
{
	struct mc_mime_part *m = p->cur;
	finish_field(p);
	m->body_off = off;
	m->body_voff = voff;
	m->body_loff = lines;
	m->hdr_vsize = voff - m->hdr_voff;
	classify(p, m);
	p->state = ST_BODY;
	if (descend && (m->flags & MC_MIME_RFC822) && !(m->flags & MC_MIME_TRUNCATED)) {
		struct mc_mime_part *c = new_part(p, m, MC_MIME_MESSAGE);
		if (c) {
			c->hdr_off = off;
			c->hdr_voff = voff;
			p->cur = c;
			p->state = ST_HEADER;
		}
	}
}

/* Close part m at (off, voff, lines); a body that had not started yet is empty. */
static void
close_part(struct mc_mime_parser *p, struct mc_mime_part *m, uint64_t off, uint64_t voff, uint64_t lines)
{
	if (p->cur == m && p->state == ST_HEADER) {
		/* a header cut short by a boundary ends where the part does */
		if (off < m->hdr_off)
			end_header(p, m->hdr_off, m->hdr_voff, lines, false);
		else
			end_header(p, off, voff, lines, false);
	}
	if (off < m->body_off) {
		off = m->body_off;
		voff = m->body_voff;
		lines = m->body_loff;
	}
	m->end_off = off;
	m->body_vsize = voff - m->body_voff;
	m->body_lines = lines - m->body_loff;
}

/* Which open multipart's boundary starts this line? Sets *close for "--b--". */
static struct mc_mime_part *
match_boundary(struct mc_mime_parser *p, bool *close)
{
	if (p->line_len < 3 || p->line[0] != '-' || p->line[1] != '-')
		return NULL;
	for (struct mc_mime_part *m = p->cur; m; m = m->parent) {
		if (!(m->flags & MC_MIME_MULTIPART) || m->boundary == NULL || m->closed)
			continue;
		size_t bl = strlen(m->boundary);
		if (p->line_len >= 2 + bl && memcmp(p->line + 2, m->boundary, bl) == 0) {
			*close = p->line_len >= 4 + bl && p->line[2 + bl] == '-' && p->line[3 + bl] == '-';
			return m;
		}
	}
	return NULL;
}

static void
on_boundary(struct mc_mime_parser *p, struct mc_mime_part *mp, bool close)
{
	/*
	 * The line end before the boundary line is the boundary's, unless that
	 * line was a boundary itself (an inner close delimiter keeps its line
	 * end: Dovecot counts it in the enclosing part, and so do we).
	 */
	uint64_t eoff = p->line_off, evoff = p->line_voff, elines = p->line_lines;
	if (p->line_off > 0 && !p->prev_boundary) {
		eoff -= p->prev_crlf ? 2 : 1;
		evoff -= 2;
		elines -= 1;
	}
	if ((p->state == ST_BODY ? p->cur->body_off : p->cur->hdr_off) > eoff) {
		/* that line end ended a header (or a boundary line): it stays there, for every part */
		eoff = p->line_off;
		evoff = p->line_voff;
		elines = p->line_lines;
	}
	while (p->cur != mp) {
		close_part(p, p->cur, eoff, evoff, elines);
		p->cur = p->cur->parent;
	}
	p->state = ST_BODY;
	if (close) {
		mp->closed = true;
		return;
	}
	uint64_t next = p->line_off + p->line_total;
	if (mp->depth + 1 > MC_MIME_MAX_DEPTH || p->nparts >= MC_MIME_MAX_PARTS) {
		/* Out of room: the rest of this multipart is opaque. */
		mp->closed = true;
		mp->flags |= MC_MIME_TRUNCATED;
		return;
	}
	struct mc_mime_part *c = new_part(p, mp, 0);
	if (c == NULL)
		return;
	c->hdr_off = next;
	c->hdr_voff = p->voff;
	p->cur = c;
	p->state = ST_HEADER;
}

/* A line is complete (with its LF, or the last line at the end of input). */
static void
line_end(struct mc_mime_parser *p, bool has_lf)
{
	bool crlf = has_lf && p->line_total >= 2 && p->prev == '\r';
	p->voff += p->line_total + (has_lf && !crlf ? 1 : 0);
	if (has_lf)
		p->lines++;
	bool close = false;
	struct mc_mime_part *mp = match_boundary(p, &close);
	if (mp) {
		on_boundary(p, mp, close);
	} else if (p->state == ST_HEADER) {
		bool blank = (p->line_total == 1 && has_lf) || (p->line_total == 2 && crlf);
		if (blank) {
			end_header(p, p->off, p->voff, p->lines, true);
		} else if (!has_lf) {
			finish_field(p);
		}
	}
	p->prev_crlf = crlf;
	p->prev_boundary = mp != NULL;
	p->line_total = 0;
	p->line_len = 0;
	p->last = p->prev = 0;
}

int
mc_mime_parser_feed(struct mc_mime_parser *p, const void *data, size_t n)
{
	const char *s = data;
	while (n > 0 && !p->finished) {
		if (p->line_total == 0) {
			p->line_off = p->off;
			p->line_voff = p->voff;
			p->line_lines = p->lines;
			if (p->state == ST_HEADER && *s != ' ' && *s != '\t') {
				finish_field(p);
				p->in_field = true;
			}
		}
		const char *nl = memchr(s, '\n', n);
		size_t seg = nl ? (size_t)(nl - s) + 1 : n;
		if (p->line_len < LINE_KEEP) {
			size_t k = seg < LINE_KEEP - p->line_len ? seg : LINE_KEEP - p->line_len;
			memcpy(p->line + p->line_len, s, k);
			p->line_len += k;
		}
		if (p->state == ST_HEADER && p->in_field) {
			size_t room = MC_MIME_FIELD_MAX - (p->field.len < MC_MIME_FIELD_MAX ? p->field.len : MC_MIME_FIELD_MAX);
			if (room && mc_buf_add(&p->field, s, seg < room ? seg : room) < 0)
				p->oom = true;
		}
		if (seg >= 2) {
			p->prev = s[seg - 2];
			p->last = s[seg - 1];
		} else {
			p->prev = p->last;
			p->last = s[0];
		}
		p->line_total += seg;
		p->off += seg;
		s += seg;
		n -= seg;
		if (nl)
			line_end(p, true);
	}
	return p->oom ? -1 : 0;
}

struct mc_mime_part *
mc_mime_parser_finish(struct mc_mime_parser *p)
{
	if (p->finished)
		return p->root;
	if (p->line_total > 0) {
		p->line_off = p->off - p->line_total;
		line_end(p, false);
	}
	if (p->state == ST_HEADER)
		end_header(p, p->off, p->voff, p->lines, false);
	for (struct mc_mime_part *m = p->cur; m; m = m->parent)
		close_part(p, m, p->off, p->voff, p->lines);
	p->finished = true;
	return p->root;
}

/* ---- the part-offset table ---- */

static int
put_varint(struct mc_buf *b, uint64_t v)
{
	unsigned char tmp[10];
	size_t n = 0;
	do {
		tmp[n] = (unsigned char)(v & 0x7f);
		v >>= 7;
		if (v)
			tmp[n] |= 0x80;
		n++;
	} while (v);
	return mc_buf_add(b, tmp, n);
}

static int
table_part(const struct mc_mime_part *m, struct mc_buf *out)
{
	for (; m; m = m->next) {
		if (put_varint(out, m->flags & (MC_MIME_MULTIPART | MC_MIME_RFC822 | MC_MIME_MESSAGE)) < 0 ||
		    put_varint(out, m->nchildren) < 0 || put_varint(out, m->hdr_off) < 0 ||
		    put_varint(out, m->body_off - m->hdr_off) < 0 || put_varint(out, m->end_off - m->body_off) < 0 ||
		    put_varint(out, m->hdr_vsize) < 0 || put_varint(out, m->body_vsize) < 0 ||
		    put_varint(out, m->body_lines) < 0)
			return -1;
		if (m->children && table_part(m->children, out) < 0)
			return -1;
	}
	return 0;
}

int
mc_mime_table_write(const struct mc_mime_part *root, struct mc_buf *out)
{
	unsigned char v = TABLE_VERSION;
	if (mc_buf_add(out, &v, 1) < 0)
		return -1;
	return table_part(root, out);
}

struct rd {
	const unsigned char *p, *end;
};

static int
get_varint(struct rd *r, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (r->p >= r->end)
			return -1;
		unsigned char c = *r->p++;
		*v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80))
			return 0;
	}
	return -1;
}

struct trow {
	uint64_t flags, nchildren, hdr_off, hlen, blen, hdr_vsize, body_vsize, lines;
};

static int
get_row(struct rd *r, struct trow *t)
{
	return get_varint(r, &t->flags) < 0 || get_varint(r, &t->nchildren) < 0 || get_varint(r, &t->hdr_off) < 0 ||
			       get_varint(r, &t->hlen) < 0 || get_varint(r, &t->blen) < 0 ||
			       get_varint(r, &t->hdr_vsize) < 0 || get_varint(r, &t->body_vsize) < 0 ||
			       get_varint(r, &t->lines) < 0
		       ? -1
		       : 0;
}

/* Skip the subtree whose root row t was just read (iteratively, bounded by the table's size). */
static int
skip_subtree(struct rd *r, const struct trow *t)
{
	uint64_t pending = t->nchildren;
	while (pending > 0) {
		struct trow c;
		if (get_row(r, &c) < 0)
			return -1;
		pending--;
		if (c.nchildren > (uint64_t)(r->end - r->p))
			return -1;
		pending += c.nchildren;
	}
	return 0;
}

static void
spans(const struct trow *t, struct mc_mime_span *mime, struct mc_mime_span *body)
{
	mime->off = t->hdr_off;
	mime->len = t->hlen;
	mime->vsize = t->hdr_vsize;
	body->off = t->hdr_off + t->hlen;
	body->len = t->blen;
	body->vsize = t->body_vsize;
}

int
mc_mime_section_find(const void *table, size_t len, const unsigned *path, size_t n, struct mc_mime_section *out)
{
	struct rd r = { table, (const unsigned char *)table + len };
	memset(out, 0, sizeof(*out));
	if (len < 1 || *r.p++ != TABLE_VERSION)
		return -1;
	struct trow t;
	if (get_row(&r, &t) < 0)
		return -1;
	bool have_msg = true;   /* t is a message (the top, or what a message/rfc822 holds) */
	for (size_t i = 0; i < n; i++) {
		unsigned k = path[i];
		if (k == 0)
			return -1;
		if (t.flags & MC_MIME_RFC822 && !have_msg) {
			/* numbers continue into the encapsulated message */
			if (t.nchildren != 1 || get_row(&r, &t) < 0)
				return -1;
			have_msg = true;
		}
		if (t.flags & MC_MIME_MULTIPART) {
			if (k > t.nchildren)
				return -1;
			struct trow c;
			for (unsigned j = 1;; j++) {
				if (get_row(&r, &c) < 0)
					return -1;
				if (j == k)
					break;
				if (skip_subtree(&r, &c) < 0)
					return -1;
			}
			t = c;
			have_msg = false;
		} else if (k == 1 && have_msg) {
			/* a non-multipart message has only part 1: its body, with the message header as MIME header */
			have_msg = false;
		} else {
			return -1;
		}
	}
	spans(&t, &out->mime, &out->body);
	out->is_multipart = (t.flags & MC_MIME_MULTIPART) != 0;
	if (n == 0) {
		out->is_message = true;
		spans(&t, &out->header, &out->text);
	} else if (t.flags & MC_MIME_RFC822) {
		out->is_message = true;
		struct trow c;
		if (t.nchildren == 1 && get_row(&r, &c) == 0) {
			spans(&c, &out->header, &out->text);
		} else {
			/* an opaque message/rfc822 (beyond the limits): all of it is the text */
			out->header = (struct mc_mime_span){ out->body.off, 0, 0 };
			out->text = out->body;
		}
	}
	return 0;
}
