/*
 * guard.c - failure counting for password checks (see guard.h).
 *
 * Called by resolverd/auth.c on the event loop only. Owns a hash table of
 * entries ("c:" + client key, "u:" + account) threaded on a list ordered by
 * last touch, so the least recently touched entry is evicted in O(1) when
 * the table is full. Keys come from the network, so the hash is SipHash
 * with a random key (OpenSSL), and an attacker cannot aim at one bucket.
 * Never sees a password; never sleeps: it only computes delays.
 */
#include "resolverd/guard.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_MAX 400

struct entry {
	struct entry *hnext;             /* hash chain */
	struct entry *prev, *next;       /* recency list: head = touched last */
	uint64_t last_fail_ms;
	uint64_t blocked_until_ms;       /* 0: not blocked */
	unsigned failures;
	char key[];
};

struct guard {
	struct guard_limits lim;
	struct guard_clock clock;
	size_t max, n;
	size_t nbuckets;                 /* a power of two */
	struct entry **buckets;
	struct entry *head, *tail;
	unsigned char sipkey[16];
};

static uint64_t
system_now_ms(void *arg)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t
now(const struct guard *g)
{
	return g->clock.now_ms(g->clock.arg);
}

struct guard *
guard_new(const struct guard_limits *lim, size_t max_entries, const struct guard_clock *clock)
{
	struct guard *g = calloc(1, sizeof(*g));
	if (g == NULL)
		mc_panic("out of memory");
	g->lim = *lim;
	g->max = max_entries > 0 ? max_entries : 1;
	g->nbuckets = 64;
	while (g->nbuckets < g->max)
		g->nbuckets *= 2;
	g->buckets = calloc(g->nbuckets, sizeof(*g->buckets));
	if (g->buckets == NULL)
		mc_panic("out of memory");
	if (clock != NULL)
		g->clock = *clock;
	else
		g->clock.now_ms = system_now_ms;
	if (RAND_bytes(g->sipkey, sizeof(g->sipkey)) != 1)
		mc_panic("no random bytes for the guard's hash key");
	return g;
}

void
guard_free(struct guard *g)
{
	if (g == NULL)
		return;
	for (struct entry *e = g->head, *next; e != NULL; e = next) {
		next = e->next;
		free(e);
	}
	free(g->buckets);
	free(g);
}

void
guard_set_limits(struct guard *g, const struct guard_limits *lim)
{
	g->lim = *lim;
}

size_t
guard_size(const struct guard *g)
{
	return g->n;
}

static size_t
bucket(const struct guard *g, const char *key)
{
	uint64_t h = 0;
	size_t outlen = 0;
	unsigned char out[16];  /* SipHash's default output: 128 bits */
	if (EVP_Q_mac(NULL, "SIPHASH", NULL, NULL, NULL, g->sipkey, sizeof(g->sipkey), (const unsigned char *)key,
		      strlen(key), out, sizeof(out), &outlen) == NULL || outlen < sizeof(h))
		mc_panic("SipHash unavailable");
	memcpy(&h, out, sizeof(h));
	return (size_t)h & (g->nbuckets - 1);
}

static void
list_unlink(struct guard *g, struct entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		g->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		g->tail = e->prev;
	e->prev = e->next = NULL;
}

static void
list_push(struct guard *g, struct entry *e)
{
	e->prev = NULL;
	e->next = g->head;
	if (g->head)
		g->head->prev = e;
	g->head = e;
	if (g->tail == NULL)
		g->tail = e;
}

