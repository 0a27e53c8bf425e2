/* pjson: proto3 canonical JSON <-> protobuf-c messages, generic over descriptors.
 *
 * Input messages are built exactly as protobuf-c's unpack lays them out (malloc'd
 * strings, bytes, repeated arrays and submessages; unset strings keep
 * protobuf_c_empty_string), so protobuf_c_message_free_unpacked() frees them, even
 * half-built ones: every pointer is stored only once what it points to is complete,
 * and a repeated field's count only covers finished elements. */
#include "pjson.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define MEMBER(type, msg, offset) (*(type *)((char *)(msg) + (offset)))
#define CMEMBER(type, msg, offset) (*(const type *)((const char *)(msg) + (offset)))

#define TIMESTAMP_NAME "google.protobuf.Timestamp"
/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the Timestamp's valid range. */
#define TS_MIN_SECONDS INT64_C(-62135596800)
#define TS_MAX_SECONDS INT64_C(253402300799)
#define JSON_NAME_MAX 256

/* Where we are in the document, for error messages, and how deep. */
typedef struct pj_ctx {
    char path[PT_ERROR_PATH_MAX];
    size_t len;
    int depth;
    pt_error_t *err;
} pj_ctx_t;

typedef int (*pj_from_fn)(pj_ctx_t *c, const ProtobufCFieldDescriptor *f, const json_t *v,
                          void *dst);
typedef int (*pj_to_fn)(pj_ctx_t *c, const ProtobufCFieldDescriptor *f, const void *src,
                        json_t **out);

/* What the mapping needs to know about each protobuf-c field type. */
typedef struct pj_kind {
    const char *name;
    size_t size;   /* bytes of one value in the message or a repeated array */
    unsigned bits; /* integers: width */
    bool is_signed;
    pj_from_fn from;
    pj_to_fn to;
} pj_kind_t;

static const pj_kind_t *kind_of(const ProtobufCFieldDescriptor *f);
static int msg_from_json(pj_ctx_t *c, const ProtobufCMessageDescriptor *desc, const json_t *v,
                         ProtobufCMessage **out);
static int msg_to_json(pj_ctx_t *c, const ProtobufCMessage *m, json_t **out);
static bool json_name(const char *name, char *buf, size_t cap);

/* ---- paths and errors ---- */

static void
ctx_init(pj_ctx_t *c, pt_error_t *err)
{
    c->path[0] = '\0';
    c->len = 0;
    c->depth = 0;
    c->err = err;
}

/* Appends ".key", or "key" at the root (control characters shown as '?'); returns the
 * length to restore. */
static size_t
ctx_push_key(pj_ctx_t *c, const char *key)
{
    size_t old = c->len;
    if (c->len > 0 && c->len + 1 < sizeof c->path)
        c->path[c->len++] = '.';
    for (const char *k = key; *k != '\0' && c->len + 1 < sizeof c->path; k++)
        c->path[c->len++] = (unsigned char)*k < 0x20 ? '?' : *k;
    c->path[c->len] = '\0';
    return old;
}

/* Appends field f's JSON name (what the partner should write), or the key as written when
 * it names no field. */
static size_t
ctx_push_field(pj_ctx_t *c, const ProtobufCFieldDescriptor *f, const char *key)
{
    char name[JSON_NAME_MAX];
    if (f != NULL && json_name(f->name, name, sizeof name))
        return ctx_push_key(c, name);
    return ctx_push_key(c, key);
}

static size_t
ctx_push_index(pj_ctx_t *c, size_t i)
{
    size_t old = c->len;
    int n = snprintf(c->path + c->len, sizeof c->path - c->len, "[%zu]", i);
    if (n > 0)
        c->len = c->len + (size_t)n < sizeof c->path ? c->len + (size_t)n : sizeof c->path - 1;
    return old;
}

static void
ctx_pop(pj_ctx_t *c, size_t old)
{
    c->len = old;
    c->path[old] = '\0';
}

static int
ctx_fail(pj_ctx_t *c, int code, const char *what)
{
    return pt_error_set(c->err, code, c->path, "%s", what);
}

static int
ctx_nomem(pj_ctx_t *c)
{
    return pt_error_set(c->err, -ENOMEM, c->path, "out of memory");
}

static const char *
json_kind_name(const json_t *v)
{
    static const char *const names[] = {
        [JSON_OBJECT] = "object",  [JSON_ARRAY] = "array", [JSON_STRING] = "string",
        [JSON_INTEGER] = "number", [JSON_REAL] = "number", [JSON_TRUE] = "boolean",
        [JSON_FALSE] = "boolean",  [JSON_NULL] = "null",
    };
    return names[json_typeof(v)];
}

static int
ctx_expected(pj_ctx_t *c, const char *what, const json_t *v)
{
    return pt_error_set(c->err, PT_EMALFORMED, c->path, "expected %s, got %s", what,
                        json_kind_name(v));
}

/* ---- field names: protoc's ToJsonName (drop '_', capitalise what follows) ---- */

static bool
json_name(const char *name, char *buf, size_t cap)
{
    size_t n = 0;
    bool upper = false;
    for (const char *p = name; *p != '\0'; p++) {
        if (*p == '_') {
            upper = true;
            continue;
        }
        if (n + 1 >= cap)
            return false;
        buf[n++] = upper && *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
        upper = false;
    }
    buf[n] = '\0';
    return true;
}

