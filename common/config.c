/* config: YAML (libyaml event API) into a read-only node tree, with typed getters
 * whose errors say "FILE:LINE: KEY: what is wrong". */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

struct config_node {
    config_kind_t kind;
    unsigned line, column;
    bool plain;            /* scalar written without quotes */
    char *path;            /* dotted key path; "" for the root */
    char *text;            /* scalar only */
    size_t n, cap;         /* entries of a map / items of a sequence */
    config_node_t **items; /* sequence items, or map values */
    config_node_t **keys;  /* map keys (scalars), parallel to items */
};

struct config {
    char *name;
    config_node_t *root;
};

typedef struct loader {
    yaml_parser_t parser;
    const char *name;
    size_t nodes;
    pt_error_t *err;
} loader_t;

/* ---- errors ---------------------------------------------------------------- */

static int
verror_at(const char *name, unsigned line, const char *path, const char *key, int code,
          pt_error_t *err, const char *fmt, va_list ap)
{
    char where[PT_ERROR_PATH_MAX], what[PT_ERROR_MSG_MAX], full[256];
    snprintf(where, sizeof where, "%s:%u", name, line);
    vsnprintf(what, sizeof what, fmt, ap);
    if (key != NULL && path[0] != '\0')
        snprintf(full, sizeof full, "%s.%s", path, key);
    else
        snprintf(full, sizeof full, "%s", key != NULL ? key : path);
    if (full[0] == '\0')
        return pt_error_set(err, code, where, "%s", what);
    return pt_error_set(err, code, where, "%s: %s", full, what);
}

static int __attribute__((format(printf, 7, 8)))
error_at(const char *name, unsigned line, const char *path, const char *key, int code,
         pt_error_t *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = verror_at(name, line, path, key, code, err, fmt, ap);
    va_end(ap);
    return rc;
}

int
config_error(const config_t *cfg, const config_node_t *n, int code, pt_error_t *err,
             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = verror_at(cfg->name, n ? n->line : 1, n ? n->path : "", NULL, code, err, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- tree ------------------------------------------------------------------ */

static void
node_free(config_node_t *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->n; i++) {
        node_free(n->items[i]);
        if (n->keys != NULL)
            node_free(n->keys[i]);
    }
    free(n->items);
    free(n->keys);
    free(n->text);
    free(n->path);
    free(n);
}

/* Makes an empty node; counts it against PT_CONFIG_MAX_NODES. */
static int
node_new(loader_t *ld, config_kind_t kind, const yaml_mark_t *mark, const char *path,
         config_node_t **out)
{
    if (ld->nodes >= PT_CONFIG_MAX_NODES)
        return error_at(ld->name, (unsigned)mark->line + 1, path, NULL, PT_ETOOLARGE, ld->err,
                        "more than %d nodes in the document", PT_CONFIG_MAX_NODES);
    config_node_t *n = calloc(1, sizeof *n);
    if (n == NULL || (n->path = strdup(path)) == NULL) {
        free(n);
        return pt_error_set(ld->err, -ENOMEM, ld->name, "out of memory");
    }
    ld->nodes++;
    n->kind = kind;
    n->line = (unsigned)mark->line + 1;
    n->column = (unsigned)mark->column + 1;
    *out = n;
    return 0;
}

static int
node_append(loader_t *ld, config_node_t *parent, config_node_t *key, config_node_t *item)
{
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 4;
        config_node_t **items = realloc(parent->items, cap * sizeof *items);
        if (items == NULL)
            return pt_error_set(ld->err, -ENOMEM, ld->name, "out of memory");
        parent->items = items;
        if (parent->kind == CONFIG_MAP) {
            config_node_t **keys = realloc(parent->keys, cap * sizeof *keys);
            if (keys == NULL)
                return pt_error_set(ld->err, -ENOMEM, ld->name, "out of memory");
            parent->keys = keys;
        }
        parent->cap = cap;
    }
    parent->items[parent->n] = item;
    if (parent->kind == CONFIG_MAP)
        parent->keys[parent->n] = key;
    parent->n++;
    return 0;
}

/* ---- parser ---------------------------------------------------------------- */

