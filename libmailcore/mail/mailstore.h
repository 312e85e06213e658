/*
 * mailstore.h - one user's mail store: Maildir++ files plus an SQLite index.
 *
 * Layout under the user's directory (state_dir/mail/DOMAIN/LOCAL):
 *
 *   cur/ new/ tmp/            INBOX
 *   .Sent/{cur,new,tmp}       folder "Sent" (a "maildirfolder" file inside);
 *   .Lists.pg/...             folder "Lists.pg" ('.' separates levels)
 *   index.sqlite              mailboxes, UIDs, flags, MODSEQ, sizes, cache
 *
 * The Maildir files are the truth; the index is what makes IMAP and POP3
 * fast and what gives messages their UIDs. A message file is named the
 * Dovecot way: "<time>.M<usec>P<pid>Q<n>.<host>,S=<size>,W=<vsize>" in
 * new/, with ":2,<flags>" appended once it moves to cur/. Files hold LF
 * line ends; vsize (and the index's vsize) counts them as CRLF, which is
 * what POP3 sizes and IMAP RFC822.SIZE report.
 *
 * Who calls it: queued's delivery workers (mc_store_files_write/_index), imapd
 * and pop3d, `postern mailbox reindex`. Each struct mc_store owns one
 * SQLite connection and must be used by one thread at a time; different
 * store objects (in threads or processes) may work on the same user at
 * once: UIDs are assigned inside one IMMEDIATE transaction. Never holds a
 * lock across calls, never deletes a message file it did not just write
 * (expunging is the IMAP/POP3 servers' decision).
 */
#ifndef MC_MAILSTORE_H
#define MC_MAILSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* PRAGMA user_version of index.sqlite that this code writes and reads. */
/* 2: the message cache columns (mailstore_cache.c); 3: mailboxes.recent_uid; 4: the index expunged_modseq */
#define MC_STORE_SCHEMA_VERSION 4
#define MC_STORE_SCHEMA_VERSION_STR "4"
#define MC_STORE_INDEX_NAME "index.sqlite"
#define MC_MAILBOX_NAME_MAX 255
#define MC_MAILDIR_FILE_MAX 255

/* mc_store_open flags. */
enum {
	MC_STORE_CREATE = 1u << 0,   /* create the user's directory and Maildir when missing */
};

/* IMAP system flags, as the index's flags bitmask (\Recent is per session: see mc_store_recent). */
enum mc_store_flag {
	MC_FLAG_SEEN = 1u << 0,      /* Maildir 'S' */
	MC_FLAG_ANSWERED = 1u << 1,  /* 'R' */
	MC_FLAG_FLAGGED = 1u << 2,   /* 'F' */
	MC_FLAG_DELETED = 1u << 3,   /* 'T' */
	MC_FLAG_DRAFT = 1u << 4,     /* 'D' */
	MC_FLAG_FORWARDED = 1u << 5, /* 'P' ($Forwarded) */
};

struct mc_store;

struct mc_store_mailbox {
	int64_t id;
	char name[MC_MAILBOX_NAME_MAX + 1];   /* "INBOX", "Sent", "Lists.pg" */
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	uint32_t messages;
	bool subscribed;
	char special_use[32];                 /* "\\Sent", "" */
	uint32_t recent_uid;                  /* UIDs up to here are no longer \Recent (mc_store_recent) */
};

/* One message as the index knows it; strings valid during the callback only. */
struct mc_store_msg {
	uint32_t uid;
	const char *file;        /* relative to the mailbox directory: "new/..." or "cur/...:2,S" */
	uint64_t size;           /* bytes on disk (LF line ends) */
	uint64_t vsize;          /* RFC822.SIZE: bytes with CRLF line ends */
	int64_t internal_date;   /* unix time */
	uint32_t flags;          /* enum mc_store_flag */
	const char *keywords;    /* space-separated IMAP keywords, "" when none */
	uint64_t modseq;
};

/* One message to deliver: prefix (headers to add), then length bytes of fd from offset. */
struct mc_store_item {
	const char *prefix;
	size_t prefixlen;
	int fd;
	uint64_t offset;
	uint64_t length;
	/* results */
	uint32_t uid;            /* 0 when this item failed */
	char err[160];           /* why it failed, "" when delivered */
};

struct mc_store_reindex_stats {
	unsigned mailboxes;
	unsigned kept;           /* messages whose UID was kept */
	unsigned added;          /* files that got a new UID */
	unsigned removed;        /* index rows without a file */
	bool uidvalidity_changed;
};

