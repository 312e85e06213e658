/*
 * chan.c - IPC channels: framed messages over Unix-domain stream sockets on
 * libuv (see chan.h).
 *
 * Called by every daemon and the postern tool, through the mail tier's
 * clients (mail/resolver_client.c, mail/queue_client.c) and servers. It
 * owns the sockets, the per-connection buffers, the descriptors in flight
 * and the table of pending calls. It knows nothing about mail: the
 * catalogue (message types, roles, the role check) comes in as a struct
 * mc_chan_proto, whose type 1 is the HELLO handled here.
 *
 * Sockets are raw (socket/connect/accept4, SOCK_NONBLOCK|SOCK_CLOEXEC)
 * watched by a uv_poll_t, because descriptors travel as SCM_RIGHTS with
 * sendmsg/recvmsg, which uv_pipe_t cannot do for files. A frame's
 * descriptors are sent with the first byte of that frame; the kernel may
 * deliver them with any read up to that byte, so received descriptors wait
 * in a per-connection queue and each complete frame takes as many as it
 * has MC_F_FD fields. Descriptors nobody can claim are closed.
 *
 * Lifetimes, in the libuv manner: a channel's memory lives until the close
 * callbacks of all its handles have run, so a callback may close its own
 * channel (or its server) and the code that called it only checks a
 * generation counter before going on. Callbacks never run inside an API
 * call: failures noticed while sending (a broken pipe, a peer that stopped
 * reading) are handled from a zero timer, and calls made while the channel
 * is down fail from that timer too.
 *
 * on_down runs once for each connection that was up, before an accepted
 * channel (or a connect_once client, even if it never came up) is freed,
 * after its pending calls have failed; a reconnecting client gets it on
 * every loss. A client closed by its owner with mc_chan_close() gets no
 * on_down (the owner knows); an accepted channel closed by a handler or by
 * mc_chan_server_close() still does, from the loop, so per-peer state is
 * released in one place.
 *
 * Never: trusts a length or a descriptor count from a peer, blocks, runs a
 * handler for a type the peer's role may not send, or crashes on input.
 */
#include "util/chan.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define HELLO_TYPE 1
#define NAME_LEN 64
#define OUT_MAX (64u * 1024u * 1024u)   /* a peer that never reads is dropped past this */
#define READ_CHUNK 65536
#define READS_PER_WAKEUP 16             /* fairness between channels on one loop */
#define IN_FDS_MAX (4 * MC_MSG_MAX_FDS)
#define IOV_MAX_ 64
#define BACKOFF_MIN 100
#define BACKOFF_MAX 5000
#define DEFAULT_TIMEOUT 30000
#define HELLO_TIMEOUT 10000             /* a peer that connects and says nothing is dropped */
#define NBUCKETS 256
#define SUN_PATH_LEN sizeof(((struct sockaddr_un *)0)->sun_path)

struct pending {
	struct pending *hnext;        /* reqid bucket chain */
	struct pending *prev, *next;  /* ordered by deadline */
	uint64_t deadline;            /* uv_now() milliseconds */
	uint32_t reqid;
	uint16_t type;
	bool dead;                    /* made while down: fails with ECLOSED when due */
	mc_chan_reply_cb cb;
	void *arg;
};

struct outframe {
	struct outframe *next;
	struct mc_buf b;              /* header + payload */
	size_t off;                   /* bytes already sent */
	int fds[MC_MSG_MAX_FDS];      /* sent with the frame's first byte, then closed */
	size_t nfds;
};

enum chan_kind { CHAN_ACCEPTED, CHAN_CLIENT, CHAN_ONCE };
enum conn_state { CONN_NONE, CONN_CONNECTING, CONN_HELLO, CONN_UP };

struct mc_chan {
	uv_loop_t *loop;
	enum chan_kind kind;
	const struct mc_chan_proto *proto;
	uint32_t my_role;
	char my_name[NAME_LEN];
	struct mc_chan_cbs cbs;
	void *arg;
	void *data;
	char label[NAME_LEN];         /* the socket's file name, first word of every log line */
	char path[SUN_PATH_LEN];

	struct mc_chan_server *srv;   /* accepted: the server it belongs to until closed */
	struct mc_chan *snext, *sprev;

	/* The current connection. */
	int fd;
	enum conn_state state;
	uv_poll_t poll;
	bool poll_open;               /* initialised, close callback not yet run */
	int poll_events;
	unsigned gen;                 /* bumped whenever a connection ends: callers re-check */
	bool broken;                  /* a send failed: drop the connection from the timer */
	uint64_t hello_deadline;      /* uv_now() by which the peer's HELLO must have come */
	struct mc_peer_cred cred;
	uint32_t peer_role;
	char peer_name[NAME_LEN];
	struct mc_buf in;
	int infds[IN_FDS_MAX];
	size_t ninfds;
	struct outframe *out_head, *out_tail;
	size_t out_bytes;

	/* Lifetime. */
	bool ever_up, down_done, user_closed, closing, freeing;
	bool outage_logged;
	unsigned backoff;
	int handles;                  /* handles whose close callback has not run */

	uv_timer_t timer;             /* the earliest deadline; deferred failures */
	uv_timer_t retry;             /* reconnect backoff */
	struct pending *buckets[NBUCKETS];
	struct pending *phead, *ptail;
	uint32_t next_reqid;
};

struct mc_chan_server {
	uv_loop_t *loop;
	int fd;
	uv_poll_t poll;
	char path[SUN_PATH_LEN];
	char label[NAME_LEN];
	dev_t dev;
	ino_t ino;
	const struct mc_chan_proto *proto;
	uint32_t my_role;
	char my_name[NAME_LEN];
	struct mc_chan_cbs cbs;
	void *arg;
	struct mc_chan *chans;
	size_t nchans;
	bool closing;
};

