/* Integration tests of the broker's ingest half: real ptibusd processes on
 * 127.0.0.1, real CURVE clients, the real LMDB journal read back after the broker
 * stopped (or was killed). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "codec.h"
#include "daemon.h"
#include "journal.h"
#include "keys.h"
#include "nir.h"
#include "samples.h"
#include "testutil.h"

#define TIMEOUT_MS 5000

typedef struct fixture {
    td_net_t net;
    client_t *client;
} fixture_t;

static int
setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    td_net_init(&f->net, "ingest", NULL);
    if (td_broker_start(&f->net) != 0)
        return -1;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture_t *f = *state;
    client_close(&f->client);
    td_net_fini(&f->net);
    free(f);
    return 0;
}

static client_t *
connect_as(fixture_t *f, const char *partner)
{
    client_close(&f->client);
    assert_int_equal(td_client_open(&f->net, partner, true, &f->client), 0);
    char who[64];
    pt_error_t err;
    assert_int_equal(client_hello(f->client, TIMEOUT_MS, who, sizeof who, &err), 0);
    assert_string_equal(who, partner);
    return f->client;
}

static client_result_t
publish(client_t *c, const Ptibus__V1__Envelope *env)
{
    client_result_t res;
    pt_error_t err;
    int rc = client_publish(c, env, TIMEOUT_MS, &res, &err);
    if (rc != 0)
        fail_msg("publish %s: %s", env->message_id, err.msg);
    return res;
}

/* Opens the journal of a stopped broker (read_only: as the admin tools do, without
 * refusing a journal that fails its start-up checks). */
static journal_t *
open_journal_mode(fixture_t *f, bool read_only)
{
    char path[4300];
    uint8_t hmac[32];
    pt_error_t err;
    snprintf(path, sizeof path, "%s/keys/person-index.hmac", f->net.dir);
    assert_int_equal(keys_read(path, hmac, 32, true, &err), 0);
    journal_options_t o = {.dir = f->net.journal_dir, .hmac_key = hmac, .read_only = read_only};
    journal_t *j;
    if (journal_open(&o, &j, &err) != 0)
        fail_msg("journal_open: %s", err.msg);
    return j;
}

static journal_t *
open_journal(fixture_t *f)
{
    return open_journal_mode(f, false);
}

static journal_t *
open_journal_ro(fixture_t *f)
{
    return open_journal_mode(f, true);
}

static void
read_pk(fixture_t *f, uint8_t pk[32])
{
    char path[4300];
    pt_error_t err;
    snprintf(path, sizeof path, "%s/keys/journal.sign.pub", f->net.dir);
    assert_int_equal(keys_read(path, pk, 32, false, &err), 0);
}

static void
get_record(journal_t *j, uint64_t seq, journal_view_t *v, uint8_t **buf, size_t *cap)
{
    pt_error_t err;
    if (journal_get(j, seq, v, buf, cap, &err) != 0)
        fail_msg("journal_get %llu: %s", (unsigned long long)seq, err.msg);
}

static void
test_publish_ack_and_spoofed_sender(void **state)
{
    fixture_t *f = *state;
    client_t *c = connect_as(f, "departement");
    td_sample_t s;
    td_sample_orientation(&s, "ori-0001");
    s.env.sender = "caf"; /* a lie the broker must overwrite */
    client_result_t r = publish(c, &s.env);
    assert_int_equal(r.nack_code, 0);
    assert_true(r.seq > 0);
    assert_false(r.duplicate);
    assert_int_equal(td_broker_stop(&f->net), 0);

    journal_t *j = open_journal(f);
    journal_view_t v;
    uint8_t *buf = NULL;
    size_t cap = 0;
    get_record(j, r.seq, &v, &buf, &cap);
    assert_int_equal(v.kind, PT_REC_RECEIVED);
    assert_string_equal(v.partner, "departement");
    assert_string_equal(v.msg_type, "orientation");
    assert_string_equal(v.message_id, "ori-0001");
    ProtobufCMessage *m;
    pt_error_t err;
    assert_int_equal(codec_unpack(&ptibus__v1__envelope__descriptor, v.payload, v.payload_len,
                                  1 << 20, &m, &err),
                     0);
    assert_string_equal(((Ptibus__V1__Envelope *)m)->sender, "departement");
    codec_free(&m);
    free(buf);
    journal_close(&j);
}

