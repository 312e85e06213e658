/*
 * lookup.c - resolverd's directory answers: RES_RCPT (is this a recipient
 * we accept?) and RES_EXPAND (where does mail for this address go?).
 *
 * Called from main.c's request table on the event loop. Reads the
 * directory live (mail/directory.c), so a change made by `postern user`
 * is answered at once. A database error is never a "no": RES_RCPT answers
 * MC_RCPT_TEMPFAIL (smtpd says 451) and RES_EXPAND an error reply (queued
 * defers). Owns nothing but the reply it builds.
 */
#include "mail/resolver_client.h"
#include "resolverd/resolverd.h"
#include "util/log.h"

#include <string.h>

/* Longest address a peer may ask about: an SMTP path (RFC 5321 §4.5.3.1.3) with room for quoting. */
#define ADDR_IN_MAX 512

void
lookup_rcpt(struct resolverd *rd, struct mc_chan *ch, struct mc_msg *m)
{
	char address[ADDR_IN_MAX + 1], canonical[ADDR_IN_MAX + 1];
	bool authenticated;
	if (mc_resolver_req_rcpt(m, address, sizeof(address), &authenticated) < 0) {
		resolverd_bad_request(ch, m, "malformed RES_RCPT");
		return;
	}
	enum mc_rcpt_result r = mc_dir_rcpt(rd->dir, address, canonical, sizeof(canonical));
	if (mc_trace_on(MC_TRACE_PROTO)) {
		char clean[200];
		mc_trace(MC_TRACE_PROTO, "rcpt address=<%s> result=%d from=%s",
			 mc_log_clean(clean, sizeof(clean), canonical, strlen(canonical)), (int)r,
			 mc_chan_peer_name(ch));
	}
	mc_resolver_reply_rcpt(ch, m->reqid, r, canonical);
}

void
lookup_expand(struct resolverd *rd, struct mc_chan *ch, struct mc_msg *m)
{
	char address[ADDR_IN_MAX + 1];
	if (mc_resolver_req_expand(m, address, sizeof(address)) < 0) {
		resolverd_bad_request(ch, m, "malformed RES_EXPAND");
		return;
	}
	unsigned n = 0;
	if (mc_dir_expand(rd->dir, address, rd->dests, MC_DIR_EXPAND_MAX, &n) < 0) {
		/* mc_dir_expand logged why. */
		mc_chan_reply_error(ch, m->reqid, m->type, 451, "the directory could not expand the address");
		return;
	}
	if (mc_trace_on(MC_TRACE_PROTO)) {
		char clean[200];
		mc_trace(MC_TRACE_PROTO, "expand address=<%s> destinations=%u from=%s",
			 mc_log_clean(clean, sizeof(clean), address, strlen(address)), n, mc_chan_peer_name(ch));
	}
	mc_resolver_reply_expand(ch, m->reqid, rd->dests, n);
}
