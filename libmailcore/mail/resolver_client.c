/*
 * resolver_client.c - asking resolverd, as function calls (see
 * resolver_client.h), and resolverd's readers and writers of the same
 * payloads, so the RES_* frames are built and read in this file only.
 *
 * Called by smtpd, queued, pop3d and imapd (the client side) and by
 * resolverd (the mc_resolver_req_* / mc_resolver_reply_* helpers). The
 * client owns one reconnecting channel to run_dir/resolverd.sock and one
 * small record per call in flight, which carries the caller's callback and
 * is freed when the call ends or is cancelled. Every answer is checked
 * (result codes in range, strings within their buffers, the payload read
 * to its end); anything wrong, late or lost becomes a TEMPFAIL, never a
 * guess. Never runs a caller's callback inside the call that started it.
 */
#include "mail/resolver_client.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

#define RCPT_TIMEOUT_MS 30000
#define AUTH_TIMEOUT_MS 60000     /* resolverd slows failed logins on purpose */
#define EXPAND_TIMEOUT_MS 30000
/* resolverd bounds its own DNS work well below this (dns.c), and answers TEMPFAIL then. */
#define MX_TIMEOUT_MS 90000
#define CANON_MAX 1024
/* The smallest encoding of one destination: a u32 and two empty strings. */
#define DEST_MIN_WIRE (5 + 5 + 5)
/* Beside the channel's error codes: an answer that does not parse. */
#define ERR_MALFORMED 1

enum call_kind { CALL_RCPT, CALL_AUTH, CALL_EXPAND, CALL_MX, CALL_AUTH_QUOTA };

struct rcall {
	struct mc_resolver *r;        /* NULL once the client is closed */
	struct rcall *prev, *next;
	uint32_t reqid;
	enum call_kind kind;
	union {
		mc_resolver_rcpt_cb rcpt;
		mc_resolver_auth_cb auth;
		mc_resolver_expand_cb expand;
		mc_resolver_mx_cb mx;
		mc_resolver_auth_quota_cb auth_quota;
	} cb;
	void *arg;
};

struct mc_resolver {
	struct mc_chan *ch;
	struct rcall *calls;          /* in flight, for cancel and close */
};

static const struct mc_chan_cbs resolver_cbs = { NULL, NULL, NULL };

struct mc_resolver *
mc_resolver_open(uv_loop_t *loop, const struct mc_config *cfg, enum mc_role my_role, const char *my_name)
{
	char path[MC_PATH_MAX];
	mc_config_sock(cfg, path, sizeof(path), MC_SOCK_RESOLVERD);
	struct mc_resolver *r = calloc(1, sizeof(*r));
	if (r == NULL)
		mc_panic("resolver: out of memory");
	r->ch = mc_chan_connect(loop, path, &mc_proto, my_role, my_name, &resolver_cbs, r);
	if (r->ch == NULL) {
		free(r);
		return NULL;
	}
	return r;
}

void
mc_resolver_close(struct mc_resolver *r)
{
	if (r == NULL)
		return;
	/* The calls still in flight fail from the loop (TEMPFAIL); they must not touch r then. */
	for (struct rcall *c = r->calls; c; c = c->next)
		c->r = NULL;
	mc_chan_close(r->ch);
	free(r);
}

bool
mc_resolver_is_up(const struct mc_resolver *r)
{
	return r != NULL && mc_chan_is_up(r->ch);
}

static void
unlink_call(struct rcall *c)
{
	if (c->r == NULL)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		c->r->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->r = NULL;
}

/* Why a call got no usable answer, for the log. */
static void
log_failure(const struct rcall *c, struct mc_msg *m, int err)
{
	static const char *const what[] = { "RES_RCPT", "RES_AUTH", "RES_EXPAND", "RES_MX" };
	uint32_t code;
	char text[256];
	if (err == MC_CHAN_EREMOTE && mc_chan_error_parse(m, &code, text, sizeof(text)) == 0)
		mc_warn("resolver: %s reqid=%u: resolverd answered %u %s", what[c->kind], c->reqid, code, text);
	else if (err == ERR_MALFORMED)
		mc_warn("resolver: %s reqid=%u: malformed answer from resolverd", what[c->kind], c->reqid);
	else if (err == MC_CHAN_ETIMEDOUT)
		mc_warn("resolver: %s reqid=%u: resolverd did not answer in time", what[c->kind], c->reqid);
	/* ECLOSED: the channel has logged the lost connection once already. */
}

