/* Unit tests of broker/metrics: exact rendering of counters, gauges and histograms,
 * escaping, validation, many series and the series cap; then real scrapes over HTTP
 * (libcurl against the libmicrohttpd thread): values parsed back, publish() visibility,
 * 404, 405, HEAD, bad listen strings, a busy port, IPv6, and scrapes racing publishes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "broker_metrics.h"
#include "metrics.h"
#include "testutil.h"

/* ---- helpers --------------------------------------------------------------- */

static char *
render(metrics_t *m)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(metrics_render(m, &text, &len), 0);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

static void
assert_renders(metrics_t *m, const char *want)
{
    char *got = render(m);
    if (strcmp(got, want) != 0)
        fprintf(stderr, "--- want\n%s--- got\n%s---\n", want, got);
    assert_string_equal(got, want);
    free(got);
}

/* One sample parsed back: key is "name{labels}" exactly as served, value the number. */
typedef struct sample {
    char key[512];
    double value;
} sample_t;

typedef struct scrape {
    sample_t *v;
    size_t n;
} scrape_t;

/* Skips a quoted label value with its escapes; returns the char after the closing quote. */
static const char *
skip_quoted(const char *p)
{
    if (*p++ != '"')
        return NULL;
    for (; *p != '"'; p++) {
        if (*p == '\0' || *p == '\n')
            return NULL;
        if (*p == '\\' && (p[1] == '\\' || p[1] == '"' || p[1] == 'n'))
            p++;
        else if (*p == '\\')
            return NULL;
    }
    return p + 1;
}

static const char *
skip_name(const char *p, bool colon)
{
    const char *s = p;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
           (colon && *p == ':') || (p > s && *p >= '0' && *p <= '9'))
        p++;
    return p > s ? p : NULL;
}

/* Parses `name{l="v",...} value`; returns false when the line is not of that form. */
static bool
parse_sample(const char *line, sample_t *s)
{
    const char *p = skip_name(line, true);
    if (p != NULL && *p == '{') {
        p++;
        while (p != NULL && *p != '}') {
            p = skip_name(p, false);
            if (p == NULL || *p++ != '=' || (p = skip_quoted(p)) == NULL)
                return false;
            if (*p == ',')
                p++;
            else if (*p != '}')
                return false;
        }
        if (p == NULL)
            return false;
        p++;
    }
    if (p == NULL || *p != ' ' || (size_t)(p - line) >= sizeof s->key)
        return false;
    memcpy(s->key, line, (size_t)(p - line));
    s->key[p - line] = '\0';
    char *end;
    s->value = strtod(p + 1, &end);
    return end != p + 1 && *end == '\0';
}

/* Every line is a comment ("# HELP name ..." / "# TYPE name ...") or a sample. */
static void
parse_text(const char *text, scrape_t *out)
{
    char *copy = strdup(text), *save = NULL;
    assert_non_null(copy);
    out->v = NULL;
    out->n = 0;
    assert_true(text[0] == '\0' || text[strlen(text) - 1] == '\n');
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') {
            assert_true(strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0);
            continue;
        }
        if ((out->n & (out->n - 1)) == 0) { /* n is 0 or a power of two: double */
            out->v = realloc(out->v, (out->n ? 2 * out->n : 1) * sizeof *out->v);
            assert_non_null(out->v);
        }
        if (!parse_sample(line, &out->v[out->n]))
            fail_msg("not a sample line: %s", line);
        out->n++;
    }
    free(copy);
}

static double
value_of(const scrape_t *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].key, key) == 0)
            return s->v[i].value;
    fail_msg("no sample %s", key);
    return NAN;
}

static bool
has_key(const scrape_t *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].key, key) == 0)
            return true;
    return false;
}

/* ---- rendering ------------------------------------------------------------- */

static void
test_render_empty(void **state)
{
    (void)state;
    metrics_t *m = NULL;
    assert_int_equal(metrics_new(&m, NULL), 0);
    assert_renders(m, "");
    metrics_destroy(&m);
    assert_null(m);
    metrics_destroy(&m);
    metrics_destroy(NULL);
}

