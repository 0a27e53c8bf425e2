/* fuzz_frame: the broker's binary decoders of what arrives on its sockets: bytes ->
 * codec_unpack(Frame) and codec_unpack(AdminRequest), size-limited. Must never crash;
 * whatever decodes must re-encode and decode again to the same bytes (no field that
 * protobuf-c accepts but cannot write back, such as field number 0). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "ptibus/v1/admin.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
roundtrip(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t size)
{
    ProtobufCMessage *m, *again;
    pt_error_t err;
    uint8_t *buf, *buf2;
    size_t len, len2;
    if (codec_unpack(desc, data, size, 1 << 20, &m, &err) != 0)
        return;
    if (codec_pack(m, SIZE_MAX, &buf, &len, &err) != 0 ||
        codec_unpack(desc, buf, len, SIZE_MAX, &again, &err) != 0)
        abort();
    if (codec_pack(again, SIZE_MAX, &buf2, &len2, &err) != 0 || len2 != len ||
        memcmp(buf, buf2, len) != 0)
        abort();
    free(buf);
    free(buf2);
    codec_free(&again);
    codec_free(&m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    roundtrip(&ptibus__v1__frame__descriptor, data, size);
    roundtrip(&ptibus__v1__admin_request__descriptor, data, size);
    return 0;
}
