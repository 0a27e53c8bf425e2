/* http_api: see http_api.h. */
#include "http_api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>
#include <sodium.h>

#include "clock.h"
#include "codec.h"
#include "pjson.h"
#include "validate.h"

#define TOKEN_FILE_MAX (64 * 1024)
#define MSG_PREFIX "/v1/messages"

typedef enum route {
    R_OTHER = 0,
    R_POST_MESSAGE,
    R_GET_MESSAGE,
    R_HEALTHZ,
    R_READYZ,
    R_METRICS,
} route_t;

static const char *const ROUTE_NAMES[] = {"other",   "post_message", "get_message",
                                          "healthz", "readyz",       "metrics"};

typedef enum req_state { RQ_RECEIVING = 0, RQ_WAITING, RQ_COMMITTED } req_state_t;

typedef struct req {
    route_t route;
    req_state_t state;
    struct MHD_Connection *con;
    char *buf;
    size_t len, cap;
    bool too_large;
    char message_id[PT_MESSAGE_ID_MAX + 1];
    const char *spool_state;
    int commit_rc;
    struct req *next; /* waiting list */
} req_t;

struct http_api {
    struct MHD_Daemon *d;
    spool_t *spool;
    metrics_t *metrics;
    bool own_metrics;
    size_t body_max;
    http_api_ready_fn ready;
    void *ready_arg;
    uint16_t port;
    uint8_t tokens[PT_HTTP_TOKENS_MAX][crypto_generichash_BYTES];
    size_t n_tokens;
    req_t *waiting;
    size_t n_waiting;
    metrics_family_t *requests;
    metrics_series_t *depth, *oldest;
};

/* ---- tokens ---- */

static int
tokens_parse(http_api_t *api, char *text, const char *path, pt_error_t *err)
{
    size_t line = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l != NULL;
         l = strtok_r(NULL, "\n", &save)) {
        line++;
        size_t n = strlen(l);
        while (n > 0 && (l[n - 1] == '\r' || l[n - 1] == ' ' || l[n - 1] == '\t'))
            l[--n] = '\0';
        while (*l == ' ' || *l == '\t')
            l++, n--;
        if (n == 0 || l[0] == '#')
            continue;
        if (n > PT_HTTP_TOKEN_MAX || api->n_tokens == PT_HTTP_TOKENS_MAX)
            return pt_error_set(err, PT_ECONFIG, path,
                                "line %zu: token over %d bytes or over %d tokens", line,
                                PT_HTTP_TOKEN_MAX, PT_HTTP_TOKENS_MAX);
        crypto_generichash(api->tokens[api->n_tokens++], crypto_generichash_BYTES,
                           (const unsigned char *)l, n, NULL, 0);
    }
    if (api->n_tokens == 0)
        return pt_error_set(err, PT_ECONFIG, path, "no token in the file (one per line)");
    return 0;
}

static int
tokens_load(http_api_t *api, const char *path, pt_error_t *err)
{
    if (path == NULL)
        return pt_error_set(err, PT_ECONFIG, "http.token_file", "required");
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return pt_error_set(err, PT_ECONFIG, path, "cannot open: %s", strerror(errno));
    struct stat st;
    char *text = NULL;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        rc = pt_error_set(err, PT_ECONFIG, path, "not a regular file");
    else if ((st.st_mode & 077) != 0)
        rc = pt_error_set(err, PT_ECONFIG, path,
                          "readable by group or others (mode %03o): chmod 600 it",
                          (unsigned)(st.st_mode & 0777));
    else if (st.st_size > TOKEN_FILE_MAX)
        rc = pt_error_set(err, PT_ECONFIG, path, "over %d bytes", TOKEN_FILE_MAX);
    else if ((text = calloc(1, (size_t)st.st_size + 1)) == NULL)
        rc = -ENOMEM;
    else if (read(fd, text, (size_t)st.st_size) != st.st_size)
        rc = pt_error_set(err, PT_ECONFIG, path, "cannot read it");
    else
        rc = tokens_parse(api, text, path, err);
    close(fd);
    if (text != NULL) {
        sodium_memzero(text, (size_t)st.st_size);
        free(text);
    }
    return rc;
}

