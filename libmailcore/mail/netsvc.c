/*
 * netsvc.c - the network front of pop3d and imapd (see netsvc.h).
 *
 * Called by the daemons' mains (open) and, through mc_conn and mc_daemon
 * hooks, by the loop. Every accepted conn carries a struct client of this
 * file as its callback arg; the protocol's callbacks are called from here
 * with the protocol's session, so the count and the list stay right
 * whatever the protocol does. Mail tier because it drives mc_daemon.
 *
 * Owns the listeners (through util/listen), the TLS context and the
 * client records. Never: call the protocol before TLS is up on an
 * implicit-TLS port, or after a conn's on_close.
 */
#include "mail/netsvc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mail/daemon.h"
#include "util/listen.h"
#include "util/log.h"
#include "util/tls.h"

/* A TLS handshake that has not finished by then is dropped. */
#define HANDSHAKE_MS 10000
/* Bound for the busy reply's flush to a client that does not read. */
#define BUSY_MS 10000

enum { TAG_PLAIN = 1, TAG_TLS = 2 };

struct client {
	struct client *next, **prevp;
	struct mc_netsvc *svc;
	struct mc_conn *conn;
	void *sess;               /* the protocol's, once on_client accepted it */
	bool over;                /* over max_connections: busy reply, then close */
	char id[16];
};

struct mc_netsvc {
	struct mc_daemon *d;
	struct mc_netsvc_ops ops;
	struct mc_tls tls;
	unsigned max_connections;
	struct client *clients;
	unsigned count;
	unsigned total;           /* what max_connections bounds: count, or ops->count's sum over processes */
	uint32_t next_id;
	bool stopping;
};

static void
count_changed(struct mc_netsvc *svc)
{
	svc->d->connections = svc->count;
	svc->total = svc->ops.count ? svc->ops.count(svc, svc->count, svc->ops.arg) : svc->count;
}

/* TLS is up (or not needed): give the client to the protocol, or turn it away. */
static void
hand_over(struct client *cl)
{
	struct mc_netsvc *svc = cl->svc;
	if (cl->over || svc->stopping) {
		mc_info("%s: refused from=%s: %s", cl->id, mc_conn_peer_ip(cl->conn),
			svc->stopping ? "shutting down" : "too many connections");
		if (svc->ops.busy_reply)
			mc_conn_writes(cl->conn, svc->ops.busy_reply);
		mc_conn_set_timeout(cl->conn, BUSY_MS);
		mc_conn_close(cl->conn);
		return;
	}
	struct mc_netsvc_client info = {
		.conn = cl->conn,
		.id = cl->id,
		.ip = mc_conn_peer_ip(cl->conn),
		.port = mc_conn_peer_port(cl->conn),
		.tls = mc_conn_is_tls(cl->conn),
	};
	cl->sess = svc->ops.on_client(svc, &info, svc->ops.arg);
	if (cl->sess == NULL)
		mc_conn_abort(cl->conn);
}

static void
on_read(struct mc_conn *c, void *arg)
{
	struct client *cl = arg;
	if (cl->sess)
		cl->svc->ops.cbs->on_read(c, cl->sess);
	else
		mc_buf_reset(mc_conn_in(c));   /* before the greeting or after the busy reply: not acted on */
}

static void
on_drain(struct mc_conn *c, void *arg)
{
	struct client *cl = arg;
	if (cl->sess && cl->svc->ops.cbs->on_drain)
		cl->svc->ops.cbs->on_drain(c, cl->sess);
}

static void
on_tls(struct mc_conn *c, void *arg, bool ok)
{
	struct client *cl = arg;
	if (cl->sess) {
		if (cl->svc->ops.cbs->on_tls)
			cl->svc->ops.cbs->on_tls(c, cl->sess, ok);
		return;
	}
	if (!ok) {
		mc_info("%s: TLS handshake failed from=%s", cl->id, mc_conn_peer_ip(c));
		return;
	}
	mc_info("%s: tls %s from=%s", cl->id, mc_conn_tls_desc(c), mc_conn_peer_ip(c));
	hand_over(cl);
}

