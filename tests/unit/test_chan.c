/*
 * test_chan.c - IPC channels, server and clients in one libuv loop over a
 * socket in a mkdtemp directory: HELLO, calls and replies, error replies,
 * timeouts, a server going away and coming back, forbidden types, other
 * protocol versions, garbage from a plain socket, descriptor passing,
 * cancelled calls, and every handle closed at the end (uv_loop_close).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/chan.h"
#include "util/log.h"

#include "loop_run.h"

/* A tiny catalogue: 1 HELLO, 2 PING (roles 1 and 2), 3 ADMIN (role 2 only). Role 3 is never proved. */
enum { T_HELLO = 1, T_PING = 2, T_ADMIN = 3, T_COUNT = 4 };
enum { ROLE_USER = 1, ROLE_ADMIN = 2, ROLE_NOBODY = 3, ROLE_SERVER = 4 };

static const uint32_t allowed[T_COUNT] = { 0, ~0u, (1u << ROLE_USER) | (1u << ROLE_ADMIN), 1u << ROLE_ADMIN };

static const char *
type_name(uint16_t t)
{
	static const char *const n[] = { "NONE", "HELLO", "PING", "ADMIN" };
	return t < T_COUNT ? n[t] : "?";
}

static const char *
role_name(uint32_t r)
{
	static const char *const n[] = { "none", "user", "admin", "nobody", "server" };
	return r < 5 ? n[r] : "?";
}

static bool
role_ok(uint32_t role, const struct mc_peer_cred *cred)
{
	return role != ROLE_NOBODY && role != 0 && cred->uid == getuid() && cred->pid == getpid();
}

static const struct mc_chan_proto proto = {
	.version = 1,
	.ntypes = T_COUNT,
	.allowed_roles = allowed,
	.type_name = type_name,
	.role_name = role_name,
	.role_ok = role_ok,
};

/* PING arguments the test server treats specially. */
#define PING_ERROR 999
#define PING_SILENT 555
#define PING_FD 777
#define PING_CLOSE_ME 666

struct fx {
	uv_loop_t loop;
	char dir[64];
	char path[128];
	struct mc_chan_server *srv;
	int srv_up, srv_down, srv_msgs;
	struct mc_chan *srv_last;
	int pipe_r;
	bool in_call;
	int nfds_at_start;
};

struct cli {
	struct fx *fx;
	struct mc_chan *ch;
	bool once;
	int up, down, msgs;
};

struct result {
	struct fx *fx;
	int called;
	int err;
	uint32_t v;
	uint32_t code;
	char text[128];
};

/* ---- the test server ---- */

static void
srv_on_up(struct mc_chan *ch, void *arg)
{
	struct fx *fx = arg;
	fx->srv_up++;
	fx->srv_last = ch;
}

static void
srv_on_down(struct mc_chan *ch, void *arg)
{
	struct fx *fx = arg;
	fx->srv_down++;
	if (fx->srv_last == ch)
		fx->srv_last = NULL;
}

static void
srv_on_msg(struct mc_chan *ch, struct mc_msg *m, void *arg)
{
	struct fx *fx = arg;
	uint32_t x = 0;
	fx->srv_msgs++;
	if (m->type != T_PING || mc_msg_get_u32(m, &x) < 0 || mc_msg_end(m) < 0) {
		mc_chan_reply_error(ch, m->reqid, m->type, 500, "bad request");
		return;
	}
	if (x == PING_SILENT)
		return;
	if (x == PING_CLOSE_ME) {
		mc_chan_close(ch);
		return;
	}
	if (x == PING_ERROR) {
		mc_chan_reply_error(ch, m->reqid, T_PING, 451, "4.3.0 try\r\nlater");
		return;
	}
	struct mc_msg r;
	mc_msg_init(&r, T_PING);
	mc_msg_put_u32(&r, x + 1);
	if (x == PING_FD) {
		int p[2];
		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		fx->pipe_r = p[0];
		mc_msg_put_fd(&r, p[1]);
	}
	assert_int_equal(mc_chan_reply(ch, m->reqid, &r), 0);
}

static const struct mc_chan_cbs srv_cbs = { srv_on_msg, srv_on_up, srv_on_down };

static void
server_start(struct fx *fx)
{
	fx->srv = mc_chan_server_start(&fx->loop, fx->path, 0600, &proto, ROLE_SERVER, "testd", &srv_cbs, fx);
	assert_non_null(fx->srv);
}

/* ---- clients ---- */

static void
cli_on_up(struct mc_chan *ch, void *arg)
{
	struct cli *c = arg;
	c->up++;
}

