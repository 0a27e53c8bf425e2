/* webhook: libcurl multi on a libuv loop (docs/adapters/webhook.md). curl tells us which
 * sockets to watch (socket callback: one uv_poll_t each) and when to wake it (timer
 * callback: one uv_timer_t); we hand the events back with curl_multi_socket_action() and
 * collect finished transfers with curl_multi_info_read(). */
#include "webhook.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <sodium.h>

#include "clock.h"
#include "log.h"
#include "pt_limits.h"

#define WH_SIG_HEX (2 * crypto_auth_hmacsha256_BYTES + 1)

typedef struct wh_req wh_req_t;
struct wh_req {
    wh_req_t *prev, *next; /* in w->queue (next only) or w->inflight */
    webhook_t *w;
    CURL *easy;
    struct curl_slist *hdrs;
    uint64_t delivery_id;
    char message_id[PT_MESSAGE_ID_MAX + 1];
    webhook_done_fn done;
    void *ctx;
    size_t len;
    uint8_t body[]; /* the copy curl sends from */
};

/* One socket curl asked us to watch; freed in its close callback only. */
typedef struct wh_sock wh_sock_t;
struct wh_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    webhook_t *w;
    wh_sock_t *prev, *next; /* in w->socks while open */
};

struct webhook {
    uv_loop_t *loop;
    uv_timer_t timer; /* curl's timeout; its close callback frees the struct */
    CURLM *multi;
    char *url, *ca_file;
    uint8_t *secret;
    size_t secret_len;
    uint64_t timeout_ms;
    uint32_t final[PT_WEBHOOK_FINAL_MAX];
    size_t n_final, max_body, max_queued;
    unsigned max_concurrent;
    wh_req_t *qhead, *qtail, *inflight;
    size_t nqueued, ninflight;
    wh_sock_t *socks;
    bool closing;
};

/* ---- requests -------------------------------------------------------------- */

static void
req_free(wh_req_t *r)
{
    if (r == NULL)
        return;
    if (r->easy != NULL)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->hdrs);
    free(r);
}

/* Calls the caller back once, then frees the request. */
static void
req_finish(wh_req_t *r, webhook_outcome_t outcome, long status, int code, const char *reason)
{
    webhook_result_t res = {.outcome = outcome, .status = status, .code = code, .reason = reason};
    webhook_done_fn done = r->done;
    void *ctx = r->ctx;
    req_free(r);
    done(ctx, &res);
}

static size_t
discard_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb; /* the answer's body is never read nor logged */
}

static bool
message_id_ok(const char *id)
{
    size_t n = id != NULL ? strlen(id) : 0;
    if (n == 0 || n > PT_MESSAGE_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (id[i] < 0x21 || id[i] > 0x7e) /* no space, control or CR/LF: a header value */
            return false;
    return true;
}

/* The options that do not change from one attempt to the next. */
static int
req_setup(wh_req_t *r)
{
    webhook_t *w = r->w;
    CURL *e = curl_easy_init();
    if (e == NULL)
        return -ENOMEM;
    r->easy = e;
    CURLcode rc = curl_easy_setopt(e, CURLOPT_URL, w->url);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_POST, 1L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_POSTFIELDS, (const char *)r->body);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->len);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)w->timeout_ms);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (rc == CURLE_OK && w->ca_file != NULL)
        rc = curl_easy_setopt(e, CURLOPT_CAINFO, w->ca_file);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_PROXY, ""); /* never an environment's proxy */
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_USERAGENT, "ptibus-webhook/1");
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_body);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    return rc == CURLE_OK ? 0 : PT_EINTERNAL;
}

/* HMAC-SHA256 of "<ts>.<body>", in hex. */
static void
req_sign(const wh_req_t *r, const char *ts, char hex[WH_SIG_HEX])
{
    crypto_auth_hmacsha256_state st;
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init(&st, r->w->secret, r->w->secret_len);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)ts, strlen(ts));
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)".", 1);
    crypto_auth_hmacsha256_update(&st, r->body, r->len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(hex, WH_SIG_HEX, mac, sizeof mac);
    sodium_memzero(&st, sizeof st);
}

static int hdr_add(struct curl_slist **list, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
hdr_add(struct curl_slist **list, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line)
        return PT_EINTERNAL;
    struct curl_slist *l = curl_slist_append(*list, line);
    if (l == NULL)
        return -ENOMEM;
    *list = l;
    return 0;
}

