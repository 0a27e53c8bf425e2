/* partner_cmd: acting as a partner, for the demo and partner integration checks:
 * publish proto3-JSON envelopes (exit codes for refusals), receive deliveries (kept in
 * a folder before they are acknowledged, or not acknowledged, or refused). */
#include "ctl.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "client.h"
#include "clock.h"
#include "atomicfile.h"
#include "codec.h"
#include "keys.h"
#include "pjson.h"

/* Reads the broker's public key and this side's key pair; sk is wiped by the caller. */
int
conn_read_keys(const char *server_pub, const char *key, const char *pub, uint8_t spk[PT_KEY_LEN],
               uint8_t sk[PT_KEY_LEN], uint8_t pk[PT_KEY_LEN], pt_error_t *err)
{
    int rc = keys_read(server_pub, spk, PT_KEY_LEN, false, err);
    if (rc == 0)
        rc = keys_read(key, sk, PT_KEY_LEN, true, err);
    if (rc == 0)
        rc = keys_read(pub, pk, PT_KEY_LEN, false, err);
    return rc;
}

static int
partner_connect(const ctl_t *ctl, client_t **c, pt_error_t *err)
{
    uint8_t spk[PT_KEY_LEN], sk[PT_KEY_LEN], pk[PT_KEY_LEN];
    const ctl_settings_t *s = &ctl->set;
    int rc = conn_read_keys(s->server_pub, s->key, s->pub, spk, sk, pk, err);
    client_options_t co = {.endpoint = s->endpoint,
                           .server_pk = spk,
                           .client_sk = sk,
                           .client_pk = pk,
                           .client_name = "ptibusctl"};
    if (rc == 0)
        rc = client_open(&co, c, err);
    sodium_memzero(sk, sizeof sk);
    return rc;
}

/* Loads the settings a partner command needs: the endpoint, the broker's key, a pair. */
static int
partner_settings(ctl_t *c)
{
    int rc = ctl_load(c);
    if (rc != 0)
        return rc;
    if (!ctl_need(c, c->set.endpoint, "--endpoint", "broker.endpoint") ||
        !ctl_need(c, c->set.server_pub, "--server-key", "broker.public_key") ||
        !ctl_need(c, c->set.key, "--as NAME or --key", "partners.keys_dir") ||
        !ctl_need(c, c->set.pub, "--as NAME or --pub", "partners.keys_dir"))
        return CTL_USAGE;
    return 0;
}

static const out_col_t publish_cols[] = {
    {"file", 28, false}, {"message_id", 38, false}, {"result", 10, false},
    {"seq", 8, true},    {"code", 20, false},       {"reason", 0, false},
};

/* The envelope of a JSON file: a UTF-8 BOM skipped, a file over the limit said too large
 * (pjson_parse_file). */
static ProtobufCMessage *
publish_read(const char *path)
{
    pt_error_t err;
    ProtobufCMessage *m = NULL;
    if (pjson_parse_file(&ptibus__v1__envelope__descriptor, path, PT_MAX_MESSAGE_SIZE * 4, &m,
                         &err) != 0)
        fprintf(stderr, "ptibusctl: publish: %s: %s\n", path, err.msg);
    return m;
}

/* Publishes one JSON envelope file; one row with the broker's answer. Returns the exit
 * code of this file: 0, CTL_REFUSED (final), CTL_RETRY (retryable) or CTL_FAILED. */
static int
publish_file(client_t *c, out_t *o, const char *path, int timeout_ms)
{
    ProtobufCMessage *m = publish_read(path);
    if (m == NULL)
        return CTL_FAILED;
    pt_error_t err;
    client_result_t res;
    int rc = client_publish(c, (Ptibus__V1__Envelope *)m, timeout_ms, &res, &err);
    const char *mid = ((Ptibus__V1__Envelope *)m)->message_id, *base = strrchr(path, '/');
    char seq[24];
    snprintf(seq, sizeof seq, "%" PRIu64, res.seq);
    if (rc != 0) {
        fprintf(stderr, "ptibusctl: publish: %s: %s: %s\n", path, esc(mid), err.msg);
        codec_free(&m);
        return rc == PT_ETIMEOUT ? CTL_RETRY : CTL_FAILED;
    }
    const ProtobufCEnumValue *code =
        res.nack_code ? protobuf_c_enum_descriptor_get_value(&ptibus__v1__nack_code__descriptor,
                                                             res.nack_code)
                      : NULL;
    const char *result = res.nack_code == 0 ? (res.duplicate ? "duplicate" : "accepted")
                         : res.retryable    ? "retry"
                                            : "refused";
    const char *row[] = {base ? base + 1 : path, mid,       result, seq,
                         code ? code->name : "", res.reason};
    out_row(o, row);
    codec_free(&m);
    return res.nack_code == 0 ? CTL_OK : res.retryable ? CTL_RETRY : CTL_REFUSED;
}

