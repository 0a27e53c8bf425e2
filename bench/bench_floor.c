/* bench_floor: the floor of the required stack, measured in the same run. A minimal
 * durable broker on ZeroMQ CURVE and LMDB, doing nothing else: a ROUTER drains what
 * is readable (up to 1024 messages), appends each payload to one LMDB B-tree in one
 * write transaction, commits with LMDB's default durability (a real fsync) and only
 * then acknowledges each message (its 20-digit id back). No decoding, validation,
 * routing, chain hash, index or delivery: no broker on ZeroMQ CURVE + LMDB with one
 * commit per drain can beat it on this machine, so it bounds what ptibus can reach.
 *
 *   bench_floor serve --port P --dir D [--nosync]   (writes D/floor.pub; runs until
 *                                                    SIGTERM/SIGINT)
 *   bench_floor --scenario NAME --port P --dir D ... (the driver's client side)
 *
 * --nosync opens LMDB with MDB_NOSYNC: the transport and the broker loop alone. */
#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "driver.h"

#define FLOOR_BATCH 1024
#define FLOOR_MAX_MSG 4096

static volatile sig_atomic_t stop_flag;

static void
on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

typedef struct pending {
    size_t rid_len;
    uint8_t rid[256];
    char id[BENCH_ID_DIGITS];
} pending_t;

static int
serve_open_lmdb(const char *dir, bool nosync, MDB_env **env, MDB_dbi *dbi)
{
    MDB_txn *txn;
    int rc = mdb_env_create(env);
    if (rc == 0)
        rc = mdb_env_set_mapsize(*env, (size_t)32 << 30);
    if (rc == 0)
        rc = mdb_env_open(*env, dir, nosync ? MDB_NOSYNC : 0, 0600);
    if (rc == 0 && (rc = mdb_txn_begin(*env, NULL, 0, &txn)) == 0) {
        rc = mdb_dbi_open(txn, NULL, 0, dbi);
        rc = rc ? rc : mdb_txn_commit(txn);
    }
    if (rc)
        fprintf(stderr, "bench_floor: %s: %s\n", dir, mdb_strerror(rc));
    return rc;
}

/* Reads what is readable now (at most FLOOR_BATCH), appends it in one transaction and
 * commits; then acknowledges every message of the batch. */
