/* client: the blocking helpers, a poll loop over one link. */
#include "client.h"
#include "clock.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

/* Frames may carry an envelope of up to 16 MiB plus framing. */
#define CLIENT_MAX_FRAME (17 * 1024 * 1024)

struct client {
    link_t *link;
    Ptibus__V1__Frame **q; /* frames read by the link, not yet returned: a ring */
    size_t q_head, q_len, q_cap;
    int q_fail; /* set when the ring could not grow: the frame was dropped */
};

static int64_t
now_ms(void)
{
    return pt_clock_mono_ms();
}

/* on_frame: the client takes every frame, to return them one by one in order. */
static bool
client_take(void *arg, Ptibus__V1__Frame *f)
{
    client_t *c = arg;
    if (c->q_len == c->q_cap) {
        size_t cap = c->q_cap ? c->q_cap * 2 : 16;
        Ptibus__V1__Frame **q = malloc(cap * sizeof *q);
        if (q == NULL) {
            c->q_fail = -ENOMEM;
            return false;
        }
        for (size_t i = 0; i < c->q_len; i++)
            q[i] = c->q[(c->q_head + i) % c->q_cap];
        free(c->q);
        c->q = q;
        c->q_cap = cap;
        c->q_head = 0;
    }
    c->q[(c->q_head + c->q_len++) % c->q_cap] = f;
    return true;
}

static Ptibus__V1__Frame *
client_pop(client_t *c)
{
    if (c->q_len == 0)
        return NULL;
    Ptibus__V1__Frame *f = c->q[c->q_head];
    c->q_head = (c->q_head + 1) % c->q_cap;
    c->q_len--;
    return f;
}

int
client_open(const client_options_t *o, client_t **out, pt_error_t *err)
{
    *out = NULL;
    client_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return pt_error_set(err, -ENOMEM, "client", "out of memory");
    link_options_t lo = {.endpoint = o->endpoint,
                         .server_pk = o->server_pk,
                         .client_sk = o->client_sk,
                         .client_pk = o->client_pk,
                         .client_name = o->client_name,
                         .initial_credit = o->initial_credit,
                         .no_curve = o->no_curve,
                         .zmq_context = o->zmq_context};
    link_callbacks_t cb = {.arg = c, .on_frame = client_take};
    int rc = link_new(&lo, &cb, now_ms(), &c->link, err);
    if (rc != 0) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void
client_close(client_t **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    client_t *c = *cp;
    Ptibus__V1__Frame *f;
    while ((f = client_pop(c)) != NULL)
        codec_free((ProtobufCMessage **)&f);
    free(c->q);
    link_destroy(&c->link);
    free(c);
    *cp = NULL;
}

void *
client_socket(client_t *c)
{
    return link_socket(c->link);
}

link_t *
client_link(client_t *c)
{
    return c->link;
}

int
client_send(client_t *c, const Ptibus__V1__Frame *frame, pt_error_t *err)
{
    return link_send(c->link, frame, now_ms(), err);
}

/* Milliseconds to sleep in poll: until the deadline or the link's next timer. */
static int
client_poll_ms(const client_t *c, int64_t now, int64_t deadline)
{
    int64_t due = link_next_due(c->link);
    int64_t until = deadline;
    if (due >= 0 && (until < 0 || due < until))
        until = due;
    if (until < 0)
        return -1;
    return until <= now ? 0 : (int)(until - now);
}

static int
client_timeout(client_t *c, int timeout_ms, pt_error_t *err)
{
    if (link_state(c->link) == PT_LINK_UP)
        return pt_error_set(err, PT_ETIMEOUT, "client", "no frame within %d ms", timeout_ms);
    return pt_error_set(err, PT_ETIMEOUT, "client", "no frame within %d ms: link %s: %s",
                        timeout_ms, link_state_name(link_state(c->link)), link_cause(c->link));
}

/* Runs the link until a frame is queued, an error or the deadline (-1: none). */
static int
client_pump(client_t *c, int timeout_ms, int64_t deadline, pt_error_t *err)
{
    for (;;) {
        int64_t now = now_ms();
        int rc = link_on_readable(c->link, now, err);
        if (rc == 0 && c->q_fail != 0)
            rc = pt_error_set(err, c->q_fail, "client", "out of memory: a frame was dropped");
        c->q_fail = 0;
        if (rc != 0 || c->q_len > 0)
            return rc;
        link_tick(c->link, now, NULL); /* a heartbeat that cannot be sent is not fatal */
        if (deadline >= 0 && now >= deadline)
            return client_timeout(c, timeout_ms, err);
        struct pollfd p = {.fd = link_fd(c->link), .events = POLLIN};
        if (poll(&p, 1, client_poll_ms(c, now, deadline)) < 0 && errno != EINTR)
            return pt_error_set(err, -errno, "client", "poll: %s", strerror(errno));
    }
}

int
client_recv(client_t *c, int timeout_ms, Ptibus__V1__Frame **out, pt_error_t *err)
{
    *out = client_pop(c);
    if (*out != NULL)
        return 0;
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    int rc = client_pump(c, timeout_ms, deadline, err);
    if (rc == 0)
        *out = client_pop(c);
    return rc;
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

int
client_hello(client_t *c, int timeout_ms, char *partner_id, size_t partner_id_len, pt_error_t *err)
{
    int rc = link_hello(c->link, now_ms(), err);
    if (rc != 0)
        return rc;
    Ptibus__V1__Frame *w;
    rc = client_wait_case(c, timeout_ms, PTIBUS__V1__FRAME__KIND_WELCOME,
                          PTIBUS__V1__FRAME__KIND_WELCOME, NULL, &w, err);
    if (rc != 0)
        return rc;
    if (partner_id && partner_id_len)
        snprintf(partner_id, partner_id_len, "%s", w->welcome->partner_id);
    codec_free((ProtobufCMessage **)&w);
    return 0;
}

/* Sent in any state (the tests publish before Hello on purpose), outside the
 * link's publish window. */
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
    return link_result_from_frame(f, res, mid);
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
    return link_deliver_ack(c->link, seq, ok, reason, now_ms(), err);
}

int
client_credit(client_t *c, uint32_t credit, pt_error_t *err)
{
    return link_credit(c->link, credit, now_ms(), err);
}

int
client_receipt_request(client_t *c, const char *message_id, pt_error_t *err)
{
    return link_receipt_request(c->link, message_id, now_ms(), err);
}
