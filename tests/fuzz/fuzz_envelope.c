/* fuzz_envelope: bytes -> codec_unpack(Envelope, size-limited) -> validate_envelope.
 * Must never crash. Also checks the validator's promises: it returns 0 or PT_EINVALID;
 * an error has a path that prefixes its message; a valid envelope stays valid after a
 * pack/unpack round trip; a valid person's NIR normalises. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "nir.h"
#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_error_shape(int rc, const pt_error_t *err)
{
    size_t n = strlen(err->path);
    if (rc != PT_EINVALID || err->code != PT_EINVALID || n == 0 ||
        strncmp(err->msg, err->path, n) != 0 || strncmp(err->msg + n, ": ", 2) != 0)
        abort();
}

static void
check_valid_roundtrip(const Ptibus__V1__Envelope *env)
{
    pt_error_t err;
    uint8_t *buf;
    size_t len;
    if (codec_pack(&env->base, PT_MAX_MESSAGE_SIZE, &buf, &len, &err) != 0)
        abort();
    ProtobufCMessage *again;
    if (codec_unpack(&ptibus__v1__envelope__descriptor, buf, len, PT_MAX_MESSAGE_SIZE, &again,
                     &err) != 0 ||
        validate_envelope((const Ptibus__V1__Envelope *)again, &err) != 0)
        abort();
    codec_free(&again);
    free(buf);
    const Ptibus__V1__PersonRef *p = validate_envelope_person(env);
    char nir[PT_NIR_NORM_SIZE];
    if (p != NULL && p->nir[0] != '\0' && nir_normalise(p->nir, nir, &err) != 0)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ProtobufCMessage *m;
    pt_error_t err;
    if (codec_unpack(&ptibus__v1__envelope__descriptor, data, size, PT_MAX_MESSAGE_SIZE, &m,
                     &err) != 0)
        return 0;
    const Ptibus__V1__Envelope *env = (const Ptibus__V1__Envelope *)m;
    int rc = validate_envelope(env, &err);
    if (rc != 0)
        check_error_shape(rc, &err);
    else
        check_valid_roundtrip(env);
    codec_free(&m);
    return 0;
}
