/*
 * append.c - APPEND (RFC 3501 §6.3.11, APPENDUID of RFC 4315, APPENDLIMIT
 * of RFC 7889): the message literal is streamed into the mailbox's tmp/
 * as it arrives, through the store's one copy buffer: memory per APPEND
 * is that buffer whatever the message's size.
 *
 * Called by session.c: when the reader stops at a literal an APPEND
 * command announces (imapd_append_literal), with each piece of that
 * literal (imapd_append_data), when the command is complete
 * (imapd_append_end) and when the session ends (imapd_append_free).
 *
 * Everything that can be decided from the announcement is decided before
 * a byte of the message is read: the syntax up to the literal, the
 * mailbox name and its existence, the flags and keywords, the size
 * against APPENDLIMIT and the quota. A refused synchronising literal gets
 * its NO or BAD instead of "+", so the client sends nothing of it. A
 * refused non-synchronising one (LITERAL+) is answered at once too, and
 * its bytes are then read and dropped (RFC 7888 §4 lets the server read
 * and discard them or close; reading keeps the session). The store
 * (mc_store_append_begin/_write/_end) writes the bytes into tmp/ with
 * CRLF turned into LF and the MIME structure parsed as they pass; begin
 * reserves the size against the quota until the append is committed or
 * gone, so two APPENDs at once cannot both pass it. Creating a file can
 * take long, and the loop serves every other session of the process, so
 * the tmp/ file is never created here: a message under 64 KiB stays in
 * the store's buffer until the file step below creates, writes and syncs
 * it at once; a longer one gets its file in libuv's pool
 * (mc_store_append_open) while the session reads nothing.
 *
 * Once the command is complete, with the session paused, two steps run in
 * libuv's thread pool, and only then the tagged OK [APPENDUID]:
 *   1. the file (fsync, rename into new/ or cur/, directory fsync:
 *      mc_store_append_file), which touches no store object;
 *   2. the row and its COMMIT (mc_store_append_index) with
 *      the store lent to the pool (stores.c): the user's other sessions
 *      share that SQLite connection, so they are parked before their next
 *      input (session.c) and IDLE wakes pass the store by (idle.c) until
 *      it is back; an APPEND of the same user whose file is ready then
 *      waits too, and takes the store once the parked sessions had
 *      their turn (imapd_session_store_back, imapd_append_store_back).
 * When the store is free as the command completes, both steps run as one
 * pool job with the store lent from the start: each trip to the pool and
 * back is a thread wake-up and a loop wake-up, a fifth of an APPEND's
 * context switches; the user's other sessions wait through the fsyncs
 * too, a few milliseconds.
 * Why so, not a group commit on the loop: the COMMIT's fsync on the loop
 * thread capped APPEND near 1000/s whatever the number of clients and
 * stalled every session meanwhile; in the pool, the commits of different
 * users run side by side and the loop never waits on a disk. A group
 * commit would only help many sessions of one user appending at once
 * (their commits are serial here), which no mail client does.
 * SQLite is threadsafe in Debian's build; the connection is opened
 * NOMUTEX, which allows use from any thread, one at a time: the lent flag
 * gives that. The append holds its own reference on the store so that a
 * session closing meanwhile cannot close it under the pool thread.
 *
 * When the session ends while a step runs, its completion finds the
 * append detached (x->s NULL): the commit is skipped when it has not
 * started, and the file removed; a commit already made stays (the client
 * saw no OK; a message stored without its answer is allowed, a lost
 * acknowledged one is not). No file lies in the mailbox without its row.
 * Memory per APPEND is the store's one copy buffer, whatever its size.
 *
 * Owns the APPEND in progress (s->append). Never: keep the message in
 * memory, leave a tmp/ file behind a dropped connection, index a message
 * that did not arrive whole. MULTIAPPEND (RFC 3502) is not offered: a
 * second message literal in one command is refused. A NUL is refused in
 * a plain literal; literal8 (RFC 3516 "~{n}") may carry one, but is
 * refused with NO [UNKNOWN-CTE] when the store's LF line ends would
 * change its octets (mc_cte_store_keeps).
 */
#include "imapd/imapd.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/cte.h"
#include "mail/mailstore.h"
#include "mail/mailstore_ops.h"
#include "util/log.h"

#include <uv.h>

