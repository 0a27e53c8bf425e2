/* partner_cmd: acting as a partner, for the demo and partner integration checks:
 * publish proto3-JSON envelopes, receive and acknowledge deliveries. */
#include "ctl.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "client.h"
#include "codec.h"
#include "keys.h"
#include "pjson.h"

/* Reads the broker's public key and this side's key pair; sk is wiped by the caller. */
int
conn_read_keys(const publish_opts_t *o, uint8_t spk[PT_KEY_LEN], uint8_t sk[PT_KEY_LEN],
               uint8_t pk[PT_KEY_LEN], pt_error_t *err)
{
    int rc = keys_read(o->server_pub, spk, PT_KEY_LEN, false, err);
    if (rc == 0)
        rc = keys_read(o->key, sk, PT_KEY_LEN, true, err);
    if (rc == 0)
        rc = keys_read(o->pub, pk, PT_KEY_LEN, false, err);
    return rc;
}

static int
publish_connect(const publish_opts_t *o, client_t **c, pt_error_t *err)
{
    uint8_t spk[PT_KEY_LEN], sk[PT_KEY_LEN], pk[PT_KEY_LEN];
    int rc = conn_read_keys(o, spk, sk, pk, err);
    client_options_t co = {.endpoint = o->endpoint,
                           .server_pk = spk,
                           .client_sk = sk,
                           .client_pk = pk,
                           .client_name = "ptibusctl"};
    if (rc == 0)
        rc = client_open(&co, c, err);
    sodium_memzero(sk, sizeof sk);
    return rc;
}

/* Publishes one JSON envelope file; prints one line with the broker's answer. */
static int
publish_file(client_t *c, const char *path, int timeout_ms)
{
    pt_error_t err;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "ptibusctl: %s: %s\n", path, strerror(errno));
        return 1;
    }
    char *text = malloc(PT_MAX_MESSAGE_SIZE * 4);
    size_t len = text ? fread(text, 1, PT_MAX_MESSAGE_SIZE * 4, f) : 0;
    fclose(f);
    ProtobufCMessage *m = NULL;
    int rc = pjson_parse(&ptibus__v1__envelope__descriptor, text, len, PT_MAX_MESSAGE_SIZE * 4, &m,
                         &err);
    free(text);
    if (rc != 0) {
        fprintf(stderr, "ptibusctl: %s: %s\n", path, err.msg);
        return 1;
    }
    client_result_t res;
    rc = client_publish(c, (Ptibus__V1__Envelope *)m, timeout_ms, &res, &err);
    const char *mid = ((Ptibus__V1__Envelope *)m)->message_id;
    if (rc != 0)
        fprintf(stderr, "ptibusctl: %s: %s: %s\n", path, mid, err.msg);
    else if (res.nack_code == 0)
        printf("%s: %s accepted, seq %" PRIu64 "%s\n", path, mid, res.seq,
               res.duplicate ? " (duplicate)" : "");
    else
        printf(
            "%s: %s refused (%s): %s\n", path, mid,
            protobuf_c_enum_descriptor_get_value(&ptibus__v1__nack_code__descriptor, res.nack_code)
                ->name,
            esc(res.reason));
    codec_free(&m);
    return rc != 0 ? 1 : 0;
}