/* Constant time in the token and over every token of the file: the hashes are compared. */
static bool
token_ok(const http_api_t *api, struct MHD_Connection *con)
{
    const char *h =
        MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    uint8_t got[crypto_generichash_BYTES];
    crypto_generichash(got, sizeof got, (const unsigned char *)h, strlen(h), NULL, 0);
    int ok = 0;
    for (size_t i = 0; i < api->n_tokens; i++)
        ok |= sodium_memcmp(got, api->tokens[i], sizeof got) == 0;
    return ok != 0;
}

/* ---- answers ---- */

static void
count(http_api_t *api, route_t r, unsigned status)
{
    char code[8];
    snprintf(code, sizeof code, "%u", status);
    const char *v[] = {ROUTE_NAMES[r], code};
    metrics_add(metrics_series(api->requests, v), 1);
}

static enum MHD_Result
respond_text(http_api_t *api, req_t *q, unsigned status, const char *ctype, char *text,
             const char *hname, const char *hval)
{
    size_t n = text != NULL ? strlen(text) : 0;
    struct MHD_Response *res = MHD_create_response_from_buffer(
        n, text != NULL ? text : "", text != NULL ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (res == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(res, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(res, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (hname != NULL)
        MHD_add_response_header(res, hname, hval);
    enum MHD_Result ret = MHD_queue_response(q->con, status, res);
    MHD_destroy_response(res);
    count(api, q->route, status);
    return ret;
}

/* Takes j. */
static enum MHD_Result
respond_json(http_api_t *api, req_t *q, unsigned status, json_t *j, const char *hname,
             const char *hval)
{
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return respond_text(api, q, status, "application/json", text, hname, hval);
}

static enum MHD_Result
respond_error(http_api_t *api, req_t *q, unsigned status, const char *code, const char *msg,
              const char *path)
{
    json_t *e = json_pack("{s:s, s:s}", "code", code, "message", msg);
    if (e != NULL && path != NULL && path[0] != '\0')
        json_object_set_new(e, "fieldPath", json_string(path));
    const char *hn = NULL, *hv = NULL;
    char retry[16];
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE) {
        snprintf(retry, sizeof retry, "%d", PT_HTTP_RETRY_AFTER_S);
        hn = MHD_HTTP_HEADER_RETRY_AFTER, hv = retry;
    } else if (status == MHD_HTTP_UNAUTHORIZED) {
        hn = MHD_HTTP_HEADER_WWW_AUTHENTICATE, hv = "Bearer";
    }
    return respond_json(api, q, status, json_pack("{s:o}", "error", e), hn, hv);
}

static enum MHD_Result
respond_accepted(http_api_t *api, req_t *q)
{
    if (q->commit_rc != 0)
        return respond_error(api, q, MHD_HTTP_SERVICE_UNAVAILABLE, "UNAVAILABLE",
                             "the spool could not commit: nothing was kept, send it again", NULL);
    return respond_json(
        api, q, MHD_HTTP_ACCEPTED,
        json_pack("{s:s, s:s}", "messageId", q->message_id, "state", q->spool_state), NULL, NULL);
}

/* ---- POST /v1/messages ---- */

static const char *
state_name(spool_state_t s)
{
    return s == SPOOL_ACCEPTED ? "accepted" : s == SPOOL_REJECTED ? "rejected" : "spooled";
}

static enum MHD_Result
too_large(http_api_t *api, req_t *q)
{
    char msg[128];
    snprintf(msg, sizeof msg, "the body is over the limit of %zu bytes", api->body_max);
    return respond_error(api, q, MHD_HTTP_CONTENT_TOO_LARGE, "TOO_LARGE", msg, NULL);
}

/* Answers at once (error) or returns 1 with the message put in the turn. */
static int
post_spool(http_api_t *api, req_t *q, const Ptibus__V1__Envelope *env, enum MHD_Result *ret)
{
    pt_error_t err;
    pt_error_clear(&err);
    uint8_t *packed = NULL;
    size_t len = 0;
    int rc = codec_pack(&env->base, PT_MAX_MESSAGE_SIZE, &packed, &len, &err);
    if (rc != 0) {
        *ret = rc == PT_ETOOLARGE
                   ? respond_error(api, q, MHD_HTTP_CONTENT_TOO_LARGE, "TOO_LARGE", err.msg, NULL)
                   : respond_error(api, q, MHD_HTTP_INTERNAL_SERVER_ERROR, "INTERNAL",
                                   pt_strerror(rc), NULL);
        return 0;
    }
    spool_msg_t m = {.message_id = env->message_id,
                     .data = packed,
                     .len = len,
                     .msg_type = codec_envelope_type(env),
                     .source = SPOOL_SRC_HTTP};
    spool_put_result_t res;
    rc = spool_put(api->spool, &m, &res, &err);
    free(packed);
    if (rc == 0) {
        snprintf(q->message_id, sizeof q->message_id, "%s", env->message_id);
        q->spool_state = state_name(res.state);
        return 1;
    }
    if (rc == PT_EDUPCONFLICT)
        *ret = respond_error(api, q, MHD_HTTP_CONFLICT, "CONFLICT",
                             "this messageId was already sent with another content", "messageId");
    else if (rc == PT_EINVALID)
        *ret = respond_error(api, q, MHD_HTTP_BAD_REQUEST, "INVALID", err.msg, err.path);
    else
        *ret = respond_error(api, q, MHD_HTTP_SERVICE_UNAVAILABLE,
                             rc == PT_EJOURNALFULL ? "SPOOL_FULL" : "UNAVAILABLE",
                             rc == PT_EJOURNALFULL ? "the spool is full: retry later"
                                                   : "the spool cannot take it now: retry later",
                             NULL);
    return 0;
}

static enum MHD_Result
post_finish(http_api_t *api, req_t *q)
{
    if (q->too_large)
        return too_large(api, q);
    const char *p = q->buf != NULL ? q->buf : "";
    size_t n = q->len;
    if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3, n -= 3;
    ProtobufCMessage *m = NULL;
    pt_error_t err;
    pt_error_clear(&err);
    int rc = pjson_parse(&ptibus__v1__envelope__descriptor, p, n, api->body_max, &m, &err);
    if (rc == 0)
        rc = validate_envelope((const Ptibus__V1__Envelope *)m, &err);
    enum MHD_Result ret = MHD_YES;
    if (rc == PT_ETOOLARGE)
        ret = too_large(api, q);
    else if (rc == -ENOMEM)
        ret = respond_error(api, q, MHD_HTTP_SERVICE_UNAVAILABLE, "UNAVAILABLE", "out of memory",
                            NULL);
    else if (rc != 0)
        ret = respond_error(api, q, MHD_HTTP_BAD_REQUEST,
                            rc == PT_EMALFORMED ? "MALFORMED" : "INVALID", err.msg, err.path);
    else if (post_spool(api, q, (const Ptibus__V1__Envelope *)m, &ret) == 1) {
        q->state = RQ_WAITING;
        q->next = api->waiting;
        api->waiting = q;
        api->n_waiting++;
        MHD_suspend_connection(q->con);
    }
    codec_free(&m);
    return ret;
}

static bool
is_json(const char *ct)
{
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0)
        return false;
    return ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ';
}

/* The first call: the headers only. */
static enum MHD_Result
post_begin(http_api_t *api, req_t *q)
{
    if (!token_ok(api, q->con))
        return respond_error(api, q, MHD_HTTP_UNAUTHORIZED, "UNAUTHORIZED",
                             "a valid bearer token is required", NULL);
    const char *ct =
        MHD_lookup_connection_value(q->con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!is_json(ct))
        return respond_error(api, q, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE",
                             "the Content-Type must be application/json", NULL);
    const char *cl =
        MHD_lookup_connection_value(q->con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL && strtoull(cl, NULL, 10) > api->body_max)
        return too_large(api, q);
    return MHD_YES;
}

static void
post_data(http_api_t *api, req_t *q, const char *data, size_t n)
{
    if (q->too_large || q->len + n > api->body_max) {
        q->too_large = true;
        return;
    }
    if (q->len + n > q->cap) {
        size_t cap = q->cap ? q->cap : 4096;
        while (cap < q->len + n)
            cap *= 2;
        char *b = realloc(q->buf, cap);
        if (b == NULL) {
            q->too_large = true; /* answered 413: better than a partial body */
            return;
        }
        q->buf = b, q->cap = cap;
    }
    memcpy(q->buf + q->len, data, n);
    q->len += n;
}

/* ---- GET routes ---- */

static bool
is_message_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > PT_MESSAGE_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)id[i] < 0x21 || (unsigned char)id[i] > 0x7e)
            return false;
    return true;
}

