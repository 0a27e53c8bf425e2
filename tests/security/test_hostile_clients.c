/* Randomized hostile clients against a real ptibusd (issue 15, "Bad input: a clear
 * refusal, and everyone else keeps being served"). A seeded PRNG (printed; set
 * PT_HOSTILE_SEED to replay a client's sequence of actions) drives several hostile
 * clients at once, each in its own thread with its own connections:
 *  - two authenticated partners (pole_emploi, msa) sending garbage, truncated frames,
 *    oversize frames (TOO_LARGE, and beyond ZMQ_MAXMSGSIZE: the connection is cut),
 *    messages of several parts, floods of Hello, frames out of order or of kinds only
 *    the broker sends, unknown enum values and frame kinds, deep nesting, huge repeated
 *    fields; each checks its answer as docs/protocol.md documents it;
 *  - a greedy recipient (ml_nord) that says Hello again and again with all the credit
 *    there is and never reads, while pole_emploi sends it a backlog without reading its
 *    acks: the broker's RssAnon must stay bounded;
 *  - thousands of connections opening and closing: an unknown key, no CURVE, and an
 *    authenticated partner (region) whose handshakes the per-partner rate refuses;
 *  - an administrator sending garbage, several parts, unknown kinds, limits above the
 *    maximum and requests above 64 KiB to the admin socket, and a partner key there.
 * Meanwhile caf publishes at a steady rate to the Département, which must get every
 * message with no error; the publish->ack p99 is printed beside a baseline measured
 * first without hostile clients. The only bound asserted on it is a generous one (a
 * shared 2-core CI machine makes tight latency assertions flaky): p99 < 20 x baseline
 * + 250 ms. At the end the broker is alive, answers, stops cleanly and its journal
 * verifies. PT_HOSTILE_SECONDS sets the hostile phase (default 20 s; tests/run.sh
 * --soak runs it for 600 s). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "codec.h"
#include "daemon.h"
#include "journal.h"
#include "keys.h"
#include "ptibus/v1/admin.pb-c.h"
#include "samples.h"
#include "testutil.h"

#define ANSWER_MS 5000             /* a documented answer comes within this */
#define SILENCE_MS 300             /* how long "no answer" is watched */
#define GOOD_PERIOD_MS 20          /* the well-behaved partner publishes 50 messages a second */
#define BASELINE_MS 5000           /* the baseline phase, without hostile clients */
#define MAX_GOOD 200000            /* publishes recorded */
#define MAX_GROWTH_KIB (16 * 1024) /* broker RssAnon growth allowed (5 MiB measured) */
#define MAX_IN_FLIGHT 256          /* the default delivery.max_in_flight */
#define ACK_TIMEOUT_S 30
#define MAX_MSG (256 * 1024) /* the default limits.max_message_size */
#define GREEDY_MAX 3000      /* messages the greedy partner publishes at most */

/* ---- seeded PRNG (splitmix64): one stream per client ---- */

static uint64_t
rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint32_t
rng_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)(rng_next(s) % n);
}

/* ---- what each client saw ---- */

typedef struct tally {
    const char *who;
    uint64_t actions, answers, failures;
    char first_failure[256];
} tally_t;

typedef struct hx {
    td_net_t net;
    uint64_t seed;
    atomic_bool stop;  /* the hostile clients stop */
    atomic_bool quiet; /* the good publisher stops */
    void *zctx;        /* shared by the hostile clients' sockets */
    /* the well-behaved pair */
    int64_t *lat_ms;
    atomic_size_t published;
    size_t baseline_n;
    uint8_t *seen; /* per good message index: delivered to the Département */
    atomic_size_t delivered;
    tally_t good_pub, good_sub;
} hx_t;

static void
tally_fail(tally_t *t, const char *fmt, ...)
{
    t->failures++;
    if (t->first_failure[0] != '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->first_failure, sizeof t->first_failure, fmt, ap);
    va_end(ap);
}

/* ---- raw sockets: the hostile clients do not use libptibus's client ---- */

/* A DEALER to endpoint with keyname's CURVE key pair (NULL: no CURVE). */
static void *
raw_open(hx_t *x, const char *endpoint, const char *keyname, int rcvhwm)
{
    void *s = zmq_socket(x->zctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (rcvhwm > 0)
        zmq_setsockopt(s, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    if (keyname != NULL) {
        uint8_t sk[32], pk[32];
        char path[4300];
        pt_error_t err;
        snprintf(path, sizeof path, "%s/keys/%s.key", x->net.dir, keyname);
        int rc = keys_read(path, sk, 32, true, &err);
        snprintf(path, sizeof path, "%s/keys/%s.pub", x->net.dir, keyname);
        if (rc != 0 || keys_read(path, pk, 32, false, &err) != 0)
            abort();
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, x->net.server_pk, 32);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pk, 32);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sk, 32);
    }
    if (zmq_connect(s, endpoint) != 0)
        abort();
    return s;
}

static void
raw_close(void **s)
{
    if (*s)
        zmq_close(*s);
    *s = NULL;
}

static void
send_bytes(void *s, const void *buf, size_t len, int parts)
{
    for (int i = 0; i < parts; i++)
        zmq_send(s, buf, len, ZMQ_DONTWAIT | (i + 1 < parts ? ZMQ_SNDMORE : 0));
}

static void
send_frame(void *s, const Ptibus__V1__Frame *f)
{
    uint8_t *buf;
    size_t len;
    pt_error_t err;
    if (codec_pack(&f->base, SIZE_MAX, &buf, &len, &err) != 0)
        abort();
    send_bytes(s, buf, len, 1);
    free(buf);
}

/* The next frame from the broker that is not a Deliver, Heartbeat or Receipt (those
 * may come at any time), within ms; NULL if none. */
static Ptibus__V1__Frame *
recv_answer(void *s, int ms)
{
    int64_t deadline = tu_now_ms() + ms;
    for (;;) {
        int left = (int)(deadline - tu_now_ms());
        zmq_pollitem_t it = {.socket = s, .events = ZMQ_POLLIN};
        if (left <= 0 || zmq_poll(&it, 1, left) != 1)
            return NULL;
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, 0) < 0) {
            zmq_msg_close(&m);
            return NULL;
        }
        ProtobufCMessage *f = NULL;
        pt_error_t err;
        int rc = codec_unpack_lenient(&ptibus__v1__frame__descriptor, zmq_msg_data(&m),
                                      zmq_msg_size(&m), 1 << 26, &f, &err);
        zmq_msg_close(&m);
        if (rc != 0)
            return NULL;
        Ptibus__V1__Frame *fr = (Ptibus__V1__Frame *)f;
        if (fr->kind_case != PTIBUS__V1__FRAME__KIND_DELIVER &&
            fr->kind_case != PTIBUS__V1__FRAME__KIND_HEARTBEAT &&
            fr->kind_case != PTIBUS__V1__FRAME__KIND_RECEIPT)
            return fr;
        codec_free(&f);
    }
}

