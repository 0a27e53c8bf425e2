/* link: the partner side of the broker protocol as a non-blocking state machine, for
 * event loops (the adapters' libuv loop) and, through client.h, for blocking callers.
 * It owns a ZeroMQ DEALER socket with CURVE, a monitor of that socket (which says why
 * the link is down: no broker listening, key refused, handshake failed), the session
 * (Hello, Welcome, re-Hello when the broker forgot it), heartbeats, liveness, the
 * credit granted and a count of publishes in flight. It never reads a clock: the
 * caller passes now_ms (a monotonic clock) to every call that needs time. Not
 * thread-safe. Frames are ptibus.v1.Frame messages, one per ZeroMQ part. */
#ifndef PT_LINK_H
#define PT_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "ptibus/v1/envelope.pb-c.h"
#include "ptibus/v1/protocol.pb-c.h"

typedef struct link link_t;

/* CONNECTING: the first connection is being made (or, before link_hello(), the
 * transport is up); DOWN: the last attempt failed or the session was lost, cause says
 * why, and ZeroMQ keeps reconnecting (the state stays DOWN through retries that fail
 * the same way); HELLO_SENT: CURVE handshake done, Hello sent, no Welcome yet; UP: in
 * session. on_state is called when the state or the cause changes. */
typedef enum link_state {
    PT_LINK_DOWN,
    PT_LINK_CONNECTING,
    PT_LINK_HELLO_SENT,
    PT_LINK_UP,
} link_state_t;

#define PT_LINK_CAUSE_MAX 256
#define PT_LINK_HELLO_RETRY_MS 1000   /* first Hello retry; doubles up to the cap */
#define PT_LINK_HELLO_RETRY_MAX 30000 /* cap of the Hello retry backoff */
#define PT_LINK_HEARTBEAT_MS 5000     /* until the Welcome gives the broker's interval */

/* The broker's answer to one Publish. */
typedef struct link_result {
    int nack_code;    /* 0 for a PublishAck, else a PTIBUS__V1__NACK_CODE__NACK_CODE_* value */
    uint64_t seq;     /* journal sequence (RECEIVED for an ack, REJECTED for a nack) */
    bool duplicate;   /* ack of an earlier identical publish */
    bool retryable;   /* nack that may succeed later (journal full, unavailable) */
    char reason[512]; /* nack reason, names the field */
    char field_path[128];
} link_result_t;

typedef struct link_options {
    const char *endpoint;     /* e.g. "tcp://127.0.0.1:7400" */
    const uint8_t *server_pk; /* 32 bytes: the broker's CURVE public key */
    const uint8_t *client_sk; /* 32 bytes: this partner's CURVE secret key (copied) */
    const uint8_t *client_pk; /* 32 bytes: this partner's CURVE public key */
    const char *client_name;  /* sent in Hello, e.g. "ptibus-adapter-caf" */
    uint32_t initial_credit;  /* deliveries granted in the first Hello */
    uint32_t publish_window;  /* publishes in flight at most (link_publish); 0 = no limit */
    int hello_retry_ms;       /* 0 = PT_LINK_HELLO_RETRY_MS */
    int hello_retry_max_ms;   /* 0 = PT_LINK_HELLO_RETRY_MAX */
    bool no_curve;            /* tests only: connect without CURVE (must be refused) */
    void *zmq_context;        /* borrowed context, or NULL to own one */
} link_options_t;

/* Called from link_on_readable() and link_tick() only, never from a send call. The
 * frame and its parts are borrowed for the call, except in on_frame. */
typedef struct link_callbacks {
    void *arg;
    /* Every frame the broker sends, before the calls below (a session Nack that the
     * link answers with a Hello excepted). Return true to take the frame (free it with
     * codec_free()): the calls below are then skipped. NULL: never taken. */
    bool (*on_frame)(void *arg, Ptibus__V1__Frame *f);
    void (*on_welcome)(void *arg, const Ptibus__V1__Welcome *w);
    void (*on_publish_result)(void *arg, const char *message_id, const link_result_t *r);
    void (*on_deliver)(void *arg, const Ptibus__V1__Deliver *d);
    void (*on_receipt)(void *arg, const Ptibus__V1__Receipt *r);
    /* After each change of state; cause says why (empty when UP). */
    void (*on_state)(void *arg, link_state_t state, const char *cause);
} link_callbacks_t;