/* A Maildir file name taken apart (mc_maildir_name_parse). */
struct mc_maildir_name {
	size_t baselen;          /* the unique part: everything before ":2," (or the whole name) */
	int64_t time;            /* leading seconds; -1 when the name does not start with digits */
	uint32_t usec;           /* from ".M<usec>", 0 when absent */
	bool has_size, has_vsize;
	uint64_t size, vsize;    /* ",S=" and ",W=" */
	bool has_info;           /* ":2," present */
	uint32_t flags;          /* enum mc_store_flag from the info letters */
};

/*
 * Open the store at path (the user's directory). The index is checked
 * (PRAGMA quick_check, schema version); a missing, unreadable or corrupt
 * index is rebuilt from the Maildir files, keeping what can be read of the
 * old one. NULL with err on failure.
 */
struct mc_store *mc_store_open(const char *path, unsigned flags, char *err, size_t errsz);
/* Close the connection and free the store; NULL is a no-op. */
void mc_store_close(struct mc_store *s);
/*
 * For a process that keeps thousands of stores open at once (imapd: one per
 * logged-in session), call before the first store is opened: each SQLite
 * connection then starts without its bulk page-cache block (20 pages) and
 * with a small lookaside, instead of about 200 KiB of the process's memory.
 * 0, or -1 when SQLite was already initialised (nothing changed).
 */
int mc_store_lean_memory(void);
/* Give back the connection's cached pages and spare memory (a session going idle). */
void mc_store_release_memory(struct mc_store *s);
/*
 * Close the index connection of a store nobody uses for a while (imapd: all
 * of a user's sessions in IDLE), keeping the store: its descriptors (index,
 * -wal, -shm) and memory (the -shm mapping, 32 KiB; the connection, ~40
 * KiB) go. Nothing else may be called on it but mc_store_resume,
 * mc_store_suspended, mc_store_path and mc_store_close. 0, or -1 when a
 * statement or transaction is open (nothing done).
 */
int mc_store_suspend(struct mc_store *s);
/* Open the index connection again (no check: it was checked at open). 0, or -1 with err (still suspended). */
int mc_store_resume(struct mc_store *s, char *err, size_t errsz);
bool mc_store_suspended(const struct mc_store *s);
const char *mc_store_path(const struct mc_store *s);

/*
 * Deliver items into mailbox (NULL: INBOX): for each, write tmp/<unique>
 * with CRLF turned into LF, fsync, rename into new/; fsync new/ once; then
 * one IMMEDIATE transaction gives every written item its UID. Returns the
 * number of items delivered (item->uid set), -1 with err when nothing could
 * be done (unknown mailbox, index failure); per-item reasons in item->err.
 * A file whose index row could not be written is removed again, so a
 * failed item is never half-delivered.
 */
int mc_store_deliver_many(struct mc_store *s, const char *mailbox, struct mc_store_item *items, size_t n, char *err,
			  size_t errsz);
/* One message: the prefix, then length bytes of fd from offset. 0 and *uid, or -1 with err. */
int mc_store_deliver(struct mc_store *s, const char *mailbox, const char *prefix, size_t prefixlen, int fd,
		     uint64_t offset, uint64_t length, uint32_t *uid, char *err, size_t errsz);

/*
 * mc_store_deliver_many in two phases, for a caller that writes the files
 * of one mailbox on several threads at once (queued: a new file's fsync is
 * what a delivery waits for, and the disk does many of them side by side).
 *
 * mc_store_files_write: thread-safe, touches no store object and no index:
 * writes items into the mailbox's tmp/, fsyncs each file and renames it
 * into new/ (store_path: the user's directory, as given to mc_store_open,
 * which must have made the Maildir). Returns the batch (NULL: out of
 * memory, every item's err set); items must stay alive until the batch is
 * indexed. Failed items have item->err set and are left out.
 *
 * mc_store_files_index: one thread at a time per store (it uses s): fsyncs
 * each batch's new/ once (once for batches of the same mailbox), then one
 * IMMEDIATE transaction gives every written item of every batch its UID.
 * A file whose row could not be written is removed again, as in
 * mc_store_deliver_many. Returns the number of items delivered, -1 with
 * err when the index failed (nothing of these batches delivered).
 *
 * mc_store_files_free: after indexing, or instead of it: then the written
 * files are removed (never indexed, they must not be found later) and
 * their items' err says why (NULL: "not indexed").
 */
struct mc_store_files;
struct mc_store_files *mc_store_files_write(const char *store_path, const char *mailbox, struct mc_store_item *items,
					    size_t n);