static int
next_event(loader_t *ld, yaml_event_t *ev)
{
    if (yaml_parser_parse(&ld->parser, ev))
        return 0;
    const yaml_parser_t *p = &ld->parser;
    char where[PT_ERROR_PATH_MAX];
    snprintf(where, sizeof where, "%s:%zu:%zu", ld->name, p->problem_mark.line + 1,
             p->problem_mark.column + 1);
    return pt_error_set(ld->err, PT_EMALFORMED, where, "YAML syntax error: %s%s%s",
                        p->problem ? p->problem : "unknown problem", p->context ? " " : "",
                        p->context ? p->context : "");
}

static int parse_node(loader_t *ld, const yaml_event_t *ev, const char *path, int depth,
                      config_node_t **out);

/* Refuses the YAML features we do not support, so a config means what it says. */
static int
check_event(loader_t *ld, const yaml_event_t *ev, const char *path)
{
    unsigned line = (unsigned)ev->start_mark.line + 1;
    const yaml_char_t *anchor = NULL, *tag = NULL;
    if (ev->type == YAML_ALIAS_EVENT)
        return error_at(ld->name, line, path, NULL, PT_EMALFORMED, ld->err,
                        "aliases (*name) are not supported; write the value out");
    if (ev->type == YAML_SCALAR_EVENT) {
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
    } else if (ev->type == YAML_SEQUENCE_START_EVENT) {
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
    } else if (ev->type == YAML_MAPPING_START_EVENT) {
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
    }
    if (anchor != NULL)
        return error_at(ld->name, line, path, NULL, PT_EMALFORMED, ld->err,
                        "anchors (&name) are not supported");
    if (tag != NULL)
        return error_at(ld->name, line, path, NULL, PT_EMALFORMED, ld->err,
                        "tags (!name) are not supported");
    return 0;
}

static int
parse_scalar(loader_t *ld, const yaml_event_t *ev, const char *path, config_node_t **out)
{
    size_t len = ev->data.scalar.length;
    const char *value = (const char *)ev->data.scalar.value;
    if (memchr(value, '\0', len) != NULL)
        return error_at(ld->name, (unsigned)ev->start_mark.line + 1, path, NULL, PT_EMALFORMED,
                        ld->err, "the value contains a NUL character");
    config_node_t *n = NULL;
    int rc = node_new(ld, CONFIG_SCALAR, &ev->start_mark, path, &n);
    if (rc != 0)
        return rc;
    n->text = strndup(value, len);
    if (n->text == NULL) {
        node_free(n);
        return pt_error_set(ld->err, -ENOMEM, ld->name, "out of memory");
    }
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    *out = n;
    return 0;
}

static char *
child_path(const char *parent, const char *key, size_t index)
{
    char buf[256];
    if (key == NULL)
        snprintf(buf, sizeof buf, "%s[%zu]", parent, index);
    else if (parent[0] == '\0')
        snprintf(buf, sizeof buf, "%s", key);
    else
        snprintf(buf, sizeof buf, "%s.%s", parent, key);
    return strdup(buf);
}

/* Parses the event that follows into a child of parent (key NULL for a sequence). */
static int
parse_child(loader_t *ld, config_node_t *parent, config_node_t *key, int depth)
{
    yaml_event_t ev;
    int rc = next_event(ld, &ev);
    if (rc != 0)
        return rc;
    config_node_t *child = NULL;
    char *path = child_path(parent->path, key ? key->text : NULL, parent->n);
    if (path == NULL)
        rc = pt_error_set(ld->err, -ENOMEM, ld->name, "out of memory");
    else
        rc = parse_node(ld, &ev, path, depth, &child);
    yaml_event_delete(&ev);
    free(path);
    if (rc == 0)
        rc = node_append(ld, parent, key, child);
    if (rc != 0)
        node_free(child);
    return rc;
}

static const config_node_t *
map_find(const config_node_t *map, const char *key)
{
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->keys[i]->text, key) == 0)
            return map->keys[i];
    return NULL;
}

/* Reads one key of a map; *done is set at the mapping's end. Keys must be unique
 * scalars. On success *key is a new scalar node the caller owns. */
