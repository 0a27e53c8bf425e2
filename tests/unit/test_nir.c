/* Unit tests of libptibus/nir: shape, key (computed here independently, by long division
 * on the text), Corsica, normal form, and error texts that never echo the NIR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "nir.h"

/* The key by the INSEE definition: replace 2A by 19 and 2B by 18 in the text, then
 * 97 - (number mod 97), the remainder taken digit by digit. */
static int
reference_key(const char *nir13)
{
    char text[16];
    snprintf(text, sizeof text, "%.13s", nir13);
    if (strncmp(text + 5, "2A", 2) == 0)
        memcpy(text + 5, "19", 2);
    if (strncmp(text + 5, "2B", 2) == 0)
        memcpy(text + 5, "18", 2);
    int rem = 0;
    for (const char *p = text; *p; p++)
        rem = (rem * 10 + (*p - '0')) % 97;
    return 97 - rem;
}

static void
with_key(const char *nir13, char out[16])
{
    snprintf(out, 16, "%.13s%02d", nir13, reference_key(nir13));
}

static void
expect_invalid(const char *nir, const char *msg)
{
    pt_error_t err;
    assert_int_equal(nir_validate(nir, "person.nir", &err), PT_EINVALID);
    assert_int_equal(err.code, PT_EINVALID);
    assert_string_equal(err.path, "person.nir");
    assert_string_equal(err.msg, msg);
    assert_false(nir_is_valid(nir));
}

static void
test_known_valid(void **state)
{
    (void)state;
    pt_error_t err;
    /* The example of the French Wikipedia article on the NIR. */
    assert_int_equal(nir_validate("255081416802538", NULL, &err), 0);
    assert_int_equal(reference_key("2550814168025"), 38);
    assert_int_equal(nir_compute_key("2550814168025"), 38);
    assert_true(nir_is_valid("2550814168025"));
    /* "1 85 05 78 006 084 36", often quoted as an example, does not check: its key is 91. */
    assert_int_equal(reference_key("1850578006084"), 91);
    expect_invalid("185057800608436", "person.nir: key 36 does not match, expected 91");
    assert_true(nir_is_valid("185057800608491"));
}

static void
test_keys_agree_with_reference(void **state)
{
    (void)state;
    static const char *const numbers[] = {
        "1010101001001", "2991299999999", "1850578006084", "3850578006084", "4850578006084",
        "7850578006084", "8850578006084", "1852012345678", "1853012345678", "1854212345678",
        "1855012345678", "1859912345678", "2809712345678", "1009900100001",
    };
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        char full[16];
        with_key(numbers[i], full);
        assert_int_equal(nir_compute_key(numbers[i]), reference_key(numbers[i]));
        assert_true(nir_is_valid(full));
        assert_true(nir_is_valid(numbers[i]));
    }
}

static void
test_corsica(void **state)
{
    (void)state;
    char a[16], b[16];
    with_key("183052A123456", a);
    with_key("275112B012345", b);
    assert_true(nir_is_valid(a));
    assert_true(nir_is_valid(b));
    /* 2A counts as 19 and 2B as 18: the keys are those of the substituted numbers. */
    assert_int_equal(nir_compute_key("183052A123456"), reference_key("1830519123456"));
    assert_int_equal(nir_compute_key("275112B012345"), reference_key("2751118012345"));
    assert_int_equal(nir_compute_key("183052A123456"), 34);
    assert_int_equal(nir_compute_key("275112B012345"), 60);
    /* The same digits with the other letter have another key. */
    char wrong[16];
    snprintf(wrong, sizeof wrong, "183052B123456%.2s", a + 13);
    assert_false(nir_is_valid(wrong));
    expect_invalid("183052C123456",
                   "person.nir: departement (characters 6-7) must be 2 digits, 2A or 2B");
    expect_invalid("183052a123456",
                   "person.nir: departement (characters 6-7) must be 2 digits, 2A or 2B");
}

static void
test_wrong_key(void **state)
{
    (void)state;
    expect_invalid("255081416802537", "person.nir: key 37 does not match, expected 38");
    expect_invalid("255081416802500", "person.nir: key 00 does not match, expected 38");
    expect_invalid("25508141680253X", "person.nir: key (characters 14-15) must be 2 digits");
    expect_invalid("2550814168025 8", "person.nir: key (characters 14-15) must be 2 digits");
}

