/* test_lheo: the LHEO decoder on the synthetic catalogues of tests/fixtures/lheo/ (made by
 * make_fixtures.py, valid against lheo.xsd): the mapping field by field, 2.2 and 2.3, the
 * snapshot diff (new, changed dates, changed title affecting several sessions, withdrawn,
 * reordered, unchanged), bad records, and files that publish and withdraw nothing. */
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
#include "lheo.h"
#include "testutil.h"
#include "validate.h"

#define FIX PT_FIXTURES_DIR "/lheo/"
#define MAX_RECORDS 32

typedef struct got {
    size_t n, nerr;
    Ptibus__V1__TrainingOffer *offers[MAX_RECORDS];
    pt_record_error_t errors[MAX_RECORDS];
} got_t;

/* Every Envelope must pass the broker's validation once the runtime stamps it. */
static void
check_valid(const Ptibus__V1__Envelope *env)
{
    Ptibus__V1__Envelope e = *env;
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = 1800000000;
    e.message_id = "test-1";
    e.created_at = &ts;
    pt_error_t err;
    if (validate_envelope(&e, &err) != 0)
        fail_msg("invalid envelope: %s", err.msg);
}

static int
collect(void *ctx, const pt_record_t *rec)
{
    got_t *g = ctx;
    if (rec->error != NULL) {
        assert_true(g->nerr < MAX_RECORDS);
        g->errors[g->nerr++] = *rec->error;
        return 0;
    }
    assert_true(g->n < MAX_RECORDS);
    check_valid(rec->env);
    uint8_t *buf;
    size_t len;
    pt_error_t err;
    assert_int_equal(codec_pack(&rec->env->training_offer->base, SIZE_MAX, &buf, &len, &err), 0);
    g->offers[g->n++] = ptibus__v1__training_offer__unpack(NULL, len, buf);
    free(buf);
    return 0;
}

static void
got_free(got_t *g)
{
    for (size_t i = 0; i < g->n; i++)
        ptibus__v1__training_offer__free_unpacked(g->offers[i], NULL);
    memset(g, 0, sizeof *g);
}

static int
decode_file(const char *name, lheo_store_t *store, got_t *g, pt_codec_outcome_t *out)
{
    char path[512];
    snprintf(path, sizeof path, FIX "%s", name);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    got_free(g);
    pt_codec_config_t cfg = {.state = store};
    pt_codec_source_t src = {fd, name};
    int rc = lheo_codec.decode(&cfg, &src, collect, g, out);
    close(fd);
    return rc;
}

static const Ptibus__V1__TrainingOffer *
find(const got_t *g, const char *id)
{
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->offers[i]->offer_id, id) == 0)
            return g->offers[i];
    return NULL;
}

