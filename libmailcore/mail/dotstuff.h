/*
 * dotstuff.h - the SMTP/POP3 text transparency layer (RFC 5321 §4.5.2,
 * §4.1.1.4; RFC 1939 byte-stuffing), streaming in both directions.
 *
 * Decoder (smtpd DATA, and BDAT in normalise-only mode): takes the bytes
 * a client sends after 354 in chunks of any size, finds the end of data,
 * removes the stuffed dots and writes the message with CRLF line ends.
 * Only <CRLF>.<CRLF> ends the data (the start of the data counts as after
 * a CRLF, so ".\r\n" first is an empty message). Bare LF and bare CR are
 * line ends and are stored as CRLF, but a line that began after one never
 * ends the data: "\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r" are content
 * (SMTP smuggling, CVE-2023-51764). A lone "." line that is not the end is
 * kept as "." (nothing to unstuff: RFC 5321 removes a dot only when other
 * characters follow on the line).
 *
 * Encoder (queued's SMTP client, pop3d RETR/TOP): takes a stored message
 * in chunks, makes every line end CRLF (bare CR or LF become CRLF), doubles
 * a dot at the start of a line, and ends with ".\r\n" after a CRLF.
 *
 * Both keep a few bytes of state and no buffers; the caller owns the
 * input and output memory. Fuzzed by tests/fuzz/fuzz_dotstuff.c.
 */
#ifndef MC_DOTSTUFF_H
#define MC_DOTSTUFF_H

#include <stdbool.h>
#include <stddef.h>

/* Output room the decoder needs to make progress (it stops when less is left). */
#define MC_DOTSTUFF_DEC_MIN 8
/* Output room the encoder needs to make progress, and for mc_dotstuff_enc_end. */
#define MC_DOTSTUFF_ENC_MIN 8

enum mc_dotstuff_mode {
	MC_DOTSTUFF_DATA = 0,   /* DATA: unstuff dots, find <CRLF>.<CRLF>, normalise line ends */
	MC_DOTSTUFF_NORM,       /* BDAT: only normalise bare CR / bare LF to CRLF; never ends */
};

struct mc_dotstuff_dec {
	unsigned char mode;
	unsigned char state;
	bool strong;            /* the current line began after a real CRLF (or at the start) */
	bool done;              /* the end of data was found */
};

struct mc_dotstuff_enc {
	bool bol;               /* at the beginning of a line */
	bool cr;                /* a CR was seen and its LF (or not) is still to come */
};

/* Start decoding a new message. */
void mc_dotstuff_dec_init(struct mc_dotstuff_dec *d, enum mc_dotstuff_mode mode);
/*
 * Decode from in[0..inlen) into out[0..outsz). *inused: input bytes taken
 * (through the terminator when the end is found; what follows belongs to
 * the next command); *outlen: bytes written. Returns 1 when the end of
 * data was found, 0 when more input is needed or out is full (call again
 * with the rest of the input and more room). outsz >= MC_DOTSTUFF_DEC_MIN
 * guarantees progress.
 */
int mc_dotstuff_dec(struct mc_dotstuff_dec *d, const void *in, size_t inlen, size_t *inused, void *out,
		    size_t outsz, size_t *outlen);
/*
 * NORM mode, at the last chunk: write a pending bare CR as CRLF into out
 * (room for 2 bytes). Returns the bytes written.
 */
size_t mc_dotstuff_dec_finish(struct mc_dotstuff_dec *d, void *out, size_t outsz);

/* Start encoding a new message. */
void mc_dotstuff_enc_init(struct mc_dotstuff_enc *e);
/*
 * Encode from in[0..inlen) into out[0..outsz). Returns the input bytes
 * taken; *outlen: bytes written. Stops early when out is nearly full.
 */
size_t mc_dotstuff_enc(struct mc_dotstuff_enc *e, const void *in, size_t inlen, void *out, size_t outsz,
		       size_t *outlen);
/*
 * The end: CRLF if the last line is unfinished, then ".\r\n". Writes at
 * most 5 bytes (out needs outsz >= 5); returns the bytes written.
 * with_dot false: only finish the last line (for POP3 TOP callers that
 * add the terminator themselves, or for a raw CRLF-normalised copy).
 */
size_t mc_dotstuff_enc_end(struct mc_dotstuff_enc *e, void *out, size_t outsz, bool with_dot);

#endif
