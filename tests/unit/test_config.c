/* Unit tests of common/config: the YAML tree, every getter, and every error with
 * its file, line and key. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "testutil.h"

static config_t *
load_ok(const char *text)
{
    config_t *cfg = NULL;
    pt_error_t err;
    int rc = config_load_buffer(text, strlen(text), "t.yaml", &cfg, &err);
    if (rc != 0)
        fail_msg("load failed: %s", err.msg);
    return cfg;
}

/* Loads text expecting failure code with exactly the message msg. */
static void
load_fails(const char *text, int code, const char *msg)
{
    config_t *cfg = NULL;
    pt_error_t err;
    pt_error_clear(&err);
    assert_int_equal(config_load_buffer(text, strlen(text), "t.yaml", &cfg, &err), code);
    assert_null(cfg);
    assert_string_equal(err.msg, msg);
}

static void
test_tree(void **state)
{
    (void)state;
    config_t *cfg = load_ok("a: 1\n"
                            "b:\n"
                            "  c: [x, 'y']\n"
                            "  d:\n"
                            "    - e: 2\n");
    const config_node_t *root = config_root(cfg);
    assert_int_equal(config_node_kind(root), CONFIG_MAP);
    assert_int_equal(config_node_len(root), 2);
    assert_string_equal(config_node_text(config_node_key_at(root, 1)), "b");
    const config_node_t *b = config_map_get(root, "b");
    assert_int_equal(config_node_line(b), 3);
    const config_node_t *c = config_map_get(b, "c");
    assert_int_equal(config_node_kind(c), CONFIG_SEQ);
    assert_int_equal(config_node_column(c), 6);
    assert_string_equal(config_node_path(config_node_at(c, 1)), "b.c[1]");
    const config_node_t *e = config_map_get(config_node_at(config_map_get(b, "d"), 0), "e");
    assert_string_equal(config_node_path(e), "b.d[0].e");
    assert_int_equal(config_node_line(e), 5);
    assert_string_equal(config_node_text(e), "2");
    assert_null(config_map_get(root, "zz"));
    assert_null(config_node_at(c, 2));
    assert_null(config_node_text(b));
    config_destroy(&cfg);
    assert_null(cfg);
    config_destroy(&cfg); /* NULL is accepted */
}

