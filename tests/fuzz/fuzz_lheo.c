/* fuzz_lheo: arbitrary bytes through the LHEO decoder (xml_safe underneath) twice against
 * one in-memory store. Every record must be an Envelope with a TrainingOffer that passes
 * validation, or an error with a message; a refused file must leave the store as it was
 * (abort() otherwise). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lheo.h"
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
    check(rec->env->body_case == PTIBUS__V1__ENVELOPE__BODY_TRAINING_OFFER);
    check(validate_training_offer(rec->env->training_offer, &err) == 0);
    return 0;
}

static void
run(const uint8_t *data, size_t size, lheo_store_t *store)
{
    xml_safe_t *x;
    pt_error_t err;
    pt_codec_outcome_t out;
    check(xml_safe_open_memory(&x, data, size, "fuzz", NULL, &err) == 0);
    size_t before = lheo_memstore_count(store);
    int rc = lheo_decode(x, store, on_record, NULL, &out);
    if (rc != 0) {
        check(out.error.msg[0] != '\0');
        check(lheo_memstore_count(store) == before);
    }
    xml_safe_close(&x);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lheo_store_t *store;
    check(lheo_memstore_new(&store) == 0);
    run(data, size, store);
    run(data, size, store);
    lheo_memstore_destroy(&store);
    return 0;
}
