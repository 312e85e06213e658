/*
 * fuzz_cte.c - libFuzzer target for mail/cte.c: arbitrary bytes through
 * the base64, quoted-printable and identity decoders, whole and in pieces
 * whose size the first byte picks. No decoder may write past
 * mc_cte_dec_bound, and the pieces must decode to exactly what the whole
 * does; the field value parser and the store check must take any string.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/cte.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decode in pieces of step bytes into out (room checked per call); returns the length. */
static size_t
run(enum mc_cte cte, bool text, const uint8_t *in, size_t n, size_t step, unsigned char *out)
{
	struct mc_cte_dec d;
	mc_cte_dec_init(&d, cte, text);
	size_t k = 0;
	for (size_t i = 0; i < n; i += step) {
		size_t m = n - i < step ? n - i : step;
		size_t w = mc_cte_dec_update(&d, in + i, m, out + k);
		if (w > mc_cte_dec_bound(m))
			abort();
		k += w;
	}
	size_t w = mc_cte_dec_final(&d, out + k);
	if (w > MC_CTE_SLACK)
		abort();
	return k + w;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	size_t step = (size_t)data[0] % 17 + 1;
	bool text = data[0] & 0x80;
	data++;
	size--;
	/* each piece may use its whole bound: room for all of them */
	size_t room = 2 * size + (size / step + 2) * MC_CTE_SLACK;
	unsigned char *a = malloc(room), *b = malloc(room);
	if (a == NULL || b == NULL)
		abort();
	static const enum mc_cte ctes[] = { MC_CTE_BASE64, MC_CTE_QP, MC_CTE_7BIT };
	for (size_t c = 0; c < sizeof(ctes) / sizeof(ctes[0]); c++) {
		size_t na = run(ctes[c], text, data, size, size ? size : 1, a);
		size_t nb = run(ctes[c], text, data, size, step, b);
		if (na != nb || memcmp(a, b, na) != 0)
			abort();
		if (na > 2 * size + MC_CTE_SLACK)
			abort();
	}
	char *s = malloc(size + 1);
	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	(void)mc_cte_parse(s);
	/* Fed whole or cut in two, the answer must be the same. */
	unsigned t1 = 0, t2 = 0;
	size_t cut = size ? data[0] % (size + 1) : 0;
	bool whole = mc_cte_store_keeps(data, size, &t1);
	bool parts = mc_cte_store_keeps(data, cut, &t2);
	if (parts)
		parts = mc_cte_store_keeps(data + cut, size - cut, &t2);
	if (whole != parts)
		abort();
	free(s);
	free(a);
	free(b);
	return 0;
}