static void
test_not_allowed_is_nacked_and_journaled(void **state)
{
    fixture_t *f = *state;
    client_t *c = connect_as(f, "caf");
    td_sample_t s;
    td_sample_sanction(&s, "san-caf-1", PTIBUS__V1__PAYER__PAYER_CAF);
    client_result_t r = publish(c, &s.env);
    assert_int_equal(r.nack_code, PTIBUS__V1__NACK_CODE__NACK_CODE_NOT_ALLOWED);
    assert_false(r.retryable);
    assert_non_null(strstr(r.reason, "may not send sanction"));
    assert_true(r.seq > 0);
    assert_true(td_log_contains(&f->net, "message_id=san-caf-1")); /* the Nack by its name */
    assert_true(td_log_contains(&f->net, "code=NOT_ALLOWED: "));
    assert_int_equal(td_broker_stop(&f->net), 0);

    journal_t *j = open_journal(f);
    journal_view_t v;
    uint8_t *buf = NULL;
    size_t cap = 0;
    get_record(j, r.seq, &v, &buf, &cap);
    assert_int_equal(v.kind, PT_REC_REJECTED);
    assert_string_equal(v.partner, "caf");
    assert_string_equal(v.message_id, "san-caf-1");
    assert_non_null(strstr(v.reason, "may not send sanction"));
    free(buf);
    journal_close(&j);
}

static void
test_invalid_payload_names_the_field(void **state)
{
    fixture_t *f = *state;
    client_t *c = connect_as(f, "departement");
    td_sample_t s;
    td_sample_sanction(&s, "san-bad-rate", PTIBUS__V1__PAYER__PAYER_MSA);
    s.sanction.rate_percent = 120;
    client_result_t r = publish(c, &s.env);
    assert_int_equal(r.nack_code, PTIBUS__V1__NACK_CODE__NACK_CODE_INVALID);
    assert_string_equal(r.field_path, "sanction.ratePercent");
    assert_string_equal(r.reason, "sanction.ratePercent: 120 is above 100");
    assert_true(r.seq > 0);

    td_sample_orientation(&s, "ori-bad-nir");
    s.person.nir = "285057800608400"; /* wrong key */
    r = publish(c, &s.env);
    assert_int_equal(r.nack_code, PTIBUS__V1__NACK_CODE__NACK_CODE_INVALID);
    assert_non_null(strstr(r.field_path, "person.nir"));
    assert_null(strstr(r.reason, "2850578006084")); /* never echo a NIR */
}

static void
test_malformed_frame_and_envelope(void **state)
{
    fixture_t *f = *state;
    client_t *c = connect_as(f, "departement");
    pt_error_t err;
    const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f};
    assert_int_equal(client_publish_bytes(c, "junk-1", junk, sizeof junk, &err), 0);
    Ptibus__V1__Frame *fr;
    assert_int_equal(client_recv(c, TIMEOUT_MS, &fr, &err), 0);
    assert_int_equal(fr->kind_case, PTIBUS__V1__FRAME__KIND_NACK);
    assert_int_equal(fr->nack->code, PTIBUS__V1__NACK_CODE__NACK_CODE_MALFORMED);
    assert_string_equal(fr->nack->message_id, "junk-1");
    assert_string_equal(fr->nack->field_path, "envelope");
    assert_string_equal(fr->nack->reason, "envelope: 6 bytes are not a valid ptibus.v1.Envelope");
    assert_true(fr->nack->seq > 0);
    codec_free((ProtobufCMessage **)&fr);

    /* Bytes that are not even a Frame. */
    const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(zmq_send(client_socket(c), garbage, sizeof garbage, 0), (int)sizeof garbage);
    assert_int_equal(client_recv(c, TIMEOUT_MS, &fr, &err), 0);
    assert_int_equal(fr->kind_case, PTIBUS__V1__FRAME__KIND_NACK);
    assert_int_equal(fr->nack->code, PTIBUS__V1__NACK_CODE__NACK_CODE_MALFORMED);
    assert_string_equal(fr->nack->message_id, "");
    assert_string_equal(fr->nack->reason, "frame: 8 bytes are not a valid ptibus.v1.Frame");
    assert_true(fr->nack->seq > 0);
    codec_free((ProtobufCMessage **)&fr);
}

