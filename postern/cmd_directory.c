/*
 * cmd_directory.c - postern domain|user|alias: change and list the
 * directory (resolverd's database, mail/directory.h).
 *
 *   postern domain add DOMAIN | del DOMAIN [--force] | list
 *   postern user add ADDRESS [--password-stdin | --hash-stdin] [--quota SIZE]
 *   postern user passwd ADDRESS [--password-stdin | --hash-stdin]
 *   postern user del ADDRESS | list [DOMAIN]
 *   postern alias add SOURCE TARGET | del SOURCE [TARGET] | list [DOMAIN]
 *
 * Called by main.c. Works without a running instance: it prepares the
 * state layout (postern_prepare), and as root drops to resolverd's user
 * before it opens the database, so the database and its -wal and -shm
 * files stay resolverd's. A running resolverd reads the same file and sees
 * every change at once. Passwords are read without echo from the terminal,
 * or one line from stdin with --password-stdin; --hash-stdin takes a
 * crypt(3) hash (Dovecot's "{SHA512-CRYPT}$6$..." as exported) to migrate
 * users as they are. A password is never printed, logged or kept after it
 * is hashed.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "mail/addr.h"
#include "mail/directory.h"
#include "postern.h"
#include "svc.h"
#include "util/buf.h"
#include "util/config.h"
#include "util/passwd.h"
#include "util/privdrop.h"

#define ARGS_MAX 4

/* The words of one directory command, options taken out. */
struct dargs {
	const char *cmd;          /* "domain", "user", "alias" */
	const char *sub;          /* "add", "del", ... */
	const char *pos[ARGS_MAX];
	int npos;
	bool json, force, password_stdin, hash_stdin;
	const char *quota;
};

static const char *const usages[] = {
	"usage: postern domain add DOMAIN | del DOMAIN [--force] | list [--json]",
	"usage: postern user add ADDRESS [--password-stdin | --hash-stdin] [--quota SIZE] | passwd ADDRESS "
	"[--password-stdin | --hash-stdin] | del ADDRESS | list [DOMAIN] [--json]",
	"usage: postern alias add SOURCE TARGET | del SOURCE [TARGET] | list [DOMAIN] [--json]",
};

static int
usage(const struct dargs *a, const char *why)
{
	int i = strcmp(a->cmd, "domain") == 0 ? 0 : strcmp(a->cmd, "user") == 0 ? 1 : 2;
	if (why != NULL)
		fprintf(stderr, "postern: %s: %s\n", a->cmd, why);
	fprintf(stderr, "%s\n", usages[i]);
	return POSTERN_USAGE;
}

static int
fail(const char *cmd, const char *msg)
{
	fprintf(stderr, "postern: %s: %s\n", cmd, msg);
	return POSTERN_FAIL;
}

/* Split argv into sub-command, positional words and options; -1 on a usage error (printed). */
static int
parse(struct postern_ctx *ctx, int argc, char **argv, struct dargs *a)
{
	memset(a, 0, sizeof(*a));
	a->cmd = argv[0];
	a->json = ctx->json;
	for (int i = 1; i < argc; i++) {
		const char *w = argv[i];
		if (strcmp(w, "--json") == 0) {
			a->json = true;
		} else if (strcmp(w, "--force") == 0) {
			a->force = true;
		} else if (strcmp(w, "--password-stdin") == 0) {
			a->password_stdin = true;
		} else if (strcmp(w, "--hash-stdin") == 0) {
			a->hash_stdin = true;
		} else if (strcmp(w, "--quota") == 0 && i + 1 < argc) {
			a->quota = argv[++i];
		} else if (strncmp(w, "--quota=", 8) == 0) {
			a->quota = w + 8;
		} else if (w[0] == '-' && w[1] != '\0') {
			char why[200];
			snprintf(why, sizeof(why), "unknown option '%.100s'", w);
			usage(a, why);
			return -1;
		} else if (a->sub == NULL) {
			a->sub = w;
		} else if (a->npos < ARGS_MAX) {
			a->pos[a->npos++] = w;
		} else {
			usage(a, "too many arguments");
			return -1;
		}
	}
	if (a->sub == NULL) {
		usage(a, "missing sub-command");
		return -1;
	}
	return 0;
}

