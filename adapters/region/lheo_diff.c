/* lheo_diff: a small open-addressing map (key -> fingerprint) serves as the seen set, the
 * staged changes and the in-memory store. */
#include "lheo_diff.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

typedef struct kentry {
    char *key;
    uint64_t hash; /* khash(key): probes compare it before the key */
    uint8_t fp[LHEO_FP_LEN];
    bool del; /* staged deletion */
} kentry_t;

typedef struct kmap {
    kentry_t *v;
    size_t cap, n; /* cap is 0 or a power of two */
} kmap_t;

static uint64_t
khash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    return h;
}

static kentry_t *
kmap_find(const kmap_t *m, const char *key)
{
    if (m->cap == 0)
        return NULL;
    uint64_t h = khash(key);
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->v[i].key == NULL)
            return NULL;
        if (m->v[i].hash == h && strcmp(m->v[i].key, key) == 0)
            return &m->v[i];
    }
}

static int kmap_insert(kmap_t *m, const char *key, kentry_t **out);

static int
kmap_grow(kmap_t *m)
{
    kmap_t g = {calloc(m->cap ? m->cap * 2 : 64, sizeof(kentry_t)), m->cap ? m->cap * 2 : 64, 0};
    if (g.v == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->v[i].key == NULL)
            continue;
        size_t j = m->v[i].hash & (g.cap - 1);
        while (g.v[j].key != NULL)
            j = (j + 1) & (g.cap - 1);
        g.v[j] = m->v[i];
        g.n++;
    }
    free(m->v);
    *m = g;
    return 0;
}

/* The entry for key, added (zeroed) when absent. */
static int
kmap_insert(kmap_t *m, const char *key, kentry_t **out)
{
    kentry_t *e = kmap_find(m, key);
    if (e != NULL) {
        *out = e;
        return 0;
    }
    if ((m->n + 1) * 2 > m->cap && kmap_grow(m) < 0)
        return -ENOMEM;
    uint64_t h = khash(key);
    size_t i = h & (m->cap - 1);
    while (m->v[i].key != NULL)
        i = (i + 1) & (m->cap - 1);
    if ((m->v[i].key = strdup(key)) == NULL)
        return -ENOMEM;
    m->v[i].hash = h;
    m->n++;
    *out = &m->v[i];
    return 0;
}

/* Deletion with backward shift, so that probing stays correct. */
static void
kmap_remove(kmap_t *m, const char *key)
{
    kentry_t *e = kmap_find(m, key);
    if (e == NULL)
        return;
    size_t i = (size_t)(e - m->v);
    free(e->key);
    e->key = NULL;
    m->n--;
    for (size_t j = (i + 1) & (m->cap - 1); m->v[j].key != NULL; j = (j + 1) & (m->cap - 1)) {
        kentry_t t = m->v[j];
        m->v[j].key = NULL;
        size_t k = t.hash & (m->cap - 1);
        while (m->v[k].key != NULL)
            k = (k + 1) & (m->cap - 1);
        m->v[k] = t;
    }
}

static void
kmap_fini(kmap_t *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->v[i].key);
    free(m->v);
    memset(m, 0, sizeof *m);
}

/* The snapshot's keys as 128-bit digests keyed per diff (so that no partner file can
 * make two keys collide on purpose): 16 bytes a session whatever its key. The digest is
 * SipHash-2-4 with a 128-bit output (a keyed PRF, several times cheaper than a keyed
 * BLAKE2b on keys this short); it never leaves memory. A digest's first byte is never
 * 0, which marks an empty slot. */
#define DIGEST_LEN crypto_shorthash_siphashx24_BYTES
typedef struct dset {
    uint8_t (*v)[DIGEST_LEN];
    size_t cap, n; /* cap is 0 or a power of two */
    uint8_t key[crypto_shorthash_siphashx24_KEYBYTES];
} dset_t;

static void
dset_digest(const dset_t *d, const char *key, uint8_t out[DIGEST_LEN])
{
    crypto_shorthash_siphashx24(out, (const uint8_t *)key, strlen(key), d->key);
    out[0] |= 1;
}

static size_t
dset_slot(const dset_t *d, const uint8_t dg[DIGEST_LEN])
{
    uint64_t h;
    memcpy(&h, dg + 8, sizeof h);
    size_t i = (size_t)h & (d->cap - 1);
    while (d->v[i][0] != 0 && memcmp(d->v[i], dg, DIGEST_LEN) != 0)
        i = (i + 1) & (d->cap - 1);
    return i;
}

