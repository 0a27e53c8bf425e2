/* Unit tests of broker/journal/journal_retention.c: payload expiry by message type, the
 * payloads it must keep (queued, dead-lettered, format 1), bounded steps, and that the
 * journal still verifies (chain, checkpoints, state) after payloads are removed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "journal.h"
#include "journal_record.h"
#include "testutil.h"

static const uint8_t hmac_key[32] = "0123456789abcdef0123456789abcdef";
#define T0 INT64_C(1700000000000)

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
    f->dir = tu_tmpdir("retention");
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
fx_open(fixture_t *f)
{
    pt_error_t err;
    if (journal_open(&f->opts, &f->j, &err) != 0)
        fail_msg("journal_open: %s", err.msg);
}

/* A RECEIVED record of type at time; queued for msa when queued. */
static uint64_t
add(fixture_t *f, const char *type, int64_t time_ms, bool queued)
{
    static const char *const rcpt[] = {"msa", NULL};
    char payload[64];
    journal_txn_t *t;
    pt_error_t err;
    uint64_t seq;
    snprintf(payload, sizeof payload, "payload %s %lld", type, (long long)time_ms);
    journal_record_t r = {.kind = PT_REC_RECEIVED,
                          .time_ms = time_ms,
                          .partner = "caf",
                          .msg_type = type,
                          .message_id = payload,
                          .payload = (const uint8_t *)payload,
                          .payload_len = strlen(payload),
                          .recipients = queued ? rcpt : NULL};
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    if (journal_append(t, &r, &seq, &err) != 0)
        fail_msg("append: %s", err.msg);
    assert_int_equal(journal_commit(&t, &err), 0);
    return seq;
}

static void
step(fixture_t *f, const journal_retention_rule_t *rules, size_t n, int64_t now, size_t max,
     journal_expiry_report_t *rep)
{
    journal_txn_t *t;
    pt_error_t err;
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    if (journal_expire_payloads(t, rules, n, now, max, rep, &err) != 0)
        fail_msg("expire: %s", err.msg);
    assert_int_equal(journal_commit(&t, &err), 0);
}

static journal_payload_t
state_of(fixture_t *f, uint64_t seq, uint8_t hash[32])
{
    journal_view_t v;
    uint8_t *buf = NULL;
    size_t cap = 0;
    pt_error_t err;
    assert_int_equal(journal_get(f->j, seq, &v, &buf, &cap, &err), 0);
    if (v.payload_state != PT_PAYLOAD_STORED) {
        assert_null(v.payload);
        assert_int_equal(v.payload_len, 0);
    }
    if (hash != NULL)
        memcpy(hash, v.payload_hash, 32);
    free(buf);
    return v.payload_state;
}

/* Everything verify checks: chain, payload hashes, checkpoints, state databases. */
static void
assert_verifies(fixture_t *f)
{
    journal_verify_options_t o = {.pk = f->pk, .check_state = true};
    journal_verify_report_t rep;
    uint64_t bad;
    pt_error_t err;
    if (journal_verify_ex(f->j, &o, &rep, &bad, &err) != 0)
        fail_msg("verify: %s", err.msg);
    assert_true(rep.state_checked);
}

static const journal_retention_rule_t rules[] = {
    {"training_offer", 10000}, /* 10 s */
    {"sanction", 0},           /* forever */
    {NULL, 50000},             /* every other type: 50 s */
};

