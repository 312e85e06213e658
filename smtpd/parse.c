/*
 * parse.c - command lines and ESMTP parameters (see parse.h).
 *
 * Called by smtpd/commands.c for every line a client sends, and by the
 * fuzz target. Each parameter of MAIL and RCPT is a row in a table
 * (keyword, which command, whether it takes a value, its handler); an
 * unknown keyword is 555, a repeated one 501 (RFC 5321 §4.1.1.11 leaves
 * duplicates undefined; accepting the last one would let a client hide a
 * SIZE behind another).
 *
 * Never reads past the NUL of a line, never writes past a field.
 */
#include "smtpd/parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/log.h"

#define MAX_PARAMS 16

int
smtpd_parse_cmd(char *line, size_t len, struct smtpd_cmdline *out)
{
	size_t i = 0, v = 0;

	out->verb[0] = '\0';
	out->args = "";
	if (memchr(line, '\0', len) != NULL)
		return -1;
	line[len] = '\0';
	/* Trailing blanks (and a stray CR) are not part of the arguments. */
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
		line[--len] = '\0';
	while (i < len && isalpha((unsigned char)line[i])) {
		if (v < sizeof(out->verb) - 1)
			out->verb[v++] = (char)toupper((unsigned char)line[i]);
		i++;
	}
	if (i < len && line[i] != ' ' && line[i] != '\t')
		v = 0;             /* "MAIL:" or "HELO\x01": not a verb we know */
	if (i >= sizeof(out->verb))
		v = 0;
	out->verb[v] = '\0';
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	out->args = line + i;
	return 0;
}

bool
smtpd_xtext_ok(const char *s, size_t n, bool utf8)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '+') {
			/* "+XX": two upper-case hex digits. */
			if (n - i < 3)
				return false;
			for (size_t k = 1; k <= 2; k++)
				if (!isdigit(p[i + k]) && !(p[i + k] >= 'A' && p[i + k] <= 'F'))
					return false;
			i += 2;
		} else if (p[i] >= 0x80) {
			if (!utf8)
				return false;
		} else if (p[i] < 33 || p[i] > 126 || p[i] == '=') {
			return false;
		}
	}
	return true;
}

/* Parse decimal digits of s[0..n) into *v; overflow saturates to UINT64_MAX. -1 if not all digits. */
static int
parse_u64(const char *s, size_t n, uint64_t *v)
{
	uint64_t r = 0;
	bool over = false;
	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (r > (UINT64_MAX - d) / 10)
			over = true;
		else
			r = r * 10 + d;
	}
	*v = over ? UINT64_MAX : r;
	return 0;
}

