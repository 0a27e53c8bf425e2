/* validate: the business rules of every ptibus message family, applied to a decoded
 * Envelope before the broker journals or routes it (and by adapters before they
 * publish). Field-level rules (presence, length, characters, formats, enum values,
 * numeric ranges) live in one table in validate.c; cross-field rules live in one
 * function per family, dispatched by a table on the envelope's body case. The rules
 * are listed in docs/validation.md. No state; never allocates; never puts a field's
 * value into an error unless it is a number or a code (personal data stays out). */
#ifndef PT_VALIDATE_H
#define PT_VALIDATE_H

#include <stdbool.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "pt_limits.h"
#include "err.h"
#include "ptibus/v1/envelope.pb-c.h"
#include "ptibus/v1/protocol.pb-c.h"

/* Envelope header. */
#define PT_TERRITORY_MAX 64
#define PT_CREATED_AT_MIN INT64_C(946684800)  /* 2000-01-01T00:00:00Z, included */
#define PT_CREATED_AT_MAX INT64_C(4102444800) /* 2100-01-01T00:00:00Z, excluded */
#define PT_NANOS_MAX 999999999

/* Calendar dates "YYYY-MM-DD". */
#define PT_DATE_YEAR_MIN 1900
#define PT_DATE_YEAR_MAX 2199

/* Text lengths, in Unicode code points. */
#define PT_ID_MAX 64           /* business ids: orientation_id, sanction_id, ... */
#define PT_OFFER_ID_MAX 128    /* "<formation>/<action>/<session>" */
#define PT_NAME_MAX 64         /* last_name, birth_name */
#define PT_FIRST_NAMES_MAX 128 /* first_names */
#define PT_ORG_NAME_MAX 128    /* organisation and agent names */
#define PT_LABEL_MAX 255       /* titles, categories, single-line labels */
#define PT_FREE_TEXT_MAX 2000  /* reasons, opinions: multi-line */
#define PT_LONG_TEXT_MAX 4000  /* training objective */
#define PT_EMAIL_MAX 254
#define PT_STRING_DEFAULT_MAX 256 /* a string field missing from the rule table */

/* Protocol frames: text that partners write and the broker logs, journals or forwards.
 * A DeliverAck reason is single-line text (tabs allowed); the broker keeps its first
 * PT_RECEIPT_REASON_MAX code points. */
#define PT_CLIENT_NAME_MAX 64      /* hello.client_name */
#define PT_SOFTWARE_VERSION_MAX 64 /* hello.software_version */
#define PT_ACK_REASON_MAX 2000     /* deliver_ack.reason */
#define PT_RECEIPT_REASON_MAX 256  /* of it, in the DEAD_LETTERED record and the Receipt */

/* Person identifiers. */
#define PT_PAYER_OFFICE_LEN 3 /* NUMORG */
#define PT_FILE_NUMBER_MAX 15 /* MATRICULE, digits */
#define PT_FT_ID_MAX 11       /* identifiant France Travail, letters and digits */
#define PT_FT_UID_MAX 36      /* identifiant unique France Travail (a UUID) */
#define PT_SIRET_LEN 14

/* Numbers. */
#define PT_SANCTION_RATE_MIN 30
#define PT_SANCTION_RATE_MAX 100
#define PT_SANCTION_MONTHS_MIN 1
#define PT_SANCTION_MONTHS_MAX 4
#define PT_SANCTION_STAGE_MIN 1
#define PT_SANCTION_STAGE_MAX 10
#define PT_HOUSEHOLD_MAX 30
#define PT_VERSION_MAX 10000 /* orientation version */
#define PT_FUNDERS_MAX 8
#define PT_FUNDED_SEATS_MAX 10000
#define PT_TOTAL_HOURS_MAX 10000
#define PT_CODES_MAX 16 /* repeated code lists (FORMACODE, ROME, NSF, RNCP, publics) */
#define PT_REPEATED_DEFAULT_MAX 16

/* All of these return 0, or PT_EINVALID with err set: err->path is the offending
 * field's path in the lowerCamelCase JSON names a partner writes, as pjson's paths
 * ("sanction.person.nir", "recipients[3]", "trainingOffer.funders[2].funderCode",
 * "referral.availableFrom"), err->msg is "path: what is wrong". For validate_envelope,
 * paths are relative to the Envelope, so body fields start with the body case's JSON
 * name. The per-family functions start their paths with that same name ("sanction.",
 * "reorientationRequest.", ...), validate_person with "person" and validate_org with
 * "org". A NULL message is invalid. */
