/*
 * privdrop.c - become a daemon's own unprivileged user (see privdrop.h).
 *
 * Called by every daemon's main after it has bound its sockets and loaded
 * its keys, and by the postern tool before it touches a daemon's files.
 * Owns nothing. Started as an ordinary user it changes nothing, so the same
 * code path runs in development and tests.
 *
 * Never: return success while any of the real, effective or saved ids is
 * still root's, keep root's supplementary groups, or drop to uid 0.
 */
#include "util/privdrop.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NSS_BUF_START 4096
#define NSS_BUF_MAX (1024 * 1024)

bool
mc_privdrop_is_root(void)
{
	return geteuid() == 0;
}

/* getpwnam_r with a buffer that grows on ERANGE; 0 found, 1 unknown, -1 error (errno). */
static int
lookup_user(const char *user, uid_t *uid, gid_t *gid)
{
	for (size_t sz = NSS_BUF_START; sz <= NSS_BUF_MAX; sz *= 2) {
		char *buf = malloc(sz);
		if (buf == NULL)
			return -1;
		struct passwd pw, *res = NULL;
		int r = getpwnam_r(user, &pw, buf, sz, &res);
		if (r == 0 && res) {
			*uid = pw.pw_uid;
			*gid = pw.pw_gid;
		}
		free(buf);
		if (r == ERANGE)
			continue;
		if (r != 0) {
			errno = r;
			return -1;
		}
		return res ? 0 : 1;
	}
	errno = ERANGE;
	return -1;
}

static int
lookup_group(const char *name, gid_t *gid)
{
	for (size_t sz = NSS_BUF_START; sz <= NSS_BUF_MAX; sz *= 2) {
		char *buf = malloc(sz);
		if (buf == NULL)
			return -1;
		struct group gr, *res = NULL;
		int r = getgrnam_r(name, &gr, buf, sz, &res);
		if (r == 0 && res)
			*gid = gr.gr_gid;
		free(buf);
		if (r == ERANGE)
			continue;
		if (r != 0) {
			errno = r;
			return -1;
		}
		return res ? 0 : 1;
	}
	errno = ERANGE;
	return -1;
}

int
mc_privdrop_lookup(const char *user, const char *const *extra_groups, struct mc_ids *ids, char *err, size_t errsz)
{
	memset(ids, 0, sizeof(*ids));
	int r = lookup_user(user, &ids->uid, &ids->gid);
	if (r == 1) {
		snprintf(err, errsz, "unknown user '%s'", user);
		return -1;
	}
	if (r < 0) {
		snprintf(err, errsz, "cannot look up user '%s': %s", user, strerror(errno));
		return -1;
	}
	/* The primary group is the first supplementary group, as initgroups would make it. */
	ids->groups[ids->ngroups++] = ids->gid;
	for (size_t i = 0; extra_groups && extra_groups[i]; i++) {
		gid_t g;
		r = lookup_group(extra_groups[i], &g);
		if (r == 1) {
			snprintf(err, errsz, "unknown group '%s' (for user '%s')", extra_groups[i], user);
			return -1;
		}
		if (r < 0) {
			snprintf(err, errsz, "cannot look up group '%s': %s", extra_groups[i], strerror(errno));
			return -1;
		}
		bool dup = false;
		for (size_t j = 0; j < ids->ngroups; j++)
			dup |= ids->groups[j] == g;
		if (dup)
			continue;
		if (ids->ngroups >= sizeof(ids->groups) / sizeof(ids->groups[0])) {
			snprintf(err, errsz, "too many groups for user '%s'", user);
			return -1;
		}
		ids->groups[ids->ngroups++] = g;
	}
	return 0;
}

int
mc_privdrop(const struct mc_ids *ids, char *err, size_t errsz)
{
	if (!mc_privdrop_is_root())
		return 0;
	if (ids->uid == 0) {
		snprintf(err, errsz, "refusing to run as root: the configured user has uid 0");
		return -1;
	}
	gid_t one = ids->gid;
	const gid_t *groups = ids->ngroups ? ids->groups : &one;
	size_t ngroups = ids->ngroups ? ids->ngroups : 1;
	if (setgroups(ngroups, groups) < 0) {
		snprintf(err, errsz, "setgroups: %s", strerror(errno));
		return -1;
	}
	/* As root, setgid and setuid set the real, effective and saved ids alike. */
	if (setgid(ids->gid) < 0) {
		snprintf(err, errsz, "setgid(%lu): %s", (unsigned long)ids->gid, strerror(errno));
		return -1;
	}
	if (setuid(ids->uid) < 0) {
		snprintf(err, errsz, "setuid(%lu): %s", (unsigned long)ids->uid, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0 || seteuid(0) == 0) {
		snprintf(err, errsz, "privileges not dropped: root could be regained");
		return -1;
	}
	if (getuid() != ids->uid || geteuid() != ids->uid || getgid() != ids->gid || getegid() != ids->gid) {
		snprintf(err, errsz, "privileges not dropped: ids are uid=%lu euid=%lu gid=%lu egid=%lu",
			 (unsigned long)getuid(), (unsigned long)geteuid(), (unsigned long)getgid(),
			 (unsigned long)getegid());
		return -1;
	}
	if (ids->gid != 0 && (setgid(0) == 0 || setegid(0) == 0)) {
		snprintf(err, errsz, "privileges not dropped: group root could be regained");
		return -1;
	}
	return 0;
}