/* publish [--as NAME | --key K --pub P] [--endpoint E] FILE.json... */
int
cmd_publish(ctl_t *c, int argc, char **argv)
{
    static const struct option opts[] = {CTL_COMMON_OPTS, CTL_CONN_OPTS, {NULL, 0, NULL, 0}};
    int rc = ctl_parse(c, argc, argv, opts, NULL, NULL);
    if (rc == 0 && optind >= argc)
        rc = CTL_USAGE;
    if (rc == 0)
        rc = partner_settings(c);
    if (rc != 0)
        return rc;
    client_t *cl;
    pt_error_t err;
    if (partner_connect(c, &cl, &err) != 0)
        return fail(&err);
    out_t o;
    out_begin(&o, c->fmt, publish_cols, sizeof publish_cols / sizeof *publish_cols);
    int worst = CTL_OK;
    for (int i = optind; i < argc; i++) {
        int r = publish_file(cl, &o, argv[i], c->timeout_ms);
        /* The most serious outcome decides: failed, then refused, then retry. */
        if (r == CTL_FAILED || (r == CTL_REFUSED && worst != CTL_FAILED) || worst == CTL_OK)
            worst = r;
    }
    out_end(&o);
    client_close(&cl);
    return worst;
}

typedef struct receive_args {
    uint64_t count, wait_s;
    const char *dir;    /* --to DIR: each envelope written there (proto3 JSON) before its ack */
    bool no_ack;        /* --no-ack: never acknowledge (redelivery, then dead letter) */
    const char *refuse; /* --refuse REASON: acknowledge with CANNOT_PROCESS */
} receive_args_t;

/* Writes the delivered envelope to DIR/SEQ.json atomically (temp, fsync, rename, fsync
 * of the folder), mode 0600: it holds personal data. */
static int
receive_write(const receive_args_t *a, const Ptibus__V1__Deliver *d, const ProtobufCMessage *m)
{
    char path[4200], *json = NULL;
    pt_error_t err;
    int rc = m ? pjson_to_string(m, &json, &err) : -1;
    if (m == NULL)
        pt_error_set(&err, PT_EMALFORMED, "receive", "the envelope does not decode");
    snprintf(path, sizeof path, "%s/%" PRIu64 ".json", a->dir, d->seq);
    if (rc == 0)
        rc = atomicfile_write(path, json, strlen(json), 0600, &err);
    free(json);
    if (rc != 0)
        fprintf(stderr, "ptibusctl: receive: seq %" PRIu64 " not written, not acknowledged: %s\n",
                d->seq, err.msg);
    return rc;
}

/* Prints one delivery (audit fields only), keeps it if asked, then acknowledges it
 * (unless --no-ack; with --refuse, as CANNOT_PROCESS). Returns false when it could not
 * be kept (it is then not acknowledged: the broker delivers it again). */
static bool
receive_deliver(client_t *c, const receive_args_t *a, const Ptibus__V1__Deliver *d)
{
    ProtobufCMessage *m = NULL;
    pt_error_t err;
    const char *type = "?";
    if (codec_unpack(&ptibus__v1__envelope__descriptor, d->envelope.data, d->envelope.len,
                     PT_MAX_MESSAGE_SIZE * 4, &m, &err) == 0)
        type = codec_envelope_type((Ptibus__V1__Envelope *)m);
    printf("deliver seq %" PRIu64 " attempt %u%s%s: %s %s from %s\n", d->seq, d->attempt,
           d->redelivery ? " (redelivery)" : "", d->replay ? " (replay)" : "", type ? type : "?",
           esc(d->message_id), esc(d->sender));
    bool kept = a->dir == NULL || a->refuse || receive_write(a, d, m) == 0;
    codec_free(&m);
    if (!kept || a->no_ack)
        return kept;
    if (client_deliver_ack(c, d->seq, a->refuse == NULL, a->refuse, &err) != 0)
        fprintf(stderr, "ptibusctl: ack %" PRIu64 ": %s\n", d->seq, err.msg);
    return true;
}

