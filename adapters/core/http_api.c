/* http_api: see http_api.h. */
#include "http_api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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

#include "bucket.h"
#include "clock.h"
#include "codec.h"
#include "pjson.h"
#include "pull.h"
#include "validate.h"

#define TOKEN_FILE_MAX (64 * 1024)
#define MSG_PREFIX "/v1/messages"
#define INBOX_PREFIX "/v1/inbox"
#define ACK_SUFFIX "/ack"
#define HEADER_PREFER "Prefer"
#define HEADER_PREFERENCE_APPLIED "Preference-Applied"

typedef enum route {
    R_OTHER = 0,
    R_POST_MESSAGE,
    R_GET_MESSAGE,
    R_HEALTHZ,
    R_READYZ,
    R_METRICS,
    R_GET_INBOX,
    R_ACK_INBOX,
} route_t;

static const char *const ROUTE_NAMES[] = {"other",  "post_message", "get_message", "healthz",
                                          "readyz", "metrics",      "get_inbox",   "ack_inbox"};

/* A request is received, then may wait (suspended) for the turn's commit, then (a POST
 * with Prefer: wait) for the broker, and is resumed with its answer decided. */
typedef enum req_state { RQ_RECEIVING = 0, RQ_COMMIT, RQ_BROKER, RQ_ANSWER } req_state_t;

typedef enum answer {
    ANS_SPOOLED = 1, /* 202 */
    ANS_ACCEPTED,    /* 201, the broker's seq */
    ANS_REJECTED,    /* 422, the broker's Nack */
    ANS_ACKED,       /* 204 */
    ANS_LIST,        /* 200, the listing in text */
    ANS_UNAVAILABLE, /* 503: the commit failed, nothing of the turn was kept */
    ANS_FULL,        /* 503: the commit failed for want of room (disk or spool full) */
} answer_t;

typedef struct req {
    route_t route;
    req_state_t state;
    answer_t answer;
    struct MHD_Connection *con;
    char *buf;
    size_t len, cap;
    bool too_large;
    char message_id[PT_MESSAGE_ID_MAX + 1];
    const char *spool_state;
    unsigned wait_s;     /* Prefer: wait, capped; 0: none */
    int64_t deadline_ms; /* of the wait, monotonic */
    uint64_t seq;        /* ANS_ACCEPTED: the journal's; an ack: the seq acknowledged */
    uint64_t after;      /* GET /v1/inbox */
    size_t limit;
    bool acked; /* the ack removed the seq from the inbox */
    int nack_code;
    char reason[PT_SPOOL_REASON_MAX + 1];
    char field_path[PT_ERROR_PATH_MAX];
    char *text;       /* ANS_LIST, owned */
    struct req *next; /* in api->waiting (RQ_COMMIT) or api->brokered (RQ_BROKER) */
} req_t;

/* A client address that failed to authenticate: its failures drain a bucket; empty, its
 * requests are answered 429 without looking at the token (a guess costs time). */
typedef struct auth_peer {
    uint8_t addr[16];
    uint8_t len; /* 0: free slot */
    pt_bucket_t fails;
} auth_peer_t;

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
    char *token_file;
    auth_peer_t peers[PT_HTTP_AUTH_PEERS]; /* failed authentications by client address */
    req_t *waiting;                        /* for the turn's commit */
    size_t n_waiting;
    req_t *brokered; /* Prefer: wait, committed, for the broker's answer */
    size_t n_brokered;
    bool pull;
    http_api_pull_ack_fn on_pull_ack;
    void *pull_ack_arg;
    unsigned wait_max_s;
    metrics_family_t *requests;
    metrics_series_t *depth, *oldest, *pull_depth;
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

/* The client's address as bytes (4 or 16), 0 when unknown. */
static uint8_t
peer_addr(struct MHD_Connection *con, uint8_t out[16])
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(con, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa != NULL && sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 4;
    }
    if (sa != NULL && sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return 16;
    }
    return 0;
}

