/* nir: checks and normalises the French NIR (numéro d'inscription au répertoire,
 * "numéro de sécurité sociale"): 13 characters, optionally followed by the 2-digit
 * key 97 - (number mod 97), where Corsica's "2A"/"2B" count as 19/18. The NIR is
 * personal data: no function here ever puts the NIR, or a part that identifies the
 * person, into an error message. No state, no allocation. */
#ifndef PT_NIR_H
#define PT_NIR_H

#include <stdbool.h>

#include "err.h"

#define PT_NIR_LEN 13       /* the number without its key */
#define PT_NIR_KEY_LEN 2    /* the optional control key */
#define PT_NIR_NORM_SIZE 14 /* PT_NIR_LEN + NUL: size of nir_normalise's output */

/* Checks a NIR in its strict form: exactly 13 or 15 characters, no spaces, "2A"/"2B"
 * upper case. Accepted fields (documented in docs/validation.md):
 *   1      sex: 1, 2 (registered), 3, 4 (foreign-born, being registered), 7, 8 (temporary)
 *   2-3    year: 2 digits
 *   4-5    month: 01-12, or 20-42 / 50-99 (INSEE pseudo-months for unknown months)
 *   6-7    département: 2 digits, or "2A" / "2B" (Corsica)
 *   8-13   commune and order number: 6 digits
 *   14-15  optional key: 2 digits equal to 97 - (number mod 97)
 * Returns 0, or PT_EINVALID with err set to "<path>: <what is wrong>" (path NULL or ""
 * gives "nir"). */
int nir_validate(const char *nir, const char *path, pt_error_t *err);

/* nir_validate() without the error: true when nir is a valid strict NIR. */
bool nir_is_valid(const char *nir);

/* The key (1..97) of the first 13 characters of nir, which must already have the
 * shape checked by nir_validate(); PT_EINVALID when they do not. */
int nir_compute_key(const char *nir);

/* Normalises a NIR as people type it: drops spaces and dots, upper-cases "2a"/"2b",
 * validates the result (key included when present) and writes the 13-character form
 * without its key to out (NUL-terminated). This is the form the journal's person index
 * hashes. Returns 0, or PT_EINVALID (err set, out set to "") when the input is not a
 * NIR. */
int nir_normalise(const char *in, char out[PT_NIR_NORM_SIZE], pt_error_t *err);

#endif
