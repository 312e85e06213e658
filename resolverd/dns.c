/*
 * dns.c - RES_MX: where mail for a domain goes, asked of DNS with c-ares
 * on resolverd's libuv loop.
 *
 * Called from main.c's request table (dns_request) and its start, reload,
 * channel-down and stop hooks. Three layers:
 *   - c-ares on libuv: c-ares tells through its socket-state callback which
 *     sockets to watch (one uv_poll_t each) and ares_timeout() when to wake
 *     (one uv_timer_t); nothing ever blocks the loop, so a slow name server
 *     delays only the lookups that wait for it, never RES_RCPT or RES_AUTH.
 *   - lookups of (name, type): answered from the cache (dnscache.c) when
 *     it holds them; otherwise one query per question in flight, which
 *     every asker of the same question waits on (merged). Answers are read
 *     by dnsmsg.c, checked against the question, cached for their TTL.
 *   - MX jobs, one per RES_MX: the domain's MX records (none: the domain
 *     itself, RFC 5321 §5.1; a lone "0 .": null MX, RFC 7505), ordered by
 *     preference with equal ones shuffled, then the AAAA and A records of
 *     every host at once; one answer with hosts and addresses.
 * Owns the c-ares channel, its poll handles and timer, the cache, the
 * queries and jobs in flight. Never blocks, never answers a channel that
 * went down (the job finishes unheard).
 */
#include "mail/resolver_client.h"
#include "resolverd/dnscache.h"
#include "resolverd/resolverd.h"
#include "util/log.h"

#include <ares.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RES_MX requests in progress (a job is about 0.5 KiB per MX host); past it the answer is TEMPFAIL. */
#define JOBS_MAX 16384
/* Distinct questions in progress at once (sent or waiting to be sent). */
#define QUERIES_MAX 4096
/* Sent and not yet answered: a burst beyond it waits, since a name server's socket drops what overflows
 * it (measured: 400 questions at once to dnsmasq lost about 60, each then waited out a whole timeout). */
#define SENT_MAX 100
#define TRIES 2
/* A job not done by then is answered TEMPFAIL (well before the client's own 90 s) and ends unheard. */
#define JOB_DEADLINE_MS 60000
#define EDNS_SIZE 1232
#define DETAIL_LEN 1024    /* cut to MC_RES_DETAIL_MAX by the reply */

typedef void (*lookup_cb)(void *arg, const struct dns_result *r);

struct waiter {
	struct waiter *next;
	lookup_cb cb;
	void *arg;
};

/* One question sent to the name servers; every asker waits on it. */
struct query {
	struct query *prev, *next;
	struct dns *d;
	char name[DNS_NAME_LEN];
	uint16_t type;
	uint64_t sent_ms;
	bool sent;
	unsigned gen;                  /* the channel it was sent on (dns.gen then) */
	struct query *unsent_next;     /* in the queue of those waiting to be sent */
	struct waiter *waiters;
	unsigned nwaiters;
};

struct dns_sock {
	struct dns_sock *next;
	struct dns *d;
	ares_socket_t fd;
	uv_poll_t poll;
};

struct mx_host {
	struct mx_job *job;
	char name[DNS_NAME_LEN];
	uint16_t pref;
	unsigned n6, n4;
	uint8_t a6[MC_RESOLVER_MX_ADDRS_MAX][16];    /* binary until the answer is written: a job stays small */
	uint8_t a4[MC_RESOLVER_MX_ADDRS_MAX][4];
	bool tempfail;                 /* an address lookup of this host failed for now */
};

struct mx_job {
	struct mx_job *prev, *next;
	struct dns *d;
	struct mc_chan *ch;            /* NULL once the asker's channel is gone */
	uint32_t reqid;
	char domain[DNS_NAME_LEN];
	int family;
	bool implicit;                 /* no MX: the domain itself */
	bool host_only;                /* asked for the name's own addresses, no MX lookup */
	unsigned pending;              /* lookups not yet answered */
	unsigned nhosts;
	struct mx_host *hosts;
	char why[400];                 /* the first address lookup that failed for now */
	uint64_t started_ms;
};

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
	uv_timer_t sweep;              /* runs while jobs exist: their deadline */
	struct dns_sock *socks;
	struct dns_cache *cache;
	struct query *queries;
	unsigned nqueries;
	struct query *unsent_head, *unsent_tail;
	unsigned nsent;
	bool draining;
	struct mx_job *jobs;
	unsigned njobs;
	char servers[160];             /* as the detail of a failure names them */
	unsigned timeout;              /* dns_timeout the channel was made with */
	char servers_cfg[512];         /* the setting they came from */
};

