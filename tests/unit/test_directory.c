/*
 * test_directory.c - the directory: domains, users, aliases, catch-all,
 * +tag, alias recursion and loops, case, unsafe local parts, postmaster,
 * mailbox paths; and that a second handle (the tool) sees changes at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/directory.h"
#include "util/log.h"

#define H "$6$saltsaltsalt$zB6Twk2LCyOr9nIp4jb.XseXmAlBM2v/3cTZ36xVcA2fqlqzrmMgwUz0PEn38G8TfXZrIzS3g4itia3DUjXBb0"

static struct mc_config cfg;
static char tmpdir[256];

static int
setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_directory.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.global.state_dir, sizeof(cfg.global.state_dir), "%s/state", tmpdir);
	char err[256];
	struct mc_dir *dir = mc_dir_open(&cfg, 1000, err, sizeof(err));
	if (dir == NULL)
		fail_msg("open: %s", err);
	*state = dir;
	return 0;
}

static int
teardown(void **state)
{
	mc_dir_close(*state);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void
ok(int rc, const char *err)
{
	if (rc != 0)
		fail_msg("unexpected error: %s", err);
}

static void
add_domain(struct mc_dir *dir, const char *d)
{
	char err[256];
	ok(mc_dir_domain_add(dir, d, err, sizeof(err)), err);
}

static void
add_user(struct mc_dir *dir, const char *a)
{
	char err[256];
	ok(mc_dir_user_add(dir, a, H, 0, err, sizeof(err)), err);
}

static void
add_alias(struct mc_dir *dir, const char *s, const char *t)
{
	char err[256];
	ok(mc_dir_alias_add(dir, s, t, err, sizeof(err)), err);
}

static enum mc_rcpt_result
rcpt(struct mc_dir *dir, const char *a, char *canon)
{
	static char buf[400];
	return mc_dir_rcpt(dir, a, canon ? canon : buf, 400);
}

/* Expansion as one string: "L:addr:mailbox-relative-to-state R:addr U:addr", in result order. */
static const char *
expand(struct mc_dir *dir, const char *a)
{
	static struct mc_dest d[MC_DIR_EXPAND_MAX];
	static char out[4096];
	unsigned n = 99;
	if (mc_dir_expand(dir, a, d, MC_DIR_EXPAND_MAX, &n) != 0)
		return "ERROR";
	out[0] = '\0';
	size_t sl = strlen(cfg.global.state_dir);
	for (unsigned i = 0; i < n; i++) {
		char one[1600];
		if (d[i].kind == MC_DEST_LOCAL) {
			assert_memory_equal(d[i].mailbox, cfg.global.state_dir, sl);
			snprintf(one, sizeof(one), "L:%s:%s", d[i].address, d[i].mailbox + sl + 1);
		} else {
			assert_string_equal(d[i].mailbox, "");
			snprintf(one, sizeof(one), "%s:%s", d[i].kind == MC_DEST_REMOTE ? "R" : "U", d[i].address);
		}
		if (out[0])
			strcat(out, " ");
		strcat(out, one);
	}
	return out;
}

