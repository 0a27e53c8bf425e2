/* Unit tests of broker/journal/journal_erase.c: erasing one person's payloads leaves the
 * other people's untouched and the journal verifiable (chain, checkpoints, state); it
 * is refused while one of the person's messages is queued, and forced it dead-letters
 * them first; an erased dead letter is never requeued. */
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
#include "testutil.h"

static const uint8_t hmac_key[32] = "0123456789abcdef0123456789abcdef";
static const char nir_a[] = "1850578006048";
static const char nir_b[] = "2850578006084";

typedef struct fixture {
    char *dir;
    char jdir[4200];
    journal_t *j;
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
} fixture_t;

static int
setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_true(sodium_init() >= 0);
    f->dir = tu_tmpdir("erase");
    snprintf(f->jdir, sizeof f->jdir, "%s/j", f->dir);
    crypto_sign_keypair(f->pk, f->sk);
    journal_options_t o = {.dir = f->jdir, .hmac_key = hmac_key, .sign_sk = f->sk};
    pt_error_t err;
    assert_int_equal(journal_open(&o, &f->j, &err), 0);
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

/* A RECEIVED record about nir for msa; acknowledged unless queued. Returns its seq. */
static uint64_t
add(fixture_t *f, const char *nir, const char *id, bool queued)
{
    static const char *const rcpt[] = {"msa", NULL};
    journal_txn_t *t;
    pt_error_t err;
    uint64_t s, x;
    char payload[64];
    snprintf(payload, sizeof payload, "envelope of %s", id);
    journal_record_t r = {.kind = PT_REC_RECEIVED,
                          .partner = "caf",
                          .msg_type = "sanction",
                          .message_id = id,
                          .payload = (const uint8_t *)payload,
                          .payload_len = strlen(payload),
                          .person_nir = nir,
                          .recipients = rcpt};
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    assert_int_equal(journal_append(t, &r, &s, &err), 0);
    if (!queued) {
        journal_record_t a = {
            .kind = PT_REC_ACKNOWLEDGED, .partner = "msa", .message_id = id, .ref_seq = s};
        assert_int_equal(journal_append(t, &a, &x, &err), 0);
        assert_int_equal(journal_queue_remove(t, "msa", s, &err), 0);
    }
    assert_int_equal(journal_commit(&t, &err), 0);
    return s;
}

static int
erase(fixture_t *f, const char *nir, bool force, journal_erase_report_t *rep, pt_error_t *err)
{
    journal_txn_t *t;
    uint64_t *seqs = NULL;
    size_t n = 0;
    assert_int_equal(journal_begin(f->j, &t, err), 0);
    int rc = journal_erase_person(t, nir, force, "art. 17 request 2026-042", rep, &seqs, &n, err);
    free(seqs);
    if (rc == 0)
        assert_int_equal(journal_commit(&t, err), 0);
    else
        journal_abort(&t);
    return rc;
}

static journal_payload_t
state_of(fixture_t *f, uint64_t seq)
{
    journal_view_t v;
    uint8_t *buf = NULL;
    size_t cap = 0;
    pt_error_t err;
    assert_int_equal(journal_get(f->j, seq, &v, &buf, &cap, &err), 0);
    free(buf);
    return v.payload_state;
}

static void
assert_verifies(fixture_t *f)
{
    journal_verify_options_t o = {.pk = f->pk, .check_state = true};
    journal_verify_report_t rep;
    uint64_t bad;
    pt_error_t err;
    if (journal_verify_ex(f->j, &o, &rep, &bad, &err) != 0)
        fail_msg("verify: %s", err.msg);
}

static void
test_erase_one_person(void **state)
{
    fixture_t *f = *state;
    uint64_t a1 = add(f, nir_a, "a-1", false), b1 = add(f, nir_b, "b-1", false);
    uint64_t a2 = add(f, nir_a, "a-2", false);
    journal_erase_report_t rep;
    pt_error_t err;
    assert_int_equal(erase(f, nir_a, false, &rep, &err), 0);
    assert_int_equal(rep.records, 2);
    assert_int_equal(rep.erased, 2);
    assert_int_equal(state_of(f, a1), PT_PAYLOAD_ERASED);
    assert_int_equal(state_of(f, a2), PT_PAYLOAD_ERASED);
    assert_int_equal(state_of(f, b1), PT_PAYLOAD_STORED);
    assert_verifies(f);
    /* Again: nothing more to erase. */
    assert_int_equal(erase(f, nir_a, false, &rep, &err), 0);
    assert_int_equal(rep.erased, 0);
    assert_int_equal(rep.already, 2);
}

static void
test_queued_refused_unless_forced(void **state)
{
    fixture_t *f = *state;
    uint64_t a1 = add(f, nir_a, "a-1", false), a2 = add(f, nir_a, "a-2", true);
    journal_erase_report_t rep;
    pt_error_t err;
    assert_int_equal(erase(f, nir_a, false, &rep, &err), PT_EDENIED);
    assert_non_null(strstr(err.msg, "1 of the person's messages are still queued"));
    assert_int_equal(state_of(f, a1), PT_PAYLOAD_STORED); /* nothing done */
    assert_int_equal(erase(f, nir_a, true, &rep, &err), 0);
    assert_int_equal(rep.dead_lettered, 1);
    assert_int_equal(rep.erased, 2);
    assert_int_equal(state_of(f, a2), PT_PAYLOAD_ERASED);
    journal_dead_entry_t *dead = NULL;
    size_t n = 0;
    assert_int_equal(journal_dead_list(f->j, "msa", 10, &dead, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(dead[0].seq, a2);
    free(dead);
    assert_verifies(f);
    /* An erased dead letter is never requeued: nothing left to deliver. */
    journal_txn_t *t;
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    assert_int_equal(journal_dead_requeue(t, "msa", a2, &err), PT_EINVALID);
    journal_abort(&t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_erase_one_person, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queued_refused_unless_forced, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
