/*
 * netsvc.h - the network front of a mailbox-access daemon (pop3d, imapd):
 * listeners, implicit TLS, the connection limit, the session list, reload
 * and stop. The protocol gets each client as an mc_conn and does the rest.
 *
 *   main:  mc_daemon_init(d, ...);
 *          svc = mc_netsvc_open(d, &ops, err, sizeof(err));  binds, loads TLS (still root)
 *          mc_daemon_drop(d, d->cfg.global.mail_user, NULL);
 *          ... open the resolverd client ...
 *          return mc_daemon_run(d);
 *
 * What the service does, so the protocol does not:
 *   - binds ops->conf's listen (plain; STLS/STARTTLS use mc_netsvc_tls())
 *     and listen_tls (implicit TLS, RFC 8314) before the privilege drop;
 *     loads [global] tls_cert/tls_key (made self-signed when unset);
 *   - on a listen_tls address, runs the handshake (10 s bound) before the
 *     protocol hears of the client: on_client sees TLS already up;
 *   - sets TCP_NODELAY on every client (answers end in short writes);
 *   - counts clients for `postern status` (d->connections) and, past
 *     max_connections (0: no limit; counted over processes when ops->count
 *     says so), sends ops->busy_reply and closes instead of calling on_client;
 *   - reload (SIGHUP, postern reload): the certificate (new connections get
 *     it) and max_connections from the new config, then ops->on_reload;
 *   - stop: closes the listeners, calls ops->on_shutdown for every session
 *     (say goodbye and mc_conn_close) or aborts it when NULL, then ops->on_stop.
 *
 * The protocol's callbacks (ops->cbs) run with the session pointer that
 * on_client returned as their arg, exactly as mc_conn documents them; the
 * service sits in between only to count and unlink on close. The session
 * must not free the conn; it frees itself in its on_close. One service per
 * process (it takes over d->data, d->on_reload and d->on_stop).
 *
 * Owns the listeners, the TLS context and the client list. Never reads a
 * byte of the protocol, never touches a mailbox or a password.
 */
#ifndef MC_NETSVC_H
#define MC_NETSVC_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/config.h"
#include "util/conn.h"

struct mc_daemon;
struct mc_netsvc;

/* The part of a protocol section ([pop3d], [imapd]) the service uses. */
struct mc_netsvc_conf {
	const struct mc_listen_list *listen;      /* plain TCP (upgrade with STLS/STARTTLS) */
	const struct mc_listen_list *listen_tls;  /* implicit TLS */
	unsigned max_connections;                 /* 0: no limit */
};

/* A new client as the protocol receives it; valid during on_client only (copy what you keep). */
struct mc_netsvc_client {
	struct mc_conn *conn;
	const char *id;          /* session id for logs, "P0A1B2C3D" (prefix letter from ops->id_prefix) */
	const char *ip;          /* the peer's address, "127.0.0.1", "::1" */
	unsigned port;           /* the peer's port */
	bool tls;                /* came in on listen_tls: TLS is already up */
};

struct mc_netsvc_ops {
	/* Fill conf from a config (at open and at every reload). Required. */
	void (*conf)(const struct mc_config *cfg, struct mc_netsvc_conf *conf);
	/* Plaintext input bound of each conn (the longest line or literal the protocol reads at once). */
	size_t in_max;
	/* First letter of session ids ('P' for POP3, 'I' for IMAP). */
	char id_prefix;
	/* Written to a client over max_connections before the close ("-ERR [SYS/TEMP] ...\r\n"). */
	const char *busy_reply;
	/* The protocol's conn callbacks; their arg is what on_client returned. on_close is required. */
	const struct mc_conn_cbs *cbs;
	/* A client to serve (greet it, set its idle timeout). Return the session, or NULL to drop it. */
	void *(*on_client)(struct mc_netsvc *svc, const struct mc_netsvc_client *cl, void *arg);
	/* Stop: say goodbye and mc_conn_close (NULL: the conn is aborted). May be NULL. */
	void (*on_shutdown)(void *session);
	/* After the service's own reload; return -1 with err to refuse the new config. May be NULL. */
	int (*on_reload)(struct mc_netsvc *svc, const struct mc_config *newcfg, char *err, size_t errsz);
	/* After the service stopped its listeners and sessions (close peer channels here). May be NULL. */
	void (*on_stop)(struct mc_netsvc *svc);
	/*
	 * This process's client count changed to local: return the count
	 * max_connections bounds (a service spread over several processes
	 * returns the sum over all of them: imapd/procs.c). NULL: local.
	 */
	unsigned (*count)(struct mc_netsvc *svc, unsigned local, void *arg);
	void *arg;               /* passed to on_client; mc_netsvc_arg() gives it back */
};

/*
 * Load TLS and bind every listener of ops->conf(&d->cfg); hook into d's
 * reload and stop. Call before mc_daemon_drop. NULL with err on failure
 * (the caller exits: mc_fatal).
 */
struct mc_netsvc *mc_netsvc_open(struct mc_daemon *d, const struct mc_netsvc_ops *ops, char *err, size_t errsz);
/*
 * Serve fd, a stream socket already connected, as a client accepted on a
 * plain listener (counted, limited, handed to on_client): a unit test or
 * a fuzzer drives a whole session through one end of a socketpair. The
 * service owns fd from here on. 0, or -1 (fd closed).
 */
int mc_netsvc_adopt(struct mc_netsvc *svc, int fd);
/* A new sequence of session ids, of this process's own (a forked worker calls it: imapd/procs.c). */
void mc_netsvc_reseed(struct mc_netsvc *svc);
/* The current server TLS context for STLS/STARTTLS (NULL: none loaded, do not offer it). */
SSL_CTX *mc_netsvc_tls(const struct mc_netsvc *svc);
/* Live clients (what postern status shows). */
unsigned mc_netsvc_count(const struct mc_netsvc *svc);
/* Is the service stopping (a session that finishes a command should say goodbye)? */
bool mc_netsvc_stopping(const struct mc_netsvc *svc);
struct mc_daemon *mc_netsvc_daemon(const struct mc_netsvc *svc);
void *mc_netsvc_arg(const struct mc_netsvc *svc);
/*
 * May this client send a password now? True with TLS; without, as
 * allow_plaintext_auth (enum mc_plain_auth) says: yes, no, or loopback
 * clients only.
 */
bool mc_netsvc_plain_auth_ok(const struct mc_conn *c, int allow_plaintext_auth);

#endif