static void
test_domains(void **state)
{
	struct mc_dir *dir = *state;
	char err[256];
	add_domain(dir, "Example.TEST");
	assert_int_equal(mc_dir_domain_add(dir, "example.test", err, sizeof(err)), -1);
	assert_string_equal(err, "domain example.test already exists");
	assert_int_equal(mc_dir_domain_exists(dir, "EXAMPLE.test"), 1);
	assert_int_equal(mc_dir_domain_exists(dir, "other.test"), 0);
	const char *bad[] = { "", "-a.test", "a-.test", "a..test", ".a.test", "a.test.", "exa mple.test", "a/b.test",
			      "a_b.test", NULL };
	for (int i = 0; bad[i]; i++) {
		assert_int_equal(mc_dir_domain_add(dir, bad[i], err, sizeof(err)), -1);
		assert_non_null(strstr(err, "not a valid domain name"));
	}
	add_domain(dir, "bücher.test");  /* IDN as written */
	assert_int_equal(mc_dir_domain_exists(dir, "bücher.test"), 1);

	add_user(dir, "alice@example.test");
	add_alias(dir, "@example.test", "alice@example.test");
	assert_int_equal(mc_dir_domain_del(dir, "example.test", false, err, sizeof(err)), -1);
	assert_string_equal(err, "domain example.test still has 1 user and 1 alias: delete them first, or use "
				 "--force to delete them with it (mailboxes stay on disk)");
	assert_int_equal(mc_dir_domain_exists(dir, "example.test"), 1);
	ok(mc_dir_domain_del(dir, "example.test", true, err, sizeof(err)), err);
	assert_int_equal(mc_dir_domain_exists(dir, "example.test"), 0);
	/* Its users and aliases went with it. */
	add_domain(dir, "example.test");
	assert_int_equal(rcpt(dir, "alice@example.test", NULL), MC_RCPT_UNKNOWN);
	assert_int_equal(mc_dir_domain_del(dir, "none.test", false, err, sizeof(err)), -1);
	assert_string_equal(err, "domain none.test is not a local domain");
	ok(mc_dir_domain_del(dir, "bücher.test", false, err, sizeof(err)), err);
}

struct listing {
	char text[2048];
};

static void
on_domain(void *arg, const struct mc_dir_domain *d)
{
	struct listing *l = arg;
	char one[300];
	snprintf(one, sizeof(one), "%s(%u,%u) ", d->name, d->users, d->aliases);
	strcat(l->text, one);
}

static void
on_user(void *arg, const struct mc_dir_user *u)
{
	struct listing *l = arg;
	char one[400];
	snprintf(one, sizeof(one), "%s:%llu ", u->address, (unsigned long long)u->quota);
	strcat(l->text, one);
}

static void
on_alias(void *arg, const struct mc_dir_alias *a)
{
	struct listing *l = arg;
	char one[700];
	snprintf(one, sizeof(one), "%s>%s ", a->source, a->target);
	strcat(l->text, one);
}

