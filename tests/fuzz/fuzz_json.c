/* fuzz_json: arbitrary bytes through pjson_parse as a ptibus.v1.Envelope, and as a
 * ptibus.v1.Frame (which has the bytes, uint64 and int64 fields the Envelope lacks).
 * Whatever parses must print, the printed JSON must parse again to a message with the
 * same wire encoding, and printing that must give the same text (abort() otherwise). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "pjson.h"

#define FUZZ_MAX_JSON (64 * 1024)

static void
check(int ok)
{
    if (!ok)
        abort();
}

static void
check_same_wire(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    uint8_t *pa, *pb;
    size_t la, lb;
    pt_error_t err;
    check(codec_pack(a, SIZE_MAX, &pa, &la, &err) == 0);
    check(codec_pack(b, SIZE_MAX, &pb, &lb, &err) == 0);
    check(la == lb && memcmp(pa, pb, la) == 0);
    free(pa);
    free(pb);
}

static void
fuzz_type(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t size)
{
    ProtobufCMessage *m1, *m2;
    char *s1, *s2;
    pt_error_t err;
    if (pjson_parse(desc, (const char *)data, size, FUZZ_MAX_JSON, &m1, &err) != 0) {
        size_t n = strlen(err.path); /* "path: what", or "what" about the whole text */
        check(m1 == NULL && err.code != 0 && err.msg[0] != '\0');
        check(n == 0 || (strncmp(err.msg, err.path, n) == 0 && strncmp(err.msg + n, ": ", 2) == 0));
        return;
    }
    check(pjson_to_string(m1, &s1, &err) == 0);
    check(pjson_parse(desc, s1, strlen(s1), SIZE_MAX, &m2, &err) == 0);
    check_same_wire(m1, m2);
    check(pjson_to_string(m2, &s2, &err) == 0);
    check(strcmp(s1, s2) == 0);
    free(s1);
    free(s2);
    codec_free(&m1);
    codec_free(&m2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_type(&ptibus__v1__envelope__descriptor, data, size);
    fuzz_type(&ptibus__v1__frame__descriptor, data, size);
    return 0;
}
