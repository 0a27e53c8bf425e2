/* routecfg: compiles `routes:` against the protobuf-c descriptors. What each protobuf
 * scalar type means to a route (how its constants are written, how its value is read)
 * is one table, `scalars`. */
#include "routecfg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

typedef enum scalar_kind {
    K_NONE = 0, /* not usable by a route: float, double, bytes, message */
    K_SIGNED,   /* enum names are K_ENUM; other signed integers */
    K_UNSIGNED,
    K_BOOL,
    K_ENUM,
    K_STRING,
} scalar_kind_t;

typedef struct scalar_info {
    const char *name;
    scalar_kind_t kind;
    unsigned width; /* bytes of the stored value */
} scalar_info_t;

/* Indexed by ProtobufCType. */
static const scalar_info_t scalars[] = {
    [PROTOBUF_C_TYPE_INT32] = {"int32", K_SIGNED, 4},
    [PROTOBUF_C_TYPE_SINT32] = {"sint32", K_SIGNED, 4},
    [PROTOBUF_C_TYPE_SFIXED32] = {"sfixed32", K_SIGNED, 4},
    [PROTOBUF_C_TYPE_INT64] = {"int64", K_SIGNED, 8},
    [PROTOBUF_C_TYPE_SINT64] = {"sint64", K_SIGNED, 8},
    [PROTOBUF_C_TYPE_SFIXED64] = {"sfixed64", K_SIGNED, 8},
    [PROTOBUF_C_TYPE_UINT32] = {"uint32", K_UNSIGNED, 4},
    [PROTOBUF_C_TYPE_FIXED32] = {"fixed32", K_UNSIGNED, 4},
    [PROTOBUF_C_TYPE_UINT64] = {"uint64", K_UNSIGNED, 8},
    [PROTOBUF_C_TYPE_FIXED64] = {"fixed64", K_UNSIGNED, 8},
    [PROTOBUF_C_TYPE_FLOAT] = {"float", K_NONE, 4},
    [PROTOBUF_C_TYPE_DOUBLE] = {"double", K_NONE, 8},
    [PROTOBUF_C_TYPE_BOOL] = {"bool", K_BOOL, sizeof(protobuf_c_boolean)},
    [PROTOBUF_C_TYPE_ENUM] = {"enum", K_ENUM, 4},
    [PROTOBUF_C_TYPE_STRING] = {"string", K_STRING, sizeof(char *)},
    [PROTOBUF_C_TYPE_BYTES] = {"bytes", K_NONE, 0},
    [PROTOBUF_C_TYPE_MESSAGE] = {"message", K_NONE, 0},
};

static const scalar_info_t *
info_of(const ProtobufCFieldDescriptor *f)
{
    static const scalar_info_t unknown = {"unknown", K_NONE, 0};
    size_t t = (size_t)f->type;
    return t < sizeof scalars / sizeof scalars[0] ? &scalars[t] : &unknown;
}

static scalar_kind_t
kind_of(const ProtobufCFieldDescriptor *f)
{
    return info_of(f)->kind;
}

static const ProtobufCFieldDescriptor *
last_field(const bconfig_field_t *f)
{
    return f->chain[f->depth - 1];
}

/* What a rule parse needs: the document, the config being filled, the rule's type. */
typedef struct rload {
    const config_t *doc;
    bconfig_t *cfg;
    pt_error_t *err;
    const char *type; /* borrowed from the Envelope descriptor */
    const ProtobufCMessageDescriptor *body;
} rload_t;

static int
oom(rload_t *ld)
{
    return pt_error_set(ld->err, -ENOMEM, config_name(ld->doc), "out of memory");
}

/* ---- field paths ----------------------------------------------------------- */

