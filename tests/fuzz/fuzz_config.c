/* fuzz_config: arbitrary bytes through the YAML loader (common/config), every scalar
 * conversion on every node of the tree, and the broker configuration (bconfig). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "bconfig.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs every conversion on n and its children; results are only checked for sanity. */
static void
walk(const config_t *cfg, const config_node_t *n)
{
    pt_error_t err;
    uint64_t v;
    const char *s;
    const char **list = NULL;
    size_t count = 0;
    bool b;
    if (config_node_kind(n) == CONFIG_SCALAR) {
        (void)config_node_string(cfg, n, &s, &err);
        (void)config_node_uint(cfg, n, 1, 1000, &v, &err);
        (void)config_node_size(cfg, n, 1024, UINT64_MAX, &v, &err);
        (void)config_node_duration(cfg, n, 0, 3600000, &v, &err);
        return;
    }
    for (size_t i = 0; i < config_node_len(n); i++) {
        const config_node_t *key = config_node_key_at(n, i);
        if (key != NULL) {
            const char *k = config_node_text(key);
            (void)config_get_bool(cfg, n, k, true, &b, &err);
            if (config_get_strings(cfg, n, k, false, &list, &count, &err) == 0)
                free(list);
            list = NULL;
        }
        walk(cfg, config_node_at(n, i));
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char name[] = "/nonexistent-ptibus-fuzz/broker.yaml";
    config_t *cfg = NULL;
    pt_error_t err;
    if (config_load_buffer((const char *)data, size, name, &cfg, &err) == 0) {
        if (config_root(cfg) != NULL)
            walk(cfg, config_root(cfg));
        config_destroy(&cfg);
    }
    bconfig_t *bc = NULL;
    if (bconfig_load_buffer((const char *)data, size, name, &bc, &err) == 0)
        bconfig_destroy(&bc);
    return 0;
}
