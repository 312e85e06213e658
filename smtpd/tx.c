/*
 * tx.c - one mail transaction: MAIL FROM to the 250 after DATA or BDAT
 * LAST (RFC 5321 §3.3, RFC 3030, RFC 1870; the order of DESIGN.md).
 *
 *   MAIL    mc_queue_begin(): queued opens the body file and passes its
 *           descriptor with the queue id; 250 only then.
 *   DATA    free space checked (452 before 354), Received: written, then
 *           the data through the dotstuff decoder into a 64 KiB buffer
 *           that goes to the body fd in large writes.
 *   BDAT    chunks taken as counted, bare CR/LF normalised (not for
 *           BODY=BINARYMIME), read in bounded pieces whatever the count.
 *   end     too big or a write error: the data is read to its end, the
 *           error answered, the submission aborted; else mc_queue_commit()
 *           and 250 only when queued says it is committed.
 *
 * Called by commands.c (MAIL, DATA, BDAT) and session.c (data bytes,
 * abort at RSET/EHLO/STARTTLS/close). Owns the transaction, its envelope,
 * write buffer and body descriptor. Never acknowledges what is not
 * committed, never writes to the body fd after an error.
 */
#include "smtpd/smtpd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mail/queue_client.h"
#include "util/fsutil.h"
#include "util/log.h"

/* Free space wanted beyond min_free_space when the client gave no (or a small) SIZE. */
#define MIN_HINT (1024u * 1024u)

const char *
smtpd_tx_sender(const struct smtpd_session *s)
{
	return s->tx ? s->tx->env.sender : "";
}

static void
tx_free(struct smtpd_session *s, bool abort_submission)
{
	struct smtpd_tx *tx = s->tx;
	if (tx == NULL)
		return;
	if (tx->fd >= 0)
		close(tx->fd);
	if (abort_submission && tx->qid[0] && s->srv->queue)
		mc_queue_abort(s->srv->queue, tx->qid);
	free(tx->wbuf);
	mc_envelope_free(&tx->env);
	free(tx);
	s->tx = NULL;
}

void
smtpd_tx_abort(struct smtpd_session *s)
{
	tx_free(s, true);
}

/*
 * queued could not do it: answer with its code and text. The text may
 * carry its own enhanced code ("4.3.1 ..."); else one is added.
 */
static void
reply_failure(struct smtpd_session *s, const char *cmd, unsigned code, const char *text)
{
	char clean[256];
	if (code < 400 || code > 599)
		code = 451;
	mc_log_clean(clean, sizeof(clean), text ? text : "", text ? strlen(text) : 0);
	if (clean[0] == '\0')
		smtpd_reject(s, cmd, NULL, "%u %s", code,
			     code == 452 ? "4.3.1 Insufficient system storage" : "4.3.0 Error: queue unavailable, try again later");
	else if (clean[0] >= '2' && clean[0] <= '5' && clean[1] == '.')
		smtpd_reject(s, cmd, NULL, "%u %s", code, clean);
	else
		smtpd_reject(s, cmd, NULL, "%u %c.3.%c %s", code, (char)('0' + code / 100), code == 452 ? '1' : '0', clean);
}

/* ---- MAIL ---- */

static void
begin_done(void *arg, bool ok, int fd, const char *qid, unsigned code, const char *text)
{
	struct smtpd_session *s = arg;
	struct smtpd_tx *tx = s->tx;

	s->q_call = 0;
	if (!ok) {
		reply_failure(s, "MAIL", code, text);
		tx_free(s, false);
	} else {
		tx->fd = fd;
		snprintf(tx->qid, sizeof(tx->qid), "%s", qid);
		snprintf(tx->env.qid, sizeof(tx->env.qid), "%s", qid);
		mc_info("%s: client=%s[%s] session=%s", tx->qid, s->helo, s->ip, s->id);
		smtpd_reply(s, "250 2.1.0 Ok");
	}
	smtpd_session_done(s);
}