struct imapd_append {
	struct mc_store_appending *ap;   /* NULL: refused or failed; the rest of the literal is dropped */
	bool answered;                   /* the tagged answer went out when it was refused */
	int write_errno;                 /* the store could not write: why */
	size_t rest;                     /* where the command goes on after the literal */
	uint64_t length;
	bool binary;                     /* literal8 (RFC 3516): NUL allowed, octets must come back unchanged */
	bool nul;                        /* a NUL in a plain literal: refused at the end (RFC 3501 CHAR8) */
	bool changed;                    /* literal8 the store would not give back as it came */
	unsigned tail;                   /* mc_cte_store_keeps' state */
	char name[MC_MAILBOX_NAME_MAX + 1];
	/* the file step, then the commit, in the thread pool */
	uv_work_t work;
	bool filing;                     /* a step queued or running: the worker owns ap until its completion */
	int open_ret;                    /* the tmp/ file's creation, in the pool before the literal is read */
	bool want_store;                 /* filed; waits for the store another APPEND of the user has lent */
	atomic_bool detached;            /* the session ended: the commit is not made (read by the worker) */
	struct imapd_session *s;         /* NULL: the session ended meanwhile (its completion cleans up) */
	struct imapd_server *srv;
	struct mc_store *store;          /* the append's own hold (stores.c), from the tmp/ file's creation to its end */
	int file_ret, index_ret;
	struct mc_store_append a;        /* APPENDUID */
	char err[256];
};

static void open_work(uv_work_t *w);
static void open_done(uv_work_t *w, int status);

static struct imapd_append *
get_append(struct imapd_session *s)
{
	if (s->append == NULL)
		s->append = calloc(1, sizeof(*s->append));
	return s->append;
}

/*
 * The literal is refused with status and text: answered now. Synchronising:
 * the command ends here (the client sends nothing more of it).
 * Non-synchronising: its bytes are on the way; they are read and dropped.
 */
static enum imap_rd
refuse(struct imapd_session *s, const char *status, const char *text)
{
	struct imap_reader *rd = &s->rd;
	imapd_done(s, status, "%s", text);
	if (rd->lit_sync || get_append(s) == NULL) {
		imapd_append_free(s);
		imap_reader_next(rd);
		if (!rd->lit_sync)
			imapd_session_close(s, "Out of memory", "out of memory");
		return IMAP_RD_MORE;
	}
	mc_store_append_abort(s->append->ap);
	s->append->ap = NULL;
	s->append->answered = true;
	return imap_reader_literal(rd, IMAP_LIT_STREAM);
}

/* Where the announced literal starts in cmd ('{' or the '~' of "~{"), on the command's last line. */
static size_t
announcement(const char *cmd, size_t len, size_t line_start)
{
	size_t i = len;
	while (i > line_start && cmd[i - 1] != '{')
		i--;
	if (i == line_start)
		return len;   /* cannot be: the reader saw one */
	i--;
	if (i > line_start && cmd[i - 1] == '~')
		i--;
	return i;
}