/* ---- the hostile partner: one action, one documented answer ---- */

typedef struct partner_ctx {
    hx_t *x;
    const char *key;
    uint64_t rng;
    void *sess;   /* said Hello (when has_session) */
    void *nosess; /* never says Hello */
    bool has_session;
    tally_t t;
} partner_ctx_t;

#define CODES(...)                                                                                 \
    (const int[])                                                                                  \
    {                                                                                              \
        __VA_ARGS__, -1                                                                            \
    }

/* Expects a Nack on s with one of codes (-1 terminated) and, if path is set, that
 * field_path; returns whether it came. */
static bool
expect_nack(partner_ctx_t *c, void *s, const char *what, const int *codes, const char *path)
{
    Ptibus__V1__Frame *f = recv_answer(s, ANSWER_MS);
    if (f == NULL) {
        tally_fail(&c->t, "%s: no answer within %d ms", what, ANSWER_MS);
        return false;
    }
    bool ok = false;
    if (f->kind_case == PTIBUS__V1__FRAME__KIND_NACK) {
        for (int i = 0; codes[i] >= 0; i++)
            ok |= (int)f->nack->code == codes[i];
        if (path && strcmp(f->nack->field_path, path) != 0)
            ok = false;
    }
    if (!ok)
        tally_fail(&c->t, "%s: answered kind %d code %d path '%s'", what, f->kind_case,
                   f->kind_case == PTIBUS__V1__FRAME__KIND_NACK ? (int)f->nack->code : 0,
                   f->kind_case == PTIBUS__V1__FRAME__KIND_NACK ? f->nack->field_path : "");
    else
        c->t.answers++;
    codec_free((ProtobufCMessage **)&f);
    return ok;
}

static void
frame_hello(Ptibus__V1__Frame *f, Ptibus__V1__Hello *h, uint32_t version, uint32_t credit)
{
    *h = (Ptibus__V1__Hello)PTIBUS__V1__HELLO__INIT;
    h->protocol_version = version;
    h->client_name = "hostile";
    h->software_version = "0";
    h->initial_credit = credit;
    *f = (Ptibus__V1__Frame)PTIBUS__V1__FRAME__INIT;
    f->kind_case = PTIBUS__V1__FRAME__KIND_HELLO;
    f->hello = h;
}

/* n Hellos back to back: n Welcomes, in order. */
static void
act_hello_flood(partner_ctx_t *c)
{
    Ptibus__V1__Frame f;
    Ptibus__V1__Hello h;
    uint32_t n = 1 + rng_below(&c->rng, 40);
    frame_hello(&f, &h, 1, rng_below(&c->rng, 3) == 0 ? UINT32_MAX : 4);
    for (uint32_t i = 0; i < n; i++)
        send_frame(c->sess, &f);
    for (uint32_t i = 0; i < n; i++) {
        Ptibus__V1__Frame *a = recv_answer(c->sess, ANSWER_MS);
        if (a == NULL || a->kind_case != PTIBUS__V1__FRAME__KIND_WELCOME) {
            tally_fail(&c->t, "hello flood: answer %u of %u is %s", i + 1, n,
                       a ? "not a Welcome" : "missing");
            codec_free((ProtobufCMessage **)&a);
            return;
        }
        codec_free((ProtobufCMessage **)&a);
    }
    c->t.answers += n;
    c->has_session = true;
}

static void
ensure_session(partner_ctx_t *c)
{
    if (!c->has_session) {
        Ptibus__V1__Frame f;
        Ptibus__V1__Hello h;
        frame_hello(&f, &h, 1, 4);
        send_frame(c->sess, &f);
        Ptibus__V1__Frame *a = recv_answer(c->sess, ANSWER_MS);
        if (a == NULL || a->kind_case != PTIBUS__V1__FRAME__KIND_WELCOME)
            tally_fail(&c->t, "hello: no Welcome");
        codec_free((ProtobufCMessage **)&a);
        c->has_session = true;
    }
}

/* Random bytes that are never a protobuf message: the first byte is a tag of wire type
 * 7, which does not exist. */
static void
act_garbage(partner_ctx_t *c)
{
    uint8_t buf[2048];
    size_t len = 1 + rng_below(&c->rng, sizeof buf);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)rng_next(&c->rng);
    buf[0] = (uint8_t)((rng_below(&c->rng, 15) + 1) << 3 | 7);
    send_bytes(c->nosess, buf, len, 1);
    expect_nack(c, c->nosess, "garbage", CODES(PTIBUS__V1__NACK_CODE__NACK_CODE_MALFORMED), NULL);
}

/* A valid Publish frame of this partner, packed; caller frees. */
static uint8_t *
publish_bytes(partner_ctx_t *c, size_t *len)
{
    td_sample_t s;
    char id[48];
    snprintf(id, sizeof id, "hx-%s-%" PRIu64, c->key, c->t.actions);
    if (strcmp(c->key, "msa") == 0)
        td_sample_beneficiary_event(&s, id);
    else
        td_sample_referral(&s, id, "region");
    uint8_t *env;
    size_t env_len;
    pt_error_t err;
    if (codec_pack(&s.env.base, SIZE_MAX, &env, &env_len, &err) != 0)
        abort();
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Publish p = PTIBUS__V1__PUBLISH__INIT;
    p.message_id = id;
    p.envelope = (ProtobufCBinaryData){env_len, env};
    f.kind_case = PTIBUS__V1__FRAME__KIND_PUBLISH;
    f.publish = &p;
    uint8_t *buf;
    if (codec_pack(&f.base, SIZE_MAX, &buf, len, &err) != 0)
        abort();
    free(env);
    return buf;
}

/* A Publish cut short: not a frame (MALFORMED), or, cut at a field boundary, a frame
 * whose envelope is incomplete (INVALID or MALFORMED). */