/* Check the words of a sub-command: exactly min..max positional words, no foreign options. */
static int
want(const struct dargs *a, int min, int max, bool passwords, bool quota, bool force)
{
	if (a->npos < min)
		return usage(a, "missing argument");
	if (a->npos > max)
		return usage(a, "too many arguments");
	if ((!passwords && (a->password_stdin || a->hash_stdin)) || (!quota && a->quota) || (!force && a->force))
		return usage(a, "option not allowed here");
	if (a->password_stdin && a->hash_stdin)
		return usage(a, "--password-stdin and --hash-stdin exclude each other");
	return 0;
}

/*
 * Prepare the instance, become resolverd's user when root, open the
 * directory. NULL after printing why.
 */
static struct mc_dir *
open_dir(struct postern_ctx *ctx, const char *cmd)
{
	char err[1024];
	if (postern_prepare(ctx, err, sizeof(err)) < 0) {
		fail(cmd, err);
		return NULL;
	}
	if (mc_privdrop_is_root()) {
		struct mc_ids ids;
		if (mc_privdrop_lookup(ctx->cfg.resolverd.user, NULL, &ids, err, sizeof(err)) < 0 ||
		    mc_privdrop(&ids, err, sizeof(err)) < 0) {
			fail(cmd, err);
			return NULL;
		}
	}
	struct mc_dir *dir = mc_dir_open(&ctx->cfg, 5000, err, sizeof(err));
	if (dir == NULL)
		fail(cmd, err);
	return dir;
}

/* ---- reading a password or a hash ---- */

static struct termios saved_tio;
static volatile sig_atomic_t echo_off;

static void
restore_echo(int sig)
{
	if (echo_off)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * One line from fd 0, read byte by byte so no copy stays in a stdio
 * buffer; the line end (LF or CRLF) is dropped. -1 at end of input before
 * a line, or when the line does not fit.
 */
static int
read_line(char *out, size_t outsz)
{
	size_t n = 0;
	bool any = false, toolong = false;
	for (;;) {
		char c;
		ssize_t r = read(STDIN_FILENO, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		any = true;
		if (c == '\n')
			break;
		if (n + 1 < outsz)
			out[n++] = c;
		else
			toolong = true;
	}
	if (n > 0 && out[n - 1] == '\r')
		n--;
	out[n] = '\0';
	return any && !toolong ? 0 : -1;
}

/* Prompt on stderr and read a line from the terminal with echo off. */
static int
prompt(const char *text, char *out, size_t outsz)
{
	struct termios tio;
	if (tcgetattr(STDIN_FILENO, &saved_tio) < 0)
		return -1;
	tio = saved_tio;
	tio.c_lflag &= ~(tcflag_t)ECHO;
	tio.c_lflag |= ECHONL;
	signal(SIGINT, restore_echo);
	signal(SIGTERM, restore_echo);
	signal(SIGHUP, restore_echo);
	fprintf(stderr, "%s", text);
	fflush(stderr);
	echo_off = 1;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &tio) < 0) {
		echo_off = 0;
		return -1;
	}
	int rc = read_line(out, outsz);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
	echo_off = 0;
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	return rc;
}

/*
 * The hash to store for address: from a password (terminal or stdin) made
 * into a yescrypt hash, or from a hash given on stdin. 0, or -1 printed.
 */
static int
get_hash(const struct dargs *a, const char *address, char *hash, size_t hashsz)
{
	char pw[MC_PASSWD_MAX + 2], again[MC_PASSWD_MAX + 2], err[300];
	int rc = -1;

	if (a->hash_stdin) {
		if (read_line(pw, sizeof(pw)) < 0)
			fail(a->cmd, "no hash on standard input");
		else if (mc_passwd_import(pw, hash, hashsz, err, sizeof(err)) < 0)
			fail(a->cmd, err);
		else
			rc = 0;
		explicit_bzero(pw, sizeof(pw));
		return rc;
	}
	if (a->password_stdin) {
		if (read_line(pw, sizeof(pw)) < 0) {
			fail(a->cmd, "no password on standard input (or it is too long)");
			goto out;
		}
	} else {
		if (!isatty(STDIN_FILENO)) {
			fail(a->cmd, "standard input is not a terminal: give the password with --password-stdin");
			goto out;
		}
		char text[MC_DIR_ADDR_MAX + 40];
		snprintf(text, sizeof(text), "Password for %s: ", address);
		if (prompt(text, pw, sizeof(pw)) < 0 || prompt("Again: ", again, sizeof(again)) < 0) {
			fail(a->cmd, "could not read the password (or it is too long)");
			goto out;
		}
		if (strcmp(pw, again) != 0) {
			fail(a->cmd, "the passwords do not match");
			goto out;
		}
	}
	if (pw[0] == '\0') {
		fail(a->cmd, "empty passwords are refused");
		goto out;
	}
	if (mc_passwd_hash(pw, hash, hashsz, err, sizeof(err)) < 0) {
		fail(a->cmd, err);
		goto out;
	}
	rc = 0;
out:
	explicit_bzero(pw, sizeof(pw));
	explicit_bzero(again, sizeof(again));
	return rc;
}

