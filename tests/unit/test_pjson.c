/* Unit tests of libptibus/pjson: canonical round trips of every ptibus.v1 family and
 * field kind, exact output of hand-built messages, and rejections with their path.
 * A hand-written descriptor (test.Kinds) covers the kinds the contract does not use
 * (float, double, signed and fixed integers, proto3 optional, recursion). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "codec.h"
#include "pjson.h"

#define MAX_JSON (64 * 1024)
#define ENV (&ptibus__v1__envelope__descriptor)
#define FRAME (&ptibus__v1__frame__descriptor)

/* ---- test.Kinds: a hand-written protobuf-c descriptor ---- */

typedef struct Kinds Kinds;
struct Kinds {
    ProtobufCMessage base;
    int32_t i32;
    int64_t sint64;
    uint32_t fix32;
    float flt;
    double dbl;
    size_t n_rep_int64;
    int64_t *rep_int64;
    protobuf_c_boolean has_opt_int32;
    int32_t opt_int32;
    Kinds *child;
    size_t n_rep_bytes;
    ProtobufCBinaryData *rep_bytes;
    size_t n_rep_double;
    double *rep_double;
};

static const ProtobufCMessageDescriptor kinds_descriptor;

static void
kinds_init(ProtobufCMessage *m)
{
    memset(m, 0, sizeof(Kinds));
    m->descriptor = &kinds_descriptor;
}

#define KF(name, id, label, type, q, desc)                                                         \
    {                                                                                              \
#name, id, PROTOBUF_C_LABEL_##label, PROTOBUF_C_TYPE_##type, q, offsetof(Kinds, name),     \
            desc, NULL, 0, 0, NULL, NULL                                                           \
    }
static const ProtobufCFieldDescriptor kinds_fields[] = {
    KF(i32, 1, NONE, INT32, 0, NULL),
    KF(sint64, 2, NONE, SINT64, 0, NULL),
    KF(fix32, 3, NONE, FIXED32, 0, NULL),
    KF(flt, 4, NONE, FLOAT, 0, NULL),
    KF(dbl, 5, NONE, DOUBLE, 0, NULL),
    KF(rep_int64, 6, REPEATED, INT64, offsetof(Kinds, n_rep_int64), NULL),
    KF(opt_int32, 7, OPTIONAL, INT32, offsetof(Kinds, has_opt_int32), NULL),
    KF(child, 8, NONE, MESSAGE, 0, &kinds_descriptor),
    KF(rep_bytes, 9, REPEATED, BYTES, offsetof(Kinds, n_rep_bytes), NULL),
    KF(rep_double, 10, REPEATED, DOUBLE, offsetof(Kinds, n_rep_double), NULL),
};
static const unsigned kinds_by_name[] = {7, 4, 2, 3, 0, 6, 8, 9, 5, 1};
static const ProtobufCIntRange kinds_ranges[] = {{1, 0}, {0, 10}};
static const ProtobufCMessageDescriptor kinds_descriptor = {PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
                                                            "test.Kinds",
                                                            "Kinds",
                                                            "Kinds",
                                                            "test",
                                                            sizeof(Kinds),
                                                            10,
                                                            kinds_fields,
                                                            kinds_by_name,
                                                            1,
                                                            kinds_ranges,
                                                            kinds_init,
                                                            NULL,
                                                            NULL,
                                                            NULL};

/* ---- helpers ---- */

static ProtobufCMessage *
parse_ok(const ProtobufCMessageDescriptor *desc, const char *text)
{
    ProtobufCMessage *m = NULL;
    pt_error_t err;
    int rc = pjson_parse(desc, text, strlen(text), MAX_JSON, &m, &err);
    if (rc != 0)
        fail_msg("parse of %s failed: %s", text, err.msg);
    return m;
}

static char *
emit_ok(const ProtobufCMessage *m)
{
    char *s = NULL;
    pt_error_t err;
    int rc = pjson_to_string(m, &s, &err);
    if (rc != 0)
        fail_msg("emit failed: %s", err.msg);
    return s;
}

static void
assert_same_json(const char *a, const char *b)
{
    json_t *ja = json_loads(a, JSON_DECODE_ANY, NULL), *jb = json_loads(b, JSON_DECODE_ANY, NULL);
    assert_non_null(ja);
    assert_non_null(jb);
    if (!json_equal(ja, jb))
        fail_msg("JSON differs:\n  %s\n  %s", a, b);
    json_decref(ja);
    json_decref(jb);
}

/* Canonical JSON -> message -> the same JSON; then through the wire format and back.
 * Returns the parsed message (caller frees with codec_free()). */
static ProtobufCMessage *
roundtrip(const ProtobufCMessageDescriptor *desc, const char *canonical)
{
    ProtobufCMessage *m = parse_ok(desc, canonical), *back;
    char *out = emit_ok(m);
    assert_same_json(canonical, out);
    uint8_t *buf;
    size_t len;
    pt_error_t err;
    assert_int_equal(codec_pack(m, MAX_JSON, &buf, &len, &err), 0);
    assert_int_equal(codec_unpack(desc, buf, len, MAX_JSON, &back, &err), 0);
    char *out2 = emit_ok(back);
    assert_string_equal(out, out2);
    free(out);
    free(out2);
    free(buf);
    codec_free(&back);
    return m;
}

static void
expect_reject(const ProtobufCMessageDescriptor *desc, const char *text, int code, const char *path,
              const char *msg)
{
    ProtobufCMessage *m = (ProtobufCMessage *)&m; /* must be reset to NULL */
    pt_error_t err;
    int rc = pjson_parse(desc, text, strlen(text), MAX_JSON, &m, &err);
    if (rc != code)
        fail_msg("%s: rc %d, want %d (%s)", text, rc, code, err.msg);
    assert_null(m);
    assert_string_equal(err.path, path);
    if (strstr(err.msg, msg) == NULL)
        fail_msg("%s: message \"%s\" lacks \"%s\"", text, err.msg, msg);
}

