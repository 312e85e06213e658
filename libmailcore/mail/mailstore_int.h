/*
 * mailstore_int.h - the mail store's private parts, shared by the files
 * that implement it (mailstore.c: open, delivery, reindex; mailstore_ops.c:
 * what IMAP and POP3 do to stored mail). Nothing outside libmailcore/mail/
 * mailstore*.c includes this: everyone else uses mailstore.h.
 */
#ifndef MC_MAILSTORE_INT_H
#define MC_MAILSTORE_INT_H

#include <sqlite3.h>

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
};

#endif
