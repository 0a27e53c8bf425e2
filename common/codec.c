/* codec: size-limited protobuf-c pack/unpack and envelope type names. */
#include "codec.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* protobuf-c accepts a field number 0 written on two bytes (keeping it as an unknown
 * field) although it cannot re-encode it: refuse such messages, at any depth. */
static bool
has_field_zero(const ProtobufCMessage *m, int depth)
{
    if (m == NULL || depth > 64)
        return false;
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
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
                if (has_field_zero(arr[k], depth + 1))
                    return true;
        } else if (has_field_zero(*(ProtobufCMessage *const *)(base + f->offset), depth + 1)) {
            return true;
        }
    }
    return false;
}

int
codec_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len, size_t max,
             ProtobufCMessage **out, pt_error_t *err)
{
    *out = NULL;
    if (len > max)
        return pt_error_set(err, PT_ETOOLARGE, desc->name, "%zu bytes is over the limit of %zu",
                            len, max);
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, buf);
    if (m == NULL)
        return pt_error_set(err, PT_EMALFORMED, desc->name,
                            "%zu bytes are not a valid protobuf encoding of this message", len);
    if (has_field_zero(m, 0)) {
        protobuf_c_message_free_unpacked(m, NULL);
        return pt_error_set(err, PT_EMALFORMED, desc->name, "field number 0 is not allowed");
    }
    *out = m;
    return 0;
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
