/*
 * setup.c - make an instance's users and its state layout (postern_prepare).
 *
 * Called by `postern up` before any daemon starts, and by the commands
 * that write state (user, domain, alias) before they touch it. As root it
 * creates the missing system users and the admin group with
 * useradd/groupadd (run with a clean environment, never through a shell)
 * and gives the top-level directories of COMMON.md's table their owners
 * and modes; as an ordinary user it creates the same directories for
 * itself. It fixes only those directories: it never recurses into the
 * mail store or the queue, and never follows a symbolic link it chowns.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "postern.h"
#include "util/fsutil.h"
#include "util/log.h"

/* A clean environment for useradd/groupadd: nothing of the caller's leaks in. */
static char env_path[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
static char env_lang[] = "LC_ALL=C";
static char *const clean_env[] = { env_path, env_lang, NULL };

/* Names we hand to useradd as arguments: never an option, never odd bytes. */
static bool
name_ok(const char *s)
{
	if (s[0] == '\0' || s[0] == '-' || strlen(s) > 32)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '_' || *p == '-' || *p == '.'))
			return false;
	return true;
}

static const char *
find_tool(const char *name, char *buf, size_t bufsz)
{
	static const char *const dirs[] = { "/usr/sbin", "/sbin", "/usr/bin", "/bin" };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(buf, bufsz, "%s/%s", dirs[i], name);
		if (access(buf, X_OK) == 0)
			return buf;
	}
	return NULL;
}

/* Run argv[0] (found in the system directories) and wait for it; -1 with err. */
static int
run_tool(char *const argv[], const char *what, char *err, size_t errsz)
{
	char path[256];
	if (find_tool(argv[0], path, sizeof(path)) == NULL) {
		snprintf(err, errsz, "%s: %s not found in /usr/sbin, /sbin, /usr/bin, /bin", what, argv[0]);
		return -1;
	}
	pid_t pid;
	int rc = posix_spawn(&pid, path, NULL, NULL, argv, clean_env);
	if (rc != 0) {
		snprintf(err, errsz, "%s: cannot run %s: %s", what, path, strerror(rc));
		return -1;
	}
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			snprintf(err, errsz, "%s: waiting for %s: %s", what, path, strerror(errno));
			return -1;
		}
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		snprintf(err, errsz, "%s: %s exited with status %d", what, argv[0], WEXITSTATUS(status));
	else
		snprintf(err, errsz, "%s: %s killed by signal %d", what, argv[0], WTERMSIG(status));
	return -1;
}

static int
ensure_group(const char *name, char *err, size_t errsz)
{
	char what[128];
	if (!name_ok(name)) {
		snprintf(err, errsz, "group '%s': not a usable group name", name);
		return -1;
	}
	if (getgrnam(name))
		return 0;
	snprintf(what, sizeof(what), "cannot create group %s", name);
	char *argv[] = { (char *)"groupadd", (char *)"--system", (char *)name, NULL };
	if (run_tool(argv, what, err, errsz) < 0)
		return -1;
	mc_info("created group %s", name);
	return 0;
}

static int
ensure_user(const char *name, char *err, size_t errsz)
{
	char what[128];
	if (!name_ok(name)) {
		snprintf(err, errsz, "user '%s': not a usable user name", name);
		return -1;
	}
	if (getpwnam(name))
		return 0;
	snprintf(what, sizeof(what), "cannot create user %s", name);
	/* A group of that name already there (made by hand, or left over) becomes the user's group. */
#define S(x) (char *)(x)
	char *with_group[] = { S("useradd"), S("--system"), S("--no-create-home"), S("--home-dir"), S("/nonexistent"),
			       S("--shell"), S("/usr/sbin/nologin"), S("--gid"), S(name), S(name), NULL };
	char *user_group[] = { S("useradd"), S("--system"), S("--no-create-home"), S("--home-dir"), S("/nonexistent"),
			       S("--shell"), S("/usr/sbin/nologin"), S("--user-group"), S(name), NULL };
#undef S
	if (run_tool(getgrnam(name) ? with_group : user_group, what, err, errsz) < 0)
		return -1;
	if (getpwnam(name) == NULL) {
		snprintf(err, errsz, "%s: useradd succeeded but the user is not known", what);
		return -1;
	}
	mc_info("created user %s", name);
	return 0;
}

