/* schemagen: writes one JSON Schema (draft 2020-12) per message type of the contract,
 * OUTDIR/<type>.schema.json, for the Envelope that carries that type, in the proto3 JSON
 * form partners send (docs/json-mapping.md). Field names, types and enum values come
 * from the protobuf-c descriptors of proto/ptibus/v1; required-or-not, lengths, formats
 * and ranges from libptibus/validate.c's rule table (validate_field_info), so the
 * schemas are rebuilt with the contract and cannot drift from it. Run at build time:
 *   ptibus-schemagen OUTDIR TYPE...
 * where TYPE... are the message types the build expects; a type of the contract missing
 * from the list, or a listed type the contract lacks, fails the build. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pjson.h"
#include "validate.h"

#define TIMESTAMP_NAME "google.protobuf.Timestamp"
#define NAME_MAX_LEN 128

/* Single-line text: no control character; tabs, or tabs and line breaks, where allowed. */
#define TEXT_SINGLE "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
#define TEXT_TABS "^[^\\u0000-\\u0008\\u000a-\\u001f\\u007f-\\u009f]*$"
#define TEXT_MULTI "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"
#define TIMESTAMP_PATTERN                                                                          \
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{" \
    "2})$"

static json_t *message_ref(json_t *defs, const ProtobufCMessageDescriptor *d);

static json_t *
jname(const char *proto_name)
{
    char buf[NAME_MAX_LEN];
    pjson_path_from_proto(proto_name, buf, sizeof buf);
    return json_string(buf);
}

static json_t *
enum_schema(const ProtobufCEnumDescriptor *ed, bool required)
{
    json_t *names = json_array();
    for (unsigned i = 0; i < ed->n_values; i++)
        if (!required || ed->values[i].value != 0)
            json_array_append_new(names, json_string(ed->values[i].name));
    return json_pack("{s:s, s:o, s:s+}", "type", "string", "enum", names, "description",
                     ed->short_name,
                     required ? ""
                              : " (the _UNSPECIFIED value, or no value, "
                                "means unset)");
}

static json_t *
string_schema(const validate_field_info_t *in, bool element)
{
    json_t *s = json_pack("{s:s, s:I}", "type", "string", "maxLength", (json_int_t)in->max_length);
    if (in->required || element)
        json_object_set_new(s, "minLength", json_integer(in->exact_length ? in->max_length : 1));
    const char *text = in->multiline ? TEXT_MULTI : in->tabs ? TEXT_TABS : TEXT_SINGLE;
    json_object_set_new(s, "pattern", json_string(in->pattern ? in->pattern : text));
    if (in->format != NULL)
        json_object_set_new(s, "description", json_string(in->format));
    if (in->format != NULL && strncmp(in->format, "date", 4) == 0)
        json_object_set_new(s, "format", json_string("date"));
    if (in->multiline)
        json_object_set_new(s, "description", json_string("multi-line text"));
    return s;
}

static json_t *
integer_schema(const ProtobufCFieldDescriptor *f, const validate_field_info_t *in)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_pack("{s:s, s:I, s:I}", "type", "integer", "minimum",
                         (json_int_t)(in->has_range ? in->min : 0), "maximum",
                         (json_int_t)(in->has_range ? in->max : UINT32_MAX));
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_pack("{s:s, s:I, s:I}", "type", "integer", "minimum", (json_int_t)INT32_MIN,
                         "maximum", (json_int_t)INT32_MAX);
    default: /* 64 bits: a decimal string (what ptibus writes) or a number */
        return json_pack("{s:[s,s], s:s, s:s}", "type", "string", "integer", "pattern",
                         f->type == PROTOBUF_C_TYPE_UINT64 || f->type == PROTOBUF_C_TYPE_FIXED64
                             ? "^[0-9]+$"
                             : "^-?[0-9]+$",
                         "description", "64-bit integer: a decimal string, or a number");
    }
}

/* The schema of one value of field f (an element, for a list). */
static json_t *
value_schema(json_t *defs, const ProtobufCMessageDescriptor *msg, const ProtobufCFieldDescriptor *f,
             bool element)
{
    validate_field_info_t in;
    validate_field_info(msg, f, &in);
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        return string_schema(&in, element);
    case PROTOBUF_C_TYPE_ENUM:
        return enum_schema(f->descriptor, in.required || element);
    case PROTOBUF_C_TYPE_BOOL:
        return json_pack("{s:s}", "type", "boolean");
    case PROTOBUF_C_TYPE_BYTES:
        return json_pack("{s:s, s:s}", "type", "string", "contentEncoding", "base64");
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        return json_pack("{s:[s,s]}", "type", "number", "string");
    case PROTOBUF_C_TYPE_MESSAGE:
        return message_ref(defs, f->descriptor);
    default:
        return integer_schema(f, &in);
    }
}

static json_t *
field_schema(json_t *defs, const ProtobufCMessageDescriptor *msg, const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED)
        return value_schema(defs, msg, f, false);
    validate_field_info_t in;
    validate_field_info(msg, f, &in);
    json_t *a = json_pack("{s:s, s:o, s:I}", "type", "array", "items",
                          value_schema(defs, msg, f, true), "maxItems", (json_int_t)in.max_count);
    if (in.required)
        json_object_set_new(a, "minItems", json_integer(1));
    return a;
}