/* Resolves one dotted name after another from the body descriptor into out->chain. */
static int
walk_path(rload_t *ld, const config_node_t *n, const char *text, bconfig_field_t *out)
{
    char buf[128], *save = NULL;
    const ProtobufCMessageDescriptor *desc = ld->body;
    size_t len = strlen(text);
    if (len >= sizeof buf || text[0] == '.' || text[len - 1] == '.' || strstr(text, ".."))
        return config_error(ld->doc, n, PT_ECONFIG, ld->err,
                            "\"%.80s\" is not a field path (names separated by dots, e.g. "
                            "person.payer)",
                            text);
    memcpy(buf, text, len + 1);
    for (char *seg = strtok_r(buf, ".", &save); seg; seg = strtok_r(NULL, ".", &save)) {
        if (out->depth == PT_ROUTE_DEPTH_MAX)
            return config_error(ld->doc, n, PT_ECONFIG, ld->err, "\"%.80s\" has more than %d names",
                                text, PT_ROUTE_DEPTH_MAX);
        if (desc == NULL)
            return config_error(ld->doc, n, PT_ECONFIG, ld->err, "\"%.80s\": %s is not a message",
                                text, out->chain[out->depth - 1]->name);
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(desc, seg);
        if (f == NULL)
            return config_error(ld->doc, n, PT_ECONFIG, ld->err,
                                "\"%.80s\" is not a field of %s: %s has no field \"%.40s\"", text,
                                ld->type, desc->name, seg);
        if (f->label == PROTOBUF_C_LABEL_REPEATED)
            return config_error(ld->doc, n, PT_ECONFIG, ld->err,
                                "\"%.80s\": %s is a list; a route needs a single value", text,
                                f->name);
        out->chain[out->depth++] = f;
        desc = f->type == PROTOBUF_C_TYPE_MESSAGE ? f->descriptor : NULL;
    }
    return 0;
}

/* Compiles the path in scalar node n; the last field must be an enum, string, bool or
 * integer. */
static int
compile_field(rload_t *ld, const config_node_t *n, bconfig_field_t *out)
{
    const char *text;
    int rc = config_node_string(ld->doc, n, &text, ld->err);
    if (rc == 0 && text[0] == '\0')
        rc = config_error(ld->doc, n, PT_ECONFIG, ld->err, "the field path is empty");
    if (rc == 0)
        rc = walk_path(ld, n, text, out);
    if (rc != 0)
        return rc;
    const ProtobufCFieldDescriptor *f = last_field(out);
    if (kind_of(f) == K_NONE)
        return config_error(ld->doc, n, PT_ECONFIG, ld->err,
                            "\"%.80s\" is of type %s; routes compare enums, strings, booleans "
                            "and integers",
                            text, info_of(f)->name);
    size_t len = strlen(ld->type) + strlen(text) + 2;
    if ((out->path = malloc(len)) == NULL)
        return oom(ld);
    snprintf(out->path, len, "%s.%s", ld->type, text);
    return 0;
}

/* ---- constants ------------------------------------------------------------- */

static int
enum_error(rload_t *ld, const config_node_t *n, const char *s, const ProtobufCEnumDescriptor *ed)
{
    char list[400] = "";
    size_t used = 0;
    for (unsigned i = 0; i < ed->n_values && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                 ed->values[i].name);
    return config_error(ld->doc, n, PT_ECONFIG, ld->err, "\"%.60s\" is not a value of %s (%s)", s,
                        ed->name, list);
}

static bool
parse_bool(const char *s, uint64_t *out)
{
    static const struct {
        const char *text;
        bool value;
    } words[] = {{"true", true},   {"True", true},   {"TRUE", true},
                 {"false", false}, {"False", false}, {"FALSE", false}};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcmp(s, words[i].text) == 0) {
            *out = words[i].value;
            return true;
        }
    return false;
}

/* A decimal integer ("-" allowed when is_signed) that fits width bytes. */
static bool
parse_integer(const char *s, bool is_signed, unsigned width, uint64_t *out)
{
    bool neg = is_signed && s[0] == '-';
    const char *p = s + neg;
    uint64_t v = 0;
    if (*p == '\0')
        return false;
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    unsigned bits = width * 8 - (is_signed ? 1 : 0);
    uint64_t limit = bits == 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1;
    if (v > limit + (neg ? 1 : 0))
        return false;
    *out = neg ? (uint64_t)0 - v : v;
    return true;
}

