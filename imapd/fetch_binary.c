/*
 * fetch_binary.c - what FETCH BINARY and BINARY.SIZE (RFC 3516, RFC 9051
 * §6.4.5) need to know of a part before its literal starts: its
 * Content-Transfer-Encoding and type from its MIME header, and, by one
 * decoding pass over the file, its decoded size and whether the bytes to
 * send hold a NUL (then they go as literal8, "~{n}").
 *
 * Also the BINARY items' grammar, the measuring before a message's
 * response starts, and the second decoding as the literal streams. Called
 * by fetch.c (fetch.h between them). A leaf part is decoded; a part that
 * is no leaf (a multipart, a message/rfc822, the whole message), for
 * which RFC 9051 defines no BINARY, is sent as stored (RFC 2045 §6.4
 * allows composite types only identity encodings), as BODY[] sends it.
 * Owns nothing; reads at most MIME_MAX bytes of a header.
 */
#include "imapd/fetch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util/fsutil.h"

#define MIME_MAX (64 * 1024)

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
		ssize_t r = mc_pread_at(fd, h + got, n - got, sec->mime.off + got);
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
			ssize_t r = mc_pread_at(fd, in, want, off);
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

/* ---- the items ---- */

/* section-binary = "[" [section-part] "]", then <partial> unless BINARY.SIZE (RFC 3516 §7). */
int
imapd_fetch_binary_section(struct imapd_fetch *f, struct imap_p *p, bool peek, bool size)
{
	if (imapd_fetch_add(f, p, FI_SECTION) < 0)
		return -1;
	struct fitem *it = &f->items[f->nitems - 1];
	it->binary = !size;
	it->bsize = size;
	it->peek = peek || size;
	size_t ln = (size_t)snprintf(it->label, sizeof(it->label), "%s[", size ? "BINARY.SIZE" : "BINARY");
	p->p++;   /* '[' */
	while (imap_p_peek(p) != ']') {
		uint32_t v;
		if (it->npath == PATH_MAX_PARTS || (it->npath > 0 && !imap_p_accept(p, '.')) ||
		    imap_p_nz_number(p, &v) < 0)
			return imap_p_fail(p, "bad section part");
		it->path[it->npath++] = v;
		ln += (size_t)snprintf(it->label + ln, sizeof(it->label) - ln, "%s%u", it->npath > 1 ? "." : "", v);
	}
	p->p++;
	snprintf(it->label + ln, sizeof(it->label) - ln, "]");
	return size ? 0 : imapd_fetch_partial(p, it);
}

/*
 * Before a message's response starts: find and measure the part of each
 * BINARY item, so that a literal's size (and kind) is known and an
 * unknown encoding fails the message before any of it is sent. 1 when an
 * encoding is unknown, else 0 (a part that cannot be read is left out).
 */
int
imapd_fetch_binary_prepare(struct imapd_session *s, struct imapd_fetch *f)
{
	int fd = -1, ret = 0;
	for (size_t i = 0; i < f->nitems && ret == 0; i++) {
		const struct fitem *it = &f->items[i];
		if (!it->binary && !it->bsize)
			continue;
		struct mc_mime_section sec;
		memset(&sec, 0, sizeof(sec));
		f->binst[i] = -1;
		if (it->npath == 0) {
			sec.body = (struct mc_mime_span){ 0, f->m.size, f->m.vsize };
		} else if (imapd_fetch_load_cache(s, f) < 0) {
			continue;
		} else if (mc_mime_section_find(f->cache.parts, f->cache.partslen, it->path, it->npath, &sec) < 0) {
			f->binst[i] = 1;
			continue;
		}
		if (fd < 0 && (fd = imapd_fetch_open_file(s, &f->m)) < 0)
			break;
		struct imapd_binpart *bp = &f->bin[i];
		int r = imapd_binary_part(fd, &sec, it->npath == 0, bp);
		if (r == 1)
			ret = 1;
		if (r != 0)
			continue;
		uint64_t ws = it->partial ? it->origin : 0;
		uint64_t we = it->partial ? (uint64_t)it->origin + it->count : UINT64_MAX;
		if (it->bsize && bp->cte < MC_CTE_BASE64)
			bp->size = sec.body.vsize;   /* as stored: the CRLF size the table knows */
		else if (imapd_binary_measure(fd, bp, ws, we) < 0)
			continue;
		f->binst[i] = 0;
	}
	if (fd >= 0)
		close(fd);
	return ret;
}

