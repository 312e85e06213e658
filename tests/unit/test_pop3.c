/*
 * test_pop3.c - pop3d's command parser and its state machine, the latter
 * replayed as transcripts.
 *
 * The real session code (pop3d/session.c, commands.c, maildrop.c) runs
 * in-process on a libuv loop in a second thread, on a listener bound to
 * 127.0.0.1 port 0; resolverd is a fake mc_chan server that accepts
 * alice/pw (mailbox: a real mail store in a temporary directory, with two
 * messages delivered by mc_store_deliver) and refuses everything else.
 * A transcript is a list of lines: "C: " is sent, "S: " must start the
 * next line the server writes ("S:=" must equal it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "mail/mailstore.h"
#include "mail/proto.h"
#include "mail/resolver_client.h"
#include "pop3d/pop3d.h"
#include "util/chan.h"
#include "util/config.h"
#include "util/listen.h"
#include "util/log.h"
#include "util/tls.h"

#include "fake_res.h"
#include "loop_thread.h"
#include "tcp_client.h"

/* ---- the parser ---- */

static void
test_parse(void **state)
{
	struct pop3_cmd c;
	char l[64];
	uint32_t v;
	(void)state;

	strcpy(l, "retr 12");
	assert_int_equal(pop3_parse(l, strlen(l), &c), POP3_PARSE_OK);
	assert_int_equal(c.verb, POP3_RETR);
	assert_int_equal(c.nargs, 1);
	assert_string_equal(c.args[0], "12");
	strcpy(l, "TOP 1 10");
	assert_int_equal(pop3_parse(l, strlen(l), &c), POP3_PARSE_OK);
	assert_int_equal(c.nargs, 2);
	assert_string_equal(c.args[1], "10");
	strcpy(l, "PASS a b  c");
	assert_int_equal(pop3_parse(l, strlen(l), &c), POP3_PARSE_OK);
	assert_string_equal(c.rest, "a b  c");
	strcpy(l, "");
	assert_int_equal(pop3_parse(l, 0, &c), POP3_PARSE_EMPTY);
	memcpy(l, "US\0R", 5);
	assert_int_equal(pop3_parse(l, 4, &c), POP3_PARSE_NUL);
	strcpy(l, "XTND");
	assert_int_equal(pop3_parse(l, strlen(l), &c), POP3_PARSE_UNKNOWN);
	strcpy(l, "RETRX 1");
	assert_int_equal(pop3_parse(l, strlen(l), &c), POP3_PARSE_UNKNOWN);
	strcpy(l, "LIST  1");
	assert_int_equal(pop3_parse(l, strlen(l), &c), POP3_PARSE_SYNTAX);
	strcpy(l, "LIST 1 ");
	assert_int_equal(pop3_parse(l, strlen(l), &c), POP3_PARSE_SYNTAX);
	strcpy(l, "TOP 1 2 3");
	assert_int_equal(pop3_parse(l, strlen(l), &c), POP3_PARSE_SYNTAX);
	snprintf(l, sizeof(l), "LIST %045d", 1);
	assert_int_equal(pop3_parse(l, strlen(l), &c), POP3_PARSE_SYNTAX);
	snprintf(l, sizeof(l), "USER a-rather-long-name@mail.subdomain.example.test");
	assert_int_equal(pop3_parse(l, strlen(l), &c), POP3_PARSE_OK);

	assert_int_equal(pop3_parse_number("1", 10, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(pop3_parse_number("0", 10, &v), 0);
	assert_int_equal(pop3_parse_number("4294967295", UINT32_MAX, &v), 0);
	assert_int_equal(pop3_parse_number("4294967296", UINT32_MAX, &v), -1);
	assert_int_equal(pop3_parse_number("99999999999", UINT32_MAX, &v), -1);
	assert_int_equal(pop3_parse_number("-1", UINT32_MAX, &v), -1);
	assert_int_equal(pop3_parse_number("+1", UINT32_MAX, &v), -1);
	assert_int_equal(pop3_parse_number("", UINT32_MAX, &v), -1);
	assert_int_equal(pop3_parse_number("1a", UINT32_MAX, &v), -1);
	assert_int_equal(pop3_parse_number("11", 10, &v), -1);
}

/* ---- the world: loop thread, fake resolverd, server, store ---- */

static char tmpdir[256], mbox[400];
static struct mc_config cfg;
static struct pop3_server srv;
static struct mc_tls tls;
static struct mc_chan_server *fake_res;
static struct fake_res_auth res_auth = { .service = "pop3", .mailbox = mbox };
static unsigned port;

static void
stop_loop(void)
{
	mc_listen_close_all();
	for (struct pop3_session *s = srv.sessions; s; s = s->next)
		mc_conn_abort(s->conn);
	mc_resolver_close(srv.res);
	mc_chan_server_close(fake_res);
	uv_close((uv_handle_t *)&async, NULL);
}

static void
deliver(struct mc_store *st, const char *text)
{
	char err[256], path[600];
	snprintf(path, sizeof(path), "%s/src", tmpdir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	uint32_t uid;
	assert_int_equal(mc_store_deliver(st, NULL, "", 0, fd, 0, strlen(text), &uid, err, sizeof(err)), 0);
	close(fd);
}

static int
setup(void **state)
{
	char err[512], path[600];
	(void)state;
	mc_log_init("test_pop3", getenv("TEST_VERBOSE") ? MC_LOG_DEBUG : MC_LOG_ERROR);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-pop3-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	assert_int_equal(mc_config_defaults(&cfg, err, sizeof(err)), 0);
	snprintf(cfg.global.state_dir, sizeof(cfg.global.state_dir), "%s", tmpdir);
	snprintf(cfg.global.run_dir, sizeof(cfg.global.run_dir), "%s/run", tmpdir);
	snprintf(path, sizeof(path), "%s/run", tmpdir);
	assert_int_equal(mkdir(path, 0755), 0);
	cfg.pop3d.max_bad_commands = 6;
	cfg.pop3d.allow_plaintext_auth = MC_PLAIN_LOOPBACK;
	assert_int_equal(mc_parse_listen_list("127.0.0.1:1", &cfg.pop3d.listen), 0);
	((struct sockaddr_in *)&cfg.pop3d.listen.a[0].ss)->sin_port = 0;

	snprintf(mbox, sizeof(mbox), "%s/mail/alice", tmpdir);
	struct mc_store *st = mc_store_open(mbox, MC_STORE_CREATE, err, sizeof(err));
	assert_non_null(st);
	deliver(st, "Subject: one\n\nfirst\n.dot\n");
	deliver(st, "Subject: two\n\nl1\nl2\nl3\n");
	mc_store_close(st);

	fake_tls_selfsigned(tmpdir, &tls);

	loop_thread_init();
	fake_res = fake_res_auth_start(&loop, &cfg, &res_auth);
	pop3_server_init(&srv, &loop, &cfg);
	srv.tls_test = tls.server;
	srv.res = mc_resolver_open(&loop, &cfg, MC_ROLE_POP3D, "pop3d");
	assert_int_equal(mc_listen_open(&loop, &cfg.pop3d.listen, 0, pop3_server_accept, &srv, err, sizeof(err)), 0);
	port = mc_listen_port(0);
	assert_int_equal(loop_thread_start(), 0);
	for (int i = 0; i < 100 && !mc_resolver_is_up(srv.res); i++)
		usleep(20000);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[400];
	(void)state;
	loop_thread_stop(stop_loop);
	uv_loop_close(&loop);
	mc_tls_free(&tls);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- the client: tcp_client.h ---- */

/*
 * Replay a transcript. "C: x" sends x CRLF; "C+ x" sends x CRLF in the
 * same write as the following C lines; "S: p" expects a line starting
 * with p, "S:=x" exactly x; "TLS" starts the client's handshake; "EOF"
 * expects the server to close.
 */
static void
replay(struct client *c, const char *const *t)
{
	char line[4096], batch[8192];
	size_t blen = 0;
	for (size_t i = 0; t[i]; i++) {
		const char *step = t[i];
		if (strncmp(step, "C+ ", 3) == 0 || strncmp(step, "C: ", 3) == 0) {
			size_t n = strlen(step + 3);
			assert_true(blen + n + 2 < sizeof(batch));
			memcpy(batch + blen, step + 3, n);
			blen += n;
			batch[blen++] = '\r';
			batch[blen++] = '\n';
			if (step[1] == ':') {
				cl_send(c, batch, blen);
				blen = 0;
			}
		} else if (strncmp(step, "S: ", 3) == 0 || strncmp(step, "S:=", 3) == 0) {
			if (!cl_line(c, line, sizeof(line)))
				fail_msg("step %zu: closed, expected '%s'", i, step + 3);
			bool ok = step[2] == '=' ? strcmp(line, step + 3) == 0
						 : strncmp(line, step + 3, strlen(step + 3)) == 0;
			if (!ok)
				fail_msg("step %zu: got '%s', expected '%s'", i, line, step + 3);
		} else if (strcmp(step, "TLS") == 0) {
			cl_tls(c);
		} else if (strcmp(step, "EOF") == 0) {
			if (cl_line(c, line, sizeof(line)))
				fail_msg("step %zu: got '%s', expected the close", i, line);
		} else {
			fail_msg("bad step '%s'", step);
		}
	}
}

static void
run(const char *const *t)
{
	struct client c;
	cl_open(&c, port);
	replay(&c, t);
	cl_close(&c);
}

/* ---- transcripts ---- */

static void
test_states(void **state)
{
	(void)state;
	static const char *const t[] = {
		"S: +OK ",
		"C: STAT", "S: -ERR STAT command is not valid before login",
		"C: PASS pw", "S: -ERR USER first",
		"C: USER alice", "S:=+OK",
		"C: PASS wrong", "S: -ERR [AUTH] ",
		"C: USER alice", "S:=+OK",
		"C: PASS pw", "S: +OK Logged in, 2 messages",
		"C: USER alice", "S: -ERR USER command is not valid after login",
		"C: STAT", "S: +OK 2 ",
		"C: LIST", "S: +OK 2 messages", "S: 1 ", "S: 2 ", "S:=.",
		"C: UIDL 2", "S: +OK 2 ",
		"C: RETR 1", "S: +OK ", "S:=Subject: one", "S:=", "S:=first", "S:=..dot", "S:=.",
		"C: TOP 2 1", "S: +OK", "S:=Subject: two", "S:=", "S:=l1", "S:=.",
		"C: DELE 1", "S: +OK",
		"C: RETR 1", "S: -ERR Message 1 is deleted",
		"C: STAT", "S: +OK 1 ",
		"C: RSET", "S: +OK 2 messages",
		"C: NOOP", "S:=+OK",
		"C: QUIT", "S: +OK Bye, 0 messages deleted", "EOF",
		NULL,
	};
	run(t);
}

static void
test_bad_input(void **state)
{
	(void)state;
	static const char *const t[] = {
		"S: +OK ",
		"C: USER alice", "S:=+OK",
		"C: PASS pw", "S: +OK",
		"C: RETR 0", "S: -ERR No such message",
		"C: RETR 3", "S: -ERR No such message",
		"C: RETR 99999999999", "S: -ERR Invalid message number",
		"C: TOP 1 -1", "S: -ERR Invalid number of lines",
		"C: LIST 1 2", "S: -ERR Wrong number of arguments",
		"C: LIST 1 2 3", "S: -ERR Syntax error in arguments",
		"C: FOO", "S: -ERR Unknown command",
		"C: ", "S: -ERR Empty command",
		"S: -ERR Too many bad commands", "EOF",
		NULL,
	};
	run(t);
}

static void
test_sasl(void **state)
{
	(void)state;
	/* "\0alice\0pw" and "alice" / "pw" in base64. */
	static const char *const t[] = {
		"S: +OK ",
		"C: AUTH", "S: +OK", "S:=PLAIN", "S:=LOGIN", "S:=.",
		"C: AUTH PLAIN", "S:=+ ", "C: *", "S: -ERR Authentication aborted",
		"C: AUTH PLAIN", "S:=+ ", "C: %%%%", "S: -ERR Malformed SASL response",
		"C: AUTH LOGIN", "S:=+ VXNlcm5hbWU6", "C: YWxpY2U=", "S:=+ UGFzc3dvcmQ6", "C: cHc=",
		"S: +OK Logged in",
		"C: QUIT", "S: +OK Bye", "EOF",
		NULL,
	};
	run(t);
	static const char *const t2[] = {
		"S: +OK ",
		"C: AUTH PLAIN AGFsaWNlAHB3", "S: +OK Logged in",
		"C: QUIT", "S: +OK", "EOF",
		NULL,
	};
	run(t2);
}

static void
test_in_use(void **state)
{
	(void)state;
	struct client a, b;
	static const char *const login[] = {
		"S: +OK ", "C: USER alice", "S:=+OK", "C: PASS pw", "S: +OK Logged in", NULL,
	};
	static const char *const refused[] = {
		"S: +OK ", "C: USER alice", "S:=+OK", "C: PASS pw", "S: -ERR [IN-USE]", NULL,
	};
	cl_open(&a, port);
	replay(&a, login);
	cl_open(&b, port);
	replay(&b, refused);
	cl_close(&b);
	cl_close(&a);   /* dropped without QUIT: the lock goes with the session */
	for (int i = 0; i < 100; i++) {
		usleep(10000);
		struct client c;
		char line[256];
		cl_open(&c, port);
		cl_line(&c, line, sizeof(line));
		cl_send(&c, "USER alice\r\nPASS pw\r\n", 21);
		cl_line(&c, line, sizeof(line));
		cl_line(&c, line, sizeof(line));
		cl_close(&c);
		if (strncmp(line, "+OK", 3) == 0)
			return;
	}
	fail_msg("the lock was not released");
}

static void
test_pipelining_and_stls(void **state)
{
	(void)state;
	static const char *const t[] = {
		"S: +OK ",
		"C+ CAPA", "C+ NOOP", "C: USER alice",
		"S: +OK Capability", "S:=TOP", "S:=UIDL", "S:=RESP-CODES", "S:=AUTH-RESP-CODE", "S:=PIPELINING",
		"S:=EXPIRE NEVER", "S:=USER", "S:=SASL PLAIN LOGIN", "S:=STLS", "S:=IMPLEMENTATION Postern", "S:=.",
		"S: -ERR NOOP command is not valid before login",
		"S:=+OK",
		/* STLS with a PASS pipelined behind it: discarded, and USER is forgotten too. */
		"C+ STLS", "C: PASS pw", "S: +OK Begin TLS", "TLS",
		"C: PASS pw", "S: -ERR USER first",
		"C: STLS", "S: -ERR Already using TLS",
		"C+ USER alice", "C+ PASS pw", "C+ STAT", "C: QUIT",
		"S:=+OK", "S: +OK Logged in", "S: +OK 2 ", "S: +OK Bye", "EOF",
		NULL,
	};
	run(t);
}

static void
test_long_line_and_nul(void **state)
{
	(void)state;
	struct client c;
	char line[256], big[POP3_LINE_MAX + 100];
	cl_open(&c, port);
	assert_true(cl_line(&c, line, sizeof(line)));
	memset(big, 'A', sizeof(big));
	memcpy(big + sizeof(big) - 2, "\r\n", 2);
	cl_send(&c, big, sizeof(big));
	assert_true(cl_line(&c, line, sizeof(line)));
	assert_string_equal(line, "-ERR Line too long");
	cl_send(&c, "NOOP\0x\r\n", 8);
	assert_true(cl_line(&c, line, sizeof(line)));
	assert_string_equal(line, "-ERR NUL byte in command");
	cl_send(&c, "QUIT\r\n", 6);
	assert_true(cl_line(&c, line, sizeof(line)));
	assert_string_equal(line, "+OK Bye");
	cl_close(&c);
}

static void
test_update_deletes(void **state)
{
	(void)state;
	static const char *const t[] = {
		"S: +OK ", "C: USER alice", "S:=+OK", "C: PASS pw", "S: +OK Logged in, 2 messages",
		"C: UIDL 2", "S: +OK 2 ",
		"C: DELE 1", "S: +OK",
		"C: QUIT", "S: +OK Bye, 1 messages deleted", "EOF",
		NULL,
	};
	run(t);
	static const char *const t2[] = {
		"S: +OK ", "C: USER alice", "S:=+OK", "C: PASS pw", "S: +OK Logged in, 1 messages",
		"C: RETR 1", "S: +OK", "S:=Subject: two", "S:=", "S:=l1", "S:=l2", "S:=l3", "S:=.",
		"C: QUIT", "S: +OK", "EOF",
		NULL,
	};
	run(t2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test_setup_teardown(test_states, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sasl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_in_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelining_and_stls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_line_and_nul, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_deletes, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
