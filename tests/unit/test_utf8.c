/* Unit tests of common/utf8: decoding, truncation by code point (never inside a
 * character) and escaping for logs and terminals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "utf8.h"

static void
test_decode(void **state)
{
    (void)state;
    uint32_t cp;
    assert_int_equal(utf8_decode("A", 1, &cp), 1);
    assert_int_equal(cp, 'A');
    assert_int_equal(utf8_decode("\xc3\xa9", 2, &cp), 2);
    assert_int_equal(cp, 0xE9);
    assert_int_equal(utf8_decode("\xe2\x82\xac", 3, &cp), 3);
    assert_int_equal(cp, 0x20AC);
    assert_int_equal(utf8_decode("\xf0\x9f\x98\x80", 4, &cp), 4);
    assert_int_equal(cp, 0x1F600);
    assert_int_equal(utf8_decode("\xe2\x82\xac", 2, &cp), 0); /* cut short by n */
    assert_int_equal(utf8_decode("\xc0\x80", 2, &cp), 0);     /* overlong NUL */
    assert_int_equal(utf8_decode("\xed\xa0\x80", 3, &cp), 0); /* surrogate */
    assert_int_equal(utf8_decode("\xf4\x90\x80\x80", 4, &cp), 0);
    assert_int_equal(utf8_decode("\x80", 1, &cp), 0);
    assert_true(utf8_valid("schéma € 😀"));
    assert_false(utf8_valid("caf\xc3"));
    assert_true(utf8_is_control(0x1B));
    assert_true(utf8_is_control(0x85));
    assert_false(utf8_is_control(0xA0));
}

/* A character of `width` bytes that starts at byte 255 and so crosses a 256-byte cut:
 * the cut keeps the 255 bytes before it, never a part of it. */
static void
check_cut(const char *ch, size_t width)
{
    char src[600], dst[257];
    memset(src, 'a', 255);
    memcpy(src + 255, ch, width);
    strcpy(src + 255 + width, "tail");
    assert_int_equal(utf8_truncate(dst, sizeof dst, src, 1000), 255);
    assert_int_equal(strlen(dst), 255);
    assert_true(utf8_valid(dst));
    /* With room for it, it is kept whole. */
    char big[600];
    assert_int_equal(utf8_truncate(big, sizeof big, src, 256), 255 + width);
    assert_memory_equal(big + 255, ch, width);
}

static void
test_truncate_never_splits(void **state)
{
    (void)state;
    check_cut("\xc3\xa9", 2);         /* é */
    check_cut("\xe2\x82\xac", 3);     /* € */
    check_cut("\xf0\x9f\x98\x80", 4); /* 😀 */
}

static void
test_truncate_counts_code_points(void **state)
{
    (void)state;
    char src[1200], dst[1200];
    size_t n = 0;
    for (int i = 0; i < 300; i++, n += 3)
        memcpy(src + n, "\xe2\x82\xac", 3);
    src[n] = '\0';
    assert_int_equal(utf8_truncate(dst, sizeof dst, src, 256), 256 * 3);
    assert_true(utf8_valid(dst));
    assert_int_equal(utf8_truncate(dst, 1, src, 256), 0);
    assert_string_equal(dst, "");
    /* A malformed tail is dropped: the result is always valid. */
    assert_int_equal(utf8_truncate(dst, sizeof dst, "ok\xff rest", 256), 2);
    assert_string_equal(dst, "ok");
}

static void
test_escape(void **state)
{
    (void)state;
    char out[256];
    const char in[] = "a\nb\r\tc\\d\x1b[31m\x07\x7f\xc2\x9b\xff\xc3 é€";
    size_t n = utf8_escape(out, sizeof out, in, sizeof in - 1);
    assert_string_equal(out, "a\\nb\\r\\tc\\\\d\\x1b[31m\\x07\\x7f\\u009b\\xff\\xc3 é€");
    assert_int_equal(n, strlen(out));
    /* An embedded NUL is escaped too, and the output never splits an item. */
    assert_int_equal(utf8_escape(out, sizeof out, "x\0y", 3), 6);
    assert_string_equal(out, "x\\x00y");
    assert_int_equal(utf8_escape(out, 4, "ab\n", 3), 2);
    assert_string_equal(out, "ab");
    assert_int_equal(utf8_escape(out, 3, "a€", 4), 1);
    assert_string_equal(out, "a");
    char worst[PT_UTF8_ESCAPED_MAX(3)];
    assert_int_equal(utf8_escape(worst, sizeof worst, "\xff\xfe\xfd", 3), 12);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_truncate_never_splits),
        cmocka_unit_test(test_truncate_counts_code_points),
        cmocka_unit_test(test_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