static uint32_t
random_below(uint32_t bound)
{
	return arc4random_uniform(bound);
}

/* ---- c-ares on the loop ---- */

static void arm_timer(struct dns *d);

/* The old channel's last query has ended: destroy it (never from inside its own callback). */
static void
reap_old(struct dns *d)
{
	if (!d->reap_old)
		return;
	d->reap_old = false;
	d->old_open = false;
	ares_destroy(d->old);
	mc_info("dns: the lookups sent to the nameservers before the reload have ended");
}

static void
on_timer(uv_timer_t *t)
{
	struct dns *d = t->data;
	if (d->old_open)
		ares_process_fd(d->old, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	reap_old(d);
	arm_timer(d);
}

static void
arm_timer(struct dns *d)
{
	struct timeval tv, tv2, *tp;
	if (!d->ch_open)
		return;
	tp = ares_timeout(d->ch, NULL, &tv);
	if (d->old_open)
		tp = ares_timeout(d->old, tp, &tv2);
	if (tp == NULL) {
		uv_timer_stop(&d->timer);
		return;
	}
	uint64_t ms = (uint64_t)tp->tv_sec * 1000 + ((uint64_t)tp->tv_usec + 999) / 1000;
	uv_timer_start(&d->timer, on_timer, ms, 0);
}

static void
on_poll(uv_poll_t *p, int status, int events)
{
	struct dns_sock *s = p->data;
	struct dns *d = s->d;
	ares_socket_t fd = s->fd;
	/* An error on the socket: let c-ares read and write, so it sees the error and moves on. */
	bool rd = status < 0 || (events & UV_READABLE), wr = status < 0 || (events & UV_WRITABLE);
	/* A socket belongs to one channel; the other does not know the descriptor and does nothing. */
	if (d->old_open)
		ares_process_fd(d->old, rd ? fd : ARES_SOCKET_BAD, wr ? fd : ARES_SOCKET_BAD);
	ares_process_fd(d->ch, rd ? fd : ARES_SOCKET_BAD, wr ? fd : ARES_SOCKET_BAD);
	reap_old(d);
	arm_timer(d);
}

static void
sock_closed(uv_handle_t *h)
{
	free(h->data);
}

static void
sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = data;
	struct dns_sock **pp = &d->socks, *s;
	while (*pp != NULL && (*pp)->fd != fd)
		pp = &(*pp)->next;
	s = *pp;
	if (!readable && !writable) {
		/* c-ares closes fd right after this: stop watching it first. */
		if (s != NULL) {
			*pp = s->next;
			uv_poll_stop(&s->poll);
			uv_close((uv_handle_t *)&s->poll, sock_closed);
		}
		return;
	}
	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL)
			mc_panic("dns: out of memory");
		s->d = d;
		s->fd = fd;
		int e = uv_poll_init_socket(d->loop, &s->poll, fd);
		if (e < 0) {
			/* The query on it times out; c-ares then tries again on another socket. */
			mc_warn("dns: cannot watch socket fd=%d: %s", (int)fd, uv_strerror(e));
			free(s);
			return;
		}
		s->poll.data = s;
		s->next = d->socks;
		d->socks = s;
	}
	uv_poll_start(&s->poll, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), on_poll);
}

/* ---- lookups: cache, merged queries ---- */

static const char *
ares_why(int status)
{
	switch (status) {
	case ARES_ESERVFAIL: return "SERVFAIL";
	case ARES_EREFUSED: return "REFUSED";
	case ARES_ETIMEOUT: return "timeout";
	case ARES_ECONNREFUSED: return "refused";      /* c-ares 1.18 says so for the REFUSED rcode too */
	case ARES_EFORMERR: return "FORMERR";
	case ARES_ENOTIMP: return "NOTIMP";
	case ARES_EBADRESP: return "malformed answer";
	case ARES_EDESTRUCTION: case ARES_ECANCELLED: return "resolverd is stopping";
	default: return ares_strerror(status);
	}
}

static const char *
status_name(enum dns_status s)
{
	switch (s) {
	case DNS_OK: return "ok";
	case DNS_NODATA: return "nodata";
	case DNS_NXDOMAIN: return "nxdomain";
	default: return "tempfail";
	}
}

static void drain(struct dns *d);