static void
test_mapping_field_by_field(void **state)
{
    (void)state;
    got_t g = {0};
    pt_codec_outcome_t out;
    assert_int_equal(decode_file("catalogue-v1.xml", NULL, &g, &out), 0);
    assert_int_equal(g.n, 5);
    assert_int_equal(g.nerr, 0);
    assert_int_equal(out.records, 5);
    const Ptibus__V1__TrainingOffer *t = find(&g, "F-CARISTE/A1/S1");
    assert_non_null(t);
    assert_int_equal(t->operation, PTIBUS__V1__OFFER_OPERATION__OFFER_OPERATION_UPSERT);
    assert_string_equal(t->formation_number, "F-CARISTE");
    assert_string_equal(t->action_number, "A1");
    assert_string_equal(t->session_number, "S1");
    assert_string_equal(t->title, "Conducteur de chariots \xc3\xa9l\xc3\xa9vateurs (CACES R489)");
    assert_string_equal(t->objective, "Conduire en s\xc3\xa9"
                                      "curit\xc3\xa9 les chariots de "
                                      "cat\xc3\xa9gories 1, 3 et 5.");
    assert_int_equal(t->n_formacode, 2);
    assert_string_equal(t->formacode[0], "31812");
    assert_string_equal(t->formacode[1], "31854");
    assert_int_equal(t->n_rome_codes, 1);
    assert_string_equal(t->rome_codes[0], "N1101");
    assert_int_equal(t->n_nsf_codes, 1);
    assert_string_equal(t->nsf_codes[0], "311");
    assert_false(t->certifying);
    assert_int_equal(t->n_rncp_codes, 0);
    assert_non_null(t->provider);
    assert_int_equal(t->provider->kind, PTIBUS__V1__ORG_KIND__ORG_KIND_OTHER);
    assert_string_equal(t->provider->siret, "00000000000026");
    assert_string_equal(t->provider->name, "Logistique Formation Sud Meusien");
    assert_string_equal(t->entry_level_code, "0");
    assert_string_equal(t->exit_level_code, "0");
    assert_string_equal(t->insee_commune, "55029");
    assert_string_equal(t->rhythm, "Temps plein");
    assert_int_equal(t->n_target_public_codes, 2);
    assert_string_equal(t->target_public_codes[1], "81055");
    assert_false(t->permanent_entry);
    assert_int_equal(t->total_hours, 70);
    assert_string_equal(t->total_price_eur, "980.00");
    /* seats per funder, never added; a funder without a count is not an error */
    assert_int_equal(t->n_funders, 3);
    assert_string_equal(t->funders[0]->funder_code, "10");
    assert_int_equal(t->funders[0]->funded_seats, 12);
    assert_string_equal(t->funders[1]->funder_code, "5");
    assert_int_equal(t->funders[1]->funded_seats, 0);
    assert_string_equal(t->funders[2]->funder_code, "2");
    assert_int_equal(t->funders[2]->funded_seats, 4);
    assert_string_equal(t->starts_on, "2027-02-01");
    assert_string_equal(t->ends_on, "2027-02-12");
    assert_string_equal(t->registration_address,
                        "Maison de la formation, 2 place Saint-Paul, 55100 Verdun");
    assert_int_equal(t->recruitment_state, PTIBUS__V1__RECRUITMENT_STATE__RECRUITMENT_STATE_OPEN);
    assert_string_equal(t->lheo_version, "2.3");

    t = find(&g, "F-PROP-01/A1/S1");
    assert_non_null(t);
    assert_true(t->certifying);
    assert_string_equal(t->rncp_codes[0], "RNCP37275");
    assert_string_equal(t->total_price_eur, "3250.00"); /* the comma made a dot */
    assert_string_equal(t->objective, "Acqu\xc3\xa9rir les gestes professionnels\ndu nettoyage.");
    assert_string_equal(t->exit_level_code, "3");
    /* the session's own numero, with the same numero under another action */
    assert_non_null(find(&g, "F-PROP-01/A2/S1"));
    t = find(&g, "F-PROP-01/A2/S1");
    assert_true(t->permanent_entry);
    assert_int_equal(t->recruitment_state, PTIBUS__V1__RECRUITMENT_STATE__RECRUITMENT_STATE_CLOSED);
    t = find(&g, "F-NUM/A1/2027-1");
    assert_non_null(t);
    assert_int_equal(t->n_funders, 0);
    assert_int_equal(t->recruitment_state,
                     PTIBUS__V1__RECRUITMENT_STATE__RECRUITMENT_STATE_SUSPENDED);
    got_free(&g);
}

static void
test_lheo_22(void **state)
{
    (void)state;
    got_t g = {0};
    pt_codec_outcome_t out;
    assert_int_equal(decode_file("catalogue-22.xml", NULL, &g, &out), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.offers[0]->lheo_version, "2.2");
    assert_string_equal(g.offers[0]->offer_id, "F-CARISTE/A1/S1");
    got_free(&g);
}

