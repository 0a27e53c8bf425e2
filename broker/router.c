/* router: per-type tables of compiled rules and subscribers, built once; resolution
 * walks the rules of the message's type into the caller's array. Every partner id it
 * hands out is borrowed from the configuration, so duplicates are found by pointer. */
#include "router.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pjson.h"
#include "routecfg.h"

/* The rules and subscribers of one message type (one body case). */
typedef struct type_routes {
    const char *type;   /* body case name; NULL for a number that is not a body case */
    size_t body_offset; /* of the body pointer in Ptibus__V1__Envelope */
    const bconfig_route_t **rules;
    size_t n_rules;
    const char **subscribers; /* partner ids, in configuration order */
    size_t n_subscribers;
} type_routes_t;

struct router {
    const bconfig_t *cfg;
    type_routes_t *types; /* indexed by body case */
    size_t n_types;
    const bconfig_route_t **rules; /* storage of every type's rules slice */
    const char **subscribers;      /* storage of every type's subscribers slice */
};

/* The recipients being gathered into the caller's array. */
typedef struct acc {
    const char **out;
    size_t max, n;
    const char *sender;
    bool overflow;
    const char *empty_to_field; /* the first to_field found empty, for the refusal */
} acc_t;

void
router_destroy(router_t **r)
{
    if (r == NULL || *r == NULL)
        return;
    free((*r)->types);
    free((*r)->rules);
    free((*r)->subscribers);
    free(*r);
    *r = NULL;
}