static void
act_truncated(partner_ctx_t *c)
{
    size_t len;
    uint8_t *buf = publish_bytes(c, &len);
    size_t cut = 1 + rng_below(&c->rng, (uint32_t)len - 1);
    send_bytes(c->nosess, buf, cut, 1);
    free(buf);
    expect_nack(
        c, c->nosess, "truncated frame",
        CODES(PTIBUS__V1__NACK_CODE__NACK_CODE_MALFORMED, PTIBUS__V1__NACK_CODE__NACK_CODE_INVALID),
        NULL);
}

/* A valid frame in 2..64 parts (or empty parts): MALFORMED, refused whole. */
static void
act_multipart(partner_ctx_t *c)
{
    size_t len;
    uint8_t *buf = publish_bytes(c, &len);
    int parts = 2 + (int)rng_below(&c->rng, 63);
    send_bytes(c->nosess, buf, rng_below(&c->rng, 4) == 0 ? 0 : len, parts);
    free(buf);
    expect_nack(c, c->nosess, "multi-part message",
                CODES(PTIBUS__V1__NACK_CODE__NACK_CODE_MALFORMED), NULL);
}

/* A Publish whose envelope bytes are over limits.max_message_size: TOO_LARGE. */
static void
act_too_large(partner_ctx_t *c)
{
    size_t n = MAX_MSG + 1 + rng_below(&c->rng, MAX_MSG / 2);
    uint8_t *env = malloc(n);
    for (size_t i = 0; i < n; i++)
        env[i] = (uint8_t)i;
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Publish p = PTIBUS__V1__PUBLISH__INIT;
    p.message_id = "hx-too-large";
    p.envelope = (ProtobufCBinaryData){n, env};
    f.kind_case = PTIBUS__V1__FRAME__KIND_PUBLISH;
    f.publish = &p;
    send_frame(c->nosess, &f);
    free(env);
    expect_nack(c, c->nosess, "oversize envelope",
                CODES(PTIBUS__V1__NACK_CODE__NACK_CODE_TOO_LARGE), NULL);
}

/* A message over the socket's ZMQ_MAXMSGSIZE (2 x max_message_size + framing): the
 * connection is cut, nothing is answered; a new connection is served. */
static void
act_cut(partner_ctx_t *c)
{
    size_t n = 2 * MAX_MSG + 4096 + rng_below(&c->rng, MAX_MSG);
    uint8_t *buf = calloc(1, n);
    send_bytes(c->nosess, buf, n, 1);
    free(buf);
    Ptibus__V1__Frame *a = recv_answer(c->nosess, SILENCE_MS);
    if (a != NULL)
        tally_fail(&c->t, "message over ZMQ_MAXMSGSIZE: answered (kind %d)", a->kind_case);
    else
        c->t.answers++;
    codec_free((ProtobufCMessage **)&a);
    raw_close(&c->nosess);
    c->nosess = raw_open(c->x, c->x->net.endpoint, c->key, 0);
}

/* Frames that need a session, on a connection that never said Hello: PROTOCOL with
 * field_path "session". */
static void
act_out_of_order(partner_ctx_t *c)
{
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__DeliverAck da = PTIBUS__V1__DELIVER_ACK__INIT;
    Ptibus__V1__Credit cr = PTIBUS__V1__CREDIT__INIT;
    Ptibus__V1__Heartbeat hb = PTIBUS__V1__HEARTBEAT__INIT;
    switch (rng_below(&c->rng, 3)) {
    case 0:
        da.seq = rng_next(&c->rng) % 100000;
        da.status = PTIBUS__V1__DELIVER_ACK_STATUS__DELIVER_ACK_STATUS_OK;
        f.kind_case = PTIBUS__V1__FRAME__KIND_DELIVER_ACK;
        f.deliver_ack = &da;
        break;
    case 1:
        cr.credit = (uint32_t)rng_next(&c->rng);
        f.kind_case = PTIBUS__V1__FRAME__KIND_CREDIT;
        f.credit = &cr;
        break;
    default:
        f.kind_case = PTIBUS__V1__FRAME__KIND_HEARTBEAT;
        f.heartbeat = &hb;
        break;
    }
    send_frame(c->nosess, &f);
    expect_nack(c, c->nosess, "frame before Hello",
                CODES(PTIBUS__V1__NACK_CODE__NACK_CODE_PROTOCOL), "session");
}

/* Frames only the broker sends, and an empty part: PROTOCOL. */
static void
act_wrong_kind(partner_ctx_t *c)
{
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Welcome w = PTIBUS__V1__WELCOME__INIT;
    Ptibus__V1__PublishAck pa = PTIBUS__V1__PUBLISH_ACK__INIT;
    Ptibus__V1__Nack n = PTIBUS__V1__NACK__INIT;
    Ptibus__V1__Receipt r = PTIBUS__V1__RECEIPT__INIT;
    switch (rng_below(&c->rng, 5)) {
    case 0:
        w.partner_id = "departement";
        f.kind_case = PTIBUS__V1__FRAME__KIND_WELCOME;
        f.welcome = &w;
        break;
    case 1:
        pa.message_id = "x";
        pa.seq = 1;
        f.kind_case = PTIBUS__V1__FRAME__KIND_PUBLISH_ACK;
        f.publish_ack = &pa;
        break;
    case 2:
        n.code = PTIBUS__V1__NACK_CODE__NACK_CODE_PROTOCOL;
        f.kind_case = PTIBUS__V1__FRAME__KIND_NACK;
        f.nack = &n;
        break;
    case 3:
        r.message_id = "x";
        r.recipient = "departement";
        f.kind_case = PTIBUS__V1__FRAME__KIND_RECEIPT;
        f.receipt = &r;
        break;
    default:
        send_bytes(c->nosess, "", 0, 1); /* an empty frame: no kind */
        expect_nack(c, c->nosess, "empty frame", CODES(PTIBUS__V1__NACK_CODE__NACK_CODE_PROTOCOL),
                    NULL);
        return;
    }
    send_frame(c->nosess, &f);
    expect_nack(c, c->nosess, "broker-only frame kind",
                CODES(PTIBUS__V1__NACK_CODE__NACK_CODE_PROTOCOL), NULL);
}

/* Unknown enum values: a DeliverAck status 3..2^31 (PROTOCOL), a Hello of another
 * protocol version (PROTOCOL), a frame kind the contract does not define (a field
 * number outside the oneof: INVALID naming it). */