static enum MHD_Result
get_message(http_api_t *api, req_t *q, const char *id)
{
    if (!token_ok(api, q->con))
        return respond_error(api, q, MHD_HTTP_UNAUTHORIZED, "UNAUTHORIZED",
                             "a valid bearer token is required", NULL);
    spool_lifecycle_t *lc = malloc(sizeof *lc);
    if (lc == NULL)
        return respond_error(api, q, MHD_HTTP_SERVICE_UNAVAILABLE, "UNAVAILABLE", "out of memory",
                             NULL);
    pt_error_t err;
    int rc = is_message_id(id) ? spool_lifecycle(api->spool, id, lc, &err) : PT_ENOTFOUND;
    enum MHD_Result ret;
    if (rc == 0)
        ret = respond_json(api, q, MHD_HTTP_OK, spool_lifecycle_json(lc), NULL, NULL);
    else if (rc == PT_ENOTFOUND)
        ret =
            respond_error(api, q, MHD_HTTP_NOT_FOUND, "NOT_FOUND", "no message with this id", NULL);
    else
        ret = respond_error(api, q, MHD_HTTP_SERVICE_UNAVAILABLE, "UNAVAILABLE", pt_strerror(rc),
                            NULL);
    free(lc);
    return ret;
}

static enum MHD_Result
get_readyz(http_api_t *api, req_t *q)
{
    char why[256] = "";
    bool up = api->ready == NULL || api->ready(api->ready_arg, why, sizeof why);
    if (up && !spool_writable(api->spool)) {
        up = false;
        snprintf(why, sizeof why, "the spool is not writable (full or failing)");
    }
    if (!up && why[0] == '\0')
        snprintf(why, sizeof why, "the broker session is down");
    json_t *j =
        up ? json_pack("{s:b}", "ready", 1) : json_pack("{s:b, s:s}", "ready", 0, "reason", why);
    return respond_json(api, q, up ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, j, NULL, NULL);
}