static bool
json_name_equals(const char *name, const char *key)
{
    bool upper = false;
    for (const char *p = name; *p != '\0'; p++) {
        if (*p == '_') {
            upper = true;
            continue;
        }
        char want = upper && *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
        if (*key++ != want)
            return false;
        upper = false;
    }
    return *key == '\0';
}

/* The field a JSON key names, by original name or lowerCamelCase name, or -1. */
static int
field_index(const ProtobufCMessageDescriptor *desc, const char *key)
{
    for (unsigned i = 0; i < desc->n_fields; i++)
        if (strcmp(desc->fields[i].name, key) == 0 || json_name_equals(desc->fields[i].name, key))
            return (int)i;
    return -1;
}

/* ---- integers ---- */

/* An integer read from JSON as sign and magnitude, so that all of int64 and uint64 fit. */
typedef struct pj_int {
    bool neg;
    uint64_t mag;
} pj_int_t;

static int
int_from_string(pj_ctx_t *c, const char *s, pj_int_t *out)
{
    out->neg = *s == '-';
    if (out->neg)
        s++;
    if (*s == '\0')
        return ctx_fail(c, PT_EMALFORMED, "expected an integer, got string");
    out->mag = 0;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return ctx_fail(c, PT_EMALFORMED, "expected an integer, got string");
        unsigned d = (unsigned)(*s - '0');
        if (out->mag > (UINT64_MAX - d) / 10)
            return ctx_fail(c, PT_EMALFORMED, "integer out of range");
        out->mag = out->mag * 10 + d;
    }
    return 0;
}

static int
int_from_real(pj_ctx_t *c, double d, pj_int_t *out)
{
    if (!isfinite(d) || floor(d) != d)
        return ctx_fail(c, PT_EMALFORMED, "expected an integer, got a fractional number");
    if (fabs(d) >= 18446744073709551616.0)
        return ctx_fail(c, PT_EMALFORMED, "integer out of range");
    out->neg = d < 0;
    out->mag = (uint64_t)fabs(d);
    return 0;
}

/* Reads a JSON number or decimal string as an integer (proto3 accepts both). */
static int
int_from_json(pj_ctx_t *c, const json_t *v, pj_int_t *out)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        out->neg = i < 0;
        out->mag = i < 0 ? (uint64_t)0 - (uint64_t)i : (uint64_t)i;
        return 0;
    }
    if (json_is_real(v))
        return int_from_real(c, json_real_value(v), out);
    if (json_is_string(v))
        return int_from_string(c, json_string_value(v), out);
    return ctx_expected(c, "an integer", v);
}

static int
int_check_range(pj_ctx_t *c, const pj_kind_t *k, const pj_int_t *x)
{
    uint64_t pos_max = k->is_signed ? (UINT64_C(1) << (k->bits - 1)) - 1
                                    : (k->bits == 64 ? UINT64_MAX : (UINT64_C(1) << k->bits) - 1);
    uint64_t neg_max = k->is_signed ? UINT64_C(1) << (k->bits - 1) : 0;
    if (x->mag > (x->neg ? neg_max : pos_max))
        return pt_error_set(c->err, PT_EMALFORMED, c->path, "integer out of range for %s", k->name);
    return 0;
}

static int
int_field_from(pj_ctx_t *c, const ProtobufCFieldDescriptor *f, const json_t *v, void *dst)
{
    const pj_kind_t *k = kind_of(f);
    pj_int_t x = {false, 0};
    int rc = int_from_json(c, v, &x);
    if (rc == 0)
        rc = int_check_range(c, k, &x);
    if (rc != 0)
        return rc;
    uint64_t bits = x.neg ? (uint64_t)0 - x.mag : x.mag; /* two's complement */
    if (k->size == 4) {
        uint32_t u = (uint32_t)bits;
        memcpy(dst, &u, sizeof u);
    } else {
        memcpy(dst, &bits, sizeof bits);
    }
    return 0;
}

static int
int_field_to(pj_ctx_t *c, const ProtobufCFieldDescriptor *f, const void *src, json_t **out)
{
    const pj_kind_t *k = kind_of(f);
    char buf[32];
    if (k->size == 4) {
        *out = k->is_signed ? json_integer(*(const int32_t *)src)
                            : json_integer(*(const uint32_t *)src);
    } else {
        if (k->is_signed)
            snprintf(buf, sizeof buf, "%" PRId64, *(const int64_t *)src);
        else
            snprintf(buf, sizeof buf, "%" PRIu64, *(const uint64_t *)src);
        *out = json_string(buf);
    }
    return *out ? 0 : ctx_nomem(c);
}

/* ---- floating point ---- */

static bool
float_special(const char *s, double *out)
{
    static const struct {
        const char *text;
        double value;
    } specials[] = {{"NaN", NAN}, {"Infinity", INFINITY}, {"-Infinity", -INFINITY}};
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++)
        if (strcmp(s, specials[i].text) == 0) {
            *out = specials[i].value;
            return true;
        }
    return false;
}

/* A decimal number in a string: digits, sign, point and exponent only (strtod alone
 * would also take hex, "inf" and leading spaces). */
static bool
float_from_string(const char *s, double *out)
{
    if (float_special(s, out))
        return true;
    if (*s == '\0' || strspn(s, "0123456789+-.eE") != strlen(s))
        return false;
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return *end == '\0' && errno != ERANGE;
}