static void
test_render_counter(void **state)
{
    (void)state;
    metrics_t *m = NULL;
    assert_int_equal(metrics_new(&m, NULL), 0);
    const char *caf[] = {"caf", "referral"}, *ft[] = {"pole_emploi", "sanction"};
    metrics_series_t *a = metrics_counter(m, "t_total", "Things.", "partner,type", caf);
    metrics_series_t *b = metrics_counter(m, "t_total", "Things.", "partner,type", ft);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_equal(metrics_counter(m, "t_total", "Things.", "partner,type", caf), a);
    metrics_add(a, 1);
    metrics_add(a, 2);
    metrics_add(b, 0.5);
    metrics_add(b, -4); /* counters only go up */
    metrics_add(b, NAN);
    metrics_set(a, 100); /* not a gauge: ignored */
    metrics_observe(a, 1);
    metrics_series_t *plain = metrics_counter(m, "u_total", NULL, NULL, NULL);
    metrics_add(plain, 1e15);
    assert_renders(m, "# HELP t_total Things.\n"
                      "# TYPE t_total counter\n"
                      "t_total{partner=\"caf\",type=\"referral\"} 3\n"
                      "t_total{partner=\"pole_emploi\",type=\"sanction\"} 0.5\n"
                      "# HELP u_total \n"
                      "# TYPE u_total counter\n"
                      "u_total 1e+15\n");
    metrics_destroy(&m);
}

static void
test_render_gauge(void **state)
{
    (void)state;
    metrics_t *m = NULL;
    assert_int_equal(metrics_new(&m, NULL), 0);
    metrics_series_t *g = metrics_gauge(m, "g", "A gauge.", NULL, NULL);
    const char *r1[] = {"caf"};
    metrics_series_t *d = metrics_gauge(m, "depth", "Depth.", "recipient", r1);
    metrics_set(g, 0.1);
    metrics_add(d, 5);
    metrics_add(d, -7);
    metrics_observe(d, 3); /* not a histogram: ignored */
    metrics_add(NULL, 1);  /* a failed lookup must be harmless */
    metrics_set(NULL, 1);
    metrics_observe(NULL, 1);
    assert_renders(m, "# HELP g A gauge.\n"
                      "# TYPE g gauge\n"
                      "g 0.1\n"
                      "# HELP depth Depth.\n"
                      "# TYPE depth gauge\n"
                      "depth{recipient=\"caf\"} -2\n");
    metrics_set(g, INFINITY);
    metrics_set(d, NAN);
    assert_renders(m, "# HELP g A gauge.\n"
                      "# TYPE g gauge\n"
                      "g +Inf\n"
                      "# HELP depth Depth.\n"
                      "# TYPE depth gauge\n"
                      "depth{recipient=\"caf\"} NaN\n");
    metrics_set(g, 9007199254740993.0); /* 2^53+1 rounds to 2^53: needs 16 digits */
    metrics_set(d, 1.0 / 3);
    char *text = render(m);
    assert_non_null(strstr(text, "\ng 9007199254740992\n"));
    assert_non_null(strstr(text, "depth{recipient=\"caf\"} 0.33333333333333331\n"));
    free(text);
    metrics_destroy(&m);
}

static void
test_render_histogram(void **state)
{
    (void)state;
    metrics_t *m = NULL;
    assert_int_equal(metrics_new(&m, NULL), 0);
    const double b[] = {0.5, 1, 2.5};
    metrics_series_t *h = metrics_histogram(m, "lat_seconds", "Latency.", b, 3);
    assert_non_null(h);
    const double obs[] = {0.1, 0.5, 0.7, 1, 2, 3, 100, NAN};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
        metrics_observe(h, obs[i]);
    metrics_add(h, 5); /* not a counter: ignored */
    metrics_set(h, 5);
    /* Bounds are inclusive ("le"): 0.5 falls in le="0.5"; counts are cumulative. */
    assert_renders(m, "# HELP lat_seconds Latency.\n"
                      "# TYPE lat_seconds histogram\n"
                      "lat_seconds_bucket{le=\"0.5\"} 2\n"
                      "lat_seconds_bucket{le=\"1\"} 4\n"
                      "lat_seconds_bucket{le=\"2.5\"} 5\n"
                      "lat_seconds_bucket{le=\"+Inf\"} 7\n"
                      "lat_seconds_sum 107.3\n"
                      "lat_seconds_count 7\n");
    metrics_destroy(&m);
}

