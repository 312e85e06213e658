/*
 * control.h - what control.c (the queue control socket) and qview.c (its
 * queries) share; the rest of queued sees only the q_ctl_* calls in
 * queued.h.
 *
 * The qv_* functions run on worker threads with a connection that the
 * caller holds alone for the call; each builds its reply payload into out.
 */
#ifndef QUEUED_CONTROL_H
#define QUEUED_CONTROL_H

#include <sqlite3.h>

#include "mail/queue_ctl.h"
#include "queued/queued.h"

/* A message an action was asked for: selected in the lane, then acted on. */
struct qv_sel {
	char qid[MC_QID_MAX];
	char state[MC_QCTL_STATE_MAX];   /* messages.state when selected */
	char result[128];                /* what was done: "held", "already held", ... */
	bool changed;
};

/* A page of the listing: at most max messages after the qid after, within the reply budget. */
int qv_list(sqlite3 *db, const struct mc_qctl_filter *f, const char *after, uint32_t max, struct mc_msg *out);
/* One message with its history (and its body file when body): 0, 1 when there is no such message, -1. */
int qv_show(sqlite3 *db, const char *active_dir, const char *qid, bool body, struct mc_msg *out);
int qv_summary(sqlite3 *db, const struct mc_qctl_filter *f, struct mc_msg *out);
/* The messages f matches, in qid order, into a malloc'd array. */
int qv_select(sqlite3 *db, const struct mc_qctl_filter *f, struct qv_sel **out, size_t *n);

#endif
