/*
 * daemon.c - the part of every daemon's main that is the same everywhere
 * (see daemon.h): options, config, logging, the control socket, the
 * privilege drop, signals and the run of the loop.
 *
 * Called by the mains of smtpd, queued, resolverd, pop3d and imapd, in
 * the order init, (bind), drop, (connect), run. Owns the control server,
 * the signal handles and the certificate descriptors a CTL_RELOAD brings
 * (lent to on_reload, closed after it); the daemon owns everything else
 * it opened and closes it in its on_stop hook. This is the one library
 * file allowed to exit the process, and only where daemon.h says so: a
 * usage error, a config that does not load, a failed drop, a stop that
 * hangs.
 */
#include "mail/daemon.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "postern_build.h"
#include "util/fsutil.h"
#include "util/log.h"

/* How long a stop may take before the daemon gives up waiting and exits. */
#define STOP_GRACE_MS 10000

/* Error code in control replies that refuse a request. */
#define CTL_REFUSED 1

/* One daemon per process: the timer that ends a stop that hangs. */
static uv_timer_t stop_timer;

static void
usage(const char *name, FILE *f)
{
	fprintf(f, "usage: %s [-c FILE]\n", name);
}

/*
 * Every connection costs descriptors (imapd: the socket, then the user's
 * index and its WAL), and the soft limit a service manager or shell hands
 * over is often 1024 while the hard one is far higher: take the hard one,
 * as Dovecot's master and nginx do, so max_connections is what bounds.
 */
static void
raise_nofile(struct mc_daemon *d)
{
	struct rlimit rl;
	d->nofile = 0;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit want = { rl.rlim_max, rl.rlim_max };
		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			rl.rlim_cur = rl.rlim_max;
		else
			mc_warn("cannot raise the open files limit from %llu to %llu: %s", (unsigned long long)rl.rlim_cur,
				(unsigned long long)rl.rlim_max, strerror(errno));
	}
	d->nofile = rl.rlim_cur == RLIM_INFINITY ? (unsigned long)-1 : (unsigned long)rl.rlim_cur;
}

void
mc_daemon_init(struct mc_daemon *d, const char *name, enum mc_role role, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	d->name = name;
	d->role = role;
	d->config_path = NULL;
	d->connections = 0;
	d->stopping = false;
	d->ctl = NULL;
	d->reload_cert_fd = -1;
	d->reload_key_fd = -1;
	mc_log_init(name, MC_LOG_INFO);

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			d->config_path = optarg;
			break;
		case 'h':
			usage(name, stdout);
			exit(0);
		case 'V':
			printf("%s (postern) %s\n", name, POSTERN_VERSION);
			exit(0);
		default:
			if (optopt == 'c')
				fprintf(stderr, "%s: option -c needs a file name\n", name);
			else if (optopt)
				fprintf(stderr, "%s: unknown option '-%c'\n", name, optopt);
			else
				fprintf(stderr, "%s: unknown option '%s'\n", name, argv[optind - 1]);
			usage(name, stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", name, argv[optind]);
		usage(name, stderr);
		exit(2);
	}

	char err[1024];
	if (mc_config_load(&d->cfg, d->config_path, err, sizeof(err)) < 0)
		mc_fatal("%s", err);
	mc_log_set_level((enum mc_log_level)d->cfg.global.log_level);
	mc_proto_set_identities(&d->cfg);
	/* The daemon binds its sockets there next, before mc_daemon_drop. */
	if (mc_mkdir_p(d->cfg.global.run_dir, 0755) < 0)
		mc_fatal("cannot create run directory %s: %s", d->cfg.global.run_dir, strerror(errno));

	raise_nofile(d);
	d->loop = uv_default_loop();
	d->started = time(NULL);
	mc_daemon_set_state(d, "running");
}

void
mc_daemon_set_state(struct mc_daemon *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->state, sizeof(d->state), fmt, ap);
	va_end(ap);
}

