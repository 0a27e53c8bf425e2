/* test_caf_csv: the CAF/MSA import CSV: the exact bytes written (header, quoting, CRLF,
 * windows-1252), the round trip encode → decode compared field by field for sanctions
 * (CAF and MSA households) and orientations, in both encodings, and bad rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "caf_csv.h"
#include "codec.h"
#include "samples.h"
#include "validate.h"

typedef struct sink {
    char buf[8192];
    size_t len;
} sink_t;

static int
to_sink(void *ctx, const void *data, size_t len)
{
    sink_t *s = ctx;
    assert_true(s->len + len < sizeof s->buf);
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    s->buf[s->len] = '\0';
    return 0;
}

typedef struct got {
    size_t n, nerr;
    Ptibus__V1__Envelope *env[8];
    pt_record_error_t errors[8];
} got_t;

static int
collect(void *ctx, const pt_record_t *rec)
{
    got_t *g = ctx;
    if (rec->error != NULL) {
        g->errors[g->nerr++] = *rec->error;
        return 0;
    }
    uint8_t *buf;
    size_t len;
    pt_error_t err;
    assert_int_equal(codec_pack(&rec->env->base, SIZE_MAX, &buf, &len, &err), 0);
    g->env[g->n++] = ptibus__v1__envelope__unpack(NULL, len, buf);
    free(buf);
    return 0;
}

static void
got_free(got_t *g)
{
    for (size_t i = 0; i < g->n; i++)
        ptibus__v1__envelope__free_unpacked(g->env[i], NULL);
    memset(g, 0, sizeof *g);
}

static void
decode(const sink_t *s, const char *encoding, got_t *g)
{
    csv_options_t o = {.encoding = encoding ? CSV_WINDOWS_1252 : CSV_UTF8};
    csv_reader_t *r;
    pt_codec_outcome_t out;
    assert_int_equal(csv_open_memory(&r, s->buf, s->len, &o), 0);
    assert_int_equal(caf_csv_decode(r, collect, g, &out), 0);
    csv_close(&r);
}

static void
same_person(const Ptibus__V1__PersonRef *a, const Ptibus__V1__PersonRef *b)
{
    assert_string_equal(a->nir, b->nir);
    assert_string_equal(a->birth_date, b->birth_date);
    assert_string_equal(a->last_name, b->last_name);
    assert_string_equal(a->birth_name, b->birth_name);
    assert_string_equal(a->first_names, b->first_names);
    assert_int_equal(a->sex, b->sex);
    assert_int_equal(a->payer, b->payer);
    assert_string_equal(a->payer_office, b->payer_office);
    assert_string_equal(a->file_number, b->file_number);
    assert_int_equal(a->role, b->role);
}

static void
same_sanction(const Ptibus__V1__Sanction *a, const Ptibus__V1__Sanction *b)
{
    assert_string_equal(a->sanction_id, b->sanction_id);
    same_person(a->person, b->person);
    assert_int_equal(a->household_size, b->household_size);
    assert_int_equal(a->legal_ground, b->legal_ground);
    assert_int_equal(a->measure, b->measure);
    assert_int_equal(a->stage, b->stage);
    assert_int_equal(a->rate_percent, b->rate_percent);
    assert_int_equal(a->duration_months, b->duration_months);
    assert_string_equal(a->starts_on, b->starts_on);
    assert_string_equal(a->ends_on, b->ends_on);
    assert_string_equal(a->notified_on, b->notified_on);
    assert_int_equal(a->decided_by->kind, b->decided_by->kind);
    assert_string_equal(a->decided_by->name, b->decided_by->name);
    assert_int_equal(a->phase, b->phase);
}

static void
same_orientation(const Ptibus__V1__Orientation *a, const Ptibus__V1__Orientation *b)
{
    assert_string_equal(a->orientation_id, b->orientation_id);
    assert_int_equal(a->version, b->version);
    same_person(a->person, b->person);
    assert_int_equal(a->category, b->category);
    assert_string_equal(a->category_code, b->category_code);
    assert_int_equal(a->status, b->status);
    assert_string_equal(a->starts_on, b->starts_on);
    assert_string_equal(a->ends_on, b->ends_on);
    assert_string_equal(a->decided_on, b->decided_on);
    assert_int_equal(a->referent_org->kind, b->referent_org->kind);
    assert_string_equal(a->referent_org->name, b->referent_org->name);
}

static void
round_trip(const char *encoding)
{
    td_sample_t caf, msa, ori;
    td_sample_sanction(&caf, "m-1", PTIBUS__V1__PAYER__PAYER_CAF);
    td_sample_sanction(&msa, "m-2", PTIBUS__V1__PAYER__PAYER_MSA);
    msa.person.last_name = "C\xc5\x93ur-Gar\xc3\xa7on; \"dit\" Z\xc3\xa9";
    msa.person.birth_name = "Gar\xc3\xa7on";
    msa.sanction.measure = PTIBUS__V1__SANCTION_MEASURE__SANCTION_MEASURE_LIFTED;
    msa.sanction.rate_percent = 0;
    msa.sanction.duration_months = 0;
    msa.person.file_number = "000123";
    td_sample_orientation(&ori, "m-3");
    const Ptibus__V1__Envelope *envs[] = {&caf.env, &msa.env, &ori.env};
    sink_t s = {.len = 0};
    pt_error_t err;
    pt_codec_config_t cfg = {.encoding = encoding};
    assert_int_equal(caf_csv_codec.encode(&cfg, envs, 3, to_sink, &s, &err), 0);
    got_t g = {0};
    decode(&s, encoding, &g);
    assert_int_equal(g.nerr, 0);
    assert_int_equal(g.n, 3);
    same_sanction(g.env[0]->sanction, &caf.sanction);
    same_sanction(g.env[1]->sanction, &msa.sanction);
    same_orientation(g.env[2]->orientation, &ori.orientation);
    got_free(&g);
}

static void
test_round_trip_utf8(void **state)
{
    (void)state;
    round_trip(NULL);
}

static void
test_round_trip_windows_1252(void **state)
{
    (void)state;
    round_trip("windows-1252");
}

static void
test_bytes_written(void **state)
{
    (void)state;
    td_sample_t x;
    td_sample_sanction(&x, "m-1", PTIBUS__V1__PAYER__PAYER_MSA);
    const Ptibus__V1__Envelope *envs[] = {&x.env};
    sink_t s = {.len = 0};
    pt_error_t err;
    pt_codec_config_t cfg = {.encoding = "windows-1252"};
    assert_int_equal(caf_csv_codec.encode(&cfg, envs, 1, to_sink, &s, &err), 0);
    const char *want =
        "type;id;payeur;numorg;matricule;nir;nom;nom_naissance;prenoms;date_naissance;sexe;role;"
        "foyer;decision;code;statut;etape;taux;duree_mois;debut;fin;date_decision;"
        "organisme_type;organisme\r\n"
        "SANCTION;SAN-2026-0042;MSA;521;1234567;285057800608441;Tifour;;Sophie;1985-05-12;2;DEM;"
        "2;SUSPENSION_REMOBILISATION;NON_COMPLIANCE;DECISION;1;30;1;2026-12-01;2026-12-31;"
        "2026-11-10;CD;Conseil d\xe9partemental de la Meuse\r\n";
    assert_string_equal(s.buf, want);
    /* other families have no CSV form; a character windows-1252 lacks is refused */
    td_sample_t t;
    td_sample_training_offer(&t, "m-2");
    const Ptibus__V1__Envelope *bad[] = {&t.env};
    assert_int_equal(caf_csv_codec.encode(&cfg, bad, 1, to_sink, &s, &err), PT_EINVALID);
    assert_non_null(strstr(err.msg, "envelope 0: only sanctions and orientations"));
    x.person.last_name = "\xe4\xb8\xad";
    assert_int_equal(caf_csv_codec.encode(&cfg, envs, 1, to_sink, &s, &err), PT_EINVALID);
    assert_string_equal(err.msg, "envelope 0: field 7: a character has no windows-1252 form");
}

