/* aconfig: an adapter's configuration (deploy/adapters/<id>.yaml): who the partner is,
 * how it reaches the broker, where its spool lives, how its system hands messages in
 * (HTTP API, file drop) and how deliveries go out (outbox folder, webhook or pull).
 * Loaded once at start and by --check-config; every error says file:line, the key and
 * what is expected, like the broker's (common/config.h). Owns its strings; read-only
 * after loading. */
#ifndef PT_ACONFIG_H
#define PT_ACONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "pt_limits.h"

typedef enum aconfig_complete {
    ACONFIG_COMPLETE_RENAME = 0, /* written as NAME.tmp, then renamed (the default) */
    ACONFIG_COMPLETE_MARKER,     /* a NAME.done marker beside it */
    ACONFIG_COMPLETE_STABLE,     /* size and mtime unchanged for stable_for */
} aconfig_complete_t;

typedef enum aconfig_egress {
    ACONFIG_EGRESS_OUTBOX = 0, /* one file per delivery in outbox.dir (the default) */
    ACONFIG_EGRESS_WEBHOOK,    /* POST to webhook.url, HMAC-signed */
    ACONFIG_EGRESS_PULL,       /* GET /v1/inbox on the HTTP API */
} aconfig_egress_t;

#define ACONFIG_MAX_CODECS 8
#define ACONFIG_MAX_FORMATS 4
#define ACONFIG_MAX_FINAL_STATUSES 16
#define ACONFIG_MAX_ENDPOINTS 8

typedef struct aconfig {
    char *path; /* the file loaded */
    char id[PT_PARTNER_ID_MAX + 1];
    /* broker: broker.endpoint (one) or broker.endpoints (tried in order, the uplink
     * failing over to the next after failover_after without a session) */
    char *endpoints[ACONFIG_MAX_ENDPOINTS];
    size_t n_endpoints;
    const char *endpoint;       /* endpoints[0] */
    uint64_t failover_after_ms; /* default 10 s */
    char *server_public_key_file, *secret_key_file, *public_key_file;
    uint32_t credit; /* deliveries granted in Hello, default 64 */
    /* spool */
    char *spool_dir;
    uint64_t spool_max_size; /* default 1 GiB */
    uint64_t retention_ms;   /* lifecycle kept this long, default 30 days */
    /* http (optional: listen NULL = no HTTP API) */
    char *http_listen; /* "127.0.0.1:PORT" */
    char *tokens_file; /* bearer tokens, one per line, 0600 */
    uint64_t max_body; /* default 1 MiB */
    /* inbox (optional: dir NULL = no file drop) */
    char *inbox_dir;
    aconfig_complete_t complete;
    uint64_t stable_for_ms, scan_interval_ms;
    bool all_or_nothing;
    const char *codecs[ACONFIG_MAX_CODECS]; /* codec names, borrowed from static tables */
    size_t n_codecs;
    /* egress */
    aconfig_egress_t egress;
    char *outbox_dir;
    bool receipts;
    /* outbox: the partner's own formats written beside each delivery's JSON file (codec
     * names with an encoder, e.g. caf_csv), and their encoding (NULL: UTF-8) */
    const char *outbox_formats[ACONFIG_MAX_FORMATS];
    size_t n_outbox_formats;
    char *outbox_encoding;
    char *webhook_url, *webhook_secret_file;
    uint64_t webhook_timeout_ms;
    uint32_t final_statuses[ACONFIG_MAX_FINAL_STATUSES]; /* 4xx answers that are final */
    size_t n_final_statuses;
    /* metrics (optional) */
    char *metrics_listen;
} aconfig_t;

/* Loads path. Relative paths in it are taken from the file's folder. On error err says
 * "FILE:LINE: KEY: what is wrong" and the result is PT_ECONFIG (or the loader's code).
 * Caller owns *out; free with aconfig_destroy(). */
int aconfig_load(const char *path, aconfig_t **out, pt_error_t *err);

/* Frees; accepts NULL; sets *cfg to NULL. */
void aconfig_destroy(aconfig_t **cfg);

/* The codec names the file drop accepts (json, jsonl and the partners' native ones),
 * NULL-terminated. */
extern const char *const aconfig_codec_names[];

#endif
