/*
 * thread.c - IMAP THREAD: ORDEREDSUBJECT and REFERENCES (RFC 5256 2.1,
 * 2.2), see thread.h.
 *
 * Called by imapd's command code for THREAD / UID THREAD. REFERENCES is
 * the algorithm of the RFC (after Jamie Zawinski's): containers for every
 * message-id seen, linked by References (or In-Reply-To), dummies pruned,
 * roots grouped by base subject, siblings sorted by sent date. Containers
 * live in one array and point at each other by index; the hash from
 * message-id to container is open addressing over that array. Every walk
 * of the tree is iterative (an explicit stack), so a reply chain as long
 * as the mailbox cannot exhaust the C stack. Never opens a message file.
 */
#include "thread.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sort.h"

#define NONE SIZE_MAX

int
imap_thread_parse_alg(char **pp, const char *end, enum imap_thread_alg *alg, const char **why)
{
	char *p = *pp;
	if (end - p >= 15 && strncasecmp(p, "ORDEREDSUBJECT ", 15) == 0) {
		*alg = IMAP_THREAD_ORDEREDSUBJECT;
		*pp = p + 15;
		return 0;
	}
	if (end - p >= 11 && strncasecmp(p, "REFERENCES ", 11) == 0) {
		*alg = IMAP_THREAD_REFERENCES;
		*pp = p + 11;
		return 0;
	}
	*why = "unknown THREAD algorithm";
	return -1;
}

struct cont {
	size_t msg;        /* index into msgs, NONE for a dummy */
	size_t parent, child, next;
	char *id;          /* the message-id (hash key), NULL when not in the hash */
	int64_t date;      /* sent date; a dummy's is its first child's after sorting */
	uint32_t seq;      /* ties: sequence number (a dummy's first child's) */
	bool has_msg;      /* a message somewhere at or below */
	bool reply;        /* its subject was a reply or forward */
	char *subj;        /* base subject of its message */
};

struct tctx {
	const struct imap_search_msg *msgs;
	const struct imap_search_src *src;
	struct cont *c;
	size_t n, cap;
	size_t *hash;      /* container index or NONE */
	size_t hcap;       /* power of two */
	bool oom;
};

static size_t
cont_new(struct tctx *t)
{
	if (t->n == t->cap) {
		size_t nc = t->cap ? t->cap * 2 : 64;
		struct cont *v = realloc(t->c, nc * sizeof(*v));
		if (v == NULL) {
			t->oom = true;
			return NONE;
		}
		t->c = v;
		t->cap = nc;
	}
	t->c[t->n] = (struct cont){ .msg = NONE, .parent = NONE, .child = NONE, .next = NONE };
	return t->n++;
}

static uint64_t
hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static int
hash_grow(struct tctx *t)
{
	size_t ncap = t->hcap ? t->hcap * 2 : 256;
	size_t *nh = malloc(ncap * sizeof(*nh));
	if (nh == NULL)
		return -1;
	for (size_t i = 0; i < ncap; i++)
		nh[i] = NONE;
	for (size_t i = 0; i < t->n; i++) {
		if (t->c[i].id == NULL)
			continue;
		size_t h = (size_t)hash_str(t->c[i].id) & (ncap - 1);
		while (nh[h] != NONE)
			h = (h + 1) & (ncap - 1);
		nh[h] = i;
	}
	free(t->hash);
	t->hash = nh;
	t->hcap = ncap;
	return 0;
}

/* The container of id (n bytes), made when new. */
static size_t
cont_get(struct tctx *t, const char *id, size_t n)
{
	if ((t->n + 1) * 2 > t->hcap && hash_grow(t) < 0) {
		t->oom = true;
		return NONE;
	}
	char *key = strndup(id, n);
	if (key == NULL) {
		t->oom = true;
		return NONE;
	}
	size_t h = (size_t)hash_str(key) & (t->hcap - 1);
	while (t->hash[h] != NONE) {
		if (strcmp(t->c[t->hash[h]].id, key) == 0) {
			free(key);
			return t->hash[h];
		}
		h = (h + 1) & (t->hcap - 1);
	}
	size_t c = cont_new(t);
	if (c == NONE) {
		free(key);
		return NONE;
	}
	t->c[c].id = key;
	t->hash[h] = c;
	return c;
}

