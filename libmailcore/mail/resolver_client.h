/*
 * resolver_client.h - asking resolverd, as function calls.
 *
 * One client per process, over a channel to run_dir/resolverd.sock that
 * reconnects by itself. Every call answers exactly once through its
 * callback (never from inside the call): with the answer, or with
 * MC_*_TEMPFAIL when resolverd is away or slow. A caller whose session
 * ends first cancels the call with mc_resolver_cancel() and its callback
 * never runs. Callers never build frames.
 */
#ifndef MC_RESOLVER_CLIENT_H
#define MC_RESOLVER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "mail/proto.h"
#include "util/config.h"

struct mc_resolver;

struct mc_dest {
	enum mc_dest_kind kind;
	char address[512];
	char mailbox[1024];   /* LOCAL: the Maildir++ directory */
};

typedef void (*mc_resolver_rcpt_cb)(void *arg, enum mc_rcpt_result r, const char *canonical);
typedef void (*mc_resolver_auth_cb)(void *arg, enum mc_auth_result r, const char *canonical, const char *mailbox);
/* As mc_resolver_auth_cb, with the account's quota in bytes from the directory (0 = none). */
typedef void (*mc_resolver_auth_quota_cb)(void *arg, enum mc_auth_result r, const char *canonical,
					  const char *mailbox, uint64_t quota);
/* err: 0, or -1 when resolverd could not answer (defer); dests valid during the call only. */
typedef void (*mc_resolver_expand_cb)(void *arg, int err, const struct mc_dest *dests, unsigned n);

/* One mail exchanger of an RES_MX answer; everything valid during the callback only. */
struct mc_mx_host {
	const char *name;             /* the host name (the domain itself for an implicit MX) */
	uint32_t pref;                /* MX preference (0 for an implicit MX) */
	unsigned naddr;
	const char *const *addrs;     /* address literals ("192.0.2.1", "2001:db8::1"), in the order to try */
};
/* r: MC_MX_OK with n >= 1 hosts in the order to try, else n == 0; detail: short human text for a log or DSN. */
typedef void (*mc_resolver_mx_cb)(void *arg, enum mc_mx_result r, const char *detail, const struct mc_mx_host *hosts,
				  unsigned n);

struct mc_resolver *mc_resolver_open(uv_loop_t *loop, const struct mc_config *cfg, enum mc_role my_role,
				     const char *my_name);
void mc_resolver_close(struct mc_resolver *r);
bool mc_resolver_is_up(const struct mc_resolver *r);

/* Each returns a handle for mc_resolver_cancel (never 0). */
uint32_t mc_resolver_rcpt(struct mc_resolver *r, const char *address, bool authenticated, mc_resolver_rcpt_cb cb,
			  void *arg);
uint32_t mc_resolver_auth(struct mc_resolver *r, const char *service, const char *client_ip, const char *user,
			  const char *password, mc_resolver_auth_cb cb, void *arg);
/* The same RES_AUTH, answered with the quota too (imapd: QUOTA of RFC 9208, mc_store_set_quota). */
uint32_t mc_resolver_auth_quota(struct mc_resolver *r, const char *service, const char *client_ip, const char *user,
				const char *password, mc_resolver_auth_quota_cb cb, void *arg);
uint32_t mc_resolver_expand(struct mc_resolver *r, const char *address, mc_resolver_expand_cb cb, void *arg);
/*
 * Mail exchangers of a domain with their addresses; family 0 any, 4 IPv4 only, 6 IPv6 only, with
 * MC_RESOLVER_MX_HOST_ONLY or'ed in for the name's own addresses without an MX lookup (a smarthost
 * written "[host]": one host, the name itself, pref 0; MC_MX_NOHOST when it has no address).
 */
#define MC_RESOLVER_MX_HOST_ONLY 0x10
uint32_t mc_resolver_mx(struct mc_resolver *r, const char *domain, int family, mc_resolver_mx_cb cb, void *arg);
void mc_resolver_cancel(struct mc_resolver *r, uint32_t handle);

/*
 * Server side (resolverd): the one place the RES_* payloads are read and
 * written, so the daemon never open-codes them. Request readers return -1
 * on a malformed request (the caller answers with mc_chan_reply_error or
 * drops it); reply writers return mc_chan_reply()'s result.
 */
#define MC_RES_SERVICE_MAX 16
#define MC_RES_IP_MAX 64
#define MC_RES_USER_MAX 512
#define MC_RES_PASSWORD_MAX 1024
/* The most destinations one RES_EXPAND answer may carry (also bounded by the frame size). */
#define MC_RESOLVER_EXPAND_MAX 4096
/* Bounds of one RES_MX answer: hosts, addresses per host, the lengths of a name and a literal. */
#define MC_RESOLVER_MX_HOSTS_MAX 32
#define MC_RESOLVER_MX_ADDRS_MAX 16
#define MC_RES_DOMAIN_MAX 256         /* a domain name in text, with its NUL */
#define MC_RES_ADDRLIT_MAX 64
#define MC_RES_DETAIL_MAX 256

struct mc_resolver_auth_req {
	char service[MC_RES_SERVICE_MAX];    /* "smtp", "pop3", "imap" */
	char client_ip[MC_RES_IP_MAX];
	char user[MC_RES_USER_MAX];
	char password[MC_RES_PASSWORD_MAX];  /* the caller wipes it (explicit_bzero) after use */
};

/* RES_RCPT request: the address into addr[sz], and whether the client authenticated. */
int mc_resolver_req_rcpt(struct mc_msg *m, char *addr, size_t sz, bool *authenticated);
/* RES_AUTH request. */
int mc_resolver_req_auth(struct mc_msg *m, struct mc_resolver_auth_req *req);
/* RES_EXPAND request: the address into addr[sz]. */
int mc_resolver_req_expand(struct mc_msg *m, char *addr, size_t sz);
/* RES_MX request: the domain into domain[sz], the family (0, 4 or 6, perhaps | MC_RESOLVER_MX_HOST_ONLY;
 * anything else is malformed). */
int mc_resolver_req_mx(struct mc_msg *m, char *domain, size_t sz, int *family);
/* RES_RCPT reply (canonical NULL is sent as ""). */
int mc_resolver_reply_rcpt(struct mc_chan *ch, uint32_t reqid, enum mc_rcpt_result r, const char *canonical);
/* RES_AUTH reply (canonical and mailbox NULL are sent as ""). */
int mc_resolver_reply_auth(struct mc_chan *ch, uint32_t reqid, enum mc_auth_result r, const char *canonical,
			   const char *mailbox);
/* RES_AUTH reply with the account's quota in bytes (0 = none) after the mailbox. */
int mc_resolver_reply_auth_quota(struct mc_chan *ch, uint32_t reqid, enum mc_auth_result r, const char *canonical,
				 const char *mailbox, uint64_t quota);
/* RES_EXPAND reply with n destinations. */
int mc_resolver_reply_expand(struct mc_chan *ch, uint32_t reqid, const struct mc_dest *d, unsigned n);

/* RES_MX reply; hosts beyond the bounds above are not sent (detail NULL is sent as ""). */
int mc_resolver_reply_mx(struct mc_chan *ch, uint32_t reqid, enum mc_mx_result r, const char *detail,
			 const struct mc_mx_host *hosts, unsigned n);

#endif
