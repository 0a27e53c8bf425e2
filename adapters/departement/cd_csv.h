/* cd_csv: the decoder of the Département's orientation decisions exported as CSV by its
 * RSA software, in the style of its other exports (import_beneficiaires.csv): `;`,
 * UTF-8 with or without BOM, French column labels where `*` marks the required ones,
 * columns found by label in any order, dates as YYYY-MM-DD, DD/MM/YYYY or DD-MM-YYYY.
 * One Orientation per row; a bad row is one record error (line and column, never the
 * value); a missing required column refuses the file. Columns: docs/formats/cd_csv.md.
 * No state. */
#ifndef PT_CD_CSV_H
#define PT_CD_CSV_H

#include "core/codec_ops.h"
#include "csv.h"

/* name "cd_orientation_csv", patterns "*.csv"; no state. */
extern const pt_codec_ops_t cd_csv_codec;

/* Decodes rows from r (borrowed), calling fn per record (core/codec_ops.h). */
int cd_csv_decode(csv_reader_t *r, pt_record_fn fn, void *ctx, pt_codec_outcome_t *outcome);

/* Normalises a date written YYYY-MM-DD, DD/MM/YYYY or DD-MM-YYYY into out (YYYY-MM-DD);
 * "" stays "". Returns false when it is none of these or not a real date. */
bool cd_csv_date(const char *in, char out[11]);

#endif
