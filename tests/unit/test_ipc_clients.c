/*
 * test_ipc_clients.c - the resolverd and queued clients against stand-in
 * servers built from the server-side helpers, over real sockets in a
 * temporary run_dir: every payload survives the trip, queued's error
 * reaches smtpd's callback as an SMTP-ready reason, an absent daemon
 * becomes TEMPFAIL / 451 from the loop, cancelled calls stay silent, and
 * the catalogue's role check follows the configured users.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>

#include "mail/envelope.h"
#include "mail/proto.h"
#include "mail/queue_client.h"
#include "mail/resolver_client.h"
#include "util/log.h"

#include "loop_run.h"

struct fx {
	uv_loop_t loop;
	struct mc_config cfg;
	char dir[64];
	struct mc_chan_server *res_srv, *q_srv;
	struct mc_resolver *res;
	struct mc_queue_client *q;
	int pipe_r;
	int aborts;
	char aborted[MC_QID_MAX];
	struct mc_envelope committed;
	bool in_call;
	int nfds_at_start;
};

/* ---- stand-in resolverd ---- */

static void
res_on_msg(struct mc_chan *ch, struct mc_msg *m, void *arg)
{
	char addr[512];
	bool authd;
	if (m->type == MC_MSG_RES_RCPT) {
		assert_int_equal(mc_resolver_req_rcpt(m, addr, sizeof(addr), &authd), 0);
		if (strcmp(addr, "slow@example.org") == 0)
			return;
		if (strcmp(addr, "junk@example.org") == 0) {
			/* a result code out of range */
			struct mc_msg r;
			mc_msg_init(&r, MC_MSG_RES_RCPT);
			mc_msg_put_u32(&r, 77);
			mc_msg_put_str(&r, addr);
			mc_chan_reply(ch, m->reqid, &r);
			return;
		}
		mc_resolver_reply_rcpt(ch, m->reqid, authd ? MC_RCPT_REMOTE : MC_RCPT_LOCAL, "Canon@example.org");
	} else if (m->type == MC_MSG_RES_AUTH) {
		struct mc_resolver_auth_req req;
		assert_int_equal(mc_resolver_req_auth(m, &req), 0);
		assert_string_equal(req.service, "imap");
		assert_string_equal(req.client_ip, "192.0.2.7");
		bool ok = strcmp(req.user, "alice@example.org") == 0 && strcmp(req.password, "s3cret pass") == 0;
		/* a success carries the quota (RES_AUTH's later field), a failure the older form without it */
		if (ok)
			mc_resolver_reply_auth_quota(ch, m->reqid, MC_AUTH_OK, req.user, "/var/mail/example.org/alice",
						     5000000);
		else
			mc_resolver_reply_auth(ch, m->reqid, MC_AUTH_FAIL, NULL, NULL);
	} else if (m->type == MC_MSG_RES_EXPAND) {
		assert_int_equal(mc_resolver_req_expand(m, addr, sizeof(addr)), 0);
		struct mc_dest d[3];
		memset(d, 0, sizeof(d));
		d[0].kind = MC_DEST_LOCAL;
		snprintf(d[0].address, sizeof(d[0].address), "a@example.org");
		snprintf(d[0].mailbox, sizeof(d[0].mailbox), "/m/example.org/a");
		d[1].kind = MC_DEST_REMOTE;
		snprintf(d[1].address, sizeof(d[1].address), "b@remote.example");
		d[2].kind = MC_DEST_UNKNOWN;
		snprintf(d[2].address, sizeof(d[2].address), "%s", addr);
		mc_resolver_reply_expand(ch, m->reqid, d, 3);
	} else if (m->type == MC_MSG_RES_MX) {
		int family = -1;
		assert_int_equal(mc_resolver_req_mx(m, addr, sizeof(addr), &family), 0);
		if (strcmp(addr, "nx.example") == 0) {
			mc_resolver_reply_mx(ch, m->reqid, MC_MX_NXDOMAIN, "NXDOMAIN\r\nfrom 127.0.0.1", NULL, 0);
			return;
		}
		static const char *const a1[] = { "2001:db8::1", "192.0.2.1" }, *const a2[] = { "192.0.2.2" };
		const struct mc_mx_host h[3] = {
			{ "mx1.example.org", 10, 2, a1 },
			{ "noaddr.example.org", 15, 0, NULL },
			{ "mx2.example.org", 20, family == 6 ? 0 : 1, a2 },
		};
		mc_resolver_reply_mx(ch, m->reqid, MC_MX_OK, "", h, 3);
	}
}

