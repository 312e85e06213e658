/*
 * postern.h - what the command-line tool's command files share.
 *
 * main.c parses the global options (-c FILE, --json), loads the config
 * (the same built-in default as `postern up` when -c is absent) and calls
 * one command function. Each command returns the exit status of DESIGN.md:
 * 0 done, 1 failed (after printing why on stderr), 2 usage error.
 *
 * A command function gets the words from its own name on: for
 * `postern -c x.conf user add a@b --password-stdin` cmd_user sees
 * argc 4, argv { "user", "add", "a@b", "--password-stdin" }. The global
 * options (-c, --json) are already taken out; a command may accept
 * --json among its own words too.
 */
#ifndef POSTERN_H
#define POSTERN_H

#include <stdbool.h>

#include "util/config.h"

struct postern_ctx {
	const char *config_path;   /* -c FILE, or NULL for the built-in default */
	struct mc_config cfg;
	bool json;                 /* --json: listings as JSON */
	const char *argv0;         /* how the tool was invoked, to find the daemons */
};

enum { POSTERN_OK = 0, POSTERN_FAIL = 1, POSTERN_USAGE = 2 };

/*
 * setup.c: make the instance's users (when root: the daemon users, the
 * mail store user and the admin group, with useradd/groupadd) and the
 * state layout with its owners and modes. Idempotent; `up` and every
 * command that writes state call it first.
 */
int postern_prepare(struct postern_ctx *ctx, char *err, size_t errsz);

/* cmd_directory.c: the directory (resolverd's database), usable without a running instance. */
int cmd_domain(struct postern_ctx *ctx, int argc, char **argv);
int cmd_user(struct postern_ctx *ctx, int argc, char **argv);
int cmd_alias(struct postern_ctx *ctx, int argc, char **argv);

/* up.c: the foreground supervisor. */
int cmd_up(struct postern_ctx *ctx, int argc, char **argv);
/* control.c: status, restart, stop, reload, trace, loglevel. */
int cmd_status(struct postern_ctx *ctx, int argc, char **argv);
int cmd_restart(struct postern_ctx *ctx, int argc, char **argv);
int cmd_stop(struct postern_ctx *ctx, int argc, char **argv);
int cmd_reload(struct postern_ctx *ctx, int argc, char **argv);
int cmd_trace(struct postern_ctx *ctx, int argc, char **argv);
int cmd_loglevel(struct postern_ctx *ctx, int argc, char **argv);
/* cmd_mailbox.c: postern mailbox reindex USER. */
int cmd_mailbox(struct postern_ctx *ctx, int argc, char **argv);
/* cmd_queue.c: postern queue list|show|summary|flush|hold|release|delete|bounce|pause|resume|watch. */
int cmd_queue(struct postern_ctx *ctx, int argc, char **argv);

#endif
