/* Unit tests of the adapter configuration (adapters/core/aconfig.c): the seven Meuse
 * examples of deploy/adapters/ load, with their values; bad files are refused with
 * "file:line: key: what is expected". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aconfig.h"
#include "testutil.h"

static void
test_deploy_examples_load(void **state)
{
    (void)state;
    const char *ids[] = {"departement", "pole_emploi", "caf", "msa", "region", "ml_nord", "ml_sud"};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/deploy/adapters/%s.yaml", PT_SOURCE_DIR, ids[i]);
        aconfig_t *c = NULL;
        pt_error_t err;
        if (aconfig_load(path, &c, &err) != 0)
            fail_msg("%s: %s", ids[i], err.msg);
        assert_string_equal(c->id, ids[i]);
        assert_non_null(strstr(c->secret_key_file, "/deploy/adapters/keys/"));
        assert_true(c->n_codecs > 0);
        aconfig_destroy(&c);
        assert_null(c);
    }
    aconfig_destroy(NULL);
}

static aconfig_t *
load_text(const char *text, char **dir, pt_error_t *err, int *rc)
{
    *dir = tu_tmpdir("aconfig");
    char path[4200];
    snprintf(path, sizeof path, "%s/a.yaml", *dir);
    assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
    aconfig_t *c = NULL;
    *rc = aconfig_load(path, &c, err);
    return c;
}

#define HEAD                                                                                       \
    "id: caf\n"                                                                                    \
    "broker:\n  endpoint: \"tcp://127.0.0.1:7400\"\n  server_public_key_file: b.pub\n"             \
    "  secret_key_file: c.key\n  public_key_file: c.pub\n"                                         \
    "spool:\n  dir: spool\n"

static void
test_values_and_defaults(void **state)
{
    (void)state;
    char *dir;
    pt_error_t err;
    int rc;
    aconfig_t *c = load_text(HEAD "egress:\n  outbox: out\n", &dir, &err, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(c->credit, 64);
    assert_int_equal(c->egress, ACONFIG_EGRESS_OUTBOX);
    assert_true(c->retention_ms == 30ull * 24 * 3600 * 1000);
    assert_null(c->http_listen);
    assert_null(c->inbox_dir);
    char want[4300];
    snprintf(want, sizeof want, "%s/out", dir);
    assert_string_equal(c->outbox_dir, want); /* relative to the file's folder */
    aconfig_destroy(&c);
    tu_rmtree(dir);
}

/* broker.endpoints: an ordered list; the single form gives a list of one. */
static void
test_endpoint_list(void **state)
{
    (void)state;
    char *dir;
    pt_error_t err;
    int rc;
    aconfig_t *c = load_text(HEAD "egress:\n  outbox: out\n", &dir, &err, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(c->n_endpoints, 1);
    assert_string_equal(c->endpoint, "tcp://127.0.0.1:7400");
    assert_true(c->failover_after_ms == 10000);
    aconfig_destroy(&c);
    tu_rmtree(dir);
    c = load_text("id: caf\nbroker:\n  endpoints: [\"tcp://10.0.0.1:7400\", "
                  "\"tcp://10.0.0.2:7400\"]\n  failover_after: 3s\n"
                  "  server_public_key_file: b.pub\n  secret_key_file: c.key\n"
                  "  public_key_file: c.pub\nspool:\n  dir: spool\negress:\n  outbox: out\n",
                  &dir, &err, &rc);
    if (rc != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(c->n_endpoints, 2);
    assert_string_equal(c->endpoint, "tcp://10.0.0.1:7400");
    assert_string_equal(c->endpoints[1], "tcp://10.0.0.2:7400");
    assert_true(c->failover_after_ms == 3000);
    aconfig_destroy(&c);
    tu_rmtree(dir);
}

static void
test_errors_say_where(void **state)
{
    (void)state;
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"broker: {}\n", "a.yaml:1: id: missing required key"},
        {HEAD "egress:\n  outbox: out\nextra: 1\n",
         "a.yaml:11: extra: unknown key (expected one of: id, broker, spool, http, inbox, egress, "
         "metrics)"},
        {"id: CAF\n", "a.yaml:1: id: \"CAF\" is not a partner id (1 to 32 of a-z, 0-9 and _)"},
        {HEAD "inbox:\n  dir: in\n  codecs: [json, xls]\negress:\n  outbox: out\n",
         "a.yaml:11: inbox.codecs[1]: \"xls\" is not a codec"},
        {HEAD "inbox:\n  dir: in\n  complete: soon\negress:\n  outbox: out\n",
         "a.yaml:11: inbox.complete: \"soon\" is not one of rename, marker, stable"},
        {HEAD "egress:\n  kind: pull\n", "a.yaml:10: egress.kind: pull needs the http section"},
        {HEAD "egress:\n  kind: webhook\n  webhook:\n    url: \"http://example.org/x\"\n"
              "    secret_file: s\n",
         "a.yaml:12: egress.webhook.url: must be https://"},
        {HEAD "egress:\n  kind: webhook\n  webhook:\n    url: \"http://127.0.0.1.example.org/x\"\n"
              "    secret_file: s\n",
         "a.yaml:12: egress.webhook.url: must be https://"},
        {HEAD "egress:\n  kind: webhook\n  webhook:\n    url: \"https://x.example/h\"\n"
              "    secret_file: s\n    final_statuses: [400, 500]\n",
         "a.yaml:14: egress.webhook.final_statuses[1]: is not an HTTP status from 400 to 499"},
        {HEAD "egress:\n  kind: sftp\n",
         "a.yaml:10: egress.kind: \"sftp\" is not one of outbox, webhook, pull"},
        {HEAD "egress:\n  kind: outbox\n", "a.yaml:10: egress.outbox: missing required key"},
        {"id: caf\nbroker:\n  endpoint: \"tcp://a:1\"\n  endpoints: [\"tcp://b:1\"]\n",
         "a.yaml:3: broker.endpoint: give either endpoint (one broker) or endpoints"},
        {"id: caf\nbroker:\n  endpoints: [\"tcp://b:1\", \"http://c:1\"]\n",
         "a.yaml:3: broker.endpoints[1]: \"http://c:1\" is not a ZeroMQ endpoint"},
        {"id: caf\nbroker:\n  endpoints: []\n", "a.yaml:3: broker.endpoints: 1 to 8 endpoints"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *dir;
        pt_error_t err;
        int rc;
        aconfig_t *c = load_text(cases[i].text, &dir, &err, &rc);
        assert_null(c);
        assert_int_not_equal(rc, 0);
        const char *msg = strstr(err.msg, "a.yaml");
        if (msg == NULL || strncmp(msg, cases[i].want, strlen(cases[i].want)) != 0)
            fail_msg("case %zu: got\n  %s\nwanted\n  %s", i, err.msg, cases[i].want);
        tu_rmtree(dir);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deploy_examples_load),
        cmocka_unit_test(test_values_and_defaults),
        cmocka_unit_test(test_endpoint_list),
        cmocka_unit_test(test_errors_say_where),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
