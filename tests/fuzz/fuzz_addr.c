/*
 * fuzz_addr.c - libFuzzer target for mail/addr.c: SMTP paths and bare
 * addresses from arbitrary bytes. The first byte picks the options.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 8192)
		return 0;
	unsigned opt = data[0];
	char *s = malloc(size);
	if (s == NULL)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';

	struct mc_addr a;
	const char *rest;
	char out[600], key[600];
	int e = mc_addr_parse_path(s, opt & 1, opt & 2, &a, &rest);
	if (e == MC_ADDR_OK) {
		if (rest < s || rest > s + strlen(s))
			abort();
		if (strlen(a.local) > sizeof(a.local) - 1 || strlen(a.domain) > MC_DOMAIN_MAX)
			abort();
		if (!a.null && (a.local[0] == '\0' || a.domain[0] == '\0'))
			abort();
		if (a.utf8 && !(opt & 2))
			abort();
		if (mc_addr_format(&a, out, sizeof(out)) != 0)
			abort();
		/* What was accepted parses again as a bare address, to the same parts. */
		if (!a.null) {
			struct mc_addr b;
			if (mc_addr_parse(out, true, &b) != MC_ADDR_OK || strcmp(a.local, b.local) != 0 ||
			    strcmp(a.domain, b.domain) != 0)
				abort();
			if (!mc_addr_domain_ok(a.domain, true))
				abort();
		}
	}
	if (mc_addr_parse(s, opt & 2, &a) == MC_ADDR_OK && mc_addr_format(&a, out, sizeof(out)) != 0)
		abort();
	(void)mc_addr_domain_ok(s, opt & 2);
	if (mc_addr_lookup_key(s, key, sizeof(key)) == 0 && strlen(key) > strlen(s))
		abort();
	free(s);
	return 0;
}
