/*
 * mailstore_reconcile.c - the first open of a store after a reboot puts
 * back the index rows a power loss took.
 *
 * APPEND commits its row with synchronous=NORMAL (mc_store_append_index in
 * mailstore_ops.c): the message file is fsynced, renamed into new/ or cur/
 * and that directory fsynced before the client hears OK, but the WAL frame
 * holding its row may still be in the page cache. A process that crashes
 * loses nothing (the kernel still writes the WAL out); a power loss or a
 * kernel crash may take the last such rows, never the file. The Maildir
 * files are the truth, so when the kernel's boot id differs from the one
 * the index recorded, every mailbox is listed once and each file that
 * (a) has no row with its base name and (b) was last changed before this
 * boot began gets a row again: flags from its name, internal date from its
 * mtime, sizes measured, the message cache left NULL (filled on first use).
 *
 * UIDs. The rows lost were the newest commits and only APPEND's commit both
 * takes UIDs and is NORMAL; every other commit that takes UIDs - delivery
 * (mc_store_files_index), COPY and MOVE (mc_store_copy), RENAME INBOX,
 * reindex, this file - is FULL (the other NORMAL ones, STORE's flags, the
 * \Recent claim and the message cache's fill, take none), and a FULL
 * commit syncs every WAL frame before it. So with k such files in a
 * mailbox the lost rows had UIDs in [uidnext, uidnext + k). A client may
 * have been told them (APPENDUID), and which file had which one is not
 * known, so the files get UIDs from uidnext + k on: a UID is never given to
 * two messages; gaps are allowed.
 *
 * Called by mc_store_open (mailstore.c) on every open: the common case (same
 * boot) is one SELECT of the meta table. Owns nothing between calls.
 * Never: removes or renames a file, changes a row that exists, gives out a
 * UID that may have been reported, or indexes a file renamed into place in
 * this boot (an APPEND or a delivery in flight in another process: its own
 * commit adds it). Limits: keywords are not in a file's name, so a message
 * whose row was lost comes back without them; "before this boot" is the
 * file's ctime against /proc/stat's btime, which a clock stepped after the
 * boot moves (a step back makes a lost row wait for `postern mailbox
 * reindex`).
 */
#include "mail/mailstore.h"
#include "mail/mailstore_int.h"
#include "postern_build.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"
#define BOOT_ID_DIGITS 15   /* 60 bits of the boot id's UUID: a positive int64 */

/* A small /proc file's first line into buf; -1 when it cannot be read. */
static int
read_small(const char *path, char *buf, size_t bufsz)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t r;
	do
		r = read(fd, buf, bufsz - 1);
	while (r < 0 && errno == EINTR);
	close(fd);
	if (r <= 0)
		return -1;
	buf[r] = '\0';
	return 0;
}

/* The running kernel's boot id as an int64 (read once per process); -1 when /proc does not say. */
static int64_t
boot_id(void)
{
	static _Atomic int64_t cached;   /* 0: not read yet */
	int64_t v = cached;
	if (v != 0)
		return v;
	char buf[64];
	v = -1;
	if (read_small(BOOT_ID_PATH, buf, sizeof(buf)) == 0) {
		int64_t x = 0;
		int digits = 0;
		for (const char *p = buf; *p && digits < BOOT_ID_DIGITS; p++) {
			int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
			if (d < 0)
				continue;   /* the UUID's dashes */
			x = x * 16 + d;
			digits++;
		}
		if (digits == BOOT_ID_DIGITS)
			v = x;
	}
	cached = v;
	return v;
}

/* When this boot began (unix seconds, /proc/stat's btime); -1 when unknown. */
static int64_t
boot_time(void)
{
#if POSTERN_TEST_HOOKS
	/*
	 * TEST ONLY (built with -Dtests=true): a file's ctime cannot be set, so
	 * the unit and integration tests move the boot time past the files they
	 * made to play a power loss.
	 */
	const char *t = getenv("POSTERN_TEST_BOOT_TIME");
	if (t && *t)
		return strtoll(t, NULL, 10);
#endif
	FILE *f = fopen("/proc/stat", "re");
	if (f == NULL)
		return -1;
	char line[256];
	long long v = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "btime %lld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* meta's boot into *out: 1, 0 when there is none, -1 on error. */
static int
meta_boot(sqlite3 *db, int64_t *out)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'boot'", -1, &st, NULL) != SQLITE_OK)
		return -1;
	int rc = sqlite3_step(st), r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
	if (r == 1)
		*out = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return r;
}

struct mbox {
	int64_t id, uidnext, modseq;
	char name[MC_MAILBOX_NAME_MAX + 1];
};

