/*
 * test_fsutil.c - the small file-system steps: write_all through a pipe
 * with short writes, mkdir_p modes and its errors, fs_free, fsync_dir,
 * and read_file's bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/fsutil.h"

static char tmpdir[256];

static const char *
path(const char *name)
{
	static char buf[512];
	snprintf(buf, sizeof(buf), "%s/%s", tmpdir, name);
	return buf;
}

static void
test_write_all(void **state)
{
	/* 1 MiB through a pipe (64 KiB of kernel buffer): many short writes, all bytes in order. */
	size_t n = 1024 * 1024;
	char *data = malloc(n);
	for (size_t i = 0; i < n; i++)
		data[i] = (char)(i * 7);
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		_exit(mc_write_all(p[1], data, n) == 0 ? 0 : 1);
	}
	close(p[1]);
	size_t got = 0;
	bool same = true;
	char buf[4096];
	ssize_t r;
	while ((r = read(p[0], buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < r; i++)
			same &= buf[i] == data[got + (size_t)i];
		got += (size_t)r;
	}
	close(p[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(got, n);
	assert_true(same);

	/* A write error comes back as -1 with errno. */
	assert_int_equal(pipe(p), 0);
	close(p[0]);
	signal(SIGPIPE, SIG_IGN);
	errno = 0;
	assert_int_equal(mc_write_all(p[1], "x", 1), -1);
	assert_int_equal(errno, EPIPE);
	close(p[1]);
	assert_int_equal(mc_write_all(-1, "x", 1), -1);
	assert_int_equal(errno, EBADF);
	free(data);
}

static void
test_mkdir_p(void **state)
{
	mode_t old = umask(077);
	assert_int_equal(mc_mkdir_p(path("a/b//c/"), 0750), 0);
	umask(old);
	struct stat st;
	assert_int_equal(stat(path("a/b/c"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	/* Exactly the mode asked for, whatever the umask. */
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(stat(path("a"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750);

	/* Existing directories are fine and keep their mode. */
	assert_int_equal(chmod(path("a"), 0700), 0);
	assert_int_equal(mc_mkdir_p(path("a/b/c"), 0755), 0);
	assert_int_equal(stat(path("a"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);

	/* A file in the way is an error. */
	int fd = open(path("a/file"), O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(mc_mkdir_p(path("a/file/x"), 0700), -1);
	assert_int_equal(errno, ENOTDIR);
	assert_int_equal(mc_mkdir_p(path("a/file"), 0700), -1);
	assert_int_equal(errno, ENOTDIR);
	assert_int_equal(mc_mkdir_p("", 0700), -1);

	assert_int_equal(mc_fsync_dir(path("a/b")), 0);
	assert_int_equal(mc_fsync_dir(path("a/file")), -1);
	assert_int_equal(mc_fsync_dir(path("nope")), -1);
	assert_int_equal(errno, ENOENT);
}

static void
test_fs_free(void **state)
{
	int fd = open(tmpdir, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	uint64_t bytes = 0;
	assert_int_equal(mc_fs_free(fd, &bytes), 0);
	assert_true(bytes > 0);
	close(fd);
	assert_int_equal(mc_fs_free(-1, &bytes), -1);
}

static void
test_read_file(void **state)
{
	int fd = open(path("f"), O_CREAT | O_WRONLY | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(mc_write_all(fd, "hello\nworld\n", 12), 0);
	close(fd);

	char *data;
	size_t len;
	assert_int_equal(mc_read_file(path("f"), 12, &data, &len), 0);
	assert_int_equal(len, 12);
	assert_string_equal(data, "hello\nworld\n");
	free(data);

	/* One byte over the bound: refused, nothing returned. */
	assert_int_equal(mc_read_file(path("f"), 11, &data, &len), -1);
	assert_int_equal(errno, EFBIG);
	assert_null(data);

	/* Empty file. */
	fd = open(path("empty"), O_CREAT | O_WRONLY | O_TRUNC, 0600);
	close(fd);
	assert_int_equal(mc_read_file(path("empty"), 100, &data, NULL), 0);
	assert_string_equal(data, "");
	free(data);

	assert_int_equal(mc_read_file(path("missing"), 100, &data, &len), -1);
	assert_int_equal(errno, ENOENT);

	/* A file without a size (a pipe-like source) is bounded while reading. */
	assert_int_equal(mc_read_file("/proc/self/status", 16, &data, &len), -1);
	assert_int_equal(errno, EFBIG);
	assert_int_equal(mc_read_file("/proc/self/status", 1 << 20, &data, &len), 0);
	assert_true(len > 16);
	assert_non_null(strstr(data, "Name:"));
	free(data);
}

static int
setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_fsutil.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_all),
		cmocka_unit_test(test_mkdir_p),
		cmocka_unit_test(test_fs_free),
		cmocka_unit_test(test_read_file),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
