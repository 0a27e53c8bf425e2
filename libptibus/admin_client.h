/* admin_client: the client of the broker's admin socket (docs/protocol.md, admin.proto):
 * connect with an administrator's CURVE key pair, send one AdminRequest, wait for its
 * AdminResponse. It owns the socket (a link without a session) for one call only;
 * when no answer comes, the error says why the link is down (key refused, no broker). */
#ifndef PT_ADMIN_CLIENT_H
#define PT_ADMIN_CLIENT_H

#include <stdint.h>

#include "err.h"
#include "ptibus/v1/admin.pb-c.h"

#define PT_ADMIN_MAX_REQUEST (1 << 20)
#define PT_ADMIN_MAX_RESPONSE (64 << 20)

typedef struct admin_client_options {
    const char *endpoint;     /* the broker's admin socket, e.g. "tcp://127.0.0.1:7401" */
    const uint8_t *server_pk; /* 32 bytes: the broker's CURVE public key */
    const uint8_t *client_sk; /* 32 bytes: the administrator's CURVE secret key */
    const uint8_t *client_pk; /* 32 bytes: the administrator's CURVE public key */
    int timeout_ms;           /* how long to wait for the response */
    void *zmq_context;        /* borrowed context, or NULL to own one for the call */
} admin_client_options_t;

/* Sends q and waits up to o->timeout_ms for the response. Caller owns *out; free with
 * codec_free((ProtobufCMessage **)out). PT_ETIMEOUT when nothing came (the message says
 * the link's state and cause), PT_EMALFORMED for an undecodable answer, another
 * negative code with err filled. A response with ok false is returned as is (0). */
int admin_client_call(const admin_client_options_t *o, const Ptibus__V1__AdminRequest *q,
                      Ptibus__V1__AdminResponse **out, pt_error_t *err);

#endif