/* ---- stand-in queued ---- */

static void
q_on_msg(struct mc_chan *ch, struct mc_msg *m, void *arg)
{
	struct fx *fx = arg;
	if (m->type == MC_MSG_Q_SUBMIT_BEGIN) {
		uint64_t hint;
		char client[256];
		assert_int_equal(mc_queue_req_begin(m, &hint, client, sizeof(client)), 0);
		if (hint > 1000000) {
			mc_chan_reply_error(ch, m->reqid, m->type, 452, "4.3.1 Insufficient system storage");
			return;
		}
		assert_string_equal(client, "client.example [192.0.2.1]");
		int p[2];
		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		fx->pipe_r = p[0];
		assert_int_equal(mc_queue_reply_begin(ch, m->reqid, "0123456789ABCDEF", p[1]), 0);
	} else if (m->type == MC_MSG_Q_SUBMIT_COMMIT) {
		assert_int_equal(mc_envelope_get(m, &fx->committed, 1000), 0);
		if (strcmp(fx->committed.sender, "refuse@example.org") == 0)
			mc_chan_reply_error(ch, m->reqid, m->type, 451, "4.3.0 Bad\r\nthings");
		else
			mc_queue_reply_commit(ch, m->reqid);
	} else if (m->type == MC_MSG_Q_SUBMIT_ABORT) {
		assert_int_equal(mc_queue_req_abort(m, fx->aborted, sizeof(fx->aborted)), 0);
		fx->aborts++;
	}
}

static const struct mc_chan_cbs res_cbs = { res_on_msg, NULL, NULL };
static const struct mc_chan_cbs q_cbs = { q_on_msg, NULL, NULL };

static void
start_servers(struct fx *fx)
{
	char path[MC_PATH_MAX];
	mc_config_sock(&fx->cfg, path, sizeof(path), MC_SOCK_RESOLVERD);
	fx->res_srv = mc_chan_server_start(&fx->loop, path, 0666, &mc_proto, MC_ROLE_RESOLVERD, "resolverd", &res_cbs,
					   fx);
	assert_non_null(fx->res_srv);
	mc_config_sock(&fx->cfg, path, sizeof(path), MC_SOCK_QUEUED);
	fx->q_srv = mc_chan_server_start(&fx->loop, path, 0666, &mc_proto, MC_ROLE_QUEUED, "queued", &q_cbs, fx);
	assert_non_null(fx->q_srv);
}

static bool
run_until_up(struct fx *fx)
{
	for (int i = 0; i < 200; i++) {
		if (mc_resolver_is_up(fx->res) && mc_queue_client_is_up(fx->q))
			return true;
		int never = 0;
		loop_run_until(&fx->loop, &never, 1, 10);
	}
	return false;
}

/* Descriptors open in this process: every socket and passed descriptor must be closed again. */
static int
count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	char err[256];
	assert_non_null(fx);
	fx->nfds_at_start = count_fds();
	assert_int_equal(uv_loop_init(&fx->loop), 0);
	assert_int_equal(mc_config_defaults(&fx->cfg, err, sizeof(err)), 0);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_ipc_clients.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->cfg.global.run_dir, sizeof(fx->cfg.global.run_dir), "%s", fx->dir);
	mc_proto_set_identities(&fx->cfg);
	fx->pipe_r = -1;
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	mc_resolver_close(fx->res);
	mc_queue_client_close(fx->q);
	mc_chan_server_close(fx->res_srv);
	mc_chan_server_close(fx->q_srv);
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&fx->loop), 0);
	if (fx->pipe_r >= 0)
		close(fx->pipe_r);
	fx->pipe_r = -1;
	assert_int_equal(count_fds(), fx->nfds_at_start);
	mc_envelope_free(&fx->committed);
	if (fx->pipe_r >= 0)
		close(fx->pipe_r);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

