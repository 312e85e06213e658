/*
 * test_imap_search_store.c - SEARCH, SORT and THREAD end to end on a real
 * mail store in a temporary directory: messages delivered with encoded
 * words, dates and references are found by decoded header text, by body
 * text, by flags and dates; sorted and threaded from the message cache;
 * only what the session's view holds is answered; a cache that is
 * missing is filled before the walk.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imapd/search_store.h"
#include "mail/mailstore.h"
#include "mail/mailstore_ops.h"

static const char *const msgs[] = {
	"Subject: Plan\r\nFrom: Alice <alice@example.org>\r\nTo: bob@example.net\r\n"
	"Date: Sun, 10 Mar 2024 12:00:00 +0000\r\nMessage-ID: <a@x>\r\n\r\nLet us meet on Friday.\r\n",
	"Subject: Re: Plan\r\nFrom: Bob <bob@example.net>\r\nDate: Mon, 11 Mar 2024 09:00:00 +0000\r\n"
	"Message-ID: <b@x>\r\nIn-Reply-To: <a@x>\r\nReferences: <a@x>\r\n\r\nFriday is fine.\r\n",
	"Subject: =?utf-8?q?Caf=C3=A9?= news\r\nFrom: =?utf-8?q?B=C3=A4cker?= <baker@example.org>\r\n"
	"Date: Sat, 09 Mar 2024 08:00:00 +0000\r\nMessage-ID: <c@x>\r\n\r\nCroissants today.\r\n",
	"Subject: Re: Plan\r\nFrom: Carol <carol@example.com>\r\nDate: Tue, 12 Mar 2024 10:00:00 +0000\r\n"
	"Message-ID: <d@x>\r\nReferences: <a@x> <b@x>\r\n\r\nCount me in.\r\n",
};

struct fx {
	char root[256];
	char store[300];
	struct mc_store *s;
	uint32_t inview;   /* the view holds UIDs 1..inview */
};

static uint32_t
seq_of_uid(void *arg, uint32_t uid)
{
	struct fx *f = arg;
	return uid <= f->inview ? uid : 0;
}

static bool
recent(void *arg, uint32_t uid)
{
	(void)arg;
	return uid == 4;
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->root, sizeof(f->root), "/tmp/test_imap_search_store.XXXXXX");
	if (mkdtemp(f->root) == NULL)
		return -1;
	snprintf(f->store, sizeof(f->store), "%s/mail/example.net/bob", f->root);
	char err[256];
	f->s = mc_store_open(f->store, MC_STORE_CREATE, err, sizeof(err));
	if (f->s == NULL)
		return -1;
	for (size_t i = 0; i < 4; i++) {
		char p[300];
		snprintf(p, sizeof(p), "%s/m%zu", f->root, i);
		int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
		uint32_t uid;
		if (fd < 0 || write(fd, msgs[i], strlen(msgs[i])) != (ssize_t)strlen(msgs[i]) ||
		    mc_store_deliver(f->s, NULL, NULL, 0, fd, 0, strlen(msgs[i]), &uid, err, sizeof(err)) < 0)
			return -1;
		close(fd);
	}
	uint32_t seen[] = { 1, 2 };
	struct mc_store_flag_change ch = { .op = MC_FLAGOP_ADD, .flags = MC_FLAG_SEEN };
	if (mc_store_flags_change(f->s, "INBOX", seen, 2, &ch, NULL, NULL, NULL, err, sizeof(err)) != 2)
		return -1;
	f->inview = 4;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	mc_store_close(f->s);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void
view(struct fx *f, struct imap_search_view *v)
{
	*v = (struct imap_search_view){ .arg = f, .seq_of_uid = seq_of_uid, .recent = recent, .exists = f->inview,
					.max_uid = f->inview };
}

static bool
parse(const char *text, bool charset_first, struct imap_search *prog)
{
	static char cmd[512];
	snprintf(cmd, sizeof(cmd), "%s\r\n", text);
	char *p = cmd;
	const char *why;
	memset(prog, 0, sizeof(*prog));
	return imap_search_parse(&p, cmd + strlen(cmd), charset_first, prog, &why) == 0;
}

static const char *
search(struct fx *f, const char *text, bool uid)
{
	static char out[256];
	struct imap_search prog;
	assert_true(parse(text, false, &prog));
	struct imap_search_view v;
	view(f, &v);
	uint32_t *nums;
	size_t n;
	uint64_t ms;
	assert_int_equal(imap_search_store(f->s, "INBOX", &v, &prog, uid, &nums, &n, &ms), 0);
	struct mc_buf b;
	mc_buf_init(&b, 4096);
	imap_search_format(&b, nums, n, prog.has_modseq ? ms : 0);
	snprintf(out, sizeof(out), "%s", b.data);
	mc_buf_free(&b);
	free(nums);
	imap_search_free(&prog);
	return out;
}

