/* test_cnaf: the CNAF/MSA RSA flow decoder on the two public samples as they are (padded
 * values, a wrong control count, the RSA role not in the first Prestations) and on the
 * synthetic windows-1252 fixture of tests/fixtures/cnaf/ (accented names, the oe
 * ligature only windows-1252 has, a person without a NIR, a 13-character NIR, a bad NIR
 * key that refuses its household only, an MSA household, a new claim). */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cnaf.h"
#include "codec.h"
#include "testutil.h"
#include "validate.h"

#define MAX_RECORDS 32

typedef struct got {
    size_t n, nerr;
    Ptibus__V1__BeneficiaryEvent *ev[MAX_RECORDS];
    pt_record_error_t errors[MAX_RECORDS];
    uint64_t err_index[MAX_RECORDS];
} got_t;

static int
collect(void *ctx, const pt_record_t *rec)
{
    got_t *g = ctx;
    if (rec->error != NULL) {
        g->err_index[g->nerr] = rec->index;
        g->errors[g->nerr++] = *rec->error;
        return 0;
    }
    Ptibus__V1__Envelope e = *rec->env;
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = 1800000000;
    e.message_id = "test-1";
    e.created_at = &ts;
    pt_error_t err;
    if (validate_envelope(&e, &err) != 0)
        fail_msg("invalid envelope: %s", err.msg);
    uint8_t *buf;
    size_t len;
    assert_int_equal(codec_pack(&rec->env->beneficiary_event->base, SIZE_MAX, &buf, &len, &err), 0);
    g->ev[g->n++] = ptibus__v1__beneficiary_event__unpack(NULL, len, buf);
    free(buf);
    return 0;
}

static void
got_free(got_t *g)
{
    for (size_t i = 0; i < g->n; i++)
        ptibus__v1__beneficiary_event__free_unpacked(g->ev[i], NULL);
    memset(g, 0, sizeof *g);
}

static int
decode_path(const char *path, got_t *g, pt_codec_outcome_t *out)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    pt_codec_source_t src = {fd, "flow.xml"};
    int rc = cnaf_codec.decode(NULL, &src, collect, g, out);
    close(fd);
    return rc;
}

static int
decode_text(const char *doc, size_t len, got_t *g, pt_codec_outcome_t *out)
{
    xml_safe_t *x;
    pt_error_t err;
    assert_int_equal(xml_safe_open_memory(&x, doc, len, "t", NULL, &err), 0);
    int rc = cnaf_decode(x, collect, g, out);
    xml_safe_close(&x);
    return rc;
}

static void
test_sample_ouvert(void **state)
{
    (void)state;
    got_t g = {0};
    pt_codec_outcome_t out;
    assert_int_equal(decode_path(PT_SAMPLES_DIR "/carnet-de-bord/RSABEM-ouvert.xml", &g, &out), 0);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.nerr, 0);
    assert_string_equal(out.warning.msg, "");
    const Ptibus__V1__BeneficiaryEvent *e = g.ev[0];
    assert_int_equal(e->kind,
                     PTIBUS__V1__BENEFICIARY_EVENT_KIND__BENEFICIARY_EVENT_KIND_FILE_STATE_CHANGED);
    assert_int_equal(e->file_state, PTIBUS__V1__RSA_FILE_STATE__RSA_FILE_STATE_OPEN_PAID);
    assert_string_equal(e->file_state_code, "2");
    assert_true(e->droits_et_devoirs);
    assert_string_equal(e->reference_date, "2022-02-28");
    assert_string_equal(e->claim_date, "2018-08-06");
    assert_string_equal(e->postal_code, "92300");
    assert_string_equal(e->insee_commune, "92044");
    assert_int_equal(e->household_size, 1);
    assert_string_equal(e->closure_reason_code, "");
    assert_string_equal(e->suspension_reason_code, "");
    assert_int_equal(strlen(e->event_id), 32);
    const Ptibus__V1__PersonRef *p = e->person;
    assert_int_equal(p->payer, PTIBUS__V1__PAYER__PAYER_CAF);
    assert_string_equal(p->payer_office, "521");
    assert_string_equal(p->file_number, "208956400000000");
    /* the RSA Prestations (the second) gives the role */
    assert_int_equal(p->role, PTIBUS__V1__PERSON_ROLE__PERSON_ROLE_CJT);
    assert_int_equal(strlen(p->nir), 13);
    assert_int_equal(p->sex, PTIBUS__V1__SEX__SEX_FEMALE);
    assert_string_equal(p->last_name, "BULLOCK");
    assert_string_equal(p->first_names, "ETA");
    assert_string_equal(p->birth_date, "1973-07-21");
    assert_string_equal(p->france_travail_id, "1253359X");
    e = g.ev[1];
    assert_int_equal(e->kind,
                     PTIBUS__V1__BENEFICIARY_EVENT_KIND__BENEFICIARY_EVENT_KIND_DROITS_ET_DEVOIRS);
    assert_string_not_equal(e->event_id, g.ev[0]->event_id);
    got_free(&g);
}

