/*
 * test_conn.c - connections and listeners in one libuv loop over 127.0.0.1:
 * line exchange, the bounded input buffer, pause/resume with pipelined
 * input, STARTTLS on both sides and the RFC 3207 injection case, a failed
 * handshake, implicit TLS, the idle
 * timeout, close flushing a large answer (plain and TLS), streaming with
 * on_drain, abort from inside on_read, refused connects, paused listeners.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>

#include "util/conn.h"
#include "util/fsutil.h"
#include "util/listen.h"
#include "util/log.h"
#include "util/tls.h"

#define BIG_SIZE (1024 * 1024)
#define BIG_COUNT 8  /* the answer to BIG: more than loopback's socket buffers take at once */
#define STREAM_SIZE (4 * 1024 * 1024)
#define STREAM_CHUNK (16 * 1024)

enum mode { M_LINES, M_BOUNDED };

struct side {
	struct mc_conn *c;
	struct mc_buf lines;    /* every line received, CRLF replaced by \n */
	int closes, reads, tls_ok, tls_fail, timeouts, drains, connects;
	int connect_err;
	char why[160];
	char tls_desc[96];
	bool counting;          /* count and check raw bytes instead of lines */
	size_t bytes;
	bool pattern_ok;
	/* server only */
	int accepts;
	size_t max_len, max_cap, max_pending;
	int full_seen, reads_while_full;
	bool waiting;           /* a timer will consume/resume */
	bool injected_buffered;
	size_t stream_left, stream_off;
	char peer_ip[64];
	bool loopback;
	unsigned local_port, peer_port;
};

static struct {
	uv_loop_t loop;
	uv_timer_t watchdog, aux;
	bool timed_out;
	enum mode mode;
	size_t srv_in_max;
	unsigned srv_timeout;
	bool implicit_tls;      /* the server starts TLS right after accept (ports 465, 993, 995) */
	unsigned port;
	uint64_t t_start, t_timeout;
	struct side srv, cli;
	void (*on_connected)(void);
	void (*on_line)(const char *line);
	void (*on_cli_tls)(void);
	void (*aux_fn)(void);
} T;

static struct mc_tls tls;
static char tmpdir[256];
static char pattern[BIG_SIZE];

/* ---- helpers ---- */

static void
both_closed_check(void)
{
	if (T.srv.closes + T.cli.closes >= 2 || (T.cli.closes && T.srv.accepts == 0)) {
		mc_listen_close_all();
		uv_timer_stop(&T.aux);
	}
}

static void
count_bytes(struct side *s, struct mc_buf *in)
{
	for (size_t i = 0; i < in->len; i++)
		if ((unsigned char)in->data[i] != (unsigned char)pattern[(s->bytes + i) % BIG_SIZE])
			s->pattern_ok = false;
	s->bytes += in->len;
	mc_buf_consume(in, in->len);
}

/* Take one line without its CRLF into out; 0 when none is complete. */
static size_t
take_line(struct mc_buf *in, char *out, size_t outsz)
{
	size_t n = mc_buf_line(in);
	if (n == 0)
		return 0;
	size_t l = n;
	while (l && (in->data[l - 1] == '\n' || in->data[l - 1] == '\r'))
		l--;
	if (l >= outsz)
		l = outsz - 1;
	memcpy(out, in->data, l);
	out[l] = '\0';
	mc_buf_consume(in, n);
	return n;
}

/* ---- server ---- */

static void
stream_fill(struct mc_conn *c)
{
	while (T.srv.stream_left > 0 && mc_conn_pending_out(c) < MC_CONN_LOWAT) {
		size_t n = T.srv.stream_left < STREAM_CHUNK ? T.srv.stream_left : STREAM_CHUNK;
		size_t off = T.srv.stream_off % BIG_SIZE;
		if (n > BIG_SIZE - off)
			n = BIG_SIZE - off;
		assert_int_equal(mc_conn_write(c, pattern + off, n), 0);
		T.srv.stream_off += n;
		T.srv.stream_left -= n;
		if (mc_conn_pending_out(c) > T.srv.max_pending)
			T.srv.max_pending = mc_conn_pending_out(c);
	}
	if (T.srv.stream_left == 0)
		mc_conn_close(c);  /* flushes what is still queued */
}

