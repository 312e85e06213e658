/*
 * sort.c - IMAP SORT (RFC 5256): criteria parser, the sort on cached
 * fields, base-subject extraction (see sort.h).
 *
 * Called by imapd's command code for SORT and by thread.c. Builds one
 * key record per message (strings copied, so the caller's field() buffer
 * may be reused), sorts them with qsort and a comparator that falls back
 * to the sequence number, and frees everything before returning. Never
 * opens a message file.
 */
#include "sort.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SUBJECT_MAX 4096

/* ---- parsing ---- */

int
imap_sort_parse(char **pp, const char *end, struct imap_sort_crit *crit, size_t *n, const char **why)
{
	static const struct {
		const char *name;
		enum imap_sort_key key;
	} keys[] = {
		{ "ARRIVAL", ISORT_ARRIVAL }, { "CC", ISORT_CC },           { "DATE", ISORT_DATE }, { "FROM", ISORT_FROM },
		{ "SIZE", ISORT_SIZE },       { "SUBJECT", ISORT_SUBJECT }, { "TO", ISORT_TO },
	};
	char *p = *pp;
	*n = 0;
	if (p >= end || *p != '(') {
		*why = "SORT wants a list of criteria";
		return -1;
	}
	p++;
	bool reverse = false;
	for (;;) {
		char w[16];
		size_t k = 0;
		while (p < end && ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')) && k + 1 < sizeof(w)) {
			w[k++] = (char)(*p >= 'a' ? *p - 32 : *p);
			p++;
		}
		w[k] = '\0';
		if (strcmp(w, "REVERSE") == 0 && !reverse && p < end && *p == ' ') {
			reverse = true;
			p++;
			continue;
		}
		size_t i = 0;
		while (i < sizeof(keys) / sizeof(keys[0]) && strcmp(w, keys[i].name) != 0)
			i++;
		if (i == sizeof(keys) / sizeof(keys[0])) {
			*why = "unknown sort criterion";
			return -1;
		}
		if (*n == IMAP_SORT_CRIT_MAX) {
			*why = "too many sort criteria";
			return -1;
		}
		crit[*n].key = keys[i].key;
		crit[*n].reverse = reverse;
		(*n)++;
		reverse = false;
		if (p < end && *p == ' ') {
			p++;
			continue;
		}
		if (p < end && *p == ')')
			break;
		*why = "bad sort criteria";
		return -1;
	}
	p++;
	if (p >= end || *p != ' ') {
		*why = "expected a space after the sort criteria";
		return -1;
	}
	*pp = p + 1;
	return 0;
}

/* ---- base subject (RFC 5256 2.1) ---- */

static bool
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* subj-blob: "[" *BLOBCHAR "]" *WSP; length taken, or 0 when there is none at s. */
static size_t
blob(const char *s)
{
	if (*s != '[')
		return 0;
	size_t i = 1;
	while (s[i] && s[i] != '[' && s[i] != ']')
		i++;
	if (s[i] != ']')
		return 0;
	i++;
	while (is_wsp(s[i]))
		i++;
	return i;
}

/* subj-refwd: ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"; length, or 0. */
static size_t
refwd(const char *s)
{
	size_t i;
	if (strncasecmp(s, "re", 2) == 0)
		i = 2;
	else if (strncasecmp(s, "fwd", 3) == 0)
		i = 3;
	else if (strncasecmp(s, "fw", 2) == 0)
		i = 2;
	else
		return 0;
	while (is_wsp(s[i]))
		i++;
	i += blob(s + i);
	return s[i] == ':' ? i + 1 : 0;
}

