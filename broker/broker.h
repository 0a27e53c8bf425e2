/* broker: the ptibusd daemon's state and its one libuv loop. It owns the ZeroMQ
 * context, the partners' ROUTER socket (CURVE server, ZAP domain "ptibus-partners")
 * polled through uv_poll on ZMQ_FD, the ZAP handler, the journal and the ingest path,
 * the checkpoint timer, the SIGTERM/SIGINT handlers for a graceful stop and the SIGHUP
 * handler that reloads the partners and routes (between loop turns, sessions kept). */
#ifndef PT_BROKER_H
#define PT_BROKER_H

#include "bconfig.h"
#include "err.h"

typedef struct broker broker_t;

/* Loads keys, opens the journal and binds the sockets. Takes cfg on success (the
 * broker destroys it); on error the caller keeps it. Caller owns *out. */
int broker_new(bconfig_t *cfg, broker_t **out, pt_error_t *err);

/* Runs until SIGTERM/SIGINT (or broker_stop); notifies systemd READY=1 once serving
 * and STOPPING=1 when leaving. Returns 0 after a clean stop. */
int broker_run(broker_t *b);

/* Asks the loop to stop after the current batch (safe from loop callbacks). */
void broker_stop(broker_t *b);

/* Closes sockets and the journal (after a last checkpoint), frees everything and sets
 * *b to NULL; accepts NULL. */
void broker_destroy(broker_t **b);

#endif