int mc_store_files_index(struct mc_store *s, struct mc_store_files *const *batches, size_t nb, char *err,
			 size_t errsz);
void mc_store_files_free(struct mc_store_files *f, const char *why);

/* Is name acceptable as a mailbox name (no '/', no empty level, no leading '.', printable)? */
bool mc_store_mailbox_name_ok(const char *name);
/* Create folder name (Maildir++ ".name/" with cur/new/tmp and maildirfolder); special_use may be NULL. */
int mc_store_mailbox_create(struct mc_store *s, const char *name, const char *special_use, char *err,
			    size_t errsz);
/* Look up a mailbox ("INBOX" is case-insensitive). 0, or -1 when it does not exist. */
int mc_store_mailbox_get(struct mc_store *s, const char *name, struct mc_store_mailbox *mb);
/*
 * As mc_store_mailbox_get, without counting the messages (mb->messages is
 * 0): the count walks an index entry per message (milliseconds at 100,000),
 * too much for a caller that asks at every command or wake-up whether
 * anything changed (imapd's view sync). 0, or -1 when it does not exist.
 */
int mc_store_mailbox_head(struct mc_store *s, const char *name, struct mc_store_mailbox *mb);
/*
 * \Recent (RFC 3501 §2.3.2): the index keeps, per mailbox, the highest
 * UID some session has already been told of read-write; messages above it
 * are recent to the next session that selects the mailbox. With claim
 * (SELECT, and new mail seen by a read-write session) the mark moves up
 * to upto in one transaction, so of two sessions only one sees a message
 * recent; without (EXAMINE) it is only read. *prev gets the mark as it
 * was: UIDs in (prev, upto] are this session's recent ones. 0,
 * MC_STORE_ENOMAILBOX (-2) or -1.
 */
int mc_store_recent(struct mc_store *s, const char *mailbox, uint32_t upto, bool claim, uint32_t *prev);
/* Every mailbox, INBOX first, then by name. cb returns non-zero to stop. -1 on an index error. */
int mc_store_mailbox_list(struct mc_store *s, int (*cb)(void *arg, const struct mc_store_mailbox *mb), void *arg);
/* The directory holding mailbox's cur/new/tmp into out; -1 if it does not fit or the name is bad. */
int mc_store_mailbox_dir(const struct mc_store *s, const char *name, char *out, size_t outsz);

/* Messages of mailbox with uid >= uid_from, in UID order. cb returns non-zero to stop. -1 on error. */
int mc_store_messages(struct mc_store *s, const char *mailbox, uint32_t uid_from,
		      int (*cb)(void *arg, const struct mc_store_msg *msg), void *arg);

/*
 * Bring the index in line with the Maildir files: files without a row get
 * new UIDs (above UIDNEXT, in arrival order), rows without a file go,
 * renamed files (new/ to cur/, flag changes) are followed. UIDs of known
 * files are kept. Runs in one transaction. -1 with err on failure.
 */
int mc_store_reindex(struct mc_store *s, struct mc_store_reindex_stats *st, char *err, size_t errsz);

/*
 * Remove the files a crash left in the mailboxes' tmp/ directories: those
 * not changed for max_age seconds (Maildir's 36 hours: MC_STORE_TMP_STALE).
 * Runs once per open of s (later calls return 0) and looks at no more than
 * max_entries directory entries in all (*bounded, may be NULL, says the
 * bound stopped it). The count removed, or -1 when the index cannot list
 * the mailboxes.
 */
#define MC_STORE_TMP_STALE (36 * 3600)
int mc_store_tmp_sweep(struct mc_store *s, int64_t max_age, unsigned max_entries, bool *bounded);

/* Take a Maildir file name apart. -1 when it is not one (empty, too long, starts with '.', has '/'). */
int mc_maildir_name_parse(const char *name, struct mc_maildir_name *out);

/*
 * The message cache (mailstore_cache.c): what imapd needs to answer
 * FETCH ENVELOPE/BODYSTRUCTURE/BODY, BODY[section] seeks, SEARCH on
 * headers and SORT/THREAD without opening the message file. Parsed once
 * by the streaming MIME parser: at delivery (mc_store_deliver_many, while
 * the file is written), by mc_store_reindex for files without a cache,
 * and on demand (mc_store_cache_fill after APPEND or COPY, or by
 * mc_store_msg_cache itself when a row has none). Columns of the messages
 * table, schema version 2.
 */
#define MC_STORE_CACHE_VERSION 1   /* bump when the parser's answers change: older rows are refilled */