/* Checks the keys (a public key that is not the secret key's is refused, with both
 * fingerprints), creates the socket and its monitor and starts connecting (state
 * CONNECTING). The session starts with link_hello(). cb is copied (may be NULL).
 * Caller owns *out; free with link_destroy(). 0 or negative with err filled. */
int link_new(const link_options_t *opts, const link_callbacks_t *cb, int64_t now_ms, link_t **out,
             pt_error_t *err);

/* Closes the sockets (linger 0: unsent frames are dropped); accepts NULL, sets *l NULL. */
void link_destroy(link_t **l);

/* Starts the session: from now on the link says Hello (with all the credit granted so
 * far) whenever the transport is up and there is no session: at once if the handshake
 * is done, after each reconnection, after a session Nack, after a silent broker, and
 * again with capped exponential backoff and jitter while no Welcome comes. */
int link_hello(link_t *l, int64_t now_ms, pt_error_t *err);

/* One file descriptor to watch for readability (level-triggered; an epoll set of the
 * socket's and the monitor's ZMQ_FD). When it is readable, call link_on_readable(). As
 * ZeroMQ's descriptors are edge-triggered, also call link_on_readable() once after a
 * series of sends (a libuv check handle is the place): frames may be queued already. */
int link_fd(const link_t *l);

/* Reads every monitor event and every frame queued now (until ZMQ_EVENTS says none),
 * calling the callbacks. Returns 0, or the error of a bad frame (more than one part,
 * or not decodable), that frame being dropped: call again to read what follows. */
int link_on_readable(link_t *l, int64_t now_ms, pt_error_t *err);

/* Runs the timers: heartbeat when nothing was sent or received for the broker's
 * interval; liveness (a heartbeat left unanswered for two more intervals: DOWN, then
 * Hello again); Hello retries. Returns 0 or the error of a failed send. */
int link_tick(link_t *l, int64_t now_ms, pt_error_t *err);

/* When link_tick() next has something to do (a now_ms value), or -1 for never. */
int64_t link_next_due(const link_t *l);

link_state_t link_state(const link_t *l);
const char *link_state_name(link_state_t s);
/* Why the link is not UP (or what last took it down); never NULL. */
const char *link_cause(const link_t *l);
/* The partner id from the last Welcome ("" before). */
const char *link_partner_id(const link_t *l);
/* Publishes sent and not yet answered (reset when the link goes down). */
uint32_t link_in_flight(const link_t *l);

/* Sends a Publish of packed envelope bytes. -ENOTCONN when not UP, -EAGAIN when the
 * publish window or the socket's send queue is full (nothing sent: retry after an
 * on_publish_result), other negative codes with err filled. */
int link_publish(link_t *l, const char *message_id, const uint8_t *env, size_t len, int64_t now_ms,
                 pt_error_t *err);

/* Acknowledges a delivery: ok, or cannot_process (the broker dead-letters it). */
int link_deliver_ack(link_t *l, uint64_t seq, bool ok, const char *reason, int64_t now_ms,
                     pt_error_t *err);

/* Grants credit more deliveries in flight (counted for the next re-Hello). */
int link_credit(link_t *l, uint32_t credit, int64_t now_ms, pt_error_t *err);

/* Asks the broker for the receipts of one of this partner's messages again. */
int link_receipt_request(link_t *l, const char *message_id, int64_t now_ms, pt_error_t *err);

/* Sends any frame in any state (non-blocking; -EAGAIN when the queue is full). */
int link_send(link_t *l, const Ptibus__V1__Frame *frame, int64_t now_ms, pt_error_t *err);

/* Fills r from a PublishAck or Nack frame; returns false for other frames. */
bool link_result_from_frame(const Ptibus__V1__Frame *f, link_result_t *r, const char **message_id);

/* The DEALER socket, for tests that write raw ZeroMQ messages. */
void *link_socket(link_t *l);

#endif
