/*
 * searchcmd.c - SEARCH, UID SEARCH (RFC 3501 §6.4.4, ESEARCH RFC 4731),
 * SORT and THREAD (RFC 5256) as commands: the programs are parsed and
 * run by search.c, sort.c, thread.c and search_store.c; this file hands
 * them the command text and the session's view, and sends the answer.
 *
 * SEARCHRES (RFC 5182): RETURN (SAVE) keeps the result in the view as
 * UIDs (uidset.c): all found messages, or only MIN and/or MAX when those
 * are the only other options; no ESEARCH answer for SAVE alone; a SEARCH
 * that fails leaves the empty set saved. "$" in a program is the saved
 * set (search.c asks back through the view's saved callback).
 *
 * After ENABLE IMAP4rev2 (RFC 9051 §6.4.4, §7.3.4) every SEARCH is
 * answered with ESEARCH (as RETURN (ALL) when no RETURN was given), and
 * RECENT, NEW and OLD are not search keys any more.
 *
 * Called by commands.c's table (non-UID SEARCH/SORT/THREAD are answered
 * without EXPUNGE responses, RFC 3501 §7.4.1). Owns the parsed program
 * for one command. Never keeps a pointer into the command after it
 * returns.
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
	struct imapd_session *s = arg;
	return imapd_view_seq(s->view, uid);
}

static bool
is_recent(void *arg, uint32_t uid)
{
	return imapd_recent_has(arg, uid);
}

static bool
is_saved(void *arg, uint32_t uid)
{
	struct imapd_session *s = arg;
	return imapd_uidset_has(&s->view->saved, uid);
}

/* Does the program use RECENT, NEW or OLD (keys IMAP4rev2 removed)? */
static bool
uses_recent(const struct imap_search_node *n)
{
	for (; n; n = n->next)
		if (n->kind == ISK_RECENT || uses_recent(n->child))
			return true;
	return false;
}

/* RFC 5182 §2.1: MIN and/or MAX alone with SAVE save just those; otherwise every match. */
static int
save_result(struct imapd_session *s, unsigned ret, const uint32_t *nums, size_t n, bool uid)
{
	if (n && (ret & (IMAP_RET_MIN | IMAP_RET_MAX)) && !(ret & (IMAP_RET_ALL | IMAP_RET_COUNT))) {
		uint32_t mm[2];
		size_t k = 0;
		if (ret & IMAP_RET_MIN)
			mm[k++] = nums[0];
		if ((ret & IMAP_RET_MAX) && (k == 0 || nums[n - 1] != mm[0]))
			mm[k++] = nums[n - 1];
		return imapd_saved_keep(s, mm, k, uid);
	}
	return imapd_saved_keep(s, nums, n, uid);
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
	if (rc == 0 && s->rev2 && uses_recent(prog.root)) {
		rc = -1;
		why = "RECENT, NEW and OLD are not search keys of IMAP4rev2";
	}
	if (rc < 0) {
		if (prog.ret & IMAP_RET_SAVE)
			imapd_saved_keep(s, NULL, 0, true);   /* RFC 5182 §2.1: a failed SEARCH saves the empty set */
		imap_search_free(&prog);
		if (why == IMAP_SEARCH_BADCHARSET)
			imapd_done(s, "NO", "[BADCHARSET (UTF-8 US-ASCII)] Charset not supported");
		else
			imapd_done(s, "BAD", "%s", why ? why : "syntax error");
		return;
	}
	if (prog.has_modseq)
		s->condstore = true;   /* RFC 7162 §3.1: SEARCH MODSEQ enables CONDSTORE */
	struct imapd_view *v = s->view;
	struct imap_search_view sv = {
		.arg = s,
		.seq_of_uid = seq_of_uid,
		.recent = is_recent,
		.saved = is_saved,
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
	bool notsaved = false;
	if (kind == K_SEARCH && (prog.ret & IMAP_RET_SAVE) && (rc < 0 || save_result(s, prog.ret, nums, n, uid) < 0)) {
		imapd_saved_keep(s, NULL, 0, true);
		if (rc == 0) {
			mc_warn("%s: out of memory saving a search result of %zu for user=%s", s->id, n, s->user);
			notsaved = true;   /* RFC 5182 §2.4 */
		}
	}
	if (notsaved) {
		imapd_done(s, "NO", "[NOTSAVED] Cannot save the search result");
	} else if (rc < 0) {
		mc_warn("%s: %s in %s for user=%s failed (%d)", s->id, s->cmdname, v->name, s->user, rc);
		imapd_done(s, "NO", "[SERVERBUG] Cannot search now");
	} else {
		if (kind == K_SEARCH && (prog.esearch || s->rev2)) {
			/* RETURN (SAVE) alone answers nothing but OK (RFC 5182 §2.1) */
			unsigned ret = prog.esearch ? prog.ret : IMAP_RET_ALL;
			if (ret & ~IMAP_RET_SAVE)
				imap_esearch_format(&out, s->cmdtag, uid, ret, nums, n, prog.has_modseq ? modseq : 0);
		} else if (kind == K_SEARCH)
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