static void
test_dedup_same_and_different_content(void **state)
{
    fixture_t *f = *state;
    client_t *c = connect_as(f, "pole_emploi");
    td_sample_t s;
    td_sample_referral(&s, "ref-dup-1", "ml_nord");
    client_result_t r1 = publish(c, &s.env);
    assert_int_equal(r1.nack_code, 0);
    client_result_t r2 = publish(c, &s.env);
    assert_int_equal(r2.nack_code, 0);
    assert_true(r2.duplicate);
    assert_int_equal(r2.seq, r1.seq);
    s.referral.reason = "Un autre motif";
    client_result_t r3 = publish(c, &s.env);
    assert_int_equal(r3.nack_code, PTIBUS__V1__NACK_CODE__NACK_CODE_DUPLICATE_CONFLICT);
    assert_string_equal(r3.field_path, "messageId");
    char expect[128];
    snprintf(expect, sizeof expect, "different content (seq %llu)", (unsigned long long)r1.seq);
    assert_non_null(strstr(r3.reason, expect));
    /* The same id from another partner is another message. */
    c = connect_as(f, "ml_nord");
    s.org_b.partner_id = "departement"; /* a partner never routes to itself */
    client_result_t r4 = publish(c, &s.env);
    assert_int_equal(r4.nack_code, 0);
    assert_false(r4.duplicate);
    assert_true(r4.seq > r1.seq);
}

static void
test_unknown_key_and_plaintext_refused(void **state)
{
    fixture_t *f = *state;
    pt_error_t err;
    client_t *c;
    assert_int_equal(td_client_open(&f->net, "intruder", true, &c), 0);
    assert_int_equal(client_hello(c, 1500, NULL, 0, &err), PT_ETIMEOUT);
    client_close(&c);
    assert_true(td_log_contains(&f->net, "unknown partner key"));
    /* The refusal is counted in the metrics, beside the build and the checkpoint. */
    char *text = NULL;
    double refused = 0;
    for (int i = 0; i < 30 && refused < 1; i++) { /* published every second */
        free(text);
        assert_int_equal(td_metrics_scrape(&f->net, &text), 200);
        refused = td_metric_value(text, "ptibus_auth_refused_total");
        if (refused < 1)
            usleep(100000);
    }
    assert_true(refused >= 1);
    char build[64];
    snprintf(build, sizeof build, "ptibus_build_info{version=\"%s\"}", PTIBUS_VERSION);
    assert_true(td_metric_value(text, build) == 1);
    assert_true(td_metric_value(text, "ptibus_journal_checkpoint_seq") >= 0);
    assert_non_null(strstr(text, "ptibus_journal_checkpoint_age_seconds "));
    free(text);

    assert_int_equal(td_client_open(&f->net, "departement", false, &c), 0);
    td_sample_t s;
    td_sample_orientation(&s, "ori-plain");
    client_result_t r;
    assert_int_equal(client_publish(c, &s.env, 1500, &r, &err), PT_ETIMEOUT);
    client_close(&c);
    /* Depending on who notices first, libzmq reports a mechanism mismatch or a handshake
     * cut short: either way the broker logs the refused handshake. */
    assert_true(td_log_contains(&f->net, "[auth.handshake]") &&
                (td_log_contains(&f->net, "the client does not use CURVE") ||
                 td_log_contains(&f->net, "no CURVE handshake completed")));
    assert_int_equal(td_broker_stop(&f->net), 0);
    journal_t *j = open_journal(f);
    assert_int_equal(journal_last_seq(j), 0); /* nothing from either got in */
    journal_close(&j);
}

/* Publishes n messages pipelined (window w) and records the acked seqs by index. */
static size_t
publish_window(client_t *c, const char *prefix, size_t n, size_t w, uint64_t *acked)
{
    pt_error_t err;
    size_t sent = 0, done = 0;
    td_sample_t s;
    while (done < n) {
        while (sent < n && sent - done < w) {
            char id[64];
            snprintf(id, sizeof id, "%s-%06zu", prefix, sent);
            td_sample_beneficiary_event(&s, id);
            assert_int_equal(client_publish_async(c, &s.env, &err), 0);
            sent++;
        }
        Ptibus__V1__Frame *fr;
        if (client_recv(c, TIMEOUT_MS, &fr, &err) != 0)
            break;
        client_result_t r;
        const char *mid;
        if (client_result_from_frame(fr, &r, &mid) && r.nack_code == 0) {
            size_t idx = (size_t)strtoul(mid + strlen(prefix) + 1, NULL, 10);
            if (idx < n)
                acked[idx] = r.seq;
        }
        codec_free((ProtobufCMessage **)&fr);
        done++;
    }
    return done;
}

