/*
 * modify.c - the IMAP commands that change mail, wired to the store's
 * operations (mail/mailstore_ops.h): STORE (RFC 3501 §6.4.6), EXPUNGE
 * and UID EXPUNGE (§6.4.3, RFC 4315), CLOSE's silent expunge (§6.4.2),
 * COPY with COPYUID (RFC 4315), MOVE (RFC 6851), DELETE, RENAME,
 * SUBSCRIBE, UNSUBSCRIBE (§6.3.4-6.3.7). APPEND is append.c.
 *
 * Called by commands.c's table. The store does the work in one
 * transaction per command; this file turns sets into UIDs of the view,
 * answers with the untagged responses the RFCs ask for, and keeps the
 * view in step so imapd_view_sync does not report our own changes twice.
 * Expunging takes the POP3 maildrop lock shared (mc_store_lock): while a
 * POP3 session holds it, the messages stay \Deleted and the answer is
 * NO [INUSE].
 *
 * Owns nothing beyond one command. Never: expunge without the lock,
 * change a mailbox selected read-only.
 */
#include "imapd/imapd.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/mailstore.h"
#include "mail/mailstore_ops.h"
#include "util/log.h"

#include <uv.h>

/* The UIDs of the view that set names (as UIDs or as sequence numbers), in view order. */
static int
set_uids(struct imapd_session *s, const struct imap_seqset *set, bool uid, uint32_t **out, size_t *n)
{
	struct imapd_view *v = s->view;
	*out = NULL;
	*n = 0;
	if (v->n == 0)
		return 0;
	uint32_t star = uid ? v->msgs[v->n - 1].uid : v->n;
	if (!uid && imap_seqset_max(set, star) > v->n)
		return -1;
	uint32_t *a = malloc((size_t)v->n * sizeof(*a));
	if (a == NULL)
		return -2;
	for (uint32_t i = 0; i < v->n; i++)
		if (imap_seqset_has(set, uid ? v->msgs[i].uid : i + 1, star))
			a[(*n)++] = v->msgs[i].uid;
	*out = a;
	return 0;
}

/* "1:3,7" for sorted UIDs. */
static void
uid_set_text(const uint32_t *u, size_t n, struct mc_buf *out)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j + 1 < n && u[j + 1] == u[j] + 1)
			j++;
		if (j > i)
			mc_buf_printf(out, "%s%u:%u", i ? "," : "", u[i], u[j]);
		else
			mc_buf_printf(out, "%s%u", i ? "," : "", u[i]);
		i = j + 1;
	}
}

static bool
writable(struct imapd_session *s)
{
	if (!s->view->readonly)
		return true;
	imapd_done(s, "NO", "[READ-ONLY] Mailbox is read-only");
	return false;
}

void
imapd_store_error(struct imapd_session *s, int r, const char *err, const char *what)
{
	switch (r) {
	case MC_STORE_ENOMAILBOX:
		imapd_done(s, "NO", "[TRYCREATE] Mailbox does not exist");
		break;
	case MC_STORE_EEXISTS:
		imapd_done(s, "NO", "[ALREADYEXISTS] Mailbox already exists");
		break;
	case MC_STORE_ECANNOT:
	case MC_STORE_EBADNAME:
		imapd_done(s, "NO", "[CANNOT] %s is not possible", what);
		break;
	case MC_STORE_EOVERQUOTA:
		imapd_done(s, "NO", "[OVERQUOTA] Quota exceeded");
		break;
	case MC_STORE_ELIMIT:
		imapd_done(s, "NO", "[LIMIT] Too many keywords");
		break;
	default:
		mc_warn("%s: %s for user=%s: %s", s->id, what, s->user, err);
		imapd_done(s, "NO", "[SERVERBUG] %s failed", what);
		break;
	}
}

/* ---- STORE ---- */

struct store_ctx {
	struct imapd_session *s;
	bool silent, uid;
	struct mc_buf modified;     /* RFC 7162 [MODIFIED set]: failed UNCHANGEDSINCE */
};

