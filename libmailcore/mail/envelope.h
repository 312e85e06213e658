/*
 * envelope.h - a message's envelope: what smtpd tells queued at commit and
 * what queued keeps in its database, with the one encoder/decoder for the
 * Q_SUBMIT_COMMIT payload.
 *
 * Addresses are stored without angle brackets ("" is the null sender).
 * DSN parameters (RFC 3461) are kept as received (ENVID and ORCPT in their
 * xtext form) so bounces can quote them.
 */
#ifndef MC_ENVELOPE_H
#define MC_ENVELOPE_H

#include <stdint.h>
#include <time.h>

#include "util/msg.h"

#define MC_ADDR_MAX 512       /* an address, room for SMTPUTF8 and quoting */
#define MC_QID_MAX 32
#define MC_DSN_PARAM_MAX 512  /* ENVID, ORCPT (xtext) */

enum mc_env_flags {
	MC_ENV_8BITMIME = 1u << 0,
	MC_ENV_BINARYMIME = 1u << 1,
	MC_ENV_SMTPUTF8 = 1u << 2,
	MC_ENV_RET_FULL = 1u << 3,    /* RET=FULL */
	MC_ENV_RET_HDRS = 1u << 4,    /* RET=HDRS */
	MC_ENV_AUTHENTICATED = 1u << 5,
	MC_ENV_DSN = 1u << 6,         /* a delivery status notification made by queued: never bounced, held */
};

enum mc_notify {
	MC_NOTIFY_NEVER = 1u << 0,
	MC_NOTIFY_SUCCESS = 1u << 1,
	MC_NOTIFY_FAILURE = 1u << 2,
	MC_NOTIFY_DELAY = 1u << 3,
	/* none set: the default (FAILURE and DELAY) */
};

struct mc_rcpt {
	char addr[MC_ADDR_MAX];
	char orcpt[MC_DSN_PARAM_MAX];   /* "rfc822;user@example" or "" */
	uint32_t notify;                /* enum mc_notify bits */
};

struct mc_envelope {
	char qid[MC_QID_MAX];
	char sender[MC_ADDR_MAX];       /* "" : the null sender <> */
	char envid[MC_DSN_PARAM_MAX];
	char auth_user[MC_ADDR_MAX];    /* who authenticated, "" when nobody */
	char client[256];               /* "helo-name [ip]" for logs */
	uint32_t flags;                 /* enum mc_env_flags */
	uint64_t size;                  /* body bytes as stored in the queue file */
	int64_t arrival;                /* unix time */
	uint32_t nrcpt;
	struct mc_rcpt *rcpt;           /* nrcpt entries, malloc'd */
};

void mc_envelope_init(struct mc_envelope *e);
void mc_envelope_free(struct mc_envelope *e);
/* Append a recipient; -1 past max. */
int mc_envelope_add_rcpt(struct mc_envelope *e, const char *addr, const char *orcpt, uint32_t notify,
			 uint32_t max);
/* Put the envelope into a message (Q_SUBMIT_COMMIT payload). */
void mc_envelope_put(struct mc_msg *m, const struct mc_envelope *e);
/* Read it back, every length checked; at most max_rcpt recipients. -1 on a malformed payload. */
int mc_envelope_get(struct mc_msg *m, struct mc_envelope *e, uint32_t max_rcpt);

#endif