static void
test_kill9_loses_no_acked_message(void **state)
{
    fixture_t *f = *state;
    client_t *c = connect_as(f, "caf");
    enum { N = 400 };
    uint64_t *acked = calloc(N, sizeof *acked);
    assert_int_equal(publish_window(c, "k9", N, 64, acked), N);
    td_broker_kill9(&f->net); /* right after the last ack: no clean shutdown */
    client_close(&f->client);

    journal_t *j = open_journal(f);
    journal_view_t v;
    uint8_t *buf = NULL;
    size_t cap = 0, n_acked = 0;
    for (size_t i = 0; i < N; i++) {
        if (acked[i] == 0)
            continue;
        n_acked++;
        get_record(j, acked[i], &v, &buf, &cap);
        char id[64];
        snprintf(id, sizeof id, "k9-%06zu", i);
        assert_string_equal(v.message_id, id);
        assert_int_equal(v.kind, PT_REC_RECEIVED);
    }
    assert_int_equal(n_acked, N);
    uint8_t pk[32];
    read_pk(f, pk);
    uint64_t bad = 0;
    pt_error_t err;
    if (journal_verify(j, 1, 0, pk, &bad, &err) != 0)
        fail_msg("chain broken at %llu: %s", (unsigned long long)bad, err.msg);
    free(buf);
    journal_close(&j);
    free(acked);

    /* The broker restarts on the same journal and goes on from the same sequence. */
    assert_int_equal(td_broker_start(&f->net), 0);
    c = connect_as(f, "caf");
    td_sample_t s;
    td_sample_beneficiary_event(&s, "after-restart");
    client_result_t r = publish(c, &s.env);
    assert_int_equal(r.nack_code, 0);
    assert_int_equal(r.seq, (uint64_t)N + 1);
    td_sample_beneficiary_event(&s, "k9-000007");
    r = publish(c, &s.env); /* a retry across the restart is still a duplicate */
    assert_true(r.duplicate);
}

/* kill -9 while acks are streaming: every message acked before the kill is on disk,
 * and a publisher that resends everything after the restart loses nothing. */
static void
test_kill9_mid_stream(void **state)
{
    fixture_t *f = *state;
    client_t *c = connect_as(f, "msa");
    enum { N = 3000, KILL_AFTER = 700 };
    uint64_t *acked = calloc(N, sizeof *acked);
    pt_error_t err;
    td_sample_t s;
    size_t sent = 0, got = 0;
    while (got < KILL_AFTER) {
        while (sent < N && sent - got < 256) {
            char id[64];
            snprintf(id, sizeof id, "mid-%06zu", sent++);
            td_sample_beneficiary_event(&s, id);
            s.person.payer = PTIBUS__V1__PAYER__PAYER_MSA;
            assert_int_equal(client_publish_async(c, &s.env, &err), 0);
        }
        Ptibus__V1__Frame *fr;
        assert_int_equal(client_recv(c, TIMEOUT_MS, &fr, &err), 0);
        client_result_t r;
        const char *mid;
        assert_true(client_result_from_frame(fr, &r, &mid));
        assert_int_equal(r.nack_code, 0);
        acked[strtoul(mid + 4, NULL, 10)] = r.seq;
        codec_free((ProtobufCMessage **)&fr);
        got++;
    }
    td_broker_kill9(&f->net); /* messages are still in flight */
    client_close(&f->client);

    journal_t *j = open_journal(f);
    journal_view_t v;
    uint8_t *buf = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < N; i++) {
        if (acked[i] == 0)
            continue;
        get_record(j, acked[i], &v, &buf, &cap);
        char id[64];
        snprintf(id, sizeof id, "mid-%06zu", i);
        assert_string_equal(v.message_id, id);
    }
    uint64_t last = journal_last_seq(j);
    assert_true(last >= KILL_AFTER);
    free(buf);
    journal_close(&j);

    /* The publisher resends all it has not seen acked (here: everything): the
     * messages already stored are acknowledged as duplicates with their first seq. */
    assert_int_equal(td_broker_start(&f->net), 0);
    c = connect_as(f, "msa");
    size_t dups = 0;
    for (size_t i = 0; i < N; i += 97) {
        char id[64];
        snprintf(id, sizeof id, "mid-%06zu", i);
        td_sample_beneficiary_event(&s, id);
        s.person.payer = PTIBUS__V1__PAYER__PAYER_MSA;
        client_result_t r = publish(c, &s.env);
        assert_int_equal(r.nack_code, 0);
        if (acked[i]) {
            assert_true(r.duplicate);
            assert_int_equal(r.seq, acked[i]);
        }
        dups += r.duplicate;
    }
    assert_true(dups >= KILL_AFTER / 97);
    free(acked);
}

