/*
 * test_imap_session.c - imapd's sessions replayed as transcripts: what the
 * client sends, and the exact bytes the server must answer.
 *
 * The real imapd code (session, commands, mailbox, fetch, modify, search,
 * append; imapd_session_src) runs in this thread on one libuv loop through
 * imapd_fx.h: no listener, the client at the other end of a socketpair
 * handed to the network front with mc_netsvc_adopt. resolverd is a fake
 * mc_chan server on the same loop that accepts alice/pw and refuses
 * everything else; the mail store is a real one in a temporary directory,
 * its messages appended with fixed internal dates so every FETCH answer
 * is exact. A step sends one command (with its literals) and compares
 * everything the server wrote up to the command's tagged answer (or its
 * "+" continuation); "%V" in an expected answer stands for INBOX's
 * UIDVALIDITY. TEST_RECORD=1 prints what the server said instead of
 * failing, to write a new transcript (then check it by hand against the RFC).
 * test_view_sync plays another session by changing the index directly
 * between the steps, and looks at the view (its ghosts) too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "mail/proto.h"
#include "mail/resolver_client.h"
#include "util/chan.h"
#include "util/log.h"

#include "fake_res.h"
#include "imapd_fx.h"

static struct imapd_fx fx;
static struct mc_chan_server *fake_res;
static struct fake_res_auth res_auth;   /* alice/pw for imap, nobody else */
static char tmpdir[256];
static uint32_t uidvalidity;

#define MSG1                                                                                                  \
	"From: Ann <ann@example.org>\r\nTo: alice@example.test\r\nSubject: first\r\n"                          \
	"Date: Fri, 27 Nov 2026 01:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n\r\nHello one.\r\n"
#define MSG2                                                                                                  \
	"From: Bob <bob@example.org>\r\nTo: alice@example.test\r\nSubject: second\r\n"                         \
	"Date: Fri, 27 Nov 2026 02:00:00 +0000\r\nMessage-ID: <2@example.org>\r\n\r\nHello two.\r\nAgain.\r\n"
#define MSG3                                                                                                  \
	"From: Ann <ann@example.org>\r\nTo: alice@example.test\r\nSubject: third\r\n"                          \
	"Date: Fri, 27 Nov 2026 03:00:00 +0000\r\nMessage-ID: <3@example.org>\r\n\r\nHello three.\r\n"

static int
setup(void **state)
{
	char err[256];
	(void)state;
	mc_log_init("test_imap_session", getenv("TEST_VERBOSE") ? MC_LOG_DEBUG : MC_LOG_ERROR);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-imap-session-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	assert_int_equal(fx_init(&fx, tmpdir, MC_PLAIN_NO), 0);
	/* 2026-11-27 01:00:00, 02:00:00, 03:00:00 UTC */
	assert_int_equal(fx_add_message(&fx, NULL, "INBOX", MSG1, 0, 1795741200), 0);
	assert_int_equal(fx_add_message(&fx, NULL, "INBOX", MSG2, MC_FLAG_SEEN, 1795744800), 0);
	assert_int_equal(fx_add_message(&fx, NULL, "INBOX", MSG3, MC_FLAG_FLAGGED, 1795748400), 0);
	struct mc_store *st = mc_store_open(fx.home, 0, err, sizeof(err));
	assert_non_null(st);
	struct mc_store_mailbox mb;
	assert_int_equal(mc_store_mailbox_get(st, "INBOX", &mb), 0);
	uidvalidity = mb.uidvalidity;
	mc_store_close(st);

	res_auth = (struct fake_res_auth){ .service = "imap", .mailbox = fx.home, .quota = true };
	fake_res = fake_res_auth_start(&fx.loop, &fx.d.cfg, &res_auth);
	fx.srv.res = mc_resolver_open(&fx.loop, &fx.d.cfg, MC_ROLE_IMAPD, "imapd");
	for (int i = 0; i < 2000 && !mc_resolver_is_up(fx.srv.res); i++)
		fx_pump(&fx, 2);
	assert_true(mc_resolver_is_up(fx.srv.res));
	return 0;
}

