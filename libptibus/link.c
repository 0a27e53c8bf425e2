/* link: the partner's broker link as a state machine over a DEALER socket and its
 * monitor. */
#include "link.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <sodium.h>
#include <zmq.h>

#include "curve.h"
#include "codec.h"
#include "keys.h"
#include "zpart.h"

/* Frames may carry an envelope of up to 16 MiB plus framing. */
#define LINK_MAX_FRAME (17 * 1024 * 1024)
#define LINK_RECONNECT_IVL_MS 100      /* ZeroMQ's first TCP retry; it adds jitter itself */
#define LINK_RECONNECT_IVL_MAX_MS 2000 /* cap of ZeroMQ's doubling retry interval */
#define LINK_MONITOR_EVENTS                                                                        \
    (ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_DISCONNECTED |                    \
     ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |                             \
     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)

struct link {
    void *ctx;
    bool own_ctx;
    void *sock;
    void *mon;
    int epfd;
    link_callbacks_t cb;
    char endpoint[256];
    char name[64];
    char fp_client[PT_FINGERPRINT_LEN + 1];
    char fp_server[PT_FINGERPRINT_LEN + 1];
    link_state_t state;
    char cause[PT_LINK_CAUSE_MAX];
    char partner_id[64];
    bool want_session;   /* link_hello() was called */
    bool welcomed;       /* a Welcome came once: a session Nack means "say Hello again" */
    bool transport_up;   /* CURVE handshake done on the current connection */
    bool tcp_attempt_ok; /* a TCP connection was made since the last retry */
    bool handshake_failed;
    uint32_t initial_credit, window, publish_window, in_flight;
    int hb_ms;
    int retry_ms, retry_max_ms, retry_next_ms;
    int64_t last_send, last_recv, last_hb;
    int64_t probe_at;  /* a heartbeat went out after a silence; 0 = none pending */
    int64_t hello_due; /* next Hello retry while HELLO_SENT; -1 = none */
};

static int
zmq_fail(pt_error_t *err, const char *what)
{
    int e = zmq_errno();
    return pt_error_set(err, -e, what, "%s", zmq_strerror(e));
}

static void
link_set_state(link_t *l, link_state_t s, const char *cause)
{
    /* Retries that fail the same way say nothing new: no callback. */
    if (s == l->state && (cause == NULL || strcmp(cause, l->cause) == 0))
        return;
    if (cause != NULL)
        snprintf(l->cause, sizeof l->cause, "%s", cause);
    l->state = s;
    if (s != PT_LINK_UP && s != PT_LINK_HELLO_SENT)
        l->in_flight = 0;
    if (l->cb.on_state)
        l->cb.on_state(l->cb.arg, s, l->cause);
}

const char *
link_state_name(link_state_t s)
{
    static const char *const names[] = {"down", "connecting", "hello_sent", "up"};
    return (unsigned)s < 4 ? names[s] : "unknown";
}

/* ---- set-up ---- */

static int
link_check_keys(link_t *l, const link_options_t *o, pt_error_t *err)
{
    if (o->no_curve)
        return 0;
    if (o->server_pk == NULL || o->client_sk == NULL || o->client_pk == NULL)
        return pt_error_set(err, -EINVAL, "link", "CURVE keys missing");
    uint8_t derived[PT_KEY_LEN];
    char fp_derived[PT_FINGERPRINT_LEN + 1];
    keys_fingerprint(o->client_pk, l->fp_client);
    keys_fingerprint(o->server_pk, l->fp_server);
    int rc = crypto_scalarmult_base(derived, o->client_sk);
    keys_fingerprint(derived, fp_derived);
    bool same = rc == 0 && sodium_memcmp(derived, o->client_pk, PT_KEY_LEN) == 0;
    sodium_memzero(derived, sizeof derived);
    if (!same)
        return pt_error_set(err, PT_EINVALID, "link",
                            "mismatched key pair: the public key (fingerprint %s) is not the "
                            "secret key's (whose public key has fingerprint %s)",
                            l->fp_client, fp_derived);
    return 0;
}