/* RSABEM.xml announces 1 household and holds 2: reported, not trusted. */
static void
test_sample_bem_count_mismatch(void **state)
{
    (void)state;
    got_t g = {0};
    pt_codec_outcome_t out;
    assert_int_equal(decode_path(PT_SAMPLES_DIR "/carnet-de-bord/RSABEM.xml", &g, &out), 0);
    assert_int_equal(g.nerr, 0);
    assert_non_null(strstr(out.warning.msg, "announces 1 households, the file holds 2"));
    assert_string_equal(out.warning.where, "/Racine/TransmissionFlux");
    const Ptibus__V1__BeneficiaryEvent *closed = NULL, *suspended = NULL;
    for (size_t i = 0; i < g.n; i++) {
        if (g.ev[i]->file_state == PTIBUS__V1__RSA_FILE_STATE__RSA_FILE_STATE_CLOSED)
            closed = g.ev[i];
        if (g.ev[i]->file_state == PTIBUS__V1__RSA_FILE_STATE__RSA_FILE_STATE_PAYMENT_SUSPENDED)
            suspended = g.ev[i];
    }
    assert_non_null(closed);
    assert_string_equal(closed->file_state_code, "5");
    assert_string_equal(closed->closure_reason_code, "PCG");
    assert_int_equal(closed->household_size, 2);
    assert_non_null(suspended);
    assert_string_equal(suspended->suspension_reason_code, "06");
    assert_int_equal(suspended->household_size, 1);
    got_free(&g);
}

static const Ptibus__V1__BeneficiaryEvent *
find(const got_t *g, const char *last_name, Ptibus__V1__BeneficiaryEventKind kind)
{
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->ev[i]->person->last_name, last_name) == 0 && g->ev[i]->kind == kind)
            return g->ev[i];
    return NULL;
}

#define K_STATE PTIBUS__V1__BENEFICIARY_EVENT_KIND__BENEFICIARY_EVENT_KIND_FILE_STATE_CHANGED
#define K_DD PTIBUS__V1__BENEFICIARY_EVENT_KIND__BENEFICIARY_EVENT_KIND_DROITS_ET_DEVOIRS
#define K_NEW PTIBUS__V1__BENEFICIARY_EVENT_KIND__BENEFICIARY_EVENT_KIND_NEW_CLAIM

