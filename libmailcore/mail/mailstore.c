/*
 * mailstore.c - Maildir++ files and their SQLite index (see mailstore.h).
 *
 * Called by queued's delivery workers, imapd, pop3d and `postern mailbox
 * reindex`. Owns one SQLite connection per store object and the files it
 * writes into tmp/ and new/. The order of a delivery is what makes it safe:
 * the file is whole and fsynced in new/ (and new/ fsynced) before the index
 * row exists, and the row commits before the caller hears "delivered". A
 * file whose row could not be written is removed again, so the caller may
 * retry without making a duplicate. Never deletes a message it did not
 * just write; never trusts the index over the files: a corrupt index is
 * moved aside and rebuilt from them.
 */
#include "mail/mailstore.h"
#include "mail/mailstore_int.h"
#include "mail/mailstore_cache.h"
#include "util/fsutil.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define COPY_BUF (64 * 1024)
#define BUSY_TIMEOUT_MS 10000

/*
 * Schema version 4: the tombstones since a MODSEQ (mc_store_changes_since,
 * at every IMAP view sync) without walking every tombstone the mailbox
 * ever had; the table is never pruned.
 */
#define EXPUNGED_MODSEQ_SQL "CREATE INDEX IF NOT EXISTS expunged_modseq ON expunged(mailbox, modseq);"

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS mailboxes("
	" id INTEGER PRIMARY KEY,"
	" name TEXT NOT NULL UNIQUE,"
	" uidvalidity INTEGER NOT NULL,"
	" uidnext INTEGER NOT NULL DEFAULT 1,"
	" highestmodseq INTEGER NOT NULL DEFAULT 1,"
	" subscribed INTEGER NOT NULL DEFAULT 0,"
	" special_use TEXT NOT NULL DEFAULT '',"
	" recent_uid INTEGER NOT NULL DEFAULT 0);"   /* \Recent: schema version 3 */
	"CREATE TABLE IF NOT EXISTS messages("
	" mailbox INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,"
	" uid INTEGER NOT NULL,"
	" base TEXT NOT NULL,"              /* the unique part of the file name */
	" file TEXT NOT NULL,"              /* new/BASE or cur/BASE:2,FLAGS */
	" size INTEGER NOT NULL,"           /* on disk, LF line ends */
	" vsize INTEGER NOT NULL,"          /* RFC822.SIZE, CRLF line ends */
	" internal_date INTEGER NOT NULL,"
	" flags INTEGER NOT NULL DEFAULT 0,"
	" keywords TEXT NOT NULL DEFAULT '',"
	" modseq INTEGER NOT NULL,"
	" envelope TEXT,"                   /* the message cache (mailstore_cache.c), schema version 2 */
	" bodystructure TEXT,"
	MC_STORE_CACHE_COLDEFS
	" PRIMARY KEY(mailbox, uid),"
	" UNIQUE(mailbox, base)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS messages_modseq ON messages(mailbox, modseq);"
	/* expunged UIDs with the MODSEQ of their removal (QRESYNC VANISHED) */
	"CREATE TABLE IF NOT EXISTS expunged("
	" mailbox INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,"
	" uid INTEGER NOT NULL,"
	" modseq INTEGER NOT NULL,"
	" PRIMARY KEY(mailbox, uid)) WITHOUT ROWID;"
	EXPUNGED_MODSEQ_SQL;

/*
 * 2 -> 3: the \Recent mark. What is in a mailbox when the index is
 * upgraded counts as seen, so an upgrade does not show old mail as new.
 */
static const char recent_migrate_sql[] =
	"ALTER TABLE mailboxes ADD COLUMN recent_uid INTEGER NOT NULL DEFAULT 0;"
	"UPDATE mailboxes SET recent_uid = uidnext - 1;";

/* ---- small helpers ---- */

static void
set_err(char *err, size_t errsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void
set_err(char *err, size_t errsz, const char *fmt, ...)
{
	if (err == NULL || errsz == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

static int
exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static bool
is_corrupt_code(int rc)
{
	rc &= 0xff;
	return rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB;
}

static int
make_dir(const char *path)
{
	if (mkdir(path, DIR_MODE) == 0 || errno == EEXIST)
		return 0;
	return -1;
}

static int
make_maildir(const char *dir, char *err, size_t errsz)
{
	static const char *const subs[] = { "cur", "new", "tmp" };
	char p[STORE_PATH_MAX + 8];
	if (make_dir(dir) < 0) {
		set_err(err, errsz, "mkdir %s: %s", dir, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, subs[i]);
		if (make_dir(p) < 0) {
			set_err(err, errsz, "mkdir %s: %s", p, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static const char *
norm_mailbox(const char *name)
{
	if (name == NULL || strcasecmp(name, "INBOX") == 0)
		return "INBOX";
	return name;
}

/*
 * A new UIDVALIDITY: the time, but above every value this store ever gave
 * out. The last one is kept in the index and, for when the index is lost,
 * in a small file beside it ("uidvalidity"), so a rebuilt index never
 * repeats a value a client may remember (RFC 3501 §2.3.1.1).
 */
static uint32_t
new_uidvalidity(sqlite3 *db, const char *store_path)
{
	int64_t last = 0;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key='last_uidvalidity'", -1, &st, NULL) ==
	    SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			last = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	char p[STORE_PATH_MAX + 32], tmp[sizeof(p) + 8], txt[32];
	snprintf(p, sizeof(p), "%s/uidvalidity", store_path);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t r = read(fd, txt, sizeof(txt) - 1);
		close(fd);
		if (r > 0) {
			txt[r] = '\0';
			long long v = strtoll(txt, NULL, 10);
			if (v > last && v <= (long long)UINT32_MAX)
				last = v;
		}
	}
	int64_t v = (int64_t)time(NULL);
	if (v <= last)
		v = last + 1;
	if (v > (int64_t)UINT32_MAX || v <= 0)
		v = 1;
	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta(key, value) VALUES('last_uidvalidity', ?)", -1, &st,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, v);
		sqlite3_step(st);
		sqlite3_finalize(st);
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", p);
	int n = snprintf(txt, sizeof(txt), "%lld\n", (long long)v);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, FILE_MODE);
	if (fd >= 0) {
		bool ok = mc_write_all(fd, txt, (size_t)n) == 0;
		if (close(fd) == 0 && ok)
			rename(tmp, p);
		else
			unlink(tmp);
	}
	return (uint32_t)v;
}

static int
insert_mailbox(sqlite3 *db, const char *store_path, const char *name, const char *special_use, int64_t *id)
{
	sqlite3_stmt *st;
	uint32_t uv = new_uidvalidity(db, store_path);
	if (sqlite3_prepare_v2(db, "INSERT INTO mailboxes(name, uidvalidity, special_use) VALUES(?, ?, ?)", -1, &st,
			       NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, uv);
	sqlite3_bind_text(st, 3, special_use ? special_use : "", -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return -1;
	if (id)
		*id = sqlite3_last_insert_rowid(db);
	return 0;
}

/* ---- opening and checking the index ---- */

static void
finalize_stmts(struct mc_store *s)
{
	sqlite3_finalize(s->st_mbox);
	sqlite3_finalize(s->st_insert);
	sqlite3_finalize(s->st_exists);
	sqlite3_finalize(s->st_bump);
	s->st_mbox = s->st_insert = s->st_exists = s->st_bump = NULL;
}

sqlite3_stmt *
mc_store_int_stmt(struct mc_store *s, enum mc_store_stmt id, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (s->stmt_busy & (1u << id)) {
		if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
			sqlite3_finalize(st);
			return NULL;
		}
		return st;
	}
	if (s->stmt[id] == NULL &&
	    sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[id], NULL) != SQLITE_OK) {
		sqlite3_finalize(s->stmt[id]);
		s->stmt[id] = NULL;
		return NULL;
	}
	s->stmt_busy |= 1u << id;
	return s->stmt[id];
}

void
mc_store_int_stmt_done(struct mc_store *s, enum mc_store_stmt id, sqlite3_stmt *st)
{
	if (st == NULL)
		return;
	if (st != s->stmt[id]) {
		sqlite3_finalize(st);
		return;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	s->stmt_busy &= ~(1u << id);
}

int
mc_store_int_exec(struct mc_store *s, enum mc_store_stmt id, const char *sql)
{
	sqlite3_stmt *st = mc_store_int_stmt(s, id, sql);
	if (st == NULL)
		return -1;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	mc_store_int_stmt_done(s, id, st);
	return rc == SQLITE_DONE ? 0 : -1;
}

void
mc_store_int_stmt_release(struct mc_store *s)
{
	for (int i = 0; i < MC_STMT_N; i++)
		if (!(s->stmt_busy & (1u << i))) {
			sqlite3_finalize(s->stmt[i]);
			s->stmt[i] = NULL;
		}
}

static void
close_db(struct mc_store *s)
{
	s->stmt_busy = 0;
	mc_store_int_stmt_release(s);
	finalize_stmts(s);
	if (s->db)
		sqlite3_close_v2(s->db);
	s->db = NULL;
}

static int
prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
	return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
}

/* mc_store_lean_memory was called: connections keep only what every session uses. */
static bool lean;

/* Delivery's statements (the insert names every cache column: the largest one). */
static int
prepare_delivery(struct mc_store *s)
{
	int rc = prepare(s->db,
			 "INSERT INTO messages(mailbox, uid, base, file, size, vsize, internal_date, modseq, "
			 MC_STORE_CACHE_COLS ") VALUES(?, ?, ?, ?, ?, ?, ?, ?, " MC_STORE_CACHE_PARAMS ")"
			 " ON CONFLICT(mailbox, base) DO NOTHING",
			 &s->st_insert);
	if (rc == SQLITE_OK)
		rc = prepare(s->db, "SELECT uid FROM messages WHERE mailbox = ? AND base = ?", &s->st_exists);
	return rc;
}

/*
 * Open and check the index. 0 ok (*fresh: the schema was just created),
 * -1 a hard error (leave the file alone), -2 corrupt (rebuild it).
 */
static int
open_index(struct mc_store *s, bool *fresh, char *err, size_t errsz)
{
	*fresh = false;
	/*
	 * SQLite would create the file 0644 & ~umask, and its -wal and -shm
	 * files copy that mode: made here first, it is 0660 & ~umask, so the
	 * mail store's group (queued, imapd, pop3d) can all write the index.
	 */
	int fd = open(s->index, O_RDWR | O_CREAT | O_CLOEXEC, FILE_MODE);
	if (fd >= 0)
		close(fd);
	int rc = sqlite3_open_v2(s->index, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
				 NULL);
	if (rc != SQLITE_OK) {
		set_err(err, errsz, "%s: %s", s->index, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		close_db(s);
		return is_corrupt_code(rc) ? -2 : -1;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
	if ((rc = exec(s->db, "PRAGMA journal_mode=WAL")) != SQLITE_OK ||
	    (rc = exec(s->db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY")) != SQLITE_OK)
		goto fail;

	sqlite3_stmt *st;
	if ((rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL)) != SQLITE_OK)
		goto fail;
	rc = sqlite3_step(st);
	bool ok = rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
	sqlite3_finalize(st);
	if (!ok) {
		if (rc == SQLITE_ROW || is_corrupt_code(rc)) {
			set_err(err, errsz, "%s: integrity check failed", s->index);
			close_db(s);
			return -2;
		}
		goto fail;
	}

	if ((rc = exec(s->db, "BEGIN IMMEDIATE")) != SQLITE_OK)
		goto fail;
	int64_t version = -1;
	if ((rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL)) == SQLITE_OK) {
		if ((rc = sqlite3_step(st)) == SQLITE_ROW)
			version = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	if (version < 0) {
		exec(s->db, "ROLLBACK");
		goto fail;
	}
	if (version == 0) {
		if ((rc = exec(s->db, schema_sql)) != SQLITE_OK || insert_mailbox(s->db, s->path, "INBOX", NULL, NULL) < 0 ||
		    (rc = exec(s->db, "PRAGMA user_version=" MC_STORE_SCHEMA_VERSION_STR)) != SQLITE_OK) {
			set_err(err, errsz, "%s: creating the schema: %s", s->index, sqlite3_errmsg(s->db));
			exec(s->db, "ROLLBACK");
			close_db(s);
			return -1;
		}
		*fresh = true;
	} else if (version >= 1 && version <= 3) {
		/* 1 -> 2: the cache columns; rows get their cache on first use or at reindex. 2 -> 3: \Recent. 3 -> 4 */
		if ((version == 1 && (rc = exec(s->db, mc_store_cache_migrate_sql)) != SQLITE_OK) ||
		    (version <= 2 && (rc = exec(s->db, recent_migrate_sql)) != SQLITE_OK) ||
		    (rc = exec(s->db, EXPUNGED_MODSEQ_SQL)) != SQLITE_OK ||
		    (rc = exec(s->db, "PRAGMA user_version=" MC_STORE_SCHEMA_VERSION_STR)) != SQLITE_OK) {
			set_err(err, errsz, "%s: migrating the schema to version %d: %s", s->index, MC_STORE_SCHEMA_VERSION,
				sqlite3_errmsg(s->db));
			exec(s->db, "ROLLBACK");
			close_db(s);
			return -1;
		}
	}
	if ((rc = exec(s->db, "COMMIT")) != SQLITE_OK) {
		exec(s->db, "ROLLBACK");
		goto fail;
	}
	if (version > MC_STORE_SCHEMA_VERSION) {
		set_err(err, errsz, "%s: schema version %lld is newer than this program's %d", s->index,
			(long long)version, MC_STORE_SCHEMA_VERSION);
		close_db(s);
		return -1;
	}

	/* A schema that lacks what we need is as good as corrupt: the files are the truth. */
	if ((rc = prepare(s->db, "SELECT id, uidnext, highestmodseq FROM mailboxes WHERE name = ?", &s->st_mbox)) ||
	    (rc = prepare_delivery(s)) ||
	    (rc = prepare(s->db, "UPDATE mailboxes SET uidnext = ?, highestmodseq = ? WHERE id = ?", &s->st_bump)) ||
	    (rc = exec(s->db, "SELECT 1 FROM meta, expunged LIMIT 0"))) {
		set_err(err, errsz, "%s: %s", s->index, sqlite3_errmsg(s->db));
		close_db(s);
		return (rc & 0xff) == SQLITE_ERROR || is_corrupt_code(rc) ? -2 : -1;
	}
	if (lean) {
		/* Checked; a session that delivers (APPEND) prepares them again. About 16 KiB a connection. */
		sqlite3_finalize(s->st_insert);
		sqlite3_finalize(s->st_exists);
		s->st_insert = s->st_exists = NULL;
	}
	return 0;

fail:
	set_err(err, errsz, "%s: %s", s->index, sqlite3_errmsg(s->db));
	close_db(s);
	return is_corrupt_code(rc) ? -2 : -1;
}

/*
 * Build a new index beside the corrupt one, copying what can be read of
 * it (mailboxes with their UIDVALIDITY, messages with their UIDs and
 * flags); swap it in and keep the old files as index.sqlite.corrupt-TIME.
 */
static int
rebuild_index(struct mc_store *s, bool *salvaged, char *err, size_t errsz)
{
	char tmp[sizeof(s->index) + 16], aside[sizeof(s->index) + 48], a[sizeof(aside) + 8], b[sizeof(tmp) + 16];
	snprintf(tmp, sizeof(tmp), "%s.rebuild", s->index);
	unlink(tmp);
	snprintf(b, sizeof(b), "%s-journal", tmp);
	unlink(b);
	*salvaged = false;
	int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, FILE_MODE);
	if (fd >= 0)
		close(fd);

	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(tmp, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
					      SQLITE_OPEN_URI, NULL);
	if (rc != SQLITE_OK || exec(db, "BEGIN") != SQLITE_OK || exec(db, schema_sql) != SQLITE_OK ||
	    exec(db, "PRAGMA user_version=" MC_STORE_SCHEMA_VERSION_STR) != SQLITE_OK || exec(db, "COMMIT") != SQLITE_OK) {
		set_err(err, errsz, "%s: %s", tmp, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close_v2(db);
		unlink(tmp);
		return -1;
	}

	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "ATTACH ? AS old", -1, &st, NULL) == SQLITE_OK) {
		char uri[sizeof(s->index) + 32];
		snprintf(uri, sizeof(uri), "file:%s?mode=ro", s->index);
		sqlite3_bind_text(st, 1, uri, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc == SQLITE_DONE) {
			if (exec(db, "BEGIN") == SQLITE_OK &&
			    exec(db, "INSERT INTO main.mailboxes(id, name, uidvalidity, uidnext, highestmodseq,"
				     " subscribed, special_use) SELECT id, name, uidvalidity, uidnext, highestmodseq,"
				     " subscribed, special_use FROM old.mailboxes") == SQLITE_OK &&
			    exec(db, "INSERT INTO main.messages(mailbox, uid, base, file, size, vsize, internal_date,"
				     " flags, keywords, modseq) SELECT mailbox, uid, base, file, size, vsize,"
				     " internal_date, flags, keywords, modseq FROM old.messages") == SQLITE_OK &&
			    exec(db, "UPDATE main.mailboxes SET uidnext = max(uidnext, 1 + coalesce((SELECT max(uid)"
				     " FROM main.messages WHERE mailbox = mailboxes.id), 0))") == SQLITE_OK &&
			    /* the \Recent marks may be older than the schema: what was there counts as seen */
			    exec(db, "UPDATE main.mailboxes SET recent_uid = uidnext - 1") == SQLITE_OK &&
			    exec(db, "INSERT OR IGNORE INTO main.meta SELECT key, value FROM old.meta") == SQLITE_OK &&
			    exec(db, "COMMIT") == SQLITE_OK)
				*salvaged = true;
			else
				exec(db, "ROLLBACK");
			exec(db, "DETACH old");
		}
	}
	if (!*salvaged) {
		exec(db, "DELETE FROM mailboxes");
		if (insert_mailbox(db, s->path, "INBOX", NULL, NULL) < 0) {
			set_err(err, errsz, "%s: %s", tmp, sqlite3_errmsg(db));
			sqlite3_close_v2(db);
			unlink(tmp);
			return -1;
		}
	} else {
		/* INBOX must exist even if the old index lost it */
		sqlite3_stmt *q;
		bool have_inbox = false;
		if (sqlite3_prepare_v2(db, "SELECT 1 FROM mailboxes WHERE name = 'INBOX'", -1, &q, NULL) == SQLITE_OK) {
			have_inbox = sqlite3_step(q) == SQLITE_ROW;
			sqlite3_finalize(q);
		}
		if (!have_inbox)
			insert_mailbox(db, s->path, "INBOX", NULL, NULL);
	}
	sqlite3_close_v2(db);

	snprintf(aside, sizeof(aside), "%s.corrupt-%lld", s->index, (long long)time(NULL));
	if (rename(s->index, aside) < 0 && errno != ENOENT) {
		set_err(err, errsz, "rename %s: %s", s->index, strerror(errno));
		unlink(tmp);
		return -1;
	}
	static const char *const sfx[] = { "-wal", "-shm" };
	for (size_t i = 0; i < 2; i++) {
		snprintf(a, sizeof(a), "%s%s", aside, sfx[i]);
		snprintf(b, sizeof(b), "%s%s", s->index, sfx[i]);
		if (rename(b, a) < 0)
			unlink(b);
	}
	if (rename(tmp, s->index) < 0) {
		set_err(err, errsz, "rename %s: %s", tmp, strerror(errno));
		return -1;
	}
	mc_fsync_dir(s->path);
	mc_warn("store %s: index was unreadable (kept as %s), rebuilt %s", s->path, aside,
		*salvaged ? "keeping its UIDs" : "with a new UIDVALIDITY");
	return 0;
}

struct mc_store *
mc_store_open(const char *path, unsigned flags, char *err, size_t errsz)
{
	size_t plen = strlen(path);
	if (plen == 0 || plen >= STORE_PATH_MAX - 64) {
		set_err(err, errsz, "mail store path too long or empty");
		return NULL;
	}
	if (flags & MC_STORE_CREATE) {
		if (mc_mkdir_p(path, DIR_MODE) < 0) {
			set_err(err, errsz, "mkdir %s: %s", path, strerror(errno));
			return NULL;
		}
		if (make_maildir(path, err, errsz) < 0)
			return NULL;
	} else {
		char cur[STORE_PATH_MAX + 8];
		struct stat sb;
		snprintf(cur, sizeof(cur), "%s/cur", path);
		if (stat(cur, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
			set_err(err, errsz, "%s: no mail store here", path);
			return NULL;
		}
	}

	struct mc_store *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		set_err(err, errsz, "out of memory");
		return NULL;
	}
	memcpy(s->path, path, plen + 1);
	while (plen > 1 && s->path[plen - 1] == '/')
		s->path[--plen] = '\0';
	snprintf(s->index, sizeof(s->index), "%s/%s", s->path, MC_STORE_INDEX_NAME);

	bool fresh = false, rebuilt = false, salvaged = false;
	int r = open_index(s, &fresh, err, errsz);
	if (r == -2) {
		mc_warn("store %s: %s", s->path, err);
		if (rebuild_index(s, &salvaged, err, errsz) < 0 || (r = open_index(s, &fresh, err, errsz)) != 0) {
			mc_store_close(s);
			return NULL;
		}
		rebuilt = true;
	} else if (r < 0) {
		mc_store_close(s);
		return NULL;
	}
	if (fresh || rebuilt) {
		struct mc_store_reindex_stats st;
		if (mc_store_reindex(s, &st, err, errsz) < 0) {
			mc_store_close(s);
			return NULL;
		}
		if (st.added || st.removed || rebuilt)
			mc_notice("store %s: reindexed mailboxes=%u kept=%u added=%u removed=%u uidvalidity=%s", s->path,
				  st.mailboxes, st.kept, st.added, st.removed,
				  rebuilt && salvaged ? "kept" : "new");
	}
	/* APPEND's rows commit without a WAL sync: a power loss may have taken the last ones, not their files. */
	if (mc_store_int_reconcile(s, fresh || rebuilt, err, errsz) < 0) {
		mc_store_close(s);
		return NULL;
	}
	return s;
}

/* Lookaside per connection: 32 slots of 128 bytes (SQLite's default is 1,200 x 100 bytes). */
#define LEAN_LOOKASIDE_SZ 128
#define LEAN_LOOKASIDE_N 32

int
mc_store_lean_memory(void)
{
	/* No initial bulk allocation: cache lines are allocated one by one as pages are read. */
	if (sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0) != SQLITE_OK ||
	    sqlite3_config(SQLITE_CONFIG_LOOKASIDE, LEAN_LOOKASIDE_SZ, LEAN_LOOKASIDE_N) != SQLITE_OK)
		return -1;
	lean = true;
	return 0;
}

void
mc_store_release_memory(struct mc_store *s)
{
	if (s && s->db) {
		mc_store_int_stmt_release(s);   /* prepared again at the next command */
		sqlite3_db_release_memory(s->db);
	}
}

int
mc_store_suspend(struct mc_store *s)
{
	if (s == NULL || s->db == NULL)
		return 0;
	if (s->stmt_busy || !sqlite3_get_autocommit(s->db))
		return -1;   /* a statement or a transaction is open: not now */
	close_db(s);
	return 0;
}

bool
mc_store_suspended(const struct mc_store *s)
{
	return s && s->db == NULL;
}

int
mc_store_resume(struct mc_store *s, char *err, size_t errsz)
{
	if (s->db)
		return 0;
	/* Checked when it was opened; the file was SQLite's all along: open it as it is, no check, no writes. */
	int rc = sqlite3_open_v2(s->index, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_extended_result_codes(s->db, 1);
		sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
		rc = exec(s->db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY");
	}
	if (rc == SQLITE_OK)
		rc = prepare(s->db, "SELECT id, uidnext, highestmodseq FROM mailboxes WHERE name = ?", &s->st_mbox);
	if (rc == SQLITE_OK)
		rc = prepare(s->db, "UPDATE mailboxes SET uidnext = ?, highestmodseq = ? WHERE id = ?", &s->st_bump);
	if (rc == SQLITE_OK && !lean)
		rc = prepare_delivery(s);
	if (rc != SQLITE_OK) {
		set_err(err, errsz, "%s: %s", s->index, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		close_db(s);
		return -1;
	}
	return 0;
}

void
mc_store_close(struct mc_store *s)
{
	if (s == NULL)
		return;
	close_db(s);
	free(s);
}

const char *
mc_store_path(const struct mc_store *s)
{
	return s->path;
}

/* ---- mailboxes ---- */

bool
mc_store_mailbox_name_ok(const char *name)
{
	size_t n = strnlen(name, MC_MAILBOX_NAME_MAX + 1);
	if (n == 0 || n > MC_MAILBOX_NAME_MAX || name[0] == '.' || name[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7f || c == '/' || c == '\\' || (c == '.' && name[i + 1] == '.'))
			return false;
	}
	return true;
}

int
mc_store_mailbox_dir(const struct mc_store *s, const char *name, char *out, size_t outsz)
{
	name = norm_mailbox(name);
	int n;
	if (strcmp(name, "INBOX") == 0)
		n = snprintf(out, outsz, "%s", s->path);
	else if (!mc_store_mailbox_name_ok(name))
		return -1;
	else
		n = snprintf(out, outsz, "%s/.%s", s->path, name);
	return n < 0 || (size_t)n >= outsz ? -1 : 0;
}

int
mc_store_mailbox_create(struct mc_store *s, const char *name, const char *special_use, char *err, size_t errsz)
{
	char dir[STORE_PATH_MAX + MC_MAILBOX_NAME_MAX + 8], p[sizeof(dir) + 16];
	if (strcasecmp(name, "INBOX") == 0 || !mc_store_mailbox_name_ok(name) ||
	    mc_store_mailbox_dir(s, name, dir, sizeof(dir)) < 0) {
		set_err(err, errsz, "bad mailbox name");
		return -1;
	}
	if (exec(s->db, "BEGIN IMMEDIATE") != SQLITE_OK) {
		set_err(err, errsz, "%s: %s", s->index, sqlite3_errmsg(s->db));
		return -1;
	}
	struct mc_store_mailbox mb;
	if (mc_store_mailbox_get(s, name, &mb) == 0) {
		exec(s->db, "ROLLBACK");
		set_err(err, errsz, "mailbox exists");
		return -1;
	}
	if (make_maildir(dir, err, errsz) < 0) {
		exec(s->db, "ROLLBACK");
		return -1;
	}
	snprintf(p, sizeof(p), "%s/maildirfolder", dir);
	int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, FILE_MODE);
	if (fd >= 0)
		close(fd);
	if (insert_mailbox(s->db, s->path, name, special_use, NULL) < 0 || exec(s->db, "COMMIT") != SQLITE_OK) {
		set_err(err, errsz, "%s: %s", s->index, sqlite3_errmsg(s->db));
		exec(s->db, "ROLLBACK");
		return -1;
	}
	return 0;
}

static void
row_to_mailbox(sqlite3_stmt *st, struct mc_store_mailbox *mb)
{
	const char *name = (const char *)sqlite3_column_text(st, 1);
	const char *su = (const char *)sqlite3_column_text(st, 6);
	mb->id = sqlite3_column_int64(st, 0);
	snprintf(mb->name, sizeof(mb->name), "%s", name ? name : "");
	mb->uidvalidity = (uint32_t)sqlite3_column_int64(st, 2);
	mb->uidnext = (uint32_t)sqlite3_column_int64(st, 3);
	mb->highestmodseq = (uint64_t)sqlite3_column_int64(st, 4);
	mb->subscribed = sqlite3_column_int(st, 5) != 0;
	snprintf(mb->special_use, sizeof(mb->special_use), "%s", su ? su : "");
	mb->messages = (uint32_t)sqlite3_column_int64(st, 7);
	mb->recent_uid = (uint32_t)sqlite3_column_int64(st, 8);
}

#define MAILBOX_COLS                                                                                             \
	"SELECT m.id, m.name, m.uidvalidity, m.uidnext, m.highestmodseq, m.subscribed, m.special_use,"          \
	" (SELECT count(*) FROM messages WHERE mailbox = m.id), m.recent_uid FROM mailboxes m"

/* One mailbox row by name through the cached statement which (MAILBOX_COLS or the head without the count). */
static int
mailbox_lookup(struct mc_store *s, enum mc_store_stmt which, const char *sql, const char *name, struct mc_store_mailbox *mb)
{
	sqlite3_stmt *st = mc_store_int_stmt(s, which, sql);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, norm_mailbox(name), -1, SQLITE_STATIC);
	int r = -1;
	if (sqlite3_step(st) == SQLITE_ROW) {
		row_to_mailbox(st, mb);
		r = 0;
	}
	mc_store_int_stmt_done(s, which, st);
	return r;
}

int
mc_store_mailbox_get(struct mc_store *s, const char *name, struct mc_store_mailbox *mb)
{
	return mailbox_lookup(s, MC_STMT_MAILBOX_GET, MAILBOX_COLS " WHERE m.name = ?", name, mb);
}

int
mc_store_mailbox_head(struct mc_store *s, const char *name, struct mc_store_mailbox *mb)
{
	return mailbox_lookup(s, MC_STMT_MAILBOX_HEAD,
			      "SELECT m.id, m.name, m.uidvalidity, m.uidnext, m.highestmodseq, m.subscribed,"
			      " m.special_use, 0, m.recent_uid FROM mailboxes m WHERE m.name = ?",
			      name, mb);
}

/* The mailbox's \Recent mark into *mark: 0, -2 no such mailbox, -1. */
static int
recent_mark(struct mc_store *s, const char *mailbox, uint32_t *mark)
{
	sqlite3_stmt *st = mc_store_int_stmt(s, MC_STMT_RECENT_MARK, "SELECT recent_uid FROM mailboxes WHERE name = ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, norm_mailbox(mailbox), -1, SQLITE_STATIC);
	int rc = sqlite3_step(st), r = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -2 : -1;
	if (r == 0)
		*mark = (uint32_t)sqlite3_column_int64(st, 0);
	mc_store_int_stmt_done(s, MC_STMT_RECENT_MARK, st);
	return r;
}

int
mc_store_recent(struct mc_store *s, const char *mailbox, uint32_t upto, bool claim, uint32_t *prev)
{
	*prev = 0;
	/* Most SELECTs find nothing new: no write lock for them. */
	int r = recent_mark(s, mailbox, prev);
	if (r < 0 || !claim || *prev >= upto)
		return r;
	/*
	 * IMMEDIATE: two sessions selecting at once must not both take the
	 * same messages as recent, so the mark is read again under the lock.
	 * The commit is not fsynced (synchronous=NORMAL for it alone, WAL):
	 * a mark lost to a crash shows some mail as recent once more, and
	 * the next durable commit of the index syncs the WAL with it anyway.
	 */
	mc_store_int_exec(s, MC_STMT_SYNC_NORMAL, "PRAGMA synchronous=NORMAL");
	if (mc_store_int_exec(s, MC_STMT_BEGIN, "BEGIN IMMEDIATE") < 0) {
		mc_store_int_exec(s, MC_STMT_SYNC_FULL, "PRAGMA synchronous=FULL");
		return -1;
	}
	r = recent_mark(s, mailbox, prev);
	if (r == 0 && *prev < upto) {
		sqlite3_stmt *st = mc_store_int_stmt(s, MC_STMT_RECENT_SET, "UPDATE mailboxes SET recent_uid = ? WHERE name = ?");
		r = -1;
		if (st != NULL) {
			sqlite3_bind_int64(st, 1, upto);
			sqlite3_bind_text(st, 2, norm_mailbox(mailbox), -1, SQLITE_STATIC);
			if (sqlite3_step(st) == SQLITE_DONE)
				r = 0;
			mc_store_int_stmt_done(s, MC_STMT_RECENT_SET, st);
		}
	}
	if (r == 0 && mc_store_int_exec(s, MC_STMT_COMMIT, "COMMIT") < 0)
		r = -1;
	if (r != 0)
		exec(s->db, "ROLLBACK");
	mc_store_int_exec(s, MC_STMT_SYNC_FULL, "PRAGMA synchronous=FULL");
	return r;
}

int
mc_store_mailbox_list(struct mc_store *s, int (*cb)(void *arg, const struct mc_store_mailbox *mb), void *arg)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, MAILBOX_COLS " ORDER BY m.name <> 'INBOX', m.name", -1, &st, NULL) != SQLITE_OK)
		return -1;
	int rc;
	struct mc_store_mailbox mb;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		row_to_mailbox(st, &mb);
		if (cb(arg, &mb) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
mc_store_messages(struct mc_store *s, const char *mailbox, uint32_t uid_from,
		  int (*cb)(void *arg, const struct mc_store_msg *msg), void *arg)
{
	sqlite3_stmt *st = mc_store_int_stmt(s, MC_STMT_MESSAGES,
					     "SELECT uid, file, size, vsize, internal_date, flags, keywords, modseq FROM messages"
					     " WHERE mailbox = (SELECT id FROM mailboxes WHERE name = ?) AND uid >= ? ORDER BY uid");
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, norm_mailbox(mailbox), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, uid_from);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct mc_store_msg m = {
			.uid = (uint32_t)sqlite3_column_int64(st, 0),
			.file = (const char *)sqlite3_column_text(st, 1),
			.size = (uint64_t)sqlite3_column_int64(st, 2),
			.vsize = (uint64_t)sqlite3_column_int64(st, 3),
			.internal_date = sqlite3_column_int64(st, 4),
			.flags = (uint32_t)sqlite3_column_int64(st, 5),
			.keywords = (const char *)sqlite3_column_text(st, 6),
			.modseq = (uint64_t)sqlite3_column_int64(st, 7),
		};
		if (m.file == NULL)
			m.file = "";
		if (m.keywords == NULL)
			m.keywords = "";
		if (cb(arg, &m) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	mc_store_int_stmt_done(s, MC_STMT_MESSAGES, st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- delivery ---- */

static pthread_once_t host_once = PTHREAD_ONCE_INIT;
static char host_part[128];
static unsigned deliver_seq;

/* The host name as Dovecot writes it into file names: '/' and ':' (and our ',') escaped. */
static void
host_init(void)
{
	char h[256];
	if (gethostname(h, sizeof(h)) < 0)
		snprintf(h, sizeof(h), "localhost");
	h[sizeof(h) - 1] = '\0';
	size_t o = 0;
	for (const char *p = h; *p && o + 5 < sizeof(host_part); p++) {
		if (*p == '/' || *p == ':' || *p == ',') {
			o += (size_t)snprintf(host_part + o, sizeof(host_part) - o, "\\%03o", (unsigned char)*p);
		} else {
			host_part[o++] = *p;
		}
	}
	host_part[o] = '\0';
}

/* CRLF to LF while copying; counts what lands on disk and the CRLF size. One message file in tmp/. */
struct conv {
	int fd;            /* -1 before the file is created (a held one: tmp_hold) */
	bool created;      /* tmp holds a file of ours */
	bool cr;           /* a CR is held back: is it followed by LF? */
	char last;         /* last byte written */
	uint64_t size;
	uint64_t lone_lf;  /* LFs on disk not preceded by CR: each is one more byte as CRLF */
	struct mc_mime_parser *mime;   /* parses what is written, for the cache (NULL: no cache) */
	char uniq[256];    /* the unique part of the name */
	char tmp[STORE_PATH_MAX + MC_MAILBOX_NAME_MAX + 320];   /* dir/tmp/uniq */
	size_t outlen;
	char out[COPY_BUF];
};
/* a held tmp/ file shorter than this is created by conv_finish, never by a conv_feed */
_Static_assert(COPY_BUF >= MC_STORE_TMP_HELD, "the conv buffer holds a held message whole");

/* Create c's file in tmp/ (O_EXCL). -1 with errno. */
static int
conv_create(struct conv *c)
{
	c->fd = open(c->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, FILE_MODE);
	if (c->fd < 0)
		return -1;
	c->created = true;
	return 0;
}

static int
conv_flush(struct conv *c)
{
	/* a held file is created by its first flush: the one at its commit when it fits the buffer */
	if (c->fd < 0 && conv_create(c) < 0)
		return -1;
	if (c->outlen && mc_write_all(c->fd, c->out, c->outlen) < 0)
		return -1;
	/* The parser sees exactly the file's bytes, so its offsets are the file's. */
	if (c->mime && c->outlen && mc_mime_parser_feed(c->mime, c->out, c->outlen) < 0) {
		mc_mime_parser_free(c->mime);
		c->mime = NULL;   /* out of memory: deliver without a cache, it is filled later */
	}
	c->outlen = 0;
	return 0;
}

static inline int
conv_emit(struct conv *c, char b)
{
	if (b == '\n' && c->last != '\r')
		c->lone_lf++;
	c->last = b;
	c->size++;
	c->out[c->outlen++] = b;
	return c->outlen == sizeof(c->out) ? conv_flush(c) : 0;
}

/* n bytes without CR or LF, as they are. */
static int
conv_put(struct conv *c, const char *p, size_t n)
{
	c->size += n;
	c->last = p[n - 1];
	while (n > 0) {
		size_t k = sizeof(c->out) - c->outlen;
		if (k > n)
			k = n;
		memcpy(c->out + c->outlen, p, k);
		c->outlen += k;
		p += k;
		n -= k;
		if (c->outlen == sizeof(c->out) && conv_flush(c) < 0)
			return -1;
	}
	return 0;
}

static int
conv_feed(struct conv *c, const char *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		if (c->cr) {
			c->cr = false;
			if (p[i] == '\n') {
				if (conv_emit(c, '\n') < 0)
					return -1;
				i++;
				continue;
			}
			if (conv_emit(c, '\r') < 0)
				return -1;
		}
		if (p[i] == '\r') {
			c->cr = true;
			i++;
			continue;
		}
		if (p[i] == '\n') {
			if (conv_emit(c, '\n') < 0)
				return -1;
			i++;
			continue;
		}
		/* the bytes up to the next line end are copied as one run, not one by one */
		size_t j = i + 1;
		while (j < n && p[j] != '\r' && p[j] != '\n')
			j++;
		if (conv_put(c, p + i, j - i) < 0)
			return -1;
		i = j;
	}
	return 0;
}

static int
conv_finish(struct conv *c)
{
	if (c->cr) {
		c->cr = false;
		if (conv_emit(c, '\r') < 0)
			return -1;
	}
	return conv_flush(c);
}

void
mc_store_int_unique(char *out, size_t outsz, int64_t when)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	pthread_once(&host_once, host_init);
	unsigned q = __atomic_add_fetch(&deliver_seq, 1, __ATOMIC_RELAXED);
	snprintf(out, outsz, "%lld.M%ldP%dQ%u.%s", (long long)(when >= 0 ? when : (int64_t)tv.tv_sec), (long)tv.tv_usec,
		 (int)getpid(), q, host_part);
}

/*
 * Start c on dir/tmp/<unique>, created now (O_EXCL), or, held, by its
 * first flush; parse: run the MIME parser over what is written.
 */
static int
tmp_open(struct conv *c, const char *dir, int64_t when, bool parse, bool held, char *err, size_t errsz)
{
	memset(c, 0, offsetof(struct conv, out));
	c->fd = -1;
	mc_store_int_unique(c->uniq, sizeof(c->uniq), when);
	snprintf(c->tmp, sizeof(c->tmp), "%s/tmp/%s", dir, c->uniq);
	if (!held && conv_create(c) < 0) {
		set_err(err, errsz, "create tmp/%.64s: %s", c->uniq, strerror(errno));
		return -1;
	}
	/* single pass: the message is parsed for the cache as it is written */
	c->mime = parse ? mc_mime_parser_new() : NULL;
	return 0;
}

/* Give up on c's file: closed, removed, parser freed. */
static void
tmp_drop(struct conv *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->created)
		unlink(c->tmp);
	c->created = false;
	mc_mime_parser_free(c->mime);
	c->mime = NULL;
}

/*
 * The last bytes out, the mtime set (mtime > 0), fsync, close, rename into
 * dir/new/BASE (BASE = the unique part with ",S=size,W=vsize"), or into
 * dir/cur/BASE<info> when info (":2,FLAGS") is given; cache from the parse
 * when one ran (zeroed when it could not be built). -1 with err, the file
 * removed.
 */
static int
tmp_commit(struct conv *c, const char *dir, const char *info, int64_t mtime, char *base, size_t basesz, char *file,
	   size_t filesz, uint64_t *size, uint64_t *vsize, struct mc_store_cache *cache, char *err, size_t errsz)
{
	char dst[sizeof(c->tmp)];
	const char *why = NULL;
	int e = 0;
	if (conv_finish(c) < 0) {
		why = c->created ? "write" : "create";
		e = errno;
	}
	/* before the fsync, so that the inode goes to disk once */
	struct timespec ts[2] = { { .tv_sec = mtime }, { .tv_sec = mtime } };
	if (why == NULL && mtime > 0 && futimens(c->fd, ts) < 0) {
		why = "futimens";
		e = errno;
	}
	if (why == NULL && fsync(c->fd) < 0) {
		why = "fsync";
		e = errno;
	}
	if (close(c->fd) < 0 && why == NULL) {
		why = "close";
		e = errno;
	}
	c->fd = -1;
	if (why == NULL) {
		*size = c->size;
		*vsize = c->size + c->lone_lf;
		int n = snprintf(base, basesz, "%s,S=%llu,W=%llu", c->uniq, (unsigned long long)*size,
				 (unsigned long long)*vsize);
		int fn = snprintf(file, filesz, "%s/%s%s", info ? "cur" : "new", base, info ? info : "");
		snprintf(dst, sizeof(dst), "%s/%s", dir, file);
		if (n < 0 || (size_t)n >= basesz || fn < 0 || (size_t)fn >= filesz) {
			why = "name";
			e = ENAMETOOLONG;
		} else if (rename(c->tmp, dst) < 0) {
			why = "rename";
			e = errno;
		}
	}
	if (why) {
		set_err(err, errsz, "%s tmp/%.64s: %s", why, c->uniq, strerror(e));
		tmp_drop(c);
		return -1;
	}
	if (c->mime) {
		if (cache && mc_store_int_cache_build(mc_mime_parser_finish(c->mime), cache) < 0)
			memset(cache, 0, sizeof(*cache));   /* no cache: filled on first use */
		mc_mime_parser_free(c->mime);
		c->mime = NULL;
	} else if (cache) {
		memset(cache, 0, sizeof(*cache));
	}
	return 0;
}

/* One item of a delivery: the prefix, then its range of the source fd, through c into dir. */
static int
write_item(struct conv *c, char *inbuf, const char *dir, struct mc_store_item *it, int64_t when, char *base,
	   size_t basesz, char *file, size_t filesz, uint64_t *size, uint64_t *vsize, struct mc_store_cache *cache)
{
	if (tmp_open(c, dir, when, cache != NULL, false, it->err, sizeof(it->err)) < 0)
		return -1;
	const char *why = NULL;
	int e = 0;
	if (conv_feed(c, it->prefix ? it->prefix : "", it->prefixlen) < 0) {
		why = "write";
		e = errno;
	}
	uint64_t off = it->offset, left = it->length;
	while (why == NULL && left > 0) {
		size_t want = left < COPY_BUF ? (size_t)left : COPY_BUF;
		ssize_t r = pread(it->fd, inbuf, want, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			why = r < 0 ? "read" : "read (source shorter than its length)";
			e = r < 0 ? errno : EIO;
			break;
		}
		if (conv_feed(c, inbuf, (size_t)r) < 0) {
			why = "write";
			e = errno;
		}
		off += (uint64_t)r;
		left -= (uint64_t)r;
	}
	if (why) {
		snprintf(it->err, sizeof(it->err), "%s tmp/%.64s: %s", why, c->uniq, strerror(e));
		tmp_drop(c);
		return -1;
	}
	return tmp_commit(c, dir, NULL, 0, base, basesz, file, filesz, size, vsize, cache, it->err, sizeof(it->err));
}

/* ---- a message file written in pieces (APPEND as its literal arrives): mailstore_int.h ---- */

struct mc_store_tmp {
	char dir[STORE_PATH_MAX + MC_MAILBOX_NAME_MAX + 8];
	struct conv c;
};

struct mc_store_tmp *
mc_store_int_tmp_open(const char *dir, int64_t when, bool held, char *err, size_t errsz)
{
	struct mc_store_tmp *t = malloc(sizeof(*t));
	if (t == NULL) {
		set_err(err, errsz, "out of memory");
		return NULL;
	}
	snprintf(t->dir, sizeof(t->dir), "%s", dir);
	if (tmp_open(&t->c, dir, when, true, held, err, errsz) < 0) {
		free(t);
		return NULL;
	}
	return t;
}

int
mc_store_int_tmp_write(struct mc_store_tmp *t, const void *p, size_t n)
{
	return conv_feed(&t->c, p, n);
}

int
mc_store_int_tmp_commit(struct mc_store_tmp *t, const char *info, int64_t mtime, char *base, size_t basesz,
			char *file, size_t filesz, uint64_t *size, uint64_t *vsize, struct mc_store_cache *cache,
			char *err, size_t errsz)
{
	int r = tmp_commit(&t->c, t->dir, info, mtime, base, basesz, file, filesz, size, vsize, cache, err, errsz);
	free(t);
	return r;
}

void
mc_store_int_tmp_abort(struct mc_store_tmp *t)
{
	if (t == NULL)
		return;
	tmp_drop(&t->c);
	free(t);
}

struct written {
	char base[MC_MAILDIR_FILE_MAX + 1];
	char file[MC_MAILDIR_FILE_MAX + 8];
	uint64_t size, vsize;
	bool ok;                       /* the file is in new/ (and not removed again) */
	struct mc_store_cache cache;   /* envelope NULL: none */
};

/* What the file phase leaves for the index phase: files in new/ without a row yet. */
struct mc_store_files {
	char mailbox[MC_MAILBOX_NAME_MAX + 1];
	char dir[STORE_PATH_MAX + MC_MAILBOX_NAME_MAX + 8];
	struct mc_store_item *items;
	struct written *w;
	size_t n, nw;
	bool indexed;                  /* the index phase ran: what is still ok has its row */
};

static void
unlink_written(const char *dir, struct mc_store_item *items, struct written *w, size_t n, const char *why)
{
	char p[STORE_PATH_MAX + MC_MAILBOX_NAME_MAX + 300];
	for (size_t i = 0; i < n; i++) {
		if (!w[i].ok)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, w[i].file);
		if (unlink(p) < 0 && errno != ENOENT)
			mc_warn("store %s: could not remove %s after a failed delivery: %s", dir, w[i].file,
				strerror(errno));
		w[i].ok = false;
		items[i].uid = 0;
		snprintf(items[i].err, sizeof(items[i].err), "%s", why);
	}
}

/*
 * Give the written items of one batch their UIDs, inside the caller's
 * IMMEDIATE transaction. -1: the transaction must be rolled back (err set
 * unless the statement failed: then sqlite3_errmsg tells).
 */
static int
index_items(struct mc_store *s, struct mc_store_files *f, int64_t now, char *err, size_t errsz)
{
	sqlite3_reset(s->st_mbox);
	sqlite3_bind_text(s->st_mbox, 1, f->mailbox, -1, SQLITE_STATIC);
	if (sqlite3_step(s->st_mbox) != SQLITE_ROW) {
		sqlite3_reset(s->st_mbox);
		set_err(err, errsz, "no mailbox %s", f->mailbox);
		return -1;
	}
	int64_t id = sqlite3_column_int64(s->st_mbox, 0);
	int64_t uidnext = sqlite3_column_int64(s->st_mbox, 1);
	int64_t modseq = sqlite3_column_int64(s->st_mbox, 2);
	sqlite3_reset(s->st_mbox);

	for (size_t i = 0; i < f->n; i++) {
		struct written *w = &f->w[i];
		if (!w->ok)
			continue;
		if (uidnext > (int64_t)UINT32_MAX) {
			set_err(err, errsz, "mailbox %s ran out of UIDs", f->mailbox);
			return -1;
		}
		sqlite3_stmt *st = s->st_insert;
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, uidnext);
		sqlite3_bind_text(st, 3, w->base, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, w->file, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, (int64_t)w->size);
		sqlite3_bind_int64(st, 6, (int64_t)w->vsize);
		sqlite3_bind_int64(st, 7, now);
		sqlite3_bind_int64(st, 8, modseq + 1);
		mc_store_int_cache_bind(st, 9, w->cache.envelope ? &w->cache : NULL);
		if (sqlite3_step(st) != SQLITE_DONE) {
			sqlite3_reset(st);
			set_err(err, errsz, "%s: %s", s->index, sqlite3_errmsg(s->db));
			return -1;
		}
		sqlite3_reset(st);
		if (sqlite3_changes(s->db) == 1) {
			f->items[i].uid = (uint32_t)uidnext++;
			modseq++;
			continue;
		}
		/* A reindex running meanwhile found the file first and gave it a UID: that one stands. */
		sqlite3_reset(s->st_exists);
		sqlite3_bind_int64(s->st_exists, 1, id);
		sqlite3_bind_text(s->st_exists, 2, w->base, -1, SQLITE_STATIC);
		if (sqlite3_step(s->st_exists) == SQLITE_ROW)
			f->items[i].uid = (uint32_t)sqlite3_column_int64(s->st_exists, 0);
		sqlite3_reset(s->st_exists);
	}
	sqlite3_reset(s->st_bump);
	sqlite3_bind_int64(s->st_bump, 1, uidnext);
	sqlite3_bind_int64(s->st_bump, 2, modseq);
	sqlite3_bind_int64(s->st_bump, 3, id);
	int rc = sqlite3_step(s->st_bump);
	sqlite3_reset(s->st_bump);
	if (rc != SQLITE_DONE) {
		set_err(err, errsz, "%s: %s", s->index, sqlite3_errmsg(s->db));
		return -1;
	}
	return 0;
}

struct mc_store_files *
mc_store_files_write(const char *store_path, const char *mailbox, struct mc_store_item *items, size_t n)
{
	mailbox = norm_mailbox(mailbox);
	for (size_t i = 0; i < n; i++) {
		items[i].uid = 0;
		items[i].err[0] = '\0';
	}
	struct mc_store_files *f = calloc(1, sizeof(*f));
	struct written *w = calloc(n ? n : 1, sizeof(*w));
	struct conv *c = malloc(sizeof(*c));
	char *inbuf = malloc(COPY_BUF);
	const char *why = NULL;
	int dn = 0;
	if (f == NULL || w == NULL || c == NULL || inbuf == NULL)
		why = "out of memory";
	else if (strcmp(mailbox, "INBOX") == 0)
		dn = snprintf(f->dir, sizeof(f->dir), "%s", store_path);
	else if (!mc_store_mailbox_name_ok(mailbox))
		why = "bad mailbox name";
	else
		dn = snprintf(f->dir, sizeof(f->dir), "%s/.%s", store_path, mailbox);
	if (why == NULL && (dn < 0 || (size_t)dn >= sizeof(f->dir)))
		why = "mailbox path too long";
	if (why) {
		for (size_t i = 0; i < n; i++)
			snprintf(items[i].err, sizeof(items[i].err), "%s", why);
		free(f);
		free(w);
		free(c);
		free(inbuf);
		return NULL;
	}
	snprintf(f->mailbox, sizeof(f->mailbox), "%s", mailbox);
	f->items = items;
	f->w = w;
	f->n = n;
	for (size_t i = 0; i < n; i++) {
		if (write_item(c, inbuf, f->dir, &items[i], -1, w[i].base, sizeof(w[i].base), w[i].file,
			       sizeof(w[i].file), &w[i].size, &w[i].vsize, &w[i].cache) == 0) {
			w[i].ok = true;
			f->nw++;
		}
	}
	free(c);
	free(inbuf);
	return f;
}

int
mc_store_files_index(struct mc_store *s, struct mc_store_files *const *batches, size_t nb, char *err, size_t errsz)
{
	char newdir[STORE_PATH_MAX + MC_MAILBOX_NAME_MAX + 16], why[200];
	/* The renames are durable before any row names them: one fsync of each directory new/ for all its batches. */
	for (size_t b = 0; b < nb; b++) {
		struct mc_store_files *f = batches[b];
		f->indexed = true;
		if (f->nw == 0)
			continue;
		bool same = false;
		for (size_t k = 0; k < b && !same; k++)
			same = batches[k]->nw > 0 && strcmp(batches[k]->dir, f->dir) == 0;
		snprintf(newdir, sizeof(newdir), "%s/new", f->dir);
		if (!same && mc_fsync_dir(newdir) < 0) {
			snprintf(why, sizeof(why), "fsync new/: %s", strerror(errno));
			for (size_t k = b; k < nb; k++)
				if (strcmp(batches[k]->dir, f->dir) == 0)
					unlink_written(batches[k]->dir, batches[k]->items, batches[k]->w, batches[k]->n, why);
		}
	}
	int delivered = 0;
	bool any = false;
	for (size_t b = 0; b < nb && !any; b++)
		for (size_t i = 0; i < batches[b]->n && !any; i++)
			any = batches[b]->w[i].ok;
	if (any) {
		int64_t now = (int64_t)time(NULL);
		int r = -1;
		char ierr[200] = "";
		/* a lean connection (mc_store_lean_memory) prepares delivery's statements when it first delivers */
		if (((s->st_insert == NULL || s->st_exists == NULL) && prepare_delivery(s) != SQLITE_OK) ||
		    exec(s->db, "BEGIN IMMEDIATE") != SQLITE_OK) {
			set_err(ierr, sizeof(ierr), "%s: %s", s->index, sqlite3_errmsg(s->db));
		} else {
			r = 0;
			for (size_t b = 0; b < nb && r == 0; b++)
				r = index_items(s, batches[b], now, ierr, sizeof(ierr));
			if (r == 0 && exec(s->db, "COMMIT") != SQLITE_OK) {
				set_err(ierr, sizeof(ierr), "%s: %s", s->index, sqlite3_errmsg(s->db));
				r = -1;
			}
			if (r < 0)
				exec(s->db, "ROLLBACK");
		}
		if (r < 0) {
			set_err(err, errsz, "%s", ierr);
			snprintf(why, sizeof(why), "index: %.190s", ierr);
			for (size_t b = 0; b < nb; b++) {
				for (size_t i = 0; i < batches[b]->n; i++)
					batches[b]->items[i].uid = 0;
				unlink_written(batches[b]->dir, batches[b]->items, batches[b]->w, batches[b]->n, why);
			}
			return -1;
		}
	}
	for (size_t b = 0; b < nb; b++)
		for (size_t i = 0; i < batches[b]->n; i++)
			if (batches[b]->items[i].uid)
				delivered++;
	return delivered;
}

void
mc_store_files_free(struct mc_store_files *f, const char *why)
{
	if (f == NULL)
		return;
	if (!f->indexed)
		unlink_written(f->dir, f->items, f->w, f->n, why ? why : "not indexed");
	for (size_t i = 0; i < f->n; i++)
		mc_store_cache_free(&f->w[i].cache);
	free(f->w);
	free(f);
}

int
mc_store_deliver_many(struct mc_store *s, const char *mailbox, struct mc_store_item *items, size_t n, char *err,
		      size_t errsz)
{
	mailbox = norm_mailbox(mailbox);
	for (size_t i = 0; i < n; i++) {
		items[i].uid = 0;
		items[i].err[0] = '\0';
	}
	/* an unknown mailbox is refused before any file is written */
	sqlite3_reset(s->st_mbox);
	sqlite3_bind_text(s->st_mbox, 1, mailbox, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s->st_mbox);
	sqlite3_reset(s->st_mbox);
	if (rc != SQLITE_ROW) {
		if (rc == SQLITE_DONE)
			set_err(err, errsz, "no mailbox %s", mailbox);
		else
			set_err(err, errsz, "%s: %s", s->index, sqlite3_errmsg(s->db));
		return -1;
	}
	if (strcmp(mailbox, "INBOX") != 0 && !mc_store_mailbox_name_ok(mailbox)) {
		set_err(err, errsz, "bad mailbox name");
		return -1;
	}
	struct mc_store_files *f = mc_store_files_write(s->path, mailbox, items, n);
	if (f == NULL) {
		set_err(err, errsz, "%s", n ? items[0].err : "out of memory");
		return -1;
	}
	int delivered = f->nw ? mc_store_files_index(s, &f, 1, err, errsz) : 0;
	f->indexed = true;
	mc_store_files_free(f, NULL);
	if (delivered == 0 && n > 0)
		set_err(err, errsz, "%s", items[0].err[0] ? items[0].err : "nothing delivered");
	return delivered;
}

int
mc_store_deliver(struct mc_store *s, const char *mailbox, const char *prefix, size_t prefixlen, int fd,
		 uint64_t offset, uint64_t length, uint32_t *uid, char *err, size_t errsz)
{
	struct mc_store_item it = {
		.prefix = prefix, .prefixlen = prefixlen, .fd = fd, .offset = offset, .length = length,
	};
	int r = mc_store_deliver_many(s, mailbox, &it, 1, err, errsz);
	if (r != 1) {
		if (r == 0)
			set_err(err, errsz, "%s", it.err);
		return -1;
	}
	*uid = it.uid;
	return 0;
}

/* ---- Maildir file names ---- */

static bool
parse_digits(const char *p, const char *end, uint64_t *out, const char **stop)
{
	uint64_t v = 0;
	const char *q = p;
	while (q < end && *q >= '0' && *q <= '9') {
		unsigned d = (unsigned)(*q - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
		q++;
	}
	if (q == p)
		return false;
	*out = v;
	*stop = q;
	return true;
}

int
mc_maildir_name_parse(const char *name, struct mc_maildir_name *out)
{
	memset(out, 0, sizeof(*out));
	out->time = -1;
	size_t len = strnlen(name, MC_MAILDIR_FILE_MAX + 1);
	if (len == 0 || len > MC_MAILDIR_FILE_MAX || name[0] == '.' || memchr(name, '/', len))
		return -1;
	const char *end = name + len;
	const char *colon = memchr(name, ':', len);
	const char *bend = colon ? colon : end;
	out->baselen = (size_t)(bend - name);
	if (out->baselen == 0)
		return -1;

	uint64_t v;
	const char *q;
	if (parse_digits(name, bend, &v, &q) && q < bend && *q == '.' && v <= (uint64_t)INT64_MAX / 2) {
		out->time = (int64_t)v;
		if (q + 1 < bend && q[1] == 'M' && parse_digits(q + 2, bend, &v, &q) && v < 1000000)
			out->usec = (uint32_t)v;
	}
	/* ",S=<n>" and ",W=<n>" fields of the base name */
	for (const char *f = memchr(name, ',', out->baselen); f; f = memchr(f + 1, ',', (size_t)(bend - f - 1))) {
		if (bend - f < 4 || f[2] != '=')
			continue;
		if (!parse_digits(f + 3, bend, &v, &q) || (q < bend && *q != ','))
			continue;
		if (f[1] == 'S') {
			out->has_size = true;
			out->size = v;
		} else if (f[1] == 'W') {
			out->has_vsize = true;
			out->vsize = v;
		}
	}
	if (colon && end - colon >= 3 && colon[1] == '2' && colon[2] == ',') {
		out->has_info = true;
		for (const char *p = colon + 3; p < end; p++) {
			switch (*p) {
			case 'D': out->flags |= MC_FLAG_DRAFT; break;
			case 'F': out->flags |= MC_FLAG_FLAGGED; break;
			case 'P': out->flags |= MC_FLAG_FORWARDED; break;
			case 'R': out->flags |= MC_FLAG_ANSWERED; break;
			case 'S': out->flags |= MC_FLAG_SEEN; break;
			case 'T': out->flags |= MC_FLAG_DELETED; break;
			default: break; /* keyword letters and unknown flags */
			}
		}
	}
	return 0;
}

/* ---- reindex ---- */

static int
ent_cmp(const void *a, const void *b)
{
	const struct mc_store_ent *x = a, *y = b;
	if (x->p.time != y->p.time)
		return x->p.time < y->p.time ? -1 : 1;
	if (x->p.usec != y->p.usec)
		return x->p.usec < y->p.usec ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* mailstore_int.h: reindex's and the reconcile's listing. */
int
mc_store_int_scan_maildir(const char *dir, struct mc_store_ent **out, size_t *nout)
{
	static const char *const subs[] = { "new", "cur" };
	struct mc_store_ent *v = NULL;
	size_t n = 0, cap = 0;
	char p[STORE_PATH_MAX + MC_MAILBOX_NAME_MAX + 300];
	for (size_t k = 0; k < 2; k++) {
		snprintf(p, sizeof(p), "%s/%s", dir, subs[k]);
		DIR *d = opendir(p);
		if (d == NULL) {
			if (errno == ENOENT)
				continue;
			free(v);
			return -1;
		}
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			struct mc_maildir_name mn;
			if (mc_maildir_name_parse(de->d_name, &mn) < 0)
				continue;
			if (de->d_type != DT_REG) {
				struct stat sb;
				snprintf(p, sizeof(p), "%s/%s/%s", dir, subs[k], de->d_name);
				if (de->d_type != DT_UNKNOWN || lstat(p, &sb) < 0 || !S_ISREG(sb.st_mode))
					continue;
			}
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 64;
				struct mc_store_ent *nv = realloc(v, nc * sizeof(*v));
				if (nv == NULL) {
					closedir(d);
					free(v);
					return -1;
				}
				v = nv;
				cap = nc;
			}
			snprintf(v[n].name, sizeof(v[n].name), "%s", de->d_name);
			snprintf(v[n].sub, sizeof(v[n].sub), "%s", subs[k]);
			v[n].p = mn;
			n++;
		}
		closedir(d);
	}
	if (n)
		qsort(v, n, sizeof(*v), ent_cmp);
	*out = v;
	*nout = n;
	return 0;
}

/* mailstore_int.h: a file that does not say its sizes in its name. */
int
mc_store_int_measure_file(const char *path, struct stat *sb, uint64_t *vsize)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, sb) < 0) {
		close(fd);
		return -1;
	}
	if (vsize == NULL) {
		close(fd);
		return 0;
	}
	char *buf = malloc(COPY_BUF);
	if (buf == NULL) {
		close(fd);
		return -1;
	}
	uint64_t lone = 0, total = 0;
	char last = 0;
	ssize_t r;
	while ((r = read(fd, buf, COPY_BUF)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			free(buf);
			close(fd);
			return -1;
		}
		for (ssize_t i = 0; i < r; i++) {
			if (buf[i] == '\n' && last != '\r')
				lone++;
			last = buf[i];
		}
		total += (uint64_t)r;
	}
	free(buf);
	close(fd);
	*vsize = total + lone;
	return 0;
}

/* The mailbox names found on disk: INBOX and every ".Name" folder with a cur/. */
static int
scan_folders(const char *root, char ***out, size_t *nout)
{
	char **v = NULL;
	size_t n = 0, cap = 0;
	DIR *d = opendir(root);
	if (d == NULL)
		return -1;
	struct dirent *de;
	char p[STORE_PATH_MAX + MC_MAILBOX_NAME_MAX + 16];
	bool inbox = false;
	for (;;) {
		const char *name;
		if (!inbox) {
			name = "INBOX";
			inbox = true;
		} else {
			if ((de = readdir(d)) == NULL)
				break;
			if (de->d_name[0] != '.' || !mc_store_mailbox_name_ok(de->d_name + 1) ||
			    strcasecmp(de->d_name + 1, "INBOX") == 0)
				continue;
			struct stat sb;
			snprintf(p, sizeof(p), "%s/%s/cur", root, de->d_name);
			if (stat(p, &sb) < 0 || !S_ISDIR(sb.st_mode))
				continue;
			name = de->d_name + 1;
		}
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 8;
			char **nv = realloc(v, nc * sizeof(*v));
			if (nv == NULL)
				break;
			v = nv;
			cap = nc;
		}
		if ((v[n] = strdup(name)) == NULL)
			break;
		n++;
	}
	closedir(d);
	*out = v;
	*nout = n;
	return 0;
}

