/*
 * chan.h - IPC channels between Postern processes: framed messages over
 * Unix-domain stream sockets on libuv.
 *
 * A server listens on a named socket in run_dir; clients connect to it and
 * keep reconnecting with backoff (100 ms doubling to 5 s) while it is away.
 * Every connection starts with a HELLO exchange: protocol version, the
 * sender's role and name. The server checks the claimed role against the
 * peer's SO_PEERCRED/SO_PEERGROUPS credentials through the protocol's
 * role_ok() hook, and a peer of another version is refused with a clear
 * log line. The client speaks first; the server answers with its own HELLO
 * only once it has accepted the client's, so a refused client never comes
 * up (the client checks the server's HELLO the same way). After that, every received frame's type is checked against the
 * catalogue's allowed sender roles before any handler runs. A malformed
 * frame, an oversized frame or a forbidden type closes that connection and
 * is logged; it never crashes the reader.
 *
 * Requests made with mc_chan_call() wait in a table keyed by request id,
 * each with a timeout; the callback runs exactly once: with the reply, or
 * with an error (timeout, connection lost). Descriptors travel with
 * SCM_RIGHTS: the channel does its own sendmsg/recvmsg on a uv_poll_t,
 * because uv_write2 passes only sockets and pipes.
 *
 * This is general-tier code: it knows nothing about mail. The catalogue of
 * message types and roles is given to it as a struct mc_chan_proto.
 */
#ifndef MC_CHAN_H
#define MC_CHAN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "util/msg.h"

struct mc_chan;
struct mc_chan_server;

/* Who is at the other end, as the kernel says. */
struct mc_peer_cred {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	gid_t groups[32];     /* supplementary groups (SO_PEERGROUPS) */
	size_t ngroups;
};

/* The protocol a channel speaks: given by the mail tier (mail/proto.c). Type 1 is the HELLO. */
struct mc_chan_proto {
	uint32_t version;
	uint16_t ntypes;                   /* valid types are 1..ntypes-1 */
	const uint32_t *allowed_roles;     /* per type: bit mask of roles (1u << role) that may send it */
	const char *(*type_name)(uint16_t type);
	const char *(*role_name)(uint32_t role);
	/* May a peer with these credentials claim this role? */
	bool (*role_ok)(uint32_t role, const struct mc_peer_cred *cred);
};

/* Error codes given to callbacks (negative) and carried in error replies (positive). */
enum mc_chan_err {
	MC_CHAN_OK = 0,
	MC_CHAN_ETIMEDOUT = -1,   /* no reply in time */
	MC_CHAN_ECLOSED = -2,     /* the connection went away (or was never up) */
	MC_CHAN_EREMOTE = -3,     /* the peer answered with MC_MSG_F_ERROR */
};

struct mc_chan_cbs {
	/*
	 * A request or notice arrived (the type is already checked against the
	 * sender's role). m is valid during the call only; take descriptors
	 * with mc_msg_get_fd to keep them.
	 */
	void (*on_msg)(struct mc_chan *ch, struct mc_msg *m, void *arg);
	/* The HELLO exchange completed (client: after every reconnect). */
	void (*on_up)(struct mc_chan *ch, void *arg);
	/*
	 * The connection is gone; pending calls have already failed with
	 * MC_CHAN_ECLOSED. Runs once for each connection that was up (for a
	 * connect_once client also when it never came up); an accepted or
	 * connect_once channel is freed after it returns. Not called for a
	 * client its owner closed with mc_chan_close(); called (from the loop)
	 * for an accepted channel closed by a handler or mc_chan_server_close(),
	 * so the server's cbs/arg must outlive the loop's close callbacks.
	 */
	void (*on_down)(struct mc_chan *ch, void *arg);
};

/* Reply callback of mc_chan_call: m is NULL when err < 0 (except EREMOTE: m holds code and text). */
typedef void (*mc_chan_reply_cb)(void *arg, struct mc_msg *m, int err);

/*
 * Listen on path (removing a stale socket first; mode 0660 unless mode is
 * given). Each accepted connection becomes an mc_chan with cbs/arg.
 */
struct mc_chan_server *mc_chan_server_start(uv_loop_t *loop, const char *path, unsigned mode,
					    const struct mc_chan_proto *proto, uint32_t my_role, const char *my_name,
					    const struct mc_chan_cbs *cbs, void *arg);
/* Stop listening and close every accepted connection. */
void mc_chan_server_close(struct mc_chan_server *srv);
size_t mc_chan_server_count(const struct mc_chan_server *srv);

/*
 * A client channel to path that connects now and reconnects with backoff
 * whenever the connection is lost, until mc_chan_close().
 */
struct mc_chan *mc_chan_connect(uv_loop_t *loop, const char *path, const struct mc_chan_proto *proto,
				uint32_t my_role, const char *my_name, const struct mc_chan_cbs *cbs, void *arg);
/* A client that tries once (for the command-line tool): returns -1 at once if the socket is absent. */
struct mc_chan *mc_chan_connect_once(uv_loop_t *loop, const char *path, const struct mc_chan_proto *proto,
				     uint32_t my_role, const char *my_name, const struct mc_chan_cbs *cbs,
				     void *arg);
/* Close a channel (client or accepted); pending calls fail with MC_CHAN_ECLOSED. */
void mc_chan_close(struct mc_chan *ch);

/* True once HELLO has been exchanged and the connection is up. */
bool mc_chan_is_up(const struct mc_chan *ch);
uint32_t mc_chan_peer_role(const struct mc_chan *ch);
const struct mc_peer_cred *mc_chan_peer_cred(const struct mc_chan *ch);
const char *mc_chan_peer_name(const struct mc_chan *ch);
/* Per-connection user data, for servers keeping state per peer. */
void mc_chan_set_data(struct mc_chan *ch, void *data);
void *mc_chan_get_data(const struct mc_chan *ch);

/*
 * Send m as a request and call cb once with the reply, or with an error
 * after timeout_ms (0: the default of 30 s). The message is consumed
 * (its payload sent, its descriptors passed and closed here) whatever the
 * outcome. When the channel is down, cb runs from the loop (never from
 * inside mc_chan_call) with ECLOSED. Returns the request id (never 0).
 */
uint32_t mc_chan_call(struct mc_chan *ch, struct mc_msg *m, unsigned timeout_ms, mc_chan_reply_cb cb, void *arg);
/* Forget a pending call (its callback will never run), e.g. when the session that made it ends. */
void mc_chan_cancel(struct mc_chan *ch, uint32_t reqid);
/* Send a one-way message (a notice); consumed. -1 if the channel is down. */
int mc_chan_send(struct mc_chan *ch, struct mc_msg *m);
/*
 * Answer the request with id reqid (m->type should be the request's type);
 * consumed. A handler may answer later than its on_msg call: it keeps the
 * reqid, and must forget it when on_down says the channel is gone (the
 * channel is freed after on_down returns).
 */
int mc_chan_reply(struct mc_chan *ch, uint32_t reqid, struct mc_msg *m);
/* Answer request reqid with an error code and a text. */
int mc_chan_reply_error(struct mc_chan *ch, uint32_t reqid, uint16_t type, uint32_t code, const char *text);
/* Read the code and text of an error reply. */
int mc_chan_error_parse(struct mc_msg *m, uint32_t *code, char *text, size_t textsz);

#endif
