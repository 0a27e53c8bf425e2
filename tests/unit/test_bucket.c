/* Unit tests of the token bucket behind the quotas. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bucket.h"

static void
test_burst_then_rate(void **state)
{
    (void)state;
    pt_bucket_t b;
    bucket_init(&b, 10, 20, 1000);
    int taken = 0;
    while (bucket_take(&b, 1, 1000))
        taken++;
    assert_int_equal(taken, 20);            /* starts full */
    assert_false(bucket_take(&b, 1, 1050)); /* half a token later */
    assert_true(bucket_take(&b, 1, 1100));  /* 100 ms at 10/s: one token */
    assert_false(bucket_take(&b, 1, 1100));
    assert_true(bucket_take(&b, 20, 100000)); /* refills to burst, no further */
    assert_false(bucket_take(&b, 1, 100000));
}

static void
test_large_take_and_unlimited(void **state)
{
    (void)state;
    pt_bucket_t b;
    bucket_init(&b, 100, 1000, 0);
    assert_false(bucket_take(&b, 1001, 0)); /* more than the burst: never */
    assert_true(bucket_take(&b, 1000, 0));
    assert_false(bucket_take(&b, 1, 0)); /* a failed take left the bucket as it was */
    bucket_init(&b, 0, 0, 0);
    for (int i = 0; i < 100000; i++)
        assert_true(bucket_take(&b, 1e9, 0));
}

static void
test_clock_going_back(void **state)
{
    (void)state;
    pt_bucket_t b;
    bucket_init(&b, 1, 1, 5000);
    assert_true(bucket_take(&b, 1, 5000));
    assert_false(bucket_take(&b, 1, 4000)); /* no refill from an earlier time */
    assert_true(bucket_take(&b, 1, 6000));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_rate),
        cmocka_unit_test(test_large_take_and_unlimited),
        cmocka_unit_test(test_clock_going_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