/* v1 into a fresh store, then `next`: returns what next published. */
static void
after_v1(const char *next, lheo_store_t **store, got_t *g)
{
    pt_codec_outcome_t out;
    assert_int_equal(lheo_memstore_new(store), 0);
    assert_int_equal(decode_file("catalogue-v1.xml", *store, g, &out), 0);
    assert_int_equal(g->n, 5);
    assert_int_equal(lheo_memstore_count(*store), 5);
    assert_int_equal(decode_file(next, *store, g, &out), 0);
}

static void
test_diff_unchanged_and_reordered(void **state)
{
    (void)state;
    lheo_store_t *store;
    got_t g = {0};
    after_v1("catalogue-v1.xml", &store, &g);
    assert_int_equal(g.n, 0);
    assert_int_equal(g.nerr, 0);
    lheo_memstore_destroy(&store);
    after_v1("catalogue-v2-reordered.xml", &store, &g);
    assert_int_equal(g.n, 0);
    assert_int_equal(lheo_memstore_count(store), 5);
    lheo_memstore_destroy(&store);
    assert_null(store);
}

static void
test_diff_changed_dates(void **state)
{
    (void)state;
    lheo_store_t *store;
    got_t g = {0};
    after_v1("catalogue-v2-dates.xml", &store, &g);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.offers[0]->offer_id, "F-CARISTE/A1/S1");
    assert_int_equal(g.offers[0]->operation, PTIBUS__V1__OFFER_OPERATION__OFFER_OPERATION_UPSERT);
    assert_string_equal(g.offers[0]->ends_on, "2027-02-19");
    got_free(&g);
    lheo_memstore_destroy(&store);
}

static void
test_diff_title_changes_every_session(void **state)
{
    (void)state;
    lheo_store_t *store;
    got_t g = {0};
    after_v1("catalogue-v2-title.xml", &store, &g);
    assert_int_equal(g.n, 3);
    for (size_t i = 0; i < g.n; i++) {
        assert_string_equal(g.offers[i]->formation_number, "F-PROP-01");
        assert_string_equal(g.offers[i]->title,
                            "Agent(e) de propret\xc3\xa9 et d'hygi\xc3\xa8ne (APH)");
    }
    got_free(&g);
    lheo_memstore_destroy(&store);
}

static void
test_diff_withdrawn(void **state)
{
    (void)state;
    lheo_store_t *store;
    got_t g = {0};
    after_v1("catalogue-v2-withdrawn.xml", &store, &g);
    assert_int_equal(g.n, 1);
    const Ptibus__V1__TrainingOffer *t = g.offers[0];
    assert_int_equal(t->operation, PTIBUS__V1__OFFER_OPERATION__OFFER_OPERATION_WITHDRAW);
    assert_string_equal(t->offer_id, "F-NUM/A1/2027-1");
    assert_string_equal(t->formation_number, "F-NUM");
    assert_string_equal(t->session_number, "2027-1");
    assert_int_equal(lheo_memstore_count(store), 4);
    /* withdrawn once: the same snapshot again says nothing */
    pt_codec_outcome_t out;
    assert_int_equal(decode_file("catalogue-v2-withdrawn.xml", store, &g, &out), 0);
    assert_int_equal(g.n, 0);
    /* and it comes back as new */
    assert_int_equal(decode_file("catalogue-v1.xml", store, &g, &out), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.offers[0]->offer_id, "F-NUM/A1/2027-1");
    assert_int_equal(g.offers[0]->operation, PTIBUS__V1__OFFER_OPERATION__OFFER_OPERATION_UPSERT);
    got_free(&g);
    lheo_memstore_destroy(&store);
}

/* A truncated file fails as a whole and leaves the store as it was: the next good
 * snapshot is diffed against v1, not against the truncated one. */
