/* bench_codecs: the codec scenario of issue 13. Decodes one partner file with a native
 * codec (through its table of operations, found in the codec registry), and spools every
 * Envelope as the adapter runtime's file drop does: the file's SHA-256 (filedrop_hash_fd),
 * the derived message id (file hash, record index), the file's mtime as created_at, pack,
 * spool_put (no second validation: the codec validated the body), under a spool stage
 * committed every PT_FILEDROP_CHUNK records (--commit-every N), the stage finished by the
 * last commit; --commit-every 0 is the former way, the whole file in one transaction.
 * The LHEO codec's fingerprint store is the spool's "lheo" namespace, as in
 * adapters/region/main.c. The same file is decoded --passes times (default 2) in the same
 * spool: on the second pass the LHEO diff publishes nothing and a CNAF flow finds every
 * message already spooled. One JSON line per pass on stdout: records, seconds,
 * records/s, peak RSS (getrusage, reset between passes through /proc/self/clear_refs).
 * A program of bench/run.sh, never a test. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "codec.h"
#include "filedrop.h"
#include "lheo.h"
#include "lheo_diff.h"
#include "lheo_spool.h"
#include "registry.h"
#include "spool.h"
#include "validate.h"

#define PASS_ATTEMPTS 4

typedef struct opts {
    const char *codec, *file, *dir;
    unsigned long commit_every; /* chunk size under the stage; 0: one transaction per file */
    unsigned passes;
    unsigned long long items; /* sessions or households in the file, for items/s */
    bool digest;              /* a BLAKE2b of every record, to compare two builds */
} opts_t;

typedef struct pass {
    uint64_t spooled, duplicates, invalid, commits;
    double hash_s, spool_s, commit_s;
    double cpu_s; /* user + system CPU of the pass: steadier than wall time on a shared box */
    char first_error[PT_ERROR_PATH_MAX + PT_ERROR_MSG_MAX + 2]; /* never a value: codec_ops.h */
} pass_t;

typedef struct bench {
    const opts_t *o;
    spool_t *spool;
    const pt_codec_ops_t *codec;
    pt_codec_config_t cfg;
    lheo_store_t store;
    uint8_t hash[PT_FILEDROP_HASH_LEN];
    Google__Protobuf__Timestamp mtime;
    uint8_t *buf;
    size_t cap;
    uint64_t since_commit;
    unsigned attempt; /* of the pass, from 1 */
    double failed_s;  /* spent in the pass's failed attempts */
    pass_t p;
    crypto_generichash_state digest;
    pt_error_t err;
} bench_t;

static double
cpu_now_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- one record, as the runtime spools it ---- */

static int
commit(bench_t *b)
{
    double t = now_s();
    int rc = spool_commit(b->spool, &b->err);
    b->p.commit_s += now_s() - t;
    b->p.commits++;
    b->since_commit = 0;
    return rc;
}

static int
pack(bench_t *b, const Ptibus__V1__Envelope *env, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(&env->base);
    if (*len > b->cap) {
        uint8_t *g = realloc(b->buf, *len * 2);
        if (g == NULL)
            return -ENOMEM;
        b->buf = g, b->cap = *len * 2;
    }
    protobuf_c_message_pack(&env->base, b->buf);
    return 0;
}

static int
spool_one(bench_t *b, const pt_record_t *rec)
{
    char id[PT_FILEDROP_ID_MAX];
    filedrop_record_id(b->hash, (size_t)rec->index, id);
    Ptibus__V1__Envelope env = *rec->env; /* shallow: the codec's record is borrowed */
    env.message_id = id;
    env.created_at = &b->mtime;
    size_t len;
    int rc = pack(b, &env, &len);
    spool_put_result_t res = {0};
    spool_msg_t m = {.message_id = id,
                     .data = b->buf,
                     .len = len,
                     .msg_type = codec_envelope_type(&env),
                     .source = SPOOL_SRC_FILE};
    if (rc == 0 && b->o->digest)
        crypto_generichash_update(&b->digest, b->buf, len);
    if (rc == 0)
        rc = spool_put(b->spool, &m, &res, &b->err);
    if (rc != 0)
        return rc;
    res.duplicate ? b->p.duplicates++ : b->p.spooled++;
    if (b->o->commit_every > 0 && ++b->since_commit >= b->o->commit_every)
        return commit(b);
    return 0;
}

static int
on_record(void *ctx, const pt_record_t *rec)
{
    bench_t *b = ctx;
    if (rec->env == NULL && b->o->digest) {
        crypto_generichash_update(&b->digest, (const uint8_t *)rec->error->where,
                                  strlen(rec->error->where) + 1);
        crypto_generichash_update(&b->digest, (const uint8_t *)rec->error->msg,
                                  strlen(rec->error->msg) + 1);
    }
    if (rec->env == NULL) { /* counted by the codec's outcome; the first one is shown */
        if (b->p.first_error[0] == '\0')
            snprintf(b->p.first_error, sizeof b->p.first_error, "%s: %s", rec->error->where,
                     rec->error->msg);
        return 0;
    }
    double t = now_s();
    int rc = spool_one(b, rec);
    b->p.spool_s += now_s() - t;
    return rc;
}

