/*
 * queue_fmt.c - the text and JSON of `postern queue` (see queue_fmt.h).
 *
 * Times: arrival and history in UTC, ages and waits as "5m12s"; JSON
 * carries unix times (seconds; event times with milliseconds) beside
 * them. Text that came from outside (addresses, remote replies, headers)
 * is printed as queued stored it: queued has already replaced control
 * characters in what it logs and keeps; JSON escapes the rest.
 */
#include "queue_fmt.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "svc.h"

static char *
fmt_time(int64_t t, char *out, size_t outsz)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, outsz, "%Y-%m-%d %H:%M:%S UTC", &tm);
	return out;
}

static char *
fmt_age(int64_t secs, char *out, size_t outsz)
{
	return postern_fmt_uptime(secs < 0 ? 0 : (uint64_t)secs, out, outsz);
}

/* "in 4m48s", "due now" */
static char *
fmt_wait(int64_t until, int64_t now, char *out, size_t outsz)
{
	char d[32];
	if (until <= now)
		snprintf(out, outsz, "due now");
	else
		snprintf(out, outsz, "in %s", fmt_age(until - now, d, sizeof(d)));
	return out;
}

static int
write_out(struct mc_buf *b)
{
	size_t n = b->len;
	int rc = (n == 0 || fwrite(b->data, 1, n, stdout) == n) && fflush(stdout) == 0 ? 0 : -1;
	mc_buf_reset(b);
	return rc;
}

static void
jkey(struct mc_buf *b, const char *k, bool first)
{
	if (!first)
		mc_buf_adds(b, ", ");
	postern_json_str(b, k);
	mc_buf_adds(b, ": ");
}

static void
jstr(struct mc_buf *b, const char *k, const char *v)
{
	jkey(b, k, false);
	postern_json_str(b, v);
}

static void
jnum(struct mc_buf *b, const char *k, long long v)
{
	jkey(b, k, false);
	mc_buf_printf(b, "%lld", v);
}

/* ---- list ---- */

void
qfmt_list_begin(struct qfmt_list *o, bool json)
{
	memset(o, 0, sizeof(*o));
	mc_buf_init(&o->b, 0);
	o->json = json;
	if (json)
		mc_buf_adds(&o->b, "[");
	else
		mc_buf_printf(&o->b, "%-16s  %-8s  %8s  %9s  %s\n", "QUEUE ID", "STATE", "AGE", "SIZE", "SENDER");
}

static void
rcpts_json(struct mc_buf *b, const struct mc_qctl_entry *e)
{
	jkey(b, "recipients", false);
	mc_buf_adds(b, "[");
	for (uint32_t i = 0; i < e->n; i++) {
		const struct mc_qctl_rcpt *r = &e->rcpt[i];
		mc_buf_adds(b, i ? ", {" : "{");
		jkey(b, "address", true);
		postern_json_str(b, r->addr);
		jstr(b, "state", r->state);
		jnum(b, "attempts", r->attempts);
		if (r->next_try)
			jnum(b, "next_try", r->next_try);
		jstr(b, "last_error", r->last_error);
		mc_buf_adds(b, "}");
	}
	mc_buf_adds(b, "]");
	jnum(b, "recipients_total", e->nrcpt);
}

static void
entry_json(struct mc_buf *b, const struct mc_qctl_entry *e, int64_t now)
{
	jkey(b, "id", true);
	postern_json_str(b, e->qid);
	jstr(b, "state", e->state);
	jnum(b, "arrival", e->arrival);
	jnum(b, "age_seconds", now - e->arrival);
	jnum(b, "size", (long long)e->size);
	jstr(b, "sender", e->sender);
	if (e->next_try)
		jnum(b, "next_try", e->next_try);
	rcpts_json(b, e);
}

void
qfmt_list_entry(struct qfmt_list *o, const struct mc_qctl_entry *e)
{
	int64_t now = (int64_t)time(NULL);
	char age[32], w[48];
	o->bytes += e->size;
	if (o->json) {
		mc_buf_adds(&o->b, o->n ? ",\n {" : "\n {");
		entry_json(&o->b, e, now);
		mc_buf_adds(&o->b, "}");
		o->n++;
		return;
	}
	o->n++;
	mc_buf_printf(&o->b, "%-16s  %-8s  %8s  %9" PRIu64 "  <%s>", e->qid, e->state,
		      fmt_age(now - e->arrival, age, sizeof(age)), e->size, e->sender);
	if (e->next_try && strcmp(e->state, "deferred") == 0)
		mc_buf_printf(&o->b, "  next try %s", fmt_wait(e->next_try, now, w, sizeof(w)));
	mc_buf_adds(&o->b, "\n");
	for (uint32_t i = 0; i < e->n; i++) {
		const struct mc_qctl_rcpt *r = &e->rcpt[i];
		mc_buf_printf(&o->b, "    <%s>  %s", r->addr, r->state);
		if (r->attempts)
			mc_buf_printf(&o->b, "  attempts=%" PRIu32, r->attempts);
		if (r->last_error[0] && strcmp(r->state, "delivered") != 0)
			mc_buf_printf(&o->b, "  (%s)", r->last_error);
		mc_buf_adds(&o->b, "\n");
	}
	if (e->n < e->nrcpt)
		mc_buf_printf(&o->b, "    ... %" PRIu32 " more recipients (postern queue show %s)\n", e->nrcpt - e->n,
			      e->qid);
}