static void
test_users_and_listings(void **state)
{
	struct mc_dir *dir = *state;
	char err[256], canon[MC_DIR_ADDR_MAX + 1], hash[400];
	struct mc_dir_user u;

	assert_int_equal(mc_dir_user_add(dir, "alice@example.test", H, 0, err, sizeof(err)), -1);
	assert_string_equal(err, "domain example.test is not a local domain: add it with postern domain add");
	add_domain(dir, "example.test");
	add_domain(dir, "b.test");
	assert_int_equal(mc_dir_user_add(dir, "Alice@Example.Test", H, 1048576, err, sizeof(err)), 0);
	assert_int_equal(mc_dir_user_add(dir, "alice@example.test", H, 0, err, sizeof(err)), -1);
	assert_string_equal(err, "user alice@example.test already exists");
	add_user(dir, "bob@b.test");
	add_user(dir, "carol@example.test");

	assert_int_equal(mc_dir_user_get(dir, "ALICE@example.TEST", &u, canon, hash, sizeof(hash)), 1);
	assert_string_equal(u.address, "alice@example.test");
	assert_string_equal(hash, H);
	assert_int_equal(u.quota, 1048576);
	assert_int_equal(mc_dir_user_get(dir, "alice+x@example.test", &u, canon, hash, sizeof(hash)), 0);
	assert_int_equal(mc_dir_user_get(dir, "nobody@example.test", &u, canon, hash, sizeof(hash)), 0);

	ok(mc_dir_user_set_hash(dir, "alice@EXAMPLE.test", "$y$new", err, sizeof(err)), err);
	assert_int_equal(mc_dir_user_get(dir, "alice@example.test", &u, canon, hash, sizeof(hash)), 1);
	assert_string_equal(hash, "$y$new");
	assert_int_equal(mc_dir_user_set_hash(dir, "zed@example.test", H, err, sizeof(err)), -1);
	assert_string_equal(err, "no user zed@example.test");

	struct listing l = { "" };
	ok(mc_dir_user_list(dir, NULL, on_user, &l, err, sizeof(err)), err);
	assert_string_equal(l.text, "alice@example.test:1048576 bob@b.test:0 carol@example.test:0 ");
	l.text[0] = '\0';
	ok(mc_dir_user_list(dir, "EXAMPLE.test", on_user, &l, err, sizeof(err)), err);
	assert_string_equal(l.text, "alice@example.test:1048576 carol@example.test:0 ");

	add_alias(dir, "info@example.test", "alice@example.test");
	add_alias(dir, "info@example.test", "Someone@Far.Away.Test");
	add_alias(dir, "@b.test", "bob@b.test");
	assert_int_equal(mc_dir_alias_add(dir, "info@example.test", "alice@example.test", err, sizeof(err)), -1);
	assert_string_equal(err, "alias info@example.test -> alice@example.test already exists");
	assert_int_equal(mc_dir_alias_add(dir, "x@nowhere.test", "alice@example.test", err, sizeof(err)), -1);
	assert_string_equal(err, "domain nowhere.test is not a local domain: add it with postern domain add");
	assert_int_equal(mc_dir_alias_add(dir, "x@example.test", "@b.test", err, sizeof(err)), -1);
	assert_int_equal(mc_dir_alias_add(dir, "x@example.test", "nobody", err, sizeof(err)), -1);
	l.text[0] = '\0';
	ok(mc_dir_alias_list(dir, NULL, on_alias, &l, err, sizeof(err)), err);
	/* A remote target keeps its local part as written, its domain lowercased. */
	assert_string_equal(l.text, "@b.test>bob@b.test info@example.test>Someone@far.away.test "
				    "info@example.test>alice@example.test ");
	l.text[0] = '\0';
	ok(mc_dir_alias_list(dir, "b.test", on_alias, &l, err, sizeof(err)), err);
	assert_string_equal(l.text, "@b.test>bob@b.test ");

	l.text[0] = '\0';
	ok(mc_dir_domain_list(dir, on_domain, &l, err, sizeof(err)), err);
	assert_string_equal(l.text, "b.test(1,1) example.test(2,2) ");

	ok(mc_dir_alias_del(dir, "info@example.test", "Someone@far.away.test", err, sizeof(err)), err);
	assert_int_equal(mc_dir_alias_del(dir, "info@example.test", "Someone@far.away.test", err, sizeof(err)), -1);
	assert_string_equal(err, "no alias info@example.test -> Someone@far.away.test");
	ok(mc_dir_alias_del(dir, "INFO@example.test", NULL, err, sizeof(err)), err);
	assert_int_equal(mc_dir_alias_del(dir, "info@example.test", NULL, err, sizeof(err)), -1);
	assert_string_equal(err, "no alias info@example.test");

	ok(mc_dir_user_del(dir, "carol@example.test", err, sizeof(err)), err);
	assert_int_equal(mc_dir_user_del(dir, "carol@example.test", err, sizeof(err)), -1);
	assert_string_equal(err, "no user carol@example.test");
}

static void
test_unsafe_local_parts(void **state)
{
	struct mc_dir *dir = *state;
	char err[256];
	add_domain(dir, "example.test");
	const char *bad[] = { "../x@example.test", ".x@example.test", "x.@example.test", "a..b@example.test",
			      "a/b@example.test", "a+b@example.test", "a b@example.test", "\"ab\"@example.test",
			      "a\\b@example.test", "a\x01@example.test", "@example.test", "noat",
			      "x@example.test@", NULL };
	for (int i = 0; bad[i]; i++) {
		if (mc_dir_user_add(dir, bad[i], H, 0, err, sizeof(err)) == 0)
			fail_msg("accepted unsafe user %s", bad[i]);
	}
	char long_local[80];
	memset(long_local, 'a', 65);
	snprintf(long_local + 65, sizeof(long_local) - 65, "@example.test");
	assert_int_equal(mc_dir_user_add(dir, long_local, H, 0, err, sizeof(err)), -1);
	long_local[64] = '@';
	snprintf(long_local + 64, sizeof(long_local) - 64, "@example.test");
	ok(mc_dir_user_add(dir, long_local, H, 0, err, sizeof(err)), err);
	assert_int_equal(mc_dir_user_add(dir, "a+b@example.test", H, 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "+ separates a subaddress"));
	ok(mc_dir_user_add(dir, "first.last_1-x@example.test", H, 0, err, sizeof(err)), err);
}

