/*
 * conn.c - one TCP connection with optional TLS on a libuv stream (see conn.h).
 *
 * Called by smtpd, pop3d and imapd for every client, and by queued's SMTP
 * client for outbound connections. Owns the uv_tcp_t, its two helper
 * handles (a timer for connect/idle/close timeouts and an idle handle that
 * runs deferred input delivery), the bounded plaintext input buffer, the
 * SSL object with its two memory BIOs, and every write request in flight.
 *
 * Data paths. Plain: libuv reads straight into the free space of the input
 * buffer, so input can never grow past in_max; when it is full, reading
 * stops until the protocol consumes. TLS: ciphertext from libuv goes into
 * the read BIO, SSL_read fills the same bounded input buffer, and reading
 * stops as soon as that buffer is full (at most one read's worth of
 * ciphertext waits in the BIO). Output: plain bytes go to uv_write as they
 * come; with TLS, SSL_write encrypts into the write BIO, which is drained
 * into uv_write after every SSL call, so bytes leave in the order they were
 * written (plaintext before a STARTTLS goes out before the handshake).
 * Compression (mc_conn_compress) sits above TLS: what libuv or SSL_read
 * gives goes into zin (bounded like in) instead, and z_deliver inflates
 * from zin into in only as far as in has room, so the protocol's limits
 * apply to inflated bytes and a bomb costs at most in_max. Output is
 * deflated on its way to the plain or TLS write path; mc_conn_flush ends a
 * batch with a sync flush (and close flushes what is left).
 *
 * Lifetime. The struct is freed only from the close callback of the last
 * of its three handles, which libuv runs from the loop, never from inside
 * one of our calls: a callback may therefore close or abort its own conn
 * and the code that called it still holds valid memory. The "closing" flag
 * stops every callback except on_close (and the on_connect / on_tls that
 * report the failure that is closing the conn).
 *
 * Never: block, grow input past in_max (plain or inflated), act on
 * plaintext that arrived before a STARTTLS, renegotiate TLS, or call back
 * after on_close.
 */
#include "util/conn.h"
#include "util/log.h"
#include "util/tls.h"
#include "util/zstream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#define RX_CHUNK (64 * 1024)
#define ZIN_CHUNK (16 * 1024)  /* compressed bytes read at once: dense, so less is needed */
/* Smallest read into a plaintext (or compressed) input buffer. */
#define RX_MIN 4096
#define WRITE_MAX ((size_t)1 << 28)  /* bytes per write request or SSL_write call */
#define CLOSE_LINGER_MS 30000u  /* how long a close may wait for output to flush without an idle timeout set */

struct wreq {
	uv_write_t req;
	struct mc_conn *c;
	size_t len;
	char data[];
};

struct mc_conn {
	uv_tcp_t tcp;
	uv_timer_t timer;       /* connect timeout, then idle timeout, then close linger */
	uv_idle_t kick;         /* deferred delivery after mc_conn_resume */
	uv_connect_t connect_req;
	uv_shutdown_t shutdown_req;
	unsigned open_handles;

	struct mc_conn_cbs cbs;
	void *arg;

	struct mc_buf in;       /* plaintext input, bounded by in_max */
	struct mc_buf tls_held; /* output written while the handshake runs */
	SSL *ssl;
	BIO *rbio, *wbio;
	char *rx;               /* ciphertext read buffer (TLS only; freed by mc_conn_shrink) */
	struct mc_zstream *z;   /* compression (mc_conn_compress), between TLS and in */
	struct mc_buf zin;      /* compressed input not yet inflated, bounded by in_max */

	unsigned timeout_ms;
	bool connecting;
	bool reading;
	bool paused;
	bool handshaking;
	bool tls_up;
	bool tls_failed;
	bool closing;           /* no more callbacks but on_close */
	bool handles_closed;    /* uv_close called on every handle */
	bool silent;            /* never handed to the caller: no on_close */
	bool drain_armed;
	bool z_more;            /* the last inflate filled its space: more may come without input */

