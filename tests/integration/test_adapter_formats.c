/* The partners' native formats through the real adapter daemons (issue 13): the Région's
 * LHEO catalogue snapshots through ptibus-adapter-region (only what changed is published,
 * a session absent from the new snapshot is withdrawn, a truncated catalogue publishes and
 * withdraws nothing), and the CAF's CNAF XML flow (windows-1252) through
 * ptibus-adapter-caf (one BeneficiaryEvent per good record to the Département, the bad one
 * and the control count's mismatch in the report). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>
#include <jansson.h>

#include "adapter.h"
#include "daemon.h"
#include "samples.h"
#include "testutil.h"

#define WAIT_MS 20000
#define QUIET_MS 1000

typedef struct fx {
    td_net_t net;
    td_adapter_t src, dst;
} fx_t;

static int
setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    td_net_options_t o = {.ack_timeout = "5s"};
    td_net_init(&f->net, "formats", &o);
    assert_int_equal(td_broker_start(&f->net), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *f = *state;
    if (f->src.pid > 0)
        assert_int_equal(td_adapter_stop(&f->src), 0);
    if (f->dst.pid > 0)
        assert_int_equal(td_adapter_stop(&f->dst), 0);
    td_net_fini(&f->net);
    free(f);
    return 0;
}

static void
start(td_adapter_t *a, td_net_t *n, const char *partner, const char *codecs)
{
    td_adapter_options_t o = {.codecs = codecs};
    td_adapter_init(a, n, partner, &o);
    assert_int_equal(td_adapter_start(a), 0);
    assert_true(td_adapter_wait_ready(a, 10000));
}

/* Drops fixture tests/fixtures/<dir>/<name> into a's inbox as `as`. */
static void
drop_fixture(td_adapter_t *a, const char *dir, const char *name, const char *as)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/tests/fixtures/%s/%s", PT_SOURCE_DIR, dir, name);
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(tu_read_file(path, &data, &len), 0);
    td_adapter_drop(a, as, data, len);
    free(data);
}

/* Waits for inbox/<sub>/<name>.<kind>.json (report or error) and loads it. */
static json_t *
wait_report(const td_adapter_t *a, const char *sub, const char *name, const char *kind)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/%s/%s.%s.json", a->inbox, sub, name, kind);
    for (int i = 0; i < WAIT_MS / 100 && access(path, F_OK) != 0; i++)
        usleep(100 * 1000);
    json_t *doc = json_load_file(path, 0, NULL);
    if (doc == NULL)
        fail_msg("no %s", path);
    return doc;
}

/* How many outbox files hold an offer with this operation name. */
static size_t
count_operation(const td_adapter_t *a, const char *op)
{
    DIR *d = opendir(a->outbox);
    size_t n = 0;
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.' || strstr(e->d_name, ".json") == NULL)
            continue;
        char path[4700];
        snprintf(path, sizeof path, "%s/%s", a->outbox, e->d_name);
        json_t *doc = json_load_file(path, 0, NULL);
        json_t *offer = json_object_get(json_object_get(doc, "envelope"), "trainingOffer");
        const char *got = json_string_value(json_object_get(offer, "operation"));
        n += got != NULL && strcmp(got, op) == 0;
        json_decref(doc);
    }
    if (d != NULL)
        closedir(d);
    return n;
}

static size_t
settle(const td_adapter_t *a, size_t want)
{
    td_outbox_wait(a, want, WAIT_MS);
    usleep(QUIET_MS * 1000);
    return td_outbox_count(a);
}

