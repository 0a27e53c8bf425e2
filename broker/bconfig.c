/* bconfig: the broker's YAML configuration, validated into a bconfig_t. Each top-level
 * section has one parser in the `sections` table; adding one is a new table entry and
 * its function. */
#include "bconfig.h"
#include "metrics.h"

#include <errno.h>
#include <libgen.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "codec.h"
#include "config.h"
#include "keys.h"
#include "routecfg.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define TiB (UINT64_C(1) << 40)

typedef struct bload {
    const config_t *doc;
    const config_node_t *root;
    bconfig_t *cfg;
    char *dir; /* directory of the config file, for relative paths */
    pt_error_t *err;
} bload_t;

typedef int (*section_fn)(bload_t *ld);

static int parse_listen(bload_t *ld);
static int parse_journal(bload_t *ld);
static int parse_keys(bload_t *ld);
static int parse_limits(bload_t *ld);
static int parse_metrics(bload_t *ld);
static int parse_partners(bload_t *ld);
static int parse_admin(bload_t *ld);
static int parse_routes(bload_t *ld);
static int parse_delivery(bload_t *ld);
static int parse_retention(bload_t *ld);

/* Top-level sections, parsed in this order (admin and routes after partners: admin
 * keys are checked against the partner keys, routes name partners). */
static const struct {
    const char *key;
    section_fn parse;
} sections[] = {
    {"listen", parse_listen},       {"journal", parse_journal},   {"keys", parse_keys},
    {"limits", parse_limits},       {"delivery", parse_delivery}, {"metrics", parse_metrics},
    {"partners", parse_partners},   {"admin", parse_admin},       {"routes", parse_routes},
    {"retention", parse_retention},
};

#define N_SECTIONS (sizeof sections / sizeof sections[0])

static int
oom(bload_t *ld)
{
    return pt_error_set(ld->err, -ENOMEM, config_name(ld->doc), "out of memory");
}

static int
dup_string(bload_t *ld, const char *s, char **out)
{
    if ((*out = strdup(s)) == NULL)
        return oom(ld);
    return 0;
}

/* A relative path is taken from the config file's directory. */
static int
resolve_path(bload_t *ld, const char *p, char **out)
{
    if (p[0] == '/')
        return dup_string(ld, p, out);
    size_t n = strlen(ld->dir) + strlen(p) + 2;
    if ((*out = malloc(n)) == NULL)
        return oom(ld);
    snprintf(*out, n, "%s/%s", ld->dir, p);
    return 0;
}

/* ---- endpoints ------------------------------------------------------------- */

static bool
zmq_endpoint_ok(const char *s)
{
    static const char *const schemes[] = {"tcp://", "ipc://", "inproc://"};
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        size_t n = strlen(schemes[i]);
        if (strncmp(s, schemes[i], n) == 0 && s[n] != '\0')
            return true;
    }
    return false;
}

static int
get_endpoint(bload_t *ld, const config_node_t *map, const char *key, char **out)
{
    const config_node_t *n = config_map_get(map, key);
    const char *s;
    if (n == NULL)
        return 0;
    int rc = config_node_string(ld->doc, n, &s, ld->err);
    if (rc == 0 && !zmq_endpoint_ok(s))
        rc = config_error(ld->doc, n, PT_ECONFIG, ld->err,
                          "\"%.60s\" is not a ZeroMQ endpoint (tcp://HOST:PORT, ipc://PATH)", s);
    if (rc == 0) {
        free(*out);
        rc = dup_string(ld, s, out);
    }
    return rc;
}

static int
parse_listen(bload_t *ld)
{
    return get_endpoint(ld, ld->root, "listen", &ld->cfg->listen);
}

static int
parse_metrics(bload_t *ld)
{
    static const char *const allowed[] = {"listen", NULL};
    const config_node_t *m = NULL, *n;
    const char *s;
    int rc = config_get_map(ld->doc, ld->root, "metrics", false, &m, ld->err);
    if (rc != 0 || m == NULL)
        return rc;
    if ((rc = config_check_keys(ld->doc, m, allowed, ld->err)) != 0)
        return rc;
    if ((n = config_map_get(m, "listen")) == NULL)
        return 0;
    if ((rc = config_node_string(ld->doc, n, &s, ld->err)) != 0)
        return rc;
    struct sockaddr_storage ss;
    uint16_t port;
    pt_error_t why;
    if (metrics_listen_parse(s, &ss, &port, &why) != 0)
        return config_error(ld->doc, n, PT_ECONFIG, ld->err,
                            "\"%.60s\" is not IPV4:PORT or [IPV6]:PORT (e.g. 127.0.0.1:9400)", s);
    return dup_string(ld, s, &ld->cfg->metrics_listen);
}

/* ---- journal, keys, limits ------------------------------------------------- */

