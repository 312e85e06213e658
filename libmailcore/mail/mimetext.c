/*
 * mimetext.c - a stored message's text, decoded, for SEARCH (see mimetext.h).
 *
 * Two passes over the file: the MIME parser reads it once for the part
 * tree (offsets, types, charsets, encodings), then each part's header and
 * each text/ body is read again from its offsets (a message that fits in
 * one chunk is kept from the first read instead). The charset converter
 * keeps the few bytes of a multi-byte character cut by a chunk's end for
 * the next chunk; bytes iconv refuses are skipped one at a time.
 */
#include "mail/mimetext.h"

#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mail/cte.h"
#include "mail/header.h"
#include "mail/mime.h"
#include "util/buf.h"
#include "util/fsutil.h"

/* One walk's buffers, allocated once. */
struct scan {
	int fd;
	mc_mimetext_cb cb;
	void *arg;
	char *in;              /* MC_MIMETEXT_CHUNK read from the file */
	const char *whole;     /* the whole message, when one read held it (in): read no more */
	size_t wholelen;
	char *dec;             /* decoded: mc_cte_dec_bound(MC_MIMETEXT_CHUNK) */
	struct mc_buf utf8;    /* converted */
	struct mc_buf line;    /* one header field, decoded */
	char hold[16];         /* the start of a character cut by the chunk's end */
	size_t nhold;
};

static bool
utf8_family(const char *cs)
{
	return strcasecmp(cs, "utf-8") == 0 || strcasecmp(cs, "utf8") == 0 || strcasecmp(cs, "us-ascii") == 0 ||
	       strcasecmp(cs, "ascii") == 0;
}

/* n bytes at off: a pointer into the message held, or read into buf. The count, 0 at the end, -1 on error. */
static ssize_t
bytes_at(struct scan *sc, char *buf, size_t n, uint64_t off, const char **p)
{
	if (sc->whole) {
		*p = sc->whole + (off < sc->wholelen ? off : sc->wholelen);
		return off < sc->wholelen ? (ssize_t)(sc->wholelen - off < n ? sc->wholelen - off : n) : 0;
	}
	*p = buf;
	return mc_pread_at(sc->fd, buf, n, off);
}

/* Convert n bytes (after what was held) to UTF-8 into sc->utf8; final: nothing more comes. */
static int
convert(struct scan *sc, iconv_t cd, const char *s, size_t n, bool final)
{
	mc_buf_reset(&sc->utf8);
	char joined[sizeof(sc->hold) + 64];
	/* A held character is completed by the first bytes of this piece, converted on their own first. */
	while (sc->nhold > 0 && n > 0) {
		size_t take = n < 64 ? n : 64;
		memcpy(joined, sc->hold, sc->nhold);
		memcpy(joined + sc->nhold, s, take);
		char *in = joined, *dst;
		size_t left = sc->nhold + take, room = 256;
		if ((dst = mc_buf_reserve(&sc->utf8, room)) == NULL)
			return -1;
		size_t r = iconv(cd, &in, &left, &dst, &room);
		mc_buf_commit(&sc->utf8, 256 - room);
		size_t used = (size_t)(in - joined);
		if (used >= sc->nhold) {
			s += used - sc->nhold;
			n -= used - sc->nhold;
			sc->nhold = 0;
		} else if (used > 0) {
			memmove(sc->hold, sc->hold + used, sc->nhold - used);
			sc->nhold -= used;
		} else if (r == (size_t)-1 && errno == EINVAL && take == n && left < sizeof(sc->hold)) {
			memcpy(sc->hold, joined, left);   /* still incomplete: wait for more */
			sc->nhold = left;
			return 0;
		} else {
			memmove(sc->hold, sc->hold + 1, --sc->nhold);   /* no character starts there */
		}
	}
	char *in = (char *)(uintptr_t)s;
	size_t left = n;
	while (left > 0) {
		size_t room = left * 4 + 16, before = room;
		char *dst = mc_buf_reserve(&sc->utf8, room);
		if (dst == NULL)
			return -1;
		size_t r = iconv(cd, &in, &left, &dst, &room);
		mc_buf_commit(&sc->utf8, before - room);
		if (r != (size_t)-1 || errno == E2BIG)
			continue;
		if (errno == EINVAL && !final && left < sizeof(sc->hold)) {
			memcpy(sc->hold, in, left);
			sc->nhold = left;
			break;
		}
		if (errno == EINVAL)
			break;   /* cut short at the very end: dropped */
		in++;        /* EILSEQ: skip the byte iconv cannot take */
		left--;
	}
	return 0;
}

/* Hand out decoded (and converted) text. */
static int
emit(struct scan *sc, iconv_t cd, const char *s, size_t n, bool *cont, bool final)
{
	if (cd != (iconv_t)-1) {
		if (convert(sc, cd, s, n, final) < 0)
			return -1;
		s = sc->utf8.data;
		n = sc->utf8.len;
	}
	if (n == 0)
		return 0;
	int r = sc->cb(sc->arg, s, n, *cont);
	*cont = true;
	return r ? 1 : 0;
}

