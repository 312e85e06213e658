/*
 * test_mailstore.c - the mail store as its users see it: what lands on
 * disk (LF line ends, Dovecot-style names with the right S= and W=), UIDs
 * that increase and survive a reopen, folders, an index that is lost or
 * corrupt and comes back without losing mail, two threads delivering
 * at once, and queued's two phases (files on several threads, then one
 * index call).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/mailstore.h"

static const char prefix[] = "Return-Path: <alice@example.org>\r\nDelivered-To: bob@example.net\r\n";
static const char body[] = "Subject: hello\r\n\r\nline one\r\nline two\r\n";
static const char on_disk[] = "Return-Path: <alice@example.org>\nDelivered-To: bob@example.net\n"
			      "Subject: hello\n\nline one\nline two\n";

#include "store_fx.h"

static int
setup(void **state)
{
	return store_fx_setup(state, "test_mailstore", "JUNKJUN", body);
}

static uint32_t
deliver(struct mc_store *s, struct fx *f, const char *mailbox)
{
	char err[256] = "";
	uint32_t uid = 0;
	if (mc_store_deliver(s, mailbox, prefix, strlen(prefix), f->src, 7, strlen(body), &uid, err, sizeof(err)) < 0)
		fail_msg("deliver: %s", err);
	return uid;
}

struct collected {
	size_t n;
	uint32_t uid[256];
	char file[256][300];
	uint64_t size[256], vsize[256];
	uint32_t flags[256];
};

static int
collect_cb(void *arg, const struct mc_store_msg *m)
{
	struct collected *c = arg;
	if (c->n < 256) {
		c->uid[c->n] = m->uid;
		snprintf(c->file[c->n], sizeof(c->file[0]), "%s", m->file);
		c->size[c->n] = m->size;
		c->vsize[c->n] = m->vsize;
		c->flags[c->n] = m->flags;
	}
	c->n++;
	return 0;
}

static void
collect(struct mc_store *s, const char *mailbox, struct collected *c)
{
	memset(c, 0, sizeof(*c));
	assert_int_equal(mc_store_messages(s, mailbox, 1, collect_cb, c), 0);
}

static size_t
count_files(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return 0;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void
test_deliver_content_and_names(void **state)
{
	struct fx *f = *state;
	mode_t old = umask(007);   /* as queued runs: the mail store's group must be able to write */
	struct mc_store *s = open_store(f);
	for (uint32_t i = 1; i <= 3; i++)
		assert_int_equal(deliver(s, f, NULL), i);
	static const char *const shared[] = { "index.sqlite", "index.sqlite-wal", "index.sqlite-shm" };
	for (size_t i = 0; i < 3; i++) {
		char p[400];
		struct stat sb;
		snprintf(p, sizeof(p), "%s/%s", f->store, shared[i]);
		assert_int_equal(stat(p, &sb), 0);
		assert_int_equal(sb.st_mode & 0777, 0660);
	}
	char newdir[400];
	struct stat dsb;
	snprintf(newdir, sizeof(newdir), "%s/new", f->store);
	assert_int_equal(stat(newdir, &dsb), 0);
	assert_int_equal(dsb.st_mode & 0770, 0770);
	umask(old);

	struct collected c;
	collect(s, "INBOX", &c);
	assert_int_equal(c.n, 3);
	size_t disk = strlen(on_disk), crlf = strlen(prefix) + strlen(body);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(c.uid[i], i + 1);
		assert_int_equal(c.size[i], disk);
		assert_int_equal(c.vsize[i], crlf);
		assert_memory_equal(c.file[i], "new/", 4);

		/* the name says the same sizes, Dovecot style */
		struct mc_maildir_name mn;
		assert_int_equal(mc_maildir_name_parse(c.file[i] + 4, &mn), 0);
		assert_true(mn.has_size && mn.has_vsize);
		assert_int_equal(mn.size, disk);
		assert_int_equal(mn.vsize, crlf);
		assert_true(mn.time > 1600000000);
		assert_non_null(strstr(c.file[i], ".M"));
		assert_non_null(strstr(c.file[i], "P"));

		/* the file holds LF line ends */
		char p[700], buf[512];
		snprintf(p, sizeof(p), "%s/%s", f->store, c.file[i]);
		int fd = open(p, O_RDONLY);
		assert_true(fd >= 0);
		ssize_t r = read(fd, buf, sizeof(buf));
		close(fd);
		assert_int_equal(r, disk);
		assert_memory_equal(buf, on_disk, disk);
	}
	char tmp[400];
	snprintf(tmp, sizeof(tmp), "%s/tmp", f->store);
	assert_int_equal(count_files(tmp), 0);

	struct mc_store_mailbox mb;
	assert_int_equal(mc_store_mailbox_get(s, "inbox", &mb), 0);
	assert_int_equal(mb.uidnext, 4);
	assert_int_equal(mb.messages, 3);
	assert_true(mb.uidvalidity > 0);
	uint32_t uv = mb.uidvalidity;
	mc_store_close(s);

	/* UIDs persist across a reopen and keep increasing */
	s = open_store(f);
	assert_int_equal(mc_store_mailbox_get(s, "INBOX", &mb), 0);
	assert_int_equal(mb.uidvalidity, uv);
	assert_int_equal(deliver(s, f, "INBOX"), 4);
	mc_store_close(s);
}

