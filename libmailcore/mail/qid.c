/*
 * qid.c - queue ids (see qid.h).
 *
 * Called by queued when a submission begins (and by tests). Owns the last
 * id handed out in this process, behind a mutex so threads may ask too.
 * An id is the time in microseconds (13 hex digits) and a 3-digit counter:
 * when the clock has not moved past the last id (or went back), the
 * counter goes up; when it runs out, the id borrows the next microsecond.
 * So ids from one process are strictly increasing and never repeat. Never
 * touches the file system: O_EXCL in the queue catches the impossible.
 */
#include "mail/qid.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/time.h>

#define TIME_DIGITS 13
#define COUNT_DIGITS 3
#define COUNT_MAX 0xfffu
#define TIME_MASK ((UINT64_C(1) << (4 * TIME_DIGITS)) - 1)

static pthread_mutex_t qid_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t last_us;
static unsigned last_count;

static const char hexdigits[] = "0123456789ABCDEF";

void
mc_qid_new(char *out)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	uint64_t now = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;

	pthread_mutex_lock(&qid_lock);
	if (now > last_us) {
		last_us = now;
		last_count = 0;
	} else if (last_count < COUNT_MAX) {
		last_count++;
	} else {
		last_us++;
		last_count = 0;
	}
	uint64_t us = last_us & TIME_MASK;
	unsigned count = last_count;
	pthread_mutex_unlock(&qid_lock);

	for (int i = TIME_DIGITS - 1; i >= 0; i--) {
		out[i] = hexdigits[us & 0xf];
		us >>= 4;
	}
	for (int i = COUNT_DIGITS - 1; i >= 0; i--) {
		out[TIME_DIGITS + i] = hexdigits[count & 0xf];
		count >>= 4;
	}
	out[MC_QID_LEN] = '\0';
}

bool
mc_qid_valid(const char *s)
{
	if (s == NULL)
		return false;
	for (size_t i = 0; i < MC_QID_LEN; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')))
			return false;
	}
	return s[MC_QID_LEN] == '\0';
}