static void
test_search(void **state)
{
	struct fx *f = *state;
	assert_string_equal(search(f, "SUBJECT plan", false), "* SEARCH 1 2 4\r\n");
	assert_string_equal(search(f, "CHARSET UTF-8 FROM {7}\r\nbäcker", false), "* SEARCH 3\r\n");
	assert_string_equal(search(f, "SUBJECT \"café NEWS\"", false), "* SEARCH 3\r\n");
	assert_string_equal(search(f, "BODY friday", false), "* SEARCH 1 2\r\n");
	assert_string_equal(search(f, "TEXT \"carol@example\"", false), "* SEARCH 4\r\n");
	assert_string_equal(search(f, "UNSEEN", false), "* SEARCH 3 4\r\n");
	assert_string_equal(search(f, "NEW", false), "* SEARCH 4\r\n");
	assert_string_equal(search(f, "SENTBEFORE 11-Mar-2024", true), "* SEARCH 1 3\r\n");
	assert_string_equal(search(f, "HEADER Message-ID \"<c@x>\"", false), "* SEARCH 3\r\n");
	assert_string_equal(search(f, "HEADER Date \"09 mar\"", false), "* SEARCH 3\r\n");
	assert_string_equal(search(f, "TO bob", false), "* SEARCH 1\r\n");
	assert_string_equal(search(f, "CC anyone", false), "* SEARCH\r\n");
	assert_string_equal(search(f, "SEEN MODSEQ 1", false), "* SEARCH 1 2 (MODSEQ 6)\r\n");

	/* a view that has not heard of UID 4 yet: it is not answered */
	f->inview = 3;
	assert_string_equal(search(f, "ALL", true), "* SEARCH 1 2 3\r\n");
	assert_string_equal(search(f, "UID 2:*", true), "* SEARCH 2 3\r\n");
	f->inview = 4;

	/* rows whose cache is gone (an index from before the cache) are filled before the walk */
	char p[400];
	snprintf(p, sizeof(p), "%s/index.sqlite", f->store);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_exec(db, "UPDATE messages SET cache_ver = NULL, subject = NULL", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_string_equal(search(f, "SUBJECT plan", false), "* SEARCH 1 2 4\r\n");
}

static void
test_sort_thread(void **state)
{
	struct fx *f = *state;
	struct imap_search prog;
	struct imap_search_view v;
	view(f, &v);
	static const struct {
		const char *crit;
		const char *want;
	} cases[] = {
		{ "(DATE)", "3 1 2 4" },
		{ "(REVERSE SUBJECT)", "1 2 4 3" },
		{ "(FROM)", "1 3 2 4" },
		{ "(ARRIVAL)", "1 2 3 4" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char cmd[64];
		snprintf(cmd, sizeof(cmd), "%s ", cases[i].crit);
		char *p = cmd;
		const char *why;
		struct imap_sort_crit crit[IMAP_SORT_CRIT_MAX];
		size_t nc;
		assert_int_equal(imap_sort_parse(&p, cmd + strlen(cmd), crit, &nc, &why), 0);
		assert_true(parse("UTF-8 ALL", true, &prog));
		uint32_t *nums;
		size_t n;
		assert_int_equal(imap_sort_store(f->s, "INBOX", &v, &prog, crit, nc, false, &nums, &n, NULL), 0);
		char got[64] = "";
		for (size_t k = 0; k < n; k++)
			snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%u", k ? " " : "", nums[k]);
		assert_string_equal(got, cases[i].want);
		free(nums);
		imap_search_free(&prog);
	}

	struct mc_buf b;
	mc_buf_init(&b, 4096);
	assert_true(parse("UTF-8 ALL", true, &prog));
	assert_int_equal(imap_thread_store(f->s, "INBOX", &v, &prog, IMAP_THREAD_REFERENCES, false, &b), 0);
	assert_string_equal(b.data, "* THREAD (3)(1 2 4)\r\n");
	imap_search_free(&prog);
	mc_buf_reset(&b);
	assert_true(parse("UTF-8 NOT FROM bob", true, &prog));
	assert_int_equal(imap_thread_store(f->s, "INBOX", &v, &prog, IMAP_THREAD_ORDEREDSUBJECT, true, &b), 0);
	assert_string_equal(b.data, "* THREAD (3)(1 4)\r\n");
	imap_search_free(&prog);
	mc_buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_search, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sort_thread, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
