/*
 * mailstore_sweep.c - what a crash left in the Maildirs' tmp/: a message
 * half written when the process died (an APPEND, a delivery) stays there,
 * invisible to every reader, until something removes it. Maildir's rule
 * (and Dovecot's) is that a tmp/ file untouched for 36 hours is garbage.
 *
 * Called by imapd when a session opens its user's store (mc_store_tmp_sweep
 * in mailstore.h). Looks at each mailbox's tmp/ once per open of the store
 * and at a bounded number of entries, so a login never waits on a huge
 * directory. Owns nothing between calls. Never: remove a file younger than
 * the age given (an APPEND or a delivery in progress writes there), follow
 * a symbolic link, or touch anything outside tmp/.
 */
#include "mail/mailstore.h"
#include "mail/mailstore_int.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct sweep {
	struct mc_store *s;
	time_t before;         /* files last changed before this go */
	unsigned left;         /* entries still allowed to be looked at */
	int removed;
};

/* One mailbox's tmp/. Returns non-zero to stop the walk (the bound is reached). */
static int
sweep_mailbox(void *arg, const struct mc_store_mailbox *mb)
{
	struct sweep *w = arg;
	char dir[STORE_PATH_MAX + MC_MAILBOX_NAME_MAX + 16];
	if (mc_store_mailbox_dir(w->s, mb->name, dir, sizeof(dir) - 5) < 0)
		return 0;
	strcat(dir, "/tmp");
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return 0;   /* no tmp/ (yet): nothing to sweep */
	DIR *d = fdopendir(dfd);
	if (d == NULL) {
		close(dfd);
		return 0;
	}
	struct dirent *e;
	while (w->left > 0 && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		w->left--;
		struct stat st;
		if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		/* A file being written has a fresh mtime (the internal date is set only once it left tmp/). */
		if (st.st_mtime >= w->before)
			continue;
		if (unlinkat(dfd, e->d_name, 0) == 0)
			w->removed++;
		else if (errno != ENOENT)
			mc_warn("store %s: cannot remove stale %s/%s: %s", w->s->path, dir, e->d_name, strerror(errno));
	}
	closedir(d);
	return w->left == 0;
}

int
mc_store_tmp_sweep(struct mc_store *s, int64_t max_age, unsigned max_entries, bool *bounded)
{
	if (bounded)
		*bounded = false;
	if (s == NULL || s->tmp_swept)
		return 0;
	s->tmp_swept = true;
	struct sweep w = { .s = s, .before = time(NULL) - (time_t)max_age, .left = max_entries };
	if (mc_store_mailbox_list(s, sweep_mailbox, &w) < 0)
		return -1;
	if (bounded)
		*bounded = w.left == 0;
	return w.removed;
}
