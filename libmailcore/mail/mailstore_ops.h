/*
 * mailstore_ops.h - what IMAP (and POP3) do to stored mail: flags and
 * keywords with MODSEQ (CONDSTORE), COPY/MOVE with new UIDs (UIDPLUS),
 * APPEND, EXPUNGE, mailbox DELETE/RENAME, subscriptions, STATUS figures,
 * "what changed since MODSEQ" (QRESYNC and other sessions' changes) and
 * QUOTA figures. The store itself (open, delivery, reindex) is mailstore.h.
 *
 * Conventions, for the IMAP colleague wiring these into commands:
 *  - Mailboxes are named as in the index ("INBOX", "Sent", "Lists.pg":
 *    '.' separates levels, already decoded from modified UTF-7).
 *  - UID arrays need not be sorted; UIDs that do not exist are skipped.
 *  - EXPUNGE itself is mc_store_expunge in mailstore.h (shared with pop3d).
 *  - Every operation is one IMMEDIATE transaction on the user's index; the
 *    Maildir files are renamed/linked/unlinked inside it, so two sessions
 *    (or imapd and pop3d) never interleave on one user.
 *  - Errors: -1 is a server-side failure (err says why: answer NO
 *    [SERVERBUG] or NO with err); the MC_STORE_E* values below map to RFC
 *    5530 response codes, named next to each.
 *  - Maildir flags: a file whose flags changed lives in cur/ as
 *    BASE:2,<letters> with the letters D F P R S T in ASCII order (Draft,
 *    Flagged, $Forwarded, Answered/Replied, Seen, Deleted/Trashed).
 *    Keywords live only in the index (a lost index loses keywords, never
 *    system flags); Dovecot's dovecot-keywords letters are not written.
 *  - MODSEQ: one operation gives every message it changes the same new
 *    MODSEQ (highestmodseq + 1), which RFC 7162 allows.
 */
#ifndef MC_MAILSTORE_OPS_H
#define MC_MAILSTORE_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/mailstore.h"

enum mc_store_error {
	MC_STORE_ENOMAILBOX = -2,   /* [TRYCREATE] (COPY/APPEND/MOVE target) or [NONEXISTENT] */
	MC_STORE_EEXISTS = -3,      /* [ALREADYEXISTS] */
	MC_STORE_ECANNOT = -4,      /* [CANNOT]: DELETE INBOX, RENAME onto itself or into its own child */
	MC_STORE_ETOOBIG = -5,      /* [TOOBIG]: APPENDLIMIT */
	MC_STORE_EOVERQUOTA = -6,   /* [OVERQUOTA] */
	MC_STORE_EBADNAME = -7,     /* [CANNOT] or BAD: a name the store refuses */
	MC_STORE_ELIMIT = -8,       /* [LIMIT]: too many keywords on a message, keyword too long */
};

/* Highest keywords per message, and longest keyword (longer ones are refused). */
#define MC_STORE_KEYWORDS_MAX 64
#define MC_STORE_KEYWORD_LEN 100

/* ---- flags and keywords (STORE, UID STORE) ---- */

enum mc_store_flag_op {
	MC_FLAGOP_SET,       /* FLAGS */
	MC_FLAGOP_ADD,       /* +FLAGS */
	MC_FLAGOP_REMOVE,    /* -FLAGS */
};

struct mc_store_flag_change {
	enum mc_store_flag_op op;
	uint32_t flags;            /* enum mc_store_flag */
	const char *keywords;      /* space-separated keywords (compared case-insensitively); NULL = none */
	uint64_t unchangedsince;   /* CONDSTORE UNCHANGEDSINCE; 0 = no condition, unless conditional */
	bool conditional;          /* UNCHANGEDSINCE was given, even as 0 (which every message fails, RFC 7162 3.1.3) */
};

/* What happened to one message of the set (the cb's result argument). */
enum mc_store_flag_result {
	MC_FLAGS_CHANGED,      /* now has a new MODSEQ */
	MC_FLAGS_UNCHANGED,    /* already as asked: nothing written */
	MC_FLAGS_MODIFIED,     /* its MODSEQ was above UNCHANGEDSINCE: not changed, goes into [MODIFIED ...] */
};

/* Is kw a keyword the store accepts (an IMAP atom, not "\..."; at most MC_STORE_KEYWORD_LEN)? */
bool mc_store_keyword_ok(const char *kw);