static int
parse_journal(bload_t *ld)
{
    static const char *const allowed[] = {"dir",
                                          "initial_size",
                                          "max_size",
                                          "checkpoint_interval",
                                          "unsafe_ack_before_fsync",
                                          "wait_for_lock",
                                          NULL};
    const config_node_t *j = NULL;
    const char *dir = NULL;
    bconfig_t *c = ld->cfg;
    uint64_t init = c->journal_map_initial, max = c->journal_map_max;
    uint64_t ckpt = c->checkpoint_interval_ms;
    int rc = config_get_map(ld->doc, ld->root, "journal", true, &j, ld->err);
    if (rc == 0)
        rc = config_check_keys(ld->doc, j, allowed, ld->err);
    if (rc == 0)
        rc = config_get_string(ld->doc, j, "dir", true, &dir, ld->err);
    if (rc == 0)
        rc = config_get_size(ld->doc, j, "initial_size", false, MiB, TiB, &init, ld->err);
    if (rc == 0)
        rc = config_get_size(ld->doc, j, "max_size", false, MiB, SIZE_MAX, &max, ld->err);
    if (rc == 0)
        rc = config_get_duration(ld->doc, j, "checkpoint_interval", false, 1000, 24 * 3600 * 1000,
                                 &ckpt, ld->err);
    if (rc == 0)
        rc = config_get_bool(ld->doc, j, "unsafe_ack_before_fsync", false,
                             &c->unsafe_ack_before_fsync, ld->err);
    if (rc == 0)
        rc =
            config_get_bool(ld->doc, j, "wait_for_lock", false, &c->journal_wait_for_lock, ld->err);
    const config_node_t *at = config_map_get(j, "initial_size");
    if (rc == 0 && init > max)
        rc = config_error(ld->doc, at ? at : j, PT_ECONFIG, ld->err,
                          "the initial size is larger than max_size");
    if (rc != 0)
        return rc;
    c->journal_map_initial = (size_t)init;
    c->journal_map_max = (size_t)max;
    c->checkpoint_interval_ms = (uint32_t)ckpt;
    return resolve_path(ld, dir, &c->journal_dir);
}

/* keys.previous_signing_public: a list of public key files (optional). */
static int
parse_prev_sign_keys(bload_t *ld, const config_node_t *k)
{
    const config_node_t *seq = NULL;
    int rc = config_get_seq(ld->doc, k, "previous_signing_public", false, &seq, ld->err);
    size_t n = seq ? config_node_len(seq) : 0;
    if (rc != 0 || n == 0)
        return rc;
    if (n > PT_PREV_SIGN_KEYS_MAX)
        return config_error(ld->doc, seq, PT_ECONFIG, ld->err, "more than %d keys",
                            PT_PREV_SIGN_KEYS_MAX);
    if ((ld->cfg->prev_sign_pub_files = calloc(n, sizeof(char *))) == NULL)
        return oom(ld);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *p;
        rc = config_node_string(ld->doc, config_node_at(seq, i), &p, ld->err);
        if (rc == 0)
            rc = resolve_path(ld, p, &ld->cfg->prev_sign_pub_files[i]);
        if (rc == 0)
            ld->cfg->n_prev_sign_pub++;
    }
    return rc;
}

static int
parse_keys(bload_t *ld)
{
    static const char *const allowed[] = {"server_secret", "signing_secret", "person_index_hmac",
                                          "previous_signing_public", NULL};
    bconfig_t *c = ld->cfg;
    char **const dest[] = {&c->server_secret_key_file, &c->signing_key_file, &c->hmac_key_file};
    const config_node_t *k = NULL;
    int rc = config_get_map(ld->doc, ld->root, "keys", true, &k, ld->err);
    if (rc == 0)
        rc = config_check_keys(ld->doc, k, allowed, ld->err);
    for (size_t i = 0; rc == 0 && i < 3; i++) {
        const char *p = NULL;
        rc = config_get_string(ld->doc, k, allowed[i], true, &p, ld->err);
        if (rc == 0)
            rc = resolve_path(ld, p, dest[i]);
    }
    return rc == 0 ? parse_prev_sign_keys(ld, k) : rc;
}

/* The input quotas of limits: (0 turns the rate and bytes quotas off). */
static int
parse_quotas(bload_t *ld, const config_node_t *l)
{
    bconfig_t *c = ld->cfg;
    uint64_t rate = c->partner_rate, bytes = c->partner_bytes_per_hour, conns = c->max_connections,
             hs = c->partner_handshakes_per_minute;
    int rc = config_get_uint(ld->doc, l, "partner_rate", false, 0, 1000000, &rate, ld->err);
    if (rc == 0)
        rc = config_get_size(ld->doc, l, "partner_bytes_per_hour", false, 0, (uint64_t)1 << 40,
                             &bytes, ld->err);
    if (rc == 0)
        rc = config_get_uint(ld->doc, l, "max_connections", false, 1, 65536, &conns, ld->err);
    if (rc == 0)
        rc = config_get_uint(ld->doc, l, "partner_handshakes_per_minute", false, 1, 100000, &hs,
                             ld->err);
    if (rc != 0)
        return rc;
    c->partner_rate = (uint32_t)rate;
    c->partner_bytes_per_hour = bytes;
    c->max_connections = (uint32_t)conns;
    c->partner_handshakes_per_minute = (uint32_t)hs;
    return 0;
}

