/* Soak (issue 15): a publisher (the CAF, 64 in flight, PT_SOAK_RATE messages a second,
 * default 2000) and a consumer (the Département, acking each delivery) run steadily
 * against a real ptibusd for PT_SOAK_SECONDS (default 60; `tests/run.sh --soak` runs an
 * hour). Every 10 s it prints the messages
 * published and delivered, the broker's anonymous memory, its open file descriptors
 * and the p99 of publish -> ack. At the end: everything published was delivered, and
 * the memory and the descriptors stayed flat (the last interval within a margin of the
 * first). Latency is printed, never asserted (a shared machine's timings are not a
 * test's business: bench/ measures). */
#include <dirent.h>
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

#define WINDOW 64
#define INTERVAL_MS 10000
#define LAT_MAX 200000
#define RSS_MARGIN_KIB (16 * 1024) /* growth allowed from the first interval to the last */
#define FD_MARGIN 4

static int
env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v != NULL && *v ? atoi(v) : dflt;
}

static int
fd_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    int n = 0;
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    if (d != NULL)
        closedir(d);
    return n;
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct soak {
    client_t *pub, *sub;
    uint64_t sent, acked, delivered;
    int64_t sent_at[WINDOW * 4]; /* by message number modulo the ring */
    int64_t lat[LAT_MAX];
    size_t n_lat;
} soak_t;

static void
publish_some(soak_t *s, uint64_t allowed)
{
    pt_error_t err;
    while (s->sent - s->acked < WINDOW && s->sent < allowed) {
        td_sample_t smp;
        char id[40];
        snprintf(id, sizeof id, "soak-%09llu", (unsigned long long)s->sent);
        td_sample_beneficiary_event(&smp, id);
        assert_int_equal(client_publish_async(s->pub, &smp.env, &err), 0);
        s->sent_at[s->sent % (WINDOW * 4)] = tu_now_ms();
        s->sent++;
    }
}

static void
read_acks(soak_t *s, int timeout_ms)
{
    Ptibus__V1__Frame *f = NULL;
    pt_error_t err;
    while (client_recv(s->pub, timeout_ms, &f, &err) == 0 && f != NULL) {
        client_result_t r;
        const char *id = NULL;
        if (client_result_from_frame(f, &r, &id)) {
            assert_int_equal(r.nack_code, 0);
            uint64_t k = strtoull(id + 5, NULL, 10);
            if (s->n_lat < LAT_MAX)
                s->lat[s->n_lat++] = tu_now_ms() - s->sent_at[k % (WINDOW * 4)];
            s->acked++;
        }
        codec_free((ProtobufCMessage **)&f);
        timeout_ms = 0;
    }
}

static void
consume(soak_t *s)
{
    Ptibus__V1__Frame *f = NULL;
    pt_error_t err;
    while (client_recv(s->sub, 0, &f, &err) == 0 && f != NULL) {
        if (f->kind_case == PTIBUS__V1__FRAME__KIND_DELIVER) {
            assert_int_equal(client_deliver_ack(s->sub, f->deliver->seq, true, NULL, &err), 0);
            s->delivered++;
        }
        codec_free((ProtobufCMessage **)&f);
    }
}

static int64_t
p99_and_reset(soak_t *s)
{
    if (s->n_lat == 0)
        return 0;
    qsort(s->lat, s->n_lat, sizeof *s->lat, cmp_i64);
    int64_t p = s->lat[(size_t)((double)(s->n_lat - 1) * 0.99)];
    s->n_lat = 0;
    return p;
}

static void
test_soak_memory_and_descriptors_stay_flat(void **state)
{
    (void)state;
    int secs = env_int("PT_SOAK_SECONDS", 60), rate = env_int("PT_SOAK_RATE", 2000);
    td_net_t n;
    td_net_options_t o = {.ack_timeout = "30s",
                          .journal_max_size = "8GiB",
                          .extra_limits = "  partner_rate: 0\n  partner_bytes_per_hour: 0\n"};
    td_net_init(&n, "soak", &o);
    assert_int_equal(td_broker_start(&n), 0);
    static soak_t s;
    assert_int_equal(td_client_session(&n, "caf", 0, &s.pub), 0);
    assert_int_equal(td_client_session(&n, "departement", 256, &s.sub), 0);
    int64_t start = tu_now_ms(), end = start + (int64_t)secs * 1000, next = start + INTERVAL_MS;
    long rss_first = -1, rss = 0;
    int fds_first = -1, fds = 0;
    while (tu_now_ms() < end) {
        publish_some(&s, (uint64_t)((tu_now_ms() - start) * rate / 1000)); /* steady pace */
        read_acks(&s, 5);
        consume(&s);
        if (tu_now_ms() >= next) {
            rss = tu_rss_anon_kib((int)n.pid);
            fds = fd_count(n.pid);
            if (rss_first < 0)
                rss_first = rss, fds_first = fds;
            print_message("t=%3llds published %llu delivered %llu rss_anon %ld KiB fds %d "
                          "p99 publish->ack %lld ms\n",
                          (long long)(secs - (end - tu_now_ms()) / 1000),
                          (unsigned long long)s.acked, (unsigned long long)s.delivered, rss, fds,
                          (long long)p99_and_reset(&s));
            next += INTERVAL_MS;
        }
    }
    for (int64_t t = tu_now_ms() + 10000;
         (s.acked < s.sent || s.delivered < s.acked) && tu_now_ms() < t;) {
        read_acks(&s, 5);
        consume(&s);
    }
    client_close(&s.pub);
    client_close(&s.sub);
    td_net_fini(&n);
    assert_int_equal(s.acked, s.sent);
    assert_int_equal(s.delivered, s.acked);
    assert_true(rss_first > 0);
    if (!TU_ASAN) /* under ASan the memory is the sanitizer's (its quarantine fills up) */
        assert_true(rss <= rss_first + RSS_MARGIN_KIB);
    assert_true(fds <= fds_first + FD_MARGIN);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_soak_memory_and_descriptors_stay_flat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