static void
test_render_histogram_labels(void **state)
{
    (void)state;
    metrics_t *m = NULL;
    metrics_family_t *f = NULL;
    assert_int_equal(metrics_new(&m, NULL), 0);
    const double b[] = {1, 2, INFINITY}; /* a trailing +Inf is implicit: dropped */
    metrics_desc_t d = {PT_METRICS_HISTOGRAM, "size", "Size.", "partner", b, 3};
    assert_int_equal(metrics_declare(m, &d, &f, NULL), 0);
    assert_renders(m, "# HELP size Size.\n# TYPE size histogram\n");
    const char *caf[] = {"caf"}, *msa[] = {"msa"};
    metrics_observe(metrics_series(f, caf), 2);
    metrics_observe(metrics_series(f, msa), 0);
    metrics_observe(metrics_series(f, msa), 3);
    assert_renders(m, "# HELP size Size.\n"
                      "# TYPE size histogram\n"
                      "size_bucket{partner=\"caf\",le=\"1\"} 0\n"
                      "size_bucket{partner=\"caf\",le=\"2\"} 1\n"
                      "size_bucket{partner=\"caf\",le=\"+Inf\"} 1\n"
                      "size_sum{partner=\"caf\"} 2\n"
                      "size_count{partner=\"caf\"} 1\n"
                      "size_bucket{partner=\"msa\",le=\"1\"} 1\n"
                      "size_bucket{partner=\"msa\",le=\"2\"} 1\n"
                      "size_bucket{partner=\"msa\",le=\"+Inf\"} 2\n"
                      "size_sum{partner=\"msa\"} 3\n"
                      "size_count{partner=\"msa\"} 2\n");
    metrics_destroy(&m);
}

static void
test_escaping(void **state)
{
    (void)state;
    metrics_t *m = NULL;
    assert_int_equal(metrics_new(&m, NULL), 0);
    const char *v[] = {"a\\b\"c\nd", "Meuse \xe2\x80\x93 \xc3\xa9t\xc3\xa9",
                       "x\xff\xc3(\xed\xa0\x80"};
    metrics_series_t *s = metrics_counter(m, "esc_total", "Back\\slash\nnew \"line\"", "a,b,c", v);
    assert_non_null(s);
    metrics_add(s, 1);
    /* \xff and \xc3( are not UTF-8, nor is the surrogate \xed\xa0\x80: each bad byte
     * becomes U+FFFD. HELP escapes backslash and newline, not the double quote. */
    assert_renders(m, "# HELP esc_total Back\\\\slash\\nnew \"line\"\n"
                      "# TYPE esc_total counter\n"
                      "esc_total{a=\"a\\\\b\\\"c\\nd\",b=\"Meuse \xe2\x80\x93 \xc3\xa9t\xc3\xa9\","
                      "c=\"x\xef\xbf\xbd\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"} 1\n");
    /* The escaped text still parses back as one sample. */
    char *text = render(m);
    scrape_t sc;
    parse_text(text, &sc);
    assert_int_equal(sc.n, 1);
    free(sc.v);
    free(text);
    /* Lookup uses the raw values, not the escaped ones. */
    assert_ptr_equal(metrics_counter(m, "esc_total", NULL, "a,b,c", v), s);
    metrics_destroy(&m);
}

static void
test_null_and_long_values(void **state)
{
    (void)state;
    metrics_t *m = NULL;
    metrics_family_t *f = NULL;
    assert_int_equal(metrics_new(&m, NULL), 0);
    metrics_desc_t d = {PT_METRICS_COUNTER, "n_total", "N.", "a,b"};
    assert_int_equal(metrics_declare(m, &d, &f, NULL), 0);
    const char *nul[] = {NULL, "x"}, *empty[] = {"", "x"}, *split1[] = {"ab", ""},
               *split2[] = {"a", "b"};
    metrics_series_t *s = metrics_series(f, nul);
    assert_non_null(s);
    assert_ptr_equal(metrics_series(f, empty), s);
    assert_ptr_not_equal(metrics_series(f, split1), metrics_series(f, split2));
    assert_null(metrics_series(f, NULL)); /* labels declared: values required */
    assert_null(metrics_series(NULL, empty));
    char lng[PT_METRICS_LABEL_VALUE_MAX + 2];
    memset(lng, 'x', sizeof lng - 1);
    lng[sizeof lng - 1] = '\0';
    const char *too_long[] = {lng, "x"};
    assert_null(metrics_series(f, too_long));
    lng[PT_METRICS_LABEL_VALUE_MAX] = '\0';
    assert_non_null(metrics_series(f, too_long));
    metrics_destroy(&m);
}