bool
imap_base_subject(const char *subject, struct mc_buf *out)
{
	char *b = malloc(SUBJECT_MAX + 1);
	bool reply = false;
	mc_buf_reset(out);
	if (b == NULL) {
		mc_buf_adds(out, "");
		return false;
	}
	/* (1) whitespace runs to one space (the caller gave decoded UTF-8) */
	size_t n = 0;
	bool ws = false;
	for (const char *p = subject ? subject : ""; *p && n < SUBJECT_MAX; p++) {
		char c = *p;
		if (c == '\t' || c == '\r' || c == '\n')
			c = ' ';
		if (c == ' ') {
			if (ws)
				continue;
			ws = true;
		} else {
			ws = false;
		}
		b[n++] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
	}
	b[n] = '\0';
	char *s = b;
	for (;;) {
		bool changed = false;
		/* (2) trailing (fwd) and whitespace */
		for (;;) {
			while (n && s[n - 1] == ' ')
				s[--n] = '\0';
			if (n >= 5 && strcmp(s + n - 5, "(fwd)") == 0) {
				n -= 5;
				s[n] = '\0';
				reply = true;
				continue;
			}
			break;
		}
		/* (3) leading subj-leader: (*subj-blob subj-refwd) / WSP, repeated; (4) a leading blob if text remains */
		for (;;) {
			bool step = false;
			while (*s == ' ') {
				s++;
				n--;
				step = true;
			}
			size_t k = 0, bl;
			while ((bl = blob(s + k)) != 0)
				k += bl;
			size_t r = refwd(s + k);
			if (r) {
				s += k + r;
				n -= k + r;
				reply = true;
				step = true;
			} else if ((bl = blob(s)) != 0 && s[bl] != '\0') {
				s += bl;
				n -= bl;
				step = true;
			}
			if (!step)
				break;
			changed = true;
		}
		/* (6) [fwd: ... ] */
		if (n >= 6 && strncmp(s, "[fwd:", 5) == 0 && s[n - 1] == ']') {
			s += 5;
			n -= 6;
			s[n] = '\0';
			reply = true;
			changed = true;
		}
		if (!changed)
			break;
	}
	mc_buf_add(out, s, n);
	if (out->data == NULL)
		mc_buf_adds(out, "");
	free(b);
	return reply;
}

/* ---- addresses ---- */

void
imap_sort_first_mailbox(const char *list, char *out, size_t outsz)
{
	out[0] = '\0';
	if (list == NULL || outsz == 0)
		return;
	/* the first address ends at a ',' outside quotes, comments and <> */
	const char *p = list, *lt = NULL, *start = NULL;
	bool q = false;
	int depth = 0;
	for (; *p; p++) {
		char c = *p;
		if (q) {
			if (c == '\\' && p[1])
				p++;
			else if (c == '"')
				q = false;
			continue;
		}
		if (depth) {
			if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		}
		if (c == '"')
			q = true;
		else if (c == '(')
			depth = 1;
		else if (c == '<' && lt == NULL)
			lt = p + 1;
		else if (c == ':' && lt == NULL)
			start = NULL; /* "group:" - the first member follows */
		else if (c == ',' || c == ';') {
			if (lt || start)
				break;
		} else if (start == NULL && lt == NULL && c != ' ' && c != '\t' && c != ':')
			start = p;
	}
	const char *m = lt ? lt : start;
	if (m == NULL)
		return;
	size_t n = 0;
	while (*m && *m != '@' && *m != '>' && *m != ',' && *m != ' ' && n + 1 < outsz) {
		char c = *m++;
		if (c == '"')
			continue;
		out[n++] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
	}
	out[n] = '\0';
}

int64_t
imap_sort_sent_date(const struct imap_search_src *src, const struct imap_search_msg *m)
{
	int64_t t;
	int tz;
	if (src->sent_date && src->sent_date(src->arg, m, &t, &tz) == 0)
		return t;
	return m->internal_date;
}

/* ---- the sort ---- */

enum { S_SUBJECT, S_CC, S_FROM, S_TO, S_N };

struct skey {
	const struct imap_search_msg *m;
	size_t idx;
	int64_t date;
	char *str[S_N];          /* base subject, and the CC FROM TO mailboxes: lowercased */
};

struct sctx {
	const struct imap_sort_crit *crit;
	size_t ncrit;
};

static int
slot(enum imap_sort_key k)
{
	switch (k) {
	case ISORT_SUBJECT: return S_SUBJECT;
	case ISORT_CC: return S_CC;
	case ISORT_FROM: return S_FROM;
	case ISORT_TO: return S_TO;
	default: return -1;
	}
}

/* qsort has no argument for the comparator: the criteria of the sort running in this thread. */
static _Thread_local const struct sctx *cur;

