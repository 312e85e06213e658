/*
 * test_smtp_session.c - smtpd's session code replayed as transcripts.
 *
 * The real session code (smtpd/session.c, commands.c, tx.c, auth.c) runs
 * in-process on a libuv loop in a second thread, on listeners bound to
 * 127.0.0.1 port 0. resolverd and queued are fakes: mc_chan servers on
 * sockets in a temporary run_dir that answer RES_RCPT, RES_AUTH and
 * Q_SUBMIT_* with the IPC layer's reply writers; the fake queued keeps
 * each committed body and envelope so the tests assert what was stored.
 * The client is a plain blocking socket (and OpenSSL for STARTTLS and
 * implicit TLS) in the test thread.
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
#include <openssl/err.h>
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

#include "mail/envelope.h"
#include "mail/proto.h"
#include "mail/queue_client.h"
#include "mail/resolver_client.h"
#include "smtpd/smtpd.h"
#include "util/chan.h"
#include "util/config.h"
#include "util/listen.h"
#include "util/log.h"
#include "util/msg.h"
#include "util/tls.h"

#include "fake_res.h"
#include "loop_thread.h"
#include "tcp_client.h"

/* ---- the world: loop thread, fake peers, server ---- */

static char tmpdir[256];
static struct mc_config cfg;
static struct smtpd_server srv;
static struct mc_tls tls;
static struct mc_chan_server *fake_res, *fake_queue;
static unsigned port_mx, port_sub, port_subs;

