/* journal_index: the secondary indexes written with each record (dedup, message id,
 * partner/type/time; the person index is journal_person.c) and their look-ups. */
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>
#include <sodium.h>

#include "journal_internal.h"

/* Times sort as unsigned big-endian once the sign bit is flipped. */
static uint64_t
time_key(int64_t ms)
{
    return (uint64_t)ms ^ (UINT64_C(1) << 63);
}

/* The first RECEIVED of (sender, message_id) owns the dedup entry. */
static int
put_dedup(journal_txn_t *t, const journal_record_t *rec, const uint8_t *seqkey,
          const uint8_t *phash)
{
    uint8_t key[JOURNAL_KEY_MAX + 1], val[DEDUP_VAL_LEN];
    size_t p = strlen(jint_nz(rec->partner)), m = strlen(rec->message_id);
    memcpy(key, jint_nz(rec->partner), p);
    key[p] = '\0';
    memcpy(key + p + 1, rec->message_id, m);
    memcpy(val, seqkey, SEQ_KEY_LEN);
    memcpy(val + SEQ_KEY_LEN, phash, PT_JOURNAL_HASH_LEN);
    MDB_val k = {p + 1 + m, key}, v = {sizeof val, val};
    int rc = mdb_put(t->txn, t->j->dbi[JDB_DEDUP], &k, &v, MDB_NOOVERWRITE);
    return rc == MDB_KEYEXIST ? 0 : rc;
}

static int
put_partner(journal_txn_t *t, const journal_record_t *rec, int64_t time_ms, const uint8_t *seqkey)
{
    uint8_t key[JOURNAL_KEY_MAX + 1];
    size_t p = strlen(rec->partner), ty = strlen(jint_nz(rec->msg_type));
    memcpy(key, rec->partner, p + 1);
    memcpy(key + p + 1, jint_nz(rec->msg_type), ty + 1);
    bytes_be64_put(key + p + ty + 2, time_key(time_ms));
    memcpy(key + p + ty + 2 + SEQ_KEY_LEN, seqkey, SEQ_KEY_LEN);
    MDB_val k = {p + ty + 2 + 2 * SEQ_KEY_LEN, key}, v = {0, NULL};
    return mdb_put(t->txn, t->j->dbi[JDB_PARTNER], &k, &v, 0);
}

int
jint_put_indexes(journal_txn_t *t, const journal_record_t *rec, uint64_t seq, int64_t time_ms,
                 const uint8_t *phash)
{
    uint8_t seqkey[SEQ_KEY_LEN];
    bytes_be64_put(seqkey, seq);
    const char *msgid = jint_nz(rec->message_id);
    int rc = 0;
    if (rec->kind == PT_REC_RECEIVED && msgid[0] != '\0')
        rc = put_dedup(t, rec, seqkey, phash);
    if (rc == 0 && msgid[0] != '\0')
        rc = jint_put_seq_dup(t, JDB_MSGID, msgid, strlen(msgid), seqkey);
    if (rc == 0 && jint_nz(rec->partner)[0] != '\0')
        rc = put_partner(t, rec, time_ms, seqkey);
    if (rc == 0 && rec->person_nir != NULL) {
        /* Appended to by_person_new (one page for a whole batch): inserting each random
         * HMAC into by_person would dirty a page of it per record. */
        uint8_t pk[crypto_auth_hmacsha256_BYTES];
        jint_person_key(t->j, rec->person_nir, pk);
        MDB_val k = {SEQ_KEY_LEN, seqkey}, v = {sizeof pk, pk};
        rc = mdb_put(t->txn, t->j->dbi[JDB_PERSON_NEW], &k, &v, MDB_APPEND);
    }
    return rc;
}