static bool
dset_has(const dset_t *d, const char *key)
{
    uint8_t dg[DIGEST_LEN];
    if (d->cap == 0)
        return false;
    dset_digest(d, key, dg);
    return d->v[dset_slot(d, dg)][0] != 0;
}

/* 1 when key was added, 0 when it was there, -ENOMEM. Grown at 7/8, not 3/4: the set is
 * what grows with a catalogue (16 MiB up to 917 504 sessions, the native file limit's
 * worth, instead of 32), for a few more probes per session when nearly full. */
static int
dset_add(dset_t *d, const char *key)
{
    if ((d->n + 1) * 8 > d->cap * 7) {
        dset_t g = *d;
        g.cap = d->cap ? d->cap * 2 : 1024;
        g.n = 0;
        if ((g.v = calloc(g.cap, DIGEST_LEN)) == NULL)
            return -ENOMEM;
        for (size_t i = 0; i < d->cap; i++)
            if (d->v[i][0] != 0)
                memcpy(g.v[dset_slot(&g, d->v[i])], d->v[i], DIGEST_LEN), g.n++;
        free(d->v);
        *d = g;
    }
    uint8_t dg[DIGEST_LEN];
    dset_digest(d, key, dg);
    size_t i = dset_slot(d, dg);
    if (d->v[i][0] != 0)
        return 0;
    memcpy(d->v[i], dg, DIGEST_LEN);
    d->n++;
    return 1;
}

struct lheo_diff {
    lheo_store_t *store;
    dset_t seen;   /* every key of the snapshot */
    kmap_t staged; /* fingerprints to put, deletions to make (unless written through) */
    lheo_diff_stats_t stats;
};

static bool
write_through(const lheo_diff_t *d)
{
    return d->store != NULL && d->store->ops->write_through;
}

int
lheo_diff_new(lheo_diff_t **out, lheo_store_t *store)
{
    *out = calloc(1, sizeof **out);
    if (*out == NULL)
        return -ENOMEM;
    (*out)->store = store;
    randombytes_buf((*out)->seen.key, sizeof(*out)->seen.key);
    return 0;
}

void
lheo_diff_destroy(lheo_diff_t **d)
{
    if (d == NULL || *d == NULL)
        return;
    free((*d)->seen.v);
    kmap_fini(&(*d)->staged);
    free(*d);
    *d = NULL;
}

/* Most packed offers are well under 4 KiB: packed on the stack, else on the heap. */
static int
fingerprint(const Ptibus__V1__TrainingOffer *offer, uint8_t fp[LHEO_FP_LEN])
{
    Ptibus__V1__TrainingOffer copy = *offer;
    copy.operation = PTIBUS__V1__OFFER_OPERATION__OFFER_OPERATION_UPSERT;
    uint8_t local[4096];
    size_t len = protobuf_c_message_get_packed_size(&copy.base);
    uint8_t *buf = len <= sizeof local ? local : malloc(len);
    if (buf == NULL)
        return -ENOMEM;
    protobuf_c_message_pack(&copy.base, buf);
    crypto_generichash(fp, LHEO_FP_LEN, buf, len, NULL, 0);
    if (buf != local)
        free(buf);
    return 0;
}

int
lheo_diff_offer(lheo_diff_t *d, const Ptibus__V1__TrainingOffer *offer, bool *publish,
                pt_error_t *err)
{
    *publish = false;
    const char *key = offer->offer_id ? offer->offer_id : "";
    kentry_t *e;
    uint8_t fp[LHEO_FP_LEN], old[LHEO_FP_LEN];
    int rc = dset_add(&d->seen, key);
    if (rc == 0)
        return pt_error_set(err, PT_EINVALID, "offer_id",
                            "session \"%.128s\" appears twice in the catalogue", key);
    if (rc > 0)
        rc = fingerprint(offer, fp);
    if (rc < 0)
        return rc;
    d->stats.seen++;
    rc = d->store ? d->store->ops->get(d->store->impl, key, old) : PT_ENOTFOUND;
    if (rc == 0 && memcmp(old, fp, LHEO_FP_LEN) == 0) {
        d->stats.unchanged++;
        return 0;
    }
    if (rc != 0 && rc != PT_ENOTFOUND)
        return rc;
    if (write_through(d) && (rc = d->store->ops->put(d->store->impl, key, fp)) < 0)
        return rc;
    if (!write_through(d) && (rc = kmap_insert(&d->staged, key, &e)) < 0)
        return rc;
    if (!write_through(d))
        memcpy(e->fp, fp, LHEO_FP_LEN);
    d->stats.published++;
    *publish = true;
    return 0;
}

