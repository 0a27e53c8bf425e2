/* kill -9 of an adapter in the middle of a large file (issue 13): the Région's adapter
 * spools a 20 000-session LHEO catalogue in committed chunks of 4096 under a spool stage
 * (docs/adapters/filedrop.md). It is killed once at least one chunk is durable and the
 * file is not finished.
 * 1. The file is then taken away from processing/ and the adapter restarted: nothing of
 *    the half file may ever reach a subscriber (its chunks are rolled back at start).
 * 2. The same catalogue is dropped again, the adapter killed again mid-file and restarted
 *    with the file left in processing/: it is resumed, and every session reaches the
 *    subscriber exactly once (no loss, no duplicate of the chunks committed before).
 * The test of the test: with the stage's hold and rollback disabled, part 1 publishes
 * the chunks committed before the kill (checked by hand, see docs/adapters/spool.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "adapter.h"
#include "daemon.h"
#include "testutil.h"

#define SESSIONS 20000
#define WAIT_MS 120000

typedef struct fx {
    td_net_t net;
    td_adapter_t src, dst;
    char catalogue[4400];
} fx_t;

static int
setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    td_net_options_t o = {.ack_timeout = "5s"};
    td_net_init(&f->net, "staged", &o);
    assert_int_equal(td_broker_start(&f->net), 0);
    snprintf(f->catalogue, sizeof f->catalogue, "%s/catalogue.xml", f->net.dir);
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "python3 %s/bench/gen_codec_inputs.py lheo %s %d", PT_SOURCE_DIR,
             f->catalogue, SESSIONS);
    assert_int_equal(system(cmd), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *f = *state;
    if (f->src.pid > 0)
        td_adapter_kill9(&f->src);
    if (f->dst.pid > 0)
        assert_int_equal(td_adapter_stop(&f->dst), 0);
    td_net_fini(&f->net);
    free(f);
    return 0;
}

static off_t
size_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Drops the catalogue as `name` and kill -9s the adapter once the first chunk's report
 * lines are written (so its commit is durable) and before the file is done. */
static void
drop_and_kill_mid_file(fx_t *f, const char *name)
{
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(tu_read_file(f->catalogue, &data, &len), 0);
    td_adapter_drop(&f->src, name, data, len);
    free(data);
    char lines[4600], done[4600];
    snprintf(lines, sizeof lines, "%s/processing/.%s.records", f->src.inbox, name);
    snprintf(done, sizeof done, "%s/done/%s.report.json", f->src.inbox, name);
    for (int i = 0; i < 30000 && size_of(lines) <= 0; i++)
        usleep(1000);
    assert_true(size_of(lines) > 0);
    td_adapter_kill9(&f->src);
    if (size_of(done) >= 0)
        fail_msg("the kill came after the file was done: make the catalogue larger");
}

static void
test_kill9_mid_file_publishes_nothing_then_everything_once(void **state)
{
    fx_t *f = *state;
    td_adapter_options_t so = {.codecs = "[lheo]"}, d = {.codecs = "[json]"};
    td_adapter_init(&f->src, &f->net, "region", &so);
    td_adapter_init(&f->dst, &f->net, "pole_emploi", &d); /* a subscriber of training offers */
    assert_int_equal(td_adapter_start(&f->dst), 0);
    assert_int_equal(td_adapter_start(&f->src), 0);
    assert_true(td_adapter_wait_ready(&f->src, 10000));

    /* 1. a half file, taken away: nothing of it, ever */
    drop_and_kill_mid_file(f, "cat-1.xml");
    char from[4600], to[4600];
    snprintf(from, sizeof from, "%s/processing/cat-1.xml", f->src.inbox);
    snprintf(to, sizeof to, "%s/cat-1.xml.away", f->net.dir);
    assert_int_equal(rename(from, to), 0);
    assert_int_equal(td_adapter_start(&f->src), 0);
    assert_true(td_adapter_wait_ready(&f->src, 10000));
    sleep(3);
    assert_int_equal(td_outbox_count(&f->dst), 0);

    /* 2. the same catalogue, killed mid-file again, resumed: every session exactly once */
    drop_and_kill_mid_file(f, "cat-2.xml");
    assert_int_equal(td_adapter_start(&f->src), 0);
    assert_true(td_adapter_wait_ready(&f->src, 10000));
    assert_int_equal(td_outbox_wait(&f->dst, SESSIONS, WAIT_MS), SESSIONS);
    sleep(2);
    assert_int_equal(td_outbox_count(&f->dst), SESSIONS); /* one file per message id */
    char done[4600];
    snprintf(done, sizeof done, "%s/done/cat-2.xml.report.json", f->src.inbox);
    assert_true(size_of(done) > 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill9_mid_file_publishes_nothing_then_everything_once,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