static void
test_windows_1252_fixture(void **state)
{
    (void)state;
    got_t g = {0};
    pt_codec_outcome_t out;
    assert_int_equal(decode_path(PT_FIXTURES_DIR "/cnaf/flux-1252.xml", &g, &out), 0);
    assert_string_equal(out.warning.msg, "");
    assert_int_equal(g.n, 6); /* 3 + 2 + 0 + 1 */
    assert_int_equal(out.records, 6);
    /* household 1: accents decoded from windows-1252 into UTF-8 */
    const Ptibus__V1__BeneficiaryEvent *e = find(&g, "DUPR\xc3\x89-LEF\xc3\x88VRE", K_STATE);
    assert_non_null(e);
    assert_string_equal(e->person->first_names, "H\xc3\x89L\xc3\x88NE FRAN\xc3\x87OISE");
    assert_string_equal(e->person->nir, "2850755502123");           /* key checked, then dropped */
    assert_string_equal(e->person->file_number, "000012345678901"); /* leading zeros kept */
    assert_string_equal(e->person->payer_office, "551");
    assert_int_equal(e->person->role, PTIBUS__V1__PERSON_ROLE__PERSON_ROLE_DEM);
    assert_string_equal(e->person->france_travail_id, "1234567A");
    assert_int_equal(e->household_size, 2);
    assert_string_equal(e->postal_code, "55100");
    assert_string_equal(e->insee_commune, "55545");
    /* the spouse: 0x8C is the capital OE ligature in windows-1252, a C1 control in
     * ISO-8859-1; no NIR, identified by the payer file; role from the RSA Prestations */
    e = find(&g, "C\xc5\x92UR", K_DD);
    assert_non_null(e);
    assert_string_equal(e->person->first_names, "ZO\xc3\x8b");
    assert_string_equal(e->person->nir, "");
    assert_int_equal(e->person->role, PTIBUS__V1__PERSON_ROLE__PERSON_ROLE_CJT);
    assert_int_equal(e->person->sex, PTIBUS__V1__SEX__SEX_MALE);
    assert_string_equal(e->person->france_travail_id, "");
    /* household 2: MSA, right suspended with its reason, a 13-character NIR */
    e = find(&g, "NO\xc3\x8bL", K_STATE);
    assert_non_null(e);
    assert_int_equal(e->person->payer, PTIBUS__V1__PAYER__PAYER_MSA);
    assert_string_equal(e->person->nir, "1790355029045");
    assert_int_equal(e->file_state, PTIBUS__V1__RSA_FILE_STATE__RSA_FILE_STATE_OPEN_SUSPENDED);
    assert_string_equal(e->suspension_reason_code, "01");
    /* nothing of household 1's first person (who has an IDASSEDIC) stays for this one */
    assert_string_equal(e->person->france_travail_id, "");
    assert_int_equal(e->household_size, 1);
    /* household 4: awaiting decision, a new claim */
    e = find(&g, "GAR\xc3\x87ON", K_NEW);
    assert_non_null(e);
    assert_int_equal(e->file_state, PTIBUS__V1__RSA_FILE_STATE__RSA_FILE_STATE_AWAITING_DECISION);
    assert_false(e->droits_et_devoirs);
    assert_null(find(&g, "GAR\xc3\x87ON", K_DD));
    got_free(&g);
}

/* The household with a bad NIR key is one record error that names the element and
 * never the NIR or the name; the households after it still go. */
static void
test_bad_nir_key_refuses_its_household_only(void **state)
{
    (void)state;
    got_t g = {0};
    pt_codec_outcome_t out;
    assert_int_equal(decode_path(PT_FIXTURES_DIR "/cnaf/flux-1252.xml", &g, &out), 0);
    assert_int_equal(g.nerr, 1);
    assert_int_equal(out.errors, 1);
    const pt_record_error_t *e = &g.errors[0];
    assert_string_equal(e->where, "/Racine/InfosFoyerRSA[3]/Personne/Identification/NIR");
    assert_non_null(strstr(e->msg, "key"));
    assert_non_null(strstr(e->msg, "line "));
    assert_true(e->line > 0);
    assert_null(strstr(e->msg, "2920155545012"));
    assert_null(strstr(e->msg, "292015554501299"));
    assert_null(strstr(e->msg, "B\xc3\x89RANGER"));
    assert_int_equal(g.err_index[0], 5); /* after the 5 events of households 1 and 2 */
    assert_non_null(find(&g, "GAR\xc3\x87ON", K_NEW));
    got_free(&g);
}

