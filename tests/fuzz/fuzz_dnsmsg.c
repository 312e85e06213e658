/*
 * fuzz_dnsmsg.c - libFuzzer target for resolverd/dnsmsg.c: DNS answers as
 * they come off the wire, and names as peers send them. The first byte
 * picks the question (MX, A or AAAA of example.org) and whether the rest
 * is also checked as a name.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "resolverd/dnsmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t
rnd_first(uint32_t bound)
{
	return bound - 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dns_result r;
	static const uint16_t types[] = { DNS_T_MX, DNS_T_A, DNS_T_AAAA };
	if (size < 1 || size > 65536)
		return 0;
	uint16_t qtype = types[data[0] % 3];
	enum dns_status s = dns_parse(data + 1, size - 1, "example.org", qtype, &r);
	if (s < DNS_OK || s > DNS_TEMPFAIL || r.status != s || r.n > DNS_RR_MAX)
		abort();
	if (s != DNS_OK && r.n != 0)
		abort();
	char checked[DNS_NAME_LEN];
	for (unsigned i = 0; i < r.n; i++) {
		if (qtype != DNS_T_MX)
			continue;
		/* every MX target kept is a checked host name, or the null MX */
		if (r.rr[i].name[0] != '\0' && (!dns_name_check(r.rr[i].name, checked) ||
						strcmp(checked, r.rr[i].name) != 0))
			abort();
	}
	if (s == DNS_OK && qtype == DNS_T_MX) {
		dns_mx_order(r.rr, r.n, rnd_first);
		for (unsigned i = 1; i < r.n; i++)
			if (r.rr[i - 1].pref > r.rr[i].pref)
				abort();
	}

	if (data[0] & 0x80) {
		char *name = malloc(size);
		if (name == NULL)
			return 0;
		memcpy(name, data + 1, size - 1);
		name[size - 1] = '\0';
		char out[DNS_NAME_LEN];
		if (dns_name_check(name, out)) {
			/* what passed is lowercase LDH and passes again unchanged */
			char again[DNS_NAME_LEN];
			if (!dns_name_check(out, again) || strcmp(out, again) != 0 || strlen(out) > 253)
				abort();
		} else if (out[0] != '\0') {
			abort();
		}
		free(name);
	}
	return 0;
}
