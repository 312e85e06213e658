/*
 * auth.c - SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN
 * (draft-murchison-sasl-login) mechanisms.
 *
 * Called by commands.c for the AUTH command and by session.c for each
 * SASL response line. Credentials go to resolverd (mc_resolver_auth),
 * the only process that reads password hashes; resolverd also slows and
 * blocks guessing. One reply text for an unknown user and a wrong
 * password. Decoding (base64, the PLAIN message) is libmailcore's
 * mail/sasl, shared with pop3d and imapd.
 *
 * Owns nothing but a LOGIN user name between two lines, wiped after use.
 * Never logs or keeps a password; wipes every buffer that held one.
 */
#include "smtpd/smtpd.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mail/resolver_client.h"
#include "mail/sasl.h"
#include "util/log.h"

enum { MECH_NONE = 0, MECH_PLAIN, MECH_LOGIN };

static void
auth_end(struct smtpd_session *s)
{
	s->auth_mech = MECH_NONE;
	s->auth_step = 0;
	OPENSSL_cleanse(s->auth_login_user, sizeof(s->auth_login_user));
	if (s->state == SMTPD_ST_AUTH)
		smtpd_session_state(s, SMTPD_ST_CMD);
}

static void
auth_done(void *arg, enum mc_auth_result r, const char *canonical, const char *mailbox)
{
	struct smtpd_session *s = arg;
	char user[MC_ADDR_MAX];

	s->res_call = 0;
	mc_log_clean(user, sizeof(user), s->auth_login_user, strlen(s->auth_login_user));
	switch (r) {
	case MC_AUTH_OK:
		s->authenticated = true;
		snprintf(s->auth_user, sizeof(s->auth_user), "%s",
			 canonical && canonical[0] ? canonical : s->auth_login_user);
		mc_log_clean(user, sizeof(user), s->auth_user, strlen(s->auth_user));
		mc_info("%s: auth ok user=%s ip=[%s]", s->id, user, s->ip);
		smtpd_reply(s, "235 2.7.0 Authentication successful");
		break;
	case MC_AUTH_FAIL:
		mc_info("%s: auth failed user=%s ip=[%s] reason=credentials", s->id, user, s->ip);
		smtpd_reply(s, "535 5.7.8 Error: authentication failed");
		break;
	default:
		mc_info("%s: auth failed user=%s ip=[%s] reason=%s", s->id, user, s->ip,
			r == MC_AUTH_BLOCKED ? "blocked" : "tempfail");
		smtpd_reply(s, "454 4.7.0 Temporary authentication failure");
		break;
	}
	auth_end(s);
	smtpd_session_done(s);
}

/* Hand user and password to resolverd; the password is wiped by the caller. */
static void
check(struct smtpd_session *s, const char *user, const char *pass)
{
	if (user != s->auth_login_user)
		snprintf(s->auth_login_user, sizeof(s->auth_login_user), "%s", user);
	s->res_call = mc_resolver_auth(s->srv->res, "smtp", s->ip, user, pass, auth_done, s);
	smtpd_session_wait(s);
}

/* A decoded PLAIN response: authzid NUL authcid NUL passwd (RFC 4616 §2). */
static void
plain(struct smtpd_session *s, unsigned char *msg, size_t n)
{
	const char *user, *pass;
	enum mc_sasl_result r = mc_sasl_plain(msg, n, &user, &pass);
	if (r == MC_SASL_BAD) {
		smtpd_reply(s, "501 5.5.2 Error: malformed PLAIN response");
		auth_end(s);
		return;
	}
	if (r != MC_SASL_OK || strlen(user) >= sizeof(s->auth_login_user)) {
		smtpd_reply(s, "535 5.7.8 Error: authentication failed");
		auth_end(s);
		return;
	}
	check(s, user, pass);
}

/* One SASL response (from the AUTH line or a continuation line). */
static void
response(struct smtpd_session *s, const char *b64, size_t len)
{
	unsigned char dec[MC_SASL_DECODED_MAX];
	size_t n;

	switch (mc_sasl_response(b64, len, dec, sizeof(dec), &n)) {
	case MC_SASL_OK:
		break;
	case MC_SASL_ABORT:
		smtpd_reply(s, "501 5.7.0 Authentication aborted");
		auth_end(s);
		return;
	default:
		smtpd_reply(s, "501 5.5.2 Error: cannot decode response");
		auth_end(s);
		return;
	}
	if (s->auth_mech == MECH_PLAIN) {
		plain(s, dec, n);
	} else if (s->auth_step == 0) {
		/* LOGIN: the user name, then ask for the password. */
		if (n == 0 || n >= sizeof(s->auth_login_user) || memchr(dec, '\0', n)) {
			smtpd_reply(s, "501 5.5.2 Error: bad user name");
			auth_end(s);
		} else {
			memcpy(s->auth_login_user, dec, n);
			s->auth_login_user[n] = '\0';
			s->auth_step = 1;
			smtpd_reply(s, "334 UGFzc3dvcmQ6");
			smtpd_session_state(s, SMTPD_ST_AUTH);
		}
	} else {
		if (memchr(dec, '\0', n)) {
			smtpd_reply(s, "535 5.7.8 Error: authentication failed");
			auth_end(s);
		} else {
			dec[n] = '\0';
			check(s, s->auth_login_user, (const char *)dec);
		}
	}
	OPENSSL_cleanse(dec, sizeof(dec));
}

void
smtpd_auth_cmd(struct smtpd_session *s, const char *args)
{
	if (s->authenticated) {
		smtpd_reply(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->tx) {
		smtpd_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	if (!smtpd_session_auth_allowed(s)) {
		smtpd_reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
		return;
	}
	size_t mlen = strcspn(args, " ");
	const char *initial = args[mlen] ? args + mlen + 1 : NULL;
	if (mlen == 5 && strncasecmp(args, "PLAIN", 5) == 0) {
		s->auth_mech = MECH_PLAIN;
	} else if (mlen == 5 && strncasecmp(args, "LOGIN", 5) == 0) {
		s->auth_mech = MECH_LOGIN;
	} else {
		smtpd_reply(s, args[0] ? "504 5.5.4 Unrecognized authentication type" : "501 5.5.4 Syntax: AUTH mechanism");
		return;
	}
	s->auth_step = 0;
	s->auth_login_user[0] = '\0';
	if (initial) {
		size_t n = strlen(initial);
		response(s, initial, n);
		OPENSSL_cleanse((void *)initial, n);
		return;
	}
	smtpd_reply(s, s->auth_mech == MECH_PLAIN ? "334 " : "334 VXNlcm5hbWU6");
	smtpd_session_state(s, SMTPD_ST_AUTH);
}

void
smtpd_auth_line(struct smtpd_session *s, const char *line, size_t len)
{
	/* The line is the session's buffer: wipe it once used. */
	response(s, line, len);
	OPENSSL_cleanse((void *)line, len);
}
