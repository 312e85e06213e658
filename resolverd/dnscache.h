/*
 * dnscache.h - resolverd's DNS cache: answers kept for their TTL, shared
 * by every asker (dns.c is the only user).
 *
 * Keyed by (name, type). Positive answers live for their smallest TTL (at
 * most DNS_CACHE_TTL_MAX), negative ones (NXDOMAIN, NODATA) for the SOA's
 * negative TTL (RFC 2308) but at most the configured cap; TEMPFAIL and
 * TTL 0 are never kept. Bounded: when full, the entry used longest ago
 * goes. Time is passed in by the caller (milliseconds, any origin), so
 * tests move it by hand. Not thread-safe; resolverd has one loop.
 */
#ifndef RESOLVERD_DNSCACHE_H
#define RESOLVERD_DNSCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "resolverd/dnsmsg.h"

/* A day: longer TTLs are cut to it, so a mistake in a zone does not stay for a week. */
#define DNS_CACHE_TTL_MAX 86400u

struct dns_cache;

/* max_entries >= 1; neg_max: the cap, in seconds, on a negative answer's life (0: negative answers are not kept). */
struct dns_cache *dns_cache_new(unsigned max_entries, uint32_t neg_max);
void dns_cache_free(struct dns_cache *c);
/* New bounds (a reload): entries over the new size go, oldest use first. */
void dns_cache_set_limits(struct dns_cache *c, unsigned max_entries, uint32_t neg_max);
/* Copy the live answer for (name, type) into *out (with its remaining TTL); false when none or expired. */
bool dns_cache_get(struct dns_cache *c, const char *name, uint16_t type, uint64_t now_ms, struct dns_result *out);
/* Keep r for (name, type) as the header says; replaces an older answer. */
void dns_cache_put(struct dns_cache *c, const char *name, uint16_t type, const struct dns_result *r, uint64_t now_ms);
unsigned dns_cache_count(const struct dns_cache *c);

#endif