/* Signs with the time of leaving the queue, so a long wait does not age the signature. */
static int
req_headers(wh_req_t *r)
{
    char ts[24], sig[WH_SIG_HEX];
    snprintf(ts, sizeof ts, "%" PRId64, pt_clock_wall_ms() / 1000);
    req_sign(r, ts, sig);
    struct curl_slist *h = NULL;
    int rc = hdr_add(&h, "Content-Type: application/json");
    if (rc == 0)
        rc = hdr_add(&h, "Expect:"); /* no 100-continue round trip */
    if (rc == 0)
        rc = hdr_add(&h, "X-Ptibus-Timestamp: %s", ts);
    if (rc == 0)
        rc = hdr_add(&h, "X-Ptibus-Signature: t=%s,v1=%s", ts, sig);
    if (rc == 0)
        rc = hdr_add(&h, "X-Ptibus-Delivery: %" PRIu64, r->delivery_id);
    if (rc == 0)
        rc = hdr_add(&h, "Idempotency-Key: %s", r->message_id);
    if (rc == 0 && curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, h) != CURLE_OK)
        rc = PT_EINTERNAL;
    if (rc != 0) {
        curl_slist_free_all(h);
        return rc;
    }
    curl_slist_free_all(r->hdrs);
    r->hdrs = h;
    return 0;
}

static void
inflight_unlink(webhook_t *w, wh_req_t *r)
{
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        w->inflight = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    w->ninflight--;
}

/* Puts r on the wire. On error the caller keeps r. */
static int
req_start(webhook_t *w, wh_req_t *r)
{
    int rc = req_headers(r);
    if (rc != 0)
        return rc;
    if (curl_multi_add_handle(w->multi, r->easy) != CURLM_OK)
        return PT_EINTERNAL;
    r->prev = NULL;
    r->next = w->inflight;
    if (w->inflight != NULL)
        w->inflight->prev = r;
    w->inflight = r;
    w->ninflight++;
    return 0;
}

/* Starts waiting requests while there is room; called on the loop, never from post. */
static void
queue_pump(webhook_t *w)
{
    while (!w->closing && w->qhead != NULL && w->ninflight < w->max_concurrent) {
        wh_req_t *r = w->qhead;
        w->qhead = r->next;
        if (w->qhead == NULL)
            w->qtail = NULL;
        w->nqueued--;
        r->next = NULL;
        int rc = req_start(w, r);
        if (rc != 0) {
            pt_log_error("PT-WH-003", "delivery %" PRIu64 ": cannot start the request: %s",
                         r->delivery_id, pt_strerror(rc));
            req_finish(r, PT_WEBHOOK_RETRY, 0, rc, "the request could not be started");
        }
    }
}

/* ---- outcomes -------------------------------------------------------------- */

static bool
status_final(const webhook_t *w, long status)
{
    for (size_t i = 0; i < w->n_final; i++)
        if ((long)w->final[i] == status)
            return true;
    return false;
}

static void
req_done(webhook_t *w, wh_req_t *r, CURLcode cc)
{
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(w->multi, r->easy);
    inflight_unlink(w, r);
    uint64_t id = r->delivery_id;
    if (cc == CURLE_OK && status >= 200 && status < 300) {
        req_finish(r, PT_WEBHOOK_DELIVERED, status, 0, "delivered");
    } else if (cc == CURLE_OK && status_final(w, status)) {
        pt_log_warn("PT-WH-010", "delivery %" PRIu64 ": refused for good with %ld", id, status);
        req_finish(r, PT_WEBHOOK_FINAL, status, 0, "refused for good by the receiver");
    } else if (cc == CURLE_OK) {
        pt_log_warn("PT-WH-011", "delivery %" PRIu64 ": answered %ld, to retry", id, status);
        req_finish(r, PT_WEBHOOK_RETRY, status, 0, "the receiver answered a status to retry");
    } else {
        int code = cc == CURLE_OPERATION_TIMEDOUT ? PT_ETIMEOUT
                   : cc == CURLE_COULDNT_CONNECT  ? -ECONNREFUSED
                                                  : -EIO;
        pt_log_warn("PT-WH-012", "delivery %" PRIu64 ": %s, to retry", id, curl_easy_strerror(cc));
        req_finish(r, PT_WEBHOOK_RETRY, 0, code, curl_easy_strerror(cc));
    }
}

static void
check_done(webhook_t *w)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(w->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        wh_req_t *r = NULL;
        CURLcode cc = m->data.result;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        req_done(w, r, cc);
    }
    queue_pump(w);
}

/* ---- curl <-> libuv ---------------------------------------------------------- */