/*
 * Change flags/keywords of uids in mailbox. After the commit, cb (may be
 * NULL) sees every existing UID of the set in UID order with its state
 * now (msg->flags, ->keywords, ->modseq; ->file is the current file) and
 * what happened to it: the untagged FETCH responses (all of them without
 * .SILENT; with .SILENT only the changed ones' MODSEQ under CONDSTORE).
 * *modseq (may be NULL) gets the new MODSEQ, or 0 when nothing changed.
 * Returns the number of messages changed, or -1 / MC_STORE_E*.
 */
int mc_store_flags_change(struct mc_store *s, const char *mailbox, const uint32_t *uids, size_t n,
			  const struct mc_store_flag_change *ch, uint64_t *modseq,
			  int (*cb)(void *arg, const struct mc_store_msg *msg, enum mc_store_flag_result r), void *arg,
			  char *err, size_t errsz);

/* ---- COPY, MOVE (RFC 6851), APPEND, EXPUNGE ---- */

/*
 * Copy (hard links where possible, else a copy) or move (rename) the
 * messages uids of from into to, keeping flags, keywords and internal
 * dates; to's directory is fsynced, and every new row is written in one
 * transaction. On return src_uids[i]/dst_uids[i] (each n long, either may
 * be NULL) hold the pairs for COPYUID, in source UID order, and the return
 * value says how many pairs there are; *uidvalidity (may be NULL) gets
 * to's UIDVALIDITY. A move also expunges the sources (recorded for
 * VANISHED at a new MODSEQ of from): the caller holds the POP3 maildrop
 * lock shared for a move, as for an expunge (NO [INUSE] when it cannot).
 * Target missing: MC_STORE_ENOMAILBOX ([TRYCREATE]); the copy would pass
 * the quota: MC_STORE_EOVERQUOTA.
 */
int mc_store_copy(struct mc_store *s, const char *from, const uint32_t *uids, size_t n, const char *to, bool move,
		  uint32_t *src_uids, uint32_t *dst_uids, uint32_t *uidvalidity, char *err, size_t errsz);

struct mc_store_append {
	int fd;                    /* the message: length bytes of fd from offset (CRLF or LF line ends) */
	uint64_t offset, length;
	uint32_t flags;            /* enum mc_store_flag */
	const char *keywords;      /* space-separated, NULL = none */
	int64_t internal_date;     /* unix time; <= 0: now */
	bool claim_recent;         /* the appending session has the mailbox selected read-write */
	bool open_later;           /* _begin creates no tmp/ file: held or mc_store_append_open's (below) */
	/* results */
	uint32_t uid, uidvalidity; /* APPENDUID */
	uint64_t modseq;           /* the message's MODSEQ, the mailbox's HIGHESTMODSEQ after the commit */
	bool recent;               /* claim_recent, and the message is \Recent to that session */
};

/*
 * APPEND one message: written as delivery writes (tmp/, fsync, rename),
 * then into cur/ with its flags and its row in one transaction. limit
 * (0 = none) is the APPENDLIMIT: a longer message is MC_STORE_ETOOBIG
 * without reading it. The quota set with mc_store_set_quota applies
 * (MC_STORE_EOVERQUOTA). Target missing: MC_STORE_ENOMAILBOX.
 * (mc_store_append_begin/_write/_end below, fed from the descriptor.)
 */
int mc_store_append(struct mc_store *s, const char *mailbox, struct mc_store_append *a, uint64_t limit, char *err,
		    size_t errsz);

/*
 * APPEND streamed: the message arrives in pieces (an IMAP literal) and
 * goes straight into the mailbox's tmp/, so memory stays one fixed buffer
 * whatever its size; its MIME structure is parsed as it passes and cached
 * with its row. begin decides from what is announced, before a byte is
 * read: a->length against limit (MC_STORE_ETOOBIG), a->flags and
 * a->keywords (MC_STORE_ELIMIT), the mailbox (MC_STORE_ENOMAILBOX), the
 * quota (MC_STORE_EOVERQUOTA); a->internal_date names the file. a->fd is
 * not used. On 0, *out is the append in progress: feed it exactly
 * a->length bytes with _write, then _end (fsync, rename, index: a->uid,
 * a->uidvalidity), or _abort (the tmp/ file goes, nothing is indexed).
 * Either frees *out. A failed _write (-1 with errno) removes the file at
 * once; _end then fails and says why. From begin until *out is freed its
 * length and one message are reserved against the quota: a second APPEND
 * begun meanwhile is checked as if this one were stored already.
 */
