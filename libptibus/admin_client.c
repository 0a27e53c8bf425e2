/* admin_client: one request, one response, over a link's DEALER socket. */
#include "admin_client.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include <zmq.h>

#include "clock.h"
#include "codec.h"
#include "link.h"
#include "zpart.h"

static int
admin_client_send(link_t *l, const Ptibus__V1__AdminRequest *q, pt_error_t *err)
{
    uint8_t *buf;
    size_t len;
    int rc = codec_pack(&q->base, PT_ADMIN_MAX_REQUEST, &buf, &len, err);
    if (rc != 0)
        return rc;
    /* The DEALER queues the request until the connection is made. */
    if (zmq_send(link_socket(l), buf, len, ZMQ_DONTWAIT) < 0)
        rc = pt_error_set(err, -zmq_errno(), "admin", "zmq_send: %s", zmq_strerror(zmq_errno()));
    free(buf);
    return rc;
}

static int
admin_client_recv(link_t *l, Ptibus__V1__AdminResponse **out, pt_error_t *err)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, link_socket(l), ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return pt_error_set(err, -zmq_errno(), "admin", "zmq_msg_recv: %s",
                            zmq_strerror(zmq_errno()));
    }
    size_t extra = zpart_drain(link_socket(l), &m);
    ProtobufCMessage *resp = NULL;
    int rc = extra > 0
                 ? pt_error_set(err, PT_EMALFORMED, "admin",
                                "a response of %zu parts: it is exactly one part", extra + 1)
                 : codec_unpack_lenient(&ptibus__v1__admin_response__descriptor, zmq_msg_data(&m),
                                        zmq_msg_size(&m), PT_ADMIN_MAX_RESPONSE, &resp, err);
    zmq_msg_close(&m);
    if (rc == 0)
        *out = (Ptibus__V1__AdminResponse *)resp;
    return rc;
}

/* Nothing came: read the monitor's events (the DEALER is empty) to say why. */
static int
admin_client_timeout(link_t *l, const admin_client_options_t *o, pt_error_t *err)
{
    link_on_readable(l, pt_clock_mono_ms(), NULL);
    bool down = link_state(l) == PT_LINK_DOWN;
    return pt_error_set(err, PT_ETIMEOUT, "admin", "no answer from %s within %d ms: link %s: %s%s",
                        o->endpoint, o->timeout_ms, link_state_name(link_state(l)), link_cause(l),
                        down ? "" : " (connected, but nothing came back)");
}

int
admin_client_call(const admin_client_options_t *o, const Ptibus__V1__AdminRequest *q,
                  Ptibus__V1__AdminResponse **out, pt_error_t *err)
{
    *out = NULL;
    link_options_t lo = {.endpoint = o->endpoint,
                         .server_pk = o->server_pk,
                         .client_sk = o->client_sk,
                         .client_pk = o->client_pk,
                         .client_name = "ptibus-admin",
                         .zmq_context = o->zmq_context};
    link_t *l;
    int rc = link_new(&lo, NULL, pt_clock_mono_ms(), &l, err);
    if (rc != 0)
        return rc;
    rc = admin_client_send(l, q, err);
    if (rc == 0) {
        zmq_pollitem_t item = {.socket = link_socket(l), .events = ZMQ_POLLIN};
        int n = zmq_poll(&item, 1, o->timeout_ms);
        if (n < 0)
            rc =
                pt_error_set(err, -zmq_errno(), "admin", "zmq_poll: %s", zmq_strerror(zmq_errno()));
        else
            rc = n == 0 ? admin_client_timeout(l, o, err) : admin_client_recv(l, out, err);
    }
    link_destroy(&l);
    return rc;
}