static int
parse_limits(bload_t *ld)
{
    static const char *const allowed[] = {"max_message_size",
                                          "max_batch",
                                          "heartbeat_interval",
                                          "partner_rate",
                                          "partner_bytes_per_hour",
                                          "max_connections",
                                          "partner_handshakes_per_minute",
                                          NULL};
    bconfig_t *c = ld->cfg;
    const config_node_t *l = NULL;
    uint64_t size = c->max_message_size, batch = c->max_batch, hb = c->heartbeat_interval_ms;
    int rc = config_get_map(ld->doc, ld->root, "limits", false, &l, ld->err);
    if (rc != 0 || l == NULL)
        return rc;
    rc = config_check_keys(ld->doc, l, allowed, ld->err);
    if (rc == 0)
        rc = config_get_size(ld->doc, l, "max_message_size", false, KiB, 16 * MiB, &size, ld->err);
    if (rc == 0)
        rc = config_get_uint(ld->doc, l, "max_batch", false, 1, 65536, &batch, ld->err);
    if (rc == 0)
        rc = config_get_duration(ld->doc, l, "heartbeat_interval", false, 100, 600 * 1000, &hb,
                                 ld->err);
    if (rc == 0)
        rc = parse_quotas(ld, l);
    if (rc != 0)
        return rc;
    c->max_message_size = (uint32_t)size;
    c->max_batch = (uint32_t)batch;
    c->heartbeat_interval_ms = (uint32_t)hb;
    return 0;
}

static int
parse_delivery(bload_t *ld)
{
    static const char *const allowed[] = {"ack_timeout", "max_attempts",  "backoff_initial",
                                          "backoff_max", "max_in_flight", "max_in_flight_bytes",
                                          NULL};
    bconfig_t *c = ld->cfg;
    const config_node_t *d = NULL;
    uint64_t ack = c->ack_timeout_ms, att = c->max_attempts, b0 = c->backoff_initial_ms,
             bmax = c->backoff_max_ms, win = c->max_in_flight, wbytes = c->max_in_flight_bytes;
    int rc = config_get_map(ld->doc, ld->root, "delivery", false, &d, ld->err);
    if (rc != 0 || d == NULL)
        return rc;
    rc = config_check_keys(ld->doc, d, allowed, ld->err);
    if (rc == 0)
        rc = config_get_duration(ld->doc, d, "ack_timeout", false, 100, 3600 * 1000, &ack, ld->err);
    if (rc == 0)
        rc = config_get_uint(ld->doc, d, "max_attempts", false, 1, 1000, &att, ld->err);
    if (rc == 0)
        rc = config_get_duration(ld->doc, d, "backoff_initial", false, 10, 3600 * 1000, &b0,
                                 ld->err);
    if (rc == 0)
        rc = config_get_duration(ld->doc, d, "backoff_max", false, 10, 24 * 3600 * 1000, &bmax,
                                 ld->err);
    if (rc == 0)
        rc = config_get_uint(ld->doc, d, "max_in_flight", false, 1, 65536, &win, ld->err);
    if (rc == 0)
        rc = config_get_size(ld->doc, d, "max_in_flight_bytes", false, 64 * 1024, (uint64_t)1 << 30,
                             &wbytes, ld->err);
    if (rc == 0 && bmax < b0)
        rc = config_error(ld->doc, config_map_get(d, "backoff_max"), PT_ECONFIG, ld->err,
                          "is shorter than backoff_initial");
    if (rc != 0)
        return rc;
    c->ack_timeout_ms = (uint32_t)ack;
    c->max_attempts = (uint32_t)att;
    c->backoff_initial_ms = (uint32_t)b0;
    c->backoff_max_ms = (uint32_t)bmax;
    c->max_in_flight = (uint32_t)win;
    c->max_in_flight_bytes = wbytes;
    return 0;
}

/* ---- partners -------------------------------------------------------------- */

static bool
partner_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > PT_PARTNER_ID_MAX)
        return false;
    return strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

/* The node that gave a partner its key (for "first given on line N"). */
static const config_node_t *
key_node(const config_node_t *pmap)
{
    const config_node_t *n = config_map_get(pmap, "public_key");
    return n ? n : config_map_get(pmap, "public_key_file");
}

