/* bench_ctl: ptibusctl's queries on a large journal (issue 14's performance targets).
 *   bench_ctl --dir DIR --ctl PTIBUSCTL [--records N] [--queries Q]
 * builds in DIR (unless it already holds N records) a journal of N records through the
 * journal API, as the broker writes them: per message a RECEIVED record (a packed
 * sample envelope of one of six territories, 50 000 persons, five senders, three
 * recipients), its DELIVERED and ACKNOWLEDGED records; the person index merged. Then
 * it runs the real ptibusctl on it, stdout to /dev/null, and measures: journal list
 * and export (records/s), trace, journal list --message-id (latency of the whole
 * process, Q random messages: p50 and max), report (total time) and each one's peak
 * RSS; and the person report's index work in process (journal_find_person, the
 * records, their message-id look-ups: ptibusctl person adds the broker's audit round
 * trip, which needs a running broker). One JSON line per measure on stdout. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codec.h"
#include "driver.h"
#include "journal.h"
#include "samples.h"

#define BATCH 3000 /* records per commit while filling */
#define N_TERR 6
#define N_SENDERS 5
#define QUERIES_MAX 1000

extern char **environ;

static const char *const territories[N_TERR] = {"nord_meusien", "sud_meusien", "verdun",
                                                "bar_le_duc",   "commercy",    "saint_mihiel"};
static const char *const senders[N_SENDERS] = {"departement", "caf", "pole_emploi", "msa",
                                               "ml_nord"};
static const char *const recipients[][2] = {{"pole_emploi", NULL}, {"caf", NULL}, {"msa", NULL}};

typedef struct payloads {
    uint8_t *b[N_TERR];
    size_t len[N_TERR];
} payloads_t;

static int
make_payloads(payloads_t *p)
{
    pt_error_t err;
    for (int i = 0; i < N_TERR; i++) {
        td_sample_t s;
        td_sample_referral(&s, "bench-ctl", "pole_emploi");
        s.env.territory = (char *)territories[i];
        if (codec_pack(&s.env.base, 1 << 20, &p->b[i], &p->len[i], &err) != 0) {
            fprintf(stderr, "bench_ctl: %s\n", err.msg);
            return -1;
        }
    }
    return 0;
}

/* The three records of message m (seq of its RECEIVED record: *rcv). */
static int
append_message(journal_txn_t *t, const payloads_t *p, uint64_t m, pt_error_t *err)
{
    char mid[40], nir[16];
    snprintf(mid, sizeof mid, "bench-ctl-%" PRIu64, m);
    bench_nir(nir, m, BENCH_PERSONS);
    nir[13] = '\0'; /* the journal indexes the normal form */
    const char *to = recipients[m % 3][0];
    journal_record_t r = {.kind = PT_REC_RECEIVED,
                          .partner = senders[m % N_SENDERS],
                          .msg_type = "referral",
                          .message_id = mid,
                          .correlation_id = "",
                          .payload = p->b[m % N_TERR],
                          .payload_len = p->len[m % N_TERR],
                          .person_nir = nir,
                          .recipients = recipients[m % 3]};
    uint64_t seq, s2;
    int rc = journal_append(t, &r, &seq, err);
    journal_record_t d = {.kind = PT_REC_DELIVERED,
                          .partner = to,
                          .msg_type = "referral",
                          .message_id = mid,
                          .ref_seq = seq,
                          .attempt = 1};
    if (rc == 0 && (rc = journal_append(t, &d, &s2, err)) == 0)
        rc = journal_queue_remove(t, to, seq, err);
    d.kind = PT_REC_ACKNOWLEDGED;
    d.attempt = 0;
    return rc == 0 ? journal_append(t, &d, &s2, err) : rc;
}

