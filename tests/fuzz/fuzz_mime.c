/*
 * fuzz_mime.c - libFuzzer target for mail/mime.c and mail/imapstruct.c: a
 * message from arbitrary bytes, fed in chunks whose size the first byte
 * picks; the depth and part limits must hold, BODYSTRUCTURE must balance
 * its parentheses outside strings, the offsets must stay inside the input,
 * and every section of the part-offset table must resolve inside it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/imapstruct.h"
#include "mail/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_part(const struct mc_mime_part *m, size_t size, unsigned depth)
{
	if (m->depth != depth || depth > MC_MIME_MAX_DEPTH + 1)
		abort();
	if (m->hdr_off > m->body_off || m->body_off > m->end_off || m->end_off > size)
		abort();
	if (m->body_vsize < m->end_off - m->body_off || m->body_vsize > 2 * (m->end_off - m->body_off))
		abort();
	unsigned n = 0;
	for (const struct mc_mime_part *c = m->children; c; c = c->next, n++) {
		if (c->hdr_off < m->body_off || c->end_off > m->end_off)
			abort();
		check_part(c, size, depth + 1);
	}
	if (n != m->nchildren)
		abort();
}

/* Parentheses balance outside quoted strings and literals. */
static void
check_balanced(const char *s, size_t n)
{
	long depth = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"') {
			for (i++; i < n && s[i] != '"'; i++)
				if (s[i] == '\\')
					i++;
		} else if (s[i] == '{') {
			char *end;
			unsigned long len = strtoul(s + i + 1, &end, 10);
			if (*end != '}' || end[1] != '\r' || end[2] != '\n')
				abort();
			i = (size_t)(end + 2 - s) + len;
		} else if (s[i] == '(') {
			depth++;
		} else if (s[i] == ')') {
			if (--depth < 0)
				abort();
		}
	}
	if (depth != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t chunk = (size_t)data[0] * 13 + 1;
	data++;
	size--;
	struct mc_mime_parser *p = mc_mime_parser_new();
	if (p == NULL)
		return 0;
	for (size_t o = 0; o < size; o += chunk)
		mc_mime_parser_feed(p, data + o, size - o < chunk ? size - o : chunk);
	struct mc_mime_part *root = mc_mime_parser_finish(p);
	if (mc_mime_parser_parts(p) > MC_MIME_MAX_PARTS || mc_mime_parser_max_depth(p) > MC_MIME_MAX_DEPTH + 1)
		abort();
	if (root->end_off != size)
		abort();
	check_part(root, size, 0);

	struct mc_buf b;
	mc_buf_init(&b, 1 << 26);
	if (mc_imap_bodystructure(root, true, &b) < 0)
		abort();
	check_balanced(b.data, b.len);
	mc_buf_reset(&b);
	if (mc_imap_bodystructure(root, false, &b) < 0 || mc_imap_envelope(root, &b) < 0)
		abort();
	mc_buf_reset(&b);
	if (mc_mime_table_write(root, &b) < 0)
		abort();
	unsigned path[3];
	for (unsigned a = 0; a <= 3; a++)
		for (unsigned c = 1; c <= 3; c++) {
			path[0] = c;
			path[1] = a ? a : 1;
			path[2] = 1;
			struct mc_mime_section s;
			for (size_t n = 0; n <= 3; n++)
				if (mc_mime_section_find(b.data, b.len, path, n, &s) == 0 &&
				    (s.body.off + s.body.len > size || s.mime.off + s.mime.len > size ||
				     (s.is_message && s.text.off + s.text.len > size)))
					abort();
		}
	mc_buf_free(&b);
	mc_mime_parser_free(p);
	return 0;
}
