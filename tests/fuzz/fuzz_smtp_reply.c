/*
 * fuzz_smtp_reply.c - libFuzzer target for mail/smtp_reply.c: a stream of
 * server replies from arbitrary bytes, cut into pieces at points taken
 * from the first byte. Invariants: never more taken than given; a reply
 * read in pieces ends where the one-shot read of the same bytes ends;
 * kept text and the one-line form hold no control character or byte
 * outside ASCII; every string is NUL-terminated within its buffer; the
 * EHLO reader runs on whatever was kept.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct mc_smtp_reply a, b;

static void
check_clean(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	if (n == max)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	size_t step = (size_t)data[0] % 17 + 1;
	const char *in = (const char *)data + 1;
	size_t len = size - 1, off = 0;
	while (off < len) {
		/* one-shot */
		mc_smtp_reply_init(&a);
		size_t used_a;
		int ra = mc_smtp_reply_feed(&a, in + off, len - off, &used_a);
		if (used_a > len - off)
			abort();
		/* in pieces */
		mc_smtp_reply_init(&b);
		size_t used_b = 0;
		int rb = 0;
		while (used_b < len - off) {
			size_t n = len - off - used_b < step ? len - off - used_b : step, u;
			rb = mc_smtp_reply_feed(&b, in + off + used_b, n, &u);
			if (u > n)
				abort();
			used_b += u;
			if (rb != 0)
				break;
		}
		if (ra != rb || (ra != 0 && used_a != used_b))
			abort();
		if (ra != 1)
			break;
		if (a.code < 200 || a.code > 599 || a.code != b.code || strcmp(a.esc, b.esc) != 0)
			abort();
		char out[600];
		mc_smtp_reply_format(&a, out, sizeof(out));
		check_clean(out, sizeof(out));
		check_clean(a.esc, sizeof(a.esc));
		for (unsigned i = 0; i < a.nkept; i++)
			check_clean(mc_smtp_reply_line(&a, i), MC_SMTP_REPLY_BUF);
		struct mc_smtp_ehlo e;
		mc_smtp_ehlo_parse(&a, &e);
		if (used_a == 0)
			abort();
		off += used_a;
	}
	return 0;
}