static void
test_validation(void **state)
{
    (void)state;
    metrics_t *m = NULL;
    pt_error_t err;
    assert_int_equal(metrics_new(&m, NULL), 0);
    static const char *const bad_names[] = {"", "1abc", "a-b", "a b", "é", "a{"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        metrics_desc_t d = {PT_METRICS_COUNTER, bad_names[i], "h", NULL};
        assert_int_equal(metrics_declare(m, &d, NULL, &err), PT_EINVALID);
    }
    metrics_desc_t okd = {PT_METRICS_GAUGE, "a:b_c9", "h", "x,_y,Z9"};
    assert_int_equal(metrics_declare(m, &okd, NULL, NULL), 0);
    static const char *const bad_labels[] = {"",   "a,",  ",a",  "a,,b", "__x",
                                             "1a", "a:b", "a,a", "a b"};
    for (size_t i = 0; i < sizeof bad_labels / sizeof bad_labels[0]; i++) {
        metrics_desc_t d = {PT_METRICS_COUNTER, "lbl_total", "h", bad_labels[i]};
        int rc = metrics_declare(m, &d, NULL, &err);
        if (bad_labels[i][0] == '\0') { /* "" means no labels, like NULL */
            assert_int_equal(rc, 0);
            continue;
        }
        assert_int_equal(rc, PT_EINVALID);
        assert_non_null(strstr(err.msg, "label"));
    }
    const double inc[] = {1, 2}, dec[] = {2, 1}, same[] = {1, 1}, nan[] = {NAN}, inf[] = {INFINITY};
    struct {
        const double *b;
        size_t n;
        const char *labels;
    } bad_h[] = {{NULL, 0, NULL}, {inc, 0, NULL}, {dec, 2, NULL}, {same, 2, NULL},
                 {nan, 1, NULL},  {inf, 1, NULL}, {inc, 2, "le"}};
    for (size_t i = 0; i < sizeof bad_h / sizeof bad_h[0]; i++) {
        metrics_desc_t d = {PT_METRICS_HISTOGRAM, "h_seconds", "h",
                            bad_h[i].labels,      bad_h[i].b,  bad_h[i].n};
        assert_int_equal(metrics_declare(m, &d, NULL, &err), PT_EINVALID);
    }
    assert_null(metrics_find(m, "h_seconds"));
    metrics_desc_t bad_type = {(metrics_type_t)9, "t", "h", NULL};
    assert_int_equal(metrics_declare(m, &bad_type, NULL, &err), PT_EINVALID);
    metrics_destroy(&m);
}

static void
test_redeclare(void **state)
{
    (void)state;
    metrics_t *m = NULL;
    metrics_family_t *f = NULL, *g = NULL;
    pt_error_t err;
    assert_int_equal(metrics_new(&m, NULL), 0);
    const double b[] = {1, 2}, b2[] = {1, 3};
    metrics_desc_t d = {PT_METRICS_HISTOGRAM, "r", "First.", "p", b, 2};
    assert_int_equal(metrics_declare(m, &d, &f, NULL), 0);
    d.help = "Second.";
    assert_int_equal(metrics_declare(m, &d, &g, NULL), 0);
    assert_ptr_equal(f, g);
    assert_ptr_equal(metrics_find(m, "r"), f);
    assert_null(metrics_find(m, "nope"));
    metrics_desc_t other[] = {
        {PT_METRICS_GAUGE, "r", "x", "p"},
        {PT_METRICS_HISTOGRAM, "r", "x", "q", b, 2},
        {PT_METRICS_HISTOGRAM, "r", "x", NULL, b, 2},
        {PT_METRICS_HISTOGRAM, "r", "x", "p", b2, 2},
        {PT_METRICS_HISTOGRAM, "r", "x", "p", b, 1},
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        assert_int_equal(metrics_declare(m, &other[i], &g, &err), PT_EINVALID);
        assert_null(g);
        assert_non_null(strstr(err.msg, "r: declared before"));
    }
    assert_null(metrics_counter(m, "r", "x", "p", (const char *[]){"a"}));
    assert_renders(m, "# HELP r First.\n# TYPE r histogram\n");
    metrics_destroy(&m);
}

