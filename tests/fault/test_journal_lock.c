/* Faults a new user hit (issue 15):
 * - two brokers on one journal: the second ptibusd is refused at start, naming the pid
 *   of the one that holds it, and the first keeps serving;
 * - map growth on every restart: once the journal is past its initial map size, a
 *   restart does not grow the map again (no new `journal.grow` line). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon.h"
#include "samples.h"
#include "testutil.h"

static void
publish_on(client_t *c, const char *id, size_t big)
{
    td_sample_t s;
    td_sample_training_offer(&s, id);
    char *obj = NULL;
    if (big > 0) {
        obj = malloc(big + 1);
        memset(obj, 'x', big);
        obj[big] = '\0';
        s.offer.objective = obj;
    }
    client_result_t r;
    pt_error_t err;
    assert_int_equal(client_publish(c, &s.env, 5000, &r, &err), 0);
    assert_int_equal(r.nack_code, 0);
    free(obj);
}

static void
publish_ok(td_net_t *n, const char *id, size_t big)
{
    client_t *c = NULL;
    assert_int_equal(td_client_session(n, "region", 0, &c), 0);
    publish_on(c, id, big);
    client_close(&c);
}

static void
test_second_broker_on_a_journal_is_refused(void **state)
{
    (void)state;
    td_net_t a, b;
    td_net_init(&a, "lock-a", NULL);
    assert_int_equal(td_broker_start(&a), 0);
    td_net_init(&b, "lock-b", NULL);
    snprintf(b.journal_dir, sizeof b.journal_dir, "%s", a.journal_dir);
    td_net_configure(&b, NULL);
    assert_int_not_equal(td_broker_start(&b), 0);
    char expect[64];
    snprintf(expect, sizeof expect, "in use by pid %d", (int)a.pid);
    assert_true(td_log_contains(&b, expect));
    publish_ok(&a, "lock-still-served", 0); /* the first one never noticed */
    td_net_fini(&b);
    td_net_fini(&a);
}

static void
test_restart_does_not_grow_the_map_again(void **state)
{
    (void)state;
    td_net_t n;
    td_net_options_t o = {.journal_initial_size = "1MiB",
                          .extra_limits = "  partner_rate: 0\n  partner_bytes_per_hour: 0\n"};
    td_net_init(&n, "mapgrow", &o);
    assert_int_equal(td_broker_start(&n), 0);
    client_t *c = NULL; /* one session: new connections are rate-limited per partner */
    assert_int_equal(td_client_session(&n, "region", 0, &c), 0);
    for (int i = 0; i < 400; i++) { /* about 1.6 MiB: past the initial map */
        char id[32];
        snprintf(id, sizeof id, "grow-%03d", i);
        publish_on(c, id, 3900);
    }
    client_close(&c);
    int grown = td_log_count(&n, "journal.grow");
    assert_true(grown >= 1);
    for (int r = 0; r < 5; r++) {
        assert_int_equal(td_broker_stop(&n), 0);
        assert_int_equal(td_broker_start(&n), 0);
        char id[32];
        snprintf(id, sizeof id, "after-restart-%d", r);
        publish_ok(&n, id, 0);
    }
    print_message("journal.grow lines: %d while filling, %d after 5 restarts\n", grown,
                  td_log_count(&n, "journal.grow"));
    assert_int_equal(td_log_count(&n, "journal.grow"), grown);
    td_net_fini(&n);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_second_broker_on_a_journal_is_refused),
        cmocka_unit_test(test_restart_does_not_grow_the_map_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
