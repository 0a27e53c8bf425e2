/* test_ft_extract: France Travail's daily extract, the public sample as it is (44 columns,
 * literal NULL, "YYYY-MM-DD 00:00:00.0" dates, dotted header names, FAKE ROME codes) and
 * synthetic bad rows (no identifier, a date in another form, an e-mail the contract
 * refuses, a ragged row), each reported with its line and column and without its value;
 * a missing column refuses the file. */
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
#include "ft_extract.h"
#include "validate.h"

#define SAMPLE                                                                                     \
    PT_SAMPLES_DIR "/carnet-de-bord/"                                                              \
                   "i03300c.j.extract_spie_carnet_spie_carnet_de_bord_principal.csv"

static int
decode_path(const char *path, got_t *g, pt_codec_outcome_t *out)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    pt_codec_source_t src = {fd, "extract.csv"};
    int rc = ft_extract_codec.decode(NULL, &src, collect, g, out);
    close(fd);
    return rc;
}

static void
test_public_sample(void **state)
{
    (void)state;
    got_t g = {0};
    pt_codec_outcome_t out;
    assert_int_equal(decode_path(SAMPLE, &g, &out), 0);
    assert_int_equal(g.nerr, 0);
    assert_int_equal(g.n, 4);
    const Ptibus__V1__FollowUpEvent *f = g.env[0]->follow_up_event;
    assert_int_equal(f->kind, PTIBUS__V1__FOLLOW_UP_KIND__FOLLOW_UP_KIND_SITUATION);
    assert_string_equal(f->person->france_travail_uid, "71288a46-3c4d-4372-9298-c32936d7e76d");
    assert_int_equal(f->person->sex, PTIBUS__V1__SEX__SEX_FEMALE);
    assert_string_equal(f->person->last_name, "TIFOUR");
    assert_string_equal(f->person->first_names, "SOPHIE");
    assert_string_equal(f->person->birth_date, "1982-02-01");
    assert_string_equal(f->modality_code, "GUIDE");
    assert_string_equal(f->occurred_on, "2017-05-22");
    assert_int_equal(f->reported_by->kind, PTIBUS__V1__ORG_KIND__ORG_KIND_FT);
    assert_string_equal(f->reported_by->name, "RETHEL");
    assert_string_equal(f->referent->name, "RETHEL");
    assert_string_equal(f->referent->agent->name, "Referent_prenom 1 REFERENT_NOM 1");
    assert_string_equal(f->referent->agent->email, "sanka@groupe-ns.fr");
    assert_int_equal(strlen(f->event_id), 32);
    f = g.env[1]->follow_up_event;
    assert_int_equal(f->person->sex, PTIBUS__V1__SEX__SEX_MALE);
    assert_string_equal(f->modality_code, "RENFORCE");
    got_free(&g);
}

static void
test_bad_rows(void **state)
{
    (void)state;
    got_t g = {0};
    pt_codec_outcome_t out;
    assert_int_equal(decode_path(PT_FIXTURES_DIR "/ft_extract/bad-rows.csv", &g, &out), 0);
    assert_int_equal(g.n, 2);
    /* NULL is empty: no référent, no start date */
    const Ptibus__V1__FollowUpEvent *f = g.env[1]->follow_up_event;
    assert_null(f->referent->agent);
    assert_string_equal(f->occurred_on, "");
    assert_string_equal(f->person->last_name, "NO\xc3\x8bL");
    static const char *const want[] = {
        "line 3: identifiant_unique_de: is required",
        "line 4: date_naissance: must be a date YYYY-MM-DD 00:00:00.0",
        "line 5: followUpEvent.referent.agent.email: ",
        "line 6: 43 fields where the header has 44",
    };
    assert_int_equal(g.nerr, 4);
    for (size_t i = 0; i < 4; i++) {
        if (strncmp(g.errors[i].msg, want[i], strlen(want[i])) != 0)
            fail_msg("error %zu: \"%s\" does not start with \"%s\"", i, g.errors[i].msg, want[i]);
        assert_null(strstr(g.errors[i].msg, "pas-un-courriel"));
        assert_null(strstr(g.errors[i].msg, "14/07/1985"));
        assert_null(strstr(g.errors[i].msg, "DUPR"));
    }
    got_free(&g);
    assert_int_equal(decode_path(PT_FIXTURES_DIR "/ft_extract/missing-column.csv", &g, &out),
                     PT_EMALFORMED);
    assert_string_equal(out.error.msg, "line 1: the column modalite_accompagnement is missing");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_public_sample),
        cmocka_unit_test(test_bad_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