static int
link_configure(link_t *l, const link_options_t *o, pt_error_t *err)
{
    int linger = 0, hb = 2000, hbto = 10000;
    int ivl = LINK_RECONNECT_IVL_MS, ivl_max = LINK_RECONNECT_IVL_MAX_MS;
    int64_t maxmsg = LINK_MAX_FRAME;
    if (zmq_setsockopt(l->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(l->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) != 0 ||
        zmq_setsockopt(l->sock, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb) != 0 ||
        zmq_setsockopt(l->sock, ZMQ_HEARTBEAT_TIMEOUT, &hbto, sizeof hbto) != 0 ||
        zmq_setsockopt(l->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) != 0 ||
        zmq_setsockopt(l->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max) != 0)
        return zmq_fail(err, "zmq_setsockopt");
    if (!o->no_curve)
        return curve_client_setup(l->sock, o->server_pk, o->client_pk, o->client_sk, err);
    return 0;
}

/* The monitor PAIR socket, on an inproc address unique to this link. */
static int
link_open_monitor(link_t *l, pt_error_t *err)
{
    /* Random, not the address of l: a closed link's monitor may still hold its name in
     * a shared context for a moment, and a new link may be allocated at the same place. */
    char addr[64];
    snprintf(addr, sizeof addr, "inproc://pt-link-%08" PRIx32 "%08" PRIx32, randombytes_random(),
             randombytes_random());
    if (zmq_socket_monitor(l->sock, addr, LINK_MONITOR_EVENTS) != 0)
        return zmq_fail(err, "zmq_socket_monitor");
    l->mon = zmq_socket(l->ctx, ZMQ_PAIR);
    int linger = 0;
    if (l->mon == NULL || zmq_setsockopt(l->mon, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_connect(l->mon, addr) != 0)
        return zmq_fail(err, "monitor");
    return 0;
}

static int
link_epoll_add(link_t *l, void *sock, pt_error_t *err)
{
    int fd;
    size_t len = sizeof fd;
    if (zmq_getsockopt(sock, ZMQ_FD, &fd, &len) != 0)
        return zmq_fail(err, "zmq_getsockopt(ZMQ_FD)");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = sock};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        return pt_error_set(err, -errno, "link", "epoll_ctl: %s", strerror(errno));
    return 0;
}

static int
link_open_sockets(link_t *l, const link_options_t *o, pt_error_t *err)
{
    l->sock = zmq_socket(l->ctx, ZMQ_DEALER);
    if (l->sock == NULL)
        return zmq_fail(err, "zmq_socket");
    int rc = link_configure(l, o, err);
    if (rc == 0)
        rc = link_open_monitor(l, err);
    if (rc == 0 && zmq_connect(l->sock, o->endpoint) != 0)
        rc = zmq_fail(err, o->endpoint);
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (rc == 0 && l->epfd < 0)
        rc = pt_error_set(err, -errno, "link", "epoll_create1: %s", strerror(errno));
    if (rc == 0)
        rc = link_epoll_add(l, l->sock, err);
    if (rc == 0)
        rc = link_epoll_add(l, l->mon, err);
    return rc;
}

static void
link_init_fields(link_t *l, const link_options_t *o, const link_callbacks_t *cb, int64_t now)
{
    if (cb)
        l->cb = *cb;
    l->epfd = -1;
    snprintf(l->endpoint, sizeof l->endpoint, "%s", o->endpoint ? o->endpoint : "");
    snprintf(l->name, sizeof l->name, "%s", o->client_name ? o->client_name : "ptibus-client");
    l->initial_credit = l->window = o->initial_credit;
    l->publish_window = o->publish_window;
    l->retry_ms = o->hello_retry_ms > 0 ? o->hello_retry_ms : PT_LINK_HELLO_RETRY_MS;
    l->retry_max_ms = o->hello_retry_max_ms > 0 ? o->hello_retry_max_ms : PT_LINK_HELLO_RETRY_MAX;
    l->retry_next_ms = l->retry_ms;
    l->hb_ms = PT_LINK_HEARTBEAT_MS;
    l->last_send = l->last_recv = l->last_hb = now;
    l->hello_due = -1;
    l->state = PT_LINK_CONNECTING;
    snprintf(l->cause, sizeof l->cause, "connecting to %.200s", l->endpoint);
}

int
link_new(const link_options_t *o, const link_callbacks_t *cb, int64_t now_ms, link_t **out,
         pt_error_t *err)
{
    *out = NULL;
    link_t *l = calloc(1, sizeof *l);
    if (l == NULL)
        return pt_error_set(err, -ENOMEM, "link", "out of memory");
    link_init_fields(l, o, cb, now_ms);
    int rc = o->endpoint ? link_check_keys(l, o, err)
                         : pt_error_set(err, -EINVAL, "link", "no endpoint");
    if (rc == 0) {
        l->ctx = o->zmq_context;
        if (l->ctx == NULL) {
            l->ctx = zmq_ctx_new();
            l->own_ctx = true;
        }
        rc = l->ctx ? link_open_sockets(l, o, err) : zmq_fail(err, "zmq_ctx_new");
    }
    if (rc != 0) {
        link_destroy(&l);
        return rc;
    }
    *out = l;
    return 0;
}

void
link_destroy(link_t **lp)
{
    if (lp == NULL || *lp == NULL)
        return;
    link_t *l = *lp;
    if (l->epfd >= 0)
        close(l->epfd);
    if (l->sock) {
        if (l->mon)
            zmq_socket_monitor(l->sock, NULL, 0);
        zmq_close(l->sock);
    }
    if (l->mon)
        zmq_close(l->mon);
    if (l->own_ctx && l->ctx)
        zmq_ctx_term(l->ctx);
    free(l);
    *lp = NULL;
}

/* ---- sending ---- */

int
link_send(link_t *l, const Ptibus__V1__Frame *frame, int64_t now_ms, pt_error_t *err)
{
    uint8_t *buf;
    size_t len;
    int rc = codec_pack(&frame->base, LINK_MAX_FRAME, &buf, &len, err);
    if (rc != 0)
        return rc;
    rc = zmq_send(l->sock, buf, len, ZMQ_DONTWAIT);
    free(buf);
    if (rc < 0)
        return zmq_fail(err, "zmq_send");
    l->last_send = now_ms;
    return 0;
}

static int
link_send_hello(link_t *l, int64_t now, pt_error_t *err)
{
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Hello h = PTIBUS__V1__HELLO__INIT;
    h.protocol_version = 1;
    h.client_name = l->name;
    h.software_version = PTIBUS_VERSION;
    h.initial_credit = l->window;
    f.kind_case = PTIBUS__V1__FRAME__KIND_HELLO;
    f.hello = &h;
    int rc = link_send(l, &f, now, err);
    /* The next retry comes after the current delay plus up to half of it (jitter, so
     * that partners do not all retry at once), and the delay doubles up to the cap. */
    int delay = l->retry_next_ms;
    l->hello_due = now + delay + (int64_t)randombytes_uniform((uint32_t)delay / 2 + 1);
    l->retry_next_ms = delay * 2 > l->retry_max_ms ? l->retry_max_ms : delay * 2;
    l->probe_at = 0;
    if (l->state != PT_LINK_HELLO_SENT) {
        /* Keep what took the link down in view until the Welcome comes. */
        char cause[PT_LINK_CAUSE_MAX];
        if (l->state == PT_LINK_DOWN)
            snprintf(cause, sizeof cause, "Hello sent, no Welcome yet; before: %.200s", l->cause);
        else
            snprintf(cause, sizeof cause, "Hello sent, no Welcome yet");
        link_set_state(l, PT_LINK_HELLO_SENT, cause);
    }
    return rc;
}

int
link_hello(link_t *l, int64_t now_ms, pt_error_t *err)
{
    l->want_session = true;
    l->window = l->initial_credit;
    l->retry_next_ms = l->retry_ms;
    if (!l->transport_up)
        return 0;
    return link_send_hello(l, now_ms, err);
}

static int
link_heartbeat(link_t *l, int64_t now, pt_error_t *err)
{
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Heartbeat h = PTIBUS__V1__HEARTBEAT__INIT;
    h.sent_at_ms = now;
    f.kind_case = PTIBUS__V1__FRAME__KIND_HEARTBEAT;
    f.heartbeat = &h;
    if (l->probe_at == 0 && now - l->last_recv >= l->hb_ms)
        l->probe_at = now;
    l->last_hb = now;
    return link_send(l, &f, now, err);
}

int
link_publish(link_t *l, const char *message_id, const uint8_t *env, size_t len, int64_t now_ms,
             pt_error_t *err)
{
    if (l->state != PT_LINK_UP)
        return pt_error_set(err, -ENOTCONN, "link", "not in session: %s", l->cause);
    if (l->publish_window > 0 && l->in_flight >= l->publish_window)
        return pt_error_set(err, -EAGAIN, "link", "publish window of %" PRIu32 " full",
                            l->publish_window);
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Publish p = PTIBUS__V1__PUBLISH__INIT;
    p.message_id = (char *)message_id;
    p.envelope.data = (uint8_t *)env;
    p.envelope.len = len;
    f.kind_case = PTIBUS__V1__FRAME__KIND_PUBLISH;
    f.publish = &p;
    int rc = link_send(l, &f, now_ms, err);
    if (rc == 0)
        l->in_flight++;
    return rc;
}

int
link_deliver_ack(link_t *l, uint64_t seq, bool ok, const char *reason, int64_t now_ms,
                 pt_error_t *err)
{
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__DeliverAck a = PTIBUS__V1__DELIVER_ACK__INIT;
    a.seq = seq;
    a.status = ok ? PTIBUS__V1__DELIVER_ACK_STATUS__DELIVER_ACK_STATUS_OK
                  : PTIBUS__V1__DELIVER_ACK_STATUS__DELIVER_ACK_STATUS_CANNOT_PROCESS;
    a.reason = (char *)(reason ? reason : "");
    f.kind_case = PTIBUS__V1__FRAME__KIND_DELIVER_ACK;
    f.deliver_ack = &a;
    return link_send(l, &f, now_ms, err);
}

int
link_credit(link_t *l, uint32_t credit, int64_t now_ms, pt_error_t *err)
{
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Credit cr = PTIBUS__V1__CREDIT__INIT;
    cr.credit = credit;
    f.kind_case = PTIBUS__V1__FRAME__KIND_CREDIT;
    f.credit = &cr;
    int rc = link_send(l, &f, now_ms, err);
    if (rc == 0) {
        uint64_t w = (uint64_t)l->window + credit;
        l->window = w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
    }
    return rc;
}

int
link_receipt_request(link_t *l, const char *message_id, int64_t now_ms, pt_error_t *err)
{
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__ReceiptRequest r = PTIBUS__V1__RECEIPT_REQUEST__INIT;
    r.message_id = (char *)message_id;
    f.kind_case = PTIBUS__V1__FRAME__KIND_RECEIPT_REQUEST;
    f.receipt_request = &r;
    return link_send(l, &f, now_ms, err);
}

/* ---- monitor events: why the transport is down ---- */

static void link_down(link_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
link_down(link_t *l, const char *fmt, ...)
{
    char cause[PT_LINK_CAUSE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cause, sizeof cause, fmt, ap);
    va_end(ap);
    l->hello_due = -1;
    link_set_state(l, PT_LINK_DOWN, cause);
}

/* A CURVE server that cannot open the client's HELLO (sealed for another server key)
 * closes the connection without a word: the client sees it closed mid-handshake. */
static void
link_on_closed_in_handshake(link_t *l)
{
    link_down(l,
              "the broker closed the connection during the CURVE handshake: wrong broker "
              "public key (this side expects %s)?",
              l->fp_server);
}

static void
link_on_handshake_failed(link_t *l, uint16_t event, uint32_t value)
{
    l->handshake_failed = true;
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        link_down(l,
                  "the broker refused this client's key (ZAP status %" PRIu32
                  "): public key %s is not registered or not allowed",
                  value, l->fp_client);
    else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
        link_down(l,
                  "CURVE handshake failed (ZMTP protocol error 0x%" PRIx32
                  "): wrong broker public key (this side expects %s)?",
                  value, l->fp_server);
    else if (value == EPIPE || value == ECONNRESET)
        link_on_closed_in_handshake(l);
    else
        link_down(l, "handshake failed: %s", zmq_strerror((int)value));
}

static void
link_on_disconnected(link_t *l)
{
    bool was_up = l->transport_up;
    l->transport_up = false;
    if (was_up)
        link_down(l, "connection to the broker at %s lost", l->endpoint);
    else if (!l->handshake_failed)
        link_on_closed_in_handshake(l);
}

static void
link_on_event(link_t *l, uint16_t event, uint32_t value, int64_t now)
{
    switch (event) {
    case ZMQ_EVENT_CONNECTED:
        l->tcp_attempt_ok = true;
        l->handshake_failed = false; /* DOWN stays DOWN, with its cause, until a handshake */
        break;
    case ZMQ_EVENT_CONNECT_RETRIED:
        if (!l->tcp_attempt_ok)
            link_down(l, "no broker at %s (connection refused or unreachable), retrying",
                      l->endpoint);
        l->tcp_attempt_ok = false;
        break;
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        l->transport_up = true;
        if (l->want_session)
            link_send_hello(l, now, NULL);
        else
            link_set_state(l, PT_LINK_CONNECTING, "connected, no Hello asked");
        break;
    case ZMQ_EVENT_DISCONNECTED:
        link_on_disconnected(l);
        break;
    default:
        link_on_handshake_failed(l, event, value);
    }
}

/* One monitor message: [u16 event, u32 value] then the endpoint. */
static int
link_read_events(link_t *l, int64_t now)
{
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, l->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return zmq_errno() == EAGAIN ? 0 : -zmq_errno();
        }
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&m) >= 6) {
            memcpy(&event, zmq_msg_data(&m), 2);
            memcpy(&value, (uint8_t *)zmq_msg_data(&m) + 2, 4);
        }
        zpart_drain(l->mon, &m);
        zmq_msg_close(&m);
        link_on_event(l, event, value, now);
    }
}

