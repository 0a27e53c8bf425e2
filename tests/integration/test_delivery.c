/* Integration tests of the broker's delivery half: routing to the right recipients,
 * per-recipient order, store-and-forward, credit, redelivery, dead letters, receipts,
 * and kill -9 during delivery. Real ptibusd, real CURVE clients. */
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
#include "keys.h"
#include "samples.h"
#include "testutil.h"

#define TIMEOUT_MS 5000
#define QUIET_MS 400 /* how long "nothing else arrives" is watched */
#define MAX_SEEN 4096
#define COMMIT_MS 300 /* ample for one batch commit (an fsync) */

typedef struct seen {
    uint64_t seq;
    uint32_t attempt;
    bool redelivery;
    char message_id[72];
    char sender[40];
} seen_t;

typedef struct fx {
    td_net_t net;
    client_t *c[8]; /* one per td_partners entry */
} fx_t;

static int
partner_index(const char *id)
{
    for (int i = 0; td_partners[i]; i++)
        if (strcmp(td_partners[i], id) == 0)
            return i;
    fail_msg("no test partner %s", id);
    return -1;
}

static client_t *
session(fx_t *f, const char *partner, uint32_t credit)
{
    int i = partner_index(partner);
    client_close(&f->c[i]);
    assert_int_equal(td_client_session(&f->net, partner, credit, &f->c[i]), 0);
    return f->c[i];
}

static int
setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    td_net_init(&f->net, "delivery", NULL);
    if (td_broker_start(&f->net) != 0)
        return -1;
    *state = f;
    return 0;
}

/* Acks never time out during the test: what arrives is first deliveries only. */
static int
setup_slow_acks(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    td_net_options_t o = {.ack_timeout = "30s"};
    td_net_init(&f->net, "delivery", &o);
    if (td_broker_start(&f->net) != 0)
        return -1;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *f = *state;
    for (int i = 0; i < 8; i++)
        client_close(&f->c[i]);
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
    if (res.nack_code != 0)
        fail_msg("publish %s refused: %s", env->message_id, res.reason);
    return res;
}

/* Receives Deliver frames for up to wait_ms (stopping early once `want` have come),
 * acknowledging each when ack is set. Other frames are ignored. */
static size_t
collect(client_t *c, size_t want, int wait_ms, bool ack, seen_t *out, size_t max)
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
            Ptibus__V1__Deliver *d = fr->deliver;
            seen_t *s = &out[n++];
            s->seq = d->seq;
            s->attempt = d->attempt;
            s->redelivery = d->redelivery;
            snprintf(s->message_id, sizeof s->message_id, "%s", d->message_id);
            snprintf(s->sender, sizeof s->sender, "%s", d->sender);
            if (ack)
                assert_int_equal(client_deliver_ack(c, d->seq, true, NULL, &err), 0);
        }
        codec_free((ProtobufCMessage **)&fr);
    }
    return n;
}

/* Asserts that exactly the partners in `expected` (NULL-terminated) receive message_id. */
static void
expect_recipients(fx_t *f, const char *message_id, const char *const *expected)
{
    seen_t got[16];
    for (int i = 0; td_partners[i]; i++) {
        bool want = false;
        for (int k = 0; expected[k]; k++)
            want |= strcmp(expected[k], td_partners[i]) == 0;
        size_t n = collect(f->c[i], 1, want ? TIMEOUT_MS : QUIET_MS, true, got, 16);
        if (want && (n != 1 || strcmp(got[0].message_id, message_id) != 0))
            fail_msg("%s did not receive %s", td_partners[i], message_id);
        if (!want && n != 0)
            fail_msg("%s received %s, which is not for it", td_partners[i], got[0].message_id);
    }
}

static void
open_all(fx_t *f)
{
    for (int i = 0; td_partners[i]; i++)
        session(f, td_partners[i], 64);
}

