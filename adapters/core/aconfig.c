/* aconfig: an adapter's YAML configuration, section by section (see aconfig.h). */
#include "aconfig.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "validate.h"

#define KiB 1024ull
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)
#define DAY_MS (24ull * 3600 * 1000)

const char *const aconfig_codec_names[] = {
    "json",  "jsonl",   "lheo", "cnaf_rsa", "ft_csv", "ft_extract", "cd_orientation_csv",
    "imilo", "caf_csv", NULL};

typedef struct load {
    const config_t *doc;
    const config_node_t *root;
    aconfig_t *cfg;
    char dir[4096];
    pt_error_t *err;
} load_t;

static int
oom(load_t *ld)
{
    return pt_error_set(ld->err, -ENOMEM, config_name(ld->doc), "out of memory");
}

/* A string entry copied into *out (relative paths from the file's folder when path). */
static int
get_text(load_t *ld, const config_node_t *map, const char *key, bool required, bool path,
         char **out)
{
    const char *s = NULL;
    int rc = config_get_string(ld->doc, map, key, required, &s, ld->err);
    if (rc != 0 || s == NULL)
        return rc;
    size_t n = strlen(s) + (path && s[0] != '/' ? strlen(ld->dir) + 1 : 0) + 1;
    free(*out);
    if ((*out = malloc(n)) == NULL)
        return oom(ld);
    if (path && s[0] != '/')
        snprintf(*out, n, "%s/%s", ld->dir, s);
    else
        snprintf(*out, n, "%s", s);
    return 0;
}

static int
parse_id(load_t *ld)
{
    const char *id = NULL;
    int rc = config_get_string(ld->doc, ld->root, "id", true, &id, ld->err);
    if (rc == 0 && !validate_is_partner_id(id))
        rc = config_error(ld->doc, config_map_get(ld->root, "id"), PT_ECONFIG, ld->err,
                          "\"%.40s\" is not a partner id (1 to %d of a-z, 0-9 and _)", id,
                          PT_PARTNER_ID_MAX);
    if (rc == 0)
        snprintf(ld->cfg->id, sizeof ld->cfg->id, "%s", id);
    return rc;
}

static int
check_endpoint(load_t *ld, const config_node_t *at, const char *e)
{
    if (strncmp(e, "tcp://", 6) == 0 || strncmp(e, "ipc://", 6) == 0)
        return 0;
    return config_error(ld->doc, at, PT_ECONFIG, ld->err,
                        "\"%.60s\" is not a ZeroMQ endpoint (tcp://HOST:PORT, ipc://PATH)", e);
}

/* broker.endpoint: one endpoint, or broker.endpoints: a list tried in order. */
static int
parse_endpoints(load_t *ld, const config_node_t *m)
{
    aconfig_t *c = ld->cfg;
    const config_node_t *one = config_map_get(m, "endpoint"),
                        *list = config_map_get(m, "endpoints");
    if ((one == NULL) == (list == NULL))
        return config_error(ld->doc, one ? one : m, PT_ECONFIG, ld->err,
                            "give either endpoint (one broker) or endpoints (a list tried in "
                            "order)");
    if (one != NULL) {
        int rc = get_text(ld, m, "endpoint", true, false, &c->endpoints[0]);
        c->n_endpoints = rc == 0;
        return rc == 0 ? check_endpoint(ld, one, c->endpoints[0]) : rc;
    }
    const char **v = NULL;
    size_t n = 0;
    int rc = config_get_strings(ld->doc, m, "endpoints", true, &v, &n, ld->err);
    if (rc == 0 && (n == 0 || n > ACONFIG_MAX_ENDPOINTS))
        rc = config_error(ld->doc, list, PT_ECONFIG, ld->err, "1 to %d endpoints",
                          ACONFIG_MAX_ENDPOINTS);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = check_endpoint(ld, config_node_at(list, i), v[i]);
        if (rc == 0 && (c->endpoints[i] = strdup(v[i])) == NULL)
            rc = oom(ld);
        c->n_endpoints += rc == 0;
    }
    free(v);
    return rc;
}

