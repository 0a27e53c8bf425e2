/* fuzz_imilo: arbitrary bytes through the i-milo JSON decoder. Every record must be a
 * Referral or a ReferralStatus that passes validation, or an error naming its JSON path;
 * every status must encode and decode back to the same wire bytes (abort() otherwise). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "imilo.h"
#include "validate.h"

static void
check(int ok)
{
    if (!ok)
        abort();
}

typedef struct sink {
    char *buf;
    size_t len;
} sink_t;

static int
to_sink(void *ctx, const void *data, size_t len)
{
    sink_t *s = ctx;
    s->buf = realloc(s->buf, s->len + len);
    check(s->buf != NULL);
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

static void
status_round_trip(const Ptibus__V1__Envelope *env)
{
    uint8_t *a;
    size_t alen;
    pt_error_t err;
    sink_t s = {0};
    packed_t p = {0};
    pt_codec_outcome_t out;
    const Ptibus__V1__Envelope *envs[] = {env};
    check(codec_pack(&env->base, SIZE_MAX, &a, &alen, &err) == 0);
    check(imilo_codec.encode(NULL, envs, 1, to_sink, &s, &err) == 0);
    check(imilo_decode(s.buf, s.len, keep_packed, &p, &out) == 0 && p.seen == 1);
    check(p.len == alen && memcmp(p.buf, a, alen) == 0);
    free(p.buf);
    free(a);
    free(s.buf);
}

static int
on_record(void *ctx, const pt_record_t *rec)
{
    (void)ctx;
    pt_error_t err;
    check((rec->env == NULL) != (rec->error == NULL));
    if (rec->error != NULL) {
        check(rec->error->msg[0] == '$');
        return 0;
    }
    if (rec->env->body_case == PTIBUS__V1__ENVELOPE__BODY_REFERRAL) {
        check(validate_referral(rec->env->referral, &err) == 0);
        return 0;
    }
    check(rec->env->body_case == PTIBUS__V1__ENVELOPE__BODY_REFERRAL_STATUS &&
          validate_referral_status(rec->env->referral_status, &err) == 0);
    status_round_trip(rec->env);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pt_codec_outcome_t out;
    if (imilo_decode((const char *)data, size, on_record, NULL, &out) != 0)
        check(out.error.msg[0] != '\0');
    return 0;
}
