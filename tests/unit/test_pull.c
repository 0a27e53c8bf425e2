/* Unit tests of adapters/core/pull on a real spool in a temp dir: the inbox lists in seq
 * order with after/limit, a redelivery is not held twice, an acknowledged seq is SEEN, a
 * replay is held again (and its lost ack does not hand it over a third time), acks are
 * idempotent, nothing is durable before the commit and everything survives a reopen. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "codec.h"
#include "outbox.h"
#include "pull.h"
#include "samples.h"
#include "spool.h"
#include "testutil.h"

typedef struct fixture {
    char *tmp;
    char dir[512];
    spool_options_t opts;
    spool_t *s;
} fixture_t;

static void
fx_open(fixture_t *f)
{
    pt_error_t err;
    if (spool_open(&f->opts, &f->s, &err) != 0)
        fail_msg("spool_open: %s", err.msg);
}

static void
fx_commit(fixture_t *f)
{
    pt_error_t err;
    if (spool_commit(f->s, &err) != 0)
        fail_msg("spool_commit: %s", err.msg);
}

static void
fx_reopen(fixture_t *f)
{
    spool_close(&f->s);
    fx_open(f);
}

static int
setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->tmp = tu_tmpdir("pull");
    snprintf(f->dir, sizeof f->dir, "%s/spool", f->tmp);
    f->opts = (spool_options_t){.dir = f->dir};
    fx_open(f);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture_t *f = *state;
    spool_close(&f->s);
    tu_rmtree(f->tmp);
    free(f);
    return 0;
}

/* Holds delivery seq of message id; returns the status (asserting rc 0 unless refused). */
static pull_status_t
put_full(fixture_t *f, uint64_t seq, const char *id, uint32_t attempt, bool replay)
{
    td_sample_t smp;
    td_sample_orientation(&smp, id);
    uint8_t *buf;
    size_t len;
    pt_error_t err;
    if (codec_pack(&smp.env.base, 1 << 20, &buf, &len, &err) != 0)
        fail_msg("pack: %s", err.msg);
    outbox_delivery_t d = {.seq = seq,
                           .attempt = attempt,
                           .redelivery = attempt > 1,
                           .replay = replay,
                           .message_id = id,
                           .sender = "pole_emploi",
                           .envelope = buf,
                           .envelope_len = len,
                           .received_at_ms = 1764640000123};
    pull_status_t st = 0;
    int rc = pull_put(f->s, &d, 0, &st, &err);
    if (rc != 0)
        fail_msg("pull_put: %s", err.msg);
    free(buf);
    return st;
}

static pull_status_t
put(fixture_t *f, uint64_t seq, const char *id)
{
    return put_full(f, seq, id, 1, false);
}

static json_t *
list(fixture_t *f, uint64_t after, size_t limit)
{
    char *text;
    size_t len;
    pt_error_t err;
    if (pull_list(f->s, after, limit, &text, &len, &err) != 0)
        fail_msg("pull_list: %s", err.msg);
    assert_int_equal(strlen(text), len);
    json_error_t je;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL)
        fail_msg("not JSON: %s", je.text);
    free(text);
    return j;
}

/* The seqs listed, as "1,2,3", and "next". */
static void
assert_page(json_t *j, const char *seqs, const char *next)
{
    char got[256] = "";
    json_t *m = json_object_get(j, "messages");
    assert_true(json_is_array(m));
    for (size_t i = 0; i < json_array_size(m); i++) {
        json_t *d = json_object_get(json_array_get(m, i), "delivery");
        size_t n = strlen(got);
        snprintf(got + n, sizeof got - n, "%s%s", i ? "," : "",
                 json_string_value(json_object_get(d, "seq")));
    }
    assert_string_equal(got, seqs);
    assert_string_equal(json_string_value(json_object_get(j, "next")), next);
    json_decref(j);
}

static uint64_t
depth(fixture_t *f)
{
    uint64_t n = 0;
    pt_error_t err;
    assert_int_equal(pull_depth(f->s, &n, &err), 0);
    return n;
}

