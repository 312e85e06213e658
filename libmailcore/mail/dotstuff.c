/*
 * dotstuff.c - streaming dot-stuffing decoder and encoder (see dotstuff.h).
 *
 * Called by smtpd for DATA and BDAT, by queued's SMTP client and by pop3d
 * for output. A byte-at-a-time state machine with a fast path that copies
 * runs of ordinary bytes; the state survives any split of the input, so
 * the terminator is found wherever the network cut it.
 *
 * Owns no memory. Never writes more than the caller's outsz, never ends
 * the data anywhere but at <CRLF>.<CRLF>.
 */
#include "mail/dotstuff.h"

#include <string.h>

enum {
	ST_BOL = 0,     /* at the beginning of a line */
	ST_TEXT,        /* inside a line */
	ST_CR,          /* a CR inside a line; is an LF next? */
	ST_DOT,         /* "." at the beginning of a line */
	ST_DOTCR,       /* ".\r" at the beginning of a line */
};

/* The most a single input byte can produce: ".\r\n" of a lone dot line plus a CRLF. */
#define DEC_PER_BYTE 5
#define ENC_PER_BYTE 4

void
mc_dotstuff_dec_init(struct mc_dotstuff_dec *d, enum mc_dotstuff_mode mode)
{
	d->mode = (unsigned char)mode;
	d->state = mode == MC_DOTSTUFF_DATA ? ST_BOL : ST_TEXT;
	d->strong = true;
	d->done = false;
}

/* A line ended (strong: by a real CRLF). In NORM mode lines have no meaning. */
static void
new_line(struct mc_dotstuff_dec *d, bool strong)
{
	if (d->mode == MC_DOTSTUFF_DATA) {
		d->state = ST_BOL;
		d->strong = strong;
	} else {
		d->state = ST_TEXT;
	}
}

int
mc_dotstuff_dec(struct mc_dotstuff_dec *d, const void *in, size_t inlen, size_t *inused, void *out,
		size_t outsz, size_t *outlen)
{
	const unsigned char *p = in;
	unsigned char *q = out;
	size_t i = 0, o = 0;

	while (i < inlen && !d->done) {
		if (outsz - o < DEC_PER_BYTE)
			break;
		if (d->state == ST_TEXT) {
			/* Copy a run of ordinary bytes, keeping room for one special byte. */
			size_t lim = outsz - o - DEC_PER_BYTE + 1;
			if (lim > inlen - i)
				lim = inlen - i;
			size_t k = 0;
			while (k < lim && p[i + k] != '\r' && p[i + k] != '\n')
				k++;
			memcpy(q + o, p + i, k);
			o += k;
			i += k;
			if (i == inlen || (p[i] != '\r' && p[i] != '\n'))
				continue;
		}
		unsigned char c = p[i++];
	again:
		switch (d->state) {
		case ST_BOL:
			if (c == '.') {
				d->state = ST_DOT;
				break;
			}
			d->state = ST_TEXT;
			goto again;
		case ST_TEXT:
			if (c == '\r') {
				d->state = ST_CR;
			} else if (c == '\n') {
				/* A bare LF ends the line, stored as CRLF; never part of a terminator. */
				q[o++] = '\r';
				q[o++] = '\n';
				new_line(d, false);
			} else {
				q[o++] = c;
			}
			break;
		case ST_CR:
			q[o++] = '\r';
			q[o++] = '\n';
			if (c == '\n') {
				new_line(d, true);
				break;
			}
			/* A bare CR: a line end as well, then c starts the next line. */
			new_line(d, false);
			goto again;
		case ST_DOT:
			if (c == '\r') {
				d->state = ST_DOTCR;
				break;
			}
			if (c == '\n') {
				/* ".\n" is not the end: keep the lone dot as a line. */
				memcpy(q + o, ".\r\n", 3);
				o += 3;
				new_line(d, false);
				break;
			}
			/* A stuffed dot: drop it, c is the line's first character. */
			d->state = ST_TEXT;
			goto again;
		case ST_DOTCR:
			if (c == '\n') {
				if (d->strong) {
					d->done = true;
					break;
				}
				memcpy(q + o, ".\r\n", 3);
				o += 3;
				new_line(d, true);
				break;
			}
			memcpy(q + o, ".\r\n", 3);
			o += 3;
			new_line(d, false);
			goto again;
		}
	}
	*inused = i;
	*outlen = o;
	return d->done ? 1 : 0;
}

size_t
mc_dotstuff_dec_finish(struct mc_dotstuff_dec *d, void *out, size_t outsz)
{
	if (d->mode != MC_DOTSTUFF_NORM || d->state != ST_CR || outsz < 2)
		return 0;
	memcpy(out, "\r\n", 2);
	d->state = ST_TEXT;
	return 2;
}

void
mc_dotstuff_enc_init(struct mc_dotstuff_enc *e)
{
	e->bol = true;
	e->cr = false;
}

size_t
mc_dotstuff_enc(struct mc_dotstuff_enc *e, const void *in, size_t inlen, void *out, size_t outsz, size_t *outlen)
{
	const unsigned char *p = in;
	unsigned char *q = out;
	size_t i = 0, o = 0;

	while (i < inlen && outsz - o >= ENC_PER_BYTE) {
		if (!e->bol && !e->cr) {
			size_t lim = outsz - o - ENC_PER_BYTE + 1;
			if (lim > inlen - i)
				lim = inlen - i;
			size_t k = 0;
			while (k < lim && p[i + k] != '\r' && p[i + k] != '\n')
				k++;
			memcpy(q + o, p + i, k);
			o += k;
			i += k;
			if (i == inlen || (p[i] != '\r' && p[i] != '\n'))
				continue;
		}
		unsigned char c = p[i++];
		if (e->cr) {
			e->cr = false;
			q[o++] = '\r';
			q[o++] = '\n';
			e->bol = true;
			if (c == '\n')
				continue;
		}
		if (c == '\r') {
			e->cr = true;
		} else if (c == '\n') {
			q[o++] = '\r';
			q[o++] = '\n';
			e->bol = true;
		} else {
			if (e->bol && c == '.')
				q[o++] = '.';
			q[o++] = c;
			e->bol = false;
		}
	}
	*outlen = o;
	return i;
}

size_t
mc_dotstuff_enc_end(struct mc_dotstuff_enc *e, void *out, size_t outsz, bool with_dot)
{
	unsigned char *q = out;
	size_t o = 0;

	if (outsz < 5)
		return 0;
	if (e->cr || !e->bol) {
		q[o++] = '\r';
		q[o++] = '\n';
	}
	e->cr = false;
	e->bol = true;
	if (with_dot) {
		memcpy(q + o, ".\r\n", 3);
		o += 3;
	}
	return o;
}
