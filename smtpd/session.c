/*
 * session.c - one SMTP client connection: accept, greeting, the input
 * loop, reply batching, TLS, timeouts, limits, close (RFC 5321, 2920, 3207).
 *
 * Called from the listeners (smtpd_server_accept) and by mc_conn's
 * callbacks. Input is handled strictly in order, one command at a time:
 * command lines go to commands.c, DATA and BDAT bytes to tx.c. While a
 * command waits for resolverd or queued the connection is paused, so
 * pipelined input stays buffered (never dropped; only STARTTLS discards,
 * inside mc_conn_starttls). Replies of a pipelined batch collect in the
 * session's out buffer and go out in one write when no complete command
 * is left in the input (RFC 2920 §3.1 lets the server group them).
 *
 * Owns the session struct, its out buffer and its transaction; the
 * mc_conn is freed by conn.c after on_close, where the session ends:
 * pending calls are cancelled, an uncommitted submission is aborted.
 * Never: act on a line before the previous command is answered, keep an
 * unbounded line, touch the connection after on_close.
 */
#include "smtpd/smtpd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mail/daemon.h"
#include "mail/queue_client.h"
#include "mail/resolver_client.h"
#include "util/log.h"

#include <openssl/crypto.h>

/* Input buffer: one DATA read's worth; command lines are bounded far below it. */
#define IN_MAX (SMTPD_AUTH_LINE_MAX + 64 * 1024)
/* Replies of one pipelined batch (1000 RCPT replies fit). */
#define OUT_MAX (256 * 1024)
/* Stop taking commands while this much output waits for a client that does not read. */
#define OUT_BACKLOG (256 * 1024)

static void process(struct smtpd_session *s);

void
smtpd_server_limits(struct smtpd_server *srv, const struct mc_config *cfg)
{
	struct smtpd_limits *l = &srv->lim;
	snprintf(l->hostname, sizeof(l->hostname), "%s", cfg->global.hostname);
	l->max_message_size = cfg->smtpd.max_message_size;
	l->max_recipients = cfg->smtpd.max_recipients ? cfg->smtpd.max_recipients : 1;
	l->max_errors = cfg->smtpd.max_errors;
	l->max_connections = cfg->smtpd.max_connections;
	l->timeout_ms = cfg->smtpd.timeout * 1000u;
	l->data_timeout_ms = cfg->smtpd.data_timeout * 1000u;
	l->plain_auth = cfg->smtpd.allow_plaintext_auth;
	l->min_free_space = cfg->queued.min_free_space;
}

void
smtpd_server_init(struct smtpd_server *srv, uv_loop_t *loop, const struct mc_config *cfg)
{
	memset(srv, 0, sizeof(*srv));
	srv->loop = loop;
	smtpd_server_limits(srv, cfg);
	/* Session ids differ across restarts: seeded from the clock and the pid. */
	srv->next_id = (uint32_t)time(NULL) * 2654435761u ^ ((uint32_t)getpid() << 16);
}

static void
count_changed(struct smtpd_server *srv)
{
	if (srv->daemon)
		srv->daemon->connections = srv->nsessions;
}

bool
smtpd_session_auth_allowed(const struct smtpd_session *s)
{
	if (s->tls)
		return true;
	switch (s->srv->lim.plain_auth) {
	case MC_PLAIN_YES:
		return true;
	case MC_PLAIN_LOOPBACK:
		return mc_conn_peer_is_loopback(s->conn);
	default:
		return false;
	}
}

bool
smtpd_session_auth_required(const struct smtpd_session *s)
{
	return s->tag == SMTPD_SUBMISSION || s->tag == SMTPD_SUBMISSIONS;
}

/* ---- replies ---- */

void
smtpd_flush(struct smtpd_session *s)
{
	if (s->out.len == 0 || s->conn == NULL)
		return;
	mc_trace(MC_TRACE_PROTO, "%s: > %.*s", s->id, (int)(s->out.len > 2 ? s->out.len - 2 : 0), s->out.data);
	mc_conn_write(s->conn, s->out.data, s->out.len);
	mc_buf_reset(&s->out);
}

