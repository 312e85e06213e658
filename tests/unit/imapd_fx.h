/*
 * imapd_fx.h - a whole imapd session in-process and without a listener:
 * the real network front (mail/netsvc), session, commands and mail store
 * on a libuv loop that the caller runs, with the client at the other end
 * of a socketpair (mc_netsvc_adopt). The transcript unit test
 * (test_imap_session.c) and the session fuzzer
 * (tests/fuzz/fuzz_imap_session.c) drive imapd through it.
 *
 * Everything runs in the calling thread: fx_pump runs the loop once
 * without blocking and collects what the server wrote; the waits pump
 * until a line, an end of file or a deadline. The instance's state_dir
 * is the caller's root directory; alice's store is
 * root/mail/example.test/alice. A logged-in session can be made without
 * resolverd (fx_login: imapd_session_login, what LOGIN does once
 * resolverd said yes).
 *
 * Included by one program each (static functions); no cmocka here, so a
 * fuzzer can use it: failures return -1. Never used by daemon code.
 */
#ifndef TEST_IMAPD_FX_H
#define TEST_IMAPD_FX_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "imapd/imapd.h"
#include "mail/daemon.h"
#include "mail/mailstore.h"
#include "mail/mailstore_ops.h"
#include "mail/netsvc.h"

struct imapd_fx {
	uv_loop_t loop;
	struct mc_daemon d;
	struct imapd_server srv;
	int fd;                 /* the client's end of the socketpair; -1 when none */
	bool eof;               /* the server closed its end */
	bool discard;           /* drop the server's output as it comes (fuzzing) */
	char root[256];
	char home[512];         /* alice's store */
	char *out;              /* what the server wrote and nobody took yet, NUL-terminated */
	size_t outlen, outcap;
};

static inline void
fx_conf(const struct mc_config *cfg, struct mc_netsvc_conf *c)
{
	c->listen = &cfg->imapd.listen;
	c->listen_tls = &cfg->imapd.listen_tls;
	c->max_connections = cfg->imapd.max_connections;
}

/* An instance under root (which exists), nothing listening; plain_auth is [imapd] allow_plaintext_auth. */
static inline int
fx_init(struct imapd_fx *x, const char *root, int plain_auth)
{
	char err[512], p[512];
	memset(x, 0, sizeof(*x));
	x->fd = -1;
	snprintf(x->root, sizeof(x->root), "%s", root);
	snprintf(x->home, sizeof(x->home), "%s/mail/example.test/alice", root);
	if (uv_loop_init(&x->loop) != 0 || mc_config_defaults(&x->d.cfg, err, sizeof(err)) < 0)
		return -1;
	struct mc_config *cfg = &x->d.cfg;
	snprintf(cfg->global.state_dir, sizeof(cfg->global.state_dir), "%s", root);
	snprintf(cfg->global.run_dir, sizeof(cfg->global.run_dir), "%s/run", root);
	snprintf(cfg->global.hostname, sizeof(cfg->global.hostname), "mx.example.test");
	snprintf(p, sizeof(p), "%s/run", root);
	mkdir(p, 0755);
	cfg->imapd.listen.n = 0;
	cfg->imapd.listen_tls.n = 0;
	cfg->imapd.allow_plaintext_auth = plain_auth;
	x->d.name = "imapd";
	x->d.role = MC_ROLE_IMAPD;
	x->d.loop = &x->loop;
	imapd_server_init(&x->srv, &x->loop, cfg);
	static struct mc_netsvc_ops ops = {
		.conf = fx_conf,
		.in_max = IMAPD_IN_MAX,
		.id_prefix = 'I',
		.busy_reply = IMAPD_BUSY_REPLY,
		.cbs = &imapd_session_cbs,
		.on_client = imapd_server_client,
		.on_shutdown = imapd_session_shutdown,
	};
	ops.arg = &x->srv;
	x->srv.svc = mc_netsvc_open(&x->d, &ops, err, sizeof(err));
	return x->srv.svc ? 0 : -1;
}

static inline void
fx_take_output(struct imapd_fx *x)
{
	char buf[65536];
	for (;;) {
		ssize_t n = read(x->fd, buf, sizeof(buf));
		if (n == 0)
			x->eof = true;
		if (n <= 0)
			return;
		if (x->discard)
			continue;
		if (x->outlen + (size_t)n + 1 > x->outcap) {
			size_t cap = (x->outlen + (size_t)n + 1) * 2;
			char *o = realloc(x->out, cap);
			if (o == NULL)
				abort();
			x->out = o;
			x->outcap = cap;
		}
		memcpy(x->out + x->outlen, buf, (size_t)n);
		x->outlen += (size_t)n;
		x->out[x->outlen] = '\0';
	}
}

/* Run the loop once without blocking and collect the output; then wait up to ms for something to happen. */
static inline void
fx_pump(struct imapd_fx *x, int ms)
{
	uv_run(&x->loop, UV_RUN_NOWAIT);
	if (x->fd >= 0)
		fx_take_output(x);
	if (ms > 0) {
		struct pollfd pf[2] = { { .fd = uv_backend_fd(&x->loop), .events = POLLIN },
					{ .fd = x->fd, .events = POLLIN } };
		poll(pf, x->fd >= 0 ? 2 : 1, ms);
	}
}

