/*
 * test_privdrop.c - user lookup and its errors; mc_privdrop as a no-op for
 * an ordinary user; and, only when run as root, a forked child that drops
 * to "nobody" and proves root cannot be regained.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/privdrop.h"

static void
test_lookup(void **state)
{
	struct mc_ids ids;
	char err[256];
	struct passwd *pw = getpwnam("nobody");
	assert_non_null(pw);
	uid_t nobody_uid = pw->pw_uid;
	gid_t nobody_gid = pw->pw_gid;
	assert_int_equal(mc_privdrop_lookup("nobody", NULL, &ids, err, sizeof(err)), 0);
	assert_int_equal(ids.uid, nobody_uid);
	assert_int_equal(ids.gid, nobody_gid);
	/* The primary group leads the supplementary list. */
	assert_int_equal(ids.ngroups, 1);
	assert_int_equal(ids.groups[0], nobody_gid);

	/* Extra groups are appended once each. */
	const char *extra[] = { "root", "root", NULL };
	assert_int_equal(mc_privdrop_lookup("nobody", extra, &ids, err, sizeof(err)), 0);
	assert_int_equal(ids.ngroups, nobody_gid == 0 ? 1 : 2);
	assert_int_equal(ids.groups[ids.ngroups - 1], 0);

	assert_int_equal(mc_privdrop_lookup("postern-no-such-user", NULL, &ids, err, sizeof(err)), -1);
	assert_string_equal(err, "unknown user 'postern-no-such-user'");

	const char *bad[] = { "postern-no-such-group", NULL };
	assert_int_equal(mc_privdrop_lookup("nobody", bad, &ids, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "'postern-no-such-group'"));
}

/* In a child: drop to nobody and check every id and that root cannot come back. Exit code says what failed. */
static int
child_drop(bool become_user_first)
{
	struct mc_ids ids;
	char err[256];
	if (mc_privdrop_lookup("nobody", NULL, &ids, err, sizeof(err)) < 0)
		return 10;
	if (become_user_first) {
		/* An ordinary user: mc_privdrop changes nothing and succeeds. */
		if (setgid(ids.gid) < 0 || setuid(ids.uid) < 0)
			return 11;
		struct mc_ids other = ids;
		other.uid = ids.uid + 1;
		if (mc_privdrop_is_root() || mc_privdrop(&other, err, sizeof(err)) != 0)
			return 12;
		return getuid() == ids.uid ? 0 : 13;
	}
	if (!mc_privdrop_is_root())
		return 14;
	if (mc_privdrop(&ids, err, sizeof(err)) != 0) {
		fprintf(stderr, "mc_privdrop: %s\n", err);
		return 15;
	}
	if (getuid() == 0 || geteuid() == 0 || getuid() != ids.uid || getgid() != ids.gid)
		return 16;
	if (setuid(0) == 0 || seteuid(0) == 0)
		return 17;
	gid_t groups[16];
	int n = getgroups(16, groups);
	if (n != 1 || groups[0] != ids.gid)
		return 18;
	if (mc_privdrop_is_root())
		return 19;
	return 0;
}

static int
run_child(bool become_user_first)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child_drop(become_user_first));
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void
test_not_root_noop(void **state)
{
	if (geteuid() != 0) {
		struct mc_ids ids = { .uid = 12345, .gid = 12345 };
		char err[64];
		uid_t before = getuid();
		assert_false(mc_privdrop_is_root());
		assert_int_equal(mc_privdrop(&ids, err, sizeof(err)), 0);
		assert_int_equal(getuid(), before);
		return;
	}
	/* As root: become nobody in a child first, then the same no-op path. */
	assert_int_equal(run_child(true), 0);
}

static void
test_drop_as_root(void **state)
{
	if (geteuid() != 0)
		skip();
	assert_true(mc_privdrop_is_root());
	assert_int_equal(run_child(false), 0);

	/* Dropping "to" uid 0 is refused. */
	struct mc_ids root = { .uid = 0, .gid = 0, .groups = { 0 }, .ngroups = 1 };
	char err[256];
	assert_int_equal(mc_privdrop(&root, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "root"));
	assert_int_equal(geteuid(), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_not_root_noop),
		cmocka_unit_test(test_drop_as_root),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
