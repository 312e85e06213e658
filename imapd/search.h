/*
 * search.h - IMAP SEARCH (RFC 3501 6.4.4 / RFC 9051 6.4.4, ESEARCH RFC
 * 4731, CONDSTORE MODSEQ RFC 7162): the search program, its parser, its
 * evaluator, and the response formatters. SORT and THREAD (sort.h,
 * thread.h) take the same program.
 *
 * How the IMAP command code uses it (the agreement with commands.c):
 *
 *   1. After "SEARCH" / "UID SEARCH" and one SP, hand the rest of the
 *      command to imap_search_parse_return() (ESEARCH "RETURN (...)",
 *      optional), then imap_search_parse() ("[CHARSET x] keys..."). Both
 *      read the raw command text as the reader assembled it (literals
 *      "{n}\r\n" + bytes in place, also "{n+}"), advance *pp, and stop at
 *      the line end; they copy what they keep, so the program outlives the
 *      command buffer. On failure they return -1 with *why: answer BAD
 *      (or NO [BADCHARSET (UTF-8 US-ASCII)] when *why is
 *      IMAP_SEARCH_BADCHARSET).
 *   2. For each message of the selected view, fill a struct
 *      imap_search_msg from the index row (no file opened) and call
 *      imap_search_match() with a struct imap_search_src whose callbacks
 *      reach the cached header fields and, only for BODY/TEXT/HEADER of an
 *      uncached field, the message file. The program's keys are ordered so
 *      that what the index answers is tried before any file is read.
 *   3. Format the answer: imap_search_format() ("* SEARCH 1 4 9" with
 *      " (MODSEQ n)" when the program had MODSEQ) or
 *      imap_esearch_format() for RETURN (...).
 *
 * Owns the program (imap_search_free). Never touches the session or the
 * store itself: everything about a message comes through the callbacks.
 * Parsing is bounded: IMAP_SEARCH_NEST_MAX deep, IMAP_SEARCH_KEYS_MAX
 * keys, strings up to IMAP_SEARCH_STR_MAX; a literal's length is checked
 * against what the command holds before it is used.
 */
#ifndef IMAPD_SEARCH_H
#define IMAPD_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define IMAP_SEARCH_NEST_MAX 16        /* parenthesised lists, NOT and OR together */
#define IMAP_SEARCH_KEYS_MAX 1000      /* nodes in one program */
#define IMAP_SEARCH_STR_MAX 8192       /* one string argument */
#define IMAP_SEARCH_RANGES_MAX 10000   /* ranges in one sequence set */

/* *why of a CHARSET the server cannot search in: answer NO [BADCHARSET (UTF-8 US-ASCII)]. */
extern const char IMAP_SEARCH_BADCHARSET[];

enum imap_search_kind {
	ISK_AND,            /* every child (a parenthesised list, or the whole program) */
	ISK_OR,             /* either of two children */
	ISK_NOT,            /* not the child */
	ISK_ALL,
	ISK_FLAGS,          /* (flags & mask) == want: ANSWERED, UNSEEN, DRAFT, ... */
	ISK_RECENT,         /* want: RECENT (1) / OLD (0); NEW is RECENT UNSEEN */
	ISK_KEYWORD,        /* str; UNKEYWORD is NOT KEYWORD */
	ISK_FIELD,          /* FROM TO CC BCC SUBJECT: field, str (decoded, case-insensitive substring) */
	ISK_HEADER,         /* HEADER name str: hname, str ("" = has the field) */
	ISK_BODY,           /* str in the body */
	ISK_TEXT,           /* str in the header or the body */
	ISK_BEFORE, ISK_ON, ISK_SINCE,                 /* internal date, day granularity (UTC) */
	ISK_SENTBEFORE, ISK_SENTON, ISK_SENTSINCE,     /* Date: header's own day */
	ISK_LARGER, ISK_SMALLER,                       /* RFC822.SIZE */
	ISK_SEQSET, ISK_UIDSET,                        /* set */
	ISK_MODSEQ,                                    /* modseq >= num */
};

/* Header fields the index caches decoded (UTF-8, unfolded); SORT/THREAD use them too. */
enum imap_search_field {
	ISF_SUBJECT, ISF_FROM, ISF_TO, ISF_CC, ISF_BCC,
	ISF_MESSAGE_ID, ISF_IN_REPLY_TO, ISF_REFERENCES,
	/* SORT: the addr-mailbox of the first address (RFC 5256); NULL: sort.c takes it from ISF_FROM... */
	ISF_FROM_SORT, ISF_TO_SORT, ISF_CC_SORT,
	ISF_COUNT
};

struct imap_search_range {
	uint32_t lo, hi;     /* 0 stands for '*' (the highest number in use) */
};

struct imap_search_node {
	enum imap_search_kind kind;
	struct imap_search_node *child;   /* AND: first child; NOT: the child; OR: the first of two */
	struct imap_search_node *next;    /* the next sibling */
	enum imap_search_field field;     /* ISK_FIELD */
	uint32_t mask, want;              /* ISK_FLAGS, ISK_RECENT (want) */
	char *str;                        /* NUL-terminated UTF-8, case-folded for matching (search.c fold_cp) */
	size_t strlen;
	char *hname;                      /* ISK_HEADER field name */
	int64_t day;                      /* date keys: the day's start, UTC seconds */
	uint64_t num;                     /* LARGER SMALLER MODSEQ */
	struct imap_search_range *set;    /* SEQSET UIDSET */
	size_t nset;
	bool dollar;                      /* "$" (SEARCHRES): the saved result (the caller's), or'ed with set */
};