/* ---- one pass ---- */

static int
hash_file(bench_t *b, int fd)
{
    int rc = filedrop_hash_fd(fd, b->hash);
    return rc == 0 && lseek(fd, 0, SEEK_SET) != 0 ? -errno : rc;
}

/* The file drop's rollback of a file that failed: steps, each committed. */
static void
rollback(bench_t *b)
{
    spool_abort(b->spool);
    int rc;
    while ((rc = spool_stage_rollback(b->spool, PT_FILEDROP_CHUNK, &b->err)) == 1)
        if (spool_commit(b->spool, &b->err) != 0)
            return;
    if (rc == 0)
        spool_commit(b->spool, &b->err);
}

/* The peak RSS counts from here (best effort: clear_refs needs Linux 4.0). */
static void
reset_peak_rss(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY);
    if (fd >= 0) {
        if (write(fd, "5", 1) < 0)
            perror("bench_codecs: clear_refs");
        close(fd);
    }
}

static long
status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            v = strtol(line + n + 1, NULL, 10);
    if (f != NULL)
        fclose(f);
    return v;
}

static void
print_pass(const bench_t *b, unsigned k, int rc, const pt_codec_outcome_t *out, double secs,
           off_t bytes)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const pass_t *p = &b->p;
    char every[32] = "";
    if (b->o->commit_every == 0)
        snprintf(every, sizeof every, "-onetxn");
    else if (b->o->commit_every != PT_FILEDROP_CHUNK)
        snprintf(every, sizeof every, "-commit%lu", b->o->commit_every);
    printf("{\"scenario\":\"C1-%s-pass%u%s\",\"system\":\"ptibus-codec\",\"codec\":\"%s\","
           "\"pass\":%u,\"attempts\":%u,\"failed_attempts_s\":%.3f,\"rc\":%d,\"file_bytes\":%lld,"
           "\"items\":%llu,\"records\":%llu,"
           "\"record_errors\":%llu,\"spooled\":%llu,\"duplicates\":%llu,\"invalid\":%llu,"
           "\"commit_every\":%lu,\"commits\":%llu,\"seconds\":%.3f,\"rate\":%.0f,"
           "\"items_per_s\":%.0f,\"hash_s\":%.3f,\"spool_s\":%.3f,\"commit_s\":%.3f,\"cpu_s\":%.3f,"
           "\"peak_rss_kib\":%ld,\"rss_anon_kib\":%ld,\"rss_file_kib\":%ld}\n",
           b->codec->name, k, every, b->codec->name, k, b->attempt, b->failed_s, rc,
           (long long)bytes, b->o->items, (unsigned long long)out->records,
           (unsigned long long)out->errors, (unsigned long long)p->spooled,
           (unsigned long long)p->duplicates, (unsigned long long)p->invalid, b->o->commit_every,
           (unsigned long long)p->commits, secs, secs > 0 ? (double)out->records / secs : 0,
           secs > 0 ? (double)b->o->items / secs : 0, p->hash_s, p->spool_s, p->commit_s, p->cpu_s,
           ru.ru_maxrss, status_kib("RssAnon"), status_kib("RssFile"));
    fflush(stdout);
}

static void
print_digest(bench_t *b, unsigned k)
{
    uint8_t d[32];
    char hex[65];
    crypto_generichash_final(&b->digest, d, sizeof d);
    sodium_bin2hex(hex, sizeof hex, d, sizeof d);
    fprintf(stderr, "bench_codecs: pass %u: records digest %s\n", k, hex);
}

static int
run_pass(bench_t *b, unsigned k)
{
    int fd = open(b->o->file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "bench_codecs: cannot open %s: %s\n", b->o->file, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -errno;
    }
    google__protobuf__timestamp__init(&b->mtime);
    b->mtime.seconds = st.st_mtime;
    memset(&b->p, 0, sizeof b->p);
    b->since_commit = 0;
    crypto_generichash_init(&b->digest, NULL, 0, 32);
    reset_peak_rss();
    pt_codec_outcome_t out;
    memset(&out, 0, sizeof out);
    double t0 = now_s(), c0 = cpu_now_s();
    int rc = hash_file(b, fd);
    b->p.hash_s = now_s() - t0;
    pt_codec_source_t src = {.fd = fd, .name = "bench"};
    if (rc == 0)
        rc = spool_stage_begin(b->spool, &b->err);
    if (rc == 0)
        rc = b->codec->decode(&b->cfg, &src, on_record, b, &out);
    if (rc == 0)
        rc = spool_stage_finish(b->spool, &b->err);
    if (rc == 0)
        rc = commit(b);
    else
        rollback(b);
    double secs = now_s() - t0;
    b->p.cpu_s = cpu_now_s() - c0;
    close(fd);
    if (rc != 0)
        fprintf(stderr, "bench_codecs: pass %u: %s (line %lu: %s; %s)\n", k, pt_strerror(rc),
                out.error.line, out.error.msg, b->err.msg);
    if (out.errors > 0)
        fprintf(stderr, "bench_codecs: pass %u: %llu record errors, the first: %s\n", k,
                (unsigned long long)out.errors, b->p.first_error);
    bool again = rc == PT_EJOURNALFULL && b->attempt < PASS_ATTEMPTS;
    if (again) /* one line for the pass: its last attempt */
        b->failed_s += secs;
    else
        print_pass(b, k, rc, &out, secs, st.st_size);
    if (!again && b->o->digest)
        print_digest(b, k);
    return rc;
}

