/* client: DEALER-side implementation of the broker protocol. */
#include "client.h"
#include "clock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "codec.h"
#include "zpart.h"

/* Frames may carry an envelope of up to 16 MiB plus framing. */
#define CLIENT_MAX_FRAME (17 * 1024 * 1024)

struct client {
    void *ctx;
    bool own_ctx;
    void *sock;
    char name[64];
    uint32_t initial_credit;
    int heartbeat_ms; /* from Welcome; 0 = none */
    bool in_session;  /* a Hello was answered: re-Hello when the broker forgets it */
    uint32_t window;  /* credit granted in total: Hello + Credit frames */
    int64_t last_send_ms;
};

static int64_t now_ms(void);

static int
zmq_fail(pt_error_t *err, const char *what)
{
    int e = zmq_errno();
    return pt_error_set(err, -e, what, "%s", zmq_strerror(e));
}

static int
client_set_curve(void *sock, const client_options_t *o, pt_error_t *err)
{
    if (o->no_curve)
        return 0;
    if (o->server_pk == NULL || o->client_sk == NULL || o->client_pk == NULL)
        return pt_error_set(err, -EINVAL, "client", "CURVE keys missing");
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, o->server_pk, 32) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, o->client_pk, 32) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, o->client_sk, 32) != 0)
        return zmq_fail(err, "zmq_setsockopt(CURVE)");
    return 0;
}

static int
client_configure(client_t *c, const client_options_t *o, pt_error_t *err)
{
    int linger = 0, hb = 2000, hbto = 10000;
    int64_t maxmsg = CLIENT_MAX_FRAME;
    if (zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) != 0 ||
        zmq_setsockopt(c->sock, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb) != 0 ||
        zmq_setsockopt(c->sock, ZMQ_HEARTBEAT_TIMEOUT, &hbto, sizeof hbto) != 0)
        return zmq_fail(err, "zmq_setsockopt");
    int rc = client_set_curve(c->sock, o, err);
    if (rc != 0)
        return rc;
    if (zmq_connect(c->sock, o->endpoint) != 0)
        return zmq_fail(err, o->endpoint);
    return 0;
}

int
client_open(const client_options_t *o, client_t **out, pt_error_t *err)
{
    *out = NULL;
    client_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return pt_error_set(err, -ENOMEM, "client", "out of memory");
    c->ctx = o->zmq_context;
    if (c->ctx == NULL) {
        c->ctx = zmq_ctx_new();
        c->own_ctx = true;
    }
    snprintf(c->name, sizeof c->name, "%s", o->client_name ? o->client_name : "ptibus-client");
    c->initial_credit = o->initial_credit;
    int rc = -ENOMEM;
    c->sock = c->ctx ? zmq_socket(c->ctx, ZMQ_DEALER) : NULL;
    if (c->sock == NULL) {
        rc = zmq_fail(err, "zmq_socket");
        goto fail;
    }
    rc = client_configure(c, o, err);
    if (rc != 0)
        goto fail;
    *out = c;
    return 0;
fail:
    client_close(&c);
    return rc;
}

void
client_close(client_t **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    client_t *c = *cp;
    if (c->sock)
        zmq_close(c->sock);
    if (c->own_ctx && c->ctx)
        zmq_ctx_term(c->ctx);
    free(c);
    *cp = NULL;
}

void *
client_socket(client_t *c)
{
    return c->sock;
}

int
client_send(client_t *c, const Ptibus__V1__Frame *frame, pt_error_t *err)
{
    uint8_t *buf;
    size_t len;
    int rc = codec_pack(&frame->base, CLIENT_MAX_FRAME, &buf, &len, err);
    if (rc != 0)
        return rc;
    rc = zmq_send(c->sock, buf, len, ZMQ_DONTWAIT);
    free(buf);
    if (rc < 0)
        return zmq_fail(err, "zmq_send");
    c->last_send_ms = now_ms();
    return 0;
}

static void
client_heartbeat_if_due(client_t *c)
{
    if (c->heartbeat_ms <= 0 || now_ms() - c->last_send_ms < c->heartbeat_ms)
        return;
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Heartbeat h = PTIBUS__V1__HEARTBEAT__INIT;
    f.kind_case = PTIBUS__V1__FRAME__KIND_HEARTBEAT;
    f.heartbeat = &h;
    client_send(c, &f, NULL);
}

/* Waits for input up to timeout_ms, sending heartbeats on the way. Returns >0 when a
 * frame is readable, 0 on timeout, <0 on error. */