struct rx {
	struct mc_store *s;
	sqlite3_stmt *find, *upd, *ins, *seen, *bump, *ondisk;
	struct mc_store_reindex_stats *st;
	int64_t now;
};

static void
rx_finalize(struct rx *x)
{
	sqlite3_finalize(x->find);
	sqlite3_finalize(x->upd);
	sqlite3_finalize(x->ins);
	sqlite3_finalize(x->seen);
	sqlite3_finalize(x->bump);
	sqlite3_finalize(x->ondisk);
}

static int
step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
reindex_mailbox(struct rx *x, const char *name)
{
	sqlite3 *db = x->s->db;
	char dir[STORE_PATH_MAX + MC_MAILBOX_NAME_MAX + 8];
	if (mc_store_mailbox_dir(x->s, name, dir, sizeof(dir)) < 0)
		return 0;
	struct mc_store_mailbox mb;
	if (mc_store_mailbox_get(x->s, name, &mb) < 0) {
		if (insert_mailbox(db, x->s->path, name, NULL, NULL) < 0 || mc_store_mailbox_get(x->s, name, &mb) < 0)
			return -1;
	}
	sqlite3_bind_text(x->ondisk, 1, mb.name, -1, SQLITE_TRANSIENT);
	if (step_done(x->ondisk) < 0)
		return -1;
	struct mc_store_ent *e = NULL;
	size_t n = 0;
	if (mc_store_int_scan_maildir(dir, &e, &n) < 0)
		return -1;
	int64_t uidnext = mb.uidnext ? mb.uidnext : 1, modseq = (int64_t)mb.highestmodseq;
	char file[MC_MAILDIR_FILE_MAX + 8], base[MC_MAILDIR_FILE_MAX + 1], p[sizeof(dir) + sizeof(file) + 4];
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		snprintf(base, sizeof(base), "%.*s", (int)e[i].p.baselen, e[i].name);
		snprintf(file, sizeof(file), "%s/%s", e[i].sub, e[i].name);
		sqlite3_reset(x->find);
		sqlite3_bind_int64(x->find, 1, mb.id);
		sqlite3_bind_text(x->find, 2, base, -1, SQLITE_STATIC);
		int rc = sqlite3_step(x->find);
		if (rc == SQLITE_ROW) {
			int64_t uid = sqlite3_column_int64(x->find, 0);
			const char *oldfile = (const char *)sqlite3_column_text(x->find, 1);
			uint32_t oldflags = (uint32_t)sqlite3_column_int64(x->find, 2);
			bool same = oldfile && strcmp(oldfile, file) == 0;
			bool cached = sqlite3_column_int(x->find, 3) == MC_STORE_CACHE_VERSION;
			sqlite3_reset(x->find);
			sqlite3_bind_int64(x->seen, 1, mb.id);
			sqlite3_bind_int64(x->seen, 2, uid);
			if (step_done(x->seen) < 0 || sqlite3_changes(db) == 0) {
				mc_warn("store %s: %s/%s has the same name as another file; left out of the index", dir,
					e[i].sub, e[i].name);
				continue;
			}
			x->st->kept++;
			if (!cached) {
				snprintf(p, sizeof(p), "%s/%s", dir, file);
				if (mc_store_int_cache_file(db, p, mb.id, (uint32_t)uid) < 0)
					mc_warn("store %s: no cache for %s: %s", dir, file, strerror(errno));
			}
			uint32_t flags = e[i].p.has_info ? e[i].p.flags : oldflags;
			if (same && flags == oldflags)
				continue;
			sqlite3_bind_text(x->upd, 1, file, -1, SQLITE_STATIC);
			sqlite3_bind_int64(x->upd, 2, flags);
			sqlite3_bind_int64(x->upd, 3, ++modseq);
			sqlite3_bind_int64(x->upd, 4, mb.id);
			sqlite3_bind_int64(x->upd, 5, uid);
			r = step_done(x->upd);
			continue;
		}
		sqlite3_reset(x->find);
		if (rc != SQLITE_DONE) {
			r = -1;
			break;
		}
		struct stat sb;
		uint64_t vsize = e[i].p.vsize;
		snprintf(p, sizeof(p), "%s/%s", dir, file);
		if (mc_store_int_measure_file(p, &sb, e[i].p.has_vsize ? NULL : &vsize) < 0) {
			mc_warn("store %s: cannot read %s: %s", dir, file, strerror(errno));
			continue;
		}
		if (uidnext > (int64_t)UINT32_MAX) {
			r = -1;
			break;
		}
		sqlite3_bind_int64(x->ins, 1, mb.id);
		sqlite3_bind_int64(x->ins, 2, uidnext);
		sqlite3_bind_text(x->ins, 3, base, -1, SQLITE_STATIC);
		sqlite3_bind_text(x->ins, 4, file, -1, SQLITE_STATIC);
		sqlite3_bind_int64(x->ins, 5, (int64_t)sb.st_size);
		sqlite3_bind_int64(x->ins, 6, (int64_t)vsize);
		sqlite3_bind_int64(x->ins, 7, e[i].p.time >= 0 ? e[i].p.time : (int64_t)sb.st_mtime);
		sqlite3_bind_int64(x->ins, 8, e[i].p.flags);
		sqlite3_bind_int64(x->ins, 9, ++modseq);
		if ((r = step_done(x->ins)) < 0)
			break;
		if (mc_store_int_cache_file(db, p, mb.id, (uint32_t)uidnext) < 0)
			mc_warn("store %s: no cache for %s: %s", dir, file, strerror(errno));
		sqlite3_bind_int64(x->seen, 1, mb.id);
		sqlite3_bind_int64(x->seen, 2, uidnext);
		r = step_done(x->seen);
		uidnext++;
		x->st->added++;
	}
	free(e);
	if (r < 0)
		return -1;

	/* Rows without a file: gone. Remember their UIDs as expunged at a new MODSEQ. */
	sqlite3_stmt *st;
	static const char *const sql[] = {
		"INSERT OR REPLACE INTO expunged(mailbox, uid, modseq) SELECT mailbox, uid, ?1 FROM messages"
		" WHERE mailbox = ?2 AND uid NOT IN (SELECT uid FROM temp.seen WHERE mailbox = ?2)",
		"DELETE FROM messages WHERE mailbox = ?2 AND uid NOT IN (SELECT uid FROM temp.seen WHERE mailbox = ?2)",
	};
	for (int k = 0; k < 2; k++) {
		if (sqlite3_prepare_v2(db, sql[k], -1, &st, NULL) != SQLITE_OK)
			return -1;
		if (k == 0)
			sqlite3_bind_int64(st, 1, modseq + 1);
		sqlite3_bind_int64(st, 2, mb.id);
		r = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
		sqlite3_finalize(st);
		if (r < 0)
			return -1;
		if (k == 1 && sqlite3_changes(db) > 0) {
			x->st->removed += (unsigned)sqlite3_changes(db);
			modseq++;
		}
	}
	sqlite3_bind_int64(x->bump, 1, uidnext);
	sqlite3_bind_int64(x->bump, 2, modseq);
	sqlite3_bind_int64(x->bump, 3, mb.id);
	x->st->mailboxes++;
	return step_done(x->bump);
}

