/*
 * cache_cost.c - what the message cache costs queued's delivery workers:
 * CPU per message of the streaming MIME parse plus the ENVELOPE,
 * BODYSTRUCTURE, BODY, part table and decoded SEARCH fields, for a typical
 * 4 KiB message (multipart/alternative, text and HTML, 15 header fields)
 * and for each message of the reference corpus; and the CPU of a whole
 * mc_store_deliver_many (write, fsync, index row with the cache) per
 * message, so the parse's share is visible.
 *
 *   build/bench/mime/cache_cost [ITERATIONS] [DIR]
 *
 * Prints one line per figure. Not a test: run by hand, figures go to
 * docs/performance.md.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mail/mailstore.h"
#include "mail/mime.h"

static double
cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A 4 KiB message as a mail client sends it (CRLF). */
static size_t
make_message(char *m, size_t cap)
{
	size_t n = (size_t)snprintf(m, cap,
		"Return-Path: <alice@example.test>\r\n"
		"Delivered-To: bob@example.test\r\n"
		"Received: from mx.example.test (mx.example.test [192.0.2.1])\r\n\tby mail.example.test with ESMTPS id 4ABC123\r\n\tfor <bob@example.test>; Thu, 26 Nov 2026 10:00:01 +0000\r\n"
		"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.test; s=sel;\r\n\th=from:to:subject:date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n\tb=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSBidXQgaXQgaGFzIHRoZSByaWdodCBzaGFwZQ==\r\n"
		"From: \"Alice Example\" <alice@example.test>\r\n"
		"To: Bob <bob@example.test>, carol@example.test\r\n"
		"Cc: =?UTF-8?Q?J=C3=B6rg?= <jorg@example.test>\r\n"
		"Subject: =?UTF-8?Q?Quarterly_report_=E2=80=94_draft?=\r\n"
		"Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n"
		"Message-ID: <20261126100000.4ABC123@example.test>\r\n"
		"In-Reply-To: <20261125090000.1@example.test>\r\n"
		"References: <20261124080000.1@example.test> <20261125090000.1@example.test>\r\n"
		"MIME-Version: 1.0\r\n"
		"Content-Type: multipart/alternative; boundary=\"=_b1_4a9c\"\r\n"
		"\r\n"
		"--=_b1_4a9c\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n");
	while (n < 2300)
		n += (size_t)snprintf(m + n, cap - n, "The figures for the quarter are attached below, see the table. =E2=80=94 A.\r\n");
	n += (size_t)snprintf(m + n, cap - n, "--=_b1_4a9c\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>\r\n");
	while (n < 4050)
		n += (size_t)snprintf(m + n, cap - n, "<p>The figures for the quarter are attached below.</p>\r\n");
	n += (size_t)snprintf(m + n, cap - n, "</body></html>\r\n--=_b1_4a9c--\r\n");
	return n;
}

/* The file form (LF), as the parser sees it at delivery. */
static size_t
to_lf(char *m, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++)
		if (!(m[i] == '\r' && i + 1 < n && m[i + 1] == '\n'))
			m[o++] = m[i];
	return o;
}

static double
parse_cost(const char *m, size_t n, int iters)
{
	double t0 = cpu_now();
	for (int i = 0; i < iters; i++) {
		struct mc_mime_parser *p = mc_mime_parser_new();
		for (size_t o = 0; o < n; o += 65536)
			mc_mime_parser_feed(p, m + o, n - o < 65536 ? n - o : 65536);
		mc_mime_parser_finish(p);
		mc_mime_parser_free(p);
	}
	return (cpu_now() - t0) / iters;
}

static double
cache_cost(const char *path, int iters)
{
	int fd = open(path, O_RDONLY);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0)
		return -1;
	double t0 = cpu_now();
	for (int i = 0; i < iters; i++) {
		struct mc_store_cache c;
		if (mc_store_cache_parse_fd(fd, 0, (uint64_t)sb.st_size, &c) < 0)
			return -1;
		mc_store_cache_free(&c);
	}
	close(fd);
	return (cpu_now() - t0) / iters;
}

int
main(int argc, char **argv)
{
	int iters = argc > 1 ? atoi(argv[1]) : 20000;
	const char *dir = argc > 2 ? argv[2] : "/tmp";
	static char m[8192];
	size_t n = make_message(m, sizeof(m));
	char tmpl[512], path[600], err[256];
	snprintf(tmpl, sizeof(tmpl), "%s/cache_cost.XXXXXX", dir);
	if (mkdtemp(tmpl) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/msg", tmpl);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, m, n) != (ssize_t)n)
		return 1;
	char lf[8192];
	memcpy(lf, m, n);
	size_t nlf = to_lf(lf, n);
	snprintf(path, sizeof(path), "%s/msg.lf", tmpl);
	int fdl = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fdl < 0 || write(fdl, lf, nlf) != (ssize_t)nlf)
		return 1;
	close(fdl);
	printf("message: %zu bytes as sent, %zu as stored\n", n, nlf);
	printf("parse only (tree):            %.2f us CPU per message\n", parse_cost(lf, nlf, iters) * 1e6);
	printf("parse + cache strings:        %.2f us CPU per message\n", cache_cost(path, iters) * 1e6);

	/* Whole deliveries, batches of 20 as queued's workers make them. */
	char store[600];
	snprintf(store, sizeof(store), "%s/store", tmpl);
	struct mc_store *s = mc_store_open(store, MC_STORE_CREATE, err, sizeof(err));
	if (s == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	int batches = iters / 20 / 10 + 1;
	struct mc_store_item items[20];
	struct rusage r0, r1;
	getrusage(RUSAGE_SELF, &r0);
	struct timespec w0, w1;
	clock_gettime(CLOCK_MONOTONIC, &w0);
	for (int b = 0; b < batches; b++) {
		for (int i = 0; i < 20; i++)
			items[i] = (struct mc_store_item){ .fd = fd, .offset = 0, .length = n };
		if (mc_store_deliver_many(s, NULL, items, 20, err, sizeof(err)) != 20) {
			fprintf(stderr, "deliver: %s\n", err);
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &w1);
	getrusage(RUSAGE_SELF, &r1);
	double user = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) +
		      (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6;
	double sys = (double)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) +
		     (double)(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;
	double wall = (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) / 1e9;
	int nmsg = batches * 20;
	printf("mc_store_deliver_many:        %.2f us user + %.2f us sys CPU per message, %.0f messages/s wall"
	       " (%d messages)\n",
	       user / nmsg * 1e6, sys / nmsg * 1e6, nmsg / wall, nmsg);
	mc_store_close(s);
	close(fd);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
	return system(cmd) == 0 ? 0 : 1;
}