/* ---- frames ---- */

bool
link_result_from_frame(const Ptibus__V1__Frame *f, link_result_t *res, const char **mid)
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

static void
link_on_welcome(link_t *l, const Ptibus__V1__Welcome *w)
{
    snprintf(l->partner_id, sizeof l->partner_id, "%s", w->partner_id);
    if (w->heartbeat_interval_ms > 0)
        l->hb_ms = (int)w->heartbeat_interval_ms;
    l->welcomed = true;
    l->hello_due = -1;
    l->retry_next_ms = l->retry_ms;
    link_set_state(l, PT_LINK_UP, "");
}

static bool
is_session_nack(const Ptibus__V1__Frame *f)
{
    return f->kind_case == PTIBUS__V1__FRAME__KIND_NACK &&
           strcmp(f->nack->field_path, PT_SESSION_FIELD) == 0;
}

/* State first (so that on_frame sees UP with the Welcome), then the callbacks. */
static void
link_dispatch(link_t *l, Ptibus__V1__Frame *f, int64_t now)
{
    link_result_t res;
    const char *mid = NULL;
    bool is_result = link_result_from_frame(f, &res, &mid);
    if (is_result && mid[0] != '\0' && l->in_flight > 0)
        l->in_flight--;
    if (f->kind_case == PTIBUS__V1__FRAME__KIND_WELCOME)
        link_on_welcome(l, f->welcome);
    if (l->cb.on_frame && l->cb.on_frame(l->cb.arg, f))
        return;
    if (f->kind_case == PTIBUS__V1__FRAME__KIND_WELCOME && l->cb.on_welcome)
        l->cb.on_welcome(l->cb.arg, f->welcome);
    else if (is_result && mid[0] != '\0' && l->cb.on_publish_result)
        l->cb.on_publish_result(l->cb.arg, mid, &res);
    else if (f->kind_case == PTIBUS__V1__FRAME__KIND_DELIVER && l->cb.on_deliver)
        l->cb.on_deliver(l->cb.arg, f->deliver);
    else if (f->kind_case == PTIBUS__V1__FRAME__KIND_RECEIPT && l->cb.on_receipt)
        l->cb.on_receipt(l->cb.arg, f->receipt);
    (void)now;
    codec_free((ProtobufCMessage **)&f);
}

