/* bconfig: the broker's configuration (listen endpoints, journal, key files, limits,
 * partners, what each may send and subscribes to, and the routes), loaded once from YAML
 * through common/config and read-only afterwards. Every rejection names the file, line
 * and key. Relative file paths are resolved against the directory of the configuration
 * file. The routes are compiled here (broker/routecfg.c) and evaluated by broker/router. */
#ifndef PT_BCONFIG_H
#define PT_BCONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "pt_limits.h"
#include "err.h"
#include "ptibus/v1/envelope.pb-c.h"

/* Delivery window defaults: what one recipient may have in flight whatever credit it
 * grants (delivery.max_in_flight, delivery.max_in_flight_bytes). */
#define PT_MAX_IN_FLIGHT_DEFAULT 256
/* Input quota defaults (limits.*): see docs/configuration.md. */
#define PT_PARTNER_RATE_DEFAULT 2000
#define PT_PARTNER_BYTES_PER_HOUR_DEFAULT (1ull << 30)
#define PT_MAX_CONNECTIONS_DEFAULT 512
#define PT_PARTNER_HANDSHAKES_DEFAULT 60
#define PT_MAX_IN_FLIGHT_BYTES_DEFAULT (8u << 20)

/* Characters of an administrator's name (admin.keys[].name). */
#define PT_ADMIN_NAME_MAX 64

typedef struct bconfig_partner {
    char *id;   /* [a-z0-9_]{1,32}, unique */
    char *name; /* display name (defaults to the id) */
    uint8_t
        public_key[PT_KEY_LEN]; /* CURVE public key: `public_key: "<Z85>"` or `public_key_file:` */
    char **may_send;            /* envelope body case names ("referral", ...), all valid */
    size_t n_may_send;
    char **subscribe; /* types received by broadcast (routes with to_subscribers) */
    size_t n_subscribe;
} bconfig_partner_t;

/* Most names in a route's field path ("person.payer" is 2). */
#define PT_ROUTE_DEPTH_MAX 4

/* A field path compiled against the body message's descriptor: chain[0..depth-1] are
 * fields of successive messages, the last one a non-repeated scalar (enum, string, bool
 * or integer). depth == 0 means "no field". The descriptors are protobuf-c's static
 * ones (borrowed for the program's life). */
typedef struct bconfig_field {
    char *path; /* "<type>.<path as written>", e.g. "sanction.person.payer" */
    const ProtobufCFieldDescriptor *chain[PT_ROUTE_DEPTH_MAX];
    size_t depth;
} bconfig_field_t;

/* A constant compared with a field's value: str for string fields (owned), num for the
 * others (enum and signed values as int64_t bits, bools as 0/1). */
typedef struct bconfig_value {
    char *str;
    uint64_t num;
} bconfig_value_t;

/* One entry of a by_field map: when the field equals value, deliver to partner. */
typedef struct bconfig_route_map {
    bconfig_value_t value;
    size_t partner; /* index in bconfig_t.partners */
} bconfig_route_map_t;

/* One rule of `routes:`. A message of type body_case for which `when` holds (or that has
 * no `when`) goes to the union of every target the rule names. */
typedef struct bconfig_route {
    unsigned line;                       /* of the rule in the file */
    Ptibus__V1__Envelope__BodyCase body; /* the message type */
    bconfig_field_t when;                /* depth 0: the rule always applies */
    bconfig_value_t *when_values;        /* `equals` (one) or `in` (several) */
    size_t n_when_values;
    size_t *to; /* partner indexes */
    size_t n_to;
    bconfig_field_t to_field; /* a string field holding a partner id; depth 0: none */
    size_t *to_field_allow;   /* partner indexes the to_field may name (never empty) */
    size_t n_to_field_allow;
    bconfig_field_t by_field; /* depth 0: none */
    bconfig_route_map_t *by_map;
    size_t n_by_map;
    bool to_subscribers;       /* the partners whose subscribe lists the type */
    bool to_correlated_sender; /* the sender of the message named by correlation_id */
} bconfig_route_t;

/* One entry of retention.payloads: how long payloads of msg_type are kept after their
 * record's time (docs/configuration.md). */
typedef struct bconfig_retention {
    char *msg_type;   /* an envelope body case name; NULL for `default` (every other type) */
    uint64_t keep_ms; /* 0 = forever */
} bconfig_retention_t;

/* Longest retention accepted: 100 years of 365 days. */
#define PT_RETENTION_MAX_MS (UINT64_C(100) * 365 * 24 * 3600 * 1000)

#define PT_PREV_SIGN_KEYS_MAX 8 /* keys.previous_signing_public, PT_JOURNAL_PREV_KEYS */

