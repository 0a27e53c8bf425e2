/* webhook: the webhook egress of an adapter. POSTs each delivered message's JSON to the
 * partner's URL with libcurl's multi interface driven by the adapter's libuv loop, signed
 * with HMAC-SHA256 over "<timestamp>.<body>" (docs/adapters/webhook.md), and tells the
 * caller whether it was delivered (2xx), refused for good (a configured 4xx) or is to be
 * retried. Owns the curl multi handle, one uv_poll_t per socket, one uv_timer_t, a copy
 * of the secret and of each body until its callback; never logs a body. */
#ifndef PT_WEBHOOK_H
#define PT_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "err.h"

#define PT_WEBHOOK_TIMEOUT_MS 10000u           /* default timeout_ms */
#define PT_WEBHOOK_MAX_BODY (4u * 1024 * 1024) /* default max_body */
#define PT_WEBHOOK_MAX_CONCURRENT 8u           /* default max_concurrent */
#define PT_WEBHOOK_MAX_QUEUED 10000u           /* default max_queued */
#define PT_WEBHOOK_SECRET_MIN 16               /* bytes */
#define PT_WEBHOOK_FINAL_MAX 16                /* entries in final_statuses */
#define PT_WEBHOOK_BACKOFF_BASE_MS 1000u       /* backoff before the 2nd attempt */
#define PT_WEBHOOK_BACKOFF_MAX_MS 300000u      /* cap of the backoff (5 min) */

typedef struct webhook webhook_t;

/* Options of webhook_new(); borrowed for the call only. Zero fields take the defaults. */
typedef struct webhook_opts {
    const char *url;       /* https://...; http:// only to 127.0.0.1, [::1] or localhost */
    const uint8_t *secret; /* the shared secret, at least PT_WEBHOOK_SECRET_MIN bytes */
    size_t secret_len;
    uint64_t timeout_ms;            /* whole request, connection included */
    const uint32_t *final_statuses; /* 4xx statuses that are final, e.g. {400, 422} */
    size_t n_final;                 /* at most PT_WEBHOOK_FINAL_MAX */
    size_t max_body;                /* bodies over this are refused by webhook_post() */
    unsigned max_concurrent;        /* requests on the wire at once; the rest wait in order */
    size_t max_queued;              /* requests waiting; over it webhook_post() says -EAGAIN */
    const char *ca_file;            /* optional CA bundle instead of the system's */
} webhook_opts_t;

typedef enum webhook_outcome {
    PT_WEBHOOK_DELIVERED = 0, /* a 2xx: the caller may DeliverAck */
    PT_WEBHOOK_FINAL,         /* a configured 4xx: the caller acks CANNOT_PROCESS */
    PT_WEBHOOK_RETRY,         /* anything else: the caller retries after a backoff */
} webhook_outcome_t;

/* What became of one post, lent to the callback. */
typedef struct webhook_result {
    webhook_outcome_t outcome;
    long status;        /* the HTTP status, 0 when no answer came */
    int code;           /* 0, PT_ETIMEOUT, PT_ECLOSED, or another negative code */
    const char *reason; /* a short static sentence (never a body), for the log */
} webhook_result_t;

/* Called once per accepted webhook_post(), on the loop thread, after the request ended, or
 * from webhook_close() with RETRY and PT_ECLOSED for those still pending. It may call
 * webhook_post() again; it must not call webhook_close(). */
typedef void (*webhook_done_fn)(void *ctx, const webhook_result_t *res);

/* Creates the egress on loop. Checks the options (URL scheme and host, secret length,
 * statuses), filling err on failure: PT_ECONFIG, or -ENOMEM / PT_EINTERNAL (then *out is
 * NULL, and a half-built object is freed on the loop's next turn). On success the caller
 * owns *out; close with webhook_close(). curl_global_init() is the caller's. */
int webhook_new(uv_loop_t *loop, const webhook_opts_t *opts, webhook_t **out, pt_error_t *err);

/* Queues a POST of body (copied) with the delivery id header "X-Ptibus-Delivery: <seq>" and
 * "Idempotency-Key: <message_id>", signed when it leaves the queue. Returns 0 (then done
 * is called exactly once), PT_ETOOLARGE (body over max_body), PT_EINVALID (message id empty,
 * too long or not printable ASCII), -EAGAIN (queue full), PT_ECLOSED or -ENOMEM. */
int webhook_post(webhook_t *w, uint64_t delivery_id, const char *message_id, const void *body,
                 size_t len, webhook_done_fn done, void *ctx);

/* Requests on the wire and waiting, for metrics and tests. */
void webhook_counts(const webhook_t *w, size_t *inflight, size_t *queued);

/* Delay in ms before attempt number attempt + 1 (attempt >= 1 failed attempts): base
 * doubled per attempt, capped at PT_WEBHOOK_BACKOFF_MAX_MS, with "equal jitter" so the
 * result is in [d/2, d] for the capped delay d. */
uint64_t webhook_backoff_ms(unsigned attempt);

/* Fails every pending request (callback with RETRY, PT_ECLOSED), then closes the handles;
 * the memory goes in their close callbacks, so run the loop afterwards. Accepts NULL and
 * *w == NULL; sets *w to NULL. */
void webhook_close(webhook_t **w);

#endif