static void
test_each_family_reaches_its_recipients_only(void **state)
{
    fx_t *f = *state;
    open_all(f);
    td_sample_t s;
    client_t *cd = f->c[partner_index("departement")];

    td_sample_orientation(&s, "ori-1"); /* referent France Travail, CAF household */
    publish(cd, &s.env);
    expect_recipients(f, "ori-1", (const char *const[]){"pole_emploi", "caf", NULL});

    td_sample_sanction(&s, "san-msa-1", PTIBUS__V1__PAYER__PAYER_MSA);
    publish(cd, &s.env);
    expect_recipients(f, "san-msa-1", (const char *const[]){"pole_emploi", "msa", NULL});

    td_sample_sanction(&s, "san-prop-1", PTIBUS__V1__PAYER__PAYER_CAF);
    s.sanction.phase = PTIBUS__V1__SANCTION_PHASE__SANCTION_PHASE_PROPOSAL;
    publish(f->c[partner_index("pole_emploi")], &s.env);
    expect_recipients(f, "san-prop-1", (const char *const[]){"departement", NULL});

    td_sample_referral(&s, "ref-1", "ml_nord");
    publish(cd, &s.env);
    expect_recipients(f, "ref-1", (const char *const[]){"ml_nord", NULL});

    td_sample_referral_status(&s, "ref-1-accepted", "ref-1");
    publish(f->c[partner_index("ml_nord")], &s.env);
    expect_recipients(f, "ref-1-accepted", (const char *const[]){"departement", NULL});

    td_sample_training_offer(&s, "offer-1");
    publish(f->c[partner_index("region")], &s.env);
    expect_recipients(
        f, "offer-1",
        (const char *const[]){"departement", "pole_emploi", "caf", "msa", "ml_nord", NULL});

    td_sample_beneficiary_event(&s, "bev-1");
    publish(f->c[partner_index("caf")], &s.env);
    expect_recipients(f, "bev-1", (const char *const[]){"departement", NULL});
}

static void
test_routing_refusals(void **state)
{
    fx_t *f = *state;
    client_t *cd = session(f, "departement", 0);
    td_sample_t s;
    client_result_t r;
    pt_error_t err;
    td_sample_referral(&s, "ref-x", "nobody");
    assert_int_equal(client_publish(cd, &s.env, TIMEOUT_MS, &r, &err), 0);
    assert_int_equal(r.nack_code, PTIBUS__V1__NACK_CODE__NACK_CODE_NOT_ALLOWED);
    assert_string_equal(r.field_path, "referral.targetOrg.partnerId");
    td_sample_orientation(&s, "ori-explicit");
    s.recipients[0] = "ml_nord"; /* not a recipient the routes give an orientation */
    s.env.n_recipients = 1;
    s.env.recipients = s.recipients;
    assert_int_equal(client_publish(cd, &s.env, TIMEOUT_MS, &r, &err), 0);
    assert_int_equal(r.nack_code, PTIBUS__V1__NACK_CODE__NACK_CODE_NOT_ALLOWED);
    assert_non_null(strstr(r.reason, "recipients[0]"));
    td_sample_referral_status(&s, "status-orphan", "no-such-referral");
    assert_int_equal(client_publish(cd, &s.env, TIMEOUT_MS, &r, &err), 0);
    assert_int_equal(r.nack_code, PTIBUS__V1__NACK_CODE__NACK_CODE_NOT_ALLOWED);
    assert_string_equal(r.field_path, "correlationId");
}

static void
publish_events(client_t *c, const char *prefix, int n, uint64_t *seqs)
{
    td_sample_t s;
    for (int i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof id, "%s-%04d", prefix, i);
        td_sample_beneficiary_event(&s, id);
        client_result_t r = publish(c, &s.env);
        if (seqs)
            seqs[i] = r.seq;
    }
}

/* The recipient is offline while messages pile up; it gets them all, in journal order,
 * when it comes back; and a second session resumes after what was acknowledged. */
static void
test_offline_recipient_then_in_order(void **state)
{
    fx_t *f = *state;
    client_t *caf = session(f, "caf", 0);
    enum { N = 120 };
    uint64_t seqs[N];
    publish_events(caf, "bev", N, seqs);
    seen_t *got = calloc(MAX_SEEN, sizeof *got);
    client_t *cd = session(f, "departement", 50);
    size_t n = collect(cd, 70, TIMEOUT_MS, false, got, MAX_SEEN);
    assert_int_equal(n, 50); /* credit 50: no more until acks */
    assert_int_equal(collect(cd, 1, QUIET_MS, false, got + n, 1), 0);
    pt_error_t err;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(got[i].seq, seqs[i]); /* journal order */
        assert_int_equal(got[i].attempt, 1);
        assert_string_equal(got[i].sender, "caf");
        assert_int_equal(client_deliver_ack(cd, got[i].seq, true, NULL, &err), 0);
    }
    n = collect(cd, N - 50, TIMEOUT_MS, true, got, MAX_SEEN);
    assert_int_equal(n, N - 50);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(got[i].seq, seqs[50 + i]);
    /* Everything acknowledged: a new session gets nothing again. */
    cd = session(f, "departement", 50);
    assert_int_equal(collect(cd, 1, QUIET_MS, false, got, MAX_SEEN), 0);
    free(got);
}

