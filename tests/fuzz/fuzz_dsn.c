/*
 * fuzz_dsn.c - libFuzzer target for mail/dsn.c: the report written for
 * an original message and texts that came from outside.
 *
 * Input: byte 0 picks RET=FULL and small or large bounds; then up to the
 * first NUL a reason (a remote reply, as a peer could word it), up to the
 * second NUL an ORCPT/ENVID value; the rest is the original message.
 * Invariants: every line of the report ends in CRLF and there is no other
 * CR or LF; the report's own header block holds only its own fields; the
 * report stays within its bounds whatever the size of the original.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mail/dsn.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
to_buf(void *arg, const void *p, size_t n)
{
	return mc_buf_add(arg, p, n);
}

static const char *const own[] = { "Date: ", "From: ", "Subject: ", "To: ", "Auto-Submitted: ", "Message-ID: ",
				   "MIME-Version: ", "Content-Type: ", "Content-Transfer-Encoding: ", "\t" };

static size_t
field_text(const uint8_t **p, size_t *n, char *out, size_t outsz)
{
	size_t k = 0;
	while (k < *n && (*p)[k] != 0)
		k++;
	size_t c = k < outsz - 1 ? k : outsz - 1;
	memcpy(out, *p, c);
	out[c] = '\0';
	size_t used = k < *n ? k + 1 : k;
	*p += used;
	*n -= used;
	return c;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t flags = data[0];
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	char reason[600], param[600];
	field_text(&p, &n, reason, sizeof(reason));
	field_text(&p, &n, param, sizeof(param));

	int fd = memfd_create("original", 0);
	if (fd < 0)
		return 0;
	if (n && write(fd, p, n) != (ssize_t)n) {
		close(fd);
		return 0;
	}
	struct mc_dsn_rcpt r[2] = {
		{ .final = reason, .orcpt = param, .action = (enum mc_dsn_action)(flags & 3), .status = reason,
		  .reason = reason, .remote_mta = (flags & 4) ? reason : NULL, .diag = (flags & 8) ? reason : NULL,
		  .last_attempt = 1700000000, .retry_until = 1700400000 },
		{ .final = "bob@example.test", .action = MC_DSN_FAILED, .reason = "user unknown" },
	};
	uint64_t bound = (flags & 0x20) ? 64 : 100000;
	struct mc_dsn d = {
		.reporting_mta = "mx.example.test",
		.sender = param,
		.envid = param,
		.qid = "0123456789ABCDEF",
		.report_id = "0123456789ABCDF0",
		.arrival = 1700000000,
		.now = 1700000100,
		.ret_full = (flags & 0x10) != 0,
		.max_full = bound,
		.max_headers = bound,
		.rcpt = r,
		.nrcpt = (flags & 0x40) ? 2 : 1,
	};
	struct mc_buf b;
	mc_buf_init(&b, 1 << 22);
	if (mc_dsn_write(&d, fd, n, to_buf, &b) == 0) {
		/* CRLF line ends only */
		for (size_t i = 0; i < b.len; i++) {
			if (b.data[i] == '\n' && (i == 0 || b.data[i - 1] != '\r'))
				abort();
			if (b.data[i] == '\r' && (i + 1 == b.len || b.data[i + 1] != '\n'))
				abort();
		}
		/* the report's header block: its own fields only */
		const char *s = b.data;
		while (*s && !(s[0] == '\r' && s[1] == '\n')) {
			size_t k = 0;
			while (k < sizeof(own) / sizeof(own[0]) && strncmp(s, own[k], strlen(own[k])) != 0)
				k++;
			if (k == sizeof(own) / sizeof(own[0]))
				abort();
			const char *nl = strstr(s, "\r\n");
			if (nl == NULL)
				abort();
			s = nl + 2;
		}
		/* bounded: a fixed part, the texts, and the original's bound */
		if (b.len > 16384 + 8 * 600 + bound + 2 * bound / 2)
			abort();
	}
	mc_buf_free(&b);
	close(fd);
	return 0;
}