/* ---- round trips of every family ---- */

static const char person_json[] =
    "{\"nir\":\"1850555029123\",\"birthDate\":\"1985-05-14\",\"lastName\":\"Lefèvre\","
    "\"birthName\":\"Martin\",\"firstNames\":\"Jean Éric\",\"sex\":\"SEX_MALE\","
    "\"payer\":\"PAYER_CAF\",\"payerOffice\":\"551\",\"fileNumber\":\"1234567\","
    "\"role\":\"PERSON_ROLE_DEM\",\"franceTravailId\":\"1234567A\",\"departementId\":\"D55-0042\"}";

static void
test_family_orientation(void **state)
{
    (void)state;
    char text[2048];
    snprintf(text, sizeof text,
             "{\"messageId\":\"cd55-or-0001\",\"sender\":\"departement\","
             "\"recipients\":[\"pole_emploi\",\"caf\"],\"createdAt\":\"2024-03-05T09:30:00Z\","
             "\"territory\":\"nord_meusien\",\"orientation\":{\"orientationId\":\"OR-2024-0001\","
             "\"version\":2,\"person\":%s,\"category\":\"ORIENTATION_CATEGORY_PRO\","
             "\"categoryCode\":\"PP\",\"referentOrg\":{\"kind\":\"ORG_KIND_FT\","
             "\"siret\":\"13000548100010\",\"name\":\"France Travail Verdun\","
             "\"agent\":{\"name\":\"Claire Dupont\",\"email\":\"claire.dupont@example.fr\"},"
             "\"partnerId\":\"pole_emploi\"},\"decidingOrg\":{\"kind\":\"ORG_KIND_CD\"},"
             "\"status\":\"ORIENTATION_STATUS_ORIENTED\","
             "\"origin\":\"ORIENTATION_ORIGIN_REORIENTATION\",\"proposedOn\":\"2024-02-20\","
             "\"decidedOn\":\"2024-03-01\",\"startsOn\":\"2024-03-04\",\"endsOn\":\"2025-03-03\","
             "\"refusal\":{\"refusedOn\":\"2024-03-02\",\"reason\":\"déménagement\"}}}",
             person_json);
    Ptibus__V1__Envelope *e = (Ptibus__V1__Envelope *)roundtrip(ENV, text);
    assert_int_equal(e->body_case, PTIBUS__V1__ENVELOPE__BODY_ORIENTATION);
    assert_int_equal(e->n_recipients, 2);
    assert_string_equal(e->recipients[1], "caf");
    assert_int_equal(e->created_at->seconds, 1709631000);
    assert_int_equal(e->orientation->version, 2);
    assert_string_equal(e->orientation->person->last_name, "Lefèvre");
    assert_int_equal(e->orientation->person->sex, PTIBUS__V1__SEX__SEX_MALE);
    assert_string_equal(e->orientation->referent_org->agent->email, "claire.dupont@example.fr");
    assert_int_equal(e->orientation->origin,
                     PTIBUS__V1__ORIENTATION_ORIGIN__ORIENTATION_ORIGIN_REORIENTATION);
    ProtobufCMessage *m = &e->base;
    codec_free(&m);
}

static void
test_family_reorientation(void **state)
{
    (void)state;
    static const char *const samples[] = {
        "{\"messageId\":\"ft-rr-17\",\"reorientationRequest\":{\"requestId\":\"RR-17\","
        "\"orientationId\":\"OR-2024-0001\",\"person\":{\"nir\":\"2920855545012\"},"
        "\"requestedCategory\":\"ORIENTATION_CATEGORY_SOCIAL\",\"reason\":\"problèmes de santé\","
        "\"requestingOrg\":{\"kind\":\"ORG_KIND_FT\",\"partnerId\":\"pole_emploi\"},"
        "\"requestedOn\":\"2024-04-02\"}}",
        "{\"messageId\":\"cd55-ra-17\",\"correlationId\":\"ft-rr-17\",\"reorientationAnswer\":{"
        "\"requestId\":\"RR-17\",\"decision\":\"REORIENTATION_DECISION_ACCEPTED\","
        "\"decidedOn\":\"2024-04-10\",\"reason\":\"avis favorable\","
        "\"newOrientationId\":\"OR-2024-0107\"}}",
    };
    for (size_t i = 0; i < 2; i++) {
        ProtobufCMessage *m = roundtrip(ENV, samples[i]);
        Ptibus__V1__Envelope *e = (Ptibus__V1__Envelope *)m;
        assert_int_equal(e->body_case, i == 0 ? PTIBUS__V1__ENVELOPE__BODY_REORIENTATION_REQUEST
                                              : PTIBUS__V1__ENVELOPE__BODY_REORIENTATION_ANSWER);
        codec_free(&m);
    }
}