/* Parses scalar n as a constant of the type of field f. */
static int
parse_value(rload_t *ld, const config_node_t *n, const ProtobufCFieldDescriptor *f,
            bconfig_value_t *out)
{
    const char *s;
    int rc = config_node_string(ld->doc, n, &s, ld->err);
    if (rc != 0)
        return rc;
    const ProtobufCEnumValue *ev;
    switch (kind_of(f)) {
    case K_ENUM:
        if ((ev = protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, s)) == NULL)
            return enum_error(ld, n, s, f->descriptor);
        out->num = (uint64_t)(int64_t)ev->value;
        return 0;
    case K_STRING:
        return (out->str = strdup(s)) == NULL ? oom(ld) : 0;
    case K_BOOL:
        if (parse_bool(s, &out->num))
            return 0;
        return config_error(ld->doc, n, PT_ECONFIG, ld->err,
                            "\"%.40s\" is not a boolean (use true or false)", s);
    default:
        if (parse_integer(s, kind_of(f) == K_SIGNED, info_of(f)->width, &out->num))
            return 0;
        return config_error(ld->doc, n, PT_ECONFIG, ld->err, "\"%.40s\" is not a %s", s,
                            info_of(f)->name);
    }
}

static bool
value_same(const bconfig_value_t *a, const bconfig_value_t *b)
{
    if (a->str != NULL || b->str != NULL)
        return a->str != NULL && b->str != NULL && strcmp(a->str, b->str) == 0;
    return a->num == b->num;
}

/* ---- partners -------------------------------------------------------------- */

static int
partner_index(rload_t *ld, const config_node_t *n, size_t *out)
{
    const char *id;
    char list[400] = "";
    size_t used = 0;
    int rc = config_node_string(ld->doc, n, &id, ld->err);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < ld->cfg->n_partners; i++) {
        if (strcmp(ld->cfg->partners[i].id, id) == 0) {
            *out = i;
            return 0;
        }
        if (used < sizeof list)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                     ld->cfg->partners[i].id);
    }
    return config_error(ld->doc, n, PT_ECONFIG, ld->err,
                        "\"%.40s\" is not a configured partner (partners: %s)", id, list);
}

/* ---- one rule -------------------------------------------------------------- */

static int
type_error(rload_t *ld, const config_node_t *n, const char *type)
{
    char list[512];
    codec_envelope_type_list(list, sizeof list);
    return config_error(ld->doc, n, PT_ECONFIG, ld->err,
                        "\"%.40s\" is not a message type (valid: %s)", type, list);
}

static int
parse_type(rload_t *ld, const config_node_t *rule, bconfig_route_t *r)
{
    const char *type = NULL;
    int rc = config_get_string(ld->doc, rule, "type", true, &type, ld->err);
    if (rc != 0)
        return rc;
    r->body = codec_envelope_case(type);
    if (r->body == PTIBUS__V1__ENVELOPE__BODY__NOT_SET)
        return type_error(ld, config_map_get(rule, "type"), type);
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(&ptibus__v1__envelope__descriptor, r->body);
    ld->type = f->name;
    ld->body = f->descriptor;
    return 0;
}

/* `when: {field: F, equals: V}` or `when: {field: F, in: [V, ...]}`. */
static int
parse_when(rload_t *ld, const config_node_t *rule, bconfig_route_t *r)
{
    static const char *const allowed[] = {"field", "equals", "in", NULL};
    const config_node_t *w = NULL, *seq = NULL;
    const char *unused;
    int rc = config_get_map(ld->doc, rule, "when", false, &w, ld->err);
    if (rc != 0 || w == NULL)
        return rc;
    const config_node_t *eq = config_map_get(w, "equals"), *in = config_map_get(w, "in");
    if ((rc = config_check_keys(ld->doc, w, allowed, ld->err)) != 0 ||
        (rc = config_get_string(ld->doc, w, "field", true, &unused, ld->err)) != 0 ||
        (rc = compile_field(ld, config_map_get(w, "field"), &r->when)) != 0)
        return rc;
    if (eq != NULL && in != NULL)
        return config_error(ld->doc, in, PT_ECONFIG, ld->err, "give either equals or in, not both");
    if (eq == NULL && in == NULL)
        return config_error(ld->doc, w, PT_ECONFIG, ld->err, "needs equals or in");
    if (in != NULL && (rc = config_get_seq(ld->doc, w, "in", true, &seq, ld->err)) != 0)
        return rc;
    size_t n = seq ? config_node_len(seq) : 1;
    if (n == 0)
        return config_error(ld->doc, in, PT_ECONFIG, ld->err, "the list is empty");
    if ((r->when_values = calloc(n, sizeof *r->when_values)) == NULL)
        return oom(ld);
    r->n_when_values = n;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = parse_value(ld, seq ? config_node_at(seq, i) : eq, last_field(&r->when),
                         &r->when_values[i]);
    return rc;
}

