/*
 * qid.h - queue ids: short, unique, never reused, sortable by arrival.
 *
 * A queue id is 16 characters of [0-9A-F]: microseconds since the epoch
 * (13 hex digits) followed by a 3-digit counter, so two ids made in one
 * microsecond differ and an id never repeats across restarts (time only
 * moves forward for this purpose: the last id is remembered in-process and
 * the queue refuses an id whose file exists, O_EXCL). It starts every log
 * line about the message.
 */
#ifndef MC_QID_H
#define MC_QID_H

#include <stdbool.h>
#include <stddef.h>

#define MC_QID_LEN 16

/* Make a new id into out (at least MC_QID_LEN + 1 bytes). */
void mc_qid_new(char *out);
/* Is s a well-formed queue id (so it is safe in a path)? */
bool mc_qid_valid(const char *s);

#endif
