/* routecfg: the routing part of the broker configuration. Compiles the top-level
 * `routes:` list into bconfig_route_t rules (field paths checked against the protobuf-c
 * descriptors, constants parsed by the field's type, partner ids turned into indexes),
 * cross-checks the partners' `subscribe:` and `may_send:` lists against the rules, and
 * reads a compiled field's value out of a decoded message for broker/router. */
#ifndef PT_ROUTECFG_H
#define PT_ROUTECFG_H

#include <stdbool.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "bconfig.h"
#include "config.h"
#include "err.h"

/* Parses root's `routes:` (optional) into cfg->routes; cfg->partners must be loaded.
 * Then checks that every subscription has a route with to_subscribers and, when
 * `routes:` is present, that every type a partner may send has at least one rule.
 * Returns 0, -ENOMEM or PT_ECONFIG with err "FILE:LINE: KEY: what is wrong". What was
 * stored before an error is freed by routecfg_free (bconfig_destroy calls it). */
int routecfg_parse(const config_t *doc, const config_node_t *root, bconfig_t *cfg, pt_error_t *err);

/* Frees cfg->routes and everything they own; leaves cfg->routes NULL. */
void routecfg_free(bconfig_t *cfg);

/* The value of field f in body (a message of the rule's type): *str for string fields
 * (borrowed from body, "" when unset), *num for the others (0 when unset). A missing
 * message on the way reads as the default value. Never allocates. */
void routecfg_field_read(const ProtobufCMessage *body, const bconfig_field_t *f, const char **str,
                         uint64_t *num);

/* True when a value read from field f equals the constant v. */
bool routecfg_value_equal(const bconfig_field_t *f, const char *str, uint64_t num,
                          const bconfig_value_t *v);

#endif
