/* Unit tests of broker/journal/journal_segment.c: segment expiry moves the oldest
 * records out behind a signed anchor; the live journal verifies from it (chain,
 * checkpoints, state databases) and resumes; nothing at or after a queued or
 * dead-lettered message moves; tampering after the anchor, with the anchor, or
 * cutting more records behind a moved anchor is caught. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lmdb.h>
#include <sodium.h>

#include "journal.h"
#include "journal_record.h"
#include "testutil.h"

static const uint8_t hmac_key[32] = "0123456789abcdef0123456789abcdef";
static const char nir[] = "1850578006048";
#define T0 INT64_C(1700000000000)
#define PER_COMMIT 10

typedef struct fixture {
    char *dir;
    char jdir[4200];
    journal_t *j;
    journal_options_t opts;
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
} fixture_t;

static int
setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_true(sodium_init() >= 0);
    f->dir = tu_tmpdir("segment");
    snprintf(f->jdir, sizeof f->jdir, "%s/j", f->dir);
    crypto_sign_keypair(f->pk, f->sk);
    f->opts = (journal_options_t){.dir = f->jdir, .hmac_key = hmac_key, .sign_sk = f->sk};
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture_t *f = *state;
    journal_close(&f->j);
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

static void
fx_open(fixture_t *f, bool read_only)
{
    pt_error_t err;
    f->opts.read_only = read_only;
    if (journal_open(&f->opts, &f->j, &err) != 0)
        fail_msg("journal_open: %s", err.msg);
    f->opts.read_only = false;
}

/* n messages from caf to msa, PER_COMMIT per commit, message i at T0 + i s: RECEIVED
 * then ACKNOWLEDGED (queue entry removed), except message `queued` (left queued). */
static void
build(fixture_t *f, int n, int queued)
{
    static const char *const rcpt[] = {"msa", NULL};
    pt_error_t err;
    for (int i = 0; i < n;) {
        journal_txn_t *t;
        assert_int_equal(journal_begin(f->j, &t, &err), 0);
        for (int k = 0; k < PER_COMMIT && i < n; k++, i++) {
            char id[32], payload[64];
            uint64_t s, x;
            snprintf(id, sizeof id, "m-%04d", i);
            snprintf(payload, sizeof payload, "payload %d", i);
            journal_record_t r = {.kind = PT_REC_RECEIVED,
                                  .time_ms = T0 + 1000 * i,
                                  .partner = "caf",
                                  .msg_type = "referral",
                                  .message_id = id,
                                  .payload = (const uint8_t *)payload,
                                  .payload_len = strlen(payload),
                                  .person_nir = nir,
                                  .recipients = rcpt};
            assert_int_equal(journal_append(t, &r, &s, &err), 0);
            if (i == queued)
                continue;
            journal_record_t a = {.kind = PT_REC_ACKNOWLEDGED,
                                  .time_ms = T0 + 1000 * i,
                                  .partner = "msa",
                                  .msg_type = "referral",
                                  .message_id = id,
                                  .ref_seq = s};
            assert_int_equal(journal_append(t, &a, &x, &err), 0);
            assert_int_equal(journal_queue_remove(t, "msa", s, &err), 0);
        }
        assert_int_equal(journal_commit(&t, &err), 0);
    }
}

static void
expire(fixture_t *f, int64_t cutoff, size_t max, journal_segment_report_t *rep)
{
    journal_txn_t *t;
    pt_error_t err;
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    if (journal_segment_expire(t, cutoff, max, rep, &err) != 0)
        fail_msg("segment expire: %s", err.msg);
    assert_int_equal(journal_commit(&t, &err), 0);
}

static int
verify(fixture_t *f, journal_verify_report_t *rep, uint64_t *bad, pt_error_t *err)
{
    journal_verify_options_t o = {.pk = f->pk, .check_state = true};
    return journal_verify_ex(f->j, &o, rep, bad, err);
}

static void
assert_verifies(fixture_t *f)
{
    journal_verify_report_t rep;
    uint64_t bad;
    pt_error_t err;
    if (verify(f, &rep, &bad, &err) != 0)
        fail_msg("verify: %s", err.msg);
    assert_true(rep.state_checked);
}