static void
on_sock_closed(uv_handle_t *h)
{
    free(h->data);
}

static void
sock_close(wh_sock_t *s)
{
    webhook_t *w = s->w;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        w->socks = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
    wh_sock_t *s = h->data;
    webhook_t *w = s->w;
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(w->multi, s->fd, flags, &running);
    check_done(w);
}

static wh_sock_t *
sock_open(webhook_t *w, curl_socket_t fd)
{
    wh_sock_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    if (uv_poll_init_socket(w->loop, &s->poll, fd) != 0) {
        free(s);
        return NULL;
    }
    s->fd = fd;
    s->w = w;
    s->poll.data = s;
    s->next = w->socks;
    if (w->socks != NULL)
        w->socks->prev = s;
    w->socks = s;
    curl_multi_assign(w->multi, fd, s);
    return s;
}

static int
on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)e;
    webhook_t *w = userp;
    wh_sock_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            curl_multi_assign(w->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (s == NULL && (s = sock_open(w, fd)) == NULL)
        return -1;
    int ev = 0;
    if (what & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    return uv_poll_start(&s->poll, ev, on_poll) == 0 ? 0 : -1;
}

static void
on_timer(uv_timer_t *t)
{
    webhook_t *w = t->data;
    int running;
    curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(w);
}

static int
on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    webhook_t *w = userp;
    if (timeout_ms < 0)
        return uv_timer_stop(&w->timer) == 0 ? 0 : -1;
    return uv_timer_start(&w->timer, on_timer, (uint64_t)timeout_ms, 0) == 0 ? 0 : -1;
}

/* ---- lifecycle ------------------------------------------------------------- */

static bool
host_is_loopback(const char *host)
{
    return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0 ||
           strcmp(host, "[::1]") == 0;
}