static int
parse_broker(load_t *ld)
{
    static const char *const keys[] = {
        "endpoint",        "endpoints",       "failover_after", "server_public_key_file",
        "secret_key_file", "public_key_file", "credit",         NULL};
    aconfig_t *c = ld->cfg;
    const config_node_t *m = NULL;
    uint64_t credit = c->credit;
    int rc = config_get_map(ld->doc, ld->root, "broker", true, &m, ld->err);
    if (rc == 0)
        rc = config_check_keys(ld->doc, m, keys, ld->err);
    if (rc == 0)
        rc = parse_endpoints(ld, m);
    c->endpoint = c->endpoints[0];
    if (rc == 0)
        rc = config_get_duration(ld->doc, m, "failover_after", false, 100, 3600 * 1000,
                                 &c->failover_after_ms, ld->err);
    if (rc == 0)
        rc = get_text(ld, m, "server_public_key_file", true, true, &c->server_public_key_file);
    if (rc == 0)
        rc = get_text(ld, m, "secret_key_file", true, true, &c->secret_key_file);
    if (rc == 0)
        rc = get_text(ld, m, "public_key_file", true, true, &c->public_key_file);
    if (rc == 0)
        rc = config_get_uint(ld->doc, m, "credit", false, 1, 65536, &credit, ld->err);
    c->credit = (uint32_t)credit;
    return rc;
}

static int
parse_spool(load_t *ld)
{
    static const char *const keys[] = {"dir", "max_size", "retention", NULL};
    aconfig_t *c = ld->cfg;
    const config_node_t *m = NULL;
    int rc = config_get_map(ld->doc, ld->root, "spool", true, &m, ld->err);
    if (rc == 0)
        rc = config_check_keys(ld->doc, m, keys, ld->err);
    if (rc == 0)
        rc = get_text(ld, m, "dir", true, true, &c->spool_dir);
    if (rc == 0)
        rc = config_get_size(ld->doc, m, "max_size", false, MiB, 1024 * GiB, &c->spool_max_size,
                             ld->err);
    if (rc == 0)
        rc = config_get_duration(ld->doc, m, "retention", false, 3600 * 1000, 3650 * DAY_MS,
                                 &c->retention_ms, ld->err);
    return rc;
}

static int
parse_http(load_t *ld)
{
    static const char *const keys[] = {"listen", "tokens_file", "max_body", NULL};
    aconfig_t *c = ld->cfg;
    const config_node_t *m = NULL;
    int rc = config_get_map(ld->doc, ld->root, "http", false, &m, ld->err);
    if (rc != 0 || m == NULL)
        return rc;
    rc = config_check_keys(ld->doc, m, keys, ld->err);
    if (rc == 0)
        rc = get_text(ld, m, "listen", true, false, &c->http_listen);
    if (rc == 0)
        rc = get_text(ld, m, "tokens_file", true, true, &c->tokens_file);
    if (rc == 0)
        rc = config_get_size(ld->doc, m, "max_body", false, KiB, 64 * MiB, &c->max_body, ld->err);
    return rc;
}

/* inbox.complete: rename | marker | stable. */
static int
parse_complete(load_t *ld, const config_node_t *m)
{
    static const char *const names[] = {"rename", "marker", "stable"};
    const char *s = NULL;
    int rc = config_get_string(ld->doc, m, "complete", false, &s, ld->err);
    if (rc != 0 || s == NULL)
        return rc;
    for (int i = 0; i < 3; i++)
        if (strcmp(s, names[i]) == 0) {
            ld->cfg->complete = (aconfig_complete_t)i;
            return 0;
        }
    return config_error(ld->doc, config_map_get(m, "complete"), PT_ECONFIG, ld->err,
                        "\"%.40s\" is not one of rename, marker, stable", s);
}

static bool
codec_known(const char *name)
{
    for (size_t i = 0; aconfig_codec_names[i]; i++)
        if (strcmp(aconfig_codec_names[i], name) == 0)
            return true;
    return false;
}

