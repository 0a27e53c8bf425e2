/* http_api: the adapter's HTTP ingress on libmicrohttpd (docs/adapters/http_api.md,
 * docs/api/openapi.yaml). POST /v1/messages decodes the proto3 JSON of one Envelope,
 * validates it with the broker's rules, packs it and spools it in the current spool turn;
 * the answer (202) leaves only once that turn has committed. GET /v1/messages/{id} gives
 * the lifecycle from the spool; /healthz, /readyz and /metrics for operations. With
 * `pull` on, GET /v1/inbox and POST /v1/inbox/{seq}/ack serve the pull inbox (pull.h).
 * With `Prefer: wait=N` a POST waits, after the commit, for the broker's answer that the
 * caller reports with http_api_publish_result() (201 or 422), or N seconds (202).
 * It owns the MHD daemon, the bearer tokens read from their file, the bodies being
 * received and the requests waiting for the commit or for the broker; the spool and the
 * metrics registry are the caller's (borrowed).
 *
 * Threading contract: MHD runs in EXTERNAL mode with epoll, driven by the caller's loop
 * thread — the one thread that owns the spool (not thread-safe). Every handler therefore
 * runs on that thread and may use the spool directly. A POST that spooled is suspended
 * (MHD_suspend_connection) until the caller reports the turn's commit with
 * http_api_committed(), which resumes it with 202 (or 503 when the commit failed). One
 * loop turn is thus: http_api_run() (reads every ready request, spools them in one
 * turn), spool_commit(), http_api_committed(), so concurrent requests share one fsync.
 * Pull listings and acks wait for the same commit (nothing uncommitted is shown, and a
 * 204 means the ack is durable). A POST with Prefer: wait stays suspended after the
 * commit; http_api_run() expires those whose time is up (202), and http_api_timeout_ms()
 * includes the earliest of their deadlines, so the caller's loop wakes for it.
 * No function of this module may be called from another thread. */
#ifndef PT_HTTP_API_H
#define PT_HTTP_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "metrics.h"
#include "spool.h"

typedef struct http_api http_api_t;

#define PT_HTTP_BODY_MAX_DEFAULT (1024 * 1024) /* bytes of one POST body */
#define PT_HTTP_TOKEN_MAX 256                  /* bytes of one bearer token */
#define PT_HTTP_TOKENS_MAX 64                  /* tokens in the file */
#define PT_HTTP_RETRY_AFTER_S 5                /* Retry-After of a 503 */
#define PT_HTTP_AUTH_FAIL_BURST 10             /* failed authentications before 429 */
#define PT_HTTP_AUTH_FAIL_RATE 0.2             /* then one more try every 5 s */
#define PT_HTTP_AUTH_PEERS 256                 /* client addresses tracked */
#define PT_HTTP_WAIT_MAX_S 30                  /* cap of Prefer: wait=N */

/* Called once the turn holding the partner's ack of seq has committed (the caller then
 * sends the broker its DeliverAck). Only for an ack that removed the seq from the inbox,
 * not for an ack again of a seq acknowledged before. */
typedef void (*http_api_pull_ack_fn)(void *arg, uint64_t seq);

/* /readyz: true when the broker session is up; otherwise false and a reason in why (no
 * personal data: it is served as it is). */
typedef bool (*http_api_ready_fn)(void *arg, char *why, size_t cap);

typedef struct http_api_options {
    const char *listen_addr; /* numeric IPv4; NULL: "127.0.0.1" */
    uint16_t port;           /* 0: any free port (see http_api_port) */
    size_t body_max;         /* 0: PT_HTTP_BODY_MAX_DEFAULT */
    const char *token_file;  /* required: one token per line, 0600 or stricter */
    spool_t *spool;          /* required, borrowed */
    metrics_t *metrics;      /* borrowed; NULL: the module makes its own registry */
    http_api_ready_fn ready; /* NULL: the broker is taken as up */
    void *ready_arg;
    bool pull;                        /* serve /v1/inbox (404 when off) */
    http_api_pull_ack_fn on_pull_ack; /* may be NULL */
    void *pull_ack_arg;
    unsigned wait_max_s; /* cap of Prefer: wait; 0: PT_HTTP_WAIT_MAX_S (at most that) */
} http_api_options_t;

/* Reads the tokens, binds and starts the daemon (nothing is served before http_api_run).
 * Returns 0; PT_ECONFIG (bad address, no token, bad token file, file readable by group or
 * others), -errno (cannot bind) or PT_EINTERNAL, err saying what. Caller owns *out. */
int http_api_start(const http_api_options_t *opts, http_api_t **out, pt_error_t *err);

/* Reads the tokens file again (a token added, or an old one removed, takes effect at
 * once). A bad file changes nothing and is reported. */
int http_api_reload_tokens(http_api_t *api, pt_error_t *err);

/* Stops the daemon (answering nothing more to waiting requests), frees; accepts NULL. */
void http_api_stop(http_api_t **api);

/* The port bound (useful with port 0). */
uint16_t http_api_port(const http_api_t *api);

/* The epoll descriptor to watch for readability (uv_poll_t), and the longest time in
 * milliseconds the caller may wait before calling http_api_run (-1: no limit): MHD's own
 * timeouts and the earliest deadline of a POST waiting for the broker. */
int http_api_fd(const http_api_t *api);
int64_t http_api_timeout_ms(const http_api_t *api);

/* Answers 202 to the POSTs whose Prefer: wait time is up, does the daemon's ready I/O and
 * runs the handlers; POSTs and pull acks write into the turn. Returns 0 or PT_EINTERNAL. */
int http_api_run(http_api_t *api);

/* Number of requests waiting for the turn's commit. */
size_t http_api_pending(const http_api_t *api);

/* The turn was committed (commit_rc 0) or failed (then nothing of it is kept): resumes
 * every waiting request with its answer (202, 204 after calling on_pull_ack, 200 for a
 * listing), or 503 with Retry-After, and sends them. A POST with Prefer: wait whose
 * message the spool says accepted or rejected is answered 201 or 422 now; one still
 * spooled keeps waiting for http_api_publish_result or its deadline. */
void http_api_committed(http_api_t *api, int commit_rc);

/* The broker's answer to the publish of message_id: nack_code 0 is a PublishAck (seq the
 * journal's), otherwise a Nack (a ptibus.v1.NackCode, with its reason and field path, each
 * may be NULL). Every POST waiting for message_id (Prefer: wait) is answered: 201
 * {"messageId", "state": "accepted", "seq"} or 422 {"error": {"code", "message",
 * "fieldPath"}}; a retryable Nack answers nothing (the caller retries; the wait goes on).
 * The answers are sent at once (the daemon is run: in external mode a resumed connection
 * does not wake http_api_fd). Call it on the loop thread, outside any callback of this
 * module, after spool_accepted / spool_rejected; an id no request waits for is ignored. */
void http_api_publish_result(http_api_t *api, const char *message_id, int nack_code, uint64_t seq,
                             bool retryable, const char *reason, const char *field_path);

/* Number of POSTs waiting for the broker's answer (Prefer: wait). */
size_t http_api_waiting(const http_api_t *api);

/* One loop turn for a caller without a loop of its own: waits up to timeout_ms for the
 * daemon's descriptor, runs it, commits the spool when a request is waiting and reports
 * the commit. Returns 0 or a negative code. */
int http_api_step(http_api_t *api, int timeout_ms);

#endif
