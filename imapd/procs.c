/*
 * procs.c - imapd on several processes ([imapd] processes): one master
 * and N workers, so that IMAP sessions use every core (one event loop is
 * one core; Dovecot's imap processes use them all).
 *
 * The master is today's imapd up to the privilege drop (config, listeners
 * bound, TLS key loaded, run_dir/imapd.sock, control socket, drop), then
 * forks the workers and never accepts a client itself: its listeners are
 * paused (util/listen keeps the sockets), and each worker resumes them on
 * a loop of its own, so the kernel hands every new connection to one of the
 * workers that poll the shared socket (an accept race, harmless: the loser
 * sees EAGAIN). Why not SO_REUSEPORT sockets per worker: a worker that dies
 * would take its queue of not yet accepted clients with it, and a restarted
 * one could not bind again after the drop.
 *
 * Why a worker starts from a fresh loop instead of uv_loop_fork: a worker
 * that died is forked again from inside the master's loop (a SIGCHLD
 * callback), where the child cannot run that loop again (uv_run is not
 * reentrant). So the child forgets the master's loop (closes the
 * descriptors of its handles without touching the master's epoll set,
 * takes its signal handles out of libuv's process-wide table) and runs a
 * new one; nothing of the master's runs in it. The TLS context and the
 * config come with the fork's memory copy, as the master has them now.
 *
 * Between them:
 *   - run_dir/imapd.sock: each worker connects to it as role imapd, the
 *     master tells workers apart from queued by the peer's pid. Every
 *     MBOX_CHANGED the master receives (queued's deliveries, or a worker's
 *     own change: STORE, EXPUNGE, APPEND, COPY/MOVE) goes to every worker
 *     but the one that sent it, which woke its own IDLE sessions already.
 *     A worker sends its own changes only while another worker has a
 *     session in IDLE (a count in the shared page), so STOREs and APPENDs
 *     cost no message when nobody idles elsewhere.
 *     IMAPD_RELOAD carries a reload (and the certificate files passed to the
 *     master) to every worker.
 *   - a shared memory page, one slot per worker: its live connections and
 *     whether its resolverd channel is up. postern status shows the sum and
 *     a state made from them; max_connections bounds the sum (counted
 *     centrally: a worker adds its count and reads the total at each
 *     accept, so two accepting at once may both refuse at the limit's edge,
 *     never both admit past it).
 *   - balance: a worker that holds more than its share of all connections
 *     (plus one) pauses its listeners until it is back within its share, or
 *     a burst of clients would all go to the worker that woke first (libuv
 *     accepts until the backlog is empty).
 *   - signals: the master sends SIGTERM to its workers on stop, restarts a
 *     worker that died (with a log line; after 1 s when it died within 1 s
 *     of its start). A worker asks for SIGTERM when the master dies
 *     (PR_SET_PDEATHSIG, then checks getppid for a master already gone).
 *
 * What stays per process: the open stores (stores.c) and with them the
 * quota reservations of APPENDs in flight, so two sessions of one user in
 * two workers each check an announced APPEND against what is committed
 * plus their own process's reservations; both literals may then be taken,
 * and the check in the index's write transaction (mailstore_ops.c: one
 * writer at a time across processes) refuses the one that would pass.
 *
 * Called by main.c (start, stop, reload, state), idle.c (notices in and
 * out) and mail/netsvc through ops->count. With processes = 1 none of it
 * runs: imapd is one process as before, and every function here is a no-op.
 *
 * Owns the worker table, the shared page and the master's SIGCHLD handle.
 * Never: accept a client in the master, or let a worker outlive it.
 */
#include "imapd/imapd.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mail/daemon.h"
#include "mail/netsvc.h"
#include "mail/proto.h"
#include "util/chan.h"
#include "util/listen.h"
#include "util/log.h"

/* A worker that dies sooner than this after its start is restarted after as long (no fork loop). */
#define RESTART_HOLD_MS 1000
/* A worker with more than its share of the connections by this many stops accepting (balance). */
#define BALANCE_SLACK 1
/* How often a worker that stopped accepting looks again whether it is back within its share. */
#define BALANCE_POLL_MS 20

/* In the shared page: written by its worker, read (and cleared on death) by the master. */
struct slot {
	atomic_uint conns;
	atomic_int serving;       /* set by the worker at its start, cleared by the master at its death */
	atomic_uint idlers;       /* its sessions in IDLE: no notice goes to workers that have none */
	atomic_int res;           /* its resolverd channel: RES_STARTING until it reports, then up or down */
};