/* The slot of addr (a new one, or the one least failing, when create). */
static auth_peer_t *
peer_find(http_api_t *api, const uint8_t *addr, uint8_t len, bool create, int64_t now)
{
    auth_peer_t *spare = NULL; /* a free slot, else the least failing address */
    for (size_t i = 0; i < PT_HTTP_AUTH_PEERS; i++) {
        auth_peer_t *p = &api->peers[i];
        if (p->len == len && memcmp(p->addr, addr, len) == 0)
            return p;
        if (p->len == 0) {
            if (spare == NULL || spare->len != 0)
                spare = p;
            continue;
        }
        bucket_take(&p->fails, 0, now); /* refill, to compare */
        if (spare == NULL || (spare->len != 0 && p->fails.tokens > spare->fails.tokens))
            spare = p;
    }
    if (!create || spare == NULL)
        return NULL;
    memcpy(spare->addr, addr, len);
    spare->len = len;
    bucket_init(&spare->fails, PT_HTTP_AUTH_FAIL_RATE, PT_HTTP_AUTH_FAIL_BURST, now);
    return spare;
}

static enum MHD_Result respond_error(http_api_t *api, req_t *q, unsigned status, const char *code,
                                     const char *msg, const char *path);

/* The bearer token of the request: true when good; otherwise the request is answered
 * (401, or 429 once its address failed too often) into *ret. */
static bool
authorized(http_api_t *api, req_t *q, enum MHD_Result *ret)
{
    uint8_t addr[16];
    uint8_t len = peer_addr(q->con, addr);
    int64_t now = pt_clock_mono_ms();
    auth_peer_t *p = len ? peer_find(api, addr, len, false, now) : NULL;
    if (p != NULL && (bucket_take(&p->fails, 0, now), p->fails.tokens < 1)) {
        *ret =
            respond_error(api, q, MHD_HTTP_TOO_MANY_REQUESTS, "TOO_MANY_FAILURES",
                          "too many failed authentications from this address: retry later", NULL);
        return false;
    }
    if (token_ok(api, q->con))
        return true;
    if (len && (p = peer_find(api, addr, len, true, now)) != NULL)
        bucket_take(&p->fails, 1, now);
    *ret = respond_error(api, q, MHD_HTTP_UNAUTHORIZED, "UNAUTHORIZED",
                         "a valid bearer token is required", NULL);
    return false;
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
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE || status == MHD_HTTP_TOO_MANY_REQUESTS) {
        snprintf(retry, sizeof retry, "%d",
                 status == MHD_HTTP_TOO_MANY_REQUESTS ? (int)(1 / PT_HTTP_AUTH_FAIL_RATE)
                                                      : PT_HTTP_RETRY_AFTER_S);
        hn = MHD_HTTP_HEADER_RETRY_AFTER, hv = retry;
    } else if (status == MHD_HTTP_UNAUTHORIZED) {
        hn = MHD_HTTP_HEADER_WWW_AUTHENTICATE, hv = "Bearer";
    }
    return respond_json(api, q, status, json_pack("{s:o}", "error", e), hn, hv);
}

static enum MHD_Result
respond_empty(http_api_t *api, req_t *q, unsigned status)
{
    struct MHD_Response *res = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (res == NULL)
        return MHD_NO;
    MHD_add_response_header(res, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(q->con, status, res);
    MHD_destroy_response(res);
    count(api, q->route, status);
    return ret;
}

static const char *
nack_name(int code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&ptibus__v1__nack_code__descriptor, code);
    return v != NULL ? v->name : "NACK_CODE_UNSPECIFIED";
}

/* The broker's answer, as Prefer: wait asked for it (Preference-Applied says so). */
static enum MHD_Result
respond_outcome(http_api_t *api, req_t *q)
{
    char applied[32], seq[24];
    snprintf(applied, sizeof applied, "wait=%u", q->wait_s);
    if (q->answer == ANS_ACCEPTED) {
        snprintf(seq, sizeof seq, "%" PRIu64, q->seq); /* uint64: a string, as proto3 JSON */
        json_t *j = json_pack("{s:s, s:s, s:s}", "messageId", q->message_id, "state", "accepted",
                              "seq", seq);
        return respond_json(api, q, MHD_HTTP_CREATED, j, HEADER_PREFERENCE_APPLIED, applied);
    }
    json_t *e = json_pack("{s:s, s:s}", "code", nack_name(q->nack_code), "message",
                          q->reason[0] != '\0' ? q->reason : "refused by the broker");
    if (e != NULL && q->field_path[0] != '\0')
        json_object_set_new(e, "fieldPath", json_string(q->field_path));
    return respond_json(api, q, MHD_HTTP_UNPROCESSABLE_CONTENT, json_pack("{s:o}", "error", e),
                        HEADER_PREFERENCE_APPLIED, applied);
}

