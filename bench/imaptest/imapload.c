/*
 * imapload.c - an IMAP load generator in the manner of Dovecot's imaptest
 * (which Debian does not ship): many clients, each logging in, selecting,
 * fetching headers and bodies, flagging, searching, expunging, appending
 * and logging out, against any IMAP server. Run by hand or by
 * bench/imap_bench.py (bench/imap-bench.sh); never a test.
 *
 *   imapload [-h HOST] [-p PORT] [-u USERFMT -n USERS | -U FILE] [-w PASS]
 *            [-m MAILBOX] [-c CLIENTS] [-d SECONDS] [-N OPS] [-M MODE] [-x MIX]
 *            [-L OPS] [-S SEARCH]... [-A BYTES] [-C CONNECTING] [-W SECONDS] [-v]
 *
 * Modes:
 *   logins    each client loops connect, LOGIN, SELECT, LOGOUT, close;
 *   sessions  each client logs in and selects once, then sends commands
 *             chosen by the mix until the end (with -L N it logs out and in
 *             again after N commands: imaptest's mix with logins);
 *   idle      each client logs in, selects and IDLEs; "ready N" is printed
 *             on stdout once all are idling, and they stay until -d runs
 *             out or SIGTERM (memory per idle connection is measured
 *             meanwhile from outside).
 * The mix (-x) weighs fetchhdr (FETCH n BODY.PEEK[HEADER]), fetchbody
 * (FETCH n BODY.PEEK[]), search (SEARCH, the -S programs in turn), store
 * (STORE n +FLAGS/-FLAGS (\Flagged)), append (APPEND of an -A byte message,
 * LITERAL+ when offered) and expunge (STORE n +FLAGS.SILENT (\Deleted),
 * then EXPUNGE), e.g. "fetchhdr=30,fetchbody=30,search=10,store=10,
 * append=10,expunge=10" (the default). n is a random message of the
 * client's view, kept from EXISTS and EXPUNGE responses; expunge takes the
 * newest message (appended ones first).
 *
 * In sessions mode the measured window starts once every client has
 * selected (or after -W seconds); in logins mode at once. Operations that
 * complete inside the window are counted per kind (with errors: tagged NO
 * or BAD, a lost connection) and printed as a table and as lines
 * "result KIND OPS PER_SECOND ERRORS AVG_MS" for scripts. The window ends
 * after -d seconds, or once -N operations completed if that comes first
 * (the same amount of work on every server: what an APPEND phase leaves
 * behind for the file system must not depend on the server's speed).
 *
 * One thread, epoll, a non-blocking state machine per client and one
 * command in flight per client (no pipelining), so the client costs little
 * CPU beside the servers it measures on a small machine. Owns its sockets
 * and buffers; never trusts a server's literal length beyond skipping it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum kind { K_LOGIN, K_SELECT, K_FETCHHDR, K_FETCHBODY, K_SEARCH, K_STORE, K_APPEND, K_EXPUNGE,
	K_LOGOUT, K_IDLE, K_N };
static const char *const kind_name[K_N] = { "login", "select", "fetchhdr", "fetchbody", "search",
	"store", "append", "expunge", "logout", "idle" };
#define MIX_FIRST K_FETCHHDR
#define MIX_LAST K_EXPUNGE

enum mode { M_LOGINS, M_SESSIONS, M_IDLE };

enum state {
	S_FREE,         /* no connection; waits to be started */
	S_CONNECTING,   /* non-blocking connect in progress */
	S_GREETING,
	S_LOGIN,
	S_SELECT,
	S_READY,        /* selected, no command in flight */
	S_CMD,          /* a command of kind cur in flight */
	S_APPEND_CONT,  /* APPEND sent without LITERAL+: waits for "+" */
	S_IDLE_WAIT,    /* IDLE sent, waits for "+" */
	S_IDLING,
	S_LOGOUT,
};

/* A server line (without its literals) longer than this ends the connection as an error. */
#define LINE_MAX_BYTES (16u << 20)
#define RBUF_INIT 16384
/* Errors printed on stderr; the rest are only counted. */
#define ERR_SHOWN 10