static int
float_field_from(pj_ctx_t *c, const ProtobufCFieldDescriptor *f, const json_t *v, void *dst)
{
    double d;
    if (json_is_number(v))
        d = json_number_value(v);
    else if (!json_is_string(v))
        return ctx_expected(c, "a number", v);
    else if (!float_from_string(json_string_value(v), &d))
        return ctx_fail(c, PT_EMALFORMED, "expected a number, got string");
    if (f->type == PROTOBUF_C_TYPE_DOUBLE) {
        memcpy(dst, &d, sizeof d);
        return 0;
    }
    if (isfinite(d) && fabs(d) > FLT_MAX)
        return ctx_fail(c, PT_EMALFORMED, "number out of range for float");
    float x = (float)d;
    memcpy(dst, &x, sizeof x);
    return 0;
}

/* The shortest decimal that reads back as the same float, as a double (what
 * Python prints for a float field). */
static double
float_shortest(float x)
{
    char buf[32];
    for (int prec = 1; prec < 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)x);
        if (strtof(buf, NULL) == x)
            return strtod(buf, NULL);
    }
    return (double)x;
}

static int
float_field_to(pj_ctx_t *c, const ProtobufCFieldDescriptor *f, const void *src, json_t **out)
{
    double d =
        f->type == PROTOBUF_C_TYPE_DOUBLE ? *(const double *)src : (double)*(const float *)src;
    if (isnan(d))
        *out = json_string("NaN");
    else if (isinf(d))
        *out = json_string(d > 0 ? "Infinity" : "-Infinity");
    else if (f->type == PROTOBUF_C_TYPE_FLOAT)
        *out = json_real(float_shortest(*(const float *)src));
    else
        *out = json_real(d);
    return *out ? 0 : ctx_nomem(c);
}

/* ---- bool, enum, string ---- */

static int
bool_field_from(pj_ctx_t *c, const ProtobufCFieldDescriptor *f, const json_t *v, void *dst)
{
    (void)f;
    if (!json_is_boolean(v))
        return ctx_expected(c, "true or false", v);
    *(protobuf_c_boolean *)dst = json_is_true(v);
    return 0;
}

static int
bool_field_to(pj_ctx_t *c, const ProtobufCFieldDescriptor *f, const void *src, json_t **out)
{
    (void)f;
    *out = json_boolean(*(const protobuf_c_boolean *)src);
    return *out ? 0 : ctx_nomem(c);
}

size_t
pjson_enum_names(const ProtobufCEnumDescriptor *ed, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < ed->n_values; i++) {
        if (ed->values[i].value == 0)
            continue;
        int w = snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", ed->values[i].name);
        if (w < 0 || (size_t)w >= cap - n) {
            buf[n] = '\0';
            return n;
        }
        n += (size_t)w;
    }
    return n;
}

/* The valid names help the partner fix a typo; the name given is input and not quoted. */
static int
enum_unknown_name(pj_ctx_t *c, const ProtobufCEnumDescriptor *ed)
{
    char names[PT_ERROR_MSG_MAX];
    pjson_enum_names(ed, names, sizeof names);
    return pt_error_set(c->err, PT_EMALFORMED, c->path,
                        "unknown value name for %s: expected one of %s", ed->short_name, names);
}

/* Enums are open in proto3: any int32 number is kept, and printed back as a number. */
static int
enum_field_from(pj_ctx_t *c, const ProtobufCFieldDescriptor *f, const json_t *v, void *dst)
{
    int value;
    if (json_is_string(v)) {
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, json_string_value(v));
        if (ev == NULL)
            return enum_unknown_name(c, f->descriptor);
        value = ev->value;
    } else if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < INT32_MIN || i > INT32_MAX)
            return ctx_fail(c, PT_EMALFORMED, "enum number out of range for int32");
        value = (int)i;
    } else {
        return ctx_expected(c, "an enum name or number", v);
    }
    memcpy(dst, &value, sizeof value);
    return 0;
}

static int
enum_field_to(pj_ctx_t *c, const ProtobufCFieldDescriptor *f, const void *src, json_t **out)
{
    int value = *(const int *)src;
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, value);
    *out = ev ? json_string(ev->name) : json_integer(value);
    return *out ? 0 : ctx_nomem(c);
}

static int
string_field_from(pj_ctx_t *c, const ProtobufCFieldDescriptor *f, const json_t *v, void *dst)
{
    (void)f;
    if (!json_is_string(v))
        return ctx_expected(c, "a string", v);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (strlen(s) != n)
        return ctx_fail(c, PT_EMALFORMED, "string contains a NUL character");
    char *copy = malloc(n + 1);
    if (copy == NULL)
        return ctx_nomem(c);
    memcpy(copy, s, n + 1);
    *(char **)dst = copy;
    return 0;
}

static int
string_field_to(pj_ctx_t *c, const ProtobufCFieldDescriptor *f, const void *src, json_t **out)
{
    (void)f;
    const char *s = *(char *const *)src;
    *out = json_string(s ? s : "");
    if (*out == NULL) /* jansson refuses invalid UTF-8 (protobuf-c does not check) */
        return ctx_fail(c, PT_EINVALID, "string is not valid UTF-8");
    return 0;
}

/* ---- bytes: standard base64 with padding out; standard or URL-safe, padded or not, in ---- */

static int
b64_variant(const char *s, size_t n, int *variant)
{
    bool std = strcspn(s, "+/") < n, url = strcspn(s, "-_") < n;
    if (std && url)
        return -1;
    *variant =
        url ? sodium_base64_VARIANT_URLSAFE_NO_PADDING : sodium_base64_VARIANT_ORIGINAL_NO_PADDING;
    return 0;
}