/* Two partners keep 256 messages each in flight, so messages wait on the socket while
 * each batch commits: the read-ahead helper reads and prepares them during the fsync.
 * Every message is answered once, accepted, in its publisher's order, and journaled
 * as sent; the broker's counter shows the helper did the reading. */
static void
test_read_ahead_keeps_order(void **state)
{
    fixture_t *f = *state;
    enum { N = 3000, WINDOW = 256 };
    static const char *const who[2] = {"caf", "msa"};
    client_t *c[2];
    pt_error_t err;
    for (int k = 0; k < 2; k++) {
        assert_int_equal(td_client_open(&f->net, who[k], true, &c[k]), 0);
        char name[64];
        assert_int_equal(client_hello(c[k], TIMEOUT_MS, name, sizeof name, &err), 0);
    }
    uint64_t *seq[2] = {calloc(N, sizeof(uint64_t)), calloc(N, sizeof(uint64_t))};
    size_t sent[2] = {0, 0}, got[2] = {0, 0};
    td_sample_t s;
    while (got[0] < N || got[1] < N) {
        for (int k = 0; k < 2; k++) {
            while (sent[k] < N && sent[k] - got[k] < WINDOW) {
                char id[64];
                snprintf(id, sizeof id, "ra-%s-%06zu", who[k], sent[k]++);
                td_sample_beneficiary_event(&s, id);
                s.person.payer = k ? PTIBUS__V1__PAYER__PAYER_MSA : PTIBUS__V1__PAYER__PAYER_CAF;
                assert_int_equal(client_publish_async(c[k], &s.env, &err), 0);
            }
            for (int burst = 0; got[k] < sent[k] && burst < WINDOW; burst++) {
                Ptibus__V1__Frame *fr;
                int rc = client_recv(c[k], burst == 0 ? TIMEOUT_MS : 0, &fr, &err);
                if (rc == PT_ETIMEOUT && burst > 0)
                    break;
                if (rc != 0)
                    fail_msg("%s: %s", who[k], err.msg);
                client_result_t r;
                const char *mid;
                if (client_result_from_frame(fr, &r, &mid)) {
                    assert_int_equal(r.nack_code, 0);
                    assert_false(r.duplicate);
                    size_t i = strtoul(mid + strlen("ra-") + strlen(who[k]) + 1, NULL, 10);
                    assert_true(i < N);
                    assert_int_equal(seq[k][i], 0); /* answered once */
                    seq[k][i] = r.seq;
                    got[k]++;
                }
                codec_free((ProtobufCMessage **)&fr);
            }
        }
    }
    for (int k = 0; k < 2; k++) {
        client_close(&c[k]);
        for (size_t i = 1; i < N; i++) /* journaled in the order it was sent */
            assert_true(seq[k][i] > seq[k][i - 1]);
    }

    char *text = NULL;
    double ahead = -1;
    for (int i = 0; i < 30 && ahead <= 0; i++) { /* published every second */
        free(text);
        assert_int_equal(td_metrics_scrape(&f->net, &text), 200);
        ahead = td_metric_value(text, "ptibus_messages_read_ahead_total");
        if (ahead <= 0)
            usleep(100000);
    }
    free(text);
    assert_true(ahead > 0);
    assert_true(ahead <= 2 * N);

    assert_int_equal(td_broker_stop(&f->net), 0);
    journal_t *j = open_journal(f);
    journal_view_t v;
    uint8_t *buf = NULL;
    size_t cap = 0;
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < N; i += 7) {
            get_record(j, seq[k][i], &v, &buf, &cap);
            char id[64];
            snprintf(id, sizeof id, "ra-%s-%06zu", who[k], i);
            assert_int_equal(v.kind, PT_REC_RECEIVED);
            assert_string_equal(v.message_id, id);
            assert_string_equal(v.partner, who[k]);
        }
    free(buf);
    journal_close(&j);
    free(seq[0]);
    free(seq[1]);
}

