/* A misconfigured partner does not flood the broker's log (issue 15): a client that
 * knows the wrong broker key fails its CURVE handshake again and again (ZeroMQ
 * reconnects every 100 ms); the broker logs one line per socket and 10 s with the
 * count of the others, and still counts every one. Real ptibusd, a raw ZeroMQ client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <zmq.h>

#include "daemon.h"
#include "keys.h"
#include "testutil.h"

static void
test_wrong_broker_key_logged_at_a_bounded_rate(void **state)
{
    (void)state;
    td_net_t n;
    td_net_init(&n, "hslog", NULL);
    assert_int_equal(td_broker_start(&n), 0);
    char path[4300];
    uint8_t sk[32], pk[32], wrong[32];
    pt_error_t err;
    snprintf(path, sizeof path, "%s/keys/caf.key", n.dir);
    assert_int_equal(keys_read(path, sk, 32, true, &err), 0);
    snprintf(path, sizeof path, "%s/keys/caf.pub", n.dir);
    assert_int_equal(keys_read(path, pk, 32, false, &err), 0);
    randombytes_buf(wrong, sizeof wrong);
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int ivl = 100, linger = 0;
    zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, wrong, 32);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pk, 32);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sk, 32);
    assert_int_equal(zmq_connect(s, n.endpoint), 0);
    usleep(3000 * 1000);
    zmq_close(s);
    zmq_ctx_term(ctx);
    usleep(200 * 1000);
    int lines = td_log_count(&n, "auth.handshake");
    char *text = NULL;
    assert_int_equal(td_metrics_scrape(&n, &text), 200);
    print_message("handshake-failure lines in 3 s of retries: %d\n", lines);
    assert_true(lines >= 1);
    assert_true(lines <= 2);
    free(text);
    td_net_fini(&n);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wrong_broker_key_logged_at_a_bounded_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
