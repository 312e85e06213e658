/*
 * args.c - parse the tool's global options (see args.h).
 *
 * Options stop at the first word that is not an option (the command) or
 * after "--"; the command's own options are left to the command.
 */
#include "args.h"

#include <stdio.h>
#include <string.h>

int
postern_args_parse(int argc, char **argv, struct postern_args *a, char *err, size_t errsz)
{
	memset(a, 0, sizeof(*a));
	int i = 1;
	for (; i < argc; i++) {
		const char *o = argv[i];
		if (o[0] != '-' || o[1] == '\0')
			break;
		if (strcmp(o, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(o, "-c") == 0 || strcmp(o, "--config") == 0) {
			if (i + 1 >= argc || argv[i + 1][0] == '\0') {
				snprintf(err, errsz, "option %s needs a file name", o);
				return -1;
			}
			a->config_path = argv[++i];
		} else if (strncmp(o, "--config=", 9) == 0 && o[9]) {
			a->config_path = o + 9;
		} else if (strncmp(o, "-c", 2) == 0) {
			a->config_path = o + 2;
		} else if (strcmp(o, "--json") == 0) {
			a->json = true;
		} else if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
			a->help = true;
		} else if (strcmp(o, "--version") == 0) {
			a->version = true;
		} else {
			snprintf(err, errsz, "unknown option '%s'", o);
			return -1;
		}
	}
	a->cmd = i;
	if (i >= argc && !a->help && !a->version) {
		snprintf(err, errsz, "no command given");
		return -1;
	}
	return 0;
}
