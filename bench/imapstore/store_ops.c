/*
 * store_ops.c - what the IMAP store operations and SEARCH/SORT/THREAD cost
 * on one big mailbox, without a network in the way: the figures behind
 * imapd's SELECT, UID FETCH 1:* (FLAGS), STORE, SEARCH, SORT, THREAD,
 * COPY and EXPUNGE. Run by hand (not a test):
 *
 *   build/bench/imapstore/store_ops [MESSAGES] [DIR]
 *
 * delivers MESSAGES (default 20000) small messages with a dozen subjects
 * and reply chains into a fresh store under DIR (default /var/tmp), then
 * times each operation over the whole mailbox and prints one line each.
 * The store is removed at the end.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "imapd/search_store.h"
#include "mail/mailstore.h"
#include "mail/mailstore_ops.h"

static double
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static uint32_t nmsgs;

static uint32_t
seq_of_uid(void *arg, uint32_t uid)
{
	(void)arg;
	return uid <= nmsgs ? uid : 0;
}

static int
count_cb(void *arg, const struct mc_store_msg *m)
{
	(void)m;
	(*(size_t *)arg)++;
	return 0;
}

static void
parse(const char *text, bool cs, struct imap_search *prog)
{
	static char cmd[256];
	snprintf(cmd, sizeof(cmd), "%s\r\n", text);
	char *p = cmd;
	const char *why;
	memset(prog, 0, sizeof(*prog));
	if (imap_search_parse(&p, cmd + strlen(cmd), cs, prog, &why) < 0) {
		fprintf(stderr, "parse %s: %s\n", text, why);
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	nmsgs = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 20000;
	const char *base = argc > 2 ? argv[2] : "/var/tmp";
	char root[512], store[600], err[256];
	snprintf(root, sizeof(root), "%s/store_ops.XXXXXX", base);
	if (mkdtemp(root) == NULL)
		return 1;
	snprintf(store, sizeof(store), "%s/user", root);
	struct mc_store *s = mc_store_open(store, MC_STORE_CREATE, err, sizeof(err));
	if (s == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	/* the messages: 12 subjects, each the root of a reply chain */
	char path[700];
	snprintf(path, sizeof(path), "%s/src", root);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	enum { BATCH = 500 };
	struct mc_store_item *items = calloc(BATCH, sizeof(*items));
	char (*texts)[600] = calloc(BATCH, sizeof(*texts));
	double t0 = now_ms();
	for (uint32_t done = 0; done < nmsgs;) {
		uint32_t k = nmsgs - done < BATCH ? nmsgs - done : BATCH;
		off_t off = 0;
		if (ftruncate(fd, 0) < 0)
			return 1;
		for (uint32_t i = 0; i < k; i++) {
			uint32_t n = done + i, t = n % 12;
			int len = snprintf(texts[i], sizeof(texts[i]),
					   "From: User %u <user%u@example.org>\r\nTo: bob@example.net\r\n"
					   "Subject: %sTopic number %u\r\nDate: Mon, 1 Jan 2024 %02u:%02u:00 +0000\r\n"
					   "Message-ID: <m%u@example.org>\r\n%s%u%s\r\n\r\nBody of message %u, about topic %u.\r\n",
					   n % 97, n % 97, n < 12 ? "" : "Re: ", t, (n / 60) % 24, n % 60, n,
					   n < 12 ? "X-No-Parent: " : "References: <m", n < 12 ? 0 : n - 12,
					   n < 12 ? "" : "@example.org>", n, t);
			if (pwrite(fd, texts[i], (size_t)len, off) != len)
				return 1;
			items[i] = (struct mc_store_item){ .fd = fd, .offset = (uint64_t)off, .length = (uint64_t)len };
			off += len;
		}
		if (mc_store_deliver_many(s, NULL, items, k, err, sizeof(err)) != (int)k) {
			fprintf(stderr, "deliver: %s\n", err);
			return 1;
		}
		done += k;
	}
	double t1 = now_ms();
	printf("deliver            %8u msgs %10.1f ms  (%.0f msg/s, batches of %d)\n", nmsgs, t1 - t0,
	       nmsgs / ((t1 - t0) / 1e3), BATCH);

	size_t cnt = 0;
	t0 = now_ms();
	mc_store_messages(s, "INBOX", 1, count_cb, &cnt);
	printf("walk rows (FLAGS)  %8zu msgs %10.1f ms\n", cnt, now_ms() - t0);

	uint32_t *all = malloc(nmsgs * sizeof(*all));
	for (uint32_t i = 0; i < nmsgs; i++)
		all[i] = i + 1;
	struct mc_store_flag_change ch = { .op = MC_FLAGOP_ADD, .flags = MC_FLAG_SEEN };
	t0 = now_ms();
	int r = mc_store_flags_change(s, "INBOX", all, nmsgs / 2, &ch, NULL, NULL, NULL, err, sizeof(err));
	printf("STORE +FLAGS \\Seen %8d msgs %10.1f ms  (file renames included)\n", r, now_ms() - t0);
	ch = (struct mc_store_flag_change){ .op = MC_FLAGOP_ADD, .keywords = "$Important" };
	t0 = now_ms();
	r = mc_store_flags_change(s, "INBOX", all, nmsgs, &ch, NULL, NULL, NULL, err, sizeof(err));
	printf("STORE +FLAGS kw    %8d msgs %10.1f ms  (index only)\n", r, now_ms() - t0);

	struct mc_store_status st;
	t0 = now_ms();
	mc_store_status(s, "INBOX", &st);
	printf("STATUS             %8u msgs %10.1f ms\n", st.messages, now_ms() - t0);

	struct imap_search_view v = { .seq_of_uid = seq_of_uid, .exists = nmsgs, .max_uid = nmsgs };
	static const char *const searches[] = { "UNSEEN", "SUBJECT \"topic number 7\"", "FROM user5@",
						"SENTSINCE 1-Jan-2024 LARGER 100", "BODY \"message 12345,\"" };
	for (size_t i = 0; i < sizeof(searches) / sizeof(searches[0]); i++) {
		struct imap_search prog;
		parse(searches[i], false, &prog);
		uint32_t *out;
		size_t n;
		t0 = now_ms();
		imap_search_store(s, "INBOX", &v, &prog, true, &out, &n, NULL);
		printf("SEARCH %-32s %7zu hits %8.1f ms\n", searches[i], n, now_ms() - t0);
		free(out);
		imap_search_free(&prog);
	}
	struct imap_sort_crit crit[2] = { { ISORT_SUBJECT, false }, { ISORT_DATE, true } };
	struct imap_search prog;
	parse("UTF-8 ALL", true, &prog);
	uint32_t *out;
	size_t n;
	t0 = now_ms();
	imap_sort_store(s, "INBOX", &v, &prog, crit, 2, true, &out, &n, NULL);
	printf("SORT (SUBJECT REVERSE DATE)    %7zu msgs %8.1f ms\n", n, now_ms() - t0);
	free(out);
	struct mc_buf b;
	mc_buf_init(&b, 64u << 20);
	t0 = now_ms();
	imap_thread_store(s, "INBOX", &v, &prog, IMAP_THREAD_REFERENCES, true, &b);
	printf("THREAD REFERENCES              %7u msgs %8.1f ms  (%zu bytes)\n", nmsgs, now_ms() - t0, b.len);
	mc_buf_reset(&b);
	t0 = now_ms();
	imap_thread_store(s, "INBOX", &v, &prog, IMAP_THREAD_ORDEREDSUBJECT, true, &b);
	printf("THREAD ORDEREDSUBJECT          %7u msgs %8.1f ms\n", nmsgs, now_ms() - t0);
	mc_buf_free(&b);
	imap_search_free(&prog);

	uint32_t k = nmsgs < 1000 ? nmsgs : 1000;
	mc_store_mailbox_create(s, "Archive", NULL, err, sizeof(err));
	t0 = now_ms();
	r = mc_store_copy(s, "INBOX", all, k, "Archive", false, NULL, NULL, NULL, err, sizeof(err));
	printf("COPY               %8d msgs %10.1f ms  (hard links, one transaction)\n", r, now_ms() - t0);
	t0 = now_ms();
	r = mc_store_copy(s, "INBOX", all + k, k, "Archive", true, NULL, NULL, NULL, err, sizeof(err));
	printf("MOVE               %8d msgs %10.1f ms\n", r, now_ms() - t0);
	t0 = now_ms();
	r = mc_store_expunge(s, "Archive", all, k, err, sizeof(err));
	printf("EXPUNGE            %8d msgs %10.1f ms\n", r, now_ms() - t0);

	mc_store_close(s);
	free(all);
	free(items);
	free(texts);
	close(fd);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : 1;
}
