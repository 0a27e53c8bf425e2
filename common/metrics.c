/* metrics: registry of families and series (loop thread), text rendering, and the
 * libmicrohttpd endpoint that serves the last published text (its own thread). The only
 * state shared between the two threads is `served`, guarded by `lock`. */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "log.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
/* Idle connections cost one fd each: a client address may hold only a few, so that
 * one host (or a port scanner) cannot take every slot and blind the scraper, and an
 * idle one is closed after the timeout. */
#define METRICS_HTTP_CONNECTIONS 64
#define METRICS_HTTP_PER_IP 4
#define METRICS_HTTP_TIMEOUT_S 5

struct metrics_series {
    metrics_family_t *f;
    uint64_t hash;
    char **values;     /* raw label values, f->n_labels of them */
    char *labels_text; /* escaped `a="x",b="y"`, "" without labels */
    double value;      /* counter, gauge */
    double sum;        /* histogram */
    uint64_t count;
    uint64_t *counts; /* histogram: per bucket (not cumulative), n_buckets + 1 for +Inf */
};

struct metrics_family {
    metrics_type_t type;
    char *name;
    char *help;
    char **labels;
    size_t n_labels;
    double *buckets;
    size_t n_buckets;
    metrics_series_t **order; /* creation order, for rendering */
    size_t n_series;
    size_t cap_order;
    metrics_series_t **slots; /* open addressing on hash; power-of-two size */
    size_t n_slots;
    bool full_warned;
};

struct metrics {
    metrics_family_t **families;
    size_t n_families;
    size_t cap_families;
    pthread_mutex_t lock; /* guards served / served_len */
    char *served;
    size_t served_len;
    struct MHD_Daemon *httpd;
    struct MHD_Response *r404;
    struct MHD_Response *r405;
};

/* ---- text buffer ----------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len;
    size_t cap;
    bool failed;
} sbuf_t;

static void
sb_putn(sbuf_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void
sb_puts(sbuf_t *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

/* The shortest of %.15g / %.17g that reads back as v; Prometheus' spellings of the
 * non-finite values. Assumes the "C" LC_NUMERIC locale (the broker never changes it). */
static void
fmt_double(char buf[32], double v)
{
    if (isnan(v)) {
        strcpy(buf, "NaN");
    } else if (isinf(v)) {
        strcpy(buf, v > 0 ? "+Inf" : "-Inf");
    } else {
        snprintf(buf, 32, "%.15g", v);
        if (strtod(buf, NULL) != v)
            snprintf(buf, 32, "%.17g", v);
    }
}

static void
sb_double(sbuf_t *b, double v)
{
    char buf[32];
    fmt_double(buf, v);
    sb_puts(b, buf);
}

static void
sb_u64(sbuf_t *b, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    sb_puts(b, buf);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when the bytes there are not
 * one (overlong forms, surrogates and code points over U+10FFFF included). */
static size_t
utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n;
    uint32_t min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, min = 0x80;
    else if ((c & 0xf0) == 0xe0)
        n = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, min = 0x10000;
    else
        return 0;
    uint32_t cp = c & (0x7fu >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* Appends s escaped for a HELP line (backslash, newline) or, when quoted, for a label
 * value (also double quote). Bytes that are not UTF-8 become U+FFFD: one bad byte must
 * not make the whole scrape unparseable. */
static void
sb_escaped(sbuf_t *b, const char *s, bool quoted)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = utf8_len(p);
        if (n == 0) {
            sb_puts(b, "\xef\xbf\xbd");
            p++;
        } else if (*p == '\\') {
            sb_puts(b, "\\\\");
            p++;
        } else if (*p == '\n') {
            sb_puts(b, "\\n");
            p++;
        } else if (*p == '"' && quoted) {
            sb_puts(b, "\\\"");
            p++;
        } else {
            sb_putn(b, (const char *)p, n);
            p += n;
        }
    }
}