static void
assert_bad(fixture_t *f, const char *want)
{
    journal_verify_report_t rep;
    uint64_t bad;
    pt_error_t err;
    assert_int_equal(verify(f, &rep, &bad, &err), PT_ECORRUPT);
    if (strstr(err.msg, want) == NULL)
        fail_msg("verify said \"%s\", expected \"%s\"", err.msg, want);
}

static void
test_moved_out_behind_anchor(void **state)
{
    fixture_t *f = *state;
    fx_open(f, false);
    build(f, 100, -1); /* 200 records, a checkpoint every 20 */
    journal_segment_report_t rep;
    expire(f, T0 + 1000 * 45, 1000, &rep); /* messages 0..45 are older */
    /* Records 1..91 are due; the last checkpoint among them is at 80. */
    assert_int_equal(rep.first, 1);
    assert_int_equal(rep.anchor, 80);
    assert_int_equal(rep.moved, 80);
    assert_int_equal(journal_first_seq(f->j), 81);
    journal_view_t v;
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0;
    uint64_t *seqs = NULL;
    pt_error_t err;
    assert_int_equal(journal_get(f->j, 80, &v, &buf, &cap, &err), PT_ENOTFOUND);
    assert_int_equal(journal_get(f->j, 81, &v, &buf, &cap, &err), 0);
    assert_int_equal(journal_get(f->j, 201, &v, &buf, &cap, &err), 0); /* journaled itself */
    assert_int_equal(v.kind, PT_REC_ADMIN);
    assert_non_null(strstr(v.reason, "records 1..80 moved out"));
    free(buf);
    assert_int_equal(journal_find_person(f->j, nir, &seqs, &n, &err), 0);
    assert_int_equal(n, 60); /* messages 40..99 */
    assert_true(seqs[0] >= 81);
    free(seqs);
    assert_verifies(f);
    journal_verify_report_t vr;
    uint64_t bad;
    assert_int_equal(verify(f, &vr, &bad, &err), 0);
    assert_int_equal(vr.anchor_seq, 80);
    assert_int_equal(vr.first, 81);
    journal_close(&f->j);
    fx_open(f, false); /* the broker resumes it and goes on */
    build(f, 5, -1);
    assert_verifies(f);
    /* A second step goes on from the anchor. */
    expire(f, T0 + 1000 * 60, 1000, &rep);
    assert_int_equal(rep.first, 81);
    assert_verifies(f);
}

static void
test_never_past_queued(void **state)
{
    fixture_t *f = *state;
    fx_open(f, false);
    build(f, 100, 30); /* message 30 (seq 61) stays queued */
    journal_segment_report_t rep;
    expire(f, T0 + 1000 * 1000, 1000, &rep); /* everything is older */
    assert_int_equal(rep.pending_seq, 61);
    assert_int_equal(rep.anchor, 60);
    assert_int_equal(journal_first_seq(f->j), 61);
    expire(f, T0 + 1000 * 1000, 1000, &rep);
    assert_int_equal(rep.moved, 0);
    assert_verifies(f);
}

/* Bounded steps end at a checkpoint each, and go on. */
static void
test_bounded_steps(void **state)
{
    fixture_t *f = *state;
    fx_open(f, false);
    build(f, 100, -1);
    journal_segment_report_t rep;
    expire(f, T0 + 1000 * 1000, 50, &rep);
    assert_int_equal(rep.anchor, 40);
    assert_true(rep.more);
    expire(f, T0 + 1000 * 1000, 5, &rep); /* no checkpoint among 5: up to the next one */
    assert_int_equal(rep.anchor, 60);
    assert_verifies(f);
}

/* Raw LMDB, as an attacker with the files. */
static void
raw_edit(fixture_t *f, const char *db, const void *key, size_t klen, void (*edit)(MDB_val *v),
         bool del)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, f->jdir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
    MDB_val k = {klen, (void *)key}, v;
    if (del) {
        assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
    } else {
        assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
        uint8_t *copy = malloc(v.mv_size);
        memcpy(copy, v.mv_data, v.mv_size);
        v.mv_data = copy;
        edit(&v);
        assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
        free(copy);
    }
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void
flip_sender(MDB_val *v)
{
    ((uint8_t *)v->mv_data)[PT_JREC_HEADER_LEN + 4] ^= 0x20;
}

static void
flip_anchor_hash(MDB_val *v)
{
    ((uint8_t *)v->mv_data)[12] ^= 0x01;
}