static void
remove_entry(struct guard *g, struct entry *e)
{
	struct entry **pp = &g->buckets[bucket(g, e->key)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	list_unlink(g, e);
	g->n--;
	free(e);
}

static struct entry *
find(struct guard *g, const char *key)
{
	for (struct entry *e = g->buckets[bucket(g, key)]; e != NULL; e = e->hnext)
		if (strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

/* Forget what has expired: a block whose time is over, failures older than block_time. */
static void
age(struct guard *g, struct entry *e, uint64_t t)
{
	uint64_t window = (uint64_t)g->lim.block_time * 1000u;
	if (e->blocked_until_ms != 0 && t >= e->blocked_until_ms) {
		e->blocked_until_ms = 0;
		e->failures = 0;
	}
	if (e->blocked_until_ms == 0 && e->failures > 0 && t - e->last_fail_ms >= window)
		e->failures = 0;
}

static struct entry *
get(struct guard *g, const char *key, bool create)
{
	struct entry *e = find(g, key);
	if (e != NULL && create) {
		list_unlink(g, e);
		list_push(g, e);
	}
	if (e != NULL || !create)
		return e;
	if (g->n >= g->max)
		remove_entry(g, g->tail);
	size_t klen = strlen(key);
	e = calloc(1, sizeof(*e) + klen + 1);
	if (e == NULL)
		mc_panic("out of memory");
	memcpy(e->key, key, klen + 1);
	size_t b = bucket(g, key);
	e->hnext = g->buckets[b];
	g->buckets[b] = e;
	list_push(g, e);
	g->n++;
	return e;
}

void
guard_client_key(const char *client, char *out, size_t outsz)
{
	unsigned char a[16];
	char text[INET6_ADDRSTRLEN];
	if (inet_pton(AF_INET, client, a) == 1) {
		snprintf(out, outsz, "%s", client);
		return;
	}
	if (inet_pton(AF_INET6, client, a) == 1) {
		static const unsigned char v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0 && inet_ntop(AF_INET, a + 12, text, sizeof(text))) {
			snprintf(out, outsz, "%s", text);
			return;
		}
		memset(a + 8, 0, 8);
		if (inet_ntop(AF_INET6, a, text, sizeof(text)) != NULL) {
			snprintf(out, outsz, "%s/64", text);
			return;
		}
	}
	mc_log_clean(out, outsz, client, strlen(client));
}

static void
keys(const char *client, const char *account, char *ck, char *uk)
{
	char c[KEY_MAX - 2];
	guard_client_key(client, c, sizeof(c));
	snprintf(ck, KEY_MAX, "c:%s", c);
	/* Any byte may be in a username; the key keeps it bounded and printable. */
	char u[KEY_MAX - 2];
	mc_log_clean(u, sizeof(u), account, strlen(account));
	for (char *p = u; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	snprintf(uk, KEY_MAX, "u:%s", u);
}

void
guard_check(struct guard *g, const char *client, const char *account, struct guard_verdict *v)
{
	char ck[KEY_MAX], uk[KEY_MAX];
	uint64_t t = now(g);
	keys(client, account, ck, uk);
	memset(v, 0, sizeof(*v));
	struct entry *es[2] = { get(g, ck, false), get(g, uk, false) };
	for (int i = 0; i < 2; i++) {
		struct entry *e = es[i];
		if (e == NULL)
			continue;
		age(g, e, t);
		if (e->blocked_until_ms != 0)
			v->blocked = true;
		if (e->failures > v->failures)
			v->failures = e->failures;
	}
	if (v->blocked || v->failures >= g->lim.delay_after) {
		uint64_t ms = v->blocked ? GUARD_DELAY_MAX_MS
					 : (uint64_t)(v->failures - g->lim.delay_after + 1) * 1000u;
		v->delay_ms = ms > GUARD_DELAY_MAX_MS ? GUARD_DELAY_MAX_MS : (unsigned)ms;
	}
}

void
guard_failed(struct guard *g, const char *service, const char *client, const char *account, unsigned delay_ms)
{
	char ck[KEY_MAX], uk[KEY_MAX];
	uint64_t t = now(g);
	keys(client, account, ck, uk);
	struct entry *es[2] = { get(g, ck, true), get(g, uk, true) };
	/* Creating the second entry may have evicted the first when the table holds a single entry. */
	if (find(g, ck) == NULL)
		es[0] = NULL;
	unsigned most = 0;
	for (int i = 0; i < 2; i++) {
		struct entry *e = es[i];
		if (e == NULL)
			continue;
		age(g, e, t);
		if (e->failures < UINT32_MAX)
			e->failures++;
		e->last_fail_ms = t;
		if (e->failures > most)
			most = e->failures;
	}
	char sv[32];
	mc_log_clean(sv, sizeof(sv), service, strlen(service));
	mc_notice("auth failed service=%s client=%s user=%s failures=%u delay=%us", sv, ck + 2, uk + 2, most,
		  (delay_ms + 999) / 1000);
	for (int i = 0; i < 2; i++) {
		struct entry *e = es[i];
		if (e == NULL || g->lim.block_after == 0 || e->blocked_until_ms != 0 ||
		    e->failures < g->lim.block_after)
			continue;
		e->blocked_until_ms = t + (uint64_t)g->lim.block_time * 1000u;
		mc_warn("auth blocked %s=%s for %us", i == 0 ? "client" : "user", e->key + 2, g->lim.block_time);
	}
}

void
guard_succeeded(struct guard *g, const char *client, const char *account)
{
	char ck[KEY_MAX], uk[KEY_MAX];
	keys(client, account, ck, uk);
	struct entry *e;
	if ((e = get(g, ck, false)) != NULL)
		remove_entry(g, e);
	if ((e = get(g, uk, false)) != NULL)
		remove_entry(g, e);
}
