/* A DeliverAck is an accusé de réception: it must come from the recipient's session,
 * for a message that was delivered to it, with an explicit status (issue 10, low items).
 * Before the fix an ack without a session, for a message never delivered, or with
 * status UNSPECIFIED, acknowledged the message: the journal said ACKNOWLEDGED for a
 * message the recipient never had. Real ptibusd, real CURVE clients. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "codec.h"
#include "daemon.h"
#include "journal.h"
#include "samples.h"
#include "testutil.h"

#define TIMEOUT_MS 5000

typedef struct fx {
    td_net_t net;
    client_t *pub, *caf;
    uint64_t seq; /* the orientation for caf */
} fx_t;

static int
setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    td_net_init(&f->net, "deliverack", NULL);
    if (td_broker_start(&f->net) != 0)
        return -1;
    assert_int_equal(td_client_session(&f->net, "departement", 0, &f->pub), 0);
    td_sample_t s;
    td_sample_orientation(&s, "ori-ack"); /* routed to pole_emploi and caf */
    client_result_t res;
    pt_error_t err;
    assert_int_equal(client_publish(f->pub, &s.env, TIMEOUT_MS, &res, &err), 0);
    assert_int_equal(res.nack_code, 0);
    f->seq = res.seq;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *f = *state;
    client_close(&f->pub);
    client_close(&f->caf);
    td_net_fini(&f->net);
    free(f);
    return 0;
}

static void
send_ack(client_t *c, uint64_t seq, Ptibus__V1__DeliverAckStatus status)
{
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__DeliverAck a = PTIBUS__V1__DELIVER_ACK__INIT;
    a.seq = seq;
    a.status = status;
    f.kind_case = PTIBUS__V1__FRAME__KIND_DELIVER_ACK;
    f.deliver_ack = &a;
    pt_error_t err;
    assert_int_equal(client_send(c, &f, &err), 0);
}

/* The next frame that is not a heartbeat; caller frees. */
static Ptibus__V1__Frame *
next_frame(client_t *c, int timeout_ms)
{
    pt_error_t err;
    Ptibus__V1__Frame *fr = NULL;
    int64_t deadline = tu_now_ms() + timeout_ms;
    int left;
    while ((left = (int)(deadline - tu_now_ms())) > 0 && client_recv(c, left, &fr, &err) == 0) {
        if (fr->kind_case != PTIBUS__V1__FRAME__KIND_HEARTBEAT)
            return fr;
        codec_free((ProtobufCMessage **)&fr);
    }
    return NULL;
}

/* The message must still be caf's to receive: it comes as its first delivery. */
static void
expect_first_delivery(fx_t *f)
{
    pt_error_t err;
    assert_int_equal(client_credit(f->caf, 4, &err), 0);
    Ptibus__V1__Frame *fr = next_frame(f->caf, TIMEOUT_MS);
    assert_non_null(fr);
    assert_int_equal(fr->kind_case, PTIBUS__V1__FRAME__KIND_DELIVER);
    assert_int_equal(fr->deliver->seq, f->seq);
    assert_int_equal(fr->deliver->attempt, 1);
    codec_free((ProtobufCMessage **)&fr);
}

static int
acknowledged_records(fx_t *f)
{
    assert_int_equal(td_broker_stop(&f->net), 0);
    journal_t *j;
    journal_options_t o = {.dir = f->net.journal_dir, .read_only = true};
    pt_error_t err;
    assert_int_equal(journal_open(&o, &j, &err), 0);
    int n = 0;
    journal_view_t v;
    uint8_t *buf = NULL;
    size_t cap = 0;
    for (uint64_t s = 1; s <= journal_last_seq(j); s++) {
        assert_int_equal(journal_get(j, s, &v, &buf, &cap, &err), 0);
        n += v.kind == PT_REC_ACKNOWLEDGED && v.ref_seq == f->seq && !strcmp(v.partner, "caf");
    }
    free(buf);
    journal_close(&j);
    return n;
}

static void
test_ack_without_session_refused(void **state)
{
    fx_t *f = *state;
    assert_int_equal(td_client_open(&f->net, "caf", true, &f->caf), 0);
    send_ack(f->caf, f->seq, PTIBUS__V1__DELIVER_ACK_STATUS__DELIVER_ACK_STATUS_OK);
    Ptibus__V1__Frame *fr = next_frame(f->caf, TIMEOUT_MS);
    assert_non_null(fr);
    assert_int_equal(fr->kind_case, PTIBUS__V1__FRAME__KIND_NACK);
    assert_int_equal(fr->nack->code, PTIBUS__V1__NACK_CODE__NACK_CODE_PROTOCOL);
    assert_string_equal(fr->nack->field_path, "session");
    codec_free((ProtobufCMessage **)&fr);
    client_close(&f->caf);
    assert_int_equal(td_client_session(&f->net, "caf", 0, &f->caf), 0);
    expect_first_delivery(f);
    assert_int_equal(acknowledged_records(f), 0);
}

static void
test_ack_of_undelivered_message_ignored(void **state)
{
    fx_t *f = *state;
    assert_int_equal(td_client_session(&f->net, "caf", 0, &f->caf), 0); /* no credit */
    send_ack(f->caf, f->seq, PTIBUS__V1__DELIVER_ACK_STATUS__DELIVER_ACK_STATUS_OK);
    send_ack(f->caf, f->seq, PTIBUS__V1__DELIVER_ACK_STATUS__DELIVER_ACK_STATUS_CANNOT_PROCESS);
    usleep(300 * 1000);
    expect_first_delivery(f); /* neither acknowledged nor dead-lettered */
    assert_int_equal(acknowledged_records(f), 0);
}

static void
test_ack_status_unspecified_refused(void **state)
{
    fx_t *f = *state;
    assert_int_equal(td_client_session(&f->net, "caf", 1, &f->caf), 0);
    Ptibus__V1__Frame *fr = next_frame(f->caf, TIMEOUT_MS);
    assert_non_null(fr);
    assert_int_equal(fr->kind_case, PTIBUS__V1__FRAME__KIND_DELIVER);
    codec_free((ProtobufCMessage **)&fr);
    send_ack(f->caf, f->seq, PTIBUS__V1__DELIVER_ACK_STATUS__DELIVER_ACK_STATUS_UNSPECIFIED);
    fr = next_frame(f->caf, TIMEOUT_MS);
    assert_non_null(fr);
    assert_int_equal(fr->kind_case, PTIBUS__V1__FRAME__KIND_NACK);
    assert_int_equal(fr->nack->code, PTIBUS__V1__NACK_CODE__NACK_CODE_PROTOCOL);
    assert_non_null(strstr(fr->nack->reason, "deliver_ack.status"));
    codec_free((ProtobufCMessage **)&fr);
    assert_int_equal(acknowledged_records(f), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ack_without_session_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_of_undelivered_message_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_status_unspecified_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
