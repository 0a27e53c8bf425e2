/* bench_rabbitmq: the scenarios against rabbitmq-server with librabbitmq. A durable
 * queue named by --run-id, classic or quorum (--target), persistent messages (delivery
 * mode 2) published with publisher confirms: a confirm comes once the message is on
 * disk (fsynced) for a durable queue. The e2e consumer uses manual acks, one per
 * delivery, with a prefetch of 1024. */
#include <inttypes.h>
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "driver.h"

#define RING (1u << 18)
#define CH 1

typedef struct aconn {
    amqp_connection_state_t c;
    const char *queue;
    uint64_t *ring; /* ids by delivery tag */
    uint64_t tag, acked, nacks;
    uint8_t payload[BENCH_PAYLOAD];
} aconn_t;

static int
rpc_ok(amqp_connection_state_t c, const char *what)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    fprintf(stderr, "bench_rabbitmq: %s failed (reply type %d)\n", what, r.reply_type);
    return -1;
}

static int
a_connect(const bench_opts_t *o, aconn_t **out)
{
    aconn_t *a = calloc(1, sizeof *a);
    if (a == NULL || (a->ring = calloc(RING, sizeof *a->ring)) == NULL)
        return -1;
    *out = a;
    a->queue = o->run_id;
    a->c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(a->c);
    if (s == NULL || amqp_socket_open(s, o->endpoint, o->port) != AMQP_STATUS_OK) {
        fprintf(stderr, "bench_rabbitmq: cannot connect to %s:%d\n", o->endpoint, o->port);
        return -1;
    }
    amqp_rpc_reply_t r =
        amqp_login(a->c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        fprintf(stderr, "bench_rabbitmq: login failed\n");
        return -1;
    }
    amqp_channel_open(a->c, CH);
    if (rpc_ok(a->c, "channel.open"))
        return -1;
    amqp_table_entry_t e = {
        .key = amqp_cstring_bytes("x-queue-type"),
        .value = {.kind = AMQP_FIELD_KIND_UTF8,
                  .value.bytes = amqp_cstring_bytes(o->target ? o->target : "classic")}};
    amqp_table_t args = {.num_entries = 1, .entries = &e};
    amqp_queue_declare(a->c, CH, amqp_cstring_bytes(a->queue), 0, 1, 0, 0, args);
    return rpc_ok(a->c, "queue.declare");
}

static int
rabbit_pub_open(const bench_opts_t *o, unsigned idx, void **conn)
{
    (void)idx;
    aconn_t *a = NULL;
    int rc = a_connect(o, &a);
    *conn = a;
    if (rc == 0) {
        amqp_confirm_select(a->c, CH);
        rc = rpc_ok(a->c, "confirm.select");
    }
    return rc;
}

static int
rabbit_publish(void *conn, uint64_t id)
{
    aconn_t *a = conn;
    bench_payload(a->payload, id);
    amqp_basic_properties_t p = {._flags = AMQP_BASIC_DELIVERY_MODE_FLAG, .delivery_mode = 2};
    amqp_bytes_t body = {BENCH_PAYLOAD, a->payload};
    a->ring[++a->tag % RING] = id;
    int rc = amqp_basic_publish(a->c, CH, amqp_empty_bytes, amqp_cstring_bytes(a->queue), 0, 0, &p,
                                body);
    if (rc != AMQP_STATUS_OK)
        fprintf(stderr, "bench_rabbitmq: publish: %s\n", amqp_error_string2(rc));
    return rc == AMQP_STATUS_OK ? 0 : -1;
}

/* A quorum queue may nack under load: those ids are published again (their latency
 * keeps counting from the first send) and the nacks are counted on stderr. */
static int
republish(aconn_t *a, const amqp_basic_nack_t *nack)
{
    uint64_t ids[512], n = 0;
    while (a->acked < nack->delivery_tag && n < 512)
        ids[n++] = a->ring[++a->acked % RING];
    a->nacks += n;
    for (uint64_t i = 0; i < n; i++)
        if (rabbit_publish(a, ids[i]) < 0)
            return -1;
    return 0;
}