static void
vreply(struct smtpd_session *s, const char *fmt, va_list ap)
{
	char line[1024];
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line) - 2)
		n = (int)sizeof(line) - 3;
	line[n++] = '\r';
	line[n++] = '\n';
	if (line[0] == '5')
		s->errors++;
	if (line[0] == '2' && s->cur_cmd >= 0 && !s->cur_ok) {
		s->cmd_ok[s->cur_cmd]++;
		s->cur_ok = true;
	}
	if (mc_buf_add(&s->out, line, (size_t)n) < 0) {
		smtpd_flush(s);
		mc_buf_add(&s->out, line, (size_t)n);
	}
}

void
smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreply(s, fmt, ap);
	va_end(ap);
}

void
smtpd_reject(struct smtpd_session *s, const char *cmd, const char *rcpt, const char *fmt, ...)
{
	char text[1024];
	char from[MC_ADDR_MAX], to[MC_ADDR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	smtpd_reply(s, "%s", text);
	mc_log_clean(from, sizeof(from), smtpd_tx_sender(s), strlen(smtpd_tx_sender(s)));
	if (rcpt) {
		mc_log_clean(to, sizeof(to), rcpt, strlen(rcpt));
		mc_info("%s: reject %s from [%s]: %s; from=<%s> to=<%s>", s->id, cmd, s->ip, text, from, to);
	} else {
		mc_info("%s: reject %s from [%s]: %s; from=<%s>", s->id, cmd, s->ip, text, from);
	}
}

/* ---- states and lifetime ---- */

void
smtpd_session_state(struct smtpd_session *s, enum smtpd_state st)
{
	s->state = st;
	if (s->conn && !s->closing)
		mc_conn_set_timeout(s->conn, st == SMTPD_ST_DATA || st == SMTPD_ST_BDAT ? s->srv->lim.data_timeout_ms
											   : s->srv->lim.timeout_ms);
}

void
smtpd_session_close(struct smtpd_session *s, const char *why)
{
	if (s->closing)
		return;
	smtpd_flush(s);
	s->closing = true;
	if (why)
		mc_info("%s: %s from [%s]", s->id, why, s->ip);
	mc_conn_close(s->conn);
}

void
smtpd_session_wait(struct smtpd_session *s)
{
	s->busy = true;
	mc_conn_pause(s->conn);
}

/* The input loop stopped: end the session if it is over its error limit or the server stops. */
static bool
check_limits(struct smtpd_session *s)
{
	if (s->closing)
		return true;
	if (s->srv->lim.max_errors && s->errors >= s->srv->lim.max_errors) {
		smtpd_reply(s, "421 4.7.0 %s Error: too many errors", s->srv->lim.hostname);
		smtpd_session_close(s, "too many errors");
		return true;
	}
	if (s->srv->stopping && !s->busy && s->tx == NULL &&
	    (s->state == SMTPD_ST_CMD || s->state == SMTPD_ST_AUTH)) {
		smtpd_reply(s, "421 4.3.2 %s Service shutting down", s->srv->lim.hostname);
		smtpd_session_close(s, "shutdown");
		return true;
	}
	return false;
}

void
smtpd_session_done(struct smtpd_session *s)
{
	s->busy = false;
	if (s->closing)
		return;
	if (check_limits(s))
		return;
	if (mc_conn_in(s->conn)->len == 0 || s->state == SMTPD_ST_TLS)
		smtpd_flush(s);
	/* Buffered input is delivered again from the loop (mc_conn_resume), not from this stack. */
	mc_conn_resume(s->conn);
}

void
smtpd_session_reset(struct smtpd_session *s)
{
	smtpd_tx_abort(s);
	s->helo[0] = '\0';
	s->helo_seen = false;
	s->esmtp = false;
	s->authenticated = false;
	s->auth_user[0] = '\0';
	s->auth_mech = 0;
	s->auth_step = 0;
	OPENSSL_cleanse(s->auth_login_user, sizeof(s->auth_login_user));
}

static void
greet(struct smtpd_session *s)
{
	if (s->over_limit) {
		smtpd_reply(s, "421 4.7.0 %s Too many connections, try again later", s->srv->lim.hostname);
		smtpd_session_close(s, "too many connections");
		return;
	}
	s->greeted = true;
	smtpd_session_state(s, SMTPD_ST_CMD);
	smtpd_reply(s, "220 %s ESMTP Postern", s->srv->lim.hostname);
	smtpd_flush(s);
}

/* The disconnect line: "ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 commands=5". */
static void
log_disconnect(struct smtpd_session *s, const char *why)
{
	char stats[512];
	size_t n = 0;
	stats[0] = '\0';
	for (size_t i = 0; i < smtpd_cmd_count() && i < sizeof(s->cmd_all) / sizeof(s->cmd_all[0]); i++) {
		if (s->cmd_all[i] == 0)
			continue;
		int k;
		if (s->cmd_ok[i] == s->cmd_all[i])
			k = snprintf(stats + n, sizeof(stats) - n, " %s=%u", smtpd_cmd_name(i), s->cmd_all[i]);
		else
			k = snprintf(stats + n, sizeof(stats) - n, " %s=%u/%u", smtpd_cmd_name(i), s->cmd_ok[i],
				     s->cmd_all[i]);
		if (k > 0 && (size_t)k < sizeof(stats) - n)
			n += (size_t)k;
	}
	mc_info("%s: disconnect from [%s]%s commands=%u reason=%s", s->id, s->ip, stats, s->ncommands, why);
}

static void
on_close(struct mc_conn *c, void *arg, const char *why)
{
	struct smtpd_session *s = arg;
	struct smtpd_server *srv = s->srv;

	if (s->res_call)
		mc_resolver_cancel(srv->res, s->res_call);
	if (s->q_call)
		mc_queue_cancel(srv->queue, s->q_call);
	s->res_call = s->q_call = 0;
	if (s->tx)
		mc_info("%s: lost connection with transaction open from [%s]", s->id, s->ip);
	smtpd_tx_abort(s);
	log_disconnect(s, why ? why : "closed");
	OPENSSL_cleanse(s->line, sizeof(s->line));
	OPENSSL_cleanse(s->auth_login_user, sizeof(s->auth_login_user));
	if (s->prev)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	srv->nsessions--;
	count_changed(srv);
	mc_buf_free(&s->out);
	free(s);
	if (srv->stopping && srv->nsessions == 0 && srv->on_empty)
		srv->on_empty(srv);
}

static void
on_timeout(struct mc_conn *c, void *arg)
{
	struct smtpd_session *s = arg;
	smtpd_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->srv->lim.hostname);
	smtpd_session_close(s, s->state == SMTPD_ST_DATA || s->state == SMTPD_ST_BDAT ? "timeout during data"
											   : "timeout");
}

