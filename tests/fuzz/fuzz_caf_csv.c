/* fuzz_caf_csv: arbitrary bytes through the CAF/MSA CSV decoder. Every message decoded is
 * encoded again and decoded back to the same wire bytes (the round trip); an error must
 * start with its line (abort() otherwise). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "caf_csv.h"
#include "codec.h"

static void
check(int ok)
{
    if (!ok)
        abort();
}

typedef struct sink {
    char *buf;
    size_t len, cap;
} sink_t;

static int
to_sink(void *ctx, const void *data, size_t len)
{
    sink_t *s = ctx;
    if (s->len + len > s->cap) {
        s->cap = (s->len + len) * 2;
        s->buf = realloc(s->buf, s->cap);
        check(s->buf != NULL);
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    return 0;
}

typedef struct packed {
    uint8_t *buf;
    size_t len;
    int seen;
} packed_t;

static int
keep_packed(void *ctx, const pt_record_t *rec)
{
    packed_t *p = ctx;
    pt_error_t err;
    check(rec->env != NULL && p->seen++ == 0);
    check(codec_pack(&rec->env->base, SIZE_MAX, &p->buf, &p->len, &err) == 0);
    return 0;
}

static int
on_record(void *ctx, const pt_record_t *rec)
{
    (void)ctx;
    if (rec->error != NULL) {
        check(strncmp(rec->error->msg, "line ", 5) == 0);
        return 0;
    }
    uint8_t *a;
    size_t alen;
    pt_error_t err;
    check(codec_pack(&rec->env->base, SIZE_MAX, &a, &alen, &err) == 0);
    sink_t s = {0};
    const Ptibus__V1__Envelope *envs[] = {rec->env};
    check(caf_csv_codec.encode(NULL, envs, 1, to_sink, &s, &err) == 0);
    csv_reader_t *r;
    pt_codec_outcome_t out;
    packed_t p = {0};
    check(csv_open_memory(&r, s.buf, s.len, NULL) == 0);
    check(caf_csv_decode(r, keep_packed, &p, &out) == 0 && p.seen == 1);
    check(p.len == alen && memcmp(p.buf, a, alen) == 0);
    csv_close(&r);
    free(p.buf);
    free(a);
    free(s.buf);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    csv_options_t o = {.max_field = 4096, .max_fields = 64};
    csv_reader_t *r;
    pt_codec_outcome_t out;
    check(csv_open_memory(&r, data, size, &o) == 0);
    if (caf_csv_decode(r, on_record, NULL, &out) != 0)
        check(strncmp(out.error.msg, "line ", 5) == 0);
    csv_close(&r);
    return 0;
}