struct mc_store_appending;
int mc_store_append_begin(struct mc_store *s, const char *mailbox, const struct mc_store_append *a, uint64_t limit,
			  struct mc_store_appending **out, char *err, size_t errsz);
/*
 * With a->open_later, _begin only decides and reserves. A message shorter
 * than MC_STORE_TMP_HELD (mailstore_int.h: 64 KiB) is then held in the
 * append's buffer as it is written, and its tmp/ file created by _file
 * (or _end) together with its write and fsync: creating a file can take
 * long (ext4 without a journal scans past every recently freed inode of
 * the group), and _file runs off the caller's loop. A longer one needs
 * its file before the first _write (mc_store_append_needs_open): _open
 * creates it, on any thread (it touches ap only), so off the loop too.
 * -1 with err: _write then fails and _end says why. _open of a held
 * message does nothing.
 */
bool mc_store_append_needs_open(const struct mc_store_appending *ap);
int mc_store_append_open(struct mc_store_appending *ap, char *err, size_t errsz);
int mc_store_append_write(struct mc_store_appending *ap, const void *p, size_t n);
int mc_store_append_end(struct mc_store *s, struct mc_store_appending *ap, struct mc_store_append *a, char *err,
			size_t errsz);
void mc_store_append_abort(struct mc_store_appending *ap);
/*
 * _end in its two steps, for a caller that runs the slow one off its loop
 * (imapd: libuv's thread pool). _file is thread-safe and touches no store
 * object: the last bytes out, fsync, rename into new/ (cur/ with the
 * flags), the mtime set to the internal date, the directory fsynced. -1
 * with err (the file removed); either way ap is still the caller's, to
 * give to _index (or _abort: a filed message's file is then removed, so
 * no file is left without its row). _index, on the store's thread: the
 * row and its COMMIT (a->uid, a->uidvalidity), or -1/MC_STORE_ENOMAILBOX
 * with err and the file removed; it frees ap. Durability order: file
 * fsynced, renamed, directory fsynced, row committed. _index may run on
 * another thread than the store's other calls (imapd: the pool) as long
 * as nothing else uses s meanwhile; _abort of another append of s may
 * run at the same time (the quota reservation is atomic).
 */
int mc_store_append_file(struct mc_store_appending *ap, char *err, size_t errsz);
int mc_store_append_index(struct mc_store *s, struct mc_store_appending *ap, struct mc_store_append *a, char *err,
			  size_t errsz);

/*
 * EXPUNGE, CLOSE and UID EXPUNGE: the UIDs of mailbox that carry \Deleted
 * (among uids, or all when uids is NULL), sorted, into *out (malloc'd,
 * free it) and *nout; then mc_store_expunge (mailstore.h, shared with
 * pop3d) under the POP3 maildrop lock taken shared (mc_store_lock): when
 * POP3 holds it, answer NO [INUSE] and leave the messages \Deleted. 0,
 * MC_STORE_ENOMAILBOX or -1.
 */
int mc_store_deleted_uids(struct mc_store *s, const char *mailbox, const uint32_t *uids, size_t n, uint32_t **out,
			  size_t *nout);

/* ---- mailboxes: DELETE, RENAME, subscriptions, STATUS ---- */

/*
 * DELETE name (RFC 3501 6.3.4): its messages and directory go. INBOX is
 * MC_STORE_ECANNOT. A mailbox with children loses its messages and its
 * own row, and lives on only as the \Noselect parent of its children
 * (LIST shows it because children exist). Unknown: MC_STORE_ENOMAILBOX.
 */
int mc_store_mailbox_delete(struct mc_store *s, const char *name, char *err, size_t errsz);

/*
 * RENAME from to (RFC 3501 6.3.5): the mailbox and all its children
 * (from.*) are renamed, keeping UIDVALIDITY and UIDs. RENAME INBOX
 * creates to, moves every INBOX message into it (UIDs kept, to gets a new
 * UIDVALIDITY) and leaves INBOX empty; INBOX's children are not moved
 * (the caller holds the POP3 maildrop lock shared, as for an expunge).
 * to exists: MC_STORE_EEXISTS; from missing: MC_STORE_ENOMAILBOX; to is
 * INBOX or inside from: MC_STORE_ECANNOT.
 */