static void
aux_cb(uv_timer_t *t)
{
	if (T.aux_fn)
		T.aux_fn();
}

static void
srv_resume(void)
{
	T.srv.waiting = false;
	mc_conn_resume(T.srv.c);
}

static void
srv_consume_resume(void)
{
	struct mc_buf *in = mc_conn_in(T.srv.c);
	T.srv.bytes += in->len;
	mc_buf_consume(in, in->len);
	T.srv.waiting = false;
	if (T.srv.bytes >= 4096)
		mc_conn_close(T.srv.c);
	else
		mc_conn_resume(T.srv.c);
}

static void
srv_on_read(struct mc_conn *c, void *arg)
{
	struct mc_buf *in = mc_conn_in(c);
	T.srv.reads++;
	if (T.srv.waiting)
		T.srv.reads_while_full++;
	if (in->len > T.srv.max_len)
		T.srv.max_len = in->len;
	if (in->cap > T.srv.max_cap)
		T.srv.max_cap = in->cap;
	if (T.mode == M_BOUNDED) {
		if (in->len == in->max && !T.srv.waiting) {
			/* Full and no line: consume later, from outside on_read. */
			T.srv.full_seen++;
			T.srv.waiting = true;
			T.aux_fn = srv_consume_resume;
			uv_timer_start(&T.aux, aux_cb, 50, 0);
		}
		return;
	}
	char line[1024];
	while (take_line(in, line, sizeof(line))) {
		mc_buf_printf(&T.srv.lines, "%s\n", line);
		if (strcmp(line, "STARTTLS") == 0) {
			T.srv.injected_buffered = in->len > 0;
			mc_conn_writes(c, "220 go\r\n");
			assert_int_equal(mc_conn_starttls(c, tls.server, true, NULL), 0);
			assert_int_equal(in->len, 0);
		} else if (strcmp(line, "QUIT") == 0) {
			mc_conn_writes(c, "221 bye\r\n");
			mc_conn_close(c);
			assert_int_equal(mc_conn_writes(c, "too late\r\n"), -1);
			return;
		} else if (strcmp(line, "BIG") == 0) {
			for (int i = 0; i < BIG_COUNT; i++)
				assert_int_equal(mc_conn_write(c, pattern, BIG_SIZE), 0);
			T.srv.max_pending = mc_conn_pending_out(c);
			mc_conn_close(c);
			return;
		} else if (strcmp(line, "STREAM") == 0) {
			T.srv.stream_left = STREAM_SIZE;
			stream_fill(c);
			return;
		} else if (strcmp(line, "ABORT") == 0) {
			mc_conn_abort(c);
			assert_int_equal(mc_conn_writes(c, "x\r\n"), -1);
			mc_conn_close(c);
			mc_conn_abort(c);
			mc_conn_pause(c);
			mc_conn_resume(c);
			return;
		} else if (strcmp(line, "PAUSE") == 0) {
			mc_conn_writes(c, "250 PAUSE\r\n");
			mc_conn_pause(c);
			T.srv.waiting = true;
			T.aux_fn = srv_resume;
			uv_timer_start(&T.aux, aux_cb, 50, 0);
			return;
		} else {
			mc_conn_printf(c, "250 %s\r\n", line);
		}
	}
}

static void
srv_on_drain(struct mc_conn *c, void *arg)
{
	T.srv.drains++;
	if (T.srv.stream_left)
		stream_fill(c);
}

static void
srv_on_tls(struct mc_conn *c, void *arg, bool ok)
{
	if (ok) {
		T.srv.tls_ok++;
		snprintf(T.srv.tls_desc, sizeof(T.srv.tls_desc), "%s", mc_conn_tls_desc(c));
		assert_true(mc_conn_is_tls(c));
	} else {
		T.srv.tls_fail++;
	}
}

static void
srv_on_timeout(struct mc_conn *c, void *arg)
{
	T.srv.timeouts++;
	T.t_timeout = uv_now(&T.loop);
	mc_conn_writes(c, "421 timeout\r\n");
	mc_conn_close(c);
}

static void
srv_on_close(struct mc_conn *c, void *arg, const char *why)
{
	T.srv.closes++;
	snprintf(T.srv.why, sizeof(T.srv.why), "%s", why);
	/* Calls on a closing conn are refused, never crash. */
	assert_int_equal(mc_conn_writes(c, "x"), -1);
	mc_conn_close(c);
	T.srv.c = NULL;
	both_closed_check();
}