static int
bytes_field_from(pj_ctx_t *c, const ProtobufCFieldDescriptor *f, const json_t *v, void *dst)
{
    (void)f;
    if (!json_is_string(v))
        return ctx_expected(c, "a base64 string", v);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v), pads = 0;
    while (pads < 2 && n > pads && s[n - pads - 1] == '=')
        pads++;
    int variant;
    if ((pads > 0 && n % 4 != 0) || b64_variant(s, n - pads, &variant) != 0)
        return ctx_fail(c, PT_EMALFORMED, "invalid base64");
    ProtobufCBinaryData bd = {0, NULL};
    if (n - pads == 0) {
        *(ProtobufCBinaryData *)dst = bd;
        return 0;
    }
    if ((bd.data = malloc(n)) == NULL)
        return ctx_nomem(c);
    const char *end;
    if (sodium_base642bin(bd.data, n, s, n - pads, NULL, &bd.len, &end, variant) != 0 ||
        end != s + n - pads) {
        free(bd.data);
        return ctx_fail(c, PT_EMALFORMED, "invalid base64");
    }
    *(ProtobufCBinaryData *)dst = bd;
    return 0;
}

static int
bytes_field_to(pj_ctx_t *c, const ProtobufCFieldDescriptor *f, const void *src, json_t **out)
{
    (void)f;
    const ProtobufCBinaryData *bd = src;
    const int variant = sodium_base64_VARIANT_ORIGINAL;
    size_t cap = sodium_base64_ENCODED_LEN(bd->len, variant);
    char *b64 = malloc(cap);
    if (b64 == NULL)
        return ctx_nomem(c);
    sodium_bin2base64(b64, cap, bd->len ? bd->data : (const unsigned char *)"", bd->len, variant);
    *out = json_string(b64);
    free(b64);
    return *out ? 0 : ctx_nomem(c);
}

/* ---- submessages ---- */

static int
msg_field_from(pj_ctx_t *c, const ProtobufCFieldDescriptor *f, const json_t *v, void *dst)
{
    ProtobufCMessage *sub;
    int rc = msg_from_json(c, f->descriptor, v, &sub);
    if (rc == 0)
        *(ProtobufCMessage **)dst = sub;
    return rc;
}

static int
msg_field_to(pj_ctx_t *c, const ProtobufCFieldDescriptor *f, const void *src, json_t **out)
{
    (void)f;
    return msg_to_json(c, *(ProtobufCMessage *const *)src, out);
}

static const pj_kind_t pj_kinds[] = {
    [PROTOBUF_C_TYPE_INT32] = {"int32", 4, 32, true, int_field_from, int_field_to},
    [PROTOBUF_C_TYPE_SINT32] = {"sint32", 4, 32, true, int_field_from, int_field_to},
    [PROTOBUF_C_TYPE_SFIXED32] = {"sfixed32", 4, 32, true, int_field_from, int_field_to},
    [PROTOBUF_C_TYPE_INT64] = {"int64", 8, 64, true, int_field_from, int_field_to},
    [PROTOBUF_C_TYPE_SINT64] = {"sint64", 8, 64, true, int_field_from, int_field_to},
    [PROTOBUF_C_TYPE_SFIXED64] = {"sfixed64", 8, 64, true, int_field_from, int_field_to},
    [PROTOBUF_C_TYPE_UINT32] = {"uint32", 4, 32, false, int_field_from, int_field_to},
    [PROTOBUF_C_TYPE_FIXED32] = {"fixed32", 4, 32, false, int_field_from, int_field_to},
    [PROTOBUF_C_TYPE_UINT64] = {"uint64", 8, 64, false, int_field_from, int_field_to},
    [PROTOBUF_C_TYPE_FIXED64] = {"fixed64", 8, 64, false, int_field_from, int_field_to},
    [PROTOBUF_C_TYPE_FLOAT] = {"float", 4, 0, true, float_field_from, float_field_to},
    [PROTOBUF_C_TYPE_DOUBLE] = {"double", 8, 0, true, float_field_from, float_field_to},
    [PROTOBUF_C_TYPE_BOOL] = {"bool", sizeof(protobuf_c_boolean), 0, false, bool_field_from,
                              bool_field_to},
    [PROTOBUF_C_TYPE_ENUM] = {"enum", sizeof(int), 0, true, enum_field_from, enum_field_to},
    [PROTOBUF_C_TYPE_STRING] = {"string", sizeof(char *), 0, false, string_field_from,
                                string_field_to},
    [PROTOBUF_C_TYPE_BYTES] = {"bytes", sizeof(ProtobufCBinaryData), 0, false, bytes_field_from,
                               bytes_field_to},
    [PROTOBUF_C_TYPE_MESSAGE] = {"message", sizeof(ProtobufCMessage *), 0, false, msg_field_from,
                                 msg_field_to},
};

static const pj_kind_t *
kind_of(const ProtobufCFieldDescriptor *f)
{
    return &pj_kinds[f->type];
}

/* ---- google.protobuf.Timestamp as RFC 3339 ---- */