	char why[160];
	char tls_desc[96];
	struct sockaddr_storage peer;
	char peer_ip[INET6_ADDRSTRLEN];
	unsigned peer_port;
	unsigned local_port;
};

static void update_reading(struct mc_conn *c);
static void start_close(struct mc_conn *c, const char *why);
static void tls_input(struct mc_conn *c);
static void timer_cb(uv_timer_t *t);
static void kick_cb(uv_idle_t *h);
static int z_deliver(struct mc_conn *c);

static void
set_why(struct mc_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
set_why(struct mc_conn *c, const char *fmt, ...)
{
	if (c->why[0])
		return;  /* the first reason is the real one */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
}

static void
conn_free(struct mc_conn *c)
{
	SSL_free(c->ssl);  /* frees both BIOs */
	free(c->rx);
	mc_zstream_free(c->z);
	mc_buf_free(&c->zin);
	mc_buf_free(&c->in);
	mc_buf_free(&c->tls_held);
	free(c);
}

static void
close_cb(uv_handle_t *h)
{
	struct mc_conn *c = h->data;
	if (--c->open_handles > 0)
		return;
	if (!c->silent && c->cbs.on_close)
		c->cbs.on_close(c, c->arg, c->why[0] ? c->why : "closed");
	conn_free(c);
}

/* Close every handle now; queued output is dropped. on_close follows from the loop. */
static void
hard_close(struct mc_conn *c)
{
	c->closing = true;
	if (c->handles_closed)
		return;
	c->handles_closed = true;
	c->reading = false;
	uv_close((uv_handle_t *)&c->tcp, close_cb);
	uv_close((uv_handle_t *)&c->timer, close_cb);
	uv_close((uv_handle_t *)&c->kick, close_cb);
}

static struct mc_conn *
conn_new(uv_loop_t *loop, size_t in_max, const struct mc_conn_cbs *cbs, void *arg)
{
	struct mc_conn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	if (uv_tcp_init(loop, &c->tcp) != 0) {
		free(c);
		return NULL;
	}
	uv_timer_init(loop, &c->timer);
	uv_idle_init(loop, &c->kick);
	c->tcp.data = c;
	c->timer.data = c;
	c->kick.data = c;
	c->open_handles = 3;
	if (cbs)
		c->cbs = *cbs;
	c->arg = arg;
	mc_buf_init(&c->in, in_max);
	mc_buf_init(&c->zin, in_max);
	mc_buf_init(&c->tls_held, 0);
	return c;
}

static void
fill_addrs(struct mc_conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
		c->peer = ss;
	if (c->peer.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&c->peer;
		uv_ip4_name(sin, c->peer_ip, sizeof(c->peer_ip));
		c->peer_port = ntohs(sin->sin_port);
	} else if (c->peer.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&c->peer;
		uv_ip6_name(sin6, c->peer_ip, sizeof(c->peer_ip));
		c->peer_port = ntohs(sin6->sin6_port);
	}
	len = sizeof(ss);
	if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET)
			c->local_port = ntohs(((const struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			c->local_port = ntohs(((const struct sockaddr_in6 *)&ss)->sin6_port);
	}
}

/* ---- output ---- */

size_t
mc_conn_pending_out(const struct mc_conn *c)
{
	size_t n = uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp) + c->tls_held.len;
	if (c->wbio)
		n += BIO_ctrl_pending(c->wbio);
	return n;
}

static void
write_cb(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct mc_conn *c = w->c;
	free(w);
	if (status == UV_ECANCELED)
		return;
	if (status < 0) {
		set_why(c, "write error: %s", uv_strerror(status));
		hard_close(c);
		return;
	}
	if (c->closing || !c->drain_armed || mc_conn_pending_out(c) >= MC_CONN_LOWAT)
		return;
	c->drain_armed = false;
	if (c->cbs.on_drain)
		c->cbs.on_drain(c, c->arg);
}

/* Hand bytes to libuv (ciphertext or plaintext, whatever is next on the wire). */
static int
raw_write_one(struct mc_conn *c, const void *p, size_t n)
{
	struct wreq *w = malloc(sizeof(*w) + n);
	if (w == NULL) {
		set_why(c, "out of memory");
		hard_close(c);
		return -1;
	}
	w->c = c;
	w->len = n;
	memcpy(w->data, p, n);
	uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
	int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
	if (r < 0) {
		free(w);
		set_why(c, "write error: %s", uv_strerror(r));
		hard_close(c);
		return -1;
	}
	return 0;
}

static int
raw_write(struct mc_conn *c, const char *p, size_t n)
{
	while (n > 0) {
		size_t chunk = n > WRITE_MAX ? WRITE_MAX : n;  /* a uv_buf_t length is an unsigned int */
		if (raw_write_one(c, p, chunk) < 0)
			return -1;
		p += chunk;
		n -= chunk;
	}
	return 0;
}

/* Move whatever OpenSSL produced into the write queue. */
static int
flush_wbio(struct mc_conn *c)
{
	size_t n = BIO_ctrl_pending(c->wbio);
	if (n == 0 || c->handles_closed)
		return c->handles_closed ? -1 : 0;
	struct wreq *w = malloc(sizeof(*w) + n);
	if (w == NULL) {
		set_why(c, "out of memory");
		hard_close(c);
		return -1;
	}
	w->c = c;
	w->len = n;
	int got = BIO_read(c->wbio, w->data, (int)n);
	if (got <= 0) {
		free(w);
		return 0;
	}
	uv_buf_t b = uv_buf_init(w->data, (unsigned)got);
	int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
	if (r < 0) {
		free(w);
		set_why(c, "write error: %s", uv_strerror(r));
		hard_close(c);
		return -1;
	}
	return 0;
}

static int
tls_write(struct mc_conn *c, const char *p, size_t n)
{
	while (n > 0) {
		int chunk = n > WRITE_MAX ? (int)WRITE_MAX : (int)n;
		ERR_clear_error();
		int r = SSL_write(c->ssl, p, chunk);
		if (r <= 0) {
			char e[160];
			set_why(c, "TLS write error: %s", mc_tls_errstr(e, sizeof(e)));
			flush_wbio(c);
			hard_close(c);
			return -1;
		}
		p += r;
		n -= (size_t)r;
		if (flush_wbio(c) < 0)
			return -1;
	}
	return 0;
}

/* Bytes for the wire below compression: plaintext or TLS, whichever the conn runs now. */
static int
lower_write(struct mc_conn *c, const void *p, size_t n)
{
	if (c->ssl == NULL)
		return raw_write(c, p, n);
	if (c->handshaking)
		return mc_buf_add(&c->tls_held, p, n);
	return tls_write(c, p, n);
}

static int
z_sink(void *arg, const void *p, size_t n)
{
	struct mc_conn *c = arg;
	if (c->handles_closed)
		return -1;
	return lower_write(c, p, n);
}

/* Compress and send; flush: end the batch so the peer can read all of it. */
static int
z_write(struct mc_conn *c, const void *p, size_t n, bool flush)
{
	if (mc_zstream_deflate(c->z, p, n, flush, z_sink, c) == 0)
		return 0;
	set_why(c, "%s", mc_zstream_error(c->z));
	hard_close(c);
	return -1;
}

int
mc_conn_write(struct mc_conn *c, const void *p, size_t n)
{
	if (c->closing)
		return -1;
	if (n == 0)
		return 0;
	c->drain_armed = true;
	if (c->z)
		return z_write(c, p, n, false);
	return lower_write(c, p, n);
}

int
mc_conn_flush(struct mc_conn *c)
{
	if (c->closing)
		return -1;
	if (c->z == NULL || !mc_zstream_dirty(c->z))
		return 0;
	c->drain_armed = true;
	return z_write(c, NULL, 0, true);
}

int
mc_conn_writes(struct mc_conn *c, const char *s)
{
	return mc_conn_write(c, s, strlen(s));
}

int
mc_conn_printf(struct mc_conn *c, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof(small))
		return mc_conn_write(c, small, (size_t)n);
	char *big = malloc((size_t)n + 1);
	if (big == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	int r = mc_conn_write(c, big, (size_t)n);
	free(big);
	return r;
}

/* ---- input ---- */

struct mc_buf *
mc_conn_in(struct mc_conn *c)
{
	return &c->in;
}

static void
alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct mc_conn *c = h->data;
	(void)suggested;
	if (c->ssl) {
		if (c->rx == NULL)
			c->rx = malloc(RX_CHUNK);   /* mc_conn_shrink let it go */
		*buf = uv_buf_init(c->rx, c->rx ? RX_CHUNK : 0);
		return;
	}
	/*
	 * Read into what the buffer has spare, at least RX_MIN: an idle client's
	 * buffer stays a page or two, and one that sends a lot grows it (doubling
	 * in mc_buf_reserve) up to a chunk a read. Thousands of IMAP IDLE
	 * clients each holding 64 KiB would be most of imapd's memory.
	 */
	struct mc_buf *dst = c->z ? &c->zin : &c->in;
	size_t chunk = c->z ? ZIN_CHUNK : RX_CHUNK;
	size_t space = dst->max - dst->len;
	size_t spare = dst->cap > dst->len + 1 ? dst->cap - dst->len - 1 : 0;
	size_t want = spare < RX_MIN ? RX_MIN : spare;
	if (want > chunk)
		want = chunk;
	if (space > want)
		space = want;
	char *p = space ? mc_buf_reserve(dst, space) : NULL;
	*buf = uv_buf_init(p, p ? (unsigned)space : 0);
}