static void
open_clients(struct fx *fx)
{
	fx->res = mc_resolver_open(&fx->loop, &fx->cfg, MC_ROLE_SMTPD, "smtpd");
	fx->q = mc_queue_client_open(&fx->loop, &fx->cfg, MC_ROLE_SMTPD, "smtpd");
	assert_non_null(fx->res);
	assert_non_null(fx->q);
}

/* ---- callbacks that record what they got ---- */

struct got {
	struct fx *fx;
	int called;
	int r;
	int err;
	bool ok;
	int fd;
	unsigned code;
	char s1[1024];
	char s2[1024];
	unsigned n;
	struct mc_dest d[3];
};

static void
got_rcpt(void *arg, enum mc_rcpt_result r, const char *canonical)
{
	struct got *g = arg;
	assert_false(g->fx->in_call);
	g->called++;
	g->r = (int)r;
	snprintf(g->s1, sizeof(g->s1), "%s", canonical);
}

static void
got_auth(void *arg, enum mc_auth_result r, const char *canonical, const char *mailbox)
{
	struct got *g = arg;
	assert_false(g->fx->in_call);
	g->called++;
	g->r = (int)r;
	snprintf(g->s1, sizeof(g->s1), "%s", canonical);
	snprintf(g->s2, sizeof(g->s2), "%s", mailbox);
}

static void
got_auth_quota(void *arg, enum mc_auth_result r, const char *canonical, const char *mailbox, uint64_t quota)
{
	got_auth(arg, r, canonical, mailbox);
	((struct got *)arg)->code = (unsigned)quota;
}

static void
got_expand(void *arg, int err, const struct mc_dest *dests, unsigned n)
{
	struct got *g = arg;
	assert_false(g->fx->in_call);
	g->called++;
	g->err = err;
	g->n = n;
	for (unsigned i = 0; i < n && i < 3; i++)
		g->d[i] = dests[i];
}

static void
got_mx(void *arg, enum mc_mx_result r, const char *detail, const struct mc_mx_host *hosts, unsigned n)
{
	struct got *g = arg;
	assert_false(g->fx->in_call);
	g->called++;
	g->r = (int)r;
	g->n = n;
	snprintf(g->s1, sizeof(g->s1), "%s", detail);
	/* flatten: "name pref addr addr;" per host */
	size_t off = 0;
	for (unsigned i = 0; i < n; i++) {
		off += (size_t)snprintf(g->s2 + off, sizeof(g->s2) - off, "%s %u", hosts[i].name, hosts[i].pref);
		for (unsigned j = 0; j < hosts[i].naddr; j++)
			off += (size_t)snprintf(g->s2 + off, sizeof(g->s2) - off, " %s", hosts[i].addrs[j]);
		off += (size_t)snprintf(g->s2 + off, sizeof(g->s2) - off, ";");
	}
}

static void
got_begin(void *arg, bool ok, int fd, const char *qid, unsigned code, const char *text)
{
	struct got *g = arg;
	assert_false(g->fx->in_call);
	g->called++;
	g->ok = ok;
	g->fd = fd;
	g->code = code;
	snprintf(g->s1, sizeof(g->s1), "%s", qid);
	snprintf(g->s2, sizeof(g->s2), "%s", text);
}

static void
got_commit(void *arg, bool ok, unsigned code, const char *text)
{
	struct got *g = arg;
	assert_false(g->fx->in_call);
	g->called++;
	g->ok = ok;
	g->code = code;
	snprintf(g->s2, sizeof(g->s2), "%s", text);
}

