/* journal_queue: the per-recipient delivery queues and dead-letter queues of the
 * journal, in the same LMDB environment and transactions as the records.
 * Keys: recipient "\0" be64 seq. Value (little-endian): u8 version, u8 flags (bit 0:
 * replay), u32 attempts, i64 time (enqueued, or dead-lettered for the dead queue). */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "journal_internal.h"

#define QRECIPIENT_MAX 32 /* partner ids: [a-z0-9_]{1,32} */
#define QKEY_MAX (QRECIPIENT_MAX + 1 + 8)
#define QVAL_LEN 14
#define QVAL_VERSION 1

enum { QFLAG_REPLAY = 1 };

static size_t
qkey(uint8_t *key, const char *recipient, uint64_t seq)
{
    size_t n = strlen(recipient);
    if (n == 0 || n > QRECIPIENT_MAX)
        return 0;
    memcpy(key, recipient, n);
    key[n] = '\0';
    bytes_be64_put(key + n + 1, seq);
    return n + 1 + 8;
}

static void
qval_put(uint8_t *v, const journal_queue_entry_t *e, int64_t time_ms)
{
    v[0] = QVAL_VERSION;
    v[1] = e->replay ? QFLAG_REPLAY : 0;
    bytes_le_put(v + 2, e->attempts, 4);
    bytes_le_put(v + 6, (uint64_t)time_ms, 8);
}

static int
qval_get(const MDB_val *v, uint64_t seq, journal_queue_entry_t *e)
{
    const uint8_t *p = v->mv_data;
    if (v->mv_size != QVAL_LEN || p[0] != QVAL_VERSION)
        return PT_ECORRUPT;
    e->seq = seq;
    e->replay = (p[1] & QFLAG_REPLAY) != 0;
    e->attempts = (uint32_t)bytes_le_get(p + 2, 4);
    e->enqueued_ms = (int64_t)bytes_le_get(p + 6, 8);
    return 0;
}

static int
qput(journal_txn_t *t, int db, const char *recipient, const journal_queue_entry_t *e,
     int64_t time_ms)
{
    uint8_t key[QKEY_MAX], val[QVAL_LEN];
    size_t klen = qkey(key, recipient, e->seq);
    if (klen == 0)
        return EINVAL;
    qval_put(val, e, time_ms);
    MDB_val k = {klen, key}, v = {QVAL_LEN, val};
    return mdb_put(t->txn, t->j->dbi[db], &k, &v, 0);
}