static void
test_family_referral(void **state)
{
    (void)state;
    static const char *const samples[] = {
        "{\"messageId\":\"ml-ref-3\",\"referral\":{\"referralId\":\"REF-3\","
        "\"person\":{\"nir\":\"2010355193045\",\"firstNames\":\"Léa\"},"
        "\"prescriberOrg\":{\"kind\":\"ORG_KIND_ML\",\"partnerId\":\"ml_nord\"},"
        "\"targetOrg\":{\"kind\":\"ORG_KIND_SIAE\",\"siret\":\"42385519600014\","
        "\"name\":\"Meuse Recyclerie\",\"partnerId\":\"siae_recyclerie\"},"
        "\"targetService\":{\"kind\":\"SERVICE_KIND_TRAINING\",\"category\":\"logistique\","
        "\"trainingActionRef\":\"F123/A45/S6\"},\"reason\":\"projet logistique\","
        "\"availableFrom\":\"2024-05-13\","
        "\"contactPreference\":\"CONTACT_PREFERENCE_PHONE\"}}",
        "{\"messageId\":\"siae-rs-9\",\"correlationId\":\"ml-ref-3\","
        "\"correlationSeq\":\"18446744073709551615\",\"referralStatus\":{"
        "\"referralId\":\"REF-3\",\"state\":\"REFERRAL_STATE_REFUSED\",\"reason\":\"complet\","
        "\"effectiveOn\":\"2024-05-20\",\"reportingOrg\":{\"kind\":\"ORG_KIND_SIAE\"}}}",
    };
    for (size_t i = 0; i < 2; i++) {
        ProtobufCMessage *m = roundtrip(ENV, samples[i]);
        Ptibus__V1__Envelope *e = (Ptibus__V1__Envelope *)m;
        if (i == 0)
            assert_int_equal(e->referral->target_service->kind,
                             PTIBUS__V1__SERVICE_KIND__SERVICE_KIND_TRAINING);
        else
            assert_int_equal(e->referral_status->state,
                             PTIBUS__V1__REFERRAL_STATE__REFERRAL_STATE_REFUSED);
        if (i == 1) /* the header field of replies, a uint64: a JSON string */
            assert_true(e->correlation_seq == UINT64_MAX);
        codec_free(&m);
    }
}

static void
test_family_sanction(void **state)
{
    (void)state;
    const char *text =
        "{\"messageId\":\"cd55-sa-4\",\"sanction\":{\"sanctionId\":\"SA-4\","
        "\"person\":{\"nir\":\"1781155322087\",\"payer\":\"PAYER_MSA\"},\"householdSize\":3,"
        "\"legalGround\":\"LEGAL_GROUND_NON_COMPLIANCE\","
        "\"measure\":\"SANCTION_MEASURE_SUSPENSION_REMOBILISATION\",\"stage\":1,"
        "\"ratePercent\":50,\"durationMonths\":2,\"startsOn\":\"2024-06-01\","
        "\"endsOn\":\"2024-07-31\",\"proposedBy\":{\"kind\":\"ORG_KIND_FT\"},"
        "\"decidedBy\":{\"kind\":\"ORG_KIND_CD\"},\"notifiedOn\":\"2024-05-15\","
        "\"observationsDeadline\":\"2024-05-25\",\"teamOpinion\":\"avis conforme\","
        "\"phase\":\"SANCTION_PHASE_DECISION\"}}";
    ProtobufCMessage *m = roundtrip(ENV, text);
    Ptibus__V1__Sanction *s = ((Ptibus__V1__Envelope *)m)->sanction;
    assert_int_equal(s->rate_percent, 50);
    assert_int_equal(s->person->payer, PTIBUS__V1__PAYER__PAYER_MSA);
    assert_int_equal(s->phase, PTIBUS__V1__SANCTION_PHASE__SANCTION_PHASE_DECISION);
    codec_free(&m);
}

static void
test_family_training_offer(void **state)
{
    (void)state;
    const char *text =
        "{\"messageId\":\"reg-to-88\",\"trainingOffer\":{\"offerId\":\"F123/A45/S6\","
        "\"operation\":\"OFFER_OPERATION_UPSERT\",\"formationNumber\":\"F123\","
        "\"actionNumber\":\"A45\",\"sessionNumber\":\"S6\","
        "\"title\":\"Agent magasinier cariste\",\"objective\":\"CACES R489\","
        "\"formacode\":[\"31815\",\"42852\"],\"romeCodes\":[\"N1103\"],\"nsfCodes\":[\"311\"],"
        "\"certifying\":true,\"rncpCodes\":[\"RNCP38413\"],\"provider\":{\"kind\":\"ORG_KIND_"
        "OTHER\","
        "\"name\":\"AFPA Verdun\"},\"entryLevelCode\":\"0\",\"exitLevelCode\":\"3\","
        "\"inseeCommune\":\"55545\",\"rhythm\":\"temps plein\",\"targetPublicCodes\":[\"80\"],"
        "\"permanentEntry\":true,\"totalHours\":420,\"totalPriceEur\":\"3250.00\","
        "\"funders\":[{\"funderCode\":\"2\",\"fundedSeats\":8},{\"funderCode\":\"10\"}],"
        "\"startsOn\":\"2024-09-02\",\"endsOn\":\"2024-12-20\","
        "\"registrationAddress\":\"1 rue de la Gare, 55100 Verdun\","
        "\"recruitmentState\":\"RECRUITMENT_STATE_OPEN\",\"lheoVersion\":\"2.3\"}}";
    ProtobufCMessage *m = roundtrip(ENV, text);
    Ptibus__V1__TrainingOffer *t = ((Ptibus__V1__Envelope *)m)->training_offer;
    assert_int_equal(t->n_formacode, 2);
    assert_string_equal(t->formacode[1], "42852");
    assert_int_equal(t->n_funders, 2);
    assert_int_equal(t->funders[0]->funded_seats, 8);
    assert_int_equal(t->funders[1]->funded_seats, 0);
    assert_true(t->certifying);
    codec_free(&m);
}