static const struct mc_conn_cbs srv_cbs = {
	.on_read = srv_on_read,
	.on_drain = srv_on_drain,
	.on_tls = srv_on_tls,
	.on_timeout = srv_on_timeout,
	.on_close = srv_on_close,
};

static void
on_listen(uv_stream_t *server, int tag, void *arg)
{
	assert_int_equal(tag, 7);
	T.srv.accepts++;
	T.srv.c = mc_conn_accept(server, T.srv_in_max, &srv_cbs, NULL);
	assert_non_null(T.srv.c);
	snprintf(T.srv.peer_ip, sizeof(T.srv.peer_ip), "%s", mc_conn_peer_ip(T.srv.c));
	T.srv.loopback = mc_conn_peer_is_loopback(T.srv.c);
	T.srv.local_port = mc_conn_local_port(T.srv.c);
	T.srv.peer_port = mc_conn_peer_port(T.srv.c);
	if (T.srv_timeout)
		mc_conn_set_timeout(T.srv.c, T.srv_timeout);
	if (T.implicit_tls)
		assert_int_equal(mc_conn_starttls(T.srv.c, tls.server, true, NULL), 0);
}

/* ---- client ---- */

static void
cli_on_read(struct mc_conn *c, void *arg)
{
	struct mc_buf *in = mc_conn_in(c);
	T.cli.reads++;
	if (T.cli.counting) {
		count_bytes(&T.cli, in);
		return;
	}
	char line[1024];
	while (take_line(in, line, sizeof(line))) {
		mc_buf_printf(&T.cli.lines, "%s\n", line);
		if (T.on_line)
			T.on_line(line);
		if (T.cli.c == NULL || T.cli.counting)
			return;
	}
}

static void
cli_on_connect(struct mc_conn *c, void *arg, int err)
{
	T.cli.connects++;
	T.cli.connect_err = err;
	if (err)
		return;
	T.cli.local_port = mc_conn_local_port(c);
	T.cli.loopback = mc_conn_peer_is_loopback(c);
	T.cli.peer_port = mc_conn_peer_port(c);
	if (T.on_connected)
		T.on_connected();
}

static void
cli_on_tls(struct mc_conn *c, void *arg, bool ok)
{
	if (!ok) {
		T.cli.tls_fail++;
		return;
	}
	T.cli.tls_ok++;
	snprintf(T.cli.tls_desc, sizeof(T.cli.tls_desc), "%s", mc_conn_tls_desc(c));
	if (T.on_cli_tls)
		T.on_cli_tls();
}

static void
cli_on_close(struct mc_conn *c, void *arg, const char *why)
{
	T.cli.closes++;
	snprintf(T.cli.why, sizeof(T.cli.why), "%s", why);
	T.cli.c = NULL;
	both_closed_check();
}

static const struct mc_conn_cbs cli_cbs = {
	.on_read = cli_on_read,
	.on_tls = cli_on_tls,
	.on_connect = cli_on_connect,
	.on_close = cli_on_close,
};

/* ---- harness ---- */

static void
watchdog_cb(uv_timer_t *t)
{
	T.timed_out = true;
	if (T.srv.c)
		mc_conn_abort(T.srv.c);
	if (T.cli.c)
		mc_conn_abort(T.cli.c);
	mc_listen_close_all();
	uv_timer_stop(&T.aux);
}

