/*
 * auth.c - RES_AUTH: check a username and password for smtpd, pop3d and
 * imapd, behind the guard against password guessing (guard.h).
 *
 * Called from main.c's request table. The steps of one check:
 *   1. the guard's verdict for (client, account): blocked, or a delay;
 *   2. blocked: answer MC_AUTH_BLOCKED once the delay is over, without
 *      looking at the password;
 *   3. otherwise read the user's hash (the directory, on the loop) and
 *      verify the password on the libuv threadpool (yescrypt is slow by
 *      design; the loop never waits for it). An unknown user is verified
 *      against a dummy hash, so the time taken does not tell whether the
 *      account exists, and gets the same answer as a wrong password;
 *   4. tell the guard (which logs failures and blocks) and hold the answer
 *      with a uv timer until the delay since the request is over.
 * Owns the in-flight checks (a list), their work requests and timers.
 * Both are bounded: AUTH_WORK_MAX checks on the threadpool, AUTH_HELD_MAX
 * in all (held answers cost only memory; the peers' own connection limits
 * keep the real number far lower). Past a bound the answer is TEMPFAIL. A password lives only in its check, which
 * wipes it as soon as it is verified; it is never logged.
 */
#include "mail/resolver_client.h"
#include "resolverd/resolverd.h"
#include "util/log.h"
#include "util/passwd.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Password verifications queued or running on the threadpool. */
#define AUTH_WORK_MAX 256
/* Checks in flight in all, most of them answers held by the guard. */
#define AUTH_HELD_MAX 4096

struct auth_req {
	struct auth_req *prev, *next;
	struct resolverd *rd;
	struct mc_chan *ch;                  /* NULL once the channel is gone */
	uint32_t reqid;
	uint64_t started_ms;                 /* uv_now at the request */
	struct guard_verdict v;
	enum mc_auth_result result;
	bool known;                          /* the account exists */
	bool verified;                       /* the threadpool's answer */
	bool working;                        /* the work request is queued or running */
	bool timer_open;
	struct mc_resolver_auth_req req;     /* the user lowercased; the password wiped once verified */
	char service[MC_RES_SERVICE_MAX];    /* req's, safe for a log line */
	char client[MC_RES_IP_MAX];
	char user[MC_DIR_ADDR_MAX + 1];
	char canonical[MC_DIR_ADDR_MAX + 1];
	char mailbox[MC_PATH_MAX + 400];
	uint64_t quota;                      /* bytes, from the directory; 0 = none (imapd's QUOTA) */
	char hash[384];
	uv_work_t work;
	uv_timer_t timer;
};

static void
guard_limits_of(const struct mc_config *cfg, struct guard_limits *lim)
{
	lim->delay_after = cfg->resolverd.auth_delay_after;
	lim->block_after = cfg->resolverd.auth_block_after;
	lim->block_time = cfg->resolverd.auth_block_time;
}

int
auth_init(struct resolverd *rd, char *err, size_t errsz)
{
	struct guard_limits lim;
	guard_limits_of(&rd->d->cfg, &lim);
	rd->guard = guard_new(&lim, GUARD_ENTRIES_MAX, NULL);

	/* A hash of a random password nobody knows, made the way new hashes are made. */
	unsigned char rnd[24];
	char pw[sizeof(rnd) * 2 + 1];
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		snprintf(err, errsz, "no random bytes for the dummy password");
		return -1;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(pw + 2 * i, 3, "%02x", rnd[i]);
	int rc = mc_passwd_hash(pw, rd->dummy_hash, sizeof(rd->dummy_hash), err, errsz);
	explicit_bzero(pw, sizeof(pw));
	explicit_bzero(rnd, sizeof(rnd));
	return rc;
}

void
auth_reload(struct resolverd *rd, const struct mc_config *cfg)
{
	struct guard_limits lim;
	guard_limits_of(cfg, &lim);
	guard_set_limits(rd->guard, &lim);
}

static void
unlink_req(struct auth_req *a)
{
	struct resolverd *rd = a->rd;
	if (a->prev)
		a->prev->next = a->next;
	else
		rd->auths = a->next;
	if (a->next)
		a->next->prev = a->prev;
	rd->nauths--;
}

static void
free_req(struct auth_req *a)
{
	explicit_bzero(&a->req, sizeof(a->req));
	explicit_bzero(a->hash, sizeof(a->hash));
	free(a);
}

static void
timer_closed(uv_handle_t *h)
{
	free_req(h->data);
}

/* The answer goes out (if anyone still listens) and the check ends. */
static void
answer(struct auth_req *a)
{
	if (a->ch != NULL)
		mc_resolver_reply_auth_quota(a->ch, a->reqid, a->result, a->result == MC_AUTH_OK ? a->canonical : NULL,
					     a->result == MC_AUTH_OK ? a->mailbox : NULL,
					     a->result == MC_AUTH_OK ? a->quota : 0);
	unlink_req(a);
	if (a->timer_open)
		uv_close((uv_handle_t *)&a->timer, timer_closed);
	else
		free_req(a);
}

static void
on_hold_over(uv_timer_t *t)
{
	answer(t->data);
}