static void conn_lost(struct mc_chan *ch);
static void arm_timer(struct mc_chan *ch);
static int flush(struct mc_chan *ch);
static void poll_cb(uv_poll_t *h, int status, int events);

/* ---- names for logs ---- */

static const char *
tname(const struct mc_chan *ch, uint16_t type)
{
	if (type == 0 || type >= ch->proto->ntypes || ch->proto->type_name == NULL)
		return "?";
	return ch->proto->type_name(type);
}

static const char *
rname(const struct mc_chan_proto *proto, uint32_t role)
{
	const char *s = proto->role_name ? proto->role_name(role) : NULL;
	return s ? s : "?";
}

static void
set_label(char *label, const char *path)
{
	const char *slash = strrchr(path, '/');
	snprintf(label, NAME_LEN, "%s", slash ? slash + 1 : path);
}

/* ---- pending calls: a hash by reqid and a list by deadline ---- */

static struct pending *
pending_find(struct mc_chan *ch, uint32_t reqid)
{
	for (struct pending *p = ch->buckets[reqid % NBUCKETS]; p; p = p->hnext)
		if (p->reqid == reqid)
			return p;
	return NULL;
}

static void
pending_insert(struct mc_chan *ch, struct pending *p)
{
	p->hnext = ch->buckets[p->reqid % NBUCKETS];
	ch->buckets[p->reqid % NBUCKETS] = p;
	/* Deadlines mostly grow, so scanning from the tail is short. */
	struct pending *after = ch->ptail;
	while (after && after->deadline > p->deadline)
		after = after->prev;
	p->prev = after;
	p->next = after ? after->next : ch->phead;
	if (p->next)
		p->next->prev = p;
	else
		ch->ptail = p;
	if (after)
		after->next = p;
	else
		ch->phead = p;
}

static void
pending_remove(struct mc_chan *ch, struct pending *p)
{
	struct pending **pp = &ch->buckets[p->reqid % NBUCKETS];
	while (*pp != p)
		pp = &(*pp)->hnext;
	*pp = p->hnext;
	if (p->prev)
		p->prev->next = p->next;
	else
		ch->phead = p->next;
	if (p->next)
		p->next->prev = p->prev;
	else
		ch->ptail = p->prev;
	p->prev = p->next = p->hnext = NULL;
}

/* Fail every call pending now with ECLOSED; calls made by the callbacks stay for the timer. */
static void
fail_all(struct mc_chan *ch)
{
	struct pending *list = ch->phead;
	ch->phead = ch->ptail = NULL;
	memset(ch->buckets, 0, sizeof(ch->buckets));
	while (list) {
		struct pending *p = list;
		list = p->next;
		if (p->cb)
			p->cb(p->arg, NULL, MC_CHAN_ECLOSED);
		free(p);
	}
}

/* ---- handle lifetimes ---- */

static void
server_unlink(struct mc_chan *ch)
{
	struct mc_chan_server *srv = ch->srv;
	if (srv == NULL)
		return;
	if (ch->sprev)
		ch->sprev->snext = ch->snext;
	else
		srv->chans = ch->snext;
	if (ch->snext)
		ch->snext->sprev = ch->sprev;
	srv->nchans--;
	ch->srv = NULL;
	ch->snext = ch->sprev = NULL;
}

/* Fail what is still pending; the callbacks may make more calls, which fail here too. */
static void
fail_rest(struct mc_chan *ch)
{
	while (ch->phead) {
		struct pending *p = ch->phead;
		pending_remove(ch, p);
		if (p->cb)
			p->cb(p->arg, NULL, MC_CHAN_ECLOSED);
		free(p);
	}
}

static void
finish(struct mc_chan *ch)
{
	fail_rest(ch);
	if (ch->kind == CHAN_ACCEPTED && ch->ever_up && !ch->down_done) {
		ch->down_done = true;
		if (ch->cbs.on_down)
			ch->cbs.on_down(ch, ch->arg);
		fail_rest(ch);
	}
	mc_buf_free(&ch->in);
	free(ch);
}

static void
handle_closed(uv_handle_t *h)
{
	struct mc_chan *ch = h->data;
	if (--ch->handles == 0 && ch->freeing)
		finish(ch);
}

static void
begin_free(struct mc_chan *ch)
{
	if (ch->freeing)
		return;
	ch->freeing = true;
	ch->closing = true;
	uv_close((uv_handle_t *)&ch->timer, handle_closed);
	uv_close((uv_handle_t *)&ch->retry, handle_closed);
}

static void
drop_io(struct mc_chan *ch)
{
	while (ch->out_head) {
		struct outframe *f = ch->out_head;
		ch->out_head = f->next;
		for (size_t i = 0; i < f->nfds; i++)
			close(f->fds[i]);
		mc_buf_free(&f->b);
		free(f);
	}
	ch->out_tail = NULL;
	ch->out_bytes = 0;
	for (size_t i = 0; i < ch->ninfds; i++)
		close(ch->infds[i]);
	ch->ninfds = 0;
	mc_buf_free(&ch->in);
}

static void schedule_retry(struct mc_chan *ch);

static void
poll_closed(uv_handle_t *h)
{
	struct mc_chan *ch = h->data;
	close(ch->fd);
	ch->fd = -1;
	ch->poll_open = false;
	if (ch->closing)
		begin_free(ch);
	else if (ch->kind == CHAN_CLIENT)
		schedule_retry(ch);
	handle_closed(h);
}

