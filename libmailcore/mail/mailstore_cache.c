/*
 * mailstore_cache.c - the message cache in index.sqlite (see mailstore.h,
 * "The message cache").
 *
 * Called by mailstore.c (delivery: mc_store_int_cache_build on the tree
 * the parser made while the file was written; reindex:
 * mc_store_int_cache_file) and by imapd (mc_store_msg_cache,
 * mc_store_cache_fill). Owns nothing between calls. Reads a message file
 * only to fill a missing cache, in COPY_BUF pieces, never whole; never
 * changes anything but the cache columns of one row.
 */
#include "mail/mailstore_cache.h"
#include "mail/date.h"
#include "mail/header.h"
#include "mail/imapstruct.h"
#include "mail/mailstore_int.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_BUF (64 * 1024)
#define STRUCT_MAX (16u << 20)   /* an ENVELOPE/BODYSTRUCTURE longer than this is not cached */
#define TEXT_MAX (256u << 10)    /* decoded header text kept for SEARCH */

const char mc_store_cache_migrate_sql[] =
	"ALTER TABLE messages ADD COLUMN body TEXT;"
	"ALTER TABLE messages ADD COLUMN parts BLOB;"
	"ALTER TABLE messages ADD COLUMN cache_ver INTEGER;"
	"ALTER TABLE messages ADD COLUMN date_hdr INTEGER;"
	"ALTER TABLE messages ADD COLUMN date_tz INTEGER;"
	"ALTER TABLE messages ADD COLUMN subject TEXT;"
	"ALTER TABLE messages ADD COLUMN from_text TEXT;"
	"ALTER TABLE messages ADD COLUMN to_text TEXT;"
	"ALTER TABLE messages ADD COLUMN cc_text TEXT;"
	"ALTER TABLE messages ADD COLUMN bcc_text TEXT;"
	"ALTER TABLE messages ADD COLUMN from_sort TEXT;"
	"ALTER TABLE messages ADD COLUMN to_sort TEXT;"
	"ALTER TABLE messages ADD COLUMN cc_sort TEXT;"
	"ALTER TABLE messages ADD COLUMN message_id TEXT;"
	"ALTER TABLE messages ADD COLUMN in_reply_to TEXT;"
	"ALTER TABLE messages ADD COLUMN refs TEXT;";

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

void
mc_store_cache_free(struct mc_store_cache *c)
{
	if (c == NULL)
		return;
	char **strs[] = { &c->envelope, &c->bodystructure, &c->body, &c->subject, &c->from, &c->to, &c->cc, &c->bcc,
			  &c->from_sort, &c->to_sort, &c->cc_sort, &c->message_id, &c->in_reply_to, &c->references };
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		free(*strs[i]);
		*strs[i] = NULL;
	}
	free(c->parts);
	c->parts = NULL;
	c->partslen = 0;
}

/* Take a buffer's bytes as a string (an empty buffer gives ""). */
static char *
take(struct mc_buf *b)
{
	char *s = b->data ? b->data : strdup("");
	b->data = NULL;
	b->len = b->cap = 0;
	return s;
}

static char *
decoded(const char *raw)
{
	struct mc_buf b;
	mc_buf_init(&b, TEXT_MAX);
	if (raw)
		mc_header_decode(raw, strlen(raw), &b);
	return take(&b);
}

static char *
unfolded(const char *raw)
{
	if (raw == NULL)
		return strdup("");
	size_t n = strlen(raw);
	char *s = malloc(n + 1);
	if (s)
		s[mc_header_unfold(raw, n, s)] = '\0';
	return s;
}

/* RFC 5256 SORT FROM/TO/CC: the addr-mailbox of the first address ("" if none). */
static char *
first_mailbox(const char *raw)
{
	struct mc_address *a = raw ? mc_address_parse(raw, strlen(raw)) : NULL;
	const struct mc_address *x = a;
	while (x && x->domain == NULL)   /* group markers */
		x = x->next;
	char *s = strdup(x && x->mailbox && strcmp(x->mailbox, "MISSING_MAILBOX") != 0 ? x->mailbox : "");
	mc_address_free(a);
	return s;
}

