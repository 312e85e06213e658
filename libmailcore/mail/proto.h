/*
 * proto.h - the catalogue: every IPC message type Postern's processes
 * exchange, declared once with the roles allowed to send it.
 *
 * The enum, the names in logs and the allowed-sender masks are generated
 * from MC_MSG_LIST; util/chan.c checks the sender's role against the mask
 * before any handler runs. A reply travels with its request's type and
 * MC_MSG_F_REPLY, and is allowed from the role that serves the request.
 *
 * Payloads (fields in order; "*" = repeated) are documented next to each
 * type; the functions that build and read them live beside the clients
 * (mail/resolver_client.c, mail/queue_client.c, mail/envelope.c) and the
 * servers, never open-coded by callers.
 *
 * Roles are proved, not believed: role_ok() accepts a claimed role only
 * from the uid that role runs as (or, in a single-user instance where
 * every daemon runs as one uid, from that uid); ADMIN from root, the
 * admin group, or the instance's own uid.
 */
#ifndef MC_PROTO_H
#define MC_PROTO_H

#include <stdbool.h>
#include <stdint.h>

#include "util/chan.h"
#include "util/config.h"

#define MC_PROTO_VERSION 1

enum mc_role {
	MC_ROLE_NONE = 0,
	MC_ROLE_SMTPD,
	MC_ROLE_QUEUED,
	MC_ROLE_RESOLVERD,
	MC_ROLE_POP3D,
	MC_ROLE_IMAPD,
	MC_ROLE_ADMIN,       /* the postern tool run by an administrator */
	MC_ROLE_SUPERVISOR,  /* postern up */
	MC_ROLE_COUNT
};

#define R(x) (1u << MC_ROLE_##x)
#define R_ANY_DAEMON (R(SMTPD) | R(QUEUED) | R(RESOLVERD) | R(POP3D) | R(IMAPD))
#define R_OPS (R(ADMIN) | R(SUPERVISOR))

/*
 * X(NAME, allowed sender roles)
 */
#define MC_MSG_LIST(X)                                                                                       \
	/* Channel handshake, handled inside chan.c: u32 version, u32 role, str name. */                     \
	X(HELLO, ~0u)                                                                                          \
                                                                                                               \
	/* resolverd: is this a recipient we accept? req: str address, u32 authenticated.                  \
	 * reply: u32 mc_rcpt_result, str canonical address (lowercased domain, +tag kept). */              \
	X(RES_RCPT, R(SMTPD) | R(QUEUED))                                                                     \
	/* resolverd: check credentials. req: str service ("smtp","pop3","imap"), str client ip,           \
	 * str username, str password. reply: u32 mc_auth_result, str canonical address,                   \
	 * str mailbox path (state_dir/mail/DOMAIN/LOCAL). Slowed and refused by the guard. */              \
	X(RES_AUTH, R(SMTPD) | R(POP3D) | R(IMAPD))                                                           \
	/* resolverd: expand an address for delivery (aliases, +tag, catch-all).                         \
	 * req: str address. reply: u32 n, then n * (u32 mc_dest_kind, str address, str mailbox path). */  \
	X(RES_EXPAND, R(QUEUED))                                                                              \
	/* resolverd: where to deliver mail for a domain (DNS: MX, else implicit MX; A/AAAA of each host).   \
	 * req: str domain, u32 family (0 any, 4 IPv4 only, 6 IPv6 only; | 0x10: no MX, the name's own   \
	 * addresses). reply: u32 mc_mx_result,                                                              \
	 * str detail (short, sanitized), u32 n, then n * (str host, u32 preference, u32 naddr,            \
	 * naddr * str address literal); hosts and addresses in the order to try. */                       \
	X(RES_MX, R(QUEUED))                                                                                  \
                                                                                                               \
	/* queued: open a new body file. req: u64 size hint (0: unknown), str client description.          \
	 * reply: str queue id, fd (write-only body file). Error reply code 452 (no space) or 451. */      \
	X(Q_SUBMIT_BEGIN, R(SMTPD))                                                                           \
	/* queued: make it durable. req: an envelope (mail/envelope.h). reply: empty = committed. */        \
	X(Q_SUBMIT_COMMIT, R(SMTPD))                                                                          \
	/* queued: forget an unfinished submission. notice: str queue id. */                                 \
	X(Q_SUBMIT_ABORT, R(SMTPD))                                                                           \
	/* imapd: a mailbox changed (for IDLE). notice: str canonical address, str mailbox name,             \
	 * then (optional) str the store's path as resolverd gave it, which imapd matches sessions by. */  \
	X(MBOX_CHANGED, R(QUEUED) | R(IMAPD) | R(POP3D))                                                      \
	/* The imapd master to its workers over run_dir/imapd.sock (imapd/procs.c): reload as CTL_RELOAD     \
	 * does. notice: nothing, or fd cert, fd key (the files the master's reload was given). */           \
	X(IMAPD_RELOAD, R(IMAPD))                                                                             \
                                                                                                               \
	/* Every daemon's control socket. */                                                                   \
	/* reply: str name, u32 pid, u64 started (unix time), u32 connections, str state. */                 \
	X(CTL_STATUS, R_OPS)                                                                                   \
	/* Re-read config and certificate. req: nothing, or fd cert, fd key (both: the [global]                \
	 * tls_cert and tls_key files of the config as it reads now, opened by the requester, for a            \
	 * daemon that cannot open them after its drop). reply: empty, or error with the reason the new        \
	 * config was refused (a certificate that does not load is logged and the old one kept). */            \
	X(CTL_RELOAD, R_OPS)                                                                                   \
	/* req: str trace names ("ipc,proto", "none"). reply: empty. */                                      \
	X(CTL_TRACE, R_OPS)                                                                                    \
	/* req: str level. reply: empty. */                                                                    \
	X(CTL_LOGLEVEL, R_OPS)                                                                                 \
                                                                                                               \
	/* The supervisor's socket (run_dir/postern.ctl). */                                                   \
	/* reply: u32 n, then n * (str service, u32 pid (0: not running), u64 started, u32 restarts,           \
	 * str state). */                                                                                      \
	X(SUP_STATUS, R(ADMIN))                                                                                \
	/* req: str service. reply: empty once the new process runs. */                                      \
	X(SUP_RESTART, R(ADMIN))                                                                               \
	/* Stop the whole instance. reply: empty, before stopping. */                                         \
	X(SUP_STOP, R(ADMIN))                                                                                  \
	/* CTL_RELOAD to every daemon, the certificate files passed when the supervisor can open them.         \
	 * reply: empty, or error "NAME: why; NAME: why" for the daemons that refused or did not answer. */    \
	X(SUP_RELOAD, R(ADMIN))                                                                                \
                                                                                                               \
	/* queued's control socket (run_dir/queued.ctl), `postern queue ...`; payloads in                      \
	 * mail/queue_ctl.h. A page of the listing. req: filter, str after (last qid seen), u32 max.           \
	 * reply: u32 n, n * entry, str next qid ("" at the end). */                                           \
	X(Q_CTL_LIST, R(ADMIN))                                                                                \
	/* One message. req: str qid, u32 body. reply: entry, envelope extras, headers, u32 n,                 \
	 * n * event (its history), and the body file (fd, read-only) when asked. */                           \
	X(Q_CTL_SHOW, R(ADMIN))                                                                                \
	/* Counts and sizes by destination domain and age. req: filter. reply: summary rows. */               \
	X(Q_CTL_SUMMARY, R(ADMIN))                                                                             \
	/* flush, hold, release, delete, bounce. req: u32 action, filter. reply: u32 matched,                  \
	 * u32 changed, u32 n, n * (str qid, str result). */                                                   \
	X(Q_CTL_ACT, R(ADMIN))                                                                                 \
	/* Stop or restart delivery. req: u32 pause. reply: u32 paused before. */                              \
	X(Q_CTL_PAUSE, R(ADMIN))                                                                               \
	/* Subscribe to queue events on this channel until it closes. req: nothing. reply: empty. */          \
	X(Q_CTL_WATCH, R(ADMIN))                                                                               \
	/* To a watcher. notice: u64 time (ms), str qid, str recipient, str what, str detail. */              \
	X(Q_CTL_EVENT, R(QUEUED))