static void
test_credit_is_respected_and_grows(void **state)
{
    fx_t *f = *state;
    client_t *caf = session(f, "caf", 0);
    publish_events(caf, "cr", 10, NULL);
    client_t *cd = session(f, "departement", 2);
    seen_t got[16];
    assert_int_equal(collect(cd, 10, 1500, false, got, 16), 2);
    pt_error_t err;
    assert_int_equal(client_credit(cd, 3, &err), 0);
    assert_int_equal(collect(cd, 10, 1500, false, got + 2, 14), 3);
    assert_true(got[2].seq > got[1].seq);
}

static void
test_ack_timeout_redelivers_with_attempt(void **state)
{
    fx_t *f = *state;
    client_t *caf = session(f, "caf", 0);
    publish_events(caf, "to", 1, NULL);
    client_t *cd = session(f, "departement", 4);
    seen_t got[8];
    assert_int_equal(collect(cd, 1, TIMEOUT_MS, false, got, 8), 1);
    assert_int_equal(got[0].attempt, 1);
    assert_false(got[0].redelivery);
    /* No ack: after the 1 s ack timeout and a short backoff it comes again. */
    int64_t t0 = tu_now_ms();
    assert_int_equal(collect(cd, 1, TIMEOUT_MS, false, got + 1, 7), 1);
    assert_true(tu_now_ms() - t0 >= 900);
    assert_int_equal(got[1].seq, got[0].seq);
    assert_int_equal(got[1].attempt, 2);
    assert_true(got[1].redelivery);
    pt_error_t err;
    assert_int_equal(client_deliver_ack(cd, got[1].seq, true, NULL, &err), 0);
    assert_int_equal(collect(cd, 1, 2500, false, got, 8), 0);
}

/* One delivery left unacknowledged comes again after the ack timeout, on the same
 * connection or on a new one, whatever the credit: deliveries in flight on an earlier
 * connection are kept until their ack timeout (a repeated Hello never resends them at
 * once), then retried to the current connection. A retry used to count itself against
 * the window, so with a credit of 1 it never left (ptibusctl's tests worked around it). */
static void
unacked_comes_back(fx_t *f, uint32_t credit, bool reconnect)
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "ub%u%c", credit, reconnect ? 'r' : 's');
    uint64_t seq;
    publish_events(session(f, "caf", 0), prefix, 1, &seq);
    client_t *cd = session(f, "departement", credit);
    seen_t got[4];
    assert_int_equal(collect(cd, 1, TIMEOUT_MS, false, got, 4), 1);
    int64_t t0 = tu_now_ms();
    assert_int_equal(got[0].seq, seq);
    assert_int_equal(got[0].attempt, 1);
    if (reconnect)
        cd = session(f, "departement", credit); /* closes the first connection */
    /* ack timeout 1 s, backoff 100..400 ms: well within TIMEOUT_MS */
    assert_int_equal(collect(cd, 1, TIMEOUT_MS, false, got + 1, 3), 1);
    assert_true(tu_now_ms() - t0 >= 900); /* not before its ack timeout */
    assert_int_equal(got[1].seq, seq);
    assert_int_equal(got[1].attempt, 2);
    assert_true(got[1].redelivery);
    pt_error_t err;
    assert_int_equal(client_deliver_ack(cd, seq, true, NULL, &err), 0);
    assert_int_equal(collect(cd, 1, 2500, false, got, 4), 0);
}

static void
test_unacked_comes_back_credit_one(void **state)
{
    unacked_comes_back(*state, 1, false);
}

static void
test_unacked_comes_back_credit_one_reconnected(void **state)
{
    unacked_comes_back(*state, 1, true);
}

static void
test_unacked_comes_back_credit_two_reconnected(void **state)
{
    unacked_comes_back(*state, 2, true);
}

/* A new connection granting less credit than the earlier one left in flight: each of
 * those deliveries comes back after its ack timeout, one window at a time. */