static struct got *
got_new(struct fx *fx)
{
	struct got *g = calloc(1, sizeof(*g));
	g->fx = fx;
	g->fd = -1;
	return g;
}

/* ---- tests ---- */

static void
test_resolver_calls(void **state)
{
	struct fx *fx = *state;
	start_servers(fx);
	open_clients(fx);
	assert_true(run_until_up(fx));

	struct got *a = got_new(fx), *b = got_new(fx), *c = got_new(fx), *d = got_new(fx), *e = got_new(fx);
	fx->in_call = true;
	assert_int_not_equal(mc_resolver_rcpt(fx->res, "x@example.org", false, got_rcpt, a), 0);
	assert_int_not_equal(mc_resolver_rcpt(fx->res, "x@example.org", true, got_rcpt, b), 0);
	assert_int_not_equal(mc_resolver_auth(fx->res, "imap", "192.0.2.7", "alice@example.org", "s3cret pass",
					      got_auth, c), 0);
	assert_int_not_equal(mc_resolver_auth(fx->res, "imap", "192.0.2.7", "alice@example.org", "wrong", got_auth,
					      d), 0);
	struct got *q1 = got_new(fx), *q2 = got_new(fx);
	assert_int_not_equal(mc_resolver_auth_quota(fx->res, "imap", "192.0.2.7", "alice@example.org", "s3cret pass",
						    got_auth_quota, q1), 0);
	assert_int_not_equal(mc_resolver_auth_quota(fx->res, "imap", "192.0.2.7", "alice@example.org", "wrong",
						    got_auth_quota, q2), 0);
	/* only queued may expand: smtpd asking would be cut off */
	fx->in_call = false;
	struct mc_resolver *qres = mc_resolver_open(&fx->loop, &fx->cfg, MC_ROLE_QUEUED, "queued");
	for (int i = 0; i < 200 && !mc_resolver_is_up(qres); i++) {
		int never = 0;
		loop_run_until(&fx->loop, &never, 1, 10);
	}
	assert_true(mc_resolver_is_up(qres));
	fx->in_call = true;
	assert_int_not_equal(mc_resolver_expand(qres, "list@example.org", got_expand, e), 0);
	fx->in_call = false;
	assert_true(loop_run_until(&fx->loop, &e->called, 1, 2000));
	assert_true(loop_run_until(&fx->loop, &d->called, 1, 2000));
	assert_int_equal(a->r, MC_RCPT_LOCAL);
	assert_string_equal(a->s1, "Canon@example.org");
	assert_int_equal(b->r, MC_RCPT_REMOTE);
	assert_int_equal(c->r, MC_AUTH_OK);
	assert_string_equal(c->s1, "alice@example.org");
	assert_string_equal(c->s2, "/var/mail/example.org/alice");
	assert_int_equal(d->r, MC_AUTH_FAIL);
	assert_string_equal(d->s1, "");
	assert_true(loop_run_until(&fx->loop, &q2->called, 1, 2000));
	assert_int_equal(q1->r, MC_AUTH_OK);
	assert_string_equal(q1->s2, "/var/mail/example.org/alice");
	assert_int_equal(q1->code, 5000000);
	assert_int_equal(q2->r, MC_AUTH_FAIL);
	assert_int_equal(q2->code, 0);
	assert_int_equal(e->err, 0);
	assert_int_equal(e->n, 3);
	assert_int_equal(e->d[0].kind, MC_DEST_LOCAL);
	assert_string_equal(e->d[0].mailbox, "/m/example.org/a");
	assert_int_equal(e->d[1].kind, MC_DEST_REMOTE);
	assert_string_equal(e->d[1].address, "b@remote.example");
	assert_int_equal(e->d[2].kind, MC_DEST_UNKNOWN);
	assert_string_equal(e->d[2].address, "list@example.org");

	/* RES_MX: hosts without an address are left out; the detail arrives cleaned */
	struct got *x1 = got_new(fx), *x2 = got_new(fx), *x3 = got_new(fx);
	fx->in_call = true;
	mc_resolver_mx(qres, "example.org", 0, got_mx, x1);
	mc_resolver_mx(qres, "example.org", 6, got_mx, x2);
	mc_resolver_mx(qres, "nx.example", 4, got_mx, x3);
	fx->in_call = false;
	assert_true(loop_run_until(&fx->loop, &x3->called, 1, 2000));
	assert_true(loop_run_until(&fx->loop, &x1->called, 1, 2000));
	assert_int_equal(x1->r, MC_MX_OK);
	assert_int_equal(x1->n, 2);
	assert_string_equal(x1->s2, "mx1.example.org 10 2001:db8::1 192.0.2.1;mx2.example.org 20 192.0.2.2;");
	assert_int_equal(x2->r, MC_MX_OK);
	assert_string_equal(x2->s2, "mx1.example.org 10 2001:db8::1 192.0.2.1;");
	assert_int_equal(x3->r, MC_MX_NXDOMAIN);
	assert_int_equal(x3->n, 0);
	assert_string_equal(x3->s1, "NXDOMAIN??from 127.0.0.1");
	mc_resolver_close(qres);
	free(x1), free(x2), free(x3);

	/* a nonsense answer is a TEMPFAIL, not a guess */
	struct got *j = got_new(fx);
	mc_resolver_rcpt(fx->res, "junk@example.org", false, got_rcpt, j);
	assert_true(loop_run_until(&fx->loop, &j->called, 1, 2000));
	assert_int_equal(j->r, MC_RCPT_TEMPFAIL);

	/* cancelled: never called; closed with a call in flight: TEMPFAIL from the loop */
	struct got *k = got_new(fx), *s = got_new(fx);
	uint32_t h = mc_resolver_rcpt(fx->res, "slow@example.org", false, got_rcpt, k);
	mc_resolver_cancel(fx->res, h);
	mc_resolver_rcpt(fx->res, "slow@example.org", false, got_rcpt, s);
	int never = 0;
	loop_run_until(&fx->loop, &never, 1, 50);
	fx->in_call = true;
	mc_resolver_close(fx->res);
	fx->res = NULL;
	fx->in_call = false;
	assert_true(loop_run_until(&fx->loop, &s->called, 1, 2000));
	assert_int_equal(s->r, MC_RCPT_TEMPFAIL);
	assert_int_equal(k->called, 0);
	free(a), free(b), free(c), free(d), free(e), free(j), free(k), free(s), free(q1), free(q2);
}

