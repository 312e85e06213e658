/*
 * session.c - one POP3 client connection: greeting, the input loop,
 * replies, STLS, timeouts, limits, RETR/TOP streaming, close
 * (RFC 1939, RFC 2449 pipelining, RFC 2595 STLS).
 *
 * Called by netsvc (pop3_session_new, with TLS already up on the
 * implicit-TLS port) and by mc_conn's callbacks. Input is taken strictly
 * in order, one command at a time: lines go to commands.c; while a
 * command waits for resolverd, or a RETR/TOP streams, reading stops and
 * pipelined input stays buffered. Replies of a pipelined batch collect in
 * the out buffer and go out in one write when no complete command is left.
 * STLS discards whatever was pipelined behind it (mc_conn_starttls).
 *
 * A message streams from its file in 64 KiB reads through the dot-stuffing
 * encoder (CRLF line ends, leading dots doubled) and never more than about
 * 2 * MC_CONN_LOWAT waits in the conn: memory stays bounded whatever the
 * message or mailbox size.
 *
 * Owns the session struct, its out buffer, the stream's descriptor and the
 * maildrop (closed without deleting anything unless QUIT reached UPDATE).
 * Never: act on a line before the previous command is answered, keep an
 * unbounded line, touch the conn after on_close.
 */
#include "pop3d/pop3d.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "mail/netsvc.h"
#include "mail/resolver_client.h"
#include "util/log.h"

/* Input: the longest SASL line with its line end, and room for pipelined commands. */
#define POP3_IN_MAX (MC_SASL_LINE_MAX + 4096)
/* Replies of one pipelined batch (a LIST or UIDL of a large mailbox is flushed as it grows). */
#define OUT_MAX (64 * 1024)
/* Stop taking commands or reading the file while this much output waits. */
#define OUT_BACKLOG (2 * MC_CONN_LOWAT)
#define READ_CHUNK (64 * 1024)

static void process(struct pop3_session *s);

void
pop3_server_limits(struct pop3_server *srv, const struct mc_config *cfg)
{
	struct pop3_limits *l = &srv->lim;
	snprintf(l->hostname, sizeof(l->hostname), "%s", cfg->global.hostname);
	l->plain_auth = cfg->pop3d.allow_plaintext_auth;
	l->timeout_ms = cfg->pop3d.timeout * 1000u;
	l->max_bad = cfg->pop3d.max_bad_commands;
}

void
pop3_server_init(struct pop3_server *srv, uv_loop_t *loop, const struct mc_config *cfg)
{
	memset(srv, 0, sizeof(*srv));
	srv->loop = loop;
	pop3_server_limits(srv, cfg);
}

SSL_CTX *
pop3_session_tls_ctx(const struct pop3_session *s)
{
	return s->srv->svc ? mc_netsvc_tls(s->srv->svc) : s->srv->tls_test;
}

bool
pop3_session_auth_allowed(const struct pop3_session *s)
{
	return mc_netsvc_plain_auth_ok(s->conn, s->srv->lim.plain_auth);
}

/* ---- replies ---- */

void
pop3_flush(struct pop3_session *s)
{
	if (s->out.len == 0 || s->conn == NULL)
		return;
	mc_conn_write(s->conn, s->out.data, s->out.len);
	mc_buf_reset(&s->out);
}

void
pop3_reply_raw(struct pop3_session *s, const char *p, size_t n)
{
	if (mc_buf_add(&s->out, p, n) < 0) {
		pop3_flush(s);
		if (mc_buf_add(&s->out, p, n) < 0)
			mc_conn_write(s->conn, p, n);
	}
}

void
pop3_reply(struct pop3_session *s, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line) - 2)
		n = (int)sizeof(line) - 3;
	if (mc_trace_on(MC_TRACE_PROTO))
		mc_trace(MC_TRACE_PROTO, "%s: > %.*s", s->id, n, line);
	line[n++] = '\r';
	line[n++] = '\n';
	pop3_reply_raw(s, line, (size_t)n);
}

/* ---- lifetime ---- */

void
pop3_session_close(struct pop3_session *s, const char *why)
{
	if (s->closing)
		return;
	pop3_flush(s);
	s->closing = true;
	if (why)
		mc_info("%s: %s from=%s", s->id, why, s->ip);
	mc_conn_close(s->conn);
}

