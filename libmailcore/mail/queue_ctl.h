/*
 * queue_ctl.h - the payloads of queued's control socket (Q_CTL_* in
 * mail/proto.h): `postern queue list|show|summary|flush|hold|release|
 * delete|bounce|pause|resume|watch`.
 *
 * The one place these frames are built and read: postern/cmd_queue.c
 * writes requests and reads replies, queued/control.c reads requests and
 * writes replies, both through these functions. Every reader is bounded:
 * strings must fit the caller's buffers, counts are checked against what
 * is left of the frame before anything is allocated, and a reader fails
 * (-1) on a frame that is short, long or of the wrong shape. Nothing here
 * touches a socket, a file or a database.
 *
 * A frame holds at most MC_MSG_MAX_PAYLOAD bytes, so a listing of 100,000
 * messages travels in pages: a LIST request names the last queue id seen
 * and the reply carries the next one ("" at the end).
 */
#ifndef MC_QUEUE_CTL_H
#define MC_QUEUE_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/envelope.h"
#include "util/msg.h"

#define MC_QCTL_STATE_MAX 16
#define MC_QCTL_ERR_MAX 512       /* a recipient's last error, an event's detail */
#define MC_QCTL_WHAT_MAX 32
#define MC_QCTL_DOMAIN_MAX 256
#define MC_QCTL_HEADERS_MAX 65536 /* the header block `queue show` prints */
/* What queued puts into one reply at most, leaving room below the frame limit. */
#define MC_QCTL_REPLY_BUDGET (MC_MSG_MAX_PAYLOAD - 64 * 1024)
/* Age buckets of the summary, upper bounds in minutes (as qshape's); the last bucket is "older". */
#define MC_QCTL_BUCKETS 10
extern const unsigned mc_qctl_bucket_minutes[MC_QCTL_BUCKETS - 1];

/* Which messages a listing or an action is about. Empty fields match everything. */
struct mc_qctl_filter {
	bool all;                        /* an action on every message was asked for explicitly (ALL) */
	char qid[MC_QID_MAX];
	char from[MC_ADDR_MAX];          /* the envelope sender, exact (case-insensitive); "<>" is the null sender */
	char to[MC_ADDR_MAX];            /* a recipient address (with '@') or a recipient domain */
	char state[MC_QCTL_STATE_MAX];   /* deferred, held, active, corrupt */
	uint64_t older_than;             /* seconds since arrival; 0: any age */
};

/* True when no field restricts (a bulk action then needs f->all). */
bool mc_qctl_filter_empty(const struct mc_qctl_filter *f);
/* Is s a state a filter may name? */
bool mc_qctl_state_valid(const char *s);

/* One recipient as listed. */
struct mc_qctl_rcpt {
	char addr[MC_ADDR_MAX];
	char state[MC_QCTL_STATE_MAX];   /* pending, deferred, delivered, bounced, held */
	uint32_t attempts;
	int64_t next_try;                /* unix time; 0 when not deferred */
	char last_error[MC_QCTL_ERR_MAX];
};

/* One message as listed. */
struct mc_qctl_entry {
	char qid[MC_QID_MAX];
	char state[MC_QCTL_STATE_MAX];   /* active, deferred, held, corrupt */
	int64_t arrival;
	uint64_t size;
	char sender[MC_ADDR_MAX];
	int64_t next_try;                /* earliest next try of a deferred recipient; 0: none */
	uint32_t nrcpt;                  /* recipients in the envelope */
	uint32_t n;                      /* recipients listed in rcpt (a listing may stop short of nrcpt) */
	struct mc_qctl_rcpt *rcpt;       /* malloc'd by the reader; the writer's own array otherwise */
};

/* One line of a message's history (the events table), or a watched event. */
struct mc_qctl_event {
	int64_t time_ms;
	char qid[MC_QID_MAX];
	char rcpt[MC_ADDR_MAX];
	char what[MC_QCTL_WHAT_MAX];     /* queued, deferred, delivered, bounced, held, released, removed, ... */
	char detail[MC_QCTL_ERR_MAX];
};

/* One destination domain of the summary. */
struct mc_qctl_dom {
	char domain[MC_QCTL_DOMAIN_MAX];
	uint32_t msgs;
	uint64_t bytes;
	uint32_t count[MC_QCTL_BUCKETS];
};

enum mc_qctl_action {
	MC_QCTL_FLUSH = 1,
	MC_QCTL_HOLD,
	MC_QCTL_RELEASE,
	MC_QCTL_DELETE,
	MC_QCTL_BOUNCE,
	MC_QCTL_ACTION_COUNT
};
const char *mc_qctl_action_name(uint32_t action);

