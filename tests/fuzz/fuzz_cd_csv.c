/* fuzz_cd_csv: arbitrary bytes through the Département orientation CSV decoder. Every record
 * must be an Orientation that passes validation, or an error that
 * starts with its line (abort() otherwise). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cd_csv.h"
#include "validate.h"

static void
check(int ok)
{
    if (!ok)
        abort();
}

static int
on_record(void *ctx, const pt_record_t *rec)
{
    (void)ctx;
    pt_error_t err;
    check((rec->env == NULL) != (rec->error == NULL));
    if (rec->error != NULL) {
        check(strncmp(rec->error->msg, "line ", 5) == 0);
        return 0;
    }
    check(rec->env->body_case == PTIBUS__V1__ENVELOPE__BODY_ORIENTATION &&
          validate_orientation(rec->env->orientation, &err) == 0);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    csv_options_t o = {.max_field = 4096, .max_fields = 64};
    csv_reader_t *r;
    pt_codec_outcome_t out;
    check(csv_open_memory(&r, data, size, &o) == 0);
    if (cd_csv_decode(r, on_record, NULL, &out) != 0)
        check(strncmp(out.error.msg, "line ", 5) == 0);
    csv_close(&r);
    return 0;
}
