/*
 * test_mailstore_ops.c - what IMAP does to stored mail, checked on a
 * store in a temporary directory: flags land in the Maildir names and in
 * the index with a new MODSEQ (and UNCHANGEDSINCE holds back what changed
 * meanwhile), COPY links and MOVE renames with new UIDs, APPEND with
 * flags, keywords and date (and its limits), which UIDs EXPUNGE takes,
 * DELETE and RENAME with children and INBOX's rules, subscriptions that
 * persist, STATUS and QUOTA figures, changes since a MODSEQ, two
 * store objects on one user at once, the quota reserved by APPENDs in
 * flight (indexed on another thread) and the sweep of stale tmp/ files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mail/mailstore.h"
#include "mail/mailstore_ops.h"

static const char body[] = "Subject: hello\r\nFrom: a@example.org\r\n\r\nline one\r\nline two\r\n";

#include "store_fx.h"

static int
setup(void **state)
{
	return store_fx_setup(state, "test_mailstore_ops", "", body);
}

static uint32_t
deliver(struct mc_store *s, struct fx *f, const char *mailbox)
{
	char err[256] = "";
	uint32_t uid = 0;
	if (mc_store_deliver(s, mailbox, NULL, 0, f->src, 0, strlen(body), &uid, err, sizeof(err)) < 0)
		fail_msg("deliver: %s", err);
	return uid;
}

struct seen {
	size_t n;
	uint32_t uid[64];
	uint32_t flags[64];
	uint64_t modseq[64];
	char kw[64][128];
	char file[64][300];
	int result[64];
};

static int
seen_msg(void *arg, const struct mc_store_msg *m)
{
	struct seen *c = arg;
	if (c->n < 64) {
		c->uid[c->n] = m->uid;
		c->flags[c->n] = m->flags;
		c->modseq[c->n] = m->modseq;
		snprintf(c->kw[c->n], sizeof(c->kw[0]), "%s", m->keywords);
		snprintf(c->file[c->n], sizeof(c->file[0]), "%s", m->file);
	}
	c->n++;
	return 0;
}

static int
seen_change(void *arg, const struct mc_store_msg *m, enum mc_store_flag_result r)
{
	struct seen *c = arg;
	if (c->n < 64)
		c->result[c->n] = (int)r;
	return seen_msg(arg, m);
}

static void
list(struct mc_store *s, const char *mailbox, struct seen *c)
{
	memset(c, 0, sizeof(*c));
	assert_int_equal(mc_store_messages(s, mailbox, 1, seen_msg, c), 0);
}

static bool
exists(struct fx *f, const char *rel)
{
	char p[800];
	struct stat sb;
	snprintf(p, sizeof(p), "%s/%s", f->store, rel);
	return stat(p, &sb) == 0;
}

static size_t
count_files(struct fx *f, const char *sub)
{
	char p[800];
	snprintf(p, sizeof(p), "%s/%s", f->store, sub);
	DIR *d = opendir(p);
	if (d == NULL)
		return 0;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static nlink_t
links(struct fx *f, const char *dir, const char *rel)
{
	char p[800];
	struct stat sb;
	snprintf(p, sizeof(p), "%s/%s%s", f->store, dir, rel);
	return stat(p, &sb) == 0 ? sb.st_nlink : 0;
}

static void
test_flags(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	for (int i = 0; i < 3; i++)
		deliver(s, f, NULL);
	struct mc_store_mailbox mb;
	assert_int_equal(mc_store_mailbox_get(s, "INBOX", &mb), 0);
	uint64_t before = mb.highestmodseq;

	char err[256] = "";
	uint32_t set12[] = { 2, 1, 99 };
	struct mc_store_flag_change ch = { .op = MC_FLAGOP_ADD, .flags = MC_FLAG_SEEN | MC_FLAG_FLAGGED,
					   .keywords = "$Junk Work" };
	struct seen c = { 0 };
	uint64_t ms = 0;
	assert_int_equal(mc_store_flags_change(s, "INBOX", set12, 3, &ch, &ms, seen_change, &c, err, sizeof(err)), 2);
	assert_int_equal(ms, before + 1);
	assert_int_equal(c.n, 2);    /* UID 99 does not exist */
	assert_int_equal(c.uid[0], 1);
	assert_int_equal(c.result[0], MC_FLAGS_CHANGED);
	assert_string_equal(c.kw[0], "$Junk Work");
	assert_non_null(strstr(c.file[0], ":2,FS"));
	assert_true(exists(f, c.file[0]));

	/* the same again: nothing changes, no new MODSEQ */
	memset(&c, 0, sizeof(c));
	ch.keywords = "work";
	assert_int_equal(mc_store_flags_change(s, "INBOX", set12, 2, &ch, &ms, seen_change, &c, err, sizeof(err)), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(c.result[1], MC_FLAGS_UNCHANGED);

	/* remove one keyword (case-insensitively) and \Flagged */
	ch = (struct mc_store_flag_change){ .op = MC_FLAGOP_REMOVE, .flags = MC_FLAG_FLAGGED, .keywords = "WORK" };
	memset(&c, 0, sizeof(c));
	uint32_t one[] = { 1 };
	assert_int_equal(mc_store_flags_change(s, "INBOX", one, 1, &ch, &ms, seen_change, &c, err, sizeof(err)), 1);
	assert_string_equal(c.kw[0], "$Junk");
	assert_int_equal(c.flags[0], MC_FLAG_SEEN);
	assert_non_null(strstr(c.file[0], ":2,S"));

	/* UNCHANGEDSINCE: UID 2 changed at before+1, UID 3 never: 2 fails, 3 changes */
	uint32_t set23[] = { 2, 3 };
	ch = (struct mc_store_flag_change){ .op = MC_FLAGOP_SET, .flags = MC_FLAG_DELETED, .unchangedsince = before };
	memset(&c, 0, sizeof(c));
	assert_int_equal(mc_store_flags_change(s, "INBOX", set23, 2, &ch, NULL, seen_change, &c, err, sizeof(err)), 1);
	assert_int_equal(c.result[0], MC_FLAGS_MODIFIED);
	assert_int_equal(c.flags[0], MC_FLAG_SEEN | MC_FLAG_FLAGGED);
	assert_int_equal(c.result[1], MC_FLAGS_CHANGED);
	assert_int_equal(c.flags[1], MC_FLAG_DELETED);
	assert_string_equal(c.kw[1], "");

	/* UNCHANGEDSINCE 0 fails for every message */
	ch = (struct mc_store_flag_change){ .op = MC_FLAGOP_ADD, .flags = MC_FLAG_DRAFT, .conditional = true };
	memset(&c, 0, sizeof(c));
	assert_int_equal(mc_store_flags_change(s, "INBOX", set23, 2, &ch, NULL, seen_change, &c, err, sizeof(err)), 0);
	assert_int_equal(c.result[0], MC_FLAGS_MODIFIED);
	assert_int_equal(c.result[1], MC_FLAGS_MODIFIED);

	/* bad keywords are refused before anything changes */
	ch = (struct mc_store_flag_change){ .op = MC_FLAGOP_ADD, .keywords = "\\Seen" };
	assert_int_equal(mc_store_flags_change(s, "INBOX", set23, 2, &ch, NULL, NULL, NULL, err, sizeof(err)),
			 MC_STORE_ELIMIT);
	assert_false(mc_store_keyword_ok("a]b"));
	assert_true(mc_store_keyword_ok("$MDNSent"));

	/* the flags are in the file names: a reindex of a lost index keeps them */
	mc_store_close(s);
	char p[400];
	snprintf(p, sizeof(p), "%s/index.sqlite", f->store);
	unlink(p);
	s = open_store(f);
	list(s, "INBOX", &c);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.flags[0], MC_FLAG_SEEN);
	assert_int_equal(c.flags[1], MC_FLAG_SEEN | MC_FLAG_FLAGGED);
	assert_int_equal(c.flags[2], MC_FLAG_DELETED);
	mc_store_close(s);
}

