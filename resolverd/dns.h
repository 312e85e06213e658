/*
 * dns.h - what resolverd's two DNS files share: dns.c (c-ares on the loop,
 * lookups of one name and type, merged and cached) and mx.c (RES_MX: the
 * MX jobs built on those lookups). main.c sees only the dns_* entry points
 * in resolverd.h.
 */
#ifndef RESOLVERD_DNS_H
#define RESOLVERD_DNS_H

#include <ares.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "resolverd/dnsmsg.h"

struct resolverd;
struct dns_cache;
struct dns_sock;
struct query;
struct mx_job;

/* Kept by dns.c, but the jobs and their timer, which are mx.c's. */
struct dns {
	struct resolverd *rd;
	uv_loop_t *loop;
	ares_channel ch;
	bool ch_open;
	unsigned gen;                  /* counts channels: a reload makes a new one */
	ares_channel old;              /* the one before a reload, until its queries have ended */
	bool old_open, reap_old;
	unsigned old_pending;
	uv_timer_t timer;
	struct dns_sock *socks;
	struct dns_cache *cache;
	struct query *queries;
	unsigned nqueries;
	struct query *unsent_head, *unsent_tail;
	unsigned nsent;
	bool draining;
	struct mx_job *jobs;           /* mx.c */
	unsigned njobs;
	uv_timer_t sweep;              /* mx.c: runs while jobs exist, for their deadline */
	char servers[160];             /* as the detail of a failure names them */
	unsigned timeout;              /* dns_timeout the channel was made with */
	char servers_cfg[512];         /* the setting they came from */
};

/* An answer for (name, type); r is valid during the call only. */
typedef void (*lookup_cb)(void *arg, const struct dns_result *r);

/*
 * Answer (name, type) through cb: from the cache at once (inside this call),
 * or when the query ends, which a second asker of the same question shares.
 * Always answers exactly once; DNS_TEMPFAIL when DNS could not answer.
 */
void dns_lookup(struct dns *d, const char *name, uint16_t type, lookup_cb cb, void *arg);

/* mx.c: its deadline timer, made with the rest of d; at stop, the jobs answer nobody and the timer closes. */
void mx_init(struct dns *d);
void mx_stop(struct dns *d);

#endif
