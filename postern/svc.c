/*
 * svc.c - the supervised services and the pure rules around them (see svc.h).
 *
 * Used by the supervisor (up.c) and the control commands (control.c).
 * Owns no state beyond constant tables; never touches processes, files
 * or the event loop, so unit tests can pin every rule down.
 */
#include "svc.h"
#include "util/log.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

const char *const postern_svc_names[POSTERN_NSVC] = { "resolverd", "queued", "smtpd", "pop3d", "imapd" };

int
postern_svc_index(const char *name)
{
	for (int i = 0; i < POSTERN_NSVC; i++)
		if (strcmp(name, postern_svc_names[i]) == 0)
			return i;
	return -1;
}

const char *
postern_svc_list(void)
{
	return "resolverd, queued, smtpd, pop3d, imapd";
}

unsigned
postern_backoff_delay_ms(unsigned failures)
{
	unsigned ms = POSTERN_BACKOFF_MIN_MS;
	for (unsigned i = 1; i < failures && ms < POSTERN_BACKOFF_MAX_MS; i++)
		ms *= 2;
	return ms < POSTERN_BACKOFF_MAX_MS ? ms : POSTERN_BACKOFF_MAX_MS;
}

unsigned
postern_backoff_failures(unsigned failures, uint64_t ran_ms)
{
	if (ran_ms >= POSTERN_BACKOFF_RESET_MS)
		return 1;
	/* Past the cap the count no longer matters; keep it from wrapping. */
	return failures < 64 ? failures + 1 : failures;
}

/* a/b (or a/b/c); -1 when it does not fit. */
static int
fits(int n, size_t outsz)
{
	return (n < 0 || (size_t)n >= outsz) ? -1 : 0;
}

int
postern_daemon_path(const char *name, const char *exe, const char *env_dir, const char *libexec_dir,
		    bool (*usable)(const char *path), char *out, size_t outsz)
{
	if (env_dir && env_dir[0])
		return fits(snprintf(out, outsz, "%s/%s", env_dir, name), outsz);

	/* <builddir>/postern/postern -> <builddir>/NAME/NAME */
	if (exe && exe[0] == '/') {
		char dir[4096];
		size_t n = strlen(exe);
		if (n < sizeof(dir)) {
			memcpy(dir, exe, n + 1);
			char *slash = strrchr(dir, '/');
			*slash = '\0';
			char *parent = strrchr(dir, '/');
			if (parent && strcmp(parent + 1, "postern") == 0) {
				*parent = '\0';
				const char *builddir = dir;   /* "" for a build directory at the root */
				char cand[4096];
				int k = snprintf(cand, sizeof(cand), "%s/%s/%s", builddir, name, name);
				if (fits(k, sizeof(cand)) == 0 && usable(cand))
					return fits(snprintf(out, outsz, "%s", cand), outsz);
			}
		}
	}
	return fits(snprintf(out, outsz, "%s/%s", libexec_dir, name), outsz);
}

char *
postern_exit_desc(int64_t status, int term_signal, char *out, size_t outsz)
{
	if (term_signal > 0) {
		const char *abbrev = sigabbrev_np(term_signal);
		if (abbrev)
			snprintf(out, outsz, "signal SIG%s", abbrev);
		else
			snprintf(out, outsz, "signal %d", term_signal);
	} else {
		snprintf(out, outsz, "exit status %" PRId64, status);
	}
	return out;
}

char *
postern_fmt_uptime(uint64_t secs, char *out, size_t outsz)
{
	if (secs < 60)
		snprintf(out, outsz, "%" PRIu64 "s", secs);
	else if (secs < 3600)
		snprintf(out, outsz, "%" PRIu64 "m%02" PRIu64 "s", secs / 60, secs % 60);
	else if (secs < 86400)
		snprintf(out, outsz, "%" PRIu64 "h%02" PRIu64 "m", secs / 3600, secs % 3600 / 60);
	else
		snprintf(out, outsz, "%" PRIu64 "d%02" PRIu64 "h", secs / 86400, secs % 86400 / 3600);
	return out;
}

void
postern_json_str(struct mc_buf *b, const char *s)
{
	mc_buf_adds(b, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': mc_buf_adds(b, "\\\""); break;
		case '\\': mc_buf_adds(b, "\\\\"); break;
		case '\n': mc_buf_adds(b, "\\n"); break;
		case '\r': mc_buf_adds(b, "\\r"); break;
		case '\t': mc_buf_adds(b, "\\t"); break;
		default:
			if (*p < 0x20)
				mc_buf_printf(b, "\\u%04x", *p);
			else
				mc_buf_add(b, p, 1);
		}
	}
	mc_buf_adds(b, "\"");
}

void
postern_status_table(struct mc_buf *b, const struct postern_status_row *rows, size_t n)
{
	mc_buf_printf(b, "%-10s %8s %8s %11s  %s\n", "NAME", "PID", "UPTIME", "CONNECTIONS", "STATE");
	for (size_t i = 0; i < n; i++) {
		const struct postern_status_row *r = &rows[i];
		char pid[16] = "-", up[32] = "-", conns[16] = "-";
		if (r->pid)
			snprintf(pid, sizeof(pid), "%" PRIu32, r->pid);
		if (r->answered) {
			postern_fmt_uptime(r->uptime, up, sizeof(up));
			snprintf(conns, sizeof(conns), "%" PRIu32, r->connections);
		}
		char state[sizeof(r->state)];
		/* One line per daemon, whatever its state text holds. */
		mc_log_clean(state, sizeof(state), r->state, strlen(r->state));
		mc_buf_printf(b, "%-10s %8s %8s %11s  %s\n", r->name, pid, up, conns, state);
	}
}

void
postern_status_json(struct mc_buf *b, const struct postern_status_row *rows, size_t n)
{
	mc_buf_adds(b, "[");
	for (size_t i = 0; i < n; i++) {
		const struct postern_status_row *r = &rows[i];
		mc_buf_adds(b, i ? ",\n {\"name\":" : "\n {\"name\":");
		postern_json_str(b, r->name);
		if (r->pid)
			mc_buf_printf(b, ",\"pid\":%" PRIu32, r->pid);
		else
			mc_buf_adds(b, ",\"pid\":null");
		if (r->answered)
			mc_buf_printf(b, ",\"uptime_seconds\":%" PRIu64 ",\"connections\":%" PRIu32, r->uptime,
				      r->connections);
		else
			mc_buf_adds(b, ",\"uptime_seconds\":null,\"connections\":null");
		mc_buf_adds(b, ",\"state\":");
		postern_json_str(b, r->state);
		if (r->has_restarts)
			mc_buf_printf(b, ",\"restarts\":%" PRIu32 "}", r->restarts);
		else
			mc_buf_adds(b, ",\"restarts\":null}");
	}
	mc_buf_adds(b, n ? "\n]\n" : "]\n");
}