static void
test_crlf_edges(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	/* a CRLF split across the prefix/body boundary, a bare LF, a bare CR, a CR at the very end */
	static const char src[] = "\nbare lf\nbare\rcr\r\n\r";
	char p[300];
	snprintf(p, sizeof(p), "%s/edge", f->root);
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, src, strlen(src)), strlen(src));
	char err[256];
	uint32_t uid;
	assert_int_equal(mc_store_deliver(s, NULL, "X: y\r", 5, fd, 0, strlen(src), &uid, err, sizeof(err)), 0);
	close(fd);
	struct collected c;
	collect(s, NULL, &c);
	assert_int_equal(c.n, 1);
	static const char want[] = "X: y\nbare lf\nbare\rcr\n\r";
	assert_int_equal(c.size[0], strlen(want));
	assert_int_equal(c.vsize[0], strlen(want) + 3);
	char path[700], buf[64];
	snprintf(path, sizeof(path), "%s/%s", f->store, c.file[0]);
	fd = open(path, O_RDONLY);
	assert_int_equal(read(fd, buf, sizeof(buf)), strlen(want));
	close(fd);
	assert_memory_equal(buf, want, strlen(want));

	/* a source shorter than promised is an error, and nothing is left behind */
	assert_int_equal(mc_store_deliver(s, NULL, "", 0, f->src, 7, 10000, &uid, err, sizeof(err)), -1);
	collect(s, NULL, &c);
	assert_int_equal(c.n, 1);
	snprintf(path, sizeof(path), "%s/new", f->store);
	assert_int_equal(count_files(path), 1);
	snprintf(path, sizeof(path), "%s/tmp", f->store);
	assert_int_equal(count_files(path), 0);
	mc_store_close(s);
}

static int
list_cb(void *arg, const struct mc_store_mailbox *mb)
{
	char *out = arg;
	strcat(out, mb->name);
	strcat(out, ";");
	return 0;
}

/*
 * A message of several buffers' worth (the store copies through 64 KiB):
 * long runs without line ends, CRLF, bare LF, bare CR and CR CR LF at
 * random places, some across a buffer's end. The file must be the
 * byte-by-byte rule's output: CRLF -> LF, every other byte as it is; W=
 * counts each LF on disk without a CR before it as two.
 */
static void
test_crlf_long_runs(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	static const char *const ends[] = { "\r\n", "\n", "\r", "\r\r\n" };
	size_t cap = 300 * 1024, n = 0;
	char *src = malloc(cap), *want = malloc(cap), *got = malloc(cap);
	assert_non_null(src);
	assert_non_null(want);
	assert_non_null(got);
	unsigned seed = 7;
	while (n < cap - 70000) {
		seed = seed * 1103515245u + 12345u;
		size_t run = (seed >> 8) % ((seed & 1) ? 90 : 70000);   /* mostly short lines, some very long */
		for (size_t i = 0; i < run; i++, n++)
			src[n] = (char)('a' + n % 26);
		const char *e = ends[(seed >> 20) % 4];
		memcpy(src + n, e, strlen(e));
		n += strlen(e);
	}
	size_t w = 0, lone = 0;
	for (size_t i = 0; i < n; i++) {
		if (src[i] == '\r' && i + 1 < n && src[i + 1] == '\n')
			continue;   /* the CR of a CRLF */
		if (src[i] == '\n' && (w == 0 || want[w - 1] != '\r'))
			lone++;
		want[w++] = src[i];
	}
	char p[300];
	snprintf(p, sizeof(p), "%s/long", f->root);
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, src, n), (ssize_t)n);
	char err[256];
	uint32_t uid;
	assert_int_equal(mc_store_deliver(s, NULL, "", 0, fd, 0, n, &uid, err, sizeof(err)), 0);
	close(fd);
	struct collected c;
	collect(s, NULL, &c);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.size[0], w);
	assert_int_equal(c.vsize[0], w + lone);
	char path[700];
	snprintf(path, sizeof(path), "%s/%s", f->store, c.file[0]);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	size_t r = 0;
	ssize_t k;
	while ((k = read(fd, got + r, cap - r)) > 0)
		r += (size_t)k;
	close(fd);
	assert_int_equal(r, w);
	assert_memory_equal(got, want, w);
	free(src);
	free(want);
	free(got);
	mc_store_close(s);
}

