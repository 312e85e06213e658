/*
 * sort.h - IMAP SORT (RFC 5256 section 3): sort criteria, their parser,
 * the sort itself, and base-subject extraction (section 2.1), which
 * THREAD uses too.
 *
 * How the command code uses it: after "SORT " / "UID SORT ",
 * imap_sort_parse() reads "(criteria) "; then imap_search_parse(..., true,
 * ...) reads "charset SP keys"; the matching messages (struct
 * imap_search_msg, in sequence order) go to imap_sort_run(), which orders
 * them using only the index row and the cached fields (struct
 * imap_search_src: field() and sent_date(); no file is opened). Answer
 * "* SORT n n n" with imap_sort_format().
 *
 * Owns nothing after a call returns; never reads a message file.
 */
#ifndef IMAPD_SORT_H
#define IMAPD_SORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "search.h"
#include "util/buf.h"

#define IMAP_SORT_CRIT_MAX 16

enum imap_sort_key {
	ISORT_ARRIVAL,   /* internal date */
	ISORT_CC,        /* addr-mailbox of the first Cc address */
	ISORT_DATE,      /* Date: header (internal date when it has none) */
	ISORT_FROM,
	ISORT_SIZE,
	ISORT_SUBJECT,   /* base subject */
	ISORT_TO,
};

struct imap_sort_crit {
	enum imap_sort_key key;
	bool reverse;
};

/* "(" sort-criterion *(SP sort-criterion) ")" SP: into crit (IMAP_SORT_CRIT_MAX), *n. 0, or -1 with *why. */
int imap_sort_parse(char **pp, const char *end, struct imap_sort_crit *crit, size_t *n, const char **why);

/*
 * Order msgs[0..n) by crit; ties go by sequence number (RFC 5256). order
 * gets n indexes into msgs. 0, or -1 when out of memory.
 */
int imap_sort_run(const struct imap_sort_crit *crit, size_t ncrit, const struct imap_search_msg *msgs, size_t n,
		  const struct imap_search_src *src, size_t *order);

/* "* SORT" + the UIDs (uid) or sequence numbers of msgs in order, CRLF (with " (MODSEQ m)" when modseq). */
int imap_sort_format(struct mc_buf *out, const struct imap_search_msg *msgs, const size_t *order, size_t n, bool uid,
		     uint64_t modseq);

/*
 * The base subject of a decoded subject (RFC 5256 2.1) into out
 * (NUL-terminated, whitespace runs made one space, ASCII lowercased for
 * i;ascii-casemap comparison). Returns true when something marked it as
 * a reply or forward (Re:, Fwd:, [fwd: ...], (fwd)): THREAD needs that.
 */
bool imap_base_subject(const char *subject, struct mc_buf *out);

/* The addr-mailbox (local part) of the first address of a decoded address list, lowercased, into out. */
void imap_sort_first_mailbox(const char *list, char *out, size_t outsz);

/* A message's sent date for SORT DATE and THREAD: the Date: header, else the internal date. */
int64_t imap_sort_sent_date(const struct imap_search_src *src, const struct imap_search_msg *m);

#endif
