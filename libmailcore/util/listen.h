/*
 * listen.h - TCP listeners for the network-facing daemons.
 *
 * Listeners are bound and listening before privileges are dropped (ports
 * below 1024 need root); connections are only accepted once the loop runs,
 * which is after the drop. Each listener carries a tag the daemon chooses
 * (MX, submission, implicit TLS), given back with every connection.
 */
#ifndef MC_LISTEN_H
#define MC_LISTEN_H

#include <uv.h>

#include "util/config.h"

struct mc_listener;

/*
 * A client is waiting on listener l: accept it with mc_conn_accept(server, ...)
 * inside the callback (libuv stops polling a listener whose client is left
 * unaccepted); over a limit, accept and close, or pause all listeners.
 */
typedef void (*mc_listen_cb)(uv_stream_t *server, int tag, void *arg);

/*
 * Bind and listen on every address of list; -1 with err naming the address
 * on the first failure (nothing is left open then). Empty list: nothing opened.
 */
int mc_listen_open(uv_loop_t *loop, const struct mc_listen_list *list, int tag, mc_listen_cb cb, void *arg,
		   char *err, size_t errsz);
/* Close every listener (at stop). */
void mc_listen_close_all(void);
/*
 * Pause or resume accepting on every listener (connection limits). Paused
 * listeners stay bound and listening: clients wait in the kernel's backlog
 * and are accepted on resume. Listeners opened while paused start paused.
 */
void mc_listen_pause_all(bool pause);
/* The bound port of the index-th open listener, in order of opening (port 0 asks the kernel); 0 if none. */
unsigned mc_listen_port(size_t index);

/*
 * In a forked child that runs a loop of its own: paused listeners resume
 * on loop from now on (imapd's workers). -1 if one was not paused (it stays).
 */
int mc_listen_move_loop(uv_loop_t *loop);

#endif