/* Receives one frame; 1 when one was handled, 0 when none is queued, <0 on error. */
static int
link_read_frame(link_t *l, int64_t now, pt_error_t *err)
{
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, l->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        return zmq_errno() == EAGAIN ? 0 : zmq_fail(err, "zmq_msg_recv");
    }
    size_t extra = zpart_drain(l->sock, &msg);
    l->last_recv = now;
    l->probe_at = 0;
    ProtobufCMessage *m = NULL;
    /* Lenient: a newer broker may send fields that this build does not know. */
    int rc = extra > 0
                 ? pt_error_set(err, PT_EMALFORMED, "frame",
                                "a message of %zu parts: a frame is exactly one part", extra + 1)
                 : codec_unpack_lenient(&ptibus__v1__frame__descriptor, zmq_msg_data(&msg),
                                        zmq_msg_size(&msg), LINK_MAX_FRAME, &m, err);
    zmq_msg_close(&msg);
    if (rc != 0)
        return rc;
    Ptibus__V1__Frame *f = (Ptibus__V1__Frame *)m;
    /* While a Hello is on its way, a session Nack answers a frame sent before it (one
     * connection keeps the order): a second Hello would only restart the session. */
    if (is_session_nack(f) && l->want_session && l->welcomed && l->state == PT_LINK_HELLO_SENT) {
        codec_free(&m);
        return 1;
    }
    if (is_session_nack(f) && l->want_session && l->welcomed) {
        codec_free(&m);
        link_set_state(l, PT_LINK_DOWN,
                       "the broker has no session for this connection "
                       "(it restarted?): saying Hello again");
        link_send_hello(l, now, NULL);
        return 1;
    }
    link_dispatch(l, f, now);
    return 1;
}

