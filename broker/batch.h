/* batch: one turn of the broker's loop. It owns the turn's journal write transaction
 * (begun on first use, committed once with a real fsync), the turn's failure (the first
 * journal error: nothing of the turn is kept), and every frame that may leave only after
 * the commit. Each frame has its rule for a failed commit:
 *   BATCH_DROP      dropped: the durable state is the truth (receipts: the sender asks
 *                   again with ReceiptRequest);
 *   BATCH_RETRY     replaced by Nack(JOURNAL_FULL or UNAVAILABLE, retryable) for its
 *                   message id: nothing was stored (Publish replies);
 *   BATCH_FALLBACK  replaced by the frame its producer packed for that case ("nothing was
 *                   changed", for an administrator's action);
 *   BATCH_ALWAYS    sent as it is (answers that changed nothing).
 * Frames leave in the order they were pushed, each to its socket, after the commit.
 * Ingest, delivery and admin get the batch for the duration of one handler call; only
 * the loop begins, commits and sends it. Not thread-safe: the loop's thread only. */
#ifndef PT_BATCH_H
#define PT_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "err.h"
#include "journal.h"
#include "metrics.h"

typedef struct batch batch_t;

typedef enum batch_rule { BATCH_DROP, BATCH_RETRY, BATCH_FALLBACK, BATCH_ALWAYS } batch_rule_t;

/* The socket a frame leaves on. */
typedef enum batch_dest { BATCH_PARTNERS, BATCH_ADMIN } batch_dest_t;

/* One frame for after the commit. Everything is borrowed for the call (packed then). */
typedef struct batch_frame {
    batch_dest_t dest;
    const uint8_t *rid; /* ROUTER routing id of the peer */
    size_t rid_len;
    const ProtobufCMessage *msg; /* the frame (a ptibus.v1.Frame or an AdminResponse) */
    batch_rule_t rule;
    const char *message_id;           /* BATCH_RETRY: the id its Nack names */
    const ProtobufCMessage *fallback; /* BATCH_FALLBACK: sent instead after a failure */
    metrics_series_t *counter;        /* incremented once the frame leaves committed; NULL */
} batch_frame_t;

/* Sends one packed frame to dest; returns 0 or -errno (the frame is then dropped). */
typedef int (*batch_send_fn)(void *arg, batch_dest_t dest, const uint8_t *rid, size_t rid_len,
                             const uint8_t *buf, size_t len);

/* j is borrowed for the batch's lifetime. Caller owns *out; free with batch_destroy. */
int batch_new(journal_t *j, batch_t **out, pt_error_t *err);

/* Aborts an open transaction, frees held frames; accepts NULL; sets *b to NULL. */
void batch_destroy(batch_t **b);

/* Observes the commit latency (seconds) and the records written per commit (either may
 * be NULL). */
void batch_set_metrics(batch_t *b, metrics_series_t *latency, metrics_series_t *size);

/* The turn's write transaction, begun on first use; NULL once the turn has failed
 * (nothing more may be written). */
journal_txn_t *batch_txn(batch_t *b);

/* Records a journal failure (rc from the journal, err says what): the transaction is
 * aborted and the whole turn is lost. Later failures keep the first one. */
void batch_fail(batch_t *b, int rc, const pt_error_t *err);

/* 0 while the turn has not failed, else its failure (PT_EJOURNALFULL or PT_ECLOSED). */
int batch_failed(const batch_t *b);

/* True when a transaction is open (there is something to commit). */
bool batch_open(const batch_t *b);

/* Holds f until batch_send. Returns 0, or -ENOMEM / PT_ETOOLARGE (f is not held). */
int batch_push(batch_t *b, const batch_frame_t *f);

/* Frames held. */
size_t batch_frames(const batch_t *b);

/* Commits the open transaction (fsync); returns 0 (also when none was open) or the
 * turn's failure. After a failure nothing of the turn is kept. */
int batch_commit(batch_t *b);

/* Sends every held frame by its rule (committed: as pushed; failed: by the rule), in
 * push order, and starts a new turn. */
void batch_send(batch_t *b, batch_send_fn send, void *arg);

#endif