static void
restart_idle_timer(struct mc_conn *c)
{
	if (c->timeout_ms && !c->closing && !c->connecting)
		uv_timer_start(&c->timer, timer_cb, c->timeout_ms, 0);
}

static void
read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct mc_conn *c = s->data;
	if (nread == 0 || c->closing)
		return;
	if (nread == UV_ENOBUFS) {
		if (c->ssl && c->rx == NULL) {
			set_why(c, "out of memory");
			hard_close(c);
			return;
		}
		/* The input buffer is full: wait until the protocol consumes. */
		update_reading(c);
		return;
	}
	if (nread < 0) {
		if (nread == UV_EOF) {
			start_close(c, "peer closed");
		} else {
			set_why(c, "read error: %s", uv_strerror((int)nread));
			hard_close(c);
		}
		return;
	}
	restart_idle_timer(c);
	if (buf->base == c->rx && c->ssl) {
		BIO_write(c->rbio, buf->base, (int)nread);
		tls_input(c);
		return;
	}
	if (c->ssl)
		return;  /* cannot happen: plaintext read across a STARTTLS; never act on it */
	if (c->z) {
		mc_buf_commit(&c->zin, (size_t)nread);
		if (z_deliver(c) < 0)
			return;
	} else {
		mc_buf_commit(&c->in, (size_t)nread);
		if (!c->paused && c->cbs.on_read)
			c->cbs.on_read(c, c->arg);
	}
	update_reading(c);
}