/* ---- validation ------------------------------------------------------------ */

static bool
name_ok(const char *s, bool colon)
{
    if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++) {
        bool alnum = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                     (*s >= '0' && *s <= '9') || *s == '_';
        if (!alnum && !(colon && *s == ':'))
            return false;
    }
    return true;
}

static bool
label_ok(const char *s, metrics_type_t type)
{
    if (!name_ok(s, false) || strncmp(s, "__", 2) == 0)
        return false;
    return !(type == PT_METRICS_HISTOGRAM && strcmp(s, "le") == 0);
}

/* Splits "a,b,c" into a fresh array of fresh strings, checking each name and that none
 * repeats. Returns 0, PT_EINVALID or -ENOMEM. */
static int
split_labels(const char *spec, metrics_type_t type, char ***out, size_t *n, pt_error_t *err)
{
    *out = NULL;
    *n = 0;
    if (spec == NULL || *spec == '\0')
        return 0;
    size_t cap = 1;
    for (const char *p = spec; *p; p++)
        cap += *p == ',';
    char **v = calloc(cap, sizeof *v);
    if (v == NULL)
        return pt_error_set(err, -ENOMEM, "metrics", "out of memory");
    *out = v;
    for (const char *p = spec;; p++) {
        size_t len = strcspn(p, ",");
        if ((v[*n] = strndup(p, len)) == NULL)
            return pt_error_set(err, -ENOMEM, "metrics", "out of memory");
        if (!label_ok(v[(*n)++], type))
            return pt_error_set(err, PT_EINVALID, "metrics", "label \"%.60s\" is not valid",
                                v[*n - 1]);
        for (size_t i = 0; i + 1 < *n; i++)
            if (strcmp(v[i], v[*n - 1]) == 0)
                return pt_error_set(err, PT_EINVALID, "metrics", "label \"%.60s\" repeats", v[i]);
        p += len;
        if (*p == '\0')
            return 0;
    }
}

static void
free_strv(char **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        free(v[i]);
    free(v);
}

/* Checks the histogram bounds and says how many to keep (a trailing +Inf is implicit). */
static int
check_buckets(const metrics_desc_t *d, size_t *keep, pt_error_t *err)
{
    size_t n = d->n_buckets;
    *keep = 0;
    if (d->type != PT_METRICS_HISTOGRAM)
        return 0;
    if (n > 0 && d->buckets != NULL && isinf(d->buckets[n - 1]) && d->buckets[n - 1] > 0)
        n--;
    if (n == 0 || d->buckets == NULL)
        return pt_error_set(err, PT_EINVALID, d->name, "a histogram needs buckets");
    for (size_t i = 0; i < n; i++)
        if (!isfinite(d->buckets[i]) || (i > 0 && d->buckets[i] <= d->buckets[i - 1]))
            return pt_error_set(err, PT_EINVALID, d->name,
                                "buckets must be finite and strictly increasing");
    *keep = n;
    return 0;
}

/* ---- families and series --------------------------------------------------- */

static void
series_free(metrics_series_t *s)
{
    if (s == NULL)
        return;
    free_strv(s->values, s->f->n_labels);
    free(s->labels_text);
    free(s->counts);
    free(s);
}

static void
family_free(metrics_family_t *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->n_series; i++)
        series_free(f->order[i]);
    free(f->order);
    free(f->slots);
    free_strv(f->labels, f->n_labels);
    free(f->buckets);
    free(f->help);
    free(f->name);
    free(f);
}

/* True when f was declared as d (help aside). */
static bool
family_matches(const metrics_family_t *f, const metrics_desc_t *d, char **labels, size_t n_labels,
               size_t n_buckets)
{
    if (f->type != d->type || f->n_labels != n_labels || f->n_buckets != n_buckets)
        return false;
    for (size_t i = 0; i < n_labels; i++)
        if (strcmp(f->labels[i], labels[i]) != 0)
            return false;
    for (size_t i = 0; i < n_buckets; i++)
        if (f->buckets[i] != d->buckets[i])
            return false;
    return true;
}

