/*
 * session.c - one IMAP client connection: accept, greeting, the input
 * loop, responses, TLS, timeouts, limits, close (RFC 3501 §2.2, §5.4;
 * RFC 7888 literals; RFC 8314 implicit TLS).
 *
 * Called by the network front (mail/netsvc: imapd_server_client for each
 * new client, TLS already up on listen_tls) and by mc_conn's
 * callbacks. Bytes go to the reader (parse.c), which says when a command
 * is complete, when a synchronising literal may come ("+"), and when one
 * is refused before any of it is kept; an APPEND's message literal goes
 * to append.c, which streams it into the store as it arrives. While the
 * user's store is lent to a pool thread (an APPEND commits), the user's
 * other sessions are parked before their next input and resumed when it
 * is back (imapd_session_store_back). At login stale tmp/ files go. Commands run one at a time, in
 * order; while one waits for resolverd or streams a FETCH the connection
 * is paused and pipelined input stays buffered (only STARTTLS discards,
 * inside mc_conn_starttls). Before login the reader's limits are small
 * and the timeout short; the process touches no mailbox before login.
 *
 * Owns the session struct, its reader, its output buffer, its hold on the
 * user's store (stores.c) and its view; the mc_conn is freed by conn.c
 * after on_close, where the session ends: a pending resolverd call is
 * cancelled, the store let go.
 * Never: act on a command before the previous one is answered, keep an
 * unbounded line, touch the connection after on_close.
 */
#include "imapd/imapd.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "mail/daemon.h"
#include "mail/mailstore.h"
#include "mail/netsvc.h"
#include "mail/resolver_client.h"
#include "util/log.h"

/* Responses collected before a write. */
#define OUT_MAX (64 * 1024)
/* Stop reading commands while this much output waits for a client that does not read. */
#define OUT_BACKLOG (256 * 1024)
/* tmp/ entries one login looks at for stale files (mc_store_tmp_sweep): a bounded pause. */
#define TMP_SWEEP_MAX 10000

static void process(struct imapd_session *s);

void
imapd_server_limits(struct imapd_server *srv, const struct mc_config *cfg)
{
	struct imapd_limits *l = &srv->lim;
	snprintf(l->hostname, sizeof(l->hostname), "%s", cfg->global.hostname);
	l->max_connections = cfg->imapd.max_connections;
	l->timeout_ms = cfg->imapd.timeout * 1000u;   /* default 30m: RFC 3501 §5.4's minimum */
	l->plain_auth = cfg->imapd.allow_plaintext_auth;
	l->sep = cfg->imapd.hierarchy_separator == '/' ? '/' : '.';
	l->append_max = cfg->smtpd.max_message_size;
	if (l->append_max > UINT32_MAX)
		l->append_max = UINT32_MAX;   /* a literal's length is a 32-bit number */
}

void
imapd_server_init(struct imapd_server *srv, uv_loop_t *loop, const struct mc_config *cfg)
{
	memset(srv, 0, sizeof(*srv));
	srv->loop = loop;
	imapd_server_limits(srv, cfg);
	snprintf(srv->mail_root, sizeof(srv->mail_root), "%s/mail/", cfg->global.state_dir);
}

bool
imapd_session_auth_allowed(const struct imapd_session *s)
{
	return mc_netsvc_plain_auth_ok(s->conn, s->srv->lim.plain_auth);
}

/* ---- output ---- */

void
imapd_flush(struct imapd_session *s)
{
	if (s->conn == NULL)
		return;
	if (s->out.len) {
		if (mc_trace_on(MC_TRACE_PROTO)) {
			char clean[256];
			mc_trace(MC_TRACE_PROTO, "%s: > %s", s->id,
				 mc_log_clean(clean, sizeof(clean), s->out.data, s->out.len));
		}
		mc_conn_write(s->conn, s->out.data, s->out.len);
		mc_buf_reset(&s->out);
	}
	/* COMPRESS (compress.c): a batch of responses ends here, and goes out in one sync flush. */
	mc_conn_flush(s->conn);
	imapd_compress_batch_done(s);
}

void
imapd_send_raw(struct imapd_session *s, const void *p, size_t n)
{
	if (mc_buf_add(&s->out, p, n) == 0)
		return;
	imapd_flush(s);
	if (mc_buf_add(&s->out, p, n) < 0 && s->conn)
		mc_conn_write(s->conn, p, n);
}

static void
vsend(struct imapd_session *s, const char *fmt, va_list ap)
{
	char line[2048];
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line) - 2)
		n = (int)sizeof(line) - 3;
	line[n++] = '\r';
	line[n++] = '\n';
	imapd_send_raw(s, line, (size_t)n);
}

void
imapd_send(struct imapd_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsend(s, fmt, ap);
	va_end(ap);
}

