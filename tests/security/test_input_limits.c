/* What one partner can make the broker take in (issue 10, items 7 and 8, and the
 * routing-id squat): per-partner message rate and journal bytes quotas answered
 * UNAVAILABLE (retryable, nothing journaled), a flood of refusals answered but journaled
 * only at a bounded rate, a cap on live connections and on a partner's new connections,
 * and no client-chosen routing ids. Real ptibusd on 127.0.0.1, real CURVE clients. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "codec.h"
#include "daemon.h"
#include "journal.h"
#include "keys.h"
#include "samples.h"
#include "testutil.h"

#define TIMEOUT_MS 5000

typedef struct fx {
    td_net_t net;
    client_t *c[16];
} fx_t;

static int
start(void **state, const char *limits)
{
    fx_t *f = calloc(1, sizeof *f);
    td_net_options_t o = {.extra_limits = limits};
    td_net_init(&f->net, "limits", &o);
    if (td_broker_start(&f->net) != 0)
        return -1;
    *state = f;
    return 0;
}

static int
setup_rate(void **state)
{
    return start(state, "  partner_rate: 20\n"); /* burst 200 */
}

static int
setup_bytes(void **state)
{
    return start(state, "  partner_bytes_per_hour: 1MiB\n");
}

static int
setup_default(void **state)
{
    return start(state, NULL);
}

static int
setup_connections(void **state)
{
    return start(state, "  max_connections: 4\n  partner_handshakes_per_minute: 1000\n");
}

static int
setup_handshakes(void **state)
{
    return start(state, "  partner_handshakes_per_minute: 3\n");
}

static int
teardown(void **state)
{
    fx_t *f = *state;
    for (int i = 0; i < 16; i++)
        client_close(&f->c[i]);
    td_net_fini(&f->net);
    free(f);
    return 0;
}

typedef struct tally {
    size_t acked, unavailable, invalid, journaled_refusals;
    char reason[512];
} tally_t;

/* Publishes n messages made by make(i) windowed, and counts the answers. */
static tally_t
publish_many(client_t *c, int n, void (*make)(td_sample_t *, int))
{
    tally_t t = {0};
    pt_error_t err;
    int sent = 0;
    size_t answered = 0;
    while (answered < (size_t)n) {
        if (sent < n && sent - (int)answered < 128) {
            td_sample_t s;
            make(&s, sent++);
            assert_int_equal(client_publish_async(c, &s.env, &err), 0);
            continue;
        }
        Ptibus__V1__Frame *fr;
        if (client_recv(c, TIMEOUT_MS, &fr, &err) != 0)
            fail_msg("after %zu answers: %s", answered, err.msg);
        if (fr->kind_case == PTIBUS__V1__FRAME__KIND_PUBLISH_ACK) {
            t.acked++, answered++;
        } else if (fr->kind_case == PTIBUS__V1__FRAME__KIND_NACK) {
            answered++;
            Ptibus__V1__Nack *k = fr->nack;
            if (k->code == PTIBUS__V1__NACK_CODE__NACK_CODE_UNAVAILABLE) {
                assert_true(k->retryable);
                assert_int_equal(k->seq, 0); /* nothing journaled */
                t.unavailable++;
                snprintf(t.reason, sizeof t.reason, "%s", k->reason);
            } else if (k->code == PTIBUS__V1__NACK_CODE__NACK_CODE_INVALID) {
                t.invalid++;
                t.journaled_refusals += k->seq != 0;
            } else {
                fail_msg("unexpected nack %d: %s", k->code, k->reason);
            }
        }
        codec_free((ProtobufCMessage **)&fr);
    }
    return t;
}

static void
make_orientation(td_sample_t *s, int i)
{
    char id[32];
    snprintf(id, sizeof id, "q-%05d", i);
    td_sample_orientation(s, id);
}

static void
make_big_referral(td_sample_t *s, int i)
{
    static char reason[3 * 2000 + 1];
    for (size_t k = 0; k < 2000; k++)
        memcpy(reason + 3 * k, "\xe2\x82\xac", 3);
    char id[32];
    snprintf(id, sizeof id, "big-%05d", i);
    td_sample_referral(s, id, "ml_nord");
    s->referral.reason = reason;
}