enum { RES_STARTING = 0, RES_UP, RES_DOWN };

struct worker {
	pid_t pid;                /* 0: not running */
	uint64_t started_ms;
	struct mc_chan *ch;       /* its connection on imapd.sock (master side), NULL until it says HELLO */
};

static struct {
	bool master;              /* this is the master of several processes */
	int self;                 /* in a worker: its index; -1 otherwise */
	unsigned n;
	pid_t master_pid;
	struct mc_daemon *d;
	struct imapd_server *srv;
	imapd_procs_main_fn worker_main;
	struct slot *shm;
	struct worker w[MC_CONFIG_PROCESSES_MAX];
	unsigned alive;
	bool stopping;
	uv_signal_t sigchld;
	uv_timer_t hold;          /* restarts held back after a quick death */
	uv_loop_t loop;           /* a worker's own loop */
	struct mc_chan *up;       /* a worker's channel to the master */
	uv_timer_t balance;       /* a worker's look, while it does not accept, at whether it may again */
	bool paused;              /* a worker past its share: its listeners paused */
} P = { .self = -1 };

unsigned
imapd_procs_wanted(const struct mc_config *cfg)
{
	if (cfg->imapd.processes > 0)
		return cfg->imapd.processes;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (cpus < 1)
		return 1;
	return cpus > MC_CONFIG_PROCESSES_MAX ? MC_CONFIG_PROCESSES_MAX : (unsigned)cpus;
}

bool
imapd_procs_is_worker(void)
{
	return P.self >= 0;
}

/* ---- in a new worker: leave the master's loop behind ---- */

static void
forget_handle(uv_handle_t *h, void *arg)
{
	uv_os_fd_t fd;
	(void)arg;
	if (h->type == UV_SIGNAL) {
		/* Out of libuv's process-wide table, or the master's handle would still catch the worker's signals. */
		uv_signal_stop((uv_signal_t *)h);
		return;
	}
	/* A raw close: the master's epoll set (shared until the child has its own) is not touched. */
	if (!uv_is_closing(h) && uv_fileno(h, &fd) == 0 && fd > 2)
		close(fd);
}

static void worker_up(struct mc_chan *ch, void *arg);
static void worker_msg(struct mc_chan *ch, struct mc_msg *m, void *arg);

static const struct mc_chan_cbs worker_cbs = {
	.on_msg = worker_msg,
	.on_up = worker_up,
};

static void
become_worker(unsigned i)
{
	struct mc_daemon *d = P.d;
	/* Cleared by the drop, so asked for here, after it; a master that died before this leaves ppid changed. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != P.master_pid)
		_exit(0);
	uv_walk(d->loop, forget_handle, NULL);
	if (uv_loop_init(&P.loop) < 0)
		mc_fatal("worker %u: cannot make its event loop", i + 1);
	/* Not the master's: a worker's stop must not remove the control socket or imapd.sock. */
	d->ctl = NULL;
	d->on_status = NULL;
	d->loop = &P.loop;
	d->started = time(NULL);
	d->connections = 0;
	P.srv->loop = &P.loop;
	P.srv->notices = NULL;
	P.master = false;
	P.self = (int)i;
	P.alive = 0;
	atomic_store(&P.shm[i].conns, 0);
	atomic_store(&P.shm[i].res, RES_STARTING);
	atomic_store(&P.shm[i].serving, 1);
	atomic_store(&P.shm[i].idlers, 0);
	uv_timer_init(&P.loop, &P.balance);
	mc_netsvc_reseed(P.srv->svc);
	mc_listen_move_loop(&P.loop);
	mc_listen_pause_all(false);

	char sock[MC_PATH_MAX + 32];
	mc_config_sock(&d->cfg, sock, sizeof(sock), MC_SOCK_IMAPD);
	P.up = mc_chan_connect(&P.loop, sock, &mc_proto, MC_ROLE_IMAPD, "imapd-worker", &worker_cbs, P.srv);
	mc_info("worker %u of %u serving", i + 1, P.n);
	exit(P.worker_main(d));
}

/* ---- the master ---- */

static int
spawn(unsigned i)
{
	pid_t pid = fork();
	if (pid < 0) {
		mc_warn("cannot start worker %u: %s", i + 1, strerror(errno));
		return -1;
	}
	if (pid == 0)
		become_worker(i);   /* does not return */
	P.w[i].pid = pid;
	P.w[i].started_ms = uv_now(P.d->loop);
	P.w[i].ch = NULL;
	P.alive++;
	mc_info("worker %u pid=%d started", i + 1, (int)pid);
	return 0;
}