int mc_store_mailbox_rename(struct mc_store *s, const char *from, const char *to, char *err, size_t errsz);

/* SUBSCRIBE/UNSUBSCRIBE: any valid name, existing or not (RFC 3501 6.3.6). 0 or -1. */
int mc_store_subscribe(struct mc_store *s, const char *name, bool on, char *err, size_t errsz);
/* Every subscribed name, sorted. cb returns non-zero to stop. -1 on an index error. */
int mc_store_subscriptions(struct mc_store *s, int (*cb)(void *arg, const char *name), void *arg);

struct mc_store_status {
	uint32_t messages;
	uint32_t unseen;          /* without \Seen */
	uint32_t deleted;         /* with \Deleted */
	uint32_t uidnext, uidvalidity;
	uint64_t size;            /* STATUS SIZE (RFC 8438): sum of RFC822.SIZE */
	uint64_t highestmodseq;
	uint32_t recent;          /* above the mailbox's \Recent mark (mc_store_recent): no session was told of them */
};

/* STATUS figures from the index (two queries, no file opened). MC_STORE_ENOMAILBOX or -1. */
int mc_store_status(struct mc_store *s, const char *mailbox, struct mc_store_status *st);

/* ---- changes since a MODSEQ (CONDSTORE/QRESYNC, other sessions' changes) ---- */

/*
 * Messages of mailbox whose MODSEQ is above since, in UID order (new
 * arrivals too: their UID is at or above the session's UIDNEXT), then the
 * UIDs expunged above since (expunged_cb may be NULL). Either cb returns
 * non-zero to stop. MC_STORE_ENOMAILBOX or -1.
 */
int mc_store_changes_since(struct mc_store *s, const char *mailbox, uint64_t since,
			   int (*changed_cb)(void *arg, const struct mc_store_msg *msg),
			   int (*expunged_cb)(void *arg, uint32_t uid, uint64_t modseq), void *arg);

/* ---- SEARCH, SORT and THREAD: rows with their cached header fields ---- */

/* One message with what the cache (mailstore.h, struct mc_store_cache) keeps for SEARCH/SORT/THREAD. */
struct mc_store_search_row {
	struct mc_store_msg msg;
	bool cached;              /* false: the row has no cache (yet); the strings are NULL */
	const char *subject, *from, *to, *cc, *bcc;           /* decoded UTF-8 */
	const char *from_sort, *to_sort, *cc_sort;            /* RFC 5256 addr-mailbox */
	const char *message_id, *in_reply_to, *references;    /* raw, unfolded */
	bool has_date;
	int64_t date;             /* Date: as UTC seconds */
	int date_tz;              /* its zone, minutes east */
};

/*
 * Fill the cache of every message of mailbox that has none (APPEND and
 * COPY leave it to be filled later), so one walk of
 * mc_store_search_rows sees every row's fields. 0, or -1 with err.
 */
int mc_store_search_prepare(struct mc_store *s, const char *mailbox, char *err, size_t errsz);

/*
 * Every message of mailbox with uid >= uid_from in UID order, with its
 * cached fields, in one query (strings valid during the callback). cb
 * returns non-zero to stop. MC_STORE_ENOMAILBOX or -1.
 */
int mc_store_search_rows(struct mc_store *s, const char *mailbox, uint32_t uid_from,
			 int (*cb)(void *arg, const struct mc_store_search_row *row), void *arg);

/* ---- quota (RFC 9208) ---- */

/* The user's limits (from the directory at login): bytes and messages, 0 = none. Checked by APPEND and COPY. */
void mc_store_set_quota(struct mc_store *s, uint64_t bytes, uint64_t messages);
struct mc_store_quota {
	uint64_t bytes, bytes_limit;       /* STORAGE is bytes / 1024, rounded up */
	uint64_t messages, messages_limit;
};
/* Usage over every mailbox of the user (one query) and the limits set. -1 on error. */
int mc_store_quota(struct mc_store *s, struct mc_store_quota *q);

/* ---- reading a message ---- */

/*
 * Open a message file read-only (FETCH, SEARCH BODY). Follows a file that
 * another process renamed since the row was read (flags changed: the base
 * name stays). fd, or -1 with errno (ENOENT: expunged meanwhile). *size
 * (may be NULL) gets the size on disk.
 */
int mc_store_msg_open(struct mc_store *s, const char *mailbox, uint32_t uid, uint64_t *size);

#endif