static void
test_folders(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	char err[256];
	assert_int_equal(mc_store_mailbox_create(s, "Sent", "\\Sent", err, sizeof(err)), 0);
	assert_int_equal(mc_store_mailbox_create(s, "Archive.2024", NULL, err, sizeof(err)), 0);
	assert_int_equal(mc_store_mailbox_create(s, "Sent", NULL, err, sizeof(err)), -1);
	assert_int_equal(mc_store_mailbox_create(s, "INBOX", NULL, err, sizeof(err)), -1);
	static const char *const bad[] = { "", ".hidden", "a/b", "a..b", "trailing.", "ctl\x01" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(mc_store_mailbox_name_ok(bad[i]));
		assert_int_equal(mc_store_mailbox_create(s, bad[i], NULL, err, sizeof(err)), -1);
	}

	char p[400];
	struct stat sb;
	snprintf(p, sizeof(p), "%s/.Sent/cur", f->store);
	assert_int_equal(stat(p, &sb), 0);
	snprintf(p, sizeof(p), "%s/.Sent/maildirfolder", f->store);
	assert_int_equal(stat(p, &sb), 0);
	snprintf(p, sizeof(p), "%s/.Archive.2024/new", f->store);
	assert_int_equal(stat(p, &sb), 0);

	assert_int_equal(deliver(s, f, "Sent"), 1);
	assert_int_equal(deliver(s, f, "Sent"), 2);
	assert_int_equal(deliver(s, f, NULL), 1);
	uint32_t uid;
	assert_int_equal(mc_store_deliver(s, "Nope", "", 0, f->src, 7, 3, &uid, err, sizeof(err)), -1);

	struct mc_store_mailbox mb;
	assert_int_equal(mc_store_mailbox_get(s, "Sent", &mb), 0);
	assert_string_equal(mb.special_use, "\\Sent");
	assert_int_equal(mb.messages, 2);
	char names[256] = "";
	assert_int_equal(mc_store_mailbox_list(s, list_cb, names), 0);
	assert_string_equal(names, "INBOX;Archive.2024;Sent;");
	mc_store_close(s);
}

static void
fill(struct fx *f, size_t n, uint32_t *uidvalidity)
{
	struct mc_store *s = open_store(f);
	for (size_t i = 0; i < n; i++)
		deliver(s, f, NULL);
	char err[256];
	assert_int_equal(mc_store_mailbox_create(s, "Sent", NULL, err, sizeof(err)), 0);
	deliver(s, f, "Sent");
	struct mc_store_mailbox mb;
	assert_int_equal(mc_store_mailbox_get(s, NULL, &mb), 0);
	*uidvalidity = mb.uidvalidity;
	mc_store_close(s);
}

static void
test_corrupt_index(void **state)
{
	struct fx *f = *state;
	uint32_t uv;
	fill(f, 5, &uv);

	char p[400];
	snprintf(p, sizeof(p), "%s/index.sqlite", f->store);
	int fd = open(p, O_WRONLY);
	assert_true(fd >= 0);
	static const char junk[4096] = "this is not an SQLite database at all";
	assert_int_equal(write(fd, junk, sizeof(junk)), sizeof(junk));
	close(fd);

	struct mc_store *s = open_store(f);
	struct collected c;
	collect(s, "INBOX", &c);
	assert_int_equal(c.n, 5);
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(c.uid[i], i + 1);
		assert_int_equal(c.vsize[i], strlen(prefix) + strlen(body));
	}
	collect(s, "Sent", &c);
	assert_int_equal(c.n, 1);
	struct mc_store_mailbox mb;
	assert_int_equal(mc_store_mailbox_get(s, NULL, &mb), 0);
	assert_int_not_equal(mb.uidvalidity, uv);   /* UIDs could not be kept: the client must know */
	assert_int_equal(mb.uidnext, 6);
	assert_int_equal(deliver(s, f, NULL), 6);
	mc_store_close(s);

	/* the corrupt file is kept aside for a post-mortem */
	DIR *d = opendir(f->store);
	struct dirent *de;
	bool aside = false;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, "index.sqlite.corrupt-", 21) == 0)
			aside = true;
	closedir(d);
	assert_true(aside);
}