static inline long long
fx_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Is there a whole line starting with prefix in the output ("" : any whole line)? */
static inline bool
fx_has_line(const struct imapd_fx *x, const char *prefix)
{
	size_t pl = strlen(prefix);
	for (size_t i = 0; i < x->outlen;) {
		const char *nl = memchr(x->out + i, '\n', x->outlen - i);
		if (nl == NULL)
			return false;
		if ((size_t)(nl - (x->out + i)) >= pl && memcmp(x->out + i, prefix, pl) == 0)
			return true;
		i = (size_t)(nl - x->out) + 1;
	}
	return false;
}

/* Pump until a line starting with prefix came (0), or the server closed or ms passed (-1). */
static inline int
fx_wait_line(struct imapd_fx *x, const char *prefix, int ms)
{
	long long end = fx_now_ms() + ms;
	while (!fx_has_line(x, prefix)) {
		if (x->eof || fx_now_ms() > end)
			return -1;
		fx_pump(x, 2);
	}
	return 0;
}

/* Pump until the server closed the connection and the session is gone (0), or ms passed (-1). */
static inline int
fx_wait_closed(struct imapd_fx *x, int ms)
{
	long long end = fx_now_ms() + ms;
	while (!x->eof || x->srv.sessions) {
		if (fx_now_ms() > end)
			return -1;
		fx_pump(x, 2);
	}
	return 0;
}

/* All output so far, taken (the caller frees it). */
static inline char *
fx_take(struct imapd_fx *x)
{
	char *o = x->out ? x->out : strdup("");
	x->out = NULL;
	x->outlen = x->outcap = 0;
	return o;
}

/* Send n bytes as the client, pumping while the socket is full. -1 when the server closed. */
static inline int
fx_send(struct imapd_fx *x, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = send(x->fd, c, n, MSG_NOSIGNAL);
		if (w > 0) {
			c += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		fx_pump(x, 1);
	}
	fx_pump(x, 0);
	return 0;
}

/* A new client: the server greets it; its session is x->srv.sessions. */
static inline struct imapd_session *
fx_connect(struct imapd_fx *x)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return NULL;
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	x->eof = false;
	if (mc_netsvc_adopt(x->srv.svc, sv[1]) < 0) {
		close(sv[0]);
		return NULL;
	}
	x->fd = sv[0];
	if (fx_wait_line(x, "* OK", 5000) < 0)
		return NULL;
	return x->srv.sessions;
}

/* Log the session in as alice (store x->home, made when missing), as LOGIN does after resolverd's yes. */
static inline int
fx_login(struct imapd_fx *x, struct imapd_session *s)
{
	s->cmdtag[0] = '\0';
	if (imapd_session_login(s, "alice@example.test", x->home) < 0)
		return -1;
	fx_pump(x, 0);
	return 0;
}

/* The client goes away; the session ends. */
static inline int
fx_disconnect(struct imapd_fx *x)
{
	if (x->fd < 0)
		return 0;
	close(x->fd);
	x->fd = -1;
	long long end = fx_now_ms() + 5000;
	while (x->srv.sessions) {
		if (fx_now_ms() > end)
			return -1;
		fx_pump(x, 2);
	}
	for (int i = 0; i < 4; i++)
		fx_pump(x, 0);   /* the conn's handles close a loop turn later */
	free(fx_take(x));
	return 0;
}

/* Add a message to mailbox of alice's store (flags, internal date: a fixed one makes output exact). */
static inline int
fx_add_message(struct imapd_fx *x, const char *home, const char *mailbox, const char *text, uint32_t flags,
	       int64_t date)
{
	char err[256], p[600];
	struct mc_store *st = mc_store_open(home ? home : x->home, MC_STORE_CREATE, err, sizeof(err));
	if (st == NULL)
		return -1;
	snprintf(p, sizeof(p), "%s/msg.tmp", x->root);
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int r = -1;
	if (fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text)) {
		struct mc_store_append a = { .fd = fd, .length = strlen(text), .flags = flags, .internal_date = date };
		r = mc_store_append(st, mailbox, &a, 0, err, sizeof(err)) == 0 ? 0 : -1;
	}
	if (fd >= 0)
		close(fd);
	unlink(p);
	mc_store_close(st);
	return r;
}

static inline int
fx_rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

/* rm -rf path */
static inline void
fx_rmtree(const char *path)
{
	nftw(path, fx_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* cp -r from to (directories and regular files; to must not exist). */
static inline int
fx_copytree(const char *from, const char *to)
{
	struct stat sb;
	if (lstat(from, &sb) < 0)
		return -1;
	if (S_ISDIR(sb.st_mode)) {
		if (mkdir(to, sb.st_mode & 07777) < 0)
			return -1;
		DIR *d = opendir(from);
		if (d == NULL)
			return -1;
		struct dirent *de;
		int r = 0;
		while (r == 0 && (de = readdir(d)) != NULL) {
			char a[1024], b[1024];
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(a, sizeof(a), "%s/%s", from, de->d_name);
			snprintf(b, sizeof(b), "%s/%s", to, de->d_name);
			r = fx_copytree(a, b);
		}
		closedir(d);
		return r;
	}
	if (!S_ISREG(sb.st_mode))
		return 0;
	int in = open(from, O_RDONLY | O_CLOEXEC), out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, sb.st_mode & 0777);
	char buf[65536];
	ssize_t n;
	int r = in >= 0 && out >= 0 ? 0 : -1;
	while (r == 0 && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			r = -1;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	struct timespec ts[2] = { sb.st_atim, sb.st_mtim };
	if (r == 0)
		utimensat(AT_FDCWD, to, ts, 0);
	return r;
}

#endif