struct client {
	int fd;
	unsigned idx, user;
	enum state st;
	unsigned gen;          /* bumped on close: a parse in progress stops */
	char *rb;
	size_t rlen, rcap;
	uint64_t lit_left;     /* bytes of a server literal still to skip */
	bool cont;             /* the line continues a response after a literal */
	char *wb;
	size_t wlen, woff, wcap;
	bool want_out;
	char tag[16];
	unsigned tagn;
	enum kind cur;
	int step;              /* expunge: 1 = STORE \Deleted sent, 2 = EXPUNGE sent */
	uint64_t t0, tconn;    /* command start, connect start (ns) */
	uint32_t exists;
	unsigned ops;          /* commands since this login */
	bool litplus;
	bool ever_ready;
	bool pending;          /* connecting or logging in: counted in n_pending */
	uint64_t retry_at;     /* after an error, not restarted before this */
	char *append_body;     /* APPEND literal waiting for "+" */
	size_t append_len;
};

struct stat_kind {
	uint64_t ops, errors, lat_ns, lat_max;
};

static struct {
	const char *host, *port, *mailbox, *userfmt, *userfile, *password;
	unsigned nusers, clients, ops_per_login, connecting, append_size;
	double duration, warmup;
	uint64_t max_ops;   /* -N: the window ends after this many operations (0: -d only) */
	enum mode mode;
	unsigned weight[K_N];
	const char *search[32];
	unsigned nsearch;
	bool verbose;
} opt;

static char **users, **passwords;
static struct addrinfo *addr;
static int ep;
static struct client *cl;
static struct stat_kind st[K_N], st_conn;
static uint64_t t_start, win_start, win_end, bytes_in;
static unsigned n_ready, n_pending, n_open, next_start, err_shown;
static bool stopping, all_ready_said;
static volatile sig_atomic_t got_signal;
static uint64_t rnd_state = 88172645463325252ull;
static unsigned search_turn;
static char *append_text;

static void client_start(struct client *c);
static void client_close(struct client *c, bool error, const char *why);
static void next_command(struct client *c);

static uint64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t
rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (p == NULL) {
		perror("imapload: realloc");
		exit(1);
	}
	return p;
}

static bool
in_window(uint64_t now)
{
	return win_start != 0 && now >= win_start && now < win_end;
}

static void
record(enum kind k, bool ok, uint64_t lat)
{
	if (!in_window(now_ns()))
		return;
	if (!ok) {
		st[k].errors++;
		return;
	}
	st[k].ops++;
	st[k].lat_ns += lat;
	if (lat > st[k].lat_max)
		st[k].lat_max = lat;
}

static void
show_error(const struct client *c, const char *what, const char *line, size_t len)
{
	if (err_shown++ >= ERR_SHOWN)
		return;
	fprintf(stderr, "imapload: client %u (%s): %s: %.*s\n", c->idx, users[c->user], what,
	    (int)(len > 200 ? 200 : len), line);
}

/* ---- output ---- */

static void
update_events(struct client *c)
{
	bool want = c->st == S_CONNECTING || c->woff < c->wlen;
	if (want == c->want_out)
		return;
	struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c };
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
	c->want_out = want;
}

static void
flush_out(struct client *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = send(c->fd, c->wb + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			client_close(c, true, strerror(errno));
			return;
		}
		c->woff += (size_t)n;
	}
	if (c->woff == c->wlen)
		c->woff = c->wlen = 0;
	update_events(c);
}

static void
put(struct client *c, const char *data, size_t len)
{
	if (c->wlen + len > c->wcap) {
		c->wcap = (c->wlen + len) * 2;
		c->wb = xrealloc(c->wb, c->wcap);
	}
	memcpy(c->wb + c->wlen, data, len);
	c->wlen += len;
}

/* Sends one tagged command (printf-style, CRLF added unless the text ends in a literal's "}\r\n"). */
static void __attribute__((format(printf, 2, 3)))
command(struct client *c, const char *fmt, ...)
{
	char line[2048];
	int n = snprintf(c->tag, sizeof(c->tag), "a%u", ++c->tagn);
	memcpy(line, c->tag, (size_t)n);
	line[n++] = ' ';
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 2, fmt, ap);
	va_end(ap);
	if (m < 0 || (size_t)m >= sizeof(line) - (size_t)n - 2) {
		fprintf(stderr, "imapload: command too long\n");
		exit(1);
	}
	n += m;
	if (n < 3 || memcmp(line + n - 3, "}\r\n", 3) != 0) {
		line[n++] = '\r';
		line[n++] = '\n';
	}
	put(c, line, (size_t)n);
	c->t0 = now_ns();
}

/* A quoted string for a command; the names used here hold no quote or backslash in practice. */
static const char *
quoted(const char *s, char *buf, size_t size)
{
	size_t j = 0;
	buf[j++] = '"';
	for (; *s && j + 3 < size; s++) {
		if (*s == '"' || *s == '\\')
			buf[j++] = '\\';
		buf[j++] = *s;
	}
	buf[j++] = '"';
	buf[j] = 0;
	return buf;
}

