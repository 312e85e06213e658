/*
 * store_fx.h - the fixture of the mail-store unit tests: a temporary
 * directory holding one user's store and a source file to deliver from.
 *
 * Included by one test program each (static functions); never by library
 * code. The directory is removed by teardown.
 */
#ifndef TEST_STORE_FX_H
#define TEST_STORE_FX_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/mailstore.h"

struct fx {
	char root[256];
	char store[300];     /* root/mail/example.net/bob */
	int src;             /* a "queue file": junk (may be ""), then the body */
};

/* For a cmocka setup: make the directory /tmp/NAME.XXXXXX and the source file. */
static int
store_fx_setup(void **state, const char *name, const char *junk, const char *content)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -1;
	snprintf(f->root, sizeof(f->root), "/tmp/%s.XXXXXX", name);
	if (mkdtemp(f->root) == NULL)
		return -1;
	snprintf(f->store, sizeof(f->store), "%s/mail/example.net/bob", f->root);
	char p[300];
	snprintf(p, sizeof(p), "%s/queuefile", f->root);
	f->src = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (f->src < 0 || write(f->src, junk, strlen(junk)) != (ssize_t)strlen(junk) ||
	    write(f->src, content, strlen(content)) != (ssize_t)strlen(content))
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	close(f->src);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static struct mc_store *
open_store(struct fx *f)
{
	char err[256] = "";
	struct mc_store *s = mc_store_open(f->store, MC_STORE_CREATE, err, sizeof(err));
	if (s == NULL)
		fail_msg("open: %s", err);
	return s;
}

#endif