static int
stored(void *arg, const struct mc_store_msg *m, enum mc_store_flag_result r)
{
	struct store_ctx *x = arg;
	struct imapd_view *v = x->s->view;
	uint32_t seq = imapd_view_seq(v, m->uid);
	if (seq == 0)
		return 0;
	if (r == MC_FLAGS_MODIFIED) {
		mc_buf_printf(&x->modified, "%s%u", x->modified.len ? "," : "", x->uid ? m->uid : seq);
		return 0;
	}
	v->msgs[seq - 1].flags = m->flags;
	v->msgs[seq - 1].modseq = m->modseq;
	/* .SILENT still reports the new MODSEQ of what changed under CONDSTORE (RFC 7162 §3.1.3). */
	if (x->silent && !(x->s->condstore && r == MC_FLAGS_CHANGED))
		return 0;
	char fl[1100], ms[48] = "", u[24] = "";
	imapd_msg_flags_text(x->s, m->uid, fl, sizeof(fl), m->flags, m->keywords);
	if (x->s->condstore)
		snprintf(ms, sizeof(ms), " MODSEQ (%llu)", (unsigned long long)m->modseq);
	if (x->uid)
		snprintf(u, sizeof(u), "UID %u ", m->uid);
	if (x->silent)
		imapd_send(x->s, "* %u FETCH (%s%s)", seq, u, ms + 1);
	else
		imapd_send(x->s, "* %u FETCH (%sFLAGS (%s)%s)", seq, u, fl, ms);
	return 0;
}

int
imapd_flag_take(struct imap_p *p, const char *f, struct mc_store_flag_change *ch, char *kw, size_t kwsz)
{
	static const struct {
		const char *name;
		uint32_t bit;
	} sys[] = { { "\\Seen", MC_FLAG_SEEN },     { "\\Answered", MC_FLAG_ANSWERED }, { "\\Flagged", MC_FLAG_FLAGGED },
		    { "\\Deleted", MC_FLAG_DELETED }, { "\\Draft", MC_FLAG_DRAFT },     { "$Forwarded", MC_FLAG_FORWARDED } };
	for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++) {
		if (strcasecmp(f, sys[i].name) == 0) {
			ch->flags |= sys[i].bit;
			return 0;
		}
	}
	if (strcasecmp(f, "\\Recent") == 0)
		return 0;   /* not settable; ignored as Dovecot does */
	if (f[0] == '\\' || !mc_store_keyword_ok(f))
		return imap_p_fail(p, "invalid flag");
	size_t n = strlen(kw), fl = strlen(f);
	if (n + fl + 2 > kwsz)
		return imap_p_fail(p, "too many keywords");
	if (n)
		kw[n++] = ' ';
	memcpy(kw + n, f, fl + 1);
	return 0;
}

void
imapd_cmd_store(struct imapd_session *s, struct imap_p *p, bool uid)
{
	struct imap_seqset set;
	struct mc_store_flag_change ch = { 0 };
	char item[32], flag[MC_STORE_KEYWORD_LEN + 2], kw[IMAPD_KEYWORDS_TEXT_MAX];
	struct store_ctx x = { .s = s, .uid = uid };

	kw[0] = '\0';
	if (imap_p_sp(p) < 0 || imap_p_seqset(p, &set) < 0 || imap_p_sp(p) < 0)
		goto bad;
	/* store-modifiers: "(UNCHANGEDSINCE mod-sequence) " (RFC 7162 §3.1.3) */
	if (imap_p_peek(p) == '(') {
		char m[32];
		if (imap_p_list_open(p) < 0 || imap_p_atom_upper(p, m, sizeof(m)) < 0)
			goto bad;
		if (strcmp(m, "UNCHANGEDSINCE") != 0) {
			imap_p_fail(p, "unknown STORE modifier");
			goto bad;
		}
		if (imap_p_sp(p) < 0 || imap_p_number64(p, &ch.unchangedsince) < 0 || imap_p_list_close(p) < 0 ||
		    imap_p_sp(p) < 0)
			goto bad;
		ch.conditional = true;
		s->condstore = true;
	}
	ch.op = MC_FLAGOP_SET;
	if (imap_p_accept(p, '+'))
		ch.op = MC_FLAGOP_ADD;
	else if (imap_p_accept(p, '-'))
		ch.op = MC_FLAGOP_REMOVE;
	if (imap_p_atom_upper(p, item, sizeof(item)) < 0)
		goto bad;
	if (strcmp(item, "FLAGS.SILENT") == 0)
		x.silent = true;
	else if (strcmp(item, "FLAGS") != 0) {
		imap_p_fail(p, "expected FLAGS or FLAGS.SILENT");
		goto bad;
	}
	if (imap_p_sp(p) < 0)
		goto bad;
	bool list = imap_p_peek(p) == '(';
	if (list && imap_p_list_open(p) < 0)
		goto bad;
	if (!(list && imap_p_peek(p) == ')')) {
		do {
			if (imap_p_flag(p, flag, sizeof(flag), false) < 0 || imapd_flag_take(p, flag, &ch, kw, sizeof(kw)) < 0)
				goto bad;
		} while (imap_p_accept(p, ' '));
	}
	if ((list && imap_p_list_close(p) < 0) || imap_p_end(p) < 0)
		goto bad;
	if (!writable(s))
		return;
	ch.keywords = kw[0] ? kw : NULL;
	uint32_t *uids;
	size_t n;
	int r = set_uids(s, &set, uid, &uids, &n);
	if (r == -1) {
		imapd_done(s, "BAD", "Invalid message sequence number");
		return;
	}
	char err[256] = "";
	uint64_t modseq;
	mc_buf_init(&x.modified, 64 * 1024);
	if (n > 0) {
		r = mc_store_flags_change(s->store, s->view->name, uids, n, &ch, &modseq, stored, &x, err, sizeof(err));
		if (r < 0) {
			free(uids);
			mc_buf_free(&x.modified);
			imapd_store_error(s, r, err, "STORE");
			return;
		}
	}
	free(uids);
	if (n > 0)
		imapd_idle_changed(s, s->view->name);
	if (x.modified.len)
		imapd_done(s, "OK", "[MODIFIED %s] Conditional STORE failed for some", x.modified.data);
	else
		imapd_done(s, "OK", "STORE completed");
	mc_buf_free(&x.modified);
	return;
bad:
	imapd_done(s, "BAD", "%s", p->err);
}