/* ---- listings ---- */

struct out {
	struct mc_buf b;
	bool json;
	size_t rows;
	const struct mc_config *cfg;
};

static void
out_start(struct out *o, bool json, const struct mc_config *cfg)
{
	mc_buf_init(&o->b, 0);
	o->json = json;
	o->rows = 0;
	o->cfg = cfg;
	if (json)
		mc_buf_adds(&o->b, "[");
}

static void
out_row_start(struct out *o)
{
	if (o->json)
		mc_buf_adds(&o->b, o->rows ? ",\n {" : "\n {");
	o->rows++;
}

static int
out_finish(struct out *o)
{
	if (o->json)
		mc_buf_adds(&o->b, o->rows ? "\n]\n" : "]\n");
	int rc = fwrite(o->b.data ? o->b.data : "", 1, o->b.len, stdout) == o->b.len && fflush(stdout) == 0
			 ? POSTERN_OK
			 : POSTERN_FAIL;
	mc_buf_free(&o->b);
	return rc;
}

static void
json_field(struct out *o, const char *name, const char *value, bool first)
{
	if (!first)
		mc_buf_adds(&o->b, ", ");
	postern_json_str(&o->b, name);
	mc_buf_adds(&o->b, ": ");
	postern_json_str(&o->b, value);
}

static void
json_num(struct out *o, const char *name, long long value)
{
	mc_buf_adds(&o->b, ", ");
	postern_json_str(&o->b, name);
	mc_buf_printf(&o->b, ": %lld", value);
}

static void
on_domain(void *arg, const struct mc_dir_domain *d)
{
	struct out *o = arg;
	out_row_start(o);
	if (o->json) {
		json_field(o, "name", d->name, true);
		json_num(o, "users", d->users);
		json_num(o, "aliases", d->aliases);
		json_num(o, "created", d->created);
		mc_buf_adds(&o->b, "}");
	} else {
		mc_buf_printf(&o->b, "%-40s users=%u aliases=%u\n", d->name, d->users, d->aliases);
	}
}

static void
on_user(void *arg, const struct mc_dir_user *u)
{
	struct out *o = arg;
	char mailbox[MC_PATH_MAX + 400] = "";
	mc_dir_mailbox_path(o->cfg, u->address, mailbox, sizeof(mailbox));
	out_row_start(o);
	if (o->json) {
		json_field(o, "address", u->address, true);
		json_num(o, "quota", (long long)u->quota);
		json_num(o, "created", u->created);
		json_field(o, "mailbox", mailbox, false);
		mc_buf_adds(&o->b, "}");
	} else if (u->quota) {
		mc_buf_printf(&o->b, "%s quota=%llu\n", u->address, (unsigned long long)u->quota);
	} else {
		mc_buf_printf(&o->b, "%s\n", u->address);
	}
}

static void
on_alias(void *arg, const struct mc_dir_alias *al)
{
	struct out *o = arg;
	out_row_start(o);
	if (o->json) {
		json_field(o, "source", al->source, true);
		json_field(o, "target", al->target, false);
		json_num(o, "created", al->created);
		mc_buf_adds(&o->b, "}");
	} else {
		mc_buf_printf(&o->b, "%s -> %s\n", al->source, al->target);
	}
}

/* ---- postern domain ---- */

struct count {
	const char *name;
	unsigned users, aliases;
};