static int
teardown(void **state)
{
	char cmd[400];
	(void)state;
	fx_disconnect(&fx);
	mc_resolver_close(fx.srv.res);
	mc_chan_server_close(fake_res);
	for (int i = 0; i < 20; i++)
		fx_pump(&fx, 1);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- transcripts ---- */

struct step {
	const char *send;     /* bytes the client sends (NULL: none, just wait) */
	const char *expect;   /* everything the server writes in answer; NULL: the session closes after it */
};

/* expect with %V replaced by INBOX's UIDVALIDITY. */
static char *
expand(const char *e)
{
	char v[16];
	snprintf(v, sizeof(v), "%u", uidvalidity);
	size_t n = strlen(e) + 1;
	for (const char *p = strstr(e, "%V"); p; p = strstr(p + 2, "%V"))
		n += strlen(v);
	char *o = malloc(n), *w = o;
	assert_non_null(o);
	for (const char *p = e; *p;) {
		if (p[0] == '%' && p[1] == 'V') {
			w += sprintf(w, "%s", v);
			p += 2;
		} else {
			*w++ = *p++;
		}
	}
	*w = '\0';
	return o;
}

/* The last line of s, to know what to wait for ("a OK ..." waits for "a ", "+ ..." for "+ "). */
static void
wait_prefix(const char *s, char *out, size_t outsz)
{
	size_t n = strlen(s);
	if (n >= 2)
		n -= 2;   /* the last CRLF */
	while (n > 0 && s[n - 1] != '\n')
		n--;
	size_t k = 0;
	while (s[n + k] && s[n + k] != ' ' && k + 2 < outsz) {
		out[k] = s[n + k];
		k++;
	}
	out[k++] = ' ';
	out[k] = '\0';
}

static void
replay(const struct step *t)
{
	bool record = getenv("TEST_RECORD") != NULL;
	for (size_t i = 0; t[i].send || t[i].expect; i++) {
		if (t[i].send)
			assert_int_equal(fx_send(&fx, t[i].send, strlen(t[i].send)), 0);
		if (t[i].expect == NULL) {
			assert_int_equal(fx_wait_closed(&fx, 5000), 0);
			char *got = fx_take(&fx);
			if (record)
				printf("<< (closed) %s\n", got);
			free(got);
			continue;
		}
		char *want = expand(t[i].expect), prefix[80];
		wait_prefix(want, prefix, sizeof(prefix));
		int w = fx_wait_line(&fx, prefix, 5000);
		for (int k = 0; k < 3; k++)
			fx_pump(&fx, 0);   /* anything written after the awaited line is caught too */
		char *got = fx_take(&fx);
		if (record) {
			printf(">> %s<< %s\n", t[i].send ? t[i].send : "(nothing)\n", got);
		} else {
			if (w < 0 || strcmp(got, want) != 0)
				fail_msg("after sending %s\nwanted: %s\n   got: %s", t[i].send ? t[i].send : "(nothing)",
					 want, got);
		}
		free(got);
		free(want);
	}
}

/* The capability list: a command that adds one changes these (and only these). */
#define CAPS_FIRST "IMAP4rev1 IMAP4rev2"
#define CAPS_COMMON                                                                                        \
	"LITERAL+ ID ENABLE IDLE NAMESPACE UNSELECT CHILDREN SPECIAL-USE UIDPLUS MOVE STATUS=SIZE LIST-EXTENDED " \
	"LIST-STATUS ESEARCH SEARCHRES SORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES QUOTA QUOTA=RES-STORAGE "     \
	"CONDSTORE QRESYNC BINARY"
#define CAPS_AUTHED "UTF8=ACCEPT COMPRESS=DEFLATE APPENDLIMIT=36700160"

static struct imapd_session *
connect_greeted(const char *greeting)
{
	assert_int_equal(fx_disconnect(&fx), 0);   /* what a failed test before may have left */
	struct imapd_session *s = fx_connect(&fx);
	assert_non_null(s);
	char *got = fx_take(&fx);
	if (getenv("TEST_RECORD"))
		printf("<< %s\n", got);
	else
		assert_string_equal(got, greeting);
	free(got);
	return s;
}

/* Before login: capabilities, LOGIN refused without TLS, literals and strings that are refused, an overlong line. */
static void
test_pre_login(void **state)
{
	(void)state;
	fx.srv.lim.plain_auth = MC_PLAIN_NO;
	connect_greeted("* OK [CAPABILITY " CAPS_FIRST " LOGINDISABLED " CAPS_COMMON "] mx.example.test Postern IMAP ready\r\n");
	static const struct step t[] = {
		{ "a CAPABILITY\r\n", "* CAPABILITY " CAPS_FIRST " LOGINDISABLED " CAPS_COMMON "\r\na OK CAPABILITY completed\r\n" },
		{ "b LOGIN alice pw\r\n",
		  "b NO [PRIVACYREQUIRED] Logging in without TLS is not allowed (LOGINDISABLED)\r\n" },
		{ "c AUTHENTICATE PLAIN AGFsaWNlAHB3\r\n",
		  "c NO [PRIVACYREQUIRED] Logging in without TLS is not allowed (LOGINDISABLED)\r\n" },
		{ "d SELECT INBOX\r\n", "d BAD Log in first\r\n" },
		/* lengths that are no 32-bit number, and one that is no length at all */
		{ "e LOGIN {4294967296}\r\n", "e BAD literal length is not a 32-bit number\r\n" },
		{ "f LOGIN {99999999999999999999}\r\n", "f BAD literal length is not a 32-bit number\r\n" },
		{ "g LOGIN {-1}\r\n", "g BAD bad literal length\r\n" },
		/* before login a literal is at most 4 KiB: refused before "+" */
		{ "h LOGIN {4097}\r\n", "h NO [TOOBIG] Literal too big\r\n" },
		{ "i LOGIN {5}\r\n", "+ Ready for literal data\r\n" },
		{ "alice \"p\\\"w\"\r\n",
		  "i NO [PRIVACYREQUIRED] Logging in without TLS is not allowed (LOGINDISABLED)\r\n" },
		{ "k NOOP extra\r\n", "k BAD unexpected text at the end of the command\r\n" },
		{ "* NOOP\r\n", "* BAD Missing or bad tag\r\n" },
		{ "l FROB\r\n", "l BAD Unknown command\r\n" },
		{ "m NOOP\r\n", "m OK NOOP completed\r\n" },
		{ NULL, NULL },
	};
	replay(t);
	/* A line past the pre-login bound (8 KiB) cannot be resynchronised: BYE and close. */
	char *longline = malloc(9000);
	assert_non_null(longline);
	memset(longline, 'x', 9000);
	memcpy(longline, "n LOGIN ", 8);
	assert_int_equal(fx_send(&fx, longline, 9000), 0);
	free(longline);
	assert_int_equal(fx_wait_closed(&fx, 5000), 0);
	char *got = fx_take(&fx);
	assert_string_equal(got, "* BYE [TOOBIG] Input too long\r\n");
	free(got);
	assert_int_equal(fx_disconnect(&fx), 0);
}

/* NUL inside a quoted string: sent as bytes, not as a C string (the step table cannot hold it). */
static void
test_nul_and_login(void **state)
{
	(void)state;
	fx.srv.lim.plain_auth = MC_PLAIN_YES;
	connect_greeted("* OK [CAPABILITY " CAPS_FIRST " AUTH=PLAIN SASL-IR " CAPS_COMMON "] mx.example.test Postern IMAP ready\r\n");
	static const char nul[] = "a LOGIN \"al\0ice\" pw\r\n";
	assert_int_equal(fx_send(&fx, nul, sizeof(nul) - 1), 0);
	assert_int_equal(fx_wait_line(&fx, "a ", 5000), 0);
	char *got = fx_take(&fx);
	assert_string_equal(got, "a BAD NUL in quoted string\r\n");
	free(got);
	static const struct step t[] = {
		{ "b LOGIN alice wrong\r\n", "b NO [AUTHENTICATIONFAILED] Authentication failed\r\n" },
		{ "c LOGIN alice pw\r\n", "c OK [CAPABILITY " CAPS_FIRST " " CAPS_COMMON " " CAPS_AUTHED "] Logged in\r\n" },
		{ "d LOGOUT\r\n", "* BYE Logging out\r\nd OK LOGOUT completed\r\n" },
		{ NULL, NULL },
	};
	replay(t);
	assert_int_equal(fx_wait_closed(&fx, 5000), 0);
	assert_int_equal(fx_disconnect(&fx), 0);
}

/* After login: SELECT, FETCH, STORE, SEARCH, EXPUNGE, APPEND, LOGOUT, each answer exact. */
static void
test_post_login(void **state)
{
	(void)state;
	fx.srv.lim.plain_auth = MC_PLAIN_NO;
	struct imapd_session *s = connect_greeted(
		"* OK [CAPABILITY " CAPS_FIRST " LOGINDISABLED " CAPS_COMMON "] mx.example.test Postern IMAP ready\r\n");
	assert_int_equal(fx_login(&fx, s), 0);
	static const struct step t[] = {
		{ "a SELECT INBOX\r\n",
		  "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)\r\n"
		  "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded \\*)] Flags permitted\r\n"
		  "* 3 EXISTS\r\n"
		  "* 3 RECENT\r\n"
		  "* OK [UNSEEN 1] First unseen\r\n"
		  "* OK [UIDVALIDITY %V] UIDs valid\r\n"
		  "* OK [UIDNEXT 4] Predicted next UID\r\n"
		  "* OK [HIGHESTMODSEQ 4] Highest\r\n"
		  "a OK [READ-WRITE] SELECT completed\r\n" },
		{ "b FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)\r\n",
		  "* 1 FETCH (UID 1 FLAGS (\\Recent) RFC822.SIZE 151 INTERNALDATE \"27-Nov-2026 01:00:00 +0000\")\r\n"
		  "* 2 FETCH (UID 2 FLAGS (\\Recent \\Seen) RFC822.SIZE 160 INTERNALDATE \"27-Nov-2026 02:00:00 +0000\")\r\n"
		  "* 3 FETCH (UID 3 FLAGS (\\Recent \\Flagged) RFC822.SIZE 153 INTERNALDATE \"27-Nov-2026 03:00:00 +0000\")\r\n"
		  "b OK FETCH completed\r\n" },
		{ "c FETCH 2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT]<6.3>)\r\n",
		  "* 2 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {19}\r\nSubject: second\r\n\r\n BODY[TEXT]<6> {3}\r\ntwo)\r\n"
		  "c OK FETCH completed\r\n" },
		{ "d FETCH 1 (ENVELOPE)\r\n",
		  "* 1 FETCH (ENVELOPE (\"Fri, 27 Nov 2026 01:00:00 +0000\" \"first\" ((\"Ann\" NIL \"ann\" \"example.org\")) "
		  "((\"Ann\" NIL \"ann\" \"example.org\")) ((\"Ann\" NIL \"ann\" \"example.org\")) "
		  "((NIL NIL \"alice\" \"example.test\")) NIL NIL NIL \"<1@example.org>\"))\r\n"
		  "d OK FETCH completed\r\n" },
		/* BODY[] without PEEK sets \Seen, and says so */
		{ "e FETCH 1 BODY[TEXT]\r\n",
		  "* 1 FETCH (BODY[TEXT] {12}\r\nHello one.\r\n FLAGS (\\Recent \\Seen))\r\ne OK FETCH completed\r\n" },
		{ "f STORE 1:2 +FLAGS (\\Deleted)\r\n",
		  "* 1 FETCH (FLAGS (\\Recent \\Seen \\Deleted))\r\n* 2 FETCH (FLAGS (\\Recent \\Seen \\Deleted))\r\nf OK STORE completed\r\n" },
		{ "g STORE 3 -FLAGS.SILENT (\\Flagged)\r\n", "g OK STORE completed\r\n" },
		{ "h SEARCH DELETED\r\n", "* SEARCH 1 2\r\nh OK SEARCH completed\r\n" },
		{ "i SEARCH NOT DELETED FROM ann\r\n", "* SEARCH 3\r\ni OK SEARCH completed\r\n" },
		{ "j UID SEARCH OR SUBJECT second UID 3\r\n", "* SEARCH 2 3\r\nj OK SEARCH completed\r\n" },
		{ "k SEARCH RETURN (MIN MAX COUNT) ALL\r\n", "* ESEARCH (TAG \"k\") MIN 1 MAX 3 COUNT 3\r\nk OK SEARCH completed\r\n" },
		/* sequence numbers past the mailbox, and sets that are no sets */
		{ "l FETCH 4 FLAGS\r\n", "l BAD Invalid message sequence number\r\n" },
		{ "m FETCH 1:4294967295 UID\r\n", "m BAD Invalid message sequence number\r\n" },
		{ "n UID FETCH 1:4294967295 UID\r\n",
		  "* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 2)\r\n* 3 FETCH (UID 3)\r\nn OK FETCH completed\r\n" },
		{ "o FETCH 0 UID\r\n", "o BAD bad sequence set\r\n" },
		{ "p EXPUNGE\r\n", "* 1 EXPUNGE\r\n* 1 EXPUNGE\r\n* 1 EXISTS\r\n* 1 RECENT\r\np OK EXPUNGE completed\r\n" },
		{ "q FETCH 1:* (UID FLAGS)\r\n", "* 1 FETCH (UID 3 FLAGS (\\Recent))\r\nq OK FETCH completed\r\n" },
		{ "r APPEND INBOX (\\Seen) \"27-Nov-2026 04:00:00 +0000\" {20}\r\n", "+ Ready for literal data\r\n" },
		{ "Subject: new\r\n\r\nhi\r\n\r\n", "* 2 EXISTS\r\n* 2 RECENT\r\nr OK [APPENDUID %V 4] APPEND completed\r\n" },
		{ "s APPEND INBOX {9+}\r\nSubject: \r\n", "* 3 EXISTS\r\n* 3 RECENT\r\ns OK [APPENDUID %V 5] APPEND completed\r\n" },
		{ "t APPEND Nope {10}\r\n", "t NO [TRYCREATE] Mailbox does not exist\r\n" },
		{ "u FETCH 2 (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER])\r\n",
		  "* 2 FETCH (UID 4 FLAGS (\\Recent \\Seen) RFC822.SIZE 20 BODY[HEADER] {16}\r\nSubject: new\r\n\r\n)\r\n"
		  "u OK FETCH completed\r\n" },
		{ "v LOGOUT\r\n", "* BYE Logging out\r\nv OK LOGOUT completed\r\n" },
		{ NULL, NULL },
	};
	replay(t);
	assert_int_equal(fx_wait_closed(&fx, 5000), 0);
	assert_int_equal(fx_disconnect(&fx), 0);
}

/* ---- the view's sync: another session's STORE, EXPUNGE and a delivery ---- */

/* What another session (or queued) does to mailbox: flag uids with op, expunge them, or add a message. */
static void
other_flags(const char *mailbox, uint32_t uid, enum mc_store_flag_op op, uint32_t flags)
{
	char err[256];
	struct mc_store *st = mc_store_open(fx.home, 0, err, sizeof(err));
	assert_non_null(st);
	struct mc_store_flag_change ch = { .op = op, .flags = flags };
	assert_int_equal(mc_store_flags_change(st, mailbox, &uid, 1, &ch, NULL, NULL, NULL, err, sizeof(err)), 1);
	mc_store_close(st);
}

static void
other_expunge(const char *mailbox, uint32_t uid)
{
	char err[256];
	other_flags(mailbox, uid, MC_FLAGOP_ADD, MC_FLAG_DELETED);
	struct mc_store *st = mc_store_open(fx.home, 0, err, sizeof(err));
	assert_non_null(st);
	assert_int_equal(mc_store_expunge(st, mailbox, &uid, 1, err, sizeof(err)), 1);
	mc_store_close(st);
}

/* Send text, pump to its tagged answer (tag ' '), return everything said (the caller frees it). */
static char *
command(const char *text, const char *tag)
{
	assert_int_equal(fx_send(&fx, text, strlen(text)), 0);
	assert_int_equal(fx_wait_line(&fx, tag, 5000), 0);
	for (int k = 0; k < 3; k++)
		fx_pump(&fx, 0);
	return fx_take(&fx);
}

static void
expect_output(const char *want)
{
	for (int k = 0; k < 3; k++)
		fx_pump(&fx, 0);
	char *got = fx_take(&fx);
	if (getenv("TEST_RECORD"))
		printf("<< %s\n", got);
	else if (strcmp(got, want) != 0)
		fail_msg("wanted: %s\n   got: %s", want, got);
	free(got);
}

/*
 * The sync reads only what changed since the view's MODSEQ (and the
 * expunged table's tombstones): a non-UID FETCH may not expunge, so the
 * expunged message stays as a ghost (numbers do not shift under the
 * client) and NOOP reports it; an IDLE session is told of an expunge and
 * a STORE at once, in the RFC 3501 order; a row the view cannot show
 * (below its last UID) sends the sync to the full merge, which still
 * reports the expunge beside it.
 */
static void
test_view_sync(void **state)
{
	(void)state;
	char err[256];
	struct mc_store *st = mc_store_open(fx.home, 0, err, sizeof(err));
	assert_non_null(st);
	assert_int_equal(mc_store_mailbox_create(st, "Sync", NULL, err, sizeof(err)), 0);
	mc_store_close(st);
	for (int i = 0; i < 4; i++)
		assert_int_equal(fx_add_message(&fx, NULL, "Sync", i % 2 ? MSG2 : MSG1, 0, 1795741200 + i), 0);
	fx.srv.lim.plain_auth = MC_PLAIN_NO;
	struct imapd_session *s = connect_greeted(
		"* OK [CAPABILITY " CAPS_FIRST " LOGINDISABLED " CAPS_COMMON "] mx.example.test Postern IMAP ready\r\n");
	assert_int_equal(fx_login(&fx, s), 0);
	char *got = command("a SELECT Sync\r\n", "a ");
	assert_non_null(strstr(got, "* 4 EXISTS\r\n"));
	assert_non_null(strstr(got, "a OK [READ-WRITE] SELECT completed\r\n"));
	free(got);

	/* STORE 3, EXPUNGE 2 and a delivery elsewhere; FETCH (no EXPUNGE allowed) keeps 2 as a ghost */
	other_flags("Sync", 3, MC_FLAGOP_ADD, MC_FLAG_FLAGGED);
	other_expunge("Sync", 2);
	assert_int_equal(fx_add_message(&fx, NULL, "Sync", MSG3, MC_FLAG_SEEN, 1795748400), 0);
	static const struct step t1[] = {
		{ "b FETCH 1 (UID)\r\n",
		  "* 1 FETCH (UID 1)\r\n"
		  "* 3 FETCH (FLAGS (\\Recent \\Flagged))\r\n"
		  "* 5 EXISTS\r\n* 5 RECENT\r\n"
		  "b OK FETCH completed\r\n" },
		{ NULL, NULL },
	};
	replay(t1);
	assert_int_equal(s->view->n, 5);
	assert_int_equal(s->view->nghosts, 1);
	assert_int_equal(s->view->ghosts[0], 2);
	static const struct step t2[] = {
		{ "c STORE 1 +FLAGS (\\Answered)\r\n", "* 1 FETCH (FLAGS (\\Recent \\Answered))\r\nc OK STORE completed\r\n" },
		{ "d NOOP\r\n", "* 2 EXPUNGE\r\n* 4 EXISTS\r\n* 4 RECENT\r\nd OK NOOP completed\r\n" },
		{ "e IDLE\r\n", "+ idling\r\n" },
		{ NULL, NULL },
	};
	replay(t2);
	assert_int_equal(s->view->n, 4);
	assert_int_equal(s->view->nghosts, 0);

	/* While it idles: EXPUNGE 1, STORE uid 4 (now 3, then 2); the wake-up's sync tells it at once */
	other_expunge("Sync", 1);
	other_flags("Sync", 4, MC_FLAGOP_ADD, MC_FLAG_SEEN);
	assert_int_equal(imapd_store_need(s->store), 0);   /* as idle.c's wake-up does: the idle store reopened */
	imapd_view_sync(s, true);
	imapd_flush(s);
	imapd_store_rest(s->store);
	expect_output("* 1 EXPUNGE\r\n* 2 FETCH (FLAGS (\\Recent \\Seen))\r\n* 3 EXISTS\r\n* 3 RECENT\r\n");
	static const struct step t3[] = {
		{ "DONE\r\n", "e OK IDLE terminated\r\n" },
		{ NULL, NULL },
	};
	replay(t3);

	/* A row below the view's last UID that it never had (a reindex can do that): the full merge runs, leaves it out */
	other_expunge("Sync", 3);
	char db[600];
	sqlite3 *h;
	snprintf(db, sizeof(db), "%s/index.sqlite", fx.home);
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, "INSERT INTO messages(mailbox, uid, base, file, size, vsize, internal_date, modseq)"
				      " SELECT mailbox, 2, 'x2', 'new/x2', 1, 1, 0, highestmodseq + 1 FROM messages"
				      " JOIN mailboxes ON id = mailbox WHERE uid = 4 AND name = 'Sync';"
				      "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE name = 'Sync'",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	static const struct step t4[] = {
		{ "f NOOP\r\n", "* 1 EXPUNGE\r\n* 2 EXISTS\r\n* 2 RECENT\r\nf OK NOOP completed\r\n" },
		{ "g UID FETCH 1:* (FLAGS)\r\n",
		  "* 1 FETCH (UID 4 FLAGS (\\Recent \\Seen))\r\n* 2 FETCH (UID 5 FLAGS (\\Recent \\Seen))\r\ng OK FETCH completed\r\n" },
		{ "h LOGOUT\r\n", "* BYE Logging out\r\nh OK LOGOUT completed\r\n" },
		{ NULL, NULL },
	};
	replay(t4);
	assert_int_equal(fx_wait_closed(&fx, 5000), 0);
	assert_int_equal(fx_disconnect(&fx), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pre_login),
		cmocka_unit_test(test_nul_and_login),
		cmocka_unit_test(test_post_login),
		cmocka_unit_test(test_view_sync),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
