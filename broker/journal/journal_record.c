/* journal_record: encode, decode and chain-hash journal records and checkpoints. */
#include "journal_record.h"

#include "bytes.h"

#include <string.h>

#include <sodium.h>

/* Header flags. Unknown bits make a record undecodable (a newer writer). */
enum {
    JREC_F_PAYLOAD = 1u << 0, /* payload bytes stored (not for REJECTED) */
    JREC_F_REASON = 1u << 1,  /* reason present (NULL otherwise) */
    JREC_F_KNOWN = JREC_F_PAYLOAD | JREC_F_REASON,
};

/* A string field is u32 length, the bytes, then a NUL so views can borrow it. */
#define JREC_STR_OVERHEAD 5u
#define JREC_FIELD_MAX (UINT32_MAX - 64u)

static const char *
str_or_empty(const char *s)
{
    return s ? s : "";
}

static bool
stores_payload(const journal_record_t *rec)
{
    return rec->kind != PT_REC_REJECTED && rec->payload != NULL;
}

static int
add_str(size_t *total, const char *s, const char *field, pt_error_t *err)
{
    size_t n = strlen(str_or_empty(s));
    if (n > JREC_FIELD_MAX)
        return pt_error_set(err, PT_ETOOLARGE, field, "%zu bytes is too long", n);
    *total += JREC_STR_OVERHEAD + n;
    return 0;
}

static int
add_recipients(size_t *total, const char *const *rcpt, pt_error_t *err)
{
    size_t i = 0;
    for (; rcpt != NULL && rcpt[i] != NULL; i++) {
        if (i == PT_RECIPIENTS_MAX)
            return pt_error_set(err, PT_ETOOLARGE, "recipients", "more than %d", PT_RECIPIENTS_MAX);
        int rc = add_str(total, rcpt[i], "recipients", err);
        if (rc != 0)
            return rc;
    }
    *total += 1;
    return 0;
}

int
journal_record_size(const journal_record_t *rec, unsigned format, size_t *len, pt_error_t *err)
{
    if (format != PT_JREC_FORMAT_V1 && format != PT_JOURNAL_FORMAT)
        return pt_error_set(err, PT_EVERSION, "format", "cannot write record format %u", format);
    if (strcmp(journal_kind_name(rec->kind), "UNKNOWN") == 0)
        return pt_error_set(err, PT_EINVALID, "kind", "unknown record kind %d", (int)rec->kind);
    const char *const strs[] = {rec->partner, rec->msg_type, rec->message_id, rec->correlation_id,
                                rec->reason};
    const char *const names[] = {"partner", "msg_type", "message_id", "correlation_id", "reason"};
    /* Format 2 adds the payload state byte before the payload. */
    size_t total = PT_JREC_HEADER_LEN + PT_JREC_TRAILER_LEN + 4 + (format >= 2 ? 1 : 0);
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) {
        int rc = add_str(&total, strs[i], names[i], err);
        if (rc != 0)
            return rc;
    }
    int rc = add_recipients(&total, rec->recipients, err);
    if (rc != 0)
        return rc;
    if (stores_payload(rec)) {
        if (rec->payload_len > JREC_FIELD_MAX - total)
            return pt_error_set(err, PT_ETOOLARGE, "payload", "%zu bytes is too long",
                                rec->payload_len);
        total += rec->payload_len;
    }
    *len = total;
    return 0;
}

/* ---- encoding: a cursor over a buffer already sized by journal_record_size ---- */

static uint8_t *
put_le(uint8_t *p, uint64_t v, int n)
{
    bytes_le_put(p, v, n);
    return p + n;
}

static uint8_t *
put_bytes(uint8_t *p, const void *data, size_t n)
{
    p = put_le(p, n, 4);
    if (n > 0)
        memcpy(p, data, n);
    return p + n;
}

static uint8_t *
put_str(uint8_t *p, const char *s)
{
    s = str_or_empty(s);
    p = put_bytes(p, s, strlen(s));
    *p = '\0';
    return p + 1;
}

