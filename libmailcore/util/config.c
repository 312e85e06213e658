/*
 * config.c - the table of every config key, and the loader (see config.h).
 *
 * libinih splits the file into (section, key, value); this file gives each
 * key its type, default and place in struct mc_config. The line number in
 * error messages comes from counting the lines handed to ini_parse_stream.
 */
#include "util/config.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum ktype { K_STR, K_PATH, K_BOOL, K_UINT, K_PORT, K_SIZE, K_DURATION, K_LISTEN, K_LOGLEVEL, K_PLAINAUTH,
	     K_NAMESERVERS, K_FAMILY, K_OUTTLS, K_SEPARATOR, K_PROCS };

struct key {
	const char *section;
	const char *name;
	enum ktype type;
	size_t off;
	size_t size;             /* for strings and paths: the field's size */
	const char *def;         /* default, in the same form as the file */
};

#define F(field) offsetof(struct mc_config, field), sizeof(((struct mc_config *)0)->field)

static const struct key keys[] = {
	{ "global", "hostname", K_STR, F(global.hostname), "" },
	{ "global", "state_dir", K_PATH, F(global.state_dir), "./var" },
	{ "global", "run_dir", K_PATH, F(global.run_dir), "" },
	{ "global", "tls_cert", K_PATH, F(global.tls_cert), "" },
	{ "global", "tls_key", K_PATH, F(global.tls_key), "" },
	{ "global", "log_level", K_LOGLEVEL, F(global.log_level), "info" },
	{ "global", "mail_user", K_STR, F(global.mail_user), "postern-mail" },
	{ "global", "admin_group", K_STR, F(global.admin_group), "postern" },

	{ "smtpd", "listen", K_LISTEN, F(smtpd.listen), "127.0.0.1:2525" },
	{ "smtpd", "submission", K_LISTEN, F(smtpd.submission), "127.0.0.1:2587" },
	{ "smtpd", "submissions", K_LISTEN, F(smtpd.submissions), "127.0.0.1:2465" },
	{ "smtpd", "max_message_size", K_SIZE, F(smtpd.max_message_size), "35M" },
	{ "smtpd", "max_recipients", K_UINT, F(smtpd.max_recipients), "1000" },
	{ "smtpd", "max_errors", K_UINT, F(smtpd.max_errors), "10" },
	{ "smtpd", "max_connections", K_UINT, F(smtpd.max_connections), "1000" },
	{ "smtpd", "timeout", K_DURATION, F(smtpd.timeout), "5m" },
	{ "smtpd", "data_timeout", K_DURATION, F(smtpd.data_timeout), "10m" },
	{ "smtpd", "allow_plaintext_auth", K_PLAINAUTH, F(smtpd.allow_plaintext_auth), "loopback" },
	{ "smtpd", "user", K_STR, F(smtpd.user), "postern-smtpd" },

	{ "queued", "remote_smtp_port", K_PORT, F(queued.remote_smtp_port), "25" },
	{ "queued", "retry_min", K_DURATION, F(queued.retry_min), "5m" },
	{ "queued", "retry_max", K_DURATION, F(queued.retry_max), "1h" },
	{ "queued", "max_queue_lifetime", K_DURATION, F(queued.max_queue_lifetime), "5d" },
	{ "queued", "delay_warning_time", K_DURATION, F(queued.delay_warning_time), "4h" },
	{ "queued", "min_free_space", K_SIZE, F(queued.min_free_space), "64M" },
	{ "queued", "delivery_workers", K_UINT, F(queued.delivery_workers), "8" },
	{ "queued", "user", K_STR, F(queued.user), "postern-queue" },
	{ "queued", "outbound_family", K_FAMILY, F(queued.outbound_family), "any" },
	{ "queued", "outbound_tls", K_OUTTLS, F(queued.outbound_tls), "may" },
	{ "queued", "relayhost", K_STR, F(queued.relayhost), "" },
	{ "queued", "relayhost_user", K_STR, F(queued.relayhost_user), "" },
	{ "queued", "relayhost_password_file", K_PATH, F(queued.relayhost_password_file), "" },
	{ "queued", "connect_timeout", K_DURATION, F(queued.connect_timeout), "30s" },
	{ "queued", "command_timeout", K_DURATION, F(queued.command_timeout), "5m" },
	{ "queued", "data_timeout", K_DURATION, F(queued.data_timeout), "10m" },
	{ "queued", "destination_concurrency", K_UINT, F(queued.destination_concurrency), "20" },
	{ "queued", "destination_rate", K_UINT, F(queued.destination_rate), "0" },
	{ "queued", "connection_cache_size", K_UINT, F(queued.connection_cache_size), "32" },
	{ "queued", "connection_cache_time", K_DURATION, F(queued.connection_cache_time), "10s" },
	{ "queued", "connection_reuse_limit", K_UINT, F(queued.connection_reuse_limit), "100" },

	{ "resolverd", "nameservers", K_NAMESERVERS, F(resolverd.nameservers), "" },
	{ "resolverd", "dns_timeout", K_DURATION, F(resolverd.dns_timeout), "5s" },
	{ "resolverd", "dns_cache_size", K_UINT, F(resolverd.dns_cache_size), "10000" },
	{ "resolverd", "dns_negative_ttl_max", K_DURATION, F(resolverd.dns_negative_ttl_max), "15m" },
	{ "resolverd", "auth_delay_after", K_UINT, F(resolverd.auth_delay_after), "3" },
	{ "resolverd", "auth_block_after", K_UINT, F(resolverd.auth_block_after), "10" },
	{ "resolverd", "auth_block_time", K_DURATION, F(resolverd.auth_block_time), "15m" },
	{ "resolverd", "user", K_STR, F(resolverd.user), "postern-resolver" },

	{ "pop3d", "listen", K_LISTEN, F(pop3d.listen), "127.0.0.1:1110" },
	{ "pop3d", "listen_tls", K_LISTEN, F(pop3d.listen_tls), "127.0.0.1:1995" },
	{ "pop3d", "allow_plaintext_auth", K_PLAINAUTH, F(pop3d.allow_plaintext_auth), "loopback" },
	{ "pop3d", "max_connections", K_UINT, F(pop3d.max_connections), "1000" },
	{ "pop3d", "timeout", K_DURATION, F(pop3d.timeout), "10m" },
	{ "pop3d", "max_bad_commands", K_UINT, F(pop3d.max_bad_commands), "10" },

	{ "imapd", "listen", K_LISTEN, F(imapd.listen), "127.0.0.1:1143" },
	{ "imapd", "listen_tls", K_LISTEN, F(imapd.listen_tls), "127.0.0.1:1993" },
	{ "imapd", "allow_plaintext_auth", K_PLAINAUTH, F(imapd.allow_plaintext_auth), "loopback" },
	{ "imapd", "max_connections", K_UINT, F(imapd.max_connections), "1000" },
	{ "imapd", "timeout", K_DURATION, F(imapd.timeout), "30m" },
	{ "imapd", "hierarchy_separator", K_SEPARATOR, F(imapd.hierarchy_separator), "." },
	{ "imapd", "processes", K_PROCS, F(imapd.processes), "auto" },
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

struct loadctx {
	struct mc_config *cfg;
	const char *file;
	char basedir[MC_PATH_MAX];
	int line;
	char *err;
	size_t errsz;
	int failed;
	unsigned char seen[NKEYS];
};

int
mc_parse_size(const char *s, uint64_t *out)
{
	char *end;
	if (*s == '\0' || *s == '-')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	uint64_t mul = 1;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': mul = 1024ull; end++; break;
	case 'm': case 'M': mul = 1024ull * 1024; end++; break;
	case 'g': case 'G': mul = 1024ull * 1024 * 1024; end++; break;
	default: return -1;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end != '\0' || v > UINT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

int
mc_parse_duration(const char *s, unsigned *seconds)
{
	char *end;
	if (*s == '\0' || *s == '-')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	unsigned long long mul = 1;
	switch (*end) {
	case '\0': break;
	case 's': mul = 1; end++; break;
	case 'm': mul = 60; end++; break;
	case 'h': mul = 3600; end++; break;
	case 'd': mul = 86400; end++; break;
	case 'w': mul = 7 * 86400; end++; break;
	default: return -1;
	}
	if (*end != '\0' || v > UINT_MAX / mul)
		return -1;
	*seconds = (unsigned)(v * mul);
	return 0;
}

int
mc_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

static int
parse_port(const char *s, unsigned *port)
{
	char *end;
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end != '\0' || v == 0 || v > 65535)
		return -1;
	*port = (unsigned)v;
	return 0;
}

int
mc_parse_listen_addr(const char *s, struct mc_listen_addr *out)
{
	char host[64];
	const char *portstr;
	unsigned port;

	memset(out, 0, sizeof(*out));
	if (*s == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':' || (size_t)(close - s - 1) >= sizeof(host))
			return -1;
		memcpy(host, s + 1, (size_t)(close - s - 1));
		host[close - s - 1] = '\0';
		portstr = close + 2;
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
		if (parse_port(portstr, &port) < 0 || inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		out->sslen = sizeof(*sin6);
		snprintf(out->text, sizeof(out->text), "[%s]:%u", host, port);
		return 0;
	}
	const char *colon = strrchr(s, ':');
	if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	portstr = colon + 1;
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
	if (parse_port(portstr, &port) < 0)
		return -1;
	if (strcmp(host, "*") == 0 || host[0] == '\0')
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		return -1;
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	out->sslen = sizeof(*sin);
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
	snprintf(out->text, sizeof(out->text), "%s:%u", ip, port);
	return 0;
}

int
mc_parse_nameservers(const char *s, struct mc_listen_list *out)
{
	char one[128], form[140];
	out->n = 0;
	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		if (*s == '\0')
			break;
		size_t n = strcspn(s, ",");
		while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
		if (n >= sizeof(one) || out->n >= MC_LISTEN_MAX)
			return -1;
		memcpy(one, s, n);
		one[n] = '\0';
		s += n;
		while (*s && *s != ',')
			s++;
		const char *colon = strchr(one, ':');
		/* No port: 53. A bare IPv6 address has two colons or more and no brackets. */
		if (one[0] == '[')
			snprintf(form, sizeof(form), "%s", one);
		else if (colon == NULL)
			snprintf(form, sizeof(form), "%s:53", one);
		else if (strchr(colon + 1, ':') != NULL)
			snprintf(form, sizeof(form), "[%s]:53", one);
		else
			snprintf(form, sizeof(form), "%s", one);
		if (form[0] == '*' || form[0] == ':' || mc_parse_listen_addr(form, &out->a[out->n]) < 0)
			return -1;
		out->n++;
	}
	return 0;
}