void
pop3_session_wait(struct pop3_session *s)
{
	s->busy = true;
	mc_conn_pause(s->conn);
}

void
pop3_session_done(struct pop3_session *s)
{
	s->busy = false;
	if (s->closing)
		return;
	if (mc_buf_line(mc_conn_in(s->conn)) == 0)
		pop3_flush(s);
	/* Buffered input is delivered again from the loop (mc_conn_resume), not from this stack. */
	mc_conn_resume(s->conn);
}

void
pop3_session_starttls(struct pop3_session *s)
{
	pop3_flush(s);
	s->handshake = true;
	mc_conn_pause(s->conn);
	/* Discards what was pipelined behind STLS (RFC 2595 §4... the session starts clean). */
	if (mc_conn_starttls(s->conn, pop3_session_tls_ctx(s), true, NULL) < 0) {
		mc_warn("%s: cannot start TLS from=%s", s->id, s->ip);
		s->closing = true;
		mc_conn_abort(s->conn);
		return;
	}
	mc_conn_resume(s->conn);
}

void
pop3_session_shutdown(void *sess)
{
	struct pop3_session *s = sess;
	if (s->closing)
		return;
	if (s->streaming) {
		/* Mid-message: nothing can be said in band. Nothing is deleted. */
		s->closing = true;
		mc_conn_abort(s->conn);
		return;
	}
	pop3_reply(s, "-ERR [SYS/TEMP] Server shutting down");
	pop3_session_close(s, "shutdown");
}

static void
stream_end(struct pop3_session *s)
{
	if (s->st.fd >= 0)
		close(s->st.fd);
	s->st.fd = -1;
	s->streaming = false;
}

static void
on_close(struct mc_conn *c, void *arg, const char *why)
{
	struct pop3_session *s = arg;
	struct pop3_server *srv = s->srv;
	(void)c;
	if (s->res_call && srv->res)
		mc_resolver_cancel(srv->res, s->res_call);
	s->res_call = 0;
	stream_end(s);
	if (s->have_drop) {
		/* A dropped connection deletes nothing (RFC 1939 §6: no UPDATE state without QUIT). */
		if (s->drop.ndeleted && !(s->state & POP3_ST_UPDATE))
			mc_info("%s: %zu deletions not done (no QUIT) user=%s", s->id, s->drop.ndeleted, s->account);
		pop3_maildrop_close(&s->drop);
		s->have_drop = false;
	}
	mc_info("%s: disconnect from=%s user=%s retr=%u bytes=%llu deleted=%u reason=%s", s->id, s->ip,
		s->account[0] ? s->account : "-", s->retrieved, (unsigned long long)s->retrieved_bytes,
		s->deleted_at_quit, why ? why : "closed");
	pop3_cmd_reset_auth(s);
	OPENSSL_cleanse(s->line, sizeof(s->line));
	if (s->prev)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	srv->nsessions--;
	mc_buf_free(&s->out);
	free(s);
}

static void
on_timeout(struct mc_conn *c, void *arg)
{
	struct pop3_session *s = arg;
	(void)c;
	if (s->streaming) {
		/* The client stopped reading in the middle of a message. */
		s->closing = true;
		mc_info("%s: timeout while sending from=%s", s->id, s->ip);
		mc_conn_abort(s->conn);
		return;
	}
	pop3_reply(s, "-ERR Idle timeout, closing the connection");
	pop3_session_close(s, "timeout");
}

static void
on_tls(struct mc_conn *c, void *arg, bool ok)
{
	struct pop3_session *s = arg;
	if (!ok) {
		mc_info("%s: TLS handshake failed from=%s", s->id, s->ip);
		s->closing = true;
		return;
	}
	s->handshake = false;
	s->tls = true;
	mc_info("%s: tls %s from=%s", s->id, mc_conn_tls_desc(c), s->ip);
	/* Forget anything learned before the handshake (RFC 2595 §4). */
	pop3_cmd_reset_auth(s);
	mc_conn_resume(c);
}

static void
on_read(struct mc_conn *c, void *arg)
{
	(void)c;
	process(arg);
}

