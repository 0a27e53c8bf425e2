/* bench_redis: the scenarios against redis-server (appendonly yes, appendfsync
 * always: a reply is sent after the AOF write and its fsync). Publishing is XADD to
 * the stream named by --run-id, pipelined up to the window; the e2e consumer reads
 * with XREADGROUP and acknowledges each entry with its own XACK (pipelined). */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"

#define RING (1u << 18)

typedef struct rconn {
    redisContext *c;
    const char *stream;
    uint64_t *ring; /* ids of XADDs awaiting their reply, in order */
    uint64_t head, tail;
    uint8_t payload[BENCH_PAYLOAD];
} rconn_t;

static int
r_connect(const bench_opts_t *o, rconn_t **out)
{
    rconn_t *r = calloc(1, sizeof *r);
    if (r == NULL || (r->ring = calloc(RING, sizeof *r->ring)) == NULL)
        return -1;
    r->c = redisConnect(o->endpoint, o->port);
    if (r->c == NULL || r->c->err) {
        fprintf(stderr, "bench_redis: connect: %s\n", r->c ? r->c->errstr : "no memory");
        return -1;
    }
    r->stream = o->run_id;
    *out = r;
    return 0;
}

static int
r_flush(rconn_t *r)
{
    int done = 0;
    while (!done)
        if (redisBufferWrite(r->c, &done) != REDIS_OK) {
            fprintf(stderr, "bench_redis: write: %s\n", r->c->errstr);
            return -1;
        }
    return 0;
}

/* Next reply: waits up to timeout_ms; 0 and *reply NULL when none came. */
static int
r_reply(rconn_t *r, int timeout_ms, redisReply **reply)
{
    *reply = NULL;
    if (redisReaderGetReply(r->c->reader, (void **)reply) != REDIS_OK)
        return -1;
    if (*reply)
        return 0;
    struct pollfd p = {.fd = r->c->fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
        return 0;
    if (redisBufferRead(r->c) != REDIS_OK ||
        redisReaderGetReply(r->c->reader, (void **)reply) != REDIS_OK) {
        fprintf(stderr, "bench_redis: read: %s\n", r->c->errstr);
        return -1;
    }
    return 0;
}

static int
redis_pub_open(const bench_opts_t *o, unsigned idx, void **conn)
{
    (void)idx;
    return r_connect(o, (rconn_t **)conn);
}

static int
redis_publish(void *conn, uint64_t id)
{
    rconn_t *r = conn;
    bench_payload(r->payload, id);
    redisAppendCommand(r->c, "XADD %s * d %b", r->stream, r->payload, (size_t)BENCH_PAYLOAD);
    r->ring[r->head++ % RING] = id;
    return r_flush(r);
}

static int
redis_acks(void *conn, int timeout_ms, uint64_t *ids, size_t max)
{
    rconn_t *r = conn;
    size_t n = 0;
    while (n < max && r->tail < r->head) {
        redisReply *rep;
        if (r_reply(r, n == 0 ? timeout_ms : 0, &rep) < 0)
            return -1;
        if (rep == NULL)
            break;
        int bad = rep->type == REDIS_REPLY_ERROR;
        if (bad)
            fprintf(stderr, "bench_redis: XADD: %s\n", rep->str);
        freeReplyObject(rep);
        if (bad)
            return -1;
        ids[n++] = r->ring[r->tail++ % RING];
    }
    return (int)n;
}

static void
redis_close(void *conn)
{
    rconn_t *r = conn;
    if (r == NULL)
        return;
    if (r->c)
        redisFree(r->c);
    free(r->ring);
    free(r);
}

static int
redis_sub_open(const bench_opts_t *o, void **conn)
{
    rconn_t *r;
    if (r_connect(o, &r) < 0)
        return -1;
    redisReply *rep = redisCommand(r->c, "XGROUP CREATE %s g $ MKSTREAM", r->stream);
    int ok = rep && rep->type != REDIS_REPLY_ERROR;
    if (!ok)
        fprintf(stderr, "bench_redis: XGROUP: %s\n", rep ? rep->str : r->c->errstr);
    freeReplyObject(rep);
    *conn = r;
    return ok ? 0 : -1;
}

/* One XREADGROUP; every entry is acknowledged with its own XACK (pipelined). */
static int
redis_deliveries(void *conn, int timeout_ms, uint64_t *ids, size_t max)
{
    rconn_t *r = conn;
    redisReply *rep =
        redisCommand(r->c, "XREADGROUP GROUP g c COUNT %d BLOCK %d STREAMS %s >",
                     (int)(max < 256 ? max : 256), timeout_ms > 0 ? timeout_ms : 1, r->stream);
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "bench_redis: XREADGROUP: %s\n", rep ? rep->str : r->c->errstr);
        freeReplyObject(rep);
        return -1;
    }
    size_t n = 0;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1) {
        redisReply *entries = rep->element[0]->element[1];
        for (size_t i = 0; i < entries->elements && n < max; i++) {
            redisReply *e = entries->element[i], *fields = e->element[1];
            redisAppendCommand(r->c, "XACK %s g %s", r->stream, e->element[0]->str);
            ids[n++] = fields->elements == 2
                           ? bench_payload_id(fields->element[1]->str, fields->element[1]->len)
                           : UINT64_MAX;
        }
    }
    freeReplyObject(rep);
    for (size_t i = 0; i < n; i++) {
        redisReply *ack;
        if (redisGetReply(r->c, (void **)&ack) != REDIS_OK)
            return -1;
        freeReplyObject(ack);
    }
    return (int)n;
}

static const bench_ops_t redis_ops = {
    .system = "redis",
    .pub_open = redis_pub_open,
    .publish = redis_publish,
    .acks = redis_acks,
    .pub_close = redis_close,
    .sub_open = redis_sub_open,
    .deliveries = redis_deliveries,
    .sub_close = redis_close,
};

int
main(int argc, char **argv)
{
    bench_opts_t o;
    if (bench_parse(argc, argv, &o) < 0 || o.port == 0)
        return 2;
    return bench_run(&redis_ops, &o);
}
