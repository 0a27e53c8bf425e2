/* admin: the broker's admin socket. A ROUTER endpoint separate from the partners' one,
 * CURVE with the configured administrator keys only (ZAP domain "ptibus-admin": a
 * partner key is refused). It answers ptibus.v1.AdminRequest frames: live statistics,
 * dead-letter listing and requeue, replay of journaled messages to one of their
 * original recipients. Changes are written in the broker's batch transaction, with an
 * ADMIN record naming the administrator (admin:NAME, bconfig's admin_names), and
 * answered after commit. */
#ifndef PT_ADMIN_H
#define PT_ADMIN_H

#include <stdbool.h>

#include "batch.h"
#include "bconfig.h"
#include "delivery.h"
#include "err.h"
#include "ingest.h"
#include "journal.h"

typedef struct admin admin_t;

typedef struct admin_deps {
    const bconfig_t *cfg;
    journal_t *journal;
    ingest_t *ingest; /* owner of the batch transaction */
    delivery_t *delivery;
} admin_deps_t;

/* Binds cfg->admin_listen in zctx with the broker's CURVE secret key. deps are
 * borrowed. Caller owns *out; close with admin_close(). */
int admin_open(void *zctx, const uint8_t server_sk[PT_KEY_LEN], const admin_deps_t *deps,
               admin_t **out, pt_error_t *err);

void admin_close(admin_t **a);

/* The ROUTER socket, for the event loop to poll (ZMQ_FD). */
void *admin_socket(admin_t *a);

/* Samples the message counters (accepted, deliveries sent) at now_ms (monotonic), for
 * the rates of the stats answer: the broker calls it once a second; the last 60 s are
 * kept. */
void admin_sample(admin_t *a, int64_t now_ms);

/* Reads and handles the pending requests (non-blocking, at most 64) in batch b: their
 * journal records go into its transaction, their answers into it as frames (a request
 * that changed something is answered "nothing was changed" if the turn fails). Returns
 * the number of requests read. */
int admin_read(admin_t *a, batch_t *b);

#endif
