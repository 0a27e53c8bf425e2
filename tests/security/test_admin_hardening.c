/* Security tests of the admin socket on a real ptibusd: a requeue or replay without a
 * valid reason is refused; the ADMIN records name the seqs acted on; reads (stats,
 * dead-letter list) are journaled, a flood of them coalesced; a dead-letter list limit
 * above the maximum is refused; a request above 64 KiB is dropped by the socket
 * (ZMQ_MAXMSGSIZE) without an answer. */
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
#include "ptibus/v1/admin.pb-c.h"
#include "samples.h"
#include "testutil.h"

#define TIMEOUT_MS 5000

typedef struct fx {
    td_net_t net;
    client_t *admin;
    client_t *cd;  /* departement */
    client_t *caf; /* caf */
} fx_t;

static int
setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    td_net_init(&f->net, "adminsec", NULL);
    if (td_broker_start(&f->net) != 0)
        return -1;
    assert_int_equal(td_admin_open(&f->net, "admin", &f->admin), 0);
    assert_int_equal(td_client_session(&f->net, "caf", 0, &f->caf), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *f = *state;
    client_close(&f->admin);
    client_close(&f->cd);
    client_close(&f->caf);
    td_net_fini(&f->net);
    free(f);
    return 0;
}

/* Sends len bytes; returns the response, NULL when none came within timeout_ms. */
static Ptibus__V1__AdminResponse *
send_raw(client_t *c, const uint8_t *buf, size_t len, int timeout_ms)
{
    pt_error_t err;
    assert_int_equal(zmq_send(client_socket(c), buf, len, 0), (int)len);
    zmq_pollitem_t item = {.socket = client_socket(c), .events = ZMQ_POLLIN};
    if (zmq_poll(&item, 1, timeout_ms) != 1)
        return NULL;
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, client_socket(c), 0) >= 0);
    ProtobufCMessage *r;
    assert_int_equal(codec_unpack(&ptibus__v1__admin_response__descriptor, zmq_msg_data(&m),
                                  zmq_msg_size(&m), 1 << 24, &r, &err),
                     0);
    zmq_msg_close(&m);
    return (Ptibus__V1__AdminResponse *)r;
}

static Ptibus__V1__AdminResponse *
call(client_t *c, Ptibus__V1__AdminRequest *q)
{
    uint8_t *buf;
    size_t len;
    pt_error_t err;
    assert_int_equal(codec_pack(&q->base, 1 << 20, &buf, &len, &err), 0);
    Ptibus__V1__AdminResponse *r = send_raw(c, buf, len, TIMEOUT_MS);
    free(buf);
    assert_non_null(r);
    return r;
}

static Ptibus__V1__AdminResponse *
requeue(fx_t *f, const char *reason, bool all)
{
    Ptibus__V1__AdminRequest q = PTIBUS__V1__ADMIN_REQUEST__INIT;
    Ptibus__V1__DeadLetterRequeueRequest rq = PTIBUS__V1__DEAD_LETTER_REQUEUE_REQUEST__INIT;
    uint64_t seqs[] = {999};
    rq.recipient = "departement";
    rq.all = all;
    rq.n_seqs = all ? 0 : 1;
    rq.seqs = seqs;
    rq.reason = (char *)reason;
    q.request_id = "rq";
    q.kind_case = PTIBUS__V1__ADMIN_REQUEST__KIND_DEAD_LETTER_REQUEUE;
    q.dead_letter_requeue = &rq;
    return call(f->admin, &q);
}

static Ptibus__V1__AdminResponse *
replay(fx_t *f, const char *reason)
{
    Ptibus__V1__AdminRequest q = PTIBUS__V1__ADMIN_REQUEST__INIT;
    Ptibus__V1__ReplayRequest rp = PTIBUS__V1__REPLAY_REQUEST__INIT;
    rp.recipient = "departement";
    rp.from_seq = 1;
    rp.reason = (char *)reason;
    q.request_id = "rp";
    q.kind_case = PTIBUS__V1__ADMIN_REQUEST__KIND_REPLAY;
    q.replay = &rp;
    return call(f->admin, &q);
}

static Ptibus__V1__AdminResponse *
dead_list(fx_t *f, uint32_t limit)
{
    Ptibus__V1__AdminRequest q = PTIBUS__V1__ADMIN_REQUEST__INIT;
    Ptibus__V1__DeadLetterListRequest l = PTIBUS__V1__DEAD_LETTER_LIST_REQUEST__INIT;
    l.recipient = "departement";
    l.limit = limit;
    q.request_id = "dl";
    q.kind_case = PTIBUS__V1__ADMIN_REQUEST__KIND_DEAD_LETTER_LIST;
    q.dead_letter_list = &l;
    return call(f->admin, &q);
}