/* inbox.codecs: names of the decoders the file drop tries, in order. */
static int
parse_codecs(load_t *ld, const config_node_t *m)
{
    const char **v = NULL;
    size_t n = 0;
    int rc = config_get_strings(ld->doc, m, "codecs", false, &v, &n, ld->err);
    const config_node_t *node = config_map_get(m, "codecs");
    if (rc == 0 && n > ACONFIG_MAX_CODECS)
        rc = config_error(ld->doc, node, PT_ECONFIG, ld->err, "at most %d codecs",
                          ACONFIG_MAX_CODECS);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!codec_known(v[i]))
            rc = config_error(ld->doc, config_node_at(node, i), PT_ECONFIG, ld->err,
                              "\"%.40s\" is not a codec (json, jsonl, lheo, cnaf_rsa, ft_csv, "
                              "ft_extract, cd_orientation_csv, imilo, caf_csv)",
                              v[i]);
        for (size_t k = 0; rc == 0 && aconfig_codec_names[k]; k++)
            if (strcmp(aconfig_codec_names[k], v[i]) == 0)
                ld->cfg->codecs[ld->cfg->n_codecs++] = aconfig_codec_names[k];
    }
    free(v);
    return rc;
}

static int
parse_inbox(load_t *ld)
{
    static const char *const keys[] = {"dir",    "complete",       "stable_for", "scan_interval",
                                       "codecs", "all_or_nothing", NULL};
    aconfig_t *c = ld->cfg;
    const config_node_t *m = NULL;
    int rc = config_get_map(ld->doc, ld->root, "inbox", false, &m, ld->err);
    if (rc != 0 || m == NULL)
        return rc;
    rc = config_check_keys(ld->doc, m, keys, ld->err);
    if (rc == 0)
        rc = get_text(ld, m, "dir", true, true, &c->inbox_dir);
    if (rc == 0)
        rc = parse_complete(ld, m);
    if (rc == 0)
        rc = config_get_duration(ld->doc, m, "stable_for", false, 100, 3600 * 1000,
                                 &c->stable_for_ms, ld->err);
    if (rc == 0)
        rc = config_get_duration(ld->doc, m, "scan_interval", false, 100, 3600 * 1000,
                                 &c->scan_interval_ms, ld->err);
    if (rc == 0)
        rc = parse_codecs(ld, m);
    if (rc == 0)
        rc = config_get_bool(ld->doc, m, "all_or_nothing", false, &c->all_or_nothing, ld->err);
    return rc;
}

/* egress.webhook.final_statuses: 4xx answers that are final (dead letter). */
static int
parse_final_statuses(load_t *ld, const config_node_t *w)
{
    const config_node_t *seq = NULL;
    int rc = config_get_seq(ld->doc, w, "final_statuses", false, &seq, ld->err);
    if (rc != 0 || seq == NULL)
        return rc;
    size_t n = config_node_len(seq);
    if (n > ACONFIG_MAX_FINAL_STATUSES)
        return config_error(ld->doc, seq, PT_ECONFIG, ld->err, "at most %d statuses",
                            ACONFIG_MAX_FINAL_STATUSES);
    for (size_t i = 0; i < n; i++) {
        const config_node_t *it = config_node_at(seq, i);
        const char *t = config_node_text(it);
        char *end = NULL;
        long v = t ? strtol(t, &end, 10) : 0;
        if (t == NULL || *end != '\0' || v < 400 || v > 499)
            return config_error(ld->doc, it, PT_ECONFIG, ld->err,
                                "is not an HTTP status from 400 to 499");
        ld->cfg->final_statuses[ld->cfg->n_final_statuses++] = (uint32_t)v;
    }
    return 0;
}

/* Plain http is only for a receiver on this machine: the host must be exactly
 * 127.0.0.1, [::1] or localhost (not a name that merely starts like one). */
static bool
http_to_loopback(const char *url)
{
    static const char *const hosts[] = {"127.0.0.1", "[::1]", "localhost"};
    if (strncmp(url, "http://", 7) != 0)
        return false;
    for (size_t i = 0; i < sizeof hosts / sizeof *hosts; i++) {
        size_t n = strlen(hosts[i]);
        char next = url[7 + n];
        if (strncmp(url + 7, hosts[i], n) == 0 && (next == '\0' || next == ':' || next == '/'))
            return true;
    }
    return false;
}