static void
test_family_beneficiary_event(void **state)
{
    (void)state;
    const char *text =
        "{\"messageId\":\"caf-be-1\",\"createdAt\":\"2024-01-31T23:59:59.999999999Z\","
        "\"beneficiaryEvent\":{\"eventId\":\"BE-1\","
        "\"kind\":\"BENEFICIARY_EVENT_KIND_DROITS_ET_DEVOIRS\","
        "\"person\":{\"nir\":\"1960775056033\",\"role\":\"PERSON_ROLE_CJT\"},"
        "\"fileState\":\"RSA_FILE_STATE_OPEN_PAID\",\"fileStateCode\":\"2\","
        "\"droitsEtDevoirs\":true,\"referenceDate\":\"2024-01-31\",\"claimDate\":\"2023-11-02\","
        "\"closureReasonCode\":\"PCG\",\"suspensionReasonCode\":\"01\",\"postalCode\":\"55000\","
        "\"inseeCommune\":\"55029\",\"householdSize\":4}}";
    ProtobufCMessage *m = roundtrip(ENV, text);
    Ptibus__V1__Envelope *e = (Ptibus__V1__Envelope *)m;
    assert_int_equal(e->created_at->nanos, 999999999);
    assert_true(e->beneficiary_event->droits_et_devoirs);
    codec_free(&m);
}

/* protocol.proto: bytes, uint64, int64 and every frame kind. */
static void
test_frames(void **state)
{
    (void)state;
    static const char *const samples[] = {
        "{\"hello\":{\"protocolVersion\":1,\"clientName\":\"ptibus-adapter-caf\","
        "\"softwareVersion\":\"0.1.0\",\"initialCredit\":16}}",
        "{\"welcome\":{\"protocolVersion\":1,\"partnerId\":\"caf\",\"heartbeatIntervalMs\":5000,"
        "\"maxMessageSize\":262144}}",
        "{\"publish\":{\"messageId\":\"m-1\",\"envelope\":\"CgNtLTE=\"}}",
        "{\"publishAck\":{\"messageId\":\"m-1\",\"seq\":\"18446744073709551615\","
        "\"duplicate\":true}}",
        "{\"nack\":{\"messageId\":\"m-2\",\"code\":\"NACK_CODE_INVALID\","
        "\"reason\":\"sanction.rate_percent: 120 is above 100\","
        "\"fieldPath\":\"sanction.rate_percent\",\"seq\":\"42\",\"retryable\":true}}",
        "{\"deliver\":{\"seq\":\"9007199254740993\",\"attempt\":2,\"redelivery\":true,"
        "\"replay\":true,\"messageId\":\"m-1\",\"sender\":\"caf\",\"envelope\":\"AP+A/w==\"}}",
        "{\"deliverAck\":{\"seq\":\"7\",\"status\":\"DELIVER_ACK_STATUS_CANNOT_PROCESS\","
        "\"reason\":\"poison\"}}",
        "{\"credit\":{\"credit\":32}}",
        "{\"heartbeat\":{\"sentAtMs\":\"-1700000000000\"}}",
        "{\"receipt\":{\"messageId\":\"m-1\",\"seq\":\"3\",\"recipient\":\"departement\","
        "\"kind\":\"RECEIPT_KIND_ACKNOWLEDGED\",\"atMs\":\"1709631000123\",\"reason\":\"ok\"}}",
        "{\"receiptRequest\":{\"messageId\":\"m-1\"}}",
    };
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        ProtobufCMessage *m = roundtrip(FRAME, samples[i]);
        Ptibus__V1__Frame *f = (Ptibus__V1__Frame *)m;
        assert_int_equal(f->kind_case, 10 + i);
        codec_free(&m);
    }
    ProtobufCMessage *m = parse_ok(FRAME, samples[5]);
    Ptibus__V1__Deliver *d = ((Ptibus__V1__Frame *)m)->deliver;
    assert_true(d->seq == UINT64_C(9007199254740993));
    assert_int_equal(d->envelope.len, 4);
    assert_memory_equal(d->envelope.data, "\x00\xff\x80\xff", 4);
    codec_free(&m);
    m = parse_ok(FRAME, samples[8]);
    assert_true(((Ptibus__V1__Frame *)m)->heartbeat->sent_at_ms == INT64_C(-1700000000000));
    codec_free(&m);
}

/* ---- exact output of hand-built messages ---- */

static void
test_emit_exact(void **state)
{
    (void)state;
    Ptibus__V1__Envelope env = PTIBUS__V1__ENVELOPE__INIT;
    Ptibus__V1__Sanction s = PTIBUS__V1__SANCTION__INIT;
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    char *recipients[] = {"caf", "departement"};
    env.message_id = "m-1";
    env.n_recipients = 2;
    env.recipients = recipients;
    ts.seconds = 63108020;
    ts.nanos = 21000000;
    env.created_at = &ts;
    env.body_case = PTIBUS__V1__ENVELOPE__BODY_SANCTION;
    env.sanction = &s;
    s.rate_percent = 50;
    s.measure = 77; /* unknown to this build: printed as a number */
    char *out = emit_ok(&env.base);
    assert_string_equal(out, "{\"messageId\":\"m-1\",\"recipients\":[\"caf\",\"departement\"],"
                             "\"createdAt\":\"1972-01-01T10:00:20.021Z\","
                             "\"sanction\":{\"measure\":77,\"ratePercent\":50}}");
    free(out);
    /* A oneof member is printed even when it holds only defaults. */
    Ptibus__V1__Sanction empty = PTIBUS__V1__SANCTION__INIT;
    Ptibus__V1__Envelope bare = PTIBUS__V1__ENVELOPE__INIT;
    bare.body_case = PTIBUS__V1__ENVELOPE__BODY_SANCTION;
    bare.sanction = &empty;
    out = emit_ok(&bare.base);
    assert_string_equal(out, "{\"sanction\":{}}");
    free(out);
    Ptibus__V1__Envelope none = PTIBUS__V1__ENVELOPE__INIT;
    out = emit_ok(&none.base);
    assert_string_equal(out, "{}");
    free(out);
}