static enum MHD_Result
get_metrics(http_api_t *api, req_t *q)
{
    spool_stats_t st;
    pt_error_t err;
    if (spool_stats(api->spool, pt_clock_wall_ms(), &st, &err) == 0) {
        metrics_set(api->depth, (double)st.depth);
        metrics_set(api->oldest, (double)st.oldest_age_ms / 1000.0);
    }
    count(api, q->route, MHD_HTTP_OK); /* this scrape counts itself */
    char *text = NULL;
    size_t len;
    if (metrics_render(api->metrics, &text, &len) != 0)
        return respond_error(api, q, MHD_HTTP_SERVICE_UNAVAILABLE, "UNAVAILABLE", "out of memory",
                             NULL);
    struct MHD_Response *res = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (res == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(res, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4");
    enum MHD_Result ret = MHD_queue_response(q->con, MHD_HTTP_OK, res);
    MHD_destroy_response(res);
    return ret;
}

/* ---- dispatch ---- */

static route_t
route_of(const char *method, const char *url, bool *method_ok)
{
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    route_t r = R_OTHER;
    if (strcmp(url, MSG_PREFIX) == 0)
        r = R_POST_MESSAGE, *method_ok = post;
    else if (strncmp(url, MSG_PREFIX "/", sizeof MSG_PREFIX) == 0)
        r = R_GET_MESSAGE, *method_ok = get;
    else if (strcmp(url, "/healthz") == 0)
        r = R_HEALTHZ, *method_ok = get;
    else if (strcmp(url, "/readyz") == 0)
        r = R_READYZ, *method_ok = get;
    else if (strcmp(url, "/metrics") == 0)
        r = R_METRICS, *method_ok = get;
    else
        *method_ok = true;
    return r;
}

static enum MHD_Result
first_call(http_api_t *api, req_t *q, const char *url, bool method_ok)
{
    if (!method_ok)
        return respond_error(api, q, MHD_HTTP_METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED",
                             "method not allowed on this path", NULL);
    switch (q->route) {
    case R_POST_MESSAGE:
        return post_begin(api, q);
    case R_GET_MESSAGE:
        return get_message(api, q, url + sizeof MSG_PREFIX);
    case R_HEALTHZ:
        return respond_json(api, q, MHD_HTTP_OK, json_pack("{s:s}", "status", "alive"), NULL, NULL);
    case R_READYZ:
        return get_readyz(api, q);
    case R_METRICS:
        return get_metrics(api, q);
    default:
        return respond_error(api, q, MHD_HTTP_NOT_FOUND, "NOT_FOUND", "no such path", NULL);
    }
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *con, const char *url, const char *method,
           const char *version, const char *data, size_t *data_size, void **con_cls)
{
    (void)version;
    http_api_t *api = cls;
    req_t *q = *con_cls;
    if (q == NULL) {
        if ((q = calloc(1, sizeof *q)) == NULL)
            return MHD_NO;
        *con_cls = q;
        q->con = con;
        bool method_ok;
        q->route = route_of(method, url, &method_ok);
        return first_call(api, q, url, method_ok);
    }
    if (q->state == RQ_COMMITTED)
        return respond_accepted(api, q);
    if (q->state == RQ_WAITING)
        return MHD_YES;
    if (*data_size > 0) {
        post_data(api, q, data, *data_size);
        *data_size = 0;
        return MHD_YES;
    }
    return post_finish(api, q);
}

static void
on_completed(void *cls, struct MHD_Connection *con, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)con, (void)toe;
    req_t *q = *con_cls;
    if (q != NULL) {
        free(q->buf);
        free(q);
        *con_cls = NULL;
    }
}

/* ---- lifecycle ---- */

static int
metrics_setup(http_api_t *api, metrics_t *m, pt_error_t *err)
{
    if (m == NULL) {
        int rc = metrics_new(&m, err);
        if (rc != 0)
            return rc;
        api->own_metrics = true;
    }
    api->metrics = m;
    metrics_desc_t d = {.type = PT_METRICS_COUNTER,
                        .name = "ptibus_adapter_http_requests_total",
                        .help = "HTTP API requests answered, by route and status",
                        .labels = "route,code"};
    int rc = metrics_declare(m, &d, &api->requests, err);
    if (rc != 0)
        return rc;
    api->depth =
        metrics_gauge(m, "ptibus_adapter_spool_depth",
                      "Messages spooled, not yet accepted or rejected by the broker", NULL, NULL);
    api->oldest = metrics_gauge(m, "ptibus_adapter_spool_oldest_age_seconds",
                                "Age of the oldest message waiting in the spool", NULL, NULL);
    return api->depth != NULL && api->oldest != NULL ? 0 : -ENOMEM;
}

static int
daemon_start(http_api_t *api, const http_api_options_t *o, pt_error_t *err)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(o->port)};
    const char *addr = o->listen_addr != NULL ? o->listen_addr : "127.0.0.1";
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
        return pt_error_set(err, PT_ECONFIG, "http.listen", "not a numeric IPv4 address");
    api->d = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, o->port, NULL, NULL, on_request, api,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
        api, MHD_OPTION_CONNECTION_LIMIT, 256u, MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (api->d == NULL)
        return pt_error_set(err, PT_EINTERNAL, "http.listen", "cannot listen on %s:%u", addr,
                            (unsigned)o->port);
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(api->d, MHD_DAEMON_INFO_BIND_PORT);
    api->port = i != NULL ? i->port : o->port;
    return 0;
}