static void spawn_missing(void);

static void
hold_over(uv_timer_t *t)
{
	(void)t;
	spawn_missing();
}

static void
spawn_missing(void)
{
	uint64_t now = uv_now(P.d->loop);
	uint64_t wait = 0;
	for (unsigned i = 0; i < P.n && !P.stopping; i++) {
		if (P.w[i].pid != 0)
			continue;
		/* started_ms of a dead worker is when it died, if it died young (see reap). */
		if (P.w[i].started_ms > now) {
			uint64_t left = P.w[i].started_ms - now;
			wait = wait == 0 || left < wait ? left : wait;
			continue;
		}
		if (spawn(i) < 0)
			wait = RESTART_HOLD_MS;
	}
	if (wait && !P.stopping) {
		uv_timer_start(&P.hold, hold_over, wait, 0);
	}
}

static void
exit_text(int status, char *buf, size_t n)
{
	if (WIFEXITED(status))
		snprintf(buf, n, "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, n, "signal %s", strsignal(WTERMSIG(status)));
	else
		snprintf(buf, n, "status %d", status);
}

static void
reap(uv_signal_t *h, int signum)
{
	int status;
	pid_t pid;
	(void)signum;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		unsigned i;
		for (i = 0; i < P.n && P.w[i].pid != pid; i++)
			;
		if (i == P.n)
			continue;
		char why[64];
		exit_text(status, why, sizeof(why));
		uint64_t now = uv_now(P.d->loop);
		bool young = now - P.w[i].started_ms < RESTART_HOLD_MS;
		P.w[i].pid = 0;
		P.w[i].ch = NULL;
		/* Its clients are gone with it. */
		atomic_store(&P.shm[i].conns, 0);
		atomic_store(&P.shm[i].res, RES_STARTING);
		atomic_store(&P.shm[i].serving, 0);
		atomic_store(&P.shm[i].idlers, 0);
		P.alive--;
		if (P.stopping) {
			mc_info("worker %u pid=%d stopped: %s", i + 1, (int)pid, why);
			continue;
		}
		mc_warn("worker %u pid=%d died: %s; %s", i + 1, (int)pid, why,
			young ? "restarting it in 1 s" : "restarting it");
		P.w[i].started_ms = young ? now + RESTART_HOLD_MS : 0;
	}
	if (P.stopping) {
		if (P.alive == 0 && !uv_is_closing((uv_handle_t *)h))
			uv_close((uv_handle_t *)h, NULL);
		return;
	}
	spawn_missing();
}