static int
parse_webhook(load_t *ld, const config_node_t *e)
{
    static const char *const keys[] = {"url", "secret_file", "timeout", "final_statuses", NULL};
    aconfig_t *c = ld->cfg;
    const config_node_t *w = NULL;
    int rc = config_get_map(ld->doc, e, "webhook", true, &w, ld->err);
    if (rc == 0)
        rc = config_check_keys(ld->doc, w, keys, ld->err);
    if (rc == 0)
        rc = get_text(ld, w, "url", true, false, &c->webhook_url);
    if (rc == 0 && strncmp(c->webhook_url, "https://", 8) != 0 && !http_to_loopback(c->webhook_url))
        rc = config_error(ld->doc, config_map_get(w, "url"), PT_ECONFIG, ld->err,
                          "must be https:// (plain http only to 127.0.0.1 or localhost)");
    if (rc == 0)
        rc = get_text(ld, w, "secret_file", true, true, &c->webhook_secret_file);
    if (rc == 0)
        rc = config_get_duration(ld->doc, w, "timeout", false, 100, 600 * 1000,
                                 &c->webhook_timeout_ms, ld->err);
    if (rc == 0)
        rc = parse_final_statuses(ld, w);
    return rc;
}

/* egress.formats (outbox only) and egress.encoding. */
static int
parse_formats(load_t *ld, const config_node_t *e)
{
    aconfig_t *c = ld->cfg;
    const char **v = NULL, *enc = NULL;
    size_t n = 0;
    int rc = config_get_strings(ld->doc, e, "formats", false, &v, &n, ld->err);
    const config_node_t *node = config_map_get(e, "formats");
    if (rc == 0 && n > 0 && c->egress != ACONFIG_EGRESS_OUTBOX)
        rc = config_error(ld->doc, node, PT_ECONFIG, ld->err,
                          "the partner's own formats are written into the outbox: kind outbox");
    if (rc == 0 && n > ACONFIG_MAX_FORMATS)
        rc = config_error(ld->doc, node, PT_ECONFIG, ld->err, "at most %d formats",
                          ACONFIG_MAX_FORMATS);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!codec_known(v[i]) || strcmp(v[i], "json") == 0 || strcmp(v[i], "jsonl") == 0)
            rc = config_error(ld->doc, config_node_at(node, i), PT_ECONFIG, ld->err,
                              "\"%.40s\" is not a partner format (caf_csv, imilo...); the JSON "
                              "file is always written",
                              v[i]);
        for (size_t k = 0; rc == 0 && aconfig_codec_names[k]; k++)
            if (strcmp(aconfig_codec_names[k], v[i]) == 0)
                c->outbox_formats[c->n_outbox_formats++] = aconfig_codec_names[k];
    }
    free(v);
    if (rc == 0)
        rc = config_get_string(ld->doc, e, "encoding", false, &enc, ld->err);
    if (rc == 0 && enc != NULL && strcmp(enc, "UTF-8") != 0 && strcmp(enc, "windows-1252") != 0)
        rc = config_error(ld->doc, config_map_get(e, "encoding"), PT_ECONFIG, ld->err,
                          "\"%.40s\" is not UTF-8 or windows-1252", enc);
    if (rc == 0 && enc != NULL && (c->outbox_encoding = strdup(enc)) == NULL)
        rc = oom(ld);
    return rc;
}

static int
parse_egress(load_t *ld)
{
    static const char *const keys[] = {"kind",     "outbox",  "receipts", "formats",
                                       "encoding", "webhook", NULL};
    static const char *const kinds[] = {"outbox", "webhook", "pull"};
    aconfig_t *c = ld->cfg;
    const config_node_t *e = NULL;
    const char *kind = "outbox";
    int rc = config_get_map(ld->doc, ld->root, "egress", true, &e, ld->err);
    if (rc == 0)
        rc = config_check_keys(ld->doc, e, keys, ld->err);
    if (rc == 0)
        rc = config_get_string(ld->doc, e, "kind", false, &kind, ld->err);
    int k = -1;
    for (int i = 0; rc == 0 && i < 3; i++)
        k = strcmp(kind, kinds[i]) == 0 ? i : k;
    if (rc == 0 && k < 0)
        return config_error(ld->doc, config_map_get(e, "kind"), PT_ECONFIG, ld->err,
                            "\"%.40s\" is not one of outbox, webhook, pull", kind);
    if (rc != 0)
        return rc;
    c->egress = (aconfig_egress_t)k;
    rc = get_text(ld, e, "outbox", c->egress == ACONFIG_EGRESS_OUTBOX, true, &c->outbox_dir);
    if (rc == 0)
        rc = config_get_bool(ld->doc, e, "receipts", false, &c->receipts, ld->err);
    if (rc == 0)
        rc = parse_formats(ld, e);
    if (rc == 0 && c->egress == ACONFIG_EGRESS_WEBHOOK)
        rc = parse_webhook(ld, e);
    if (rc == 0 && c->egress == ACONFIG_EGRESS_PULL && c->http_listen == NULL)
        rc = config_error(ld->doc, config_map_get(e, "kind"), PT_ECONFIG, ld->err,
                          "pull needs the http section (GET /v1/inbox is on the HTTP API)");
    return rc;
}

