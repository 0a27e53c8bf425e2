/* client: blocking helpers over the link state machine (link.h), for the CLI, the tests
 * and the benchmarks: each call drives the link (heartbeats, re-Hello, monitor events)
 * while it waits. It owns its link and the frames received but not yet returned; it
 * is not thread-safe. Event loops (the adapters) use link.h directly. Frames are
 * ptibus.v1.Frame messages, one per ZeroMQ message (docs/protocol.md). */
#ifndef PT_CLIENT_H
#define PT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "err.h"
#include "link.h"
#include "ptibus/v1/envelope.pb-c.h"
#include "ptibus/v1/protocol.pb-c.h"

typedef struct client client_t;

typedef struct client_options {
    const char *endpoint;     /* e.g. "tcp://127.0.0.1:7400" */
    const uint8_t *server_pk; /* 32 bytes: the broker's CURVE public key */
    const uint8_t *client_sk; /* 32 bytes: this partner's CURVE secret key */
    const uint8_t *client_pk; /* 32 bytes: this partner's CURVE public key */
    const char *client_name;  /* sent in Hello, e.g. "ptibus-adapter-caf" */
    uint32_t initial_credit;  /* deliveries granted in Hello */
    bool no_curve;            /* tests only: connect without CURVE (must be refused) */
    void *zmq_context;        /* borrowed context, or NULL to own one */
} client_options_t;

/* The broker's answer to one Publish (see link.h). */
typedef link_result_t client_result_t;

/* Connects (asynchronously, as ZeroMQ does). Caller owns *out; close with
 * client_close(). Returns 0 or a negative code with err filled. */
int client_open(const client_options_t *opts, client_t **out, pt_error_t *err);

/* Closes the socket (linger 0: unsent frames are dropped) and sets *c to NULL. */
void client_close(client_t **c);

/* Sends Hello (once the CURVE handshake is done) and waits up to timeout_ms for Welcome;
 * fills partner_id (may be NULL). PT_ETIMEOUT when the broker does not answer, the
 * message then saying why the link is down (refused key, no broker, ...). */
int client_hello(client_t *c, int timeout_ms, char *partner_id, size_t partner_id_len,
                 pt_error_t *err);

/* Sends one frame (non-blocking; -EAGAIN when the socket's queue is full). */
int client_send(client_t *c, const Ptibus__V1__Frame *frame, pt_error_t *err);

/* Receives one frame, waiting up to timeout_ms (-1 forever). Caller owns *out; free
 * with codec_free((ProtobufCMessage **)out). PT_ETIMEOUT when nothing came. While it
 * waits it sends a Heartbeat whenever nothing was sent for the broker's heartbeat
 * interval (known from Welcome), so that the broker keeps the session alive; and when
 * the broker answers that the connection has no session (it restarted), it says Hello
 * again with the whole credit granted so far, so that deliveries resume by
 * themselves (the Welcome is returned like any frame). */
int client_recv(client_t *c, int timeout_ms, Ptibus__V1__Frame **out, pt_error_t *err);

/* Packs env and sends it as a Publish frame without waiting. */
int client_publish_async(client_t *c, const Ptibus__V1__Envelope *env, pt_error_t *err);

/* Sends a Publish of already packed envelope bytes without waiting. */
int client_publish_bytes(client_t *c, const char *message_id, const uint8_t *env, size_t len,
                         pt_error_t *err);

/* Publishes env and waits up to timeout_ms for its PublishAck or Nack (frames for
 * other messages that arrive meanwhile are dropped: use the async calls to pipeline). */
int client_publish(client_t *c, const Ptibus__V1__Envelope *env, int timeout_ms,
                   client_result_t *res, pt_error_t *err);

/* Acknowledges a delivery: ok, or cannot_process (the broker dead-letters it) with a
 * reason. */
int client_deliver_ack(client_t *c, uint64_t seq, bool ok, const char *reason, pt_error_t *err);

/* Grants credit more deliveries in flight. */
int client_credit(client_t *c, uint32_t credit, pt_error_t *err);

/* Asks the broker for the receipts of one of this partner's messages again. */
int client_receipt_request(client_t *c, const char *message_id, pt_error_t *err);

/* Fills res from a PublishAck or Nack frame; returns false for other frames. */
bool client_result_from_frame(const Ptibus__V1__Frame *frame, client_result_t *res,
                              const char **message_id);

/* The underlying ZeroMQ socket, for tests that write raw ZeroMQ messages. */
void *client_socket(client_t *c);

/* The link under the client: its state and why it is down (link_state, link_cause). */
link_t *client_link(client_t *c);

#endif
