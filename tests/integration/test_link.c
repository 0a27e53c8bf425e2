/* Integration tests of the link state machine (libptibus/link.h) against a real ptibusd:
 * the loop is the test's own poll loop, with a clock offset standing in for time
 * passing: Hello -> Welcome -> UP, heartbeats when idle, liveness, kill -9 and restart
 * of the broker (re-Hello by itself, deliveries resume), the causes of a link that is
 * down named distinctly, the publish window and credit. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "daemon.h"
#include "keys.h"
#include "link.h"
#include "samples.h"
#include "testutil.h"

#define WAIT_MS 8000
#define MAX_LOG 64

typedef struct lx {
    link_t *link;
    int64_t offset; /* added to the real clock: time passing without waiting */
    link_state_t states[MAX_LOG];
    size_t n_states;
    int welcomes, results, heartbeats, receipts;
    uint64_t delivered[MAX_LOG];
    size_t n_delivered;
    bool ack; /* acknowledge each delivery in on_deliver */
} lx_t;

typedef struct fx {
    td_net_t net;
    bool started;
    lx_t a, b;
} fx_t;

static int64_t
lx_now(const lx_t *x)
{
    return tu_now_ms() + x->offset;
}

static bool
on_frame(void *arg, Ptibus__V1__Frame *f)
{
    lx_t *x = arg;
    if (f->kind_case == PTIBUS__V1__FRAME__KIND_HEARTBEAT)
        x->heartbeats++;
    return false;
}

static void
on_welcome(void *arg, const Ptibus__V1__Welcome *w)
{
    (void)w;
    ((lx_t *)arg)->welcomes++;
}

static void
on_result(void *arg, const char *mid, const link_result_t *r)
{
    (void)mid;
    (void)r;
    ((lx_t *)arg)->results++;
}

static void
on_deliver(void *arg, const Ptibus__V1__Deliver *d)
{
    lx_t *x = arg;
    if (x->n_delivered < MAX_LOG)
        x->delivered[x->n_delivered++] = d->seq;
    pt_error_t err;
    if (x->ack)
        assert_int_equal(link_deliver_ack(x->link, d->seq, true, NULL, lx_now(x), &err), 0);
}

static void
on_state(void *arg, link_state_t s, const char *cause)
{
    lx_t *x = arg;
    (void)cause;
    if (x->n_states < MAX_LOG)
        x->states[x->n_states++] = s;
}

static const link_callbacks_t callbacks = {.on_frame = on_frame,
                                           .on_welcome = on_welcome,
                                           .on_publish_result = on_result,
                                           .on_deliver = on_deliver,
                                           .on_state = on_state};

static void
read_key(fx_t *f, const char *name, const char *ext, uint8_t key[PT_KEY_LEN])
{
    char path[4300];
    pt_error_t err;
    snprintf(path, sizeof path, "%s/keys/%s.%s", f->net.dir, name, ext);
    if (keys_read(path, key, PT_KEY_LEN, strcmp(ext, "key") == 0, &err) != 0)
        fail_msg("%s", err.msg);
}

/* Opens x as partner `sk_of` (secret key) with the public key of `pk_of`; server_pk
 * NULL means the broker's. Returns link_new's code. */
static int
lx_open_keys(fx_t *f, lx_t *x, const char *sk_of, const char *pk_of, const uint8_t *server_pk,
             const link_options_t *extra, pt_error_t *err)
{
    uint8_t sk[PT_KEY_LEN], pk[PT_KEY_LEN];
    read_key(f, sk_of, "key", sk);
    read_key(f, pk_of, "pub", pk);
    link_options_t o = extra ? *extra : (link_options_t){0};
    o.endpoint = f->net.endpoint;
    o.server_pk = server_pk ? server_pk : f->net.server_pk;
    o.client_sk = sk;
    o.client_pk = pk;
    o.client_name = "test-link";
    link_callbacks_t cb = callbacks;
    cb.arg = x;
    return link_new(&o, &cb, lx_now(x), &x->link, err);
}

static void
lx_open(fx_t *f, lx_t *x, const char *partner, const link_options_t *extra)
{
    pt_error_t err;
    if (lx_open_keys(f, x, partner, partner, NULL, extra, &err) != 0)
        fail_msg("link_new: %s", err.msg);
}

typedef bool (*until_fn)(const lx_t *x, long arg);

static bool
until_state(const lx_t *x, long s)
{
    return link_state(x->link) == (link_state_t)s;
}

static bool
until_delivered(const lx_t *x, long n)
{
    return x->n_delivered >= (size_t)n;
}

static bool
until_results(const lx_t *x, long n)
{
    return x->results >= n;
}

