/* bench_ptibus: the scenarios against a running ptibusd. Publisher i connects with
 * the CURVE keys DIR/p<i+1>.{key,pub} (a different partner each) and publishes
 * referrals to the partner named by --target (1 KiB packed envelopes, each about one
 * of BENCH_PERSONS persons, as the broker's person index sees in real use); the e2e
 * consumer is that partner (keys DIR/<target>.{key,pub}) with credit 1024, and it
 * acknowledges every delivery. The broker's key is DIR/broker.pub. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "codec.h"
#include "driver.h"
#include "keys.h"
#include "samples.h"

#define E2E_CREDIT 1024

typedef struct pconn {
    client_t *c;
    td_sample_t s;
    char reason[BENCH_PAYLOAD];
    char prefix[48];
    char nir[16];
    const bench_opts_t *o;
} pconn_t;

static int
open_as(const bench_opts_t *o, const char *partner, uint32_t credit, client_t **out)
{
    char path[1024];
    uint8_t spk[32], sk[32], pk[32];
    pt_error_t err;
    snprintf(path, sizeof path, "%s/broker.pub", o->dir);
    if (keys_read(path, spk, 32, false, &err))
        goto fail;
    snprintf(path, sizeof path, "%s/%s.key", o->dir, partner);
    if (keys_read(path, sk, 32, true, &err))
        goto fail;
    snprintf(path, sizeof path, "%s/%s.pub", o->dir, partner);
    if (keys_read(path, pk, 32, false, &err))
        goto fail;
    client_options_t co = {.endpoint = o->endpoint,
                           .server_pk = spk,
                           .client_sk = sk,
                           .client_pk = pk,
                           .client_name = "ptibus-bench",
                           .initial_credit = credit};
    if (client_open(&co, out, &err))
        goto fail;
    char who[64];
    if (client_hello(*out, 5000, who, sizeof who, &err) == 0)
        return 0;
    client_close(out);
fail:
    fprintf(stderr, "bench_ptibus: %s: %s\n", partner, err.msg);
    return -1;
}

/* Pads the referral's free-text reason so that the packed envelope is 1 KiB. */
static void
size_envelope(pconn_t *p)
{
    p->s.referral.reason = p->reason;
    p->reason[0] = '\0';
    size_t base = protobuf_c_message_get_packed_size(&p->s.env.base);
    size_t pad = base + 3 < BENCH_PAYLOAD ? BENCH_PAYLOAD - base - 3 : 1;
    memset(p->reason, 'x', pad);
    p->reason[pad] = '\0';
}

static int
ptibus_pub_open(const bench_opts_t *o, unsigned idx, void **conn)
{
    pconn_t *p = calloc(1, sizeof *p);
    char partner[16];
    snprintf(partner, sizeof partner, "p%u", idx + 1);
    if (p == NULL || open_as(o, partner, 0, &p->c) < 0) {
        free(p);
        return -1;
    }
    p->o = o;
    snprintf(p->prefix, sizeof p->prefix, "%s-%s-", o->run_id, o->scenario);
    td_sample_referral(&p->s, "x", o->target ? o->target : "sink1");
    size_envelope(p);
    *conn = p;
    return 0;
}

static int
ptibus_publish(void *conn, uint64_t id)
{
    pconn_t *p = conn;
    pt_error_t err;
    snprintf(p->s.message_id, sizeof p->s.message_id, "%s%" PRIu64, p->prefix, id);
    bench_nir(p->nir, id, p->o->persons);
    p->s.person.nir = p->nir;
    for (int tries = 0; tries < 100000; tries++) {
        int rc = client_publish_async(p->c, &p->s.env, &err);
        if (rc != -EAGAIN) {
            if (rc != 0)
                fprintf(stderr, "bench_ptibus: publish: %s\n", err.msg);
            return rc;
        }
        nanosleep(&(struct timespec){.tv_nsec = 10000}, NULL);
    }
    fprintf(stderr, "bench_ptibus: publish: send queue full for 1 s\n");
    return -1;
}