/* ---- the commands ---- */

static uint32_t
random_msg(struct client *c)
{
	return 1 + (uint32_t)(rnd() % c->exists);
}

static enum kind
choose(struct client *c)
{
	unsigned total = 0;
	for (int k = MIX_FIRST; k <= MIX_LAST; k++)
		if (c->exists > 0 || k == K_APPEND || k == K_SEARCH)
			total += opt.weight[k];
	if (total == 0)
		return K_APPEND;
	unsigned r = (unsigned)(rnd() % total);
	for (int k = MIX_FIRST; k <= MIX_LAST; k++) {
		if (!(c->exists > 0 || k == K_APPEND || k == K_SEARCH))
			continue;
		if (r < opt.weight[k])
			return (enum kind)k;
		r -= opt.weight[k];
	}
	return K_APPEND;
}

static void
send_search(struct client *c)
{
	const char *prog = opt.search[search_turn++ % opt.nsearch];
	char buf[512];
	size_t j = 0;
	/* %r: a random number below 1000, so header searches differ from one command to the next. */
	for (const char *p = prog; *p && j < sizeof(buf) - 12; p++) {
		if (p[0] == '%' && p[1] == 'r') {
			j += (size_t)snprintf(buf + j, sizeof(buf) - j, "%u", (unsigned)(rnd() % 1000));
			p++;
		} else {
			buf[j++] = *p;
		}
	}
	buf[j] = 0;
	command(c, "SEARCH %s", buf);
}

static void
send_append(struct client *c)
{
	char hdr[512], mb[512];
	static unsigned serial;
	int h = snprintf(hdr, sizeof(hdr),
	    "Date: Fri, 27 Nov 2026 06:00:00 +0000\r\nFrom: imapload <load@bench.test>\r\n"
	    "To: %s\r\nSubject: appended %u by client %u\r\nMessage-ID: <a%u.%u@imapload.bench.test>\r\n\r\n",
	    users[c->user], serial, c->idx, serial, c->idx);
	serial++;
	size_t body = strlen(append_text);
	size_t len = (size_t)h + body;
	quoted(opt.mailbox, mb, sizeof(mb));
	if (c->litplus) {
		command(c, "APPEND %s (\\Seen) {%zu+}\r\n", mb, len);
		put(c, hdr, (size_t)h);
		put(c, append_text, body);
		put(c, "\r\n", 2);
		c->st = S_CMD;
	} else {
		command(c, "APPEND %s (\\Seen) {%zu}\r\n", mb, len);
		c->append_body = xrealloc(c->append_body, len + 2);
		memcpy(c->append_body, hdr, (size_t)h);
		memcpy(c->append_body + h, append_text, body);
		memcpy(c->append_body + len, "\r\n", 2);
		c->append_len = len + 2;
		c->st = S_APPEND_CONT;
	}
}

static void
send_logout(struct client *c)
{
	command(c, "LOGOUT");
	c->st = S_LOGOUT;
	c->cur = K_LOGOUT;
}

static void
next_command(struct client *c)
{
	if (stopping || (opt.ops_per_login && c->ops >= opt.ops_per_login)) {
		send_logout(c);
		return;
	}
	c->cur = choose(c);
	c->st = S_CMD;
	c->ops++;
	switch (c->cur) {
	case K_FETCHHDR:
		command(c, "FETCH %u (BODY.PEEK[HEADER])", random_msg(c));
		break;
	case K_FETCHBODY:
		command(c, "FETCH %u (BODY.PEEK[])", random_msg(c));
		break;
	case K_SEARCH:
		send_search(c);
		break;
	case K_STORE:
		command(c, "STORE %u %cFLAGS (\\Flagged)", random_msg(c), rnd() & 1 ? '+' : '-');
		break;
	case K_APPEND:
		send_append(c);
		break;
	case K_EXPUNGE:
		/* The newest message: appended ones go first, so a mix with as many expunges as
		 * appends leaves the delivered messages in place from one run to the next. */
		c->step = 1;
		command(c, "STORE %u +FLAGS.SILENT (\\Deleted)", c->exists);
		break;
	default:
		break;
	}
}

/* ---- responses ---- */

static void
set_pending(struct client *c, bool p)
{
	if (c->pending == p)
		return;
	c->pending = p;
	if (p)
		n_pending++;
	else
		n_pending--;
}

static void
became_ready(struct client *c)
{
	if (!c->ever_ready) {
		c->ever_ready = true;
		n_ready++;
	}
	set_pending(c, false);
}