static void
test_emit_bytes_and_64bit(void **state)
{
    (void)state;
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Deliver d = PTIBUS__V1__DELIVER__INIT;
    uint8_t raw[] = {0xfb, 0xff, 0x00};
    f.kind_case = PTIBUS__V1__FRAME__KIND_DELIVER;
    f.deliver = &d;
    d.seq = UINT64_MAX;
    d.envelope.data = raw;
    d.envelope.len = 3;
    char *out = emit_ok(&f.base);
    assert_string_equal(out,
                        "{\"deliver\":{\"seq\":\"18446744073709551615\",\"envelope\":\"+/8A\"}}");
    free(out);
    d.envelope.len = 2;
    d.seq = 0;
    out = emit_ok(&f.base);
    assert_string_equal(out, "{\"deliver\":{\"envelope\":\"+/8=\"}}");
    free(out);
}

static void
test_timestamps(void **state)
{
    (void)state;
    static const struct {
        int64_t seconds;
        int32_t nanos;
        const char *text;
    } cases[] = {
        {0, 0, "\"1970-01-01T00:00:00Z\""},
        {63108020, 21000000, "\"1972-01-01T10:00:20.021Z\""},
        {63108020, 21000, "\"1972-01-01T10:00:20.000021Z\""},
        {63108020, 21, "\"1972-01-01T10:00:20.000000021Z\""},
        {-1, 500000000, "\"1969-12-31T23:59:59.500Z\""},
        {-62135596800, 0, "\"0001-01-01T00:00:00Z\""},
        {253402300799, 999999999, "\"9999-12-31T23:59:59.999999999Z\""},
        {951782400, 0, "\"2000-02-29T00:00:00Z\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
        ts.seconds = cases[i].seconds;
        ts.nanos = cases[i].nanos;
        char *out = emit_ok(&ts.base);
        assert_string_equal(out, cases[i].text);
        free(out);
        Google__Protobuf__Timestamp *back = (Google__Protobuf__Timestamp *)parse_ok(
            &google__protobuf__timestamp__descriptor, cases[i].text);
        assert_true(back->seconds == cases[i].seconds);
        assert_int_equal(back->nanos, cases[i].nanos);
        protobuf_c_message_free_unpacked(&back->base, NULL);
    }
    ProtobufCMessage *m = parse_ok(ENV, "{\"createdAt\":\"1972-01-01T11:00:20.021+01:00\"}");
    assert_int_equal(((Ptibus__V1__Envelope *)m)->created_at->seconds, 63108020);
    codec_free(&m);
    m = parse_ok(ENV, "{\"createdAt\":\"1971-12-31T23:30:20.5-10:30\"}");
    assert_int_equal(((Ptibus__V1__Envelope *)m)->created_at->seconds, 63108020);
    assert_int_equal(((Ptibus__V1__Envelope *)m)->created_at->nanos, 500000000);
    codec_free(&m);
    Google__Protobuf__Timestamp bad = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    bad.seconds = 253402300800;
    char *s = (char *)&s;
    pt_error_t err;
    assert_int_equal(pjson_to_string(&bad.base, &s, &err), PT_EINVALID);
    assert_null(s);
    assert_string_equal(err.msg, "timestamp out of range");
}

/* ---- accepted input variants ---- */

static void
test_input_variants(void **state)
{
    (void)state;
    /* Original names, enum numbers, 64-bit numbers, url-safe base64, nulls. */
    ProtobufCMessage *m =
        parse_ok(FRAME, "{\"deliver\":{\"seq\":42,\"attempt\":\"3\",\"message_id\":\"x\","
                        "\"envelope\":\"-_8\",\"sender\":null,\"redelivery\":null}}");
    Ptibus__V1__Deliver *d = ((Ptibus__V1__Frame *)m)->deliver;
    assert_true(d->seq == 42);
    assert_int_equal(d->attempt, 3);
    assert_string_equal(d->message_id, "x");
    assert_string_equal(d->sender, "");
    assert_int_equal(d->envelope.len, 2);
    assert_memory_equal(d->envelope.data, "\xfb\xff", 2);
    codec_free(&m);
    m = parse_ok(ENV, "{\"message_id\":null,\"created_at\":null,\"recipients\":null,"
                      "\"sanction\":{\"phase\":2,\"measure\":99,\"rate_percent\":30.0},"
                      "\"referral\":null}");
    Ptibus__V1__Envelope *e = (Ptibus__V1__Envelope *)m;
    assert_null(e->created_at);
    assert_int_equal(e->n_recipients, 0);
    assert_int_equal(e->body_case, PTIBUS__V1__ENVELOPE__BODY_SANCTION);
    assert_int_equal(e->sanction->phase, PTIBUS__V1__SANCTION_PHASE__SANCTION_PHASE_DECISION);
    assert_int_equal(e->sanction->rate_percent, 30);
    char *out = emit_ok(m);
    assert_string_equal(out, "{\"sanction\":{\"measure\":99,\"ratePercent\":30,"
                             "\"phase\":\"SANCTION_PHASE_DECISION\"}}");
    free(out);
    codec_free(&m);
    m = parse_ok(FRAME, "{\"publish\":{\"envelope\":\"\"}}");
    assert_int_equal(((Ptibus__V1__Frame *)m)->publish->envelope.len, 0);
    codec_free(&m);
}

/* ---- kinds the contract does not use: test.Kinds ---- */

static void
test_other_kinds(void **state)
{
    (void)state;
    const char *canonical =
        "{\"i32\":-2147483648,\"sint64\":\"-9223372036854775808\",\"fix32\":4294967295,"
        "\"flt\":0.1,\"dbl\":\"-Infinity\",\"repInt64\":[\"1\",\"-2\",\"0\"],\"optInt32\":0,"
        "\"child\":{\"flt\":\"NaN\",\"dbl\":1e300},\"repBytes\":[\"\",\"AQ==\"],"
        "\"repDouble\":[0.5,\"Infinity\",-0.0]}";
    ProtobufCMessage *m = roundtrip(&kinds_descriptor, canonical);
    Kinds *k = (Kinds *)m;
    assert_int_equal(k->i32, INT32_MIN);
    assert_true(k->sint64 == INT64_MIN);
    assert_true(k->flt == 0.1f);
    assert_true(isinf(k->dbl) && k->dbl < 0);
    assert_true(k->has_opt_int32);
    assert_true(isnan(k->child->flt));
    assert_int_equal(k->n_rep_bytes, 2);
    assert_true(signbit(k->rep_double[2]));
    codec_free(&m);
    m = parse_ok(&kinds_descriptor, "{\"flt\":\"1.5e3\",\"dbl\":3,\"opt_int32\":null}");
    assert_true(((Kinds *)m)->flt == 1500.0f);
    assert_false(((Kinds *)m)->has_opt_int32);
    codec_free(&m);
    expect_reject(&kinds_descriptor, "{\"flt\":1e39}", PT_EMALFORMED, "flt",
                  "number out of range for float");
    expect_reject(&kinds_descriptor, "{\"dbl\":\"0x10\"}", PT_EMALFORMED, "dbl",
                  "expected a number, got string");
    expect_reject(&kinds_descriptor, "{\"i32\":2147483648}", PT_EMALFORMED, "i32",
                  "integer out of range for int32");
    expect_reject(&kinds_descriptor, "{\"sint64\":\"9223372036854775808\"}", PT_EMALFORMED,
                  "sint64", "integer out of range for sint64");
    expect_reject(&kinds_descriptor, "{\"repInt64\":[1,1.5]}", PT_EMALFORMED, "repInt64[1]",
                  "expected an integer, got a fractional number");
}

static void
test_depth_limit(void **state)
{
    (void)state;
    char text[1024] = "";
    for (int i = 1; i < PJSON_MAX_DEPTH; i++)
        strcat(text, "{\"child\":");
    strcat(text, "{\"i32\":1}");
    for (int i = 1; i < PJSON_MAX_DEPTH; i++)
        strcat(text, "}");
    ProtobufCMessage *m = parse_ok(&kinds_descriptor, text); /* exactly the limit */
    char *out = emit_ok(m);
    assert_string_equal(out, text);
    free(out);
    codec_free(&m);
    char deeper[1100];
    snprintf(deeper, sizeof deeper, "{\"child\":%s}", text);
    pt_error_t err;
    assert_int_equal(pjson_parse(&kinds_descriptor, deeper, strlen(deeper), MAX_JSON, &m, &err),
                     PT_EMALFORMED);
    assert_non_null(strstr(err.msg, "nested deeper than 32 messages"));
    assert_int_equal(strncmp(err.path, "child.child.child", 17), 0);
}

/* ---- rejections, with the path ---- */

static void
test_reject_types(void **state)
{
    (void)state;
    expect_reject(ENV, "{\"sanction\":{\"ratePercent\":\"trente\"}}", PT_EMALFORMED,
                  "sanction.ratePercent", "sanction.ratePercent: expected an integer, got string");
    expect_reject(ENV, "{\"sanction\":{\"rate_percent\":-1}}", PT_EMALFORMED,
                  "sanction.ratePercent", "sanction.ratePercent: integer out of range for uint32");
    expect_reject(ENV, "{\"sanction\":{\"ratePercent\":4294967296}}", PT_EMALFORMED,
                  "sanction.ratePercent", "integer out of range for uint32");
    expect_reject(ENV, "{\"sanction\":{\"ratePercent\":true}}", PT_EMALFORMED,
                  "sanction.ratePercent", "expected an integer, got boolean");
    expect_reject(ENV, "{\"messageId\":12}", PT_EMALFORMED, "messageId",
                  "expected a string, got number");
    expect_reject(ENV, "{\"trainingOffer\":{\"certifying\":\"yes\"}}", PT_EMALFORMED,
                  "trainingOffer.certifying", "expected true or false, got string");
    expect_reject(ENV, "{\"trainingOffer\":{\"certifying\":1}}", PT_EMALFORMED,
                  "trainingOffer.certifying", "expected true or false, got number");
    expect_reject(ENV, "{\"orientation\":{\"category\":\"ORIENTATION_CATEGORY_BOGUS\"}}",
                  PT_EMALFORMED, "orientation.category",
                  "orientation.category: unknown value name for OrientationCategory: expected one "
                  "of ORIENTATION_CATEGORY_SOCIAL, ORIENTATION_CATEGORY_PRO, "
                  "ORIENTATION_CATEGORY_SOCIO_PRO");
    expect_reject(ENV, "{\"orientation\":{\"category\":2.5}}", PT_EMALFORMED,
                  "orientation.category", "expected an enum name or number, got number");
    expect_reject(ENV, "{\"sanction\":{\"person\":\"1850555029123\"}}", PT_EMALFORMED,
                  "sanction.person", "expected an object, got string");
    expect_reject(ENV, "{\"recipients\":\"caf\"}", PT_EMALFORMED, "recipients",
                  "expected an array, got string");
    expect_reject(ENV, "{\"recipients\":[\"caf\",null]}", PT_EMALFORMED, "recipients[1]",
                  "null is not allowed in an array");
    expect_reject(
        ENV, "{\"trainingOffer\":{\"funders\":[{\"fundedSeats\":3},{\"fundedSeats\":-3}]}}",
        PT_EMALFORMED, "trainingOffer.funders[1].fundedSeats", "integer out of range for uint32");
    expect_reject(FRAME, "{\"heartbeat\":{\"sentAtMs\":\"12 34\"}}", PT_EMALFORMED,
                  "heartbeat.sentAtMs", "expected an integer, got string");
    expect_reject(FRAME, "{\"publishAck\":{\"seq\":\"18446744073709551616\"}}", PT_EMALFORMED,
                  "publishAck.seq", "integer out of range");
    expect_reject(ENV, "[]", PT_EMALFORMED, "", "expected an object, got array");
}

static void
test_reject_bytes_and_time(void **state)
{
    (void)state;
    static const char *const bad_b64[] = {"@@@@", "AP+A/w=", "AP-A/w==", "A",
                                          "AQ=a", "AQ===",   "AR=="};
    for (size_t i = 0; i < sizeof bad_b64 / sizeof bad_b64[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "{\"publish\":{\"envelope\":\"%s\"}}", bad_b64[i]);
        expect_reject(FRAME, text, PT_EMALFORMED, "publish.envelope", "invalid base64");
    }
    static const char *const bad_ts[] = {
        "2024-13-01T00:00:00Z",     "2023-02-29T00:00:00Z",      "2024-01-01 00:00:00Z",
        "2024-01-01T00:00:00",      "2024-01-01t00:00:00Z",      "2024-01-01T24:00:00Z",
        "2024-01-01T00:00:60Z",     "2024-01-01T00:00:00.Z",     "2024-01-01T00:00:00.1234567890Z",
        "2024-01-01T00:00:00+0100", "0000-12-31T23:59:59Z",      "0001-01-01T00:00:00+00:01",
        "2024-01-01T00:00:00Zjunk", "9999-12-31T23:59:59-00:01", "24-01-01T00:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad_ts / sizeof bad_ts[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "{\"createdAt\":\"%s\"}", bad_ts[i]);
        expect_reject(ENV, text, PT_EMALFORMED, "createdAt", "invalid RFC 3339 timestamp");
    }
    expect_reject(ENV, "{\"createdAt\":{\"seconds\":1}}", PT_EMALFORMED, "createdAt",
                  "expected an RFC 3339 timestamp string, got object");
}

static void
test_reject_structure(void **state)
{
    (void)state;
    expect_reject(ENV, "{\"sanction\":{\"person\":{\"nirr\":\"1850555029123\"}}}", PT_EMALFORMED,
                  "sanction.person.nirr", "unknown field of ptibus.v1.PersonRef");
    expect_reject(ENV, "{\"MessageId\":\"m\"}", PT_EMALFORMED, "MessageId", "unknown field");
    expect_reject(ENV, "{\"messageId\":\"a\",\"message_id\":\"b\"}", PT_EMALFORMED, "messageId",
                  "field given twice");
    expect_reject(ENV, "{\"sanction\":{},\"referral\":{}}", PT_EMALFORMED, "referral",
                  "another member of the same oneof is already set");
    expect_reject(ENV, "{\"messageId\":\"a\",\"messageId\":\"b\"}", PT_EMALFORMED, "messageId",
                  "messageId: line 1 column 28: duplicate object key");
    expect_reject(ENV, "{\"messageId\":", PT_EMALFORMED, "messageId", "line 1 column");
    expect_reject(ENV, "{\"messageId\":\"a\\u0000b\"}", PT_EMALFORMED, "messageId", "line 1");
    expect_reject(ENV, "{} {}", PT_EMALFORMED, "", "end of file expected");
    /* The offending token is not echoed: it may be personal data. */
    pt_error_t err;
    ProtobufCMessage *m;
    const char *leak = "{\"nir\" 1850555029123}";
    assert_int_equal(pjson_parse(ENV, leak, strlen(leak), MAX_JSON, &m, &err), PT_EMALFORMED);
    assert_null(strstr(err.msg, "1850555029123"));
    const char *big = "{\"messageId\":\"0123456789\"}";
    assert_int_equal(pjson_parse(ENV, big, strlen(big), 10, &m, &err), PT_ETOOLARGE);
    assert_null(m);
}

/* Every path names fields by their JSON names, whichever name the input used, in the
 * style of validate's paths (no "$", no snake_case). */
static void
test_paths_in_json_names(void **state)
{
    (void)state;
    expect_reject(ENV, "{\"referral\":{\"available_from\":7}}", PT_EMALFORMED,
                  "referral.availableFrom",
                  "referral.availableFrom: expected a string, got number");
    expect_reject(
        ENV, "{\"training_offer\":{\"funders\":[{\"funded_seats\":1},{\"funded_seats\":\"x\"}]}}",
        PT_EMALFORMED, "trainingOffer.funders[1].fundedSeats", "expected an integer");
    expect_reject(ENV, "{\"referral\":{\"targetOrg\":{\"partner_id\":1}}}", PT_EMALFORMED,
                  "referral.targetOrg.partnerId", "expected a string");
    expect_reject(ENV, "{\"referral\":{\"targetOrg\":{\"partner_idd\":1}}}", PT_EMALFORMED,
                  "referral.targetOrg.partner_idd", "unknown field of ptibus.v1.OrgRef");
}

/* jansson refuses an integer over 63 bits and a duplicate key with a line and column
 * only: the path of the member it was reading is found from the text. */
static void
test_syntax_errors_name_the_field(void **state)
{
    (void)state;
    expect_reject(ENV, "{\"orientation\":{\"version\":18446744073709551616}}", PT_EMALFORMED,
                  "orientation.version", "orientation.version: line 1 column 46: too big integer");
    expect_reject(ENV, "{\"orientation\": {\"person\": {\"nir\": \"a\",\n \"nir\": \"b\"}}}",
                  PT_EMALFORMED, "orientation.person.nir",
                  "orientation.person.nir: line 2 column 6: duplicate object key");
    expect_reject(
        ENV, "{\"orientation\":{\"person\":{\"nir\":\"a\",\"file_number\":\"1\",\"nir\":\"b\"}}}",
        PT_EMALFORMED, "orientation.person.nir", "duplicate object key");
    expect_reject(
        ENV, "{\"sanction\":{\"person\":{\"nir\":\"a\"},\"rate_percent\":99999999999999999999}}",
        PT_EMALFORMED, "sanction.ratePercent", "too big integer");
    expect_reject(
        ENV,
        "{\"recipients\":[\"a\",\"b\"],\"trainingOffer\":{\"funders\":[{\"fundedSeats\":1},"
        "{\"funder_code\":\"1\",\"funded_seats\":-99999999999999999999}]}}",
        PT_EMALFORMED, "trainingOffer.funders[1].fundedSeats", "too big negative integer");
    expect_reject(ENV, "{\"sanction\":{\"bogus\":{\"x\":1,\"x\":2}}}", PT_EMALFORMED,
                  "sanction.bogus.x", "duplicate object key");
    expect_reject(ENV, "{\"messageId\": \"a\" \"b\"}", PT_EMALFORMED, "messageId", "line 1");
    expect_reject(ENV, "  {\"a\\\"b\":1,\"a\\\"b\":2}", PT_EMALFORMED, "a\\\"b",
                  "duplicate object key");
}

/* Over the limit, the text is refused before parsing: "too large" and the limit, never
 * "premature end of input" (a 5 MB string). */
static void
test_too_large(void **state)
{
    (void)state;
    size_t n = 5 * 1024 * 1024;
    char *text = malloc(n + 64);
    assert_non_null(text);
    int h = snprintf(text, 64, "{\"messageId\":\"");
    memset(text + h, 'a', n);
    snprintf(text + h + n, 64 - (size_t)h, "\"}");
    ProtobufCMessage *m = (ProtobufCMessage *)&m;
    pt_error_t err;
    assert_int_equal(pjson_parse(ENV, text, strlen(text), 1048576, &m, &err), PT_ETOOLARGE);
    assert_null(m);
    assert_string_equal(err.path, "");
    char want[128];
    snprintf(want, sizeof want, "the JSON text is too large: %zu bytes, the limit is 1048576 bytes",
             strlen(text));
    assert_string_equal(err.msg, want);
    free(text);
}

static char *
write_temp(const char *bytes, size_t len)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/test_pjson.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, bytes, len), (ssize_t)len);
    close(fd);
    return path;
}

