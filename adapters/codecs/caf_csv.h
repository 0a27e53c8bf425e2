/* caf_csv: the `;` CSV in which the CAF and the MSA back offices import the Département's
 * sanction decisions and orientations (one row per message, documented columns in
 * docs/formats/caf_csv.md, UTF-8 or windows-1252), and its decoder, so that what is
 * written reads back to the same messages (a tested round trip). Shared by the CAF and
 * the MSA adapters. No state. */
#ifndef PT_CAF_CSV_H
#define PT_CAF_CSV_H

#include "core/codec_ops.h"
#include "csv.h"

#define PT_CAF_CSV_COLUMNS 24

/* name "caf_csv", patterns "*.csv"; encode writes cfg->encoding ("UTF-8" by default or
 * "windows-1252"); decode reads the same encoding. */
extern const pt_codec_ops_t caf_csv_codec;

/* The column names, in order. */
extern const char *const caf_csv_header[PT_CAF_CSV_COLUMNS];

/* Decodes rows from r (borrowed), calling fn per record (core/codec_ops.h). */
int caf_csv_decode(csv_reader_t *r, pt_record_fn fn, void *ctx, pt_codec_outcome_t *outcome);

#endif