/* ESEARCH RETURN options (RFC 4731); none given with "RETURN ()" means ALL. */
enum {
	IMAP_RET_MIN = 1u << 0,
	IMAP_RET_MAX = 1u << 1,
	IMAP_RET_ALL = 1u << 2,
	IMAP_RET_COUNT = 1u << 3,
	IMAP_RET_SAVE = 1u << 4,          /* SEARCHRES: the caller keeps the result */
};

struct imap_search {
	struct imap_search_node *root;    /* an ISK_AND */
	unsigned nodes;
	bool has_modseq;                  /* answer with (MODSEQ highest-of-matches) */
	bool needs_file;                  /* BODY, TEXT or an uncached HEADER: files will be read */
	bool esearch;                     /* RETURN (...) was given */
	unsigned ret;                     /* IMAP_RET_* */
};

/* One message as the index knows it (the session fills it from its view). */
struct imap_search_msg {
	uint32_t seq, uid;
	uint32_t flags;          /* enum mc_store_flag (mailstore.h) */
	bool recent;             /* \Recent in this session */
	const char *keywords;    /* space-separated; "" when none */
	uint64_t size;           /* RFC822.SIZE */
	int64_t internal_date;   /* unix time */
	uint64_t modseq;
};

/* What the evaluator asks of the caller about a message; arg is the caller's. */
struct imap_search_src {
	void *arg;
	uint32_t max_seq, max_uid;   /* what '*' stands for */
	/*
	 * The decoded value of a cached field of m (NUL-terminated UTF-8;
	 * valid until the next call), NULL when the message has no such
	 * field. NULL callback: those keys read the message's header instead.
	 */
	const char *(*field)(void *arg, const struct imap_search_msg *m, enum imap_search_field f);
	/* The Date: header as UTC seconds and its zone in minutes: 0, or -1 when missing/unparsable. */
	int (*sent_date)(void *arg, const struct imap_search_msg *m, int64_t *t, int *tz_min);
	/* Open the message file read-only (mc_store_msg_open): fd the evaluator closes, or -1. */
	int (*open)(void *arg, const struct imap_search_msg *m);
	/*
	 * Decode a header value for matching (RFC 2047 words to UTF-8,
	 * unfolded) into out; NULL: values are matched as they are.
	 */
	int (*decode)(const char *s, size_t n, struct mc_buf *out);
	/* Is seq/uid in a "$" set (SEARCHRES)? NULL: "$" matches nothing. */
	bool (*saved)(void *arg, const struct imap_search_msg *m);
};

/*
 * Parse "RETURN (opts) " when it is next (ESEARCH); sets prog->esearch and
 * prog->ret. 0 (also when there is no RETURN), -1 with *why.
 */
int imap_search_parse_return(char **pp, const char *end, struct imap_search *prog, const char **why);

/*
 * Parse "[CHARSET cs SP] search-key *(SP search-key)" up to the line end
 * into prog (zeroed by the caller, or as parse_return left it). With
 * charset_first (SORT, THREAD) the charset is there without the CHARSET
 * word. UTF-8, US-ASCII are searched; anything else is
 * IMAP_SEARCH_BADCHARSET. 0 with *pp at the line end, -1 with *why.
 */
int imap_search_parse(char **pp, const char *end, bool charset_first, struct imap_search *prog, const char **why);

/* Free what the parser built; prog itself is the caller's. */
void imap_search_free(struct imap_search *prog);

/* Does m match? 1 yes, 0 no (also when its file cannot be read: logged by the caller's open). */
int imap_search_match(const struct imap_search *prog, const struct imap_search_msg *m,
		      const struct imap_search_src *src);

/* "* SEARCH n n n" (+ " (MODSEQ m)" when modseq is non-zero) CRLF. */
int imap_search_format(struct mc_buf *out, const uint32_t *nums, size_t n, uint64_t modseq);

/*
 * "* ESEARCH (TAG "tag") [UID] MIN a MAX b COUNT c ALL set [MODSEQ m]" CRLF
 * for the options in ret (nums sorted ascending).
 */
int imap_esearch_format(struct mc_buf *out, const char *tag, bool uid, unsigned ret, const uint32_t *nums, size_t n,
			uint64_t modseq);

/* A sorted list of numbers as a compact sequence set "1:3,7,9:10" (appended to out). */
int imap_seqset_format(struct mc_buf *out, const uint32_t *nums, size_t n);

/*
 * Case-insensitive substring search: is needle (len nl, already folded
 * as the parser folds strings) in hay (len hl)? ASCII and the two-byte
 * UTF-8 letters of Latin-1, Latin Extended-A, Greek and Cyrillic.
 */
bool imap_search_contains(const char *hay, size_t hl, const char *needle, size_t nl);

#endif