int
journal_dedup_find(journal_txn_t *t, const char *sender, const char *message_id, uint64_t *seq,
                   uint8_t hash[PT_JOURNAL_HASH_LEN])
{
    uint8_t key[JOURNAL_KEY_MAX + 1];
    size_t p = strlen(jint_nz(sender)), m = strlen(jint_nz(message_id));
    if (p + 1 + m > JOURNAL_KEY_MAX || t->poisoned)
        return PT_ENOTFOUND;
    memcpy(key, jint_nz(sender), p + 1);
    memcpy(key + p + 1, jint_nz(message_id), m);
    MDB_val k = {p + 1 + m, key}, v;
    int rc = mdb_get(t->txn, t->j->dbi[JDB_DEDUP], &k, &v);
    if (rc != 0)
        return lmdbx_code(rc);
    if (v.mv_size != DEDUP_VAL_LEN)
        return PT_ECORRUPT;
    *seq = bytes_be64_get(v.mv_data);
    memcpy(hash, (uint8_t *)v.mv_data + SEQ_KEY_LEN, PT_JOURNAL_HASH_LEN);
    return 0;
}

/* The seq values stored under key in a DUPSORT index, ascending. */
static int
find_dups(journal_t *j, int db, const void *key, size_t klen, uint64_t **seqs, size_t *n,
          pt_error_t *err)
{
    MDB_txn *txn;
    seqlist_t l = {0};
    int rc = jint_read_begin(j, &txn, err);
    if (rc == 0) {
        rc = jint_collect_dups(j, txn, db, key, klen, &l, err);
        mdb_txn_abort(txn);
    }
    return jint_seqlist_finish(&l, rc, seqs, n);
}

int
journal_find_message(journal_t *j, const char *message_id, uint64_t **seqs, size_t *n,
                     pt_error_t *err)
{
    size_t len = strlen(jint_nz(message_id));
    if (len == 0 || len > JOURNAL_KEY_MAX)
        return jint_seqlist_finish(&(seqlist_t){0}, 0, seqs, n);
    return find_dups(j, JDB_MSGID, message_id, len, seqs, n, err);
}

int
journal_txn_find_message(journal_txn_t *t, const char *message_id, uint64_t **seqs, size_t *n,
                         pt_error_t *err)
{
    seqlist_t l = {0};
    size_t len = strlen(jint_nz(message_id));
    if (t->poisoned)
        return pt_error_set(err, t->poisoned, t->j->dir, "transaction failed earlier");
    int rc = len == 0 || len > JOURNAL_KEY_MAX
                 ? 0
                 : jint_collect_dups(t->j, t->txn, JDB_MSGID, message_id, len, &l, err);
    return jint_seqlist_finish(&l, rc, seqs, n);
}

int
journal_txn_visit_message(journal_txn_t *t, const char *message_id, journal_visit_fn fn, void *arg,
                          pt_error_t *err)
{
    size_t len = strlen(jint_nz(message_id));
    if (t->poisoned)
        return pt_error_set(err, t->poisoned, t->j->dir, "transaction failed earlier");
    if (len == 0 || len > JOURNAL_KEY_MAX)
        return 0;
    MDB_cursor *cur = NULL;
    MDB_val k = {len, (void *)message_id}, v;
    int rc = 0, m = mdb_cursor_open(t->txn, t->j->dbi[JDB_MSGID], &cur);
    if (m == 0)
        m = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
    for (; m == 0 && rc == 0; m = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP)) {
        journal_view_t view;
        if (v.mv_size != SEQ_KEY_LEN)
            rc = pt_error_set(err, PT_ECORRUPT, t->j->dir, "by_msgid: bad entry");
        else if ((rc = jint_view_in_place(t->j, t->txn, bytes_be64_get(v.mv_data), &view, err)) ==
                 0)
            rc = fn(&view, arg);
    }
    if (rc == 0 && m != MDB_NOTFOUND)
        rc = lmdbx_fail(err, m, t->j->dir, "by_msgid");
    mdb_cursor_close(cur);
    return rc;
}

/* by_partner is walked as a skip scan: within partner "\0", each msg_type is a run
 * sorted by time; jump to from_ms in each run and to the next run past to_ms. */
typedef struct partner_scan {
    const char *partner;
    size_t plen;
    const char *type; /* NULL = every type */
    int64_t from_ms, to_ms;
    uint8_t key[JOURNAL_KEY_MAX + 1];
} partner_scan_t;

/* Seek key: partner "\0" type "\0" be64(time) — or, with next_type, the first key
 * after every key of that type (partner "\0" type "\1"). */
