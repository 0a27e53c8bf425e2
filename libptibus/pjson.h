/* pjson: the proto3 canonical JSON mapping (protobuf.dev "JSON Mapping") for any
 * protobuf-c message, both ways, over jansson. Output matches Python's
 * json_format.MessageToJson defaults; input is strict and says where it is wrong.
 * The module owns nothing between calls; docs/json-mapping.md lists the choices.
 *
 * Error paths are JSONPath-like and use the keys as they appeared in the input:
 * "$" is the whole document, then ".key" per object member and "[i]" per array
 * element, e.g. "$.sanction.ratePercent" or "$.trainingOffer.funders[1].fundedSeats".
 * Messages never quote input values (they may be personal data). */
#ifndef PT_PJSON_H
#define PT_PJSON_H

#include <stddef.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "err.h"

/* Deepest nesting of messages accepted in either direction (the root is level 1). */
#define PJSON_MAX_DEPTH 32

/* Converts msg to its JSON value: an object, or a string for a top-level
 * google.protobuf.Timestamp. Fields holding their default value are omitted, except
 * oneof members and fields with explicit presence. Returns 0, PT_EINVALID (a value
 * JSON cannot carry: invalid UTF-8 string, timestamp out of range), PT_EMALFORMED
 * (nesting over PJSON_MAX_DEPTH) or -ENOMEM, filling err. On success the caller owns
 * *out (json_decref()); on error *out is NULL. */
int pjson_from_message(const ProtobufCMessage *msg, json_t **out, pt_error_t *err);

/* As pjson_from_message, serialised compactly (no spaces, UTF-8). On success the
 * caller owns *out (free()). */
int pjson_to_string(const ProtobufCMessage *msg, char **out, pt_error_t *err);

/* Builds a message of type desc from a JSON value. Accepts lowerCamelCase and
 * original field names, enum names or numbers, 64-bit integers as numbers or strings,
 * standard or URL-safe base64, RFC 3339 timestamps with any offset; null means the
 * default. Rejects unknown fields, a field given twice (under both names), two
 * members of one oneof, mistyped and out-of-range values, with PT_EMALFORMED and the
 * path in err; -ENOMEM on allocation failure. `in` is borrowed. On success the caller
 * owns *out, laid out as protobuf-c's unpack does: free with
 * protobuf_c_message_free_unpacked(*out, NULL) (or codec_free()). On error *out is NULL. */
int pjson_to_message(const ProtobufCMessageDescriptor *desc, const json_t *in,
                     ProtobufCMessage **out, pt_error_t *err);

/* Parses len bytes of JSON text (need not be NUL-terminated) into a message of type
 * desc. Refuses len > max_len (PT_ETOOLARGE), text that is not JSON or has a
 * duplicate key (PT_EMALFORMED, "$: line L column C: ..."), then as pjson_to_message.
 * Ownership of *out as for pjson_to_message. */
int pjson_parse(const ProtobufCMessageDescriptor *desc, const char *text, size_t len,
                size_t max_len, ProtobufCMessage **out, pt_error_t *err);

#endif
