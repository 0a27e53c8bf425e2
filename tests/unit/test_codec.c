/* Unit tests of libptibus/codec: size limits, malformed bytes, envelope type names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "samples.h"
#include "validate.h"

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

/* ---- unknown fields and element counts, refused before unpacking ---- */

/* A growing buffer of wire bytes for hand-made encodings. */
typedef struct wbuf {
    uint8_t b[200 * 1024];
    size_t n;
} wbuf_t;

static void
put_varint(wbuf_t *w, uint64_t v)
{
    do {
        w->b[w->n++] = (uint8_t)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        v >>= 7;
    } while (v);
}

static void
put_bytes(wbuf_t *w, uint32_t field, const void *data, size_t len)
{
    put_varint(w, (uint64_t)field << 3 | 2);
    put_varint(w, len);
    memcpy(w->b + w->n, data, len);
    w->n += len;
}

static void
put_packed(wbuf_t *w, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    assert_true(w->n + len <= sizeof w->b);
    w->n += protobuf_c_message_pack(m, w->b + w->n);
}

/* A NIR-shaped string: what a sender could hide from the validator and the person index. */
static const char hidden_nir[] = "184127645108946";

static int
unpack_env(const wbuf_t *w, pt_error_t *err)
{
    ProtobufCMessage *out = (ProtobufCMessage *)1;
    int rc = codec_unpack(&ptibus__v1__envelope__descriptor, w->b, w->n, sizeof w->b, &out, err);
    if (rc == 0)
        codec_free(&out);
    else
        assert_null(out);
    return rc;
}

static void
test_unknown_field_in_envelope(void **state)
{
    (void)state;
    static td_sample_t s;
    static wbuf_t w;
    pt_error_t err;
    td_sample_sanction(&s, "m-unknown", PTIBUS__V1__PAYER__PAYER_CAF);
    w.n = 0;
    put_packed(&w, &s.env.base);
    assert_int_equal(unpack_env(&w, &err), 0);
    put_bytes(&w, 99, hidden_nir, strlen(hidden_nir));
    assert_int_equal(unpack_env(&w, &err), PT_EINVALID);
    assert_string_equal(err.path, "#99");
    assert_non_null(strstr(err.msg, "unknown field number 99 of ptibus.v1.Envelope"));
    assert_null(strstr(err.msg, hidden_nir));
    /* The lenient variant (frames from the broker) keeps and ignores it. */
    ProtobufCMessage *out;
    assert_int_equal(
        codec_unpack_lenient(&ptibus__v1__envelope__descriptor, w.b, w.n, sizeof w.b, &out, &err),
        0);
    codec_free(&out);
}

static void
test_unknown_field_in_person(void **state)
{
    (void)state;
    static td_sample_t s;
    static wbuf_t person, referral, env;
    pt_error_t err;
    td_sample_referral(&s, "m-person", "pole_emploi");
    /* referral.person (field 2) with a NIR in field 99, which PersonRef does not have. */
    person.n = referral.n = env.n = 0;
    s.person.nir = "";
    s.person.departement_id = "d-1";
    put_packed(&person, &s.person.base);
    put_bytes(&person, 99, hidden_nir, strlen(hidden_nir));
    s.referral.person = NULL;
    put_packed(&referral, &s.referral.base);
    put_bytes(&referral, 2, person.b, person.n);
    s.env.referral = NULL;
    s.env.body_case = PTIBUS__V1__ENVELOPE__BODY__NOT_SET;
    put_packed(&env, &s.env.base);
    put_bytes(&env, PTIBUS__V1__ENVELOPE__BODY_REFERRAL, referral.b, referral.n);
    assert_int_equal(unpack_env(&env, &err), PT_EINVALID);
    assert_string_equal(err.path, "referral.person.#99");
    assert_non_null(strstr(err.msg, "unknown field number 99 of ptibus.v1.PersonRef"));
    assert_null(strstr(err.msg, hidden_nir));
}

static void
test_reserved_field(void **state)
{
    (void)state;
    static td_sample_t s;
    static wbuf_t w;
    static uint8_t blob[100 * 1000];
    pt_error_t err;
    td_sample_sanction(&s, "m-reserved", PTIBUS__V1__PAYER__PAYER_CAF);
    memset(blob, 'x', sizeof blob);
    w.n = 0;
    put_packed(&w, &s.env.base);
    put_bytes(&w, 8, blob, sizeof blob); /* reserved 8 and 9 (7 is correlation_seq) */
    assert_int_equal(unpack_env(&w, &err), PT_EINVALID);
    assert_string_equal(err.path, "#8");
}

static void
test_repeated_counts(void **state)
{
    (void)state;
    static td_sample_t s;
    static wbuf_t w;
    pt_error_t err;
    td_sample_sanction(&s, "m-count", PTIBUS__V1__PAYER__PAYER_CAF);
    w.n = 0;
    put_packed(&w, &s.env.base);
    for (int i = 0; i < PT_RECIPIENTS_MAX; i++)
        put_bytes(&w, 4, "caf", 3);
    assert_int_equal(unpack_env(&w, &err), 0);
    put_bytes(&w, 4, "caf", 3);
    assert_int_equal(unpack_env(&w, &err), PT_EINVALID);
    assert_string_equal(err.path, "recipients");
    assert_non_null(strstr(err.msg, "more than 32 elements (field 4)"));
    /* A flood of empty elements, the cheapest to send, stops at the first one over. */
    w.n = 0;
    put_packed(&w, &s.env.base);
    while (w.n + 2 < sizeof w.b)
        put_bytes(&w, 4, "", 0);
    assert_int_equal(unpack_env(&w, &err), PT_EINVALID);
    assert_string_equal(err.path, "recipients");
}

static void
test_nested_counts_and_duplicates(void **state)
{
    (void)state;
    static td_sample_t s;
    static wbuf_t offer, env;
    pt_error_t err;
    td_sample_training_offer(&s, "m-offer");
    offer.n = env.n = 0;
    put_packed(&offer, &s.offer.base);
    for (int i = 0; i < PT_CODES_MAX + 1; i++)
        put_bytes(&offer, 8, "22254", 5); /* formacode */
    s.env.body_case = PTIBUS__V1__ENVELOPE__BODY__NOT_SET;
    s.env.training_offer = NULL;
    put_packed(&env, &s.env.base);
    put_bytes(&env, PTIBUS__V1__ENVELOPE__BODY_TRAINING_OFFER, offer.b, offer.n);
    assert_int_equal(unpack_env(&env, &err), PT_EINVALID);
    assert_string_equal(err.path, "training_offer.formacode");
    assert_non_null(strstr(err.msg, "(field 8)"));
    /* A singular field twice would be merged by protobuf-c: refused. */
    env.n = 0;
    td_sample_sanction(&s, "m-twice", PTIBUS__V1__PAYER__PAYER_CAF);
    put_packed(&env, &s.env.base);
    put_bytes(&env, 1, "m-twice", 7);
    assert_int_equal(unpack_env(&env, &err), PT_EINVALID);
    assert_string_equal(err.path, "message_id");
    assert_non_null(strstr(err.msg, "more than once (field 1)"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_type),
        cmocka_unit_test(test_limits_and_garbage),
        cmocka_unit_test(test_type_table),
        cmocka_unit_test(test_unknown_field_in_envelope),
        cmocka_unit_test(test_unknown_field_in_person),
        cmocka_unit_test(test_reserved_field),
        cmocka_unit_test(test_repeated_counts),
        cmocka_unit_test(test_nested_counts_and_duplicates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
