/*
 * log.c - the log line writer (see log.h).
 *
 * Each line is formatted whole into a stack buffer and written with one
 * write(2), so lines of concurrent processes sharing a descriptor do not
 * interleave. Called from every process; never allocates.
 */
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char progname[64] = "postern";
static enum mc_log_level cur_level = MC_LOG_INFO;
unsigned mc_trace_mask_;

static const char *const level_names[] = {
	[MC_LOG_DEBUG] = "debug",
	[MC_LOG_INFO] = "info",
	[MC_LOG_NOTICE] = "notice",
	[MC_LOG_WARNING] = "warning",
	[MC_LOG_ERROR] = "error",
	[MC_LOG_FATAL] = "fatal",
	[MC_LOG_PANIC] = "panic",
};

static const struct {
	const char *name;
	unsigned bit;
} trace_names[] = {
	{ "ipc", MC_TRACE_IPC },   { "proto", MC_TRACE_PROTO }, { "queue", MC_TRACE_QUEUE },
	{ "store", MC_TRACE_STORE }, { "dns", MC_TRACE_DNS },   { "tls", MC_TRACE_TLS },
	{ "auth", MC_TRACE_AUTH },
};

void
mc_log_init(const char *name, enum mc_log_level level)
{
	if (strchr(name, '/'))
		snprintf(progname, sizeof(progname), "%s", name);
	else
		snprintf(progname, sizeof(progname), "postern/%s", name);
	cur_level = level;
}

void
mc_log_set_level(enum mc_log_level level)
{
	cur_level = level;
}

enum mc_log_level
mc_log_get_level(void)
{
	return cur_level;
}

int
mc_log_level_parse(const char *s)
{
	for (size_t i = 0; i <= MC_LOG_ERROR; i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *
mc_log_level_name(enum mc_log_level level)
{
	return level <= MC_LOG_PANIC ? level_names[level] : "?";
}

void
mc_trace_set(unsigned mask)
{
	mc_trace_mask_ = mask;
}

unsigned
mc_trace_get(void)
{
	return mc_trace_mask_;
}

int
mc_trace_parse(const char *s, unsigned *mask)
{
	unsigned m = 0;
	while (*s) {
		size_t n = strcspn(s, ", ");
		if (n) {
			bool found = false;
			if (n == 3 && strncmp(s, "all", 3) == 0) {
				m = ~0u;
				found = true;
			} else if (n == 4 && strncmp(s, "none", 4) == 0) {
				found = true;
			}
			for (size_t i = 0; !found && i < sizeof(trace_names) / sizeof(trace_names[0]); i++) {
				if (strlen(trace_names[i].name) == n && strncmp(s, trace_names[i].name, n) == 0) {
					m |= trace_names[i].bit;
					found = true;
				}
			}
			if (!found)
				return -1;
		}
		s += n;
		s += strspn(s, ", ");
	}
	*mask = m;
	return 0;
}

static void
emit(const char *label, const char *fmt, va_list ap)
{
	char line[4096];
	struct timeval tv;
	struct tm tm;
	int saved = errno;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	size_t n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	int k = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s[%ld]: %s", (long)(tv.tv_usec / 1000), progname,
			 (long)getpid(), label);
	if (k > 0)
		n += (size_t)k;
	if (n < sizeof(line)) {
		k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		if (k > 0)
			n += (size_t)k;
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	/* No message may break the one-line-per-event rule. */
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
	errno = saved;
}

void
mc_vlog(enum mc_log_level level, const char *fmt, va_list ap)
{
	static const char *const labels[] = {
		[MC_LOG_DEBUG] = "debug: ", [MC_LOG_INFO] = "",		 [MC_LOG_NOTICE] = "notice: ",
		[MC_LOG_WARNING] = "warning: ", [MC_LOG_ERROR] = "error: ", [MC_LOG_FATAL] = "fatal: ",
		[MC_LOG_PANIC] = "panic: ",
	};
	if (level < cur_level && level < MC_LOG_FATAL)
		return;
	emit(labels[level], fmt, ap);
}

void
mc_log(enum mc_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mc_vlog(level, fmt, ap);
	va_end(ap);
}

#define LEVEL_FN(fn, lvl)                    \
	void fn(const char *fmt, ...)        \
	{                                    \
		va_list ap;                  \
		va_start(ap, fmt);           \
		mc_vlog(lvl, fmt, ap);       \
		va_end(ap);                  \
	}
LEVEL_FN(mc_debug, MC_LOG_DEBUG)
LEVEL_FN(mc_info, MC_LOG_INFO)
LEVEL_FN(mc_notice, MC_LOG_NOTICE)
LEVEL_FN(mc_warn, MC_LOG_WARNING)
LEVEL_FN(mc_error, MC_LOG_ERROR)

void
mc_fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mc_vlog(MC_LOG_FATAL, fmt, ap);
	va_end(ap);
	exit(1);
}

void
mc_panic(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mc_vlog(MC_LOG_PANIC, fmt, ap);
	va_end(ap);
	abort();
}

void
mc_trace(unsigned sub, const char *fmt, ...)
{
	if (!mc_trace_on(sub))
		return;
	va_list ap;
	va_start(ap, fmt);
	emit("trace: ", fmt, ap);
	va_end(ap);
}

char *
mc_log_clean(char *out, size_t outsz, const char *in, size_t inlen)
{
	size_t o = 0;
	if (outsz == 0)
		return out;
	for (size_t i = 0; i < inlen && o + 1 < outsz; i++) {
		unsigned char c = (unsigned char)in[i];
		out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	out[o] = '\0';
	return out;
}