int
qfmt_flush(struct qfmt_list *o)
{
	return write_out(&o->b);
}

int
qfmt_list_end(struct qfmt_list *o)
{
	if (o->json)
		mc_buf_adds(&o->b, o->n ? "\n]\n" : "]\n");
	else if (o->n == 0)
		mc_buf_adds(&o->b, "-- no messages\n");
	else
		mc_buf_printf(&o->b, "-- %" PRIu64 " message%s, %" PRIu64 " bytes\n", o->n, o->n == 1 ? "" : "s",
			      o->bytes);
	int rc = write_out(&o->b);
	mc_buf_free(&o->b);
	return rc;
}

/* ---- show ---- */

/* Why a recipient waits, and until when. */
static void
why_waiting(struct mc_buf *b, const struct mc_qctl_entry *e, const struct mc_qctl_rcpt *r, int64_t now)
{
	char t[64], w[48];
	if (strcmp(e->state, "held") == 0 && strcmp(r->state, "delivered") != 0 && strcmp(r->state, "bounced") != 0)
		mc_buf_adds(b, "      held by an administrator: not tried until released\n");
	else if (strcmp(r->state, "deferred") == 0)
		mc_buf_printf(b, "      waits until %s (%s): %s\n", fmt_time(r->next_try, t, sizeof(t)),
			      fmt_wait(r->next_try, now, w, sizeof(w)), r->last_error);
	else if (strcmp(r->state, "pending") == 0)
		mc_buf_adds(b, "      not tried yet (waiting for a delivery round, or delivery is paused)\n");
	else if (r->last_error[0])
		mc_buf_printf(b, "      %s\n", r->last_error);
}