/* Read from the socket exactly when there is room and nobody asked us to stop. */
static void
update_reading(struct mc_conn *c)
{
	bool want;
	if (c->closing || c->connecting || c->paused)
		want = false;
	else if (c->handshaking)
		want = true;
	else if (c->z)
		want = c->zin.len < c->zin.max;   /* in fills from zin as the protocol consumes */
	else
		want = c->in.len < c->in.max;
	if (want && !c->reading) {
		int r = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
		if (r < 0) {
			set_why(c, "read error: %s", uv_strerror(r));
			hard_close(c);
			return;
		}
		c->reading = true;
	} else if (!want && c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
	}
}

/* ---- TLS ---- */

static void
tls_fail(struct mc_conn *c, const char *what)
{
	char e[160];
	set_why(c, "%s: %s", what, mc_tls_errstr(e, sizeof(e)));
	c->tls_failed = true;
	bool was_handshaking = c->handshaking;
	c->handshaking = false;
	if (flush_wbio(c) == 0)  /* the alert, if OpenSSL made one */
		start_close(c, NULL);
	mc_trace(MC_TRACE_TLS, "conn [%s]:%u: %s", c->peer_ip, c->peer_port, c->why);
	if (was_handshaking && c->cbs.on_tls)
		c->cbs.on_tls(c, c->arg, false);
}

