/* bench_journal: the journal through its own API, without the network.
 * - S3 (bench_journal DIR RECORDS): fills a journal in DIR with N RECEIVED records
 *   (1 KiB payloads, 1000 per commit), then times a full journal_scan and look-ups by
 *   message id (journal_find_message) of random messages.
 * - R1's journal (bench_journal --expirable DIR RECORDS KEYS): fills DIR with N RECEIVED
 *   training offers (1 KiB payloads, no recipient: nothing queued) dated two days ago,
 *   signed with KEYS/broker.sign and indexed with KEYS/person_index.hmac as ptibusd
 *   would, so that a broker started on it with `retention.payloads.training_offer: 1d`
 *   has all N payloads to expire in the background (bench/run.sh, scenario R1).
 * - Reference (bench_journal --commits DIR SECONDS BATCH...): the journal's own group
 *   commit rate with BATCH records per commit, each record as the broker writes
 *   bench_ptibus's referrals (1 KiB payload, its persons, one recipient), real
 *   fsync: the ceiling of the broker's ingest at that batch size, to set beside raw
 *   LMDB's in the same run.
 * One JSON line per measure on stdout. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "driver.h"
#include "journal.h"
#include "keys.h"

#define FILL_BATCH 1000

/* A RECEIVED referral as the broker journals bench_ptibus's (nir NULL: no person). */
static journal_record_t
referral(const char *mid, const char *nir, const uint8_t *payload)
{
    static const char *const recipients[] = {"sink1", NULL};
    return (journal_record_t){.kind = PT_REC_RECEIVED,
                              .partner = "p1",
                              .msg_type = "referral",
                              .message_id = mid,
                              .correlation_id = "",
                              .payload = payload,
                              .payload_len = BENCH_PAYLOAD,
                              .person_nir = nir,
                              .recipients = recipients};
}

static int
fill(journal_t *j, uint64_t n, pt_error_t *err)
{
    uint8_t payload[BENCH_PAYLOAD];
    char mid[40];
    bench_payload(payload, 0);
    for (uint64_t done = 0; done < n;) {
        journal_txn_t *txn;
        int rc = journal_begin(j, &txn, err);
        for (unsigned i = 0; rc == 0 && i < FILL_BATCH && done < n; i++, done++) {
            snprintf(mid, sizeof mid, "bench-%" PRIu64, done);
            journal_record_t r = referral(mid, NULL, payload);
            uint64_t seq;
            rc = journal_append(txn, &r, &seq, err);
        }
        if (rc != 0) {
            journal_abort(&txn);
            return rc;
        }
        if ((rc = journal_commit(&txn, err)) != 0)
            return rc;
    }
    return 0;
}

typedef struct scan_acc {
    uint64_t records, bytes;
} scan_acc_t;

static int
visit(const journal_view_t *v, void *arg)
{
    scan_acc_t *a = arg;
    a->records++;
    a->bytes += v->payload_len;
    return 0;
}

static void
emit(const char *scenario, uint64_t n, double secs, const char *unit)
{
    printf("{\"scenario\":\"%s\",\"system\":\"ptibus\",\"msgs\":%" PRIu64
           ",\"seconds\":%.3f,\"rate\":%.1f,\"unit\":\"%s\"}\n",
           scenario, n, secs, secs > 0 ? (double)n / secs : 0, unit);
    fflush(stdout);
}

static int
lookups(journal_t *j, uint64_t n, uint64_t max, double seconds, pt_error_t *err)
{
    char mid[40];
    uint64_t done = 0, x = 88172645463325252ull;
    uint64_t start = bench_now_ns(), end = start + (uint64_t)(seconds * 1e9);
    while (done < max && bench_now_ns() < end) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64: spread over the journal */
        snprintf(mid, sizeof mid, "bench-%" PRIu64, x % n);
        uint64_t *seqs = NULL;
        size_t k = 0;
        int rc = journal_find_message(j, mid, &seqs, &k, err);
        free(seqs);
        if (rc != 0 || k != 1) {
            fprintf(stderr, "bench_journal: %s: %s\n", mid, rc ? err->msg : "not found once");
            return -1;
        }
        done++;
    }
    emit("S3-lookup", done, (double)(bench_now_ns() - start) / 1e9, "lookups/s");
    return 0;
}

