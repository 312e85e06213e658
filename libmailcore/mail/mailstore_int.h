/*
 * mailstore_int.h - the mail store's private parts, shared by the files
 * that implement it (mailstore.c: open, delivery, reindex; mailstore_ops.c:
 * what IMAP and POP3 do to stored mail). Nothing outside libmailcore/mail/
 * mailstore*.c includes this: everyone else uses mailstore.h.
 */
#ifndef MC_MAILSTORE_INT_H
#define MC_MAILSTORE_INT_H

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "mail/mailstore.h"

#define STORE_PATH_MAX 1024
#define DIR_MODE 02770
#define FILE_MODE 0660

/* The queries an IMAP session runs on (nearly) every command: prepared once per connection. */
enum mc_store_stmt {
	MC_STMT_MAILBOX_GET,
	MC_STMT_MESSAGES,
	MC_STMT_MAILBOX_ROW,
	MC_STMT_ROWS_UID,
	MC_STMT_ROWS_DELETED,
	MC_STMT_FLAGS_UPDATE,
	MC_STMT_SEARCH_UNCACHED,
	MC_STMT_SEARCH_ROWS,
	MC_STMT_MSG_OPEN,
	MC_STMT_CHANGES,
	MC_STMT_EXPUNGED_SINCE,
	MC_STMT_MAILBOX_HEAD,
	/* every write: transaction control and the sync level, parsed once too */
	MC_STMT_BEGIN,
	MC_STMT_COMMIT,
	MC_STMT_SYNC_NORMAL,
	MC_STMT_SYNC_FULL,
	MC_STMT_APPEND_INSERT,
	MC_STMT_MAILBOX_BUMP,
	MC_STMT_RECENT_MARK,
	MC_STMT_RECENT_SET,
	MC_STMT_N
};

struct mc_store {
	char path[STORE_PATH_MAX];
	char index[STORE_PATH_MAX + 32];
	sqlite3 *db;
	sqlite3_stmt *st_mbox;     /* hot path of delivery */
	sqlite3_stmt *st_insert;
	sqlite3_stmt *st_exists;
	sqlite3_stmt *st_bump;
	uint64_t quota_bytes, quota_messages;   /* mc_store_set_quota (mailstore_ops.c); 0 = none */
	/*
	 * APPENDs begun and not yet indexed or aborted, counted against the
	 * quota so that two at once cannot both pass it. Atomic: imapd indexes
	 * (and so releases) on a pool thread while its loop may abort another.
	 */
	_Atomic uint64_t reserved_bytes, reserved_messages;
	bool tmp_swept;                         /* mc_store_tmp_sweep ran on this open */
	sqlite3_stmt *stmt[MC_STMT_N];          /* mc_store_int_stmt's cache, NULL until first used */
	uint32_t stmt_busy;                     /* bit per stmt[] taken and not yet given back */
	/* mc_store_search_prepare: every message of mailbox cached_mbox (at that UIDVALIDITY) below cached_uid has its cache. */
	int64_t cached_mbox, cached_uidvalidity, cached_uid;
};

/*
 * The cached statement id for sql (prepared on first use), or a private one
 * when the cached one is in use further up the stack (a callback running
 * the same query); NULL on error. Every one goes back through
 * mc_store_int_stmt_done, which resets it (ending its read transaction).
 * Parsing SQL was 20-40 % of imapd's CPU per FETCH, SEARCH and STORE.
 */
sqlite3_stmt *mc_store_int_stmt(struct mc_store *s, enum mc_store_stmt id, const char *sql);
void mc_store_int_stmt_done(struct mc_store *s, enum mc_store_stmt id, sqlite3_stmt *st);
/* Run the cached statement id for sql to its end (BEGIN, COMMIT, a PRAGMA): 0, or -1 (sqlite3_errmsg says why). */
int mc_store_int_exec(struct mc_store *s, enum mc_store_stmt id, const char *sql);
/* Finalize the cached statements not in use (an idle session, closing). */
void mc_store_int_stmt_release(struct mc_store *s);

/* A new unique file base "<when>.M<usec>P<pid>Q<n>.<host>" (when < 0: now); when is what reindex reads back as the internal date. */
void mc_store_int_unique(char *out, size_t outsz, int64_t when);
/*
 * A message file written in pieces into dir/tmp/ (APPEND, as its literal
 * arrives): CRLF turned into LF, the sizes counted and the MIME structure
 * parsed as the bytes pass, in one buffer of fixed size whatever the
 * message's length. when names the file (what reindex reads back as the
 * internal date; < 0: now). held: the file is created only when that
 * buffer is first written out, so a message shorter than
 * MC_STORE_TMP_HELD is created, written and synced all at its commit.
 * NULL with err.
 */
#define MC_STORE_TMP_HELD (64 * 1024)
struct mc_store_tmp;
struct mc_store_cache;
struct mc_store_tmp *mc_store_int_tmp_open(const char *dir, int64_t when, bool held, char *err, size_t errsz);
/* The next bytes of the message. -1 with errno (the file is kept until commit or abort). */
int mc_store_int_tmp_write(struct mc_store_tmp *t, const void *p, size_t n);
/*
 * The last bytes out, the mtime set (mtime > 0), fsync, rename into
 * dir/new/BASE, or straight into dir/cur/BASE<info> when info (":2,FLAGS")
 * is given: one rename, and the inode written once. Fills base
 * ("UNIQUE,S=..,W=.."), file ("new/BASE" or "cur/BASE:2,.."), the sizes
 * and cache (zeroed when none could be built; free it with
 * mc_store_cache_free). Frees t. -1 with err, the tmp file removed.
 */
int mc_store_int_tmp_commit(struct mc_store_tmp *t, const char *info, int64_t mtime, char *base, size_t basesz,
			    char *file, size_t filesz, uint64_t *size, uint64_t *vsize, struct mc_store_cache *cache,
			    char *err, size_t errsz);
/* Remove the tmp file and free t; NULL is a no-op. */
void mc_store_int_tmp_abort(struct mc_store_tmp *t);

/* One file of a Maildir's new/ or cur/ as mc_store_int_scan_maildir lists it. */
struct mc_store_ent {
	char name[MC_MAILDIR_FILE_MAX + 1];
	char sub[4];                        /* "new" or "cur" */
	struct mc_maildir_name p;
};
/* The files of new/ and cur/ of one mailbox directory, sorted by arrival, in one array (free it). -1 with errno. */
int mc_store_int_scan_maildir(const char *dir, struct mc_store_ent **out, size_t *nout);
/*
 * Open path: its stat into *sb; and its size with CRLF line ends into
 * *vsize unless vsize is NULL (for a file whose name does not say it:
 * the whole file is read). -1 with errno.
 */
int mc_store_int_measure_file(const char *path, struct stat *sb, uint64_t *vsize);

/*
 * After a reboot (the kernel's boot id is not the one the index recorded),
 * give a row to each Maildir file that lost its row to a power loss
 * (mailstore_reconcile.c); just_built: the index was just made from the
 * files, only record the boot. Called by mc_store_open. -1 with err.
 */
int mc_store_int_reconcile(struct mc_store *s, bool just_built, char *err, size_t errsz);

#endif
