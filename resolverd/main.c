/*
 * main.c - resolverd: the one process that answers lookups for the
 * others (the directory, credentials; DNS next) and the only one that
 * reads password hashes, and the one that asks DNS.
 *
 * Thin: load the config, listen on run_dir/resolverd.sock (mode 0666: the
 * HELLO role check with SO_PEERCRED is the security) while still root,
 * drop to [resolverd] user, open the directory as that user (creating it
 * when missing, so its files are that user's), then route every request
 * through the table below to the file that owns its type. Owns the
 * server socket and the directory handle; closes them on stop.
 */
#include "resolverd/resolverd.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

typedef void (*request_fn)(struct resolverd *rd, struct mc_chan *ch, struct mc_msg *m);

/* Request type -> the file that answers it. A new lookup (RES_MX in dns.c) is a new row. */
static const struct {
	uint16_t type;
	request_fn fn;
} requests[] = {
	{ MC_MSG_RES_RCPT, lookup_rcpt },
	{ MC_MSG_RES_EXPAND, lookup_expand },
	{ MC_MSG_RES_AUTH, auth_request },
	{ MC_MSG_RES_MX, dns_request },
};

static struct mc_daemon daemon_;
static struct resolverd rd_;

void
resolverd_bad_request(struct mc_chan *ch, struct mc_msg *m, const char *why)
{
	mc_warn("%s from=%s: answered with an error", why, mc_chan_peer_name(ch));
	mc_chan_reply_error(ch, m->reqid, m->type, 500, why);
}

static void
on_msg(struct mc_chan *ch, struct mc_msg *m, void *arg)
{
	struct resolverd *rd = arg;
	for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
		if (requests[i].type == m->type) {
			requests[i].fn(rd, ch, m);
			return;
		}
	}
	mc_warn("unexpected %s from=%s", mc_msg_type_name(m->type), mc_chan_peer_name(ch));
	if (!(m->flags & MC_MSG_F_NOREPLY))
		mc_chan_reply_error(ch, m->reqid, m->type, 500, "resolverd does not answer this request");
}

static void
on_up(struct mc_chan *ch, void *arg)
{
	struct resolverd *rd = arg;
	/* Marks the peers counted, since a peer that never said HELLO goes down without coming up. */
	mc_chan_set_data(ch, rd);
	rd->d->connections++;
	mc_debug("peer up name=%s role=%s", mc_chan_peer_name(ch), mc_role_name(mc_chan_peer_role(ch)));
}

static void
on_down(struct mc_chan *ch, void *arg)
{
	struct resolverd *rd = arg;
	auth_chan_down(rd, ch);
	dns_chan_down(rd, ch);
	if (mc_chan_get_data(ch) == rd && rd->d->connections > 0)
		rd->d->connections--;
	mc_debug("peer down name=%s", mc_chan_peer_name(ch));
}

static int
on_reload(struct mc_daemon *d, const struct mc_config *newcfg, char *err, size_t errsz)
{
	struct resolverd *rd = d->data;
	if (strcmp(newcfg->global.state_dir, d->cfg.global.state_dir) != 0)
		mc_warn("state_dir changed: the directory stays %s/%s until resolverd restarts",
			d->cfg.global.state_dir, MC_DIR_FILE);
	if (dns_reload(rd, newcfg, err, errsz) < 0)
		return -1;
	auth_reload(rd, newcfg);
	mc_info("auth limits delay_after=%u block_after=%u block_time=%us", newcfg->resolverd.auth_delay_after,
		newcfg->resolverd.auth_block_after, newcfg->resolverd.auth_block_time);
	return 0;
}

static void
on_stop(struct mc_daemon *d)
{
	struct resolverd *rd = d->data;
	auth_stop(rd);
	dns_stop(rd);
	if (rd->srv != NULL) {
		mc_chan_server_close(rd->srv);
		rd->srv = NULL;
	}
}

int
main(int argc, char **argv)
{
	static const struct mc_chan_cbs cbs = { .on_msg = on_msg, .on_up = on_up, .on_down = on_down };
	struct mc_daemon *d = &daemon_;
	struct resolverd *rd = &rd_;
	char path[MC_PATH_MAX + 64], err[1024];

	mc_daemon_init(d, "resolverd", MC_ROLE_RESOLVERD, argc, argv);
	rd->d = d;
	d->data = rd;
	d->on_reload = on_reload;
	d->on_stop = on_stop;

	/* run_dir exists: mc_daemon_init made it. */
	mc_config_sock(&d->cfg, path, sizeof(path), MC_SOCK_RESOLVERD);
	rd->srv = mc_chan_server_start(d->loop, path, 0666, &mc_proto, MC_ROLE_RESOLVERD, "resolverd", &cbs, rd);
	if (rd->srv == NULL)
		mc_fatal("cannot listen on %s", path);

	mc_daemon_drop(d, d->cfg.resolverd.user, NULL);

	rd->dir = mc_dir_open(&d->cfg, 100, err, sizeof(err));
	if (rd->dir == NULL)
		mc_fatal("%s", err);
	rd->dests = calloc(MC_DIR_EXPAND_MAX, sizeof(*rd->dests));
	if (rd->dests == NULL)
		mc_fatal("out of memory");
	if (auth_init(rd, err, sizeof(err)) < 0)
		mc_fatal("%s", err);
	if (dns_init(rd, err, sizeof(err)) < 0)
		mc_fatal("[resolverd] %s", err);
	mc_info("directory %s/%s open; listening on %s", d->cfg.global.state_dir, MC_DIR_FILE, path);

	int rc = mc_daemon_run(d);

	mc_dir_close(rd->dir);
	guard_free(rd->guard);
	dns_free(rd);
	free(rd->dests);
	return rc;
}