static void
test_rcpt(void **state)
{
	struct mc_dir *dir = *state;
	char canon[400];
	add_domain(dir, "example.test");
	add_domain(dir, "c.test");
	add_user(dir, "alice@example.test");
	add_alias(dir, "sales@example.test", "alice@example.test");
	add_alias(dir, "news+daily@example.test", "alice@example.test");

	assert_int_equal(rcpt(dir, "alice@example.test", canon), MC_RCPT_LOCAL);
	assert_string_equal(canon, "alice@example.test");
	assert_int_equal(rcpt(dir, "ALICE@Example.Test", canon), MC_RCPT_LOCAL);
	assert_string_equal(canon, "alice@example.test");
	assert_int_equal(rcpt(dir, "Alice+Lists@example.test", canon), MC_RCPT_LOCAL);
	assert_string_equal(canon, "alice+lists@example.test");
	assert_int_equal(rcpt(dir, "sales@example.test", canon), MC_RCPT_LOCAL);
	assert_int_equal(rcpt(dir, "sales+x@example.test", canon), MC_RCPT_LOCAL);   /* untagged alias */
	assert_int_equal(rcpt(dir, "news+daily@example.test", canon), MC_RCPT_LOCAL); /* exact alias with + */
	assert_int_equal(rcpt(dir, "news@example.test", canon), MC_RCPT_UNKNOWN);
	assert_int_equal(rcpt(dir, "bob@example.test", canon), MC_RCPT_UNKNOWN);
	assert_string_equal(canon, "bob@example.test");
	assert_int_equal(rcpt(dir, "+x@example.test", canon), MC_RCPT_UNKNOWN);
	assert_int_equal(rcpt(dir, "Bob@Remote.TEST", canon), MC_RCPT_REMOTE);
	assert_string_equal(canon, "Bob@remote.test");
	assert_int_equal(rcpt(dir, "bob", canon), MC_RCPT_UNKNOWN);

	/* catch-all */
	assert_int_equal(rcpt(dir, "anything@c.test", canon), MC_RCPT_UNKNOWN);
	add_alias(dir, "@c.test", "alice@example.test");
	assert_int_equal(rcpt(dir, "anything@C.test", canon), MC_RCPT_LOCAL);
	assert_string_equal(canon, "anything@c.test");
}

static void
test_postmaster(void **state)
{
	struct mc_dir *dir = *state;
	char err[256];
	add_domain(dir, "example.test");
	add_domain(dir, "empty.test");
	/* No user anywhere: nowhere to deliver. */
	assert_int_equal(rcpt(dir, "postmaster@example.test", NULL), MC_RCPT_UNKNOWN);
	assert_int_equal(rcpt(dir, "postmaster", NULL), MC_RCPT_UNKNOWN);
	assert_string_equal(expand(dir, "postmaster@example.test"), "U:postmaster@example.test");

	add_domain(dir, "a.test");
	add_user(dir, "zed@example.test");
	add_user(dir, "bob@example.test");
	add_user(dir, "aaron@a.test");
	/* The first user of its own domain, alphabetically. */
	assert_int_equal(rcpt(dir, "Postmaster@Example.test", NULL), MC_RCPT_LOCAL);
	assert_string_equal(expand(dir, "postmaster@example.test"), "L:postmaster@example.test:mail/example.test/bob");
	assert_string_equal(expand(dir, "postmaster+x@example.test"),
			    "L:postmaster+x@example.test:mail/example.test/bob");
	/* A domain without users: the first user of the directory. */
	assert_int_equal(rcpt(dir, "postmaster@empty.test", NULL), MC_RCPT_LOCAL);
	assert_string_equal(expand(dir, "postmaster@empty.test"), "L:postmaster@empty.test:mail/a.test/aaron");
	/* RCPT TO:<Postmaster> without a domain. */
	assert_int_equal(rcpt(dir, "Postmaster", NULL), MC_RCPT_LOCAL);
	assert_string_equal(expand(dir, "PostMaster"), "L:aaron@a.test:mail/a.test/aaron");
	assert_int_equal(rcpt(dir, "webmaster", NULL), MC_RCPT_UNKNOWN);
	/* Its own alias wins. */
	add_alias(dir, "postmaster@example.test", "zed@example.test");
	assert_string_equal(expand(dir, "postmaster@example.test"), "L:zed@example.test:mail/example.test/zed");
	ok(mc_dir_alias_del(dir, "postmaster@example.test", NULL, err, sizeof(err)), err);
	/* And so does a user of that name. */
	add_user(dir, "postmaster@example.test");
	assert_string_equal(expand(dir, "postmaster@example.test"),
			    "L:postmaster@example.test:mail/example.test/postmaster");
}

