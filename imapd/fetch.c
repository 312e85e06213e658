/*
 * fetch.c - FETCH and UID FETCH (RFC 3501 §6.4.5, §7.4.2): FLAGS, UID,
 * INTERNALDATE, RFC822.SIZE, and message text: BODY[]/BODY.PEEK[] with
 * HEADER, HEADER.FIELDS (.NOT), TEXT and <partial>, RFC822,
 * RFC822.HEADER, RFC822.TEXT, and BINARY[p]<partial>, BINARY.PEEK,
 * BINARY.SIZE (RFC 3516): a part decoded by libmailcore's cte.h, measured
 * once by fetch_binary.c before the message's response starts (size,
 * literal8 when a NUL is sent, NO [UNKNOWN-CTE] with the message left
 * out), then decoded again as it streams.
 *
 * Called by commands.c's table; resumed by session.c's on_drain. What the
 * index knows (flags, dates, sizes) comes from index.sqlite in one query
 * over the UID range; message text is streamed from the Maildir file,
 * whose LF line ends become CRLF (a LF not after a CR, as delivery counted
 * RFC822.SIZE), in chunks: when the client does not read, the job stops
 * with its place kept (file offset, item, UID) and goes on when the output
 * drained. Literal sizes are counted exactly before the literal starts.
 * Memory per FETCH: the job, one read chunk, and a header for
 * HEADER.FIELDS (bounded).
 *
 * Owns the FETCH job and its open file. Never: hold a whole message in
 * memory, answer a literal whose size differs from its bytes.
 */
#include "imapd/fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "mail/mailstore.h"
#include "mail/mailstore_ops.h"
#include "mail/mime.h"
#include "util/fsutil.h"
#include "util/log.h"

/* ---- parsing ---- */

