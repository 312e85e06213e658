/*
 * commands.c - the SMTP command table and the handlers of the commands
 * that need no other daemon (RFC 5321 §4.1, RFC 3207, RFC 1870, RFC 2920).
 *
 * Called by session.c with one complete command line. A row says the
 * verb, what must hold before it runs (HELO/EHLO seen, no arguments) and
 * its handler; the checks common to every row run here, once. MAIL, DATA
 * and BDAT hand over to tx.c, AUTH to auth.c; RCPT asks resolverd here.
 *
 * Owns nothing. Never decides relaying by itself: resolverd says whether
 * a recipient is local, and only an authenticated session may send to a
 * remote one.
 */
#include "smtpd/smtpd.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mail/queue_client.h"
#include "mail/resolver_client.h"
#include "util/log.h"

enum {
	NEED_HELO = 1u << 0,     /* 503 before HELO/EHLO */
	NO_ARGS = 1u << 1,       /* 501 with arguments */
};

struct cmd {
	const char *verb;
	const char *name;        /* in the disconnect log line */
	unsigned flags;
	void (*fn)(struct smtpd_session *s, const char *args);
	const char *syntax;      /* the 501 text for NO_ARGS */
};

static void c_helo(struct smtpd_session *s, const char *args);
static void c_ehlo(struct smtpd_session *s, const char *args);
static void c_mail(struct smtpd_session *s, const char *args);
static void c_rcpt(struct smtpd_session *s, const char *args);
static void c_data(struct smtpd_session *s, const char *args);
static void c_bdat(struct smtpd_session *s, const char *args);
static void c_rset(struct smtpd_session *s, const char *args);
static void c_noop(struct smtpd_session *s, const char *args);
static void c_quit(struct smtpd_session *s, const char *args);
static void c_vrfy(struct smtpd_session *s, const char *args);
static void c_expn(struct smtpd_session *s, const char *args);
static void c_help(struct smtpd_session *s, const char *args);
static void c_starttls(struct smtpd_session *s, const char *args);
static void c_auth(struct smtpd_session *s, const char *args);

static const struct cmd cmds[] = {
	{ "HELO", "helo", 0, c_helo, NULL },
	{ "EHLO", "ehlo", 0, c_ehlo, NULL },
	{ "STARTTLS", "starttls", NEED_HELO | NO_ARGS, c_starttls, "501 5.5.4 Syntax: STARTTLS" },
	{ "AUTH", "auth", NEED_HELO, c_auth, NULL },
	{ "MAIL", "mail", NEED_HELO, c_mail, NULL },
	{ "RCPT", "rcpt", NEED_HELO, c_rcpt, NULL },
	{ "DATA", "data", NEED_HELO | NO_ARGS, c_data, "501 5.5.4 Syntax: DATA" },
	{ "BDAT", "bdat", NEED_HELO, c_bdat, NULL },
	{ "RSET", "rset", NO_ARGS, c_rset, "501 5.5.4 Syntax: RSET" },
	{ "NOOP", "noop", 0, c_noop, NULL },
	{ "QUIT", "quit", NO_ARGS, c_quit, "501 5.5.4 Syntax: QUIT" },
	{ "VRFY", "vrfy", 0, c_vrfy, NULL },
	{ "EXPN", "expn", 0, c_expn, NULL },
	{ "HELP", "help", 0, c_help, NULL },
};
#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

size_t
smtpd_cmd_count(void)
{
	return NCMDS + 1;
}

const char *
smtpd_cmd_name(size_t i)
{
	return i < NCMDS ? cmds[i].name : "unknown";
}

