/* codec: size-limited protobuf-c pack/unpack and envelope type names. */
#include "codec.h"

#include "validate.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the wire scan, before protobuf-c allocates anything ---- */

/* Repeated fields without a limit in the validator's table (the admin protocol). */
#define SCAN_REPEATED_MAX 4096
/* The schema has no recursion; anything deeper than this is not ours. */
#define SCAN_DEPTH_MAX 16
/* Fields counted per message (the largest message of the contract has 26). */
#define SCAN_FIELDS_MAX 64

typedef struct scan {
    pt_error_t *err;
    bool lenient; /* unknown fields kept, no count limits: bytes from our own broker */
    char path[PT_ERROR_PATH_MAX];
    size_t len;
} scan_t;

typedef struct wire {
    const uint8_t *p, *end;
} wire_t;

static bool
wire_varint(wire_t *w, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && w->p < w->end; shift += 7) {
        uint8_t b = *w->p++;
        *v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

/* Skips the value of wire type `type`; sets *body to a length-delimited value. */
static bool
wire_skip(wire_t *w, unsigned type, wire_t *body)
{
    uint64_t v;
    size_t room = (size_t)(w->end - w->p);
    switch (type) {
    case 0:
        return wire_varint(w, &v);
    case 1:
    case 5:
        v = type == 1 ? 8 : 4;
        break;
    case 2:
        if (!wire_varint(w, &v))
            return false;
        room = (size_t)(w->end - w->p);
        break;
    default:
        return false; /* groups and reserved wire types: protobuf-c refuses them too */
    }
    if (v > room)
        return false;
    body->p = w->p;
    body->end = w->p + v;
    w->p += v;
    return true;
}

static size_t
scan_push(scan_t *s, const char *name, size_t index, bool indexed)
{
    size_t old = s->len;
    int n = indexed ? snprintf(s->path + s->len, sizeof s->path - s->len, "%s%s[%zu]",
                               s->len ? "." : "", name, index)
                    : snprintf(s->path + s->len, sizeof s->path - s->len, "%s%s", s->len ? "." : "",
                               name);
    if (n > 0)
        s->len = (size_t)n >= sizeof s->path - s->len ? sizeof s->path - 1 : s->len + (size_t)n;
    return old;
}

static void
scan_pop(scan_t *s, size_t old)
{
    s->len = old;
    s->path[old] = '\0';
}

/* Elements in a packed repeated scalar: its varints, or its fixed-size values. */
static size_t
packed_count(const ProtobufCFieldDescriptor *f, const wire_t *body)
{
    size_t len = (size_t)(body->end - body->p), n = 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        return len / 4;
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return len / 8;
    default:
        for (const uint8_t *p = body->p; p < body->end; p++)
            n += !(*p & 0x80);
        return n;
    }
}

static int
scan_unknown(scan_t *s, const ProtobufCMessageDescriptor *d, uint64_t number)
{
    if (number == 0)
        return pt_error_set(s->err, PT_EMALFORMED, s->len ? s->path : d->name,
                            "field number 0 is not allowed");
    char field[32];
    snprintf(field, sizeof field, "#%llu", (unsigned long long)number);
    scan_push(s, field, 0, false);
    return pt_error_set(s->err, PT_EINVALID, s->path,
                        "unknown field number %llu of %s: fields outside the contract are "
                        "refused",
                        (unsigned long long)number, d->name);
}

/* Counts one occurrence (n elements) of field f against its limit: a singular field
 * appears at most once (so that protobuf-c never merges two of them), a repeated one
 * has at most the validator's count. */
static int
scan_count(scan_t *s, const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f,
           uint32_t *seen, size_t n)
{
    uint32_t max = 1;
    if (s->lenient)
        return 0;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        max = validate_max_count(d, f);
        max = max ? max : SCAN_REPEATED_MAX;
    }
    if (n > max - *seen) {
        scan_push(s, f->name, 0, false);
        if (max == 1)
            return pt_error_set(s->err, PT_EINVALID, s->path, "appears more than once (field %u)",
                                (unsigned)f->id);
        return pt_error_set(s->err, PT_EINVALID, s->path,
                            "has more than %u elements (field %u), maximum %u", (unsigned)max,
                            (unsigned)f->id, (unsigned)max);
    }
    *seen += (uint32_t)n;
    return 0;
}

static int scan_message(scan_t *s, const ProtobufCMessageDescriptor *d, wire_t w, int depth);