static void
test_queue_submit(void **state)
{
	struct fx *fx = *state;
	start_servers(fx);
	open_clients(fx);
	assert_true(run_until_up(fx));

	struct got *b = got_new(fx);
	fx->in_call = true;
	mc_queue_begin(fx->q, 1234, "client.example [192.0.2.1]", got_begin, b);
	fx->in_call = false;
	assert_true(loop_run_until(&fx->loop, &b->called, 1, 2000));
	assert_true(b->ok);
	assert_string_equal(b->s1, "0123456789ABCDEF");
	assert_true(b->fd >= 0);
	/* smtpd writes the body straight into queued's file */
	assert_int_equal(write(b->fd, "body", 4), 4);
	close(b->fd);
	char buf[8];
	assert_int_equal(read(fx->pipe_r, buf, sizeof(buf)), 4);
	assert_int_equal(read(fx->pipe_r, buf, sizeof(buf)), 0);

	struct mc_envelope e;
	mc_envelope_init(&e);
	snprintf(e.qid, sizeof(e.qid), "0123456789ABCDEF");
	snprintf(e.sender, sizeof(e.sender), "s@example.org");
	mc_envelope_add_rcpt(&e, "r1@example.org", "", 0, 100);
	mc_envelope_add_rcpt(&e, "r2@example.org", "rfc822;r2@example.org", MC_NOTIFY_SUCCESS, 100);
	struct got *c = got_new(fx);
	mc_queue_commit(fx->q, &e, got_commit, c);
	assert_true(loop_run_until(&fx->loop, &c->called, 1, 2000));
	assert_true(c->ok);
	assert_int_equal(fx->committed.nrcpt, 2);
	assert_string_equal(fx->committed.rcpt[1].orcpt, "rfc822;r2@example.org");
	mc_envelope_free(&fx->committed);

	/* queued's refusal keeps its SMTP-ready text, cleaned of control characters */
	snprintf(e.sender, sizeof(e.sender), "refuse@example.org");
	struct got *r = got_new(fx);
	mc_queue_commit(fx->q, &e, got_commit, r);
	assert_true(loop_run_until(&fx->loop, &r->called, 1, 2000));
	assert_false(r->ok);
	assert_int_equal(r->code, 451);
	assert_string_equal(r->s2, "4.3.0 Bad??things");
	mc_envelope_free(&fx->committed);
	mc_envelope_free(&e);

	/* no space: 452 */
	struct got *n = got_new(fx);
	mc_queue_begin(fx->q, 5000000, "x", got_begin, n);
	assert_true(loop_run_until(&fx->loop, &n->called, 1, 2000));
	assert_false(n->ok);
	assert_int_equal(n->fd, -1);
	assert_int_equal(n->code, 452);
	assert_string_equal(n->s2, "4.3.1 Insufficient system storage");

	/* an abort notice */
	mc_queue_abort(fx->q, "0123456789ABCDEF");
	assert_true(loop_run_until(&fx->loop, &fx->aborts, 1, 2000));
	assert_string_equal(fx->aborted, "0123456789ABCDEF");
	free(b), free(c), free(r), free(n);
}

