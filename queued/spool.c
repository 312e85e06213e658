/*
 * spool.c - queue body files: made ahead for submissions, given up after delivery.
 *
 * Why ahead: a submission's body file is made before anyone asks for it.
 * q_spool_fill makes a handful at once on one threadpool worker, each
 * under a new queue id straight in active/, and fsyncs active/ once for
 * all of them; submit.c keeps them open and hands one to smtpd at MAIL
 * without a thread hop. At commit only the body itself is fsynced: its
 * name was durable before the first byte was written, so the commit needs
 * no rename and no directory fsync. A made file nobody committed (queued
 * crashed) is a body without an envelope, which the start-up check
 * removes (check.c): nothing in it was ever acknowledged.
 *
 * Why spares: ext4 without a journal (the file system of the machines this
 * runs on, and a common choice for spool disks) will not hand out an inode
 * freed in the last 60-360 seconds, and finds that out by reading the
 * inode of every such free slot, one by one, on every file it creates. A
 * queue that unlinks a body per delivered message and creates one per
 * accepted message at a thousand messages a second makes each creation
 * walk thousands of inodes: in profiles this was the largest single cost
 * of queued. So a body that is no longer needed is truncated to zero and
 * kept as a spare (incoming/spare.N); making a body renames a spare to
 * active/<qid> with RENAME_NOREPLACE (as exclusive as O_CREAT|O_EXCL, and
 * ids are still never reused) and opens it. No inode is freed or allocated
 * on the steady path.
 *
 * A spare is empty, owned by queued, mode 0600, and is checked (regular
 * file, size 0, one link) before it is handed to smtpd, who gets it
 * write-only. There are at most SPARE_MAX; beyond that bodies are unlinked.
 * At start-up the check removes everything in incoming/, spares included
 * (check.c), so the pool starts empty.
 *
 * A delivered body is discarded after its envelope's deletion committed,
 * in batches on the threadpool (q_spool_discard_later), not in the lane's
 * worker: a truncate may wait for the disk, and the lane's next commit
 * carries the envelopes of sessions waiting for their 250.
 *
 * Called from the loop (init, free, discard_later) and from threadpool
 * workers (fill, discard, drop): the spares are under a mutex, the list of
 * bodies to discard is the loop's; everything else is per call.
 */
#include "queued/queued.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/qid.h"
#include "util/fsutil.h"
#include "util/log.h"

/* Enough for a burst of concurrent submissions; empty files cost only an inode each. */
#define SPARE_MAX 1024
/* New ids tried when a file with the id exists (it never should: ids are never reused). */
#define QID_TRIES 4

struct q_spool {
	uv_mutex_t lock;
	unsigned spares[SPARE_MAX];
	size_t n;
	unsigned next;               /* the number of the next spare's name */

	/* loop only: delivered bodies waiting to be discarded, and the item discarding some */
	char (*later)[MC_QID_MAX];
	size_t nlater, caplater;
	bool discarding;
	struct queued *q;
	uv_work_t dw;
	char (*doing)[MC_QID_MAX];
	size_t ndoing;
};

int
q_spool_init(struct queued *q)
{
	struct q_spool *sp = calloc(1, sizeof(*sp));
	if (sp == NULL || uv_mutex_init(&sp->lock) != 0) {
		free(sp);
		return -1;
	}
	sp->q = q;
	q->spool = sp;
	return 0;
}

void
q_spool_free(struct queued *q)
{
	if (q->spool == NULL)
		return;
	uv_mutex_destroy(&q->spool->lock);
	free(q->spool->later);
	free(q->spool->doing);
	free(q->spool);
	q->spool = NULL;
}

static bool
spare_pop(struct q_spool *sp, unsigned *n)
{
	bool got = false;
	uv_mutex_lock(&sp->lock);
	if (sp->n > 0) {
		*n = sp->spares[--sp->n];
		got = true;
	}
	uv_mutex_unlock(&sp->lock);
	return got;
}

static bool
spare_push(struct q_spool *sp, unsigned n)
{
	bool ok = false;
	uv_mutex_lock(&sp->lock);
	if (sp->n < SPARE_MAX) {
		sp->spares[sp->n++] = n;
		ok = true;
	}
	uv_mutex_unlock(&sp->lock);
	return ok;
}

/* A spare slot and its name, or false when the pool is full. */
static bool
spare_reserve(struct q_spool *sp, unsigned *n)
{
	bool ok = false;
	uv_mutex_lock(&sp->lock);
	if (sp->n < SPARE_MAX) {
		*n = sp->next++;
		ok = true;
	}
	uv_mutex_unlock(&sp->lock);
	return ok;
}

/* A renamed spare as the body file, write-only; -1 when it is not an empty regular file of ours. */
static int
open_spare(const char *path)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	struct stat sb;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size != 0 || sb.st_nlink != 1 ||
	    sb.st_uid != geteuid()) {
		close(fd);
		unlink(path);
		return -1;
	}
	return fd;
}

