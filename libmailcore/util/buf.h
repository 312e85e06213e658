/*
 * buf.h - a growable byte buffer with a hard upper bound.
 *
 * Every buffer that holds input from outside (a network client, a peer
 * daemon, a file) is an mc_buf with a maximum size; appending past the
 * maximum fails instead of growing, so no input can make a process use
 * unbounded memory. Used by every protocol and by the IPC codec.
 *
 * Pointers into data stay valid until the next append or consume.
 */
#ifndef MC_BUF_H
#define MC_BUF_H

#include <stddef.h>
#include <stdarg.h>

struct mc_buf {
	char *data;   /* NUL-terminated for convenience; len excludes the NUL */
	size_t len;
	size_t cap;
	size_t max;   /* the bound on len; 0 means SIZE_MAX/2 */
};

/* Prepare an empty buffer that may hold at most max bytes. */
void mc_buf_init(struct mc_buf *b, size_t max);
/* Release the storage; the buffer is empty and reusable afterwards. */
void mc_buf_free(struct mc_buf *b);
/* Append n bytes; -1 (and nothing appended) if that would pass the bound. */
int mc_buf_add(struct mc_buf *b, const void *p, size_t n);
/* Append a NUL-terminated string. */
int mc_buf_adds(struct mc_buf *b, const char *s);
/* Append formatted text; -1 if the bound would be passed. */
int mc_buf_printf(struct mc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int mc_buf_vprintf(struct mc_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Drop the first n bytes (n larger than len empties the buffer). */
void mc_buf_consume(struct mc_buf *b, size_t n);
/* Empty the buffer, keeping its storage. */
void mc_buf_reset(struct mc_buf *b);
/* Make room for n more bytes and return where they go; commit with mc_buf_commit. NULL past the bound. */
char *mc_buf_reserve(struct mc_buf *b, size_t n);
void mc_buf_commit(struct mc_buf *b, size_t n);

/*
 * Find the next line ending in LF. Returns the length of the line
 * including its LF, 0 when no complete line is buffered yet.
 */
size_t mc_buf_line(const struct mc_buf *b);

#endif