static void
test_expiry_by_type(void **state)
{
    fixture_t *f = *state;
    fx_open(f);
    uint64_t offer_old = add(f, "training_offer", T0, false);
    uint64_t sanction = add(f, "sanction", T0, false);
    uint64_t referral = add(f, "referral", T0, false);
    uint64_t offer_queued = add(f, "training_offer", T0 + 1000, true);
    uint64_t offer_new = add(f, "training_offer", T0 + 15000, false);
    uint8_t before[32], after[32];
    assert_int_equal(state_of(f, offer_old, before), PT_PAYLOAD_STORED);

    journal_expiry_report_t rep;
    step(f, rules, 3, T0 + 20000, 1000, &rep);
    assert_int_equal(rep.expired, 1);
    assert_int_equal(rep.held, 1);
    assert_int_equal(rep.held_seq, offer_queued);
    assert_int_equal(state_of(f, offer_old, after), PT_PAYLOAD_EXPIRED);
    assert_memory_equal(before, after, 32); /* the hash stays */
    assert_int_equal(state_of(f, offer_queued, NULL), PT_PAYLOAD_STORED);
    assert_int_equal(state_of(f, offer_new, NULL), PT_PAYLOAD_STORED);
    assert_int_equal(state_of(f, referral, NULL), PT_PAYLOAD_STORED);
    assert_int_equal(journal_expiry_held(f->j), 1);
    assert_verifies(f);

    /* Much later: the default's records go, sanctions stay, the queued one is held. */
    step(f, rules, 3, T0 + 3600000, 1000, &rep);
    assert_int_equal(state_of(f, referral, NULL), PT_PAYLOAD_EXPIRED);
    assert_int_equal(state_of(f, offer_new, NULL), PT_PAYLOAD_EXPIRED);
    assert_int_equal(state_of(f, sanction, NULL), PT_PAYLOAD_STORED);
    assert_int_equal(state_of(f, offer_queued, NULL), PT_PAYLOAD_STORED);

    /* Acknowledged: the held payload expires on a later step. */
    journal_txn_t *t;
    pt_error_t err;
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    assert_int_equal(journal_queue_remove(t, "msa", offer_queued, &err), 0);
    journal_record_t ack = {.kind = PT_REC_ACKNOWLEDGED,
                            .partner = "msa",
                            .msg_type = "training_offer",
                            .ref_seq = offer_queued};
    uint64_t s;
    assert_int_equal(journal_append(t, &ack, &s, &err), 0);
    assert_int_equal(journal_commit(&t, &err), 0);
    step(f, rules, 3, T0 + 3600000, 1000, &rep);
    assert_int_equal(rep.expired, 1);
    assert_int_equal(state_of(f, offer_queued, NULL), PT_PAYLOAD_EXPIRED);
    assert_int_equal(journal_expiry_held(f->j), 0);
    assert_verifies(f);
    journal_close(&f->j);
    fx_open(f); /* the broker resumes it */
    assert_verifies(f);
}

/* A dead letter keeps its payload too (it may be requeued). */
static void
test_dead_letter_kept(void **state)
{
    fixture_t *f = *state;
    fx_open(f);
    uint64_t seq = add(f, "referral", T0, true);
    journal_txn_t *t;
    pt_error_t err;
    journal_queue_entry_t e = {.seq = seq};
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    assert_int_equal(journal_dead_add(t, "msa", &e, &err), 0);
    journal_record_t d = {.kind = PT_REC_DEAD_LETTERED,
                          .partner = "msa",
                          .msg_type = "referral",
                          .ref_seq = seq,
                          .reason = "refused"};
    uint64_t s;
    assert_int_equal(journal_append(t, &d, &s, &err), 0);
    assert_int_equal(journal_commit(&t, &err), 0);
    journal_expiry_report_t rep;
    step(f, rules, 3, T0 + 3600000, 1000, &rep);
    assert_int_equal(rep.held, 1);
    assert_int_equal(state_of(f, seq, NULL), PT_PAYLOAD_STORED);
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    assert_int_equal(journal_payload_remove(t, seq, PT_PAYLOAD_ERASED, &err), PT_EDENIED);
    assert_non_null(strstr(err.msg, "still dead-lettered for msa"));
    journal_abort(&t);
    assert_verifies(f);
}

