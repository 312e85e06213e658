/*
 * test_dotstuff.c - the DATA decoder and the output encoder: the end of
 * data split across every possible chunk boundary, SMTP smuggling
 * variants that must not end the data, unstuffing, normalisation of bare
 * CR and LF, and an encoder whose output has only CRLF and stuffed dots.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/dotstuff.h"

struct result {
	int done;
	size_t used;     /* input bytes taken in total */
	size_t outlen;
	char out[4096];
};

/* Decode in, cut into pieces at the offsets in cuts (ascending), with a small output buffer. */
static void
decode_cut(enum mc_dotstuff_mode mode, const char *in, size_t inlen, const size_t *cuts, size_t ncuts,
	   struct result *r)
{
	struct mc_dotstuff_dec d;
	size_t start = 0;

	mc_dotstuff_dec_init(&d, mode);
	memset(r, 0, sizeof(*r));
	for (size_t c = 0; c <= ncuts && !r->done; c++) {
		size_t end = c < ncuts ? cuts[c] : inlen;
		size_t pos = start;
		while (pos < end && !r->done) {
			char tmp[MC_DOTSTUFF_DEC_MIN + 3];
			size_t used, olen;
			r->done = mc_dotstuff_dec(&d, in + pos, end - pos, &used, tmp, sizeof(tmp), &olen);
			assert_true(r->outlen + olen < sizeof(r->out));
			memcpy(r->out + r->outlen, tmp, olen);
			r->outlen += olen;
			pos += used;
			assert_true(used > 0 || olen > 0 || r->done);
		}
		r->used = pos;
		start = end;
	}
	if (mode == MC_DOTSTUFF_NORM)
		r->outlen += mc_dotstuff_dec_finish(&d, r->out + r->outlen, sizeof(r->out) - r->outlen);
	r->out[r->outlen] = '\0';
}

static void
decode(const char *in, struct result *r)
{
	decode_cut(MC_DOTSTUFF_DATA, in, strlen(in), NULL, 0, r);
}

static void
test_terminator_every_split(void **state)
{
	static const char msg[] = "Subject: x\r\n\r\nline one\r\n..dot\r\nlast\r\n.\r\nQUIT\r\n";
	const char *want = "Subject: x\r\n\r\nline one\r\n.dot\r\nlast\r\n";
	size_t n = strlen(msg);
	size_t term_end = strlen(msg) - strlen("QUIT\r\n");

	/* Every single cut point, and every pair of cut points. */
	for (size_t i = 0; i <= n; i++) {
		for (size_t j = i; j <= n; j++) {
			size_t cuts[2] = { i, j };
			struct result r;
			decode_cut(MC_DOTSTUFF_DATA, msg, n, cuts, 2, &r);
			assert_int_equal(r.done, 1);
			assert_int_equal(r.used, term_end);
			assert_string_equal(r.out, want);
		}
	}
	/* Byte by byte. */
	size_t cuts[sizeof(msg)];
	for (size_t i = 0; i < n; i++)
		cuts[i] = i + 1;
	struct result r;
	decode_cut(MC_DOTSTUFF_DATA, msg, n, cuts, n, &r);
	assert_int_equal(r.done, 1);
	assert_string_equal(r.out, want);
}

static void
test_empty_message(void **state)
{
	struct result r;
	decode(".\r\nNEXT", &r);
	assert_int_equal(r.done, 1);
	assert_int_equal(r.used, 3);
	assert_int_equal(r.outlen, 0);
}

static void
test_smuggling(void **state)
{
	static const struct {
		const char *in;
		const char *stored;   /* what is stored before the real terminator */
	} cases[] = {
		{ "a\n.\nMAIL FROM:<x@y>\r\n.\r\n", "a\r\n.\r\nMAIL FROM:<x@y>\r\n" },
		{ "a\r\n.\nMAIL FROM:<x@y>\r\n.\r\n", "a\r\n.\r\nMAIL FROM:<x@y>\r\n" },
		{ "a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n", "a\r\n.\r\nMAIL FROM:<x@y>\r\n" },
		{ "a\r.\rMAIL FROM:<x@y>\r\n.\r\n", "a\r\n.\r\nMAIL FROM:<x@y>\r\n" },
		{ "a\r.\r\nMAIL FROM:<x@y>\r\n.\r\n", "a\r\n.\r\nMAIL FROM:<x@y>\r\n" },
		{ "a\r\n.\rMAIL FROM:<x@y>\r\n.\r\n", "a\r\n.\r\nMAIL FROM:<x@y>\r\n" },
		{ "a\r\r\n.\r\r\n.\r\n", "a\r\n\r\n.\r\n\r\n" },
		{ ".\n.\r\n.\r\n", ".\r\n.\r\n" },
		{ "x\r\n .\r\n.\r\n", "x\r\n .\r\n" },
		{ "x\r\n.x\r\n.\r\n", "x\r\nx\r\n" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct result r;
		decode(cases[i].in, &r);
		assert_int_equal(r.done, 1);
		assert_int_equal(r.used, strlen(cases[i].in));
		assert_string_equal(r.out, cases[i].stored);
	}
	/* Without a real <CRLF>.<CRLF> the data never ends. */
	static const char *const never[] = { "a\n.\n", "a\r\n.\n", "a\n.\r\n", "a\r.\r", "a\r.\rb", "a\r\n.\r",
					     "a\r\n. \r\n", "a\r\n..\r\n",
					     ".\n.\r\n" };
	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
		struct result r;
		decode(never[i], &r);
		assert_int_equal(r.done, 0);
		assert_int_equal(r.used, strlen(never[i]));
	}
}