static int
parse_partner_id(bload_t *ld, const config_node_t *pmap, bconfig_partner_t *p)
{
    const char *id = NULL, *name = NULL;
    int rc = config_get_string(ld->doc, pmap, "id", true, &id, ld->err);
    const config_node_t *n = config_map_get(pmap, "id");
    if (rc == 0 && !partner_id_ok(id))
        rc = config_error(ld->doc, n, PT_ECONFIG, ld->err,
                          "\"%.40s\" is not a valid partner id (1 to %d of a-z, 0-9 and _)", id,
                          PT_PARTNER_ID_MAX);
    for (size_t i = 0; rc == 0 && i < ld->cfg->n_partners; i++)
        if (strcmp(ld->cfg->partners[i].id, id) == 0)
            rc = config_error(ld->doc, n, PT_ECONFIG, ld->err,
                              "duplicate partner id \"%s\" (partners[%zu] has it already)", id, i);
    name = id;
    if (rc == 0)
        rc = config_get_string(ld->doc, pmap, "name", false, &name, ld->err);
    if (rc == 0)
        rc = dup_string(ld, id, &p->id);
    if (rc == 0)
        rc = dup_string(ld, name, &p->name);
    return rc;
}

/* Exactly one of public_key (Z85) and public_key_file in map, into key. */
static int
parse_public_key(bload_t *ld, const config_node_t *map, uint8_t key[PT_KEY_LEN])
{
    const config_node_t *z = config_map_get(map, "public_key");
    const config_node_t *f = config_map_get(map, "public_key_file");
    const char *s;
    char *path = NULL;
    pt_error_t kerr;
    if (z != NULL && f != NULL)
        return config_error(ld->doc, f, PT_ECONFIG, ld->err,
                            "give either public_key or public_key_file, not both");
    if (z == NULL && f == NULL)
        return config_error(ld->doc, map, PT_ECONFIG, ld->err,
                            "missing public_key or public_key_file");
    const config_node_t *n = z ? z : f;
    int rc = config_node_string(ld->doc, n, &s, ld->err);
    if (rc != 0)
        return rc;
    if (z != NULL)
        rc = keys_curve_public_from_z85(s, key, &kerr);
    else if ((rc = resolve_path(ld, s, &path)) == 0)
        rc = keys_read(path, key, PT_KEY_LEN, false, &kerr);
    else
        return rc;
    free(path);
    if (rc != 0)
        rc = config_error(ld->doc, n, rc, ld->err, "%s", kerr.msg);
    return rc;
}

static int
parse_partner_key(bload_t *ld, const config_node_t *pmap, bconfig_partner_t *p)
{
    return parse_public_key(ld, pmap, p->public_key);
}

static int
check_partner_key_unique(bload_t *ld, const config_node_t *partners, size_t idx)
{
    const bconfig_partner_t *p = &ld->cfg->partners[idx];
    for (size_t i = 0; i < idx; i++) {
        if (memcmp(ld->cfg->partners[i].public_key, p->public_key, sizeof p->public_key) != 0)
            continue;
        const config_node_t *first = key_node(config_node_at(partners, i));
        return config_error(ld->doc, key_node(config_node_at(partners, idx)), PT_ECONFIG, ld->err,
                            "same public key as partner \"%s\" (line %u)", ld->cfg->partners[i].id,
                            config_node_line(first));
    }
    return 0;
}

static int
unknown_type_error(bload_t *ld, const config_node_t *n, const char *type)
{
    char list[512];
    codec_envelope_type_list(list, sizeof list);
    return config_error(ld->doc, n, PT_ECONFIG, ld->err,
                        "\"%.40s\" is not a message type (valid: %s)", type, list);
}

static bool
list_has(char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

/* A partner's list of message types under key (may_send, subscribe). */
static int
parse_type_list(bload_t *ld, const config_node_t *pmap, const char *key, char ***list, size_t *len)
{
    const config_node_t *seq = NULL;
    int rc = config_get_seq(ld->doc, pmap, key, false, &seq, ld->err);
    size_t n = seq ? config_node_len(seq) : 0;
    if (rc != 0 || n == 0)
        return rc;
    if ((*list = calloc(n, sizeof **list)) == NULL)
        return oom(ld);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const config_node_t *item = config_node_at(seq, i);
        const char *type;
        if ((rc = config_node_string(ld->doc, item, &type, ld->err)) != 0)
            break;
        if (codec_envelope_case(type) == PTIBUS__V1__ENVELOPE__BODY__NOT_SET)
            return unknown_type_error(ld, item, type);
        if (list_has(*list, *len, type))
            return config_error(ld->doc, item, PT_ECONFIG, ld->err, "\"%s\" is listed twice", type);
        if ((rc = dup_string(ld, type, &(*list)[i])) == 0)
            (*len)++;
    }
    return rc;
}

static int
parse_partner(bload_t *ld, const config_node_t *partners, size_t idx)
{
    static const char *const allowed[] = {"id",       "name",      "public_key", "public_key_file",
                                          "may_send", "subscribe", NULL};
    const config_node_t *pmap = config_node_at(partners, idx);
    bconfig_partner_t *p = &ld->cfg->partners[idx];
    int rc = config_check_keys(ld->doc, pmap, allowed, ld->err);
    if (rc == 0)
        rc = parse_partner_id(ld, pmap, p);
    /* Counted as soon as it owns memory, so bconfig_destroy frees it on error. */
    ld->cfg->n_partners = idx + 1;
    if (rc == 0)
        rc = parse_partner_key(ld, pmap, p);
    if (rc == 0)
        rc = check_partner_key_unique(ld, partners, idx);
    if (rc == 0)
        rc = parse_type_list(ld, pmap, "may_send", &p->may_send, &p->n_may_send);
    if (rc == 0)
        rc = parse_type_list(ld, pmap, "subscribe", &p->subscribe, &p->n_subscribe);
    return rc;
}

