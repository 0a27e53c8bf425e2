/* journal_write: map growth and the group-commit write path (begin, append, commit,
 * abort) and the stand-alone checkpoint commit. The write transaction is the one of
 * journal.h's "Transactions". */
#include <errno.h>
#include <string.h>

#include <lmdb.h>
#include <sodium.h>

#include "journal_internal.h"
#include "journal_record.h"
#include "log.h"

/* ---- map growth ---- */

/* Grows the map (doubling, capped at the maximum) when forced or when more than 3/4
 * of it is used. Only with no transaction active in this process. */
static int
journal_grow(journal_t *j, bool force, pt_error_t *err)
{
    MDB_envinfo info;
    mdb_env_info(j->env, &info);
    size_t used = (info.me_last_pgno + 1) * j->psize;
    if (!force && used <= info.me_mapsize / 4 * 3)
        return 0;
    if (info.me_mapsize >= j->map_max)
        return 0;
    size_t next = info.me_mapsize > j->map_max / 2 ? j->map_max : info.me_mapsize * 2;
    int rc = mdb_env_set_mapsize(j->env, next);
    if (rc != 0)
        return lmdbx_fail(err, rc, j->dir, "growing the map");
    j->grow_pending = false;
    pt_log_info("journal.grow", "journal map grown from %zu to %zu bytes (max %zu)",
                info.me_mapsize, next, j->map_max);
    return 0;
}

void
journal_usage(const journal_t *j, size_t *used, size_t *map_size, size_t *map_max)
{
    MDB_envinfo info;
    mdb_env_info(j->env, &info);
    *used = (info.me_last_pgno + 1) * j->psize;
    *map_size = info.me_mapsize;
    *map_max = j->map_max;
}

/* ---- write path ---- */

int
journal_begin(journal_t *j, journal_txn_t **txn, pt_error_t *err)
{
    *txn = NULL;
    if (j->read_only)
        return pt_error_set(err, PT_EDENIED, j->dir, "the journal is open read-only");
    if (j->in_txn)
        return pt_error_set(err, -EBUSY, j->dir, "a write transaction is already open");
    int rc = journal_grow(j, j->grow_pending, err);
    if (rc != 0)
        return rc;
    journal_txn_t *t = &j->wtxn;
    rc = mdb_txn_begin(j->env, NULL, 0, &t->txn);
    if (rc == MDB_MAP_RESIZED && mdb_env_set_mapsize(j->env, 0) == 0)
        rc = mdb_txn_begin(j->env, NULL, 0, &t->txn);
    if (rc != 0)
        return lmdbx_fail(err, rc, j->dir, "beginning a write transaction");
    t->j = j;
    /* Both states: the batch starts from the committed head. */
    t->last_seq = j->last_seq;
    memcpy(t->head, j->head, PT_JOURNAL_HASH_LEN);
    t->poisoned = 0;
    t->signed_pending = false;
    t->anchor_pending = false;
    j->in_txn = true;
    *txn = t;
    return 0;
}

/* Index keys must fit LMDB's key size: checked before anything is written, so a
 * refused record leaves the batch usable. */
static int
check_keys(const journal_t *j, const journal_record_t *rec, pt_error_t *err)
{
    size_t partner = strlen(jint_nz(rec->partner)), type = strlen(jint_nz(rec->msg_type));
    size_t msgid = strlen(jint_nz(rec->message_id));
    if (msgid > JOURNAL_KEY_MAX || partner + 1 + msgid > JOURNAL_KEY_MAX)
        return pt_error_set(err, PT_ETOOLARGE, "message_id", "too long for the index");
    if (partner + type + 2 + 2 * SEQ_KEY_LEN > JOURNAL_KEY_MAX)
        return pt_error_set(err, PT_ETOOLARGE, "partner", "partner and type too long");
    if (rec->person_nir != NULL && !j->have_hmac)
        return pt_error_set(err, PT_ECONFIG, "journal.hmac_key", "missing: cannot index people");
    return 0;
}