struct rc {
	struct mc_store *s;
	int64_t btime;
	sqlite3_stmt *has, *ins, *bump;
};

/*
 * One mailbox: its files without a row and older than the boot get rows.
 * 0 done, 1 its directory could not be listed (try again at the next open),
 * -1 an index error (roll back).
 */
static int
reconcile_mailbox(struct rc *x, const struct mbox *mb)
{
	char dir[STORE_PATH_MAX + MC_MAILBOX_NAME_MAX + 8], base[MC_MAILDIR_FILE_MAX + 1];
	char file[MC_MAILDIR_FILE_MAX + 8], p[sizeof(dir) + sizeof(file) + 4];
	if (mc_store_mailbox_dir(x->s, mb->name, dir, sizeof(dir)) < 0)
		return 0;
	struct mc_store_ent *e = NULL;
	size_t n = 0;
	if (mc_store_int_scan_maildir(dir, &e, &n) < 0) {
		mc_warn("store %s: mailbox %s: cannot list %s: %s", x->s->path, mb->name, dir, strerror(errno));
		return 1;
	}
	size_t *pick = malloc((n ? n : 1) * sizeof(*pick)), k = 0;
	int r = 0;
	if (pick == NULL) {
		free(e);
		mc_warn("store %s: mailbox %s: out of memory", x->s->path, mb->name);
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(base, sizeof(base), "%.*s", (int)e[i].p.baselen, e[i].name);
		sqlite3_reset(x->has);
		sqlite3_bind_int64(x->has, 1, mb->id);
		sqlite3_bind_text(x->has, 2, base, -1, SQLITE_STATIC);
		int rc = sqlite3_step(x->has);
		sqlite3_reset(x->has);
		if (rc == SQLITE_ROW)
			continue;
		if (rc != SQLITE_DONE) {
			r = -1;
			goto out;
		}
		struct stat sb;
		snprintf(p, sizeof(p), "%s/%s/%s", dir, e[i].sub, e[i].name);
		/* renamed into place in this boot: in flight elsewhere, or indexed by now */
		if (lstat(p, &sb) == 0 && S_ISREG(sb.st_mode) && (int64_t)sb.st_ctim.tv_sec < x->btime)
			pick[k++] = i;
	}
	if (k == 0)
		goto out;
	if (mb->uidnext + 2 * (int64_t)k > (int64_t)UINT32_MAX) {
		mc_warn("store %s: mailbox %s: %zu file(s) without a row and too few UIDs left; run postern mailbox reindex",
			x->s->path, mb->name, k);
		goto out;
	}
	int64_t uid = mb->uidnext + (int64_t)k, modseq = mb->modseq;
	size_t added = 0;
	for (size_t j = 0; j < k; j++) {
		const struct mc_store_ent *f = &e[pick[j]];
		struct stat sb;
		uint64_t vsize = f->p.vsize;
		snprintf(base, sizeof(base), "%.*s", (int)f->p.baselen, f->name);
		snprintf(file, sizeof(file), "%s/%s", f->sub, f->name);
		snprintf(p, sizeof(p), "%s/%s", dir, file);
		if (mc_store_int_measure_file(p, &sb, f->p.has_vsize ? NULL : &vsize) < 0) {
			mc_warn("store %s: cannot read %s: %s", dir, file, strerror(errno));
			continue;
		}
		sqlite3_reset(x->ins);
		sqlite3_bind_int64(x->ins, 1, mb->id);
		sqlite3_bind_int64(x->ins, 2, uid);
		sqlite3_bind_text(x->ins, 3, base, -1, SQLITE_STATIC);
		sqlite3_bind_text(x->ins, 4, file, -1, SQLITE_STATIC);
		sqlite3_bind_int64(x->ins, 5, (int64_t)sb.st_size);
		sqlite3_bind_int64(x->ins, 6, (int64_t)vsize);
		sqlite3_bind_int64(x->ins, 7, (int64_t)sb.st_mtime);
		sqlite3_bind_int64(x->ins, 8, f->p.flags);
		sqlite3_bind_int64(x->ins, 9, modseq + 1);
		int rc = sqlite3_step(x->ins);
		sqlite3_reset(x->ins);
		if (rc != SQLITE_DONE) {
			r = -1;
			goto out;
		}
		if (sqlite3_changes(x->s->db) == 1) {   /* 0: a second file with the same base name (new/ and cur/) */
			uid++;
			modseq++;
			added++;
		}
	}
	/* uidnext past [uidnext, uidnext + k) even when a file could not be read: those UIDs may have been reported */
	sqlite3_reset(x->bump);
	sqlite3_bind_int64(x->bump, 1, uid);
	sqlite3_bind_int64(x->bump, 2, modseq);
	sqlite3_bind_int64(x->bump, 3, mb->id);
	int rc = sqlite3_step(x->bump);
	sqlite3_reset(x->bump);
	if (rc != SQLITE_DONE) {
		r = -1;
		goto out;
	}
	mc_notice("store %s: mailbox %s: %zu message(s) whose index row a power loss took are indexed again"
		  " uids=%lld-%lld uidnext=%lld", x->s->path, mb->name, added, (long long)(mb->uidnext + (int64_t)k),
		  (long long)(uid - 1), (long long)uid);
out:
	free(pick);
	free(e);
	return r;
}