enum imap_rd
imapd_append_literal(struct imapd_session *s)
{
	struct imap_reader *rd = &s->rd;
	char tag[IMAP_TAG_MAX + 1], verb[IMAP_ATOM_MAX + 1], arg[MC_MAILBOX_NAME_MAX * 2 + 1];
	char name[MC_MAILBOX_NAME_MAX + 1], flag[MC_STORE_KEYWORD_LEN + 2], kw[IMAPD_KEYWORDS_TEXT_MAX];
	char err[256] = "";
	struct mc_store_flag_change ch = { 0 };
	time_t date = 0;
	const char *why;

	/* Not a command here (a SASL or IDLE line), or not logged in: the ordinary rules, and the table answers. */
	if (!(s->state & (IMAPD_AUTH | IMAPD_SELECTED)) || s->wait != IMAPD_W_NONE)
		return imap_reader_literal(rd, IMAP_LIT_KEEP);
	if (s->append && s->append->answered) {
		/* more of a command already answered: its literals are dropped too */
		if (!rd->lit_sync)
			return imap_reader_literal(rd, IMAP_LIT_STREAM);
		imapd_append_free(s);
		imap_reader_next(rd);
		return IMAP_RD_MORE;
	}
	if (s->append)   /* a second message in one command */
		return refuse(s, "BAD", "MULTIAPPEND is not supported");

	size_t len;
	const char *cmd = imap_reader_command(rd, &len);
	/* The cursor unescapes in place: it reads a copy, so a kept literal leaves the command as it came. */
	char *copy = malloc(len ? len : 1);
	if (copy == NULL)
		return imap_reader_literal(rd, IMAP_LIT_KEEP);
	memcpy(copy, cmd, len);
	const char *ann = copy + announcement(copy, len, rd->line_start);
	struct imap_p p;
	imap_p_init(&p, copy, len);
	p.utf8 = s->utf8;
	if (imap_p_tag(&p, tag, sizeof(tag)) < 0 || imap_p_sp(&p) < 0 || imap_p_atom_upper(&p, verb, sizeof(verb)) < 0 ||
	    strcmp(verb, "APPEND") != 0 || imap_p_sp(&p) < 0 || p.p >= ann) {
		free(copy);   /* the literal is the mailbox name (or this is no APPEND): an ordinary one */
		return imap_reader_literal(rd, IMAP_LIT_KEEP);
	}
	/* From here on this literal is the message: the command is APPEND's, answered by this file. */
	s->ncommands++;
	snprintf(s->cmdtag, sizeof(s->cmdtag), "%s", tag);
	snprintf(s->cmdname, sizeof(s->cmdname), "APPEND");
	s->expunge_ok = true;
	kw[0] = '\0';
	if (imap_p_astring(&p, arg, sizeof(arg)) < 0 || imap_p_sp(&p) < 0)
		goto bad;
	if (imap_p_peek(&p) == '(') {
		if (imap_p_list_open(&p) < 0)
			goto bad;
		if (imap_p_peek(&p) != ')') {
			do {
				if (imap_p_flag(&p, flag, sizeof(flag), false) < 0 ||
				    imapd_flag_take(&p, flag, &ch, kw, sizeof(kw)) < 0)
					goto bad;
			} while (imap_p_accept(&p, ' '));
		}
		if (imap_p_list_close(&p) < 0 || imap_p_sp(&p) < 0)
			goto bad;
	}
	if (imap_p_peek(&p) == '"' && (imap_p_date_time(&p, &date) < 0 || imap_p_sp(&p) < 0))
		goto bad;
	if (p.p != ann) {
		imap_p_fail(&p, "expected the message as a literal");
		goto bad;
	}
	bool binary = *ann == '~';
	free(copy);
	if (imapd_mailbox_from_client(s, arg, name, sizeof(name), &why) < 0)
		return refuse(s, "NO", why);
	if (rd->lit_len == 0)
		return refuse(s, "NO", "Empty message");

	struct mc_store_append a = {
		.fd = -1, .length = rd->lit_len, .flags = ch.flags, .keywords = kw[0] ? kw : NULL,
		.internal_date = (int64_t)date, .open_later = true,
	};
	struct mc_store_appending *ap = NULL;
	int r = mc_store_append_begin(s->store, name, &a, s->srv->lim.append_max, &ap, err, sizeof(err));
	switch (r) {
	case 0:
		break;
	case MC_STORE_ETOOBIG:
		return refuse(s, "NO", "[TOOBIG] Message too big");
	case MC_STORE_ENOMAILBOX:
		return refuse(s, "NO", "[TRYCREATE] Mailbox does not exist");
	case MC_STORE_EOVERQUOTA:
		return refuse(s, "NO", "[OVERQUOTA] Quota exceeded");
	case MC_STORE_ELIMIT:
		return refuse(s, "NO", "[LIMIT] Too many keywords");
	default:
		mc_warn("%s: APPEND for user=%s: %s", s->id, s->user, err);
		return refuse(s, "NO", "[SERVERBUG] Cannot store the message now");
	}
	struct imapd_append *x = get_append(s);
	if (x == NULL) {
		mc_store_append_abort(ap);
		return refuse(s, "NO", "[SERVERBUG] Cannot store the message now");
	}
	x->ap = ap;
	x->a.flags = ch.flags;   /* for the view, once committed (imapd_view_appended) */
	x->binary = binary;
	x->length = rd->lit_len;
	x->rest = len;
	snprintf(x->name, sizeof(x->name), "%s", name);
	/* A hold on the store of its own: the session may end while the pool works with ap (its reservation). */
	x->store = imapd_store_get(mc_store_path(s->store), err, sizeof(err));
	if (x->store != s->store) {
		mc_warn("%s: APPEND for user=%s: cannot hold the store: %s", s->id, s->user, x->store ? "another one" : err);
		imapd_store_put(x->store, false);
		x->store = NULL;
		return refuse(s, "NO", "[SERVERBUG] Cannot store the message now");
	}
	/*
	 * The tmp/ file is created in the pool, not here: creating a file can
	 * take long (ext4 without a journal scans past every inode of the group
	 * freed in the last minutes: a third of the CPU of an APPEND after mail
	 * was deleted), and every session of this process would wait. A message
	 * under 64 KiB is held by the store until the file step creates, writes
	 * and syncs its file in one go; a longer one gets its file now, and the
	 * session reads nothing meanwhile: what comes of the literal stays in
	 * its input buffer and socket ("+" goes out now; the client may send at
	 * once).
	 */
	x->s = s;
	x->srv = s->srv;
	x->work.data = x;
	if (!mc_store_append_needs_open(ap))
		return imap_reader_literal(rd, IMAP_LIT_STREAM);
	x->filing = true;
	imapd_session_wait(s);
	if (uv_queue_work(s->srv->loop, &x->work, open_work, open_done) != 0) {
		open_work(&x->work);   /* cannot be (a valid loop and callbacks): done here */
		open_done(&x->work, 0);
	}
	return imap_reader_literal(rd, IMAP_LIT_STREAM);
bad:;
	char text[256];
	snprintf(text, sizeof(text), "%s", p.err ? p.err : "syntax error");
	free(copy);
	return refuse(s, "BAD", text);
}