int
mc_store_reindex(struct mc_store *s, struct mc_store_reindex_stats *st, char *err, size_t errsz)
{
	struct mc_store_reindex_stats dummy;
	if (st == NULL)
		st = &dummy;
	memset(st, 0, sizeof(*st));
	char **names = NULL;
	size_t nn = 0;
	if (scan_folders(s->path, &names, &nn) < 0) {
		set_err(err, errsz, "%s: %s", s->path, strerror(errno));
		return -1;
	}
	struct rx x = { .s = s, .st = st, .now = (int64_t)time(NULL) };
	int r = -1;
	if (exec(s->db, "BEGIN IMMEDIATE") != SQLITE_OK)
		goto out;
	if (exec(s->db, "CREATE TEMP TABLE IF NOT EXISTS seen(mailbox INTEGER, uid INTEGER,"
			" PRIMARY KEY(mailbox, uid)) WITHOUT ROWID; DELETE FROM temp.seen;"
			" CREATE TEMP TABLE IF NOT EXISTS ondisk(name TEXT PRIMARY KEY); DELETE FROM temp.ondisk") != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db, "SELECT uid, file, flags, cache_ver FROM messages WHERE mailbox = ? AND base = ?", -1,
			       &x.find, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db, "UPDATE messages SET file = ?, flags = ?, modseq = ? WHERE mailbox = ? AND uid = ?",
			       -1, &x.upd, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db,
			       "INSERT INTO messages(mailbox, uid, base, file, size, vsize, internal_date, flags, modseq)"
			       " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
			       -1, &x.ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO temp.seen(mailbox, uid) VALUES(?, ?)", -1, &x.seen,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db, "UPDATE mailboxes SET uidnext = ?, highestmodseq = ? WHERE id = ?", -1, &x.bump,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO temp.ondisk(name) VALUES(?)", -1, &x.ondisk, NULL) !=
		    SQLITE_OK)
		goto rollback;
	for (size_t i = 0; i < nn; i++)
		if (reindex_mailbox(&x, names[i]) < 0)
			goto rollback;
	/* Folders whose directory is gone leave the index (INBOX always stays). */
	if (exec(s->db, "DELETE FROM mailboxes WHERE name <> 'INBOX' AND name NOT IN (SELECT name FROM temp.ondisk)") !=
	    SQLITE_OK)
		goto rollback;
	if (exec(s->db, "COMMIT") != SQLITE_OK)
		goto rollback;
	r = 0;
	goto out;
