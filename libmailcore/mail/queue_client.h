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

#endif