/* End the current connection without any callback; the socket closes once libuv lets go of it. */
static void
conn_teardown(struct mc_chan *ch)
{
	if (ch->state == CONN_NONE)
		return;
	ch->state = CONN_NONE;
	ch->gen++;
	ch->broken = false;
	drop_io(ch);
	uv_poll_stop(&ch->poll);
	uv_close((uv_handle_t *)&ch->poll, poll_closed);
}

/* The connection is gone (seen from the loop): fail pending calls, tell the owner. */
static void
conn_lost(struct mc_chan *ch)
{
	if (ch->state == CONN_NONE)
		return;
	bool was_up = ch->state == CONN_UP;
	conn_teardown(ch);
	if (ch->kind != CHAN_CLIENT) {
		ch->closing = true;
		server_unlink(ch);
	}
	fail_all(ch);
	if (ch->kind == CHAN_ACCEPTED) {
		if (ch->ever_up && !ch->down_done) {
			ch->down_done = true;
			if (ch->cbs.on_down)
				ch->cbs.on_down(ch, ch->arg);
		}
	} else if ((was_up || ch->kind == CHAN_ONCE) && !ch->user_closed && !ch->down_done) {
		if (ch->kind == CHAN_ONCE)
			ch->down_done = true;
		if (ch->cbs.on_down)
			ch->cbs.on_down(ch, ch->arg);
	}
	arm_timer(ch);
}

/* ---- timers ---- */

static void
timer_cb(uv_timer_t *t)
{
	struct mc_chan *ch = t->data;
	uint64_t now = uv_now(ch->loop);
	if (ch->broken && ch->state != CONN_NONE)
		conn_lost(ch);
	if ((ch->state == CONN_HELLO || ch->state == CONN_CONNECTING) && now >= ch->hello_deadline) {
		mc_warn("%s: peer pid=%d sent no HELLO in time, closing", ch->label, (int)ch->cred.pid);
		conn_lost(ch);
	}
	while (ch->phead && ch->phead->deadline <= now && !ch->freeing) {
		struct pending *p = ch->phead;
		pending_remove(ch, p);
		if (!p->dead)
			mc_warn("%s: %s reqid=%u to peer %s: no reply in time", ch->label, tname(ch, p->type), p->reqid,
				ch->peer_name);
		if (p->cb)
			p->cb(p->arg, NULL, p->dead ? MC_CHAN_ECLOSED : MC_CHAN_ETIMEDOUT);
		free(p);
	}
	arm_timer(ch);
}

static void
arm_timer(struct mc_chan *ch)
{
	if (ch->freeing)
		return;
	if (ch->broken) {
		uv_timer_start(&ch->timer, timer_cb, 0, 0);
		return;
	}
	bool waiting_hello = ch->state == CONN_HELLO || ch->state == CONN_CONNECTING;
	if (ch->phead == NULL && !waiting_hello) {
		uv_timer_stop(&ch->timer);
		return;
	}
	uint64_t now = uv_now(ch->loop);
	uint64_t d = ch->phead ? ch->phead->deadline : ch->hello_deadline;
	if (waiting_hello && ch->hello_deadline < d)
		d = ch->hello_deadline;
	uv_timer_start(&ch->timer, timer_cb, d > now ? d - now : 0, 0);
}

/* A send failed where no callback may run: finish the connection from the loop. */
static void
mark_broken(struct mc_chan *ch)
{
	if (ch->state == CONN_NONE)
		return;
	ch->broken = true;
	arm_timer(ch);
}

/* ---- output ---- */

static void
update_poll(struct mc_chan *ch)
{
	if (ch->state == CONN_NONE || !ch->poll_open)
		return;
	int ev;
	if (ch->state == CONN_CONNECTING)
		ev = UV_WRITABLE;
	else
		ev = UV_READABLE | UV_DISCONNECT | (ch->out_head ? UV_WRITABLE : 0);
	if (ev == ch->poll_events)
		return;
	ch->poll_events = ev;
	uv_poll_start(&ch->poll, ev, poll_cb);
}

/* Queue m (consumed) for sending and try to send now. -1 if it cannot be queued. */
static int
enqueue(struct mc_chan *ch, struct mc_msg *m)
{
	int nfd = mc_msg_count_fds(m);
	if (m->err || nfd < 0 || (size_t)nfd != m->nfds) {
		mc_error("%s: not sending %s: the message was built wrong", ch->label, tname(ch, m->type));
		mc_msg_free(m);
		return -1;
	}
	struct outframe *f = calloc(1, sizeof(*f));
	if (f == NULL)
		mc_panic("%s: out of memory queueing a frame", ch->label);
	mc_buf_init(&f->b, 0);
	if (mc_msg_encode(m, &f->b) < 0)
		mc_panic("%s: cannot encode %s", ch->label, tname(ch, m->type));
	for (size_t i = 0; i < m->nfds; i++) {
		f->fds[i] = m->fds[i];
		m->fds[i] = -1;
	}
	f->nfds = m->nfds;
	m->nfds = 0;
	if (mc_trace_on(MC_TRACE_IPC))
		mc_trace(MC_TRACE_IPC, "%s: > %s reqid=%u flags=%u len=%zu fds=%zu peer=%s", ch->label,
			 tname(ch, m->type), m->reqid, m->flags, f->b.len, f->nfds, ch->peer_name);
	mc_msg_free(m);

	if (ch->out_bytes + f->b.len > OUT_MAX) {
		mc_warn("%s: peer %s pid=%d is not reading: %zu bytes queued, closing", ch->label, ch->peer_name,
			(int)ch->cred.pid, ch->out_bytes);
		for (size_t i = 0; i < f->nfds; i++)
			close(f->fds[i]);
		mc_buf_free(&f->b);
		free(f);
		mark_broken(ch);
		return -1;
	}
	ch->out_bytes += f->b.len;
	if (ch->out_tail)
		ch->out_tail->next = f;
	else
		ch->out_head = f;
	ch->out_tail = f;
	if (flush(ch) < 0)
		mark_broken(ch);
	return 0;
}

