/*
 * stores.c - the users' stores open in this imapd, one per user however
 * many sessions that user has (a mail client keeps several connections,
 * one of them in IDLE): the sessions of one user share one mc_store, so one
 * SQLite connection (two descriptors and about 40 KiB) and one index check
 * at open, not one per session.
 *
 * Called by session.c at login (get) and at close (put). Sharing is safe
 * because imapd runs on one thread and the store's calls are synchronous:
 * no statement or transaction of one session is left open while another
 * session runs (FETCH streams by restarting its walk from the next UID).
 *
 * When every session holding a store is in IDLE (a client that only
 * waits for new mail), the store is suspended: its SQLite connection closed,
 * so such a session costs its socket and a few KiB, not three descriptors
 * and the index's 32 KiB -shm mapping besides the connection. A change
 * notice (idle.c) resumes it for the sync and suspends it again; DONE or
 * any command resumes it (no index check: it was checked at open).
 *
 * While an APPEND commits on a pool thread (append.c), its store is
 * marked lent: the other sessions of that user wait (session.c) and IDLE
 * wakes pass it by (idle.c) until it is back, so the SQLite connection is
 * only ever used by one thread at a time.
 *
 * Owns the table of open stores (a hash on the store path, bucket lists),
 * their reference and idle counts, the lent flag. Never: close a store a session still
 * holds, or leave one suspended under a session that runs a command.
 */
#include "imapd/imapd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/mailstore.h"
#include "util/log.h"

#define STORES_BUCKETS 4096

struct store_ref {
	struct store_ref *next;
	struct mc_store *store;
	unsigned refs;
	unsigned idle;            /* of refs, sessions in IDLE: when all are, the index connection is closed */
	bool lent;                /* a pool thread uses the connection (append.c): no session may meanwhile */
	char home[];
};

static struct store_ref *buckets[STORES_BUCKETS];

static unsigned
bucket_of(const char *home)
{
	uint32_t h = 2166136261u;   /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)home; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % STORES_BUCKETS;
}

struct mc_store *
imapd_store_get(const char *path, char *err, size_t errsz)
{
	/* The key is the path as mc_store_path() gives it back: without trailing slashes. */
	char home[MC_PATH_MAX + 8];
	size_t n = strlen(path);
	if (n >= sizeof(home)) {
		snprintf(err, errsz, "mail store path too long");
		return NULL;
	}
	memcpy(home, path, n + 1);
	while (n > 1 && home[n - 1] == '/')
		home[--n] = '\0';
	struct store_ref **b = &buckets[bucket_of(home)];
	for (struct store_ref *r = *b; r; r = r->next) {
		if (strcmp(r->home, home) == 0) {
			if (mc_store_resume(r->store, err, errsz) < 0)
				return NULL;
			r->refs++;
			return r->store;
		}
	}
	struct store_ref *r = malloc(sizeof(*r) + n + 1);
	if (r == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	r->store = mc_store_open(home, MC_STORE_CREATE, err, errsz);
	if (r->store == NULL) {
		free(r);
		return NULL;
	}
	memcpy(r->home, home, n + 1);
	r->refs = 1;
	r->idle = 0;
	r->lent = false;
	r->next = *b;
	*b = r;
	return r->store;
}

static struct store_ref *
ref_of(struct mc_store *store)
{
	for (struct store_ref *r = buckets[bucket_of(mc_store_path(store))]; r; r = r->next)
		if (r->store == store)
			return r;
	return NULL;
}

/* Every holder idles: close the connection (a statement or transaction still open keeps it). */
static void
rest(struct store_ref *r)
{
	if (r->refs > 0 && r->idle == r->refs)
		mc_store_suspend(r->store);
}

void
imapd_store_put(struct mc_store *store, bool idle)
{
	if (store == NULL)
		return;
	struct store_ref **pp = &buckets[bucket_of(mc_store_path(store))];
	for (; *pp; pp = &(*pp)->next) {
		struct store_ref *r = *pp;
		if (r->store != store)
			continue;
		if (idle && r->idle > 0)
			r->idle--;
		if (--r->refs == 0) {
			*pp = r->next;
			mc_store_close(r->store);
			free(r);
		} else {
			rest(r);
		}
		return;
	}
	mc_warn("store %s was not in the table of open stores", mc_store_path(store));
	mc_store_close(store);
}

void
imapd_store_idle(struct imapd_session *s)
{
	struct store_ref *r = s->store ? ref_of(s->store) : NULL;
	if (r == NULL || s->store_idle)
		return;
	s->store_idle = true;
	r->idle++;
	rest(r);
}

int
imapd_store_busy(struct imapd_session *s)
{
	if (s->store == NULL)
		return 0;
	struct store_ref *r = ref_of(s->store);
	if (s->store_idle) {
		s->store_idle = false;
		if (r && r->idle > 0)
			r->idle--;
	}
	return imapd_store_need(s->store);
}

int
imapd_store_need(struct mc_store *store)
{
	char err[256];
	if (!mc_store_suspended(store))
		return 0;
	if (mc_store_resume(store, err, sizeof(err)) < 0) {
		mc_warn("cannot open the index again: %s", err);
		return -1;
	}
	return 0;
}

void
imapd_store_rest(struct mc_store *store)
{
	struct store_ref *r = store ? ref_of(store) : NULL;
	if (r)
		rest(r);
}

void
imapd_store_lend(struct mc_store *store, bool lent)
{
	struct store_ref *r = store ? ref_of(store) : NULL;
	if (r)
		r->lent = lent;
}

bool
imapd_store_lent(struct mc_store *store)
{
	struct store_ref *r = store ? ref_of(store) : NULL;
	return r && r->lent;
}