void
smtpd_cmd_run(struct smtpd_session *s, char *line, size_t len)
{
	struct smtpd_cmdline cl;
	size_t i;

	s->ncommands++;
	s->cur_ok = false;
	if (smtpd_parse_cmd(line, len, &cl) < 0) {
		s->cur_cmd = (int)NCMDS;
		s->cmd_all[NCMDS]++;
		smtpd_reply(s, "500 5.5.2 Error: NUL character in command");
		return;
	}
	for (i = 0; i < NCMDS; i++)
		if (strcmp(cl.verb, cmds[i].verb) == 0)
			break;
	s->cur_cmd = (int)i;
	s->cmd_all[i]++;
	if (i == NCMDS) {
		smtpd_reply(s, "500 5.5.2 Error: command not recognized");
		return;
	}
	const struct cmd *c = &cmds[i];
	if ((c->flags & NEED_HELO) && !s->helo_seen) {
		smtpd_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if ((c->flags & NO_ARGS) && cl.args[0] != '\0') {
		smtpd_reply(s, "%s", c->syntax);
		return;
	}
	c->fn(s, cl.args);
}

/* ---- HELO, EHLO ---- */

static bool
hello(struct smtpd_session *s, const char *args, const char *verb)
{
	if (args[0] == '\0') {
		smtpd_reply(s, "501 5.5.4 Syntax: %s hostname", verb);
		return false;
	}
	/* RFC 5321 §4.1.4: a new EHLO or HELO is like RSET. */
	smtpd_tx_abort(s);
	mc_log_clean(s->helo, sizeof(s->helo), args, strlen(args));
	s->helo_seen = true;
	return true;
}

static void
c_helo(struct smtpd_session *s, const char *args)
{
	if (!hello(s, args, "HELO"))
		return;
	s->esmtp = false;
	smtpd_reply(s, "250 %s", s->srv->lim.hostname);
}

static void
c_ehlo(struct smtpd_session *s, const char *args)
{
	const struct smtpd_limits *l = &s->srv->lim;

	if (!hello(s, args, "EHLO"))
		return;
	s->esmtp = true;
	smtpd_reply(s, "250-%s", l->hostname);
	smtpd_reply(s, "250-PIPELINING");
	smtpd_reply(s, "250-SIZE %llu", (unsigned long long)l->max_message_size);
	smtpd_reply(s, "250-8BITMIME");
	smtpd_reply(s, "250-ENHANCEDSTATUSCODES");
	if (!s->tls && s->srv->tls && s->srv->tls->server)
		smtpd_reply(s, "250-STARTTLS");
	if (!s->authenticated && smtpd_session_auth_allowed(s))
		smtpd_reply(s, "250-AUTH PLAIN LOGIN");
	smtpd_reply(s, "250-SMTPUTF8");
	smtpd_reply(s, "250-CHUNKING");
	smtpd_reply(s, "250 DSN");
}

/* ---- MAIL, RCPT ---- */

static void
c_mail(struct smtpd_session *s, const char *args)
{
	struct smtpd_mail m;
	char reply[512];

	if (smtpd_session_auth_required(s) && !s->authenticated) {
		smtpd_reject(s, "MAIL", NULL, "530 5.7.0 Authentication required");
		return;
	}
	if (s->tx) {
		smtpd_reply(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (smtpd_parse_mail(args, &m, reply, sizeof(reply)) < 0) {
		smtpd_reject(s, "MAIL", NULL, "%s", reply);
		return;
	}
	if (m.size_given && m.size > s->srv->lim.max_message_size) {
		smtpd_reject(s, "MAIL", NULL, "552 5.3.4 Message size exceeds fixed limit");
		return;
	}
	smtpd_tx_mail(s, &m);
}

/*
 * The recipient as resolverd and queued see it. RCPT TO:<Postmaster> with
 * no domain (RFC 5321 §4.5.1) stays a bare "postmaster": the directory
 * knows where that goes, whatever our hostname is.
 */
static void
rcpt_address(const struct smtpd_session *s, char *addr, size_t addrsz)
{
	if (s->rcpt.postmaster)
		snprintf(addr, addrsz, "postmaster");
	else
		mc_addr_format(&s->rcpt.addr, addr, addrsz);
}

static void
rcpt_done(void *arg, enum mc_rcpt_result r, const char *canonical)
{
	struct smtpd_session *s = arg;
	char addr[MC_ADDR_MAX], clean[MC_ADDR_MAX];

	s->res_call = 0;
	rcpt_address(s, addr, sizeof(addr));
	mc_log_clean(clean, sizeof(clean), addr, strlen(addr));
	switch (r) {
	case MC_RCPT_LOCAL:
		if (smtpd_tx_add_rcpt(s, addr, &s->rcpt) < 0)
			smtpd_reject(s, "RCPT", addr, "452 4.5.3 Too many recipients");
		else
			smtpd_reply(s, "250 2.1.5 Ok");
		break;
	case MC_RCPT_REMOTE:
		/* Never an open relay: a remote recipient only for a client that authenticated. */
		if (!s->authenticated)
			smtpd_reject(s, "RCPT", addr, "554 5.7.1 <%s>: Relay access denied", clean);
		else if (smtpd_tx_add_rcpt(s, addr, &s->rcpt) < 0)
			smtpd_reject(s, "RCPT", addr, "452 4.5.3 Too many recipients");
		else
			smtpd_reply(s, "250 2.1.5 Ok");
		break;
	case MC_RCPT_UNKNOWN:
		smtpd_reject(s, "RCPT", addr, "550 5.1.1 <%s>: Recipient address rejected: User unknown", clean);
		break;
	default:
		smtpd_reject(s, "RCPT", addr, "451 4.3.0 <%s>: Temporary lookup failure", clean);
		break;
	}
	smtpd_session_done(s);
}

static void
c_rcpt(struct smtpd_session *s, const char *args)
{
	char reply[512], addr[MC_ADDR_MAX];

	if (s->tx == NULL) {
		smtpd_reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	s->tx->rcpt_tried++;
	if (smtpd_parse_rcpt(args, s->tx->smtputf8, &s->rcpt, reply, sizeof(reply)) < 0) {
		smtpd_reject(s, "RCPT", NULL, "%s", reply);
		return;
	}
	rcpt_address(s, addr, sizeof(addr));
	if (s->tx->env.nrcpt >= s->srv->lim.max_recipients) {
		smtpd_reject(s, "RCPT", addr, "452 4.5.3 Too many recipients");
		return;
	}
	s->res_call = mc_resolver_rcpt(s->srv->res, addr, s->authenticated, rcpt_done, s);
	smtpd_session_wait(s);
}

/* ---- DATA, BDAT ---- */

static void
c_data(struct smtpd_session *s, const char *args)
{
	if (s->tx == NULL) {
		smtpd_reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->tx->env.nrcpt == 0) {
		if (s->tx->rcpt_tried)
			smtpd_reject(s, "DATA", NULL, "554 5.5.1 Error: no valid recipients");
		else
			smtpd_reply(s, "503 5.5.1 Error: need RCPT command");
		return;
	}
	if (s->tx->bdat) {
		smtpd_reply(s, "503 5.5.1 Error: DATA and BDAT cannot be mixed");
		return;
	}
	if (s->tx->binary) {
		smtpd_reply(s, "503 5.5.1 Error: BODY=BINARYMIME requires BDAT");
		return;
	}
	smtpd_tx_data(s);
}

static void
c_bdat(struct smtpd_session *s, const char *args)
{
	uint64_t size;
	bool last;

	if (smtpd_parse_bdat(args, &size, &last) < 0) {
		/* Without a valid count the chunk cannot be told from commands: end here. */
		smtpd_reply(s, "501 5.5.4 Syntax: BDAT count [LAST]");
		smtpd_reply(s, "421 4.5.0 %s Error: cannot continue after a bad BDAT", s->srv->lim.hostname);
		smtpd_session_close(s, "bad BDAT");
		return;
	}
	smtpd_tx_bdat(s, size, last);
}

/* ---- the rest ---- */

static void
c_rset(struct smtpd_session *s, const char *args)
{
	smtpd_tx_abort(s);
	smtpd_reply(s, "250 2.0.0 Ok");
}

static void
c_noop(struct smtpd_session *s, const char *args)
{
	smtpd_reply(s, "250 2.0.0 Ok");
}

static void
c_quit(struct smtpd_session *s, const char *args)
{
	smtpd_reply(s, "221 2.0.0 Bye");
	smtpd_session_close(s, NULL);
}

static void
c_vrfy(struct smtpd_session *s, const char *args)
{
	if (args[0] == '\0') {
		smtpd_reply(s, "501 5.5.4 Syntax: VRFY address");
		return;
	}
	smtpd_reply(s, "252 2.5.2 Cannot VRFY user, but will accept message");
}

static void
c_expn(struct smtpd_session *s, const char *args)
{
	smtpd_reply(s, "502 5.5.1 Error: command not implemented");
}

static void
c_help(struct smtpd_session *s, const char *args)
{
	smtpd_reply(s, "214 2.0.0 Commands: HELO EHLO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP");
}

static void
c_starttls(struct smtpd_session *s, const char *args)
{
	if (s->tls) {
		smtpd_reply(s, "503 5.5.1 Error: TLS already active");
		return;
	}
	if (s->srv->tls == NULL || s->srv->tls->server == NULL) {
		smtpd_reply(s, "454 4.7.0 TLS not available");
		return;
	}
	smtpd_reply(s, "220 2.0.0 Ready to start TLS");
	smtpd_flush(s);
	smtpd_session_state(s, SMTPD_ST_TLS);
	/* Input pipelined after STARTTLS is discarded by mc_conn_starttls (RFC 3207 §4.2). */
	if (mc_conn_starttls(s->conn, s->srv->tls->server, true, NULL) < 0) {
		mc_warn("%s: cannot start TLS for [%s]", s->id, s->ip);
		smtpd_reply(s, "421 4.7.0 %s Error: TLS failed", s->srv->lim.hostname);
		smtpd_session_close(s, "TLS failed");
	}
}

static void
c_auth(struct smtpd_session *s, const char *args)
{
	smtpd_auth_cmd(s, args);
}