static int
ack(fixture_t *f, uint64_t seq, bool *acked)
{
    pt_error_t err;
    return pull_ack(f->s, seq, 1764640001000, acked, &err);
}

/* ---- tests ---- */

/* Held in any order, listed in seq order (keys are big-endian: 256 after 255, not after 2). */
static void
test_list_order(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(put(f, 256, "m-256"), PULL_HELD);
    assert_int_equal(put(f, 2, "m-2"), PULL_HELD);
    assert_int_equal(put(f, 255, "m-255"), PULL_HELD);
    assert_int_equal(put(f, 1ull << 40, "m-big"), PULL_HELD);
    fx_commit(f);
    assert_page(list(f, 0, 100), "2,255,256,1099511627776", "1099511627776");
    json_t *j = list(f, 0, 1);
    json_t *doc = json_array_get(json_object_get(j, "messages"), 0);
    assert_int_equal(json_integer_value(json_object_get(doc, "formatVersion")), 1);
    json_t *d = json_object_get(doc, "delivery");
    assert_string_equal(json_string_value(json_object_get(d, "sender")), "pole_emploi");
    assert_false(json_boolean_value(json_object_get(d, "replay")));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(doc, "envelope"), "messageId")), "m-2");
    json_decref(j);
    assert_int_equal(depth(f), 4);
}

static void
test_after_and_limit(void **state)
{
    fixture_t *f = *state;
    for (uint64_t s = 10; s <= 50; s += 10) {
        char id[16];
        snprintf(id, sizeof id, "m-%02u", (unsigned)s);
        assert_int_equal(put(f, s, id), PULL_HELD);
    }
    fx_commit(f);
    assert_page(list(f, 0, 2), "10,20", "20");
    assert_page(list(f, 20, 2), "30,40", "40");
    assert_page(list(f, 25, 100), "30,40,50", "50");
    assert_page(list(f, 50, 2), "", "50");
    assert_page(list(f, 999, 2), "", "999");
    char *text = NULL;
    size_t len;
    pt_error_t err;
    assert_int_equal(pull_list(f->s, 0, 0, &text, &len, &err), PT_EINVALID);
    assert_int_equal(pull_list(f->s, 0, PT_PULL_LIMIT_MAX + 1, &text, &len, &err), PT_EINVALID);
    assert_null(text);
    assert_page(list(f, 0, PT_PULL_LIMIT_MAX), "10,20,30,40,50", "50");
}

/* A redelivery of a seq held is not held twice; once acked it is SEEN (ack the broker now). */
static void
test_redelivery_not_duplicated(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(put(f, 7, "m-7"), PULL_HELD);
    fx_commit(f);
    assert_int_equal(put_full(f, 7, "m-7", 2, false), PULL_ALREADY);
    assert_int_equal(put_full(f, 7, "m-7", 3, false), PULL_ALREADY);
    assert_int_equal(depth(f), 1);
    json_t *j = list(f, 0, 10);
    json_t *d = json_object_get(json_array_get(json_object_get(j, "messages"), 0), "delivery");
    assert_int_equal(json_integer_value(json_object_get(d, "attempt")), 1); /* as first held */
    json_decref(j);
    bool acked = false;
    assert_int_equal(ack(f, 7, &acked), 0);
    assert_true(acked);
    fx_commit(f);
    assert_int_equal(put_full(f, 7, "m-7", 4, false), PULL_SEEN);
    assert_int_equal(depth(f), 0);
    assert_page(list(f, 0, 10), "", "0");
}