static void
on_untagged(struct client *c, const char *l, size_t len)
{
	if (c->st == S_GREETING) {
		if (len >= 2 && memcmp(l, "OK", 2) == 0) {
			c->litplus = memmem(l, len, "LITERAL+", 8) != NULL;
			char u[512], p[512];
			command(c, "LOGIN %s %s", quoted(users[c->user], u, sizeof(u)),
			    quoted(passwords[c->user], p, sizeof(p)));
			c->st = S_LOGIN;
			c->cur = K_LOGIN;
		} else {
			show_error(c, "greeting", l, len);
			client_close(c, true, NULL);
		}
		return;
	}
	if (len >= 10 && memcmp(l, "CAPABILITY", 10) == 0) {
		c->litplus = memmem(l, len, "LITERAL+", 8) != NULL;
		return;
	}
	if (len >= 3 && memcmp(l, "BYE", 3) == 0 && c->st != S_LOGOUT) {
		show_error(c, "server says", l, len);
		return;
	}
	if (l[0] < '0' || l[0] > '9')
		return;
	char *end;
	unsigned long n = strtoul(l, &end, 10);
	size_t rest = len - (size_t)(end - l);
	if (rest >= 7 && memcmp(end, " EXISTS", 7) == 0)
		c->exists = (uint32_t)n;
	else if (rest >= 8 && memcmp(end, " EXPUNGE", 8) == 0 && c->exists > 0)
		c->exists--;
}

static void
on_tagged(struct client *c, const char *l, size_t len)
{
	bool ok = len >= 2 && memcmp(l, "OK", 2) == 0;
	uint64_t now = now_ns();
	if (!ok)
		show_error(c, kind_name[c->cur], l, len);
	switch (c->st) {
	case S_LOGIN: {
		record(K_LOGIN, ok, now - c->tconn);
		if (!ok) {
			client_close(c, true, NULL);
			return;
		}
		if (memmem(l, len, "[CAPABILITY", 11) != NULL)
			c->litplus = memmem(l, len, "LITERAL+", 8) != NULL;
		char mb[512];
		c->exists = 0;
		command(c, "SELECT %s", quoted(opt.mailbox, mb, sizeof(mb)));
		c->st = S_SELECT;
		c->cur = K_SELECT;
		return;
	}
	case S_SELECT:
		record(K_SELECT, ok, now - c->t0);
		if (!ok) {
			send_logout(c);
		} else if (opt.mode == M_LOGINS) {
			set_pending(c, false);
			send_logout(c);
		} else if (opt.mode == M_IDLE) {
			command(c, "IDLE");
			c->st = S_IDLE_WAIT;
			c->cur = K_IDLE;
		} else {
			became_ready(c);
			c->st = S_READY;
			if (win_start != 0)
				next_command(c);
		}
		return;
	case S_CMD:
	case S_APPEND_CONT:
		if (c->cur == K_EXPUNGE && c->step == 1 && ok) {
			c->step = 2;
			uint64_t t0 = c->t0;
			command(c, "EXPUNGE");
			c->t0 = t0;
			return;
		}
		record(c->cur, ok, now - c->t0);
		c->st = S_READY;
		if (win_start != 0)
			next_command(c);
		return;
	case S_IDLE_WAIT:
		record(K_IDLE, false, 0);
		send_logout(c);
		return;
	case S_LOGOUT:
		record(K_LOGOUT, ok, now - c->t0);
		client_close(c, false, NULL);
		return;
	default:
		return;
	}
}

static void
on_continuation(struct client *c)
{
	if (c->st == S_APPEND_CONT) {
		put(c, c->append_body, c->append_len);
		c->st = S_CMD;
	} else if (c->st == S_IDLE_WAIT) {
		record(K_IDLE, true, now_ns() - c->t0);
		c->st = S_IDLING;
		became_ready(c);
	}
}

static void
on_line(struct client *c, const char *l, size_t len)
{
	size_t tl = strlen(c->tag);
	if (len >= 2 && l[0] == '*' && l[1] == ' ')
		on_untagged(c, l + 2, len - 2);
	else if (len >= 1 && l[0] == '+')
		on_continuation(c);
	else if (len > tl && memcmp(l, c->tag, tl) == 0 && l[tl] == ' ')
		on_tagged(c, l + tl + 1, len - tl - 1);
}

