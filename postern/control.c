/*
 * control.c - `postern status`, `restart`, `stop`, `reload`, `trace`,
 * `loglevel`: the commands that talk to a running instance.
 *
 * Each asks the supervisor (run_dir/postern.ctl) and/or the daemons'
 * control sockets (run_dir/NAME.ctl) as MC_ROLE_ADMIN, with short
 * timeouts, through ctlcall.c; requests to several daemons go out in
 * parallel so one that hangs costs one timeout, not one each. Without a
 * supervisor, status and reload ask the daemons directly (reload passing
 * the certificate files, when this user can open them, as the supervisor
 * does). Output: tables on stdout (JSON with --json), reasons on stderr,
 * exit 0/1/2.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "ctlcall.h"
#include "mail/proto.h"
#include "postern.h"
#include "svc.h"
#include "util/chan.h"
#include "util/log.h"

#define STATUS_TIMEOUT_MS 2000
#define WAIT_POLL_MS 100
#define WAIT_CALL_TIMEOUT_MS 1000
/* A restart may wait the supervisor's SIGKILL grace (10 s) and a slow start. */
#define RESTART_TIMEOUT_MS 45000
#define RELOAD_TIMEOUT_MS 20000
#define STOP_WAIT_MS 60000

/* The outcome of one control request, kept after the loop has run. */
struct result {
	bool done;
	int err;                 /* 0, or MC_CHAN_E* */
	char why[512];
	struct mc_msg reply;     /* a copy of the reply's payload, when err == 0 */
	bool have_reply;
};

static void
collect(void *arg, struct mc_msg *m, int err, const char *why)
{
	struct result *r = arg;
	r->done = true;
	r->err = err;
	snprintf(r->why, sizeof(r->why), "%s", why ? why : "");
	if (err == 0 && m) {
		mc_msg_init(&r->reply, m->type);
		if (mc_buf_add(&r->reply.payload, m->payload.data, m->payload.len) == 0)
			r->have_reply = true;
		else
			mc_msg_free(&r->reply);
	}
}

static void
result_free(struct result *r)
{
	if (r->have_reply)
		mc_msg_free(&r->reply);
	memset(r, 0, sizeof(*r));
}

/* Queue one request m (consumed); the answer lands in r once the loop has run. */
static void
request_msg(const char *path, struct mc_msg *m, unsigned timeout_ms, struct result *r)
{
	memset(r, 0, sizeof(*r));
	postern_call(uv_default_loop(), path, MC_ROLE_ADMIN, m, timeout_ms, collect, r);
}

/* The same for a request of type with no field or one string. */
static void
request(const char *path, uint16_t type, const char *arg, unsigned timeout_ms, struct result *r)
{
	struct mc_msg m;
	mc_msg_init(&m, type);
	if (arg)
		mc_msg_put_str(&m, arg);
	request_msg(path, &m, timeout_ms, r);
}

static void
run_loop(void)
{
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
}

static void
wake(uv_timer_t *t)
{
	uv_close((uv_handle_t *)t, NULL);
}

/* Let time pass without blocking inside the loop. */
static void
pause_ms(unsigned ms)
{
	static uv_timer_t t;
	uv_timer_init(uv_default_loop(), &t);
	uv_timer_start(&t, wake, ms, 0);
	run_loop();
}

static void
daemon_sock(const struct postern_ctx *ctx, const char *name, char *out, size_t outsz)
{
	char file[64];
	snprintf(file, sizeof(file), "%s.ctl", name);
	mc_config_sock(&ctx->cfg, out, outsz, file);
}

static bool
missing_socket(const struct result *r)
{
	return r->err == MC_CHAN_ECLOSED &&
	       (strncmp(r->why, "no socket at ", 13) == 0 || strncmp(r->why, "nothing listens at ", 19) == 0);
}

/* why: "no socket at PATH" or "nothing listens at PATH". */
static void
not_running(const char *why)
{
	fprintf(stderr, "postern: is the instance running? (%s)\n", why);
}

/* --- status ------------------------------------------------------------------ */

struct status {
	struct postern_status_row rows[POSTERN_NSVC];
	size_t n;
	bool supervised;
	bool any_answered;
	bool denied;             /* a socket refused us by its mode: not root nor in the admin group */
	char sup_problem[600];   /* the supervisor's socket is there but did not answer */
	char sup_missing[600];   /* no supervisor: why we think so */
};

