/*
 * search_store.c - SEARCH, SORT and THREAD over the mail store for the
 * selected view (see search_store.h).
 *
 * Called by imapd's command code. One walk of the mailbox's rows
 * (mc_store_search_rows) evaluates the program on each message the view
 * holds; the callbacks of struct imap_search_src answer from the row
 * being walked (cached fields), or open the message file (BODY, TEXT,
 * HEADER). SORT and THREAD keep copies of the fields of the matches and
 * hand them to sort.c / thread.c. Owns those copies until it returns.
 */
#include "search_store.h"

#include <stdlib.h>
#include <string.h>

#include "mail/header.h"
#include "mail/mailstore.h"
#include "mail/mailstore_ops.h"

/* What SORT and THREAD keep of one match. */
struct kept {
	char *f[ISF_COUNT];
	bool has_date;
	int64_t date;
	int tz;
};

struct walk {
	struct mc_store *s;
	const char *mailbox;
	const struct imap_search_view *v;
	const struct imap_search *prog;
	const struct mc_store_search_row *row;   /* the row being walked */
	bool uid, keep;
	uint32_t *nums;
	struct imap_search_msg *msgs;            /* keep: the matches */
	struct kept *kept;
	size_t n, cap;
	uint64_t modseq;
	bool oom;
};

static const char *
row_field(const struct mc_store_search_row *r, enum imap_search_field f)
{
	switch (f) {
	case ISF_SUBJECT: return r->subject;
	case ISF_FROM: return r->from;
	case ISF_TO: return r->to;
	case ISF_CC: return r->cc;
	case ISF_BCC: return r->bcc;
	case ISF_MESSAGE_ID: return r->message_id;
	case ISF_IN_REPLY_TO: return r->in_reply_to;
	case ISF_REFERENCES: return r->references;
	case ISF_FROM_SORT: return r->from_sort;
	case ISF_TO_SORT: return r->to_sort;
	case ISF_CC_SORT: return r->cc_sort;
	case ISF_COUNT: break;
	}
	return NULL;
}

/* ---- callbacks during the walk ---- */

static const char *
walk_field(void *arg, const struct imap_search_msg *m, enum imap_search_field f)
{
	struct walk *w = arg;
	(void)m;
	const char *v = row_field(w->row, f);
	/* the cache keeps "" for a field the message lacks: for SEARCH that is "no such field" */
	return v && v[0] ? v : NULL;
}

static int
walk_date(void *arg, const struct imap_search_msg *m, int64_t *t, int *tz)
{
	struct walk *w = arg;
	(void)m;
	if (!w->row->cached || !w->row->has_date)
		return -1;
	*t = w->row->date;
	*tz = w->row->date_tz;
	return 0;
}

static int
walk_open(void *arg, const struct imap_search_msg *m)
{
	struct walk *w = arg;
	return mc_store_msg_open(w->s, w->mailbox, m->uid, NULL);
}

static bool
walk_saved(void *arg, const struct imap_search_msg *m)
{
	struct walk *w = arg;
	return w->v->saved(w->v->arg, m->uid);
}

static int
decode(const char *s, size_t n, struct mc_buf *out)
{
	return mc_header_decode(s, n, out);
}

static int
keep(struct walk *w, const struct imap_search_msg *m)
{
	if (w->n == w->cap) {
		size_t nc = w->cap ? w->cap * 2 : 256;
		uint32_t *nn = realloc(w->nums, nc * sizeof(*nn));
		if (nn == NULL)
			return -1;
		w->nums = nn;
		if (w->keep) {
			struct imap_search_msg *nm = realloc(w->msgs, nc * sizeof(*nm));
			if (nm == NULL)
				return -1;
			w->msgs = nm;
			struct kept *nk = realloc(w->kept, nc * sizeof(*nk));
			if (nk == NULL)
				return -1;
			w->kept = nk;
		}
		w->cap = nc;
	}
	w->nums[w->n] = w->uid ? m->uid : m->seq;
	if (w->keep) {
		struct kept *k = &w->kept[w->n];
		memset(k, 0, sizeof(*k));
		w->msgs[w->n] = *m;
		w->msgs[w->n].keywords = "";   /* not kept: SORT and THREAD do not look at them */
		if (w->row->cached) {
			k->has_date = w->row->has_date;
			k->date = w->row->date;
			k->tz = w->row->date_tz;
			for (int f = 0; f < ISF_COUNT; f++) {
				const char *v = row_field(w->row, (enum imap_search_field)f);
				if (v && (k->f[f] = strdup(v)) == NULL) {
					w->n++;   /* so what was copied is freed */
					return -1;
				}
			}
		}
	}
	w->n++;
	return 0;
}