/* One field of message d: counted, and scanned in turn when it is a message. */
static int
scan_field(scan_t *s, const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f,
           unsigned type, const wire_t *body, uint32_t *seen, int depth)
{
    bool packed = type == 2 && f->label == PROTOBUF_C_LABEL_REPEATED &&
                  f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_BYTES &&
                  f->type != PROTOBUF_C_TYPE_MESSAGE;
    size_t index = *seen;
    int rc = scan_count(s, d, f, seen, packed ? packed_count(f, body) : 1);
    if (rc != 0 || type != 2 || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return rc;
    size_t old = scan_push(s, f->name, index, f->label == PROTOBUF_C_LABEL_REPEATED);
    rc = scan_message(s, f->descriptor, *body, depth + 1);
    if (rc == 0)
        scan_pop(s, old);
    return rc;
}

static int
scan_message(scan_t *s, const ProtobufCMessageDescriptor *d, wire_t w, int depth)
{
    uint32_t seen[SCAN_FIELDS_MAX] = {0};
    if (depth > SCAN_DEPTH_MAX)
        return pt_error_set(s->err, PT_EMALFORMED, d->name, "nested too deeply");
    if (d->n_fields > SCAN_FIELDS_MAX) /* a schema change outgrew the scan: say so */
        return pt_error_set(s->err, PT_EINTERNAL, d->name, "has more fields than the scan counts");
    while (w.p < w.end) {
        uint64_t tag;
        wire_t body = {NULL, NULL};
        if (!wire_varint(&w, &tag) || !wire_skip(&w, (unsigned)(tag & 7), &body))
            return pt_error_set(s->err, PT_EMALFORMED, d->name,
                                "is not a valid protobuf encoding (truncated or invalid tag)");
        uint64_t number = tag >> 3;
        const ProtobufCFieldDescriptor *f =
            number && number <= UINT32_MAX
                ? protobuf_c_message_descriptor_get_field(d, (unsigned)number)
                : NULL;
        if (f == NULL) {
            if (number == 0 || !s->lenient)
                return scan_unknown(s, d, number);
            continue;
        }
        int rc = scan_field(s, d, f, (unsigned)(tag & 7), &body, &seen[f - d->fields], depth);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Refuses, before protobuf-c unpacks anything, what it would accept but the contract
 * does not: fields unknown to the schema (unless allowed) and field number 0, a
 * singular field repeated, a repeated field with more elements than validation
 * accepts. protobuf-c then allocates at most what validation will look at. */
static int
codec_scan(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len, bool lenient,
           pt_error_t *err)
{
    scan_t s = {.err = err, .lenient = lenient};
    wire_t w = {buf, buf + len};
    return scan_message(&s, desc, w, 0);
}

/* A field that the scan let through but protobuf-c kept as unknown (belt and braces:
 * the scan refuses every one of them first), at any depth. */
static bool
has_unknown(const ProtobufCMessage *m, int depth)
{
    if (m == NULL || depth > SCAN_DEPTH_MAX)
        return false;
    if (m->n_unknown_fields > 0)
        return true;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)m;
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        /* A oneof member's storage is shared: only the active case holds a message. */
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(base + f->quantifier_offset) != f->id)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            ProtobufCMessage *const *arr = *(ProtobufCMessage *const *const *)(base + f->offset);
            for (size_t k = 0; k < n; k++)
                if (has_unknown(arr[k], depth + 1))
                    return true;
        } else if (has_unknown(*(ProtobufCMessage *const *)(base + f->offset), depth + 1)) {
            return true;
        }
    }
    return false;
}

static int
unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len, size_t max,
       bool lenient, ProtobufCMessage **out, pt_error_t *err)
{
    *out = NULL;
    if (len > max)
        return pt_error_set(err, PT_ETOOLARGE, desc->name, "%zu bytes is over the limit of %zu",
                            len, max);
    int rc = codec_scan(desc, buf, len, lenient, err);
    if (rc != 0)
        return rc;
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, buf);
    if (m == NULL)
        return pt_error_set(err, PT_EMALFORMED, desc->name,
                            "%zu bytes are not a valid protobuf encoding of this message", len);
    if (!lenient && has_unknown(m, 0)) {
        protobuf_c_message_free_unpacked(m, NULL);
        return pt_error_set(err, PT_EINVALID, desc->name, "holds a field outside the contract");
    }
    *out = m;
    return 0;
}

int
codec_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len, size_t max,
             ProtobufCMessage **out, pt_error_t *err)
{
    return unpack(desc, buf, len, max, false, out, err);
}

int
codec_unpack_lenient(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                     size_t max, ProtobufCMessage **out, pt_error_t *err)
{
    return unpack(desc, buf, len, max, true, out, err);
}

int
codec_pack(const ProtobufCMessage *msg, size_t max, uint8_t **out, size_t *len, pt_error_t *err)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    *out = NULL;
    *len = 0;
    if (n > max)
        return pt_error_set(err, PT_ETOOLARGE, msg->descriptor->name,
                            "packed size %zu is over the limit of %zu", n, max);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL)
        return pt_error_set(err, -12, msg->descriptor->name, "out of memory");
    protobuf_c_message_pack(msg, buf);
    *out = buf;
    *len = n;
    return 0;
}

void
codec_free(ProtobufCMessage **msg)
{
    if (msg == NULL || *msg == NULL)
        return;
    protobuf_c_message_free_unpacked(*msg, NULL);
    *msg = NULL;
}