static int
fill(journal_t *j, uint64_t records, pt_error_t *err)
{
    payloads_t p;
    int rc = make_payloads(&p);
    uint64_t m = journal_last_seq(j) / 3, t0 = bench_now_ns();
    while (rc == 0 && journal_last_seq(j) + 3 <= records) {
        journal_txn_t *t;
        size_t moved;
        if ((rc = journal_begin(j, &t, err)) != 0)
            break;
        for (unsigned i = 0;
             rc == 0 && i < BATCH / 3 && journal_last_seq(j) + 3 * (i + 1) <= records; i++)
            rc = append_message(t, &p, m++, err);
        if (rc == 0)
            rc = journal_person_merge(t, BATCH, &moved, err);
        if (rc != 0)
            journal_abort(&t);
        else
            rc = journal_commit(&t, err);
    }
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    printf("{\"scenario\":\"CTL-fill\",\"system\":\"journal\",\"records\":%" PRIu64
           ",\"seconds\":%.1f}\n",
           journal_last_seq(j), secs);
    fflush(stdout);
    for (int i = 0; i < N_TERR; i++)
        free(p.b[i]);
    return rc;
}

/* Runs ctl with args (NULL-terminated after argv[0]), stdout and stderr to /dev/null;
 * *secs its wall time, *rss_kib its peak RSS. Returns its exit code, or -1. */
static int
run_ctl(const char *ctl, char *const *args, double *secs, long *rss_kib)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    uint64_t t0 = bench_now_ns();
    int rc = posix_spawn(&pid, ctl, &fa, NULL, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    int st;
    struct rusage ru;
    if (wait4(pid, &st, 0, &ru) != pid)
        return -1;
    *secs = (double)(bench_now_ns() - t0) / 1e9;
    *rss_kib = ru.ru_maxrss;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

typedef struct ctx {
    const char *ctl, *dir;
    uint64_t records, queries;
} ctx_t;

/* A streaming command over the whole journal: records/s. */
static int
bench_stream(const ctx_t *c, const char *name, const char *noun, const char *verb,
             const char *format)
{
    char *args[] = {(char *)c->ctl, (char *)noun, (char *)verb,   "--journal",
                    (char *)c->dir, "--format",   (char *)format, NULL};
    if (verb == NULL)
        memmove(&args[2], &args[3], 5 * sizeof *args);
    double secs;
    long rss;
    int rc = run_ctl(c->ctl, args, &secs, &rss);
    printf("{\"scenario\":\"%s\",\"system\":\"ptibusctl\",\"records\":%" PRIu64
           ",\"seconds\":%.3f,\"rate\":%.0f,\"peak_rss_kib\":%ld,\"exit\":%d}\n",
           name, c->records, secs, secs > 0 ? (double)c->records / secs : 0, rss, rc);
    fflush(stdout);
    return rc;
}

static int
cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* trace ID or journal list --message-id ID for Q random messages: p50 and max. */
static int
bench_lookup(const ctx_t *c, const char *name, bool trace)
{
    static double t[QUERIES_MAX];
    char id[40];
    long rss = 0, r;
    int rc = 0;
    uint64_t messages = c->records / 3;
    for (uint64_t q = 0; q < c->queries && rc == 0; q++) {
        snprintf(id, sizeof id, "bench-ctl-%" PRIu64, (q * 2654435761u + 7) % messages);
        char *tr[] = {(char *)c->ctl, "trace", id, "--journal", (char *)c->dir, NULL};
        char *ls[] = {(char *)c->ctl, "journal",      "list", "--message-id", id,
                      "--journal",    (char *)c->dir, NULL};
        rc = run_ctl(c->ctl, trace ? tr : ls, &t[q], &r);
        rss = r > rss ? r : rss;
    }
    qsort(t, c->queries, sizeof *t, cmp_double);
    printf("{\"scenario\":\"%s\",\"system\":\"ptibusctl\",\"records\":%" PRIu64
           ",\"queries\":%" PRIu64 ",\"p50_ms\":%.2f,\"max_ms\":%.2f,\"peak_rss_kib\":%ld,"
           "\"exit\":%d}\n",
           name, c->records, c->queries, t[c->queries / 2] * 1e3, t[c->queries - 1] * 1e3, rss, rc);
    fflush(stdout);
    return rc;
}

/* The person report's journal work, in process: index, records, their look-ups. */
static int
bench_person(const ctx_t *c, pt_error_t *err)
{
    static double t[QUERIES_MAX];
    uint8_t hmac[32] = {0}, *buf = NULL;
    size_t cap = 0, flows = 0;
    journal_options_t o = {.dir = c->dir, .read_only = true, .hmac_key = hmac};
    journal_t *j;
    int rc = journal_open(&o, &j, err);
    for (uint64_t q = 0; rc == 0 && q < c->queries; q++) {
        char nir[16];
        uint64_t *seqs = NULL, *ids = NULL, t0 = bench_now_ns();
        size_t n = 0, m = 0;
        bench_nir(nir, q * 7919, BENCH_PERSONS);
        nir[13] = '\0';
        rc = journal_find_person(j, nir, &seqs, &n, err);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            journal_view_t v;
            if ((rc = journal_get(j, seqs[i], &v, &buf, &cap, err)) == 0)
                rc = journal_find_message(j, v.message_id, &ids, &m, err);
            free(ids);
            ids = NULL;
            flows += m;
        }
        free(seqs);
        t[q] = (double)(bench_now_ns() - t0) / 1e9;
    }
    free(buf);
    journal_close(&j);
    if (rc != 0)
        return rc;
    qsort(t, c->queries, sizeof *t, cmp_double);
    printf("{\"scenario\":\"CTL-person-index\",\"system\":\"journal\",\"records\":%" PRIu64
           ",\"queries\":%" PRIu64
           ",\"records_per_person\":%.1f,\"p50_ms\":%.3f,\"max_ms\":%.3f}\n",
           c->records, c->queries, (double)flows / (double)c->queries, t[c->queries / 2] * 1e3,
           t[c->queries - 1] * 1e3);
    fflush(stdout);
    return 0;
}

