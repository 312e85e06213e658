/*
 * imapd.h - imapd's internal types: the server (what every session
 * shares), one session (a client connection), the selected mailbox's view,
 * and the functions the files of imapd/ call in each other.
 *
 *   session.c   accept, greeting, the input loop (commands, literals,
 *               continuation lines), responses, TLS, timeouts, close
 *   commands.c  the command table and the commands of any state:
 *               CAPABILITY, NOOP, LOGOUT, STARTTLS, LOGIN, AUTHENTICATE,
 *               ID, ENABLE, NAMESPACE, GETQUOTA(ROOT)/SETQUOTA
 *   mailbox.c   mailbox names, SELECT/EXAMINE, LIST/LSUB (LIST-EXTENDED,
 *               LIST-STATUS), STATUS, CREATE, UNSELECT, CHECK, and the
 *               selected view (sequence numbers <-> UIDs, untagged
 *               EXISTS/EXPUNGE/FETCH)
 *   modify.c    STORE, EXPUNGE, CLOSE, COPY, MOVE, DELETE, RENAME,
 *               SUBSCRIBE: the store's operations (mailstore_ops.h) as commands
 *   append.c    APPEND: the message literal streamed into the mailbox's tmp/
 *   searchcmd.c SEARCH, SORT, THREAD: search.c/sort.c/thread.c run on the view
 *   fetch.c     FETCH and UID FETCH, streamed from the Maildir files
 *   fetch_binary.c  FETCH BINARY (fetch.h between the two)
 *   idle.c      IDLE and run_dir/imapd.sock (MBOX_CHANGED from queued)
 *   stores.c    the open stores, one per user, shared by that user's sessions
 *   procs.c     several processes: the master, its workers, what they share
 *   compress.c  COMPRESS DEFLATE (RFC 4978) on the session's mc_conn
 *   parse.c     the reader and grammar cursor (parse.h)
 *   uidset.c    sets of UIDs as ranges: the saved SEARCH result ("$",
 *               RFC 5182) and the session's \Recent messages
 *   main.c      the thin main
 *
 * Not installed, not used outside imapd/ (and its tests).
 */
#ifndef IMAPD_IMAPD_H
#define IMAPD_IMAPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "imapd/parse.h"
#include "mail/envelope.h"
#include "util/buf.h"
#include "util/config.h"
#include "util/conn.h"
#include "util/tls.h"

struct mc_daemon;
struct mc_netsvc;
struct mc_netsvc_client;
struct mc_resolver;
struct mc_store;
struct mc_store_flag_change;
struct mc_chan_server;
struct mc_chan;
struct mc_msg;

/* Before login only credentials travel: small literals and lines (RFC 7888 LITERAL- bound). */
#define IMAPD_PRE_LITERAL_MAX 4096
#define IMAPD_PRE_LINE_MAX 8192
#define IMAPD_PRE_COMMAND_MAX 16384
/* After login: command lines and literals other than APPEND's. */
#define IMAPD_LINE_MAX (64 * 1024)
#define IMAPD_LITERAL_MAX (64 * 1024)
#define IMAPD_COMMAND_MAX (256 * 1024)
/* Before login the idle timeout is short; after it, RFC 3501 §5.4 asks for at least 30 minutes. */
#define IMAPD_PRE_TIMEOUT_MS (60 * 1000)
/* BAD answers before the session is closed. */
#define IMAPD_MAX_ERRORS 20

/* What a reload may change without a restart. */
struct imapd_limits {
	char hostname[256];
	unsigned max_connections;
	unsigned timeout_ms;        /* after login */
	int plain_auth;             /* enum mc_plain_auth */
	char sep;                   /* hierarchy separator shown to clients: '.' or '/' */
	uint64_t append_max;        /* APPENDLIMIT: [smtpd] max_message_size, the same bound as for mail received */
};

struct imapd_session;