static void
test_deleted_index(void **state)
{
	struct fx *f = *state;
	uint32_t uv;
	fill(f, 4, &uv);
	char p[400];
	snprintf(p, sizeof(p), "%s/index.sqlite", f->store);
	assert_int_equal(unlink(p), 0);

	struct mc_store *s = open_store(f);
	struct collected c;
	collect(s, NULL, &c);
	assert_int_equal(c.n, 4);
	collect(s, "Sent", &c);
	assert_int_equal(c.n, 1);
	struct mc_store_mailbox mb;
	assert_int_equal(mc_store_mailbox_get(s, NULL, &mb), 0);
	assert_true(mb.uidvalidity > uv);
	mc_store_close(s);
}

static void
test_damaged_schema_keeps_uids(void **state)
{
	struct fx *f = *state;
	uint32_t uv;
	fill(f, 4, &uv);
	/* expunge uid 2 by hand as a POP3 server would... */
	struct mc_store *s = open_store(f);
	struct collected c;
	collect(s, NULL, &c);
	char p[700];
	snprintf(p, sizeof(p), "%s/%s", f->store, c.file[1]);
	assert_int_equal(unlink(p), 0);
	mc_store_close(s);
	/* ...then the index loses a table: unreadable as a whole, but its rows can be read */
	sqlite3 *db;
	snprintf(p, sizeof(p), "%s/index.sqlite", f->store);
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP TABLE expunged", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	s = open_store(f);
	collect(s, NULL, &c);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.uid[0], 1);
	assert_int_equal(c.uid[1], 3);
	assert_int_equal(c.uid[2], 4);
	struct mc_store_mailbox mb;
	assert_int_equal(mc_store_mailbox_get(s, NULL, &mb), 0);
	assert_int_equal(mb.uidvalidity, uv);
	assert_int_equal(mb.uidnext, 5);
	mc_store_close(s);
}

static void
test_reindex_follows_files(void **state)
{
	struct fx *f = *state;
	uint32_t uv;
	fill(f, 3, &uv);
	struct mc_store *s = open_store(f);
	struct collected c;
	collect(s, NULL, &c);
	assert_int_equal(c.n, 3);

	/* another tool moved uid 1 to cur/ as seen, removed uid 3, and dropped in a file of its own */
	char from[700], to[800];
	snprintf(from, sizeof(from), "%s/%s", f->store, c.file[0]);
	snprintf(to, sizeof(to), "%s/cur/%.280s:2,S", f->store, c.file[0] + 4);
	assert_int_equal(rename(from, to), 0);
	snprintf(from, sizeof(from), "%s/%s", f->store, c.file[2]);
	assert_int_equal(unlink(from), 0);
	snprintf(to, sizeof(to), "%s/cur/1000000000.M1P1Q1.elsewhere:2,FS", f->store);
	int fd = open(to, O_WRONLY | O_CREAT, 0600);
	assert_int_equal(write(fd, "a\nb\n", 4), 4);
	close(fd);

	struct mc_store_reindex_stats st;
	char err[256];
	assert_int_equal(mc_store_reindex(s, &st, err, sizeof(err)), 0);
	assert_int_equal(st.kept, 2 + 1);   /* INBOX 2, Sent 1 */
	assert_int_equal(st.added, 1);
	assert_int_equal(st.removed, 1);
	collect(s, NULL, &c);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.uid[0], 1);
	assert_int_equal(c.flags[0], MC_FLAG_SEEN);
	assert_memory_equal(c.file[0], "cur/", 4);
	assert_int_equal(c.uid[1], 2);
	assert_int_equal(c.uid[2], 4);       /* a new file gets a UID above every earlier one */
	assert_int_equal(c.size[2], 4);
	assert_int_equal(c.vsize[2], 6);
	assert_int_equal(c.flags[2], MC_FLAG_SEEN | MC_FLAG_FLAGGED);
	struct mc_store_mailbox mb;
	assert_int_equal(mc_store_mailbox_get(s, NULL, &mb), 0);
	assert_int_equal(mb.uidvalidity, uv);
	assert_int_equal(mb.uidnext, 5);

	/* a second reindex changes nothing */
	assert_int_equal(mc_store_reindex(s, &st, err, sizeof(err)), 0);
	assert_int_equal(st.added + st.removed, 0);
	mc_store_close(s);
}

