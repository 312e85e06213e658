/*
 * mime.h - a streaming MIME parser (RFC 2045/2046, RFC 5322 headers)
 * producing the part tree IMAP describes, and a compact part-offset table
 * for serving BODY[section] from the message file.
 *
 * Who calls it: mc_store_deliver_many (queued's delivery workers, fed the
 * bytes as they are written to the Maildir file), mc_store_reindex and
 * mc_store_cache_fill (a file on disk), imapstruct.c (ENVELOPE and
 * BODYSTRUCTURE from the tree), imapd (APPEND, section lookups).
 *
 * Bounded: at most MC_MIME_MAX_DEPTH nested levels and MC_MIME_MAX_PARTS
 * parts (Dovecot's limits); a multipart or message/rfc822 beyond them is
 * kept as one opaque part. One header field keeps at most
 * MC_MIME_FIELD_MAX bytes, a header block's first MC_MIME_HEADER_FIELDS_MAX
 * fields are looked at, and all kept strings of one message at most
 * MC_MIME_MEM_MAX bytes, so a hostile message costs fixed memory however
 * deep or wide it is. The input is never buffered whole.
 *
 * Offsets and sizes. The parser is fed the bytes of the file as stored (in
 * the Maildir: LF line ends). Every *_off is a byte offset into that input.
 * Every *_vsize counts the same bytes as IMAP does, with each LF not
 * preceded by CR counted as CRLF (two octets); *_lines counts LFs. So a
 * part's IMAP body is input[body_off, end_off) with LF turned into CRLF,
 * and its IMAP size is body_vsize. The line end before a boundary line
 * belongs to the boundary (RFC 2046 5.1.1), not to the part.
 */
#ifndef MC_MIME_H
#define MC_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/header.h"
#include "util/buf.h"

#define MC_MIME_MAX_DEPTH 100
#define MC_MIME_MAX_PARTS 10000
#define MC_MIME_FIELD_MAX 65536
#define MC_MIME_HEADER_FIELDS_MAX 10000 /* fields of one header block looked at */
#define MC_MIME_BOUNDARY_MAX 200        /* RFC 2046 allows 70; longer is tolerated up to this */
#define MC_MIME_MEM_MAX (8u << 20)

/* Header fields the parser keeps (the first of each; envelope fields only in message headers). */
enum mc_mime_hdr {
	MC_HDR_CONTENT_TYPE,
	MC_HDR_CONTENT_TRANSFER_ENCODING,
	MC_HDR_CONTENT_ID,
	MC_HDR_CONTENT_DESCRIPTION,
	MC_HDR_CONTENT_DISPOSITION,
	MC_HDR_CONTENT_LANGUAGE,
	MC_HDR_CONTENT_LOCATION,
	MC_HDR_CONTENT_MD5,
	MC_HDR_DATE,            /* first of the message-header-only fields */
	MC_HDR_SUBJECT,
	MC_HDR_FROM,
	MC_HDR_SENDER,
	MC_HDR_REPLY_TO,
	MC_HDR_TO,
	MC_HDR_CC,
	MC_HDR_BCC,
	MC_HDR_IN_REPLY_TO,
	MC_HDR_MESSAGE_ID,
	MC_HDR_REFERENCES,
	MC_HDR_COUNT
};

enum {
	MC_MIME_MULTIPART = 1u << 0,   /* multipart/ with children (or an empty one, see below) */
	MC_MIME_RFC822 = 1u << 1,      /* message/rfc822: one child, the encapsulated message */
	MC_MIME_MESSAGE = 1u << 2,     /* this part's header is a message header (root, child of RFC822) */
	MC_MIME_TRUNCATED = 1u << 3,   /* a limit was hit inside: structure beyond is opaque */
};

struct mc_mime_part {
	struct mc_mime_part *parent, *children, *next;
	struct mc_mime_part *last_child;   /* appending stays O(1) with 10,000 parts */
	unsigned flags;
	unsigned depth;           /* root 0 */
	unsigned nchildren;
	uint64_t hdr_off, body_off, end_off;
	uint64_t hdr_vsize, body_vsize, body_lines;
	char *type, *subtype;     /* as written ("TEXT"); defaults filled ("text"/"plain") */
	bool default_type;        /* no usable Content-Type: type/subtype are the defaults */
	struct mc_param *params;
	int nparams;
	char *boundary;           /* multipart only; NULL when missing or unusable */
	bool closed;              /* multipart: its close delimiter was seen */
	char *hdr[MC_HDR_COUNT];  /* raw values (folds kept), NULL when absent */
	/* parser bookkeeping for offsets */
	uint64_t hdr_voff, body_voff, body_loff;
};

struct mc_mime_parser;

/* A parser for one message. NULL on allocation failure. */
struct mc_mime_parser *mc_mime_parser_new(void);
/* Feed the next n bytes of the message. -1 only on allocation failure (the tree so far stays valid). */
int mc_mime_parser_feed(struct mc_mime_parser *p, const void *data, size_t n);
/* End of input: close every open part. Returns the root; the parser still owns the tree. */
struct mc_mime_part *mc_mime_parser_finish(struct mc_mime_parser *p);
/* Free the parser and its tree; NULL is a no-op. */
void mc_mime_parser_free(struct mc_mime_parser *p);
/* Parts created (root included), deepest depth seen: for tests and fuzzing. */
unsigned mc_mime_parser_parts(const struct mc_mime_parser *p);
unsigned mc_mime_parser_max_depth(const struct mc_mime_parser *p);

/* Parameter value by name (case-insensitive), NULL if absent. */
const char *mc_mime_param(const struct mc_mime_part *part, const char *name);

/*
 * The part-offset table: the tree in preorder, a version byte then per part
 * varints (flags, nchildren, hdr_off, body_off - hdr_off, end_off - body_off,
 * hdr_vsize, body_vsize, body_lines). A few bytes a part; stored in the
 * index so FETCH BODY[section] seeks without parsing.
 */
int mc_mime_table_write(const struct mc_mime_part *root, struct mc_buf *out);

/* Bytes of the file and their IMAP (CRLF) size. */
struct mc_mime_span {
	uint64_t off, len, vsize;
};

/* What FETCH needs for one section-part. */
struct mc_mime_section {
	struct mc_mime_span mime;     /* the part's own header: BODY[p.MIME] */
	struct mc_mime_span body;     /* BODY[p] */
	bool is_message;              /* message/rfc822 (or the top): .HEADER/.TEXT valid */
	struct mc_mime_span header;   /* BODY[p.HEADER] */
	struct mc_mime_span text;     /* BODY[p.TEXT] */
	bool is_multipart;            /* a multipart: no leaf (FETCH BINARY sends it as stored) */
};

/*
 * Resolve section-part path[0..n) (n == 0: the message itself) against a
 * table, by RFC 3501 6.4.5: parts of a multipart are numbered from 1, a
 * non-multipart message has only part 1, a message/rfc822 part's numbers
 * continue into the message it holds. 0, or -1 when no such part or the
 * table is malformed.
 */
int mc_mime_section_find(const void *table, size_t len, const unsigned *path, size_t n,
			 struct mc_mime_section *out);

#endif
