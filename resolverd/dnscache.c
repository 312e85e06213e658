/*
 * dnscache.c - resolverd's DNS cache (see dnscache.h).
 *
 * A chained hash table on (name, type) with a doubly linked list in order
 * of use; the list's tail is what goes when the cache is full. An entry
 * owns its name and a copy of only the records it holds (most answers
 * hold one to four), not a whole struct dns_result. Expired entries are
 * dropped when met. Called by dns.c on the event loop; owns all entries;
 * never does I/O or reads a clock.
 */
#include "resolverd/dnscache.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

struct centry {
	struct centry *hnext;          /* in its bucket */
	struct centry *prev, *next;    /* in order of use, most recent first */
	char *name;
	uint16_t type;
	uint64_t expires_ms;
	enum dns_status status;
	unsigned n;
	struct dns_rr *rr;
};

struct dns_cache {
	struct centry **buckets;
	size_t nbuckets;               /* a power of two */
	struct centry *head, *tail;
	unsigned count, max;
	uint32_t neg_max;
};

static uint64_t
hash(const char *name, uint16_t type)
{
	uint64_t h = 1469598103934665603ull ^ type;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return h;
}

static struct centry **
bucket(struct dns_cache *c, const char *name, uint16_t type)
{
	return &c->buckets[hash(name, type) & (c->nbuckets - 1)];
}

static void
list_unlink(struct dns_cache *c, struct centry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void
list_push(struct dns_cache *c, struct centry *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (c->tail == NULL)
		c->tail = e;
}

static void
remove_entry(struct dns_cache *c, struct centry *e)
{
	struct centry **pp = bucket(c, e->name, e->type);
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	list_unlink(c, e);
	c->count--;
	free(e->name);
	free(e->rr);
	free(e);
}

/* Buckets for max entries: about one entry per bucket when full. */
static void
rehash(struct dns_cache *c, unsigned max)
{
	size_t nb = 64;
	while (nb < max && nb < ((size_t)1 << 24))
		nb <<= 1;
	struct centry **b = calloc(nb, sizeof(*b));
	if (b == NULL)
		mc_panic("dns cache: out of memory for %zu buckets", nb);
	for (struct centry *e = c->head; e; e = e->next) {
		size_t i = hash(e->name, e->type) & (nb - 1);
		e->hnext = b[i];
		b[i] = e;
	}
	free(c->buckets);
	c->buckets = b;
	c->nbuckets = nb;
}

struct dns_cache *
dns_cache_new(unsigned max_entries, uint32_t neg_max)
{
	struct dns_cache *c = calloc(1, sizeof(*c));
	if (c == NULL)
		mc_panic("dns cache: out of memory");
	c->max = max_entries > 0 ? max_entries : 1;
	c->neg_max = neg_max;
	rehash(c, c->max);
	return c;
}

void
dns_cache_free(struct dns_cache *c)
{
	if (c == NULL)
		return;
	while (c->head)
		remove_entry(c, c->head);
	free(c->buckets);
	free(c);
}

void
dns_cache_set_limits(struct dns_cache *c, unsigned max_entries, uint32_t neg_max)
{
	c->max = max_entries > 0 ? max_entries : 1;
	c->neg_max = neg_max;
	while (c->count > c->max)
		remove_entry(c, c->tail);
	rehash(c, c->max);
}

static struct centry *
find(struct dns_cache *c, const char *name, uint16_t type)
{
	for (struct centry *e = *bucket(c, name, type); e; e = e->hnext)
		if (e->type == type && strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

bool
dns_cache_get(struct dns_cache *c, const char *name, uint16_t type, uint64_t now_ms, struct dns_result *out)
{
	struct centry *e = find(c, name, type);
	if (e == NULL)
		return false;
	if (now_ms >= e->expires_ms) {
		remove_entry(c, e);
		return false;
	}
	list_unlink(c, e);
	list_push(c, e);
	out->status = e->status;
	out->ttl = (uint32_t)((e->expires_ms - now_ms + 999) / 1000);
	out->n = e->n;
	out->ignored = 0;
	out->why[0] = '\0';
	if (e->n > 0)
		memcpy(out->rr, e->rr, e->n * sizeof(*e->rr));
	return true;
}

void
dns_cache_put(struct dns_cache *c, const char *name, uint16_t type, const struct dns_result *r, uint64_t now_ms)
{
	uint32_t ttl = r->ttl;
	if (r->status == DNS_TEMPFAIL)
		return;
	if (r->status == DNS_OK && ttl > DNS_CACHE_TTL_MAX)
		ttl = DNS_CACHE_TTL_MAX;
	if (r->status != DNS_OK && ttl > c->neg_max)
		ttl = c->neg_max;
	struct centry *old = find(c, name, type);
	if (old != NULL)
		remove_entry(c, old);
	if (ttl == 0)
		return;
	while (c->count >= c->max)
		remove_entry(c, c->tail);

	struct centry *e = calloc(1, sizeof(*e));
	if (e == NULL || (e->name = strdup(name)) == NULL)
		mc_panic("dns cache: out of memory");
	unsigned n = r->n < DNS_RR_MAX ? r->n : DNS_RR_MAX;
	if (n > 0) {
		e->rr = malloc(n * sizeof(*e->rr));
		if (e->rr == NULL)
			mc_panic("dns cache: out of memory");
		memcpy(e->rr, r->rr, n * sizeof(*e->rr));
	}
	e->n = n;
	e->type = type;
	e->status = r->status;
	e->expires_ms = now_ms + (uint64_t)ttl * 1000;
	struct centry **b = bucket(c, name, type);
	e->hnext = *b;
	*b = e;
	list_push(c, e);
	c->count++;
}

unsigned
dns_cache_count(const struct dns_cache *c)
{
	return c->count;
}
