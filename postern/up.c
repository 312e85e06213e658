/*
 * up.c - `postern up`: run a whole instance in the foreground, supervised.
 *
 * Prepares the instance (users, directories, the self-signed certificate),
 * takes the pid file run_dir/postern.pid (one supervisor per run_dir),
 * serves run_dir/postern.ctl (SUP_STATUS, SUP_RESTART, SUP_STOP,
 * SUP_RELOAD), and starts the daemons in order (resolverd, queued,
 * smtpd, pop3d, imapd), each as `DAEMON -c CONFIG`, with the supervisor's
 * stderr as theirs. A daemon counts as up once it answers CTL_STATUS on
 * its control socket with its own pid; the next one starts then.
 *
 * A daemon that exits unexpectedly is logged with why and restarted with
 * exponential backoff (svc.c). SIGINT/SIGTERM or SUP_STOP stop the
 * daemons one by one in reverse order (SIGTERM, SIGKILL after a grace
 * time). SUP_RELOAD and SIGHUP re-read the config for the certificate's
 * paths, open the certificate and key (the daemons have dropped root and
 * cannot) and send each daemon CTL_RELOAD with them. Everything runs on
 * libuv: no blocking wait happens once the loop runs.
 *
 * Owns the child processes, their timers, the pid file and the
 * supervisor's socket. Never talks to a daemon other than over its
 * control socket; never keeps a daemon's descriptors, nor the certificate
 * files past the sending of one reload.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "ctlcall.h"
#include "mail/proto.h"
#include "postern.h"
#include "postern_build.h"
#include "svc.h"
#include "util/chan.h"
#include "util/log.h"
#include "util/tls.h"

/* SIGTERM first; SIGKILL when a daemon has not exited after this. */
#define KILL_GRACE_MS 10000
/* During the start sequence, how long to wait for one daemon before starting the next anyway. */
#define START_WAIT_MS 5000
/* Readiness probes: often at first, then rarely once the daemon should long have answered. */
#define PROBE_FAST_MS 100
#define PROBE_SLOW_MS 1000
#define PROBE_FAST_FOR_MS 15000
#define PROBE_TIMEOUT_MS 1000
#define RELOAD_TIMEOUT_MS 15000

/* Error code in supervisor replies that refuse a request. */
#define SUP_REFUSED 1

enum svc_state {
	SVC_IDLE,       /* not started yet */
	SVC_STARTING,   /* spawned, has not answered its control socket yet */
	SVC_RUNNING,    /* answered with its pid */
	SVC_BACKOFF,    /* exited; waiting to be started again */
	SVC_STOPPING,   /* SIGTERM sent; waiting for it to exit */
	SVC_STOPPED,    /* the instance is stopping and this one is gone */
};

struct waiter {
	struct waiter *next;
	struct mc_chan *ch;
	uint32_t reqid;
};

struct sup;

struct svc {
	struct sup *sup;
	int index;
	const char *name;
	char path[PATH_MAX];
	char ctlpath[MC_PATH_MAX + 32];
	uv_process_t *proc;      /* non-NULL while a process exists */
	int pid;
	uint64_t spawned_ms;     /* uv_now at spawn */
	time_t started;
	enum svc_state state;
	unsigned restarts;       /* starts after the first */
	unsigned failures;       /* unexpected exits in a row */
	bool ever_started;
	bool restart_now;        /* SUP_RESTART: start again as soon as it has exited */
	bool probing;            /* a CTL_STATUS probe is in flight */
	uv_timer_t timer;        /* backoff before a restart, or the grace before SIGKILL */
	uv_timer_t probe_timer;
	char last_exit[64];      /* "exit status 1", "signal SIGKILL" */
	struct waiter *waiters;  /* SUP_RESTART requests answered once it runs */
};

struct reload_job {
	struct reload_job *next;
	struct sup *sup;
	struct mc_chan *ch;      /* NULL for SIGHUP, or once the requester went away */
	uint32_t reqid;
	unsigned pending;
	char *refusal[POSTERN_NSVC];   /* why each daemon did not reload, NULL when it did */
};

struct reload_part {
	struct reload_job *job;
	struct svc *svc;
};