/* ---- EXPUNGE, UID EXPUNGE, CLOSE ---- */

/*
 * The removal itself (mc_store_expunge: the files unlinked, their
 * directories fsynced, the rows deleted in a synced commit) runs in
 * libuv's pool with the store lent, as APPEND's commit does (append.c):
 * on a file system with a journal each sync waits for a journal commit,
 * and on the loop every session of the process would wait with it. The
 * session reads nothing meanwhile; the user's other sessions are parked
 * before their next input until the store is back. What is \Deleted is
 * listed and the POP3 maildrop lock taken on the loop, before.
 */
struct imapd_expunging {
	uv_work_t work;
	struct imapd_session *s;    /* NULL: the session ended meanwhile (the completion cleans up) */
	struct imapd_server *srv;
	struct mc_store *store;     /* the expunge's own hold: the session may end while the pool uses it */
	atomic_bool detached;       /* read by the worker: nothing is removed without its answer */
	bool close;                 /* CLOSE's silent expunge: the view goes and "CLOSE completed" follows */
	int lock;
	uint32_t *del;
	size_t ndel;
	int ret;
	char name[MC_MAILBOX_NAME_MAX + 1];
	char user[sizeof(((struct imapd_session *)0)->user)];
	char home[sizeof(((struct imapd_session *)0)->home)];
	char err[256];
};

static void
expunge_work(uv_work_t *w)
{
	struct imapd_expunging *x = w->data;
	x->ret = -1;
	if (atomic_load(&x->detached)) {
		snprintf(x->err, sizeof(x->err), "the session ended first: nothing expunged");
		return;
	}
	x->ret = mc_store_expunge(x->store, x->name, x->del, x->ndel, x->err, sizeof(x->err));
}

/* CLOSE's end (RFC 3501 §6.4.2): no untagged responses, the view goes. */
static void
close_done(struct imapd_session *s)
{
	imapd_view_free(s);
	imapd_done(s, "OK", "CLOSE completed");
}

