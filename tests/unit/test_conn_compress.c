/*
 * test_conn_compress.c - mc_conn with compression (mc_conn_compress), a
 * line-echo server in a libuv loop thread and the blocking client of
 * tcp_client.h compressing with zlib (windowBits -15, as an IMAP client):
 * compressed input pipelined behind the line that turns compression on,
 * compression inside STARTTLS, a bomb held to in_max, corrupt input
 * closing the conn with its reason, and mc_conn_shrink between batches.
 *
 * The server's protocol: "Z" answers "OK" and compresses from there on;
 * "T" answers "GO" and starts TLS; "S" asks for mc_conn_shrink after the
 * batch; any other line is echoed as "ECHO line". Output is flushed once
 * per on_read (a batch). A full buffer without a line end answers
 * "TOOLONG" and closes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "fake_res.h"
#include "loop_thread.h"
#include "tcp_client.h"
#include "util/conn.h"
#include "util/listen.h"
#include "util/tls.h"

#define IN_MAX 4096

static struct mc_tls tls;
static char tmpdir[256];
static unsigned port;

/* What the server saw; written by the loop thread, read by the test after the conn closed. */
static struct {
	struct mc_conn *c;
	size_t max_in;
	size_t max_zmem;
	size_t rest_zmem;
	volatile int closes;
	char why[160];
} S;

/* ---- server ---- */

static void
srv_on_read(struct mc_conn *c, void *arg)
{
	(void)arg;
	struct mc_buf *in = mc_conn_in(c);
	bool shrink = false;
	if (in->len > S.max_in)
		S.max_in = in->len;
	if (mc_conn_compress_mem(c) > S.max_zmem)
		S.max_zmem = mc_conn_compress_mem(c);
	size_t n;
	while ((n = mc_buf_line(in)) > 0) {
		char line[256];
		size_t k = n;
		while (k && (in->data[k - 1] == '\n' || in->data[k - 1] == '\r'))
			k--;
		snprintf(line, sizeof(line), "%.*s", (int)k, in->data);
		mc_buf_consume(in, n);
		if (strcmp(line, "Z") == 0) {
			mc_conn_writes(c, "OK\r\n");
			mc_conn_flush(c);
			assert_int_equal(mc_conn_compress(c), 0);
			assert_int_equal(mc_conn_compress(c), -1);   /* once */
			assert_true(mc_conn_is_compressed(c));
		} else if (strcmp(line, "T") == 0) {
			mc_conn_writes(c, "GO\r\n");
			assert_int_equal(mc_conn_starttls(c, tls.server, true, NULL), 0);
			return;
		} else if (strcmp(line, "S") == 0) {
			mc_conn_writes(c, "RESTING\r\n");
			shrink = true;
		} else {
			mc_conn_printf(c, "ECHO %s\r\n", line);
		}
	}
	if (in->len == in->max) {
		mc_conn_writes(c, "TOOLONG\r\n");
		mc_conn_close(c);
		return;
	}
	mc_conn_flush(c);
	if (shrink) {
		mc_conn_shrink(c);
		S.rest_zmem = mc_conn_compress_mem(c);
	}
}

static void
srv_on_tls(struct mc_conn *c, void *arg, bool ok)
{
	(void)arg;
	assert_true(ok);
	mc_conn_resume(c);
}

static void
srv_on_close(struct mc_conn *c, void *arg, const char *why)
{
	(void)c;
	(void)arg;
	snprintf(S.why, sizeof(S.why), "%s", why);
	S.closes++;
}

static const struct mc_conn_cbs srv_cbs = {
	.on_read = srv_on_read,
	.on_tls = srv_on_tls,
	.on_close = srv_on_close,
};

static void
on_listen(uv_stream_t *server, int tag, void *arg)
{
	(void)tag;
	(void)arg;
	S.c = mc_conn_accept(server, IN_MAX, &srv_cbs, NULL);
	assert_non_null(S.c);
}

/* ---- loop thread ---- */

static void
stop_loop(void)
{
	mc_listen_close_all();
	uv_close((uv_handle_t *)&async, NULL);
}