/* The next "<...>" of s from *pos: its start and length (brackets included). */
static bool
next_id(const char *s, size_t *pos, const char **id, size_t *len)
{
	if (s == NULL)
		return false;
	const char *p = s + *pos;
	for (;;) {
		const char *lt = strchr(p, '<');
		if (lt == NULL)
			return false;
		const char *gt = strchr(lt + 1, '>');
		if (gt == NULL)
			return false;
		const char *lt2 = memchr(lt + 1, '<', (size_t)(gt - lt - 1));
		if (lt2) {
			p = lt2;
			continue;
		}
		*id = lt;
		*len = (size_t)(gt - lt + 1);
		*pos = (size_t)(gt + 1 - s);
		return gt - lt > 1;
	}
}

/* Is a an ancestor of b, or b itself? */
static bool
is_above(const struct tctx *t, size_t a, size_t b)
{
	for (size_t x = b, steps = 0; x != NONE && steps <= t->n; x = t->c[x].parent, steps++)
		if (x == a)
			return true;
	return false;
}

static void
unlink_cont(struct tctx *t, size_t c)
{
	size_t p = t->c[c].parent;
	if (p == NONE)
		return;
	size_t *pp = &t->c[p].child;
	while (*pp != NONE && *pp != c)
		pp = &t->c[*pp].next;
	if (*pp == c)
		*pp = t->c[c].next;
	t->c[c].parent = NONE;
	t->c[c].next = NONE;
}

static void
link_cont(struct tctx *t, size_t parent, size_t c)
{
	t->c[c].parent = parent;
	t->c[c].next = t->c[parent].child;
	t->c[parent].child = c;
}

static const char *
fieldv(struct tctx *t, size_t i, enum imap_search_field f)
{
	return t->src->field ? t->src->field(t->src->arg, &t->msgs[i], f) : NULL;
}

/* Step 1 of REFERENCES: containers and links from Message-ID, References, In-Reply-To. */
static void
build(struct tctx *t, size_t nmsgs)
{
	for (size_t i = 0; i < nmsgs && !t->oom; i++) {
		const char *id;
		size_t len, pos = 0, c = NONE;
		const char *mid = fieldv(t, i, ISF_MESSAGE_ID);
		if (next_id(mid, &pos, &id, &len)) {
			c = cont_get(t, id, len);
			if (c != NONE && t->c[c].msg != NONE)
				c = NONE; /* a duplicate Message-ID: this one stands alone */
		}
		if (c == NONE && !t->oom)
			c = cont_new(t);
		if (c == NONE)
			return;
		t->c[c].msg = i;

		/* A: link the references together, unless that would make a loop or undo a link */
		size_t prev = NONE, nrefs = 0;
		pos = 0;
		const char *refs = fieldv(t, i, ISF_REFERENCES);
		bool any = false;
		while (nrefs < IMAP_THREAD_REFS_MAX && next_id(refs, &pos, &id, &len)) {
			size_t r = cont_get(t, id, len);
			if (r == NONE)
				return;
			nrefs++;
			any = true;
			if (prev != NONE && t->c[r].parent == NONE && r != prev && !is_above(t, r, prev))
				link_cont(t, prev, r);
			prev = r;
		}
		if (!any) {
			pos = 0;
			const char *irt = fieldv(t, i, ISF_IN_REPLY_TO);
			if (next_id(irt, &pos, &id, &len) && (prev = cont_get(t, id, len)) == NONE)
				return;
		}
		/* B: the last reference is this message's parent */
		unlink_cont(t, c);
		if (prev != NONE && prev != c && !is_above(t, c, prev))
			link_cont(t, prev, c);
	}
}

/* Containers in breadth-first order from the roots (parents before children). */
static size_t *
bfs(struct tctx *t, size_t root_list, size_t *count)
{
	size_t *q = malloc((t->n ? t->n : 1) * sizeof(*q));
	if (q == NULL)
		return NULL;
	size_t k = 0;
	for (size_t r = root_list; r != NONE && k < t->n; r = t->c[r].next)
		q[k++] = r;
	for (size_t h = 0; h < k; h++)
		for (size_t ch = t->c[q[h]].child; ch != NONE && k < t->n; ch = t->c[ch].next)
			q[k++] = ch;
	*count = k;
	return q;
}

static _Thread_local struct tctx *cur;

