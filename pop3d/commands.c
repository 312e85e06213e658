/*
 * commands.c - the POP3 command table and its handlers (RFC 1939, RFC
 * 2449 CAPA and response codes, RFC 2595 STLS, RFC 5034 AUTH).
 *
 * Each row: verb, the states it is allowed in, whether it carries a
 * password (refused before TLS unless allow_plaintext_auth permits this
 * client), argument counts, and the action. A command in the wrong state,
 * an unknown one or bad arguments get -ERR and count as bad; past
 * [pop3d] max_bad_commands the session ends. Credentials go to resolverd
 * (service "pop3"), which slows and blocks guessing per address and per
 * account; every failure is logged here with the client's address.
 *
 * Called by session.c with one complete line at a time. Owns the USER
 * name and the SASL step between lines (wiped after use). Never logs or
 * keeps a password; never deletes outside the UPDATE state.
 */
#include "pop3d/pop3d.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "mail/resolver_client.h"
#include "util/log.h"

enum { MECH_NONE = 0, MECH_PLAIN, MECH_LOGIN };

enum {
	F_SECRET = 1u << 0,   /* carries a password: TLS or allow_plaintext_auth */
};

struct row {
	enum pop3_verb verb;
	unsigned states;
	unsigned flags;
	unsigned min_args, max_args;
	void (*action)(struct pop3_session *s, const struct pop3_cmd *c);
};