static void
act_unknown_enum(partner_ctx_t *c)
{
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    uint32_t pick = rng_below(&c->rng, 3);
    if (pick == 0) {
        /* validation.md: a value outside the enum is INVALID, naming the field;
         * UNSPECIFIED is a valid value, but no answer to a delivery: PROTOCOL. */
        ensure_session(c);
        Ptibus__V1__DeliverAck da = PTIBUS__V1__DELIVER_ACK__INIT;
        bool unspecified = rng_below(&c->rng, 4) == 0;
        da.seq = 1 + rng_below(&c->rng, 1000);
        da.status =
            (Ptibus__V1__DeliverAckStatus)(unspecified ? 0 : 3 + rng_below(&c->rng, 1u << 30));
        f.kind_case = PTIBUS__V1__FRAME__KIND_DELIVER_ACK;
        f.deliver_ack = &da;
        send_frame(c->sess, &f);
        if (unspecified)
            expect_nack(c, c->sess, "DeliverAck UNSPECIFIED",
                        CODES(PTIBUS__V1__NACK_CODE__NACK_CODE_PROTOCOL), NULL);
        else
            expect_nack(c, c->sess, "DeliverAck of an unknown status",
                        CODES(PTIBUS__V1__NACK_CODE__NACK_CODE_INVALID), "deliverAck.status");
    } else if (pick == 1) {
        Ptibus__V1__Hello h;
        frame_hello(&f, &h, 2 + rng_below(&c->rng, 1000), 4);
        send_frame(c->nosess, &f);
        expect_nack(c, c->nosess, "Hello of an unknown version",
                    CODES(PTIBUS__V1__NACK_CODE__NACK_CODE_PROTOCOL), NULL);
    } else {
        /* field 21..2047, length-delimited, empty: a kind this build does not know */
        uint32_t field = 21 + rng_below(&c->rng, 2027);
        uint8_t buf[8];
        size_t n = 0;
        uint32_t tag = field << 3 | 2;
        while (tag >= 0x80) {
            buf[n++] = (uint8_t)(tag | 0x80);
            tag >>= 7;
        }
        buf[n++] = (uint8_t)tag;
        buf[n++] = 0;
        send_bytes(c->nosess, buf, n, 1);
        expect_nack(c, c->nosess, "unknown frame kind",
                    CODES(PTIBUS__V1__NACK_CODE__NACK_CODE_INVALID,
                          PTIBUS__V1__NACK_CODE__NACK_CODE_PROTOCOL),
                    NULL);
    }
}

/* Appends a varint; returns its length. */
static size_t
put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* An envelope nested `depth` deep in an unknown length-delimited field (the protocol
 * carries no JSON: this is its deep input), in a Publish: INVALID or MALFORMED. Built
 * from the inside out in buf (cap bytes). */
static void
act_deep(partner_ctx_t *c)
{
    size_t cap = 64 * 1024, end = cap, depth = 100 + rng_below(&c->rng, 5000);
    uint8_t *buf = malloc(cap), tmp[16];
    for (size_t i = 0; i < depth && end > 32; i++) {
        size_t inner = cap - end;
        size_t n = put_varint(tmp, (uint64_t)(99 << 3 | 2));
        n += put_varint(tmp + n, inner);
        end -= n;
        memcpy(buf + end, tmp, n);
    }
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Publish p = PTIBUS__V1__PUBLISH__INIT;
    p.message_id = "hx-deep";
    p.envelope = (ProtobufCBinaryData){cap - end, buf + end};
    f.kind_case = PTIBUS__V1__FRAME__KIND_PUBLISH;
    f.publish = &p;
    send_frame(c->nosess, &f);
    free(buf);
    expect_nack(
        c, c->nosess, "deeply nested envelope",
        CODES(PTIBUS__V1__NACK_CODE__NACK_CODE_INVALID, PTIBUS__V1__NACK_CODE__NACK_CODE_MALFORMED),
        NULL);
}

/* A valid message with thousands of recipients: INVALID naming `recipients`. */
static void
act_huge_repeated(partner_ctx_t *c)
{
    td_sample_t s;
    char id[48];
    snprintf(id, sizeof id, "hx-rep-%s-%" PRIu64, c->key, c->t.actions);
    if (strcmp(c->key, "msa") == 0)
        td_sample_beneficiary_event(&s, id);
    else
        td_sample_referral(&s, id, "region");
    size_t n = 1000 + rng_below(&c->rng, 20000);
    char **rec = malloc(n * sizeof *rec);
    for (size_t i = 0; i < n; i++)
        rec[i] = "region";
    s.env.recipients = rec;
    s.env.n_recipients = n;
    uint8_t *env;
    size_t len;
    pt_error_t err;
    if (codec_pack(&s.env.base, SIZE_MAX, &env, &len, &err) != 0)
        abort();
    free(rec);
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Publish p = PTIBUS__V1__PUBLISH__INIT;
    p.message_id = id;
    p.envelope = (ProtobufCBinaryData){len, env};
    f.kind_case = PTIBUS__V1__FRAME__KIND_PUBLISH;
    f.publish = &p;
    send_frame(c->nosess, &f);
    free(env);
    Ptibus__V1__Frame *a = recv_answer(c->nosess, ANSWER_MS);
    bool ok = a && a->kind_case == PTIBUS__V1__FRAME__KIND_NACK &&
              ((a->nack->code == PTIBUS__V1__NACK_CODE__NACK_CODE_INVALID &&
                strcmp(a->nack->field_path, "recipients") == 0) ||
               (len > MAX_MSG && a->nack->code == PTIBUS__V1__NACK_CODE__NACK_CODE_TOO_LARGE));
    if (!ok)
        tally_fail(&c->t, "%zu recipients: %s", n, a ? "not the documented Nack" : "no answer");
    else
        c->t.answers++;
    codec_free((ProtobufCMessage **)&a);
}

typedef void (*partner_act_fn)(partner_ctx_t *c);

static const struct {
    partner_act_fn fn;
    unsigned weight;
} partner_acts[] = {
    {act_garbage, 10}, {act_truncated, 10},    {act_multipart, 6},   {act_too_large, 2},
    {act_cut, 1},      {act_out_of_order, 10}, {act_wrong_kind, 6},  {act_unknown_enum, 8},
    {act_deep, 4},     {act_huge_repeated, 3}, {act_hello_flood, 3},
};

static partner_act_fn
pick_act(uint64_t *rng)
{
    unsigned total = 0;
    for (size_t i = 0; i < sizeof partner_acts / sizeof *partner_acts; i++)
        total += partner_acts[i].weight;
    unsigned r = rng_below(rng, total);
    for (size_t i = 0;; i++) {
        if (r < partner_acts[i].weight)
            return partner_acts[i].fn;
        r -= partner_acts[i].weight;
    }
}

