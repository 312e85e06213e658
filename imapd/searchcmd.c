/*
 * searchcmd.c - SEARCH, UID SEARCH (RFC 3501 §6.4.4, ESEARCH RFC 4731),
 * SORT and THREAD (RFC 5256) as commands: the programs are parsed and
 * run by search.c, sort.c, thread.c and search_store.c; this file hands
 * them the command text and the session's view, and sends the answer.
 *
 * Called by commands.c's table (non-UID SEARCH/SORT/THREAD are answered
 * without EXPUNGE responses, RFC 3501 §7.4.1). Owns the parsed program
 * for one command. Never: keep a pointer into the command after it
 * returns ("$" of SEARCHRES is not offered, so nothing is saved).
 */
#include "imapd/imapd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imapd/search_store.h"
#include "mail/mailstore_ops.h"
#include "util/log.h"

enum kind { K_SEARCH, K_SORT, K_THREAD };

static uint32_t
seq_of_uid(void *arg, uint32_t uid)
{
	return imapd_view_seq(arg, uid);
}

/* "* SORT n n n" from the numbers in order. */
static void
sort_line(struct mc_buf *out, const uint32_t *nums, size_t n)
{
	mc_buf_adds(out, "* SORT");
	for (size_t i = 0; i < n; i++)
		mc_buf_printf(out, " %u", nums[i]);
	mc_buf_adds(out, "\r\n");
}

static void
run(struct imapd_session *s, struct imap_p *p, bool uid, enum kind kind)
{
	struct imap_search prog;
	struct imap_sort_crit crit[IMAP_SORT_CRIT_MAX];
	size_t ncrit = 0;
	enum imap_thread_alg alg = IMAP_THREAD_ORDEREDSUBJECT;
	const char *why = NULL;
	memset(&prog, 0, sizeof(prog));

	if (imap_p_sp(p) < 0) {
		imapd_done(s, "BAD", "%s", p->err);
		return;
	}
	char *pp = p->p;
	int rc = 0;
	if (kind == K_SORT)
		rc = imap_sort_parse(&pp, p->end, crit, &ncrit, &why);
	else if (kind == K_THREAD)
		rc = imap_thread_parse_alg(&pp, p->end, &alg, &why);
	else
		rc = imap_search_parse_return(&pp, p->end, &prog, &why);
	if (rc == 0)
		rc = imap_search_parse(&pp, p->end, kind != K_SEARCH, &prog, &why);
	if (rc == 0) {
		p->p = pp;
		if (imap_p_end(p) < 0) {
			rc = -1;
			why = p->err;
		}
	}
	if (rc < 0) {
		imap_search_free(&prog);
		if (why == IMAP_SEARCH_BADCHARSET)
			imapd_done(s, "NO", "[BADCHARSET (UTF-8 US-ASCII)] Charset not supported");
		else
			imapd_done(s, "BAD", "%s", why ? why : "syntax error");
		return;
	}
	if (prog.has_modseq)
		s->condstore = true;   /* RFC 7162 §3.1: SEARCH MODSEQ enables CONDSTORE */
	if (prog.ret & IMAP_RET_SAVE) {
		imap_search_free(&prog);
		imapd_done(s, "BAD", "RETURN (SAVE) is not offered (no SEARCHRES)");
		return;
	}
	struct imapd_view *v = s->view;
	struct imap_search_view sv = {
		.arg = v,
		.seq_of_uid = seq_of_uid,
		.exists = v->n,
		.max_uid = v->n ? v->msgs[v->n - 1].uid : 0,
	};
	uint32_t *nums = NULL;
	size_t n = 0;
	uint64_t modseq = 0;
	struct mc_buf out;
	mc_buf_init(&out, 0);
	if (kind == K_SEARCH)
		rc = imap_search_store(s->store, v->name, &sv, &prog, uid, &nums, &n, &modseq);
	else if (kind == K_SORT)
		rc = imap_sort_store(s->store, v->name, &sv, &prog, crit, ncrit, uid, &nums, &n, &modseq);
	else
		rc = imap_thread_store(s->store, v->name, &sv, &prog, alg, uid, &out);
	if (rc < 0) {
		mc_warn("%s: %s in %s for user=%s failed (%d)", s->id, s->cmdname, v->name, s->user, rc);
		imapd_done(s, "NO", "[SERVERBUG] Cannot search now");
	} else {
		if (kind == K_SEARCH && prog.esearch)
			imap_esearch_format(&out, s->cmdtag, uid, prog.ret, nums, n, prog.has_modseq ? modseq : 0);
		else if (kind == K_SEARCH)
			imap_search_format(&out, nums, n, prog.has_modseq ? modseq : 0);
		else if (kind == K_SORT)
			sort_line(&out, nums, n);
		imapd_send_raw(s, out.data, out.len);
		imapd_done(s, "OK", "%s completed", s->cmdname);
	}
	free(nums);
	mc_buf_free(&out);
	imap_search_free(&prog);
}

void
imapd_cmd_search(struct imapd_session *s, struct imap_p *p, bool uid)
{
	run(s, p, uid, K_SEARCH);
}

void
imapd_cmd_sort(struct imapd_session *s, struct imap_p *p, bool uid)
{
	run(s, p, uid, K_SORT);
}

void
imapd_cmd_thread(struct imapd_session *s, struct imap_p *p, bool uid)
{
	run(s, p, uid, K_THREAD);
}
