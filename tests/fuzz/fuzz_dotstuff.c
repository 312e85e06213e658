/*
 * fuzz_dotstuff.c - libFuzzer target for mail/dotstuff.c.
 *
 * The input is split into chunks at points taken from its first bytes
 * and fed to the DATA decoder with a small output buffer. Invariants:
 * the output has no bare CR or LF; the end is found only right after
 * <CRLF>.<CRLF> in the input (or ".\r\n" at the very start), and exactly
 * where a one-shot decode of the same input finds it; the encoder's
 * output decodes back to the decoder's normalised form of the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/dotstuff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct out {
	unsigned char *p;
	size_t len, cap;
};

static void
put(struct out *o, const void *p, size_t n)
{
	if (o->len + n > o->cap)
		abort();
	memcpy(o->p + o->len, p, n);
	o->len += n;
}

/* Decode in[0..n) cut every `step` bytes (0: one piece); returns 1 when the end was found. */
static int
dec(enum mc_dotstuff_mode mode, const uint8_t *in, size_t n, size_t step, struct out *o, size_t *used)
{
	struct mc_dotstuff_dec d;
	size_t pos = 0;
	int done = 0;
	mc_dotstuff_dec_init(&d, mode);
	while (pos < n && !done) {
		size_t end = step ? pos + step : n;
		if (end > n)
			end = n;
		while (pos < end && !done) {
			unsigned char tmp[MC_DOTSTUFF_DEC_MIN + 5];
			size_t u, ol;
			done = mc_dotstuff_dec(&d, in + pos, end - pos, &u, tmp, sizeof(tmp), &ol);
			if (u == 0 && ol == 0 && !done)
				abort();
			put(o, tmp, ol);
			pos += u;
		}
	}
	if (mode == MC_DOTSTUFF_NORM) {
		unsigned char tmp[4];
		size_t k = mc_dotstuff_dec_finish(&d, tmp, sizeof(tmp));
		put(o, tmp, k);
	}
	*used = pos;
	return done;
}

static void
check_crlf(const struct out *o, bool final)
{
	for (size_t i = 0; i < o->len; i++) {
		if (o->p[i] == '\n' && (i == 0 || o->p[i - 1] != '\r'))
			abort();
		if (o->p[i] == '\r' && (i + 1 < o->len ? o->p[i + 1] != '\n' : final))
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2 || size > 65536)
		return 0;
	size_t step = data[0] % 17;
	const uint8_t *in = data + 1;
	size_t n = size - 1;
	size_t cap = n * 3 + 16;
	struct out a = { malloc(cap), 0, cap }, b = { malloc(cap), 0, cap };
	struct out e = { malloc(cap * 2 + 16), 0, cap * 2 + 16 }, c = { malloc(cap * 2 + 16), 0, cap * 2 + 16 };
	size_t ua, ub;

	int da = dec(MC_DOTSTUFF_DATA, in, n, step, &a, &ua);
	int db = dec(MC_DOTSTUFF_DATA, in, n, 0, &b, &ub);
	if (da != db || ua != ub || a.len != b.len || memcmp(a.p, b.p, a.len) != 0)
		abort();
	check_crlf(&a, true);
	if (da) {
		/* The end is right after ".\r\n" that starts the data or follows "\r\n". */
		if (ua < 3 || memcmp(in + ua - 3, ".\r\n", 3) != 0)
			abort();
		if (ua != 3 && (ua < 5 || memcmp(in + ua - 5, "\r\n", 2) != 0))
			abort();
	}

	/* Encoding the decoded message and decoding it again gives it back. */
	struct mc_dotstuff_enc en;
	mc_dotstuff_enc_init(&en);
	size_t pos = 0;
	while (pos < a.len) {
		unsigned char tmp[MC_DOTSTUFF_ENC_MIN + 3];
		size_t ol;
		size_t u = mc_dotstuff_enc(&en, a.p + pos, a.len - pos, tmp, sizeof(tmp), &ol);
		if (u == 0)
			abort();
		put(&e, tmp, ol);
		pos += u;
	}
	unsigned char tail[8];
	put(&e, tail, mc_dotstuff_enc_end(&en, tail, sizeof(tail), true));
	check_crlf(&e, true);
	size_t uc;
	if (!dec(MC_DOTSTUFF_DATA, e.p, e.len, step, &c, &uc) || uc != e.len)
		abort();
	/* a ends with a complete line unless it was cut; the encoder may add one CRLF. */
	if (c.len < a.len || memcmp(c.p, a.p, a.len) != 0 || c.len - a.len > 2)
		abort();

	/* NORM mode: never ends, output has only CRLF. */
	struct out nn = { malloc(cap), 0, cap };
	size_t un;
	if (dec(MC_DOTSTUFF_NORM, in, n, step, &nn, &un) || un != n)
		abort();
	check_crlf(&nn, true);

	free(a.p);
	free(b.p);
	free(c.p);
	free(e.p);
	free(nn.p);
	return 0;
}