static void *
partner_main(void *arg)
{
    partner_ctx_t *c = arg;
    c->sess = raw_open(c->x, c->x->net.endpoint, c->key, 0);
    c->nosess = raw_open(c->x, c->x->net.endpoint, c->key, 0);
    while (!atomic_load(&c->x->stop)) {
        pick_act (&c->rng)(c);
        c->t.actions++;
    }
    raw_close(&c->sess);
    raw_close(&c->nosess);
    return NULL;
}

/* ---- the greedy recipient: all the credit there is, never reads ---- */

typedef struct greedy_ctx {
    hx_t *x;
    uint64_t rng;
    uint64_t sent, hellos;
    tally_t t;
} greedy_ctx_t;

/* One referral of some 4.5 KB for ml_nord from pole_emploi's connection pub, which
 * never reads its acks either. */
static void
greedy_publish(greedy_ctx_t *g, void *pub)
{
    static char reason[3 * 1500 + 1];
    for (size_t i = 0; i < 1500; i++)
        memcpy(reason + 3 * i, "\xe2\x82\xac", 3);
    td_sample_t smp;
    char id[48];
    snprintf(id, sizeof id, "greedy-%06" PRIu64, g->sent);
    td_sample_referral(&smp, id, "ml_nord");
    smp.referral.reason = reason;
    uint8_t *env, *buf;
    size_t env_len, len;
    pt_error_t err;
    if (codec_pack(&smp.env.base, SIZE_MAX, &env, &env_len, &err) != 0)
        abort();
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Publish p = PTIBUS__V1__PUBLISH__INIT;
    p.message_id = id;
    p.envelope = (ProtobufCBinaryData){env_len, env};
    f.kind_case = PTIBUS__V1__FRAME__KIND_PUBLISH;
    f.publish = &p;
    if (codec_pack(&f.base, SIZE_MAX, &buf, &len, &err) != 0)
        abort();
    if (zmq_send(pub, buf, len, ZMQ_DONTWAIT) >= 0)
        g->sent++;
    free(buf);
    free(env);
}

static void *
greedy_main(void *arg)
{
    greedy_ctx_t *g = arg;
    void *s = raw_open(g->x, g->x->net.endpoint, "ml_nord", 1);
    void *pub = raw_open(g->x, g->x->net.endpoint, "pole_emploi", 1);
    while (!atomic_load(&g->x->stop)) {
        if (g->sent < GREEDY_MAX)
            greedy_publish(g, pub);
        if (rng_below(&g->rng, 50) == 0 || g->sent >= GREEDY_MAX) {
            Ptibus__V1__Frame f;
            Ptibus__V1__Hello h;
            frame_hello(&f, &h, 1, UINT32_MAX);
            send_frame(s, &f);
            g->hellos++;
        }
        usleep(g->sent >= GREEDY_MAX ? 100000 : 2000);
        g->t.actions++;
    }
    raw_close(&pub);
    raw_close(&s);
    return NULL;
}

/* ---- thousands of connections opening and closing ---- */

typedef struct churn_ctx {
    hx_t *x;
    uint64_t rng;
    uint64_t opened, welcomed, refused;
    tally_t t;
} churn_ctx_t;

/* Whether the next frame on s (readable) is a Welcome. */
static bool
read_welcome(void *s)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    ProtobufCMessage *f = NULL;
    pt_error_t err;
    if (zmq_msg_recv(&m, s, ZMQ_DONTWAIT) >= 0)
        codec_unpack_lenient(&ptibus__v1__frame__descriptor, zmq_msg_data(&m), zmq_msg_size(&m),
                             1 << 20, &f, &err);
    zmq_msg_close(&m);
    bool ok = f && ((Ptibus__V1__Frame *)f)->kind_case == PTIBUS__V1__FRAME__KIND_WELCOME;
    codec_free(&f);
    return ok;
}

/* A burst of connections, each saying Hello (or nothing), answers awaited together:
 * an unknown key and no CURVE get no answer (ZAP refuses them); region, an
 * authenticated partner, is welcomed within its handshake rate and refused above it,
 * so either is its documented answer, but its first connection of the run is
 * welcomed. */
static void
churn_burst(churn_ctx_t *c)
{
    enum { BURST = 32 };
    void *s[BURST];
    int kind[BURST];
    bool welcomed[BURST] = {false};
    size_t n = 1 + rng_below(&c->rng, BURST);
    Ptibus__V1__Frame f;
    Ptibus__V1__Hello h;
    frame_hello(&f, &h, 1, 0);
    for (size_t i = 0; i < n; i++) {
        kind[i] = (int)rng_below(&c->rng, 4);
        const char *key = kind[i] == 0 ? "intruder" : kind[i] == 1 ? NULL : "region";
        s[i] = raw_open(c->x, c->x->net.endpoint, key, 0);
        c->opened++;
        if (kind[i] != 3) /* 3: opened and closed, nothing said */
            send_frame(s[i], &f);
    }
    for (int64_t end = tu_now_ms() + SILENCE_MS; tu_now_ms() < end;) {
        zmq_pollitem_t it[BURST];
        for (size_t i = 0; i < n; i++)
            it[i] = (zmq_pollitem_t){.socket = s[i], .events = ZMQ_POLLIN};
        if (zmq_poll(it, (int)n, (long)(end - tu_now_ms())) <= 0)
            continue;
        for (size_t i = 0; i < n; i++)
            if (it[i].revents & ZMQ_POLLIN)
                welcomed[i] |= read_welcome(s[i]);
    }
    for (size_t i = 0; i < n; i++) {
        if (kind[i] == 3)
            continue;
        if (kind[i] < 2 && welcomed[i])
            tally_fail(&c->t, "%s connection welcomed", kind[i] == 0 ? "unknown key" : "NULL");
        else if (kind[i] == 2 && !welcomed[i] && c->welcomed == 0)
            tally_fail(&c->t, "region's first connection not welcomed");
        if (kind[i] == 2) {
            c->welcomed += welcomed[i];
            c->refused += !welcomed[i];
        }
        c->t.answers++;
    }
    for (size_t i = 0; i < n; i++)
        raw_close(&s[i]);
}

static void *
churn_main(void *arg)
{
    churn_ctx_t *c = arg;
    while (!atomic_load(&c->x->stop)) {
        churn_burst(c);
        c->t.actions++;
    }
    return NULL;
}

/* ---- the hostile administrator ---- */

typedef struct admin_ctx {
    hx_t *x;
    uint64_t rng;
    void *s;
    tally_t t;
} admin_ctx_t;

