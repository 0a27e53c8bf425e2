/* Integration tests of the broker's reload (SIGHUP, the unit's ExecReload): a real
 * ptibusd whose broker.yaml is edited while it runs. A partner added to the file can
 * connect and publish after SIGHUP while an open session goes on untouched (same
 * connection, no new Hello, deliveries still reach it); a partner removed is refused;
 * an invalid file changes nothing and says why in the log. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "codec.h"
#include "daemon.h"
#include "samples.h"
#include "testutil.h"

#define TIMEOUT_MS 5000
#define REFUSED_MS 1500 /* how long a client refused by ZAP waits for its Welcome */

/* The partner the tests add: the daemon's network has its key pair, the broker's
 * configuration does not name it until a test says so. */
#define NEW_PARTNER "intruder"
#define NEW_PARTNER_YAML                                                                           \
    "  - id: " NEW_PARTNER "\n    public_key_file: keys/" NEW_PARTNER ".pub\n"                     \
    "    may_send: [beneficiary_event]\n    subscribe: []\n"

typedef struct fixture {
    td_net_t net;
} fixture_t;

static int
setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    td_net_init(&f->net, "reload", NULL);
    if (td_broker_start(&f->net) != 0)
        return -1;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture_t *f = *state;
    td_net_fini(&f->net);
    free(f);
    return 0;
}

/* Rewrites broker.yaml: the generated one with partner_yaml inserted at the end of the
 * partners list (before "routes:"), and with `replace` (when not NULL) substituted for
 * the first occurrence of `find`. */
static void
write_config(fixture_t *f, const char *partner_yaml, const char *find, const char *replace)
{
    td_net_configure(&f->net, NULL);
    uint8_t *text;
    size_t len;
    assert_int_equal(tu_read_file(f->net.config, &text, &len), 0);
    char *out = calloc(1, len + 4096);
    assert_non_null(out);
    const char *routes = strstr((char *)text, "\nroutes:");
    assert_non_null(routes);
    size_t head = (size_t)(routes - (char *)text) + 1;
    memcpy(out, text, head);
    strcat(out, partner_yaml ? partner_yaml : "");
    strcat(out, (char *)text + head);
    if (find != NULL) {
        char *at = strstr(out, find);
        assert_non_null(at);
        char *rest = strdup(at + strlen(find));
        assert_non_null(rest);
        strcpy(at, replace);
        strcat(out, rest);
        free(rest);
    }
    assert_int_equal(tu_write_file(f->net.config, out, strlen(out)), 0);
    free(out);
    free(text);
}

/* SIGHUP, then waits for the log line that says how the reload ended. */
static void
reload(fixture_t *f, const char *expect_in_log)
{
    assert_int_equal(kill(f->net.pid, SIGHUP), 0);
    for (int i = 0; i < 100 && !td_log_contains(&f->net, expect_in_log); i++)
        usleep(50 * 1000);
    if (!td_log_contains(&f->net, expect_in_log))
        fail_msg("no \"%s\" in the broker's log after SIGHUP", expect_in_log);
    assert_int_equal(kill(f->net.pid, 0), 0); /* still running */
}

/* How many lines of the broker's log contain s. */
static int
log_count(fixture_t *f, const char *s)
{
    char path[4300], line[2048];
    snprintf(path, sizeof path, "%s/broker.log", f->net.dir);
    FILE *in = fopen(path, "r");
    assert_non_null(in);
    int n = 0;
    while (fgets(line, sizeof line, in))
        n += strstr(line, s) != NULL;
    fclose(in);
    return n;
}

static client_t *
session(fixture_t *f, const char *partner)
{
    client_t *c = NULL;
    assert_int_equal(td_client_session(&f->net, partner, 16, &c), 0);
    return c;
}

