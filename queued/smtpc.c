/*
 * smtpc.c - one outbound SMTP connection: queued's SMTP client.
 *
 * Called by relay.c, which owns the choice of host and address, the
 * connection cache and the limits; this file owns one connection's
 * dialogue on libmailcore's conn (uv_tcp + OpenSSL client TLS):
 *
 *   connect, 220 greeting, EHLO (HELO when EHLO is refused), STARTTLS when
 *   offered (or required) and then EHLO again with everything learned
 *   before forgotten (RFC 3207), AUTH PLAIN or LOGIN to a relayhost (over
 *   TLS only), then ready; per job: RSET unless first, MAIL FROM with
 *   SIZE=, BODY=8BITMIME, SMTPUTF8 and the DSN parameters the server
 *   offers, RCPT TO per destination, DATA - grouped in one write when
 *   PIPELINING is offered (RFC 2920) - the body streamed from the queue
 *   file through the dot-stuffing encoder (CRLF line ends and stuffed dots
 *   on the wire whatever the file holds; bounded memory: one chunk read
 *   at a time, the next only when the socket has drained), and the final
 *   dot; a 452 to RCPT sends the rest in a further transaction; QUIT.
 *
 * Outcomes per destination: 2xx delivered, 4xx deferred, 5xx refused for
 * good; 5xx/4xx to MAIL or DATA applies to every destination of that
 * transaction; a connection lost, a timeout or a 421 after the final dot
 * defers, never bounces. Replies are read with mail/smtp_reply.c (bounded,
 * cleaned). Never: send a message larger than the server's SIZE, send
 * AUTH without TLS, act on bytes received before the TLS handshake, or
 * hold a whole message in memory.
 */
#include "queued/queued.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "mail/dotstuff.h"
#include "util/conn.h"
#include "util/log.h"

#define IN_MAX (16 * 1024)      /* replies are taken as they come; this bounds one read */
#define CHUNK (32 * 1024)       /* body bytes read from the queue file at a time */
#define CMD_MAX 2048

enum st {
	C_CONNECT, C_GREET, C_EHLO, C_HELO, C_STARTTLS, C_TLS, C_AUTH, C_AUTH_USER, C_AUTH_PASS,
	C_READY, C_RSET, C_TXN, C_BODY, C_DOT, C_QUIT, C_GONE
};

struct q_smtpc {
	struct mc_conn *conn;
	uv_loop_t *loop;
	struct q_smtpc_opts o;
	char host[256], ip[64], relay[320];
	unsigned port;
	struct q_smtpc_cbs cbs;
	void *arg;
	enum st st;
	struct mc_smtp_reply rep;
	struct mc_smtp_ehlo ext;
	bool esmtp, tls_tried, tls_failed, ready, perm;
	unsigned txns;               /* transactions started on this connection */
	char why[Q_ERR_MAX];

	/* the job in hand and its transaction */
	struct q_rjob *job;
	unsigned *t_idx;             /* the job's destinations in this transaction */
	unsigned t_n;
	unsigned t_sent;             /* commands sent: 0 MAIL, 1..t_n RCPT, t_n+1 DATA */
	unsigned t_got;              /* replies read, in the same numbering */
	bool mail_ok;
	unsigned accepted;
	int mail_code;
	char mail_reply[Q_ERR_MAX];
	char mail_dsn[MC_SMTP_ESC_MAX];
	bool dot_only;               /* 354 with nobody accepted: send "." and ignore the reply */
	bool rset_first;
	bool cancelled;              /* aborted by the relay (stop): nothing more is settled */             /* the RSET before a job on a used connection is under way */

	/* the body */
	uv_fs_t fs;
	bool fs_busy;
	int fd;
	int64_t off;
	bool eof, want_read;
	struct mc_dotstuff_enc enc;
	char in[CHUNK];
	char out[2 * CHUNK + 16];
	bool conn_closed;            /* on_close has run: free once no file request is in flight */
};