static void
expunge_done(uv_work_t *w, int status)
{
	struct imapd_expunging *x = w->data;
	struct imapd_session *s = x->s;
	struct imapd_server *srv = x->srv;
	struct mc_store *store = x->store;
	if (s)
		s->expunging = NULL;
	imapd_store_lend(store, false);
	mc_store_unlock(x->lock);
	free(x->del);
	if (status != 0) {
		x->ret = -1;
		snprintf(x->err, sizeof(x->err), "%s", uv_strerror(status));
	}
	const char *id = s ? s->id : "imapd";
	if (x->ret >= 0)
		mc_info("%s: expunged %d from mailbox=%s user=%s", id, x->ret, x->name, x->user);
	else if (atomic_load(&x->detached))
		mc_info("%s: expunge of mailbox=%s user=%s: %s", id, x->name, x->user, x->err);
	else if (s == NULL || s->closing || x->close)
		mc_warn("%s: expunge of mailbox=%s user=%s: %s", id, x->name, x->user, x->err);   /* no client to tell */
	if (s != NULL && !s->closing) {
		if (x->ret >= 0)
			imapd_idle_changed(s, x->name);
		if (x->close)
			close_done(s);
		else if (x->ret >= 0)
			imapd_done(s, "OK", "EXPUNGE completed");   /* the EXPUNGE responses come from the view sync */
		else
			imapd_store_error(s, -1, x->err, "EXPUNGE");
		imapd_session_go(s);
	} else if (x->ret >= 0) {
		imapd_idle_changed_at(srv, x->user, x->home, x->name, NULL);
	}
	free(x);
	imapd_session_store_back(srv, store);
	imapd_store_put(store, false);
}

void
imapd_expunge_free(struct imapd_session *s)
{
	struct imapd_expunging *x = s->expunging;
	if (x == NULL)
		return;
	s->expunging = NULL;
	x->s = NULL;   /* its completion frees it */
	atomic_store(&x->detached, true);
}

/*
 * Expunge the \Deleted messages among uids (NULL: all). 0: nothing to
 * remove; 1: the removal runs in the pool and its completion answers
 * (close: as CLOSE); -1: refused, with the NO answered unless close.
 */
static int
expunge(struct imapd_session *s, const uint32_t *uids, size_t n, bool close)
{
	uint32_t *del = NULL;
	size_t ndel = 0;
	char err[256] = "";
	int r = mc_store_deleted_uids(s->store, s->view->name, uids, n, &del, &ndel);
	if (r < 0) {
		if (!close)
			imapd_store_error(s, r, "cannot list deleted messages", "EXPUNGE");
		else
			mc_warn("%s: CLOSE of mailbox=%s user=%s: cannot list deleted messages", s->id, s->view->name,
				s->user);
		return -1;
	}
	if (ndel == 0) {
		free(del);
		return 0;
	}
	int lock = mc_store_lock(s->store, false);
	if (lock < 0) {
		free(del);
		if (!close)
			imapd_done(s, "NO", "[INUSE] The mailbox is in use by a POP3 session, try again later");
		return -1;
	}
	struct imapd_expunging *x = calloc(1, sizeof(*x));
	struct mc_store *hold = x ? imapd_store_get(mc_store_path(s->store), err, sizeof(err)) : NULL;
	if (hold != s->store) {
		mc_warn("%s: EXPUNGE for user=%s: %s", s->id, s->user,
			x == NULL ? "out of memory" : hold ? "the hold found another store" : err);
		imapd_store_put(hold, false);
		mc_store_unlock(lock);
		free(del);
		free(x);
		if (!close)
			imapd_done(s, "NO", "[SERVERBUG] EXPUNGE failed");
		return -1;
	}
	x->work.data = x;
	x->s = s;
	x->srv = s->srv;
	x->store = hold;
	x->close = close;
	x->lock = lock;
	x->del = del;
	x->ndel = ndel;
	snprintf(x->name, sizeof(x->name), "%s", s->view->name);
	snprintf(x->user, sizeof(x->user), "%s", s->user);
	snprintf(x->home, sizeof(x->home), "%s", s->home);
	s->expunging = x;
	imapd_session_wait(s);
	imapd_store_lend(hold, true);
	if (uv_queue_work(s->srv->loop, &x->work, expunge_work, expunge_done) != 0) {
		expunge_work(&x->work);   /* cannot be (a valid loop and callbacks): done here */
		expunge_done(&x->work, 0);
	}
	return 1;
}

void
imapd_cmd_expunge(struct imapd_session *s, struct imap_p *p, bool uid)
{
	struct imap_seqset set;
	uint32_t *uids = NULL;
	size_t n = 0;
	if (uid && (imap_p_sp(p) < 0 || imap_p_seqset(p, &set) < 0)) {
		imapd_done(s, "BAD", "%s", p->err);
		return;
	}
	if (imap_p_end(p) < 0) {
		imapd_done(s, "BAD", "%s", p->err);
		return;
	}
	if (!writable(s))
		return;
	if (uid) {
		if (set_uids(s, &set, true, &uids, &n) < 0) {
			imapd_done(s, "BAD", "Invalid UID set");
			return;
		}
		if (n == 0) {
			free(uids);
			imapd_done(s, "OK", "EXPUNGE completed");
			return;
		}
	}
	int r = expunge(s, uids, n, false);
	free(uids);
	if (r == 0)
		imapd_done(s, "OK", "EXPUNGE completed");
}

