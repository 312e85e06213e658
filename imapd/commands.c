/*
 * commands.c - the IMAP command table and the commands of no particular
 * mailbox: CAPABILITY, NOOP, LOGOUT, STARTTLS (RFC 3501 §6.1-6.2), LOGIN,
 * AUTHENTICATE PLAIN with SASL-IR (RFC 4959, RFC 4616), ID (RFC 2971),
 * ENABLE (RFC 5161; IMAP4rev2 of RFC 9051 is enabled here), NAMESPACE (RFC 2342).
 *
 * Called by session.c with one complete command. A row says the command
 * name, the states it is allowed in, whether a UID form exists, whether
 * untagged EXPUNGE may answer it (RFC 3501 §7.4.1), and its handler; the
 * checks common to every row run here, once. Adding a command is adding
 * a row: the SEARCH/STORE/COPY/... handlers of imapd/search.c and the
 * store operations plug in the same way (handler signature: session,
 * cursor after the command name, uid form).
 *
 * Credentials go to resolverd (service "imap"), which slows and blocks
 * guessing; one answer for an unknown user and a wrong password.
 *
 * Owns nothing. Never logs or keeps a password; wipes every buffer that
 * held one (the session wipes the command buffer after each command).
 */
#include "imapd/imapd.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mail/mailstore_ops.h"
#include "mail/netsvc.h"
#include "mail/resolver_client.h"
#include "mail/sasl.h"
#include "util/log.h"

enum {
	F_UID = 1u << 0,         /* has a UID form */
	F_NOEXPUNGE = 1u << 1,   /* no EXPUNGE responses while it runs (unless the UID form) */
};

#define ANY (IMAPD_NOTAUTH | IMAPD_AUTH | IMAPD_SELECTED)
#define AUTHED (IMAPD_AUTH | IMAPD_SELECTED)

typedef void (*imapd_cmd_fn)(struct imapd_session *s, struct imap_p *p, bool uid);

struct cmd {
	const char *name;
	unsigned states;
	unsigned flags;
	imapd_cmd_fn fn;
};

static void c_capability(struct imapd_session *s, struct imap_p *p, bool uid);
static void c_noop(struct imapd_session *s, struct imap_p *p, bool uid);
static void c_logout(struct imapd_session *s, struct imap_p *p, bool uid);
static void c_starttls(struct imapd_session *s, struct imap_p *p, bool uid);
static void c_login(struct imapd_session *s, struct imap_p *p, bool uid);
static void c_authenticate(struct imapd_session *s, struct imap_p *p, bool uid);
static void c_id(struct imapd_session *s, struct imap_p *p, bool uid);
static void c_enable(struct imapd_session *s, struct imap_p *p, bool uid);
static void c_namespace(struct imapd_session *s, struct imap_p *p, bool uid);
static void c_getquotaroot(struct imapd_session *s, struct imap_p *p, bool uid);
static void c_getquota(struct imapd_session *s, struct imap_p *p, bool uid);
static void c_setquota(struct imapd_session *s, struct imap_p *p, bool uid);

