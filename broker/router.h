/* router: decides at ingest who receives an accepted message, from the routes of the
 * configuration (compiled by bconfig/routecfg) and the message itself: fixed partners,
 * a partner named in a field, a partner chosen by a field's value, the subscribers of a
 * type, or the sender of the message it answers. docs/routing.md explains the model.
 * The router holds the rules indexed by message type; resolving never allocates. */
#ifndef PT_ROUTER_H
#define PT_ROUTER_H

#include <stddef.h>

#include "bconfig.h"
#include "err.h"
#include "ptibus/v1/envelope.pb-c.h"

typedef struct router router_t;

/* Builds the per-type tables from cfg->routes and the partners' subscribe lists. cfg is
 * borrowed and must outlive the router. Returns 0 or -ENOMEM. On success the caller
 * owns *out; free with router_destroy(). */
int router_new(const bconfig_t *cfg, router_t **out, pt_error_t *err);

/* Frees *r and sets it to NULL; accepts NULL. */
void router_destroy(router_t **r);

/* Looks up the sender (partner id) of the earlier accepted message a reply answers (for
 * to_correlated_sender), among the messages routed to the replier only:
 *   seq != 0: the RECEIVED record seq (the reply's correlation_seq, which the replier
 *             read in Deliver.seq), which must carry message_id when message_id is not
 *             empty;
 *   seq == 0: the RECEIVED record carrying message_id (the reply's correlation_id).
 * Returns 0 and fills sender (NUL-terminated, at most cap bytes); PT_ENOTFOUND when no
 * such message was routed to the replier; PT_EINVALID (seq 0 only) when messages of
 * more than one sender routed to the replier carry message_id (ids are chosen by each
 * sender and may collide: the reply is refused rather than guessed). Any other negative
 * code is a failure of the look-up itself. The broker implements it over the journal. */
typedef int (*router_lookup_fn)(void *arg, uint64_t seq, const char *message_id, char *sender,
                                size_t cap);

/* Resolves the recipients of an accepted, validated envelope from partner `sender`.
 * Fills out[] with partner ids (borrowed from the router's cfg), deduplicated, sorted
 * by strcmp, never the sender itself, and *n with their count (<= max). Every rule of
 * the message's type whose `when` holds contributes its recipients (union).
 *
 * Explicit envelope recipients (env->recipients) narrow the result: each must be among
 * the resolved recipients, and the result is then exactly those.
 *
 * Returns 0, or with err filled (err->path names the field in the JSON names partners
 * write, as validate's paths; err->msg is "path: what"):
 *   PT_EDENIED   "recipients[1]: ml_sud is not a recipient the routes allow for referral";
 *                "referral.targetOrg.partnerId: unknown partner \"xyz\"" (a to_field
 *                naming no configured partner);
 *                "referral.targetOrg.partnerId: \"caf\" is not a recipient this
 *                route allows for referral" (a to_field value outside its allow-list);
 *                "referral.targetOrg.partnerId: is empty: refused because targetOrg has
 *                no partnerId, ..." (an empty to_field contributes nothing, and nothing
 *                else gave a recipient: an organisation that is not on the bus);
 *                "correlationId: ..." (to_correlated_sender with neither correlation_id
 *                nor correlation_seq, no such message routed to the replier, or a sender
 *                no longer configured); "correlationSeq: ..." (the same, by seq);
 *                "referral: no route delivers this message" (no recipient at all).
 *   PT_ETOOLARGE "<type>: the routes give more than <max> recipients".
 *   PT_EINVALID  "envelope: the message has no body";
 *                "correlationId: ambiguous correlation id: ..." (lookup said so).
 *   another negative code returned by lookup (err path "correlationId").
 * lookup may be NULL: then every correlation is unknown. *n is 0 on error. */
int router_resolve(const router_t *r, const char *sender, const Ptibus__V1__Envelope *env,
                   router_lookup_fn lookup, void *arg, const char **out, size_t max, size_t *n,
                   pt_error_t *err);

#endif