/* One round of questions: the supervisor first, then every daemon it reports (or all, without one). */
static void
status_collect(const struct postern_ctx *ctx, unsigned timeout_ms, struct status *st)
{
	char suppath[MC_PATH_MAX + 32], path[MC_PATH_MAX + 32];
	struct result sup, res[POSTERN_NSVC];
	bool asked[POSTERN_NSVC] = { false };

	memset(st, 0, sizeof(*st));
	mc_config_sock(&ctx->cfg, suppath, sizeof(suppath), MC_SOCK_SUPERVISOR);
	request(suppath, MC_MSG_SUP_STATUS, NULL, timeout_ms, &sup);
	run_loop();

	st->n = POSTERN_NSVC;
	for (size_t i = 0; i < POSTERN_NSVC; i++)
		snprintf(st->rows[i].name, sizeof(st->rows[i].name), "%s", postern_svc_names[i]);

	if (sup.err == 0 && sup.have_reply) {
		uint32_t n = 0;
		st->supervised = true;
		mc_msg_get_u32(&sup.reply, &n);
		for (uint32_t k = 0; k < n && k < 64; k++) {
			char name[32], state[160];
			uint32_t pid = 0, restarts = 0;
			uint64_t started = 0;
			struct mc_msg *m = &sup.reply;
			if (mc_msg_get_str(m, name, sizeof(name)) < 0 || mc_msg_get_u32(m, &pid) < 0 ||
			    mc_msg_get_u64(m, &started) < 0 || mc_msg_get_u32(m, &restarts) < 0 ||
			    mc_msg_get_str(m, state, sizeof(state)) < 0)
				break;
			int i = postern_svc_index(name);
			if (i < 0)
				continue;
			struct postern_status_row *r = &st->rows[i];
			r->pid = pid;
			r->has_restarts = true;
			r->restarts = restarts;
			snprintf(r->state, sizeof(r->state), "%s", state);
		}
	} else if (missing_socket(&sup)) {
		snprintf(st->sup_missing, sizeof(st->sup_missing), "%s", sup.why);
	} else {
		st->denied |= strstr(sup.why, strerror(EACCES)) != NULL;
		snprintf(st->sup_problem, sizeof(st->sup_problem), "the supervisor did not answer: %s", sup.why);
	}
	result_free(&sup);

	for (size_t i = 0; i < POSTERN_NSVC; i++) {
		if (st->supervised && st->rows[i].pid == 0)
			continue;   /* the supervisor says it is not running: its state says why */
		daemon_sock(ctx, postern_svc_names[i], path, sizeof(path));
		request(path, MC_MSG_CTL_STATUS, NULL, timeout_ms, &res[i]);
		asked[i] = true;
	}
	run_loop();

	time_t now = time(NULL);
	for (size_t i = 0; i < POSTERN_NSVC; i++) {
		struct postern_status_row *r = &st->rows[i];
		if (!asked[i])
			continue;
		char name[32], state[160];
		uint32_t pid, conns;
		uint64_t started;
		struct mc_msg *m = &res[i].reply;
		if (res[i].err == 0 && res[i].have_reply && mc_msg_get_str(m, name, sizeof(name)) == 0 &&
		    mc_msg_get_u32(m, &pid) == 0 && mc_msg_get_u64(m, &started) == 0 &&
		    mc_msg_get_u32(m, &conns) == 0 && mc_msg_get_str(m, state, sizeof(state)) == 0) {
			r->answered = true;
			st->any_answered = true;
			r->pid = pid;
			r->uptime = (uint64_t)now > started ? (uint64_t)now - started : 0;
			r->connections = conns;
			snprintf(r->state, sizeof(r->state), "%s", state);
		} else if (missing_socket(&res[i]) && !st->supervised) {
			snprintf(r->state, sizeof(r->state), "not running");
		} else if (res[i].err == 0) {
			snprintf(r->state, sizeof(r->state), "not responding (malformed answer)");
		} else {
			st->denied |= strstr(res[i].why, strerror(EACCES)) != NULL;
			snprintf(r->state, sizeof(r->state), "not responding (%.140s)", res[i].why);
		}
		result_free(&res[i]);
	}
}