/*
 * Re-read the config file; on success the daemon's hook and the log level
 * see it. The certificate and key descriptors (-1: none) are the hook's to
 * read during the call; the caller closes them. -1 with err.
 */
int
mc_daemon_reload(struct mc_daemon *d, int cert_fd, int key_fd, char *err, size_t errsz)
{
	struct mc_config *n = malloc(sizeof(*n));
	if (n == NULL)
		mc_panic("out of memory");
	int rc = mc_config_load(n, d->config_path, err, errsz);
	if (rc == 0 && d->on_reload) {
		d->reload_cert_fd = cert_fd;
		d->reload_key_fd = key_fd;
		rc = d->on_reload(d, n, err, errsz);
		d->reload_cert_fd = -1;
		d->reload_key_fd = -1;
	}
	if (rc == 0) {
		d->cfg = *n;
		mc_log_set_level((enum mc_log_level)d->cfg.global.log_level);
	}
	free(n);
	return rc < 0 ? -1 : 0;
}

int
mc_daemon_reload_tls(struct mc_daemon *d, struct mc_tls *t, const struct mc_config *n)
{
	char why[1024];
	const char *cert = n->global.tls_cert, *key = n->global.tls_key;
	if (d->reload_cert_fd >= 0 && d->reload_key_fd >= 0) {
		if (mc_tls_reload_fds(t, d->reload_cert_fd, d->reload_key_fd, why, sizeof(why)) == 0) {
			mc_info("reloaded certificate=%s from the files passed", cert);
			return 0;
		}
		mc_warn("certificate not reloaded, the current one stays: %s", why);
		return -1;
	}
	if (mc_tls_reload(t, cert, key, why, sizeof(why)) == 0) {
		mc_info("reloaded certificate=%s", cert);
		return 0;
	}
	/* Root-only keys (as they should be) are out of reach once the daemon has dropped root. */
	if ((access(cert, R_OK) < 0 && errno == EACCES) || (access(key, R_OK) < 0 && errno == EACCES))
		mc_warn("certificate not reloaded, the current one stays: %s (%s runs as uid %lu); "
			"`postern reload` run as root passes the files to it",
			why, d->name, (unsigned long)geteuid());
	else
		mc_warn("certificate not reloaded, the current one stays: %s", why);
	return -1;
}

static void
reply_empty(struct mc_chan *ch, struct mc_msg *m)
{
	struct mc_msg r;
	mc_msg_init(&r, m->type);
	mc_chan_reply(ch, m->reqid, &r);
}

static void
ctl_status(struct mc_daemon *d, struct mc_chan *ch, struct mc_msg *m)
{
	struct mc_msg r;
	if (d->on_status)
		d->on_status(d);
	mc_msg_init(&r, m->type);
	mc_msg_put_str(&r, d->name);
	mc_msg_put_u32(&r, (uint32_t)getpid());
	mc_msg_put_u64(&r, (uint64_t)d->started);
	mc_msg_put_u32(&r, d->connections);
	mc_msg_put_str(&r, d->stopping ? "stopping" : d->state);
	mc_chan_reply(ch, m->reqid, &r);
}

/* Request: nothing, or the certificate and key files opened by the requester (mail/proto.h). */
static void
ctl_reload(struct mc_daemon *d, struct mc_chan *ch, struct mc_msg *m)
{
	char err[1024];
	int cert_fd = -1, key_fd = -1;
	/* A failed get leaves its descriptor at -1 and makes mc_msg_end fail. */
	if (mc_msg_more(m) && mc_msg_get_fd(m, &cert_fd) == 0)
		mc_msg_get_fd(m, &key_fd);
	if (mc_msg_end(m) < 0) {
		if (cert_fd >= 0)
			close(cert_fd);
		if (key_fd >= 0)
			close(key_fd);
		mc_chan_reply_error(ch, m->reqid, m->type, CTL_REFUSED,
				    "malformed request (nothing, or the certificate and key descriptors)");
		return;
	}
	int rc = mc_daemon_reload(d, cert_fd, key_fd, err, sizeof(err));
	if (cert_fd >= 0) {
		close(cert_fd);
		close(key_fd);
	}
	if (rc < 0) {
		mc_warn("reload refused by=%s: %s", mc_chan_peer_name(ch), err);
		mc_chan_reply_error(ch, m->reqid, m->type, CTL_REFUSED, err);
		return;
	}
	mc_info("reloaded config by=%s%s", mc_chan_peer_name(ch), cert_fd >= 0 ? " with certificate files" : "");
	reply_empty(ch, m);
}