static void
test_expand(void **state)
{
	struct mc_dir *dir = *state;
	add_domain(dir, "example.test");
	add_domain(dir, "c.test");
	add_domain(dir, "d.test");
	add_user(dir, "alice@example.test");
	add_user(dir, "bob@example.test");

	assert_string_equal(expand(dir, "Alice@Example.test"), "L:alice@example.test:mail/example.test/alice");
	/* +tag: delivered to the user's own mailbox, the address kept whole (for Delivered-To). */
	assert_string_equal(expand(dir, "Alice+News@example.test"),
			    "L:alice+news@example.test:mail/example.test/alice");
	assert_string_equal(expand(dir, "carol@example.test"), "U:carol@example.test");
	assert_string_equal(expand(dir, "Carol@Far.test"), "R:Carol@far.test");

	/* Several targets, one remote; two ways into one mailbox deliver once. */
	add_alias(dir, "team@example.test", "alice@example.test");
	add_alias(dir, "team@example.test", "bob@example.test");
	add_alias(dir, "team@example.test", "x@far.test");
	assert_string_equal(expand(dir, "team@example.test"),
			    "L:alice@example.test:mail/example.test/alice L:bob@example.test:mail/example.test/bob "
			    "R:x@far.test");
	add_alias(dir, "team@example.test", "alice+dup@example.test");
	assert_string_equal(expand(dir, "team@example.test"),
			    "L:alice+dup@example.test:mail/example.test/alice L:bob@example.test:mail/example.test/bob "
			    "R:x@far.test");

	/* Recursion. */
	add_alias(dir, "all@example.test", "team@example.test");
	add_alias(dir, "all@example.test", "bob@example.test");
	assert_string_equal(expand(dir, "all+tag@example.test"),
			    "L:bob@example.test:mail/example.test/bob L:alice+dup@example.test:mail/example.test/alice "
			    "R:x@far.test");

	/* An alias wins over a user of the same name; pointing back at itself keeps a copy. */
	add_alias(dir, "bob@example.test", "alice@example.test");
	assert_string_equal(expand(dir, "bob@example.test"), "L:alice@example.test:mail/example.test/alice");
	add_alias(dir, "bob@example.test", "bob@example.test");
	assert_string_equal(expand(dir, "bob@example.test"),
			    "L:alice@example.test:mail/example.test/alice L:bob@example.test:mail/example.test/bob");

	/* A loop between aliases that are no users ends; nothing left: unknown. */
	add_alias(dir, "l1@example.test", "l2@example.test");
	add_alias(dir, "l2@example.test", "l1@example.test");
	assert_string_equal(expand(dir, "l1@example.test"), "U:l1@example.test");
	add_alias(dir, "l2@example.test", "alice@example.test");
	assert_string_equal(expand(dir, "l1@example.test"), "L:alice@example.test:mail/example.test/alice");

	/* Depth limit: a chain of 12 aliases is cut. */
	for (int i = 0; i < 12; i++) {
		char s[64], t[64];
		snprintf(s, sizeof(s), "c%d@example.test", i);
		snprintf(t, sizeof(t), "c%d@example.test", i + 1);
		add_alias(dir, s, t);
	}
	add_alias(dir, "c12@example.test", "alice@example.test");
	assert_string_equal(expand(dir, "c3@example.test"), "L:alice@example.test:mail/example.test/alice");
	assert_string_equal(expand(dir, "c0@example.test"), "U:c0@example.test");

	/* Catch-all comes last; "@domain" targets keep the local part. */
	add_alias(dir, "@c.test", "bob@example.test");
	add_user(dir, "carol@c.test");
	assert_string_equal(expand(dir, "carol@c.test"), "L:carol@c.test:mail/c.test/carol");
	assert_string_equal(expand(dir, "carol+x@c.test"), "L:carol+x@c.test:mail/c.test/carol");
	assert_string_equal(expand(dir, "who@c.test"),
			    "L:alice@example.test:mail/example.test/alice L:bob@example.test:mail/example.test/bob");
	add_alias(dir, "@d.test", "@example.test");
	assert_string_equal(expand(dir, "Alice@d.test"), "L:alice@example.test:mail/example.test/alice");
	assert_string_equal(expand(dir, "nobody@d.test"), "U:nobody@example.test");
	/* A catch-all pointing back into its own domain does not loop. */
	add_alias(dir, "@d.test", "@d.test");
	assert_string_equal(expand(dir, "nobody@d.test"), "U:nobody@example.test");
}

