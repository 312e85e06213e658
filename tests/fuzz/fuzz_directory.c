/*
 * fuzz_directory.c - libFuzzer target for what resolverd reads from its
 * peers before the directory answers: recipient checks and expansions of
 * arbitrary addresses (against a small directory with aliases, a loop and
 * a catch-all), the name checks behind mailbox paths, and the guard's
 * client address keys. The first byte picks the function.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/directory.h"
#include "resolverd/guard.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct mc_config cfg;
static struct mc_dir *dir;
static struct mc_dest dests[64];

static void
setup(void)
{
	char err[256];
	snprintf(cfg.global.state_dir, sizeof(cfg.global.state_dir), "/tmp/fuzz_directory.%ld", (long)getpid());
	mc_log_init("fuzz_directory", MC_LOG_FATAL);
	dir = mc_dir_open(&cfg, 1000, err, sizeof(err));
	if (dir == NULL)
		abort();
	static const char *const domains[] = { "example.test", "c.test" };
	static const char *const users[] = { "alice@example.test", "bob@example.test" };
	static const char *const aliases[][2] = {
		{ "team@example.test", "alice@example.test" }, { "team@example.test", "x@far.test" },
		{ "loop1@example.test", "loop2@example.test" }, { "loop2@example.test", "loop1@example.test" },
		{ "@c.test", "@example.test" },                 { "bob@example.test", "bob@example.test" },
	};
	for (size_t i = 0; i < 2; i++) {
		mc_dir_domain_add(dir, domains[i], err, sizeof(err));
		mc_dir_user_add(dir, users[i], "$y$x", 0, err, sizeof(err));
	}
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		mc_dir_alias_add(dir, aliases[i][0], aliases[i][1], err, sizeof(err));
}

static void
check_mailbox(const char *path)
{
	char prefix[MC_PATH_MAX + 8];
	snprintf(prefix, sizeof(prefix), "%s/mail/", cfg.global.state_dir);
	if (strncmp(path, prefix, strlen(prefix)) != 0)
		abort();
	const char *rest = path + strlen(prefix);
	if (rest[0] == '.' || strstr(rest, "/.") != NULL || strchr(rest, '/') == NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 2048)
		return 0;
	if (dir == NULL)
		setup();
	char *s = malloc(size);
	if (s == NULL)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';

	char out[600], err[300];
	unsigned n = 0;
	switch (data[0] & 3) {
	case 0: {
		enum mc_rcpt_result r = mc_dir_rcpt(dir, s, out, sizeof(out));
		if (r < MC_RCPT_LOCAL || r > MC_RCPT_TEMPFAIL || strlen(out) >= sizeof(out))
			abort();
		break;
	}
	case 1:
		if (mc_dir_expand(dir, s, dests, 64, &n) == 0) {
			if (n == 0 || n > 64)
				abort();
			for (unsigned i = 0; i < n; i++)
				if (dests[i].kind == MC_DEST_LOCAL)
					check_mailbox(dests[i].mailbox);
		}
		break;
	case 2:
		if (mc_dir_user_norm(s, out, sizeof(out), err, sizeof(err)) == 0) {
			char path[MC_PATH_MAX + 400];
			if (mc_dir_mailbox_path(&cfg, out, path, sizeof(path)) != 0)
				abort();
			check_mailbox(path);
		}
		mc_dir_domain_norm(s, out, sizeof(out), err, sizeof(err));
		break;
	default:
		guard_client_key(s, out, sizeof(out));
		if (strlen(out) >= sizeof(out))
			abort();
	}
	free(s);
	return 0;
}
