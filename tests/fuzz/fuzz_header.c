/*
 * fuzz_header.c - libFuzzer target for mail/header.c and mail/date.c:
 * address lists, parameter lists, RFC 2047 and RFC 2231 decoding and
 * RFC 5322 dates, header block fields from arbitrary bytes. The first byte picks the parser.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/date.h"
#include "mail/header.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	unsigned opt = data[0] % 6;
	const char *s = (const char *)data + 1;
	size_t n = size - 1;
	struct mc_buf b;
	mc_buf_init(&b, 1 << 20);
	switch (opt) {
	case 0: {
		struct mc_address *a = mc_address_parse(s, n);
		unsigned k = 0;
		for (struct mc_address *x = a; x; x = x->next) {
			if (++k > MC_HEADER_ADDR_MAX)
				abort();
			/* a group end has nothing; anything else has a mailbox */
			if (x->mailbox == NULL && (x->name || x->route || x->domain))
				abort();
		}
		mc_address_free(a);
		break;
	}
	case 1: {
		char *t, *st;
		struct mc_param *p;
		int k = mc_header_parse_params(s, n, true, &t, &st, &p);
		if (k > MC_HEADER_PARAM_MAX)
			abort();
		for (int i = 0; i < k; i++)
			if (p[i].name == NULL || p[i].value == NULL)
				abort();
		free(t);
		free(st);
		if (k >= 0)
			mc_header_params_free(p, k);
		break;
	}
	case 2:
		mc_header_decode(s, n, &b);
		break;
	case 3:
		mc_header_decode_2231(s, n, &b);
		break;
	case 5: {
		const char *p = s, *end = s + n;
		struct mc_header_field f;
		while (mc_header_next(&p, end, &f)) {
			if (f.raw < s || f.raw + f.rawlen > end || f.name != f.raw || f.value < f.raw ||
			    f.value + f.valuelen > f.raw + f.rawlen || f.rawlen == 0)
				abort();
			if (p != f.raw + f.rawlen)
				abort();
		}
		break;
	}
	default: {
		int64_t t;
		int tz;
		if (mc_date_parse_rfc5322(s, n, &t, &tz) == 0) {
			if (tz < -6000 || tz > 6000)
				abort();
			char out[MC_DATE_IMAP_LEN + 1];
			mc_date_format_imap(t, tz, out);
			if (strlen(out) != MC_DATE_IMAP_LEN)
				abort();
		}
		mc_date_parse_imap(s, n, &t, &tz);
		mc_date_parse_imap_day(s, n, &t);
	}
	}
	mc_buf_free(&b);
	return 0;
}