static void
on_timeout(struct mc_conn *c, void *arg)
{
	struct client *cl = arg;
	if (cl->sess) {
		cl->svc->ops.cbs->on_timeout(c, cl->sess);
		return;
	}
	mc_info("%s: timeout before the greeting from=%s", cl->id, mc_conn_peer_ip(c));
	mc_conn_abort(c);
}

static void
on_close(struct mc_conn *c, void *arg, const char *why)
{
	struct client *cl = arg;
	struct mc_netsvc *svc = cl->svc;
	if (cl->sess)
		svc->ops.cbs->on_close(c, cl->sess, why);
	else
		mc_debug("%s: closed: %s", cl->id, why ? why : "closed");
	*cl->prevp = cl->next;
	if (cl->next)
		cl->next->prevp = cl->prevp;
	svc->count--;
	count_changed(svc);
	free(cl);
}

static const struct mc_conn_cbs client_cbs = {
	.on_read = on_read,
	.on_drain = on_drain,
	.on_tls = on_tls,
	.on_timeout = on_timeout,
	.on_close = on_close,
};

/* A new conn: count it, then hand it over (plain) or start its TLS handshake (implicit TLS). */
static void
serve(struct mc_netsvc *svc, struct client *cl, bool tls)
{
	cl->next = svc->clients;
	cl->prevp = &svc->clients;
	if (svc->clients)
		svc->clients->prevp = &cl->next;
	svc->clients = cl;
	svc->count++;
	count_changed(svc);
	/* Request/response protocols: an answer's last short write must not wait for a delayed ACK. */
	mc_conn_set_nodelay(cl->conn, true);
	cl->over = svc->max_connections && svc->total > svc->max_connections;
	mc_debug("%s: connect from=%s:%u port=%u", cl->id, mc_conn_peer_ip(cl->conn), mc_conn_peer_port(cl->conn),
		 mc_conn_local_port(cl->conn));
	if (!tls) {
		hand_over(cl);
		return;
	}
	mc_conn_set_timeout(cl->conn, HANDSHAKE_MS);
	if (svc->tls.server == NULL || mc_conn_starttls(cl->conn, svc->tls.server, true, NULL) < 0) {
		mc_warn("%s: cannot start TLS from=%s", cl->id, mc_conn_peer_ip(cl->conn));
		mc_conn_abort(cl->conn);
	}
}

static struct client *
client_new(struct mc_netsvc *svc)
{
	struct client *cl = calloc(1, sizeof(*cl));
	if (cl == NULL)
		mc_panic("out of memory");
	cl->svc = svc;
	snprintf(cl->id, sizeof(cl->id), "%c%08X", svc->ops.id_prefix ? svc->ops.id_prefix : 'N', svc->next_id++);
	return cl;
}

static void
on_accept(uv_stream_t *server, int tag, void *arg)
{
	struct mc_netsvc *svc = arg;
	struct client *cl = client_new(svc);
	cl->conn = mc_conn_accept(server, svc->ops.in_max, &client_cbs, cl);
	if (cl->conn == NULL) {
		free(cl);
		return;
	}
	serve(svc, cl, tag == TAG_TLS);
}

int
mc_netsvc_adopt(struct mc_netsvc *svc, int fd)
{
	struct client *cl = client_new(svc);
	cl->conn = mc_conn_open(svc->d->loop, fd, svc->ops.in_max, &client_cbs, cl);
	if (cl->conn == NULL) {
		free(cl);
		return -1;
	}
	serve(svc, cl, false);
	return 0;
}

