/* Hostile partner clients against a real ptibusd: an authenticated partner sends
 * messages of several ZeroMQ parts, empty parts and many parts while a well-behaved
 * partner publishes. protocol.md: one part carries one Frame; a message of several parts
 * is refused (MALFORMED, journaled) and every other partner keeps being served. Before
 * the fix the broker's read-ahead blocked on the second part forever (issue 9). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zmq.h>

#include "codec.h"
#include "daemon.h"
#include "journal.h"
#include "samples.h"
#include "testutil.h"

#define TIMEOUT_MS 5000
#define ROUNDS 20

typedef struct fx {
    td_net_t net;
    client_t *good, *bad;
} fx_t;

static int
setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    td_net_init(&f->net, "hostile", NULL);
    if (td_broker_start(&f->net) != 0)
        return -1;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *f = *state;
    client_close(&f->good);
    client_close(&f->bad);
    td_net_fini(&f->net);
    free(f);
    return 0;
}

/* A packed Hello frame: a valid frame, so only the number of parts is wrong. */
static size_t
hello_bytes(uint8_t *buf, size_t cap)
{
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Hello h = PTIBUS__V1__HELLO__INIT;
    h.protocol_version = 1;
    h.client_name = "hostile";
    h.software_version = "0";
    f.kind_case = PTIBUS__V1__FRAME__KIND_HELLO;
    f.hello = &h;
    size_t n = protobuf_c_message_get_packed_size(&f.base);
    assert_true(n <= cap);
    return protobuf_c_message_pack(&f.base, buf);
}

/* Sends one message of `parts` parts, each a copy of part (len bytes, may be 0). */
static void
send_parts(client_t *c, const uint8_t *part, size_t len, int parts)
{
    for (int i = 0; i < parts; i++)
        assert_true(zmq_send(client_socket(c), part, len, i + 1 < parts ? ZMQ_SNDMORE : 0) >= 0);
}

/* Waits for the broker's answer to a hostile message: a Nack with code, or fails. */
static void
expect_nack(client_t *c, int code)
{
    Ptibus__V1__Frame *fr = NULL;
    pt_error_t err;
    assert_int_equal(client_recv(c, TIMEOUT_MS, &fr, &err), 0);
    assert_int_equal(fr->kind_case, PTIBUS__V1__FRAME__KIND_NACK);
    if ((int)fr->nack->code != code)
        fail_msg("nack code %d (%s), expected %d", fr->nack->code, fr->nack->reason, code);
    codec_free((ProtobufCMessage **)&fr);
}

/* One publish of the well-behaved partner: acked within TIMEOUT_MS; returns its
 * latency in ms. */
static int64_t
good_publish(fx_t *f, int i)
{
    td_sample_t s;
    char id[32];
    snprintf(id, sizeof id, "good-%d", i);
    td_sample_orientation(&s, id);
    client_result_t res;
    pt_error_t err;
    int64_t t0 = tu_now_ms();
    if (client_publish(f->good, &s.env, TIMEOUT_MS, &res, &err) != 0)
        fail_msg("publish %s while a hostile client sends multi-part messages: %s", id, err.msg);
    if (res.nack_code != 0)
        fail_msg("publish %s refused: %s", id, res.reason);
    return tu_now_ms() - t0;
}

static void
test_multipart_refused_others_served(void **state)
{
    fx_t *f = *state;
    assert_int_equal(td_client_session(&f->net, "departement", 16, &f->good), 0);
    assert_int_equal(td_client_open(&f->net, "caf", true, &f->bad), 0);
    uint8_t hello[256];
    size_t hlen = hello_bytes(hello, sizeof hello);
    int64_t worst = 0;
    for (int i = 0; i < ROUNDS; i++) {
        send_parts(f->bad, hello, hlen, 2); /* two valid frames in one message */
        expect_nack(f->bad, PTIBUS__V1__NACK_CODE__NACK_CODE_MALFORMED);
        send_parts(f->bad, hello, 0, 3); /* empty parts */
        expect_nack(f->bad, PTIBUS__V1__NACK_CODE__NACK_CODE_MALFORMED);
        send_parts(f->bad, hello, hlen, 200); /* many parts */
        expect_nack(f->bad, PTIBUS__V1__NACK_CODE__NACK_CODE_MALFORMED);
        send_parts(f->bad, hello, 0, 1); /* one empty part: not a frame kind */
        expect_nack(f->bad, PTIBUS__V1__NACK_CODE__NACK_CODE_PROTOCOL);
        int64_t ms = good_publish(f, i);
        worst = ms > worst ? ms : worst;
    }
    print_message("worst publish latency beside the hostile client: %lld ms\n", (long long)worst);
    /* A new partner still gets its Welcome, and SIGTERM still stops the broker. */
    client_t *late = NULL;
    assert_int_equal(td_client_session(&f->net, "region", 1, &late), 0);
    client_close(&late);
    assert_int_equal(td_broker_stop(&f->net), 0);
}

/* The multi-part refusals are journaled as REJECTED (protocol.md), so an auditor sees
 * them; the partner's one-part frames keep working on the same connection. */
static void
test_multipart_refusal_journaled(void **state)
{
    fx_t *f = *state;
    assert_int_equal(td_client_open(&f->net, "caf", true, &f->bad), 0);
    uint8_t hello[256];
    size_t hlen = hello_bytes(hello, sizeof hello);
    send_parts(f->bad, hello, hlen, 2);
    expect_nack(f->bad, PTIBUS__V1__NACK_CODE__NACK_CODE_MALFORMED);
    char pid[64];
    pt_error_t err;
    assert_int_equal(client_hello(f->bad, TIMEOUT_MS, pid, sizeof pid, &err), 0);
    assert_string_equal(pid, "caf");
    assert_int_equal(td_broker_stop(&f->net), 0);

    journal_t *j;
    journal_options_t o = {.dir = f->net.journal_dir, .read_only = true};
    assert_int_equal(journal_open(&o, &j, &err), 0);
    journal_view_t v;
    uint8_t *buf = NULL;
    size_t cap = 0;
    assert_int_equal(journal_get(j, 1, &v, &buf, &cap, &err), 0);
    assert_int_equal(v.kind, PT_REC_REJECTED);
    assert_string_equal(v.partner, "caf");
    assert_non_null(strstr(v.reason, "parts"));
    free(buf);
    journal_close(&j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_multipart_refused_others_served, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multipart_refusal_journaled, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