static int
excb(void *arg, uint32_t uid, uint64_t modseq)
{
	struct seen *c = arg;
	if (c->n < 64) {
		c->uid[c->n] = uid;
		c->modseq[c->n] = modseq;
	}
	c->n++;
	return 0;
}

struct cached {
	size_t n, cached;
	char subject[64];
};

static int
cached_cb(void *arg, const struct mc_store_search_row *r)
{
	struct cached *c = arg;
	c->n++;
	if (r->cached) {
		c->cached++;
		snprintf(c->subject, sizeof(c->subject), "%s", r->subject ? r->subject : "(null)");
	}
	return 0;
}

static void
test_copy_move(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	char err[256] = "";
	for (int i = 0; i < 3; i++)
		deliver(s, f, NULL);
	assert_int_equal(mc_store_mailbox_create(s, "Archive", NULL, err, sizeof(err)), 0);
	uint32_t one[] = { 1 };
	struct mc_store_flag_change ch = { .op = MC_FLAGOP_ADD, .flags = MC_FLAG_SEEN, .keywords = "Keep" };
	assert_int_equal(mc_store_flags_change(s, "INBOX", one, 1, &ch, NULL, NULL, NULL, err, sizeof(err)), 1);

	uint32_t uids[] = { 3, 1 }, su[2], du[2], uv = 0;
	assert_int_equal(mc_store_copy(s, "INBOX", uids, 2, "Archive", false, su, du, &uv, err, sizeof(err)), 2);
	struct mc_store_mailbox mb;
	assert_int_equal(mc_store_mailbox_get(s, "Archive", &mb), 0);
	assert_int_equal(uv, mb.uidvalidity);
	assert_int_equal(su[0], 1);
	assert_int_equal(du[0], 1);
	assert_int_equal(su[1], 3);
	assert_int_equal(du[1], 2);
	struct seen c;
	list(s, "Archive", &c);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.flags[0], MC_FLAG_SEEN);
	assert_string_equal(c.kw[0], "Keep");
	assert_int_equal(links(f, ".Archive/", c.file[0]), 2);   /* a hard link, not a second copy */
	list(s, "INBOX", &c);
	assert_int_equal(c.n, 3);

	/* the copies carry their source's message cache: SEARCH and FETCH ENVELOPE need no parse */
	struct cached c2 = { 0 };
	assert_int_equal(mc_store_search_rows(s, "Archive", 1, cached_cb, &c2), 0);
	assert_int_equal(c2.n, 2);
	assert_int_equal(c2.cached, 2);
	assert_string_equal(c2.subject, "hello");

	/* target missing: TRYCREATE */
	assert_int_equal(mc_store_copy(s, "INBOX", uids, 2, "Nope", false, NULL, NULL, NULL, err, sizeof(err)),
			 MC_STORE_ENOMAILBOX);

	/* MOVE: gone from INBOX, recorded as expunged, present in Archive */
	assert_int_equal(mc_store_mailbox_get(s, "INBOX", &mb), 0);
	uint64_t ms = mb.highestmodseq;
	uint32_t two[] = { 2 };
	assert_int_equal(mc_store_copy(s, "INBOX", two, 1, "Archive", true, su, du, NULL, err, sizeof(err)), 1);
	assert_int_equal(du[0], 3);
	list(s, "INBOX", &c);
	assert_int_equal(c.n, 2);
	list(s, "Archive", &c);
	assert_int_equal(c.n, 3);
	assert_true(exists(f, ".Archive/cur") && links(f, ".Archive/", c.file[2]) == 1);
	struct seen ch2 = { 0 }, ex = { 0 };
	assert_int_equal(mc_store_changes_since(s, "INBOX", ms, seen_msg, excb, &ex), 0);
	assert_int_equal(ex.n, 1);
	assert_int_equal(ex.uid[0], 2);
	assert_int_equal(ex.modseq[0], ms + 1);
	assert_int_equal(mc_store_changes_since(s, "Archive", 0, seen_msg, NULL, &ch2), 0);
	assert_int_equal(ch2.n, 3);
	mc_store_close(s);
}

