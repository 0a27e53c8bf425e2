/* test_imilo: the i-milo-like JSON of the Missions Locales: a synthetic file
 * (tests/fixtures/imilo/, with a BOM) decoded field by field into Referrals and
 * ReferralStatuses with per-record errors by JSON path; statuses encoded and decoded back
 * (round trip); hostile JSON (duplicate key, integer out of range, invalid UTF-8, depth,
 * truncation) refused without quoting the input. */
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

#include "records.h"
#include "codec.h"
#include "imilo.h"
#include "samples.h"
#include "validate.h"

static void
test_fixture(void **state)
{
    (void)state;
    int fd = open(PT_FIXTURES_DIR "/imilo/dossiers.json", O_RDONLY);
    assert_true(fd >= 0);
    got_t g = {0};
    pt_codec_outcome_t out;
    pt_codec_source_t src = {fd, "dossiers.json"};
    assert_int_equal(imilo_codec.decode(NULL, &src, collect, &g, &out), 0);
    close(fd);
    assert_int_equal(g.n, 3);
    const Ptibus__V1__Referral *r = g.env[0]->referral;
    assert_string_equal(r->referral_id, "PRE-MLN-2027-0001");
    assert_string_equal(r->person->nir, "2040555502512");
    assert_string_equal(r->person->last_name, "Lef\xc3\xa8vre");
    assert_string_equal(r->person->first_names, "In\xc3\xa8s");
    assert_string_equal(r->person->birth_date, "2004-05-12");
    assert_string_equal(r->person->france_travail_id, "00098765432");
    assert_int_equal(r->prescriber_org->kind, PTIBUS__V1__ORG_KIND__ORG_KIND_ML);
    assert_string_equal(r->prescriber_org->name, "Mission Locale du Nord Meusien");
    assert_string_equal(r->prescriber_org->siret, "00000000000042");
    assert_string_equal(r->prescriber_org->partner_id, "ml_nord");
    assert_string_equal(r->prescriber_org->agent->name, "Camille Conseill\xc3\xa8re");
    assert_string_equal(r->prescriber_org->agent->email, "conseillere@example.org");
    assert_int_equal(r->target_org->kind, PTIBUS__V1__ORG_KIND__ORG_KIND_SIAE);
    assert_string_equal(r->target_org->partner_id, "siae_verdun");
    assert_int_equal(r->target_service->kind, PTIBUS__V1__SERVICE_KIND__SERVICE_KIND_ACCOMPANIMENT);
    assert_string_equal(r->target_service->category, "chantier d'insertion");
    assert_string_equal(r->reason, "Remobilisation; projet \"espaces verts\"");
    assert_string_equal(r->available_from, "2027-01-10");
    assert_int_equal(r->contact_preference,
                     PTIBUS__V1__CONTACT_PREFERENCE__CONTACT_PREFERENCE_PHONE);
    r = g.env[1]->referral;
    assert_int_equal(r->target_service->kind, PTIBUS__V1__SERVICE_KIND__SERVICE_KIND_TRAINING);
    assert_string_equal(r->target_service->training_action_ref, "F-CARISTE/A1/S1");
    assert_null(r->prescriber_org->agent);
    const Ptibus__V1__ReferralStatus *s = g.env[2]->referral_status;
    assert_string_equal(s->referral_id, "PRE-CD-2026-0100");
    assert_int_equal(s->state, PTIBUS__V1__REFERRAL_STATE__REFERRAL_STATE_ACCEPTED);
    assert_string_equal(s->effective_on, "2026-12-02");
    assert_string_equal(s->reporting_org->partner_id, "ml_nord");
    assert_int_equal(g.nerr, 3);
    assert_string_equal(g.errors[0].where, "$.dossiers[1].prescriptions[0]");
    assert_non_null(strstr(g.errors[0].msg, "referral.person: needs an identifier"));
    assert_string_equal(g.errors[1].msg, "$.dossiers[1].prescriptions[1].type: must be one of "
                                         "ACCOMPAGNEMENT, FORMATION, ATELIER, AIDE_FINANCIERE, "
                                         "AIDE_MATERIELLE, INFORMATION, EMPLOI");
    assert_string_equal(g.errors[2].msg,
                        "$.retours[1]: referralStatus.reason: is required when state is REFUSED");
    got_free(&g);
}

typedef struct sink {
    char buf[4096];
    size_t len;
} sink_t;

