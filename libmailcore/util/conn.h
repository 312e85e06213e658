/*
 * conn.h - one TCP connection with optional TLS, for protocol servers and
 * for the outbound SMTP client.
 *
 * Reading fills a bounded plaintext input buffer and calls on_read; the
 * protocol takes whole lines from it (mc_buf_line) or raw bytes. Writing
 * queues bytes (encrypted first when TLS is on) and never blocks; the
 * protocol watches mc_conn_pending_out() and on_drain to stream large
 * answers with bounded memory. Compression (mc_conn_compress) can be
 * turned on above TLS; then output is held in the compressor until
 * mc_conn_flush() ends a batch. TLS runs through memory BIOs on the same
 * libuv stream, so plain and TLS connections share every code path.
 *
 * mc_conn_starttls() discards everything buffered in the plaintext input
 * (RFC 3207, RFC 2595: nothing pipelined before the handshake may be
 * acted on afterwards). Idle timeout: on_timeout runs when no input came
 * for the set time; the protocol writes its goodbye and closes.
 *
 * Lifetime: the conn is freed after on_close returns; no callback runs
 * after that. mc_conn_close() flushes queued output first.
 *
 * Input flow: reading stops while the input buffer is full (len == max);
 * on_read then sees the full buffer and the protocol decides (reject the
 * overlong line and consume it, or close). Input consumed inside on_read
 * restarts reading by itself; after consuming outside on_read, call
 * mc_conn_resume(). Resume also runs on_read once, from the loop, when
 * input is still buffered (pipelined commands read while paused).
 *
 * Failures: a failed connect calls on_connect(err) and then on_close; a
 * failed handshake calls on_tls(false) and then on_close. Any callback may
 * call mc_conn_close/abort on its own conn; later calls on a closing conn
 * do nothing (writes return -1).
 */
#ifndef MC_CONN_H
#define MC_CONN_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

#include "util/buf.h"

struct mc_conn;

/* on_drain runs once queued output falls below this after a write. */
#define MC_CONN_LOWAT (64 * 1024)

struct mc_conn_cbs {
	/* New plaintext input is in mc_conn_in(c). Not called while paused. */
	void (*on_read)(struct mc_conn *c, void *arg);
	/* Output queued fell below the low-water mark (for streaming). May be NULL. */
	void (*on_drain)(struct mc_conn *c, void *arg);
	/* A TLS handshake finished (ok) or failed (!ok, the conn is closing). May be NULL. */
	void (*on_tls)(struct mc_conn *c, void *arg, bool ok);
	/* No input for the idle timeout. The protocol says goodbye and closes. */
	void (*on_timeout)(struct mc_conn *c, void *arg);
	/* Connected (client conns from mc_conn_connect only); err is a libuv error code or 0. */
	void (*on_connect)(struct mc_conn *c, void *arg, int err);
	/* The connection is gone (peer closed, error, or mc_conn_close done). why: short reason. */
	void (*on_close)(struct mc_conn *c, void *arg, const char *why);
};

/* Accept a pending connection on server; in_max bounds the plaintext input buffer. */
struct mc_conn *mc_conn_accept(uv_stream_t *server, size_t in_max, const struct mc_conn_cbs *cbs, void *arg);
/*
 * A conn on a stream socket that is already connected: one end of a
 * socketpair through which a unit test or a fuzzer drives a whole
 * protocol session, or an inherited socket. The conn owns fd from here
 * on; NULL (fd closed) when it cannot be used. Its peer address is what
 * getpeername says (none for AF_UNIX: mc_conn_peer_ip gives "").
 */
struct mc_conn *mc_conn_open(uv_loop_t *loop, int fd, size_t in_max, const struct mc_conn_cbs *cbs, void *arg);
/*
 * Connect to addr (outbound); on_connect reports the outcome (UV_ETIMEDOUT
 * after connect_timeout_ms, 0 for none). NULL, with no callback, when the
 * connect cannot even start (bad address family).
 */