void
imapd_cmd_close(struct imapd_session *s, struct imap_p *p, bool uid)
{
	if (imap_p_end(p) < 0) {
		imapd_done(s, "BAD", "%s", p->err);
		return;
	}
	/* RFC 3501 §6.4.2: expunge silently (not on a read-only mailbox), no responses at all. */
	if (!s->view->readonly && expunge(s, NULL, 0, true) == 1)
		return;   /* answered by expunge_done */
	close_done(s);
	(void)uid;
}

/* ---- COPY, MOVE ---- */

static void
copy_move(struct imapd_session *s, struct imap_p *p, bool uid, bool move)
{
	struct imap_seqset set;
	char arg[MC_MAILBOX_NAME_MAX * 2 + 1], to[MC_MAILBOX_NAME_MAX + 1], err[256] = "";
	const char *why;
	if (imap_p_sp(p) < 0 || imap_p_seqset(p, &set) < 0 || imap_p_sp(p) < 0 ||
	    imap_p_astring(p, arg, sizeof(arg)) < 0 || imap_p_end(p) < 0) {
		imapd_done(s, "BAD", "%s", p->err);
		return;
	}
	if (imapd_mailbox_from_client(s, arg, to, sizeof(to), &why) < 0) {
		imapd_done(s, "NO", "%s", why);
		return;
	}
	if (move && !writable(s))
		return;
	uint32_t *uids;
	size_t n;
	if (set_uids(s, &set, uid, &uids, &n) < 0) {
		imapd_done(s, "BAD", "Invalid message sequence number");
		return;
	}
	const char *verb = move ? "MOVE" : "COPY";
	if (n == 0) {
		free(uids);
		imapd_done(s, "OK", "%s completed", verb);
		return;
	}
	uint32_t *src = calloc(n, sizeof(*src)), *dst = calloc(n, sizeof(*dst)), uidvalidity = 0;
	int lock = -1;
	if (src == NULL || dst == NULL) {
		free(uids);
		free(src);
		free(dst);
		imapd_done(s, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	if (move && (lock = mc_store_lock(s->store, false)) < 0) {
		free(uids);
		free(src);
		free(dst);
		imapd_done(s, "NO", "[INUSE] The mailbox is in use by a POP3 session, try again later");
		return;
	}
	int r = mc_store_copy(s->store, s->view->name, uids, n, to, move, src, dst, &uidvalidity, err, sizeof(err));
	if (lock >= 0)
		mc_store_unlock(lock);
	free(uids);
	if (r < 0) {
		free(src);
		free(dst);
		imapd_store_error(s, r, err, verb);
		return;
	}
	imapd_idle_changed(s, to);
	if (move)
		imapd_idle_changed(s, s->view->name);
	struct mc_buf a, b;
	mc_buf_init(&a, 0);
	mc_buf_init(&b, 0);
	uid_set_text(src, (size_t)r, &a);
	/* dst pairs with src in order; COPYUID lists them in the same order (RFC 4315 §3). */
	for (size_t i = 0; i < (size_t)r; i++)
		mc_buf_printf(&b, "%s%u", i ? "," : "", dst[i]);
	if (r == 0) {
		imapd_done(s, "OK", "%s completed", verb);
	} else if (move) {
		imapd_send(s, "* OK [COPYUID %u %s %s] Moved", uidvalidity, a.data, b.data);
		s->expunge_ok = true;
		imapd_done(s, "OK", "MOVE completed");
	} else {
		imapd_done(s, "OK", "[COPYUID %u %s %s] COPY completed", uidvalidity, a.data, b.data);
	}
	mc_buf_free(&a);
	mc_buf_free(&b);
	free(src);
	free(dst);
}

void
imapd_cmd_copy(struct imapd_session *s, struct imap_p *p, bool uid)
{
	copy_move(s, p, uid, false);
}

void
imapd_cmd_move(struct imapd_session *s, struct imap_p *p, bool uid)
{
	copy_move(s, p, uid, true);
}

/* ---- DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE ---- */

static int
one_name(struct imapd_session *s, struct imap_p *p, char *name, size_t namesz, bool last)
{
	char arg[MC_MAILBOX_NAME_MAX * 2 + 1];
	const char *why;
	if (imap_p_sp(p) < 0 || imap_p_astring(p, arg, sizeof(arg)) < 0 || (last && imap_p_end(p) < 0)) {
		imapd_done(s, "BAD", "%s", p->err);
		return -1;
	}
	if (imapd_mailbox_from_client(s, arg, name, namesz, &why) < 0) {
		imapd_done(s, "NO", "%s", why);
		return -1;
	}
	return 0;
}

void
imapd_cmd_delete(struct imapd_session *s, struct imap_p *p, bool uid)
{
	char name[MC_MAILBOX_NAME_MAX + 1], err[256] = "";
	if (one_name(s, p, name, sizeof(name), true) < 0)
		return;
	if (s->view && strcmp(s->view->name, name) == 0) {
		/* Deleting the selected mailbox: it is closed first, nothing more is said about it. */
		imapd_view_free(s);
	}
	int r = mc_store_mailbox_delete(s->store, name, err, sizeof(err));
	if (r == MC_STORE_ECANNOT && strcmp(name, "INBOX") != 0) {
		/* only a level of its children's names (\Noselect): RFC 9051 §6.3.5's response code */
		imapd_done(s, "NO", "[HASCHILDREN] Mailbox has children and is not a mailbox itself");
		return;
	}
	if (r == MC_STORE_ENOMAILBOX) {
		imapd_done(s, "NO", "[NONEXISTENT] Mailbox does not exist");
		return;
	}
	if (r < 0) {
		imapd_store_error(s, r, err, "DELETE");
		return;
	}
	mc_info("%s: deleted mailbox=%s user=%s", s->id, name, s->user);
	imapd_done(s, "OK", "DELETE completed");
	(void)uid;
}

void
imapd_cmd_rename(struct imapd_session *s, struct imap_p *p, bool uid)
{
	char from[MC_MAILBOX_NAME_MAX + 1], to[MC_MAILBOX_NAME_MAX + 1], err[256] = "";
	if (one_name(s, p, from, sizeof(from), false) < 0 || one_name(s, p, to, sizeof(to), true) < 0)
		return;
	int r = mc_store_mailbox_rename(s->store, from, to, err, sizeof(err));
	if (r == MC_STORE_ENOMAILBOX) {
		imapd_done(s, "NO", "[NONEXISTENT] Mailbox does not exist");
		return;
	}
	if (r < 0) {
		imapd_store_error(s, r, err, "RENAME");
		return;
	}
	/* The selected mailbox (or one of its parents) renamed: the view follows it. */
	if (s->view && strcmp(from, "INBOX") != 0) {
		size_t fl = strlen(from);
		if (strncmp(s->view->name, from, fl) == 0 && (s->view->name[fl] == '\0' || s->view->name[fl] == '.')) {
			char nn[sizeof(s->view->name)];
			snprintf(nn, sizeof(nn), "%s%s", to, s->view->name + fl);
			snprintf(s->view->name, sizeof(s->view->name), "%s", nn);
		}
	}
	mc_info("%s: renamed mailbox=%s to=%s user=%s", s->id, from, to, s->user);
	imapd_done(s, "OK", "RENAME completed");
	(void)uid;
}

static void
subscribe(struct imapd_session *s, struct imap_p *p, bool on)
{
	char name[MC_MAILBOX_NAME_MAX + 1], err[256] = "";
	if (one_name(s, p, name, sizeof(name), true) < 0)
		return;
	if (mc_store_subscribe(s->store, name, on, err, sizeof(err)) < 0) {
		imapd_store_error(s, -1, err, on ? "SUBSCRIBE" : "UNSUBSCRIBE");
		return;
	}
	imapd_done(s, "OK", "%s completed", on ? "SUBSCRIBE" : "UNSUBSCRIBE");
}

void
imapd_cmd_subscribe(struct imapd_session *s, struct imap_p *p, bool uid)
{
	subscribe(s, p, true);
	(void)uid;
}

void
imapd_cmd_unsubscribe(struct imapd_session *s, struct imap_p *p, bool uid)
{
	subscribe(s, p, false);
	(void)uid;
}