static Ptibus__V1__AdminResponse *
stats(fx_t *f)
{
    Ptibus__V1__AdminRequest q = PTIBUS__V1__ADMIN_REQUEST__INIT;
    Ptibus__V1__StatsRequest s = PTIBUS__V1__STATS_REQUEST__INIT;
    q.request_id = "st";
    q.kind_case = PTIBUS__V1__ADMIN_REQUEST__KIND_STATS;
    q.stats = &s;
    return call(f->admin, &q);
}

static void
expect_refused(Ptibus__V1__AdminResponse *r, const char *error)
{
    assert_false(r->ok);
    if (strstr(r->error, error) == NULL)
        fail_msg("error \"%s\" does not say \"%s\"", r->error, error);
    codec_free((ProtobufCMessage **)&r);
}

static void
expect_ok(Ptibus__V1__AdminResponse *r)
{
    if (!r->ok)
        fail_msg("refused: %s", r->error);
    codec_free((ProtobufCMessage **)&r);
}

/* Every ADMIN record's text, "\n"-separated, read from the stopped broker's journal. */
typedef struct texts {
    char buf[65536];
    size_t len;
} texts_t;

static int
collect_admin(const journal_view_t *v, void *arg)
{
    texts_t *t = arg;
    if (v->kind == PT_REC_ADMIN && v->reason && t->len < sizeof t->buf)
        t->len += (size_t)snprintf(t->buf + t->len, sizeof t->buf - t->len, "%s\n", v->reason);
    return 0;
}

static void
admin_records(fx_t *f, texts_t *t)
{
    char path[4300];
    uint8_t hmac[32];
    pt_error_t err;
    assert_int_equal(td_broker_stop(&f->net), 0);
    snprintf(path, sizeof path, "%s/keys/person-index.hmac", f->net.dir);
    assert_int_equal(keys_read(path, hmac, 32, true, &err), 0);
    journal_options_t o = {.dir = f->net.journal_dir, .hmac_key = hmac, .read_only = true};
    journal_t *j;
    assert_int_equal(journal_open(&o, &j, &err), 0);
    t->len = 0;
    t->buf[0] = '\0';
    assert_true(journal_scan(j, 1, 0, collect_admin, t, &err) >= 0);
    journal_close(&j);
}

static size_t
count_of(const char *text, const char *s)
{
    size_t n = 0;
    for (const char *p = strstr(text, s); p; p = strstr(p + 1, s))
        n++;
    return n;
}

static void
test_reason_required(void **state)
{
    fx_t *f = *state;
    expect_refused(requeue(f, "", false), "dead_letter_requeue.reason: required");
    expect_refused(requeue(f, NULL, true), "dead_letter_requeue.reason: required");
    expect_refused(replay(f, ""), "replay.reason: required");
    expect_refused(replay(f, "forged\nline"), "replay.reason: holds a control character");
    expect_refused(requeue(f, "\x1b[2J", false), "holds a control character");
    expect_refused(requeue(f, "caf\xc2\x9b", false), "holds a control character"); /* C1 CSI */
    expect_refused(requeue(f, "bad \xc3(", false), "not valid UTF-8");
    expect_refused(requeue(f, "overlong \xc0\xaf", false), "not valid UTF-8");
    char long_reason[202];
    memset(long_reason, 'x', sizeof long_reason - 1);
    long_reason[sizeof long_reason - 1] = '\0';
    expect_refused(replay(f, long_reason), "replay.reason: longer than 200 bytes");
    long_reason[200] = '\0';
    expect_ok(replay(f, long_reason));
    expect_ok(requeue(f, "incident n\xc2\xb0 7", false)); /* "n°": UTF-8 is fine */
    texts_t *t = malloc(sizeof *t);
    admin_records(f, t);
    /* Refused requests changed nothing and left no action record. */
    assert_int_equal(count_of(t->buf, "requeued"), 1);
    assert_int_equal(count_of(t->buf, "replayed"), 1);
    assert_non_null(strstr(t->buf, "requeued 0 dead letters of departement; reason: incident "
                                   "n\xc2\xb0 7; seqs (part 1): -\n"));
    free(t);
}

static void
publish_event(fx_t *f, const char *id)
{
    td_sample_t s;
    td_sample_beneficiary_event(&s, id);
    client_result_t r;
    pt_error_t err;
    assert_int_equal(client_publish(f->caf, &s.env, TIMEOUT_MS, &r, &err), 0);
    assert_int_equal(r.nack_code, 0);
}

static uint64_t
next_deliver(client_t *c)
{
    int64_t deadline = tu_now_ms() + TIMEOUT_MS;
    pt_error_t err;
    while (tu_now_ms() < deadline) {
        Ptibus__V1__Frame *fr;
        if (client_recv(c, (int)(deadline - tu_now_ms()), &fr, &err) != 0)
            return 0;
        uint64_t seq = fr->kind_case == PTIBUS__V1__FRAME__KIND_DELIVER ? fr->deliver->seq : 0;
        codec_free((ProtobufCMessage **)&fr);
        if (seq)
            return seq;
    }
    return 0;
}

