/*
 * main.c - imapd: the IMAP server's main (RFC 9051 / 3501; 993 implicit TLS, RFC 8314).
 *
 * This first version binds the IMAP listeners of [imapd] (listen, and
 * listen_tls with the server TLS context), drops to [global] mail_user,
 * answers its control socket, and tells every client that the service is
 * not available yet (an untagged BYE with the UNAVAILABLE response code of
 * RFC 5530), then closes. Mailbox access comes with the IMAP session
 * state machine in its own file.
 *
 * Owns the listeners, the TLS context and the open connections; never
 * touches a mailbox or a password.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "mail/daemon.h"
#include "util/conn.h"
#include "util/listen.h"
#include "util/log.h"
#include "util/tls.h"

#define GREETING "* BYE [UNAVAILABLE] IMAP service is not available yet, try again later\r\n"
/* Enough for a client that talks before the greeting; nothing is read here. */
#define IN_MAX 1024
/* A TLS handshake that has not finished by then is dropped. */
#define HANDSHAKE_MS 10000

enum { TAG_PLAIN = 1, TAG_TLS = 2 };

struct session {
	struct session *next, **prevp;
	struct mc_conn *conn;
	char id[16];
};

static struct mc_daemon daemon_;
static struct mc_tls tls;
static struct session *sessions;
static unsigned long session_counter;

static void
greet_and_close(struct session *s)
{
	mc_info("%s: refused from=%s tls=%s: service not available yet", s->id, mc_conn_peer_ip(s->conn),
		mc_conn_is_tls(s->conn) ? "yes" : "no");
	mc_conn_writes(s->conn, GREETING);
	mc_conn_close(s->conn);
}

static void
on_read(struct mc_conn *c, void *arg)
{
	/* Whatever the client sends before the close is not acted on. */
	mc_buf_reset(mc_conn_in(c));
	(void)arg;
}

static void
on_tls(struct mc_conn *c, void *arg, bool ok)
{
	struct session *s = arg;
	if (ok)
		greet_and_close(s);
	else
		mc_info("%s: TLS handshake failed from=%s", s->id, mc_conn_peer_ip(c));
}

static void
on_timeout(struct mc_conn *c, void *arg)
{
	struct session *s = arg;
	mc_info("%s: timeout from=%s", s->id, mc_conn_peer_ip(c));
	mc_conn_abort(c);
}

static void
on_close(struct mc_conn *c, void *arg, const char *why)
{
	struct session *s = arg;
	*s->prevp = s->next;
	if (s->next)
		s->next->prevp = s->prevp;
	daemon_.connections--;
	mc_debug("%s: closed: %s", s->id, why);
	free(s);
	(void)c;
}

static const struct mc_conn_cbs conn_cbs = {
	.on_read = on_read,
	.on_tls = on_tls,
	.on_timeout = on_timeout,
	.on_close = on_close,
};

static void
on_accept(uv_stream_t *server, int tag, void *arg)
{
	struct session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		mc_panic("out of memory");
	snprintf(s->id, sizeof(s->id), "%05lX%05lX", (unsigned long)getpid() & 0xFFFFF, ++session_counter & 0xFFFFF);
	s->conn = mc_conn_accept(server, IN_MAX, &conn_cbs, s);
	if (s->conn == NULL) {
		free(s);
		return;
	}
	s->next = sessions;
	s->prevp = &sessions;
	if (sessions)
		sessions->prevp = &s->next;
	sessions = s;
	daemon_.connections++;
	mc_conn_set_timeout(s->conn, HANDSHAKE_MS);
	if (tag == TAG_TLS) {
		if (mc_conn_starttls(s->conn, tls.server, true, NULL) < 0) {
			mc_warn("%s: cannot start TLS from=%s", s->id, mc_conn_peer_ip(s->conn));
			mc_conn_abort(s->conn);
		}
		return;
	}
	greet_and_close(s);
	(void)arg;
}

static int
on_reload(struct mc_daemon *d, const struct mc_config *n, char *err, size_t errsz)
{
	/* From the files passed with the reload (root-only keys), else the paths; on failure the old one stays. */
	if (tls.server)
		mc_daemon_reload_tls(d, &tls, n);
	(void)err;
	(void)errsz;
	return 0;
}

static void
on_stop(struct mc_daemon *d)
{
	struct session *next;
	mc_listen_close_all();
	for (struct session *s = sessions; s; s = next) {
		next = s->next;
		mc_conn_abort(s->conn);
	}
	(void)d;
}

int
main(int argc, char **argv)
{
	struct mc_daemon *d = &daemon_;
	char err[1024];

	mc_daemon_init(d, "imapd", MC_ROLE_IMAPD, argc, argv);
	d->on_reload = on_reload;
	d->on_stop = on_stop;

	if (d->cfg.imapd.listen_tls.n &&
	    mc_tls_load(&tls, d->cfg.global.tls_cert, d->cfg.global.tls_key, err, sizeof(err)) < 0)
		mc_fatal("%s", err);
	if (mc_listen_open(d->loop, &d->cfg.imapd.listen, TAG_PLAIN, on_accept, NULL, err, sizeof(err)) < 0 ||
	    mc_listen_open(d->loop, &d->cfg.imapd.listen_tls, TAG_TLS, on_accept, NULL, err, sizeof(err)) < 0)
		mc_fatal("%s", err);

	mc_daemon_drop(d, d->cfg.global.mail_user, NULL);
	int rc = mc_daemon_run(d);
	mc_tls_free(&tls);
	return rc;
}
