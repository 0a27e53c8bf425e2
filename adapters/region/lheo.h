/* lheo: the decoder of the Région's LHEO training catalogue (2.2, namespace
 * http://www.lheo.org/2.2, and 2.3, http://lheo.gouv.fr/2.3) into TrainingOffer
 * Envelopes, one per session (lheo > offres > formation > action > session), identified
 * by the numero attributes "<formation>/<action>/<session>", never by position. Reads
 * through xml_safe (streaming: memory holds one formation at a time), and publishes
 * through lheo_diff: UPSERT for a new or changed session, WITHDRAW for one absent from
 * the snapshot, nothing for an unchanged one. The mapping and policies are in
 * docs/formats/lheo.md. Owns nothing between calls. */
#ifndef PT_LHEO_H
#define PT_LHEO_H

#include <stddef.h>

#include "core/codec_ops.h"
#include "lheo_diff.h"
#include "xml_safe.h"

#define PT_LHEO_NS_22 "http://www.lheo.org/2.2"
#define PT_LHEO_NS_23 "http://lheo.gouv.fr/2.3"
#define PT_LHEO_MAX_SESSIONS 10000 /* sessions of one formation held at once */

/* The codec's table of operations: name "lheo", patterns "*.xml". cfg->state is the
 * lheo_store_t * of the adapter (NULL: every session is published, nothing withdrawn). */
extern const pt_codec_ops_t lheo_codec;

/* Decodes a whole catalogue read by x (borrowed) against store (NULL allowed), calling fn
 * per record (see core/codec_ops.h). On success (0) the store holds the new snapshot's
 * fingerprints; on a negative return (malformed, truncated, too large) the store is left
 * as it was and outcome->error says where. */
int lheo_decode(xml_safe_t *x, lheo_store_t *store, pt_record_fn fn, void *ctx,
                pt_codec_outcome_t *outcome);

#endif