int validate_envelope(const Ptibus__V1__Envelope *env, pt_error_t *err);
int validate_orientation(const Ptibus__V1__Orientation *m, pt_error_t *err);
int validate_reorientation_request(const Ptibus__V1__ReorientationRequest *m, pt_error_t *err);
int validate_reorientation_answer(const Ptibus__V1__ReorientationAnswer *m, pt_error_t *err);
int validate_referral(const Ptibus__V1__Referral *m, pt_error_t *err);
int validate_referral_status(const Ptibus__V1__ReferralStatus *m, pt_error_t *err);
int validate_sanction(const Ptibus__V1__Sanction *m, pt_error_t *err);
int validate_training_offer(const Ptibus__V1__TrainingOffer *m, pt_error_t *err);
int validate_beneficiary_event(const Ptibus__V1__BeneficiaryEvent *m, pt_error_t *err);
int validate_follow_up_event(const Ptibus__V1__FollowUpEvent *m, pt_error_t *err);
int validate_person(const Ptibus__V1__PersonRef *m, pt_error_t *err);
int validate_org(const Ptibus__V1__OrgRef *m, pt_error_t *err);

/* The text fields of the frames that the broker takes from partners and logs or
 * forwards: Hello (paths "hello.clientName", ...) and DeliverAck
 * ("deliverAck.reason"): valid UTF-8, no control character (a DeliverAck reason may
 * hold tabs), bounded in code points. */
int validate_hello(const Ptibus__V1__Hello *m, pt_error_t *err);
int validate_deliver_ack(const Ptibus__V1__DeliverAck *m, pt_error_t *err);

/* The maximum element count of repeated field f of msg from the rule table, or 0 when
 * the table has no limit for it (messages outside the Envelope, such as the admin
 * protocol's). The codec bounds counts with it before unpacking. */
uint32_t validate_max_count(const ProtobufCMessageDescriptor *msg,
                            const ProtobufCFieldDescriptor *f);

/* What the rule table says of one field, for documents generated from it (the JSON
 * Schemas of tools/schemagen), so that they cannot drift from what validate checks. */
typedef struct validate_field_info {
    bool required;       /* non-empty / non-zero / present; or a range whose minimum is > 0 */
    bool multiline;      /* a string that may hold line breaks (and tabs) */
    bool tabs;           /* a string that may hold tabs */
    const char *format;  /* the format's name ("date", "NIR ..."), or NULL */
    const char *pattern; /* the format's shape as a regular expression, or NULL */
    uint32_t max_length; /* strings: maximum code points (the default for an unlisted one) */
    bool exact_length;   /* strings: exactly max_length characters */
    bool has_range;      /* uint32: min <= value <= max */
    uint32_t min, max;
    uint32_t max_count; /* lists: maximum elements */
    bool has_rule;      /* the table has an entry (else the defaults apply) */
} validate_field_info_t;

/* Fills out for field f of message type msg. Never fails: a field without an entry gets
 * the defaults (optional, single-line, PT_STRING_DEFAULT_MAX, PT_REPEATED_DEFAULT_MAX).
 * Cross-field rules (one per family, docs/validation.md) are not described. */
void validate_field_info(const ProtobufCMessageDescriptor *msg, const ProtobufCFieldDescriptor *f,
                         validate_field_info_t *out);

/* Whether s passes the format check of field `field` (proto name) of msg alone (not its
 * length or characters); true for a field without a format. For tests that compare the
 * format with the pattern validate_field_info publishes. */
bool validate_format_matches(const ProtobufCMessageDescriptor *msg, const char *field,
                             const char *s);

/* The person the envelope's body is about (its `person` field), or NULL when the body
 * is unset or its family has no person (training offers, referral statuses,
 * reorientation answers). Borrowed from env. Does not validate. */
const Ptibus__V1__PersonRef *validate_envelope_person(const Ptibus__V1__Envelope *env);

/* True when s is a partner id: 1 to 32 of [a-z0-9_]. */
bool validate_is_partner_id(const char *s);

/* True when s is a real calendar date "YYYY-MM-DD" with a year in
 * [PT_DATE_YEAR_MIN, PT_DATE_YEAR_MAX]. */
bool validate_is_date(const char *s);

/* True when the rule table has an entry for field `field` of message type msg (every
 * string and repeated field reachable from the Envelope must have one; tests check). */
bool validate_has_rule(const ProtobufCMessageDescriptor *msg, const char *field);

#endif