/* The next AdminResponse within ms, or NULL. */
static Ptibus__V1__AdminResponse *
admin_answer(void *s, int ms)
{
    zmq_pollitem_t it = {.socket = s, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, ms) != 1)
        return NULL;
    zmq_msg_t m;
    zmq_msg_init(&m);
    ProtobufCMessage *r = NULL;
    pt_error_t err;
    if (zmq_msg_recv(&m, s, 0) >= 0)
        codec_unpack_lenient(&ptibus__v1__admin_response__descriptor, zmq_msg_data(&m),
                             zmq_msg_size(&m), 1 << 24, &r, &err);
    zmq_msg_close(&m);
    return (Ptibus__V1__AdminResponse *)r;
}

/* Expects a refusal (ok false) whose error contains `says` (NULL: any), or, with ok
 * set, a success. */
static void
admin_expect(admin_ctx_t *c, const char *what, bool ok, const char *says)
{
    Ptibus__V1__AdminResponse *r = admin_answer(c->s, ANSWER_MS);
    if (r == NULL)
        tally_fail(&c->t, "admin %s: no answer", what);
    else if (r->ok != ok || (!ok && (r->error == NULL || r->error[0] == '\0')) ||
             (says && (r->error == NULL || strstr(r->error, says) == NULL)))
        tally_fail(&c->t, "admin %s: ok=%d error '%s'", what, r->ok, r->error ? r->error : "");
    else
        c->t.answers++;
    codec_free((ProtobufCMessage **)&r);
}

static void
admin_send(admin_ctx_t *c, const Ptibus__V1__AdminRequest *q)
{
    uint8_t *buf;
    size_t len;
    pt_error_t err;
    if (codec_pack(&q->base, SIZE_MAX, &buf, &len, &err) != 0)
        abort();
    send_bytes(c->s, buf, len, 1);
    free(buf);
}

static void
admin_act(admin_ctx_t *c)
{
    Ptibus__V1__AdminRequest q = PTIBUS__V1__ADMIN_REQUEST__INIT;
    Ptibus__V1__StatsRequest st = PTIBUS__V1__STATS_REQUEST__INIT;
    Ptibus__V1__DeadLetterListRequest dl = PTIBUS__V1__DEAD_LETTER_LIST_REQUEST__INIT;
    uint8_t buf[1024];
    switch (rng_below(&c->rng, 7)) {
    case 0: /* garbage (never a protobuf message: wire type 7) */
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = (uint8_t)rng_next(&c->rng);
        buf[0] = 0x0f;
        send_bytes(c->s, buf, 1 + rng_below(&c->rng, sizeof buf), 1);
        admin_expect(c, "garbage", false, NULL);
        return;
    case 1: /* several parts */
        q.kind_case = PTIBUS__V1__ADMIN_REQUEST__KIND_STATS;
        q.stats = &st;
        send_bytes(c->s, "\x0a\x00", 2, 2 + (int)rng_below(&c->rng, 30));
        admin_expect(c, "multi-part request", false, "parts");
        return;
    case 2: /* no kind */
        q.request_id = "no-kind";
        admin_send(c, &q);
        admin_expect(c, "request without a kind", false, "kind");
        return;
    case 3: /* a limit above the maximum */
        dl.limit = 10001 + rng_below(&c->rng, 1u << 30);
        dl.recipient = "departement";
        q.kind_case = PTIBUS__V1__ADMIN_REQUEST__KIND_DEAD_LETTER_LIST;
        q.dead_letter_list = &dl;
        admin_send(c, &q);
        admin_expect(c, "dead-letter list limit", false, "at most 10000");
        return;
    case 4: { /* over 64 KiB: the socket cuts the connection, no answer */
        size_t n = 65537 + rng_below(&c->rng, 100000);
        uint8_t *big = calloc(1, n);
        send_bytes(c->s, big, n, 1);
        free(big);
        Ptibus__V1__AdminResponse *r = admin_answer(c->s, SILENCE_MS);
        if (r != NULL)
            tally_fail(&c->t, "admin request over 64 KiB answered");
        else
            c->t.answers++;
        codec_free((ProtobufCMessage **)&r);
        raw_close(&c->s);
        c->s = raw_open(c->x, c->x->net.admin_endpoint, "admin", 0);
        return;
    }
    case 5: { /* a partner's key on the admin socket: refused, no answer */
        void *p = raw_open(c->x, c->x->net.admin_endpoint, "pole_emploi", 0);
        q.kind_case = PTIBUS__V1__ADMIN_REQUEST__KIND_STATS;
        q.stats = &st;
        admin_send(&(admin_ctx_t){.s = p}, &q);
        Ptibus__V1__AdminResponse *r = admin_answer(p, SILENCE_MS);
        if (r != NULL)
            tally_fail(&c->t, "a partner key was answered on the admin socket");
        else
            c->t.answers++;
        codec_free((ProtobufCMessage **)&r);
        raw_close(&p);
        return;
    }
    default: /* a valid stats request: answered */
        q.kind_case = PTIBUS__V1__ADMIN_REQUEST__KIND_STATS;
        q.stats = &st;
        admin_send(c, &q);
        admin_expect(c, "stats", true, NULL);
        return;
    }
}

static void *
admin_main(void *arg)
{
    admin_ctx_t *c = arg;
    c->s = raw_open(c->x, c->x->net.admin_endpoint, "admin", 0);
    while (!atomic_load(&c->x->stop)) {
        admin_act(c);
        c->t.actions++;
        usleep(5000);
    }
    raw_close(&c->s);
    return NULL;
}

/* ---- the well-behaved pair: caf publishes steadily, the Département consumes ---- */

static void *
good_pub_main(void *arg)
{
    hx_t *x = arg;
    client_t *c;
    if (td_client_session(&x->net, "caf", 0, &c) != 0) {
        tally_fail(&x->good_pub, "caf: no session");
        return NULL;
    }
    int64_t next = tu_now_ms();
    while (!atomic_load(&x->quiet) && atomic_load(&x->published) < MAX_GOOD) {
        size_t i = atomic_load(&x->published);
        td_sample_t s;
        char id[32];
        snprintf(id, sizeof id, "good-%06zu", i);
        td_sample_beneficiary_event(&s, id);
        client_result_t res;
        pt_error_t err;
        int64_t t0 = tu_now_ms();
        if (client_publish(c, &s.env, 10000, &res, &err) != 0)
            tally_fail(&x->good_pub, "publish %s: %s", id, err.msg);
        else if (res.nack_code != 0)
            tally_fail(&x->good_pub, "publish %s refused: %s", id, res.reason);
        x->lat_ms[i] = tu_now_ms() - t0;
        x->good_pub.actions++;
        atomic_store(&x->published, i + 1);
        next += GOOD_PERIOD_MS;
        int64_t wait = next - tu_now_ms();
        if (wait > 0)
            usleep((useconds_t)wait * 1000);
        else
            next = tu_now_ms(); /* late: no catch-up burst */
    }
    client_close(&c);
    return NULL;
}