int
mc_store_int_cache_build(const struct mc_mime_part *root, struct mc_store_cache *out)
{
	memset(out, 0, sizeof(*out));
	struct mc_buf b;
	mc_buf_init(&b, STRUCT_MAX);
	if (mc_imap_envelope(root, &b) == 0)
		out->envelope = take(&b);
	mc_buf_reset(&b);
	if (mc_imap_bodystructure(root, true, &b) == 0)
		out->bodystructure = take(&b);
	mc_buf_reset(&b);
	if (mc_imap_bodystructure(root, false, &b) == 0)
		out->body = take(&b);
	mc_buf_reset(&b);
	if (mc_mime_table_write(root, &b) == 0) {
		out->partslen = b.len;
		out->parts = take(&b);
	}
	mc_buf_free(&b);
	const char *date = root->hdr[MC_HDR_DATE];
	out->has_date = date && mc_date_parse_rfc5322(date, strlen(date), &out->date, &out->date_tz) == 0;
	out->subject = decoded(root->hdr[MC_HDR_SUBJECT]);
	out->from = decoded(root->hdr[MC_HDR_FROM]);
	out->to = decoded(root->hdr[MC_HDR_TO]);
	out->cc = decoded(root->hdr[MC_HDR_CC]);
	out->bcc = decoded(root->hdr[MC_HDR_BCC]);
	out->from_sort = first_mailbox(root->hdr[MC_HDR_FROM]);
	out->to_sort = first_mailbox(root->hdr[MC_HDR_TO]);
	out->cc_sort = first_mailbox(root->hdr[MC_HDR_CC]);
	out->message_id = unfolded(root->hdr[MC_HDR_MESSAGE_ID]);
	out->in_reply_to = unfolded(root->hdr[MC_HDR_IN_REPLY_TO]);
	out->references = unfolded(root->hdr[MC_HDR_REFERENCES]);
	if (!out->envelope || !out->bodystructure || !out->body || !out->parts || !out->subject || !out->from ||
	    !out->to || !out->cc || !out->bcc || !out->from_sort || !out->to_sort || !out->cc_sort ||
	    !out->message_id || !out->in_reply_to || !out->references) {
		mc_store_cache_free(out);
		return -1;
	}
	return 0;
}

void
mc_store_int_cache_bind(sqlite3_stmt *st, int i, const struct mc_store_cache *c)
{
	if (c == NULL) {
		for (int k = 0; k < MC_STORE_CACHE_NCOLS; k++)
			sqlite3_bind_null(st, i + k);
		return;
	}
	sqlite3_bind_text(st, i++, c->envelope, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, c->bodystructure, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, c->body, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, i++, c->parts, (int)c->partslen, SQLITE_STATIC);
	sqlite3_bind_int(st, i++, MC_STORE_CACHE_VERSION);
	if (c->has_date) {
		sqlite3_bind_int64(st, i++, c->date);
		sqlite3_bind_int(st, i++, c->date_tz);
	} else {
		sqlite3_bind_null(st, i++);
		sqlite3_bind_null(st, i++);
	}
	const char *txt[] = { c->subject, c->from, c->to, c->cc, c->bcc, c->from_sort, c->to_sort, c->cc_sort,
			      c->message_id, c->in_reply_to, c->references };
	for (size_t k = 0; k < sizeof(txt) / sizeof(txt[0]); k++)
		sqlite3_bind_text(st, i++, txt[k], -1, SQLITE_STATIC);
}