void
imapd_append_data(struct imapd_session *s, const char *p, size_t n)
{
	struct imapd_append *x = s->append;
	if (x == NULL || x->ap == NULL)
		return;   /* refused or failed: dropped */
	if (!x->binary && !x->nul && memchr(p, '\0', n))
		x->nul = true;
	if (x->binary && !x->changed && !mc_cte_store_keeps(p, n, &x->tail))
		x->changed = true;
	if (mc_store_append_write(x->ap, p, n) < 0) {
		x->write_errno = errno;
		mc_warn("%s: APPEND for user=%s mailbox=%s: cannot write the message: %s", s->id, s->user, x->name,
			strerror(x->write_errno));
		mc_store_append_abort(x->ap);   /* its file is gone already; the rest of the literal is dropped */
		x->ap = NULL;
	}
}

/* Done with the store: the hold the append took on it goes (the last one closes it). */
static void
let_go(struct imapd_append *x)
{
	imapd_store_put(x->store, false);
	x->store = NULL;
}

/* The session ended before its answer: whatever was not committed goes (file and reservation). */
static void
finish_detached(struct imapd_append *x, struct imapd_session *s)
{
	if (s)
		s->append = NULL;
	if (x->ap) {
		mc_info("%s: APPEND of %llu bytes to mailbox=%s: the session ended before it was indexed: nothing "
			"stored", s ? s->id : "imapd", (unsigned long long)x->length, x->name);
		mc_store_append_abort(x->ap);
	} else if (x->index_ret == 0) {
		mc_info("%s: appended uid=%u mailbox=%s size=%llu: the session ended before its answer",
			s ? s->id : "imapd", x->a.uid, x->name, (unsigned long long)x->length);
	} else {
		mc_warn("%s: APPEND to mailbox=%s: %s", s ? s->id : "imapd", x->name, x->err);
	}
	let_go(x);
	free(x);
}

/* Step 0, in the pool, once the literal is announced: the tmp/ file. Touches x->ap and x->err only. */
static void
open_work(uv_work_t *w)
{
	struct imapd_append *x = w->data;
	if (atomic_load(&x->detached))
		return;   /* nobody will send the message: the completion lets ap go */
	x->open_ret = mc_store_append_open(x->ap, x->err, sizeof(x->err));
	if (x->open_ret < 0)
		x->write_errno = errno ? errno : EIO;
}

/* A pool step is back: its session, or NULL when that ended meanwhile (x is then cleaned up and freed). */
static struct imapd_session *
step_back(struct imapd_append *x)
{
	struct imapd_session *s = x->s;
	x->filing = false;
	if (s == NULL || s->closing) {
		finish_detached(x, s);
		return NULL;
	}
	return s;
}

/* Back on the loop with the tmp/ file: the literal is read on into it (or dropped: the end says NO). */
static void
open_done(uv_work_t *w, int status)
{
	struct imapd_append *x = w->data;
	struct imapd_session *s = step_back(x);
	if (s == NULL)
		return;
	if (status != 0 || x->open_ret < 0) {
		if (status != 0)
			x->write_errno = EIO;
		mc_warn("%s: APPEND for user=%s mailbox=%s: cannot create the message file: %s", s->id, s->user,
			x->name, status ? uv_strerror(status) : x->err);
		mc_store_append_abort(x->ap);   /* the reservation ends; the rest of the literal is dropped */
		x->ap = NULL;
	}
	imapd_session_go(s);
}