void
imapd_send_string(struct imapd_session *s, const char *str, size_t len)
{
	bool quotable = len < 1024;
	for (size_t i = 0; quotable && i < len; i++) {
		unsigned char c = (unsigned char)str[i];
		if (c == '\0' || c == '\r' || c == '\n' || (c >= 0x80 && !s->utf8))
			quotable = false;
	}
	if (!quotable) {
		char hdr[32];
		int n = snprintf(hdr, sizeof(hdr), "{%zu}\r\n", len);
		imapd_send_raw(s, hdr, (size_t)n);
		imapd_send_raw(s, str, len);
		return;
	}
	imapd_send_raw(s, "\"", 1);
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		if (str[i] == '"' || str[i] == '\\') {
			imapd_send_raw(s, str + start, i - start);
			imapd_send_raw(s, "\\", 1);
			start = i;
		}
	}
	imapd_send_raw(s, str + start, len - start);
	imapd_send_raw(s, "\"", 1);
}

void
imapd_done(struct imapd_session *s, const char *status, const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (strcmp(status, "BAD") == 0)
		s->errors++;
	else if (s->state == IMAPD_SELECTED && s->view)
		imapd_view_sync(s, s->expunge_ok);
	imapd_send(s, "%s %s %s", s->cmdtag[0] ? s->cmdtag : "*", status, text);
}

/* ---- states and lifetime ---- */

void
imapd_session_close(struct imapd_session *s, const char *bye, const char *why)
{
	if (s->closing)
		return;
	if (bye)
		imapd_send(s, "* BYE %s", bye);
	imapd_flush(s);
	s->closing = true;
	s->state = IMAPD_LOGOUT;
	if (why)
		mc_info("%s: %s from [%s]%s%s", s->id, why, s->ip, s->user[0] ? " user=" : "", s->user);
	mc_conn_close(s->conn);
}

void
imapd_session_wait(struct imapd_session *s)
{
	s->busy = true;
	mc_conn_pause(s->conn);
}

void
imapd_session_go(struct imapd_session *s)
{
	s->busy = false;
	if (s->closing)
		return;
	imapd_flush(s);
	mc_conn_resume(s->conn);
}

static void
set_limits(struct imapd_session *s)
{
	struct imap_reader_limits l;
	if (s->state == IMAPD_NOTAUTH) {
		l = (struct imap_reader_limits){ IMAPD_PRE_LINE_MAX, IMAPD_PRE_LITERAL_MAX, IMAPD_PRE_COMMAND_MAX, 0 };
		mc_conn_set_timeout(s->conn, IMAPD_PRE_TIMEOUT_MS);
	} else {
		/* APPEND's message is streamed into the store (append.c), bounded by APPENDLIMIT, not by these. */
		l = (struct imap_reader_limits){ IMAPD_LINE_MAX, IMAPD_LITERAL_MAX, IMAPD_COMMAND_MAX, true };
		mc_conn_set_timeout(s->conn, s->srv->lim.timeout_ms);
	}
	imap_reader_set_limits(&s->rd, &l);
}

int
imapd_session_login(struct imapd_session *s, const char *user, const char *home)
{
	char err[256];
	size_t rootlen = strlen(s->srv->mail_root);
	/* resolverd names the store; it must lie inside the mail store, and not climb out of it. */
	if (strncmp(home, s->srv->mail_root, rootlen) != 0 || strstr(home, "/../") || strlen(home) <= rootlen) {
		mc_warn("%s: login user=%s: mailbox path outside the mail store: %s", s->id, user, home);
		imapd_done(s, "NO", "[SERVERBUG] Mailbox not available");
		return -1;
	}
	s->store = imapd_store_get(home, err, sizeof(err));
	if (s->store == NULL) {
		mc_warn("%s: login user=%s: cannot open the mail store: %s", s->id, user, err);
		imapd_done(s, "NO", "[UNAVAILABLE] Mailbox not available, try again later");
		return -1;
	}
	snprintf(s->user, sizeof(s->user), "%s", user);
	snprintf(s->home, sizeof(s->home), "%s", home);
	s->state = IMAPD_AUTH;
	set_limits(s);
	/*
	 * A store lent to a pool thread (another session's APPEND commits) was
	 * opened by that session's login, which made the defaults and swept
	 * tmp/ already: nothing is left to do on it, and nothing may be done.
	 */
	if (!imapd_store_lent(s->store)) {
		imapd_mailbox_defaults(s);
		bool bounded;
		int n = mc_store_tmp_sweep(s->store, MC_STORE_TMP_STALE, TMP_SWEEP_MAX, &bounded);
		if (n > 0 || bounded)
			mc_info("%s: removed %d stale files from tmp/ user=%s%s", s->id, n, s->user,
				bounded ? " (more next time)" : "");
		else if (n < 0)
			mc_warn("%s: cannot sweep tmp/ of user=%s: the index lists no mailboxes", s->id, s->user);
	}
	return 0;
}

