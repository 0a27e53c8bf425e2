/* journal_state: the check that the journal's state databases (queue, dead letters,
 * dedup, by_msgid, by_partner) are what its records say. The chain and the checkpoints
 * cover the records only; these databases are written in the records' transactions,
 * so they can be rebuilt from the records and compared. by_person cannot be: the
 * records do not hold the NIR it is keyed by (only the payload does, and only the
 * ingest knows where), so it is not checked. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal_internal.h"
#include "journal_record.h"

#define STATE_RECIPIENT_MAX 32
#define STATE_KEY_MAX 511
#define STATE_QVAL_LEN 14

enum { ST_QUEUED = 1, ST_DEAD = 2, ST_DONE = 3 };

/* What the records say about one (recipient, RECEIVED seq). */
typedef struct state_entry {
    uint64_t seq; /* 0 = free slot */
    uint32_t attempts;
    uint8_t state;
    bool seen; /* found in the queue or dead database */
    char recipient[STATE_RECIPIENT_MAX + 1];
} state_entry_t;

/* Open addressing with linear probing; ST_DONE entries are dropped when it grows. */
typedef struct state_map {
    state_entry_t *v;
    size_t cap, used;
} state_map_t;

typedef struct state_check {
    journal_t *j;
    MDB_txn *txn;
    state_map_t map;
    uint64_t n_dedup, n_msgid, n_partner;
    uint64_t *bad_seq;
    pt_error_t *err;
} state_check_t;

static size_t
slot_of(const state_map_t *m, const char *recipient, uint64_t seq)
{
    uint64_t h = seq * UINT64_C(0x9E3779B97F4A7C15);
    for (const char *p = recipient; *p; p++)
        h = (h ^ (uint8_t)*p) * UINT64_C(0x100000001B3);
    size_t i = (size_t)(h & (m->cap - 1));
    while (m->v[i].seq != 0 && (m->v[i].seq != seq || strcmp(m->v[i].recipient, recipient) != 0))
        i = (i + 1) & (m->cap - 1);
    return i;
}

static int
map_grow(state_map_t *m)
{
    state_map_t n = {.cap = m->cap ? m->cap * 2 : 1024};
    n.v = calloc(n.cap, sizeof *n.v);
    if (n.v == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->v[i].seq != 0 && m->v[i].state != ST_DONE) {
            n.v[slot_of(&n, m->v[i].recipient, m->v[i].seq)] = m->v[i];
            n.used++;
        }
    free(m->v);
    *m = n;
    return 0;
}

/* The entry for (recipient, seq), created (state 0) when create is set; NULL if absent. */
static state_entry_t *
map_get(state_map_t *m, const char *recipient, uint64_t seq, bool create, int *rc)
{
    *rc = 0;
    if (strlen(recipient) == 0 || strlen(recipient) > STATE_RECIPIENT_MAX || seq == 0)
        return NULL;
    if (m->cap == 0 || (create && (m->used + 1) * 10 > m->cap * 7)) {
        if ((*rc = map_grow(m)) != 0)
            return NULL;
    }
    state_entry_t *e = &m->v[slot_of(m, recipient, seq)];
    if (e->seq == 0 && !create)
        return NULL;
    if (e->seq == 0) {
        e->seq = seq;
        snprintf(e->recipient, sizeof e->recipient, "%s", recipient);
        m->used++;
    }
    return e;
}

static int
mismatch(state_check_t *c, uint64_t seq, const char *fmt, const char *a, unsigned long long b)
{
    char what[PT_ERROR_MSG_MAX];
    snprintf(what, sizeof what, fmt, a, b);
    *c->bad_seq = seq;
    return pt_error_set(c->err, PT_ECORRUPT, NULL, "state: %s", what);
}

/* ---- the queues, replayed from the records ---- */

static int
apply_queue(state_check_t *c, const journal_view_t *v)
{
    int rc = 0;
    state_entry_t *e;
    if (v->kind == PT_REC_RECEIVED) {
        for (size_t i = 0; i < v->n_recipients && rc == 0; i++)
            if ((e = map_get(&c->map, v->recipients[i], v->seq, true, &rc)) != NULL) {
                e->state = ST_QUEUED;
                e->attempts = 0;
            }
        return rc;
    }
    bool creates = v->kind == PT_REC_REPLAYED;
    e = map_get(&c->map, v->partner, v->ref_seq, creates, &rc);
    if (e == NULL)
        return rc;
    switch (v->kind) {
    case PT_REC_DELIVERED: /* also a dead letter an administrator requeued */
        e->state = ST_QUEUED;
        e->attempts = v->attempt;
        break;
    case PT_REC_ACKNOWLEDGED:
    case PT_REC_DROPPED: /* a dead letter an administrator dropped */
        e->state = ST_DONE;
        break;
    case PT_REC_DEAD_LETTERED:
        e->state = ST_DEAD;
        e->attempts = v->attempt;
        break;
    case PT_REC_REPLAYED:
        e->state = ST_QUEUED;
        e->attempts = 0;
        break;
    default:
        break;
    }
    return 0;
}

/* ---- the indexes, looked up for each record ---- */