/* If the line ends in a literal's announcement "{N}", its length. */
static bool
literal_at_end(const char *l, size_t len, uint64_t *n)
{
	if (len < 3 || l[len - 1] != '}')
		return false;
	size_t i = len - 1;
	uint64_t v = 0, mul = 1;
	while (i > 0 && l[i - 1] >= '0' && l[i - 1] <= '9' && mul < 1000000000000ull) {
		v += (uint64_t)(l[i - 1] - '0') * mul;
		mul *= 10;
		i--;
	}
	if (i == 0 || i == len - 1 || l[i - 1] != '{')
		return false;
	*n = v;
	return true;
}

static void
parse_input(struct client *c)
{
	unsigned gen = c->gen;
	size_t pos = 0;
	while (pos < c->rlen) {
		if (c->lit_left > 0) {
			size_t take = c->rlen - pos;
			if (take > c->lit_left)
				take = (size_t)c->lit_left;
			pos += take;
			c->lit_left -= take;
			continue;
		}
		char *nl = memchr(c->rb + pos, '\n', c->rlen - pos);
		if (nl == NULL)
			break;
		const char *l = c->rb + pos;
		size_t len = (size_t)(nl - l);
		pos += len + 1;
		if (len > 0 && l[len - 1] == '\r')
			len--;
		uint64_t lit = 0;
		bool has_lit = literal_at_end(l, len, &lit);
		if (!c->cont)
			on_line(c, l, len);
		if (c->gen != gen)
			return;   /* closed (and maybe restarted) meanwhile: the buffer is gone */
		c->cont = has_lit;
		c->lit_left = has_lit ? lit : 0;
	}
	memmove(c->rb, c->rb + pos, c->rlen - pos);
	c->rlen -= pos;
}

static void
on_readable(struct client *c)
{
	for (;;) {
		if (c->rlen == c->rcap) {
			if (c->rcap >= LINE_MAX_BYTES) {
				client_close(c, true, "line too long");
				return;
			}
			c->rcap *= 2;
			c->rb = xrealloc(c->rb, c->rcap);
		}
		ssize_t n = recv(c->fd, c->rb + c->rlen, c->rcap - c->rlen, 0);
		if (n > 0) {
			bytes_in += (uint64_t)n;
			c->rlen += (size_t)n;
			unsigned gen = c->gen;
			parse_input(c);
			if (c->gen != gen)
				return;
			if (c->wlen > 0)
				flush_out(c);
			if (c->gen != gen)
				return;
			continue;
		}
		if (n == 0) {
			client_close(c, c->st != S_LOGOUT, "connection closed by the server");
			return;
		}
		if (errno == EAGAIN || errno == EINTR)
			return;
		client_close(c, true, strerror(errno));
		return;
	}
}

/* ---- connections ---- */

static void
client_close(struct client *c, bool error, const char *why)
{
	if (c->fd < 0)
		return;
	if (error) {
		if (why != NULL && err_shown++ < ERR_SHOWN)
			fprintf(stderr, "imapload: client %u (%s): %s\n", c->idx, users[c->user], why);
		if (in_window(now_ns()))
			st_conn.errors++;
		/* A server that refuses or drops clients is not hammered in a tight loop. */
		c->retry_at = now_ns() + 100000000u;
	}
	set_pending(c, false);
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->gen++;
	c->rlen = c->wlen = c->woff = 0;
	c->lit_left = 0;
	c->cont = false;
	c->want_out = false;
	n_open--;
	c->st = S_FREE;
	/* logins and the -L mix start again at once; the others wait for the main loop. */
	if (!stopping && opt.mode != M_IDLE && !error)
		client_start(c);
}

static void
client_start(struct client *c)
{
	c->fd = socket(addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		perror("imapload: socket");
		exit(1);
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->tconn = now_ns();
	c->ops = 0;
	c->exists = 0;
	c->litplus = false;
	n_open++;
	set_pending(c, true);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
	c->want_out = true;
	epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
	c->st = S_CONNECTING;
	if (connect(c->fd, addr->ai_addr, addr->ai_addrlen) < 0 && errno != EINPROGRESS) {
		client_close(c, true, strerror(errno));
		return;
	}
}

static void
on_event(struct client *c, uint32_t events)
{
	if (c->st == S_CONNECTING) {
		int err = 0;
		socklen_t l = sizeof(err);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err != 0) {
			client_close(c, true, strerror(err));
			return;
		}
		if (!(events & (EPOLLOUT | EPOLLIN | EPOLLERR | EPOLLHUP)))
			return;
		c->st = S_GREETING;
		update_events(c);
	}
	unsigned gen = c->gen;
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		on_readable(c);
	if (c->gen == gen && (events & EPOLLOUT) && c->fd >= 0)
		flush_out(c);
}

/* ---- set-up and report ---- */