/* Send what the socket takes now. -1 on a socket error. */
static int
flush(struct mc_chan *ch)
{
	if (ch->broken || (ch->state != CONN_HELLO && ch->state != CONN_UP))
		return 0;
	while (ch->out_head) {
		struct iovec iov[IOV_MAX_];
		int niov = 0;
		struct outframe *head = ch->out_head;
		bool with_fds = head->nfds > 0;
		/* A frame carrying descriptors starts its own sendmsg, so they go with its first byte. */
		for (struct outframe *f = head; f && niov < IOV_MAX_; f = f->next) {
			if (niov > 0 && f->nfds > 0)
				break;
			iov[niov].iov_base = f->b.data + f->off;
			iov[niov].iov_len = f->b.len - f->off;
			niov++;
		}
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int) * MC_MSG_MAX_FDS)];
		} cbuf;
		struct msghdr mh;
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = iov;
		mh.msg_iovlen = (size_t)niov;
		if (with_fds) {
			memset(&cbuf, 0, sizeof(cbuf));
			mh.msg_control = cbuf.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * head->nfds);
			struct cmsghdr *c = &cbuf.h;
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * head->nfds);
			memcpy(CMSG_DATA(c), head->fds, sizeof(int) * head->nfds);
		}
		ssize_t n = sendmsg(ch->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			mc_info("%s: send to peer %s pid=%d: %s", ch->label, ch->peer_name, (int)ch->cred.pid,
				strerror(errno));
			return -1;
		}
		if (with_fds) {
			/* The kernel holds its own references now. */
			for (size_t i = 0; i < head->nfds; i++)
				close(head->fds[i]);
			head->nfds = 0;
		}
		size_t left = (size_t)n;
		while (left > 0 && ch->out_head) {
			struct outframe *f = ch->out_head;
			size_t k = f->b.len - f->off;
			if (k > left)
				k = left;
			f->off += k;
			left -= k;
			if (f->off == f->b.len) {
				ch->out_head = f->next;
				if (ch->out_head == NULL)
					ch->out_tail = NULL;
				ch->out_bytes -= f->b.len;
				mc_buf_free(&f->b);
				free(f);
			}
		}
	}
	update_poll(ch);
	return 0;
}

static void
send_hello(struct mc_chan *ch)
{
	struct mc_msg m;
	mc_msg_init(&m, HELLO_TYPE);
	mc_msg_put_u32(&m, ch->proto->version);
	mc_msg_put_u32(&m, ch->my_role);
	mc_msg_put_str(&m, ch->my_name);
	enqueue(ch, &m);
}

/* ---- input ---- */

static int
on_hello(struct mc_chan *ch, struct mc_msg *m)
{
	uint32_t version = 0, role = 0;
	const char *name = NULL;
	size_t namelen = 0;
	char who[NAME_LEN] = "?";

	int vok = mc_msg_get_u32(m, &version);
	mc_msg_get_u32(m, &role);
	if (mc_msg_get_strref(m, &name, &namelen) == 0)
		mc_log_clean(who, sizeof(who), name, namelen);
	if (vok == 0 && version != ch->proto->version) {
		mc_warn("%s: refusing peer %s pid=%d: protocol version %u, ours %u", ch->label, who, (int)ch->cred.pid,
			version, ch->proto->version);
		return -1;
	}
	if (mc_msg_end(m) < 0 || namelen >= NAME_LEN) {
		mc_warn("%s: refusing peer %s pid=%d: malformed HELLO", ch->label, who, (int)ch->cred.pid);
		return -1;
	}
	if (role >= 32 || ch->proto->role_ok == NULL || !ch->proto->role_ok(role, &ch->cred)) {
		mc_warn("%s: refusing peer %s pid=%d uid=%u: may not act as role %s", ch->label, who, (int)ch->cred.pid,
			(unsigned)ch->cred.uid, rname(ch->proto, role));
		return -1;
	}
	memcpy(ch->peer_name, who, sizeof(who));
	ch->peer_role = role;
	if (ch->kind == CHAN_ACCEPTED)
		send_hello(ch);
	ch->state = CONN_UP;
	ch->ever_up = true;
	arm_timer(ch);
	ch->backoff = BACKOFF_MIN;
	if (ch->kind == CHAN_ACCEPTED)
		mc_debug("%s: peer %s pid=%d role=%s connected", ch->label, ch->peer_name, (int)ch->cred.pid,
			 rname(ch->proto, role));
	else
		mc_info("%s: connected to peer %s pid=%d role=%s", ch->label, ch->peer_name, (int)ch->cred.pid,
			rname(ch->proto, role));
	ch->outage_logged = false;
	if (ch->cbs.on_up)
		ch->cbs.on_up(ch, ch->arg);
	return 0;
}

