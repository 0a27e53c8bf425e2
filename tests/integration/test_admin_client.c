/* Integration tests of the admin-protocol client (libptibus/admin_client.h) and of
 * `ptibusctl fingerprint`, against a real ptibusd: a request answered, a refused key
 * named as the cause, and the fingerprint the CLI prints is the one the broker logs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admin_client.h"
#include "codec.h"
#include "daemon.h"
#include "keys.h"
#include "testutil.h"

typedef struct fx {
    td_net_t net;
} fx_t;

static int
setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    td_net_init(&f->net, "admin-client", NULL);
    if (td_broker_start(&f->net) != 0)
        return -1;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *f = *state;
    td_net_fini(&f->net);
    free(f);
    return 0;
}

static void
key_path(fx_t *f, const char *name, const char *ext, char *out, size_t cap)
{
    snprintf(out, cap, "%s/keys/%s.%s", f->net.dir, name, ext);
}

/* Calls the admin socket for stats with the key pair keys/<name>. */
static int
stats_as(fx_t *f, const char *name, int timeout_ms, Ptibus__V1__AdminResponse **r, pt_error_t *err)
{
    uint8_t sk[PT_KEY_LEN], pk[PT_KEY_LEN];
    char path[4300];
    key_path(f, name, "key", path, sizeof path);
    assert_int_equal(keys_read(path, sk, PT_KEY_LEN, true, err), 0);
    key_path(f, name, "pub", path, sizeof path);
    assert_int_equal(keys_read(path, pk, PT_KEY_LEN, false, err), 0);
    Ptibus__V1__AdminRequest q = PTIBUS__V1__ADMIN_REQUEST__INIT;
    Ptibus__V1__StatsRequest st = PTIBUS__V1__STATS_REQUEST__INIT;
    q.request_id = "test";
    q.kind_case = PTIBUS__V1__ADMIN_REQUEST__KIND_STATS;
    q.stats = &st;
    admin_client_options_t o = {.endpoint = f->net.admin_endpoint,
                                .server_pk = f->net.server_pk,
                                .client_sk = sk,
                                .client_pk = pk,
                                .timeout_ms = timeout_ms};
    return admin_client_call(&o, &q, r, err);
}

static void
test_stats_answered(void **state)
{
    fx_t *f = *state;
    Ptibus__V1__AdminResponse *r;
    pt_error_t err;
    if (stats_as(f, "admin", 5000, &r, &err) != 0)
        fail_msg("%s", err.msg);
    assert_true(r->ok);
    assert_int_equal(r->kind_case, PTIBUS__V1__ADMIN_RESPONSE__KIND_STATS);
    codec_free((ProtobufCMessage **)&r);
}

/* A partner's key on the admin socket: no answer, and the error says the key was
 * refused (not just "no answer"). */
static void
test_partner_key_refused_with_cause(void **state)
{
    fx_t *f = *state;
    Ptibus__V1__AdminResponse *r;
    pt_error_t err;
    assert_int_equal(stats_as(f, "caf", 1500, &r, &err), PT_ETIMEOUT);
    assert_null(r);
    if (strstr(err.msg, "refused this client's key") == NULL)
        fail_msg("%s", err.msg);
}

/* ptibusctl fingerprint prints what the broker's log names the key that connected. */
static void
test_fingerprint_matches_broker_log(void **state)
{
    fx_t *f = *state;
    Ptibus__V1__AdminResponse *r;
    pt_error_t err;
    assert_int_equal(stats_as(f, "caf", 1000, &r, &err), PT_ETIMEOUT);
    char path[4300], cmd[9000], line[64] = "";
    key_path(f, "caf", "pub", path, sizeof path);
    snprintf(cmd, sizeof cmd, "%s fingerprint '%s'", PT_PTIBUSCTL_PATH, path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(line, sizeof line, p));
    assert_int_equal(pclose(p), 0);
    line[strcspn(line, "\n")] = '\0';
    assert_int_equal(strlen(line), PT_FINGERPRINT_LEN);
    char logged[128];
    snprintf(logged, sizeof logged, "(key %s)", line);
    assert_true(td_log_contains(&f->net, logged));
    /* Another key's fingerprint is not in the log. */
    key_path(f, "msa", "pub", path, sizeof path);
    snprintf(cmd, sizeof cmd, "%s fingerprint '%s'", PT_PTIBUSCTL_PATH, path);
    p = popen(cmd, "r");
    assert_non_null(fgets(line, sizeof line, p));
    pclose(p);
    line[strcspn(line, "\n")] = '\0';
    snprintf(logged, sizeof logged, "(key %s)", line);
    assert_false(td_log_contains(&f->net, logged));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stats_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partner_key_refused_with_cause, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fingerprint_matches_broker_log, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
