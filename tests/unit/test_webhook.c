/* Unit tests of adapters/core/webhook against a real HTTP receiver (libmicrohttpd in its own
 * thread on a free 127.0.0.1 port) on a real libuv loop: signature checked by the receiver
 * with its own copy of the secret, headers, body byte for byte, 2xx / final 4xx / other
 * statuses, a receiver that never answers, connection refused, many concurrent posts with
 * the concurrency bound, close with requests pending, the refusals and the backoff bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <microhttpd.h>
#include <sodium.h>
#include <uv.h>

#include "testutil.h"
#include "webhook.h"

static const uint8_t SECRET[] = "0123456789abcdef-shared-secret";
static const uint8_t OTHER[] = "another-secret-of-the-receiver!";

/* ---- the receiver ------------------------------------------------------------ */

#define RCV_MAX 256
#define RCV_BODY_MAX (256 * 1024)

typedef struct receiver {
    struct MHD_Daemon *d;
    unsigned port;
    pthread_mutex_t mu;
    const uint8_t *secret;
    size_t secret_len;
    int script[8]; /* statuses to answer in order, then 200 */
    size_t n_script;
    size_t requests;
    /* the last request */
    bool sig_ok, ts_ok;
    char content_type[64], delivery[32], idem[80], ts[32], sig[160];
    uint8_t body[RCV_BODY_MAX];
    size_t body_len;
    bool seen[RCV_MAX]; /* delivery ids received */
} receiver_t;

typedef struct upload {
    uint8_t buf[RCV_BODY_MAX];
    size_t len;
    bool overflow;
} upload_t;

static void
copy_header(struct MHD_Connection *c, const char *name, char *dst, size_t cap)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    snprintf(dst, cap, "%s", v != NULL ? v : "");
}

/* What a partner's receiver does: HMAC-SHA256 of "<t>.<body>" with its secret, compared with
 * v1 of X-Ptibus-Signature, and t close to its own clock. */
static void
receiver_verify(receiver_t *r)
{
    char t[32] = "", v1[160] = "";
    if (sscanf(r->sig, "t=%31[0-9],v1=%159[0-9a-f]", t, v1) != 2) {
        r->sig_ok = false;
        return;
    }
    crypto_auth_hmacsha256_state st;
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    char hex[2 * sizeof mac + 1];
    crypto_auth_hmacsha256_init(&st, r->secret, r->secret_len);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)t, strlen(t));
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)".", 1);
    crypto_auth_hmacsha256_update(&st, r->body, r->body_len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
    r->sig_ok = strcmp(hex, v1) == 0;
    long long now = (long long)time(NULL), ts = atoll(t);
    r->ts_ok = strcmp(t, r->ts) == 0 && ts > now - 60 && ts <= now + 1;
}

static int
receiver_record(receiver_t *r, struct MHD_Connection *c, const upload_t *u)
{
    pthread_mutex_lock(&r->mu);
    int status = r->requests < r->n_script ? r->script[r->requests] : 200;
    r->requests++;
    copy_header(c, "Content-Type", r->content_type, sizeof r->content_type);
    copy_header(c, "X-Ptibus-Delivery", r->delivery, sizeof r->delivery);
    copy_header(c, "Idempotency-Key", r->idem, sizeof r->idem);
    copy_header(c, "X-Ptibus-Timestamp", r->ts, sizeof r->ts);
    copy_header(c, "X-Ptibus-Signature", r->sig, sizeof r->sig);
    memcpy(r->body, u->buf, u->len);
    r->body_len = u->overflow ? 0 : u->len;
    receiver_verify(r);
    unsigned long id = strtoul(r->delivery, NULL, 10);
    if (id < RCV_MAX)
        r->seen[id] = true;
    pthread_mutex_unlock(&r->mu);
    return status;
}

