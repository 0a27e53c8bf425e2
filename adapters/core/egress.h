/* egress: where the broker's deliveries go at the partner, chosen by the adapter's
 * config: the outbox folder (one file per delivery), the webhook (a signed POST, retried
 * with backoff), or the pull inbox of the HTTP API. A delivery is handed over first —
 * the file is on disk, the webhook answered 2xx, the partner acknowledged the pulled
 * message (for the outbox: once the flusher thread has made its batch of files durable,
 * while the loop goes on) — and its seq marked in the spool's turn; the DeliverAck leaves
 * only once that turn has committed (egress_committed), so a redelivery after a crash finds the
 * mark and is acknowledged without a second hand-over. A replay is handed over again. A delivery
 * refused for good (undecodable, a final 4xx) is acknowledged CANNOT_PROCESS with the
 * reason, and the broker dead-letters it. It owns the outbox, the webhook and the
 * deliveries held for the webhook's retries; the spool is borrowed and acks go out
 * through the caller's ack function. Loop thread only. */
#ifndef PT_EGRESS_H
#define PT_EGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "aconfig.h"
#include "codec_ops.h"
#include "err.h"
#include "ptibus/v1/protocol.pb-c.h"
#include "spool.h"

typedef struct egress egress_t;

#define PT_EGRESS_ACKS_MAX 4096 /* acks waiting for the turn's commit */

/* Sends one DeliverAck; returns 0 or a negative code (then the broker redelivers). */
typedef int (*egress_ack_fn)(void *arg, uint64_t seq, bool ok, const char *reason);

/* Opens the egress the config names on loop (the outbox folder is created and checked,
 * the webhook's secret file read: 0600, at least 16 bytes). Returns 0 with *out, or a
 * negative code with err naming the file or folder. */
int egress_open(uv_loop_t *loop, const aconfig_t *cfg, spool_t *spool, egress_ack_fn ack,
                void *ack_arg, egress_t **out, pt_error_t *err);

/* The outbox also writes each delivery in a partner's own format, beside its JSON file:
 * "<seq>-<message id><ext>" (ext from the codec's first pattern, e.g. ".csv"), written
 * atomically before the JSON file, encoded by ops->encode in encoding (NULL: UTF-8). A
 * message the format cannot express (e.g. a referral in a sanctions CSV) gets no such
 * file, which the log says. Returns 0, PT_EINVALID (no encoder, or not an outbox). */
int egress_add_format(egress_t *e, const pt_codec_ops_t *ops, const char *encoding);

/* Closes (the webhook's handles go on the loop's next turn; held deliveries are dropped:
 * not acknowledged, the broker delivers them again). Accepts NULL; sets *e NULL. */
void egress_close(egress_t **e);

/* Hands one delivery over (or, for the webhook, starts to). wall_ms is the time it came. */
void egress_deliver(egress_t *e, const Ptibus__V1__Deliver *d, int64_t wall_ms);

/* A Receipt of the partner's own messages: written to the outbox's receipts/ when the
 * config asks for it. */
void egress_receipt(egress_t *e, const Ptibus__V1__Receipt *r);

/* Whether acks wait for a commit, or staged outbox files for a hand-over to the flusher. */
bool egress_acks_waiting(const egress_t *e);

/* Before the spool's turn commits: the deliveries whose files became durable are marked
 * in the turn (their acks follow the commit), and the files staged in this turn are handed
 * to the outbox's flusher (outbox_flush: never waits). 0 or -errno (then abort the turn). */
int egress_prepare_commit(egress_t *e, pt_error_t *err);

/* The spool's turn committed (rc 0: the queued acks are sent) or failed (they are
 * dropped: nothing was marked, the broker redelivers). */
void egress_committed(egress_t *e, int commit_rc);

/* The pull inbox: the seq the partner acknowledged (its mark is in the spool's turn):
 * queues its DeliverAck for the commit. */
void egress_pulled(egress_t *e, uint64_t seq);

typedef struct egress_counts {
    uint64_t handed_over, already, refused, retry_later;
    uint64_t webhook_attempts, webhook_failures;
    size_t held; /* deliveries held for the webhook */
} egress_counts_t;
egress_counts_t egress_counts(const egress_t *e);

#endif
