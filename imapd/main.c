/*
 * main.c - imapd's thin main: config, the network front, privilege drop,
 * peers, loop (RFC 3501 / 9051; 993 implicit TLS, RFC 8314).
 *
 * The shared front (mail/netsvc) binds [imapd] listen and listen_tls and
 * loads the TLS key while still root, counts connections, refuses past
 * max_connections and handles reload and stop; the sessions (session.c)
 * are the protocol. After the drop to [global] mail_user (the owner of the
 * mail store) imapd opens its resolverd client (logins) and its notice
 * socket run_dir/imapd.sock (queued's MBOX_CHANGED, for IDLE).
 *
 * With [imapd] processes above 1 (auto: one per CPU) this process becomes
 * the master after the drop and forks the workers that serve (procs.c);
 * each worker opens its own resolverd client in serve().
 *
 * Owns the daemon and the server struct. Never: accept a client before
 * the drop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "imapd/imapd.h"
#include "mail/daemon.h"
#include "mail/mailstore.h"
#include "mail/netsvc.h"
#include "mail/resolver_client.h"
#include "util/log.h"

#define STATE_POLL_MS 1000
/*
 * Descriptors a logged-in session holds at most: its socket, and when it is
 * its user's only session, the user's index.sqlite, its -wal and its -shm
 * (a user's sessions share one open store, which is closed while they all
 * IDLE: stores.c).
 */
#define FDS_PER_SESSION 4
#define FDS_RESERVED 64

static struct mc_daemon daemon_;
static struct imapd_server srv;
static uv_timer_t state_timer;

static void
conf(const struct mc_config *cfg, struct mc_netsvc_conf *c)
{
	c->listen = &cfg->imapd.listen;
	c->listen_tls = &cfg->imapd.listen_tls;
	c->max_connections = cfg->imapd.max_connections;
}

/* Say so when max_connections logged-in sessions would not fit in the open files limit. */
static void
check_nofile(const struct mc_daemon *d, unsigned max_connections)
{
	unsigned long need = (unsigned long)max_connections * FDS_PER_SESSION + FDS_RESERVED;
	if (max_connections == 0 || d->nofile >= need)
		return;
	mc_warn("max_connections=%u may need up to %lu open files (every session another user's and busy; "
		"an IDLE session holds one), the limit is %lu: raise it (ulimit -Hn, LimitNOFILE=) or logins may fail "
		"past about %lu busy sessions of different users",
		max_connections, need, d->nofile,
		d->nofile > FDS_RESERVED ? (d->nofile - FDS_RESERVED) / FDS_PER_SESSION : 0);
}

static int
on_reload(struct mc_netsvc *svc, const struct mc_config *n, char *err, size_t errsz)
{
	imapd_server_limits(&srv, n);
	check_nofile(&daemon_, n->imapd.max_connections);
	/* The master's own context (for workers forked later) is reloaded; now the running workers'. */
	imapd_procs_reload(&daemon_);
	imapd_procs_check_reload(n);
	(void)svc;
	(void)err;
	(void)errsz;
	return 0;
}

static void
on_stop(struct mc_netsvc *svc)
{
	uv_timer_stop(&state_timer);
	uv_close((uv_handle_t *)&state_timer, NULL);
	imapd_procs_stop();
	imapd_procs_worker_stop();
	imapd_notices_stop(&srv);
	if (srv.res) {
		mc_resolver_close(srv.res);
		srv.res = NULL;
	}
	(void)svc;
}

static void
update_state(uv_timer_t *t)
{
	if (srv.res == NULL) {
		imapd_procs_status(&daemon_);   /* the master: its workers say */
		return;
	}
	bool up = mc_resolver_is_up(srv.res);
	mc_daemon_set_state(&daemon_, "%s", up ? "running" : "resolverd unreachable");
	imapd_procs_report(up);
	(void)t;
}

static const struct mc_netsvc_ops ops = {
	.conf = conf,
	.in_max = IMAPD_IN_MAX,
	.id_prefix = 'I',
	.busy_reply = IMAPD_BUSY_REPLY,
	.cbs = &imapd_session_cbs,
	.on_client = imapd_server_client,
	.on_shutdown = imapd_session_shutdown,
	.on_reload = on_reload,
	.on_stop = on_stop,
	.count = imapd_procs_count,
	.arg = &srv,
};

/* Serve clients on d's loop: the one process, or a worker (procs.c calls it after the fork). */
static int
serve(struct mc_daemon *d)
{
	srv.res = mc_resolver_open(d->loop, &d->cfg, MC_ROLE_IMAPD, "imapd");
	uv_timer_init(d->loop, &state_timer);
	uv_timer_start(&state_timer, update_state, STATE_POLL_MS, STATE_POLL_MS);
	mc_daemon_set_state(d, "starting");
	return mc_daemon_run(d);
}

int
main(int argc, char **argv)
{
	struct mc_daemon *d = &daemon_;
	char err[1024];

	mc_daemon_init(d, "imapd", MC_ROLE_IMAPD, argc, argv);
	/*
	 * A first login creates the user's store (Maildir and index.sqlite): 0660
	 * files and 2770 directories, as queued makes them, or queued, running as
	 * another user of the mail group, could not deliver into it.
	 */
	umask(007);
	/*
	 * APPEND's fsyncs run in libuv's thread pool (append.c): enough threads that
	 * sessions appending at once do not queue behind each other's disk waits.
	 * libuv reads this once, at the pool's first use: before the loop runs.
	 */
	setenv("UV_THREADPOOL_SIZE", "8", 0);
	/* Every logged-in session holds its own SQLite connection: each must cost little. */
	if (mc_store_lean_memory() < 0)
		mc_warn("SQLite was initialised already: every session's index connection keeps its default caches");
	imapd_server_init(&srv, d->loop, &d->cfg);
	check_nofile(d, d->cfg.imapd.max_connections);
	srv.svc = mc_netsvc_open(d, &ops, err, sizeof(err));
	if (srv.svc == NULL)
		mc_fatal("[imapd] %s", err);
	/* run_dir may not be writable after the drop: the notice socket is made before it, as queued's is. */
	mc_proto_set_identities(&d->cfg);
	imapd_notices_start(&srv, &d->cfg);
	mc_daemon_drop(d, d->cfg.global.mail_user, NULL);
	mc_proto_set_identities(&d->cfg);
	unsigned n = imapd_procs_wanted(&d->cfg);
	if (n > 1 && imapd_procs_start(&srv, d, n, serve) == 0) {
		/* The master: status, reload and stop; the workers serve. */
		d->on_status = imapd_procs_status;
		uv_timer_init(d->loop, &state_timer);
		uv_timer_start(&state_timer, update_state, STATE_POLL_MS, STATE_POLL_MS);
		imapd_procs_status(d);
		return mc_daemon_run(d);
	}
	return serve(d);
}
