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

/* Format 2 chains the payload's hash, not its bytes: a stored payload must match it. */
static int
check_payload(const journal_view_t *view, uint64_t *bad_seq, pt_error_t *err)
{
    uint8_t h[PT_JOURNAL_HASH_LEN];
    if (view->format < 2 || view->payload_state != PT_PAYLOAD_STORED)
        return 0;
    crypto_generichash(h, sizeof h, view->payload, view->payload_len, NULL, 0);
    if (memcmp(h, view->payload_hash, PT_JOURNAL_HASH_LEN) != 0)
        return bad_record(bad_seq, view->seq, err, "payload differs from its hash (edited?)");
    return 0;
}

/* Decodes record seq, checks its format against meta's upgrade point, its chain hash
 * against prev and (format 2) its payload against its hash; then prev = its hash. */
static int
verify_one(const journal_meta_t *m, const MDB_val *v, uint64_t seq,
           uint8_t prev[PT_JOURNAL_HASH_LEN], uint64_t *bad_seq, pt_error_t *err)
{
    journal_view_t view;
    uint8_t h[PT_JOURNAL_HASH_LEN];
    char what[120];
    if (jint_decode_at(v, seq, &view, err) != 0) {
        *bad_seq = seq;
        return PT_ECORRUPT;
    }
    if (view.format != jint_format_of(m, seq)) {
        snprintf(what, sizeof what, "format %u, but meta says format %u from record %llu",
                 (unsigned)view.format, jint_format_of(m, seq),
                 (unsigned long long)m->format2_from);
        return bad_record(bad_seq, seq, err, what);
    }
    journal_record_chain(prev, v->mv_data, v->mv_size, h);
    if (memcmp(h, view.hash, PT_JOURNAL_HASH_LEN) != 0)
        return bad_record(bad_seq, seq, err, "chain hash mismatch (edited or reordered)");
    int rc = check_payload(&view, bad_seq, err);
    if (rc == 0)
        memcpy(prev, view.hash, PT_JOURNAL_HASH_LEN);
    return rc;
}

/* The stored hash of record seq: genesis (zeros) for 0, the anchor's for the last
 * record moved out, else the record's own (unchecked). */
static int
hash_of(journal_t *j, MDB_txn *txn, const journal_meta_t *m, uint64_t seq,
        uint8_t out[PT_JOURNAL_HASH_LEN], uint64_t *bad_seq, pt_error_t *err)
{
    MDB_val v;
    memset(out, 0, PT_JOURNAL_HASH_LEN);
    if (seq == 0)
        return 0;
    if (m->has_anchor && seq == m->anchor.seq) {
        memcpy(out, m->anchor.hash, PT_JOURNAL_HASH_LEN);
        return 0;
    }
    int rc = jint_get_record(j, txn, seq, &v, err);
    if (rc == PT_ENOTFOUND)
        return bad_record(bad_seq, seq, err, "missing (deleted?)");
    if (rc != 0)
        return rc;
    const uint8_t *h = journal_record_stored_hash(v.mv_data, v.mv_size);
    if (h == NULL)
        return bad_record(bad_seq, seq, err, "too short");
    memcpy(out, h, PT_JOURNAL_HASH_LEN);
    return 0;
}

/* The hash the walk from `first` starts from: genesis (zeros) for record 1, the
 * anchor's for the first record after it, else the stored hash of record first-1,
 * itself checked against first-2 (or the anchor) when that exists. */
static int
chain_start(journal_t *j, MDB_txn *txn, const journal_meta_t *m, uint64_t first,
            uint8_t prev[PT_JOURNAL_HASH_LEN], uint64_t *bad_seq, pt_error_t *err)
{
    MDB_val v;
    if (first <= jint_first_seq(m))
        return hash_of(j, txn, m, first - 1, prev, bad_seq, err);
    int rc = hash_of(j, txn, m, first - 2, prev, bad_seq, err);
    if (rc == 0)
        rc = jint_get_record(j, txn, first - 1, &v, err);
    if (rc == PT_ENOTFOUND)
        return bad_record(bad_seq, first - 1, err, "missing (deleted?)");
    return rc ? rc : verify_one(m, &v, first - 1, prev, bad_seq, err);
}

static void
progress(const journal_t *j, const char *phase, uint64_t seq, uint64_t end)
{
    if (j->verifying && j->verifying->progress)
        j->verifying->progress(j->verifying->progress_arg, phase, seq, end);
}

