/* Unit tests of adapters/core/http_api against a real libmicrohttpd server on a free
 * loopback port, a real spool in a temp dir and libcurl clients. The test drives both the
 * API (as the adapter's loop does: run, commit, report) and curl multi from one thread, so
 * it can hold a commit back and see that no answer leaves before it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <yaml.h>

#include "http_api.h"
#include "clock.h"
#include "codec.h"
#include "outbox.h"
#include "pjson.h"
#include "pull.h"
#include "samples.h"
#include "spool.h"
#include "testutil.h"

#define TOKEN "s3cret-token-for-tests"
#define MAX_REQ 16

typedef struct call {
    CURL *h;
    struct curl_slist *hdrs;
    char *body;
    char resp[65536];
    size_t resp_len;
    char retry_after[32];
    char pref_applied[64];
    bool has_pref_applied;
    long status;
    bool done;
} call_t;

typedef struct fixture {
    char *tmp;
    char spool_dir[512], token_file[512];
    const char *source; /* the client's source address ("127.0.0.2"), NULL: the default */
    spool_options_t sopts;
    spool_t *spool;
    http_api_options_t aopts;
    http_api_t *api;
    CURLM *multi;
    bool ready;
    uint64_t acks[MAX_REQ]; /* on_pull_ack, in order */
    size_t n_acks;
} fixture_t;

static void
on_pull_ack(void *arg, uint64_t seq)
{
    fixture_t *f = arg;
    if (f->n_acks < MAX_REQ)
        f->acks[f->n_acks++] = seq;
}

static bool
ready_cb(void *arg, char *why, size_t cap)
{
    fixture_t *f = arg;
    if (!f->ready)
        snprintf(why, cap, "no broker session: connection refused");
    return f->ready;
}

static void
fx_start(fixture_t *f)
{
    pt_error_t err;
    if (spool_open(&f->sopts, &f->spool, &err) != 0)
        fail_msg("spool_open: %s", err.msg);
    f->aopts.spool = f->spool;
    if (http_api_start(&f->aopts, &f->api, &err) != 0)
        fail_msg("http_api_start: %s", err.msg);
}

static void
fx_stop(fixture_t *f)
{
    http_api_stop(&f->api);
    spool_close(&f->spool);
}

static int
setup_with(void **state, size_t map_max)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->tmp = tu_tmpdir("http_api");
    snprintf(f->spool_dir, sizeof f->spool_dir, "%s/spool", f->tmp);
    snprintf(f->token_file, sizeof f->token_file, "%s/tokens", f->tmp);
    const char *toks = "# partner tokens\nother-token\n\n" TOKEN "\r\n";
    assert_int_equal(tu_write_file(f->token_file, toks, strlen(toks)), 0);
    f->sopts = (spool_options_t){
        .dir = f->spool_dir, .map_size_initial = map_max, .map_size_max = map_max};
    f->ready = true;
    f->aopts = (http_api_options_t){.port = 0,
                                    .body_max = 64 * 1024,
                                    .token_file = f->token_file,
                                    .ready = ready_cb,
                                    .ready_arg = f};
    fx_start(f);
    f->multi = curl_multi_init();
    *state = f;
    return 0;
}

static int
setup(void **state)
{
    return setup_with(state, 0);
}

/* The pull egress on, its acks recorded, and Prefer: wait capped at 5 s. */
static int
setup_pull(void **state)
{
    setup_with(state, 0);
    fixture_t *f = *state;
    http_api_stop(&f->api);
    f->aopts.pull = true;
    f->aopts.on_pull_ack = on_pull_ack;
    f->aopts.pull_ack_arg = f;
    f->aopts.wait_max_s = 5;
    pt_error_t err;
    if (http_api_start(&f->aopts, &f->api, &err) != 0)
        fail_msg("http_api_start: %s", err.msg);
    return 0;
}

static int
teardown(void **state)
{
    fixture_t *f = *state;
    curl_multi_cleanup(f->multi);
    fx_stop(f);
    tu_rmtree(f->tmp);
    free(f);
    return 0;
}

/* ---- the client side ---- */

static size_t
on_body(char *p, size_t sz, size_t n, void *arg)
{
    call_t *c = arg;
    size_t k = sz * n;
    if (c->resp_len + k < sizeof c->resp) {
        memcpy(c->resp + c->resp_len, p, k);
        c->resp_len += k;
        c->resp[c->resp_len] = '\0';
    }
    return k;
}

static size_t
on_header(char *p, size_t sz, size_t n, void *arg)
{
    call_t *c = arg;
    size_t k = sz * n;
    if (k > 13 && strncasecmp(p, "Retry-After: ", 13) == 0)
        snprintf(c->retry_after, sizeof c->retry_after, "%.*s", (int)(k - 15), p + 13);
    if (k > 20 && strncasecmp(p, "Preference-Applied: ", 20) == 0) {
        snprintf(c->pref_applied, sizeof c->pref_applied, "%.*s", (int)(k - 22), p + 20);
        c->has_pref_applied = true;
    }
    return k;
}

/* Starts a request; token / ctype NULL: no such header. */
static call_t *
call_start(fixture_t *f, const char *method, const char *path, const char *token, const char *ctype,
           const char *body, size_t len)
{
    call_t *c = calloc(1, sizeof *c);
    char url[256], h[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", http_api_port(f->api), path);
    c->h = curl_easy_init();
    curl_easy_setopt(c->h, CURLOPT_URL, url);
    curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c->h, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, 10000L);
    if (f->source != NULL) {
        snprintf(h, sizeof h, "host!%s", f->source);
        curl_easy_setopt(c->h, CURLOPT_INTERFACE, h);
    }
    if (token != NULL) {
        snprintf(h, sizeof h, "Authorization: Bearer %s", token);
        c->hdrs = curl_slist_append(c->hdrs, h);
    }
    snprintf(h, sizeof h, "Content-Type:%s%s", ctype ? " " : "", ctype ? ctype : "");
    c->hdrs = curl_slist_append(c->hdrs, h);
    c->hdrs = curl_slist_append(c->hdrs, "Expect:");
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->hdrs);
    if (body != NULL) {
        c->body = malloc(len + 1);
        memcpy(c->body, body, len);
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_multi_add_handle(f->multi, c->h);
    return c;
}

static void
call_free(fixture_t *f, call_t *c)
{
    curl_multi_remove_handle(f->multi, c->h);
    curl_easy_cleanup(c->h);
    curl_slist_free_all(c->hdrs);
    free(c->body);
    free(c);
}

static void
collect(fixture_t *f, call_t **calls, size_t n)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(f->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        for (size_t i = 0; i < n; i++)
            if (calls[i]->h == m->easy_handle) {
                calls[i]->done = true;
                if (m->data.result != CURLE_OK)
                    fail_msg("curl: %s", curl_easy_strerror(m->data.result));
                curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &calls[i]->status);
            }
    }
}

static bool
all_done(call_t **calls, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!calls[i]->done)
            return false;
    return true;
}

/* Runs curl and the API for up to ms; commit false holds the spool commit back (the API
 * runs, nothing is committed). Returns when every call is done or the time is up. */