static void
test_lheo_snapshots_publish_only_what_changed(void **state)
{
    fx_t *f = *state;
    start(&f->src, &f->net, "region", "[lheo]");
    start(&f->dst, &f->net, "pole_emploi", "[json]"); /* a subscriber of training offers */
    drop_fixture(&f->src, "lheo", "catalogue-v1.xml", "cat-1.xml");
    assert_int_equal(settle(&f->dst, 5), 5); /* five sessions, five UPSERTs */
    json_decref(wait_report(&f->src, "done", "cat-1.xml", "report"));
    /* a truncated catalogue: refused whole, nothing published, nothing withdrawn */
    drop_fixture(&f->src, "lheo", "truncated.xml", "cat-2.xml");
    json_decref(wait_report(&f->src, "failed", "cat-2.xml", "error"));
    assert_int_equal(settle(&f->dst, 5), 5);
    /* one formation's title changed: its three sessions again, the others not */
    drop_fixture(&f->src, "lheo", "catalogue-v2-title.xml", "cat-3.xml");
    assert_int_equal(settle(&f->dst, 8), 8);
    /* the last formation gone (and the title back): three UPSERTs and one WITHDRAW */
    drop_fixture(&f->src, "lheo", "catalogue-v2-withdrawn.xml", "cat-4.xml");
    assert_int_equal(settle(&f->dst, 12), 12);
    assert_int_equal(count_operation(&f->dst, "OFFER_OPERATION_WITHDRAW"), 1);
    /* the same snapshot again, under another name: a duplicate file, nothing sent */
    drop_fixture(&f->src, "lheo", "catalogue-v2-withdrawn.xml", "cat-5.xml");
    json_t *rep = wait_report(&f->src, "done", "cat-5.xml", "report");
    assert_string_equal(json_string_value(json_object_get(rep, "state")), "duplicate");
    json_decref(rep);
    assert_int_equal(settle(&f->dst, 12), 12);
}

static void
test_cnaf_flow_reaches_the_departement(void **state)
{
    fx_t *f = *state;
    start(&f->src, &f->net, "caf", "[cnaf_rsa]");
    start(&f->dst, &f->net, "departement", "[json]");
    drop_fixture(&f->src, "cnaf", "flux-bad-count.xml", "flux.xml");
    json_t *rep = wait_report(&f->src, "done", "flux.xml", "report");
    json_t *counts = json_object_get(rep, "counts");
    size_t spooled = (size_t)json_integer_value(json_object_get(counts, "spooled"));
    assert_true(spooled > 0);
    /* the TransmissionFlux control count does not match: said, not trusted */
    json_t *w = json_object_get(rep, "warning");
    assert_non_null(w);
    print_message("%zu events spooled; warning: %s\n", spooled,
                  json_string_value(json_object_get(w, "message")));
    json_decref(rep);
    assert_int_equal(settle(&f->dst, spooled), spooled);
}

/* A sanction decision for an MSA household reaches the MSA's outbox as JSON and as the
 * CSV its back office imports (windows-1252), and nothing reaches the CAF. */
static void
test_msa_gets_its_csv_and_the_caf_nothing(void **state)
{
    fx_t *f = *state;
    start(&f->src, &f->net, "departement", "[json]");
    td_adapter_options_t o = {.extra_egress = "  formats: [caf_csv]\n  encoding: windows-1252\n"};
    td_adapter_init(&f->dst, &f->net, "msa", &o);
    assert_int_equal(td_adapter_start(&f->dst), 0);
    static td_adapter_t caf;
    td_adapter_init(&caf, &f->net, "caf", NULL);
    assert_int_equal(td_adapter_start(&caf), 0);
    assert_true(td_adapter_wait_ready(&f->dst, 10000) && td_adapter_wait_ready(&caf, 10000));
    td_sample_t s;
    td_sample_sanction(&s, "san-msa-1", PTIBUS__V1__PAYER__PAYER_MSA);
    assert_int_equal(td_adapter_post_env(&f->src, &s.env, NULL), 202);
    assert_int_equal(settle(&f->dst, 1), 1); /* the JSON file */
    char csv[4400];
    snprintf(csv, sizeof csv, "%s", f->dst.outbox);
    DIR *d = opendir(csv);
    bool found = false;
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;)
        if (strstr(e->d_name, "san-msa-1.csv") != NULL) {
            snprintf(csv + strlen(csv), sizeof csv - strlen(csv), "/%s", e->d_name);
            found = true;
            break;
        }
    if (d != NULL)
        closedir(d);
    assert_true(found);
    uint8_t *text = NULL;
    size_t len = 0;
    assert_int_equal(tu_read_file(csv, &text, &len), 0);
    assert_non_null(strstr((char *)text, ";")); /* the header and one row */
    assert_non_null(memchr(text, '\n', len));
    free(text);
    assert_int_equal(td_outbox_count(&caf), 0);
    assert_int_equal(td_adapter_stop(&caf), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lheo_snapshots_publish_only_what_changed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cnaf_flow_reaches_the_departement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msa_gets_its_csv_and_the_caf_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
