/* Unit tests of the loop turn (broker/batch.c) on a real journal: frames leave after the
 * commit in the order they were pushed; after a failed turn each frame follows its rule
 * (dropped, turned into a retryable Nack, replaced by its fallback, or sent as it is),
 * nothing of the turn is kept, and the next turn starts clean. */
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

#include "batch.h"
#include "codec.h"
#include "journal.h"
#include "metrics.h"
#include "ptibus/v1/admin.pb-c.h"
#include "ptibus/v1/protocol.pb-c.h"
#include "testutil.h"

static const uint8_t hmac_key[32] = "0123456789abcdef0123456789abcdef";

#define MAX_SENT 16

typedef struct sent {
    batch_dest_t dest;
    uint8_t rid[8];
    size_t rid_len;
    uint8_t buf[512];
    size_t len;
} sent_t;

typedef struct fx {
    char *dir;
    journal_t *j;
    batch_t *b;
    sent_t sent[MAX_SENT];
    size_t n_sent;
} fx_t;

static int
record_send(void *arg, batch_dest_t dest, const uint8_t *rid, size_t rid_len, const uint8_t *buf,
            size_t len)
{
    fx_t *f = arg;
    assert_true(f->n_sent < MAX_SENT && rid_len <= 8 && len <= 512);
    sent_t *s = &f->sent[f->n_sent++];
    s->dest = dest;
    memcpy(s->rid, rid, rid_len);
    s->rid_len = rid_len;
    memcpy(s->buf, buf, len);
    s->len = len;
    return 0;
}