static int
user_ids(const char *name, uid_t *uid, gid_t *gid, char *err, size_t errsz)
{
	struct passwd *pw = getpwnam(name);
	if (pw == NULL) {
		snprintf(err, errsz, "user %s does not exist", name);
		return -1;
	}
	if (uid)
		*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 0;
}

/* Create path (and its parents) when missing; as root, give it exactly owner and mode. */
static int
ensure_dir(const char *path, bool root, uid_t uid, gid_t gid, mode_t mode, char *err, size_t errsz)
{
	struct stat st;
	bool existed = lstat(path, &st) == 0;
	if (existed && !S_ISDIR(st.st_mode)) {
		snprintf(err, errsz, "%s: exists and is not a directory", path);
		return -1;
	}
	if (!existed && mc_mkdir_p(path, 0755) < 0) {
		snprintf(err, errsz, "cannot create directory %s: %s", path, strerror(errno));
		return -1;
	}
	if (existed && !root)
		return 0;
	/* O_NOFOLLOW: a link planted in place of the directory is never chowned through. */
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	int rc = 0;
	if (root && fchown(fd, uid, gid) < 0) {
		snprintf(err, errsz, "cannot set the owner of %s: %s", path, strerror(errno));
		rc = -1;
	} else if (fchmod(fd, mode) < 0) {
		snprintf(err, errsz, "cannot set the mode of %s: %s", path, strerror(errno));
		rc = -1;
	}
	close(fd);
	return rc;
}

int
postern_prepare(struct postern_ctx *ctx, char *err, size_t errsz)
{
	const struct mc_config *c = &ctx->cfg;
	char queue[MC_PATH_MAX], mail[MC_PATH_MAX], tls[MC_PATH_MAX];
	mc_config_path(c, queue, sizeof(queue), "queue");
	mc_config_path(c, mail, sizeof(mail), "mail");
	mc_config_path(c, tls, sizeof(tls), "tls");

	if (geteuid() != 0) {
		/* Every daemon runs as this user: private modes are enough. */
		if (ensure_dir(c->global.state_dir, false, 0, 0, 0750, err, errsz) < 0 ||
		    ensure_dir(queue, false, 0, 0, 0700, err, errsz) < 0 ||
		    ensure_dir(mail, false, 0, 0, 0700, err, errsz) < 0 ||
		    ensure_dir(tls, false, 0, 0, 0700, err, errsz) < 0 ||
		    ensure_dir(c->global.run_dir, false, 0, 0, 0750, err, errsz) < 0)
			return -1;
		return 0;
	}

	const char *users[] = { c->resolverd.user, c->queued.user, c->smtpd.user, c->global.mail_user };
	if (ensure_group(c->global.admin_group, err, errsz) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++)
		if (ensure_user(users[i], err, errsz) < 0)
			return -1;

	uid_t q_uid, mail_uid;
	gid_t res_gid, q_gid, mail_gid;
	if (user_ids(c->resolverd.user, NULL, &res_gid, err, errsz) < 0 ||
	    user_ids(c->queued.user, &q_uid, &q_gid, err, errsz) < 0 ||
	    user_ids(c->global.mail_user, &mail_uid, &mail_gid, err, errsz) < 0)
		return -1;

	if (ensure_dir(c->global.state_dir, true, 0, res_gid, 01775, err, errsz) < 0 ||
	    ensure_dir(queue, true, q_uid, q_gid, 0700, err, errsz) < 0 ||
	    ensure_dir(mail, true, mail_uid, mail_gid, 02770, err, errsz) < 0 ||
	    ensure_dir(tls, true, 0, 0, 0700, err, errsz) < 0 ||
	    ensure_dir(c->global.run_dir, true, 0, 0, 0755, err, errsz) < 0)
		return -1;
	return 0;
}
