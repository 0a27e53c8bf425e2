/* journal_retention: payload expiry by policy and payload removal (format 2). A payload
 * is removed by rewriting its record without the bytes (journal_record_strip): the
 * header, both hashes and the chain stay, so the record still verifies. The expiry
 * walks the records in seq order, one cursor per distinct retention (meta
 * "expiry/<ms>": the next seq to examine), and never removes the payload of a message
 * still queued or dead-lettered: those are held (meta "expiry_held/" be64 seq) and
 * tried again on later steps. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal_internal.h"
#include "journal_record.h"

#define HELD_PREFIX "expiry_held/"
#define HELD_PREFIX_LEN (sizeof HELD_PREFIX - 1)
#define HELD_KEY_LEN (HELD_PREFIX_LEN + SEQ_KEY_LEN)
#define HELD_RETRY_MAX 256 /* held payloads tried again per step, at most */

typedef struct expiry {
    journal_txn_t *t;
    const journal_retention_rule_t *rules;
    size_t n_rules;
    int64_t now_ms;
    size_t budget; /* records still to examine in this step */
    journal_expiry_report_t *rep;
    uint8_t *buf; /* the stripped record, before it is put */
    size_t cap;
    pt_error_t *err;
} expiry_t;

/* How long the payloads of type are kept: its rule, else the default (NULL type) rule,
 * else 0 (forever). */
static int64_t
keep_of(const journal_retention_rule_t *rules, size_t n, const char *type)
{
    int64_t dflt = 0;
    for (size_t i = 0; i < n; i++) {
        if (rules[i].msg_type == NULL)
            dflt = rules[i].keep_ms;
        else if (strcmp(rules[i].msg_type, type) == 0)
            return rules[i].keep_ms;
    }
    return dflt;
}

static void
held_key(uint8_t key[HELD_KEY_LEN], uint64_t seq)
{
    memcpy(key, HELD_PREFIX, HELD_PREFIX_LEN);
    bytes_be64_put(key + HELD_PREFIX_LEN, seq);
}

