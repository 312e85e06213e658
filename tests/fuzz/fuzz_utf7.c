/*
 * fuzz_utf7.c - libFuzzer target for mail/utf7imap.c: decoding arbitrary
 * bytes, and what decodes must encode back to the same bytes (one
 * spelling per name); valid UTF-8 must round-trip through encoding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/utf7imap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 1024)
		return 0;
	char out[4096], back[4096];
	const char *s = (const char *)data;
	int n = mc_utf7imap_decode(s, size, out, sizeof(out));
	if (n >= 0) {
		int m = mc_utf7imap_encode(out, (size_t)n, back, sizeof(back));
		if (m != (int)size || memcmp(back, s, size) != 0)
			abort();
	}
	n = mc_utf7imap_encode(s, size, out, sizeof(out));
	if (n >= 0) {
		int m = mc_utf7imap_decode(out, (size_t)n, back, sizeof(back));
		if (m != (int)size || memcmp(back, s, size) != 0)
			abort();
	}
	return 0;
}
