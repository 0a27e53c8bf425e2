/* bench_lmdb: the reference for ptibus's journal, LMDB's own commit rate on this disk,
 * measured in the same run: 1 KiB values appended under sequential keys, BATCH puts per
 * write transaction, each commit with LMDB's default durability (a real fsync). One
 * JSON line per batch size on stdout. */
#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "driver.h"

static int
commit_batch(MDB_env *env, MDB_dbi dbi, uint64_t *key, unsigned batch, const uint8_t *val)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc)
        return rc;
    for (unsigned i = 0; i < batch && rc == 0; i++) {
        uint64_t k = __builtin_bswap64(++*key);
        MDB_val mk = {sizeof k, &k}, mv = {BENCH_PAYLOAD, (void *)val};
        rc = mdb_put(txn, dbi, &mk, &mv, MDB_APPEND);
    }
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}

static int
run_batch(const char *dir, unsigned batch, double seconds, uint64_t max_puts)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    uint8_t val[BENCH_PAYLOAD];
    uint64_t key = 0, commits = 0;
    bench_payload(val, 0);
    int rc = mdb_env_create(&env);
    if (rc == 0)
        rc = mdb_env_set_mapsize(env, (size_t)8 << 30);
    if (rc == 0)
        rc = mdb_env_open(env, dir, 0, 0600);
    if (rc == 0 && (rc = mdb_txn_begin(env, NULL, 0, &txn)) == 0) {
        rc = mdb_dbi_open(txn, NULL, 0, &dbi);
        rc = rc ? rc : mdb_txn_commit(txn);
    }
    uint64_t start = bench_now_ns(), end = start + (uint64_t)(seconds * 1e9);
    while (rc == 0 && key < max_puts && bench_now_ns() < end) {
        rc = commit_batch(env, dbi, &key, batch, val);
        commits++;
    }
    double secs = (double)(bench_now_ns() - start) / 1e9;
    if (rc)
        fprintf(stderr, "bench_lmdb: %s: %s\n", dir, mdb_strerror(rc));
    else
        printf("{\"scenario\":\"REF-lmdb-%u\",\"system\":\"lmdb\",\"msgs\":%" PRIu64
               ",\"seconds\":%.3f,\"rate\":%.1f,\"commits_per_s\":%.1f,\"batch\":%u}\n",
               batch, key, secs, (double)key / secs, (double)commits / secs, batch);
    mdb_env_close(env);
    return rc ? 1 : 0;
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_lmdb DIR SECONDS [BATCH...]\n");
        return 2;
    }
    double seconds = strtod(argv[2], NULL);
    static const unsigned dflt[] = {1, 100, 1000};
    int nb = argc > 3 ? argc - 3 : 3, rc = 0;
    for (int i = 0; i < nb && rc == 0; i++) {
        unsigned batch = argc > 3 ? (unsigned)strtoul(argv[3 + i], NULL, 10) : dflt[i];
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/lmdb-%u", argv[1], batch);
        if (mkdir(sub, 0700) != 0 && errno != EEXIST) {
            perror(sub);
            return 1;
        }
        rc = run_batch(sub, batch, seconds, 50000000);
    }
    return rc;
}
