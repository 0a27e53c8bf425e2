/* bconfig: the broker's configuration (listen endpoints, journal, key files, limits,
 * partners and what each may send), loaded once from YAML through common/config and
 * read-only afterwards. Every rejection names the file, line and key. Relative file
 * paths are resolved against the directory of the configuration file. */
#ifndef PT_BCONFIG_H
#define PT_BCONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define PT_PARTNER_ID_MAX 32

typedef struct bconfig_partner {
    char *id;               /* [a-z0-9_]{1,32}, unique */
    char *name;             /* display name (defaults to the id) */
    uint8_t public_key[32]; /* CURVE public key: `public_key: "<Z85>"` or `public_key_file:` */
    char **may_send;        /* envelope body case names ("referral", ...), all valid */
    size_t n_may_send;
} bconfig_partner_t;

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
    char *hmac_key_file;             /* person index key (required) */
    uint32_t max_message_size;       /* default 262144, range 1KiB..16MiB */
    uint32_t heartbeat_interval_ms;  /* default 5 s */
    uint32_t max_batch;              /* max messages per group commit, default 1024 */
    bool unsafe_ack_before_fsync;    /* default false; journal.unsafe_ack_before_fsync */
    bconfig_partner_t *partners;
    size_t n_partners;
    uint8_t (*admin_keys)[32]; /* CURVE public keys allowed on the admin socket */
    size_t n_admin_keys;
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

/* The partner with this CURVE public key / this id, or NULL. Borrowed from cfg. */
const bconfig_partner_t *bconfig_partner_by_key(const bconfig_t *cfg, const uint8_t key[32]);
const bconfig_partner_t *bconfig_partner_by_id(const bconfig_t *cfg, const char *id);

/* True when p may send messages of type msg_type (an envelope body case name). */
bool bconfig_may_send(const bconfig_partner_t *p, const char *msg_type);

#endif