static void
test_daemons_away(void **state)
{
	struct fx *fx = *state;
	open_clients(fx);
	struct got *r = got_new(fx), *a = got_new(fx), *x = got_new(fx), *b = got_new(fx), *c = got_new(fx);
	struct got *mx = got_new(fx);
	struct mc_envelope e;
	mc_envelope_init(&e);
	fx->in_call = true;
	mc_resolver_rcpt(fx->res, "x@example.org", false, got_rcpt, r);
	mc_resolver_auth(fx->res, "smtp", "192.0.2.1", "u", "p", got_auth, a);
	mc_resolver_expand(fx->res, "x@example.org", got_expand, x);
	mc_resolver_mx(fx->res, "example.org", 0, got_mx, mx);
	mc_queue_begin(fx->q, 0, "c", got_begin, b);
	mc_queue_commit(fx->q, &e, got_commit, c);
	mc_queue_abort(fx->q, "0123456789ABCDEF");
	fx->in_call = false;
	assert_true(loop_run_until(&fx->loop, &c->called, 1, 2000));
	assert_true(loop_run_until(&fx->loop, &x->called, 1, 2000));
	assert_int_equal(r->r, MC_RCPT_TEMPFAIL);
	assert_int_equal(a->r, MC_AUTH_TEMPFAIL);
	assert_int_equal(x->err, -1);
	assert_true(loop_run_until(&fx->loop, &mx->called, 1, 2000));
	assert_int_equal(mx->r, MC_MX_TEMPFAIL);
	assert_int_equal(mx->n, 0);
	assert_false(b->ok);
	assert_int_equal(b->code, 451);
	assert_string_equal(b->s2, "4.3.0 Queue manager unavailable, try again later");
	assert_false(c->ok);
	assert_int_equal(c->code, 451);

	/* the daemons start: the clients find them by themselves */
	start_servers(fx);
	assert_true(run_until_up(fx));
	free(r), free(a), free(x), free(b), free(c), free(mx);
}