void
smtpd_tx_mail(struct smtpd_session *s, const struct smtpd_mail *m)
{
	struct smtpd_tx *tx = calloc(1, sizeof(*tx));
	if (tx == NULL)
		mc_panic("out of memory");
	tx->fd = -1;
	mc_envelope_init(&tx->env);
	struct mc_envelope *e = &tx->env;
	mc_addr_format(&m->addr, e->sender, sizeof(e->sender));
	snprintf(e->envid, sizeof(e->envid), "%s", m->envid);
	if (s->authenticated)
		snprintf(e->auth_user, sizeof(e->auth_user), "%s", s->auth_user);
	snprintf(e->client, sizeof(e->client), "%.180s [%.64s]", s->helo, s->ip);
	e->flags = m->ret;
	if (m->body == SMTPD_BODY_8BITMIME)
		e->flags |= MC_ENV_8BITMIME;
	if (m->body == SMTPD_BODY_BINARYMIME)
		e->flags |= MC_ENV_BINARYMIME;
	if (m->smtputf8)
		e->flags |= MC_ENV_SMTPUTF8;
	if (s->authenticated)
		e->flags |= MC_ENV_AUTHENTICATED;
	tx->smtputf8 = m->smtputf8;
	tx->binary = m->body == SMTPD_BODY_BINARYMIME;
	tx->size_hint = m->size_given ? m->size : 0;
	s->tx = tx;
	s->q_call = mc_queue_begin(s->srv->queue, tx->size_hint, e->client, begin_done, s);
	smtpd_session_wait(s);
}

int
smtpd_tx_add_rcpt(struct smtpd_session *s, const char *addr, const struct smtpd_rcpt *r)
{
	if (s->tx == NULL)
		return -1;
	return mc_envelope_add_rcpt(&s->tx->env, addr, r->orcpt, r->notify, s->srv->lim.max_recipients);
}

/* ---- the body file ---- */

/* Is there room for this message (DESIGN.md: checked before 354)? */
static bool
space_ok(struct smtpd_session *s)
{
	struct smtpd_tx *tx = s->tx;
	uint64_t avail;
	if (mc_fs_free(tx->fd, &avail) < 0)
		return true;   /* cannot tell: every write is checked anyway */
	uint64_t hint = tx->size_hint > MIN_HINT ? tx->size_hint : MIN_HINT;
	uint64_t need = s->srv->lim.min_free_space + hint;
	return need >= hint && avail >= need;
}

static void
wflush(struct smtpd_tx *tx)
{
	if (tx->wlen == 0)
		return;
	if (tx->write_errno == 0 && !tx->too_big) {
		if (mc_write_all(tx->fd, tx->wbuf, tx->wlen) < 0)
			tx->write_errno = errno ? errno : EIO;
		else
			tx->stored += tx->wlen;
	}
	tx->wlen = 0;
}

/* Make room for n bytes in the write buffer. */
static char *
wroom(struct smtpd_tx *tx, size_t n)
{
	if (SMTPD_WBUF - tx->wlen < n)
		wflush(tx);
	return tx->wbuf + tx->wlen;
}

/* Message bytes just decoded into the write buffer: keep them, or drop them after an error. */
static void
wcommit(struct smtpd_session *s, size_t n)
{
	struct smtpd_tx *tx = s->tx;
	tx->size += n;
	if (tx->size > s->srv->lim.max_message_size)
		tx->too_big = true;
	if (!tx->too_big && tx->write_errno == 0)
		tx->wlen += n;
}

