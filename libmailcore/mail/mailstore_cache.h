/*
 * mailstore_cache.h - the message cache's private side, for mailstore.c
 * (schema, delivery, reindex). Everyone else uses mailstore.h.
 */
#ifndef MC_MAILSTORE_CACHE_H
#define MC_MAILSTORE_CACHE_H

#include <sqlite3.h>
#include <stdint.h>

#include "mail/mailstore.h"
#include "mail/mime.h"

/* The cache columns of messages, in the order mc_store_int_cache_bind binds them. */
#define MC_STORE_CACHE_COLS \
	"envelope, bodystructure, body, parts, cache_ver, date_hdr, date_tz, subject, from_text, to_text, cc_text," \
	" bcc_text, from_sort, to_sort, cc_sort, message_id, in_reply_to, refs"
#define MC_STORE_CACHE_PARAMS "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
#define MC_STORE_CACHE_NCOLS 18

/* The column definitions (CREATE TABLE messages) and the migration of a version 1 index. */
#define MC_STORE_CACHE_COLDEFS \
	" body TEXT, parts BLOB, cache_ver INTEGER, date_hdr INTEGER, date_tz INTEGER, subject TEXT," \
	" from_text TEXT, to_text TEXT, cc_text TEXT, bcc_text TEXT, from_sort TEXT, to_sort TEXT, cc_sort TEXT," \
	" message_id TEXT, in_reply_to TEXT, refs TEXT,"
extern const char mc_store_cache_migrate_sql[];

/* Build a cache from a parsed message. 0, or -1 when out of memory. */
int mc_store_int_cache_build(const struct mc_mime_part *root, struct mc_store_cache *out);
/* Bind a cache (NULL: all NULL, no cache) to st's parameters first..first+MC_STORE_CACHE_NCOLS-1. */
void mc_store_int_cache_bind(sqlite3_stmt *st, int first, const struct mc_store_cache *c);
/* Parse the file at path and store its cache in row (mailbox_id, uid). 0, or -1. */
int mc_store_int_cache_file(sqlite3 *db, const char *path, int64_t mailbox_id, uint32_t uid);

#endif