/* Decrypt into the input buffer while there is room; deliver; repeat while more is waiting. */
static void
tls_pump(struct mc_conn *c)
{
	for (;;) {
		if (c->closing || c->paused)
			return;
		bool got = false, peer_done = false;
		struct mc_buf *dst = c->z ? &c->zin : &c->in;   /* compressed input inflates from zin */
		size_t chunk = c->z ? ZIN_CHUNK : RX_CHUNK;
		while (dst->len < dst->max) {
			size_t space = dst->max - dst->len;
			if (space > chunk)
				space = chunk;
			char *p = mc_buf_reserve(dst, space);
			ERR_clear_error();
			int r = SSL_read(c->ssl, p, (int)space);
			if (r > 0) {
				mc_buf_commit(dst, (size_t)r);
				got = true;
				continue;
			}
			int e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				break;
			if (e == SSL_ERROR_ZERO_RETURN) {
				peer_done = true;
				break;
			}
			tls_fail(c, "TLS read error");
			return;
		}
		if (flush_wbio(c) < 0)
			return;
		if (c->z) {
			if (z_deliver(c) < 0)
				return;
		} else if (got && c->cbs.on_read) {
			c->cbs.on_read(c, c->arg);
		}
		if (c->closing)
			return;
		if (peer_done) {
			start_close(c, "peer closed");
			return;
		}
		if (!got || dst->len >= dst->max || c->paused)
			break;
		if (SSL_pending(c->ssl) == 0 && BIO_ctrl_pending(c->rbio) == 0)
			break;
	}
	update_reading(c);
}

static void
tls_input(struct mc_conn *c)
{
	if (c->handshaking) {
		ERR_clear_error();
		int r = SSL_do_handshake(c->ssl);
		if (flush_wbio(c) < 0)
			return;
		if (r != 1) {
			int e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				update_reading(c);
				return;
			}
			tls_fail(c, "TLS handshake failed");
			return;
		}
		c->handshaking = false;
		c->tls_up = true;
		snprintf(c->tls_desc, sizeof(c->tls_desc), "%s %s", SSL_get_version(c->ssl),
			 SSL_get_cipher_name(c->ssl));
		mc_trace(MC_TRACE_TLS, "conn [%s]:%u: TLS up %s", c->peer_ip, c->peer_port, c->tls_desc);
		if (c->tls_held.len) {
			int w = tls_write(c, c->tls_held.data, c->tls_held.len);
			mc_buf_free(&c->tls_held);
			if (w < 0)
				return;
		}
		if (c->cbs.on_tls)
			c->cbs.on_tls(c, c->arg, true);
		if (c->closing)
			return;
	}
	tls_pump(c);
}