static void
on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct query *q = arg;
	struct dns *d = q->d;
	struct dns_result *r = malloc(sizeof(*r));
	char tb[16];
	if (r == NULL)
		mc_panic("dns: out of memory");
	const char *tn = dns_type_name(q->type, tb);
	if (q->sent)
		d->nsent--;
	if (q->sent && q->gen != d->gen && d->old_open && --d->old_pending == 0)
		d->reap_old = true;

	/* With an answer (NOERROR, NXDOMAIN, no data, or an error rcode) c-ares hands over its bytes: read them. */
	if (abuf != NULL && alen > 0 && status != ARES_EDESTRUCTION && status != ARES_ECANCELLED) {
		dns_parse(abuf, (size_t)alen, q->name, q->type, r);
	} else {
		memset(r, 0, sizeof(*r));
		r->status = DNS_TEMPFAIL;
		snprintf(r->why, sizeof(r->why), "%s", ares_why(status));
	}
	if (r->ignored > 0)
		mc_warn("dns: %s %s: %u record%s ignored: %s", tn, q->name, r->ignored, r->ignored == 1 ? "" : "s",
			r->why);
	if (r->status == DNS_TEMPFAIL && status != ARES_EDESTRUCTION)
		mc_info("dns: %s %s: %s (nameservers %s)", tn, q->name, r->why, d->servers);
	if (mc_trace_on(MC_TRACE_DNS))
		mc_trace(MC_TRACE_DNS, "dns: answer %s %s status=%s n=%u ttl=%u timeouts=%d time=%llums waiters=%u", tn,
			 q->name, status_name(r->status), r->n, r->ttl, timeouts,
			 (unsigned long long)(uv_now(d->loop) - q->sent_ms), q->nwaiters);
	if (status != ARES_EDESTRUCTION)
		dns_cache_put(d->cache, q->name, q->type, r, uv_now(d->loop));

	/* Off the list first: a waiter that asks the same question again starts a new query or hits the cache. */
	if (q->prev)
		q->prev->next = q->next;
	else
		d->queries = q->next;
	if (q->next)
		q->next->prev = q->prev;
	d->nqueries--;
	struct waiter *w = q->waiters;
	free(q);
	while (w != NULL) {
		struct waiter *next = w->next;
		w->cb(w->arg, r);
		free(w);
		w = next;
	}
	free(r);
	drain(d);
}

static void
send_query(struct dns *d, struct query *q)
{
	char tb[16];
	q->sent = true;
	q->gen = d->gen;
	q->sent_ms = uv_now(d->loop);
	d->nsent++;
	if (mc_trace_on(MC_TRACE_DNS))
		mc_trace(MC_TRACE_DNS, "dns: query %s %s", dns_type_name(q->type, tb), q->name);
	/* May answer before it returns (on_answer frees q): q is not touched after. */
	ares_query(d->ch, q->name, 1 /* C_IN */, q->type, on_answer, q);
}

/* Send what waits, while fewer than SENT_MAX are out. Not re-entered from an answer that comes at once. */
static void
drain(struct dns *d)
{
	if (d->draining || !d->ch_open)
		return;
	d->draining = true;
	while (d->nsent < SENT_MAX && d->unsent_head != NULL) {
		struct query *q = d->unsent_head;
		d->unsent_head = q->unsent_next;
		if (d->unsent_head == NULL)
			d->unsent_tail = NULL;
		send_query(d, q);
	}
	d->draining = false;
	arm_timer(d);
}

/* Answer (name, type) through cb: from the cache at once, or when the query (perhaps another asker's) ends. */
static void
lookup(struct dns *d, const char *name, uint16_t type, lookup_cb cb, void *arg)
{
	char tb[16];
	const char *tn = dns_type_name(type, tb);
	struct dns_result *r = malloc(sizeof(*r));
	if (r == NULL)
		mc_panic("dns: out of memory");
	if (dns_cache_get(d->cache, name, type, uv_now(d->loop), r)) {
		if (mc_trace_on(MC_TRACE_DNS))
			mc_trace(MC_TRACE_DNS, "dns: cached %s %s status=%s n=%u ttl=%u", tn, name,
				 status_name(r->status), r->n, r->ttl);
		cb(arg, r);
		free(r);
		return;
	}
	struct waiter *w = calloc(1, sizeof(*w));
	if (w == NULL)
		mc_panic("dns: out of memory");
	w->cb = cb;
	w->arg = arg;
	for (struct query *q = d->queries; q != NULL; q = q->next) {
		if (q->type == type && strcmp(q->name, name) == 0) {
			w->next = q->waiters;
			q->waiters = w;
			q->nwaiters++;
			if (mc_trace_on(MC_TRACE_DNS))
				mc_trace(MC_TRACE_DNS, "dns: merged %s %s waiters=%u", tn, name, q->nwaiters);
			free(r);
			return;
		}
	}
	if (d->nqueries >= QUERIES_MAX || !d->ch_open) {
		memset(r, 0, sizeof(*r));
		r->status = DNS_TEMPFAIL;
		snprintf(r->why, sizeof(r->why), "%s", d->ch_open ? "too many DNS queries in flight" :
			 "resolverd is stopping");
		cb(arg, r);
		free(r);
		free(w);
		return;
	}
	free(r);
	struct query *q = calloc(1, sizeof(*q));
	if (q == NULL)
		mc_panic("dns: out of memory");
	q->d = d;
	snprintf(q->name, sizeof(q->name), "%s", name);
	q->type = type;
	q->sent_ms = uv_now(d->loop);
	q->waiters = w;
	q->nwaiters = 1;
	q->next = d->queries;
	if (d->queries)
		d->queries->prev = q;
	d->queries = q;
	d->nqueries++;
	if (d->unsent_tail)
		d->unsent_tail->unsent_next = q;
	else
		d->unsent_head = q;
	d->unsent_tail = q;
	drain(d);
}

