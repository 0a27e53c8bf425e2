/* Unit tests of the journal's per-recipient queues and dead-letter queues. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "journal.h"
#include "testutil.h"

typedef struct fx {
    char *dir;
    journal_t *j;
    uint8_t hmac[32];
} fx_t;

static void
fx_open(fx_t *f)
{
    journal_options_t o = {.dir = f->dir, .hmac_key = f->hmac, .map_size_initial = 1 << 20};
    pt_error_t err;
    if (journal_open(&o, &f->j, &err) != 0)
        fail_msg("journal_open: %s", err.msg);
}

static int
setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    f->dir = tu_tmpdir("jqueue");
    fx_open(f);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *f = *state;
    journal_close(&f->j);
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

static uint64_t
append_received(journal_txn_t *t, const char *id, const char *const *recipients)
{
    static const uint8_t payload[] = "envelope";
    journal_record_t rec = {.kind = PT_REC_RECEIVED,
                            .partner = "departement",
                            .msg_type = "orientation",
                            .message_id = id,
                            .payload = payload,
                            .payload_len = sizeof payload,
                            .recipients = recipients};
    uint64_t seq;
    pt_error_t err;
    if (journal_append(t, &rec, &seq, &err) != 0)
        fail_msg("append: %s", err.msg);
    return seq;
}

static void
test_enqueue_list_remove(void **state)
{
    fx_t *f = *state;
    const char *const both[] = {"caf", "pole_emploi", NULL};
    const char *const caf[] = {"caf", NULL};
    journal_txn_t *t;
    pt_error_t err;
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    uint64_t s1 = append_received(t, "m1", both);
    uint64_t s2 = append_received(t, "m2", caf);
    uint64_t s3 = append_received(t, "m3", NULL); /* journaled, routed nowhere */
    (void)s3;
    journal_queue_entry_t e;
    assert_int_equal(journal_queue_get(t, "caf", s2, &e), 0);
    assert_int_equal(e.attempts, 0);
    assert_int_equal(journal_commit(&t, &err), 0);

    journal_queue_entry_t out[8];
    size_t n;
    assert_int_equal(journal_queue_list(f->j, "caf", 0, out, 8, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].seq, s1);
    assert_int_equal(out[1].seq, s2);
    assert_int_equal(journal_queue_list(f->j, "caf", s1, out, 8, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].seq, s2);
    assert_int_equal(journal_queue_list(f->j, "pole_emploi", 0, out, 8, &n, &err), 0);
    assert_int_equal(n, 1);
    /* A recipient whose id is a prefix of another's sees only its own entries. */
    assert_int_equal(journal_queue_list(f->j, "ca", 0, out, 8, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(journal_queue_list(f->j, "msa", 0, out, 8, &n, &err), 0);
    assert_int_equal(n, 0);

    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    e = out[0];
    e.attempts = 3;
    assert_int_equal(journal_queue_put(t, "pole_emploi", &e, &err), 0);
    assert_int_equal(journal_queue_remove(t, "caf", s1, &err), 0);
    assert_int_equal(journal_queue_remove(t, "caf", s1, &err), PT_ENOTFOUND);
    assert_int_equal(journal_commit(&t, &err), 0);

    uint64_t depth;
    int64_t oldest;
    assert_int_equal(journal_queue_stats(f->j, "caf", &depth, &oldest, &err), 0);
    assert_int_equal(depth, 1);
    assert_true(oldest > 0);
    journal_close(&f->j);
    fx_open(f); /* everything survives a reopen */
    assert_int_equal(journal_queue_list(f->j, "pole_emploi", 0, out, 8, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].attempts, 3);
}

static void
test_abort_enqueues_nothing(void **state)
{
    fx_t *f = *state;
    const char *const caf[] = {"caf", NULL};
    journal_txn_t *t;
    pt_error_t err;
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    append_received(t, "m1", caf);
    journal_abort(&t);
    journal_queue_entry_t out[2];
    size_t n;
    assert_int_equal(journal_queue_list(f->j, "caf", 0, out, 2, &n, &err), 0);
    assert_int_equal(n, 0);
}

static void
test_dead_letters(void **state)
{
    fx_t *f = *state;
    const char *const rcpt[] = {"ml_nord", "msa", NULL};
    journal_txn_t *t;
    pt_error_t err;
    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    uint64_t s1 = append_received(t, "m1", rcpt);
    uint64_t s2 = append_received(t, "m2", rcpt);
    journal_queue_entry_t e;
    assert_int_equal(journal_queue_get(t, "msa", s1, &e), 0);
    e.attempts = 5;
    assert_int_equal(journal_dead_add(t, "msa", &e, &err), 0);
    assert_int_equal(journal_commit(&t, &err), 0);

    journal_queue_entry_t out[4];
    size_t n;
    assert_int_equal(journal_queue_list(f->j, "msa", 0, out, 4, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].seq, s2); /* the poison message no longer blocks m2 */
    journal_dead_entry_t *dead;
    assert_int_equal(journal_dead_list(f->j, NULL, 10, &dead, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(dead[0].recipient, "msa");
    assert_int_equal(dead[0].seq, s1);
    assert_int_equal(dead[0].attempts, 5);
    free(dead);
    assert_int_equal(journal_dead_list(f->j, "ml_nord", 10, &dead, &n, &err), 0);
    assert_int_equal(n, 0);
    free(dead);

    assert_int_equal(journal_begin(f->j, &t, &err), 0);
    assert_int_equal(journal_dead_requeue(t, "msa", s1, &err), 0);
    assert_int_equal(journal_dead_requeue(t, "msa", s1, &err), PT_ENOTFOUND);
    assert_int_equal(journal_commit(&t, &err), 0);
    assert_int_equal(journal_queue_list(f->j, "msa", 0, out, 4, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].seq, s1);
    assert_int_equal(out[0].attempts, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_enqueue_list_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_enqueues_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_letters, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
