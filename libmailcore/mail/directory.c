/*
 * directory.c - domains, users and aliases in SQLite (see directory.h).
 *
 * Called by resolverd (lookups, on its event loop: short indexed reads,
 * never a write) and by the postern tool (changes and listings). Owns the
 * database handle and its prepared lookup statements. It never reads a
 * password: it stores and returns crypt(3) strings made by util/passwd.c.
 * It never creates or removes a mailbox on disk: mc_dir_mailbox_path only
 * says where one is.
 */
#include "mail/directory.h"
#include "mail/addr.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCHEMA_VERSION 1

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS domains ("
	"  name TEXT PRIMARY KEY,"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS users ("
	"  address TEXT PRIMARY KEY,"
	"  domain TEXT NOT NULL,"
	"  password TEXT NOT NULL,"
	"  quota INTEGER NOT NULL DEFAULT 0,"
	"  created INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS users_domain ON users(domain, address);"
	"CREATE TABLE IF NOT EXISTS aliases ("
	"  source TEXT NOT NULL,"
	"  target TEXT NOT NULL,"
	"  domain TEXT NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  PRIMARY KEY (source, target));"
	"CREATE INDEX IF NOT EXISTS aliases_domain ON aliases(domain, source);"
	"PRAGMA user_version = 1;";

/* The lookups resolverd makes for every message, prepared once. */
enum sid {
	S_DOMAIN_EXISTS,
	S_USER_GET,
	S_ALIAS_EXISTS,
	S_ALIAS_TARGETS,
	S_FIRST_USER_OF_DOMAIN,
	S_FIRST_USER,
	S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
	[S_DOMAIN_EXISTS] = "SELECT 1 FROM domains WHERE name = ?1",
	[S_USER_GET] = "SELECT address, password, quota, created FROM users WHERE address = ?1",
	[S_ALIAS_EXISTS] = "SELECT 1 FROM aliases WHERE source = ?1 LIMIT 1",
	[S_ALIAS_TARGETS] = "SELECT target FROM aliases WHERE source = ?1 ORDER BY target",
	[S_FIRST_USER_OF_DOMAIN] = "SELECT address FROM users WHERE domain = ?1 ORDER BY address LIMIT 1",
	[S_FIRST_USER] = "SELECT address FROM users ORDER BY address LIMIT 1",
};

struct mc_dir {
	sqlite3 *db;
	sqlite3_stmt *stmt[S_COUNT];
	char state_dir[MC_PATH_MAX];
	char errmsg[256];
};

/* Local-part character classes (see local_ok). */
enum { L_PLUS = 1, L_SLASH = 2 };

static void
lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static void
set_dberr(struct mc_dir *dir, char *err, size_t errsz)
{
	snprintf(dir->errmsg, sizeof(dir->errmsg), "%s", sqlite3_errmsg(dir->db));
	if (err != NULL)
		snprintf(err, errsz, "directory database: %s", dir->errmsg);
}

/* LDH labels of 1-63 octets, 253 in all; octets >= 0x80 pass (IDN as written). */
static bool
domain_ok(const char *d)
{
	size_t len = strlen(d), label = 0;
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = (unsigned char)d[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || d[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (label == 0 && c == '-')
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		      c >= 0x80))
			return false;
		label++;
	}
	return true;
}

/*
 * A dot-atom local part (RFC 5322 atext, octets >= 0x80 for SMTPUTF8) of
 * 1-64 octets. '+' and '/' only when flags allow: a user's local part is a
 * directory name and carries no subaddress.
 */
static bool
local_ok(const char *l, unsigned flags)
{
	size_t len = strlen(l);
	if (len == 0 || len > 64 || l[0] == '.' || l[len - 1] == '.' || strstr(l, "..") != NULL)
		return false;
	for (const char *p = l; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80)
			continue;
		if (c == '+' && (flags & L_PLUS))
			continue;
		if (c == '/' && (flags & L_SLASH))
			continue;
		if (c != '/' && c != '+' && strchr("!#$%&'*-=?^_`{|}~.", c) != NULL)
			continue;
		return false;
	}
	return true;
}

/* Split at the last '@' into bounded copies; -1 when there is none or a part does not fit. */
static int
split(const char *addr, char *local, size_t localsz, char *domain, size_t domainsz)
{
	const char *at = strrchr(addr, '@');
	if (at == NULL)
		return -1;
	size_t ln = (size_t)(at - addr), dn = strlen(at + 1);
	if (ln >= localsz || dn >= domainsz)
		return -1;
	memcpy(local, addr, ln);
	local[ln] = '\0';
	memcpy(domain, at + 1, dn + 1);
	return 0;
}

int
mc_dir_domain_norm(const char *domain, char *out, size_t outsz, char *err, size_t errsz)
{
	char d[MC_DOMAIN_MAX + 1];
	char clean[80];
	if (strlen(domain) >= sizeof(d) || !domain_ok(domain)) {
		snprintf(err, errsz, "not a valid domain name: %s",
			 mc_log_clean(clean, sizeof(clean), domain, strlen(domain)));
		return -1;
	}
	memcpy(d, domain, strlen(domain) + 1);
	lower(d);
	if ((size_t)snprintf(out, outsz, "%s", d) >= outsz) {
		snprintf(err, errsz, "domain name too long");
		return -1;
	}
	return 0;
}

