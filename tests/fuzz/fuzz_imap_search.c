/*
 * fuzz_imap_search.c - what follows SEARCH, SORT and THREAD in a client's
 * command (quoted strings, literals with lying lengths, sequence sets,
 * nesting): the parsers must stay inside the bytes given, bound their
 * nesting and size, and leave a program the evaluator, SORT, THREAD and
 * the formatters run without a fault. The first byte picks SEARCH (with
 * ESEARCH RETURN), SORT or THREAD; the rest is the command text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imapd/search.h"
#include "imapd/sort.h"
#include "imapd/thread.h"
#include "mail/mailstore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *
field(void *arg, const struct imap_search_msg *m, enum imap_search_field f)
{
	static const char *const v[ISF_COUNT] = {
		"Re: [list] Fwd: hello (fwd)", "\"Doe, J\" <jd@x>", "a@x, b@y", NULL, "g: c@x;",
		"<id1@x>", "<id0@x>", "<id0@x> <id1@x>",
	};
	(void)arg;
	return m->seq == 2 && f == ISF_SUBJECT ? "[fwd: hello]" : v[f];
}

static int
sent(void *arg, const struct imap_search_msg *m, int64_t *t, int *tz)
{
	(void)arg;
	*t = 1700000000 + m->seq;
	*tz = -300;
	return m->seq == 3 ? -1 : 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int mode = data[0] % 3;
	/* an exact-size copy, so reading one byte too far is caught */
	char *cmd = malloc(size - 1 ? size - 1 : 1);
	if (cmd == NULL)
		return 0;
	memcpy(cmd, data + 1, size - 1);
	char *p = cmd, *end = cmd + size - 1;
	const char *why = NULL;
	struct imap_search prog = { 0 };
	struct imap_sort_crit crit[IMAP_SORT_CRIT_MAX];
	size_t nc = 0;
	enum imap_thread_alg alg = IMAP_THREAD_REFERENCES;
	int r = 0;
	if (mode == 0)
		r = imap_search_parse_return(&p, end, &prog, &why);
	else if (mode == 1)
		r = imap_sort_parse(&p, end, crit, &nc, &why);
	else
		r = imap_thread_parse_alg(&p, end, &alg, &why);
	if (r == 0 && imap_search_parse(&p, end, mode != 0, &prog, &why) == 0) {
		if (p < cmd || p > end)
			abort();
		struct imap_search_msg m[3];
		for (uint32_t i = 0; i < 3; i++)
			m[i] = (struct imap_search_msg){ .seq = i + 1, .uid = 10 * (i + 1), .flags = i, .keywords = "a $b",
							 .size = 100 * i, .internal_date = 1700000000 - 86400 * i,
							 .modseq = i + 1 };
		struct imap_search_src src = { .max_seq = 3, .max_uid = 30, .field = field, .sent_date = sent };
		uint32_t nums[3];
		size_t n = 0;
		for (int i = 0; i < 3; i++)
			if (imap_search_match(&prog, &m[i], &src))
				nums[n++] = m[i].uid;
		struct mc_buf out;
		mc_buf_init(&out, 1 << 16);
		imap_esearch_format(&out, "t", true, prog.ret | IMAP_RET_ALL | IMAP_RET_MIN, nums, n, 7);
		size_t order[3];
		if (mode == 1 && imap_sort_run(crit, nc, m, 3, &src, order) == 0)
			imap_sort_format(&out, m, order, 3, false, 0);
		if (mode == 2)
			imap_thread_run(alg, m, 3, &src, true, &out);
		mc_buf_free(&out);
		imap_search_free(&prog);
	}
	/* the subject and address helpers on the raw bytes */
	char *s = malloc(size);
	if (s) {
		memcpy(s, data + 1, size - 1);
		s[size - 1] = '\0';
		struct mc_buf b;
		mc_buf_init(&b, 1 << 16);
		imap_base_subject(s, &b);
		char mb[64];
		imap_sort_first_mailbox(s, mb, sizeof(mb));
		mc_buf_free(&b);
		free(s);
	}
	free(cmd);
	return 0;
}