static bool
is_timestamp(const ProtobufCMessageDescriptor *desc)
{
    return strcmp(desc->name, TIMESTAMP_NAME) == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* The seconds and nanos members of a Timestamp, by field number. */
static void
ts_fields(const ProtobufCMessageDescriptor *desc, size_t *secs_off, size_t *nanos_off)
{
    *secs_off = protobuf_c_message_descriptor_get_field(desc, 1)->offset;
    *nanos_off = protobuf_c_message_descriptor_get_field(desc, 2)->offset;
}

static int
ts_to_json(pj_ctx_t *c, const ProtobufCMessage *m, json_t **out)
{
    size_t so, no;
    ts_fields(m->descriptor, &so, &no);
    int64_t secs = CMEMBER(int64_t, m, so);
    int32_t nanos = CMEMBER(int32_t, m, no);
    if (secs < TS_MIN_SECONDS || secs > TS_MAX_SECONDS || nanos < 0 || nanos > 999999999)
        return ctx_fail(c, PT_EINVALID, "timestamp out of range");
    int64_t days = (secs - TS_MIN_SECONDS) / 86400 + TS_MIN_SECONDS / 86400;
    int64_t sod = secs - days * 86400, y;
    unsigned mo, d;
    civil_from_days(days, &y, &mo, &d);
    char buf[48];
    int n = snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d", (int)y, mo, d,
                     (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60));
    if (nanos % 1000000 == 0 && nanos != 0)
        n += snprintf(buf + n, sizeof buf - (size_t)n, ".%03d", (int)(nanos / 1000000));
    else if (nanos % 1000 == 0 && nanos != 0)
        n += snprintf(buf + n, sizeof buf - (size_t)n, ".%06d", (int)(nanos / 1000));
    else if (nanos != 0)
        n += snprintf(buf + n, sizeof buf - (size_t)n, ".%09d", (int)nanos);
    snprintf(buf + n, sizeof buf - (size_t)n, "Z");
    *out = json_string(buf);
    return *out ? 0 : ctx_nomem(c);
}

/* Reads exactly n digits at *p, advancing it; false when they are not all digits. */
static bool
scan_digits(const char **p, int n, int *out)
{
    *out = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9')
            return false;
        *out = *out * 10 + (**p - '0');
    }
    return true;
}

static bool
scan_char(const char **p, char ch)
{
    if (**p != ch)
        return false;
    (*p)++;
    return true;
}

/* "+HH:MM", "-HH:MM" or "Z" at the end of a timestamp, as seconds east of UTC. */
static bool
scan_offset(const char **p, int *offset)
{
    int hh, mm, sign = **p == '-' ? -1 : 1;
    *offset = 0;
    if (scan_char(p, 'Z'))
        return true;
    if (!scan_char(p, '+') && !scan_char(p, '-'))
        return false;
    if (!scan_digits(p, 2, &hh) || !scan_char(p, ':') || !scan_digits(p, 2, &mm))
        return false;
    *offset = sign * (hh * 3600 + mm * 60);
    return hh < 24 && mm < 60;
}

/* Fractional seconds: '.' and 1 to 9 digits, or nothing. */
static bool
scan_nanos(const char **p, int *nanos)
{
    *nanos = 0;
    if (!scan_char(p, '.'))
        return true;
    int n = 0;
    for (; **p >= '0' && **p <= '9'; (*p)++, n++)
        if (n < 9)
            *nanos = *nanos * 10 + (**p - '0');
    for (int i = n; i < 9; i++)
        *nanos *= 10;
    return n >= 1 && n <= 9;
}

static bool
ts_parse(const char *s, int64_t *secs, int *nanos)
{
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, se, off;
    const char *p = s;
    if (!scan_digits(&p, 4, &y) || !scan_char(&p, '-') || !scan_digits(&p, 2, &mo) ||
        !scan_char(&p, '-') || !scan_digits(&p, 2, &d) || !scan_char(&p, 'T') ||
        !scan_digits(&p, 2, &h) || !scan_char(&p, ':') || !scan_digits(&p, 2, &mi) ||
        !scan_char(&p, ':') || !scan_digits(&p, 2, &se) || !scan_nanos(&p, nanos) ||
        !scan_offset(&p, &off) || *p != '\0')
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || (unsigned)d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
        return false;
    if (h > 23 || mi > 59 || se > 59)
        return false;
    *secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se - off;
    return *secs >= TS_MIN_SECONDS && *secs <= TS_MAX_SECONDS;
}

static int
ts_from_json(pj_ctx_t *c, const ProtobufCMessageDescriptor *desc, const json_t *v,
             ProtobufCMessage *m)
{
    if (!json_is_string(v))
        return ctx_expected(c, "an RFC 3339 timestamp string", v);
    int64_t secs;
    int nanos;
    if (strlen(json_string_value(v)) != json_string_length(v) ||
        !ts_parse(json_string_value(v), &secs, &nanos))
        return ctx_fail(c, PT_EMALFORMED,
                        "invalid RFC 3339 timestamp (want 1972-01-01T10:00:20.021Z, "
                        "years 0001 to 9999)");
    size_t so, no;
    ts_fields(desc, &so, &no);
    MEMBER(int64_t, m, so) = secs;
    MEMBER(int32_t, m, no) = nanos;
    return 0;
}

/* ---- JSON -> message ---- */

static void
set_presence(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        MEMBER(uint32_t, m, f->quantifier_offset) = f->id;
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
             f->type != PROTOBUF_C_TYPE_MESSAGE)
        MEMBER(protobuf_c_boolean, m, f->quantifier_offset) = 1;
}