static const struct cmd cmds[] = {
	{ "CAPABILITY", ANY, 0, c_capability },
	{ "NOOP", ANY, 0, c_noop },
	{ "LOGOUT", ANY, 0, c_logout },
	{ "STARTTLS", IMAPD_NOTAUTH, 0, c_starttls },
	{ "LOGIN", IMAPD_NOTAUTH, 0, c_login },
	{ "AUTHENTICATE", IMAPD_NOTAUTH, 0, c_authenticate },
	{ "ID", ANY, 0, c_id },
	{ "ENABLE", AUTHED, 0, c_enable },
	{ "NAMESPACE", AUTHED, 0, c_namespace },
	{ "IDLE", AUTHED, 0, imapd_cmd_idle },
	{ "SELECT", AUTHED, 0, imapd_cmd_select },
	{ "EXAMINE", AUTHED, 0, imapd_cmd_examine },
	{ "CREATE", AUTHED, 0, imapd_cmd_create },
	{ "LIST", AUTHED, 0, imapd_cmd_list },
	{ "LSUB", AUTHED, 0, imapd_cmd_lsub },
	{ "STATUS", AUTHED, 0, imapd_cmd_status },
	{ "CHECK", IMAPD_SELECTED, 0, imapd_cmd_check },
	{ "CLOSE", IMAPD_SELECTED, 0, imapd_cmd_close },
	{ "UNSELECT", IMAPD_SELECTED, 0, imapd_cmd_unselect },
	{ "FETCH", IMAPD_SELECTED, F_UID | F_NOEXPUNGE, imapd_cmd_fetch },
	{ "STORE", IMAPD_SELECTED, F_UID | F_NOEXPUNGE, imapd_cmd_store },
	{ "EXPUNGE", IMAPD_SELECTED, F_UID, imapd_cmd_expunge },
	{ "COPY", IMAPD_SELECTED, F_UID | F_NOEXPUNGE, imapd_cmd_copy },
	{ "MOVE", IMAPD_SELECTED, F_UID, imapd_cmd_move },
	{ "DELETE", AUTHED, 0, imapd_cmd_delete },
	{ "RENAME", AUTHED, 0, imapd_cmd_rename },
	{ "APPEND", AUTHED, 0, imapd_cmd_append },
	{ "SEARCH", IMAPD_SELECTED, F_UID | F_NOEXPUNGE, imapd_cmd_search },
	{ "SORT", IMAPD_SELECTED, F_UID | F_NOEXPUNGE, imapd_cmd_sort },
	{ "THREAD", IMAPD_SELECTED, F_UID | F_NOEXPUNGE, imapd_cmd_thread },
	{ "SUBSCRIBE", AUTHED, 0, imapd_cmd_subscribe },
	{ "GETQUOTAROOT", AUTHED, 0, c_getquotaroot },
	{ "GETQUOTA", AUTHED, 0, c_getquota },
	{ "SETQUOTA", AUTHED, 0, c_setquota },
	{ "UNSUBSCRIBE", AUTHED, 0, imapd_cmd_unsubscribe },
	{ "COMPRESS", AUTHED, 0, imapd_cmd_compress },
};
#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

void
imapd_capabilities(const struct imapd_session *s, char *out, size_t outsz)
{
	size_t n = 0;
#define ADD(str)                                                                          \
	do {                                                                              \
		int k_ = snprintf(out + n, outsz - n, "%s%s", n ? " " : "", str);        \
		if (k_ > 0 && (size_t)k_ < outsz - n)                                     \
			n += (size_t)k_;                                                  \
	} while (0)
	ADD("IMAP4rev1");
	ADD("IMAP4rev2");   /* RFC 9051 §7.2.2: both, a client chooses with ENABLE IMAP4rev2 */
	if (s->state == IMAPD_NOTAUTH) {
		if (!s->tls && mc_netsvc_tls(s->srv->svc))
			ADD("STARTTLS");
		if (imapd_session_auth_allowed(s)) {
			ADD("AUTH=PLAIN");
			ADD("SASL-IR");
		} else {
			ADD("LOGINDISABLED");
		}
	}
	ADD("LITERAL+ ID ENABLE IDLE NAMESPACE UNSELECT CHILDREN SPECIAL-USE UIDPLUS MOVE STATUS=SIZE LIST-EXTENDED LIST-STATUS");
	ADD("ESEARCH SEARCHRES SORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES QUOTA QUOTA=RES-STORAGE CONDSTORE QRESYNC");
	ADD("BINARY");
	if (s->state != IMAPD_NOTAUTH)
		ADD("UTF8=ACCEPT");
	if (s->state != IMAPD_NOTAUTH)
		ADD("COMPRESS=DEFLATE");   /* RFC 4978: a command of the authenticated state */
	if (s->state != IMAPD_NOTAUTH) {
		char al[40];
		snprintf(al, sizeof(al), "APPENDLIMIT=%llu", (unsigned long long)s->srv->lim.append_max);
		ADD(al);
	}
#undef ADD
}