/* https:// anywhere; http:// only to this machine (tests, a local receiver). */
static int
check_url(const char *url, pt_error_t *err)
{
    if (url == NULL || url[0] == '\0')
        return pt_error_set(err, PT_ECONFIG, "webhook.url", "missing");
    CURLU *u = curl_url();
    if (u == NULL)
        return -ENOMEM;
    char *scheme = NULL, *host = NULL;
    int rc = 0;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        rc = pt_error_set(err, PT_ECONFIG, "webhook.url", "not a valid URL");
    else if (strcmp(scheme, "http") == 0 && !host_is_loopback(host))
        rc = pt_error_set(err, PT_ECONFIG, "webhook.url",
                          "http:// is allowed only to 127.0.0.1, [::1] or localhost: use https://");
    else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
        rc = pt_error_set(err, PT_ECONFIG, "webhook.url", "the scheme must be https");
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

static int
check_opts(const webhook_opts_t *o, pt_error_t *err)
{
    int rc = check_url(o->url, err);
    if (rc != 0)
        return rc;
    if (o->secret == NULL || o->secret_len < PT_WEBHOOK_SECRET_MIN)
        return pt_error_set(err, PT_ECONFIG, "webhook.secret_file",
                            "the secret must be at least %d bytes", PT_WEBHOOK_SECRET_MIN);
    if (o->n_final > PT_WEBHOOK_FINAL_MAX)
        return pt_error_set(err, PT_ECONFIG, "webhook.final_statuses", "at most %d statuses",
                            PT_WEBHOOK_FINAL_MAX);
    for (size_t i = 0; i < o->n_final; i++)
        if (o->final_statuses[i] < 400 || o->final_statuses[i] > 499)
            return pt_error_set(err, PT_ECONFIG, "webhook.final_statuses",
                                "entry %zu: %" PRIu32 " is not a 4xx status", i + 1,
                                o->final_statuses[i]);
    return 0;
}

static void
on_timer_closed(uv_handle_t *h)
{
    webhook_t *w = h->data;
    if (w->secret != NULL)
        sodium_memzero(w->secret, w->secret_len);
    free(w->secret);
    free(w->url);
    free(w->ca_file);
    free(w);
}

static int
wh_configure(webhook_t *w, const webhook_opts_t *o)
{
    w->url = strdup(o->url);
    w->ca_file = o->ca_file != NULL ? strdup(o->ca_file) : NULL;
    w->secret = malloc(o->secret_len);
    if (w->url == NULL || w->secret == NULL || (o->ca_file != NULL && w->ca_file == NULL))
        return -ENOMEM;
    memcpy(w->secret, o->secret, o->secret_len);
    w->secret_len = o->secret_len;
    w->timeout_ms = o->timeout_ms != 0 ? o->timeout_ms : PT_WEBHOOK_TIMEOUT_MS;
    w->max_body = o->max_body != 0 ? o->max_body : PT_WEBHOOK_MAX_BODY;
    w->max_concurrent = o->max_concurrent != 0 ? o->max_concurrent : PT_WEBHOOK_MAX_CONCURRENT;
    w->max_queued = o->max_queued != 0 ? o->max_queued : PT_WEBHOOK_MAX_QUEUED;
    w->n_final = o->n_final;
    for (size_t i = 0; i < o->n_final; i++)
        w->final[i] = o->final_statuses[i];
    w->multi = curl_multi_init();
    if (w->multi == NULL)
        return PT_EINTERNAL;
    CURLMcode mc = curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
    return mc == CURLM_OK ? 0 : PT_EINTERNAL;
}

int
webhook_new(uv_loop_t *loop, const webhook_opts_t *opts, webhook_t **out, pt_error_t *err)
{
    *out = NULL;
    int rc = check_opts(opts, err);
    if (rc != 0)
        return rc;
    webhook_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return pt_error_set(err, -ENOMEM, "webhook", "out of memory");
    w->loop = loop;
    uv_timer_init(loop, &w->timer);
    w->timer.data = w;
    rc = wh_configure(w, opts);
    if (rc != 0) {
        pt_error_set(err, rc, "webhook", "cannot set up libcurl: %s", pt_strerror(rc));
        webhook_close(&w);
        return rc;
    }
    *out = w;
    return 0;
}

int
webhook_post(webhook_t *w, uint64_t delivery_id, const char *message_id, const void *body,
             size_t len, webhook_done_fn done, void *ctx)
{
    if (w->closing)
        return PT_ECLOSED;
    if (len > w->max_body)
        return PT_ETOOLARGE;
    if (!message_id_ok(message_id))
        return PT_EINVALID;
    if (w->nqueued >= w->max_queued)
        return -EAGAIN;
    wh_req_t *r = calloc(1, sizeof *r + len + 1);
    if (r == NULL)
        return -ENOMEM;
    r->w = w;
    r->delivery_id = delivery_id;
    snprintf(r->message_id, sizeof r->message_id, "%s", message_id);
    r->done = done;
    r->ctx = ctx;
    r->len = len;
    if (len > 0)
        memcpy(r->body, body, len);
    int rc = req_setup(r);
    if (rc == 0 && w->qhead == NULL && w->ninflight < w->max_concurrent)
        rc = req_start(w, r);
    else if (rc == 0) {
        if (w->qtail != NULL)
            w->qtail->next = r;
        else
            w->qhead = r;
        w->qtail = r;
        w->nqueued++;
    }
    if (rc != 0)
        req_free(r);
    return rc;
}

void
webhook_counts(const webhook_t *w, size_t *inflight, size_t *queued)
{
    *inflight = w->ninflight;
    *queued = w->nqueued;
}

uint64_t
webhook_backoff_ms(unsigned attempt)
{
    uint64_t d = PT_WEBHOOK_BACKOFF_BASE_MS;
    for (unsigned i = 1; i < attempt && d < PT_WEBHOOK_BACKOFF_MAX_MS; i++)
        d *= 2;
    if (d > PT_WEBHOOK_BACKOFF_MAX_MS)
        d = PT_WEBHOOK_BACKOFF_MAX_MS;
    return d / 2 + randombytes_uniform((uint32_t)(d - d / 2 + 1));
}

void
webhook_close(webhook_t **wp)
{
    webhook_t *w = wp != NULL ? *wp : NULL;
    if (w == NULL)
        return;
    *wp = NULL;
    w->closing = true;
    while (w->inflight != NULL) {
        wh_req_t *r = w->inflight;
        curl_multi_remove_handle(w->multi, r->easy);
        inflight_unlink(w, r);
        req_finish(r, PT_WEBHOOK_RETRY, 0, PT_ECLOSED, "the webhook egress is closing");
    }
    while (w->qhead != NULL) {
        wh_req_t *r = w->qhead;
        w->qhead = r->next;
        req_finish(r, PT_WEBHOOK_RETRY, 0, PT_ECLOSED, "the webhook egress is closing");
    }
    w->qtail = NULL;
    w->nqueued = 0;
    if (w->multi != NULL)
        curl_multi_cleanup(w->multi); /* closes the cached connections: CURL_POLL_REMOVE */
    w->multi = NULL;
    while (w->socks != NULL)
        sock_close(w->socks);
    uv_close((uv_handle_t *)&w->timer, on_timer_closed);
}