/* Each step examines at most its budget; steps go on from where the last one stopped. */
static void
test_bounded_steps(void **state)
{
    fixture_t *f = *state;
    fx_open(f);
    journal_txn_t *t;
    pt_error_t err;
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    for (int i = 0; i < 1000; i++) {
        char p[32];
        snprintf(p, sizeof p, "p%d", i);
        journal_record_t r = {.kind = PT_REC_RECEIVED,
                              .time_ms = T0 + i,
                              .partner = "caf",
                              .msg_type = "training_offer",
                              .message_id = p,
                              .payload = (const uint8_t *)p,
                              .payload_len = strlen(p)};
        uint64_t s;
        assert_int_equal(journal_append(t, &r, &s, &err), 0);
    }
    assert_int_equal(journal_commit(&t, &err), 0);
    journal_expiry_report_t rep;
    size_t total = 0, steps = 0;
    do {
        step(f, rules, 3, T0 + 20000, 100, &rep);
        assert_true(rep.examined <= 100);
        total += rep.expired;
        steps++;
    } while (rep.more && steps < 100);
    assert_int_equal(total, 1000);
    assert_true(steps >= 10);
    for (uint64_t s = 1; s <= 1000; s++)
        assert_int_equal(state_of(f, s, NULL), PT_PAYLOAD_EXPIRED);
    assert_verifies(f);
}

/* Format-1 records (before the upgrade point) chain their payload: never removed. */
static void
test_format1_kept(void **state)
{
    fixture_t *f = *state;
    f->opts.write_format = PT_JREC_FORMAT_V1;
    fx_open(f);
    uint64_t old = add(f, "referral", T0, false);
    journal_close(&f->j);
    f->opts.write_format = 0;
    fx_open(f);
    uint64_t young = add(f, "referral", T0 + 1, false);
    journal_expiry_report_t rep;
    step(f, rules, 3, T0 + 3600000, 1000, &rep);
    assert_int_equal(rep.format1, 1);
    assert_int_equal(rep.expired, 1);
    assert_int_equal(state_of(f, old, NULL), PT_PAYLOAD_STORED);
    assert_int_equal(state_of(f, young, NULL), PT_PAYLOAD_EXPIRED);
    journal_txn_t *t;
    pt_error_t err;
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    assert_int_equal(journal_payload_remove(t, old, PT_PAYLOAD_ERASED, &err), PT_EVERSION);
    assert_int_equal(journal_payload_remove(t, young, PT_PAYLOAD_ERASED, &err), PT_EINVALID);
    journal_abort(&t);
    assert_verifies(f);
}

/* An erased payload (the erasure's path) leaves a record that verifies and says so. */
static void
test_erased_verifies(void **state)
{
    fixture_t *f = *state;
    fx_open(f);
    uint64_t seq = add(f, "referral", T0, false);
    journal_txn_t *t;
    pt_error_t err;
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    assert_int_equal(journal_payload_remove(t, seq, PT_PAYLOAD_ERASED, &err), 0);
    assert_int_equal(journal_commit(&t, &err), 0);
    assert_int_equal(state_of(f, seq, NULL), PT_PAYLOAD_ERASED);
    assert_verifies(f);
}

/* Fills a small journal with expirable 1 KiB payloads until PT_EJOURNALFULL. */
static uint64_t
fill_until_full(fixture_t *f, int64_t time_ms)
{
    static uint8_t payload[1024];
    pt_error_t err;
    for (int b = 0;; b++) {
        journal_txn_t *t;
        uint64_t seq;
        char id[32];
        assert_int_equal(journal_begin(f->j, &t, &err), 0);
        int rc = 0;
        for (int i = 0; i < 16 && rc == 0; i++) {
            snprintf(id, sizeof id, "f-%d-%d", b, i);
            journal_record_t r = {.kind = PT_REC_RECEIVED,
                                  .time_ms = time_ms,
                                  .partner = "caf",
                                  .msg_type = "training_offer",
                                  .message_id = id,
                                  .payload = payload,
                                  .payload_len = sizeof payload};
            rc = journal_append(t, &r, &seq, &err);
        }
        rc = rc == 0 ? journal_commit(&t, &err) : (journal_abort(&t), rc);
        if (rc != 0) {
            assert_int_equal(rc, PT_EJOURNALFULL);
            return journal_last_seq(f->j);
        }
    }
}

