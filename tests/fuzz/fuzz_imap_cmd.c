/*
 * fuzz_imap_cmd.c - libFuzzer target for imapd/parse.c: arbitrary bytes
 * go through the reader in pieces of varying size (the first byte picks
 * the piece size and whether the limits are the pre-login ones; after
 * login an APPEND's literals are kept or streamed out as its bits say),
 * and each complete command is read with the cursor: tag, name, then arguments as
 * every kind of element in turn (strings, lists, sequence sets walked to
 * their end, "$" resolved or not, numbers, flags, dates). Invariants: nothing is read past a
 * command, the reader's buffer stays within its limit, sequence-set ranges
 * are ordered.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imapd/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* "$" (SEARCHRES) as a session resolves it: a few ascending ranges. */
static const struct imap_seqrange saved_ranges[] = { { 1, 3 }, { 7, 7 }, { 500, 900 } };

static int
saved(void *arg, struct imap_seqset *set)
{
	(void)arg;
	set->ranges = saved_ranges;
	set->nranges = 3;
	return 0;
}

static void
walk_args(char *cmd, size_t len, int mode)
{
	struct imap_p p;
	char tag[IMAP_TAG_MAX + 1], name[IMAP_ATOM_MAX + 1], buf[512];
	imap_p_init(&p, cmd, len);
	p.utf8 = mode & 1;
	if (mode & 2)
		p.saved = saved;
	if (imap_p_tag(&p, tag, sizeof(tag)) < 0 || imap_p_sp(&p) < 0 || imap_p_atom_upper(&p, name, sizeof(name)) < 0)
		return;
	for (int guard = 0; guard < 10000 && !p.err; guard++) {
		if (p.p < cmd || p.p > cmd + len)
			abort();
		if (imap_p_at_end(&p)) {
			if (imap_p_end(&p) != 0)
				abort();
			return;
		}
		int c = imap_p_peek(&p);
		if (c == ' ') {
			p.p++;
			continue;
		}
		if (c == '(') {
			imap_p_list_open(&p);
			continue;
		}
		if (c == ')') {
			imap_p_list_close(&p);
			continue;
		}
		struct imap_str s;
		struct imap_seqset set;
		uint32_t n;
		uint64_t n64;
		time_t t;
		char *save = p.p;
		switch ((guard + mode) % 7) {
		case 0:
			if (imap_p_nstring(&p, &s) == 0 && s.s && (s.s < cmd || s.s + s.len > cmd + len))
				abort();
			break;
		case 1:
			if (imap_p_seqset(&p, &set) == 0) {
				size_t pos = 0;
				uint32_t lo, hi;
				while (imap_seqset_next(&set, &pos, 1000, &lo, &hi))
					if (lo > hi || lo == 0)
						abort();
				(void)imap_seqset_has(&set, 500, 1000);
			}
			break;
		case 2:
			imap_p_number(&p, &n);
			break;
		case 3:
			imap_p_number64(&p, &n64);
			break;
		case 4:
			imap_p_flag(&p, buf, sizeof(buf), true);
			break;
		case 5:
			if (imap_p_date_time(&p, &t) < 0)
				p.err = NULL, p.p = save, imap_p_date(&p, &t);
			break;
		default:
			imap_p_list_mailbox(&p, buf, sizeof(buf));
			break;
		}
		/* Any failure may end the walk; a success must have moved the cursor. */
		if (!p.err && p.p == save)
			abort();
		if (p.err && guard % 3 == 0) {
			/* try the next kind of element from the same place */
			p.err = NULL;
			p.p = save;
			if (++mode > 1000)
				return;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int mode = data[0];
	size_t piece = (size_t)(data[0] % 17) + 1;
	struct imap_reader_limits lim = (mode & 0x80) ? (struct imap_reader_limits){ 8192, 4096, 16384, 0 }
						       : (struct imap_reader_limits){ 256, 300, 1024, true };
	struct imap_reader r;
	imap_reader_init(&r, &lim);
	const char *in = (const char *)data + 1;
	size_t n = size - 1, off = 0;
	while (off < n) {
		size_t give = n - off < piece ? n - off : piece, used;
		enum imap_rd res = imap_reader_feed(&r, in + off, give, &used);
		if (used > give)
			abort();
		off += used;
		if (r.cmd.len > lim.command_max)
			abort();
		if (res == IMAP_RD_FATAL)
			break;
		if (res == IMAP_RD_DATA) {
			if (!r.lit_stream && r.lit_left != 0)
				abort();
			continue;   /* streamed bytes: never kept */
		}
		if (res == IMAP_RD_LITERAL) {
			if (!r.lit_pending)
				abort();
			/* keep, stream, or drop the command as a session refusing it would */
			unsigned how = (unsigned)(r.lit_len + (uint64_t)mode) % 3;
			if (how == 2)
				imap_reader_next(&r);
			else if (imap_reader_literal(&r, how ? IMAP_LIT_STREAM : IMAP_LIT_KEEP) == IMAP_RD_FATAL)
				break;
			continue;
		}
		if (res == IMAP_RD_COMMAND) {
			size_t len;
			char *cmd = imap_reader_command(&r, &len);
			walk_args(cmd, len, mode);
			imap_reader_next(&r);
		} else if (res == IMAP_RD_MORE && used == 0 && give > 0) {
			abort();   /* the reader must take what it is given unless an event stops it */
		}
	}
	imap_reader_free(&r);
	return 0;
}
