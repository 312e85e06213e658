/*
 * loop_thread.h - a test's libuv loop running on its own thread, with
 * in_loop() to run a function on that thread and wait for it: the
 * session tests' blocking clients talk to a server served by the loop.
 *
 * Defines the statics loop, loop_thread, async, async_fn and async_done
 * for its includer (one test program each; never library code).
 * loop_thread_init() before anything is added to the loop,
 * loop_thread_start() once the server is set up, loop_thread_stop(fn)
 * with fn closing every handle, async included (uv_close(&async)), so
 * that uv_run returns.
 */
#ifndef TEST_LOOP_THREAD_H
#define TEST_LOOP_THREAD_H

#include <pthread.h>
#include <semaphore.h>
#include <stddef.h>
#include <uv.h>

static uv_loop_t loop;
static pthread_t loop_thread;
static uv_async_t async;
static void (*async_fn)(void);
static sem_t async_done;

static void
async_cb(uv_async_t *a)
{
	(void)a;
	/* Sends may coalesce; an empty wake-up posts nothing. */
	if (async_fn) {
		async_fn();
		async_fn = NULL;
		sem_post(&async_done);
	}
}

/* Run fn on the loop's thread and wait until it has returned. */
static inline void
in_loop(void (*fn)(void))
{
	async_fn = fn;
	uv_async_send(&async);
	sem_wait(&async_done);
}

static void *
loop_main(void *arg)
{
	(void)arg;
	uv_run(&loop, UV_RUN_DEFAULT);
	return NULL;
}

static inline void
loop_thread_init(void)
{
	uv_loop_init(&loop);
	uv_async_init(&loop, &async, async_cb);
	sem_init(&async_done, 0, 0);
}

static inline int
loop_thread_start(void)
{
	return pthread_create(&loop_thread, NULL, loop_main, NULL);
}

/* stop closes every handle on the loop (async too); the thread is joined. */
static inline void
loop_thread_stop(void (*stop)(void))
{
	in_loop(stop);
	pthread_join(loop_thread, NULL);
}

#endif