static void
test_empty_and_null(void **state)
{
    (void)state;
    config_t *cfg = load_ok("");
    assert_null(config_root(cfg));
    config_destroy(&cfg);
    cfg = load_ok("a:\nb: ~\nc: ''\nd: null\n");
    const config_node_t *root = config_root(cfg);
    assert_true(config_node_is_null(config_map_get(root, "a")));
    assert_true(config_node_is_null(config_map_get(root, "b")));
    assert_false(config_node_is_null(config_map_get(root, "c")));
    assert_true(config_node_is_null(config_map_get(root, "d")));
    const char *s = "default";
    pt_error_t err;
    assert_int_equal(config_get_string(cfg, root, "a", false, &s, &err), PT_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:1: a: has no value");
    assert_int_equal(config_get_string(cfg, root, "c", true, &s, &err), 0);
    assert_string_equal(s, "");
    config_destroy(&cfg);
}

static void
test_string_and_bool(void **state)
{
    (void)state;
    config_t *cfg = load_ok("s: hello world\n"
                            "q: \"true\"\n"
                            "t: true\n"
                            "f: FALSE\n"
                            "bad: yes\n"
                            "m: {x: 1}\n");
    const config_node_t *root = config_root(cfg);
    pt_error_t err;
    const char *s = NULL;
    assert_int_equal(config_get_string(cfg, root, "s", true, &s, &err), 0);
    assert_string_equal(s, "hello world");
    assert_int_equal(config_get_string(cfg, root, "q", true, &s, &err), 0);
    assert_string_equal(s, "true");
    s = "kept";
    assert_int_equal(config_get_string(cfg, root, "absent", false, &s, &err), 0);
    assert_string_equal(s, "kept");
    assert_int_equal(config_get_string(cfg, root, "absent", true, &s, &err), PT_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:1: absent: missing required key");
    assert_string_equal(err.path, "t.yaml:1");
    assert_int_equal(config_get_string(cfg, root, "m", true, &s, &err), PT_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:6: m: expected a value, found a mapping");

    bool b = false;
    assert_int_equal(config_get_bool(cfg, root, "t", true, &b, &err), 0);
    assert_true(b);
    assert_int_equal(config_get_bool(cfg, root, "f", true, &b, &err), 0);
    assert_false(b);
    assert_int_equal(config_get_bool(cfg, root, "q", true, &b, &err), 0);
    assert_true(b);
    assert_int_equal(config_get_bool(cfg, root, "bad", true, &b, &err), PT_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:5: bad: \"yes\" is not a boolean (use true or false)");
    assert_true(b); /* untouched on error */
    config_destroy(&cfg);
}

static void
test_uint(void **state)
{
    (void)state;
    config_t *cfg = load_ok("a: 42\nb: -1\nc: 12x\nd: 99999999999999999999999\ne: 100\n");
    const config_node_t *root = config_root(cfg);
    pt_error_t err;
    uint64_t v = 7;
    assert_int_equal(config_get_uint(cfg, root, "a", true, 0, 100, &v, &err), 0);
    assert_int_equal(v, 42);
    assert_int_equal(config_get_uint(cfg, root, "b", true, 0, 100, &v, &err), PT_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:2: b: \"-1\" is not a whole number");
    assert_int_equal(config_get_uint(cfg, root, "c", true, 0, 100, &v, &err), PT_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:3: c: \"12x\" is not a whole number");
    assert_int_equal(config_get_uint(cfg, root, "d", true, 0, 100, &v, &err), PT_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:4: d: \"99999999999999999999999\" is not a whole number");
    assert_int_equal(config_get_uint(cfg, root, "e", true, 1, 99, &v, &err), PT_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:5: e: \"100\" is out of range (1..99)");
    assert_int_equal(v, 42);
    config_destroy(&cfg);
}

static void
test_size(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t bytes;
    } ok[] = {
        {"1024", 1024},        {"1024B", 1024},       {"4KiB", 4096},
        {"512MiB", 512 << 20}, {"2 GiB", 2ULL << 30}, {"1TiB", 1ULL << 40},
    };
    pt_error_t err;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "v: %s\n", ok[i].text);
        config_t *cfg = load_ok(text);
        uint64_t v = 0;
        assert_int_equal(config_get_size(cfg, config_root(cfg), "v", true, 0, UINT64_MAX, &v, &err),
                         0);
        assert_int_equal(v, ok[i].bytes);
        config_destroy(&cfg);
    }
    config_t *cfg = load_ok("journal:\n  max_size: 12 potatoes\n  a: 12MB\n  b: 32MiB\n"
                            "  c: 99999999999GiB\n  d: MiB\n");
    const config_node_t *j = config_map_get(config_root(cfg), "journal");
    uint64_t v = 0;
    assert_int_equal(config_get_size(cfg, j, "max_size", true, 0, UINT64_MAX, &v, &err),
                     PT_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:2: journal.max_size: \"12 potatoes\" is not a size "
                                 "(use 512MiB, 2GiB...)");
    assert_int_equal(config_get_size(cfg, j, "a", true, 0, UINT64_MAX, &v, &err), PT_ECONFIG);
    assert_string_equal(err.msg,
                        "t.yaml:3: journal.a: \"12MB\" is not a size (use 512MiB, 2GiB...)");
    assert_int_equal(config_get_size(cfg, j, "b", true, 1024, 16 << 20, &v, &err), PT_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:4: journal.b: \"32MiB\" is out of range (1KiB..16MiB)");
    assert_int_equal(config_get_size(cfg, j, "c", true, 0, UINT64_MAX, &v, &err), PT_ECONFIG);
    assert_non_null(strstr(err.msg, "t.yaml:5: journal.c: "));
    assert_int_equal(config_get_size(cfg, j, "d", true, 0, UINT64_MAX, &v, &err), PT_ECONFIG);
    assert_non_null(strstr(err.msg, "t.yaml:6: journal.d: "));
    config_destroy(&cfg);
}