static void
pump(fixture_t *f, call_t **calls, size_t n, int ms, bool commit)
{
    int64_t end = tu_now_ms() + ms;
    while (tu_now_ms() < end && !all_done(calls, n)) {
        int running;
        curl_multi_perform(f->multi, &running);
        curl_multi_poll(f->multi, NULL, 0, 2, NULL);
        if (commit)
            assert_int_equal(http_api_step(f->api, 2), 0);
        else
            assert_int_equal(http_api_run(f->api), 0);
        collect(f, calls, n);
    }
}

static call_t *
request(fixture_t *f, const char *method, const char *path, const char *token, const char *ctype,
        const char *body, size_t len)
{
    call_t *c = call_start(f, method, path, token, ctype, body, len);
    pump(f, &c, 1, 8000, true);
    assert_true(c->done);
    return c;
}

static long
status_of(fixture_t *f, const char *method, const char *path, const char *token, const char *ctype,
          const char *body)
{
    call_t *c = request(f, method, path, token, ctype, body, body ? strlen(body) : 0);
    long st = c->status;
    call_free(f, c);
    return st;
}

static char *
sample_json(const char *id)
{
    td_sample_t s;
    td_sample_orientation(&s, id);
    char *out;
    pt_error_t err;
    if (pjson_to_string(&s.env.base, &out, &err) != 0)
        fail_msg("pjson_to_string: %s", err.msg);
    return out;
}

static call_t *
post(fixture_t *f, const char *body)
{
    return request(f, "POST", "/v1/messages", TOKEN, "application/json", body, strlen(body));
}

static json_t *
resp_json(const call_t *c)
{
    json_t *j = json_loads(c->resp, 0, NULL);
    if (j == NULL)
        fail_msg("not JSON: %s", c->resp);
    return j;
}

static void
assert_error(const call_t *c, long status, const char *code)
{
    assert_int_equal(c->status, status);
    json_t *j = resp_json(c);
    const char *got = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    assert_non_null(got);
    assert_string_equal(got, code);
    assert_non_null(json_string_value(json_object_get(json_object_get(j, "error"), "message")));
    json_decref(j);
}

static bool
spooled(fixture_t *f, const char *id)
{
    spool_lifecycle_t *lc = malloc(sizeof *lc);
    pt_error_t err;
    int rc = spool_lifecycle(f->spool, id, lc, &err);
    free(lc);
    return rc == 0;
}

/* ---- tests ---- */

/* 202 only after the commit: with the commit held back no answer leaves; once committed
 * the answer comes, and a reopened spool has the message. */
static void
test_post_answers_after_commit(void **state)
{
    fixture_t *f = *state;
    char *body = sample_json("http-commit-1");
    call_t *c =
        call_start(f, "POST", "/v1/messages", TOKEN, "application/json", body, strlen(body));
    pump(f, &c, 1, 500, false);
    assert_false(c->done);
    assert_int_equal(http_api_pending(f->api), 1);
    pump(f, &c, 1, 5000, true);
    assert_true(c->done);
    assert_int_equal(c->status, 202);
    json_t *j = resp_json(c);
    assert_string_equal(json_string_value(json_object_get(j, "messageId")), "http-commit-1");
    assert_string_equal(json_string_value(json_object_get(j, "state")), "spooled");
    json_decref(j);
    call_free(f, c);
    fx_stop(f); /* spool_close drops an uncommitted turn: the message must be committed */
    fx_start(f);
    assert_true(spooled(f, "http-commit-1"));
    free(body);
}

/* A commit that fails answers 503 (nothing was kept), never 202. */
static void
test_post_commit_failure_is_503(void **state)
{
    fixture_t *f = *state;
    char *body = sample_json("http-commit-fail");
    call_t *c =
        call_start(f, "POST", "/v1/messages", TOKEN, "application/json", body, strlen(body));
    pump(f, &c, 1, 300, false);
    assert_int_equal(http_api_pending(f->api), 1);
    spool_abort(f->spool);
    http_api_committed(f->api, -EIO);
    pump(f, &c, 1, 5000, false);
    assert_error(c, 503, "UNAVAILABLE");
    assert_string_equal(c->retry_after, "5");
    call_free(f, c);
    /* for want of room (the spool at its maximum, or its disk full): SPOOL_FULL */
    c = call_start(f, "POST", "/v1/messages", TOKEN, "application/json", body, strlen(body));
    pump(f, &c, 1, 300, false);
    assert_int_equal(http_api_pending(f->api), 1);
    spool_abort(f->spool);
    http_api_committed(f->api, -ENOSPC);
    pump(f, &c, 1, 5000, false);
    assert_error(c, 503, "SPOOL_FULL");
    assert_string_equal(c->retry_after, "5");
    call_free(f, c);
    free(body);
}

static void
test_post_duplicate_and_conflict(void **state)
{
    fixture_t *f = *state;
    char *body = sample_json("http-dup-1");
    call_t *a = post(f, body), *b = post(f, body);
    assert_int_equal(a->status, 202);
    assert_int_equal(b->status, 202);
    assert_string_equal(a->resp, b->resp);
    call_free(f, a), call_free(f, b);
    spool_stats_t st;
    pt_error_t err;
    assert_int_equal(spool_stats(f->spool, 0, &st, &err), 0);
    assert_int_equal(st.depth, 1);
    assert_int_equal(st.lifecycles, 1);
    /* the same id, other content */
    json_t *j = json_loads(body, 0, NULL);
    json_object_set_new(j, "correlationId", json_string("another-content"));
    char *other = json_dumps(j, JSON_COMPACT);
    call_t *c = post(f, other);
    assert_error(c, 409, "CONFLICT");
    call_free(f, c);
    json_decref(j);
    free(other);
    free(body);
}

static void
test_post_bad_json_and_invalid(void **state)
{
    fixture_t *f = *state;
    call_t *c = post(f, "{\"messageId\": ");
    assert_error(c, 400, "MALFORMED");
    call_free(f, c);
    c = post(f, "{\"messageId\": \"x\", \"noSuchField\": 1}");
    assert_error(c, 400, "MALFORMED");
    json_t *j = resp_json(c);
    assert_non_null(json_object_get(json_object_get(j, "error"), "fieldPath"));
    json_decref(j);
    call_free(f, c);
    /* decodes, fails validation: the NIR is wrong and must not be quoted */
    char *body = sample_json("http-invalid-1");
    j = json_loads(body, 0, NULL);
    json_t *person = json_object_get(json_object_get(j, "orientation"), "person");
    assert_non_null(person);
    json_object_set_new(person, "nir", json_string("1234567890123"));
    char *bad = json_dumps(j, JSON_COMPACT);
    c = post(f, bad);
    assert_error(c, 400, "INVALID");
    assert_null(strstr(c->resp, "1234567890123"));
    json_t *r = resp_json(c);
    assert_non_null(strstr(
        json_string_value(json_object_get(json_object_get(r, "error"), "fieldPath")), "nir"));
    json_decref(r);
    call_free(f, c);
    assert_false(spooled(f, "http-invalid-1"));
    json_decref(j);
    free(bad);
    free(body);
}

static void
test_post_bom_accepted(void **state)
{
    fixture_t *f = *state;
    char *body = sample_json("http-bom-1");
    char *bom = malloc(strlen(body) + 4);
    sprintf(bom, "\xEF\xBB\xBF%s", body);
    call_t *c = post(f, bom);
    assert_int_equal(c->status, 202);
    call_free(f, c);
    free(bom);
    free(body);
}

