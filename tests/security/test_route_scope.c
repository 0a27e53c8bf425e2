/* Security: a to_field route reaches only the partners its allow-list names. The sender
 * chooses the field's value, so without the list a Mission Locale could address a
 * referral (a person's identity, a free-text reason) to the CAF or the MSA, against the
 * purpose limitation docs/routing.md promises. Real ptibusd (the Meuse routes of
 * tests/support/daemon.c), real CURVE clients. */
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
#define QUIET_MS 500

typedef struct fx {
    td_net_t net;
    client_t *ml, *dep, *caf, *msa, *ft;
} fx_t;

static int
setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    td_net_init(&f->net, "route-scope", NULL);
    if (td_broker_start(&f->net) != 0)
        return -1;
    assert_int_equal(td_client_session(&f->net, "ml_nord", 16, &f->ml), 0);
    assert_int_equal(td_client_session(&f->net, "departement", 16, &f->dep), 0);
    assert_int_equal(td_client_session(&f->net, "caf", 16, &f->caf), 0);
    assert_int_equal(td_client_session(&f->net, "msa", 16, &f->msa), 0);
    assert_int_equal(td_client_session(&f->net, "pole_emploi", 16, &f->ft), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *f = *state;
    client_close(&f->ml);
    client_close(&f->dep);
    client_close(&f->caf);
    client_close(&f->msa);
    client_close(&f->ft);
    td_net_fini(&f->net);
    free(f);
    return 0;
}

/* Message ids of the Deliver frames c receives within wait_ms (acknowledged), at most
 * want; receipts and other frames are ignored. */
static size_t
delivered(client_t *c, size_t want, int wait_ms, char ids[][72])
{
    int64_t deadline = tu_now_ms() + wait_ms;
    size_t n = 0;
    pt_error_t err;
    while (n < want) {
        int left = (int)(deadline - tu_now_ms());
        Ptibus__V1__Frame *fr;
        if (left <= 0 || client_recv(c, left, &fr, &err) != 0)
            break;
        if (fr->kind_case == PTIBUS__V1__FRAME__KIND_DELIVER) {
            snprintf(ids[n++], 72, "%s", fr->deliver->message_id);
            assert_int_equal(client_deliver_ack(c, fr->deliver->seq, true, NULL, &err), 0);
        }
        codec_free((ProtobufCMessage **)&fr);
    }
    return n;
}

static void
expect_nothing(client_t *c, const char *who)
{
    char ids[4][72];
    if (delivered(c, 1, QUIET_MS, ids) != 0)
        fail_msg("%s received %s, which no route allows", who, ids[0]);
}

static void
expect_refused(client_t *c, const Ptibus__V1__Envelope *env, const char *path, const char *who)
{
    client_result_t res;
    pt_error_t err;
    assert_int_equal(client_publish(c, env, TIMEOUT_MS, &res, &err), 0);
    if (res.nack_code != PTIBUS__V1__NACK_CODE__NACK_CODE_NOT_ALLOWED)
        fail_msg("%s addressed to %s: nack code %d (%s), wanted NOT_ALLOWED", env->message_id, who,
                 res.nack_code, res.nack_code ? res.reason : "accepted");
    assert_false(res.retryable);
    assert_string_equal(res.field_path, path);
    char want[128];
    snprintf(want, sizeof want, "\"%s\" is not a recipient this route allows", who);
    assert_non_null(strstr(res.reason, want));
}

/* A Mission Locale addresses a referral to the CAF, then to the MSA: both refused, and
 * neither payer receives anything. */
static void
test_referral_to_a_payer_is_refused(void **state)
{
    fx_t *f = *state;
    td_sample_t s;
    td_sample_referral(&s, "ml-ref-caf", "caf");
    expect_refused(f->ml, &s.env, "referral.targetOrg.partnerId", "caf");
    td_sample_referral(&s, "ml-ref-msa", "msa");
    expect_refused(f->ml, &s.env, "referral.targetOrg.partnerId", "msa");
    expect_nothing(f->caf, "caf");
    expect_nothing(f->msa, "msa");
    assert_true(td_log_contains(&f->net, "is not a recipient this route allows"));
}

/* An orientation naming a payer as its référent reaches that payer only through the
 * payer rule (by_field), never through to_field. */
static void
test_orientation_referent_outside_the_list(void **state)
{
    fx_t *f = *state;
    td_sample_t s;
    td_sample_orientation(&s, "dep-ori-msa");
    s.org_a.partner_id = "msa"; /* the person's payer is the CAF */
    expect_refused(f->dep, &s.env, "orientation.referentOrg.partnerId", "msa");
    expect_nothing(f->msa, "msa");
    expect_nothing(f->caf, "caf");
    expect_nothing(f->ft, "pole_emploi");
}

/* A target in the list still receives it. */
static void
test_allowed_target_receives(void **state)
{
    fx_t *f = *state;
    td_sample_t s;
    client_result_t res;
    pt_error_t err;
    char ids[4][72];
    td_sample_referral(&s, "ml-ref-ft", "pole_emploi");
    assert_int_equal(client_publish(f->ml, &s.env, TIMEOUT_MS, &res, &err), 0);
    assert_int_equal(res.nack_code, 0);
    assert_int_equal(delivered(f->ft, 1, TIMEOUT_MS, ids), 1);
    assert_string_equal(ids[0], "ml-ref-ft");
    expect_nothing(f->caf, "caf");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_referral_to_a_payer_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orientation_referent_outside_the_list, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_allowed_target_receives, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