/* The driver's number at the end of a message id of ours; UINT64_MAX if not ours. */
static uint64_t
id_of(const pconn_t *p, const char *mid)
{
    size_t n = strlen(p->prefix);
    if (mid == NULL || strncmp(mid, p->prefix, n) != 0)
        return UINT64_MAX;
    return strtoull(mid + n, NULL, 10);
}

static int
ptibus_acks(void *conn, int timeout_ms, uint64_t *ids, size_t max)
{
    pconn_t *p = conn;
    size_t n = 0;
    pt_error_t err;
    while (n < max) {
        Ptibus__V1__Frame *f;
        int rc = client_recv(p->c, n == 0 ? timeout_ms : 0, &f, &err);
        if (rc == PT_ETIMEOUT)
            break;
        if (rc != 0) {
            fprintf(stderr, "bench_ptibus: recv: %s\n", err.msg);
            return -1;
        }
        client_result_t res;
        const char *mid = NULL;
        if (client_result_from_frame(f, &res, &mid)) {
            if (res.nack_code != 0 || res.duplicate) {
                fprintf(stderr, "bench_ptibus: %s refused: %d %s\n", mid, res.nack_code,
                        res.reason);
                codec_free((ProtobufCMessage **)&f);
                return -1;
            }
            ids[n++] = id_of(p, mid);
        }
        codec_free((ProtobufCMessage **)&f);
    }
    return (int)n;
}

static void
ptibus_close(void *conn)
{
    pconn_t *p = conn;
    if (p == NULL)
        return;
    client_close(&p->c);
    free(p);
}

static int
ptibus_sub_open(const bench_opts_t *o, void **conn)
{
    pconn_t *p = calloc(1, sizeof *p);
    if (p == NULL || open_as(o, o->target ? o->target : "sink2", E2E_CREDIT, &p->c) < 0) {
        free(p);
        return -1;
    }
    p->o = o;
    snprintf(p->prefix, sizeof p->prefix, "%s-%s-", o->run_id, o->scenario);
    *conn = p;
    return 0;
}

static int
ptibus_deliveries(void *conn, int timeout_ms, uint64_t *ids, size_t max)
{
    pconn_t *p = conn;
    size_t n = 0;
    pt_error_t err;
    while (n < max) {
        Ptibus__V1__Frame *f;
        int rc = client_recv(p->c, n == 0 ? timeout_ms : 0, &f, &err);
        if (rc == PT_ETIMEOUT)
            break;
        if (rc != 0) {
            fprintf(stderr, "bench_ptibus: recv: %s\n", err.msg);
            return -1;
        }
        if (f->kind_case == PTIBUS__V1__FRAME__KIND_DELIVER) {
            rc = client_deliver_ack(p->c, f->deliver->seq, true, NULL, &err);
            if (!f->deliver->redelivery)
                ids[n++] = id_of(p, f->deliver->message_id);
        }
        codec_free((ProtobufCMessage **)&f);
        if (rc != 0) {
            fprintf(stderr, "bench_ptibus: deliver ack: %s\n", err.msg);
            return -1;
        }
    }
    return (int)n;
}

static const bench_ops_t ptibus_ops = {
    .system = "ptibus",
    .pub_open = ptibus_pub_open,
    .publish = ptibus_publish,
    .acks = ptibus_acks,
    .pub_close = ptibus_close,
    .sub_open = ptibus_sub_open,
    .deliveries = ptibus_deliveries,
    .sub_close = ptibus_close,
};

int
main(int argc, char **argv)
{
    bench_opts_t o;
    if (bench_parse(argc, argv, &o) < 0 || o.dir == NULL) {
        fprintf(stderr, "bench_ptibus: --dir KEYS and --endpoint are required\n");
        return 2;
    }
    return bench_run(&ptibus_ops, &o);
}
