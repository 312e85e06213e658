/*
 * test_mime.c - the MIME parser and the ENVELOPE/BODYSTRUCTURE/BODY writer
 * against the reference corpus (tests/data/mime: 30 messages and what
 * Dovecot 2.3.19 answered for each, expected.json), fed whole, byte by
 * byte and in odd chunks, as sent (CRLF) and as stored (LF); the depth and
 * part limits on hostile structures; the part-offset table and RFC 3501
 * section numbering.
 *
 * Where Postern differs from the reference on purpose it is said here.
 * For the 30 messages of the corpus there is no such case: every answer
 * matches byte for byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/imapstruct.h"
#include "mail/mime.h"

#ifndef POSTERN_SOURCE_ROOT
#define POSTERN_SOURCE_ROOT "."
#endif
#define DATA_DIR POSTERN_SOURCE_ROOT "/tests/data/mime"

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	size_t cap = 4096, n = 0;
	char *b = malloc(cap);
	size_t r;
	while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			cap *= 2;
			b = realloc(b, cap);
		}
	}
	fclose(f);
	if (b) {
		b[n] = '\0';
		*len = n;
	}
	return b;
}

/*
 * A reader for expected.json, just enough for its shape: an object of
 * objects of strings. \uXXXX below 0x100 is a byte (the file holds the
 * server's bytes decoded as Latin-1).
 */
struct json {
	const char *p, *end;
};

static void
ws(struct json *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
		j->p++;
}

static char *
jstring(struct json *j, size_t *len)
{
	ws(j);
	assert_true(j->p < j->end && *j->p == '"');
	j->p++;
	char *out = malloc((size_t)(j->end - j->p) + 1);
	size_t o = 0;
	while (j->p < j->end && *j->p != '"') {
		char c = *j->p++;
		if (((unsigned char)c & 0xe0) == 0xc0 && j->p < j->end) {
			/* the file is UTF-8 of the Latin-1 reading of the server's bytes */
			unsigned v = (((unsigned char)c & 0x1f) << 6) | ((unsigned char)*j->p++ & 0x3f);
			assert_true(v < 0x100);
			c = (char)v;
		} else if (c == '\\') {
			c = *j->p++;
			switch (c) {
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'u': {
				unsigned v = 0;
				for (int k = 0; k < 4; k++) {
					char h = *j->p++;
					v = v * 16 + (unsigned)(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
				}
				assert_true(v < 0x100);
				c = (char)v;
				break;
			}
			default: break;
			}
		}
		out[o++] = c;
	}
	j->p++;
	out[o] = '\0';
	if (len)
		*len = o;
	return out;
}

static bool
jpunct(struct json *j, char c)
{
	ws(j);
	if (j->p < j->end && *j->p == c) {
		j->p++;
		return true;
	}
	return false;
}

struct expect {
	char *file;
	char *envelope, *bodystructure, *body, *size;
};

static int
load_expected(struct expect *e, int max)
{
	size_t len;
	char *text = slurp(DATA_DIR "/expected.json", &len);
	assert_non_null(text);
	struct json j = { text, text + len };
	int n = 0;
	assert_true(jpunct(&j, '{'));
	while (!jpunct(&j, '}')) {
		jpunct(&j, ',');
		assert_true(n < max);
		e[n].file = jstring(&j, NULL);
		assert_true(jpunct(&j, ':'));
		assert_true(jpunct(&j, '{'));
		while (!jpunct(&j, '}')) {
			jpunct(&j, ',');
			char *k = jstring(&j, NULL);
			assert_true(jpunct(&j, ':'));
			char *v = jstring(&j, NULL);
			if (strcmp(k, "ENVELOPE") == 0)
				e[n].envelope = v;
			else if (strcmp(k, "BODYSTRUCTURE") == 0)
				e[n].bodystructure = v;
			else if (strcmp(k, "BODY") == 0)
				e[n].body = v;
			else if (strcmp(k, "RFC822.SIZE") == 0)
				e[n].size = v;
			else
				free(v);
			free(k);
		}
		n++;
	}
	free(text);
	return n;
}

static void
free_expected(struct expect *e, int n)
{
	for (int i = 0; i < n; i++) {
		free(e[i].file);
		free(e[i].envelope);
		free(e[i].bodystructure);
		free(e[i].body);
		free(e[i].size);
	}
}

static struct mc_mime_parser *
parse(const char *msg, size_t n, size_t chunk)
{
	struct mc_mime_parser *p = mc_mime_parser_new();
	assert_non_null(p);
	for (size_t o = 0; o < n; o += chunk)
		assert_int_equal(mc_mime_parser_feed(p, msg + o, n - o < chunk ? n - o : chunk), 0);
	mc_mime_parser_finish(p);
	return p;
}

/* The message as the Maildir holds it: CRLF turned into LF. */
static char *
to_lf(const char *s, size_t n, size_t *out)
{
	char *d = malloc(n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] == '\r' && i + 1 < n && s[i + 1] == '\n'))
			d[o++] = s[i];
	*out = o;
	return d;
}