struct imapd_server {
	uv_loop_t *loop;
	struct imapd_limits lim;
	struct mc_netsvc *svc;      /* listeners, TLS context, connection count */
	struct mc_resolver *res;
	struct imapd_session *sessions;
	struct mc_chan_server *notices;   /* run_dir/imapd.sock */
	char mail_root[MC_PATH_MAX + 8];  /* state_dir/mail/: every user's store lies below */
};

enum imapd_state {
	IMAPD_NOTAUTH = 1u << 0,
	IMAPD_AUTH = 1u << 1,
	IMAPD_SELECTED = 1u << 2,
	IMAPD_LOGOUT = 1u << 3,
};

/* What reads the next line instead of the command dispatcher. */
enum imapd_wait {
	IMAPD_W_NONE = 0,
	IMAPD_W_TLS,                /* a TLS handshake runs */
	IMAPD_W_SASL,               /* AUTHENTICATE: the client's response line */
	IMAPD_W_IDLE,               /* IDLE: "DONE" */
};

/* One message as the selected view keeps it: 16 bytes, no strings. */
struct imapd_msg {
	uint32_t uid;
	uint32_t flags;             /* enum mc_store_flag as last reported */
	uint64_t modseq;
};

/* A set of numbers as ascending, disjoint ranges (uidset.c). */
struct imapd_uidset {
	struct imap_seqrange *r;
	size_t n, cap;
};

/* The selected mailbox: what the client has been told. */
struct imapd_view {
	char name[256];             /* internal name ("INBOX", "Lists.pg") */
	int64_t id;
	bool readonly;              /* EXAMINE */
	uint32_t uidvalidity;
	uint32_t uidnext;           /* next UID the client knows of */
	uint64_t modseq;            /* changes up to this one were reported */
	struct imapd_msg *msgs;     /* in sequence order */
	uint32_t n, cap;
	/* \Recent (RFC 3501 §2.3.2): the UIDs this session was first to be told of (claimed in the index) */
	struct imapd_uidset recent;
	uint32_t recent_upto;       /* UIDs up to here were considered for \Recent */
	/* SEARCHRES (RFC 5182): the saved search result as UIDs; reset with the view */
	struct imapd_uidset saved;
	/*
	 * Ghosts: UIDs gone from the index whose EXPUNGE RFC 3501 §7.4.1 did
	 * not allow yet; still in msgs, sorted, reported at the next sync
	 * that may expunge (so that sync need not re-read the mailbox).
	 */
	uint32_t *ghosts;
	uint32_t nghosts, capghosts;
};

struct imapd_fetch;
struct imapd_append;
struct imapd_expunging;

struct imapd_session {
	struct imapd_session *prev, *next;
	struct imapd_server *srv;
	struct mc_conn *conn;
	char id[16];
	char ip[64];
	enum imapd_state state;
	enum imapd_wait wait;
	bool tls;
	bool greeted;
	bool busy;                  /* waiting for resolverd or streaming output: input paused */
	bool store_wait;            /* parked while the user's store is lent to a pool thread (append.c) */
	bool idle_missed;           /* in IDLE, a wake passed by while the store was lent: told when it is back */
	bool closing;
	unsigned errors;
	bool expunge_ok;            /* the running command may be answered with EXPUNGE (RFC 3501 §7.4.1) */
	struct imap_reader rd;
	struct mc_buf out;
	char cmdtag[IMAP_TAG_MAX + 1];   /* the tag being answered */
	char cmdname[IMAP_ATOM_MAX + 1];
	/* after login */
	char user[MC_ADDR_MAX];
	char home[1024];
	struct mc_store *store;
	bool store_idle;            /* counted idle in stores.c (IDLE); cleared by imapd_store_busy */
	bool procs_idle;            /* counted in IDLE by procs.c (other workers send notices only when some idle) */
 	uint32_t res_call;
	uint64_t quota;             /* bytes, from the directory at login; 0 = none */
	bool utf8;                  /* ENABLE UTF8=ACCEPT */
	bool condstore;
	bool qresync;               /* ENABLE QRESYNC: VANISHED instead of EXPUNGE (RFC 7162 §3.2.10) */
	bool rev2;                  /* ENABLE IMAP4rev2 (RFC 9051): no \Recent, ESEARCH only, UTF-8 names */
	bool cmd_uid;               /* the running command is a UID command: "$" resolves to UIDs */
	struct imapd_uidset dollar; /* "$" of the running command as it reads sets (imapd_saved_resolve) */
	struct imapd_view *view;    /* SELECTED */
	struct imapd_fetch *fetch;  /* a FETCH streaming out */
	struct imapd_append *append;   /* an APPEND whose literal is streaming in */
	struct imapd_expunging *expunging;   /* an EXPUNGE or CLOSE whose removal runs in the pool */
	/* IDLE */
	char idle_tag[IMAP_TAG_MAX + 1];
	/* counters for the disconnect line */
	unsigned ncommands;
};

