/*
 * parse.h - imapd's parser of client input, RFC 3501 §9 / RFC 9051 §9.
 *
 * Two parts, both without I/O:
 *
 * The reader (imap_reader_*) assembles one command from the byte stream:
 * lines, and literals announced at a line's end ({n}, {n+} of LITERAL+,
 * ~{n} of BINARY). It decides about a literal from its announced length
 * alone, before any of its bytes is kept: over the limit, a synchronising
 * literal is refused (the client waits for "+", so it sends nothing) and a
 * non-synchronising one ends the connection. Lengths are parsed with
 * overflow checks ({4294967296} is refused, {-1} is no literal at all).
 * The command is kept as it came: lines with their line ends and literal
 * bytes in place, in one bounded buffer. The literals of an APPEND command
 * may instead be left to the caller (append_literals): the reader stops at
 * the announcement (IMAP_RD_LITERAL) and the caller either keeps it as any
 * other literal or takes it as a stream (IMAP_RD_DATA, never buffered
 * here), so a message of any size costs no more memory than a line.
 *
 * The cursor (imap_p_*) reads the §9 grammar from an assembled command,
 * one element at a time, in the manner of mc_msg_get_*: each reader checks
 * the bytes it needs are there, fails with a reason, and never reads past
 * the end. Lists nest at most IMAP_NEST_MAX deep. Quoted strings are
 * unescaped in place (the command buffer is the caller's and writable);
 * NUL is refused everywhere but inside literal8. Sequence sets are kept
 * as their text and walked range by range (imap_seqset_next), so
 * 1:4294967295 costs nothing.
 *
 * Called by session.c (reader), commands.c, mailbox.c, fetch.c and the
 * SEARCH/SORT code (cursor); fuzzed by tests/fuzz/fuzz_imap_cmd.c.
 */
#ifndef IMAPD_PARSE_H
#define IMAPD_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/buf.h"

/* Longest tag and command name kept. */
#define IMAP_TAG_MAX 64
#define IMAP_ATOM_MAX 64
/* Deepest nesting of parenthesised lists (and search programs). */
#define IMAP_NEST_MAX 16

/* ---- the reader ---- */

struct imap_reader_limits {
	size_t line_max;        /* one line between literals, line end included */
	uint64_t literal_max;   /* one literal */
	size_t command_max;     /* the whole command, lines and literals */
	bool append_literals;   /* an APPEND command's literals go to the caller first (IMAP_RD_LITERAL) */
};

enum imap_rd {
	IMAP_RD_MORE = 0,       /* everything given was taken; a command is not complete yet */
	IMAP_RD_COMMAND,        /* a command is complete: imap_reader_command(), then imap_reader_next() */
	IMAP_RD_CONTINUE,       /* a synchronising literal is accepted: send "+ ..." and feed on */
	IMAP_RD_REFUSED,        /* a synchronising literal is over the limit: the command is dropped,
				   answer its tag (imap_reader_tag) with BAD/NO and feed on */
	IMAP_RD_FATAL,          /* a non-synchronising literal over the limit, or a line too long:
				   the input cannot be resynchronised; say BYE and close */
	IMAP_RD_LITERAL,        /* (append_literals) an APPEND command announced a literal: lit_len,
				   lit_sync, the command so far in imap_reader_command(); answer with
				   imap_reader_literal() or drop the command (imap_reader_next) */
	IMAP_RD_DATA,           /* bytes of a streamed literal: p[0..*used) are the caller's, taken */
};

/* What to do with an announced literal (IMAP_RD_LITERAL). */
enum imap_lit {
	IMAP_LIT_KEEP,          /* as any literal: checked against the limits, kept in the command */
	IMAP_LIT_STREAM,        /* handed out as IMAP_RD_DATA, not kept: the command goes on after it */
};

struct imap_reader {
	struct imap_reader_limits lim;
	struct mc_buf cmd;      /* the command so far */
	size_t line_start;      /* where the current line starts in cmd */
	uint64_t lit_left;      /* literal bytes still to come */
	bool complete;          /* cmd holds a whole command (until imap_reader_next) */
	char tag[IMAP_TAG_MAX + 1];   /* of the refused command (IMAP_RD_REFUSED) */
	const char *why;        /* what was refused (IMAP_RD_REFUSED, IMAP_RD_FATAL) */
	uint64_t lit_len;       /* the announced literal (IMAP_RD_LITERAL) */
	bool lit_sync;          /* ... is synchronising: the client waits for "+" */
	bool lit_pending;       /* IMAP_RD_LITERAL was returned, imap_reader_literal not yet called */
	bool lit_stream;        /* the literal in progress is streamed out */
};

void imap_reader_init(struct imap_reader *r, const struct imap_reader_limits *lim);
/* Limits for the next command (e.g. larger after login). */
void imap_reader_set_limits(struct imap_reader *r, const struct imap_reader_limits *lim);
void imap_reader_free(struct imap_reader *r);
/*
 * Take bytes from p[0..n); *used says how many were taken. Stops at the
 * first event (anything but IMAP_RD_MORE) with the rest untaken.
 */
enum imap_rd imap_reader_feed(struct imap_reader *r, const char *p, size_t n, size_t *used);
/*
 * After IMAP_RD_LITERAL: keep or stream the announced literal. Returns what
 * feed would have: IMAP_RD_CONTINUE (send "+"), IMAP_RD_MORE, or for a kept
 * one over the limits IMAP_RD_REFUSED / IMAP_RD_FATAL.
 */