static void
on_count(void *arg, const struct mc_dir_domain *d)
{
	struct count *c = arg;
	if (strcmp(d->name, c->name) == 0) {
		c->users = d->users;
		c->aliases = d->aliases;
	}
}

int
cmd_domain(struct postern_ctx *ctx, int argc, char **argv)
{
	struct dargs a;
	char err[1024], d[MC_DOMAIN_MAX + 1];
	if (parse(ctx, argc, argv, &a) < 0)
		return POSTERN_USAGE;
	bool add = strcmp(a.sub, "add") == 0, del = strcmp(a.sub, "del") == 0, list = strcmp(a.sub, "list") == 0;
	if (!add && !del && !list)
		return usage(&a, "unknown sub-command");
	int rc = list ? want(&a, 0, 0, false, false, false) : want(&a, 1, 1, false, false, del);
	if (rc != 0)
		return rc;
	if (!list && mc_dir_domain_norm(a.pos[0], d, sizeof(d), err, sizeof(err)) < 0)
		return fail(a.cmd, err);

	struct mc_dir *dir = open_dir(ctx, a.cmd);
	if (dir == NULL)
		return POSTERN_FAIL;
	rc = POSTERN_OK;
	if (add) {
		if (mc_dir_domain_add(dir, d, err, sizeof(err)) < 0)
			rc = fail(a.cmd, err);
		else
			printf("added domain %s\n", d);
	} else if (del) {
		struct count c = { .name = d };
		if (mc_dir_domain_list(dir, on_count, &c, err, sizeof(err)) < 0 ||
		    mc_dir_domain_del(dir, d, a.force, err, sizeof(err)) < 0) {
			rc = fail(a.cmd, err);
		} else if (c.users || c.aliases) {
			char mail[MC_PATH_MAX + MC_DOMAIN_MAX + 8];
			snprintf(mail, sizeof(mail), "%s/mail/%s", ctx->cfg.global.state_dir, d);
			printf("deleted domain %s with %u user%s and %u alias%s (mailboxes under %s were kept)\n", d,
			       c.users, c.users == 1 ? "" : "s", c.aliases, c.aliases == 1 ? "" : "es", mail);
		} else {
			printf("deleted domain %s\n", d);
		}
	} else {
		struct out o;
		out_start(&o, a.json, &ctx->cfg);
		if (mc_dir_domain_list(dir, on_domain, &o, err, sizeof(err)) < 0) {
			mc_buf_free(&o.b);
			rc = fail(a.cmd, err);
		} else {
			rc = out_finish(&o);
		}
	}
	mc_dir_close(dir);
	return rc;
}

/* ---- postern user ---- */

