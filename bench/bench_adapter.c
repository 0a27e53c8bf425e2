/* bench_adapter: the adapter scenarios of issue 12, end to end through real daemons.
 * Starts its own ptibusd and two adapters (the Département's, which the clients POST
 * to, and France Travail's, which writes the outbox), then:
 *   A1-adapter   N keep-alive clients POST orientations as fast as they are answered:
 *                msgs/s, p50/p99 of POST->202 and of POST->file in the recipient's outbox;
 *   A1-load1k    the same paced at --rate requests/s offered (default 1000): p99 POST->202;
 *   A1-floor-load1k  A1-load1k again with, beside it on the same disk, the ideal group
 *                commit of a 202 at the same rate (no HTTP, no loop: LMDB commits of all
 *                the requests arrived so far): its commits' p99 is the floor of a 202's
 *                p99 under the scenario's own disk load;
 *   A1-spool100k the broker stopped, --spool messages POSTed (default 100 000): the
 *                sending adapter's RssAnon with that many messages spooled;
 *   A1-floor     the disk's floor for A1, in the same run and folder: every message of A1
 *                leaves two files that must be durable (its delivery in the recipient's
 *                outbox, its receipt in the sender's receipts/), and this loop does only
 *                that, in batches of --floor-batch files made durable by one syncfs (the
 *                cheapest way), then renamed, the folder fsynced once. No adapter, broker,
 *                HTTP or JSON: an adapter that keeps its files' promise cannot beat
 *                half its files/s on this disk. Also the latency floor of a 202: one
 *                LMDB commit of one small put (the spool's fsync), paced at --rate for
 *                the same seconds: its p50/p99 (commit_p50_ms, commit_p99_ms).
 * --only runs some of them (A1-floor-load1k and the floor need no other).
 * One JSON line per scenario on stdout (bench/run.sh collects them; report.py compares
 * A1-adapter with S2 of the same run). A program, never a test. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <lmdb.h>

#include "adapter.h"
#include "daemon.h"
#include "pjson.h"
#include "samples.h"
#include "testutil.h"

#define MAX_MSGS 2000000

typedef struct run {
    td_adapter_t *src, *dst;
    const char *prefix;
    unsigned clients;
    uint64_t count; /* messages at most */
    double seconds; /* time bound */
    double rate;    /* offered requests/s in total; 0 = closed loop */
    atomic_uint_fast64_t next;
    uint64_t *sent_ns; /* by message number: when its POST left */
    uint64_t *post_ns; /* POST->202 latency */
    uint64_t *file_ns; /* POST->file latency */
    atomic_uint_fast64_t ok, failed;
    atomic_bool stop;
    uint64_t t0;
} run_t;

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The JSON body of message number k (an orientation with its own id). */
static char *
body_of(const char *prefix, uint64_t k)
{
    td_sample_t s;
    char id[64];
    snprintf(id, sizeof id, "%s-%08llu", prefix, (unsigned long long)k);
    td_sample_orientation(&s, id);
    json_t *doc = NULL;
    pt_error_t err;
    if (pjson_from_message(&s.env.base, &doc, &err) != 0)
        return NULL;
    char *t = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return t;
}

static size_t
discard(char *p, size_t s, size_t n, void *u)
{
    (void)p, (void)u;
    return s * n;
}

