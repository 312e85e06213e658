/*
 * search.c - the IMAP SEARCH program: parser, evaluator, formatters (see
 * search.h for how the command code uses them).
 *
 * Called by imapd's command code for SEARCH, and by sort.c and thread.c.
 * Owns the program it builds; reads message data only through the
 * caller's callbacks. The parser reads the raw command (literals in place)
 * with every length checked against the bytes there; it copies what it
 * keeps. The evaluator answers flags, dates, sizes, sets and MODSEQ from
 * the index row, header keys from the cached fields, and reads a message
 * file only for BODY, TEXT and HEADER of an uncached field: the header
 * block once per message (at most HDR_MAX bytes) for HEADER; for BODY and
 * TEXT the text a reader sees (libmailcore's mimetext.h: header fields
 * with encoded words decoded, text/ parts with base64/quoted-printable
 * undone and their charset made UTF-8), streamed with the needle's length
 * of overlap, so memory does not grow with the message. String matching
 * is ASCII case-insensitive on UTF-8 with the two-byte letters of
 * Latin-1/Extended-A, Greek and Cyrillic folded too (fold_cp; not all of
 * i;unicode-casemap).
 */
#include "search.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mail/mailstore.h"
#include "mail/mimetext.h"

#define HDR_MAX (256 * 1024)
#define DAY 86400

const char IMAP_SEARCH_BADCHARSET[] = "BADCHARSET";

/* ---- the lexer over the raw command ---- */

struct lex {
	char *p;
	const char *end;
	const char *why;
	struct imap_search *prog;
	int depth;
};

static int
fail(struct lex *l, const char *why)
{
	if (l->why == NULL)
		l->why = why;
	return -1;
}

static bool
at_eol(const struct lex *l)
{
	return l->p >= l->end || *l->p == '\r' || *l->p == '\n';
}

static int
sp(struct lex *l)
{
	if (l->p < l->end && *l->p == ' ') {
		l->p++;
		return 0;
	}
	return fail(l, "expected a space");
}

static bool
atom_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("(){%*\"\\]", c);
}

/* An atom into out (uppercased when upper). */
static int
atom(struct lex *l, char *out, size_t outsz, bool upper)
{
	size_t n = 0;
	while (l->p < l->end && atom_char((unsigned char)*l->p)) {
		if (n + 1 >= outsz)
			return fail(l, "word too long");
		char c = *l->p++;
		out[n++] = upper && c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
	}
	out[n] = '\0';
	return n ? 0 : fail(l, "expected a word");
}

static int
number64(struct lex *l, uint64_t *out, uint64_t max)
{
	uint64_t v = 0;
	const char *s = l->p;
	while (l->p < l->end && *l->p >= '0' && *l->p <= '9') {
		unsigned d = (unsigned)(*l->p - '0');
		if (v > (max - d) / 10)
			return fail(l, "number too large");
		v = v * 10 + d;
		l->p++;
	}
	if (l->p == s)
		return fail(l, "expected a number");
	*out = v;
	return 0;
}

/*
 * astring: atom (with ']'), quoted string, or literal {n} / {n+} CRLF
 * bytes. A malloc'd NUL-terminated copy; a NUL inside is refused.
 */
static int
astring(struct lex *l, char **out, size_t *outlen)
{
	char *buf = NULL;
	size_t n = 0;
	if (l->p >= l->end)
		return fail(l, "expected a string");
	if (*l->p == '"') {
		l->p++;
		buf = malloc(IMAP_SEARCH_STR_MAX + 1);
		if (buf == NULL)
			return fail(l, "out of memory");
		for (;;) {
			if (l->p >= l->end || *l->p == '\r' || *l->p == '\n' || *l->p == '\0') {
				free(buf);
				return fail(l, "unterminated quoted string");
			}
			char c = *l->p++;
			if (c == '"')
				break;
			if (c == '\\') {
				if (l->p >= l->end || (*l->p != '"' && *l->p != '\\')) {
					free(buf);
					return fail(l, "bad escape in quoted string");
				}
				c = *l->p++;
			}
			if (n == IMAP_SEARCH_STR_MAX) {
				free(buf);
				return fail(l, "string too long");
			}
			buf[n++] = c;
		}
	} else if (*l->p == '{') {
		l->p++;
		uint64_t len;
		if (number64(l, &len, UINT32_MAX) < 0)
			return -1;
		if (l->p < l->end && *l->p == '+')
			l->p++;
		if (l->end - l->p < 3 || l->p[0] != '}' || l->p[1] != '\r' || l->p[2] != '\n')
			return fail(l, "bad literal");
		l->p += 3;
		if (len > IMAP_SEARCH_STR_MAX)
			return fail(l, "string too long");
		if ((uint64_t)(l->end - l->p) < len)
			return fail(l, "literal shorter than announced");
		if (memchr(l->p, '\0', (size_t)len))
			return fail(l, "NUL in a string");
		buf = malloc((size_t)len + 1);
		if (buf == NULL)
			return fail(l, "out of memory");
		memcpy(buf, l->p, (size_t)len);
		n = (size_t)len;
		l->p += len;
	} else {
		const char *s = l->p;
		while (l->p < l->end && (atom_char((unsigned char)*l->p) || *l->p == ']'))
			l->p++;
		n = (size_t)(l->p - s);
		if (n == 0)
			return fail(l, "expected a string");
		if (n > IMAP_SEARCH_STR_MAX)
			return fail(l, "string too long");
		buf = malloc(n + 1);
		if (buf == NULL)
			return fail(l, "out of memory");
		memcpy(buf, s, n);
	}
	buf[n] = '\0';
	*out = buf;
	if (outlen)
		*outlen = n;
	return 0;
}