/* USERFMT with its one %u (or %d, with a width such as %02u) replaced by n; "%%" is a percent sign. */
static char *
user_from_format(const char *fmt, unsigned n)
{
	char out[512];
	size_t j = 0;
	int conversions = 0;
	for (const char *p = fmt; *p && j < sizeof(out) - 24; p++) {
		if (*p != '%') {
			out[j++] = *p;
			continue;
		}
		if (p[1] == '%') {
			out[j++] = '%';
			p++;
			continue;
		}
		bool zero = p[1] == '0';
		char *end;
		unsigned long width = strtoul(p + 1, &end, 10);
		if ((*end != 'u' && *end != 'd') || width > 16 || conversions++ > 0) {
			fprintf(stderr, "imapload: -u %s: one %%u (or %%02u ...) and nothing else after a %%\n", fmt);
			exit(2);
		}
		j += (size_t)snprintf(out + j, sizeof(out) - j, zero ? "%0*u" : "%*u", (int)width, n);
		p = end;
	}
	out[j] = 0;
	return strdup(out);
}

static void
load_users(void)
{
	if (opt.userfile != NULL) {
		FILE *f = fopen(opt.userfile, "r");
		if (f == NULL) {
			perror(opt.userfile);
			exit(1);
		}
		char line[1024];
		opt.nusers = 0;
		while (fgets(line, sizeof(line), f) != NULL) {
			line[strcspn(line, "\r\n")] = 0;
			char *sep = strpbrk(line, ": \t");
			if (line[0] == 0 || line[0] == '#')
				continue;
			users = xrealloc(users, (opt.nusers + 1) * sizeof(*users));
			passwords = xrealloc(passwords, (opt.nusers + 1) * sizeof(*passwords));
			if (sep != NULL)
				*sep++ = 0;
			users[opt.nusers] = strdup(line);
			passwords[opt.nusers] = strdup(sep != NULL ? sep : opt.password);
			opt.nusers++;
		}
		fclose(f);
		if (opt.nusers == 0) {
			fprintf(stderr, "imapload: no users in %s\n", opt.userfile);
			exit(2);
		}
		return;
	}
	users = xrealloc(NULL, opt.nusers * sizeof(*users));
	passwords = xrealloc(NULL, opt.nusers * sizeof(*passwords));
	for (unsigned i = 0; i < opt.nusers; i++) {
		users[i] = user_from_format(opt.userfmt, i + 1);
		passwords[i] = strdup(opt.password);
	}
}

static void
parse_mix(const char *s)
{
	memset(opt.weight, 0, sizeof(opt.weight));
	char *copy = strdup(s), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(t, '=');
		int k;
		for (k = MIX_FIRST; k <= MIX_LAST; k++)
			if (eq != NULL && strncmp(t, kind_name[k], (size_t)(eq - t)) == 0 &&
			    strlen(kind_name[k]) == (size_t)(eq - t))
				break;
		if (k > MIX_LAST) {
			fprintf(stderr, "imapload: bad mix item '%s' (fetchhdr, fetchbody, search, store, append, expunge)\n", t);
			exit(2);
		}
		opt.weight[k] = (unsigned)strtoul(eq + 1, NULL, 10);
	}
	free(copy);
}

static void
make_append_text(void)
{
	static const char *const words[] = { "alpha", "beta", "gamma", "delta", "mail", "post",
		"queue", "store", "imap", "fetch" };
	append_text = xrealloc(NULL, opt.append_size + 128);
	size_t n = 0, col = 0;
	while (n < opt.append_size) {
		const char *w = words[rnd() % 10];
		size_t wl = strlen(w);
		memcpy(append_text + n, w, wl);
		n += wl;
		col += wl + 1;
		if (col > 70) {
			memcpy(append_text + n, "\r\n", 2);
			n += 2;
			col = 0;
		} else {
			append_text[n++] = ' ';
		}
	}
	memcpy(append_text + n, "\r\n", 3);
}

