/*
 * dns.c - resolverd's DNS with c-ares on its libuv loop: lookups of one
 * (name, type), for mx.c's RES_MX jobs (see dns.h).
 *
 * Called from main.c's start, reload and stop hooks (dns_init, dns_reload,
 * dns_stop, dns_free) and by mx.c (dns_lookup). Two layers:
 *   - c-ares on libuv: c-ares tells through its socket-state callback which
 *     sockets to watch (one uv_poll_t each) and ares_timeout() when to wake
 *     (one uv_timer_t); nothing ever blocks the loop, so a slow name server
 *     delays only the lookups that wait for it, never RES_RCPT or RES_AUTH.
 *     A reload that changes the servers makes a new channel; the old one
 *     ends the queries it has, then goes.
 *   - lookups of (name, type): answered from the cache (dnscache.c) when
 *     it holds them; otherwise one query per question in progress, which
 *     every asker of the same question waits on (merged), at most SENT_MAX
 *     of them out at once. Answers are read by dnsmsg.c, checked against
 *     the question, cached for their TTL.
 * Owns the c-ares channels, their poll handles and timer, the cache and
 * the queries in progress. Never blocks.
 */
#include "resolverd/dns.h"
#include "resolverd/dnscache.h"
#include "resolverd/resolverd.h"
#include "util/log.h"

#include <ares.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Distinct questions in progress at once (sent or waiting to be sent). */
#define QUERIES_MAX 4096
/* Sent and not yet answered: a burst beyond it waits, since a name server's socket drops what overflows
 * it (measured: 400 questions at once to dnsmasq lost about 60, each then waited out a whole timeout). */
#define SENT_MAX 100
#define TRIES 2
#define EDNS_SIZE 1232

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
void
dns_lookup(struct dns *d, const char *name, uint16_t type, lookup_cb cb, void *arg)
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
	mx_init(d);
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
dns_stop(struct resolverd *rd)
{
	struct dns *d = rd->dns;
	if (d == NULL || !d->ch_open)
		return;
	mx_stop(d);
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