static enum MHD_Result
receiver_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                const char *version, const char *data, size_t *data_size, void **con_cls)
{
    (void)url;
    (void)method;
    (void)version;
    upload_t *u = *con_cls;
    if (u == NULL) {
        *con_cls = calloc(1, sizeof *u);
        return *con_cls != NULL ? MHD_YES : MHD_NO;
    }
    if (*data_size > 0) {
        if (u->len + *data_size > sizeof u->buf)
            u->overflow = true;
        else
            memcpy(u->buf + u->len, data, *data_size);
        u->len += u->overflow ? 0 : *data_size;
        *data_size = 0;
        return MHD_YES;
    }
    int status = receiver_record(cls, c, u);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(2, (void *)"ok", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void
receiver_done(void *cls, struct MHD_Connection *c, void **con_cls,
              enum MHD_RequestTerminationCode t)
{
    (void)cls;
    (void)c;
    (void)t;
    free(*con_cls);
    *con_cls = NULL;
}

/* Plain HTTP when key and cert are NULL, HTTPS with them (PEM text). */
static void
receiver_start(receiver_t *r, const uint8_t *secret, size_t secret_len, const char *key,
               const char *cert)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    r->secret = secret;
    r->secret_len = secret_len;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | (key != NULL ? MHD_USE_TLS : 0);
    if (key != NULL)
        r->d = MHD_start_daemon(flags, 0, NULL, NULL, receiver_handle, r, MHD_OPTION_SOCK_ADDR,
                                (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, receiver_done,
                                NULL, MHD_OPTION_HTTPS_MEM_KEY, key, MHD_OPTION_HTTPS_MEM_CERT,
                                cert, MHD_OPTION_END);
    else
        r->d = MHD_start_daemon(flags, 0, NULL, NULL, receiver_handle, r, MHD_OPTION_SOCK_ADDR,
                                (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, receiver_done,
                                NULL, MHD_OPTION_END);
    assert_non_null(r->d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(r->d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    r->port = info->port;
    assert_true(r->port > 0);
}

static void
receiver_stop(receiver_t *r)
{
    MHD_stop_daemon(r->d);
    pthread_mutex_destroy(&r->mu);
}

/* A TCP socket bound to a free loopback port: listening (connections queue in the kernel and
 * are never answered) or not (connections are refused). */
static int
bound_socket(bool listening, unsigned *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    if (listening)
        assert_int_equal(listen(fd, 16), 0);
    socklen_t sl = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* ---- the egress side ----------------------------------------------------------- */

/* What the callbacks saw. Tests keep theirs static: after a failed assertion, teardown's
 * webhook_close() still calls back into it. */
typedef struct done {
    size_t calls;
    webhook_result_t last;
    size_t outcomes[3];
    size_t max_inflight;
    webhook_t *w;
} done_t;

static void
on_done(void *ctx, const webhook_result_t *res)
{
    done_t *d = ctx;
    d->calls++;
    d->last = *res;
    d->outcomes[res->outcome]++;
    if (d->w != NULL) {
        size_t inflight, queued;
        webhook_counts(d->w, &inflight, &queued);
        if (inflight > d->max_inflight)
            d->max_inflight = inflight;
    }
}

static void
on_tick(uv_timer_t *t)
{
    (void)t; /* only wakes uv_run so that the deadline is checked */
}

/* Runs the loop until d->calls reaches want or ms passed; returns whether it did. */
static bool
run_until(uv_loop_t *loop, done_t *d, size_t want, uint64_t ms)
{
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 20, 20);
    uint64_t end = uv_now(loop) + ms;
    while (d->calls < want && uv_now(loop) < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return d->calls >= want;
}

typedef struct fixture {
    uv_loop_t loop;
    receiver_t rcv;
    webhook_t *w;
    char url[128];
} fixture_t;

static int
setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    receiver_start(&f->rcv, SECRET, sizeof SECRET - 1, NULL, NULL);
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%u/hook", f->rcv.port);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture_t *f = *state;
    webhook_close(&f->w);
    assert_null(f->w);
    /* bounded: a handle left open must fail the test, not hang it */
    for (int i = 0; i < 100 && uv_loop_alive(&f->loop); i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&f->loop), 0); /* every handle was closed */
    receiver_stop(&f->rcv);
    free(f);
    return 0;
}

static webhook_t *
open_webhook(fixture_t *f, const char *url, const uint8_t *secret, size_t len,
             webhook_opts_t *extra)
{
    webhook_opts_t o = extra != NULL ? *extra : (webhook_opts_t){0};
    o.url = url;
    o.secret = secret;
    o.secret_len = len;
    pt_error_t err;
    pt_error_clear(&err);
    int rc = webhook_new(&f->loop, &o, &f->w, &err);
    if (rc != 0)
        fprintf(stderr, "webhook_new: %s\n", err.msg);
    assert_int_equal(rc, 0);
    return f->w;
}

static const char BODY[] =
    "{\"messageId\":\"m-1\",\"orientation\":{\"note\":\"\xc3\xa9t\xc3\xa9\"}}";

/* ---- tests -------------------------------------------------------------------- */

static void
test_delivered_signed(void **state)
{
    fixture_t *f = *state;
    webhook_t *w = open_webhook(f, f->url, SECRET, sizeof SECRET - 1, NULL);
    static done_t d;
    d = (done_t){0};
    assert_int_equal(webhook_post(w, 42, "m-1", BODY, sizeof BODY - 1, on_done, &d), 0);
    assert_true(run_until(&f->loop, &d, 1, 5000));
    assert_int_equal(d.last.outcome, PT_WEBHOOK_DELIVERED);
    assert_int_equal(d.last.status, 200);
    assert_int_equal(d.last.code, 0);
    receiver_t *r = &f->rcv;
    pthread_mutex_lock(&r->mu);
    assert_int_equal(r->requests, 1);
    assert_true(r->sig_ok);
    assert_true(r->ts_ok);
    assert_string_equal(r->content_type, "application/json");
    assert_string_equal(r->delivery, "42");
    assert_string_equal(r->idem, "m-1");
    assert_int_equal(r->body_len, sizeof BODY - 1);
    assert_memory_equal(r->body, BODY, sizeof BODY - 1);
    pthread_mutex_unlock(&r->mu);
}

/* 200 KiB of every byte value, NUL and invalid UTF-8 included: sent as is, signed as is. */
static void
test_large_body_identical(void **state)
{
    fixture_t *f = *state;
    enum { LEN = 200 * 1024 };
    uint8_t *big = malloc(LEN);
    assert_non_null(big);
    for (size_t i = 0; i < LEN; i++)
        big[i] = (uint8_t)(i * 7 + i / 256);
    webhook_t *w = open_webhook(f, f->url, SECRET, sizeof SECRET - 1, NULL);
    static done_t d;
    d = (done_t){0};
    assert_int_equal(webhook_post(w, 9, "m-9", big, LEN, on_done, &d), 0);
    assert_true(run_until(&f->loop, &d, 1, 5000));
    assert_int_equal(d.last.outcome, PT_WEBHOOK_DELIVERED);
    pthread_mutex_lock(&f->rcv.mu);
    assert_true(f->rcv.sig_ok);
    assert_int_equal(f->rcv.body_len, LEN);
    assert_memory_equal(f->rcv.body, big, LEN);
    pthread_mutex_unlock(&f->rcv.mu);
    free(big);
}

/* A self-signed certificate for 127.0.0.1: refused while it is not trusted (verification is
 * on), delivered once it is the CA file. */
static void
test_tls_verified(void **state)
{
    fixture_t *f = *state;
    char *dir = tu_tmpdir("webhook-tls"), cmd[2048], kpath[400], cpath[400];
    snprintf(kpath, sizeof kpath, "%s/key.pem", dir);
    snprintf(cpath, sizeof cpath, "%s/cert.pem", dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout %s -out %s -days 1 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
             kpath, cpath);
    assert_int_equal(system(cmd), 0);
    uint8_t *key, *cert;
    size_t klen, clen;
    assert_int_equal(tu_read_file(kpath, &key, &klen), 0);
    assert_int_equal(tu_read_file(cpath, &cert, &clen), 0);
    receiver_t tls;
    receiver_start(&tls, SECRET, sizeof SECRET - 1, (const char *)key, (const char *)cert);
    char url[64];
    snprintf(url, sizeof url, "https://127.0.0.1:%u/hook", tls.port);

    static done_t d;
    d = (done_t){0};
    webhook_t *w = open_webhook(f, url, SECRET, sizeof SECRET - 1, NULL);
    assert_int_equal(webhook_post(w, 1, "m-1", BODY, sizeof BODY - 1, on_done, &d), 0);
    assert_true(run_until(&f->loop, &d, 1, 5000));
    assert_int_equal(d.last.outcome, PT_WEBHOOK_RETRY);
    assert_int_equal(d.last.status, 0);
    assert_int_equal(tls.requests, 0);
    webhook_close(&f->w);

    webhook_opts_t o = {.ca_file = cpath};
    w = open_webhook(f, url, SECRET, sizeof SECRET - 1, &o);
    assert_int_equal(webhook_post(w, 2, "m-2", BODY, sizeof BODY - 1, on_done, &d), 0);
    assert_true(run_until(&f->loop, &d, 2, 5000));
    assert_int_equal(d.last.outcome, PT_WEBHOOK_DELIVERED);
    pthread_mutex_lock(&tls.mu);
    assert_int_equal(tls.requests, 1);
    assert_true(tls.sig_ok);
    pthread_mutex_unlock(&tls.mu);
    webhook_close(&f->w);
    receiver_stop(&tls);
    free(key);
    free(cert);
    tu_rmtree(dir);
}

/* The receiver holds another secret: its check must fail (the 200 it answers anyway only
 * shows that the check, not the transport, is what refuses). */
static void
test_wrong_secret_fails_verification(void **state)
{
    fixture_t *f = *state;
    f->rcv.secret = OTHER;
    f->rcv.secret_len = sizeof OTHER - 1;
    webhook_t *w = open_webhook(f, f->url, SECRET, sizeof SECRET - 1, NULL);
    static done_t d;
    d = (done_t){0};
    assert_int_equal(webhook_post(w, 1, "m-1", BODY, sizeof BODY - 1, on_done, &d), 0);
    assert_true(run_until(&f->loop, &d, 1, 5000));
    pthread_mutex_lock(&f->rcv.mu);
    assert_int_equal(f->rcv.requests, 1);
    assert_false(f->rcv.sig_ok);
    pthread_mutex_unlock(&f->rcv.mu);
}

static void
test_500_then_200(void **state)
{
    fixture_t *f = *state;
    f->rcv.script[0] = 500;
    f->rcv.n_script = 1;
    webhook_t *w = open_webhook(f, f->url, SECRET, sizeof SECRET - 1, NULL);
    static done_t d;
    d = (done_t){0};
    assert_int_equal(webhook_post(w, 7, "m-7", BODY, sizeof BODY - 1, on_done, &d), 0);
    assert_true(run_until(&f->loop, &d, 1, 5000));
    assert_int_equal(d.last.outcome, PT_WEBHOOK_RETRY);
    assert_int_equal(d.last.status, 500);
    assert_int_equal(webhook_post(w, 7, "m-7", BODY, sizeof BODY - 1, on_done, &d), 0);
    assert_true(run_until(&f->loop, &d, 2, 5000));
    assert_int_equal(d.last.outcome, PT_WEBHOOK_DELIVERED);
    assert_int_equal(d.last.status, 200);
    assert_int_equal(f->rcv.requests, 2);
}

static const uint32_t FINAL[] = {400, 422};

static void
check_status(fixture_t *f, int status, webhook_outcome_t want)
{
    f->rcv.script[0] = status;
    f->rcv.n_script = 1;
    webhook_opts_t o = {.final_statuses = FINAL, .n_final = 2};
    webhook_t *w = open_webhook(f, f->url, SECRET, sizeof SECRET - 1, &o);
    static done_t d;
    d = (done_t){0};
    assert_int_equal(webhook_post(w, 3, "m-3", BODY, sizeof BODY - 1, on_done, &d), 0);
    assert_true(run_until(&f->loop, &d, 1, 5000));
    assert_int_equal(d.last.outcome, want);
    assert_int_equal(d.last.status, status);
}

static void
test_400_final(void **state)
{
    check_status(*state, 400, PT_WEBHOOK_FINAL);
}

static void
test_404_not_final_retry(void **state)
{
    check_status(*state, 404, PT_WEBHOOK_RETRY);
}

static void
test_timeout_retry(void **state)
{
    fixture_t *f = *state;
    unsigned port;
    int fd = bound_socket(true, &port);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", port);
    webhook_opts_t o = {.timeout_ms = 300};
    webhook_t *w = open_webhook(f, url, SECRET, sizeof SECRET - 1, &o);
    static done_t d;
    d = (done_t){0};
    uint64_t t0 = uv_now(&f->loop);
    assert_int_equal(webhook_post(w, 1, "m-1", BODY, sizeof BODY - 1, on_done, &d), 0);
    assert_true(run_until(&f->loop, &d, 1, 5000));
    uv_update_time(&f->loop);
    assert_int_equal(d.last.outcome, PT_WEBHOOK_RETRY);
    assert_int_equal(d.last.code, PT_ETIMEOUT);
    assert_int_equal(d.last.status, 0);
    assert_true(uv_now(&f->loop) - t0 >= 250);
    close(fd);
}

static void
test_refused_retry(void **state)
{
    fixture_t *f = *state;
    unsigned port;
    int fd = bound_socket(false, &port);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", port);
    webhook_t *w = open_webhook(f, url, SECRET, sizeof SECRET - 1, NULL);
    static done_t d;
    d = (done_t){0};
    assert_int_equal(webhook_post(w, 1, "m-1", BODY, sizeof BODY - 1, on_done, &d), 0);
    assert_true(run_until(&f->loop, &d, 1, 5000));
    assert_int_equal(d.last.outcome, PT_WEBHOOK_RETRY);
    assert_int_equal(d.last.code, -ECONNREFUSED);
    close(fd);
}

static void
test_many_concurrent(void **state)
{
    fixture_t *f = *state;
    webhook_opts_t o = {.max_concurrent = 4};
    webhook_t *w = open_webhook(f, f->url, SECRET, sizeof SECRET - 1, &o);
    static done_t d;
    d = (done_t){.w = w};
    enum { N = 100 };
    for (unsigned i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof id, "m-%u", i);
        assert_int_equal(webhook_post(w, i, id, BODY, sizeof BODY - 1, on_done, &d), 0);
    }
    size_t inflight, queued;
    webhook_counts(w, &inflight, &queued);
    assert_int_equal(inflight, 4);
    assert_int_equal(queued, N - 4);
    assert_true(run_until(&f->loop, &d, N, 20000));
    assert_int_equal(d.outcomes[PT_WEBHOOK_DELIVERED], N);
    assert_true(d.max_inflight <= 4);
    webhook_counts(w, &inflight, &queued);
    assert_int_equal(inflight + queued, 0);
    pthread_mutex_lock(&f->rcv.mu);
    assert_int_equal(f->rcv.requests, N);
    for (unsigned i = 0; i < N; i++)
        assert_true(f->rcv.seen[i]);
    pthread_mutex_unlock(&f->rcv.mu);
}

/* Closing with one request on the wire and one waiting: both are called back with RETRY and
 * PT_ECLOSED, and teardown checks that every handle was closed. */
static void
test_close_pending(void **state)
{
    fixture_t *f = *state;
    unsigned port;
    int fd = bound_socket(true, &port);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", port);
    webhook_opts_t o = {.max_concurrent = 1};
    webhook_t *w = open_webhook(f, url, SECRET, sizeof SECRET - 1, &o);
    static done_t d;
    d = (done_t){0};
    assert_int_equal(webhook_post(w, 1, "m-1", BODY, sizeof BODY - 1, on_done, &d), 0);
    assert_int_equal(webhook_post(w, 2, "m-2", BODY, sizeof BODY - 1, on_done, &d), 0);
    assert_false(run_until(&f->loop, &d, 1, 200));
    webhook_close(&f->w);
    assert_int_equal(d.calls, 2);
    assert_int_equal(d.outcomes[PT_WEBHOOK_RETRY], 2);
    assert_int_equal(d.last.code, PT_ECLOSED);
    close(fd);
}

static void
test_refusals(void **state)
{
    fixture_t *f = *state;
    webhook_opts_t o = {.max_body = 16};
    webhook_t *w = open_webhook(f, f->url, SECRET, sizeof SECRET - 1, &o);
    static done_t d;
    d = (done_t){0};
    assert_int_equal(webhook_post(w, 1, "m-1", BODY, 17, on_done, &d), PT_ETOOLARGE);
    assert_int_equal(webhook_post(w, 1, "m-1\r\nX-Evil: 1", BODY, 4, on_done, &d), PT_EINVALID);
    assert_int_equal(webhook_post(w, 1, "", BODY, 4, on_done, &d), PT_EINVALID);
    assert_int_equal(d.calls, 0);

    pt_error_t err;
    webhook_t *bad = NULL;
    webhook_opts_t c = {.url = "http://example.org/hook", .secret = SECRET, .secret_len = 30};
    assert_int_equal(webhook_new(&f->loop, &c, &bad, &err), PT_ECONFIG);
    assert_non_null(strstr(err.msg, "https"));
    /* hosts that only look local: the host is parsed, not matched as a prefix */
    static const char *const lookalikes[] = {"http://127.0.0.1.example.org/hook",
                                             "http://localhost.example.org/hook",
                                             "http://127.0.0.1@example.org/hook",
                                             "ftp://127.0.0.1/x",
                                             "not a url",
                                             NULL};
    for (size_t i = 0; lookalikes[i] != NULL; i++) {
        c.url = lookalikes[i];
        assert_int_equal(webhook_new(&f->loop, &c, &bad, &err), PT_ECONFIG);
    }
    c.url = f->url;
    c.secret_len = 8;
    assert_int_equal(webhook_new(&f->loop, &c, &bad, &err), PT_ECONFIG);
    c.secret_len = 30;
    static const uint32_t not4xx[] = {500};
    c.final_statuses = not4xx;
    c.n_final = 1;
    assert_int_equal(webhook_new(&f->loop, &c, &bad, &err), PT_ECONFIG);
    assert_null(bad);
    c.url = "https://partner.example.org/hook";
    c.n_final = 0;
    assert_int_equal(webhook_new(&f->loop, &c, &bad, &err), 0);
    webhook_close(&bad);
}

static void
test_backoff_bounds(void **state)
{
    (void)state;
    for (unsigned a = 0; a < 64; a++) {
        uint64_t d = PT_WEBHOOK_BACKOFF_BASE_MS << (a > 1 ? (a - 1 < 20 ? a - 1 : 20) : 0);
        if (d > PT_WEBHOOK_BACKOFF_MAX_MS)
            d = PT_WEBHOOK_BACKOFF_MAX_MS;
        uint64_t lo = UINT64_MAX, hi = 0;
        for (int i = 0; i < 200; i++) {
            uint64_t b = webhook_backoff_ms(a);
            lo = b < lo ? b : lo;
            hi = b > hi ? b : hi;
        }
        assert_true(lo >= d / 2);
        assert_true(hi <= d);
        assert_true(hi > lo); /* jitter */
    }
    assert_true(webhook_backoff_ms(UINT32_MAX) <= PT_WEBHOOK_BACKOFF_MAX_MS);
    assert_true(webhook_backoff_ms(3) >= 2000);
}

int
main(void)
{
    if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delivered_signed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_body_identical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_secret_fails_verification, setup, teardown),
        cmocka_unit_test_setup_teardown(test_500_then_200, setup, teardown),
        cmocka_unit_test_setup_teardown(test_400_final, setup, teardown),
        cmocka_unit_test_setup_teardown(test_404_not_final_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_verified, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test(test_backoff_bounds),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