/* Every mailbox row (a few per user), read before anything is written. */
static int
list_mailboxes(sqlite3 *db, struct mbox **out, size_t *nout)
{
	sqlite3_stmt *st;
	*out = NULL;
	*nout = 0;
	if (sqlite3_prepare_v2(db, "SELECT id, uidnext, highestmodseq, name FROM mailboxes ORDER BY id", -1, &st,
			       NULL) != SQLITE_OK)
		return -1;
	struct mbox *v = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct mbox *nv = realloc(v, nc * sizeof(*v));
			if (nv == NULL)
				break;
			v = nv;
			cap = nc;
		}
		const char *name = (const char *)sqlite3_column_text(st, 3);
		v[n].id = sqlite3_column_int64(st, 0);
		v[n].uidnext = sqlite3_column_int64(st, 1);
		v[n].modseq = sqlite3_column_int64(st, 2);
		snprintf(v[n].name, sizeof(v[n].name), "%s", name ? name : "");
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return -1;
	}
	*out = v;
	*nout = n;
	return 0;
}

/* Record this boot in meta, inside the caller's transaction. */
static int
record_boot(sqlite3 *db, int64_t boot)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta(key, value) VALUES('boot', ?)", -1, &st, NULL) !=
	    SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, boot);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Every mailbox reconciled inside the caller's transaction; *again: one could not be listed. */
static int
reconcile_all(struct mc_store *s, bool *again)
{
	struct rc x = { .s = s, .btime = boot_time() };
	struct mbox *mb = NULL;
	size_t nmb = 0;
	int r = -1;
	*again = false;
	if (x.btime <= 0) {
		mc_warn("store %s: the boot time is unknown: rows lost at a power loss wait for postern mailbox reindex",
			s->path);
		return 0;
	}
	if (list_mailboxes(s->db, &mb, &nmb) < 0 ||
	    sqlite3_prepare_v2(s->db, "SELECT 1 FROM messages WHERE mailbox = ? AND base = ?", -1, &x.has, NULL) !=
		    SQLITE_OK ||
	    sqlite3_prepare_v2(s->db,
			       "INSERT INTO messages(mailbox, uid, base, file, size, vsize, internal_date, flags, modseq)"
			       " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(mailbox, base) DO NOTHING",
			       -1, &x.ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db, "UPDATE mailboxes SET uidnext = ?, highestmodseq = ? WHERE id = ?", -1, &x.bump,
			       NULL) != SQLITE_OK)
		goto out;
	r = 0;
	for (size_t i = 0; i < nmb && r == 0; i++) {
		int m = reconcile_mailbox(&x, &mb[i]);
		if (m < 0)
			r = -1;
		else if (m > 0)
			*again = true;
	}
out:
	sqlite3_finalize(x.has);
	sqlite3_finalize(x.ins);
	sqlite3_finalize(x.bump);
	free(mb);
	return r;
}

int
mc_store_int_reconcile(struct mc_store *s, bool just_built, char *err, size_t errsz)
{
	int64_t now = boot_id(), was = 0;
	if (now < 0)
		return 0;   /* no /proc: nothing to compare with */
	if (meta_boot(s->db, &was) == 1 && was == now)
		return 0;   /* the common case: this boot's open has been */
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errsz, "%s: reconciling after a reboot: %s", s->index, sqlite3_errmsg(s->db));
		return -1;
	}
	/* Another process may have done it while this one waited for the lock. */
	int have = meta_boot(s->db, &was), r = have < 0 ? -1 : 0;
	bool again = false;   /* a mailbox could not be listed: the boot stays unrecorded, the next open tries again */
	if (r == 0 && !(have == 1 && was == now)) {
		/* A fresh or rebuilt index was just made from the files: nothing to look for. */
		if (!just_built)
			r = reconcile_all(s, &again);
		if (r == 0 && !again)
			r = record_boot(s->db, now);
	}
	if (r == 0 && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		r = -1;
	if (r < 0) {
		snprintf(err, errsz, "%s: reconciling after a reboot: %s", s->index, sqlite3_errmsg(s->db));
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	}
	return r;
}