static void
test_reconnect_with_less_credit_gets_all_back(void **state)
{
    fx_t *f = *state;
    uint64_t seqs[3];
    publish_events(session(f, "caf", 0), "less", 3, seqs);
    seen_t got[8];
    assert_int_equal(collect(session(f, "departement", 4), 3, TIMEOUT_MS, false, got, 8), 3);
    client_t *cd = session(f, "departement", 1);
    assert_int_equal(collect(cd, 3, 3 * TIMEOUT_MS, true, got, 8), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(got[i].attempt, 2);
        assert_true(got[i].seq == seqs[0] || got[i].seq == seqs[1] || got[i].seq == seqs[2]);
    }
    assert_int_equal(collect(cd, 1, 2500, false, got, 8), 0);
}

/* A second Hello on the same connection (issue 15: a client that answers a session Nack
 * meant for a frame sent before its reconnect Hello says Hello twice) does not send the
 * window again: every message is delivered once, attempt 1, until it is acknowledged.
 * The Hello goes raw, so that the frames it might cause are all counted here. */
static void
test_second_hello_does_not_resend_the_window(void **state)
{
    fx_t *f = *state;
    enum { N = 5, W = 3 };
    uint64_t seqs[N];
    publish_events(session(f, "caf", 0), "twice", N, seqs);
    client_t *cd = session(f, "departement", W);
    seen_t got[16];
    assert_int_equal(collect(cd, W, TIMEOUT_MS, false, got, 16), W);
    Ptibus__V1__Frame fr = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Hello h = PTIBUS__V1__HELLO__INIT;
    h.protocol_version = 1;
    h.client_name = "departement";
    h.software_version = "test";
    h.initial_credit = W;
    fr.kind_case = PTIBUS__V1__FRAME__KIND_HELLO;
    fr.hello = &h;
    pt_error_t err;
    assert_int_equal(client_send(cd, &fr, &err), 0);
    assert_int_equal(collect(cd, 16, 1500, false, got + W, 16 - W), 0); /* not the window again */
    for (int i = 0; i < W; i++)
        assert_int_equal(client_deliver_ack(cd, got[i].seq, true, NULL, &err), 0);
    assert_int_equal(collect(cd, 16, 1500, true, got + W, 16 - W), N - W);
    for (int i = 0; i < N; i++) {
        assert_int_equal(got[i].seq, seqs[i]); /* each once, in order */
        assert_int_equal(got[i].attempt, 1);
    }
}

/* A poison message: never acknowledged (max_attempts 3) or refused as CANNOT_PROCESS;
 * either way it is dead-lettered and the messages behind it keep flowing. */
static void
test_poison_message_is_dead_lettered(void **state)
{
    fx_t *f = *state;
    client_t *caf = session(f, "caf", 0);
    uint64_t seqs[3];
    publish_events(caf, "poison", 3, seqs);
    client_t *cd = session(f, "departement", 8);
    seen_t got[64];
    pt_error_t err;
    size_t acked_others = 0;
    int64_t deadline = tu_now_ms() + 10000;
    uint32_t last_attempt = 0;
    while (tu_now_ms() < deadline) {
        size_t n = collect(cd, 1, 1000, false, got, 1);
        if (n == 0)
            continue;
        if (got[0].seq == seqs[0]) {
            last_attempt = got[0].attempt; /* never acknowledged */
        } else if (got[0].seq == seqs[1]) {
            assert_int_equal(client_deliver_ack(cd, got[0].seq, false, "schema v3 unknown", &err),
                             0);
        } else {
            assert_int_equal(client_deliver_ack(cd, got[0].seq, true, NULL, &err), 0);
            acked_others++;
        }
        if (last_attempt == 3 && acked_others == 1)
            break;
    }
    assert_int_equal(last_attempt, 3);
    assert_int_equal(acked_others, 1); /* the third message went through meanwhile */
    assert_int_equal(collect(cd, 1, 2500, false, got, 1), 0); /* no 4th attempt */
    assert_int_equal(td_broker_stop(&f->net), 0);

    char hmac_path[4300];
    uint8_t hmac[32];
    snprintf(hmac_path, sizeof hmac_path, "%s/keys/person-index.hmac", f->net.dir);
    assert_int_equal(keys_read(hmac_path, hmac, 32, true, &err), 0);
    journal_options_t o = {.dir = f->net.journal_dir, .hmac_key = hmac};
    journal_t *j;
    assert_int_equal(journal_open(&o, &j, &err), 0);
    journal_dead_entry_t *dead;
    size_t nd;
    assert_int_equal(journal_dead_list(j, "departement", 10, &dead, &nd, &err), 0);
    assert_int_equal(nd, 2);
    assert_int_equal(dead[0].seq, seqs[0]);
    assert_int_equal(dead[1].seq, seqs[1]);
    free(dead);
    uint64_t depth;
    int64_t oldest;
    assert_int_equal(journal_queue_stats(j, "departement", &depth, &oldest, &err), 0);
    assert_int_equal(depth, 0);
    uint64_t *recs;
    size_t nr;
    assert_int_equal(journal_find_message(j, "poison-0001", &recs, &nr, &err), 0);
    journal_view_t v;
    uint8_t *buf = NULL;
    size_t cap = 0;
    bool found = false;
    for (size_t i = 0; i < nr; i++) {
        assert_int_equal(journal_get(j, recs[i], &v, &buf, &cap, &err), 0);
        if (v.kind == PT_REC_DEAD_LETTERED) {
            found = true;
            assert_non_null(strstr(v.reason, "schema v3 unknown"));
        }
    }
    assert_true(found);
    free(recs);
    free(buf);
    journal_close(&j);
}