static void
cli_on_down(struct mc_chan *ch, void *arg)
{
	struct cli *c = arg;
	c->down++;
	if (c->once)
		c->ch = NULL;   /* freed after we return */
}

static void
cli_on_msg(struct mc_chan *ch, struct mc_msg *m, void *arg)
{
	struct cli *c = arg;
	c->msgs++;
}

static const struct mc_chan_cbs cli_cbs = { cli_on_msg, cli_on_up, cli_on_down };

static void
client(struct fx *fx, struct cli *c, uint32_t role, const struct mc_chan_proto *p, bool once)
{
	memset(c, 0, sizeof(*c));
	c->fx = fx;
	c->once = once;
	if (once)
		c->ch = mc_chan_connect_once(&fx->loop, fx->path, p, role, "tester", &cli_cbs, c);
	else
		c->ch = mc_chan_connect(&fx->loop, fx->path, p, role, "tester", &cli_cbs, c);
	assert_non_null(c->ch);
}

static void
on_reply(void *arg, struct mc_msg *m, int err)
{
	struct result *r = arg;
	assert_false(r->fx->in_call);
	r->called++;
	r->err = err;
	if (err == MC_CHAN_OK) {
		assert_int_equal(mc_msg_get_u32(m, &r->v), 0);
		if (r->v == PING_FD + 1) {
			int fd = -1;
			assert_int_equal(mc_msg_get_fd(m, &fd), 0);
			assert_int_equal(write(fd, "hi", 2), 2);
			close(fd);
		}
		assert_int_equal(mc_msg_end(m), 0);
	} else if (err == MC_CHAN_EREMOTE) {
		assert_int_equal(mc_chan_error_parse(m, &r->code, r->text, sizeof(r->text)), 0);
	} else {
		assert_null(m);
	}
}

static uint32_t
ping(struct fx *fx, struct mc_chan *ch, uint32_t x, unsigned timeout, struct result *r)
{
	struct mc_msg m;
	memset(r, 0, sizeof(*r));
	r->fx = fx;
	mc_msg_init(&m, T_PING);
	mc_msg_put_u32(&m, x);
	fx->in_call = true;
	uint32_t id = mc_chan_call(ch, &m, timeout, on_reply, r);
	fx->in_call = false;
	assert_int_not_equal(id, 0);
	return id;
}

/* ---- running the loop ---- */

static void
run_for(struct fx *fx, unsigned ms)
{
	int never = 0;
	loop_run_until(&fx->loop, &never, 1, ms);
}

/* Descriptors open in this process: every socket and passed descriptor must be closed again. */
static int
count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	fx->nfds_at_start = count_fds();
	assert_int_equal(uv_loop_init(&fx->loop), 0);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_chan.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/t.sock", fx->dir);
	fx->pipe_r = -1;
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	mc_chan_server_close(fx->srv);
	/* Every handle must close: a leak makes uv_loop_close fail. */
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&fx->loop), 0);
	if (fx->pipe_r >= 0)
		close(fx->pipe_r);
	fx->pipe_r = -1;
	assert_int_equal(count_fds(), fx->nfds_at_start);
	if (fx->pipe_r >= 0)
		close(fx->pipe_r);
	unlink(fx->path);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

static void
close_client(struct cli *c)
{
	mc_chan_close(c->ch);
	c->ch = NULL;
}

/* ---- tests ---- */