int
http_api_start(const http_api_options_t *o, http_api_t **out, pt_error_t *err)
{
    pt_error_clear(err);
    *out = NULL;
    if (o->spool == NULL)
        return pt_error_set(err, PT_ECONFIG, "http", "a spool is required");
    if (sodium_init() < 0)
        return pt_error_set(err, PT_EINTERNAL, NULL, "sodium_init failed");
    http_api_t *api = calloc(1, sizeof *api);
    if (api == NULL)
        return -ENOMEM;
    api->spool = o->spool;
    api->body_max = o->body_max ? o->body_max : PT_HTTP_BODY_MAX_DEFAULT;
    api->ready = o->ready, api->ready_arg = o->ready_arg;
    int rc = tokens_load(api, o->token_file, err);
    if (rc == 0)
        rc = metrics_setup(api, o->metrics, err);
    if (rc == 0)
        rc = daemon_start(api, o, err);
    if (rc != 0) {
        http_api_stop(&api);
        return rc;
    }
    *out = api;
    return 0;
}

void
http_api_stop(http_api_t **p)
{
    http_api_t *api = p != NULL ? *p : NULL;
    if (api == NULL)
        return;
    if (api->d != NULL) {
        http_api_committed(api, PT_ECLOSED); /* resume the waiting ones: 503 */
        MHD_stop_daemon(api->d);
    }
    if (api->own_metrics)
        metrics_destroy(&api->metrics);
    sodium_memzero(api->tokens, sizeof api->tokens);
    free(api);
    *p = NULL;
}

