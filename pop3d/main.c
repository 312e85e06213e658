/*
 * main.c - pop3d's thin main: config, the network front, privilege drop,
 * resolverd, loop (RFC 1939 POP3; 995 implicit TLS, RFC 8314).
 *
 * The listeners of [pop3d] (listen, with STLS; listen_tls, implicit TLS),
 * the TLS context, max_connections, the count for `postern status`,
 * reload and stop are mail/netsvc's; sessions (session.c) take each
 * client from it. Runs as [global] mail_user, the mail store's owner, and
 * opens the channel to resolverd (AUTH) after the drop.
 *
 * Owns the daemon, the server struct and the resolverd client. Never:
 * accept a connection before the drop.
 */
#include <stdio.h>
#include <sys/stat.h>

#include "mail/daemon.h"
#include "mail/netsvc.h"
#include "mail/resolver_client.h"
#include "pop3d/pop3d.h"
#include "util/log.h"

#define STATE_POLL_MS 1000

static struct mc_daemon daemon_;
static struct pop3_server srv;
static uv_timer_t state_timer;

static void
conf(const struct mc_config *cfg, struct mc_netsvc_conf *c)
{
	c->listen = &cfg->pop3d.listen;
	c->listen_tls = &cfg->pop3d.listen_tls;
	c->max_connections = cfg->pop3d.max_connections;
}

static void
update_state(uv_timer_t *t)
{
	(void)t;
	mc_daemon_set_state(&daemon_, "%s", srv.res && mc_resolver_is_up(srv.res) ? "running" : "resolverd unreachable");
}

static int
on_reload(struct mc_netsvc *svc, const struct mc_config *n, char *err, size_t errsz)
{
	(void)svc;
	(void)err;
	(void)errsz;
	pop3_server_limits(&srv, n);
	return 0;
}

static void
on_stop(struct mc_netsvc *svc)
{
	(void)svc;
	uv_timer_stop(&state_timer);
	uv_close((uv_handle_t *)&state_timer, NULL);
	if (srv.res) {
		mc_resolver_close(srv.res);
		srv.res = NULL;
	}
}

static const struct mc_netsvc_ops ops = {
	.conf = conf,
	.in_max = MC_SASL_LINE_MAX + 4096,
	.id_prefix = 'P',
	.busy_reply = "-ERR [SYS/TEMP] Too many connections, try again later\r\n",
	.cbs = &pop3_session_cbs,
	.on_client = pop3_session_new,
	.on_shutdown = pop3_session_shutdown,
	.on_reload = on_reload,
	.on_stop = on_stop,
	.arg = &srv,
};

int
main(int argc, char **argv)
{
	struct mc_daemon *d = &daemon_;
	char err[1024];

	mc_daemon_init(d, "pop3d", MC_ROLE_POP3D, argc, argv);
	/*
	 * A first login creates the user's store (Maildir and index.sqlite): 0660
	 * files and 2770 directories, as queued makes them, or queued, running as
	 * another user of the mail group, could not deliver into it.
	 */
	umask(007);
	pop3_server_init(&srv, d->loop, &d->cfg);
	srv.svc = mc_netsvc_open(d, &ops, err, sizeof(err));
	if (srv.svc == NULL)
		mc_fatal("[pop3d] %s", err);
	mc_daemon_drop(d, d->cfg.global.mail_user, NULL);
	mc_proto_set_identities(&d->cfg);
	srv.res = mc_resolver_open(d->loop, &d->cfg, MC_ROLE_POP3D, "pop3d");
	uv_timer_init(d->loop, &state_timer);
	uv_timer_start(&state_timer, update_state, STATE_POLL_MS, STATE_POLL_MS);
	mc_daemon_set_state(d, "starting");
	return mc_daemon_run(d);
}
