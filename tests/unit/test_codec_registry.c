/* test_codec_registry: every built-in codec is in the table once, with a name, file
 * patterns and a decoder, and is found by its name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "registry.h"

static void
test_table(void **state)
{
    (void)state;
    static const char *const names[] = {
        "lheo", "cnaf_rsa", "ft_csv", "ft_extract", "cd_orientation_csv", "imilo", "caf_csv"};
    assert_int_equal(codec_registry_count(), sizeof names / sizeof names[0]);
    for (size_t i = 0; i < codec_registry_count(); i++) {
        const pt_codec_ops_t *c = codec_registry_at(i);
        assert_non_null(c->decode);
        assert_non_null(c->patterns);
        assert_non_null(c->patterns[0]);
        assert_ptr_equal(codec_registry_find(c->name), c);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(codec_registry_at(j)->name, c->name);
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_non_null(codec_registry_find(names[i]));
    assert_null(codec_registry_find("nope"));
    assert_null(codec_registry_find(NULL));
    assert_null(codec_registry_at(codec_registry_count()));
    assert_non_null(codec_registry_find("caf_csv")->encode);
    assert_non_null(codec_registry_find("imilo")->encode);
    assert_null(codec_registry_find("lheo")->encode);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