static int
to_sink(void *ctx, const void *data, size_t len)
{
    sink_t *s = ctx;
    assert_true(s->len + len < sizeof s->buf);
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    return 0;
}

static void
test_status_round_trip(void **state)
{
    (void)state;
    td_sample_t a, b;
    td_sample_referral_status(&a, "m-1", "ref-1");
    td_sample_referral_status(&b, "m-2", "ref-2");
    b.referral_status.state = PTIBUS__V1__REFERRAL_STATE__REFERRAL_STATE_REFUSED;
    b.referral_status.reason = "Pas de place avant mars; \"liste d'attente\"";
    b.referral_status.reporting_org = NULL;
    const Ptibus__V1__Envelope *envs[] = {&a.env, &b.env};
    sink_t s = {.len = 0};
    pt_error_t err;
    assert_int_equal(imilo_codec.encode(NULL, envs, 2, to_sink, &s, &err), 0);
    got_t g = {0};
    pt_codec_outcome_t out;
    assert_int_equal(imilo_decode(s.buf, s.len, collect, &g, &out), 0);
    assert_int_equal(g.nerr, 0);
    assert_int_equal(g.n, 2);
    for (size_t i = 0; i < 2; i++) {
        const Ptibus__V1__ReferralStatus *x = g.env[i]->referral_status,
                                         *y = envs[i]->referral_status;
        assert_string_equal(x->referral_id, y->referral_id);
        assert_int_equal(x->state, y->state);
        assert_string_equal(x->reason, y->reason);
        assert_string_equal(x->effective_on, y->effective_on);
        assert_int_equal(x->reporting_org != NULL, y->reporting_org != NULL);
        if (y->reporting_org) {
            assert_int_equal(x->reporting_org->kind, y->reporting_org->kind);
            assert_string_equal(x->reporting_org->name, y->reporting_org->name);
            assert_string_equal(x->reporting_org->partner_id, y->reporting_org->partner_id);
        }
    }
    got_free(&g);
    td_sample_t o;
    td_sample_orientation(&o, "m-3");
    const Ptibus__V1__Envelope *bad[] = {&o.env};
    assert_int_equal(imilo_codec.encode(NULL, bad, 1, to_sink, &s, &err), PT_EINVALID);
}

static void
refused(const char *doc, size_t len, int code, const char *msg)
{
    got_t g = {0};
    pt_codec_outcome_t out;
    assert_int_equal(imilo_decode(doc, len, collect, &g, &out), code);
    if (strstr(out.error.msg, msg) == NULL)
        fail_msg("\"%s\" does not hold \"%s\"", out.error.msg, msg);
    assert_null(strstr(out.error.msg, "Dupont"));
    assert_int_equal(g.n + g.nerr, 0);
}

static void
test_hostile_json(void **state)
{
    (void)state;
    const char *dup = "{\"dossiers\": [{\"jeune\": {\"nom\": \"Dupont\", \"nom\": \"Dupont\"}}]}";
    refused(dup, strlen(dup), PT_EMALFORMED, "column 47: a key appears twice in an object");
    const char *big = "{\"version\": 99999999999999999999}";
    refused(big, strlen(big), PT_EMALFORMED, "an integer is out of range");
    const char *utf = "{\"dossiers\": [{\"jeune\": {\"nom\": \"Dupont\xe9\"}}]}";
    refused(utf, strlen(utf), PT_EMALFORMED, "offset 39: invalid UTF-8");
    const char *tok = "{\"dossiers\": [{\"jeune\": Dupont}]}";
    refused(tok, strlen(tok), PT_EMALFORMED, "line 1, column 30: malformed JSON");
    const char *cut = "{\"dossiers\": [{\"jeune\": {\"nom\": \"Dup";
    refused(cut, strlen(cut), PT_EMALFORMED, "the file ends too early");
    char deep[128] = "{\"x\":";
    for (int i = 0; i < 20; i++)
        strcat(deep, "[");
    for (int i = 0; i < 20; i++)
        strcat(deep, "]");
    strcat(deep, "}");
    refused(deep, strlen(deep), PT_ETOOLARGE, "nested deeper than 16");
    refused("[]", 2, PT_EMALFORMED, "$: must be an object");
    refused("{\"version\": 2}", 14, PT_EVERSION, "only version 1");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture),
        cmocka_unit_test(test_status_round_trip),
        cmocka_unit_test(test_hostile_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
