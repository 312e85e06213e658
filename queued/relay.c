/*
 * relay.c - remote delivery per destination: where a message to another
 * domain goes, over which connection, and when.
 *
 * Called by deliver.c (q_relay_submit: a message's remote destinations,
 * once every recipient of its round is expanded) and the tick. A
 * destination is a domain, or the relayhost when one is configured; each
 * has a queue of jobs (one message's destinations there), its MX answer
 * from resolverd (mc_resolver_mx: hosts in try order with their
 * addresses), and its connections (smtpc.c). Owns the destinations, the
 * connections and the jobs until their outcomes are handed back with
 * q_deliver_remote_done (never from inside q_relay_submit).
 *
 *   hosts and addresses: a connection that cannot get ready (connect
 *     failure, timeout, 4xx/5xx greeting or EHLO, TLS required but absent)
 *     moves to the next address, then the next host; a failed TLS handshake
 *     is retried once in plaintext on a new connection when outbound_tls
 *     is "may". When every address failed, the destination's queued jobs
 *     are deferred with the last error and the destination is backed off
 *     as a whole (30 s doubling up to retry_min) instead of being tried
 *     again per message; one probing connection at a time after a failure.
 *   connection cache: a connection that finished a job takes the next job
 *     of its destination (RSET first), or waits idle for up to
 *     connection_cache_time (at most connection_cache_size idle in all);
 *     connection_reuse_limit messages per connection.
 *   limits: destination_concurrency connections per destination;
 *     destination_rate messages started per minute (evenly spaced).
 *
 * Never: report inside a caller's call, bounce on a temporary DNS or
 * connection failure, or send AUTH without TLS (smtpc.c checks).
 */
#include "queued/queued.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util/log.h"
#include "util/tls.h"

#define DEST_BUCKETS 1024
#define ADDRS_MAX 32
#define ADDRS_FRESH 60.0        /* seconds an MX answer is used for new connections */
#define BACKOFF_FIRST 30.0

struct raddr {
	char host[256];
	char ip[64];
};

struct sess;

struct dest {
	struct q_relay *rl;
	char name[256];              /* domain, or the relayhost's name */
	struct q_rjob *head, **tail;
	unsigned njobs;
	struct sess *sessions;
	unsigned nsess, nconnecting;
	uint32_t mx_handle;
	struct raddr *addrs;
	unsigned naddr;
	double addrs_at;
	unsigned fails;              /* attempts in a row that reached no server */
	double backoff_until;
	char last_err[Q_ERR_MAX];
	double next_start;           /* rate limit: when the next message may start */
	uv_timer_t timer;            /* wakes the destination when its rate allows */
	bool timer_on, queued_run;
	struct dest *hnext, *rnext;
};

struct sess {
	struct dest *dst;
	struct q_smtpc *c;
	struct raddr *addrs;         /* a copy: the destination's list may be replaced meanwhile */
	unsigned naddr, ai;
	bool plain;                  /* this address again without TLS */
	bool ready, busy, quitting;
	unsigned msgs;
	double idle_since;
	char last_err[Q_ERR_MAX];
	char last_relay[320];        /* "host[ip]:port" last tried */
	struct sess *next;
};

struct q_relay {
	struct queued *q;
	struct mc_tls tls;
	char password[512];
	struct dest *dests[DEST_BUCKETS];
	struct dest *run_head;       /* destinations to look at from the loop */
	uv_timer_t kick;
	bool kick_on;
	unsigned idle;
	bool stopping;
};

static void dest_run(struct dest *d);
static void sess_start(struct sess *s);

static unsigned
hash_name(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)tolower((unsigned char)*s)) * 16777619u;
	return h;
}

static const struct mc_config *
cfg_of(const struct q_relay *rl)
{
	return &rl->q->d->cfg;
}

/* ---- reporting ---- */