/* After a commit-rate run: how long a person query takes over the unmerged entries,
 * then how fast the broker's merge (chunks of 4096, as ptibusd) moves them into
 * by_person, with its longest chunk (the stall a merge under load adds). */
static int
person_merge_rate(journal_t *j, pt_error_t *err)
{
    size_t waiting = journal_person_unmerged(j), moved = 0, chunk;
    char nir[16];
    uint64_t *seqs = NULL, t0 = bench_now_ns(), worst = 0;
    size_t n = 0;
    bench_nir(nir, 0, BENCH_PERSONS);
    nir[13] = '\0';
    int rc = journal_find_person(j, nir, &seqs, &n, err);
    free(seqs);
    double query_ms = (double)(bench_now_ns() - t0) / 1e6;
    t0 = bench_now_ns();
    do {
        journal_txn_t *txn;
        uint64_t c0 = bench_now_ns();
        chunk = 0;
        if (rc == 0 && (rc = journal_begin(j, &txn, err)) == 0) {
            if ((rc = journal_person_merge(txn, 4096, &chunk, err)) != 0)
                journal_abort(&txn);
            else
                rc = journal_commit(&txn, err);
        }
        moved += chunk;
        if (bench_now_ns() - c0 > worst)
            worst = bench_now_ns() - c0;
    } while (rc == 0 && chunk > 0);
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    if (rc == 0)
        printf("{\"scenario\":\"REF-person-merge\",\"system\":\"journal\",\"msgs\":%zu,"
               "\"seconds\":%.3f,\"rate\":%.1f,\"chunk_ms_max\":%.2f,\"query_ms\":%.2f,"
               "\"unmerged\":%zu}\n",
               moved, secs, secs > 0 ? (double)moved / secs : 0, (double)worst / 1e6, query_ms,
               waiting);
    fflush(stdout);
    return rc;
}

/* Appends for `seconds` at `batch` records per commit into a fresh journal in dir. */
static int
commit_rate(const char *dir, double seconds, unsigned batch)
{
    uint8_t hmac[32] = {0}, payload[BENCH_PAYLOAD];
    journal_options_t jo = {.dir = dir, .hmac_key = hmac};
    journal_t *j = NULL;
    pt_error_t err;
    char mid[48], nir[16];
    uint64_t n = 0, commits = 0;
    bench_payload(payload, 0);
    int rc = journal_open(&jo, &j, &err);
    uint64_t start = bench_now_ns(), end = start + (uint64_t)(seconds * 1e9);
    while (rc == 0 && bench_now_ns() < end && n < 50000000) {
        journal_txn_t *txn;
        rc = journal_begin(j, &txn, &err);
        for (unsigned i = 0; rc == 0 && i < batch; i++, n++) {
            snprintf(mid, sizeof mid, "ref-%u-%" PRIu64, batch, n);
            bench_nir(nir, n, BENCH_PERSONS);
            nir[13] = '\0'; /* the journal indexes the normal form, without the key */
            journal_record_t r = referral(mid, nir, payload);
            uint64_t seq;
            rc = journal_append(txn, &r, &seq, &err);
        }
        if (rc != 0)
            journal_abort(&txn);
        else if ((rc = journal_commit(&txn, &err)) == 0)
            commits++;
    }
    double secs = (double)(bench_now_ns() - start) / 1e9;
    if (rc == 0)
        printf("{\"scenario\":\"REF-journal-%u\",\"system\":\"journal\",\"msgs\":%" PRIu64
               ",\"seconds\":%.3f,\"rate\":%.1f,\"commits_per_s\":%.1f,\"batch\":%u}\n",
               batch, n, secs, (double)n / secs, (double)commits / secs, batch);
    fflush(stdout);
    if (rc == 0 && batch >= 256)
        rc = person_merge_rate(j, &err);
    if (rc != 0)
        fprintf(stderr, "bench_journal: %s: %s\n", dir, err.msg);
    journal_close(&j);
    return rc == 0 ? 0 : 1;
}