static void
test_expand_bounded(void **state)
{
	struct mc_dir *dir = *state;
	struct mc_dest d[4];
	unsigned n = 7;
	add_domain(dir, "example.test");
	for (int i = 0; i < 5; i++) {
		char t[64];
		snprintf(t, sizeof(t), "r%d@far.test", i);
		add_alias(dir, "list@example.test", t);
	}
	assert_int_equal(mc_dir_expand(dir, "list@example.test", d, 4, &n), -1);
	assert_int_equal(n, 0);
	assert_int_equal(mc_dir_expand(dir, "r@far.test", d, 4, &n), 0);
	assert_int_equal(n, 1);
}

static void
test_mailbox_path_and_live_changes(void **state)
{
	struct mc_dir *dir = *state;
	char p[MC_PATH_MAX], want[MC_PATH_MAX + 64], err[256];
	assert_int_equal(mc_dir_mailbox_path(&cfg, "Alice@Example.TEST", p, sizeof(p)), 0);
	snprintf(want, sizeof(want), "%s/mail/example.test/alice", cfg.global.state_dir);
	assert_string_equal(p, want);
	assert_int_equal(mc_dir_mailbox_path(&cfg, "../x@example.test", p, sizeof(p)), -1);
	assert_int_equal(mc_dir_mailbox_path(&cfg, "a/b@example.test", p, sizeof(p)), -1);
	assert_int_equal(mc_dir_mailbox_path(&cfg, "a@../etc", p, sizeof(p)), -1);
	char small[10];
	assert_int_equal(mc_dir_mailbox_path(&cfg, "alice@example.test", small, sizeof(small)), -1);

	/* A second handle, as the tool has, changes what the first sees at once. */
	struct mc_dir *tool = mc_dir_open(&cfg, 1000, err, sizeof(err));
	assert_non_null(tool);
	assert_int_equal(rcpt(dir, "alice@example.test", NULL), MC_RCPT_REMOTE);
	add_domain(tool, "example.test");
	assert_int_equal(rcpt(dir, "alice@example.test", NULL), MC_RCPT_UNKNOWN);
	add_user(tool, "alice@example.test");
	assert_int_equal(rcpt(dir, "alice@example.test", NULL), MC_RCPT_LOCAL);
	ok(mc_dir_user_del(tool, "alice@example.test", err, sizeof(err)), err);
	assert_int_equal(rcpt(dir, "alice@example.test", NULL), MC_RCPT_UNKNOWN);
	mc_dir_close(tool);

	char dbpath[MC_PATH_MAX + 32];
	snprintf(dbpath, sizeof(dbpath), "%s/directory.sqlite", cfg.global.state_dir);
	assert_int_equal(access(dbpath, R_OK), 0);
}

int
main(void)
{
	mc_log_init("test_directory", MC_LOG_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_domains, setup, teardown),
		cmocka_unit_test_setup_teardown(test_users_and_listings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsafe_local_parts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rcpt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_postmaster, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expand, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expand_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mailbox_path_and_live_changes, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