/* ---- MX jobs ---- */

static void
job_finish(struct mx_job *j, enum mc_mx_result res, const char *detail, const struct mc_mx_host *hosts, unsigned n)
{
	struct dns *d = j->d;
	if (mc_trace_on(MC_TRACE_DNS))
		mc_trace(MC_TRACE_DNS, "dns: mx domain=%s family=%d result=%d hosts=%u time=%llums detail=\"%s\"",
			 j->domain, j->family, (int)res, n, (unsigned long long)(uv_now(d->loop) - j->started_ms),
			 detail);
	if (j->ch != NULL)
		mc_resolver_reply_mx(j->ch, j->reqid, res, detail, hosts, n);
	if (j->prev)
		j->prev->next = j->next;
	else
		d->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	d->njobs--;
	free(j->hosts);
	free(j);
}

static void
on_sweep(uv_timer_t *t)
{
	struct dns *d = t->data;
	uint64_t now = uv_now(d->loop);
	char detail[DETAIL_LEN];
	for (struct mx_job *j = d->jobs; j != NULL; j = j->next) {
		if (j->ch == NULL || now - j->started_ms < JOB_DEADLINE_MS)
			continue;
		snprintf(detail, sizeof(detail), "DNS lookups for %s took longer than %u s (nameservers %s)", j->domain,
			 JOB_DEADLINE_MS / 1000, d->servers);
		mc_info("dns: %s", detail);
		mc_resolver_reply_mx(j->ch, j->reqid, MC_MX_TEMPFAIL, detail, NULL, 0);
		j->ch = NULL;
	}
	if (d->jobs == NULL)
		uv_timer_stop(&d->sweep);
}

/* The addresses of host h in the order to try, at most MC_RESOLVER_MX_ADDRS_MAX: IPv6 first, but with
 * both families some of each, so a host with many AAAA records still shows its IPv4 ones. */
static unsigned
host_addrs(const struct mx_host *h, char text[][INET6_ADDRSTRLEN], const char **out)
{
	unsigned max = MC_RESOLVER_MX_ADDRS_MAX, n = 0;
	unsigned take6 = h->n6, take4 = h->n4;
	if (take6 + take4 > max) {
		take6 = take6 < max / 2 ? take6 : (take4 < max / 2 ? max - take4 : max / 2);
		take4 = max - take6 < take4 ? max - take6 : take4;
	}
	for (unsigned i = 0; i < take6; i++)
		if (inet_ntop(AF_INET6, h->a6[i], text[n], INET6_ADDRSTRLEN) != NULL)
			out[n] = text[n], n++;
	for (unsigned i = 0; i < take4; i++)
		if (inet_ntop(AF_INET, h->a4[i], text[n], INET6_ADDRSTRLEN) != NULL)
			out[n] = text[n], n++;
	return n;
}

