/*
 * zstream.c - raw DEFLATE in both directions over zlib (see zstream.h).
 *
 * Called by util/conn.c once a protocol turns compression on (imapd's
 * COMPRESS), and by the unit test and fuzz target. Owns the two z_stream
 * states, created on first use and ended by mc_zstream_rest() when idle,
 * and the copy of the inflater's window kept meanwhile. zlib allocates
 * through counting hooks so mc_zstream_mem() can say what a connection
 * costs.
 *
 * zlib and not our own inflate: the decoder of untrusted compressed input
 * is the part that must not have bugs, and zlib's is the one the world
 * has fuzzed for thirty years.
 *
 * Never: write past the caller's output space, inflate ahead of what the
 * caller asked for, or hand the sink more than OUT_CHUNK at once.
 */
#include "util/zstream.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

/* RFC 4978: the peer may compress with a 32 KiB window, so ours to inflate must be that large. */
#define INFLATE_WBITS (-15)
/* Our own output: a smaller window and hash cost little ratio and most of the memory. */
#define DEFLATE_WBITS (-12)
#define DEFLATE_MEMLEVEL 5
#define DEFLATE_LEVEL Z_DEFAULT_COMPRESSION
/* Compressed output handed to the sink at once. */
#define OUT_CHUNK (16 * 1024)
/* inflate()'s data_type at a block boundary on a byte boundary, not after the last block (zlib.h, Z_BLOCK). */
#define AT_BOUNDARY 128

struct mc_zstream {
	z_stream inf, def;
	bool inf_on, def_on;     /* the z_stream is initialised */
	bool inf_boundary;       /* the last inflate ended between blocks with all its input taken */
	bool inf_ended;          /* the peer's last block was read */
	bool failed;
	bool dirty;              /* deflated since the last flush */
	unsigned char *dict;     /* the inflater's window while it rests */
	size_t dict_len;
	size_t mem;              /* bytes allocated by zlib, plus dict */
	char err[96];
};

/* zlib allocates through these so the stream knows its weight. */
union zhdr {
	size_t size;
	max_align_t align;
};

static voidpf
z_alloc(voidpf opaque, uInt items, uInt size)
{
	struct mc_zstream *z = opaque;
	if (size && items > (SIZE_MAX - sizeof(union zhdr)) / size)
		return Z_NULL;
	size_t n = (size_t)items * size;
	union zhdr *h = malloc(sizeof(*h) + n);
	if (h == NULL)
		return Z_NULL;
	h->size = n;
	z->mem += n;
	return h + 1;
}

static void
z_free(voidpf opaque, voidpf p)
{
	struct mc_zstream *z = opaque;
	if (p == Z_NULL)
		return;
	union zhdr *h = (union zhdr *)p - 1;
	z->mem -= h->size;
	free(h);
}

static int
fail(struct mc_zstream *z, const char *what, const char *msg)
{
	z->failed = true;
	snprintf(z->err, sizeof(z->err), "%s%s%s", what, msg ? ": " : "", msg ? msg : "");
	return -1;
}

struct mc_zstream *
mc_zstream_new(void)
{
	return calloc(1, sizeof(struct mc_zstream));
}

static void
drop_dict(struct mc_zstream *z)
{
	if (z->dict) {
		z->mem -= z->dict_len;
		free(z->dict);
	}
	z->dict = NULL;
	z->dict_len = 0;
}

void
mc_zstream_free(struct mc_zstream *z)
{
	if (z == NULL)
		return;
	if (z->inf_on)
		inflateEnd(&z->inf);
	if (z->def_on)
		deflateEnd(&z->def);
	drop_dict(z);
	free(z);
}

const char *
mc_zstream_error(const struct mc_zstream *z)
{
	return z->err[0] ? z->err : "no error";
}

size_t
mc_zstream_mem(const struct mc_zstream *z)
{
	return z->mem;
}

bool
mc_zstream_dirty(const struct mc_zstream *z)
{
	return z->dirty;
}

/* ---- inflate ---- */

/* Start (or restart after a rest) the inflater, with the window it had as the dictionary. */
static int
inf_start(struct mc_zstream *z)
{
	memset(&z->inf, 0, sizeof(z->inf));
	z->inf.zalloc = z_alloc;
	z->inf.zfree = z_free;
	z->inf.opaque = z;
	if (inflateInit2(&z->inf, INFLATE_WBITS) != Z_OK)
		return fail(z, "cannot start inflate", z->inf.msg);
	z->inf_on = true;
	if (z->dict_len && inflateSetDictionary(&z->inf, z->dict, (uInt)z->dict_len) != Z_OK)
		return fail(z, "cannot restore the inflate window", z->inf.msg);
	drop_dict(z);
	return 0;
}

