/* journal_segment: segment expiry. The oldest records, once older than the audit
 * retention, are moved out of the live journal with their index entries and the
 * checkpoints before the last one they reach; that checkpoint is kept and a signed
 * anchor (meta "anchor") names it, so the live journal verifies from it. Never past a
 * message still queued or dead-lettered. See docs/journal.md ("Segment expiry"). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "journal_internal.h"
#include "journal_record.h"
#include "log.h"

/* The lowest seq still in a queue or the dead letters (UINT64_MAX when none): a scan of
 * both, which hold only what waits for a recipient. */
static uint64_t
lowest_pending(journal_txn_t *t)
{
    uint64_t low = UINT64_MAX;
    const int dbs[] = {JDB_QUEUE, JDB_DEAD};
    for (size_t i = 0; i < 2; i++) {
        MDB_cursor *cur;
        MDB_val k, v;
        if (mdb_cursor_open(t->txn, t->j->dbi[dbs[i]], &cur) != 0)
            return 0;
        for (int m = mdb_cursor_get(cur, &k, &v, MDB_FIRST); m == 0;
             m = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            uint64_t s = k.mv_size > SEQ_KEY_LEN
                             ? bytes_be64_get((const uint8_t *)k.mv_data + k.mv_size - SEQ_KEY_LEN)
                             : 0;
            low = s < low ? s : low;
        }
        mdb_cursor_close(cur);
    }
    return low;
}

/* The last checkpoint at or before seq (after = false) or the first at or after it. */
static uint64_t
checkpoint_at(journal_txn_t *t, uint64_t seq, bool after)
{
    MDB_cursor *cur;
    uint8_t key[SEQ_KEY_LEN];
    bytes_be64_put(key, after ? seq : seq + 1);
    MDB_val k = {SEQ_KEY_LEN, key}, v;
    uint64_t found = 0;
    if (mdb_cursor_open(t->txn, t->j->dbi[JDB_CKPT], &cur) != 0)
        return 0;
    int m = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (!after)
        m = mdb_cursor_get(cur, &k, &v, m == 0 ? MDB_PREV : MDB_LAST);
    if (m == 0 && k.mv_size == SEQ_KEY_LEN)
        found = bytes_be64_get(k.mv_data);
    mdb_cursor_close(cur);
    return found;
}

/* True when record seq is older than cutoff_ms and before every pending message. */
static bool
movable(journal_txn_t *t, uint64_t seq, int64_t cutoff_ms, uint64_t pending)
{
    journal_view_t v;
    pt_error_t err;
    return seq < pending && jint_view_in_place(t->j, t->txn, seq, &v, &err) == 0 &&
           v.time_ms <= cutoff_ms;
}

/* The last record to move out in this step (0: none): a checkpoint's seq, since the
 * anchor is a kept checkpoint. Looks at up to max records from first, and past them to
 * the next checkpoint when there is none among them (a commit larger than max). */
static uint64_t
segment_end(journal_txn_t *t, uint64_t first, int64_t cutoff_ms, size_t max, uint64_t pending)
{
    uint64_t last = first - 1;
    while (last < t->j->last_seq && last - first + 1 < max &&
           movable(t, last + 1, cutoff_ms, pending))
        last++;
    uint64_t a = last >= first ? checkpoint_at(t, last, false) : 0;
    if (a >= first)
        return a;
    a = checkpoint_at(t, first, true);
    return a != 0 && movable(t, a, cutoff_ms, pending) && pending > a ? a : 0;
}

