/* ingest: the broker's accept path for Publish frames:
 *   decode (size-limited) → validate → ACL → dedup → journal → PublishAck(seq).
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
#include "ptibus/v1/protocol.pb-c.h"

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

/* j and cfg are borrowed for the ingest's lifetime. Caller owns *out. */
int ingest_new(journal_t *j, const bconfig_t *cfg, ingest_t **out, pt_error_t *err);

/* Aborts any open batch and frees; accepts NULL; sets *in to NULL. */
void ingest_destroy(ingest_t **in);

/* Handles one Publish from the authenticated partner p (the only sender identity
 * trusted: the envelope's sender is overwritten). Its reply joins the batch. */
void ingest_publish(ingest_t *in, const uint8_t *rid, size_t rid_len, const bconfig_partner_t *p,
                    const Ptibus__V1__Publish *pub);

/* Journals the refusal of bytes that are not even a Frame, and queues its Nack. */
void ingest_reject_raw(ingest_t *in, const uint8_t *rid, size_t rid_len,
                       const bconfig_partner_t *p, const uint8_t *bytes, size_t len, int code,
                       const pt_error_t *why);

/* Commits the batch (one write transaction, fsynced) and then calls send for every
 * reply in arrival order. When the commit fails every reply becomes a retryable Nack
 * (JOURNAL_FULL or UNAVAILABLE) and nothing of the batch is kept. Returns the commit
 * result (0 when there was nothing to commit). */
int ingest_flush(ingest_t *in, ingest_send_fn send, void *arg);

/* Number of replies waiting for the next flush. */
size_t ingest_pending(const ingest_t *in);

const ingest_stats_t *ingest_stats(const ingest_t *in);

#endif