static int
receive_opt(ctl_t *c, int code, const char *v, void *arg)
{
    (void)c;
    receive_args_t *a = arg;
    if (code == 'n')
        return args_u64("--count", v, 1, 1000000, &a->count) ? 0 : CTL_USAGE;
    if (code == 'w')
        return args_u64("--wait", v, 0, 3600, &a->wait_s) ? 0 : CTL_USAGE;
    if (code == 'd')
        a->dir = v;
    else if (code == 'a')
        a->no_ack = true;
    else if (code == 'r')
        a->refuse = v;
    else
        return CTL_USAGE;
    return 0;
}

static void
receive_receipt(const Ptibus__V1__Receipt *r)
{
    printf("receipt: %s %s by %s%s%s\n", esc(r->message_id),
           r->kind == PTIBUS__V1__RECEIPT_KIND__RECEIPT_KIND_ACKNOWLEDGED ? "acknowledged"
                                                                          : "dead-lettered",
           esc(r->recipient), r->reason[0] ? ": " : "", esc(r->reason));
}

/* receive [--as NAME | --key K --pub P] [--endpoint E] [--count N] [--wait S]: grants
 * only the credit --count asks (256 at most at a time). */
int
cmd_receive(ctl_t *c, int argc, char **argv)
{
    static const struct option opts[] = {{"count", required_argument, NULL, 'n'},
                                         {"wait", required_argument, NULL, 'w'},
                                         {"to", required_argument, NULL, 'd'},
                                         {"no-ack", no_argument, NULL, 'a'},
                                         {"refuse", required_argument, NULL, 'r'},
                                         CTL_COMMON_OPTS,
                                         CTL_CONN_OPTS,
                                         {NULL, 0, NULL, 0}};
    receive_args_t a = {.count = UINT64_MAX, .wait_s = 3}; /* UINT64_MAX: until --wait passes */
    int rc = ctl_parse(c, argc, argv, opts, receive_opt, &a);
    if (rc == 0 && optind != argc)
        rc = CTL_USAGE;
    if (rc == 0 && a.refuse && (a.no_ack || a.dir || !a.refuse[0]))
        rc = ctl_error(c, CTL_USAGE, "--refuse REASON: alone (not with --no-ack or --to)");
    if (rc == 0)
        rc = partner_settings(c);
    if (rc != 0)
        return rc;
    client_t *cl;
    pt_error_t err;
    char who[64];
    uint32_t credit = a.count < 256 ? (uint32_t)a.count : 256;
    if (partner_connect(c, &cl, &err) != 0 || client_hello(cl, 5000, who, sizeof who, &err) != 0 ||
        client_credit(cl, credit, &err) != 0)
        return fail(&err);
    uint64_t got = 0;
    Ptibus__V1__Frame *f;
    /* --wait: seconds without a delivery (heartbeats and receipts do not count). */
    int64_t idle_until = pt_clock_mono_ms() + (int64_t)a.wait_s * 1000, now;
    while (got < a.count && (now = pt_clock_mono_ms()) < idle_until &&
           client_recv(cl, (int)(idle_until - now), &f, &err) == 0) {
        if (f->kind_case == PTIBUS__V1__FRAME__KIND_DELIVER) {
            if (!receive_deliver(cl, &a, f->deliver))
                rc = CTL_FAILED;
            got++;
            idle_until = pt_clock_mono_ms() + (int64_t)a.wait_s * 1000;
            if (a.count - got >= 256)
                client_credit(cl, 1, &err); /* keep 256 in flight, never more than asked */
        } else if (f->kind_case == PTIBUS__V1__FRAME__KIND_RECEIPT) {
            receive_receipt(f->receipt);
        }
        codec_free((ProtobufCMessage **)&f);
    }
    /* Give the last acknowledgements time to leave before the socket closes. */
    client_recv(cl, 200, &f, &err);
    codec_free((ProtobufCMessage **)&f);
    client_close(&cl);
    printf("%s: %" PRIu64 " messages received%s\n", who, got,
           a.no_ack   ? ", none acknowledged"
           : a.refuse ? ", refused (CANNOT_PROCESS)"
                      : " and acknowledged");
    return rc;
}