static void *
client(void *arg)
{
    run_t *r = arg;
    CURL *c = curl_easy_init();
    char url[128], auth[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/messages", r->src->http_port);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", r->src->token);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    uint64_t end = r->t0 + (uint64_t)(r->seconds * 1e9);
    for (;;) {
        uint64_t k = atomic_fetch_add(&r->next, 1);
        if (k >= r->count || atomic_load(&r->stop) || now_ns() > end)
            break;
        if (r->rate > 0) { /* open loop: message k leaves at t0 + k / rate */
            uint64_t due = r->t0 + (uint64_t)((double)k / r->rate * 1e9), t = now_ns();
            if (due > t)
                usleep((useconds_t)((due - t) / 1000));
        }
        char *body = body_of(r->prefix, k);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        uint64_t t = now_ns();
        r->sent_ns[k] = t;
        long st = 0;
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
        r->post_ns[k] = now_ns() - t;
        free(body);
        atomic_fetch_add(st == 202 ? &r->ok : &r->failed, 1);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

/* Watches the recipient's outbox with inotify: each file "<seq>-<prefix>-<k>.json"
 * renamed in gives message k's POST->file latency. */
typedef struct watch {
    run_t *r;
    int fd;
    uint64_t seen;
} watch_t;

static void
watch_name(watch_t *w, const char *name)
{
    char pat[80];
    snprintf(pat, sizeof pat, "-%s-", w->r->prefix);
    const char *p = strstr(name, pat);
    if (p == NULL)
        return;
    uint64_t k = strtoull(p + strlen(pat), NULL, 10);
    if (k < w->r->count && w->r->file_ns[k] == 0 && w->r->sent_ns[k] != 0) {
        w->r->file_ns[k] = now_ns() - w->r->sent_ns[k];
        w->seen++;
    }
}

static void *
watcher(void *arg)
{
    watch_t *w = arg;
    char buf[64 * 1024] __attribute__((aligned(8)));
    while (!atomic_load(&w->r->stop)) {
        ssize_t n = read(w->fd, buf, sizeof buf);
        if (n <= 0) {
            usleep(1000);
            continue;
        }
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            if (e->len > 0)
                watch_name(w, e->name);
            p += sizeof *e + e->len;
        }
    }
    return NULL;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* p-th percentile in ms of the non-zero values of v[0..n). */
static double
pct(uint64_t *v, uint64_t n, double p)
{
    uint64_t *c = malloc((n ? n : 1) * sizeof *c), m = 0;
    for (uint64_t i = 0; i < n; i++)
        if (v[i] != 0)
            c[m++] = v[i];
    double r = 0;
    if (m > 0) {
        qsort(c, m, sizeof *c, cmp_u64);
        r = (double)c[(uint64_t)((double)(m - 1) * p)] / 1e6;
    }
    free(c);
    return r;
}

/* Runs r's clients and, when dst is set, waits for the outbox files (30 s at most). */
static double
drive(run_t *r)
{
    watch_t w = {.r = r, .fd = -1};
    pthread_t wt, ct[256];
    if (r->dst != NULL) {
        w.fd = inotify_init1(IN_NONBLOCK);
        inotify_add_watch(w.fd, r->dst->outbox, IN_MOVED_TO | IN_CREATE);
        pthread_create(&wt, NULL, watcher, &w);
    }
    r->t0 = now_ns();
    for (unsigned i = 0; i < r->clients; i++)
        pthread_create(&ct[i], NULL, client, r);
    for (unsigned i = 0; i < r->clients; i++)
        pthread_join(ct[i], NULL);
    double elapsed = (double)(now_ns() - r->t0) / 1e9;
    uint64_t ok = atomic_load(&r->ok), deadline = now_ns() + 30000000000ull;
    while (r->dst != NULL && w.seen < ok && now_ns() < deadline)
        usleep(10000);
    double all = (double)(now_ns() - r->t0) / 1e9;
    atomic_store(&r->stop, true);
    if (r->dst != NULL) {
        pthread_join(wt, NULL);
        close(w.fd);
    }
    if (r->dst != NULL && w.seen < ok)
        fprintf(stderr, "bench_adapter: %llu of %llu messages reached the outbox\n",
                (unsigned long long)w.seen, (unsigned long long)ok);
    return r->dst != NULL ? all : elapsed;
}

/* A1-floor: files made durable per second in batches of `batch`, for `seconds`. */
static double
floor_files(const char *dir, unsigned batch, double seconds, uint64_t *files)
{
    char body[900], path[4400], tmp[4400];
    memset(body, 'x', sizeof body);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0)
        return 0;
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9), n = 0;
    while (now_ns() < end) {
        for (unsigned i = 0; i < batch; i++) {
            snprintf(tmp, sizeof tmp, "%s/%020llu.json.tmp", dir, (unsigned long long)(n + i));
            int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
            if (fd < 0 || write(fd, body, sizeof body) != (ssize_t)sizeof body)
                return 0;
            close(fd);
        }
        if (syncfs(dfd) != 0)
            return 0;
        for (unsigned i = 0; i < batch; i++) {
            snprintf(tmp, sizeof tmp, "%s/%020llu.json.tmp", dir, (unsigned long long)(n + i));
            snprintf(path, sizeof path, "%s/%020llu.json", dir, (unsigned long long)(n + i));
            if (rename(tmp, path) != 0)
                return 0;
        }
        if (fsync(dfd) != 0)
            return 0;
        n += batch;
    }
    close(dfd);
    *files = n;
    return (double)n / ((double)(now_ns() - t0) / 1e9);
}