int
jint_queue_enqueue(journal_txn_t *t, const char *const *recipients, uint64_t seq, int64_t time_ms)
{
    journal_queue_entry_t e = {.seq = seq};
    for (size_t i = 0; recipients && recipients[i]; i++) {
        int rc = qput(t, JDB_QUEUE, recipients[i], &e, time_ms);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int
write_fail(journal_txn_t *t, int rc, const char *recipient, pt_error_t *err)
{
    if (rc == EINVAL)
        return pt_error_set(err, PT_EINVALID, "recipient", "\"%s\" is not a partner id", recipient);
    return jint_poison(t, rc, err);
}

int
journal_queue_put(journal_txn_t *t, const char *recipient, const journal_queue_entry_t *e,
                  pt_error_t *err)
{
    if (t->poisoned)
        return pt_error_set(err, t->poisoned, t->j->dir, "transaction failed earlier");
    int rc = qput(t, JDB_QUEUE, recipient, e, e->enqueued_ms ? e->enqueued_ms : jint_now_ms());
    return rc ? write_fail(t, rc, recipient, err) : 0;
}

static int
qget(journal_txn_t *t, int db, const char *recipient, uint64_t seq, journal_queue_entry_t *e)
{
    uint8_t key[QKEY_MAX];
    size_t klen = qkey(key, recipient, seq);
    if (klen == 0 || t->poisoned)
        return PT_ENOTFOUND;
    MDB_val k = {klen, key}, v;
    int rc = mdb_get(t->txn, t->j->dbi[db], &k, &v);
    if (rc != 0)
        return lmdbx_code(rc);
    return qval_get(&v, seq, e);
}

int
journal_queue_get(journal_txn_t *t, const char *recipient, uint64_t seq, journal_queue_entry_t *e)
{
    return qget(t, JDB_QUEUE, recipient, seq, e);
}

static int
qdel(journal_txn_t *t, int db, const char *recipient, uint64_t seq, pt_error_t *err)
{
    if (t->poisoned)
        return pt_error_set(err, t->poisoned, t->j->dir, "transaction failed earlier");
    uint8_t key[QKEY_MAX];
    size_t klen = qkey(key, recipient, seq);
    if (klen == 0)
        return PT_ENOTFOUND;
    MDB_val k = {klen, key};
    int rc = mdb_del(t->txn, t->j->dbi[db], &k, NULL);
    if (rc == MDB_NOTFOUND)
        return PT_ENOTFOUND;
    return rc ? write_fail(t, rc, recipient, err) : 0;
}

int
journal_queue_remove(journal_txn_t *t, const char *recipient, uint64_t seq, pt_error_t *err)
{
    return qdel(t, JDB_QUEUE, recipient, seq, err);
}

int
journal_dead_add(journal_txn_t *t, const char *recipient, const journal_queue_entry_t *e,
                 pt_error_t *err)
{
    int rc = qdel(t, JDB_QUEUE, recipient, e->seq, err);
    if (rc != 0 && rc != PT_ENOTFOUND)
        return rc;
    rc = qput(t, JDB_DEAD, recipient, e, jint_now_ms());
    return rc ? write_fail(t, rc, recipient, err) : 0;
}

int
journal_dead_requeue(journal_txn_t *t, const char *recipient, uint64_t seq, pt_error_t *err)
{
    journal_queue_entry_t e;
    journal_view_t v;
    int rc = qget(t, JDB_DEAD, recipient, seq, &e);
    if (rc != 0)
        return rc;
    if (jint_view_in_place(t->j, t->txn, seq, &v, err) == 0 &&
        (v.payload_state == PT_PAYLOAD_EXPIRED || v.payload_state == PT_PAYLOAD_ERASED))
        return pt_error_set(err, PT_EINVALID, NULL, "record %llu: payload %s: nothing to requeue",
                            (unsigned long long)seq, journal_payload_name(v.payload_state));
    rc = qdel(t, JDB_DEAD, recipient, seq, err);
    if (rc != 0)
        return rc;
    e.attempts = 0;
    rc = qput(t, JDB_QUEUE, recipient, &e, jint_now_ms());
    return rc ? write_fail(t, rc, recipient, err) : 0;
}

int
journal_dead_drop(journal_txn_t *t, const char *recipient, uint64_t seq, journal_queue_entry_t *e,
                  pt_error_t *err)
{
    int rc = qget(t, JDB_DEAD, recipient, seq, e);
    return rc != 0 ? rc : qdel(t, JDB_DEAD, recipient, seq, err);
}

/* Walks db from (recipient, after + 1) while keys keep recipient's prefix (all
 * recipients when recipient is NULL), calling fn for each entry. */
typedef int (*qvisit_fn)(const char *recipient, const journal_queue_entry_t *e, void *arg);

static int
qwalk_txn(journal_t *j, MDB_txn *txn, int db, const char *recipient, uint64_t after, qvisit_fn fn,
          void *arg, pt_error_t *err)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, j->dbi[db], &cur);
    if (rc != 0)
        return lmdbx_fail(err, rc, j->dir, "opening a queue cursor");
    uint8_t key[QKEY_MAX];
    size_t plen = recipient ? strlen(recipient) + 1 : 0;
    MDB_val k = {recipient ? qkey(key, recipient, after + 1) : 0, key}, v;
    int op = recipient ? MDB_SET_RANGE : MDB_FIRST;
    if (recipient && k.mv_size == 0)
        op = -1;
    int stop = 0;
    for (rc = op < 0 ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op);
         rc == 0 && !stop; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const uint8_t *kp = k.mv_data;
        if (recipient && (k.mv_size != plen + 8 || memcmp(kp, key, plen) != 0))
            break;
        const uint8_t *nul = memchr(kp, 0, k.mv_size);
        journal_queue_entry_t e;
        if (nul == NULL || (size_t)(kp + k.mv_size - nul) != 9 ||
            qval_get(&v, bytes_be64_get(nul + 1), &e) != 0) {
            rc = PT_ECORRUPT;
            break;
        }
        stop = fn((const char *)kp, &e, arg);
    }
    mdb_cursor_close(cur);
    if (rc == PT_ECORRUPT)
        return pt_error_set(err, rc, j->dir, "queue: malformed entry");
    if (rc != 0 && rc != MDB_NOTFOUND)
        return lmdbx_fail(err, rc, j->dir, "reading a queue");
    return 0;
}