/* Parked until the store is back (imapd_session_store_back); a FETCH keeps its own pause. */
static void
park(struct imapd_session *s)
{
	s->store_wait = true;
	imapd_flush(s);
	if (s->fetch)
		mc_conn_pause(s->conn);
	else
		imapd_session_wait(s);
}

void
imapd_session_store_back(struct imapd_server *srv, struct mc_store *store)
{
	/*
	 * The parked sessions first, here and now: a queue of one user's
	 * APPENDs taking the store in turn must not starve the user's other
	 * commands. One of them may lend it again (its own APPEND): the rest
	 * stay parked until that one is back.
	 */
	for (struct imapd_session *s = srv->sessions; s; s = s->next) {
		if (s->store != store || s->closing)
			continue;
		if (imapd_store_lent(store))
			return;
		if (s->store_wait) {
			s->store_wait = false;
			if (s->fetch) {
				imapd_fetch_resume(s);
			} else {
				s->busy = false;
				mc_conn_resume(s->conn);
				process(s);
			}
		} else if (s->idle_missed) {
			imapd_idle_missed(s);
		}
	}
	/* Then an APPEND whose file is ready and waits to commit. */
	for (struct imapd_session *s = srv->sessions; s; s = s->next)
		if (s->store == store && !s->closing && s->append && imapd_append_store_back(s))
			return;
}

static void
greet(struct imapd_session *s)
{
	char caps[1024];
	s->greeted = true;
	s->state = IMAPD_NOTAUTH;
	set_limits(s);
	imapd_capabilities(s, caps, sizeof(caps));
	imapd_send(s, "* OK [CAPABILITY %s] %s Postern IMAP ready", caps, s->srv->lim.hostname);
	imapd_flush(s);
}

static void
on_close(struct mc_conn *c, void *arg, const char *why)
{
	struct imapd_session *s = arg;
	struct imapd_server *srv = s->srv;

	if (s->res_call)
		mc_resolver_cancel(srv->res, s->res_call);
	s->res_call = 0;
	imapd_append_free(s);   /* a message half received: its tmp/ file goes, nothing is indexed */
	imapd_expunge_free(s);
	imapd_fetch_free(s);
	imapd_view_free(s);
	imapd_store_put(s->store, s->store_idle);
	s->store = NULL;
	imapd_procs_idle(s, false);
	mc_info("%s: disconnect from [%s]%s%s commands=%u reason=%s", s->id, s->ip, s->user[0] ? " user=" : "",
		s->user, s->ncommands, why ? why : "closed");
	imap_reader_free(&s->rd);
	if (s->prev)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	mc_buf_free(&s->out);
	imapd_uidset_free(&s->dollar);
	free(s);
	(void)c;
}

static void
on_timeout(struct mc_conn *c, void *arg)
{
	struct imapd_session *s = arg;
	imapd_session_close(s, "Autologout; idle for too long", "timeout");
	(void)c;
}

static void
on_tls(struct mc_conn *c, void *arg, bool ok)
{
	struct imapd_session *s = arg;
	if (!ok) {
		mc_info("%s: TLS handshake failed from [%s]", s->id, s->ip);
		s->closing = true;
		return;
	}
	s->tls = true;
	s->wait = IMAPD_W_NONE;
	mc_info("%s: tls %s from [%s]", s->id, mc_conn_tls_desc(c), s->ip);
	if (!s->greeted) {
		greet(s);
		return;
	}
	/* Nothing pipelined behind STARTTLS was kept (mc_conn_starttls); the reader starts afresh. */
	imap_reader_next(&s->rd);
	set_limits(s);
	mc_conn_resume(c);
}

static void
on_read(struct mc_conn *c, void *arg)
{
	process(arg);
	(void)c;
}

static void
on_drain(struct mc_conn *c, void *arg)
{
	struct imapd_session *s = arg;
	if (s->closing)
		return;
	if (s->fetch) {
		if (s->store_wait)
			return;   /* resumed when the store is back */
		if (imapd_store_lent(s->store)) {
			park(s);
			return;
		}
		imapd_fetch_resume(s);
		return;
	}
	if (!s->busy && s->wait != IMAPD_W_TLS)
		mc_conn_resume(c);
}

const struct mc_conn_cbs imapd_session_cbs = {
	.on_read = on_read,
	.on_drain = on_drain,
	.on_tls = on_tls,
	.on_timeout = on_timeout,
	.on_close = on_close,
};