struct sup {
	struct postern_ctx *ctx;
	uv_loop_t *loop;
	struct svc svc[POSTERN_NSVC];
	struct mc_chan_server *ctl;
	uv_signal_t sigint, sigterm, sighup;
	uv_timer_t start_timer;
	int start_next;          /* start sequence: the daemon being waited for; POSTERN_NSVC when done */
	bool announced;
	bool stopping;
	bool finished;
	int stop_cursor;         /* stop sequence: the daemon being stopped */
	struct reload_job *reloads;
	char pidpath[MC_PATH_MAX + 32];
	char ctlpath[MC_PATH_MAX + 32];
	int pidfd;
};

static void svc_spawn(struct svc *s);
static void start_advance(struct sup *sup, struct svc *s);
static void stop_next(struct sup *sup);

/* --- answering SUP_RESTART ---------------------------------------------- */

static void
waiters_answer(struct svc *s, const char *error)
{
	struct waiter *w;
	while ((w = s->waiters) != NULL) {
		s->waiters = w->next;
		if (error) {
			mc_chan_reply_error(w->ch, w->reqid, MC_MSG_SUP_RESTART, SUP_REFUSED, error);
		} else {
			struct mc_msg r;
			mc_msg_init(&r, MC_MSG_SUP_RESTART);
			mc_chan_reply(w->ch, w->reqid, &r);
		}
		free(w);
	}
}

/* --- readiness probes ----------------------------------------------------- */

static void
svc_ready(struct svc *s)
{
	struct sup *sup = s->sup;
	s->state = SVC_RUNNING;
	uv_timer_stop(&s->probe_timer);
	mc_info("%s: running pid=%d", s->name, s->pid);
	waiters_answer(s, NULL);
	start_advance(sup, s);

	if (sup->announced || sup->start_next < POSTERN_NSVC)
		return;
	for (int i = 0; i < POSTERN_NSVC; i++)
		if (sup->svc[i].state != SVC_RUNNING)
			return;
	sup->announced = true;

	const struct mc_config *c = &sup->ctx->cfg;
	static const struct {
		const char *label;
		size_t off;
	} lists[] = {
		{ "SMTP", offsetof(struct mc_config, smtpd.listen) },
		{ "submission", offsetof(struct mc_config, smtpd.submission) },
		{ "submissions (TLS)", offsetof(struct mc_config, smtpd.submissions) },
		{ "POP3", offsetof(struct mc_config, pop3d.listen) },
		{ "POP3S (TLS)", offsetof(struct mc_config, pop3d.listen_tls) },
		{ "IMAP", offsetof(struct mc_config, imapd.listen) },
		{ "IMAPS (TLS)", offsetof(struct mc_config, imapd.listen_tls) },
	};
	char cflag[MC_PATH_MAX + 8] = "";
	if (c->path[0])
		snprintf(cflag, sizeof(cflag), " -c %s", c->path);

	printf("Postern %s is up (hostname %s).\n", POSTERN_VERSION, c->global.hostname);
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		const struct mc_listen_list *l = (const void *)((const char *)c + lists[i].off);
		if (l->n == 0)
			continue;
		printf("  %-18s", lists[i].label);
		for (size_t k = 0; k < l->n; k++)
			printf("%s%s", k ? ", " : "", l->a[k].text);
		printf("\n");
	}
	printf("  state directory   %s\n", c->global.state_dir);
	printf("  run directory     %s\n", c->global.run_dir);
	printf("Add a domain and a user:\n");
	printf("  %s%s domain add example.test\n", sup->ctx->argv0, cflag);
	printf("  printf 'secret\\n' | %s%s user add alice@example.test --password-stdin\n", sup->ctx->argv0, cflag);
	printf("Status: %s%s status    Stop: Ctrl-C or %s%s stop\n", sup->ctx->argv0, cflag, sup->ctx->argv0, cflag);
	fflush(stdout);
}

static void
probe_done(void *arg, struct mc_msg *m, int err, const char *why)
{
	struct svc *s = arg;
	char name[64];
	uint32_t pid = 0;

	s->probing = false;
	if (s->sup->finished || s->state != SVC_STARTING)
		return;
	if (err == 0 && mc_msg_get_str(m, name, sizeof(name)) == 0 && mc_msg_get_u32(m, &pid) == 0 &&
	    (int)pid == s->pid)
		svc_ready(s);
	else
		mc_debug("%s: probe: %s", s->name, err ? why : "not this process yet");
}

