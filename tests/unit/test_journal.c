/* Unit tests of broker/journal: round trips, group commit, reopen, permissions,
 * tamper detection on the real LMDB files, checkpoints, a full map, indexes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <lmdb.h>
#include <sodium.h>

#include "journal.h"
#include "journal_record.h"
#include "testutil.h"

static const uint8_t hmac_key[32] = "0123456789abcdef0123456789abcdef";
static const char nir_a[] = "1850578006048";
static const char nir_b[] = "2940375123456";

typedef struct fixture {
    char *dir;
    journal_t *j;
    journal_options_t opts;
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
} fixture_t;

static void
fx_open(fixture_t *f)
{
    pt_error_t err;
    int rc = journal_open(&f->opts, &f->j, &err);
    if (rc != 0)
        fail_msg("journal_open: %s", err.msg);
}

/* A read-write open with the signing key (the broker's) must refuse, saying want. */
static void
fx_open_refused(fixture_t *f, const char *want)
{
    pt_error_t err;
    assert_int_equal(journal_open(&f->opts, &f->j, &err), PT_ECORRUPT);
    if (strstr(err.msg, want) == NULL)
        fail_msg("journal_open said \"%s\", expected \"%s\"", err.msg, want);
}

/* Read-only, as ptibusctl opens a journal to inspect it. */
static void
fx_open_ro(fixture_t *f)
{
    f->opts.read_only = true;
    fx_open(f);
    f->opts.read_only = false;
}

static void
fx_reopen(fixture_t *f)
{
    journal_close(&f->j);
    assert_null(f->j);
    fx_open(f);
}

static int
setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_int_equal(sodium_init() >= 0, 1);
    f->dir = tu_tmpdir("journal");
    crypto_sign_keypair(f->pk, f->sk);
    char *jdir = malloc(strlen(f->dir) + 8);
    sprintf(jdir, "%s/j", f->dir);
    f->opts = (journal_options_t){.dir = jdir, .hmac_key = hmac_key, .sign_sk = f->sk};
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture_t *f = *state;
    journal_close(&f->j);
    free((char *)f->opts.dir);
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

static journal_record_t
rec_received(const char *partner, const char *msgid, int64_t time_ms, const char *payload)
{
    return (journal_record_t){.kind = PT_REC_RECEIVED,
                              .time_ms = time_ms,
                              .partner = partner,
                              .msg_type = "orientation",
                              .message_id = msgid,
                              .correlation_id = "",
                              .payload = (const uint8_t *)payload,
                              .payload_len = payload ? strlen(payload) : 0};
}

static uint64_t
append1(journal_txn_t *t, const journal_record_t *r)
{
    uint64_t seq = 0;
    pt_error_t err;
    int rc = journal_append(t, r, &seq, &err);
    if (rc != 0)
        fail_msg("journal_append: %s", err.msg);
    return seq;
}

static void
commit(journal_txn_t **t)
{
    pt_error_t err;
    int rc = journal_commit(t, &err);
    if (rc != 0)
        fail_msg("journal_commit: %s", err.msg);
    assert_null(*t);
}

/* Appends n RECEIVED records with distinct ids and payloads "PAYLOAD-MARK-%04d". */
static void
append_n(fixture_t *f, int n)
{
    journal_txn_t *t;
    pt_error_t err;
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    for (int i = 0; i < n; i++) {
        char id[32], payload[64];
        uint64_t s = journal_last_seq(f->j) + (uint64_t)i + 1;
        snprintf(id, sizeof id, "msg-%llu", (unsigned long long)s);
        snprintf(payload, sizeof payload, "PAYLOAD-MARK-%04llu", (unsigned long long)s);
        journal_record_t r = rec_received("caf", id, 1000 + (int64_t)s, payload);
        assert_int_equal(append1(t, &r), s);
    }
    commit(&t);
}

static int
verify(fixture_t *f, const uint8_t *pk, uint64_t *bad, pt_error_t *err)
{
    return journal_verify(f->j, 0, 0, pk, bad, err);
}

static void
assert_intact(fixture_t *f)
{
    uint64_t bad;
    pt_error_t err;
    int rc = verify(f, f->pk, &bad, &err);
    if (rc != 0)
        fail_msg("verify: %s", err.msg);
}

static void
assert_bad(fixture_t *f, const uint8_t *pk, uint64_t want_seq, const char *want_msg)
{
    uint64_t bad = 0;
    pt_error_t err;
    assert_int_equal(verify(f, pk, &bad, &err), PT_ECORRUPT);
    assert_int_equal(bad, want_seq);
    if (strstr(err.msg, want_msg) == NULL)
        fail_msg("verify said \"%s\", expected \"%s\"", err.msg, want_msg);
}

/* ---- direct LMDB access, the way an attacker with the files would edit them ---- */

typedef struct raw {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
} raw_t;