/* A BINARY or BINARY.SIZE item of the open message, as binary_prepare measured it. */
int
imapd_fetch_start_binary(struct imapd_session *s, struct imapd_fetch *f, const struct fitem *it)
{
	size_t i = (size_t)(it - f->items);
	const struct imapd_binpart *bp = &f->bin[i];
	char head[FIELDS_MAX + 128];
	int k;
	if (f->binst[i] < 0)
		return -1;
	imapd_fetch_item_sep(s, f);
	if (f->binst[i] == 1) {
		k = snprintf(head, sizeof(head), "%s %s", it->label, it->bsize ? "0" : "NIL");
		imapd_send_raw(s, head, (size_t)k);
		return 1;
	}
	if (it->bsize) {
		k = snprintf(head, sizeof(head), "%s %llu", it->label, (unsigned long long)bp->size);
		imapd_send_raw(s, head, (size_t)k);
		return 0;
	}
	uint64_t ws = 0, we = bp->size;
	if (it->partial) {
		ws = it->origin < bp->size ? it->origin : bp->size;
		we = (uint64_t)it->origin + it->count < bp->size ? (uint64_t)it->origin + it->count : bp->size;
	}
	int fd = imapd_fetch_open_file(s, &f->m);
	if (fd < 0) {
		/* the separator went out: say NIL rather than leave the item half-written */
		k = snprintf(head, sizeof(head), "%s NIL", it->label);
		imapd_send_raw(s, head, (size_t)k);
		return -1;
	}
	char origin[24] = "";
	if (it->partial)
		snprintf(origin, sizeof(origin), "<%u>", it->origin);
	k = snprintf(head, sizeof(head), "%s%s %s{%llu}\r\n", it->label, origin, bp->nul ? "~" : "",
		     (unsigned long long)(we - ws));
	imapd_send_raw(s, head, (size_t)k);
	f->fd = fd;
	f->pos = bp->off;
	f->end = bp->off + bp->len;
	f->cpos = 0;
	f->wstart = ws;
	f->wend = we;
	mc_cte_dec_init(&f->dec, bp->cte, bp->text);
	f->decoding = true;
	f->dec_done = false;
	f->streaming = true;
	return 0;
}

/* The window of a BINARY literal, decoded a second time as it was measured. */
bool
imapd_fetch_stream_decoded(struct imapd_session *s, struct imapd_fetch *f)
{
	char in[CHUNK], out[mc_cte_dec_bound(CHUNK)];
	while (f->cpos < f->wend && !f->dec_done) {
		if (mc_conn_pending_out(s->conn) > FETCH_HIGH)
			return false;
		size_t k;
		if (f->pos >= f->end) {
			k = mc_cte_dec_final(&f->dec, out);
			f->dec_done = true;
		} else {
			size_t want = f->end - f->pos < sizeof(in) ? (size_t)(f->end - f->pos) : sizeof(in);
			ssize_t r = mc_pread_at(f->fd, in, want, f->pos);
			if (r <= 0) {
				f->failed = true;
				return true;
			}
			f->pos += (uint64_t)r;
			k = mc_cte_dec_update(&f->dec, in, (size_t)r, out);
		}
		uint64_t a = f->wstart > f->cpos ? f->wstart - f->cpos : 0;
		uint64_t b = f->wend - f->cpos < k ? f->wend - f->cpos : k;
		if (a < b)
			imapd_send_raw(s, out + a, (size_t)(b - a));
		f->cpos += k;
	}
	if (f->cpos < f->wend)
		f->failed = true;   /* fewer octets than measured: the literal cannot be completed */
	return true;
}
