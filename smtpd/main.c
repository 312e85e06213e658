/*
 * main.c - smtpd's thin main: config, TLS, listeners, privilege drop,
 * peers, loop.
 *
 * Binds the three listener lists ([smtpd] listen, submission,
 * submissions) and loads the TLS key while still root, drops to
 * [smtpd] user, opens the channels to resolverd and queued, and runs the
 * loop; sessions (session.c) only touch the network from the loop, after
 * the drop. Reload re-reads the limits and the certificate (from the
 * descriptors `postern reload` passes, since the root-only key is not
 * readable after the drop; else from the path); stop closes the listeners, lets sessions
 * finish for a few seconds, then closes them.
 *
 * Owns the daemon, the server struct, the TLS contexts and the peers'
 * clients. Never: accept a connection before the drop.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "mail/daemon.h"
#include "mail/queue_client.h"
#include "mail/resolver_client.h"
#include "smtpd/smtpd.h"
#include "util/listen.h"
#include "util/log.h"
#include "util/tls.h"

/* Sessions still busy this long after a stop are closed (below daemon.c's own limit). */
#define STOP_SESSIONS_MS 5000
#define STATE_POLL_MS 1000

static struct mc_daemon daemon_;
static struct smtpd_server srv;
static struct mc_tls tls;
static uv_timer_t state_timer, grace_timer;

static void
update_state(uv_timer_t *t)
{
	bool q = mc_queue_client_is_up(srv.queue), r = mc_resolver_is_up(srv.res);
	if (q && r)
		mc_daemon_set_state(&daemon_, "running");
	else
		mc_daemon_set_state(&daemon_, "%s%s%s unreachable", q ? "" : "queued", !q && !r ? " and " : "",
				    r ? "" : "resolverd");
}

static bool
same_listen(const struct mc_listen_list *a, const struct mc_listen_list *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->a[i].text, b->a[i].text) != 0)
			return false;
	return true;
}

static int
on_reload(struct mc_daemon *d, const struct mc_config *n, char *err, size_t errsz)
{
	/*
	 * From the files the requester passed (a root-only key cannot be
	 * opened again after the drop), else from the paths; a certificate
	 * that does not load keeps the old one and the rest still applies.
	 */
	mc_daemon_reload_tls(d, &tls, n);
	smtpd_server_limits(&srv, n);
	if (!same_listen(&d->cfg.smtpd.listen, &n->smtpd.listen) ||
	    !same_listen(&d->cfg.smtpd.submission, &n->smtpd.submission) ||
	    !same_listen(&d->cfg.smtpd.submissions, &n->smtpd.submissions))
		mc_warn("listen addresses changed: they take effect at the next restart of smtpd");
	return 0;
}

static void
close_peers(struct smtpd_server *s)
{
	if (uv_is_active((uv_handle_t *)&grace_timer))
		uv_timer_stop(&grace_timer);
	if (!uv_is_closing((uv_handle_t *)&grace_timer))
		uv_close((uv_handle_t *)&grace_timer, NULL);
	if (s->res) {
		mc_resolver_close(s->res);
		s->res = NULL;
	}
	if (s->queue) {
		mc_queue_client_close(s->queue);
		s->queue = NULL;
	}
}

static void
grace_over(uv_timer_t *t)
{
	mc_info("stop: closing %u remaining sessions", srv.nsessions);
	smtpd_server_close_all(&srv);
}

static void
on_stop(struct mc_daemon *d)
{
	mc_listen_close_all();
	uv_timer_stop(&state_timer);
	uv_close((uv_handle_t *)&state_timer, NULL);
	uv_timer_start(&grace_timer, grace_over, STOP_SESSIONS_MS, 0);
	srv.on_empty = close_peers;
	smtpd_server_stop(&srv);
}

int
main(int argc, char **argv)
{
	struct mc_daemon *d = &daemon_;
	const struct mc_config *cfg = &d->cfg;
	char err[1024];

	mc_daemon_init(d, "smtpd", MC_ROLE_SMTPD, argc, argv);
	if (cfg->global.tls_self_signed &&
	    mc_tls_selfsigned(cfg->global.tls_cert, cfg->global.tls_key, cfg->global.hostname, err, sizeof(err)) < 0)
		mc_fatal("TLS certificate: %s", err);
	if (mc_tls_load(&tls, cfg->global.tls_cert, cfg->global.tls_key, err, sizeof(err)) < 0)
		mc_fatal("TLS: %s", err);

	smtpd_server_init(&srv, d->loop, cfg);
	srv.tls = &tls;
	srv.daemon = d;
	static const struct {
		size_t off;
		int tag;
		const char *name;
	} lists[] = {
		{ offsetof(struct mc_config, smtpd.listen), SMTPD_MX, "listen" },
		{ offsetof(struct mc_config, smtpd.submission), SMTPD_SUBMISSION, "submission" },
		{ offsetof(struct mc_config, smtpd.submissions), SMTPD_SUBMISSIONS, "submissions" },
	};
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		const struct mc_listen_list *l = (const void *)((const char *)cfg + lists[i].off);
		if (mc_listen_open(d->loop, l, lists[i].tag, smtpd_server_accept, &srv, err, sizeof(err)) < 0)
			mc_fatal("[smtpd] %s: %s", lists[i].name, err);
	}

	mc_daemon_drop(d, cfg->smtpd.user, NULL);
	mc_proto_set_identities(cfg);
	srv.res = mc_resolver_open(d->loop, cfg, MC_ROLE_SMTPD, "smtpd");
	srv.queue = mc_queue_client_open(d->loop, cfg, MC_ROLE_SMTPD, "smtpd");

	d->data = &srv;
	d->on_reload = on_reload;
	d->on_stop = on_stop;
	uv_timer_init(d->loop, &grace_timer);
	uv_timer_init(d->loop, &state_timer);
	uv_timer_start(&state_timer, update_state, STATE_POLL_MS, STATE_POLL_MS);
	mc_daemon_set_state(d, "starting");
	return mc_daemon_run(d);
}
