/* Integration test of payload expiry (issue 16) with a real ptibusd and a 2 s
 * retention: an acknowledged message's payload is removed in the background, its
 * record stays and says so (ptibusctl journal-list), the journal still verifies with
 * ptibusctl journal-verify --pubkey (chain, signed checkpoints, state databases), the
 * payload of a message still queued is kept, and a replay of the expired one is refused
 * saying why. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "codec.h"
#include "daemon.h"
#include "journal.h"
#include "ptibus/v1/admin.pb-c.h"
#include "samples.h"
#include "testutil.h"

#define TIMEOUT_MS 5000

typedef struct fx {
    td_net_t net;
    client_t *caf;
    client_t *cd; /* departement, the recipient of beneficiary events */
    char out[65536];
} fx_t;

static const td_net_options_t opts = {
    .ack_timeout = "30s", /* the queued message is not redelivered during the test */
    .extra_config = "retention:\n  payloads:\n    beneficiary_event: 2s\n    default: 1h\n"};

static int
setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    td_net_init(&f->net, "retention", &opts);
    if (td_broker_start(&f->net) != 0)
        return -1;
    assert_int_equal(td_client_session(&f->net, "caf", 0, &f->caf), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *f = *state;
    client_close(&f->caf);
    client_close(&f->cd);
    td_net_fini(&f->net);
    free(f);
    return 0;
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

/* Receives the next Deliver for c and acknowledges it; returns its seq (0 on timeout). */
static uint64_t
receive_and_ack(client_t *c)
{
    int64_t deadline = tu_now_ms() + TIMEOUT_MS;
    pt_error_t err;
    while (tu_now_ms() < deadline) {
        Ptibus__V1__Frame *fr;
        if (client_recv(c, (int)(deadline - tu_now_ms()), &fr, &err) != 0)
            return 0;
        uint64_t seq = fr->kind_case == PTIBUS__V1__FRAME__KIND_DELIVER ? fr->deliver->seq : 0;
        codec_free((ProtobufCMessage **)&fr);
        if (seq) {
            assert_int_equal(client_deliver_ack(c, seq, true, NULL, &err), 0);
            return seq;
        }
    }
    return 0;
}

static double
metric(fx_t *f, const char *name)
{
    char *text = NULL;
    assert_int_equal(td_metrics_scrape(&f->net, &text), 200);
    double v = td_metric_value(text, name);
    free(text);
    return v;
}

/* Runs ptibusctl with args; returns its exit status, output in f->out. */
static int
ctl(fx_t *f, const char *args)
{
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "'%s' %s --journal '%s' 2>&1", PT_PTIBUSCTL_PATH, args,
             f->net.journal_dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(f->out, 1, sizeof f->out - 1, p);
    f->out[n] = '\0';
    int st = pclose(p);
    print_message("%s", f->out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The payload state of the RECEIVED record of message_id, read as ptibusctl does. */
static journal_payload_t
payload_state(fx_t *f, const char *message_id)
{
    journal_options_t o = {.dir = f->net.journal_dir, .read_only = true};
    journal_t *j;
    journal_view_t v;
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0;
    uint64_t *seqs = NULL;
    pt_error_t err;
    assert_int_equal(journal_open(&o, &j, &err), 0);
    assert_int_equal(journal_find_message(j, message_id, &seqs, &n, &err), 0);
    assert_true(n > 0);
    assert_int_equal(journal_get(j, seqs[0], &v, &buf, &cap, &err), 0); /* RECEIVED first */
    assert_int_equal(v.kind, PT_REC_RECEIVED);
    journal_payload_t s = v.payload_state;
    free(buf);
    free(seqs);
    journal_close(&j);
    return s;
}

static Ptibus__V1__AdminResponse *
replay(fx_t *f, const char *message_id)
{
    client_t *admin;
    assert_int_equal(td_admin_open(&f->net, "admin", &admin), 0);
    Ptibus__V1__AdminRequest q = PTIBUS__V1__ADMIN_REQUEST__INIT;
    Ptibus__V1__ReplayRequest rp = PTIBUS__V1__REPLAY_REQUEST__INIT;
    rp.recipient = "departement";
    rp.message_id = (char *)message_id;
    rp.reason = "retention test";
    q.request_id = "rp";
    q.kind_case = PTIBUS__V1__ADMIN_REQUEST__KIND_REPLAY;
    q.replay = &rp;
    uint8_t *buf;
    size_t len;
    pt_error_t err;
    assert_int_equal(codec_pack(&q.base, 1 << 20, &buf, &len, &err), 0);
    assert_int_equal(zmq_send(client_socket(admin), buf, len, 0), (int)len);
    free(buf);
    zmq_pollitem_t item = {.socket = client_socket(admin), .events = ZMQ_POLLIN};
    assert_int_equal(zmq_poll(&item, 1, TIMEOUT_MS), 1);
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, client_socket(admin), 0) >= 0);
    ProtobufCMessage *r;
    assert_int_equal(codec_unpack(&ptibus__v1__admin_response__descriptor, zmq_msg_data(&m),
                                  zmq_msg_size(&m), 1 << 24, &r, &err),
                     0);
    zmq_msg_close(&m);
    client_close(&admin);
    return (Ptibus__V1__AdminResponse *)r;
}

static void
test_payload_expires_queued_kept(void **state)
{
    fx_t *f = *state;
    publish_event(f, "rt-acked");
    assert_int_equal(td_client_session(&f->net, "departement", 8, &f->cd), 0);
    uint64_t acked = receive_and_ack(f->cd);
    assert_true(acked > 0);
    client_close(&f->cd); /* departement goes away: the next message stays queued */
    publish_event(f, "rt-queued");

    /* Due after 2 s; the broker steps once a second when idle. */
    int64_t deadline = tu_now_ms() + 15000;
    while (tu_now_ms() < deadline && (metric(f, "ptibus_journal_payloads_expired_total") < 1 ||
                                      metric(f, "ptibus_journal_payloads_held") < 1))
        usleep(200000);
    assert_int_equal(metric(f, "ptibus_journal_payloads_expired_total"), 1);
    assert_int_equal(metric(f, "ptibus_journal_payloads_held"), 1);
    assert_true(td_log_contains(&f->net, "retention.held"));

    Ptibus__V1__AdminResponse *r = replay(f, "rt-acked");
    assert_false(r->ok);
    if (strstr(r->error, "expired under the retention policy") == NULL)
        fail_msg("replay answered: %s", r->error);
    codec_free((ProtobufCMessage **)&r);

    assert_int_equal(td_broker_stop(&f->net), 0);
    assert_int_equal(payload_state(f, "rt-acked"), PT_PAYLOAD_EXPIRED);
    assert_int_equal(payload_state(f, "rt-queued"), PT_PAYLOAD_STORED);
    char args[4500];
    snprintf(args, sizeof args, "journal-verify --pubkey '%s/keys/journal.sign.pub'", f->net.dir);
    assert_int_equal(ctl(f, args), 0);
    assert_non_null(strstr(f->out, "state: queue, dead-letter"));
    assert_int_equal(ctl(f, "journal-list"), 0);
    assert_non_null(strstr(f->out, "payload=expired"));
}

/* retention.audit: acknowledged messages older than it are moved out of the live
 * journal behind a signed anchor; the queued one stays; the journal verifies. */
static void
test_segment_expiry(void **state)
{
    fx_t *f = *state;
    assert_int_equal(td_broker_stop(&f->net), 0);
    client_close(&f->caf);
    td_net_options_t o = opts;
    o.extra_config = "retention:\n  audit: 3s\n  payloads:\n    default: 2s\n";
    td_net_configure(&f->net, &o);
    assert_int_equal(td_broker_start(&f->net), 0);
    assert_int_equal(td_client_session(&f->net, "caf", 0, &f->caf), 0);
    publish_event(f, "sg-acked");
    assert_int_equal(td_client_session(&f->net, "departement", 8, &f->cd), 0);
    assert_true(receive_and_ack(f->cd) > 0);
    client_close(&f->cd);
    publish_event(f, "sg-queued");
    int64_t deadline = tu_now_ms() + 20000;
    while (tu_now_ms() < deadline && !td_log_contains(&f->net, "moved out of the live journal"))
        usleep(200000);
    assert_true(td_log_contains(&f->net, "moved out of the live journal"));
    assert_int_equal(td_broker_stop(&f->net), 0);
    char args[4500];
    snprintf(args, sizeof args, "journal-verify --pubkey '%s/keys/journal.sign.pub'", f->net.dir);
    assert_int_equal(ctl(f, args), 0);
    assert_non_null(strstr(f->out, "verified from the signed anchor"));
    assert_non_null(strstr(f->out, "state: queue, dead-letter"));
    assert_int_equal(payload_state(f, "sg-queued"), PT_PAYLOAD_STORED);

    /* An archive of what is left, verified alone and as the live journal's
     * predecessor, and read by journal-list. */
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "archive --until 2999-01-01 --to '%s/archive'", f->net.dir);
    assert_int_equal(ctl(f, cmd), 0);
    assert_non_null(strstr(f->out, "archived records"));
    snprintf(cmd, sizeof cmd,
             "'%s' journal verify --archive '%s/archive' --pubkey '%s/keys/journal.sign.pub' "
             "--journal '%s' 2>&1",
             PT_PTIBUSCTL_PATH, f->net.dir, f->net.dir, f->net.journal_dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(f->out, 1, sizeof f->out - 1, p);
    f->out[n] = '\0';
    print_message("%s", f->out);
    assert_int_equal(pclose(p), 0);
    assert_non_null(strstr(f->out, "chained: the archive is the predecessor"));
    snprintf(cmd, sizeof cmd, "'%s' journal-list --journal '%s/archive' 2>&1", PT_PTIBUSCTL_PATH,
             f->net.dir);
    p = popen(cmd, "r");
    n = fread(f->out, 1, sizeof f->out - 1, p);
    f->out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    assert_non_null(strstr(f->out, "sg-queued"));
    assert_int_equal(td_broker_start(&f->net), 0); /* it resumes the anchored journal */
}

/* ptibusctl erase through the admin socket: the person's payload is erased, the other
 * person's kept, the journal verifies, and the erasure is journaled without the NIR. */
static void
test_erase_through_admin_socket(void **state)
{
    fx_t *f = *state;
    assert_int_equal(td_broker_stop(&f->net), 0);
    client_close(&f->caf);
    td_net_options_t o = opts;
    o.extra_config = NULL; /* no retention: only the erasure removes payloads */
    td_net_configure(&f->net, &o);
    assert_int_equal(td_broker_start(&f->net), 0);
    assert_int_equal(td_client_session(&f->net, "caf", 0, &f->caf), 0);
    td_sample_t s;
    client_result_t res;
    pt_error_t err;
    td_sample_beneficiary_event(&s, "er-a"); /* person A: the samples' NIR */
    assert_int_equal(client_publish(f->caf, &s.env, TIMEOUT_MS, &res, &err), 0);
    td_sample_beneficiary_event(&s, "er-b");
    s.person.nir = "294037512345635"; /* person B */
    assert_int_equal(client_publish(f->caf, &s.env, TIMEOUT_MS, &res, &err), 0);
    if (res.nack_code != 0)
        fail_msg("er-b refused: %s", res.reason);
    assert_int_equal(td_client_session(&f->net, "departement", 8, &f->cd), 0);
    assert_true(receive_and_ack(f->cd) > 0);
    assert_true(receive_and_ack(f->cd) > 0);
    usleep(300000); /* the acknowledgements are journaled on the next turn */

    char cmd[9000];
    snprintf(cmd, sizeof cmd,
             "echo 2850578006084 41 | '%s' erase --endpoint '%s' --server-key '%s/keys/broker.pub' "
             "--key '%s/keys/admin.key' --pub '%s/keys/admin.pub' --nir - "
             "--reason 'art. 17 request 42' 2>&1",
             PT_PTIBUSCTL_PATH, f->net.admin_endpoint, f->net.dir, f->net.dir, f->net.dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(f->out, 1, sizeof f->out - 1, p);
    f->out[n] = '\0';
    print_message("%s", f->out);
    assert_int_equal(pclose(p), 0);
    assert_non_null(strstr(f->out, "erased 1 payloads"));
    /* the same person again: nothing left to erase, said so, exit 3 */
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(f->out, 1, sizeof f->out - 1, p);
    f->out[n] = '\0';
    int st = pclose(p);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 3);
    assert_non_null(strstr(f->out, "nothing erased"));
    assert_int_equal(td_broker_stop(&f->net), 0);
    assert_int_equal(payload_state(f, "er-a"), PT_PAYLOAD_ERASED);
    assert_int_equal(payload_state(f, "er-b"), PT_PAYLOAD_STORED);
    char args[4500];
    snprintf(args, sizeof args, "journal-verify --pubkey '%s/keys/journal.sign.pub'", f->net.dir);
    assert_int_equal(ctl(f, args), 0);
    assert_int_equal(ctl(f, "journal-list"), 0);
    assert_non_null(strstr(f->out, "payload=erased"));
    assert_non_null(strstr(f->out, "erased 1 payloads about one person"));
    assert_null(strstr(f->out, "2850578006084")); /* never the NIR */
    assert_false(td_log_contains(&f->net, "2850578006084"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_payload_expires_queued_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_erase_through_admin_socket, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