static void stream_pump(struct pop3_session *s);

static void
on_drain(struct mc_conn *c, void *arg)
{
	struct pop3_session *s = arg;
	if (s->closing)
		return;
	if (s->streaming) {
		stream_pump(s);
		return;
	}
	/* Reading may have stopped for back-pressure (process): go on, buffered input first. */
	if (!s->busy && !s->handshake)
		mc_conn_resume(c);
}

const struct mc_conn_cbs pop3_session_cbs = {
	.on_read = on_read,
	.on_drain = on_drain,
	.on_tls = on_tls,
	.on_timeout = on_timeout,
	.on_close = on_close,
};

static struct pop3_session *
session_alloc(struct pop3_server *srv)
{
	struct pop3_session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->srv = srv;
	s->st.fd = -1;
	s->state = POP3_ST_AUTH;
	mc_buf_init(&s->out, OUT_MAX);
	return s;
}

static void
session_start(struct pop3_session *s, struct mc_conn *conn, const char *id, bool tls)
{
	struct pop3_server *srv = s->srv;
	s->conn = conn;
	s->tls = tls;
	snprintf(s->id, sizeof(s->id), "%s", id);
	snprintf(s->ip, sizeof(s->ip), "%s", mc_conn_peer_ip(conn));
	s->next = srv->sessions;
	if (srv->sessions)
		srv->sessions->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	mc_info("%s: connect from=%s:%u port=%u tls=%s", s->id, s->ip, mc_conn_peer_port(conn),
		mc_conn_local_port(conn), tls ? "yes" : "no");
	mc_conn_set_timeout(conn, srv->lim.timeout_ms);
	pop3_reply(s, "+OK Postern POP3 server ready");
	pop3_flush(s);
}

void *
pop3_session_new(struct mc_netsvc *svc, const struct mc_netsvc_client *cl, void *arg)
{
	(void)svc;
	struct pop3_session *s = session_alloc(arg);
	if (s == NULL)
		return NULL;
	session_start(s, cl->conn, cl->id, cl->tls);
	return s;
}

void
pop3_server_accept(uv_stream_t *server, int tag, void *arg)
{
	static unsigned counter;
	char id[16];
	(void)tag;
	struct pop3_session *s = session_alloc(arg);
	if (s == NULL)
		mc_panic("out of memory");
	struct mc_conn *c = mc_conn_accept(server, POP3_IN_MAX, &pop3_session_cbs, s);
	if (c == NULL) {
		mc_buf_free(&s->out);
		free(s);
		return;
	}
	snprintf(id, sizeof(id), "P%08X", ++counter);
	session_start(s, c, id, false);
}

/* ---- the input loop ---- */

static void
process(struct pop3_session *s)
{
	struct mc_buf *in = mc_conn_in(s->conn);

	while (!s->busy && !s->closing && !s->streaming && !s->handshake) {
		if (mc_conn_pending_out(s->conn) > OUT_BACKLOG) {
			/* The client sends but does not read: wait for on_drain. */
			pop3_flush(s);
			mc_conn_pause(s->conn);
			return;
		}
		size_t len;
		size_t max = s->sasl_mech ? MC_SASL_LINE_MAX : POP3_LINE_MAX;
		enum mc_line_result r = mc_line_take(&s->lr, in, max, s->line, &len);
		if (r == MC_LINE_NONE)
			break;
		if (r == MC_LINE_TOOLONG) {
			pop3_cmd_too_long(s);
			continue;
		}
		if (mc_trace_on(MC_TRACE_PROTO)) {
			char clean[200];
			bool secret = s->sasl_mech || (len >= 5 && strncasecmp(s->line, "PASS ", 5) == 0) ||
				      (len >= 5 && strncasecmp(s->line, "AUTH ", 5) == 0);
			mc_trace(MC_TRACE_PROTO, "%s: < %s", s->id,
				 secret ? "(credentials)" : mc_log_clean(clean, sizeof(clean), s->line, len));
		}
		if (s->sasl_mech)
			pop3_cmd_sasl_line(s, s->line, len);
		else
			pop3_cmd_run(s, s->line, len);
	}
	if (s->closing || s->handshake)
		return;
	if (!s->busy || mc_buf_line(in) == 0)
		pop3_flush(s);
}