int
mc_store_cache_parse_fd(int fd, uint64_t offset, uint64_t length, struct mc_store_cache *out)
{
	memset(out, 0, sizeof(*out));
	struct mc_mime_parser *p = mc_mime_parser_new();
	char *buf = malloc(READ_BUF);
	int r = -1;
	if (p == NULL || buf == NULL) {
		errno = ENOMEM;
		goto out;
	}
	while (length > 0) {
		ssize_t k = pread(fd, buf, length < READ_BUF ? (size_t)length : READ_BUF, (off_t)offset);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			goto out;
		if (k == 0)
			break;   /* shorter than said: describe what is there */
		if (mc_mime_parser_feed(p, buf, (size_t)k) < 0) {
			errno = ENOMEM;
			goto out;
		}
		offset += (uint64_t)k;
		length -= (uint64_t)k;
	}
	if (mc_store_int_cache_build(mc_mime_parser_finish(p), out) < 0) {
		errno = ENOMEM;
		goto out;
	}
	r = 0;
out:
	free(buf);
	mc_mime_parser_free(p);
	return r;
}

static int
store_row(sqlite3 *db, int64_t mailbox_id, uint32_t uid, const struct mc_store_cache *c)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "UPDATE messages SET (" MC_STORE_CACHE_COLS ") = (" MC_STORE_CACHE_PARAMS ")"
			       " WHERE mailbox = ? AND uid = ?",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	mc_store_int_cache_bind(st, 1, c);
	sqlite3_bind_int64(st, MC_STORE_CACHE_NCOLS + 1, mailbox_id);
	sqlite3_bind_int64(st, MC_STORE_CACHE_NCOLS + 2, uid);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
mc_store_int_cache_file(sqlite3 *db, const char *path, int64_t mailbox_id, uint32_t uid)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat sb;
	struct mc_store_cache c;
	int r = -1;
	if (fstat(fd, &sb) == 0 && mc_store_cache_parse_fd(fd, 0, (uint64_t)sb.st_size, &c) == 0) {
		/*
		 * The cache is made again from the file whenever it is missing, so
		 * its commit need not wait for the disk: one fdatasync less per
		 * APPEND and per message filled before a SEARCH, on imapd's only
		 * thread. Inside a caller's transaction the pragma fails and
		 * changes nothing (the caller's commit decides).
		 */
		bool relax = sqlite3_get_autocommit(db) != 0;
		if (relax)
			sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
		r = store_row(db, mailbox_id, uid, &c);
		if (relax)
			sqlite3_exec(db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
		mc_store_cache_free(&c);
	}
	close(fd);
	return r;
}

/* The row's mailbox id, directory and file; -2 when there is no such mailbox or message. */
static int
locate(struct mc_store *s, const char *mailbox, uint32_t uid, int64_t *id, char *path, size_t pathsz, int *ver,
       char *err, size_t errsz)
{
	char dir[STORE_PATH_MAX + MC_MAILBOX_NAME_MAX + 8];
	if (mailbox == NULL || strcasecmp(mailbox, "INBOX") == 0)
		mailbox = "INBOX";
	if (mc_store_mailbox_dir(s, mailbox, dir, sizeof(dir)) < 0)
		return -2;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
			       "SELECT m.mailbox, m.file, m.cache_ver FROM messages m JOIN mailboxes b ON b.id = m.mailbox"
			       " WHERE b.name = ? AND m.uid = ?",
			       -1, &st, NULL) != SQLITE_OK) {
		set_err(err, errsz, "%s: %s", s->index, sqlite3_errmsg(s->db));
		return -1;
	}
	sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, uid);
	int rc = sqlite3_step(st), r = -2;
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		snprintf(path, pathsz, "%s/%s", dir, (const char *)sqlite3_column_text(st, 1));
		*ver = sqlite3_column_type(st, 2) == SQLITE_NULL ? 0 : sqlite3_column_int(st, 2);
		r = 0;
	} else if (rc != SQLITE_DONE) {
		set_err(err, errsz, "%s: %s", s->index, sqlite3_errmsg(s->db));
		r = -1;
	}
	sqlite3_finalize(st);
	return r;
}

