/*
 * queued/main.c - the queue manager's start-up and shut-down.
 *
 * Order: config; umask 007 (Maildir files 0660, directories 2770); the
 * queue directory made with its owner while still root; queued.sock bound
 * (mode 0666: the HELLO role check is the security); privileges dropped
 * to [queued] user with the mail store's group; then the database, the
 * start-up check, resolverd, and the loop. SIGTERM stops accepting, lets
 * the current batch and the running deliveries finish, and records what
 * they did. The work lives in submit.c, deliver.c, sched.c, qdb.c, check.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/proto.h"
#include "queued/queued.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/privdrop.h"

static struct mc_daemon daemon_;
static struct queued queued_;

static void
on_chan_msg(struct mc_chan *ch, struct mc_msg *m, void *arg)
{
	q_submit_on_msg(arg, ch, m);
}

static void
on_chan_up(struct mc_chan *ch, void *arg)
{
	q_submit_on_up(arg, ch);
}

static void
on_chan_down(struct mc_chan *ch, void *arg)
{
	q_submit_on_down(arg, ch);
}

static void
on_ctl(struct mc_daemon *d, struct mc_chan *ch, struct mc_msg *m)
{
	q_ctl_on_msg(d->data, ch, m);
}

static void
on_ctl_down(struct mc_daemon *d, struct mc_chan *ch)
{
	q_ctl_on_down(d->data, ch);
}

static void
on_stop(struct mc_daemon *d)
{
	struct queued *q = d->data;
	q->stopping = true;
	if (q->srv) {
		mc_chan_server_close(q->srv);
		q->srv = NULL;
	}
	q_sched_stop(q);
	q_submit_stop(q);
	q_deliver_stop(q);
	if (q->res) {
		mc_resolver_close(q->res);
		q->res = NULL;
	}
}

/*
 * state_dir/queue owned by [queued] user, mode 0700. Made (or given back
 * its owner) while still root; as an ordinary user it is simply made.
 */
static void
prepare_queue_dir(struct queued *q)
{
	const struct mc_config *cfg = &q->d->cfg;
	/* state_dir itself is normally made by postern_prepare; when it is not, others must be able to pass */
	if (mc_mkdir_p(q->d->cfg.global.state_dir, 0755) < 0 || (mkdir(q->qdir, 0700) < 0 && errno != EEXIST))
		mc_fatal("cannot create the queue directory %s: %s", q->qdir, strerror(errno));
	if (!mc_privdrop_is_root())
		return;
	struct mc_ids ids;
	char err[512];
	if (mc_privdrop_lookup(cfg->queued.user, NULL, &ids, err, sizeof(err)) < 0)
		mc_fatal("%s", err);
	struct stat sb;
	if (stat(q->qdir, &sb) == 0 && (sb.st_uid != ids.uid || (sb.st_mode & 07777) != 0700)) {
		if (chown(q->qdir, ids.uid, ids.gid) < 0 || chmod(q->qdir, 0700) < 0)
			mc_fatal("cannot give %s to user %s: %s", q->qdir, cfg->queued.user, strerror(errno));
	}
}

static void
open_queue(struct queued *q)
{
	char err[1024], p[MC_PATH_MAX + 32];
	if ((mkdir(q->incoming, 0700) < 0 && errno != EEXIST) || (mkdir(q->active, 0700) < 0 && errno != EEXIST))
		mc_fatal("cannot create %s and %s: %s", q->incoming, q->active, strerror(errno));
	q->qdir_fd = open(q->qdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (q->qdir_fd < 0)
		mc_fatal("cannot open the queue directory %s: %s", q->qdir, strerror(errno));
	snprintf(p, sizeof(p), "%s/queue.sqlite", q->qdir);
	q->db = qdb_open(p, err, sizeof(err));
	if (q->db == NULL)
		mc_fatal("cannot open the queue database: %s", err);

	struct q_check_stats st;
	if (q_check_run(q->qdir, q->db, &st, err, sizeof(err)) < 0)
		mc_fatal("queue check failed: %s", err);
	mc_info("queue checked: messages=%u corrupt=%u unfinished_removed=%u orphans_removed=%u", st.messages,
		st.corrupt, st.incoming_removed, st.orphans_removed);
}

int
main(int argc, char **argv)
{
	struct mc_daemon *d = &daemon_;
	struct queued *q = &queued_;

	mc_daemon_init(d, "queued", MC_ROLE_QUEUED, argc, argv);
	umask(007);

	/* the threadpool carries fsyncs, Maildir deliveries and the database: size it before its first use */
	char tp[16];
	unsigned workers = d->cfg.queued.delivery_workers ? d->cfg.queued.delivery_workers : 1;
	snprintf(tp, sizeof(tp), "%u", workers + 4 > 128 ? 128 : workers + 4);
	setenv("UV_THREADPOOL_SIZE", tp, 0);

	q->d = d;
	q->loop = d->loop;
	q->qdir_fd = -1;
	mc_config_path(&d->cfg, q->qdir, sizeof(q->qdir), "queue");
	mc_config_path(&d->cfg, q->mail_root, sizeof(q->mail_root), "mail");
	snprintf(q->incoming, sizeof(q->incoming), "%.1000s/incoming", q->qdir);
	snprintf(q->active, sizeof(q->active), "%.1000s/active", q->qdir);
	prepare_queue_dir(q);

	char sock[MC_PATH_MAX + 64];
	mc_config_sock(&d->cfg, sock, sizeof(sock), MC_SOCK_QUEUED);
	static const struct mc_chan_cbs cbs = { .on_msg = on_chan_msg, .on_up = on_chan_up, .on_down = on_chan_down };
	if (mc_mkdir_p(d->cfg.global.run_dir, 0755) < 0)
		mc_fatal("cannot create run directory %s: %s", d->cfg.global.run_dir, strerror(errno));
	q->srv = mc_chan_server_start(d->loop, sock, 0666, &mc_proto, MC_ROLE_QUEUED, "queued", &cbs, q);
	if (q->srv == NULL)
		mc_fatal("cannot listen on %s", sock);

	q_relay_preinit(q);   /* the relayhost password file may be readable by root only */
	const char *groups[] = { d->cfg.global.mail_user, NULL };
	mc_daemon_drop(d, d->cfg.queued.user, groups);

	open_queue(q);
	q_lane_init(&q->lane, d->loop, q->db);
	if (q_deliver_init(q) < 0 || q_ctl_init(q) < 0 || q_spool_init(q) < 0 || q_submit_init(q) < 0)
		mc_fatal("out of memory");
	q->res = mc_resolver_open(d->loop, &d->cfg, MC_ROLE_QUEUED, "queued");
	if (q->res == NULL)
		mc_fatal("cannot set up the resolverd client");

	d->data = q;
	d->on_stop = on_stop;
	d->on_ctl = on_ctl;
	d->on_ctl_down = on_ctl_down;
	mc_daemon_set_state(d, "resolverd unreachable");
	q_sched_start(q);
	int rc = mc_daemon_run(d);

	q_deliver_free(q);
	q_ctl_free(q);
	q_submit_free(q);
	q_spool_free(q);
	qdb_close(q->db);
	if (q->qdir_fd >= 0)
		close(q->qdir_fd);
	return rc;
}
