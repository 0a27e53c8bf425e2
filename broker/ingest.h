/* ingest: the broker's accept path for Publish frames:
 *   decode (size-limited) → validate → ACL → quotas → dedup → route → journal (with the
 *   per-recipient queue entries) → PublishAck(seq).
 * Refusals are journaled as REJECTED records (who, when, why, hash of the bytes; at a
 * bounded rate per partner) and answered with a Nack naming the field. Every handler
 * writes into the loop turn's batch (batch.h) and pushes its reply there: it leaves
 * after the turn's commit, so no PublishAck ever leaves before its message is on disk.
 * Owns the per-partner quotas and the accept counters. */
#ifndef PT_INGEST_H
#define PT_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "bconfig.h"
#include "err.h"
#include "journal.h"
#include "metrics.h"
#include "pt_limits.h"
#include "ptibus/v1/protocol.pb-c.h"
#include "router.h"

typedef struct ingest ingest_t;

/* A PublishAck or Nack for one peer (the routing id addresses the ROUTER peer). */
typedef struct ingest_reply {
    uint8_t rid[PT_RID_MAX];
    size_t rid_len;
    char message_id[PT_MESSAGE_ID_MAX + 1];
    uint64_t seq;
    bool duplicate;
    int nack_code; /* 0 = PublishAck, else PTIBUS__V1__NACK_CODE__* */
    bool retryable;
    char reason[PT_ERROR_MSG_MAX];
    char field_path[PT_ERROR_PATH_MAX];
    metrics_series_t *counter; /* counted once the batch commits */
} ingest_reply_t;

/* The frame of a reply; its parts point into the struct and into the reply. */
typedef struct ingest_frame {
    Ptibus__V1__Frame frame;
    Ptibus__V1__PublishAck ack;
    Ptibus__V1__Nack nack;
} ingest_frame_t;

/* Fills out with r's frame (valid while out and r are). */
void ingest_reply_frame(const ingest_reply_t *r, ingest_frame_t *out);

/* Counters, for logs and metrics. */
typedef struct ingest_stats {
    uint64_t accepted;
    uint64_t duplicates;
    uint64_t rejected;
    uint64_t batches;
    uint64_t commit_failures;
    uint32_t last_batch;
} ingest_stats_t;

/* Who receives a message newly accepted by ingest_publish (partner ids from the
 * configuration: valid as long as it is). n is 0 for anything else. */
typedef struct ingest_routed {
    const char *to[PT_RECIPIENTS_MAX];
    size_t n;
} ingest_routed_t;

/* j, cfg and router are borrowed for the ingest's lifetime. Caller owns *out. */
int ingest_new(journal_t *j, const bconfig_t *cfg, const router_t *router, ingest_t **out,
               pt_error_t *err);

/* Reload: prepare allocates the quotas for n_partners (0 or -ENOMEM, nothing
 * changed); once cfg's partners are swapped, commit moves each kept partner's quotas by
 * from (new index -> old index, -1: new partner, full quotas) and routes with router
 * (borrowed) from then on; with from NULL it drops what prepare made. */
int ingest_reload_prepare(ingest_t *in, size_t n_partners);
void ingest_reload_commit(ingest_t *in, const ptrdiff_t *from, const router_t *router);

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
 * state, so it may run on another thread than the loop (the read-ahead helper). Free
 * with ingest_prep_fini unless it is handed to ingest_publish. */
void ingest_prepare(const bconfig_t *cfg, const bconfig_partner_t *p,
                    const Ptibus__V1__Publish *pub, ingest_prep_t *out);
void ingest_prep_fini(ingest_prep_t *prep);

/* Handles one Publish from the authenticated partner p in batch b: the rest of the
 * accept path (quotas, dedup, routing, journal) on prep, or on ingest_prepare's result
 * now when prep is NULL or not done. Takes prep (frees it). Its reply joins b; when the
 * message is newly accepted, routed (may be NULL) says who receives it. */
void ingest_publish(ingest_t *in, batch_t *b, const uint8_t *rid, size_t rid_len,
                    const bconfig_partner_t *p, const Ptibus__V1__Publish *pub, ingest_prep_t *prep,
                    ingest_routed_t *routed);

/* Journals (in b) the refusal of bytes that are not a Frame, and queues its Nack. */
void ingest_reject_raw(ingest_t *in, batch_t *b, const uint8_t *rid, size_t rid_len,
                       const bconfig_partner_t *p, const uint8_t *bytes, size_t len, int code,
                       const pt_error_t *why);

/* The loop turn has been committed (or has failed): the counters follow. */
void ingest_end(ingest_t *in, bool committed);

const ingest_stats_t *ingest_stats(const ingest_t *in);

/* Counts accepted and rejected messages in m (borrowed; NULL: no metrics). */
void ingest_set_metrics(ingest_t *in, metrics_t *m);

#endif
