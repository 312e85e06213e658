/*
 * main.c - the `postern` command-line tool: global options, the config,
 * and the table of commands.
 *
 * Parses -c FILE / --json / --help / --version (args.c), loads the config
 * (the built-in development default without -c), and hands the rest of
 * the words to one command function of postern.h. Owns nothing beyond
 * the context it passes down. Usage errors exit 2 here, before any
 * config is read; a config that does not load exits 1 with its message.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "mail/proto.h"
#include "postern.h"
#include "postern_build.h"
#include "util/config.h"
#include "util/log.h"

struct command {
	const char *name;
	int (*fn)(struct postern_ctx *ctx, int argc, char **argv);
	const char *synopsis;
	const char *what;
};

static const struct command commands[] = {
	{ "up", cmd_up, "up", "run the whole instance in the foreground, supervised" },
	{ "status", cmd_status, "status [--wait SECONDS]", "every daemon: pid, uptime, connections" },
	{ "restart", cmd_restart, "restart SERVICE", "restart one daemon (resolverd queued smtpd pop3d imapd)" },
	{ "stop", cmd_stop, "stop", "stop the instance started by `postern up`" },
	{ "reload", cmd_reload, "reload", "re-read config and certificates" },
	{ "trace", cmd_trace, "trace SERVICE NAMES", "trace switches (ipc,proto,queue,store,dns,tls,auth|all|none)" },
	{ "loglevel", cmd_loglevel, "loglevel SERVICE LEVEL", "set the log level (debug info notice warning error)" },
	{ "domain", cmd_domain, "domain add|del|list [DOMAIN]", "local domains" },
	{ "user", cmd_user, "user add|del|passwd|list [ADDRESS]", "mail users (--password-stdin)" },
	{ "alias", cmd_alias, "alias add|del|list [SOURCE] [TARGET]", "aliases" },
	{ "mailbox", cmd_mailbox, "mailbox reindex USER", "rebuild a mailbox index from its Maildir" },
	{ "queue", cmd_queue, "queue list|show|summary|flush|hold|...", "the mail queue (postern queue help)" },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void
usage(FILE *f)
{
	fprintf(f, "usage: postern [-c FILE] [--json] COMMAND [ARGS...]\n"
		   "       postern --help | --version\n\n"
		   "commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-38s %s\n", commands[i].synopsis, commands[i].what);
	fprintf(f, "\nWithout -c the built-in development config is used (state under ./var).\n"
		   "Exit status: 0 done, 1 failed, 2 usage error.\n");
}

int
main(int argc, char **argv)
{
	struct postern_args a;
	char err[1024];

	if (postern_args_parse(argc, argv, &a, err, sizeof(err)) < 0) {
		fprintf(stderr, "postern: %s\n", err);
		usage(stderr);
		return POSTERN_USAGE;
	}
	if (a.help || (a.cmd < argc && strcmp(argv[a.cmd], "help") == 0)) {
		usage(stdout);
		return POSTERN_OK;
	}
	if (a.version) {
		printf("postern %s\n", POSTERN_VERSION);
		return POSTERN_OK;
	}

	const struct command *cmd = NULL;
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(argv[a.cmd], commands[i].name) == 0)
			cmd = &commands[i];
	if (cmd == NULL) {
		fprintf(stderr, "postern: unknown command '%s'\n", argv[a.cmd]);
		usage(stderr);
		return POSTERN_USAGE;
	}

	/* Log lines of the tool (and of the supervisor) read "postern/up[pid]: ...". */
	char progname[64];
	snprintf(progname, sizeof(progname), "postern/%s", cmd->name);
	mc_log_init(progname, MC_LOG_INFO);

	static struct postern_ctx ctx;
	ctx.config_path = a.config_path;
	ctx.json = a.json;
	ctx.argv0 = argv[0];
	if (mc_config_load(&ctx.cfg, a.config_path, err, sizeof(err)) < 0) {
		fprintf(stderr, "postern: %s\n", err);
		return POSTERN_FAIL;
	}
	/* The supervisor logs like a daemon; the other commands speak on stdout/stderr themselves. */
	if (strcmp(cmd->name, "up") == 0 || ctx.cfg.global.log_level > MC_LOG_WARNING)
		mc_log_set_level((enum mc_log_level)ctx.cfg.global.log_level);
	else
		mc_log_set_level(MC_LOG_WARNING);
	mc_proto_set_identities(&ctx.cfg);
	signal(SIGPIPE, SIG_IGN);

	return cmd->fn(&ctx, argc - a.cmd, argv + a.cmd);
}