static int
client_wait(client_t *c, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    for (;;) {
        client_heartbeat_if_due(c);
        int slice = c->heartbeat_ms > 0 ? c->heartbeat_ms / 2 : timeout_ms;
        if (deadline >= 0) {
            int64_t left = deadline - now_ms();
            if (left < 0)
                left = 0;
            if (slice < 0 || left < slice)
                slice = (int)left;
        }
        zmq_pollitem_t item = {.socket = c->sock, .events = ZMQ_POLLIN};
        int n = zmq_poll(&item, 1, slice);
        if (n != 0 || (deadline >= 0 && now_ms() >= deadline))
            return n;
    }
}

static int client_send_hello(client_t *c, uint32_t credit, pt_error_t *err);

static bool
is_session_nack(const Ptibus__V1__Frame *f)
{
    return f->kind_case == PTIBUS__V1__FRAME__KIND_NACK &&
           strcmp(f->nack->field_path, PT_SESSION_FIELD) == 0;
}

static int
client_recv_one(client_t *c, int timeout_ms, Ptibus__V1__Frame **out, pt_error_t *err)
{
    *out = NULL;
    int n = client_wait(c, timeout_ms);
    if (n < 0)
        return zmq_fail(err, "zmq_poll");
    if (n == 0)
        return pt_error_set(err, PT_ETIMEOUT, "client", "no frame within %d ms", timeout_ms);
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, c->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        return zmq_fail(err, "zmq_msg_recv");
    }
    size_t extra = zpart_drain(c->sock, &msg);
    ProtobufCMessage *m;
    /* Lenient: a newer broker may send fields that this build does not know. */
    int rc = extra > 0
                 ? pt_error_set(err, PT_EMALFORMED, "frame",
                                "a message of %zu parts: a frame is exactly one part", extra + 1)
                 : codec_unpack_lenient(&ptibus__v1__frame__descriptor, zmq_msg_data(&msg),
                                        zmq_msg_size(&msg), CLIENT_MAX_FRAME, &m, err);
    zmq_msg_close(&msg);
    if (rc == 0)
        *out = (Ptibus__V1__Frame *)m;
    return rc;
}

int
client_recv(client_t *c, int timeout_ms, Ptibus__V1__Frame **out, pt_error_t *err)
{
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    for (;;) {
        int left = deadline < 0 ? -1 : (int)(deadline - now_ms());
        int rc = client_recv_one(c, deadline < 0 || left > 0 ? left : 0, out, err);
        if (rc != 0 || !c->in_session || !is_session_nack(*out))
            return rc;
        codec_free((ProtobufCMessage **)out);
        rc = client_send_hello(c, c->window, err);
        if (rc != 0)
            return rc;
    }
}

static int64_t
now_ms(void)
{
    return pt_clock_mono_ms();
}

/* Waits for a frame of the wanted case, dropping others, until the deadline. */
static int
client_wait_case(client_t *c, int timeout_ms, Ptibus__V1__Frame__KindCase want1,
                 Ptibus__V1__Frame__KindCase want2, const char *message_id, Ptibus__V1__Frame **out,
                 pt_error_t *err)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int left = (int)(deadline - now_ms());
        if (left < 0)
            left = 0;
        int rc = client_recv(c, left, out, err);
        if (rc != 0)
            return rc;
        Ptibus__V1__Frame *f = *out;
        const char *mid = NULL;
        client_result_t tmp;
        bool is_result = client_result_from_frame(f, &tmp, &mid);
        if ((f->kind_case == want1 || f->kind_case == want2) &&
            (message_id == NULL || (is_result && strcmp(mid, message_id) == 0)))
            return 0;
        codec_free((ProtobufCMessage **)out);
    }
}

static int
client_send_hello(client_t *c, uint32_t credit, pt_error_t *err)
{
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Hello h = PTIBUS__V1__HELLO__INIT;
    h.protocol_version = 1;
    h.client_name = c->name;
    h.software_version = PTIBUS_VERSION;
    h.initial_credit = credit;
    f.kind_case = PTIBUS__V1__FRAME__KIND_HELLO;
    f.hello = &h;
    return client_send(c, &f, err);
}

int
client_hello(client_t *c, int timeout_ms, char *partner_id, size_t partner_id_len, pt_error_t *err)
{
    c->window = c->initial_credit;
    int rc = client_send_hello(c, c->window, err);
    if (rc != 0)
        return rc;
    Ptibus__V1__Frame *w;
    rc = client_wait_case(c, timeout_ms, PTIBUS__V1__FRAME__KIND_WELCOME,
                          PTIBUS__V1__FRAME__KIND_WELCOME, NULL, &w, err);
    if (rc != 0)
        return rc;
    if (partner_id && partner_id_len)
        snprintf(partner_id, partner_id_len, "%s", w->welcome->partner_id);
    c->heartbeat_ms = (int)w->welcome->heartbeat_interval_ms;
    c->in_session = true;
    codec_free((ProtobufCMessage **)&w);
    return 0;
}