static int
on_reply(struct mc_chan *ch, struct mc_msg *m)
{
	struct pending *p = pending_find(ch, m->reqid);
	if (p == NULL || p->dead) {
		mc_info("%s: dropping reply %s reqid=%u from peer %s: no pending call (cancelled or timed out)",
			ch->label, tname(ch, m->type), m->reqid, ch->peer_name);
		return 0;
	}
	if (p->type != m->type) {
		mc_warn("%s: peer %s pid=%d answered %s reqid=%u with %s, closing", ch->label, ch->peer_name,
			(int)ch->cred.pid, tname(ch, p->type), m->reqid, tname(ch, m->type));
		return -1;
	}
	pending_remove(ch, p);
	arm_timer(ch);
	if (p->cb)
		p->cb(p->arg, m, (m->flags & MC_MSG_F_ERROR) ? MC_CHAN_EREMOTE : MC_CHAN_OK);
	free(p);
	return 0;
}

/* Check one decoded frame and run its handler. -1: the peer broke the protocol (logged). */
static int
dispatch(struct mc_chan *ch, struct mc_msg *m)
{
	if (mc_trace_on(MC_TRACE_IPC))
		mc_trace(MC_TRACE_IPC, "%s: < %s reqid=%u flags=%u len=%zu fds=%zu peer=%s", ch->label,
			 tname(ch, m->type), m->reqid, m->flags, m->payload.len, m->nfds, ch->peer_name);
	if (ch->state != CONN_UP) {
		if (m->type != HELLO_TYPE || m->flags != 0) {
			mc_warn("%s: peer pid=%d sent type %u before HELLO, closing", ch->label, (int)ch->cred.pid,
				m->type);
			return -1;
		}
		return on_hello(ch, m);
	}
	if (m->type == 0 || m->type >= ch->proto->ntypes) {
		mc_warn("%s: peer %s pid=%d sent unknown message type %u, closing", ch->label, ch->peer_name,
			(int)ch->cred.pid, m->type);
		return -1;
	}
	if (m->flags & MC_MSG_F_REPLY)
		return on_reply(ch, m);
	if (m->type == HELLO_TYPE) {
		mc_warn("%s: peer %s pid=%d sent a second HELLO, closing", ch->label, ch->peer_name, (int)ch->cred.pid);
		return -1;
	}
	if ((ch->proto->allowed_roles[m->type] & (1u << ch->peer_role)) == 0) {
		mc_warn("%s: refusing %s from peer %s pid=%d role=%s: not allowed for that role, closing", ch->label,
			tname(ch, m->type), ch->peer_name, (int)ch->cred.pid, rname(ch->proto, ch->peer_role));
		return -1;
	}
	if (ch->cbs.on_msg)
		ch->cbs.on_msg(ch, m, ch->arg);
	return 0;
}

/* Decode and dispatch the complete frames in the input buffer. -1 when the connection ended. */
static int
process(struct mc_chan *ch)
{
	unsigned gen = ch->gen;
	size_t pos = 0;

	while (ch->gen == gen) {
		struct mc_msg m;
		size_t used = 0;
		int r = mc_msg_decode((const uint8_t *)ch->in.data + pos, ch->in.len - pos, MC_MSG_MAX_PAYLOAD, &m,
				      &used);
		if (r == 0)
			break;
		if (r < 0) {
			mc_warn("%s: malformed or oversized frame from peer %s pid=%d, closing", ch->label,
				ch->peer_name, (int)ch->cred.pid);
			conn_lost(ch);
			return -1;
		}
		pos += used;
		int nfd = mc_msg_count_fds(&m);
		if (nfd < 0 || nfd > MC_MSG_MAX_FDS || (size_t)nfd > ch->ninfds) {
			mc_warn("%s: malformed frame %s from peer %s pid=%d (fields or descriptors), closing",
				ch->label, tname(ch, m.type), ch->peer_name, (int)ch->cred.pid);
			mc_msg_free(&m);
			conn_lost(ch);
			return -1;
		}
		for (int i = 0; i < nfd; i++)
			mc_msg_attach_fd(&m, ch->infds[i]);
		memmove(ch->infds, ch->infds + nfd, (ch->ninfds - (size_t)nfd) * sizeof(int));
		ch->ninfds -= (size_t)nfd;
		int rc = dispatch(ch, &m);
		mc_msg_free(&m);
		if (rc < 0) {
			if (ch->gen == gen)
				conn_lost(ch);
			return -1;
		}
	}
	if (ch->gen != gen)
		return -1;
	mc_buf_consume(&ch->in, pos);
	if (ch->in.len == 0 && ch->ninfds > 0) {
		/* Descriptors come with their frame's first byte at the latest: nothing can claim these. */
		mc_warn("%s: peer %s pid=%d passed %zu descriptors no frame asked for; closed them", ch->label,
			ch->peer_name, (int)ch->cred.pid, ch->ninfds);
		for (size_t i = 0; i < ch->ninfds; i++)
			close(ch->infds[i]);
		ch->ninfds = 0;
	}
	return 0;
}

/* Queue the descriptors of one recvmsg. -1 if some were lost or too many arrived. */
static int
take_fds(struct mc_chan *ch, struct msghdr *mh)
{
	int rc = (mh->msg_flags & MSG_CTRUNC) ? -1 : 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0))
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (ch->ninfds < IN_FDS_MAX) {
				ch->infds[ch->ninfds++] = fd;
			} else {
				close(fd);
				rc = -1;
			}
		}
	}
	return rc;
}

