/*
 * search_store.h - SEARCH, SORT and THREAD run over a mailbox of the mail
 * store for the selected view: the glue between the programs of
 * search.h / sort.h / thread.h and the index.
 *
 * How the command code uses it: parse the program (search.h), describe
 * the session's view with a struct imap_search_view (what '*' is, which
 * UIDs the client has been told and their sequence numbers, \Recent, the
 * saved "$" result), then call one of the three. Messages that arrived
 * after the view was last brought up to date are left out (the client
 * does not know their sequence numbers yet); messages expunged by another
 * session but still in the view cannot match.
 *
 * Flags, dates, sizes, keywords, MODSEQ and sets come from the index
 * rows, header keys and SORT/THREAD from the message cache
 * (mailstore.h), all in one walk of the mailbox's rows; only BODY, TEXT
 * and HEADER of an uncached field open message files. Owns nothing after
 * a call returns.
 */
#ifndef IMAPD_SEARCH_STORE_H
#define IMAPD_SEARCH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "search.h"
#include "sort.h"
#include "thread.h"
#include "util/buf.h"

struct mc_store;

struct imap_search_view {
	void *arg;
	/* The sequence number of uid in the view, 0 when the view does not hold it. */
	uint32_t (*seq_of_uid)(void *arg, uint32_t uid);
	/* Is uid \Recent in this session? NULL: none is. */
	bool (*recent)(void *arg, uint32_t uid);
	/* Is uid in the saved result "$" (SEARCHRES)? NULL: "$" matches nothing. */
	bool (*saved)(void *arg, uint32_t uid);
	uint32_t exists;     /* messages in the view: '*' of a sequence set */
	uint32_t max_uid;    /* UID of its last message: '*' of a UID set */
};

/*
 * SEARCH: the matching messages' UIDs (uid) or sequence numbers,
 * ascending, into *out (malloc'd, free it; NULL when none) and *n;
 * *modseq (may be NULL) gets the highest MODSEQ among them (for
 * "(MODSEQ n)" when prog->has_modseq). 0, MC_STORE_ENOMAILBOX, or -1.
 */
int imap_search_store(struct mc_store *s, const char *mailbox, const struct imap_search_view *v,
		      const struct imap_search *prog, bool uid, uint32_t **out, size_t *n, uint64_t *modseq);

/* SORT: as imap_search_store, the numbers in sorted order. */
int imap_sort_store(struct mc_store *s, const char *mailbox, const struct imap_search_view *v,
		    const struct imap_search *prog, const struct imap_sort_crit *crit, size_t ncrit, bool uid,
		    uint32_t **out, size_t *n, uint64_t *modseq);

/* THREAD: appends the "* THREAD ..." line to out. 0, MC_STORE_ENOMAILBOX, or -1. */
int imap_thread_store(struct mc_store *s, const char *mailbox, const struct imap_search_view *v,
		      const struct imap_search *prog, enum imap_thread_alg alg, bool uid, struct mc_buf *out);

#endif