void *
imapd_server_client(struct mc_netsvc *svc, const struct mc_netsvc_client *cl, void *arg)
{
	struct imapd_server *srv = arg;
	struct imapd_session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->srv = srv;
	s->conn = cl->conn;
	s->state = IMAPD_NOTAUTH;
	s->tls = cl->tls;
	mc_buf_init(&s->out, OUT_MAX);
	struct imap_reader_limits l = { IMAPD_PRE_LINE_MAX, IMAPD_PRE_LITERAL_MAX, IMAPD_PRE_COMMAND_MAX, 0 };
	imap_reader_init(&s->rd, &l);
	snprintf(s->id, sizeof(s->id), "%s", cl->id);
	snprintf(s->ip, sizeof(s->ip), "%s", cl->ip);
	s->next = srv->sessions;
	if (srv->sessions)
		srv->sessions->prev = s;
	srv->sessions = s;
	mc_info("%s: connect from [%s]:%u port=%u tls=%s", s->id, s->ip, cl->port, mc_conn_local_port(s->conn),
		s->tls ? "yes" : "no");
	greet(s);
	(void)svc;
	return s;
}

void
imapd_session_shutdown(void *session)
{
	imapd_session_close(session, "Server shutting down", "shutdown");
}

/* ---- the input loop ---- */

static void
run_command(struct imapd_session *s, char *cmd, size_t len)
{
	if (mc_trace_on(MC_TRACE_PROTO)) {
		char clean[200];
		mc_trace(MC_TRACE_PROTO, "%s: < %s", s->id,
			 s->wait == IMAPD_W_SASL ? "(sasl)" : mc_log_clean(clean, sizeof(clean), cmd, len));
	}
	switch (s->wait) {
	case IMAPD_W_SASL:
		imapd_auth_line(s, cmd, len);
		break;
	case IMAPD_W_IDLE:
		imapd_idle_line(s, cmd, len);
		break;
	default:
		imapd_cmd_run(s, cmd, len);
		break;
	}
}

static void
process(struct imapd_session *s)
{
	struct mc_buf *in = mc_conn_in(s->conn);

	while (!s->busy && !s->closing && s->wait != IMAPD_W_TLS && s->fetch == NULL) {
		if (mc_conn_pending_out(s->conn) > OUT_BACKLOG) {
			imapd_flush(s);
			mc_conn_pause(s->conn);
			return;
		}
		if (in->len == 0)
			break;
		/* Another session of this user commits an APPEND with the store on a pool thread: wait for it. */
		if (s->store && imapd_store_lent(s->store)) {
			park(s);
			return;
		}
		size_t used;
		enum imap_rd r = imap_reader_feed(&s->rd, in->data, in->len, &used);
		if (r == IMAP_RD_DATA) {
			imapd_append_data(s, in->data, used);   /* APPEND's message, straight to its file */
			mc_buf_consume(in, used);
			continue;
		}
		mc_buf_consume(in, used);
		if (r == IMAP_RD_LITERAL)
			r = imapd_append_literal(s);   /* checked before "+": kept, streamed, or refused */
		switch (r) {
		case IMAP_RD_MORE:
		case IMAP_RD_LITERAL:
		case IMAP_RD_DATA:
			break;
		case IMAP_RD_CONTINUE:
			imapd_send(s, "+ Ready for literal data");
			imapd_flush(s);
			break;
		case IMAP_RD_REFUSED:
			s->errors++;
			mc_info("%s: refused a literal from [%s]: %s", s->id, s->ip, s->rd.why);
			if (strcmp(s->rd.why, "literal too big") == 0)
				imapd_send(s, "%s NO [TOOBIG] Literal too big", s->rd.tag);
			else
				imapd_send(s, "%s BAD %s", s->rd.tag, s->rd.why);
			if (s->wait == IMAPD_W_SASL || s->wait == IMAPD_W_IDLE)
				s->wait = IMAPD_W_NONE;
			imapd_procs_idle(s, false);
			break;
		case IMAP_RD_FATAL:
			mc_info("%s: input refused from [%s]: %s", s->id, s->ip, s->rd.why);
			imapd_session_close(s, "[TOOBIG] Input too long", NULL);
			return;
		case IMAP_RD_COMMAND: {
			size_t len;
			char *cmd = imap_reader_command(&s->rd, &len);
			if (s->append)
				imapd_append_end(s, cmd, len);
			else
				run_command(s, cmd, len);
			OPENSSL_cleanse(cmd, len);   /* credentials pass through here */
			imap_reader_next(&s->rd);
			break;
		}
		}
		if (s->errors >= IMAPD_MAX_ERRORS && !s->closing) {
			imapd_session_close(s, "Too many errors", "too many errors");
			return;
		}
	}
	if (!s->closing)
		imapd_flush(s);
}