static void
test_truncated_changes_nothing(void **state)
{
    (void)state;
    lheo_store_t *store;
    got_t g = {0};
    after_v1("catalogue-v1.xml", &store, &g);
    pt_codec_outcome_t out;
    int rc = decode_file("truncated.xml", store, &g, &out);
    assert_int_equal(rc, PT_EMALFORMED);
    assert_true(out.error.line > 100);
    assert_non_null(strstr(out.error.msg, "line "));
    assert_int_equal(lheo_memstore_count(store), 5);
    assert_int_equal(decode_file("catalogue-v2-withdrawn.xml", store, &g, &out), 0);
    assert_int_equal(g.n, 1); /* only F-NUM, withdrawn now and not before */
    got_free(&g);
    lheo_memstore_destroy(&store);
    /* into an empty store: nothing stored */
    assert_int_equal(lheo_memstore_new(&store), 0);
    assert_int_equal(decode_file("truncated.xml", store, &g, &out), PT_EMALFORMED);
    assert_int_equal(lheo_memstore_count(store), 0);
    lheo_memstore_destroy(&store);
    got_free(&g);
}

static bool
has_error(const got_t *g, const char *where_part, const char *msg_part)
{
    for (size_t i = 0; i < g->nerr; i++)
        if (strstr(g->errors[i].where, where_part) && strstr(g->errors[i].msg, msg_part))
            return true;
    return false;
}

/* Bad sessions are reported with their line and go nowhere; the good ones go; a bad
 * session whose key is known keeps its last good version (no withdrawal). */
static void
test_bad_records(void **state)
{
    (void)state;
    lheo_store_t *store;
    got_t g = {0};
    after_v1("bad-records.xml", &store, &g);
    assert_int_equal(g.nerr, 4);
    assert_true(has_error(&g, "session[@numero='']", "need a numero"));
    assert_true(has_error(&g, "session[@numero='S3']", "startsOn"));
    assert_true(has_error(&g, "session[@numero='S1']", "appears twice"));
    assert_true(has_error(&g, "formation[@numero='F-CARISTE']", "nb-places-financees"));
    for (size_t i = 0; i < g.nerr; i++) {
        assert_true(g.errors[i].line > 0);
        assert_non_null(strstr(g.errors[i].msg, "line "));
    }
    /* F-PROP-01 unchanged; F-CARISTE/A1/S1 bad but kept; F-NUM absent: withdrawn */
    assert_int_equal(g.n, 1);
    assert_string_equal(g.offers[0]->offer_id, "F-NUM/A1/2027-1");
    assert_int_equal(g.offers[0]->operation, PTIBUS__V1__OFFER_OPERATION__OFFER_OPERATION_WITHDRAW);
    assert_int_equal(lheo_memstore_count(store), 4);
    got_free(&g);
    lheo_memstore_destroy(&store);
}

static int
decode_text(const char *doc, got_t *g, pt_codec_outcome_t *out)
{
    xml_safe_t *x;
    pt_error_t err;
    assert_int_equal(xml_safe_open_memory(&x, doc, strlen(doc), "t", NULL, &err), 0);
    got_free(g);
    int rc = lheo_decode(x, NULL, collect, g, out);
    xml_safe_close(&x);
    return rc;
}

static void
test_whole_file_refusals(void **state)
{
    (void)state;
    got_t g = {0};
    pt_codec_outcome_t out;
    assert_int_equal(decode_text("<lheo xmlns=\"urn:other\"><offres/></lheo>", &g, &out),
                     PT_EMALFORMED);
    assert_non_null(strstr(out.error.msg, "root element must be lheo"));
    assert_int_equal(decode_text("<lheo-index xmlns=\"http://lheo.gouv.fr/2.3\"/>", &g, &out),
                     PT_EMALFORMED);
    assert_int_equal(decode_text("<?xml version=\"1.0\"?>\n<!DOCTYPE lheo [<!ENTITY a \"b\">]>"
                                 "<lheo xmlns=\"http://lheo.gouv.fr/2.3\"/>",
                                 &g, &out),
                     PT_EMALFORMED);
    assert_non_null(strstr(out.error.msg, "line 2: a DOCTYPE"));
    /* an empty catalogue is valid and publishes nothing */
    assert_int_equal(
        decode_text("<lheo xmlns=\"http://lheo.gouv.fr/2.3\"><offres/></lheo>", &g, &out), 0);
    assert_int_equal(g.n + g.nerr, 0);
}