static void
on_tls(struct mc_conn *c, void *arg, bool ok)
{
	struct smtpd_session *s = arg;
	if (!ok) {
		mc_info("%s: TLS handshake failed from [%s]", s->id, s->ip);
		s->closing = true;
		return;
	}
	bool implicit = !s->greeted;
	s->tls = true;
	mc_info("%s: tls %s from [%s]", s->id, mc_conn_tls_desc(c), s->ip);
	if (implicit) {
		greet(s);
		return;
	}
	/* RFC 3207 §4.2: forget everything learned before the handshake. */
	smtpd_session_reset(s);
	smtpd_session_state(s, SMTPD_ST_CMD);
}

static void
on_read(struct mc_conn *c, void *arg)
{
	process(arg);
}

static void
on_drain(struct mc_conn *c, void *arg)
{
	struct smtpd_session *s = arg;
	/* Reading may have stopped for back-pressure (process): go on, buffered input first. */
	if (!s->busy && !s->closing && s->state != SMTPD_ST_TLS)
		mc_conn_resume(c);
}

static const struct mc_conn_cbs session_cbs = {
	.on_read = on_read,
	.on_drain = on_drain,
	.on_tls = on_tls,
	.on_timeout = on_timeout,
	.on_close = on_close,
};

void
smtpd_server_accept(uv_stream_t *server, int tag, void *arg)
{
	struct smtpd_server *srv = arg;
	struct smtpd_session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		mc_panic("out of memory");
	s->srv = srv;
	s->tag = tag;
	s->cur_cmd = -1;
	mc_buf_init(&s->out, OUT_MAX);
	s->conn = mc_conn_accept(server, IN_MAX, &session_cbs, s);
	if (s->conn == NULL) {
		mc_buf_free(&s->out);
		free(s);
		return;
	}
	snprintf(s->id, sizeof(s->id), "S%08X", srv->next_id++);
	snprintf(s->ip, sizeof(s->ip), "%s", mc_conn_peer_ip(s->conn));
	s->port = mc_conn_peer_port(s->conn);
	s->next = srv->sessions;
	if (srv->sessions)
		srv->sessions->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	count_changed(srv);
	s->over_limit = srv->stopping || (srv->lim.max_connections && srv->nsessions > srv->lim.max_connections);
	mc_info("%s: connect from [%s]:%u port=%u", s->id, s->ip, s->port, mc_conn_local_port(s->conn));

	if (tag == SMTPD_SUBMISSIONS) {
		smtpd_session_state(s, SMTPD_ST_TLS);
		if (srv->tls == NULL || srv->tls->server == NULL ||
		    mc_conn_starttls(s->conn, srv->tls->server, true, NULL) < 0) {
			s->closing = true;
			mc_warn("%s: cannot start TLS for [%s]", s->id, s->ip);
			mc_conn_abort(s->conn);
		}
		return;
	}
	greet(s);
}

