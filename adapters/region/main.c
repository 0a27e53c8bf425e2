/* ptibus-adapter-region: the Région's adapter (LHEO training catalogues, JSON over HTTP).
 * A thin main: the runtime (core/runtime.h) does everything; this file says which
 * native codecs this partner's adapter has, and backs the LHEO codec's fingerprint
 * store (lheo_diff.h) with the spool's "lheo" namespace, so that a catalogue's
 * fingerprints commit in the same transaction as the offers it publishes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lheo.h"
#include "lheo_diff.h"
#include "runtime.h"

#define REGION_NS "lheo"

static int
st_get(void *impl, const char *key, uint8_t fp[LHEO_FP_LEN])
{
    uint8_t *v = NULL;
    size_t n = 0;
    pt_error_t err;
    pt_error_clear(&err);
    int rc = spool_kv_get(impl, REGION_NS, key, strlen(key), &v, &n, &err);
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
    return spool_kv_put(impl, REGION_NS, key, strlen(key), fp, LHEO_FP_LEN, &err);
}

static int
st_del(void *impl, const char *key)
{
    pt_error_t err;
    pt_error_clear(&err);
    int rc = spool_kv_del(impl, REGION_NS, key, strlen(key), &err);
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
    return spool_kv_iterate(impl, REGION_NS, st_each, &l, &err);
}

static const lheo_store_ops_t store_ops = {st_get, st_put, st_del, st_list};

static void *
codec_state(const pt_codec_ops_t *codec, spool_t *spool)
{
    if (codec != &lheo_codec)
        return NULL;
    lheo_store_t *st = malloc(sizeof *st);
    if (st != NULL)
        *st = (lheo_store_t){.ops = &store_ops, .impl = spool};
    return st;
}

static void
codec_state_free(const pt_codec_ops_t *codec, void *state)
{
    (void)codec;
    free(state);
}

static const pt_codec_ops_t *const codecs[] = {&lheo_codec, NULL};

int
main(int argc, char **argv)
{
    static const runtime_ops_t ops = {
        .program = "ptibus-adapter-region",
        .summary = "the Région's adapter (LHEO training catalogues, JSON over HTTP).",
        .codecs = codecs,
        .codec_state = codec_state,
        .codec_state_free = codec_state_free,
    };
    return runtime_main(&ops, argc, argv);
}