static void
report_job(struct q_relay *rl, struct q_rjob *j)
{
	struct q_msg *m = j->m;
	double delay = q_now() - m->t_arrival;
	for (unsigned i = 0; i < j->n; i++) {
		struct q_rdest *d = j->d[i];
		const char *orig = m->env.rcpt[d->r - m->rs].addr;
		static const char *const status[] = { "interrupted", "sent", "deferred", "bounced" };
		char oto[MC_ADDR_MAX + 16] = "";
		if (strcasecmp(orig, d->addr) != 0)
			snprintf(oto, sizeof(oto), " orig_to=<%s>,", orig);
		if (d->res != Q_RR_NONE)
			mc_info("%s: to=<%s>,%s relay=%s, delay=%.2f, dsn=%s, status=%s (%s)", m->env.qid, d->addr, oto,
				j->relay[0] ? j->relay : "none", delay < 0 ? 0 : delay, d->dsn, status[d->res], d->reply);
		q_deliver_remote_done(rl->q, d, j->relay[0] ? j->relay : "none");
	}
	free(j->d);
	free(j);
}

/* Every job of d waiting gets this outcome (its destinations still open). */
static void
settle_queued(struct dest *d, enum q_rres res, const char *dsn, const char *why, const char *relay)
{
	while (d->head) {
		struct q_rjob *j = d->head;
		d->head = j->next;
		d->njobs--;
		for (unsigned i = 0; i < j->n; i++) {
			struct q_rdest *x = j->d[i];
			if (x->res != Q_RR_NONE)
				continue;
			x->res = res;
			snprintf(x->dsn, sizeof(x->dsn), "%s", dsn);
			snprintf(x->reply, sizeof(x->reply), "%s", why);
		}
		if (relay)
			snprintf(j->relay, sizeof(j->relay), "%s", relay);
		report_job(d->rl, j);
	}
	d->tail = &d->head;
}

/* ---- destinations ---- */

static void kick_cb(uv_timer_t *t);

/* Look at d from the loop, never inside the caller. */
static void
dest_kick(struct dest *d)
{
	struct q_relay *rl = d->rl;
	if (rl->stopping || d->queued_run)
		return;
	d->queued_run = true;
	d->rnext = rl->run_head;
	rl->run_head = d;
	if (!rl->kick_on) {
		rl->kick_on = true;
		uv_timer_start(&rl->kick, kick_cb, 0, 0);
	}
}

static void
kick_cb(uv_timer_t *t)
{
	struct q_relay *rl = t->data;
	rl->kick_on = false;
	while (rl->run_head) {
		struct dest *d = rl->run_head;
		rl->run_head = d->rnext;
		d->queued_run = false;
		dest_run(d);
	}
}

static void
rate_cb(uv_timer_t *t)
{
	struct dest *d = t->data;
	d->timer_on = false;
	dest_run(d);
}

static struct dest *
dest_get(struct q_relay *rl, const char *name)
{
	struct dest **pp = &rl->dests[hash_name(name) % DEST_BUCKETS];
	for (; *pp; pp = &(*pp)->hnext)
		if (strcasecmp((*pp)->name, name) == 0)
			return *pp;
	struct dest *d = calloc(1, sizeof(*d));
	if (d == NULL)
		mc_panic("out of memory");
	d->rl = rl;
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->tail = &d->head;
	uv_timer_init(rl->q->loop, &d->timer);
	d->timer.data = d;
	*pp = d;
	return d;
}

static void
dest_free_cb(uv_handle_t *h)
{
	struct dest *d = h->data;
	free(d->addrs);
	free(d);
}

/* Rate limit: may a message start now? If not, the timer wakes d when it may. */
static bool
rate_ok(struct dest *d, double now)
{
	unsigned rate = cfg_of(d->rl)->queued.destination_rate;
	if (rate == 0)
		return true;
	if (now + 0.001 < d->next_start) {
		if (!d->timer_on) {
			d->timer_on = true;
			uv_timer_start(&d->timer, rate_cb, (uint64_t)((d->next_start - now) * 1000.0) + 1, 0);
		}
		return false;
	}
	d->next_start = (d->next_start > now ? d->next_start : now) + 60.0 / rate;
	return true;
}