/* A household whose events the contract refuses (here its commune code) is one error and
 * none of its events. */
static void
test_refused_household_sends_no_event(void **state)
{
    (void)state;
    got_t g = {0};
    pt_codec_outcome_t out;
    uint8_t *doc;
    size_t len;
    assert_int_equal(tu_read_file(PT_FIXTURES_DIR "/cnaf/flux-1252.xml", &doc, &len), 0);
    char *p = memmem(doc, len, "<NUMCOM>55545</NUMCOM>", 22);
    assert_non_null(p);
    memcpy(p + 8, "5X545", 5);
    assert_int_equal(decode_text((char *)doc, len, &g, &out), 0);
    assert_int_equal(g.nerr, 2);
    assert_string_equal(g.errors[0].where, "/Racine/InfosFoyerRSA");
    assert_non_null(strstr(g.errors[0].msg, "beneficiaryEvent.inseeCommune"));
    assert_int_equal(g.n, 3); /* households 2 and 4 only */
    assert_null(find(&g, "DUPR\xc3\x89-LEF\xc3\x88VRE", K_STATE));
    assert_null(find(&g, "C\xc5\x92UR", K_DD));
    got_free(&g);
    free(doc);
}

static void
test_bad_count_fixture(void **state)
{
    (void)state;
    got_t g = {0};
    pt_codec_outcome_t out;
    assert_int_equal(decode_path(PT_FIXTURES_DIR "/cnaf/flux-bad-count.xml", &g, &out), 0);
    assert_non_null(strstr(out.warning.msg, "announces 9 households, the file holds 4"));
    assert_int_equal(g.n, 6);
    got_free(&g);
}

static void
test_whole_file_refusals(void **state)
{
    (void)state;
    got_t g = {0};
    pt_codec_outcome_t out;
    uint8_t *doc;
    size_t len;
    assert_int_equal(tu_read_file(PT_FIXTURES_DIR "/cnaf/flux-1252.xml", &doc, &len), 0);
    /* truncated in the middle of household 3 */
    assert_int_equal(decode_text((char *)doc, len * 3 / 4, &g, &out), PT_EMALFORMED);
    assert_true(out.error.line > 1);
    assert_non_null(strstr(out.error.msg, "line "));
    got_free(&g);
    /* windows-1252 bytes declared UTF-8: refused with the line, never guessed */
    char *p = memmem(doc, len, "windows-1252", 12);
    assert_non_null(p);
    memcpy(p, "UTF-8", 5);
    memmove(p + 5, p + 12, len - (size_t)(p + 12 - (char *)doc));
    len -= 7;
    assert_int_equal(decode_text((char *)doc, len, &g, &out), PT_EMALFORMED);
    assert_non_null(strstr(out.error.msg, "invalid byte sequence for the encoding UTF-8"));
    assert_true(out.error.line > 2);
    got_free(&g);
    free(doc);
    const char *other = "<?xml version=\"1.0\"?><Racine xmlns=\"urn:x\"/>";
    assert_int_equal(decode_text(other, strlen(other), &g, &out), PT_EMALFORMED);
    assert_non_null(strstr(out.error.msg, "root element must be Racine"));
    const char *dtd = "<?xml version=\"1.0\"?><!DOCTYPE Racine SYSTEM \"file:///etc/passwd\">"
                      "<Racine/>";
    assert_int_equal(decode_text(dtd, strlen(dtd), &g, &out), PT_EMALFORMED);
    assert_non_null(strstr(out.error.msg, "DOCTYPE"));
    got_free(&g);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_ouvert),
        cmocka_unit_test(test_sample_bem_count_mismatch),
        cmocka_unit_test(test_windows_1252_fixture),
        cmocka_unit_test(test_bad_nir_key_refuses_its_household_only),
        cmocka_unit_test(test_refused_household_sends_no_event),
        cmocka_unit_test(test_bad_count_fixture),
        cmocka_unit_test(test_whole_file_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