int
mc_parse_listen_list(const char *s, struct mc_listen_list *out)
{
	out->n = 0;
	while (*s) {
		s += strspn(s, " \t,");
		size_t n = strcspn(s, " \t,");
		if (n == 0)
			break;
		char one[128];
		if (n >= sizeof(one) || out->n >= MC_LISTEN_MAX)
			return -1;
		memcpy(one, s, n);
		one[n] = '\0';
		if (mc_parse_listen_addr(one, &out->a[out->n]) < 0)
			return -1;
		out->n++;
		s += n;
	}
	return 0;
}

static int
setstr(char *dst, size_t dstsz, const char *v)
{
	size_t n = strlen(v);
	if (n >= dstsz)
		return -1;
	memcpy(dst, v, n + 1);
	return 0;
}

static int
setpath(char *dst, size_t dstsz, const char *basedir, const char *v)
{
	if (v[0] == '\0' || v[0] == '/')
		return setstr(dst, dstsz, v);
	while (v[0] == '.' && v[1] == '/')
		v += 2;
	int n = snprintf(dst, dstsz, "%s/%s", basedir, strcmp(v, ".") == 0 ? "" : v);
	if (n < 0 || (size_t)n >= dstsz)
		return -1;
	/* "dir/" for "." */
	if (n > 1 && dst[n - 1] == '/')
		dst[n - 1] = '\0';
	return 0;
}