static void bad(struct pop3_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An -ERR that counts against max_bad_commands. */
static void
bad(struct pop3_session *s, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	pop3_reply(s, "%s", text);
	s->bad++;
	if (s->srv->lim.max_bad && s->bad >= s->srv->lim.max_bad) {
		pop3_reply(s, "-ERR Too many bad commands, closing the connection");
		pop3_session_close(s, "too many bad commands");
	}
}

void
pop3_cmd_reset_auth(struct pop3_session *s)
{
	s->sasl_mech = MECH_NONE;
	s->sasl_step = 0;
	s->user_given = false;
	OPENSSL_cleanse(s->user, sizeof(s->user));
}

void
pop3_cmd_too_long(struct pop3_session *s)
{
	if (s->sasl_mech) {
		pop3_cmd_reset_auth(s);
		bad(s, "-ERR SASL response too long");
		return;
	}
	bad(s, "-ERR Line too long");
}

/* ---- logging in ---- */

static void
login(struct pop3_session *s, const char *mailbox)
{
	char err[512];
	int rc = pop3_maildrop_open(&s->drop, mailbox, err, sizeof(err));
	if (rc == 1) {
		mc_info("%s: login refused user=%s ip=%s: maildrop in use", s->id, s->account, s->ip);
		pop3_reply(s, "-ERR [IN-USE] Mailbox is locked by another POP3 session");
		s->account[0] = '\0';
		return;
	}
	if (rc < 0) {
		mc_warn("%s: cannot open maildrop user=%s: %s", s->id, s->account, err);
		pop3_reply(s, "-ERR [SYS/TEMP] Cannot open the mailbox now, try again later");
		s->account[0] = '\0';
		return;
	}
	s->have_drop = true;
	s->state = POP3_ST_TRANS;
	mc_info("%s: login user=%s ip=%s tls=%s messages=%zu octets=%" PRIu64, s->id, s->account, s->ip,
		s->tls ? "yes" : "no", s->drop.n, s->drop.total);
	pop3_reply(s, "+OK Logged in, %zu messages (%" PRIu64 " octets)", s->drop.n, s->drop.total);
}

static void
auth_done(void *arg, enum mc_auth_result r, const char *canonical, const char *mailbox)
{
	struct pop3_session *s = arg;
	char user[256];
	s->res_call = 0;
	mc_log_clean(user, sizeof(user), s->user, strlen(s->user));
	switch (r) {
	case MC_AUTH_OK:
		mc_log_clean(s->account, sizeof(s->account), canonical && canonical[0] ? canonical : s->user,
			     strlen(canonical && canonical[0] ? canonical : s->user));
		if (mailbox == NULL || mailbox[0] == '\0') {
			mc_warn("%s: user=%s has no mailbox", s->id, s->account);
			pop3_reply(s, "-ERR [SYS/PERM] No mailbox for this account");
			s->account[0] = '\0';
			break;
		}
		login(s, mailbox);
		break;
	case MC_AUTH_FAIL:
		mc_info("%s: auth failed user=%s ip=%s reason=credentials", s->id, user, s->ip);
		s->bad++;
		pop3_reply(s, "-ERR [AUTH] Authentication failed");
		break;
	default:
		mc_info("%s: auth failed user=%s ip=%s reason=%s", s->id, user, s->ip,
			r == MC_AUTH_BLOCKED ? "blocked" : "tempfail");
		s->bad++;
		pop3_reply(s, "-ERR [SYS/TEMP] Temporary authentication failure, try again later");
		break;
	}
	pop3_cmd_reset_auth(s);
	if (s->srv->lim.max_bad && s->bad >= s->srv->lim.max_bad && s->state == POP3_ST_AUTH) {
		pop3_reply(s, "-ERR Too many bad commands, closing the connection");
		pop3_session_close(s, "too many bad commands");
	}
	pop3_session_done(s);
}

/* Hand user and password to resolverd; the caller wipes the password. */
static void
check(struct pop3_session *s, const char *user, const char *pass)
{
	if (user != s->user)
		snprintf(s->user, sizeof(s->user), "%s", user);
	s->sasl_mech = MECH_NONE;
	if (s->srv->res == NULL) {
		pop3_reply(s, "-ERR [SYS/TEMP] Temporary authentication failure, try again later");
		pop3_cmd_reset_auth(s);
		return;
	}
	pop3_session_wait(s);
	s->res_call = mc_resolver_auth(s->srv->res, "pop3", s->ip, user, pass, auth_done, s);
}

/* ---- AUTHORIZATION ---- */

static void
cmd_user(struct pop3_session *s, const struct pop3_cmd *c)
{
	if (strlen(c->args[0]) >= sizeof(s->user)) {
		bad(s, "-ERR User name too long");
		return;
	}
	snprintf(s->user, sizeof(s->user), "%s", c->args[0]);
	s->user_given = true;
	pop3_reply(s, "+OK");
}

static void
cmd_pass(struct pop3_session *s, const struct pop3_cmd *c)
{
	if (!s->user_given) {
		bad(s, "-ERR USER first");
		return;
	}
	check(s, s->user, c->rest);
	OPENSSL_cleanse((void *)c->rest, strlen(c->rest));
}

static void
cmd_apop(struct pop3_session *s, const struct pop3_cmd *c)
{
	(void)c;
	/* Not offered: APOP needs the plaintext password on the server. */
	bad(s, "-ERR APOP is not supported, use USER/PASS or AUTH");
}

static void
sasl_response(struct pop3_session *s, const char *b64, size_t len)
{
	unsigned char dec[MC_SASL_DECODED_MAX];
	size_t n;
	enum mc_sasl_result r = mc_sasl_response(b64, len, dec, sizeof(dec), &n);
	if (r == MC_SASL_ABORT) {
		pop3_cmd_reset_auth(s);
		pop3_reply(s, "-ERR Authentication aborted");
		return;
	}
	if (r != MC_SASL_OK) {
		pop3_cmd_reset_auth(s);
		bad(s, "-ERR Malformed SASL response");
		return;
	}
	if (s->sasl_mech == MECH_PLAIN) {
		const char *user, *pass;
		r = mc_sasl_plain(dec, n, &user, &pass);
		if (r == MC_SASL_BAD) {
			pop3_cmd_reset_auth(s);
			bad(s, "-ERR Malformed PLAIN response");
		} else if (r != MC_SASL_OK || strlen(user) >= sizeof(s->user)) {
			mc_info("%s: auth failed ip=%s reason=plain-refused", s->id, s->ip);
			pop3_cmd_reset_auth(s);
			bad(s, "-ERR [AUTH] Authentication failed");
		} else {
			check(s, user, pass);
		}
	} else if (s->sasl_step == 0) {
		if (n == 0 || n >= sizeof(s->user) || memchr(dec, '\0', n)) {
			pop3_cmd_reset_auth(s);
			bad(s, "-ERR Bad user name");
		} else {
			memcpy(s->user, dec, n + 1);
			s->sasl_step = 1;
			pop3_reply(s, "+ UGFzc3dvcmQ6");
		}
	} else if (memchr(dec, '\0', n)) {
		pop3_cmd_reset_auth(s);
		bad(s, "-ERR [AUTH] Authentication failed");
	} else {
		check(s, s->user, (const char *)dec);
	}
	OPENSSL_cleanse(dec, sizeof(dec));
}

static void
cmd_auth(struct pop3_session *s, const struct pop3_cmd *c)
{
	if (c->nargs == 0) {
		/* The mechanism list (RFC 1734 clients ask this way); CAPA's SASL line says the same. */
		pop3_reply(s, "+OK Mechanisms follow");
		pop3_reply(s, "PLAIN");
		pop3_reply(s, "LOGIN");
		pop3_reply(s, ".");
		return;
	}
	if (strcasecmp(c->args[0], "PLAIN") == 0) {
		s->sasl_mech = MECH_PLAIN;
	} else if (strcasecmp(c->args[0], "LOGIN") == 0) {
		s->sasl_mech = MECH_LOGIN;
	} else {
		bad(s, "-ERR Unsupported authentication mechanism");
		return;
	}
	s->sasl_step = 0;
	if (c->nargs == 2) {
		size_t n = strlen(c->args[1]);
		sasl_response(s, c->args[1], n);
		OPENSSL_cleanse((void *)c->args[1], n);
		return;
	}
	pop3_reply(s, s->sasl_mech == MECH_PLAIN ? "+ " : "+ VXNlcm5hbWU6");
}

void
pop3_cmd_sasl_line(struct pop3_session *s, char *line, size_t len)
{
	sasl_response(s, line, len);
	OPENSSL_cleanse(line, len);
}

static void
cmd_stls(struct pop3_session *s, const struct pop3_cmd *c)
{
	(void)c;
	if (s->tls) {
		bad(s, "-ERR Already using TLS");
		return;
	}
	if (pop3_session_tls_ctx(s) == NULL) {
		bad(s, "-ERR STLS is not available");
		return;
	}
	pop3_cmd_reset_auth(s);
	pop3_reply(s, "+OK Begin TLS negotiation");
	pop3_session_starttls(s);
}

static void
cmd_capa(struct pop3_session *s, const struct pop3_cmd *c)
{
	(void)c;
	bool auth = s->state == POP3_ST_AUTH;
	pop3_reply(s, "+OK Capability list follows");
	pop3_reply(s, "TOP");
	pop3_reply(s, "UIDL");
	pop3_reply(s, "RESP-CODES");
	pop3_reply(s, "AUTH-RESP-CODE");
	pop3_reply(s, "PIPELINING");
	/* Postern never deletes on its own. */
	pop3_reply(s, "EXPIRE NEVER");
	if (auth && pop3_session_auth_allowed(s)) {
		pop3_reply(s, "USER");
		pop3_reply(s, "SASL PLAIN LOGIN");
	}
	if (auth && !s->tls && pop3_session_tls_ctx(s))
		pop3_reply(s, "STLS");
	pop3_reply(s, "IMPLEMENTATION Postern");
	pop3_reply(s, ".");
}

static void
cmd_quit(struct pop3_session *s, const struct pop3_cmd *c)
{
	(void)c;
	if (s->state != POP3_ST_TRANS) {
		pop3_reply(s, "+OK Bye");
		pop3_session_close(s, NULL);
		return;
	}
	/* RFC 1939 §6: the UPDATE state removes what was marked, and only now. */
	s->state = POP3_ST_UPDATE;
	char err[512];
	size_t want = s->drop.ndeleted;
	int n = pop3_maildrop_commit(&s->drop, err, sizeof(err));
	if (n < 0 || (size_t)n < want) {
		if (n < 0)
			mc_warn("%s: deleting user=%s: %s", s->id, s->account, err);
		s->deleted_at_quit = n > 0 ? (unsigned)n : 0;
		pop3_reply(s, "-ERR [SYS/TEMP] Some deleted messages were not removed");
	} else {
		s->deleted_at_quit = (unsigned)n;
		pop3_reply(s, "+OK Bye, %d messages deleted", n);
	}
	/* The maildrop is free before the client reads the answer (an IMAP expunge may follow at once). */
	pop3_maildrop_close(&s->drop);
	s->have_drop = false;
	pop3_session_close(s, NULL);
}

/* ---- TRANSACTION ---- */

/* Message number argument: 0-based index into the maildrop, or -1 (reply sent). */
static long
msgno(struct pop3_session *s, const char *arg, bool deleted_ok)
{
	uint32_t v;
	if (pop3_parse_number(arg, UINT32_MAX, &v) < 0) {
		bad(s, "-ERR Invalid message number");
		return -1;
	}
	if (v == 0 || v > s->drop.n) {
		pop3_reply(s, "-ERR No such message");
		return -1;
	}
	if (!deleted_ok && s->drop.msgs[v - 1].deleted) {
		pop3_reply(s, "-ERR Message %" PRIu32 " is deleted", v);
		return -1;
	}
	return (long)v - 1;
}

static void
cmd_stat(struct pop3_session *s, const struct pop3_cmd *c)
{
	(void)c;
	pop3_reply(s, "+OK %zu %" PRIu64, s->drop.n - s->drop.ndeleted, s->drop.total - s->drop.deleted_size);
}

/* LIST and UIDL: one message, or all that are not deleted. */
static void
listing(struct pop3_session *s, const struct pop3_cmd *c, bool uidl)
{
	char line[128], id[64];
	if (c->nargs == 1) {
		long i = msgno(s, c->args[0], false);
		if (i < 0)
			return;
		if (uidl) {
			pop3_maildrop_uidl(&s->drop, (size_t)i, id, sizeof(id));
			pop3_reply(s, "+OK %ld %s", i + 1, id);
		} else {
			pop3_reply(s, "+OK %ld %" PRIu64, i + 1, s->drop.msgs[i].vsize);
		}
		return;
	}
	pop3_reply(s, uidl ? "+OK Unique-ID listing follows" : "+OK %zu messages (%" PRIu64 " octets)",
		   s->drop.n - s->drop.ndeleted, s->drop.total - s->drop.deleted_size);
	for (size_t i = 0; i < s->drop.n; i++) {
		if (s->drop.msgs[i].deleted)
			continue;
		int n;
		if (uidl) {
			pop3_maildrop_uidl(&s->drop, i, id, sizeof(id));
			n = snprintf(line, sizeof(line), "%zu %s\r\n", i + 1, id);
		} else {
			n = snprintf(line, sizeof(line), "%zu %" PRIu64 "\r\n", i + 1, s->drop.msgs[i].vsize);
		}
		pop3_reply_raw(s, line, (size_t)n);
	}
	pop3_reply_raw(s, ".\r\n", 3);
}

static void
cmd_list(struct pop3_session *s, const struct pop3_cmd *c)
{
	listing(s, c, false);
}

static void
cmd_uidl(struct pop3_session *s, const struct pop3_cmd *c)
{
	listing(s, c, true);
}

static void
cmd_retr(struct pop3_session *s, const struct pop3_cmd *c)
{
	long i = msgno(s, c->args[0], false);
	if (i < 0)
		return;
	s->retrieved++;
	pop3_session_stream(s, (size_t)i, false, 0);
}

static void
cmd_top(struct pop3_session *s, const struct pop3_cmd *c)
{
	long i = msgno(s, c->args[0], false);
	if (i < 0)
		return;
	uint32_t lines;
	if (pop3_parse_number(c->args[1], UINT32_MAX, &lines) < 0) {
		bad(s, "-ERR Invalid number of lines");
		return;
	}
	pop3_session_stream(s, (size_t)i, true, lines);
}

static void
cmd_dele(struct pop3_session *s, const struct pop3_cmd *c)
{
	long i = msgno(s, c->args[0], false);
	if (i < 0)
		return;
	s->drop.msgs[i].deleted = true;
	s->drop.ndeleted++;
	s->drop.deleted_size += s->drop.msgs[i].vsize;
	pop3_reply(s, "+OK Message %ld deleted", i + 1);
}

static void
cmd_noop(struct pop3_session *s, const struct pop3_cmd *c)
{
	(void)c;
	pop3_reply(s, "+OK");
}

static void
cmd_rset(struct pop3_session *s, const struct pop3_cmd *c)
{
	(void)c;
	for (size_t i = 0; i < s->drop.n; i++)
		s->drop.msgs[i].deleted = false;
	s->drop.ndeleted = 0;
	s->drop.deleted_size = 0;
	pop3_reply(s, "+OK %zu messages (%" PRIu64 " octets)", s->drop.n, s->drop.total);
}

#define A POP3_ST_AUTH
#define T POP3_ST_TRANS

static const struct row table[] = {
	{ POP3_USER, A, F_SECRET, 1, 1, cmd_user },
	{ POP3_PASS, A, F_SECRET, 1, 1, cmd_pass },
	{ POP3_APOP, A, 0, 0, 2, cmd_apop },
	{ POP3_AUTH, A, F_SECRET, 0, 2, cmd_auth },
	{ POP3_STLS, A, 0, 0, 0, cmd_stls },
	{ POP3_CAPA, A | T, 0, 0, 0, cmd_capa },
	{ POP3_QUIT, A | T, 0, 0, 0, cmd_quit },
	{ POP3_STAT, T, 0, 0, 0, cmd_stat },
	{ POP3_LIST, T, 0, 0, 1, cmd_list },
	{ POP3_RETR, T, 0, 1, 1, cmd_retr },
	{ POP3_DELE, T, 0, 1, 1, cmd_dele },
	{ POP3_NOOP, T, 0, 0, 0, cmd_noop },
	{ POP3_RSET, T, 0, 0, 0, cmd_rset },
	{ POP3_TOP, T, 0, 2, 2, cmd_top },
	{ POP3_UIDL, T, 0, 0, 1, cmd_uidl },
};

void
pop3_cmd_run(struct pop3_session *s, char *line, size_t len)
{
	struct pop3_cmd c;
	switch (pop3_parse(line, len, &c)) {
	case POP3_PARSE_OK:
		break;
	case POP3_PARSE_EMPTY:
		bad(s, "-ERR Empty command");
		return;
	case POP3_PARSE_NUL:
		bad(s, "-ERR NUL byte in command");
		return;
	case POP3_PARSE_UNKNOWN:
		bad(s, "-ERR Unknown command");
		return;
	default:
		bad(s, "-ERR Syntax error in arguments");
		return;
	}
	const struct row *r = NULL;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].verb == c.verb)
			r = &table[i];
	if (r == NULL) {
		bad(s, "-ERR Unknown command");
		return;
	}
	if (!(r->states & s->state)) {
		bad(s, s->state == POP3_ST_AUTH ? "-ERR %s command is not valid before login"
						: "-ERR %s command is not valid after login",
		    c.name);
		return;
	}
	if (c.nargs < r->min_args || c.nargs > r->max_args) {
		bad(s, "-ERR Wrong number of arguments");
		return;
	}
	if ((r->flags & F_SECRET) && !pop3_session_auth_allowed(s)) {
		mc_info("%s: plaintext login refused ip=%s", s->id, s->ip);
		bad(s, "-ERR [AUTH] Plaintext authentication is not allowed without TLS, use STLS");
		return;
	}
	r->action(s, &c);
}
