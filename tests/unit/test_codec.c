/* Unit tests of common/codec: size limits, malformed bytes, envelope type names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"

static void
test_roundtrip_and_type(void **state)
{
    (void)state;
    Ptibus__V1__Envelope env = PTIBUS__V1__ENVELOPE__INIT;
    Ptibus__V1__Sanction s = PTIBUS__V1__SANCTION__INIT;
    env.message_id = "m-1";
    s.sanction_id = "s-1";
    s.rate_percent = 50;
    env.body_case = PTIBUS__V1__ENVELOPE__BODY_SANCTION;
    env.sanction = &s;
    uint8_t *buf;
    size_t len;
    pt_error_t err;
    assert_int_equal(codec_pack(&env.base, 1024, &buf, &len, &err), 0);
    ProtobufCMessage *out;
    assert_int_equal(codec_unpack(&ptibus__v1__envelope__descriptor, buf, len, 1024, &out, &err),
                     0);
    Ptibus__V1__Envelope *e2 = (Ptibus__V1__Envelope *)out;
    assert_string_equal(e2->message_id, "m-1");
    assert_string_equal(codec_envelope_type(e2), "sanction");
    assert_int_equal(e2->sanction->rate_percent, 50);
    codec_free(&out);
    assert_null(out);
    free(buf);
}

static void
test_limits_and_garbage(void **state)
{
    (void)state;
    uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    ProtobufCMessage *out;
    pt_error_t err;
    assert_int_equal(
        codec_unpack(&ptibus__v1__envelope__descriptor, junk, sizeof junk, 4, &out, &err),
        PT_ETOOLARGE);
    assert_non_null(strstr(err.msg, "over the limit"));
    assert_int_equal(
        codec_unpack(&ptibus__v1__envelope__descriptor, junk, sizeof junk, 64, &out, &err),
        PT_EMALFORMED);
    assert_null(out);
    assert_non_null(strstr(err.msg, "ptibus.v1.Envelope"));
    /* Field number 0 on a two-byte tag, top level and nested in the sanction body. */
    const uint8_t zero[] = {0x82, 0x00, 0x00};
    assert_int_equal(
        codec_unpack(&ptibus__v1__envelope__descriptor, zero, sizeof zero, 64, &out, &err),
        PT_EMALFORMED);
    assert_non_null(strstr(err.msg, "field number 0"));
    const uint8_t nested[] = {0x7a, 0x03, 0x82, 0x00, 0x00};
    assert_int_equal(
        codec_unpack(&ptibus__v1__envelope__descriptor, nested, sizeof nested, 64, &out, &err),
        PT_EMALFORMED);
}

static void
test_type_table(void **state)
{
    (void)state;
    assert_int_equal(codec_envelope_type_count(), 9);
    assert_string_equal(codec_envelope_type_at(0), "orientation");
    assert_int_equal(codec_envelope_case("training_offer"),
                     PTIBUS__V1__ENVELOPE__BODY_TRAINING_OFFER);
    assert_int_equal(codec_envelope_case("message_id"), PTIBUS__V1__ENVELOPE__BODY__NOT_SET);
    assert_int_equal(codec_envelope_case("nope"), PTIBUS__V1__ENVELOPE__BODY__NOT_SET);
    assert_string_equal(pt_strerror(PT_EJOURNALFULL), "journal full");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_type),
        cmocka_unit_test(test_limits_and_garbage),
        cmocka_unit_test(test_type_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
