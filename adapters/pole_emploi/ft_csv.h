/* ft_csv: the decoder of France Travail's legacy `;` CSV flow to the Département, header
 * nir;identifiant;nom;prenom;date_naissance;date;code;motif (UTF-8 with or without BOM,
 * LF or CRLF, RFC 4180 quotes, dates DD/MM/YYYY). Code PSA becomes a Sanction proposal;
 * ACC, INS, REP and RAD become FollowUpEvents. Each bad row is one record error naming
 * its line and column, never the value; the other rows go. A wrong header, an
 * unterminated quote or bad UTF-8 refuses the file. Mapping and policies:
 * docs/formats/ft_csv.md. No state. */
#ifndef PT_FT_CSV_H
#define PT_FT_CSV_H

#include "core/codec_ops.h"
#include "csv.h"

#define PT_FT_CSV_COLUMNS 8

/* name "ft_csv", patterns "*.csv"; no state. */
extern const pt_codec_ops_t ft_csv_codec;

/* Decodes rows from r (borrowed), calling fn per record (core/codec_ops.h). */
int ft_csv_decode(csv_reader_t *r, pt_record_fn fn, void *ctx, pt_codec_outcome_t *outcome);

#endif
