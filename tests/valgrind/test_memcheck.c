/* Valgrind memcheck (issue 15, "leaks"): a real ptibusd runs under valgrind
 * --leak-check=full while the CAF publishes PT_MEMCHECK_MESSAGES beneficiary events
 * (default 300) over CURVE and the Département receives and acknowledges each one; then
 * a clean SIGTERM. The broker must exit 0: valgrind's --error-exitcode turns any memory
 * error (invalid read or write, use of an uninitialised value, bad free) and any
 * definite leak into exit status 99, and its log is printed. Suppressions for the
 * third-party libraries only are in tests/valgrind/ptibusd.supp. Skipped (77) when
 * valgrind is not installed and in sanitizer builds (valgrind cannot run them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "daemon.h"
#include "samples.h"
#include "testutil.h"

#define WINDOW 16
#define VG_ERROR_EXIT 99

static int
env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v != NULL && *v ? atoi(v) : dflt;
}

static void
print_valgrind_log(const char *path)
{
    uint8_t *buf;
    size_t len;
    if (tu_read_file(path, &buf, &len) != 0)
        return;
    fprintf(stderr, "---- %s\n%.*s\n", path, (int)len, (const char *)buf);
    free(buf);
}

/* Publishes while the window allows, reads acks; returns how many were acknowledged. */
static int
publish_step(client_t *pub, int *sent, int total, int acked)
{
    pt_error_t err;
    while (*sent < total && *sent - acked < WINDOW) {
        td_sample_t s;
        char id[40];
        snprintf(id, sizeof id, "memcheck-%06d", *sent);
        td_sample_beneficiary_event(&s, id);
        assert_int_equal(client_publish_async(pub, &s.env, &err), 0);
        (*sent)++;
    }
    Ptibus__V1__Frame *f = NULL;
    int got = 0;
    while (client_recv(pub, 5, &f, &err) == 0 && f != NULL) {
        client_result_t r;
        const char *id = NULL;
        if (client_result_from_frame(f, &r, &id)) {
            assert_int_equal(r.nack_code, 0);
            got++;
        }
        codec_free((ProtobufCMessage **)&f);
    }
    return got;
}

static int
consume_step(client_t *sub)
{
    Ptibus__V1__Frame *f = NULL;
    pt_error_t err;
    int got = 0;
    while (client_recv(sub, 0, &f, &err) == 0 && f != NULL) {
        if (f->kind_case == PTIBUS__V1__FRAME__KIND_DELIVER) {
            assert_int_equal(client_deliver_ack(sub, f->deliver->seq, true, NULL, &err), 0);
            got++;
        }
        codec_free((ProtobufCMessage **)&f);
    }
    return got;
}

static void
test_broker_has_no_memory_error_and_no_definite_leak(void **state)
{
    (void)state;
    int total = env_int("PT_MEMCHECK_MESSAGES", 300);
    td_net_t n;
    td_net_options_t o = {.ack_timeout = "30s"};
    td_net_init(&n, "memcheck", &o);
    char wrapper[9000], log[4300];
    snprintf(log, sizeof log, "%s/valgrind.log", n.dir);
    snprintf(wrapper, sizeof wrapper,
             "valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=%d "
             "--num-callers=30 --suppressions=%s/tests/valgrind/ptibusd.supp --log-file=%s",
             VG_ERROR_EXIT, PT_SOURCE_DIR, log);
    setenv("PTIBUS_TEST_WRAPPER", wrapper, 1);
    assert_int_equal(td_broker_start(&n), 0);
    client_t *pub, *sub;
    assert_int_equal(td_client_session(&n, "caf", 0, &pub), 0);
    assert_int_equal(td_client_session(&n, "departement", 64, &sub), 0);
    int sent = 0, acked = 0, delivered = 0;
    for (int64_t end = tu_now_ms() + 90000;
         (acked < total || delivered < total) && tu_now_ms() < end;) {
        acked += publish_step(pub, &sent, total, acked);
        delivered += consume_step(sub);
    }
    client_close(&pub);
    client_close(&sub);
    int status = td_broker_stop(&n);
    print_message("memcheck: published %d, acked %d, delivered %d, broker exit %d\n", sent, acked,
                  delivered, status);
    if (status != 0)
        print_valgrind_log(log);
    td_net_fini(&n);
    unsetenv("PTIBUS_TEST_WRAPPER");
    assert_int_equal(acked, total);
    assert_int_equal(delivered, total);
    assert_int_equal(status, 0);
}

int
main(void)
{
    if (PT_SANITIZED || system("valgrind --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "memcheck: skipped (no valgrind, or a sanitizer build)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broker_has_no_memory_error_and_no_definite_leak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