/* What the fake queued saw; guarded by mu. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char last_body[128 * 1024];
static size_t last_body_len;
static struct mc_envelope last_env;
static unsigned commits, aborts, qcounter;
static bool begin_fails;

static void
fake_res_msg(struct mc_chan *ch, struct mc_msg *m, void *arg)
{
	if (m->type == MC_MSG_RES_RCPT) {
		char addr[512];
		bool authd;
		if (mc_resolver_req_rcpt(m, addr, sizeof(addr), &authd) < 0)
			return;
		const char *at = strrchr(addr, '@');
		enum mc_rcpt_result r = MC_RCPT_REMOTE;
		if (at && strcmp(at, "@example.test") == 0) {
			if (strncmp(addr, "unknown", 7) == 0)
				r = MC_RCPT_UNKNOWN;
			else if (strncmp(addr, "tempfail", 8) == 0)
				r = MC_RCPT_TEMPFAIL;
			else
				r = MC_RCPT_LOCAL;
		} else if (at && strcmp(at, "@mx.test") == 0) {
			r = MC_RCPT_LOCAL;
		}
		mc_resolver_reply_rcpt(ch, m->reqid, r, addr);
	} else if (m->type == MC_MSG_RES_AUTH) {
		struct mc_resolver_auth_req req;
		if (mc_resolver_req_auth(m, &req) < 0)
			return;
		enum mc_auth_result r = MC_AUTH_FAIL;
		if (strcmp(req.user, "alice@example.test") == 0 && strcmp(req.password, "secret") == 0)
			r = MC_AUTH_OK;
		else if (strcmp(req.user, "blocked@example.test") == 0)
			r = MC_AUTH_BLOCKED;
		mc_resolver_reply_auth(ch, m->reqid, r, r == MC_AUTH_OK ? req.user : "", "");
	}
}

static void
fake_queue_msg(struct mc_chan *ch, struct mc_msg *m, void *arg)
{
	char path[512], qid[64];

	if (m->type == MC_MSG_Q_SUBMIT_BEGIN) {
		uint64_t hint;
		char client[256];
		if (mc_queue_req_begin(m, &hint, client, sizeof(client)) < 0)
			return;
		pthread_mutex_lock(&mu);
		bool fail = begin_fails;
		unsigned n = ++qcounter;
		pthread_mutex_unlock(&mu);
		if (fail) {
			mc_chan_reply_error(ch, m->reqid, m->type, 452, "4.3.1 Insufficient system storage");
			return;
		}
		snprintf(qid, sizeof(qid), "00000000000000%02X", n & 0xff);
		snprintf(path, sizeof(path), "%s/q/%s", tmpdir, qid);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		assert_true(fd >= 0);
		mc_queue_reply_begin(ch, m->reqid, qid, fd);
	} else if (m->type == MC_MSG_Q_SUBMIT_COMMIT) {
		struct mc_envelope e;
		mc_envelope_init(&e);
		if (mc_envelope_get(m, &e, 1000) < 0) {
			mc_chan_reply_error(ch, m->reqid, m->type, 451, "4.3.0 bad envelope");
			return;
		}
		snprintf(path, sizeof(path), "%s/q/%s", tmpdir, e.qid);
		FILE *f = fopen(path, "rb");
		pthread_mutex_lock(&mu);
		last_body_len = f ? fread(last_body, 1, sizeof(last_body) - 1, f) : 0;
		last_body[last_body_len] = '\0';
		mc_envelope_free(&last_env);
		last_env = e;
		commits++;
		pthread_mutex_unlock(&mu);
		if (f)
			fclose(f);
		mc_queue_reply_commit(ch, m->reqid);
	} else if (m->type == MC_MSG_Q_SUBMIT_ABORT) {
		if (mc_queue_req_abort(m, qid, sizeof(qid)) < 0)
			return;
		snprintf(path, sizeof(path), "%s/q/%s", tmpdir, qid);
		unlink(path);
		pthread_mutex_lock(&mu);
		aborts++;
		pthread_mutex_unlock(&mu);
	}
}

static const struct mc_chan_cbs res_cbs = { .on_msg = fake_res_msg };
static const struct mc_chan_cbs queue_cbs = { .on_msg = fake_queue_msg };

static void
start_fake_queue(void)
{
	char path[512];
	mc_config_sock(&cfg, path, sizeof(path), MC_SOCK_QUEUED);
	fake_queue = mc_chan_server_start(&loop, path, 0660, &mc_proto, MC_ROLE_QUEUED, "queued", &queue_cbs, NULL);
	assert_non_null(fake_queue);
}

static void
stop_fake_queue(void)
{
	mc_chan_server_close(fake_queue);
	fake_queue = NULL;
}

static void
stop_loop(void)
{
	mc_listen_close_all();
	mc_resolver_close(srv.res);
	mc_queue_client_close(srv.queue);
	mc_chan_server_close(fake_res);
	if (fake_queue)
		mc_chan_server_close(fake_queue);
	uv_close((uv_handle_t *)&async, NULL);
}

static int
setup(void **state)
{
	char err[512], path[600];

	mc_log_init("test_smtp_session", getenv("TEST_VERBOSE") ? MC_LOG_DEBUG : MC_LOG_ERROR);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-smtp-session-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	assert_int_equal(mc_config_defaults(&cfg, err, sizeof(err)), 0);
	snprintf(cfg.global.hostname, sizeof(cfg.global.hostname), "mx.test");
	snprintf(cfg.global.state_dir, sizeof(cfg.global.state_dir), "%s", tmpdir);
	snprintf(cfg.global.run_dir, sizeof(cfg.global.run_dir), "%s/run", tmpdir);
	snprintf(path, sizeof(path), "%s/run", tmpdir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/q", tmpdir);
	assert_int_equal(mkdir(path, 0700), 0);
	cfg.smtpd.max_message_size = 20000;
	cfg.smtpd.max_recipients = 3;
	cfg.smtpd.max_errors = 8;
	cfg.queued.min_free_space = 0;
	/* Port 0 (the kernel picks one): the config refuses it, so it is set in the parsed address. */
	struct mc_listen_list *lists[] = { &cfg.smtpd.listen, &cfg.smtpd.submission, &cfg.smtpd.submissions };
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(mc_parse_listen_list("127.0.0.1:1", lists[i]), 0);
		((struct sockaddr_in *)&lists[i]->a[0].ss)->sin_port = 0;
	}

	fake_tls_selfsigned(tmpdir, &tls);

	loop_thread_init();
	mc_envelope_init(&last_env);
	mc_proto_set_identities(&cfg);

	mc_config_sock(&cfg, path, sizeof(path), MC_SOCK_RESOLVERD);
	fake_res = mc_chan_server_start(&loop, path, 0660, &mc_proto, MC_ROLE_RESOLVERD, "resolverd", &res_cbs, NULL);
	assert_non_null(fake_res);
	start_fake_queue();

	smtpd_server_init(&srv, &loop, &cfg);
	srv.tls = &tls;
	srv.res = mc_resolver_open(&loop, &cfg, MC_ROLE_SMTPD, "smtpd");
	srv.queue = mc_queue_client_open(&loop, &cfg, MC_ROLE_SMTPD, "smtpd");
	assert_int_equal(mc_listen_open(&loop, &cfg.smtpd.listen, SMTPD_MX, smtpd_server_accept, &srv, err, sizeof(err)),
			 0);
	assert_int_equal(mc_listen_open(&loop, &cfg.smtpd.submission, SMTPD_SUBMISSION, smtpd_server_accept, &srv, err,
					sizeof(err)), 0);
	assert_int_equal(mc_listen_open(&loop, &cfg.smtpd.submissions, SMTPD_SUBMISSIONS, smtpd_server_accept, &srv,
					err, sizeof(err)), 0);
	port_mx = mc_listen_port(0);
	port_sub = mc_listen_port(1);
	port_subs = mc_listen_port(2);
	assert_true(port_mx && port_sub && port_subs);
	assert_int_equal(loop_thread_start(), 0);
	/* Let the clients connect to the fake peers. */
	for (int i = 0; i < 100 && !(mc_queue_client_is_up(srv.queue) && mc_resolver_is_up(srv.res)); i++)
		usleep(20000);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[400];
	loop_thread_stop(stop_loop);
	uv_loop_close(&loop);
	mc_tls_free(&tls);
	mc_envelope_free(&last_env);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		return -1;
	return 0;
}

