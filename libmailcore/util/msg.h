/*
 * msg.h - one IPC frame: typed writers and bounds-checked cursor readers.
 *
 * Wire format of a frame (all integers big-endian):
 *
 *   u32 length   payload bytes that follow the 12-byte header
 *   u16 type     message type (the catalogue in mail/proto.h)
 *   u16 flags    MC_MSG_F_*
 *   u32 reqid    request id; a reply carries its request's id
 *   payload      a sequence of fields, each  u8 kind, then:
 *                  MC_F_U32: 4 bytes   MC_F_U64: 8 bytes
 *                  MC_F_STR / MC_F_BYTES: u32 n, n bytes (STR has no NUL inside)
 *                  MC_F_FD: nothing; the descriptor travels as SCM_RIGHTS
 *
 * Readers fail (return -1, and the message's sticky error is set) on a
 * field of another kind, a length past the frame, a string with a NUL, a
 * caller's buffer too small; mc_msg_end() fails unless the whole payload
 * was read. Nothing is ever read past the frame or written past a caller's
 * buffer. No struct is ever copied raw across processes.
 *
 * A message owns the descriptors put into it or received with it until
 * they are taken with mc_msg_get_fd(); mc_msg_free() closes the rest.
 */
#ifndef MC_MSG_H
#define MC_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define MC_MSG_HDR_LEN 12
#define MC_MSG_MAX_FDS 4
/* Default bound on a frame's payload; a channel may set a smaller one. */
#define MC_MSG_MAX_PAYLOAD (1024u * 1024u)

enum {
	MC_MSG_F_REPLY = 1u << 0,   /* answers the request with the same reqid */
	MC_MSG_F_ERROR = 1u << 1,   /* a reply saying the request failed: payload is u32 code, str text */
	MC_MSG_F_NOREPLY = 1u << 2, /* a request that wants no reply */
};

enum mc_field_kind {
	MC_F_U32 = 1,
	MC_F_U64 = 2,
	MC_F_STR = 3,
	MC_F_BYTES = 4,
	MC_F_FD = 5,
};

struct mc_msg {
	uint16_t type;
	uint16_t flags;
	uint32_t reqid;
	struct mc_buf payload;
	size_t rpos;                 /* read cursor into payload */
	int fds[MC_MSG_MAX_FDS];
	size_t nfds;
	size_t fd_rpos;
	bool err;                    /* sticky: a put or get failed */
};

/* Start an empty message of the given type. */
void mc_msg_init(struct mc_msg *m, uint16_t type);
/* Release storage and close descriptors not taken. */
void mc_msg_free(struct mc_msg *m);

void mc_msg_put_u32(struct mc_msg *m, uint32_t v);
void mc_msg_put_u64(struct mc_msg *m, uint64_t v);
/* A string without NUL bytes (NULL is sent as ""). */
void mc_msg_put_str(struct mc_msg *m, const char *s);
void mc_msg_put_strn(struct mc_msg *m, const char *s, size_t n);
void mc_msg_put_bytes(struct mc_msg *m, const void *p, size_t n);
/* Queue a descriptor to pass; the message takes ownership of fd. */
void mc_msg_put_fd(struct mc_msg *m, int fd);

int mc_msg_get_u32(struct mc_msg *m, uint32_t *v);
int mc_msg_get_u64(struct mc_msg *m, uint64_t *v);
/* Copy a string into out (NUL-terminated); -1 if it does not fit in outsz. */
int mc_msg_get_str(struct mc_msg *m, char *out, size_t outsz);
/* Point at a string inside the frame (valid while m lives; NUL-terminated copy not made). */
int mc_msg_get_strref(struct mc_msg *m, const char **p, size_t *n);
int mc_msg_get_bytes(struct mc_msg *m, const void **p, size_t *n);
/* Take a received descriptor; the caller owns it afterwards. */
int mc_msg_get_fd(struct mc_msg *m, int *fd);
/* 0 if every field was read and no error occurred, else -1. */
int mc_msg_end(struct mc_msg *m);
/* Peek: true when unread fields remain (for optional trailing fields). */
bool mc_msg_more(const struct mc_msg *m);

/* Serialise header + payload into out (appends). */
int mc_msg_encode(const struct mc_msg *m, struct mc_buf *out);

/*
 * Decode one frame from the front of in[0..len). Returns 1 and fills m
 * (payload copied, cursor at start) with *used set to the frame length;
 * 0 when more bytes are needed; -1 when the header is malformed or the
 * payload length exceeds max_payload. Descriptors are not attached here:
 * the channel hands them over with mc_msg_attach_fd(). This is the fuzz
 * target's entry point.
 */
int mc_msg_decode(const uint8_t *in, size_t len, size_t max_payload, struct mc_msg *m, size_t *used);
/* Count the MC_F_FD fields in a decoded payload; -1 if the payload is malformed. */
int mc_msg_count_fds(const struct mc_msg *m);
void mc_msg_attach_fd(struct mc_msg *m, int fd);

#endif
