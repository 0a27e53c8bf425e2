/* journal_verify: the chain walk over a range of records, the checkpoint walk
 * (signatures, hashes, links), the unsigned tail and, with check_state, the state
 * databases (journal_state.c). */
#include <stdio.h>
#include <string.h>

#include <lmdb.h>
#include <sodium.h>

#include "journal_internal.h"
#include "journal_record.h"

static int
bad_record(uint64_t *bad_seq, uint64_t seq, pt_error_t *err, const char *what)
{
    *bad_seq = seq;
    return pt_error_set(err, PT_ECORRUPT, NULL, "record %llu: %s", (unsigned long long)seq, what);
}

/* Decodes record seq and checks its chain hash against prev; then prev = its hash. */
static int
verify_one(const MDB_val *v, uint64_t seq, uint8_t prev[PT_JOURNAL_HASH_LEN], uint64_t *bad_seq,
           pt_error_t *err)
{
    journal_view_t view;
    uint8_t h[PT_JOURNAL_HASH_LEN];
    if (jint_decode_at(v, seq, &view, err) != 0) {
        *bad_seq = seq;
        return PT_ECORRUPT;
    }
    journal_record_chain(prev, v->mv_data, v->mv_size, h);
    if (memcmp(h, view.hash, PT_JOURNAL_HASH_LEN) != 0)
        return bad_record(bad_seq, seq, err, "chain hash mismatch (edited or reordered)");
    memcpy(prev, view.hash, PT_JOURNAL_HASH_LEN);
    return 0;
}

/* The hash the walk from `first` starts from: genesis (zeros) for record 1, else the
 * stored hash of record first-1, itself checked against first-2 when that exists. */
static int
chain_start(journal_t *j, MDB_txn *txn, uint64_t first, uint8_t prev[PT_JOURNAL_HASH_LEN],
            uint64_t *bad_seq, pt_error_t *err)
{
    MDB_val v;
    memset(prev, 0, PT_JOURNAL_HASH_LEN);
    if (first <= 1)
        return 0;
    if (first > 2) {
        int rc = jint_get_record(j, txn, first - 2, &v, err);
        if (rc == PT_ENOTFOUND)
            return bad_record(bad_seq, first - 2, err, "missing (deleted?)");
        if (rc != 0)
            return rc;
        const uint8_t *h = journal_record_stored_hash(v.mv_data, v.mv_size);
        if (h == NULL)
            return bad_record(bad_seq, first - 2, err, "too short");
        memcpy(prev, h, PT_JOURNAL_HASH_LEN);
    }
    int rc = jint_get_record(j, txn, first - 1, &v, err);
    if (rc == PT_ENOTFOUND)
        return bad_record(bad_seq, first - 1, err, "missing (deleted?)");
    return rc ? rc : verify_one(&v, first - 1, prev, bad_seq, err);
}

static void
progress(const journal_t *j, const char *phase, uint64_t seq, uint64_t end)
{
    if (j->verifying && j->verifying->progress)
        j->verifying->progress(j->verifying->progress_arg, phase, seq, end);
}

/* Walks records first..end checking continuity and the chain, then the tail. */
static int
verify_walk(journal_t *j, MDB_cursor *cur, uint64_t first, uint64_t end, uint64_t meta_last,
            uint8_t prev[PT_JOURNAL_HASH_LEN], uint64_t *bad_seq, pt_error_t *err)
{
    uint8_t key[SEQ_KEY_LEN];
    bytes_be64_put(key, first);
    MDB_val k = {SEQ_KEY_LEN, key}, v;
    uint64_t expect = first;
    int m = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; m == 0; m = mdb_cursor_get(cur, &k, &v, MDB_NEXT), expect++) {
        if (k.mv_size != SEQ_KEY_LEN)
            return bad_record(bad_seq, expect, err, "key is not a sequence");
        uint64_t seq = bytes_be64_get(k.mv_data);
        if (seq > end && seq > meta_last)
            return bad_record(bad_seq, seq, err, "after the last sequence in meta (added?)");
        if (seq > end)
            break;
        if (seq != expect)
            return bad_record(bad_seq, expect, err, "missing (deleted?)");
        int rc = verify_one(&v, seq, prev, bad_seq, err);
        if (rc != 0)
            return rc;
        if ((seq & 0xffff) == 0)
            progress(j, "records", seq, end);
    }
    if (m != 0 && m != MDB_NOTFOUND)
        return lmdbx_fail(err, m, j->dir, "walking the records");
    if (expect <= end)
        return bad_record(bad_seq, expect, err, "missing (deleted?)");
    return 0;
}