/* ---- the client: tcp_client.h ---- */

/* One whole reply (all its lines) into out; the code of its last line is returned. */
static int
cl_reply(struct client *c, char *out, size_t outsz)
{
	size_t pos = 0;
	for (;;) {
		char *nl = memchr(c->buf + pos, '\n', c->len - pos);
		if (nl == NULL) {
			if (cl_fill(c) == 0)
				fail_msg("connection closed while waiting for a reply; have: '%s'", c->buf);
			continue;
		}
		size_t linelen = (size_t)(nl - (c->buf + pos)) + 1;
		bool last = linelen >= 4 && c->buf[pos + 3] == ' ';
		pos += linelen;
		if (last)
			break;
	}
	assert_true(pos < outsz);
	memcpy(out, c->buf, pos);
	out[pos] = '\0';
	memmove(c->buf, c->buf + pos, c->len - pos);
	c->len -= pos;
	return atoi(out);
}

/* Read one reply and check that it starts with want. */
#define expect(c, want)                                                                                             \
	do {                                                                                                        \
		char r_[8192];                                                                                      \
		cl_reply((c), r_, sizeof(r_));                                                                      \
		if (strncmp(r_, (want), strlen(want)) != 0)                                                         \
			fail_msg("line %d: want '%s', got '%s'", __LINE__, (want), r_);                             \
	} while (0)

static void
connect_ehlo(struct client *c, unsigned port)
{
	cl_open(c, port);
	expect(c, "220 mx.test ESMTP Postern\r\n");
	cl_sends(c, "EHLO client.test\r\n");
	expect(c, "250-mx.test\r\n");
}

static unsigned
ncommits(void)
{
	pthread_mutex_lock(&mu);
	unsigned n = commits;
	pthread_mutex_unlock(&mu);
	return n;
}

/* The stored body without the Received: header (which ends at the first line not starting with a tab). */
static const char *
body_after_received(char *copy, size_t copysz)
{
	pthread_mutex_lock(&mu);
	assert_true(last_body_len < copysz);
	memcpy(copy, last_body, last_body_len + 1);
	pthread_mutex_unlock(&mu);
	assert_true(strncmp(copy, "Received: from ", 15) == 0);
	char *p = copy;
	do {
		p = strstr(p, "\r\n");
		assert_non_null(p);
		p += 2;
	} while (*p == '\t');
	return p;
}

/* ---- transcripts ---- */

