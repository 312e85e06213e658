/*
 * guard.h - the guard against password guessing, shared by every protocol
 * (smtpd, pop3d and imapd all ask resolverd to check credentials).
 *
 * Failures are counted per client address (an IPv4 address; an IPv6 /64,
 * since one host usually holds a whole /64) and per account, in a bounded
 * table: when it is full the entry touched longest ago is forgotten. A
 * count is forgotten once block_time has passed without a new failure.
 *
 * With F = the larger of the client's and the account's counts before an
 * attempt: when F >= delay_after the answer (success or failure alike, so
 * the delay tells nothing) is held F - delay_after + 1 seconds, at most
 * GUARD_DELAY_MAX_MS. The failure that brings a count to block_after blocks
 * that address or account for block_time: every attempt is then refused
 * without looking at the password, even the right one. A success clears
 * the client's and the account's counts.
 *
 * The guard decides; resolverd/auth.c holds the answer with a uv timer.
 * Time comes through struct guard_clock so tests can move it by hand.
 */
#ifndef RESOLVERD_GUARD_H
#define RESOLVERD_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUARD_DELAY_MAX_MS 10000
#define GUARD_ENTRIES_MAX 100000

struct guard;

struct guard_clock {
	uint64_t (*now_ms)(void *arg);   /* a monotonic clock in milliseconds */
	void *arg;
};

struct guard_limits {
	unsigned delay_after;    /* failures before answers are slowed (0: from the first attempt) */
	unsigned block_after;    /* failures that block (0: never block) */
	unsigned block_time;     /* seconds */
};

struct guard_verdict {
	bool blocked;            /* refuse without checking the password */
	unsigned delay_ms;       /* hold the answer this long */
	unsigned failures;       /* the larger count, before this attempt */
};

/* max_entries: table bound (GUARD_ENTRIES_MAX in resolverd); clock NULL: the system's monotonic clock. */
struct guard *guard_new(const struct guard_limits *lim, size_t max_entries, const struct guard_clock *clock);
void guard_free(struct guard *g);
/* New limits (SIGHUP); counts and blocks are kept. */
void guard_set_limits(struct guard *g, const struct guard_limits *lim);

/* Before an attempt by client for account (as given; lowercased here). */
void guard_check(struct guard *g, const char *client, const char *account, struct guard_verdict *v);
/* The attempt failed: count it and log it (and a block it causes). delay_ms: from guard_check. */
void guard_failed(struct guard *g, const char *service, const char *client, const char *account,
		  unsigned delay_ms);
/* The attempt succeeded: forget the client's and the account's failures. */
void guard_succeeded(struct guard *g, const char *client, const char *account);

/* Entries in the table (tests, status). */
size_t guard_size(const struct guard *g);
/*
 * The table key for a client address: "192.0.2.7", "2001:db8:1:2::/64";
 * text that is no address is kept as written. Exposed for tests.
 */
void guard_client_key(const char *client, char *out, size_t outsz);

#endif
