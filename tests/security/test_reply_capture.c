/* Security: a reply must reach the sender of the message it answers, and only them.
 * Message ids are chosen by each sender, so another partner can reuse a prescriber's
 * next (predictable) id, or two partners' id schemes can collide. Before the fix a
 * reply routed to_correlated_sender went to the first message with that id routed to
 * the replier: a partner that planted a referral with the prescriber's next id received
 * the answer (a refusal reason about a person's health), and the prescriber nothing.
 * Real ptibusd, real CURVE clients: departement is the prescriber P, ml_nord the
 * attacker X, pole_emploi the replier R, region a partner that received nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "daemon.h"
#include "samples.h"
#include "testutil.h"

#define TIMEOUT_MS 5000
#define QUIET_MS 500 /* how long "nothing arrives" is watched */
#define PLANTED_ID "dep-ref-0042"

typedef struct got {
    uint64_t seq;
    char message_id[72];
    char sender[40];
    uint64_t correlation_seq; /* of the delivered envelope */
    int body_case;
} got_t;

typedef struct fx {
    td_net_t net;
    client_t *p, *x, *r, *other;
} fx_t;

static int
setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    td_net_options_t o = {.ack_timeout = "30s"}; /* no redelivery noise */
    td_net_init(&f->net, "reply-capture", &o);
    if (td_broker_start(&f->net) != 0)
        return -1;
    assert_int_equal(td_client_session(&f->net, "departement", 16, &f->p), 0);
    assert_int_equal(td_client_session(&f->net, "ml_nord", 16, &f->x), 0);
    assert_int_equal(td_client_session(&f->net, "pole_emploi", 16, &f->r), 0);
    assert_int_equal(td_client_session(&f->net, "region", 16, &f->other), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *f = *state;
    client_close(&f->p);
    client_close(&f->x);
    client_close(&f->r);
    client_close(&f->other);
    td_net_fini(&f->net);
    free(f);
    return 0;
}

static client_result_t
publish(client_t *c, const Ptibus__V1__Envelope *env)
{
    client_result_t res;
    pt_error_t err;
    if (client_publish(c, env, TIMEOUT_MS, &res, &err) != 0)
        fail_msg("publish %s: %s", env->message_id, err.msg);
    return res;
}

static void
publish_ok(client_t *c, const Ptibus__V1__Envelope *env)
{
    client_result_t res = publish(c, env);
    if (res.nack_code != 0)
        fail_msg("publish %s refused: %s", env->message_id, res.reason);
}

static void
note(const Ptibus__V1__Deliver *d, got_t *g)
{
    ProtobufCMessage *m = NULL;
    pt_error_t err;
    g->seq = d->seq;
    snprintf(g->message_id, sizeof g->message_id, "%s", d->message_id);
    snprintf(g->sender, sizeof g->sender, "%s", d->sender);
    assert_int_equal(codec_unpack(&ptibus__v1__envelope__descriptor, d->envelope.data,
                                  d->envelope.len, 1 << 20, &m, &err),
                     0);
    const Ptibus__V1__Envelope *env = (const Ptibus__V1__Envelope *)m;
    g->correlation_seq = env->correlation_seq;
    g->body_case = (int)env->body_case;
    codec_free(&m);
}

/* Receives and acknowledges Deliver frames for up to wait_ms, stopping once `want`
 * have come; other frames (receipts) are ignored. Returns how many came. */
static size_t
collect(client_t *c, size_t want, int wait_ms, got_t *out, size_t max)
{
    int64_t deadline = tu_now_ms() + wait_ms;
    size_t n = 0;
    pt_error_t err;
    while (n < want && n < max) {
        int left = (int)(deadline - tu_now_ms());
        Ptibus__V1__Frame *fr;
        if (left <= 0 || client_recv(c, left, &fr, &err) != 0)
            break;
        if (fr->kind_case == PTIBUS__V1__FRAME__KIND_DELIVER) {
            note(fr->deliver, &out[n++]);
            assert_int_equal(client_deliver_ack(c, fr->deliver->seq, true, NULL, &err), 0);
        }
        codec_free((ProtobufCMessage **)&fr);
    }
    return n;
}

static void
expect_nothing(client_t *c, const char *who)
{
    got_t g[4];
    size_t n = collect(c, 1, QUIET_MS, g, 4);
    if (n != 0)
        fail_msg("%s received %s from %s, which is not for it", who, g[0].message_id, g[0].sender);
}

/* X plants a referral with P's next id to R, then P sends its own; R receives both and
 * returns the seq of P's (by its Deliver). */
static uint64_t
plant_and_refer(fx_t *f)
{
    td_sample_t s;
    got_t g[4];
    td_sample_referral(&s, PLANTED_ID, "pole_emploi");
    publish_ok(f->x, &s.env);
    td_sample_referral(&s, PLANTED_ID, "pole_emploi");
    publish_ok(f->p, &s.env);
    assert_int_equal(collect(f->r, 2, TIMEOUT_MS, g, 4), 2);
    assert_string_equal(g[0].message_id, PLANTED_ID);
    assert_string_equal(g[1].message_id, PLANTED_ID);
    assert_string_equal(g[0].sender, "ml_nord");
    assert_string_equal(g[1].sender, "departement");
    return g[1].seq;
}