static int
check_dedup(state_check_t *c, const journal_view_t *v)
{
    uint8_t key[STATE_KEY_MAX + 1];
    size_t p = strlen(v->partner), m = strlen(v->message_id);
    if (v->kind != PT_REC_RECEIVED || m == 0 || p + 1 + m > STATE_KEY_MAX)
        return 0;
    memcpy(key, v->partner, p + 1);
    memcpy(key + p + 1, v->message_id, m);
    MDB_val k = {p + 1 + m, key}, d;
    if (mdb_get(c->txn, c->j->dbi[JDB_DEDUP], &k, &d) != 0 || d.mv_size != 8 + PT_JOURNAL_HASH_LEN)
        return mismatch(c, v->seq, "dedup entry of record %s%llu missing or malformed (deleted?)",
                        "", (unsigned long long)v->seq);
    uint64_t owner = bytes_be64_get(d.mv_data);
    if (owner == v->seq) {
        c->n_dedup++;
        if (memcmp((uint8_t *)d.mv_data + 8, v->payload_hash, PT_JOURNAL_HASH_LEN) != 0)
            return mismatch(c, v->seq, "dedup entry of record %s%llu: payload hash altered", "",
                            (unsigned long long)v->seq);
        return 0;
    }
    if (owner > v->seq)
        return mismatch(c, v->seq, "dedup entry of record %s%llu names a later record (altered?)",
                        "", (unsigned long long)v->seq);
    return 0; /* an earlier RECEIVED of the same id owns it: checked on its own visit */
}

static int
check_msgid(state_check_t *c, const journal_view_t *v)
{
    uint8_t seqkey[8];
    size_t m = strlen(v->message_id);
    if (m == 0 || m > STATE_KEY_MAX)
        return 0;
    bytes_be64_put(seqkey, v->seq);
    MDB_val k = {m, (void *)v->message_id}, d = {8, seqkey};
    MDB_cursor *cur;
    int rc = mdb_cursor_open(c->txn, c->j->dbi[JDB_MSGID], &cur);
    if (rc == 0) {
        rc = mdb_cursor_get(cur, &k, &d, MDB_GET_BOTH);
        mdb_cursor_close(cur);
    }
    if (rc != 0)
        return mismatch(c, v->seq, "by_msgid entry of record %s%llu missing (deleted?)", "",
                        (unsigned long long)v->seq);
    c->n_msgid++;
    return 0;
}

static int
check_partner(state_check_t *c, const journal_view_t *v)
{
    uint8_t key[STATE_KEY_MAX + 1];
    size_t p = strlen(v->partner), ty = strlen(v->msg_type);
    if (p == 0 || p + ty + 2 + 16 > STATE_KEY_MAX)
        return 0;
    memcpy(key, v->partner, p + 1);
    memcpy(key + p + 1, v->msg_type, ty + 1);
    bytes_be64_put(key + p + ty + 2, (uint64_t)v->time_ms ^ (UINT64_C(1) << 63));
    bytes_be64_put(key + p + ty + 10, v->seq);
    MDB_val k = {p + ty + 18, key}, d;
    if (mdb_get(c->txn, c->j->dbi[JDB_PARTNER], &k, &d) != 0)
        return mismatch(c, v->seq, "by_partner entry of record %s%llu missing (deleted?)", "",
                        (unsigned long long)v->seq);
    c->n_partner++;
    return 0;
}

static int
visit_record(state_check_t *c, const journal_view_t *v)
{
    int rc = apply_queue(c, v);
    if (rc == 0)
        rc = check_dedup(c, v);
    if (rc == 0)
        rc = check_msgid(c, v);
    if (rc == 0)
        rc = check_partner(c, v);
    return rc;
}

static int
walk_records(state_check_t *c)
{
    MDB_cursor *cur;
    MDB_val k, v;
    journal_view_t view;
    int rc = mdb_cursor_open(c->txn, c->j->dbi[JDB_RECORDS], &cur);
    if (rc != 0)
        return lmdbx_fail(c->err, rc, c->j->dir, "opening a cursor");
    int m = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; m == 0 && rc == 0; m = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint64_t seq = k.mv_size == 8 ? bytes_be64_get(k.mv_data) : 0;
        rc = journal_record_decode(v.mv_data, v.mv_size, seq, &view, c->err);
        if (rc == 0)
            rc = visit_record(c, &view);
    }
    mdb_cursor_close(cur);
    if (rc == 0 && m != MDB_NOTFOUND)
        rc = lmdbx_fail(c->err, m, c->j->dir, "walking the records");
    return rc;
}

/* ---- comparing ---- */

/* Parses a queue or dead key and value: recipient "\0" be64 seq; u8 version, u8 flags,
 * u32 attempts LE, i64 time. */