/* Store value v into cfg for key k; returns a short reason on failure. */
static const char *
setkey(struct mc_config *cfg, const struct key *k, const char *v, const char *basedir)
{
	char *field = (char *)cfg + k->off;
	uint64_t u64;
	unsigned u;
	bool b;
	int lvl;

	switch (k->type) {
	case K_STR:
		return setstr(field, k->size, v) < 0 ? "value too long" : NULL;
	case K_PATH:
		return setpath(field, k->size, basedir, v) < 0 ? "path too long" : NULL;
	case K_BOOL:
		if (mc_parse_bool(v, &b) < 0)
			return "not a boolean (yes or no)";
		*(bool *)field = b;
		return NULL;
	case K_UINT:
		if (mc_parse_size(v, &u64) < 0 || u64 > UINT_MAX || strpbrk(v, "kKmMgGbB"))
			return "not a number";
		*(unsigned *)field = (unsigned)u64;
		return NULL;
	case K_PORT:
		if (parse_port(v, &u) < 0)
			return "not a port (1-65535)";
		*(unsigned *)field = u;
		return NULL;
	case K_SIZE:
		if (mc_parse_size(v, &u64) < 0)
			return "not a size (such as 512K, 35M, 1G)";
		*(uint64_t *)field = u64;
		return NULL;
	case K_DURATION:
		if (mc_parse_duration(v, &u) < 0)
			return "not a duration (such as 30s, 5m, 1h, 5d)";
		*(unsigned *)field = u;
		return NULL;
	case K_NAMESERVERS: {
		struct mc_listen_list l;
		if (strlen(v) >= k->size || mc_parse_nameservers(v, &l) < 0)
			return "not a list of name servers (such as 127.0.0.1:5353, [::1]:53, 192.0.2.53)";
		snprintf((char *)field, k->size, "%s", v);
		return NULL;
	}
	case K_LISTEN:
		if (mc_parse_listen_list(v, (struct mc_listen_list *)field) < 0)
			return "not a list of addresses (such as 127.0.0.1:25, [::1]:25)";
		return NULL;
	case K_LOGLEVEL:
		if ((lvl = mc_log_level_parse(v)) < 0)
			return "not a log level (debug, info, notice, warning, error)";
		*(int *)field = lvl;
		return NULL;
	case K_PLAINAUTH:
		if (strcasecmp(v, "loopback") == 0)
			*(int *)field = MC_PLAIN_LOOPBACK;
		else if (mc_parse_bool(v, &b) == 0)
			*(int *)field = b ? MC_PLAIN_YES : MC_PLAIN_NO;
		else
			return "not yes, no or loopback";
		return NULL;
	case K_FAMILY:
		if (strcasecmp(v, "any") == 0)
			*(unsigned *)field = 0;
		else if (strcasecmp(v, "ipv4") == 0)
			*(unsigned *)field = 4;
		else if (strcasecmp(v, "ipv6") == 0)
			*(unsigned *)field = 6;
		else
			return "not any, ipv4 or ipv6";
		return NULL;
	case K_OUTTLS:
		if (strcasecmp(v, "none") == 0)
			*(int *)field = MC_OUTTLS_NONE;
		else if (strcasecmp(v, "may") == 0)
			*(int *)field = MC_OUTTLS_MAY;
		else if (strcasecmp(v, "encrypt") == 0)
			*(int *)field = MC_OUTTLS_ENCRYPT;
		else
			return "not none, may or encrypt";
		return NULL;
	case K_PROCS:
		/* auto (0): one per online CPU, decided at start; a bound keeps a typo from forking thousands. */
		if (strcasecmp(v, "auto") == 0) {
			*(unsigned *)field = 0;
			return NULL;
		}
		if (mc_parse_size(v, &u64) < 0 || strpbrk(v, "kKmMgGbB") || u64 < 1 || u64 > MC_CONFIG_PROCESSES_MAX)
			return "not auto or a number of processes (1-" MC_CONFIG_PROCESSES_MAX_STR ")";
		*(unsigned *)field = (unsigned)u64;
		return NULL;
	case K_SEPARATOR:
		if (strcmp(v, ".") != 0 && strcmp(v, "/") != 0)
			return "not . or /";
		*(char *)field = v[0];
		return NULL;
	}
	return "bad key type";
}

