/* lheo_spool: the LHEO fingerprint store over a spool namespace (see lheo_spool.h). */
#include "lheo_spool.h"

#include <stdlib.h>
#include <string.h>

static int
st_get(void *impl, const char *key, uint8_t fp[LHEO_FP_LEN])
{
    uint8_t *v = NULL;
    size_t n = 0;
    pt_error_t err;
    pt_error_clear(&err);
    int rc = spool_kv_get(impl, PT_LHEO_SPOOL_NS, key, strlen(key), &v, &n, &err);
    if (rc == 0 && n != LHEO_FP_LEN)
        rc = PT_ECORRUPT;
    if (rc == 0)
        memcpy(fp, v, LHEO_FP_LEN);
    free(v);
    return rc;
}

static int
st_put(void *impl, const char *key, const uint8_t fp[LHEO_FP_LEN])
{
    pt_error_t err;
    pt_error_clear(&err);
    return spool_kv_put(impl, PT_LHEO_SPOOL_NS, key, strlen(key), fp, LHEO_FP_LEN, &err);
}

static int
st_del(void *impl, const char *key)
{
    pt_error_t err;
    pt_error_clear(&err);
    int rc = spool_kv_del(impl, PT_LHEO_SPOOL_NS, key, strlen(key), &err);
    return rc == PT_ENOTFOUND ? 0 : rc;
}

typedef struct st_list {
    int (*fn)(void *ctx, const char *key);
    void *ctx;
} st_list_t;

static int
st_each(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
    st_list_t *l = arg;
    char k[PT_SPOOL_KEY_MAX + 1];
    (void)val;
    (void)vlen;
    if (klen > PT_SPOOL_KEY_MAX)
        return PT_ECORRUPT;
    memcpy(k, key, klen);
    k[klen] = '\0';
    return l->fn(l->ctx, k);
}

static int
st_list(void *impl, int (*fn)(void *ctx, const char *key), void *ctx)
{
    st_list_t l = {fn, ctx};
    pt_error_t err;
    pt_error_clear(&err);
    return spool_kv_iterate(impl, PT_LHEO_SPOOL_NS, st_each, &l, &err);
}

/* Written through: the runtime stages a file in the spool (spool.h), and a file that
 * fails is rolled back, its fingerprint writes with it. */
static const lheo_store_ops_t store_ops = {st_get, st_put, st_del, st_list, true};

lheo_store_t
lheo_spool_store(spool_t *spool)
{
    return (lheo_store_t){.ops = &store_ops, .impl = spool};
}