static bool
parse_qentry(const MDB_val *k, const MDB_val *v, char *recipient, uint64_t *seq, uint32_t *attempts)
{
    const uint8_t *kp = k->mv_data, *vp = v->mv_data;
    if (k->mv_size < 10 || k->mv_size - 9 > STATE_RECIPIENT_MAX || kp[k->mv_size - 9] != '\0' ||
        v->mv_size != STATE_QVAL_LEN)
        return false;
    memcpy(recipient, kp, k->mv_size - 9);
    recipient[k->mv_size - 9] = '\0';
    *seq = bytes_be64_get(kp + k->mv_size - 8);
    *attempts =
        (uint32_t)vp[2] | (uint32_t)vp[3] << 8 | (uint32_t)vp[4] << 16 | (uint32_t)vp[5] << 24;
    return strlen(recipient) == k->mv_size - 9;
}

/* One stored queue (dead = false) or dead-letter entry against the records' state. A
 * dead letter an administrator requeued is in the queue with 0 attempts until its next
 * delivery (the ADMIN record does not name the seqs). */
static int
compare_entry(state_check_t *c, bool dead, const char *recipient, uint64_t seq, uint32_t attempts)
{
    int rc;
    const char *db = dead ? "dead letter" : "queue entry";
    char who[80];
    snprintf(who, sizeof who, "%s %s", db, recipient);
    state_entry_t *e = map_get(&c->map, recipient, seq, false, &rc);
    if (e == NULL || e->state == ST_DONE || e->state == 0)
        return mismatch(c, seq, "%s/%llu: no record leaves it there (added or restored?)", who,
                        (unsigned long long)seq);
    bool requeued = !dead && e->state == ST_DEAD && attempts == 0;
    if ((dead && e->state != ST_DEAD) || (!dead && e->state != ST_QUEUED && !requeued))
        return mismatch(c, seq, "%s/%llu: the records put it in the other database (moved?)", who,
                        (unsigned long long)seq);
    if (!requeued && e->attempts != attempts)
        return mismatch(c, seq, "%s/%llu: attempts differ from the records' (altered?)", who,
                        (unsigned long long)seq);
    e->seen = true;
    return 0;
}

static int
compare_db(state_check_t *c, int db)
{
    MDB_cursor *cur;
    MDB_val k, v;
    char recipient[STATE_RECIPIENT_MAX + 1];
    uint64_t seq;
    uint32_t attempts;
    int rc = mdb_cursor_open(c->txn, c->j->dbi[db], &cur);
    if (rc != 0)
        return lmdbx_fail(c->err, rc, c->j->dir, "opening a cursor");
    int m = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; m == 0 && rc == 0; m = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (!parse_qentry(&k, &v, recipient, &seq, &attempts))
            rc = mismatch(c, 0, "%s: malformed entry%.0llu", jint_db_name(db), 0);
        else
            rc = compare_entry(c, db == JDB_DEAD, recipient, seq, attempts);
    }
    mdb_cursor_close(cur);
    if (rc == 0 && m != MDB_NOTFOUND)
        rc = lmdbx_fail(c->err, m, c->j->dir, jint_db_name(db));
    return rc;
}

/* Every entry the records leave in a queue must have been found. */
static int
compare_missing(state_check_t *c)
{
    for (size_t i = 0; i < c->map.cap; i++) {
        const state_entry_t *e = &c->map.v[i];
        if (e->seq == 0 || e->seen || (e->state != ST_QUEUED && e->state != ST_DEAD))
            continue;
        char who[80];
        snprintf(who, sizeof who, "%s %s", e->state == ST_DEAD ? "dead letter" : "queue entry",
                 e->recipient);
        return mismatch(c, e->seq, "%s/%llu: missing (deleted?)", who, (unsigned long long)e->seq);
    }
    return 0;
}

static int
compare_count(state_check_t *c, int db, uint64_t expected)
{
    MDB_stat st;
    int rc = mdb_stat(c->txn, c->j->dbi[db], &st);
    if (rc != 0)
        return lmdbx_fail(c->err, rc, c->j->dir, jint_db_name(db));
    if (st.ms_entries == expected)
        return 0;
    char what[80];
    snprintf(what, sizeof what, "%s holds %llu entries", jint_db_name(db),
             (unsigned long long)st.ms_entries);
    return mismatch(c, 0, "%s, the records make %llu (entries added?)", what,
                    (unsigned long long)expected);
}

int
jint_state_check(journal_t *j, MDB_txn *txn, uint64_t *bad_seq, pt_error_t *err)
{
    state_check_t c = {.j = j, .txn = txn, .bad_seq = bad_seq, .err = err};
    int rc = walk_records(&c);
    if (rc == -ENOMEM)
        pt_error_set(err, rc, j->dir, "state check: out of memory");
    /* An archive holds no queues: what its records leave queued was in the live one. */
    if (rc == 0 && !j->is_archive)
        rc = compare_db(&c, JDB_QUEUE);
    if (rc == 0 && !j->is_archive)
        rc = compare_db(&c, JDB_DEAD);
    if (rc == 0 && !j->is_archive)
        rc = compare_missing(&c);
    if (rc == 0)
        rc = compare_count(&c, JDB_DEDUP, c.n_dedup);
    if (rc == 0)
        rc = compare_count(&c, JDB_MSGID, c.n_msgid);
    if (rc == 0)
        rc = compare_count(&c, JDB_PARTNER, c.n_partner);
    free(c.map.v);
    return rc;
}