static int
family_alloc(const metrics_desc_t *d, char **labels, size_t n_labels, size_t n_buckets,
             metrics_family_t **out)
{
    metrics_family_t *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -ENOMEM;
    f->type = d->type;
    f->labels = labels;
    f->n_labels = n_labels;
    f->n_buckets = n_buckets;
    f->name = strdup(d->name);
    f->help = strdup(d->help ? d->help : "");
    f->buckets = n_buckets ? malloc(n_buckets * sizeof *f->buckets) : NULL;
    if (f->name == NULL || f->help == NULL || (n_buckets && f->buckets == NULL)) {
        f->labels = NULL; /* the caller still owns them on error */
        family_free(f);
        return -ENOMEM;
    }
    if (n_buckets)
        memcpy(f->buckets, d->buckets, n_buckets * sizeof *f->buckets);
    *out = f;
    return 0;
}

static int
registry_append(metrics_t *m, metrics_family_t *f)
{
    if (m->n_families == m->cap_families) {
        size_t cap = m->cap_families ? 2 * m->cap_families : 16;
        metrics_family_t **v = realloc(m->families, cap * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        m->families = v;
        m->cap_families = cap;
    }
    m->families[m->n_families++] = f;
    return 0;
}

metrics_family_t *
metrics_find(metrics_t *m, const char *name)
{
    for (size_t i = 0; m != NULL && name != NULL && i < m->n_families; i++)
        if (strcmp(m->families[i]->name, name) == 0)
            return m->families[i];
    return NULL;
}

/* Adds a new family for d, owning labels from now on (also on error). */
static int
declare_new(metrics_t *m, const metrics_desc_t *d, char **labels, size_t n_labels, size_t n_buckets,
            metrics_family_t **out, pt_error_t *err)
{
    metrics_family_t *f = NULL;
    int rc = family_alloc(d, labels, n_labels, n_buckets, &f);
    if (rc != 0) {
        free_strv(labels, n_labels);
        return pt_error_set(err, rc, d->name, "out of memory");
    }
    if ((rc = registry_append(m, f)) != 0) {
        family_free(f);
        return pt_error_set(err, rc, d->name, "out of memory");
    }
    /* A family without labels has exactly one series: create it now so it renders 0. */
    if (n_labels == 0 && metrics_series(f, NULL) == NULL)
        return pt_error_set(err, -ENOMEM, d->name, "out of memory");
    *out = f;
    return 0;
}

int
metrics_declare(metrics_t *m, const metrics_desc_t *d, metrics_family_t **out, pt_error_t *err)
{
    metrics_family_t *f = NULL, *dummy;
    char **labels = NULL;
    size_t n_labels = 0, n_buckets = 0;
    out = out ? out : &dummy;
    *out = NULL;
    if (m == NULL || d == NULL || !name_ok(d->name, true))
        return pt_error_set(err, PT_EINVALID, "metrics", "\"%.60s\" is not a metric name",
                            d && d->name ? d->name : "(null)");
    if (d->type < PT_METRICS_COUNTER || d->type > PT_METRICS_HISTOGRAM)
        return pt_error_set(err, PT_EINVALID, d->name, "unknown metric type %d", (int)d->type);
    int rc = check_buckets(d, &n_buckets, err);
    if (rc == 0)
        rc = split_labels(d->labels, d->type, &labels, &n_labels, err);
    if (rc != 0) {
        free_strv(labels, n_labels);
        return rc;
    }
    if ((f = metrics_find(m, d->name)) == NULL)
        return declare_new(m, d, labels, n_labels, n_buckets, out, err);
    bool same = family_matches(f, d, labels, n_labels, n_buckets);
    free_strv(labels, n_labels);
    if (!same)
        return pt_error_set(err, PT_EINVALID, d->name,
                            "declared before with another type, "
                            "labels or buckets");
    *out = f;
    return 0;
}

/* FNV-1a over the values, each closed by a 0xff byte (never in UTF-8), so that ("ab","")
 * and ("a","b") differ. */
static uint64_t
hash_values(const char *const *values, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = (const unsigned char *)(values && values[i] ? values[i] : "");
        for (; *p; p++)
            h = (h ^ *p) * 0x100000001b3u;
        h = (h ^ 0xff) * 0x100000001b3u;
    }
    return h;
}