static void
rcpt_done(struct rcall *c, struct mc_msg *m, int err)
{
	uint32_t res = 0;
	char canon[CANON_MAX] = "";
	if (err == MC_CHAN_OK) {
		mc_msg_get_u32(m, &res);
		mc_msg_get_str(m, canon, sizeof(canon));
		if (mc_msg_end(m) < 0 || res < MC_RCPT_LOCAL || res > MC_RCPT_TEMPFAIL)
			err = ERR_MALFORMED;
	}
	if (err != MC_CHAN_OK) {
		log_failure(c, m, err);
		c->cb.rcpt(c->arg, MC_RCPT_TEMPFAIL, "");
		return;
	}
	c->cb.rcpt(c->arg, (enum mc_rcpt_result)res, canon);
}

static void
auth_done(struct rcall *c, struct mc_msg *m, int err)
{
	uint32_t res = 0;
	uint64_t quota = 0;
	char canon[CANON_MAX] = "", mailbox[MC_PATH_MAX] = "";
	if (err == MC_CHAN_OK) {
		mc_msg_get_u32(m, &res);
		mc_msg_get_str(m, canon, sizeof(canon));
		mc_msg_get_str(m, mailbox, sizeof(mailbox));
		/* the account's quota came later: a reply without it means none */
		if (mc_msg_more(m))
			mc_msg_get_u64(m, &quota);
		if (mc_msg_end(m) < 0 || res < MC_AUTH_OK || res > MC_AUTH_TEMPFAIL)
			err = ERR_MALFORMED;
	}
	if (err != MC_CHAN_OK) {
		log_failure(c, m, err);
		if (c->kind == CALL_AUTH_QUOTA)
			c->cb.auth_quota(c->arg, MC_AUTH_TEMPFAIL, "", "", 0);
		else
			c->cb.auth(c->arg, MC_AUTH_TEMPFAIL, "", "");
		return;
	}
	if (c->kind == CALL_AUTH_QUOTA)
		c->cb.auth_quota(c->arg, (enum mc_auth_result)res, canon, mailbox, quota);
	else
		c->cb.auth(c->arg, (enum mc_auth_result)res, canon, mailbox);
}

static void
expand_done(struct rcall *c, struct mc_msg *m, int err)
{
	struct mc_dest *d = NULL;
	uint32_t n = 0;
	if (err == MC_CHAN_OK) {
		if (mc_msg_get_u32(m, &n) < 0 || n > MC_RESOLVER_EXPAND_MAX ||
		    n > (m->payload.len - m->rpos) / DEST_MIN_WIRE) {
			err = ERR_MALFORMED;
		} else if (n > 0) {
			d = calloc(n, sizeof(*d));
			if (d == NULL)
				mc_panic("resolver: out of memory for %u destinations", n);
		}
		for (uint32_t i = 0; i < n && err == MC_CHAN_OK; i++) {
			uint32_t kind = 0;
			mc_msg_get_u32(m, &kind);
			mc_msg_get_str(m, d[i].address, sizeof(d[i].address));
			mc_msg_get_str(m, d[i].mailbox, sizeof(d[i].mailbox));
			if (m->err || kind < MC_DEST_LOCAL || kind > MC_DEST_UNKNOWN)
				err = ERR_MALFORMED;
			d[i].kind = (enum mc_dest_kind)kind;
		}
		if (err == MC_CHAN_OK && mc_msg_end(m) < 0)
			err = ERR_MALFORMED;
	}
	if (err != MC_CHAN_OK) {
		log_failure(c, m, err);
		c->cb.expand(c->arg, -1, NULL, 0);
	} else {
		c->cb.expand(c->arg, 0, d, n);
	}
	free(d);
}

/* One RES_MX answer read into fixed storage (about 40 KiB, for the callback's duration). */
struct mx_answer {
	struct mc_mx_host hosts[MC_RESOLVER_MX_HOSTS_MAX];
	char names[MC_RESOLVER_MX_HOSTS_MAX][MC_RES_DOMAIN_MAX];
	char addrs[MC_RESOLVER_MX_HOSTS_MAX][MC_RESOLVER_MX_ADDRS_MAX][MC_RES_ADDRLIT_MAX];
	const char *addr_ptrs[MC_RESOLVER_MX_HOSTS_MAX][MC_RESOLVER_MX_ADDRS_MAX];
};

