/* Partner outage and slow consumer, against a real ptibusd.
 * - Outage: the Département is offline while the CAF publishes PT_OUTAGE_MESSAGES
 *   beneficiary events (default 100 000) for it; the broker's anonymous memory stays
 *   bounded meanwhile (the queues live in LMDB); then the Département comes back and
 *   receives every one, in journal order, each once.
 * - Slow consumer: the Région publishes training offers to every subscriber; the
 *   Département grants credit 1 and never acknowledges, France Travail acknowledges at
 *   full speed: France Travail receives all of them (no head-of-line blocking) while the
 *   Département never has more than its one delivery. Counts, not timings. */
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
#include "samples.h"
#include "testutil.h"

#define WINDOW 256
#define WAIT_MS 120000
#define RSS_BOUND_KIB (64 * 1024) /* the broker's memory budget (docs/performance.md) */

typedef struct fx {
    td_net_t net;
    client_t *pub, *sub, *fast;
} fx_t;

static int
env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v != NULL && *v ? atoi(v) : dflt;
}

static int
setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    /* no partner quota: the outage's backlog is published as fast as the broker takes it */
    td_net_options_t o = {.ack_timeout = "30s",
                          .journal_max_size = "4GiB",
                          .extra_limits = "  partner_rate: 0\n  partner_bytes_per_hour: 0\n"};
    td_net_init(&f->net, "outage", &o);
    assert_int_equal(td_broker_start(&f->net), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *f = *state;
    client_close(&f->pub);
    client_close(&f->sub);
    client_close(&f->fast);
    td_net_fini(&f->net);
    free(f);
    return 0;
}

/* Reads one answer to a publish: 1 for an ack, 0 for another frame (or none yet). */
static int
read_ack(client_t *c, int timeout_ms)
{
    Ptibus__V1__Frame *fr = NULL;
    pt_error_t err;
    if (client_recv(c, timeout_ms, &fr, &err) != 0 || fr == NULL)
        return 0;
    client_result_t r;
    const char *id = NULL;
    int ok = client_result_from_frame(fr, &r, &id) ? 1 : 0;
    if (ok && r.nack_code != 0)
        fail_msg("publish refused: %s", r.reason);
    codec_free((ProtobufCMessage **)&fr);
    return ok;
}

/* Publishes n messages built by make, WINDOW in flight; returns when all are acked. */
static void
publish_windowed(client_t *c, size_t n, void (*make)(td_sample_t *, const char *), const char *pfx)
{
    size_t sent = 0, acked = 0;
    pt_error_t err;
    int64_t end = tu_now_ms() + WAIT_MS;
    while (acked < n) {
        while (sent < n && sent - acked < WINDOW) {
            td_sample_t s;
            char id[40];
            snprintf(id, sizeof id, "%s-%07zu", pfx, sent);
            make(&s, id);
            assert_int_equal(client_publish_async(c, &s.env, &err), 0);
            sent++;
        }
        acked += (size_t)read_ack(c, 1000);
        if (tu_now_ms() > end)
            fail_msg("%zu of %zu publishes acknowledged in time", acked, n);
    }
}

static void
make_event(td_sample_t *s, const char *id)
{
    td_sample_beneficiary_event(s, id);
}

static void
make_offer(td_sample_t *s, const char *id)
{
    td_sample_training_offer(s, id);
}

/* Receives deliveries; acks them when ack; returns the count (seqs checked ascending,
 * each once, when strict). */
static size_t
consume(client_t *c, size_t want, bool ack, bool strict, int quiet_ms)
{
    size_t got = 0;
    uint64_t last = 0;
    pt_error_t err;
    int64_t end = tu_now_ms() + WAIT_MS;
    while (got < want && tu_now_ms() < end) {
        Ptibus__V1__Frame *fr = NULL;
        if (client_recv(c, quiet_ms, &fr, &err) != 0 || fr == NULL) {
            if (quiet_ms < 1000)
                break; /* quiet: nothing more comes */
            continue;
        }
        if (fr->kind_case == PTIBUS__V1__FRAME__KIND_DELIVER) {
            uint64_t seq = fr->deliver->seq;
            if (strict && seq <= last)
                fail_msg("delivery %llu after %llu: out of order or twice", (unsigned long long)seq,
                         (unsigned long long)last);
            last = seq;
            got++;
            if (ack)
                assert_int_equal(client_deliver_ack(c, seq, true, NULL, &err), 0);
        }
        codec_free((ProtobufCMessage **)&fr);
    }
    return got;
}

static void
test_outage_queues_in_lmdb_then_all_in_order(void **state)
{
    fx_t *f = *state;
    size_t n = (size_t)env_int("PT_OUTAGE_MESSAGES", 100000);
    long base = tu_rss_anon_kib((int)f->net.pid);
    assert_int_equal(td_client_session(&f->net, "caf", 0, &f->pub), 0);
    publish_windowed(f->pub, n, make_event, "out");
    long queued = tu_rss_anon_kib((int)f->net.pid);
    assert_int_equal(td_client_session(&f->net, "departement", WINDOW, &f->sub), 0);
    size_t got = consume(f->sub, n, true, true, 5000);
    long after = tu_rss_anon_kib((int)f->net.pid);
    print_message("messages %zu, delivered %zu; broker RssAnon %ld KiB at start, %ld with %zu "
                  "queued, %ld after delivery (bound %d)\n",
                  n, got, base, queued, n, after, RSS_BOUND_KIB);
    assert_int_equal(got, n);
    if (!TU_ASAN) { /* under ASan the memory is the sanitizer's */
        assert_true(queued <= RSS_BOUND_KIB);
        assert_true(after <= RSS_BOUND_KIB);
    } else {
        print_message("built with AddressSanitizer: the memory bound is not checked\n");
    }
    /* all acknowledged: nothing more comes */
    assert_int_equal(consume(f->sub, 1, true, false, 500), 0);
}

static void
test_slow_consumer_does_not_hold_back_the_others(void **state)
{
    fx_t *f = *state;
    size_t n = (size_t)env_int("PT_SLOW_MESSAGES", 5000);
    assert_int_equal(td_client_session(&f->net, "departement", 1, &f->sub), 0);
    assert_int_equal(td_client_session(&f->net, "pole_emploi", WINDOW, &f->fast), 0);
    assert_int_equal(td_client_session(&f->net, "region", 0, &f->pub), 0);
    publish_windowed(f->pub, n, make_offer, "slow");
    size_t fast = consume(f->fast, n, true, true, 5000);
    size_t slow = consume(f->sub, n, false, false, 300);
    print_message("offers %zu: the fast consumer received %zu, the one with credit 1 and no "
                  "acks %zu\n",
                  n, fast, slow);
    assert_int_equal(fast, n);
    assert_true(slow <= 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_outage_queues_in_lmdb_then_all_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_slow_consumer_does_not_hold_back_the_others, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