static void
test_wrong_length(void **state)
{
    (void)state;
    expect_invalid("", "person.nir: has 0 characters, expected 13 or 15");
    expect_invalid("255081416802", "person.nir: has 12 characters, expected 13 or 15");
    expect_invalid("25508141680253", "person.nir: has 14 characters, expected 13 or 15");
    expect_invalid("2550814168025380", "person.nir: has 16 characters, expected 13 or 15");
    expect_invalid("2 55 08 14 168 025 38", "person.nir: has 21 characters, expected 13 or 15");
    char longer[200];
    memset(longer, '1', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    expect_invalid(longer, "person.nir: is far too long, expected 13 or 15 characters");
    pt_error_t err;
    assert_int_equal(nir_validate(NULL, NULL, &err), PT_EINVALID);
    assert_string_equal(err.msg, "nir: is missing");
}

static void
test_fields(void **state)
{
    (void)state;
    expect_invalid("5550814168025",
                   "person.nir: sex digit (character 1) must be 1, 2, 3, 4, 7 or 8");
    expect_invalid("0550814168025",
                   "person.nir: sex digit (character 1) must be 1, 2, 3, 4, 7 or 8");
    expect_invalid("A550814168025",
                   "person.nir: sex digit (character 1) must be 1, 2, 3, 4, 7 or 8");
    expect_invalid("2X50814168025", "person.nir: year (characters 2-3) must be 2 digits");
    static const char *const bad_months[] = {"00", "13", "19", "43", "49", "1A"};
    for (size_t i = 0; i < sizeof bad_months / sizeof bad_months[0]; i++) {
        char nir[14];
        snprintf(nir, sizeof nir, "255%s14168025", bad_months[i]);
        expect_invalid(nir, "person.nir: month (characters 4-5) must be 01-12, 20-42 or 50-99");
    }
    static const char *const good_months[] = {"01", "12", "20", "30", "42", "50", "99"};
    for (size_t i = 0; i < sizeof good_months / sizeof good_months[0]; i++) {
        char nir[14];
        snprintf(nir, sizeof nir, "255%s14168025", good_months[i]);
        assert_true(nir_is_valid(nir));
    }
    expect_invalid("25508AB168025",
                   "person.nir: departement (characters 6-7) must be 2 digits, 2A or 2B");
    expect_invalid("2550814X68025",
                   "person.nir: commune and order number (characters 8-13) must be digits");
    expect_invalid("255081416802X",
                   "person.nir: commune and order number (characters 8-13) must be digits");
}

/* No error text may contain the number, nor its identifying middle part. */
static void
test_errors_never_echo_the_nir(void **state)
{
    (void)state;
    static const char *const bad[] = {"255081416802537", "2550814X68025", "25513141680253",
                                      "183052C123456"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pt_error_t err;
        assert_int_equal(nir_validate(bad[i], NULL, &err), PT_EINVALID);
        char middle[7];
        snprintf(middle, sizeof middle, "%.6s", bad[i] + 1);
        assert_null(strstr(err.msg, middle));
        assert_int_equal(nir_normalise(bad[i], (char[PT_NIR_NORM_SIZE]){0}, &err), PT_EINVALID);
        assert_null(strstr(err.msg, middle));
    }
}

static void
test_normalise(void **state)
{
    (void)state;
    char out[PT_NIR_NORM_SIZE];
    pt_error_t err;
    assert_int_equal(nir_normalise("2 55 08 14 168 025 38", out, &err), 0);
    assert_string_equal(out, "2550814168025");
    assert_int_equal(nir_normalise("2.55.08.14.168.025", out, &err), 0);
    assert_string_equal(out, "2550814168025");
    char typed[32];
    snprintf(typed, sizeof typed, "1 83 05 2a 123 456 %02d", reference_key("183052A123456"));
    assert_int_equal(nir_normalise(typed, out, &err), 0);
    assert_string_equal(out, "183052A123456");

    assert_int_equal(nir_normalise("2 55 08 14 168 025 37", out, &err), PT_EINVALID);
    assert_string_equal(out, "");
    assert_string_equal(err.msg, "nir: key 37 does not match, expected 38");
    assert_int_equal(nir_normalise("2 55 08 14 168 025 38 1", out, &err), PT_EINVALID);
    assert_string_equal(err.msg, "nir: has 16 characters, expected 13 or 15");
    assert_int_equal(nir_normalise("2 55 08 14 168 025 38 123", out, &err), PT_EINVALID);
    assert_string_equal(err.msg, "nir: has too many characters, expected 13 or 15");
    assert_int_equal(nir_normalise("2-55-08-14-168-025", out, &err), PT_EINVALID);
    assert_string_equal(err.path, "nir");
    char spaces[100];
    memset(spaces, ' ', sizeof spaces - 1);
    spaces[sizeof spaces - 1] = '\0';
    assert_int_equal(nir_normalise(spaces, out, &err), PT_EINVALID);
    assert_string_equal(err.msg, "nir: is far too long, expected 13 or 15 characters");
    assert_int_equal(nir_normalise(NULL, out, &err), PT_EINVALID);
    assert_int_equal(nir_compute_key("12345"), PT_EINVALID);
    assert_int_equal(nir_compute_key(NULL), PT_EINVALID);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_valid),
        cmocka_unit_test(test_keys_agree_with_reference),
        cmocka_unit_test(test_corsica),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_wrong_length),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_errors_never_echo_the_nir),
        cmocka_unit_test(test_normalise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
