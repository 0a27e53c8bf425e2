/* driver: scenario loops, pacing, latency percentiles and the JSON result line. */
#include "driver.h"

#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DRAIN_NS 10000000000ull /* outstanding confirmations are awaited this long at most */
#define ACK_BATCH 512

typedef struct pub_state {
    const bench_ops_t *ops;
    const bench_opts_t *o;
    unsigned idx;
    unsigned window;
    _Atomic uint64_t *sent; /* send time (ns) by id, shared with the e2e consumer */
    uint64_t *lat;          /* publish -> confirmation latencies (ns) */
    uint64_t done, first_ns, last_ns;
    int rc;
} pub_state_t;

uint64_t
bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void
bench_payload(uint8_t *buf, uint64_t id)
{
    char head[BENCH_ID_DIGITS + 1];
    snprintf(head, sizeof head, "%0*" PRIu64, BENCH_ID_DIGITS, id);
    memcpy(buf, head, BENCH_ID_DIGITS);
    for (size_t i = BENCH_ID_DIGITS; i < BENCH_PAYLOAD; i++)
        buf[i] = (uint8_t)('a' + i % 26);
}

uint64_t
bench_payload_id(const void *buf, size_t len)
{
    const char *p = buf;
    uint64_t id = 0;
    if (len < BENCH_ID_DIGITS)
        return UINT64_MAX;
    for (size_t i = 0; i < BENCH_ID_DIGITS; i++) {
        if (p[i] < '0' || p[i] > '9')
            return UINT64_MAX;
        id = id * 10 + (uint64_t)(p[i] - '0');
    }
    return id;
}

static void
sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
                          .tv_nsec = (long)(ns % 1000000000ull)};
    nanosleep(&ts, NULL);
}

/* Sends what the window and the pacing allow now; returns -1 on a send failure. */
static int
pub_send_due(pub_state_t *s, void *conn, uint64_t *next, uint64_t *outstanding, uint64_t start)
{
    const bench_opts_t *o = s->o;
    uint64_t base = (uint64_t)s->idx * o->count;
    while (*outstanding < s->window && *next < o->count) {
        uint64_t now = bench_now_ns();
        uint64_t due = o->rate > 0 ? start + (uint64_t)((double)*next * 1e9 / o->rate) : now;
        if (due > now)
            break;
        /* Under fixed offered load the latency counts from the intended send time, so
         * that a stalled server is not hidden by a stalled sender. */
        atomic_store_explicit(&s->sent[base + *next], o->rate > 0 ? due : now,
                              memory_order_relaxed);
        if (s->ops->publish(conn, base + *next) < 0)
            return -1;
        (*next)++;
        (*outstanding)++;
    }
    return 0;
}

static int
pub_collect(pub_state_t *s, void *conn, int timeout_ms, uint64_t *outstanding)
{
    uint64_t ids[ACK_BATCH];
    int n = s->ops->acks(conn, timeout_ms, ids, ACK_BATCH);
    if (n < 0)
        return -1;
    uint64_t now = bench_now_ns();
    uint64_t lo = (uint64_t)s->idx * s->o->count, hi = lo + s->o->count;
    for (int i = 0; i < n; i++) {
        if (ids[i] < lo || ids[i] >= hi || *outstanding == 0) {
            fprintf(stderr, "bench: unexpected confirmation of id %" PRIu64 "\n", ids[i]);
            return -1;
        }
        uint64_t t = atomic_load_explicit(&s->sent[ids[i]], memory_order_relaxed);
        s->lat[s->done++] = now > t ? now - t : 0;
        (*outstanding)--;
        s->last_ns = now;
    }
    return n;
}

/* Waits for the next confirmation, or the next send time under paced load (sleeping
 * in short steps so that a sender never spins on one of the two cores). */