static void
report(uint64_t end)
{
	double secs = (double)(end - win_start) / 1e9;
	printf("imapload: %s:%s mode %s, %u clients, %u users, %.2f s measured, %.1f MB received\n",
	    opt.host, opt.port, opt.mode == M_LOGINS ? "logins" : opt.mode == M_SESSIONS ? "sessions" : "idle",
	    opt.clients, opt.nusers, secs, (double)bytes_in / 1e6);
	printf("  %-10s %9s %10s %7s %9s %9s\n", "kind", "ops", "ops/s", "errors", "avg ms", "max ms");
	uint64_t total = 0;
	for (int k = 0; k < K_N; k++) {
		if (st[k].ops == 0 && st[k].errors == 0)
			continue;
		double rate = secs > 0 ? (double)st[k].ops / secs : 0;
		double avg = st[k].ops ? (double)st[k].lat_ns / (double)st[k].ops / 1e6 : 0;
		printf("  %-10s %9llu %10.1f %7llu %9.2f %9.2f\n", kind_name[k], (unsigned long long)st[k].ops,
		    rate, (unsigned long long)st[k].errors, avg, (double)st[k].lat_max / 1e6);
		if (k >= MIX_FIRST && k <= MIX_LAST)
			total += st[k].ops;
	}
	printf("  %-10s %9s %10s %7llu\n", "connection", "", "", (unsigned long long)st_conn.errors);
	for (int k = 0; k < K_N; k++) {
		double avg = st[k].ops ? (double)st[k].lat_ns / (double)st[k].ops / 1e6 : 0;
		printf("result %s %llu %.2f %llu %.3f\n", kind_name[k], (unsigned long long)st[k].ops,
		    secs > 0 ? (double)st[k].ops / secs : 0, (unsigned long long)st[k].errors, avg);
	}
	printf("result commands %llu %.2f 0 0\n", (unsigned long long)total, secs > 0 ? (double)total / secs : 0);
	printf("result connection 0 0 %llu 0\n", (unsigned long long)st_conn.errors);
	printf("result seconds %.3f\n", secs);
	fflush(stdout);
}