static void
received(struct smtpd_session *s)
{
	struct smtpd_tx *tx = s->tx;
	char date[64], lit[80], proto[16], tlsinfo[200] = "";
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	snprintf(lit, sizeof(lit), strchr(s->ip, ':') ? "[IPv6:%s]" : "[%s]", s->ip);
	/* RFC 3848 and RFC 6531 §4.3 protocol names. */
	if (!s->esmtp && !tx->smtputf8)
		snprintf(proto, sizeof(proto), "SMTP");
	else
		snprintf(proto, sizeof(proto), "%s%s%s", tx->smtputf8 ? "UTF8SMTP" : "ESMTP", s->tls ? "S" : "",
			 s->authenticated ? "A" : "");
	if (s->tls) {
		const char *desc = mc_conn_tls_desc(s->conn);
		const char *sp = strchr(desc, ' ');
		if (sp)
			snprintf(tlsinfo, sizeof(tlsinfo), "\t(using %.*s with cipher %s)\r\n", (int)(sp - desc), desc,
				 sp + 1);
		else
			snprintf(tlsinfo, sizeof(tlsinfo), "\t(using %s)\r\n", desc);
	}
	char hdr[2048];
	int n;
	if (tx->env.nrcpt == 1)
		n = snprintf(hdr, sizeof(hdr), "Received: from %s (%s)\r\n%s\tby %s (Postern) with %s id %s\r\n\tfor <%s>; %s\r\n",
			     s->helo, lit, tlsinfo, s->srv->lim.hostname, proto, tx->qid, tx->env.rcpt[0].addr, date);
	else
		n = snprintf(hdr, sizeof(hdr), "Received: from %s (%s)\r\n%s\tby %s (Postern) with %s id %s; %s\r\n",
			     s->helo, lit, tlsinfo, s->srv->lim.hostname, proto, tx->qid, date);
	if (n < 0 || (size_t)n >= sizeof(hdr))
		n = 0;
	memcpy(wroom(tx, (size_t)n), hdr, (size_t)n);
	tx->wlen += (size_t)n;
}

static void
data_start(struct smtpd_session *s, bool bdat)
{
	struct smtpd_tx *tx = s->tx;
	tx->wbuf = malloc(SMTPD_WBUF);
	if (tx->wbuf == NULL)
		mc_panic("out of memory");
	tx->data_started = true;
	tx->bdat = bdat;
	mc_dotstuff_dec_init(&tx->dec, bdat ? MC_DOTSTUFF_NORM : MC_DOTSTUFF_DATA);
	received(s);
}

/* ---- the end: commit ---- */

static void
commit_done(void *arg, bool ok, unsigned code, const char *text)
{
	struct smtpd_session *s = arg;
	s->q_call = 0;
	if (ok) {
		smtpd_reply(s, "250 2.0.0 Ok: queued as %s", s->tx->qid);
		tx_free(s, false);
	} else {
		reply_failure(s, s->tx->bdat ? "BDAT" : "DATA", code, text);
		tx_free(s, true);
	}
	smtpd_session_done(s);
}

/* The data is complete (DATA's terminator or BDAT LAST): answer an error or commit. */
static void
finish(struct smtpd_session *s, const char *cmd)
{
	struct smtpd_tx *tx = s->tx;

	wflush(tx);
	if (close(tx->fd) < 0 && tx->write_errno == 0 && errno != EINTR)
		tx->write_errno = errno;
	tx->fd = -1;
	free(tx->wbuf);
	tx->wbuf = NULL;
	smtpd_session_state(s, SMTPD_ST_CMD);
	if (tx->too_big) {
		smtpd_reject(s, cmd, NULL, "552 5.3.4 Message size exceeds fixed limit");
		tx_free(s, true);
		return;
	}
	if (tx->write_errno) {
		mc_warn("%s: error writing the message: %s", tx->qid, strerror(tx->write_errno));
		if (tx->write_errno == ENOSPC || tx->write_errno == EDQUOT)
			smtpd_reject(s, cmd, NULL, "452 4.3.1 Insufficient system storage");
		else
			smtpd_reject(s, cmd, NULL, "451 4.3.0 Error writing message, try again later");
		tx_free(s, true);
		return;
	}
	tx->env.size = tx->stored;
	tx->env.arrival = (int64_t)time(NULL);
	s->q_call = mc_queue_commit(s->srv->queue, &tx->env, commit_done, s);
	smtpd_session_wait(s);
}