/* Every address lookup has answered: one reply with the hosts that have addresses. */
static void
job_assemble(struct mx_job *j)
{
	struct mc_mx_host out[MC_RESOLVER_MX_HOSTS_MAX];
	const char *addrs[MC_RESOLVER_MX_HOSTS_MAX][MC_RESOLVER_MX_ADDRS_MAX];
	char text[MC_RESOLVER_MX_HOSTS_MAX][MC_RESOLVER_MX_ADDRS_MAX][INET6_ADDRSTRLEN];
	char detail[DETAIL_LEN];
	unsigned n = 0;
	const char *why = NULL;
	for (unsigned i = 0; i < j->nhosts && n < MC_RESOLVER_MX_HOSTS_MAX; i++) {
		struct mx_host *h = &j->hosts[i];
		if (h->tempfail && why == NULL)
			why = j->why;
		unsigned na = host_addrs(h, text[n], addrs[n]);
		if (na == 0)
			continue;
		out[n].name = h->name;
		out[n].pref = h->pref;
		out[n].naddr = na;
		out[n].addrs = addrs[n];
		n++;
	}
	if (n > 0) {
		job_finish(j, MC_MX_OK, "", out, n);
		return;
	}
	const char *fam = j->family == 4 ? "IPv4 " : j->family == 6 ? "IPv6 " : "";
	if (why != NULL) {
		snprintf(detail, sizeof(detail), "no %saddress for the mail hosts of %s yet: %s (nameservers %s)", fam,
			 j->domain, why, j->d->servers);
		job_finish(j, MC_MX_TEMPFAIL, detail, NULL, 0);
	} else if (j->host_only) {
		snprintf(detail, sizeof(detail), "%s has no %saddress record", j->domain, fam);
		job_finish(j, MC_MX_NOHOST, detail, NULL, 0);
	} else if (j->implicit) {
		snprintf(detail, sizeof(detail), "%s has no MX and no %saddress record", j->domain, fam);
		job_finish(j, MC_MX_NOHOST, detail, NULL, 0);
	} else {
		snprintf(detail, sizeof(detail), "no MX host of %s has an %saddress", j->domain, fam);
		job_finish(j, MC_MX_NOHOST, detail, NULL, 0);
	}
}

static void
job_release(struct mx_job *j)
{
	if (--j->pending == 0)
		job_assemble(j);
}

static void
got_addrs(struct mx_host *h, const struct dns_result *r, int af)
{
	if (r->status == DNS_TEMPFAIL) {
		h->tempfail = true;
		if (h->job->why[0] == '\0')
			snprintf(h->job->why, sizeof(h->job->why), "%s %s: %s", af == AF_INET6 ? "AAAA" : "A", h->name,
				 r->why);
	}
	for (unsigned i = 0; r->status == DNS_OK && i < r->n; i++) {
		if (af == AF_INET6 && h->n6 < MC_RESOLVER_MX_ADDRS_MAX)
			memcpy(h->a6[h->n6++], r->rr[i].addr, 16);
		else if (af == AF_INET && h->n4 < MC_RESOLVER_MX_ADDRS_MAX)
			memcpy(h->a4[h->n4++], r->rr[i].addr, 4);
	}
}

static void
on_aaaa(void *arg, const struct dns_result *r)
{
	struct mx_host *h = arg;
	got_addrs(h, r, AF_INET6);
	job_release(h->job);
}

static void
on_a(void *arg, const struct dns_result *r)
{
	struct mx_host *h = arg;
	got_addrs(h, r, AF_INET);
	job_release(h->job);
}

/* Ask for the addresses of every host at once. */
static void
job_ask_addrs(struct mx_job *j)
{
	j->pending++;                  /* held while asking: answers from the cache come at once */
	for (unsigned i = 0; i < j->nhosts; i++) {
		struct mx_host *h = &j->hosts[i];
		if (j->family != 4) {
			j->pending++;
			lookup(j->d, h->name, DNS_T_AAAA, on_aaaa, h);
		}
		if (j->family != 6) {
			j->pending++;
			lookup(j->d, h->name, DNS_T_A, on_a, h);
		}
	}
	job_release(j);
}

static void
job_hosts(struct mx_job *j, unsigned n)
{
	j->hosts = calloc(n, sizeof(*j->hosts));
	if (j->hosts == NULL)
		mc_panic("dns: out of memory");
	j->nhosts = n;
	for (unsigned i = 0; i < n; i++)
		j->hosts[i].job = j;
}