static void
test_normalise_and_unstuff(void **state)
{
	struct result r;
	decode("bare\nlf\rcr\r\n..stuffed\r\n...two\r\n.\r\n", &r);
	assert_string_equal(r.out, "bare\r\nlf\r\ncr\r\n.stuffed\r\n..two\r\n");
	decode("\n\n.\r\n", &r);
	assert_int_equal(r.done, 0);
	assert_string_equal(r.out, "\r\n\r\n.\r\n");
}

static void
test_norm_mode(void **state)
{
	struct result r;
	static const char in[] = ".\r\nx\ny\r\r\n.\r\nend\r";
	/* BDAT: no dot handling, never ends; bare CR/LF normalised; a final bare CR flushed. */
	for (size_t cut = 0; cut <= sizeof(in) - 1; cut++) {
		size_t cuts[1] = { cut };
		decode_cut(MC_DOTSTUFF_NORM, in, sizeof(in) - 1, cuts, 1, &r);
		assert_int_equal(r.done, 0);
		assert_string_equal(r.out, ".\r\nx\r\ny\r\n\r\n.\r\nend\r\n");
	}
}

/* Encode in (cut at cut) with a small output buffer, then end. */
static void
encode(const char *in, size_t cut, char *out, size_t outsz)
{
	struct mc_dotstuff_enc e;
	size_t n = strlen(in), pos = 0, o = 0;

	mc_dotstuff_enc_init(&e);
	while (pos < n) {
		size_t end = pos < cut && cut < n ? cut : n;
		while (pos < end) {
			char tmp[MC_DOTSTUFF_ENC_MIN + 1];
			size_t olen;
			size_t used = mc_dotstuff_enc(&e, in + pos, end - pos, tmp, sizeof(tmp), &olen);
			assert_true(used > 0);
			assert_true(o + olen < outsz);
			memcpy(out + o, tmp, olen);
			o += olen;
			pos += used;
		}
	}
	o += mc_dotstuff_enc_end(&e, out + o, outsz - o, true);
	out[o] = '\0';
}

static void
test_encoder(void **state)
{
	char out[512];
	static const char in[] = ".start\nmid\r\n.\r\nbare\rcr\r\n..x\nlast";
	const char *want = "..start\r\nmid\r\n..\r\nbare\r\ncr\r\n...x\r\nlast\r\n.\r\n";
	for (size_t cut = 0; cut <= sizeof(in) - 1; cut++) {
		encode(in, cut, out, sizeof(out));
		assert_string_equal(out, want);
		/* Every LF has a CR before it, every CR an LF after it. */
		for (size_t i = 0; out[i]; i++) {
			if (out[i] == '\n')
				assert_true(i > 0 && out[i - 1] == '\r');
			if (out[i] == '\r')
				assert_true(out[i + 1] == '\n');
		}
	}
	encode("", 0, out, sizeof(out));
	assert_string_equal(out, ".\r\n");
	encode("a\r\n", 0, out, sizeof(out));
	assert_string_equal(out, "a\r\n.\r\n");
	encode("a\r", 0, out, sizeof(out));
	assert_string_equal(out, "a\r\n.\r\n");
}

static void
test_roundtrip(void **state)
{
	/* Encoding then decoding gives back the CRLF-normalised message. */
	static const char in[] = ".\r\n..\r\nx\n.\n\r.y\r\n";
	char enc[256];
	encode(in, 0, enc, sizeof(enc));
	struct result r;
	decode(enc, &r);
	assert_int_equal(r.done, 1);
	assert_int_equal(r.used, strlen(enc));
	assert_string_equal(r.out, ".\r\n..\r\nx\r\n.\r\n\r\n.y\r\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_terminator_every_split),
		cmocka_unit_test(test_empty_message),
		cmocka_unit_test(test_smuggling),
		cmocka_unit_test(test_normalise_and_unstuff),
		cmocka_unit_test(test_norm_mode),
		cmocka_unit_test(test_encoder),
		cmocka_unit_test(test_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