static void
on_signal(int sig)
{
	got_signal = sig;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: imapload [-h HOST] [-p PORT] [-u USERFMT -n USERS | -U FILE] [-w PASSWORD] [-m MAILBOX]\n"
	    "                [-c CLIENTS] [-d SECONDS] [-N OPS] [-M logins|sessions|idle] [-x MIX] [-L OPS]\n"
	    "                [-S SEARCH]... [-A BYTES] [-C CONNECTING] [-W SECONDS] [-v]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	opt.host = "127.0.0.1";
	opt.port = "143";
	opt.mailbox = "INBOX";
	opt.userfmt = "bench%02u@example.test";
	opt.password = "bench-password";
	opt.nusers = 20;
	opt.clients = 20;
	opt.duration = 10;
	opt.warmup = 60;
	opt.append_size = 4000;
	opt.mode = M_SESSIONS;
	parse_mix("fetchhdr=30,fetchbody=30,search=10,store=10,append=10,expunge=10");
	int ch;
	while ((ch = getopt(argc, argv, "h:p:u:n:U:w:m:c:d:N:M:x:L:S:A:C:W:v")) != -1) {
		switch (ch) {
		case 'h': opt.host = optarg; break;
		case 'p': opt.port = optarg; break;
		case 'u': opt.userfmt = optarg; break;
		case 'n': opt.nusers = (unsigned)atoi(optarg); break;
		case 'U': opt.userfile = optarg; break;
		case 'w': opt.password = optarg; break;
		case 'm': opt.mailbox = optarg; break;
		case 'c': opt.clients = (unsigned)atoi(optarg); break;
		case 'd': opt.duration = atof(optarg); break;
		case 'N': opt.max_ops = strtoull(optarg, NULL, 10); break;
		case 'x': parse_mix(optarg); break;
		case 'L': opt.ops_per_login = (unsigned)atoi(optarg); break;
		case 'A': opt.append_size = (unsigned)atoi(optarg); break;
		case 'C': opt.connecting = (unsigned)atoi(optarg); break;
		case 'W': opt.warmup = atof(optarg); break;
		case 'v': opt.verbose = true; break;
		case 'S':
			if (opt.nsearch < sizeof(opt.search) / sizeof(opt.search[0]))
				opt.search[opt.nsearch++] = optarg;
			break;
		case 'M':
			if (strcmp(optarg, "logins") == 0)
				opt.mode = M_LOGINS;
			else if (strcmp(optarg, "sessions") == 0)
				opt.mode = M_SESSIONS;
			else if (strcmp(optarg, "idle") == 0)
				opt.mode = M_IDLE;
			else
				usage();
			break;
		default: usage();
		}
	}
	if (optind != argc || opt.clients == 0 || opt.nusers == 0 || opt.append_size > (64u << 20))
		usage();
	if (opt.nsearch == 0) {
		/* Flags (from the index on both servers), a header (cached or parsed), a size and a date. */
		opt.search[opt.nsearch++] = "FLAGGED";
		opt.search[opt.nsearch++] = "SUBJECT \"message %r\"";
		opt.search[opt.nsearch++] = "UNSEEN LARGER 4000";
		opt.search[opt.nsearch++] = "FROM \"sender\" SINCE 1-Jan-2020";
	}
	if (opt.connecting == 0)
		opt.connecting = opt.mode == M_IDLE ? 50 : opt.clients;
	load_users();
	make_append_text();

	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	int gai = getaddrinfo(opt.host, opt.port, &hints, &addr);
	if (gai != 0) {
		fprintf(stderr, "imapload: %s:%s: %s\n", opt.host, opt.port, gai_strerror(gai));
		return 1;
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < opt.clients + 64) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	ep = epoll_create1(EPOLL_CLOEXEC);
	cl = calloc(opt.clients, sizeof(*cl));
	for (unsigned i = 0; i < opt.clients; i++) {
		cl[i].fd = -1;
		cl[i].idx = i;
		cl[i].user = i % opt.nusers;
		cl[i].rcap = RBUF_INIT;
		cl[i].rb = xrealloc(NULL, RBUF_INIT);
	}
	t_start = now_ns();
	if (opt.mode == M_LOGINS) {
		win_start = t_start;
		win_end = win_start + (uint64_t)(opt.duration * 1e9);
	}
	struct epoll_event evs[256];
	uint64_t next_tick = t_start + 1000000000u, stop_at = 0, last_ops = 0;
	for (;;) {
		uint64_t now = now_ns();
		/* Start clients that wait (the first time, or again after an error), a few at a time. */
		if (!stopping) {
			for (unsigned tries = 0; tries < opt.clients && n_pending < opt.connecting; tries++) {
				struct client *c = &cl[next_start];
				next_start = (next_start + 1) % opt.clients;
				if (c->st == S_FREE && now >= c->retry_at)
					client_start(c);
			}
		}
		if (opt.mode == M_SESSIONS && win_start == 0 &&
		    (n_ready == opt.clients || now - t_start > (uint64_t)(opt.warmup * 1e9))) {
			if (n_ready < opt.clients)
				fprintf(stderr, "imapload: only %u of %u clients ready after %.0f s; measuring anyway\n",
				    n_ready, opt.clients, opt.warmup);
			win_start = now;
			win_end = win_start + (uint64_t)(opt.duration * 1e9);
			for (unsigned i = 0; i < opt.clients; i++)
				if (cl[i].st == S_READY) {
					next_command(&cl[i]);
					flush_out(&cl[i]);
				}
		}
		if (opt.mode == M_IDLE && !all_ready_said && n_ready == opt.clients) {
			all_ready_said = true;
			printf("ready %u\n", n_ready);
			fflush(stdout);
			win_start = now;
			win_end = opt.duration > 0 ? now + (uint64_t)(opt.duration * 1e9) : UINT64_MAX;
		}
		if (!stopping && win_start != 0 && opt.max_ops) {
			uint64_t done = 0;
			for (int k = 0; k < K_N; k++)
				done += st[k].ops;
			if (done >= opt.max_ops)
				win_end = now;
		}
		if (!stopping && (got_signal || (win_start != 0 && now >= win_end))) {
			stopping = true;
			stop_at = now;
			if (opt.mode == M_IDLE || got_signal)
				break;
			/* Clients between commands or still logging in go now; the rest log out after their command. */
			for (unsigned i = 0; i < opt.clients; i++) {
				struct client *c = &cl[i];
				if (c->fd < 0)
					continue;
				if (c->st == S_READY) {
					send_logout(c);
					flush_out(c);
				} else if (c->st != S_CMD && c->st != S_APPEND_CONT && c->st != S_LOGOUT) {
					client_close(c, false, NULL);
				}
			}
		}
		if (stopping && (n_open == 0 || now - stop_at > 5000000000u || got_signal))
			break;
		if (opt.verbose && now >= next_tick) {
			uint64_t ops = 0;
			for (int k = 0; k < K_N; k++)
				ops += st[k].ops;
			fprintf(stderr, "imapload: %.0f s: %u open, %u ready, %llu ops in the last second\n",
			    (double)(now - t_start) / 1e9, n_open, n_ready, (unsigned long long)(ops - last_ops));
			last_ops = ops;
			next_tick += 1000000000u;
		}
		int n = epoll_wait(ep, evs, 256, 100);
		if (n < 0 && errno != EINTR) {
			perror("imapload: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++)
			on_event(evs[i].data.ptr, evs[i].events);
	}
	uint64_t end = win_end != 0 && win_end != UINT64_MAX && now_ns() > win_end ? win_end : now_ns();
	if (win_start == 0)
		win_start = end;
	report(end);
	return 0;
}