/* The broker merges the person index's new entries once the partners are quiet: the
 * gauge falls to 0, and the journal finds every message about the person. */
static void
test_person_index_merged_when_idle(void **state)
{
    fixture_t *f = *state;
    client_t *c = connect_as(f, "caf");
    enum { N = 40 };
    uint64_t seqs[N];
    td_sample_t s;
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "pm-%d", i);
        td_sample_beneficiary_event(&s, id);
        client_result_t r = publish(c, &s.env);
        assert_int_equal(r.nack_code, 0);
        seqs[i] = r.seq;
    }
    /* Gauges are sampled every second: trust the count only in a sample that already
     * has the last message. */
    char *text = NULL;
    double waiting = -1, last = 0;
    for (int i = 0; i < 50 && (waiting != 0 || last < (double)seqs[N - 1]); i++) {
        free(text);
        assert_int_equal(td_metrics_scrape(&f->net, &text), 200);
        waiting = td_metric_value(text, "ptibus_person_index_unmerged");
        last = td_metric_value(text, "ptibus_journal_last_seq");
        if (waiting != 0 || last < (double)seqs[N - 1])
            usleep(100000);
    }
    free(text);
    assert_true(last >= (double)seqs[N - 1]);
    assert_true(waiting == 0);
    assert_int_equal(td_broker_stop(&f->net), 0);
    client_close(&f->client);

    journal_t *j = open_journal_ro(f);
    char nir[14];
    assert_int_equal(nir_normalise(s.person.nir, nir, NULL), 0);
    uint64_t *found;
    size_t n;
    pt_error_t err;
    assert_int_equal(journal_find_person(j, nir, &found, &n, &err), 0);
    assert_int_equal(n, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(found[i], seqs[i]);
    free(found);
    assert_int_equal(journal_person_unmerged(j), 0);
    journal_close(&j);
}

/* A partner that sends 5000 messages before reading any answer gets all 5000 acks:
 * the broker queues that many replies towards it (ZeroMQ's default of 1000 dropped
 * them). */
static void
test_many_in_flight_all_acked(void **state)
{
    fixture_t *f = *state;
    client_t *c = connect_as(f, "caf");
    enum { N = 5000 };
    pt_error_t err;
    td_sample_t s;
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "fl-%05d", i);
        td_sample_beneficiary_event(&s, id);
        int rc, tries = 0;
        while ((rc = client_publish_async(c, &s.env, &err)) == -EAGAIN && tries++ < 5000)
            usleep(1000); /* the broker is still reading: wait, but read no answer */
        assert_int_equal(rc, 0);
    }
    static bool seen[N];
    memset(seen, 0, sizeof seen);
    for (int got = 0; got < N;) {
        Ptibus__V1__Frame *fr;
        if (client_recv(c, TIMEOUT_MS, &fr, &err) != 0)
            fail_msg("after %d acks: %s", got, err.msg);
        client_result_t r;
        const char *mid;
        if (client_result_from_frame(fr, &r, &mid)) { /* else a heartbeat */
            assert_int_equal(r.nack_code, 0);
            int i = atoi(mid + 3);
            assert_false(seen[i]);
            seen[i] = true;
            got++;
        }
        codec_free((ProtobufCMessage **)&fr);
    }
}

/* Flips one byte of a stored record in data.mdb: verify must name that record.
 * LMDB is copy-on-write, so stale copies of a page may hold the same bytes: every
 * occurrence is flipped, which certainly includes the live one. */