static bool
until_heartbeats(const lx_t *x, long n)
{
    return x->heartbeats >= n;
}

/* The loop of an adapter, for up to ms of real time or until `until` holds. */
static bool
lx_run(lx_t *x, int ms, until_fn until, long arg)
{
    int64_t deadline = tu_now_ms() + ms;
    pt_error_t err;
    for (;;) {
        assert_int_equal(link_on_readable(x->link, lx_now(x), &err), 0);
        if (until && until(x, arg))
            return true;
        link_tick(x->link, lx_now(x), &err);
        int64_t left = deadline - tu_now_ms();
        if (left <= 0)
            return until == NULL;
        int64_t due = link_next_due(x->link);
        int wait = left > 50 ? 50 : (int)left;
        if (due >= 0 && due - lx_now(x) < wait)
            wait = due - lx_now(x) < 0 ? 0 : (int)(due - lx_now(x));
        struct pollfd p = {.fd = link_fd(x->link), .events = POLLIN};
        poll(&p, 1, wait);
    }
}

static void
lx_up(fx_t *f, lx_t *x, const char *partner, const link_options_t *extra)
{
    pt_error_t err;
    lx_open(f, x, partner, extra);
    assert_int_equal(link_hello(x->link, lx_now(x), &err), 0);
    if (!lx_run(x, WAIT_MS, until_state, PT_LINK_UP))
        fail_msg("%s: link %s: %s", partner, link_state_name(link_state(x->link)),
                 link_cause(x->link));
    assert_string_equal(link_partner_id(x->link), partner);
}

static int
setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    td_net_init(&f->net, "link", NULL);
    if (td_broker_start(&f->net) != 0)
        return -1;
    f->started = true;
    *state = f;
    return 0;
}

/* A network whose broker is not started. */
static int
setup_no_broker(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    td_net_init(&f->net, "link", NULL);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *f = *state;
    if (f->net.pid > 0)
        kill(f->net.pid, SIGCONT); /* a failed assertion may leave it stopped */
    link_destroy(&f->a.link);
    link_destroy(&f->b.link);
    td_net_fini(&f->net);
    free(f);
    return 0;
}

/* Publishes a sanction decision paid by the CAF (routed to pole_emploi and caf). */
static void
publish_sanction(fx_t *f, const char *id)
{
    client_t *c;
    assert_int_equal(td_client_session(&f->net, "departement", 0, &c), 0);
    td_sample_t s;
    td_sample_sanction(&s, id, PTIBUS__V1__PAYER__PAYER_CAF);
    client_result_t r;
    pt_error_t err;
    if (client_publish(c, &s.env, 5000, &r, &err) != 0)
        fail_msg("publish %s: %s", id, err.msg);
    assert_int_equal(r.nack_code, 0);
    client_close(&c);
}

static bool
seen_state(const lx_t *x, link_state_t s, size_t from)
{
    for (size_t i = from; i < x->n_states; i++)
        if (x->states[i] == s)
            return true;
    return false;
}

static void
test_hello_welcome_up(void **state)
{
    fx_t *f = *state;
    lx_open(f, &f->a, "caf", NULL);
    assert_int_equal(link_state(f->a.link), PT_LINK_CONNECTING);
    /* Without link_hello() the link never says Hello. */
    assert_false(lx_run(&f->a, 500, until_state, PT_LINK_HELLO_SENT));
    pt_error_t err;
    assert_int_equal(link_hello(f->a.link, lx_now(&f->a), &err), 0);
    assert_true(lx_run(&f->a, WAIT_MS, until_state, PT_LINK_UP));
    assert_true(seen_state(&f->a, PT_LINK_HELLO_SENT, 0));
    assert_int_equal(f->a.welcomes, 1);
    assert_string_equal(link_partner_id(f->a.link), "caf");
    assert_string_equal(link_cause(f->a.link), "");
}

/* The test broker's heartbeat interval is 1 s: nothing before it, a heartbeat after it
 * (the broker's echo proves it went out and the session holds). */
static void
test_heartbeat_when_idle(void **state)
{
    fx_t *f = *state;
    lx_up(f, &f->a, "caf", NULL);
    f->a.offset = 400;
    lx_run(&f->a, 200, NULL, 0);
    assert_int_equal(f->a.heartbeats, 0);
    f->a.offset = 1100;
    assert_true(lx_run(&f->a, 2000, until_heartbeats, 1));
    assert_int_equal(link_state(f->a.link), PT_LINK_UP);
    assert_true(link_next_due(f->a.link) > lx_now(&f->a));
}

