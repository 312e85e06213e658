/*
 * main.c - imapd: the IMAP server's main (RFC 9051 / 3501; 993 implicit TLS, RFC 8314).
 *
 * This first version serves [imapd] through the shared network front
 * (mail/netsvc: listen, listen_tls, max_connections, TLS reload, stop),
 * runs as [global] mail_user, and tells every client that the service is
 * not available yet (an untagged BYE with the UNAVAILABLE response code of
 * RFC 5530), then closes. Mailbox access comes with the IMAP session
 * state machine in its own file.
 *
 * Owns nothing but the greeting; never touches a mailbox or a password.
 */
#include <stdio.h>
#include <stdlib.h>

#include "mail/daemon.h"
#include "mail/netsvc.h"
#include "util/conn.h"
#include "util/log.h"

#define GREETING "* BYE [UNAVAILABLE] IMAP service is not available yet, try again later\r\n"
/* Enough for a client that talks before the greeting; nothing is read here. */
#define IN_MAX 1024

static struct mc_daemon daemon_;

struct session {
	char id[16];
};

static void
conf(const struct mc_config *cfg, struct mc_netsvc_conf *c)
{
	c->listen = &cfg->imapd.listen;
	c->listen_tls = &cfg->imapd.listen_tls;
	c->max_connections = cfg->imapd.max_connections;
}

static void
on_read(struct mc_conn *c, void *arg)
{
	/* Whatever the client sends before the close is not acted on. */
	mc_buf_reset(mc_conn_in(c));
	(void)arg;
}

static void
on_timeout(struct mc_conn *c, void *arg)
{
	mc_conn_abort(c);
	(void)arg;
}

static void
on_close(struct mc_conn *c, void *arg, const char *why)
{
	struct session *s = arg;
	mc_debug("%s: closed: %s", s->id, why);
	free(s);
	(void)c;
}

static const struct mc_conn_cbs session_cbs = {
	.on_read = on_read,
	.on_timeout = on_timeout,
	.on_close = on_close,
};

static void *
on_client(struct mc_netsvc *svc, const struct mc_netsvc_client *cl, void *arg)
{
	struct session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	snprintf(s->id, sizeof(s->id), "%s", cl->id);
	mc_info("%s: refused from=%s tls=%s: service not available yet", s->id, cl->ip, cl->tls ? "yes" : "no");
	mc_conn_writes(cl->conn, GREETING);
	mc_conn_close(cl->conn);
	(void)svc;
	(void)arg;
	return s;
}

static const struct mc_netsvc_ops ops = {
	.conf = conf,
	.in_max = IN_MAX,
	.id_prefix = 'I',
	.busy_reply = "* BYE [UNAVAILABLE] Too many connections, try again later\r\n",
	.cbs = &session_cbs,
	.on_client = on_client,
};

int
main(int argc, char **argv)
{
	struct mc_daemon *d = &daemon_;
	char err[1024];

	mc_daemon_init(d, "imapd", MC_ROLE_IMAPD, argc, argv);
	if (mc_netsvc_open(d, &ops, err, sizeof(err)) == NULL)
		mc_fatal("[imapd] %s", err);
	mc_daemon_drop(d, d->cfg.global.mail_user, NULL);
	return mc_daemon_run(d);
}