static void
test_post_unauthorized(void **state)
{
    fixture_t *f = *state;
    char *body = sample_json("http-auth-1");
    call_t *c = request(f, "POST", "/v1/messages", NULL, "application/json", body, strlen(body));
    assert_error(c, 401, "UNAUTHORIZED");
    call_free(f, c);
    c = request(f, "POST", "/v1/messages", "wrong-token", "application/json", body, strlen(body));
    assert_error(c, 401, "UNAUTHORIZED");
    call_free(f, c);
    c = request(f, "POST", "/v1/messages", TOKEN "x", "application/json", body, strlen(body));
    assert_error(c, 401, "UNAUTHORIZED");
    call_free(f, c);
    assert_false(spooled(f, "http-auth-1"));
    /* the second token of the file works too */
    c = request(f, "POST", "/v1/messages", "other-token", "application/json", body, strlen(body));
    assert_int_equal(c->status, 202);
    call_free(f, c);
    assert_int_equal(status_of(f, "GET", "/v1/messages/http-auth-1", NULL, NULL, NULL), 401);
    free(body);
}

/* Ten failed authentications from one address, then 429 for that address, good token
 * or not, with Retry-After; another address is not held back. */
static void
test_auth_failures_throttled(void **state)
{
    fixture_t *f = *state;
    char *body = sample_json("http-throttle-1");
    f->source = "127.0.0.2";
    for (int i = 0; i < PT_HTTP_AUTH_FAIL_BURST; i++)
        assert_int_equal(status_of(f, "POST", "/v1/messages", "guess", "application/json", body),
                         401);
    call_t *c = request(f, "POST", "/v1/messages", TOKEN, "application/json", body, strlen(body));
    assert_error(c, 429, "TOO_MANY_FAILURES");
    assert_string_equal(c->retry_after, "5");
    call_free(f, c);
    assert_false(spooled(f, "http-throttle-1"));
    f->source = NULL; /* 127.0.0.1 never failed */
    assert_int_equal(status_of(f, "POST", "/v1/messages", TOKEN, "application/json", body), 202);
    free(body);
}

/* SIGHUP's work: the tokens file read again; an old token refused, a new one taken; a
 * bad file keeps the tokens in force. */
static void
test_tokens_reload(void **state)
{
    fixture_t *f = *state;
    char *body = sample_json("http-reload-1");
    const char *toks = "rotated-token\n";
    assert_int_equal(tu_write_file(f->token_file, toks, strlen(toks)), 0);
    pt_error_t err;
    assert_int_equal(http_api_reload_tokens(f->api, &err), 0);
    assert_int_equal(status_of(f, "POST", "/v1/messages", TOKEN, "application/json", body), 401);
    assert_int_equal(
        status_of(f, "POST", "/v1/messages", "rotated-token", "application/json", body), 202);
    assert_int_equal(tu_write_file(f->token_file, "\n", 1), 0);
    assert_int_not_equal(http_api_reload_tokens(f->api, &err), 0);
    assert_int_equal(status_of(f, "GET", "/v1/messages/http-reload-1", "rotated-token", NULL, NULL),
                     200);
    free(body);
}

static void
test_post_too_large(void **state)
{
    fixture_t *f = *state;
    size_t n = 70 * 1024;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    memcpy(big, "{\"messageId\": \"big\"", 19);
    big[n - 1] = '}';
    big[n] = '\0';
    call_t *c = post(f, big);
    assert_error(c, 413, "TOO_LARGE");
    assert_non_null(strstr(c->resp, "65536 bytes"));
    call_free(f, c);
    /* no Content-Length (chunked): the streamed size is checked */
    c = call_start(f, "POST", "/v1/messages", TOKEN, "application/json", big, n);
    c->hdrs = curl_slist_append(c->hdrs, "Transfer-Encoding: chunked");
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->hdrs);
    pump(f, &c, 1, 8000, true);
    assert_error(c, 413, "TOO_LARGE");
    call_free(f, c);
    free(big);
}

static void
test_post_unsupported_media_type(void **state)
{
    fixture_t *f = *state;
    char *body = sample_json("http-415");
    call_t *c = request(f, "POST", "/v1/messages", TOKEN, "text/plain", body, strlen(body));
    assert_error(c, 415, "UNSUPPORTED_MEDIA_TYPE");
    call_free(f, c);
    c = request(f, "POST", "/v1/messages", TOKEN, NULL, body, strlen(body));
    assert_error(c, 415, "UNSUPPORTED_MEDIA_TYPE");
    call_free(f, c);
    c = request(f, "POST", "/v1/messages", TOKEN, "application/json; charset=utf-8", body,
                strlen(body));
    assert_int_equal(c->status, 202);
    call_free(f, c);
    free(body);
}

/* A spool at its maximum size: 503 with Retry-After, and /readyz says not ready. */
static void
test_post_spool_full(void **state)
{
    fixture_t *f = *state;
    long st = 202;
    int n = 0;
    for (; n < 2000 && st == 202; n++) {
        char id[32];
        snprintf(id, sizeof id, "full-%04d", n);
        char *body = sample_json(id);
        call_t *c = post(f, body);
        st = c->status;
        if (st == 503) {
            assert_error(c, 503, "SPOOL_FULL");
            assert_string_equal(c->retry_after, "5");
        }
        call_free(f, c);
        free(body);
    }
    assert_int_equal(st, 503);
    assert_true(n > 1);
    assert_int_equal(status_of(f, "GET", "/readyz", NULL, NULL, NULL), 503);
}

static int
setup_small(void **state)
{
    return setup_with(state, 512 * 1024);
}

/* Several clients at once: all answered 202, all spooled, in fewer commits than requests
 * is the point of the design but not asserted (timing). */
static void
test_post_concurrent(void **state)
{
    fixture_t *f = *state;
    call_t *calls[MAX_REQ];
    char *bodies[MAX_REQ];
    for (int i = 0; i < MAX_REQ; i++) {
        char id[32];
        snprintf(id, sizeof id, "conc-%02d", i);
        bodies[i] = sample_json(id);
        calls[i] = call_start(f, "POST", "/v1/messages", TOKEN, "application/json", bodies[i],
                              strlen(bodies[i]));
    }
    pump(f, calls, MAX_REQ, 10000, true);
    for (int i = 0; i < MAX_REQ; i++) {
        assert_true(calls[i]->done);
        assert_int_equal(calls[i]->status, 202);
        call_free(f, calls[i]);
        free(bodies[i]);
    }
    fx_stop(f);
    fx_start(f);
    for (int i = 0; i < MAX_REQ; i++) {
        char id[32];
        snprintf(id, sizeof id, "conc-%02d", i);
        assert_true(spooled(f, id));
    }
}

static void
test_get_message(void **state)
{
    fixture_t *f = *state;
    char *body = sample_json("http-get-1");
    call_t *c = post(f, body);
    assert_int_equal(c->status, 202);
    call_free(f, c);
    c = request(f, "GET", "/v1/messages/http-get-1", TOKEN, NULL, NULL, 0);
    assert_int_equal(c->status, 200);
    json_t *j = resp_json(c);
    assert_string_equal(json_string_value(json_object_get(j, "messageId")), "http-get-1");
    json_decref(j);
    call_free(f, c);
    c = request(f, "GET", "/v1/messages/no-such-id", TOKEN, NULL, NULL, 0);
    assert_error(c, 404, "NOT_FOUND");
    call_free(f, c);
    free(body);
}