static void
test_append(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	char err[256] = "";
	struct mc_store_append a = { .fd = f->src, .length = strlen(body), .flags = MC_FLAG_SEEN | MC_FLAG_DRAFT,
				     .keywords = "$Label1", .internal_date = 1000000000 };
	assert_int_equal(mc_store_append(s, "INBOX", &a, 0, err, sizeof(err)), 0);
	assert_int_equal(a.uid, 1);
	struct seen c;
	list(s, "INBOX", &c);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.flags[0], MC_FLAG_SEEN | MC_FLAG_DRAFT);
	assert_string_equal(c.kw[0], "$Label1");
	assert_non_null(strstr(c.file[0], "cur/1000000000."));
	assert_non_null(strstr(c.file[0], ":2,DS"));

	/* stored with LF line ends, read back through mc_store_msg_open */
	uint64_t size = 0;
	int fd = mc_store_msg_open(s, "INBOX", 1, &size);
	assert_true(fd >= 0);
	char buf[256] = "";
	assert_int_equal(read(fd, buf, sizeof(buf) - 1), (ssize_t)size);
	close(fd);
	assert_string_equal(buf, "Subject: hello\nFrom: a@example.org\n\nline one\nline two\n");
	/* APPEND filled the message cache */
	struct cached cc = { 0 };
	assert_int_equal(mc_store_search_rows(s, "INBOX", 1, cached_cb, &cc), 0);
	assert_int_equal(cc.cached, 1);
	assert_string_equal(cc.subject, "hello");
	assert_int_equal(mc_store_msg_open(s, "INBOX", 7, NULL), -1);

	/* APPENDLIMIT, unknown mailbox, quota */
	a.keywords = NULL;
	assert_int_equal(mc_store_append(s, "INBOX", &a, 10, err, sizeof(err)), MC_STORE_ETOOBIG);
	assert_int_equal(mc_store_append(s, "Nope", &a, 0, err, sizeof(err)), MC_STORE_ENOMAILBOX);
	struct mc_store_quota q;
	assert_int_equal(mc_store_quota(s, &q), 0);
	assert_int_equal(q.messages, 1);
	assert_int_equal(q.bytes, strlen(body));
	mc_store_set_quota(s, q.bytes + 10, 0);
	assert_int_equal(mc_store_append(s, "INBOX", &a, 0, err, sizeof(err)), MC_STORE_EOVERQUOTA);
	uint32_t one[] = { 1 };
	assert_int_equal(mc_store_copy(s, "INBOX", one, 1, "INBOX", false, NULL, NULL, NULL, err, sizeof(err)),
			 MC_STORE_EOVERQUOTA);
	mc_store_set_quota(s, 0, 0);
	a.flags = 0;
	assert_int_equal(mc_store_append(s, "INBOX", &a, 0, err, sizeof(err)), 0);
	assert_int_equal(a.uid, 2);
	list(s, "INBOX", &c);
	assert_non_null(strstr(c.file[1], "new/"));
	assert_int_equal(count_files(f, "tmp"), 0);   /* nothing left behind */
	mc_store_close(s);
}

