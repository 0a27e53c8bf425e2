/* bench_nats: the scenarios against nats-server with JetStream (file storage), the
 * NON-DURABLE reference: the Debian 2.9 server acknowledges a publish before its
 * fsync (it syncs every 2 minutes). A stream named by --run-id; a window of 1 uses
 * js_Publish (synchronous), a larger one js_PublishAsync with MaxPending = window.
 * The e2e consumer is a JetStream subscription with explicit acks, one per message. */
#include <inttypes.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "driver.h"

#define RING (1u << 18)

typedef struct nconn {
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub;
    char subject[128];
    unsigned window;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t *ring; /* confirmed ids not yet collected */
    uint64_t head, tail;
    int failed;
    uint8_t payload[BENCH_PAYLOAD];
} nconn_t;

static void
push(nconn_t *n, uint64_t id)
{
    pthread_mutex_lock(&n->mu);
    n->ring[n->head++ % RING] = id;
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

static void
on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    (void)pa;
    nconn_t *n = closure;
    if (pae != NULL) {
        fprintf(stderr, "bench_nats: async publish failed: %s\n", natsStatus_GetText(pae->Err));
        n->failed = 1;
    }
    push(n, bench_payload_id(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg)));
    natsMsg_Destroy(msg);
}

static int
n_connect(const bench_opts_t *o, nconn_t **out)
{
    nconn_t *n = calloc(1, sizeof *n);
    char url[256];
    if (n == NULL || (n->ring = calloc(RING, sizeof *n->ring)) == NULL)
        return -1;
    *out = n;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    n->window = o->window;
    snprintf(n->subject, sizeof n->subject, "%s", o->run_id);
    snprintf(url, sizeof url, "nats://%s:%d", o->endpoint, o->port);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = o->window;
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.AckHandlerClosure = n;
    natsStatus s = natsConnection_ConnectTo(&n->nc, url);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&n->js, n->nc, &jo);
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[] = {n->subject};
    sc.Name = n->subject;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    jsErrCode jerr = 0;
    if (s == NATS_OK)
        s = js_AddStream(NULL, n->js, &sc, NULL, &jerr);
    if (s != NATS_OK)
        fprintf(stderr, "bench_nats: %s (%d)\n", natsStatus_GetText(s), (int)jerr);
    return s == NATS_OK ? 0 : -1;
}

static int
nats_pub_open(const bench_opts_t *o, unsigned idx, void **conn)
{
    (void)idx;
    return n_connect(o, (nconn_t **)conn);
}

static int
nats_publish(void *conn, uint64_t id)
{
    nconn_t *n = conn;
    natsStatus s;
    bench_payload(n->payload, id);
    if (n->window == 1) {
        jsPubAck *pa = NULL;
        jsErrCode jerr = 0;
        s = js_Publish(&pa, n->js, n->subject, n->payload, BENCH_PAYLOAD, NULL, &jerr);
        jsPubAck_Destroy(pa);
        if (s == NATS_OK)
            push(n, id);
    } else {
        s = js_PublishAsync(n->js, n->subject, n->payload, BENCH_PAYLOAD, NULL);
    }
    if (s != NATS_OK)
        fprintf(stderr, "bench_nats: publish: %s\n", natsStatus_GetText(s));
    return s == NATS_OK ? 0 : -1;
}

static int
nats_acks(void *conn, int timeout_ms, uint64_t *ids, size_t max)
{
    nconn_t *n = conn;
    size_t k = 0;
    pthread_mutex_lock(&n->mu);
    if (n->tail == n->head && timeout_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)timeout_ms * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&n->cv, &n->mu, &ts);
    }
    while (k < max && n->tail < n->head)
        ids[k++] = n->ring[n->tail++ % RING];
    pthread_mutex_unlock(&n->mu);
    return n->failed ? -1 : (int)k;
}

static void
nats_close(void *conn)
{
    nconn_t *n = conn;
    if (n == NULL)
        return;
    natsSubscription_Destroy(n->sub);
    jsCtx_Destroy(n->js);
    natsConnection_Destroy(n->nc);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    free(n->ring);
    free(n);
}

static int
nats_sub_open(const bench_opts_t *o, void **conn)
{
    nconn_t *n;
    if (n_connect(o, &n) < 0)
        return -1;
    *conn = n;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.ManualAck = true;
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.MaxAckPending = 1024;
    jsErrCode jerr = 0;
    natsStatus s = js_SubscribeSync(&n->sub, n->js, n->subject, NULL, &so, &jerr);
    if (s != NATS_OK)
        fprintf(stderr, "bench_nats: subscribe: %s (%d)\n", natsStatus_GetText(s), (int)jerr);
    return s == NATS_OK ? 0 : -1;
}

static int
nats_deliveries(void *conn, int timeout_ms, uint64_t *ids, size_t max)
{
    nconn_t *n = conn;
    size_t k = 0;
    while (k < max) {
        natsMsg *m = NULL;
        natsStatus s = natsSubscription_NextMsg(&m, n->sub, k == 0 ? timeout_ms : 0);
        if (s == NATS_TIMEOUT || (k > 0 && s != NATS_OK))
            break;
        if (s != NATS_OK) {
            fprintf(stderr, "bench_nats: next: %s\n", natsStatus_GetText(s));
            return -1;
        }
        ids[k++] = bench_payload_id(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
        s = natsMsg_Ack(m, NULL);
        natsMsg_Destroy(m);
        if (s != NATS_OK)
            return -1;
    }
    return (int)k;
}

static const bench_ops_t nats_ops = {
    .system = "nats",
    .pub_open = nats_pub_open,
    .publish = nats_publish,
    .acks = nats_acks,
    .pub_close = nats_close,
    .sub_open = nats_sub_open,
    .deliveries = nats_deliveries,
    .sub_close = nats_close,
};

int
main(int argc, char **argv)
{
    bench_opts_t o;
    if (bench_parse(argc, argv, &o) < 0 || o.port == 0)
        return 2;
    return bench_run(&nats_ops, &o);
}