static void
ctl_trace(struct mc_daemon *d, struct mc_chan *ch, struct mc_msg *m)
{
	char names[256];
	unsigned mask;
	if (mc_msg_get_str(m, names, sizeof(names)) < 0 || mc_msg_end(m) < 0) {
		mc_chan_reply_error(ch, m->reqid, m->type, CTL_REFUSED, "malformed request");
		return;
	}
	if (mc_trace_parse(names, &mask) < 0) {
		mc_chan_reply_error(ch, m->reqid, m->type, CTL_REFUSED,
				    "unknown trace name (ipc, proto, queue, store, dns, tls, auth, all, none)");
		return;
	}
	mc_trace_set(mask);
	mc_info("trace set to %s by=%s", names, mc_chan_peer_name(ch));
	(void)d;
	reply_empty(ch, m);
}

static void
ctl_loglevel(struct mc_daemon *d, struct mc_chan *ch, struct mc_msg *m)
{
	char level[32];
	int lvl;
	if (mc_msg_get_str(m, level, sizeof(level)) < 0 || mc_msg_end(m) < 0) {
		mc_chan_reply_error(ch, m->reqid, m->type, CTL_REFUSED, "malformed request");
		return;
	}
	if ((lvl = mc_log_level_parse(level)) < 0) {
		mc_chan_reply_error(ch, m->reqid, m->type, CTL_REFUSED,
				    "unknown log level (debug, info, notice, warning, error)");
		return;
	}
	mc_log_set_level((enum mc_log_level)lvl);
	/* Logged at the level that is always shown, so the change itself is never lost. */
	mc_notice("log level set to %s by=%s", level, mc_chan_peer_name(ch));
	(void)d;
	reply_empty(ch, m);
}

static void
ctl_on_msg(struct mc_chan *ch, struct mc_msg *m, void *arg)
{
	struct mc_daemon *d = arg;
	switch (m->type) {
	case MC_MSG_CTL_STATUS:
		ctl_status(d, ch, m);
		break;
	case MC_MSG_CTL_RELOAD:
		ctl_reload(d, ch, m);
		break;
	case MC_MSG_CTL_TRACE:
		ctl_trace(d, ch, m);
		break;
	case MC_MSG_CTL_LOGLEVEL:
		ctl_loglevel(d, ch, m);
		break;
	default:
		if (d->on_ctl) {
			d->on_ctl(d, ch, m);
		} else if (!(m->flags & MC_MSG_F_NOREPLY)) {
			char why[128];
			snprintf(why, sizeof(why), "%s does not handle %s", d->name, mc_msg_type_name(m->type));
			mc_chan_reply_error(ch, m->reqid, m->type, CTL_REFUSED, why);
		}
	}
}

static void
ctl_on_down(struct mc_chan *ch, void *arg)
{
	struct mc_daemon *d = arg;
	if (d->on_ctl_down)
		d->on_ctl_down(d, ch);
}

