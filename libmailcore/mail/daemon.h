/*
 * daemon.h - what every Postern daemon's main does the same way.
 *
 *   mc_daemon_init()     parse "-c FILE" (and -h), load the config, start logging,
 *                        raise the open files soft limit to the hard limit
 *   ... the daemon binds its listeners and sockets, loads TLS keys ...
 *   mc_daemon_drop()     create the control socket (run_dir/NAME.ctl, admin only),
 *                        then drop to the daemon's user (when root)
 *   ... connect to peer daemons ...
 *   mc_daemon_run()      signals (SIGHUP reload, SIGTERM/SIGINT stop), run the loop
 *
 * The control socket answers every daemon's common questions (status,
 * reload, trace, log level) from the mail/proto.h catalogue; messages it
 * does not know go to the daemon's on_ctl hook (queued's queue commands).
 * A CTL_RELOAD may carry the certificate and key files opened by the
 * requester (a daemon that dropped root cannot open a root-only key):
 * on_reload sees them in reload_cert_fd/reload_key_fd, and a daemon that
 * serves TLS reloads its certificate with mc_daemon_reload_tls(), which
 * uses them when they came and the configured paths otherwise.
 * Mail tier because it speaks the catalogue; the loop, config and log it
 * uses are general code.
 */
#ifndef MC_DAEMON_H
#define MC_DAEMON_H

#include <stdbool.h>
#include <time.h>
#include <uv.h>

#include "mail/proto.h"
#include "util/chan.h"
#include "util/config.h"
#include "util/privdrop.h"
#include "util/tls.h"

struct mc_daemon {
	const char *name;               /* "smtpd" */
	enum mc_role role;
	const char *config_path;        /* from -c; NULL: built-in default */
	struct mc_config cfg;
	uv_loop_t *loop;
	time_t started;
	char state[128];                /* "running", or what is wrong: "queued unreachable" */
	unsigned connections;           /* kept current by the daemon */
	unsigned long nofile;           /* RLIMIT_NOFILE after init raised the soft limit to the hard one */
	bool stopping;
	struct mc_ids ids;              /* whom mc_daemon_drop became */
	struct mc_chan_server *ctl;
	/* The files passed with CTL_RELOAD, during on_reload only; -1 otherwise. Closed by daemon.c. */
	int reload_cert_fd, reload_key_fd;

	/* Hooks; any may be NULL. */
	/* A new config was read (SIGHUP / reload); return -1 with err to keep the old one. */
	int (*on_reload)(struct mc_daemon *d, const struct mc_config *newcfg, char *err, size_t errsz);
	/* Stop: close listeners and peer channels so the loop can end. */
	void (*on_stop)(struct mc_daemon *d);
	/* A control message the common code does not handle. */
	void (*on_ctl)(struct mc_daemon *d, struct mc_chan *ch, struct mc_msg *m);
	/* A control channel went away (forget pending replies to it). */
	void (*on_ctl_down)(struct mc_daemon *d, struct mc_chan *ch);
	/* A status request is answered next: bring connections and state up to date (imapd's master sums its workers). */
	void (*on_status)(struct mc_daemon *d);
	void *data;                     /* the daemon's own state */

	uv_signal_t sighup, sigterm, sigint;
};

/* Parse arguments and load config; exits with status 2 (usage) or 1 (bad config). */
void mc_daemon_init(struct mc_daemon *d, const char *name, enum mc_role role, int argc, char **argv);
/*
 * Open the control socket, then drop to user (with extra supplementary
 * groups, NULL-terminated; user NULL: stay as is). Exits on failure.
 */
void mc_daemon_drop(struct mc_daemon *d, const char *user, const char *const *extra_groups);
/* Install signal handlers and run the loop until stopped; returns the exit status. */
int mc_daemon_run(struct mc_daemon *d);
/*
 * Re-read the config file as SIGHUP and CTL_RELOAD do (on_reload sees cert_fd
 * and key_fd, -1: none; the caller closes them). 0, or -1 with err (the old
 * config stays).
 */
int mc_daemon_reload(struct mc_daemon *d, int cert_fd, int key_fd, char *err, size_t errsz);
/* Ask the daemon to stop (as SIGTERM does). */
void mc_daemon_stop(struct mc_daemon *d);
/*
 * For on_reload: rebuild t's server context from the passed descriptors,
 * or else from newcfg's tls_cert/tls_key. On failure the current
 * certificate stays and one warning says why (and, when the daemon could
 * not read the files itself, that `postern reload` run as root passes
 * them); the reload goes on. 0 when the certificate was reloaded, -1 when not.
 */
int mc_daemon_reload_tls(struct mc_daemon *d, struct mc_tls *t, const struct mc_config *newcfg);
/* Set the state text shown by postern status. */
void mc_daemon_set_state(struct mc_daemon *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