static int
array_from_json(pj_ctx_t *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                const json_t *v)
{
    if (!json_is_array(v))
        return ctx_expected(c, "an array", v);
    size_t n = json_array_size(v), size = kind_of(f)->size;
    if (n == 0)
        return 0;
    char *arr = calloc(n, size);
    if (arr == NULL)
        return ctx_nomem(c);
    MEMBER(void *, m, f->offset) = arr;
    size_t *count = &MEMBER(size_t, m, f->quantifier_offset);
    for (size_t i = 0; i < n; i++) {
        size_t old = ctx_push_index(c, i);
        const json_t *e = json_array_get(v, i);
        int rc = json_is_null(e) ? ctx_fail(c, PT_EMALFORMED, "null is not allowed in an array")
                                 : kind_of(f)->from(c, f, e, arr + i * size);
        if (rc != 0)
            return rc;
        ctx_pop(c, old);
        (*count)++;
    }
    return 0;
}

static int
field_from_json(pj_ctx_t *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                const json_t *v)
{
    if (json_is_null(v))
        return 0; /* the default; every field starts there and is seen at most once */
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return array_from_json(c, m, f, v);
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && MEMBER(uint32_t, m, f->quantifier_offset))
        return ctx_fail(c, PT_EMALFORMED, "another member of the same oneof is already set");
    int rc = kind_of(f)->from(c, f, v, (char *)m + f->offset);
    if (rc == 0)
        set_presence(m, f);
    return rc;
}

static int
members_from_json(pj_ctx_t *c, const ProtobufCMessageDescriptor *desc, const json_t *v,
                  ProtobufCMessage *m)
{
    bool *seen = calloc(desc->n_fields ? desc->n_fields : 1, sizeof *seen);
    if (seen == NULL)
        return ctx_nomem(c);
    const char *key;
    json_t *value;
    int rc = 0;
    json_object_foreach((json_t *)v, key, value)
    {
        int i = field_index(desc, key);
        size_t old = ctx_push_field(c, i >= 0 ? &desc->fields[i] : NULL, key);
        if (i < 0)
            rc = pt_error_set(c->err, PT_EMALFORMED, c->path, "unknown field of %s", desc->name);
        else if (seen[i])
            rc = ctx_fail(c, PT_EMALFORMED, "field given twice (camelCase and original name)");
        else
            rc = field_from_json(c, m, &desc->fields[i], value);
        if (rc != 0)
            break;
        seen[i] = true;
        ctx_pop(c, old);
    }
    free(seen);
    return rc;
}

static int
msg_from_json(pj_ctx_t *c, const ProtobufCMessageDescriptor *desc, const json_t *v,
              ProtobufCMessage **out)
{
    *out = NULL;
    if (!is_timestamp(desc) && !json_is_object(v))
        return ctx_expected(c, "an object", v);
    if (c->depth >= PJSON_MAX_DEPTH)
        return pt_error_set(c->err, PT_EMALFORMED, c->path, "nested deeper than %d messages",
                            PJSON_MAX_DEPTH);
    ProtobufCMessage *m = malloc(desc->sizeof_message);
    if (m == NULL)
        return ctx_nomem(c);
    protobuf_c_message_init(desc, m);
    c->depth++;
    int rc = is_timestamp(desc) ? ts_from_json(c, desc, v, m) : members_from_json(c, desc, v, m);
    c->depth--;
    if (rc != 0) {
        protobuf_c_message_free_unpacked(m, NULL);
        return rc;
    }
    *out = m;
    return 0;
}

int
pjson_to_message(const ProtobufCMessageDescriptor *desc, const json_t *in, ProtobufCMessage **out,
                 pt_error_t *err)
{
    pj_ctx_t c;
    ctx_init(&c, err);
    pt_error_clear(err);
    return msg_from_json(&c, desc, in, out);
}

/* Cuts jansson's " near '<token>'" off: the token is input and may be personal data. */
static void
strip_near(char *text)
{
    char *near = strstr(text, " near ");
    if (near != NULL)
        *near = '\0';
}

/* ---- the field path at a syntax error ----
 *
 * jansson stops at an integer it cannot hold (over 63 bits) or a duplicate key with a
 * line and column only. The text before that point is well-formed JSON, so a light
 * scan of it, following the descriptors, finds the member being read: the error then
 * names the field as a decoding error would ("orientation.person.nir"). */

#define SCAN_DEPTH (PJSON_MAX_DEPTH * 2)

typedef struct scan_frame {
    const ProtobufCMessageDescriptor *desc; /* object: its message; array: its elements' */
    bool is_array;
    size_t index, path_len;
} scan_frame_t;

typedef struct scan {
    pj_ctx_t *c;
    scan_frame_t frames[SCAN_DEPTH];
    int depth;                               /* frames in use; beyond SCAN_DEPTH: not tracked */
    const ProtobufCMessageDescriptor *value; /* the message of the next value, if one */
} scan_t;

/* The message type of field f's values, or NULL (scalars and timestamps). */
static const ProtobufCMessageDescriptor *
scan_value_desc(const ProtobufCFieldDescriptor *f)
{
    if (f == NULL || f->type != PROTOBUF_C_TYPE_MESSAGE || is_timestamp(f->descriptor))
        return NULL;
    return f->descriptor;
}

static scan_frame_t *
scan_top(scan_t *s)
{
    return s->depth > 0 && s->depth <= SCAN_DEPTH ? &s->frames[s->depth - 1] : NULL;
}