/* Waits for a Receipt about message_id; returns its kind or -1. */
static int
wait_receipt(client_t *c, const char *message_id, char *recipient, size_t cap)
{
    int64_t deadline = tu_now_ms() + TIMEOUT_MS;
    pt_error_t err;
    while (tu_now_ms() < deadline) {
        Ptibus__V1__Frame *fr;
        if (client_recv(c, (int)(deadline - tu_now_ms()), &fr, &err) != 0)
            return -1;
        int kind = -1;
        if (fr->kind_case == PTIBUS__V1__FRAME__KIND_RECEIPT &&
            strcmp(fr->receipt->message_id, message_id) == 0) {
            kind = (int)fr->receipt->kind;
            snprintf(recipient, cap, "%s", fr->receipt->recipient);
        }
        codec_free((ProtobufCMessage **)&fr);
        if (kind >= 0)
            return kind;
    }
    return -1;
}

static void
test_receipts_to_the_sender(void **state)
{
    fx_t *f = *state;
    client_t *cd = session(f, "departement", 0);
    client_t *ml = session(f, "ml_nord", 4);
    td_sample_t s;
    td_sample_referral(&s, "ref-receipt", "ml_nord");
    publish(cd, &s.env);
    seen_t got[4];
    assert_int_equal(collect(ml, 1, TIMEOUT_MS, true, got, 4), 1);
    char who[40];
    assert_int_equal(wait_receipt(cd, "ref-receipt", who, sizeof who),
                     PTIBUS__V1__RECEIPT_KIND__RECEIPT_KIND_ACKNOWLEDGED);
    assert_string_equal(who, "ml_nord");
    /* Asked again later (e.g. after the sender's restart). */
    cd = session(f, "departement", 0);
    pt_error_t err;
    assert_int_equal(client_receipt_request(cd, "ref-receipt", &err), 0);
    assert_int_equal(wait_receipt(cd, "ref-receipt", who, sizeof who),
                     PTIBUS__V1__RECEIPT_KIND__RECEIPT_KIND_ACKNOWLEDGED);
    /* Another partner cannot obtain the receipts of the Département's messages. */
    client_t *caf = session(f, "caf", 0);
    assert_int_equal(client_receipt_request(caf, "ref-receipt", &err), 0);
    assert_int_equal(wait_receipt(caf, "ref-receipt", who, sizeof who), -1);
}

/* kill -9 in the middle of deliveries: after the restart the recipient gets every
 * message it had not acknowledged (the ones in flight flagged as redeliveries) and
 * none it had. */