/* The body of text part m, decoded, converted, streamed. */
static int
scan_body(struct scan *sc, const struct mc_mime_part *m)
{
	enum mc_cte cte = mc_cte_parse(m->hdr[MC_HDR_CONTENT_TRANSFER_ENCODING]);
	struct mc_cte_dec dec;
	mc_cte_dec_init(&dec, cte == MC_CTE_UNKNOWN ? MC_CTE_BINARY : cte, true);
	const char *cs = mc_mime_param(m, "charset");
	iconv_t cd = (iconv_t)-1;
	if (cs && !utf8_family(cs))
		cd = iconv_open("UTF-8", cs);   /* unknown to iconv: matched as stored */
	sc->nhold = 0;
	bool cont = false;
	int ret = 0;
	for (uint64_t off = m->body_off; off < m->end_off && ret == 0;) {
		size_t want = m->end_off - off < MC_MIMETEXT_CHUNK ? (size_t)(m->end_off - off) : MC_MIMETEXT_CHUNK;
		const char *src;
		ssize_t r = bytes_at(sc, sc->in, want, off, &src);
		if (r <= 0) {
			ret = r < 0 ? -1 : 0;
			break;
		}
		off += (uint64_t)r;
		size_t k = mc_cte_dec_update(&dec, src, (size_t)r, sc->dec);
		ret = emit(sc, cd, sc->dec, k, &cont, false);
	}
	if (ret == 0) {
		size_t k = mc_cte_dec_final(&dec, sc->dec);
		ret = emit(sc, cd, sc->dec, k, &cont, true);
	}
	if (cd != (iconv_t)-1)
		iconv_close(cd);
	return ret;
}

/* The header fields of m, each unfolded and decoded, one piece per field. */
static int
scan_header(struct scan *sc, const struct mc_mime_part *m)
{
	uint64_t len = m->body_off - m->hdr_off;
	size_t n = len > MC_MIMETEXT_HDR_MAX ? MC_MIMETEXT_HDR_MAX : (size_t)len;
	if (n == 0)
		return 0;
	char *h = NULL;
	const char *p;
	size_t got = 0;
	if (sc->whole) {
		got = (size_t)bytes_at(sc, NULL, n, m->hdr_off, &p);
	} else {
		if ((h = malloc(n)) == NULL)
			return -1;
		while (got < n) {
			ssize_t r = mc_pread_at(sc->fd, h + got, n - got, m->hdr_off + got);
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		p = h;
	}
	const char *end = p + got;
	struct mc_header_field f;
	int ret = 0;
	while (ret == 0 && mc_header_next(&p, end, &f)) {
		mc_buf_reset(&sc->line);
		if (mc_buf_add(&sc->line, f.name, f.namelen) < 0 || mc_buf_add(&sc->line, ": ", 2) < 0 ||
		    mc_header_decode(f.value, f.valuelen, &sc->line) < 0)
			continue;   /* longer than a field we search: skipped */
		ret = sc->cb(sc->arg, sc->line.data, sc->line.len, false) ? 1 : 0;
	}
	free(h);
	return ret;
}

static bool
is_text(const struct mc_mime_part *m)
{
	return !(m->flags & (MC_MIME_MULTIPART | MC_MIME_RFC822)) && m->type && strcasecmp(m->type, "text") == 0;
}

/* Preorder over the tree, without recursion. */
static const struct mc_mime_part *
next_part(const struct mc_mime_part *m)
{
	if (m->children)
		return m->children;
	while (m && m->next == NULL)
		m = m->parent;
	return m ? m->next : NULL;
}

int
mc_mimetext_scan(int fd, unsigned what, mc_mimetext_cb cb, void *arg)
{
	struct scan sc = { .fd = fd, .cb = cb, .arg = arg };
	struct mc_mime_parser *mp = mc_mime_parser_new();
	sc.in = malloc(MC_MIMETEXT_CHUNK);
	sc.dec = malloc(mc_cte_dec_bound(MC_MIMETEXT_CHUNK));
	mc_buf_init(&sc.utf8, 4 * mc_cte_dec_bound(MC_MIMETEXT_CHUNK) + 4096);
	mc_buf_init(&sc.line, MC_MIME_FIELD_MAX * 4);
	int ret = -1;
	if (mp == NULL || sc.in == NULL || sc.dec == NULL)
		goto out;
	uint64_t off = 0;
	bool one = true;   /* everything so far came in one read */
	for (;;) {
		ssize_t r = mc_pread_at(fd, sc.in, MC_MIMETEXT_CHUNK, off);
		if (r < 0)
			goto out;
		if (r == 0)
			break;
		one = off == 0;
		off += (uint64_t)r;
		if (mc_mime_parser_feed(mp, sc.in, (size_t)r) < 0)
			goto out;
	}
	if (one) {
		/* a small message (the common case) is not read a second time */
		sc.whole = sc.in;
		sc.wholelen = (size_t)off;
	}
	const struct mc_mime_part *root = mc_mime_parser_finish(mp);
	ret = 0;
	for (const struct mc_mime_part *m = root; m && ret == 0; m = next_part(m)) {
		if (m == root ? (what & MC_MIMETEXT_HEADER) : (what & MC_MIMETEXT_BODY))
			ret = scan_header(&sc, m);
		if (ret == 0 && (what & MC_MIMETEXT_BODY) && is_text(m))
			ret = scan_body(&sc, m);
	}
out:
	mc_mime_parser_free(mp);
	free(sc.in);
	free(sc.dec);
	mc_buf_free(&sc.utf8);
	mc_buf_free(&sc.line);
	return ret;
}