static bool
series_is(const metrics_series_t *s, uint64_t h, const char *const *values)
{
    if (s->hash != h)
        return false;
    for (size_t i = 0; i < s->f->n_labels; i++)
        if (strcmp(s->values[i], values[i] ? values[i] : "") != 0)
            return false;
    return true;
}

/* Index of the series with these values, or of the empty slot where it belongs. */
static size_t
slot_of(const metrics_family_t *f, uint64_t h, const char *const *values)
{
    size_t mask = f->n_slots - 1, i = (size_t)h & mask;
    while (f->slots[i] != NULL && !series_is(f->slots[i], h, values))
        i = (i + 1) & mask;
    return i;
}

/* Keeps the table at most half full, and room in the creation-order array. */
static int
family_reserve(metrics_family_t *f)
{
    if (f->n_series == f->cap_order) {
        size_t cap = f->cap_order ? 2 * f->cap_order : 8;
        metrics_series_t **v = realloc(f->order, cap * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        f->order = v;
        f->cap_order = cap;
    }
    if (2 * (f->n_series + 1) <= f->n_slots)
        return 0;
    size_t n = f->n_slots ? 2 * f->n_slots : 16;
    metrics_series_t **slots = calloc(n, sizeof *slots);
    if (slots == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < f->n_series; i++) {
        size_t j = (size_t)f->order[i]->hash & (n - 1);
        while (slots[j] != NULL)
            j = (j + 1) & (n - 1);
        slots[j] = f->order[i];
    }
    free(f->slots);
    f->slots = slots;
    f->n_slots = n;
    return 0;
}

/* Pre-renders `name="value",...` so rendering only copies. */
static char *
labels_text(const metrics_family_t *f, char **values)
{
    sbuf_t b = {0};
    sb_puts(&b, "");
    for (size_t i = 0; i < f->n_labels; i++) {
        sb_puts(&b, i ? "," : "");
        sb_puts(&b, f->labels[i]);
        sb_puts(&b, "=\"");
        sb_escaped(&b, values[i], true);
        sb_puts(&b, "\"");
    }
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

static metrics_series_t *
series_alloc(metrics_family_t *f, uint64_t h, const char *const *values)
{
    metrics_series_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->f = f;
    s->hash = h;
    s->values = calloc(f->n_labels ? f->n_labels : 1, sizeof *s->values);
    bool ok = s->values != NULL;
    for (size_t i = 0; ok && i < f->n_labels; i++)
        ok = (s->values[i] = strdup(values[i] ? values[i] : "")) != NULL;
    if (ok && f->type == PT_METRICS_HISTOGRAM)
        ok = (s->counts = calloc(f->n_buckets + 1, sizeof *s->counts)) != NULL;
    if (ok)
        ok = (s->labels_text = labels_text(f, s->values)) != NULL;
    if (!ok) {
        series_free(s);
        return NULL;
    }
    return s;
}

static bool
values_ok(const metrics_family_t *f, const char *const *values)
{
    if (f->n_labels > 0 && values == NULL)
        return false;
    for (size_t i = 0; i < f->n_labels; i++)
        if (values[i] != NULL && strlen(values[i]) > PT_METRICS_LABEL_VALUE_MAX)
            return false;
    return true;
}

metrics_series_t *
metrics_series(metrics_family_t *f, const char *const *label_values)
{
    if (f == NULL || !values_ok(f, label_values))
        return NULL;
    uint64_t h = hash_values(label_values, f->n_labels);
    if (f->n_slots > 0) {
        size_t i = slot_of(f, h, label_values);
        if (f->slots[i] != NULL)
            return f->slots[i];
    }
    if (f->n_series >= PT_METRICS_MAX_SERIES) {
        if (!f->full_warned)
            pt_log_warn("metrics.full", "%s: over %d series, new ones dropped", f->name,
                        PT_METRICS_MAX_SERIES);
        f->full_warned = true;
        return NULL;
    }
    metrics_series_t *s = NULL;
    if (family_reserve(f) != 0 || (s = series_alloc(f, h, label_values)) == NULL)
        return NULL;
    f->slots[slot_of(f, h, label_values)] = s;
    f->order[f->n_series++] = s;
    return s;
}

static metrics_series_t *
declare_series(metrics_t *m, const metrics_desc_t *d, const char *const *label_values)
{
    metrics_family_t *f = NULL;
    if (metrics_declare(m, d, &f, NULL) != 0)
        return NULL;
    return metrics_series(f, label_values);
}

metrics_series_t *
metrics_counter(metrics_t *m, const char *name, const char *help, const char *label_names,
                const char *const *label_values)
{
    metrics_desc_t d = {PT_METRICS_COUNTER, name, help, label_names, NULL, 0};
    return declare_series(m, &d, label_values);
}

metrics_series_t *
metrics_gauge(metrics_t *m, const char *name, const char *help, const char *label_names,
              const char *const *label_values)
{
    metrics_desc_t d = {PT_METRICS_GAUGE, name, help, label_names, NULL, 0};
    return declare_series(m, &d, label_values);
}

metrics_series_t *
metrics_histogram(metrics_t *m, const char *name, const char *help, const double *buckets,
                  size_t n_buckets)
{
    metrics_desc_t d = {PT_METRICS_HISTOGRAM, name, help, NULL, buckets, n_buckets};
    return declare_series(m, &d, NULL);
}

/* ---- updates (hot path) ---------------------------------------------------- */

void
metrics_add(metrics_series_t *s, double v)
{
    if (s == NULL)
        return;
    if (s->f->type == PT_METRICS_GAUGE || (s->f->type == PT_METRICS_COUNTER && v >= 0))
        s->value += v;
}

void
metrics_set(metrics_series_t *s, double v)
{
    if (s != NULL && s->f->type == PT_METRICS_GAUGE)
        s->value = v;
}

void
metrics_observe(metrics_series_t *s, double v)
{
    if (s == NULL || s->f->type != PT_METRICS_HISTOGRAM || isnan(v))
        return;
    const double *b = s->f->buckets;
    size_t lo = 0, hi = s->f->n_buckets; /* first bucket with v <= bound; n = +Inf */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v <= b[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    s->counts[lo]++;
    s->count++;
    s->sum += v;
}

/* ---- rendering ------------------------------------------------------------- */

static const char *const type_names[] = {
    [PT_METRICS_COUNTER] = "counter",
    [PT_METRICS_GAUGE] = "gauge",
    [PT_METRICS_HISTOGRAM] = "histogram",
};

/* NAMESUFFIX{labels[,extra]} */
static void
render_head(sbuf_t *b, const metrics_series_t *s, const char *suffix, const char *extra)
{
    bool labels = s->labels_text[0] != '\0';
    sb_puts(b, s->f->name);
    sb_puts(b, suffix);
    if (!labels && extra == NULL)
        return;
    sb_puts(b, "{");
    sb_puts(b, s->labels_text);
    if (extra != NULL) {
        sb_puts(b, labels ? "," : "");
        sb_puts(b, extra);
    }
    sb_puts(b, "}");
}

static void
render_histogram(sbuf_t *b, const metrics_series_t *s)
{
    uint64_t cum = 0;
    char le[48], num[32];
    for (size_t i = 0; i <= s->f->n_buckets; i++) {
        cum += s->counts[i];
        fmt_double(num, i < s->f->n_buckets ? s->f->buckets[i] : INFINITY);
        snprintf(le, sizeof le, "le=\"%s\"", num);
        render_head(b, s, "_bucket", le);
        sb_puts(b, " ");
        sb_u64(b, cum);
        sb_puts(b, "\n");
    }
    render_head(b, s, "_sum", NULL);
    sb_puts(b, " ");
    sb_double(b, s->sum);
    sb_puts(b, "\n");
    render_head(b, s, "_count", NULL);
    sb_puts(b, " ");
    sb_u64(b, s->count);
    sb_puts(b, "\n");
}

static void
render_family(sbuf_t *b, const metrics_family_t *f)
{
    sb_puts(b, "# HELP ");
    sb_puts(b, f->name);
    sb_puts(b, " ");
    sb_escaped(b, f->help, false);
    sb_puts(b, "\n# TYPE ");
    sb_puts(b, f->name);
    sb_puts(b, " ");
    sb_puts(b, type_names[f->type]);
    sb_puts(b, "\n");
    for (size_t i = 0; i < f->n_series; i++) {
        const metrics_series_t *s = f->order[i];
        if (f->type == PT_METRICS_HISTOGRAM) {
            render_histogram(b, s);
            continue;
        }
        render_head(b, s, "", NULL);
        sb_puts(b, " ");
        sb_double(b, s->value);
        sb_puts(b, "\n");
    }
}

int
metrics_render(metrics_t *m, char **out, size_t *len)
{
    sbuf_t b = {0};
    sb_puts(&b, ""); /* an empty registry still gives "" rather than NULL */
    for (size_t i = 0; i < m->n_families; i++)
        render_family(&b, m->families[i]);
    if (b.failed) {
        free(b.p);
        return -ENOMEM;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}

int
metrics_publish(metrics_t *m)
{
    char *text, *old;
    size_t len;
    int rc = metrics_render(m, &text, &len);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&m->lock);
    old = m->served;
    m->served = text;
    m->served_len = len;
    pthread_mutex_unlock(&m->lock);
    free(old);
    return 0;
}

/* ---- lifecycle ------------------------------------------------------------- */

int
metrics_new(metrics_t **out, pt_error_t *err)
{
    metrics_t *m = calloc(1, sizeof *m);
    if (m == NULL)
        return pt_error_set(err, -ENOMEM, "metrics", "out of memory");
    int rc = pthread_mutex_init(&m->lock, NULL);
    if (rc != 0) {
        free(m);
        return pt_error_set(err, -rc, "metrics", "mutex: %s", strerror(rc));
    }
    *out = m;
    return 0;
}

void
metrics_destroy(metrics_t **pm)
{
    metrics_t *m = pm ? *pm : NULL;
    if (m == NULL)
        return;
    if (m->httpd != NULL)
        MHD_stop_daemon(m->httpd); /* joins the HTTP thread: nothing reads `served` after */
    if (m->r404 != NULL)
        MHD_destroy_response(m->r404);
    if (m->r405 != NULL)
        MHD_destroy_response(m->r405);
    for (size_t i = 0; i < m->n_families; i++)
        family_free(m->families[i]);
    free(m->families);
    free(m->served);
    pthread_mutex_destroy(&m->lock);
    free(m);
    *pm = NULL;
}

/* ---- HTTP (libmicrohttpd thread) ----------------------------------------------- */

static enum MHD_Result
http_answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
            const char *version, const char *upload, size_t *upload_size, void **req_cls)
{
    metrics_t *m = cls;
    (void)version, (void)upload, (void)upload_size, (void)req_cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return MHD_queue_response(c, MHD_HTTP_METHOD_NOT_ALLOWED, m->r405);
    if (strcmp(url, "/metrics") != 0)
        return MHD_queue_response(c, MHD_HTTP_NOT_FOUND, m->r404);
    pthread_mutex_lock(&m->lock);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(m->served_len, m->served, MHD_RESPMEM_MUST_COPY);
    pthread_mutex_unlock(&m->lock);
    if (r == NULL)
        return MHD_NO;
    enum MHD_Result ret =
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, METRICS_CONTENT_TYPE);
    if (ret == MHD_YES)
        ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static void
http_log(void *cls, const char *fmt, va_list ap)
{
    char line[256];
    (void)cls;
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    pt_log_warn("metrics.http", "%s", line);
}

int
metrics_listen_parse(const char *listen, struct sockaddr_storage *ss, uint16_t *port,
                     pt_error_t *err)
{
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    char host[256];
    size_t hl = colon ? (size_t)(colon - listen) : 0;
    const char *h = listen;
    if (hl >= 2 && listen[0] == '[' && listen[hl - 1] == ']')
        h++, hl -= 2;
    else if (hl > 0 && memchr(listen, ':', hl) != NULL)
        hl = 0; /* an IPv6 address needs its brackets */
    char *end = NULL;
    long num = colon ? strtol(colon + 1, &end, 10) : 0;
    if (hl == 0 || hl >= sizeof host || colon[1] < '0' || colon[1] > '9' || *end != '\0' ||
        num < 1 || num > 65535)
        return pt_error_set(err, PT_ECONFIG, "metrics.listen",
                            "\"%.60s\" is not IPV4:PORT or [IPV6]:PORT", listen ? listen : "");
    memcpy(host, h, hl);
    host[hl] = '\0';
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV},
                    *res;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0)
        return pt_error_set(err, PT_ECONFIG, "metrics.listen", "%.60s: %s", listen,
                            gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    *port = (uint16_t)num;
    return 0;
}

static int
http_responses(metrics_t *m, pt_error_t *err)
{
    static const char nf[] = "not found: the metrics are at /metrics\n";
    static const char na[] = "method not allowed: use GET\n";
    m->r404 = MHD_create_response_from_buffer(sizeof nf - 1, (void *)nf, MHD_RESPMEM_PERSISTENT);
    m->r405 = MHD_create_response_from_buffer(sizeof na - 1, (void *)na, MHD_RESPMEM_PERSISTENT);
    if (m->r404 == NULL || m->r405 == NULL ||
        MHD_add_response_header(m->r405, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") != MHD_YES)
        return pt_error_set(err, -ENOMEM, "metrics.listen", "out of memory");
    return 0;
}

int
metrics_http_start(metrics_t *m, const char *listen, pt_error_t *err)
{
    struct sockaddr_storage ss = {0};
    uint16_t port = 0;
    if (m->httpd != NULL)
        return pt_error_set(err, -EALREADY, "metrics.listen", "already serving");
    int rc = metrics_listen_parse(listen, &ss, &port, err);
    if (rc == 0 && m->r404 == NULL)
        rc = http_responses(m, err);
    if (rc == 0 && (rc = metrics_publish(m)) != 0)
        pt_error_set(err, rc, "metrics.listen", "out of memory");
    if (rc != 0)
        return rc;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    errno = 0;
    /* The logger goes first so that MHD reports nothing through its default one. */
    m->httpd = MHD_start_daemon(flags, port, NULL, NULL, http_answer, m, MHD_OPTION_EXTERNAL_LOGGER,
                                http_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_HTTP_CONNECTIONS,
                                MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)METRICS_HTTP_PER_IP,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_HTTP_TIMEOUT_S,
                                MHD_OPTION_END);
    if (m->httpd == NULL) {
        rc = errno ? -errno : PT_EINTERNAL;
        return pt_error_set(err, rc, "metrics.listen", "cannot serve on %.60s: %s", listen,
                            pt_strerror(rc));
    }
    return 0;
}