int
mc_conn_starttls(struct mc_conn *c, SSL_CTX *ctx, bool server, const char *sni)
{
	if (c->closing || c->ssl || ctx == NULL)
		return -1;
	ERR_clear_error();
	SSL *ssl = SSL_new(ctx);
	BIO *rbio = BIO_new(BIO_s_mem());
	BIO *wbio = BIO_new(BIO_s_mem());
	char *rx = malloc(RX_CHUNK);
	if (ssl == NULL || rbio == NULL || wbio == NULL || rx == NULL) {
		SSL_free(ssl);
		BIO_free(rbio);
		BIO_free(wbio);
		free(rx);
		return -1;
	}
	BIO_set_mem_eof_return(rbio, -1);
	BIO_set_mem_eof_return(wbio, -1);
	SSL_set_bio(ssl, rbio, wbio);
	SSL_set_options(ssl, SSL_OP_NO_RENEGOTIATION);
	if (server) {
		SSL_set_accept_state(ssl);
	} else {
		SSL_set_connect_state(ssl);
		if (sni && *sni) {
			struct in6_addr a6;
			struct in_addr a4;
			/* SNI carries host names only (RFC 6066 section 3); names are checked only when the context verifies. */
			if (inet_pton(AF_INET, sni, &a4) == 1 || inet_pton(AF_INET6, sni, &a6) == 1) {
				X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), sni);
			} else {
				SSL_set_tlsext_host_name(ssl, sni);
				SSL_set1_host(ssl, sni);
			}
		}
	}
	c->ssl = ssl;
	c->rbio = rbio;
	c->wbio = wbio;
	c->rx = rx;
	c->handshaking = true;
	/* RFC 3207 section 4.2, RFC 2595 section 3.1: forget everything pipelined before the handshake. */
	mc_buf_reset(&c->in);
	uv_idle_stop(&c->kick);
	if (!server)
		tls_input(c);  /* the ClientHello */
	else
		update_reading(c);
	return 0;
}

bool
mc_conn_is_tls(const struct mc_conn *c)
{
	return c->tls_up;
}

const char *
mc_conn_tls_desc(const struct mc_conn *c)
{
	return c->tls_desc;
}

SSL *
mc_conn_ssl(struct mc_conn *c)
{
	return c->ssl;
}

/* ---- timers, pause ---- */

static void
timer_cb(uv_timer_t *t)
{
	struct mc_conn *c = t->data;
	if (c->handles_closed)
		return;
	if (c->connecting) {
		c->connecting = false;
		set_why(c, "connect timed out");
		hard_close(c);
		if (c->cbs.on_connect)
			c->cbs.on_connect(c, c->arg, UV_ETIMEDOUT);
		return;
	}
	if (c->closing) {
		set_why(c, "output not flushed in time");
		hard_close(c);
		return;
	}
	if (c->cbs.on_timeout) {
		c->cbs.on_timeout(c, c->arg);
	} else {
		set_why(c, "timeout");
		hard_close(c);
	}
}

void
mc_conn_set_timeout(struct mc_conn *c, unsigned ms)
{
	c->timeout_ms = ms;
	if (c->closing || c->connecting)
		return;
	if (ms)
		uv_timer_start(&c->timer, timer_cb, ms, 0);
	else
		uv_timer_stop(&c->timer);
}

static void
kick_cb(uv_idle_t *h)
{
	struct mc_conn *c = h->data;
	uv_idle_stop(h);
	if (c->closing || c->paused || c->connecting)
		return;
	if (c->handshaking) {
		update_reading(c);
		return;
	}
	if (c->in.len > 0 && c->cbs.on_read) {
		c->cbs.on_read(c, c->arg);
		if (c->closing)
			return;
	}
	if (c->z && z_deliver(c) < 0)
		return;
	if (c->tls_up)
		tls_pump(c);
	else
		update_reading(c);
}

void
mc_conn_pause(struct mc_conn *c)
{
	if (c->closing)
		return;
	c->paused = true;
	uv_idle_stop(&c->kick);
	update_reading(c);
}

void
mc_conn_resume(struct mc_conn *c)
{
	if (c->closing)
		return;
	c->paused = false;
	/* Deliver what is buffered from the loop, not from inside the caller's stack. */
	uv_idle_start(&c->kick, kick_cb);
	update_reading(c);
}

/* ---- compression ---- */

/*
 * Inflate compressed input into in while there is room, handing each
 * piece to on_read: how far the protocol consumes, not what the peer
 * sent, decides how much is inflated. -1 when the conn is closing
 * (corrupt input closes it).
 */
