/* journal_read: reading records by sequence and scanning them, in a read transaction
 * (committed state) or inside the write transaction (the batch's own appends too). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>
#include <sodium.h>

#include "journal_internal.h"
#include "journal_record.h"

int
jint_get_record(journal_t *j, MDB_txn *txn, uint64_t seq, MDB_val *v, pt_error_t *err)
{
    uint8_t key[SEQ_KEY_LEN];
    bytes_be64_put(key, seq);
    MDB_val k = {SEQ_KEY_LEN, key};
    int rc = mdb_get(txn, j->dbi[JDB_RECORDS], &k, v);
    if (rc == MDB_NOTFOUND)
        return pt_error_set(err, PT_ENOTFOUND, NULL, "record %llu: not found",
                            (unsigned long long)seq);
    return rc ? lmdbx_fail(err, rc, j->dir, "reading a record") : 0;
}

/* Decodes a record read under key seq and checks it carries that seq. */
int
jint_decode_at(const MDB_val *v, uint64_t seq, journal_view_t *view, pt_error_t *err)
{
    int rc = journal_record_decode(v->mv_data, v->mv_size, seq, view, err);
    if (rc == 0 && view->seq != seq)
        rc = pt_error_set(err, PT_ECORRUPT, NULL, "record %llu: holds seq %llu (reordered?)",
                          (unsigned long long)seq, (unsigned long long)view->seq);
    return rc;
}

/* Copies the record at seq out of txn into *buf and decodes it there. */
static int
get_copy(journal_t *j, MDB_txn *txn, uint64_t seq, journal_view_t *view, uint8_t **buf, size_t *cap,
         pt_error_t *err)
{
    MDB_val v;
    int rc = jint_get_record(j, txn, seq, &v, err);
    if (rc == 0 && (*buf == NULL || *cap < v.mv_size)) {
        uint8_t *nb = realloc(*buf, v.mv_size);
        if (nb == NULL)
            return pt_error_set(err, -ENOMEM, NULL, "record %llu: out of memory",
                                (unsigned long long)seq);
        *buf = nb;
        *cap = v.mv_size;
    }
    if (rc != 0)
        return rc;
    memcpy(*buf, v.mv_data, v.mv_size);
    v.mv_data = *buf;
    return jint_decode_at(&v, seq, view, err);
}

int
journal_get(journal_t *j, uint64_t seq, journal_view_t *view, uint8_t **buf, size_t *cap,
            pt_error_t *err)
{
    MDB_txn *txn;
    int rc = jint_read_begin(j, &txn, err);
    if (rc != 0)
        return rc;
    rc = get_copy(j, txn, seq, view, buf, cap, err);
    mdb_txn_abort(txn);
    return rc;
}

int
journal_txn_get(journal_txn_t *t, uint64_t seq, journal_view_t *view, uint8_t **buf, size_t *cap,
                pt_error_t *err)
{
    if (t->poisoned)
        return pt_error_set(err, t->poisoned, t->j->dir, "transaction failed earlier");
    return get_copy(t->j, t->txn, seq, view, buf, cap, err);
}

static int
scan_cursor(journal_t *j, MDB_cursor *cur, uint64_t first, uint64_t last, journal_visit_fn fn,
            void *arg, pt_error_t *err)
{
    uint8_t key[SEQ_KEY_LEN];
    bytes_be64_put(key, first);
    MDB_val k = {SEQ_KEY_LEN, key}, v;
    journal_view_t view;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != SEQ_KEY_LEN)
            return pt_error_set(err, PT_ECORRUPT, j->dir, "records: key of %zu bytes", k.mv_size);
        uint64_t seq = bytes_be64_get(k.mv_data);
        if (last != 0 && seq > last)
            return 0;
        int r = jint_decode_at(&v, seq, &view, err);
        if (r == 0)
            r = fn(&view, arg);
        if (r != 0)
            return r;
    }
    return rc == MDB_NOTFOUND ? 0 : lmdbx_fail(err, rc, j->dir, "scanning");
}

int
journal_scan(journal_t *j, uint64_t first, uint64_t last, journal_visit_fn fn, void *arg,
             pt_error_t *err)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = jint_read_begin(j, &txn, err);
    if (rc != 0)
        return rc;
    rc = mdb_cursor_open(txn, j->dbi[JDB_RECORDS], &cur);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return lmdbx_fail(err, rc, j->dir, "opening a cursor");
    }
    rc = scan_cursor(j, cur, first, last, fn, arg, err);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc;
}

/* Decodes the record under seq in place, in txn: the view borrows from the map. */
int
jint_view_in_place(journal_t *j, MDB_txn *txn, uint64_t seq, journal_view_t *view, pt_error_t *err)
{
    MDB_val v;
    int rc = jint_get_record(j, txn, seq, &v, err);
    return rc != 0 ? rc : jint_decode_at(&v, seq, view, err);
}

int
journal_txn_view(journal_txn_t *t, uint64_t seq, journal_view_t *view, pt_error_t *err)
{
    if (t->poisoned)
        return pt_error_set(err, t->poisoned, t->j->dir, "transaction failed earlier");
    return jint_view_in_place(t->j, t->txn, seq, view, err);
}
