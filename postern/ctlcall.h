/*
 * ctlcall.h - one request to a control socket (a daemon's NAME.ctl or the
 * supervisor's postern.ctl), as a single asynchronous call.
 *
 * Connects once (mc_chan_connect_once), waits for the HELLO, sends the
 * request, and calls back exactly once, always from the loop: with the
 * reply, with the peer's error reply, or with why there was none (no
 * socket, connection refused or closed, no answer in time). Used by the
 * supervisor (up.c: readiness probes, reloads) and by the control
 * commands (control.c). Owns the channel, the timer and the request
 * until the callback has run; frees itself afterwards.
 *
 * Also the CTL_RELOAD request both of them send: the daemons drop root,
 * so whoever asks for a reload opens the certificate and key files (root
 * may read them, the daemons may not) and passes them along.
 */
#ifndef POSTERN_CTLCALL_H
#define POSTERN_CTLCALL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "util/config.h"
#include "util/msg.h"

/*
 * err: 0 (reply in m), MC_CHAN_EREMOTE (m holds the error; why is its
 * text), or another MC_CHAN_E* (m NULL; why says what went wrong). Nobody
 * there at all reads "no socket at PATH" (no file) or "nothing listens at
 * PATH" (a file left behind).
 * m and why are valid during the call only.
 */
typedef void (*postern_call_cb)(void *arg, struct mc_msg *m, int err, const char *why);

/* Send req (consumed) to the control socket at path, speaking as role. */
void postern_call(uv_loop_t *loop, const char *path, uint32_t role, struct mc_msg *req, unsigned timeout_ms,
		  postern_call_cb cb, void *arg);

/*
 * Open cfg's [global] tls_cert and tls_key to pass with CTL_RELOAD: 0 with
 * both descriptors in fds (the caller closes them), or -1 with why and
 * fds at -1 when this process cannot open one of them.
 */
int postern_tls_open(const struct mc_config *cfg, int fds[2], char *why, size_t whysz);
/* A CTL_RELOAD for daemon name in m: with copies of fds when fds[0] >= 0 and that daemon serves TLS. */
void postern_reload_request(struct mc_msg *m, const char *name, const int fds[2]);

/* True when something accepts connections on the Unix socket at path (a plain connect, no HELLO). */
bool postern_socket_answers(const char *path);

#endif
