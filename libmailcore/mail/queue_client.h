/*
 * queue_client.h - smtpd's side of submitting a message to queued.
 *
 *   mc_queue_begin()   queued opens a new body file (O_EXCL) after checking
 *                      free space, and passes its descriptor back with the
 *                      queue id; smtpd writes the body straight into it and
 *                      never learns a spool path.
 *   mc_queue_commit()  queued fsyncs the file and its directory, commits the
 *                      envelope (group commit); only then the callback says
 *                      "committed" and smtpd may answer 250.
 *   mc_queue_abort()   the transaction ended without commit: the file goes.
 *
 * Callbacks run exactly once (never inside the call). code/text carry an
 * SMTP-ready reason on failure: 452 (no space), 451 (anything else, also
 * queued away or too slow).
 */
#ifndef MC_QUEUE_CLIENT_H
#define MC_QUEUE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "mail/envelope.h"
#include "mail/proto.h"
#include "util/config.h"

struct mc_queue_client;

/* ok: fd (owned by the caller) and qid are set; else code (451/452) and text. */
typedef void (*mc_queue_begin_cb)(void *arg, bool ok, int fd, const char *qid, unsigned code, const char *text);
typedef void (*mc_queue_commit_cb)(void *arg, bool ok, unsigned code, const char *text);

struct mc_queue_client *mc_queue_client_open(uv_loop_t *loop, const struct mc_config *cfg, enum mc_role my_role,
					     const char *my_name);
void mc_queue_client_close(struct mc_queue_client *q);
bool mc_queue_client_is_up(const struct mc_queue_client *q);

uint32_t mc_queue_begin(struct mc_queue_client *q, uint64_t size_hint, const char *client, mc_queue_begin_cb cb,
			void *arg);
/* The envelope is copied into the request; e->qid names the submission. */
uint32_t mc_queue_commit(struct mc_queue_client *q, const struct mc_envelope *e, mc_queue_commit_cb cb, void *arg);
void mc_queue_abort(struct mc_queue_client *q, const char *qid);
void mc_queue_cancel(struct mc_queue_client *q, uint32_t handle);

/*
 * Server side (queued): the one place the Q_SUBMIT_* payloads are read and
 * written. A Q_SUBMIT_COMMIT request is read with mc_envelope_get(). Errors
 * are answered with mc_chan_reply_error(ch, reqid, type, 451 or 452,
 * "4.3.0 ..."), whose text reaches the SMTP client as it is.
 */
/* Q_SUBMIT_BEGIN request: size hint and client description into client[clientsz]. -1 if malformed. */
int mc_queue_req_begin(struct mc_msg *m, uint64_t *size_hint, char *client, size_t clientsz);
/* Q_SUBMIT_ABORT notice: the queue id into qid[qidsz]. -1 if malformed. */
int mc_queue_req_abort(struct mc_msg *m, char *qid, size_t qidsz);
/* Q_SUBMIT_BEGIN reply: the queue id and the body file's descriptor (passed, then closed here). */
int mc_queue_reply_begin(struct mc_chan *ch, uint32_t reqid, const char *qid, int fd);
/* Q_SUBMIT_COMMIT reply: committed. */
int mc_queue_reply_commit(struct mc_chan *ch, uint32_t reqid);

#endif
