/*
 * fill_store.c - fill one user's INBOX with many small messages through the
 * mail store itself (mc_store_deliver_many, what queued's local delivery
 * calls), for bench/imap_large.py: a 100,000-message mailbox in a minute or
 * two instead of the hours SMTP would take. Run by hand or by that script:
 *
 *   build/bench/imapstore/fill_store STORE_DIR MESSAGES
 *
 * STORE_DIR is the user's directory (state_dir/mail/DOMAIN/USER), created
 * when missing. The messages are ~400 bytes with a dozen subjects; then every
 * 3rd message is marked \Seen and every 10th \Flagged (so SEARCH on flags has
 * something to find). Prints the times. Run as the mail store's user (the
 * files must be that user's), umask 007 as queued's.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mail/mailstore.h"
#include "mail/mailstore_ops.h"

enum { BATCH = 1000 };

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Change flags of every k-th UID (1-based) of 1..n in one transaction. */
static int
mark(struct mc_store *s, uint32_t n, uint32_t k, uint32_t flag)
{
	char err[256];
	uint32_t *uids = malloc((n / k + 1) * sizeof(*uids));
	size_t m = 0;
	for (uint32_t u = k; u <= n; u += k)
		uids[m++] = u;
	struct mc_store_flag_change ch = { .op = MC_FLAGOP_ADD, .flags = flag };
	int r = mc_store_flags_change(s, "INBOX", uids, m, &ch, NULL, NULL, NULL, err, sizeof(err));
	free(uids);
	if (r < 0)
		fprintf(stderr, "fill_store: flags: %s\n", err);
	return r;
}

int
main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: fill_store STORE_DIR MESSAGES\n");
		return 2;
	}
	uint32_t nmsgs = (uint32_t)strtoul(argv[2], NULL, 10);
	char err[256];
	umask(007);
	struct mc_store *s = mc_store_open(argv[1], MC_STORE_CREATE, err, sizeof(err));
	if (s == NULL) {
		fprintf(stderr, "fill_store: %s\n", err);
		return 1;
	}
	char src[] = "/tmp/fill_store.XXXXXX";
	int fd = mkstemp(src);
	if (fd < 0)
		return 1;
	unlink(src);
	struct mc_store_item *items = calloc(BATCH, sizeof(*items));
	double t0 = now_s();
	for (uint32_t done = 0; done < nmsgs;) {
		uint32_t k = nmsgs - done < BATCH ? nmsgs - done : BATCH;
		off_t off = 0;
		char text[600];
		for (uint32_t i = 0; i < k; i++) {
			uint32_t n = done + i;
			int len = snprintf(text, sizeof(text),
					   "From: User %u <user%u@example.org>\r\nTo: big@example.test\r\n"
					   "Subject: Topic number %u, part %u\r\nDate: Mon, 1 Jan 2024 %02u:%02u:%02u +0000\r\n"
					   "Message-ID: <m%u@example.org>\r\n\r\nBody of message %u, about topic %u.\r\n",
					   n % 97, n % 97, n % 12, n, (n / 3600) % 24, (n / 60) % 60, n % 60, n, n, n % 12);
			if (pwrite(fd, text, (size_t)len, off) != len)
				return 1;
			items[i] = (struct mc_store_item){ .fd = fd, .offset = (uint64_t)off, .length = (uint64_t)len };
			off += len;
		}
		if (mc_store_deliver_many(s, NULL, items, k, err, sizeof(err)) != (int)k) {
			fprintf(stderr, "fill_store: deliver: %s\n", err);
			return 1;
		}
		done += k;
	}
	double t1 = now_s();
	printf("fill_store: delivered %u messages in %.1f s (%.0f/s, batches of %d)\n", nmsgs, t1 - t0,
	       nmsgs / (t1 - t0), BATCH);
	int seen = mark(s, nmsgs, 3, MC_FLAG_SEEN), flagged = mark(s, nmsgs, 10, MC_FLAG_FLAGGED);
	if (seen < 0 || flagged < 0)
		return 1;
	printf("fill_store: %d marked \\Seen, %d \\Flagged in %.1f s\n", seen, flagged, now_s() - t1);
	mc_store_close(s);
	close(fd);
	return 0;
}