static void
check_one(const struct expect *e, const char *msg, size_t n, size_t chunk)
{
	struct mc_mime_parser *p = parse(msg, n, chunk);
	struct mc_mime_part *root = mc_mime_parser_finish(p);
	struct mc_buf b;
	mc_buf_init(&b, 1 << 22);
	assert_int_equal(mc_imap_envelope(root, &b), 0);
	if (strcmp(b.data, e->envelope) != 0)
		fail_msg("%s (chunk %zu) ENVELOPE\n want %s\n got  %s", e->file, chunk, e->envelope, b.data);
	mc_buf_reset(&b);
	assert_int_equal(mc_imap_bodystructure(root, true, &b), 0);
	if (strcmp(b.data, e->bodystructure) != 0)
		fail_msg("%s (chunk %zu) BODYSTRUCTURE\n want %s\n got  %s", e->file, chunk, e->bodystructure, b.data);
	mc_buf_reset(&b);
	assert_int_equal(mc_imap_bodystructure(root, false, &b), 0);
	if (strcmp(b.data, e->body) != 0)
		fail_msg("%s (chunk %zu) BODY\n want %s\n got  %s", e->file, chunk, e->body, b.data);
	char size[32];
	snprintf(size, sizeof(size), "%llu", (unsigned long long)(root->hdr_vsize + root->body_vsize));
	if (strcmp(size, e->size) != 0)
		fail_msg("%s RFC822.SIZE want %s got %s", e->file, e->size, size);
	assert_int_equal(root->end_off, n);
	mc_buf_free(&b);
	mc_mime_parser_free(p);
}

/* Every message of the corpus, every way of feeding it, matches the reference. */
static void
test_corpus_matches_reference(void **state)
{
	struct expect e[64];
	memset(e, 0, sizeof(e));
	int n = load_expected(e, 64);
	assert_int_equal(n, 30);
	static const size_t chunks[] = { 1, 7, 64, 1 << 20 };
	for (int i = 0; i < n; i++) {
		char path[512];
		snprintf(path, sizeof(path), DATA_DIR "/%s", e[i].file);
		size_t len, lflen;
		char *msg = slurp(path, &len);
		assert_non_null(msg);
		char *lf = to_lf(msg, len, &lflen);
		for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
			check_one(&e[i], msg, len, chunks[c]);
			check_one(&e[i], lf, lflen, chunks[c]);
		}
		free(msg);
		free(lf);
	}
	free_expected(e, n);
}

/* Offsets as stored: a part's body is input[body_off, end_off), its IMAP size counts LF as CRLF. */
static void
test_offsets_lf_file(void **state)
{
	static const char msg[] = "Content-Type: multipart/mixed; boundary=x\n\n"
				  "pre\n--x\nContent-Type: text/plain\n\nab\ncd\n--x\n\nlast\n--x--\nepi\n";
	struct mc_mime_parser *p = parse(msg, sizeof(msg) - 1, 5);
	struct mc_mime_part *r = mc_mime_parser_finish(p);
	assert_true(r->flags & MC_MIME_MULTIPART);
	assert_int_equal(r->nchildren, 2);
	const struct mc_mime_part *a = r->children, *b = a->next;
	assert_memory_equal(msg + a->body_off, "ab\ncd", a->end_off - a->body_off);
	assert_int_equal(a->end_off - a->body_off, 5);
	assert_int_equal(a->body_vsize, 6);   /* "ab\r\ncd" */
	assert_int_equal(a->body_lines, 1);
	assert_memory_equal(msg + a->hdr_off, "Content-Type: text/plain\n\n", a->body_off - a->hdr_off);
	assert_int_equal(a->hdr_vsize, 28);
	assert_true(b->default_type);
	assert_int_equal(b->hdr_vsize, 2);
	assert_memory_equal(msg + b->body_off, "last", b->end_off - b->body_off);
	assert_int_equal(r->hdr_vsize + r->body_vsize, sizeof(msg) - 1 + 13);
	mc_mime_parser_free(p);
}

