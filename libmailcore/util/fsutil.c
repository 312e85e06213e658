/*
 * fsutil.c - small file-system steps that durability depends on (see fsutil.h).
 *
 * Used by the queue, the mail store, the TLS key maker and the config
 * reader. Owns nothing: callers own every descriptor and buffer they pass
 * or receive. Never retries a failing call forever and never hides a short
 * write: every failure comes back as -1 with errno set.
 */
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

int
mc_write_all(int fd, const void *p, size_t n)
{
	const char *s = p;
	while (n > 0) {
		ssize_t w = write(fd, s, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (w == 0) {
			/* No progress and no error: give up rather than spin. */
			errno = EIO;
			return -1;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

ssize_t
mc_pread_at(int fd, void *buf, size_t n, uint64_t off)
{
	for (;;) {
		ssize_t r = pread(fd, buf, n, (off_t)off);
		if (r >= 0 || errno != EINTR)
			return r;
	}
}

int
mc_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	int saved = errno;
	close(fd);
	errno = saved;
	return r;
}

/* Create one directory with exactly mode; an existing directory is fine. */
static int
mkdir_one(const char *path, mode_t mode)
{
	if (mkdir(path, mode) == 0) {
		/* mkdir applies the umask and ignores set-gid; the caller asked for mode. */
		return chmod(path, mode);
	}
	if (errno != EEXIST)
		return -1;
	struct stat st;
	if (stat(path, &st) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

int
mc_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);
	if (len == 0 || len >= sizeof(buf)) {
		errno = len ? ENAMETOOLONG : ENOENT;
		return -1;
	}
	memcpy(buf, path, len + 1);
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = '\0';
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/' || p[-1] == '/')
			continue;
		*p = '\0';
		int r = mkdir_one(buf, mode);
		*p = '/';
		if (r < 0)
			return -1;
	}
	return mkdir_one(buf, mode);
}

int
mc_fs_free(int fd, uint64_t *bytes)
{
	struct statvfs vfs;
	if (fstatvfs(fd, &vfs) < 0)
		return -1;
	*bytes = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
	return 0;
}

int
mc_read_file(const char *path, size_t max, char **out, size_t *outlen)
{
	*out = NULL;
	if (outlen)
		*outlen = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) < 0)
		goto fail;
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
		errno = EFBIG;
		goto fail;
	}
	/* Read at most max+1 bytes: one more than allowed tells a file that grew. */
	size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 4096;
	if (cap > max + 1)
		cap = max + 1;
	char *data = malloc(cap + 1);
	if (data == NULL)
		goto fail;
	size_t len = 0;
	for (;;) {
		if (len == cap) {
			if (cap == max + 1)
				break;
			size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			char *nd = realloc(data, ncap + 1);
			if (nd == NULL) {
				free(data);
				goto fail;
			}
			data = nd;
			cap = ncap;
		}
		ssize_t r = read(fd, data + len, cap - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			free(data);
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len > max) {
		free(data);
		errno = EFBIG;
		goto fail;
	}
	close(fd);
	data[len] = '\0';
	*out = data;
	if (outlen)
		*outlen = len;
	return 0;
fail:;
	int saved = errno;
	close(fd);
	errno = saved;
	return -1;
}