/* Adds field f to an object schema's properties (and required list). */
static void
add_property(json_t *defs, json_t *props, json_t *req, const ProtobufCMessageDescriptor *msg,
             const ProtobufCFieldDescriptor *f)
{
    validate_field_info_t in;
    validate_field_info(msg, f, &in);
    json_t *name = jname(f->name);
    json_object_set_new(props, json_string_value(name), field_schema(defs, msg, f));
    if (in.required)
        json_array_append(req, name);
    json_decref(name);
}

static json_t *
object_schema(const char *title)
{
    return json_pack("{s:s, s:s, s:{}, s:[], s:b}", "title", title, "type", "object", "properties",
                     "required", "additionalProperties", 0);
}

/* {"$ref": "#/$defs/<full name>"}, defining it in defs on first use. */
static json_t *
message_ref(json_t *defs, const ProtobufCMessageDescriptor *d)
{
    if (strcmp(d->name, TIMESTAMP_NAME) == 0)
        return json_pack("{s:s, s:s, s:s}", "type", "string", "format", "date-time", "pattern",
                         TIMESTAMP_PATTERN);
    if (json_object_get(defs, d->name) == NULL) {
        json_t *o = object_schema(d->name);
        json_object_set_new(defs, d->name, o); /* before the fields: no recursion loops */
        for (unsigned i = 0; i < d->n_fields; i++)
            add_property(defs, json_object_get(o, "properties"), json_object_get(o, "required"), d,
                         &d->fields[i]);
    }
    char ref[NAME_MAX_LEN + 16];
    snprintf(ref, sizeof ref, "#/$defs/%s", d->name);
    return json_pack("{s:s}", "$ref", ref);
}

/* The schema of an Envelope whose body is field `body` (a member of its oneof). */
static json_t *
envelope_schema(const ProtobufCFieldDescriptor *body)
{
    const ProtobufCMessageDescriptor *env = &ptibus__v1__envelope__descriptor;
    char title[NAME_MAX_LEN * 2];
    snprintf(title, sizeof title, "ptibus.v1.Envelope carrying a %s", body->name);
    json_t *root = json_pack("{s:s}", "$schema", "https://json-schema.org/draft/2020-12/schema");
    json_t *body_obj = object_schema(title), *defs = json_object();
    json_object_update(root, body_obj);
    json_decref(body_obj);
    json_t *props = json_object_get(root, "properties"), *req = json_object_get(root, "required");
    for (unsigned i = 0; i < env->n_fields; i++)
        if (!(env->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            add_property(defs, props, req, env, &env->fields[i]);
    json_t *name = jname(body->name);
    json_object_set_new(props, json_string_value(name), message_ref(defs, body->descriptor));
    json_array_append_new(req, name);
    json_object_set_new(root, "$comment",
                        json_string("Generated at build time by tools/schemagen from "
                                    "proto/ptibus/v1 and libptibus/validate.c's rule table; do "
                                    "not edit. The cross-field rules of docs/validation.md "
                                    "(a field required when another has some value, date order, "
                                    "NIR key, SIRET check digit) are checked by the adapter and "
                                    "the broker, not by this schema."));
    json_object_set_new(root, "$defs", defs);
    return root;
}

/* Writes doc to dir/type.schema.json through a temporary file and a rename. */
static int
write_schema(const char *dir, const char *type, json_t *doc)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s.schema.json", dir, type);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    char *text = json_dumps(doc, JSON_INDENT(2));
    FILE *f = text ? fopen(tmp, "w") : NULL;
    int rc = f && fprintf(f, "%s\n", text) > 0 ? 0 : -1;
    if (f && fclose(f) != 0)
        rc = -1;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -1;
    if (rc != 0)
        fprintf(stderr, "ptibus-schemagen: %s: %s\n", path, strerror(errno));
    free(text);
    return rc;
}

static bool
listed(const char *type, int n, char **types)
{
    for (int i = 0; i < n; i++)
        if (strcmp(types[i], type) == 0)
            return true;
    return false;
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: ptibus-schemagen OUTDIR TYPE...\n");
        return 2;
    }
    const ProtobufCMessageDescriptor *env = &ptibus__v1__envelope__descriptor;
    int rc = 0, found = 0;
    for (unsigned i = 0; i < env->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &env->fields[i];
        if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            continue;
        if (!listed(f->name, argc - 2, argv + 2)) {
            fprintf(stderr, "ptibus-schemagen: message type %s is not in the build's list\n",
                    f->name);
            rc = 1;
            continue;
        }
        found++;
        json_t *doc = envelope_schema(f);
        if (doc == NULL || write_schema(argv[1], f->name, doc) != 0)
            rc = 1;
        json_decref(doc);
    }
    if (found != argc - 2) {
        fprintf(stderr, "ptibus-schemagen: the build lists a type the contract does not have\n");
        rc = 1;
    }
    return rc;
}