int
journal_append(journal_txn_t *t, const journal_record_t *rec, uint64_t *seq, pt_error_t *err)
{
    if (t->poisoned)
        return pt_error_set(err, t->poisoned, t->j->dir, "transaction failed earlier: abort it");
    size_t len;
    unsigned format = t->j->rec_format;
    int rc = journal_record_size(rec, format, &len, err);
    if (rc == 0)
        rc = check_keys(t->j, rec, err);
    if (rc != 0)
        return rc;
    int64_t time_ms = rec->time_ms ? rec->time_ms : jint_now_ms();
    uint64_t s = t->last_seq + 1;
    uint8_t key[SEQ_KEY_LEN], phash[PT_JOURNAL_HASH_LEN];
    bytes_be64_put(key, s);
    MDB_val k = {SEQ_KEY_LEN, key}, v = {len, NULL};
    rc = mdb_put(t->txn, t->j->dbi[JDB_RECORDS], &k, &v, MDB_APPEND | MDB_RESERVE);
    if (rc != 0)
        return jint_poison(t, rc, err);
    /* v points into the dirty page until the next put: encode and copy out now. */
    journal_record_encode(rec, format, s, time_ms, t->head, v.mv_data, len);
    memcpy(t->head, journal_record_stored_hash(v.mv_data, len), PT_JOURNAL_HASH_LEN);
    memcpy(phash, (uint8_t *)v.mv_data + len - 2 * PT_JOURNAL_HASH_LEN, PT_JOURNAL_HASH_LEN);
    rc = jint_put_indexes(t, rec, s, time_ms, phash);
    if (rc == 0 && rec->kind == PT_REC_RECEIVED)
        rc = jint_queue_enqueue(t, rec->recipients, s, time_ms);
    if (rc != 0)
        return jint_poison(t, rc, err);
    t->last_seq = s;
    *seq = s;
    return 0;
}

static void
txn_end(journal_txn_t *t)
{
    t->j->in_txn = false;
    t->txn = NULL;
}

int
journal_commit(journal_txn_t **tp, pt_error_t *err)
{
    journal_txn_t *t = *tp;
    journal_t *j = t->j;
    *tp = NULL;
    if (t->poisoned) {
        int code = t->poisoned;
        journal_abort(&t);
        return pt_error_set(err, code, j->dir, "commit of a failed batch: nothing kept");
    }
    int rc = 0;
    if (jint_must_sign(t))
        rc = jint_put_checkpoint(t);
    /* Both states: meta is rewritten when the batch moved the committed head. */
    if (rc == 0 && t->last_seq != j->last_seq)
        rc = jint_meta_write_head(j, t->txn, t->last_seq, t->head);
    if (rc != 0) {
        mdb_txn_abort(t->txn);
    } else {
        rc = mdb_txn_commit(t->txn);
    }
    txn_end(t);
    if (rc != 0) {
        int code = lmdbx_code(rc);
        if (code == PT_EJOURNALFULL)
            j->grow_pending = true;
        journal_grow(j, j->grow_pending, NULL);
        return pt_error_set(err, code, j->dir, "commit: %s: nothing of the batch kept",
                            mdb_strerror(rc));
    }
    j->last_seq = t->last_seq;
    memcpy(j->head, t->head, PT_JOURNAL_HASH_LEN);
    jint_signed_head_commit(t);
    if (t->anchor_pending) {
        j->have_anchor = true;
        j->anchor = t->anchor;
    }
    return 0;
}

void
journal_abort(journal_txn_t **tp)
{
    if (tp == NULL || *tp == NULL)
        return;
    journal_txn_t *t = *tp;
    *tp = NULL;
    mdb_txn_abort(t->txn);
    txn_end(t);
    if (t->j->grow_pending)
        journal_grow(t->j, true, NULL);
}

int
journal_checkpoint(journal_t *j, pt_error_t *err)
{
    if (!j->have_sk || j->last_seq == 0 || j->read_only || j->last_seq == j->signed_head.seq)
        return 0;
    journal_txn_t *t;
    int rc = journal_begin(j, &t, err);
    if (rc != 0)
        return rc;
    rc = jint_put_checkpoint(t);
    if (rc != 0) {
        journal_abort(&t);
        return lmdbx_fail(err, rc, j->dir, "storing a checkpoint");
    }
    return journal_commit(&t, err);
}
