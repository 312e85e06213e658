/*
 * queue_client.c - submitting a message to queued, as function calls (see
 * queue_client.h), and queued's readers and writers of the same payloads,
 * so the Q_SUBMIT_* frames are built and read in this file only.
 *
 * Called by smtpd (the client side) and queued (mc_queue_req_* and
 * mc_queue_reply_*). The client owns one reconnecting channel to
 * run_dir/queued.sock and one record per call in flight. Whatever goes
 * wrong (queued away, slow, or answering nonsense) ends as a 451 with an
 * SMTP-ready text, so smtpd never answers 250 for a message that is not
 * committed; a descriptor that came with a bad answer is closed here.
 * Never runs a caller's callback inside the call that started it.
 */
#include "mail/queue_client.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BEGIN_TIMEOUT_MS 30000
#define COMMIT_TIMEOUT_MS 120000   /* fsyncs and a group commit under load */
#define UNAVAILABLE "4.3.0 Queue manager unavailable, try again later"

enum call_kind { CALL_BEGIN, CALL_COMMIT };

struct qcall {
	struct mc_queue_client *q;    /* NULL once the client is closed */
	struct qcall *prev, *next;
	uint32_t reqid;
	enum call_kind kind;
	union {
		mc_queue_begin_cb begin;
		mc_queue_commit_cb commit;
	} cb;
	void *arg;
};

struct mc_queue_client {
	struct mc_chan *ch;
	struct qcall *calls;
};

static const struct mc_chan_cbs queue_cbs = { NULL, NULL, NULL };

struct mc_queue_client *
mc_queue_client_open(uv_loop_t *loop, const struct mc_config *cfg, enum mc_role my_role, const char *my_name)
{
	char path[MC_PATH_MAX];
	mc_config_sock(cfg, path, sizeof(path), MC_SOCK_QUEUED);
	struct mc_queue_client *q = calloc(1, sizeof(*q));
	if (q == NULL)
		mc_panic("queue client: out of memory");
	q->ch = mc_chan_connect(loop, path, &mc_proto, my_role, my_name, &queue_cbs, q);
	if (q->ch == NULL) {
		free(q);
		return NULL;
	}
	return q;
}

void
mc_queue_client_close(struct mc_queue_client *q)
{
	if (q == NULL)
		return;
	for (struct qcall *c = q->calls; c; c = c->next)
		c->q = NULL;
	mc_chan_close(q->ch);
	free(q);
}

bool
mc_queue_client_is_up(const struct mc_queue_client *q)
{
	return q != NULL && mc_chan_is_up(q->ch);
}

static void
unlink_call(struct qcall *c)
{
	if (c->q == NULL)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		c->q->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->q = NULL;
}

/*
 * The code and text of a failed call: queued's own when it answered with
 * an error (kept if it is a 4xx/5xx with an enhanced status), else 451.
 */
static void
failure(const struct qcall *c, struct mc_msg *m, int err, unsigned *code, char *text, size_t textsz)
{
	const char *what = c->kind == CALL_BEGIN ? "Q_SUBMIT_BEGIN" : "Q_SUBMIT_COMMIT";
	uint32_t rcode = 0;
	*code = 451;
	snprintf(text, textsz, "%s", UNAVAILABLE);
	if (err == MC_CHAN_EREMOTE && mc_chan_error_parse(m, &rcode, text, textsz) == 0) {
		if (rcode >= 400 && rcode <= 599 && (text[0] == '4' || text[0] == '5') && text[1] == '.') {
			*code = rcode;
			return;
		}
		mc_warn("queue client: %s reqid=%u: queued answered %u %s", what, c->reqid, rcode, text);
		snprintf(text, textsz, "4.3.0 Queue manager error, try again later");
		return;
	}
	if (err == MC_CHAN_ETIMEDOUT)
		mc_warn("queue client: %s reqid=%u: queued did not answer in time", what, c->reqid);
	else if (err == MC_CHAN_OK || err == MC_CHAN_EREMOTE)
		mc_warn("queue client: %s reqid=%u: malformed answer from queued", what, c->reqid);
	snprintf(text, textsz, "%s", UNAVAILABLE);
}

static void
begin_done(struct qcall *c, struct mc_msg *m, int err)
{
	char qid[MC_QID_MAX] = "";
	char text[256];
	unsigned code;
	int fd = -1;
	if (err == MC_CHAN_OK) {
		mc_msg_get_str(m, qid, sizeof(qid));
		mc_msg_get_fd(m, &fd);
		if (mc_msg_end(m) == 0 && qid[0] != '\0' && fd >= 0) {
			c->cb.begin(c->arg, true, fd, qid, 0, "");
			return;
		}
		if (fd >= 0)
			close(fd);
	}
	failure(c, m, err, &code, text, sizeof(text));
	c->cb.begin(c->arg, false, -1, "", code, text);
}