static void
test_greeting_and_ehlo(void **state)
{
	struct client c;
	char r[4096];

	cl_open(&c, port_mx);
	expect(&c, "220 mx.test ESMTP Postern\r\n");
	cl_sends(&c, "ehlo client.test\r\n");
	assert_int_equal(cl_reply(&c, r, sizeof(r)), 250);
	const char *want[] = { "250-mx.test\r\n", "250-PIPELINING\r\n", "250-SIZE 20000\r\n", "250-8BITMIME\r\n",
			       "250-ENHANCEDSTATUSCODES\r\n", "250-STARTTLS\r\n", "250-AUTH PLAIN LOGIN\r\n",
			       "250-SMTPUTF8\r\n", "250-CHUNKING\r\n", "250 DSN\r\n" };
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (strstr(r, want[i]) == NULL)
			fail_msg("EHLO lacks %s: %s", want[i], r);
	cl_sends(&c, "HELO client.test\r\n");
	expect(&c, "250 mx.test\r\n");
	cl_sends(&c, "NOOP\r\n");
	expect(&c, "250 2.0.0 Ok\r\n");
	cl_sends(&c, "VRFY alice\r\n");
	expect(&c, "252 2.5.2 Cannot VRFY user, but will accept message\r\n");
	cl_sends(&c, "EXPN list\r\n");
	expect(&c, "502 5.5.1");
	cl_sends(&c, "FOO bar\r\n");
	expect(&c, "500 5.5.2 Error: command not recognized\r\n");
	cl_send(&c, "NOOP\0x\r\n", 8);   /* a NUL inside a command */
	expect(&c, "500 5.5.2");
	cl_sends(&c, "QUIT\r\n");
	expect(&c, "221 2.0.0 Bye\r\n");
	cl_expect_closed(&c);
	cl_close(&c);
}

static void
test_sequence_errors(void **state)
{
	struct client c;

	cl_open(&c, port_mx);
	expect(&c, "220 ");
	cl_sends(&c, "MAIL FROM:<a@b.test>\r\n");
	expect(&c, "503 5.5.1 Error: send HELO/EHLO first\r\n");
	cl_sends(&c, "EHLO client.test\r\n");
	expect(&c, "250-mx.test");
	cl_sends(&c, "RCPT TO:<alice@example.test>\r\n");
	expect(&c, "503 5.5.1");
	cl_sends(&c, "DATA\r\n");
	expect(&c, "503 5.5.1");
	cl_sends(&c, "MAIL FROM:<a@b.test>\r\n");
	expect(&c, "250 2.1.0 Ok\r\n");
	cl_sends(&c, "MAIL FROM:<a@b.test>\r\n");
	expect(&c, "503 5.5.1 Error: nested MAIL command\r\n");
	cl_sends(&c, "RSET\r\n");
	expect(&c, "250 2.0.0 Ok\r\n");
	cl_sends(&c, "MAIL FROM:<a@b.test> FOO=bar\r\n");
	expect(&c, "555 5.5.4 Unsupported option: FOO\r\n");
	cl_sends(&c, "QUIT\r\n");
	expect(&c, "221");
	cl_close(&c);
}

static void
test_relay_denied_and_unknown(void **state)
{
	struct client c;

	connect_ehlo(&c, port_mx);
	cl_sends(&c, "MAIL FROM:<sender@remote.test>\r\n");
	expect(&c, "250 2.1.0 Ok\r\n");
	cl_sends(&c, "RCPT TO:<victim@elsewhere.test>\r\n");
	expect(&c, "554 5.7.1 <victim@elsewhere.test>: Relay access denied\r\n");
	cl_sends(&c, "RCPT TO:<unknown@example.test>\r\n");
	expect(&c, "550 5.1.1 <unknown@example.test>: Recipient address rejected: User unknown\r\n");
	cl_sends(&c, "RCPT TO:<tempfail@example.test>\r\n");
	expect(&c, "451 4.3.0 <tempfail@example.test>: Temporary lookup failure\r\n");
	cl_sends(&c, "DATA\r\n");
	expect(&c, "554 5.5.1 Error: no valid recipients\r\n");
	cl_sends(&c, "QUIT\r\n");
	expect(&c, "221");
	cl_close(&c);
}

