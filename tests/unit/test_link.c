/* Unit tests of the link state machine (libptibus/link.h) with a fake clock, against a
 * scripted peer: a real ZeroMQ ROUTER with CURVE in the test, which can withhold a
 * Welcome, forget a session or send a message of two parts, things ptibusd never does
 * on purpose (the real broker is in tests/integration/test_link.c). */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <zmq.h>

#include "codec.h"
#include "link.h"

#define T0 1000000 /* the fake clock's start */

typedef struct fx {
    void *ctx, *router;
    char endpoint[128];
    uint8_t server_pk[32], server_sk[32], client_pk[32], client_sk[32];
    uint8_t rid[256];
    size_t rid_len;
    link_t *link;
    int64_t now; /* the fake clock */
    int frames, heartbeats, welcomes, delivers, receipts, results, downs;
    uint64_t last_deliver;
    char last_result[64];
} fx_t;

static bool
on_frame(void *arg, Ptibus__V1__Frame *f)
{
    fx_t *x = arg;
    x->frames++;
    if (f->kind_case == PTIBUS__V1__FRAME__KIND_HEARTBEAT)
        x->heartbeats++;
    return false;
}

static void
on_welcome(void *arg, const Ptibus__V1__Welcome *w)
{
    (void)w;
    ((fx_t *)arg)->welcomes++;
}

static void
on_result(void *arg, const char *mid, const link_result_t *r)
{
    fx_t *x = arg;
    (void)r;
    x->results++;
    snprintf(x->last_result, sizeof x->last_result, "%s", mid);
}

static void
on_deliver(void *arg, const Ptibus__V1__Deliver *d)
{
    fx_t *x = arg;
    x->delivers++;
    x->last_deliver = d->seq;
}

static void
on_receipt(void *arg, const Ptibus__V1__Receipt *r)
{
    (void)r;
    ((fx_t *)arg)->receipts++;
}

static void
on_state(void *arg, link_state_t s, const char *cause)
{
    (void)cause;
    if (s == PT_LINK_DOWN)
        ((fx_t *)arg)->downs++;
}

