/*
 * fetch_binary.c - what FETCH BINARY and BINARY.SIZE (RFC 3516, RFC 9051
 * §6.4.5) need to know of a part before its literal starts: its
 * Content-Transfer-Encoding and type from its MIME header, and, by one
 * decoding pass over the file, its decoded size and whether the bytes to
 * send hold a NUL (then they go as literal8, "~{n}").
 *
 * Called by fetch.c, which streams the part a second time through the
 * same decoder (libmailcore's cte.h). A leaf part is decoded; a part that
 * is no leaf (a multipart, a message/rfc822, the whole message), for
 * which RFC 9051 defines no BINARY, is sent as stored (RFC 2045 §6.4
 * allows composite types only identity encodings), as BODY[] sends it.
 * Owns nothing; reads at most MIME_MAX bytes of a header.
 */
#include "imapd/imapd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MIME_MAX (64 * 1024)
#define CHUNK (64 * 1024)

static ssize_t
read_at(int fd, void *buf, size_t n, uint64_t off)
{
	for (;;) {
		ssize_t r = pread(fd, buf, n, (off_t)off);
		if (r >= 0 || errno != EINTR)
			return r;
	}
}

int
imapd_binary_part(int fd, const struct mc_mime_section *sec, bool whole, struct imapd_binpart *bp)
{
	memset(bp, 0, sizeof(*bp));
	bp->off = sec->body.off;
	bp->len = sec->body.len;
	bp->cte = MC_CTE_BINARY;
	if (whole || sec->is_message || sec->is_multipart)
		return 0;   /* no leaf: as stored */
	size_t n = sec->mime.len > MIME_MAX ? MIME_MAX : (size_t)sec->mime.len;
	char *h = malloc(n + 1);
	if (h == NULL)
		return -1;
	size_t got = 0;
	while (got < n) {
		ssize_t r = read_at(fd, h + got, n - got, sec->mime.off + got);
		if (r < 0) {
			free(h);
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	const char *p = h, *end = h + got;
	struct mc_header_field f;
	char *cte = NULL;
	bool text = true;   /* no Content-Type: text/plain (RFC 2045 §5.2) */
	bool seen_type = false;
	while (mc_header_next(&p, end, &f)) {
		if (f.namelen == 25 && strncasecmp(f.name, "Content-Transfer-Encoding", 25) == 0 && cte == NULL) {
			cte = strndup(f.value, f.valuelen);
			if (cte == NULL) {
				free(h);
				return -1;
			}
		} else if (f.namelen == 12 && strncasecmp(f.name, "Content-Type", 12) == 0 && !seen_type) {
			char *type = NULL, *subtype = NULL;
			struct mc_param *params = NULL;
			int np = mc_header_parse_params(f.value, f.valuelen, true, &type, &subtype, &params);
			if (np >= 0 && type && subtype) {
				seen_type = true;
				text = strcasecmp(type, "text") == 0;
			}
			free(type);
			free(subtype);
			if (np >= 0)
				mc_header_params_free(params, np);
		}
	}
	bp->cte = mc_cte_parse(cte);
	bp->text = text;
	free(cte);
	free(h);
	return bp->cte == MC_CTE_UNKNOWN ? 1 : 0;
}

int
imapd_binary_measure(int fd, struct imapd_binpart *bp, uint64_t ws, uint64_t we)
{
	char *in = malloc(CHUNK), *out = malloc(mc_cte_dec_bound(CHUNK));
	struct mc_cte_dec *d = malloc(sizeof(*d));
	int ret = -1;
	if (in == NULL || out == NULL || d == NULL)
		goto done;
	mc_cte_dec_init(d, bp->cte, bp->text);
	uint64_t size = 0;
	bool nul = false;
	for (uint64_t off = bp->off, end = bp->off + bp->len;;) {
		size_t k;
		bool last = off >= end;
		if (last) {
			k = mc_cte_dec_final(d, out);
		} else {
			size_t want = end - off < CHUNK ? (size_t)(end - off) : CHUNK;
			ssize_t r = read_at(fd, in, want, off);
			if (r <= 0)
				goto done;   /* the file shrank: not the part the table describes */
			off += (uint64_t)r;
			k = mc_cte_dec_update(d, in, (size_t)r, out);
		}
		/* a NUL counts only inside the window that will be sent */
		if (!nul && size + k > ws && size < we) {
			uint64_t a = ws > size ? ws - size : 0, b = we - size < k ? we - size : k;
			nul = memchr(out + a, '\0', (size_t)(b - a)) != NULL;
		}
		size += k;
		if (last)
			break;
	}
	bp->size = size;
	bp->nul = nul;
	ret = 0;
done:
	free(in);
	free(out);
	free(d);
	return ret;
}