static void
on_mx(void *arg, const struct dns_result *r)
{
	struct mx_job *j = arg;
	char detail[DETAIL_LEN];
	switch (r->status) {
	case DNS_TEMPFAIL:
		snprintf(detail, sizeof(detail), "MX lookup for %s: %s (nameservers %s)", j->domain, r->why,
			 j->d->servers);
		j->pending--;
		job_finish(j, MC_MX_TEMPFAIL, detail, NULL, 0);
		return;
	case DNS_NXDOMAIN:
		snprintf(detail, sizeof(detail), "domain %s does not exist (NXDOMAIN)", j->domain);
		j->pending--;
		job_finish(j, MC_MX_NXDOMAIN, detail, NULL, 0);
		return;
	case DNS_NODATA:
		/* RFC 5321 §5.1: no MX records, so the domain is its own mail exchanger. */
		j->implicit = true;
		job_hosts(j, 1);
		snprintf(j->hosts[0].name, sizeof(j->hosts[0].name), "%s", j->domain);
		break;
	case DNS_OK: {
		if (r->n == 1 && r->rr[0].name[0] == '\0') {
			snprintf(detail, sizeof(detail), "%s accepts no mail (null MX)", j->domain);
			j->pending--;
			job_finish(j, MC_MX_NULLMX, detail, NULL, 0);
			return;
		}
		struct dns_rr rr[DNS_RR_MAX];
		unsigned n = 0;
		for (unsigned i = 0; i < r->n; i++) {
			bool dup = false;
			for (unsigned k = 0; k < n && !dup; k++)
				dup = strcmp(rr[k].name, r->rr[i].name) == 0;
			/* RFC 7505 §3: a null MX beside other MX records is a mistake; the others are used. */
			if (r->rr[i].name[0] == '\0')
				mc_warn("dns: MX %s: a null MX among other MX records is ignored", j->domain);
			else if (!dup)
				rr[n++] = r->rr[i];
		}
		if (n == 0) {
			snprintf(detail, sizeof(detail), "no usable MX host for %s: %s", j->domain,
				 r->why[0] ? r->why : "none");
			j->pending--;
			job_finish(j, MC_MX_NOHOST, detail, NULL, 0);
			return;
		}
		dns_mx_order(rr, n, random_below);
		if (n > MC_RESOLVER_MX_HOSTS_MAX)
			n = MC_RESOLVER_MX_HOSTS_MAX;
		job_hosts(j, n);
		for (unsigned i = 0; i < n; i++) {
			snprintf(j->hosts[i].name, sizeof(j->hosts[i].name), "%s", rr[i].name);
			j->hosts[i].pref = rr[i].pref;
		}
		break;
	}
	}
	job_ask_addrs(j);
	job_release(j);               /* the MX lookup's own count */
}

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 §4.1.3): that address is the host. */
static bool
address_literal(struct resolverd *rd, struct mc_chan *ch, uint32_t reqid, const char *domain, int family)
{
	size_t len = strlen(domain);
	char lit[MC_RES_ADDRLIT_MAX], text[INET6_ADDRSTRLEN];
	unsigned char bin[16];
	if (len < 3 || domain[0] != '[' || domain[len - 1] != ']' || len - 2 >= sizeof(lit))
		return false;
	memcpy(lit, domain + 1, len - 2);
	lit[len - 2] = '\0';
	int af = AF_INET;
	const char *a = lit;
	if (strncasecmp(lit, "IPv6:", 5) == 0) {
		af = AF_INET6;
		a = lit + 5;
	}
	if (inet_pton(af, a, bin) != 1 || inet_ntop(af, bin, text, sizeof(text)) == NULL) {
		mc_resolver_reply_mx(ch, reqid, MC_MX_NXDOMAIN, "not a valid address literal", NULL, 0);
		return true;
	}
	if ((af == AF_INET && family == 6) || (af == AF_INET6 && family == 4)) {
		mc_resolver_reply_mx(ch, reqid, MC_MX_NOHOST, "the address literal is of the other family", NULL, 0);
		return true;
	}
	const char *addrs[1] = { text };
	struct mc_mx_host h = { domain, 0, 1, addrs };
	mc_resolver_reply_mx(ch, reqid, MC_MX_OK, "", &h, 1);
	return true;
}

void
dns_request(struct resolverd *rd, struct mc_chan *ch, struct mc_msg *m)
{
	struct dns *d = rd->dns;
	char domain[1024], name[DNS_NAME_LEN], clean[80];
	int family = 0;
	if (mc_resolver_req_mx(m, domain, sizeof(domain), &family) < 0) {
		resolverd_bad_request(ch, m, "malformed RES_MX");
		return;
	}
	if (address_literal(rd, ch, m->reqid, domain, family & ~MC_RESOLVER_MX_HOST_ONLY))
		return;
	if (!dns_name_check(domain, name)) {
		mc_warn("dns: MX for \"%s\" refused: not a valid domain name from=%s",
			mc_log_clean(clean, sizeof(clean), domain, strlen(domain)), mc_chan_peer_name(ch));
		mc_resolver_reply_mx(ch, m->reqid, MC_MX_NXDOMAIN, "not a valid domain name", NULL, 0);
		return;
	}
	if (d->njobs >= JOBS_MAX) {
		mc_warn("dns: MX %s: %u lookups in progress already; answered TEMPFAIL", name, d->njobs);
		mc_resolver_reply_mx(ch, m->reqid, MC_MX_TEMPFAIL, "resolverd is busy", NULL, 0);
		return;
	}
	struct mx_job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		mc_panic("dns: out of memory");
	j->d = d;
	j->ch = ch;
	j->reqid = m->reqid;
	j->family = family & ~MC_RESOLVER_MX_HOST_ONLY;
	j->host_only = (family & MC_RESOLVER_MX_HOST_ONLY) != 0;
	j->started_ms = uv_now(d->loop);
	snprintf(j->domain, sizeof(j->domain), "%s", name);
	j->next = d->jobs;
	if (d->jobs)
		d->jobs->prev = j;
	d->jobs = j;
	d->njobs++;
	if (!uv_is_active((uv_handle_t *)&d->sweep))
		uv_timer_start(&d->sweep, on_sweep, 1000, 1000);
	if (j->host_only) {
		job_hosts(j, 1);
		snprintf(j->hosts[0].name, sizeof(j->hosts[0].name), "%s", name);
		job_ask_addrs(j);
		return;
	}
	j->pending = 1;
	lookup(d, name, DNS_T_MX, on_mx, j);
}