static int
handler(void *user, const char *section, const char *name, const char *value)
{
	struct loadctx *lc = user;
	bool section_known = false;

	if (lc->failed)
		return 0;
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].section, section) != 0)
			continue;
		section_known = true;
		if (strcmp(keys[i].name, name) != 0)
			continue;
		if (lc->seen[i]) {
			snprintf(lc->err, lc->errsz, "%s:%d: [%s] %s: set twice", lc->file, lc->line, section, name);
			lc->failed = 1;
			return 0;
		}
		lc->seen[i] = 1;
		const char *why = setkey(lc->cfg, &keys[i], value, lc->basedir);
		if (why) {
			char shown[80];
			mc_log_clean(shown, sizeof(shown), value, strlen(value));
			snprintf(lc->err, lc->errsz, "%s:%d: [%s] %s: %s: '%s'", lc->file, lc->line, section, name, why,
				 shown);
			lc->failed = 1;
			return 0;
		}
		return 1;
	}
	if (!section_known)
		snprintf(lc->err, lc->errsz, "%s:%d: unknown section [%s]", lc->file, lc->line, section);
	else
		snprintf(lc->err, lc->errsz, "%s:%d: [%s] %s: unknown key", lc->file, lc->line, section, name);
	lc->failed = 1;
	return 0;
}

