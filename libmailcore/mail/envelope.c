/*
 * envelope.c - a message's envelope and the one encoder/decoder of the
 * Q_SUBMIT_COMMIT payload (see envelope.h).
 *
 * Written by smtpd (through mail/queue_client.c), read by queued from a
 * peer it does not fully trust: every string is length-checked against its
 * field before it is copied, the recipient count is checked against the
 * caller's maximum and against what the frame can possibly hold before
 * anything is allocated, and the payload must end exactly after the last
 * recipient. The envelope owns its recipient array.
 *
 * Payload: str qid, str sender, str envid, str auth_user, str client,
 * u32 flags, u64 size, u64 arrival, u32 nrcpt, then nrcpt * (str address,
 * str orcpt, u32 notify).
 */
#include "mail/envelope.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

/* The smallest encoding of one recipient: two empty strings and a u32. */
#define RCPT_MIN_WIRE (5 + 5 + 5)

void
mc_envelope_init(struct mc_envelope *e)
{
	memset(e, 0, sizeof(*e));
}

void
mc_envelope_free(struct mc_envelope *e)
{
	if (e == NULL)
		return;
	free(e->rcpt);
	e->rcpt = NULL;
	e->nrcpt = 0;
}

/* The capacity of the recipient array for n entries: 8, then powers of two. */
static size_t
rcpt_cap(size_t n)
{
	size_t cap = 8;
	while (cap < n)
		cap *= 2;
	return cap;
}

/* Make room for want recipients (the array always holds rcpt_cap(nrcpt) entries). */
static void
grow(struct mc_envelope *e, size_t want)
{
	size_t cap = rcpt_cap(want);
	if (e->rcpt != NULL && rcpt_cap(e->nrcpt) >= want)
		return;
	struct mc_rcpt *r = realloc(e->rcpt, cap * sizeof(*r));
	if (r == NULL)
		mc_panic("envelope: out of memory for %zu recipients", cap);
	e->rcpt = r;
}

int
mc_envelope_add_rcpt(struct mc_envelope *e, const char *addr, const char *orcpt, uint32_t notify, uint32_t max)
{
	if (orcpt == NULL)
		orcpt = "";
	if (e->nrcpt >= max || strlen(addr) >= MC_ADDR_MAX || strlen(orcpt) >= MC_DSN_PARAM_MAX)
		return -1;
	grow(e, (size_t)e->nrcpt + 1);
	struct mc_rcpt *r = &e->rcpt[e->nrcpt++];
	memset(r, 0, sizeof(*r));
	memcpy(r->addr, addr, strlen(addr) + 1);
	memcpy(r->orcpt, orcpt, strlen(orcpt) + 1);
	r->notify = notify;
	return 0;
}

void
mc_envelope_put(struct mc_msg *m, const struct mc_envelope *e)
{
	mc_msg_put_str(m, e->qid);
	mc_msg_put_str(m, e->sender);
	mc_msg_put_str(m, e->envid);
	mc_msg_put_str(m, e->auth_user);
	mc_msg_put_str(m, e->client);
	mc_msg_put_u32(m, e->flags);
	mc_msg_put_u64(m, e->size);
	mc_msg_put_u64(m, (uint64_t)e->arrival);
	mc_msg_put_u32(m, e->nrcpt);
	for (uint32_t i = 0; i < e->nrcpt; i++) {
		mc_msg_put_str(m, e->rcpt[i].addr);
		mc_msg_put_str(m, e->rcpt[i].orcpt);
		mc_msg_put_u32(m, e->rcpt[i].notify);
	}
}

int
mc_envelope_get(struct mc_msg *m, struct mc_envelope *e, uint32_t max_rcpt)
{
	uint64_t arrival = 0;
	uint32_t n = 0;

	mc_envelope_init(e);
	mc_msg_get_str(m, e->qid, sizeof(e->qid));
	mc_msg_get_str(m, e->sender, sizeof(e->sender));
	mc_msg_get_str(m, e->envid, sizeof(e->envid));
	mc_msg_get_str(m, e->auth_user, sizeof(e->auth_user));
	mc_msg_get_str(m, e->client, sizeof(e->client));
	mc_msg_get_u32(m, &e->flags);
	mc_msg_get_u64(m, &e->size);
	mc_msg_get_u64(m, &arrival);
	if (mc_msg_get_u32(m, &n) < 0)
		goto bad;
	e->arrival = (int64_t)arrival;
	/* Refuse a count the frame cannot hold before allocating for it. */
	if (n > max_rcpt || n > (m->payload.len - m->rpos) / RCPT_MIN_WIRE)
		goto bad;
	if (n > 0)
		grow(e, n);
	for (uint32_t i = 0; i < n; i++) {
		struct mc_rcpt *r = &e->rcpt[i];
		if (mc_msg_get_str(m, r->addr, sizeof(r->addr)) < 0 ||
		    mc_msg_get_str(m, r->orcpt, sizeof(r->orcpt)) < 0 || mc_msg_get_u32(m, &r->notify) < 0)
			goto bad;
		e->nrcpt = i + 1;
	}
	if (mc_msg_end(m) < 0)
		goto bad;
	return 0;
bad:
	mc_envelope_free(e);
	m->err = true;
	return -1;
}