static void
test_health_ready_metrics(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(status_of(f, "GET", "/healthz", NULL, NULL, NULL), 200);
    assert_int_equal(status_of(f, "GET", "/readyz", NULL, NULL, NULL), 200);
    f->ready = false;
    call_t *c = request(f, "GET", "/readyz", NULL, NULL, NULL, 0);
    assert_int_equal(c->status, 503);
    assert_non_null(strstr(c->resp, "connection refused"));
    call_free(f, c);
    f->ready = true;
    char *body = sample_json("http-metrics-1");
    call_free(f, post(f, body));
    assert_int_equal(status_of(f, "POST", "/v1/messages", NULL, "application/json", body), 401);
    c = request(f, "GET", "/metrics", NULL, NULL, NULL, 0);
    assert_int_equal(c->status, 200);
    assert_non_null(strstr(
        c->resp, "ptibus_adapter_http_requests_total{route=\"post_message\",code=\"202\"} 1"));
    assert_non_null(strstr(
        c->resp, "ptibus_adapter_http_requests_total{route=\"post_message\",code=\"401\"} 1"));
    assert_non_null(
        strstr(c->resp, "ptibus_adapter_http_requests_total{route=\"readyz\",code=\"503\"} 1"));
    assert_non_null(strstr(c->resp, "ptibus_adapter_spool_depth 1"));
    assert_non_null(strstr(c->resp, "ptibus_adapter_spool_oldest_age_seconds"));
    call_free(f, c);
    assert_int_equal(status_of(f, "GET", "/nowhere", NULL, NULL, NULL), 404);
    assert_int_equal(status_of(f, "DELETE", "/healthz", NULL, NULL, NULL), 405);
    free(body);
}

/* The token file must be 0600 (or stricter) and hold a token. */
static void
test_token_file_checks(void **state)
{
    fixture_t *f = *state;
    http_api_t *api = NULL;
    pt_error_t err;
    http_api_options_t o = f->aopts;
    assert_int_equal(chmod(f->token_file, 0640), 0);
    assert_int_equal(http_api_start(&o, &api, &err), PT_ECONFIG);
    assert_non_null(strstr(err.msg, "chmod 600"));
    assert_int_equal(tu_write_file(f->token_file, "# none\n\n", 8), 0);
    assert_int_equal(chmod(f->token_file, 0600), 0);
    assert_int_equal(http_api_start(&o, &api, &err), PT_ECONFIG);
    assert_null(api);
}

/* ---- the pull inbox ---- */

/* Holds delivery seq (message id) in the inbox and commits, as the runtime does. */
static void
hold(fixture_t *f, uint64_t seq, const char *id)
{
    td_sample_t smp;
    td_sample_orientation(&smp, id);
    uint8_t *buf;
    size_t len;
    pt_error_t err;
    if (codec_pack(&smp.env.base, 1 << 20, &buf, &len, &err) != 0)
        fail_msg("pack: %s", err.msg);
    outbox_delivery_t d = {.seq = seq,
                           .attempt = 1,
                           .message_id = id,
                           .sender = "caf",
                           .envelope = buf,
                           .envelope_len = len,
                           .received_at_ms = 1764640000123};
    pull_status_t st;
    if (pull_put(f->spool, &d, 0, &st, &err) != 0 || st != PULL_HELD)
        fail_msg("pull_put: %s", err.msg);
    free(buf);
    if (spool_commit(f->spool, &err) != 0)
        fail_msg("commit: %s", err.msg);
}

/* The seqs of a listing, as "1,2,3", and its "next". */
static void
assert_listing(const call_t *c, const char *seqs, const char *next)
{
    assert_int_equal(c->status, 200);
    json_t *j = resp_json(c);
    json_t *m = json_object_get(j, "messages");
    char got[256] = "";
    for (size_t i = 0; i < json_array_size(m); i++) {
        json_t *d = json_object_get(json_array_get(m, i), "delivery");
        size_t n = strlen(got);
        snprintf(got + n, sizeof got - n, "%s%s", i ? "," : "",
                 json_string_value(json_object_get(d, "seq")));
    }
    assert_string_equal(got, seqs);
    assert_string_equal(json_string_value(json_object_get(j, "next")), next);
    json_decref(j);
}

static call_t *
get(fixture_t *f, const char *path)
{
    return request(f, "GET", path, TOKEN, NULL, NULL, 0);
}

static long
ack_status(fixture_t *f, const char *seq)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/inbox/%s/ack", seq);
    return status_of(f, "POST", path, TOKEN, NULL, NULL);
}

static void
test_inbox_list_and_ack(void **state)
{
    fixture_t *f = *state;
    hold(f, 30, "in-30");
    hold(f, 10, "in-10");
    hold(f, 20, "in-20");
    call_t *c = get(f, "/v1/inbox");
    assert_listing(c, "10,20,30", "30");
    json_t *j = resp_json(c);
    json_t *env = json_object_get(json_array_get(json_object_get(j, "messages"), 0), "envelope");
    assert_string_equal(json_string_value(json_object_get(env, "messageId")), "in-10");
    json_decref(j);
    call_free(f, c);
    c = get(f, "/v1/inbox?after=10&limit=1");
    assert_listing(c, "20", "20");
    call_free(f, c);
    c = get(f, "/v1/inbox?after=30");
    assert_listing(c, "", "30");
    call_free(f, c);
    assert_int_equal(ack_status(f, "20"), 204);
    assert_int_equal(f->n_acks, 1);
    assert_int_equal(f->acks[0], 20);
    assert_int_equal(ack_status(f, "20"), 204); /* idempotent, and not acked to the broker again */
    assert_int_equal(f->n_acks, 1);
    assert_int_equal(ack_status(f, "21"), 404);
    c = get(f, "/v1/inbox");
    assert_listing(c, "10,30", "30");
    call_free(f, c);
    /* the ack is durable: a reopened spool no longer holds 20 and knows it handed over */
    fx_stop(f);
    fx_start(f);
    c = get(f, "/v1/inbox");
    assert_listing(c, "10,30", "30");
    call_free(f, c);
    bool seen = false;
    pt_error_t err;
    assert_int_equal(spool_inbound_seen(f->spool, 20, &seen, &err), 0);
    assert_true(seen);
}

/* The 204 and the broker's ack (on_pull_ack) only once the ack's turn has committed; a
 * failed commit answers 503 and the seq stays in the inbox. */
