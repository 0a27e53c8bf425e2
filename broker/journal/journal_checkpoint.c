/* journal_checkpoint: signed checkpoints: signing a batch's head in its commit, the
 * signed head kept in memory, and the checks of the last checkpoint at open. */
#include <string.h>

#include <lmdb.h>
#include <sodium.h>

#include "journal_internal.h"
#include "journal_record.h"
#include "log.h"

static void
log_signed_head(const journal_signed_head_t *h)
{
    char hash[2 * PT_JOURNAL_HASH_LEN + 1], sig[2 * 8 + 1];
    sodium_bin2hex(hash, sizeof hash, h->hash, sizeof h->hash);
    sodium_bin2hex(sig, sizeof sig, h->sig, 8);
    pt_log_notice("journal.signed", "signed head seq=%llu number=%llu time_ms=%lld hash=%s sig=%s",
                  (unsigned long long)h->seq, (unsigned long long)h->number, (long long)h->time_ms,
                  hash, sig);
}

/* Signs t's head as the checkpoint following the last committed one, stores it in t,
 * and keeps it in t->pending until the commit. LMDB code. */
int
jint_put_checkpoint(journal_txn_t *t)
{
    journal_t *j = t->j;
    /* Both states: the batch's head, linked to the last committed checkpoint. */
    journal_checkpoint_rec_t cp = {.format = PT_JCKP_FORMAT,
                                   .seq = t->last_seq,
                                   .time_ms = jint_now_ms(),
                                   .prev_seq = j->signed_head.seq,
                                   .number = j->signed_head.number + 1};
    uint8_t msg[PT_JCKP_MSG_LEN], val[PT_JCKP_LEN], key[SEQ_KEY_LEN];
    memcpy(cp.hash, t->head, PT_JOURNAL_HASH_LEN);
    size_t mlen = journal_checkpoint_message(&cp, msg);
    crypto_sign_detached(cp.sig, NULL, msg, mlen, j->sign_sk);
    journal_checkpoint_encode(&cp, val);
    bytes_be64_put(key, cp.seq);
    MDB_val k = {sizeof key, key}, v = {sizeof val, val};
    int rc = mdb_put(t->txn, j->dbi[JDB_CKPT], &k, &v, 0);
    if (rc != 0)
        return rc;
    t->signed_pending = true;
    t->pending = (journal_signed_head_t){.seq = cp.seq, .time_ms = cp.time_ms, .number = cp.number};
    memcpy(t->pending.hash, cp.hash, PT_JOURNAL_HASH_LEN);
    memcpy(t->pending.sig, cp.sig, PT_JCKP_SIG_LEN);
    return 0;
}

/* The batch would leave more than PT_JOURNAL_UNSIGNED_MAX records unsigned (with 0:
 * it appended anything). */
bool
jint_must_sign(const journal_txn_t *t)
{
    const journal_t *j = t->j;
    /* Both states: the batch's last seq against the last committed checkpoint. */
    return j->have_sk && !t->signed_pending &&
           t->last_seq - j->signed_head.seq > PT_JOURNAL_UNSIGNED_MAX;
}

/* After a successful commit: the batch's checkpoint is now the signed head. */
void
jint_signed_head_commit(journal_txn_t *t)
{
    if (!t->signed_pending)
        return;
    t->j->signed_head = t->pending;
    t->signed_pending = false;
    log_signed_head(&t->j->signed_head);
}

void
journal_signed_head(const journal_t *j, journal_signed_head_t *out)
{
    *out = j->signed_head;
}

/* Reads the last checkpoint into j->signed_head; its number is, for a format-1 one,
 * the count of checkpoints (the first format-2 checkpoint then follows them all). */