/* Confirms (basic.ack, possibly "multiple") for the ids published so far. */
static int
rabbit_acks(void *conn, int timeout_ms, uint64_t *ids, size_t max)
{
    aconn_t *a = conn;
    size_t n = 0;
    while (n + 1 < max && a->acked < a->tag) {
        struct timeval tv = {.tv_sec = (n ? 0 : timeout_ms) / 1000,
                             .tv_usec = (n ? 0 : timeout_ms) % 1000 * 1000};
        amqp_frame_t f;
        int rc = amqp_simple_wait_frame_noblock(a->c, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT)
            break;
        if (rc != AMQP_STATUS_OK || f.frame_type != AMQP_FRAME_METHOD) {
            fprintf(stderr, "bench_rabbitmq: confirm wait: %s\n", amqp_error_string2(rc));
            return -1;
        }
        if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            if (republish(a, f.payload.method.decoded) < 0)
                return -1;
            continue;
        }
        if (f.payload.method.id != AMQP_BASIC_ACK_METHOD) {
            fprintf(stderr, "bench_rabbitmq: unexpected method 0x%x (nack?)\n",
                    f.payload.method.id);
            return -1;
        }
        amqp_basic_ack_t *ack = f.payload.method.decoded;
        /* Confirms come in tag order on one channel: a single ack of tag t after
         * acked means every tag up to t (the broker folds them into "multiple"). */
        uint64_t upto = ack->delivery_tag;
        while (a->acked < upto && n < max)
            ids[n++] = a->ring[++a->acked % RING];
    }
    return (int)n;
}

static void
rabbit_close(void *conn)
{
    aconn_t *a = conn;
    if (a == NULL)
        return;
    if (a->nacks)
        fprintf(stderr, "bench_rabbitmq: %s: %" PRIu64 " nacks, published again\n", a->queue,
                a->nacks);
    if (a->c) {
        amqp_channel_close(a->c, CH, AMQP_REPLY_SUCCESS);
        amqp_connection_close(a->c, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(a->c);
    }
    free(a->ring);
    free(a);
}

static int
rabbit_sub_open(const bench_opts_t *o, void **conn)
{
    aconn_t *a = NULL;
    int rc = a_connect(o, &a);
    *conn = a;
    if (rc != 0)
        return rc;
    amqp_basic_qos(a->c, CH, 0, 1024, 0);
    if (rpc_ok(a->c, "basic.qos"))
        return -1;
    amqp_basic_consume(a->c, CH, amqp_cstring_bytes(a->queue), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    return rpc_ok(a->c, "basic.consume");
}

static int
rabbit_deliveries(void *conn, int timeout_ms, uint64_t *ids, size_t max)
{
    aconn_t *a = conn;
    size_t n = 0;
    while (n < max) {
        struct timeval tv = {.tv_sec = (n ? 0 : timeout_ms) / 1000,
                             .tv_usec = (n ? 0 : timeout_ms) % 1000 * 1000};
        amqp_envelope_t env;
        amqp_maybe_release_buffers(a->c);
        amqp_rpc_reply_t r = amqp_consume_message(a->c, &env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            break;
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            fprintf(stderr, "bench_rabbitmq: consume failed\n");
            return -1;
        }
        ids[n++] = bench_payload_id(env.message.body.bytes, env.message.body.len);
        int rc = amqp_basic_ack(a->c, CH, env.delivery_tag, 0);
        amqp_destroy_envelope(&env);
        if (rc != AMQP_STATUS_OK)
            return -1;
    }
    return (int)n;
}

static const bench_ops_t rabbit_ops = {
    .system = "rabbitmq",
    .pub_open = rabbit_pub_open,
    .publish = rabbit_publish,
    .acks = rabbit_acks,
    .pub_close = rabbit_close,
    .sub_open = rabbit_sub_open,
    .deliveries = rabbit_deliveries,
    .sub_close = rabbit_close,
};

int
main(int argc, char **argv)
{
    bench_opts_t o;
    if (bench_parse(argc, argv, &o) < 0 || o.port == 0)
        return 2;
    return bench_run(&rabbit_ops, &o);
}