static void
test_pipelined_data_and_smuggling(void **state)
{
	struct client c;
	char copy[sizeof(last_body)], r[512];
	unsigned before = ncommits();

	connect_ehlo(&c, port_mx);
	/* One write: the whole batch up to DATA (RFC 2920). */
	cl_sends(&c, "MAIL FROM:<sender@remote.test> BODY=8BITMIME\r\nRCPT TO:<alice@example.test>\r\n"
		     "RCPT TO:<bob@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.test\r\nDATA\r\n");
	expect(&c, "250 2.1.0 Ok\r\n");
	expect(&c, "250 2.1.5 Ok\r\n");
	expect(&c, "250 2.1.5 Ok\r\n");
	expect(&c, "354 ");
	/* Dots, bare LF and CR, and smuggling attempts; then the real end and a pipelined QUIT. */
	cl_sends(&c, "Subject: t\r\n\r\n..leading dot\r\nfoo\n.\nMAIL FROM:<evil@x.test>\r\n"
		     "bar\r\n.\nbaz\n.\r\nqux\r.\rend\r\n.\r\nQUIT\r\n");
	cl_reply(&c, r, sizeof(r));
	if (strncmp(r, "250 2.0.0 Ok: queued as ", 24) != 0)
		fail_msg("got '%s'", r);
	expect(&c, "221 2.0.0 Bye\r\n");
	cl_close(&c);
	assert_int_equal(ncommits(), before + 1);

	const char *body = body_after_received(copy, sizeof(copy));
	assert_string_equal(body, "Subject: t\r\n\r\n.leading dot\r\nfoo\r\n.\r\nMAIL FROM:<evil@x.test>\r\n"
				  "bar\r\n.\r\nbaz\r\n.\r\nqux\r\n.\r\nend\r\n");
	/* Received: two recipients, so no "for". */
	char qid[32];
	snprintf(qid, sizeof(qid), "%.16s", r + 24);
	const char *rcvd = "Received: from client.test ([127.0.0.1])\r\n\tby mx.test (Postern) with ESMTP id ";
	assert_true(strncmp(copy, rcvd, strlen(rcvd)) == 0);
	assert_non_null(strstr(copy, qid));
	assert_null(strstr(copy, "\tfor <"));

	pthread_mutex_lock(&mu);
	assert_string_equal(last_env.sender, "sender@remote.test");
	assert_int_equal(last_env.nrcpt, 2);
	assert_string_equal(last_env.rcpt[0].addr, "alice@example.test");
	assert_string_equal(last_env.rcpt[1].addr, "bob@example.test");
	assert_int_equal(last_env.rcpt[1].notify, MC_NOTIFY_SUCCESS | MC_NOTIFY_FAILURE);
	assert_string_equal(last_env.rcpt[1].orcpt, "rfc822;bob@example.test");
	assert_true(last_env.flags & MC_ENV_8BITMIME);
	assert_false(last_env.flags & MC_ENV_AUTHENTICATED);
	assert_int_equal(last_env.size, last_body_len);
	assert_string_equal(last_env.qid, qid);
	pthread_mutex_unlock(&mu);
}

static void
test_one_recipient_received_for(void **state)
{
	struct client c;
	char copy[sizeof(last_body)];

	connect_ehlo(&c, port_mx);
	cl_sends(&c, "MAIL FROM:<>\r\n");
	expect(&c, "250 2.1.0");
	cl_sends(&c, "RCPT TO:<alice@example.test>\r\n");
	expect(&c, "250 2.1.5");
	cl_sends(&c, "DATA\r\n");
	expect(&c, "354 ");
	/* The empty message: the terminator right away. */
	cl_sends(&c, ".\r\n");
	expect(&c, "250 2.0.0 Ok: queued as ");
	const char *body = body_after_received(copy, sizeof(copy));
	assert_string_equal(body, "");
	assert_non_null(strstr(copy, "\r\n\tfor <alice@example.test>; "));
	pthread_mutex_lock(&mu);
	assert_string_equal(last_env.sender, "");
	pthread_mutex_unlock(&mu);
	cl_sends(&c, "QUIT\r\n");
	expect(&c, "221");
	cl_close(&c);
}

