/*
 * resolverd.h - what resolverd's files share.
 *
 * resolverd answers the other daemons' questions on run_dir/resolverd.sock.
 * main.c is thin: it starts the socket, drops privileges, opens the
 * directory and routes each request type to the file that owns it through
 * a table (a new concern, such as DNS in dns.c, adds its rows there and its
 * state here):
 *   lookup.c   RES_RCPT, RES_EXPAND: the directory's answers
 *   auth.c     RES_AUTH: password checks on the libuv threadpool, held and
 *              refused by the guard
 *   guard.c    failure counting (guard.h)
 *   mx.c       RES_MX: MX hosts and their addresses, from dns.c's lookups
 *   dns.c      DNS with c-ares on the loop (dns.h); answers read (and MX
 *              records ordered) by dnsmsg.c, kept by dnscache.c
 * Everything runs on the one event loop except the password hashing that
 * auth.c hands to the threadpool.
 */
#ifndef RESOLVERD_H
#define RESOLVERD_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "mail/daemon.h"
#include "mail/directory.h"
#include "resolverd/guard.h"
#include "util/chan.h"
#include "util/msg.h"

struct auth_req;
struct dns;

struct resolverd {
	struct mc_daemon *d;
	struct mc_chan_server *srv;
	struct mc_dir *dir;

	/* auth.c */
	struct guard *guard;
	struct auth_req *auths;          /* checks in flight or held by the guard */
	unsigned nauths;
	unsigned nworking;               /* of which on the threadpool */
	char dummy_hash[384];            /* verified for unknown users, so timing tells nothing */

	/* lookup.c */
	struct mc_dest *dests;           /* MC_DIR_EXPAND_MAX, reused by every expansion */

	/* dns.c, mx.c */
	struct dns *dns;
};

/* lookup.c */
void lookup_rcpt(struct resolverd *rd, struct mc_chan *ch, struct mc_msg *m);
void lookup_expand(struct resolverd *rd, struct mc_chan *ch, struct mc_msg *m);

/* auth.c */
/* Make the guard and the dummy hash; -1 with err. */
int auth_init(struct resolverd *rd, char *err, size_t errsz);
void auth_request(struct resolverd *rd, struct mc_chan *ch, struct mc_msg *m);
/* The channel is gone: forget its pending answers (the checks still count). */
void auth_chan_down(struct resolverd *rd, struct mc_chan *ch);
/* New limits from a reloaded config. */
void auth_reload(struct resolverd *rd, const struct mc_config *cfg);
/* Stop: cancel what can be cancelled, close the timers; the rest ends as it finishes. */
void auth_stop(struct resolverd *rd);

/* dns.c, mx.c */
/* Start c-ares on the loop with the [resolverd] nameservers (or the system's); -1 with err. */
int dns_init(struct resolverd *rd, char *err, size_t errsz);
void dns_request(struct resolverd *rd, struct mc_chan *ch, struct mc_msg *m);
/* The channel is gone: its lookups finish unheard. */
void dns_chan_down(struct resolverd *rd, struct mc_chan *ch);
/* New nameservers and cache bounds; -1 with err when the new nameservers cannot be used (nothing changed). */
int dns_reload(struct resolverd *rd, const struct mc_config *newcfg, char *err, size_t errsz);
/* Stop: every lookup ends (unheard), the handles close. */
void dns_stop(struct resolverd *rd);
/* After the loop has ended. */
void dns_free(struct resolverd *rd);

/* main.c: answer a request whose payload was malformed (logged; the peer gets an error reply). */
void resolverd_bad_request(struct mc_chan *ch, struct mc_msg *m, const char *why);

#endif
