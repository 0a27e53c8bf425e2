/* test_cd_csv: the Département's orientation export (tests/fixtures/cd_csv/): columns
 * found by label in any order, `*` marks, BOM and CRLF, three date forms, a quoted `;`,
 * a ragged last part, each bad-row kind with its line and column and without its value;
 * a missing required column (the public beneficiary import is another export) refuses
 * the file. */
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
#include "cd_csv.h"
#include "codec.h"
#include "validate.h"

static int
decode_path(const char *path, got_t *g, pt_codec_outcome_t *out)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    pt_codec_source_t src = {fd, "x.csv"};
    int rc = cd_csv_codec.decode(NULL, &src, collect, g, out);
    close(fd);
    return rc;
}

static void
test_dates(void **state)
{
    (void)state;
    char d[11];
    assert_true(cd_csv_date("1998-05-25", d));
    assert_string_equal(d, "1998-05-25");
    assert_true(cd_csv_date("25/05/1998", d));
    assert_string_equal(d, "1998-05-25");
    assert_true(cd_csv_date("22-04-1997", d));
    assert_string_equal(d, "1997-04-22");
    assert_true(cd_csv_date("", d));
    assert_string_equal(d, "");
    assert_false(cd_csv_date("31/02/1990", d));
    assert_false(cd_csv_date("1998/05/25", d));
    assert_false(cd_csv_date("25.05.1998", d));
    assert_false(cd_csv_date("5/5/1998", d));
}

static void
test_orientations(void **state)
{
    (void)state;
    got_t g = {0};
    pt_codec_outcome_t out;
    assert_int_equal(decode_path(PT_FIXTURES_DIR "/cd_csv/orientations.csv", &g, &out), 0);
    assert_int_equal(g.n, 3);
    const Ptibus__V1__Envelope *e = g.env[0];
    const Ptibus__V1__Orientation *o = e->orientation;
    assert_string_equal(e->territory, "nord_meusien");
    assert_string_equal(o->orientation_id, "ORI-2027-0001");
    assert_int_equal(o->version, 1);
    assert_int_equal(o->category, PTIBUS__V1__ORIENTATION_CATEGORY__ORIENTATION_CATEGORY_PRO);
    assert_string_equal(o->category_code, "PP");
    assert_int_equal(o->status, PTIBUS__V1__ORIENTATION_STATUS__ORIENTATION_STATUS_ORIENTED);
    assert_int_equal(o->origin, PTIBUS__V1__ORIENTATION_ORIGIN__ORIENTATION_ORIGIN_MANUAL);
    assert_string_equal(o->decided_on, "2027-01-15");
    assert_string_equal(o->starts_on, "2027-02-01");
    assert_string_equal(o->ends_on, "");
    assert_int_equal(o->referent_org->kind, PTIBUS__V1__ORG_KIND__ORG_KIND_FT);
    assert_string_equal(o->referent_org->name, "France Travail Verdun");
    assert_string_equal(o->referent_org->partner_id, "pole_emploi");
    assert_int_equal(o->deciding_org->kind, PTIBUS__V1__ORG_KIND__ORG_KIND_CD);
    const Ptibus__V1__PersonRef *p = o->person;
    assert_string_equal(p->departement_id, "000451");
    assert_string_equal(p->nir, "285075550212334");
    assert_string_equal(p->first_names, "H\xc3\xa9l\xc3\xa8ne");
    assert_string_equal(p->last_name, "Dupr\xc3\xa9");
    assert_string_equal(p->birth_date, "1985-07-14");
    assert_int_equal(p->payer, PTIBUS__V1__PAYER__PAYER_CAF);
    assert_string_equal(p->payer_office, "551");
    assert_string_equal(p->file_number, "000012345678901");
    assert_string_equal(p->france_travail_id, "00012345678");
    o = g.env[1]->orientation;
    assert_int_equal(o->version, 2);
    assert_int_equal(o->category, PTIBUS__V1__ORIENTATION_CATEGORY__ORIENTATION_CATEGORY_SOCIAL);
    assert_string_equal(o->category_code, "PS");
    assert_string_equal(o->referent_org->name, "Service insertion; Bar-le-Duc");
    assert_string_equal(o->person->birth_date, "1979-03-02");
    assert_string_equal(o->decided_on, "2027-01-16");
    assert_int_equal(o->person->payer, PTIBUS__V1__PAYER__PAYER_MSA);
    o = g.env[2]->orientation; /* its trailing fields are left out */
    assert_int_equal(o->version, 1);
    assert_int_equal(o->category, PTIBUS__V1__ORIENTATION_CATEGORY__ORIENTATION_CATEGORY_SOCIO_PRO);
    assert_string_equal(o->category_code, "AS");
    assert_string_equal(o->person->birth_date, "1979-03-01");
    assert_string_equal(g.env[2]->territory, "");

    static const char *const want[] = {
        "line 5: Date de naissance: must be a date YYYY-MM-DD, DD/MM/YYYY or DD-MM-YYYY",
        "line 6: Orientation: must be social, professionnel or socio-professionnel",
        "line 7: Nom: is required",
        "line 8: orientation.person.nir: ",
        "line 9: Organisme payeur: must be CAF or MSA",
        "line 10: orientation.person.payer: is required with fileNumber",
    };
    assert_int_equal(g.nerr, 6);
    for (size_t i = 0; i < 6; i++) {
        if (strncmp(g.errors[i].msg, want[i], strlen(want[i])) != 0)
            fail_msg("error %zu: \"%s\" does not start with \"%s\"", i, g.errors[i].msg, want[i]);
        assert_int_equal(g.errors[i].line, i + 5);
        assert_null(strstr(g.errors[i].msg, "188025512203499"));
        assert_null(strstr(g.errors[i].msg, "Gar\xc3\xa7on"));
        assert_null(strstr(g.errors[i].msg, "intensif"));
    }
    assert_string_equal(g.errors[0].where, "Date de naissance");
    got_free(&g);
}

static void
test_missing_required_column(void **state)
{
    (void)state;
    got_t g = {0};
    pt_codec_outcome_t out;
    assert_int_equal(
        decode_path(PT_SAMPLES_DIR "/carnet-de-bord/import_beneficiaires.csv", &g, &out),
        PT_EMALFORMED);
    assert_string_equal(out.error.msg, "line 1: the required column \"Identifiant d\xc3\xa9"
                                       "cision*\" is missing");
    assert_int_equal(g.n + g.nerr, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_orientations),
        cmocka_unit_test(test_missing_required_column),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