/* Walks records first..end checking continuity and the chain, then the tail. */
static int
verify_walk(journal_t *j, MDB_cursor *cur, uint64_t first, uint64_t end, const journal_meta_t *meta,
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
        if (seq > end && seq > meta->last_seq)
            return bad_record(bad_seq, seq, err, "after the last sequence in meta (added?)");
        if (seq > end)
            break;
        if (seq != expect)
            return bad_record(bad_seq, expect, err, "missing (deleted?)");
        int rc = verify_one(meta, &v, seq, prev, bad_seq, err);
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
    if (rc == 0 && first < jint_first_seq(&meta))
        first = jint_first_seq(&meta); /* records before the anchor were moved out */
    if (rc == 0)
        rc = chain_start(j, txn, &meta, first, prev, bad_seq, err);
    if (rc != 0)
        return rc;
    rc = mdb_cursor_open(txn, j->dbi[JDB_RECORDS], &cur);
    if (rc != 0)
        return lmdbx_fail(err, rc, j->dir, "opening a cursor");
    rc = verify_walk(j, cur, first, end, &meta, prev, bad_seq, err);
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
    if (j->have_anchor && cp->seq == j->anchor.seq) /* its record was moved out */
        return memcmp(cp->hash, j->anchor.hash, PT_JOURNAL_HASH_LEN) == 0
                   ? 0
                   : bad_checkpoint(bad_seq, cp->seq, err, "differs from the signed anchor");
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

/* Whether the options give a key to check signatures with. */
static bool
keyed(const journal_verify_options_t *o)
{
    return o->pk != NULL || o->n_keys > 0;
}

/* The index of the first key of o that verifies sig over msg (0 = pk when given), or -1. */
static long
which_key(const journal_verify_options_t *o, const uint8_t *sig, const uint8_t *msg, size_t mlen)
{
    size_t base = o->pk != NULL;
    if (o->pk != NULL && crypto_sign_verify_detached(sig, msg, mlen, o->pk) == 0)
        return 0;
    for (size_t i = 0; i < o->n_keys; i++)
        if (crypto_sign_verify_detached(sig, msg, mlen, o->keys[i]) == 0)
            return (long)(base + i);
    return -1;
}

/* The walk over the checkpoints, in seq order from the first. */
typedef struct ckpt_walk {
    const journal_verify_options_t *o;
    uint64_t prev_seq; /* last checkpoint seen, 0 = none yet */
    uint64_t base;     /* checkpoints moved out before the anchor's (its number - 1) */
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
    if (cp->number != w->base + w->rep->checkpoints + 1) {
        snprintf(what, sizeof what,
                 "signed as checkpoint number %llu, but %llu precede it (checkpoints deleted?)",
                 (unsigned long long)cp->number,
                 (unsigned long long)(w->base + w->rep->checkpoints));
        return bad_checkpoint(bad_seq, cp->seq, err, what);
    }
    return 0;
}

static int
walk_checkpoint(journal_t *j, MDB_txn *txn, ckpt_walk_t *w, const MDB_val *k, const MDB_val *v,
                uint64_t *bad_seq, pt_error_t *err)
{
    journal_checkpoint_rec_t cp;
    uint8_t msg[PT_JCKP_MSG_LEN];
    long key = -1;
    int rc = jint_decode_checkpoint(k, v, &cp, bad_seq, err);
    if (rc == 0 && keyed(w->o)) {
        key = which_key(w->o, cp.sig, msg, journal_checkpoint_message(&cp, msg));
        if (key < 0)
            rc = bad_checkpoint(bad_seq, cp.seq, err,
                                w->o->n_keys > 0 ? "bad signature with every key given (forged, "
                                                   "altered, or signed by another key)"
                                                 : "bad signature (forged or altered)");
    }
    if (rc == 0)
        rc = jint_check_checkpoint(j, txn, &cp, NULL, bad_seq, err);
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
    if (key >= 0 && w->o->signed_by != NULL)
        w->o->signed_by(w->o->signed_by_arg, cp.seq, cp.time_ms, (size_t)key);
    return 0;
}

/* Checks every checkpoint with seq <= end, from the first one (the links need them
 * all), or from the anchor's when older records were moved out. */
static int
verify_checkpoints(journal_t *j, MDB_txn *txn, const journal_meta_t *meta, uint64_t end,
                   ckpt_walk_t *w, uint64_t *bad_seq, pt_error_t *err)
{
    MDB_cursor *cur;
    uint8_t key[SEQ_KEY_LEN];
    bytes_be64_put(key, meta->has_anchor ? meta->anchor.seq : 0);
    MDB_val k = {SEQ_KEY_LEN, key}, v;
    if (meta->has_anchor) { /* the anchor's link to the checkpoints moved out is signed */
        w->prev_seq = meta->anchor.prev_seq;
        w->base = meta->anchor.number - 1;
        w->seen_v2 = true;
    }
    int rc = mdb_cursor_open(txn, j->dbi[JDB_CKPT], &cur);
    if (rc != 0)
        return lmdbx_fail(err, rc, j->dir, "opening a cursor");
    int m = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
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
    if (rc == 0 && meta->format != PT_JOURNAL_FORMAT && meta->format != PT_JREC_FORMAT_V1)
        rc = pt_error_set(err, PT_EVERSION, j->dir, "journal format %u", (unsigned)meta->format);
    return rc;
}

/* Nothing may precede the anchor: no record at or before it, no checkpoint before it. */
static int
before_anchor(journal_t *j, MDB_txn *txn, const journal_meta_t *m, uint64_t *bad_seq,
              pt_error_t *err)
{
    const int dbs[] = {JDB_RECORDS, JDB_CKPT};
    for (size_t i = 0; i < 2; i++) {
        MDB_cursor *cur;
        MDB_val k, v;
        uint64_t first = 0;
        if (mdb_cursor_open(txn, j->dbi[dbs[i]], &cur) != 0)
            continue;
        if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0 && k.mv_size == SEQ_KEY_LEN)
            first = bytes_be64_get(k.mv_data);
        mdb_cursor_close(cur);
        if (first != 0 && (first < m->anchor.seq || (i == 0 && first == m->anchor.seq))) {
            *bad_seq = first;
            return pt_error_set(err, PT_ECORRUPT, NULL,
                                "%s %llu: before the signed anchor at %llu (restored or added?)",
                                i == 0 ? "record" : "checkpoint", (unsigned long long)first,
                                (unsigned long long)m->anchor.seq);
        }
    }
    return 0;
}