/* ---- the input loop ---- */

/* One command line at the front of in: run it. Returns false when no complete line is buffered. */
static bool
take_line(struct smtpd_session *s, struct mc_buf *in)
{
	size_t max = s->state == SMTPD_ST_AUTH ? SMTPD_AUTH_LINE_MAX : SMTPD_LINE_MAX;
	size_t n = mc_buf_line(in);

	if (n == 0) {
		/* No LF yet. A line already too long is dropped as it comes, to bounded memory. */
		if (in->len > max + 1) {
			s->discarding = true;
			mc_buf_consume(in, in->len);
		}
		return false;
	}
	size_t len = n - 1;
	if (len > 0 && in->data[len - 1] == '\r')
		len--;
	if (s->discarding || len > max) {
		s->discarding = false;
		mc_buf_consume(in, n);
		if (s->state == SMTPD_ST_AUTH) {
			s->auth_mech = 0;
			smtpd_session_state(s, SMTPD_ST_CMD);
		}
		smtpd_reply(s, "500 5.5.2 Error: line too long");
		return true;
	}
	memcpy(s->line, in->data, len);
	s->line[len] = '\0';
	mc_buf_consume(in, n);
	if (mc_trace_on(MC_TRACE_PROTO)) {
		char clean[200];
		mc_trace(MC_TRACE_PROTO, "%s: < %s", s->id,
			 s->state == SMTPD_ST_AUTH ? "(sasl)" : mc_log_clean(clean, sizeof(clean), s->line, len));
	}
	if (s->state == SMTPD_ST_AUTH)
		smtpd_auth_line(s, s->line, len);
	else
		smtpd_cmd_run(s, s->line, len);
	return true;
}

static void
process(struct smtpd_session *s)
{
	struct mc_buf *in = mc_conn_in(s->conn);

	while (!s->busy && !s->closing) {
		if (mc_conn_pending_out(s->conn) > OUT_BACKLOG) {
			/* The client sends but does not read: wait for on_drain. */
			smtpd_flush(s);
			mc_conn_pause(s->conn);
			return;
		}
		if (s->state == SMTPD_ST_DATA || s->state == SMTPD_ST_BDAT) {
			if (in->len == 0)
				break;
			size_t used = smtpd_tx_input(s, in->data, in->len);
			mc_buf_consume(in, used);
			continue;
		}
		if (s->state != SMTPD_ST_CMD && s->state != SMTPD_ST_AUTH)
			break;
		if (!take_line(s, in))
			break;
		if (check_limits(s))
			return;
	}
	if (s->closing)
		return;
	if (!s->busy || mc_buf_line(in) == 0)
		smtpd_flush(s);
}

/* ---- stop ---- */

void
smtpd_server_stop(struct smtpd_server *srv)
{
	srv->stopping = true;
	for (struct smtpd_session *s = srv->sessions, *next; s; s = next) {
		next = s->next;
		if (!s->closing && !s->busy)
			check_limits(s);
	}
	if (srv->nsessions == 0 && srv->on_empty)
		srv->on_empty(srv);
}

void
smtpd_server_close_all(struct smtpd_server *srv)
{
	for (struct smtpd_session *s = srv->sessions; s; s = s->next) {
		if (s->closing)
			continue;
		smtpd_reply(s, "421 4.3.2 %s Service shutting down", srv->lim.hostname);
		smtpd_session_close(s, "shutdown");
	}
}