/* A new write-only body file active/<qid> (a spare when there is one); fd, or -errno (-EEXIST: take another id). */
static int
spool_open(struct queued *q, const char *qid)
{
	char path[MC_PATH_MAX + 64], spare[MC_PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/%s", q->active, qid);
	unsigned n;
	while (spare_pop(q->spool, &n)) {
		snprintf(spare, sizeof(spare), "%s/spare.%u", q->incoming, n);
		if (renameat2(AT_FDCWD, spare, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
			int e = errno;
			if (e == EEXIST) {
				if (!spare_push(q->spool, n))
					unlink(spare);
				return -EEXIST;
			}
			if (e == EINVAL || e == ENOSYS)
				break;   /* no RENAME_NOREPLACE here: create files instead */
			continue;        /* that spare is gone; try the next */
		}
		int fd = open_spare(path);
		if (fd >= 0)
			return fd;
	}
	int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	return fd < 0 ? -errno : fd;
}

int
q_spool_fill(struct queued *q, struct q_body *out, size_t n)
{
	size_t got = 0;
	int err = 0;
	while (got < n) {
		int fd = -EEXIST;
		for (int t = 0; t < QID_TRIES && fd == -EEXIST; t++) {
			mc_qid_new(out[got].qid);
			fd = spool_open(q, out[got].qid);
		}
		if (fd < 0) {
			err = fd;
			break;
		}
		out[got++].fd = fd;
	}
	if (got > 0 && mc_fsync_dir(q->active) < 0) {
		/* their names might not survive a crash: none of them may carry a message */
		err = -errno;
		q_spool_drop(q, out, got, true);
		got = 0;
	}
	if (got == 0) {
		if (err == 0)
			err = -EIO;
		mc_error("queue: cannot make a body file in %s: %s", q->active, strerror(-err));
		return err;
	}
	return (int)got;
}

void
q_spool_drop(struct queued *q, struct q_body *b, size_t n, bool recycle)
{
	char p[MC_PATH_MAX + 64];
	for (size_t i = 0; i < n; i++) {
		if (b[i].fd >= 0)
			close(b[i].fd);
		b[i].fd = -1;
		snprintf(p, sizeof(p), "%s/%s", q->active, b[i].qid);
		if (recycle)
			q_spool_discard(q, p, b[i].qid);
		else if (unlink(p) < 0 && errno != ENOENT)
			mc_warn("%s: cannot remove the queue file: %s", b[i].qid, strerror(errno));
	}
}

void
q_spool_discard(struct queued *q, const char *path, const char *qid)
{
	unsigned n;
	if (q->spool && spare_reserve(q->spool, &n)) {
		char spare[MC_PATH_MAX + 64];
		snprintf(spare, sizeof(spare), "%s/spare.%u", q->incoming, n);
		if (truncate(path, 0) == 0 && rename(path, spare) == 0) {
			if (!spare_push(q->spool, n))
				unlink(spare);   /* the pool filled meanwhile */
			return;
		}
		if (errno == ENOENT)
			return;
	}
	if (unlink(path) < 0 && errno != ENOENT)
		mc_warn("%s: cannot remove the queue file: %s", qid, strerror(errno));
}

/*
 * Delivered bodies are discarded in batches on the threadpool rather than
 * in the lane's worker after each commit: a truncate may wait for the
 * disk, and the lane's next transaction (with the submissions' envelopes
 * in it) should not wait for that.
 */
static void discard_kick(struct q_spool *sp);

static void
discard_work(uv_work_t *w)
{
	struct q_spool *sp = w->data;
	char p[MC_PATH_MAX + 64];
	for (size_t i = 0; i < sp->ndoing; i++) {
		snprintf(p, sizeof(p), "%s/%s", sp->q->active, sp->doing[i]);
		q_spool_discard(sp->q, p, sp->doing[i]);
	}
}

static void
discard_done(uv_work_t *w, int status)
{
	struct q_spool *sp = w->data;
	(void)status;
	sp->discarding = false;
	free(sp->doing);
	sp->doing = NULL;
	sp->ndoing = 0;
	discard_kick(sp);
}

static void
discard_kick(struct q_spool *sp)
{
	if (sp->discarding || sp->nlater == 0)
		return;
	sp->doing = sp->later;
	sp->ndoing = sp->nlater;
	sp->later = NULL;
	sp->nlater = sp->caplater = 0;
	sp->discarding = true;
	sp->dw.data = sp;
	if (uv_queue_work(sp->q->loop, &sp->dw, discard_work, discard_done) != 0)
		mc_panic("uv_queue_work failed");
}

void
q_spool_discard_later(struct queued *q, const char *qid)
{
	struct q_spool *sp = q->spool;
	if (sp->nlater == sp->caplater) {
		size_t nc = sp->caplater ? 2 * sp->caplater : 64;
		void *p = realloc(sp->later, nc * sizeof(*sp->later));
		if (p == NULL)
			mc_panic("out of memory");
		sp->later = p;
		sp->caplater = nc;
	}
	snprintf(sp->later[sp->nlater++], MC_QID_MAX, "%s", qid);
	discard_kick(sp);
}