static void
test_hello_and_call(void **state)
{
	struct fx *fx = *state;
	struct cli c;
	struct result r;
	struct stat st;
	server_start(fx);
	assert_int_equal(stat(fx->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	client(fx, &c, ROLE_USER, &proto, false);
	assert_false(mc_chan_is_up(c.ch));
	assert_true(loop_run_until(&fx->loop, &c.up, 1, 2000));
	assert_true(loop_run_until(&fx->loop, &fx->srv_up, 1, 2000));
	assert_true(mc_chan_is_up(c.ch));
	assert_int_equal(mc_chan_server_count(fx->srv), 1);
	assert_string_equal(mc_chan_peer_name(c.ch), "testd");
	assert_int_equal(mc_chan_peer_role(c.ch), ROLE_SERVER);
	assert_string_equal(mc_chan_peer_name(fx->srv_last), "tester");
	assert_int_equal(mc_chan_peer_role(fx->srv_last), ROLE_USER);
	assert_int_equal(mc_chan_peer_cred(fx->srv_last)->pid, getpid());
	assert_int_equal(mc_chan_peer_cred(fx->srv_last)->uid, getuid());

	ping(fx, c.ch, 41, 0, &r);
	assert_int_equal(r.called, 0);
	assert_true(loop_run_until(&fx->loop, &r.called, 1, 2000));
	assert_int_equal(r.err, MC_CHAN_OK);
	assert_int_equal(r.v, 42);

	/* many calls in flight at once, answered in order */
	struct result many[50];
	for (int i = 0; i < 50; i++)
		ping(fx, c.ch, (uint32_t)i, 0, &many[i]);
	assert_true(loop_run_until(&fx->loop, &many[49].called, 1, 2000));
	for (int i = 0; i < 50; i++) {
		assert_int_equal(many[i].called, 1);
		assert_int_equal(many[i].v, (uint32_t)i + 1);
	}
	close_client(&c);
	/* the server sees the client go */
	assert_true(loop_run_until(&fx->loop, &fx->srv_down, 1, 2000));
	assert_int_equal(mc_chan_server_count(fx->srv), 0);
	assert_int_equal(c.down, 0);   /* closed by its owner: no on_down */
}

static void
test_error_reply(void **state)
{
	struct fx *fx = *state;
	struct cli c;
	struct result r;
	server_start(fx);
	client(fx, &c, ROLE_USER, &proto, false);
	assert_true(loop_run_until(&fx->loop, &c.up, 1, 2000));
	ping(fx, c.ch, PING_ERROR, 0, &r);
	assert_true(loop_run_until(&fx->loop, &r.called, 1, 2000));
	assert_int_equal(r.err, MC_CHAN_EREMOTE);
	assert_int_equal(r.code, 451);
	/* control characters never reach the caller */
	assert_string_equal(r.text, "4.3.0 try??later");
	close_client(&c);
}

static void
test_timeout_and_cancel(void **state)
{
	struct fx *fx = *state;
	struct cli c;
	struct result r, rc, rc2;
	server_start(fx);
	client(fx, &c, ROLE_USER, &proto, false);
	assert_true(loop_run_until(&fx->loop, &c.up, 1, 2000));
	ping(fx, c.ch, PING_SILENT, 100, &r);
	uint32_t id = ping(fx, c.ch, PING_SILENT, 100, &rc);
	mc_chan_cancel(c.ch, id);
	uint64_t t0 = uv_now(&fx->loop);
	assert_true(loop_run_until(&fx->loop, &r.called, 1, 2000));
	assert_int_equal(r.err, MC_CHAN_ETIMEDOUT);
	assert_true(uv_now(&fx->loop) - t0 >= 90);
	/* a cancelled call never calls back, not on timeout and not when the connection goes */
	uint32_t id2 = ping(fx, c.ch, PING_SILENT, 0, &rc2);
	mc_chan_cancel(c.ch, id2);
	run_for(fx, 200);
	assert_int_equal(rc.called, 0);
	close_client(&c);
	run_for(fx, 50);
	assert_int_equal(rc2.called, 0);
	assert_int_equal(r.called, 1);
	/* the channel still works after a timeout */
}

static void
test_server_restart(void **state)
{
	struct fx *fx = *state;
	struct cli c;
	struct result r, r2, rdown;
	server_start(fx);
	client(fx, &c, ROLE_USER, &proto, false);
	assert_true(loop_run_until(&fx->loop, &c.up, 1, 2000));
	ping(fx, c.ch, PING_SILENT, 10000, &r);
	run_for(fx, 20);
	assert_int_equal(fx->srv_msgs, 1);

	/* the server goes away: the pending call fails with ECLOSED, on_down runs */
	mc_chan_server_close(fx->srv);
	fx->srv = NULL;
	assert_true(loop_run_until(&fx->loop, &r.called, 1, 2000));
	assert_int_equal(r.err, MC_CHAN_ECLOSED);
	assert_true(loop_run_until(&fx->loop, &c.down, 1, 2000));
	assert_true(loop_run_until(&fx->loop, &fx->srv_down, 1, 2000));
	assert_false(mc_chan_is_up(c.ch));

	/* while down, a call fails from the loop, never inside mc_chan_call */
	ping(fx, c.ch, 1, 0, &rdown);
	assert_int_equal(rdown.called, 0);
	assert_true(loop_run_until(&fx->loop, &rdown.called, 1, 1000));
	assert_int_equal(rdown.err, MC_CHAN_ECLOSED);

	/* let a few reconnects fail, then the server comes back and the client with it */
	run_for(fx, 350);
	assert_int_equal(c.up, 1);
	server_start(fx);
	assert_true(loop_run_until(&fx->loop, &c.up, 2, 6000));
	ping(fx, c.ch, 7, 0, &r2);
	assert_true(loop_run_until(&fx->loop, &r2.called, 1, 2000));
	assert_int_equal(r2.v, 8);
	close_client(&c);
}

static void
test_forbidden_type(void **state)
{
	struct fx *fx = *state;
	struct cli bad, good;
	struct result r, rg;
	server_start(fx);
	client(fx, &bad, ROLE_USER, &proto, true);
	client(fx, &good, ROLE_ADMIN, &proto, false);
	assert_true(loop_run_until(&fx->loop, &bad.up, 1, 2000));
	assert_true(loop_run_until(&fx->loop, &good.up, 1, 2000));
	assert_true(loop_run_until(&fx->loop, &fx->srv_up, 2, 2000));

	/* a user may not send ADMIN: the server drops that connection before any handler runs */
	struct mc_msg m;
	mc_msg_init(&m, T_ADMIN);
	mc_msg_put_u32(&m, 1);
	memset(&r, 0, sizeof(r));
	r.fx = fx;
	mc_chan_call(bad.ch, &m, 0, on_reply, &r);
	assert_true(loop_run_until(&fx->loop, &r.called, 1, 2000));
	assert_int_equal(r.err, MC_CHAN_ECLOSED);
	assert_true(loop_run_until(&fx->loop, &bad.down, 1, 2000));
	assert_null(bad.ch);
	assert_int_equal(fx->srv_msgs, 0);
	assert_true(loop_run_until(&fx->loop, &fx->srv_down, 1, 2000));

	/* the other client is served as before; an admin may send ADMIN */
	ping(fx, good.ch, 1, 0, &rg);
	assert_true(loop_run_until(&fx->loop, &rg.called, 1, 2000));
	assert_int_equal(rg.v, 2);
	mc_msg_init(&m, T_ADMIN);
	mc_msg_put_u32(&m, 1);
	memset(&rg, 0, sizeof(rg));
	rg.fx = fx;
	mc_chan_call(good.ch, &m, 0, on_reply, &rg);
	assert_true(loop_run_until(&fx->loop, &rg.called, 1, 2000));
	assert_int_equal(rg.err, MC_CHAN_EREMOTE);
	assert_int_equal(rg.code, 500);
	assert_int_equal(fx->srv_msgs, 2);
	assert_int_equal(mc_chan_server_count(fx->srv), 1);
	close_client(&good);
}

static void
test_refused_peers(void **state)
{
	struct fx *fx = *state;
	struct cli v2, nobody, ok;
	server_start(fx);

	/* another protocol version: refused on both sides, never up */
	struct mc_chan_proto p2 = proto;
	p2.version = 2;
	client(fx, &v2, ROLE_USER, &p2, true);
	assert_true(loop_run_until(&fx->loop, &v2.down, 1, 2000));
	assert_int_equal(v2.up, 0);

	/* a role the credentials do not prove */
	client(fx, &nobody, ROLE_NOBODY, &proto, true);
	assert_true(loop_run_until(&fx->loop, &nobody.down, 1, 2000));
	assert_int_equal(nobody.up, 0);
	assert_int_equal(fx->srv_up, 0);
	assert_int_equal(fx->srv_down, 0);   /* never up, so no on_down on the server */

	client(fx, &ok, ROLE_USER, &proto, false);
	assert_true(loop_run_until(&fx->loop, &ok.up, 1, 2000));
	close_client(&ok);

	/* connect_once fails at once when nobody listens */
	char absent[160];
	snprintf(absent, sizeof(absent), "%s/absent.sock", fx->dir);
	assert_null(mc_chan_connect_once(&fx->loop, absent, &proto, ROLE_USER, "x", &cli_cbs, NULL));
}

/* A plain socket to the server, for sending bytes no channel would. */
static int
raw_connect(struct fx *fx)
{
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	assert_true(strlen(fx->path) < sizeof(sun.sun_path));
	memcpy(sun.sun_path, fx->path, strlen(fx->path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	return fd;
}

/* Run the loop until the server has closed the raw socket (read gives EOF). */
static bool
raw_closed(struct fx *fx, int fd)
{
	for (int i = 0; i < 200; i++) {
		char buf[256];
		ssize_t n;
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			;
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		run_for(fx, 10);
	}
	return false;
}

static void
test_garbage(void **state)
{
	struct fx *fx = *state;
	struct cli c;
	struct result r;
	server_start(fx);
	client(fx, &c, ROLE_USER, &proto, false);
	assert_true(loop_run_until(&fx->loop, &c.up, 1, 2000));

	/* not a frame at all: the length field reads as far past the bound */
	int fd = raw_connect(fx);
	static const char http[] = "GET / HTTP/1.0\r\n\r\n";
	assert_int_equal(write(fd, http, sizeof(http) - 1), (ssize_t)sizeof(http) - 1);
	assert_true(raw_closed(fx, fd));
	close(fd);

	/* a well-formed PING before any HELLO */
	fd = raw_connect(fx);
	static const uint8_t early[] = { 0, 0, 0, 5, 0, T_PING, 0, 0, 0, 0, 0, 1, MC_F_U32, 0, 0, 0, 1 };
	assert_int_equal(write(fd, early, sizeof(early)), (ssize_t)sizeof(early));
	assert_true(raw_closed(fx, fd));
	close(fd);

	/* a valid HELLO, then a frame whose fields are broken */
	fd = raw_connect(fx);
	static const uint8_t hello_then_bad[] = {
		0, 0, 0, 16, 0, T_HELLO, 0, 0, 0, 0, 0, 0,
		MC_F_U32, 0, 0, 0, 1, MC_F_U32, 0, 0, 0, ROLE_USER, MC_F_STR, 0, 0, 0, 1, 'r',
		0, 0, 0, 6, 0, T_PING, 0, 0, 0, 0, 0, 2, MC_F_STR, 0xff, 0xff, 0xff, 0xff, 'x',
	};
	assert_int_equal(write(fd, hello_then_bad, sizeof(hello_then_bad)), (ssize_t)sizeof(hello_then_bad));
	assert_true(raw_closed(fx, fd));
	close(fd);

	/* an unknown type after HELLO */
	fd = raw_connect(fx);
	static const uint8_t hello_then_unknown[] = {
		0, 0, 0, 16, 0, T_HELLO, 0, 0, 0, 0, 0, 0,
		MC_F_U32, 0, 0, 0, 1, MC_F_U32, 0, 0, 0, ROLE_USER, MC_F_STR, 0, 0, 0, 1, 'r',
		0, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 0, 2,
	};
	assert_int_equal(write(fd, hello_then_unknown, sizeof(hello_then_unknown)),
			 (ssize_t)sizeof(hello_then_unknown));
	assert_true(raw_closed(fx, fd));
	close(fd);

	/* none of it touched the real client */
	ping(fx, c.ch, 10, 0, &r);
	assert_true(loop_run_until(&fx->loop, &r.called, 1, 2000));
	assert_int_equal(r.v, 11);
	assert_int_equal(c.down, 0);
	close_client(&c);
}

static void
test_fd_passing(void **state)
{
	struct fx *fx = *state;
	struct cli c;
	struct result r;
	server_start(fx);
	client(fx, &c, ROLE_USER, &proto, false);
	assert_true(loop_run_until(&fx->loop, &c.up, 1, 2000));
	ping(fx, c.ch, PING_FD, 0, &r);
	assert_true(loop_run_until(&fx->loop, &r.called, 1, 2000));
	assert_int_equal(r.err, MC_CHAN_OK);
	assert_true(fx->pipe_r >= 0);
	/* the client wrote into the pipe through the passed descriptor ... */
	char buf[8];
	assert_int_equal(read(fx->pipe_r, buf, sizeof(buf)), 2);
	assert_memory_equal(buf, "hi", 2);
	/* ... and no other copy of the write end is left open: the server's was closed after sending */
	assert_int_equal(read(fx->pipe_r, buf, sizeof(buf)), 0);
	close_client(&c);
}

static void
test_handler_closes_own_channel(void **state)
{
	struct fx *fx = *state;
	struct cli c;
	struct result r, r2;
	server_start(fx);
	client(fx, &c, ROLE_USER, &proto, false);
	assert_true(loop_run_until(&fx->loop, &c.up, 1, 2000));
	/* two requests in one read: the handler closes its channel on the first */
	ping(fx, c.ch, PING_CLOSE_ME, 0, &r);
	ping(fx, c.ch, 1, 0, &r2);
	assert_true(loop_run_until(&fx->loop, &r2.called, 1, 2000));
	assert_int_equal(r.err, MC_CHAN_ECLOSED);
	assert_int_equal(r2.err, MC_CHAN_ECLOSED);
	assert_true(loop_run_until(&fx->loop, &fx->srv_down, 1, 2000));
	assert_int_equal(fx->srv_down, 1);
	/* the client comes back by itself */
	assert_true(loop_run_until(&fx->loop, &c.up, 2, 3000));
	close_client(&c);
}

int
main(void)
{
	mc_log_init("test_chan", MC_LOG_INFO);
	/* libuv opens a few descriptors once per process with its first loop: let that happen before counting. */
	uv_loop_t warm;
	uv_loop_init(&warm);
	uv_loop_close(&warm);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hello_and_call, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_and_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forbidden_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_peers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fd_passing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handler_closes_own_channel, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