/* APPEND streamed in pieces (an IMAP literal as it arrives): the same file, row and cache as in one go. */
static void
test_append_streamed(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	char err[256] = "";
	struct mc_store_appending *ap = NULL;
	struct mc_store_append a = { .fd = -1, .length = strlen(body), .flags = MC_FLAG_SEEN, .internal_date = 1000000000 };

	assert_int_equal(mc_store_append_begin(s, "INBOX", &a, 0, &ap, err, sizeof(err)), 0);
	assert_non_null(ap);
	assert_int_equal(count_files(f, "tmp"), 1);   /* written where delivery writes */
	for (size_t i = 0; i < a.length; i++)   /* a byte at a time: CR and LF arrive apart */
		assert_int_equal(mc_store_append_write(ap, body + i, 1), 0);
	assert_int_equal(mc_store_append_end(s, ap, &a, err, sizeof(err)), 0);
	assert_int_equal(a.uid, 1);
	assert_int_equal(count_files(f, "tmp"), 0);
	struct seen c;
	list(s, "INBOX", &c);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.flags[0], MC_FLAG_SEEN);
	uint64_t size = 0;
	int fd = mc_store_msg_open(s, "INBOX", 1, &size);
	char buf[256] = "";
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf) - 1), (ssize_t)size);
	close(fd);
	assert_string_equal(buf, "Subject: hello\nFrom: a@example.org\n\nline one\nline two\n");
	/* the cache was parsed from the stream and stored with the row, not filled afterwards */
	struct cached cc = { 0 };
	assert_int_equal(mc_store_search_rows(s, "INBOX", 1, cached_cb, &cc), 0);
	assert_int_equal(cc.cached, 1);
	assert_string_equal(cc.subject, "hello");
	struct mc_store_quota q;
	assert_int_equal(mc_store_quota(s, &q), 0);
	assert_int_equal(q.bytes, strlen(body));   /* vsize: CRLF counted as sent */

	/* Abandoned half-way (the client went away): the tmp/ file goes, nothing is indexed. */
	assert_int_equal(mc_store_append_begin(s, "INBOX", &a, 0, &ap, err, sizeof(err)), 0);
	assert_int_equal(mc_store_append_write(ap, body, 10), 0);
	assert_int_equal(count_files(f, "tmp"), 1);
	mc_store_append_abort(ap);
	mc_store_append_abort(NULL);
	assert_int_equal(count_files(f, "tmp"), 0);
	list(s, "INBOX", &c);
	assert_int_equal(c.n, 1);

	/* Refused from what is announced, before a file exists. */
	a.length = 100;
	assert_int_equal(mc_store_append_begin(s, "INBOX", &a, 99, &ap, err, sizeof(err)), MC_STORE_ETOOBIG);
	assert_null(ap);
	assert_int_equal(mc_store_append_begin(s, "Nope", &a, 0, &ap, err, sizeof(err)), MC_STORE_ENOMAILBOX);
	a.keywords = "\\Bad";
	assert_int_equal(mc_store_append_begin(s, "INBOX", &a, 0, &ap, err, sizeof(err)), MC_STORE_ELIMIT);
	a.keywords = NULL;
	mc_store_set_quota(s, strlen(body) + 99, 0);
	assert_int_equal(mc_store_append_begin(s, "INBOX", &a, 0, &ap, err, sizeof(err)), MC_STORE_EOVERQUOTA);
	assert_int_equal(count_files(f, "tmp"), 0);
	mc_store_close(s);
}