static void
test_size_limit(void **state)
{
	struct client c;
	unsigned before = ncommits();

	connect_ehlo(&c, port_mx);
	cl_sends(&c, "MAIL FROM:<a@remote.test> SIZE=30000\r\n");
	expect(&c, "552 5.3.4 Message size exceeds fixed limit\r\n");
	cl_sends(&c, "MAIL FROM:<a@remote.test> SIZE=1000\r\n");
	expect(&c, "250 2.1.0");
	cl_sends(&c, "RCPT TO:<alice@example.test>\r\n");
	expect(&c, "250 2.1.5");
	cl_sends(&c, "DATA\r\n");
	expect(&c, "354 ");
	char line[1001];
	memset(line, 'x', 998);
	memcpy(line + 998, "\r\n", 3);
	for (int i = 0; i < 30; i++)
		cl_sends(&c, line);
	cl_sends(&c, ".\r\n");
	expect(&c, "552 5.3.4 Message size exceeds fixed limit\r\n");
	/* The session goes on; nothing was committed. */
	cl_sends(&c, "NOOP\r\n");
	expect(&c, "250 2.0.0 Ok\r\n");
	assert_int_equal(ncommits(), before);
	cl_sends(&c, "QUIT\r\n");
	expect(&c, "221");
	cl_close(&c);
}

static void
test_bdat(void **state)
{
	struct client c;
	char copy[sizeof(last_body)];

	connect_ehlo(&c, port_mx);
	/* No transaction: the chunk is read and dropped, then 503. */
	cl_sends(&c, "BDAT 3\r\nabcNOOP\r\n");
	expect(&c, "503 5.5.1");
	expect(&c, "250 2.0.0 Ok\r\n");
	cl_sends(&c, "MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nBDAT 10\r\n0123456789");
	expect(&c, "250 2.1.0");
	expect(&c, "250 2.1.5");
	expect(&c, "250 2.0.0 10 octets received\r\n");
	cl_sends(&c, "DATA\r\n");
	expect(&c, "503 5.5.1");
	/* A chunk whose bytes look like commands and a dot line: taken as data. */
	cl_sends(&c, "BDAT 19 LAST\r\nab\ncd\r\n.\r\nQUIT\r\nxy\r");
	expect(&c, "250 2.0.0 Ok: queued as ");
	const char *body = body_after_received(copy, sizeof(copy));
	assert_string_equal(body, "0123456789ab\r\ncd\r\n.\r\nQUIT\r\nxy\r\n");
	cl_sends(&c, "QUIT\r\n");
	expect(&c, "221");
	cl_close(&c);
}

static void
test_submission_requires_auth(void **state)
{
	struct client c;
	char r[4096];

	cl_open(&c, port_sub);
	expect(&c, "220 mx.test ESMTP Postern\r\n");
	cl_sends(&c, "EHLO client.test\r\n");
	cl_reply(&c, r, sizeof(r));
	assert_non_null(strstr(r, "250-AUTH PLAIN LOGIN\r\n"));
	cl_sends(&c, "MAIL FROM:<alice@example.test>\r\n");
	expect(&c, "530 5.7.0 Authentication required\r\n");
	/* "\0alice@example.test\0wrong" */
	cl_sends(&c, "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==\r\n");
	expect(&c, "535 5.7.8 Error: authentication failed\r\n");
	/* An unknown user gets the same answer. */
	cl_sends(&c, "AUTH PLAIN AG5vYm9keUBleGFtcGxlLnRlc3QAc2VjcmV0\r\n");
	expect(&c, "535 5.7.8 Error: authentication failed\r\n");
	cl_sends(&c, "AUTH PLAIN AGJsb2NrZWRAZXhhbXBsZS50ZXN0AHg=\r\n");
	expect(&c, "454 4.7.0 Temporary authentication failure\r\n");
	cl_sends(&c, "AUTH PLAIN !!!!\r\n");
	expect(&c, "501 5.5.2");
	cl_sends(&c, "AUTH CRAM-MD5\r\n");
	expect(&c, "504 5.5.4");
	/* "\0alice@example.test\0secret" after the 334 prompt. */
	cl_sends(&c, "AUTH PLAIN\r\n");
	expect(&c, "334 \r\n");
	cl_sends(&c, "AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\r\n");
	expect(&c, "235 2.7.0 Authentication successful\r\n");
	cl_sends(&c, "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\r\n");
	expect(&c, "503 5.5.1");
	cl_sends(&c, "MAIL FROM:<alice@example.test>\r\n");
	expect(&c, "250 2.1.0");
	/* Authenticated: relaying is allowed. */
	cl_sends(&c, "RCPT TO:<friend@elsewhere.test>\r\n");
	expect(&c, "250 2.1.5");
	cl_sends(&c, "DATA\r\n");
	expect(&c, "354 ");
	cl_sends(&c, "Subject: hi\r\n\r\nhello\r\n.\r\n");
	expect(&c, "250 2.0.0 Ok: queued as ");
	pthread_mutex_lock(&mu);
	assert_true(last_env.flags & MC_ENV_AUTHENTICATED);
	assert_string_equal(last_env.auth_user, "alice@example.test");
	assert_non_null(strstr(last_body, " with ESMTPA id "));
	pthread_mutex_unlock(&mu);
	cl_sends(&c, "QUIT\r\n");
	expect(&c, "221");
	cl_close(&c);
}