static void
test_flipped_byte_is_detected(void **state)
{
    fixture_t *f = *state;
    client_t *c = connect_as(f, "region");
    td_sample_t s;
    uint64_t seqs[3];
    const char *titles[3] = {"Titre-AAAA-unique", "Titre-BBBB-unique", "Titre-CCCC-unique"};
    for (int i = 0; i < 3; i++) {
        char id[32];
        snprintf(id, sizeof id, "offer-%d", i);
        td_sample_training_offer(&s, id);
        s.offer.title = (char *)titles[i];
        client_result_t r = publish(c, &s.env);
        assert_int_equal(r.nack_code, 0);
        seqs[i] = r.seq;
    }
    assert_int_equal(td_broker_stop(&f->net), 0);

    char path[4300];
    snprintf(path, sizeof path, "%s/data.mdb", f->net.journal_dir);
    uint8_t *data;
    size_t len;
    assert_int_equal(tu_read_file(path, &data, &len), 0);
    const char *needle = titles[1];
    size_t nl = strlen(needle), hits = 0;
    for (size_t i = 0; i + nl <= len; i++)
        if (memcmp(data + i, needle, nl) == 0) {
            data[i + 6] ^= 0x01; /* 'B' -> 'C' */
            hits++;
        }
    assert_true(hits >= 1);
    assert_int_equal(tu_write_file(path, data, len), 0);
    free(data);

    journal_t *j = open_journal_ro(f);
    uint8_t pk[32];
    read_pk(f, pk);
    uint64_t bad = 0;
    pt_error_t err;
    assert_int_equal(journal_verify(j, 1, 0, pk, &bad, &err), PT_ECORRUPT);
    assert_int_equal(bad, seqs[1]);
    assert_non_null(strstr(err.msg, "record"));
    journal_close(&j);
}

static void
test_journal_full_then_recovery(void **state)
{
    fixture_t *f = *state;
    td_broker_stop(&f->net);
    td_net_options_t small = {.journal_max_size = "1MiB", .journal_initial_size = "1MiB"};
    td_net_configure(&f->net, &small);
    assert_int_equal(td_broker_start(&f->net), 0);
    client_t *c = connect_as(f, "region");
    static char big[4001];
    memset(big, 'x', sizeof big - 1);
    td_sample_t s;
    client_result_t r = {0};
    uint64_t last_ok = 0;
    int i;
    for (i = 0; i < 2000; i++) {
        char id[32];
        snprintf(id, sizeof id, "fill-%d", i);
        td_sample_training_offer(&s, id);
        s.offer.objective = big;
        r = publish(c, &s.env);
        if (r.nack_code != 0)
            break;
        last_ok = r.seq;
    }
    assert_true(i < 2000);
    assert_int_equal(r.nack_code, PTIBUS__V1__NACK_CODE__NACK_CODE_JOURNAL_FULL);
    assert_true(r.retryable);
    assert_int_equal(r.seq, 0);
    assert_true(td_log_contains(&f->net, "JOURNAL FULL"));
    usleep(1200 * 1000); /* the space is looked at every second */
    assert_int_equal(td_log_count(&f->net, "[journal.nearly_full]"), 1);
    /* Still full for the next message: nothing half-written meanwhile. */
    td_sample_training_offer(&s, "still-full");
    s.offer.objective = big;
    r = publish(c, &s.env);
    assert_int_equal(r.nack_code, PTIBUS__V1__NACK_CODE__NACK_CODE_JOURNAL_FULL);
    assert_int_equal(td_broker_stop(&f->net), 0);

    /* The operator raises the maximum: the broker accepts again, nothing was lost. */
    td_net_options_t bigger = {.journal_max_size = "16MiB", .journal_initial_size = "1MiB"};
    td_net_configure(&f->net, &bigger);
    assert_int_equal(td_broker_start(&f->net), 0);
    c = connect_as(f, "region");
    r = publish(c, &s.env);
    assert_int_equal(r.nack_code, 0);
    assert_int_equal(r.seq, last_ok + 1);
    assert_int_equal(td_broker_stop(&f->net), 0);
    journal_t *j = open_journal(f);
    uint64_t bad;
    pt_error_t err;
    assert_int_equal(journal_verify(j, 1, 0, NULL, &bad, &err), 0);
    assert_int_equal(journal_last_seq(j), last_ok + 1);
    journal_close(&j);
}