struct mc_conn *mc_conn_connect(uv_loop_t *loop, const struct sockaddr *addr, size_t in_max,
				unsigned connect_timeout_ms, const struct mc_conn_cbs *cbs, void *arg);

struct mc_buf *mc_conn_in(struct mc_conn *c);
/* Queue bytes for sending. -1 when the connection is closing. */
int mc_conn_write(struct mc_conn *c, const void *p, size_t n);
int mc_conn_writes(struct mc_conn *c, const char *s);
int mc_conn_printf(struct mc_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Bytes queued but not yet handed to the kernel. */
size_t mc_conn_pending_out(const struct mc_conn *c);

/* Stop and restart reading (while waiting on another daemon; for back-pressure). */
void mc_conn_pause(struct mc_conn *c);
void mc_conn_resume(struct mc_conn *c);
/* Idle timeout in milliseconds (0: none); restarted by every read. */
void mc_conn_set_timeout(struct mc_conn *c, unsigned ms);

/*
 * Start TLS now (server or client side); buffered plaintext input is
 * discarded. Output written before goes out in plaintext first; output
 * written during the handshake is held and sent encrypted after it. sni:
 * the server name for a client (also checked when the context verifies).
 * -1 when closing, already TLS, or OpenSSL fails.
 */
int mc_conn_starttls(struct mc_conn *c, SSL_CTX *ctx, bool server, const char *sni);
bool mc_conn_is_tls(const struct mc_conn *c);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for Received: headers and logs; "" without TLS. */
const char *mc_conn_tls_desc(const struct mc_conn *c);
SSL *mc_conn_ssl(struct mc_conn *c);

/*
 * Compress both directions from here on (raw DEFLATE, RFC 1951; IMAP
 * COMPRESS, RFC 4978), inside TLS when TLS is on. Output written before
 * went out uncompressed; input already buffered past what the protocol
 * consumed is the peer's first compressed bytes. Inflated input obeys
 * in_max like plain input. A corrupt stream closes the conn (on_close's
 * why says so). -1 when closing, handshaking, already compressing, or out
 * of memory.
 */
int mc_conn_compress(struct mc_conn *c);
bool mc_conn_is_compressed(const struct mc_conn *c);
/* End a batch of output: with compression a sync flush, so the peer can read it all; else nothing to do. */
int mc_conn_flush(struct mc_conn *c);
/*
 * The protocol expects a long pause (IMAP IDLE): release what can be
 * rebuilt on the next byte - empty input buffers, the TLS read buffer,
 * the compressor after a flush, the decompressor between blocks (its
 * window kept as a copy of the bytes it holds).
 */
void mc_conn_shrink(struct mc_conn *c);
/* Bytes the compression state holds now (0 without compression). */
size_t mc_conn_compress_mem(const struct mc_conn *c);

/* The peer's address and its text form ("127.0.0.1", "::1"); the local port. */
const struct sockaddr_storage *mc_conn_peer(const struct mc_conn *c);
const char *mc_conn_peer_ip(const struct mc_conn *c);
unsigned mc_conn_peer_port(const struct mc_conn *c);
unsigned mc_conn_local_port(const struct mc_conn *c);
bool mc_conn_peer_is_loopback(const struct mc_conn *c);
/*
 * TCP_NODELAY: send small writes at once. For request/response protocols
 * whose answers end in a short write (POP3 "+OK", a final ".\r\n"), which
 * Nagle's algorithm would hold until the client's delayed ACK (40 ms).
 */
void mc_conn_set_nodelay(struct mc_conn *c, bool on);

/*
 * Flush queued output (with TLS, then close_notify; the peer's is not
 * awaited), then close; on_close follows. A peer that does not read is
 * cut off after the idle timeout (30 s when none is set).
 */
void mc_conn_close(struct mc_conn *c);
/* Close now, dropping queued output. */
void mc_conn_abort(struct mc_conn *c);

#endif
