/*
 * ctlcall.c - one request to a control socket, called back once (see ctlcall.h).
 *
 * The timer does two jobs: it bounds the whole exchange (connect, HELLO,
 * reply), and with a zero timeout it defers both early failures and the
 * cleanup to the loop, so a callback never runs inside postern_call() and
 * a channel is never closed from inside its own callback.
 */
#include "ctlcall.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "mail/proto.h"
#include "util/chan.h"
#include "util/log.h"

struct call {
	uv_timer_t timer;
	struct mc_chan *ch;
	struct mc_msg req;
	bool have_req;
	bool done;          /* the callback has run */
	bool cleaning;      /* the timer now only frees */
	unsigned timeout_ms;
	postern_call_cb cb;
	void *arg;
	int err;            /* for a failure delivered from the timer */
	char why[300];
};

static void
free_call(uv_handle_t *h)
{
	struct call *c = h->data;
	if (c->have_req)
		mc_msg_free(&c->req);
	free(c);
}

static void on_timer(uv_timer_t *t);

/* Run the callback once; then let the loop close the channel and free the call. */
static void
finish(struct call *c, struct mc_msg *m, int err, const char *why)
{
	if (c->done)
		return;
	c->done = true;
	c->cb(c->arg, m, err, why);
	c->cleaning = true;
	uv_timer_start(&c->timer, on_timer, 0, 0);
}

static void
on_timer(uv_timer_t *t)
{
	struct call *c = t->data;
	if (!c->cleaning) {
		char why[340];
		if (c->err == MC_CHAN_ETIMEDOUT)
			snprintf(why, sizeof(why), "no answer within %u ms", c->timeout_ms);
		else
			snprintf(why, sizeof(why), "%s", c->why);
		finish(c, NULL, c->err, why);
		return;
	}
	if (c->ch) {
		struct mc_chan *ch = c->ch;
		c->ch = NULL;
		mc_chan_close(ch);
	}
	uv_close((uv_handle_t *)&c->timer, free_call);
}

static void
on_reply(void *arg, struct mc_msg *m, int err)
{
	struct call *c = arg;
	char text[512] = "";
	uint32_t code;

	if (err == MC_CHAN_EREMOTE) {
		if (m == NULL || mc_chan_error_parse(m, &code, text, sizeof(text)) < 0)
			snprintf(text, sizeof(text), "refused (unreadable error reply)");
	} else if (err == MC_CHAN_ETIMEDOUT) {
		snprintf(text, sizeof(text), "no answer within %u ms", c->timeout_ms);
	} else if (err != 0) {
		snprintf(text, sizeof(text), "the connection was closed before the answer");
	}
	finish(c, err == 0 || err == MC_CHAN_EREMOTE ? m : NULL, err, err ? text : NULL);
}

static void
on_up(struct mc_chan *ch, void *arg)
{
	struct call *c = arg;
	if (c->done || !c->have_req)
		return;
	c->have_req = false;
	mc_chan_call(ch, &c->req, c->timeout_ms, on_reply, c);
}

static void
on_down(struct mc_chan *ch, void *arg)
{
	struct call *c = arg;
	/* The channel is freed after this returns: forget it. */
	c->ch = NULL;
	finish(c, NULL, MC_CHAN_ECLOSED, "the connection was closed (is this user allowed to use it?)");
	(void)ch;
}

void
postern_call(uv_loop_t *loop, const char *path, uint32_t role, struct mc_msg *req, unsigned timeout_ms,
	     postern_call_cb cb, void *arg)
{
	static const struct mc_chan_cbs cbs = { .on_up = on_up, .on_down = on_down };
	struct call *c = calloc(1, sizeof(*c));
	if (c == NULL)
		mc_panic("out of memory");
	c->req = *req;
	c->have_req = true;
	c->timeout_ms = timeout_ms;
	c->cb = cb;
	c->arg = arg;
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;

	struct stat st;
	if (stat(path, &st) < 0 && errno == ENOENT) {
		c->err = MC_CHAN_ECLOSED;
		snprintf(c->why, sizeof(c->why), "no socket at %s", path);
		uv_timer_start(&c->timer, on_timer, 0, 0);
		return;
	}
	errno = 0;
	c->ch = mc_chan_connect_once(loop, path, &mc_proto, role, "postern", &cbs, c);
	if (c->ch == NULL) {
		c->err = MC_CHAN_ECLOSED;
		if (errno == ECONNREFUSED)   /* a socket file left by a process that is gone */
			snprintf(c->why, sizeof(c->why), "nothing listens at %s", path);
		else
			snprintf(c->why, sizeof(c->why), "cannot connect to %s: %s", path,
				 errno ? strerror(errno) : "refused");
		uv_timer_start(&c->timer, on_timer, 0, 0);
		return;
	}
	c->err = MC_CHAN_ETIMEDOUT;
	uv_timer_start(&c->timer, on_timer, timeout_ms, 0);
}

int
postern_tls_open(const struct mc_config *cfg, int fds[2], char *why, size_t whysz)
{
	const char *paths[2] = { cfg->global.tls_cert, cfg->global.tls_key };
	fds[0] = fds[1] = -1;
	for (int i = 0; i < 2; i++) {
		/* O_NONBLOCK: something that is not a file must not hang us; the daemon refuses it. */
		fds[i] = open(paths[i], O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fds[i] < 0) {
			snprintf(why, whysz, "cannot open %s: %s", paths[i], strerror(errno));
			if (i == 1) {
				close(fds[0]);
				fds[0] = -1;
			}
			return -1;
		}
	}
	return 0;
}

/* The daemons that serve TLS; the others never get the key. */
static bool
serves_tls(const char *name)
{
	static const char *const names[] = { "smtpd", "pop3d", "imapd" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

void
postern_reload_request(struct mc_msg *m, const char *name, const int fds[2])
{
	mc_msg_init(m, MC_MSG_CTL_RELOAD);
	if (fds == NULL || fds[0] < 0 || fds[1] < 0 || !serves_tls(name))
		return;
	/* Each daemon gets its own copies (the message closes what it sends); the daemon reads with pread. */
	int cert = fcntl(fds[0], F_DUPFD_CLOEXEC, 3);
	int key = cert < 0 ? -1 : fcntl(fds[1], F_DUPFD_CLOEXEC, 3);
	if (cert < 0 || key < 0) {
		mc_warn("%s: cannot pass the certificate files: %s", name, strerror(errno));
		if (cert >= 0)
			close(cert);
		return;
	}
	mc_msg_put_fd(m, cert);
	mc_msg_put_fd(m, key);
}

bool
postern_socket_answers(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	if (n >= sizeof(sun.sun_path))
		return false;
	memcpy(sun.sun_path, path, n + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	bool ok = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
	close(fd);
	return ok;
}