static void
commit_done(struct qcall *c, struct mc_msg *m, int err)
{
	char text[256];
	unsigned code;
	if (err == MC_CHAN_OK && mc_msg_end(m) == 0) {
		c->cb.commit(c->arg, true, 250, "");
		return;
	}
	failure(c, m, err, &code, text, sizeof(text));
	c->cb.commit(c->arg, false, code, text);
}

static void
on_reply(void *arg, struct mc_msg *m, int err)
{
	struct qcall *c = arg;
	unlink_call(c);
	if (c->kind == CALL_BEGIN)
		begin_done(c, m, err);
	else
		commit_done(c, m, err);
	free(c);
}

/* A record for a call about to start, listed for cancel and close. */
static struct qcall *
new_call(struct mc_queue_client *q, enum call_kind kind, void *arg)
{
	struct qcall *c = calloc(1, sizeof(*c));
	if (c == NULL)
		mc_panic("queue client: out of memory");
	c->kind = kind;
	c->arg = arg;
	c->q = q;
	c->next = q->calls;
	if (q->calls)
		q->calls->prev = c;
	q->calls = c;
	return c;
}

uint32_t
mc_queue_begin(struct mc_queue_client *q, uint64_t size_hint, const char *client, mc_queue_begin_cb cb, void *arg)
{
	struct mc_msg m;
	struct qcall *c;
	mc_msg_init(&m, MC_MSG_Q_SUBMIT_BEGIN);
	mc_msg_put_u64(&m, size_hint);
	mc_msg_put_str(&m, client);
	c = new_call(q, CALL_BEGIN, arg);
	c->cb.begin = cb;
	c->reqid = mc_chan_call(q->ch, &m, BEGIN_TIMEOUT_MS, on_reply, c);
	return c->reqid;
}

uint32_t
mc_queue_commit(struct mc_queue_client *q, const struct mc_envelope *e, mc_queue_commit_cb cb, void *arg)
{
	struct mc_msg m;
	struct qcall *c;
	mc_msg_init(&m, MC_MSG_Q_SUBMIT_COMMIT);
	mc_envelope_put(&m, e);
	c = new_call(q, CALL_COMMIT, arg);
	c->cb.commit = cb;
	c->reqid = mc_chan_call(q->ch, &m, COMMIT_TIMEOUT_MS, on_reply, c);
	return c->reqid;
}

void
mc_queue_abort(struct mc_queue_client *q, const char *qid)
{
	struct mc_msg m;
	if (q == NULL || qid == NULL || qid[0] == '\0')
		return;
	mc_msg_init(&m, MC_MSG_Q_SUBMIT_ABORT);
	mc_msg_put_str(&m, qid);
	/* Down: nothing to do; queued removes bodies without an envelope when it starts. */
	mc_chan_send(q->ch, &m);
}

void
mc_queue_cancel(struct mc_queue_client *q, uint32_t handle)
{
	if (q == NULL || handle == 0)
		return;
	for (struct qcall *c = q->calls; c; c = c->next) {
		if (c->reqid == handle) {
			mc_chan_cancel(q->ch, handle);
			unlink_call(c);
			free(c);
			return;
		}
	}
}

/* ---- queued's side ---- */

int
mc_queue_req_begin(struct mc_msg *m, uint64_t *size_hint, char *client, size_t clientsz)
{
	mc_msg_get_u64(m, size_hint);
	mc_msg_get_str(m, client, clientsz);
	return mc_msg_end(m);
}

int
mc_queue_req_abort(struct mc_msg *m, char *qid, size_t qidsz)
{
	mc_msg_get_str(m, qid, qidsz);
	return mc_msg_end(m);
}

int
mc_queue_reply_begin(struct mc_chan *ch, uint32_t reqid, const char *qid, int fd)
{
	struct mc_msg m;
	mc_msg_init(&m, MC_MSG_Q_SUBMIT_BEGIN);
	mc_msg_put_str(&m, qid);
	mc_msg_put_fd(&m, fd);
	return mc_chan_reply(ch, reqid, &m);
}

int
mc_queue_reply_commit(struct mc_chan *ch, uint32_t reqid)
{
	struct mc_msg m;
	mc_msg_init(&m, MC_MSG_Q_SUBMIT_COMMIT);
	return mc_chan_reply(ch, reqid, &m);
}