static bool
eqi(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

/* What a parameter handler sees. */
struct pctx {
	struct smtpd_mail *m;
	struct smtpd_rcpt *r;
	bool utf8;               /* SMTPUTF8 applies to values */
};

typedef int (*param_fn)(struct pctx *x, const char *v, size_t n);

static int
p_size(struct pctx *x, const char *v, size_t n)
{
	if (parse_u64(v, n, &x->m->size) < 0)
		return -1;
	x->m->size_given = true;
	return 0;
}

static int
p_body(struct pctx *x, const char *v, size_t n)
{
	if (eqi(v, n, "7BIT"))
		x->m->body = SMTPD_BODY_7BIT;
	else if (eqi(v, n, "8BITMIME"))
		x->m->body = SMTPD_BODY_8BITMIME;
	else if (eqi(v, n, "BINARYMIME"))
		x->m->body = SMTPD_BODY_BINARYMIME;
	else
		return -1;
	return 0;
}

static int
p_smtputf8(struct pctx *x, const char *v, size_t n)
{
	x->m->smtputf8 = true;
	return 0;
}

static int
p_ret(struct pctx *x, const char *v, size_t n)
{
	if (eqi(v, n, "FULL"))
		x->m->ret = MC_ENV_RET_FULL;
	else if (eqi(v, n, "HDRS"))
		x->m->ret = MC_ENV_RET_HDRS;
	else
		return -1;
	return 0;
}

static int
p_envid(struct pctx *x, const char *v, size_t n)
{
	if (n > SMTPD_ENVID_MAX || !smtpd_xtext_ok(v, n, false))
		return -1;
	memcpy(x->m->envid, v, n);
	x->m->envid[n] = '\0';
	return 0;
}

static int
p_auth(struct pctx *x, const char *v, size_t n)
{
	if (n >= sizeof(x->m->auth) || !(eqi(v, n, "<>") || smtpd_xtext_ok(v, n, x->utf8)))
		return -1;
	memcpy(x->m->auth, v, n);
	x->m->auth[n] = '\0';
	return 0;
}

static int
p_notify(struct pctx *x, const char *v, size_t n)
{
	uint32_t bits = 0;
	size_t i = 0;
	while (i < n) {
		size_t k = i;
		while (k < n && v[k] != ',')
			k++;
		if (eqi(v + i, k - i, "NEVER"))
			bits |= MC_NOTIFY_NEVER;
		else if (eqi(v + i, k - i, "SUCCESS"))
			bits |= MC_NOTIFY_SUCCESS;
		else if (eqi(v + i, k - i, "FAILURE"))
			bits |= MC_NOTIFY_FAILURE;
		else if (eqi(v + i, k - i, "DELAY"))
			bits |= MC_NOTIFY_DELAY;
		else
			return -1;
		i = k + 1;
		if (k + 1 == n)
			return -1;   /* a trailing comma */
	}
	/* NEVER stands alone (RFC 3461 §4.1). */
	if (bits == 0 || ((bits & MC_NOTIFY_NEVER) && bits != MC_NOTIFY_NEVER))
		return -1;
	x->r->notify = bits;
	return 0;
}

static int
p_orcpt(struct pctx *x, const char *v, size_t n)
{
	const char *semi = memchr(v, ';', n);
	if (semi == NULL || semi == v || n >= sizeof(x->r->orcpt))
		return -1;
	for (const char *p = v; p < semi; p++)
		if (!isalnum((unsigned char)*p) && *p != '-')
			return -1;
	size_t rest = n - (size_t)(semi + 1 - v);
	if (rest == 0 || !smtpd_xtext_ok(semi + 1, rest, x->utf8))
		return -1;
	memcpy(x->r->orcpt, v, n);
	x->r->orcpt[n] = '\0';
	return 0;
}

enum { P_MAIL = 1, P_RCPT = 2 };

static const struct param {
	const char *name;
	unsigned cmd;            /* P_MAIL or P_RCPT */
	bool value;              /* takes "=value" */
	param_fn fn;
} params[] = {
	{ "SIZE", P_MAIL, true, p_size },
	{ "BODY", P_MAIL, true, p_body },
	{ "SMTPUTF8", P_MAIL, false, p_smtputf8 },
	{ "RET", P_MAIL, true, p_ret },
	{ "ENVID", P_MAIL, true, p_envid },
	{ "AUTH", P_MAIL, true, p_auth },
	{ "NOTIFY", P_RCPT, true, p_notify },
	{ "ORCPT", P_RCPT, true, p_orcpt },
};
#define NPARAMS (sizeof(params) / sizeof(params[0]))

/* "prefix: WORD" with the client's word made printable. */
static void
set_reply(char *reply, size_t replysz, const char *prefix, const char *word, size_t wn)
{
	char clean[64];
	mc_log_clean(clean, sizeof(clean), word, wn);
	snprintf(reply, replysz, "%s: %s", prefix, clean);
}

/*
 * Read " KEY[=VALUE]" parameters from s to the end. Keyword syntax per
 * RFC 5321 §4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-");
 * esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 under SMTPUTF8.
 */
static int
parse_params(const char *s, unsigned cmd, struct pctx *x, bool utf8_values, char *reply, size_t replysz)
{
	bool seen[NPARAMS] = { false };

	for (;;) {
		if (*s == '\0')
			return 0;
		if (*s != ' ') {
			snprintf(reply, replysz, "501 5.5.4 Syntax error in parameters");
			return -1;
		}
		while (*s == ' ')
			s++;
		if (*s == '\0')
			return 0;
		const char *key = s;
		while (isalnum((unsigned char)*s) || (s > key && *s == '-'))
			s++;
		size_t kn = (size_t)(s - key);
		const char *val = NULL;
		size_t vn = 0;
		if (*s == '=') {
			val = ++s;
			while (*s != '\0' && *s != ' ') {
				unsigned char c = (unsigned char)*s;
				if (c == '=' || c < 33 || (c > 126 && !utf8_values))
					break;
				s++;
			}
			vn = (size_t)(s - val);
		}
		if (kn == 0 || (*s != ' ' && *s != '\0') || (val != NULL && vn == 0)) {
			snprintf(reply, replysz, "501 5.5.4 Syntax error in parameters");
			return -1;
		}
		size_t i;
		for (i = 0; i < NPARAMS; i++)
			if ((params[i].cmd & cmd) && eqi(key, kn, params[i].name))
				break;
		if (i == NPARAMS) {
			set_reply(reply, replysz, "555 5.5.4 Unsupported option", key, kn);
			return -1;
		}
		if (seen[i]) {
			set_reply(reply, replysz, "501 5.5.4 Duplicate parameter", key, kn);
			return -1;
		}
		seen[i] = true;
		if (params[i].value != (val != NULL) || params[i].fn(x, val ? val : "", vn) < 0) {
			set_reply(reply, replysz, "501 5.5.4 Bad parameter value", key, kn);
			return -1;
		}
	}
}

/* Skip "FROM:" or "TO:" (case-insensitive) and the blanks some clients put after it. */
static const char *
skip_prefix(const char *args, const char *prefix)
{
	size_t n = strlen(prefix);
	if (strncasecmp(args, prefix, n) != 0)
		return NULL;
	args += n;
	while (*args == ' ')
		args++;
	return args;
}

/* Does any byte of s need SMTPUTF8? */
static bool
has_8bit(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

int
smtpd_parse_mail(const char *args, struct smtpd_mail *m, char *reply, size_t replysz)
{
	const char *rest;
	struct pctx x = { .m = m };

	memset(m, 0, sizeof(*m));
	const char *p = skip_prefix(args, "FROM:");
	if (p == NULL) {
		snprintf(reply, replysz, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return -1;
	}
	int err = mc_addr_parse_path(p, true, true, &m->addr, &rest);
	if (err != MC_ADDR_OK) {
		snprintf(reply, replysz, "501 5.1.7 Bad sender address syntax");
		return -1;
	}
	/* SMTPUTF8 comes after the address, so look for it before judging the values. */
	bool utf8 = false;
	for (const char *q = rest; (q = strcasestr(q, "SMTPUTF8")) != NULL; q += 8)
		if ((q[-1] == ' ') && (q[8] == ' ' || q[8] == '\0'))
			utf8 = true;
	x.utf8 = utf8;
	if (parse_params(rest, P_MAIL, &x, utf8, reply, replysz) < 0)
		return -1;
	if (!m->smtputf8 && (m->addr.utf8 || has_8bit(rest))) {
		snprintf(reply, replysz, "553 5.6.7 Must declare SMTPUTF8 to send a UTF-8 address");
		return -1;
	}
	return 0;
}

int
smtpd_parse_rcpt(const char *args, bool smtputf8, struct smtpd_rcpt *r, char *reply, size_t replysz)
{
	const char *rest;
	struct pctx x = { .r = r, .utf8 = smtputf8 };

	memset(r, 0, sizeof(*r));
	const char *p = skip_prefix(args, "TO:");
	if (p == NULL) {
		snprintf(reply, replysz, "501 5.5.4 Syntax: RCPT TO:<address>");
		return -1;
	}
	if (strncasecmp(p, "<postmaster>", 12) == 0) {
		r->postmaster = true;
		snprintf(r->addr.local, sizeof(r->addr.local), "postmaster");
		rest = p + 12;
	} else {
		int err = mc_addr_parse_path(p, false, smtputf8, &r->addr, &rest);
		if (err == MC_ADDR_NEED_UTF8) {
			snprintf(reply, replysz, "553 5.6.7 Must declare SMTPUTF8 to send a UTF-8 address");
			return -1;
		}
		if (err != MC_ADDR_OK) {
			snprintf(reply, replysz, "501 5.1.3 Bad recipient address syntax");
			return -1;
		}
	}
	return parse_params(rest, P_RCPT, &x, smtputf8, reply, replysz);
}

int
smtpd_parse_bdat(const char *args, uint64_t *size, bool *last)
{
	const char *p = args;
	while (isdigit((unsigned char)*p))
		p++;
	size_t n = (size_t)(p - args);
	/* 20 digits fit every uint64_t; a longer count is not one we will read. */
	if (n == 0 || n > 20 || parse_u64(args, n, size) < 0 || *size == UINT64_MAX)
		return -1;
	while (*p == ' ')
		p++;
	*last = false;
	if (*p == '\0')
		return 0;
	if (strcasecmp(p, "LAST") != 0)
		return -1;
	*last = true;
	return 0;
}
