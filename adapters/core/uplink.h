/* uplink: the adapter's side of the broker link. Sends the spool's committed outbound
 * messages in arrival order through a windowed link (libptibus/link: CURVE, Hello,
 * credit, heartbeats, reconnects with capped backoff and jitter, the cause of a link
 * down), and writes what the broker answers into the spool's turn: PublishAck ->
 * accepted, retryable Nack -> sent again after a capped, jittered backoff, final Nack ->
 * rejected with its code, reason and field path, Receipt -> the lifecycle's recipient.
 * Deliveries and every result are passed on to the runtime's hooks. It owns the link and
 * the retry backoff; the spool is borrowed. With several broker endpoints it fails over:
 * after failover_after_ms without a session on the current one (unreachable, handshake
 * or Hello unanswered, heartbeats lost) it replaces the link by one to the next endpoint,
 * round the list, and stays on whichever gives a session (no return to the first). It never reads a
 * clock: callers pass now (monotonic for the link, wall for the spool). Loop-agnostic: the runtime
 * watches uplink_fd() and calls the functions below. Not thread-safe. */
#ifndef PT_UPLINK_H
#define PT_UPLINK_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "link.h"
#include "spool.h"

typedef struct uplink uplink_t;

#define PT_UPLINK_WINDOW 256         /* publishes in flight at most */
#define PT_UPLINK_RETRY_BASE_MS 1000 /* first retry after a retryable Nack */
#define PT_UPLINK_RETRY_MAX_MS 60000 /* cap of that backoff */
#define PT_UPLINK_MAX_ENDPOINTS 8
#define PT_UPLINK_FAILOVER_MS 10000 /* default failover_after_ms */

/* The runtime's side. Every hook may be NULL; all are called from uplink_on_readable()
 * or uplink_tick(), after the spool was written. */
typedef struct uplink_hooks {
    void *arg;
    /* A delivery: the runtime hands it to its egress and acknowledges it later
     * (uplink_deliver_ack) — or not at all, and the broker redelivers it. */
    void (*on_deliver)(void *arg, const Ptibus__V1__Deliver *d);
    /* A Receipt of one of this partner's messages, already in the lifecycle. */
    void (*on_receipt)(void *arg, const Ptibus__V1__Receipt *r);
    /* The broker's answer to a publish, already in the spool (retryable ones included). */
    void (*on_result)(void *arg, const char *message_id, const link_result_t *r);
    /* The link's state changed, or the cause of its being down. */
    void (*on_state)(void *arg, link_state_t state, const char *cause);
} uplink_hooks_t;

typedef struct uplink_options {
    link_options_t link; /* keys borrowed for the call (the uplink copies them) */
    spool_t *spool;      /* borrowed for the uplink's life */
    /* Broker endpoints in order of preference (copied); none: link.endpoint alone. */
    const char *const *endpoints;
    size_t n_endpoints;
    int64_t failover_after_ms; /* 0 = PT_UPLINK_FAILOVER_MS */
} uplink_options_t;

/* Creates the link and says Hello. Returns 0 with *out (free with uplink_destroy), or a
 * negative code with err (bad keys, ...). */
int uplink_new(const uplink_options_t *o, const uplink_hooks_t *h, int64_t mono_ms, uplink_t **out,
               pt_error_t *err);
void uplink_destroy(uplink_t **u);

/* The descriptor to watch for readability (level-triggered); the same for the uplink's
 * life, failovers included (an epoll set holding the current link's descriptor). */
int uplink_fd(const uplink_t *u);

/* Reads what the broker sent (call when uplink_fd() is readable, and after sends). */
void uplink_on_readable(uplink_t *u, int64_t mono_ms, int64_t wall_ms);

/* Sends committed spooled messages while the window allows. Returns how many were sent. */
size_t uplink_pump(uplink_t *u, int64_t mono_ms, int64_t wall_ms);

/* Link timers (heartbeats, liveness, Hello retries). */
void uplink_tick(uplink_t *u, int64_t mono_ms);

/* Milliseconds until uplink_tick() or uplink_pump() has something to do (a retry
 * coming due), -1 for never. */
int64_t uplink_due_in(const uplink_t *u, int64_t mono_ms, int64_t wall_ms);

/* Acknowledges a delivery (ok, or CANNOT_PROCESS with reason). 0, or -ENOTCONN and the
 * like: the broker redelivers it then. */
int uplink_deliver_ack(uplink_t *u, uint64_t seq, bool ok, const char *reason, int64_t mono_ms);

bool uplink_up(const uplink_t *u);
link_state_t uplink_state(const uplink_t *u);
/* Why the link is not up ("" when up). */
const char *uplink_cause(const uplink_t *u);
uint32_t uplink_in_flight(const uplink_t *u);
/* The endpoint of the current link. */
const char *uplink_endpoint(const uplink_t *u);

/* Counters for /metrics. */
typedef struct uplink_counts {
    uint64_t published, accepted, duplicates, retried, rejected, deliveries, receipts;
    uint64_t link_downs, failovers;
} uplink_counts_t;
uplink_counts_t uplink_counts(const uplink_t *u);

#endif
