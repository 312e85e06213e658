/*
 * thread.h - IMAP THREAD (RFC 5256 section 2): ORDEREDSUBJECT and
 * REFERENCES, on the index's cached fields.
 *
 * How the command code uses it: after "THREAD " / "UID THREAD ",
 * imap_thread_parse_alg() reads "algorithm SP"; imap_search_parse(...,
 * true, ...) reads "charset SP keys"; the matching messages (in sequence
 * order) go to imap_thread_run(), which appends the whole
 * "* THREAD (...)(...)" CRLF line to out. What it needs of a message
 * comes through struct imap_search_src: field() for Subject, Message-ID,
 * In-Reply-To and References, and sent_date(). No file is opened.
 *
 * Bounded: at most IMAP_THREAD_REFS_MAX references are taken from one
 * message; nothing recurses deeper than the thread tree, and the tree is
 * walked without recursion where a message could make it deep.
 */
#ifndef IMAPD_THREAD_H
#define IMAPD_THREAD_H

#include <stdbool.h>
#include <stddef.h>

#include "search.h"
#include "util/buf.h"

#define IMAP_THREAD_REFS_MAX 100

enum imap_thread_alg {
	IMAP_THREAD_ORDEREDSUBJECT,
	IMAP_THREAD_REFERENCES,
};

/* The algorithm name and one SP. 0, or -1 with *why (an algorithm not supported: answer BAD). */
int imap_thread_parse_alg(char **pp, const char *end, enum imap_thread_alg *alg, const char **why);

/*
 * Thread msgs[0..n) and append "* THREAD ..." CRLF to out, with UIDs
 * (uid) or sequence numbers. 0, or -1 (out of memory, or out's bound).
 */
int imap_thread_run(enum imap_thread_alg alg, const struct imap_search_msg *msgs, size_t n,
		    const struct imap_search_src *src, bool uid, struct mc_buf *out);

#endif
