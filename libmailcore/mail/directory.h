/*
 * directory.h - the directory: local domains, users (password hashes,
 * quotas) and aliases, in state_dir/directory.sqlite (SQLite, WAL).
 *
 * resolverd opens it to answer the other daemons (recipient checks,
 * expansion for delivery, credentials); the postern tool opens it to change
 * it. Both read and write the same file: WAL lets resolverd read while the
 * tool writes, and every lookup starts a new read, so a change made by the
 * tool is seen by a running resolverd at once, without a reload.
 *
 * Names as stored:
 *   domains    lowercase; LDH labels (bytes >= 0x80 allowed: IDN as written)
 *   users      "local@domain", lowercase; the domain must be a local domain;
 *              the local part names the user's Maildir, so it must be safe as
 *              a directory name: 1-64 octets, no '/', no leading, trailing or
 *              doubled '.', no '+' (the subaddress separator), no spaces,
 *              quotes, backslashes, '@' or control characters
 *   aliases    source -> target, several targets per source; a source is
 *              "local@domain" of a local domain (a '+' is allowed: an exact
 *              alias wins over the +tag rule) or "@domain", a catch-all for
 *              that domain. A target is any address (remote ones relay), or
 *              "@otherdomain" for a catch-all source: the same local part at
 *              the other domain.
 *
 * Lookup rules (mc_dir_rcpt and mc_dir_expand), for ADDR = LOCAL@DOMAIN,
 * compared lowercase; BASE is LOCAL up to its first '+':
 *   1. DOMAIN not a local domain: remote.
 *   2. An alias with source ADDR, else a user ADDR.
 *   3. An alias with source BASE@DOMAIN, else a user BASE@DOMAIN (+tag).
 *   4. A catch-all alias "@DOMAIN".
 *   5. postmaster@DOMAIN (RFC 5321 §4.5.1: always accepted). With no user,
 *      alias or catch-all of its own it goes to the first user of DOMAIN in
 *      alphabetical order; when DOMAIN has no users, to the first user of
 *      the whole directory. Only a directory without any user leaves it
 *      unknown (and resolverd logs that). A bare "postmaster" (RCPT
 *      TO:<Postmaster>, no domain) goes to the first user of the directory.
 *   6. Otherwise unknown.
 * Expansion follows alias targets recursively (depth limit MC_DIR_DEPTH_MAX).
 * An alias target already on the path being expanded is a loop: when it is
 * a user it is delivered to that user ("alice -> alice, bob" keeps a copy),
 * otherwise that branch ends with a warning. Destinations are de-duplicated;
 * an expansion that ends with none answers one UNKNOWN for the address.
 */
#ifndef MC_DIRECTORY_H
#define MC_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/proto.h"
#include "mail/resolver_client.h"
#include "util/config.h"

#define MC_DIR_FILE "directory.sqlite"
#define MC_DIR_ADDR_MAX 320          /* 64 + "@" + 255 */
#define MC_DIR_DEPTH_MAX 10          /* alias recursion */
#define MC_DIR_EXPAND_MAX 1000       /* destinations of one expansion */

struct mc_dir;

struct mc_dir_domain {
	const char *name;
	int64_t created;                 /* unix time */
	unsigned users;
	unsigned aliases;
};

struct mc_dir_user {
	const char *address;
	uint64_t quota;                  /* bytes; 0 = no quota */
	int64_t created;
};

struct mc_dir_alias {
	const char *source;
	const char *target;
	int64_t created;
};

/* Listing callbacks: rows are valid during the call only. */
typedef void (*mc_dir_domain_cb)(void *arg, const struct mc_dir_domain *d);
typedef void (*mc_dir_user_cb)(void *arg, const struct mc_dir_user *u);
typedef void (*mc_dir_alias_cb)(void *arg, const struct mc_dir_alias *a);

/*
 * Open state_dir/directory.sqlite, creating it (mode 0600) and its tables
 * when missing. busy_ms: how long a write may wait for another writer
 * (the tool: seconds; resolverd, which only reads: a little). NULL with err.
 */