static int
setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    pt_error_t err;
    assert_true(sodium_init() >= 0);
    f->dir = tu_tmpdir("batch");
    journal_options_t o = {.dir = f->dir, .hmac_key = hmac_key, .unsafe_nosync = true};
    char jdir[4200];
    snprintf(jdir, sizeof jdir, "%s/j", f->dir);
    o.dir = jdir;
    assert_int_equal(journal_open(&o, &f->j, &err), 0);
    assert_int_equal(batch_new(f->j, &f->b, &err), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *f = *state;
    batch_destroy(&f->b);
    assert_null(f->b);
    batch_destroy(NULL);
    journal_close(&f->j);
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

/* A PublishAck for seq, as ingest would push it. */
static void
push_ack(fx_t *f, const char *rid, const char *id, uint64_t seq, batch_rule_t rule,
         metrics_series_t *counter)
{
    Ptibus__V1__Frame fr = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__PublishAck ack = PTIBUS__V1__PUBLISH_ACK__INIT;
    ack.message_id = (char *)id;
    ack.seq = seq;
    fr.kind_case = PTIBUS__V1__FRAME__KIND_PUBLISH_ACK;
    fr.publish_ack = &ack;
    batch_frame_t bf = {.dest = BATCH_PARTNERS,
                        .rid = (const uint8_t *)rid,
                        .rid_len = strlen(rid),
                        .msg = &fr.base,
                        .rule = rule,
                        .message_id = id,
                        .counter = counter};
    assert_int_equal(batch_push(f->b, &bf), 0);
}

/* An admin answer with text in error, and its fallback. */
static void
push_answer(fx_t *f, const char *rid, const char *text, batch_rule_t rule)
{
    Ptibus__V1__AdminResponse r = PTIBUS__V1__ADMIN_RESPONSE__INIT, alt = r;
    r.request_id = (char *)text;
    alt.request_id = (char *)text;
    alt.error = "nothing was changed";
    batch_frame_t bf = {.dest = BATCH_ADMIN,
                        .rid = (const uint8_t *)rid,
                        .rid_len = strlen(rid),
                        .msg = &r.base,
                        .rule = rule,
                        .fallback = &alt.base};
    assert_int_equal(batch_push(f->b, &bf), 0);
}

static Ptibus__V1__Frame *
sent_frame(fx_t *f, size_t i)
{
    return ptibus__v1__frame__unpack(NULL, f->sent[i].len, f->sent[i].buf);
}

static Ptibus__V1__AdminResponse *
sent_answer(fx_t *f, size_t i)
{
    return ptibus__v1__admin_response__unpack(NULL, f->sent[i].len, f->sent[i].buf);
}

static void
append_one(fx_t *f)
{
    journal_txn_t *t = batch_txn(f->b);
    assert_non_null(t);
    journal_record_t rec = {.kind = PT_REC_ADMIN, .partner = "admin:test", .reason = "x"};
    uint64_t seq;
    pt_error_t err;
    assert_int_equal(journal_append(t, &rec, &seq, &err), 0);
}

static void
test_committed_frames_leave_in_order(void **state)
{
    fx_t *f = *state;
    metrics_t *m = NULL;
    assert_int_equal(metrics_new(&m, NULL), 0);
    metrics_series_t *c = metrics_counter(m, "acks_total", "Acks.", NULL, NULL);
    assert_false(batch_open(f->b));
    append_one(f);
    assert_true(batch_open(f->b));
    push_ack(f, "r1", "m-1", 1, BATCH_RETRY, c);
    push_answer(f, "a1", "q-1", BATCH_FALLBACK);
    push_ack(f, "r2", "m-2", 1, BATCH_DROP, c);
    push_answer(f, "a2", "q-2", BATCH_ALWAYS);
    assert_int_equal(batch_frames(f->b), 4);
    assert_int_equal(batch_commit(f->b), 0);
    assert_int_equal(journal_last_seq(f->j), 1);
    assert_int_equal(f->n_sent, 0); /* nothing leaves before batch_send */
    batch_send(f->b, record_send, f);
    assert_int_equal(f->n_sent, 4);
    const char *rids[] = {"r1", "a1", "r2", "a2"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(f->sent[i].rid_len, 2);
        assert_memory_equal(f->sent[i].rid, rids[i], 2);
        assert_int_equal(f->sent[i].dest, i % 2 ? BATCH_ADMIN : BATCH_PARTNERS);
    }
    Ptibus__V1__Frame *fr = sent_frame(f, 2);
    assert_int_equal(fr->kind_case, PTIBUS__V1__FRAME__KIND_PUBLISH_ACK);
    assert_string_equal(fr->publish_ack->message_id, "m-2");
    ptibus__v1__frame__free_unpacked(fr, NULL);
    Ptibus__V1__AdminResponse *a = sent_answer(f, 1);
    assert_string_equal(a->error, ""); /* the answer itself, not its fallback */
    ptibus__v1__admin_response__free_unpacked(a, NULL);
    char *text;
    size_t len;
    assert_int_equal(metrics_render(m, &text, &len), 0);
    assert_non_null(strstr(text, "acks_total 2"));
    free(text);
    assert_int_equal(batch_frames(f->b), 0);
    metrics_destroy(&m);
}

static void
test_failed_turn_follows_each_rule(void **state)
{
    fx_t *f = *state;
    metrics_t *m = NULL;
    assert_int_equal(metrics_new(&m, NULL), 0);
    metrics_series_t *c = metrics_counter(m, "acks_total", "Acks.", NULL, NULL);
    append_one(f);
    push_ack(f, "r1", "m-1", 1, BATCH_RETRY, c);
    push_ack(f, "r2", "m-2", 1, BATCH_DROP, c);
    push_answer(f, "a1", "q-1", BATCH_FALLBACK);
    push_answer(f, "a2", "q-2", BATCH_ALWAYS);
    pt_error_t why;
    pt_error_set(&why, PT_EJOURNALFULL, "journal", "full");
    batch_fail(f->b, PT_EJOURNALFULL, &why);
    batch_fail(f->b, -EIO, &why); /* the first failure is kept */
    assert_int_equal(batch_failed(f->b), PT_EJOURNALFULL);
    assert_null(batch_txn(f->b)); /* nothing more may be written */
    assert_int_equal(batch_commit(f->b), PT_EJOURNALFULL);
    assert_int_equal(journal_last_seq(f->j), 0); /* nothing of the turn was kept */
    batch_send(f->b, record_send, f);
    assert_int_equal(f->n_sent, 3); /* the receipt-like frame was dropped */
    Ptibus__V1__Frame *fr = sent_frame(f, 0);
    assert_int_equal(fr->kind_case, PTIBUS__V1__FRAME__KIND_NACK);
    assert_int_equal(fr->nack->code, PTIBUS__V1__NACK_CODE__NACK_CODE_JOURNAL_FULL);
    assert_true(fr->nack->retryable);
    assert_int_equal(fr->nack->seq, 0);
    assert_string_equal(fr->nack->message_id, "m-1");
    ptibus__v1__frame__free_unpacked(fr, NULL);
    Ptibus__V1__AdminResponse *a = sent_answer(f, 1);
    assert_string_equal(a->request_id, "q-1");
    assert_string_equal(a->error, "nothing was changed");
    ptibus__v1__admin_response__free_unpacked(a, NULL);
    a = sent_answer(f, 2);
    assert_string_equal(a->request_id, "q-2");
    assert_string_equal(a->error, "");
    ptibus__v1__admin_response__free_unpacked(a, NULL);
    char *text;
    size_t len;
    assert_int_equal(metrics_render(m, &text, &len), 0);
    assert_non_null(strstr(text, "acks_total 0")); /* nothing counted as acknowledged */
    free(text);
    /* The next turn starts clean. */
    assert_int_equal(batch_failed(f->b), 0);
    append_one(f);
    assert_int_equal(batch_commit(f->b), 0);
    assert_int_equal(journal_last_seq(f->j), 1);
    metrics_destroy(&m);
}

static void
test_other_failure_is_unavailable(void **state)
{
    fx_t *f = *state;
    append_one(f);
    push_ack(f, "r1", "m-1", 1, BATCH_RETRY, NULL);
    batch_fail(f->b, -EIO, NULL);
    assert_int_equal(batch_failed(f->b), PT_ECLOSED);
    assert_int_equal(batch_commit(f->b), PT_ECLOSED);
    batch_send(f->b, record_send, f);
    Ptibus__V1__Frame *fr = sent_frame(f, 0);
    assert_int_equal(fr->nack->code, PTIBUS__V1__NACK_CODE__NACK_CODE_UNAVAILABLE);
    assert_true(fr->nack->retryable);
    ptibus__v1__frame__free_unpacked(fr, NULL);
}

static void
test_empty_turn_commits_nothing(void **state)
{
    fx_t *f = *state;
    push_answer(f, "a1", "q-1", BATCH_ALWAYS);
    assert_false(batch_open(f->b));
    assert_int_equal(batch_commit(f->b), 0);
    batch_send(f->b, record_send, f);
    assert_int_equal(f->n_sent, 1);
    assert_int_equal(journal_last_seq(f->j), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_committed_frames_leave_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_turn_follows_each_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_failure_is_unavailable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_turn_commits_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