/* Step 1, in the pool: the file (fsync, rename, directory fsync). Touches x->ap and x->err only. */
static void
file_work(uv_work_t *w)
{
	struct imapd_append *x = w->data;
	x->file_ret = mc_store_append_file(x->ap, x->err, sizeof(x->err));
}

/* Step 2, in the pool with the store lent: the row and its COMMIT, unless the session ended meanwhile. */
static void
index_work(uv_work_t *w)
{
	struct imapd_append *x = w->data;
	if (atomic_load(&x->detached))
		return;   /* nobody waits for the answer: the completion removes the file */
	x->index_ret = mc_store_append_index(x->store, x->ap, &x->a, x->err, sizeof(x->err));
	x->ap = NULL;   /* freed by _index, committed or not */
}

/* Steps 1 and 2 in one go, the store lent from the start: the commit follows a written file. */
static void
file_index_work(uv_work_t *w)
{
	struct imapd_append *x = w->data;
	file_work(w);
	if (x->file_ret == 0) {
		index_work(w);
		return;
	}
	mc_store_append_abort(x->ap);   /* index_ret stays -1, x->err says why */
	x->ap = NULL;
}

static void index_done(uv_work_t *w, int status);

/* The store is free: lend it to the pool for the commit (work: that, or the file step first). */
static void
start_index(struct imapd_append *x, uv_work_cb work)
{
	x->want_store = false;
	x->filing = true;
	/* into the mailbox this session has selected: \Recent claimed by the commit itself (no second write) */
	const struct imapd_view *v = x->s ? x->s->view : NULL;
	x->a.claim_recent = v != NULL && !v->readonly && strcmp(v->name, x->name) == 0;
	imapd_store_lend(x->store, true);
	if (uv_queue_work(x->srv->loop, &x->work, work, index_done) != 0) {
		work(&x->work);   /* cannot be (a valid loop and callbacks): done here */
		index_done(&x->work, 0);
	}
}

/* Back on the loop after the file step: on to the commit, or the answer when it failed. */
static void
file_done(uv_work_t *w, int status)
{
	struct imapd_append *x = w->data;
	struct imapd_session *s = step_back(x);
	if (s == NULL)
		return;
	if (status != 0 || x->file_ret < 0) {
		char err[256];
		snprintf(err, sizeof(err), "%s", status ? uv_strerror(status) : x->err);
		mc_store_append_abort(x->ap);
		x->ap = NULL;
		s->append = NULL;
		let_go(x);
		free(x);
		imapd_store_error(s, -1, err, "APPEND");   /* logs what is the server's fault */
		imapd_session_go(s);
		return;
	}
	if (imapd_store_lent(x->store)) {
		x->want_store = true;   /* another APPEND of this user commits: this one follows (store_back) */
		return;
	}
	start_index(x, index_work);
}

/* Back on the loop after the commit: the store back, the answer, the others of the user on. */
static void
index_done(uv_work_t *w, int status)
{
	struct imapd_append *x = w->data;
	struct imapd_session *s = x->s;
	struct imapd_server *srv = x->srv;
	struct mc_store *store = x->store;
	x->filing = false;
	imapd_store_lend(store, false);
	if (s == NULL || s->closing) {
		x->store = NULL;   /* let go after the others were resumed: it may close the store */
		finish_detached(x, s);
		imapd_session_store_back(srv, store);
		imapd_store_put(store, false);
		return;
	}
	s->append = NULL;
	if (status != 0 || x->index_ret < 0) {
		if (status != 0) {   /* the work never ran: the file is removed here */
			snprintf(x->err, sizeof(x->err), "%s", uv_strerror(status));
			mc_store_append_abort(x->ap);
			x->index_ret = -1;
		}
		imapd_store_error(s, x->index_ret, x->err, "APPEND");
	} else {
		mc_info("%s: appended uid=%u mailbox=%s size=%llu user=%s", s->id, x->a.uid, x->name,
			(unsigned long long)x->length, s->user);
		imapd_view_appended(s, x->name, x->a.uid, x->a.flags, x->a.modseq, x->a.recent);
		imapd_idle_changed(s, x->name);
		imapd_done(s, "OK", "[APPENDUID %u %u] APPEND completed", x->a.uidvalidity, x->a.uid);
	}
	free(x);
	imapd_session_go(s);   /* the answer out, and the input read on */
	imapd_session_store_back(srv, store);
	imapd_store_put(store, false);
}