int
lheo_diff_keep(lheo_diff_t *d, const char *key)
{
    int rc = dset_add(&d->seen, key);
    return rc < 0 ? rc : 0;
}

typedef struct absent_ctx {
    lheo_diff_t *d;
    char **keys;
    size_t n, cap;
    int rc;
} absent_ctx_t;

static int
collect_absent(void *ctx, const char *key)
{
    absent_ctx_t *a = ctx;
    if (dset_has(&a->d->seen, key))
        return 0;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        char **k = realloc(a->keys, cap * sizeof *k);
        if (k == NULL)
            return a->rc = -ENOMEM;
        a->keys = k, a->cap = cap;
    }
    if ((a->keys[a->n] = strdup(key)) == NULL)
        return a->rc = -ENOMEM;
    a->n++;
    return 0;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int
lheo_diff_withdrawals(lheo_diff_t *d, int (*fn)(void *ctx, const char *key), void *ctx)
{
    if (d->store == NULL)
        return 0;
    absent_ctx_t a = {d, NULL, 0, 0, 0};
    int rc = d->store->ops->list(d->store->impl, collect_absent, &a);
    if (a.rc != 0)
        rc = a.rc;
    if (a.n > 1)
        qsort(a.keys, a.n, sizeof *a.keys, cmp_str);
    for (size_t i = 0; i < a.n && rc == 0; i++) {
        kentry_t *e;
        if (write_through(d))
            rc = d->store->ops->del(d->store->impl, a.keys[i]);
        else if ((rc = kmap_insert(&d->staged, a.keys[i], &e)) == 0)
            e->del = true;
        if (rc == 0) {
            d->stats.withdrawn++;
            rc = fn(ctx, a.keys[i]);
        }
    }
    for (size_t i = 0; i < a.n; i++)
        free(a.keys[i]);
    free(a.keys);
    return rc;
}

int
lheo_diff_commit(lheo_diff_t *d)
{
    if (d->store == NULL)
        return 0;
    for (size_t i = 0; i < d->staged.cap; i++) {
        const kentry_t *e = &d->staged.v[i];
        if (e->key == NULL)
            continue;
        int rc = e->del ? d->store->ops->del(d->store->impl, e->key)
                        : d->store->ops->put(d->store->impl, e->key, e->fp);
        if (rc < 0)
            return rc;
    }
    kmap_fini(&d->staged);
    return 0;
}

lheo_diff_stats_t
lheo_diff_stats(const lheo_diff_t *d)
{
    return d->stats;
}

/* The in-memory store. */
static int
mem_get(void *impl, const char *key, uint8_t fp[LHEO_FP_LEN])
{
    const kentry_t *e = kmap_find(impl, key);
    if (e == NULL)
        return PT_ENOTFOUND;
    memcpy(fp, e->fp, LHEO_FP_LEN);
    return 0;
}

static int
mem_put(void *impl, const char *key, const uint8_t fp[LHEO_FP_LEN])
{
    kentry_t *e;
    int rc = kmap_insert(impl, key, &e);
    if (rc == 0)
        memcpy(e->fp, fp, LHEO_FP_LEN);
    return rc;
}

static int
mem_del(void *impl, const char *key)
{
    kmap_remove(impl, key);
    return 0;
}

static int
mem_list(void *impl, int (*fn)(void *ctx, const char *key), void *ctx)
{
    const kmap_t *m = impl;
    for (size_t i = 0; i < m->cap; i++)
        if (m->v[i].key != NULL) {
            int rc = fn(ctx, m->v[i].key);
            if (rc != 0)
                return rc;
        }
    return 0;
}

static const lheo_store_ops_t mem_ops = {mem_get, mem_put, mem_del, mem_list, false};

int
lheo_memstore_new(lheo_store_t **out)
{
    lheo_store_t *s = calloc(1, sizeof *s);
    kmap_t *m = calloc(1, sizeof *m);
    if (s == NULL || m == NULL) {
        free(s);
        free(m);
        return -ENOMEM;
    }
    s->ops = &mem_ops;
    s->impl = m;
    *out = s;
    return 0;
}

void
lheo_memstore_destroy(lheo_store_t **s)
{
    if (s == NULL || *s == NULL)
        return;
    kmap_fini((*s)->impl);
    free((*s)->impl);
    free(*s);
    *s = NULL;
}

size_t
lheo_memstore_count(const lheo_store_t *s)
{
    return ((const kmap_t *)s->impl)->n;
}
