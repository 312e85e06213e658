/*
 * test_msg.c - the IPC frame codec: every field kind survives a round trip,
 * truncated frames ask for more bytes, bad frames and bad reads fail
 * without reading past the frame or writing past the caller's buffer, and
 * descriptors are closed unless taken.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/msg.h"

static bool
fd_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

/* Encode m and decode it again into out. */
static void
roundtrip(const struct mc_msg *m, struct mc_msg *out)
{
	struct mc_buf b;
	size_t used = 0;
	mc_buf_init(&b, 0);
	assert_int_equal(mc_msg_encode(m, &b), 0);
	assert_int_equal(mc_msg_decode((const uint8_t *)b.data, b.len, MC_MSG_MAX_PAYLOAD, out, &used), 1);
	assert_int_equal(used, b.len);
	mc_buf_free(&b);
}

static void
test_roundtrip_all_kinds(void **state)
{
	(void)state;
	struct mc_msg m, r;
	static const uint8_t bin[] = { 0, 1, 2, 0xff, 0 };
	mc_msg_init(&m, 7);
	m.flags = 1;
	m.reqid = 0xdeadbeef;
	mc_msg_put_u32(&m, 0);
	mc_msg_put_u32(&m, 0xffffffffu);
	mc_msg_put_u64(&m, 0x0102030405060708ull);
	mc_msg_put_str(&m, "hello@example.org");
	mc_msg_put_str(&m, NULL);
	mc_msg_put_strn(&m, "abcdef", 3);
	mc_msg_put_bytes(&m, bin, sizeof(bin));
	mc_msg_put_bytes(&m, NULL, 0);
	assert_false(m.err);
	roundtrip(&m, &r);

	assert_int_equal(r.type, 7);
	assert_int_equal(r.flags, 1);
	assert_int_equal(r.reqid, 0xdeadbeef);
	uint32_t u;
	uint64_t q;
	char s[64];
	const char *p;
	const void *bp;
	size_t n;
	assert_true(mc_msg_more(&r));
	assert_int_equal(mc_msg_get_u32(&r, &u), 0);
	assert_int_equal(u, 0);
	assert_int_equal(mc_msg_get_u32(&r, &u), 0);
	assert_int_equal(u, 0xffffffffu);
	assert_int_equal(mc_msg_get_u64(&r, &q), 0);
	assert_true(q == 0x0102030405060708ull);
	assert_int_equal(mc_msg_get_str(&r, s, sizeof(s)), 0);
	assert_string_equal(s, "hello@example.org");
	assert_int_equal(mc_msg_get_str(&r, s, sizeof(s)), 0);
	assert_string_equal(s, "");
	assert_int_equal(mc_msg_get_strref(&r, &p, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(p, "abc", 3);
	assert_int_equal(mc_msg_get_bytes(&r, &bp, &n), 0);
	assert_int_equal(n, sizeof(bin));
	assert_memory_equal(bp, bin, sizeof(bin));
	assert_int_equal(mc_msg_get_bytes(&r, &bp, &n), 0);
	assert_int_equal(n, 0);
	assert_false(mc_msg_more(&r));
	assert_int_equal(mc_msg_end(&r), 0);
	mc_msg_free(&r);
	mc_msg_free(&m);
}

static void
test_empty_and_stream(void **state)
{
	(void)state;
	/* Two frames back to back: the decoder takes exactly one at a time. */
	struct mc_msg a, b, r;
	struct mc_buf buf;
	size_t used;
	mc_buf_init(&buf, 0);
	mc_msg_init(&a, 1);
	mc_msg_init(&b, 2);
	mc_msg_put_str(&b, "x");
	assert_int_equal(mc_msg_encode(&a, &buf), 0);
	assert_int_equal(mc_msg_encode(&b, &buf), 0);
	assert_int_equal(mc_msg_decode((const uint8_t *)buf.data, buf.len, 1024, &r, &used), 1);
	assert_int_equal(used, MC_MSG_HDR_LEN);
	assert_int_equal(r.type, 1);
	assert_int_equal(mc_msg_end(&r), 0);
	mc_msg_free(&r);
	assert_int_equal(mc_msg_decode((const uint8_t *)buf.data + used, buf.len - used, 1024, &r, &used), 1);
	assert_int_equal(r.type, 2);
	mc_msg_free(&r);
	mc_msg_free(&a);
	mc_msg_free(&b);
	mc_buf_free(&buf);
}

static void
test_truncated_needs_more(void **state)
{
	(void)state;
	struct mc_msg m, r;
	struct mc_buf b;
	size_t used = 0;
	mc_msg_init(&m, 3);
	mc_msg_put_str(&m, "some text");
	mc_msg_put_u64(&m, 42);
	mc_buf_init(&b, 0);
	assert_int_equal(mc_msg_encode(&m, &b), 0);
	for (size_t len = 0; len < b.len; len++) {
		/* A copy of exactly len bytes, so a read past it is an ASan error. */
		uint8_t *copy = malloc(len ? len : 1);
		memcpy(copy, b.data, len);
		assert_int_equal(mc_msg_decode(copy, len, MC_MSG_MAX_PAYLOAD, &r, &used), 0);
		free(copy);
	}
	assert_int_equal(mc_msg_decode((const uint8_t *)b.data, b.len, MC_MSG_MAX_PAYLOAD, &r, &used), 1);
	mc_msg_free(&r);
	mc_msg_free(&m);
	mc_buf_free(&b);
}

static void
test_oversized_and_bad_header(void **state)
{
	(void)state;
	struct mc_msg r;
	size_t used;
	/* length 0x00100001 = one byte more than the default bound */
	uint8_t h[MC_MSG_HDR_LEN] = { 0x00, 0x10, 0x00, 0x01, 0, 1, 0, 0, 0, 0, 0, 1 };
	assert_int_equal(mc_msg_decode(h, sizeof(h), MC_MSG_MAX_PAYLOAD, &r, &used), -1);
	/* a smaller bound set by the channel */
	uint8_t h2[MC_MSG_HDR_LEN] = { 0, 0, 0, 100, 0, 1, 0, 0, 0, 0, 0, 1 };
	assert_int_equal(mc_msg_decode(h2, sizeof(h2), 99, &r, &used), -1);
	assert_int_equal(mc_msg_decode(h2, sizeof(h2), 100, &r, &used), 0);
	/* the largest length, refused from the header alone */
	uint8_t h3[MC_MSG_HDR_LEN] = { 0xff, 0xff, 0xff, 0xff, 0, 1, 0, 0, 0, 0, 0, 1 };
	assert_int_equal(mc_msg_decode(h3, sizeof(h3), MC_MSG_MAX_PAYLOAD, &r, &used), -1);
	/* unknown flag bits; an error that is not a reply */
	uint8_t h4[MC_MSG_HDR_LEN] = { 0, 0, 0, 0, 0, 1, 0x80, 0, 0, 0, 0, 1 };
	assert_int_equal(mc_msg_decode(h4, sizeof(h4), MC_MSG_MAX_PAYLOAD, &r, &used), -1);
	uint8_t h5[MC_MSG_HDR_LEN] = { 0, 0, 0, 0, 0, 1, 0, MC_MSG_F_ERROR, 0, 0, 0, 1 };
	assert_int_equal(mc_msg_decode(h5, sizeof(h5), MC_MSG_MAX_PAYLOAD, &r, &used), -1);
}

static void
test_put_bounds(void **state)
{
	(void)state;
	struct mc_msg m;
	mc_msg_init(&m, 1);
	/* a string with a NUL inside cannot be sent */
	mc_msg_put_strn(&m, "a\0b", 3);
	assert_true(m.err);
	mc_msg_free(&m);

	mc_msg_init(&m, 1);
	char *big = malloc(MC_MSG_MAX_PAYLOAD);
	memset(big, 'x', MC_MSG_MAX_PAYLOAD);
	mc_msg_put_bytes(&m, big, MC_MSG_MAX_PAYLOAD);
	assert_true(m.err);
	struct mc_buf b;
	mc_buf_init(&b, 0);
	assert_int_equal(mc_msg_encode(&m, &b), -1);
	mc_buf_free(&b);
	mc_msg_free(&m);
	free(big);
}

static void
test_wrong_kind(void **state)
{
	(void)state;
	struct mc_msg m, r;
	uint32_t u;
	uint64_t q;
	char s[16];
	mc_msg_init(&m, 1);
	mc_msg_put_str(&m, "abc");
	mc_msg_put_u32(&m, 5);
	roundtrip(&m, &r);
	assert_int_equal(mc_msg_get_u32(&r, &u), -1);
	/* sticky: even the right getter fails now */
	assert_int_equal(mc_msg_get_str(&r, s, sizeof(s)), -1);
	assert_int_equal(mc_msg_end(&r), -1);
	mc_msg_free(&r);

	roundtrip(&m, &r);
	assert_int_equal(mc_msg_get_str(&r, s, sizeof(s)), 0);
	assert_int_equal(mc_msg_get_u64(&r, &q), -1);
	mc_msg_free(&r);
	mc_msg_free(&m);
}

/* Build a frame with a raw payload, as a peer could send it. */
static int
decode_raw(const uint8_t *payload, uint32_t n, struct mc_msg *r)
{
	uint8_t *f = malloc(MC_MSG_HDR_LEN + n);
	size_t used;
	memset(f, 0, MC_MSG_HDR_LEN);
	f[0] = (uint8_t)(n >> 24);
	f[1] = (uint8_t)(n >> 16);
	f[2] = (uint8_t)(n >> 8);
	f[3] = (uint8_t)n;
	f[5] = 2;
	if (n)
		memcpy(f + MC_MSG_HDR_LEN, payload, n);
	int rc = mc_msg_decode(f, MC_MSG_HDR_LEN + n, MC_MSG_MAX_PAYLOAD, r, &used);
	free(f);
	return rc;
}

static void
test_string_with_nul_refused(void **state)
{
	(void)state;
	struct mc_msg r;
	char s[16];
	const char *p;
	size_t n;
	static const uint8_t pl[] = { MC_F_STR, 0, 0, 0, 3, 'a', 0, 'b' };
	assert_int_equal(decode_raw(pl, sizeof(pl), &r), 1);
	assert_int_equal(mc_msg_get_str(&r, s, sizeof(s)), -1);
	mc_msg_free(&r);
	assert_int_equal(decode_raw(pl, sizeof(pl), &r), 1);
	assert_int_equal(mc_msg_get_strref(&r, &p, &n), -1);
	mc_msg_free(&r);
	/* the same bytes are fine as BYTES */
	static const uint8_t pb[] = { MC_F_BYTES, 0, 0, 0, 3, 'a', 0, 'b' };
	const void *bp;
	assert_int_equal(decode_raw(pb, sizeof(pb), &r), 1);
	assert_int_equal(mc_msg_get_bytes(&r, &bp, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(mc_msg_end(&r), 0);
	mc_msg_free(&r);
}

static void
test_buffer_too_small(void **state)
{
	(void)state;
	struct mc_msg m, r;
	char s[8];
	mc_msg_init(&m, 1);
	mc_msg_put_str(&m, "12345678");   /* 8 bytes + NUL does not fit in 8 */
	mc_msg_put_str(&m, "1234567");
	roundtrip(&m, &r);
	memset(s, 'Z', sizeof(s));
	assert_int_equal(mc_msg_get_str(&r, s, sizeof(s)), -1);
	/* nothing was written into the caller's buffer */
	for (size_t i = 0; i < sizeof(s); i++)
		assert_int_equal(s[i], 'Z');
	mc_msg_free(&r);

	/* exactly fitting is fine */
	roundtrip(&m, &r);
	char big[9];
	assert_int_equal(mc_msg_get_str(&r, big, sizeof(big)), 0);
	assert_string_equal(big, "12345678");
	assert_int_equal(mc_msg_get_str(&r, s, sizeof(s)), 0);
	assert_string_equal(s, "1234567");
	assert_int_equal(mc_msg_end(&r), 0);
	assert_int_equal(mc_msg_get_str(&r, s, 0), -1);
	mc_msg_free(&r);
	mc_msg_free(&m);
}

static void
test_end_with_unread_fields(void **state)
{
	(void)state;
	struct mc_msg m, r;
	uint32_t u;
	mc_msg_init(&m, 1);
	mc_msg_put_u32(&m, 1);
	mc_msg_put_u32(&m, 2);
	roundtrip(&m, &r);
	assert_int_equal(mc_msg_get_u32(&r, &u), 0);
	assert_true(mc_msg_more(&r));
	assert_int_equal(mc_msg_end(&r), -1);
	mc_msg_free(&r);
	mc_msg_free(&m);
}

static void
test_read_past_end(void **state)
{
	(void)state;
	struct mc_msg r;
	uint32_t u = 7;
	uint64_t q;
	char s[16];
	const char *p;
	size_t n;
	int fd;
	/* a u32 cut short, a string whose length passes the frame, a u64 cut short */
	static const uint8_t cut32[] = { MC_F_U32, 1, 2 };
	static const uint8_t longstr[] = { MC_F_STR, 0, 0, 0, 10, 'a', 'b' };
	static const uint8_t hugestr[] = { MC_F_STR, 0xff, 0xff, 0xff, 0xff, 'a' };
	static const uint8_t cut64[] = { MC_F_U64, 1, 2, 3, 4, 5, 6, 7 };
	static const uint8_t cutlen[] = { MC_F_BYTES, 0, 0 };
	assert_int_equal(decode_raw(cut32, sizeof(cut32), &r), 1);
	assert_int_equal(mc_msg_get_u32(&r, &u), -1);
	assert_int_equal(u, 7);
	mc_msg_free(&r);
	assert_int_equal(decode_raw(longstr, sizeof(longstr), &r), 1);
	assert_int_equal(mc_msg_get_str(&r, s, sizeof(s)), -1);
	mc_msg_free(&r);
	assert_int_equal(decode_raw(hugestr, sizeof(hugestr), &r), 1);
	assert_int_equal(mc_msg_get_strref(&r, &p, &n), -1);
	mc_msg_free(&r);
	assert_int_equal(decode_raw(cut64, sizeof(cut64), &r), 1);
	assert_int_equal(mc_msg_get_u64(&r, &q), -1);
	mc_msg_free(&r);
	assert_int_equal(decode_raw(cutlen, sizeof(cutlen), &r), 1);
	assert_int_equal(mc_msg_count_fds(&r), -1);
	mc_msg_free(&r);

	/* an empty payload: every getter fails, end succeeds only while nothing failed */
	assert_int_equal(decode_raw(NULL, 0, &r), 1);
	assert_int_equal(mc_msg_end(&r), 0);
	assert_false(mc_msg_more(&r));
	assert_int_equal(mc_msg_get_fd(&r, &fd), -1);
	assert_int_equal(mc_msg_end(&r), -1);
	mc_msg_free(&r);

	/* an unknown field kind */
	static const uint8_t unk[] = { 9, 0, 0, 0, 0 };
	assert_int_equal(decode_raw(unk, sizeof(unk), &r), 1);
	assert_int_equal(mc_msg_count_fds(&r), -1);
	mc_msg_free(&r);
}

static void
test_fds_ownership(void **state)
{
	(void)state;
	int p1[2], p2[2];
	assert_int_equal(pipe(p1), 0);
	assert_int_equal(pipe(p2), 0);

	/* A message owns what is put into it: freeing closes both. */
	struct mc_msg m;
	mc_msg_init(&m, 1);
	mc_msg_put_str(&m, "q");
	mc_msg_put_fd(&m, p1[0]);
	mc_msg_put_fd(&m, p1[1]);
	assert_false(m.err);
	assert_int_equal(mc_msg_count_fds(&m), 2);
	mc_msg_free(&m);
	assert_false(fd_open(p1[0]));
	assert_false(fd_open(p1[1]));

	/* Received: the channel attaches descriptors; one taken stays open, the other is closed. */
	struct mc_msg s, r;
	mc_msg_init(&s, 1);
	mc_msg_put_u32(&s, 1);
	mc_msg_put_fd(&s, dup(p2[0]));
	mc_msg_put_fd(&s, dup(p2[1]));
	roundtrip(&s, &r);
	mc_msg_free(&s);
	assert_int_equal(mc_msg_count_fds(&r), 2);
	mc_msg_attach_fd(&r, p2[0]);
	mc_msg_attach_fd(&r, p2[1]);
	uint32_t u;
	int fd = -1;
	assert_int_equal(mc_msg_get_u32(&r, &u), 0);
	assert_int_equal(mc_msg_get_fd(&r, &fd), 0);
	assert_int_equal(fd, p2[0]);
	mc_msg_free(&r);
	assert_true(fd_open(p2[0]));
	assert_false(fd_open(p2[1]));
	close(p2[0]);

	/* A frame naming a descriptor that never came: the read fails. */
	mc_msg_init(&s, 1);
	assert_int_equal(pipe(p1), 0);
	mc_msg_put_fd(&s, p1[0]);
	roundtrip(&s, &r);
	mc_msg_free(&s);
	close(p1[1]);
	assert_int_equal(mc_msg_get_fd(&r, &fd), -1);
	mc_msg_free(&r);

	/* More than MC_MSG_MAX_FDS: the extra one is closed, the message marked bad. */
	mc_msg_init(&m, 1);
	int last = -1;
	for (int i = 0; i <= MC_MSG_MAX_FDS; i++) {
		last = dup(0);
		mc_msg_put_fd(&m, last);
	}
	assert_true(m.err);
	assert_false(fd_open(last));
	mc_msg_free(&m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_all_kinds),
		cmocka_unit_test(test_empty_and_stream),
		cmocka_unit_test(test_truncated_needs_more),
		cmocka_unit_test(test_oversized_and_bad_header),
		cmocka_unit_test(test_put_bounds),
		cmocka_unit_test(test_wrong_kind),
		cmocka_unit_test(test_string_with_nul_refused),
		cmocka_unit_test(test_buffer_too_small),
		cmocka_unit_test(test_end_with_unread_fields),
		cmocka_unit_test(test_read_past_end),
		cmocka_unit_test(test_fds_ownership),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