int
client_publish_bytes(client_t *c, const char *message_id, const uint8_t *env, size_t len,
                     pt_error_t *err)
{
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Publish p = PTIBUS__V1__PUBLISH__INIT;
    p.message_id = (char *)message_id;
    p.envelope.data = (uint8_t *)env;
    p.envelope.len = len;
    f.kind_case = PTIBUS__V1__FRAME__KIND_PUBLISH;
    f.publish = &p;
    return client_send(c, &f, err);
}

int
client_publish_async(client_t *c, const Ptibus__V1__Envelope *env, pt_error_t *err)
{
    uint8_t *buf;
    size_t len;
    int rc = codec_pack(&env->base, CLIENT_MAX_FRAME, &buf, &len, err);
    if (rc != 0)
        return rc;
    rc = client_publish_bytes(c, env->message_id, buf, len, err);
    free(buf);
    return rc;
}

bool
client_result_from_frame(const Ptibus__V1__Frame *f, client_result_t *res, const char **mid)
{
    memset(res, 0, sizeof *res);
    if (f->kind_case == PTIBUS__V1__FRAME__KIND_PUBLISH_ACK) {
        res->seq = f->publish_ack->seq;
        res->duplicate = f->publish_ack->duplicate;
        *mid = f->publish_ack->message_id;
        return true;
    }
    if (f->kind_case == PTIBUS__V1__FRAME__KIND_NACK) {
        const Ptibus__V1__Nack *n = f->nack;
        res->nack_code = n->code ? (int)n->code : PTIBUS__V1__NACK_CODE__NACK_CODE_PROTOCOL;
        res->seq = n->seq;
        res->retryable = n->retryable;
        snprintf(res->reason, sizeof res->reason, "%s", n->reason);
        snprintf(res->field_path, sizeof res->field_path, "%s", n->field_path);
        *mid = n->message_id;
        return true;
    }
    return false;
}

int
client_publish(client_t *c, const Ptibus__V1__Envelope *env, int timeout_ms, client_result_t *res,
               pt_error_t *err)
{
    int rc = client_publish_async(c, env, err);
    if (rc != 0)
        return rc;
    Ptibus__V1__Frame *f;
    rc = client_wait_case(c, timeout_ms, PTIBUS__V1__FRAME__KIND_PUBLISH_ACK,
                          PTIBUS__V1__FRAME__KIND_NACK, env->message_id, &f, err);
    if (rc != 0)
        return rc;
    const char *mid;
    client_result_from_frame(f, res, &mid);
    codec_free((ProtobufCMessage **)&f);
    return 0;
}

int
client_deliver_ack(client_t *c, uint64_t seq, bool ok, const char *reason, pt_error_t *err)
{
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__DeliverAck a = PTIBUS__V1__DELIVER_ACK__INIT;
    a.seq = seq;
    a.status = ok ? PTIBUS__V1__DELIVER_ACK_STATUS__DELIVER_ACK_STATUS_OK
                  : PTIBUS__V1__DELIVER_ACK_STATUS__DELIVER_ACK_STATUS_CANNOT_PROCESS;
    a.reason = (char *)(reason ? reason : "");
    f.kind_case = PTIBUS__V1__FRAME__KIND_DELIVER_ACK;
    f.deliver_ack = &a;
    return client_send(c, &f, err);
}

int
client_credit(client_t *c, uint32_t credit, pt_error_t *err)
{
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Credit cr = PTIBUS__V1__CREDIT__INIT;
    cr.credit = credit;
    f.kind_case = PTIBUS__V1__FRAME__KIND_CREDIT;
    f.credit = &cr;
    int rc = client_send(c, &f, err);
    if (rc == 0) {
        uint64_t w = (uint64_t)c->window + credit;
        c->window = w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
    }
    return rc;
}

int
client_receipt_request(client_t *c, const char *message_id, pt_error_t *err)
{
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__ReceiptRequest r = PTIBUS__V1__RECEIPT_REQUEST__INIT;
    r.message_id = (char *)message_id;
    f.kind_case = PTIBUS__V1__FRAME__KIND_RECEIPT_REQUEST;
    f.receipt_request = &r;
    return client_send(c, &f, err);
}