/* Lowercase local@domain whose local part passes local_ok(flags). */
static int
addr_norm(const char *address, unsigned flags, const char *what, char *out, size_t outsz, char *err, size_t errsz)
{
	char local[MC_LOCAL_MAX * 2 + 3], domain[MC_DOMAIN_MAX + 2], clean[100];
	if (split(address, local, sizeof(local), domain, sizeof(domain)) != 0) {
		snprintf(err, errsz, "not an address (local@domain): %s",
			 mc_log_clean(clean, sizeof(clean), address, strlen(address)));
		return -1;
	}
	if (mc_dir_domain_norm(domain, domain, sizeof(domain), err, errsz) != 0)
		return -1;
	if (!local_ok(local, flags)) {
		snprintf(err, errsz,
			 "the local part '%s' is not allowed for %s: use 1-64 letters, digits and . _ - (no leading "
			 "dot%s)",
			 mc_log_clean(clean, sizeof(clean), local, strlen(local)), what,
			 (flags & L_PLUS) ? "" : ", no '/', no '+': + separates a subaddress");
		return -1;
	}
	lower(local);
	if ((size_t)snprintf(out, outsz, "%s@%s", local, domain) >= outsz) {
		snprintf(err, errsz, "address too long");
		return -1;
	}
	return 0;
}

int
mc_dir_user_norm(const char *address, char *out, size_t outsz, char *err, size_t errsz)
{
	return addr_norm(address, 0, "a user", out, outsz, err, errsz);
}

static int
mailbox_path(const char *state_dir, const char *user, char *out, size_t sz)
{
	char norm[MC_DIR_ADDR_MAX + 1], err[160];
	if (mc_dir_user_norm(user, norm, sizeof(norm), err, sizeof(err)) != 0)
		return -1;
	char *at = strrchr(norm, '@');
	*at = '\0';
	if ((size_t)snprintf(out, sz, "%s/mail/%s/%s", state_dir, at + 1, norm) >= sz)
		return -1;
	return 0;
}

int
mc_dir_mailbox_path(const struct mc_config *cfg, const char *address, char *out, size_t sz)
{
	return mailbox_path(cfg->global.state_dir, address, out, sz);
}

/* ---- opening ---- */