int
cmd_user(struct postern_ctx *ctx, int argc, char **argv)
{
	struct dargs a;
	char err[1024], addr[MC_DIR_ADDR_MAX + 1], canon[MC_DIR_ADDR_MAX + 1], hash[MC_PASSWD_HASH_MAX];
	struct mc_dir_user u;
	uint64_t quota = 0;
	if (parse(ctx, argc, argv, &a) < 0)
		return POSTERN_USAGE;
	bool add = strcmp(a.sub, "add") == 0, del = strcmp(a.sub, "del") == 0, list = strcmp(a.sub, "list") == 0;
	bool passwd = strcmp(a.sub, "passwd") == 0;
	int rc;
	if (add)
		rc = want(&a, 1, 1, true, true, false);
	else if (passwd)
		rc = want(&a, 1, 1, true, false, false);
	else if (del)
		rc = want(&a, 1, 1, false, false, false);
	else if (list)
		rc = want(&a, 0, 1, false, false, false);
	else
		return usage(&a, "unknown sub-command");
	if (rc != 0)
		return rc;
	if (a.quota != NULL && mc_parse_size(a.quota, &quota) < 0)
		return usage(&a, "--quota wants a size such as 500M or 2G");
	if (!list && mc_dir_user_norm(a.pos[0], addr, sizeof(addr), err, sizeof(err)) < 0)
		return fail(a.cmd, err);

	struct mc_dir *dir = open_dir(ctx, a.cmd);
	if (dir == NULL)
		return POSTERN_FAIL;
	rc = POSTERN_OK;
	if (add || passwd) {
		/* Say what is wrong before asking for a password. */
		const char *domain = strrchr(addr, '@') + 1;
		int known = mc_dir_user_get(dir, addr, &u, canon, hash, sizeof(hash));
		int local = mc_dir_domain_exists(dir, domain);
		if (known < 0 || local < 0) {
			snprintf(err, sizeof(err), "directory database: %s", mc_dir_errmsg(dir));
			rc = fail(a.cmd, err);
		} else if (add && local == 0) {
			snprintf(err, sizeof(err), "domain %s is not a local domain: add it with postern domain add",
				 domain);
			rc = fail(a.cmd, err);
		} else if (add && known) {
			snprintf(err, sizeof(err), "user %s already exists", addr);
			rc = fail(a.cmd, err);
		} else if (passwd && !known) {
			snprintf(err, sizeof(err), "no user %s", addr);
			rc = fail(a.cmd, err);
		} else if (get_hash(&a, addr, hash, sizeof(hash)) < 0) {
			rc = POSTERN_FAIL;
		} else if (add) {
			if (mc_dir_user_add(dir, addr, hash, quota, err, sizeof(err)) < 0)
				rc = fail(a.cmd, err);
			else
				printf("added user %s\n", addr);
		} else {
			if (mc_dir_user_set_hash(dir, addr, hash, err, sizeof(err)) < 0)
				rc = fail(a.cmd, err);
			else
				printf("changed the password of %s\n", addr);
		}
		explicit_bzero(hash, sizeof(hash));
	} else if (del) {
		char mailbox[MC_PATH_MAX + 400] = "";
		mc_dir_mailbox_path(&ctx->cfg, addr, mailbox, sizeof(mailbox));
		if (mc_dir_user_del(dir, addr, err, sizeof(err)) < 0)
			rc = fail(a.cmd, err);
		else if (access(mailbox, F_OK) == 0)
			printf("deleted user %s (the mailbox %s was kept)\n", addr, mailbox);
		else
			printf("deleted user %s\n", addr);
	} else {
		struct out o;
		out_start(&o, a.json, &ctx->cfg);
		if (mc_dir_user_list(dir, a.npos ? a.pos[0] : NULL, on_user, &o, err, sizeof(err)) < 0) {
			mc_buf_free(&o.b);
			rc = fail(a.cmd, err);
		} else {
			rc = out_finish(&o);
		}
	}
	mc_dir_close(dir);
	return rc;
}

/* ---- postern alias ---- */

int
cmd_alias(struct postern_ctx *ctx, int argc, char **argv)
{
	struct dargs a;
	char err[1024];
	if (parse(ctx, argc, argv, &a) < 0)
		return POSTERN_USAGE;
	bool add = strcmp(a.sub, "add") == 0, del = strcmp(a.sub, "del") == 0, list = strcmp(a.sub, "list") == 0;
	int rc;
	if (add)
		rc = want(&a, 2, 2, false, false, false);
	else if (del)
		rc = want(&a, 1, 2, false, false, false);
	else if (list)
		rc = want(&a, 0, 1, false, false, false);
	else
		return usage(&a, "unknown sub-command");
	if (rc != 0)
		return rc;

	struct mc_dir *dir = open_dir(ctx, a.cmd);
	if (dir == NULL)
		return POSTERN_FAIL;
	rc = POSTERN_OK;
	if (add) {
		if (mc_dir_alias_add(dir, a.pos[0], a.pos[1], err, sizeof(err)) < 0)
			rc = fail(a.cmd, err);
		else
			printf("added alias %s -> %s\n", a.pos[0], a.pos[1]);
	} else if (del) {
		const char *target = a.npos > 1 ? a.pos[1] : NULL;
		if (mc_dir_alias_del(dir, a.pos[0], target, err, sizeof(err)) < 0)
			rc = fail(a.cmd, err);
		else if (target)
			printf("deleted alias %s -> %s\n", a.pos[0], target);
		else
			printf("deleted every alias of %s\n", a.pos[0]);
	} else {
		struct out o;
		out_start(&o, a.json, &ctx->cfg);
		if (mc_dir_alias_list(dir, a.npos ? a.pos[0] : NULL, on_alias, &o, err, sizeof(err)) < 0) {
			mc_buf_free(&o.b);
			rc = fail(a.cmd, err);
		} else {
			rc = out_finish(&o);
		}
	}
	mc_dir_close(dir);
	return rc;
}