static void
test_auth_login(void **state)
{
	struct client c;

	connect_ehlo(&c, port_sub);
	cl_sends(&c, "AUTH LOGIN\r\n");
	expect(&c, "334 VXNlcm5hbWU6\r\n");
	cl_sends(&c, "*\r\n");
	expect(&c, "501 5.7.0");
	cl_sends(&c, "AUTH LOGIN YWxpY2VAZXhhbXBsZS50ZXN0\r\n");
	expect(&c, "334 UGFzc3dvcmQ6\r\n");
	cl_sends(&c, "c2VjcmV0\r\n");
	expect(&c, "235 2.7.0 Authentication successful\r\n");
	cl_sends(&c, "QUIT\r\n");
	expect(&c, "221");
	cl_close(&c);
}

static void
test_too_many_errors(void **state)
{
	struct client c;

	cl_open(&c, port_mx);
	expect(&c, "220 ");
	for (int i = 0; i < 7; i++) {
		cl_sends(&c, "BOGUS\r\n");
		expect(&c, "500 5.5.2");
	}
	cl_sends(&c, "BOGUS\r\n");
	expect(&c, "500 5.5.2");
	expect(&c, "421 4.7.0 mx.test Error: too many errors\r\n");
	cl_expect_closed(&c);
	cl_close(&c);
}

static void
test_line_too_long(void **state)
{
	struct client c;
	char big[20000];

	connect_ehlo(&c, port_mx);
	memset(big, 'A', sizeof(big));
	memcpy(big, "NOOP ", 5);
	cl_send(&c, big, sizeof(big));
	cl_sends(&c, "\r\nNOOP\r\n");
	expect(&c, "500 5.5.2 Error: line too long\r\n");
	expect(&c, "250 2.0.0 Ok\r\n");
	/* 4096 bytes of command are fine. */
	memset(big, 'A', 4096);
	memcpy(big, "NOOP ", 5);
	memcpy(big + 4096, "\r\n", 2);
	cl_send(&c, big, 4098);
	expect(&c, "250 2.0.0 Ok\r\n");
	cl_sends(&c, "QUIT\r\n");
	expect(&c, "221");
	cl_close(&c);
}