static void
raw_open(raw_t *r, const char *dir, const char *db)
{
    assert_int_equal(mdb_env_create(&r->env), 0);
    assert_int_equal(mdb_env_set_maxdbs(r->env, 16), 0);
    assert_int_equal(mdb_env_open(r->env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(r->env, NULL, 0, &r->txn), 0);
    assert_int_equal(mdb_dbi_open(r->txn, db, 0, &r->dbi), 0);
}

static void
raw_close(raw_t *r)
{
    assert_int_equal(mdb_txn_commit(r->txn), 0);
    mdb_env_close(r->env);
}

static void
be64(uint8_t k[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        k[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* Copies record seq's bytes into a malloc'd buffer. */
static uint8_t *
raw_get(raw_t *r, uint64_t seq, size_t *len)
{
    uint8_t key[8];
    be64(key, seq);
    MDB_val k = {8, key}, v;
    assert_int_equal(mdb_get(r->txn, r->dbi, &k, &v), 0);
    uint8_t *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    *len = v.mv_size;
    return copy;
}

static void
raw_put(raw_t *r, uint64_t seq, const uint8_t *data, size_t len)
{
    uint8_t key[8];
    be64(key, seq);
    MDB_val k = {8, key}, v = {len, (void *)data};
    assert_int_equal(mdb_put(r->txn, r->dbi, &k, &v, 0), 0);
}

static void
raw_del(raw_t *r, uint64_t seq)
{
    uint8_t key[8];
    be64(key, seq);
    MDB_val k = {8, key};
    assert_int_equal(mdb_del(r->txn, r->dbi, &k, NULL), 0);
}

static bool
file_contains(const char *dir, const void *needle, size_t n)
{
    char path[4096];
    uint8_t *buf;
    size_t len;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    assert_int_equal(tu_read_file(path, &buf, &len), 0);
    bool found = memmem(buf, len, needle, n) != NULL;
    free(buf);
    return found;
}

/* ---- tests ---- */

static void
test_roundtrip_every_kind(void **state)
{
    fixture_t *f = *state;
    fx_open(f);
    const char *rcpts[] = {"pe", "dept", NULL};
    const char *payload = "envelope-bytes";
    journal_txn_t *t;
    pt_error_t err;
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    for (int k = PT_REC_RECEIVED; k <= PT_REC_ADMIN; k++) {
        journal_record_t r = {.kind = (journal_kind_t)k,
                              .time_ms = 1700000000000 + k,
                              .partner = "caf",
                              .msg_type = "sanction",
                              .message_id = "m-1",
                              .correlation_id = "c-9",
                              .ref_seq = (uint64_t)k - 1,
                              .attempt = (uint32_t)k * 3,
                              .reason = k % 2 ? NULL : "why not",
                              .payload = (const uint8_t *)payload,
                              .payload_len = strlen(payload),
                              .recipients = rcpts};
        assert_int_equal(append1(t, &r), (uint64_t)k);
    }
    commit(&t);
    assert_int_equal(journal_last_seq(f->j), PT_REC_ADMIN);
    uint8_t *buf = NULL, want_hash[32];
    size_t cap = 0;
    crypto_generichash(want_hash, 32, (const uint8_t *)payload, strlen(payload), NULL, 0);
    for (int k = PT_REC_RECEIVED; k <= PT_REC_ADMIN; k++) {
        journal_view_t v;
        assert_int_equal(journal_get(f->j, (uint64_t)k, &v, &buf, &cap, &err), 0);
        assert_int_equal(v.format, PT_JOURNAL_FORMAT);
        assert_int_equal(v.kind, k);
        assert_int_equal(v.seq, k);
        assert_int_equal(v.time_ms, 1700000000000 + k);
        assert_string_equal(v.partner, "caf");
        assert_string_equal(v.msg_type, "sanction");
        assert_string_equal(v.message_id, "m-1");
        assert_string_equal(v.correlation_id, "c-9");
        assert_int_equal(v.ref_seq, k - 1);
        assert_int_equal(v.attempt, k * 3);
        if (k % 2)
            assert_null(v.reason);
        else
            assert_string_equal(v.reason, "why not");
        assert_int_equal(v.n_recipients, 2);
        assert_string_equal(v.recipients[1], "dept");
        assert_memory_equal(v.payload_hash, want_hash, 32);
        if (k == PT_REC_REJECTED) {
            assert_null(v.payload); /* only the hash of refused bytes is kept */
            assert_int_equal(v.payload_len, 0);
        } else {
            assert_int_equal(v.payload_len, strlen(payload));
            assert_memory_equal(v.payload, payload, v.payload_len);
        }
    }
    journal_view_t v;
    assert_int_equal(journal_get(f->j, 99, &v, &buf, &cap, &err), PT_ENOTFOUND);
    free(buf);
    assert_string_equal(journal_kind_name(PT_REC_DEAD_LETTERED), "DEAD_LETTERED");
    assert_string_equal(journal_kind_name((journal_kind_t)42), "UNKNOWN");
    assert_intact(f);
}

static void
test_bad_input_leaves_batch_usable(void **state)
{
    fixture_t *f = *state;
    fx_open(f);
    journal_txn_t *t;
    pt_error_t err;
    uint64_t seq;
    char longid[600];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    journal_txn_t *t2;
    assert_int_equal(journal_begin(f->j, &t2, &err), -EBUSY);
    journal_record_t r = rec_received("caf", longid, 0, "p");
    assert_int_equal(journal_append(t, &r, &seq, &err), PT_ETOOLARGE);
    r = rec_received("caf", "ok", 0, "p");
    r.kind = (journal_kind_t)77;
    assert_int_equal(journal_append(t, &r, &seq, &err), PT_EINVALID);
    r.kind = PT_REC_RECEIVED;
    assert_int_equal(append1(t, &r), 1);
    commit(&t);
    assert_intact(f);
}

static void
test_dedup_sees_batch(void **state)
{
    fixture_t *f = *state;
    fx_open(f);
    journal_txn_t *t;
    pt_error_t err;
    uint64_t seq;
    uint8_t hash[32], want[32];
    crypto_generichash(want, 32, (const uint8_t *)"body", 4, NULL, 0);
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    assert_int_equal(journal_dedup_find(t, "caf", "m-1", &seq, hash), PT_ENOTFOUND);
    journal_record_t r = rec_received("caf", "m-1", 0, "body");
    assert_int_equal(append1(t, &r), 1);
    assert_int_equal(journal_dedup_find(t, "caf", "m-1", &seq, hash), 0);
    assert_int_equal(seq, 1);
    assert_memory_equal(hash, want, 32);
    assert_int_equal(journal_dedup_find(t, "pe", "m-1", &seq, hash), PT_ENOTFOUND);
    r = rec_received("caf", "m-1", 0, "other body"); /* the first RECEIVED keeps the entry */
    assert_int_equal(append1(t, &r), 2);
    commit(&t);
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    assert_int_equal(journal_dedup_find(t, "caf", "m-1", &seq, hash), 0);
    assert_int_equal(seq, 1);
    assert_memory_equal(hash, want, 32);
    journal_abort(&t);
    assert_null(t);
    journal_abort(NULL);
}

static void
test_abort_keeps_nothing(void **state)
{
    fixture_t *f = *state;
    fx_open(f);
    append_n(f, 2);
    journal_txn_t *t;
    pt_error_t err;
    uint64_t seq, *seqs;
    size_t n;
    uint8_t hash[32], head_before[32], head_after[32];
    journal_head(f->j, &seq, head_before);
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    journal_record_t r = rec_received("caf", "gone", 0, "x");
    r.person_nir = nir_a;
    assert_int_equal(append1(t, &r), 3);
    journal_abort(&t);
    journal_head(f->j, &seq, head_after);
    assert_int_equal(seq, 2);
    assert_memory_equal(head_before, head_after, 32);
    uint8_t *buf = NULL;
    size_t cap = 0;
    journal_view_t v;
    assert_int_equal(journal_get(f->j, 3, &v, &buf, &cap, &err), PT_ENOTFOUND);
    free(buf);
    assert_int_equal(journal_find_message(f->j, "gone", &seqs, &n, &err), 0);
    assert_int_equal(n, 0);
    free(seqs);
    assert_int_equal(journal_find_person(f->j, nir_a, &seqs, &n, &err), 0);
    assert_int_equal(n, 0);
    free(seqs);
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    assert_int_equal(journal_dedup_find(t, "caf", "gone", &seq, hash), PT_ENOTFOUND);
    assert_int_equal(append1(t, &r), 3); /* the sequence is reused, the chain continues */
    commit(&t);
    assert_intact(f);
}

static void
test_reopen_resumes(void **state)
{
    fixture_t *f = *state;
    fx_open(f);
    append_n(f, 10);
    append_n(f, 5);
    uint64_t seq, seq2;
    uint8_t head[32], head2[32];
    journal_head(f->j, &seq, head);
    assert_int_equal(seq, 15);
    fx_reopen(f);
    journal_head(f->j, &seq2, head2);
    assert_int_equal(seq2, 15);
    assert_memory_equal(head, head2, 32);
    append_n(f, 1);
    assert_int_equal(journal_last_seq(f->j), 16);
    assert_intact(f);
}

static void
test_permissions(void **state)
{
    fixture_t *f = *state;
    mode_t old = umask(0);
    fx_open(f);
    umask(old);
    struct stat st;
    char path[4096];
    assert_int_equal(stat(f->opts.dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    const char *files[] = {"data.mdb", "lock.mdb"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", f->opts.dir, files[i]);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
    }
}

static void
test_chain_verifies(void **state)
{
    fixture_t *f = *state;
    fx_open(f);
    uint64_t bad;
    pt_error_t err;
    assert_int_equal(verify(f, NULL, &bad, &err), 0); /* empty */
    for (int i = 0; i < 10; i++)
        append_n(f, 10);
    assert_intact(f);
    assert_int_equal(journal_verify(f->j, 40, 60, NULL, &bad, &err), 0);
    assert_int_equal(journal_verify(f->j, 2, 2, NULL, &bad, &err), 0);
    assert_int_equal(journal_verify(f->j, 100, 500, NULL, &bad, &err), 0);
}

/* Flips one byte of record 42's payload in data.mdb; format 1 chains the bytes, format
 * 2 the payload's hash, so want says which check names it. */
static void
flipped_payload(fixture_t *f, const char *want)
{
    fx_open(f);
    append_n(f, 100);
    journal_close(&f->j);
    char path[4096];
    uint8_t *buf;
    size_t len;
    snprintf(path, sizeof path, "%s/data.mdb", f->opts.dir);
    assert_int_equal(tu_read_file(path, &buf, &len), 0);
    int flipped = 0;
    for (uint8_t *p = buf; (p = memmem(p, len - (size_t)(p - buf), "PAYLOAD-MARK-0042", 17));
         p++, flipped++)
        p[16] ^= 0x01;
    assert_true(flipped >= 1);
    assert_int_equal(tu_write_file(path, buf, len), 0);
    free(buf);
    fx_open(f); /* the tail (last 16) is intact: open succeeds */
    assert_bad(f, NULL, 42, want);
    uint64_t bad;
    pt_error_t err;
    assert_int_equal(journal_verify(f->j, 50, 0, NULL, &bad, &err), 0);
    assert_int_equal(journal_verify(f->j, 43, 0, NULL, &bad, &err), PT_ECORRUPT);
    assert_int_equal(bad, 42); /* the anchor before the range is checked too */
}

static void
test_flipped_byte_on_disk(void **state)
{
    flipped_payload(*state, "record 42: payload differs from its hash (edited?)");
}

static void
test_flipped_byte_on_disk_v1(void **state)
{
    fixture_t *f = *state;
    f->opts.write_format = PT_JREC_FORMAT_V1;
    flipped_payload(f, "record 42: chain hash mismatch");
}

static void
test_edited_record_detected(void **state)
{
    fixture_t *f = *state;
    fx_open(f);
    append_n(f, 50);
    journal_close(&f->j);
    raw_t r;
    size_t len;
    raw_open(&r, f->opts.dir, "records");
    uint8_t *rec = raw_get(&r, 20, &len);
    rec[PT_JREC_HEADER_LEN + 4] ^= 0x20; /* first byte of the partner: "caf" -> "Caf" */
    raw_put(&r, 20, rec, len);
    raw_close(&r);
    free(rec);
    fx_open(f);
    assert_bad(f, NULL, 20, "record 20: chain hash mismatch (edited or reordered)");
}

static void
test_deleted_record_detected(void **state)
{
    fixture_t *f = *state;
    fx_open(f);
    append_n(f, 100);
    journal_close(&f->j);
    raw_t r;
    raw_open(&r, f->opts.dir, "records");
    raw_del(&r, 17);
    raw_close(&r);
    fx_open(f);
    assert_bad(f, NULL, 17, "record 17: missing (deleted?)");
    journal_close(&f->j);
    raw_open(&r, f->opts.dir, "records"); /* deleting the tail: meta disagrees */
    raw_del(&r, 100);
    raw_close(&r);
    pt_error_t err;
    assert_int_equal(journal_open(&f->opts, &f->j, &err), PT_ECORRUPT);
    assert_null(f->j);
    assert_non_null(strstr(err.msg, "records end at 99"));
}

static void
test_reordered_records_detected(void **state)
{
    fixture_t *f = *state;
    fx_open(f);
    append_n(f, 60);
    journal_close(&f->j);
    raw_t r;
    size_t l30, l31;
    raw_open(&r, f->opts.dir, "records");
    uint8_t *a = raw_get(&r, 30, &l30), *b = raw_get(&r, 31, &l31);
    raw_put(&r, 30, b, l31);
    raw_put(&r, 31, a, l30);
    raw_close(&r);
    fx_open(f);
    assert_bad(f, NULL, 30, "record 30: holds seq 31");
    journal_close(&f->j);
    /* Also swap the seq fields so each record claims its new place: the chain breaks. */
    raw_open(&r, f->opts.dir, "records");
    b[4] = 30; /* seq is little-endian at offset 4 */
    a[4] = 31;
    raw_put(&r, 30, b, l31);
    raw_put(&r, 31, a, l30);
    raw_close(&r);
    free(a);
    free(b);
    fx_open(f);
    assert_bad(f, NULL, 30, "record 30: chain hash mismatch");
}

static void
test_checkpoints(void **state)
{
    fixture_t *f = *state;
    fx_open(f);
    pt_error_t err;
    assert_int_equal(journal_checkpoint(f->j, &err), 0); /* empty: nothing to sign */
    append_n(f, 10);
    assert_int_equal(journal_checkpoint(f->j, &err), 0);
    assert_int_equal(journal_checkpoint(f->j, &err), 0); /* unchanged head: no-op */
    append_n(f, 10);
    assert_int_equal(journal_checkpoint(f->j, &err), 0);
    assert_int_equal(journal_last_seq(f->j), 20);
    assert_intact(f);
    uint8_t other_pk[32], other_sk[64];
    crypto_sign_keypair(other_pk, other_sk);
    assert_bad(f, other_pk, 10, "checkpoint 10: bad signature");
    journal_close(&f->j);
    raw_t r;
    size_t len;
    raw_open(&r, f->opts.dir, "checkpoints");
    uint8_t *cp = raw_get(&r, 20, &len);
    assert_int_equal(len, PT_JCKP_LEN);
    cp[2 + 2 + 8 + 32] ^= 1; /* the time field */
    raw_put(&r, 20, cp, len);
    raw_close(&r);
    free(cp);
    fx_open_refused(f, "checkpoint 20: bad signature (forged or altered)");
    fx_open_ro(f);
    assert_bad(f, f->pk, 20, "checkpoint 20: bad signature (forged or altered)");
    uint64_t bad;
    assert_int_equal(journal_verify(f->j, 1, 10, f->pk, &bad, &err), 0);
    /* Records 11..15 are signed only by checkpoint 20: the walk goes on up to it. */
    assert_int_equal(journal_verify(f->j, 1, 15, f->pk, &bad, &err), PT_ECORRUPT);
    assert_int_equal(bad, 20);
}

/* journal_verify_ex's signed_by: the key of each checkpoint, by seq (up to 64). */
static void
note_signer(void *arg, uint64_t seq, int64_t time_ms, size_t key)
{
    (void)time_ms;
    long *by_seq = arg;
    if (seq < 64)
        by_seq[seq] = (long)key;
}

/* A rotation of the signing key: checkpoints signed by A, then by B after a reopen with
 * A's public key among the retired ones. Both keys verify the journal (saying which
 * signed which); B alone fails at A's first checkpoint; A's public key given as retired
 * does not let a forged last checkpoint through. */
static void
test_signing_key_rotation(void **state)
{
    fixture_t *f = *state;
    uint8_t keys[2][32], sk_b[64];
    memcpy(keys[0], f->pk, 32);
    crypto_sign_keypair(keys[1], sk_b);
    fx_open(f);
    append_n(f, 10);
    journal_close(&f->j);
    f->opts.sign_sk = sk_b;
    fx_open_refused(f, "checkpoint 10: bad signature");
    f->opts.prev_sign_pks = (const uint8_t(*)[32])keys;
    f->opts.n_prev_sign_pks = 1;
    fx_open(f);
    append_n(f, 10);
    long by_seq[64];
    memset(by_seq, -1, sizeof by_seq);
    journal_verify_options_t o = {.keys = (const uint8_t(*)[32])keys,
                                  .n_keys = 2,
                                  .signed_by = note_signer,
                                  .signed_by_arg = by_seq};
    journal_verify_report_t rep;
    uint64_t bad;
    pt_error_t err;
    if (journal_verify_ex(f->j, &o, &rep, &bad, &err) != 0)
        fail_msg("verify with both keys: %s", err.msg);
    assert_int_equal(rep.checkpoints, 2);
    assert_int_equal(by_seq[10], 0);
    assert_int_equal(by_seq[20], 1);
    o.keys = (const uint8_t(*)[32])keys[1];
    o.n_keys = 1;
    assert_int_equal(journal_verify_ex(f->j, &o, &rep, &bad, &err), PT_ECORRUPT);
    assert_int_equal(bad, 10);
    assert_non_null(strstr(err.msg, "checkpoint 10: bad signature"));
    /* A forged last checkpoint verifies with neither key: still refused at open. */
    journal_close(&f->j);
    raw_t r;
    size_t len;
    raw_open(&r, f->opts.dir, "checkpoints");
    uint8_t *cp = raw_get(&r, 20, &len);
    cp[2 + 2 + 8 + 32] ^= 1; /* the time field */
    raw_put(&r, 20, cp, len);
    raw_close(&r);
    free(cp);
    fx_open_refused(f, "checkpoint 20: bad signature");
}

/* An attacker who edits a record and recomputes every later hash (and meta's head)
 * passes the chain check; only the signed checkpoint catches it. */
static void
test_rewritten_chain_caught_by_checkpoint(void **state)
{
    fixture_t *f = *state;
    fx_open(f);
    append_n(f, 20);
    pt_error_t err;
    assert_int_equal(journal_checkpoint(f->j, &err), 0);
    journal_close(&f->j);
    raw_t r;
    uint8_t prev[32];
    raw_open(&r, f->opts.dir, "records");
    size_t len;
    uint8_t *rec = raw_get(&r, 4, &len);
    memcpy(prev, rec + len - 32, 32);
    free(rec);
    for (uint64_t s = 5; s <= 20; s++) {
        rec = raw_get(&r, s, &len);
        if (s == 5)
            rec[PT_JREC_HEADER_LEN + 4] = 'X';
        journal_record_chain(prev, rec, len, rec + len - 32);
        memcpy(prev, rec + len - 32, 32);
        raw_put(&r, s, rec, len);
        free(rec);
    }
    MDB_dbi meta;
    assert_int_equal(mdb_dbi_open(r.txn, "meta", 0, &meta), 0);
    MDB_val k = {4, "head"}, v = {32, prev};
    assert_int_equal(mdb_put(r.txn, meta, &k, &v, 0), 0);
    raw_close(&r);
    fx_open_refused(f, "checkpoint 20: hash differs from the record's");
    fx_open_ro(f);
    assert_bad(f, NULL, 20, "checkpoint 20: hash differs from the record's");
}

/* Stores a format-1 checkpoint of record seq (the layout before linked checkpoints). */
static void
put_v1_checkpoint(fixture_t *f, raw_t *rec, raw_t *ck, uint64_t seq)
{
    size_t len;
    uint8_t *r = raw_get(rec, seq, &len);
    journal_checkpoint_rec_t cp = {
        .format = PT_JCKP_FORMAT_V1, .seq = seq, .time_ms = 1000 + (int64_t)seq};
    memcpy(cp.hash, r + len - 32, 32);
    free(r);
    uint8_t msg[PT_JCKP_MSG_LEN], val[PT_JCKP_LEN_V1];
    size_t mlen = journal_checkpoint_message(&cp, msg);
    assert_int_equal(mlen, PT_JCKP_MSG_LEN_V1);
    assert_memory_equal(msg, "ptibus-journal-checkpoint-v1", PT_JCKP_DOMAIN_LEN);
    crypto_sign_detached(cp.sig, NULL, msg, mlen, f->sk);
    uint8_t *p = val;
    memset(val, 0, sizeof val);
    p[0] = 1;
    for (int i = 0; i < 8; i++) {
        p[4 + i] = (uint8_t)(seq >> (8 * i));
        p[44 + i] = (uint8_t)((uint64_t)cp.time_ms >> (8 * i));
    }
    memcpy(p + 12, cp.hash, 32);
    memcpy(p + 52, cp.sig, 64);
    raw_put(ck, seq, val, sizeof val);
}

/* A journal written before checkpoint format 2 still verifies, its checkpoints counted
 * as old-format; the first format-2 checkpoint links to them, so deleting one shows. */
static void
test_old_format_checkpoints(void **state)
{
    fixture_t *f = *state;
    fx_open(f);
    append_n(f, 10);
    journal_close(&f->j);
    raw_t rec, ck;
    raw_open(&rec, f->opts.dir, "records");
    assert_int_equal(mdb_dbi_open(rec.txn, "checkpoints", 0, &ck.dbi), 0);
    assert_int_equal(mdb_drop(rec.txn, ck.dbi, 0), 0);
    ck.txn = rec.txn;
    put_v1_checkpoint(f, &rec, &ck, 5);
    put_v1_checkpoint(f, &rec, &ck, 10);
    raw_close(&rec);

    fx_open_ro(f);
    journal_verify_options_t o = {.pk = f->pk};
    journal_verify_report_t rep;
    uint64_t bad;
    pt_error_t err;
    assert_int_equal(journal_verify_ex(f->j, &o, &rep, &bad, &err), 0);
    assert_int_equal(rep.checkpoints, 2);
    assert_int_equal(rep.old_checkpoints, 2);
    assert_int_equal(rep.last_ckpt_seq, 10);
    assert_int_equal(rep.last_ckpt_ms, 1010);
    assert_int_equal(rep.unsigned_tail, 0);
    journal_close(&f->j);

    fx_open(f); /* the broker resumes it: its last (old) checkpoint is at the head */
    append_n(f, 5);
    journal_signed_head_t h;
    journal_signed_head(f->j, &h);
    assert_int_equal(h.seq, 15);
    assert_int_equal(h.number, 3);
    assert_int_equal(journal_verify_ex(f->j, &o, &rep, &bad, &err), 0);
    assert_int_equal(rep.checkpoints, 3);
    assert_int_equal(rep.old_checkpoints, 2);
    journal_close(&f->j);

    raw_open(&ck, f->opts.dir, "checkpoints");
    raw_del(&ck, 5);
    raw_close(&ck);
    fx_open_ro(f);
    assert_bad(f, f->pk, 15, "checkpoint 15: signed as checkpoint number 3, but 1 precede it");
}

static void
test_unknown_format_refused(void **state)
{
    fixture_t *f = *state;
    fx_open(f);
    append_n(f, 1);
    journal_close(&f->j);
    raw_t r;
    raw_open(&r, f->opts.dir, "meta");
    uint8_t fmt[4] = {PT_JOURNAL_FORMAT + 1, 0, 0, 0};
    MDB_val k = {6, "format"}, v = {4, fmt};
    assert_int_equal(mdb_put(r.txn, r.dbi, &k, &v, 0), 0);
    raw_close(&r);
    pt_error_t err;
    assert_int_equal(journal_open(&f->opts, &f->j, &err), PT_EVERSION);
}

/* Fills the journal in batches until PT_EJOURNALFULL; returns the committed count. */
static uint64_t
fill_until_full(fixture_t *f)
{
    static uint8_t payload[1024];
    pt_error_t err;
    for (;;) {
        journal_txn_t *t;
        uint64_t seq;
        assert_int_equal(journal_begin(f->j, &t, &err), 0);
        int rc = 0;
        for (int i = 0; i < 16 && rc == 0; i++) {
            journal_record_t r = rec_received("caf", "", 0, NULL);
            r.payload = payload;
            r.payload_len = sizeof payload;
            rc = journal_append(t, &r, &seq, &err);
        }
        if (rc == 0)
            rc = journal_commit(&t, &err);
        else
            journal_abort(&t);
        if (rc != 0) {
            assert_int_equal(rc, PT_EJOURNALFULL);
            return journal_last_seq(f->j);
        }
    }
}

static int
count_visit(const journal_view_t *v, void *arg)
{
    uint64_t *n = arg;
    (*n)++;
    return v->seq == *n ? 0 : -1;
}

static void
test_full_map(void **state)
{
    fixture_t *f = *state;
    f->opts.map_size_initial = 128 * 1024;
    f->opts.map_size_max = 512 * 1024;
    fx_open(f);
    uint64_t committed = fill_until_full(f);
    assert_true(committed > 100);
    size_t used, map, max;
    journal_usage(f->j, &used, &map, &max);
    assert_int_equal(map, 512 * 1024); /* it grew up to the maximum */
    assert_int_equal(max, 512 * 1024);
    assert_true(used <= map);
    uint64_t n = 0;
    pt_error_t err;
    assert_int_equal(journal_scan(f->j, 1, 0, count_visit, &n, &err), 0);
    assert_int_equal(n, committed); /* nothing of the failed batch */
    assert_intact(f);
    assert_int_equal(fill_until_full(f), committed); /* still full */
    f->opts.map_size_max = 4 * 1024 * 1024;
    fx_reopen(f);
    assert_int_equal(journal_last_seq(f->j), committed);
    append_n(f, 50);
    assert_int_equal(journal_last_seq(f->j), committed + 50);
    assert_intact(f);
}

static void
test_person_index(void **state)
{
    fixture_t *f = *state;
    fx_open(f);
    journal_txn_t *t;
    pt_error_t err;
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    const char *people[] = {nir_a, NULL, nir_b, nir_a, NULL, nir_a};
    for (int i = 0; i < 6; i++) {
        char id[16];
        snprintf(id, sizeof id, "p-%d", i);
        journal_record_t r = rec_received("caf", id, 0, "no personal data here");
        r.person_nir = people[i];
        append1(t, &r);
    }
    commit(&t);
    uint64_t *seqs;
    size_t n;
    assert_int_equal(journal_find_person(f->j, nir_a, &seqs, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(seqs[0], 1);
    assert_int_equal(seqs[1], 4);
    assert_int_equal(seqs[2], 6);
    free(seqs);
    assert_int_equal(journal_find_person(f->j, nir_b, &seqs, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(seqs[0], 3);
    free(seqs);
    assert_int_equal(journal_find_person(f->j, "1111111111111", &seqs, &n, &err), 0);
    assert_int_equal(n, 0);
    free(seqs);
    journal_close(&f->j);
    uint8_t mac[32];
    crypto_auth_hmacsha256(mac, (const uint8_t *)nir_a, strlen(nir_a), hmac_key);
    assert_true(file_contains(f->opts.dir, mac, sizeof mac)); /* the check can see the index */
    assert_false(file_contains(f->opts.dir, nir_a, strlen(nir_a)));
    assert_false(file_contains(f->opts.dir, nir_b, strlen(nir_b)));
}

/* journal_find_person's seqs for nir must be exactly want[0..nw). */
static void
assert_person(fixture_t *f, const char *nir, const uint64_t *want, size_t nw)
{
    uint64_t *seqs;
    size_t n;
    pt_error_t err;
    assert_int_equal(journal_find_person(f->j, nir, &seqs, &n, &err), 0);
    assert_int_equal(n, nw);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(seqs[i], want[i]);
    free(seqs);
}

static size_t
merge_person(fixture_t *f, size_t max)
{
    journal_txn_t *t;
    pt_error_t err;
    size_t moved = 0;
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    assert_int_equal(journal_person_merge(t, max, &moved, &err), 0);
    commit(&t);
    return moved;
}

/* Entries land in by_person_new with their record; merges move the oldest into
 * by_person in chunks; queries see both parts, in order, at every stage, also after a
 * reopen and on a journal opened read-only that predates by_person_new. */
static void
test_person_index_merge(void **state)
{
    fixture_t *f = *state;
    fx_open(f);
    journal_txn_t *t;
    pt_error_t err;
    uint64_t a[40], b[40];
    size_t na = 0, nb = 0;
    for (int batch = 0; batch < 4; batch++) {
        assert_int_equal(journal_begin(f->j, &t, &err), 0);
        for (int i = 0; i < 10; i++) {
            char id[16];
            snprintf(id, sizeof id, "m-%d-%d", batch, i);
            journal_record_t r = rec_received("caf", id, 0, "x");
            r.person_nir = i % 3 == 0 ? nir_b : nir_a;
            uint64_t seq = append1(t, &r);
            if (i % 3 == 0)
                b[nb++] = seq;
            else
                a[na++] = seq;
        }
        commit(&t);
    }
    assert_int_equal(journal_person_unmerged(f->j), 40);
    assert_person(f, nir_a, a, na);
    assert_person(f, nir_b, b, nb);
    assert_int_equal(merge_person(f, 7), 7); /* part of a batch */
    assert_int_equal(journal_person_unmerged(f->j), 33);
    assert_person(f, nir_a, a, na);
    assert_person(f, nir_b, b, nb);
    fx_reopen(f);
    assert_int_equal(merge_person(f, 20), 20);
    assert_person(f, nir_a, a, na);
    assert_person(f, nir_b, b, nb);
    assert_int_equal(merge_person(f, 100), 13); /* only what waits */
    assert_int_equal(merge_person(f, 100), 0);
    assert_int_equal(journal_person_unmerged(f->j), 0);
    assert_person(f, nir_a, a, na);
    assert_person(f, nir_b, b, nb);
    assert_person(f, "1111111111111", NULL, 0);
    assert_intact(f);

    /* A journal written before by_person_new: the tools open it read-only. */
    journal_close(&f->j);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_set_mapsize(env, (size_t)64 << 20), 0);
    assert_int_equal(mdb_env_open(env, f->opts.dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "by_person_new", 0, &dbi), 0);
    assert_int_equal(mdb_drop(txn, dbi, 1), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    f->opts.read_only = true;
    fx_reopen(f);
    assert_int_equal(journal_person_unmerged(f->j), 0);
    assert_person(f, nir_a, a, na);
    assert_person(f, nir_b, b, nb);
}

/* A merge in a journal at its maximum size fits or fails cleanly: either way every
 * entry stays findable, and merging completes once the map may grow. */
static void
test_person_merge_full_journal(void **state)
{
    fixture_t *f = *state;
    f->opts.map_size_initial = 256 * 1024;
    f->opts.map_size_max = 256 * 1024;
    fx_open(f);
    static uint8_t payload[1024];
    pt_error_t err;
    uint64_t want[4096];
    size_t nw = 0;
    for (int rc = 0; rc == 0 && nw < 4000;) {
        journal_txn_t *t;
        assert_int_equal(journal_begin(f->j, &t, &err), 0);
        uint64_t seqs[8];
        int k = 0;
        for (; k < 8 && rc == 0; k++) {
            char id[32];
            snprintf(id, sizeof id, "full-%zu-%d", nw, k);
            journal_record_t r = rec_received("caf", id, 0, NULL);
            r.payload = payload;
            r.payload_len = sizeof payload;
            r.person_nir = nir_a;
            rc = journal_append(t, &r, &seqs[k], &err);
        }
        if (rc == 0 && (rc = journal_commit(&t, &err)) == 0) {
            memcpy(want + nw, seqs, sizeof seqs);
            nw += 8;
        } else if (rc != 0) {
            journal_abort(&t);
            assert_int_equal(rc, PT_EJOURNALFULL);
        }
    }
    assert_true(nw > 0 && nw < 4000);
    journal_txn_t *t;
    size_t moved = 0;
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    int rc = journal_person_merge(t, 4096, &moved, &err);
    if (rc == 0)
        rc = journal_commit(&t, &err);
    else
        journal_abort(&t);
    assert_true(rc == 0 || rc == PT_EJOURNALFULL); /* here it fits: LMDB reuses the
                                                      pages the merge frees */
    assert_person(f, nir_a, want, nw);
    f->opts.map_size_max = 4 * 1024 * 1024;
    fx_reopen(f);
    while (journal_person_unmerged(f->j) > 0)
        assert_true(merge_person(f, 1000) > 0);
    assert_person(f, nir_a, want, nw);
    assert_intact(f);
}

static void
append_at(journal_txn_t *t, const char *partner, const char *type, const char *id, int64_t ms)
{
    journal_record_t r = rec_received(partner, id, ms, "x");
    r.msg_type = type;
    append1(t, &r);
}

static void
assert_seqs(uint64_t *seqs, size_t n, const uint64_t *want, size_t wn)
{
    if (n != wn)
        fail_msg("got %zu seqs, want %zu (first want %llu)", n, wn,
                 wn ? (unsigned long long)want[0] : 0ULL);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(seqs[i], want[i]);
    free(seqs);
}

typedef struct visited {
    uint64_t seq[8];
    size_t n;
    size_t stop_after; /* 0: never stop */
} visited_t;

static int
visit_note(const journal_view_t *v, void *arg)
{
    visited_t *w = arg;
    w->seq[w->n++] = v->seq;
    return w->stop_after && w->n == w->stop_after ? 7 : 0;
}

/* The look-ups inside the write transaction see the batch's own appends, committed
 * records alike, in seq order, and stop when asked. */
static void
test_txn_message_lookups(void **state)
{
    fixture_t *f = *state;
    fx_open(f);
    journal_txn_t *t;
    pt_error_t err;
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    append_at(t, "caf", "sanction", "m", 1000); /* 1 */
    append_at(t, "msa", "sanction", "m", 1000); /* 2 */
    commit(&t);
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    append_at(t, "caf", "sanction", "x", 1000);    /* 3 */
    append_at(t, "region", "sanction", "m", 1000); /* 4: this batch's own */
    visited_t w = {0};
    assert_int_equal(journal_txn_visit_message(t, "m", visit_note, &w, &err), 0);
    assert_int_equal(w.n, 3);
    assert_int_equal(w.seq[0], 1);
    assert_int_equal(w.seq[1], 2);
    assert_int_equal(w.seq[2], 4);
    w = (visited_t){.stop_after = 2};
    assert_int_equal(journal_txn_visit_message(t, "m", visit_note, &w, &err), 7);
    assert_int_equal(w.n, 2);
    w = (visited_t){0};
    assert_int_equal(journal_txn_visit_message(t, "none", visit_note, &w, &err), 0);
    assert_int_equal(journal_txn_visit_message(t, "", visit_note, &w, &err), 0);
    assert_int_equal(w.n, 0);
    uint64_t *s;
    size_t n;
    assert_int_equal(journal_txn_find_message(t, "m", &s, &n, &err), 0);
    assert_seqs(s, n, (uint64_t[]){1, 2, 4}, 3);
    journal_view_t v;
    assert_int_equal(journal_txn_view(t, 4, &v, &err), 0);
    assert_string_equal(v.partner, "region");
    assert_string_equal(v.message_id, "m");
    assert_int_equal(journal_txn_view(t, 99, &v, &err), PT_ENOTFOUND);
    journal_abort(&t);
}

static void
test_queries(void **state)
{
    fixture_t *f = *state;
    fx_open(f);
    journal_txn_t *t;
    pt_error_t err;
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    append_at(t, "caf", "sanction", "a", 1000);    /* 1 */
    append_at(t, "caf", "orientation", "b", 2000); /* 2 */
    append_at(t, "cafe", "sanction", "c", 2500);   /* 3: another partner, same prefix */
    append_at(t, "caf", "sanction", "d", 3000);    /* 4 */
    append_at(t, "caf", "", "e", 1500);            /* 5: unknown type */
    append_at(t, "caf", "orientation", "f", -50);  /* 6: before 1970 sorts first */
    journal_record_t d = {.kind = PT_REC_DELIVERED,
                          .partner = "pe",
                          .msg_type = "sanction",
                          .message_id = "a",
                          .ref_seq = 1,
                          .time_ms = 4000};
    append1(t, &d); /* 7 */
    commit(&t);
    uint64_t *s;
    size_t n;
    assert_int_equal(journal_find_message(f->j, "a", &s, &n, &err), 0);
    assert_seqs(s, n, (uint64_t[]){1, 7}, 2);
    assert_int_equal(journal_find_message(f->j, "zz", &s, &n, &err), 0);
    assert_seqs(s, n, NULL, 0);
    assert_int_equal(journal_find_partner(f->j, "caf", NULL, 1000, 3000, &s, &n, &err), 0);
    assert_seqs(s, n, (uint64_t[]){1, 2, 5}, 3);
    assert_int_equal(journal_find_partner(f->j, "caf", NULL, INT64_MIN, INT64_MAX, &s, &n, &err),
                     0);
    assert_seqs(s, n, (uint64_t[]){1, 2, 4, 5, 6}, 5);
    assert_int_equal(journal_find_partner(f->j, "caf", "sanction", 0, 5000, &s, &n, &err), 0);
    assert_seqs(s, n, (uint64_t[]){1, 4}, 2);
    assert_int_equal(journal_find_partner(f->j, "caf", "sanction", 1001, 3000, &s, &n, &err), 0);
    assert_seqs(s, n, NULL, 0);
    assert_int_equal(journal_find_partner(f->j, "caf", "orientation", -100, 0, &s, &n, &err), 0);
    assert_seqs(s, n, (uint64_t[]){6}, 1);
    assert_int_equal(journal_find_partner(f->j, "pe", NULL, 0, 5000, &s, &n, &err), 0);
    assert_seqs(s, n, (uint64_t[]){7}, 1);
    assert_int_equal(journal_find_partner(f->j, "ca", NULL, INT64_MIN, INT64_MAX, &s, &n, &err), 0);
    assert_seqs(s, n, NULL, 0);
}

static int
stop_at_5(const journal_view_t *v, void *arg)
{
    (void)arg;
    return v->seq == 5 ? 42 : 0;
}

static void
test_scan(void **state)
{
    fixture_t *f = *state;
    fx_open(f);
    append_n(f, 20);
    uint64_t n = 0;
    pt_error_t err;
    assert_int_equal(journal_scan(f->j, 0, 0, count_visit, &n, &err), 0);
    assert_int_equal(n, 20);
    n = 9;
    assert_int_equal(journal_scan(f->j, 10, 12, count_visit, &n, &err), 0);
    assert_int_equal(n, 12);
    assert_int_equal(journal_scan(f->j, 1, 0, stop_at_5, NULL, &err), 42);
}

/* Every truncation and every single-byte change of an encoded record decodes
 * without crashing; truncations are always refused. */
/* ---- format 2 and the upgrade of a format-1 journal ---- */

/* 30 records as an older broker wrote them (format 1), then the upgrade at the next
 * read-write open: 30 more in format 2. */
static void
build_mixed(fixture_t *f)
{
    pt_error_t err;
    f->opts.write_format = PT_JREC_FORMAT_V1;
    fx_open(f);
    append_n(f, 30);
    journal_close(&f->j);
    f->opts.write_format = 0;
    fx_open(f);
    append_n(f, 30);
    assert_int_equal(journal_checkpoint(f->j, &err), 0);
    journal_close(&f->j);
}

static void
test_mixed_formats(void **state)
{
    fixture_t *f = *state;
    build_mixed(f);
    fx_open_ro(f);
    journal_view_t v;
    uint8_t *buf = NULL;
    size_t cap = 0;
    pt_error_t err;
    for (uint64_t s = 1; s <= 60; s++) {
        assert_int_equal(journal_get(f->j, s, &v, &buf, &cap, &err), 0);
        assert_int_equal(v.format, s <= 30 ? PT_JREC_FORMAT_V1 : PT_JOURNAL_FORMAT);
        assert_int_equal(v.payload_state, PT_PAYLOAD_STORED);
        char want[32];
        snprintf(want, sizeof want, "PAYLOAD-MARK-%04llu", (unsigned long long)s);
        assert_int_equal(v.payload_len, strlen(want));
        assert_memory_equal(v.payload, want, v.payload_len);
    }
    free(buf);
    journal_verify_options_t o = {.pk = f->pk, .check_state = true};
    journal_verify_report_t rep;
    uint64_t bad;
    if (journal_verify_ex(f->j, &o, &rep, &bad, &err) != 0)
        fail_msg("verify: %s", err.msg);
    assert_int_equal(rep.last, 60);
    assert_true(rep.state_checked);
    /* A range starting at the upgrade point chains from the last format-1 record. */
    assert_int_equal(journal_verify(f->j, 31, 0, f->pk, &bad, &err), 0);
    journal_close(&f->j);
    raw_t r;
    raw_open(&r, f->opts.dir, "meta");
    MDB_val k = {12, "format2_from"}, val;
    assert_int_equal(mdb_get(r.txn, r.dbi, &k, &val), 0);
    assert_int_equal(val.mv_size, 8);
    assert_int_equal(((uint8_t *)val.mv_data)[0], 31);
    raw_close(&r);
    fx_open(f); /* the broker resumes it */
    append_n(f, 1);
    assert_intact(f);
}

/* Edits one byte of record seq at offset off (negative: from the end), without
 * recomputing anything, and checks verify names the record. */
static void
tamper_at(fixture_t *f, uint64_t seq, long off, const char *want)
{
    raw_t r;
    size_t len;
    raw_open(&r, f->opts.dir, "records");
    uint8_t *rec = raw_get(&r, seq, &len), *orig = malloc(len);
    memcpy(orig, rec, len);
    rec[off >= 0 ? (size_t)off : len - (size_t)-off] ^= 0x04;
    raw_put(&r, seq, rec, len);
    raw_close(&r);
    fx_open_ro(f);
    char msg[64];
    snprintf(msg, sizeof msg, "record %llu: %s", (unsigned long long)seq, want);
    assert_bad(f, NULL, seq, msg);
    journal_close(&f->j);
    raw_open(&r, f->opts.dir, "records");
    raw_put(&r, seq, orig, len);
    raw_close(&r);
    free(rec);
    free(orig);
}

/* The offset of the payload bytes in record seq. */
static long
payload_off(fixture_t *f, uint64_t seq)
{
    raw_t r;
    size_t len;
    char want[32];
    snprintf(want, sizeof want, "PAYLOAD-MARK-%04llu", (unsigned long long)seq);
    raw_open(&r, f->opts.dir, "records");
    uint8_t *rec = raw_get(&r, seq, &len);
    uint8_t *p = memmem(rec, len, want, strlen(want));
    assert_non_null(p);
    long off = (long)(p - rec) + 3;
    free(rec);
    raw_close(&r);
    return off;
}

/* In both formats a payload, a header field or the payload hash edited is caught. */
static void
test_mixed_formats_tamper(void **state)
{
    fixture_t *f = *state;
    build_mixed(f);
    const uint64_t seqs[] = {10, 40};
    for (size_t i = 0; i < 2; i++) {
        uint64_t s = seqs[i];
        tamper_at(f, s, payload_off(f, s),
                  s <= 30 ? "chain hash mismatch" : "payload differs from its hash");
        tamper_at(f, s, PT_JREC_HEADER_LEN + 4, "chain hash mismatch"); /* the sender */
        tamper_at(f, s, 12, "chain hash mismatch");                     /* time_ms */
        tamper_at(f, s, -(2 * 32) + 5, "chain hash mismatch");          /* payload hash */
        tamper_at(f, s, -(2 * 32) - 2, "chain hash mismatch");          /* attempt */
    }
    /* The upgrade point moved in meta: the formats no longer match it. */
    raw_t r;
    uint8_t from[8] = {20};
    raw_open(&r, f->opts.dir, "meta");
    MDB_val k = {12, "format2_from"}, v = {8, from};
    assert_int_equal(mdb_put(r.txn, r.dbi, &k, &v, 0), 0);
    raw_close(&r);
    fx_open_ro(f);
    assert_bad(f, NULL, 20, "record 20: format 1, but meta says format 2 from record 20");
}

static void
test_decode_bounds(void **state)
{
    (void)state;
    const char *rcpts[] = {"a", "bb", NULL};
    journal_record_t r = {.kind = PT_REC_RECEIVED,
                          .partner = "caf",
                          .msg_type = "t",
                          .message_id = "m",
                          .reason = "r",
                          .payload = (const uint8_t *)"pl",
                          .payload_len = 2,
                          .recipients = rcpts};
    size_t len;
    pt_error_t err;
    uint8_t zero[32] = {0}, buf[512];
    assert_int_equal(journal_record_size(&r, PT_JOURNAL_FORMAT, &len, &err), 0);
    assert_true(len <= sizeof buf);
    journal_record_encode(&r, PT_JOURNAL_FORMAT, 7, 1234, zero, buf, len);
    journal_view_t v;
    assert_int_equal(journal_record_decode(buf, len, 7, &v, &err), 0);
    assert_string_equal(v.recipients[0], "a");
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1); /* exact size: ASan sees any overread */
        memcpy(copy, buf, cut);
        int rc = journal_record_decode(copy, cut, 7, &v, &err);
        assert_true(rc == PT_ECORRUPT || rc == PT_EVERSION);
        free(copy);
    }
    for (size_t i = 0; i < len; i++) {
        uint8_t *copy = malloc(len);
        memcpy(copy, buf, len);
        copy[i] ^= 0xff;
        (void)journal_record_decode(copy, len, 7, &v, &err);
        free(copy);
    }
    buf[0] = 9;
    assert_int_equal(journal_record_decode(buf, len, 7, &v, &err), PT_EVERSION);
    assert_non_null(strstr(err.msg, "record 7: unsupported format 9"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip_every_kind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_leaves_batch_usable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup_sees_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_keeps_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_resumes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permissions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_byte_on_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_byte_on_disk_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mixed_formats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mixed_formats_tamper, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edited_record_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_record_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reordered_records_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signing_key_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewritten_chain_caught_by_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_format_checkpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_format_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_map, setup, teardown),
        cmocka_unit_test_setup_teardown(test_person_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_person_index_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_person_merge_full_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_message_lookups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan, setup, teardown),
        cmocka_unit_test(test_decode_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