struct thr {
	struct fx *f;
	uint32_t uids[60];
	size_t n;
	int failed;
};

static void *
thr_main(void *arg)
{
	struct thr *t = arg;
	char err[256];
	struct mc_store *s = mc_store_open(t->f->store, MC_STORE_CREATE, err, sizeof(err));
	if (s == NULL) {
		t->failed = 1;
		return NULL;
	}
	for (size_t i = 0; i < 20; i++) {
		uint32_t uid = 0;
		if (mc_store_deliver(s, NULL, prefix, strlen(prefix), t->f->src, 7, strlen(body), &uid, err,
				     sizeof(err)) < 0)
			t->failed = 1;
		t->uids[t->n++] = uid;
		/* two at a time, as queued's workers group them */
		struct mc_store_item it[2] = {
			{ .prefix = prefix, .prefixlen = strlen(prefix), .fd = t->f->src, .offset = 7,
			  .length = strlen(body) },
			{ .prefix = "", .prefixlen = 0, .fd = t->f->src, .offset = 7, .length = 4 },
		};
		if (mc_store_deliver_many(s, NULL, it, 2, err, sizeof(err)) != 2)
			t->failed = 1;
		t->uids[t->n++] = it[0].uid;
		t->uids[t->n++] = it[1].uid;
	}
	mc_store_close(s);
	return NULL;
}

