/*
 * tcp_client.h - the blocking test client of the session unit tests: a
 * TCP connection to 127.0.0.1, optionally wrapped in TLS (STARTTLS or
 * implicit), with a read buffer the tests take lines or replies from.
 *
 * Included by one test program each (static functions, cmocka asserts);
 * never by library code. The caller owns the struct; cl_close frees it.
 */
#ifndef TEST_TCP_CLIENT_H
#define TEST_TCP_CLIENT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

struct client {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	char buf[65536];
	size_t len;
};

static inline void
cl_open(struct client *c, unsigned port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	/* A server that never answers fails the test instead of hanging it. */
	struct timeval tv = { .tv_sec = 10 };

	memset(c, 0, sizeof(*c));
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(c->fd >= 0);
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
}

/*
 * The client's TLS handshake. Nothing may be buffered from before it: a
 * server that wrote after its go-ahead reply would be answering plaintext
 * the client never meant to send inside TLS.
 */
static inline void
cl_tls(struct client *c)
{
	assert_int_equal(c->len, 0);
	c->ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(c->ctx);
	c->ssl = SSL_new(c->ctx);
	SSL_set_fd(c->ssl, c->fd);
	assert_int_equal(SSL_connect(c->ssl), 1);
}

static inline void
cl_close(struct client *c)
{
	if (c->ssl) {
		SSL_free(c->ssl);
		SSL_CTX_free(c->ctx);
	}
	close(c->fd);
}

static inline void
cl_send(struct client *c, const char *p, size_t n)
{
	if (c->ssl)
		assert_int_equal(SSL_write(c->ssl, p, (int)n), (int)n);
	else
		assert_int_equal(write(c->fd, p, n), (ssize_t)n);
}

static inline void
cl_sends(struct client *c, const char *s)
{
	cl_send(c, s, strlen(s));
}

/* Read more into the buffer (kept NUL-terminated); 0 at EOF, error or timeout. */
static inline size_t
cl_fill(struct client *c)
{
	assert_true(c->len < sizeof(c->buf) - 1);
	ssize_t n = c->ssl ? SSL_read(c->ssl, c->buf + c->len, (int)(sizeof(c->buf) - 1 - c->len))
			   : read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
	if (n <= 0)
		return 0;
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	return (size_t)n;
}

/* One line from the server without its CRLF; false at EOF. */
static inline bool
cl_line(struct client *c, char *out, size_t outsz)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (nl) {
			size_t n = (size_t)(nl - c->buf) + 1;
			size_t k = n >= 2 && c->buf[n - 2] == '\r' ? n - 2 : n - 1;
			assert_true(k < outsz);
			memcpy(out, c->buf, k);
			out[k] = '\0';
			memmove(c->buf, c->buf + n, c->len - n);
			c->len -= n;
			return true;
		}
		if (cl_fill(c) == 0)
			return false;
	}
}

/* The server must close: the next read sees EOF (or a reset). */
static inline void
cl_expect_closed(struct client *c)
{
	char tmp[256];
	ssize_t n = c->ssl ? SSL_read(c->ssl, tmp, sizeof(tmp)) : read(c->fd, tmp, sizeof(tmp));
	assert_true(n <= 0);
}

#endif