/* A1-floor's latency part: one LMDB put+commit of 1 KiB paced at rate/s for `seconds`;
 * fills lat (cap entries) with each commit's ns and returns how many. */
static uint64_t
floor_commits(const char *dir, double rate, double seconds, uint64_t *lat, uint64_t cap)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    char body[1024];
    memset(body, 'x', sizeof body);
    if (mdb_env_create(&env) != 0 || mdb_env_set_mapsize(env, 1ull << 30) != 0 ||
        mdb_env_open(env, dir, 0, 0600) != 0)
        return 0;
    uint64_t n = 0, t0 = now_ns();
    while (n < cap && n < (uint64_t)(rate * seconds)) {
        uint64_t due = t0 + (uint64_t)((double)n / rate * 1e9), t = now_ns();
        if (due > t)
            usleep((useconds_t)((due - t) / 1000));
        uint64_t key = n;
        MDB_val k = {sizeof key, &key}, v = {sizeof body, body};
        t = now_ns();
        if (mdb_txn_begin(env, NULL, 0, &txn) != 0 || mdb_dbi_open(txn, NULL, 0, &dbi) != 0 ||
            mdb_put(txn, dbi, &k, &v, 0) != 0 || mdb_txn_commit(txn) != 0)
            break;
        lat[n++] = now_ns() - t;
    }
    mdb_env_close(env);
    return n;
}

/* The ideal group commit of a 202: requests arrive at rate/s (request k at t0 + k / rate);
 * each commit takes all the requests arrived so far (one 1 KiB put each) in one LMDB
 * transaction, and a request's latency is from its arrival to the end of its commit: no
 * HTTP, no parsing, no loop, the spool's one writer at a time. Fills lat (cap entries)
 * with each request's ns and clat with each commit's; returns how many requests. */
static uint64_t
floor_group_commits(const char *dir, double rate, double seconds, uint64_t *lat, uint64_t *clat,
                    uint64_t cap, uint64_t *ncommits)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    char body[1024];
    memset(body, 'x', sizeof body);
    if (mdb_env_create(&env) != 0 || mdb_env_set_mapsize(env, 1ull << 30) != 0 ||
        mdb_env_open(env, dir, 0, 0600) != 0)
        return 0;
    uint64_t done = 0, nc = 0, t0 = now_ns(), total = (uint64_t)(rate * seconds);
    while (done < cap && done < total) {
        uint64_t t = now_ns(), due = t0 + (uint64_t)((double)done / rate * 1e9);
        if (due > t) { /* nothing arrived: wait for the next request */
            usleep((useconds_t)((due - t) / 1000));
            continue;
        }
        uint64_t upto = (uint64_t)((double)(t - t0) / 1e9 * rate) + 1;
        upto = upto > total ? total : upto > cap ? cap : upto;
        if (mdb_txn_begin(env, NULL, 0, &txn) != 0 || mdb_dbi_open(txn, NULL, 0, &dbi) != 0)
            break;
        int rc = 0;
        for (uint64_t k = done; k < upto && rc == 0; k++) {
            MDB_val key = {sizeof k, &k}, v = {sizeof body, body};
            rc = mdb_put(txn, dbi, &key, &v, 0);
        }
        if (rc != 0) {
            mdb_txn_abort(txn);
            break;
        }
        if (mdb_txn_commit(txn) != 0)
            break;
        uint64_t end = now_ns();
        clat[nc++] = end - t;
        for (; done < upto; done++)
            lat[done] = end - (t0 + (uint64_t)((double)done / rate * 1e9));
    }
    mdb_env_close(env);
    *ncommits = nc;
    return done;
}

