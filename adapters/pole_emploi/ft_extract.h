/* ft_extract: the decoder of France Travail's daily extract to the Département
 * (i03300c.j.extract_spie_carnet_..._principal.csv: 44 `;` columns, UTF-8 without BOM,
 * LF, no quoting, the literal NULL for an empty value, dates "YYYY-MM-DD 00:00:00.0").
 * One FollowUpEvent (kind SITUATION) per person: the accompaniment modality and the
 * référent. Columns are found by name; a bad row is one record error (line and column,
 * never the value); a missing column refuses the file. Mapping: docs/formats/ft_extract.md.
 * No state. */
#ifndef PT_FT_EXTRACT_H
#define PT_FT_EXTRACT_H

#include "core/codec_ops.h"
#include "csv.h"

/* name "ft_extract", patterns "*.csv"; no state. */
extern const pt_codec_ops_t ft_extract_codec;

/* Decodes rows from r (borrowed), calling fn per record (core/codec_ops.h). */
int ft_extract_decode(csv_reader_t *r, pt_record_fn fn, void *ctx, pt_codec_outcome_t *outcome);

#endif