static void
make_invalid(td_sample_t *s, int i)
{
    make_orientation(s, i);
    s->env.created_at = NULL; /* required: INVALID */
}

static void
test_partner_rate_quota(void **state)
{
    fx_t *f = *state;
    assert_int_equal(td_client_session(&f->net, "departement", 0, &f->c[0]), 0);
    tally_t t = publish_many(f->c[0], 600, make_orientation);
    print_message("rate quota: %zu acked, %zu UNAVAILABLE\n", t.acked, t.unavailable);
    assert_true(t.acked >= 200);
    assert_true(t.unavailable > 0);
    assert_non_null(strstr(t.reason, "limits.partner_rate"));
    /* Another partner is not affected by the first one's quota. */
    assert_int_equal(td_client_session(&f->net, "caf", 0, &f->c[1]), 0);
    td_sample_t s;
    td_sample_beneficiary_event(&s, "other-partner");
    client_result_t res;
    pt_error_t err;
    assert_int_equal(client_publish(f->c[1], &s.env, TIMEOUT_MS, &res, &err), 0);
    assert_int_equal(res.nack_code, 0);
}

static void
test_partner_bytes_quota(void **state)
{
    fx_t *f = *state;
    assert_int_equal(td_client_session(&f->net, "departement", 0, &f->c[0]), 0);
    tally_t t = publish_many(f->c[0], 400, make_big_referral); /* some 2.4 MB */
    print_message("bytes quota: %zu acked, %zu UNAVAILABLE\n", t.acked, t.unavailable);
    assert_true(t.acked > 0 && t.acked < 400);
    assert_true(t.unavailable > 0);
    assert_non_null(strstr(t.reason, "limits.partner_bytes_per_hour"));
}

/* 2000 invalid messages in a burst: every one is answered INVALID, but only the first
 * ~200 (and 20 per second after them) are journaled as REJECTED. */
static void
test_refusal_flood_journaled_at_a_bounded_rate(void **state)
{
    fx_t *f = *state;
    assert_int_equal(td_client_session(&f->net, "departement", 0, &f->c[0]), 0);
    int64_t t0 = tu_now_ms();
    tally_t t = publish_many(f->c[0], 2000, make_invalid);
    double secs = (double)(tu_now_ms() - t0) / 1000.0;
    print_message("flood: %zu INVALID, %zu journaled in %.2f s\n", t.invalid, t.journaled_refusals,
                  secs);
    assert_int_equal(t.invalid, 2000);
    assert_true(t.journaled_refusals >= 200);
    assert_true((double)t.journaled_refusals <= 200 + 20 * (secs + 1));
}

/* Opens a raw CURVE DEALER as partner, with a routing id if rid is set. */
static void *
raw_dealer(fx_t *f, void *ctx, const char *partner, const char *rid)
{
    char path[4300];
    uint8_t sk[32], pk[32];
    pt_error_t err;
    snprintf(path, sizeof path, "%s/keys/%s.key", f->net.dir, partner);
    assert_int_equal(keys_read(path, sk, 32, true, &err), 0);
    snprintf(path, sizeof path, "%s/keys/%s.pub", f->net.dir, partner);
    assert_int_equal(keys_read(path, pk, 32, false, &err), 0);
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    assert_int_equal(zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, f->net.server_pk, 32), 0);
    assert_int_equal(zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sk, 32), 0);
    assert_int_equal(zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pk, 32), 0);
    assert_int_equal(zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger), 0);
    if (rid)
        assert_int_equal(zmq_setsockopt(s, ZMQ_ROUTING_ID, rid, strlen(rid)), 0);
    assert_int_equal(zmq_connect(s, f->net.endpoint), 0);
    return s;
}