/* Whether partner's Hello gets a Welcome (false: ZAP refused its key, nothing came). */
static bool
welcomed(fixture_t *f, const char *partner)
{
    client_t *c = NULL;
    assert_int_equal(td_client_open(&f->net, partner, true, &c), 0);
    char who[64];
    pt_error_t err;
    bool ok = client_hello(c, REFUSED_MS, who, sizeof who, &err) == 0;
    if (ok)
        assert_string_equal(who, partner);
    client_close(&c);
    return ok;
}

static int
publish(client_t *c, const Ptibus__V1__Envelope *env, int timeout_ms, client_result_t *res)
{
    pt_error_t err;
    return client_publish(c, env, timeout_ms, res, &err);
}

static void
publish_accepted(client_t *c, const Ptibus__V1__Envelope *env)
{
    client_result_t res;
    assert_int_equal(publish(c, env, TIMEOUT_MS, &res), 0);
    if (res.nack_code != 0)
        fail_msg("%s refused: %s", env->message_id, res.reason);
    assert_true(res.seq > 0);
}

/* Waits for the Deliver of message_id on c and acknowledges it. */
static void
expect_delivery(client_t *c, const char *message_id, const char *sender)
{
    int64_t until = tu_now_ms() + TIMEOUT_MS;
    pt_error_t err;
    while (tu_now_ms() < until) {
        Ptibus__V1__Frame *fr = NULL;
        if (client_recv(c, 200, &fr, &err) != 0 || fr == NULL)
            continue;
        bool found = fr->kind_case == PTIBUS__V1__FRAME__KIND_DELIVER &&
                     strcmp(fr->deliver->message_id, message_id) == 0;
        if (found) {
            assert_string_equal(fr->deliver->sender, sender);
            assert_int_equal(client_deliver_ack(c, fr->deliver->seq, true, NULL, &err), 0);
        }
        codec_free((ProtobufCMessage **)&fr);
        if (found)
            return;
    }
    fail_msg("no delivery of %s", message_id);
}

/* A partner added to broker.yaml connects and publishes after SIGHUP; the session open
 * before it (departement's) goes on on the same connection: it publishes and receives
 * the new partner's message without a new Hello. */
static void
test_added_partner_connects_existing_session_untouched(void **state)
{
    fixture_t *f = *state;
    client_t *dep = session(f, "departement");
    td_sample_t s;
    td_sample_orientation(&s, "rl-ori-1");
    publish_accepted(dep, &s.env);
    assert_false(welcomed(f, NEW_PARTNER)); /* not configured yet */

    write_config(f, NEW_PARTNER_YAML, NULL, NULL);
    reload(f, "configuration reloaded: 7 partners (were 6)");

    client_t *added = session(f, NEW_PARTNER);
    td_sample_beneficiary_event(&s, "rl-ev-1");
    publish_accepted(added, &s.env);
    /* The open session: routed to it and delivered on it, and it still publishes. */
    expect_delivery(dep, "rl-ev-1", NEW_PARTNER);
    td_sample_orientation(&s, "rl-ori-2");
    publish_accepted(dep, &s.env);
    /* Its session was never reset: had it been, its client would have said Hello again
     * (the broker answers a session-less Credit or DeliverAck "send Hello"). */
    assert_int_equal(log_count(f, "partner=departement client="), 1);
    client_close(&added);
    client_close(&dep);
    /* A clean stop after the reload (a sanitizer's report would make it fail). */
    assert_int_equal(td_broker_stop(&f->net), 0);
}

/* A partner removed from broker.yaml: its key is refused from the reload on, and what
 * its open connection sends is not accepted; the others go on. */
