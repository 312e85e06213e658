/*
 * privdrop.h - become a daemon's own unprivileged user.
 *
 * Started as root, a daemon binds, loads keys, then calls mc_privdrop():
 * setgroups, setgid, setuid, and a check that root cannot be regained.
 * Started as an ordinary user, mc_privdrop() does nothing and the same
 * code path runs (development, tests).
 */
#ifndef MC_PRIVDROP_H
#define MC_PRIVDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct mc_ids {
	uid_t uid;
	gid_t gid;
	gid_t groups[8];  /* supplementary groups */
	size_t ngroups;
};

bool mc_privdrop_is_root(void);
/* Look up user (and optional extra supplementary group names, NULL-terminated). */
int mc_privdrop_lookup(const char *user, const char *const *extra_groups, struct mc_ids *ids, char *err,
		       size_t errsz);
/* Drop to ids; when not root, does nothing and returns 0. -1 with err on failure (the caller must exit). */
int mc_privdrop(const struct mc_ids *ids, char *err, size_t errsz);

#endif