int
jint_verify_range(journal_t *j, MDB_txn *txn, uint64_t first, uint64_t end, uint64_t *bad_seq,
                  pt_error_t *err)
{
    journal_meta_t meta;
    uint8_t prev[PT_JOURNAL_HASH_LEN];
    MDB_cursor *cur;
    int rc = jint_meta_read(j, txn, &meta, err);
    if (rc == 0)
        rc = chain_start(j, txn, first, prev, bad_seq, err);
    if (rc != 0)
        return rc;
    rc = mdb_cursor_open(txn, j->dbi[JDB_RECORDS], &cur);
    if (rc != 0)
        return lmdbx_fail(err, rc, j->dir, "opening a cursor");
    rc = verify_walk(j, cur, first, end, meta.last_seq, prev, bad_seq, err);
    mdb_cursor_close(cur);
    if (rc == 0 && end == meta.last_seq && end >= first &&
        memcmp(prev, meta.head, PT_JOURNAL_HASH_LEN) != 0)
        rc = bad_record(bad_seq, end, err, "hash differs from the head kept in meta");
    return rc;
}

static int
bad_checkpoint(uint64_t *bad_seq, uint64_t seq, pt_error_t *err, const char *what)
{
    *bad_seq = seq;
    return pt_error_set(err, PT_ECORRUPT, NULL, "checkpoint %llu: %s", (unsigned long long)seq,
                        what);
}

/* Checks one decoded checkpoint: signature (pk not NULL) and hash against its record. */
int
jint_check_checkpoint(journal_t *j, MDB_txn *txn, const journal_checkpoint_rec_t *cp,
                      const uint8_t *pk, uint64_t *bad_seq, pt_error_t *err)
{
    uint8_t msg[PT_JCKP_MSG_LEN];
    MDB_val rv;
    size_t mlen = journal_checkpoint_message(cp, msg);
    if (pk != NULL && crypto_sign_verify_detached(cp->sig, msg, mlen, pk) != 0)
        return bad_checkpoint(bad_seq, cp->seq, err, "bad signature (forged or altered)");
    int rc = jint_get_record(j, txn, cp->seq, &rv, err);
    if (rc == PT_ENOTFOUND)
        return bad_checkpoint(bad_seq, cp->seq, err, "its record is missing (deleted?)");
    if (rc != 0)
        return rc;
    const uint8_t *h = journal_record_stored_hash(rv.mv_data, rv.mv_size);
    if (h == NULL || memcmp(h, cp->hash, PT_JOURNAL_HASH_LEN) != 0)
        return bad_checkpoint(bad_seq, cp->seq, err,
                              "hash differs from the record's (chain rewritten?)");
    return 0;
}

int
jint_decode_checkpoint(const MDB_val *k, const MDB_val *v, journal_checkpoint_rec_t *cp,
                       uint64_t *bad_seq, pt_error_t *err)
{
    uint64_t seq = k->mv_size == SEQ_KEY_LEN ? bytes_be64_get(k->mv_data) : 0;
    if (seq == 0 || journal_checkpoint_decode(v->mv_data, v->mv_size, cp, err) != 0)
        return bad_checkpoint(bad_seq, seq, err, "malformed");
    if (cp->seq != seq)
        return bad_checkpoint(bad_seq, seq, err, "stored under another sequence");
    return 0;
}

/* The walk over the checkpoints, in seq order from the first. */
typedef struct ckpt_walk {
    const uint8_t *pk;
    uint64_t prev_seq; /* last checkpoint seen, 0 = none yet */
    bool seen_v2;
    journal_verify_report_t *rep;
} ckpt_walk_t;