static int
measure(const ctx_t *c)
{
    pt_error_t err;
    int rc = bench_stream(c, "CTL-list", "journal", "list", "tsv");
    if (rc == 0)
        rc = bench_stream(c, "CTL-export", "export", NULL, "jsonl");
    if (rc == 0)
        rc = bench_lookup(c, "CTL-trace", true);
    if (rc == 0)
        rc = bench_lookup(c, "CTL-message-id", false);
    if (rc == 0 && bench_person(c, &err) != 0) {
        fprintf(stderr, "bench_ctl: person: %s\n", err.msg);
        rc = 1;
    }
    if (rc == 0)
        rc = bench_stream(c, "CTL-report", "report", NULL, "csv");
    return rc;
}

int
main(int argc, char **argv)
{
    ctx_t c = {.records = 30000, .queries = 20};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--dir") == 0)
            c.dir = argv[i + 1];
        else if (strcmp(argv[i], "--ctl") == 0)
            c.ctl = argv[i + 1];
        else if (strcmp(argv[i], "--records") == 0)
            c.records = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--queries") == 0)
            c.queries = strtoull(argv[i + 1], NULL, 10);
    }
    if (c.dir == NULL || c.ctl == NULL || c.records < 3 || c.queries == 0 ||
        c.queries > QUERIES_MAX) {
        fprintf(stderr, "usage: bench_ctl --dir DIR --ctl PTIBUSCTL [--records N (>= 3)] "
                        "[--queries Q (1..1000)]\n");
        return 2;
    }
    uint8_t hmac[32] = {0};
    journal_options_t o = {.dir = c.dir, .hmac_key = hmac, .unsafe_nosync = true};
    journal_t *j = NULL;
    pt_error_t err;
    int rc = journal_open(&o, &j, &err);
    if (rc == 0 && journal_last_seq(j) + 3 <= c.records)
        rc = fill(j, c.records, &err);
    if (rc == 0)
        c.records = journal_last_seq(j);
    journal_close(&j);
    if (rc != 0) {
        fprintf(stderr, "bench_ctl: %s: %s\n", c.dir, err.msg);
        return 1;
    }
    return measure(&c) == 0 ? 0 : 1;
}