/* R answers P's referral naming it by its seq: P receives the answer, X nothing. */
static void
test_reply_by_seq_reaches_the_prescriber_only(void **state)
{
    fx_t *f = *state;
    td_sample_t s;
    got_t g[4];
    uint64_t seq_p = plant_and_refer(f);
    td_sample_referral_status(&s, "ft-st-1", PLANTED_ID);
    s.referral_status.state = PTIBUS__V1__REFERRAL_STATE__REFERRAL_STATE_REFUSED;
    s.referral_status.reason = "refus : contre-indication médicale";
    s.env.correlation_seq = seq_p;
    publish_ok(f->r, &s.env);
    assert_int_equal(collect(f->p, 1, TIMEOUT_MS, g, 4), 1);
    assert_string_equal(g[0].message_id, "ft-st-1");
    assert_string_equal(g[0].sender, "pole_emploi");
    assert_int_equal(g[0].body_case, PTIBUS__V1__ENVELOPE__BODY_REFERRAL_STATUS);
    assert_int_equal(g[0].correlation_seq, seq_p);
    expect_nothing(f->x, "the attacker ml_nord");
    expect_nothing(f->other, "region");

    /* The seq alone is enough. */
    td_sample_referral_status(&s, "ft-st-2", "");
    s.env.correlation_seq = seq_p;
    publish_ok(f->r, &s.env);
    assert_int_equal(collect(f->p, 1, TIMEOUT_MS, g, 4), 1);
    assert_string_equal(g[0].message_id, "ft-st-2");
    expect_nothing(f->x, "the attacker ml_nord");
}

/* The same id from two senders, without the seq: refused, never guessed. */
static void
test_ambiguous_correlation_id_is_refused(void **state)
{
    fx_t *f = *state;
    td_sample_t s;
    plant_and_refer(f);
    td_sample_referral_status(&s, "ft-st-3", PLANTED_ID);
    client_result_t res = publish(f->r, &s.env);
    assert_int_equal(res.nack_code, PTIBUS__V1__NACK_CODE__NACK_CODE_INVALID);
    assert_false(res.retryable);
    assert_string_equal(res.field_path, "correlationId");
    assert_non_null(strstr(res.reason, "ambiguous correlation id"));
    expect_nothing(f->x, "the attacker ml_nord");
    expect_nothing(f->p, "departement");
    assert_true(td_log_contains(&f->net, "ambiguous correlation id"));
}

/* A seq names only a message routed to the one who answers, and must agree with the
 * correlation_id when both are given. */
static void
test_seq_of_a_message_not_routed_to_the_replier(void **state)
{
    fx_t *f = *state;
    td_sample_t s;
    uint64_t seq_p = plant_and_refer(f);
    /* region never received P's referral: it cannot answer it. */
    td_sample_referral_status(&s, "reg-st-1", "");
    s.env.correlation_seq = seq_p;
    client_result_t res = publish(f->other, &s.env);
    assert_int_equal(res.nack_code, PTIBUS__V1__NACK_CODE__NACK_CODE_NOT_ALLOWED);
    assert_string_equal(res.field_path, "correlationSeq");
    /* A seq that does not exist: the same answer (no oracle of others' traffic). */
    char same[512];
    snprintf(same, sizeof same, "%s", res.reason);
    td_sample_referral_status(&s, "reg-st-2", "");
    s.env.correlation_seq = seq_p + 1000;
    res = publish(f->other, &s.env);
    assert_int_equal(res.nack_code, PTIBUS__V1__NACK_CODE__NACK_CODE_NOT_ALLOWED);
    assert_string_equal(res.reason, same);
    /* R, with P's seq but another message's id. */
    td_sample_referral_status(&s, "ft-st-4", "dep-ref-other");
    s.env.correlation_seq = seq_p;
    res = publish(f->r, &s.env);
    assert_int_equal(res.nack_code, PTIBUS__V1__NACK_CODE__NACK_CODE_NOT_ALLOWED);
    assert_string_equal(res.field_path, "correlationSeq");
    expect_nothing(f->p, "departement");
    expect_nothing(f->x, "the attacker ml_nord");
}

/* An id used by one sender only still correlates without the seq (today's adapters). */
static void
test_unique_id_still_correlates(void **state)
{
    fx_t *f = *state;
    td_sample_t s;
    got_t g[4];
    td_sample_referral(&s, "dep-ref-unique-7", "pole_emploi");
    publish_ok(f->p, &s.env);
    assert_int_equal(collect(f->r, 1, TIMEOUT_MS, g, 4), 1);
    td_sample_referral_status(&s, "ft-st-5", "dep-ref-unique-7");
    publish_ok(f->r, &s.env);
    assert_int_equal(collect(f->p, 1, TIMEOUT_MS, g, 4), 1);
    assert_string_equal(g[0].message_id, "ft-st-5");
    expect_nothing(f->x, "ml_nord");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reply_by_seq_reaches_the_prescriber_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ambiguous_correlation_id_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seq_of_a_message_not_routed_to_the_replier, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unique_id_still_correlates, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