static void
test_bad_rows(void **state)
{
    (void)state;
    sink_t s = {.len = 0};
    const char *head = "type;id;payeur;numorg;matricule;nir;nom;nom_naissance;prenoms;"
                       "date_naissance;sexe;role;foyer;decision;code;statut;etape;taux;"
                       "duree_mois;debut;fin;date_decision;organisme_type;organisme\n";
    to_sink(&s, head, strlen(head));
    const char *rows =
        "SANCTION;S1;CAF;521;1;;X;;Y;;3;DEM;;LIFTED;NON_COMPLIANCE;DECISION;1;;;;;;;\n"
        "SANCTION;S2;CAF;521;1;;X;;Y;;;DEM;;NOPE;NON_COMPLIANCE;DECISION;1;;;;;;;\n"
        "SANCTION;S3;CAF;521;1;;X;;Y;;;DEM;;LIFTED;NON_COMPLIANCE;DECISION;x;;;;;;;\n"
        "OTHER;S4;CAF;521;1;;X;;Y;;;DEM;;LIFTED;NON_COMPLIANCE;DECISION;1;;;;;;;\n"
        "SANCTION;S5;CAF;521;1\n"
        "SANCTION;S6;CAF;521;1;;X;;Y;;;DEM;;LIFTED;NON_COMPLIANCE;DECISION;1;;;;;;;\n";
    to_sink(&s, rows, strlen(rows));
    got_t g = {0};
    decode(&s, NULL, &g);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.env[0]->sanction->sanction_id, "S6");
    assert_int_equal(g.nerr, 5);
    assert_string_equal(g.errors[0].msg, "line 2: sexe: must be 1, 2 or empty");
    assert_string_equal(g.errors[1].msg, "line 3: decision: is not one of the documented values");
    assert_string_equal(g.errors[2].msg, "line 4: etape: must be a whole number");
    assert_string_equal(g.errors[3].msg, "line 5: type: must be SANCTION or ORIENTATION");
    assert_string_equal(g.errors[4].msg, "line 6: 5 fields where the header has 24");
    got_free(&g);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_utf8),
        cmocka_unit_test(test_round_trip_windows_1252),
        cmocka_unit_test(test_bytes_written),
        cmocka_unit_test(test_bad_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
