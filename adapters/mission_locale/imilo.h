/* imilo: the Missions Locales' i-milo-like JSON (docs/formats/imilo.md). Decoder: a file
 * of young people's dossiers with their prescriptions (→ Referral, one per prescription)
 * and of returns on referrals the Mission Locale received (→ ReferralStatus). Encoder:
 * ReferralStatus Envelopes (the statuses sent back about its prescriptions) in the same
 * "retours" form, so that encode → decode round-trips. JSON is read by jansson with
 * duplicate keys refused, a depth limit, integers out of range refused, invalid UTF-8
 * refused with its offset, a UTF-8 BOM accepted; errors name the JSON path, never the
 * value. No state. */
#ifndef PT_IMILO_H
#define PT_IMILO_H

#include <stddef.h>

#include "core/codec_ops.h"

#define PT_IMILO_MAX_FILE (16 * 1024 * 1024) /* bytes of one file */
#define PT_IMILO_MAX_DEPTH 16                /* nesting of arrays and objects */

/* name "imilo", patterns "*.json"; no state. */
extern const pt_codec_ops_t imilo_codec;

/* Decodes len bytes of JSON, calling fn per record (core/codec_ops.h). */
int imilo_decode(const char *buf, size_t len, pt_record_fn fn, void *ctx,
                 pt_codec_outcome_t *outcome);

#endif