static void
good_sub_deliver(hx_t *x, client_t *c, const Ptibus__V1__Deliver *d)
{
    pt_error_t err;
    unsigned long i;
    if (strcmp(d->sender, "caf") != 0 || sscanf(d->message_id, "good-%lu", &i) != 1 ||
        i >= MAX_GOOD)
        tally_fail(&x->good_sub, "a delivery the Département did not expect");
    else if (!x->seen[i]++)
        atomic_fetch_add(&x->delivered, 1);
    if (client_deliver_ack(c, d->seq, true, NULL, &err) != 0)
        tally_fail(&x->good_sub, "ack: %s", err.msg);
}

static void *
good_sub_main(void *arg)
{
    hx_t *x = arg;
    client_t *c;
    if (td_client_session(&x->net, "departement", 64, &c) != 0) {
        tally_fail(&x->good_sub, "departement: no session");
        return NULL;
    }
    /* Until the publisher has stopped and everything it published came. */
    int64_t give_up = -1;
    while (!atomic_load(&x->quiet) || atomic_load(&x->delivered) < atomic_load(&x->published)) {
        if (atomic_load(&x->quiet) && give_up < 0)
            give_up = tu_now_ms() + 20000;
        if (give_up >= 0 && tu_now_ms() > give_up)
            break;
        Ptibus__V1__Frame *f;
        pt_error_t err;
        int rc = client_recv(c, 200, &f, &err);
        if (rc == PT_ETIMEOUT)
            continue;
        if (rc != 0) {
            tally_fail(&x->good_sub, "recv: %s", err.msg);
            continue;
        }
        if (f->kind_case == PTIBUS__V1__FRAME__KIND_DELIVER)
            good_sub_deliver(x, c, f->deliver);
        else if (f->kind_case == PTIBUS__V1__FRAME__KIND_NACK)
            tally_fail(&x->good_sub, "Nack %d: %s", f->nack->code, f->nack->reason);
        x->good_sub.actions++;
        codec_free((ProtobufCMessage **)&f);
    }
    /* Give the last acknowledgements time to leave. */
    Ptibus__V1__Frame *f;
    pt_error_t err;
    if (client_recv(c, 300, &f, &err) == 0)
        codec_free((ProtobufCMessage **)&f);
    client_close(&c);
    return NULL;
}

/* ---- the test ---- */

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* p99 of lat[from..to) in ms. */
static int64_t
p99(const int64_t *lat, size_t from, size_t to)
{
    size_t n = to - from;
    if (n == 0)
        return 0;
    int64_t *v = malloc(n * sizeof *v);
    memcpy(v, lat + from, n * sizeof *v);
    qsort(v, n, sizeof *v, cmp_i64);
    int64_t r = v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
    free(v);
    return r;
}

static uint64_t
env_u64(const char *name, uint64_t dflt)
{
    const char *s = getenv(name);
    return s && *s ? strtoull(s, NULL, 0) : dflt;
}

static void
report(const tally_t *t)
{
    print_message(
        "  %-22s %8" PRIu64 " actions %8" PRIu64 " answers checked, %" PRIu64 " failures%s%s\n",
        t->who, t->actions, t->answers, t->failures, t->failures ? ": " : "", t->first_failure);
}

/* Verifies the chain; returns the deliveries to the greedy recipient. */
static uint64_t
verify_journal(hx_t *x)
{
    uint8_t pk[32];
    char path[4300];
    pt_error_t err;
    snprintf(path, sizeof path, "%s/keys/journal.sign.pub", x->net.dir);
    assert_int_equal(keys_read(path, pk, 32, false, &err), 0);
    journal_t *j;
    journal_options_t o = {.dir = x->net.journal_dir, .read_only = true};
    assert_int_equal(journal_open(&o, &j, &err), 0);
    uint64_t bad = 0;
    if (journal_verify(j, 1, 0, pk, &bad, &err) != 0)
        fail_msg("journal chain broken at %llu: %s", (unsigned long long)bad, err.msg);
    /* What the attack left in it: the refusals, and the greedy partner's messages. */
    uint64_t rejected = 0, greedy_in = 0, greedy_out = 0;
    journal_view_t v;
    uint8_t *buf = NULL;
    size_t cap = 0;
    for (uint64_t seq = 1; seq <= journal_last_seq(j); seq++) {
        assert_int_equal(journal_get(j, seq, &v, &buf, &cap, &err), 0);
        rejected += v.kind == PT_REC_REJECTED;
        greedy_in += v.kind == PT_REC_RECEIVED && strncmp(v.message_id, "greedy-", 7) == 0;
        greedy_out += v.kind == PT_REC_DELIVERED && strcmp(v.partner, "ml_nord") == 0;
    }
    free(buf);
    print_message("journal: %llu records, verified; %" PRIu64 " REJECTED, %" PRIu64
                  " messages for the greedy recipient, %" PRIu64 " deliveries to it\n",
                  (unsigned long long)journal_last_seq(j), rejected, greedy_in, greedy_out);
    journal_close(&j);
    return greedy_out;
}

/* The broker still answers an administrator's stats request. */
static void
broker_answers(hx_t *x)
{
    admin_ctx_t a = {.x = x, .t = {.who = "final stats"}};
    a.s = raw_open(x, x->net.admin_endpoint, "admin", 0);
    Ptibus__V1__AdminRequest q = PTIBUS__V1__ADMIN_REQUEST__INIT;
    Ptibus__V1__StatsRequest st = PTIBUS__V1__STATS_REQUEST__INIT;
    q.kind_case = PTIBUS__V1__ADMIN_REQUEST__KIND_STATS;
    q.stats = &st;
    admin_send(&a, &q);
    admin_expect(&a, "stats at the end", true, NULL);
    raw_close(&a.s);
    if (a.t.failures)
        fail_msg("%s", a.t.first_failure);
}

typedef struct hostiles {
    partner_ctx_t partner[2];
    greedy_ctx_t greedy;
    churn_ctx_t churn;
    admin_ctx_t admin;
    pthread_t th[5];
} hostiles_t;

