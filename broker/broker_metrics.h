/* broker_metrics: the broker's metric families (names, help, labels, buckets; see
 * docs/metrics.md) over the common registry (metrics.h). Owns the family table. */
#ifndef PT_BROKER_METRICS_H
#define PT_BROKER_METRICS_H

#include "err.h"
#include "metrics.h"

/* Names of the broker's metrics (see docs/metrics.md); broker_metrics_declare() declares
 * them all with their help text, labels and buckets. */
#define PT_METRIC_ACCEPTED "ptibus_messages_accepted_total"           /* partner,type */
#define PT_METRIC_REJECTED "ptibus_messages_rejected_total"           /* partner,type,code */
#define PT_METRIC_DELIVERED "ptibus_messages_delivered_total"         /* partner,type */
#define PT_METRIC_ACKNOWLEDGED "ptibus_messages_acknowledged_total"   /* partner,type */
#define PT_METRIC_DEAD_LETTERED "ptibus_messages_dead_lettered_total" /* partner,type */
#define PT_METRIC_QUEUE_DEPTH "ptibus_queue_depth"                    /* recipient */
#define PT_METRIC_QUEUE_OLDEST_AGE "ptibus_queue_oldest_age_seconds"  /* recipient */
#define PT_METRIC_PARTNERS_CONNECTED "ptibus_partners_connected"
#define PT_METRIC_COMMIT_BATCH_SIZE "ptibus_commit_batch_size"   /* histogram */
#define PT_METRIC_COMMIT_LATENCY "ptibus_commit_latency_seconds" /* histogram */
#define PT_METRIC_READ_AHEAD "ptibus_messages_read_ahead_total"
#define PT_METRIC_JOURNAL_BYTES_USED "ptibus_journal_bytes_used"
#define PT_METRIC_JOURNAL_MAP_BYTES "ptibus_journal_map_bytes"
#define PT_METRIC_JOURNAL_LAST_SEQ "ptibus_journal_last_seq"
#define PT_METRIC_PERSON_UNMERGED "ptibus_person_index_unmerged"
#define PT_METRIC_PAYLOADS_EXPIRED "ptibus_journal_payloads_expired_total"
#define PT_METRIC_PAYLOADS_HELD "ptibus_journal_payloads_held"
#define PT_METRIC_JOURNAL_BYTES_FREE "ptibus_journal_bytes_free"
#define PT_METRIC_JOURNAL_BYTES_RECLAIMABLE "ptibus_journal_bytes_reclaimable"
#define PT_METRIC_AUTH_REFUSED "ptibus_auth_refused_total"
#define PT_METRIC_CHECKPOINT_SEQ "ptibus_journal_checkpoint_seq"
#define PT_METRIC_CHECKPOINT_AGE "ptibus_journal_checkpoint_age_seconds"
#define PT_METRIC_BUILD_INFO "ptibus_build_info" /* version */

/* Bucket upper bounds (initialisers: `static const double b[] = PT_METRIC_..._BUCKETS;`). */
#define PT_METRIC_COMMIT_BATCH_BUCKETS                                                             \
    {                                                                                              \
        1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096                                    \
    }
#define PT_METRIC_COMMIT_LATENCY_BUCKETS                                                           \
    {                                                                                              \
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1        \
    }

/* Declares every family above in m (idempotent). Returns 0 or the registry's error. */
int broker_metrics_declare(metrics_t *m, pt_error_t *err);

#endif