static int
parse_key(loader_t *ld, config_node_t *map, config_node_t **key, bool *done)
{
    yaml_event_t ev;
    int rc = next_event(ld, &ev);
    if (rc != 0)
        return rc;
    *done = ev.type == YAML_MAPPING_END_EVENT;
    unsigned line = (unsigned)ev.start_mark.line + 1;
    const config_node_t *dup;
    if (*done)
        rc = 0;
    else if ((rc = check_event(ld, &ev, map->path)) != 0)
        ;
    else if (map->n >= PT_CONFIG_MAX_MAP_KEYS)
        rc = error_at(ld->name, line, map->path, NULL, PT_ETOOLARGE, ld->err,
                      "more than %d keys in one mapping", PT_CONFIG_MAX_MAP_KEYS);
    else if (ev.type != YAML_SCALAR_EVENT)
        rc = error_at(ld->name, line, map->path, NULL, PT_EMALFORMED, ld->err,
                      "a key must be a plain string, not a mapping or a list");
    else if ((rc = parse_scalar(ld, &ev, map->path, key)) != 0)
        ;
    else if ((dup = map_find(map, (*key)->text)) != NULL) {
        rc = error_at(ld->name, line, map->path, (*key)->text, PT_EMALFORMED, ld->err,
                      "duplicate key (first given on line %u)", dup->line);
        node_free(*key);
        *key = NULL;
    }
    yaml_event_delete(&ev);
    return rc;
}

static int
parse_mapping(loader_t *ld, config_node_t *map, int depth)
{
    for (;;) {
        config_node_t *key = NULL;
        bool done = false;
        int rc = parse_key(ld, map, &key, &done);
        if (rc != 0 || done)
            return rc;
        rc = parse_child(ld, map, key, depth);
        if (rc != 0) {
            node_free(key);
            return rc;
        }
    }
}

static int
parse_sequence(loader_t *ld, config_node_t *seq, int depth)
{
    for (;;) {
        yaml_event_t ev;
        int rc = next_event(ld, &ev);
        if (rc != 0)
            return rc;
        bool done = ev.type == YAML_SEQUENCE_END_EVENT;
        config_node_t *child = NULL;
        char *path = done ? NULL : child_path(seq->path, NULL, seq->n);
        if (!done && path == NULL)
            rc = pt_error_set(ld->err, -ENOMEM, ld->name, "out of memory");
        else if (!done)
            rc = parse_node(ld, &ev, path, depth, &child);
        yaml_event_delete(&ev);
        free(path);
        if (rc == 0 && !done)
            rc = node_append(ld, seq, NULL, child);
        if (rc != 0)
            node_free(child);
        if (rc != 0 || done)
            return rc;
    }
}

