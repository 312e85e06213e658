/*
 * queue_ctl.c - builders and bounded readers of the Q_CTL_* payloads
 * (see queue_ctl.h for the layouts).
 *
 * Called by postern/cmd_queue.c and queued/control.c, never by anyone
 * who builds these frames by hand. Writers truncate strings to what the
 * reader's buffers take (at a UTF-8 character boundary), so a long
 * remote reply in a last error never makes a reply unreadable. Readers
 * check each repeated count against the bytes left in the frame before
 * allocating, so a lying count cannot make the tool allocate gigabytes.
 * Owns only the arrays its readers allocate (freed with the _free calls).
 */
#include "mail/queue_ctl.h"

#include <stdlib.h>
#include <string.h>

/* Smallest encodings of repeated items: a field is a 1-byte kind then its value. */
#define F_U32 5
#define F_U64 9
#define F_STR 5
#define MIN_RCPT (3 * F_STR + F_U32 + F_U64)
#define MIN_ENTRY (3 * F_STR + 3 * F_U64 + 2 * F_U32)
#define MIN_EVENT (F_U64 + 4 * F_STR)
#define MIN_DOM (F_STR + F_U32 + F_U64 + MC_QCTL_BUCKETS * F_U32)
#define MIN_RESULT (2 * F_STR)

const unsigned mc_qctl_bucket_minutes[MC_QCTL_BUCKETS - 1] = { 5, 10, 20, 40, 80, 160, 320, 640, 1280 };

static const char *const action_names[MC_QCTL_ACTION_COUNT] = {
	[MC_QCTL_FLUSH] = "flush", [MC_QCTL_HOLD] = "hold", [MC_QCTL_RELEASE] = "release",
	[MC_QCTL_DELETE] = "delete", [MC_QCTL_BOUNCE] = "bounce",
};

const char *
mc_qctl_action_name(uint32_t action)
{
	return action > 0 && action < MC_QCTL_ACTION_COUNT ? action_names[action] : "?";
}

bool
mc_qctl_filter_empty(const struct mc_qctl_filter *f)
{
	return !f->qid[0] && !f->from[0] && !f->to[0] && !f->state[0] && f->older_than == 0;
}

bool
mc_qctl_state_valid(const char *s)
{
	static const char *const states[] = { "deferred", "held", "active", "corrupt" };
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		if (strcmp(s, states[i]) == 0)
			return true;
	return false;
}

/* Bytes of the frame not read yet. */
static size_t
left(const struct mc_msg *m)
{
	return m->payload.len > m->rpos ? m->payload.len - m->rpos : 0;
}