static int
on_reload(struct mc_daemon *d, const struct mc_config *n, char *err, size_t errsz)
{
	struct mc_netsvc *svc = d->data;
	struct mc_netsvc_conf conf = { 0 };
	/* A certificate that does not load keeps the old one; the rest still applies. */
	if (svc->tls.server)
		mc_daemon_reload_tls(d, &svc->tls, n);
	svc->ops.conf(n, &conf);
	if (svc->ops.on_reload && svc->ops.on_reload(svc, n, err, errsz) < 0)
		return -1;
	svc->max_connections = conf.max_connections;
	return 0;
}

static void
on_stop(struct mc_daemon *d)
{
	struct mc_netsvc *svc = d->data;
	struct client *next;
	svc->stopping = true;
	mc_listen_close_all();
	for (struct client *cl = svc->clients; cl; cl = next) {
		next = cl->next;
		if (cl->sess && svc->ops.on_shutdown)
			svc->ops.on_shutdown(cl->sess);
		else
			mc_conn_abort(cl->conn);
	}
	if (svc->ops.on_stop)
		svc->ops.on_stop(svc);
}

struct mc_netsvc *
mc_netsvc_open(struct mc_daemon *d, const struct mc_netsvc_ops *ops, char *err, size_t errsz)
{
	const struct mc_config *cfg = &d->cfg;
	struct mc_netsvc_conf conf = { 0 };
	struct mc_netsvc *svc = calloc(1, sizeof(*svc));
	if (svc == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	svc->d = d;
	svc->ops = *ops;
	ops->conf(cfg, &conf);
	svc->max_connections = conf.max_connections;
	mc_netsvc_reseed(svc);

	bool any = (conf.listen && conf.listen->n) || (conf.listen_tls && conf.listen_tls->n);
	if (any) {
		char e[512];
		if (cfg->global.tls_self_signed &&
		    mc_tls_selfsigned(cfg->global.tls_cert, cfg->global.tls_key, cfg->global.hostname, e, sizeof(e)) < 0) {
			snprintf(err, errsz, "TLS certificate: %s", e);
			goto fail;
		}
		if (mc_tls_load(&svc->tls, cfg->global.tls_cert, cfg->global.tls_key, e, sizeof(e)) < 0) {
			snprintf(err, errsz, "TLS: %s", e);
			goto fail;
		}
	}
	if ((conf.listen && mc_listen_open(d->loop, conf.listen, TAG_PLAIN, on_accept, svc, err, errsz) < 0) ||
	    (conf.listen_tls && mc_listen_open(d->loop, conf.listen_tls, TAG_TLS, on_accept, svc, err, errsz) < 0)) {
		mc_listen_close_all();
		goto fail;
	}
	d->data = svc;
	d->on_reload = on_reload;
	d->on_stop = on_stop;
	return svc;
fail:
	mc_tls_free(&svc->tls);
	free(svc);
	return NULL;
}

void
mc_netsvc_reseed(struct mc_netsvc *svc)
{
	/* Session ids differ across restarts and processes: seeded from the clock and the pid. */
	svc->next_id = (uint32_t)time(NULL) * 2654435761u ^ ((uint32_t)getpid() << 16);
}

SSL_CTX *
mc_netsvc_tls(const struct mc_netsvc *svc)
{
	return svc->tls.server;
}

unsigned
mc_netsvc_count(const struct mc_netsvc *svc)
{
	return svc->count;
}

bool
mc_netsvc_stopping(const struct mc_netsvc *svc)
{
	return svc->stopping;
}

struct mc_daemon *
mc_netsvc_daemon(const struct mc_netsvc *svc)
{
	return svc->d;
}

void *
mc_netsvc_arg(const struct mc_netsvc *svc)
{
	return svc->ops.arg;
}

bool
mc_netsvc_plain_auth_ok(const struct mc_conn *c, int allow_plaintext_auth)
{
	if (mc_conn_is_tls(c))
		return true;
	switch (allow_plaintext_auth) {
	case MC_PLAIN_YES:
		return true;
	case MC_PLAIN_LOOPBACK:
		return mc_conn_peer_is_loopback(c);
	default:
		return false;
	}
}