/* The kind of the broker's answer to a Hello on the raw socket within ms, or -1. */
static int
raw_hello_answer(void *s, int ms)
{
    Ptibus__V1__Frame fr = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Hello h = PTIBUS__V1__HELLO__INIT;
    h.protocol_version = 1;
    fr.kind_case = PTIBUS__V1__FRAME__KIND_HELLO;
    fr.hello = &h;
    uint8_t buf[64];
    size_t n = protobuf_c_message_pack(&fr.base, buf);
    zmq_send(s, buf, n, ZMQ_DONTWAIT); /* queued until the handshake succeeds */
    zmq_pollitem_t pi = {.socket = s, .events = ZMQ_POLLIN};
    if (zmq_poll(&pi, 1, ms) != 1)
        return -1;
    uint8_t in[4096];
    int len = zmq_recv(s, in, sizeof in, 0);
    Ptibus__V1__Frame *a = len > 0 ? ptibus__v1__frame__unpack(NULL, (size_t)len, in) : NULL;
    int kind = a ? (int)a->kind_case : -1;
    if (a)
        ptibus__v1__frame__free_unpacked(a, NULL);
    return kind;
}

static bool
raw_hello_answered(void *s, int ms)
{
    return raw_hello_answer(s, ms) == PTIBUS__V1__FRAME__KIND_WELCOME;
}

/* A client may not choose its routing id: otherwise a partner could take another's
 * fixed id first and lock it out (ROUTER refuses a second peer with the same id). */
static void
test_client_routing_id_refused(void **state)
{
    fx_t *f = *state;
    void *ctx = zmq_ctx_new();
    void *squat = raw_dealer(f, ctx, "caf", "departement-adapter");
    assert_int_equal(raw_hello_answer(squat, TIMEOUT_MS), PTIBUS__V1__FRAME__KIND_NACK);
    void *plain = raw_dealer(f, ctx, "caf", NULL);
    assert_true(raw_hello_answered(plain, TIMEOUT_MS));
    zmq_close(squat);
    zmq_close(plain);
    zmq_ctx_term(ctx);
    assert_true(td_log_contains(&f->net, "routing id"));
}

static void
test_connection_cap(void **state)
{
    fx_t *f = *state;
    void *ctx = zmq_ctx_new();
    void *s[6];
    for (int i = 0; i < 4; i++) {
        s[i] = raw_dealer(f, ctx, "caf", NULL);
        assert_true(raw_hello_answered(s[i], TIMEOUT_MS));
    }
    s[4] = raw_dealer(f, ctx, "departement", NULL);
    assert_false(raw_hello_answered(s[4], 1500)); /* a fifth connection: refused */
    zmq_close(s[4]);
    zmq_close(s[0]);
    zmq_close(s[1]);
    usleep(500 * 1000); /* the broker sees them go */
    /* Refused handshakes do not leak places either. */
    for (int i = 0; i < 8; i++) {
        void *x = raw_dealer(f, ctx, "intruder", NULL);
        assert_false(raw_hello_answered(x, 200));
        zmq_close(x);
    }
    usleep(500 * 1000);
    s[5] = raw_dealer(f, ctx, "departement", NULL);
    assert_true(raw_hello_answered(s[5], TIMEOUT_MS));
    zmq_close(s[2]);
    zmq_close(s[3]);
    zmq_close(s[5]);
    zmq_ctx_term(ctx);
    assert_true(td_log_contains(&f->net, "limits.max_connections"));
}

static void
test_handshake_rate(void **state)
{
    fx_t *f = *state;
    void *ctx = zmq_ctx_new();
    void *s[4];
    for (int i = 0; i < 3; i++) {
        s[i] = raw_dealer(f, ctx, "caf", NULL);
        assert_true(raw_hello_answered(s[i], TIMEOUT_MS));
    }
    s[3] = raw_dealer(f, ctx, "caf", NULL);
    assert_false(raw_hello_answered(s[3], 1500));
    void *other = raw_dealer(f, ctx, "departement", NULL); /* its own budget */
    assert_true(raw_hello_answered(other, TIMEOUT_MS));
    for (int i = 0; i < 4; i++)
        zmq_close(s[i]);
    zmq_close(other);
    zmq_ctx_term(ctx);
    assert_true(td_log_contains(&f->net, "limits.partner_handshakes_per_minute"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_partner_rate_quota, setup_rate, teardown),
        cmocka_unit_test_setup_teardown(test_partner_bytes_quota, setup_bytes, teardown),
        cmocka_unit_test_setup_teardown(test_refusal_flood_journaled_at_a_bounded_rate,
                                        setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_client_routing_id_refused, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_connection_cap, setup_connections, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_rate, setup_handshakes, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