/* \Recent (RFC 3501 §2.3.2): the first read-write session to claim a message has it recent, no other does. */
static void
test_recent(void **state)
{
	struct fx *f = *state;
	struct mc_store *a = open_store(f), *b = open_store(f);
	uint32_t prev = 99;
	for (int i = 0; i < 3; i++)
		deliver(a, f, NULL);
	struct mc_store_status st;
	assert_int_equal(mc_store_status(a, "INBOX", &st), 0);
	assert_int_equal(st.recent, 3);
	/* EXAMINE only reads the mark: 1..3 are recent to it, and still to the next session */
	assert_int_equal(mc_store_recent(b, "INBOX", 3, false, &prev), 0);
	assert_int_equal(prev, 0);
	/* SELECT in a: it takes 1..3 */
	assert_int_equal(mc_store_recent(a, "inbox", 3, true, &prev), 0);
	assert_int_equal(prev, 0);
	assert_int_equal(mc_store_status(a, "INBOX", &st), 0);
	assert_int_equal(st.recent, 0);
	/* SELECT in b after it: nothing left for b */
	assert_int_equal(mc_store_recent(b, "INBOX", 3, true, &prev), 0);
	assert_int_equal(prev, 3);
	/* a new message: b, told first, takes 4; the mark never goes down */
	deliver(a, f, NULL);
	assert_int_equal(mc_store_status(b, "INBOX", &st), 0);
	assert_int_equal(st.recent, 1);
	assert_int_equal(mc_store_recent(b, "INBOX", 4, true, &prev), 0);
	assert_int_equal(prev, 3);
	assert_int_equal(mc_store_recent(a, "INBOX", 2, true, &prev), 0);
	assert_int_equal(prev, 4);
	assert_int_equal(mc_store_recent(a, "INBOX", 0, false, &prev), 0);
	assert_int_equal(prev, 4);
	assert_int_equal(mc_store_recent(a, "Nope", 1, true, &prev), MC_STORE_ENOMAILBOX);
	struct mc_store_mailbox mb;
	assert_int_equal(mc_store_mailbox_get(a, "INBOX", &mb), 0);
	assert_int_equal(mb.recent_uid, 4);
	mc_store_close(a);
	mc_store_close(b);
}

static void
test_expunge_status(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	char err[256] = "";
	for (int i = 0; i < 4; i++)
		deliver(s, f, NULL);
	uint32_t del[] = { 2, 3 }, seen1[] = { 1 };
	struct mc_store_flag_change ch = { .op = MC_FLAGOP_ADD, .flags = MC_FLAG_DELETED };
	assert_int_equal(mc_store_flags_change(s, "INBOX", del, 2, &ch, NULL, NULL, NULL, err, sizeof(err)), 2);
	ch.flags = MC_FLAG_SEEN;
	assert_int_equal(mc_store_flags_change(s, "INBOX", seen1, 1, &ch, NULL, NULL, NULL, err, sizeof(err)), 1);

	struct mc_store_status st;
	assert_int_equal(mc_store_status(s, "INBOX", &st), 0);
	assert_int_equal(st.messages, 4);
	assert_int_equal(st.unseen, 3);
	assert_int_equal(st.deleted, 2);
	assert_int_equal(st.uidnext, 5);
	assert_int_equal(st.size, 4 * strlen(body));
	assert_int_equal(mc_store_status(s, "Nope", &st), MC_STORE_ENOMAILBOX);

	/* UID EXPUNGE 1:3 expunges what carries \Deleted of it: 2 and 3, not 1 */
	uint32_t set[] = { 3, 1, 2 }, *out = NULL;
	size_t nout = 0;
	assert_int_equal(mc_store_deleted_uids(s, "INBOX", set, 3, &out, &nout), 0);
	assert_int_equal(nout, 2);
	assert_int_equal(out[0], 2);
	assert_int_equal(out[1], 3);
	free(out);
	assert_int_equal(mc_store_deleted_uids(s, "INBOX", NULL, 0, &out, &nout), 0);
	assert_int_equal(nout, 2);
	free(out);
	assert_int_equal(mc_store_deleted_uids(s, "Nope", NULL, 0, &out, &nout), MC_STORE_ENOMAILBOX);

	/* a POP3 session holds the maildrop: the IMAP expunge cannot take the lock (NO [INUSE]) */
	struct mc_store *pop = open_store(f);
	int pl = mc_store_lock(pop, true);
	assert_true(pl >= 0);
	assert_int_equal(mc_store_lock(s, false), -1);
	mc_store_unlock(pl);
	mc_store_close(pop);

	/* then the expunge: files gone, rows gone, UIDs recorded for VANISHED at a higher MODSEQ */
	assert_int_equal(mc_store_status(s, "INBOX", &st), 0);
	uint64_t before = st.highestmodseq;
	assert_int_equal(mc_store_deleted_uids(s, "INBOX", set, 3, &out, &nout), 0);
	int lk = mc_store_lock(s, false);
	assert_true(lk >= 0);
	assert_int_equal(mc_store_expunge(s, "INBOX", out, nout, err, sizeof(err)), 2);
	mc_store_unlock(lk);
	free(out);
	assert_int_equal(mc_store_status(s, "INBOX", &st), 0);
	assert_int_equal(st.messages, 2);
	assert_int_equal(st.deleted, 0);
	assert_true(st.highestmodseq > before);
	assert_int_equal(count_files(f, "cur") + count_files(f, "new"), 2);
	struct seen ex = { 0 };
	assert_int_equal(mc_store_changes_since(s, "INBOX", before, NULL, excb, &ex), 0);
	assert_int_equal(ex.n, 2);
	assert_int_equal(ex.uid[0], 2);
	assert_int_equal(ex.uid[1], 3);
	mc_store_close(s);
}