int
mc_store_cache_fill(struct mc_store *s, const char *mailbox, uint32_t uid, char *err, size_t errsz)
{
	int64_t id;
	int ver;
	char path[STORE_PATH_MAX + MC_MAILBOX_NAME_MAX + MC_MAILDIR_FILE_MAX + 32];
	int r = locate(s, mailbox, uid, &id, path, sizeof(path), &ver, err, errsz);
	if (r != 0)
		return r;
	if (mc_store_int_cache_file(s->db, path, id, uid) < 0) {
		set_err(err, errsz, "cache of %s: %s", path, errno ? strerror(errno) : sqlite3_errmsg(s->db));
		return -1;
	}
	return 0;
}

static char *
col_str(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	int n = sqlite3_column_bytes(st, i);
	char *s = malloc((size_t)n + 1);
	if (s) {
		if (n)
			memcpy(s, t, (size_t)n);
		s[n] = '\0';
	}
	return s;
}

/* The cache columns of the current row, from column i on, copied into out. */
static bool
read_row(sqlite3_stmt *st, int i, struct mc_store_cache *out)
{
	out->envelope = col_str(st, i++);
	out->bodystructure = col_str(st, i++);
	out->body = col_str(st, i++);
	out->partslen = (size_t)sqlite3_column_bytes(st, i);
	out->parts = malloc(out->partslen ? out->partslen : 1);
	if (out->parts && out->partslen)
		memcpy(out->parts, sqlite3_column_blob(st, i), out->partslen);
	i += 2;   /* parts, cache_ver */
	out->has_date = sqlite3_column_type(st, i) != SQLITE_NULL;
	out->date = sqlite3_column_int64(st, i++);
	out->date_tz = sqlite3_column_int(st, i++);
	char **txt[] = { &out->subject, &out->from, &out->to, &out->cc, &out->bcc, &out->from_sort, &out->to_sort,
			 &out->cc_sort, &out->message_id, &out->in_reply_to, &out->references };
	bool ok = out->envelope && out->bodystructure && out->body && out->parts;
	for (size_t k = 0; k < sizeof(txt) / sizeof(txt[0]); k++)
		ok &= (*txt[k] = col_str(st, i++)) != NULL;
	return ok;
}

int
mc_store_msg_cache(struct mc_store *s, const char *mailbox, uint32_t uid, struct mc_store_cache *out, char *err,
		   size_t errsz)
{
	memset(out, 0, sizeof(*out));
	int64_t id;
	int ver;
	char path[STORE_PATH_MAX + MC_MAILBOX_NAME_MAX + MC_MAILDIR_FILE_MAX + 32];
	int r = locate(s, mailbox, uid, &id, path, sizeof(path), &ver, err, errsz);
	if (r != 0)
		return r;
	if (ver != MC_STORE_CACHE_VERSION) {
		/*
		 * No cache yet (APPEND, COPY, an index from before the cache) or one
		 * from an older parser: parse now and keep it. The store may be
		 * read-only to this process or the index busy: then answer from
		 * the parse without storing.
		 */
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		struct stat sb;
		if (fd < 0 || fstat(fd, &sb) < 0 || mc_store_cache_parse_fd(fd, 0, (uint64_t)sb.st_size, out) < 0) {
			set_err(err, errsz, "%s: %s", path, strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		close(fd);
		store_row(s->db, id, uid, out);
		return 0;
	}
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "SELECT " MC_STORE_CACHE_COLS " FROM messages WHERE mailbox = ? AND uid = ?", -1,
			       &st, NULL) != SQLITE_OK) {
		set_err(err, errsz, "%s: %s", s->index, sqlite3_errmsg(s->db));
		return -1;
	}
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, uid);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return -2;   /* expunged meanwhile */
	}
	bool ok = read_row(st, 0, out);
	sqlite3_finalize(st);
	if (!ok) {
		mc_store_cache_free(out);
		set_err(err, errsz, "out of memory");
		return -1;
	}
	return 0;
}

