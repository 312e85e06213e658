/*
 * msg.c - the IPC frame codec (see msg.h): typed writers, bounds-checked
 * cursor readers and the frame encoder/decoder.
 *
 * Called by util/chan.c (which moves frames and descriptors over sockets)
 * and by the mail tier's request/reply helpers. A message owns its payload
 * buffer and the descriptors put into it or attached to it until a reader
 * takes them. Every reader checks the field's kind and length against what
 * is left of the frame before it touches a byte, and against the caller's
 * buffer before it copies one; an error is sticky, so a handler may read a
 * whole request and check once with mc_msg_end(). Nothing here ever reads
 * past a frame, trusts a length from the wire, or aborts on bad input.
 */
#include "util/msg.h"
#include "util/log.h"

#include <string.h>
#include <unistd.h>

static void
put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint16_t
get_be16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t
get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void
mc_msg_init(struct mc_msg *m, uint16_t type)
{
	m->type = type;
	m->flags = 0;
	m->reqid = 0;
	mc_buf_init(&m->payload, MC_MSG_MAX_PAYLOAD);
	m->rpos = 0;
	for (size_t i = 0; i < MC_MSG_MAX_FDS; i++)
		m->fds[i] = -1;
	m->nfds = 0;
	m->fd_rpos = 0;
	m->err = false;
}

void
mc_msg_free(struct mc_msg *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nfds && i < MC_MSG_MAX_FDS; i++) {
		if (m->fds[i] >= 0)
			close(m->fds[i]);
		m->fds[i] = -1;
	}
	m->nfds = 0;
	m->fd_rpos = 0;
	mc_buf_free(&m->payload);
	m->rpos = 0;
}

/* Append raw bytes to the payload; a frame past its bound marks the message bad. */
static void
put_raw(struct mc_msg *m, const void *p, size_t n)
{
	if (m->err)
		return;
	if (mc_buf_add(&m->payload, p, n) < 0)
		m->err = true;
}

static void
put_kind(struct mc_msg *m, enum mc_field_kind k)
{
	uint8_t b = (uint8_t)k;
	put_raw(m, &b, 1);
}

void
mc_msg_put_u32(struct mc_msg *m, uint32_t v)
{
	uint8_t b[5];
	b[0] = MC_F_U32;
	put_be32(b + 1, v);
	put_raw(m, b, sizeof(b));
}

void
mc_msg_put_u64(struct mc_msg *m, uint64_t v)
{
	uint8_t b[9];
	b[0] = MC_F_U64;
	put_be32(b + 1, (uint32_t)(v >> 32));
	put_be32(b + 5, (uint32_t)v);
	put_raw(m, b, sizeof(b));
}

static void
put_counted(struct mc_msg *m, enum mc_field_kind k, const void *p, size_t n)
{
	uint8_t b[5];
	if (n > UINT32_MAX) {
		m->err = true;
		return;
	}
	b[0] = (uint8_t)k;
	put_be32(b + 1, (uint32_t)n);
	/* All or nothing, so a failed put leaves no half field behind. */
	if (m->err || n + sizeof(b) > m->payload.max - m->payload.len) {
		m->err = true;
		return;
	}
	put_raw(m, b, sizeof(b));
	if (n)
		put_raw(m, p, n);
}

void
mc_msg_put_strn(struct mc_msg *m, const char *s, size_t n)
{
	if (s == NULL)
		n = 0;
	if (n && memchr(s, '\0', n) != NULL) {
		m->err = true;
		return;
	}
	put_counted(m, MC_F_STR, s, n);
}

void
mc_msg_put_str(struct mc_msg *m, const char *s)
{
	mc_msg_put_strn(m, s, s ? strlen(s) : 0);
}

void
mc_msg_put_bytes(struct mc_msg *m, const void *p, size_t n)
{
	if (p == NULL)
		n = 0;
	put_counted(m, MC_F_BYTES, p, n);
}

void
mc_msg_put_fd(struct mc_msg *m, int fd)
{
	if (fd < 0 || m->nfds >= MC_MSG_MAX_FDS) {
		if (fd >= 0)
			close(fd);
		m->err = true;
		return;
	}
	put_kind(m, MC_F_FD);
	if (m->err) {
		close(fd);
		return;
	}
	m->fds[m->nfds++] = fd;
}

/* Check that a field of kind k with at least need bytes after its kind byte is next. */
static const uint8_t *
take(struct mc_msg *m, enum mc_field_kind k, size_t need)
{
	if (m->err)
		return NULL;
	size_t left = m->payload.len - m->rpos;
	if (left < 1 + need || (uint8_t)m->payload.data[m->rpos] != (uint8_t)k) {
		m->err = true;
		return NULL;
	}
	return (const uint8_t *)m->payload.data + m->rpos + 1;
}

int
mc_msg_get_u32(struct mc_msg *m, uint32_t *v)
{
	const uint8_t *p = take(m, MC_F_U32, 4);
	if (p == NULL)
		return -1;
	*v = get_be32(p);
	m->rpos += 5;
	return 0;
}