static uint8_t *
put_recipients(uint8_t *p, const char *const *rcpt)
{
    uint8_t *count = p++;
    size_t n = 0;
    for (; rcpt != NULL && rcpt[n] != NULL; n++)
        p = put_str(p, rcpt[n]);
    *count = (uint8_t)n;
    return p;
}

static uint8_t *
put_payload_hash(uint8_t *p, const journal_record_t *rec)
{
    if (rec->payload != NULL && rec->payload_hash != NULL)
        memcpy(p, rec->payload_hash, PT_JOURNAL_HASH_LEN);
    else if (rec->payload != NULL)
        crypto_generichash(p, PT_JOURNAL_HASH_LEN, rec->payload, rec->payload_len, NULL, 0);
    else
        memset(p, 0, PT_JOURNAL_HASH_LEN);
    return p + PT_JOURNAL_HASH_LEN;
}

void
journal_record_encode(const journal_record_t *rec, unsigned format, uint64_t seq, int64_t time_ms,
                      const uint8_t prev[PT_JOURNAL_HASH_LEN], uint8_t *out, size_t len)
{
    unsigned flags = (stores_payload(rec) ? JREC_F_PAYLOAD : 0) | (rec->reason ? JREC_F_REASON : 0);
    uint8_t *p = put_le(out, format, 2);
    p = put_le(p, (uint64_t)rec->kind, 1);
    p = put_le(p, flags, 1);
    p = put_le(p, seq, 8);
    p = put_le(p, (uint64_t)time_ms, 8);
    p = put_str(p, rec->partner);
    p = put_str(p, rec->msg_type);
    p = put_str(p, rec->message_id);
    p = put_str(p, rec->correlation_id);
    p = put_str(p, rec->reason);
    p = put_recipients(p, rec->recipients);
    if (format >= 2)
        p = put_le(p, (flags & JREC_F_PAYLOAD) ? PT_PAYLOAD_STORED : PT_PAYLOAD_NONE, 1);
    p = put_bytes(p, rec->payload, (flags & JREC_F_PAYLOAD) ? rec->payload_len : 0);
    p = put_le(p, rec->ref_seq, 8);
    p = put_le(p, rec->attempt, 4);
    p = put_payload_hash(p, rec);
    journal_record_chain(prev, out, len, p);
}

/* Skips a length-prefixed field (and `extra` bytes after it, the NUL of a string). */
static bool
skip_field(const uint8_t *buf, size_t len, size_t *at, size_t extra)
{
    if (len - *at < 4)
        return false;
    uint64_t n = bytes_le_get(buf + *at, 4);
    if (n > len - *at - 4 - extra)
        return false;
    *at += 4 + (size_t)n + extra;
    return true;
}

/* Format 2: the payload section (state byte, u32 length, bytes) of a record, found by
 * skipping the header and the strings; false when the record is too malformed to
 * have one (its chain hash then cannot match, and the decoder names the fault). */
static bool
payload_span(const uint8_t *buf, size_t len, size_t *off, size_t *end)
{
    size_t at = PT_JREC_HEADER_LEN;
    if (len <= at)
        return false;
    for (int i = 0; i < 5; i++)
        if (!skip_field(buf, len, &at, 1))
            return false;
    if (at >= len)
        return false;
    unsigned n = buf[at++];
    for (unsigned i = 0; i < n; i++)
        if (!skip_field(buf, len, &at, 1))
            return false;
    *off = at;
    if (at >= len)
        return false;
    at++;
    if (!skip_field(buf, len, &at, 0))
        return false;
    *end = at;
    return len - at >= PT_JREC_TRAILER_LEN;
}

/* Format 1: BLAKE2b(prev || every byte before the chain hash). Format 2: the same
 * without the payload section, so that the payload can be removed and the record still
 * chain: BLAKE2b(prev || header || ref_seq, attempt, payload hash). */
