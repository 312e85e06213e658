/*
 * check.c - the start-up check of the queue: files against envelopes.
 *
 * Called once by main.c after the database is open and before the loop
 * runs (so it may block). The rules of DESIGN.md "Storage / Queue":
 *   incoming/ files were never committed       -> removed
 *   active/ bodies without an envelope         -> removed, logged (an
 *                                                 empty one, made ahead
 *                                                 by spool.c, counted as
 *                                                 unfinished)
 *   envelopes without a readable body          -> state corrupt, logged,
 *                                                 never dropped silently
 * A file in active/ that is not named like a queue id is not ours: it is
 * logged and left alone.
 */
#include "queued/queued.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "mail/qid.h"
#include "util/log.h"

struct known {
	char (*qid)[MC_QID_MAX];
	uint64_t *size;
	enum q_mstate *state;
	size_t n, cap;
};

static int
collect(void *arg, const char *qid, uint64_t size, enum q_mstate st)
{
	struct known *k = arg;
	if (k->n == k->cap) {
		size_t nc = k->cap ? k->cap * 2 : 256;
		void *a = realloc(k->qid, nc * sizeof(*k->qid));
		void *b = a ? realloc(k->size, nc * sizeof(*k->size)) : NULL;
		void *c = b ? realloc(k->state, nc * sizeof(*k->state)) : NULL;
		if (a)
			k->qid = a;
		if (b)
			k->size = b;
		if (c == NULL)
			return -1;
		k->state = c;
		k->cap = nc;
	}
	snprintf(k->qid[k->n], MC_QID_MAX, "%s", qid);
	k->size[k->n] = size;
	k->state[k->n] = st;
	k->n++;
	return 0;
}

static int
qid_cmp(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

/* Remove every file of incoming/: nothing there was ever acknowledged. */
static int
clean_incoming(const char *dir, struct q_check_stats *st)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	struct dirent *de;
	char p[MC_PATH_MAX + 300];
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (strncmp(de->d_name, "spare.", 6) == 0) {
			unlink(p);   /* an empty spare body file (spool.c): nothing to report */
			continue;
		}
		char name[64];
		mc_log_clean(name, sizeof(name), de->d_name, strlen(de->d_name));
		if (unlink(p) == 0) {
			st->incoming_removed++;
			mc_info("%s: removed unfinished submission (never committed)", name);
		} else {
			mc_warn("%s: cannot remove unfinished submission: %s", name, strerror(errno));
		}
	}
	closedir(d);
	return 0;
}

int
q_check_run(const char *queue_dir, struct qdb *db, struct q_check_stats *st, char *err, size_t errsz)
{
	memset(st, 0, sizeof(*st));
	char incoming[MC_PATH_MAX + 16], active[MC_PATH_MAX + 16], p[MC_PATH_MAX + 300];
	snprintf(incoming, sizeof(incoming), "%s/incoming", queue_dir);
	snprintf(active, sizeof(active), "%s/active", queue_dir);
	if (clean_incoming(incoming, st) < 0) {
		snprintf(err, errsz, "%s: %s", incoming, strerror(errno));
		return -1;
	}

	struct known k = { 0 };
	if (qdb_foreach(db, collect, &k) < 0) {
		snprintf(err, errsz, "queue database: %s", qdb_errmsg(db));
		free(k.qid);
		free(k.size);
		free(k.state);
		return -1;
	}
	/* qdb_foreach gives qid order, which is what bsearch needs */
	bool *seen = calloc(k.n ? k.n : 1, sizeof(*seen));
	if (seen == NULL)
		mc_panic("out of memory");

	DIR *d = opendir(active);
	if (d == NULL && errno != ENOENT) {
		snprintf(err, errsz, "%s: %s", active, strerror(errno));
		goto fail;
	}
	struct dirent *de;
	while (d && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (!mc_qid_valid(de->d_name)) {
			char name[64];
			mc_log_clean(name, sizeof(name), de->d_name, strlen(de->d_name));
			mc_warn("queue: unexpected file active/%s left alone", name);
			continue;
		}
		char (*hit)[MC_QID_MAX] = k.n ? bsearch(de->d_name, k.qid, k.n, sizeof(*k.qid), qid_cmp) : NULL;
		if (hit) {
			seen[hit - k.qid] = true;
			continue;
		}
		snprintf(p, sizeof(p), "%s/%s", active, de->d_name);
		struct stat sb;
		bool empty = fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode) &&
			     sb.st_size == 0;
		if (empty && unlink(p) == 0) {
			/* a body made ahead that no submission took or filled (spool.c): nothing to tell */
			st->incoming_removed++;
		} else if (unlink(p) == 0) {
			st->orphans_removed++;
			mc_notice("%s: removed body without an envelope (its commit never finished)", de->d_name);
		} else {
			mc_warn("%s: cannot remove body without an envelope: %s", de->d_name, strerror(errno));
		}
	}
	if (d)
		closedir(d);

	struct timeval tv;
	gettimeofday(&tv, NULL);
	double now = (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
	for (size_t i = 0; i < k.n; i++) {
		if (k.state[i] == Q_M_CORRUPT)
			continue;
		char why[160] = "";
		snprintf(p, sizeof(p), "%s/%s", active, k.qid[i]);
		int fd = seen[i] ? open(p, O_RDONLY | O_CLOEXEC) : -1;
		struct stat sb;
		if (!seen[i]) {
			snprintf(why, sizeof(why), "body file missing");
		} else if (fd < 0) {
			snprintf(why, sizeof(why), "body file unreadable: %s", strerror(errno));
		} else if (fstat(fd, &sb) < 0) {
			snprintf(why, sizeof(why), "body file unreadable: %s", strerror(errno));
		} else if ((uint64_t)sb.st_size != k.size[i]) {
			snprintf(why, sizeof(why), "body file has %llu bytes, the envelope says %llu",
				 (unsigned long long)sb.st_size, (unsigned long long)k.size[i]);
		}
		if (fd >= 0)
			close(fd);
		if (why[0] == '\0') {
			st->messages++;
			continue;
		}
		if (qdb_begin(db) < 0 || qdb_set_state(db, k.qid[i], Q_M_CORRUPT, why, now) < 0 || qdb_commit(db) < 0) {
			qdb_rollback(db);
			snprintf(err, errsz, "queue database: %s", qdb_errmsg(db));
			goto fail;
		}
		st->corrupt++;
		mc_error("%s: envelope without a readable body (%s): moved to state corrupt", k.qid[i], why);
	}
	free(seen);
	free(k.qid);
	free(k.size);
	free(k.state);
	return 0;
fail:
	free(seen);
	free(k.qid);
	free(k.size);
	free(k.state);
	return -1;
}