static void
test_inbox_ack_after_commit(void **state)
{
    fixture_t *f = *state;
    hold(f, 7, "in-7");
    call_t *c = call_start(f, "POST", "/v1/inbox/7/ack", TOKEN, NULL, NULL, 0);
    pump(f, &c, 1, 500, false);
    assert_false(c->done);
    assert_int_equal(http_api_pending(f->api), 1);
    assert_int_equal(f->n_acks, 0);
    spool_abort(f->spool);
    http_api_committed(f->api, -EIO);
    pump(f, &c, 1, 5000, false);
    assert_error(c, 503, "UNAVAILABLE");
    assert_int_equal(f->n_acks, 0);
    call_free(f, c);
    bool held = false;
    pt_error_t err;
    assert_int_equal(pull_held(f->spool, 7, &held, &err), 0);
    assert_true(held);
    c = call_start(f, "POST", "/v1/inbox/7/ack", TOKEN, NULL, NULL, 0);
    pump(f, &c, 1, 500, false);
    assert_false(c->done);
    assert_int_equal(f->n_acks, 0);
    pump(f, &c, 1, 5000, true);
    assert_int_equal(c->status, 204);
    assert_int_equal(c->resp_len, 0);
    assert_int_equal(f->n_acks, 1);
    call_free(f, c);
    fx_stop(f); /* spool_close drops an uncommitted turn: the ack must be committed */
    fx_start(f);
    assert_int_equal(pull_held(f->spool, 7, &held, &err), 0);
    assert_false(held);
    bool seen = false;
    assert_int_equal(spool_inbound_seen(f->spool, 7, &seen, &err), 0);
    assert_true(seen);
}

/* A listing leaves only after the commit of the turn it was made in: a delivery held in
 * that turn is never shown before it is durable (a failed commit answers 503). */
static void
test_inbox_listing_after_commit(void **state)
{
    fixture_t *f = *state;
    hold(f, 1, "in-1");
    td_sample_t smp;
    td_sample_orientation(&smp, "in-2");
    uint8_t *buf;
    size_t len;
    pt_error_t err;
    assert_int_equal(codec_pack(&smp.env.base, 1 << 20, &buf, &len, &err), 0);
    outbox_delivery_t d = {
        .seq = 2, .attempt = 1, .message_id = "in-2", .envelope = buf, .envelope_len = len};
    pull_status_t st;
    assert_int_equal(pull_put(f->spool, &d, 0, &st, &err), 0); /* in the turn, uncommitted */
    call_t *c = call_start(f, "GET", "/v1/inbox", TOKEN, NULL, NULL, 0);
    pump(f, &c, 1, 500, false);
    assert_false(c->done);
    spool_abort(f->spool);
    http_api_committed(f->api, -EIO);
    pump(f, &c, 1, 5000, false);
    assert_error(c, 503, "UNAVAILABLE");
    call_free(f, c);
    c = get(f, "/v1/inbox");
    assert_listing(c, "1", "1");
    call_free(f, c);
    assert_int_equal(pull_put(f->spool, &d, 0, &st, &err), 0);
    c = call_start(f, "GET", "/v1/inbox", TOKEN, NULL, NULL, 0);
    pump(f, &c, 1, 300, false);
    assert_false(c->done);
    pump(f, &c, 1, 5000, true);
    assert_listing(c, "1,2", "2");
    call_free(f, c);
    free(buf);
}

static void
test_inbox_bad_params(void **state)
{
    fixture_t *f = *state;
    static const struct {
        const char *path, *field;
    } bad[] = {
        {"/v1/inbox?after=abc", "after"},
        {"/v1/inbox?after=-1", "after"},
        {"/v1/inbox?after=18446744073709551616", "after"},
        {"/v1/inbox?after=1%202", "after"},
        {"/v1/inbox?limit=0", "limit"},
        {"/v1/inbox?limit=1001", "limit"},
        {"/v1/inbox?limit=ten", "limit"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        call_t *c = get(f, bad[i].path);
        assert_error(c, 400, "INVALID");
        json_t *j = resp_json(c);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(j, "error"), "fieldPath")),
            bad[i].field);
        json_decref(j);
        call_free(f, c);
    }
    call_t *c = get(f, "/v1/inbox?after=18446744073709551615&limit=1000");
    assert_listing(c, "", "18446744073709551615");
    call_free(f, c);
    c = request(f, "POST", "/v1/inbox/x1/ack", TOKEN, NULL, NULL, 0);
    assert_error(c, 400, "INVALID");
    call_free(f, c);
    assert_int_equal(ack_status(f, "-1"), 400);
    assert_int_equal(ack_status(f, ""), 404); /* /v1/inbox//ack is no route */
    assert_int_equal(status_of(f, "POST", "/v1/inbox", TOKEN, NULL, NULL), 405);
    assert_int_equal(status_of(f, "GET", "/v1/inbox/1/ack", TOKEN, NULL, NULL), 405);
}

static void
test_inbox_unauthorized(void **state)
{
    fixture_t *f = *state;
    hold(f, 3, "in-3");
    call_t *c = request(f, "GET", "/v1/inbox", NULL, NULL, NULL, 0);
    assert_error(c, 401, "UNAUTHORIZED");
    assert_null(strstr(c->resp, "in-3"));
    call_free(f, c);
    assert_int_equal(status_of(f, "GET", "/v1/inbox", "nope", NULL, NULL), 401);
    assert_int_equal(status_of(f, "POST", "/v1/inbox/3/ack", "nope", NULL, NULL), 401);
    assert_int_equal(status_of(f, "POST", "/v1/inbox/3/ack", NULL, NULL, NULL), 401);
    assert_int_equal(f->n_acks, 0);
    bool held = false;
    pt_error_t err;
    assert_int_equal(pull_held(f->spool, 3, &held, &err), 0);
    assert_true(held);
}

/* pull off (the default): the routes do not exist. */
static void
test_inbox_off(void **state)
{
    fixture_t *f = *state;
    hold(f, 3, "in-3");
    call_t *c = get(f, "/v1/inbox");
    assert_error(c, 404, "NOT_FOUND");
    call_free(f, c);
    assert_int_equal(ack_status(f, "3"), 404);
    bool held = false;
    pt_error_t err;
    assert_int_equal(pull_held(f->spool, 3, &held, &err), 0);
    assert_true(held);
}

/* ---- Prefer: wait ---- */

/* Starts a POST with a Prefer header; pumps (committing) until it waits for the broker
 * or is answered. */
static call_t *
post_prefer(fixture_t *f, const char *body, const char *prefer)
{
    call_t *c =
        call_start(f, "POST", "/v1/messages", TOKEN, "application/json", body, strlen(body));
    char h[128];
    snprintf(h, sizeof h, "Prefer: %s", prefer);
    c->hdrs = curl_slist_append(c->hdrs, h);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->hdrs);
    int64_t end = tu_now_ms() + 5000;
    size_t w0 = http_api_waiting(f->api);
    while (!c->done && http_api_waiting(f->api) == w0 && tu_now_ms() < end)
        pump(f, &c, 1, 20, true);
    return c;
}

static void
accept_in_spool(fixture_t *f, const char *id, uint64_t seq)
{
    pt_error_t err;
    assert_int_equal(spool_accepted(f->spool, id, seq, pt_clock_wall_ms(), &err), 0);
    assert_int_equal(spool_commit(f->spool, &err), 0);
}

