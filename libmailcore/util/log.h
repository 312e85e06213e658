/*
 * log.h - one line per event, in the manner of Postfix's log.
 *
 *   2026-11-26T18:14:16.123Z postern/smtpd[4711]: 0F3A9C2D1E: accepted from=<a@b> size=1234
 *
 * Lines go to standard error (the supervisor, systemd or a test harness
 * collects them). Severities follow STYLE.md: panic (a bug: abort with a
 * core), fatal (cannot go on: exit non-zero), warn (recoverable), info,
 * debug, and per-subsystem trace switches that can be flipped at run time
 * over the control socket. Library code may log and may panic on a broken
 * invariant, but never calls exit(): only mc_fatal does, and only daemons'
 * mains and the tool should call it.
 */
#ifndef MC_LOG_H
#define MC_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum mc_log_level {
	MC_LOG_DEBUG = 0,
	MC_LOG_INFO,
	MC_LOG_NOTICE,
	MC_LOG_WARNING,
	MC_LOG_ERROR,
	MC_LOG_FATAL,
	MC_LOG_PANIC,
};

/* Trace subsystems; postern can switch each on at run time. */
enum mc_trace_sub {
	MC_TRACE_IPC = 1u << 0,
	MC_TRACE_PROTO = 1u << 1,   /* protocol dialogues (smtp, pop3, imap) */
	MC_TRACE_QUEUE = 1u << 2,
	MC_TRACE_STORE = 1u << 3,
	MC_TRACE_DNS = 1u << 4,
	MC_TRACE_TLS = 1u << 5,
	MC_TRACE_AUTH = 1u << 6,
};

/* Set the program name shown in each line ("smtpd" becomes "postern/smtpd"). */
void mc_log_init(const char *progname, enum mc_log_level level);
void mc_log_set_level(enum mc_log_level level);
enum mc_log_level mc_log_get_level(void);
/* Parse "debug", "info", ... ; -1 when unknown. */
int mc_log_level_parse(const char *s);
const char *mc_log_level_name(enum mc_log_level level);

void mc_trace_set(unsigned mask);
unsigned mc_trace_get(void);
/* Parse a comma-separated list of trace names ("ipc,proto"); -1 when one is unknown. */
int mc_trace_parse(const char *s, unsigned *mask);
static inline bool mc_trace_on(unsigned sub);

void mc_vlog(enum mc_log_level level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void mc_log(enum mc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mc_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mc_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mc_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mc_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mc_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log and exit(1): for daemon mains and the command-line tool only. */
void mc_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Log and abort(): a bug, an invariant that cannot fail has failed. */
void mc_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void mc_trace(unsigned sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Make text from outside safe for a log line, a reply or a DSN: control
 * characters and bytes that are not printable ASCII become '?', and the
 * result is cut at outsz-1 bytes. Returns out.
 */
char *mc_log_clean(char *out, size_t outsz, const char *in, size_t inlen);

extern unsigned mc_trace_mask_;
static inline bool
mc_trace_on(unsigned sub)
{
	return (mc_trace_mask_ & sub) != 0;
}

#endif