static int
held_put(journal_txn_t *t, uint64_t seq, bool put)
{
    uint8_t key[HELD_KEY_LEN];
    held_key(key, seq);
    MDB_val k = {HELD_KEY_LEN, key}, v = {0, NULL};
    int rc = put ? mdb_put(t->txn, t->j->dbi[JDB_META], &k, &v, 0)
                 : mdb_del(t->txn, t->j->dbi[JDB_META], &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Rewrites the record held in val (read under seq in t) without its payload. */
static int
strip_put(journal_txn_t *t, uint64_t seq, const MDB_val *val, journal_payload_t why, uint8_t **buf,
          size_t *cap, pt_error_t *err)
{
    size_t n;
    if (*cap < val->mv_size) {
        uint8_t *nb = realloc(*buf, val->mv_size);
        if (nb == NULL)
            return pt_error_set(err, -ENOMEM, t->j->dir, "out of memory");
        *buf = nb;
        *cap = val->mv_size;
    }
    if (journal_record_strip(val->mv_data, val->mv_size, why, *buf, &n) != 0)
        return pt_error_set(err, PT_ECORRUPT, NULL, "record %" PRIu64 ": malformed", seq);
    int rc = jint_record_replace(t, seq, *buf, n);
    return rc ? jint_poison(t, rc, err) : 0;
}

/* A smaller value put over a record leaves its page as full as it was: LMDB merges
 * sparse pages only when a node is deleted. So the record is deleted, then put back,
 * and the pages its payload filled are freed for later appends. */
int
jint_record_replace(journal_txn_t *t, uint64_t seq, const uint8_t *data, size_t len)
{
    uint8_t key[SEQ_KEY_LEN];
    bytes_be64_put(key, seq);
    MDB_val k = {SEQ_KEY_LEN, key}, v = {len, (void *)data};
    int rc = mdb_del(t->txn, t->j->dbi[JDB_RECORDS], &k, NULL);
    return rc ? rc : mdb_put(t->txn, t->j->dbi[JDB_RECORDS], &k, &v, 0);
}

/* Why the payload of record v cannot be removed (into err), or 0. */
static int
removal_problem(journal_txn_t *t, const journal_view_t *v, pt_error_t *err)
{
    bool dead;
    const char *who;
    if (v->format < 2)
        return pt_error_set(err, PT_EVERSION, NULL,
                            "record %" PRIu64 ": format 1 chains its payload, which cannot be "
                            "removed",
                            v->seq);
    if (v->payload_state != PT_PAYLOAD_STORED)
        return pt_error_set(err, PT_EINVALID, NULL, "record %" PRIu64 ": no payload stored (%s)",
                            v->seq, journal_payload_name(v->payload_state));
    if ((who = jint_pending(t, v, &dead)) != NULL)
        return pt_error_set(err, PT_EDENIED, NULL,
                            "record %" PRIu64 ": still %s for %s: its payload is kept", v->seq,
                            dead ? "dead-lettered" : "queued", who);
    return 0;
}

int
journal_payload_remove(journal_txn_t *t, uint64_t seq, journal_payload_t why, pt_error_t *err)
{
    MDB_val val;
    journal_view_t v;
    uint8_t *buf = NULL;
    size_t cap = 0;
    if (t->poisoned)
        return pt_error_set(err, t->poisoned, t->j->dir, "transaction failed earlier");
    if (why != PT_PAYLOAD_EXPIRED && why != PT_PAYLOAD_ERASED)
        return pt_error_set(err, PT_EINVALID, "why", "not a removal state");
    int rc = jint_get_record(t->j, t->txn, seq, &val, err);
    if (rc == 0)
        rc = jint_decode_at(&val, seq, &v, err);
    if (rc == 0)
        rc = removal_problem(t, &v, err);
    if (rc == 0)
        rc = strip_put(t, seq, &val, why, &buf, &cap, err);
    free(buf);
    return rc;
}

/* One due record of the walk: expired, held (still queued or dead-lettered) or, in
 * format 1, kept. */
static int
expire_one(expiry_t *x, const MDB_val *val, const journal_view_t *v)
{
    pt_error_t why;
    int rc = removal_problem(x->t, v, &why);
    if (rc == PT_EVERSION) {
        x->rep->format1++;
        return 0;
    }
    if (rc == PT_EDENIED) {
        x->rep->held++;
        x->rep->held_seq = v->seq;
        rc = held_put(x->t, v->seq, true);
        return rc ? jint_poison(x->t, rc, x->err) : 0;
    }
    if (rc != 0)
        return 0;
    rc = strip_put(x->t, v->seq, val, PT_PAYLOAD_EXPIRED, &x->buf, &x->cap, x->err);
    x->rep->expired += rc == 0;
    return rc;
}

/* Walks the records of retention keep from its cursor while they are older than it. */
static int
walk_keep(expiry_t *x, int64_t keep)
{
    journal_txn_t *t = x->t;
    char name[40];
    uint64_t next = 1;
    int rc = 0;
    snprintf(name, sizeof name, "expiry/%" PRId64, keep);
    if (jint_meta_get_u64(t->j, t->txn, name, &next, x->err) != 0)
        next = 1;
    if (next < journal_first_seq(t->j))
        next = journal_first_seq(t->j); /* records before the anchor were moved out */
    for (; rc == 0 && x->budget > 0 && next <= t->last_seq; next++) {
        MDB_val val;
        journal_view_t v;
        rc = jint_get_record(t->j, t->txn, next, &val, x->err);
        if (rc == PT_ENOTFOUND) { /* not after the anchor; counted, so a step stays bounded */
            x->budget--;
            rc = 0;
            continue;
        }
        if (rc == 0)
            rc = jint_decode_at(&val, next, &v, x->err);
        if (rc != 0 || v.time_ms > x->now_ms - keep)
            break;
        x->budget--;
        x->rep->examined++;
        if (v.payload_state == PT_PAYLOAD_STORED &&
            keep_of(x->rules, x->n_rules, v.msg_type) == keep)
            rc = expire_one(x, &val, &v);
    }
    int prc = rc == 0 ? jint_meta_put_u64(t->j, t->txn, name, next) : 0;
    return prc ? jint_poison(t, prc, x->err) : rc;
}

/* Collects up to max held seqs after j->held_after (wrapping to the first). */
static size_t
held_collect(journal_txn_t *t, uint64_t *out, size_t max)
{
    MDB_cursor *cur;
    uint8_t key[HELD_KEY_LEN];
    size_t n = 0;
    if (mdb_cursor_open(t->txn, t->j->dbi[JDB_META], &cur) != 0)
        return 0;
    held_key(key, t->j->held_after + 1);
    MDB_val k = {HELD_KEY_LEN, key}, v;
    int m = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; m == 0 && n < max; m = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != HELD_KEY_LEN || memcmp(k.mv_data, HELD_PREFIX, HELD_PREFIX_LEN) != 0)
            break;
        out[n++] = bytes_be64_get((const uint8_t *)k.mv_data + HELD_PREFIX_LEN);
    }
    mdb_cursor_close(cur);
    t->j->held_after = n == max ? out[n - 1] : 0;
    return n;
}