/* The answer decided while the request was suspended. */
static enum MHD_Result
respond_final(http_api_t *api, req_t *q)
{
    char *text = q->text;
    switch (q->answer) {
    case ANS_ACCEPTED:
    case ANS_REJECTED:
        return respond_outcome(api, q);
    case ANS_ACKED:
        return respond_empty(api, q, MHD_HTTP_NO_CONTENT);
    case ANS_LIST:
        q->text = NULL;
        return respond_text(api, q, MHD_HTTP_OK, "application/json", text, NULL, NULL);
    case ANS_UNAVAILABLE:
        return respond_error(api, q, MHD_HTTP_SERVICE_UNAVAILABLE, "UNAVAILABLE",
                             "the spool could not commit: nothing was kept, send it again", NULL);
    case ANS_FULL:
        return respond_error(api, q, MHD_HTTP_SERVICE_UNAVAILABLE, "SPOOL_FULL",
                             "the spool's disk is full: nothing was kept, retry later", NULL);
    default:
        return respond_json(
            api, q, MHD_HTTP_ACCEPTED,
            json_pack("{s:s, s:s}", "messageId", q->message_id, "state", q->spool_state), NULL,
            NULL);
    }
}

/* ---- suspended requests ---- */

/* Suspends q until the turn's commit (http_api_committed). */
static void
wait_commit(http_api_t *api, req_t *q)
{
    q->state = RQ_COMMIT;
    q->next = api->waiting;
    api->waiting = q;
    api->n_waiting++;
    MHD_suspend_connection(q->con);
}

/* Resumes a suspended q (in no list any more) with its answer; the handler, called again
 * by MHD, sends it. */
static void
resume_with(req_t *q, answer_t a)
{
    q->state = RQ_ANSWER;
    q->answer = a;
    MHD_resume_connection(q->con);
}

static void
unlink_req(req_t **head, size_t *n, req_t *q)
{
    for (req_t **pp = head; *pp != NULL; pp = &(*pp)->next)
        if (*pp == q) {
            *pp = q->next;
            q->next = NULL;
            (*n)--;
            return;
        }
}

static void
set_nack(req_t *q, int code, const char *reason, const char *path)
{
    q->nack_code = code;
    snprintf(q->reason, sizeof q->reason, "%s", reason != NULL ? reason : "");
    snprintf(q->field_path, sizeof q->field_path, "%s", path != NULL ? path : "");
}

/* A committed POST with Prefer: wait: answered now when the spool already knows the
 * broker's answer (an id accepted or rejected before, or its PublishAck handled in this
 * turn), else kept for the broker until its deadline. */
static void
wait_broker(http_api_t *api, req_t *q)
{
    spool_lifecycle_t *lc = malloc(sizeof *lc);
    pt_error_t err;
    int rc = lc != NULL ? spool_lifecycle(api->spool, q->message_id, lc, &err) : -ENOMEM;
    if (rc == 0 && lc->state == SPOOL_ACCEPTED) {
        q->seq = lc->seq;
        resume_with(q, ANS_ACCEPTED);
    } else if (rc == 0 && lc->state == SPOOL_REJECTED) {
        set_nack(q, (int)lc->nack_code, lc->reason, lc->field_path);
        resume_with(q, ANS_REJECTED);
    } else if (pt_clock_mono_ms() >= q->deadline_ms) {
        resume_with(q, ANS_SPOOLED);
    } else {
        q->state = RQ_BROKER;
        q->next = api->brokered;
        api->brokered = q;
        api->n_brokered++;
    }
    free(lc);
}

/* Answers 202 to the waits whose deadline has passed (all of them when now is INT64_MAX). */
static void
expire_waits(http_api_t *api, int64_t now)
{
    for (req_t **pp = &api->brokered; *pp != NULL;) {
        req_t *q = *pp;
        if (q->deadline_ms > now) {
            pp = &q->next;
            continue;
        }
        *pp = q->next;
        q->next = NULL;
        api->n_brokered--;
        resume_with(q, ANS_SPOOLED);
    }
}

/* ---- Prefer: wait (RFC 7240) ---- */

static const char *
skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* The value of one "wait" preference, p after its name: BWS "=" BWS delta-seconds (quoted
 * or not), then the end or ";" parameters. false when it is not that. */
