/*
 * fuzz_imap_session.c - libFuzzer target: arbitrary bytes from the client
 * of a logged-in imapd session that has INBOX selected, so every command
 * handler after login (FETCH, STORE, SEARCH, SORT, THREAD, COPY, MOVE,
 * EXPUNGE, APPEND, LIST, STATUS, RENAME, IDLE, ENABLE, COMPRESS, ...) runs
 * on hostile input: sequence sets far beyond the mailbox, nested search
 * programs, huge partial ranges, lying literals.
 *
 * The real imapd code runs through tests/unit/imapd_fx.h: the network
 * front, session and store on a loop in this thread, the client at the
 * other end of a socketpair. Each input starts from the same store, a copy
 * of a template made once: INBOX with five messages (plain, multipart with
 * an attachment, a nested message/rfc822, 8-bit and encoded-word headers,
 * flags and keywords), Lists.pg with two, and the special-use folders of a
 * first login. The bytes are sent after "S SELECT INBOX", then the client
 * half-closes; the session must end by itself within 10 s (else: a hang,
 * reported as a crash) and the daemon must not fault, leak or trip a
 * sanitizer anywhere on the way.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/imapd_fx.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct imapd_fx fx;
static char root[256], template_home[600];
static bool ready;

static const char *const msgs[] = {
	"From: Ann <ann@example.org>\r\nTo: alice@example.test, Bob <bob@example.org>\r\nCc: c@example.net\r\n"
	"Subject: hello there\r\nDate: Fri, 27 Nov 2026 01:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n\r\n"
	"Hello one.\r\nA second line.\r\n",

	"From: Bob <bob@example.org>\r\nTo: alice@example.test\r\nSubject: Re: hello there\r\n"
	"Date: Fri, 27 Nov 2026 02:00:00 +0100\r\nMessage-ID: <2@example.org>\r\nIn-Reply-To: <1@example.org>\r\n"
	"References: <1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
	"preamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
	"caf=C3=A9\r\n--b1\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\n"
	"Content-Disposition: attachment; filename=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	"AAECAwQFBgcICQ==\r\n--b1--\r\nepilogue\r\n",

	"From: =?utf-8?q?Caf=C3=A9?= <cafe@example.org>\r\nTo: undisclosed-recipients:;\r\n"
	"Subject: =?utf-8?b?w6lsw6h2ZQ==?= fwd\r\nDate: Fri, 27 Nov 2026 03:00:00 -0500\r\n"
	"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"x\"\r\n\r\n"
	"--x\r\nContent-Type: text/plain\r\n\r\nplain\r\n--x\r\nContent-Type: message/rfc822\r\n\r\n"
	"From: inner@example.org\r\nSubject: inner\r\nContent-Type: multipart/mixed; boundary=\"y\"\r\n\r\n"
	"--y\r\nContent-Type: text/html\r\n\r\n<p>deep</p>\r\n--y--\r\n--x--\r\n",

	"Subject: no from, 8-bit: \xc3\xa9t\xc3\xa9\r\n\r\nbody \xff\xfe with bytes\r\n",

	"From: d@example.org\r\nSubject: [list] fifth\r\nDate: bogus date\r\n\r\n.\r\n..\r\n",
};

static void
cleanup(void)
{
	fx_rmtree(root);
}

static void
init(void)
{
	char err[256];
	mc_log_init("fuzz_imap_session", MC_LOG_FATAL);
	/* tmpfs when there is one: every input copies a store, and the store fsyncs. */
	struct stat sb;
	snprintf(root, sizeof(root), "%s/fuzz-imap-session-XXXXXX", stat("/dev/shm", &sb) == 0 ? "/dev/shm" : "/tmp");
	if (mkdtemp(root) == NULL || fx_init(&fx, root, MC_PLAIN_YES) < 0)
		abort();
	atexit(cleanup);
	snprintf(template_home, sizeof(template_home), "%s/mail/example.test/template", root);
	static const uint32_t flags[] = { 0, MC_FLAG_SEEN, MC_FLAG_SEEN | MC_FLAG_FLAGGED, MC_FLAG_DELETED,
					  MC_FLAG_ANSWERED | MC_FLAG_DRAFT };
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++)
		if (fx_add_message(&fx, template_home, "INBOX", msgs[i], flags[i], 1795741200 + (int64_t)i * 3600) < 0)
			abort();
	struct mc_store *st = mc_store_open(template_home, 0, err, sizeof(err));
	if (st == NULL || mc_store_mailbox_create(st, "Lists", NULL, err, sizeof(err)) < 0 ||
	    mc_store_mailbox_create(st, "Lists.pg", NULL, err, sizeof(err)) < 0)
		abort();
	uint32_t uids[] = { 1, 2 };
	if (mc_store_copy(st, "INBOX", uids, 2, "Lists.pg", false, NULL, NULL, NULL, err, sizeof(err)) < 0)
		abort();
	mc_store_flags_change(st, "INBOX", uids, 1,
			      &(struct mc_store_flag_change){ .op = MC_FLAGOP_ADD, .keywords = "$Label1 Junk" }, NULL,
			      NULL, NULL, err, sizeof(err));
	mc_store_close(st);
	/* A first login makes Sent, Drafts, Trash, Junk and Archive: once, in the template. */
	struct imapd_session *s = fx_connect(&fx);
	if (s == NULL || imapd_session_login(s, "alice@example.test", template_home) < 0 || fx_disconnect(&fx) < 0)
		abort();
	ready = true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ready)
		init();
	fx_rmtree(fx.home);
	if (fx_copytree(template_home, fx.home) < 0)
		abort();
	fx.discard = false;
	struct imapd_session *s = fx_connect(&fx);
	if (s == NULL || fx_login(&fx, s) < 0)
		abort();
	free(fx_take(&fx));
	/* What the server answers is not looked at, only that it does not fault (FUZZ_SHOW=1: printed, to debug). */
	bool show = getenv("FUZZ_SHOW") != NULL;
	fx.discard = !show;
	static const char select_[] = "S SELECT INBOX\r\n";
	fx_send(&fx, select_, sizeof(select_) - 1);
	fx_send(&fx, data, size);   /* -1 when the session ended early (LOGOUT, BYE): fine */
	shutdown(fx.fd, SHUT_WR);
	if (fx_wait_closed(&fx, 10000) < 0)
		abort();   /* the session did not end after the client's end of file: a hang */
	if (show) {
		char *out = fx_take(&fx);
		fprintf(stderr, "%s", out);
		free(out);
	}
	if (fx_disconnect(&fx) < 0)
		abort();
	return 0;
}