void
mc_daemon_drop(struct mc_daemon *d, const char *user, const char *const *extra_groups)
{
	static const struct mc_chan_cbs cbs = { .on_msg = ctl_on_msg, .on_down = ctl_on_down };
	char path[MC_PATH_MAX + 64], err[512];
	bool root = mc_privdrop_is_root();

	/* Who to become, looked up before anything is bound under that name. */
	memset(&d->ids, 0, sizeof(d->ids));
	if (root && user) {
		if (mc_privdrop_lookup(user, extra_groups, &d->ids, err, sizeof(err)) < 0)
			mc_fatal("%s", err);
	} else {
		d->ids.uid = getuid();
		d->ids.gid = getgid();
	}

	snprintf(path, sizeof(path), "%s/%s.ctl", d->cfg.global.run_dir, d->name);
	d->ctl = mc_chan_server_start(d->loop, path, 0660, &mc_proto, d->role, d->name, &cbs, d);
	if (d->ctl == NULL)
		mc_fatal("cannot listen on control socket %s", path);
	if (root) {
		/* The daemon's own user may remove it later; the admin group may connect. */
		struct group *gr = d->cfg.global.admin_group[0] ? getgrnam(d->cfg.global.admin_group) : NULL;
		uid_t uid = user ? d->ids.uid : (uid_t)-1;
		gid_t gid = gr ? gr->gr_gid : (gid_t)-1;
		if (chown(path, uid, gid) < 0)
			mc_fatal("cannot set the owner of %s: %s", path, strerror(errno));
	}

	if (root && user) {
		if (mc_privdrop(&d->ids, err, sizeof(err)) < 0)
			mc_fatal("%s", err);
		mc_info("running as user=%s uid=%lu gid=%lu", user, (unsigned long)d->ids.uid,
			(unsigned long)d->ids.gid);
	}
}

static void
stop_timeout(uv_timer_t *t)
{
	struct mc_daemon *d = t->data;
	mc_fatal("stop did not finish within %d s; exiting now", STOP_GRACE_MS / 1000);
	(void)d;
}

void
mc_daemon_stop(struct mc_daemon *d)
{
	if (d->stopping)
		return;
	d->stopping = true;
	mc_info("stopping");
	if (d->on_stop)
		d->on_stop(d);
	if (d->ctl) {
		mc_chan_server_close(d->ctl);
		d->ctl = NULL;
	}
	/* These stay armed while the rest winds down, but must not keep the loop alive. */
	uv_timer_init(d->loop, &stop_timer);
	stop_timer.data = d;
	uv_timer_start(&stop_timer, stop_timeout, STOP_GRACE_MS, 0);
	uv_unref((uv_handle_t *)&stop_timer);
	uv_unref((uv_handle_t *)&d->sighup);
	uv_unref((uv_handle_t *)&d->sigterm);
	uv_unref((uv_handle_t *)&d->sigint);
}

static void
on_signal(uv_signal_t *h, int signum)
{
	struct mc_daemon *d = h->data;
	if (signum == SIGHUP) {
		char err[1024];
		if (d->stopping)
			return;
		if (mc_daemon_reload(d, -1, -1, err, sizeof(err)) < 0)
			mc_warn("reload refused: %s", err);
		else
			mc_info("reloaded config (SIGHUP)");
		return;
	}
	if (d->stopping)
		mc_fatal("second %s while stopping; exiting now", signum == SIGINT ? "SIGINT" : "SIGTERM");
	mc_info("%s received", signum == SIGINT ? "SIGINT" : "SIGTERM");
	mc_daemon_stop(d);
}

int
mc_daemon_run(struct mc_daemon *d)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	uv_signal_t *sigs[] = { &d->sighup, &d->sigterm, &d->sigint };
	int signums[] = { SIGHUP, SIGTERM, SIGINT };
	for (size_t i = 0; i < 3; i++) {
		uv_signal_init(d->loop, sigs[i]);
		sigs[i]->data = d;
		uv_signal_start(sigs[i], on_signal, signums[i]);
	}

	mc_info("starting version=%s pid=%ld config=%s open_files=%lu", POSTERN_VERSION, (long)getpid(),
		d->cfg.path[0] ? d->cfg.path : "(built-in default)", d->nofile);
	uv_run(d->loop, UV_RUN_DEFAULT);

	for (size_t i = 0; i < 3; i++)
		uv_close((uv_handle_t *)sigs[i], NULL);
	if (d->stopping)
		uv_close((uv_handle_t *)&stop_timer, NULL);
	uv_run(d->loop, UV_RUN_NOWAIT);
	mc_info("stopped");
	return 0;
}
