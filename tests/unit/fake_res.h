/*
 * fake_res.h - the session unit tests' stand-ins: a fake resolverd that
 * knows one account (alice, password "pw") for one service, and a fresh
 * self-signed certificate loaded as a server TLS context.
 *
 * Included by one test program each (static functions, cmocka asserts;
 * the includer has included cmocka.h); never by library code. The caller
 * owns the struct fake_res_auth, which must outlive the server, and closes
 * the server with mc_chan_server_close.
 */
#ifndef TEST_FAKE_RES_H
#define TEST_FAKE_RES_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mail/proto.h"
#include "mail/resolver_client.h"
#include "util/chan.h"
#include "util/config.h"
#include "util/tls.h"

struct fake_res_auth {
	const char *service;   /* the one service alice may log in to ("imap", "pop3") */
	const char *mailbox;   /* her mailbox in the reply */
	bool quota;            /* reply with the quota field (0: none), as imapd reads it */
};

/* RES_AUTH: OK as alice@example.test for alice/pw on the service, else FAIL; anything else unanswered. */
static void
fake_res_auth_msg(struct mc_chan *ch, struct mc_msg *m, void *arg)
{
	const struct fake_res_auth *a = arg;
	if (m->type != MC_MSG_RES_AUTH)
		return;
	struct mc_resolver_auth_req req;
	if (mc_resolver_req_auth(m, &req) < 0)
		return;
	bool ok = strcmp(req.user, "alice") == 0 && strcmp(req.password, "pw") == 0 &&
		  strcmp(req.service, a->service) == 0;
	const char *canonical = ok ? "alice@example.test" : "", *mailbox = ok ? a->mailbox : "";
	if (a->quota)
		mc_resolver_reply_auth_quota(ch, m->reqid, ok ? MC_AUTH_OK : MC_AUTH_FAIL, canonical, mailbox, 0);
	else
		mc_resolver_reply_auth(ch, m->reqid, ok ? MC_AUTH_OK : MC_AUTH_FAIL, canonical, mailbox);
}

static const struct mc_chan_cbs fake_res_auth_cbs = { .on_msg = fake_res_auth_msg };

/* The fake resolverd on cfg's resolverd socket (identities set first); asserts it started. */
static inline struct mc_chan_server *
fake_res_auth_start(uv_loop_t *loop, const struct mc_config *cfg, struct fake_res_auth *a)
{
	char path[600];
	mc_proto_set_identities(cfg);
	mc_config_sock(cfg, path, sizeof(path), MC_SOCK_RESOLVERD);
	struct mc_chan_server *srv =
		mc_chan_server_start(loop, path, 0660, &mc_proto, MC_ROLE_RESOLVERD, "resolverd", &fake_res_auth_cbs, a);
	assert_non_null(srv);
	return srv;
}

/* A self-signed certificate for mx.test written to dir/cert.pem and dir/key.pem, loaded into tls. */
static inline void
fake_tls_selfsigned(const char *dir, struct mc_tls *tls)
{
	char cert[600], key[600], err[256];
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	assert_int_equal(mc_tls_selfsigned(cert, key, "mx.test", err, sizeof(err)), 0);
	assert_int_equal(mc_tls_load(tls, cert, key, err, sizeof(err)), 0);
}

#endif