/* ini_parse_stream reads through this, so the handler knows the line number. */
static char *
reader(char *str, int num, void *stream)
{
	struct loadctx *lc = ((void **)stream)[1];
	char *r = fgets(str, num, ((void **)stream)[0]);
	if (r)
		lc->line++;
	return r;
}

/* relayhost: "[host]:port" or "[host]" (no MX lookup), "host:port" or "host" (MX records of host). */
static int
parse_relayhost(struct mc_config *cfg)
{
	const char *s = cfg->queued.relayhost;
	const char *host = s, *hend, *port = NULL;
	cfg->queued.relayhost_name[0] = '\0';
	cfg->queued.relayhost_port = 0;
	cfg->queued.relayhost_mx = true;
	if (*s == '\0')
		return 0;
	if (*s == '[') {
		host = s + 1;
		if (strncasecmp(host, "ipv6:", 5) == 0)
			host += 5;
		hend = strchr(host, ']');
		if (hend == NULL || (hend[1] != '\0' && hend[1] != ':'))
			return -1;
		if (hend[1] == ':')
			port = hend + 2;
		cfg->queued.relayhost_mx = false;
	} else {
		hend = strchr(s, ':');
		if (hend == NULL)
			hend = s + strlen(s);
		else
			port = hend + 1;
	}
	size_t n = (size_t)(hend - host);
	if (n == 0 || n >= sizeof(cfg->queued.relayhost_name))
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = host[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
			  c == '-' || (c == ':' && !cfg->queued.relayhost_mx);
		if (!ok)
			return -1;
	}
	memcpy(cfg->queued.relayhost_name, host, n);
	cfg->queued.relayhost_name[n] = '\0';
	if (port && parse_port(port, &cfg->queued.relayhost_port) < 0)
		return -1;
	return 0;
}