int
mc_msg_get_u64(struct mc_msg *m, uint64_t *v)
{
	const uint8_t *p = take(m, MC_F_U64, 8);
	if (p == NULL)
		return -1;
	*v = (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
	m->rpos += 9;
	return 0;
}

/* A counted field: point at its bytes without moving the cursor; -1 if it passes the frame. */
static int
peek_counted(struct mc_msg *m, enum mc_field_kind k, const uint8_t **p, size_t *n)
{
	const uint8_t *h = take(m, k, 4);
	if (h == NULL)
		return -1;
	uint32_t len = get_be32(h);
	size_t left = m->payload.len - m->rpos - 5;
	if (len > left) {
		m->err = true;
		return -1;
	}
	*p = h + 4;
	*n = len;
	return 0;
}

int
mc_msg_get_strref(struct mc_msg *m, const char **p, size_t *n)
{
	const uint8_t *s;
	size_t len;
	if (peek_counted(m, MC_F_STR, &s, &len) < 0)
		return -1;
	if (len && memchr(s, '\0', len) != NULL) {
		m->err = true;
		return -1;
	}
	*p = (const char *)s;
	*n = len;
	m->rpos += 5 + len;
	return 0;
}

int
mc_msg_get_str(struct mc_msg *m, char *out, size_t outsz)
{
	const uint8_t *s;
	size_t len;
	if (peek_counted(m, MC_F_STR, &s, &len) < 0)
		return -1;
	if ((len && memchr(s, '\0', len) != NULL) || outsz == 0 || len > outsz - 1) {
		m->err = true;
		return -1;
	}
	if (len)
		memcpy(out, s, len);
	out[len] = '\0';
	m->rpos += 5 + len;
	return 0;
}

int
mc_msg_get_bytes(struct mc_msg *m, const void **p, size_t *n)
{
	const uint8_t *b;
	size_t len;
	if (peek_counted(m, MC_F_BYTES, &b, &len) < 0)
		return -1;
	*p = b;
	*n = len;
	m->rpos += 5 + len;
	return 0;
}

int
mc_msg_get_fd(struct mc_msg *m, int *fd)
{
	if (take(m, MC_F_FD, 0) == NULL)
		return -1;
	if (m->fd_rpos >= m->nfds || m->fds[m->fd_rpos] < 0) {
		m->err = true;
		return -1;
	}
	*fd = m->fds[m->fd_rpos];
	m->fds[m->fd_rpos] = -1;
	m->fd_rpos++;
	m->rpos += 1;
	return 0;
}

int
mc_msg_end(struct mc_msg *m)
{
	if (m->err || m->rpos != m->payload.len) {
		m->err = true;
		return -1;
	}
	return 0;
}

bool
mc_msg_more(const struct mc_msg *m)
{
	return !m->err && m->rpos < m->payload.len;
}

int
mc_msg_encode(const struct mc_msg *m, struct mc_buf *out)
{
	uint8_t h[MC_MSG_HDR_LEN];
	if (m->err || m->payload.len > UINT32_MAX)
		return -1;
	put_be32(h, (uint32_t)m->payload.len);
	put_be16(h + 4, m->type);
	put_be16(h + 6, m->flags);
	put_be32(h + 8, m->reqid);
	if (m->payload.len > out->max - out->len || MC_MSG_HDR_LEN > out->max - out->len - m->payload.len)
		return -1;
	if (mc_buf_add(out, h, sizeof(h)) < 0)
		return -1;
	if (m->payload.len && mc_buf_add(out, m->payload.data, m->payload.len) < 0)
		return -1;
	return 0;
}

int
mc_msg_decode(const uint8_t *in, size_t len, size_t max_payload, struct mc_msg *m, size_t *used)
{
	const uint16_t known_flags = MC_MSG_F_REPLY | MC_MSG_F_ERROR | MC_MSG_F_NOREPLY;

	if (len < MC_MSG_HDR_LEN)
		return 0;
	uint32_t plen = get_be32(in);
	uint16_t type = get_be16(in + 4);
	uint16_t flags = get_be16(in + 6);
	if (plen > max_payload || (flags & ~known_flags) != 0)
		return -1;
	/* An error is a kind of reply; a reply is never also "no reply wanted". */
	if (((flags & MC_MSG_F_ERROR) && !(flags & MC_MSG_F_REPLY)) ||
	    ((flags & MC_MSG_F_REPLY) && (flags & MC_MSG_F_NOREPLY)))
		return -1;
	if (len - MC_MSG_HDR_LEN < plen)
		return 0;
	mc_msg_init(m, type);
	m->flags = flags;
	m->reqid = get_be32(in + 8);
	mc_buf_init(&m->payload, plen ? plen : 1);
	if (plen && mc_buf_add(&m->payload, in + MC_MSG_HDR_LEN, plen) < 0)
		mc_panic("msg: cannot hold a %u-byte payload", plen);
	*used = MC_MSG_HDR_LEN + (size_t)plen;
	return 1;
}

int
mc_msg_count_fds(const struct mc_msg *m)
{
	const uint8_t *p = (const uint8_t *)m->payload.data;
	size_t len = m->payload.len, pos = 0;
	int n = 0;

	while (pos < len) {
		uint8_t k = p[pos++];
		size_t left = len - pos;
		switch (k) {
		case MC_F_U32:
			if (left < 4)
				return -1;
			pos += 4;
			break;
		case MC_F_U64:
			if (left < 8)
				return -1;
			pos += 8;
			break;
		case MC_F_STR:
		case MC_F_BYTES: {
			if (left < 4)
				return -1;
			uint32_t flen = get_be32(p + pos);
			if (flen > left - 4)
				return -1;
			pos += 4 + (size_t)flen;
			break;
		}
		case MC_F_FD:
			n++;
			break;
		default:
			return -1;
		}
	}
	return n;
}

void
mc_msg_attach_fd(struct mc_msg *m, int fd)
{
	if (fd < 0)
		return;
	if (m->nfds >= MC_MSG_MAX_FDS) {
		close(fd);
		m->err = true;
		return;
	}
	m->fds[m->nfds++] = fd;
}
