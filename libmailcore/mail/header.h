/*
 * header.h - RFC 5322 / MIME header values: unfolding, address lists as
 * IMAP's ENVELOPE wants them, RFC 2047 encoded words decoded to UTF-8,
 * and Content-Type style parameter lists with RFC 2231 continuations.
 *
 * Who calls it: mime.c (header fields of every part), imapstruct.c
 * (ENVELOPE addresses), the index cache in mailstore.c (decoded subject
 * and addresses for SEARCH/SORT), imapd later for SEARCH HEADER.
 * Owns only what it returns (free with the matching _free). Never trusts
 * a length from the input: every loop is bounded by the bytes given,
 * comments nest at most MC_HEADER_COMMENT_DEPTH deep, a list has at most
 * MC_HEADER_ADDR_MAX addresses and MC_HEADER_PARAM_MAX parameters. 8-bit
 * bytes and malformed syntax are tolerated, never rejected: mail is what
 * it is, the server describes it as well as it can.
 */
#ifndef MC_HEADER_H
#define MC_HEADER_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

#define MC_HEADER_ADDR_MAX 2000       /* addresses kept from one list */
#define MC_HEADER_PARAM_MAX 64        /* parameters kept from one Content-Type */
#define MC_HEADER_COMMENT_DEPTH 32    /* deeper comments end at the field's end */

/*
 * One element of an address list in ENVELOPE terms. A group is framed by
 * a start element (mailbox = group name, domain NULL) and an end element
 * (all four NULL). A mailbox without '@' gets domain "MISSING_DOMAIN", an
 * empty local part "MISSING_MAILBOX" (as Dovecot answers), so a client
 * never mistakes it for a group start.
 */
struct mc_address {
	struct mc_address *next;
	char *name;      /* display name (quotes removed, encoded words kept), NULL if none */
	char *route;     /* "@a.example,@b.example" from an obsolete route, NULL if none */
	char *mailbox;   /* local part, unquoted */
	char *domain;
};

/* Parse an address list (n bytes, folded or not). NULL when it holds no address. */
struct mc_address *mc_address_parse(const char *s, size_t n);
/* Free a list from mc_address_parse; NULL is a no-op. */
void mc_address_free(struct mc_address *a);

/* A parameter of a structured field: name as written, value unquoted. */
struct mc_param {
	char *name;
	char *value;
};

/*
 * Parse "token[/token] *(; name=value)" (Content-Type, Content-Disposition).
 * *type and *subtype (NULL when the field has none; subtype may be NULL
 * for a disposition) and the parameters, RFC 2231 continuations merged:
 * name*0="a"; name*1="b" becomes name="ab", name*0*=utf-8''x; name*1=y
 * becomes name*="utf-8''xy" (what Dovecot answers; the value stays
 * encoded as in the message). Returns the number of parameters, -1 on
 * allocation failure. want_subtype: parse "type/subtype".
 */
int mc_header_parse_params(const char *s, size_t n, bool want_subtype, char **type, char **subtype,
			   struct mc_param **params);
/* Free what mc_header_parse_params returned. */
void mc_header_params_free(struct mc_param *p, int n);

/* One field of a header block, pointers into the block. */
struct mc_header_field {
	const char *name;      /* without the colon (and blanks before it) */
	size_t namelen;
	const char *raw;       /* the whole field as stored: "Name: value\n\tmore\n" */
	size_t rawlen;
	const char *value;     /* after the colon and leading blanks, folds kept, final line end not */
	size_t valuelen;
};

/*
 * The next field of a header block at *p (up to end), for FETCH
 * BODY[HEADER.FIELDS (...)] and SEARCH HEADER. Advances *p past it.
 * false at the blank line that ends the block or at end. A line that is
 * neither a field nor a continuation (no colon) is skipped: it is no
 * field of any name. LF or CRLF line ends.
 */
bool mc_header_next(const char **p, const char *end, struct mc_header_field *f);

/* Copy n bytes of a folded value into out without its CR and LF bytes; returns the new length. */
size_t mc_header_unfold(const char *s, size_t n, char *out);

/*
 * Decode a header value for humans: unfold, decode RFC 2047 encoded words
 * (any charset iconv knows; whitespace between adjacent encoded words
 * dropped), append the UTF-8 result to out. A malformed or unknown encoded
 * word stays as written. -1 only if out's bound is hit.
 */
int mc_header_decode(const char *s, size_t n, struct mc_buf *out);

/* Decode an RFC 2231 extended value "charset'lang'pct-encoded" to UTF-8 into out. -1 if malformed. */
int mc_header_decode_2231(const char *s, size_t n, struct mc_buf *out);

/*
 * Convert n bytes in charset to UTF-8, appended to out. Unknown charsets
 * and invalid sequences: -1 and nothing appended (the caller keeps the
 * raw text). us-ascii and utf-8 are checked without iconv.
 */
int mc_header_charset_to_utf8(const char *charset, const char *s, size_t n, struct mc_buf *out);

#endif