static int
walk_row(void *arg, const struct mc_store_search_row *row)
{
	struct walk *w = arg;
	const struct imap_search_view *v = w->v;
	uint32_t seq = v->seq_of_uid(v->arg, row->msg.uid);
	if (seq == 0)
		return row->msg.uid > v->max_uid;   /* past the view: nothing further is in it */
	struct imap_search_msg m = {
		.seq = seq, .uid = row->msg.uid, .flags = row->msg.flags,
		.recent = v->recent && v->recent(v->arg, row->msg.uid), .keywords = row->msg.keywords,
		.size = row->msg.vsize, .internal_date = row->msg.internal_date, .modseq = row->msg.modseq,
	};
	struct imap_search_src src = {
		.arg = w, .max_seq = v->exists, .max_uid = v->max_uid,
		/* a row without a cache (it raced the walk): header keys read the file */
		.field = row->cached ? walk_field : NULL, .sent_date = walk_date, .open = walk_open, .decode = decode,
		.saved = v->saved ? walk_saved : NULL,
	};
	w->row = row;
	if (!imap_search_match(w->prog, &m, &src))
		return 0;
	if (m.modseq > w->modseq)
		w->modseq = m.modseq;
	if (keep(w, &m) < 0) {
		w->oom = true;
		return 1;
	}
	return 0;
}

static void
walk_free(struct walk *w)
{
	for (size_t i = 0; w->kept && i < w->n; i++)
		for (int f = 0; f < ISF_COUNT; f++)
			free(w->kept[i].f[f]);
	free(w->kept);
	free(w->msgs);
	free(w->nums);
}

static int
walk_run(struct walk *w)
{
	char err[256];
	/* fields of messages that have no cache yet (after APPEND, COPY): filled first; a failure only costs speed */
	mc_store_search_prepare(w->s, w->mailbox, err, sizeof(err));
	int r = mc_store_search_rows(w->s, w->mailbox, 1, walk_row, w);
	if (r == 0 && w->oom)
		r = -1;
	return r;
}

int
imap_search_store(struct mc_store *s, const char *mailbox, const struct imap_search_view *v,
		  const struct imap_search *prog, bool uid, uint32_t **out, size_t *n, uint64_t *modseq)
{
	struct walk w = { .s = s, .mailbox = mailbox, .v = v, .prog = prog, .uid = uid };
	int r = walk_run(&w);
	*out = NULL;
	*n = 0;
	if (modseq)
		*modseq = w.modseq;
	if (r == 0) {
		*out = w.nums;
		*n = w.n;
		w.nums = NULL;
	}
	walk_free(&w);
	return r;
}

/* ---- SORT and THREAD on the kept matches ---- */

static const char *
kept_field(void *arg, const struct imap_search_msg *m, enum imap_search_field f)
{
	struct walk *w = arg;
	return w->kept[m - w->msgs].f[f];
}

static int
kept_date(void *arg, const struct imap_search_msg *m, int64_t *t, int *tz)
{
	struct walk *w = arg;
	const struct kept *k = &w->kept[m - w->msgs];
	if (!k->has_date)
		return -1;
	*t = k->date;
	*tz = k->tz;
	return 0;
}

int
imap_sort_store(struct mc_store *s, const char *mailbox, const struct imap_search_view *v,
		const struct imap_search *prog, const struct imap_sort_crit *crit, size_t ncrit, bool uid,
		uint32_t **out, size_t *n, uint64_t *modseq)
{
	struct walk w = { .s = s, .mailbox = mailbox, .v = v, .prog = prog, .uid = uid, .keep = true };
	int r = walk_run(&w);
	*out = NULL;
	*n = 0;
	if (modseq)
		*modseq = w.modseq;
	size_t *order = NULL;
	if (r == 0 && w.n) {
		struct imap_search_src ks = { .arg = &w, .field = kept_field, .sent_date = kept_date };
		order = malloc(w.n * sizeof(*order));
		uint32_t *res = malloc(w.n * sizeof(*res));
		if (order == NULL || res == NULL || imap_sort_run(crit, ncrit, w.msgs, w.n, &ks, order) < 0) {
			free(res);
			r = -1;
		} else {
			for (size_t i = 0; i < w.n; i++)
				res[i] = w.nums[order[i]];
			*out = res;
			*n = w.n;
		}
	}
	free(order);
	walk_free(&w);
	return r;
}

int
imap_thread_store(struct mc_store *s, const char *mailbox, const struct imap_search_view *v,
		  const struct imap_search *prog, enum imap_thread_alg alg, bool uid, struct mc_buf *out)
{
	struct walk w = { .s = s, .mailbox = mailbox, .v = v, .prog = prog, .uid = uid, .keep = true };
	int r = walk_run(&w);
	if (r == 0) {
		struct imap_search_src ks = { .arg = &w, .field = kept_field, .sent_date = kept_date };
		r = imap_thread_run(alg, w.msgs, w.n, &ks, uid, out);
	}
	walk_free(&w);
	return r;
}
