/*
 * dsn.c - delivery status notifications (RFC 3464), see dsn.h.
 *
 * Called by queued's bounce.c (on a worker thread: it touches only what it
 * is given) and by tests. Owns nothing past a call: the output goes
 * through a small fixed buffer to the caller's writer, the original
 * message is read in fixed chunks with pread. Never trusts the original:
 * header lines are copied with their line ends made CRLF and cut at the
 * bounds; texts that came from outside lose their control characters
 * before they reach a header field.
 */
#include "mail/dsn.h"
#include "util/hex.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define OUT_BUF 4096
#define IN_CHUNK 8192
#define FOLD_AT 76
#define TEXT_MAX 900             /* one cleaned field value: lines stay within 998 octets */

struct out {
	mc_dsn_writer w;
	void *arg;
	char buf[OUT_BUF];
	size_t len;
	int err;
};

static void
flush(struct out *o)
{
	if (o->err == 0 && o->len && o->w(o->arg, o->buf, o->len) < 0)
		o->err = -1;
	o->len = 0;
}

static void
put(struct out *o, const void *p, size_t n)
{
	const char *s = p;
	while (n && o->err == 0) {
		size_t room = OUT_BUF - o->len;
		size_t k = n < room ? n : room;
		memcpy(o->buf + o->len, s, k);
		o->len += k;
		s += k;
		n -= k;
		if (o->len == OUT_BUF)
			flush(o);
	}
}

