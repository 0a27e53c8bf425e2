/* batch: the loop turn's write transaction, its failure and the frames that wait for
 * its commit (see batch.h). */
#include "batch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "codec.h"
#include "pt_limits.h"
#include "validate.h"
#include "log.h"
#include "ptibus/v1/protocol.pb-c.h"

typedef struct held {
    batch_dest_t dest;
    batch_rule_t rule;
    uint8_t rid[PT_RID_MAX];
    size_t rid_len;
    uint8_t *buf, *alt; /* packed frame, and its fallback (BATCH_FALLBACK) */
    size_t len, alt_len;
    char message_id[PT_MESSAGE_ID_MAX + 1];
    metrics_series_t *counter;
} held_t;

struct batch {
    journal_t *journal;
    journal_txn_t *txn;
    int failed;
    uint64_t seq0; /* the journal's last seq when the transaction began */
    held_t *v;
    size_t n, cap;
    metrics_series_t *latency, *size;
};

int
batch_new(journal_t *j, batch_t **out, pt_error_t *err)
{
    if ((*out = calloc(1, sizeof **out)) == NULL)
        return pt_error_set(err, -ENOMEM, "batch", "out of memory");
    (*out)->journal = j;
    return 0;
}

static void
held_clear(batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->v[i].buf);
        free(b->v[i].alt);
    }
    b->n = 0;
}

void
batch_destroy(batch_t **bp)
{
    if (bp == NULL || *bp == NULL)
        return;
    journal_abort(&(*bp)->txn);
    held_clear(*bp);
    free((*bp)->v);
    free(*bp);
    *bp = NULL;
}

void
batch_set_metrics(batch_t *b, metrics_series_t *latency, metrics_series_t *size)
{
    b->latency = latency;
    b->size = size;
}

journal_txn_t *
batch_txn(batch_t *b)
{
    if (b->failed)
        return NULL;
    if (b->txn)
        return b->txn;
    pt_error_t err;
    b->seq0 = journal_last_seq(b->journal);
    int rc = journal_begin(b->journal, &b->txn, &err);
    if (rc != 0) {
        pt_log_error("journal.begin", "%s", err.msg);
        b->failed = rc == PT_EJOURNALFULL ? rc : PT_ECLOSED;
    }
    return b->txn;
}

void
batch_fail(batch_t *b, int rc, const pt_error_t *err)
{
    if (b->failed)
        return;
    b->failed = rc == PT_EJOURNALFULL ? rc : PT_ECLOSED;
    pt_log_error("journal.append", "%s%s: the batch of %zu frames is lost",
                 rc == PT_EJOURNALFULL ? "JOURNAL FULL: " : "", err ? err->msg : "", b->n);
    journal_abort(&b->txn);
}

int
batch_failed(const batch_t *b)
{
    return b->failed;
}

bool
batch_open(const batch_t *b)
{
    return b->txn != NULL;
}

size_t
batch_frames(const batch_t *b)
{
    return b->n;
}

static int
pack(const ProtobufCMessage *m, uint8_t **buf, size_t *len)
{
    pt_error_t err;
    return codec_pack(m, SIZE_MAX, buf, len, &err);
}

int
batch_push(batch_t *b, const batch_frame_t *f)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        held_t *v = realloc(b->v, cap * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        b->v = v;
        b->cap = cap;
    }
    held_t *h = &b->v[b->n];
    memset(h, 0, sizeof *h);
    if (f->rid_len > sizeof h->rid)
        return PT_ETOOLARGE;
    if (pack(f->msg, &h->buf, &h->len) != 0 ||
        (f->rule == BATCH_FALLBACK && pack(f->fallback, &h->alt, &h->alt_len) != 0)) {
        free(h->buf);
        return -ENOMEM;
    }
    h->dest = f->dest;
    h->rule = f->rule;
    h->rid_len = f->rid_len;
    memcpy(h->rid, f->rid, f->rid_len);
    snprintf(h->message_id, sizeof h->message_id, "%s", f->message_id ? f->message_id : "");
    h->counter = f->counter;
    b->n++;
    return 0;
}

int
batch_commit(batch_t *b)
{
    if (b->failed) {
        journal_abort(&b->txn);
        return b->failed;
    }
    if (b->txn == NULL)
        return 0;
    pt_error_t err;
    double t0 = pt_clock_mono_s();
    int rc = journal_commit(&b->txn, &err);
    metrics_observe(b->latency, pt_clock_mono_s() - t0);
    if (rc == 0)
        metrics_observe(b->size, (double)(journal_last_seq(b->journal) - b->seq0));
    if (rc != 0) {
        b->failed = rc == PT_EJOURNALFULL ? rc : PT_ECLOSED;
        pt_log_error("journal.commit", "%s%s: %zu frames of the batch answered as failed",
                     rc == PT_EJOURNALFULL ? "JOURNAL FULL: " : "", err.msg, b->n);
    }
    return rc;
}

/* The answer to a Publish whose batch was lost: nothing was stored, retry. */
static int
retry_nack(const batch_t *b, const held_t *h, uint8_t **buf, size_t *len)
{
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Nack nack = PTIBUS__V1__NACK__INIT;
    bool full = b->failed == PT_EJOURNALFULL;
    nack.message_id = (char *)h->message_id;
    nack.code = full ? PTIBUS__V1__NACK_CODE__NACK_CODE_JOURNAL_FULL
                     : PTIBUS__V1__NACK_CODE__NACK_CODE_UNAVAILABLE;
    nack.reason = full ? "journal full: nothing was stored, retry later"
                       : "journal unavailable: nothing was stored, retry later";
    nack.retryable = true;
    f.kind_case = PTIBUS__V1__FRAME__KIND_NACK;
    f.nack = &nack;
    return pack(&f.base, buf, len);
}

/* Sends one held frame as its rule says for a turn that committed or failed. */
static void
send_one(batch_t *b, held_t *h, batch_send_fn send, void *arg)
{
    const uint8_t *buf = h->buf;
    size_t len = h->len;
    uint8_t *nack = NULL;
    if (b->failed && h->rule == BATCH_DROP)
        return;
    if (b->failed && h->rule == BATCH_FALLBACK) {
        buf = h->alt;
        len = h->alt_len;
    }
    if (b->failed && h->rule == BATCH_RETRY) {
        if (retry_nack(b, h, &nack, &len) != 0)
            return;
        buf = nack;
    }
    if (send(arg, h->dest, h->rid, h->rid_len, buf, len) == 0 && !b->failed)
        metrics_add(h->counter, 1);
    free(nack);
}

void
batch_send(batch_t *b, batch_send_fn send, void *arg)
{
    for (size_t i = 0; i < b->n; i++)
        send_one(b, &b->v[i], send, arg);
    held_clear(b);
    b->failed = 0;
}