static int
z_deliver(struct mc_conn *c)
{
	for (;;) {
		if (c->closing)
			return -1;
		if (c->paused || (c->zin.len == 0 && !c->z_more))
			return 0;
		size_t space = c->in.max - c->in.len;
		if (space > RX_CHUNK)
			space = RX_CHUNK;
		if (space == 0)
			return 0;
		char *p = mc_buf_reserve(&c->in, space);
		size_t used, made;
		int r = mc_zstream_inflate(c->z, c->zin.data, c->zin.len, &used, p, space, &made);
		mc_buf_consume(&c->zin, used);
		if (r < 0) {
			set_why(c, "%s", mc_zstream_error(c->z));
			mc_trace(MC_TRACE_PROTO, "conn [%s]:%u: %s", c->peer_ip, c->peer_port, c->why);
			start_close(c, NULL);
			return -1;
		}
		c->z_more = made == space;
		if (made == 0) {
			if (used == 0)
				return 0;
			continue;
		}
		mc_buf_commit(&c->in, made);
		if (c->cbs.on_read)
			c->cbs.on_read(c, c->arg);
	}
}

int
mc_conn_compress(struct mc_conn *c)
{
	if (c->closing || c->connecting || c->handshaking || c->z)
		return -1;
	c->z = mc_zstream_new();
	if (c->z == NULL)
		return -1;
	/* Whatever was read past the command that turned compression on is the peer's first compressed bytes. */
	struct mc_buf t = c->zin;
	c->zin = c->in;
	c->in = t;
	if (!c->paused && c->zin.len)
		uv_idle_start(&c->kick, kick_cb);   /* inflate it from the loop, not inside the caller */
	update_reading(c);
	return 0;
}

bool
mc_conn_is_compressed(const struct mc_conn *c)
{
	return c->z != NULL;
}

void
mc_conn_shrink(struct mc_conn *c)
{
	if (c->closing)
		return;
	if (c->z && c->zin.len == 0 && !c->z_more)
		mc_zstream_rest(c->z);
	if (c->zin.len == 0)
		mc_buf_free(&c->zin);
	if (c->in.len == 0)
		mc_buf_free(&c->in);
	/* Between reads rx holds nothing: read_cb copies every ciphertext byte into the read BIO. */
	if (c->rx && !c->handshaking) {
		free(c->rx);
		c->rx = NULL;
	}
}

size_t
mc_conn_compress_mem(const struct mc_conn *c)
{
	return c->z ? mc_zstream_mem(c->z) : 0;
}

/* ---- closing ---- */

static void
shutdown_cb(uv_shutdown_t *req, int status)
{
	struct mc_conn *c = req->handle->data;
	(void)status;
	hard_close(c);
}

/* Flush queued output, then close. why may be NULL when already set. */
static void
start_close(struct mc_conn *c, const char *why)
{
	if (why)
		set_why(c, "%s", why);
	if (c->closing)
		return;
	if (c->z && !c->handles_closed && mc_zstream_dirty(c->z))
		z_write(c, NULL, 0, true);   /* what the protocol wrote last (a BYE) must be readable */
	if (c->closing)
		return;
	c->closing = true;
	uv_idle_stop(&c->kick);
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
	}
	if (c->connecting) {
		hard_close(c);
		return;
	}
	if (c->tls_up && !c->tls_failed) {
		/* Send close_notify; the peer's is not waited for (RFC 8446 section 6.1 allows it). */
		ERR_clear_error();
		SSL_shutdown(c->ssl);
		if (flush_wbio(c) < 0)
			return;
	}
	uv_timer_start(&c->timer, timer_cb, c->timeout_ms ? c->timeout_ms : CLOSE_LINGER_MS, 0);
	c->shutdown_req.data = c;
	if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, shutdown_cb) < 0)
		hard_close(c);
}

void
mc_conn_close(struct mc_conn *c)
{
	start_close(c, "closed");
}

void
mc_conn_abort(struct mc_conn *c)
{
	set_why(c, "aborted");
	hard_close(c);
}

/* ---- creation ---- */

/*
 * A connection whose socket is open: its addresses, then reading. NULL if
 * starting to read already closed it (silently: it never was a session).
 */