/* A turn that fills the spool's map fails and the map grows for the next one; the runtime
 * then takes the file again (it waits in processing/): so does the bench, a few times. */
static int
run_pass_retried(bench_t *b, unsigned k)
{
    int rc = PT_EJOURNALFULL;
    b->failed_s = 0;
    for (b->attempt = 1; rc == PT_EJOURNALFULL && b->attempt <= PASS_ATTEMPTS; b->attempt++)
        rc = run_pass(b, k);
    return rc;
}

/* ---- main ---- */

static int
parse(int argc, char **argv, opts_t *o)
{
    static const struct option lo[] = {
        {"codec", required_argument, NULL, 'c'},  {"file", required_argument, NULL, 'f'},
        {"dir", required_argument, NULL, 'd'},    {"commit-every", required_argument, NULL, 'n'},
        {"passes", required_argument, NULL, 'p'}, {"items", required_argument, NULL, 'i'},
        {"digest", no_argument, NULL, 'g'},       {NULL, 0, NULL, 0}};
    *o = (opts_t){.dir = "/tmp", .passes = 2, .commit_every = PT_FILEDROP_CHUNK};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (ch == 'c')
            o->codec = optarg;
        else if (ch == 'f')
            o->file = optarg;
        else if (ch == 'd')
            o->dir = optarg;
        else if (ch == 'n')
            o->commit_every = strtoul(optarg, NULL, 10);
        else if (ch == 'p')
            o->passes = (unsigned)strtoul(optarg, NULL, 10);
        else if (ch == 'i')
            o->items = strtoull(optarg, NULL, 10);
        else if (ch == 'g')
            o->digest = true;
        else
            return -1;
    }
    return o->codec != NULL && o->file != NULL && o->passes > 0 ? 0 : -1;
}

static int
open_spool(bench_t *b, char *dir, size_t cap)
{
    snprintf(dir, cap, "%s/bench-codecs.XXXXXX", b->o->dir);
    if (mkdtemp(dir) == NULL) {
        int e = errno;
        fprintf(stderr, "bench_codecs: mkdtemp %s: %s\n", dir, strerror(e));
        dir[0] = '\0'; /* nothing to remove */
        return -e;
    }
    spool_options_t so = {.dir = dir, .map_size_max = (size_t)16 << 30};
    int rc = spool_open(&so, &b->spool, &b->err);
    if (rc != 0)
        fprintf(stderr, "bench_codecs: spool: %s\n", b->err.msg);
    return rc;
}

static void
remove_spool(const char *dir)
{
    char p[4200];
    static const char *const files[] = {"data.mdb", "lock.mdb", NULL};
    for (size_t i = 0; files[i] != NULL; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    if (rmdir(dir) != 0)
        fprintf(stderr, "bench_codecs: %s left behind: %s\n", dir, strerror(errno));
}

int
main(int argc, char **argv)
{
    opts_t o;
    if (parse(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: bench_codecs --codec NAME --file PATH [--dir TMP] "
                        "[--commit-every N] [--passes N] [--items N] [--digest]\n");
        return 2;
    }
    bench_t b = {.o = &o, .codec = codec_registry_find(o.codec)};
    if (b.codec == NULL || sodium_init() < 0) {
        fprintf(stderr, "bench_codecs: no codec named %s\n", o.codec);
        return 2;
    }
    char dir[4096] = "";
    int rc = open_spool(&b, dir, sizeof dir);
    if (rc == 0 && b.codec == &lheo_codec) {
        b.store = lheo_spool_store(b.spool);
        b.cfg.state = &b.store;
    }
    for (unsigned k = 1; rc == 0 && k <= o.passes; k++)
        rc = run_pass_retried(&b, k);
    spool_close(&b.spool);
    if (dir[0] != '\0')
        remove_spool(dir);
    free(b.buf);
    return rc == 0 ? 0 : 1;
}