static void
test_kill9_during_delivery_resumes(void **state)
{
    fx_t *f = *state;
    client_t *caf = session(f, "caf", 0);
    enum { N = 300 };
    uint64_t seqs[N];
    publish_events(caf, "k9d", N, seqs);
    client_t *cd = session(f, "departement", 100);
    seen_t *got = calloc(MAX_SEEN, sizeof *got);
    size_t first = collect(cd, 100, TIMEOUT_MS, false, got, MAX_SEEN);
    assert_int_equal(first, 100);
    pt_error_t err;
    for (size_t i = 0; i < 60; i++)
        assert_int_equal(client_deliver_ack(cd, got[i].seq, true, NULL, &err), 0);
    /* Let the acks be committed: the next deliveries prove the broker read them. */
    size_t more = collect(cd, 60, TIMEOUT_MS, false, got + first, MAX_SEEN - first);
    assert_int_equal(more, 60);
    /* A Deliver leaves first and its DELIVERED record is committed right after (an
     * attempt is journaled only once its frame has left): give that commit time, so
     * that the broker knows these 160 are in flight when it dies. */
    usleep(COMMIT_MS * 1000);
    td_broker_kill9(&f->net);
    assert_int_equal(td_broker_start(&f->net), 0);

    cd = session(f, "departement", 1000);
    size_t n = collect(cd, N, TIMEOUT_MS, true, got, MAX_SEEN);
    assert_int_equal(n, N - 60);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(got[i].seq, seqs[60 + i]); /* nothing lost, none acked again */
        bool was_in_flight = i < 100;               /* seqs[60..159] had been delivered */
        assert_int_equal(got[i].redelivery, was_in_flight);
        assert_int_equal(got[i].attempt, was_in_flight ? 2 : 1);
    }
    assert_int_equal(collect(cd, 1, QUIET_MS, false, got, 1), 0);
    free(got);
}

/* The broker is killed and restarted under a connected recipient: the client library
 * notices (its heartbeat is answered "no session"), says Hello again, and the
 * deliveries resume without the application doing anything. */
static void
test_session_resumes_after_broker_restart(void **state)
{
    fx_t *f = *state;
    client_t *cd = session(f, "departement", 16);
    client_t *caf = session(f, "caf", 0);
    publish_events(caf, "rs-a", 3, NULL);
    seen_t got[16];
    assert_int_equal(collect(cd, 3, TIMEOUT_MS, false, got, 16), 3);
    usleep(COMMIT_MS * 1000); /* the DELIVERED records are committed after the frames left */
    pt_error_t err;
    for (int i = 0; i < 3; i++)
        assert_int_equal(client_deliver_ack(cd, got[i].seq, true, NULL, &err), 0);
    td_broker_kill9(&f->net);
    assert_int_equal(td_broker_start(&f->net), 0);
    caf = session(f, "caf", 0);
    publish_events(caf, "rs-b", 4, NULL);
    /* Acknowledgements still in flight at the kill are lost with it: those messages come
     * again, flagged as redeliveries (at least once). */
    size_t n = 0, fresh = 0;
    while (fresh < 4 && n < 16) {
        size_t k = collect(cd, 1, 3 * TIMEOUT_MS, true, got + n, 16 - n);
        if (k == 0)
            break;
        fresh += strncmp(got[n].message_id, "rs-b-", 5) == 0;
        n += k;
    }
    fresh = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(got[i].message_id, "rs-a-", 5) == 0) {
            assert_true(got[i].redelivery);
            continue;
        }
        char want[32];
        snprintf(want, sizeof want, "rs-b-%04zu", fresh++);
        assert_string_equal(got[i].message_id, want);
    }
    assert_int_equal(fresh, 4);
}

/* Journal records of `kind` for `partner` about message ref_seq (broker stopped). */
static int
count_trail(fx_t *f, journal_kind_t kind, const char *partner, uint64_t ref_seq)
{
    journal_t *j;
    journal_options_t o = {.dir = f->net.journal_dir, .read_only = true};
    pt_error_t err;
    assert_int_equal(journal_open(&o, &j, &err), 0);
    int n = 0;
    journal_view_t v;
    uint8_t *buf = NULL;
    size_t cap = 0;
    for (uint64_t seq = 1; seq <= journal_last_seq(j); seq++) {
        assert_int_equal(journal_get(j, seq, &v, &buf, &cap, &err), 0);
        n += v.kind == kind && v.ref_seq == ref_seq && strcmp(v.partner, partner) == 0;
    }
    free(buf);
    journal_close(&j);
    return n;
}

/* A recipient says Hello and closes its socket; a message for it is published: the
 * Deliver cannot leave, so no attempt is journaled and the partner is offline. When it
 * comes back its first Deliver is attempt 1, not a redelivery, and the journal holds one
 * DELIVERED record (issue 9: it used to say attempt 2 after a phantom DELIVERED). */