/* Two dead letters requeued and one message replayed: the ADMIN records name exactly
 * those seqs; the reads (stats, dead-letter list) have their records too, a flood of
 * 30 stats reads only one. */
static void
test_admin_records_name_seqs(void **state)
{
    fx_t *f = *state;
    pt_error_t err;
    publish_event(f, "s-1");
    publish_event(f, "s-2");
    publish_event(f, "s-3");
    assert_int_equal(td_client_session(&f->net, "departement", 8, &f->cd), 0);
    uint64_t s1 = next_deliver(f->cd), s2 = next_deliver(f->cd), s3 = next_deliver(f->cd);
    assert_true(s1 && s2 && s3);
    assert_int_equal(client_deliver_ack(f->cd, s1, false, "cannot map", &err), 0);
    assert_int_equal(client_deliver_ack(f->cd, s2, false, "cannot map", &err), 0);
    assert_int_equal(client_deliver_ack(f->cd, s3, true, NULL, &err), 0);
    size_t n = 0;
    for (int i = 0; i < 100 && n != 2; i++) { /* written by a later batch */
        Ptibus__V1__AdminResponse *r = dead_list(f, 0);
        n = r->dead_letters ? r->dead_letters->n_items : 0;
        codec_free((ProtobufCMessage **)&r);
        if (n != 2)
            usleep(20000);
    }
    assert_int_equal(n, 2);
    Ptibus__V1__AdminResponse *r = requeue(f, "ticket 42", true);
    assert_true(r->ok);
    assert_int_equal(r->requeued, 2);
    codec_free((ProtobufCMessage **)&r);
    for (int i = 0; i < 30; i++)
        expect_ok(stats(f));
    /* s1 and s2 are queued again (skipped by the replay); s3 was acknowledged. */
    for (int i = 0; i < 100; i++) { /* the ack of s3 travels on another connection */
        r = replay(f, "restore 7");
        assert_true(r->ok);
        uint32_t replayed = r->replayed;
        codec_free((ProtobufCMessage **)&r);
        if (replayed == 1)
            break;
        usleep(20000);
    }
    texts_t *t = malloc(sizeof *t);
    admin_records(f, t);
    char want[256];
    snprintf(want, sizeof want,
             "requeued 2 dead letters of departement; reason: ticket 42; seqs (part 1): "
             "%llu%s%llu\n",
             (unsigned long long)s1, s2 == s1 + 1 ? "-" : ",", (unsigned long long)s2);
    if (strstr(t->buf, want) == NULL)
        fail_msg("no ADMIN record \"%s\" in:\n%s", want, t->buf);
    snprintf(want, sizeof want,
             "replayed 1 messages to departement; reason: restore 7; seqs (part 1): %llu\n",
             (unsigned long long)s3);
    if (strstr(t->buf, want) == NULL)
        fail_msg("no ADMIN record \"%s\" in:\n%s", want, t->buf);
    /* Reads: journaled, coalesced (one record per 10 s per administrator and kind). */
    size_t st = count_of(t->buf, "stats read;");
    assert_true(st >= 1 && st <= 2);
    assert_non_null(strstr(t->buf, "dead-letter list of departement read, "));
    assert_true(count_of(t->buf, "dead-letter list of departement read") <= 2);
    free(t);
}

static void
test_list_limit_bounded(void **state)
{
    fx_t *f = *state;
    expect_refused(dead_list(f, 10001), "dead_letter_list.limit: at most 10000");
    expect_refused(dead_list(f, UINT32_MAX), "dead_letter_list.limit");
    expect_ok(dead_list(f, 10000));
    expect_ok(dead_list(f, 0));
}

/* A request above 64 KiB never reaches the broker's decoder: the socket drops it and
 * the connection (no answer); the broker goes on serving. */
static void
test_oversize_request_dropped(void **state)
{
    fx_t *f = *state;
    size_t len = 100 * 1024;
    uint8_t *big = malloc(len);
    memset(big, 0x0a, len); /* whatever: it must not be read */
    Ptibus__V1__AdminResponse *r = send_raw(f->admin, big, len, 1500);
    free(big);
    if (r != NULL) {
        codec_free((ProtobufCMessage **)&r);
        fail_msg("an oversize request was read and answered");
    }
    client_t *again;
    assert_int_equal(td_admin_open(&f->net, "admin", &again), 0);
    client_close(&f->admin);
    f->admin = again;
    expect_ok(stats(f));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reason_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_records_name_seqs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_limit_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversize_request_dropped, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