/* A session's key "<formation>/<action>/<session>" may be 128 characters, not 129; the
 * bad session is named by its numero attributes, the location cut at the record
 * error's size (formation's at 40 characters, action's and session's at 30). */
static void
test_session_key_bound_and_location(void **state)
{
    (void)state;
    char fn[61], an[31], s128[37], s129[38], doc[1024], where[256];
    memset(fn, 'F', 60), fn[60] = '\0';
    memset(an, 'A', 30), an[30] = '\0';
    memset(s128, 'S', 36), s128[36] = '\0'; /* 60 + 1 + 30 + 1 + 36 = 128 */
    memset(s129, 'T', 37), s129[37] = '\0';
    snprintf(doc, sizeof doc,
             "<lheo xmlns=\"http://lheo.gouv.fr/2.3\"><offres><formation numero=\"%s\">"
             "<action numero=\"%s\"><session numero=\"%s\"/><session numero=\"%s\"/>"
             "</action></formation></offres></lheo>",
             fn, an, s128, s129);
    got_t g = {0};
    pt_codec_outcome_t out;
    assert_int_equal(decode_text(doc, &g, &out), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(g.nerr, 2);
    /* 128: a key, so the session goes on to the contract's rules (no title, no dates) */
    assert_null(strstr(g.errors[0].msg, "over 128"));
    assert_non_null(strstr(g.errors[0].msg, "trainingOffer."));
    /* 129: refused for its key, at the exact location, cut to the record error's size */
    snprintf(where, sizeof where,
             "formation[@numero='%.40s']/action[@numero='%.30s']/session[@numero='%.30s']", fn, an,
             s129);
    where[sizeof g.errors[1].where - 1] = '\0';
    assert_string_equal(g.errors[1].where, where);
    assert_string_equal(g.errors[1].msg, "line 1: the session key is over 128 characters");
    got_free(&g);
}

/* The optional XSD check at the door, through the codec's config. */
static void
test_schema_at_the_door(void **state)
{
    (void)state;
    got_t g = {0};
    pt_codec_outcome_t out;
    int fd = open(FIX "catalogue-v1.xml", O_RDONLY);
    pt_codec_config_t cfg = {.schema = PT_SOURCE_DIR "/adapters/schemas/lheo.xsd"};
    pt_codec_source_t src = {fd, "catalogue-v1.xml"};
    assert_int_equal(lheo_codec.decode(&cfg, &src, collect, &g, &out), 0);
    close(fd);
    assert_int_equal(g.n, 5);
    got_free(&g);
    /* bad-records.xml breaks the schema (a session without numero is fine for LHEO, a date
     * 00000000 too, but nb-places-financees must be a number): refused as a whole */
    fd = open(FIX "bad-records.xml", O_RDONLY);
    pt_codec_source_t bad = {fd, "bad-records.xml"};
    assert_int_equal(lheo_codec.decode(&cfg, &bad, collect, &g, &out), PT_EINVALID);
    close(fd);
    assert_non_null(strstr(out.error.msg, "does not follow the schema"));
    assert_null(strstr(out.error.msg, "beaucoup"));
    got_free(&g);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mapping_field_by_field),
        cmocka_unit_test(test_lheo_22),
        cmocka_unit_test(test_session_key_bound_and_location),
        cmocka_unit_test(test_diff_unchanged_and_reordered),
        cmocka_unit_test(test_diff_changed_dates),
        cmocka_unit_test(test_diff_title_changes_every_session),
        cmocka_unit_test(test_diff_withdrawn),
        cmocka_unit_test(test_truncated_changes_nothing),
        cmocka_unit_test(test_bad_records),
        cmocka_unit_test(test_whole_file_refusals),
        cmocka_unit_test(test_schema_at_the_door),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