rollback:
	set_err(err, errsz, "%s: reindex: %s", s->index, sqlite3_errmsg(s->db));
	exec(s->db, "ROLLBACK");
out:
	if (r < 0 && err && errsz && err[0] == '\0')
		set_err(err, errsz, "%s: reindex failed: %s", s->index, sqlite3_errmsg(s->db));
	rx_finalize(&x);
	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	return r;
}

/* ---- the POP3 maildrop lock and expunging (pop3d, imapd) ---- */

int
mc_store_lock(const struct mc_store *s, bool exclusive)
{
	char path[STORE_PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/%s", s->path, MC_STORE_LOCK_NAME);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, FILE_MODE);
	if (fd < 0)
		return -1;
	if (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

void
mc_store_unlock(int fd)
{
	if (fd >= 0)
		close(fd);   /* closing the descriptor releases its flock */
}

/* Remove a message file; it may have moved (new/ to cur/, flags changed) since the row was read. */
static int
unlink_message(const char *dir, const char *file, const char *base)
{
	char path[STORE_PATH_MAX + MC_MAILBOX_NAME_MAX + MC_MAILDIR_FILE_MAX + 16];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (unlink(path) == 0)
		return 0;
	if (errno != ENOENT)
		return -1;
	snprintf(path, sizeof(path), "%s/new/%s", dir, base);
	if (unlink(path) == 0)
		return 0;
	snprintf(path, sizeof(path), "%s/cur", dir);
	DIR *d = opendir(path);
	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	size_t bl = strlen(base);
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, base, bl) == 0 && (de->d_name[bl] == '\0' || de->d_name[bl] == ':')) {
			snprintf(path, sizeof(path), "%s/cur/%s", dir, de->d_name);
			rc = unlink(path) == 0 || errno == ENOENT ? 0 : -1;
			break;
		}
	}
	closedir(d);
	return rc;   /* gone already: nothing left to remove */
}