static void
test_wait_201(void **state)
{
    fixture_t *f = *state;
    char *body = sample_json("wait-201");
    call_t *c = post_prefer(f, body, "wait=5");
    assert_false(c->done);
    assert_int_equal(http_api_waiting(f->api), 1);
    assert_true(spooled(f, "wait-201")); /* committed before the wait */
    pump(f, &c, 1, 300, true);
    assert_false(c->done);
    /* another id's answer and a retryable Nack answer nothing */
    http_api_publish_result(f->api, "wait-other", 0, 41, false, NULL, NULL);
    http_api_publish_result(f->api, "wait-201", 6, 0, true, "journal full", NULL);
    pump(f, &c, 1, 300, true);
    assert_false(c->done);
    accept_in_spool(f, "wait-201", 42);
    http_api_publish_result(f->api, "wait-201", 0, 42, false, NULL, NULL);
    /* answered at once: curl alone (no http_api_run) receives it */
    int64_t end = tu_now_ms() + 3000;
    while (!c->done && tu_now_ms() < end) {
        int running;
        curl_multi_perform(f->multi, &running);
        curl_multi_poll(f->multi, NULL, 0, 5, NULL);
        collect(f, &c, 1);
    }
    assert_true(c->done);
    pump(f, &c, 1, 5000, true);
    assert_int_equal(c->status, 201);
    json_t *j = resp_json(c);
    assert_string_equal(json_string_value(json_object_get(j, "messageId")), "wait-201");
    assert_string_equal(json_string_value(json_object_get(j, "state")), "accepted");
    assert_string_equal(json_string_value(json_object_get(j, "seq")), "42");
    json_decref(j);
    assert_string_equal(c->pref_applied, "wait=5");
    assert_int_equal(http_api_waiting(f->api), 0);
    call_free(f, c);
    free(body);
}

static void
test_wait_422(void **state)
{
    fixture_t *f = *state;
    char *body = sample_json("wait-422");
    call_t *c = post_prefer(f, body, "respond-async, wait=4");
    assert_false(c->done);
    pt_error_t err;
    assert_int_equal(spool_rejected(f->spool, "wait-422", 4, "referral.targetOrg: no partnerId",
                                    "referral.targetOrg", pt_clock_wall_ms(), &err),
                     0);
    http_api_publish_result(f->api, "wait-422", 4, 0, false, "referral.targetOrg: no partnerId",
                            "referral.targetOrg");
    pump(f, &c, 1, 5000, true);
    assert_error(c, 422, "NACK_CODE_NOT_ALLOWED");
    json_t *j = resp_json(c);
    json_t *e = json_object_get(j, "error");
    assert_string_equal(json_string_value(json_object_get(e, "fieldPath")), "referral.targetOrg");
    assert_string_equal(json_string_value(json_object_get(e, "message")),
                        "referral.targetOrg: no partnerId");
    json_decref(j);
    assert_string_equal(c->pref_applied, "wait=4");
    call_free(f, c);
    free(body);
}

/* No answer from the broker: 202 after N seconds, without Preference-Applied; and the
 * caller's loop is woken for it by http_api_timeout_ms (one step with a long timeout). */
static void
test_wait_timeout_202(void **state)
{
    fixture_t *f = *state;
    char *body = sample_json("wait-late");
    int64_t t0 = tu_now_ms();
    call_t *c = post_prefer(f, body, "wait=1");
    assert_false(c->done);
    int64_t t = http_api_timeout_ms(f->api);
    assert_true(t >= 0 && t <= 1000);
    int64_t s0 = tu_now_ms();
    assert_int_equal(http_api_step(f->api, 10000), 0); /* wakes at the deadline, not 10 s */
    assert_true(tu_now_ms() - s0 < 2500);
    pump(f, &c, 1, 5000, true);
    assert_int_equal(c->status, 202);
    assert_true(tu_now_ms() - t0 >= 1000);
    assert_false(c->has_pref_applied);
    json_t *j = resp_json(c);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "spooled");
    json_decref(j);
    assert_int_equal(http_api_waiting(f->api), 0);
    call_free(f, c);
    free(body);
}

/* The cap (wait_max_s 5 here) bounds a long wait; a wait that is not one is ignored. */
static void
test_wait_cap_and_parse(void **state)
{
    fixture_t *f = *state;
    char *body = sample_json("wait-cap");
    call_t *c = post_prefer(f, body, "wait=86400");
    assert_false(c->done);
    int64_t t = http_api_timeout_ms(f->api);
    assert_true(t >= 0 && t <= 5000);
    http_api_publish_result(f->api, "wait-cap", 0, 9, false, NULL, NULL);
    pump(f, &c, 1, 5000, true);
    assert_string_equal(c->pref_applied, "wait=5");
    call_free(f, c);
    free(body);
    static const char *const not_waits[] = {"wait=abc", "wait",           "waitx=3", "wait=-1",
                                            "wait=\"2", "return=minimal", "wait=0"};
    for (size_t i = 0; i < sizeof not_waits / sizeof not_waits[0]; i++) {
        char id[32];
        snprintf(id, sizeof id, "wait-parse-%zu", i);
        body = sample_json(id);
        c = post_prefer(f, body, not_waits[i]);
        pump(f, &c, 1, 5000, true);
        if (c->status != 202 || c->has_pref_applied)
            fail_msg("Prefer: %s: got %ld", not_waits[i], c->status);
        call_free(f, c);
        free(body);
    }
    body = sample_json("wait-quoted");
    c = post_prefer(f, body, "Wait = \"3\"; foo=bar");
    assert_false(c->done);
    http_api_publish_result(f->api, "wait-quoted", 0, 10, false, NULL, NULL);
    pump(f, &c, 1, 5000, true);
    assert_int_equal(c->status, 201);
    call_free(f, c);
    free(body);
}

/* An id the broker already answered is answered at once: 201, or 422 from the spool's
 * lifecycle; two requests waiting for one id both get the answer. */
static void
test_wait_known_outcome(void **state)
{
    fixture_t *f = *state;
    char *a = sample_json("wait-known-a"), *b = sample_json("wait-known-b");
    call_free(f, post(f, a));
    call_free(f, post(f, b));
    accept_in_spool(f, "wait-known-a", 77);
    pt_error_t err;
    assert_int_equal(spool_rejected(f->spool, "wait-known-b", 3, "orientation.person.nir: bad key",
                                    "orientation.person.nir", pt_clock_wall_ms(), &err),
                     0);
    assert_int_equal(spool_commit(f->spool, &err), 0);
    int64_t t0 = tu_now_ms();
    call_t *c = post_prefer(f, a, "wait=5");
    pump(f, &c, 1, 3000, true);
    assert_int_equal(c->status, 201);
    assert_non_null(strstr(c->resp, "\"seq\":\"77\""));
    call_free(f, c);
    c = post_prefer(f, b, "wait=5");
    pump(f, &c, 1, 3000, true);
    assert_error(c, 422, "NACK_CODE_INVALID");
    assert_non_null(strstr(c->resp, "orientation.person.nir"));
    call_free(f, c);
    assert_true(tu_now_ms() - t0 < 3000);
    free(a);
    free(b);
    char *d = sample_json("wait-twice");
    call_t *c1 = post_prefer(f, d, "wait=5"), *c2 = post_prefer(f, d, "wait=5");
    assert_int_equal(http_api_waiting(f->api), 2);
    http_api_publish_result(f->api, "wait-twice", 0, 5, false, NULL, NULL);
    call_t *both[] = {c1, c2};
    pump(f, both, 2, 5000, true);
    assert_int_equal(c1->status, 201);
    assert_int_equal(c2->status, 201);
    call_free(f, c1);
    call_free(f, c2);
    free(d);
}

