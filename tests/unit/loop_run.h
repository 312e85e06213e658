/*
 * loop_run.h - running a test's own libuv loop until a callback has
 * counted enough, or a deadline passes, so that a lost reply fails the
 * test instead of hanging it.
 *
 * Included by one test program each (static functions); never by
 * library code.
 */
#ifndef TEST_LOOP_RUN_H
#define TEST_LOOP_RUN_H

#include <stdbool.h>
#include <uv.h>

static inline void
loop_run_tick(uv_timer_t *t)
{
	(void)t;
}

/* Run loop until *counter >= want, at most ms milliseconds; true if reached. */
static inline bool
loop_run_until(uv_loop_t *loop, const int *counter, int want, unsigned ms)
{
	uv_timer_t t;
	/* The timer wakes UV_RUN_ONCE so the deadline is seen with nothing else to do. */
	uv_timer_init(loop, &t);
	uv_timer_start(&t, loop_run_tick, 10, 10);
	uint64_t end = uv_now(loop) + ms;
	while (*counter < want && uv_now(loop) < end)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return *counter >= want;
}

#endif