static int
setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);   /* the bomb's client writes to a server that hung up */
	char err[256];
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_conn_compress.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	fake_tls_selfsigned(tmpdir, &tls);
	loop_thread_init();
	struct mc_listen_list list = { .n = 1 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&list.a[0].ss;
	assert_int_equal(uv_ip4_addr("127.0.0.1", 0, sin), 0);
	list.a[0].sslen = sizeof(*sin);
	snprintf(list.a[0].text, sizeof(list.a[0].text), "127.0.0.1:0");
	assert_int_equal(mc_listen_open(&loop, &list, 0, on_listen, NULL, err, sizeof(err)), 0);
	port = mc_listen_port(0);
	assert_int_equal(loop_thread_start(), 0);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	char cmd[300];
	loop_thread_stop(stop_loop);
	uv_loop_close(&loop);
	mc_tls_free(&tls);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- client ---- */

struct zc {
	struct client cl;
	z_stream def, inf;
	char text[1 << 16];   /* inflated server output not yet taken */
	size_t len;
};

static void
zc_open(struct zc *z)
{
	memset(z, 0, sizeof(*z));
	memset((void *)&S, 0, sizeof(S));
	cl_open(&z->cl, port);
}

static void
zc_start(struct zc *z)
{
	if (z->def.state == NULL)
		assert_int_equal(deflateInit2(&z->def, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
	assert_int_equal(inflateInit2(&z->inf, -15), Z_OK);
	/* Whatever came behind "OK\r\n" in the same read is compressed. */
	assert_true(z->cl.len < sizeof(z->text));
	memcpy(z->text, z->cl.buf, z->cl.len);
	size_t raw = z->cl.len;
	z->cl.len = 0;
	z->len = 0;
	z->inf.next_in = (Bytef *)z->text;
	z->inf.avail_in = (uInt)raw;
	static char out[1 << 16];
	z->inf.next_out = (Bytef *)out;
	z->inf.avail_out = sizeof(out);
	inflate(&z->inf, Z_SYNC_FLUSH);
	z->len = sizeof(out) - z->inf.avail_out;
	memcpy(z->text, out, z->len);
}

static void
zc_end(struct zc *z)
{
	if (z->def.state)
		deflateEnd(&z->def);
	if (z->inf.state)
		inflateEnd(&z->inf);
	cl_close(&z->cl);
}

/* Compress data and send it (flush: zlib's mode), after plain bytes in the same write when given. */
static void
zc_send(struct zc *z, const char *plain, const void *data, size_t n, int flush)
{
	static unsigned char out[1 << 20];
	size_t k = plain ? strlen(plain) : 0;
	if (k)
		memcpy(out, plain, k);
	z->def.next_in = (Bytef *)(uintptr_t)data;
	z->def.avail_in = (uInt)n;
	z->def.next_out = out + k;
	z->def.avail_out = (uInt)(sizeof(out) - k);
	assert_int_equal(deflate(&z->def, flush), Z_OK);
	assert_int_equal(z->def.avail_in, 0);
	cl_send(&z->cl, (char *)out, sizeof(out) - z->def.avail_out);
}

/* One inflated line from the server; false at EOF. */
static bool
zc_line(struct zc *z, char *line, size_t sz)
{
	for (;;) {
		char *nl = memchr(z->text, '\n', z->len);
		if (nl) {
			size_t n = (size_t)(nl - z->text) + 1;
			snprintf(line, sz, "%.*s", (int)(n - 2), z->text);
			memmove(z->text, z->text + n, z->len - n);
			z->len -= n;
			return true;
		}
		z->cl.len = 0;
		if (cl_fill(&z->cl) == 0)
			return false;
		z->inf.next_in = (Bytef *)z->cl.buf;
		z->inf.avail_in = (uInt)z->cl.len;
		z->inf.next_out = (Bytef *)z->text + z->len;
		z->inf.avail_out = (uInt)(sizeof(z->text) - z->len);
		int r = inflate(&z->inf, Z_SYNC_FLUSH);
		assert_true(r == Z_OK || r == Z_BUF_ERROR);
		assert_int_equal(z->inf.avail_in, 0);
		z->len = sizeof(z->text) - z->inf.avail_out;
	}
}

static void
expect(struct zc *z, const char *want)
{
	char line[512];
	assert_true(zc_line(z, line, sizeof(line)));
	assert_string_equal(line, want);
}

static void
wait_closed(void)
{
	for (int i = 0; i < 500 && S.closes == 0; i++)
		usleep(10000);
	assert_int_equal(S.closes, 1);
}

static void
test_pipelined_behind_compress(void **state)
{
	(void)state;
	struct zc z;
	zc_open(&z);
	char line[256];
	/* One write: two plain lines, then compressed ones right behind "Z\r\n". */
	assert_int_equal(deflateInit2(&z.def, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
	zc_send(&z, "HELLO\r\nZ\r\n", "A\r\nB\r\n", 6, Z_SYNC_FLUSH);
	assert_true(cl_line(&z.cl, line, sizeof(line)));
	assert_string_equal(line, "ECHO HELLO");
	assert_true(cl_line(&z.cl, line, sizeof(line)));
	assert_string_equal(line, "OK");
	zc_start(&z);
	expect(&z, "ECHO A");
	expect(&z, "ECHO B");
	for (int i = 0; i < 50; i++) {
		char cmd[64], want[80];
		int k = snprintf(cmd, sizeof(cmd), "line %d of a compressed exchange\r\n", i);
		zc_send(&z, NULL, cmd, (size_t)k, Z_SYNC_FLUSH);
		snprintf(want, sizeof(want), "ECHO line %d of a compressed exchange", i);
		expect(&z, want);
	}
	zc_end(&z);
	wait_closed();
	assert_true(S.max_in <= IN_MAX);
}

static void
test_compress_inside_tls(void **state)
{
	(void)state;
	struct zc z;
	zc_open(&z);
	char line[256];
	cl_sends(&z.cl, "T\r\n");
	assert_true(cl_line(&z.cl, line, sizeof(line)));
	assert_string_equal(line, "GO");
	cl_tls(&z.cl);
	cl_sends(&z.cl, "Z\r\n");
	assert_true(cl_line(&z.cl, line, sizeof(line)));
	assert_string_equal(line, "OK");
	zc_start(&z);
	for (int i = 0; i < 20; i++) {
		zc_send(&z, NULL, "ping\r\n", 6, Z_SYNC_FLUSH);
		expect(&z, "ECHO ping");
	}
	zc_send(&z, NULL, "S\r\n", 3, Z_SYNC_FLUSH);
	expect(&z, "RESTING");
	/* After the rest both sides still share one stream: the peer's back-references still resolve. */
	for (int i = 0; i < 20; i++) {
		zc_send(&z, NULL, "ping\r\n", 6, Z_SYNC_FLUSH);
		expect(&z, "ECHO ping");
	}
	assert_true(S.rest_zmem < 1024);
	zc_end(&z);
	wait_closed();
}

static void
test_bomb_held_to_in_max(void **state)
{
	(void)state;
	struct zc z;
	zc_open(&z);
	char line[256];
	cl_sends(&z.cl, "Z\r\n");
	assert_true(cl_line(&z.cl, line, sizeof(line)));
	assert_string_equal(line, "OK");
	zc_start(&z);
	/* 32 MB of 'a' without a line end, about 32 KB compressed; the server may hang up before it has all. */
	char *a = malloc(1 << 20);
	static unsigned char wire[256 * 1024];
	assert_non_null(a);
	memset(a, 'a', 1 << 20);
	z.def.next_out = wire;
	z.def.avail_out = sizeof(wire);
	for (int i = 0; i < 32; i++) {
		z.def.next_in = (Bytef *)a;
		z.def.avail_in = 1 << 20;
		assert_int_equal(deflate(&z.def, i == 31 ? Z_SYNC_FLUSH : Z_NO_FLUSH), Z_OK);
		assert_int_equal(z.def.avail_in, 0);
	}
	free(a);
	size_t n = sizeof(wire) - z.def.avail_out, off = 0;
	while (off < n) {
		ssize_t w = write(z.cl.fd, wire + off, n - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	expect(&z, "TOOLONG");
	wait_closed();
	assert_int_equal(S.max_in, IN_MAX);
	assert_true(S.max_zmem < 48 * 1024);
	zc_end(&z);
}

static void
test_corrupt_input_closes(void **state)
{
	(void)state;
	struct zc z;
	zc_open(&z);
	char line[256];
	cl_sends(&z.cl, "Z\r\n");
	assert_true(cl_line(&z.cl, line, sizeof(line)));
	zc_start(&z);
	zc_send(&z, NULL, "fine\r\n", 6, Z_SYNC_FLUSH);
	expect(&z, "ECHO fine");
	cl_send(&z.cl, "\x00\x05\x00\x00\x00hello", 10);   /* a stored block with a bad length check */
	wait_closed();
	assert_non_null(strstr(S.why, "corrupt compressed input"));
	zc_end(&z);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipelined_behind_compress),
		cmocka_unit_test(test_compress_inside_tls),
		cmocka_unit_test(test_bomb_held_to_in_max),
		cmocka_unit_test(test_corrupt_input_closes),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