static int
parse_partners(bload_t *ld)
{
    const config_node_t *seq = NULL;
    int rc = config_get_seq(ld->doc, ld->root, "partners", true, &seq, ld->err);
    if (rc != 0)
        return rc;
    size_t n = config_node_len(seq);
    if (n == 0)
        return config_error(ld->doc, seq, PT_ECONFIG, ld->err, "no partner is configured");
    if ((ld->cfg->partners = calloc(n, sizeof *ld->cfg->partners)) == NULL)
        return oom(ld);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = parse_partner(ld, seq, i);
    return rc;
}

/* ---- retention ------------------------------------------------------------- */

/* A retention: a duration of at least 1s, or `forever` (0). */
static int
retention_value(bload_t *ld, const config_node_t *n, uint64_t *out)
{
    const char *s = config_node_text(n);
    if (s != NULL && strcmp(s, "forever") == 0) {
        *out = 0;
        return 0;
    }
    return config_node_duration(ld->doc, n, 1000, PT_RETENTION_MAX_MS, out, ld->err);
}

/* One `TYPE: DURATION` of retention.payloads (`default` for every other type). */
static int
parse_payload_retention(bload_t *ld, const config_node_t *map, size_t i)
{
    const config_node_t *key = config_node_key_at(map, i), *val = config_node_at(map, i);
    bconfig_retention_t *r = &ld->cfg->retention[i];
    const char *type;
    int rc = config_node_string(ld->doc, key, &type, ld->err);
    if (rc == 0)
        rc = retention_value(ld, val, &r->keep_ms);
    if (rc != 0 || strcmp(type, "default") == 0)
        return rc;
    if (codec_envelope_case(type) == PTIBUS__V1__ENVELOPE__BODY__NOT_SET)
        return unknown_type_error(ld, val, type);
    return dup_string(ld, type, &r->msg_type);
}

/* A payload cannot outlive its record: no payload retention beyond retention.audit. */
static int
check_audit_retention(bload_t *ld, const config_node_t *payloads)
{
    const bconfig_t *c = ld->cfg;
    for (size_t i = 0; c->audit_retention_ms != 0 && i < c->n_retention; i++) {
        uint64_t keep = c->retention[i].keep_ms;
        if (keep == 0 || keep > c->audit_retention_ms)
            return config_error(ld->doc, config_node_at(payloads, i), PT_ECONFIG, ld->err,
                                "longer than retention.audit: a payload cannot outlive its record");
    }
    return 0;
}

static int
parse_retention(bload_t *ld)
{
    static const char *const allowed[] = {"payloads", "audit", NULL};
    const config_node_t *r = NULL, *p = NULL, *audit;
    bconfig_t *c = ld->cfg;
    int rc = config_get_map(ld->doc, ld->root, "retention", false, &r, ld->err);
    if (rc != 0 || r == NULL)
        return rc;
    rc = config_check_keys(ld->doc, r, allowed, ld->err);
    if (rc == 0 && (audit = config_map_get(r, "audit")) != NULL)
        rc = retention_value(ld, audit, &c->audit_retention_ms);
    if (rc == 0)
        rc = config_get_map(ld->doc, r, "payloads", false, &p, ld->err);
    size_t n = p ? config_node_len(p) : 0;
    if (rc != 0 || n == 0)
        return rc;
    if ((c->retention = calloc(n, sizeof *c->retention)) == NULL)
        return oom(ld);
    c->n_retention = n;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = parse_payload_retention(ld, p, i);
    return rc == 0 ? check_audit_retention(ld, p) : rc;
}

/* ---- admin ----------------------------------------------------------------- */

/* An administrator's name: 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-' and '@'. */
static bool
admin_name_ok(const char *name)
{
    size_t n = strlen(name);
    return n >= 1 && n <= PT_ADMIN_NAME_MAX &&
           strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@") == n;
}

/* One item of admin.keys: {name, public_key | public_key_file}, or (deprecated) the
 * key as an inline Z85 string, named by the hex of its BLAKE2b-256. */