static void
do_read(struct mc_chan *ch)
{
	for (int i = 0; i < READS_PER_WAKEUP && ch->state != CONN_NONE; i++) {
		size_t room = ch->in.max - ch->in.len;
		if (room > READ_CHUNK)
			room = READ_CHUNK;
		char *dst = mc_buf_reserve(&ch->in, room);
		if (room == 0 || dst == NULL) {
			mc_warn("%s: input from peer %s pid=%d overflows, closing", ch->label, ch->peer_name,
				(int)ch->cred.pid);
			conn_lost(ch);
			return;
		}
		struct iovec iov = { .iov_base = dst, .iov_len = room };
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int) * IN_FDS_MAX)];
		} cbuf;
		struct msghdr mh;
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = sizeof(cbuf.buf);
		ssize_t n = recvmsg(ch->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			mc_info("%s: receive from peer %s pid=%d: %s", ch->label, ch->peer_name, (int)ch->cred.pid,
				strerror(errno));
			conn_lost(ch);
			return;
		}
		int fdrc = take_fds(ch, &mh);
		if (n == 0) {
			if (ch->kind == CHAN_ACCEPTED)
				mc_debug("%s: peer %s pid=%d closed the connection", ch->label, ch->peer_name,
					 (int)ch->cred.pid);
			else
				mc_info("%s: peer %s pid=%d closed the connection", ch->label, ch->peer_name,
					(int)ch->cred.pid);
			conn_lost(ch);
			return;
		}
		mc_buf_commit(&ch->in, (size_t)n);
		if (fdrc < 0) {
			mc_warn("%s: peer %s pid=%d passed too many descriptors, closing", ch->label, ch->peer_name,
				(int)ch->cred.pid);
			conn_lost(ch);
			return;
		}
		if (process(ch) < 0)
			return;
	}
}

static void
read_cred(struct mc_chan *ch)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);
	memset(&ch->cred, 0, sizeof(ch->cred));
	ch->cred.uid = (uid_t)-1;
	ch->cred.gid = (gid_t)-1;
	if (getsockopt(ch->fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0 && len == sizeof(uc)) {
		ch->cred.pid = uc.pid;
		ch->cred.uid = uc.uid;
		ch->cred.gid = uc.gid;
	} else {
		mc_warn("%s: SO_PEERCRED: %s", ch->label, strerror(errno));
	}
	gid_t groups[32];
	len = sizeof(groups);
	gid_t *g = groups;
	if (getsockopt(ch->fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) < 0) {
		if (errno != ERANGE || (g = malloc(len)) == NULL) {
			len = 0;
			g = groups;
		} else if (getsockopt(ch->fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) < 0) {
			len = 0;
		}
	}
	size_t n = len / sizeof(gid_t);
	if (n > sizeof(ch->cred.groups) / sizeof(ch->cred.groups[0]))
		n = sizeof(ch->cred.groups) / sizeof(ch->cred.groups[0]);
	memcpy(ch->cred.groups, g, n * sizeof(gid_t));
	ch->cred.ngroups = n;
	if (g != groups)
		free(g);
}

/* The socket is connected: learn who is there and say HELLO. */
static void
conn_ready(struct mc_chan *ch)
{
	read_cred(ch);
	ch->state = CONN_HELLO;
	snprintf(ch->peer_name, sizeof(ch->peer_name), "?");
	/* A client speaks first; a server answers only a HELLO it accepted, so a refused peer never comes up. */
	if (ch->kind != CHAN_ACCEPTED)
		send_hello(ch);
	update_poll(ch);
}

static void
poll_cb(uv_poll_t *h, int status, int events)
{
	struct mc_chan *ch = h->data;
	if (ch->state == CONN_NONE)
		return;
	if (status < 0) {
		mc_info("%s: peer %s pid=%d: %s", ch->label, ch->peer_name, (int)ch->cred.pid, uv_strerror(status));
		conn_lost(ch);
		return;
	}
	if (ch->state == CONN_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(ch->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err != 0) {
			if (!ch->outage_logged)
				mc_warn("%s: cannot connect: %s; retrying", ch->label, strerror(err));
			ch->outage_logged = true;
			conn_lost(ch);
			return;
		}
		ch->poll_events = 0;
		conn_ready(ch);
		return;
	}
	unsigned gen = ch->gen;
	if ((events & UV_WRITABLE) && flush(ch) < 0) {
		conn_lost(ch);
		return;
	}
	if (ch->gen == gen && (events & (UV_READABLE | UV_DISCONNECT)))
		do_read(ch);
}

/* Watch fd as this channel's connection. -1 (fd closed) if libuv refuses it. */
static int
conn_start(struct mc_chan *ch, int fd, bool connecting)
{
	int r = uv_poll_init(ch->loop, &ch->poll, fd);
	if (r < 0) {
		mc_warn("%s: cannot watch socket: %s", ch->label, uv_strerror(r));
		close(fd);
		return -1;
	}
	ch->poll.data = ch;
	ch->poll_open = true;
	ch->poll_events = 0;
	ch->handles++;
	ch->fd = fd;
	ch->broken = false;
	ch->hello_deadline = uv_now(ch->loop) + HELLO_TIMEOUT;
	if (connecting) {
		ch->state = CONN_CONNECTING;
		update_poll(ch);
	} else {
		conn_ready(ch);
	}
	arm_timer(ch);
	return 0;
}

/* ---- clients ---- */

static int
open_connect(const char *path, bool *inprogress)
{
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	*inprogress = false;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno == EINPROGRESS) {
			*inprogress = true;
			return fd;
		}
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static void
retry_cb(uv_timer_t *t)
{
	struct mc_chan *ch = t->data;
	if (ch->closing || ch->state != CONN_NONE || ch->poll_open)
		return;
	bool inprogress;
	int fd = open_connect(ch->path, &inprogress);
	if (fd < 0) {
		if (!ch->outage_logged)
			mc_warn("%s: cannot connect: %s; retrying", ch->label, strerror(errno));
		else
			mc_debug("%s: cannot connect: %s; retrying in %u ms", ch->label, strerror(errno), ch->backoff);
		ch->outage_logged = true;
		schedule_retry(ch);
		return;
	}
	if (conn_start(ch, fd, inprogress) < 0)
		schedule_retry(ch);
}