static int
qwalk(journal_t *j, int db, const char *recipient, uint64_t after, qvisit_fn fn, void *arg,
      pt_error_t *err)
{
    MDB_txn *txn;
    int rc = jint_read_begin(j, &txn, err);
    if (rc != 0)
        return rc;
    rc = qwalk_txn(j, txn, db, recipient, after, fn, arg, err);
    mdb_txn_abort(txn);
    return rc;
}

typedef struct qlist {
    journal_queue_entry_t *out;
    size_t max, n;
    uint64_t depth;
    int64_t oldest;
} qlist_t;

static int
qlist_visit(const char *recipient, const journal_queue_entry_t *e, void *arg)
{
    (void)recipient;
    qlist_t *l = arg;
    l->out[l->n++] = *e;
    return l->n >= l->max;
}

int
journal_queue_list(journal_t *j, const char *recipient, uint64_t after, journal_queue_entry_t *out,
                   size_t max, size_t *n, pt_error_t *err)
{
    qlist_t l = {.out = out, .max = max};
    *n = 0;
    if (max == 0)
        return 0;
    int rc = qwalk(j, JDB_QUEUE, recipient, after, qlist_visit, &l, err);
    *n = l.n;
    return rc;
}

int
journal_queue_list_txn(journal_txn_t *t, const char *recipient, uint64_t after,
                       journal_queue_entry_t *out, size_t max, size_t *n, pt_error_t *err)
{
    qlist_t l = {.out = out, .max = max};
    *n = 0;
    if (t->poisoned)
        return pt_error_set(err, t->poisoned, t->j->dir, "transaction failed earlier");
    if (max == 0)
        return 0;
    int rc = qwalk_txn(t->j, t->txn, JDB_QUEUE, recipient, after, qlist_visit, &l, err);
    *n = l.n;
    return rc;
}

static int
qstats_visit(const char *recipient, const journal_queue_entry_t *e, void *arg)
{
    (void)recipient;
    qlist_t *l = arg;
    if (l->depth++ == 0 || e->enqueued_ms < l->oldest)
        l->oldest = e->enqueued_ms;
    return 0;
}

int
journal_queue_stats(journal_t *j, const char *recipient, uint64_t *depth, int64_t *oldest_ms,
                    pt_error_t *err)
{
    qlist_t l = {0};
    int rc = qwalk(j, JDB_QUEUE, recipient, 0, qstats_visit, &l, err);
    *depth = l.depth;
    *oldest_ms = l.oldest;
    return rc;
}

typedef struct dlist {
    journal_dead_entry_t *out;
    size_t max, n;
} dlist_t;

static int
dlist_visit(const char *recipient, const journal_queue_entry_t *e, void *arg)
{
    dlist_t *l = arg;
    journal_dead_entry_t *d = &l->out[l->n++];
    snprintf(d->recipient, sizeof d->recipient, "%s", recipient);
    d->seq = e->seq;
    d->attempts = e->attempts;
    d->dead_ms = e->enqueued_ms;
    return l->n >= l->max;
}

int
journal_dead_list(journal_t *j, const char *recipient, size_t max, journal_dead_entry_t **out,
                  size_t *n, pt_error_t *err)
{
    *out = NULL;
    *n = 0;
    dlist_t l = {.out = calloc(max ? max : 1, sizeof *l.out), .max = max};
    if (l.out == NULL)
        return pt_error_set(err, -ENOMEM, "journal", "out of memory");
    int rc = max ? qwalk(j, JDB_DEAD, recipient, 0, dlist_visit, &l, err) : 0;
    if (rc != 0) {
        free(l.out);
        return rc;
    }
    *out = l.out;
    *n = l.n;
    return 0;
}

const char *
jint_pending(journal_txn_t *t, const journal_view_t *v, bool *dead)
{
    journal_queue_entry_t e;
    for (size_t i = 0; i < v->n_recipients; i++) {
        *dead = false;
        if (qget(t, JDB_QUEUE, v->recipients[i], v->seq, &e) == 0)
            return v->recipients[i];
        *dead = true;
        if (qget(t, JDB_DEAD, v->recipients[i], v->seq, &e) == 0)
            return v->recipients[i];
    }
    return NULL;
}