/* The body oneof's cases are the envelope fields numbered 10 and up. */
static const ProtobufCFieldDescriptor *
body_field_by_number(uint32_t number)
{
    return protobuf_c_message_descriptor_get_field(&ptibus__v1__envelope__descriptor, number);
}

const char *
codec_envelope_type(const Ptibus__V1__Envelope *env)
{
    if (env == NULL || env->body_case == PTIBUS__V1__ENVELOPE__BODY__NOT_SET)
        return NULL;
    const ProtobufCFieldDescriptor *f = body_field_by_number((uint32_t)env->body_case);
    return f ? f->name : NULL;
}

static size_t
body_first_index(void)
{
    const ProtobufCMessageDescriptor *d = &ptibus__v1__envelope__descriptor;
    for (unsigned i = 0; i < d->n_fields; i++)
        if (d->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            return i;
    return d->n_fields;
}

size_t
codec_envelope_type_count(void)
{
    const ProtobufCMessageDescriptor *d = &ptibus__v1__envelope__descriptor;
    size_t n = 0;
    for (unsigned i = 0; i < d->n_fields; i++)
        if (d->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            n++;
    return n;
}

const char *
codec_envelope_type_at(size_t i)
{
    const ProtobufCMessageDescriptor *d = &ptibus__v1__envelope__descriptor;
    size_t first = body_first_index();
    if (first + i >= d->n_fields)
        return NULL;
    return d->fields[first + i].name;
}

Ptibus__V1__Envelope__BodyCase
codec_envelope_case(const char *type)
{
    if (type == NULL)
        return PTIBUS__V1__ENVELOPE__BODY__NOT_SET;
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(&ptibus__v1__envelope__descriptor, type);
    if (f == NULL || !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
        return PTIBUS__V1__ENVELOPE__BODY__NOT_SET;
    return (Ptibus__V1__Envelope__BodyCase)f->id;
}

void
codec_envelope_type_list(char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < codec_envelope_type_count() && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%s", i ? ", " : "",
                                 codec_envelope_type_at(i));
}

const char *
codec_nack_name(int code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&ptibus__v1__nack_code__descriptor, code);
    if (v == NULL)
        return "UNKNOWN";
    return strncmp(v->name, "NACK_CODE_", 10) == 0 ? v->name + 10 : v->name;
}

/* ---- the territory of an envelope's bytes ---- */

static bool
varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

/* Skips one field of wire type wt; false when it does not fit or wt is unknown. */
static bool
skip_field(const uint8_t **p, const uint8_t *end, unsigned wt)
{
    uint64_t len;
    if (wt == 0)
        return varint(p, end, &len);
    if (wt == 1 || wt == 5) {
        size_t n = wt == 1 ? 8 : 4;
        if ((size_t)(end - *p) < n)
            return false;
        *p += n;
        return true;
    }
    if (wt == 2 && varint(p, end, &len) && len <= (uint64_t)(end - *p)) {
        *p += len;
        return true;
    }
    return false;
}

void
codec_envelope_territory(const uint8_t *bytes, size_t len, char *out, size_t cap)
{
    const uint8_t *p = bytes, *end = bytes ? bytes + len : NULL;
    out[0] = '\0';
    while (p && p < end) {
        uint64_t key, n;
        if (!varint(&p, end, &key) || (key >> 3) > 6)
            return; /* the header's fields come first, in order: no territory */
        if ((key >> 3) == 6 && (key & 7) == 2) {
            if (varint(&p, end, &n) && n <= (uint64_t)(end - p))
                snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), (const char *)p);
            return;
        }
        if (!skip_field(&p, end, key & 7))
            return;
    }
}

void
codec_refusal_tag(const uint8_t *bytes, size_t len, char *reason, size_t cap)
{
    char terr[PT_TERRITORY_MAX + 1];
    codec_envelope_territory(bytes, len, terr, sizeof terr);
    size_t n = strlen(terr), have = strlen(reason);
    if (n == 0 || strspn(terr, CODEC_TERRITORY_CHARS) != n ||
        have + strlen(CODEC_TERRITORY_TAG) + n + 2 > cap)
        return;
    snprintf(reason + have, cap - have, "%s%s]", CODEC_TERRITORY_TAG, terr);
}

void
codec_refusal_territory(const char *reason, char *out, size_t cap)
{
    const char *tag = NULL;
    out[0] = '\0';
    for (const char *p = strstr(reason, CODEC_TERRITORY_TAG); p;
         p = strstr(p + 1, CODEC_TERRITORY_TAG))
        tag = p; /* the last: the broker appends it after the reason */
    if (tag == NULL)
        return;
    tag += strlen(CODEC_TERRITORY_TAG);
    size_t n = strspn(tag, CODEC_TERRITORY_CHARS);
    if (n > 0 && tag[n] == ']' && tag[n + 1] == '\0')
        snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), tag);
}