/* A1-floor-load1k's floor thread: floor_group_commits in its own folder, beside a run. */
typedef struct floor_load {
    char dir[4300];
    double rate, seconds;
    uint64_t *lat, *clat, cap, n, nc;
} floor_load_t;

static void *
floor_load_main(void *arg)
{
    floor_load_t *f = arg;
    f->n = floor_group_commits(f->dir, f->rate, f->seconds, f->lat, f->clat, f->cap, &f->nc);
    return NULL;
}

static run_t *
run_new(td_adapter_t *src, td_adapter_t *dst, const char *prefix, unsigned clients, uint64_t count,
        double seconds, double rate)
{
    run_t *r = calloc(1, sizeof *r);
    *r = (run_t){.src = src,
                 .dst = dst,
                 .prefix = prefix,
                 .clients = clients,
                 .count = count,
                 .seconds = seconds,
                 .rate = rate};
    r->sent_ns = calloc(count, sizeof *r->sent_ns);
    r->post_ns = calloc(count, sizeof *r->post_ns);
    r->file_ns = calloc(count, sizeof *r->file_ns);
    return r;
}

static void
run_free(run_t *r)
{
    free(r->sent_ns);
    free(r->post_ns);
    free(r->file_ns);
    free(r);
}

/* Whether scenario is in the comma-separated list only (NULL: every scenario). */
static bool
wanted(const char *only, const char *scenario)
{
    size_t n = strlen(scenario);
    for (const char *p = only; p != NULL; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (strncmp(p, scenario, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return true;
    return only == NULL;
}

static void
report_row(const char *scenario, run_t *r, double secs, const char *extra)
{
    uint64_t ok = atomic_load(&r->ok), n = atomic_load(&r->next);
    if (n > r->count)
        n = r->count;
    printf(
        "{\"scenario\":\"%s\",\"system\":\"ptibus-adapter\",\"clients\":%u,\"offered_rate\":%.0f,"
        "\"msgs\":%llu,\"failed\":%llu,\"seconds\":%.2f,\"rate\":%.0f,"
        "\"post_p50_ms\":%.3f,\"post_p99_ms\":%.3f,\"file_p50_ms\":%.3f,\"file_p99_ms\":%.3f%s}\n",
        scenario, r->clients, r->rate, (unsigned long long)ok,
        (unsigned long long)atomic_load(&r->failed), secs, (double)ok / secs,
        pct(r->post_ns, n, 0.5), pct(r->post_ns, n, 0.99), pct(r->file_ns, n, 0.5),
        pct(r->file_ns, n, 0.99), extra);
    fflush(stdout);
}

static void
report(const char *scenario, run_t *r, double secs)
{
    report_row(scenario, r, secs, "");
}

/* A1-floor-load1k: A1-load1k again while a thread runs the ideal group commit of a 202 at
 * the same rate (floor_group_commits) in an LMDB of its own on the same disk: the sending
 * adapter's spool and that floor share the disk with the broker's journal and the
 * recipient's outbox and spool, and load it alike. A request is durable no sooner than its
 * commit ends, and a slow commit holds more requests than a quick one: the floor's commit
 * p99 is what no 202's p99 can beat under the scenario's own disk load. Reported beside
 * the run's own POST->202 and the floor's request latencies (arrival to durable). */
static void
floor_load_row(td_net_t *net, td_adapter_t *src, td_adapter_t *dst, unsigned clients,
               double seconds, double rate)
{
    floor_load_t f = {.rate = rate, .seconds = seconds, .cap = (uint64_t)(rate * seconds) + 1};
    snprintf(f.dir, sizeof f.dir, "%s/floor-load", net->dir);
    f.lat = calloc(f.cap, sizeof *f.lat);
    f.clat = calloc(f.cap, sizeof *f.clat);
    if (f.lat == NULL || f.clat == NULL || mkdir(f.dir, 0700) != 0) {
        free(f.lat);
        free(f.clat);
        return;
    }
    run_t *r = run_new(src, dst, "a1floor", clients, (uint64_t)(rate * seconds), seconds + 5, rate);
    pthread_t t;
    pthread_create(&t, NULL, floor_load_main, &f);
    double secs = drive(r);
    pthread_join(t, NULL);
    char extra[256];
    snprintf(extra, sizeof extra,
             ",\"floor_requests\":%llu,\"floor_p50_ms\":%.3f,\"floor_p99_ms\":%.3f,"
             "\"commits\":%llu,\"commit_p50_ms\":%.3f,\"commit_p99_ms\":%.3f",
             (unsigned long long)f.n, pct(f.lat, f.n, 0.5), pct(f.lat, f.n, 0.99),
             (unsigned long long)f.nc, pct(f.clat, f.nc, 0.5), pct(f.clat, f.nc, 0.99));
    report_row("A1-floor-load1k", r, secs, extra);
    run_free(r);
    free(f.lat);
    free(f.clat);
}

/* A1-floor's row: files/s in batches, and the lone commit's latency paced at rate. */
static void
floor_row(const char *net_dir, unsigned floor_batch, double seconds, double rate)
{
    char fdir[4200];
    snprintf(fdir, sizeof fdir, "%s/floor", net_dir);
    uint64_t files = 0;
    double fps = mkdir(fdir, 0700) == 0 ? floor_files(fdir, floor_batch, seconds, &files) : 0;
    char cdir[4300];
    snprintf(cdir, sizeof cdir, "%s/commits", fdir);
    uint64_t cap = (uint64_t)(rate * seconds) + 1, *lat = calloc(cap, sizeof *lat);
    uint64_t nc = lat && mkdir(cdir, 0700) == 0 ? floor_commits(cdir, rate, seconds, lat, cap) : 0;
    printf("{\"scenario\":\"A1-floor\",\"system\":\"floor\",\"batch\":%u,\"files\":%llu,"
           "\"files_per_s\":%.0f,\"files_per_msg\":2,\"rate\":%.0f,\"commits\":%llu,"
           "\"commit_rate\":%.0f,\"commit_p50_ms\":%.3f,\"commit_p99_ms\":%.3f}\n",
           floor_batch, (unsigned long long)files, fps, fps / 2, (unsigned long long)nc, rate,
           pct(lat, nc, 0.5), pct(lat, nc, 0.99));
    free(lat);
}

int
main(int argc, char **argv)
{
    unsigned clients = 16;
    double seconds = 10, rate = 1000;
    uint64_t count = 200000, spool = 100000;
    unsigned floor_batch = 64, credit = 0;
    const char *only = NULL; /* a comma-separated list of scenarios; NULL = all */
    static const struct option opts[] = {{"clients", required_argument, NULL, 'c'},
                                         {"seconds", required_argument, NULL, 's'},
                                         {"rate", required_argument, NULL, 'r'},
                                         {"count", required_argument, NULL, 'n'},
                                         {"spool", required_argument, NULL, 'p'},
                                         {"floor-batch", required_argument, NULL, 'b'},
                                         {"credit", required_argument, NULL, 'k'},
                                         {"only", required_argument, NULL, 'o'},
                                         {NULL, 0, NULL, 0}};
    for (int o; (o = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        if (o == 'c')
            clients = (unsigned)strtoul(optarg, NULL, 10);
        else if (o == 's')
            seconds = strtod(optarg, NULL);
        else if (o == 'r')
            rate = strtod(optarg, NULL);
        else if (o == 'n')
            count = strtoull(optarg, NULL, 10);
        else if (o == 'p')
            spool = strtoull(optarg, NULL, 10);
        else if (o == 'b')
            floor_batch = (unsigned)strtoul(optarg, NULL, 10);
        else if (o == 'k')
            credit = (unsigned)strtoul(optarg, NULL, 10);
        else if (o == 'o')
            only = optarg;
        else {
            fprintf(stderr,
                    "usage: bench_adapter [--clients N] [--seconds S] [--rate R] "
                    "[--count N] [--spool N] [--floor-batch N] [--credit N] "
                    "[--only A1-adapter,A1-load1k,A1-floor-load1k,A1-spool100k,A1-floor]\n");
            return 2;
        }
    }
    if (clients < 1 || clients > 256 || count > MAX_MSGS || spool > MAX_MSGS || floor_batch < 1 ||
        floor_batch > 4096)
        return 2;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    static td_net_t net;
    /* Throughput is what is measured: the per-partner input quotas are off, as in S2. */
    td_net_options_t no = {.ack_timeout = "30s",
                           .journal_max_size = "8GiB",
                           .extra_limits = "  partner_rate: 0\n  partner_bytes_per_hour: 0\n"};
    td_net_init(&net, "bench-adapter", &no);
    static td_adapter_t src, dst;
    td_adapter_options_t ao = {.codecs = "[json]", .credit = credit}; /* 0: the harness's 64 */
    td_adapter_init(&src, &net, "departement", &ao);
    td_adapter_init(&dst, &net, "pole_emploi", &ao);
    if (td_broker_start(&net) != 0 || td_adapter_start(&src) != 0 || td_adapter_start(&dst) != 0 ||
        !td_adapter_wait_ready(&src, 10000) || !td_adapter_wait_ready(&dst, 10000)) {
        fprintf(stderr, "bench_adapter: the network did not start\n");
        return 1;
    }
    run_t *r;
    if (wanted(only, "A1-adapter")) {
        r = run_new(&src, &dst, "a1", clients, count, seconds, 0);
        report("A1-adapter", r, drive(r));
        run_free(r);
    }
    if (wanted(only, "A1-load1k")) {
        r = run_new(&src, &dst, "a1load", clients, (uint64_t)(rate * seconds), seconds + 5, rate);
        report("A1-load1k", r, drive(r));
        run_free(r);
    }
    if (wanted(only, "A1-floor-load1k"))
        floor_load_row(&net, &src, &dst, clients, seconds, rate);
    td_broker_stop(&net);
    if (wanted(only, "A1-spool100k")) {
        r = run_new(&src, NULL, "a1spool", clients, spool, 3600, 0);
        double secs = drive(r);
        printf("{\"scenario\":\"A1-spool100k\",\"system\":\"ptibus-adapter\",\"msgs\":%llu,"
               "\"seconds\":%.2f,\"rss_anon_kib\":%ld}\n",
               (unsigned long long)atomic_load(&r->ok), secs, tu_rss_anon_kib((int)src.pid));
        run_free(r);
    }
    td_adapter_stop(&src);
    td_adapter_stop(&dst);
    if (wanted(only, "A1-floor"))
        floor_row(net.dir, floor_batch, seconds, rate);
    td_net_fini(&net);
    curl_global_cleanup();
    return 0;
}