/* The signed anchor of a journal whose oldest records were moved out: its signature
 * (with pk), and the checkpoint it names, kept, must be the one it signed. */
static int
verify_anchor(journal_t *j, MDB_txn *txn, const journal_meta_t *m,
              const journal_verify_options_t *o, journal_verify_report_t *rep, uint64_t *bad_seq,
              pt_error_t *err)
{
    uint8_t msg[PT_JCKP_MSG_LEN], key[SEQ_KEY_LEN];
    journal_checkpoint_rec_t cp;
    if (!m->has_anchor)
        return 0;
    rep->anchor_seq = m->anchor.seq;
    *bad_seq = m->anchor.seq;
    size_t mlen = journal_anchor_message(&m->anchor, msg);
    if (keyed(o) && which_key(o, m->anchor.sig, msg, mlen) < 0)
        return pt_error_set(err, PT_ECORRUPT, NULL,
                            "anchor at %llu: bad signature (forged, altered or moved)",
                            (unsigned long long)m->anchor.seq);
    bytes_be64_put(key, m->anchor.seq);
    MDB_val k = {SEQ_KEY_LEN, key}, v;
    if (mdb_get(txn, j->dbi[JDB_CKPT], &k, &v) != 0 ||
        jint_decode_checkpoint(&k, &v, &cp, bad_seq, err) != 0)
        return pt_error_set(err, PT_ECORRUPT, NULL, "anchor at %llu: its checkpoint is missing",
                            (unsigned long long)m->anchor.seq);
    if (memcmp(cp.hash, m->anchor.hash, PT_JOURNAL_HASH_LEN) != 0 ||
        cp.number != m->anchor.number || cp.prev_seq != m->anchor.prev_seq)
        return pt_error_set(err, PT_ECORRUPT, NULL,
                            "anchor at %llu: its checkpoint differs from the signed anchor",
                            (unsigned long long)m->anchor.seq);
    *bad_seq = 0;
    return before_anchor(j, txn, m, bad_seq, err);
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
    rc = verify_anchor(j, txn, &meta, o, rep, bad_seq, err);
    if (rc != 0)
        return rc;
    uint64_t first = o->first > jint_first_seq(&meta) ? o->first : jint_first_seq(&meta);
    uint64_t end = o->last == 0 || o->last > meta.last_seq ? meta.last_seq : o->last;
    uint64_t max = o->max_unsigned;
    if (keyed(o) && end < meta.last_seq && end - checkpoint_near(j, txn, end, false) > max) {
        /* A checkpoint after the range covers it once the chain is walked up to it. */
        uint64_t c = checkpoint_near(j, txn, end, true);
        end = c != 0 && c <= meta.last_seq ? c : end;
    }
    rep->first = first;
    rep->last = end;
    if (first > end)
        return 0;
    ckpt_walk_t w = {.o = o, .rep = rep};
    progress(j, "records", first, end);
    rc = jint_verify_range(j, txn, first, end, bad_seq, err);
    if (rc == 0)
        progress(j, "checkpoints", end, end);
    if (rc == 0)
        rc = verify_checkpoints(j, txn, &meta, end, &w, bad_seq, err);
    if (rc != 0)
        return rc;
    uint64_t beyond = end == meta.last_seq ? checkpoint_near(j, txn, end + 1, true) : 0;
    if (beyond != 0)
        return bad_checkpoint(bad_seq, beyond, err, "after the last record (records cut?)");
    rep->unsigned_tail = end - rep->last_ckpt_seq;
    if (keyed(o))
        rc = check_unsigned_tail(rep, max, bad_seq, err);
    if (rc == 0 && o->check_state && first == jint_first_seq(&meta) && end == meta.last_seq) {
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
