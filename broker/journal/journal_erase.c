/* journal_erase: erasure of one person's payloads (GDPR art. 17). The records about a
 * person are found by the person index (HMAC of the NIR); their payloads are removed
 * (PT_PAYLOAD_ERASED), their hashes and audit fields kept, so the chain still verifies.
 * Refused while one of those messages is still queued for a recipient, unless forced:
 * then it is dead-lettered first (a DEAD_LETTERED record with the reason), and a dead
 * letter whose payload was erased is never requeued (journal_dead_requeue). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal_internal.h"
#include "journal_record.h"

/* The recipients of v for which it is still queued, into out (at most max). */
static size_t
queued_for(journal_txn_t *t, const journal_view_t *v, journal_queue_entry_t *e, const char **out,
           size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < v->n_recipients && n < max; i++)
        if (journal_queue_get(t, v->recipients[i], v->seq, &e[n]) == 0)
            out[n++] = v->recipients[i];
    return n;
}

/* Dead-letters v for each recipient it is still queued for, journaling why. */
static int
dead_letter_all(journal_txn_t *t, const journal_view_t *v, const char *reason,
                journal_erase_report_t *rep, pt_error_t *err)
{
    journal_queue_entry_t e[PT_RECIPIENTS_MAX];
    const char *who[PT_RECIPIENTS_MAX];
    char why[300];
    /* v borrows from t: copy what the records need before writing. */
    char type[JOURNAL_KEY_MAX + 1], msgid[JOURNAL_KEY_MAX + 1];
    snprintf(type, sizeof type, "%s", v->msg_type);
    snprintf(msgid, sizeof msgid, "%s", v->message_id);
    char rcpt[PT_RECIPIENTS_MAX][40];
    uint64_t seq = v->seq;
    size_t n = queued_for(t, v, e, who, PT_RECIPIENTS_MAX);
    for (size_t i = 0; i < n; i++)
        snprintf(rcpt[i], sizeof rcpt[i], "%s", who[i]);
    snprintf(why, sizeof why, "erased: %s", reason);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        journal_record_t d = {.kind = PT_REC_DEAD_LETTERED,
                              .partner = rcpt[i],
                              .msg_type = type,
                              .message_id = msgid,
                              .ref_seq = seq,
                              .attempt = e[i].attempts,
                              .reason = why};
        uint64_t s;
        rc = journal_dead_add(t, rcpt[i], &e[i], err);
        if (rc == 0)
            rc = journal_append(t, &d, &s, err);
        rep->dead_lettered += rc == 0;
    }
    return rc;
}

/* First pass: how many of the person's messages are still queued (nothing written). */
static int
count_queued(journal_txn_t *t, const uint64_t *seqs, size_t n, size_t *queued, pt_error_t *err)
{
    journal_queue_entry_t e[PT_RECIPIENTS_MAX];
    const char *who[PT_RECIPIENTS_MAX];
    *queued = 0;
    for (size_t i = 0; i < n; i++) {
        journal_view_t v;
        int rc = jint_view_in_place(t->j, t->txn, seqs[i], &v, err);
        if (rc == PT_ENOTFOUND)
            continue;
        if (rc != 0)
            return rc;
        *queued += queued_for(t, &v, e, who, PT_RECIPIENTS_MAX) > 0;
    }
    return 0;
}

/* Second pass on one record: dead-letter it if forced, then remove its payload. */
static int
erase_one(journal_txn_t *t, uint64_t seq, const char *reason, journal_erase_report_t *rep,
          pt_error_t *err)
{
    journal_view_t v;
    MDB_val val;
    uint8_t *buf = NULL;
    int rc = jint_view_in_place(t->j, t->txn, seq, &v, err);
    if (rc == PT_ENOTFOUND)
        return 0; /* moved out by a segment expiry */
    if (rc == 0)
        rc = dead_letter_all(t, &v, reason, rep, err);
    if (rc == 0)
        rc = jint_get_record(t->j, t->txn, seq, &val, err);
    if (rc == 0)
        rc = jint_decode_at(&val, seq, &v, err);
    if (rc != 0)
        return rc;
    if (v.payload_state != PT_PAYLOAD_STORED) {
        rep->already += v.payload_state != PT_PAYLOAD_NONE;
        return 0;
    }
    if (v.format < 2) {
        rep->format1++;
        return 0;
    }
    size_t n;
    if ((buf = malloc(val.mv_size)) == NULL)
        return pt_error_set(err, -ENOMEM, t->j->dir, "out of memory");
    rc = journal_record_strip(val.mv_data, val.mv_size, PT_PAYLOAD_ERASED, buf, &n);
    if (rc == 0 && (rc = jint_record_replace(t, seq, buf, n)) != 0)
        rc = jint_poison(t, rc, err);
    free(buf);
    rep->erased += rc == 0;
    return rc;
}

int
journal_erase_person(journal_txn_t *t, const char *nir, bool force, const char *reason,
                     journal_erase_report_t *rep, uint64_t **seqs_out, size_t *n_out,
                     pt_error_t *err)
{
    memset(rep, 0, sizeof *rep);
    *seqs_out = NULL;
    *n_out = 0;
    if (t->poisoned)
        return pt_error_set(err, t->poisoned, t->j->dir, "transaction failed earlier");
    uint64_t *seqs = NULL;
    size_t n = 0, queued = 0;
    int rc = journal_find_person(t->j, nir, &seqs, &n, err);
    if (rc == 0)
        rc = count_queued(t, seqs, n, &queued, err);
    if (rc == 0 && queued > 0 && !force)
        rc = pt_error_set(err, PT_EDENIED, NULL,
                          "%zu of the person's messages are still queued for a recipient: "
                          "nothing erased (force dead-letters them first)",
                          queued);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = erase_one(t, seqs[i], reason, rep, err);
    rep->records = n;
    if (rc != 0) {
        free(seqs);
        return rc;
    }
    *seqs_out = seqs;
    *n_out = n;
    return 0;
}