/* R1: N training offers two days old, in one fresh journal signed as the broker's. */
static int
fill_expirable(const char *dir, uint64_t n, const char *keys)
{
    uint8_t hmac[32], sk[64], payload[BENCH_PAYLOAD];
    char path[4096], mid[40];
    pt_error_t err;
    journal_t *j = NULL;
    snprintf(path, sizeof path, "%s/broker.sign", keys);
    int rc = keys_read(path, sk, sizeof sk, true, &err);
    snprintf(path, sizeof path, "%s/person_index.hmac", keys);
    if (rc == 0)
        rc = keys_read(path, hmac, sizeof hmac, true, &err);
    journal_options_t jo = {.dir = dir, .hmac_key = hmac, .sign_sk = sk};
    if (rc == 0)
        rc = journal_open(&jo, &j, &err);
    bench_payload(payload, 0);
    int64_t when = pt_clock_wall_ms() - 2 * 86400000LL;
    uint64_t t0 = bench_now_ns();
    for (uint64_t done = 0; rc == 0 && done < n;) {
        journal_txn_t *txn;
        rc = journal_begin(j, &txn, &err);
        for (unsigned i = 0; rc == 0 && i < FILL_BATCH && done < n; i++, done++) {
            snprintf(mid, sizeof mid, "offer-%" PRIu64, done);
            journal_record_t r = {.kind = PT_REC_RECEIVED,
                                  .time_ms = when,
                                  .partner = "p1",
                                  .msg_type = "training_offer",
                                  .message_id = mid,
                                  .correlation_id = "",
                                  .payload = payload,
                                  .payload_len = BENCH_PAYLOAD};
            uint64_t seq;
            rc = journal_append(txn, &r, &seq, &err);
        }
        if (rc != 0)
            journal_abort(&txn);
        else
            rc = journal_commit(&txn, &err);
    }
    if (rc == 0)
        emit("R1-fill", n, (double)(bench_now_ns() - t0) / 1e9, "records/s");
    else
        fprintf(stderr, "bench_journal: %s: %s\n", dir, err.msg);
    journal_close(&j);
    return rc == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "--commits") == 0) {
        int rc = 0;
        for (int i = 4; i < argc && rc == 0; i++) {
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/journal-%s", argv[2], argv[i]);
            rc = commit_rate(sub, strtod(argv[3], NULL), (unsigned)strtoul(argv[i], NULL, 10));
        }
        return rc;
    }
    if (argc == 5 && strcmp(argv[1], "--expirable") == 0)
        return fill_expirable(argv[2], strtoull(argv[3], NULL, 10), argv[4]);
    if (argc < 3) {
        fprintf(stderr, "usage: bench_journal DIR RECORDS | --commits DIR SECONDS BATCH... | "
                        "--expirable DIR RECORDS KEYS\n");
        return 2;
    }
    uint64_t n = strtoull(argv[2], NULL, 10);
    uint8_t hmac[32] = {0};
    journal_options_t jo = {.dir = argv[1], .hmac_key = hmac};
    journal_t *j = NULL;
    pt_error_t err;
    scan_acc_t acc = {0};
    int rc = journal_open(&jo, &j, &err);
    uint64_t t0 = bench_now_ns();
    if (rc == 0 && journal_last_seq(j) < n)
        rc = fill(j, n - journal_last_seq(j), &err);
    if (rc == 0)
        emit("S3-fill", n, (double)(bench_now_ns() - t0) / 1e9, "records/s");
    t0 = bench_now_ns();
    if (rc == 0 && (rc = journal_scan(j, 1, 0, visit, &acc, &err)) == 0)
        emit("S3-scan", acc.records, (double)(bench_now_ns() - t0) / 1e9, "records/s");
    if (rc == 0 && acc.records != journal_last_seq(j)) {
        fprintf(stderr, "bench_journal: scanned %" PRIu64 " records\n", acc.records);
        rc = -1;
    }
    if (rc == 0)
        rc = lookups(j, n, 2000000, 10.0, &err);
    if (rc != 0 && rc != -1)
        fprintf(stderr, "bench_journal: %s\n", err.msg);
    journal_close(&j);
    return rc == 0 ? 0 : 1;
}