/* ---- start, reload, stop ---- */

/* Give ch the configured servers (none: keep the system's); n: how many it then has. */
static int
set_servers(struct dns *d, ares_channel ch, const char *setting, unsigned *n, char *err, size_t errsz)
{
	struct mc_listen_list l;
	struct ares_addr_port_node nodes[MC_LISTEN_MAX];
	if (mc_parse_nameservers(setting, &l) < 0) {
		/* config.c refuses it first; this is for a config that did not come through it. */
		snprintf(err, errsz, "nameservers: not a list of name servers");
		return -1;
	}
	for (unsigned i = 0; i < l.n; i++) {
		memset(&nodes[i], 0, sizeof(nodes[i]));
		nodes[i].next = i + 1 < l.n ? &nodes[i + 1] : NULL;
		if (l.a[i].ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&l.a[i].ss;
			nodes[i].family = AF_INET6;
			memcpy(&nodes[i].addr.addr6, &s6->sin6_addr, sizeof(s6->sin6_addr));
			nodes[i].udp_port = nodes[i].tcp_port = ntohs(s6->sin6_port);
		} else {
			const struct sockaddr_in *s4 = (const struct sockaddr_in *)&l.a[i].ss;
			nodes[i].family = AF_INET;
			memcpy(&nodes[i].addr.addr4, &s4->sin_addr, sizeof(s4->sin_addr));
			nodes[i].udp_port = nodes[i].tcp_port = ntohs(s4->sin_port);
		}
	}
	if (l.n > 0) {
		int e = ares_set_servers_ports(ch, nodes);
		if (e != ARES_SUCCESS) {
			snprintf(err, errsz, "nameservers: %s", ares_strerror(e));
			return -1;
		}
	}
	/* The servers in use, named in the detail of a failure. */
	struct ares_addr_port_node *now = NULL;
	size_t off = 0;
	d->servers[0] = '\0';
	*n = 0;
	if (ares_get_servers_ports(ch, &now) == ARES_SUCCESS) {
		for (struct ares_addr_port_node *p = now; p != NULL && off < sizeof(d->servers); p = p->next) {
			char a[INET6_ADDRSTRLEN];
			inet_ntop(p->family, &p->addr, a, sizeof(a));
			off += (size_t)snprintf(d->servers + off, sizeof(d->servers) - off,
						p->family == AF_INET6 ? "%s[%s]:%d" : "%s%s:%d", off ? "," : "", a,
						p->udp_port ? p->udp_port : 53);
			(*n)++;
		}
		ares_free_data(now);
	}
	return 0;
}

/*
 * A new c-ares channel for cfg, replacing the old one (which has no query in
 * flight). With more than one server, c-ares moves on to the next when one
 * answers SERVFAIL or REFUSED; with one, there is nobody to move on to, so it
 * hands over the answer (ARES_FLAG_NOCHECKRESP) and the detail can name the
 * error the server gave.
 */
static int
open_channel(struct dns *d, const struct mc_config *cfg, char *err, size_t errsz)
{
	ares_channel ch = NULL;
	for (int nocheck = 0; nocheck < 2; nocheck++) {
		struct ares_options o;
		unsigned n = 0;
		memset(&o, 0, sizeof(o));
		o.sock_state_cb = sock_state;
		o.sock_state_cb_data = d;
		o.timeout = (int)(cfg->resolverd.dns_timeout > 0 ? cfg->resolverd.dns_timeout * 1000 : 1000);
		o.tries = TRIES;
		o.flags = ARES_FLAG_EDNS | ARES_FLAG_NOSEARCH | (nocheck ? ARES_FLAG_NOCHECKRESP : 0);
		o.ednspsz = EDNS_SIZE;
		int e = ares_init_options(&ch, &o, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
					  ARES_OPT_FLAGS | ARES_OPT_EDNSPSZ);
		if (e != ARES_SUCCESS) {
			snprintf(err, errsz, "c-ares: %s", ares_strerror(e));
			return -1;
		}
		if (set_servers(d, ch, cfg->resolverd.nameservers, &n, err, errsz) < 0) {
			ares_destroy(ch);
			return -1;
		}
		if (n != 1 || nocheck)
			break;
		ares_destroy(ch);
	}
	if (d->ch_open && d->nsent > 0) {
		/* Queries are out on it: it answers them while new ones go to the new channel. */
		d->old = d->ch;
		d->old_open = true;
		d->old_pending = d->nsent;
	} else if (d->ch_open) {
		ares_destroy(d->ch);
	}
	d->ch = ch;
	d->ch_open = true;
	d->gen++;
	snprintf(d->servers_cfg, sizeof(d->servers_cfg), "%s", cfg->resolverd.nameservers);
	d->timeout = cfg->resolverd.dns_timeout;
	return 0;
}