/* A sequence of distinct partner ids into *out (partner indexes), *n their count. */
static int
parse_partners(rload_t *ld, const config_node_t *seq, size_t **out, size_t *n_out)
{
    size_t n = config_node_len(seq);
    int rc = 0;
    if ((*out = calloc(n ? n : 1, sizeof **out)) == NULL)
        return oom(ld);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const config_node_t *item = config_node_at(seq, i);
        size_t idx;
        if ((rc = partner_index(ld, item, &idx)) != 0)
            return rc;
        for (size_t j = 0; j < *n_out; j++)
            if ((*out)[j] == idx)
                return config_error(ld->doc, item, PT_ECONFIG, ld->err, "\"%s\" is listed twice",
                                    ld->cfg->partners[idx].id);
        (*out)[(*n_out)++] = idx;
    }
    return rc;
}

/* `to: [partner, ...]`. */
static int
parse_to(rload_t *ld, const config_node_t *rule, bconfig_route_t *r)
{
    const config_node_t *seq = NULL;
    int rc = config_get_seq(ld->doc, rule, "to", false, &seq, ld->err);
    if (rc != 0 || seq == NULL || config_node_len(seq) == 0)
        return rc;
    return parse_partners(ld, seq, &r->to, &r->n_to);
}

/* `to_field: {field: PATH, allow: [partner, ...]}`: PATH names a string field holding a
 * partner id, and only the partners of `allow` may be named there (purpose limitation;
 * the list is required, so that no route reaches every partner by omission). */
static int
parse_to_field(rload_t *ld, const config_node_t *rule, bconfig_route_t *r)
{
    static const char *const allowed[] = {"field", "allow", NULL};
    const config_node_t *m = config_map_get(rule, "to_field"), *seq = NULL;
    const char *unused;
    if (m == NULL)
        return 0;
    if (config_node_kind(m) != CONFIG_MAP)
        return config_error(ld->doc, m, PT_ECONFIG, ld->err,
                            "needs a map {field: PATH, allow: [partner, ...]}: the partners "
                            "that field may name");
    int rc = config_check_keys(ld->doc, m, allowed, ld->err);
    if (rc == 0)
        rc = config_get_string(ld->doc, m, "field", true, &unused, ld->err);
    if (rc == 0)
        rc = compile_field(ld, config_map_get(m, "field"), &r->to_field);
    if (rc != 0)
        return rc;
    const config_node_t *fn = config_map_get(m, "field");
    const ProtobufCFieldDescriptor *f = last_field(&r->to_field);
    if (f->type != PROTOBUF_C_TYPE_STRING)
        return config_error(ld->doc, fn, PT_ECONFIG, ld->err,
                            "\"%.80s\" is of type %s; to_field needs a string field holding a "
                            "partner id",
                            config_node_text(fn), info_of(f)->name);
    if ((rc = config_get_seq(ld->doc, m, "allow", true, &seq, ld->err)) != 0)
        return rc;
    if (config_node_len(seq) == 0)
        return config_error(ld->doc, seq, PT_ECONFIG, ld->err,
                            "the list is empty (name the partners this field may address)");
    return parse_partners(ld, seq, &r->to_field_allow, &r->n_to_field_allow);
}

static int
parse_map_entry(rload_t *ld, const config_node_t *map, size_t i, bconfig_route_t *r)
{
    const config_node_t *key = config_node_key_at(map, i);
    bconfig_route_map_t *e = &r->by_map[i];
    int rc = parse_value(ld, key, last_field(&r->by_field), &e->value);
    if (rc != 0)
        return rc;
    r->n_by_map = i + 1;
    for (size_t j = 0; j < i; j++)
        if (value_same(&r->by_map[j].value, &e->value))
            return config_error(ld->doc, key, PT_ECONFIG, ld->err,
                                "\"%.40s\" is the same value as line %u", config_node_text(key),
                                config_node_line(config_node_key_at(map, j)));
    return partner_index(ld, config_node_at(map, i), &e->partner);
}