static void
test_proto_roles(void **state)
{
	struct fx *fx = *state;
	struct passwd *nobody = getpwnam("nobody");
	struct group *root = getgrgid(0);
	if (nobody == NULL || root == NULL || getuid() == nobody->pw_uid)
		skip();
	/* copy before more lookups reuse getpwnam's and getgrgid's static storage */
	uid_t nobody_uid = nobody->pw_uid;
	gid_t nobody_gid = nobody->pw_gid;
	char root_group[64];
	snprintf(root_group, sizeof(root_group), "%s", root->gr_name);
	snprintf(fx->cfg.smtpd.user, sizeof(fx->cfg.smtpd.user), "nobody");
	snprintf(fx->cfg.queued.user, sizeof(fx->cfg.queued.user), "postern-no-such-user-x");
	snprintf(fx->cfg.global.admin_group, sizeof(fx->cfg.global.admin_group), "%s", root_group);
	mc_proto_set_identities(&fx->cfg);

	struct mc_peer_cred cred;
	memset(&cred, 0, sizeof(cred));
	cred.uid = nobody_uid;
	cred.gid = nobody_gid;
	assert_true(mc_proto.role_ok(MC_ROLE_SMTPD, &cred));
	assert_false(mc_proto.role_ok(MC_ROLE_QUEUED, &cred));     /* unmapped: only root and our uid */
	assert_false(mc_proto.role_ok(MC_ROLE_SUPERVISOR, &cred));
	assert_false(mc_proto.role_ok(MC_ROLE_ADMIN, &cred));
	assert_false(mc_proto.role_ok(MC_ROLE_NONE, &cred));
	assert_false(mc_proto.role_ok(MC_ROLE_COUNT, &cred));
	/* the admin group, as primary or supplementary group */
	cred.groups[0] = 0;
	cred.ngroups = 1;
	assert_true(mc_proto.role_ok(MC_ROLE_ADMIN, &cred));
	cred.ngroups = 0;
	cred.gid = 0;
	assert_true(mc_proto.role_ok(MC_ROLE_ADMIN, &cred));
	/* our own uid may be anyone (a single-user instance), root too */
	cred.uid = getuid();
	assert_true(mc_proto.role_ok(MC_ROLE_QUEUED, &cred));
	assert_true(mc_proto.role_ok(MC_ROLE_SUPERVISOR, &cred));
	cred.uid = 0;
	assert_true(mc_proto.role_ok(MC_ROLE_RESOLVERD, &cred));

	/* the catalogue: names and masks */
	assert_string_equal(mc_msg_type_name(MC_MSG_RES_RCPT), "RES_RCPT");
	assert_string_equal(mc_msg_type_name(MC_MSG_SUP_RELOAD), "SUP_RELOAD");
	assert_string_equal(mc_msg_type_name(MC_MSG_COUNT), "UNKNOWN");
	assert_string_equal(mc_role_name(MC_ROLE_SMTPD), "smtpd");
	assert_string_equal(mc_role_name(MC_ROLE_SUPERVISOR), "supervisor");
	assert_int_equal(mc_proto.ntypes, MC_MSG_COUNT);
	assert_true(mc_proto.allowed_roles[MC_MSG_Q_SUBMIT_BEGIN] & (1u << MC_ROLE_SMTPD));
	assert_false(mc_proto.allowed_roles[MC_MSG_Q_SUBMIT_BEGIN] & (1u << MC_ROLE_POP3D));
	assert_false(mc_proto.allowed_roles[MC_MSG_SUP_STOP] & (1u << MC_ROLE_SMTPD));
}

int
main(void)
{
	mc_log_init("test_ipc_clients", MC_LOG_INFO);
	/* libuv opens a few descriptors once per process with its first loop: let that happen before counting. */
	uv_loop_t warm;
	uv_loop_init(&warm);
	uv_loop_close(&warm);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_resolver_calls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_submit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_daemons_away, setup, teardown),
		cmocka_unit_test_setup_teardown(test_proto_roles, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