int
imapd_procs_start(struct imapd_server *srv, struct mc_daemon *d, unsigned n, imapd_procs_main_fn worker_main)
{
	P.d = d;
	P.srv = srv;
	P.n = n;
	P.worker_main = worker_main;
	P.master_pid = getpid();
	P.shm = mmap(NULL, sizeof(struct slot) * n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (P.shm == MAP_FAILED) {
		P.shm = NULL;
		mc_warn("cannot share memory with workers (%s): one process serves", strerror(errno));
		return -1;
	}
	for (unsigned i = 0; i < n; i++) {
		atomic_init(&P.shm[i].conns, 0);
		atomic_init(&P.shm[i].res, RES_STARTING);
		atomic_init(&P.shm[i].serving, 0);
		atomic_init(&P.shm[i].idlers, 0);
	}
	P.master = true;
	/* The master keeps the sockets but never polls them: only workers accept. */
	mc_listen_pause_all(true);
	uv_signal_init(d->loop, &P.sigchld);
	uv_signal_start(&P.sigchld, reap, SIGCHLD);
	uv_timer_init(d->loop, &P.hold);
	mc_info("serving with %u worker processes", n);
	for (unsigned i = 0; i < n; i++)
		spawn(i);
	if (P.alive == 0)
		mc_fatal("no worker process could be started");
	if (P.alive < n)
		uv_timer_start(&P.hold, hold_over, RESTART_HOLD_MS, 0);   /* the others are tried again */
	return 0;
}

void
imapd_procs_check_reload(const struct mc_config *n)
{
	if (P.self >= 0)
		return;   /* the master says it once */
	unsigned now = P.master ? P.n : 1, want = imapd_procs_wanted(n);
	if (now != want)
		mc_warn("[imapd] processes: %u now, %u after the next restart of imapd (a reload does not change it)",
			now, want);
}

void
imapd_procs_stop(void)
{
	if (!P.master || P.stopping)
		return;
	P.stopping = true;
	uv_timer_stop(&P.hold);
	uv_close((uv_handle_t *)&P.hold, NULL);
	for (unsigned i = 0; i < P.n; i++)
		if (P.w[i].pid > 0)
			kill(P.w[i].pid, SIGTERM);
	/* The SIGCHLD handle keeps the loop alive until the last worker is reaped. */
	if (P.alive == 0)
		uv_close((uv_handle_t *)&P.sigchld, NULL);
}

void
imapd_procs_status(struct mc_daemon *d)
{
	unsigned conns = 0, running = 0, res_down = 0, starting = 0;
	if (!P.master)
		return;
	for (unsigned i = 0; i < P.n; i++) {
		conns += atomic_load(&P.shm[i].conns);
		if (P.w[i].pid == 0)
			continue;
		running++;
		int res = atomic_load(&P.shm[i].res);
		starting += res == RES_STARTING;
		res_down += res == RES_DOWN;
	}
	d->connections = conns;
	if (running < P.n)
		mc_daemon_set_state(d, "%u of %u workers running", running, P.n);
	else if (res_down)
		mc_daemon_set_state(d, "resolverd unreachable");
	else if (starting)
		mc_daemon_set_state(d, "starting");
	else
		mc_daemon_set_state(d, "running");
}

void
imapd_procs_reload(struct mc_daemon *d)
{
	if (!P.master)
		return;
	for (unsigned i = 0; i < P.n; i++) {
		if (P.w[i].ch == NULL)
			continue;
		struct mc_msg m;
		mc_msg_init(&m, MC_MSG_IMAPD_RELOAD);
		/* Each worker gets its own copies (the message closes what it passes); the reader uses pread. */
		if (d->reload_cert_fd >= 0 && d->reload_key_fd >= 0) {
			mc_msg_put_fd(&m, dup(d->reload_cert_fd));
			mc_msg_put_fd(&m, dup(d->reload_key_fd));
		}
		if (mc_chan_send(P.w[i].ch, &m) < 0)
			mc_warn("worker %u pid=%d: cannot pass the reload on", i + 1, (int)P.w[i].pid);
	}
}

/* Which worker is at the other end of ch (-1: none, e.g. queued). */
static int
worker_of(struct mc_chan *ch)
{
	for (unsigned i = 0; i < P.n; i++)
		if (P.w[i].ch == ch)
			return (int)i;
	return -1;
}

void
imapd_procs_peer_up(struct mc_chan *ch, void *arg)
{
	(void)arg;
	if (!P.master || mc_chan_peer_role(ch) != MC_ROLE_IMAPD)
		return;
	pid_t pid = mc_chan_peer_cred(ch)->pid;
	for (unsigned i = 0; i < P.n; i++) {
		if (P.w[i].pid == pid) {
			P.w[i].ch = ch;
			mc_debug("worker %u pid=%d connected to imapd.sock", i + 1, (int)pid);
			return;
		}
	}
}

void
imapd_procs_peer_down(struct mc_chan *ch, void *arg)
{
	(void)arg;
	int i = P.master ? worker_of(ch) : -1;
	if (i >= 0)
		P.w[i].ch = NULL;
}

void
imapd_procs_fanout(struct mc_chan *from, const char *addr, const char *mailbox, const char *path)
{
	if (!P.master)
		return;
	for (unsigned i = 0; i < P.n; i++) {
		if (P.w[i].ch == NULL || P.w[i].ch == from)
			continue;
		struct mc_msg m;
		mc_msg_init(&m, MC_MSG_MBOX_CHANGED);
		mc_msg_put_str(&m, addr);
		mc_msg_put_str(&m, mailbox);
		mc_msg_put_str(&m, path);
		/* A notice is a hint (idle.c): a worker that misses one shows the change at the next command. */
		mc_chan_send(P.w[i].ch, &m);
	}
}

/* ---- in a worker ---- */

void
imapd_procs_idle(struct imapd_session *s, bool idle)
{
	if (P.self < 0 || s->procs_idle == idle)
		return;
	s->procs_idle = idle;
	if (idle)
		atomic_fetch_add(&P.shm[P.self].idlers, 1);
	else
		atomic_fetch_sub(&P.shm[P.self].idlers, 1);
}

void
imapd_procs_changed(const char *addr, const char *mailbox, const char *path)
{
	if (P.self < 0 || P.up == NULL || !mc_chan_is_up(P.up))
		return;
	/*
	 * Only IDLE sessions need a notice (the others sync at their next
	 * command): with none in another worker, nothing is sent. A session
	 * counts itself before its IDLE's first sync, and this runs after the
	 * change is committed, so a session that starts to idle meanwhile
	 * either is counted here or sees the change in that sync.
	 */
	unsigned others = 0;
	for (unsigned i = 0; i < P.n; i++)
		if ((int)i != P.self)
			others += atomic_load(&P.shm[i].idlers);
	if (others == 0)
		return;
	struct mc_msg m;
	mc_msg_init(&m, MC_MSG_MBOX_CHANGED);
	mc_msg_put_str(&m, addr);
	mc_msg_put_str(&m, mailbox);
	mc_msg_put_str(&m, path);
	mc_chan_send(P.up, &m);
}

static void
worker_up(struct mc_chan *ch, void *arg)
{
	(void)arg;
	mc_debug("worker %d: connected to the master pid=%d", P.self + 1, (int)mc_chan_peer_cred(ch)->pid);
}

static void
worker_reload(struct mc_chan *ch, struct mc_msg *m)
{
	char err[1024];
	int cert_fd = -1, key_fd = -1;
	if (mc_msg_more(m) && mc_msg_get_fd(m, &cert_fd) == 0)
		mc_msg_get_fd(m, &key_fd);
	if (mc_msg_end(m) < 0) {
		mc_warn("imapd.sock: malformed IMAPD_RELOAD from %s", mc_chan_peer_name(ch));
	} else if (mc_daemon_reload(P.d, cert_fd, key_fd, err, sizeof(err)) < 0) {
		mc_warn("worker %d: reload refused: %s", P.self + 1, err);
	} else {
		mc_info("worker %d: reloaded config%s", P.self + 1, cert_fd >= 0 ? " with certificate files" : "");
	}
	if (cert_fd >= 0)
		close(cert_fd);
	if (key_fd >= 0)
		close(key_fd);
}

static void
worker_msg(struct mc_chan *ch, struct mc_msg *m, void *arg)
{
	if (m->type == MC_MSG_IMAPD_RELOAD) {
		if (mc_chan_peer_cred(ch)->pid == P.master_pid)
			worker_reload(ch, m);
		return;
	}
	imapd_notice_msg(ch, m, arg);
}

void
imapd_procs_worker_stop(void)
{
	if (P.self < 0)
		return;
	if (P.up) {
		mc_chan_close(P.up);
		P.up = NULL;
	}
	uv_timer_stop(&P.balance);
	uv_close((uv_handle_t *)&P.balance, NULL);
	P.paused = false;   /* the service closes the listeners, paused or not */
}

/*
 * Balance: all workers poll one listening socket, and the one that wakes
 * first takes every connection waiting (libuv accepts until EAGAIN), so a
 * burst of clients would all land in one worker. A worker past its share
 * of all connections (plus a little) pauses its listeners; the others take
 * the next ones; it accepts again once it is back within its share.
 */
static unsigned
total_and_share(unsigned *share)
{
	unsigned total = 0, serving = 0;
	for (unsigned i = 0; i < P.n; i++) {
		total += atomic_load(&P.shm[i].conns);
		serving += atomic_load(&P.shm[i].serving) != 0;
	}
	if (serving == 0)
		serving = 1;
	*share = (total + serving - 1) / serving;
	return total;
}

static void balance_poll(uv_timer_t *t);

static void
balance(unsigned local)
{
	unsigned share;
	total_and_share(&share);
	if (!P.paused && local > share + BALANCE_SLACK) {
		P.paused = true;
		mc_listen_pause_all(true);
		uv_timer_start(&P.balance, balance_poll, BALANCE_POLL_MS, BALANCE_POLL_MS);
	} else if (P.paused && local <= share) {
		P.paused = false;
		uv_timer_stop(&P.balance);
		mc_listen_pause_all(false);
	}
}

static void
balance_poll(uv_timer_t *t)
{
	(void)t;
	if (P.paused && !mc_netsvc_stopping(P.srv->svc))
		balance(atomic_load(&P.shm[P.self].conns));
}

unsigned
imapd_procs_count(struct mc_netsvc *svc, unsigned local, void *arg)
{
	(void)arg;
	if (P.self < 0 || P.shm == NULL)
		return local;
	atomic_store(&P.shm[P.self].conns, local);
	unsigned share, total = total_and_share(&share);
	if (!mc_netsvc_stopping(svc))
		balance(local);
	return total;
}

void
imapd_procs_report(bool resolver_up)
{
	if (P.self >= 0 && P.shm)
		atomic_store(&P.shm[P.self].res, resolver_up ? RES_UP : RES_DOWN);
}