static int
cmp_date(const void *a, const void *b)
{
	const struct cont *x = &cur->c[*(const size_t *)a], *y = &cur->c[*(const size_t *)b];
	if (x->date != y->date)
		return x->date < y->date ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Sort a sibling list (first element *head) by date; returns the new head. */
static size_t
sort_list(struct tctx *t, size_t head, size_t *scratch)
{
	size_t k = 0;
	for (size_t x = head; x != NONE; x = t->c[x].next)
		scratch[k++] = x;
	if (k < 2)
		return head;
	cur = t;
	qsort(scratch, k, sizeof(*scratch), cmp_date);
	cur = NULL;
	for (size_t i = 0; i + 1 < k; i++)
		t->c[scratch[i]].next = scratch[i + 1];
	t->c[scratch[k - 1]].next = NONE;
	return scratch[0];
}

/*
 * Every sibling list under (and including) the roots sorted by date,
 * bottom-up so that a dummy takes its first child's date. Returns the new
 * root list head.
 */
static size_t
sort_all(struct tctx *t, size_t roots)
{
	size_t count, *order = bfs(t, roots, &count);
	size_t *scratch = malloc((t->n ? t->n : 1) * sizeof(*scratch));
	if (order == NULL || scratch == NULL) {
		free(order);
		free(scratch);
		t->oom = true;
		return roots;
	}
	for (size_t i = count; i-- > 0;) {
		struct cont *c = &t->c[order[i]];
		c->child = sort_list(t, c->child, scratch);
		if (c->msg == NONE && c->child != NONE) {
			c->date = t->c[c->child].date;
			c->seq = t->c[c->child].seq;
		}
	}
	roots = sort_list(t, roots, scratch);
	free(order);
	free(scratch);
	return roots;
}

/* Step 3: prune dummies. Returns the new root list. */
static size_t
prune(struct tctx *t, size_t roots)
{
	size_t count, *order = bfs(t, roots, &count);
	size_t *stack = malloc((t->n + 1) * sizeof(*stack));
	if (order == NULL || stack == NULL) {
		free(order);
		free(stack);
		t->oom = true;
		return roots;
	}
	/* has_msg bottom-up: a subtree without any message goes entirely */
	for (size_t i = count; i-- > 0;) {
		struct cont *c = &t->c[order[i]];
		c->has_msg = c->msg != NONE;
		for (size_t ch = c->child; ch != NONE && !c->has_msg; ch = t->c[ch].next)
			c->has_msg = t->c[ch].has_msg;
	}
	free(order);
	/* top-down over each sibling list: the roots' (owner NONE), then each kept container's */
	size_t sp = 0;
	stack[sp++] = NONE;
	while (sp > 0) {
		size_t owner = stack[--sp];
		size_t *pp = owner == NONE ? &roots : &t->c[owner].child;
		while (*pp != NONE) {
			size_t x = *pp;
			struct cont *c = &t->c[x];
			if (!c->has_msg) {
				*pp = c->next; /* A: empty dummies go */
				continue;
			}
			if (c->msg == NONE) {
				size_t live = 0;
				for (size_t ch = c->child; ch != NONE; ch = t->c[ch].next)
					live += t->c[ch].has_msg;
				if (owner != NONE || live <= 1) {
					/* B: promote the children into this list, where the dummy was */
					size_t last = NONE;
					for (size_t ch = c->child; ch != NONE; ch = t->c[ch].next) {
						t->c[ch].parent = owner;
						last = ch;
					}
					if (last != NONE) {
						t->c[last].next = c->next;
						*pp = c->child;
					} else {
						*pp = c->next;
					}
					c->child = NONE;
					continue; /* look at the promoted ones */
				}
			}
			if (sp < t->n + 1)
				stack[sp++] = x;
			pp = &c->next;
		}
	}
	free(stack);
	return roots;
}

/* The container whose message gives a thread its subject: itself, or a dummy's first child. */
static size_t
subject_of(const struct tctx *t, size_t r)
{
	return t->c[r].msg != NONE ? r : t->c[r].child;
}

struct subj {
	const char *s;
	size_t root;
	size_t order;      /* position in the root list: ties keep it (a stable sort) */
};

static int
cmp_subj(const void *a, const void *b)
{
	const struct subj *x = a, *y = b;
	int r = strcmp(x->s, y->s);
	return r ? r : x->order < y->order ? -1 : x->order > y->order;
}

/* ORDEREDSUBJECT: by base subject, then sent date, then sequence number. */
static int
cmp_subj_date(const void *a, const void *b)
{
	const struct cont *x = &cur->c[*(const size_t *)a], *y = &cur->c[*(const size_t *)b];
	int r = strcmp(x->subj, y->subj);
	if (r)
		return r;
	if (x->date != y->date)
		return x->date < y->date ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Step 5: gather threads with the same base subject. Returns the new root list. */
static size_t
group_subjects(struct tctx *t, size_t roots)
{
	size_t nr = 0;
	for (size_t r = roots; r != NONE; r = t->c[r].next)
		nr++;
	struct subj *tab = calloc(nr ? nr : 1, sizeof(*tab));
	size_t *rv = malloc((nr ? nr : 1) * sizeof(*rv));
	if (tab == NULL || rv == NULL) {
		free(tab);
		free(rv);
		t->oom = true;
		return roots;
	}
	size_t k = 0;
	for (size_t r = roots; r != NONE; r = t->c[r].next)
		rv[k++] = r;
	/* the subject table: for each subject, the preferred root (a dummy; else a non-reply) */
	size_t nt = 0;
	for (size_t i = 0; i < nr; i++) {
		size_t sc = subject_of(t, rv[i]);
		if (sc == NONE || t->c[sc].subj == NULL || t->c[sc].subj[0] == '\0')
			continue;
		tab[nt].s = t->c[sc].subj;
		tab[nt].root = rv[i];
		tab[nt].order = i;
		nt++;
	}
	qsort(tab, nt, sizeof(*tab), cmp_subj);
	bool *gone = calloc(t->n ? t->n : 1, sizeof(*gone));
	if (gone == NULL) {
		free(tab);
		free(rv);
		t->oom = true;
		return roots;
	}
	for (size_t a = 0; a < nt;) {
		size_t b = a;
		while (b < nt && strcmp(tab[b].s, tab[a].s) == 0)
			b++;
		/* preferred: a dummy, else the first that is not a reply, else the first */
		size_t best = a;
		for (size_t i = a; i < b; i++) {
			struct cont *c = &t->c[tab[i].root], *bc = &t->c[tab[best].root];
			if (bc->msg == NONE)
				break;
			if (c->msg == NONE || (bc->reply && !c->reply))
				best = i;
		}
		size_t target = tab[best].root;
		for (size_t i = a; i < b; i++) {
			size_t r = tab[i].root;
			if (r == target)
				continue;
			struct cont *rc = &t->c[r], *tc = &t->c[target];
			if (rc->msg == NONE && tc->msg == NONE) {
				/* both dummies: r's children join target's */
				size_t ch = rc->child;
				while (ch != NONE) {
					size_t next = t->c[ch].next;
					link_cont(t, target, ch);
					ch = next;
				}
				rc->child = NONE;
			} else if (tc->msg == NONE || (rc->reply && !tc->reply)) {
				link_cont(t, target, r);
			} else {
				/* neither is a reply of the other: a new dummy holds both, in target's place */
				size_t d = cont_new(t);
				if (d == NONE)
					break;
				tc = &t->c[target];
				rc = &t->c[r];
				for (size_t j = 0; j < nr; j++)
					if (rv[j] == target)
						rv[j] = d;
				tc->parent = NONE;
				link_cont(t, d, target);
				link_cont(t, d, r);
				t->c[d].has_msg = true;
				target = d;
				bool *ng = realloc(gone, t->n * sizeof(*gone));
				if (ng == NULL) {
					t->oom = true;
					break;
				}
				gone = ng;
				gone[d] = false;
			}
			gone[r] = true;
		}
		a = b;
	}
	/* the new root list, in the old order */
	size_t head = NONE, *tail = &head;
	for (size_t i = 0; i < nr; i++) {
		if (gone[rv[i]])
			continue;
		*tail = rv[i];
		t->c[rv[i]].parent = NONE;
		tail = &t->c[rv[i]].next;
	}
	*tail = NONE;
	free(gone);
	free(tab);
	free(rv);
	return head;
}

/* Write the threads of the root list: "(a b (c)(d))" per RFC 5256 section 4. */
static int
emit(struct tctx *t, size_t roots, bool uid, struct mc_buf *out)
{
	enum { T_CHAIN, T_OPEN, T_CLOSE };
	struct task {
		int kind;
		size_t c;
	} *st = malloc((3 * t->n + 3) * sizeof(*st));
	if (st == NULL)
		return -1;
	int rc = mc_buf_adds(out, "* THREAD");
	for (size_t r = roots; r != NONE && rc == 0; r = t->c[r].next) {
		size_t sp = 0;
		rc = mc_buf_adds(out, r == roots ? " (" : "(") < 0 ? -1 : 0;
		if (rc == 0)
			st[sp++] = (struct task){ T_CHAIN, r };
		bool need_space = false;
		while (sp > 0 && rc == 0) {
			struct task k = st[--sp];
			if (k.kind == T_OPEN) {
				rc = mc_buf_adds(out, "(");
				need_space = false;
				continue;
			}
			if (k.kind == T_CLOSE) {
				rc = mc_buf_adds(out, ")");
				continue;
			}
			struct cont *c = &t->c[k.c];
			if (c->msg != NONE) {
				const struct imap_search_msg *m = &t->msgs[c->msg];
				rc = mc_buf_printf(out, "%s%u", need_space ? " " : "", uid ? m->uid : m->seq);
				need_space = true;
			}
			size_t nch = 0;
			for (size_t ch = c->child; ch != NONE; ch = t->c[ch].next)
				nch++;
			if (nch == 0)
				continue;
			if (nch == 1 && c->msg != NONE) {
				st[sp++] = (struct task){ T_CHAIN, c->child };
				continue;
			}
			if (c->msg != NONE && (rc = mc_buf_adds(out, " ")) < 0)
				break;
			/* pushed last child first, so they come out in order */
			size_t k2 = sp + 3 * nch;
			if (k2 > 3 * t->n + 3) {
				rc = -1;
				break;
			}
			size_t i = 0;
			for (size_t ch = c->child; ch != NONE; ch = t->c[ch].next, i++) {
				size_t at = k2 - 3 * (i + 1);
				st[at + 2] = (struct task){ T_OPEN, 0 };
				st[at + 1] = (struct task){ T_CHAIN, ch };
				st[at] = (struct task){ T_CLOSE, 0 };
			}
			sp = k2;
		}
		if (rc == 0)
			rc = mc_buf_adds(out, ")");
	}
	if (rc == 0)
		rc = mc_buf_adds(out, "\r\n");
	free(st);
	return rc < 0 ? -1 : 0;
}

static void
tctx_free(struct tctx *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->c[i].id);
		free(t->c[i].subj);
	}
	free(t->c);
	free(t->hash);
}

