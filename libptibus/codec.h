/* codec: size-limited protobuf pack/unpack over protobuf-c, plus the helpers that
 * name an Envelope's message type (its body oneof case). Bytes from the network go
 * through codec_unpack only. */
#ifndef PT_CODEC_H
#define PT_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "err.h"
#include "ptibus/v1/envelope.pb-c.h"
#include "ptibus/v1/protocol.pb-c.h"

/* field_path of the Nack by which the broker says that a connection has no session
 * (e.g. after a broker restart): the client must say Hello again. */
#define PT_SESSION_FIELD "session"

/* Default limit on a packed Envelope (the broker config can lower or raise it). */
#define PT_MAX_MESSAGE_SIZE (256 * 1024)

/* Unpacks len bytes as a message of type desc. Refuses len > max (PT_ETOOLARGE),
 * undecodable bytes and field number 0 (PT_EMALFORMED), and, before protobuf-c
 * allocates anything (PT_EINVALID, err->path naming the field in proto names as the
 * validator does, e.g. "referral.person.#99" or "training_offer.formacode"):
 *  - a field number that the schema does not define, at any depth ("#<number>");
 *  - a singular field that appears more than once;
 *  - a repeated field with more elements than validate_max_count() allows (4096 for
 *    a field without a limit there).
 * On success the caller owns *out; free with codec_free(). */
int codec_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len, size_t max,
                 ProtobufCMessage **out, pt_error_t *err);

/* codec_unpack for bytes from the broker itself (the partner client's frames, the
 * admin CLI's responses): fields unknown to this build are kept and ignored, so that an
 * older client works with a newer broker, and element counts are not bounded; field
 * number 0 and undecodable bytes are still refused. */
int codec_unpack_lenient(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                         size_t max, ProtobufCMessage **out, pt_error_t *err);

/* Packs msg into a new buffer; refuses a result over max (PT_ETOOLARGE). On success
 * the caller owns *out (free()). */
int codec_pack(const ProtobufCMessage *msg, size_t max, uint8_t **out, size_t *len,
               pt_error_t *err);

/* Frees a message from codec_unpack (or protobuf-c's unpack) and sets *msg to NULL.
 * Accepts NULL and *msg == NULL. */
void codec_free(ProtobufCMessage **msg);

/* The message type of an envelope: the JSON/proto name of its body case
 * ("orientation", "referral", "sanction", ...), or NULL when the body is unset. */
const char *codec_envelope_type(const Ptibus__V1__Envelope *env);

/* The body case for a type name, or PTIBUS__V1__ENVELOPE__BODY__NOT_SET if unknown. */
Ptibus__V1__Envelope__BodyCase codec_envelope_case(const char *type);

/* Number of body cases and the i-th type name (0 <= i < count), for tables. */
size_t codec_envelope_type_count(void);
const char *codec_envelope_type_at(size_t i);

/* Writes every type name, joined by ", ", into out (truncated to cap), for messages. */
void codec_envelope_type_list(char *out, size_t cap);

/* A Nack code's name for logs, without the NACK_CODE_ prefix ("INVALID", "JOURNAL_FULL"),
 * or "UNKNOWN" for a value this build does not know. Static storage. */
const char *codec_nack_name(int code);

/* The envelope's territory (field 6) read from its packed bytes without decoding the
 * rest (the header's fields come first, in order), into out; "" when absent or
 * unreadable. Partner text, at most cap - 1 bytes. */
void codec_envelope_territory(const uint8_t *bytes, size_t len, char *out, size_t cap);

/* The suffix the broker adds to a refusal's journaled reason when the refused
 * envelope named a territory (the refused bytes are not stored, the report groups
 * refusals by territory): " [territory: X]", X of CODEC_TERRITORY_CHARS only. */
#define CODEC_TERRITORY_TAG " [territory: "
#define CODEC_TERRITORY_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."

/* Appends the tag of bytes' territory to reason (a string of cap bytes) when there is
 * one, of those characters only, and it fits; otherwise leaves reason as it is. */
void codec_refusal_tag(const uint8_t *bytes, size_t len, char *reason, size_t cap);

/* The territory a refusal's reason names in its tag, into out ("" when none). */
void codec_refusal_territory(const char *reason, char *out, size_t cap);

#endif
