/* test_ft_csv: France Travail's legacy CSV flow on tests/fixtures/ft_csv/ (BOM, CRLF,
 * quoted `;` and doubled quotes, a multi-line motif, leading zeros, every bad row kind),
 * the same flow in LF without BOM, and the files refused as a whole. */
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

#include "codec.h"
#include "ft_csv.h"
#include "testutil.h"
#include "validate.h"

#define MAX 32

typedef struct got {
    size_t n, nerr;
    Ptibus__V1__Envelope *env[MAX];
    unsigned long line[MAX];
    pt_record_error_t errors[MAX];
} got_t;

static int
collect(void *ctx, const pt_record_t *rec)
{
    got_t *g = ctx;
    if (rec->error != NULL) {
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
    assert_int_equal(codec_pack(&e.base, SIZE_MAX, &buf, &len, &err), 0);
    g->line[g->n] = rec->line;
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

static int
decode_mem(const void *buf, size_t len, got_t *g, pt_codec_outcome_t *out)
{
    csv_reader_t *r;
    assert_int_equal(csv_open_memory(&r, buf, len, NULL), 0);
    int rc = ft_csv_decode(r, collect, g, out);
    csv_close(&r);
    return rc;
}

static int
decode_fixture(const char *name, got_t *g, pt_codec_outcome_t *out)
{
    char path[512];
    snprintf(path, sizeof path, PT_FIXTURES_DIR "/ft_csv/%s", name);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    pt_codec_source_t src = {fd, name};
    int rc = ft_csv_codec.decode(NULL, &src, collect, g, out);
    close(fd);
    return rc;
}

static void
check_flux(const got_t *g, const pt_codec_outcome_t *out)
{
    assert_int_equal(g->n, 5);
    assert_int_equal(g->nerr, 6);
    assert_int_equal(out->records, 5);
    assert_int_equal(out->errors, 6);
    /* line 2: ACC; the quoted motif keeps its `;` and quotes; identifiers keep zeros */
    const Ptibus__V1__FollowUpEvent *f = g->env[0]->follow_up_event;
    assert_int_equal(g->env[0]->body_case, PTIBUS__V1__ENVELOPE__BODY_FOLLOW_UP_EVENT);
    assert_int_equal(g->line[0], 2);
    assert_int_equal(f->kind, PTIBUS__V1__FOLLOW_UP_KIND__FOLLOW_UP_KIND_ACCOMPANIMENT_STARTED);
    assert_string_equal(f->source_code, "ACC");
    assert_string_equal(f->occurred_on, "2027-03-02");
    assert_string_equal(f->reason, "Accompagnement \"global\"; r\xc3\xa9"
                                   "f\xc3\xa9rente d\xc3\xa9sign\xc3\xa9"
                                   "e");
    assert_string_equal(f->person->nir, "2850755502123");
    assert_string_equal(f->person->france_travail_id, "00012345678");
    assert_string_equal(f->person->last_name, "Dupr\xc3\xa9");
    assert_string_equal(f->person->first_names, "H\xc3\xa9l\xc3\xa8ne");
    assert_string_equal(f->person->birth_date, "1985-07-14");
    assert_int_equal(f->reported_by->kind, PTIBUS__V1__ORG_KIND__ORG_KIND_FT);
    assert_int_equal(strlen(f->event_id), 32);
    /* line 3: INS without a NIR */
    f = g->env[1]->follow_up_event;
    assert_int_equal(f->kind, PTIBUS__V1__FOLLOW_UP_KIND__FOLLOW_UP_KIND_REGISTERED);
    assert_string_equal(f->person->nir, "");
    assert_string_equal(f->person->france_travail_id, "0004567890X");
    /* line 4: PSA, a sanction proposal to the Département */
    assert_int_equal(g->env[2]->body_case, PTIBUS__V1__ENVELOPE__BODY_SANCTION);
    const Ptibus__V1__Sanction *s = g->env[2]->sanction;
    assert_int_equal(s->phase, PTIBUS__V1__SANCTION_PHASE__SANCTION_PHASE_PROPOSAL);
    assert_int_equal(s->legal_ground, PTIBUS__V1__LEGAL_GROUND__LEGAL_GROUND_NON_COMPLIANCE);
    assert_int_equal(s->measure,
                     PTIBUS__V1__SANCTION_MEASURE__SANCTION_MEASURE_SUSPENSION_REMOBILISATION);
    assert_int_equal(s->stage, 1);
    assert_int_equal(s->rate_percent, 30);
    assert_int_equal(s->duration_months, 1);
    assert_string_equal(s->starts_on, "2027-03-04");
    assert_string_equal(s->person->nir, "1790355029045");
    assert_string_equal(s->person->last_name, "C\xc5\x93ur");
    assert_int_equal(s->proposed_by->kind, PTIBUS__V1__ORG_KIND__ORG_KIND_FT);
    /* line 5: REP with a motif over two lines; the next row starts at line 7 */
    f = g->env[3]->follow_up_event;
    assert_int_equal(g->line[3], 5);
    assert_int_equal(f->kind, PTIBUS__V1__FOLLOW_UP_KIND__FOLLOW_UP_KIND_BACK_TO_WORK);
    assert_non_null(strstr(f->reason, "6 mois"));
    assert_non_null(strstr(f->reason, "entreprise locale"));
    f = g->env[4]->follow_up_event;
    assert_int_equal(g->line[4], 7);
    assert_int_equal(f->kind, PTIBUS__V1__FOLLOW_UP_KIND__FOLLOW_UP_KIND_STRUCK_OFF);
    assert_string_equal(f->source_code, "RAD");
    assert_string_equal(f->person->nir, "1790355029045"); /* spaces trimmed */
}

static void
check_errors(const got_t *g)
{
    static const struct {
        unsigned long line;
        const char *where, *msg;
    } want[] = {
        {8, "nir", "line 8: nir: "},
        {9, "", "line 9: 7 fields where the header has 8"},
        {10, "date", "line 10: date: must be a date DD/MM/YYYY"},
        {11, "code", "line 11: code: must be ACC, INS, PSA, REP or RAD"},
        {12, "motif", "line 12: motif: a PSA must start with its legal ground"},
        {13, "", "line 13: followUpEvent.person: needs an identifier"},
    };
    assert_int_equal(g->errors[0].line, 8);
    assert_non_null(strstr(g->errors[0].msg, "key"));
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const pt_record_error_t *e = &g->errors[i];
        assert_int_equal(e->line, want[i].line);
        assert_string_equal(e->where, want[i].where);
        if (strncmp(e->msg, want[i].msg, strlen(want[i].msg)) != 0)
            fail_msg("error %zu: \"%s\" does not start with \"%s\"", i, e->msg, want[i].msg);
    }
    /* never a value: no NIR, no name, no motif in any error */
    for (size_t i = 0; i < g->nerr; i++) {
        assert_null(strstr(g->errors[i].msg, "28507555021"));
        assert_null(strstr(g->errors[i].msg, "Dupr"));
        assert_null(strstr(g->errors[i].msg, "Identifiant;"));
        assert_null(strstr(g->errors[i].msg, "absent"));
        assert_null(strstr(g->errors[i].msg, "XYZ"));
    }
}

static void
test_flux_bom_crlf(void **state)
{
    (void)state;
    got_t g = {0};
    pt_codec_outcome_t out;
    assert_int_equal(decode_fixture("flux.csv", &g, &out), 0);
    check_flux(&g, &out);
    check_errors(&g);
    got_free(&g);
}

/* The same flow without BOM and with LF line ends gives the same records (the quoted
 * CRLF inside the motif stays as it is). */
static void
test_flux_lf_without_bom(void **state)
{
    (void)state;
    uint8_t *buf;
    size_t len;
    assert_int_equal(tu_read_file(PT_FIXTURES_DIR "/ft_csv/flux.csv", &buf, &len), 0);
    char *lf = malloc(len);
    size_t n = 0;
    bool quoted = false;
    for (size_t i = 3; i < len; i++) {
        if (buf[i] == '"')
            quoted = !quoted;
        if (!quoted && buf[i] == '\r')
            continue;
        lf[n++] = (char)buf[i];
    }
    got_t g = {0};
    pt_codec_outcome_t out;
    assert_int_equal(decode_mem(lf, n, &g, &out), 0);
    check_flux(&g, &out);
    check_errors(&g);
    got_free(&g);
    free(lf);
    free(buf);
}

static void
test_files_refused(void **state)
{
    (void)state;
    got_t g = {0};
    pt_codec_outcome_t out;
    assert_int_equal(decode_fixture("unterminated.csv", &g, &out), PT_EMALFORMED);
    assert_string_equal(out.error.msg, "line 2: a quoted field opened here is never closed");
    got_free(&g);
    assert_int_equal(decode_fixture("bad-header.csv", &g, &out), PT_EMALFORMED);
    assert_non_null(strstr(out.error.msg, "line 1: the header must be"));
    assert_int_equal(decode_mem("", 0, &g, &out), PT_EMALFORMED);
    const char bad[] = "nir;identifiant;nom;prenom;date_naissance;date;code;motif\n"
                       ";1;Ren\xe9;X;;01/01/2027;INS;\n";
    assert_int_equal(decode_mem(bad, sizeof bad - 1, &g, &out), PT_EMALFORMED);
    assert_string_equal(out.error.msg, "line 2: invalid UTF-8");
    got_free(&g);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flux_bom_crlf),
        cmocka_unit_test(test_flux_lf_without_bom),
        cmocka_unit_test(test_files_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
