/*
 * zstream.h - a raw DEFLATE stream (RFC 1951) in both directions over
 * zlib, for compressed transports (IMAP COMPRESS=DEFLATE, RFC 4978).
 *
 * No I/O: mc_conn (util/conn.c) puts it between TLS and the protocol.
 * Input inflates into the caller's buffer and never past its free space,
 * so a few bytes that inflate to gigabytes cost one buffer's worth per
 * call: the caller inflates only as far as its parser consumes. Output
 * deflates into bounded chunks handed to a sink; a flush (Z_SYNC_FLUSH)
 * ends a batch so the peer can read all of it.
 *
 * Memory: the inflater keeps the 32 KiB window the peer may refer to
 * (RFC 4978: the peer may compress with windowBits 15); the deflater uses
 * a 4 KiB window and memLevel 5 (about 38 KiB instead of zlib's default
 * 262 KiB; output about 8% larger on mail). mc_zstream_rest() releases
 * what can be rebuilt while a connection sits idle: the deflater after a
 * flush (the next output starts new blocks that refer to nothing before),
 * and the inflater at a block boundary (its window kept as a copy of the
 * bytes it holds, given back as the dictionary when input comes again).
 */
#ifndef MC_ZSTREAM_H
#define MC_ZSTREAM_H

#include <stdbool.h>
#include <stddef.h>

struct mc_zstream;

/* Takes compressed output; return -1 to stop (the deflate call then fails). */
typedef int (*mc_zstream_sink)(void *arg, const void *p, size_t n);

/* A new stream pair; nothing is allocated by zlib until first used. NULL when out of memory. */
struct mc_zstream *mc_zstream_new(void);
/* Free it; NULL is a no-op. */
void mc_zstream_free(struct mc_zstream *z);

/*
 * Inflate from in[0..inlen) into out[0..outcap): *used input bytes were
 * taken, *made bytes written (at most outcap). Output may come without
 * new input (a long match): call again while *made == outcap. 0, or -1
 * on corrupt input, input after the stream's end or no memory
 * (mc_zstream_error says which); after -1 the stream is unusable.
 */
int mc_zstream_inflate(struct mc_zstream *z, const void *in, size_t inlen, size_t *used, void *out, size_t outcap,
		       size_t *made);

/*
 * Compress p[0..n) and hand what comes out to sink in chunks of at most
 * 16 KiB. flush: end with a sync flush, so everything written so far can
 * be inflated by the peer (n may be 0). 0, or -1 (sink refused, zlib error).
 */
int mc_zstream_deflate(struct mc_zstream *z, const void *p, size_t n, bool flush, mc_zstream_sink sink,
		       void *arg);
/* Was something compressed since the last flush? */
bool mc_zstream_dirty(const struct mc_zstream *z);

/* Release what can be rebuilt (see above); safe at any time, does what it can. */
void mc_zstream_rest(struct mc_zstream *z);
/* Bytes zlib and the kept window hold now (for tests and measurements). */
size_t mc_zstream_mem(const struct mc_zstream *z);
/* Why the last call failed. */
const char *mc_zstream_error(const struct mc_zstream *z);

#endif