/* A format-2 checkpoint names its predecessor and its rank: a deleted one shows. */
static int
check_link(const ckpt_walk_t *w, const journal_checkpoint_rec_t *cp, uint64_t *bad_seq,
           pt_error_t *err)
{
    char what[200];
    if (cp->format == PT_JCKP_FORMAT_V1)
        return w->seen_v2 ? bad_checkpoint(bad_seq, cp->seq, err,
                                           "format 1 after a format-2 checkpoint (inserted?)")
                          : 0;
    if (cp->prev_seq != w->prev_seq) {
        snprintf(what, sizeof what,
                 "signed as following checkpoint %llu, but the previous one found is %llu: "
                 "checkpoint %llu is missing (deleted?)",
                 (unsigned long long)cp->prev_seq, (unsigned long long)w->prev_seq,
                 (unsigned long long)cp->prev_seq);
        return bad_checkpoint(bad_seq, cp->seq, err, what);
    }
    if (cp->number != w->rep->checkpoints + 1) {
        snprintf(what, sizeof what,
                 "signed as checkpoint number %llu, but %llu precede it (checkpoints deleted?)",
                 (unsigned long long)cp->number, (unsigned long long)w->rep->checkpoints);
        return bad_checkpoint(bad_seq, cp->seq, err, what);
    }
    return 0;
}

static int
walk_checkpoint(journal_t *j, MDB_txn *txn, ckpt_walk_t *w, const MDB_val *k, const MDB_val *v,
                uint64_t *bad_seq, pt_error_t *err)
{
    journal_checkpoint_rec_t cp;
    int rc = jint_decode_checkpoint(k, v, &cp, bad_seq, err);
    if (rc == 0)
        rc = jint_check_checkpoint(j, txn, &cp, w->pk, bad_seq, err);
    if (rc == 0)
        rc = check_link(w, &cp, bad_seq, err);
    if (rc != 0)
        return rc;
    w->seen_v2 |= cp.format == PT_JCKP_FORMAT;
    w->prev_seq = cp.seq;
    w->rep->checkpoints++;
    w->rep->old_checkpoints += cp.format == PT_JCKP_FORMAT_V1;
    w->rep->last_ckpt_seq = cp.seq;
    w->rep->last_ckpt_ms = cp.time_ms;
    return 0;
}

/* Checks every checkpoint with seq <= end, from the first one (the links need them all). */
static int
verify_checkpoints(journal_t *j, MDB_txn *txn, uint64_t end, ckpt_walk_t *w, uint64_t *bad_seq,
                   pt_error_t *err)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, j->dbi[JDB_CKPT], &cur);
    if (rc != 0)
        return lmdbx_fail(err, rc, j->dir, "opening a cursor");
    int m = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; m == 0 && rc == 0; m = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size == SEQ_KEY_LEN && bytes_be64_get(k.mv_data) > end)
            break;
        rc = walk_checkpoint(j, txn, w, &k, &v, bad_seq, err);
    }
    mdb_cursor_close(cur);
    if (rc == 0 && m != 0 && m != MDB_NOTFOUND)
        rc = lmdbx_fail(err, m, j->dir, "walking the checkpoints");
    return rc;
}

/* The first checkpoint at or after seq (after = true), or the last one at or before
 * it; 0 when none. */
static uint64_t
checkpoint_near(journal_t *j, MDB_txn *txn, uint64_t seq, bool after)
{
    MDB_cursor *cur;
    uint8_t key[SEQ_KEY_LEN];
    bytes_be64_put(key, after ? seq : seq + 1);
    MDB_val k = {SEQ_KEY_LEN, key}, v;
    uint64_t found = 0;
    if (mdb_cursor_open(txn, j->dbi[JDB_CKPT], &cur) != 0)
        return 0;
    int m = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (!after)
        m = mdb_cursor_get(cur, &k, &v, m == 0 ? MDB_PREV : MDB_LAST);
    if (m == 0 && k.mv_size == SEQ_KEY_LEN)
        found = bytes_be64_get(k.mv_data);
    mdb_cursor_close(cur);
    return found;
}

