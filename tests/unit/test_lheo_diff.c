/* test_lheo_diff: the snapshot diff as a pure module over the in-memory store: nothing is
 * stored before commit, a duplicate key is refused, kept keys are not withdrawn,
 * withdrawals come sorted, and the store survives many insertions and deletions (its
 * open addressing with backward-shift deletion). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lheo_diff.h"

static Ptibus__V1__TrainingOffer
offer(const char *id, const char *title)
{
    Ptibus__V1__TrainingOffer o = PTIBUS__V1__TRAINING_OFFER__INIT;
    o.offer_id = (char *)id;
    o.title = (char *)title;
    o.operation = PTIBUS__V1__OFFER_OPERATION__OFFER_OPERATION_UPSERT;
    return o;
}

typedef struct keys {
    char k[8][32];
    size_t n;
} keys_t;

static int
note(void *ctx, const char *key)
{
    keys_t *k = ctx;
    snprintf(k->k[k->n++], sizeof k->k[0], "%s", key);
    return 0;
}

/* One snapshot of (id, title) pairs; returns how many were to publish. */
static size_t
snapshot(lheo_store_t *s, const char *const *ids, const char *title, size_t n, keys_t *gone,
         bool commit)
{
    lheo_diff_t *d;
    pt_error_t err;
    size_t published = 0;
    assert_int_equal(lheo_diff_new(&d, s), 0);
    for (size_t i = 0; i < n; i++) {
        Ptibus__V1__TrainingOffer o = offer(ids[i], title);
        bool publish;
        assert_int_equal(lheo_diff_offer(d, &o, &publish, &err), 0);
        published += publish;
    }
    memset(gone, 0, sizeof *gone);
    assert_int_equal(lheo_diff_withdrawals(d, note, gone), 0);
    if (commit)
        assert_int_equal(lheo_diff_commit(d), 0);
    lheo_diff_destroy(&d);
    assert_null(d);
    return published;
}

static void
test_diff_cycle(void **state)
{
    (void)state;
    lheo_store_t *s;
    keys_t gone;
    assert_int_equal(lheo_memstore_new(&s), 0);
    const char *const all[] = {"F/A/3", "F/A/1", "F/A/2"};
    /* not committed: the store stays empty and everything is new again */
    assert_int_equal(snapshot(s, all, "T", 3, &gone, false), 3);
    assert_int_equal(lheo_memstore_count(s), 0);
    assert_int_equal(snapshot(s, all, "T", 3, &gone, true), 3);
    assert_int_equal(lheo_memstore_count(s), 3);
    assert_int_equal(snapshot(s, all, "T", 3, &gone, true), 0);
    assert_int_equal(snapshot(s, all, "T2", 3, &gone, true), 3);
    /* two absent: withdrawn, sorted */
    assert_int_equal(snapshot(s, all + 2, "T2", 1, &gone, true), 0);
    assert_int_equal(gone.n, 2);
    assert_string_equal(gone.k[0], "F/A/1");
    assert_string_equal(gone.k[1], "F/A/3");
    assert_int_equal(lheo_memstore_count(s), 1);
    lheo_memstore_destroy(&s);
    assert_null(s);
}

static void
test_duplicate_and_keep(void **state)
{
    (void)state;
    lheo_store_t *s;
    lheo_diff_t *d;
    pt_error_t err;
    bool publish;
    keys_t gone = {.n = 0};
    assert_int_equal(lheo_memstore_new(&s), 0);
    const char *const two[] = {"a/b/c", "a/b/d"};
    snapshot(s, two, "T", 2, &gone, true);
    assert_int_equal(lheo_diff_new(&d, s), 0);
    Ptibus__V1__TrainingOffer o = offer("a/b/c", "T");
    assert_int_equal(lheo_diff_offer(d, &o, &publish, &err), 0);
    assert_false(publish);
    assert_int_equal(lheo_diff_offer(d, &o, &publish, &err), PT_EINVALID);
    assert_non_null(strstr(err.msg, "appears twice"));
    assert_int_equal(lheo_diff_keep(d, "a/b/d"), 0); /* a bad record: kept, not withdrawn */
    assert_int_equal(lheo_diff_withdrawals(d, note, &gone), 0);
    assert_int_equal(gone.n, 0);
    lheo_diff_stats_t st = lheo_diff_stats(d);
    assert_int_equal(st.seen, 1);
    assert_int_equal(st.unchanged, 1);
    lheo_diff_destroy(&d);
    lheo_memstore_destroy(&s);
}

static void
test_store_many(void **state)
{
    (void)state;
    lheo_store_t *s;
    uint8_t fp[LHEO_FP_LEN] = {0}, got[LHEO_FP_LEN];
    char key[32];
    assert_int_equal(lheo_memstore_new(&s), 0);
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "F%d/A/S", i);
        fp[0] = (uint8_t)i;
        assert_int_equal(s->ops->put(s->impl, key, fp), 0);
    }
    for (int i = 0; i < 5000; i += 2) {
        snprintf(key, sizeof key, "F%d/A/S", i);
        assert_int_equal(s->ops->del(s->impl, key), 0);
    }
    assert_int_equal(s->ops->del(s->impl, "absent"), 0);
    assert_int_equal(lheo_memstore_count(s), 2500);
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "F%d/A/S", i);
        int rc = s->ops->get(s->impl, key, got);
        if (i % 2 == 0) {
            assert_int_equal(rc, PT_ENOTFOUND);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(got[0], (uint8_t)i);
        }
    }
    lheo_memstore_destroy(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diff_cycle),
        cmocka_unit_test(test_duplicate_and_keep),
        cmocka_unit_test(test_store_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