static void
test_delete_rename(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	char err[256] = "";
	assert_int_equal(mc_store_mailbox_create(s, "Work", NULL, err, sizeof(err)), 0);
	assert_int_equal(mc_store_mailbox_create(s, "Work.2024", NULL, err, sizeof(err)), 0);
	assert_int_equal(mc_store_mailbox_create(s, "Workers", NULL, err, sizeof(err)), 0);
	deliver(s, f, "Work");
	deliver(s, f, "Work.2024");
	struct mc_store_mailbox mb;
	assert_int_equal(mc_store_mailbox_get(s, "Work.2024", &mb), 0);
	uint32_t uv = mb.uidvalidity;

	assert_int_equal(mc_store_mailbox_delete(s, "INBOX", err, sizeof(err)), MC_STORE_ECANNOT);
	assert_int_equal(mc_store_mailbox_delete(s, "inbox", err, sizeof(err)), MC_STORE_ECANNOT);
	assert_int_equal(mc_store_mailbox_delete(s, "Nope", err, sizeof(err)), MC_STORE_ENOMAILBOX);

	/* RENAME with children; "Workers" only shares a prefix and stays */
	assert_int_equal(mc_store_mailbox_rename(s, "Work", "Job", err, sizeof(err)), 0);
	assert_int_equal(mc_store_mailbox_get(s, "Job.2024", &mb), 0);
	assert_int_equal(mb.uidvalidity, uv);
	assert_int_equal(mb.messages, 1);
	assert_int_equal(mc_store_mailbox_get(s, "Work", &mb), -1);
	assert_int_equal(mc_store_mailbox_get(s, "Workers", &mb), 0);
	assert_true(exists(f, ".Job.2024/cur"));
	assert_false(exists(f, ".Work"));
	assert_int_equal(mc_store_mailbox_rename(s, "Job", "Workers", err, sizeof(err)), MC_STORE_EEXISTS);
	assert_int_equal(mc_store_mailbox_rename(s, "Job", "Job.sub", err, sizeof(err)), MC_STORE_ECANNOT);
	assert_int_equal(mc_store_mailbox_rename(s, "Nope", "Nope2", err, sizeof(err)), MC_STORE_ENOMAILBOX);
	assert_int_equal(mc_store_mailbox_rename(s, "Job", "INBOX", err, sizeof(err)), MC_STORE_ECANNOT);

	/* DELETE of a parent: its messages and row go, the child stays */
	assert_int_equal(mc_store_mailbox_delete(s, "Job", err, sizeof(err)), 0);
	assert_int_equal(mc_store_mailbox_get(s, "Job", &mb), -1);
	assert_int_equal(mc_store_mailbox_get(s, "Job.2024", &mb), 0);
	assert_false(exists(f, ".Job"));
	assert_int_equal(count_files(f, "tmp"), 0);
	/* now Job is a \Noselect parent: deleting it again is refused */
	assert_int_equal(mc_store_mailbox_delete(s, "Job", err, sizeof(err)), MC_STORE_ECANNOT);

	/* the index survives a reopen with the renamed folders (reindex finds the same) */
	mc_store_close(s);
	s = open_store(f);
	struct mc_store_reindex_stats rs;
	assert_int_equal(mc_store_reindex(s, &rs, err, sizeof(err)), 0);
	assert_int_equal(rs.added, 0);
	assert_int_equal(rs.removed, 0);
	assert_int_equal(mc_store_mailbox_get(s, "Job.2024", &mb), 0);
	mc_store_close(s);
}

