/* pjson: the proto3 canonical JSON mapping (protobuf.dev "JSON Mapping") for any
 * protobuf-c message, both ways, over jansson. Output matches Python's
 * json_format.MessageToJson defaults; input is strict and says where it is wrong.
 * The module owns nothing between calls; docs/json-mapping.md lists the choices.
 *
 * Error paths name fields by their lowerCamelCase JSON names, whichever name the input
 * used, ".name" per object member and "[i]" per array element, as validate's do:
 * "sanction.ratePercent", "trainingOffer.funders[1].fundedSeats"; a key that names no
 * field appears as written. An error about the whole document has an empty path.
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
 * desc. Refuses len > max_len (PT_ETOOLARGE, "the JSON text is too large: N bytes, the
 * limit is M bytes"), text that is not JSON, has a duplicate key or an integer over 63
 * bits (PT_EMALFORMED, "line L column C: ...", with the path of the member being read
 * when there is one: "orientation.person.nir: line 1 column 80: duplicate object
 * key"), then as pjson_to_message. Ownership of *out as for pjson_to_message. */
int pjson_parse(const ProtobufCMessageDescriptor *desc, const char *text, size_t len,
                size_t max_len, ProtobufCMessage **out, pt_error_t *err);

/* As pjson_parse, for the file at path: a UTF-8 byte order mark at its start (Windows
 * tools write one) is skipped; a file of more than max_len bytes (after the mark) is
 * PT_ETOOLARGE ("the file is too large: ..."); -errno when it cannot be opened or read.
 * Ownership of *out as for pjson_to_message. */
int pjson_parse_file(const ProtobufCMessageDescriptor *desc, const char *path, size_t max_len,
                     ProtobufCMessage **out, pt_error_t *err);

/* Writes the names of enum ed's values but the zero one (the default, which means
 * "unset"), comma-separated, into buf (NUL-terminated, truncated at a name boundary to
 * fit cap >= 1). Returns the length written. For "expected one of ..." messages. */
size_t pjson_enum_names(const ProtobufCEnumDescriptor *ed, char *buf, size_t cap);

/* Writes path, a field path in proto field names ("referral.target_org.partner_id",
 * "recipients[1]"), in JSON names ("referral.targetOrg.partnerId") into out
 * (NUL-terminated, truncated to cap). Returns the length written. */
size_t pjson_path_from_proto(const char *path, char *out, size_t cap);

/* Rewrites err->path in JSON names, and the same path where it opens err->msg
 * ("path: what"), so that an error built with proto names (the router's, which uses
 * the configuration's field names) reaches a partner in the style of every other
 * error. Accepts NULL and an empty path. */
void pjson_error_json_path(pt_error_t *err);

#endif
