/* Unit tests of libptibus/ids: UUIDv7 format, version and variant, strict ordering
 * (including many ids in one millisecond), timestamp read-back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <cmocka.h>

#include "ids.h"

#define N_IDS 100000

static int64_t
wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void
test_format(void **state)
{
    (void)state;
    char id[PT_UUID_LEN + 1];
    assert_int_equal(ids_uuid7(id), 0);
    assert_int_equal(strlen(id), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(id[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", id[i]));
    }
    assert_int_equal(id[14], '7');           /* version */
    assert_non_null(strchr("89ab", id[19])); /* variant 10xx */
}

static void
test_time_readback(void **state)
{
    (void)state;
    char id[PT_UUID_LEN + 1];
    int64_t before = wall_ms();
    assert_int_equal(ids_uuid7(id), 0);
    int64_t after = wall_ms();
    int64_t t = ids_uuid7_time_ms(id);
    /* The id may run ahead of the clock by a few ms if earlier ids overflowed. */
    assert_true(t >= before && t <= after + 5);
    /* Known vector: RFC 9562 appendix A.6. */
    assert_int_equal(ids_uuid7_time_ms("017F22E2-79B0-7CC3-98C4-DC0C0C07398F"), 0x017F22E279B0);
    assert_int_equal(ids_uuid7_time_ms("017f22e2-79b0-7cc3-98c4-dc0c0c07398f"), 0x017F22E279B0);
}

static void
test_time_readback_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398",   /* short */
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398f0", /* long */
        "017f22e2-79b0-4cc3-98c4-dc0c0c07398f",  /* version 4 */
        "017f22e2-79b0-7cc3-c8c4-dc0c0c07398f",  /* variant 110 */
        "017f22e2-79b0-7cc3-78c4-dc0c0c07398f",  /* variant 0 */
        "017f22e2x79b0-7cc3-98c4-dc0c0c07398f",  /* dash */
        "017g22e2-79b0-7cc3-98c4-dc0c0c07398f",  /* hex */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ids_uuid7_time_ms(bad[i]), -1);
    assert_int_equal(ids_uuid7_time_ms(NULL), -1);
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_monotonic(void **state)
{
    (void)state;
    char(*ids)[PT_UUID_LEN + 1] = malloc(N_IDS * sizeof *ids);
    assert_non_null(ids);
    size_t same_ms = 0;
    for (size_t i = 0; i < N_IDS; i++) {
        assert_int_equal(ids_uuid7(ids[i]), 0);
        if (i == 0)
            continue;
        if (strcmp(ids[i - 1], ids[i]) >= 0)
            fail_msg("id %zu not after id %zu: %s <= %s", i, i - 1, ids[i], ids[i - 1]);
        if (ids_uuid7_time_ms(ids[i - 1]) == ids_uuid7_time_ms(ids[i]))
            same_ms++;
        assert_true(ids_uuid7_time_ms(ids[i - 1]) <= ids_uuid7_time_ms(ids[i]));
    }
    /* 100k ids take far less than 100k ms: many shared a millisecond. */
    assert_true(same_ms > N_IDS / 2);
    /* Strictly increasing also means unique; and sorting keeps the order. */
    char **sorted = malloc(N_IDS * sizeof *sorted);
    for (size_t i = 0; i < N_IDS; i++)
        sorted[i] = ids[N_IDS - 1 - i];
    qsort(sorted, N_IDS, sizeof *sorted, cmp_str);
    for (size_t i = 0; i < N_IDS; i++)
        assert_ptr_equal(sorted[i], ids[i]);
    free(sorted);
    free(ids);
}

static void
test_random_part_varies(void **state)
{
    (void)state;
    /* Two ids differ beyond the timestamp: the random tail is not a plain counter. */
    char a[PT_UUID_LEN + 1], b[PT_UUID_LEN + 1];
    assert_int_equal(ids_uuid7(a), 0);
    assert_int_equal(ids_uuid7(b), 0);
    assert_string_not_equal(a + 24, b + 24);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_time_readback),
        cmocka_unit_test(test_time_readback_rejects),
        cmocka_unit_test(test_monotonic),
        cmocka_unit_test(test_random_part_varies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