static void
test_rename_inbox(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	char err[256] = "";
	assert_int_equal(mc_store_mailbox_create(s, "INBOX.kid", NULL, err, sizeof(err)), 0);
	for (int i = 0; i < 3; i++)
		deliver(s, f, NULL);
	uint32_t one[] = { 2 };
	struct mc_store_flag_change ch = { .op = MC_FLAGOP_ADD, .flags = MC_FLAG_ANSWERED };
	assert_int_equal(mc_store_flags_change(s, "INBOX", one, 1, &ch, NULL, NULL, NULL, err, sizeof(err)), 1);
	struct mc_store_mailbox in, old;
	assert_int_equal(mc_store_mailbox_get(s, "INBOX", &in), 0);
	assert_int_equal(mc_store_mailbox_rename(s, "INBOX", "Old", err, sizeof(err)), 0);
	assert_int_equal(mc_store_mailbox_get(s, "Old", &old), 0);
	assert_int_equal(old.messages, 3);
	assert_true(old.uidvalidity != in.uidvalidity);
	assert_int_equal(old.uidnext, in.uidnext);
	struct seen c;
	list(s, "Old", &c);
	assert_int_equal(c.uid[1], 2);
	assert_int_equal(c.flags[1], MC_FLAG_ANSWERED);
	assert_true(exists(f, ".Old/cur") && count_files(f, ".Old/new") + count_files(f, ".Old/cur") == 3);
	/* INBOX is there, empty, same UIDVALIDITY, UIDs not reused */
	struct mc_store_mailbox now;
	assert_int_equal(mc_store_mailbox_get(s, "INBOX", &now), 0);
	assert_int_equal(now.messages, 0);
	assert_int_equal(now.uidvalidity, in.uidvalidity);
	assert_int_equal(deliver(s, f, NULL), 4);
	assert_int_equal(mc_store_mailbox_get(s, "INBOX.kid", &now), 0);
	assert_int_equal(mc_store_mailbox_rename(s, "INBOX", "Old", err, sizeof(err)), MC_STORE_EEXISTS);
	mc_store_close(s);
}

static int
sub_cb(void *arg, const char *name)
{
	char *out = arg;
	strcat(out, name);
	strcat(out, ";");
	return 0;
}

static void
test_subscribe(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	char err[256] = "", got[256] = "";
	assert_int_equal(mc_store_subscriptions(s, sub_cb, got), 0);
	assert_string_equal(got, "");
	assert_int_equal(mc_store_mailbox_create(s, "Sent", NULL, err, sizeof(err)), 0);
	assert_int_equal(mc_store_subscribe(s, "Sent", true, err, sizeof(err)), 0);
	assert_int_equal(mc_store_subscribe(s, "inbox", true, err, sizeof(err)), 0);
	assert_int_equal(mc_store_subscribe(s, "Later", true, err, sizeof(err)), 0);   /* need not exist */
	assert_int_equal(mc_store_subscribe(s, "Later", true, err, sizeof(err)), 0);
	assert_int_equal(mc_store_subscribe(s, "../x", true, err, sizeof(err)), MC_STORE_EBADNAME);
	struct mc_store_mailbox mb;
	assert_int_equal(mc_store_mailbox_get(s, "Sent", &mb), 0);
	assert_true(mb.subscribed);
	mc_store_close(s);
	s = open_store(f);
	assert_int_equal(mc_store_subscribe(s, "Sent", false, err, sizeof(err)), 0);
	assert_int_equal(mc_store_subscriptions(s, sub_cb, got), 0);
	assert_string_equal(got, "INBOX;Later;");
	mc_store_close(s);
}