/* Stopping the API with requests waiting for the broker answers them 202 (they are
 * durable): MHD is never stopped with a suspended connection. */
static void
test_wait_stop(void **state)
{
    fixture_t *f = *state;
    char *body = sample_json("wait-stop");
    call_t *c = post_prefer(f, body, "wait=5");
    assert_int_equal(http_api_waiting(f->api), 1);
    http_api_stop(&f->api);
    int64_t end = tu_now_ms() + 3000;
    while (!c->done && tu_now_ms() < end) {
        int running;
        curl_multi_perform(f->multi, &running);
        curl_multi_poll(f->multi, NULL, 0, 10, NULL);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(f->multi, &left)) != NULL)
            if (m->msg == CURLMSG_DONE && m->easy_handle == c->h) {
                c->done = true;
                curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &c->status);
            }
    }
    /* the answer may or may not have left before the socket closed; never a hang */
    assert_true(c->done);
    assert_true(c->status == 202 || c->status == 0);
    call_free(f, c);
    free(body);
    pt_error_t err;
    assert_int_equal(http_api_start(&f->aopts, &f->api, &err), 0); /* for the teardown */
}

/* ---- docs/api/openapi.yaml, walked ---- */

typedef long (*produce_fn)(fixture_t *f);

static long
op_post_202(fixture_t *f)
{
    char *b = sample_json("oa-202");
    long st = status_of(f, "POST", "/v1/messages", TOKEN, "application/json", b);
    free(b);
    return st;
}

static long
op_post_400(fixture_t *f)
{
    return status_of(f, "POST", "/v1/messages", TOKEN, "application/json", "{");
}

static long
op_post_401(fixture_t *f)
{
    char *b = sample_json("oa-401");
    long st = status_of(f, "POST", "/v1/messages", "nope", "application/json", b);
    free(b);
    return st;
}

static long
op_post_429(fixture_t *f)
{
    char *b = sample_json("oa-429");
    f->source = "127.0.0.3";
    for (int i = 0; i < PT_HTTP_AUTH_FAIL_BURST; i++)
        status_of(f, "POST", "/v1/messages", "guess", "application/json", b);
    long st = status_of(f, "POST", "/v1/messages", TOKEN, "application/json", b);
    f->source = NULL;
    free(b);
    return st;
}

static long
op_post_409(fixture_t *f)
{
    char *b = sample_json("oa-409");
    call_free(f, post(f, b));
    b[strlen(b) - 1] = '\0';
    char other[8192];
    snprintf(other, sizeof other, "%s,\"correlationId\":\"other\"}", b);
    free(b);
    return status_of(f, "POST", "/v1/messages", TOKEN, "application/json", other);
}

static long
op_post_413(fixture_t *f)
{
    char *big = malloc(70 * 1024 + 1);
    memset(big, ' ', 70 * 1024);
    big[70 * 1024] = '\0';
    long st = status_of(f, "POST", "/v1/messages", TOKEN, "application/json", big);
    free(big);
    return st;
}

static long
op_post_415(fixture_t *f)
{
    return status_of(f, "POST", "/v1/messages", TOKEN, "text/csv", "a,b");
}

static long
op_post_503(fixture_t *f)
{
    char *b = sample_json("oa-503");
    call_t *c = call_start(f, "POST", "/v1/messages", TOKEN, "application/json", b, strlen(b));
    pump(f, &c, 1, 300, false);
    spool_abort(f->spool);
    http_api_committed(f->api, -EIO);
    pump(f, &c, 1, 5000, false);
    long st = c->status;
    call_free(f, c);
    free(b);
    return st;
}

static long
op_post_201(fixture_t *f)
{
    char *b = sample_json("oa-201");
    call_t *c = post_prefer(f, b, "wait=5");
    http_api_publish_result(f->api, "oa-201", 0, 1, false, NULL, NULL);
    pump(f, &c, 1, 5000, true);
    long st = c->status;
    call_free(f, c);
    free(b);
    return st;
}

static long
op_post_422(fixture_t *f)
{
    char *b = sample_json("oa-422");
    call_t *c = post_prefer(f, b, "wait=5");
    http_api_publish_result(f->api, "oa-422", 4, 0, false, "not allowed", NULL);
    pump(f, &c, 1, 5000, true);
    long st = c->status;
    call_free(f, c);
    free(b);
    return st;
}

static long
op_inbox_200(fixture_t *f)
{
    hold(f, 100, "oa-in-100");
    return status_of(f, "GET", "/v1/inbox?after=0&limit=10", TOKEN, NULL, NULL);
}

static long
op_inbox_400(fixture_t *f)
{
    return status_of(f, "GET", "/v1/inbox?limit=0", TOKEN, NULL, NULL);
}

static long
op_inbox_401(fixture_t *f)
{
    return status_of(f, "GET", "/v1/inbox", "nope", NULL, NULL);
}

/* The fixture's API has pull on: a second one on the same spool with pull off. */
static long
with_pull_off(fixture_t *f, const char *method, const char *path)
{
    http_api_t *on = f->api;
    http_api_options_t o = f->aopts;
    o.pull = false;
    pt_error_t err;
    if (http_api_start(&o, &f->api, &err) != 0)
        fail_msg("http_api_start: %s", err.msg);
    long st = status_of(f, method, path, TOKEN, NULL, NULL);
    http_api_stop(&f->api);
    f->api = on;
    return st;
}

static long
op_inbox_404(fixture_t *f)
{
    return with_pull_off(f, "GET", "/v1/inbox");
}

/* A request that writes or reads in the turn, whose commit fails. */
static long
commit_fails(fixture_t *f, const char *method, const char *path, const char *body)
{
    call_t *c = call_start(f, method, path, TOKEN, body ? "application/json" : NULL, body,
                           body ? strlen(body) : 0);
    pump(f, &c, 1, 300, false);
    spool_abort(f->spool);
    http_api_committed(f->api, -EIO);
    pump(f, &c, 1, 5000, false);
    long st = c->status;
    call_free(f, c);
    return st;
}

static long
op_inbox_503(fixture_t *f)
{
    return commit_fails(f, "GET", "/v1/inbox", NULL);
}

static long
op_ack_204(fixture_t *f)
{
    hold(f, 101, "oa-in-101");
    return ack_status(f, "101");
}

static long
op_ack_400(fixture_t *f)
{
    return ack_status(f, "one");
}

static long
op_ack_401(fixture_t *f)
{
    return status_of(f, "POST", "/v1/inbox/101/ack", "nope", NULL, NULL);
}

static long
op_ack_404(fixture_t *f)
{
    return ack_status(f, "999");
}

static long
op_ack_503(fixture_t *f)
{
    hold(f, 102, "oa-in-102");
    return commit_fails(f, "POST", "/v1/inbox/102/ack", NULL);
}

static long
op_get_200(fixture_t *f)
{
    char *b = sample_json("oa-get");
    call_free(f, post(f, b));
    free(b);
    return status_of(f, "GET", "/v1/messages/oa-get", TOKEN, NULL, NULL);
}

static long
op_get_401(fixture_t *f)
{
    return status_of(f, "GET", "/v1/messages/oa-get", "nope", NULL, NULL);
}