static int
parse_admin_item(bload_t *ld, const config_node_t *item, uint8_t key[PT_KEY_LEN], char **name)
{
    static const char *const allowed[] = {"name", "public_key", "public_key_file", NULL};
    const char *s = NULL;
    pt_error_t kerr;
    int rc;
    if (config_node_kind(item) == CONFIG_MAP) {
        if ((rc = config_check_keys(ld->doc, item, allowed, ld->err)) != 0 ||
            (rc = config_get_string(ld->doc, item, "name", true, &s, ld->err)) != 0)
            return rc;
        if (!admin_name_ok(s))
            return config_error(ld->doc, config_map_get(item, "name"), PT_ECONFIG, ld->err,
                                "\"%.40s\" is not a valid administrator name (1 to %d of A-Z, "
                                "a-z, 0-9, '.', '_', '-', '@')",
                                s, PT_ADMIN_NAME_MAX);
        if ((rc = parse_public_key(ld, item, key)) != 0)
            return rc;
        return dup_string(ld, s, name);
    }
    if ((rc = config_node_string(ld->doc, item, &s, ld->err)) != 0)
        return rc;
    if ((rc = keys_curve_public_from_z85(s, key, &kerr)) != 0)
        return config_error(ld->doc, item, rc, ld->err, "%s", kerr.msg);
    uint8_t id[32];
    char hex[65];
    crypto_generichash(id, sizeof id, key, PT_KEY_LEN, NULL, 0);
    sodium_bin2hex(hex, sizeof hex, id, sizeof id);
    return dup_string(ld, hex, name);
}

/* The checks of admin.keys[i] against the partners and the items before it. */
static int
check_admin_item(bload_t *ld, const config_node_t *item, size_t i)
{
    const uint8_t *key = ld->cfg->admin_keys[i];
    const bconfig_partner_t *p = bconfig_partner_by_key(ld->cfg, key);
    if (p != NULL)
        return config_error(ld->doc, item, PT_ECONFIG, ld->err,
                            "this admin key is also the key of partner \"%s\"; an administrator "
                            "needs a key of its own",
                            p->id);
    for (size_t k = 0; k < i; k++) {
        if (memcmp(ld->cfg->admin_keys[k], key, PT_KEY_LEN) == 0)
            return config_error(ld->doc, item, PT_ECONFIG, ld->err,
                                "the same admin key is listed twice");
        if (strcmp(ld->cfg->admin_names[k], ld->cfg->admin_names[i]) == 0)
            return config_error(ld->doc, item, PT_ECONFIG, ld->err,
                                "administrator name \"%s\" is given twice (admin.keys[%zu])",
                                ld->cfg->admin_names[i], k);
    }
    return 0;
}

static int
parse_admin(bload_t *ld)
{
    static const char *const allowed[] = {"listen", "keys", NULL};
    const config_node_t *a = NULL, *seq = NULL;
    bconfig_t *c = ld->cfg;
    int rc = config_get_map(ld->doc, ld->root, "admin", false, &a, ld->err);
    if (rc != 0 || a == NULL)
        return rc;
    if ((rc = config_check_keys(ld->doc, a, allowed, ld->err)) != 0 ||
        (rc = get_endpoint(ld, a, "listen", &c->admin_listen)) != 0 ||
        (rc = config_get_seq(ld->doc, a, "keys", false, &seq, ld->err)) != 0)
        return rc;
    size_t n = seq ? config_node_len(seq) : 0;
    if (n == 0 && c->admin_listen != NULL)
        return config_error(ld->doc, a, PT_ECONFIG, ld->err,
                            "admin.listen is set but no admin key is listed in admin.keys");
    if (n > 0 && ((c->admin_keys = calloc(n, sizeof *c->admin_keys)) == NULL ||
                  (c->admin_names = calloc(n, sizeof *c->admin_names)) == NULL))
        return oom(ld);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const config_node_t *item = config_node_at(seq, i);
        rc = parse_admin_item(ld, item, c->admin_keys[i], &c->admin_names[i]);
        if (rc == 0)
            c->n_admin_keys++;
        if (rc == 0)
            rc = check_admin_item(ld, item, i);
    }
    return rc;
}

/* ---- routes ---------------------------------------------------------------- */

static int
parse_routes(bload_t *ld)
{
    return routecfg_parse(ld->doc, ld->root, ld->cfg, ld->err);
}

/* ---- load ------------------------------------------------------------------ */

static int
set_defaults(bload_t *ld, const char *name)
{
    bconfig_t *c = ld->cfg;
    c->journal_map_initial = 64 * MiB;
    c->journal_map_max = (size_t)(16 * GiB);
    c->checkpoint_interval_ms = 60 * 1000;
    c->max_message_size = PT_MAX_MESSAGE_SIZE;
    c->heartbeat_interval_ms = 5000;
    c->max_batch = 1024;
    c->ack_timeout_ms = 30 * 1000;
    c->max_attempts = 10;
    c->backoff_initial_ms = 1000;
    c->backoff_max_ms = 5 * 60 * 1000;
    c->max_in_flight = PT_MAX_IN_FLIGHT_DEFAULT;
    c->partner_rate = PT_PARTNER_RATE_DEFAULT;
    c->partner_bytes_per_hour = PT_PARTNER_BYTES_PER_HOUR_DEFAULT;
    c->max_connections = PT_MAX_CONNECTIONS_DEFAULT;
    c->partner_handshakes_per_minute = PT_PARTNER_HANDSHAKES_DEFAULT;
    c->max_in_flight_bytes = PT_MAX_IN_FLIGHT_BYTES_DEFAULT;
    int rc = dup_string(ld, name, &c->path);
    if (rc == 0)
        rc = dup_string(ld, "tcp://127.0.0.1:7400", &c->listen);
    char *copy = strdup(name);
    if (rc == 0 && copy == NULL)
        rc = oom(ld);
    if (rc == 0)
        rc = dup_string(ld, dirname(copy), &ld->dir);
    free(copy);
    return rc;
}