static void
test_many_series(void **state)
{
    (void)state;
    metrics_t *m = NULL;
    metrics_family_t *f = NULL;
    assert_int_equal(metrics_new(&m, NULL), 0);
    metrics_desc_t d = {PT_METRICS_COUNTER, "many_total", "Many.", "partner,type"};
    assert_int_equal(metrics_declare(m, &d, &f, NULL), 0);
    enum { N = PT_METRICS_MAX_SERIES };
    metrics_series_t **h = calloc(N, sizeof *h);
    assert_non_null(h);
    char p[32], t[32];
    for (int i = 0; i < N; i++) {
        snprintf(p, sizeof p, "p%d", i % 97);
        snprintf(t, sizeof t, "t%d", i / 97);
        h[i] = metrics_series(f, (const char *[]){p, t});
        assert_non_null(h[i]);
        metrics_add(h[i], i);
    }
    /* Lookups find the same handles again, after all the table growth. */
    for (int i = 0; i < N; i += 7) {
        snprintf(p, sizeof p, "p%d", i % 97);
        snprintf(t, sizeof t, "t%d", i / 97);
        assert_ptr_equal(metrics_series(f, (const char *[]){p, t}), h[i]);
        metrics_add(h[i], 0.5);
    }
    /* The cap: no new series, existing ones still found. */
    assert_null(metrics_series(f, (const char *[]){"new", "one"}));
    assert_ptr_equal(metrics_series(f, (const char *[]){"p0", "t0"}), h[0]);
    char *text = render(m);
    scrape_t sc;
    parse_text(text, &sc);
    assert_int_equal(sc.n, N);
    for (int i = 0; i < N; i++) {
        char key[128];
        snprintf(key, sizeof key, "many_total{partner=\"p%d\",type=\"t%d\"}", i % 97, i / 97);
        assert_true(strcmp(sc.v[i].key, key) == 0); /* creation order */
        assert_true(sc.v[i].value == i + (i % 7 == 0 ? 0.5 : 0));
    }
    free(sc.v);
    free(text);
    free(h);
    metrics_destroy(&m);
}

static void
test_declare_ptibus(void **state)
{
    (void)state;
    metrics_t *m = NULL;
    assert_int_equal(metrics_new(&m, NULL), 0);
    assert_int_equal(broker_metrics_declare(m, NULL), 0);
    assert_int_equal(broker_metrics_declare(m, NULL), 0); /* idempotent */
    static const char *const names[] = {
        PT_METRIC_ACCEPTED,         PT_METRIC_REJECTED,           PT_METRIC_DELIVERED,
        PT_METRIC_ACKNOWLEDGED,     PT_METRIC_DEAD_LETTERED,      PT_METRIC_QUEUE_DEPTH,
        PT_METRIC_QUEUE_OLDEST_AGE, PT_METRIC_PARTNERS_CONNECTED, PT_METRIC_COMMIT_BATCH_SIZE,
        PT_METRIC_COMMIT_LATENCY,   PT_METRIC_JOURNAL_BYTES_USED, PT_METRIC_JOURNAL_MAP_BYTES,
        PT_METRIC_JOURNAL_LAST_SEQ};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_non_null(metrics_find(m, names[i]));
    /* The broker's calls, as it will make them. */
    const char *acc[] = {"caf", "referral"}, *rej[] = {"caf", "referral", "PT_EINVALID"};
    metrics_add(metrics_counter(m, PT_METRIC_ACCEPTED, NULL, "partner,type", acc), 1);
    metrics_add(metrics_counter(m, PT_METRIC_REJECTED, NULL, "partner,type,code", rej), 1);
    assert_null(metrics_counter(m, PT_METRIC_REJECTED, NULL, "partner,type", acc));
    metrics_set(metrics_series(metrics_find(m, PT_METRIC_QUEUE_DEPTH), (const char *[]){"msa"}), 4);
    metrics_set(metrics_series(metrics_find(m, PT_METRIC_JOURNAL_LAST_SEQ), NULL), 42);
    metrics_series_t *bs = metrics_series(metrics_find(m, PT_METRIC_COMMIT_BATCH_SIZE), NULL);
    metrics_observe(bs, 3);
    metrics_observe(metrics_series(metrics_find(m, PT_METRIC_COMMIT_LATENCY), NULL), 0.003);
    char *text = render(m);
    scrape_t sc;
    parse_text(text, &sc);
    assert_true(
        value_of(&sc, "ptibus_messages_accepted_total{partner=\"caf\",type=\"referral\"}") == 1);
    assert_true(value_of(&sc, "ptibus_messages_rejected_total{partner=\"caf\",type=\"referral\","
                              "code=\"PT_EINVALID\"}") == 1);
    assert_true(value_of(&sc, "ptibus_queue_depth{recipient=\"msa\"}") == 4);
    assert_true(value_of(&sc, "ptibus_partners_connected") == 0);
    assert_true(value_of(&sc, "ptibus_journal_bytes_used") == 0);
    assert_true(value_of(&sc, "ptibus_journal_last_seq") == 42);
    assert_true(value_of(&sc, "ptibus_commit_batch_size_bucket{le=\"2\"}") == 0);
    assert_true(value_of(&sc, "ptibus_commit_batch_size_bucket{le=\"4\"}") == 1);
    assert_true(value_of(&sc, "ptibus_commit_batch_size_bucket{le=\"4096\"}") == 1);
    assert_true(value_of(&sc, "ptibus_commit_latency_seconds_bucket{le=\"0.0025\"}") == 0);
    assert_true(value_of(&sc, "ptibus_commit_latency_seconds_bucket{le=\"0.005\"}") == 1);
    assert_true(value_of(&sc, "ptibus_commit_latency_seconds_bucket{le=\"0.0001\"}") == 0);
    assert_true(value_of(&sc, "ptibus_commit_latency_seconds_count") == 1);
    assert_non_null(strstr(text, "# TYPE ptibus_commit_latency_seconds histogram\n"));
    assert_non_null(strstr(text, "# TYPE ptibus_queue_oldest_age_seconds gauge\n"));
    assert_non_null(strstr(text, "# TYPE ptibus_messages_delivered_total counter\n"));
    /* 13 bounds + Inf, sum and count */
    size_t n = 0;
    for (size_t i = 0; i < sc.n; i++)
        n += strncmp(sc.v[i].key, "ptibus_commit_batch_size", 24) == 0;
    assert_int_equal(n, 16);
    free(sc.v);
    free(text);
    metrics_destroy(&m);
}