static int
show_text(struct mc_buf *b, const struct mc_qctl_show *s)
{
	const struct mc_qctl_entry *e = &s->e;
	int64_t now = (int64_t)time(NULL);
	char t[64], age[32];
	mc_buf_printf(b, "Queue id:   %s\n", e->qid);
	mc_buf_printf(b, "State:      %s\n", e->state);
	mc_buf_printf(b, "Arrival:    %s (%s ago)\n", fmt_time(e->arrival, t, sizeof(t)),
		      fmt_age(now - e->arrival, age, sizeof(age)));
	mc_buf_printf(b, "Size:       %" PRIu64 " bytes\n", e->size);
	mc_buf_printf(b, "Sender:     <%s>\n", e->sender);
	if (s->client[0])
		mc_buf_printf(b, "Client:     %s\n", s->client);
	if (s->auth_user[0])
		mc_buf_printf(b, "Auth user:  %s\n", s->auth_user);
	if (s->envid[0])
		mc_buf_printf(b, "Envid:      %s\n", s->envid);
	mc_buf_printf(b, "Recipients: %" PRIu32 "\n", e->nrcpt);
	for (uint32_t i = 0; i < e->n; i++) {
		const struct mc_qctl_rcpt *r = &e->rcpt[i];
		mc_buf_printf(b, "  <%s>  %s  attempts=%" PRIu32 "\n", r->addr, r->state, r->attempts);
		why_waiting(b, e, r, now);
	}
	mc_buf_adds(b, "History:\n");
	for (uint32_t i = 0; i < s->nevents; i++) {
		const struct mc_qctl_event *ev = &s->events[i];
		time_t tt = (time_t)(ev->time_ms / 1000);
		struct tm tm;
		char ts[32];
		gmtime_r(&tt, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
		mc_buf_printf(b, "  %s.%03d  %-10s", ts, (int)(ev->time_ms % 1000), ev->what);
		if (ev->rcpt[0])
			mc_buf_printf(b, "  <%s>", ev->rcpt);
		if (ev->detail[0])
			mc_buf_printf(b, "  %s", ev->detail);
		mc_buf_adds(b, "\n");
	}
	mc_buf_adds(b, "Headers:\n");
	for (const char *p = s->headers; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		if (n && p[n - 1] == '\r')
			n--;
		mc_buf_adds(b, "  ");
		mc_buf_add(b, p, n);
		mc_buf_adds(b, "\n");
		p = nl ? nl + 1 : p + strlen(p);
	}
	return 0;
}

static void
show_json(struct mc_buf *b, const struct mc_qctl_show *s)
{
	int64_t now = (int64_t)time(NULL);
	mc_buf_adds(b, "{");
	entry_json(b, &s->e, now);
	jstr(b, "client", s->client);
	jstr(b, "auth_user", s->auth_user);
	jstr(b, "envid", s->envid);
	jnum(b, "flags", s->flags);
	jstr(b, "headers", s->headers ? s->headers : "");
	jkey(b, "history", false);
	mc_buf_adds(b, "[");
	for (uint32_t i = 0; i < s->nevents; i++) {
		const struct mc_qctl_event *ev = &s->events[i];
		mc_buf_adds(b, i ? ",\n  {" : "\n  {");
		jkey(b, "time", true);
		mc_buf_printf(b, "%lld.%03d", (long long)(ev->time_ms / 1000), (int)(ev->time_ms % 1000));
		jstr(b, "event", ev->what);
		jstr(b, "recipient", ev->rcpt);
		jstr(b, "detail", ev->detail);
		mc_buf_adds(b, "}");
	}
	mc_buf_adds(b, "]");
}

/* The body file into b (JSON: as a string; text: as it is, CRLF as LF). */
static int
read_body(struct mc_buf *b, int fd, bool json)
{
	struct mc_buf raw;
	mc_buf_init(&raw, 0);
	char chunk[65536];
	ssize_t r;
	off_t off = 0;
	while ((r = pread(fd, chunk, sizeof(chunk), off)) > 0) {
		off += r;
		if (mc_buf_add(&raw, chunk, (size_t)r) < 0) {
			r = -1;
			break;
		}
	}
	if (r < 0) {
		mc_buf_free(&raw);
		return -1;
	}
	if (json) {
		/* postern_json_str stops at a NUL: the body has none that matter, but say so */
		for (size_t i = 0; i < raw.len; i++)
			if (raw.data[i] == '\0')
				raw.data[i] = '?';
		jstr(b, "body", raw.data ? raw.data : "");
	} else {
		for (size_t i = 0; i < raw.len; i++)
			if (!(raw.data[i] == '\r' && i + 1 < raw.len && raw.data[i + 1] == '\n'))
				mc_buf_add(b, &raw.data[i], 1);
	}
	mc_buf_free(&raw);
	return 0;
}

int
qfmt_show(const struct mc_qctl_show *s, bool json, bool body)
{
	struct mc_buf b;
	int rc = 0;
	mc_buf_init(&b, 0);
	if (json)
		show_json(&b, s);
	else
		show_text(&b, s);
	if (body) {
		if (!json)
			mc_buf_adds(&b, "Message:\n");
		if (s->body_fd < 0 || read_body(&b, s->body_fd, json) < 0) {
			fprintf(stderr, "postern: queue show: %s: the message body could not be read\n", s->e.qid);
			rc = -1;
		}
	}
	if (json)
		mc_buf_adds(&b, "}\n");
	if (write_out(&b) < 0)
		rc = -1;
	mc_buf_free(&b);
	return rc;
}

/* ---- summary ---- */

int
qfmt_summary(const struct mc_qctl_dom *d, uint32_t n, uint32_t other, bool json)
{
	struct mc_qctl_dom total;
	memset(&total, 0, sizeof(total));
	snprintf(total.domain, sizeof(total.domain), "TOTAL");
	for (uint32_t i = 0; i < n; i++) {
		total.msgs += d[i].msgs;
		total.bytes += d[i].bytes;
		for (unsigned k = 0; k < MC_QCTL_BUCKETS; k++)
			total.count[k] += d[i].count[k];
	}
	struct mc_buf b;
	mc_buf_init(&b, 0);
	if (json) {
		mc_buf_adds(&b, "{\"bucket_minutes\": [");
		for (unsigned k = 0; k + 1 < MC_QCTL_BUCKETS; k++)
			mc_buf_printf(&b, "%s%u", k ? ", " : "", mc_qctl_bucket_minutes[k]);
		mc_buf_adds(&b, "]");
		jnum(&b, "other_domains", other);
		jkey(&b, "domains", false);
		mc_buf_adds(&b, "[");
		for (uint32_t i = 0; i <= n; i++) {
			const struct mc_qctl_dom *x = i < n ? &d[i] : &total;
			if (i == n) {
				mc_buf_adds(&b, "]");
				jkey(&b, "total", false);
				mc_buf_adds(&b, "{");
			} else {
				mc_buf_adds(&b, i ? ",\n  {" : "\n  {");
			}
			jkey(&b, "domain", true);
			postern_json_str(&b, x->domain);
			jnum(&b, "messages", x->msgs);
			jnum(&b, "bytes", (long long)x->bytes);
			jkey(&b, "ages", false);
			mc_buf_adds(&b, "[");
			for (unsigned k = 0; k < MC_QCTL_BUCKETS; k++)
				mc_buf_printf(&b, "%s%" PRIu32, k ? ", " : "", x->count[k]);
			mc_buf_adds(&b, "]}");
		}
		mc_buf_adds(&b, "}\n");
	} else {
		mc_buf_printf(&b, "%32s %7s %11s", "", "T", "BYTES");
		for (unsigned k = 0; k + 1 < MC_QCTL_BUCKETS; k++)
			mc_buf_printf(&b, " %5u", mc_qctl_bucket_minutes[k]);
		mc_buf_printf(&b, " %5u+\n", mc_qctl_bucket_minutes[MC_QCTL_BUCKETS - 2]);
		for (uint32_t i = 0; i <= n; i++) {
			const struct mc_qctl_dom *x = i == 0 ? &total : &d[i - 1];
			mc_buf_printf(&b, "%32.32s %7" PRIu32 " %11" PRIu64, x->domain, x->msgs, x->bytes);
			for (unsigned k = 0; k < MC_QCTL_BUCKETS; k++)
				mc_buf_printf(&b, " %5" PRIu32, x->count[k]);
			mc_buf_adds(&b, "\n");
		}
		if (other)
			mc_buf_printf(&b, "(%" PRIu32 " less busy domains are added up in \"(other domains)\")\n", other);
		mc_buf_adds(&b, "T: messages by recipient domain (one per domain it waits for); columns: age in minutes\n");
	}
	int rc = write_out(&b);
	mc_buf_free(&b);
	return rc;
}

/* ---- actions ---- */

void
qfmt_act_begin(struct qfmt_act *o, const char *action, bool json)
{
	mc_buf_init(&o->b, 0);
	o->action = action;
	o->json = json;
	if (json) {
		mc_buf_adds(&o->b, "{");
		jkey(&o->b, "action", true);
		postern_json_str(&o->b, action);
		jkey(&o->b, "results", false);
		mc_buf_adds(&o->b, "[");
	}
}

void
qfmt_act_result(struct qfmt_act *o, const char *qid, const char *what)
{
	if (o->json) {
		mc_buf_adds(&o->b, o->b.data[o->b.len - 1] == '[' ? "\n  {" : ",\n  {");
		jkey(&o->b, "id", true);
		postern_json_str(&o->b, qid);
		jstr(&o->b, "result", what);
		mc_buf_adds(&o->b, "}");
	} else {
		mc_buf_printf(&o->b, "%s: %s\n", qid, what);
	}
}

int
qfmt_act_end(struct qfmt_act *o, uint32_t matched, uint32_t changed, uint32_t listed)
{
	if (o->json) {
		mc_buf_adds(&o->b, "]");
		jnum(&o->b, "matched", matched);
		jnum(&o->b, "changed", changed);
		mc_buf_adds(&o->b, "}\n");
	} else {
		if (listed < matched)
			mc_buf_printf(&o->b, "... and %" PRIu32 " more\n", matched - listed);
		mc_buf_printf(&o->b, "%s: %" PRIu32 " of %" PRIu32 " matching message%s\n", o->action, changed, matched,
			      matched == 1 ? "" : "s");
	}
	int rc = write_out(&o->b);
	mc_buf_free(&o->b);
	return rc;
}

void
qfmt_act_abort(struct qfmt_act *o)
{
	mc_buf_free(&o->b);
}

/* ---- watch ---- */

int
qfmt_event(const struct mc_qctl_event *ev, bool json)
{
	struct mc_buf b;
	mc_buf_init(&b, 0);
	if (json) {
		mc_buf_adds(&b, "{");
		jkey(&b, "time", true);
		mc_buf_printf(&b, "%lld.%03d", (long long)(ev->time_ms / 1000), (int)(ev->time_ms % 1000));
		jstr(&b, "id", ev->qid);
		jstr(&b, "event", ev->what);
		jstr(&b, "recipient", ev->rcpt);
		jstr(&b, "detail", ev->detail);
		mc_buf_adds(&b, "}\n");
	} else {
		time_t tt = (time_t)(ev->time_ms / 1000);
		struct tm tm;
		char ts[32];
		gmtime_r(&tt, &tm);
		strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
		mc_buf_printf(&b, "%s.%03d  %-16s  %-10s", ts, (int)(ev->time_ms % 1000), ev->qid[0] ? ev->qid : "-",
			      ev->what);
		if (ev->rcpt[0])
			mc_buf_printf(&b, "  <%s>", ev->rcpt);
		if (ev->detail[0])
			mc_buf_printf(&b, "  %s", ev->detail);
		mc_buf_adds(&b, "\n");
	}
	int rc = write_out(&b);
	mc_buf_free(&b);
	return rc;
}