/* Read the hosts of an RES_MX answer into a; -1 when anything is out of bounds. */
static int
read_mx_hosts(struct mc_msg *m, struct mx_answer *a, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		struct mc_mx_host *h = &a->hosts[i];
		uint32_t pref = 0, naddr = 0;
		mc_msg_get_str(m, a->names[i], sizeof(a->names[i]));
		mc_msg_get_u32(m, &pref);
		if (mc_msg_get_u32(m, &naddr) < 0 || naddr == 0 || naddr > MC_RESOLVER_MX_ADDRS_MAX)
			return -1;
		for (uint32_t j = 0; j < naddr; j++) {
			mc_msg_get_str(m, a->addrs[i][j], sizeof(a->addrs[i][j]));
			a->addr_ptrs[i][j] = a->addrs[i][j];
		}
		if (m->err || a->names[i][0] == '\0')
			return -1;
		h->name = a->names[i];
		h->pref = pref;
		h->naddr = naddr;
		h->addrs = a->addr_ptrs[i];
	}
	return 0;
}

static void
mx_done(struct rcall *c, struct mc_msg *m, int err)
{
	struct mx_answer *a = NULL;
	uint32_t res = 0, n = 0;
	char detail[MC_RES_DETAIL_MAX] = "", clean[MC_RES_DETAIL_MAX];
	if (err == MC_CHAN_OK) {
		mc_msg_get_u32(m, &res);
		mc_msg_get_str(m, detail, sizeof(detail));
		if (mc_msg_get_u32(m, &n) < 0 || res < MC_MX_OK || res > MC_MX_NOHOST ||
		    n > MC_RESOLVER_MX_HOSTS_MAX || (res == MC_MX_OK) != (n > 0)) {
			err = ERR_MALFORMED;
		} else if (n > 0) {
			a = calloc(1, sizeof(*a));
			if (a == NULL)
				mc_panic("resolver: out of memory for an MX answer");
			if (read_mx_hosts(m, a, n) < 0)
				err = ERR_MALFORMED;
		}
		if (err == MC_CHAN_OK && mc_msg_end(m) < 0)
			err = ERR_MALFORMED;
	}
	if (err != MC_CHAN_OK) {
		log_failure(c, m, err);
		c->cb.mx(c->arg, MC_MX_TEMPFAIL, err == MC_CHAN_ECLOSED ? "resolverd is not running" :
			 "resolverd gave no usable answer", NULL, 0);
	} else {
		/* resolverd cleans it; cleaning again keeps a DSN safe whatever sent it. */
		mc_log_clean(clean, sizeof(clean), detail, strlen(detail));
		c->cb.mx(c->arg, (enum mc_mx_result)res, clean, a != NULL ? a->hosts : NULL, n);
	}
	free(a);
}

static void
on_reply(void *arg, struct mc_msg *m, int err)
{
	struct rcall *c = arg;
	unlink_call(c);
	switch (c->kind) {
	case CALL_RCPT:
		rcpt_done(c, m, err);
		break;
	case CALL_AUTH:
	case CALL_AUTH_QUOTA:
		auth_done(c, m, err);
		break;
	case CALL_EXPAND:
		expand_done(c, m, err);
		break;
	case CALL_MX:
		mx_done(c, m, err);
		break;
	}
	free(c);
}

static uint32_t
start(struct mc_resolver *r, struct mc_msg *m, unsigned timeout_ms, struct rcall *c)
{
	c->r = r;
	c->next = r->calls;
	if (r->calls)
		r->calls->prev = c;
	r->calls = c;
	c->reqid = mc_chan_call(r->ch, m, timeout_ms, on_reply, c);
	return c->reqid;
}

static struct rcall *
new_call(enum call_kind kind, void *arg)
{
	struct rcall *c = calloc(1, sizeof(*c));
	if (c == NULL)
		mc_panic("resolver: out of memory");
	c->kind = kind;
	c->arg = arg;
	return c;
}

uint32_t
mc_resolver_rcpt(struct mc_resolver *r, const char *address, bool authenticated, mc_resolver_rcpt_cb cb, void *arg)
{
	struct rcall *c = new_call(CALL_RCPT, arg);
	struct mc_msg m;
	c->cb.rcpt = cb;
	mc_msg_init(&m, MC_MSG_RES_RCPT);
	mc_msg_put_str(&m, address);
	mc_msg_put_u32(&m, authenticated ? 1 : 0);
	return start(r, &m, RCPT_TIMEOUT_MS, c);
}