bool
imapd_append_store_back(struct imapd_session *s)
{
	struct imapd_append *x = s->append;
	if (x == NULL || !x->want_store)
		return false;
	start_index(x, index_work);
	return true;
}

void
imapd_append_end(struct imapd_session *s, const char *cmd, size_t len)
{
	struct imapd_append *x = s->append;
	s->append = NULL;
	if (x->answered) {
		let_go(x);
		free(x);
		return;
	}
	if (x->ap == NULL) {
		bool full = x->write_errno == ENOSPC || x->write_errno == EDQUOT;
		imapd_done(s, "NO", "%s", full ? "[OVERQUOTA] Not enough disk space" : "[SERVERBUG] Cannot store the message now");
		let_go(x);
		free(x);
		return;
	}
	/* After the message only the line end may come (no MULTIAPPEND). */
	const char *rest = cmd + x->rest;
	size_t rl = len - x->rest;
	if (!((rl == 2 && rest[0] == '\r' && rest[1] == '\n') || (rl == 1 && rest[0] == '\n'))) {
		mc_store_append_abort(x->ap);
		let_go(x);
		free(x);
		imapd_done(s, "BAD", "Unexpected text after the message");
		return;
	}
	if (x->nul || x->changed) {
		bool nul = x->nul;
		mc_store_append_abort(x->ap);
		let_go(x);
		free(x);
		if (nul)
			imapd_done(s, "BAD", "NUL in literal (literal8 ~{n} carries binary content)");
		else   /* RFC 3516 §4.4: the store keeps line ends as LF, which would change these octets */
			imapd_done(s, "NO", "[UNKNOWN-CTE] Binary content with a bare LF or CR CR LF cannot be stored "
				   "unchanged");
		return;
	}
	/*
	 * The file step goes to the pool; the session reads nothing more until
	 * the commit is back (index_done). With the store free, the commit goes
	 * along in the same step: one trip to the pool, not two, for the price
	 * of the user's other sessions waiting through the file's fsyncs too.
	 */
	x->s = s;
	x->srv = s->srv;
	x->work.data = x;
	x->filing = true;
	x->index_ret = -1;
	s->append = x;   /* so that a close meanwhile detaches it (imapd_append_free) */
	imapd_session_wait(s);
	if (!imapd_store_lent(x->store)) {
		start_index(x, file_index_work);
		return;
	}
	if (uv_queue_work(s->srv->loop, &x->work, file_work, file_done) != 0) {
		file_work(&x->work);   /* cannot be (a valid loop and callbacks): done here, as before */
		file_done(&x->work, 0);
	}
}

void
imapd_append_free(struct imapd_session *s)
{
	struct imapd_append *x = s->append;
	if (x == NULL)
		return;
	s->append = NULL;
	if (x->filing) {
		x->s = NULL;   /* its step runs: the completion removes what was not committed and frees x */
		atomic_store(&x->detached, true);
		return;
	}
	if (x->want_store) {   /* filed, waiting for the store: the file goes, no row was written */
		mc_info("%s: APPEND of %llu bytes to mailbox=%s: the session ended before it was indexed: nothing "
			"stored", s->id, (unsigned long long)x->length, x->name);
		mc_store_append_abort(x->ap);
		let_go(x);
		free(x);
		return;
	}
	if (x->ap)
		mc_info("%s: APPEND of %llu bytes to mailbox=%s ended before the message was whole: nothing stored",
			s->id, (unsigned long long)x->length, x->name);
	mc_store_append_abort(x->ap);
	let_go(x);
	free(x);
}

void
imapd_cmd_append(struct imapd_session *s, struct imap_p *p, bool uid)
{
	char arg[MC_MAILBOX_NAME_MAX * 2 + 1];
	/* A message literal never comes here: imapd_append_literal took it when it was announced. */
	if (imap_p_sp(p) == 0 && imap_p_astring(p, arg, sizeof(arg)) == 0)
		imap_p_fail(p, "expected the message as a literal");
	imapd_done(s, "BAD", "%s", p->err);
	(void)uid;
}