static void
probe_tick(uv_timer_t *t)
{
	struct svc *s = t->data;
	if (s->state != SVC_STARTING) {
		uv_timer_stop(t);
		return;
	}
	if (uv_now(s->sup->loop) - s->spawned_ms > PROBE_FAST_FOR_MS && uv_timer_get_repeat(t) == PROBE_FAST_MS) {
		mc_warn("%s: pid=%d does not answer on %s after %d s", s->name, s->pid, s->ctlpath,
			PROBE_FAST_FOR_MS / 1000);
		char why[160];
		snprintf(why, sizeof(why), "%s started (pid %d) but does not answer its control socket", s->name, s->pid);
		waiters_answer(s, why);
		uv_timer_set_repeat(t, PROBE_SLOW_MS);
	}
	if (s->probing)
		return;
	struct mc_msg req;
	mc_msg_init(&req, MC_MSG_CTL_STATUS);
	s->probing = true;
	postern_call(s->sup->loop, s->ctlpath, MC_ROLE_SUPERVISOR, &req, PROBE_TIMEOUT_MS, probe_done, s);
}

/* --- children ------------------------------------------------------------- */

static void
free_proc(uv_handle_t *h)
{
	free(h);
}

static void
backoff_fire(uv_timer_t *t)
{
	struct svc *s = t->data;
	if (s->state == SVC_BACKOFF && !s->sup->stopping)
		svc_spawn(s);
}

/* A start failed or the process died on its own: try again later. */
static void
svc_failed(struct svc *s, uint64_t ran_ms)
{
	s->failures = postern_backoff_failures(s->failures, ran_ms);
	unsigned delay = postern_backoff_delay_ms(s->failures);
	s->state = SVC_BACKOFF;
	mc_warn("%s: restarting in %us (failures in a row: %u)", s->name, (delay + 999) / 1000, s->failures);
	uv_timer_start(&s->timer, backoff_fire, delay, 0);
}

static void
on_exit_cb(uv_process_t *p, int64_t status, int term_signal)
{
	struct svc *s = p->data;
	struct sup *sup = s->sup;
	uint64_t ran_ms = uv_now(sup->loop) - s->spawned_ms;
	bool expected = s->state == SVC_STOPPING || sup->stopping;

	postern_exit_desc(status, term_signal, s->last_exit, sizeof(s->last_exit));
	uv_close((uv_handle_t *)p, free_proc);
	s->proc = NULL;
	uv_timer_stop(&s->timer);
	uv_timer_stop(&s->probe_timer);
	if (expected)
		mc_info("%s: stopped pid=%d (%s)", s->name, s->pid, s->last_exit);
	else
		mc_warn("%s: exited unexpectedly pid=%d (%s) after %" PRIu64 ".%03us", s->name, s->pid, s->last_exit,
			ran_ms / 1000, (unsigned)(ran_ms % 1000));
	s->pid = 0;

	if (sup->stopping) {
		s->state = SVC_STOPPED;
		if (s->index == sup->stop_cursor)
			stop_next(sup);
		return;
	}
	if (s->restart_now) {
		s->restart_now = false;
		s->failures = 0;
		svc_spawn(s);
		return;
	}
	char why[128];
	snprintf(why, sizeof(why), "%s exited (%s) before it answered", s->name, s->last_exit);
	waiters_answer(s, why);
	svc_failed(s, ran_ms);
	start_advance(sup, s);
}

