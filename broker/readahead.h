/* readahead: reads the partners' socket and does the work that needs no journal, on
 * the loop's thread or, while the loop waits for the journal's fsync, on a helper
 * thread that borrows the socket.
 *
 * One message read is: its routing id, its authenticated partner (ZAP User-Id), its
 * Frame decoded (size-limited) and, for a Publish, ingest_prepare's work (envelope
 * decoded, validated, ACL, canonical bytes, hash). The loop then has only the journal
 * work left for it (dedup, routing, append), so the next batch's decoding overlaps the
 * current batch's fsync instead of waiting behind it.
 *
 * The socket has one user at a time: the loop lends it (readahead_lend) just before
 * committing and takes it back (readahead_reclaim) as soon as the commit has returned,
 * before it sends anything; the handover is a mutex and condition variable, the full
 * memory barrier ZeroMQ asks for to move a socket between threads. Messages read ahead
 * are only ever answered after their own batch commits, in the order they were read. */
#ifndef PT_READAHEAD_H
#define PT_READAHEAD_H

#include <stdbool.h>
#include <stddef.h>

#include <zmq.h>

#include "bconfig.h"
#include "err.h"
#include "ingest.h"
#include "ptibus/v1/protocol.pb-c.h"

/* What the read-ahead ring may hold, in bytes (messages, decoded, with their copies):
 * the ring is full at this or at its item count, whichever comes first. */
#define READAHEAD_MAX_BYTES ((size_t)64 << 20)

/* Room for the Frame around an envelope of max_message_size. */
#define PT_FRAME_OVERHEAD 4096

/* One message read from the partners' socket. */
typedef struct readahead_item {
    zmq_msg_t rid, payload;
    const bconfig_partner_t *partner; /* NULL: no authenticated partner (dropped) */
    Ptibus__V1__Frame *frame;         /* NULL: not a valid Frame (code and why say why) */
    int code;                         /* Nack code when frame is NULL */
    pt_error_t why;
    ingest_prep_t prep; /* Publish frames: ingest_prepare's result */
} readahead_item_t;

typedef struct readahead readahead_t;

/* Reads one message now (ZMQ_DONTWAIT) into it. Returns false when none is pending.
 * Release the item with readahead_item_fini. */
bool readahead_read(void *sock, const bconfig_t *cfg, readahead_item_t *it);

/* Frees what the item holds (the prep too, unless ingest_publish took it). */
void readahead_item_fini(readahead_item_t *it);

/* Starts the helper thread for the partners' socket sock (borrowed) holding at most max items. */
int readahead_new(void *sock, const bconfig_t *cfg, size_t max, readahead_t **out, pt_error_t *err);

/* Stops and joins the helper, frees unprocessed items (their messages were never
 * answered: the senders retry them); accepts NULL; sets *pf to NULL. */
void readahead_destroy(readahead_t **pf);

/* Lends the socket to the helper, which reads and prepares until reclaimed or full.
 * The caller must not touch the socket or the items until readahead_reclaim. */
void readahead_lend(readahead_t *pf);

/* Takes the socket back: wakes the helper and waits until it has stopped. */
void readahead_reclaim(readahead_t *pf);

/* The oldest item read ahead and not yet taken, or NULL; valid until the next call
 * of readahead_take or readahead_lend. The caller finishes it with readahead_item_fini. */
readahead_item_t *readahead_take(readahead_t *pf);

/* Items waiting, and whether there is room for more. */
size_t readahead_count(const readahead_t *pf);
bool readahead_full(const readahead_t *pf);

#endif
