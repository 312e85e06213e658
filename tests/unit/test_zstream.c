/*
 * test_zstream.c - the raw DEFLATE stream of util/zstream.c against zlib
 * as the peer (windowBits -15, as an IMAP client compresses): round trip
 * both ways, compressed input split at every byte and fed a byte at a
 * time, a decompression bomb whose output and memory stay bounded,
 * corrupt input and input after the stream's end, and rest (the state let
 * go while idle) in the middle of both directions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "util/buf.h"
#include "util/zstream.h"

/* ---- the peer: plain zlib ---- */

struct peer {
	z_stream def, inf;
};

static void
peer_init(struct peer *p)
{
	memset(p, 0, sizeof(*p));
	assert_int_equal(deflateInit2(&p->def, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
	assert_int_equal(inflateInit2(&p->inf, -15), Z_OK);
}

static void
peer_free(struct peer *p)
{
	deflateEnd(&p->def);
	inflateEnd(&p->inf);
}

/* What the peer sends for data, ending in a sync flush (finish: the last block instead). */
static void
peer_pack(struct peer *p, const void *data, size_t n, int mode, struct mc_buf *out)
{
	unsigned char buf[4096];
	p->def.next_in = (Bytef *)(uintptr_t)data;
	p->def.avail_in = (uInt)n;
	do {
		p->def.next_out = buf;
		p->def.avail_out = sizeof(buf);
		int r = deflate(&p->def, mode);
		assert_true(r == Z_OK || r == Z_BUF_ERROR || r == Z_STREAM_END);
		assert_int_equal(mc_buf_add(out, buf, sizeof(buf) - p->def.avail_out), 0);
	} while (p->def.avail_in > 0 || p->def.avail_out == 0);
}

/* The peer reads what we sent; every byte must inflate (we flushed). */
static void
peer_unpack(struct peer *p, const void *data, size_t n, struct mc_buf *out)
{
	unsigned char buf[4096];
	p->inf.next_in = (Bytef *)(uintptr_t)data;
	p->inf.avail_in = (uInt)n;
	do {
		p->inf.next_out = buf;
		p->inf.avail_out = sizeof(buf);
		int r = inflate(&p->inf, Z_SYNC_FLUSH);
		assert_true(r == Z_OK || r == Z_BUF_ERROR);
		assert_int_equal(mc_buf_add(out, buf, sizeof(buf) - p->inf.avail_out), 0);
	} while (p->inf.avail_in > 0 || p->inf.avail_out == 0);
}

static int
sink_buf(void *arg, const void *p, size_t n)
{
	assert_true(n <= 16 * 1024);
	return mc_buf_add(arg, p, n);
}

/* Inflate all of in, step input bytes at a time into outcap-byte pieces; -1 on a stream error. */
static int
inflate_all(struct mc_zstream *z, const char *in, size_t n, size_t step, size_t outcap, struct mc_buf *out)
{
	char piece[65536];
	size_t pos = 0, avail = 0;
	assert_true(outcap <= sizeof(piece));
	for (;;) {
		if (avail == 0 && pos < n)
			avail = n - pos < step ? n - pos : step;
		size_t used, made;
		if (mc_zstream_inflate(z, in + pos, avail, &used, piece, outcap, &made) < 0)
			return -1;
		assert_true(made <= outcap);
		assert_true(used <= avail);
		pos += used;
		avail -= used;
		assert_int_equal(mc_buf_add(out, piece, made), 0);
		if (made == 0 && used == 0 && pos == n)
			return 0;
	}
}

/* IMAP-like text: repetitive lines with counters in them, so matches and literals mix. */
static void
make_text(struct mc_buf *b, unsigned lines)
{
	for (unsigned i = 1; i <= lines; i++)
		mc_buf_printf(b, "a%u UID FETCH %u:%u (FLAGS BODY.PEEK[HEADER.FIELDS (DATE FROM)]) x%08x\r\n", i, i,
			      i * 7, i * 2654435761u);
}

/* ---- tests ---- */

static void
test_round_trip(void **state)
{
	(void)state;
	struct peer p;
	peer_init(&p);
	struct mc_zstream *z = mc_zstream_new();
	assert_non_null(z);
	struct mc_buf text, wire, back;
	mc_buf_init(&text, 0);
	mc_buf_init(&wire, 0);
	mc_buf_init(&back, 0);
	make_text(&text, 3000);

	/* Ours to the peer: two batches, each ending in a flush the peer can read completely. */
	size_t half = text.len / 2;
	assert_int_equal(mc_zstream_deflate(z, text.data, half, false, sink_buf, &wire), 0);
	assert_true(mc_zstream_dirty(z));
	assert_int_equal(mc_zstream_deflate(z, NULL, 0, true, sink_buf, &wire), 0);
	assert_false(mc_zstream_dirty(z));
	peer_unpack(&p, wire.data, wire.len, &back);
	assert_int_equal(back.len, half);
	size_t wire_total = wire.len;
	mc_buf_reset(&wire);
	assert_int_equal(mc_zstream_deflate(z, text.data + half, text.len - half, true, sink_buf, &wire), 0);
	wire_total += wire.len;
	peer_unpack(&p, wire.data, wire.len, &back);
	assert_int_equal(back.len, text.len);
	assert_memory_equal(back.data, text.data, text.len);
	assert_true(wire_total < text.len / 4);
	/* A flush with nothing new sends nothing. */
	mc_buf_reset(&wire);
	assert_int_equal(mc_zstream_deflate(z, NULL, 0, true, sink_buf, &wire), 0);
	assert_int_equal(wire.len, 0);

	/* The peer to us. */
	mc_buf_reset(&wire);
	mc_buf_reset(&back);
	peer_pack(&p, text.data, text.len, Z_SYNC_FLUSH, &wire);
	assert_int_equal(inflate_all(z, wire.data, wire.len, wire.len, 65536, &back), 0);
	assert_int_equal(back.len, text.len);
	assert_memory_equal(back.data, text.data, text.len);

	mc_buf_free(&text);
	mc_buf_free(&wire);
	mc_buf_free(&back);
	mc_zstream_free(z);
	mc_zstream_free(NULL);
	peer_free(&p);
}

static void
test_split_at_every_byte(void **state)
{
	(void)state;
	struct peer p;
	peer_init(&p);
	struct mc_buf text, wire, back;
	mc_buf_init(&text, 0);
	mc_buf_init(&wire, 0);
	mc_buf_init(&back, 0);
	make_text(&text, 40);
	peer_pack(&p, text.data, text.len, Z_SYNC_FLUSH, &wire);
	for (size_t cut = 0; cut <= wire.len; cut++) {
		struct mc_zstream *z = mc_zstream_new();
		mc_buf_reset(&back);
		assert_int_equal(inflate_all(z, wire.data, cut, cut ? cut : 1, 100, &back), 0);
		assert_int_equal(inflate_all(z, wire.data + cut, wire.len - cut, 1 + cut % 5, 1 + cut % 37, &back), 0);
		assert_int_equal(back.len, text.len);
		assert_memory_equal(back.data, text.data, text.len);
		mc_zstream_free(z);
	}
	/* One byte of input and one byte of output at a time. */
	struct mc_zstream *z = mc_zstream_new();
	mc_buf_reset(&back);
	assert_int_equal(inflate_all(z, wire.data, wire.len, 1, 1, &back), 0);
	assert_int_equal(back.len, text.len);
	assert_memory_equal(back.data, text.data, text.len);
	mc_zstream_free(z);
	mc_buf_free(&text);
	mc_buf_free(&wire);
	mc_buf_free(&back);
	peer_free(&p);
}

static void
test_bomb_bounded(void **state)
{
	(void)state;
	struct peer p;
	peer_init(&p);
	struct mc_buf wire;
	mc_buf_init(&wire, 0);
	/* 100 MB of 'a' without a line end: about 100 KB on the wire. */
	char *chunk = malloc(1 << 20);
	assert_non_null(chunk);
	memset(chunk, 'a', 1 << 20);
	for (int i = 0; i < 100; i++)
		peer_pack(&p, chunk, 1 << 20, i == 99 ? Z_SYNC_FLUSH : Z_NO_FLUSH, &wire);
	free(chunk);
	assert_true(wire.len < 200 * 1024);

	struct mc_zstream *z = mc_zstream_new();
	char out[4096];
	size_t used, made, taken = 0, total = 0, mem_max = 0;
	/* A reader that stops after 64 KiB (its line limit): only that much is ever inflated. */
	while (total < 64 * 1024) {
		assert_int_equal(mc_zstream_inflate(z, wire.data + taken, wire.len - taken, &used, out, sizeof(out), &made), 0);
		assert_true(made <= sizeof(out));
		taken += used;
		total += made;
		if (mc_zstream_mem(z) > mem_max)
			mem_max = mc_zstream_mem(z);
	}
	assert_int_equal(total, 64 * 1024);
	assert_true(taken < wire.len / 10);   /* most of the bomb is still unread */
	/* The inflater's state and its 32 KiB window, nothing that grows with the input. */
	assert_true(mem_max < 48 * 1024);
	print_message("bomb: %zu bytes inflated from %zu of %zu compressed; zlib held at most %zu bytes\n", total,
		      taken, wire.len, mem_max);
	mc_zstream_free(z);
	mc_buf_free(&wire);
	peer_free(&p);
}

static void
test_corrupt_input(void **state)
{
	(void)state;
	struct mc_buf back;
	mc_buf_init(&back, 0);
	/* A stored block whose length and its complement disagree. */
	static const char bad_stored[] = "\x00\x05\x00\x00\x00hello";
	struct mc_zstream *z = mc_zstream_new();
	assert_int_equal(inflate_all(z, bad_stored, sizeof(bad_stored) - 1, 64, 64, &back), -1);
	assert_non_null(strstr(mc_zstream_error(z), "corrupt compressed input"));
	size_t used, made;
	char out[16];
	assert_int_equal(mc_zstream_inflate(z, "x", 1, &used, out, sizeof(out), &made), -1);   /* stays failed */
	mc_zstream_free(z);

	/* Block type 3 does not exist. */
	z = mc_zstream_new();
	assert_int_equal(inflate_all(z, "\xff\xff\xff\xff", 4, 1, 64, &back), -1);
	mc_zstream_free(z);

	/* After the peer's last block nothing may follow. */
	struct peer p;
	peer_init(&p);
	struct mc_buf wire;
	mc_buf_init(&wire, 0);
	peer_pack(&p, "a1 NOOP\r\n", 9, Z_FINISH, &wire);
	mc_buf_add(&wire, "junk", 4);
	z = mc_zstream_new();
	mc_buf_reset(&back);
	assert_int_equal(inflate_all(z, wire.data, wire.len, wire.len, 64, &back), -1);
	assert_int_equal(back.len, 9);
	assert_non_null(strstr(mc_zstream_error(z), "after the end"));
	mc_zstream_free(z);
	mc_buf_free(&wire);
	mc_buf_free(&back);
	peer_free(&p);
}

static void
test_rest_in_both_directions(void **state)
{
	(void)state;
	struct peer p;
	peer_init(&p);
	struct mc_zstream *z = mc_zstream_new();
	struct mc_buf text, wire, back;
	mc_buf_init(&text, 0);
	mc_buf_init(&wire, 0);
	mc_buf_init(&back, 0);
	make_text(&text, 200);

	/* Input: the second batch repeats the first, so it refers back across the rest. */
	peer_pack(&p, text.data, text.len, Z_SYNC_FLUSH, &wire);
	assert_int_equal(inflate_all(z, wire.data, wire.len, wire.len, 65536, &back), 0);
	/* Output: one batch, flushed. */
	struct mc_buf ours, ours_back;
	mc_buf_init(&ours, 0);
	mc_buf_init(&ours_back, 0);
	assert_int_equal(mc_zstream_deflate(z, text.data, text.len, true, sink_buf, &ours), 0);
	size_t active = mc_zstream_mem(z);
	mc_zstream_rest(z);
	size_t resting = mc_zstream_mem(z);
	print_message("zstream: %zu bytes active, %zu resting after %zu bytes each way\n", active, resting, text.len);
	assert_true(resting <= text.len && resting < active / 4);

	mc_buf_reset(&wire);
	size_t first = back.len;
	peer_pack(&p, text.data, text.len, Z_SYNC_FLUSH, &wire);
	assert_true(wire.len < text.len / 20);   /* nothing but back-references */
	assert_int_equal(inflate_all(z, wire.data, wire.len, 3, 512, &back), 0);
	assert_int_equal(back.len, 2 * text.len);
	assert_memory_equal(back.data + first, text.data, text.len);

	assert_int_equal(mc_zstream_deflate(z, text.data, text.len, true, sink_buf, &ours), 0);
	peer_unpack(&p, ours.data, ours.len, &ours_back);
	assert_int_equal(ours_back.len, 2 * text.len);
	assert_memory_equal(ours_back.data, text.data, text.len);
	assert_memory_equal(ours_back.data + text.len, text.data, text.len);

	/* Rest does nothing harmful while output is unflushed: that output still arrives. */
	assert_int_equal(mc_zstream_deflate(z, "tail\r\n", 6, false, sink_buf, &ours), 0);
	mc_zstream_rest(z);
	assert_int_equal(mc_zstream_deflate(z, NULL, 0, true, sink_buf, &ours), 0);
	mc_buf_reset(&ours_back);
	peer_free(&p);
	peer_init(&p);
	peer_unpack(&p, ours.data, ours.len, &ours_back);
	assert_int_equal(ours_back.len, 2 * text.len + 6);
	assert_memory_equal(ours_back.data + 2 * text.len, "tail\r\n", 6);

	mc_buf_free(&ours);
	mc_buf_free(&ours_back);
	mc_buf_free(&text);
	mc_buf_free(&wire);
	mc_buf_free(&back);
	mc_zstream_free(z);
	peer_free(&p);
}

static int
sink_refuse(void *arg, const void *p, size_t n)
{
	(void)arg;
	(void)p;
	(void)n;
	return -1;
}

static void
test_sink_refuses(void **state)
{
	(void)state;
	struct mc_zstream *z = mc_zstream_new();
	assert_int_equal(mc_zstream_deflate(z, "abc", 3, true, sink_refuse, NULL), -1);
	assert_non_null(strstr(mc_zstream_error(z), "refused"));
	mc_zstream_free(z);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_split_at_every_byte),
		cmocka_unit_test(test_bomb_bounded),
		cmocka_unit_test(test_corrupt_input),
		cmocka_unit_test(test_rest_in_both_directions),
		cmocka_unit_test(test_sink_refuses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