static bool
wait_value(const char *p, const char *end, unsigned cap, unsigned *out)
{
    p = skip_ws(p, end);
    if (p == end || *p != '=')
        return false;
    p = skip_ws(p + 1, end);
    bool quoted = p < end && *p == '"';
    p += quoted;
    uint64_t n = 0;
    const char *digits = p;
    for (; p < end && *p >= '0' && *p <= '9'; p++)
        n = n > cap ? n : n * 10 + (uint64_t)(*p - '0');
    if (p == digits || (quoted && (p == end || *p++ != '"')))
        return false;
    p = skip_ws(p, end);
    if (p != end && *p != ';')
        return false;
    *out = n > cap ? cap : (unsigned)n;
    return true;
}

typedef struct prefer {
    unsigned cap, wait_s;
    bool found;
} prefer_t;

/* Each Prefer header: a comma-separated list of preferences; the first valid wait wins,
 * the others (respond-async, return=...) are ignored as RFC 7240 allows. */
static enum MHD_Result
prefer_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    prefer_t *pf = cls;
    if (pf->found || key == NULL || value == NULL || strcasecmp(key, HEADER_PREFER) != 0)
        return MHD_YES;
    for (const char *p = value; *p != '\0' && !pf->found;) {
        const char *end = p + strcspn(p, ",");
        const char *name = skip_ws(p, end);
        if (end - name >= 4 && strncasecmp(name, "wait", 4) == 0)
            pf->found = wait_value(name + 4, end, pf->cap, &pf->wait_s);
        p = *end == ',' ? end + 1 : end;
    }
    return MHD_YES;
}

