/*
 * fuzz_zstream.c - libFuzzer target for util/zstream.c as imapd uses it
 * after COMPRESS DEFLATE: the input (after two mode bytes) is a client's
 * compressed stream, inflated in pieces of varying size into a bounded
 * buffer and fed to the IMAP reader (imapd/parse.c) with the limits of a
 * logged-in session, the way mc_conn and session.c do. Then the same
 * bytes go through our deflater (flushes and rests where the data says)
 * and back through a second inflater, and must come out unchanged.
 * Invariants: no output past the space given, zlib's memory bounded
 * whatever the input (a bomb costs one buffer), the reader within its
 * limits, the round trip exact.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imapd/parse.h"
#include "util/buf.h"
#include "util/zstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What an inflater may hold: its state and the 32 KiB window, plus a kept copy of it. */
#define MEM_BOUND (80 * 1024)
#define IN_MAX (64 * 1024)

static void
check_mem(const struct mc_zstream *z)
{
	if (mc_zstream_mem(z) > MEM_BOUND)
		abort();
}

/* Inflate like mc_conn: into the free part of a bounded buffer the reader drains. */
static void
inflate_into_reader(const uint8_t *in, size_t n, size_t step, size_t outcap, bool rest)
{
	struct imap_reader_limits lim = { 64 * 1024, 64 * 1024, 256 * 1024, true };
	struct imap_reader rd;
	imap_reader_init(&rd, &lim);
	struct mc_zstream *z = mc_zstream_new();
	char *buf = malloc(IN_MAX);
	size_t have = 0, pos = 0, total = 0;
	if (z == NULL || buf == NULL)
		abort();
	for (int guard = 0; guard < 100000; guard++) {
		size_t avail = n - pos < step ? n - pos : step;
		size_t space = IN_MAX - have < outcap ? IN_MAX - have : outcap;
		size_t used = 0, made = 0;
		int r = mc_zstream_inflate(z, in + pos, avail, &used, buf + have, space, &made);
		check_mem(z);
		if (used > avail || made > space)
			abort();
		pos += used;
		have += made;
		total += made;
		if (r < 0 || total > 16 * 1024 * 1024)
			break;
		/* The reader takes what it can, command by command, as session.c's loop does. */
		for (int inner = 0; inner < 100000; inner++) {
			size_t took = 0;
			enum imap_rd e = imap_reader_feed(&rd, buf, have, &took);
			if (took > have)
				abort();
			memmove(buf, buf + took, have - took);
			have -= took;
			if (e == IMAP_RD_FATAL)
				goto out;
			if (e == IMAP_RD_COMMAND)
				imap_reader_next(&rd);
			else if (e == IMAP_RD_LITERAL)
				imap_reader_literal(&rd, IMAP_LIT_STREAM);   /* APPEND's message: streamed, as append.c takes it */
			else if (e == IMAP_RD_MORE)
				break;
		}
		if (rd.cmd.len > rd.cmd.max || rd.cmd.max > lim.command_max)
			abort();
		if (made == 0 && used == 0) {
			if (pos == n)
				break;
			if (have == IN_MAX)
				break;   /* the reader does not drain: mc_conn would wait, and so does the test */
		}
		if (rest && made < space && pos == n)
			mc_zstream_rest(z);
	}
out:
	free(buf);
	mc_zstream_free(z);
	imap_reader_free(&rd);
}

static int
sink(void *arg, const void *p, size_t n)
{
	return mc_buf_add(arg, p, n);
}

/* Our deflater to a second inflater: flush (and rest) wherever a byte of the data says. */
static void
round_trip(const uint8_t *in, size_t n, unsigned mode)
{
	struct mc_zstream *tx = mc_zstream_new(), *rx = mc_zstream_new();
	struct mc_buf wire, back;
	mc_buf_init(&wire, 0);
	mc_buf_init(&back, 0);
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		bool cut = i == n || (in[i] & 0x3f) == (mode & 0x3f);
		if (!cut)
			continue;
		if (mc_zstream_deflate(tx, in + start, i - start, true, sink, &wire) < 0)
			abort();
		start = i;
		char out[4096];
		size_t pos = 0;
		for (;;) {
			size_t used, made;
			if (mc_zstream_inflate(rx, wire.data + pos, wire.len - pos, &used, out, sizeof(out), &made) < 0)
				abort();
			pos += used;
			mc_buf_add(&back, out, made);
			if (used == 0 && made == 0)
				break;
		}
		if (pos != wire.len)
			abort();   /* a flushed batch inflates completely */
		mc_buf_reset(&wire);
		check_mem(rx);
		if (mode & 0x40) {
			mc_zstream_rest(tx);
			mc_zstream_rest(rx);
		}
	}
	if (back.len != n || (n && memcmp(back.data, in, n) != 0))
		abort();
	mc_buf_free(&wire);
	mc_buf_free(&back);
	mc_zstream_free(tx);
	mc_zstream_free(rx);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	unsigned mode = data[0], step = 1u + data[1] * 37u;
	size_t outcap = (size_t)1 << (mode & 15);
	inflate_into_reader(data + 2, size - 2, step, outcap ? outcap : 1, mode & 0x80);
	if (size - 2 <= 64 * 1024)
		round_trip(data + 2, size - 2, mode >> 4 | (mode & 0x40));
	return 0;
}