int
jint_load_signed_head(journal_t *j, MDB_txn *txn, pt_error_t *err)
{
    MDB_cursor *cur;
    MDB_val k, v;
    journal_checkpoint_rec_t cp;
    uint64_t bad;
    memset(&j->signed_head, 0, sizeof j->signed_head);
    int rc = mdb_cursor_open(txn, j->dbi[JDB_CKPT], &cur);
    if (rc != 0)
        return lmdbx_fail(err, rc, j->dir, "opening a cursor");
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return lmdbx_fail(err, rc, j->dir, "reading the last checkpoint");
    if ((rc = jint_decode_checkpoint(&k, &v, &cp, &bad, err)) != 0)
        return rc;
    MDB_stat st;
    if (cp.format == PT_JCKP_FORMAT_V1 && mdb_stat(txn, j->dbi[JDB_CKPT], &st) == 0)
        cp.number = st.ms_entries;
    j->signed_head =
        (journal_signed_head_t){.seq = cp.seq, .time_ms = cp.time_ms, .number = cp.number};
    memcpy(j->signed_head.hash, cp.hash, PT_JOURNAL_HASH_LEN);
    memcpy(j->signed_head.sig, cp.sig, PT_JCKP_SIG_LEN);
    return 0;
}

/* Whether cp verifies with one of the retired signing keys (journal_options_t). */
static bool
signed_by_retired(const journal_t *j, const journal_checkpoint_rec_t *cp)
{
    uint8_t msg[PT_JCKP_MSG_LEN];
    size_t mlen = journal_checkpoint_message(cp, msg);
    for (size_t i = 0; i < j->n_prev_pks; i++)
        if (crypto_sign_verify_detached(cp->sig, msg, mlen, j->prev_pks[i]) == 0)
            return true;
    return false;
}

/* A read-write open with the signing key: the last checkpoint must be ours (or signed
 * by a retired key, after a rotation) and match
 * its record, and the records after it must chain from it and be at most max_unsigned:
 * the broker does not resume a journal whose checkpoints were deleted or whose tail
 * was rewritten (journal_verify says more). */
int
jint_check_signed_tail(journal_t *j, MDB_txn *txn, const journal_meta_t *m, pt_error_t *err)
{
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    uint64_t bad;
    const journal_signed_head_t *h = &j->signed_head;
    if (h->seq > m->last_seq)
        return pt_error_set(err, PT_ECORRUPT, j->dir,
                            "checkpoint %llu is after the last record %llu (records cut?)",
                            (unsigned long long)h->seq, (unsigned long long)m->last_seq);
    if (j->max_unsigned == UINT64_MAX || m->last_seq == 0)
        return 0;
    if (m->last_seq - h->seq > j->max_unsigned)
        return pt_error_set(err, PT_ECORRUPT, j->dir,
                            "%llu records after the last signed checkpoint (%llu), more than %llu: "
                            "checkpoints deleted or the tail rewritten? Run ptibusctl "
                            "journal-verify (docs/journal.md)",
                            (unsigned long long)(m->last_seq - h->seq), (unsigned long long)h->seq,
                            (unsigned long long)j->max_unsigned);
    if (h->seq == 0)
        return 0;
    crypto_sign_ed25519_sk_to_pk(pk, j->sign_sk);
    MDB_val k, v;
    uint8_t key[SEQ_KEY_LEN];
    bytes_be64_put(key, h->seq);
    k = (MDB_val){SEQ_KEY_LEN, key};
    journal_checkpoint_rec_t cp;
    int rc = mdb_get(txn, j->dbi[JDB_CKPT], &k, &v);
    if (rc != 0)
        return lmdbx_fail(err, rc, j->dir, "reading the last checkpoint");
    rc = jint_decode_checkpoint(&k, &v, &cp, &bad, err);
    if (rc == 0 && !signed_by_retired(j, &cp))
        rc = jint_check_checkpoint(j, txn, &cp, pk, &bad, err);
    else if (rc == 0) /* the last one before a rotation of the signing key */
        rc = jint_check_checkpoint(j, txn, &cp, NULL, &bad, err);
    if (rc == 0)
        rc = jint_verify_range(j, txn, h->seq, m->last_seq, &bad, err);
    return rc;
}