/* A fetch word: letters, digits and '.' ("BODY.PEEK", "RFC822.SIZE", "HEADER.FIELDS"), uppercased. */
static int
word(struct imap_p *p, char *out, size_t outsz)
{
	size_t n = 0;
	for (;;) {
		int c = imap_p_peek(p);
		if (c < 0 || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.'))
			break;
		if (n + 1 >= outsz)
			return imap_p_fail(p, "fetch item too long");
		out[n++] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
		p->p++;
	}
	if (n == 0)
		return imap_p_fail(p, "expected a fetch item");
	out[n] = '\0';
	return 0;
}

int
imapd_fetch_add(struct imapd_fetch *f, struct imap_p *p, enum fitem_kind kind)
{
	if (f->nitems == ITEMS_MAX)
		return imap_p_fail(p, "too many fetch items");
	for (size_t i = 0; i < f->nitems; i++)
		if (kind != FI_SECTION && f->items[i].kind == kind)
			return 0;
	memset(&f->items[f->nitems], 0, sizeof(f->items[0]));
	f->items[f->nitems].kind = kind;
	f->nitems++;
	return 0;
}

static int
add_section(struct imapd_fetch *f, struct imap_p *p, enum fsec_kind sec, bool peek, const char *label)
{
	if (imapd_fetch_add(f, p, FI_SECTION) < 0)
		return -1;
	struct fitem *it = &f->items[f->nitems - 1];
	it->sec = sec;
	it->peek = peek;
	snprintf(it->label, sizeof(it->label), "%s", label);
	return 0;
}

int
imapd_fetch_partial(struct imap_p *p, struct fitem *it)
{
	if (!imap_p_accept(p, '<'))
		return 0;
	if (imap_p_number(p, &it->origin) < 0)
		return -1;
	if (!imap_p_accept(p, '.'))
		return imap_p_fail(p, "expected '.' in a partial range");
	if (imap_p_nz_number(p, &it->count) < 0)
		return -1;
	if (!imap_p_accept(p, '>'))
		return imap_p_fail(p, "expected '>'");
	it->partial = true;
	return 0;
}

/* "[" section-spec "]" ["<" number "." nz-number ">"] after BODY or BODY.PEEK. */
static int
section(struct imapd_fetch *f, struct imap_p *p, bool peek)
{
	char w[160];
	enum fsec_kind sec = SEC_ALL;
	struct fitem *it;
	unsigned path[PATH_MAX_PARTS];
	size_t npath = 0;
	p->p++;   /* '[' */
	w[0] = '\0';
	if (imap_p_peek(p) != ']' && word(p, w, sizeof(w)) < 0)
		return -1;
	/* section-part = nz-number *("." nz-number), then "." section-text */
	const char *q = w;
	while (*q >= '0' && *q <= '9') {
		unsigned long v = 0;
		while (*q >= '0' && *q <= '9') {
			v = v * 10 + (unsigned long)(*q - '0');
			if (v > 1000000)
				return imap_p_fail(p, "bad section part");
			q++;
		}
		if (v == 0 || npath == PATH_MAX_PARTS)
			return imap_p_fail(p, "bad section part");
		path[npath++] = (unsigned)v;
		if (*q == '.')
			q++;
		else if (*q != '\0')
			return imap_p_fail(p, "bad section part");
	}
	if (npath && q[-1] == '.' && *q == '\0')
		return imap_p_fail(p, "bad section part");
	if (*q) {
		if (strcmp(q, "HEADER") == 0)
			sec = SEC_HEADER;
		else if (strcmp(q, "TEXT") == 0)
			sec = SEC_TEXT;
		else if (strcmp(q, "HEADER.FIELDS") == 0)
			sec = SEC_FIELDS;
		else if (strcmp(q, "HEADER.FIELDS.NOT") == 0)
			sec = SEC_FIELDS_NOT;
		else if (strcmp(q, "MIME") == 0 && npath > 0)
			sec = SEC_MIME;
		else
			return imap_p_fail(p, "unknown section");
	}
	if (add_section(f, p, sec, peek, "BODY[") < 0)
		return -1;
	it = &f->items[f->nitems - 1];
	memcpy(it->path, path, npath * sizeof(path[0]));
	it->npath = npath;
	size_t ln = strlen(it->label);
	ln += (size_t)snprintf(it->label + ln, sizeof(it->label) - ln, "%s", w);
	if (sec == SEC_FIELDS || sec == SEC_FIELDS_NOT) {
		/* header-list = "(" header-fld-name *(SP header-fld-name) ")" */
		size_t fo = 0;
		if (imap_p_sp(p) < 0 || imap_p_list_open(p) < 0)
			return -1;
		ln += (size_t)snprintf(it->label + ln, sizeof(it->label) - ln, " (");
		do {
			char name[256];
			if (imap_p_astring(p, name, sizeof(name)) < 0)
				return -1;
			size_t nl = strlen(name);
			if (fo + nl + 2 > sizeof(it->fields) || ln + nl + 4 > sizeof(it->label))
				return imap_p_fail(p, "header field list too long");
			for (size_t i = 0; i < nl; i++)
				if ((unsigned char)name[i] <= ' ' || name[i] == ':' || (unsigned char)name[i] >= 0x7f)
					return imap_p_fail(p, "bad header field name");
			memcpy(it->fields + fo, name, nl + 1);
			fo += nl + 1;
			ln += (size_t)snprintf(it->label + ln, sizeof(it->label) - ln, "%s%s",
					       it->label[ln - 1] == '(' ? "" : " ", name);
		} while (imap_p_accept(p, ' '));
		it->fields[fo] = '\0';
		if (imap_p_list_close(p) < 0)
			return -1;
		ln += (size_t)snprintf(it->label + ln, sizeof(it->label) - ln, ")");
	}
	if (!imap_p_accept(p, ']'))
		return imap_p_fail(p, "expected ']'");
	snprintf(it->label + ln, sizeof(it->label) - ln, "]");
	return imapd_fetch_partial(p, it);
}

static int
fetch_att(struct imapd_fetch *f, struct imap_p *p)
{
	char w[32];
	if (word(p, w, sizeof(w)) < 0)
		return -1;
	if (strcmp(w, "UID") == 0)
		return imapd_fetch_add(f, p, FI_UID);
	if (strcmp(w, "FLAGS") == 0)
		return imapd_fetch_add(f, p, FI_FLAGS);
	if (strcmp(w, "INTERNALDATE") == 0)
		return imapd_fetch_add(f, p, FI_INTERNALDATE);
	if (strcmp(w, "RFC822.SIZE") == 0)
		return imapd_fetch_add(f, p, FI_SIZE);
	/* RFC 9051 §9 dropped these three from fetch-att (RFC822.SIZE stays): BODY[], BODY.PEEK[HEADER], BODY[TEXT] */
	if (f->rev2 && strncmp(w, "RFC822", 6) == 0 && (w[6] == '\0' || strcmp(w + 6, ".HEADER") == 0 ||
						       strcmp(w + 6, ".TEXT") == 0))
		return imap_p_fail(p, "RFC822, RFC822.HEADER and RFC822.TEXT are not IMAP4rev2 fetch items: use BODY[], "
				      "BODY.PEEK[HEADER], BODY[TEXT]");
	if (strcmp(w, "RFC822") == 0)
		return add_section(f, p, SEC_ALL, false, "RFC822");
	if (strcmp(w, "RFC822.HEADER") == 0)
		return add_section(f, p, SEC_HEADER, true, "RFC822.HEADER");
	if (strcmp(w, "RFC822.TEXT") == 0)
		return add_section(f, p, SEC_TEXT, false, "RFC822.TEXT");
	if ((strcmp(w, "BODY") == 0 || strcmp(w, "BODY.PEEK") == 0) && imap_p_peek(p) == '[')
		return section(f, p, w[4] == '.');
	if ((strcmp(w, "BINARY") == 0 || strcmp(w, "BINARY.PEEK") == 0 || strcmp(w, "BINARY.SIZE") == 0) &&
	    imap_p_peek(p) == '[')
		return imapd_fetch_binary_section(f, p, strcmp(w, "BINARY.PEEK") == 0, strcmp(w, "BINARY.SIZE") == 0);
	if (strcmp(w, "ENVELOPE") == 0)
		return imapd_fetch_add(f, p, FI_ENVELOPE);
	if (strcmp(w, "BODYSTRUCTURE") == 0)
		return imapd_fetch_add(f, p, FI_BODYSTRUCTURE);
	if (strcmp(w, "BODY") == 0)
		return imapd_fetch_add(f, p, FI_BODY);
	if (strcmp(w, "MODSEQ") == 0)
		return imapd_fetch_add(f, p, FI_MODSEQ);   /* RFC 7162 §3.1.4.1 */
	return imap_p_fail(p, "unknown fetch item");
}

/* FETCH's arguments after the command name. */
static int
parse_fetch(struct imapd_fetch *f, struct imap_p *p)
{
	char w[32];
	if (imap_p_sp(p) < 0 || imap_p_seqset(p, &f->seqset) < 0 || imap_p_sp(p) < 0)
		return -1;
	if (f->seqset.len >= sizeof(f->set))
		return imap_p_fail(p, "sequence set too long");
	memcpy(f->set, f->seqset.s, f->seqset.len);
	f->set[f->seqset.len] = '\0';
	f->seqset.s = f->set;   /* the ranges of "$" are the session's until the next command */
	if (imap_p_peek(p) == '(') {
		if (imap_p_list_open(p) < 0)
			return -1;
		do {
			if (fetch_att(f, p) < 0)
				return -1;
		} while (imap_p_accept(p, ' '));
		if (imap_p_list_close(p) < 0)
			return -1;
	} else {
		char *save = p->p;
		if (word(p, w, sizeof(w)) < 0)
			return -1;
		/* The macros (RFC 3501 §6.4.5). */
		if (strcmp(w, "FAST") == 0 || strcmp(w, "ALL") == 0 || strcmp(w, "FULL") == 0) {
			imapd_fetch_add(f, p, FI_FLAGS);
			imapd_fetch_add(f, p, FI_INTERNALDATE);
			imapd_fetch_add(f, p, FI_SIZE);
			if (w[0] != 'F' || w[1] == 'U')
				imapd_fetch_add(f, p, FI_ENVELOPE);
			if (w[1] == 'U')
				imapd_fetch_add(f, p, FI_BODY);
		} else {
			p->p = save;
			if (fetch_att(f, p) < 0)
				return -1;
		}
	}
	/* fetch-modifiers: " (CHANGEDSINCE mod-sequence)" (RFC 7162 §3.1.4.1) */
	if (imap_p_accept(p, ' ')) {
		char m[32];
		if (imap_p_list_open(p) < 0 || imap_p_atom_upper(p, m, sizeof(m)) < 0)
			return -1;
		if (strcmp(m, "CHANGEDSINCE") != 0)
			return imap_p_fail(p, "unknown FETCH modifier");
		if (imap_p_sp(p) < 0 || imap_p_number64(p, &f->changedsince) < 0)
			return -1;
		if (imap_p_accept(p, ' ')) {
			if (imap_p_atom_upper(p, m, sizeof(m)) < 0)
				return -1;
			if (strcmp(m, "VANISHED") != 0)
				return imap_p_fail(p, "unknown FETCH modifier");
			f->vanished = true;
		}
		if (imap_p_list_close(p) < 0)
			return -1;
		if (f->changedsince == 0)
			return imap_p_fail(p, "CHANGEDSINCE needs a mod-sequence above 0");
		imapd_fetch_add(f, p, FI_MODSEQ);
	}
	return imap_p_end(p);
}

/* ---- output ---- */

void
imapd_fetch_item_sep(struct imapd_session *s, struct imapd_fetch *f)
{
	if (!f->first)
		imapd_send_raw(s, " ", 1);
	f->first = false;
}

static void
internal_date(char *out, size_t outsz, int64_t t)
{
	static const char mon[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	snprintf(out, outsz, "\"%02d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday, mon[tm.tm_mon], tm.tm_year + 1900,
		 tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int
imapd_fetch_open_file(struct imapd_session *s, const struct fmsg *m)
{
	char dir[2048], path[2400];
	if (mc_store_mailbox_dir(s->store, s->view->name, dir, sizeof(dir)) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/%s", dir, m->file);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	/* Renamed since the row was read (another session changed its flags): ask the index again. */
	return -1;
}

/*
 * Where the header ends (just past its empty line; the file's size when
 * there is none), and the header's converted (CRLF) size.
 */
static int
header_end(int fd, uint64_t size, uint64_t *hend, uint64_t *hconv)
{
	char buf[8192];
	uint64_t off = 0, conv = 0;
	char prev = '\n';
	bool line_empty = true;   /* nothing but an optional CR since the last LF */
	while (off < size) {
		ssize_t r = mc_pread_at(fd, buf, sizeof(buf), off);
		if (r <= 0)
			return -1;
		for (ssize_t i = 0; i < r; i++) {
			char c = buf[i];
			conv += (c == '\n' && prev != '\r') ? 2 : 1;
			prev = c;
			if (c == '\n') {
				if (line_empty) {
					*hend = off + (uint64_t)i + 1;
					*hconv = conv;
					return 0;
				}
				line_empty = true;
			} else if (c != '\r') {
				line_empty = false;
			}
		}
		off += (uint64_t)r;
	}
	*hend = size;
	*hconv = conv;
	return 0;
}

/* Is name among the NUL-separated list? */
static bool
field_listed(const char *list, const char *name, size_t nlen)
{
	for (const char *f = list; *f; f += strlen(f) + 1)
		if (strlen(f) == nlen && strncasecmp(f, name, nlen) == 0)
			return true;
	return false;
}

/* HEADER.FIELDS (.NOT): the selected fields with CRLF line ends, then the empty line, into out. */
static int
header_fields(int fd, uint64_t hoff, uint64_t hend, const struct fitem *it, struct mc_buf *out)
{
	uint64_t hl = hend - hoff;
	size_t n = hl > HEADER_MAX ? HEADER_MAX : (size_t)hl;
	char *h = malloc(n + 1);
	if (h == NULL)
		return -1;
	size_t got = 0;
	while (got < n) {
		ssize_t r = mc_pread_at(fd, h + got, n - got, hoff + got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	bool keep = false;
	for (size_t i = 0; i < got;) {
		size_t e = i;
		while (e < got && h[e] != '\n')
			e++;
		size_t len = e - i;
		if (len > 0 && h[i + len - 1] == '\r')
			len--;
		if (len == 0)
			break;   /* the empty line */
		if (h[i] != ' ' && h[i] != '\t') {
			const char *colon = memchr(h + i, ':', len);
			size_t nl = colon ? (size_t)(colon - (h + i)) : len;
			while (nl > 0 && (h[i + nl - 1] == ' ' || h[i + nl - 1] == '\t'))
				nl--;
			bool listed = colon && field_listed(it->fields, h + i, nl);
			keep = it->sec == SEC_FIELDS ? listed : (colon && !listed);
		}
		if (keep && (mc_buf_add(out, h + i, len) < 0 || mc_buf_add(out, "\r\n", 2) < 0)) {
			free(h);
			return -1;
		}
		i = e + 1;
	}
	free(h);
	return mc_buf_add(out, "\r\n", 2);
}

/* Send the window of the literal, as far as the output allows. true when the literal is done. */
static bool
stream(struct imapd_session *s, struct imapd_fetch *f)
{
	if (f->decoding)
		return imapd_fetch_stream_decoded(s, f);
	char in[CHUNK], out[2 * CHUNK];
	while (f->pos < f->end && f->cpos < f->wend) {
		if (mc_conn_pending_out(s->conn) > FETCH_HIGH)
			return false;
		size_t want = f->end - f->pos < sizeof(in) ? (size_t)(f->end - f->pos) : sizeof(in);
		ssize_t r = mc_pread_at(f->fd, in, want, f->pos);
		if (r <= 0) {
			/* The file shrank under us: the literal cannot be completed. */
			f->failed = true;
			return true;
		}
		size_t o = 0;
		for (ssize_t i = 0; i < r; i++) {
			char c = in[i];
			if (c == '\n' && f->prev != '\r') {
				if (f->cpos >= f->wstart && f->cpos < f->wend)
					out[o++] = '\r';
				f->cpos++;
			}
			if (f->cpos >= f->wstart && f->cpos < f->wend)
				out[o++] = c;
			f->cpos++;
			f->prev = c;
		}
		f->pos += (uint64_t)r;
		imapd_send_raw(s, out, o);
	}
	return true;
}

/* The open message's cache (once per message). */
int
imapd_fetch_load_cache(struct imapd_session *s, struct imapd_fetch *f)
{
	char err[256] = "";
	if (f->have_cache)
		return 0;
	if (mc_store_msg_cache(s->store, s->view->name, f->m.uid, &f->cache, err, sizeof(err)) != 0) {
		mc_info("%s: no cache for uid=%u of %s user=%s: %s", s->id, f->m.uid, s->view->name, s->user, err);
		return -1;
	}
	f->have_cache = true;
	return 0;
}

static void
drop_cache(struct imapd_fetch *f)
{
	if (f->have_cache)
		mc_store_cache_free(&f->cache);
	f->have_cache = false;
}

/*
 * The literal of a section item: its size line, then the bytes (maybe not
 * all now). -1 when nothing was sent (file gone); 1 when the part does not
 * exist (NIL was sent).
 */
static int
start_section(struct imapd_session *s, struct imapd_fetch *f, const struct fitem *it)
{
	struct fmsg *m = &f->m;
	struct mc_mime_section part;
	if (it->binary || it->bsize)
		return imapd_fetch_start_binary(s, f, it);
	if (it->npath > 0) {
		if (imapd_fetch_load_cache(s, f) < 0)
			return -1;
		if (mc_mime_section_find(f->cache.parts, f->cache.partslen, it->path, it->npath, &part) < 0 ||
		    (!part.is_message && (it->sec == SEC_HEADER || it->sec == SEC_TEXT || it->sec == SEC_FIELDS ||
					  it->sec == SEC_FIELDS_NOT))) {
			imapd_fetch_item_sep(s, f);
			imapd_send_raw(s, it->label, strlen(it->label));
			imapd_send_raw(s, " NIL", 4);
			return 1;
		}
	}
	int fd = imapd_fetch_open_file(s, m);
	if (fd < 0)
		return -1;
	uint64_t from = 0, to = m->size, conv = m->vsize, hend = 0, hconv = 0;
	char prev = '\n';
	struct mc_buf mem;
	mc_buf_init(&mem, HEADER_MAX + 4096);
	bool in_mem = false;
	if (it->npath > 0) {
		const struct mc_mime_span *sp = it->sec == SEC_MIME   ? &part.mime
						: it->sec == SEC_TEXT ? &part.text
						: it->sec == SEC_ALL  ? &part.body
								      : &part.header;
		from = sp->off;
		to = sp->off + sp->len;
		conv = sp->vsize;
		hend = to;
	} else if (it->sec != SEC_ALL) {
		if (header_end(fd, m->size, &hend, &hconv) < 0) {
			close(fd);
			return -1;
		}
		if (it->sec == SEC_HEADER) {
			to = hend;
			conv = hconv;
		} else if (it->sec == SEC_TEXT) {
			from = hend;
			conv = m->vsize > hconv ? m->vsize - hconv : 0;
		}
	}
	if (from > 0 && pread(fd, &prev, 1, (off_t)(from - 1)) != 1)
		prev = '\n';
	if (it->sec == SEC_FIELDS || it->sec == SEC_FIELDS_NOT) {
		if (header_fields(fd, from, hend, it, &mem) < 0) {
			mc_buf_free(&mem);
			close(fd);
			return -1;
		}
		in_mem = true;
		conv = mem.len;
	}
	uint64_t ws = 0, we = conv;
	if (it->partial) {
		ws = it->origin < conv ? it->origin : conv;
		we = (uint64_t)it->origin + it->count < conv ? (uint64_t)it->origin + it->count : conv;
	}
	char head[FIELDS_MAX + 128];
	int k;
	if (it->partial)
		k = snprintf(head, sizeof(head), "%s<%u> {%llu}\r\n", it->label, it->origin,
			     (unsigned long long)(we - ws));
	else
		k = snprintf(head, sizeof(head), "%s {%llu}\r\n", it->label, (unsigned long long)(we - ws));
	imapd_fetch_item_sep(s, f);
	imapd_send_raw(s, head, (size_t)k);
	if (in_mem) {
		imapd_send_raw(s, mem.data + ws, (size_t)(we - ws));
		mc_buf_free(&mem);
		close(fd);
		return 0;
	}
	mc_buf_free(&mem);
	f->fd = fd;
	f->pos = from;
	f->end = to;
	f->cpos = 0;
	f->wstart = ws;
	f->wend = we;
	f->prev = prev;
	f->decoding = false;
	f->streaming = true;
	return 0;
}

/* Go on with the open message's items. true when its response is complete. */
static bool
message_items(struct imapd_session *s, struct imapd_fetch *f)
{
	char buf[1200];
	for (;;) {
		if (f->streaming) {
			if (!stream(s, f))
				return false;
			close(f->fd);
			f->fd = -1;
			f->streaming = false;
			if (f->failed)
				return true;
		}
		if (f->item == f->nitems)
			break;
		const struct fitem *it = &f->items[f->item++];
		switch (it->kind) {
		case FI_UID:
			imapd_fetch_item_sep(s, f);
			snprintf(buf, sizeof(buf), "UID %u", f->m.uid);
			imapd_send_raw(s, buf, strlen(buf));
			break;
		case FI_FLAGS: {
			char fl[1100];
			imapd_msg_flags_text(s, f->m.uid, fl, sizeof(fl), f->m.flags, f->m.keywords);
			imapd_fetch_item_sep(s, f);
			snprintf(buf, sizeof(buf), "FLAGS (%s)", fl);
			imapd_send_raw(s, buf, strlen(buf));
			break;
		}
		case FI_INTERNALDATE: {
			char d[64];
			internal_date(d, sizeof(d), f->m.internal_date);
			imapd_fetch_item_sep(s, f);
			snprintf(buf, sizeof(buf), "INTERNALDATE %s", d);
			imapd_send_raw(s, buf, strlen(buf));
			break;
		}
		case FI_MODSEQ:
			imapd_fetch_item_sep(s, f);
			snprintf(buf, sizeof(buf), "MODSEQ (%llu)", (unsigned long long)f->m.modseq);
			imapd_send_raw(s, buf, strlen(buf));
			break;
		case FI_SIZE:
			imapd_fetch_item_sep(s, f);
			snprintf(buf, sizeof(buf), "RFC822.SIZE %llu", (unsigned long long)f->m.vsize);
			imapd_send_raw(s, buf, strlen(buf));
			break;
		case FI_ENVELOPE:
		case FI_BODYSTRUCTURE:
		case FI_BODY: {
			if (imapd_fetch_load_cache(s, f) < 0) {
				f->missing = true;
				break;
			}
			const char *name = it->kind == FI_ENVELOPE ? "ENVELOPE " : it->kind == FI_BODY ? "BODY " : "BODYSTRUCTURE ";
			const char *v = it->kind == FI_ENVELOPE ? f->cache.envelope
					: it->kind == FI_BODY   ? f->cache.body
								: f->cache.bodystructure;
			if (v == NULL) {
				f->missing = true;
				break;
			}
			imapd_fetch_item_sep(s, f);
			imapd_send_raw(s, name, strlen(name));
			imapd_send_raw(s, v, strlen(v));
			break;
		}
		case FI_SECTION:
			if (start_section(s, f, it) < 0) {
				/* Nothing of the item was sent: leave it out and say so in the tagged answer. */
				mc_info("%s: cannot read uid=%u of %s for user=%s: %s", s->id, f->m.uid, s->view->name,
					s->user, strerror(errno));
				f->missing = true;
			}
			break;
		}
	}
	imapd_send_raw(s, ")\r\n", 3);
	drop_cache(f);
	return true;
}

static int
walk(void *arg, const struct mc_store_msg *msg)
{
	struct imapd_session *s = arg;
	struct imapd_fetch *f = s->fetch;
	if (msg->uid > f->last_uid) {
		f->next_uid = f->last_uid + 1;
		return 1;
	}
	f->next_uid = (uint64_t)msg->uid + 1;
	uint32_t seq = imapd_view_seq(s->view, msg->uid);
	if (seq == 0)
		return 0;   /* arrived after the view was last synced: not the client's yet */
	if (!imap_seqset_has(&f->seqset, f->uid ? msg->uid : seq,
			     f->uid ? s->view->msgs[s->view->n - 1].uid : s->view->n))
		return 0;
	if (f->changedsince && msg->modseq <= f->changedsince)
		return 0;
	struct fmsg *m = &f->m;
	m->seq = seq;
	m->uid = msg->uid;
	m->flags = msg->flags;
	m->modseq = msg->modseq;
	m->size = msg->size;
	m->vsize = msg->vsize;
	m->internal_date = msg->internal_date;
	snprintf(m->file, sizeof(m->file), "%s", msg->file);
	snprintf(m->keywords, sizeof(m->keywords), "%s", msg->keywords);
	if (imapd_fetch_binary_prepare(s, f) == 1) {
		/* RFC 3516 §4.2: an encoding the server cannot decode fails the request; this message is left out */
		mc_info("%s: uid=%u of %s: unknown Content-Transfer-Encoding for BINARY", s->id, m->uid, s->view->name);
		f->unknown_cte = true;
		drop_cache(f);
		return 0;
	}
	f->in_msg = true;
	f->item = 0;
	f->first = true;
	char head[64];
	int k = snprintf(head, sizeof(head), "* %u FETCH (", seq);
	imapd_send_raw(s, head, (size_t)k);
	if (!message_items(s, f)) {
		f->walk_stopped = true;
		return 1;   /* paused mid-literal: on_drain goes on */
	}
	f->in_msg = false;
	if (f->failed || mc_conn_pending_out(s->conn) > FETCH_HIGH) {
		f->walk_stopped = true;
		return 1;
	}
	return 0;
}

static void
finish(struct imapd_session *s)
{
	struct imapd_fetch *f = s->fetch;
	bool failed = f->failed, missing = f->missing, unknown_cte = f->unknown_cte;
	imapd_fetch_free(s);
	if (failed) {
		/* A literal was cut short: the output cannot be trusted, so the session ends. */
		imapd_session_close(s, "Message file changed during FETCH", "fetch failed");
		return;
	}
	if (unknown_cte)
		imapd_done(s, "NO", "[UNKNOWN-CTE] A part's Content-Transfer-Encoding cannot be decoded");
	else if (missing)
		imapd_done(s, "NO", "[EXPUNGEISSUED] Some messages could not be read (expunged meanwhile?)");
	else
		imapd_done(s, "OK", "FETCH completed");
	imapd_session_go(s);
}

/* Run the job until it is done or the output is full (on_drain runs it again). */
static void
run(struct imapd_session *s)
{
	struct imapd_fetch *f = s->fetch;
	for (;;) {
		if (f->in_msg) {
			if (!message_items(s, f)) {
				imapd_flush(s);
				return;
			}
			f->in_msg = false;
		}
		if (f->failed || f->next_uid > f->last_uid)
			break;
		if (mc_conn_pending_out(s->conn) > FETCH_HIGH) {
			imapd_flush(s);
			return;
		}
		f->walk_stopped = false;
		if (mc_store_messages(s->store, s->view->name, (uint32_t)f->next_uid, walk, s) < 0) {
			mc_warn("%s: cannot read the index of %s for user=%s", s->id, s->view->name, s->user);
			f->failed = true;
			break;
		}
		if (!f->walk_stopped)
			break;   /* the walk reached the index's end */
	}
	finish(s);
}

void
imapd_fetch_resume(struct imapd_session *s)
{
	if (s->fetch && !s->closing)
		run(s);
}

void
imapd_fetch_free(struct imapd_session *s)
{
	struct imapd_fetch *f = s->fetch;
	if (f == NULL)
		return;
	if (f->fd >= 0)
		close(f->fd);
	drop_cache(f);
	free(f);
	s->fetch = NULL;
}

static int
seen_set(void *arg, const struct mc_store_msg *m, enum mc_store_flag_result r)
{
	struct imapd_view *v = arg;
	uint32_t seq = imapd_view_seq(v, m->uid);
	if (seq) {
		v->msgs[seq - 1].flags = m->flags;
		v->msgs[seq - 1].modseq = m->modseq;
	}
	(void)r;
	return 0;
}

/*
 * RFC 3501 §6.4.5: BODY[...] and RFC822(.TEXT) set \Seen. Done before
 * the answer is streamed, so the FLAGS item (added when any message
 * changes) shows it.
 */
static void
set_seen(struct imapd_session *s, struct imapd_fetch *f, uint32_t lo, uint32_t hi)
{
	struct imapd_view *v = s->view;
	bool needed = false;
	for (size_t i = 0; i < f->nitems; i++)
		if (f->items[i].kind == FI_SECTION && !f->items[i].peek)
			needed = true;
	if (!needed || v->readonly)
		return;
	uint32_t star = f->uid ? v->msgs[v->n - 1].uid : v->n;
	uint32_t *uids = malloc((size_t)v->n * sizeof(*uids));
	size_t n = 0;
	if (uids == NULL)
		return;
	for (uint32_t i = 0; i < v->n; i++) {
		uint32_t key = f->uid ? v->msgs[i].uid : i + 1;
		if (key >= lo && key <= hi && !(v->msgs[i].flags & MC_FLAG_SEEN) && imap_seqset_has(&f->seqset, key, star))
			uids[n++] = v->msgs[i].uid;
	}
	if (n > 0) {
		struct mc_store_flag_change ch = { .op = MC_FLAGOP_ADD, .flags = MC_FLAG_SEEN };
		char err[256] = "";
		uint64_t modseq;
		if (mc_store_flags_change(s->store, v->name, uids, n, &ch, &modseq, seen_set, v, err, sizeof(err)) < 0)
			mc_warn("%s: cannot set \\Seen for user=%s: %s", s->id, s->user, err);
		else {
			imapd_idle_changed(s, v->name);
			imapd_fetch_add(f, &(struct imap_p){ 0 }, FI_FLAGS);
			if (s->condstore)
				imapd_fetch_add(f, &(struct imap_p){ 0 }, FI_MODSEQ);
		}
	}
	free(uids);
}

void
imapd_cmd_fetch(struct imapd_session *s, struct imap_p *p, bool uid)
{
	struct imapd_fetch *f = calloc(1, sizeof(*f));
	if (f == NULL) {
		imapd_done(s, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	f->fd = -1;
	f->uid = uid;
	f->rev2 = s->rev2;
	if (parse_fetch(f, p) < 0) {
		free(f);
		imapd_done(s, "BAD", "%s", p->err);
		return;
	}
	if (f->vanished && (!uid || !s->qresync)) {
		free(f);
		imapd_done(s, "BAD", "VANISHED needs UID FETCH and ENABLE QRESYNC");
		return;
	}
	for (size_t i = 0; i < f->nitems; i++)
		if (f->items[i].kind == FI_MODSEQ)
			s->condstore = true;   /* RFC 7162 §3.1: a CONDSTORE-using command enables it */
	if (f->vanished)
		imapd_vanished_earlier(s, f->changedsince, &f->seqset, false);
	if (uid && imapd_fetch_add(f, p, FI_UID) == 0) {
		/* UID FETCH answers with the UID even when not asked (RFC 3501 §6.4.8): put it first. */
		struct fitem u = f->items[f->nitems - 1];
		if (u.kind == FI_UID && f->nitems > 1 && f->items[0].kind != FI_UID) {
			memmove(&f->items[1], &f->items[0], (f->nitems - 1) * sizeof(f->items[0]));
			f->items[0] = u;
		}
	}
	struct imapd_view *v = s->view;
	bool named = imap_seqset_max(&f->seqset, 1) > 0;   /* an empty "$" names nothing: OK (RFC 5182) */
	if (v->n == 0 || !named) {
		bool ok = uid || !named;
		free(f);
		if (ok)
			imapd_done(s, "OK", "FETCH completed");
		else
			imapd_done(s, "BAD", "No messages");
		return;
	}
	/* Walk only the UIDs the set can name. */
	uint32_t star = uid ? v->msgs[v->n - 1].uid : v->n;
	uint32_t max = imap_seqset_max(&f->seqset, star);
	if (!uid && max > v->n) {
		free(f);
		imapd_done(s, "BAD", "Invalid message sequence number");
		return;
	}
	size_t pos = 0;
	uint32_t lo, hi, min = UINT32_MAX;
	while (imap_seqset_next(&f->seqset, &pos, star, &lo, &hi))
		if (lo < min)
			min = lo;
	if (uid) {
		f->next_uid = min;
		f->last_uid = max;
	} else {
		f->next_uid = v->msgs[min - 1].uid;
		f->last_uid = v->msgs[max - 1].uid;
	}
	set_seen(s, f, min, max);
	s->fetch = f;
	imapd_session_wait(s);
	run(s);
}