/* Two store objects on one user, in two threads: flag changes and appends interleave without loss. */
struct worker {
	struct fx *f;
	int n;
	int fails;
	uint32_t uids[64];
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	char err[256];
	struct mc_store *s = mc_store_open(w->f->store, 0, err, sizeof(err));
	if (s == NULL) {
		w->fails++;
		return NULL;
	}
	for (int i = 0; i < w->n; i++) {
		struct mc_store_append a = { .fd = w->f->src, .length = strlen(body), .flags = MC_FLAG_SEEN };
		if (mc_store_append(s, "INBOX", &a, 0, err, sizeof(err)) < 0) {
			w->fails++;
			continue;
		}
		w->uids[i] = a.uid;
		uint32_t all[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
		struct mc_store_flag_change ch = { .op = (i & 1) ? MC_FLAGOP_ADD : MC_FLAGOP_REMOVE,
						   .flags = MC_FLAG_FLAGGED };
		if (mc_store_flags_change(s, "INBOX", all, 10, &ch, NULL, NULL, NULL, err, sizeof(err)) < 0)
			w->fails++;
	}
	mc_store_close(s);
	return NULL;
}

static void
test_two_stores(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	struct mc_store_mailbox mb;
	assert_int_equal(mc_store_mailbox_get(s, "INBOX", &mb), 0);
	uint64_t start = mb.highestmodseq;
	struct worker a = { .f = f, .n = 20 }, b = { .f = f, .n = 20 };
	pthread_t ta, tb;
	assert_int_equal(pthread_create(&ta, NULL, worker_main, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, worker_main, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_int_equal(a.fails + b.fails, 0);
	struct seen c;
	list(s, "INBOX", &c);
	assert_int_equal(c.n, 40);
	for (size_t i = 0; i < 40 && i < 64; i++) {
		assert_int_equal(c.uid[i], i + 1);
		assert_true(exists(f, c.file[i]));
	}
	/* every change is visible to the first store as a change since the start */
	struct seen ch = { 0 };
	assert_int_equal(mc_store_changes_since(s, "INBOX", start, seen_msg, NULL, &ch), 0);
	assert_int_equal(ch.n, 40);
	assert_int_equal(mc_store_mailbox_get(s, "INBOX", &mb), 0);
	assert_true(mb.highestmodseq >= start + 40);
	mc_store_close(s);
}

struct index_job {
	struct mc_store *s;
	struct mc_store_appending *ap;
	struct mc_store_append a;
	int r;
	char err[256];
};

static void *
index_thread(void *arg)
{
	struct index_job *j = arg;
	j->r = mc_store_append_index(j->s, j->ap, &j->a, j->err, sizeof(j->err));
	return NULL;
}

/*
 * Two APPENDs in flight at once cannot both pass the quota: the first
 * one's size is reserved from its begin until it is indexed (here on
 * another thread, as imapd's pool does) or aborted.
 */
static void
test_append_quota_reserved(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	char err[256] = "";
	struct mc_store_appending *ap1 = NULL, *ap2 = NULL;
	size_t len = strlen(body);
	struct mc_store_append a = { .fd = -1, .length = len };

	mc_store_set_quota(s, len + len / 2, 0);   /* room for one message, not two */
	assert_int_equal(mc_store_append_begin(s, "INBOX", &a, 0, &ap1, err, sizeof(err)), 0);
	assert_int_equal(mc_store_append_begin(s, "INBOX", &a, 0, &ap2, err, sizeof(err)), MC_STORE_EOVERQUOTA);
	assert_null(ap2);
	/* Aborted: the reservation goes with it. */
	mc_store_append_abort(ap1);
	assert_int_equal(mc_store_append_begin(s, "INBOX", &a, 0, &ap1, err, sizeof(err)), 0);
	assert_int_equal(mc_store_append_write(ap1, body, len), 0);
	assert_int_equal(mc_store_append_file(ap1, err, sizeof(err)), 0);
	assert_int_equal(mc_store_append_begin(s, "INBOX", &a, 0, &ap2, err, sizeof(err)), MC_STORE_EOVERQUOTA);
	/* Indexed on another thread: the row counts now, the reservation no more. */
	struct index_job j = { .s = s, .ap = ap1 };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, index_thread, &j), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(j.r, 0);
	assert_int_equal(j.a.uid, 1);
	assert_int_equal(mc_store_append_begin(s, "INBOX", &a, 0, &ap2, err, sizeof(err)), MC_STORE_EOVERQUOTA);
	mc_store_set_quota(s, 3 * len, 0);
	assert_int_equal(mc_store_append_begin(s, "INBOX", &a, 0, &ap2, err, sizeof(err)), 0);
	mc_store_append_abort(ap2);
	struct mc_store_quota q;
	assert_int_equal(mc_store_quota(s, &q), 0);
	assert_int_equal(q.messages, 1);
	mc_store_close(s);
}

/* Stale tmp/ files (a crash's leftovers, older than 36 hours) go once per open, fresh ones stay. */
static void
test_tmp_sweep(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	char err[256] = "", p[800];
	assert_int_equal(mc_store_mailbox_create(s, "Lists", NULL, err, sizeof(err)), 0);
	const char *names[] = { "tmp/old1", "tmp/fresh", ".Lists/tmp/old2", ".Lists/tmp/young" };
	time_t now = time(NULL);
	time_t when[] = { now - MC_STORE_TMP_STALE - 60, now, now - 3 * MC_STORE_TMP_STALE, now - MC_STORE_TMP_STALE + 600 };
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s/%s", f->store, names[i]);
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
		assert_true(fd >= 0);
		close(fd);
		struct timespec ts[2] = { { .tv_sec = when[i] }, { .tv_sec = when[i] } };
		assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
	}
	bool bounded = true;
	assert_int_equal(mc_store_tmp_sweep(s, MC_STORE_TMP_STALE, 1000, &bounded), 2);
	assert_false(bounded);
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s/%s", f->store, names[i]);
		assert_int_equal(access(p, F_OK) == 0, i % 2 == 1);   /* old1, old2 gone; fresh, young kept */
	}
	/* Once per open: a second call looks at nothing. */
	assert_int_equal(mc_store_tmp_sweep(s, 0, 1000, NULL), 0);
	mc_store_close(s);
	/* Bounded: one entry looked at (an age below 0 takes even the fresh ones), the walk stops and says so. */
	s = open_store(f);
	assert_int_equal(mc_store_tmp_sweep(s, -60, 1, &bounded), 1);
	assert_true(bounded);
	mc_store_close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_move, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_streamed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expunge_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_rename, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_inbox, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subscribe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_stores, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_quota_reserved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tmp_sweep, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