struct mc_store_cache {
	char *envelope;        /* ENVELOPE, IMAP syntax (may hold literals) */
	char *bodystructure;   /* BODYSTRUCTURE, extensible form */
	char *body;            /* BODY, non-extensible */
	void *parts;           /* the part-offset table: mc_mime_section_find (mime.h) */
	size_t partslen;
	bool has_date;
	int64_t date;          /* Date: header as UTC seconds (SENTBEFORE/SENTON/SENTSINCE, SORT DATE) */
	int date_tz;           /* its zone, minutes east */
	char *subject;         /* decoded to UTF-8 (RFC 2047), unfolded; "" when absent */
	char *from, *to, *cc, *bcc;            /* the header text decoded, for SEARCH FROM/TO/CC/BCC */
	char *from_sort, *to_sort, *cc_sort;   /* RFC 5256: addr-mailbox of the first address, "" if none */
	char *message_id, *in_reply_to, *references;   /* raw, unfolded; "" when absent (THREAD) */
};

/*
 * The cache of message uid in mailbox into *out (free with
 * mc_store_cache_free). A row without a cache (or with one from an older
 * parser) is filled from its file first. 0; -2 when there is no such
 * mailbox or message; -1 with err on an index or file error.
 */
int mc_store_msg_cache(struct mc_store *s, const char *mailbox, uint32_t uid, struct mc_store_cache *out, char *err,
		       size_t errsz);
/*
 * The caches of mailbox's messages with uid_from <= uid <= uid_to, in UID
 * order, in one query (FETCH 1:* ENVELOPE, SEARCH, SORT over a mailbox).
 * Rows without a current cache are filled from their files first; c is
 * NULL for a message whose file could not be read. The strings are valid
 * during the callback only; cb returns non-zero to stop. 0, -2 no such
 * mailbox, -1 with err.
 */
int mc_store_cache_each(struct mc_store *s, const char *mailbox, uint32_t uid_from, uint32_t uid_to,
			int (*cb)(void *arg, uint32_t uid, const struct mc_store_cache *c), void *arg, char *err,
			size_t errsz);
/* Parse message uid's file and store its cache (imapd after APPEND and COPY). 0, -2 no such message, -1 with err. */
int mc_store_cache_fill(struct mc_store *s, const char *mailbox, uint32_t uid, char *err, size_t errsz);
/* Parse length bytes of fd from offset (a stored file: LF line ends) into *out. 0, or -1 with errno. */
int mc_store_cache_parse_fd(int fd, uint64_t offset, uint64_t length, struct mc_store_cache *out);
/* Free what a cache holds; the struct itself is the caller's. NULL is a no-op. */
void mc_store_cache_free(struct mc_store_cache *c);

/*
 * The POP3 maildrop lock (RFC 1939 §8: one session per maildrop) and
 * expunging, shared by pop3d and imapd. MC_STORE_LOCK_NAME in the user's
 * directory is flock(2)ed, never written:
 *   - a POP3 session holds it exclusive from login to the end of its
 *     UPDATE state (message numbers must not change under it); a second
 *     POP3 login finds it taken and answers [IN-USE];
 *   - an IMAP session takes it shared around each expunge (EXPUNGE,
 *     CLOSE, UID EXPUNGE, MOVE) and, finding it taken, leaves the
 *     messages \Deleted for a later expunge instead of removing them.
 * Delivery and flag changes do not take it (POP3 sees new mail at its next
 * login; a renamed file is found again by UID).
 */
#define MC_STORE_LOCK_NAME "pop3.lock"
/*
 * Take the lock without waiting: a descriptor to keep (release with
 * mc_store_unlock), or -1 with errno EWOULDBLOCK when another session
 * holds it (another errno: the file cannot be opened).
 */
int mc_store_lock(const struct mc_store *s, bool exclusive);
void mc_store_unlock(int fd);

/*
 * Expunge uids[0..n) of mailbox (NULL: INBOX) in one IMMEDIATE
 * transaction: each message's file is removed (wherever it moved to),
 * its row deleted and its UID recorded in the expunged table with a new
 * MODSEQ (so IMAP sessions and QRESYNC see it go); HIGHESTMODSEQ rises.
 * UIDs no longer in the index are skipped; a file that cannot be removed
 * keeps its row (logged). The caller holds the lock above. Returns the
 * number expunged, or -1 with err (nothing changed in the index).
 */
int mc_store_expunge(struct mc_store *s, const char *mailbox, const uint32_t *uids, size_t n, char *err,
		     size_t errsz);

#endif
