/* prefetch: reads the partners' socket and does the work that needs no journal, on
 * the loop's thread or, while the loop waits for the journal's fsync, on a helper
 * thread that borrows the socket.
 *
 * One message read is: its routing id, its authenticated partner (ZAP User-Id), its
 * Frame decoded (size-limited) and, for a Publish, ingest_prepare's work (envelope
 * decoded, validated, ACL, canonical bytes, hash). The loop then has only the journal
 * work left for it (dedup, routing, append), so the next batch's decoding overlaps the
 * current batch's fsync instead of waiting behind it.
 *
 * The socket has one user at a time: the loop lends it (prefetch_lend) just before
 * committing and takes it back (prefetch_reclaim) as soon as the commit has returned,
 * before it sends anything; the handover is a mutex and condition variable, the full
 * memory barrier ZeroMQ asks for to move a socket between threads. Messages read ahead
 * are only ever answered after their own batch commits, in the order they were read. */
#ifndef PT_PREFETCH_H
#define PT_PREFETCH_H

#include <stdbool.h>
#include <stddef.h>

#include <zmq.h>

#include "bconfig.h"
#include "err.h"
#include "ingest.h"
#include "ptibus/v1/protocol.pb-c.h"

/* What the read-ahead ring may hold, in bytes (messages, decoded, with their copies):
 * the ring is full at this or at its item count, whichever comes first. */
#define PREFETCH_MAX_BYTES ((size_t)64 << 20)

/* Room for the Frame around an envelope of max_message_size. */
#define PT_FRAME_OVERHEAD 4096

/* One message read from the partners' socket. */
typedef struct prefetch_item {
    zmq_msg_t rid, payload;
    const bconfig_partner_t *partner; /* NULL: no authenticated partner (dropped) */
    Ptibus__V1__Frame *frame;         /* NULL: not a valid Frame (code and why say why) */
    int code;                         /* Nack code when frame is NULL */
    pt_error_t why;
    ingest_prep_t prep; /* Publish frames: ingest_prepare's result */
} prefetch_item_t;

typedef struct prefetch prefetch_t;

/* Reads one message now (ZMQ_DONTWAIT) into it. Returns false when none is pending.
 * Release the item with prefetch_item_fini. */
bool prefetch_read(void *sock, const bconfig_t *cfg, prefetch_item_t *it);

/* Frees what the item holds (the prep too, unless ingest_publish took it). */
void prefetch_item_fini(prefetch_item_t *it);

/* Starts the helper thread for the partners' socket sock (borrowed) holding at most max items. */
int prefetch_new(void *sock, const bconfig_t *cfg, size_t max, prefetch_t **out, pt_error_t *err);

/* Stops and joins the helper, frees unprocessed items (their messages were never
 * answered: the senders retry them); accepts NULL; sets *pf to NULL. */
void prefetch_destroy(prefetch_t **pf);

/* Lends the socket to the helper, which reads and prepares until reclaimed or full.
 * The caller must not touch the socket or the items until prefetch_reclaim. */
void prefetch_lend(prefetch_t *pf);

/* Takes the socket back: wakes the helper and waits until it has stopped. */
void prefetch_reclaim(prefetch_t *pf);

/* The oldest item read ahead and not yet taken, or NULL; valid until the next call
 * of prefetch_take or prefetch_lend. The caller finishes it with prefetch_item_fini. */
prefetch_item_t *prefetch_take(prefetch_t *pf);

/* Items waiting, and whether there is room for more. */
size_t prefetch_count(const prefetch_t *pf);
bool prefetch_full(const prefetch_t *pf);

#endif