static void
svc_spawn(struct svc *s)
{
	struct sup *sup = s->sup;
	const char *cfgpath = sup->ctx->cfg.path;
	char *args[4] = { s->path, NULL, NULL, NULL };
	if (cfgpath[0]) {
		args[1] = (char *)"-c";
		args[2] = (char *)cfgpath;
	}
	uv_stdio_container_t stdio[3] = {
		{ .flags = UV_IGNORE },
		{ .flags = UV_INHERIT_FD, .data.fd = STDOUT_FILENO },
		{ .flags = UV_INHERIT_FD, .data.fd = STDERR_FILENO },
	};
	uv_process_options_t opt = {
		.exit_cb = on_exit_cb,
		.file = s->path,
		.args = args,
		.stdio = stdio,
		.stdio_count = 3,
		/* Its own process group: a Ctrl-C reaches the supervisor alone, which stops them in order. */
		.flags = UV_PROCESS_DETACHED,
	};

	if (s->ever_started)
		s->restarts++;
	s->ever_started = true;
	s->proc = calloc(1, sizeof(*s->proc));
	if (s->proc == NULL)
		mc_panic("out of memory");
	s->proc->data = s;
	s->spawned_ms = uv_now(sup->loop);
	int rc = uv_spawn(sup->loop, s->proc, &opt);
	if (rc < 0) {
		mc_error("%s: cannot start %s: %s", s->name, s->path, uv_strerror(rc));
		uv_close((uv_handle_t *)s->proc, free_proc);
		s->proc = NULL;
		snprintf(s->last_exit, sizeof(s->last_exit), "not started: %s", uv_strerror(rc));
		char why[PATH_MAX + 64];
		snprintf(why, sizeof(why), "cannot start %s: %s", s->path, uv_strerror(rc));
		waiters_answer(s, why);
		svc_failed(s, 0);
		start_advance(sup, s);
		return;
	}
	s->pid = s->proc->pid;
	s->started = time(NULL);
	s->state = SVC_STARTING;
	mc_info("%s: started pid=%d", s->name, s->pid);
	uv_timer_start(&s->probe_timer, probe_tick, PROBE_FAST_MS, PROBE_FAST_MS);
}

static void
kill_fire(uv_timer_t *t)
{
	struct svc *s = t->data;
	if (s->proc) {
		mc_warn("%s: pid=%d still running %d s after SIGTERM; sending SIGKILL", s->name, s->pid,
			KILL_GRACE_MS / 1000);
		uv_process_kill(s->proc, SIGKILL);
	}
}

/* SIGTERM now, SIGKILL after the grace time; on_exit_cb goes on from there. */
static void
svc_terminate(struct svc *s)
{
	s->state = SVC_STOPPING;
	uv_timer_stop(&s->probe_timer);
	uv_process_kill(s->proc, SIGTERM);
	uv_timer_start(&s->timer, kill_fire, KILL_GRACE_MS, 0);
}

/* --- start and stop sequences ----------------------------------------------- */

static void
start_wait_fire(uv_timer_t *t)
{
	struct sup *sup = t->data;
	if (sup->start_next >= POSTERN_NSVC)
		return;
	struct svc *s = &sup->svc[sup->start_next];
	mc_warn("%s: not up after %d s; starting the next daemon anyway", s->name, START_WAIT_MS / 1000);
	start_advance(sup, s);
}

/* s is up, or gave up for now: start the next daemon of the sequence. */
static void
start_advance(struct sup *sup, struct svc *s)
{
	if (sup->stopping || sup->start_next >= POSTERN_NSVC || s->index != sup->start_next)
		return;
	uv_timer_stop(&sup->start_timer);
	sup->start_next++;
	if (sup->start_next >= POSTERN_NSVC) {
		for (int i = 0; i < POSTERN_NSVC; i++)
			if (sup->svc[i].state != SVC_RUNNING)
				mc_warn("%s: not running yet; the instance is incomplete until it is",
					sup->svc[i].name);
		return;
	}
	uv_timer_start(&sup->start_timer, start_wait_fire, START_WAIT_MS, 0);
	svc_spawn(&sup->svc[sup->start_next]);
}