static int
pub_wait(pub_state_t *s, void *conn, uint64_t next, uint64_t outstanding, uint64_t start)
{
    const bench_opts_t *o = s->o;
    if (o->rate <= 0 || next >= o->count)
        return pub_collect(s, conn, 100, &outstanding) < 0 ? -1 : 0;
    int n = pub_collect(s, conn, 0, &outstanding);
    if (n == 0) {
        uint64_t due = start + (uint64_t)((double)next * 1e9 / o->rate), now = bench_now_ns();
        if (due > now)
            sleep_ns(due - now < 50000 ? due - now : 50000);
    }
    return n < 0 ? -1 : 0;
}

static void *
pub_thread(void *arg)
{
    pub_state_t *s = arg;
    void *conn = NULL;
    s->rc = -1;
    if (s->ops->pub_open(s->o, s->idx, &conn) < 0)
        return NULL;
    uint64_t next = 0, outstanding = 0, start = bench_now_ns();
    uint64_t deadline = start + (uint64_t)(s->o->seconds * 1e9);
    s->first_ns = start;
    while (s->done < s->o->count && bench_now_ns() < deadline) {
        if (pub_send_due(s, conn, &next, &outstanding, start) < 0)
            goto out;
        uint64_t before = s->done + outstanding;
        int rc = pub_wait(s, conn, next, outstanding, start);
        if (rc < 0)
            goto out;
        outstanding = before - s->done;
    }
    uint64_t drain_end = bench_now_ns() + DRAIN_NS;
    while (outstanding > 0 && bench_now_ns() < drain_end)
        if (pub_collect(s, conn, 100, &outstanding) < 0)
            goto out;
    s->rc = outstanding == 0 ? 0 : -1;
    if (outstanding)
        fprintf(stderr, "bench: %" PRIu64 " messages never confirmed\n", outstanding);
out:
    s->ops->pub_close(conn);
    return NULL;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static double
pct_us(const uint64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0;
}

static void
print_result(const bench_opts_t *o, const char *system, uint64_t msgs, double secs, uint64_t *lat,
             size_t n, const char *lat_kind)
{
    qsort(lat, n, sizeof *lat, cmp_u64);
    printf("{\"scenario\":\"%s\",\"system\":\"%s\",\"msgs\":%" PRIu64 ",\"seconds\":%.3f,"
           "\"rate\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"latency\":\"%s\","
           "\"threads\":%u,\"window\":%u,\"offered\":%.0f}\n",
           o->scenario, system, msgs, secs, secs > 0 ? (double)msgs / secs : 0,
           pct_us(lat, n, 0.50), pct_us(lat, n, 0.99), pct_us(lat, n, 0.999), lat_kind, o->threads,
           o->window, o->rate);
    fflush(stdout);
}

static int
alloc_states(const bench_opts_t *o, const bench_ops_t *ops, pub_state_t **st,
             _Atomic uint64_t **sent)
{
    *sent = calloc((size_t)o->threads * o->count, sizeof **sent);
    *st = calloc(o->threads, sizeof **st);
    if (*sent == NULL || *st == NULL)
        return -1;
    for (unsigned i = 0; i < o->threads; i++) {
        (*st)[i] = (pub_state_t){.ops = ops, .o = o, .idx = i, .window = o->window, .sent = *sent};
        (*st)[i].lat = malloc(o->count * sizeof(uint64_t));
        if ((*st)[i].lat == NULL)
            return -1;
    }
    return 0;
}

static void
free_states(const bench_opts_t *o, pub_state_t *st, _Atomic uint64_t *sent)
{
    for (unsigned i = 0; st && i < o->threads; i++)
        free(st[i].lat);
    free(st);
    free((void *)sent);
}

/* Publishers only (sync, window, multi, load): throughput over the slowest one. */
static int
run_publishers(const bench_ops_t *ops, const bench_opts_t *o)
{
    pub_state_t *st = NULL;
    _Atomic uint64_t *sent = NULL;
    pthread_t th[64];
    int rc = 1;
    if (o->threads > 64 || alloc_states(o, ops, &st, &sent) < 0)
        goto out;
    for (unsigned i = 0; i < o->threads; i++)
        pthread_create(&th[i], NULL, pub_thread, &st[i]);
    for (unsigned i = 0; i < o->threads; i++)
        pthread_join(th[i], NULL);
    uint64_t total = 0, first = UINT64_MAX, last = 0;
    size_t n = 0;
    for (unsigned i = 0; i < o->threads; i++) {
        if (st[i].rc != 0)
            goto out;
        total += st[i].done;
        first = st[i].first_ns < first ? st[i].first_ns : first;
        last = st[i].last_ns > last ? st[i].last_ns : last;
    }
    uint64_t *all = malloc((total ? total : 1) * sizeof *all);
    if (all == NULL)
        goto out;
    for (unsigned i = 0; i < o->threads; i++) {
        memcpy(all + n, st[i].lat, st[i].done * sizeof *all);
        n += st[i].done;
    }
    print_result(o, o->label ? o->label : ops->system, total, (double)(last - first) / 1e9, all, n,
                 "publish_to_ack");
    free(all);
    rc = total > 0 ? 0 : 1;
out:
    free_states(o, st, sent);
    return rc;
}

typedef struct sub_state {
    const bench_ops_t *ops;
    const bench_opts_t *o;
    void *conn;
    _Atomic uint64_t *sent;
    uint64_t *lat;
    uint64_t got, first_ns, last_ns;
    _Atomic int pub_done;
    uint64_t pub_total;
} sub_state_t;

/* Consumes until every published message came (or a bounded wait after the
 * publisher stopped). */
static int
consume_all(sub_state_t *c)
{
    uint64_t ids[ACK_BATCH], quiet_end = 0;
    uint64_t hard_end = bench_now_ns() + (uint64_t)(c->o->seconds * 1e9) + DRAIN_NS;
    while (bench_now_ns() < hard_end) {
        int done = atomic_load(&c->pub_done);
        if (done && c->got >= c->pub_total)
            return 0;
        if (done && quiet_end == 0)
            quiet_end = bench_now_ns() + DRAIN_NS;
        if (quiet_end && bench_now_ns() > quiet_end)
            break;
        int n = c->ops->deliveries(c->conn, 100, ids, ACK_BATCH);
        if (n < 0)
            return -1;
        uint64_t now = bench_now_ns();
        for (int i = 0; i < n; i++) {
            if (ids[i] >= c->o->count)
                continue; /* an older run's message still queued: not ours */
            uint64_t t = atomic_load_explicit(&c->sent[ids[i]], memory_order_relaxed);
            if (t == 0)
                continue;
            c->lat[c->got++ % c->o->count] = now - t;
            c->last_ns = now;
        }
    }
    fprintf(stderr, "bench: e2e: %" PRIu64 " of %" PRIu64 " delivered\n", c->got, c->pub_total);
    return -1;
}

static void *
e2e_pub_thread(void *arg)
{
    void **a = arg;
    pub_state_t *s = a[0];
    sub_state_t *c = a[1];
    pub_thread(s);
    c->pub_total = s->done;
    atomic_store(&c->pub_done, 1);
    return NULL;
}

static int
run_e2e(const bench_ops_t *ops, const bench_opts_t *o)
{
    pub_state_t *st = NULL;
    _Atomic uint64_t *sent = NULL;
    sub_state_t c = {.ops = ops, .o = o};
    int rc = 1;
    if (ops->sub_open == NULL || alloc_states(o, ops, &st, &sent) < 0)
        goto out;
    c.sent = sent;
    c.lat = malloc(o->count * sizeof *c.lat);
    if (c.lat == NULL || ops->sub_open(o, &c.conn) < 0)
        goto out;
    pthread_t th;
    void *args[2] = {&st[0], &c};
    uint64_t start = bench_now_ns();
    pthread_create(&th, NULL, e2e_pub_thread, args);
    int crc = consume_all(&c);
    pthread_join(th, NULL);
    ops->sub_close(c.conn);
    if (crc == 0 && st[0].rc == 0 && c.got > 0) {
        size_t n = c.got < o->count ? c.got : o->count;
        print_result(o, o->label ? o->label : ops->system, c.got, (double)(c.last_ns - start) / 1e9,
                     c.lat, n, "publish_to_delivery");
        rc = 0;
    }
out:
    free(c.lat);
    free_states(o, st, sent);
    return rc;
}

int
bench_run(const bench_ops_t *ops, const bench_opts_t *o)
{
    if (strstr(o->scenario, "e2e"))
        return run_e2e(ops, o);
    return run_publishers(ops, o);
}

static const struct option long_opts[] = {
    {"scenario", required_argument, 0, 's'}, {"count", required_argument, 0, 'n'},
    {"seconds", required_argument, 0, 't'},  {"window", required_argument, 0, 'w'},
    {"threads", required_argument, 0, 'j'},  {"rate", required_argument, 0, 'r'},
    {"endpoint", required_argument, 0, 'e'}, {"port", required_argument, 0, 'p'},
    {"dir", required_argument, 0, 'd'},      {"target", required_argument, 0, 'q'},
    {"label", required_argument, 0, 'l'},    {"run-id", required_argument, 0, 'i'},
    {"persons", required_argument, 0, 'P'},  {0, 0, 0, 0},
};

int
bench_parse(int argc, char **argv, bench_opts_t *o)
{
    *o = (bench_opts_t){.scenario = "sync",
                        .count = 100000,
                        .seconds = 10,
                        .window = 1,
                        .threads = 1,
                        .endpoint = "127.0.0.1",
                        .run_id = "r",
                        .persons = BENCH_PERSONS};
    int c;
    while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        switch (c) {
        case 's':
            o->scenario = optarg;
            break;
        case 'n':
            o->count = strtoull(optarg, NULL, 10);
            break;
        case 't':
            o->seconds = strtod(optarg, NULL);
            break;
        case 'w':
            o->window = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'j':
            o->threads = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'r':
            o->rate = strtod(optarg, NULL);
            break;
        case 'e':
            o->endpoint = optarg;
            break;
        case 'p':
            o->port = atoi(optarg);
            break;
        case 'd':
            o->dir = optarg;
            break;
        case 'q':
            o->target = optarg;
            break;
        case 'l':
            o->label = optarg;
            break;
        case 'i':
            o->run_id = optarg;
            break;
        case 'P':
            o->persons = (unsigned)strtoul(optarg, NULL, 10);
            break;
        default:
            fprintf(stderr,
                    "usage: %s --scenario NAME [--count N] [--seconds S] [--window W] "
                    "[--threads T] [--rate R] [--endpoint E] [--port P] [--dir D] "
                    "[--target Q] [--label L] [--run-id ID] [--persons N]\n",
                    argv[0]);
            return -1;
        }
    }
    if (o->count == 0 || o->window == 0 || o->threads == 0 || o->seconds <= 0 || o->persons == 0 ||
        o->persons > BENCH_PERSONS)
        return -1;
    return 0;
}

void
bench_nir(char out[16], uint64_t id, unsigned persons)
{
    /* 7919 is prime to 50000: consecutive ids are different persons */
    uint64_t who = (id * 7919u) % BENCH_PERSONS % persons;
    unsigned commune = 1 + (unsigned)(who / 999), order = 1 + (unsigned)(who % 999);
    char body[14];
    snprintf(body, sizeof body, "28505780%02u%03u", commune % 100, order);
    unsigned long long n = strtoull(body, NULL, 10);
    snprintf(out, 16, "%s%02llu", body, 97 - n % 97);
}