/* The anchor moved to checkpoint 100: its fields copied from it (all but the
 * signature, which the attacker cannot make). */
static uint8_t ckpt100[PT_JCKP_LEN];

static void
copy_ckpt100(MDB_val *v)
{
    memcpy(ckpt100, v->mv_data, PT_JCKP_LEN);
}

static void
move_anchor(MDB_val *v)
{
    memcpy((uint8_t *)v->mv_data + 2, ckpt100 + 2, PT_JCKP_LEN - 2 - PT_JCKP_SIG_LEN);
}

static void
be64(uint8_t k[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        k[i] = (uint8_t)(v >> (56 - 8 * i));
}

static void
build_expired(fixture_t *f)
{
    fx_open(f, false);
    build(f, 100, -1);
    journal_segment_report_t rep;
    expire(f, T0 + 1000 * 45, 1000, &rep);
    assert_int_equal(rep.anchor, 80);
    journal_close(&f->j);
}

static void
test_tamper_after_anchor(void **state)
{
    fixture_t *f = *state;
    uint8_t key[8];
    build_expired(f);
    be64(key, 81);
    raw_edit(f, "records", key, 8, flip_sender, false);
    fx_open(f, true);
    assert_bad(f, "record 81: chain hash mismatch");
}

static void
test_anchor_altered(void **state)
{
    fixture_t *f = *state;
    build_expired(f);
    raw_edit(f, "meta", "anchor", 6, flip_anchor_hash, false);
    fx_open(f, true);
    assert_bad(f, "anchor at 80: bad signature");
}

/* More records cut behind an anchor moved to a later checkpoint: the anchor's
 * signature names the old one. */
static void
test_anchor_moved_records_cut(void **state)
{
    fixture_t *f = *state;
    uint8_t key[8];
    build_expired(f);
    for (uint64_t s = 81; s <= 100; s++) {
        be64(key, s);
        raw_edit(f, "records", key, 8, NULL, true);
    }
    be64(key, 100);
    raw_edit(f, "checkpoints", key, 8, copy_ckpt100, false);
    be64(key, 80);
    raw_edit(f, "checkpoints", key, 8, NULL, true);
    raw_edit(f, "meta", "anchor", 6, move_anchor, false);
    fx_open(f, true);
    assert_bad(f, "anchor at 100: bad signature");
}

/* The anchor's checkpoint deleted. */
static void
test_anchor_checkpoint_deleted(void **state)
{
    fixture_t *f = *state;
    uint8_t key[8];
    build_expired(f);
    be64(key, 80);
    raw_edit(f, "checkpoints", key, 8, NULL, true);
    fx_open(f, true);
    assert_bad(f, "anchor at 80: its checkpoint is missing");
}

/* Copies the raw value of record seq (caller frees). */
static uint8_t *
raw_copy(fixture_t *f, uint64_t seq, size_t *len)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    uint8_t key[8];
    be64(key, seq);
    MDB_val k = {8, key}, v;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, f->jdir, MDB_RDONLY, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "records", 0, &dbi), 0);
    assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
    uint8_t *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    *len = v.mv_size;
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return copy;
}

static uint8_t *restore_bytes;
static size_t restore_len;

static void
raw_put_value(fixture_t *f, const char *db, const void *key, size_t klen, const void *data,
              size_t len)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {klen, (void *)key}, v = {len, (void *)data};
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, f->jdir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* A record moved out put back (say, from a backup): named. */
static void
test_record_before_anchor(void **state)
{
    fixture_t *f = *state;
    uint8_t key[8];
    fx_open(f, false);
    build(f, 100, -1);
    journal_close(&f->j);
    restore_bytes = raw_copy(f, 5, &restore_len);
    fx_open(f, false);
    journal_segment_report_t rep;
    expire(f, T0 + 1000 * 45, 1000, &rep);
    assert_verifies(f);
    journal_close(&f->j);
    be64(key, 5);
    raw_put_value(f, "records", key, 8, restore_bytes, restore_len);
    free(restore_bytes);
    fx_open(f, true);
    assert_bad(f, "record 5: before the signed anchor at 80 (restored or added?)");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_moved_out_behind_anchor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_never_past_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounded_steps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_after_anchor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_anchor_altered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_anchor_moved_records_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_anchor_checkpoint_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_before_anchor, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