/* `by_field: {field: PATH, map: {VALUE: partner, ...}}`. */
static int
parse_by_field(rload_t *ld, const config_node_t *rule, bconfig_route_t *r)
{
    static const char *const allowed[] = {"field", "map", NULL};
    const config_node_t *b = NULL, *map = NULL;
    const char *unused;
    int rc = config_get_map(ld->doc, rule, "by_field", false, &b, ld->err);
    if (rc != 0 || b == NULL)
        return rc;
    if ((rc = config_check_keys(ld->doc, b, allowed, ld->err)) != 0 ||
        (rc = config_get_string(ld->doc, b, "field", true, &unused, ld->err)) != 0 ||
        (rc = compile_field(ld, config_map_get(b, "field"), &r->by_field)) != 0 ||
        (rc = config_get_map(ld->doc, b, "map", true, &map, ld->err)) != 0)
        return rc;
    size_t n = config_node_len(map);
    if (n == 0)
        return config_error(ld->doc, map, PT_ECONFIG, ld->err, "the map is empty");
    if ((r->by_map = calloc(n, sizeof *r->by_map)) == NULL)
        return oom(ld);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = parse_map_entry(ld, map, i, r);
    return rc;
}

static int
parse_rule(rload_t *ld, const config_node_t *rule, bconfig_route_t *r)
{
    static const char *const allowed[] = {
        "type", "when", "to", "to_field", "by_field", "to_subscribers", "to_correlated_sender",
        NULL};
    int rc = config_expect_map(ld->doc, rule, ld->err);
    r->line = config_node_line(rule);
    if (rc == 0)
        rc = config_check_keys(ld->doc, rule, allowed, ld->err);
    if (rc == 0)
        rc = parse_type(ld, rule, r);
    if (rc == 0)
        rc = parse_when(ld, rule, r);
    if (rc == 0)
        rc = parse_to(ld, rule, r);
    if (rc == 0)
        rc = parse_to_field(ld, rule, r);
    if (rc == 0)
        rc = parse_by_field(ld, rule, r);
    if (rc == 0)
        rc = config_get_bool(ld->doc, rule, "to_subscribers", false, &r->to_subscribers, ld->err);
    if (rc == 0)
        rc = config_get_bool(ld->doc, rule, "to_correlated_sender", false, &r->to_correlated_sender,
                             ld->err);
    if (rc == 0 && r->n_to == 0 && r->to_field.depth == 0 && r->by_field.depth == 0 &&
        !r->to_subscribers && !r->to_correlated_sender)
        rc = config_error(ld->doc, rule, PT_ECONFIG, ld->err,
                          "the rule names no recipient (give to, to_field, by_field, "
                          "to_subscribers or to_correlated_sender)");
    return rc;
}

/* ---- cross-checks ---------------------------------------------------------- */

/* True when a rule of type `type` exists (with to_subscribers when broadcast is set). */
static bool
has_rule(const bconfig_t *cfg, const char *type, bool broadcast)
{
    Ptibus__V1__Envelope__BodyCase body = codec_envelope_case(type);
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (cfg->routes[i].body == body && (!broadcast || cfg->routes[i].to_subscribers))
            return true;
    return false;
}

/* A subscription nothing broadcasts, or (with routes) a type a partner may send that no
 * rule routes, would silently drop or refuse every such message: both are refused. */
static int
check_partner_lists(rload_t *ld, const config_node_t *root, bool have_routes)
{
    const config_node_t *partners = config_map_get(root, "partners");
    for (size_t i = 0; i < ld->cfg->n_partners; i++) {
        const bconfig_partner_t *p = &ld->cfg->partners[i];
        const config_node_t *pmap = config_node_at(partners, i);
        for (size_t j = 0; j < p->n_subscribe; j++)
            if (!has_rule(ld->cfg, p->subscribe[j], true))
                return config_error(ld->doc, config_node_at(config_map_get(pmap, "subscribe"), j),
                                    PT_ECONFIG, ld->err,
                                    "no route delivers %s messages to subscribers (add a rule with "
                                    "type: %s and to_subscribers: true to routes)",
                                    p->subscribe[j], p->subscribe[j]);
        for (size_t j = 0; have_routes && j < p->n_may_send; j++)
            if (!has_rule(ld->cfg, p->may_send[j], false))
                return config_error(ld->doc, config_node_at(config_map_get(pmap, "may_send"), j),
                                    PT_ECONFIG, ld->err,
                                    "no route delivers %s messages (add a rule with type: %s "
                                    "to routes)",
                                    p->may_send[j], p->may_send[j]);
    }
    return 0;
}

