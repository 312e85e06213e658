/*
 * svc.h - the services `postern up` supervises, and the pure pieces of
 * supervising and reporting on them: start order, where each program
 * lives, the restart backoff, and how `postern status` prints.
 *
 * Called by up.c (the supervisor) and control.c (status and friends);
 * kept free of I/O and of the event loop so tests/unit/test_daemon.c can
 * check every rule without starting a process.
 */
#ifndef POSTERN_SVC_H
#define POSTERN_SVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* The daemons, in start order (stopped in reverse). */
#define POSTERN_NSVC 5
extern const char *const postern_svc_names[POSTERN_NSVC];

/* Index of a service name in postern_svc_names, -1 when unknown. */
int postern_svc_index(const char *name);
/* "resolverd, queued, smtpd, pop3d, imapd", for usage errors. */
const char *postern_svc_list(void);

/* Restart backoff: 1 s doubling to 60 s; a run of 60 s or more forgets earlier failures. */
#define POSTERN_BACKOFF_MIN_MS 1000u
#define POSTERN_BACKOFF_MAX_MS 60000u
#define POSTERN_BACKOFF_RESET_MS 60000u
/* Delay before restarting after the n-th failure in a row (n >= 1): 1 s, 2 s, 4 s ... 60 s. */
unsigned postern_backoff_delay_ms(unsigned failures);
/* Failures in a row once a child that ran ran_ms exits: 1 after a long run, else one more. */
unsigned postern_backoff_failures(unsigned failures, uint64_t ran_ms);

/*
 * Where the program of service name is: env_dir/NAME when env_dir
 * (POSTERN_LIBEXECDIR from the environment) is set; else
 * <builddir>/NAME/NAME when exe is <builddir>/postern/postern and that
 * file is usable; else libexec_dir/NAME. usable() says whether a path is
 * an executable file (stat in real use, a table in tests). -1 when the
 * path does not fit in out.
 */
int postern_daemon_path(const char *name, const char *exe, const char *env_dir, const char *libexec_dir,
			bool (*usable)(const char *path), char *out, size_t outsz);

/* Why a child ended, from its exit status and terminating signal: "exit status 1", "signal SIGKILL". */
char *postern_exit_desc(int64_t status, int term_signal, char *out, size_t outsz);

/* Human-readable duration: "42s", "3m12s", "2h05m", "3d04h". Returns out. */
char *postern_fmt_uptime(uint64_t secs, char *out, size_t outsz);

/* Append s as a JSON string (quoted, escaped; bytes >= 0x80 pass through as they are). */
void postern_json_str(struct mc_buf *b, const char *s);

/* One line of `postern status`. */
struct postern_status_row {
	char name[32];
	uint32_t pid;            /* 0: unknown or not running */
	bool answered;           /* the daemon answered its control socket */
	uint64_t uptime;         /* seconds, when answered */
	uint32_t connections;    /* when answered */
	char state[160];         /* the daemon's own state, or why it did not answer */
	bool has_restarts;       /* a supervisor told us */
	uint32_t restarts;
};

/* NAME PID UPTIME CONNECTIONS STATE, a header line and one line per row. */
void postern_status_table(struct mc_buf *b, const struct postern_status_row *rows, size_t n);
/* [{"name":..., "pid":..., "uptime_seconds":..., "connections":..., "state":..., "restarts":...}, ...] */
void postern_status_json(struct mc_buf *b, const struct postern_status_row *rows, size_t n);

#endif