uint32_t
mc_resolver_auth(struct mc_resolver *r, const char *service, const char *client_ip, const char *user,
		 const char *password, mc_resolver_auth_cb cb, void *arg)
{
	struct rcall *c = new_call(CALL_AUTH, arg);
	struct mc_msg m;
	c->cb.auth = cb;
	mc_msg_init(&m, MC_MSG_RES_AUTH);
	mc_msg_put_str(&m, service);
	mc_msg_put_str(&m, client_ip);
	mc_msg_put_str(&m, user);
	mc_msg_put_str(&m, password);
	return start(r, &m, AUTH_TIMEOUT_MS, c);
}

uint32_t
mc_resolver_auth_quota(struct mc_resolver *r, const char *service, const char *client_ip, const char *user,
		       const char *password, mc_resolver_auth_quota_cb cb, void *arg)
{
	struct rcall *c = new_call(CALL_AUTH_QUOTA, arg);
	struct mc_msg m;
	c->cb.auth_quota = cb;
	mc_msg_init(&m, MC_MSG_RES_AUTH);
	mc_msg_put_str(&m, service);
	mc_msg_put_str(&m, client_ip);
	mc_msg_put_str(&m, user);
	mc_msg_put_str(&m, password);
	return start(r, &m, AUTH_TIMEOUT_MS, c);
}

uint32_t
mc_resolver_expand(struct mc_resolver *r, const char *address, mc_resolver_expand_cb cb, void *arg)
{
	struct rcall *c = new_call(CALL_EXPAND, arg);
	struct mc_msg m;
	c->cb.expand = cb;
	mc_msg_init(&m, MC_MSG_RES_EXPAND);
	mc_msg_put_str(&m, address);
	return start(r, &m, EXPAND_TIMEOUT_MS, c);
}

uint32_t
mc_resolver_mx(struct mc_resolver *r, const char *domain, int family, mc_resolver_mx_cb cb, void *arg)
{
	struct rcall *c = new_call(CALL_MX, arg);
	struct mc_msg m;
	c->cb.mx = cb;
	mc_msg_init(&m, MC_MSG_RES_MX);
	mc_msg_put_str(&m, domain);
	int fam = family & ~MC_RESOLVER_MX_HOST_ONLY;
	mc_msg_put_u32(&m, (uint32_t)((fam == 4 || fam == 6 ? fam : 0) | (family & MC_RESOLVER_MX_HOST_ONLY)));
	return start(r, &m, MX_TIMEOUT_MS, c);
}

void
mc_resolver_cancel(struct mc_resolver *r, uint32_t handle)
{
	if (r == NULL || handle == 0)
		return;
	for (struct rcall *c = r->calls; c; c = c->next) {
		if (c->reqid == handle) {
			mc_chan_cancel(r->ch, handle);
			unlink_call(c);
			free(c);
			return;
		}
	}
}

/* ---- resolverd's side ---- */

int
mc_resolver_req_rcpt(struct mc_msg *m, char *addr, size_t sz, bool *authenticated)
{
	uint32_t a = 0;
	mc_msg_get_str(m, addr, sz);
	mc_msg_get_u32(m, &a);
	if (mc_msg_end(m) < 0)
		return -1;
	*authenticated = a != 0;
	return 0;
}

int
mc_resolver_req_auth(struct mc_msg *m, struct mc_resolver_auth_req *req)
{
	memset(req, 0, sizeof(*req));
	mc_msg_get_str(m, req->service, sizeof(req->service));
	mc_msg_get_str(m, req->client_ip, sizeof(req->client_ip));
	mc_msg_get_str(m, req->user, sizeof(req->user));
	mc_msg_get_str(m, req->password, sizeof(req->password));
	if (mc_msg_end(m) < 0) {
		explicit_bzero(req, sizeof(*req));
		return -1;
	}
	return 0;
}

int
mc_resolver_req_expand(struct mc_msg *m, char *addr, size_t sz)
{
	mc_msg_get_str(m, addr, sz);
	return mc_msg_end(m);
}

int
mc_resolver_req_mx(struct mc_msg *m, char *domain, size_t sz, int *family)
{
	uint32_t f = 0;
	mc_msg_get_str(m, domain, sz);
	mc_msg_get_u32(m, &f);
	uint32_t fam = f & ~(uint32_t)MC_RESOLVER_MX_HOST_ONLY;
	if (mc_msg_end(m) < 0 || (fam != 0 && fam != 4 && fam != 6))
		return -1;
	*family = (int)f;
	return 0;
}