int
routecfg_parse(const config_t *doc, const config_node_t *root, bconfig_t *cfg, pt_error_t *err)
{
    rload_t ld = {.doc = doc, .cfg = cfg, .err = err};
    const config_node_t *seq = NULL;
    int rc = config_get_seq(doc, root, "routes", false, &seq, err);
    size_t n = seq ? config_node_len(seq) : 0;
    if (rc != 0)
        return rc;
    if (n > 0 && (cfg->routes = calloc(n, sizeof *cfg->routes)) == NULL)
        return oom(&ld);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        cfg->n_routes = i + 1; /* counted first, so routecfg_free frees a partial rule */
        rc = parse_rule(&ld, config_node_at(seq, i), &cfg->routes[i]);
    }
    if (rc == 0)
        rc = check_partner_lists(&ld, root, seq != NULL);
    return rc;
}

static void
field_fini(bconfig_field_t *f)
{
    free(f->path);
}

void
routecfg_free(bconfig_t *cfg)
{
    for (size_t i = 0; i < cfg->n_routes; i++) {
        bconfig_route_t *r = &cfg->routes[i];
        field_fini(&r->when);
        field_fini(&r->to_field);
        field_fini(&r->by_field);
        for (size_t j = 0; j < r->n_when_values; j++)
            free(r->when_values[j].str);
        free(r->when_values);
        free(r->to);
        free(r->to_field_allow);
        for (size_t j = 0; j < r->n_by_map; j++)
            free(r->by_map[j].value.str);
        free(r->by_map);
    }
    free(cfg->routes);
    cfg->routes = NULL;
    cfg->n_routes = 0;
}

/* ---- reading a message ----------------------------------------------------- */

/* False when a field is not set in m: a oneof member of another case, or an explicit
 * proto3 `optional` scalar without its has_ flag. */
static bool
field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const char *base = (const char *)m;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
        f->type != PROTOBUF_C_TYPE_MESSAGE)
        return *(const protobuf_c_boolean *)(base + f->quantifier_offset) != 0;
    return true;
}

static uint64_t
read_number(const char *p, const ProtobufCFieldDescriptor *f)
{
    scalar_kind_t k = kind_of(f);
    if (k == K_BOOL)
        return *(const protobuf_c_boolean *)p != 0;
    if (info_of(f)->width == 8)
        return *(const uint64_t *)p;
    if (k == K_UNSIGNED)
        return *(const uint32_t *)p;
    return (uint64_t)(int64_t) * (const int32_t *)p;
}

void
routecfg_field_read(const ProtobufCMessage *body, const bconfig_field_t *f, const char **str,
                    uint64_t *num)
{
    const ProtobufCMessage *m = body;
    *str = "";
    *num = 0;
    for (size_t i = 0; i + 1 < f->depth && m != NULL; i++)
        m = field_present(m, f->chain[i])
                ? *(const ProtobufCMessage *const *)((const char *)m + f->chain[i]->offset)
                : NULL;
    const ProtobufCFieldDescriptor *last = last_field(f);
    if (m == NULL || !field_present(m, last))
        return;
    const char *p = (const char *)m + last->offset;
    if (last->type == PROTOBUF_C_TYPE_STRING) {
        const char *s = *(const char *const *)p;
        *str = s ? s : "";
    } else {
        *num = read_number(p, last);
    }
}

bool
routecfg_value_equal(const bconfig_field_t *f, const char *str, uint64_t num,
                     const bconfig_value_t *v)
{
    if (last_field(f)->type == PROTOBUF_C_TYPE_STRING)
        return v->str != NULL && strcmp(str, v->str) == 0;
    return num == v->num;
}