struct mc_dir *mc_dir_open(const struct mc_config *cfg, unsigned busy_ms, char *err, size_t errsz);
void mc_dir_close(struct mc_dir *dir);

/*
 * The one place that computes a user's Maildir++ directory:
 * state_dir/mail/DOMAIN/LOCAL for the (lowercased) address. -1 when the
 * address is not a safe user address or the path does not fit.
 */
int mc_dir_mailbox_path(const struct mc_config *cfg, const char *address, char *out, size_t sz);

/* Lowercase and check a domain name into out; -1 with err. */
int mc_dir_domain_norm(const char *domain, char *out, size_t outsz, char *err, size_t errsz);
/* Lowercase and check a user address (syntax only, not the domain's existence); -1 with err. */
int mc_dir_user_norm(const char *address, char *out, size_t outsz, char *err, size_t errsz);

/* Changes: 0, or -1 with err saying why ("domain example.test already exists"). */
int mc_dir_domain_add(struct mc_dir *dir, const char *domain, char *err, size_t errsz);
/* Refused while the domain has users or aliases unless force (which deletes them; mailboxes stay on disk). */
int mc_dir_domain_del(struct mc_dir *dir, const char *domain, bool force, char *err, size_t errsz);
/* hash: a crypt(3) string (util/passwd.h); quota in bytes, 0 = none. */
int mc_dir_user_add(struct mc_dir *dir, const char *address, const char *hash, uint64_t quota, char *err,
		    size_t errsz);
int mc_dir_user_del(struct mc_dir *dir, const char *address, char *err, size_t errsz);
int mc_dir_user_set_hash(struct mc_dir *dir, const char *address, const char *hash, char *err, size_t errsz);
int mc_dir_alias_add(struct mc_dir *dir, const char *source, const char *target, char *err, size_t errsz);
/* target NULL: every alias of source. -1 when nothing matched. */
int mc_dir_alias_del(struct mc_dir *dir, const char *source, const char *target, char *err, size_t errsz);

/* Listings in alphabetical order; domain NULL: all, else only that domain's. 0, or -1 with err. */
int mc_dir_domain_list(struct mc_dir *dir, mc_dir_domain_cb cb, void *arg, char *err, size_t errsz);
int mc_dir_user_list(struct mc_dir *dir, const char *domain, mc_dir_user_cb cb, void *arg, char *err,
		     size_t errsz);
int mc_dir_alias_list(struct mc_dir *dir, const char *domain, mc_dir_alias_cb cb, void *arg, char *err,
		      size_t errsz);

/* Is domain (any case) a local domain? 1 yes, 0 no, -1 error. */
int mc_dir_domain_exists(struct mc_dir *dir, const char *domain);
/*
 * A user by address (any case; no +tag rule): 1 with u (u->address points
 * at canon) and the hash copied, 0 when there is no such user, -1 on error.
 * canon gets the stored address (MC_DIR_ADDR_MAX + 1 bytes).
 */
int mc_dir_user_get(struct mc_dir *dir, const char *address, struct mc_dir_user *u, char *canon, char *hash,
		    size_t hashsz);

/*
 * Recipient check. canonical gets the address lowercased when local (or
 * unknown), with only the domain lowercased when remote; the +tag is kept.
 * MC_RCPT_TEMPFAIL when the database could not answer (logged).
 */
enum mc_rcpt_result mc_dir_rcpt(struct mc_dir *dir, const char *address, char *canonical, size_t sz);

/*
 * Expand address for delivery into at most max destinations (see the rules
 * above). LOCAL: mailbox is the user's Maildir and address the address as
 * it reached that user, lowercased, +tag kept ("alice+news@d" for user
 * alice@d; "postmaster@d" for postmaster's fallback user; the user's own
 * address after an alias): what Delivered-To says. Two ways into one
 * mailbox deliver once. REMOTE and UNKNOWN: the address. 0 with *n set,
 * or -1 (database error, more than max destinations; logged): defer.
 */
int mc_dir_expand(struct mc_dir *dir, const char *address, struct mc_dest *out, unsigned max, unsigned *n);

/* The last database error (for logs). */
const char *mc_dir_errmsg(const struct mc_dir *dir);

#endif
