/*
 * idle.c - IDLE (RFC 2177) and the change notices that wake it: queued
 * sends MBOX_CHANGED to run_dir/imapd.sock after each local delivery, and
 * every session idling on that user's mailbox is told at once (untagged
 * EXISTS/FETCH/EXPUNGE from the index, as imapd_view_sync computes them).
 *
 * Called by commands.c's table (IDLE), by session.c for the "DONE" line,
 * and by main.c (the notice socket); with several processes the master
 * passes each notice on to its workers, and a worker's own changes go to
 * the others through it (procs.c). The socket accepts only the roles the
 * catalogue allows to send MBOX_CHANGED (queued, imapd, pop3d), checked
 * by chan.c before anything here runs. A notice is a hint: a session that
 * misses one still sees every change at its next command.
 *
 * A wake that finds the user's store lent to a pool thread (append.c)
 * passes by and marks the session; it is told when the store is back.
 *
 * Owns the notice server. Never: trust a notice's path as a place to
 * open (it only selects sessions whose own store path is equal).
 */
#include "imapd/imapd.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mail/mailstore.h"
#include "mail/proto.h"
#include "util/chan.h"
#include "util/log.h"

void
imapd_cmd_idle(struct imapd_session *s, struct imap_p *p, bool uid)
{
	if (imap_p_end(p) < 0) {
		imapd_done(s, "BAD", "%s", p->err);
		return;
	}
	snprintf(s->idle_tag, sizeof(s->idle_tag), "%s", s->cmdtag);
	s->wait = IMAPD_W_IDLE;
	/* Counted before the sync: a change made in another worker after it is then sent here (procs.c). */
	imapd_procs_idle(s, true);
	imapd_send(s, "+ idling");
	/* What changed before IDLE was reported with the last command; anything new goes out now. */
	if (s->view)
		imapd_view_sync(s, true);
	imapd_flush(s);
	/*
	 * An idling client may stay for hours: its index pages go back until it
	 * asks for something, and when all of its user's sessions idle, the
	 * index connection itself (stores.c).
	 */
	mc_store_release_memory(s->store);
	imapd_store_idle(s);
	(void)uid;
}

void
imapd_idle_line(struct imapd_session *s, const char *line, size_t len)
{
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	s->wait = IMAPD_W_NONE;
	imapd_procs_idle(s, false);
	snprintf(s->cmdtag, sizeof(s->cmdtag), "%s", s->idle_tag);
	if (imapd_store_busy(s) < 0) {
		imapd_session_close(s, "[UNAVAILABLE] Mailbox not available, try again later", "index unavailable");
		return;
	}
	s->expunge_ok = true;
	if (len == 4 && strncasecmp(line, "DONE", 4) == 0)
		imapd_done(s, "OK", "IDLE terminated");
	else
		imapd_done(s, "BAD", "Expected DONE");
}

/* Wake the sessions of the store at path (and, with a mailbox name, only those on that mailbox). */
static void
wake(struct imapd_server *srv, const char *path, const char *mailbox, const struct imapd_session *except)
{
	/* The user's sessions share one store (stores.c): its pages go back once, after the last of them. */
	struct mc_store *idled = NULL;
	for (struct imapd_session *s = srv->sessions; s; s = s->next) {
		if (s == except || s->closing || s->view == NULL || strcmp(s->home, path) != 0)
			continue;
		if (mailbox[0] && strcmp(mailbox, s->view->name) != 0)
			continue;
		if (s->wait == IMAPD_W_IDLE && !s->busy) {
			if (imapd_store_lent(s->store)) {
				s->idle_missed = true;   /* a pool thread has the index: told when it is back */
				continue;
			}
			if (imapd_store_need(s->store) < 0)
				continue;   /* the next command tries again */
			s->idle_missed = false;
			imapd_view_sync(s, true);
			imapd_flush(s);
			idled = s->store;
		}
	}
	mc_store_release_memory(idled);
	imapd_store_rest(idled);
}

void
imapd_notice_msg(struct mc_chan *ch, struct mc_msg *m, void *arg)
{
	struct imapd_server *srv = arg;
	char addr[MC_ADDR_MAX], mailbox[256], path[MC_PATH_MAX];
	if (m->type != MC_MSG_MBOX_CHANGED)
		return;
	path[0] = '\0';
	if (mc_msg_get_str(m, addr, sizeof(addr)) < 0 || mc_msg_get_str(m, mailbox, sizeof(mailbox)) < 0 ||
	    (mc_msg_more(m) && mc_msg_get_str(m, path, sizeof(path)) < 0) || mc_msg_end(m) < 0) {
		mc_warn("imapd.sock: malformed MBOX_CHANGED from %s", mc_chan_peer_name(ch));
		return;
	}
	/* Once per change in the log: where it came in (a worker hears it again from its master). */
	if (imapd_procs_is_worker())
		mc_debug("mailbox changed: %s %s %s", addr, mailbox, path);
	else
		mc_info("imapd.sock: mailbox changed: %s %s %s", addr, mailbox, path);
	imapd_procs_fanout(ch, addr, mailbox, path);
	if (path[0])
		wake(srv, path, mailbox, NULL);
}

void
imapd_idle_changed_at(struct imapd_server *srv, const char *user, const char *home, const char *mailbox,
		      const struct imapd_session *except)
{
	wake(srv, home, mailbox, except);
	/* Sessions of this user in the other workers (procs.c); nothing when imapd is one process. */
	imapd_procs_changed(user, mailbox, home);
}

void
imapd_idle_changed(struct imapd_session *s, const char *mailbox)
{
	imapd_idle_changed_at(s->srv, s->user, s->home, mailbox, s);
}

void
imapd_idle_missed(struct imapd_session *s)
{
	s->idle_missed = false;
	if (s->wait != IMAPD_W_IDLE || s->busy || s->view == NULL || imapd_store_need(s->store) < 0)
		return;   /* not idling any more: its command syncs it anyway */
	imapd_view_sync(s, true);
	imapd_flush(s);
	mc_store_release_memory(s->store);
	imapd_store_rest(s->store);
}

static const struct mc_chan_cbs notice_cbs = {
	.on_msg = imapd_notice_msg,
	.on_up = imapd_procs_peer_up,
	.on_down = imapd_procs_peer_down,
};

void
imapd_notices_start(struct imapd_server *srv, const struct mc_config *cfg)
{
	char sock[MC_PATH_MAX + 32];
	mc_config_sock(cfg, sock, sizeof(sock), MC_SOCK_IMAPD);
	/* 0666: who may send what is checked per message against the catalogue's roles. */
	srv->notices = mc_chan_server_start(srv->loop, sock, 0666, &mc_proto, MC_ROLE_IMAPD, "imapd", &notice_cbs, srv);
	if (srv->notices == NULL)
		mc_warn("cannot listen on %s: IDLE sees new mail only at the client's next command", sock);
}

void
imapd_notices_stop(struct imapd_server *srv)
{
	if (srv->notices)
		mc_chan_server_close(srv->notices);
	srv->notices = NULL;
}