static bool
status_complete(const struct status *st)
{
	for (size_t i = 0; i < st->n; i++)
		if (!st->rows[i].answered)
			return false;
	return true;
}

static void
status_print(const struct postern_ctx *ctx, const struct status *st, bool json)
{
	struct mc_buf b;
	mc_buf_init(&b, 0);
	if (json)
		postern_status_json(&b, st->rows, st->n);
	else
		postern_status_table(&b, st->rows, st->n);
	fwrite(b.data, 1, b.len, stdout);
	fflush(stdout);
	mc_buf_free(&b);
	(void)ctx;
}

static int
parse_seconds(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0 && v <= 86400))
		return -1;
	*out = v;
	return 0;
}

int
cmd_status(struct postern_ctx *ctx, int argc, char **argv)
{
	bool json = ctx->json, wait = false;
	double wait_s = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc && parse_seconds(argv[i + 1], &wait_s) == 0) {
			wait = true;
			i++;
		} else if (strncmp(argv[i], "--wait=", 7) == 0 && parse_seconds(argv[i] + 7, &wait_s) == 0) {
			wait = true;
		} else {
			fprintf(stderr, "postern: status: bad argument '%s'\n", argv[i]);
			fprintf(stderr, "usage: postern status [--wait SECONDS] [--json]\n");
			return POSTERN_USAGE;
		}
	}

	struct status st;
	if (!wait) {
		status_collect(ctx, STATUS_TIMEOUT_MS, &st);
		status_print(ctx, &st, json);
		if (st.sup_problem[0])
			fprintf(stderr, "postern: %s\n", st.sup_problem);
		if (st.denied)
			fprintf(stderr, "postern: the control sockets are for root and the group %s\n",
				ctx->cfg.global.admin_group);
		else if (!st.supervised && !st.any_answered && st.sup_missing[0])
			not_running(st.sup_missing);
		return status_complete(&st) ? POSTERN_OK : POSTERN_FAIL;
	}

	uint64_t deadline = uv_now(uv_default_loop()) + (uint64_t)(wait_s * 1000 + 0.5);
	for (;;) {
		status_collect(ctx, WAIT_CALL_TIMEOUT_MS, &st);
		if (status_complete(&st)) {
			status_print(ctx, &st, json);
			return POSTERN_OK;
		}
		uv_update_time(uv_default_loop());
		if (uv_now(uv_default_loop()) + WAIT_POLL_MS > deadline)
			break;
		pause_ms(WAIT_POLL_MS);
	}
	status_print(ctx, &st, json);
	fprintf(stderr, "postern: not every daemon answered within %g s:", wait_s);
	for (size_t i = 0, k = 0; i < st.n; i++)
		if (!st.rows[i].answered)
			fprintf(stderr, "%s %s (%s)", k++ ? "," : "", st.rows[i].name, st.rows[i].state);
	fprintf(stderr, "\n");
	return POSTERN_FAIL;
}

/* --- restart, stop -------------------------------------------------------------- */

/* One request to the supervisor; prints why and returns the exit status when it failed. */
static int
ask_supervisor(const struct postern_ctx *ctx, uint16_t type, const char *arg, unsigned timeout_ms, struct result *r,
	       const char *what)
{
	char path[MC_PATH_MAX + 32];
	mc_config_sock(&ctx->cfg, path, sizeof(path), MC_SOCK_SUPERVISOR);
	request(path, type, arg, timeout_ms, r);
	run_loop();
	if (r->err == 0)
		return POSTERN_OK;
	if (missing_socket(r))
		not_running(r->why);
	else if (r->err == MC_CHAN_EREMOTE)
		fprintf(stderr, "postern: %s: %s\n", what, r->why);
	else
		fprintf(stderr, "postern: %s: the supervisor (%s): %s\n", what, path, r->why);
	return POSTERN_FAIL;
}

