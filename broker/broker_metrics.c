/* broker_metrics: the broker's metric family table (see broker_metrics.h). */
#include "broker_metrics.h"

static const double commit_batch_buckets[] = PT_METRIC_COMMIT_BATCH_BUCKETS;
static const double commit_latency_buckets[] = PT_METRIC_COMMIT_LATENCY_BUCKETS;
#define NB(a) (sizeof(a) / sizeof((a)[0]))

static const metrics_desc_t ptibus_metrics[] = {
    {PT_METRICS_COUNTER, PT_METRIC_ACCEPTED,
     "Messages accepted and journaled, by sending partner and message type.", "partner,type"},
    {PT_METRICS_COUNTER, PT_METRIC_REJECTED,
     "Messages refused, by sending partner, message type and error code.", "partner,type,code"},
    {PT_METRICS_COUNTER, PT_METRIC_DELIVERED,
     "Messages handed to a recipient (every attempt), by recipient and message type.",
     "partner,type"},
    {PT_METRICS_COUNTER, PT_METRIC_ACKNOWLEDGED,
     "Messages acknowledged by their recipient, by recipient and message type.", "partner,type"},
    {PT_METRICS_COUNTER, PT_METRIC_DEAD_LETTERED,
     "Messages given up on and dead-lettered, by recipient and message type.", "partner,type"},
    {PT_METRICS_GAUGE, PT_METRIC_QUEUE_DEPTH, "Messages waiting for acknowledgement, by recipient.",
     "recipient"},
    {PT_METRICS_GAUGE, PT_METRIC_QUEUE_OLDEST_AGE,
     "Age in seconds of the oldest unacknowledged message, by recipient (0 when empty).",
     "recipient"},
    {PT_METRICS_GAUGE, PT_METRIC_PARTNERS_CONNECTED, "Partners currently connected.", NULL},
    {PT_METRICS_HISTOGRAM, PT_METRIC_COMMIT_BATCH_SIZE, "Records written per journal group commit.",
     NULL, commit_batch_buckets, NB(commit_batch_buckets)},
    {PT_METRICS_HISTOGRAM, PT_METRIC_COMMIT_LATENCY,
     "Duration in seconds of a journal group commit (write and fsync).", NULL,
     commit_latency_buckets, NB(commit_latency_buckets)},
    {PT_METRICS_COUNTER, PT_METRIC_READ_AHEAD,
     "Messages read and prepared by the read-ahead helper while a commit waited for the disk.",
     NULL},
    {PT_METRICS_GAUGE, PT_METRIC_JOURNAL_BYTES_USED, "Bytes of the journal map in use.", NULL},
    {PT_METRICS_GAUGE, PT_METRIC_JOURNAL_MAP_BYTES, "Current size of the journal map in bytes.",
     NULL},
    {PT_METRICS_GAUGE, PT_METRIC_JOURNAL_LAST_SEQ, "Sequence number of the last journal record.",
     NULL},
    {PT_METRICS_GAUGE, PT_METRIC_PERSON_UNMERGED,
     "Person index entries not yet merged into by_person (a person query scans them).", NULL},
    {PT_METRICS_COUNTER, PT_METRIC_PAYLOADS_EXPIRED,
     "Payloads removed from the journal by the retention policy (records and hashes stay).", NULL},
    {PT_METRICS_GAUGE, PT_METRIC_PAYLOADS_HELD,
     "Payloads due for expiry but kept because their message is still queued or dead-lettered.",
     NULL},
    {PT_METRICS_GAUGE, PT_METRIC_JOURNAL_BYTES_FREE,
     "Bytes of the journal on LMDB's free list, reused by later writes.", NULL},
    {PT_METRICS_GAUGE, PT_METRIC_JOURNAL_BYTES_RECLAIMABLE,
     "Bytes a compacted copy of the journal (ptibusctl compact) would give back.", NULL},
    {PT_METRICS_COUNTER, PT_METRIC_AUTH_REFUSED,
     "Connections refused at authentication (unknown or revoked CURVE key, not CURVE), on the "
     "partners' and the admin socket.",
     NULL},
    {PT_METRICS_GAUGE, PT_METRIC_CHECKPOINT_SEQ,
     "Journal sequence covered by the last signed checkpoint (0 before the first).", NULL},
    {PT_METRICS_GAUGE, PT_METRIC_CHECKPOINT_AGE,
     "Seconds since the last signed checkpoint was made (-1 before the first).", NULL},
    {PT_METRICS_GAUGE, PT_METRIC_BUILD_INFO, "Always 1; the broker's version as a label.",
     "version"},
};

int
broker_metrics_declare(metrics_t *m, pt_error_t *err)
{
    for (size_t i = 0; i < NB(ptibus_metrics); i++) {
        int rc = metrics_declare(m, &ptibus_metrics[i], NULL, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}