static int
parse_document(bload_t *ld)
{
    const char *allowed[N_SECTIONS + 1];
    for (size_t i = 0; i < N_SECTIONS; i++)
        allowed[i] = sections[i].key;
    allowed[N_SECTIONS] = NULL;
    if (ld->root == NULL)
        return pt_error_set(ld->err, PT_ECONFIG, config_name(ld->doc),
                            "the configuration is empty");
    int rc = config_check_keys(ld->doc, ld->root, allowed, ld->err);
    for (size_t i = 0; rc == 0 && i < N_SECTIONS; i++)
        rc = sections[i].parse(ld);
    return rc;
}

static int
load_doc(config_t *doc, const char *name, bconfig_t **out, pt_error_t *err)
{
    bload_t ld = {.doc = doc, .root = config_root(doc), .err = err};
    if ((ld.cfg = calloc(1, sizeof *ld.cfg)) == NULL)
        return pt_error_set(err, -ENOMEM, name, "out of memory");
    int rc = set_defaults(&ld, name);
    if (rc == 0)
        rc = parse_document(&ld);
    free(ld.dir);
    if (rc != 0)
        bconfig_destroy(&ld.cfg);
    *out = ld.cfg;
    return rc;
}

int
bconfig_load_buffer(const char *text, size_t len, const char *name, bconfig_t **out,
                    pt_error_t *err)
{
    config_t *doc = NULL;
    *out = NULL;
    int rc = config_load_buffer(text, len, name, &doc, err);
    if (rc == 0)
        rc = load_doc(doc, name, out, err);
    config_destroy(&doc);
    return rc;
}

int
bconfig_load(const char *path, bconfig_t **out, pt_error_t *err)
{
    config_t *doc = NULL;
    *out = NULL;
    int rc = config_load_file(path, &doc, err);
    if (rc == 0)
        rc = load_doc(doc, path, out, err);
    config_destroy(&doc);
    return rc;
}

static void
partner_fini(bconfig_partner_t *p)
{
    for (size_t i = 0; i < p->n_may_send; i++)
        free(p->may_send[i]);
    free(p->may_send);
    for (size_t i = 0; i < p->n_subscribe; i++)
        free(p->subscribe[i]);
    free(p->subscribe);
    free(p->id);
    free(p->name);
}

void
bconfig_destroy(bconfig_t **cfg)
{
    if (cfg == NULL || *cfg == NULL)
        return;
    bconfig_t *c = *cfg;
    for (size_t i = 0; i < c->n_partners; i++)
        partner_fini(&c->partners[i]);
    routecfg_free(c);
    for (size_t i = 0; i < c->n_retention; i++)
        free(c->retention[i].msg_type);
    free(c->retention);
    free(c->partners);
    for (size_t i = 0; c->admin_names && i < c->n_admin_keys; i++)
        free(c->admin_names[i]);
    free(c->admin_names);
    free(c->admin_keys);
    for (size_t i = 0; i < c->n_prev_sign_pub; i++)
        free(c->prev_sign_pub_files[i]);
    free(c->prev_sign_pub_files);
    char *strings[] = {c->path,
                       c->listen,
                       c->admin_listen,
                       c->metrics_listen,
                       c->journal_dir,
                       c->server_secret_key_file,
                       c->signing_key_file,
                       c->hmac_key_file};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        free(strings[i]);
    free(c);
    *cfg = NULL;
}

const bconfig_partner_t *
bconfig_partner_by_key(const bconfig_t *cfg, const uint8_t key[PT_KEY_LEN])
{
    for (size_t i = 0; i < cfg->n_partners; i++)
        if (memcmp(cfg->partners[i].public_key, key, PT_KEY_LEN) == 0)
            return &cfg->partners[i];
    return NULL;
}

const bconfig_partner_t *
bconfig_partner_by_id(const bconfig_t *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->n_partners; i++)
        if (strcmp(cfg->partners[i].id, id) == 0)
            return &cfg->partners[i];
    return NULL;
}

bool
bconfig_may_send(const bconfig_partner_t *p, const char *msg_type)
{
    return list_has(p->may_send, p->n_may_send, msg_type);
}

bool
bconfig_subscribes(const bconfig_partner_t *p, const char *msg_type)
{
    return list_has(p->subscribe, p->n_subscribe, msg_type);
}