static void
test_closed_connection_is_no_attempt(void **state)
{
    fx_t *f = *state;
    session(f, "departement", 8);
    client_close(&f->c[partner_index("departement")]);
    usleep(200 * 1000); /* the broker's ROUTER has seen the connection go */
    uint64_t seq;
    publish_events(session(f, "caf", 0), "gone", 1, &seq);
    usleep(300 * 1000); /* the broker tried to deliver it */
    seen_t got[4];
    assert_int_equal(collect(session(f, "departement", 8), 1, TIMEOUT_MS, true, got, 4), 1);
    assert_int_equal(got[0].seq, seq);
    assert_int_equal(got[0].attempt, 1);
    assert_false(got[0].redelivery);
    usleep(COMMIT_MS * 1000); /* the acknowledgement is committed */
    assert_int_equal(td_broker_stop(&f->net), 0);
    assert_int_equal(count_trail(f, PT_REC_DELIVERED, "departement", seq), 1);
    assert_int_equal(count_trail(f, PT_REC_ACKNOWLEDGED, "departement", seq), 1);
}

/* max_attempts 1 and a recipient that disconnected: nothing is dead-lettered before it
 * was sent, however long the recipient stays away. */
static void
test_max_attempts_one_waits_for_a_send(void **state)
{
    fx_t *f = *state;
    session(f, "departement", 8);
    client_close(&f->c[partner_index("departement")]);
    usleep(200 * 1000);
    uint64_t seq;
    publish_events(session(f, "caf", 0), "once", 1, &seq);
    usleep(2500 * 1000); /* more than the ack timeout (1 s) plus the retry backoff */
    seen_t got[4];
    assert_int_equal(collect(session(f, "departement", 8), 1, TIMEOUT_MS, true, got, 4), 1);
    assert_int_equal(got[0].attempt, 1);
    usleep(COMMIT_MS * 1000);
    assert_int_equal(td_broker_stop(&f->net), 0);
    assert_int_equal(count_trail(f, PT_REC_DEAD_LETTERED, "departement", seq), 0);
}

/* max_attempts holds across restarts: a poison message whose recipient never
 * acknowledges (a crash-looping adapter) is dead-lettered once its attempts, kept in the
 * queue entry, reach the limit, instead of being sent again after every restart. */
static void
test_max_attempts_survive_a_restart(void **state)
{
    fx_t *f = *state;
    uint64_t seq;
    publish_events(session(f, "caf", 0), "poison", 1, &seq);
    seen_t got[4];
    assert_int_equal(collect(session(f, "departement", 8), 1, TIMEOUT_MS, false, got, 4), 1);
    assert_int_equal(got[0].attempt, 1);
    usleep(COMMIT_MS * 1000);
    td_broker_kill9(&f->net);
    assert_int_equal(td_broker_start(&f->net), 0);
    assert_int_equal(collect(session(f, "departement", 8), 1, QUIET_MS * 3, false, got, 4), 0);
    usleep(COMMIT_MS * 1000);
    assert_int_equal(td_broker_stop(&f->net), 0);
    assert_int_equal(count_trail(f, PT_REC_DELIVERED, "departement", seq), 1);
    assert_int_equal(count_trail(f, PT_REC_DEAD_LETTERED, "departement", seq), 1);
}

static int
setup_one_attempt(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    td_net_options_t o = {.max_attempts = "1"};
    td_net_init(&f->net, "delivery", &o);
    if (td_broker_start(&f->net) != 0)
        return -1;
    *state = f;
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_closed_connection_is_no_attempt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_attempts_one_waits_for_a_send, setup_one_attempt,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_max_attempts_survive_a_restart, setup_one_attempt,
                                        teardown),
        /* Slow acks: under load a 1 s ack timeout can redeliver a message to a
         * recipient while the next message's recipients are being checked. */
        cmocka_unit_test_setup_teardown(test_each_family_reaches_its_recipients_only,
                                        setup_slow_acks, teardown),
        cmocka_unit_test_setup_teardown(test_routing_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offline_recipient_then_in_order, setup_slow_acks,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_credit_is_respected_and_grows, setup_slow_acks,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ack_timeout_redelivers_with_attempt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unacked_comes_back_credit_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unacked_comes_back_credit_one_reconnected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unacked_comes_back_credit_two_reconnected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_with_less_credit_gets_all_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_second_hello_does_not_resend_the_window,
                                        setup_slow_acks, teardown),
        cmocka_unit_test_setup_teardown(test_poison_message_is_dead_lettered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receipts_to_the_sender, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_during_delivery_resumes, setup_slow_acks,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_session_resumes_after_broker_restart, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