static int
setup(void **state)
{
    fx_t *x = calloc(1, sizeof *x);
    crypto_box_keypair(x->server_pk, x->server_sk);
    crypto_box_keypair(x->client_pk, x->client_sk);
    x->ctx = zmq_ctx_new();
    x->router = zmq_socket(x->ctx, ZMQ_ROUTER);
    int one = 1, linger = 0;
    size_t len = sizeof x->endpoint;
    if (zmq_setsockopt(x->router, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(x->router, ZMQ_CURVE_SECRETKEY, x->server_sk, 32) != 0 ||
        zmq_setsockopt(x->router, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_bind(x->router, "tcp://127.0.0.1:*") != 0 ||
        zmq_getsockopt(x->router, ZMQ_LAST_ENDPOINT, x->endpoint, &len) != 0)
        return -1;
    x->now = T0;
    *state = x;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *x = *state;
    link_destroy(&x->link);
    zmq_close(x->router);
    zmq_ctx_term(x->ctx);
    free(x);
    return 0;
}

static void
open_link(fx_t *x, uint32_t credit, int retry_max_ms)
{
    link_options_t o = {.endpoint = x->endpoint,
                        .server_pk = x->server_pk,
                        .client_sk = x->client_sk,
                        .client_pk = x->client_pk,
                        .client_name = "unit",
                        .initial_credit = credit,
                        .hello_retry_max_ms = retry_max_ms,
                        .zmq_context = x->ctx};
    link_callbacks_t cb = {.arg = x,
                           .on_frame = on_frame,
                           .on_welcome = on_welcome,
                           .on_publish_result = on_result,
                           .on_deliver = on_deliver,
                           .on_receipt = on_receipt,
                           .on_state = on_state};
    pt_error_t err;
    if (link_new(&o, &cb, x->now, &x->link, &err) != 0)
        fail_msg("%s", err.msg);
}

/* Runs the link at the fake time x->now while waiting up to ms of real time for a
 * frame at the peer. Returns the frame (caller frees) or NULL. */
static Ptibus__V1__Frame *
peer_recv(fx_t *x, int ms)
{
    pt_error_t err;
    for (int waited = 0; waited <= ms; waited += 10) {
        assert_int_equal(link_on_readable(x->link, x->now, &err), 0);
        link_tick(x->link, x->now, &err);
        zmq_pollitem_t it = {.socket = x->router, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 10) != 1)
            continue;
        zmq_msg_t id, m;
        zmq_msg_init(&id);
        zmq_msg_init(&m);
        assert_true(zmq_msg_recv(&id, x->router, 0) >= 0);
        assert_true(zmq_msg_recv(&m, x->router, 0) >= 0);
        x->rid_len = zmq_msg_size(&id);
        memcpy(x->rid, zmq_msg_data(&id), x->rid_len);
        ProtobufCMessage *f;
        assert_int_equal(codec_unpack(&ptibus__v1__frame__descriptor, zmq_msg_data(&m),
                                      zmq_msg_size(&m), 1 << 20, &f, &err),
                         0);
        zmq_msg_close(&id);
        zmq_msg_close(&m);
        return (Ptibus__V1__Frame *)f;
    }
    return NULL;
}

/* Expects the next frame at the peer to be of kind k; returns it (caller frees). */
static Ptibus__V1__Frame *
peer_expect(fx_t *x, Ptibus__V1__Frame__KindCase k)
{
    Ptibus__V1__Frame *f = peer_recv(x, 3000);
    if (f == NULL)
        fail_msg("no frame (kind %d expected); link %s: %s", k,
                 link_state_name(link_state(x->link)), link_cause(x->link));
    assert_int_equal(f->kind_case, k);
    return f;
}

static void
peer_skip(fx_t *x, Ptibus__V1__Frame__KindCase k)
{
    Ptibus__V1__Frame *f = peer_expect(x, k);
    codec_free((ProtobufCMessage **)&f);
}

static void
peer_send_raw(fx_t *x, const uint8_t *data, size_t len, bool more)
{
    assert_true(zmq_send(x->router, x->rid, x->rid_len, ZMQ_SNDMORE) >= 0);
    assert_true(zmq_send(x->router, data, len, more ? ZMQ_SNDMORE : 0) >= 0);
}

static void
peer_send(fx_t *x, const Ptibus__V1__Frame *f)
{
    uint8_t *buf;
    size_t len;
    pt_error_t err;
    assert_int_equal(codec_pack(&f->base, 1 << 20, &buf, &len, &err), 0);
    peer_send_raw(x, buf, len, false);
    free(buf);
}

static void
peer_welcome(fx_t *x, uint32_t hb_ms)
{
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Welcome w = PTIBUS__V1__WELCOME__INIT;
    w.protocol_version = 1;
    w.partner_id = "caf";
    w.heartbeat_interval_ms = hb_ms;
    f.kind_case = PTIBUS__V1__FRAME__KIND_WELCOME;
    f.welcome = &w;
    peer_send(x, &f);
}

static void
peer_heartbeat(fx_t *x)
{
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Heartbeat h = PTIBUS__V1__HEARTBEAT__INIT;
    f.kind_case = PTIBUS__V1__FRAME__KIND_HEARTBEAT;
    f.heartbeat = &h;
    peer_send(x, &f);
}

/* Reads at the link until the link is in state s (real time up to 3 s). */
static void
run_until(fx_t *x, link_state_t s)
{
    pt_error_t err;
    for (int i = 0; i < 300 && link_state(x->link) != s; i++) {
        struct pollfd p = {.fd = link_fd(x->link), .events = POLLIN};
        poll(&p, 1, 10);
        assert_int_equal(link_on_readable(x->link, x->now, &err), 0);
    }
    assert_int_equal(link_state(x->link), s);
}

static void
session(fx_t *x, uint32_t credit)
{
    open_link(x, credit, 0);
    pt_error_t err;
    assert_int_equal(link_hello(x->link, x->now, &err), 0);
    Ptibus__V1__Frame *h = peer_expect(x, PTIBUS__V1__FRAME__KIND_HELLO);
    assert_int_equal(h->hello->initial_credit, credit);
    codec_free((ProtobufCMessage **)&h);
    peer_welcome(x, 1000);
    run_until(x, PT_LINK_UP);
}

/* No Welcome: Hello again after the delay plus at most half of it, the delay doubling
 * up to the cap; a Welcome then ends the retries. */
static void
test_hello_retry_backoff(void **state)
{
    fx_t *x = *state;
    open_link(x, 5, 3000);
    pt_error_t err;
    assert_int_equal(link_hello(x->link, x->now, &err), 0);
    peer_skip(x, PTIBUS__V1__FRAME__KIND_HELLO);
    int64_t sent = x->now, delays[] = {1000, 2000, 3000, 3000};
    for (size_t i = 0; i < 4; i++) {
        int64_t due = link_next_due(x->link);
        assert_true(due >= sent + delays[i] && due <= sent + delays[i] + delays[i] / 2);
        x->now = due - 1;
        assert_null(peer_recv(x, 100));
        x->now = due;
        Ptibus__V1__Frame *h = peer_expect(x, PTIBUS__V1__FRAME__KIND_HELLO);
        assert_int_equal(h->hello->initial_credit, 5);
        codec_free((ProtobufCMessage **)&h);
        assert_int_equal(link_state(x->link), PT_LINK_HELLO_SENT);
        sent = due;
    }
    peer_welcome(x, 1000);
    run_until(x, PT_LINK_UP);
    assert_int_equal(x->welcomes, 1);
    x->now += 60000;
    peer_skip(x, PTIBUS__V1__FRAME__KIND_HEARTBEAT);
}

/* A session Nack: Hello again at once with the whole credit granted so far; the Nack
 * itself is not handed to the application. */
static void
test_session_nack_rehello_with_all_credit(void **state)
{
    fx_t *x = *state;
    session(x, 5);
    pt_error_t err;
    assert_int_equal(link_credit(x->link, 3, x->now, &err), 0);
    peer_skip(x, PTIBUS__V1__FRAME__KIND_CREDIT);
    int frames = x->frames;
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Nack n = PTIBUS__V1__NACK__INIT;
    n.code = PTIBUS__V1__NACK_CODE__NACK_CODE_PROTOCOL;
    n.field_path = PT_SESSION_FIELD;
    n.reason = "session: no session on this connection, send Hello";
    f.kind_case = PTIBUS__V1__FRAME__KIND_NACK;
    f.nack = &n;
    peer_send(x, &f);
    Ptibus__V1__Frame *h = peer_expect(x, PTIBUS__V1__FRAME__KIND_HELLO);
    assert_int_equal(h->hello->initial_credit, 8);
    codec_free((ProtobufCMessage **)&h);
    assert_int_equal(x->frames, frames);
    assert_int_equal(x->downs, 1);
    assert_int_equal(link_state(x->link), PT_LINK_HELLO_SENT);
    peer_welcome(x, 1000);
    run_until(x, PT_LINK_UP);
}

/* Two session Nacks (a heartbeat and a credit sent before the broker restarted): one
 * Hello, since the second Nack answers a frame sent before that Hello (issue 15). */
static void
test_stale_session_nack_no_second_hello(void **state)
{
    fx_t *x = *state;
    session(x, 5);
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Nack n = PTIBUS__V1__NACK__INIT;
    n.code = PTIBUS__V1__NACK_CODE__NACK_CODE_PROTOCOL;
    n.field_path = PT_SESSION_FIELD;
    n.reason = "session: no session on this connection, send Hello";
    f.kind_case = PTIBUS__V1__FRAME__KIND_NACK;
    f.nack = &n;
    peer_send(x, &f);
    peer_send(x, &f);
    peer_skip(x, PTIBUS__V1__FRAME__KIND_HELLO);
    assert_null(peer_recv(x, 300));
    assert_int_equal(x->downs, 1);
    peer_welcome(x, 1000);
    run_until(x, PT_LINK_UP);
    /* Once in session again, a new session Nack is a new loss: Hello again. */
    peer_send(x, &f);
    peer_skip(x, PTIBUS__V1__FRAME__KIND_HELLO);
}

/* ZeroMQ's descriptor is edge-triggered: one readable event must read everything
 * queued; a message of two parts is an error that drops it, and what follows is read. */
static void
test_readable_drains_and_refuses_multipart(void **state)
{
    fx_t *x = *state;
    session(x, 1);
    pt_error_t err;
    peer_heartbeat(x);
    peer_heartbeat(x);
    peer_heartbeat(x);
    usleep(200 * 1000);
    int before = x->heartbeats;
    assert_int_equal(link_on_readable(x->link, x->now, &err), 0);
    assert_int_equal(x->heartbeats - before, 3);

    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Heartbeat hb = PTIBUS__V1__HEARTBEAT__INIT;
    f.kind_case = PTIBUS__V1__FRAME__KIND_HEARTBEAT;
    f.heartbeat = &hb;
    uint8_t *buf;
    size_t len;
    assert_int_equal(codec_pack(&f.base, 1 << 20, &buf, &len, &err), 0);
    peer_send_raw(x, buf, len, true);
    assert_true(zmq_send(x->router, buf, len, 0) >= 0);
    free(buf);
    peer_heartbeat(x);
    usleep(200 * 1000);
    before = x->heartbeats;
    assert_int_equal(link_on_readable(x->link, x->now, &err), PT_EMALFORMED);
    assert_non_null(strstr(err.msg, "2 parts"));
    assert_int_equal(link_on_readable(x->link, x->now, &err), 0);
    assert_int_equal(x->heartbeats - before, 1);
}

/* Each kind of frame reaches its callback. */
static void
test_callbacks_per_frame(void **state)
{
    fx_t *x = *state;
    session(x, 4);
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Deliver d = PTIBUS__V1__DELIVER__INIT;
    d.seq = 7;
    f.kind_case = PTIBUS__V1__FRAME__KIND_DELIVER;
    f.deliver = &d;
    peer_send(x, &f);
    Ptibus__V1__PublishAck a = PTIBUS__V1__PUBLISH_ACK__INIT;
    a.message_id = "m-1";
    a.seq = 9;
    f.kind_case = PTIBUS__V1__FRAME__KIND_PUBLISH_ACK;
    f.publish_ack = &a;
    peer_send(x, &f);
    Ptibus__V1__Receipt r = PTIBUS__V1__RECEIPT__INIT;
    f.kind_case = PTIBUS__V1__FRAME__KIND_RECEIPT;
    f.receipt = &r;
    peer_send(x, &f);
    pt_error_t err;
    for (int i = 0; i < 300 && x->receipts == 0; i++) {
        usleep(10 * 1000);
        assert_int_equal(link_on_readable(x->link, x->now, &err), 0);
    }
    assert_int_equal(x->delivers, 1);
    assert_int_equal(x->last_deliver, 7);
    assert_int_equal(x->results, 1);
    assert_string_equal(x->last_result, "m-1");
    assert_int_equal(x->receipts, 1);
}

static void
test_state_names(void **state)
{
    (void)state;
    assert_string_equal(link_state_name(PT_LINK_DOWN), "down");
    assert_string_equal(link_state_name(PT_LINK_UP), "up");
    assert_string_equal(link_state_name((link_state_t)42), "unknown");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hello_retry_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_nack_rehello_with_all_credit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_session_nack_no_second_hello, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readable_drains_and_refuses_multipart, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_callbacks_per_frame, setup, teardown),
        cmocka_unit_test(test_state_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