/* One entry per body case number, from the Envelope descriptor's oneof fields. */
static int
types_init(router_t *r)
{
    const ProtobufCMessageDescriptor *d = &ptibus__v1__envelope__descriptor;
    for (unsigned i = 0; i < d->n_fields; i++)
        if ((d->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && d->fields[i].id >= r->n_types)
            r->n_types = d->fields[i].id + 1;
    if ((r->types = calloc(r->n_types, sizeof *r->types)) == NULL)
        return -ENOMEM;
    for (unsigned i = 0; i < d->n_fields; i++) {
        if (!(d->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            continue;
        r->types[d->fields[i].id].type = d->fields[i].name;
        r->types[d->fields[i].id].body_offset = d->fields[i].offset;
    }
    return 0;
}

/* Gives each type its slice of the rules (file order) and of the subscribers. */
static int
tables_fill(router_t *r)
{
    const bconfig_t *cfg = r->cfg;
    size_t n_subs = 0, used_rules = 0, used_subs = 0;
    for (size_t i = 0; i < cfg->n_partners; i++)
        n_subs += cfg->partners[i].n_subscribe;
    r->rules = calloc(cfg->n_routes ? cfg->n_routes : 1, sizeof *r->rules);
    r->subscribers = calloc(n_subs ? n_subs : 1, sizeof *r->subscribers);
    if (r->rules == NULL || r->subscribers == NULL)
        return -ENOMEM;
    for (size_t c = 0; c < r->n_types; c++) {
        type_routes_t *t = &r->types[c];
        if (t->type == NULL)
            continue;
        t->rules = r->rules + used_rules;
        for (size_t i = 0; i < cfg->n_routes; i++)
            if ((size_t)cfg->routes[i].body == c)
                t->rules[t->n_rules++] = &cfg->routes[i];
        used_rules += t->n_rules;
        t->subscribers = r->subscribers + used_subs;
        for (size_t i = 0; i < cfg->n_partners; i++)
            if (bconfig_subscribes(&cfg->partners[i], t->type))
                t->subscribers[t->n_subscribers++] = cfg->partners[i].id;
        used_subs += t->n_subscribers;
    }
    return 0;
}

int
router_new(const bconfig_t *cfg, router_t **out, pt_error_t *err)
{
    router_t *r = calloc(1, sizeof *r);
    int rc = r ? 0 : -ENOMEM;
    if (rc == 0) {
        r->cfg = cfg;
        rc = types_init(r);
    }
    if (rc == 0)
        rc = tables_fill(r);
    if (rc != 0) {
        router_destroy(&r);
        return pt_error_set(err, rc, "router", "out of memory");
    }
    *out = r;
    return 0;
}

/* ---- resolution ------------------------------------------------------------ */

static void
acc_add(acc_t *a, const char *id)
{
    if (strcmp(id, a->sender) == 0)
        return;
    for (size_t i = 0; i < a->n; i++)
        if (a->out[i] == id)
            return;
    if (a->n == a->max) {
        a->overflow = true;
        return;
    }
    a->out[a->n++] = id;
}

static bool
rule_applies(const bconfig_route_t *rule, const ProtobufCMessage *body)
{
    const char *str;
    uint64_t num;
    if (rule->when.depth == 0)
        return true;
    routecfg_field_read(body, &rule->when, &str, &num);
    for (size_t i = 0; i < rule->n_when_values; i++)
        if (routecfg_value_equal(&rule->when, str, num, &rule->when_values[i]))
            return true;
    return false;
}

/* The partner named in the rule's to_field, which must be in its allow-list (purpose
 * limitation: a sender may not address a message to any partner it likes). */
static int
add_to_field(const router_t *r, const char *type, const bconfig_route_t *rule,
             const ProtobufCMessage *body, acc_t *a, pt_error_t *err)
{
    const char *id;
    uint64_t unused;
    routecfg_field_read(body, &rule->to_field, &id, &unused);
    if (id[0] == '\0') {
        if (a->empty_to_field == NULL)
            a->empty_to_field = rule->to_field.path;
        return 0;
    }
    const bconfig_partner_t *p = bconfig_partner_by_id(r->cfg, id);
    if (p == NULL)
        return pt_error_set(err, PT_EDENIED, rule->to_field.path, "unknown partner \"%.32s\"", id);
    for (size_t i = 0; i < rule->n_to_field_allow; i++)
        if (r->cfg->partners[rule->to_field_allow[i]].id == p->id) {
            acc_add(a, p->id);
            return 0;
        }
    return pt_error_set(err, PT_EDENIED, rule->to_field.path,
                        "\"%s\" is not a recipient this route allows for %s", p->id, type);
}

static void
add_by_field(const router_t *r, const bconfig_route_t *rule, const ProtobufCMessage *body, acc_t *a)
{
    const char *str;
    uint64_t num;
    routecfg_field_read(body, &rule->by_field, &str, &num);
    for (size_t i = 0; i < rule->n_by_map; i++)
        if (routecfg_value_equal(&rule->by_field, str, num, &rule->by_map[i].value))
            acc_add(a, r->cfg->partners[rule->by_map[i].partner].id);
}

/* Refusal of a correlation the look-up did not resolve (rc != 0). The same words for a
 * seq that does not exist and one routed to another partner: no oracle of other
 * partners' traffic. */
static int
correlation_error(int rc, uint64_t seq, pt_error_t *err)
{
    const char *path = seq != 0 ? "correlation_seq" : "correlation_id";
    if (rc == PT_ENOTFOUND && seq != 0)
        return pt_error_set(err, PT_EDENIED, path,
                            "no accepted message with this seq (and correlationId, when set) "
                            "was routed to you");
    if (rc == PT_ENOTFOUND)
        return pt_error_set(err, PT_EDENIED, path, "no accepted message has this messageId");
    if (rc == PT_EINVALID && seq == 0)
        return pt_error_set(err, PT_EINVALID, path,
                            "ambiguous correlation id: messages of several senders routed to you "
                            "have this messageId; set correlationSeq to the Deliver's seq");
    return pt_error_set(err, rc, path, "cannot look up the message it answers: %s",
                        pt_strerror(rc));
}

static int
add_correlated(const router_t *r, const char *type, const Ptibus__V1__Envelope *env,
               router_lookup_fn lookup, void *arg, acc_t *a, pt_error_t *err)
{
    char sender[PT_PARTNER_ID_MAX + 1];
    const char *cid = env->correlation_id ? env->correlation_id : "";
    uint64_t seq = env->correlation_seq;
    if (cid[0] == '\0' && seq == 0)
        return pt_error_set(err, PT_EDENIED, "correlation_id",
                            "is empty; a %s goes back to the sender of the message it answers",
                            type);
    int rc = lookup ? lookup(arg, seq, cid, sender, sizeof sender) : PT_ENOTFOUND;
    sender[sizeof sender - 1] = '\0';
    if (rc != 0)
        return correlation_error(rc, seq, err);
    const bconfig_partner_t *p = bconfig_partner_by_id(r->cfg, sender);
    if (p == NULL)
        return pt_error_set(err, PT_EDENIED, seq != 0 ? "correlation_seq" : "correlation_id",
                            "the sender of the message it answers, \"%s\", is not a partner",
                            sender);
    acc_add(a, p->id);
    return 0;
}

static int
rule_apply(const router_t *r, const type_routes_t *t, const bconfig_route_t *rule,
           const Ptibus__V1__Envelope *env, const ProtobufCMessage *body, router_lookup_fn lookup,
           void *arg, acc_t *a, pt_error_t *err)
{
    int rc = 0;
    for (size_t i = 0; i < rule->n_to; i++)
        acc_add(a, r->cfg->partners[rule->to[i]].id);
    if (rule->to_field.depth > 0)
        rc = add_to_field(r, t->type, rule, body, a, err);
    if (rc == 0 && rule->by_field.depth > 0)
        add_by_field(r, rule, body, a);
    for (size_t i = 0; rc == 0 && rule->to_subscribers && i < t->n_subscribers; i++)
        acc_add(a, t->subscribers[i]);
    if (rc == 0 && rule->to_correlated_sender)
        rc = add_correlated(r, t->type, env, lookup, arg, a, err);
    return rc;
}

/* Keeps only the explicit recipients, each of which must have been resolved. */
static int
narrow(const Ptibus__V1__Envelope *env, const char *type, acc_t *a, pt_error_t *err)
{
    for (size_t i = 0; i < env->n_recipients; i++) {
        size_t j = 0;
        while (j < a->n && strcmp(a->out[j], env->recipients[i]) != 0)
            j++;
        if (j == a->n) {
            char path[48];
            snprintf(path, sizeof path, "recipients[%zu]", i);
            return pt_error_set(err, PT_EDENIED, path,
                                "%.32s is not a recipient the routes allow for %s",
                                env->recipients[i], type);
        }
    }
    size_t keep = 0;
    for (size_t j = 0; j < a->n; j++)
        for (size_t i = 0; i < env->n_recipients; i++)
            if (strcmp(a->out[j], env->recipients[i]) == 0) {
                a->out[keep++] = a->out[j];
                break;
            }
    a->n = keep;
    return 0;
}

/* No recipient, and a to_field was empty: say which field should have named a partner
 * (a referral to an organisation that is not on the bus has no partner id). */
static int
empty_to_field_error(const char *path, pt_error_t *err)
{
    char json[PT_ERROR_PATH_MAX];
    pjson_path_from_proto(path, json, sizeof json);
    char *leaf = strrchr(json, '.');
    if (leaf == NULL)
        return pt_error_set(err, PT_EDENIED, path, "is empty, and no route delivers this message");
    *leaf++ = '\0';
    const char *parent = strrchr(json, '.') ? strrchr(json, '.') + 1 : json;
    return pt_error_set(err, PT_EDENIED, path,
                        "is empty: refused because %s has no %s, and no other route delivers "
                        "this message (an organisation that is not on the bus cannot receive it)",
                        parent, leaf);
}

static void
sort_ids(const char **v, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        const char *x = v[i];
        size_t j = i;
        for (; j > 0 && strcmp(v[j - 1], x) > 0; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
}

int
router_resolve(const router_t *r, const char *sender, const Ptibus__V1__Envelope *env,
               router_lookup_fn lookup, void *arg, const char **out, size_t max, size_t *n,
               pt_error_t *err)
{
    acc_t a = {.out = out, .max = max, .sender = sender};
    size_t c = (size_t)env->body_case;
    *n = 0;
    if (c >= r->n_types || r->types[c].type == NULL)
        return pt_error_set(err, PT_EINVALID, "envelope", "the message has no body");
    const type_routes_t *t = &r->types[c];
    const ProtobufCMessage *body =
        *(const ProtobufCMessage *const *)((const char *)env + t->body_offset);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < t->n_rules; i++)
        if (rule_applies(t->rules[i], body))
            rc = rule_apply(r, t, t->rules[i], env, body, lookup, arg, &a, err);
    if (rc == 0 && a.overflow)
        rc = pt_error_set(err, PT_ETOOLARGE, t->type, "the routes give more than %zu recipients",
                          max);
    if (rc == 0 && env->n_recipients > 0)
        rc = narrow(env, t->type, &a, err);
    if (rc == 0 && a.n == 0 && a.empty_to_field != NULL)
        rc = empty_to_field_error(a.empty_to_field, err);
    else if (rc == 0 && a.n == 0)
        rc = pt_error_set(err, PT_EDENIED, t->type, "no route delivers this message");
    if (rc != 0) {
        pjson_error_json_path(err);
        return rc;
    }
    sort_ids(out, a.n);
    *n = a.n;
    return 0;
}
