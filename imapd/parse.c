/*
 * parse.c - imapd's command reader and grammar cursor (see parse.h).
 *
 * Called by the session (reader) and by every command's handler
 * (cursor). Owns the reader's command buffer, bounded by the limits the
 * session sets (small before login). Never: keep a literal byte before its
 * announced length was checked, trust a length, recurse without a bound,
 * allocate per element of a sequence set.
 */
#include "imapd/parse.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* A reader whose buffer grew past this gives it back after the command. */
#define KEEP_MAX (64 * 1024)

/* ---- character classes (RFC 3501 §9) ---- */

static bool
is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* ATOM-CHAR: CHAR (%x01-7F) except atom-specials. */
static bool
is_atom_char(unsigned char c)
{
	if (c >= 0x80 || is_ctl(c))
		return false;
	return strchr("(){ %*\"\\]", c) == NULL;
}

static bool
is_astring_char(unsigned char c)
{
	return is_atom_char(c) || c == ']';
}

static bool
is_list_char(unsigned char c)
{
	return is_atom_char(c) || c == '%' || c == '*' || c == ']';
}

/* ---- the reader ---- */

void
imap_reader_init(struct imap_reader *r, const struct imap_reader_limits *lim)
{
	memset(r, 0, sizeof(*r));
	r->lim = *lim;
	mc_buf_init(&r->cmd, lim->command_max);
}

void
imap_reader_set_limits(struct imap_reader *r, const struct imap_reader_limits *lim)
{
	r->lim = *lim;
	if (!imap_reader_busy(r))
		r->cmd.max = lim->command_max;
}

void
imap_reader_free(struct imap_reader *r)
{
	mc_buf_free(&r->cmd);
}

bool
imap_reader_busy(const struct imap_reader *r)
{
	return r->cmd.len > 0 && !r->complete;
}

char *
imap_reader_command(struct imap_reader *r, size_t *len)
{
	*len = r->cmd.len;
	return r->cmd.data;
}

void
imap_reader_next(struct imap_reader *r)
{
	if (r->cmd.cap > KEEP_MAX)
		mc_buf_free(&r->cmd);
	mc_buf_reset(&r->cmd);
	r->cmd.max = r->lim.command_max;
	r->line_start = 0;
	r->lit_left = 0;
	r->lit_pending = r->lit_stream = false;
	r->complete = false;
}

/* The tag at the start of the command, for answering a refused one ("*" when there is none). */
static void
take_tag(struct imap_reader *r)
{
	size_t i = 0;
	while (i < r->cmd.len && i < IMAP_TAG_MAX && is_astring_char((unsigned char)r->cmd.data[i]) &&
	       r->cmd.data[i] != '+')
		i++;
	if (i == 0 || i >= r->cmd.len || r->cmd.data[i] != ' ') {
		strcpy(r->tag, "*");
		return;
	}
	memcpy(r->tag, r->cmd.data, i);
	r->tag[i] = '\0';
}

/*
 * The line just completed (cmd[line_start..len), its LF included): does
 * it end with a literal announcement? 0: no; 1: yes, *n and *sync set;
 * -1: an announcement with a length that is no 32-bit number.
 */