static const char *const months[] = { "jan", "feb", "mar", "apr", "may", "jun",
				      "jul", "aug", "sep", "oct", "nov", "dec" };

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
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

/* date = d-Mon-yyyy, quoted or not: the day's start in UTC seconds. */
static int
date(struct lex *l, int64_t *out)
{
	bool q = l->p < l->end && *l->p == '"';
	if (q)
		l->p++;
	uint64_t d, y;
	char mon[4];
	if (number64(l, &d, 99) < 0 || d < 1 || d > 31 || l->end - l->p < 5 || *l->p != '-')
		return fail(l, "bad date");
	l->p++;
	for (int i = 0; i < 3; i++) {
		char c = l->p[i];
		mon[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	mon[3] = '\0';
	l->p += 3;
	int m = -1;
	for (int i = 0; i < 12; i++)
		if (strcmp(mon, months[i]) == 0)
			m = i;
	if (m < 0 || l->p >= l->end || *l->p != '-')
		return fail(l, "bad date");
	l->p++;
	if (number64(l, &y, 9999) < 0 || y < 1000)
		return fail(l, "bad date");
	if (q) {
		if (l->p >= l->end || *l->p != '"')
			return fail(l, "bad date");
		l->p++;
	}
	*out = days_from_civil((int64_t)y, (unsigned)m + 1, (unsigned)d) * DAY;
	return 0;
}

/* ---- sequence sets ---- */

static int
cmp_range(const void *a, const void *b)
{
	const struct imap_search_range *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/*
 * sequence-set into node->set: ranges without '*' normalised (lo <= hi),
 * sorted and merged first (binary search), then those with '*'.
 */
static int
seqset(struct lex *l, struct imap_search_node *n)
{
	if (l->p < l->end && *l->p == '$') {
		l->p++;
		n->dollar = true;
		return 0;
	}
	size_t cap = 8, k = 0;
	struct imap_search_range *v = malloc(cap * sizeof(*v));
	if (v == NULL)
		return fail(l, "out of memory");
	for (;;) {
		uint32_t a[2] = { 0, 0 };
		int parts = 0;
		for (; parts < 2; parts++) {
			if (l->p < l->end && *l->p == '*') {
				l->p++;
				a[parts] = 0;
			} else {
				uint64_t x;
				if (number64(l, &x, UINT32_MAX) < 0 || x == 0) {
					free(v);
					return fail(l, "bad sequence set");
				}
				a[parts] = (uint32_t)x;
			}
			if (parts == 0 && !(l->p < l->end && *l->p == ':')) {
				a[1] = a[0];
				break;
			}
			if (parts == 0)
				l->p++;
		}
		if (k == IMAP_SEARCH_RANGES_MAX) {
			free(v);
			return fail(l, "sequence set too long");
		}
		if (k == cap) {
			cap *= 2;
			struct imap_search_range *nv = realloc(v, cap * sizeof(*v));
			if (nv == NULL) {
				free(v);
				return fail(l, "out of memory");
			}
			v = nv;
		}
		v[k].lo = a[0] && a[1] && a[0] > a[1] ? a[1] : a[0];
		v[k].hi = a[0] && a[1] && a[0] > a[1] ? a[0] : a[1];
		k++;
		if (l->p + 1 < l->end && l->p[0] == ',' && l->p[1] == '$') {
			/* RFC 5182: "$" may end a set ("1:3,$"): the numbers, or the saved result */
			l->p += 2;
			n->dollar = true;
			break;
		}
		if (l->p < l->end && *l->p == ',') {
			l->p++;
			continue;
		}
		break;
	}
	/* numeric ranges first, sorted and merged; starred ones after */
	size_t nnum = 0;
	for (size_t i = 0; i < k; i++)
		if (v[i].lo && v[i].hi) {
			struct imap_search_range t = v[nnum];
			v[nnum++] = v[i];
			v[i] = t;
		}
	qsort(v, nnum, sizeof(*v), cmp_range);
	size_t m = 0;
	for (size_t i = 0; i < nnum; i++) {
		if (m && v[i].lo <= v[m - 1].hi + 1ull) {
			if (v[i].hi > v[m - 1].hi)
				v[m - 1].hi = v[i].hi;
		} else {
			v[m++] = v[i];
		}
	}
	for (size_t i = nnum; i < k; i++)
		v[m++] = v[i];
	n->set = v;
	n->nset = m;
	return 0;
}

static bool
set_has(const struct imap_search_node *n, uint32_t x, uint32_t star)
{
	size_t lo = 0, hi = n->nset;
	/* binary search over the sorted numeric prefix */
	size_t nnum = 0;
	while (nnum < n->nset && n->set[nnum].lo && n->set[nnum].hi)
		nnum++;
	hi = nnum;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (x < n->set[mid].lo)
			hi = mid;
		else if (x > n->set[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	for (size_t i = nnum; i < n->nset; i++) {
		uint32_t a = n->set[i].lo ? n->set[i].lo : star, b = n->set[i].hi ? n->set[i].hi : star;
		if (a > b) {
			uint32_t t = a;
			a = b;
			b = t;
		}
		if (x >= a && x <= b)
			return true;
	}
	return false;
}

/* ---- the program ---- */

static struct imap_search_node *
node_new(struct lex *l, enum imap_search_kind kind)
{
	if (l->prog->nodes >= IMAP_SEARCH_KEYS_MAX) {
		fail(l, "search program too large");
		return NULL;
	}
	struct imap_search_node *n = calloc(1, sizeof(*n));
	if (n == NULL) {
		fail(l, "out of memory");
		return NULL;
	}
	l->prog->nodes++;
	n->kind = kind;
	return n;
}

static void
node_free(struct imap_search_node *n)
{
	while (n) {
		struct imap_search_node *next = n->next;
		node_free(n->child);
		free(n->str);
		free(n->hname);
		free(n->set);
		free(n);
		n = next;
	}
}

void
imap_search_free(struct imap_search *prog)
{
	if (prog == NULL)
		return;
	node_free(prog->root);
	prog->root = NULL;
	prog->nodes = 0;
}

/*
 * Case folding for matching: ASCII, and the two-byte UTF-8 letters of
 * Latin-1, Latin Extended-A, Greek and Cyrillic (upper and lower case
 * there have the same UTF-8 length, so a folded string keeps its length
 * and a match window its byte size). Not the whole of i;unicode-casemap.
 */
static uint32_t
fold_cp(uint32_t c)
{
	if (c < 0x80)
		return c >= 'A' && c <= 'Z' ? c + 32 : c;
	if (c >= 0xC0 && c <= 0xDE && c != 0xD7)
		return c + 0x20;
	if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177))
		return c | 1;
	if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E))
		return (c & 1) ? c + 1 : c;
	if (c == 0x178)
		return 0xFF;
	if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2)
		return c + 0x20;
	if (c >= 0x410 && c <= 0x42F)
		return c + 0x20;
	if (c >= 0x400 && c <= 0x40F)
		return c + 0x50;
	return c;
}