typedef struct bconfig {
    char *path;                      /* the file loaded (or the name given to load_buffer) */
    char *listen;                    /* ZeroMQ endpoint, default "tcp://127.0.0.1:7400" */
    char *admin_listen;              /* admin socket endpoint; NULL if absent */
    char *metrics_listen;            /* "127.0.0.1:9400"; NULL if absent */
    char *journal_dir;               /* required; resolved */
    size_t journal_map_initial;      /* default 64MiB */
    size_t journal_map_max;          /* default 16GiB */
    uint32_t checkpoint_interval_ms; /* default 60 s */
    char *server_secret_key_file;    /* CURVE secret key (required); resolved */
    char *signing_key_file;          /* Ed25519 secret key for journal checkpoints (required) */
    /* keys.previous_signing_public: the public keys of retired signing keys (after a
     * rotation), resolved paths; the journal resumes from a checkpoint one of them signed. */
    char **prev_sign_pub_files; /* at most PT_PREV_SIGN_KEYS_MAX (PT_JOURNAL_PREV_KEYS) */
    size_t n_prev_sign_pub;
    char *hmac_key_file;             /* person index key (required) */
    uint32_t max_message_size;       /* default 262144, range 1KiB..16MiB */
    uint32_t heartbeat_interval_ms;  /* default 5 s */
    uint32_t max_batch;              /* max messages per group commit, default 1024 */
    bool unsafe_ack_before_fsync;    /* default false; journal.unsafe_ack_before_fsync */
    bool journal_wait_for_lock;      /* journal.wait_for_lock (or --standby): a standby */
    uint32_t ack_timeout_ms;         /* delivery.ack_timeout, default 30 s */
    uint32_t max_attempts;           /* delivery.max_attempts, default 10, then dead letter */
    uint32_t backoff_initial_ms;     /* delivery.backoff_initial, default 1 s */
    uint32_t backoff_max_ms;         /* delivery.backoff_max, default 5 min */
    uint32_t partner_rate;           /* limits.partner_rate: messages/s per partner, 0 = none */
    uint64_t partner_bytes_per_hour; /* limits.partner_bytes_per_hour of journal, 0 = none */
    uint32_t max_connections;        /* limits.max_connections on the partners' socket */
    uint32_t partner_handshakes_per_minute; /* limits.partner_handshakes_per_minute */
    uint32_t max_in_flight;                 /* delivery.max_in_flight: credit clamp, default 256 */
    uint64_t max_in_flight_bytes;           /* delivery.max_in_flight_bytes, default 8 MiB */
    bconfig_partner_t *partners;
    size_t n_partners;
    bconfig_route_t *routes; /* in file order; empty when `routes:` is absent */
    size_t n_routes;
    uint8_t (*admin_keys)[PT_KEY_LEN]; /* CURVE public keys allowed on the admin socket */
    /* admin_names[i]: the name of admin_keys[i] (admin.keys[i].name), which ADMIN records
     * and the admin log lines use; for the deprecated inline-string form, the hex of the
     * key's BLAKE2b-256 (the whole digest: a 64-bit fingerprint could be matched). */
    char **admin_names;
    size_t n_admin_keys;
    bconfig_retention_t *retention; /* retention.payloads in file order; empty: kept forever */
    size_t n_retention;
    uint64_t audit_retention_ms; /* retention.audit; 0 = forever (checked, not applied yet) */
} bconfig_t;

/* Loads and validates the file at path. Reads the partners' public key files (not the
 * secret key files, which the broker reads itself). Returns 0, -errno, PT_EMALFORMED
 * or PT_ECONFIG with err saying "FILE:LINE: KEY: what is wrong". On success the
 * caller owns *out; free with bconfig_destroy(). */
int bconfig_load(const char *path, bconfig_t **out, pt_error_t *err);

/* The same from len bytes in memory; name is used in messages and its directory
 * anchors relative paths. */
int bconfig_load_buffer(const char *text, size_t len, const char *name, bconfig_t **out,
                        pt_error_t *err);

/* Frees cfg and sets *cfg to NULL; accepts NULL. */
void bconfig_destroy(bconfig_t **cfg);

/* Reload (SIGHUP): what a reload changes is the partners (ids, keys, may_send,
 * subscribe) and the routes; the rest needs a restart. bconfig_restart_keys writes into
 * out (cap bytes, NUL-terminated, "" when none) the names of the keys that differ
 * between live and next, comma-separated ("listen, limits.max_batch"). */
void bconfig_restart_keys(const bconfig_t *live, const bconfig_t *next, char *out, size_t cap);

/* Exchanges the partners and routes of live and next (each stays consistent: routes
 * name partners by index in their own file's list). Never fails. */
void bconfig_swap_reloadable(bconfig_t *live, bconfig_t *next);

/* For each partner of next, its index in live's partners, or -1 when it is new: how the
 * per-partner state of the modules moves over a reload. Returns 0 or -ENOMEM; caller
 * owns *from (next->n_partners entries), free with free(). */
int bconfig_partner_map(const bconfig_t *live, const bconfig_t *next, ptrdiff_t **from);

/* The partner with this CURVE public key / this id, or NULL. Borrowed from cfg. */
const bconfig_partner_t *bconfig_partner_by_key(const bconfig_t *cfg,
                                                const uint8_t key[PT_KEY_LEN]);
const bconfig_partner_t *bconfig_partner_by_id(const bconfig_t *cfg, const char *id);

/* True when p may send messages of type msg_type (an envelope body case name). */
bool bconfig_may_send(const bconfig_partner_t *p, const char *msg_type);

/* True when p's subscribe list has msg_type. */
bool bconfig_subscribes(const bconfig_partner_t *p, const char *msg_type);

#endif