int
link_on_readable(link_t *l, int64_t now_ms, pt_error_t *err)
{
    /* ZMQ_FD is edge-triggered: asking ZMQ_EVENTS processes the commands that made the
     * descriptor readable, so a frame that arrived after the last read would wait for
     * the next event (or the next tick) unread. Read until ZMQ_EVENTS says nothing is
     * left, on both sockets: then the descriptors are re-armed and nothing waits. */
    int rc, ev_sock, ev_mon;
    do {
        if ((rc = link_read_events(l, now_ms)) < 0)
            return pt_error_set(err, rc, "link", "monitor: %s", zmq_strerror(-rc));
        while ((rc = link_read_frame(l, now_ms, err)) > 0)
            ;
        if (rc < 0)
            return rc;
        size_t len = sizeof ev_sock;
        zmq_getsockopt(l->sock, ZMQ_EVENTS, &ev_sock, &len);
        len = sizeof ev_mon;
        zmq_getsockopt(l->mon, ZMQ_EVENTS, &ev_mon, &len);
    } while ((ev_sock | ev_mon) & ZMQ_POLLIN);
    return 0;
}

/* ---- timers ---- */

int
link_tick(link_t *l, int64_t now, pt_error_t *err)
{
    if (l->state == PT_LINK_UP && l->probe_at != 0 && now - l->probe_at >= 2 * (int64_t)l->hb_ms) {
        link_down(l, "no frame from the broker for %" PRId64 " ms", now - l->last_recv);
        if (l->transport_up)
            return link_send_hello(l, now, err);
        return 0;
    }
    if (l->state == PT_LINK_HELLO_SENT && l->hello_due >= 0 && now >= l->hello_due) {
        snprintf(l->cause, sizeof l->cause, "no Welcome from the broker: saying Hello again");
        return link_send_hello(l, now, err);
    }
    if (l->state != PT_LINK_UP)
        return 0;
    bool idle_out = now - l->last_send >= l->hb_ms;
    bool idle_in = now - l->last_recv >= l->hb_ms && now - l->last_hb >= l->hb_ms;
    if (idle_out || idle_in)
        return link_heartbeat(l, now, err);
    return 0;
}

int64_t
link_next_due(const link_t *l)
{
    if (l->state == PT_LINK_HELLO_SENT)
        return l->hello_due;
    if (l->state != PT_LINK_UP)
        return -1;
    int64_t due = l->last_send + l->hb_ms;
    int64_t in = (l->last_recv > l->last_hb ? l->last_recv : l->last_hb) + l->hb_ms;
    if (in < due)
        due = in;
    if (l->probe_at != 0 && l->probe_at + 2 * (int64_t)l->hb_ms < due)
        due = l->probe_at + 2 * (int64_t)l->hb_ms;
    return due;
}

/* ---- accessors ---- */

int
link_fd(const link_t *l)
{
    return l->epfd;
}

link_state_t
link_state(const link_t *l)
{
    return l->state;
}

const char *
link_cause(const link_t *l)
{
    return l->cause;
}

const char *
link_partner_id(const link_t *l)
{
    return l->partner_id;
}

uint32_t
link_in_flight(const link_t *l)
{
    return l->in_flight;
}

void *
link_socket(link_t *l)
{
    return l->sock;
}