static int
literal_at_end(const struct imap_reader *r, uint64_t *n, bool *sync)
{
	const char *s = r->cmd.data + r->line_start;
	size_t len = r->cmd.len - r->line_start;
	if (len > 0 && s[len - 1] == '\n')
		len--;
	if (len > 0 && s[len - 1] == '\r')
		len--;
	if (len < 3 || s[len - 1] != '}')
		return 0;
	size_t i = len - 1;
	*sync = true;
	if (s[i - 1] == '+') {
		*sync = false;
		i--;
	}
	size_t digits_end = i;
	while (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9')
		i--;
	if (i == digits_end || i == 0 || s[i - 1] != '{')
		return 0;
	uint64_t v = 0;
	for (size_t k = i; k < digits_end; k++) {
		v = v * 10 + (uint64_t)(s[k] - '0');
		if (v > UINT32_MAX)
			return -1;   /* number = 1*DIGIT ; Unsigned 32-bit integer */
	}
	*n = v;
	return 1;
}

/* Is the command being read an APPEND ("tag APPEND ...")? Its literals may go to the caller. */
static bool
is_append(const struct imap_reader *r)
{
	size_t i = 0;
	while (i < r->cmd.len && is_astring_char((unsigned char)r->cmd.data[i]) && r->cmd.data[i] != '+')
		i++;
	return i > 0 && r->cmd.len >= i + 8 && r->cmd.data[i] == ' ' &&
	       strncasecmp(r->cmd.data + i + 1, "APPEND ", 7) == 0;
}

/* A literal of litlen announced (lit < 0: its length is no number): decided on the length alone. */
static enum imap_rd
announce(struct imap_reader *r, int lit, uint64_t litlen, bool sync)
{
	const char *why = NULL;
	if (lit < 0)
		why = "literal length is not a 32-bit number";
	else if (litlen > r->lim.literal_max)
		why = "literal too big";
	else if (litlen > r->cmd.max - r->cmd.len)
		why = "command too long";
	if (why) {
		r->why = why;
		if (!sync)
			return IMAP_RD_FATAL;
		take_tag(r);
		imap_reader_next(r);
		return IMAP_RD_REFUSED;
	}
	r->lit_left = litlen;
	r->line_start = r->cmd.len;
	return sync ? IMAP_RD_CONTINUE : IMAP_RD_MORE;   /* the client waits for "+" even for {0} */
}

enum imap_rd
imap_reader_literal(struct imap_reader *r, enum imap_lit how)
{
	if (!r->lit_pending)
		return IMAP_RD_MORE;
	r->lit_pending = false;
	if (how == IMAP_LIT_KEEP)
		return announce(r, 1, r->lit_len, r->lit_sync);
	r->lit_left = r->lit_len;
	r->lit_stream = r->lit_len > 0;
	r->line_start = r->cmd.len;
	return r->lit_sync ? IMAP_RD_CONTINUE : IMAP_RD_MORE;
}

enum imap_rd
imap_reader_feed(struct imap_reader *r, const char *p, size_t n, size_t *used)
{
	size_t off = 0;
	*used = 0;
	if (r->complete)
		return IMAP_RD_COMMAND;
	if (r->lit_pending)
		return IMAP_RD_LITERAL;
	while (off < n) {
		if (r->lit_left > 0 && r->lit_stream) {
			if (off > 0)
				break;   /* streamed bytes are handed out from the start of a feed only */
			size_t k = n < r->lit_left ? n : (size_t)r->lit_left;
			r->lit_left -= k;
			if (r->lit_left == 0) {
				r->lit_stream = false;
				r->line_start = r->cmd.len;
			}
			*used = k;
			return IMAP_RD_DATA;
		}
		if (r->lit_left > 0) {
			size_t k = n - off;
			if (k > r->lit_left)
				k = (size_t)r->lit_left;
			if (mc_buf_add(&r->cmd, p + off, k) < 0) {
				/* Cannot happen: the literal's room was checked when it was announced. */
				r->why = "command too long";
				*used = off;
				return IMAP_RD_FATAL;
			}
			off += k;
			r->lit_left -= k;
			if (r->lit_left == 0)
				r->line_start = r->cmd.len;
			continue;
		}
		const char *lf = memchr(p + off, '\n', n - off);
		size_t k = lf ? (size_t)(lf - (p + off)) + 1 : n - off;
		size_t linelen = r->cmd.len - r->line_start;
		if (linelen + k > r->lim.line_max || mc_buf_add(&r->cmd, p + off, k) < 0) {
			r->why = "command line too long";
			*used = off;
			return IMAP_RD_FATAL;
		}
		off += k;
		if (lf == NULL)
			break;
		uint64_t litlen = 0;
		bool sync = true;
		int lit = literal_at_end(r, &litlen, &sync);
		if (lit == 0) {
			r->complete = true;
			*used = off;
			return IMAP_RD_COMMAND;
		}
		*used = off;
		/* Decided on the announced length alone, before any byte of the literal is kept. */
		if (lit > 0 && r->lim.append_literals && is_append(r)) {
			r->lit_len = litlen;
			r->lit_sync = sync;
			r->lit_pending = true;
			return IMAP_RD_LITERAL;
		}
		enum imap_rd e = announce(r, lit, litlen, sync);
		if (e != IMAP_RD_MORE)
			return e;
	}
	*used = off;
	return IMAP_RD_MORE;
}

/* ---- the cursor ---- */

void
imap_p_init(struct imap_p *p, char *cmd, size_t len)
{
	memset(p, 0, sizeof(*p));
	p->p = cmd;
	p->end = cmd + len;
}

int
imap_p_fail(struct imap_p *p, const char *why)
{
	if (p->err == NULL)
		p->err = why;
	return -1;
}

/* The line end (CRLF or LF) at q? Its length, 0 if none. */
static size_t
eol_at(const struct imap_p *p, const char *q)
{
	if (q < p->end && *q == '\n')
		return 1;
	if (q + 1 < p->end && q[0] == '\r' && q[1] == '\n')
		return 2;
	return 0;
}

int
imap_p_peek(const struct imap_p *p)
{
	if (p->err || p->p >= p->end || eol_at(p, p->p))
		return -1;
	return (unsigned char)*p->p;
}

bool
imap_p_accept(struct imap_p *p, char c)
{
	if (imap_p_peek(p) == (unsigned char)c) {
		p->p++;
		return true;
	}
	return false;
}

int
imap_p_sp(struct imap_p *p)
{
	if (p->err)
		return -1;
	if (!imap_p_accept(p, ' '))
		return imap_p_fail(p, imap_p_at_end(p) ? "missing argument" : "expected a space");
	return 0;
}

bool
imap_p_at_end(const struct imap_p *p)
{
	size_t n = eol_at(p, p->p);
	return n > 0 && p->p + n == p->end;
}

int
imap_p_end(struct imap_p *p)
{
	if (p->err)
		return -1;
	if (!imap_p_at_end(p))
		return imap_p_fail(p, "unexpected text at the end of the command");
	return 0;
}

/* A run of chars of class ok into out (NUL-terminated); at least one. */
static int
run(struct imap_p *p, bool (*ok)(unsigned char), char *out, size_t outsz, bool upper, const char *what)
{
	if (p->err)
		return -1;
	const char *s = p->p;
	while (p->p < p->end && ok((unsigned char)*p->p))
		p->p++;
	size_t n = (size_t)(p->p - s);
	if (n == 0)
		return imap_p_fail(p, what);
	if (n >= outsz)
		return imap_p_fail(p, "argument too long");
	for (size_t i = 0; i < n; i++)
		out[i] = upper ? (char)toupper((unsigned char)s[i]) : s[i];
	out[n] = '\0';
	return 0;
}

static bool
is_tag_char(unsigned char c)
{
	return is_astring_char(c) && c != '+';
}

int
imap_p_tag(struct imap_p *p, char *out, size_t outsz)
{
	return run(p, is_tag_char, out, outsz, false, "missing tag");
}

int
imap_p_atom_upper(struct imap_p *p, char *out, size_t outsz)
{
	return run(p, is_atom_char, out, outsz, true, "expected an atom");
}

int
imap_p_atom(struct imap_p *p, char *out, size_t outsz)
{
	return run(p, is_atom_char, out, outsz, false, "expected an atom");
}

/* quoted = DQUOTE *QUOTED-CHAR DQUOTE, unescaped in place. */
static int
quoted(struct imap_p *p, struct imap_str *out)
{
	char *w = ++p->p;   /* after the opening quote */
	out->s = w;
	for (;;) {
		if (p->p >= p->end)
			return imap_p_fail(p, "unterminated quoted string");
		unsigned char c = (unsigned char)*p->p++;
		if (c == '"')
			break;
		if (c == '\\') {
			if (p->p >= p->end || (*p->p != '"' && *p->p != '\\'))
				return imap_p_fail(p, "bad escape in quoted string");
			c = (unsigned char)*p->p++;
		} else if (c == '\0') {
			return imap_p_fail(p, "NUL in quoted string");
		} else if (c == '\r' || c == '\n') {
			return imap_p_fail(p, "line end in quoted string");
		} else if (c >= 0x80 && !p->utf8) {
			/* RFC 3501 quoted strings are 7-bit; UTF-8 only with IMAP4rev2 / UTF8=ACCEPT. */
			return imap_p_fail(p, "8-bit character in quoted string");
		}
		*w++ = (char)c;
	}
	out->len = (size_t)(w - out->s);
	out->literal = out->binary = false;
	return 0;
}

/* literal = "{" number ["+"] "}" CRLF *CHAR8 ; literal8 = "~{" ... */
static int
literal(struct imap_p *p, struct imap_str *out)
{
	bool binary = false;
	if (*p->p == '~') {
		binary = true;
		p->p++;
		if (p->p >= p->end || *p->p != '{')
			return imap_p_fail(p, "expected a literal");
	}
	p->p++;   /* '{' */
	uint64_t n = 0;
	const char *d = p->p;
	while (p->p < p->end && *p->p >= '0' && *p->p <= '9') {
		n = n * 10 + (uint64_t)(*p->p - '0');
		if (n > UINT32_MAX)
			return imap_p_fail(p, "literal length is not a 32-bit number");
		p->p++;
	}
	if (p->p == d)
		return imap_p_fail(p, "bad literal length");
	if (p->p < p->end && *p->p == '+')
		p->p++;
	if (p->p >= p->end || *p->p != '}')
		return imap_p_fail(p, "bad literal");
	p->p++;
	size_t e = eol_at(p, p->p);
	if (e == 0)
		return imap_p_fail(p, "a literal must end its line");
	p->p += e;
	/* Never trust the announced length: the bytes must be there. */
	if (n > (uint64_t)(p->end - p->p))
		return imap_p_fail(p, "literal shorter than announced");
	out->s = p->p;
	out->len = (size_t)n;
	out->literal = true;
	out->binary = binary;
	if (!binary && memchr(out->s, '\0', out->len))
		return imap_p_fail(p, "NUL in literal");
	p->p += n;
	return 0;
}

int
imap_p_string(struct imap_p *p, struct imap_str *out)
{
	int c = imap_p_peek(p);
	if (c == '"')
		return quoted(p, out);
	if (c == '{' || c == '~')
		return literal(p, out);
	return imap_p_fail(p, c < 0 ? "missing argument" : "expected a string");
}

int
imap_p_astring_ref(struct imap_p *p, struct imap_str *out)
{
	int c = imap_p_peek(p);
	if (c == '"' || c == '{')
		return imap_p_string(p, out);
	if (p->err)
		return -1;
	const char *s = p->p;
	while (p->p < p->end && is_astring_char((unsigned char)*p->p))
		p->p++;
	if (p->p == s)
		return imap_p_fail(p, c < 0 ? "missing argument" : "expected a string");
	out->s = s;
	out->len = (size_t)(p->p - s);
	out->literal = out->binary = false;
	return 0;
}

static int
copy_str(struct imap_p *p, const struct imap_str *s, char *out, size_t outsz)
{
	if (s->len >= outsz)
		return imap_p_fail(p, "argument too long");
	if (memchr(s->s, '\0', s->len))
		return imap_p_fail(p, "NUL in argument");
	memcpy(out, s->s, s->len);
	out[s->len] = '\0';
	return 0;
}

int
imap_p_astring(struct imap_p *p, char *out, size_t outsz)
{
	struct imap_str s;
	if (imap_p_astring_ref(p, &s) < 0)
		return -1;
	return copy_str(p, &s, out, outsz);
}

int
imap_p_nstring(struct imap_p *p, struct imap_str *out)
{
	if (p->err)
		return -1;
	if (p->end - p->p >= 3 && strncasecmp(p->p, "NIL", 3) == 0 &&
	    (p->p + 3 == p->end || !is_atom_char((unsigned char)p->p[3]))) {
		p->p += 3;
		out->s = NULL;
		out->len = 0;
		out->literal = out->binary = false;
		return 0;
	}
	return imap_p_string(p, out);
}

int
imap_p_list_mailbox(struct imap_p *p, char *out, size_t outsz)
{
	int c = imap_p_peek(p);
	if (c == '"' || c == '{') {
		struct imap_str s;
		if (imap_p_string(p, &s) < 0)
			return -1;
		return copy_str(p, &s, out, outsz);
	}
	return run(p, is_list_char, out, outsz, false, "expected a mailbox pattern");
}

int
imap_p_number64(struct imap_p *p, uint64_t *out)
{
	if (p->err)
		return -1;
	const char *s = p->p;
	uint64_t v = 0;
	while (p->p < p->end && *p->p >= '0' && *p->p <= '9') {
		if (v > (UINT64_C(0x7fffffffffffffff) - (uint64_t)(*p->p - '0')) / 10)
			return imap_p_fail(p, "number too big");
		v = v * 10 + (uint64_t)(*p->p - '0');
		p->p++;
	}
	if (p->p == s)
		return imap_p_fail(p, "expected a number");
	*out = v;
	return 0;
}

int
imap_p_number(struct imap_p *p, uint32_t *out)
{
	uint64_t v;
	if (imap_p_number64(p, &v) < 0)
		return -1;
	if (v > UINT32_MAX)
		return imap_p_fail(p, "number too big");
	*out = (uint32_t)v;
	return 0;
}

int
imap_p_nz_number(struct imap_p *p, uint32_t *out)
{
	if (imap_p_number(p, out) < 0)
		return -1;
	if (*out == 0)
		return imap_p_fail(p, "zero is not allowed here");
	return 0;
}

int
imap_p_list_open(struct imap_p *p)
{
	if (p->err)
		return -1;
	if (!imap_p_accept(p, '('))
		return imap_p_fail(p, "expected '('");
	if (++p->depth > IMAP_NEST_MAX)
		return imap_p_fail(p, "lists nested too deep");
	return 0;
}

int
imap_p_list_close(struct imap_p *p)
{
	if (p->err)
		return -1;
	if (!imap_p_accept(p, ')'))
		return imap_p_fail(p, "expected ')'");
	p->depth--;
	return 0;
}

int
imap_p_flag(struct imap_p *p, char *out, size_t outsz, bool star_ok)
{
	if (p->err)
		return -1;
	if (imap_p_peek(p) != '\\')
		return imap_p_atom(p, out, outsz);
	p->p++;
	if (star_ok && imap_p_accept(p, '*')) {
		if (outsz < 3)
			return imap_p_fail(p, "argument too long");
		strcpy(out, "\\*");
		return 0;
	}
	if (outsz < 2)
		return imap_p_fail(p, "argument too long");
	out[0] = '\\';
	return run(p, is_atom_char, out + 1, outsz - 1, false, "expected a flag");
}

/* One seq-number: nz-number or '*'; 0 stands for '*'. */
static bool
seq_number(const char **s, const char *end, uint32_t *out)
{
	if (*s < end && **s == '*') {
		(*s)++;
		*out = 0;
		return true;
	}
	uint64_t v = 0;
	const char *d = *s;
	while (*s < end && **s >= '0' && **s <= '9') {
		v = v * 10 + (uint64_t)(**s - '0');
		if (v > UINT32_MAX)
			return false;
		(*s)++;
	}
	if (*s == d || v == 0)
		return false;
	*out = (uint32_t)v;
	return true;
}

/* "$": the saved result, resolved by the session (RFC 5182). */
static int
seq_saved(struct imap_p *p, struct imap_seqset *out)
{
	out->dollar = true;
	if (p->saved && p->saved(p->saved_arg, out) < 0)
		return imap_p_fail(p, "cannot use the saved search result now");
	return 0;
}

int
imap_p_seqset(struct imap_p *p, struct imap_seqset *out)
{
	if (p->err)
		return -1;
	memset(out, 0, sizeof(*out));
	out->s = "";
	/*
	 * RFC 5182 §3 (RFC 9051 §9): sequence-set =/ "$", so "$" is a whole
	 * set or the last element of a list ("1:3,$"), never first in one.
	 */
	if (imap_p_accept(p, '$')) {
		if (imap_p_peek(p) == ',' || imap_p_peek(p) == ':')
			return imap_p_fail(p, "\"$\" must be the last element of a sequence set");
		return seq_saved(p, out);
	}
	const char *start = p->p, *s = p->p;
	bool dollar = false;
	for (;;) {
		uint32_t a, b;
		if (!seq_number(&s, p->end, &a))
			return imap_p_fail(p, "bad sequence set");
		if (s < p->end && *s == ':' && (s++, !seq_number(&s, p->end, &b)))
			return imap_p_fail(p, "bad sequence set");
		if (s < p->end && *s == ',') {
			if (s + 1 < p->end && s[1] == '$') {
				dollar = true;
				break;
			}
			s++;
			continue;
		}
		break;
	}
	out->s = start;
	out->len = (size_t)(s - start);
	p->p += s - start;
	if (dollar) {
		p->p += 2;   /* ",$" */
		if (imap_p_peek(p) == ',' || imap_p_peek(p) == ':')
			return imap_p_fail(p, "\"$\" must be the last element of a sequence set");
		return seq_saved(p, out);
	}
	return 0;
}

bool
imap_seqset_next(const struct imap_seqset *set, size_t *pos, uint32_t star, uint32_t *lo, uint32_t *hi)
{
	if (*pos >= set->len) {
		/* the text is done: then the ranges of a resolved "$" */
		size_t i = *pos - set->len;
		if (!set->dollar || i >= set->nranges)
			return false;
		*lo = set->ranges[i].lo;
		*hi = set->ranges[i].hi;
		(*pos)++;
		return true;
	}
	const char *s = set->s + *pos, *end = set->s + set->len;
	uint32_t a, b;
	if (!seq_number(&s, end, &a))
		return false;
	b = a;
	if (s < end && *s == ':') {
		s++;
		if (!seq_number(&s, end, &b))
			return false;
	}
	if (s < end && *s == ',')
		s++;
	*pos = (size_t)(s - set->s);
	if (a == 0)
		a = star;
	if (b == 0)
		b = star;
	*lo = a < b ? a : b;
	*hi = a < b ? b : a;
	return true;
}

bool
imap_seqset_has(const struct imap_seqset *set, uint32_t n, uint32_t star)
{
	if (set->dollar && set->nranges) {
		/* the saved result can be as long as the mailbox: searched by halves, not walked per message */
		size_t lo = 0, hi = set->nranges;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (set->ranges[mid].hi < n)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < set->nranges && set->ranges[lo].lo <= n)
			return true;
	}
	size_t pos = 0;
	uint32_t lo, hi;
	while (pos < set->len && imap_seqset_next(set, &pos, star, &lo, &hi))
		if (n >= lo && n <= hi)
			return true;
	return false;
}

