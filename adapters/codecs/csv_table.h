/* csv_table: what every CSV codec shares on top of the reader (csv.h): a header row,
 * then one call per data row, with the file's outcome filled the same way everywhere
 * (an empty file, a header the codec refuses, a read error with its line); and running
 * such a decoder on a codec source (the file descriptor the runtime hands over). */
#ifndef PT_CSV_TABLE_H
#define PT_CSV_TABLE_H

#include "core/codec_ops.h"
#include "csv.h"

/* Maps the header row's columns into ctx; 0, or a negative code with out->error filled
 * (line and message, never a value). */
typedef int (*csv_table_header_fn)(void *ctx, const csv_row_t *row, pt_codec_outcome_t *out);

/* Handles one data row; a negative return stops the file with that code. */
typedef int (*csv_table_row_fn)(void *ctx, const csv_row_t *row);

/* Reads r to its end: the header, then every row. Clears out first. Returns 0 at the end
 * of the file, else the first error (out->error says where when the reader failed). */
int csv_table_decode(csv_reader_t *r, csv_table_header_fn header, csv_table_row_fn row, void *ctx,
                     pt_codec_outcome_t *out);

/* A reader-level decoder (the ones the codecs export for tests and fuzzers). */
typedef int (*csv_table_decoder_fn)(csv_reader_t *r, pt_record_fn fn, void *ctx,
                                    pt_codec_outcome_t *out);

/* Opens a reader on src's file descriptor with o (NULL: UTF-8, ';'), runs decode, closes
 * the reader. Returns decode's result, or the reader's error. */
int csv_table_run(const pt_codec_source_t *src, const csv_options_t *o, csv_table_decoder_fn decode,
                  pt_record_fn fn, void *ctx, pt_codec_outcome_t *out);

#endif