/* A broker that stops answering (SIGSTOP: the TCP connection stays up) is declared
 * down after an unanswered heartbeat and two more intervals; then Hello again, and UP
 * once it answers. */
static void
test_silent_broker_goes_down_then_up(void **state)
{
    fx_t *f = *state;
    lx_t *x = &f->a;
    lx_up(f, x, "caf", NULL);
    size_t mark = x->n_states;
    kill(f->net.pid, SIGSTOP);
    x->offset = 1100; /* heartbeat due: sent, unanswered */
    lx_run(x, 200, NULL, 0);
    assert_int_equal(link_state(x->link), PT_LINK_UP);
    x->offset = 2500; /* not yet three intervals of silence */
    lx_run(x, 100, NULL, 0);
    assert_int_equal(link_state(x->link), PT_LINK_UP);
    x->offset = 3500;
    lx_run(x, 100, NULL, 0);
    kill(f->net.pid, SIGCONT);
    assert_true(seen_state(x, PT_LINK_DOWN, mark));
    assert_non_null(strstr(link_cause(x->link), "no frame from the broker for"));
    assert_int_equal(link_state(x->link), PT_LINK_HELLO_SENT);
    assert_true(lx_run(x, WAIT_MS, until_state, PT_LINK_UP));
    assert_int_equal(x->welcomes, 2);
}

static void
test_broker_killed_then_restarted(void **state)
{
    fx_t *f = *state;
    lx_t *x = &f->a;
    x->ack = true;
    lx_up(f, x, "caf", &(link_options_t){.initial_credit = 8});
    publish_sanction(f, "lk-kill-1");
    assert_true(lx_run(x, WAIT_MS, until_delivered, 1));

    td_broker_kill9(&f->net);
    assert_true(lx_run(x, WAIT_MS, until_state, PT_LINK_DOWN));
    const char *cause = link_cause(x->link);
    assert_true(strstr(cause, "lost") != NULL || strstr(cause, "no broker at") != NULL);
    /* Down for a while: ZeroMQ's connection retries are refused. */
    lx_run(x, 700, NULL, 0);
    assert_int_equal(link_state(x->link), PT_LINK_DOWN);
    assert_non_null(strstr(link_cause(x->link), "no broker at"));

    assert_int_equal(td_broker_start(&f->net), 0);
    if (!lx_run(x, 15000, until_state, PT_LINK_UP))
        fail_msg("not up again: %s", link_cause(x->link));
    assert_int_equal(x->welcomes, 2);
    publish_sanction(f, "lk-kill-2");
    assert_true(lx_run(x, WAIT_MS, until_delivered, 2));
}

static void
expect_down_cause(lx_t *x, const char *want, const char *const *not_want)
{
    if (!lx_run(x, WAIT_MS, until_state, PT_LINK_DOWN))
        fail_msg("not down: %s", link_cause(x->link));
    /* It stays down, with the same cause (retries do not blur it). */
    lx_run(x, 600, NULL, 0);
    const char *cause = link_cause(x->link);
    if (strstr(cause, want) == NULL)
        fail_msg("cause \"%s\" does not say \"%s\"", cause, want);
    for (size_t i = 0; not_want[i]; i++)
        if (strstr(cause, not_want[i]) != NULL)
            fail_msg("cause \"%s\" says \"%s\" too", cause, not_want[i]);
    assert_false(seen_state(x, PT_LINK_UP, 0));
}

static const char *const causes[] = {"no broker at", "wrong broker public key",
                                     "refused this client's key", "mismatched key pair", NULL};

static const char *const *
others(const char *want)
{
    static const char *rest[5];
    size_t n = 0;
    for (size_t i = 0; causes[i]; i++)
        if (strcmp(causes[i], want) != 0)
            rest[n++] = causes[i];
    rest[n] = NULL;
    return rest;
}

static void
test_cause_broker_not_running(void **state)
{
    fx_t *f = *state;
    lx_open(f, &f->a, "caf", NULL);
    pt_error_t err;
    assert_int_equal(link_hello(f->a.link, lx_now(&f->a), &err), 0);
    expect_down_cause(&f->a, causes[0], others(causes[0]));
}

static void
test_cause_wrong_broker_key(void **state)
{
    fx_t *f = *state;
    uint8_t other[PT_KEY_LEN];
    read_key(f, "msa", "pub", other);
    pt_error_t err;
    assert_int_equal(lx_open_keys(f, &f->a, "caf", "caf", other, NULL, &err), 0);
    assert_int_equal(link_hello(f->a.link, lx_now(&f->a), &err), 0);
    expect_down_cause(&f->a, causes[1], others(causes[1]));
}