/* Files: a UTF-8 byte order mark is skipped; a file over the limit is said to be too
 * large (it is not cut at the limit and parsed). */
static void
test_parse_file(void **state)
{
    (void)state;
    static const char doc[] = "\xEF\xBB\xBF{\"messageId\":\"m-1\"}\n";
    char *path = write_temp(doc, sizeof doc - 1);
    ProtobufCMessage *m = NULL;
    pt_error_t err;
    assert_int_equal(pjson_parse_file(ENV, path, 64, &m, &err), 0);
    assert_string_equal(((Ptibus__V1__Envelope *)m)->message_id, "m-1");
    codec_free(&m);
    assert_int_equal(pjson_parse_file(ENV, path, 10, &m, &err), PT_ETOOLARGE);
    assert_null(m);
    assert_string_equal(err.msg, "the file is too large: over 10 bytes, the limit is 10 bytes");
    unlink(path);
    assert_int_equal(pjson_parse_file(ENV, path, 64, &m, &err), -ENOENT);
    assert_null(m);
    path = write_temp("\xEF\xBB{}", 4); /* a cut mark is not a mark */
    assert_int_equal(pjson_parse_file(ENV, path, 64, &m, &err), PT_EMALFORMED);
    unlink(path);
}

static void
test_proto_paths(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(pjson_path_from_proto("referral.target_org.partner_id", out, sizeof out), 28);
    assert_string_equal(out, "referral.targetOrg.partnerId");
    pjson_path_from_proto("training_offer.funders[2].funded_seats", out, sizeof out);
    assert_string_equal(out, "trainingOffer.funders[2].fundedSeats");
    pjson_path_from_proto("recipients[1]", out, sizeof out);
    assert_string_equal(out, "recipients[1]");
    pjson_path_from_proto("referral.target_org", out, 9);
    assert_string_equal(out, "referral");
    pt_error_t e;
    pt_error_set(&e, PT_EDENIED, "referral.target_org.partner_id", "unknown partner \"x_y\"");
    pjson_error_json_path(&e);
    assert_string_equal(e.path, "referral.targetOrg.partnerId");
    assert_string_equal(e.msg, "referral.targetOrg.partnerId: unknown partner \"x_y\"");
    pt_error_set(&e, PT_EDENIED, NULL, "no path in reason_code");
    pjson_error_json_path(&e);
    assert_string_equal(e.msg, "no path in reason_code");
}