static void
scan_open(scan_t *s, bool is_array)
{
    if (++s->depth > SCAN_DEPTH)
        return;
    scan_frame_t *f = &s->frames[s->depth - 1];
    *f = (scan_frame_t){s->value, is_array, 0, s->c->len};
    if (is_array)
        ctx_push_index(s->c, 0);
    s->value = is_array ? f->desc : NULL;
}

static void
scan_close(scan_t *s)
{
    scan_frame_t *f = scan_top(s);
    if (f != NULL)
        ctx_pop(s->c, f->path_len);
    if (s->depth > 0)
        s->depth--;
    s->value = NULL;
}

static void
scan_comma(scan_t *s)
{
    scan_frame_t *f = scan_top(s);
    if (f == NULL)
        return;
    ctx_pop(s->c, f->path_len);
    if (f->is_array)
        ctx_push_index(s->c, ++f->index);
    s->value = f->is_array ? f->desc : NULL;
}

/* A string token from p (at its opening quote) to at most end; returns the position
 * after it. A key is copied (escapes kept as written) and becomes the path's last part. */
static const char *
scan_string(scan_t *s, const char *p, const char *end, bool is_key)
{
    char key[JSON_NAME_MAX];
    size_t n = 0;
    for (p++; p < end && *p != '"'; p++) {
        if (*p == '\\' && p + 1 < end)
            key[n < sizeof key - 1 ? n++ : n] = *p++;
        key[n < sizeof key - 1 ? n++ : n] = *p;
    }
    key[n] = '\0';
    scan_frame_t *f = scan_top(s);
    if (is_key && f != NULL) {
        int i = f->desc ? field_index(f->desc, key) : -1;
        const ProtobufCFieldDescriptor *fd = i >= 0 ? &f->desc->fields[i] : NULL;
        ctx_push_field(s->c, fd, key);
        s->value = scan_value_desc(fd);
    }
    return p < end ? p + 1 : p;
}

/* Whether the next string in the innermost object is a key (after '{' or ','). */
static void
scan_text(scan_t *s, const char *p, const char *end)
{
    bool want_key = false;
    while (p < end) {
        char ch = *p;
        if (ch == '"') {
            p = scan_string(s, p, end, want_key && scan_top(s) && !scan_top(s)->is_array);
            want_key = false;
            continue;
        }
        if (ch == '{' || ch == '[')
            scan_open(s, ch == '[');
        else if (ch == '}' || ch == ']')
            scan_close(s);
        else if (ch == ',')
            scan_comma(s);
        want_key = ch == '{' || (ch == ',' && scan_top(s) && !scan_top(s)->is_array) ||
                   (want_key && (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'));
        p++;
    }
}

/* The path of the member being read at byte `position` of text, into c's path. */
static void
syntax_error_path(pj_ctx_t *c, const ProtobufCMessageDescriptor *desc, const char *text, size_t len,
                  size_t position)
{
    scan_t s = {.c = c, .depth = 0, .value = is_timestamp(desc) ? NULL : desc};
    scan_text(&s, text, text + (position < len ? position : len));
}

static int
syntax_error(const ProtobufCMessageDescriptor *desc, const char *text, size_t len,
             json_error_t *jerr, pt_error_t *err)
{
    pj_ctx_t c;
    ctx_init(&c, err);
    strip_near(jerr->text);
    syntax_error_path(&c, desc, text, len, (size_t)jerr->position);
    return pt_error_set(err, PT_EMALFORMED, c.path, "line %d column %d: %s", jerr->line,
                        jerr->column, jerr->text);
}

int
pjson_parse(const ProtobufCMessageDescriptor *desc, const char *text, size_t len, size_t max_len,
            ProtobufCMessage **out, pt_error_t *err)
{
    *out = NULL;
    pt_error_clear(err);
    if (len > max_len)
        return pt_error_set(err, PT_ETOOLARGE, NULL,
                            "the JSON text is too large: %zu bytes, the limit is %zu bytes", len,
                            max_len);
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        return syntax_error(desc, text, len, &jerr, err);
    int rc = pjson_to_message(desc, doc, out, err);
    json_decref(doc);
    return rc;
}

/* Reads at most max + 4 bytes (a byte order mark and one byte over), so that a file
 * over the limit is known to be. */
static int
read_bounded(FILE *f, size_t max, char **out, size_t *len)
{
    size_t cap = max < SIZE_MAX - 4 ? max + 4 : max;
    char *buf = malloc(cap ? cap : 1);
    if (buf == NULL)
        return -ENOMEM;
    *len = fread(buf, 1, cap, f);
    if (ferror(f)) {
        int e = errno ? errno : EIO;
        free(buf);
        return -e;
    }
    *out = buf;
    return 0;
}

int
pjson_parse_file(const ProtobufCMessageDescriptor *desc, const char *path, size_t max_len,
                 ProtobufCMessage **out, pt_error_t *err)
{
    *out = NULL;
    pt_error_clear(err);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return pt_error_set(err, -errno, NULL, "cannot open: %s", strerror(errno));
    char *text = NULL;
    size_t len = 0;
    int rc = read_bounded(f, max_len, &text, &len);
    fclose(f);
    if (rc != 0)
        return pt_error_set(err, rc, NULL, "cannot read: %s", pt_strerror(rc));
    const char *p = text;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) /* Windows tools write one */
        p += 3, len -= 3;
    if (len > max_len)
        rc = pt_error_set(err, PT_ETOOLARGE, NULL,
                          "the file is too large: over %zu bytes, the limit is %zu bytes", max_len,
                          max_len);
    else
        rc = pjson_parse(desc, p, len, max_len, out, err);
    free(text);
    return rc;
}

/* ---- paths in JSON names ---- */

size_t
pjson_path_from_proto(const char *path, char *out, size_t cap)
{
    size_t n = 0;
    bool upper = false;
    if (cap == 0)
        return 0;
    for (const char *p = path; *p != '\0' && n + 1 < cap; p++) {
        if (*p == '_' && p != path && p[-1] != '.' && p[-1] != '[') {
            upper = true;
            continue;
        }
        out[n++] = upper && *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
        upper = false;
    }
    out[n] = '\0';
    return n;
}

void
pjson_error_json_path(pt_error_t *err)
{
    char path[PT_ERROR_PATH_MAX], msg[PT_ERROR_MSG_MAX];
    if (err == NULL || err->path[0] == '\0')
        return;
    size_t old = strlen(err->path);
    pjson_path_from_proto(err->path, path, sizeof path);
    if (strncmp(err->msg, err->path, old) == 0 && strncmp(err->msg + old, ": ", 2) == 0) {
        snprintf(msg, sizeof msg, "%s%s", path, err->msg + old);
        memcpy(err->msg, msg, sizeof msg);
    }
    memcpy(err->path, path, sizeof path);
}

/* ---- message -> JSON ---- */

static bool
value_is_default(const ProtobufCFieldDescriptor *f, const void *src)
{
    static const char zeros[8];
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        return *(char *const *)src == NULL || **(char *const *)src == '\0';
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)src)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(ProtobufCMessage *const *)src == NULL;
    default: /* numbers, bool, enum: all bits zero (so -0.0 is printed, as upb does) */
        return memcmp(src, zeros, kind_of(f)->size) == 0;
    }
}

