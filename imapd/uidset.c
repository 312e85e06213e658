/*
 * uidset.c - sets of message numbers kept as ascending ranges, and the
 * two sets a selected view keeps that way: the saved SEARCH result of
 * SEARCHRES (RFC 5182) and the messages that are \Recent in this session
 * (RFC 3501 §2.3.2).
 *
 * The saved result is kept as UIDs, so that it names the same messages
 * whatever is expunged meanwhile; "$" in a command (parse.c calls
 * imapd_saved_resolve through imap_p's saved callback) becomes ranges of
 * UIDs or of sequence numbers of the view, whichever the command reads,
 * leaving out what the view no longer holds. A result of a whole mailbox
 * is one range, so a SEARCH ALL RETURN (SAVE) over 100,000 messages costs
 * a few bytes, and a lookup is a search by halves.
 *
 * Called by searchcmd.c (keep), commands.c (resolve), mailbox.c (\Recent
 * claims), fetch.c (FLAGS). Owns the ranges of the sets it is given.
 * Never reads the index.
 */
#include "imapd/imapd.h"

#include <stdlib.h>

int
imapd_uidset_add(struct imapd_uidset *u, uint32_t lo, uint32_t hi)
{
	if (u->n && lo <= (uint64_t)u->r[u->n - 1].hi + 1) {
		if (hi > u->r[u->n - 1].hi)
			u->r[u->n - 1].hi = hi;
		return 0;
	}
	if (u->n == u->cap) {
		size_t nc = u->cap ? u->cap * 2 : 8;
		struct imap_seqrange *nr = realloc(u->r, nc * sizeof(*nr));
		if (nr == NULL)
			return -1;
		u->r = nr;
		u->cap = nc;
	}
	u->r[u->n].lo = lo;
	u->r[u->n].hi = hi;
	u->n++;
	return 0;
}

bool
imapd_uidset_has(const struct imapd_uidset *u, uint32_t n)
{
	size_t lo = 0, hi = u->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (u->r[mid].hi < n)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < u->n && u->r[lo].lo <= n;
}

void
imapd_uidset_free(struct imapd_uidset *u)
{
	free(u->r);
	u->r = NULL;
	u->n = u->cap = 0;
}

/* ---- SEARCHRES ---- */

int
imapd_saved_keep(struct imapd_session *s, const uint32_t *nums, size_t n, bool uid)
{
	struct imapd_view *v = s->view;
	imapd_uidset_free(&v->saved);
	for (size_t i = 0; i < n; i++) {
		uint32_t u = nums[i];
		if (!uid) {
			if (u == 0 || u > v->n)
				continue;
			u = v->msgs[u - 1].uid;
		}
		if (imapd_uidset_add(&v->saved, u, u) < 0) {
			imapd_uidset_free(&v->saved);   /* RFC 5182 §2.4: not saved means empty */
			return -1;
		}
	}
	return 0;
}

int
imapd_saved_resolve(void *session, struct imap_seqset *set)
{
	struct imapd_session *s = session;
	struct imapd_view *v = s->view;
	s->dollar.n = 0;
	set->ranges = NULL;
	set->nranges = 0;
	if (v == NULL)
		return 0;
	/*
	 * Walk the view: a message still in it whose UID was saved is named
	 * by its UID or its sequence number. Neighbours in the view make one
	 * range (UIDs between them that the view lacks do not exist).
	 */
	bool prev = false;
	for (uint32_t i = 0; i < v->n && v->saved.n; i++) {
		bool in = imapd_uidset_has(&v->saved, v->msgs[i].uid);
		if (in) {
			uint32_t key = s->cmd_uid ? v->msgs[i].uid : i + 1;
			if (prev)
				s->dollar.r[s->dollar.n - 1].hi = key;
			else if (imapd_uidset_add(&s->dollar, key, key) < 0)
				return -1;
		}
		prev = in;
	}
	set->ranges = s->dollar.r;
	set->nranges = s->dollar.n;
	return 0;
}

/* ---- \Recent ---- */

bool
imapd_recent_has(const struct imapd_session *s, uint32_t uid)
{
	return !s->rev2 && s->view && imapd_uidset_has(&s->view->recent, uid);
}

uint32_t
imapd_recent_count(const struct imapd_session *s)
{
	const struct imapd_view *v = s->view;
	uint32_t n = 0;
	if (v == NULL || v->recent.n == 0)
		return 0;
	/* recent UIDs are the newest: count from the end of the view */
	for (uint32_t i = v->n; i > 0 && v->msgs[i - 1].uid >= v->recent.r[0].lo; i--)
		if (imapd_uidset_has(&v->recent, v->msgs[i - 1].uid))
			n++;
	return n;
}