uint16_t
http_api_port(const http_api_t *api)
{
    return api->port;
}

int
http_api_fd(const http_api_t *api)
{
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(api->d, MHD_DAEMON_INFO_EPOLL_FD);
    return i != NULL ? i->epoll_fd : -1;
}

int64_t
http_api_timeout_ms(const http_api_t *api)
{
    MHD_UNSIGNED_LONG_LONG t;
    if (MHD_get_timeout(api->d, &t) != MHD_YES)
        return -1;
    return t > INT64_MAX ? INT64_MAX : (int64_t)t;
}

int
http_api_run(http_api_t *api)
{
    return MHD_run(api->d) == MHD_YES ? 0 : PT_EINTERNAL;
}

size_t
http_api_pending(const http_api_t *api)
{
    return api->n_waiting;
}

void
http_api_committed(http_api_t *api, int commit_rc)
{
    if (api->waiting == NULL)
        return;
    for (req_t *q = api->waiting, *next; q != NULL; q = next) {
        next = q->next;
        q->next = NULL;
        q->state = RQ_COMMITTED;
        q->commit_rc = commit_rc;
        MHD_resume_connection(q->con);
    }
    api->waiting = NULL;
    api->n_waiting = 0;
    MHD_run(api->d);
}

int
http_api_step(http_api_t *api, int timeout_ms)
{
    int64_t t = http_api_timeout_ms(api);
    if (t >= 0 && t < timeout_ms)
        timeout_ms = (int)t;
    struct pollfd pfd = {.fd = http_api_fd(api), .events = POLLIN};
    if (poll(&pfd, 1, timeout_ms) < 0 && errno != EINTR)
        return -errno;
    int rc = http_api_run(api);
    if (api->n_waiting > 0) {
        pt_error_t err;
        http_api_committed(api, spool_commit(api->spool, &err));
    }
    return rc;
}