static void
test_starttls(void **state)
{
	struct client c;
	char r[4096];

	connect_ehlo(&c, port_mx);
	/* A command pipelined after STARTTLS must be discarded. */
	cl_sends(&c, "STARTTLS\r\nMAIL FROM:<injected@x.test>\r\n");
	expect(&c, "220 2.0.0 Ready to start TLS\r\n");
	assert_int_equal(c.len, 0);
	cl_tls(&c);
	/* Everything is forgotten: EHLO again first. */
	cl_sends(&c, "MAIL FROM:<a@remote.test>\r\n");
	expect(&c, "503 5.5.1 Error: send HELO/EHLO first\r\n");
	cl_sends(&c, "EHLO client.test\r\n");
	cl_reply(&c, r, sizeof(r));
	assert_null(strstr(r, "STARTTLS"));
	assert_non_null(strstr(r, "250-AUTH PLAIN LOGIN\r\n"));
	cl_sends(&c, "STARTTLS\r\n");
	expect(&c, "503 5.5.1");
	cl_sends(&c, "MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
	expect(&c, "250 2.1.0");
	expect(&c, "250 2.1.5");
	expect(&c, "354 ");
	cl_sends(&c, "hi\r\n.\r\n");
	expect(&c, "250 2.0.0 Ok: queued as ");
	pthread_mutex_lock(&mu);
	assert_non_null(strstr(last_body, " with ESMTPS id "));
	assert_non_null(strstr(last_body, "\t(using TLSv1."));
	pthread_mutex_unlock(&mu);
	cl_sends(&c, "QUIT\r\n");
	expect(&c, "221");
	cl_close(&c);
}

static void
test_implicit_tls(void **state)
{
	struct client c;

	cl_open(&c, port_subs);
	cl_tls(&c);
	expect(&c, "220 mx.test ESMTP Postern\r\n");
	cl_sends(&c, "EHLO client.test\r\n");
	expect(&c, "250-mx.test");
	cl_sends(&c, "MAIL FROM:<alice@example.test>\r\n");
	expect(&c, "530 5.7.0 Authentication required\r\n");
	cl_sends(&c, "QUIT\r\n");
	expect(&c, "221");
	cl_close(&c);
}

static unsigned want_max;

static void
set_max_connections(void)
{
	srv.lim.max_connections = want_max;
}

static void
test_max_connections(void **state)
{
	struct client a, b;

	for (int i = 0; i < 200 && srv.nsessions > 0; i++)
		usleep(10000);
	want_max = 1;
	in_loop(set_max_connections);
	cl_open(&a, port_mx);
	expect(&a, "220 ");
	cl_open(&b, port_mx);
	expect(&b, "421 4.7.0 mx.test Too many connections, try again later\r\n");
	cl_expect_closed(&b);
	cl_close(&b);
	cl_sends(&a, "QUIT\r\n");
	expect(&a, "221");
	cl_close(&a);
	want_max = 1000;
	in_loop(set_max_connections);
}

static void
test_queued_down(void **state)
{
	struct client c;

	in_loop(stop_fake_queue);
	for (int i = 0; i < 100 && mc_queue_client_is_up(srv.queue); i++)
		usleep(20000);
	connect_ehlo(&c, port_mx);
	cl_sends(&c, "MAIL FROM:<a@remote.test>\r\n");
	expect(&c, "451 4.3.0");
	/* The session goes on. */
	cl_sends(&c, "NOOP\r\n");
	expect(&c, "250 2.0.0 Ok\r\n");

	/* queued back: the client reconnects by itself. */
	in_loop(start_fake_queue);
	for (int i = 0; i < 400 && !mc_queue_client_is_up(srv.queue); i++)
		usleep(25000);
	cl_sends(&c, "MAIL FROM:<a@remote.test>\r\n");
	expect(&c, "250 2.1.0");
	/* queued answers with no space: its text reaches the client. */
	cl_sends(&c, "RSET\r\n");
	expect(&c, "250");
	pthread_mutex_lock(&mu);
	begin_fails = true;
	pthread_mutex_unlock(&mu);
	cl_sends(&c, "MAIL FROM:<a@remote.test>\r\n");
	expect(&c, "452 4.3.1 Insufficient system storage\r\n");
	pthread_mutex_lock(&mu);
	begin_fails = false;
	pthread_mutex_unlock(&mu);
	cl_sends(&c, "QUIT\r\n");
	expect(&c, "221");
	cl_close(&c);
}

static void
test_abort_on_disconnect(void **state)
{
	struct client c;

	pthread_mutex_lock(&mu);
	unsigned before = aborts;
	pthread_mutex_unlock(&mu);
	connect_ehlo(&c, port_mx);
	cl_sends(&c, "MAIL FROM:<a@remote.test>\r\n");
	expect(&c, "250 2.1.0");
	cl_close(&c);
	/* The uncommitted submission is aborted with queued. */
	unsigned now = before;
	for (int i = 0; i < 200 && now == before; i++) {
		usleep(10000);
		pthread_mutex_lock(&mu);
		now = aborts;
		pthread_mutex_unlock(&mu);
	}
	assert_int_equal(now, before + 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting_and_ehlo),
		cmocka_unit_test(test_sequence_errors),
		cmocka_unit_test(test_relay_denied_and_unknown),
		cmocka_unit_test(test_pipelined_data_and_smuggling),
		cmocka_unit_test(test_one_recipient_received_for),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_bdat),
		cmocka_unit_test(test_submission_requires_auth),
		cmocka_unit_test(test_auth_login),
		cmocka_unit_test(test_too_many_errors),
		cmocka_unit_test(test_line_too_long),
		cmocka_unit_test(test_starttls),
		cmocka_unit_test(test_implicit_tls),
		cmocka_unit_test(test_abort_on_disconnect),
		cmocka_unit_test(test_max_connections),
		cmocka_unit_test(test_queued_down),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