/* ---- HTTP ------------------------------------------------------------------ */

typedef struct http_reply {
    long status;
    char *body;
    size_t len;
    char ctype[128];
    char allow[64];
} http_reply_t;

static size_t
on_body(char *p, size_t size, size_t n, void *cls)
{
    http_reply_t *r = cls;
    char *b = realloc(r->body, r->len + size * n + 1);
    if (b == NULL)
        return 0;
    memcpy(b + r->len, p, size * n);
    r->body = b;
    r->len += size * n;
    r->body[r->len] = '\0';
    return size * n;
}

static size_t
on_header(char *p, size_t size, size_t n, void *cls)
{
    http_reply_t *r = cls;
    size_t len = size * n;
    char *dst = NULL;
    size_t skip = 0;
    if (len > 14 && strncasecmp(p, "Content-Type: ", 14) == 0)
        dst = r->ctype, skip = 14;
    else if (len > 7 && strncasecmp(p, "Allow: ", 7) == 0)
        dst = r->allow, skip = 7;
    if (dst != NULL) {
        size_t vlen = strcspn(p + skip, "\r\n");
        vlen = vlen < 63 ? vlen : 63;
        memcpy(dst, p + skip, vlen);
        dst[vlen] = '\0';
    }
    return len;
}

/* Fetches url with method ("GET", "HEAD", "POST", ...); returns the curl code. */
static int
http_fetch(const char *method, const char *url, http_reply_t *r)
{
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "POST") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "x=1");
    else if (strcmp(method, "GET") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    int rc = (int)curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(c);
    return rc;
}