void
imapd_cmd_run(struct imapd_session *s, char *cmd, size_t len)
{
	struct imap_p p;
	char uidname[IMAP_ATOM_MAX + 1];
	bool uid = false;

	s->ncommands++;
	s->cmdtag[0] = s->cmdname[0] = '\0';
	if (s->store_idle && imapd_store_busy(s) < 0) {
		imapd_session_close(s, "[UNAVAILABLE] Mailbox not available, try again later", "index unavailable");
		return;
	}
	s->expunge_ok = true;
	imap_p_init(&p, cmd, len);
	p.utf8 = s->utf8;
	if (imap_p_at_end(&p)) {
		imapd_send(s, "* BAD Empty command line");
		s->errors++;
		return;
	}
	if (imap_p_tag(&p, s->cmdtag, sizeof(s->cmdtag)) < 0 || imap_p_sp(&p) < 0) {
		s->cmdtag[0] = '\0';
		imapd_send(s, "* BAD Missing or bad tag");
		s->errors++;
		return;
	}
	if (imap_p_atom_upper(&p, s->cmdname, sizeof(s->cmdname)) < 0) {
		imapd_done(s, "BAD", "Missing or bad command");
		return;
	}
	if (strcmp(s->cmdname, "UID") == 0) {
		if (imap_p_sp(&p) < 0 || imap_p_atom_upper(&p, uidname, sizeof(uidname)) < 0) {
			imapd_done(s, "BAD", "UID needs a command");
			return;
		}
		snprintf(s->cmdname, sizeof(s->cmdname), "%s", uidname);
		uid = true;
	}
	size_t i;
	for (i = 0; i < NCMDS; i++)
		if (strcmp(s->cmdname, cmds[i].name) == 0)
			break;
	if (i == NCMDS || (uid && !(cmds[i].flags & F_UID))) {
		imapd_done(s, "BAD", "Unknown command");
		return;
	}
	const struct cmd *c = &cmds[i];
	if (!(c->states & s->state)) {
		if (s->state == IMAPD_NOTAUTH)
			imapd_done(s, "BAD", "Log in first");
		else if (c->states == IMAPD_SELECTED)
			imapd_done(s, "BAD", "No mailbox selected");
		else
			imapd_done(s, "BAD", "Not allowed now");
		return;
	}
	if ((c->flags & F_NOEXPUNGE) && !uid)
		s->expunge_ok = false;
	/* SEARCHRES: "$" in this command's sequence sets is the saved result, as UIDs when a UID command */
	s->cmd_uid = uid;
	if (s->state == IMAPD_SELECTED) {
		p.saved = imapd_saved_resolve;
		p.saved_arg = s;
	}
	c->fn(s, &p, uid);
}

/* The command had arguments it should not have, or a syntax error: say which. */
static bool
args_end(struct imapd_session *s, struct imap_p *p)
{
	if (imap_p_end(p) == 0)
		return true;
	imapd_done(s, "BAD", "%s", p->err);
	return false;
}

static void
c_capability(struct imapd_session *s, struct imap_p *p, bool uid)
{
	char caps[1024];
	if (!args_end(s, p))
		return;
	imapd_capabilities(s, caps, sizeof(caps));
	imapd_send(s, "* CAPABILITY %s", caps);
	imapd_done(s, "OK", "CAPABILITY completed");
	(void)uid;
}

static void
c_noop(struct imapd_session *s, struct imap_p *p, bool uid)
{
	if (args_end(s, p))
		imapd_done(s, "OK", "NOOP completed");
	(void)uid;
}

static void
c_logout(struct imapd_session *s, struct imap_p *p, bool uid)
{
	if (!args_end(s, p))
		return;
	imapd_send(s, "* BYE Logging out");
	imapd_send(s, "%s OK LOGOUT completed", s->cmdtag);
	imapd_session_close(s, NULL, NULL);
	(void)uid;
}

static void
c_starttls(struct imapd_session *s, struct imap_p *p, bool uid)
{
	if (!args_end(s, p))
		return;
	if (s->tls) {
		imapd_done(s, "BAD", "TLS is already active");
		return;
	}
	SSL_CTX *ctx = mc_netsvc_tls(s->srv->svc);
	if (ctx == NULL) {
		imapd_done(s, "NO", "TLS is not available");
		return;
	}
	imapd_done(s, "OK", "Begin TLS negotiation now");
	imapd_flush(s);
	/* Discards whatever was pipelined behind STARTTLS (RFC 3501 §6.2.1). */
	if (mc_conn_starttls(s->conn, ctx, true, NULL) < 0) {
		imapd_session_close(s, NULL, "cannot start TLS");
		return;
	}
	s->wait = IMAPD_W_TLS;
	(void)uid;
}

/* ---- LOGIN and AUTHENTICATE ---- */