/* Build a message nested depth deep (each level a multipart). */
static char *
deep_message(unsigned depth, size_t *len)
{
	size_t cap = (size_t)depth * 80 + 256, n = 0;
	char *m = malloc(cap);
	n += (size_t)sprintf(m + n, "Content-Type: multipart/mixed; boundary=\"b0.\"\n\n");
	for (unsigned i = 1; i < depth; i++)
		n += (size_t)sprintf(m + n, "--b%u.\nContent-Type: multipart/mixed; boundary=\"b%u.\"\n\n", i - 1, i);
	n += (size_t)sprintf(m + n, "--b%u.\n\nleaf\n", depth - 1);
	*len = n;
	return m;
}

/* Thousands deep: stopped at MC_MIME_MAX_DEPTH, the rest opaque, BODYSTRUCTURE still well formed. */
static void
test_depth_limit(void **state)
{
	size_t len;
	char *m = deep_message(5000, &len);
	struct mc_mime_parser *p = parse(m, len, 4096);
	struct mc_mime_part *r = mc_mime_parser_finish(p);
	assert_true(mc_mime_parser_max_depth(p) <= MC_MIME_MAX_DEPTH);
	assert_true(mc_mime_parser_parts(p) <= MC_MIME_MAX_DEPTH + 1);
	struct mc_buf b;
	mc_buf_init(&b, 1 << 22);
	assert_int_equal(mc_imap_bodystructure(r, true, &b), 0);
	int bal = 0;
	for (size_t i = 0; i < b.len; i++)
		bal += b.data[i] == '(' ? 1 : b.data[i] == ')' ? -1 : 0;
	assert_int_equal(bal, 0);
	size_t lf = 0;
	for (size_t i = 0; i < len; i++)
		lf += m[i] == '\n';
	assert_int_equal(r->hdr_vsize + r->body_vsize, len + lf);
	mc_buf_free(&b);
	mc_mime_parser_free(p);
	free(m);
}

/* 100,000 parts: at most MC_MIME_MAX_PARTS made, the size still right. */
static void
test_part_limit(void **state)
{
	size_t cap = 100000 * 12 + 100, n = 0;
	char *m = malloc(cap);
	n += (size_t)sprintf(m + n, "Content-Type: multipart/mixed; boundary=b\n\n");
	for (int i = 0; i < 100000; i++)
		n += (size_t)sprintf(m + n, "--b\n\nx\n");
	n += (size_t)sprintf(m + n, "--b--\n");
	struct mc_mime_parser *p = parse(m, n, 65536);
	struct mc_mime_part *r = mc_mime_parser_finish(p);
	assert_true(mc_mime_parser_parts(p) <= MC_MIME_MAX_PARTS);
	assert_true(r->flags & MC_MIME_TRUNCATED);
	size_t lf = 0;
	for (size_t i = 0; i < n; i++)
		lf += m[i] == '\n';
	assert_int_equal(r->hdr_vsize + r->body_vsize, n + lf);
	struct mc_buf b;
	mc_buf_init(&b, 1 << 24);
	assert_int_equal(mc_imap_bodystructure(r, true, &b), 0);
	mc_buf_free(&b);
	mc_mime_parser_free(p);
	free(m);
}

static void
span_is(const char *msg, const struct mc_mime_span *s, const char *want)
{
	assert_int_equal(s->len, strlen(want));
	assert_memory_equal(msg + s->off, want, s->len);
}