static void
test_duration(void **state)
{
    (void)state;
    config_t *cfg = load_ok("a: 500ms\nb: 5s\nc: 2min\nd: 1h\ne: 5\nf: 3 days\ng: 2h\n");
    const config_node_t *root = config_root(cfg);
    static const struct {
        const char *key;
        uint64_t ms;
    } ok[] = {{"a", 500}, {"b", 5000}, {"c", 120000}, {"d", 3600000}};
    pt_error_t err;
    uint64_t v;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(config_get_duration(cfg, root, ok[i].key, true, 0, UINT64_MAX, &v, &err),
                         0);
        assert_int_equal(v, ok[i].ms);
    }
    assert_int_equal(config_get_duration(cfg, root, "e", true, 0, UINT64_MAX, &v, &err),
                     PT_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:5: e: \"5\" is not a duration (use 500ms, 5s, 2min, 1h)");
    assert_int_equal(config_get_duration(cfg, root, "f", true, 0, UINT64_MAX, &v, &err),
                     PT_ECONFIG);
    assert_non_null(strstr(err.msg, "t.yaml:6: f: \"3 days\" is not a duration"));
    assert_int_equal(config_get_duration(cfg, root, "g", true, 1000, 3600000, &v, &err),
                     PT_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:7: g: \"2h\" is out of range (1s..1h)");
    config_destroy(&cfg);
}