static void fail(struct q_smtpc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void txn_begin(struct q_smtpc *c);
static void read_next(struct q_smtpc *c);

/* ---- small things ---- */

/* snprintf for texts that may be cut (reasons, log text): cutting is expected, not a mistake. */
static void say(char *out, size_t outsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
say(char *out, size_t outsz, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out, outsz, fmt, ap);
	va_end(ap);
}

static const char *
dsn_class(int code, const char *esc, const char *fallback4, const char *fallback5)
{
	if (esc && esc[0])
		return esc;
	return code >= 500 ? fallback5 : code >= 400 ? fallback4 : "2.0.0";
}

static void
b64(char *out, size_t outsz, const unsigned char *in, size_t n)
{
	if (outsz < 4 * ((n + 2) / 3) + 1) {
		out[0] = '\0';
		return;
	}
	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

static int
cmd(struct q_smtpc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
cmd(struct q_smtpc *c, const char *fmt, ...)
{
	char line[CMD_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2)
		return -1;
	mc_trace(MC_TRACE_PROTO, "smtpc %s: > %.*s", c->relay, strncmp(line, "AUTH", 4) == 0 ? 10 : n, line);
	memcpy(line + n, "\r\n", 2);
	return mc_conn_write(c->conn, line, (size_t)n + 2);
}

static bool
is_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

bool
q_smtpc_needs_utf8(const struct mc_envelope *e)
{
	if (!(e->flags & MC_ENV_SMTPUTF8))
		return false;
	if (!is_ascii(e->sender))
		return true;
	for (uint32_t i = 0; i < e->nrcpt; i++)
		if (!is_ascii(e->rcpt[i].addr))
			return true;
	return false;
}

int
q_smtpc_mail_cmd(char *out, size_t outsz, const struct mc_envelope *e, const struct mc_smtp_ehlo *ext)
{
	int n = snprintf(out, outsz, "MAIL FROM:<%s>", e->sender);
	size_t o = n < 0 ? outsz : (size_t)n;
#define ADD(...)                                                                  \
	do {                                                                      \
		if (o < outsz) {                                                  \
			int k = snprintf(out + o, outsz - o, __VA_ARGS__);       \
			o = k < 0 ? outsz : o + (size_t)k;                        \
		}                                                                 \
	} while (0)
	if (ext->size)
		ADD(" SIZE=%llu", (unsigned long long)e->size);
	if ((e->flags & (MC_ENV_8BITMIME | MC_ENV_BINARYMIME)) && ext->eightbitmime)
		ADD(" BODY=8BITMIME");
	if ((e->flags & MC_ENV_SMTPUTF8) && ext->smtputf8)
		ADD(" SMTPUTF8");
	if (ext->dsn) {
		if (e->flags & MC_ENV_RET_FULL)
			ADD(" RET=FULL");
		else if (e->flags & MC_ENV_RET_HDRS)
			ADD(" RET=HDRS");
		if (e->envid[0])
			ADD(" ENVID=%s", e->envid);
	}
	return o < outsz ? 0 : -1;
}

int
q_smtpc_rcpt_cmd(char *out, size_t outsz, const char *addr, const struct mc_rcpt *orig,
		 const struct mc_smtp_ehlo *ext)
{
	int n = snprintf(out, outsz, "RCPT TO:<%s>", addr);
	size_t o = n < 0 ? outsz : (size_t)n;
	if (ext->dsn && orig) {
		if (orig->notify & MC_NOTIFY_NEVER) {
			ADD(" NOTIFY=NEVER");
		} else if (orig->notify) {
			const char *sep = " NOTIFY=";
			if (orig->notify & MC_NOTIFY_SUCCESS) {
				ADD("%sSUCCESS", sep);
				sep = ",";
			}
			if (orig->notify & MC_NOTIFY_FAILURE) {
				ADD("%sFAILURE", sep);
				sep = ",";
			}
			if (orig->notify & MC_NOTIFY_DELAY)
				ADD("%sDELAY", sep);
		}
		if (orig->orcpt[0])
			ADD(" ORCPT=%s", orig->orcpt);
	}
#undef ADD
	return o < outsz ? 0 : -1;
}

/* ---- outcomes ---- */

static void
settle(struct q_smtpc *c, struct q_rdest *d, enum q_rres res, const char *dsn, const char *reply)
{
	if (d->res != Q_RR_NONE)
		return;
	d->res = res;
	d->remote_dsn = res == Q_RR_OK && c->ext.dsn;
	snprintf(d->dsn, sizeof(d->dsn), "%s", dsn);
	snprintf(d->reply, sizeof(d->reply), "%s", reply);
	snprintf(c->job->relay, sizeof(c->job->relay), "%s", c->relay);
}

/* Every destination of the job still open gets this outcome. */
static void
settle_all(struct q_smtpc *c, enum q_rres res, const char *dsn, const char *reply)
{
	for (unsigned i = 0; i < c->job->n; i++) {
		c->job->d[i]->again = false;
		settle(c, c->job->d[i], res, dsn, reply);
	}
}

static void
job_finish(struct q_smtpc *c)
{
	struct q_rjob *j = c->job;
	c->job = NULL;
	free(c->t_idx);
	c->t_idx = NULL;
	c->st = C_READY;
	mc_conn_set_timeout(c->conn, 0);
	c->cbs.on_done(c, c->arg, j);
}

/* ---- the connection going away ---- */

static void
free_if_done(struct q_smtpc *c)
{
	if (c->conn_closed && !c->fs_busy) {
		if (c->fd >= 0) {
			uv_fs_t req;
			uv_fs_close(NULL, &req, c->fd, NULL);   /* a close, not file I/O: fine on the loop */
			uv_fs_req_cleanup(&req);
		}
		free(c->t_idx);
		free(c);
	}
}

static void
on_close(struct mc_conn *conn, void *arg, const char *why)
{
	struct q_smtpc *c = arg;
	(void)conn;
	if (c->tls_tried && !c->tls_failed && !c->ready && (c->st == C_TLS || c->st == C_EHLO)) {
		/* the server hung up during the handshake or right after it (TLS 1.3 checks a client
		 * certificate after the client is done): a failed handshake, retried in plaintext */
		c->tls_failed = true;
		say(c->why, sizeof(c->why), "TLS handshake with %s failed (%s)", c->relay, why);
	}
	if (c->why[0] == '\0') {
		if (c->st == C_QUIT || (c->st == C_READY && c->job == NULL))
			say(c->why, sizeof(c->why), "%s", why);
		else
			say(c->why, sizeof(c->why), "lost connection with %s (%s)", c->relay, why);
	}
	struct q_smtpc_gone g = { .why = c->why, .ready = c->ready, .tls_failed = c->tls_failed, .perm = c->perm };
	if (c->job) {
		if (c->job->started && !c->cancelled) {
			/* whatever is not settled yet: the message may or may not have arrived; try again later */
			for (unsigned i = 0; i < c->job->n; i++)
				c->job->d[i]->again = false;
			settle_all(c, Q_RR_TEMP, "4.4.2", c->why);
		}
		g.job = c->job;
		c->job = NULL;
	}
	c->st = C_GONE;
	c->conn = NULL;
	c->conn_closed = true;
	c->cbs.on_gone(c, c->arg, &g);
	free_if_done(c);
}

static void
fail(struct q_smtpc *c, const char *fmt, ...)
{
	if (c->st == C_GONE || c->conn == NULL)
		return;
	if (c->why[0] == '\0') {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->why, sizeof(c->why), fmt, ap);
		va_end(ap);
	}
	mc_conn_abort(c->conn);
}

/* A reply that ends the attempt before the connection was ready: QUIT politely and go. */
static void
refuse(struct q_smtpc *c, const char *what)
{
	char r[Q_ERR_MAX];
	mc_smtp_reply_format(&c->rep, r, sizeof(r));
	say(c->why, sizeof(c->why), "host %s refused to talk to me: %s (in reply to %s)", c->relay, r, what);
	c->perm = c->rep.code >= 500;
	cmd(c, "QUIT");
	c->st = C_QUIT;
	mc_conn_close(c->conn);
}

/* ---- the dialogue before mail ---- */

static void
send_ehlo(struct q_smtpc *c)
{
	c->st = C_EHLO;
	cmd(c, "EHLO %s", c->o.helo);
}

static void
become_ready(struct q_smtpc *c)
{
	c->st = C_READY;
	c->ready = true;
	mc_conn_set_timeout(c->conn, 0);
	mc_trace(MC_TRACE_QUEUE, "smtpc %s: ready%s%s", c->relay, c->esmtp ? " esmtp" : "",
		 mc_conn_is_tls(c->conn) ? " tls" : "");
	c->cbs.on_ready(c, c->arg);
}

static void
after_ehlo(struct q_smtpc *c)
{
	bool tls = mc_conn_is_tls(c->conn);
	if (!tls && !c->tls_tried && c->o.tls != MC_OUTTLS_NONE && c->ext.starttls && c->o.tls_ctx) {
		c->tls_tried = true;
		c->st = C_STARTTLS;
		cmd(c, "STARTTLS");
		return;
	}
	if (!tls && (c->o.tls == MC_OUTTLS_ENCRYPT || c->o.auth_user)) {
		say(c->why, sizeof(c->why), "TLS is required, but host %s does not offer STARTTLS%s", c->relay,
			 c->tls_tried ? " successfully" : "");
		cmd(c, "QUIT");
		c->st = C_QUIT;
		mc_conn_close(c->conn);
		return;
	}
	if (c->o.auth_user) {
		char buf[1200];
		if (c->ext.auth_plain) {
			unsigned char raw[800];
			size_t u = strlen(c->o.auth_user), p = strlen(c->o.auth_pass);
			if (u + p + 2 > sizeof(raw)) {
				fail(c, "relayhost credentials too long");
				return;
			}
			raw[0] = '\0';
			memcpy(raw + 1, c->o.auth_user, u);
			raw[1 + u] = '\0';
			memcpy(raw + 2 + u, c->o.auth_pass, p);
			b64(buf, sizeof(buf), raw, u + p + 2);
			explicit_bzero(raw, sizeof(raw));
			c->st = C_AUTH;
			cmd(c, "AUTH PLAIN %s", buf);
			explicit_bzero(buf, sizeof(buf));
		} else if (c->ext.auth_login) {
			c->st = C_AUTH_USER;
			cmd(c, "AUTH LOGIN");
		} else {
			say(c->why, sizeof(c->why), "host %s offers no AUTH PLAIN or LOGIN", c->relay);
			cmd(c, "QUIT");
			c->st = C_QUIT;
			mc_conn_close(c->conn);
		}
		return;
	}
	become_ready(c);
}

static void
on_tls(struct mc_conn *conn, void *arg, bool ok)
{
	struct q_smtpc *c = arg;
	if (!ok) {
		c->tls_failed = true;
		say(c->why, sizeof(c->why), "TLS handshake with %s failed", c->relay);
		return;   /* the conn is closing; on_close reports */
	}
	mc_trace(MC_TRACE_TLS, "smtpc %s: TLS up %s", c->relay, mc_conn_tls_desc(conn));
	/* RFC 3207 §4.2: forget what the server said before; start again with EHLO */
	memset(&c->ext, 0, sizeof(c->ext));
	mc_smtp_reply_init(&c->rep);
	mc_conn_set_timeout(c->conn, c->o.cmd_ms);
	send_ehlo(c);
}

static void
handle_setup_reply(struct q_smtpc *c)
{
	int code = c->rep.code;
	char buf[1200];
	switch (c->st) {
	case C_GREET:
		if (code != 220)
			return refuse(c, "the greeting");
		send_ehlo(c);
		break;
	case C_EHLO:
		if (code == 250) {
			c->esmtp = true;
			mc_smtp_ehlo_parse(&c->rep, &c->ext);
			after_ehlo(c);
		} else if (code >= 500 && !mc_conn_is_tls(c->conn)) {
			c->st = C_HELO;
			cmd(c, "HELO %s", c->o.helo);
		} else {
			refuse(c, "EHLO");
		}
		break;
	case C_HELO:
		if (code != 250)
			return refuse(c, "HELO");
		memset(&c->ext, 0, sizeof(c->ext));
		after_ehlo(c);
		break;
	case C_STARTTLS:
		if (code == 220) {
			c->st = C_TLS;
			if (mc_conn_starttls(c->conn, c->o.tls_ctx, false, c->host) < 0) {
				c->tls_failed = true;
				fail(c, "cannot start TLS with %s", c->relay);
			}
			return;
		}
		/* refused: plaintext goes on when TLS is only opportunistic (after_ehlo decides) */
		after_ehlo(c);
		break;
	case C_AUTH:
		if (code != 235)
			return refuse(c, "AUTH");
		become_ready(c);
		break;
	case C_AUTH_USER:
	case C_AUTH_PASS:
		/* AUTH LOGIN: 334 for the user name, then 334 for the password */
		if (code != 334)
			return refuse(c, "AUTH");
		const char *v = c->st == C_AUTH_USER ? c->o.auth_user : c->o.auth_pass;
		b64(buf, sizeof(buf), (const unsigned char *)v, strlen(v));
		c->st = c->st == C_AUTH_USER ? C_AUTH_PASS : C_AUTH;
		cmd(c, "%s", buf);
		explicit_bzero(buf, sizeof(buf));
		break;
	default:
		break;
	}
}

/* ---- transactions ---- */

static void
txn_end(struct q_smtpc *c)
{
	struct q_rjob *j = c->job;
	bool more = false;
	for (unsigned i = 0; i < j->n; i++)
		if (j->d[i]->res == Q_RR_NONE && j->d[i]->again)
			more = true;
	if (more && c->accepted > 0) {
		/* 452: the server took some; the rest go in the next transaction */
		txn_begin(c);
		return;
	}
	/* nothing more to try here: what is still open gets the last word */
	for (unsigned i = 0; i < j->n; i++) {
		struct q_rdest *d = j->d[i];
		if (d->res == Q_RR_NONE) {
			d->again = false;
			settle(c, d, Q_RR_TEMP, d->dsn[0] ? d->dsn : "4.5.3",
			       d->reply[0] ? d->reply : "too many recipients, and none accepted");
		}
	}
	job_finish(c);
}

static void
send_rcpt(struct q_smtpc *c, unsigned k)
{
	char line[CMD_MAX];
	struct q_rdest *d = c->job->d[c->t_idx[k]];
	struct q_msg *m = c->job->m;
	if (q_smtpc_rcpt_cmd(line, sizeof(line), d->addr, &m->env.rcpt[d->r - m->rs], &c->ext) < 0)
		snprintf(line, sizeof(line), "RCPT TO:<%s>", d->addr);
	cmd(c, "%s", line);
}

/* Send what may be sent now: everything at once with PIPELINING, else the next command. */
static void
txn_push(struct q_smtpc *c)
{
	unsigned last = c->t_n + 1;
	while (c->t_sent <= last) {
		if (c->t_sent > c->t_got && !c->ext.pipelining)
			break;
		if (c->t_sent == 0) {
			char line[CMD_MAX];
			if (q_smtpc_mail_cmd(line, sizeof(line), &c->job->m->env, &c->ext) < 0)
				snprintf(line, sizeof(line), "MAIL FROM:<%s>", c->job->m->env.sender);
			c->job->started = true;
			cmd(c, "%s", line);
		} else if (c->t_sent <= c->t_n) {
			send_rcpt(c, c->t_sent - 1);
		} else {
			cmd(c, "DATA");
		}
		c->t_sent++;
	}
}

static void
txn_begin(struct q_smtpc *c)
{
	struct q_rjob *j = c->job;
	struct q_msg *m = j->m;
	c->t_n = 0;
	for (unsigned i = 0; i < j->n; i++) {
		struct q_rdest *d = j->d[i];
		if (d->res != Q_RR_NONE)
			continue;
		if (c->txns > 0 && j->started && !d->again)
			continue;
		d->again = false;
		d->accepted = false;
		c->t_idx[c->t_n++] = i;
	}
	if (c->t_n == 0) {
		job_finish(c);
		return;
	}
	if (c->ext.size && c->ext.size_max && m->env.size > c->ext.size_max) {
		char why[Q_ERR_MAX];
		say(why, sizeof(why), "message size %llu exceeds size limit %llu of server %s",
			 (unsigned long long)m->env.size, (unsigned long long)c->ext.size_max, c->relay);
		settle_all(c, Q_RR_PERM, "5.3.4", why);
		job_finish(c);
		return;
	}
	if (!c->ext.smtputf8 && q_smtpc_needs_utf8(&m->env)) {
		char why[Q_ERR_MAX];
		say(why, sizeof(why), "SMTPUTF8 is required, but was not offered by host %s", c->relay);
		settle_all(c, Q_RR_PERM, "5.6.7", why);
		job_finish(c);
		return;
	}
	c->txns++;
	c->t_sent = c->t_got = 0;
	c->mail_ok = false;
	c->accepted = 0;
	c->dot_only = false;
	c->st = C_TXN;
	mc_conn_set_timeout(c->conn, c->o.cmd_ms);
	txn_push(c);
}

static void
start_body(struct q_smtpc *c);

static void
handle_txn_reply(struct q_smtpc *c)
{
	int code = c->rep.code;
	char r[Q_ERR_MAX];
	mc_smtp_reply_format(&c->rep, r, sizeof(r));
	unsigned k = c->t_got++;
	struct q_rjob *j = c->job;
	if (k == 0) {                                  /* MAIL */
		c->mail_ok = code / 100 == 2;
		c->mail_code = code;
		snprintf(c->mail_reply, sizeof(c->mail_reply), "%s", r);
		snprintf(c->mail_dsn, sizeof(c->mail_dsn), "%s", dsn_class(code, c->rep.esc, "4.0.0", "5.0.0"));
		if (!c->mail_ok) {
			for (unsigned i = 0; i < c->t_n; i++)
				settle(c, j->d[c->t_idx[i]], code >= 500 ? Q_RR_PERM : Q_RR_TEMP, c->mail_dsn,
				       c->mail_reply);
			if (!c->ext.pipelining) {
				/* nothing else was sent: the transaction ends here */
				c->st = C_RSET;
				cmd(c, "RSET");
				return;
			}
		}
	} else if (k <= c->t_n) {                      /* RCPT */
		struct q_rdest *d = j->d[c->t_idx[k - 1]];
		if (c->mail_ok) {
			const char *why = r;
			if (code / 100 == 2) {
				d->accepted = true;
				c->accepted++;
			} else if (code == 452 || strcmp(c->rep.esc, "4.5.3") == 0) {
				d->again = true;   /* decided at the end: again, or deferred if nobody got through */
				snprintf(d->dsn, sizeof(d->dsn), "%s", dsn_class(code, c->rep.esc, "4.5.3", "5.5.3"));
				snprintf(d->reply, sizeof(d->reply), "%s", why);
			} else {
				settle(c, d, code >= 500 ? Q_RR_PERM : Q_RR_TEMP,
				       dsn_class(code, c->rep.esc, "4.0.0", "5.0.0"), why);
			}
		}
		if (!c->ext.pipelining && k == c->t_n && c->accepted == 0) {
			/* nobody accepted: no DATA */
			c->st = C_RSET;
			cmd(c, "RSET");
			return;
		}
	} else {                                       /* DATA */
		if (code == 354) {
			if (c->accepted == 0 || !c->mail_ok) {
				/* RFC 2920 §3.1: the server wants data although nobody was accepted */
				c->dot_only = true;
				c->st = C_DOT;
				mc_conn_write(c->conn, ".\r\n", 3);
				return;
			}
			start_body(c);
			return;
		}
		if (c->mail_ok && c->accepted) {
			const char *why = r;
			for (unsigned i = 0; i < c->t_n; i++) {
				struct q_rdest *d = j->d[c->t_idx[i]];
				if (d->accepted)
					settle(c, d, code >= 500 ? Q_RR_PERM : Q_RR_TEMP,
					       dsn_class(code, c->rep.esc, "4.0.0", "5.0.0"), why);
			}
		}
		txn_end(c);
		return;
	}
	txn_push(c);
}

static void
handle_dot_reply(struct q_smtpc *c)
{
	int code = c->rep.code;
	if (c->dot_only) {
		txn_end(c);
		return;
	}
	char why[Q_ERR_MAX];
	mc_smtp_reply_format(&c->rep, why, sizeof(why));
	enum q_rres res = code / 100 == 2 ? Q_RR_OK : code >= 500 ? Q_RR_PERM : Q_RR_TEMP;
	for (unsigned i = 0; i < c->t_n; i++) {
		struct q_rdest *d = c->job->d[c->t_idx[i]];
		if (d->accepted)
			settle(c, d, res, dsn_class(code, c->rep.esc, "4.0.0", "5.0.0"), why);
	}
	if (code == 421) {
		say(c->why, sizeof(c->why), "host %s said: %s", c->relay, why);
		mc_conn_close(c->conn);
		return;
	}
	txn_end(c);
}

/* ---- the body, streamed from the queue file ---- */

static void
write_chunk(struct q_smtpc *c, const char *p, size_t n)
{
	while (n > 0) {
		size_t outlen;
		size_t used = mc_dotstuff_enc(&c->enc, p, n, c->out, sizeof(c->out), &outlen);
		if (outlen && mc_conn_write(c->conn, c->out, outlen) < 0)
			return;
		p += used;
		n -= used;
	}
}

static void
on_fs_read(uv_fs_t *req)
{
	struct q_smtpc *c = req->data;
	ssize_t n = req->result;
	uv_fs_req_cleanup(req);
	c->fs_busy = false;
	if (c->conn_closed) {
		free_if_done(c);
		return;
	}
	if (c->st != C_BODY)
		return;
	if (n < 0) {
		fail(c, "cannot read the queue file: %s", uv_strerror((int)n));
		return;
	}
	if (n == 0) {
		size_t k = mc_dotstuff_enc_end(&c->enc, c->out, sizeof(c->out), true);
		mc_conn_write(c->conn, c->out, k);
		c->st = C_DOT;
		mc_conn_set_timeout(c->conn, c->o.data_ms);
		return;
	}
	c->off += n;
	write_chunk(c, c->in, (size_t)n);
	if (mc_conn_pending_out(c->conn) < MC_CONN_LOWAT)
		read_next(c);
	else
		c->want_read = true;   /* on_drain reads on */
}

static void
read_next(struct q_smtpc *c)
{
	c->want_read = false;
	uv_buf_t b = uv_buf_init(c->in, sizeof(c->in));
	c->fs.data = c;
	c->fs_busy = true;
	if (uv_fs_read(c->loop, &c->fs, c->fd, &b, 1, c->off, on_fs_read) < 0) {
		c->fs_busy = false;
		fail(c, "cannot read the queue file");
	}
}

static void
on_fs_open(uv_fs_t *req)
{
	struct q_smtpc *c = req->data;
	ssize_t fd = req->result;
	uv_fs_req_cleanup(req);
	c->fs_busy = false;
	if (fd >= 0)
		c->fd = (int)fd;
	if (c->conn_closed) {
		free_if_done(c);
		return;
	}
	if (fd < 0) {
		fail(c, "cannot open the queue file %s: %s", c->job ? c->job->body : "?", uv_strerror((int)fd));
		return;
	}
	read_next(c);
}

static void
start_body(struct q_smtpc *c)
{
	c->st = C_BODY;
	mc_conn_set_timeout(c->conn, c->o.data_ms);
	mc_dotstuff_enc_init(&c->enc);
	c->off = 0;
	c->eof = false;
	if (c->fd >= 0) {
		uv_fs_t req;
		uv_fs_close(NULL, &req, c->fd, NULL);
		uv_fs_req_cleanup(&req);
		c->fd = -1;
	}
	c->fs.data = c;
	c->fs_busy = true;
	if (uv_fs_open(c->loop, &c->fs, c->job->body, O_RDONLY | O_CLOEXEC, 0, on_fs_open) < 0) {
		c->fs_busy = false;
		fail(c, "cannot open the queue file %s", c->job->body);
	}
}

static void
on_drain(struct mc_conn *conn, void *arg)
{
	struct q_smtpc *c = arg;
	(void)conn;
	if (c->st == C_BODY && c->want_read && !c->fs_busy)
		read_next(c);
}

/* ---- input ---- */

static void
handle_reply(struct q_smtpc *c)
{
	char r[Q_ERR_MAX];
	mc_smtp_reply_format(&c->rep, r, sizeof(r));
	mc_trace(MC_TRACE_PROTO, "smtpc %s: < %s", c->relay, r);
	switch (c->st) {
	case C_GREET:
	case C_EHLO:
	case C_HELO:
	case C_STARTTLS:
	case C_AUTH:
	case C_AUTH_USER:
	case C_AUTH_PASS:
		handle_setup_reply(c);
		break;
	case C_RSET:
		if (c->job && c->rset_first) {
			c->rset_first = false;
			/* the RSET before a job on a used connection */
			if (c->rep.code / 100 != 2) {
				fail(c, "host %s said: %s (in reply to RSET command)", c->relay, r);
				return;
			}
			txn_begin(c);
		} else if (c->job) {
			/* the RSET after a failed transaction */
			txn_end(c);
		}
		break;
	case C_TXN:
		handle_txn_reply(c);
		break;
	case C_DOT:
		handle_dot_reply(c);
		break;
	case C_READY:
		/* nothing was asked: a server closing an idle connection (421) */
		say(c->why, sizeof(c->why), "host %s said: %s", c->relay, r);
		mc_conn_close(c->conn);
		break;
	case C_QUIT:
		mc_conn_close(c->conn);
		break;
	default:
		break;
	}
}

static void
on_read(struct mc_conn *conn, void *arg)
{
	struct q_smtpc *c = arg;
	struct mc_buf *in = mc_conn_in(conn);
	while (in->len > 0 && c->st != C_GONE && c->conn) {
		if (c->st == C_TLS || c->st == C_BODY) {
			/* nothing is expected now: a server talking during the body or the handshake */
			if (c->st == C_BODY) {
				char junk[64];
				mc_log_clean(junk, sizeof(junk), in->data, in->len < 60 ? in->len : 60);
				fail(c, "host %s talked during the message body: %s", c->relay, junk);
			}
			mc_buf_consume(in, in->len);
			return;
		}
		size_t used;
		int rc = mc_smtp_reply_feed(&c->rep, in->data, in->len, &used);
		mc_buf_consume(in, used);
		if (rc < 0) {
			fail(c, "malformed reply from %s: %s", c->relay, c->rep.err);
			return;
		}
		if (rc == 0)
			return;
		handle_reply(c);
		mc_smtp_reply_init(&c->rep);
		if (c->st == C_TLS)
			return;   /* whatever followed the 220 is discarded by the handshake */
	}
}

static void
on_timeout(struct mc_conn *conn, void *arg)
{
	struct q_smtpc *c = arg;
	(void)conn;
	static const char *const what[] = {
		[C_CONNECT] = "connecting", [C_GREET] = "waiting for the greeting", [C_EHLO] = "sending EHLO",
		[C_HELO] = "sending HELO", [C_STARTTLS] = "sending STARTTLS", [C_TLS] = "the TLS handshake",
		[C_AUTH] = "sending AUTH", [C_AUTH_USER] = "sending AUTH", [C_AUTH_PASS] = "sending AUTH",
		[C_READY] = "idle", [C_RSET] = "sending RSET", [C_TXN] = "sending MAIL FROM, RCPT TO or DATA",
		[C_BODY] = "sending the message body", [C_DOT] = "sending end of data", [C_QUIT] = "sending QUIT",
		[C_GONE] = "closing",
	};
	fail(c, "conversation with %s timed out while %s", c->relay, what[c->st]);
}

static void
on_connect(struct mc_conn *conn, void *arg, int err)
{
	struct q_smtpc *c = arg;
	if (err) {
		say(c->why, sizeof(c->why), "connect to %s: %s", c->relay,
			 err == UV_ETIMEDOUT ? "connection timed out" : uv_strerror(err));
		return;   /* on_close follows */
	}
	c->st = C_GREET;
	mc_conn_set_timeout(conn, c->o.cmd_ms);
}

static const struct mc_conn_cbs conn_cbs = {
	.on_read = on_read,
	.on_drain = on_drain,
	.on_tls = on_tls,
	.on_timeout = on_timeout,
	.on_connect = on_connect,
	.on_close = on_close,
};

/* ---- the interface ---- */

struct q_smtpc *
q_smtpc_open(uv_loop_t *loop, const char *ip, unsigned port, const struct q_smtpc_opts *o,
	     const struct q_smtpc_cbs *cbs, void *arg)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		if (uv_ip6_addr(ip, (int)port, (struct sockaddr_in6 *)&ss) != 0)
			return NULL;
	} else if (uv_ip4_addr(ip, (int)port, (struct sockaddr_in *)&ss) != 0) {
		return NULL;
	}
	struct q_smtpc *c = calloc(1, sizeof(*c));
	if (c == NULL)
		mc_panic("out of memory");
	c->loop = loop;
	c->o = *o;
	c->cbs = *cbs;
	c->arg = arg;
	c->fd = -1;
	c->port = port;
	snprintf(c->host, sizeof(c->host), "%s", o->host);
	snprintf(c->ip, sizeof(c->ip), "%s", ip);
	say(c->relay, sizeof(c->relay), "%s[%s]:%u", c->host, c->ip, port);
	c->o.host = c->host;
	mc_smtp_reply_init(&c->rep);
	c->st = C_CONNECT;
	c->conn = mc_conn_connect(loop, (struct sockaddr *)&ss, IN_MAX, o->connect_ms, &conn_cbs, c);
	if (c->conn == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

void
q_smtpc_send(struct q_smtpc *c, struct q_rjob *j)
{
	if (c->st != C_READY || c->job)
		mc_panic("smtpc: a job given to a busy connection");
	c->job = j;
	c->t_idx = calloc(j->n ? j->n : 1, sizeof(*c->t_idx));
	if (c->t_idx == NULL)
		mc_panic("out of memory");
	c->t_n = c->t_sent = 0;
	if (c->txns > 0) {
		c->st = C_RSET;
		c->rset_first = true;
		mc_conn_set_timeout(c->conn, c->o.cmd_ms);
		cmd(c, "RSET");
		return;
	}
	txn_begin(c);
}

void
q_smtpc_quit(struct q_smtpc *c)
{
	if (c->conn == NULL || c->st == C_QUIT || c->st == C_GONE)
		return;
	c->st = C_QUIT;
	mc_conn_set_timeout(c->conn, c->o.cmd_ms);
	cmd(c, "QUIT");
	mc_conn_close(c->conn);
}

void
q_smtpc_abort(struct q_smtpc *c)
{
	if (c->conn == NULL)
		return;
	if (c->why[0] == '\0')
		say(c->why, sizeof(c->why), "delivery to %s cancelled", c->relay);
	c->cancelled = true;
	mc_conn_abort(c->conn);
}

const char *
q_smtpc_relay(const struct q_smtpc *c)
{
	return c->relay;
}

bool
q_smtpc_is_tls(const struct q_smtpc *c)
{
	return c->conn && mc_conn_is_tls(c->conn);
}