static int
setup(void **state)
{
	memset(&T, 0, sizeof(T));
	assert_int_equal(uv_loop_init(&T.loop), 0);
	uv_timer_init(&T.loop, &T.watchdog);
	uv_timer_init(&T.loop, &T.aux);
	uv_timer_start(&T.watchdog, watchdog_cb, 10000, 0);
	uv_unref((uv_handle_t *)&T.watchdog);
	mc_buf_init(&T.srv.lines, 0);
	mc_buf_init(&T.cli.lines, 0);
	T.srv.pattern_ok = T.cli.pattern_ok = true;
	T.srv_in_max = 4096;

	struct mc_listen_list list = { .n = 1 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&list.a[0].ss;
	assert_int_equal(uv_ip4_addr("127.0.0.1", 0, sin), 0);
	list.a[0].sslen = sizeof(*sin);
	snprintf(list.a[0].text, sizeof(list.a[0].text), "127.0.0.1:0");
	char err[256];
	assert_int_equal(mc_listen_open(&T.loop, &list, 7, on_listen, NULL, err, sizeof(err)), 0);
	T.port = mc_listen_port(0);
	assert_true(T.port > 0);
	return 0;
}

static int
teardown(void **state)
{
	/* A failed test leaves its conns open: close them so the loop can end. */
	if (T.srv.c)
		mc_conn_abort(T.srv.c);
	if (T.cli.c)
		mc_conn_abort(T.cli.c);
	mc_listen_close_all();
	uv_close((uv_handle_t *)&T.watchdog, NULL);
	uv_close((uv_handle_t *)&T.aux, NULL);
	uv_run(&T.loop, UV_RUN_DEFAULT);
	/* Every handle of every conn was closed: nothing leaked into the loop. */
	assert_int_equal(uv_loop_close(&T.loop), 0);
	mc_buf_free(&T.srv.lines);
	mc_buf_free(&T.cli.lines);
	return 0;
}

static void
connect_client(size_t in_max)
{
	struct sockaddr_in sin;
	uv_ip4_addr("127.0.0.1", (int)T.port, &sin);
	T.t_start = uv_now(&T.loop);
	T.cli.c = mc_conn_connect(&T.loop, (struct sockaddr *)&sin, in_max, 2000, &cli_cbs, NULL);
	assert_non_null(T.cli.c);
}

static void
run(void)
{
	uv_run(&T.loop, UV_RUN_DEFAULT);
	if (getenv("TEST_CONN_DEBUG"))
		fprintf(stderr, "srv why=%s lines=[%s] cli why=%s lines=[%s] bytes=%zu\n", T.srv.why, T.srv.lines.data,
			T.cli.why, T.cli.lines.data, T.cli.bytes);
	assert_false(T.timed_out);
	assert_int_equal(T.cli.closes, 1);
}

/* ---- tests ---- */

static void
say_hello(void)
{
	mc_conn_writes(T.cli.c, "HELLO\r\n");
}

static void
lines_on_line(const char *line)
{
	if (strcmp(line, "250 HELLO") == 0 || strcmp(line, "250 NEXT") == 0)
		mc_conn_writes(T.cli.c, "QUIT\r\n");
}

static void
test_lines(void **state)
{
	T.on_connected = say_hello;
	T.on_line = lines_on_line;
	connect_client(4096);
	run();
	assert_string_equal(T.srv.lines.data, "HELLO\nQUIT\n");
	assert_string_equal(T.cli.lines.data, "250 HELLO\n221 bye\n");
	assert_int_equal(T.srv.closes, 1);
	assert_string_equal(T.srv.why, "closed");
	assert_string_equal(T.cli.why, "peer closed");
	assert_string_equal(T.srv.peer_ip, "127.0.0.1");
	assert_true(T.srv.loopback);
	assert_true(T.cli.loopback);
	assert_int_equal(T.srv.local_port, T.port);
	assert_int_equal(T.cli.peer_port, T.port);
	assert_int_equal(T.srv.peer_port, T.cli.local_port);
	assert_int_equal(T.srv.tls_ok + T.cli.tls_ok, 0);
	assert_string_equal(T.srv.tls_desc, "");
}

static void
send_4k(void)
{
	char junk[4096];
	memset(junk, 'x', sizeof(junk));
	mc_conn_write(T.cli.c, junk, sizeof(junk));
}

static void
test_bounded_input(void **state)
{
	T.mode = M_BOUNDED;
	T.srv_in_max = 1024;
	T.on_connected = send_4k;
	connect_client(4096);
	run();
	/* The buffer never held more than in_max, never grew past it, and filled four times. */
	assert_int_equal(T.srv.max_len, 1024);
	assert_true(T.srv.max_cap <= 1025);
	assert_int_equal(T.srv.full_seen, 4);
	/* While full and unconsumed, reading was stopped: no on_read came. */
	assert_int_equal(T.srv.reads_while_full, 0);
	assert_int_equal(T.srv.bytes, 4096);
}

static void
pipelined_pause(void)
{
	mc_conn_writes(T.cli.c, "PAUSE\r\nNEXT\r\n");
}

static void
test_pause_resume(void **state)
{
	T.on_connected = pipelined_pause;
	T.on_line = lines_on_line;
	connect_client(4096);
	run();
	/* NEXT was already buffered when the server paused; resume delivered it. */
	assert_string_equal(T.srv.lines.data, "PAUSE\nNEXT\nQUIT\n");
	assert_string_equal(T.cli.lines.data, "250 PAUSE\n250 NEXT\n221 bye\n");
	assert_int_equal(T.srv.reads_while_full, 0);
}

static void
tls_on_line(const char *line)
{
	if (strcmp(line, "220 go") == 0) {
		assert_int_equal(mc_conn_starttls(T.cli.c, tls.client, false, "localhost"), 0);
		/* A second STARTTLS is refused. */
		assert_int_equal(mc_conn_starttls(T.cli.c, tls.client, false, "localhost"), -1);
	} else if (strcmp(line, "250 SECRET") == 0) {
		assert_true(mc_conn_is_tls(T.cli.c));
		mc_conn_writes(T.cli.c, "QUIT\r\n");
	}
}

static void
tls_say_secret(void)
{
	mc_conn_writes(T.cli.c, "SECRET\r\n");
}

static void
say_starttls(void)
{
	mc_conn_writes(T.cli.c, "STARTTLS\r\n");
}

static void
test_starttls(void **state)
{
	T.on_connected = say_starttls;
	T.on_line = tls_on_line;
	T.on_cli_tls = tls_say_secret;
	connect_client(4096);
	run();
	assert_string_equal(T.srv.lines.data, "STARTTLS\nSECRET\nQUIT\n");
	assert_string_equal(T.cli.lines.data, "220 go\n250 SECRET\n221 bye\n");
	assert_int_equal(T.srv.tls_ok, 1);
	assert_int_equal(T.cli.tls_ok, 1);
	assert_int_equal(T.srv.tls_fail + T.cli.tls_fail, 0);
	assert_true(strncmp(T.srv.tls_desc, "TLSv1.", 6) == 0);
	assert_non_null(strchr(T.srv.tls_desc, ' '));
	assert_string_equal(T.srv.tls_desc, T.cli.tls_desc);
	assert_string_equal(T.srv.why, "closed");
	assert_string_equal(T.cli.why, "peer closed");
}

static void
say_starttls_injected(void)
{
	mc_conn_writes(T.cli.c, "STARTTLS\r\nINJECTED\r\n");
}

static void
test_starttls_injection(void **state)
{
	T.on_connected = say_starttls_injected;
	T.on_line = tls_on_line;
	T.on_cli_tls = tls_say_secret;
	connect_client(4096);
	run();
	/* The injected line was in the same read as STARTTLS, and was never acted on. */
	assert_true(T.srv.injected_buffered);
	assert_null(strstr(T.srv.lines.data, "INJECTED"));
	assert_string_equal(T.srv.lines.data, "STARTTLS\nSECRET\nQUIT\n");
	assert_string_equal(T.cli.lines.data, "220 go\n250 SECRET\n221 bye\n");
	assert_int_equal(T.srv.tls_ok, 1);
}

static void
plain_after_starttls(const char *line)
{
	if (strcmp(line, "220 go") == 0)
		mc_conn_writes(T.cli.c, "HELLO IN PLAINTEXT\r\n");
}

static void
test_handshake_fails(void **state)
{
	T.on_connected = say_starttls;
	T.on_line = plain_after_starttls;
	connect_client(4096);
	run();
	/* Plaintext where a ClientHello belongs: the handshake fails, nothing is executed, the conn closes. */
	assert_int_equal(T.srv.tls_fail, 1);
	assert_int_equal(T.srv.tls_ok, 0);
	assert_string_equal(T.srv.lines.data, "STARTTLS\n");
	assert_int_equal(strncmp(T.srv.why, "TLS handshake failed: ", 22), 0);
	assert_int_equal(T.srv.closes, 1);
}

static void
cli_starttls_now(void)
{
	assert_int_equal(mc_conn_starttls(T.cli.c, tls.client, false, "localhost"), 0);
}

static void
test_implicit_tls(void **state)
{
	T.implicit_tls = true;
	T.on_connected = cli_starttls_now;
	T.on_line = tls_on_line;
	T.on_cli_tls = tls_say_secret;
	connect_client(4096);
	run();
	assert_int_equal(T.srv.tls_ok, 1);
	assert_int_equal(T.cli.tls_ok, 1);
	assert_string_equal(T.srv.lines.data, "SECRET\nQUIT\n");
	assert_string_equal(T.cli.lines.data, "250 SECRET\n221 bye\n");
}

static void
test_idle_timeout(void **state)
{
	T.srv_timeout = 100;
	connect_client(4096);
	run();
	assert_int_equal(T.srv.timeouts, 1);
	assert_true(T.t_timeout - T.t_start >= 90);
	assert_string_equal(T.cli.lines.data, "421 timeout\n");
	assert_int_equal(T.srv.closes, 1);
}

static void
cli_resume(void)
{
	mc_conn_resume(T.cli.c);
}

static void
say_big(void)
{
	T.cli.counting = true;
	mc_conn_writes(T.cli.c, "BIG\r\n");
	/* Read nothing for a while: the server closes with its answer still queued. */
	mc_conn_pause(T.cli.c);
	T.aux_fn = cli_resume;
	uv_timer_start(&T.aux, aux_cb, 100, 0);
}

static void
test_close_flushes(void **state)
{
	T.on_connected = say_big;
	connect_client(64 * 1024);
	run();
	/* Much of the answer was still queued in user space when the server closed; all of it arrived. */
	assert_true(T.srv.max_pending > 0);
	assert_int_equal(T.cli.bytes, BIG_COUNT * BIG_SIZE);
	assert_true(T.cli.pattern_ok);
	assert_string_equal(T.srv.why, "closed");
	assert_string_equal(T.cli.why, "peer closed");
}

static void
test_close_flushes_tls(void **state)
{
	T.on_connected = say_starttls;
	T.on_line = tls_on_line;
	T.on_cli_tls = say_big;
	connect_client(64 * 1024);
	run();
	assert_int_equal(T.cli.tls_ok, 1);
	assert_true(T.srv.max_pending > 0);
	assert_int_equal(T.cli.bytes, BIG_COUNT * BIG_SIZE);
	assert_true(T.cli.pattern_ok);
	assert_string_equal(T.srv.why, "closed");
	/* The server's close_notify came after all the data. */
	assert_string_equal(T.cli.why, "peer closed");
}

static void
say_stream(void)
{
	T.cli.counting = true;
	mc_conn_writes(T.cli.c, "STREAM\r\n");
}

static void
test_drain_stream(void **state)
{
	T.on_connected = say_stream;
	connect_client(64 * 1024);
	run();
	assert_int_equal(T.cli.bytes, STREAM_SIZE);
	assert_true(T.cli.pattern_ok);
	assert_true(T.srv.drains > 0);
	/* Streaming kept the output queue bounded. */
	assert_true(T.srv.max_pending < MC_CONN_LOWAT + STREAM_CHUNK);
}

static void
test_drain_stream_tls(void **state)
{
	T.on_connected = say_starttls;
	T.on_line = tls_on_line;
	T.on_cli_tls = say_stream;
	connect_client(64 * 1024);
	run();
	assert_int_equal(T.cli.bytes, STREAM_SIZE);
	assert_true(T.cli.pattern_ok);
	assert_true(T.srv.drains > 0);
	assert_true(T.srv.max_pending < MC_CONN_LOWAT + 2 * STREAM_CHUNK);
}

static void
say_abort(void)
{
	mc_conn_writes(T.cli.c, "ABORT\r\n");
}

static void
test_abort_in_read(void **state)
{
	T.on_connected = say_abort;
	connect_client(4096);
	run();
	assert_int_equal(T.srv.closes, 1);
	assert_string_equal(T.srv.why, "aborted");
	assert_string_equal(T.srv.lines.data, "ABORT\n");
}

static void
test_connect_refused(void **state)
{
	/* Close the listener: its port now refuses connections. */
	mc_listen_close_all();
	uv_run(&T.loop, UV_RUN_NOWAIT);
	connect_client(4096);
	run();
	assert_int_equal(T.cli.connects, 1);
	assert_int_equal(T.cli.connect_err, UV_ECONNREFUSED);
	assert_non_null(strstr(T.cli.why, "connect failed"));
}

static void
check_not_accepted_then_resume(void)
{
	/* The client is connected (in the kernel's backlog) but nothing was accepted. */
	assert_int_equal(T.cli.connects, 1);
	assert_int_equal(T.srv.accepts, 0);
	mc_listen_pause_all(false);
}

static void
paused_connected(void)
{
	T.aux_fn = check_not_accepted_then_resume;
	uv_timer_start(&T.aux, aux_cb, 100, 0);
	mc_conn_writes(T.cli.c, "HELLO\r\n");
}

static void
test_listen_pause(void **state)
{
	mc_listen_pause_all(true);
	T.on_connected = paused_connected;
	T.on_line = lines_on_line;
	connect_client(4096);
	run();
	assert_int_equal(T.srv.accepts, 1);
	assert_string_equal(T.srv.lines.data, "HELLO\nQUIT\n");
	assert_string_equal(T.cli.lines.data, "250 HELLO\n221 bye\n");
}

static void
test_listen_in_use(void **state)
{
	struct mc_listen_list list = { .n = 2 };
	struct sockaddr_in *a = (struct sockaddr_in *)&list.a[0].ss;
	struct sockaddr_in *b = (struct sockaddr_in *)&list.a[1].ss;
	uv_ip4_addr("127.0.0.1", 0, a);
	uv_ip4_addr("127.0.0.1", (int)T.port, b);
	snprintf(list.a[0].text, sizeof(list.a[0].text), "127.0.0.1:0");
	snprintf(list.a[1].text, sizeof(list.a[1].text), "127.0.0.1:%u", T.port);
	char err[256], want[256];
	assert_int_equal(mc_listen_open(&T.loop, &list, 1, on_listen, NULL, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "cannot listen on 127.0.0.1:%u: address already in use", T.port);
	assert_string_equal(err, want);
	/* The first address of the failed call was closed again: only the original listener is open. */
	assert_int_equal(mc_listen_port(0), T.port);
	assert_int_equal(mc_listen_port(1), 0);
	mc_listen_close_all();
}

static void
test_ipv6(void **state)
{
	struct mc_listen_list list = { .n = 1 };
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&list.a[0].ss;
	assert_int_equal(uv_ip6_addr("::1", 0, sin6), 0);
	list.a[0].sslen = sizeof(*sin6);
	snprintf(list.a[0].text, sizeof(list.a[0].text), "[::1]:0");
	char err[256];
	if (mc_listen_open(&T.loop, &list, 7, on_listen, NULL, err, sizeof(err)) < 0) {
		assert_non_null(strstr(err, "cannot listen on [::1]:0: "));
		skip();  /* no IPv6 loopback on this machine */
	}
	unsigned port6 = mc_listen_port(1);
	assert_true(port6 > 0);
	T.on_connected = say_hello;
	T.on_line = lines_on_line;
	struct sockaddr_in6 to;
	uv_ip6_addr("::1", (int)port6, &to);
	T.cli.c = mc_conn_connect(&T.loop, (struct sockaddr *)&to, 4096, 2000, &cli_cbs, NULL);
	assert_non_null(T.cli.c);
	run();
	assert_string_equal(T.srv.peer_ip, "::1");
	assert_true(T.srv.loopback);
	assert_int_equal(T.srv.local_port, port6);
	assert_string_equal(T.cli.lines.data, "250 HELLO\n221 bye\n");
}

static int
group_setup(void **state)
{
	for (size_t i = 0; i < BIG_SIZE; i++)
		pattern[i] = (char)(i % 251);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_conn.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	char cert[512], key[512], err[512];
	snprintf(cert, sizeof(cert), "%s/tls/cert.pem", tmpdir);
	snprintf(key, sizeof(key), "%s/tls/key.pem", tmpdir);
	assert_int_equal(mc_tls_selfsigned(cert, key, "localhost", err, sizeof(err)), 0);
	if (mc_tls_load(&tls, cert, key, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	unlink(cert);
	unlink(key);
	snprintf(cert, sizeof(cert), "%s/tls", tmpdir);
	rmdir(cert);
	rmdir(tmpdir);
	return 0;
}

static int
group_teardown(void **state)
{
	mc_tls_free(&tls);
	return 0;
}

int
main(void)
{
	mc_log_init("test_conn", MC_LOG_WARNING);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounded_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pause_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_starttls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_starttls_injection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handshake_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_implicit_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_flushes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_flushes_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain_stream_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_in_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listen_pause, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listen_in_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv6, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
