/* pull: the inbox kept in the spool (see pull.h). */
#include "pull.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bytes.h"

/* A record: version byte, flags byte, then the document's compact JSON (no NUL). */
#define REC_HEAD 2
#define REC_FLAG_REPLAY 0x01

typedef struct buf {
    char *p;
    size_t len, cap;
} buf_t;

static int
buf_add(buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return -ENOMEM;
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

/* The stored record of a delivery's document. PT_E* codes: the envelope is at fault. */
static int
record_render(const outbox_delivery_t *d, size_t max_envelope, uint8_t **rec, size_t *len,
              pt_error_t *err)
{
    json_t *doc = NULL;
    int rc = outbox_delivery_json(d, max_envelope, &doc, err);
    if (rc != 0)
        return rc;
    char *text = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(doc);
    size_t n = text != NULL ? strlen(text) : 0;
    uint8_t *r = text != NULL ? malloc(REC_HEAD + n) : NULL;
    if (r == NULL) {
        free(text);
        return pt_error_set(err, -ENOMEM, "pull", "out of memory rendering a delivery");
    }
    r[0] = PT_PULL_RECORD_VERSION;
    r[1] = d->replay ? REC_FLAG_REPLAY : 0;
    memcpy(r + REC_HEAD, text, n);
    free(text);
    *rec = r;
    *len = REC_HEAD + n;
    return 0;
}

static bool
record_ok(const uint8_t *v, size_t n)
{
    return n > REC_HEAD && v[0] == PT_PULL_RECORD_VERSION;
}

/* The flags of the record of seq: 0 with *held, *flags; or an error. */
static int
record_flags(spool_t *s, const uint8_t key[8], bool *held, uint8_t *flags, pt_error_t *err)
{
    uint8_t *v = NULL;
    size_t n = 0;
    *held = false, *flags = 0;
    int rc = spool_kv_get(s, PT_PULL_NS, key, 8, &v, &n, err);
    if (rc == PT_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if (!record_ok(v, n))
        rc = pt_error_set(err, PT_EVERSION, "pull", "an inbox record of an unknown format");
    else
        *held = true, *flags = v[1];
    free(v);
    return rc;
}

static bool
kv_has(spool_t *s, const char *ns, const uint8_t key[8], int *rc, pt_error_t *err)
{
    uint8_t *v = NULL;
    size_t n = 0;
    *rc = spool_kv_get(s, ns, key, 8, &v, &n, err);
    free(v);
    if (*rc == PT_ENOTFOUND) {
        *rc = 0;
        return false;
    }
    return *rc == 0;
}

/* What to do with d before rendering it: 0 with *status HELD (hold it), ALREADY or SEEN. */
static int
put_decide(spool_t *s, const outbox_delivery_t *d, const uint8_t key[8], pull_status_t *status,
           pt_error_t *err)
{
    bool seen = false, held = false;
    uint8_t flags = 0;
    int rc = d->replay ? 0 : spool_inbound_seen(s, d->seq, &seen, err);
    if (rc == 0 && seen) {
        *status = PULL_SEEN;
        return 0;
    }
    if (rc == 0)
        rc = record_flags(s, key, &held, &flags, err);
    if (rc != 0)
        return rc;
    if (held) {
        bool remark = d->replay && !(flags & REC_FLAG_REPLAY);
        *status = remark ? PULL_HELD : PULL_ALREADY;
        return 0;
    }
    *status = PULL_HELD;
    if (d->replay && (d->redelivery || d->attempt > 1) &&
        kv_has(s, PT_PULL_REPLAYED_NS, key, &rc, err))
        *status = PULL_SEEN; /* this replay reached the partner: its ack was lost */
    return rc;
}

int
pull_put(spool_t *s, const outbox_delivery_t *d, size_t max_envelope, pull_status_t *status,
         pt_error_t *err)
{
    pt_error_clear(err);
    *status = PULL_RETRY;
    uint8_t key[8];
    bytes_be64_put(key, d->seq);
    pull_status_t st = PULL_RETRY;
    int rc = put_decide(s, d, key, &st, err);
    if (rc != 0 || st != PULL_HELD) {
        *status = rc == 0 ? st : PULL_RETRY;
        return rc;
    }
    uint8_t *rec = NULL;
    size_t len = 0;
    rc = record_render(d, max_envelope, &rec, &len, err);
    if (rc != 0) {
        *status = rc <= PT_EBASE && rc != PT_EINTERNAL ? PULL_REFUSED : PULL_RETRY;
        return rc;
    }
    rc = spool_kv_put(s, PT_PULL_NS, key, 8, rec, len, err);
    free(rec);
    *status = rc == 0 ? PULL_HELD : PULL_RETRY;
    return rc;
}

/* ---- listing ---- */

typedef struct lister {
    uint64_t after, next;
    size_t limit, n;
    buf_t b;
} lister_t;

static int
list_one(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
    lister_t *l = arg;
    if (klen != 8 || !record_ok(val, vlen))
        return 0; /* not ours: never served */
    uint64_t seq = bytes_be64_get(key);
    if (seq <= l->after)
        return 0;
    int rc = l->n > 0 ? buf_add(&l->b, ",", 1) : 0;
    if (rc == 0)
        rc = buf_add(&l->b, (const char *)val + REC_HEAD, vlen - REC_HEAD);
    if (rc != 0)
        return rc;
    l->next = seq;
    return ++l->n == l->limit ? 1 : 0;
}

int
pull_list(spool_t *s, uint64_t after_seq, size_t limit, char **json, size_t *len, pt_error_t *err)
{
    pt_error_clear(err);
    *json = NULL;
    *len = 0;
    if (limit == 0 || limit > PT_PULL_LIMIT_MAX)
        return pt_error_set(err, PT_EINVALID, "limit", "must be 1 to %d", PT_PULL_LIMIT_MAX);
    lister_t l = {.after = after_seq, .next = after_seq, .limit = limit};
    int rc = buf_add(&l.b, "{\"messages\":[", 13);
    if (rc == 0) {
        rc = spool_kv_iterate(s, PT_PULL_NS, list_one, &l, err);
        rc = rc == 1 ? 0 : rc;
    }
    char tail[48];
    snprintf(tail, sizeof tail, "],\"next\":\"%" PRIu64 "\"}", l.next);
    if (rc == 0)
        rc = buf_add(&l.b, tail, strlen(tail));
    if (rc != 0) {
        free(l.b.p);
        return rc == -ENOMEM ? pt_error_set(err, rc, "pull", "out of memory listing") : rc;
    }
    *json = l.b.p;
    *len = l.b.len;
    return 0;
}

/* ---- acks ---- */

int
pull_ack(spool_t *s, uint64_t seq, int64_t now_ms, bool *acked, pt_error_t *err)
{
    pt_error_clear(err);
    if (acked != NULL)
        *acked = false;
    uint8_t key[8], at[8];
    bytes_be64_put(key, seq);
    bytes_be64_put(at, (uint64_t)now_ms);
    bool held = false, seen = false;
    uint8_t flags = 0;
    int rc = record_flags(s, key, &held, &flags, err);
    if (rc == 0 && !held) {
        rc = spool_inbound_seen(s, seq, &seen, err);
        if (rc == 0 && !seen)
            rc = pt_error_set(err, PT_ENOTFOUND, "seq", "no delivery with this seq in the inbox");
        return rc;
    }
    if (rc == 0)
        rc = spool_kv_del(s, PT_PULL_NS, key, 8, err);
    if (rc == 0)
        rc = spool_inbound_mark(s, seq, now_ms, err);
    if (rc == 0 && (flags & REC_FLAG_REPLAY))
        rc = spool_kv_put(s, PT_PULL_REPLAYED_NS, key, 8, at, 8, err);
    if (rc == 0 && acked != NULL)
        *acked = true;
    return rc;
}

int
pull_held(spool_t *s, uint64_t seq, bool *held, pt_error_t *err)
{
    uint8_t key[8], flags;
    bytes_be64_put(key, seq);
    return record_flags(s, key, held, &flags, err);
}

static int
count_one(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
    (void)key;
    if (klen == 8 && record_ok(val, vlen))
        (*(uint64_t *)arg)++;
    return 0;
}

int
pull_depth(spool_t *s, uint64_t *depth, pt_error_t *err)
{
    *depth = 0;
    return spool_kv_iterate(s, PT_PULL_NS, count_one, depth, err);
}