/* Error codes of Q_CTL_* error replies. */
enum { MC_QCTL_E_REFUSED = 1, MC_QCTL_E_NOTFOUND = 2, MC_QCTL_E_FAILED = 3 };

void mc_qctl_entry_free(struct mc_qctl_entry *e);

/* Q_CTL_LIST request: filter, after (the last qid of the previous page, "" first), max messages. */
void mc_qctl_put_list_req(struct mc_msg *m, const struct mc_qctl_filter *f, const char *after, uint32_t max);
int mc_qctl_get_list_req(struct mc_msg *m, struct mc_qctl_filter *f, char *after, size_t aftersz, uint32_t *max);
/* Q_CTL_LIST reply: u32 n, n entries, str next ("" at the end). Written with put_u32 n, put_entry each, put_next. */
void mc_qctl_put_entry(struct mc_msg *m, const struct mc_qctl_entry *e);
int mc_qctl_get_entry(struct mc_msg *m, struct mc_qctl_entry *e);
/* Bytes an entry takes in a frame (for the reply budget). */
size_t mc_qctl_entry_size(const struct mc_qctl_entry *e);

/* Q_CTL_SHOW request: qid, whether the body file is wanted. */
void mc_qctl_put_show_req(struct mc_msg *m, const char *qid, bool body);
int mc_qctl_get_show_req(struct mc_msg *m, char *qid, size_t qidsz, bool *body);

/* The envelope fields show adds to the entry. */
struct mc_qctl_show {
	struct mc_qctl_entry e;
	char envid[MC_DSN_PARAM_MAX];
	char auth_user[MC_ADDR_MAX];
	char client[256];
	uint32_t flags;                  /* enum mc_env_flags */
	char *headers;                   /* the header block, as stored (malloc'd by the reader) */
	uint32_t nevents;
	struct mc_qctl_event *events;    /* malloc'd by the reader */
	int body_fd;                     /* the body file, read-only, when asked for; -1 otherwise */
};
/* Q_CTL_SHOW reply: the show fields, then the body file's descriptor when body_fd >= 0 (consumed). */
void mc_qctl_put_show(struct mc_msg *m, const struct mc_qctl_show *s);
int mc_qctl_get_show(struct mc_msg *m, struct mc_qctl_show *s);
void mc_qctl_show_free(struct mc_qctl_show *s);

/* Q_CTL_SUMMARY request: a filter. Reply: u32 buckets, u32 other domains (not listed), u32 n, n domains. */
void mc_qctl_put_summary_req(struct mc_msg *m, const struct mc_qctl_filter *f);
int mc_qctl_get_summary_req(struct mc_msg *m, struct mc_qctl_filter *f);
void mc_qctl_put_summary(struct mc_msg *m, const struct mc_qctl_dom *d, uint32_t n, uint32_t other);
/* *d is malloc'd (n entries); free() it. */
int mc_qctl_get_summary(struct mc_msg *m, struct mc_qctl_dom **d, uint32_t *n, uint32_t *other);

/* Q_CTL_ACT request: action and filter. */
void mc_qctl_put_act_req(struct mc_msg *m, uint32_t action, const struct mc_qctl_filter *f);
int mc_qctl_get_act_req(struct mc_msg *m, uint32_t *action, struct mc_qctl_filter *f);
/*
 * Q_CTL_ACT reply: u32 matched, u32 changed, u32 n, n * (str qid, str
 * what happened). n may stop short of matched (the frame's budget);
 * read the head, then each result.
 */
void mc_qctl_put_act_head(struct mc_msg *m, uint32_t matched, uint32_t changed, uint32_t n);
int mc_qctl_get_act_head(struct mc_msg *m, uint32_t *matched, uint32_t *changed, uint32_t *n);
void mc_qctl_put_act_result(struct mc_msg *m, const char *qid, const char *what);
int mc_qctl_get_act_result(struct mc_msg *m, char *qid, size_t qidsz, char *what, size_t whatsz);

/* Q_CTL_PAUSE request: pause (true) or resume. Reply: u32 paused before the request. */
void mc_qctl_put_pause_req(struct mc_msg *m, bool pause);
int mc_qctl_get_pause_req(struct mc_msg *m, bool *pause);

/* Q_CTL_EVENT notice (to watchers), and one history line of show. */
void mc_qctl_put_event(struct mc_msg *m, const struct mc_qctl_event *ev);
int mc_qctl_get_event(struct mc_msg *m, struct mc_qctl_event *ev);

/* The common tail: the next cursor of a list reply. */
void mc_qctl_put_next(struct mc_msg *m, const char *next);
int mc_qctl_get_next(struct mc_msg *m, char *next, size_t nextsz);

#endif
