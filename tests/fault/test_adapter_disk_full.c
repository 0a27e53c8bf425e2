/* An adapter's spool runs out of room: its configured maximum (spool.max_size), and a
 * real full disk (the spool on a size-limited tmpfs; needs the right to mount, skipped
 * with exit 77 otherwise, never passed). The broker is down, so the spool is the only
 * copy. POSTs are answered 202 until the spool is full, then 503 with Retry-After and
 * the SPOOL_FULL code; nothing answered 202 is lost; when room returns (the broker back
 * and the spool drained, or the disk grown) POSTs are taken again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "adapter.h"
#include "daemon.h"
#include "pjson.h"
#include "samples.h"
#include "testutil.h"

#define MAX_POSTS 20000
#define WAIT_MS 30000

typedef struct fx {
    td_net_t net;
    td_adapter_t d, p;
    char disk[4300];
    bool mounted;
    char (*ok)[32];
    size_t n_ok, next;
} fx_t;

static int
setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    f->ok = calloc(MAX_POSTS, sizeof *f->ok);
    td_net_options_t o = {.ack_timeout = "2s", .max_attempts = "20"};
    td_net_init(&f->net, "adapter-full", &o);
    assert_int_equal(td_broker_start(&f->net), 0);
    td_adapter_init(&f->p, &f->net, "pole_emploi", NULL);
    assert_int_equal(td_adapter_start(&f->p), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *f = *state;
    td_adapter_kill9(&f->d);
    td_adapter_kill9(&f->p);
    if (f->mounted)
        umount2(f->disk, MNT_DETACH);
    td_net_fini(&f->net);
    free(f->ok);
    free(f);
    return 0;
}

/* POSTs until one is not 202: that one must be 503 SPOOL_FULL with Retry-After. */
static void
fill(fx_t *f)
{
    for (;;) {
        assert_true(f->next < MAX_POSTS);
        char id[32], *body = NULL, *hdr = NULL;
        snprintf(id, sizeof id, "full-%05zu", f->next++);
        td_sample_t s;
        td_sample_orientation(&s, id);
        json_t *doc = NULL;
        pt_error_t err;
        assert_int_equal(pjson_from_message(&s.env.base, &doc, &err), 0);
        char *text = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        long st = td_adapter_http_hh(&f->d, "POST", "/v1/messages", text, strlen(text), NULL, &body,
                                     &hdr);
        free(text);
        if (st == 202) {
            snprintf(f->ok[f->n_ok++], sizeof f->ok[0], "%s", id);
        } else {
            print_message("after %zu messages: HTTP %ld %s", f->n_ok, st, body ? body : "");
            assert_int_equal(st, 503);
            if (strstr(body, "SPOOL_FULL") == NULL) {
                uint8_t *log = NULL;
                size_t n = 0;
                if (tu_read_file(f->d.log, &log, &n) == 0)
                    fprintf(stderr, "%s", n > 3000 ? (char *)log + n - 3000 : (char *)log);
                free(log);
                fail_msg("503 without SPOOL_FULL");
            }
            assert_non_null(strcasestr(hdr, "Retry-After:"));
        }
        free(body);
        free(hdr);
        if (st != 202)
            return;
    }
}

/* The broker back: every 202 reaches the recipient. */
static void
drain_and_check(fx_t *f)
{
    assert_int_equal(td_broker_start(&f->net), 0);
    td_outbox_wait(&f->p, f->n_ok, WAIT_MS);
    for (size_t i = 0; i < f->n_ok; i++)
        if (!td_outbox_has(&f->p, f->ok[i]))
            fail_msg("%s was answered 202 and never delivered", f->ok[i]);
}

static long
post_one(fx_t *f, const char *id)
{
    td_sample_t s;
    td_sample_orientation(&s, id);
    return td_adapter_post_env(&f->d, &s.env, NULL);
}

static void
test_spool_max_size_gives_503_then_recovers(void **state)
{
    fx_t *f = *state;
    td_adapter_options_t o = {.spool_max = "1MiB"};
    td_adapter_init(&f->d, &f->net, "departement", &o);
    assert_int_equal(td_adapter_start(&f->d), 0);
    assert_int_equal(td_broker_stop(&f->net), 0);
    fill(f);
    assert_true(f->n_ok > 10);
    drain_and_check(f);
    /* the spool drained (accepted messages leave the send queue): room again */
    long st = 0;
    for (int i = 0; i < 100 && (st = post_one(f, "full-after")) != 202; i++)
        usleep(100 * 1000);
    assert_int_equal(st, 202);
}

static void
test_full_disk_gives_503_then_recovers(void **state)
{
    fx_t *f = *state;
    snprintf(f->disk, sizeof f->disk, "%s/disk", f->net.dir);
    assert_int_equal(mkdir(f->disk, 0700), 0);
    if (mount("tmpfs", f->disk, "tmpfs", 0, "size=768k,mode=0700") != 0) {
        perror("mount tmpfs (skipping: needs root)");
        skip();
    }
    f->mounted = true;
    char spool[4400];
    snprintf(spool, sizeof spool, "%s/spool", f->disk);
    td_adapter_options_t o = {.spool_dir = spool};
    td_adapter_init(&f->d, &f->net, "departement", &o);
    assert_int_equal(td_adapter_start(&f->d), 0);
    assert_int_equal(td_broker_stop(&f->net), 0);
    fill(f);
    assert_true(f->n_ok > 10);
    /* room returns: the disk grows; the next POST is taken */
    assert_int_equal(mount("tmpfs", f->disk, "tmpfs", MS_REMOUNT, "size=64m,mode=0700"), 0);
    long st = 0;
    for (int i = 0; i < 100 && (st = post_one(f, "full-after")) != 202; i++)
        usleep(100 * 1000);
    assert_int_equal(st, 202);
    snprintf(f->ok[f->n_ok++], sizeof f->ok[0], "full-after");
    drain_and_check(f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_spool_max_size_gives_503_then_recovers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_full_disk_gives_503_then_recovers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