enum mc_msg_type {
	MC_MSG_NONE_ = 0,
#define X(name, roles) MC_MSG_##name,
	MC_MSG_LIST(X)
#undef X
	MC_MSG_COUNT
};

enum mc_rcpt_result {
	MC_RCPT_LOCAL = 1,      /* a local user, alias or catch-all: accept */
	MC_RCPT_UNKNOWN = 2,    /* a local domain, but no such user: 550 5.1.1 */
	MC_RCPT_REMOTE = 3,     /* not a local domain: relay only when authenticated */
	MC_RCPT_TEMPFAIL = 4,   /* the directory could not answer: 451 4.3.0 */
};

enum mc_auth_result {
	MC_AUTH_OK = 1,
	MC_AUTH_FAIL = 2,       /* wrong user or password: one reply text for both */
	MC_AUTH_BLOCKED = 3,    /* too many failures from this address or for this account */
	MC_AUTH_TEMPFAIL = 4,
};

enum mc_dest_kind {
	MC_DEST_LOCAL = 1,      /* deliver into the mailbox at the given path */
	MC_DEST_REMOTE = 2,     /* relay to the address's domain */
	MC_DEST_UNKNOWN = 3,    /* no such user (bounce) */
};

enum mc_mx_result {
	MC_MX_OK = 1,           /* hosts with addresses, in the order to try */
	MC_MX_TEMPFAIL = 2,     /* SERVFAIL, timeout, refused, no usable answer: defer */
	MC_MX_NXDOMAIN = 3,     /* the domain does not exist: 5.1.2 */
	MC_MX_NULLMX = 4,       /* the domain accepts no mail (RFC 7505 "MX 0 ."): 5.1.10 */
	MC_MX_NOHOST = 5,       /* no MX and no A/AAAA, or no MX host has an address (permanent) */
};

/* The catalogue for util/chan.c. */
extern const struct mc_chan_proto mc_proto;

const char *mc_msg_type_name(uint16_t type);
const char *mc_role_name(uint32_t role);

/*
 * Tell role_ok() which uids the roles run as (looked up from the config's
 * users when running as root; all the same uid otherwise). Called once by
 * every process before it opens a channel.
 */
void mc_proto_set_identities(const struct mc_config *cfg);

/* Socket names in run_dir. */
#define MC_SOCK_QUEUED "queued.sock"
#define MC_SOCK_RESOLVERD "resolverd.sock"
#define MC_SOCK_IMAPD "imapd.sock"
#define MC_SOCK_SUPERVISOR "postern.ctl"
/* Control socket of daemon NAME: "NAME.ctl". */

#endif