enum imap_rd imap_reader_literal(struct imap_reader *r, enum imap_lit how);
/* The complete command (IMAP_RD_COMMAND): writable, valid until imap_reader_next. */
char *imap_reader_command(struct imap_reader *r, size_t *len);
/* Forget the command (after it was run) and start the next; keeps the storage unless it grew large. */
void imap_reader_next(struct imap_reader *r);
/* Is a command partly read (a literal or a line in progress)? */
bool imap_reader_busy(const struct imap_reader *r);

/* ---- the cursor ---- */

struct imap_seqset;

struct imap_p {
	char *p;                /* next byte */
	char *end;              /* end of the command */
	int depth;              /* open lists */
	const char *err;        /* the first error, NULL while all is well */
	bool utf8;              /* UTF8=ACCEPT: 8-bit text in quoted strings and atoms of names */
	/*
	 * SEARCHRES "$" (RFC 5182): fills set->ranges with the saved result
	 * as the command reads sets (UIDs or sequence numbers); 0, or -1 when
	 * it cannot (out of memory). NULL: "$" stands for the empty set.
	 */
	int (*saved)(void *arg, struct imap_seqset *set);
	void *saved_arg;
};

/* A string as it stands in the command buffer (not NUL-terminated; may hold NUL in literal8). */
struct imap_str {
	const char *s;
	size_t len;
	bool literal;
	bool binary;            /* ~{n} */
};

/* One range of a set given as ranges: lo <= hi, no '*'. */
struct imap_seqrange {
	uint32_t lo, hi;
};

struct imap_seqset {
	const char *s;          /* the text, e.g. "1:3,7,9:*" */
	size_t len;
	bool dollar;            /* "$" (SEARCHRES): ranges below hold the saved result (none: empty) */
	/* "$" resolved: ascending, disjoint ranges (owned by whoever resolved it), used instead of s */
	const struct imap_seqrange *ranges;
	size_t nranges;
};

void imap_p_init(struct imap_p *p, char *cmd, size_t len);
/* Fail with why (the first failure is kept); always returns -1. */
int imap_p_fail(struct imap_p *p, const char *why);
/* The next byte, or -1 at the end of the command line. */
int imap_p_peek(const struct imap_p *p);
/* Take byte c when it is next; true when taken. */
bool imap_p_accept(struct imap_p *p, char c);
/* One SP. */
int imap_p_sp(struct imap_p *p);
/* The command's end: its last line end. */
int imap_p_end(struct imap_p *p);
bool imap_p_at_end(const struct imap_p *p);

/* tag: 1*<ASTRING-CHAR except "+">. */
int imap_p_tag(struct imap_p *p, char *out, size_t outsz);
/* atom, uppercased into out (command names, fetch items, search keys). */
int imap_p_atom_upper(struct imap_p *p, char *out, size_t outsz);
/* atom as it is. */
int imap_p_atom(struct imap_p *p, char *out, size_t outsz);
/* string: quoted or literal, in place. */
int imap_p_string(struct imap_p *p, struct imap_str *out);
/* astring into out (NUL-terminated; a NUL inside or a value too long fails). */
int imap_p_astring(struct imap_p *p, char *out, size_t outsz);
/* astring in place (no copy; for large values). */
int imap_p_astring_ref(struct imap_p *p, struct imap_str *out);
/* nstring: NIL gives out->s == NULL. */
int imap_p_nstring(struct imap_p *p, struct imap_str *out);
/* list-mailbox: 1*list-char (atom chars, '%', '*', ']') or a string. */
int imap_p_list_mailbox(struct imap_p *p, char *out, size_t outsz);
/* number (32 bits) and number64 (RFC 9051 / CONDSTORE mod-sequence values, 63 bits). */
int imap_p_number(struct imap_p *p, uint32_t *out);
int imap_p_number64(struct imap_p *p, uint64_t *out);
int imap_p_nz_number(struct imap_p *p, uint32_t *out);
/* "(" and ")" with the nesting bound. */
int imap_p_list_open(struct imap_p *p);
int imap_p_list_close(struct imap_p *p);
/* flag: "\" atom, keyword atom, or "\*" when star_ok. out keeps the backslash. */
int imap_p_flag(struct imap_p *p, char *out, size_t outsz, bool star_ok);
/* sequence-set (with '*', ranges either way round, and '$' alone, resolved through p->saved). */
int imap_p_seqset(struct imap_p *p, struct imap_seqset *out);
/* date-time: "dd-Mon-yyyy hh:mm:ss +zzzz" (quoted) into a unix time. */
int imap_p_date_time(struct imap_p *p, time_t *out);
/* date: d-Mon-yyyy, quoted or not (SEARCH); the day's start in UTC. */
int imap_p_date(struct imap_p *p, time_t *out);

/*
 * The next range of set (from *pos, 0 at first) with '*' meaning star:
 * *lo <= *hi. false when there is none left. A set that passed
 * imap_p_seqset never fails here.
 */
bool imap_seqset_next(const struct imap_seqset *set, size_t *pos, uint32_t star, uint32_t *lo, uint32_t *hi);
/* Is n in set? (A resolved "$" is searched by halves.) */
bool imap_seqset_has(const struct imap_seqset *set, uint32_t n, uint32_t star);
/* The highest number set names, '*' as star (for bounding a walk). */
uint32_t imap_seqset_max(const struct imap_seqset *set, uint32_t star);

#endif