/* ---- RETR and TOP ---- */

/* TOP: how many bytes of p[0..n) to send; sets cut once the last wanted line is in. */
static size_t
top_limit(struct pop3_stream *st, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c != '\n') {
			if (c != '\r')
				st->blank = false;
			continue;
		}
		if (!st->in_body) {
			if (st->blank) {
				st->in_body = true;
				if (st->top_left == 0) {
					st->cut = true;
					return i + 1;
				}
			}
		} else if (--st->top_left == 0) {
			st->cut = true;
			return i + 1;
		}
		st->blank = true;
	}
	return n;
}

/*
 * Send the next pieces of the message: each round is one read of the file
 * and one write to the conn, the reply line before the first piece and
 * the terminator after the last one in that same write (fewer, fuller
 * segments; no short write left waiting on the network).
 */
static void
stream_pump(struct pop3_session *s)
{
	static char in[READ_CHUNK];
	static char out[READ_CHUNK * 2 + 1024];
	struct pop3_stream *st = &s->st;

	while (s->streaming && !s->closing && mc_conn_pending_out(s->conn) < OUT_BACKLOG) {
		size_t olen = 0;
		if (s->out.len) {
			/* The +OK line (at most one short reply is pending here). */
			memcpy(out, s->out.data, s->out.len);
			olen = s->out.len;
			mc_buf_reset(&s->out);
		}
		ssize_t r = 0;
		if (!st->cut && st->left > 0) {
			r = read(st->fd, in, st->left < sizeof(in) ? (size_t)st->left : sizeof(in));
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				/* Half a message may be out: nothing can be said in band. The client sees a cut. */
				mc_warn("%s: read error while sending user=%s: %s", s->id, s->account, strerror(errno));
				stream_end(s);
				s->closing = true;
				mc_conn_abort(s->conn);
				return;
			}
			st->left = r == 0 ? 0 : st->left - (uint64_t)r;   /* shorter than at open: end there */
		}
		size_t n = (size_t)r;
		if (st->top && n)
			n = top_limit(st, in, n);
		size_t pos = 0;
		while (pos < n) {
			size_t k;
			pos += mc_dotstuff_enc(&st->enc, in + pos, n - pos, out + olen, sizeof(out) - 8 - olen, &k);
			olen += k;
			st->sent += k;
			if (pos < n) {
				mc_conn_write(s->conn, out, olen);
				olen = 0;
			}
		}
		bool end = st->left == 0 || st->cut;
		if (end)
			olen += mc_dotstuff_enc_end(&st->enc, out + olen, sizeof(out) - olen, true);
		mc_conn_write(s->conn, out, olen);
		if (end) {
			stream_end(s);
			s->retrieved_bytes += st->sent;
			/* The next pipelined command, from the loop. */
			mc_conn_resume(s->conn);
			return;
		}
	}
}

void
pop3_session_stream(struct pop3_session *s, size_t i, bool top, uint32_t lines)
{
	int fd = pop3_maildrop_open_msg(&s->drop, i);
	if (fd < 0) {
		mc_warn("%s: cannot open message uid=%u user=%s: %s", s->id, s->drop.msgs[i].uid, s->account,
			strerror(errno));
		pop3_reply(s, "-ERR [SYS/TEMP] Cannot read the message now");
		return;
	}
	struct stat sb;
	if (fstat(fd, &sb) < 0) {
		close(fd);
		pop3_reply(s, "-ERR [SYS/TEMP] Cannot read the message now");
		return;
	}
	memset(&s->st, 0, sizeof(s->st));
	s->st.fd = fd;
	s->st.left = (uint64_t)sb.st_size;
	s->st.top = top;
	s->st.top_left = lines;
	s->st.blank = true;
	mc_dotstuff_enc_init(&s->st.enc);
	/* Earlier replies of the batch go now; the +OK goes out with the first piece of the message. */
	pop3_flush(s);
	if (top)
		pop3_reply(s, "+OK Top of message follows");
	else
		pop3_reply(s, "+OK %llu octets", (unsigned long long)s->drop.msgs[i].vsize);
	s->streaming = true;
	mc_conn_pause(s->conn);
	stream_pump(s);
}