static struct mc_conn *
conn_start(struct mc_conn *c)
{
	fill_addrs(c);
	update_reading(c);
	if (c->closing) {
		c->silent = true;
		return NULL;
	}
	return c;
}

struct mc_conn *
mc_conn_accept(uv_stream_t *server, size_t in_max, const struct mc_conn_cbs *cbs, void *arg)
{
	struct mc_conn *c = conn_new(server->loop, in_max, cbs, arg);
	if (c == NULL)
		return NULL;
	int r = uv_accept(server, (uv_stream_t *)&c->tcp);
	if (r < 0) {
		mc_warn("accept failed: %s", uv_strerror(r));
		c->silent = true;
		hard_close(c);
		return NULL;
	}
	return conn_start(c);
}

struct mc_conn *
mc_conn_open(uv_loop_t *loop, int fd, size_t in_max, const struct mc_conn_cbs *cbs, void *arg)
{
	struct mc_conn *c = conn_new(loop, in_max, cbs, arg);
	if (c == NULL) {
		close(fd);
		return NULL;
	}
	int r = uv_tcp_open(&c->tcp, fd);
	if (r < 0) {
		mc_warn("cannot use socket %d: %s", fd, uv_strerror(r));
		close(fd);
		c->silent = true;
		hard_close(c);
		return NULL;
	}
	return conn_start(c);
}

static void
connect_cb(uv_connect_t *req, int status)
{
	struct mc_conn *c = req->data;
	if (status == UV_ECANCELED || c->handles_closed)
		return;
	c->connecting = false;
	uv_timer_stop(&c->timer);
	if (status < 0) {
		set_why(c, "connect failed: %s", uv_strerror(status));
		hard_close(c);
		if (c->cbs.on_connect)
			c->cbs.on_connect(c, c->arg, status);
		return;
	}
	fill_addrs(c);
	if (c->cbs.on_connect)
		c->cbs.on_connect(c, c->arg, 0);
	if (c->closing)
		return;
	if (c->timeout_ms)
		uv_timer_start(&c->timer, timer_cb, c->timeout_ms, 0);
	if (c->ssl && c->handshaking)
		tls_input(c);
	else
		update_reading(c);
}

struct mc_conn *
mc_conn_connect(uv_loop_t *loop, const struct sockaddr *addr, size_t in_max, unsigned connect_timeout_ms,
		const struct mc_conn_cbs *cbs, void *arg)
{
	struct mc_conn *c = conn_new(loop, in_max, cbs, arg);
	if (c == NULL)
		return NULL;
	size_t alen = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	memcpy(&c->peer, addr, alen);
	fill_addrs(c);  /* peer text from addr; local port once connected */
	c->connect_req.data = c;
	c->connecting = true;
	int r = uv_tcp_connect(&c->connect_req, &c->tcp, addr, connect_cb);
	if (r < 0) {
		c->silent = true;
		hard_close(c);
		return NULL;
	}
	if (connect_timeout_ms)
		uv_timer_start(&c->timer, timer_cb, connect_timeout_ms, 0);
	return c;
}

/* ---- addresses ---- */

const struct sockaddr_storage *
mc_conn_peer(const struct mc_conn *c)
{
	return &c->peer;
}

const char *
mc_conn_peer_ip(const struct mc_conn *c)
{
	return c->peer_ip;
}

unsigned
mc_conn_peer_port(const struct mc_conn *c)
{
	return c->peer_port;
}

unsigned
mc_conn_local_port(const struct mc_conn *c)
{
	return c->local_port;
}

void
mc_conn_set_nodelay(struct mc_conn *c, bool on)
{
	if (!c->closing)
		uv_tcp_nodelay(&c->tcp, on ? 1 : 0);
}

bool
mc_conn_peer_is_loopback(const struct mc_conn *c)
{
	if (c->peer.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&c->peer;
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	}
	if (c->peer.ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)&c->peer)->sin6_addr;
		if (IN6_IS_ADDR_LOOPBACK(a))
			return true;
		return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
	}
	return false;
}