static void
auth_done(void *arg, enum mc_auth_result r, const char *canonical, const char *mailbox, uint64_t quota)
{
	struct imapd_session *s = arg;
	char user[MC_ADDR_MAX];

	s->res_call = 0;
	mc_log_clean(user, sizeof(user), s->user, strlen(s->user));
	switch (r) {
	case MC_AUTH_OK:
		if (canonical && canonical[0])
			mc_log_clean(user, sizeof(user), canonical, strlen(canonical));
		if (mailbox == NULL || mailbox[0] == '\0') {
			mc_warn("%s: login user=%s: resolverd gave no mailbox", s->id, user);
			s->user[0] = '\0';
			imapd_done(s, "NO", "[UNAVAILABLE] Mailbox not available");
			break;
		}
		if (imapd_session_login(s, user, mailbox) < 0) {
			s->user[0] = '\0';
			break;
		}
		s->quota = quota;
		mc_store_set_quota(s->store, quota, 0);
		mc_info("%s: login user=%s ip=[%s] tls=%s", s->id, s->user, s->ip, s->tls ? "yes" : "no");
		char caps[1024];
		imapd_capabilities(s, caps, sizeof(caps));
		imapd_done(s, "OK", "[CAPABILITY %s] Logged in", caps);
		break;
	case MC_AUTH_FAIL:
		mc_info("%s: login failed user=%s ip=[%s] reason=credentials", s->id, user, s->ip);
		s->user[0] = '\0';
		imapd_done(s, "NO", "[AUTHENTICATIONFAILED] Authentication failed");
		break;
	default:
		mc_info("%s: login failed user=%s ip=[%s] reason=%s", s->id, user, s->ip,
			r == MC_AUTH_BLOCKED ? "blocked" : "tempfail");
		s->user[0] = '\0';
		imapd_done(s, "NO", "[UNAVAILABLE] Temporary authentication failure, try again later");
		break;
	}
	imapd_session_go(s);
}

/* Hand user and password to resolverd; the caller wipes the password. */
static void
check(struct imapd_session *s, const char *user, const char *pass)
{
	/* s->user holds the name tried until the answer (for the log); cleared on failure. */
	snprintf(s->user, sizeof(s->user), "%s", user);
	s->res_call = mc_resolver_auth_quota(s->srv->res, "imap", s->ip, user, pass, auth_done, s);
	imapd_session_wait(s);
}

static bool
login_allowed(struct imapd_session *s)
{
	if (imapd_session_auth_allowed(s))
		return true;
	mc_info("%s: login refused before TLS from [%s]", s->id, s->ip);
	imapd_done(s, "NO", "[PRIVACYREQUIRED] Logging in without TLS is not allowed (LOGINDISABLED)");
	return false;
}

static void
c_login(struct imapd_session *s, struct imap_p *p, bool uid)
{
	char user[MC_RES_USER_MAX], pass[MC_RES_PASSWORD_MAX];
	if (imap_p_sp(p) < 0 || imap_p_astring(p, user, sizeof(user)) < 0 || imap_p_sp(p) < 0 ||
	    imap_p_astring(p, pass, sizeof(pass)) < 0 || imap_p_end(p) < 0) {
		imapd_done(s, "BAD", "%s", p->err);
		OPENSSL_cleanse(pass, sizeof(pass));
		return;
	}
	if (login_allowed(s))
		check(s, user, pass);
	OPENSSL_cleanse(pass, sizeof(pass));
	(void)uid;
}

/* One PLAIN response (base64 of authzid NUL authcid NUL passwd). */
static void
plain_response(struct imapd_session *s, const char *b64, size_t len)
{
	unsigned char dec[MC_SASL_DECODED_MAX];
	size_t n;
	const char *user, *pass;

	s->wait = IMAPD_W_NONE;
	switch (mc_sasl_response(b64, len, dec, sizeof(dec), &n)) {
	case MC_SASL_OK:
		break;
	case MC_SASL_ABORT:
		imapd_done(s, "BAD", "Authentication aborted");
		return;
	default:
		imapd_done(s, "BAD", "Cannot decode the response");
		OPENSSL_cleanse(dec, sizeof(dec));
		return;
	}
	switch (mc_sasl_plain(dec, n, &user, &pass)) {
	case MC_SASL_OK:
		if (strlen(user) < MC_RES_USER_MAX && strlen(pass) < MC_RES_PASSWORD_MAX) {
			check(s, user, pass);
			break;
		}
		/* fall through */
	case MC_SASL_REFUSED:
		mc_info("%s: login failed ip=[%s] reason=authzid", s->id, s->ip);
		imapd_done(s, "NO", "[AUTHENTICATIONFAILED] Authentication failed");
		break;
	default:
		imapd_done(s, "BAD", "Malformed PLAIN response");
		break;
	}
	OPENSSL_cleanse(dec, sizeof(dec));
}

