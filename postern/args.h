/*
 * args.h - the tool's global options, before the command name:
 *
 *   postern [-c FILE] [--json] [-h|--help] [--version] COMMAND [ARGS...]
 *
 * Called by main.c; pure, so tests/unit/test_daemon.c checks it.
 */
#ifndef POSTERN_ARGS_H
#define POSTERN_ARGS_H

#include <stdbool.h>
#include <stddef.h>

struct postern_args {
	const char *config_path;   /* -c FILE, --config FILE, --config=FILE; NULL when absent */
	bool json;
	bool help;
	bool version;
	int cmd;                   /* index in argv of the command name; argc when there is none */
};

/*
 * Parse argv[1..] up to the command name. -1 with err on a usage error
 * (unknown option, -c without a file, no command while neither --help
 * nor --version was given).
 */
int postern_args_parse(int argc, char **argv, struct postern_args *a, char *err, size_t errsz);

#endif