static void
test_removed_partner_refused(void **state)
{
    fixture_t *f = *state;
    td_broker_stop(&f->net);
    write_config(f, NEW_PARTNER_YAML, NULL, NULL);
    assert_int_equal(td_broker_start(&f->net), 0);
    client_t *gone = session(f, NEW_PARTNER);
    client_t *dep = session(f, "departement");

    write_config(f, NULL, NULL, NULL);
    reload(f, "configuration reloaded: 6 partners (were 7)");

    assert_false(welcomed(f, NEW_PARTNER));
    td_sample_t s;
    td_sample_beneficiary_event(&s, "rl-ev-gone");
    client_result_t res;
    assert_int_not_equal(publish(gone, &s.env, REFUSED_MS, &res), 0); /* no answer */
    td_sample_orientation(&s, "rl-ori-3");
    publish_accepted(dep, &s.env);
    assert_true(welcomed(f, "caf"));
    client_close(&gone);
    client_close(&dep);
    assert_int_equal(td_broker_stop(&f->net), 0);
}

/* An invalid broker.yaml: SIGHUP logs why (file, line, key) and keeps the running
 * configuration; sessions go on and the configured partners still connect. */
static void
test_invalid_config_kept(void **state)
{
    fixture_t *f = *state;
    client_t *dep = session(f, "departement");
    /* A may_send type that does not exist, and the new partner with it. */
    write_config(f, NEW_PARTNER_YAML, "may_send: [beneficiary_event]", "may_send: [no_such_type]");
    reload(f, "reload refused, the running configuration is kept");
    assert_true(td_log_contains(&f->net, "broker.yaml:"));
    assert_true(td_log_contains(&f->net, "no_such_type"));
    assert_false(td_log_contains(&f->net, "configuration reloaded"));

    td_sample_t s;
    td_sample_orientation(&s, "rl-ori-4");
    publish_accepted(dep, &s.env);
    assert_false(welcomed(f, NEW_PARTNER));
    assert_true(welcomed(f, "msa"));
    client_close(&dep);
    /* The broker still stops cleanly. */
    assert_int_equal(td_broker_stop(&f->net), 0);
}

/* Reloads while a partner publishes as fast as its window allows (the loop reads ahead
 * on its helper thread then): every message is accepted once, in its session, and the
 * broker stops cleanly (under the sanitizers: no use of a freed partner). */
static void
test_reload_under_load(void **state)
{
    fixture_t *f = *state;
    enum { N = 10000, WINDOW = 900, EVERY = 1000 };
    client_t *c = session(f, "caf");
    pt_error_t err;
    size_t sent = 0, done = 0, accepted = 0, hups = 0;
    td_sample_t s;
    while (done < N) {
        while (sent < N && sent - done < WINDOW) {
            char id[64];
            snprintf(id, sizeof id, "rl-load-%06zu", sent);
            td_sample_beneficiary_event(&s, id);
            int rc = client_publish_async(c, &s.env, &err);
            if (rc == -EAGAIN)
                break; /* the client's send queue is full: read answers first */
            assert_int_equal(rc, 0);
            sent++;
        }
        Ptibus__V1__Frame *fr = NULL;
        if (client_recv(c, TIMEOUT_MS, &fr, &err) != 0)
            fail_msg("no answer after %zu of %d: %s", done, N, err.msg);
        client_result_t r;
        const char *mid;
        if (client_result_from_frame(fr, &r, &mid)) {
            accepted += r.nack_code == 0 && !r.duplicate;
            done++;
        }
        codec_free((ProtobufCMessage **)&fr);
        if (done == (hups + 1) * EVERY) {
            write_config(f, hups % 2 == 0 ? NEW_PARTNER_YAML : NULL, NULL, NULL);
            assert_int_equal(kill(f->net.pid, SIGHUP), 0);
            hups++;
        }
    }
    assert_int_equal(accepted, N);
    assert_true(log_count(f, "configuration reloaded") >= 1);
    assert_int_equal(log_count(f, "reload failed"), 0);
    assert_int_equal(log_count(f, "partner=caf client="), 1); /* one session throughout */
    client_close(&c);
    assert_int_equal(td_broker_stop(&f->net), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_added_partner_connects_existing_session_untouched,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_removed_partner_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_config_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_under_load, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