static int
run_ptibusd(const char *const argv[], char *out, size_t cap)
{
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 1);
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        execv(PT_PTIBUSD_PATH, (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(pipefd[0], out + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(pipefd[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* --check-config on a journal folder a broker could not open: a missing parent, and (as
 * root, with a read-only tmpfs) a read-only filesystem. */
static void
check_journal_folders(fixture_t *f)
{
    char out[4096], ro[4000];
    const char *argv[] = {"ptibusd", "--config", f->net.config, "--check-config", NULL};
    char saved[sizeof f->net.journal_dir];
    memcpy(saved, f->net.journal_dir, sizeof saved);
    snprintf(f->net.journal_dir, sizeof f->net.journal_dir, "%s/no/such/journal", f->net.dir);
    td_net_configure(&f->net, NULL);
    assert_int_equal(run_ptibusd(argv, out, sizeof out), 1);
    assert_non_null(strstr(out, "the journal folder's parent does not exist"));
    snprintf(ro, sizeof ro, "%.3900s/ro", f->net.dir);
    assert_int_equal(mkdir(ro, 0700), 0);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "mount -t tmpfs -o ro,size=1m tmpfs '%s' 2>/dev/null", ro);
    if (system(cmd) == 0) {
        snprintf(f->net.journal_dir, sizeof f->net.journal_dir, "%s/journal", ro);
        td_net_configure(&f->net, NULL);
        assert_int_equal(run_ptibusd(argv, out, sizeof out), 1);
        assert_non_null(strstr(out, "is not writable by this user: Read-only file system"));
        snprintf(cmd, sizeof cmd, "umount '%s'", ro);
        assert_int_equal(system(cmd), 0);
    } else {
        print_message("no right to mount a tmpfs: the read-only case is not checked\n");
    }
    memcpy(f->net.journal_dir, saved, sizeof saved);
    td_net_configure(&f->net, NULL);
}

static void
test_check_config_and_key_mode(void **state)
{
    fixture_t *f = *state;
    char out[4096];
    const char *ok[] = {"ptibusd", "--config", f->net.config, "--check-config", NULL};
    /* The running broker holds the journal: the check says so (a standby would wait). */
    char expect[96];
    snprintf(expect, sizeof expect, "the journal is in use by pid %d", (int)f->net.pid);
    assert_int_equal(run_ptibusd(ok, out, sizeof out), 1);
    assert_non_null(strstr(out, expect));
    const char *standby[] = {"ptibusd",        "--config",  f->net.config,
                             "--check-config", "--standby", NULL};
    assert_int_equal(run_ptibusd(standby, out, sizeof out), 0);
    assert_non_null(strstr(out, "this broker is a standby and will wait for it"));
    assert_int_equal(td_broker_stop(&f->net), 0);
    assert_int_equal(run_ptibusd(ok, out, sizeof out), 0);
    assert_non_null(strstr(out, "configuration OK (6 partners)"));
    check_journal_folders(f);
    assert_int_equal(td_broker_start(&f->net), 0);

    char path[4300];
    snprintf(path, sizeof path, "%s/bad.yaml", f->net.dir);
    const char bad[] =
        "listen: \"tcp://127.0.0.1:1\"\njournal:\n  dir: j\n  max_size: 12 potatoes\n";
    assert_int_equal(tu_write_file(path, bad, strlen(bad)), 0);
    const char *badargv[] = {"ptibusd", "--config", path, "--check-config", NULL};
    assert_int_equal(run_ptibusd(badargv, out, sizeof out), 1);
    assert_non_null(strstr(out, "bad.yaml:4"));

    /* A server secret key readable by others: refuse to start. */
    td_broker_stop(&f->net);
    snprintf(path, sizeof path, "%s/keys/broker.key", f->net.dir);
    assert_int_equal(chmod(path, 0644), 0);
    const char *run[] = {"ptibusd", "--config", f->net.config, NULL};
    assert_int_equal(run_ptibusd(run, out, sizeof out), 1);
    assert_non_null(strstr(out, "chmod 600"));
    assert_int_equal(chmod(path, 0600), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_publish_ack_and_spoofed_sender, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_allowed_is_nacked_and_journaled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_payload_names_the_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_frame_and_envelope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup_same_and_different_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key_and_plaintext_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_loses_no_acked_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_mid_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_byte_is_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_ahead_keeps_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_in_flight_all_acked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_person_index_merged_when_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_full_then_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_config_and_key_mode, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
