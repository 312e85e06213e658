/*
 * queue_fmt.h - how `postern queue` prints: text for people, JSON for
 * scripts (--json), from the decoded Q_CTL_* replies of mail/queue_ctl.h.
 *
 * Called by cmd_queue.c only; writes to stdout and nowhere else. A
 * listing is buffered a page at a time (qfmt_flush after each page), so
 * its memory does not grow with the queue. Functions returning int give
 * -1 when stdout could not be written (or, for show --body, the body
 * file not read).
 */
#ifndef POSTERN_QUEUE_FMT_H
#define POSTERN_QUEUE_FMT_H

#include <stdbool.h>
#include <stdint.h>

#include "mail/queue_ctl.h"
#include "util/buf.h"

struct qfmt_list {
	struct mc_buf b;
	bool json;
	uint64_t n, bytes;
};

void qfmt_list_begin(struct qfmt_list *o, bool json);
void qfmt_list_entry(struct qfmt_list *o, const struct mc_qctl_entry *e);
int qfmt_flush(struct qfmt_list *o);
/* The closing bracket, or the "-- N messages, B bytes" line. */
int qfmt_list_end(struct qfmt_list *o);

/* Everything about one message; with body, the message itself read from s->body_fd. */
int qfmt_show(const struct mc_qctl_show *s, bool json, bool body);

/* The summary table (or JSON) by domain and age bucket, with a TOTAL row. */
int qfmt_summary(const struct mc_qctl_dom *d, uint32_t n, uint32_t other, bool json);

struct qfmt_act {
	struct mc_buf b;
	const char *action;
	bool json;
};
void qfmt_act_begin(struct qfmt_act *o, const char *action, bool json);
void qfmt_act_result(struct qfmt_act *o, const char *qid, const char *what);
int qfmt_act_end(struct qfmt_act *o, uint32_t matched, uint32_t changed, uint32_t listed);
void qfmt_act_abort(struct qfmt_act *o);

/* One watched event as a line (JSON: one object per line), flushed at once. */
int qfmt_event(const struct mc_qctl_event *ev, bool json);

#endif
