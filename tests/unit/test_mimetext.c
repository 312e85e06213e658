/*
 * test_mimetext.c - the decoded text of a stored message (mail/mimetext.c):
 * header fields with encoded words decoded, base64 and quoted-printable
 * text parts decoded, ISO-8859-1 and a multi-byte charset cut across the
 * chunk boundary made UTF-8, attachments left out, the walk stopped by its
 * callback, and HEADER/BODY chosen apart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/mimetext.h"
#include "util/buf.h"

struct collect {
	struct mc_buf all;    /* the pieces, a new one after "|" */
	int stop_after;       /* stop at this piece (0: never) */
	int n;
};

static int
piece(void *arg, const char *s, size_t n, bool cont)
{
	struct collect *c = arg;
	if (!cont)
		mc_buf_add(&c->all, "|", 1);
	mc_buf_add(&c->all, s, n);
	return ++c->n == c->stop_after;
}

static int
file_of(const char *text, size_t n)
{
	char path[] = "/tmp/test_mimetext_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	return fd;
}

static const char MSG[] =
	"Subject: =?iso-8859-1?q?R=E9sum=E9?= and =?utf-8?B?emVicmE=?=\n"
	"From: a@example.test\n"
	"Content-Type: multipart/mixed; boundary=b\n"
	"\n"
	"--b\n"
	"Content-Type: text/plain; charset=utf-8\n"
	"Content-Transfer-Encoding: base64\n"
	"\n"
	"emFuemliYXI=\n"
	"--b\n"
	"Content-Type: text/html; charset=iso-8859-1\n"
	"Content-Transfer-Encoding: quoted-printable\n"
	"\n"
	"<p>Caf=E9 extra=\n"
	"ordinary</p>\n"
	"--b\n"
	"Content-Type: application/pdf; name=\"=?utf-8?q?Bericht?=.pdf\"\n"
	"Content-Transfer-Encoding: base64\n"
	"\n"
	"c2VjcmV0\n"
	"--b--\n";

static void
test_parts(void **state)
{
	int fd = file_of(MSG, sizeof(MSG) - 1);
	struct collect c = { 0 };
	mc_buf_init(&c.all, 1 << 20);
	assert_int_equal(mc_mimetext_scan(fd, MC_MIMETEXT_HEADER | MC_MIMETEXT_BODY, piece, &c), 0);
	const char *a = c.all.data;
	assert_non_null(strstr(a, "|Subject: R\xc3\xa9sum\xc3\xa9 and zebra"));
	assert_non_null(strstr(a, "|From: a@example.test"));
	assert_non_null(strstr(a, "|zanzibar"));
	assert_non_null(strstr(a, "|<p>Caf\xc3\xa9 extraordinary</p>"));
	/* the attachment's header is text of the body, its content is not */
	assert_non_null(strstr(a, "application/pdf"));
	assert_null(strstr(a, "secret"));
	assert_null(strstr(a, "c2VjcmV0"));
	mc_buf_free(&c.all);

	/* BODY alone: no top header */
	struct collect b = { 0 };
	mc_buf_init(&b.all, 1 << 20);
	assert_int_equal(mc_mimetext_scan(fd, MC_MIMETEXT_BODY, piece, &b), 0);
	assert_null(strstr(b.all.data, "zebra"));
	assert_non_null(strstr(b.all.data, "zanzibar"));
	mc_buf_free(&b.all);

	/* HEADER alone */
	struct collect h = { 0 };
	mc_buf_init(&h.all, 1 << 20);
	assert_int_equal(mc_mimetext_scan(fd, MC_MIMETEXT_HEADER, piece, &h), 0);
	assert_non_null(strstr(h.all.data, "zebra"));
	assert_null(strstr(h.all.data, "zanzibar"));
	mc_buf_free(&h.all);

	/* the callback stops the walk */
	struct collect s = { .stop_after = 1 };
	mc_buf_init(&s.all, 1 << 20);
	assert_int_equal(mc_mimetext_scan(fd, MC_MIMETEXT_HEADER | MC_MIMETEXT_BODY, piece, &s), 1);
	assert_int_equal(s.n, 1);
	mc_buf_free(&s.all);
	close(fd);
	(void)state;
}

/* A long EUC-JP body: a chunk of the reader ends inside a two-byte character; the converter must join it. */
static void
test_charset_across_chunks(void **state)
{
	const char head[] = "Content-Type: text/plain; charset=euc-jp\nContent-Transfer-Encoding: 8bit\n\n";
	size_t nchars = MC_MIMETEXT_CHUNK / 2 + 7;
	size_t n = sizeof(head) - 1 + 1 + 2 * nchars;
	char *msg = malloc(n);
	memcpy(msg, head, sizeof(head) - 1);
	char *p = msg + sizeof(head) - 1;
	*p++ = 'x';   /* one byte first, so the chunk's end falls between the two bytes of a character */
	for (size_t i = 0; i < nchars; i++) {
		*p++ = (char)0xa4;   /* U+3042 HIRAGANA LETTER A */
		*p++ = (char)0xa2;
	}
	int fd = file_of(msg, n);
	struct collect c = { 0 };
	mc_buf_init(&c.all, 8u << 20);
	assert_int_equal(mc_mimetext_scan(fd, MC_MIMETEXT_BODY, piece, &c), 0);
	size_t count = 0;
	for (size_t i = 0; i + 2 < c.all.len; i++)
		if (memcmp(c.all.data + i, "\xe3\x81\x82", 3) == 0)
			count++;
	assert_int_equal(count, nchars);
	assert_int_equal(c.all.len, 1 + 1 + 3 * nchars);   /* "|", "x", the characters */
	mc_buf_free(&c.all);
	free(msg);
	close(fd);
	(void)state;
}

static void
test_unknown_charset_and_cte(void **state)
{
	static const char m[] = "Content-Type: text/plain; charset=x-nonesuch\n"
				"Content-Transfer-Encoding: x-gzip64\n\nplain words here\n";
	int fd = file_of(m, sizeof(m) - 1);
	struct collect c = { 0 };
	mc_buf_init(&c.all, 1 << 20);
	assert_int_equal(mc_mimetext_scan(fd, MC_MIMETEXT_BODY, piece, &c), 0);
	assert_non_null(strstr(c.all.data, "plain words here"));
	mc_buf_free(&c.all);
	close(fd);
	assert_int_equal(mc_mimetext_scan(-1, MC_MIMETEXT_BODY, piece, &c), -1);
	(void)state;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parts),
		cmocka_unit_test(test_charset_across_chunks),
		cmocka_unit_test(test_unknown_charset_and_cte),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
