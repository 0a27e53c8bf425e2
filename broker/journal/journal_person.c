/* journal_person: the person index (by_person and by_person_new, keyed by the HMAC of
 * the NIR): look-up, the count waiting for a merge, and the merge. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>
#include <sodium.h>

#include "journal_internal.h"

/* Adds to l the seqs of by_person_new entries whose HMAC is pk, ascending (a scan: the
 * part not yet merged is kept small by the broker, see journal_person_merge). */
static int
collect_person_new(journal_t *j, MDB_txn *txn, const uint8_t *pk, seqlist_t *l, pt_error_t *err)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = 0, m = mdb_cursor_open(txn, j->dbi[JDB_PERSON_NEW], &cur);
    for (m = m ? m : mdb_cursor_get(cur, &k, &v, MDB_FIRST); m == 0 && rc == 0;
         m = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != SEQ_KEY_LEN || v.mv_size != crypto_auth_hmacsha256_BYTES)
            rc = pt_error_set(err, PT_ECORRUPT, j->dir, "by_person_new: bad entry");
        else if (memcmp(v.mv_data, pk, v.mv_size) == 0)
            rc = jint_seqlist_push(l, bytes_be64_get(k.mv_data));
    }
    if (rc == 0 && m != MDB_NOTFOUND)
        rc = lmdbx_fail(err, m, j->dir, "by_person_new");
    mdb_cursor_close(cur);
    return rc;
}

int
journal_find_person(journal_t *j, const char *nir, uint64_t **seqs, size_t *n, pt_error_t *err)
{
    if (!j->have_hmac) {
        *seqs = NULL;
        *n = 0;
        return pt_error_set(err, PT_ECONFIG, "journal.hmac_key", "missing: no person index");
    }
    uint8_t pk[crypto_auth_hmacsha256_BYTES];
    jint_person_key(j, jint_nz(nir), pk);
    /* One snapshot of both parts. A seq is in one part only (a merge moves entries in
     * one transaction) and merges take the oldest entries first, so every seq of
     * by_person is below every seq of by_person_new: the two lists concatenate sorted. */
    MDB_txn *txn;
    seqlist_t l = {0};
    int rc = jint_read_begin(j, &txn, err);
    if (rc == 0) {
        rc = jint_collect_dups(j, txn, JDB_PERSON, pk, sizeof pk, &l, err);
        if (rc == 0 && j->have_person_new)
            rc = collect_person_new(j, txn, pk, &l, err);
        mdb_txn_abort(txn);
    }
    /* by_person entries of records moved out by a segment expiry stay: left out here. */
    size_t keep = 0;
    for (size_t i = 0; i < l.n; i++)
        if (l.v[i] >= journal_first_seq(j))
            l.v[keep++] = l.v[i];
    l.n = keep;
    return jint_seqlist_finish(&l, rc, seqs, n);
}

size_t
journal_person_unmerged(journal_t *j)
{
    MDB_txn *txn;
    MDB_stat st;
    pt_error_t err;
    if (!j->have_person_new || jint_read_begin(j, &txn, &err) != 0)
        return 0;
    int rc = mdb_stat(txn, j->dbi[JDB_PERSON_NEW], &st);
    mdb_txn_abort(txn);
    return rc == 0 ? st.ms_entries : 0;
}

typedef struct person_entry {
    uint8_t pk[crypto_auth_hmacsha256_BYTES];
    uint8_t seqkey[SEQ_KEY_LEN];
} person_entry_t;

static int
cmp_person_entry(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(person_entry_t)); /* HMAC, then big-endian seq */
}

int
journal_person_merge(journal_txn_t *t, size_t max, size_t *moved, pt_error_t *err)
{
    *moved = 0;
    if (t->poisoned)
        return pt_error_set(err, t->poisoned, t->j->dir, "transaction failed earlier: abort it");
    person_entry_t *e = max ? calloc(max, sizeof *e) : NULL;
    if (max && e == NULL)
        return pt_error_set(err, -ENOMEM, t->j->dir, "person index merge: no memory");
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    size_t n = 0;
    int rc = mdb_cursor_open(t->txn, t->j->dbi[JDB_PERSON_NEW], &cur);
    for (rc = rc ? rc : mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && n < max;
         rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) {
        if (k.mv_size != SEQ_KEY_LEN || v.mv_size != crypto_auth_hmacsha256_BYTES) {
            mdb_cursor_close(cur);
            free(e);
            return pt_error_set(err, PT_ECORRUPT, t->j->dir, "by_person_new: bad entry");
        }
        memcpy(e[n].pk, v.mv_data, sizeof e[n].pk);
        memcpy(e[n].seqkey, k.mv_data, SEQ_KEY_LEN);
        n++;
        rc = mdb_cursor_del(cur, 0);
        if (rc != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND || (rc == 0 && n == max))
        rc = 0;
    /* Sorted, the chunk's inserts walk by_person once from left to right. */
    if (n > 1)
        qsort(e, n, sizeof *e, cmp_person_entry);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = jint_put_seq_dup(t, JDB_PERSON, e[i].pk, sizeof e[i].pk, e[i].seqkey);
    free(e);
    if (rc != 0)
        return jint_poison(t, rc, err);
    *moved = n;
    return 0;
}