int
cmd_restart(struct postern_ctx *ctx, int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: postern restart SERVICE   (one of %s)\n", postern_svc_list());
		return POSTERN_USAGE;
	}
	if (postern_svc_index(argv[1]) < 0) {
		fprintf(stderr, "postern: unknown service '%s' (one of %s)\n", argv[1], postern_svc_list());
		return POSTERN_USAGE;
	}
	struct result r;
	int rc = ask_supervisor(ctx, MC_MSG_SUP_RESTART, argv[1], RESTART_TIMEOUT_MS, &r, "restart");
	result_free(&r);
	if (rc != POSTERN_OK)
		return rc;

	/* Say which process runs now. */
	struct status st;
	status_collect(ctx, STATUS_TIMEOUT_MS, &st);
	const struct postern_status_row *row = &st.rows[postern_svc_index(argv[1])];
	if (row->pid)
		printf("%s restarted (pid %u)\n", argv[1], row->pid);
	else
		printf("%s restarted\n", argv[1]);
	return POSTERN_OK;
}

/* True while a supervisor holds the lock on its pid file. */
static bool
supervisor_holds(const char *pidpath)
{
	int fd = open(pidpath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	bool held = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	close(fd);
	return held;
}

int
cmd_stop(struct postern_ctx *ctx, int argc, char **argv)
{
	if (argc != 1) {
		fprintf(stderr, "usage: postern stop\n");
		return POSTERN_USAGE;
	}
	(void)argv;
	struct result r;
	int rc = ask_supervisor(ctx, MC_MSG_SUP_STOP, NULL, STATUS_TIMEOUT_MS, &r, "stop");
	result_free(&r);
	if (rc != POSTERN_OK)
		return rc;

	/*
	 * The supervisor answers first, then stops the daemons one by one and
	 * lets go of its pid file last: wait until nobody holds its lock.
	 */
	char path[MC_PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/postern.pid", ctx->cfg.global.run_dir);
	for (unsigned waited = 0; supervisor_holds(path); waited += WAIT_POLL_MS) {
		if (waited >= STOP_WAIT_MS) {
			fprintf(stderr, "postern: the instance is still stopping after %d s\n", STOP_WAIT_MS / 1000);
			return POSTERN_FAIL;
		}
		pause_ms(WAIT_POLL_MS);
	}
	printf("stopped\n");
	return POSTERN_OK;
}

/* --- reload, trace, loglevel ------------------------------------------------------ */

/*
 * Send type (with arg) to the control socket of each named daemon, in
 * parallel; report each failure. CTL_RELOAD carries tlsfds (NULL: none).
 */
static int
ask_daemons(const struct postern_ctx *ctx, const char *const *names, size_t n, uint16_t type, const char *arg,
	    const int *tlsfds, unsigned timeout_ms, const char *what, bool missing_ok)
{
	struct result res[POSTERN_NSVC];
	char path[MC_PATH_MAX + 32];
	size_t answered = 0, failed = 0;
	char missing[512] = "";

	for (size_t i = 0; i < n; i++) {
		daemon_sock(ctx, names[i], path, sizeof(path));
		if (type == MC_MSG_CTL_RELOAD) {
			struct mc_msg m;
			postern_reload_request(&m, names[i], tlsfds);
			request_msg(path, &m, timeout_ms, &res[i]);
		} else {
			request(path, type, arg, timeout_ms, &res[i]);
		}
	}
	run_loop();
	for (size_t i = 0; i < n; i++) {
		if (res[i].err == 0) {
			answered++;
		} else if (missing_socket(&res[i]) && (missing_ok || n == 1)) {
			if (missing[0] == '\0')
				snprintf(missing, sizeof(missing), "%s", res[i].why);
			if (n > 1)
				fprintf(stderr, "postern: %s: not running\n", names[i]);
		} else if (res[i].err == MC_CHAN_EREMOTE) {
			fprintf(stderr, "postern: %s: %s refused: %s\n", names[i], what, res[i].why);
			answered++;
			failed++;
		} else {
			fprintf(stderr, "postern: %s: %s\n", names[i], res[i].why);
			failed++;
		}
		result_free(&res[i]);
	}
	if (answered == 0 && failed == 0) {
		not_running(missing);
		return POSTERN_FAIL;
	}
	return failed ? POSTERN_FAIL : POSTERN_OK;
}

int
cmd_reload(struct postern_ctx *ctx, int argc, char **argv)
{
	if (argc != 1) {
		fprintf(stderr, "usage: postern reload\n");
		return POSTERN_USAGE;
	}
	(void)argv;
	char path[MC_PATH_MAX + 32];
	struct result r;
	mc_config_sock(&ctx->cfg, path, sizeof(path), MC_SOCK_SUPERVISOR);
	request(path, MC_MSG_SUP_RELOAD, NULL, RELOAD_TIMEOUT_MS, &r);
	run_loop();

	if (missing_socket(&r)) {
		/* No supervisor: every daemon on its own, given the certificate files when we may open them. */
		result_free(&r);
		int fds[2];
		char why[MC_PATH_MAX + 128];
		if (postern_tls_open(&ctx->cfg, fds, why, sizeof(why)) < 0)
			fprintf(stderr, "postern: %s; the daemons re-read the certificate themselves if they can\n",
				why);
		int rc = ask_daemons(ctx, postern_svc_names, POSTERN_NSVC, MC_MSG_CTL_RELOAD, NULL, fds,
				     RELOAD_TIMEOUT_MS, "reload", true);
		if (fds[0] >= 0) {
			close(fds[0]);
			close(fds[1]);
		}
		if (rc == POSTERN_OK)
			printf("reloaded\n");
		return rc;
	}
	int rc = POSTERN_OK;
	if (r.err == MC_CHAN_EREMOTE) {
		/* One line per daemon: the supervisor joins them as "smtpd: ...; imapd: ...". */
		fprintf(stderr, "postern: reload refused:\n");
		const char *p = r.why;
		while (*p) {
			const char *next = NULL;
			for (const char *q = strstr(p, "; "); q && !next; q = strstr(q + 2, "; ")) {
				size_t n = strcspn(q + 2, ":");
				for (int i = 0; i < POSTERN_NSVC && !next; i++) {
					const char *name = postern_svc_names[i];
					if (strlen(name) == n && strncmp(q + 2, name, n) == 0)
						next = q;
				}
			}
			int len = next ? (int)(next - p) : (int)strlen(p);
			fprintf(stderr, "  %.*s\n", len, p);
			p += len + (next ? 2 : 0);
		}
		rc = POSTERN_FAIL;
	} else if (r.err) {
		fprintf(stderr, "postern: reload: the supervisor (%s): %s\n", path, r.why);
		rc = POSTERN_FAIL;
	} else {
		printf("reloaded\n");
	}
	result_free(&r);
	return rc;
}

/* SERVICE or "all" -> the list of daemons to ask; -1 when unknown. */
static int
pick_services(const char *arg, const char **names, size_t *n)
{
	if (strcmp(arg, "all") == 0) {
		for (size_t i = 0; i < POSTERN_NSVC; i++)
			names[i] = postern_svc_names[i];
		*n = POSTERN_NSVC;
		return 0;
	}
	int i = postern_svc_index(arg);
	if (i < 0)
		return -1;
	names[0] = postern_svc_names[i];
	*n = 1;
	return 0;
}

int
cmd_trace(struct postern_ctx *ctx, int argc, char **argv)
{
	const char *names[POSTERN_NSVC];
	size_t n;
	unsigned mask;
	if (argc != 3 || pick_services(argv[1], names, &n) < 0 || mc_trace_parse(argv[2], &mask) < 0) {
		fprintf(stderr, "usage: postern trace SERVICE|all NAMES\n"
				"  SERVICE: %s\n"
				"  NAMES: comma-separated ipc,proto,queue,store,dns,tls,auth, or all, or none\n",
			postern_svc_list());
		return POSTERN_USAGE;
	}
	return ask_daemons(ctx, names, n, MC_MSG_CTL_TRACE, argv[2], NULL, STATUS_TIMEOUT_MS, "trace", n > 1);
}

int
cmd_loglevel(struct postern_ctx *ctx, int argc, char **argv)
{
	const char *names[POSTERN_NSVC];
	size_t n;
	if (argc != 3 || pick_services(argv[1], names, &n) < 0 || mc_log_level_parse(argv[2]) < 0) {
		fprintf(stderr, "usage: postern loglevel SERVICE|all LEVEL\n  SERVICE: %s\n"
				"  LEVEL: debug, info, notice, warning, error\n",
			postern_svc_list());
		return POSTERN_USAGE;
	}
	return ask_daemons(ctx, names, n, MC_MSG_CTL_LOGLEVEL, argv[2], NULL, STATUS_TIMEOUT_MS, "loglevel",
			   n > 1);
}
