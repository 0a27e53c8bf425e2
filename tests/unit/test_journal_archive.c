/* Unit tests of broker/journal/journal_archive.c: an archive of the oldest records
 * verifies alone (chain, signatures, indexes) and as the predecessor of the live
 * journal, before and after those records are moved out of it; an edited archive or
 * the archive of another journal is caught; an archive is read-only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <errno.h>
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
    f->dir = tu_tmpdir("archive");
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
be64(uint8_t k[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        k[i] = (uint8_t)(v >> (56 - 8 * i));
}

static void
archive(fixture_t *f, const char *name, int64_t until, journal_archive_report_t *rep)
{
    char dir[4300];
    pt_error_t err;
    snprintf(dir, sizeof dir, "%s/%s", f->dir, name);
    if (journal_archive(f->j, until, dir, rep, &err) != 0)
        fail_msg("archive: %s", err.msg);
}

static journal_t *
open_archive(fixture_t *f, const char *name)
{
    char dir[4300];
    journal_t *a;
    pt_error_t err;
    snprintf(dir, sizeof dir, "%s/%s", f->dir, name);
    journal_options_t o = {.dir = dir, .read_only = true};
    if (journal_open(&o, &a, &err) != 0)
        fail_msg("open archive: %s", err.msg);
    return a;
}

static int
verify_j(fixture_t *f, journal_t *j, pt_error_t *err)
{
    journal_verify_options_t o = {.pk = f->pk, .check_state = true};
    journal_verify_report_t rep;
    uint64_t bad;
    return journal_verify_ex(j, &o, &rep, &bad, err);
}

static void
test_archive_alone_and_chained(void **state)
{
    fixture_t *f = *state;
    fx_open(f, false);
    build(f, 100, 70); /* message 70 stays queued */
    journal_archive_report_t rep;
    archive(f, "a1", T0 + 1000 * 45, &rep);
    assert_int_equal(rep.first, 1);
    assert_int_equal(rep.last, 80); /* the last checkpoint before message 46 */
    journal_t *a = open_archive(f, "a1");
    pt_error_t err;
    assert_true(journal_is_archive(a));
    if (verify_j(f, a, &err) != 0)
        fail_msg("archive verify: %s", err.msg);
    assert_int_equal(journal_last_seq(a), 80);
    uint64_t *seqs = NULL;
    size_t n = 0;
    assert_int_equal(journal_find_message(a, "m-0010", &seqs, &n, &err), 0);
    assert_int_equal(n, 2); /* RECEIVED and ACKNOWLEDGED, queried in the archive */
    free(seqs);
    assert_int_equal(journal_find_person(a, nir, &seqs, &n, &err), PT_ECONFIG); /* no key */
    free(seqs);
    assert_int_equal(journal_archive_chains(a, f->j, &err), 0);
    /* Then the same records moved out of the live journal: the anchor is the boundary. */
    journal_segment_report_t sr;
    expire(f, T0 + 1000 * 45, 100000, &sr);
    assert_int_equal(sr.anchor, 80);
    assert_verifies(f);
    assert_int_equal(journal_archive_chains(a, f->j, &err), 0);
    /* A second archive goes on from the anchor, and chains too. */
    archive(f, "a2", T0 + 1000 * 60, &rep);
    assert_int_equal(rep.first, 81);
    journal_t *a2 = open_archive(f, "a2");
    if (verify_j(f, a2, &err) != 0)
        fail_msg("second archive verify: %s", err.msg);
    assert_int_equal(journal_archive_chains(a2, f->j, &err), 0);
    journal_close(&a2);
    journal_close(&a);
}

static void
test_archive_refusals(void **state)
{
    fixture_t *f = *state;
    fx_open(f, false);
    build(f, 50, -1);
    journal_archive_report_t rep;
    archive(f, "a1", T0 + 1000 * 20, &rep);
    char dir[4300];
    pt_error_t err;
    snprintf(dir, sizeof dir, "%s/a1", f->dir);
    assert_int_equal(journal_archive(f->j, T0 + 1000 * 20, dir, &rep, &err), -EEXIST);
    snprintf(dir, sizeof dir, "%s/a0", f->dir);
    assert_int_equal(journal_archive(f->j, T0 - 1, dir, &rep, &err), PT_ENOTFOUND);
    /* An archive is never a broker's journal. */
    journal_options_t o = {.dir = dir, .sign_sk = f->sk};
    journal_t *w = NULL;
    snprintf(dir, sizeof dir, "%s/a1", f->dir);
    assert_int_equal(journal_open(&o, &w, &err), PT_EDENIED);
}

/* An archive of another journal, or an edited one, is caught. */
static void
test_archive_tampered_or_foreign(void **state)
{
    fixture_t *f = *state;
    fx_open(f, false);
    build(f, 50, -1);
    journal_archive_report_t rep;
    archive(f, "a1", T0 + 1000 * 30, &rep);
    journal_close(&f->j);
    /* Another journal with the same key and other messages. */
    char other[4300];
    snprintf(other, sizeof other, "%s/other", f->dir);
    f->opts.dir = other;
    fx_open(f, false);
    build(f, 2, -1);
    build(f, 50, -1);
    archive(f, "foreign", T0 + 1000 * 30, &rep);
    journal_close(&f->j);
    f->opts.dir = f->jdir;
    fx_open(f, true);
    journal_t *a = open_archive(f, "foreign");
    pt_error_t err;
    assert_int_equal(verify_j(f, a, &err), 0); /* fine alone */
    assert_int_equal(journal_archive_chains(a, f->j, &err), PT_ECORRUPT);
    assert_non_null(strstr(err.msg, "the archive's hash differs from the live journal's"));
    journal_close(&a);
    /* Record 7 of the archive edited. */
    char dir[4300];
    snprintf(dir, sizeof dir, "%s/a1", f->dir);
    uint8_t key[8];
    be64(key, 7);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {8, key}, v;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "records", 0, &dbi), 0);
    assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
    uint8_t *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    copy[PT_JREC_HEADER_LEN + 4] ^= 0x20;
    v.mv_data = copy;
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    free(copy);
    a = open_archive(f, "a1");
    assert_int_equal(verify_j(f, a, &err), PT_ECORRUPT);
    assert_non_null(strstr(err.msg, "record 7: chain hash mismatch"));
    journal_close(&a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_archive_alone_and_chained, setup, teardown),
        cmocka_unit_test_setup_teardown(test_archive_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_archive_tampered_or_foreign, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