/* Put s cut to fit a reader's buffer of max bytes (NUL included), not inside a UTF-8 sequence. */
static void
put_str_max(struct mc_msg *m, const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;
	if (n > max - 1) {
		n = max - 1;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	mc_msg_put_strn(m, s ? s : "", n);
}

static void
put_i64(struct mc_msg *m, int64_t v)
{
	mc_msg_put_u64(m, (uint64_t)v);
}

static int
get_i64(struct mc_msg *m, int64_t *v)
{
	uint64_t u;
	if (mc_msg_get_u64(m, &u) < 0)
		return -1;
	*v = (int64_t)u;
	return 0;
}

/* ---- filters ---- */

static void
put_filter(struct mc_msg *m, const struct mc_qctl_filter *f)
{
	mc_msg_put_u32(m, f->all ? 1 : 0);
	put_str_max(m, f->qid, sizeof(f->qid));
	put_str_max(m, f->from, sizeof(f->from));
	put_str_max(m, f->to, sizeof(f->to));
	put_str_max(m, f->state, sizeof(f->state));
	mc_msg_put_u64(m, f->older_than);
}

static int
get_filter(struct mc_msg *m, struct mc_qctl_filter *f)
{
	uint32_t all;
	memset(f, 0, sizeof(*f));
	if (mc_msg_get_u32(m, &all) < 0 || all > 1 || mc_msg_get_str(m, f->qid, sizeof(f->qid)) < 0 ||
	    mc_msg_get_str(m, f->from, sizeof(f->from)) < 0 || mc_msg_get_str(m, f->to, sizeof(f->to)) < 0 ||
	    mc_msg_get_str(m, f->state, sizeof(f->state)) < 0 || mc_msg_get_u64(m, &f->older_than) < 0)
		return -1;
	if (f->state[0] && !mc_qctl_state_valid(f->state))
		return -1;
	f->all = all != 0;
	return 0;
}

/* ---- list ---- */

void
mc_qctl_put_list_req(struct mc_msg *m, const struct mc_qctl_filter *f, const char *after, uint32_t max)
{
	put_filter(m, f);
	put_str_max(m, after, MC_QID_MAX);
	mc_msg_put_u32(m, max);
}

int
mc_qctl_get_list_req(struct mc_msg *m, struct mc_qctl_filter *f, char *after, size_t aftersz, uint32_t *max)
{
	if (get_filter(m, f) < 0 || mc_msg_get_str(m, after, aftersz) < 0 || mc_msg_get_u32(m, max) < 0)
		return -1;
	return mc_msg_end(m);
}

void
mc_qctl_put_entry(struct mc_msg *m, const struct mc_qctl_entry *e)
{
	put_str_max(m, e->qid, sizeof(e->qid));
	put_str_max(m, e->state, sizeof(e->state));
	put_i64(m, e->arrival);
	mc_msg_put_u64(m, e->size);
	put_str_max(m, e->sender, sizeof(e->sender));
	put_i64(m, e->next_try);
	mc_msg_put_u32(m, e->nrcpt);
	mc_msg_put_u32(m, e->n);
	for (uint32_t i = 0; i < e->n; i++) {
		const struct mc_qctl_rcpt *r = &e->rcpt[i];
		put_str_max(m, r->addr, sizeof(r->addr));
		put_str_max(m, r->state, sizeof(r->state));
		mc_msg_put_u32(m, r->attempts);
		put_i64(m, r->next_try);
		put_str_max(m, r->last_error, sizeof(r->last_error));
	}
}

size_t
mc_qctl_entry_size(const struct mc_qctl_entry *e)
{
	size_t n = MIN_ENTRY + strlen(e->qid) + strlen(e->state) + strlen(e->sender);
	for (uint32_t i = 0; i < e->n; i++)
		n += MIN_RCPT + strlen(e->rcpt[i].addr) + strlen(e->rcpt[i].state) + strlen(e->rcpt[i].last_error);
	return n;
}

int
mc_qctl_get_entry(struct mc_msg *m, struct mc_qctl_entry *e)
{
	memset(e, 0, sizeof(*e));
	if (mc_msg_get_str(m, e->qid, sizeof(e->qid)) < 0 || mc_msg_get_str(m, e->state, sizeof(e->state)) < 0 ||
	    get_i64(m, &e->arrival) < 0 || mc_msg_get_u64(m, &e->size) < 0 ||
	    mc_msg_get_str(m, e->sender, sizeof(e->sender)) < 0 || get_i64(m, &e->next_try) < 0 ||
	    mc_msg_get_u32(m, &e->nrcpt) < 0 || mc_msg_get_u32(m, &e->n) < 0)
		return -1;
	uint32_t n = e->n;
	e->n = 0;
	if (n > e->nrcpt || n > left(m) / MIN_RCPT)
		return -1;
	if (n == 0)
		return 0;
	e->rcpt = calloc(n, sizeof(*e->rcpt));
	if (e->rcpt == NULL)
		return -1;
	for (; e->n < n; e->n++) {
		struct mc_qctl_rcpt *r = &e->rcpt[e->n];
		if (mc_msg_get_str(m, r->addr, sizeof(r->addr)) < 0 || mc_msg_get_str(m, r->state, sizeof(r->state)) < 0 ||
		    mc_msg_get_u32(m, &r->attempts) < 0 || get_i64(m, &r->next_try) < 0 ||
		    mc_msg_get_str(m, r->last_error, sizeof(r->last_error)) < 0) {
			mc_qctl_entry_free(e);
			return -1;
		}
	}
	return 0;
}

void
mc_qctl_entry_free(struct mc_qctl_entry *e)
{
	if (e == NULL)
		return;
	free(e->rcpt);
	e->rcpt = NULL;
	e->n = 0;
}

void
mc_qctl_put_next(struct mc_msg *m, const char *next)
{
	put_str_max(m, next, MC_QID_MAX);
}

int
mc_qctl_get_next(struct mc_msg *m, char *next, size_t nextsz)
{
	if (mc_msg_get_str(m, next, nextsz) < 0)
		return -1;
	return mc_msg_end(m);
}

/* ---- show ---- */

void
mc_qctl_put_show_req(struct mc_msg *m, const char *qid, bool body)
{
	put_str_max(m, qid, MC_QID_MAX);
	mc_msg_put_u32(m, body ? 1 : 0);
}

int
mc_qctl_get_show_req(struct mc_msg *m, char *qid, size_t qidsz, bool *body)
{
	uint32_t b;
	if (mc_msg_get_str(m, qid, qidsz) < 0 || mc_msg_get_u32(m, &b) < 0 || b > 1)
		return -1;
	*body = b != 0;
	return mc_msg_end(m);
}

void
mc_qctl_put_event(struct mc_msg *m, const struct mc_qctl_event *ev)
{
	put_i64(m, ev->time_ms);
	put_str_max(m, ev->qid, sizeof(ev->qid));
	put_str_max(m, ev->rcpt, sizeof(ev->rcpt));
	put_str_max(m, ev->what, sizeof(ev->what));
	put_str_max(m, ev->detail, sizeof(ev->detail));
}

static int
get_event(struct mc_msg *m, struct mc_qctl_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	if (get_i64(m, &ev->time_ms) < 0 || mc_msg_get_str(m, ev->qid, sizeof(ev->qid)) < 0 ||
	    mc_msg_get_str(m, ev->rcpt, sizeof(ev->rcpt)) < 0 || mc_msg_get_str(m, ev->what, sizeof(ev->what)) < 0 ||
	    mc_msg_get_str(m, ev->detail, sizeof(ev->detail)) < 0)
		return -1;
	return 0;
}

int
mc_qctl_get_event(struct mc_msg *m, struct mc_qctl_event *ev)
{
	if (get_event(m, ev) < 0)
		return -1;
	return mc_msg_end(m);
}

void
mc_qctl_put_show(struct mc_msg *m, const struct mc_qctl_show *s)
{
	mc_qctl_put_entry(m, &s->e);
	put_str_max(m, s->envid, sizeof(s->envid));
	put_str_max(m, s->auth_user, sizeof(s->auth_user));
	put_str_max(m, s->client, sizeof(s->client));
	mc_msg_put_u32(m, s->flags);
	size_t hn = s->headers ? strlen(s->headers) : 0;
	mc_msg_put_bytes(m, s->headers ? s->headers : "", hn > MC_QCTL_HEADERS_MAX ? MC_QCTL_HEADERS_MAX : hn);
	mc_msg_put_u32(m, s->nevents);
	for (uint32_t i = 0; i < s->nevents; i++)
		mc_qctl_put_event(m, &s->events[i]);
	if (s->body_fd >= 0)
		mc_msg_put_fd(m, s->body_fd);
}

int
mc_qctl_get_show(struct mc_msg *m, struct mc_qctl_show *s)
{
	const void *h;
	size_t hn;
	uint32_t n;
	memset(s, 0, sizeof(*s));
	s->body_fd = -1;
	if (mc_qctl_get_entry(m, &s->e) < 0)
		return -1;
	if (mc_msg_get_str(m, s->envid, sizeof(s->envid)) < 0 ||
	    mc_msg_get_str(m, s->auth_user, sizeof(s->auth_user)) < 0 ||
	    mc_msg_get_str(m, s->client, sizeof(s->client)) < 0 || mc_msg_get_u32(m, &s->flags) < 0 ||
	    mc_msg_get_bytes(m, &h, &hn) < 0 || hn > MC_QCTL_HEADERS_MAX || mc_msg_get_u32(m, &n) < 0 ||
	    n > left(m) / MIN_EVENT)
		goto fail;
	if ((s->headers = malloc(hn + 1)) == NULL)
		goto fail;
	memcpy(s->headers, h, hn);
	s->headers[hn] = '\0';
	if (n && (s->events = calloc(n, sizeof(*s->events))) == NULL)
		goto fail;
	for (; s->nevents < n; s->nevents++)
		if (get_event(m, &s->events[s->nevents]) < 0)
			goto fail;
	if (mc_msg_more(m) && mc_msg_get_fd(m, &s->body_fd) < 0)
		goto fail;
	if (mc_msg_end(m) < 0)
		goto fail;
	return 0;
fail:
	mc_qctl_show_free(s);
	return -1;
}

void
mc_qctl_show_free(struct mc_qctl_show *s)
{
	if (s == NULL)
		return;
	mc_qctl_entry_free(&s->e);
	free(s->headers);
	free(s->events);
	s->headers = NULL;
	s->events = NULL;
	s->nevents = 0;
}

/* ---- summary ---- */

void
mc_qctl_put_summary_req(struct mc_msg *m, const struct mc_qctl_filter *f)
{
	put_filter(m, f);
}

int
mc_qctl_get_summary_req(struct mc_msg *m, struct mc_qctl_filter *f)
{
	if (get_filter(m, f) < 0)
		return -1;
	return mc_msg_end(m);
}

void
mc_qctl_put_summary(struct mc_msg *m, const struct mc_qctl_dom *d, uint32_t n, uint32_t other)
{
	mc_msg_put_u32(m, MC_QCTL_BUCKETS);
	mc_msg_put_u32(m, other);
	mc_msg_put_u32(m, n);
	for (uint32_t i = 0; i < n; i++) {
		put_str_max(m, d[i].domain, sizeof(d[i].domain));
		mc_msg_put_u32(m, d[i].msgs);
		mc_msg_put_u64(m, d[i].bytes);
		for (unsigned b = 0; b < MC_QCTL_BUCKETS; b++)
			mc_msg_put_u32(m, d[i].count[b]);
	}
}

int
mc_qctl_get_summary(struct mc_msg *m, struct mc_qctl_dom **out, uint32_t *n, uint32_t *other)
{
	uint32_t nb, nd;
	*out = NULL;
	*n = 0;
	if (mc_msg_get_u32(m, &nb) < 0 || nb != MC_QCTL_BUCKETS || mc_msg_get_u32(m, other) < 0 ||
	    mc_msg_get_u32(m, &nd) < 0 || nd > left(m) / MIN_DOM)
		return -1;
	struct mc_qctl_dom *d = calloc(nd ? nd : 1, sizeof(*d));
	if (d == NULL)
		return -1;
	for (uint32_t i = 0; i < nd; i++) {
		if (mc_msg_get_str(m, d[i].domain, sizeof(d[i].domain)) < 0 || mc_msg_get_u32(m, &d[i].msgs) < 0 ||
		    mc_msg_get_u64(m, &d[i].bytes) < 0)
			goto fail;
		for (unsigned b = 0; b < MC_QCTL_BUCKETS; b++)
			if (mc_msg_get_u32(m, &d[i].count[b]) < 0)
				goto fail;
	}
	if (mc_msg_end(m) < 0)
		goto fail;
	*out = d;
	*n = nd;
	return 0;
fail:
	free(d);
	return -1;
}

/* ---- actions ---- */

void
mc_qctl_put_act_req(struct mc_msg *m, uint32_t action, const struct mc_qctl_filter *f)
{
	mc_msg_put_u32(m, action);
	put_filter(m, f);
}

int
mc_qctl_get_act_req(struct mc_msg *m, uint32_t *action, struct mc_qctl_filter *f)
{
	if (mc_msg_get_u32(m, action) < 0 || *action == 0 || *action >= MC_QCTL_ACTION_COUNT || get_filter(m, f) < 0)
		return -1;
	return mc_msg_end(m);
}

void
mc_qctl_put_act_head(struct mc_msg *m, uint32_t matched, uint32_t changed, uint32_t n)
{
	mc_msg_put_u32(m, matched);
	mc_msg_put_u32(m, changed);
	mc_msg_put_u32(m, n);
}

int
mc_qctl_get_act_head(struct mc_msg *m, uint32_t *matched, uint32_t *changed, uint32_t *n)
{
	if (mc_msg_get_u32(m, matched) < 0 || mc_msg_get_u32(m, changed) < 0 || mc_msg_get_u32(m, n) < 0 ||
	    *changed > *matched || *n > *matched || *n > left(m) / MIN_RESULT)
		return -1;
	return 0;
}

void
mc_qctl_put_act_result(struct mc_msg *m, const char *qid, const char *what)
{
	put_str_max(m, qid, MC_QID_MAX);
	put_str_max(m, what, MC_QCTL_ERR_MAX);
}

int
mc_qctl_get_act_result(struct mc_msg *m, char *qid, size_t qidsz, char *what, size_t whatsz)
{
	if (mc_msg_get_str(m, qid, qidsz) < 0 || mc_msg_get_str(m, what, whatsz) < 0)
		return -1;
	return 0;
}

/* ---- pause ---- */

void
mc_qctl_put_pause_req(struct mc_msg *m, bool pause)
{
	mc_msg_put_u32(m, pause ? 1 : 0);
}

int
mc_qctl_get_pause_req(struct mc_msg *m, bool *pause)
{
	uint32_t v;
	if (mc_msg_get_u32(m, &v) < 0 || v > 1)
		return -1;
	*pause = v != 0;
	return mc_msg_end(m);
}