static long
op_get_404(fixture_t *f)
{
    return status_of(f, "GET", "/v1/messages/oa-none", TOKEN, NULL, NULL);
}

static long
op_healthz(fixture_t *f)
{
    return status_of(f, "GET", "/healthz", NULL, NULL, NULL);
}

static long
op_readyz_200(fixture_t *f)
{
    return status_of(f, "GET", "/readyz", NULL, NULL, NULL);
}

static long
op_readyz_503(fixture_t *f)
{
    f->ready = false;
    long st = status_of(f, "GET", "/readyz", NULL, NULL, NULL);
    f->ready = true;
    return st;
}

static long
op_metrics(fixture_t *f)
{
    return status_of(f, "GET", "/metrics", NULL, NULL, NULL);
}

typedef struct api_case {
    const char *path, *method;
    long status;
    produce_fn fn;
    bool seen;
} api_case_t;

static api_case_t CASES[] = {
    {"/v1/messages", "post", 201, op_post_201, false},
    {"/v1/messages", "post", 202, op_post_202, false},
    {"/v1/messages", "post", 400, op_post_400, false},
    {"/v1/messages", "post", 401, op_post_401, false},
    {"/v1/messages", "post", 409, op_post_409, false},
    {"/v1/messages", "post", 413, op_post_413, false},
    {"/v1/messages", "post", 415, op_post_415, false},
    {"/v1/messages", "post", 422, op_post_422, false},
    {"/v1/messages", "post", 429, op_post_429, false},
    {"/v1/messages", "post", 503, op_post_503, false},
    {"/v1/messages/{id}", "get", 200, op_get_200, false},
    {"/v1/messages/{id}", "get", 401, op_get_401, false},
    {"/v1/messages/{id}", "get", 404, op_get_404, false},
    {"/v1/inbox", "get", 200, op_inbox_200, false},
    {"/v1/inbox", "get", 400, op_inbox_400, false},
    {"/v1/inbox", "get", 401, op_inbox_401, false},
    {"/v1/inbox", "get", 404, op_inbox_404, false},
    {"/v1/inbox", "get", 503, op_inbox_503, false},
    {"/v1/inbox/{seq}/ack", "post", 204, op_ack_204, false},
    {"/v1/inbox/{seq}/ack", "post", 400, op_ack_400, false},
    {"/v1/inbox/{seq}/ack", "post", 401, op_ack_401, false},
    {"/v1/inbox/{seq}/ack", "post", 404, op_ack_404, false},
    {"/v1/inbox/{seq}/ack", "post", 503, op_ack_503, false},
    {"/healthz", "get", 200, op_healthz, false},
    {"/readyz", "get", 200, op_readyz_200, false},
    {"/readyz", "get", 503, op_readyz_503, false},
    {"/metrics", "get", 200, op_metrics, false},
};
#define N_CASES (sizeof CASES / sizeof CASES[0])

static yaml_node_t *
map_get(yaml_document_t *d, yaml_node_t *map, const char *key)
{
    if (map == NULL || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(d, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(d, p->value);
    }
    return NULL;
}

static const char *
scalar(yaml_document_t *d, int id)
{
    yaml_node_t *n = yaml_document_get_node(d, id);
    return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : "";
}

/* One (path, method, status) of the file: its case must exist and give that status. */
static void
walk_one(fixture_t *f, const char *path, const char *method, long status)
{
    for (size_t i = 0; i < N_CASES; i++)
        if (strcmp(CASES[i].path, path) == 0 && strcmp(CASES[i].method, method) == 0 &&
            CASES[i].status == status) {
            long got = CASES[i].fn(f);
            if (got != status)
                fail_msg("%s %s: got %ld, openapi.yaml says %ld", method, path, got, status);
            CASES[i].seen = true;
            return;
        }
    fail_msg("openapi.yaml lists %s %s %ld: the test has no case for it", method, path, status);
}

static void
walk_methods(fixture_t *f, yaml_document_t *d, const char *path, yaml_node_t *ops)
{
    assert_int_equal(ops->type, YAML_MAPPING_NODE);
    for (yaml_node_pair_t *p = ops->data.mapping.pairs.start; p < ops->data.mapping.pairs.top;
         p++) {
        const char *method = scalar(d, p->key);
        yaml_node_t *resp = map_get(d, yaml_document_get_node(d, p->value), "responses");
        assert_non_null(resp);
        for (yaml_node_pair_t *r = resp->data.mapping.pairs.start; r < resp->data.mapping.pairs.top;
             r++)
            walk_one(f, path, method, strtol(scalar(d, r->key), NULL, 10));
    }
}

static void
test_openapi_walk(void **state)
{
    fixture_t *f = *state;
    FILE *fp = fopen(PT_SOURCE_DIR "/docs/api/openapi.yaml", "rb");
    assert_non_null(fp);
    yaml_parser_t parser;
    yaml_document_t doc;
    assert_true(yaml_parser_initialize(&parser));
    yaml_parser_set_input_file(&parser, fp);
    assert_true(yaml_parser_load(&parser, &doc));
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    yaml_node_t *version = map_get(&doc, root, "openapi");
    assert_true(version != NULL && version->type == YAML_SCALAR_NODE);
    assert_string_equal((const char *)version->data.scalar.value, "3.1.0");
    yaml_node_t *paths = map_get(&doc, root, "paths");
    assert_non_null(paths);
    for (yaml_node_pair_t *p = paths->data.mapping.pairs.start; p < paths->data.mapping.pairs.top;
         p++)
        walk_methods(f, &doc, scalar(&doc, p->key), yaml_document_get_node(&doc, p->value));
    for (size_t i = 0; i < N_CASES; i++)
        if (!CASES[i].seen)
            fail_msg("%s %s %ld is implemented but not in openapi.yaml", CASES[i].method,
                     CASES[i].path, CASES[i].status);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(fp);
}

int
main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_post_answers_after_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_commit_failure_is_503, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_duplicate_and_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_bad_json_and_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_bom_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_unauthorized, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_failures_throttled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_unsupported_media_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_spool_full, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_post_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_ready_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_file_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inbox_list_and_ack, setup_pull, teardown),
        cmocka_unit_test_setup_teardown(test_inbox_ack_after_commit, setup_pull, teardown),
        cmocka_unit_test_setup_teardown(test_inbox_listing_after_commit, setup_pull, teardown),
        cmocka_unit_test_setup_teardown(test_inbox_bad_params, setup_pull, teardown),
        cmocka_unit_test_setup_teardown(test_inbox_unauthorized, setup_pull, teardown),
        cmocka_unit_test_setup_teardown(test_inbox_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_201, setup_pull, teardown),
        cmocka_unit_test_setup_teardown(test_wait_422, setup_pull, teardown),
        cmocka_unit_test_setup_teardown(test_wait_timeout_202, setup_pull, teardown),
        cmocka_unit_test_setup_teardown(test_wait_cap_and_parse, setup_pull, teardown),
        cmocka_unit_test_setup_teardown(test_wait_known_outcome, setup_pull, teardown),
        cmocka_unit_test_setup_teardown(test_wait_stop, setup_pull, teardown),
        cmocka_unit_test_setup_teardown(test_openapi_walk, setup_pull, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