int
mc_resolver_reply_rcpt(struct mc_chan *ch, uint32_t reqid, enum mc_rcpt_result r, const char *canonical)
{
	struct mc_msg m;
	mc_msg_init(&m, MC_MSG_RES_RCPT);
	mc_msg_put_u32(&m, (uint32_t)r);
	mc_msg_put_str(&m, canonical);
	return mc_chan_reply(ch, reqid, &m);
}

int
mc_resolver_reply_auth(struct mc_chan *ch, uint32_t reqid, enum mc_auth_result r, const char *canonical,
		       const char *mailbox)
{
	struct mc_msg m;
	mc_msg_init(&m, MC_MSG_RES_AUTH);
	mc_msg_put_u32(&m, (uint32_t)r);
	mc_msg_put_str(&m, canonical);
	mc_msg_put_str(&m, mailbox);
	return mc_chan_reply(ch, reqid, &m);
}

int
mc_resolver_reply_auth_quota(struct mc_chan *ch, uint32_t reqid, enum mc_auth_result r, const char *canonical,
			     const char *mailbox, uint64_t quota)
{
	struct mc_msg m;
	mc_msg_init(&m, MC_MSG_RES_AUTH);
	mc_msg_put_u32(&m, (uint32_t)r);
	mc_msg_put_str(&m, canonical);
	mc_msg_put_str(&m, mailbox);
	mc_msg_put_u64(&m, quota);
	return mc_chan_reply(ch, reqid, &m);
}

int
mc_resolver_reply_expand(struct mc_chan *ch, uint32_t reqid, const struct mc_dest *d, unsigned n)
{
	struct mc_msg m;
	mc_msg_init(&m, MC_MSG_RES_EXPAND);
	mc_msg_put_u32(&m, n);
	for (unsigned i = 0; i < n; i++) {
		mc_msg_put_u32(&m, (uint32_t)d[i].kind);
		mc_msg_put_str(&m, d[i].address);
		mc_msg_put_str(&m, d[i].mailbox);
	}
	if (n > MC_RESOLVER_EXPAND_MAX || m.err) {
		mc_msg_free(&m);
		mc_warn("resolver: expansion of %u destinations does not fit in one answer", n);
		return mc_chan_reply_error(ch, reqid, MC_MSG_RES_EXPAND, 451, "4.3.0 expansion too large");
	}
	return mc_chan_reply(ch, reqid, &m);
}

/* How many of a host's addresses an answer carries: those the client can read, up to the bound. */
static unsigned
mx_addrs_sent(const struct mc_mx_host *h)
{
	unsigned na = 0;
	if (strlen(h->name) >= MC_RES_DOMAIN_MAX || h->name[0] == '\0')
		return 0;
	for (unsigned j = 0; j < h->naddr && na < MC_RESOLVER_MX_ADDRS_MAX; j++)
		if (strlen(h->addrs[j]) < MC_RES_ADDRLIT_MAX)
			na++;
	return na;
}

int
mc_resolver_reply_mx(struct mc_chan *ch, uint32_t reqid, enum mc_mx_result r, const char *detail,
		     const struct mc_mx_host *hosts, unsigned n)
{
	struct mc_msg m;
	char clean[MC_RES_DETAIL_MAX];
	unsigned send = 0;
	for (unsigned i = 0; i < n && send < MC_RESOLVER_MX_HOSTS_MAX; i++)
		if (mx_addrs_sent(&hosts[i]) > 0)
			send++;
	if (r == MC_MX_OK && send == 0)
		r = MC_MX_NOHOST;
	if (r != MC_MX_OK)
		send = 0;
	mc_log_clean(clean, sizeof(clean), detail != NULL ? detail : "", detail != NULL ? strlen(detail) : 0);
	mc_msg_init(&m, MC_MSG_RES_MX);
	mc_msg_put_u32(&m, (uint32_t)r);
	mc_msg_put_str(&m, clean);
	mc_msg_put_u32(&m, send);
	for (unsigned i = 0, sent = 0; i < n && sent < send; i++) {
		unsigned na = mx_addrs_sent(&hosts[i]);
		if (na == 0)
			continue;
		mc_msg_put_str(&m, hosts[i].name);
		mc_msg_put_u32(&m, hosts[i].pref);
		mc_msg_put_u32(&m, na);
		for (unsigned j = 0, put = 0; j < hosts[i].naddr && put < na; j++) {
			if (strlen(hosts[i].addrs[j]) < MC_RES_ADDRLIT_MAX) {
				mc_msg_put_str(&m, hosts[i].addrs[j]);
				put++;
			}
		}
		sent++;
	}
	return mc_chan_reply(ch, reqid, &m);
}