static int
exec_sql(struct mc_dir *dir, const char *sql, char *err, size_t errsz)
{
	if (sqlite3_exec(dir->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		set_dberr(dir, err, errsz);
		return -1;
	}
	return 0;
}

static int
schema(struct mc_dir *dir, char *err, size_t errsz)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(dir->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK) {
		set_dberr(dir, err, errsz);
		return -1;
	}
	int v = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
	sqlite3_finalize(s);
	if (v == SCHEMA_VERSION)
		return 0;
	if (v > SCHEMA_VERSION) {
		snprintf(err, errsz, "directory database schema version %d is newer than this program's (%d)", v,
			 SCHEMA_VERSION);
		return -1;
	}
	if (v < 0) {
		set_dberr(dir, err, errsz);
		return -1;
	}
	/* Two processes may create it at once: the write lock orders them, IF NOT EXISTS makes it idempotent. */
	if (exec_sql(dir, "BEGIN IMMEDIATE", err, errsz) != 0)
		return -1;
	if (exec_sql(dir, schema_sql, err, errsz) != 0 || exec_sql(dir, "COMMIT", err, errsz) != 0) {
		sqlite3_exec(dir->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

struct mc_dir *
mc_dir_open(const struct mc_config *cfg, unsigned busy_ms, char *err, size_t errsz)
{
	char path[MC_PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/%s", cfg->global.state_dir, MC_DIR_FILE);
	if (mkdir(cfg->global.state_dir, 0755) != 0 && errno != EEXIST) {
		snprintf(err, errsz, "cannot create %s: %s", cfg->global.state_dir, strerror(errno));
		return NULL;
	}
	/* Made here with mode 0600 so SQLite's -wal and -shm files (which copy its mode) are private too. */
	int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errsz, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	close(fd);

	struct mc_dir *dir = calloc(1, sizeof(*dir));
	if (dir == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	snprintf(dir->state_dir, sizeof(dir->state_dir), "%s", cfg->global.state_dir);
	if (sqlite3_open_v2(path, &dir->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL) != SQLITE_OK) {
		snprintf(err, errsz, "cannot open %s: %s", path, dir->db ? sqlite3_errmsg(dir->db) : "out of memory");
		mc_dir_close(dir);
		return NULL;
	}
	sqlite3_busy_timeout(dir->db, (int)busy_ms);
	sqlite3_extended_result_codes(dir->db, 1);
	if (exec_sql(dir, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL", err, errsz) != 0 ||
	    schema(dir, err, errsz) != 0) {
		mc_dir_close(dir);
		return NULL;
	}
	for (int i = 0; i < S_COUNT; i++) {
		if (sqlite3_prepare_v3(dir->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &dir->stmt[i], NULL) !=
		    SQLITE_OK) {
			set_dberr(dir, err, errsz);
			mc_dir_close(dir);
			return NULL;
		}
	}
	return dir;
}

void
mc_dir_close(struct mc_dir *dir)
{
	if (dir == NULL)
		return;
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(dir->stmt[i]);
	sqlite3_close(dir->db);
	free(dir);
}

const char *
mc_dir_errmsg(const struct mc_dir *dir)
{
	return dir->errmsg;
}

/* ---- lookups through the prepared statements ---- */

static sqlite3_stmt *
stmt(struct mc_dir *dir, enum sid id, const char *arg)
{
	sqlite3_stmt *s = dir->stmt[id];
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (arg != NULL)
		sqlite3_bind_text(s, 1, arg, -1, SQLITE_TRANSIENT);
	return s;
}

/* 1 when the statement yields a row, 0 when none, -1 on error (recorded). */
static int
exists(struct mc_dir *dir, enum sid id, const char *arg)
{
	sqlite3_stmt *s = stmt(dir, id, arg);
	int rc = sqlite3_step(s);
	int r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
	if (r < 0)
		set_dberr(dir, NULL, 0);
	sqlite3_reset(s);
	return r;
}

/* The first column of the first row into out: 1, 0 when none, -1 on error. */
static int
first_text(struct mc_dir *dir, enum sid id, const char *arg, char *out, size_t outsz)
{
	sqlite3_stmt *s = stmt(dir, id, arg);
	int rc = sqlite3_step(s), r;
	if (rc == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(s, 0);
		r = t != NULL && (size_t)snprintf(out, outsz, "%s", t) < outsz ? 1 : 0;
	} else if (rc == SQLITE_DONE) {
		r = 0;
	} else {
		set_dberr(dir, NULL, 0);
		r = -1;
	}
	sqlite3_reset(s);
	return r;
}

int
mc_dir_domain_exists(struct mc_dir *dir, const char *domain)
{
	char d[MC_DOMAIN_MAX + 1];
	if ((size_t)snprintf(d, sizeof(d), "%s", domain) >= sizeof(d))
		return 0;
	lower(d);
	return exists(dir, S_DOMAIN_EXISTS, d);
}

int
mc_dir_user_get(struct mc_dir *dir, const char *address, struct mc_dir_user *u, char *canon, char *hash,
		size_t hashsz)
{
	char key[MC_DIR_ADDR_MAX + 1];
	if ((size_t)snprintf(key, sizeof(key), "%s", address) >= sizeof(key))
		return 0;
	lower(key);
	sqlite3_stmt *s = stmt(dir, S_USER_GET, key);
	int rc = sqlite3_step(s), r = 0;
	if (rc == SQLITE_ROW) {
		const char *a = (const char *)sqlite3_column_text(s, 0);
		const char *h = (const char *)sqlite3_column_text(s, 1);
		if (a != NULL && h != NULL && strlen(a) <= MC_DIR_ADDR_MAX && strlen(h) < hashsz) {
			memcpy(canon, a, strlen(a) + 1);
			memcpy(hash, h, strlen(h) + 1);
			u->address = canon;
			u->quota = (uint64_t)sqlite3_column_int64(s, 2);
			u->created = sqlite3_column_int64(s, 3);
			r = 1;
		}
	} else if (rc != SQLITE_DONE) {
		set_dberr(dir, NULL, 0);
		r = -1;
	}
	sqlite3_reset(s);
	return r;
}

/* A lookup key split into its parts: key = local@domain lowercased, base = local up to '+'. */
struct lkey {
	char local[MC_LOCAL_MAX * 2 + 3];
	char domain[MC_DOMAIN_MAX + 2];
	char key[MC_DIR_ADDR_MAX + 100];
	char base[MC_DIR_ADDR_MAX + 100];   /* "" when there is no +tag */
	char catchall[MC_DOMAIN_MAX + 3];
	bool postmaster;
};

static int
lkey_make(const char *addr, struct lkey *k)
{
	if (split(addr, k->local, sizeof(k->local), k->domain, sizeof(k->domain)) != 0 || k->local[0] == '\0' ||
	    k->domain[0] == '\0')
		return -1;
	lower(k->domain);
	char l[sizeof(k->local)];
	memcpy(l, k->local, sizeof(l));
	lower(l);
	snprintf(k->key, sizeof(k->key), "%s@%s", l, k->domain);
	snprintf(k->catchall, sizeof(k->catchall), "@%s", k->domain);
	char *plus = strchr(l, '+');
	k->base[0] = '\0';
	if (plus != NULL && plus != l) {
		*plus = '\0';
		snprintf(k->base, sizeof(k->base), "%s@%s", l, k->domain);
	}
	k->postmaster = strcmp(l, "postmaster") == 0;
	return 0;
}

/* Where postmaster@domain goes when it has nothing of its own (directory.h, rule 5). */
static int
postmaster_user(struct mc_dir *dir, const char *domain, char *out, size_t outsz)
{
	int r = first_text(dir, S_FIRST_USER_OF_DOMAIN, domain, out, outsz);
	if (r == 0)
		r = first_text(dir, S_FIRST_USER, NULL, out, outsz);
	return r;
}

static int
has_alias_or_user(struct mc_dir *dir, const char *key)
{
	int r = exists(dir, S_ALIAS_EXISTS, key);
	if (r == 0)
		r = exists(dir, S_USER_GET, key);
	return r;
}

enum mc_rcpt_result
mc_dir_rcpt(struct mc_dir *dir, const char *address, char *canonical, size_t sz)
{
	struct lkey k;
	char clean[MC_DIR_ADDR_MAX];
	if (lkey_make(address, &k) != 0) {
		snprintf(canonical, sz, "%s", address);
		if (strcasecmp(address, "postmaster") != 0)
			return MC_RCPT_UNKNOWN;
		/* RCPT TO:<Postmaster> without a domain (RFC 5321 §4.5.1). */
		char pm[MC_DIR_ADDR_MAX + 1];
		snprintf(canonical, sz, "postmaster");
		int r = first_text(dir, S_FIRST_USER, NULL, pm, sizeof(pm));
		return r < 0 ? MC_RCPT_TEMPFAIL : r > 0 ? MC_RCPT_LOCAL : MC_RCPT_UNKNOWN;
	}
	int r = exists(dir, S_DOMAIN_EXISTS, k.domain);
	if (r == 0) {
		snprintf(canonical, sz, "%s@%s", k.local, k.domain);
		return MC_RCPT_REMOTE;
	}
	snprintf(canonical, sz, "%s", k.key);
	if (r > 0)
		r = has_alias_or_user(dir, k.key);
	if (r == 0 && k.base[0] != '\0')
		r = has_alias_or_user(dir, k.base);
	if (r == 0)
		r = exists(dir, S_ALIAS_EXISTS, k.catchall);
	if (r == 0 && k.postmaster) {
		char pm[MC_DIR_ADDR_MAX + 1];
		r = postmaster_user(dir, k.domain, pm, sizeof(pm));
		if (r == 0)
			mc_warn("directory: %s has no mailbox: the directory has no user at all", k.key);
	}
	if (r < 0) {
		mc_warn("directory: recipient lookup failed address=<%s> error=%s",
			mc_log_clean(clean, sizeof(clean), k.key, strlen(k.key)), dir->errmsg);
		return MC_RCPT_TEMPFAIL;
	}
	return r > 0 ? MC_RCPT_LOCAL : MC_RCPT_UNKNOWN;
}

/* ---- expansion ---- */

struct expansion {
	struct mc_dir *dir;
	struct mc_dest *out;
	unsigned max, n;
	char path[MC_DIR_DEPTH_MAX + 1][MC_DIR_ADDR_MAX + 100];
	bool failed;
	bool overflow;
};

/*
 * One destination. LOCAL: address is the address as it reached user (with
 * its +tag: queued writes it as Delivered-To), and user's Maildir is the
 * mailbox; two ways to one mailbox deliver once.
 */
static void
add_dest(struct expansion *e, enum mc_dest_kind kind, const char *address, const char *user)
{
	char mailbox[sizeof(e->out[0].mailbox)] = "";
	if (kind == MC_DEST_LOCAL && mailbox_path(e->dir->state_dir, user, mailbox, sizeof(mailbox)) != 0) {
		mc_warn("directory: user <%s> has no usable mailbox path", user);
		kind = MC_DEST_UNKNOWN;
	}
	for (unsigned i = 0; i < e->n; i++) {
		if (e->out[i].kind != kind)
			continue;
		if (kind == MC_DEST_LOCAL ? strcmp(e->out[i].mailbox, mailbox) == 0
					  : strcmp(e->out[i].address, address) == 0)
			return;
	}
	if (e->n == e->max) {
		e->overflow = true;
		return;
	}
	struct mc_dest *d = &e->out[e->n++];
	d->kind = kind;
	snprintf(d->address, sizeof(d->address), "%s", address);
	snprintf(d->mailbox, sizeof(d->mailbox), "%s", mailbox);
}

static void
free_targets(char **list, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

/* The targets of an alias source, copied out (the statement cannot stay open across recursion). */
static int
targets(struct mc_dir *dir, const char *source, char ***list, unsigned *n)
{
	*list = NULL;
	*n = 0;
	sqlite3_stmt *s = stmt(dir, S_ALIAS_TARGETS, source);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(s, 0);
		if (t == NULL)
			continue;
		if (*n >= MC_DIR_EXPAND_MAX) {
			snprintf(dir->errmsg, sizeof(dir->errmsg), "alias %s has more than %d targets", source,
				 MC_DIR_EXPAND_MAX);
			sqlite3_reset(s);
			free_targets(*list, *n);
			return -1;
		}
		char **nl = realloc(*list, (*n + 1) * sizeof(char *));
		char *copy = strdup(t);
		if (nl == NULL || copy == NULL)
			mc_panic("out of memory reading alias targets");
		*list = nl;
		(*list)[(*n)++] = copy;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		set_dberr(dir, NULL, 0);
		free_targets(*list, *n);
		return -1;
	}
	return 0;
}

static void expand(struct expansion *e, const char *addr, unsigned depth);

/* Expand every target of source; 1 when it is an alias, 0 when not. local: for "@domain" targets. */
static int
expand_alias(struct expansion *e, const char *source, const char *local, unsigned depth)
{
	char **list;
	unsigned n;
	if (targets(e->dir, source, &list, &n) != 0) {
		e->failed = true;
		return 1;
	}
	for (unsigned i = 0; i < n && !e->failed; i++) {
		if (list[i][0] == '@') {
			char rewritten[MC_DIR_ADDR_MAX + 100];
			snprintf(rewritten, sizeof(rewritten), "%s%s", local, list[i]);
			expand(e, rewritten, depth + 1);
		} else {
			expand(e, list[i], depth + 1);
		}
	}
	free_targets(list, n);
	return n > 0;
}

static void
expand(struct expansion *e, const char *addr, unsigned depth)
{
	struct lkey k;
	char pm[MC_DIR_ADDR_MAX + 1];
	int r;

	if (e->failed)
		return;
	if (depth > MC_DIR_DEPTH_MAX) {
		mc_warn("directory: alias nesting deeper than %d at <%s>: branch dropped", MC_DIR_DEPTH_MAX, addr);
		return;
	}
	if (lkey_make(addr, &k) != 0) {
		if (strcasecmp(addr, "postmaster") == 0 &&
		    (r = first_text(e->dir, S_FIRST_USER, NULL, pm, sizeof(pm))) != 0) {
			if (r > 0)
				add_dest(e, MC_DEST_LOCAL, pm, pm);
			else
				e->failed = true;
			return;
		}
		add_dest(e, MC_DEST_UNKNOWN, addr, NULL);
		return;
	}
	if ((r = exists(e->dir, S_DOMAIN_EXISTS, k.domain)) <= 0) {
		if (r < 0)
			e->failed = true;
		else {
			char remote[sizeof(k.key)];
			snprintf(remote, sizeof(remote), "%s@%s", k.local, k.domain);
			add_dest(e, MC_DEST_REMOTE, remote, NULL);
		}
		return;
	}
	for (unsigned i = 0; i < depth; i++) {
		if (strcmp(e->path[i], k.key) != 0)
			continue;
		if ((r = exists(e->dir, S_USER_GET, k.key)) > 0)
			add_dest(e, MC_DEST_LOCAL, k.key, k.key);
		else if (r == 0)
			mc_warn("directory: alias loop at <%s>: branch dropped", k.key);
		else
			e->failed = true;
		return;
	}
	snprintf(e->path[depth], sizeof(e->path[depth]), "%s", k.key);

	char local[sizeof(k.local)];
	memcpy(local, k.local, sizeof(local));
	lower(local);

	if (expand_alias(e, k.key, local, depth))
		return;
	if ((r = exists(e->dir, S_USER_GET, k.key)) != 0) {
		if (r > 0)
			add_dest(e, MC_DEST_LOCAL, k.key, k.key);
		else
			e->failed = true;
		return;
	}
	if (k.base[0] != '\0') {
		if (expand_alias(e, k.base, local, depth))
			return;
		if ((r = exists(e->dir, S_USER_GET, k.base)) != 0) {
			if (r > 0)
				add_dest(e, MC_DEST_LOCAL, k.key, k.base);
			else
				e->failed = true;
			return;
		}
	}
	if (expand_alias(e, k.catchall, local, depth))
		return;
	if (k.postmaster) {
		if ((r = postmaster_user(e->dir, k.domain, pm, sizeof(pm))) > 0) {
			add_dest(e, MC_DEST_LOCAL, k.key, pm);
			return;
		}
		if (r < 0) {
			e->failed = true;
			return;
		}
	}
	add_dest(e, MC_DEST_UNKNOWN, k.key, NULL);
}

int
mc_dir_expand(struct mc_dir *dir, const char *address, struct mc_dest *out, unsigned max, unsigned *n)
{
	struct expansion *e = calloc(1, sizeof(*e));
	char clean[MC_DIR_ADDR_MAX];
	if (e == NULL)
		mc_panic("out of memory expanding an address");
	e->dir = dir;
	e->out = out;
	e->max = max;
	expand(e, address, 0);
	int rc = 0;
	mc_log_clean(clean, sizeof(clean), address, strlen(address));
	if (e->failed) {
		mc_warn("directory: expansion failed address=<%s> error=%s", clean, dir->errmsg);
		rc = -1;
	} else if (e->overflow) {
		mc_warn("directory: expansion of <%s> has more than %u destinations", clean, max);
		rc = -1;
	} else if (e->n == 0) {
		struct lkey k;
		add_dest(e, MC_DEST_UNKNOWN, lkey_make(address, &k) == 0 ? k.key : address, NULL);
		rc = e->overflow ? -1 : 0;
	}
	*n = rc == 0 ? e->n : 0;
	free(e);
	return rc;
}

/* ---- changes and listings (the postern tool) ---- */

/* Prepare sql and bind the given texts (NULL-terminated list) to ?1, ?2, ... */
static sqlite3_stmt *
prep(struct mc_dir *dir, const char *sql, const char *const *args, char *err, size_t errsz)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(dir->db, sql, -1, &s, NULL) != SQLITE_OK) {
		set_dberr(dir, err, errsz);
		return NULL;
	}
	for (int i = 0; args != NULL && args[i] != NULL; i++)
		sqlite3_bind_text(s, i + 1, args[i], -1, SQLITE_TRANSIENT);
	return s;
}

/*
 * Run a change; returns the rows changed, -2 on a uniqueness conflict,
 * -1 on another error (err filled).
 */
static int
change(struct mc_dir *dir, const char *sql, const char *const *args, int64_t num, char *err, size_t errsz)
{
	sqlite3_stmt *s = prep(dir, sql, args, err, errsz);
	if (s == NULL)
		return -1;
	int nargs = 0;
	while (args != NULL && args[nargs] != NULL)
		nargs++;
	if (sqlite3_bind_parameter_count(s) > nargs)
		sqlite3_bind_int64(s, nargs + 1, num);
	int rc = sqlite3_step(s), r;
	if (rc == SQLITE_DONE) {
		r = sqlite3_changes(dir->db);
	} else if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		r = -2;
	} else {
		set_dberr(dir, err, errsz);
		r = -1;
	}
	sqlite3_finalize(s);
	return r;
}

int
mc_dir_domain_add(struct mc_dir *dir, const char *domain, char *err, size_t errsz)
{
	char d[MC_DOMAIN_MAX + 1];
	if (mc_dir_domain_norm(domain, d, sizeof(d), err, errsz) != 0)
		return -1;
	const char *args[] = { d, NULL };
	int r = change(dir, "INSERT INTO domains(name, created) VALUES (?1, ?2)", args, (int64_t)time(NULL), err,
		       errsz);
	if (r == -2)
		snprintf(err, errsz, "domain %s already exists", d);
	return r > 0 ? 0 : -1;
}

static int
count(struct mc_dir *dir, const char *sql, const char *arg, char *err, size_t errsz)
{
	const char *args[] = { arg, NULL };
	sqlite3_stmt *s = prep(dir, sql, args, err, errsz);
	if (s == NULL)
		return -1;
	int r = -1;
	if (sqlite3_step(s) == SQLITE_ROW)
		r = sqlite3_column_int(s, 0);
	else
		set_dberr(dir, err, errsz);
	sqlite3_finalize(s);
	return r;
}

int
mc_dir_domain_del(struct mc_dir *dir, const char *domain, bool force, char *err, size_t errsz)
{
	char d[MC_DOMAIN_MAX + 1];
	if (mc_dir_domain_norm(domain, d, sizeof(d), err, errsz) != 0)
		return -1;
	if (exec_sql(dir, "BEGIN IMMEDIATE", err, errsz) != 0)
		return -1;
	const char *args[] = { d, NULL };
	int users = count(dir, "SELECT count(*) FROM users WHERE domain = ?1", d, err, errsz);
	int aliases = users < 0 ? -1 : count(dir, "SELECT count(*) FROM aliases WHERE domain = ?1", d, err, errsz);
	int r = aliases < 0 ? -1 : 0;
	if (r == 0 && (users > 0 || aliases > 0) && !force) {
		snprintf(err, errsz,
			 "domain %s still has %d user%s and %d alias%s: delete them first, or use --force to delete "
			 "them with it (mailboxes stay on disk)",
			 d, users, users == 1 ? "" : "s", aliases, aliases == 1 ? "" : "es");
		r = -1;
	}
	if (r == 0 && (change(dir, "DELETE FROM users WHERE domain = ?1", args, 0, err, errsz) < 0 ||
		       change(dir, "DELETE FROM aliases WHERE domain = ?1", args, 0, err, errsz) < 0))
		r = -1;
	if (r == 0) {
		int n = change(dir, "DELETE FROM domains WHERE name = ?1", args, 0, err, errsz);
		if (n == 0)
			snprintf(err, errsz, "domain %s is not a local domain", d);
		if (n <= 0)
			r = -1;
	}
	if (r == 0 && exec_sql(dir, "COMMIT", err, errsz) == 0)
		return 0;
	sqlite3_exec(dir->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

int
mc_dir_user_add(struct mc_dir *dir, const char *address, const char *hash, uint64_t quota, char *err, size_t errsz)
{
	char a[MC_DIR_ADDR_MAX + 1];
	if (mc_dir_user_norm(address, a, sizeof(a), err, errsz) != 0)
		return -1;
	const char *d = strrchr(a, '@') + 1;
	char created[24];
	snprintf(created, sizeof(created), "%lld", (long long)time(NULL));
	const char *args[] = { a, d, hash, created, NULL };
	int r = change(dir,
		       "INSERT INTO users(address, domain, password, created, quota) "
		       "SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM domains WHERE name = ?2)",
		       args, (int64_t)quota, err, errsz);
	if (r == -2)
		snprintf(err, errsz, "user %s already exists", a);
	else if (r == 0)
		snprintf(err, errsz, "domain %s is not a local domain: add it with postern domain add", d);
	return r > 0 ? 0 : -1;
}

int
mc_dir_user_del(struct mc_dir *dir, const char *address, char *err, size_t errsz)
{
	char a[MC_DIR_ADDR_MAX + 1];
	if (mc_dir_user_norm(address, a, sizeof(a), err, errsz) != 0)
		return -1;
	const char *args[] = { a, NULL };
	int r = change(dir, "DELETE FROM users WHERE address = ?1", args, 0, err, errsz);
	if (r == 0)
		snprintf(err, errsz, "no user %s", a);
	return r > 0 ? 0 : -1;
}

int
mc_dir_user_set_hash(struct mc_dir *dir, const char *address, const char *hash, char *err, size_t errsz)
{
	char a[MC_DIR_ADDR_MAX + 1];
	if (mc_dir_user_norm(address, a, sizeof(a), err, errsz) != 0)
		return -1;
	const char *args[] = { a, hash, NULL };
	int r = change(dir, "UPDATE users SET password = ?2 WHERE address = ?1", args, 0, err, errsz);
	if (r == 0)
		snprintf(err, errsz, "no user %s", a);
	return r > 0 ? 0 : -1;
}

/* An alias source: "@domain" or local@domain ('+' allowed); the domain goes to dom. */
static int
source_norm(const char *source, char *out, size_t outsz, char *dom, size_t domsz, char *err, size_t errsz)
{
	if (source[0] == '@') {
		if (mc_dir_domain_norm(source + 1, dom, domsz, err, errsz) != 0)
			return -1;
		snprintf(out, outsz, "@%s", dom);
		return 0;
	}
	if (addr_norm(source, L_PLUS, "an alias", out, outsz, err, errsz) != 0)
		return -1;
	snprintf(dom, domsz, "%s", strrchr(out, '@') + 1);
	return 0;
}

/*
 * An alias target: an address of any domain (the local part kept as
 * written; lowercased when the domain is local), or "@domain" for a
 * catch-all source.
 */
static int
target_norm(struct mc_dir *dir, const char *target, bool catchall, char *out, size_t outsz, char *err,
	    size_t errsz)
{
	char local[MC_LOCAL_MAX * 2 + 3], domain[MC_DOMAIN_MAX + 2], clean[100];
	if (target[0] == '@') {
		if (!catchall) {
			snprintf(err, errsz, "a target \"@domain\" is only for a catch-all source \"@domain\"");
			return -1;
		}
		if (mc_dir_domain_norm(target + 1, domain, sizeof(domain), err, errsz) != 0)
			return -1;
		snprintf(out, outsz, "@%s", domain);
		return 0;
	}
	if (split(target, local, sizeof(local), domain, sizeof(domain)) != 0 ||
	    mc_dir_domain_norm(domain, domain, sizeof(domain), err, errsz) != 0 ||
	    !local_ok(local, L_PLUS | L_SLASH)) {
		snprintf(err, errsz, "not a usable alias target: %s",
			 mc_log_clean(clean, sizeof(clean), target, strlen(target)));
		return -1;
	}
	int r = exists(dir, S_DOMAIN_EXISTS, domain);
	if (r < 0) {
		set_dberr(dir, err, errsz);
		return -1;
	}
	if (r > 0)
		lower(local);
	if ((size_t)snprintf(out, outsz, "%s@%s", local, domain) >= outsz) {
		snprintf(err, errsz, "alias target too long");
		return -1;
	}
	return 0;
}

int
mc_dir_alias_add(struct mc_dir *dir, const char *source, const char *target, char *err, size_t errsz)
{
	char s[MC_DIR_ADDR_MAX + 1], t[MC_DIR_ADDR_MAX + 1], d[MC_DOMAIN_MAX + 1];
	if (source_norm(source, s, sizeof(s), d, sizeof(d), err, errsz) != 0 ||
	    target_norm(dir, target, s[0] == '@', t, sizeof(t), err, errsz) != 0)
		return -1;
	char created[24];
	snprintf(created, sizeof(created), "%lld", (long long)time(NULL));
	const char *args[] = { s, t, d, created, NULL };
	int r = change(dir,
		       "INSERT INTO aliases(source, target, domain, created) "
		       "SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM domains WHERE name = ?3)",
		       args, 0, err, errsz);
	if (r == -2)
		snprintf(err, errsz, "alias %s -> %s already exists", s, t);
	else if (r == 0)
		snprintf(err, errsz, "domain %s is not a local domain: add it with postern domain add", d);
	return r > 0 ? 0 : -1;
}

int
mc_dir_alias_del(struct mc_dir *dir, const char *source, const char *target, char *err, size_t errsz)
{
	char s[MC_DIR_ADDR_MAX + 1], t[MC_DIR_ADDR_MAX + 1], d[MC_DOMAIN_MAX + 1];
	if (source_norm(source, s, sizeof(s), d, sizeof(d), err, errsz) != 0)
		return -1;
	int r;
	if (target != NULL) {
		if (target_norm(dir, target, s[0] == '@', t, sizeof(t), err, errsz) != 0)
			return -1;
		const char *args[] = { s, t, NULL };
		r = change(dir, "DELETE FROM aliases WHERE source = ?1 AND target = ?2", args, 0, err, errsz);
		if (r == 0)
			snprintf(err, errsz, "no alias %s -> %s", s, t);
	} else {
		const char *args[] = { s, NULL };
		r = change(dir, "DELETE FROM aliases WHERE source = ?1", args, 0, err, errsz);
		if (r == 0)
			snprintf(err, errsz, "no alias %s", s);
	}
	return r > 0 ? 0 : -1;
}

/* Step a listing statement to its end; the row function reads each row. */
static int
list(struct mc_dir *dir, sqlite3_stmt *s, void (*row)(sqlite3_stmt *s, void *cb, void *arg), void *cb, void *arg,
     char *err, size_t errsz)
{
	if (s == NULL)
		return -1;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		row(s, cb, arg);
	if (rc != SQLITE_DONE)
		set_dberr(dir, err, errsz);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

static const char *
col(sqlite3_stmt *s, int i)
{
	const char *t = (const char *)sqlite3_column_text(s, i);
	return t != NULL ? t : "";
}

static void
domain_row(sqlite3_stmt *s, void *cb, void *arg)
{
	struct mc_dir_domain d = {
		.name = col(s, 0),
		.created = sqlite3_column_int64(s, 1),
		.users = (unsigned)sqlite3_column_int(s, 2),
		.aliases = (unsigned)sqlite3_column_int(s, 3),
	};
	((mc_dir_domain_cb)cb)(arg, &d);
}

static void
user_row(sqlite3_stmt *s, void *cb, void *arg)
{
	struct mc_dir_user u = {
		.address = col(s, 0),
		.quota = (uint64_t)sqlite3_column_int64(s, 1),
		.created = sqlite3_column_int64(s, 2),
	};
	((mc_dir_user_cb)cb)(arg, &u);
}

static void
alias_row(sqlite3_stmt *s, void *cb, void *arg)
{
	struct mc_dir_alias a = {
		.source = col(s, 0),
		.target = col(s, 1),
		.created = sqlite3_column_int64(s, 2),
	};
	((mc_dir_alias_cb)cb)(arg, &a);
}

int
mc_dir_domain_list(struct mc_dir *dir, mc_dir_domain_cb cb, void *arg, char *err, size_t errsz)
{
	sqlite3_stmt *s = prep(dir,
			       "SELECT d.name, d.created,"
			       " (SELECT count(*) FROM users u WHERE u.domain = d.name),"
			       " (SELECT count(*) FROM aliases a WHERE a.domain = d.name) "
			       "FROM domains d ORDER BY d.name",
			       NULL, err, errsz);
	return list(dir, s, domain_row, (void *)cb, arg, err, errsz);
}

/* A listing with an optional domain filter. */
static sqlite3_stmt *
prep_filtered(struct mc_dir *dir, const char *all, const char *one, const char *domain, char *err, size_t errsz)
{
	char d[MC_DOMAIN_MAX + 1];
	if (domain == NULL)
		return prep(dir, all, NULL, err, errsz);
	if (mc_dir_domain_norm(domain, d, sizeof(d), err, errsz) != 0)
		return NULL;
	const char *args[] = { d, NULL };
	return prep(dir, one, args, err, errsz);
}

int
mc_dir_user_list(struct mc_dir *dir, const char *domain, mc_dir_user_cb cb, void *arg, char *err, size_t errsz)
{
	sqlite3_stmt *s = prep_filtered(dir, "SELECT address, quota, created FROM users ORDER BY address",
					"SELECT address, quota, created FROM users WHERE domain = ?1 ORDER BY address",
					domain, err, errsz);
	return list(dir, s, user_row, (void *)cb, arg, err, errsz);
}

int
mc_dir_alias_list(struct mc_dir *dir, const char *domain, mc_dir_alias_cb cb, void *arg, char *err, size_t errsz)
{
	sqlite3_stmt *s = prep_filtered(
		dir, "SELECT source, target, created FROM aliases ORDER BY source, target",
		"SELECT source, target, created FROM aliases WHERE domain = ?1 ORDER BY source, target", domain, err,
		errsz);
	return list(dir, s, alias_row, (void *)cb, arg, err, errsz);
}
