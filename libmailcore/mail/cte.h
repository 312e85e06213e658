/*
 * cte.h - Content-Transfer-Encoding decoders (RFC 2045 §6): base64,
 * quoted-printable, and the identity encodings 7bit, 8bit and binary, as
 * streams fed a part's stored bytes in pieces of any size.
 *
 * Who calls it: imapd (FETCH BINARY, RFC 3516 / RFC 9051 §6.4.5) and
 * mimetext.c (SEARCH BODY/TEXT on decoded text); pop3d may too. Owns
 * nothing: a decoder is a plain struct of fixed size, no allocation.
 *
 * Line ends. The mail store keeps LF where the message had CRLF (a LF
 * not after a CR is CRLF to IMAP), so the identity encodings give the
 * bytes with each such LF as CRLF, exactly as BODY[] sends them. A
 * quoted-printable hard line break is CRLF (RFC 2045 §6.7 rule 4). Base64
 * gives the decoded octets as they are, except that a text part (text
 * set) gets CRLF for a LF not after CR, as RFC 3516 §4.2 asks for
 * line-oriented sections.
 *
 * Malformed input is decoded as well as it can be, never refused (mail is
 * what it is): base64 ignores characters outside its alphabet (RFC 2045
 * §6.8), a group cut short at the end is decoded as if padded, one lone
 * character is dropped, data after padding is decoded on (concatenated
 * base64); quoted-printable keeps an "=" not followed by two hex digits as
 * written (the robust choice of RFC 2045 §6.7 note 1), accepts lowercase
 * hex, drops trailing blanks of a line and a soft line break at the end
 * of the data. errors counts what was not well formed.
 */
#ifndef MC_CTE_H
#define MC_CTE_H

#include <stdbool.h>
#include <stddef.h>

enum mc_cte {
	MC_CTE_7BIT,
	MC_CTE_8BIT,
	MC_CTE_BINARY,
	MC_CTE_BASE64,
	MC_CTE_QP,
	MC_CTE_UNKNOWN,   /* a token this code cannot decode (RFC 3516: NO [UNKNOWN-CTE]) */
};

/* Blanks a quoted-printable line may end with before they are not taken for trailing ones. */
#define MC_CTE_WS_MAX 256
/* Filtered base64 characters decoded in one call of EVP_DecodeBlock (a multiple of 4). */
#define MC_CTE_B64_BATCH 256
/* Bytes one update may write beyond 2 * its input, and the most mc_cte_dec_final writes. */
#define MC_CTE_SLACK 1024

/* Room mc_cte_dec_update needs in out for n input bytes. */
#define mc_cte_dec_bound(n) (2 * (size_t)(n) + MC_CTE_SLACK)

struct mc_cte_dec {
	enum mc_cte cte;
	bool text;              /* base64 (and =0A of quoted-printable): LF not after CR becomes CRLF */
	char prev;              /* the last byte given out */
	unsigned errors;        /* malformed sequences met */
	/* base64 */
	unsigned char b64[MC_CTE_B64_BATCH];
	size_t nb64;
	/* quoted-printable */
	int qstate;
	bool cr;                /* a CR is held back: is it the start of CRLF? */
	unsigned char hex1;
	size_t nws;
	char ws[MC_CTE_WS_MAX];
};

/*
 * The encoding a Content-Transfer-Encoding field value names (folds,
 * blanks and comments allowed around the token, case ignored); NULL
 * (no field) is 7bit, as RFC 2045 §6.1 says.
 */
enum mc_cte mc_cte_parse(const char *value);

/* Start decoding a part of encoding cte (not MC_CTE_UNKNOWN); text: the part is text/. */
void mc_cte_dec_init(struct mc_cte_dec *d, enum mc_cte cte, bool text);
/* Decode n more bytes into out (room: mc_cte_dec_bound(n)); returns the bytes written. */
size_t mc_cte_dec_update(struct mc_cte_dec *d, const void *in, size_t n, void *out);
/* The end of the part: what was held back, into out (room: MC_CTE_SLACK); returns the bytes written. */
size_t mc_cte_dec_final(struct mc_cte_dec *d, void *out);

/*
 * Would these bytes come back unchanged from the mail store, which keeps
 * CRLF as LF and gives every LF back as CRLF? Only when each LF follows a
 * CR and no CR comes right before a CRLF. APPEND of binary content
 * (literal8) asks this, since RFC 3516 §4.4 forbids a change that loses
 * data. Fed in pieces: *tail carries the previous piece's last two bytes
 * (0 before the first piece). false as soon as one piece fails.
 */
bool mc_cte_store_keeps(const void *p, size_t n, unsigned *tail);

#endif