/* A journal at its maximum size whose payloads are due recovers by itself: the expiry's
 * small steps free pages that later appends reuse. */
static void
test_full_journal_recovers(void **state)
{
    fixture_t *f = *state;
    f->opts.map_size_initial = 256 * 1024;
    f->opts.map_size_max = 1024 * 1024;
    fx_open(f);
    uint64_t full = fill_until_full(f, T0);
    assert_true(full > 200);
    journal_expiry_report_t rep;
    size_t expired = 0;
    for (int i = 0; i < 200 && expired < full; i++) {
        journal_txn_t *t;
        pt_error_t err;
        assert_int_equal(journal_begin(f->j, &t, &err), 0);
        int rc = journal_expire_payloads(t, rules, 3, T0 + 20000, 16, &rep, &err);
        rc = rc == 0 ? journal_commit(&t, &err) : (journal_abort(&t), rc);
        if (rc != 0)
            fail_msg("expiry step %d on a full journal: %s", i, err.msg);
        expired += rep.expired;
    }
    assert_int_equal(expired, full);
    uint64_t more = fill_until_full(f, T0 + 30000);
    print_message("full at %llu records; after expiry, full again at %llu\n",
                  (unsigned long long)full, (unsigned long long)more);
    assert_true(more > full + full / 4); /* the freed pages were reused (measured: +48 %) */
    assert_verifies(f);
}

/* After expiry the space report shows free and reclaimable bytes; a compacted copy
 * verifies, is smaller, and holds none of the expired bytes (which free pages of the
 * original may still hold). */
static void
test_space_and_compact(void **state)
{
    fixture_t *f = *state;
    fx_open(f);
    journal_txn_t *t;
    pt_error_t err;
    char payload[2048];
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    for (int i = 0; i < 300; i++) {
        char id[32];
        snprintf(id, sizeof id, "s-%d", i);
        memset(payload, 'x', sizeof payload);
        int n = snprintf(payload, sizeof payload, "SECRET-PAYLOAD-%04d", i);
        payload[n] = 'x';
        journal_record_t r = {.kind = PT_REC_RECEIVED,
                              .time_ms = T0,
                              .partner = "caf",
                              .msg_type = "training_offer",
                              .message_id = id,
                              .payload = (const uint8_t *)payload,
                              .payload_len = sizeof payload};
        uint64_t s;
        assert_int_equal(journal_append(t, &r, &s, &err), 0);
    }
    assert_int_equal(journal_commit(&t, &err), 0);
    journal_expiry_report_t rep;
    do
        step(f, rules, 3, T0 + 20000, 64, &rep);
    while (rep.more);
    journal_space_t sp;
    assert_int_equal(journal_space(f->j, &sp, &err), 0);
    print_message("used %zu, free %zu, file %zu, reclaimable %zu\n", sp.used_bytes, sp.free_bytes,
                  sp.file_bytes, sp.reclaimable_bytes);
    assert_true(sp.free_bytes > 300 * 1024);
    assert_true(sp.reclaimable_bytes >= sp.free_bytes);
    char dir[4300], path[4400];
    snprintf(dir, sizeof dir, "%s/compact", f->dir);
    assert_int_equal(journal_copy(f->j, dir, &err), 0);
    assert_int_equal(journal_copy(f->j, dir, &err), -EEXIST);
    uint8_t *buf;
    size_t len;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    assert_int_equal(tu_read_file(path, &buf, &len), 0);
    assert_true(len + 300 * 1024 <= sp.file_bytes);
    assert_null(memmem(buf, len, "SECRET-PAYLOAD-", 15));
    free(buf);
    journal_close(&f->j);
    f->opts.dir = dir;
    f->opts.read_only = true;
    fx_open(f);
    assert_verifies(f);
    f->opts.dir = f->jdir;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_expiry_by_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_letter_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounded_steps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format1_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_erased_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_journal_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_space_and_compact, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