int
mc_store_expunge(struct mc_store *s, const char *mailbox, const uint32_t *uids, size_t n, char *err, size_t errsz)
{
	char dir[STORE_PATH_MAX + MC_MAILBOX_NAME_MAX + 8];
	sqlite3_stmt *sel = NULL, *del = NULL, *ins = NULL;
	int done = 0;

	mailbox = norm_mailbox(mailbox);
	if (mc_store_mailbox_dir(s, mailbox, dir, sizeof(dir)) < 0) {
		set_err(err, errsz, "bad mailbox name");
		return -1;
	}
	if (n == 0)
		return 0;
	if (exec(s->db, "BEGIN IMMEDIATE") != SQLITE_OK)
		goto fail;
	sqlite3_reset(s->st_mbox);
	sqlite3_bind_text(s->st_mbox, 1, mailbox, -1, SQLITE_STATIC);
	if (sqlite3_step(s->st_mbox) != SQLITE_ROW) {
		sqlite3_reset(s->st_mbox);
		exec(s->db, "ROLLBACK");
		set_err(err, errsz, "no mailbox %s", mailbox);
		return -1;
	}
	int64_t id = sqlite3_column_int64(s->st_mbox, 0);
	int64_t uidnext = sqlite3_column_int64(s->st_mbox, 1);
	int64_t modseq = sqlite3_column_int64(s->st_mbox, 2);
	sqlite3_reset(s->st_mbox);
	if (sqlite3_prepare_v2(s->db, "SELECT file, base FROM messages WHERE mailbox = ? AND uid = ?", -1, &sel,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db, "DELETE FROM messages WHERE mailbox = ? AND uid = ?", -1, &del, NULL) !=
		    SQLITE_OK ||
	    sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO expunged(mailbox, uid, modseq) VALUES(?, ?, ?)", -1, &ins,
			       NULL) != SQLITE_OK)
		goto rollback;
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(sel);
		sqlite3_bind_int64(sel, 1, id);
		sqlite3_bind_int64(sel, 2, uids[i]);
		int rc = sqlite3_step(sel);
		if (rc == SQLITE_DONE)
			continue;   /* expunged already (by another session) */
		if (rc != SQLITE_ROW)
			goto rollback;
		/*
		 * The file goes before its row: a crash in between leaves a row
		 * without a file (the next reindex drops it), never a file without
		 * a row, which a reindex would bring back as a new message.
		 */
		if (unlink_message(dir, (const char *)sqlite3_column_text(sel, 0),
				   (const char *)sqlite3_column_text(sel, 1)) < 0) {
			mc_warn("%s: expunge %s uid %u: %s", s->path, mailbox, uids[i], strerror(errno));
			continue;   /* the row stays with its file */
		}
		sqlite3_reset(del);
		sqlite3_bind_int64(del, 1, id);
		sqlite3_bind_int64(del, 2, uids[i]);
		sqlite3_reset(ins);
		sqlite3_bind_int64(ins, 1, id);
		sqlite3_bind_int64(ins, 2, uids[i]);
		sqlite3_bind_int64(ins, 3, ++modseq);
		if (sqlite3_step(del) != SQLITE_DONE || sqlite3_step(ins) != SQLITE_DONE)
			goto rollback;
		done++;
	}
	sqlite3_reset(sel);
	sqlite3_reset(s->st_bump);
	sqlite3_bind_int64(s->st_bump, 1, uidnext);
	sqlite3_bind_int64(s->st_bump, 2, modseq);
	sqlite3_bind_int64(s->st_bump, 3, id);
	int rc = sqlite3_step(s->st_bump);
	sqlite3_reset(s->st_bump);
	if (rc != SQLITE_DONE)
		goto rollback;
	/*
	 * The unlinks are durable before the rows' removal is: a power loss
	 * between would leave a file without a row, which the reconcile after
	 * the reboot (mailstore_reconcile.c) would bring back as a message.
	 */
	if (done > 0) {
		char sub[sizeof(dir) + 8];
		snprintf(sub, sizeof(sub), "%s/cur", dir);
		if (mc_fsync_dir(sub) < 0)
			mc_warn("store: fsync %s: %s", sub, strerror(errno));
		snprintf(sub, sizeof(sub), "%s/new", dir);
		if (mc_fsync_dir(sub) < 0)
			mc_warn("store: fsync %s: %s", sub, strerror(errno));
	}
	if (exec(s->db, "COMMIT") != SQLITE_OK)
		goto rollback;
	sqlite3_finalize(sel);
	sqlite3_finalize(del);
	sqlite3_finalize(ins);
	return done;
rollback:
	set_err(err, errsz, "%s: %s", s->index, sqlite3_errmsg(s->db));
	sqlite3_finalize(sel);
	sqlite3_finalize(del);
	sqlite3_finalize(ins);
	exec(s->db, "ROLLBACK");
	return -1;
fail:
	set_err(err, errsz, "%s: %s", s->index, sqlite3_errmsg(s->db));
	return -1;
}
