/* cnaf: the decoder of the CNAF/MSA "flux bénéficiaires RSA" (vrsb0801.xsd: root Racine,
 * no namespace, windows-1252 really decoded) into BeneficiaryEvent Envelopes for the
 * Département. Per InfosFoyerRSA (a household): one household event (NEW_CLAIM when the
 * file awaits its decision, FILE_STATE_CHANGED otherwise, with ETATDOSRSA and the closure
 * or suspension reason codes) about the claimant, and one DROITS_ET_DEVOIRS event per
 * person whose TOPPERSDRODEVORSA is 1 (the orientation trigger). A bad household (a NIR
 * whose key is wrong, a missing payer...) is one record error naming the element, never
 * the value; the other households go. The TransmissionFlux counts are checked and a
 * mismatch is reported as the outcome's warning, not trusted. Reads through xml_safe
 * (streaming: one household in memory). Mapping: docs/formats/cnaf.md. */
#ifndef PT_CNAF_H
#define PT_CNAF_H

#include "core/codec_ops.h"
#include "xml_safe.h"

#define PT_CNAF_MAX_PERSONS 30 /* persons of one household (PT_HOUSEHOLD_MAX) */

/* The codec's table of operations: name "cnaf_rsa", patterns "*.xml", no state. */
extern const pt_codec_ops_t cnaf_codec;

/* Decodes a whole flow read by x (borrowed), calling fn per record (core/codec_ops.h). */
int cnaf_decode(xml_safe_t *x, pt_record_fn fn, void *ctx, pt_codec_outcome_t *outcome);

#endif
