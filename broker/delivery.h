/* delivery: store-and-forward delivery to recipients. For each partner it keeps the
 * session (routing id, liveness), the credit window, the deliveries in flight and
 * those waiting for a retry. Deliveries follow the journal's per-recipient queues in
 * sequence order; every attempt is journaled (DELIVERED), every acknowledgement too
 * (ACKNOWLEDGED, and the queue entry removed in the same transaction); no
 * acknowledgement within the ack timeout means a redelivery after an exponential
 * backoff with jitter, and after max_attempts, or a recipient's CANNOT_PROCESS, the
 * message is dead-lettered (DEAD_LETTERED) so it never blocks the ones behind it.
 * Senders get a Receipt for each acknowledgement and dead letter.
 * Every handler writes into the loop turn's batch (batch.h) that it is given for the
 * call: journal records in its transaction, receipts as frames that leave after its
 * commit. A Deliver leaves at once, and its attempt is journaled only if the recipient's
 * connection took it. */
#ifndef PT_DELIVERY_H
#define PT_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "bconfig.h"
#include "err.h"
#include "journal.h"
#include "metrics.h"
#include "ptibus/v1/protocol.pb-c.h"

typedef struct delivery delivery_t;

typedef struct delivery_options {
    uint32_t ack_timeout_ms;     /* no DeliverAck within this: redeliver */
    uint32_t max_attempts;       /* then dead-letter */
    uint32_t backoff_initial_ms; /* delay before the 2nd attempt, doubled each time */
    uint32_t backoff_max_ms;
    uint32_t peer_timeout_ms;     /* no frame from a connected partner for this long: offline */
    uint32_t max_in_flight;       /* the credit window is clamped to this many messages */
    uint64_t max_in_flight_bytes; /* and to this many envelope bytes (one message always fits) */
} delivery_options_t;

/* Sends one Deliver frame to a routing id now; returns 0, or -errno when the connection
 * does not take it (-EHOSTUNREACH: gone; -EAGAIN: its send queue is full). */
typedef int (*delivery_send_fn)(void *arg, const uint8_t *rid, size_t rid_len, const uint8_t *buf,
                                size_t len);

/* j and cfg are borrowed; send(send_arg, ...) hands Deliver frames to the partners'
 * socket. Counts the durable queues for the metrics. Caller owns *out. */
int delivery_new(journal_t *j, const bconfig_t *cfg, const delivery_options_t *opts,
                 delivery_send_fn send, void *send_arg, delivery_t **out, pt_error_t *err);
void delivery_destroy(delivery_t **d);

/* Reload: prepare allocates the sessions for n_partners (0 or -ENOMEM, nothing
 * changed); once cfg's partners are swapped, commit moves each kept partner's session
 * (routing id, credit, deliveries in flight and waiting) by from (new index -> old
 * index, -1: new partner, no session yet) and ends the removed partners' sessions (their
 * queues stay in the journal); with from NULL it drops what prepare made. */
int delivery_reload_prepare(delivery_t *d, size_t n_partners);
void delivery_reload_commit(delivery_t *d, const ptrdiff_t *from);

/* A partner's Hello: its session starts over from the head of its queue (deliveries in
 * flight on an earlier connection will be redelivered). */
void delivery_hello(delivery_t *d, const char *partner, const uint8_t *rid, size_t rid_len,
                    uint32_t initial_credit, int64_t now_ms);

/* True when partner has a session (a Hello) on this routing id. */
bool delivery_has_session(const delivery_t *d, const char *partner, const uint8_t *rid,
                          size_t rid_len);

/* Any frame from a partner proves it alive. */
void delivery_seen(delivery_t *d, const char *partner, int64_t now_ms);

/* Credit(n): n more deliveries may be in flight. */
void delivery_credit(delivery_t *d, const char *partner, uint32_t credit);

/* A DeliverAck from partner (the caller checked its session). Returns PT_EPROTOCOL for a
 * status that is neither OK nor CANNOT_PROCESS (nothing is done); an ack of a message
 * never delivered to partner is ignored (0). */
int delivery_ack(delivery_t *d, batch_t *b, const char *partner, const Ptibus__V1__DeliverAck *ack,
                 int64_t now_ms);

/* A ReceiptRequest from partner (the sender): its receipts for message_id again. */
void delivery_receipt_request(delivery_t *d, batch_t *b, const char *partner,
                              const char *message_id);

/* A message was accepted for these recipients (in the current turn: delivered from the
 * next turn on, once it is committed). */
void delivery_routed(delivery_t *d, const char *const *recipients, size_t n, int64_t now_ms);

/* Delivers what credit allows, handles expired acks and due retries, in batch b. Call it
 * before anything else writes in b, so that it sees committed state only. */
void delivery_pump(delivery_t *d, batch_t *b, int64_t now_ms);

/* After the turn: when it failed, in-memory progress is forgotten (the durable queues
 * are the truth) and the sessions start over from them. */
void delivery_end(delivery_t *d, bool committed);

/* The next time (ms, same clock as now_ms) something is due, or -1 if nothing. */
int64_t delivery_next_due(const delivery_t *d);

/* Per-partner view for metrics and the admin socket. */
typedef struct delivery_peer_stats {
    const char *partner;
    bool online;
    uint32_t window;
    uint32_t in_flight;
    uint32_t retrying;
    uint64_t depth;     /* durable queue entries */
    int64_t oldest_ms;  /* wall-clock enqueue time of the oldest entry, 0 if empty */
    uint64_t delivered; /* since start */
    uint64_t acknowledged;
    uint64_t dead_lettered;
} delivery_peer_stats_t;

size_t delivery_peer_count(const delivery_t *d);
void delivery_peer_stats(const delivery_t *d, size_t i, delivery_peer_stats_t *out);

/* Counts deliveries, acknowledgements and dead letters per recipient and type in m
 * (borrowed; NULL: none), and sets the queue gauges when delivery_publish_metrics() is
 * called. */
void delivery_set_metrics(delivery_t *d, metrics_t *m);
void delivery_publish_metrics(delivery_t *d, int64_t wall_now_ms);

/* Admin: the recipient's queue got entries outside the ingest path (requeue, replay). */
void delivery_wake(delivery_t *d, const char *partner, uint64_t added);

#endif
