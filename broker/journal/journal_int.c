/* journal_int: the small helpers every file of the journal uses (jint_*): the table of
 * named databases, LMDB error codes, big-endian keys, the clock, sequence lists, the
 * DUPSORT index put and walk, the person key, read transactions and the poisoning of a
 * failed write transaction. It uses no other file of the journal, so none of them
 * depends on another through it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>
#include <sodium.h>

#include "journal_internal.h"
#include "clock.h"

const jint_db_t jint_dbs[JDB_COUNT] = {
    [JDB_RECORDS] = {"records", 0},    [JDB_META] = {"meta", 0},
    [JDB_DEDUP] = {"dedup", 0},        [JDB_MSGID] = {"by_msgid", MDB_DUPSORT | MDB_DUPFIXED},
    [JDB_PARTNER] = {"by_partner", 0}, [JDB_PERSON] = {"by_person", MDB_DUPSORT | MDB_DUPFIXED},
    [JDB_CKPT] = {"checkpoints", 0},   [JDB_QUEUE] = {"queue", 0},
    [JDB_DEAD] = {"dead", 0},          [JDB_PERSON_NEW] = {"by_person_new", 0},
};

int64_t
jint_now_ms(void)
{
    return pt_clock_wall_ms();
}

const char *
jint_db_name(int db)
{
    return db >= 0 && db < JDB_COUNT ? jint_dbs[db].name : "?";
}

const char *
jint_nz(const char *s)
{
    return s ? s : "";
}

int
jint_seqlist_push(seqlist_t *l, uint64_t seq)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        uint64_t *nv = realloc(l->v, cap * sizeof *nv);
        if (nv == NULL)
            return -ENOMEM;
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = seq;
    return 0;
}

int
jint_seqlist_finish(seqlist_t *l, int rc, uint64_t **seqs, size_t *n)
{
    if (rc != 0) {
        free(l->v);
        *seqs = NULL;
        *n = 0;
        return rc;
    }
    *seqs = l->v;
    *n = l->n;
    return 0;
}

int
jint_put_seq_dup(journal_txn_t *t, int db, const void *key, size_t klen, const uint8_t *seqkey)
{
    MDB_val k = {klen, (void *)key}, v = {SEQ_KEY_LEN, (void *)seqkey};
    return mdb_put(t->txn, t->j->dbi[db], &k, &v, 0);
}

/* Collects into l the be64 seq values stored under key in a DUPSORT index, in txn. */
int
jint_collect_dups(journal_t *j, MDB_txn *txn, int db, const void *key, size_t klen, seqlist_t *l,
                  pt_error_t *err)
{
    MDB_cursor *cur = NULL;
    MDB_val k = {klen, (void *)key}, v;
    int rc = 0, m = mdb_cursor_open(txn, j->dbi[db], &cur);
    if (m == 0)
        m = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
    for (; m == 0 && rc == 0; m = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP))
        rc = v.mv_size == SEQ_KEY_LEN ? jint_seqlist_push(l, bytes_be64_get(v.mv_data))
                                      : PT_ECORRUPT;
    if (rc == 0 && m != MDB_NOTFOUND)
        rc = lmdbx_fail(err, m, j->dir, jint_dbs[db].name);
    else if (rc != 0)
        pt_error_set(err, rc, j->dir, "%s: bad entry", jint_dbs[db].name);
    mdb_cursor_close(cur);
    return rc;
}

void
jint_person_key(const journal_t *j, const char *nir, uint8_t out[crypto_auth_hmacsha256_BYTES])
{
    crypto_auth_hmacsha256(out, (const uint8_t *)nir, strlen(nir), j->hmac_key);
}

int
jint_read_begin(journal_t *j, MDB_txn **txn, pt_error_t *err)
{
    int rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, txn);
    if (rc == MDB_MAP_RESIZED && !j->in_txn && mdb_env_set_mapsize(j->env, 0) == 0)
        rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, txn);
    return rc ? lmdbx_fail(err, rc, j->dir, "beginning a read transaction") : 0;
}

int
jint_poison(journal_txn_t *t, int rc, pt_error_t *err)
{
    t->poisoned = lmdbx_code(rc);
    if (t->poisoned == PT_EJOURNALFULL)
        t->j->grow_pending = true;
    return pt_error_set(err, t->poisoned, t->j->dir, "append: %s%s", mdb_strerror(rc),
                        t->poisoned == PT_EJOURNALFULL ? " (abort the batch)" : "");
}
