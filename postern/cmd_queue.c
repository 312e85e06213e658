/*
 * cmd_queue.c - `postern queue list|show|summary|flush|hold|release|
 * delete|bounce|pause|resume|watch`: the administrator's view of queued's
 * queue, over its control socket (run_dir/queued.ctl, admin group only).
 *
 * One connection per command (mc_chan_connect_once as MC_ROLE_ADMIN);
 * requests and replies are built and read by mail/queue_ctl.c. A listing
 * comes in pages (a frame holds at most 1 MiB) and is printed page by
 * page, so 100,000 messages never sit in this process at once. watch
 * keeps the connection open and prints each event queued pushes until
 * Ctrl-C. Output: text on stdout, JSON with --json (before the command
 * or among its words), reasons on stderr; exit 0 done, 1 failed (also an
 * unknown queue id: "no such message"), 2 usage. queue_fmt.c prints.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "mail/proto.h"
#include "mail/qid.h"
#include "postern.h"
#include "queue_fmt.h"
#include "util/chan.h"
#include "util/log.h"

#define CONNECT_TIMEOUT_MS 10000
#define CALL_TIMEOUT_MS 120000     /* a bulk delete of 100,000 messages takes a while */
#define LIST_PAGE 1000

static const char usage_text[] =
	"usage: postern [--json] queue COMMAND ...\n"
	"  list [--from ADDR] [--to ADDR|DOMAIN] [--state deferred|held|active|corrupt] [--older-than AGE]\n"
	"  show ID [--body]\n"
	"  summary [FILTERS]\n"
	"  flush [ID|DOMAIN|ALL] [FILTERS]        try now (everything when nothing is given)\n"
	"  hold|release|delete|bounce ID|ALL|FILTERS   bounce: return to the sender now, with a DSN\n"
	"  pause | resume                         stop / restart delivery (accepting goes on)\n"
	"  watch                                  queue events as they happen, until Ctrl-C\n"
	"AGE: a number with s, m, h or d (1h, 30m). --json prints JSON (watch: one object per line).";

struct qargs {
	const char *sub;
	const char *pos;             /* ID, DOMAIN or ALL */
	bool json, body;
	struct mc_qctl_filter f;
};

struct sess {
	const struct postern_ctx *ctx;
	struct qargs *a;
	struct mc_chan *ch;
	uv_timer_t timer;            /* connect timeout, then the close after the end */
	uv_signal_t sigint, sigterm;
	bool watching, finished;
	int rc;
	void (*start)(struct sess *s);
	/* list */
	char after[MC_QID_MAX];
	struct qfmt_list out;
};

static int
usage(const char *why)
{
	if (why)
		fprintf(stderr, "postern: queue: %s\n", why);
	fprintf(stderr, "%s\n", usage_text);
	return POSTERN_USAGE;
}

/* "90", "90s", "30m", "1h", "2d" into seconds; -1 when malformed. */
static long long
parse_age(const char *s)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || v <= 0)
		return -1;
	long long mul = 1;
	if (*end == 's')
		end++;
	else if (*end == 'm')
		mul = 60, end++;
	else if (*end == 'h')
		mul = 3600, end++;
	else if (*end == 'd')
		mul = 86400, end++;
	if (*end != '\0' || v > (1LL << 40) / mul)
		return -1;
	return v * mul;
}

static int
copy_opt(char *dst, size_t dstsz, const char *v, const char *opt)
{
	if (strlen(v) >= dstsz || v[0] == '\0') {
		char why[128];
		snprintf(why, sizeof(why), "%s: value empty or too long", opt);
		return usage(why);
	}
	snprintf(dst, dstsz, "%s", v);
	return 0;
}