/* ---- reload (SIGHUP) ---- */

#define STR_KEY(key, field)                                                                        \
    {                                                                                              \
        key, offsetof(bconfig_t, field)                                                            \
    }
#define NUM_KEY(key, field)                                                                        \
    {                                                                                              \
        key, offsetof(bconfig_t, field), sizeof(((bconfig_t *)0)->field)                           \
    }

/* The keys a running broker keeps until a restart: its sockets, journal, secret keys,
 * limits and delivery timings. Partners and routes are what a reload changes. */
static const struct {
    const char *key;
    size_t off;
} restart_strings[] = {STR_KEY("listen", listen),
                       STR_KEY("admin.listen", admin_listen),
                       STR_KEY("metrics.listen", metrics_listen),
                       STR_KEY("journal.dir", journal_dir),
                       STR_KEY("keys.server_secret", server_secret_key_file),
                       STR_KEY("keys.signing_secret", signing_key_file),
                       STR_KEY("keys.person_index_hmac", hmac_key_file)};

static const struct {
    const char *key;
    size_t off, size;
} restart_numbers[] = {
    NUM_KEY("journal.initial_size", journal_map_initial),
    NUM_KEY("journal.max_size", journal_map_max),
    NUM_KEY("journal.checkpoint_interval", checkpoint_interval_ms),
    NUM_KEY("limits.max_message_size", max_message_size),
    NUM_KEY("limits.heartbeat_interval", heartbeat_interval_ms),
    NUM_KEY("limits.max_batch", max_batch),
    NUM_KEY("journal.unsafe_ack_before_fsync", unsafe_ack_before_fsync),
    NUM_KEY("delivery.ack_timeout", ack_timeout_ms),
    NUM_KEY("delivery.max_attempts", max_attempts),
    NUM_KEY("delivery.backoff_initial", backoff_initial_ms),
    NUM_KEY("delivery.backoff_max", backoff_max_ms),
    NUM_KEY("limits.partner_rate", partner_rate),
    NUM_KEY("limits.partner_bytes_per_hour", partner_bytes_per_hour),
    NUM_KEY("limits.max_connections", max_connections),
    NUM_KEY("limits.partner_handshakes_per_minute", partner_handshakes_per_minute),
    NUM_KEY("delivery.max_in_flight", max_in_flight),
    NUM_KEY("delivery.max_in_flight_bytes", max_in_flight_bytes)};

static bool
same_string(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void
append_key(char *out, size_t cap, const char *key)
{
    size_t len = strlen(out);
    if (len < cap)
        snprintf(out + len, cap - len, "%s%s", len ? ", " : "", key);
}

void
bconfig_restart_keys(const bconfig_t *live, const bconfig_t *next, char *out, size_t cap)
{
    if (cap > 0)
        out[0] = '\0';
    const char *l = (const char *)live, *n = (const char *)next;
    for (size_t i = 0; i < sizeof restart_strings / sizeof restart_strings[0]; i++) {
        size_t off = restart_strings[i].off;
        if (!same_string(*(char *const *)(l + off), *(char *const *)(n + off)))
            append_key(out, cap, restart_strings[i].key);
    }
    for (size_t i = 0; i < sizeof restart_numbers / sizeof restart_numbers[0]; i++) {
        size_t off = restart_numbers[i].off;
        if (memcmp(l + off, n + off, restart_numbers[i].size) != 0)
            append_key(out, cap, restart_numbers[i].key);
    }
    if (live->n_admin_keys != next->n_admin_keys ||
        (live->n_admin_keys > 0 &&
         memcmp(live->admin_keys, next->admin_keys, live->n_admin_keys * PT_KEY_LEN) != 0))
        append_key(out, cap, "admin.keys");
    else
        for (size_t i = 0; i < live->n_admin_keys; i++)
            if (strcmp(live->admin_names[i], next->admin_names[i]) != 0) {
                append_key(out, cap, "admin.keys");
                break;
            }
}

void
bconfig_swap_reloadable(bconfig_t *live, bconfig_t *next)
{
    bconfig_partner_t *partners = live->partners;
    size_t n_partners = live->n_partners;
    bconfig_route_t *routes = live->routes;
    size_t n_routes = live->n_routes;
    live->partners = next->partners;
    live->n_partners = next->n_partners;
    live->routes = next->routes;
    live->n_routes = next->n_routes;
    next->partners = partners;
    next->n_partners = n_partners;
    next->routes = routes;
    next->n_routes = n_routes;
}

int
bconfig_partner_map(const bconfig_t *live, const bconfig_t *next, ptrdiff_t **from)
{
    *from = calloc(next->n_partners ? next->n_partners : 1, sizeof **from);
    if (*from == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < next->n_partners; i++) {
        const bconfig_partner_t *p = bconfig_partner_by_id(live, next->partners[i].id);
        (*from)[i] = p ? p - live->partners : -1;
    }
    return 0;
}
