/*
 * mailstore_int.h - the mail store's private parts, shared by the files
 * that implement it (mailstore.c: open, delivery, reindex; mailstore_ops.c:
 * what IMAP and POP3 do to stored mail). Nothing outside libmailcore/mail/
 * mailstore*.c includes this: everyone else uses mailstore.h.
 */
#ifndef MC_MAILSTORE_INT_H
#define MC_MAILSTORE_INT_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_PATH_MAX 1024
#define DIR_MODE 02770
#define FILE_MODE 0660

struct mc_store {
	char path[STORE_PATH_MAX];
	char index[STORE_PATH_MAX + 32];
	sqlite3 *db;
	sqlite3_stmt *st_mbox;     /* hot path of delivery */
	sqlite3_stmt *st_insert;
	sqlite3_stmt *st_exists;
	sqlite3_stmt *st_bump;
	uint64_t quota_bytes, quota_messages;   /* mc_store_set_quota (mailstore_ops.c); 0 = none */
};

/* A new unique file base "<when>.M<usec>P<pid>Q<n>.<host>" (when < 0: now); when is what reindex reads back as the internal date. */
void mc_store_int_unique(char *out, size_t outsz, int64_t when);
/*
 * What delivery does for one item, for APPEND: prefix + fd range with CRLF
 * turned into LF into dir/tmp/, fsync, rename into dir/new/BASE. Fills base
 * ("UNIQUE,S=..,W=..") and file ("new/BASE"); -1 with it->err, nothing left behind.
 */
struct mc_store_item;
int mc_store_int_write(const char *dir, struct mc_store_item *it, int64_t when, char *base, size_t basesz, char *file,
		       size_t filesz, uint64_t *size, uint64_t *vsize);

#endif