/* Answer once v.delay_ms have passed since the request came in. */
static void
answer_in_time(struct auth_req *a)
{
	uv_loop_t *loop = a->rd->d->loop;
	uint64_t elapsed = uv_now(loop) - a->started_ms;
	if (a->v.delay_ms == 0 || elapsed >= a->v.delay_ms || a->rd->d->stopping) {
		answer(a);
		return;
	}
	uv_timer_init(loop, &a->timer);
	a->timer.data = a;
	a->timer_open = true;
	uv_timer_start(&a->timer, on_hold_over, a->v.delay_ms - elapsed, 0);
}

/* On the threadpool: the only thing done there, with data owned by this check alone. */
static void
verify_work(uv_work_t *w)
{
	struct auth_req *a = w->data;
	a->verified = mc_passwd_verify(a->req.password, a->hash);
	explicit_bzero(a->req.password, sizeof(a->req.password));
}

static void
verify_done(uv_work_t *w, int status)
{
	struct auth_req *a = w->data;
	struct resolverd *rd = a->rd;
	a->working = false;
	rd->nworking--;
	explicit_bzero(a->req.password, sizeof(a->req.password));
	if (status != 0) {               /* cancelled by a stop */
		a->result = MC_AUTH_TEMPFAIL;
		answer(a);
		return;
	}
	if (a->known && a->verified) {
		a->result = MC_AUTH_OK;
		guard_succeeded(rd->guard, a->req.client_ip, a->req.user);
		mc_info("auth ok service=%s client=%s user=%s", a->service, a->client, a->canonical);
	} else {
		a->result = MC_AUTH_FAIL;
		guard_failed(rd->guard, a->service, a->req.client_ip, a->req.user, a->v.delay_ms);
	}
	answer_in_time(a);
}

static void
lowercase(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* Lowercase the account and make the log-safe copies. */
static void
prepare(struct auth_req *a)
{
	lowercase(a->req.user);
	mc_log_clean(a->service, sizeof(a->service), a->req.service, strlen(a->req.service));
	mc_log_clean(a->client, sizeof(a->client), a->req.client_ip, strlen(a->req.client_ip));
	mc_log_clean(a->user, sizeof(a->user), a->req.user, strlen(a->req.user));
}

void
auth_request(struct resolverd *rd, struct mc_chan *ch, struct mc_msg *m)
{
	if (rd->nauths >= AUTH_HELD_MAX || rd->nworking >= AUTH_WORK_MAX || rd->d->stopping) {
		mc_resolver_reply_auth(ch, m->reqid, MC_AUTH_TEMPFAIL, NULL, NULL);
		mc_warn("auth busy: %u checks in flight, %u verifying; answered tempfail to %s", rd->nauths,
			rd->nworking, mc_chan_peer_name(ch));
		return;
	}
	struct auth_req *a = calloc(1, sizeof(*a));
	if (a == NULL)
		mc_panic("out of memory");
	a->rd = rd;
	a->ch = ch;
	a->reqid = m->reqid;
	a->started_ms = uv_now(rd->d->loop);
	if (mc_resolver_req_auth(m, &a->req) < 0) {
		free_req(a);
		resolverd_bad_request(ch, m, "malformed RES_AUTH");
		return;
	}
	prepare(a);
	a->next = rd->auths;
	if (rd->auths)
		rd->auths->prev = a;
	rd->auths = a;
	rd->nauths++;

	guard_check(rd->guard, a->req.client_ip, a->req.user, &a->v);
	if (a->v.blocked) {
		explicit_bzero(a->req.password, sizeof(a->req.password));
		a->result = MC_AUTH_BLOCKED;
		mc_notice("auth refused service=%s client=%s user=%s reason=blocked", a->service, a->client,
			  a->user);
		answer_in_time(a);
		return;
	}

	struct mc_dir_user u;
	int r = mc_dir_user_get(rd->dir, a->req.user, &u, a->canonical, a->hash, sizeof(a->hash));
	if (r < 0) {
		mc_warn("auth tempfail service=%s client=%s user=%s: directory: %s", a->service, a->client, a->user,
			mc_dir_errmsg(rd->dir));
		a->result = MC_AUTH_TEMPFAIL;
		answer(a);
		return;
	}
	a->known = r == 1 && mc_dir_mailbox_path(&rd->d->cfg, a->canonical, a->mailbox, sizeof(a->mailbox)) == 0;
	a->quota = a->known ? u.quota : 0;
	if (!a->known)
		snprintf(a->hash, sizeof(a->hash), "%s", rd->dummy_hash);
	a->work.data = a;
	if (uv_queue_work(rd->d->loop, &a->work, verify_work, verify_done) != 0) {
		a->result = MC_AUTH_TEMPFAIL;
		answer(a);
		return;
	}
	a->working = true;
	rd->nworking++;
}

void
auth_chan_down(struct resolverd *rd, struct mc_chan *ch)
{
	for (struct auth_req *a = rd->auths; a != NULL; a = a->next)
		if (a->ch == ch)
			a->ch = NULL;
}

void
auth_stop(struct resolverd *rd)
{
	for (struct auth_req *a = rd->auths, *next; a != NULL; a = next) {
		next = a->next;
		if (a->working) {
			/* Not started yet: verify_done runs with UV_ECANCELED; running: it ends by itself. */
			uv_cancel((uv_req_t *)&a->work);
		} else {
			/* Held by the guard: answer now rather than keep the stop waiting. */
			if (a->timer_open)
				uv_timer_stop(&a->timer);
			answer(a);
		}
	}
}