/* Acks: idempotent once acked, PT_ENOTFOUND for a seq never held. */
static void
test_ack_idempotent(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(put(f, 3, "m-3"), PULL_HELD);
    assert_int_equal(put(f, 4, "m-4"), PULL_HELD);
    fx_commit(f);
    bool acked = false;
    assert_int_equal(ack(f, 3, &acked), 0);
    assert_true(acked);
    assert_int_equal(ack(f, 3, &acked), 0); /* again in the same turn */
    assert_false(acked);
    fx_commit(f);
    assert_int_equal(ack(f, 3, &acked), 0);
    assert_false(acked);
    assert_int_equal(ack(f, 99, &acked), PT_ENOTFOUND);
    assert_page(list(f, 0, 10), "4", "4");
    bool seen = false;
    pt_error_t err;
    assert_int_equal(spool_inbound_seen(f->s, 3, &seen, &err), 0);
    assert_true(seen);
    assert_int_equal(spool_inbound_seen(f->s, 4, &seen, &err), 0);
    assert_false(seen);
}

/* A replay of a seq handed over is held again, marked; a redelivery of that replay after
 * its ack is SEEN (not a third hand-over); a new replay request is held again. */
static void
test_replay_held_again(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(put(f, 5, "m-5"), PULL_HELD);
    assert_int_equal(ack(f, 5, NULL), 0);
    fx_commit(f);
    assert_int_equal(put_full(f, 5, "m-5", 1, true), PULL_HELD);
    fx_commit(f);
    json_t *j = list(f, 0, 10);
    json_t *d = json_object_get(json_array_get(json_object_get(j, "messages"), 0), "delivery");
    assert_true(json_boolean_value(json_object_get(d, "replay")));
    json_decref(j);
    assert_int_equal(put_full(f, 5, "m-5", 2, true), PULL_ALREADY); /* the replay, redelivered */
    bool acked = false;
    assert_int_equal(ack(f, 5, &acked), 0);
    assert_true(acked);
    fx_commit(f);
    assert_int_equal(put_full(f, 5, "m-5", 3, true), PULL_SEEN);
    assert_int_equal(put_full(f, 5, "m-5", 1, true), PULL_HELD); /* asked for again */
    assert_int_equal(depth(f), 1);
}

/* A replay while the first delivery is still held re-marks it a replay (nothing doubled). */
static void
test_replay_of_held(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(put(f, 8, "m-8"), PULL_HELD);
    assert_int_equal(put_full(f, 8, "m-8", 1, true), PULL_HELD);
    assert_int_equal(put_full(f, 8, "m-8", 1, true), PULL_ALREADY);
    fx_commit(f);
    assert_int_equal(depth(f), 1);
    json_t *j = list(f, 0, 10);
    json_t *d = json_object_get(json_array_get(json_object_get(j, "messages"), 0), "delivery");
    assert_true(json_boolean_value(json_object_get(d, "replay")));
    json_decref(j);
}

/* Nothing held is durable before the commit; what was committed survives a reopen, and so
 * does an ack. */
static void
test_survives_reopen(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(put(f, 1, "m-1"), PULL_HELD);
    assert_int_equal(put(f, 2, "m-2"), PULL_HELD);
    fx_commit(f);
    assert_int_equal(put(f, 3, "m-3"), PULL_HELD); /* not committed */
    fx_reopen(f);
    assert_page(list(f, 0, 10), "1,2", "2");
    assert_int_equal(ack(f, 1, NULL), 0);
    fx_commit(f);
    fx_reopen(f);
    assert_page(list(f, 0, 10), "2", "2");
    assert_int_equal(put_full(f, 1, "m-1", 2, false), PULL_SEEN);
    bool acked = true;
    assert_int_equal(ack(f, 1, &acked), 0);
    assert_false(acked);
}

/* An envelope that does not decode is REFUSED and nothing is held. */
static void
test_refused(void **state)
{
    fixture_t *f = *state;
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff};
    outbox_delivery_t d = {.seq = 9,
                           .attempt = 1,
                           .message_id = "m-9",
                           .sender = "caf",
                           .envelope = junk,
                           .envelope_len = sizeof junk};
    pull_status_t st = 0;
    pt_error_t err;
    assert_true(pull_put(f->s, &d, 0, &st, &err) < 0);
    assert_int_equal(st, PULL_REFUSED);
    assert_int_equal(depth(f), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_after_and_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redelivery_not_duplicated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_held_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_of_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