static void
test_strings_map_seq(void **state)
{
    (void)state;
    config_t *cfg = load_ok("l: [a, b, c]\n"
                            "e: []\n"
                            "bad:\n"
                            "  - ok\n"
                            "  - [nested]\n"
                            "s: scalar\n");
    const config_node_t *root = config_root(cfg);
    pt_error_t err;
    const char **v = NULL;
    size_t n = 0;
    assert_int_equal(config_get_strings(cfg, root, "l", true, &v, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(v[2], "c");
    free(v);
    assert_int_equal(config_get_strings(cfg, root, "e", true, &v, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(v);
    assert_int_equal(config_get_strings(cfg, root, "bad", true, &v, &n, &err), PT_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:5: bad[1]: expected a value, found a list");
    assert_int_equal(config_get_strings(cfg, root, "s", true, &v, &n, &err), PT_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:6: s: expected a list, found a single value");
    const config_node_t *m = NULL;
    assert_int_equal(config_get_map(cfg, root, "l", true, &m, &err), PT_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:1: l: expected a mapping (key: value), found a list");
    assert_int_equal(config_get_map(cfg, root, "nope", false, &m, &err), 0);
    assert_null(m);
    const config_node_t *seq = NULL;
    assert_int_equal(config_get_seq(cfg, root, "l", true, &seq, &err), 0);
    assert_int_equal(config_node_len(seq), 3);
    config_destroy(&cfg);
}

static void
test_unknown_key(void **state)
{
    (void)state;
    config_t *cfg = load_ok("journal:\n  dir: /x\n  max_sise: 1GiB\n");
    static const char *const allowed[] = {"dir", "max_size", NULL};
    const config_node_t *j = config_map_get(config_root(cfg), "journal");
    pt_error_t err;
    assert_int_equal(config_check_keys(cfg, j, allowed, &err), PT_ECONFIG);
    assert_string_equal(err.msg,
                        "t.yaml:3: journal.max_sise: unknown key (expected one of: dir, max_size)");
    static const char *const all[] = {"dir", "max_sise", NULL};
    assert_int_equal(config_check_keys(cfg, j, all, &err), 0);
    config_destroy(&cfg);
}

static void
test_duplicate_key(void **state)
{
    (void)state;
    load_fails("a: 1\nb:\n  c: 1\n  d: 2\n  c: 3\n", PT_EMALFORMED,
               "t.yaml:5: b.c: duplicate key (first given on line 3)");
    load_fails("{a: 1, a: 2}\n", PT_EMALFORMED,
               "t.yaml:1: a: duplicate key (first given on line 1)");
}

static void
test_syntax_error(void **state)
{
    (void)state;
    load_fails("a: 1\nb: [1, 2\nc: 3\n", PT_EMALFORMED,
               "t.yaml:3:2: YAML syntax error: did not find expected ',' or ']' while parsing a "
               "flow sequence");
    config_t *cfg = NULL;
    pt_error_t err;
    const char *text = "a: 1\n  b: 2\n";
    assert_int_equal(config_load_buffer(text, strlen(text), "t.yaml", &cfg, &err), PT_EMALFORMED);
    assert_non_null(strstr(err.msg, "t.yaml:2:"));
    assert_non_null(strstr(err.msg, "YAML syntax error"));
}

static void
test_refused_features(void **state)
{
    (void)state;
    load_fails("a: &x 1\nb: *x\n", PT_EMALFORMED, "t.yaml:1: a: anchors (&name) are not supported");
    load_fails("a: !!str 1\n", PT_EMALFORMED, "t.yaml:1: a: tags (!name) are not supported");
    load_fails("? [a]\n: 1\n", PT_EMALFORMED,
               "t.yaml:1: a key must be a plain string, not a mapping or a list");
    load_fails("a: 1\n---\nb: 2\n", PT_EMALFORMED,
               "t.yaml:2: only one YAML document is allowed in a configuration file");
    load_fails("a: \"x\\0y\"\n", PT_EMALFORMED, "t.yaml:1: a: the value contains a NUL character");
}

static void
test_limits(void **state)
{
    (void)state;
    /* Depth: 40 nested flow sequences. */
    char deep[128];
    memset(deep, '[', 40);
    memset(deep + 40, ']', 40);
    deep[80] = '\0';
    load_fails(deep, PT_ETOOLARGE,
               "t.yaml:1: [0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]"
               "[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]: nested more "
               "than 32 levels deep");
    /* Size. */
    size_t big = PT_CONFIG_MAX_BYTES + 1;
    char *text = malloc(big + 1);
    memset(text, '#', big);
    text[big] = '\0';
    config_t *cfg = NULL;
    pt_error_t err;
    assert_int_equal(config_load_buffer(text, big, "t.yaml", &cfg, &err), PT_ETOOLARGE);
    assert_non_null(strstr(err.msg, "over the limit"));
    /* Nodes: a flow list of 100001 one-character items fits in 1 MiB. */
    size_t n = 0;
    text[n++] = '[';
    for (int i = 0; i < PT_CONFIG_MAX_NODES + 1; i++) {
        text[n++] = '1';
        text[n++] = ',';
    }
    text[n - 1] = ']';
    assert_int_equal(config_load_buffer(text, n, "t.yaml", &cfg, &err), PT_ETOOLARGE);
    assert_non_null(strstr(err.msg, "more than 100000 nodes"));
    /* Keys in one mapping. */
    n = 0;
    n += (size_t)sprintf(text + n, "top:\n");
    for (int i = 0; i <= PT_CONFIG_MAX_MAP_KEYS; i++)
        n += (size_t)sprintf(text + n, "  k%d: 1\n", i);
    assert_int_equal(config_load_buffer(text, n, "t.yaml", &cfg, &err), PT_ETOOLARGE);
    assert_string_equal(err.msg, "t.yaml:1002: top: more than 1000 keys in one mapping");
    free(text);
}

static void
test_load_file(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("config");
    char path[4096];
    snprintf(path, sizeof path, "%s/broker.yaml", dir);
    const char *text = "# comment\nlisten: tcp://127.0.0.1:1\nlimits:\n  max_batch: lots\n";
    assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
    config_t *cfg = NULL;
    pt_error_t err;
    assert_int_equal(config_load_file(path, &cfg, &err), 0);
    assert_string_equal(config_name(cfg), path);
    uint64_t v;
    const config_node_t *l = config_map_get(config_root(cfg), "limits");
    assert_int_equal(config_get_uint(cfg, l, "max_batch", true, 1, 10, &v, &err), PT_ECONFIG);
    char want[4200];
    snprintf(want, sizeof want, "%s:4: limits.max_batch: \"lots\" is not a whole number", path);
    assert_string_equal(err.msg, want);
    config_destroy(&cfg);
    snprintf(path, sizeof path, "%s/missing.yaml", dir);
    assert_int_equal(config_load_file(path, &cfg, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "missing.yaml: cannot open"));
    tu_rmtree(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tree),
        cmocka_unit_test(test_empty_and_null),
        cmocka_unit_test(test_string_and_bool),
        cmocka_unit_test(test_uint),
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_strings_map_seq),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_refused_features),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