static int
parse_metrics(load_t *ld)
{
    static const char *const keys[] = {"listen", NULL};
    const config_node_t *m = NULL;
    int rc = config_get_map(ld->doc, ld->root, "metrics", false, &m, ld->err);
    if (rc != 0 || m == NULL)
        return rc;
    rc = config_check_keys(ld->doc, m, keys, ld->err);
    return rc == 0 ? get_text(ld, m, "listen", true, false, &ld->cfg->metrics_listen) : rc;
}

/* Top-level sections, in this order (egress after http: pull needs it). */
static int (*const sections[])(load_t *) = {parse_id,    parse_broker, parse_spool,  parse_http,
                                            parse_inbox, parse_egress, parse_metrics};

static void
set_defaults(aconfig_t *c)
{
    c->credit = 64;
    c->failover_after_ms = 10000;
    c->spool_max_size = GiB;
    c->retention_ms = 30 * DAY_MS;
    c->max_body = MiB;
    c->stable_for_ms = 5000;
    c->scan_interval_ms = 10000;
    c->webhook_timeout_ms = 10000;
}

static int
load_doc(load_t *ld)
{
    static const char *const top[] = {"id",    "broker", "spool",   "http",
                                      "inbox", "egress", "metrics", NULL};
    int rc = config_expect_map(ld->doc, ld->root, ld->err);
    if (rc == 0)
        rc = config_check_keys(ld->doc, ld->root, top, ld->err);
    for (size_t i = 0; rc == 0 && i < sizeof sections / sizeof *sections; i++)
        rc = sections[i](ld);
    return rc;
}

int
aconfig_load(const char *path, aconfig_t **out, pt_error_t *err)
{
    *out = NULL;
    config_t *doc = NULL;
    int rc = config_load_file(path, &doc, err);
    if (rc != 0)
        return rc;
    aconfig_t *c = calloc(1, sizeof *c);
    load_t ld = {.doc = doc, .root = config_root(doc), .cfg = c, .err = err};
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", path);
    snprintf(ld.dir, sizeof ld.dir, "%s", dirname(copy));
    if (c == NULL || (c->path = strdup(path)) == NULL)
        rc = pt_error_set(err, -ENOMEM, path, "out of memory");
    if (rc == 0) {
        set_defaults(c);
        rc = ld.root ? load_doc(&ld) : pt_error_set(err, PT_ECONFIG, path, "the file is empty");
    }
    config_destroy(&doc);
    if (rc != 0) {
        aconfig_destroy(&c);
        return rc;
    }
    *out = c;
    return 0;
}

void
aconfig_destroy(aconfig_t **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    aconfig_t *c = *cp;
    for (size_t i = 0; i < c->n_endpoints; i++)
        free(c->endpoints[i]);
    char *strings[] = {c->path,
                       c->server_public_key_file,
                       c->secret_key_file,
                       c->public_key_file,
                       c->spool_dir,
                       c->http_listen,
                       c->tokens_file,
                       c->inbox_dir,
                       c->outbox_dir,
                       c->webhook_url,
                       c->webhook_secret_file,
                       c->metrics_listen,
                       c->outbox_encoding};
    for (size_t i = 0; i < sizeof strings / sizeof *strings; i++)
        free(strings[i]);
    free(c);
    *cp = NULL;
}