static unsigned
prefer_wait(const http_api_t *api, struct MHD_Connection *con)
{
    prefer_t pf = {.cap = api->wait_max_s};
    MHD_get_connection_values(con, MHD_HEADER_KIND, prefer_header, &pf);
    return pf.found ? pf.wait_s : 0;
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
        q->deadline_ms = pt_clock_mono_ms() + (int64_t)q->wait_s * 1000;
        wait_commit(api, q);
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
    enum MHD_Result denied;
    if (!authorized(api, q, &denied))
        return denied;
    const char *ct =
        MHD_lookup_connection_value(q->con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!is_json(ct))
        return respond_error(api, q, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE",
                             "the Content-Type must be application/json", NULL);
    const char *cl =
        MHD_lookup_connection_value(q->con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL && strtoull(cl, NULL, 10) > api->body_max)
        return too_large(api, q);
    q->wait_s = prefer_wait(api, q->con);
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
    enum MHD_Result denied;
    if (!authorized(api, q, &denied))
        return denied;
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
    uint64_t held;
    if (api->pull && pull_depth(api->spool, &held, &err) == 0)
        metrics_set(api->pull_depth, (double)held);
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

/* ---- the pull inbox ---- */

/* A decimal uint64 and nothing else (no sign, no space, no overflow). */
static bool
parse_u64(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static enum MHD_Result
bad_param(http_api_t *api, req_t *q, const char *name, const char *what)
{
    char msg[128];
    snprintf(msg, sizeof msg, "%s: %s", name, what);
    return respond_error(api, q, MHD_HTTP_BAD_REQUEST, "INVALID", msg, name);
}

/* GET /v1/inbox, the headers: token, then ?after=SEQ&limit=N. */
static enum MHD_Result
inbox_begin(http_api_t *api, req_t *q)
{
    enum MHD_Result denied;
    if (!authorized(api, q, &denied))
        return denied;
    const char *a = MHD_lookup_connection_value(q->con, MHD_GET_ARGUMENT_KIND, "after");
    const char *l = MHD_lookup_connection_value(q->con, MHD_GET_ARGUMENT_KIND, "limit");
    uint64_t n = PT_PULL_LIMIT_DEFAULT;
    if (a != NULL && !parse_u64(a, strlen(a), &q->after))
        return bad_param(api, q, "after", "not a seq (a decimal integer, 0 for the start)");
    if (l != NULL && (!parse_u64(l, strlen(l), &n) || n == 0 || n > PT_PULL_LIMIT_MAX)) {
        char what[64];
        snprintf(what, sizeof what, "must be an integer from 1 to %d", PT_PULL_LIMIT_MAX);
        return bad_param(api, q, "limit", what);
    }
    q->limit = (size_t)n;
    return MHD_YES;
}

/* The listing is made now and sent once the turn has committed: nothing a pull_put of
 * this turn held is shown before it is durable. */
static enum MHD_Result
inbox_finish(http_api_t *api, req_t *q)
{
    pt_error_t err;
    size_t len;
    if (pull_list(api->spool, q->after, q->limit, &q->text, &len, &err) != 0)
        return respond_error(api, q, MHD_HTTP_SERVICE_UNAVAILABLE, "UNAVAILABLE",
                             "the inbox cannot be read now: retry later", NULL);
    wait_commit(api, q);
    return MHD_YES;
}

/* POST /v1/inbox/{seq}/ack, the headers; seq is the part of the path between. */
static enum MHD_Result
ack_begin(http_api_t *api, req_t *q, const char *seq, size_t n)
{
    enum MHD_Result denied;
    if (!authorized(api, q, &denied))
        return denied;
    if (!parse_u64(seq, n, &q->seq))
        return bad_param(api, q, "seq", "not a seq (a decimal integer)");
    return MHD_YES;
}

/* The ack goes into the turn; 204 once it has committed (an ack again too: idempotent). */
static enum MHD_Result
ack_finish(http_api_t *api, req_t *q)
{
    pt_error_t err;
    int rc = pull_ack(api->spool, q->seq, pt_clock_wall_ms(), &q->acked, &err);
    if (rc == PT_ENOTFOUND)
        return respond_error(api, q, MHD_HTTP_NOT_FOUND, "NOT_FOUND",
                             "no delivery with this seq in the inbox", NULL);
    if (rc != 0)
        return respond_error(api, q, MHD_HTTP_SERVICE_UNAVAILABLE, "UNAVAILABLE",
                             "the spool cannot take it now: retry later", NULL);
    wait_commit(api, q);
    return MHD_YES;
}

/* ---- dispatch ---- */

static bool
is_ack_path(const char *url)
{
    size_t n = strlen(url), p = sizeof INBOX_PREFIX, s = sizeof ACK_SUFFIX - 1;
    return n > p + s && strncmp(url, INBOX_PREFIX "/", p) == 0 &&
           strcmp(url + n - s, ACK_SUFFIX) == 0;
}

static route_t
route_of(const http_api_t *api, const char *method, const char *url, bool *method_ok)
{
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    route_t r = R_OTHER;
    if (api->pull && strcmp(url, INBOX_PREFIX) == 0)
        r = R_GET_INBOX, *method_ok = get;
    else if (api->pull && is_ack_path(url))
        r = R_ACK_INBOX, *method_ok = post;
    else if (strcmp(url, MSG_PREFIX) == 0)
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
    case R_GET_INBOX:
        return inbox_begin(api, q);
    case R_ACK_INBOX:
        return ack_begin(api, q, url + sizeof INBOX_PREFIX,
                         strlen(url) - sizeof INBOX_PREFIX - (sizeof ACK_SUFFIX - 1));
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
        q->route = route_of(api, method, url, &method_ok);
        return first_call(api, q, url, method_ok);
    }
    if (q->state == RQ_ANSWER)
        return respond_final(api, q);
    if (q->state != RQ_RECEIVING)
        return MHD_YES; /* suspended: not called */
    if (*data_size > 0) {
        if (q->route == R_POST_MESSAGE)
            post_data(api, q, data, *data_size);
        *data_size = 0; /* the body of a GET or an ack means nothing: discarded */
        return MHD_YES;
    }
    if (q->route == R_GET_INBOX)
        return inbox_finish(api, q);
    if (q->route == R_ACK_INBOX)
        return ack_finish(api, q);
    return post_finish(api, q);
}

static void
on_completed(void *cls, struct MHD_Connection *con, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    (void)con, (void)toe;
    http_api_t *api = cls;
    req_t *q = *con_cls;
    if (q != NULL) {
        /* MHD ends no suspended connection (they are all resumed before the stop): the
         * unlinking is a guard, not a path. */
        if (q->state == RQ_COMMIT)
            unlink_req(&api->waiting, &api->n_waiting, q);
        else if (q->state == RQ_BROKER)
            unlink_req(&api->brokered, &api->n_brokered, q);
        free(q->text);
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
    if (api->pull)
        api->pull_depth = metrics_gauge(m, "ptibus_adapter_pull_depth",
                                        "Deliveries in the pull inbox, not yet acknowledged by "
                                        "the partner",
                                        NULL, NULL);
    return api->depth != NULL && api->oldest != NULL && (!api->pull || api->pull_depth != NULL)
               ? 0
               : -ENOMEM;
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
    api->pull = o->pull;
    api->on_pull_ack = o->on_pull_ack, api->pull_ack_arg = o->pull_ack_arg;
    api->wait_max_s =
        o->wait_max_s && o->wait_max_s < PT_HTTP_WAIT_MAX_S ? o->wait_max_s : PT_HTTP_WAIT_MAX_S;
    int rc = tokens_load(api, o->token_file, err);
    if (rc == 0 && (api->token_file = strdup(o->token_file)) == NULL)
        rc = -ENOMEM;
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
        /* MHD must not stop with a suspended connection: the ones waiting for a commit get
         * 503 (nothing of the turn is kept), those waiting for the broker 202 (durable). */
        expire_waits(api, INT64_MAX);
        http_api_committed(api, PT_ECLOSED);
        MHD_run(api->d);
        MHD_stop_daemon(api->d);
    }
    if (api->own_metrics)
        metrics_destroy(&api->metrics);
    sodium_memzero(api->tokens, sizeof api->tokens);
    free(api->token_file);
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
    MHD_UNSIGNED_LONG_LONG mt;
    int64_t t = -1;
    if (MHD_get_timeout(api->d, &mt) == MHD_YES)
        t = mt > INT64_MAX ? INT64_MAX : (int64_t)mt;
    int64_t now = pt_clock_mono_ms();
    for (const req_t *q = api->brokered; q != NULL; q = q->next) {
        int64_t left = q->deadline_ms > now ? q->deadline_ms - now : 0;
        if (t < 0 || left < t)
            t = left;
    }
    return t;
}

int
http_api_run(http_api_t *api)
{
    if (api->brokered != NULL)
        expire_waits(api, pt_clock_mono_ms());
    return MHD_run(api->d) == MHD_YES ? 0 : PT_EINTERNAL;
}

size_t
http_api_pending(const http_api_t *api)
{
    return api->n_waiting;
}

size_t
http_api_waiting(const http_api_t *api)
{
    return api->n_brokered;
}

/* The answer of one request whose turn has committed. */
static void
committed_one(http_api_t *api, req_t *q)
{
    switch (q->route) {
    case R_GET_INBOX:
        resume_with(q, ANS_LIST);
        break;
    case R_ACK_INBOX:
        if (q->acked && api->on_pull_ack != NULL)
            api->on_pull_ack(api->pull_ack_arg, q->seq);
        resume_with(q, ANS_ACKED);
        break;
    default:
        if (q->wait_s > 0)
            wait_broker(api, q);
        else
            resume_with(q, ANS_SPOOLED);
    }
}

void
http_api_committed(http_api_t *api, int commit_rc)
{
    if (api->waiting == NULL)
        return;
    req_t *q = api->waiting;
    api->waiting = NULL;
    api->n_waiting = 0;
    for (req_t *next; q != NULL; q = next) {
        next = q->next;
        q->next = NULL;
        if (commit_rc == PT_EJOURNALFULL || commit_rc == -ENOSPC || commit_rc == -EDQUOT)
            resume_with(q, ANS_FULL);
        else if (commit_rc != 0)
            resume_with(q, ANS_UNAVAILABLE);
        else
            committed_one(api, q);
    }
    MHD_run(api->d);
}

void
http_api_publish_result(http_api_t *api, const char *message_id, int nack_code, uint64_t seq,
                        bool retryable, const char *reason, const char *field_path)
{
    if (message_id == NULL || (nack_code != 0 && retryable))
        return;
    bool resumed = false;
    for (req_t **pp = &api->brokered; *pp != NULL;) {
        req_t *q = *pp;
        if (strcmp(q->message_id, message_id) != 0) {
            pp = &q->next;
            continue;
        }
        *pp = q->next;
        q->next = NULL;
        api->n_brokered--;
        if (nack_code == 0) {
            q->seq = seq;
            resume_with(q, ANS_ACCEPTED);
        } else {
            set_nack(q, nack_code, reason, field_path);
            resume_with(q, ANS_REJECTED);
        }
        resumed = true;
    }
    /* MHD's rule in external mode: run it after a resume, or the connection may stay
     * stuck until the next network activity (its descriptor does not wake the loop). */
    if (resumed)
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

int
http_api_reload_tokens(http_api_t *api, pt_error_t *err)
{
    http_api_t *tmp = calloc(1, sizeof *tmp);
    if (tmp == NULL)
        return pt_error_set(err, -ENOMEM, "http.tokens_file", "out of memory");
    int rc = tokens_load(tmp, api->token_file, err);
    if (rc == 0) { /* all or nothing: a bad file keeps the tokens in force */
        memcpy(api->tokens, tmp->tokens, sizeof api->tokens);
        api->n_tokens = tmp->n_tokens;
    }
    sodium_memzero(tmp, sizeof *tmp);
    free(tmp);
    return rc;
}