static void
test_cause_unknown_partner_key(void **state)
{
    fx_t *f = *state;
    pt_error_t err;
    assert_int_equal(lx_open_keys(f, &f->a, "intruder", "intruder", NULL, NULL, &err), 0);
    assert_int_equal(link_hello(f->a.link, lx_now(&f->a), &err), 0);
    expect_down_cause(&f->a, causes[2], others(causes[2]));
    /* The cause names the key by the fingerprint the broker logs. */
    uint8_t pk[PT_KEY_LEN];
    char fp[PT_FINGERPRINT_LEN + 1];
    read_key(f, "intruder", "pub", pk);
    keys_fingerprint(pk, fp);
    assert_non_null(strstr(link_cause(f->a.link), fp));
}

/* A secret key with another partner's public key cannot complete any handshake: it is
 * refused before connecting, saying so. */
static void
test_cause_mismatched_key_pair(void **state)
{
    fx_t *f = *state;
    pt_error_t err;
    int rc = lx_open_keys(f, &f->a, "caf", "msa", NULL, NULL, &err);
    assert_int_equal(rc, PT_EINVALID);
    assert_null(f->a.link);
    for (size_t i = 0; causes[i]; i++)
        if ((strstr(err.msg, causes[i]) != NULL) != (i == 3))
            fail_msg("\"%s\" / \"%s\"", err.msg, causes[i]);
}

/* The blocking client's timeout says why too (what ptibusctl prints). */
static void
test_client_timeout_names_cause(void **state)
{
    fx_t *f = *state;
    client_t *c;
    assert_int_equal(td_client_open(&f->net, "intruder", true, &c), 0);
    pt_error_t err;
    char who[64];
    assert_int_equal(client_hello(c, 1500, who, sizeof who, &err), PT_ETIMEOUT);
    client_close(&c);
    if (strstr(err.msg, causes[2]) == NULL)
        fail_msg("%s", err.msg);
}

static int
pack_sample(const char *id, uint8_t **buf, size_t *len)
{
    td_sample_t s;
    pt_error_t err;
    td_sample_sanction(&s, id, PTIBUS__V1__PAYER__PAYER_CAF);
    return codec_pack(&s.env.base, 1 << 20, buf, len, &err);
}

static int
lx_publish(lx_t *x, const char *id)
{
    uint8_t *buf;
    size_t len;
    pt_error_t err;
    assert_int_equal(pack_sample(id, &buf, &len), 0);
    int rc = link_publish(x->link, id, buf, len, lx_now(x), &err);
    free(buf);
    return rc;
}

static void
test_publish_window(void **state)
{
    fx_t *f = *state;
    lx_t *x = &f->a;
    lx_open(f, x, "departement", &(link_options_t){.publish_window = 2});
    assert_int_equal(lx_publish(x, "lk-win-0"), -ENOTCONN);
    pt_error_t err;
    assert_int_equal(link_hello(x->link, lx_now(x), &err), 0);
    assert_true(lx_run(x, WAIT_MS, until_state, PT_LINK_UP));
    assert_int_equal(lx_publish(x, "lk-win-1"), 0);
    assert_int_equal(lx_publish(x, "lk-win-2"), 0);
    assert_int_equal(lx_publish(x, "lk-win-3"), -EAGAIN);
    assert_int_equal(link_in_flight(x->link), 2);
    assert_true(lx_run(x, WAIT_MS, until_results, 2));
    assert_int_equal(link_in_flight(x->link), 0);
    assert_int_equal(lx_publish(x, "lk-win-3"), 0);
    assert_true(lx_run(x, WAIT_MS, until_results, 3));
}

/* One delivery per credit while nothing is acknowledged; more credit, more deliveries. */
static void
test_credit(void **state)
{
    fx_t *f = *state;
    lx_t *x = &f->a;
    lx_up(f, x, "caf", &(link_options_t){.initial_credit = 1});
    publish_sanction(f, "lk-cr-1");
    publish_sanction(f, "lk-cr-2");
    publish_sanction(f, "lk-cr-3");
    assert_true(lx_run(x, WAIT_MS, until_delivered, 1));
    lx_run(x, 500, NULL, 0);
    assert_int_equal(x->n_delivered, 1);
    pt_error_t err;
    assert_int_equal(link_credit(x->link, 2, lx_now(x), &err), 0);
    assert_true(lx_run(x, WAIT_MS, until_delivered, 3));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hello_welcome_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_when_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_broker_goes_down_then_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broker_killed_then_restarted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cause_broker_not_running, setup_no_broker, teardown),
        cmocka_unit_test_setup_teardown(test_cause_wrong_broker_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cause_unknown_partner_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cause_mismatched_key_pair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_timeout_names_cause, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_credit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