static bool
is_ip(const char *s)
{
	unsigned char b[16];
	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

static void
set_addrs(struct dest *d, const struct raddr *a, unsigned n)
{
	free(d->addrs);
	d->addrs = NULL;
	d->naddr = 0;
	if (n) {
		d->addrs = malloc(n * sizeof(*a));
		if (d->addrs == NULL)
			mc_panic("out of memory");
		memcpy(d->addrs, a, n * sizeof(*a));
	}
	d->naddr = n;
	d->addrs_at = q_now();
}

static bool
family_ok(const struct q_relay *rl, const char *ip)
{
	unsigned f = cfg_of(rl)->queued.outbound_family;
	bool v6 = strchr(ip, ':') != NULL;
	return f == 0 || (f == 6) == v6;
}

static bool
same_name(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	if (na && a[na - 1] == '.')
		na--;
	if (nb && b[nb - 1] == '.')
		nb--;
	return na == nb && strncasecmp(a, b, na) == 0;
}

static void
on_mx(void *arg, enum mc_mx_result r, const char *detail, const struct mc_mx_host *hosts, unsigned n)
{
	struct dest *d = arg;
	struct q_relay *rl = d->rl;
	const struct mc_config *cfg = cfg_of(rl);
	char why[Q_ERR_MAX], det[128];
	d->mx_handle = 0;
	mc_log_clean(det, sizeof(det), detail ? detail : "", detail ? strlen(detail) : 0);
	if (r != MC_MX_OK && r != MC_MX_TEMPFAIL && cfg->queued.relayhost_name[0]) {
		/* the smarthost itself cannot be found: the operator's problem, not the recipient's */
		snprintf(why, sizeof(why), "relayhost %.110s not found in DNS (%.90s)", d->name, det);
		settle_queued(d, Q_RR_TEMP, "4.4.4", why, NULL);
		return;
	}
	switch (r) {
	case MC_MX_OK:
		break;
	case MC_MX_NXDOMAIN:
		snprintf(why, sizeof(why), "Host or domain name not found: %.110s (%.90s)", d->name, det);
		settle_queued(d, Q_RR_PERM, "5.1.2", why, NULL);
		return;
	case MC_MX_NULLMX:
		snprintf(why, sizeof(why), "Domain %.200s does not accept mail (null MX)", d->name);
		settle_queued(d, Q_RR_PERM, "5.1.10", why, NULL);
		return;
	case MC_MX_NOHOST:
		snprintf(why, sizeof(why), "No mail host with an address for %.110s (%.90s)", d->name, det);
		settle_queued(d, Q_RR_PERM, "5.1.2", why, NULL);
		return;
	default:
		snprintf(why, sizeof(why), "DNS lookup of %.110s failed, will try again (%.90s)", d->name, det);
		settle_queued(d, Q_RR_TEMP, "4.4.3", why, NULL);
		return;
	}
	bool bracketed = cfg->queued.relayhost_name[0] && !cfg->queued.relayhost_mx;
	struct raddr a[ADDRS_MAX];
	unsigned k = 0;
	for (unsigned h = 0; h < n && k < ADDRS_MAX; h++) {
		if (bracketed && !same_name(hosts[h].name, d->name))
			continue;   /* [host]: its own addresses, never its MX hosts */
		for (unsigned i = 0; i < hosts[h].naddr && k < ADDRS_MAX; i++) {
			if (!family_ok(rl, hosts[h].addrs[i]) || strlen(hosts[h].addrs[i]) >= sizeof(a[k].ip))
				continue;
			mc_log_clean(a[k].host, sizeof(a[k].host), hosts[h].name, strlen(hosts[h].name));
			size_t hl = strlen(a[k].host);
			if (hl > 1 && a[k].host[hl - 1] == '.')
				a[k].host[hl - 1] = '\0';
			snprintf(a[k].ip, sizeof(a[k].ip), "%s", hosts[h].addrs[i]);
			k++;
		}
	}
	if (k == 0) {
		snprintf(why, sizeof(why), "no address of %.200s%s to connect to", d->name,
			 cfg->queued.outbound_family == 4   ? " for IPv4"
			 : cfg->queued.outbound_family == 6 ? " for IPv6"
							    : "");
		settle_queued(d, Q_RR_TEMP, "4.4.4", why, NULL);
		return;
	}
	set_addrs(d, a, k);
	dest_run(d);
}

/* Find the addresses of d; false while they are being looked up (or the jobs were settled). */
static bool
dest_addrs(struct dest *d)
{
	struct q_relay *rl = d->rl;
	const struct mc_config *cfg = cfg_of(rl);
	if (d->naddr && q_now() - d->addrs_at < ADDRS_FRESH)
		return true;
	if (d->mx_handle)
		return false;
	if (cfg->queued.relayhost_name[0] && !cfg->queued.relayhost_mx && is_ip(d->name)) {
		struct raddr a;
		snprintf(a.host, sizeof(a.host), "%s", d->name);
		snprintf(a.ip, sizeof(a.ip), "%.63s", d->name);
		set_addrs(d, &a, 1);
		return true;
	}
	if (!mc_resolver_is_up(rl->q->res)) {
		settle_queued(d, Q_RR_TEMP, "4.4.3", "resolverd unreachable", NULL);
		return false;
	}
	int fam = (int)cfg->queued.outbound_family;
	if (cfg->queued.relayhost_name[0] && !cfg->queued.relayhost_mx)
		fam |= MC_RESOLVER_MX_HOST_ONLY;   /* [host]: its own addresses, never its MX hosts */
	d->mx_handle = mc_resolver_mx(rl->q->res, d->name, fam, on_mx, d);
	return false;
}

static void
backoff(struct dest *d, const char *why)
{
	double now = q_now();
	d->fails++;
	snprintf(d->last_err, sizeof(d->last_err), "%s", why);
	double b = BACKOFF_FIRST;
	for (unsigned i = 1; i < d->fails && b < 3600; i++)
		b *= 2;
	double max = cfg_of(d->rl)->queued.retry_min;
	if (b > max)
		b = max;
	d->backoff_until = now + b;
	free(d->addrs);   /* look the hosts up again next time */
	d->addrs = NULL;
	d->naddr = 0;
	mc_info("relay: destination %s unreachable (%u time%s in a row), backed off for %.0fs: %s", d->name, d->fails,
		d->fails == 1 ? "" : "s", b, why);
}

/* ---- connections ---- */

static void on_ready(struct q_smtpc *c, void *arg);
static void on_done(struct q_smtpc *c, void *arg, struct q_rjob *j);
static void on_gone(struct q_smtpc *c, void *arg, const struct q_smtpc_gone *g);
static const struct q_smtpc_cbs smtpc_cbs = { on_ready, on_done, on_gone };

static void
sess_unlink(struct sess *s)
{
	struct dest *d = s->dst;
	for (struct sess **pp = &d->sessions; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	d->nsess--;
	if (!s->ready)
		d->nconnecting--;
	if (s->ready && !s->busy)
		d->rl->idle--;
}

static void
sess_start(struct sess *s)
{
	struct dest *d = s->dst;
	struct q_relay *rl = d->rl;
	const struct mc_config *cfg = cfg_of(rl);
	for (; s->ai < s->naddr; s->ai++, s->plain = false) {
		const struct raddr *a = &s->addrs[s->ai];
		struct q_smtpc_opts o = {
			.helo = cfg->global.hostname,
			.host = a->host,
			.tls = s->plain ? MC_OUTTLS_NONE : cfg->queued.outbound_tls,
			.tls_ctx = rl->tls.client,
			.connect_ms = cfg->queued.connect_timeout * 1000u,
			.cmd_ms = cfg->queued.command_timeout * 1000u,
			.data_ms = cfg->queued.data_timeout * 1000u,
		};
		if (cfg->queued.relayhost_name[0] && cfg->queued.relayhost_user[0]) {
			o.auth_user = cfg->queued.relayhost_user;
			o.auth_pass = rl->password;
			o.tls = MC_OUTTLS_ENCRYPT;   /* credentials go over TLS only */
		}
		unsigned port = cfg->queued.relayhost_name[0] && cfg->queued.relayhost_port
					? cfg->queued.relayhost_port
					: cfg->queued.remote_smtp_port;
		s->c = q_smtpc_open(rl->q->loop, a->ip, port, &o, &smtpc_cbs, s);
		if (s->c) {
			snprintf(s->last_relay, sizeof(s->last_relay), "%s", q_smtpc_relay(s->c));
			return;
		}
		snprintf(s->last_err, sizeof(s->last_err), "cannot connect to %.150s[%.60s]:%u", a->host, a->ip, port);
	}
	/* nothing could even start: as if every address failed */
	struct q_smtpc_gone g = { .why = s->last_err };
	on_gone(NULL, s, &g);
}

static void
sess_new(struct dest *d)
{
	struct sess *s = calloc(1, sizeof(*s));
	if (s == NULL)
		mc_panic("out of memory");
	s->dst = d;
	s->naddr = d->naddr;
	s->addrs = malloc(d->naddr * sizeof(*s->addrs));
	if (s->addrs == NULL)
		mc_panic("out of memory");
	memcpy(s->addrs, d->addrs, d->naddr * sizeof(*s->addrs));
	s->next = d->sessions;
	d->sessions = s;
	d->nsess++;
	d->nconnecting++;
	sess_start(s);
}

static void
sess_quit(struct sess *s)
{
	s->quitting = true;
	q_smtpc_quit(s->c);
}

/* Give the ready connection s its destination's next job, or let it idle. */
static void
sess_feed(struct sess *s)
{
	struct dest *d = s->dst;
	struct q_relay *rl = d->rl;
	const struct mc_config *cfg = cfg_of(rl);
	if (rl->stopping || s->quitting || rl->q->paused)
		return;
	unsigned reuse = cfg->queued.connection_reuse_limit ? cfg->queued.connection_reuse_limit : 1;
	if (d->head && s->msgs >= reuse) {
		sess_quit(s);
		return;
	}
	if (d->head && rate_ok(d, q_now())) {
		struct q_rjob *j = d->head;
		d->head = j->next;
		if (d->head == NULL)
			d->tail = &d->head;
		d->njobs--;
		j->next = NULL;
		if (!s->busy)
			rl->idle--;
		s->busy = true;
		s->idle_since = 0;
		q_smtpc_send(s->c, j);
		return;
	}
	if (d->head == NULL &&
	    (s->msgs >= reuse || rl->idle >= cfg->queued.connection_cache_size)) {
		sess_quit(s);
		return;
	}
	if (s->busy) {
		s->busy = false;
		s->idle_since = q_now();
		rl->idle++;
	}
}

static void
on_ready(struct q_smtpc *c, void *arg)
{
	struct sess *s = arg;
	struct dest *d = s->dst;
	(void)c;
	s->ready = true;
	s->busy = true;      /* until sess_feed says otherwise */
	s->idle_since = 0;
	d->nconnecting--;
	d->fails = 0;
	d->backoff_until = 0;
	sess_feed(s);
	dest_kick(d);
}

static void
on_done(struct q_smtpc *c, void *arg, struct q_rjob *j)
{
	struct sess *s = arg;
	(void)c;
	s->msgs++;
	report_job(s->dst->rl, j);
	sess_feed(s);
}

static void
on_gone(struct q_smtpc *c, void *arg, const struct q_smtpc_gone *g)
{
	struct sess *s = arg;
	struct dest *d = s->dst;
	struct q_relay *rl = d->rl;
	s->c = NULL;
	if (g->job) {
		if (g->job->started || rl->stopping) {
			report_job(rl, g->job);
		} else {
			/* the job never began here: first in line again */
			g->job->next = d->head;
			d->head = g->job;
			if (d->tail == &d->head)
				d->tail = &g->job->next;
			d->njobs++;
		}
	}
	if (!s->ready && !rl->stopping && c != NULL) {
		snprintf(s->last_err, sizeof(s->last_err), "%s", g->why);
		mc_info("relay: %s: %s", d->name, g->why);
		if (g->tls_failed && !s->plain && cfg_of(rl)->queued.outbound_tls == MC_OUTTLS_MAY &&
		    !cfg_of(rl)->queued.relayhost_user[0]) {
			s->plain = true;   /* same address, no STARTTLS */
			sess_start(s);
			return;
		}
		s->ai++;
		s->plain = false;
		if (s->ai < s->naddr) {
			sess_start(s);
			return;
		}
	}
	bool failed = !s->ready;
	char why[Q_ERR_MAX], last[320];
	snprintf(last, sizeof(last), "%s", s->last_relay);
	snprintf(why, sizeof(why), "%s", s->last_err[0] ? s->last_err : g->why);
	sess_unlink(s);
	free(s->addrs);
	free(s);
	if (rl->stopping)
		return;
	if (failed) {
		backoff(d, why);
		if (d->nsess == 0)
			settle_queued(d, Q_RR_TEMP, "4.4.1", why, last[0] ? last : NULL);
	}
	dest_kick(d);
}

/* ---- running a destination ---- */

static void
dest_run(struct dest *d)
{
	struct q_relay *rl = d->rl;
	const struct mc_config *cfg = cfg_of(rl);
	if (rl->stopping || d->head == NULL || rl->q->paused)
		return;   /* paused: the jobs wait; the tick looks again once resumed */
	double now = q_now();
	if (d->backoff_until > now && d->nsess == 0) {
		char why[Q_ERR_MAX];
		snprintf(why, sizeof(why), "%s", d->last_err);
		settle_queued(d, Q_RR_TEMP, "4.4.1", why, NULL);
		return;
	}
	/* idle connections first */
	for (struct sess *s = d->sessions; s && d->head; s = s->next)
		if (s->ready && !s->busy && !s->quitting)
			sess_feed(s);
	if (d->head == NULL || d->nsess >= cfg->queued.destination_concurrency)
		return;
	if (!dest_addrs(d))
		return;
	/* after a failure, one probing connection at a time; with a rate limit, one at a time too */
	unsigned want = d->njobs > d->nconnecting ? d->njobs - d->nconnecting : 0;
	if ((d->fails || cfg->queued.destination_rate) && want > 0)
		want = d->nconnecting ? 0 : 1;
	while (want-- > 0 && d->nsess < cfg->queued.destination_concurrency && d->head)
		sess_new(d);
}

/* ---- the interface ---- */

static void
domain_of(const char *addr, char *out, size_t outsz)
{
	const char *at = strrchr(addr, '@');
	snprintf(out, outsz, "%s", at ? at + 1 : "");
	for (char *p = out; *p; p++)
		*p = (char)tolower((unsigned char)*p);
}

void
q_relay_submit(struct queued *q, struct q_msg *m, struct q_rdest *list)
{
	struct q_relay *rl = q->relay;
	const struct mc_config *cfg = &q->d->cfg;
	while (list) {
		/* the first destination's domain; everything else for it joins the same job */
		char key[256], dom[256];
		domain_of(list->addr, dom, sizeof(dom));
		snprintf(key, sizeof(key), "%s", cfg->queued.relayhost_name[0] ? cfg->queued.relayhost_name : dom);
		struct q_rjob *j = calloc(1, sizeof(*j));
		if (j == NULL)
			mc_panic("out of memory");
		j->m = m;
		snprintf(j->domain, sizeof(j->domain), "%s", dom);
		snprintf(j->body, sizeof(j->body), "%s/%s", q->active, m->env.qid);
		unsigned cap = 0;
		struct q_rdest **pp = &list;
		while (*pp) {
			struct q_rdest *x = *pp;
			char xd[256];
			domain_of(x->addr, xd, sizeof(xd));
			if (!cfg->queued.relayhost_name[0] && strcmp(xd, dom) != 0) {
				pp = &x->next;
				continue;
			}
			*pp = x->next;
			x->next = NULL;
			if (j->n == cap) {
				cap = cap ? cap * 2 : 4;
				void *nd = realloc(j->d, cap * sizeof(*j->d));
				if (nd == NULL)
					mc_panic("out of memory");
				j->d = nd;
			}
			j->d[j->n++] = x;
		}
		struct dest *d = dest_get(rl, key);
		*d->tail = j;
		d->tail = &j->next;
		d->njobs++;
		dest_kick(d);
	}
}

static struct q_relay *
relay_new(struct queued *q)
{
	if (q->relay == NULL) {
		q->relay = calloc(1, sizeof(*q->relay));
		if (q->relay == NULL)
			mc_panic("out of memory");
		q->relay->q = q;
	}
	return q->relay;
}

void
q_relay_preinit(struct queued *q)
{
	const struct mc_config *cfg = &q->d->cfg;
	struct q_relay *rl = relay_new(q);
	if (cfg->queued.relayhost_user[0] == '\0')
		return;
	if (cfg->queued.relayhost_name[0] == '\0')
		mc_fatal("[queued] relayhost_user is set, but relayhost is not");
	if (cfg->queued.relayhost_password_file[0] == '\0')
		mc_fatal("[queued] relayhost_user is set, but relayhost_password_file is not");
	int fd = open(cfg->queued.relayhost_password_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		mc_fatal("cannot open relayhost_password_file %s: %s", cfg->queued.relayhost_password_file,
			 strerror(errno));
	ssize_t n = read(fd, rl->password, sizeof(rl->password) - 1);
	close(fd);
	if (n < 0)
		mc_fatal("cannot read %s: %s", cfg->queued.relayhost_password_file, strerror(errno));
	rl->password[n] = '\0';
	rl->password[strcspn(rl->password, "\r\n")] = '\0';
	if (rl->password[0] == '\0')
		mc_fatal("%s: no password on its first line", cfg->queued.relayhost_password_file);
}

int
q_relay_init(struct queued *q)
{
	struct q_relay *rl = relay_new(q);
	char err[256];
	if (mc_tls_client_init(&rl->tls, err, sizeof(err)) < 0) {
		mc_error("relay: no client TLS context: %s", err);
		return -1;
	}
	uv_timer_init(q->loop, &rl->kick);
	rl->kick.data = rl;
	return 0;
}

void
q_relay_tick(struct queued *q, double now)
{
	struct q_relay *rl = q->relay;
	if (rl == NULL || rl->stopping)
		return;
	unsigned idle_time = cfg_of(rl)->queued.connection_cache_time;
	for (size_t b = 0; b < DEST_BUCKETS; b++) {
		struct dest **pp = &rl->dests[b];
		while (*pp) {
			struct dest *d = *pp;
			for (struct sess *s = d->sessions; s; s = s->next)
				if (s->ready && !s->busy && !s->quitting && now - s->idle_since >= idle_time)
					sess_quit(s);
			if (d->head && !q->paused && d->nsess == 0 && d->mx_handle == 0)
				dest_kick(d);
			bool empty = d->head == NULL && d->sessions == NULL && d->mx_handle == 0 && !d->queued_run &&
				     !d->timer_on && d->backoff_until < now && d->next_start < now;
			if (empty) {
				*pp = d->hnext;
				uv_close((uv_handle_t *)&d->timer, dest_free_cb);
				continue;
			}
			pp = &d->hnext;
		}
	}
}

static void
noop_close(uv_handle_t *h)
{
	(void)h;
}

void
q_relay_stop(struct queued *q)
{
	struct q_relay *rl = q->relay;
	if (rl == NULL || rl->stopping)
		return;
	rl->stopping = true;
	uv_close((uv_handle_t *)&rl->kick, noop_close);
	for (size_t b = 0; b < DEST_BUCKETS; b++) {
		for (struct dest *d = rl->dests[b]; d; d = d->hnext) {
			if (d->mx_handle) {
				mc_resolver_cancel(q->res, d->mx_handle);
				d->mx_handle = 0;
			}
			uv_close((uv_handle_t *)&d->timer, noop_close);
			d->timer_on = false;
			/* waiting jobs: nothing happened to them */
			while (d->head) {
				struct q_rjob *j = d->head;
				d->head = j->next;
				report_job(rl, j);
			}
			d->tail = &d->head;
			d->njobs = 0;
			for (struct sess *s = d->sessions; s; s = s->next)
				if (s->c)
					q_smtpc_abort(s->c);
		}
	}
}

void
q_relay_free(struct queued *q)
{
	struct q_relay *rl = q->relay;
	if (rl == NULL)
		return;
	/* after the loop: every connection is gone and every handle closed */
	for (size_t b = 0; b < DEST_BUCKETS; b++) {
		struct dest *d = rl->dests[b];
		while (d) {
			struct dest *next = d->hnext;
			free(d->addrs);
			free(d);
			d = next;
		}
	}
	mc_tls_free(&rl->tls);
	explicit_bzero(rl->password, sizeof(rl->password));
	free(rl);
	q->relay = NULL;
}