/* ---- session.c ---- */

void imapd_server_init(struct imapd_server *srv, uv_loop_t *loop, const struct mc_config *cfg);
void imapd_server_limits(struct imapd_server *srv, const struct mc_config *cfg);
/* netsvc's on_client: a new client (TLS already up on listen_tls); returns the session. */
void *imapd_server_client(struct mc_netsvc *svc, const struct mc_netsvc_client *cl, void *arg);
/* netsvc's on_shutdown: BYE and close. */
void imapd_session_shutdown(void *session);
/* The session callbacks netsvc hands each conn. */
extern const struct mc_conn_cbs imapd_session_cbs;
/* Plaintext input bound of a conn. */
#define IMAPD_IN_MAX (64 * 1024)
/* The greeting in place of OK when max_connections are open (main.c, the unit fixture). */
#define IMAPD_BUSY_REPLY "* BYE [UNAVAILABLE] Too many connections, try again later\r\n"

/* Queue a response line (CRLF added). */
void imapd_send(struct imapd_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Queue bytes as they are. */
void imapd_send_raw(struct imapd_session *s, const void *p, size_t n);
/* Queue a string as a quoted string, or as a literal when it cannot be quoted. */
void imapd_send_string(struct imapd_session *s, const char *str, size_t len);
/* The tagged answer of the current command ("OK", "NO", "BAD"); mailbox updates go first for OK/NO. */
void imapd_done(struct imapd_session *s, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Send queued output now. */
void imapd_flush(struct imapd_session *s);
/* Say BYE (text) and close once the output is out. */
void imapd_session_close(struct imapd_session *s, const char *bye, const char *why);
/* Waiting for another daemon or for output to drain: stop reading input. */
void imapd_session_wait(struct imapd_session *s);
/* Go on with the input already buffered. */
void imapd_session_go(struct imapd_session *s);
/* Is LOGIN/AUTHENTICATE allowed now (TLS, or plaintext permitted)? */
bool imapd_session_auth_allowed(const struct imapd_session *s);
/* Logged in as user with the mail store at home: open it, switch limits and state. 0, or -1 (NO sent). */
int imapd_session_login(struct imapd_session *s, const char *user, const char *home);
/* store came back from a pool thread: the parked sessions go on, then a waiting APPEND takes it. */
void imapd_session_store_back(struct imapd_server *srv, struct mc_store *store);

/* ---- stores.c ---- */

/* The store at path for a new session: the one already open for that user, or a new one. NULL with err. */
struct mc_store *imapd_store_get(const char *path, char *err, size_t errsz);
/* A session lets go of its store (idle: it was counted idle); the last one closes it. NULL is a no-op. */
void imapd_store_put(struct mc_store *store, bool idle);
/* s entered IDLE: when all of its user's sessions idle, the store's index connection is closed. */
void imapd_store_idle(struct imapd_session *s);
/* s needs its store (DONE, a command): open it again if it was suspended. 0, or -1 (logged). */
int imapd_store_busy(struct imapd_session *s);
/* The store is needed for a moment (a sync of idling sessions): open it again if suspended. 0, or -1. */
int imapd_store_need(struct mc_store *store);
/* After such a moment: suspend again when every holder still idles. */
void imapd_store_rest(struct mc_store *store);
/* The store's connection goes to a pool thread (lent) or comes back: no session uses it while lent. */
void imapd_store_lend(struct mc_store *store, bool lent);
bool imapd_store_lent(struct mc_store *store);

/* ---- commands.c ---- */

/* Run one complete command (cmd[0..len), writable). */
void imapd_cmd_run(struct imapd_session *s, char *cmd, size_t len);
/* A line while wait is IMAPD_W_SASL. */
void imapd_auth_line(struct imapd_session *s, char *line, size_t len);
/* The CAPABILITY list for this session's state ("IMAP4rev1 ..."). */
void imapd_capabilities(const struct imapd_session *s, char *out, size_t outsz);

/* ---- mailbox.c ---- */

void imapd_cmd_select(struct imapd_session *s, struct imap_p *p, bool uid);
void imapd_cmd_examine(struct imapd_session *s, struct imap_p *p, bool uid);
void imapd_cmd_create(struct imapd_session *s, struct imap_p *p, bool uid);
void imapd_cmd_list(struct imapd_session *s, struct imap_p *p, bool uid);
void imapd_cmd_lsub(struct imapd_session *s, struct imap_p *p, bool uid);
void imapd_cmd_status(struct imapd_session *s, struct imap_p *p, bool uid);
void imapd_cmd_close(struct imapd_session *s, struct imap_p *p, bool uid);
void imapd_cmd_unselect(struct imapd_session *s, struct imap_p *p, bool uid);
void imapd_cmd_check(struct imapd_session *s, struct imap_p *p, bool uid);
/* Ensure Sent, Drafts, Trash, Junk and Archive exist with their SPECIAL-USE (first login). */
void imapd_mailbox_defaults(struct imapd_session *s);
/* Forget the selected mailbox. */
void imapd_view_free(struct imapd_session *s);
/*
 * Tell the client what changed in the selected mailbox since it was last
 * told: EXPUNGE (only when expunge_ok), EXISTS, FETCH FLAGS. Queued, not flushed.
 */
void imapd_view_sync(struct imapd_session *s, bool expunge_ok);
/* "\\Seen \\Answered $Label": a message's flags and keywords as FLAGS shows them. */
void imapd_flags_text(char *out, size_t outsz, uint32_t flags, const char *keywords);
/* The same for message uid of the view, with \Recent first when it is recent in this session. */
void imapd_msg_flags_text(const struct imapd_session *s, uint32_t uid, char *out, size_t outsz, uint32_t flags,
			  const char *keywords);
/* QRESYNC: "* VANISHED (EARLIER)" for UIDs expunged after since (among known, NULL: all), then FETCH of
 * the messages changed after since when fetch. */
void imapd_vanished_earlier(struct imapd_session *s, uint64_t since, const struct imap_seqset *known, bool fetch);
/* Append "1:3,7" for ascending UIDs. */
void imapd_uid_set(struct mc_buf *out, const uint32_t *uids, size_t n);
/* Has the store mailbox name children (a mailbox name.x)? */
bool imapd_mailbox_has_children(struct imapd_session *s, const char *name);
/* Sequence number (1-based) of uid in the view, 0 if absent. */
uint32_t imapd_view_seq(const struct imapd_view *v, uint32_t uid);
/* A client name (modified UTF-7 or UTF-8) to the store's name; -1 when refused (why). */
int imapd_mailbox_from_client(const struct imapd_session *s, const char *in, char *out, size_t outsz,
			      const char **why);

/* ---- uidset.c ---- */

/* Add lo..hi (lo <= hi, not below what the set holds already). 0, or -1 out of memory. */
int imapd_uidset_add(struct imapd_uidset *u, uint32_t lo, uint32_t hi);
bool imapd_uidset_has(const struct imapd_uidset *u, uint32_t n);
void imapd_uidset_free(struct imapd_uidset *u);
/* SEARCHRES: keep nums (ascending UIDs, or sequence numbers of the view when !uid) as the saved result. 0 or -1. */
int imapd_saved_keep(struct imapd_session *s, const uint32_t *nums, size_t n, bool uid);
/* imap_p's saved callback (arg: the session): "$" as the running command reads sets. */
int imapd_saved_resolve(void *session, struct imap_seqset *set);
/* Is uid \Recent for this session (never after ENABLE IMAP4rev2)? */
bool imapd_recent_has(const struct imapd_session *s, uint32_t uid);
/* How many messages of the view are \Recent. */
uint32_t imapd_recent_count(const struct imapd_session *s);
/*
 * This session's APPEND of uid (flags, at MODSEQ modseq) into mailbox was
 * committed; recent: the commit claimed it \Recent for this session
 * (mc_store_append_index). Into the selected mailbox, with the view up to
 * date until that commit, the message is taken in and EXISTS said here,
 * without asking the index what changed; else the next sync finds it
 * (and counts it recent).
 */
void imapd_view_appended(struct imapd_session *s, const char *mailbox, uint32_t uid, uint32_t flags,
			 uint64_t modseq, bool recent);

/* ---- modify.c ---- */

void imapd_cmd_store(struct imapd_session *s, struct imap_p *p, bool uid);
void imapd_cmd_expunge(struct imapd_session *s, struct imap_p *p, bool uid);
void imapd_cmd_copy(struct imapd_session *s, struct imap_p *p, bool uid);
void imapd_cmd_move(struct imapd_session *s, struct imap_p *p, bool uid);
void imapd_cmd_delete(struct imapd_session *s, struct imap_p *p, bool uid);
void imapd_cmd_rename(struct imapd_session *s, struct imap_p *p, bool uid);
void imapd_cmd_subscribe(struct imapd_session *s, struct imap_p *p, bool uid);
void imapd_cmd_unsubscribe(struct imapd_session *s, struct imap_p *p, bool uid);
/* The session ends while its EXPUNGE runs in the pool: that one finishes without it. */
void imapd_expunge_free(struct imapd_session *s);

/* Send a store name as the client reads names: modified UTF-7, or UTF-8 after ENABLE UTF8=ACCEPT. */
void imapd_send_mailbox(struct imapd_session *s, const char *name);
/* The tagged NO for a store error r (MC_STORE_E* or -1, err logged) of command what. */
void imapd_store_error(struct imapd_session *s, int r, const char *err, const char *what);
/* Longest keyword list of one STORE or APPEND. */
#define IMAPD_KEYWORDS_TEXT_MAX 4096
/* One flag f (as imap_p_flag gives it) into ch: a system flag bit, or a keyword appended to kw. */
int imapd_flag_take(struct imap_p *p, const char *f, struct mc_store_flag_change *ch, char *kw, size_t kwsz);

/* ---- append.c ---- */

/* The command table's APPEND: only reached when the message is no literal (BAD). */
void imapd_cmd_append(struct imapd_session *s, struct imap_p *p, bool uid);
/*
 * The reader stopped at a literal announced by an APPEND command
 * (IMAP_RD_LITERAL): when it is the message, check what can be checked
 * before a byte is read and start streaming it into the mailbox's tmp/.
 * Returns the reader event for the session to act on (IMAP_RD_CONTINUE:
 * send "+"); IMAP_RD_MORE also after a refusal it answered itself.
 */
enum imap_rd imapd_append_literal(struct imapd_session *s);
/* Bytes of the streaming message (IMAP_RD_DATA). */
void imapd_append_data(struct imapd_session *s, const char *p, size_t n);
/* The APPEND command is complete (cmd[0..len)): store the message, answer. */
void imapd_append_end(struct imapd_session *s, const char *cmd, size_t len);
/* The session ends: a message half received goes, with its tmp/ file. */
void imapd_append_free(struct imapd_session *s);
/* s's store is back: if s's APPEND waits to commit, it takes the store now (lent again): true. */
bool imapd_append_store_back(struct imapd_session *s);

/* ---- searchcmd.c ---- */

void imapd_cmd_search(struct imapd_session *s, struct imap_p *p, bool uid);
void imapd_cmd_sort(struct imapd_session *s, struct imap_p *p, bool uid);
void imapd_cmd_thread(struct imapd_session *s, struct imap_p *p, bool uid);

/* ---- fetch.c ---- */

void imapd_cmd_fetch(struct imapd_session *s, struct imap_p *p, bool uid);
/* Output drained below the mark: stream more of the FETCH in progress. */
void imapd_fetch_resume(struct imapd_session *s);
/* The session ends: drop the FETCH in progress. */
void imapd_fetch_free(struct imapd_session *s);

/* ---- compress.c ---- */

void imapd_cmd_compress(struct imapd_session *s, struct imap_p *p, bool uid);
/* Output of a batch was flushed: let go of what an idle session does not need. */
void imapd_compress_batch_done(struct imapd_session *s);

/* ---- idle.c ---- */

void imapd_cmd_idle(struct imapd_session *s, struct imap_p *p, bool uid);
/* A line while wait is IMAPD_W_IDLE. */
void imapd_idle_line(struct imapd_session *s, const char *line, size_t len);
/* s changed mailbox (a store name): other sessions idling on it are told now. */
void imapd_idle_changed(struct imapd_session *s, const char *mailbox);
/* The same for a change made for a session that has ended meanwhile (user and home were its own). */
void imapd_idle_changed_at(struct imapd_server *srv, const char *user, const char *home, const char *mailbox,
			   const struct imapd_session *except);
/* s idles and a wake passed it by while its store was lent: tell it now. */
void imapd_idle_missed(struct imapd_session *s);
/* Listen on run_dir/imapd.sock for MBOX_CHANGED. */
void imapd_notices_start(struct imapd_server *srv, const struct mc_config *cfg);
void imapd_notices_stop(struct imapd_server *srv);
/* A message on imapd.sock or on a worker's channel to its master: MBOX_CHANGED wakes IDLE sessions. */
void imapd_notice_msg(struct mc_chan *ch, struct mc_msg *m, void *arg);

/* procs.c: imapd on several processes, a master and its workers ([imapd] processes). */
typedef int (*imapd_procs_main_fn)(struct mc_daemon *d);
/* How many processes the config asks for (auto: the online CPUs). */
unsigned imapd_procs_wanted(const struct mc_config *cfg);
/*
 * After the drop: fork n workers, each of which runs worker_main(d) on a
 * loop of its own and exits with its result; this process becomes their
 * master and never accepts a client. 0, or -1 (nothing forked: serve alone).
 */
int imapd_procs_start(struct imapd_server *srv, struct mc_daemon *d, unsigned n, imapd_procs_main_fn worker_main);
/* Master: SIGTERM to every worker; its loop ends once all are gone. */
void imapd_procs_stop(void);
/* Master: d->connections and d->state from the workers (the on_status hook). */
void imapd_procs_status(struct mc_daemon *d);
/* Reload: say that a changed [imapd] processes waits for a restart (the master or the one process says it). */
void imapd_procs_check_reload(const struct mc_config *newcfg);
/* Master: pass the reload going on (and its certificate files) to every worker. */
void imapd_procs_reload(struct mc_daemon *d);
/* Master: imapd.sock channel hooks that tell a worker's channel from queued's. */
void imapd_procs_peer_up(struct mc_chan *ch, void *arg);
void imapd_procs_peer_down(struct mc_chan *ch, void *arg);
/* Master: a mailbox changed: tell every worker but the one at from. */
void imapd_procs_fanout(struct mc_chan *from, const char *addr, const char *mailbox, const char *path);
/* Worker: a session here changed a mailbox: the master tells the other workers. */
void imapd_procs_changed(const char *addr, const char *mailbox, const char *path);
/* s enters (or leaves, or closes in) IDLE: counted for the other workers (before its sync on entering). */
void imapd_procs_idle(struct imapd_session *s, bool idle);
/* Worker: close the channel to the master (stop). */
void imapd_procs_worker_stop(void);
bool imapd_procs_is_worker(void);
/* netsvc ops->count: the connections of every worker (this one's is local). */
unsigned imapd_procs_count(struct mc_netsvc *svc, unsigned local, void *arg);
/* Worker: is its resolverd channel up (for the master's status)? */
void imapd_procs_report(bool resolver_up);

#endif