static int
del_key(journal_txn_t *t, int db, const void *key, size_t klen, const void *data, size_t dlen)
{
    MDB_val k = {klen, (void *)key}, d = {dlen, (void *)data};
    int rc = mdb_del(t->txn, t->j->dbi[db], &k, data ? &d : NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The index entries journal_index.c wrote for record v (dedup only if it owns it). */
static int
del_indexes(journal_txn_t *t, const journal_view_t *v)
{
    uint8_t key[JOURNAL_KEY_MAX + 1], seqkey[SEQ_KEY_LEN];
    size_t p = strlen(v->partner), m = strlen(v->message_id), ty = strlen(v->msg_type);
    bytes_be64_put(seqkey, v->seq);
    int rc = 0;
    if (v->kind == PT_REC_RECEIVED && m > 0 && p + 1 + m <= JOURNAL_KEY_MAX) {
        memcpy(key, v->partner, p + 1);
        memcpy(key + p + 1, v->message_id, m);
        MDB_val k = {p + 1 + m, key}, d;
        if (mdb_get(t->txn, t->j->dbi[JDB_DEDUP], &k, &d) == 0 && d.mv_size == DEDUP_VAL_LEN &&
            bytes_be64_get(d.mv_data) == v->seq)
            rc = del_key(t, JDB_DEDUP, key, p + 1 + m, NULL, 0);
    }
    if (rc == 0 && m > 0)
        rc = del_key(t, JDB_MSGID, v->message_id, m, seqkey, SEQ_KEY_LEN);
    if (rc == 0 && p > 0 && p + ty + 2 + 2 * SEQ_KEY_LEN <= JOURNAL_KEY_MAX) {
        memcpy(key, v->partner, p + 1);
        memcpy(key + p + 1, v->msg_type, ty + 1);
        bytes_be64_put(key + p + ty + 2, (uint64_t)v->time_ms ^ (UINT64_C(1) << 63));
        memcpy(key + p + ty + 2 + SEQ_KEY_LEN, seqkey, SEQ_KEY_LEN);
        rc = del_key(t, JDB_PARTNER, key, p + ty + 2 + 2 * SEQ_KEY_LEN, NULL, 0);
    }
    if (rc == 0 && t->j->have_person_new)
        rc = del_key(t, JDB_PERSON_NEW, seqkey, SEQ_KEY_LEN, NULL, 0);
    return rc;
}

/* Deletes records first..last with their index entries, and the checkpoints before last. */
static int
move_out(journal_txn_t *t, uint64_t first, uint64_t last, pt_error_t *err)
{
    int rc = 0;
    for (uint64_t s = first; rc == 0 && s <= last; s++) {
        journal_view_t v;
        uint8_t key[SEQ_KEY_LEN];
        if ((rc = jint_view_in_place(t->j, t->txn, s, &v, err)) != 0)
            return rc;
        bytes_be64_put(key, s);
        rc = del_indexes(t, &v);
        if (rc == 0)
            rc = del_key(t, JDB_RECORDS, key, SEQ_KEY_LEN, NULL, 0);
    }
    MDB_cursor *cur;
    MDB_val k, v;
    if (rc == 0 && (rc = mdb_cursor_open(t->txn, t->j->dbi[JDB_CKPT], &cur)) == 0) {
        int m = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        for (; m == 0 && k.mv_size == SEQ_KEY_LEN && bytes_be64_get(k.mv_data) < last;
             m = mdb_cursor_get(cur, &k, &v, MDB_FIRST))
            if ((rc = mdb_cursor_del(cur, 0)) != 0)
                break;
        mdb_cursor_close(cur);
    }
    return rc > 0 ? jint_poison(t, rc, err) : rc;
}

/* Signs the anchor at the kept checkpoint a (its record moved out) into meta. */
static int
put_anchor(journal_txn_t *t, uint64_t a, pt_error_t *err)
{
    uint8_t key[SEQ_KEY_LEN], msg[PT_JCKP_MSG_LEN];
    bytes_be64_put(key, a);
    MDB_val k = {SEQ_KEY_LEN, key}, v;
    journal_checkpoint_rec_t cp;
    uint64_t bad;
    int rc = mdb_get(t->txn, t->j->dbi[JDB_CKPT], &k, &v);
    if (rc != 0 || jint_decode_checkpoint(&k, &v, &cp, &bad, err) != 0 ||
        cp.format != PT_JCKP_FORMAT)
        return pt_error_set(err, PT_ECORRUPT, t->j->dir,
                            "checkpoint %" PRIu64 ": missing or old-format: no anchor there", a);
    cp.format = PT_JANCHOR_FORMAT;
    cp.time_ms = jint_now_ms();
    size_t mlen = journal_anchor_message(&cp, msg);
    crypto_sign_detached(cp.sig, NULL, msg, mlen, t->j->sign_sk);
    rc = jint_meta_put_anchor(t->j, t->txn, &cp);
    if (rc != 0)
        return jint_poison(t, rc, err);
    t->anchor_pending = true;
    t->anchor = cp;
    return 0;
}

/* The segment expiry journals itself: an ADMIN record, in the same transaction. */
static int
journal_move(journal_txn_t *t, uint64_t first, uint64_t last, pt_error_t *err)
{
    char why[200];
    uint64_t seq;
    snprintf(why, sizeof why,
             "retention: records %" PRIu64 "..%" PRIu64
             " moved out of the live journal (retention.audit); signed anchor at %" PRIu64,
             first, last, last);
    journal_record_t rec = {.kind = PT_REC_ADMIN, .partner = "", .reason = why};
    return journal_append(t, &rec, &seq, err);
}

int
journal_segment_expire(journal_txn_t *t, int64_t cutoff_ms, size_t max,
                       journal_segment_report_t *rep, pt_error_t *err)
{
    journal_t *j = t->j;
    memset(rep, 0, sizeof *rep);
    if (t->poisoned)
        return pt_error_set(err, t->poisoned, j->dir, "transaction failed earlier");
    if (!j->have_sk)
        return pt_error_set(err, PT_EDENIED, j->dir, "segment expiry needs the signing key");
    uint64_t first = j->have_anchor ? j->anchor.seq + 1 : 1;
    rep->pending_seq = lowest_pending(t);
    if (first > j->last_seq || t->last_seq != j->last_seq)
        return 0; /* nothing, or a batch with appends (the walk reads committed records) */
    uint64_t last = segment_end(t, first, cutoff_ms, max, rep->pending_seq);
    if (last == 0)
        return 0;
    int rc = move_out(t, first, last, err);
    if (rc == 0)
        rc = put_anchor(t, last, err);
    if (rc == 0)
        rc = journal_move(t, first, last, err);
    if (rc != 0)
        return rc;
    rep->first = first;
    rep->anchor = last;
    rep->moved = (size_t)(last - first + 1);
    rep->more = movable(t, last + 1, cutoff_ms, rep->pending_seq);
    return 0;
}

uint64_t
journal_first_seq(const journal_t *j)
{
    return j->have_anchor ? j->anchor.seq + 1 : 1;
}