/* The code point at p (n bytes left) and its length; a byte that starts no valid two-byte sequence stands alone. */
static uint32_t
next_cp(const unsigned char *p, size_t n, size_t *len)
{
	if (p[0] >= 0xC2 && p[0] <= 0xDF && n >= 2 && (p[1] & 0xC0) == 0x80) {
		*len = 2;
		return ((uint32_t)(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
	}
	*len = 1;
	return p[0];
}

/* Fold s in place (same length, see fold_cp). */
static void
fold_utf8(char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t l;
		uint32_t c = fold_cp(next_cp((const unsigned char *)s + i, n - i, &l));
		if (l == 1)
			s[i] = (char)c;
		else {
			s[i] = (char)(0xC0 | (c >> 6));
			s[i + 1] = (char)(0x80 | (c & 0x3F));
		}
		i += l;
	}
}

static void
lower_ascii(char *s)
{
	fold_utf8(s, strlen(s));
}

/* How dear a node is to evaluate: 0 index, 1 cached fields, 2 message file. */
static int
cost(const struct imap_search_node *n)
{
	switch (n->kind) {
	case ISK_AND:
	case ISK_OR:
	case ISK_NOT: {
		int c = 0;
		for (const struct imap_search_node *k = n->child; k; k = k->next) {
			int x = cost(k);
			c = x > c ? x : c;
		}
		return c;
	}
	case ISK_FIELD:
	case ISK_SENTBEFORE:
	case ISK_SENTON:
	case ISK_SENTSINCE:
		return 1;
	case ISK_HEADER:
	case ISK_BODY:
	case ISK_TEXT:
		return 2;
	default:
		return 0;
	}
}

/* Children of an AND, cheapest first (stable), so a file is read only when the index could not decide. */
static void
order_children(struct imap_search_node *and)
{
	struct imap_search_node *lists[3] = { NULL, NULL, NULL }, **tails[3] = { &lists[0], &lists[1], &lists[2] };
	for (struct imap_search_node *k = and->child, *next; k; k = next) {
		next = k->next;
		int c = cost(k);
		k->next = NULL;
		*tails[c] = k;
		tails[c] = &k->next;
	}
	*tails[0] = lists[1] ? lists[1] : lists[2];
	if (lists[1])
		*tails[1] = lists[2];
	and->child = lists[0] ? lists[0] : lists[1] ? lists[1] : lists[2];
}

static struct imap_search_node *key(struct lex *l);

/* key *(SP key) until ')' (inner) or the line end (top); an AND node. */
static struct imap_search_node *
key_list(struct lex *l, bool inner)
{
	struct imap_search_node *and = node_new(l, ISK_AND), **tail;
	if (and == NULL)
		return NULL;
	tail = &and->child;
	for (;;) {
		struct imap_search_node *k = key(l);
		if (k == NULL) {
			node_free(and);
			return NULL;
		}
		*tail = k;
		tail = &k->next;
		if (inner && l->p < l->end && *l->p == ')')
			break;
		if (!inner && at_eol(l))
			break;
		if (sp(l) < 0) {
			node_free(and);
			return NULL;
		}
	}
	order_children(and);
	return and;
}

struct flagkey {
	const char *name;
	uint32_t mask, want;
};

static const struct flagkey flagkeys[] = {
	{ "ANSWERED", MC_FLAG_ANSWERED, MC_FLAG_ANSWERED }, { "UNANSWERED", MC_FLAG_ANSWERED, 0 },
	{ "DELETED", MC_FLAG_DELETED, MC_FLAG_DELETED },    { "UNDELETED", MC_FLAG_DELETED, 0 },
	{ "DRAFT", MC_FLAG_DRAFT, MC_FLAG_DRAFT },          { "UNDRAFT", MC_FLAG_DRAFT, 0 },
	{ "FLAGGED", MC_FLAG_FLAGGED, MC_FLAG_FLAGGED },    { "UNFLAGGED", MC_FLAG_FLAGGED, 0 },
	{ "SEEN", MC_FLAG_SEEN, MC_FLAG_SEEN },             { "UNSEEN", MC_FLAG_SEEN, 0 },
};

static const struct {
	const char *name;
	enum imap_search_kind kind;
} datekeys[] = {
	{ "BEFORE", ISK_BEFORE },         { "ON", ISK_ON },         { "SINCE", ISK_SINCE },
	{ "SENTBEFORE", ISK_SENTBEFORE }, { "SENTON", ISK_SENTON }, { "SENTSINCE", ISK_SENTSINCE },
};

static const struct {
	const char *name;
	enum imap_search_field field;
} fieldkeys[] = {
	{ "FROM", ISF_FROM }, { "TO", ISF_TO }, { "CC", ISF_CC }, { "BCC", ISF_BCC }, { "SUBJECT", ISF_SUBJECT },
};

/* A node with a string argument (SP astring), lowercased for matching unless raw. */
static struct imap_search_node *
str_node(struct lex *l, enum imap_search_kind kind, bool raw)
{
	struct imap_search_node *n = node_new(l, kind);
	if (n == NULL)
		return NULL;
	if (sp(l) < 0 || astring(l, &n->str, &n->strlen) < 0) {
		node_free(n);
		return NULL;
	}
	if (!raw)
		lower_ascii(n->str);
	return n;
}

static struct imap_search_node *
flag_node(struct lex *l, uint32_t mask, uint32_t want)
{
	struct imap_search_node *n = node_new(l, ISK_FLAGS);
	if (n) {
		n->mask = mask;
		n->want = want;
	}
	return n;
}

static struct imap_search_node *
wrap(struct lex *l, enum imap_search_kind kind, struct imap_search_node *child)
{
	if (child == NULL)
		return NULL;
	struct imap_search_node *n = node_new(l, kind);
	if (n == NULL) {
		node_free(child);
		return NULL;
	}
	n->child = child;
	return n;
}

static struct imap_search_node *
key(struct lex *l)
{
	if (at_eol(l))
		return fail(l, "expected a search key"), NULL;
	char c = *l->p;
	if (c == '(') {
		if (++l->depth > IMAP_SEARCH_NEST_MAX)
			return fail(l, "search program nested too deep"), NULL;
		l->p++;
		struct imap_search_node *n = key_list(l, true);
		if (n == NULL)
			return NULL;
		l->p++; /* ')' */
		l->depth--;
		return n;
	}
	if ((c >= '0' && c <= '9') || c == '*' || c == '$') {
		struct imap_search_node *n = node_new(l, ISK_SEQSET);
		if (n && seqset(l, n) < 0) {
			node_free(n);
			return NULL;
		}
		return n;
	}
	char w[32];
	if (atom(l, w, sizeof(w), true) < 0)
		return NULL;
	for (size_t i = 0; i < sizeof(flagkeys) / sizeof(flagkeys[0]); i++)
		if (strcmp(w, flagkeys[i].name) == 0)
			return flag_node(l, flagkeys[i].mask, flagkeys[i].want);
	for (size_t i = 0; i < sizeof(datekeys) / sizeof(datekeys[0]); i++) {
		if (strcmp(w, datekeys[i].name) != 0)
			continue;
		struct imap_search_node *n = node_new(l, datekeys[i].kind);
		if (n && (sp(l) < 0 || date(l, &n->day) < 0)) {
			node_free(n);
			return NULL;
		}
		return n;
	}
	for (size_t i = 0; i < sizeof(fieldkeys) / sizeof(fieldkeys[0]); i++) {
		if (strcmp(w, fieldkeys[i].name) != 0)
			continue;
		struct imap_search_node *n = str_node(l, ISK_FIELD, false);
		if (n)
			n->field = fieldkeys[i].field;
		return n;
	}
	if (strcmp(w, "ALL") == 0)
		return node_new(l, ISK_ALL);
	if (strcmp(w, "RECENT") == 0 || strcmp(w, "OLD") == 0) {
		struct imap_search_node *n = node_new(l, ISK_RECENT);
		if (n)
			n->want = w[0] == 'R';
		return n;
	}
	if (strcmp(w, "NEW") == 0) {
		struct imap_search_node *and = node_new(l, ISK_AND), *r = node_new(l, ISK_RECENT);
		struct imap_search_node *u = flag_node(l, MC_FLAG_SEEN, 0);
		if (and == NULL || r == NULL || u == NULL) {
			node_free(and);
			node_free(r);
			node_free(u);
			return NULL;
		}
		r->want = 1;
		and->child = r;
		r->next = u;
		return and;
	}
	if (strcmp(w, "KEYWORD") == 0 || strcmp(w, "UNKEYWORD") == 0) {
		struct imap_search_node *n = str_node(l, ISK_KEYWORD, true);
		if (n && strcasecmp(n->str, "$Forwarded") == 0) {
			/* kept as the store's flag bit (Maildir 'P'), not as a keyword */
			n->kind = ISK_FLAGS;
			n->mask = n->want = MC_FLAG_FORWARDED;
		}
		return w[0] == 'U' ? wrap(l, ISK_NOT, n) : n;
	}
	if (strcmp(w, "BODY") == 0 || strcmp(w, "TEXT") == 0) {
		struct imap_search_node *n = str_node(l, w[0] == 'B' ? ISK_BODY : ISK_TEXT, false);
		if (n)
			l->prog->needs_file = true;
		return n;
	}
	if (strcmp(w, "HEADER") == 0) {
		struct imap_search_node *n = node_new(l, ISK_HEADER);
		if (n == NULL)
			return NULL;
		if (sp(l) < 0 || astring(l, &n->hname, NULL) < 0 || sp(l) < 0 || astring(l, &n->str, &n->strlen) < 0) {
			node_free(n);
			return NULL;
		}
		lower_ascii(n->str);
		l->prog->needs_file = true;
		return n;
	}
	if (strcmp(w, "LARGER") == 0 || strcmp(w, "SMALLER") == 0) {
		struct imap_search_node *n = node_new(l, w[0] == 'L' ? ISK_LARGER : ISK_SMALLER);
		if (n && (sp(l) < 0 || number64(l, &n->num, UINT64_MAX >> 1) < 0)) {
			node_free(n);
			return NULL;
		}
		return n;
	}
	if (strcmp(w, "UID") == 0) {
		struct imap_search_node *n = node_new(l, ISK_UIDSET);
		if (n && (sp(l) < 0 || seqset(l, n) < 0)) {
			node_free(n);
			return NULL;
		}
		return n;
	}
	if (strcmp(w, "NOT") == 0) {
		if (++l->depth > IMAP_SEARCH_NEST_MAX)
			return fail(l, "search program nested too deep"), NULL;
		struct imap_search_node *n = sp(l) < 0 ? NULL : wrap(l, ISK_NOT, key(l));
		l->depth--;
		return n;
	}
	if (strcmp(w, "OR") == 0) {
		if (++l->depth > IMAP_SEARCH_NEST_MAX)
			return fail(l, "search program nested too deep"), NULL;
		struct imap_search_node *a = NULL, *b = NULL;
		if (sp(l) < 0 || (a = key(l)) == NULL || sp(l) < 0 || (b = key(l)) == NULL) {
			node_free(a);
			return NULL;
		}
		l->depth--;
		a->next = b;
		return wrap(l, ISK_OR, a);
	}
	if (strcmp(w, "MODSEQ") == 0) {
		/* MODSEQ [entry-name SP entry-type-req SP] mod-sequence-valzer (RFC 7162 3.1.5) */
		struct imap_search_node *n = node_new(l, ISK_MODSEQ);
		if (n == NULL || sp(l) < 0)
			goto modseq_bad;
		if (l->p < l->end && *l->p == '"') {
			char *entry = NULL, type[16];
			if (astring(l, &entry, NULL) < 0)
				goto modseq_bad;
			free(entry);
			if (sp(l) < 0 || atom(l, type, sizeof(type), true) < 0 || sp(l) < 0)
				goto modseq_bad;
			if (strcmp(type, "PRIV") != 0 && strcmp(type, "SHARED") != 0 && strcmp(type, "ALL") != 0) {
				fail(l, "bad MODSEQ entry type");
				goto modseq_bad;
			}
		}
		if (number64(l, &n->num, UINT64_MAX >> 1) < 0)
			goto modseq_bad;
		l->prog->has_modseq = true;
		return n;
modseq_bad:
		node_free(n);
		return NULL;
	}
	fail(l, "unknown search key");
	return NULL;
}

int
imap_search_parse_return(char **pp, const char *end, struct imap_search *prog, const char **why)
{
	struct lex l = { .p = *pp, .end = end, .prog = prog };
	if (end - l.p < 7 || strncasecmp(l.p, "RETURN ", 7) != 0)
		return 0;
	l.p += 7;
	if (l.p >= end || *l.p != '(') {
		*why = "RETURN wants a list";
		return -1;
	}
	l.p++;
	prog->esearch = true;
	prog->ret = 0;
	while (l.p < end && *l.p != ')') {
		char w[16];
		if (atom(&l, w, sizeof(w), true) < 0) {
			*why = l.why;
			return -1;
		}
		if (strcmp(w, "MIN") == 0)
			prog->ret |= IMAP_RET_MIN;
		else if (strcmp(w, "MAX") == 0)
			prog->ret |= IMAP_RET_MAX;
		else if (strcmp(w, "ALL") == 0)
			prog->ret |= IMAP_RET_ALL;
		else if (strcmp(w, "COUNT") == 0)
			prog->ret |= IMAP_RET_COUNT;
		else if (strcmp(w, "SAVE") == 0)
			prog->ret |= IMAP_RET_SAVE;
		else {
			*why = "unknown RETURN option";
			return -1;
		}
		if (l.p < end && *l.p == ' ')
			l.p++;
	}
	if (l.p >= end || end - l.p < 2 || l.p[1] != ' ') {
		*why = "RETURN list not closed";
		return -1;
	}
	l.p += 2;
	if (prog->ret == 0)
		prog->ret = IMAP_RET_ALL;
	*pp = l.p;
	return 0;
}

int
imap_search_parse(char **pp, const char *end, bool charset_first, struct imap_search *prog, const char **why)
{
	struct lex l = { .p = *pp, .end = end, .prog = prog };
	bool has_charset = charset_first;
	if (!has_charset && end - l.p >= 8 && strncasecmp(l.p, "CHARSET ", 8) == 0) {
		l.p += 8;
		has_charset = true;
	}
	if (has_charset) {
		char *cs = NULL;
		if (astring(&l, &cs, NULL) < 0 || sp(&l) < 0) {
			free(cs);
			*why = l.why;
			return -1;
		}
		bool ok = strcasecmp(cs, "UTF-8") == 0 || strcasecmp(cs, "US-ASCII") == 0;
		free(cs);
		if (!ok) {
			*why = IMAP_SEARCH_BADCHARSET;
			return -1;
		}
	}
	prog->root = key_list(&l, false);
	if (prog->root == NULL) {
		*why = l.why ? l.why : "bad search program";
		imap_search_free(prog);
		return -1;
	}
	*pp = l.p;
	return 0;
}

/* ---- the evaluator ---- */

bool
imap_search_contains(const char *hay, size_t hl, const char *needle, size_t nl)
{
	if (nl == 0)
		return true;
	if (hl < nl)
		return false;
	const unsigned char *h = (const unsigned char *)hay, *nd = (const unsigned char *)needle;
	unsigned char first = nd[0];
	for (size_t i = 0; i + nl <= hl; i++) {
		unsigned char c = h[i];
		if (c < 0x80) {
			if (c >= 'A' && c <= 'Z')
				c = (unsigned char)(c + 32);
			if (c != first)
				continue;
		} else if (c < 0xC2 || c > 0xDF || first < 0xC2) {
			if (c != first)
				continue;
		}
		/* compare folded code points (folding keeps lengths, so j walks both) */
		size_t j = 0;
		while (j < nl) {
			size_t lh, ln;
			uint32_t a = fold_cp(next_cp(h + i + j, hl - i - j, &lh));
			uint32_t b = next_cp(nd + j, nl - j, &ln);
			if (a != b || lh != ln)
				break;
			j += ln;
		}
		if (j == nl)
			return true;
	}
	return false;
}

/* What one message's evaluation has loaded so far (the header block, the open file). */
struct ev {
	const struct imap_search_src *src;
	const struct imap_search_msg *m;
	int fd;                /* -1 until opened; -2 when it could not be */
	char *hdr;             /* the header block (LF line ends), NUL-terminated */
	size_t hdrlen;
	uint64_t body_off;     /* where the body starts in the file */
	bool hdr_done;
	struct mc_buf tmp;
};

static int
ev_open(struct ev *e)
{
	if (e->fd == -1) {
		e->fd = e->src->open ? e->src->open(e->src->arg, e->m) : -1;
		if (e->fd < 0)
			e->fd = -2;
	}
	return e->fd >= 0 ? 0 : -1;
}

/* Read the header block (up to HDR_MAX) once. */
static int
ev_header(struct ev *e)
{
	if (e->hdr_done)
		return e->hdr ? 0 : -1;
	e->hdr_done = true;
	if (ev_open(e) < 0)
		return -1;
	char *h = malloc(HDR_MAX + 1);
	if (h == NULL)
		return -1;
	size_t n = 0;
	while (n < HDR_MAX) {
		size_t want = HDR_MAX - n < 8192 ? HDR_MAX - n : 8192;
		ssize_t r = pread(e->fd, h + n, want, (off_t)n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		/* stop reading once the blank line is in */
		h[n] = '\0';
		/* stop reading once the blank line is in (looked for in what came last, with one byte before) */
		size_t from = n - (size_t)r > 0 ? n - (size_t)r - 1 : 0;
		if (strstr(h + from, "\n\n") || h[0] == '\n')
			break;
	}
	h[n] = '\0';
	size_t end = n;
	if (n > 0 && h[0] == '\n') {
		end = 0;
		e->body_off = 1;
	} else {
		char *b = strstr(h, "\n\n");
		if (b) {
			end = (size_t)(b - h) + 1;
			e->body_off = end + 1;
		} else {
			e->body_off = n;
		}
	}
	h[end] = '\0';
	e->hdr = h;
	e->hdrlen = end;
	return 0;
}

/*
 * The header fields named name in the cached header block, one after
 * another: *pos is where to go on from. The unfolded (and decoded) value
 * into e->tmp. true when one was found.
 */
static bool
next_field(struct ev *e, const char *name, size_t *pos)
{
	size_t nl = strlen(name);
	const char *h = e->hdr, *end = e->hdr + e->hdrlen;
	const char *p = h + *pos;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = eol ? eol : end;
		bool match = (size_t)(line_end - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':';
		/* the field runs on over continuation lines */
		const char *fend = line_end;
		while (fend < end && fend + 1 < end && (fend[1] == ' ' || fend[1] == '\t')) {
			const char *n2 = memchr(fend + 1, '\n', (size_t)(end - fend - 1));
			fend = n2 ? n2 : end;
		}
		const char *after = fend < end ? fend + 1 : end;
		if (match) {
			const char *v = p + nl + 1;
			mc_buf_reset(&e->tmp);
			char *raw = malloc((size_t)(fend - v) + 1);
			if (raw == NULL)
				return false;
			size_t k = 0;
			for (const char *q = v; q < fend; q++)
				if (*q != '\n' && *q != '\r')
					raw[k++] = *q;
			size_t skip = 0;
			while (skip < k && (raw[skip] == ' ' || raw[skip] == '\t'))
				skip++;
			if (e->src->decode == NULL || e->src->decode(raw + skip, k - skip, &e->tmp) < 0) {
				mc_buf_reset(&e->tmp);
				mc_buf_add(&e->tmp, raw + skip, k - skip);
			}
			free(raw);
			*pos = (size_t)(after - h);
			return true;
		}
		p = after;
	}
	*pos = (size_t)(end - h);
	return false;
}

static const char *const field_names[ISF_COUNT] = {
	"Subject", "From", "To", "Cc", "Bcc", "Message-ID", "In-Reply-To", "References", NULL, NULL, NULL,
};

/* HEADER name str: any field of that name whose value holds str ("" = the field is there). */
static bool
header_has(struct ev *e, const char *name, const char *str, size_t sl)
{
	if (ev_header(e) < 0)
		return false;
	size_t pos = 0;
	while (next_field(e, name, &pos))
		if (imap_search_contains(e->tmp.data ? e->tmp.data : "", e->tmp.len, str, sl))
			return true;
	return false;
}

/* A needle looked for in the decoded text pieces of mc_mimetext_scan, with overlap inside one body. */
struct textmatch {
	const char *needle;
	size_t nl;
	char *tail;            /* the last nl - 1 bytes of the body so far, then room for as many more */
	size_t ntail;
};

static int
text_piece(void *arg, const char *s, size_t n, bool cont)
{
	struct textmatch *t = arg;
	if (!cont)
		t->ntail = 0;
	if (t->ntail > 0) {
		/* a match across the two pieces: the tail and the first nl - 1 bytes of this one */
		size_t k = n < t->nl - 1 ? n : t->nl - 1;
		memcpy(t->tail + t->ntail, s, k);
		if (imap_search_contains(t->tail, t->ntail + k, t->needle, t->nl))
			return 1;
	}
	if (imap_search_contains(s, n, t->needle, t->nl))
		return 1;
	/* keep the last nl - 1 bytes of what was seen (the old tail when this piece is shorter) */
	size_t keep = t->nl - 1;
	if (n >= keep) {
		memcpy(t->tail, s + n - keep, keep);
		t->ntail = keep;
	} else {
		size_t old = t->ntail + n > keep ? keep - n : t->ntail;
		memmove(t->tail, t->tail + t->ntail - old, old);
		memcpy(t->tail + old, s, n);
		t->ntail = old + n;
	}
	return 0;
}

/* Is needle (folded) in the decoded text of the message (what: MC_MIMETEXT_*)? */
static bool
text_has(struct ev *e, unsigned what, const char *needle, size_t nl)
{
	if (nl == 0)
		return true;
	if (ev_open(e) < 0)
		return false;
	struct textmatch t = { .needle = needle, .nl = nl, .tail = malloc(2 * nl) };
	if (t.tail == NULL)
		return false;
	int r = mc_mimetext_scan(e->fd, what, text_piece, &t);
	free(t.tail);
	return r == 1;
}

static bool
has_keyword(const char *list, const char *kw)
{
	size_t kl = strlen(kw);
	for (const char *p = list; p && *p;) {
		while (*p == ' ')
			p++;
		const char *e = strchr(p, ' ');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == kl && n && strncasecmp(p, kw, n) == 0)
			return true;
		p += n;
	}
	return false;
}

static int64_t
day_of(int64_t t)
{
	return (t >= 0 ? t / DAY : (t - DAY + 1) / DAY) * DAY;
}

static int64_t
sent_day(struct ev *e)
{
	int64_t t;
	int tz = 0;
	if (e->src->sent_date && e->src->sent_date(e->src->arg, e->m, &t, &tz) == 0)
		return day_of(t + (int64_t)tz * 60);
	return day_of(e->m->internal_date);
}

static bool
eval(struct ev *e, const struct imap_search_node *n)
{
	const struct imap_search_msg *m = e->m;
	switch (n->kind) {
	case ISK_AND:
		for (const struct imap_search_node *k = n->child; k; k = k->next)
			if (!eval(e, k))
				return false;
		return true;
	case ISK_OR:
		return eval(e, n->child) || eval(e, n->child->next);
	case ISK_NOT:
		return !eval(e, n->child);
	case ISK_ALL:
		return true;
	case ISK_FLAGS:
		return (m->flags & n->mask) == n->want;
	case ISK_RECENT:
		return m->recent == (n->want != 0);
	case ISK_KEYWORD:
		return has_keyword(m->keywords, n->str);
	case ISK_FIELD:
		if (e->src->field) {
			const char *v = e->src->field(e->src->arg, m, n->field);
			return v && imap_search_contains(v, strlen(v), n->str, n->strlen);
		}
		return header_has(e, field_names[n->field], n->str, n->strlen);
	case ISK_HEADER: {
		for (int f = 0; e->src->field && f < ISF_COUNT; f++)
			if (field_names[f] && strcasecmp(n->hname, field_names[f]) == 0) {
				const char *v = e->src->field(e->src->arg, m, (enum imap_search_field)f);
				return v && imap_search_contains(v, strlen(v), n->str, n->strlen);
			}
		return header_has(e, n->hname, n->str, n->strlen);
	}
	case ISK_BODY:
		return text_has(e, MC_MIMETEXT_BODY, n->str, n->strlen);
	case ISK_TEXT:
		return text_has(e, MC_MIMETEXT_HEADER | MC_MIMETEXT_BODY, n->str, n->strlen);
	case ISK_BEFORE:
		return day_of(m->internal_date) < n->day;
	case ISK_ON:
		return day_of(m->internal_date) == n->day;
	case ISK_SINCE:
		return day_of(m->internal_date) >= n->day;
	case ISK_SENTBEFORE:
		return sent_day(e) < n->day;
	case ISK_SENTON:
		return sent_day(e) == n->day;
	case ISK_SENTSINCE:
		return sent_day(e) >= n->day;
	case ISK_LARGER:
		return m->size > n->num;
	case ISK_SMALLER:
		return m->size < n->num;
	case ISK_SEQSET:
	case ISK_UIDSET:
		if (n->dollar && e->src->saved && e->src->saved(e->src->arg, m))
			return true;
		if (n->dollar && n->nset == 0)
			return false;
		return n->kind == ISK_SEQSET ? set_has(n, m->seq, e->src->max_seq) : set_has(n, m->uid, e->src->max_uid);
	case ISK_MODSEQ:
		return m->modseq >= n->num;
	}
	return false;
}

int
imap_search_match(const struct imap_search *prog, const struct imap_search_msg *m, const struct imap_search_src *src)
{
	struct ev e = { .src = src, .m = m, .fd = -1 };
	mc_buf_init(&e.tmp, IMAP_SEARCH_STR_MAX * 8 + HDR_MAX);
	bool r = prog->root ? eval(&e, prog->root) : false;
	if (e.fd >= 0)
		close(e.fd);
	free(e.hdr);
	mc_buf_free(&e.tmp);
	return r ? 1 : 0;
}

/* ---- responses ---- */

int
imap_seqset_format(struct mc_buf *out, const uint32_t *nums, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j + 1 < n && nums[j + 1] == nums[j] + 1)
			j++;
		int r = j > i ? mc_buf_printf(out, "%s%u:%u", i ? "," : "", nums[i], nums[j])
			      : mc_buf_printf(out, "%s%u", i ? "," : "", nums[i]);
		if (r < 0)
			return -1;
		i = j + 1;
	}
	return 0;
}