static int
parse_node(loader_t *ld, const yaml_event_t *ev, const char *path, int depth, config_node_t **out)
{
    int rc = check_event(ld, ev, path);
    if (rc != 0)
        return rc;
    if (ev->type == YAML_SCALAR_EVENT)
        return parse_scalar(ld, ev, path, out);
    bool is_map = ev->type == YAML_MAPPING_START_EVENT;
    if (!is_map && ev->type != YAML_SEQUENCE_START_EVENT)
        return error_at(ld->name, (unsigned)ev->start_mark.line + 1, path, NULL, PT_EMALFORMED,
                        ld->err, "unexpected YAML event %d", (int)ev->type);
    if (depth >= PT_CONFIG_MAX_DEPTH)
        return error_at(ld->name, (unsigned)ev->start_mark.line + 1, path, NULL, PT_ETOOLARGE,
                        ld->err, "nested more than %d levels deep", PT_CONFIG_MAX_DEPTH);
    config_node_t *n = NULL;
    if ((rc = node_new(ld, is_map ? CONFIG_MAP : CONFIG_SEQ, &ev->start_mark, path, &n)) != 0)
        return rc;
    rc = is_map ? parse_mapping(ld, n, depth + 1) : parse_sequence(ld, n, depth + 1);
    if (rc != 0) {
        node_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

/* Consumes events until one of type `want`, refusing anything else. */
static int
expect_event(loader_t *ld, yaml_event_type_t want, yaml_event_t *ev)
{
    int rc = next_event(ld, ev);
    if (rc != 0)
        return rc;
    if (ev->type == want)
        return 0;
    unsigned line = (unsigned)ev->start_mark.line + 1;
    yaml_event_delete(ev);
    return error_at(ld->name, line, "", NULL, PT_EMALFORMED, ld->err,
                    "only one YAML document is allowed in a configuration file");
}

/* stream-start, then either stream-end (empty file) or one document. */
static int
parse_stream(loader_t *ld, config_node_t **root)
{
    yaml_event_t ev;
    int rc = expect_event(ld, YAML_STREAM_START_EVENT, &ev);
    if (rc != 0)
        return rc;
    yaml_event_delete(&ev);
    if ((rc = next_event(ld, &ev)) != 0)
        return rc;
    bool empty = ev.type == YAML_STREAM_END_EVENT;
    yaml_event_delete(&ev);
    if (empty)
        return 0;
    if ((rc = next_event(ld, &ev)) != 0)
        return rc;
    rc = parse_node(ld, &ev, "", 0, root);
    yaml_event_delete(&ev);
    if (rc == 0 && (rc = expect_event(ld, YAML_DOCUMENT_END_EVENT, &ev)) == 0)
        yaml_event_delete(&ev);
    if (rc == 0 && (rc = expect_event(ld, YAML_STREAM_END_EVENT, &ev)) == 0)
        yaml_event_delete(&ev);
    return rc;
}

int
config_load_buffer(const char *text, size_t len, const char *name, config_t **out, pt_error_t *err)
{
    *out = NULL;
    if (len > PT_CONFIG_MAX_BYTES)
        return pt_error_set(err, PT_ETOOLARGE, name, "%zu bytes is over the limit of %d", len,
                            PT_CONFIG_MAX_BYTES);
    config_t *cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL || (cfg->name = strdup(name)) == NULL) {
        free(cfg);
        return pt_error_set(err, -ENOMEM, name, "out of memory");
    }
    loader_t ld = {.name = name, .err = err};
    if (!yaml_parser_initialize(&ld.parser)) {
        config_destroy(&cfg);
        return pt_error_set(err, -ENOMEM, name, "cannot initialise the YAML parser");
    }
    yaml_parser_set_input_string(&ld.parser, (const unsigned char *)text, len);
    int rc = parse_stream(&ld, &cfg->root);
    yaml_parser_delete(&ld.parser);
    if (rc != 0) {
        config_destroy(&cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

static int
read_bounded(const char *path, char **buf, size_t *len, pt_error_t *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return pt_error_set(err, -errno, path, "cannot open: %s", strerror(errno));
    *buf = malloc(PT_CONFIG_MAX_BYTES + 1);
    int rc = 0;
    if (*buf == NULL)
        rc = pt_error_set(err, -ENOMEM, path, "out of memory");
    else
        *len = fread(*buf, 1, PT_CONFIG_MAX_BYTES + 1, f);
    if (rc == 0 && ferror(f))
        rc = pt_error_set(err, -EIO, path, "read error");
    else if (rc == 0 && *len > PT_CONFIG_MAX_BYTES)
        rc = pt_error_set(err, PT_ETOOLARGE, path, "the file is larger than %d bytes",
                          PT_CONFIG_MAX_BYTES);
    fclose(f);
    if (rc != 0) {
        free(*buf);
        *buf = NULL;
    }
    return rc;
}

int
config_load_file(const char *path, config_t **out, pt_error_t *err)
{
    char *buf = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = read_bounded(path, &buf, &len, err);
    if (rc != 0)
        return rc;
    rc = config_load_buffer(buf, len, path, out, err);
    free(buf);
    return rc;
}

void
config_destroy(config_t **cfg)
{
    if (cfg == NULL || *cfg == NULL)
        return;
    node_free((*cfg)->root);
    free((*cfg)->name);
    free(*cfg);
    *cfg = NULL;
}

/* ---- accessors ------------------------------------------------------------- */

const char *
config_name(const config_t *cfg)
{
    return cfg->name;
}

const config_node_t *
config_root(const config_t *cfg)
{
    return cfg->root;
}

config_kind_t
config_node_kind(const config_node_t *n)
{
    return n->kind;
}

unsigned
config_node_line(const config_node_t *n)
{
    return n->line;
}

unsigned
config_node_column(const config_node_t *n)
{
    return n->column;
}

const char *
config_node_path(const config_node_t *n)
{
    return n->path;
}

const char *
config_node_text(const config_node_t *n)
{
    return n->kind == CONFIG_SCALAR ? n->text : NULL;
}

bool
config_node_is_null(const config_node_t *n)
{
    if (n->kind != CONFIG_SCALAR || !n->plain)
        return false;
    return n->text[0] == '\0' || strcmp(n->text, "~") == 0 || strcmp(n->text, "null") == 0;
}

size_t
config_node_len(const config_node_t *n)
{
    return n->kind == CONFIG_SCALAR ? 0 : n->n;
}

const config_node_t *
config_node_at(const config_node_t *n, size_t i)
{
    return n->kind != CONFIG_SCALAR && i < n->n ? n->items[i] : NULL;
}

const config_node_t *
config_node_key_at(const config_node_t *n, size_t i)
{
    return n->kind == CONFIG_MAP && i < n->n ? n->keys[i] : NULL;
}

const config_node_t *
config_map_get(const config_node_t *map, const char *key)
{
    if (map == NULL || map->kind != CONFIG_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->keys[i]->text, key) == 0)
            return map->items[i];
    return NULL;
}

static const char *
kind_name(const config_node_t *n)
{
    static const char *const names[] = {
        [CONFIG_MAP] = "a mapping", [CONFIG_SEQ] = "a list", [CONFIG_SCALAR] = "a single value"};
    return names[n->kind];
}

static int
expect_kind(const config_t *cfg, const config_node_t *n, config_kind_t kind, pt_error_t *err)
{
    if (n->kind == kind)
        return 0;
    static const char *const wanted[] = {[CONFIG_MAP] = "a mapping (key: value)",
                                         [CONFIG_SEQ] = "a list",
                                         [CONFIG_SCALAR] = "a value"};
    return config_error(cfg, n, PT_ECONFIG, err, "expected %s, found %s", wanted[kind],
                        kind_name(n));
}

int
config_expect_map(const config_t *cfg, const config_node_t *n, pt_error_t *err)
{
    return expect_kind(cfg, n, CONFIG_MAP, err);
}

static bool
in_list(const char *key, const char *const *allowed)
{
    for (size_t i = 0; allowed[i] != NULL; i++)
        if (strcmp(allowed[i], key) == 0)
            return true;
    return false;
}

int
config_check_keys(const config_t *cfg, const config_node_t *map, const char *const *allowed,
                  pt_error_t *err)
{
    int rc = expect_kind(cfg, map, CONFIG_MAP, err);
    for (size_t i = 0; rc == 0 && i < map->n; i++) {
        const config_node_t *key = map->keys[i];
        if (in_list(key->text, allowed))
            continue;
        char list[256] = "";
        size_t used = 0;
        for (size_t j = 0; allowed[j] != NULL && used < sizeof list; j++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", j ? ", " : "",
                                     allowed[j]);
        rc = error_at(cfg->name, key->line, map->path, key->text, PT_ECONFIG, err,
                      "unknown key (expected one of: %s)", list);
    }
    return rc;
}

/* ---- scalar conversions ---------------------------------------------------- */

typedef struct unit {
    const char *name;
    uint64_t factor;
} unit_t;

static const unit_t size_units[] = {
    {"", 1},
    {"B", 1},
    {"KiB", 1024ULL},
    {"MiB", 1024ULL * 1024},
    {"GiB", 1024ULL * 1024 * 1024},
    {"TiB", 1024ULL * 1024 * 1024 * 1024},
};

static const unit_t duration_units[] = {
    {"ms", 1},
    {"s", 1000},
    {"min", 60 * 1000},
    {"h", 60 * 60 * 1000},
    {"d", 24 * 60 * 60 * 1000}, /* retention.* */
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Parses leading decimal digits; *end points after them. False on no digit or overflow. */
static bool
parse_digits(const char *s, uint64_t *v, const char **end)
{
    uint64_t acc = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (acc > (UINT64_MAX - d) / 10)
            return false;
        acc = acc * 10 + d;
    }
    *v = acc;
    *end = p;
    return p != s;
}

/* "<digits>[ ]<unit>" with unit from the table; false if malformed or overflowing. */
static bool
parse_with_unit(const char *s, const unit_t *units, size_t n_units, uint64_t *out)
{
    uint64_t v;
    const char *p;
    if (!parse_digits(s, &v, &p))
        return false;
    if (*p == ' ')
        p++;
    for (size_t i = 0; i < n_units; i++) {
        if (strcmp(p, units[i].name) != 0)
            continue;
        if (units[i].name[0] == '\0' && p != s && p[-1] == ' ')
            return false;
        if (v > UINT64_MAX / units[i].factor)
            return false;
        *out = v * units[i].factor;
        return true;
    }
    return false;
}

/* Prints v with the largest unit that divides it exactly ("16MiB", "60s"). */
static void
format_with_unit(uint64_t v, const unit_t *units, size_t n_units, char *buf, size_t size)
{
    size_t best = 0;
    for (size_t i = 0; i < n_units; i++)
        if (units[i].factor <= v && v % units[i].factor == 0)
            best = i;
    snprintf(buf, size, "%llu%s", (unsigned long long)(v / units[best].factor), units[best].name);
}

static int
scalar_text(const config_t *cfg, const config_node_t *n, const char **text, pt_error_t *err)
{
    int rc = expect_kind(cfg, n, CONFIG_SCALAR, err);
    if (rc != 0)
        return rc;
    if (config_node_is_null(n))
        return config_error(cfg, n, PT_ECONFIG, err, "has no value");
    *text = n->text;
    return 0;
}

static int
range_error(const config_t *cfg, const config_node_t *n, const unit_t *units, size_t n_units,
            uint64_t min, uint64_t max, pt_error_t *err)
{
    char lo[32], hi[32];
    format_with_unit(min, units, n_units, lo, sizeof lo);
    format_with_unit(max, units, n_units, hi, sizeof hi);
    return config_error(cfg, n, PT_ECONFIG, err, "\"%.40s\" is out of range (%s..%s)", n->text, lo,
                        hi);
}

int
config_node_string(const config_t *cfg, const config_node_t *n, const char **out, pt_error_t *err)
{
    return scalar_text(cfg, n, out, err);
}

int
config_node_uint(const config_t *cfg, const config_node_t *n, uint64_t min, uint64_t max,
                 uint64_t *out, pt_error_t *err)
{
    const char *s;
    int rc = scalar_text(cfg, n, &s, err);
    uint64_t v;
    const char *end;
    if (rc != 0)
        return rc;
    if (!parse_digits(s, &v, &end) || *end != '\0')
        return config_error(cfg, n, PT_ECONFIG, err, "\"%.40s\" is not a whole number", s);
    if (v < min || v > max)
        return range_error(cfg, n, size_units, 1, min, max, err);
    *out = v;
    return 0;
}

int
config_node_size(const config_t *cfg, const config_node_t *n, uint64_t min, uint64_t max,
                 uint64_t *out, pt_error_t *err)
{
    const char *s;
    uint64_t v;
    int rc = scalar_text(cfg, n, &s, err);
    if (rc != 0)
        return rc;
    if (!parse_with_unit(s, size_units, N_OF(size_units), &v))
        return config_error(cfg, n, PT_ECONFIG, err,
                            "\"%.40s\" is not a size (use 512MiB, 2GiB...)", s);
    if (v < min || v > max)
        return range_error(cfg, n, size_units + 1, N_OF(size_units) - 1, min, max, err);
    *out = v;
    return 0;
}

int
config_node_duration(const config_t *cfg, const config_node_t *n, uint64_t min_ms, uint64_t max_ms,
                     uint64_t *out, pt_error_t *err)
{
    const char *s;
    uint64_t v;
    int rc = scalar_text(cfg, n, &s, err);
    if (rc != 0)
        return rc;
    if (!parse_with_unit(s, duration_units, N_OF(duration_units), &v))
        return config_error(cfg, n, PT_ECONFIG, err,
                            "\"%.40s\" is not a duration (use 500ms, 5s, 2min, 1h)", s);
    if (v < min_ms || v > max_ms)
        return range_error(cfg, n, duration_units, N_OF(duration_units), min_ms, max_ms, err);
    *out = v;
    return 0;
}

static int
node_bool(const config_t *cfg, const config_node_t *n, bool *out, pt_error_t *err)
{
    static const struct {
        const char *text;
        bool value;
    } words[] = {{"true", true},   {"True", true},   {"TRUE", true},
                 {"false", false}, {"False", false}, {"FALSE", false}};
    const char *s;
    int rc = scalar_text(cfg, n, &s, err);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < N_OF(words); i++) {
        if (strcmp(s, words[i].text) == 0) {
            *out = words[i].value;
            return 0;
        }
    }
    return config_error(cfg, n, PT_ECONFIG, err, "\"%.40s\" is not a boolean (use true or false)",
                        s);
}

/* ---- getters on map entries ------------------------------------------------ */

/* *val is the entry, or NULL when absent and optional. */
static int
lookup(const config_t *cfg, const config_node_t *map, const char *key, bool required,
       const config_node_t **val, pt_error_t *err)
{
    int rc = expect_kind(cfg, map, CONFIG_MAP, err);
    if (rc != 0)
        return rc;
    *val = config_map_get(map, key);
    if (*val == NULL && required)
        return error_at(cfg->name, map->line, map->path, key, PT_ECONFIG, err,
                        "missing required key");
    return 0;
}

int
config_get_string(const config_t *cfg, const config_node_t *map, const char *key, bool required,
                  const char **out, pt_error_t *err)
{
    const config_node_t *n;
    int rc = lookup(cfg, map, key, required, &n, err);
    return rc != 0 || n == NULL ? rc : config_node_string(cfg, n, out, err);
}

int
config_get_bool(const config_t *cfg, const config_node_t *map, const char *key, bool required,
                bool *out, pt_error_t *err)
{
    const config_node_t *n;
    int rc = lookup(cfg, map, key, required, &n, err);
    return rc != 0 || n == NULL ? rc : node_bool(cfg, n, out, err);
}

int
config_get_uint(const config_t *cfg, const config_node_t *map, const char *key, bool required,
                uint64_t min, uint64_t max, uint64_t *out, pt_error_t *err)
{
    const config_node_t *n;
    int rc = lookup(cfg, map, key, required, &n, err);
    return rc != 0 || n == NULL ? rc : config_node_uint(cfg, n, min, max, out, err);
}

int
config_get_size(const config_t *cfg, const config_node_t *map, const char *key, bool required,
                uint64_t min, uint64_t max, uint64_t *out, pt_error_t *err)
{
    const config_node_t *n;
    int rc = lookup(cfg, map, key, required, &n, err);
    return rc != 0 || n == NULL ? rc : config_node_size(cfg, n, min, max, out, err);
}

int
config_get_duration(const config_t *cfg, const config_node_t *map, const char *key, bool required,
                    uint64_t min_ms, uint64_t max_ms, uint64_t *out, pt_error_t *err)
{
    const config_node_t *n;
    int rc = lookup(cfg, map, key, required, &n, err);
    return rc != 0 || n == NULL ? rc : config_node_duration(cfg, n, min_ms, max_ms, out, err);
}

int
config_get_map(const config_t *cfg, const config_node_t *map, const char *key, bool required,
               const config_node_t **out, pt_error_t *err)
{
    const config_node_t *n;
    int rc = lookup(cfg, map, key, required, &n, err);
    if (rc != 0 || n == NULL)
        return rc;
    if ((rc = expect_kind(cfg, n, CONFIG_MAP, err)) == 0)
        *out = n;
    return rc;
}

int
config_get_seq(const config_t *cfg, const config_node_t *map, const char *key, bool required,
               const config_node_t **out, pt_error_t *err)
{
    const config_node_t *n;
    int rc = lookup(cfg, map, key, required, &n, err);
    if (rc != 0 || n == NULL)
        return rc;
    if ((rc = expect_kind(cfg, n, CONFIG_SEQ, err)) == 0)
        *out = n;
    return rc;
}

int
config_get_strings(const config_t *cfg, const config_node_t *map, const char *key, bool required,
                   const char ***out, size_t *n, pt_error_t *err)
{
    const config_node_t *seq = NULL;
    int rc = config_get_seq(cfg, map, key, required, &seq, err);
    if (rc != 0 || seq == NULL)
        return rc;
    const char **v = seq->n ? calloc(seq->n, sizeof *v) : NULL;
    if (seq->n && v == NULL)
        return config_error(cfg, seq, -ENOMEM, err, "out of memory");
    for (size_t i = 0; rc == 0 && i < seq->n; i++)
        rc = config_node_string(cfg, seq->items[i], &v[i], err);
    if (rc != 0) {
        free(v);
        return rc;
    }
    *out = v;
    *n = seq->n;
    return 0;
}