/* ---- DATA ---- */

void
smtpd_tx_data(struct smtpd_session *s)
{
	if (!space_ok(s)) {
		smtpd_reject(s, "DATA", NULL, "452 4.3.1 Insufficient system storage");
		return;
	}
	data_start(s, false);
	smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	smtpd_session_state(s, SMTPD_ST_DATA);
}

static size_t
data_input(struct smtpd_session *s, const char *p, size_t n)
{
	struct smtpd_tx *tx = s->tx;
	size_t taken = 0;

	while (taken < n) {
		size_t used, olen;
		char *out = wroom(tx, MC_DOTSTUFF_DEC_MIN);
		int done = mc_dotstuff_dec(&tx->dec, p + taken, n - taken, &used, out, SMTPD_WBUF - tx->wlen, &olen);
		taken += used;
		wcommit(s, olen);
		if (done) {
			finish(s, "DATA");
			break;
		}
	}
	return taken;
}

/* ---- BDAT ---- */

static void
chunk_end(struct smtpd_session *s)
{
	struct smtpd_tx *tx = s->tx;

	smtpd_session_state(s, SMTPD_ST_CMD);
	if (s->bdat_error) {
		smtpd_reject(s, "BDAT", NULL, "%s", s->bdat_error);
		/* A transaction whose chunk failed is over (RFC 3030 §2). */
		if (tx && tx->data_started)
			tx_free(s, true);
		return;
	}
	if (s->bdat_last) {
		if (!tx->binary) {
			char *out = wroom(tx, 2);
			wcommit(s, mc_dotstuff_dec_finish(&tx->dec, out, 2));
		}
		finish(s, "BDAT");
		return;
	}
	if (tx->too_big || tx->write_errno) {
		finish(s, "BDAT");
		return;
	}
	smtpd_reply(s, "250 2.0.0 %llu octets received", (unsigned long long)s->bdat_size);
}

void
smtpd_tx_bdat(struct smtpd_session *s, uint64_t size, bool last)
{
	struct smtpd_tx *tx = s->tx;

	s->bdat_left = size;
	s->bdat_size = size;
	s->bdat_last = last;
	s->bdat_error = NULL;
	if (tx == NULL)
		s->bdat_error = "503 5.5.1 Error: need MAIL command";
	else if (tx->env.nrcpt == 0)
		s->bdat_error = tx->rcpt_tried ? "554 5.5.1 Error: no valid recipients" : "503 5.5.1 Error: need RCPT command";
	else if (!tx->data_started && !space_ok(s))
		s->bdat_error = "452 4.3.1 Insufficient system storage";
	else if (!tx->data_started)
		data_start(s, true);
	if (size == 0)
		chunk_end(s);
	else
		smtpd_session_state(s, SMTPD_ST_BDAT);
}

static size_t
bdat_input(struct smtpd_session *s, const char *p, size_t n)
{
	struct smtpd_tx *tx = s->tx;
	size_t take = n < s->bdat_left ? n : (size_t)s->bdat_left;

	if (s->bdat_error == NULL) {
		size_t off = 0;
		while (off < take) {
			char *out = wroom(tx, MC_DOTSTUFF_DEC_MIN);
			size_t room = SMTPD_WBUF - tx->wlen, used, olen;
			if (tx->binary) {
				used = olen = take - off < room ? take - off : room;
				memcpy(out, p + off, used);
			} else {
				mc_dotstuff_dec(&tx->dec, p + off, take - off, &used, out, room, &olen);
			}
			off += used;
			wcommit(s, olen);
		}
	}
	s->bdat_left -= take;
	if (s->bdat_left == 0)
		chunk_end(s);
	return take;
}

size_t
smtpd_tx_input(struct smtpd_session *s, const char *p, size_t n)
{
	if (s->state == SMTPD_ST_DATA)
		return data_input(s, p, n);
	return bdat_input(s, p, n);
}
