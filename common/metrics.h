/* metrics: a Prometheus registry (counters, gauges, fixed-bucket histograms, all with
 * optional labels) and the HTTP endpoint that serves it (libmicrohttpd, own thread), for
 * the broker and the adapters alike (each declares its own families: broker_metrics.h).
 * The registry owns its families and series; they live until metrics_destroy(). Series are
 * updated ONLY from the loop thread, without locks or allocation; metrics_publish() renders
 * them into a text the HTTP thread serves, so that thread never reads a live series. */
#ifndef PT_METRICS_H
#define PT_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "err.h"

/* A family refuses new series beyond this many (a guard against unbounded label values);
 * label values longer than PT_METRICS_LABEL_VALUE_MAX bytes are refused too. */
#define PT_METRICS_MAX_SERIES 10000
#define PT_METRICS_LABEL_VALUE_MAX 256

typedef struct metrics metrics_t;
typedef struct metrics_family metrics_family_t;
typedef struct metrics_series metrics_series_t;

typedef enum metrics_type {
    PT_METRICS_COUNTER = 1,
    PT_METRICS_GAUGE = 2,
    PT_METRICS_HISTOGRAM = 3,
} metrics_type_t;

/* What a family is. Strings and buckets are borrowed for the call (the registry copies). */
typedef struct metrics_desc {
    metrics_type_t type;
    const char *name;      /* [a-zA-Z_:][a-zA-Z0-9_:]* */
    const char *help;      /* any text; NULL = "" */
    const char *labels;    /* "partner,type": [a-zA-Z_][a-zA-Z0-9_]*, no "__" prefix; NULL = none */
    const double *buckets; /* histogram: finite, strictly increasing; +Inf is implicit */
    size_t n_buckets;      /* histogram: >= 1 (a trailing +Inf is dropped) */
} metrics_desc_t;

/* Creates an empty registry. Returns 0 or -ENOMEM (err filled). Caller owns *out; free with
 * metrics_destroy(). */
int metrics_new(metrics_t **out, pt_error_t *err);

/* Stops the HTTP server (waiting for its thread), frees everything, sets *m to NULL.
 * Accepts NULL. Every family and series handle of the registry becomes invalid. */
void metrics_destroy(metrics_t **m);

/* Declares a family, or finds it when one with this name exists and d matches it (type,
 * labels, buckets; the help text of the first declaration stays). Families render in
 * declaration order. A family without labels gets its one series at once, so it renders 0.
 * Returns 0; PT_EINVALID (bad name, labels or buckets, or a different definition under this
 * name) or -ENOMEM, err saying which. *out is borrowed from m (may be NULL if not wanted). */
int metrics_declare(metrics_t *m, const metrics_desc_t *d, metrics_family_t **out, pt_error_t *err);

/* The family with this name, or NULL. Borrowed from m. */
metrics_family_t *metrics_find(metrics_t *m, const char *name);

/* The series of f with these label values (one per label name, in declaration order; a NULL
 * value counts as ""; label_values may be NULL when f has no labels), created on first use.
 * Finding an existing series hashes the values and neither allocates nor locks. Returns NULL
 * when f is NULL, a value is too long, f already has PT_METRICS_MAX_SERIES series, or memory
 * runs out. Borrowed from the registry; stable until metrics_destroy(). */
metrics_series_t *metrics_series(metrics_family_t *f, const char *const *label_values);

/* Shorthands: metrics_declare() then metrics_series(); NULL on any error. */
metrics_series_t *metrics_counter(metrics_t *m, const char *name, const char *help,
                                  const char *label_names, const char *const *label_values);
metrics_series_t *metrics_gauge(metrics_t *m, const char *name, const char *help,
                                const char *label_names, const char *const *label_values);
metrics_series_t *metrics_histogram(metrics_t *m, const char *name, const char *help,
                                    const double *buckets, size_t n_buckets);

/* Updates, loop thread only. All accept s == NULL and do nothing then, and do nothing on a
 * series of the wrong type, so that a metrics failure never stops the broker.
 * metrics_add: counter += v (v negative or NaN is ignored: counters only go up), gauge += v.
 * metrics_set: gauge = v. metrics_observe: histogram (v NaN is ignored). */
void metrics_add(metrics_series_t *s, double v);
void metrics_set(metrics_series_t *s, double v);
void metrics_observe(metrics_series_t *s, double v);

/* Renders the text exposition format 0.0.4: per family "# HELP" and "# TYPE", then one line
 * per series (label values escaped, invalid UTF-8 replaced by U+FFFD); histograms give
 * cumulative NAME_bucket{le=...} lines ending with le="+Inf", then NAME_sum and NAME_count.
 * Loop thread only. Returns 0 or -ENOMEM. Caller owns *out (NUL-terminated, strlen = *len);
 * free with free(). */
int metrics_render(metrics_t *m, char **out, size_t *len);

/* Renders and swaps the text the HTTP server serves (under a mutex). Loop thread only; call
 * it from a timer (every second or so). Returns 0 or -ENOMEM (the old text stays served). */
int metrics_publish(metrics_t *m);

/* Parses "IPV4:PORT" or "[IPV6]:PORT" (port 1..65535) into ss and port. Numeric
 * addresses only: no DNS at start-up, and the operator sees exactly which interface is
 * exposed. PT_ECONFIG with err ("metrics.listen: ...") otherwise. The configuration
 * loader uses it too, so a listen address it accepts is one the server can bind. */
int metrics_listen_parse(const char *listen, struct sockaddr_storage *ss, uint16_t *port,
                         pt_error_t *err);

/* Publishes once, then serves on listen, "IPV4:PORT" or "[IPV6]:PORT" (numeric addresses,
 * no DNS), binding only that address, from a libmicrohttpd thread: GET/HEAD /metrics gives the
 * published text (text/plain; version=0.0.4), other paths 404, other methods 405. Returns 0;
 * PT_ECONFIG (bad listen), -EALREADY (already serving), -errno or PT_EINTERNAL when the server
 * cannot start; err says "metrics.listen: what is wrong". */
int metrics_http_start(metrics_t *m, const char *listen, pt_error_t *err);

#endif