/* Dates, sequence numbers and base subjects of the message containers. */
static void
fill_messages(struct tctx *t)
{
	struct mc_buf b;
	mc_buf_init(&b, 8192);
	for (size_t i = 0; i < t->n && !t->oom; i++) {
		struct cont *c = &t->c[i];
		if (c->msg == NONE)
			continue;
		const struct imap_search_msg *m = &t->msgs[c->msg];
		c->date = imap_sort_sent_date(t->src, m);
		c->seq = m->seq;
		c->reply = imap_base_subject(fieldv(t, c->msg, ISF_SUBJECT), &b);
		if ((c->subj = strdup(b.data ? b.data : "")) == NULL)
			t->oom = true;
	}
	mc_buf_free(&b);
}

int
imap_thread_run(enum imap_thread_alg alg, const struct imap_search_msg *msgs, size_t n,
		const struct imap_search_src *src, bool uid, struct mc_buf *out)
{
	struct tctx t = { .msgs = msgs, .src = src };
	size_t roots = NONE;
	if (alg == IMAP_THREAD_ORDEREDSUBJECT) {
		/* one container per message; sorted by (subject, date, seq); each run of one subject is a thread */
		for (size_t i = 0; i < n && !t.oom; i++) {
			size_t c = cont_new(&t);
			if (c != NONE)
				t.c[c].msg = i;
		}
		fill_messages(&t);
		size_t *v = malloc((n ? n : 1) * sizeof(*v));
		if (v == NULL || t.oom) {
			free(v);
			tctx_free(&t);
			return -1;
		}
		for (size_t i = 0; i < n; i++)
			v[i] = i;
		cur = &t;
		qsort(v, n, sizeof(*v), cmp_subj_date);
		cur = NULL;
		size_t *tail = &roots;
		for (size_t i = 0; i < n;) {
			size_t j = i + 1, parent = v[i];
			size_t *ctail = &t.c[parent].child;
			while (j < n && strcmp(t.c[v[j]].subj, t.c[parent].subj) == 0) {
				t.c[v[j]].parent = parent;
				*ctail = v[j];
				ctail = &t.c[v[j]].next;
				j++;
			}
			*ctail = NONE;
			*tail = parent;
			tail = &t.c[parent].next;
			i = j;
		}
		*tail = NONE;
		roots = sort_all(&t, roots);
		free(v);
	} else {
		build(&t, n);
		if (!t.oom)
			fill_messages(&t);
		size_t *tail = &roots;
		for (size_t i = 0; i < t.n && !t.oom; i++)
			if (t.c[i].parent == NONE) {
				*tail = i;
				tail = &t.c[i].next;
			}
		*tail = NONE;
		if (!t.oom)
			roots = prune(&t, roots);
		if (!t.oom)
			roots = sort_all(&t, roots);
		if (!t.oom)
			roots = group_subjects(&t, roots);
		if (!t.oom)
			roots = sort_all(&t, roots);
	}
	int rc = t.oom ? -1 : emit(&t, roots, uid, out);
	tctx_free(&t);
	return rc;
}