int
mc_store_cache_each(struct mc_store *s, const char *mailbox, uint32_t uid_from, uint32_t uid_to,
		    int (*cb)(void *arg, uint32_t uid, const struct mc_store_cache *c), void *arg, char *err, size_t errsz)
{
	char dir[STORE_PATH_MAX + MC_MAILBOX_NAME_MAX + 8];
	if (mailbox == NULL || strcasecmp(mailbox, "INBOX") == 0)
		mailbox = "INBOX";
	if (mc_store_mailbox_dir(s, mailbox, dir, sizeof(dir)) < 0)
		return -2;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "SELECT id FROM mailboxes WHERE name = ?", -1, &st, NULL) != SQLITE_OK) {
		set_err(err, errsz, "%s: %s", s->index, sqlite3_errmsg(s->db));
		return -1;
	}
	sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_finalize(st);
	if (id < 0)
		return rc == SQLITE_DONE ? -2 : -1;

	/* First the rows that need a cache (an old index, APPEND, COPY): parse their files, outside the read. */
	if (sqlite3_prepare_v2(s->db,
			       "SELECT uid, file FROM messages WHERE mailbox = ? AND uid BETWEEN ? AND ?"
			       " AND (cache_ver IS NULL OR cache_ver <> ?)",
			       -1, &st, NULL) != SQLITE_OK) {
		set_err(err, errsz, "%s: %s", s->index, sqlite3_errmsg(s->db));
		return -1;
	}
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, uid_from);
	sqlite3_bind_int64(st, 3, uid_to);
	sqlite3_bind_int(st, 4, MC_STORE_CACHE_VERSION);
	struct todo {
		uint32_t uid;
		char file[MC_MAILDIR_FILE_MAX + 8];
	} *todo = NULL;
	size_t ntodo = 0, cap = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (ntodo == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct todo *nt = realloc(todo, nc * sizeof(*nt));
			if (nt == NULL)
				break;
			todo = nt;
			cap = nc;
		}
		todo[ntodo].uid = (uint32_t)sqlite3_column_int64(st, 0);
		snprintf(todo[ntodo].file, sizeof(todo[ntodo].file), "%s", (const char *)sqlite3_column_text(st, 1));
		ntodo++;
	}
	sqlite3_finalize(st);
	char path[sizeof(dir) + MC_MAILDIR_FILE_MAX + 16];
	for (size_t i = 0; i < ntodo; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, todo[i].file);
		if (mc_store_int_cache_file(s->db, path, id, todo[i].uid) < 0)
			mc_warn("store %s: no cache for %s: %s", dir, todo[i].file, strerror(errno));
	}
	free(todo);

	if (sqlite3_prepare_v2(s->db,
			       "SELECT uid, " MC_STORE_CACHE_COLS " FROM messages WHERE mailbox = ? AND uid BETWEEN ? AND ?"
			       " ORDER BY uid",
			       -1, &st, NULL) != SQLITE_OK) {
		set_err(err, errsz, "%s: %s", s->index, sqlite3_errmsg(s->db));
		return -1;
	}
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, uid_from);
	sqlite3_bind_int64(st, 3, uid_to);
	int r = 0;
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_int(st, 5) != MC_STORE_CACHE_VERSION) {
			/* its file could not be read just now: the caller says so for this message */
			if (cb(arg, (uint32_t)sqlite3_column_int64(st, 0), NULL) != 0)
				r = 1;
			continue;
		}
		struct mc_store_cache c;
		memset(&c, 0, sizeof(c));
		if (!read_row(st, 1, &c)) {
			mc_store_cache_free(&c);
			set_err(err, errsz, "out of memory");
			r = -1;
			break;
		}
		if (cb(arg, (uint32_t)sqlite3_column_int64(st, 0), &c) != 0)
			r = 1;
		mc_store_cache_free(&c);
	}
	if (r == 0 && rc != SQLITE_DONE) {
		set_err(err, errsz, "%s: %s", s->index, sqlite3_errmsg(s->db));
		r = -1;
	}
	sqlite3_finalize(st);
	return r < 0 ? -1 : 0;
}