uint32_t
imap_seqset_max(const struct imap_seqset *set, uint32_t star)
{
	size_t pos = 0;
	uint32_t lo, hi, max = 0;
	while (pos < set->len && imap_seqset_next(set, &pos, star, &lo, &hi))
		if (hi > max)
			max = hi;
	if (set->dollar && set->nranges && set->ranges[set->nranges - 1].hi > max)
		max = set->ranges[set->nranges - 1].hi;
	return max;
}

/* ---- dates ---- */

static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
				    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

static int
month_of(const char *s)
{
	for (int i = 0; i < 12; i++)
		if (strncasecmp(s, months[i], 3) == 0)
			return i;
	return -1;
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm): no timegm, no TZ. */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool
digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

static const unsigned char mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

/* "d-Mon-yyyy" or "dd-Mon-yyyy" at s[0..n): the day's start; -1 if malformed. *used gets its length. */
static int
parse_date(const char *s, size_t n, int64_t *days, size_t *used)
{
	int d, y;
	size_t i = 0;
	if (n >= 1 && s[0] == ' ')   /* date-day-fixed = (SP DIGIT) / 2DIGIT */
		i = 1;
	size_t dl = (n > i + 1 && s[i + 1] >= '0' && s[i + 1] <= '9') ? 2 : 1;
	if (n < i + dl + 9 || !digits(s + i, (int)dl, &d))
		return -1;
	i += dl;
	if (s[i] != '-')
		return -1;
	int m = month_of(s + i + 1);
	if (m < 0 || s[i + 4] != '-' || !digits(s + i + 5, 4, &y))
		return -1;
	if (d < 1 || d > mdays[m])
		return -1;
	*days = days_from_civil(y, (unsigned)m + 1, (unsigned)d);
	*used = i + 9;
	return 0;
}