static void
test_emit_invalid_utf8(void **state)
{
    (void)state;
    Ptibus__V1__Envelope env = PTIBUS__V1__ENVELOPE__INIT;
    env.territory = "\xff\xfe";
    char *s;
    pt_error_t err;
    assert_int_equal(pjson_to_string(&env.base, &s, &err), PT_EINVALID);
    assert_string_equal(err.msg, "territory: string is not valid UTF-8");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_family_orientation),
        cmocka_unit_test(test_family_reorientation),
        cmocka_unit_test(test_family_referral),
        cmocka_unit_test(test_family_sanction),
        cmocka_unit_test(test_family_training_offer),
        cmocka_unit_test(test_family_beneficiary_event),
        cmocka_unit_test(test_frames),
        cmocka_unit_test(test_emit_exact),
        cmocka_unit_test(test_emit_bytes_and_64bit),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_input_variants),
        cmocka_unit_test(test_other_kinds),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_reject_types),
        cmocka_unit_test(test_reject_bytes_and_time),
        cmocka_unit_test(test_reject_structure),
        cmocka_unit_test(test_paths_in_json_names),
        cmocka_unit_test(test_syntax_errors_name_the_field),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_parse_file),
        cmocka_unit_test(test_proto_paths),
        cmocka_unit_test(test_emit_invalid_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