void
journal_record_chain(const uint8_t prev[PT_JOURNAL_HASH_LEN], const uint8_t *buf, size_t len,
                     uint8_t out[PT_JOURNAL_HASH_LEN])
{
    crypto_generichash_state st;
    size_t off = len - PT_JOURNAL_HASH_LEN, end = off;
    if (len >= 2 && bytes_le_get(buf, 2) >= 2 && !payload_span(buf, len, &off, &end))
        off = end = len - PT_JOURNAL_HASH_LEN;
    crypto_generichash_init(&st, NULL, 0, PT_JOURNAL_HASH_LEN);
    crypto_generichash_update(&st, prev, PT_JOURNAL_HASH_LEN);
    crypto_generichash_update(&st, buf, off);
    crypto_generichash_update(&st, buf + end, len - PT_JOURNAL_HASH_LEN - end);
    crypto_generichash_final(&st, out, PT_JOURNAL_HASH_LEN);
}

const uint8_t *
journal_record_stored_hash(const uint8_t *buf, size_t len)
{
    return len >= PT_JOURNAL_HASH_LEN ? buf + len - PT_JOURNAL_HASH_LEN : NULL;
}

/* ---- decoding: every read is checked against the remaining length ---- */

typedef struct rd {
    const uint8_t *p;
    size_t left;
    bool bad;
} rd_t;

static uint64_t
get_le(rd_t *r, int n)
{
    uint64_t v = 0;
    if (r->bad || r->left < (size_t)n) {
        r->bad = true;
        return 0;
    }
    v = bytes_le_get(r->p, n);
    r->p += n;
    r->left -= (size_t)n;
    return v;
}

