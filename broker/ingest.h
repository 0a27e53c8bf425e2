/* ingest: the broker's accept path for Publish frames:
 *   decode (size-limited) → validate → ACL → dedup → route → journal (with the
 *   per-recipient queue entries) → PublishAck(seq).
 * Every refusal is journaled as a REJECTED record (who, when, why, hash of the bytes)
 * and answered with a Nack naming the field. Messages of one loop turn share one
 * journal write transaction (group commit); their replies are held until the commit
 * has returned, so no PublishAck ever leaves before its message is on disk. */
#ifndef PT_INGEST_H
#define PT_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bconfig.h"
#include "err.h"
#include "journal.h"
#include "metrics.h"
#include "ptibus/v1/protocol.pb-c.h"
#include "router.h"

typedef struct ingest ingest_t;

/* A reply held until the batch commits. The routing id addresses the ROUTER peer. */
typedef struct ingest_reply {
    uint8_t rid[256];
    size_t rid_len;
    char message_id[72];
    uint64_t seq;
    bool duplicate;
    int nack_code; /* 0 = PublishAck, else PTIBUS__V1__NACK_CODE__* */
    bool retryable;
    char reason[PT_ERROR_MSG_MAX];
    char field_path[PT_ERROR_PATH_MAX];
    metrics_series_t *counter; /* counted once the batch commits */
} ingest_reply_t;

typedef void (*ingest_send_fn)(const ingest_reply_t *reply, void *arg);

/* Counters, for logs and metrics. */
typedef struct ingest_stats {
    uint64_t accepted;
    uint64_t duplicates;
    uint64_t rejected;
    uint64_t batches;
    uint64_t commit_failures;
    uint32_t last_batch;
} ingest_stats_t;

/* Told of each accepted message's recipients (in the current batch). */
typedef void (*ingest_routed_fn)(void *arg, const char *const *recipients, size_t n);

/* j, cfg and router are borrowed for the ingest's lifetime; routed (may be NULL) is
 * called for every newly accepted message. Caller owns *out. */
int ingest_new(journal_t *j, const bconfig_t *cfg, const router_t *router, ingest_routed_fn routed,
               void *routed_arg, ingest_t **out, pt_error_t *err);

/* Aborts any open batch and frees; accepts NULL; sets *in to NULL. */
void ingest_destroy(ingest_t **in);

/* The half of the accept path that needs no journal: the envelope decoded
 * (size-limited), its sender overwritten by the authenticated partner's id (the only
 * sender identity trusted), validated, checked against the partner's ACL, packed to
 * its canonical bytes and hashed. */
typedef struct ingest_prep {
    bool done; /* ingest_prepare has run */
    int code;  /* 0 = acceptable so far, else the Nack code (why says what and where) */
    pt_error_t why;
    Ptibus__V1__Envelope *env;
    char *client_sender; /* the envelope's own sender, restored before it is freed */
    const char *type;
    uint8_t *bytes; /* canonical packed envelope, as journaled */
    size_t len;
    uint8_t hash[PT_JOURNAL_HASH_LEN];
} ingest_prep_t;

/* Fills out for one Publish of partner p. Reads only cfg and p and touches no shared
 * state, so it may run on another thread than the loop (the prefetch helper). Free
 * with ingest_prep_fini unless it is handed to ingest_publish. */
void ingest_prepare(const bconfig_t *cfg, const bconfig_partner_t *p,
                    const Ptibus__V1__Publish *pub, ingest_prep_t *out);
void ingest_prep_fini(ingest_prep_t *prep);

/* Handles one Publish from the authenticated partner p: the rest of the accept path
 * (dedup, routing, journal) on prep, or on ingest_prepare's result now when prep is
 * NULL or not done. Takes prep (frees it). Its reply joins the batch. */
void ingest_publish(ingest_t *in, const uint8_t *rid, size_t rid_len, const bconfig_partner_t *p,
                    const Ptibus__V1__Publish *pub, ingest_prep_t *prep);

/* Journals the refusal of bytes that are not even a Frame, and queues its Nack. */
void ingest_reject_raw(ingest_t *in, const uint8_t *rid, size_t rid_len, const bconfig_partner_t *p,
                       const uint8_t *bytes, size_t len, int code, const pt_error_t *why);

/* Commits the batch (one write transaction, fsynced) and then calls send for every
 * reply in arrival order. When the commit fails every reply becomes a retryable Nack
 * (JOURNAL_FULL or UNAVAILABLE) and nothing of the batch is kept. Returns the commit
 * result (0 when there was nothing to commit). */
int ingest_flush(ingest_t *in, ingest_send_fn send, void *arg);

/* ingest_flush in two steps, so the loop can lend the partners' socket to the
 * prefetch helper while it waits for the fsync: ingest_commit commits (returns its
 * result), ingest_send then sends the replies exactly as ingest_flush would. */
int ingest_commit(ingest_t *in);
void ingest_send(ingest_t *in, ingest_send_fn send, void *arg);

/* True when the batch has a write transaction open (something to commit). */
bool ingest_batch_open(const ingest_t *in);

/* The batch's write transaction, begun on first use, which other modules (delivery)
 * write into so that one commit covers the whole loop turn. NULL when the batch has
 * failed: nothing more may be written, every reply will be a retryable Nack. */
journal_txn_t *ingest_batch_txn(ingest_t *in);

/* Records another module's journal failure: the whole batch is lost. */
void ingest_batch_fail(ingest_t *in, int rc, const pt_error_t *err);

/* Number of replies waiting for the next flush. */
size_t ingest_pending(const ingest_t *in);

const ingest_stats_t *ingest_stats(const ingest_t *in);

/* Counts accepted and rejected messages, batch sizes and commit latency in m (borrowed;
 * NULL: no metrics). */
void ingest_set_metrics(ingest_t *in, metrics_t *m);

#endif