static int
check_unsigned_tail(const journal_verify_report_t *rep, uint64_t max, uint64_t *bad_seq,
                    pt_error_t *err)
{
    if (rep->unsigned_tail <= max)
        return 0;
    *bad_seq = rep->last_ckpt_seq + 1;
    return pt_error_set(err, PT_ECORRUPT, NULL,
                        "records %llu..%llu (%llu) follow the last signed checkpoint (%llu), more "
                        "than the %llu allowed: checkpoints deleted, the tail rewritten, or a "
                        "journal not written by a broker with a signing key (docs/journal.md)",
                        (unsigned long long)(rep->last_ckpt_seq + 1), (unsigned long long)rep->last,
                        (unsigned long long)rep->unsigned_tail,
                        (unsigned long long)rep->last_ckpt_seq, (unsigned long long)max);
}

static int
verify_meta(journal_t *j, MDB_txn *txn, journal_meta_t *meta, pt_error_t *err)
{
    int rc = jint_meta_read(j, txn, meta, err);
    if (rc == 0 && !meta->present)
        rc = pt_error_set(err, PT_ECORRUPT, j->dir, "meta is missing");
    if (rc == 0 && meta->format != PT_JOURNAL_FORMAT)
        rc = pt_error_set(err, PT_EVERSION, j->dir, "journal format %u", (unsigned)meta->format);
    return rc;
}

/* Records, then checkpoints, then the unsigned tail, then (whole journal) the state. */
static int
verify_in(journal_t *j, MDB_txn *txn, const journal_verify_options_t *o,
          journal_verify_report_t *rep, uint64_t *bad_seq, pt_error_t *err)
{
    journal_meta_t meta;
    int rc = verify_meta(j, txn, &meta, err);
    if (rc != 0)
        return rc;
    uint64_t first = o->first ? o->first : 1;
    uint64_t end = o->last == 0 || o->last > meta.last_seq ? meta.last_seq : o->last;
    uint64_t max = o->max_unsigned;
    if (o->pk != NULL && end < meta.last_seq && end - checkpoint_near(j, txn, end, false) > max) {
        /* A checkpoint after the range covers it once the chain is walked up to it. */
        uint64_t c = checkpoint_near(j, txn, end, true);
        end = c != 0 && c <= meta.last_seq ? c : end;
    }
    rep->first = first;
    rep->last = end;
    if (first > end)
        return 0;
    ckpt_walk_t w = {.pk = o->pk, .rep = rep};
    progress(j, "records", first, end);
    rc = jint_verify_range(j, txn, first, end, bad_seq, err);
    if (rc == 0)
        progress(j, "checkpoints", end, end);
    if (rc == 0)
        rc = verify_checkpoints(j, txn, end, &w, bad_seq, err);
    if (rc != 0)
        return rc;
    uint64_t beyond = end == meta.last_seq ? checkpoint_near(j, txn, end + 1, true) : 0;
    if (beyond != 0)
        return bad_checkpoint(bad_seq, beyond, err, "after the last record (records cut?)");
    rep->unsigned_tail = end - rep->last_ckpt_seq;
    if (o->pk != NULL)
        rc = check_unsigned_tail(rep, max, bad_seq, err);
    if (rc == 0 && o->check_state && first == 1 && end == meta.last_seq) {
        progress(j, "state", end, end);
        rc = jint_state_check(j, txn, bad_seq, err);
        rep->state_checked = rc == 0;
    }
    return rc;
}

int
journal_verify_ex(journal_t *j, const journal_verify_options_t *o, journal_verify_report_t *rep,
                  uint64_t *bad_seq, pt_error_t *err)
{
    MDB_txn *txn;
    memset(rep, 0, sizeof *rep);
    *bad_seq = 0;
    int rc = jint_read_begin(j, &txn, err);
    if (rc != 0)
        return rc;
    j->verifying = o;
    rc = verify_in(j, txn, o, rep, bad_seq, err);
    j->verifying = NULL;
    mdb_txn_abort(txn);
    return rc;
}

int
journal_verify(journal_t *j, uint64_t first, uint64_t last, const uint8_t *pk, uint64_t *bad_seq,
               pt_error_t *err)
{
    journal_verify_options_t o = {.first = first, .last = last, .pk = pk};
    journal_verify_report_t rep;
    return journal_verify_ex(j, &o, &rep, bad_seq, err);
}
