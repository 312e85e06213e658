/*
 * backoff.c - how long a deferred recipient waits: retry_min doubling up
 * to retry_max (RFC 5321 §4.5.4.1: at least 30 minutes is advised, the
 * defaults are Postfix's 5 minutes to about an hour), spread by a quarter
 * either way.
 *
 * Called by sched.c (q_sched_next_try) and by the unit test. A pure
 * function of its arguments: the random number comes from the caller, so
 * a test can walk its extremes. Never reads a clock or a file.
 */
#include "queued/queued.h"

uint64_t
q_backoff(uint64_t min, uint64_t max, uint32_t attempts, uint32_t rnd)
{
	if (min == 0)
		min = 1;
	if (max < min)
		max = min;
	uint64_t d = min;
	for (uint32_t i = 1; i < attempts && d < max; i++)
		d *= 2;
	if (d > max)
		d = max;
	/* d/4 either way, kept within [min, max], uniform over what is left */
	uint64_t lo = d - d / 4, hi = d + d / 4;
	if (lo < min)
		lo = min;
	if (hi > max)
		hi = max;
	return lo + (uint64_t)rnd % (hi - lo + 1);
}
