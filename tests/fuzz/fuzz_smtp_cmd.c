/*
 * fuzz_smtp_cmd.c - libFuzzer target for smtpd/parse.c: an arbitrary
 * command line is split into verb and arguments, and the arguments are
 * read as MAIL, RCPT and BDAT would read them. Invariants: replies are
 * one printable line with a 3-digit code; accepted values stay in bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_reply(const char *r)
{
	size_t n = strlen(r);
	if (n < 4 || (r[0] != '4' && r[0] != '5') || r[3] != ' ')
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)r[i] < 32 || (unsigned char)r[i] > 126)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > SMTPD_AUTH_LINE_MAX)
		return 0;
	char *line = malloc(size + 1);
	if (line == NULL)
		return 0;
	memcpy(line, data, size);

	struct smtpd_cmdline c;
	if (smtpd_parse_cmd(line, size, &c) == 0) {
		if (strlen(c.verb) >= sizeof(c.verb) || c.args < line || c.args > line + size)
			abort();
		char reply[512];
		struct smtpd_mail m;
		struct smtpd_rcpt r;
		if (smtpd_parse_mail(c.args, &m, reply, sizeof(reply)) == 0) {
			if (strlen(m.envid) > SMTPD_ENVID_MAX || (m.addr.utf8 && !m.smtputf8))
				abort();
			if (m.body > SMTPD_BODY_BINARYMIME)
				abort();
		} else {
			check_reply(reply);
		}
		for (int u = 0; u < 2; u++) {
			if (smtpd_parse_rcpt(c.args, u, &r, reply, sizeof(reply)) == 0) {
				if (r.addr.utf8 && !u)
					abort();
				if ((r.notify & MC_NOTIFY_NEVER) && r.notify != MC_NOTIFY_NEVER)
					abort();
			} else {
				check_reply(reply);
			}
		}
		uint64_t n;
		bool last;
		if (smtpd_parse_bdat(c.args, &n, &last) == 0 && n == UINT64_MAX)
			abort();
		(void)smtpd_xtext_ok(c.args, strlen(c.args), size & 1);
	}
	free(line);
	return 0;
}
