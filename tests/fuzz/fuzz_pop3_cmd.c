/*
 * fuzz_pop3_cmd.c - libFuzzer target for pop3d/parse.c and the SASL
 * decoding pop3d uses (mail/sasl): an arbitrary command line is parsed,
 * its arguments read as message numbers and line counts, and the same
 * bytes decoded as an AUTH response and a PLAIN message. Invariants:
 * arguments lie inside the line, are non-empty and within their bounds;
 * numbers are in range; decoded lengths fit their buffers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/sasl.h"
#include "pop3d/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > MC_SASL_LINE_MAX)
		return 0;
	char *line = malloc(size + 1);
	if (line == NULL)
		return 0;
	memcpy(line, data, size);

	struct pop3_cmd c;
	if (pop3_parse(line, size, &c) == POP3_PARSE_OK) {
		if (c.verb <= POP3_UNKNOWN || c.verb >= POP3_VERB_COUNT || c.nargs > POP3_ARGS_MAX ||
		    strcmp(c.name, pop3_verb_name(c.verb)) != 0)
			abort();
		for (size_t i = 0; i < c.nargs; i++) {
			size_t n = strlen(c.args[i]);
			if (c.args[i] < line || c.args[i] + n > line + size || n == 0)
				abort();
			if (n > POP3_ARG_MAX && c.verb != POP3_AUTH && c.verb != POP3_PASS && c.verb != POP3_USER &&
			    c.verb != POP3_APOP)
				abort();
			uint32_t v;
			if (pop3_parse_number(c.args[i], 1000, &v) == 0 && v > 1000)
				abort();
		}
	}

	unsigned char out[MC_SASL_DECODED_MAX];
	size_t n = 0;
	if (mc_sasl_response((const char *)data, size, out, sizeof(out), &n) == MC_SASL_OK) {
		if (n >= sizeof(out) || out[n] != '\0')
			abort();
		const char *u, *p;
		if (mc_sasl_plain(out, n, &u, &p) == MC_SASL_OK &&
		    (u < (char *)out || p < u || p + strlen(p) > (char *)out + n || u[0] == '\0'))
			abort();
	}
	free(line);
	return 0;
}