int
mc_zstream_inflate(struct mc_zstream *z, const void *in, size_t inlen, size_t *used, void *out, size_t outcap,
		   size_t *made)
{
	*used = *made = 0;
	if (z->failed)
		return -1;
	if (z->inf_ended) {
		if (inlen == 0)
			return 0;
		return fail(z, "compressed input after the end of the stream", NULL);
	}
	if (inlen == 0 && (!z->inf_on || z->inf_boundary))
		return 0;   /* nothing can come out: do not start or wake the inflater */
	if (!z->inf_on && inf_start(z) < 0)
		return -1;
	/* zlib counts in uInt: hand it at most UINT_MAX at a time; the caller calls again. */
	z->inf.next_in = (Bytef *)(uintptr_t)in;
	z->inf.avail_in = inlen > UINT_MAX ? UINT_MAX : (uInt)inlen;
	z->inf.next_out = out;
	z->inf.avail_out = outcap > UINT_MAX ? UINT_MAX : (uInt)outcap;
	uInt in0 = z->inf.avail_in, out0 = z->inf.avail_out;
	int r = inflate(&z->inf, Z_SYNC_FLUSH);
	*used = in0 - z->inf.avail_in;
	*made = out0 - z->inf.avail_out;
	switch (r) {
	case Z_OK:
	case Z_BUF_ERROR:   /* no progress possible: more input or more room needed */
		break;
	case Z_STREAM_END:
		z->inf_ended = true;
		break;
	case Z_MEM_ERROR:
		return fail(z, "inflate", "out of memory");
	default:   /* Z_DATA_ERROR, Z_NEED_DICT (not raw deflate), Z_STREAM_ERROR */
		return fail(z, "corrupt compressed input", z->inf.msg ? z->inf.msg : "bad data");
	}
	z->inf_boundary = z->inf.avail_in == 0 && z->inf.avail_out > 0 && z->inf.data_type == AT_BOUNDARY;
	return 0;
}

/* ---- deflate ---- */

static int
def_start(struct mc_zstream *z)
{
	memset(&z->def, 0, sizeof(z->def));
	z->def.zalloc = z_alloc;
	z->def.zfree = z_free;
	z->def.opaque = z;
	if (deflateInit2(&z->def, DEFLATE_LEVEL, Z_DEFLATED, DEFLATE_WBITS, DEFLATE_MEMLEVEL, Z_DEFAULT_STRATEGY) !=
	    Z_OK)
		return fail(z, "cannot start deflate", z->def.msg);
	z->def_on = true;
	return 0;
}

int
mc_zstream_deflate(struct mc_zstream *z, const void *p, size_t n, bool flush, mc_zstream_sink sink, void *arg)
{
	unsigned char buf[OUT_CHUNK];
	if (z->failed)
		return -1;
	if (n == 0 && (!flush || !z->dirty))
		return 0;   /* a second sync flush in a row would only send an empty block */
	if (!z->def_on && def_start(z) < 0)
		return -1;
	const unsigned char *src = p;
	do {
		size_t take = n > UINT_MAX ? UINT_MAX : n;
		bool last = take == n;
		int mode = flush && last ? Z_SYNC_FLUSH : Z_NO_FLUSH;
		z->def.next_in = (Bytef *)(uintptr_t)src;
		z->def.avail_in = (uInt)take;
		/* Until zlib has taken all input and, when flushing, had room left over (the flush is complete). */
		do {
			z->def.next_out = buf;
			z->def.avail_out = sizeof(buf);
			int r = deflate(&z->def, mode);
			if (r != Z_OK && r != Z_BUF_ERROR)
				return fail(z, "deflate", z->def.msg ? z->def.msg : "stream error");
			size_t got = sizeof(buf) - z->def.avail_out;
			if (got && sink(arg, buf, got) < 0)
				return fail(z, "deflate", "output refused");
		} while (z->def.avail_in > 0 || z->def.avail_out == 0);
		src += take;
		n -= take;
	} while (n > 0);
	z->dirty = !flush;
	return 0;
}

/* ---- rest ---- */

void
mc_zstream_rest(struct mc_zstream *z)
{
	if (z->failed)
		return;
	/* After a sync flush nothing is pending: the next output starts new blocks after the empty stored one. */
	if (z->def_on && !z->dirty) {
		deflateEnd(&z->def);   /* Z_DATA_ERROR for an unfinished stream: nothing is lost, it was flushed */
		z->def_on = false;
	}
	if (z->inf_on && z->inf_boundary && !z->inf_ended) {
		uInt len = 0;
		if (inflateGetDictionary(&z->inf, Z_NULL, &len) != Z_OK)
			return;
		unsigned char *d = len ? malloc(len) : NULL;
		if (len && d == NULL)
			return;   /* keep the inflater as it is */
		if (len)
			inflateGetDictionary(&z->inf, d, &len);
		inflateEnd(&z->inf);
		z->inf_on = false;
		z->dict = d;
		z->dict_len = len;
		z->mem += len;
	}
}
