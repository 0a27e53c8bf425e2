/* fuzz_cnaf: arbitrary bytes through the CNAF RSA flow decoder (xml_safe underneath).
 * Every record must be a BeneficiaryEvent that passes validation or an error with a
 * message and a location; a refused file must say why (abort() otherwise). */
#include <stdint.h>
#include <stdlib.h>

#include "cnaf.h"
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
    check((rec->env == NULL) != (rec->error == NULL));
    if (rec->error != NULL) {
        check(rec->error->msg[0] != '\0');
        return 0;
    }
    pt_error_t err;
    check(rec->env->body_case == PTIBUS__V1__ENVELOPE__BODY_BENEFICIARY_EVENT);
    check(validate_beneficiary_event(rec->env->beneficiary_event, &err) == 0);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    xml_safe_t *x;
    pt_error_t err;
    pt_codec_outcome_t out;
    check(xml_safe_open_memory(&x, data, size, "fuzz", NULL, &err) == 0);
    if (cnaf_decode(x, on_record, NULL, &out) != 0)
        check(out.error.msg[0] != '\0');
    xml_safe_close(&x);
    return 0;
}
