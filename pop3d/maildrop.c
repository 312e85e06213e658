/*
 * maildrop.c - the mailbox as one POP3 session sees it (RFC 1939 §8).
 *
 * At login the user's INBOX list comes from the index (index.sqlite via
 * mail/mailstore): UIDs, files and vsizes, no Maildir scan. The list is
 * fixed for the session: message numbers are positions in it, mail that
 * arrives later is seen at the next login. The store's POP3 lock is held
 * exclusive from login to the end (mailstore.h: a second POP3 session
 * gets [IN-USE], IMAP sessions leave expunges for later), so no message
 * of the list disappears meanwhile; a file that moved (IMAP changed its
 * flags) is found again by its UID.
 *
 * UIDL is "<uidvalidity>.<uid>" of the message in INBOX: the message's
 * IMAP identity, stable across sessions and as long as IMAP's UIDs are
 * (a reindex keeps them; when UIDVALIDITY has to change, IMAP clients
 * download again too, and so do POP3 clients: they cannot tell the
 * difference either). Short and within RFC 1939's 0x21..0x7E, unlike
 * a Maildir base name from another tool, which may not be.
 *
 * Owns the store connection, the lock and the list. Deletes only in
 * pop3_maildrop_commit, which the UPDATE state alone calls.
 */
#include "pop3d/pop3d.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/mailstore.h"
#include "util/log.h"

struct collect {
	struct pop3_maildrop *m;
	size_t cap;
	bool oom;
};

static int
collect_msg(void *arg, const struct mc_store_msg *msg)
{
	struct collect *c = arg;
	struct pop3_maildrop *m = c->m;
	if (m->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		struct pop3_msg *p = realloc(m->msgs, cap * sizeof(*p));
		if (p == NULL) {
			c->oom = true;
			return 1;
		}
		m->msgs = p;
		c->cap = cap;
	}
	struct pop3_msg *pm = &m->msgs[m->n];
	pm->file = strdup(msg->file);
	if (pm->file == NULL) {
		c->oom = true;
		return 1;
	}
	pm->uid = msg->uid;
	pm->vsize = msg->vsize;
	pm->deleted = false;
	m->total += msg->vsize;
	m->n++;
	return 0;
}

static void
free_list(struct pop3_maildrop *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->msgs[i].file);
	free(m->msgs);
	m->msgs = NULL;
	m->n = 0;
}

int
pop3_maildrop_open(struct pop3_maildrop *m, const char *dir, char *err, size_t errsz)
{
	struct mc_store_mailbox mb;
	memset(m, 0, sizeof(*m));
	m->lock_fd = -1;
	/* A user who never got mail has no directory yet: an empty maildrop, made as the store makes it. */
	m->store = mc_store_open(dir, MC_STORE_CREATE, err, errsz);
	if (m->store == NULL)
		return -1;
	m->lock_fd = mc_store_lock(m->store, true);
	if (m->lock_fd < 0) {
		int e = errno;
		if (e == EWOULDBLOCK) {
			pop3_maildrop_close(m);
			return 1;
		}
		snprintf(err, errsz, "%s/%s: %s", dir, MC_STORE_LOCK_NAME, strerror(e));
		pop3_maildrop_close(m);
		return -1;
	}
	if (mc_store_mailbox_get(m->store, "INBOX", &mb) < 0 ||
	    mc_store_mailbox_dir(m->store, "INBOX", m->dir, sizeof(m->dir)) < 0) {
		snprintf(err, errsz, "%s: no INBOX in the index", dir);
		pop3_maildrop_close(m);
		return -1;
	}
	m->uidvalidity = mb.uidvalidity;
	struct collect c = { .m = m };
	if (mc_store_messages(m->store, "INBOX", 1, collect_msg, &c) < 0 || c.oom) {
		snprintf(err, errsz, "%s: %s", dir, c.oom ? "out of memory" : "cannot read the index");
		pop3_maildrop_close(m);
		return -1;
	}
	return 0;
}

void
pop3_maildrop_close(struct pop3_maildrop *m)
{
	free_list(m);
	mc_store_unlock(m->lock_fd);
	m->lock_fd = -1;
	mc_store_close(m->store);
	m->store = NULL;
}

int
pop3_maildrop_commit(struct pop3_maildrop *m, char *err, size_t errsz)
{
	if (m->ndeleted == 0)
		return 0;
	uint32_t *uids = malloc(m->ndeleted * sizeof(*uids));
	if (uids == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	size_t n = 0;
	for (size_t i = 0; i < m->n && n < m->ndeleted; i++)
		if (m->msgs[i].deleted)
			uids[n++] = m->msgs[i].uid;
	int rc = mc_store_expunge(m->store, "INBOX", uids, n, err, errsz);
	free(uids);
	return rc;
}

struct find {
	uint32_t uid;
	char *file;
};

static int
find_file(void *arg, const struct mc_store_msg *msg)
{
	struct find *f = arg;
	if (msg->uid == f->uid)
		f->file = strdup(msg->file);
	return 1;   /* the first row at or after uid is the only one wanted */
}

int
pop3_maildrop_open_msg(struct pop3_maildrop *m, size_t i)
{
	char path[sizeof(m->dir) + 512];
	struct pop3_msg *pm = &m->msgs[i];
	snprintf(path, sizeof(path), "%s/%s", m->dir, pm->file);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	/* Renamed since login (IMAP set a flag, new/ to cur/): the index knows where it is now. */
	struct find f = { .uid = pm->uid };
	if (mc_store_messages(m->store, "INBOX", pm->uid, find_file, &f) < 0 || f.file == NULL) {
		errno = ENOENT;
		return -1;
	}
	free(pm->file);
	pm->file = f.file;
	snprintf(path, sizeof(path), "%s/%s", m->dir, pm->file);
	return open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

void
pop3_maildrop_uidl(const struct pop3_maildrop *m, size_t i, char *out, size_t outsz)
{
	snprintf(out, outsz, "%" PRIu32 ".%" PRIu32, m->uidvalidity, m->msgs[i].uid);
}