static int
parse(const struct postern_ctx *ctx, int argc, char **argv, struct qargs *a)
{
	memset(a, 0, sizeof(*a));
	a->json = ctx->json;
	if (argc < 2)
		return usage("missing command");
	a->sub = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *w = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		int rc = 0;
		if (strcmp(w, "--json") == 0) {
			a->json = true;
		} else if (strcmp(w, "--body") == 0) {
			a->body = true;
		} else if (strcmp(w, "--from") == 0 && v) {
			rc = copy_opt(a->f.from, sizeof(a->f.from), v, w), i++;
		} else if (strcmp(w, "--to") == 0 && v) {
			rc = copy_opt(a->f.to, sizeof(a->f.to), v, w), i++;
		} else if (strcmp(w, "--state") == 0 && v) {
			if (!mc_qctl_state_valid(v))
				return usage("--state: one of deferred, held, active, corrupt");
			rc = copy_opt(a->f.state, sizeof(a->f.state), v, w), i++;
		} else if (strcmp(w, "--older-than") == 0 && v) {
			long long age = parse_age(v);
			if (age < 0)
				return usage("--older-than: an age such as 90s, 30m, 1h or 2d");
			a->f.older_than = (uint64_t)age;
			i++;
		} else if (w[0] == '-' && w[1] != '\0') {
			char why[160];
			snprintf(why, sizeof(why), "unknown option or missing value: '%.100s'", w);
			return usage(why);
		} else if (a->pos == NULL) {
			a->pos = w;
		} else {
			return usage("too many arguments");
		}
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- the session ---- */

static void on_close_timer(uv_timer_t *t);

static void
finish(struct sess *s, int rc)
{
	if (s->finished)
		return;
	s->finished = true;
	s->rc = rc;
	if (s->watching) {
		uv_signal_stop(&s->sigint);
		uv_signal_stop(&s->sigterm);
	}
	uv_close((uv_handle_t *)&s->sigint, NULL);
	uv_close((uv_handle_t *)&s->sigterm, NULL);
	uv_timer_stop(&s->timer);
	/* never close a channel from inside its own callback: the loop's next turn does it */
	uv_timer_start(&s->timer, on_close_timer, 0, 0);
}

static void
on_close_timer(uv_timer_t *t)
{
	struct sess *s = t->data;
	if (!s->finished) {
		fprintf(stderr, "postern: queue %s: queued did not answer within %d s\n", s->a->sub,
			CONNECT_TIMEOUT_MS / 1000);
		s->finished = true;
		s->rc = POSTERN_FAIL;
		uv_close((uv_handle_t *)&s->sigint, NULL);
		uv_close((uv_handle_t *)&s->sigterm, NULL);
	}
	if (s->ch) {
		struct mc_chan *ch = s->ch;
		s->ch = NULL;
		mc_chan_close(ch);
	}
	uv_close((uv_handle_t *)t, NULL);
}

static int
fail(struct sess *s, const char *why)
{
	fprintf(stderr, "postern: queue %s: %s\n", s->a->sub, why);
	finish(s, POSTERN_FAIL);
	return -1;
}

/* The reply's error, or a transport failure, printed; 0 when m is a good reply. */
static int
check_reply(struct sess *s, struct mc_msg *m, int err)
{
	if (err == 0 && m)
		return 0;
	char text[600];
	uint32_t code = 0;
	if (err == MC_CHAN_EREMOTE && m && mc_chan_error_parse(m, &code, text, sizeof(text)) == 0)
		;
	else if (err == MC_CHAN_ETIMEDOUT)
		snprintf(text, sizeof(text), "queued did not answer within %d s", CALL_TIMEOUT_MS / 1000);
	else
		snprintf(text, sizeof(text), "the connection to queued was lost");
	if (code == MC_QCTL_E_NOTFOUND && s->a->pos) {
		char why[700];
		snprintf(why, sizeof(why), "%s: %s", s->a->pos, text);
		return fail(s, why);
	}
	return fail(s, text);
}

static void
call(struct sess *s, struct mc_msg *m, mc_chan_reply_cb cb)
{
	mc_chan_call(s->ch, m, CALL_TIMEOUT_MS, cb, s);
}

/* ---- list ---- */

static void list_page(struct sess *s);

static void
on_list(void *arg, struct mc_msg *m, int err)
{
	struct sess *s = arg;
	uint32_t n;
	if (check_reply(s, m, err) < 0)
		return;
	if (mc_msg_get_u32(m, &n) < 0) {
		fail(s, "unreadable reply from queued");
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct mc_qctl_entry e;
		if (mc_qctl_get_entry(m, &e) < 0) {
			fail(s, "unreadable reply from queued");
			return;
		}
		qfmt_list_entry(&s->out, &e);
		mc_qctl_entry_free(&e);
	}
	if (mc_qctl_get_next(m, s->after, sizeof(s->after)) < 0) {
		fail(s, "unreadable reply from queued");
		return;
	}
	if (qfmt_flush(&s->out) < 0) {
		fail(s, "cannot write the listing");
		return;
	}
	if (s->after[0]) {
		list_page(s);
		return;
	}
	finish(s, qfmt_list_end(&s->out) < 0 ? POSTERN_FAIL : POSTERN_OK);
}

static void
list_page(struct sess *s)
{
	struct mc_msg m;
	mc_msg_init(&m, MC_MSG_Q_CTL_LIST);
	mc_qctl_put_list_req(&m, &s->a->f, s->after, LIST_PAGE);
	call(s, &m, on_list);
}

static void
start_list(struct sess *s)
{
	qfmt_list_begin(&s->out, s->a->json);
	list_page(s);
}

/* ---- show ---- */

static void
on_show(void *arg, struct mc_msg *m, int err)
{
	struct sess *s = arg;
	struct mc_qctl_show sh;
	if (check_reply(s, m, err) < 0)
		return;
	if (mc_qctl_get_show(m, &sh) < 0) {
		fail(s, "unreadable reply from queued");
		return;
	}
	int rc = qfmt_show(&sh, s->a->json, s->a->body);
	mc_qctl_show_free(&sh);
	if (rc < 0)
		fail(s, s->a->body ? "cannot read or write the message body" : "cannot write the output");
	else
		finish(s, POSTERN_OK);
}

static void
start_show(struct sess *s)
{
	struct mc_msg m;
	mc_msg_init(&m, MC_MSG_Q_CTL_SHOW);
	mc_qctl_put_show_req(&m, s->a->pos, s->a->body);
	call(s, &m, on_show);
}

/* ---- summary ---- */

static void
on_summary(void *arg, struct mc_msg *m, int err)
{
	struct sess *s = arg;
	struct mc_qctl_dom *d;
	uint32_t n, other;
	if (check_reply(s, m, err) < 0)
		return;
	if (mc_qctl_get_summary(m, &d, &n, &other) < 0) {
		fail(s, "unreadable reply from queued");
		return;
	}
	int rc = qfmt_summary(d, n, other, s->a->json);
	free(d);
	finish(s, rc < 0 ? POSTERN_FAIL : POSTERN_OK);
}

static void
start_summary(struct sess *s)
{
	struct mc_msg m;
	mc_msg_init(&m, MC_MSG_Q_CTL_SUMMARY);
	mc_qctl_put_summary_req(&m, &s->a->f);
	call(s, &m, on_summary);
}

/* ---- actions ---- */

static uint32_t
action_of(const char *sub)
{
	for (uint32_t a = 1; a < MC_QCTL_ACTION_COUNT; a++)
		if (strcmp(sub, mc_qctl_action_name(a)) == 0)
			return a;
	return 0;
}

static void
on_act(void *arg, struct mc_msg *m, int err)
{
	struct sess *s = arg;
	uint32_t matched, changed, n;
	if (check_reply(s, m, err) < 0)
		return;
	if (mc_qctl_get_act_head(m, &matched, &changed, &n) < 0) {
		fail(s, "unreadable reply from queued");
		return;
	}
	struct qfmt_act out;
	qfmt_act_begin(&out, s->a->sub, s->a->json);
	for (uint32_t i = 0; i < n; i++) {
		char qid[MC_QID_MAX], what[MC_QCTL_ERR_MAX];
		if (mc_qctl_get_act_result(m, qid, sizeof(qid), what, sizeof(what)) < 0) {
			qfmt_act_abort(&out);
			fail(s, "unreadable reply from queued");
			return;
		}
		qfmt_act_result(&out, qid, what);
	}
	if (mc_msg_end(m) < 0) {
		qfmt_act_abort(&out);
		fail(s, "unreadable reply from queued");
		return;
	}
	finish(s, qfmt_act_end(&out, matched, changed, n) < 0 ? POSTERN_FAIL : POSTERN_OK);
}

static void
start_act(struct sess *s)
{
	struct mc_msg m;
	mc_msg_init(&m, MC_MSG_Q_CTL_ACT);
	mc_qctl_put_act_req(&m, action_of(s->a->sub), &s->a->f);
	call(s, &m, on_act);
}

/* ---- pause, resume ---- */

static void
on_pause(void *arg, struct mc_msg *m, int err)
{
	struct sess *s = arg;
	uint32_t was;
	if (check_reply(s, m, err) < 0)
		return;
	if (mc_msg_get_u32(m, &was) < 0 || mc_msg_end(m) < 0) {
		fail(s, "unreadable reply from queued");
		return;
	}
	bool pause = strcmp(s->a->sub, "pause") == 0;
	if (s->a->json)
		printf("{\"paused\": %s, \"was_paused\": %s}\n", pause ? "true" : "false", was ? "true" : "false");
	else if (pause)
		printf("delivery %spaused; mail is still accepted and queued (postern queue resume)\n",
		       was ? "was already " : "");
	else
		printf("delivery %s\n", was ? "resumed" : "was not paused");
	finish(s, fflush(stdout) == 0 ? POSTERN_OK : POSTERN_FAIL);
}

static void
start_pause(struct sess *s)
{
	struct mc_msg m;
	mc_msg_init(&m, MC_MSG_Q_CTL_PAUSE);
	mc_qctl_put_pause_req(&m, strcmp(s->a->sub, "pause") == 0);
	call(s, &m, on_pause);
}

/* ---- watch ---- */

static void
on_signal(uv_signal_t *h, int signum)
{
	struct sess *s = h->data;
	(void)signum;
	finish(s, POSTERN_OK);
}

static void
on_watch(void *arg, struct mc_msg *m, int err)
{
	struct sess *s = arg;
	if (check_reply(s, m, err) < 0)
		return;
	s->watching = true;
	uv_signal_start(&s->sigint, on_signal, SIGINT);
	uv_signal_start(&s->sigterm, on_signal, SIGTERM);
	if (!s->a->json) {
		printf("watching the queue (Ctrl-C ends)\n");
		fflush(stdout);
	}
}

static void
start_watch(struct sess *s)
{
	struct mc_msg m;
	mc_msg_init(&m, MC_MSG_Q_CTL_WATCH);
	call(s, &m, on_watch);
}

/* ---- the channel ---- */

static void
on_up(struct mc_chan *ch, void *arg)
{
	struct sess *s = arg;
	(void)ch;
	if (s->finished)
		return;
	uv_timer_stop(&s->timer);
	s->start(s);
}

static void
on_msg(struct mc_chan *ch, struct mc_msg *m, void *arg)
{
	struct sess *s = arg;
	struct mc_qctl_event ev;
	(void)ch;
	if (!s->watching || s->finished || m->type != MC_MSG_Q_CTL_EVENT)
		return;
	if (mc_qctl_get_event(m, &ev) < 0) {
		fail(s, "unreadable event from queued");
		return;
	}
	if (qfmt_event(&ev, s->a->json) < 0)
		finish(s, POSTERN_OK);   /* stdout closed (a pager that quit): done */
}

static void
on_down(struct mc_chan *ch, void *arg)
{
	struct sess *s = arg;
	(void)ch;
	s->ch = NULL;   /* freed after this returns */
	if (!s->finished)
		fail(s, s->watching ? "queued went away" : "the connection was closed (is this user in the admin group?)");
}

static int
run(const struct postern_ctx *ctx, struct qargs *a, void (*start)(struct sess *))
{
	static const struct mc_chan_cbs cbs = { .on_msg = on_msg, .on_up = on_up, .on_down = on_down };
	static struct sess s;
	uv_loop_t *loop = uv_default_loop();
	char path[MC_PATH_MAX + 32];

	memset(&s, 0, sizeof(s));
	s.ctx = ctx;
	s.a = a;
	s.start = start;
	uv_timer_init(loop, &s.timer);
	s.timer.data = &s;
	uv_signal_init(loop, &s.sigint);
	uv_signal_init(loop, &s.sigterm);
	s.sigint.data = s.sigterm.data = &s;
	mc_config_sock(&ctx->cfg, path, sizeof(path), "queued.ctl");
	errno = 0;
	s.ch = mc_chan_connect_once(loop, path, &mc_proto, MC_ROLE_ADMIN, "postern", &cbs, &s);
	if (s.ch == NULL) {
		int e = errno;
		if (e == ENOENT || e == ECONNREFUSED)
			fprintf(stderr, "postern: queue %s: is the instance running? (nothing listens at %s)\n", a->sub,
				path);
		else if (e == EACCES || e == EPERM)
			fprintf(stderr, "postern: queue %s: %s: %s (the queue is for root and the admin group '%s')\n",
				a->sub, path, strerror(e), ctx->cfg.global.admin_group);
		else
			fprintf(stderr, "postern: queue %s: cannot connect to %s: %s\n", a->sub, path,
				e ? strerror(e) : "refused");
		s.finished = true;
		s.rc = POSTERN_FAIL;
		uv_close((uv_handle_t *)&s.sigint, NULL);
		uv_close((uv_handle_t *)&s.sigterm, NULL);
		uv_close((uv_handle_t *)&s.timer, NULL);
	} else {
		uv_timer_start(&s.timer, on_close_timer, CONNECT_TIMEOUT_MS, 0);
	}
	uv_run(loop, UV_RUN_DEFAULT);
	return s.rc;
}

int
cmd_queue(struct postern_ctx *ctx, int argc, char **argv)
{
	static struct qargs a;
	int rc = parse(ctx, argc, argv, &a);
	if (rc)
		return rc;
	const char *sub = a.sub;
	if (strcmp(sub, "help") == 0) {
		printf("%s\n", usage_text);
		return POSTERN_OK;
	}
	bool filtered = !mc_qctl_filter_empty(&a.f);

	if (strcmp(sub, "list") == 0 || strcmp(sub, "summary") == 0) {
		if (a.pos || a.body)
			return usage(a.pos ? "list and summary take filters, not an id" : "--body goes with show");
		return run(ctx, &a, sub[0] == 'l' ? start_list : start_summary);
	}
	if (strcmp(sub, "show") == 0) {
		if (a.pos == NULL || filtered)
			return usage("show takes one queue id");
		if (strlen(a.pos) >= sizeof(a.f.qid))
			return usage("not a queue id");
		return run(ctx, &a, start_show);
	}
	if (strcmp(sub, "pause") == 0 || strcmp(sub, "resume") == 0 || strcmp(sub, "watch") == 0) {
		if (a.pos || filtered || a.body)
			return usage("pause, resume and watch take no arguments");
		return run(ctx, &a, sub[0] == 'w' ? start_watch : start_pause);
	}
	uint32_t action = action_of(sub);
	if (action == 0) {
		char why[160];
		snprintf(why, sizeof(why), "unknown command '%.100s'", sub);
		return usage(why);
	}
	if (a.body)
		return usage("--body goes with show");
	if (a.pos && strcmp(a.pos, "ALL") == 0) {
		a.f.all = true;
	} else if (a.pos && action == MC_QCTL_FLUSH && !mc_qid_valid(a.pos)) {
		/* flush DOMAIN */
		if (a.f.to[0])
			return usage("flush: a domain or --to, not both");
		snprintf(a.f.to, sizeof(a.f.to), "%s", a.pos);
	} else if (a.pos) {
		if (strlen(a.pos) >= sizeof(a.f.qid))
			return usage("not a queue id");
		snprintf(a.f.qid, sizeof(a.f.qid), "%s", a.pos);
	} else if (!filtered) {
		if (action != MC_QCTL_FLUSH)
			return usage("give a queue id, filters (--to spam.example) or ALL");
		a.f.all = true;   /* postern queue flush: everything, as postqueue -f */
	}
	return run(ctx, &a, start_act);
}