int
dns_init(struct resolverd *rd, char *err, size_t errsz)
{
	const struct mc_config *cfg = &rd->d->cfg;
	struct dns *d = calloc(1, sizeof(*d));
	if (d == NULL)
		mc_panic("dns: out of memory");
	d->rd = rd;
	d->loop = rd->d->loop;
	rd->dns = d;
	int e = ares_library_init(ARES_LIB_INIT_ALL);
	if (e != ARES_SUCCESS) {
		snprintf(err, errsz, "c-ares: %s", ares_strerror(e));
		return -1;
	}
	uv_timer_init(d->loop, &d->timer);
	d->timer.data = d;
	uv_timer_init(d->loop, &d->sweep);
	d->sweep.data = d;
	d->cache = dns_cache_new(cfg->resolverd.dns_cache_size, cfg->resolverd.dns_negative_ttl_max);
	if (open_channel(d, cfg, err, errsz) < 0)
		return -1;
	mc_info("dns: nameservers %s timeout=%us cache=%u negative_ttl_max=%us", d->servers, cfg->resolverd.dns_timeout,
		cfg->resolverd.dns_cache_size, cfg->resolverd.dns_negative_ttl_max);
	return 0;
}

int
dns_reload(struct resolverd *rd, const struct mc_config *newcfg, char *err, size_t errsz)
{
	struct dns *d = rd->dns;
	if (strcmp(newcfg->resolverd.nameservers, d->servers_cfg) != 0 || newcfg->resolverd.dns_timeout != d->timeout) {
		/* New lookups go to a new channel; the old one ends what it has (seconds), once at a time. */
		if (d->old_open) {
			snprintf(err, errsz, "nameservers: %u lookups of the previous change are still in progress; "
				 "reload again in a moment", d->old_pending);
			return -1;
		}
		if (open_channel(d, newcfg, err, errsz) < 0)
			return -1;
	}
	dns_cache_set_limits(d->cache, newcfg->resolverd.dns_cache_size, newcfg->resolverd.dns_negative_ttl_max);
	mc_info("dns: nameservers %s timeout=%us cache=%u negative_ttl_max=%us", d->servers, d->timeout,
		newcfg->resolverd.dns_cache_size, newcfg->resolverd.dns_negative_ttl_max);
	return 0;
}

void
dns_chan_down(struct resolverd *rd, struct mc_chan *ch)
{
	for (struct mx_job *j = rd->dns != NULL ? rd->dns->jobs : NULL; j != NULL; j = j->next)
		if (j->ch == ch)
			j->ch = NULL;
}

void
dns_stop(struct resolverd *rd)
{
	struct dns *d = rd->dns;
	if (d == NULL || !d->ch_open)
		return;
	for (struct mx_job *j = d->jobs; j != NULL; j = j->next)
		j->ch = NULL;
	/* Every query ends with ARES_EDESTRUCTION, so every job finishes (unheard) and frees itself. */
	d->ch_open = false;
	if (d->old_open) {
		d->old_open = false;
		ares_destroy(d->old);
	}
	ares_destroy(d->ch);
	while (d->unsent_head != NULL) {
		struct query *q = d->unsent_head;
		d->unsent_head = q->unsent_next;
		on_answer(q, ARES_EDESTRUCTION, 0, NULL, 0);
	}
	d->unsent_tail = NULL;
	for (struct dns_sock *s = d->socks, *next; s != NULL; s = next) {
		next = s->next;
		uv_poll_stop(&s->poll);
		uv_close((uv_handle_t *)&s->poll, sock_closed);
	}
	d->socks = NULL;
	uv_close((uv_handle_t *)&d->timer, NULL);
	uv_close((uv_handle_t *)&d->sweep, NULL);
}

void
dns_free(struct resolverd *rd)
{
	struct dns *d = rd->dns;
	if (d == NULL)
		return;
	dns_cache_free(d->cache);
	free(d);
	rd->dns = NULL;
	ares_library_cleanup();
}