static void
schedule_retry(struct mc_chan *ch)
{
	if (ch->closing || ch->kind != CHAN_CLIENT)
		return;
	uv_timer_start(&ch->retry, retry_cb, ch->backoff, 0);
	ch->backoff = ch->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : ch->backoff * 2;
}

static struct mc_chan *
chan_new(uv_loop_t *loop, enum chan_kind kind, const char *path, const struct mc_chan_proto *proto,
	 uint32_t my_role, const char *my_name, const struct mc_chan_cbs *cbs, void *arg)
{
	struct mc_chan *ch = calloc(1, sizeof(*ch));
	if (ch == NULL)
		mc_panic("chan: out of memory");
	ch->loop = loop;
	ch->kind = kind;
	ch->proto = proto;
	ch->my_role = my_role;
	snprintf(ch->my_name, sizeof(ch->my_name), "%s", my_name ? my_name : "");
	if (cbs)
		ch->cbs = *cbs;
	ch->arg = arg;
	snprintf(ch->path, sizeof(ch->path), "%s", path);
	set_label(ch->label, path);
	snprintf(ch->peer_name, sizeof(ch->peer_name), "?");
	ch->fd = -1;
	ch->state = CONN_NONE;
	ch->backoff = BACKOFF_MIN;
	ch->next_reqid = 1;
	mc_buf_init(&ch->in, MC_MSG_HDR_LEN + MC_MSG_MAX_PAYLOAD + READ_CHUNK);
	uv_timer_init(loop, &ch->timer);
	uv_timer_init(loop, &ch->retry);
	ch->timer.data = ch;
	ch->retry.data = ch;
	ch->handles = 2;
	return ch;
}

struct mc_chan *
mc_chan_connect(uv_loop_t *loop, const char *path, const struct mc_chan_proto *proto, uint32_t my_role,
		const char *my_name, const struct mc_chan_cbs *cbs, void *arg)
{
	if (strlen(path) >= SUN_PATH_LEN) {
		mc_error("%s: socket path too long", path);
		return NULL;
	}
	struct mc_chan *ch = chan_new(loop, CHAN_CLIENT, path, proto, my_role, my_name, cbs, arg);
	retry_cb(&ch->retry);
	return ch;
}

struct mc_chan *
mc_chan_connect_once(uv_loop_t *loop, const char *path, const struct mc_chan_proto *proto, uint32_t my_role,
		     const char *my_name, const struct mc_chan_cbs *cbs, void *arg)
{
	bool inprogress;
	int fd = open_connect(path, &inprogress);
	if (fd < 0)
		return NULL;
	struct mc_chan *ch = chan_new(loop, CHAN_ONCE, path, proto, my_role, my_name, cbs, arg);
	if (conn_start(ch, fd, inprogress) < 0) {
		/* Nothing ran yet; the caller sees a failure and the handles close from the loop. */
		ch->user_closed = true;
		begin_free(ch);
		errno = EIO;
		return NULL;
	}
	return ch;
}

void
mc_chan_close(struct mc_chan *ch)
{
	if (ch == NULL || ch->user_closed)
		return;
	ch->user_closed = true;
	ch->closing = true;
	ch->gen++;
	server_unlink(ch);
	if (ch->state != CONN_NONE)
		conn_teardown(ch);
	if (!ch->poll_open)
		begin_free(ch);
	/* else poll_closed() frees once libuv has let go of the socket. */
}

/* ---- servers ---- */

static void
server_poll_cb(uv_poll_t *h, int status, int events)
{
	struct mc_chan_server *srv = h->data;
	if (srv->closing)
		return;
	if (status < 0) {
		mc_warn("%s: accept: %s", srv->label, uv_strerror(status));
		return;
	}
	for (int i = 0; i < 64 && !srv->closing; i++) {
		int fd = accept4(srv->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED)
				mc_warn("%s: accept: %s", srv->label, strerror(errno));
			return;
		}
		struct mc_chan *ch = chan_new(srv->loop, CHAN_ACCEPTED, srv->path, srv->proto, srv->my_role,
					      srv->my_name, &srv->cbs, srv->arg);
		ch->srv = srv;
		ch->snext = srv->chans;
		if (srv->chans)
			srv->chans->sprev = ch;
		srv->chans = ch;
		srv->nchans++;
		if (conn_start(ch, fd, false) < 0)
			mc_chan_close(ch);
	}
}