static void
c_authenticate(struct imapd_session *s, struct imap_p *p, bool uid)
{
	char mech[IMAP_ATOM_MAX + 1];
	struct imap_str ir = { 0 };
	bool has_ir = false;
	if (imap_p_sp(p) < 0 || imap_p_atom_upper(p, mech, sizeof(mech)) < 0) {
		imapd_done(s, "BAD", "%s", p->err);
		return;
	}
	if (imap_p_accept(p, ' ')) {
		/* SASL-IR: base64 or "=" (RFC 4959), taken as the atom it is. */
		ir.s = p->p;
		while (imap_p_peek(p) >= 0 && imap_p_peek(p) != ' ')
			p->p++;
		ir.len = (size_t)(p->p - ir.s);
		has_ir = ir.len > 0;
	}
	if (imap_p_end(p) < 0 || (!has_ir && ir.s != NULL)) {
		imapd_done(s, "BAD", "%s", p->err ? p->err : "bad initial response");
		return;
	}
	if (strcmp(mech, "PLAIN") != 0) {
		imapd_done(s, "NO", "Unsupported authentication mechanism");
		return;
	}
	if (!login_allowed(s))
		return;
	if (has_ir) {
		plain_response(s, ir.s, ir.len);
		return;
	}
	s->wait = IMAPD_W_SASL;
	imapd_send(s, "+ ");
	(void)uid;
}

void
imapd_auth_line(struct imapd_session *s, char *line, size_t len)
{
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	plain_response(s, line, len);
}

/* ---- ID, ENABLE, NAMESPACE ---- */

static void
c_id(struct imapd_session *s, struct imap_p *p, bool uid)
{
	/* id-params-list = "(" *(string SP nstring) ")" / nil; at most 30 pairs (RFC 2971 §3.3). */
	char log[512];
	size_t n = 0;
	log[0] = '\0';
	if (imap_p_sp(p) < 0) {
		imapd_done(s, "BAD", "%s", p->err);
		return;
	}
	if (imap_p_peek(p) == '(') {
		imap_p_list_open(p);
		for (int i = 0; imap_p_peek(p) != ')' && !p->err; i++) {
			struct imap_str k, v;
			if (i > 0)
				imap_p_sp(p);
			if (i >= 30) {
				imap_p_fail(p, "too many ID fields");
				break;
			}
			if (imap_p_string(p, &k) < 0 || imap_p_sp(p) < 0 || imap_p_nstring(p, &v) < 0)
				break;
			char ck[64], cv[128];
			mc_log_clean(ck, sizeof(ck), k.s, k.len);
			mc_log_clean(cv, sizeof(cv), v.s ? v.s : "NIL", v.s ? v.len : 3);
			int w = snprintf(log + n, sizeof(log) - n, " %s=%s", ck, cv);
			if (w > 0 && (size_t)w < sizeof(log) - n)
				n += (size_t)w;
		}
		imap_p_list_close(p);
	} else {
		struct imap_str nil;
		if (imap_p_nstring(p, &nil) == 0 && nil.s != NULL)
			imap_p_fail(p, "expected a list or NIL");
	}
	if (!args_end(s, p))
		return;
	if (n)
		mc_info("%s: client id%s", s->id, log);
	imapd_send(s, "* ID (\"name\" \"Postern\" \"vendor\" \"Postern\")");
	imapd_done(s, "OK", "ID completed");
	(void)uid;
}