static void
hostiles_start(hx_t *x, hostiles_t *h)
{
    static const char *const keys[] = {"pole_emploi", "msa"};
    for (int i = 0; i < 2; i++) {
        h->partner[i] = (partner_ctx_t){.x = x, .key = keys[i], .t = {.who = keys[i]}};
        h->partner[i].rng = x->seed + 1 + (uint64_t)i;
        pthread_create(&h->th[i], NULL, partner_main, &h->partner[i]);
    }
    h->greedy = (greedy_ctx_t){.x = x, .rng = x->seed + 3, .t = {.who = "ml_nord (greedy)"}};
    h->churn = (churn_ctx_t){.x = x, .rng = x->seed + 4, .t = {.who = "connection churn"}};
    h->admin = (admin_ctx_t){.x = x, .rng = x->seed + 5, .t = {.who = "admin socket"}};
    pthread_create(&h->th[2], NULL, greedy_main, &h->greedy);
    pthread_create(&h->th[3], NULL, churn_main, &h->churn);
    pthread_create(&h->th[4], NULL, admin_main, &h->admin);
}

static void
hostiles_join(hostiles_t *h)
{
    for (int i = 0; i < 5; i++)
        pthread_join(h->th[i], NULL);
}

/* Watches the broker for ms: its largest RssAnon, and that it runs. */
static long
watch_broker(hx_t *x, int64_t ms)
{
    long peak = 0;
    for (int64_t end = tu_now_ms() + ms; tu_now_ms() < end;) {
        assert_int_equal(kill(x->net.pid, 0), 0);
        long kib = tu_rss_anon_kib((int)x->net.pid);
        peak = kib > peak ? kib : peak;
        usleep(200 * 1000);
    }
    return peak;
}

static void
test_hostile_clients_everyone_else_served(void **state)
{
    hx_t *x = *state;
    uint64_t secs = env_u64("PT_HOSTILE_SECONDS", 20);
    print_message("seed %" PRIu64 " (PT_HOSTILE_SEED=%" PRIu64 " replays each client's actions),"
                  " hostile phase %" PRIu64 " s\n",
                  x->seed, x->seed, secs);
    pthread_t pub, sub;
    pthread_create(&sub, NULL, good_sub_main, x);
    pthread_create(&pub, NULL, good_pub_main, x);
    usleep(BASELINE_MS * 1000);
    x->baseline_n = atomic_load(&x->published);
    long before = tu_rss_anon_kib((int)x->net.pid);

    hostiles_t *h = calloc(1, sizeof *h);
    hostiles_start(x, h);
    long peak = watch_broker(x, (int64_t)secs * 1000);
    atomic_store(&x->stop, true);
    hostiles_join(h);
    size_t hostile_end = atomic_load(&x->published);
    atomic_store(&x->quiet, true);
    pthread_join(pub, NULL);
    pthread_join(sub, NULL);

    int64_t base = p99(x->lat_ms, 1, x->baseline_n); /* the first one waits for the handshake */
    int64_t hot = p99(x->lat_ms, x->baseline_n, hostile_end);
    print_message("well-behaved partner: %zu published, %zu delivered; publish->ack p99 %lld ms "
                  "without hostile clients (%zu), %lld ms with them (%zu): ratio %.1f\n",
                  atomic_load(&x->published), atomic_load(&x->delivered), (long long)base,
                  x->baseline_n - 1, (long long)hot, hostile_end - x->baseline_n,
                  base > 0 ? (double)hot / (double)base : 0.0);
    print_message("broker RssAnon %ld KiB before the attack, peak %ld KiB during it%s\n", before,
                  peak, TU_ASAN ? " (ASan: not checked)" : "");
    print_message("connections: %" PRIu64 " opened (%" PRIu64 " welcomed, %" PRIu64
                  " refused); greedy: %" PRIu64 " published, %" PRIu64 " Hellos, nothing read\n",
                  h->churn.opened, h->churn.welcomed, h->churn.refused, h->greedy.sent,
                  h->greedy.hellos);
    const tally_t *all[] = {&x->good_pub, &x->good_sub, &h->partner[0].t, &h->partner[1].t,
                            &h->greedy.t, &h->churn.t,  &h->admin.t};
    uint64_t hostile_failures = 0;
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        report(all[i]);
        if (i >= 2)
            hostile_failures += all[i]->failures;
    }
    assert_int_equal(x->good_pub.failures, 0);
    assert_int_equal(x->good_sub.failures, 0);
    assert_int_equal(atomic_load(&x->delivered), atomic_load(&x->published));
    assert_int_equal(hostile_failures, 0);
    assert_true(h->partner[0].t.answers > 0 && h->partner[1].t.answers > 0);
    assert_true(h->churn.opened >= 500);
    assert_true(hot < 20 * base + 250);
    if (!TU_ASAN)
        assert_true(peak - before < MAX_GROWTH_KIB);
    free(h);

    broker_answers(x);
    assert_int_equal(td_broker_stop(&x->net), 0);
    /* The greedy recipient never acknowledges: at most one window per ack timeout
     * (a repeated Hello does not resend what is in flight). */
    uint64_t to_greedy = verify_journal(x);
    assert_true(to_greedy <= MAX_IN_FLIGHT * (2 + secs / ACK_TIMEOUT_S));
}

static int
setup(void **state)
{
    hx_t *x = calloc(1, sizeof *x);
    x->seed = env_u64("PT_HOSTILE_SEED", (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32));
    /* Slow acks: what the Département gets is first deliveries; the handshake budget
     * lets the churn's region connections be welcomed for a while, then refused. */
    td_net_options_t o = {.ack_timeout = "30s", /* ACK_TIMEOUT_S */
                          .extra_limits = "  partner_handshakes_per_minute: 300\n"};
    td_net_init(&x->net, "hostile", &o);
    x->zctx = zmq_ctx_new();
    x->lat_ms = calloc(MAX_GOOD, sizeof *x->lat_ms);
    x->seen = calloc(MAX_GOOD, 1);
    x->good_pub.who = "caf (well-behaved)";
    x->good_sub.who = "departement (consumer)";
    if (td_broker_start(&x->net) != 0)
        return -1;
    *state = x;
    return 0;
}

static int
teardown(void **state)
{
    hx_t *x = *state;
    zmq_ctx_term(x->zctx);
    td_net_fini(&x->net);
    free(x->lat_ms);
    free(x->seen);
    free(x);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hostile_clients_everyone_else_served, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