static int
serve_batch(void *router, MDB_env *env, MDB_dbi dbi, uint64_t *seq, pending_t *pend)
{
    uint8_t buf[FLOOR_MAX_MSG];
    MDB_txn *txn = NULL;
    size_t n = 0;
    int rc = 0;
    while (n < FLOOR_BATCH) {
        int r = zmq_recv(router, pend[n].rid, sizeof pend[n].rid, ZMQ_DONTWAIT);
        if (r < 0)
            break;
        pend[n].rid_len = (size_t)r;
        int len = zmq_recv(router, buf, sizeof buf, 0);
        if (len < BENCH_ID_DIGITS)
            continue;
        if (txn == NULL && (rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
            break;
        uint64_t k = __builtin_bswap64(++*seq);
        MDB_val mk = {sizeof k, &k}, mv = {(size_t)len, buf};
        if ((rc = mdb_put(txn, dbi, &mk, &mv, MDB_APPEND)) != 0)
            break;
        memcpy(pend[n].id, buf, BENCH_ID_DIGITS);
        n++;
    }
    if (txn != NULL && rc == 0)
        rc = mdb_txn_commit(txn);
    else if (txn != NULL)
        mdb_txn_abort(txn);
    if (rc != 0) {
        fprintf(stderr, "bench_floor: journal: %s\n", mdb_strerror(rc));
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        zmq_send(router, pend[i].rid, pend[i].rid_len, ZMQ_SNDMORE);
        zmq_send(router, pend[i].id, BENCH_ID_DIGITS, 0);
    }
    return (int)n;
}

static int
serve(int port, const char *dir, bool nosync)
{
    char pub[41], sec[41], path[4096], ep[64];
    MDB_env *env = NULL;
    MDB_dbi dbi;
    if (zmq_curve_keypair(pub, sec) != 0 || serve_open_lmdb(dir, nosync, &env, &dbi) != 0)
        return 1;
    snprintf(path, sizeof path, "%s/floor.pub", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL || fprintf(f, "%s\n", pub) < 0 || fclose(f) != 0) {
        perror(path);
        return 1;
    }
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    int one = 1, zero = 0;
    zmq_setsockopt(router, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(router, ZMQ_CURVE_SECRETKEY, sec, 40);
    zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof zero);
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    if (zmq_bind(router, ep) != 0) {
        fprintf(stderr, "bench_floor: bind %s: %s\n", ep, zmq_strerror(errno));
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    static pending_t pend[FLOOR_BATCH];
    uint64_t seq = 0;
    int rc = 0;
    while (!stop_flag && rc >= 0) {
        zmq_pollitem_t it = {router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 200) > 0)
            rc = serve_batch(router, env, dbi, &seq, pend);
    }
    zmq_close(router);
    zmq_ctx_term(ctx);
    mdb_env_close(env);
    return rc < 0 ? 1 : 0;
}

/* ---- the driver's client side ---- */

typedef struct fconn {
    void *ctx, *dealer;
    uint8_t payload[BENCH_PAYLOAD];
} fconn_t;

static int
floor_open(const bench_opts_t *o, unsigned idx, void **conn)
{
    (void)idx;
    char spk[64] = {0}, pub[41], sec[41], path[4096], ep[64];
    snprintf(path, sizeof path, "%s/floor.pub", o->dir);
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(spk, sizeof spk, f) == NULL || strlen(spk) < 40) {
        fprintf(stderr, "bench_floor: %s: no server key\n", path);
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    fconn_t *c = calloc(1, sizeof *c);
    if (c == NULL || zmq_curve_keypair(pub, sec) != 0) {
        free(c);
        return -1;
    }
    int zero = 0;
    c->ctx = zmq_ctx_new();
    c->dealer = zmq_socket(c->ctx, ZMQ_DEALER);
    zmq_setsockopt(c->dealer, ZMQ_CURVE_SERVERKEY, spk, 40);
    zmq_setsockopt(c->dealer, ZMQ_CURVE_PUBLICKEY, pub, 40);
    zmq_setsockopt(c->dealer, ZMQ_CURVE_SECRETKEY, sec, 40);
    zmq_setsockopt(c->dealer, ZMQ_LINGER, &zero, sizeof zero);
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", o->port);
    if (zmq_connect(c->dealer, ep) != 0) {
        fprintf(stderr, "bench_floor: connect %s: %s\n", ep, zmq_strerror(errno));
        zmq_close(c->dealer);
        zmq_ctx_term(c->ctx);
        free(c);
        return -1;
    }
    *conn = c;
    return 0;
}

static int
floor_publish(void *conn, uint64_t id)
{
    fconn_t *c = conn;
    bench_payload(c->payload, id);
    if (zmq_send(c->dealer, c->payload, sizeof c->payload, 0) < 0) {
        fprintf(stderr, "bench_floor: send: %s\n", zmq_strerror(errno));
        return -1;
    }
    return 0;
}

static int
floor_acks(void *conn, int timeout_ms, uint64_t *ids, size_t max)
{
    fconn_t *c = conn;
    size_t n = 0;
    char buf[64];
    while (n < max) {
        if (n == 0) {
            zmq_pollitem_t it = {c->dealer, 0, ZMQ_POLLIN, 0};
            if (zmq_poll(&it, 1, timeout_ms) <= 0)
                break;
        }
        int len = zmq_recv(c->dealer, buf, sizeof buf, ZMQ_DONTWAIT);
        if (len < 0)
            break;
        ids[n++] = bench_payload_id(buf, (size_t)len);
    }
    return (int)n;
}

static void
floor_close(void *conn)
{
    fconn_t *c = conn;
    if (c == NULL)
        return;
    zmq_close(c->dealer);
    zmq_ctx_term(c->ctx);
    free(c);
}

static const bench_ops_t floor_ops = {
    .system = "floor",
    .pub_open = floor_open,
    .publish = floor_publish,
    .acks = floor_acks,
    .pub_close = floor_close,
};

int
main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "serve") == 0) {
        int port = 0;
        const char *dir = NULL;
        bool nosync = false;
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
                port = atoi(argv[++i]);
            else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
                dir = argv[++i];
            else if (strcmp(argv[i], "--nosync") == 0)
                nosync = true;
        }
        if (port <= 0 || dir == NULL) {
            fprintf(stderr, "usage: bench_floor serve --port P --dir D [--nosync]\n");
            return 2;
        }
        return serve(port, dir, nosync);
    }
    bench_opts_t o;
    if (bench_parse(argc, argv, &o) < 0 || o.dir == NULL || o.port <= 0) {
        fprintf(stderr, "bench_floor: --dir D and --port P are required\n");
        return 2;
    }
    return bench_run(&floor_ops, &o);
}