/* Whether MessageToJson (without including_default_value_fields) prints the field. */
static bool
field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const void *src = (const char *)m + f->offset;
    bool pointer = f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE;
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return CMEMBER(size_t, m, f->quantifier_offset) > 0;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return CMEMBER(uint32_t, m, f->quantifier_offset) == f->id &&
               (!pointer || *(void *const *)src != NULL);
    if (pointer && f->label != PROTOBUF_C_LABEL_NONE)
        return *(void *const *)src != NULL;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL)
        return CMEMBER(protobuf_c_boolean, m, f->quantifier_offset) != 0;
    return f->label == PROTOBUF_C_LABEL_REQUIRED || !value_is_default(f, src);
}

static int
array_to_json(pj_ctx_t *c, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
              json_t **out)
{
    size_t n = CMEMBER(size_t, m, f->quantifier_offset), size = kind_of(f)->size;
    const char *arr = CMEMBER(char *, m, f->offset);
    json_t *a = json_array();
    if (a == NULL)
        return ctx_nomem(c);
    for (size_t i = 0; i < n; i++) {
        size_t old = ctx_push_index(c, i);
        json_t *e;
        int rc = kind_of(f)->to(c, f, arr + i * size, &e);
        if (rc == 0 && json_array_append_new(a, e) != 0)
            rc = ctx_nomem(c);
        if (rc != 0) {
            json_decref(a);
            return rc;
        }
        ctx_pop(c, old);
    }
    *out = a;
    return 0;
}

static int
member_to_json(pj_ctx_t *c, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
               json_t *obj)
{
    char name[JSON_NAME_MAX];
    if (!json_name(f->name, name, sizeof name))
        return ctx_fail(c, PT_EINVALID, "field name too long");
    size_t old = ctx_push_key(c, name);
    json_t *v;
    int rc = f->label == PROTOBUF_C_LABEL_REPEATED
                 ? array_to_json(c, m, f, &v)
                 : kind_of(f)->to(c, f, (const char *)m + f->offset, &v);
    if (rc == 0 && json_object_set_new(obj, name, v) != 0)
        rc = ctx_nomem(c);
    if (rc == 0)
        ctx_pop(c, old);
    return rc;
}

static int
msg_to_json(pj_ctx_t *c, const ProtobufCMessage *m, json_t **out)
{
    *out = NULL;
    if (c->depth >= PJSON_MAX_DEPTH)
        return pt_error_set(c->err, PT_EMALFORMED, c->path, "nested deeper than %d messages",
                            PJSON_MAX_DEPTH);
    if (is_timestamp(m->descriptor))
        return ts_to_json(c, m, out);
    json_t *obj = json_object();
    if (obj == NULL)
        return ctx_nomem(c);
    c->depth++;
    int rc = 0;
    for (unsigned i = 0; i < m->descriptor->n_fields && rc == 0; i++)
        if (field_present(m, &m->descriptor->fields[i]))
            rc = member_to_json(c, m, &m->descriptor->fields[i], obj);
    c->depth--;
    if (rc != 0) {
        json_decref(obj);
        return rc;
    }
    *out = obj;
    return 0;
}

int
pjson_from_message(const ProtobufCMessage *msg, json_t **out, pt_error_t *err)
{
    pj_ctx_t c;
    ctx_init(&c, err);
    pt_error_clear(err);
    return msg_to_json(&c, msg, out);
}

int
pjson_to_string(const ProtobufCMessage *msg, char **out, pt_error_t *err)
{
    json_t *doc;
    *out = NULL;
    int rc = pjson_from_message(msg, &doc, err);
    if (rc != 0)
        return rc;
    *out = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(doc);
    if (*out == NULL)
        return pt_error_set(err, -ENOMEM, "$", "out of memory");
    return 0;
}
