/*
 * mx.c - RES_MX: where mail for a domain goes (see dns.h), from the
 * lookups of dns.c.
 *
 * Called from main.c's request table (dns_request) and channel-down hook
 * (dns_chan_down), and by dns.c at start and stop (mx_init, mx_stop). One
 * job per request: the domain's MX records (none: the domain itself, RFC
 * 5321 §5.1; a lone "0 .": null MX, RFC 7505), ordered by preference with
 * equal ones shuffled (dns_mx_order), then the AAAA and A records of every
 * host asked at once; one answer with hosts and addresses. A domain written
 * as an address literal is answered at once. Owns the jobs and their
 * deadline timer; never answers a channel that went down (the job finishes
 * unheard) and never answers twice.
 */
#include "mail/resolver_client.h"
#include "resolverd/dns.h"
#include "resolverd/resolverd.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RES_MX requests in progress (a job is about 0.5 KiB per MX host); past it the answer is TEMPFAIL. */
#define JOBS_MAX 16384
/* A job not done by then is answered TEMPFAIL (well before the client's own 90 s) and ends unheard. */
#define JOB_DEADLINE_MS 60000
#define DETAIL_LEN 1024    /* cut to MC_RES_DETAIL_MAX by the reply */

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

static uint32_t
random_below(uint32_t bound)
{
	return arc4random_uniform(bound);
}

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
			dns_lookup(j->d, h->name, DNS_T_AAAA, on_aaaa, h);
		}
		if (j->family != 6) {
			j->pending++;
			dns_lookup(j->d, h->name, DNS_T_A, on_a, h);
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
	dns_lookup(d, name, DNS_T_MX, on_mx, j);
}

void
dns_chan_down(struct resolverd *rd, struct mc_chan *ch)
{
	for (struct mx_job *j = rd->dns != NULL ? rd->dns->jobs : NULL; j != NULL; j = j->next)
		if (j->ch == ch)
			j->ch = NULL;
}

void
mx_init(struct dns *d)
{
	uv_timer_init(d->loop, &d->sweep);
	d->sweep.data = d;
}

void
mx_stop(struct dns *d)
{
	for (struct mx_job *j = d->jobs; j != NULL; j = j->next)
		j->ch = NULL;
	uv_close((uv_handle_t *)&d->sweep, NULL);
}
