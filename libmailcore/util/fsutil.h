/*
 * fsutil.h - small file-system steps that durability depends on.
 *
 * Every write is checked; a short write is an error, never silently retried
 * forever. Callers own the descriptors they pass.
 */
#ifndef MC_FSUTIL_H
#define MC_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* write() all of p, retrying on EINTR and short writes; -1 with errno on failure. */
int mc_write_all(int fd, const void *p, size_t n);
/* fsync the directory at path. */
int mc_fsync_dir(const char *path);
/* mkdir -p with mode for each created component. */
int mc_mkdir_p(const char *path, mode_t mode);
/* Bytes available to unprivileged users on the file system of fd (fstatvfs). */
int mc_fs_free(int fd, uint64_t *bytes);
/* One pread() at off, retried on EINTR: bytes read, 0 at end of file, or -1 with errno. */
ssize_t mc_pread_at(int fd, void *buf, size_t n, uint64_t off);
/* Read a whole small file (bounded by max) into a malloc'd NUL-terminated buffer. */
int mc_read_file(const char *path, size_t max, char **out, size_t *outlen);

#endif