/* publish --endpoint E --server-key broker.pub --key me.key --pub me.pub FILE.json... */
int
cmd_publish(int argc, char **argv)
{
    static const struct option opts[] = {{"endpoint", required_argument, NULL, 'e'},
                                         {"server-key", required_argument, NULL, 's'},
                                         {"key", required_argument, NULL, 'k'},
                                         {"pub", required_argument, NULL, 'p'},
                                         {NULL, 0, NULL, 0}};
    publish_opts_t o = {.endpoint = "tcp://127.0.0.1:7400", .timeout_ms = 10000};
    int c;
    while ((c = getopt_long(argc, argv, "e:s:k:p:", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            o.endpoint = optarg;
            break;
        case 's':
            o.server_pub = optarg;
            break;
        case 'k':
            o.key = optarg;
            break;
        case 'p':
            o.pub = optarg;
            break;
        default:
            return 2;
        }
    }
    if (!o.server_pub || !o.key || !o.pub || optind >= argc)
        return 2;
    client_t *cl;
    pt_error_t err;
    if (publish_connect(&o, &cl, &err) != 0)
        return fail(&err);
    int rc = 0;
    for (int i = optind; i < argc; i++)
        rc |= publish_file(cl, argv[i], o.timeout_ms);
    client_close(&cl);
    return rc;
}

/* Prints one delivery (audit fields only) and acknowledges it. */
static void
receive_deliver(client_t *c, const Ptibus__V1__Deliver *d)
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
    codec_free(&m);
    if (client_deliver_ack(c, d->seq, true, NULL, &err) != 0)
        fprintf(stderr, "ptibusctl: ack %" PRIu64 ": %s\n", d->seq, err.msg);
}

/* receive --endpoint E --server-key B.pub --key ME.key --pub ME.pub [--count N] [--wait S] */
int
cmd_receive(int argc, char **argv)
{
    static const struct option opts[] = {{"endpoint", required_argument, NULL, 'e'},
                                         {"server-key", required_argument, NULL, 's'},
                                         {"key", required_argument, NULL, 'k'},
                                         {"pub", required_argument, NULL, 'p'},
                                         {"count", required_argument, NULL, 'n'},
                                         {"wait", required_argument, NULL, 'w'},
                                         {NULL, 0, NULL, 0}};
    publish_opts_t o = {.endpoint = "tcp://127.0.0.1:7400"};
    uint64_t count = UINT64_MAX, wait_s = 3; /* count UINT64_MAX: until --wait passes */
    bool ok = true;
    int c;
    while (ok && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'e')
            o.endpoint = optarg;
        else if (c == 's')
            o.server_pub = optarg;
        else if (c == 'k')
            o.key = optarg;
        else if (c == 'p')
            o.pub = optarg;
        else if (c == 'n')
            ok = args_u64("--count", optarg, 1, 1000000, &count);
        else if (c == 'w')
            ok = args_u64("--wait", optarg, 0, 3600, &wait_s);
        else
            return 2;
    }
    if (!ok || !o.server_pub || !o.key || !o.pub || optind != argc)
        return CTL_USAGE;
    client_t *cl;
    pt_error_t err;
    char who[64];
    if (publish_connect(&o, &cl, &err) != 0 || client_hello(cl, 5000, who, sizeof who, &err) != 0 ||
        client_credit(cl, 256, &err) != 0)
        return fail(&err);
    uint64_t got = 0;
    Ptibus__V1__Frame *f;
    while (got < count && client_recv(cl, (int)wait_s * 1000, &f, &err) == 0) {
        if (f->kind_case == PTIBUS__V1__FRAME__KIND_DELIVER) {
            receive_deliver(cl, f->deliver);
            got++;
        } else if (f->kind_case == PTIBUS__V1__FRAME__KIND_RECEIPT) {
            printf("receipt: %s %s by %s%s%s\n", esc(f->receipt->message_id),
                   f->receipt->kind == PTIBUS__V1__RECEIPT_KIND__RECEIPT_KIND_ACKNOWLEDGED
                       ? "acknowledged"
                       : "dead-lettered",
                   esc(f->receipt->recipient), f->receipt->reason[0] ? ": " : "",
                   esc(f->receipt->reason));
        }
        codec_free((ProtobufCMessage **)&f);
    }
    /* Give the last acknowledgements time to leave before the socket closes. */
    client_recv(cl, 200, &f, &err);
    codec_free((ProtobufCMessage **)&f);
    client_close(&cl);
    printf("%s: %" PRIu64 " messages received and acknowledged\n", who, got);
    return 0;
}