static size_t
partner_seek(partner_scan_t *s, const char *type, size_t tlen, int64_t time_ms, bool next_type)
{
    memcpy(s->key, s->partner, s->plen + 1);
    memcpy(s->key + s->plen + 1, type, tlen);
    s->key[s->plen + 1 + tlen] = next_type ? '\1' : '\0';
    if (next_type)
        return s->plen + tlen + 2;
    bytes_be64_put(s->key + s->plen + tlen + 2, time_key(time_ms));
    return s->plen + tlen + 2 + SEQ_KEY_LEN;
}

/* One step of the walk on entry k: 1 = stop, 0 = collected or skipped, <0 error.
 * *seek_len > 0 asks the caller to reposition on s->key. */
static int
partner_step(partner_scan_t *s, const MDB_val *k, seqlist_t *l, size_t *seek_len)
{
    const uint8_t *kp = k->mv_data;
    *seek_len = 0;
    if (k->mv_size < s->plen + 1 || memcmp(kp, s->partner, s->plen + 1) != 0)
        return 1;
    const uint8_t *type = kp + s->plen + 1;
    size_t rest = k->mv_size - s->plen - 1;
    const uint8_t *nul = memchr(type, '\0', rest);
    if (nul == NULL || rest - (size_t)(nul - type) != 1 + 2 * SEQ_KEY_LEN)
        return PT_ECORRUPT;
    size_t tlen = (size_t)(nul - type);
    if (s->type != NULL && (tlen != strlen(s->type) || memcmp(type, s->type, tlen) != 0))
        return 1;
    int64_t t = (int64_t)(bytes_be64_get(nul + 1) ^ (UINT64_C(1) << 63));
    if (t < s->from_ms)
        *seek_len = partner_seek(s, (const char *)type, tlen, s->from_ms, false);
    else if (t >= s->to_ms)
        *seek_len = s->type ? 0 : partner_seek(s, (const char *)type, tlen, 0, true);
    else
        return jint_seqlist_push(l, bytes_be64_get(nul + 1 + SEQ_KEY_LEN));
    return s->type != NULL && *seek_len == 0 ? 1 : 0;
}

static int
partner_walk(MDB_cursor *cur, partner_scan_t *s, seqlist_t *l)
{
    const char *type = s->type ? s->type : "";
    size_t seek = partner_seek(s, type, strlen(type), s->from_ms, false);
    if (s->type == NULL)
        seek = s->plen + 1; /* just partner "\0": the start of its first type */
    MDB_val k = {seek, s->key}, v;
    int m = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (m == 0) {
        int rc = partner_step(s, &k, l, &seek);
        if (rc != 0)
            return rc > 0 ? 0 : rc;
        k = (MDB_val){seek, s->key};
        m = mdb_cursor_get(cur, &k, &v, seek ? MDB_SET_RANGE : MDB_NEXT);
    }
    return m == MDB_NOTFOUND ? 0 : lmdbx_code(m);
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int
journal_find_partner(journal_t *j, const char *partner, const char *msg_type, int64_t from_ms,
                     int64_t to_ms, uint64_t **seqs, size_t *n, pt_error_t *err)
{
    seqlist_t l = {0};
    partner_scan_t s = {
        .partner = jint_nz(partner), .type = msg_type, .from_ms = from_ms, .to_ms = to_ms};
    s.plen = strlen(s.partner);
    if (s.plen + strlen(jint_nz(msg_type)) + 2 + 2 * SEQ_KEY_LEN > JOURNAL_KEY_MAX ||
        from_ms >= to_ms)
        return jint_seqlist_finish(&l, 0, seqs, n);
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = jint_read_begin(j, &txn, err);
    if (rc != 0)
        return jint_seqlist_finish(&l, rc, seqs, n);
    rc = lmdbx_code(mdb_cursor_open(txn, j->dbi[JDB_PARTNER], &cur));
    if (rc == 0) {
        rc = partner_walk(cur, &s, &l);
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    if (rc != 0)
        pt_error_set(err, rc, j->dir, "by_partner: %s", pt_strerror(rc));
    else if (l.n > 1)
        qsort(l.v, l.n, sizeof *l.v, cmp_u64);
    return jint_seqlist_finish(&l, rc, seqs, n);
}
