/*
 * buf.c - bounded growable byte buffers (see buf.h).
 *
 * Allocation failure is treated as a bug-level condition (panic): the
 * bounds on every buffer are what keep memory use in check, not a
 * recoverable malloc failure in the middle of a protocol exchange.
 */
#include "util/buf.h"
#include "util/log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
mc_buf_init(struct mc_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max ? max : SIZE_MAX / 2;
}

void
mc_buf_free(struct mc_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

char *
mc_buf_reserve(struct mc_buf *b, size_t n)
{
	if (n > b->max - b->len)
		return NULL;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		if (cap > b->max + 1)
			cap = b->max + 1;
		char *p = realloc(b->data, cap);
		if (p == NULL)
			mc_panic("out of memory growing a buffer to %zu bytes", cap);
		b->data = p;
		b->cap = cap;
	}
	return b->data + b->len;
}

void
mc_buf_commit(struct mc_buf *b, size_t n)
{
	b->len += n;
	b->data[b->len] = '\0';
}

int
mc_buf_add(struct mc_buf *b, const void *p, size_t n)
{
	char *dst = mc_buf_reserve(b, n);
	if (dst == NULL)
		return -1;
	if (n)
		memcpy(dst, p, n);
	mc_buf_commit(b, n);
	return 0;
}

int
mc_buf_adds(struct mc_buf *b, const char *s)
{
	return mc_buf_add(b, s, strlen(s));
}

int
mc_buf_vprintf(struct mc_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return -1;
	char *dst = mc_buf_reserve(b, (size_t)n);
	if (dst == NULL)
		return -1;
	vsnprintf(dst, (size_t)n + 1, fmt, ap);
	mc_buf_commit(b, (size_t)n);
	return 0;
}

int
mc_buf_printf(struct mc_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = mc_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

void
mc_buf_consume(struct mc_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->data, b->data + n, b->len - n);
		b->len -= n;
	}
	if (b->data)
		b->data[b->len] = '\0';
}

void
mc_buf_reset(struct mc_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

size_t
mc_buf_line(const struct mc_buf *b)
{
	if (b->len == 0)
		return 0;
	const char *nl = memchr(b->data, '\n', b->len);
	return nl ? (size_t)(nl - b->data) + 1 : 0;
}