static int
cmp(const void *a, const void *b)
{
	const struct skey *x = a, *y = b;
	for (size_t i = 0; i < cur->ncrit; i++) {
		int r = 0;
		switch (cur->crit[i].key) {
		case ISORT_ARRIVAL:
			r = x->m->internal_date < y->m->internal_date ? -1 : x->m->internal_date > y->m->internal_date;
			break;
		case ISORT_DATE:
			r = x->date < y->date ? -1 : x->date > y->date;
			break;
		case ISORT_SIZE:
			r = x->m->size < y->m->size ? -1 : x->m->size > y->m->size;
			break;
		default: {
			int s = slot(cur->crit[i].key);
			r = strcmp(x->str[s], y->str[s]);
			break;
		}
		}
		if (r)
			return cur->crit[i].reverse ? -r : r;
	}
	return x->m->seq < y->m->seq ? -1 : x->m->seq > y->m->seq;
}

int
imap_sort_run(const struct imap_sort_crit *crit, size_t ncrit, const struct imap_search_msg *msgs, size_t n,
	      const struct imap_search_src *src, size_t *order)
{
	struct skey *k = calloc(n ? n : 1, sizeof(*k));
	if (k == NULL)
		return -1;
	bool date = false, want[S_N] = { false };
	for (size_t i = 0; i < ncrit; i++) {
		if (crit[i].key == ISORT_DATE)
			date = true;
		else if (slot(crit[i].key) >= 0)
			want[slot(crit[i].key)] = true;
	}
	struct mc_buf b;
	mc_buf_init(&b, SUBJECT_MAX + 1);
	static const enum imap_search_field fields[S_N] = { ISF_SUBJECT, ISF_CC, ISF_FROM, ISF_TO };
	static const enum imap_search_field sortfields[S_N] = { ISF_SUBJECT, ISF_CC_SORT, ISF_FROM_SORT, ISF_TO_SORT };
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		k[i].m = &msgs[i];
		k[i].idx = i;
		if (date)
			k[i].date = imap_sort_sent_date(src, &msgs[i]);
		for (int s = 0; s < S_N && rc == 0; s++) {
			char mb[256] = "";
			if (!want[s] || src->field == NULL) {
				k[i].str[s] = strdup("");
			} else if (s == S_SUBJECT) {
				imap_base_subject(src->field(src->arg, &msgs[i], ISF_SUBJECT), &b);
				k[i].str[s] = strdup(b.data ? b.data : "");
			} else {
				/* the index's addr-mailbox when it keeps one, else taken from the address list */
				const char *v = src->field(src->arg, &msgs[i], sortfields[s]);
				if (v == NULL)
					imap_sort_first_mailbox(src->field(src->arg, &msgs[i], fields[s]), mb, sizeof(mb));
				else
					for (size_t j = 0; v[j] && j + 1 < sizeof(mb); j++)
						mb[j] = v[j] >= 'A' && v[j] <= 'Z' ? (char)(v[j] + 32) : v[j], mb[j + 1] = '\0';
				k[i].str[s] = strdup(mb);
			}
			if (k[i].str[s] == NULL)
				rc = -1;
		}
	}
	mc_buf_free(&b);
	if (rc == 0) {
		struct sctx c = { crit, ncrit };
		cur = &c;
		qsort(k, n, sizeof(*k), cmp);
		cur = NULL;
		for (size_t i = 0; i < n; i++)
			order[i] = k[i].idx;
	}
	for (size_t i = 0; i < n; i++)
		for (int s = 0; s < S_N; s++)
			free(k[i].str[s]);
	free(k);
	return rc;
}

int
imap_sort_format(struct mc_buf *out, const struct imap_search_msg *msgs, const size_t *order, size_t n, bool uid,
		 uint64_t modseq)
{
	if (mc_buf_adds(out, "* SORT") < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (mc_buf_printf(out, " %u", uid ? msgs[order[i]].uid : msgs[order[i]].seq) < 0)
			return -1;
	if (modseq && n && mc_buf_printf(out, " (MODSEQ %llu)", (unsigned long long)modseq) < 0)
		return -1;
	return mc_buf_adds(out, "\r\n");
}