/* RFC 3501 6.4.5's numbering through the stored table. */
static void
test_sections(void **state)
{
	static const char msg[] = "Subject: top\n"
				  "Content-Type: multipart/mixed; boundary=o\n\n"
				  "--o\n\none\n"
				  "--o\nContent-Type: message/rfc822\n\n"
				  "Subject: inner\nContent-Type: multipart/alternative; boundary=i\n\n"
				  "--i\n\nip\n--i\nContent-Type: text/html\n\nih\n--i--\n"
				  "--o\nContent-Type: message/rfc822\n\nSubject: flat\n\nflat body\n"
				  "--o--\n";
	struct mc_mime_parser *p = parse(msg, sizeof(msg) - 1, 3);
	struct mc_mime_part *r = mc_mime_parser_finish(p);
	struct mc_buf t;
	mc_buf_init(&t, 1 << 16);
	assert_int_equal(mc_mime_table_write(r, &t), 0);
	struct mc_mime_section s;
	assert_int_equal(mc_mime_section_find(t.data, t.len, NULL, 0, &s), 0);
	assert_true(s.is_message);
	assert_int_equal(s.header.off, 0);
	unsigned p1[] = { 1 };
	assert_int_equal(mc_mime_section_find(t.data, t.len, p1, 1, &s), 0);
	span_is(msg, &s.body, "one");
	span_is(msg, &s.mime, "\n");
	unsigned p2[] = { 2 };
	assert_int_equal(mc_mime_section_find(t.data, t.len, p2, 1, &s), 0);
	assert_true(s.is_message);
	span_is(msg, &s.header, "Subject: inner\nContent-Type: multipart/alternative; boundary=i\n\n");
	unsigned p21[] = { 2, 1 }, p22[] = { 2, 2 }, p23[] = { 2, 3 };
	assert_int_equal(mc_mime_section_find(t.data, t.len, p21, 2, &s), 0);
	span_is(msg, &s.body, "ip");
	assert_int_equal(mc_mime_section_find(t.data, t.len, p22, 2, &s), 0);
	span_is(msg, &s.body, "ih");
	span_is(msg, &s.mime, "Content-Type: text/html\n\n");
	assert_int_equal(s.body.vsize, 2);
	assert_int_equal(mc_mime_section_find(t.data, t.len, p23, 2, &s), -1);
	unsigned p31[] = { 3, 1 }, p311[] = { 3, 1, 1 }, p4[] = { 4 }, p11[] = { 1, 1 };
	assert_int_equal(mc_mime_section_find(t.data, t.len, p31, 2, &s), 0);
	span_is(msg, &s.body, "flat body");
	assert_int_equal(mc_mime_section_find(t.data, t.len, p311, 3, &s), -1);
	assert_int_equal(mc_mime_section_find(t.data, t.len, p4, 1, &s), -1);
	assert_int_equal(mc_mime_section_find(t.data, t.len, p11, 2, &s), -1);
	/* a malformed table is refused, never read past */
	for (size_t k = 0; k < t.len; k++)
		mc_mime_section_find(t.data, k, p22, 2, &s);
	mc_buf_free(&t);
	mc_mime_parser_free(p);
}

/* A single-part message has only part 1: its body, with the message header as MIME header. */
static void
test_single_part_sections(void **state)
{
	static const char msg[] = "Subject: x\n\nbody\n";
	struct mc_mime_parser *p = parse(msg, sizeof(msg) - 1, 100);
	struct mc_buf t;
	mc_buf_init(&t, 1 << 16);
	assert_int_equal(mc_mime_table_write(mc_mime_parser_finish(p), &t), 0);
	struct mc_mime_section s;
	unsigned p1[] = { 1 }, p2[] = { 2 };
	assert_int_equal(mc_mime_section_find(t.data, t.len, p1, 1, &s), 0);
	span_is(msg, &s.body, "body\n");
	assert_int_equal(s.body.vsize, 6);
	assert_false(s.is_message);
	assert_int_equal(mc_mime_section_find(t.data, t.len, p2, 1, &s), -1);
	mc_buf_free(&t);
	mc_mime_parser_free(p);
}

/* A header field longer than the bound is cut, not grown; the message still parses. */
static void
test_huge_header(void **state)
{
	size_t n = 3 * MC_MIME_FIELD_MAX, o = 9 + n + 7;
	char *m = malloc(o);
	if (m == NULL)
		fail();
	memset(m, 'x', o);
	memcpy(m, "Subject: ", 9);
	memcpy(m + 9 + n, "\n\nbody\n", 7);
	struct mc_mime_parser *p = parse(m, o, 8192);
	struct mc_mime_part *r = mc_mime_parser_finish(p);
	assert_non_null(r->hdr[MC_HDR_SUBJECT]);
	assert_true(strlen(r->hdr[MC_HDR_SUBJECT]) <= MC_MIME_FIELD_MAX);
	assert_int_equal(r->body_vsize, 6);
	mc_mime_parser_free(p);
	free(m);
}

/* A header of 50,000 fields: the ones past the bound are not looked at; sizes stay exact. */
static void
test_many_fields(void **state)
{
	size_t cap = 50000 * 16 + 64, n = 0;
	char *m = malloc(cap);
	if (m == NULL)
		fail();
	for (int i = 0; i < 50000; i++)
		n += (size_t)sprintf(m + n, "X-F%d: v\n", i);
	n += (size_t)sprintf(m + n, "Subject: late\n\nb\n");
	struct mc_mime_parser *p = parse(m, n, 4096);
	struct mc_mime_part *r = mc_mime_parser_finish(p);
	assert_null(r->hdr[MC_HDR_SUBJECT]);
	assert_int_equal(r->hdr_vsize, n - 2 + 50002);
	assert_int_equal(r->body_vsize, 3);
	mc_mime_parser_free(p);
	free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus_matches_reference),
		cmocka_unit_test(test_offsets_lf_file),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_part_limit),
		cmocka_unit_test(test_sections),
		cmocka_unit_test(test_single_part_sections),
		cmocka_unit_test(test_huge_header),
		cmocka_unit_test(test_many_fields),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
