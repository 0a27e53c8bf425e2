/* config: loads a YAML file (libyaml events) into a small read-only tree of maps,
 * sequences and scalars, each node remembering its line, column and key path
 * ("journal.max_size", "partners[2].id"), and typed getters that report bad values as
 * "FILE:LINE: KEY: what is wrong". Anchors, aliases, tags, duplicate keys and
 * non-scalar keys are refused; documents are limited in size, depth and node count. */
#ifndef PT_CONFIG_H
#define PT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Limits on what the loader accepts (PT_ETOOLARGE beyond them). */
#define PT_CONFIG_MAX_BYTES (1024 * 1024)
#define PT_CONFIG_MAX_DEPTH 32
#define PT_CONFIG_MAX_NODES 100000
#define PT_CONFIG_MAX_MAP_KEYS 1000 /* keeps the duplicate-key check cheap */

typedef struct config config_t;
typedef struct config_node config_node_t;

typedef enum config_kind {
    CONFIG_MAP = 1,
    CONFIG_SEQ = 2,
    CONFIG_SCALAR = 3,
} config_kind_t;

/* Loads and parses the file at path. Errors (I/O, syntax with libyaml's line and
 * column, limits, duplicate keys, aliases) fill err and return -errno, PT_EMALFORMED
 * or PT_ETOOLARGE. On success the caller owns *out; free with config_destroy(). */
int config_load_file(const char *path, config_t **out, pt_error_t *err);

/* The same from len bytes in memory; name is used in error messages. */
int config_load_buffer(const char *text, size_t len, const char *name, config_t **out,
                       pt_error_t *err);

/* Frees the tree and sets *cfg to NULL; accepts NULL. Every node and string
 * borrowed from it becomes invalid. */
void config_destroy(config_t **cfg);

/* The file name given at load time (borrowed). */
const char *config_name(const config_t *cfg);

/* The root node, or NULL when the document is empty. */
const config_node_t *config_root(const config_t *cfg);

/* Node accessors. Lines and columns are 1-based. The path is "" for the root. */
config_kind_t config_node_kind(const config_node_t *n);
unsigned config_node_line(const config_node_t *n);
unsigned config_node_column(const config_node_t *n);
const char *config_node_path(const config_node_t *n);

/* A scalar's text (NUL-free), or NULL for a map or sequence. */
const char *config_node_text(const config_node_t *n);

/* True for a plain (unquoted) scalar that is empty, "~" or "null". */
bool config_node_is_null(const config_node_t *n);

/* Number of entries of a map or items of a sequence (0 for a scalar). */
size_t config_node_len(const config_node_t *n);

/* The i-th item of a sequence or value of a map; the i-th key of a map (a scalar
 * node). NULL when out of range. */
const config_node_t *config_node_at(const config_node_t *n, size_t i);
const config_node_t *config_node_key_at(const config_node_t *n, size_t i);

/* The value for key in a map, or NULL when absent (or n is not a map). */
const config_node_t *config_map_get(const config_node_t *map, const char *key);

/* Fills err with "FILE:LINE: PATH: <fmt>" about node n (the path part is left out
 * for the root) and returns code. */
int config_error(const config_t *cfg, const config_node_t *n, int code, pt_error_t *err,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Checks that n is a map (PT_ECONFIG "expected a mapping" otherwise). */
int config_expect_map(const config_t *cfg, const config_node_t *n, pt_error_t *err);

/* Checks that every key of map is in allowed (NULL-terminated); reports the first
 * unknown key with its line and the list of allowed keys. */
int config_check_keys(const config_t *cfg, const config_node_t *map, const char *const *allowed,
                      pt_error_t *err);

/* Typed getters on a map entry. When key is absent: PT_ECONFIG "missing required key"
 * if required, else 0 with *out unchanged (so the caller sets the default first).
 * A present value of the wrong type or out of range is PT_ECONFIG, naming the file,
 * line, key path and the bad value. Nothing is written to *out on error. */

/* A scalar string, borrowed from cfg; null values are refused. */
int config_get_string(const config_t *cfg, const config_node_t *map, const char *key, bool required,
                      const char **out, pt_error_t *err);

/* true / false (also True, TRUE, False, FALSE). */
int config_get_bool(const config_t *cfg, const config_node_t *map, const char *key, bool required,
                    bool *out, pt_error_t *err);

/* A decimal unsigned integer with min <= value <= max. */
int config_get_uint(const config_t *cfg, const config_node_t *map, const char *key, bool required,
                    uint64_t min, uint64_t max, uint64_t *out, pt_error_t *err);

/* A size: plain bytes or a number with B, KiB, MiB, GiB or TiB ("512MiB", "2 GiB"),
 * with min <= bytes <= max. */
int config_get_size(const config_t *cfg, const config_node_t *map, const char *key, bool required,
                    uint64_t min, uint64_t max, uint64_t *out, pt_error_t *err);

/* A duration with a unit: ms, s, min, h or d ("500ms", "60s", "2min", "730d"), returned in
 * milliseconds with min_ms <= value <= max_ms. A bare number is refused. */
int config_get_duration(const config_t *cfg, const config_node_t *map, const char *key,
                        bool required, uint64_t min_ms, uint64_t max_ms, uint64_t *out,
                        pt_error_t *err);

/* A sequence of strings. *out is a new array of *n strings borrowed from cfg; the
 * caller frees the array (not the strings) with free(). An empty list gives
 * *out == NULL and *n == 0. */
int config_get_strings(const config_t *cfg, const config_node_t *map, const char *key,
                       bool required, const char ***out, size_t *n, pt_error_t *err);

/* A map or a sequence entry (borrowed node); *out unchanged when absent and optional. */
int config_get_map(const config_t *cfg, const config_node_t *map, const char *key, bool required,
                   const config_node_t **out, pt_error_t *err);
int config_get_seq(const config_t *cfg, const config_node_t *map, const char *key, bool required,
                   const config_node_t **out, pt_error_t *err);

/* Conversions of one scalar node, used by the getters and for sequence items. */
int config_node_string(const config_t *cfg, const config_node_t *n, const char **out,
                       pt_error_t *err);
int config_node_size(const config_t *cfg, const config_node_t *n, uint64_t min, uint64_t max,
                     uint64_t *out, pt_error_t *err);
int config_node_duration(const config_t *cfg, const config_node_t *n, uint64_t min_ms,
                         uint64_t max_ms, uint64_t *out, pt_error_t *err);
int config_node_uint(const config_t *cfg, const config_node_t *n, uint64_t min, uint64_t max,
                     uint64_t *out, pt_error_t *err);

#endif