static void
scrape(const char *url, scrape_t *sc)
{
    http_reply_t r;
    assert_int_equal(http_fetch("GET", url, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "text/plain; version=0.0.4; charset=utf-8");
    assert_non_null(r.body);
    parse_text(r.body, sc);
    free(r.body);
}

/* A registry serving on 127.0.0.1; the URL base in base ("http://127.0.0.1:PORT"). */
static metrics_t *
serve(char *base, size_t size)
{
    metrics_t *m = NULL;
    pt_error_t err;
    assert_int_equal(metrics_new(&m, NULL), 0);
    assert_int_equal(broker_metrics_declare(m, NULL), 0);
    for (int attempt = 0;; attempt++) { /* the free port may be taken meanwhile */
        char listen[64];
        int port = tu_free_port();
        snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
        int rc = metrics_http_start(m, listen, &err);
        if (rc == 0) {
            snprintf(base, size, "http://127.0.0.1:%d", port);
            return m;
        }
        if (attempt == 5)
            fail_msg("metrics_http_start: %s", err.msg);
    }
}

static void
test_http_scrape(void **state)
{
    (void)state;
    char base[64], url[128];
    metrics_t *m = serve(base, sizeof base);
    snprintf(url, sizeof url, "%s/metrics", base);
    const char *acc[] = {"caf", "orientation_decision"};
    metrics_series_t *s = metrics_counter(m, PT_METRIC_ACCEPTED, NULL, "partner,type", acc);
    metrics_add(s, 7);

    /* Served text is what was published at start: the series did not exist yet. */
    scrape_t sc;
    scrape(url, &sc);
    assert_true(value_of(&sc, "ptibus_partners_connected") == 0);
    assert_false(has_key(&sc, "ptibus_messages_accepted_total{partner=\"caf\","
                              "type=\"orientation_decision\"}"));
    free(sc.v);

    assert_int_equal(metrics_publish(m), 0);
    scrape(url, &sc);
    assert_true(value_of(&sc, "ptibus_messages_accepted_total{partner=\"caf\","
                              "type=\"orientation_decision\"}") == 7);
    free(sc.v);

    /* Live updates stay invisible until the next publish. */
    metrics_add(s, 1);
    metrics_set(metrics_series(metrics_find(m, PT_METRIC_PARTNERS_CONNECTED), NULL), 3);
    scrape(url, &sc);
    assert_true(value_of(&sc, "ptibus_partners_connected") == 0);
    free(sc.v);
    assert_int_equal(metrics_publish(m), 0);
    scrape(url, &sc);
    assert_true(value_of(&sc, "ptibus_partners_connected") == 3);
    assert_true(value_of(&sc, "ptibus_messages_accepted_total{partner=\"caf\","
                              "type=\"orientation_decision\"}") == 8);
    free(sc.v);

    snprintf(url, sizeof url, "%s/metrics?x=1", base); /* the query string is not the path */
    scrape(url, &sc);
    free(sc.v);
    metrics_destroy(&m);
}

static void
test_http_errors(void **state)
{
    (void)state;
    char base[64], url[128];
    http_reply_t r;
    metrics_t *m = serve(base, sizeof base);
    static const char *const not_found[] = {"/", "/metric", "/metrics/", "/metricsx", "/x/metrics"};
    for (size_t i = 0; i < sizeof not_found / sizeof not_found[0]; i++) {
        snprintf(url, sizeof url, "%s%s", base, not_found[i]);
        assert_int_equal(http_fetch("GET", url, &r), CURLE_OK);
        assert_int_equal(r.status, 404);
        free(r.body);
    }
    snprintf(url, sizeof url, "%s/metrics", base);
    static const char *const methods[] = {"POST", "PUT", "DELETE", "OPTIONS"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        assert_int_equal(http_fetch(methods[i], url, &r), CURLE_OK);
        assert_int_equal(r.status, 405);
        assert_string_equal(r.allow, "GET, HEAD");
        free(r.body);
    }
    assert_int_equal(http_fetch("HEAD", url, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_null(r.body);
    /* Still serving after all that. */
    scrape_t sc;
    scrape(url, &sc);
    assert_true(sc.n > 0);
    free(sc.v);
    metrics_destroy(&m);
    /* Stopped: nobody listens any more. */
    assert_int_not_equal(http_fetch("GET", url, &r), CURLE_OK);
    free(r.body);
}

static void
test_http_bad_listen(void **state)
{
    (void)state;
    metrics_t *m = NULL;
    pt_error_t err;
    assert_int_equal(metrics_new(&m, NULL), 0);
    static const char *const bad[] = {"",
                                      "9400",
                                      "127.0.0.1",
                                      "127.0.0.1:",
                                      ":9400",
                                      "127.0.0.1:0",
                                      "127.0.0.1:65536",
                                      "127.0.0.1:94x",
                                      "::1:9400",
                                      "[::1]",
                                      "[]:9400",
                                      "999.1.1.1:9400",
                                      "127.0.0.1:-1",
                                      "127.0.0.1: 9400",
                                      "localhost:9400"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = metrics_http_start(m, bad[i], &err);
        if (rc != PT_ECONFIG)
            fail_msg("\"%s\" gave %d", bad[i], rc);
        assert_int_equal(strncmp(err.msg, "metrics.listen: ", 16), 0);
    }
    assert_int_equal(metrics_http_start(m, NULL, &err), PT_ECONFIG);
    metrics_destroy(&m);
}

static void
test_http_busy_port(void **state)
{
    (void)state;
    char base[64], listen[64];
    pt_error_t err;
    metrics_t *m = serve(base, sizeof base), *other = NULL;
    snprintf(listen, sizeof listen, "%s", base + 7); /* "127.0.0.1:PORT" */
    assert_int_equal(metrics_http_start(m, listen, &err), -EALREADY);
    assert_int_equal(metrics_new(&other, NULL), 0);
    int rc = metrics_http_start(other, listen, &err);
    assert_true(rc < 0);
    assert_non_null(strstr(err.msg, "cannot serve on 127.0.0.1:"));
    metrics_destroy(&other);
    metrics_destroy(&m);
}

/* Idle TCP connections from one address (127.0.0.1), more than the whole connection
 * limit used to be, do not blind the endpoint for a scraper at another address
 * (127.0.0.2): each address gets at most a few connections. */
static void
test_http_per_ip_limit(void **state)
{
    (void)state;
    char base[64], url[128];
    metrics_t *m = serve(base, sizeof base);
    snprintf(url, sizeof url, "%s/metrics", base);
    int port = atoi(strrchr(base, ':') + 1);
    int fds[24];
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    for (size_t i = 0; i < sizeof fds / sizeof *fds; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fds[i] >= 0);
        assert_int_equal(connect(fds[i], (struct sockaddr *)&to, sizeof to), 0);
    }
    usleep(300 * 1000); /* the server accepts them */
    http_reply_t r = {0};
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_INTERFACE, "host!127.0.0.2"); /* the source address */
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    int rc = (int)curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(c);
    for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
        close(fds[i]);
    free(r.body);
    assert_int_equal(rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    metrics_destroy(&m);
}

static bool
ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void
test_http_ipv6(void **state)
{
    (void)state;
    if (!ipv6_loopback())
        skip();
    char listen[64], url[128];
    pt_error_t err;
    metrics_t *m = NULL;
    assert_int_equal(metrics_new(&m, NULL), 0);
    metrics_set(metrics_gauge(m, "v6", "IPv6.", NULL, NULL), 6);
    int port = tu_free_port();
    snprintf(listen, sizeof listen, "[::1]:%d", port);
    assert_int_equal(metrics_http_start(m, listen, &err), 0);
    snprintf(url, sizeof url, "http://[::1]:%d/metrics", port);
    scrape_t sc;
    scrape(url, &sc);
    assert_true(value_of(&sc, "v6") == 6);
    free(sc.v);
    /* Bound to ::1 only: the IPv4 loopback does not answer on that port. */
    http_reply_t r;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    assert_int_not_equal(http_fetch("GET", url, &r), CURLE_OK);
    free(r.body);
    metrics_destroy(&m);
}

/* Scrapes racing publishes: every scrape parses and the counter never goes back. The
 * scraper thread records problems instead of asserting (cmocka asserts from the main
 * thread only). */
typedef struct racer {
    char url[128];
    int scrapes;
    int bad;
} racer_t;

static bool
race_scrape_once(const char *url, double *last)
{
    http_reply_t r = {0};
    CURL *c = curl_easy_init();
    if (c == NULL)
        return false;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    bool ok = curl_easy_perform(c) == CURLE_OK && r.body != NULL;
    curl_easy_cleanup(c);
    char *save = NULL;
    double v = -1;
    for (char *line = ok ? strtok_r(r.body, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save)) {
        sample_t s;
        if (line[0] == '#')
            continue;
        ok = ok && parse_sample(line, &s);
        if (ok && strcmp(s.key, "race_total") == 0)
            v = s.value;
    }
    free(r.body);
    ok = ok && v >= *last;
    *last = v;
    return ok;
}

static void *
race_scraper(void *cls)
{
    racer_t *rc = cls;
    double last = 0;
    for (int i = 0; i < rc->scrapes; i++)
        rc->bad += !race_scrape_once(rc->url, &last);
    return NULL;
}

static void
test_http_publish_race(void **state)
{
    (void)state;
    char base[64];
    racer_t rc = {.scrapes = 40};
    metrics_t *m = serve(base, sizeof base);
    snprintf(rc.url, sizeof rc.url, "%s/metrics", base);
    metrics_series_t *s = metrics_counter(m, "race_total", "Race.", NULL, NULL);
    assert_int_equal(metrics_publish(m), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, race_scraper, &rc), 0);
    for (int i = 0; i < 400; i++) {
        metrics_add(s, 1);
        assert_int_equal(metrics_publish(m), 0);
        usleep(500);
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(rc.bad, 0);
    metrics_destroy(&m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_empty),
        cmocka_unit_test(test_render_counter),
        cmocka_unit_test(test_render_gauge),
        cmocka_unit_test(test_render_histogram),
        cmocka_unit_test(test_render_histogram_labels),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_null_and_long_values),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_redeclare),
        cmocka_unit_test(test_many_series),
        cmocka_unit_test(test_declare_ptibus),
        cmocka_unit_test(test_http_scrape),
        cmocka_unit_test(test_http_errors),
        cmocka_unit_test(test_http_bad_listen),
        cmocka_unit_test(test_http_busy_port),
        cmocka_unit_test(test_http_ipv6),
        cmocka_unit_test(test_http_per_ip_limit),
        cmocka_unit_test(test_http_publish_race),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
