/*
 * listen.c - TCP listeners for smtpd, pop3d and imapd (see listen.h).
 *
 * A daemon opens its listeners while still root, then runs the loop; each
 * waiting client is announced to the daemon's callback with the listener's
 * tag, and the daemon accepts it with mc_conn_accept(). Owns every listener
 * it opened (a process-wide list, closed by mc_listen_close_all).
 *
 * Pausing (connection limits) stops polling the listening socket instead
 * of accepting and dropping: the socket stays bound and listening, the
 * kernel keeps queuing clients in its backlog, and they are accepted in
 * order on resume. libuv has no call to stop a listener, so a pause keeps
 * a dup() of the socket, closes the libuv handle, and on resume wraps the
 * same socket in a new handle (uv_tcp_open) and listens again; the port is
 * never released, so no root privilege is needed to resume.
 *
 * Never: leave a listener half-open after a failed open, or release a port
 * while paused.
 */
#include "util/listen.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LISTEN_BACKLOG 511

struct mc_listener {
	uv_loop_t *loop;
	uv_tcp_t *tcp;          /* NULL while paused */
	int paused_fd;          /* the socket kept while paused, else -1 */
	int tag;
	mc_listen_cb cb;
	void *arg;
	unsigned port;          /* the bound port (the kernel's choice for port 0) */
	char text[80];
	struct mc_listener *next;
};

static struct mc_listener *listeners;      /* in order of opening */
static bool all_paused;

static void
free_handle_cb(uv_handle_t *h)
{
	free(h);
}

static void
connection_cb(uv_stream_t *server, int status)
{
	struct mc_listener *l = server->data;
	if (status < 0) {
		mc_warn("listener %s: %s", l->text, uv_strerror(status));
		return;
	}
	l->cb(server, l->tag, l->arg);
}

/* Make a handle on fd (or a new socket bound to addr when fd is -1) and listen. */
static int
start(struct mc_listener *l, const struct sockaddr *addr, int fd)
{
	uv_tcp_t *t = malloc(sizeof(*t));
	if (t == NULL)
		return UV_ENOMEM;
	int r = uv_tcp_init(l->loop, t);
	if (r < 0) {
		free(t);
		return r;
	}
	t->data = l;
	if (fd >= 0)
		r = uv_tcp_open(t, fd);
	else
		r = uv_tcp_bind(t, addr, addr->sa_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)t, LISTEN_BACKLOG, connection_cb);
	if (r < 0) {
		uv_close((uv_handle_t *)t, free_handle_cb);
		return r;
	}
	l->tcp = t;
	return 0;
}

static void
listener_close(struct mc_listener *l)
{
	if (l->tcp)
		uv_close((uv_handle_t *)l->tcp, free_handle_cb);
	if (l->paused_fd >= 0)
		close(l->paused_fd);
	free(l);
}

static unsigned
bound_port(uv_tcp_t *t)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	if (uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

static void
pause_one(struct mc_listener *l)
{
	if (l->tcp == NULL)
		return;
	uv_os_fd_t fd;
	if (uv_fileno((uv_handle_t *)l->tcp, &fd) < 0)
		return;
	int keep = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (keep < 0) {
		mc_warn("listener %s: cannot pause: %s", l->text, strerror(errno));
		return;
	}
	uv_close((uv_handle_t *)l->tcp, free_handle_cb);
	l->tcp = NULL;
	l->paused_fd = keep;
}

static void
resume_one(struct mc_listener *l)
{
	if (l->paused_fd < 0)
		return;
	int r = start(l, NULL, l->paused_fd);
	if (r < 0) {
		/* The socket stays kept; the next resume tries again. */
		mc_warn("listener %s: cannot resume: %s", l->text, uv_strerror(r));
		return;
	}
	l->paused_fd = -1;
}

int
mc_listen_open(uv_loop_t *loop, const struct mc_listen_list *list, int tag, mc_listen_cb cb, void *arg, char *err,
	       size_t errsz)
{
	struct mc_listener *opened = NULL, **tail = &opened;
	for (size_t i = 0; i < list->n; i++) {
		const struct mc_listen_addr *a = &list->a[i];
		struct mc_listener *l = calloc(1, sizeof(*l));
		if (l == NULL) {
			snprintf(err, errsz, "cannot listen on %s: out of memory", a->text);
			goto fail;
		}
		l->loop = loop;
		l->paused_fd = -1;
		l->tag = tag;
		l->cb = cb;
		l->arg = arg;
		snprintf(l->text, sizeof(l->text), "%s", a->text);
		int r = start(l, (const struct sockaddr *)&a->ss, -1);
		if (r < 0) {
			snprintf(err, errsz, "cannot listen on %s: %s", a->text, uv_strerror(r));
			free(l);
			goto fail;
		}
		l->port = bound_port(l->tcp);
		*tail = l;
		tail = &l->next;
	}
	if (all_paused)
		for (struct mc_listener *l = opened; l; l = l->next)
			pause_one(l);
	/* Append to the process-wide list, keeping the order of opening. */
	struct mc_listener **end = &listeners;
	while (*end)
		end = &(*end)->next;
	*end = opened;
	return 0;
fail:
	while (opened) {
		struct mc_listener *next = opened->next;
		listener_close(opened);
		opened = next;
	}
	return -1;
}

void
mc_listen_close_all(void)
{
	while (listeners) {
		struct mc_listener *next = listeners->next;
		listener_close(listeners);
		listeners = next;
	}
	all_paused = false;
}

void
mc_listen_pause_all(bool pause)
{
	all_paused = pause;
	for (struct mc_listener *l = listeners; l; l = l->next) {
		if (pause)
			pause_one(l);
		else
			resume_one(l);
	}
}

int
mc_listen_move_loop(uv_loop_t *loop)
{
	int rc = 0;
	for (struct mc_listener *l = listeners; l; l = l->next) {
		if (l->tcp != NULL)
			rc = -1;   /* a live handle belongs to its loop: only a paused listener can move */
		else
			l->loop = loop;
	}
	return rc;
}

unsigned
mc_listen_port(size_t index)
{
	struct mc_listener *l = listeners;
	while (l && index--)
		l = l->next;
	return l ? l->port : 0;
}