static const uint8_t *
get_bytes(rd_t *r, size_t *n, size_t extra)
{
    *n = (size_t)get_le(r, 4);
    if (r->bad || r->left < extra || *n > r->left - extra) {
        r->bad = true;
        *n = 0;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += *n + extra;
    r->left -= *n + extra;
    return p;
}

static const char *
get_str(rd_t *r)
{
    size_t n;
    const uint8_t *p = get_bytes(r, &n, 1);
    if (p == NULL || p[n] != '\0') {
        r->bad = true;
        return "";
    }
    return (const char *)p;
}

static void
get_hash(rd_t *r, uint8_t out[PT_JOURNAL_HASH_LEN])
{
    if (r->bad || r->left < PT_JOURNAL_HASH_LEN) {
        r->bad = true;
        return;
    }
    memcpy(out, r->p, PT_JOURNAL_HASH_LEN);
    r->p += PT_JOURNAL_HASH_LEN;
    r->left -= PT_JOURNAL_HASH_LEN;
}

static void
decode_strings(rd_t *r, unsigned flags, journal_view_t *v)
{
    v->partner = get_str(r);
    v->msg_type = get_str(r);
    v->message_id = get_str(r);
    v->correlation_id = get_str(r);
    v->reason = get_str(r);
    if (!(flags & JREC_F_REASON))
        v->reason = NULL;
    v->n_recipients = (size_t)get_le(r, 1);
    if (v->n_recipients > PT_RECIPIENTS_MAX) {
        r->bad = true;
        v->n_recipients = 0;
    }
    for (size_t i = 0; i < v->n_recipients; i++)
        v->recipients[i] = get_str(r);
}

/* The payload: format 1 has the bytes only; format 2 a state byte first, so that a
 * removed payload (expired, erased) says so. flags bit 0 (chained) says whether one was
 * stored when the record was written. */
static void
decode_payload(rd_t *r, unsigned format, unsigned flags, journal_view_t *v)
{
    bool written = flags & JREC_F_PAYLOAD;
    unsigned state = written ? PT_PAYLOAD_STORED : PT_PAYLOAD_NONE;
    if (format >= 2) {
        state = (unsigned)get_le(r, 1);
        if (written != (state != PT_PAYLOAD_NONE) || state > PT_PAYLOAD_ERASED)
            r->bad = true;
    }
    v->payload_state = (journal_payload_t)state;
    v->payload = get_bytes(r, &v->payload_len, 0);
    if (state != PT_PAYLOAD_STORED) {
        v->payload = NULL;
        if (v->payload_len != 0)
            r->bad = true;
    }
}

/* The body after the format field: format 1 and 2 differ only in the payload. */
static int
decode_body(rd_t *r, unsigned format, uint64_t seq, journal_view_t *v, pt_error_t *err)
{
    v->kind = (journal_kind_t)get_le(r, 1);
    unsigned flags = (unsigned)get_le(r, 1);
    v->seq = get_le(r, 8);
    v->time_ms = (int64_t)get_le(r, 8);
    if (flags & ~(unsigned)JREC_F_KNOWN)
        return pt_error_set(err, PT_ECORRUPT, NULL, "record %llu: unknown flags 0x%x",
                            (unsigned long long)seq, flags);
    decode_strings(r, flags, v);
    decode_payload(r, format, flags, v);
    v->ref_seq = get_le(r, 8);
    v->attempt = (uint32_t)get_le(r, 4);
    get_hash(r, v->payload_hash);
    get_hash(r, v->hash);
    if (r->bad || r->left != 0)
        return pt_error_set(err, PT_ECORRUPT, NULL, "record %llu: truncated or malformed fields",
                            (unsigned long long)seq);
    if (strcmp(journal_kind_name(v->kind), "UNKNOWN") == 0)
        return pt_error_set(err, PT_ECORRUPT, NULL, "record %llu: unknown kind %d",
                            (unsigned long long)seq, (int)v->kind);
    return 0;
}

static int
decode_v1(rd_t *r, uint64_t seq, journal_view_t *v, pt_error_t *err)
{
    return decode_body(r, PT_JREC_FORMAT_V1, seq, v, err);
}

static int
decode_v2(rd_t *r, uint64_t seq, journal_view_t *v, pt_error_t *err)
{
    return decode_body(r, 2, seq, v, err);
}

typedef int (*record_decoder_fn)(rd_t *r, uint64_t seq, journal_view_t *v, pt_error_t *err);

/* Old formats keep their decoder here when the layout changes (STYLE 11). */
static const record_decoder_fn record_decoders[] = {
    [1] = decode_v1,
    [2] = decode_v2,
};

int
journal_record_decode(const uint8_t *buf, size_t len, uint64_t seq, journal_view_t *view,
                      pt_error_t *err)
{
    rd_t r = {.p = buf, .left = len, .bad = false};
    view->format = (uint32_t)get_le(&r, 2);
    if (r.bad)
        return pt_error_set(err, PT_ECORRUPT, NULL, "record %llu: %zu bytes, too short",
                            (unsigned long long)seq, len);
    size_t n = sizeof record_decoders / sizeof *record_decoders;
    if (view->format >= n || record_decoders[view->format] == NULL)
        return pt_error_set(err, PT_EVERSION, NULL, "record %llu: unsupported format %u",
                            (unsigned long long)seq, (unsigned)view->format);
    return record_decoders[view->format](&r, seq, view, err);
}

/* ---- checkpoints ---- */

size_t
journal_checkpoint_message(const journal_checkpoint_rec_t *cp, uint8_t msg[PT_JCKP_MSG_LEN])
{
    bool v1 = cp->format == PT_JCKP_FORMAT_V1;
    memcpy(msg, v1 ? PT_JCKP_DOMAIN_V1 : PT_JCKP_DOMAIN, PT_JCKP_DOMAIN_LEN);
    uint8_t *p = put_le(msg + PT_JCKP_DOMAIN_LEN, cp->seq, 8);
    memcpy(p, cp->hash, PT_JOURNAL_HASH_LEN);
    p = put_le(p + PT_JOURNAL_HASH_LEN, (uint64_t)cp->time_ms, 8);
    if (v1)
        return PT_JCKP_MSG_LEN_V1;
    p = put_le(p, cp->prev_seq, 8);
    put_le(p, cp->number, 8);
    return PT_JCKP_MSG_LEN;
}

void
journal_checkpoint_encode(const journal_checkpoint_rec_t *cp, uint8_t out[PT_JCKP_LEN])
{
    uint8_t *p = put_le(out, PT_JCKP_FORMAT, 2);
    p = put_le(p, 0, 2);
    p = put_le(p, cp->seq, 8);
    memcpy(p, cp->hash, PT_JOURNAL_HASH_LEN);
    p = put_le(p + PT_JOURNAL_HASH_LEN, (uint64_t)cp->time_ms, 8);
    p = put_le(p, cp->prev_seq, 8);
    p = put_le(p, cp->number, 8);
    memcpy(p, cp->sig, PT_JCKP_SIG_LEN);
}

int
journal_checkpoint_decode(const uint8_t *buf, size_t len, journal_checkpoint_rec_t *cp,
                          pt_error_t *err)
{
    rd_t r = {.p = buf, .left = len, .bad = false};
    unsigned format = (unsigned)get_le(&r, 2);
    if (r.bad || (format != PT_JCKP_FORMAT && format != PT_JCKP_FORMAT_V1))
        return pt_error_set(err, PT_EVERSION, NULL, "checkpoint: unsupported format %u", format);
    size_t want = format == PT_JCKP_FORMAT ? PT_JCKP_LEN : PT_JCKP_LEN_V1;
    if (len != want)
        return pt_error_set(err, PT_ECORRUPT, NULL, "checkpoint: %zu bytes, format %u has %zu", len,
                            format, want);
    memset(cp, 0, sizeof *cp);
    cp->format = format;
    (void)get_le(&r, 2);
    cp->seq = get_le(&r, 8);
    get_hash(&r, cp->hash);
    cp->time_ms = (int64_t)get_le(&r, 8);
    if (format == PT_JCKP_FORMAT) {
        cp->prev_seq = get_le(&r, 8);
        cp->number = get_le(&r, 8);
    }
    memcpy(cp->sig, r.p, PT_JCKP_SIG_LEN);
    return 0;
}

/* ---- anchors: a checkpoint's layout under another format number and domain ---- */

size_t
journal_anchor_message(const journal_checkpoint_rec_t *a, uint8_t msg[PT_JCKP_MSG_LEN])
{
    journal_checkpoint_rec_t c = *a;
    c.format = PT_JCKP_FORMAT;
    size_t n = journal_checkpoint_message(&c, msg);
    /* Same length: the two domains are padded to PT_JCKP_DOMAIN_LEN with NULs. */
    memset(msg, 0, PT_JCKP_DOMAIN_LEN);
    memcpy(msg, PT_JANCHOR_DOMAIN, PT_JANCHOR_DOMAIN_LEN);
    return n;
}

void
journal_anchor_encode(const journal_checkpoint_rec_t *a, uint8_t out[PT_JCKP_LEN])
{
    journal_checkpoint_encode(a, out);
    bytes_le_put(out, PT_JANCHOR_FORMAT, 2);
}

int
journal_anchor_decode(const uint8_t *buf, size_t len, journal_checkpoint_rec_t *a, pt_error_t *err)
{
    uint8_t copy[PT_JCKP_LEN];
    if (len != PT_JCKP_LEN)
        return pt_error_set(err, PT_ECORRUPT, NULL, "anchor: %zu bytes, expected %d", len,
                            PT_JCKP_LEN);
    if (bytes_le_get(buf, 2) != PT_JANCHOR_FORMAT)
        return pt_error_set(err, PT_EVERSION, NULL, "anchor: unsupported format %u",
                            (unsigned)bytes_le_get(buf, 2));
    memcpy(copy, buf, len);
    bytes_le_put(copy, PT_JCKP_FORMAT, 2);
    int rc = journal_checkpoint_decode(copy, len, a, err);
    a->format = PT_JANCHOR_FORMAT;
    return rc;
}

/* ---- payload removal (format 2) ---- */

int
journal_record_strip(const uint8_t *buf, size_t len, journal_payload_t state, uint8_t *out,
                     size_t *out_len)
{
    size_t off, end;
    if (len < 2 || bytes_le_get(buf, 2) < 2)
        return PT_EVERSION;
    if (!payload_span(buf, len, &off, &end) || buf[off] != PT_PAYLOAD_STORED)
        return PT_EINVALID;
    memcpy(out, buf, off);
    out[off] = (uint8_t)state;
    bytes_le_put(out + off + 1, 0, 4);
    memcpy(out + off + 5, buf + end, len - end);
    *out_len = off + 5 + (len - end);
    return 0;
}