static void
puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void __attribute__((format(printf, 2, 3)))
putf(struct out *o, const char *fmt, ...)
{
	char line[TEXT_MAX * 2];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	put(o, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* Copy in, control characters made '?', at most outsz - 1 bytes. */
static char *
clean(char *out, size_t outsz, const char *in)
{
	size_t o = 0;
	for (; in && *in && o + 1 < outsz; in++) {
		unsigned char c = (unsigned char)*in;
		out[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	out[o] = '\0';
	return out;
}

/* "Name: value" CRLF, folded at spaces so lines stay near FOLD_AT columns. */
static void
field(struct out *o, const char *name, const char *value)
{
	char v[TEXT_MAX];
	clean(v, sizeof(v), value);
	size_t col = strlen(name) + 2;
	puts_(o, name);
	puts_(o, ": ");
	const char *p = v;
	while (*p) {
		const char *sp = strchr(p + 1, ' ');
		size_t word = sp ? (size_t)(sp - p) : strlen(p);
		if (col + word > FOLD_AT && p != v && *p == ' ') {
			puts_(o, "\r\n\t");
			p++;
			word--;
			col = 8;
		}
		put(o, p, word);
		col += word;
		p += word;
	}
	puts_(o, "\r\n");
}

char *
mc_dsn_date(char *out, size_t outsz, int64_t t)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;
	if (gmtime_r(&tt, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	snprintf(out, outsz, "%s, %d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7], tm.tm_mday,
		 months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return out;
}

char *
mc_dsn_xtext_decode(char *out, size_t outsz, const char *in)
{
	size_t o = 0;
	for (; in && *in && o + 1 < outsz; in++) {
		unsigned char c = (unsigned char)*in;
		if (c == '+' && mc_hex_val((unsigned char)in[1]) >= 0 && mc_hex_val((unsigned char)in[2]) >= 0) {
			c = (unsigned char)(mc_hex_val((unsigned char)in[1]) * 16 + mc_hex_val((unsigned char)in[2]));
			in += 2;
		}
		out[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (outsz)
		out[o] = '\0';
	return out;
}

/* digit "." 1*3digit "." 1*3digit, class 2, 4 or 5 (RFC 3463) */
static size_t
status_len(const char *s)
{
	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return 0;
	size_t i = 2;
	for (int part = 0; part < 2; part++) {
		size_t d = 0;
		while (s[i] >= '0' && s[i] <= '9' && d < 4) {
			i++;
			d++;
		}
		if (d == 0 || d > 3)
			return 0;
		if (part == 0) {
			if (s[i] != '.')
				return 0;
			i++;
		}
	}
	return i;
}

bool
mc_dsn_status_of(const char *text, char *out, size_t outsz)
{
	size_t n = status_len(text);
	if (n == 0 || (text[n] != '\0' && text[n] != ' ') || n >= outsz)
		return false;
	memcpy(out, text, n);
	out[n] = '\0';
	return true;
}

static const char *
action_name(enum mc_dsn_action a)
{
	switch (a) {
	case MC_DSN_DELAYED:
		return "delayed";
	case MC_DSN_DELIVERED:
		return "delivered";
	case MC_DSN_RELAYED:
		return "relayed";
	case MC_DSN_FAILED:
	default:
		return "failed";
	}
}

static bool
has_action(const struct mc_dsn *d, enum mc_dsn_action a)
{
	for (size_t i = 0; i < d->nrcpt; i++)
		if (d->rcpt[i].action == a)
			return true;
	return false;
}

const char *
mc_dsn_subject(const struct mc_dsn *d)
{
	if (has_action(d, MC_DSN_FAILED))
		return "Undelivered Mail Returned to Sender";
	if (has_action(d, MC_DSN_DELAYED))
		return "Delayed Mail (still being retried)";
	return "Successful Mail Delivery Report";
}

static const char *
status_for(const struct mc_dsn_rcpt *r)
{
	size_t n = status_len(r->status);
	if (n && r->status[n] == '\0')
		return r->status;
	switch (r->action) {
	case MC_DSN_DELAYED:
		return "4.0.0";
	case MC_DSN_DELIVERED:
	case MC_DSN_RELAYED:
		return "2.0.0";
	case MC_DSN_FAILED:
	default:
		return "5.0.0";
	}
}

/* ---- part 1: the human-readable notice ---- */

static void
human_list(struct out *o, const struct mc_dsn *d, enum mc_dsn_action a)
{
	char addr[TEXT_MAX], why[TEXT_MAX];
	for (size_t i = 0; i < d->nrcpt; i++) {
		const struct mc_dsn_rcpt *r = &d->rcpt[i];
		if (r->action != a)
			continue;
		clean(addr, sizeof(addr), r->final);
		if (r->reason && r->reason[0])
			putf(o, "<%s>: %s\r\n\r\n", addr, clean(why, sizeof(why), r->reason));
		else
			putf(o, "<%s>: %s\r\n\r\n", addr, a == MC_DSN_DELIVERED ? "delivery successful" : "no reason given");
	}
}

static void
human(struct out *o, const struct mc_dsn *d, const char *host)
{
	char date[64];
	putf(o, "This is the mail system at host %s.\r\n\r\n", host);
	if (has_action(d, MC_DSN_FAILED)) {
		puts_(o, "I'm sorry to have to tell you that your message could not be\r\n"
			 "delivered to one or more recipients. The reasons are below;\r\n"
			 "the returned message is attached.\r\n\r\n");
		putf(o, "For further assistance, please send mail to postmaster@%s.\r\n"
			"If you do so, please include this problem report.\r\n\r\n", host);
		puts_(o, "                   The mail system\r\n\r\n");
		human_list(o, d, MC_DSN_FAILED);
	}
	if (has_action(d, MC_DSN_DELAYED)) {
		puts_(o, "####################################################################\r\n"
			 "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n"
			 "####################################################################\r\n\r\n");
		int64_t waited = d->now - d->arrival;
		if (waited < 0)
			waited = 0;
		putf(o, "Your message could not be delivered for %lld minute%s.\r\n", (long long)(waited / 60),
		     waited / 60 == 1 ? "" : "s");
		int64_t until = 0;
		for (size_t i = 0; i < d->nrcpt; i++)
			if (d->rcpt[i].action == MC_DSN_DELAYED && d->rcpt[i].retry_until > until)
				until = d->rcpt[i].retry_until;
		if (until)
			putf(o, "It will be retried until %s.\r\n", mc_dsn_date(date, sizeof(date), until));
		puts_(o, "\r\n                   The mail system\r\n\r\n");
		human_list(o, d, MC_DSN_DELAYED);
	}
	if (has_action(d, MC_DSN_DELIVERED) || has_action(d, MC_DSN_RELAYED)) {
		puts_(o, "Your message was successfully delivered to the destination(s)\r\n"
			 "listed below. If the message was delivered to a mailbox you will\r\n"
			 "receive no further notifications. Otherwise you may still receive\r\n"
			 "notifications of mail delivery errors from other systems.\r\n\r\n"
			 "                   The mail system\r\n\r\n");
		human_list(o, d, MC_DSN_DELIVERED);
		human_list(o, d, MC_DSN_RELAYED);
	}
}

/* ---- part 2: message/delivery-status ---- */

static void
status_part(struct out *o, const struct mc_dsn *d, const char *host)
{
	char v[TEXT_MAX + 64], t[TEXT_MAX], date[64];
	snprintf(v, sizeof(v), "dns; %s", host);
	field(o, "Reporting-MTA", v);
	if (d->qid && d->qid[0])
		field(o, "X-Postern-Queue-ID", d->qid);
	if (d->envid && d->envid[0])
		field(o, "Original-Envelope-Id", mc_dsn_xtext_decode(t, sizeof(t), d->envid));
	if (d->arrival)
		field(o, "Arrival-Date", mc_dsn_date(date, sizeof(date), d->arrival));
	for (size_t i = 0; i < d->nrcpt; i++) {
		const struct mc_dsn_rcpt *r = &d->rcpt[i];
		puts_(o, "\r\n");
		snprintf(v, sizeof(v), "rfc822; %s", clean(t, sizeof(t), r->final));
		field(o, "Final-Recipient", v);
		if (r->orcpt && r->orcpt[0] && strchr(r->orcpt, ';'))
			field(o, "Original-Recipient", mc_dsn_xtext_decode(t, sizeof(t), r->orcpt));
		field(o, "Action", action_name(r->action));
		field(o, "Status", status_for(r));
		if (r->remote_mta && r->remote_mta[0]) {
			snprintf(v, sizeof(v), "dns; %s", clean(t, sizeof(t), r->remote_mta));
			field(o, "Remote-MTA", v);
		}
		const char *diag = r->diag && r->diag[0] ? r->diag : r->reason;
		if (diag && diag[0] && r->action != MC_DSN_DELIVERED) {
			const char *type = r->diag && r->diag[0] && r->diag_type ? r->diag_type : "X-Postern";
			snprintf(v, sizeof(v), "%s; %s", type, clean(t, sizeof(t), diag));
			field(o, "Diagnostic-Code", v);
		}
		if (r->last_attempt)
			field(o, "Last-Attempt-Date", mc_dsn_date(date, sizeof(date), r->last_attempt));
		if (r->action == MC_DSN_DELAYED && r->retry_until)
			field(o, "Will-Retry-Until", mc_dsn_date(date, sizeof(date), r->retry_until));
	}
}

/* ---- part 3: the original ---- */

/*
 * Copy the original from fd: its header block only (headers_only), or all
 * of it; at most max bytes, cut at a line end. Line ends become CRLF.
 */
static int
copy_original(struct out *o, int fd, uint64_t size, bool headers_only, uint64_t max)
{
	char chunk[IN_CHUNK];
	uint64_t off = 0, written = 0;
	char line[1000];             /* a line is kept whole or cut: RFC 5322's 998 octets */
	size_t ll = 0;
	bool done = false;
	while (!done && off < size) {
		size_t want = size - off < sizeof(chunk) ? (size_t)(size - off) : sizeof(chunk);
		ssize_t n = pread(fd, chunk, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (uint64_t)n;
		for (ssize_t i = 0; i < n && !done; i++) {
			char c = chunk[i];
			if (c == '\n') {
				if (ll && line[ll - 1] == '\r')
					ll--;
				/* a bare CR inside a line would end it for some readers: never pass one on */
				for (size_t k = 0; k < ll; k++)
					if (line[k] == '\r')
						line[k] = ' ';
				if (headers_only && ll == 0) {
					done = true;    /* the empty line: the header block ends */
					break;
				}
				if (written + ll + 2 > max) {
					done = true;
					break;
				}
				put(o, line, ll);
				put(o, "\r\n", 2);
				written += ll + 2;
				ll = 0;
				continue;
			}
			if (ll < sizeof(line) - 1)
				line[ll++] = c;
		}
	}
	if (!done && ll && written + ll + 2 <= max) {
		/* a last line without a line end */
		for (size_t k = 0; k < ll; k++)
			if (line[k] == '\r')
				line[k] = ' ';
		put(o, line, ll);
		put(o, "\r\n", 2);
	}
	return 0;
}

int
mc_dsn_write(const struct mc_dsn *d, int in_fd, uint64_t in_size, mc_dsn_writer w, void *warg)
{
	if (d == NULL || d->nrcpt == 0 || w == NULL)
		return -1;
	struct out o = { .w = w, .arg = warg };
	char host[256], to[TEXT_MAX], date[64], boundary[400], v[TEXT_MAX + 64];
	clean(host, sizeof(host), d->reporting_mta && d->reporting_mta[0] ? d->reporting_mta : "localhost");
	clean(to, sizeof(to), d->sender ? d->sender : "");
	snprintf(boundary, sizeof(boundary), "%s/%s", d->report_id && d->report_id[0] ? d->report_id : "report", host);

	field(&o, "Date", mc_dsn_date(date, sizeof(date), d->now));
	snprintf(v, sizeof(v), "MAILER-DAEMON@%s (Mail Delivery System)", host);
	field(&o, "From", v);
	field(&o, "Subject", mc_dsn_subject(d));
	snprintf(v, sizeof(v), "<%s>", to);
	field(&o, "To", v);
	field(&o, "Auto-Submitted", "auto-replied");
	snprintf(v, sizeof(v), "<%s@%s>", d->report_id && d->report_id[0] ? d->report_id : "report", host);
	field(&o, "Message-ID", v);
	field(&o, "MIME-Version", "1.0");
	putf(&o, "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n", boundary);
	field(&o, "Content-Transfer-Encoding", "8bit");
	puts_(&o, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

	putf(&o, "--%s\r\n", boundary);
	puts_(&o, "Content-Description: Notification\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
	human(&o, d, host);

	putf(&o, "--%s\r\n", boundary);
	puts_(&o, "Content-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n");
	status_part(&o, d, host);

	int rc = 0;
	if (in_fd >= 0) {
		bool full = d->ret_full && in_size <= d->max_full;
		putf(&o, "\r\n--%s\r\n", boundary);
		if (full)
			puts_(&o, "Content-Description: Undelivered Message\r\nContent-Type: message/rfc822\r\n"
				  "Content-Transfer-Encoding: 8bit\r\n\r\n");
		else
			puts_(&o, "Content-Description: Undelivered Message Headers\r\n"
				  "Content-Type: text/rfc822-headers\r\n\r\n");
		rc = copy_original(&o, in_fd, in_size, !full, full ? d->max_full : d->max_headers);
	}
	putf(&o, "\r\n--%s--\r\n", boundary);
	flush(&o);
	return rc < 0 || o.err ? -1 : 0;
}