struct mc_chan_server *
mc_chan_server_start(uv_loop_t *loop, const char *path, unsigned mode, const struct mc_chan_proto *proto,
		     uint32_t my_role, const char *my_name, const struct mc_chan_cbs *cbs, void *arg)
{
	struct sockaddr_un sun;
	struct stat st;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		mc_error("%s: socket path too long", path);
		return NULL;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			mc_error("%s: exists and is not a socket", path);
			return NULL;
		}
		unlink(path);
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		mc_error("%s: socket: %s", path, strerror(errno));
		return NULL;
	}
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || chmod(path, mode ? mode : 0660) < 0 ||
	    listen(fd, 128) < 0 || stat(path, &st) < 0) {
		mc_error("%s: cannot listen: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	struct mc_chan_server *srv = calloc(1, sizeof(*srv));
	if (srv == NULL)
		mc_panic("chan: out of memory");
	srv->loop = loop;
	srv->fd = fd;
	snprintf(srv->path, sizeof(srv->path), "%s", path);
	set_label(srv->label, path);
	srv->dev = st.st_dev;
	srv->ino = st.st_ino;
	srv->proto = proto;
	srv->my_role = my_role;
	snprintf(srv->my_name, sizeof(srv->my_name), "%s", my_name ? my_name : "");
	if (cbs)
		srv->cbs = *cbs;
	srv->arg = arg;
	int r = uv_poll_init(loop, &srv->poll, fd);
	if (r == 0)
		r = uv_poll_start(&srv->poll, UV_READABLE, server_poll_cb);
	if (r < 0) {
		mc_error("%s: cannot watch socket: %s", path, uv_strerror(r));
		unlink(path);
		close(fd);
		free(srv);
		return NULL;
	}
	srv->poll.data = srv;
	return srv;
}

static void
server_closed(uv_handle_t *h)
{
	struct mc_chan_server *srv = h->data;
	close(srv->fd);
	free(srv);
}

void
mc_chan_server_close(struct mc_chan_server *srv)
{
	struct stat st;
	if (srv == NULL || srv->closing)
		return;
	srv->closing = true;
	/* Remove our socket file, not one a newer instance has bound in its place. */
	if (lstat(srv->path, &st) == 0 && st.st_dev == srv->dev && st.st_ino == srv->ino)
		unlink(srv->path);
	while (srv->chans)
		mc_chan_close(srv->chans);
	uv_poll_stop(&srv->poll);
	uv_close((uv_handle_t *)&srv->poll, server_closed);
}

size_t
mc_chan_server_count(const struct mc_chan_server *srv)
{
	return srv ? srv->nchans : 0;
}

/* ---- accessors ---- */

bool
mc_chan_is_up(const struct mc_chan *ch)
{
	return ch != NULL && ch->state == CONN_UP && !ch->closing && !ch->broken;
}

uint32_t
mc_chan_peer_role(const struct mc_chan *ch)
{
	return ch->peer_role;
}

const struct mc_peer_cred *
mc_chan_peer_cred(const struct mc_chan *ch)
{
	return &ch->cred;
}

const char *
mc_chan_peer_name(const struct mc_chan *ch)
{
	return ch->peer_name;
}

void
mc_chan_set_data(struct mc_chan *ch, void *data)
{
	ch->data = data;
}

void *
mc_chan_get_data(const struct mc_chan *ch)
{
	return ch->data;
}

/* ---- sending ---- */

uint32_t
mc_chan_call(struct mc_chan *ch, struct mc_msg *m, unsigned timeout_ms, mc_chan_reply_cb cb, void *arg)
{
	struct pending *p = calloc(1, sizeof(*p));
	if (p == NULL)
		mc_panic("chan: out of memory");
	do {
		p->reqid = ch->next_reqid++;
		if (ch->next_reqid == 0)
			ch->next_reqid = 1;
	} while (p->reqid == 0 || pending_find(ch, p->reqid) != NULL);
	p->type = m->type;
	p->cb = cb;
	p->arg = arg;
	p->deadline = uv_now(ch->loop) + (timeout_ms ? timeout_ms : DEFAULT_TIMEOUT);
	if (!mc_chan_is_up(ch)) {
		mc_msg_free(m);
		p->dead = true;
		p->deadline = uv_now(ch->loop);
		pending_insert(ch, p);
		arm_timer(ch);
		return p->reqid;
	}
	m->reqid = p->reqid;
	m->flags = 0;
	pending_insert(ch, p);
	if (enqueue(ch, m) < 0 && !ch->broken) {
		/* A message built wrong: fail the call like a lost connection, from the loop. */
		p->dead = true;
		pending_remove(ch, p);
		p->deadline = uv_now(ch->loop);
		pending_insert(ch, p);
	}
	arm_timer(ch);
	return p->reqid;
}

void
mc_chan_cancel(struct mc_chan *ch, uint32_t reqid)
{
	if (ch == NULL || reqid == 0)
		return;
	struct pending *p = pending_find(ch, reqid);
	if (p == NULL)
		return;
	pending_remove(ch, p);
	free(p);
	arm_timer(ch);
}

int
mc_chan_send(struct mc_chan *ch, struct mc_msg *m)
{
	if (!mc_chan_is_up(ch)) {
		mc_msg_free(m);
		return -1;
	}
	m->flags = MC_MSG_F_NOREPLY;
	m->reqid = 0;
	return enqueue(ch, m);
}

int
mc_chan_reply(struct mc_chan *ch, uint32_t reqid, struct mc_msg *m)
{
	if (!mc_chan_is_up(ch) || reqid == 0) {
		mc_msg_free(m);
		return -1;
	}
	m->flags = (uint16_t)(MC_MSG_F_REPLY | (m->flags & MC_MSG_F_ERROR));
	m->reqid = reqid;
	return enqueue(ch, m);
}

int
mc_chan_reply_error(struct mc_chan *ch, uint32_t reqid, uint16_t type, uint32_t code, const char *text)
{
	struct mc_msg m;
	mc_msg_init(&m, type);
	m.flags = MC_MSG_F_ERROR;
	mc_msg_put_u32(&m, code);
	mc_msg_put_str(&m, text);
	return mc_chan_reply(ch, reqid, &m);
}

int
mc_chan_error_parse(struct mc_msg *m, uint32_t *code, char *text, size_t textsz)
{
	const char *p = NULL;
	size_t n = 0;
	*code = 0;
	if (textsz)
		text[0] = '\0';
	if (mc_msg_get_u32(m, code) < 0 || mc_msg_get_strref(m, &p, &n) < 0 || mc_msg_end(m) < 0)
		return -1;
	/* The text may reach a network client as it is: no control characters. */
	mc_log_clean(text, textsz, p, n);
	return 0;
}
