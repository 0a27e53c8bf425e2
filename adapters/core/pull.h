/* pull: the pull egress, for a partner's system that can only call out. Each delivery is
 * held in the spool's "pull" key-value namespace (key: the seq, 8 bytes big-endian, so the
 * inbox lists in seq order; value: a versioned record holding the delivery's JSON document,
 * the one the outbox writes) until the partner acknowledges it over the HTTP API
 * (GET /v1/inbox, POST /v1/inbox/{seq}/ack); only then is the seq marked handed over and
 * the runtime acknowledges it to the broker. Owns nothing but its records; the spool is
 * the caller's, and every write goes to the spool's current turn (docs/adapters/pull.md). */
#ifndef PT_PULL_H
#define PT_PULL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "outbox.h"
#include "spool.h"

#define PT_PULL_NS "pull"                   /* the inbox: seq -> record */
#define PT_PULL_REPLAYED_NS "pull_replayed" /* seq -> time a replay of it was acknowledged */
#define PT_PULL_RECORD_VERSION 1            /* first byte of every inbox record */
#define PT_PULL_LIMIT_DEFAULT 100           /* messages of one listing */
#define PT_PULL_LIMIT_MAX 1000

typedef enum pull_status {
    PULL_HELD = 1, /* now in the inbox (new, or a replay held again): the broker is
                    * acknowledged after the partner's ack, not now */
    PULL_ALREADY,  /* this seq is in the inbox already (a redelivery): nothing changed */
    PULL_SEEN,     /* handed over and acknowledged by the partner before: DeliverAck OK now */
    PULL_REFUSED,  /* the envelope cannot be rendered: DeliverAck CANNOT_PROCESS, err.msg */
    PULL_RETRY,    /* the spool failed (the turn is failed): no ack; the broker redelivers */
} pull_status_t;

/* Holds one delivery in the turn. A seq already acknowledged by the partner
 * (spool_inbound_seen) is SEEN. A seq in the inbox is ALREADY, except that a replay of a
 * seq held as a first delivery re-marks it a replay (HELD). A replay (d->replay) of a seq
 * handed over is HELD again, marked "replay": true, unless it is a redelivery of a replay
 * (d->redelivery or attempt > 1) of a seq whose replay the partner has acknowledged
 * already: SEEN. max_envelope 0: PT_OUTBOX_MAX_ENVELOPE. Returns 0 (HELD, ALREADY, SEEN)
 * or a negative code with REFUSED or RETRY; *status always set. The caller commits the turn
 * (a HELD delivery is durable, and listed, only then). */
int pull_put(spool_t *s, const outbox_delivery_t *d, size_t max_envelope, pull_status_t *status,
             pt_error_t *err);

/* The page of the inbox after after_seq: {"messages": [document, ...], "next": "SEQ"} with
 * at most limit (1 to PT_PULL_LIMIT_MAX) documents in seq order; "next" is the last seq
 * listed (a decimal string, as proto3 JSON writes a uint64), or after_seq when none.
 * Listing changes nothing. Caller owns *json (free()), NUL-terminated, *len bytes. */
int pull_list(spool_t *s, uint64_t after_seq, size_t limit, char **json, size_t *len,
              pt_error_t *err);

/* The partner's ack of seq, in the turn: the record is removed and the seq marked handed
 * over (spool_inbound_mark; for a replay also in PT_PULL_REPLAYED_NS). *acked (may be NULL)
 * is true when this call removed a record (then, once the turn commits, the runtime sends
 * the broker its DeliverAck), false for a seq acknowledged before (idempotent: 0).
 * PT_ENOTFOUND for a seq neither held nor handed over. */
int pull_ack(spool_t *s, uint64_t seq, int64_t now_ms, bool *acked, pt_error_t *err);

/* Whether seq is in the inbox now (the turn's writes included). */
int pull_held(spool_t *s, uint64_t seq, bool *held, pt_error_t *err);

/* Number of deliveries in the inbox (the turn's writes included). */
int pull_depth(spool_t *s, uint64_t *depth, pt_error_t *err);

#endif