static void
test_concurrent(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	mc_store_close(s);
	struct thr a = { .f = f }, b = { .f = f };
	pthread_t ta, tb;
	assert_int_equal(pthread_create(&ta, NULL, thr_main, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, thr_main, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_false(a.failed);
	assert_false(b.failed);

	s = open_store(f);
	struct collected c;
	collect(s, NULL, &c);
	/* each thread: 20 single deliveries + 20 pairs = 60 messages */
	assert_int_equal(c.n, 120);
	for (size_t i = 0; i < c.n; i++)
		assert_int_equal(c.uid[i], i + 1);   /* distinct, no gaps */
	assert_int_equal(a.n, 60);
	for (size_t i = 0; i < 60; i++) {
		assert_true(a.uids[i] > 0);
		for (size_t j = 0; j < 60; j++)
			assert_int_not_equal(a.uids[i], b.uids[j]);
	}
	char p[400];
	snprintf(p, sizeof(p), "%s/new", f->store);
	assert_int_equal(count_files(p), 120);
	mc_store_close(s);
}

/* queued's two phases: files written on several threads at once, then one index call for all of them. */
struct writer {
	struct fx *f;
	const char *mailbox;
	struct mc_store_item it[3];
	struct mc_store_files *files;
};

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	for (size_t i = 0; i < 3; i++)
		w->it[i] = (struct mc_store_item){ .prefix = prefix, .prefixlen = strlen(prefix), .fd = w->f->src,
						   .offset = 7, .length = strlen(body) };
	w->files = mc_store_files_write(w->f->store, w->mailbox, w->it, 3);
	return NULL;
}

static void
write_batches(struct fx *f, struct writer *w, size_t n, const char *mailbox)
{
	pthread_t t[8];
	for (size_t i = 0; i < n; i++) {
		w[i] = (struct writer){ .f = f, .mailbox = mailbox };
		assert_int_equal(pthread_create(&t[i], NULL, writer_main, &w[i]), 0);
	}
	for (size_t i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		assert_non_null(w[i].files);
		for (size_t k = 0; k < 3; k++)
			assert_string_equal(w[i].it[k].err, "");   /* written, no row yet */
	}
}

static void
test_files_write_then_index(void **state)
{
	struct fx *f = *state;
	struct mc_store *s = open_store(f);
	char err[256] = "", p[400], q[400];
	snprintf(p, sizeof(p), "%s/new", f->store);
	snprintf(q, sizeof(q), "%s/tmp", f->store);

	/* four batches written side by side: files in new/, no message in the index yet */
	struct writer w[4];
	write_batches(f, w, 4, NULL);
	assert_int_equal(count_files(p), 12);
	assert_int_equal(count_files(q), 0);
	struct collected c;
	collect(s, NULL, &c);
	assert_int_equal(c.n, 0);

	/* one index call gives all twelve their UIDs, in batch order */
	struct mc_store_files *v[4] = { w[0].files, w[1].files, w[2].files, w[3].files };
	assert_int_equal(mc_store_files_index(s, v, 4, err, sizeof(err)), 12);
	for (size_t i = 0; i < 4; i++) {
		for (size_t k = 0; k < 3; k++)
			assert_int_equal(w[i].it[k].uid, i * 3 + k + 1);
		mc_store_files_free(w[i].files, NULL);
	}
	collect(s, NULL, &c);
	assert_int_equal(c.n, 12);
	assert_int_equal(c.size[0], strlen(on_disk));

	/* a batch never indexed takes its files away again */
	write_batches(f, w, 1, NULL);
	assert_int_equal(count_files(p), 15);
	mc_store_files_free(w[0].files, "stopped");
	assert_int_equal(count_files(p), 12);
	assert_string_equal(w[0].it[0].err, "stopped");
	assert_int_equal(w[0].it[0].uid, 0);

	/* one transaction: when one batch's mailbox is gone, no batch of the call is delivered */
	assert_int_equal(mc_store_mailbox_create(s, "Gone", NULL, err, sizeof(err)), 0);
	write_batches(f, &w[0], 1, NULL);
	write_batches(f, &w[1], 1, "Gone");
	char gone[400];
	snprintf(gone, sizeof(gone), "%s/.Gone/new", f->store);
	assert_int_equal(count_files(gone), 3);
	sqlite3 *db;
	char idx[400];
	snprintf(idx, sizeof(idx), "%s/" MC_STORE_INDEX_NAME, f->store);
	assert_int_equal(sqlite3_open(idx, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_exec(db, "DELETE FROM mailboxes WHERE name = 'Gone'", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	struct mc_store_files *v2[2] = { w[0].files, w[1].files };
	assert_int_equal(mc_store_files_index(s, v2, 2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no mailbox Gone"));
	for (size_t i = 0; i < 2; i++) {
		for (size_t k = 0; k < 3; k++) {
			assert_int_equal(w[i].it[k].uid, 0);
			assert_non_null(strstr(w[i].it[k].err, "index"));
		}
		mc_store_files_free(w[i].files, NULL);
	}
	assert_int_equal(count_files(p), 12);
	assert_int_equal(count_files(gone), 0);
	collect(s, NULL, &c);
	assert_int_equal(c.n, 12);

	/* the store's own UIDs go on from there */
	assert_int_equal(deliver(s, f, NULL), 13);
	mc_store_close(s);
}

static void
test_name_parse(void **state)
{
	(void)state;
	struct mc_maildir_name mn;
	assert_int_equal(mc_maildir_name_parse("1700000000.M123456P42Q7.mx,S=100,W=104:2,RS", &mn), 0);
	assert_int_equal(mn.time, 1700000000);
	assert_int_equal(mn.usec, 123456);
	assert_true(mn.has_size && mn.has_vsize && mn.has_info);
	assert_int_equal(mn.size, 100);
	assert_int_equal(mn.vsize, 104);
	assert_int_equal(mn.flags, MC_FLAG_ANSWERED | MC_FLAG_SEEN);
	assert_int_equal(mn.baselen, strlen("1700000000.M123456P42Q7.mx,S=100,W=104"));

	assert_int_equal(mc_maildir_name_parse("courier-style-name", &mn), 0);
	assert_int_equal(mn.time, -1);
	assert_false(mn.has_size);
	assert_int_equal(mc_maildir_name_parse("12.x,S=99999999999999999999999", &mn), 0);
	assert_false(mn.has_size);   /* overflow: ignored, not wrapped */
	assert_int_equal(mc_maildir_name_parse("12.x,S=12abc", &mn), 0);
	assert_false(mn.has_size);

	assert_int_equal(mc_maildir_name_parse("", &mn), -1);
	assert_int_equal(mc_maildir_name_parse(".hidden", &mn), -1);
	assert_int_equal(mc_maildir_name_parse(":2,S", &mn), -1);
	assert_int_equal(mc_maildir_name_parse("a/b", &mn), -1);
	char longname[300];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(mc_maildir_name_parse(longname, &mn), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_deliver_content_and_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crlf_edges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crlf_long_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_folders, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_schema_keeps_uids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reindex_follows_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_files_write_then_index, setup, teardown),
		cmocka_unit_test(test_name_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