int
imap_p_date_time(struct imap_p *p, time_t *out)
{
	struct imap_str s;
	if (p->err)
		return -1;
	if (imap_p_peek(p) != '"')
		return imap_p_fail(p, "expected a quoted date-time");
	if (quoted(p, &s) < 0)
		return -1;
	int64_t days;
	size_t used;
	int hh, mm, ss, zh, zm;
	const char *t = s.s;
	/* date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE */
	if (parse_date(t, s.len, &days, &used) < 0 || s.len != used + 15 || t[used] != ' ' ||
	    !digits(t + used + 1, 2, &hh) || t[used + 3] != ':' || !digits(t + used + 4, 2, &mm) ||
	    t[used + 6] != ':' || !digits(t + used + 7, 2, &ss) || t[used + 9] != ' ' ||
	    (t[used + 10] != '+' && t[used + 10] != '-') || !digits(t + used + 11, 2, &zh) ||
	    !digits(t + used + 13, 2, &zm) || hh > 23 || mm > 59 || ss > 60 || zm > 59)
		return imap_p_fail(p, "bad date-time");
	int64_t off = ((int64_t)zh * 60 + zm) * 60;
	if (t[used + 10] == '-')
		off = -off;
	*out = (time_t)(days * 86400 + hh * 3600 + mm * 60 + ss - off);
	return 0;
}

int
imap_p_date(struct imap_p *p, time_t *out)
{
	if (p->err)
		return -1;
	int64_t days;
	size_t used;
	if (imap_p_peek(p) == '"') {
		struct imap_str s;
		if (quoted(p, &s) < 0)
			return -1;
		if (parse_date(s.s, s.len, &days, &used) < 0 || used != s.len)
			return imap_p_fail(p, "bad date");
	} else {
		if (parse_date(p->p, (size_t)(p->end - p->p), &days, &used) < 0)
			return imap_p_fail(p, "bad date");
		p->p += used;
	}
	*out = (time_t)(days * 86400);
	return 0;
}