static int
finish(struct mc_config *cfg, const char *basedir, char *err, size_t errsz)
{
	if (cfg->global.hostname[0] == '\0') {
		if (gethostname(cfg->global.hostname, sizeof(cfg->global.hostname) - 1) < 0 ||
		    cfg->global.hostname[0] == '\0')
			snprintf(cfg->global.hostname, sizeof(cfg->global.hostname), "localhost");
	}
	if (cfg->global.run_dir[0] == '\0' &&
	    (size_t)snprintf(cfg->global.run_dir, sizeof(cfg->global.run_dir), "%s/run", cfg->global.state_dir) >=
		    sizeof(cfg->global.run_dir)) {
		snprintf(err, errsz, "run_dir: path too long");
		return -1;
	}
	if ((cfg->global.tls_cert[0] == '\0') != (cfg->global.tls_key[0] == '\0')) {
		snprintf(err, errsz, "%s: [global] tls_cert and tls_key must be set together",
			 cfg->path[0] ? cfg->path : "(default)");
		return -1;
	}
	if (cfg->global.tls_cert[0] == '\0') {
		cfg->global.tls_self_signed = true;
		mc_config_path(cfg, cfg->global.tls_cert, sizeof(cfg->global.tls_cert), "tls/selfsigned.crt");
		mc_config_path(cfg, cfg->global.tls_key, sizeof(cfg->global.tls_key), "tls/selfsigned.key");
	}
	if (cfg->queued.retry_min == 0 || cfg->queued.retry_max < cfg->queued.retry_min) {
		snprintf(err, errsz, "%s: [queued] retry_max must be at least retry_min, and retry_min above 0",
			 cfg->path[0] ? cfg->path : "(default)");
		return -1;
	}
	if (cfg->queued.delivery_workers == 0)
		cfg->queued.delivery_workers = 1;
	if (parse_relayhost(cfg) < 0) {
		snprintf(err, errsz, "%s: [queued] relayhost: not [host]:port, host:port or host: '%.200s'",
			 cfg->path[0] ? cfg->path : "(default)", cfg->queued.relayhost);
		return -1;
	}
	if (cfg->queued.destination_concurrency == 0)
		cfg->queued.destination_concurrency = 1;
	(void)basedir;
	return 0;
}

static int
apply_defaults(struct mc_config *cfg, const char *basedir, char *err, size_t errsz)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const char *why = setkey(cfg, &keys[i], keys[i].def, basedir);
		if (why)
			mc_panic("built-in default of [%s] %s: %s", keys[i].section, keys[i].name, why);
	}
	(void)err;
	(void)errsz;
	return 0;
}

int
mc_config_defaults(struct mc_config *cfg, char *err, size_t errsz)
{
	char cwd[MC_PATH_MAX];
	memset(cfg, 0, sizeof(*cfg));
	if (getcwd(cwd, sizeof(cwd)) == NULL) {
		snprintf(err, errsz, "cannot determine the working directory: %s", strerror(errno));
		return -1;
	}
	apply_defaults(cfg, cwd, err, errsz);
	return finish(cfg, cwd, err, errsz);
}

int
mc_config_load(struct mc_config *cfg, const char *path, char *err, size_t errsz)
{
	if (path == NULL || path[0] == '\0')
		return mc_config_defaults(cfg, err, errsz);

	struct loadctx *lc = calloc(1, sizeof(*lc));
	if (lc == NULL)
		mc_panic("out of memory");
	memset(cfg, 0, sizeof(*cfg));
	lc->cfg = cfg;
	lc->file = path;
	lc->err = err;
	lc->errsz = errsz;

	char abs[MC_PATH_MAX];
	if (realpath(path, abs) == NULL) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		free(lc);
		return -1;
	}
	setstr(cfg->path, sizeof(cfg->path), abs);
	setstr(lc->basedir, sizeof(lc->basedir), abs);
	char *slash = strrchr(lc->basedir, '/');
	if (slash == lc->basedir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	apply_defaults(cfg, lc->basedir, err, errsz);

	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		free(lc);
		return -1;
	}
	void *stream[2] = { f, lc };
	int r = ini_parse_stream(reader, stream, handler, lc);
	fclose(f);
	if (lc->failed) {
		free(lc);
		return -1;
	}
	if (r != 0) {
		snprintf(err, errsz, "%s:%d: syntax error (expected [section] or key = value)", path, r > 0 ? r : lc->line);
		free(lc);
		return -1;
	}
	r = finish(cfg, lc->basedir, err, errsz);
	free(lc);
	return r;
}

void
mc_config_path(const struct mc_config *cfg, char *out, size_t outsz, const char *rel)
{
	if ((size_t)snprintf(out, outsz, "%s/%s", cfg->global.state_dir, rel) >= outsz)
		mc_panic("path under state_dir too long: %s", rel);
}

void
mc_config_sock(const struct mc_config *cfg, char *out, size_t outsz, const char *name)
{
	if ((size_t)snprintf(out, outsz, "%s/%s", cfg->global.run_dir, name) >= outsz)
		mc_panic("socket path under run_dir too long: %s", name);
}