static void
c_enable(struct imapd_session *s, struct imap_p *p, bool uid)
{
	/* RFC 5161: only what is both asked and known is enabled; UTF8=ACCEPT (RFC 6855) is what there is. */
	char cap[IMAP_ATOM_MAX + 1];
	int count = 0;
	bool utf8 = false, condstore = false, qresync = false, rev2 = false;
	while (imap_p_accept(p, ' ')) {
		if (imap_p_atom_upper(p, cap, sizeof(cap)) < 0)
			break;
		if (strcmp(cap, "UTF8=ACCEPT") == 0)
			utf8 = true;
		if (strcmp(cap, "CONDSTORE") == 0)
			condstore = true;
		if (strcmp(cap, "QRESYNC") == 0)
			qresync = condstore = true;   /* RFC 7162 §3.2.3: QRESYNC implies CONDSTORE */
		if (strcmp(cap, "IMAP4REV2") == 0)
			rev2 = true;
		count++;
	}
	if (count == 0)
		imap_p_fail(p, "ENABLE needs a capability");
	if (!args_end(s, p))
		return;
	char enabled[64] = "";
	if (utf8 && !s->utf8) {
		s->utf8 = true;
		strcat(enabled, " UTF8=ACCEPT");
	}
	if (condstore && !s->condstore) {
		s->condstore = true;
		strcat(enabled, " CONDSTORE");
	}
	if (qresync && !s->qresync) {
		s->qresync = true;
		strcat(enabled, " QRESYNC");
	}
	if (rev2 && !s->rev2) {
		/*
		 * RFC 9051 Appendix E, what changes from here on: no \Recent and
		 * no RECENT, SEARCH answered with ESEARCH, a LIST in SELECT's
		 * answer instead of [UNSEEN], \NonExistent in LIST, mailbox
		 * names and quoted strings in UTF-8 (§5.1, as UTF8=ACCEPT).
		 */
		s->rev2 = true;
		s->utf8 = true;
		strcat(enabled, " IMAP4rev2");
	}
	imapd_send(s, "* ENABLED%s", enabled);
	imapd_done(s, "OK", "ENABLE completed");
	(void)uid;
}

static void
c_namespace(struct imapd_session *s, struct imap_p *p, bool uid)
{
	if (!args_end(s, p))
		return;
	imapd_send(s, "* NAMESPACE ((\"\" \"%c\")) NIL NIL", s->srv->lim.sep);
	imapd_done(s, "OK", "NAMESPACE completed");
	(void)uid;
}

/* ---- QUOTA (RFC 9208): one root "" over all of the user's mailboxes, STORAGE from the directory ---- */

/* "* QUOTA "" (STORAGE used limit)"; false when the user has no limit or the figures cannot be read. */
static bool
send_quota(struct imapd_session *s)
{
	struct mc_store_quota q;
	if (s->quota == 0 || mc_store_quota(s->store, &q) < 0)
		return false;
	imapd_send(s, "* QUOTA \"\" (STORAGE %llu %llu)", (unsigned long long)((q.bytes + 1023) / 1024),
		   (unsigned long long)(q.bytes_limit / 1024));
	return true;
}

static void
c_getquotaroot(struct imapd_session *s, struct imap_p *p, bool uid)
{
	char arg[MC_MAILBOX_NAME_MAX * 2 + 1], name[MC_MAILBOX_NAME_MAX + 1];
	const char *why;
	struct mc_store_mailbox mb;
	if (imap_p_sp(p) < 0 || imap_p_astring(p, arg, sizeof(arg)) < 0 || imap_p_end(p) < 0) {
		imapd_done(s, "BAD", "%s", p->err);
		return;
	}
	if (imapd_mailbox_from_client(s, arg, name, sizeof(name), &why) < 0) {
		imapd_done(s, "NO", "%s", why);
		return;
	}
	if (mc_store_mailbox_get(s->store, name, &mb) < 0) {
		imapd_done(s, "NO", "[NONEXISTENT] Mailbox does not exist");
		return;
	}
	imapd_send_raw(s, "* QUOTAROOT ", 12);
	imapd_send_mailbox(s, mb.name);
	imapd_send(s, "%s", s->quota ? " \"\"" : "");
	send_quota(s);
	imapd_done(s, "OK", "GETQUOTAROOT completed");
	(void)uid;
}

static void
c_getquota(struct imapd_session *s, struct imap_p *p, bool uid)
{
	char root[256];
	if (imap_p_sp(p) < 0 || imap_p_astring(p, root, sizeof(root)) < 0 || imap_p_end(p) < 0) {
		imapd_done(s, "BAD", "%s", p->err);
		return;
	}
	if (root[0] != '\0' || !send_quota(s)) {
		imapd_done(s, "NO", "[NONEXISTENT] No such quota root");
		return;
	}
	imapd_done(s, "OK", "GETQUOTA completed");
	(void)uid;
}

static void
c_setquota(struct imapd_session *s, struct imap_p *p, bool uid)
{
	/* Limits come from the directory (postern user add --quota): a user cannot change them. */
	imapd_done(s, "NO", "[NOPERM] Quotas are set by the administrator");
	(void)p;
	(void)uid;
}