static void
close_handle(uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/* Every daemon is gone: close what keeps the loop running. */
static void
finish(struct sup *sup)
{
	sup->finished = true;
	if (sup->ctl) {
		mc_chan_server_close(sup->ctl);
		sup->ctl = NULL;
	}
	for (int i = 0; i < POSTERN_NSVC; i++) {
		close_handle((uv_handle_t *)&sup->svc[i].timer);
		close_handle((uv_handle_t *)&sup->svc[i].probe_timer);
	}
	close_handle((uv_handle_t *)&sup->start_timer);
	close_handle((uv_handle_t *)&sup->sigint);
	close_handle((uv_handle_t *)&sup->sigterm);
	close_handle((uv_handle_t *)&sup->sighup);
}

static void
stop_next(struct sup *sup)
{
	while (sup->stop_cursor >= 0) {
		struct svc *s = &sup->svc[sup->stop_cursor];
		if (s->proc) {
			if (s->state != SVC_STOPPING)
				svc_terminate(s);
			return;
		}
		s->state = SVC_STOPPED;
		sup->stop_cursor--;
	}
	mc_info("every daemon has stopped");
	finish(sup);
}

static void
sup_stop(struct sup *sup, const char *why)
{
	if (sup->stopping) {
		mc_warn("%s while stopping: killing every daemon now", why);
		for (int i = 0; i < POSTERN_NSVC; i++)
			if (sup->svc[i].proc)
				uv_process_kill(sup->svc[i].proc, SIGKILL);
		return;
	}
	sup->stopping = true;
	mc_info("stopping the instance (%s)", why);
	uv_timer_stop(&sup->start_timer);
	for (int i = 0; i < POSTERN_NSVC; i++) {
		struct svc *s = &sup->svc[i];
		uv_timer_stop(&s->probe_timer);
		s->restart_now = false;
		waiters_answer(s, "the instance is stopping");
		if (s->proc == NULL) {
			uv_timer_stop(&s->timer);
			s->state = SVC_STOPPED;
		}
	}
	sup->stop_cursor = POSTERN_NSVC - 1;
	stop_next(sup);
}

/* --- the supervisor's control socket ---------------------------------------- */

static const char *
state_text(const struct svc *s, char *buf, size_t bufsz)
{
	switch (s->state) {
	case SVC_IDLE: return "not started yet";
	case SVC_STARTING: return "starting";
	case SVC_RUNNING: return "running";
	case SVC_STOPPING: return "stopping";
	case SVC_STOPPED: return "stopped";
	case SVC_BACKOFF:
		snprintf(buf, bufsz, "restarting in %us (last exit: %s)",
			 (unsigned)((uv_timer_get_due_in(&s->timer) + 999) / 1000), s->last_exit);
		return buf;
	}
	return "?";
}

static void
sup_status(struct sup *sup, struct mc_chan *ch, struct mc_msg *m)
{
	struct mc_msg r;
	char buf[128];
	mc_msg_init(&r, m->type);
	mc_msg_put_u32(&r, POSTERN_NSVC);
	for (int i = 0; i < POSTERN_NSVC; i++) {
		const struct svc *s = &sup->svc[i];
		mc_msg_put_str(&r, s->name);
		mc_msg_put_u32(&r, s->proc ? (uint32_t)s->pid : 0);
		mc_msg_put_u64(&r, s->proc ? (uint64_t)s->started : 0);
		mc_msg_put_u32(&r, s->restarts);
		mc_msg_put_str(&r, state_text(s, buf, sizeof(buf)));
	}
	mc_chan_reply(ch, m->reqid, &r);
}

static void
sup_restart(struct sup *sup, struct mc_chan *ch, struct mc_msg *m)
{
	char name[64];
	if (mc_msg_get_str(m, name, sizeof(name)) < 0 || mc_msg_end(m) < 0) {
		mc_chan_reply_error(ch, m->reqid, m->type, SUP_REFUSED, "malformed request");
		return;
	}
	int i = postern_svc_index(name);
	if (i < 0) {
		char why[160];
		snprintf(why, sizeof(why), "unknown service (one of %s)", postern_svc_list());
		mc_chan_reply_error(ch, m->reqid, m->type, SUP_REFUSED, why);
		return;
	}
	struct svc *s = &sup->svc[i];
	if (sup->stopping || s->state == SVC_IDLE) {
		mc_chan_reply_error(ch, m->reqid, m->type, SUP_REFUSED,
				    sup->stopping ? "the instance is stopping" : "the instance is still starting");
		return;
	}
	struct waiter *w = calloc(1, sizeof(*w));
	if (w == NULL)
		mc_panic("out of memory");
	w->ch = ch;
	w->reqid = m->reqid;
	w->next = s->waiters;
	s->waiters = w;

	mc_info("%s: restart requested by=%s", s->name, mc_chan_peer_name(ch));
	switch (s->state) {
	case SVC_STARTING:
	case SVC_RUNNING:
		s->restart_now = true;
		svc_terminate(s);
		break;
	case SVC_BACKOFF:
		uv_timer_stop(&s->timer);
		s->failures = 0;
		svc_spawn(s);
		break;
	default:
		/* Already on its way down for a restart: this request is answered with the first. */
		break;
	}
}

static void
reload_finish(struct reload_job *job)
{
	struct sup *sup = job->sup;
	for (struct reload_job **pp = &sup->reloads; *pp; pp = &(*pp)->next) {
		if (*pp == job) {
			*pp = job->next;
			break;
		}
	}
	/* "smtpd: refused: why; imapd: no answer ...", in start order. */
	struct mc_buf text;
	mc_buf_init(&text, 16384);
	for (int i = 0; i < POSTERN_NSVC; i++) {
		if (job->refusal[i])
			mc_buf_printf(&text, "%s%s: %s", text.len ? "; " : "", postern_svc_names[i], job->refusal[i]);
		free(job->refusal[i]);
	}
	if (text.len)
		mc_warn("reload incomplete: %s", text.data);
	else
		mc_info("reload done");
	if (job->ch) {
		if (text.len) {
			mc_chan_reply_error(job->ch, job->reqid, MC_MSG_SUP_RELOAD, SUP_REFUSED, text.data);
		} else {
			struct mc_msg r;
			mc_msg_init(&r, MC_MSG_SUP_RELOAD);
			mc_chan_reply(job->ch, job->reqid, &r);
		}
	}
	mc_buf_free(&text);
	free(job);
}

static void
reload_done(void *arg, struct mc_msg *m, int err, const char *why)
{
	struct reload_part *part = arg;
	struct reload_job *job = part->job;
	if (err) {
		char text[600];
		snprintf(text, sizeof(text), "%s%s", err == MC_CHAN_EREMOTE ? "refused: " : "", why);
		job->refusal[part->svc->index] = strdup(text);
		if (job->refusal[part->svc->index] == NULL)
			mc_panic("out of memory");
	}
	free(part);
	if (--job->pending == 0)
		reload_finish(job);
	(void)m;
}

/*
 * The certificate and key of the config as it reads now, opened for the
 * daemons; fds at -1 (and the daemons read the paths themselves) when the
 * config does not load (each daemon refuses it and says why) or a file
 * does not open.
 */
static void
reload_open_tls(struct sup *sup, int fds[2])
{
	char why[1024];
	struct mc_config *n = malloc(sizeof(*n));
	if (n == NULL)
		mc_panic("out of memory");
	fds[0] = fds[1] = -1;
	/* The file the daemons were started with (absolute), or the built-in default. */
	const char *path = sup->ctx->cfg.path[0] ? sup->ctx->cfg.path : NULL;
	if (mc_config_load(n, path, why, sizeof(why)) == 0 &&
	    postern_tls_open(n, fds, why, sizeof(why)) < 0)
		mc_warn("reload: %s; the daemons try the files themselves", why);
	free(n);
}

/* CTL_RELOAD to every running daemon, so that each refusal reaches the requester (ch NULL: SIGHUP). */
static void
sup_reload(struct sup *sup, struct mc_chan *ch, uint32_t reqid)
{
	struct reload_job *job = calloc(1, sizeof(*job));
	if (job == NULL)
		mc_panic("out of memory");
	job->sup = sup;
	job->ch = ch;
	job->reqid = reqid;
	job->pending = 1;
	job->next = sup->reloads;
	sup->reloads = job;
	mc_info("reload requested by=%s", ch ? mc_chan_peer_name(ch) : "SIGHUP");
	int fds[2];
	reload_open_tls(sup, fds);
	for (int i = 0; i < POSTERN_NSVC; i++) {
		struct svc *s = &sup->svc[i];
		if (s->proc == NULL || s->state == SVC_STOPPING)
			continue;
		struct reload_part *part = calloc(1, sizeof(*part));
		if (part == NULL)
			mc_panic("out of memory");
		part->job = job;
		part->svc = s;
		job->pending++;
		struct mc_msg req;
		postern_reload_request(&req, s->name, fds);
		postern_call(sup->loop, s->ctlpath, MC_ROLE_SUPERVISOR, &req, RELOAD_TIMEOUT_MS, reload_done, part);
	}
	if (fds[0] >= 0) {
		close(fds[0]);
		close(fds[1]);
	}
	if (--job->pending == 0)
		reload_finish(job);
}

static void
ctl_on_msg(struct mc_chan *ch, struct mc_msg *m, void *arg)
{
	struct sup *sup = arg;
	switch (m->type) {
	case MC_MSG_SUP_STATUS:
		sup_status(sup, ch, m);
		break;
	case MC_MSG_SUP_RESTART:
		sup_restart(sup, ch, m);
		break;
	case MC_MSG_SUP_STOP: {
		struct mc_msg r;
		mc_msg_init(&r, m->type);
		mc_chan_reply(ch, m->reqid, &r);
		char why[96];
		snprintf(why, sizeof(why), "requested by %s", mc_chan_peer_name(ch));
		sup_stop(sup, why);
		break;
	}
	case MC_MSG_SUP_RELOAD:
		if (mc_msg_end(m) < 0)
			mc_chan_reply_error(ch, m->reqid, m->type, SUP_REFUSED, "malformed request");
		else
			sup_reload(sup, ch, m->reqid);
		break;
	default:
		if (!(m->flags & MC_MSG_F_NOREPLY))
			mc_chan_reply_error(ch, m->reqid, m->type, SUP_REFUSED, "not a supervisor request");
	}
}

static void
ctl_on_down(struct mc_chan *ch, void *arg)
{
	struct sup *sup = arg;
	for (int i = 0; i < POSTERN_NSVC; i++) {
		for (struct waiter **pp = &sup->svc[i].waiters; *pp;) {
			struct waiter *w = *pp;
			if (w->ch == ch) {
				*pp = w->next;
				free(w);
			} else {
				pp = &w->next;
			}
		}
	}
	for (struct reload_job *j = sup->reloads; j; j = j->next)
		if (j->ch == ch)
			j->ch = NULL;
}

/* --- signals ----------------------------------------------------------------- */

static void
on_signal(uv_signal_t *h, int signum)
{
	struct sup *sup = h->data;
	if (signum == SIGHUP) {
		if (sup->stopping)
			return;
		/* Not a SIGHUP to each: the daemons could not open a root-only key themselves. */
		sup_reload(sup, NULL, 0);
		return;
	}
	sup_stop(sup, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* --- before the loop --------------------------------------------------------- */

/* Take run_dir/postern.pid; -1 (after saying why) when another supervisor holds it. */
static int
pidfile_take(struct sup *sup)
{
	int fd = open(sup->pidpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		fprintf(stderr, "postern: %s: %s\n", sup->pidpath, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		char buf[32] = "";
		ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		fprintf(stderr, "postern: another `postern up` (pid %s) is already running this instance (%s)\n",
			buf[0] ? buf : "?", sup->pidpath);
		close(fd);
		return -1;
	}
	/* Whoever wrote it before is gone (the lock was free): it is ours now. */
	char line[32];
	int n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, line, (size_t)n, 0) != n) {
		fprintf(stderr, "postern: %s: %s\n", sup->pidpath, strerror(errno));
		close(fd);
		return -1;
	}
	sup->pidfd = fd;
	return 0;
}

/* Remove the pid file while the lock is still held, so no one else's is removed. */
static void
pidfile_drop(struct sup *sup)
{
	unlink(sup->pidpath);
	close(sup->pidfd);
	sup->pidfd = -1;
}

static bool
is_executable(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

int
cmd_up(struct postern_ctx *ctx, int argc, char **argv)
{
	static struct sup sup;
	const struct mc_config *c = &ctx->cfg;
	char err[1024];

	if (argc > 1) {
		fprintf(stderr, "postern: up takes no arguments\nusage: postern [-c FILE] up\n");
		return POSTERN_USAGE;
	}
	(void)argv;

	sup.ctx = ctx;
	sup.pidfd = -1;
	snprintf(sup.pidpath, sizeof(sup.pidpath), "%s/postern.pid", c->global.run_dir);
	mc_config_sock(c, sup.ctlpath, sizeof(sup.ctlpath), MC_SOCK_SUPERVISOR);

	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	for (int i = 0; i < POSTERN_NSVC; i++) {
		struct svc *s = &sup.svc[i];
		s->sup = &sup;
		s->index = i;
		s->name = postern_svc_names[i];
		if (postern_daemon_path(s->name, exe, getenv("POSTERN_LIBEXECDIR"), POSTERN_LIBEXECDIR, is_executable,
					s->path, sizeof(s->path)) < 0) {
			fprintf(stderr, "postern: the path of %s is too long\n", s->name);
			return POSTERN_FAIL;
		}
		if (!is_executable(s->path)) {
			fprintf(stderr, "postern: %s: not found or not executable (set POSTERN_LIBEXECDIR?)\n",
				s->path);
			return POSTERN_FAIL;
		}
		snprintf(s->ctlpath, sizeof(s->ctlpath), "%s/%s.ctl", c->global.run_dir, s->name);
	}

	if (postern_prepare(ctx, err, sizeof(err)) < 0) {
		fprintf(stderr, "postern: %s\n", err);
		return POSTERN_FAIL;
	}
	if (pidfile_take(&sup) < 0)
		return POSTERN_FAIL;
	for (int i = 0; i < POSTERN_NSVC; i++) {
		if (postern_socket_answers(sup.svc[i].ctlpath)) {
			fprintf(stderr,
				"postern: %s is already running outside this supervisor (%s answers); stop it first\n",
				sup.svc[i].name, sup.svc[i].ctlpath);
			pidfile_drop(&sup);
			return POSTERN_FAIL;
		}
	}
	if (c->global.tls_self_signed &&
	    mc_tls_selfsigned(c->global.tls_cert, c->global.tls_key, c->global.hostname, err, sizeof(err)) < 0) {
		fprintf(stderr, "postern: %s\n", err);
		pidfile_drop(&sup);
		return POSTERN_FAIL;
	}

	sup.loop = uv_default_loop();
	static const struct mc_chan_cbs cbs = { .on_msg = ctl_on_msg, .on_down = ctl_on_down };
	sup.ctl = mc_chan_server_start(sup.loop, sup.ctlpath, 0660, &mc_proto, MC_ROLE_SUPERVISOR, "postern", &cbs,
				       &sup);
	if (sup.ctl == NULL) {
		fprintf(stderr, "postern: cannot listen on %s\n", sup.ctlpath);
		pidfile_drop(&sup);
		return POSTERN_FAIL;
	}
	if (geteuid() == 0) {
		struct group *gr = getgrnam(c->global.admin_group);
		if (gr && chown(sup.ctlpath, 0, gr->gr_gid) < 0)
			mc_warn("cannot give %s to group %s: %s", sup.ctlpath, c->global.admin_group, strerror(errno));
	}

	uv_signal_t *sigs[] = { &sup.sigint, &sup.sigterm, &sup.sighup };
	int signums[] = { SIGINT, SIGTERM, SIGHUP };
	for (size_t i = 0; i < 3; i++) {
		uv_signal_init(sup.loop, sigs[i]);
		sigs[i]->data = &sup;
		uv_signal_start(sigs[i], on_signal, signums[i]);
	}
	uv_timer_init(sup.loop, &sup.start_timer);
	sup.start_timer.data = &sup;
	for (int i = 0; i < POSTERN_NSVC; i++) {
		uv_timer_init(sup.loop, &sup.svc[i].timer);
		uv_timer_init(sup.loop, &sup.svc[i].probe_timer);
		sup.svc[i].timer.data = &sup.svc[i];
		sup.svc[i].probe_timer.data = &sup.svc[i];
	}

	mc_info("starting version=%s pid=%ld config=%s state_dir=%s", POSTERN_VERSION, (long)getpid(),
		c->path[0] ? c->path : "(built-in default)", c->global.state_dir);
	sup.start_next = 0;
	uv_timer_start(&sup.start_timer, start_wait_fire, START_WAIT_MS, 0);
	svc_spawn(&sup.svc[0]);

	uv_run(sup.loop, UV_RUN_DEFAULT);

	unlink(sup.ctlpath);
	pidfile_drop(&sup);
	mc_info("stopped");
	return POSTERN_OK;
}