int
imap_search_format(struct mc_buf *out, const uint32_t *nums, size_t n, uint64_t modseq)
{
	if (mc_buf_adds(out, "* SEARCH") < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (mc_buf_printf(out, " %u", nums[i]) < 0)
			return -1;
	if (modseq && n && mc_buf_printf(out, " (MODSEQ %llu)", (unsigned long long)modseq) < 0)
		return -1;
	return mc_buf_adds(out, "\r\n");
}

int
imap_esearch_format(struct mc_buf *out, const char *tag, bool uid, unsigned ret, const uint32_t *nums, size_t n,
		    uint64_t modseq)
{
	if (mc_buf_printf(out, "* ESEARCH (TAG \"%s\")%s", tag, uid ? " UID" : "") < 0)
		return -1;
	if (n && (ret & IMAP_RET_MIN) && mc_buf_printf(out, " MIN %u", nums[0]) < 0)
		return -1;
	if (n && (ret & IMAP_RET_MAX) && mc_buf_printf(out, " MAX %u", nums[n - 1]) < 0)
		return -1;
	if ((ret & IMAP_RET_COUNT) && mc_buf_printf(out, " COUNT %zu", n) < 0)
		return -1;
	if (n && (ret & IMAP_RET_ALL) && (mc_buf_adds(out, " ALL ") < 0 || imap_seqset_format(out, nums, n) < 0))
		return -1;
	if (n && modseq && mc_buf_printf(out, " MODSEQ %llu", (unsigned long long)modseq) < 0)
		return -1;
	return mc_buf_adds(out, "\r\n");
}