/* Tries the held payloads again: removed once nothing waits for them any more. */
static int
retry_held(expiry_t *x)
{
    uint64_t seqs[HELD_RETRY_MAX];
    size_t max = x->budget / 4 < HELD_RETRY_MAX ? x->budget / 4 : HELD_RETRY_MAX;
    size_t n = max ? held_collect(x->t, seqs, max) : 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        MDB_val val;
        journal_view_t v;
        pt_error_t why;
        x->budget--;
        if (jint_get_record(x->t->j, x->t->txn, seqs[i], &val, &why) != 0 ||
            jint_decode_at(&val, seqs[i], &v, &why) != 0) {
            rc = held_put(x->t, seqs[i], false);
            continue;
        }
        int p = removal_problem(x->t, &v, &why);
        if (p == PT_EDENIED)
            continue;
        rc =
            p == 0 ? strip_put(x->t, v.seq, &val, PT_PAYLOAD_EXPIRED, &x->buf, &x->cap, x->err) : 0;
        x->rep->expired += rc == 0 && p == 0;
        if (rc == 0)
            rc = held_put(x->t, seqs[i], false);
    }
    return rc > 0 ? jint_poison(x->t, rc, x->err) : rc;
}

/* True when rules[i] is the first rule with its retention (one walk per retention). */
static bool
first_of_keep(const journal_retention_rule_t *rules, size_t i)
{
    for (size_t k = 0; k < i; k++)
        if (rules[k].keep_ms == rules[i].keep_ms)
            return false;
    return rules[i].keep_ms > 0;
}

int
journal_expire_payloads(journal_txn_t *t, const journal_retention_rule_t *rules, size_t n,
                        int64_t now_ms, size_t max, journal_expiry_report_t *rep, pt_error_t *err)
{
    memset(rep, 0, sizeof *rep);
    if (t->poisoned)
        return pt_error_set(err, t->poisoned, t->j->dir, "transaction failed earlier");
    expiry_t x = {.t = t,
                  .rules = rules,
                  .n_rules = n,
                  .now_ms = now_ms,
                  .budget = max,
                  .rep = rep,
                  .err = err};
    int rc = retry_held(&x);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (first_of_keep(rules, i))
            rc = walk_keep(&x, rules[i].keep_ms);
    free(x.buf);
    rep->more = x.budget == 0;
    return rc;
}

size_t
journal_expiry_held(journal_t *j)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    uint8_t key[HELD_KEY_LEN];
    size_t n = 0;
    if (jint_read_begin(j, &txn, NULL) != 0)
        return 0;
    held_key(key, 0);
    MDB_val k = {HELD_KEY_LEN, key}, v;
    if (mdb_cursor_open(txn, j->dbi[JDB_META], &cur) == 0) {
        int m = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        for (; m == 0; m = mdb_cursor_get(cur, &k, &v, MDB_NEXT), n++)
            if (k.mv_size != HELD_KEY_LEN || memcmp(k.mv_data, HELD_PREFIX, HELD_PREFIX_LEN) != 0)
                break;
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    return n;
}
