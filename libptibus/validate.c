/* validate: field rules (one table), the generic walk that applies them to any
 * message through protobuf-c's descriptors, and the cross-field rules of each family
 * (one table keyed by the envelope's body case). */
#include "validate.h"

#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "nir.h"
#include "pjson.h"
#include "utf8.h"

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != 0)                                                                              \
            return rc_;                                                                            \
    } while (0)

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* The path of the field being checked, kept as a stack of segments (a proto field name
 * or a list index) while the walk descends, and rendered as text only when a check fails:
 * a valid message costs no string building. The text is in the JSON names a partner
 * writes ("referral.availableFrom"), like pjson's paths: names are converted as they are
 * rendered, truncated at PT_ERROR_PATH_MAX - 1 characters.
 *
 * VCTX_DEPTH segments always fill the text: the first one adds at least 1 character and
 * every other at least 2 (".x" or "[0]"), so 1 + 63 * 2 = PT_ERROR_PATH_MAX - 1, and the
 * segments pushed beyond it (never, with this schema) would all be truncated away. */
#define VCTX_DEPTH (PT_ERROR_PATH_MAX / 2)

typedef struct vseg {
    const char *name; /* a proto field name or a dotted path of them; NULL: index */
    size_t index;
} vseg_t;

typedef struct vctx {
    pt_error_t *err;
    const char *root; /* proto name of the path's start, "" for the Envelope */
    vseg_t seg[VCTX_DEPTH];
    size_t depth; /* may exceed VCTX_DEPTH: the segments beyond it are not kept */
} vctx_t;

static void
ctx_init(vctx_t *c, pt_error_t *err, const char *root)
{
    pt_error_clear(err);
    c->err = err;
    c->root = root;
    c->depth = 0;
}

/* Pushes a field name (proto form); returns the depth to restore. */
static size_t
path_push(vctx_t *c, const char *name)
{
    if (c->depth < VCTX_DEPTH)
        c->seg[c->depth] = (vseg_t){name, 0};
    return c->depth++;
}

static size_t
path_push_index(vctx_t *c, size_t i)
{
    if (c->depth < VCTX_DEPTH)
        c->seg[c->depth] = (vseg_t){NULL, i};
    return c->depth++;
}

static void
path_pop(vctx_t *c, size_t depth)
{
    c->depth = depth;
}

/* The rendered path: text grown segment by segment, truncating at its capacity. */
typedef struct vpath {
    char s[PT_ERROR_PATH_MAX];
    size_t len;
} vpath_t;

static void
vpath_append(vpath_t *p, const char *text, size_t n)
{
    size_t room = sizeof p->s - 1 - p->len;
    if (n > room)
        n = room;
    memcpy(p->s + p->len, text, n);
    p->len += n;
    p->s[p->len] = '\0';
}

/* Appends ".name" (or "name" at the start), name being a proto field name or a dotted
 * path of them, in JSON names. */
static void
vpath_name(vpath_t *p, const char *name)
{
    if (p->len)
        vpath_append(p, ".", 1);
    p->len += pjson_path_from_proto(name, p->s + p->len, sizeof p->s - p->len);
}

static void
vpath_index(vpath_t *p, size_t i)
{
    char digits[24], *d = digits + sizeof digits;
    *--d = ']';
    do {
        *--d = (char)('0' + i % 10);
        i /= 10;
    } while (i);
    *--d = '[';
    vpath_append(p, d, (size_t)(digits + sizeof digits - d));
}

/* Renders the current path, then `field` (a dotted suffix) when given. */
static void
path_render(const vctx_t *c, const char *field, vpath_t *p)
{
    p->len = pjson_path_from_proto(c->root, p->s, sizeof p->s);
    size_t kept = c->depth < VCTX_DEPTH ? c->depth : VCTX_DEPTH;
    for (size_t i = 0; i < kept; i++) {
        if (c->seg[i].name != NULL)
            vpath_name(p, c->seg[i].name);
        else
            vpath_index(p, c->seg[i].index);
    }
    if (field != NULL)
        vpath_name(p, field);
}

/* Fails at the current path, or at its sub-field `field` (a dotted suffix) when given. */
static int __attribute__((format(printf, 3, 4)))
fail(vctx_t *c, const char *field, const char *fmt, ...)
{
    char msg[PT_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    vpath_t p;
    path_render(c, field, &p);
    pt_error_set(c->err, PT_EINVALID, p.s[0] ? p.s : "envelope", "%s", msg);
    return PT_EINVALID;
}

/* ---- character classes and formats ---- */

static bool
all_of(const char *s, bool (*ok)(char))
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!ok(*s))
            return false;
    return true;
}

static bool
is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool
is_alnum(char ch)
{
    return is_digit(ch) || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
}

static bool
is_partner_char(char ch)
{
    return is_digit(ch) || (ch >= 'a' && ch <= 'z') || ch == '_';
}

static bool
is_graph_ascii(char ch)
{
    return ch >= 0x21 && ch <= 0x7e;
}

static bool
digits_n(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_digit(s[i]))
            return false;
    return true;
}

bool
validate_is_partner_id(const char *s)
{
    return s != NULL && strlen(s) <= PT_PARTNER_ID_MAX && all_of(s, is_partner_char);
}

static bool
is_message_id(const char *s)
{
    return all_of(s, is_graph_ascii);
}

static bool
is_digits(const char *s)
{
    return all_of(s, is_digit);
}

static bool
is_alnum_text(const char *s)
{
    return all_of(s, is_alnum);
}

/* ROME code: one capital letter and 4 digits ("M1607"). */
static bool
is_rome(const char *s)
{
    return s[0] >= 'A' && s[0] <= 'Z' && strlen(s) == 5 && digits_n(s + 1, 4);
}

/* NSF: 1 to 3 digits and an optional letter ("31", "330t"). */
static bool
is_nsf(const char *s)
{
    size_t n = 0;
    while (n < 3 && is_digit(s[n]))
        n++;
    if (n == 0)
        return false;
    if (s[n] != '\0' && ((s[n] | 0x20) >= 'a' && (s[n] | 0x20) <= 'z'))
        n++;
    return s[n] == '\0';
}

/* RNCP: digits, optionally prefixed "RNCP" ("RNCP34567" or "34567"). */
static bool
is_rncp(const char *s)
{
    if (strncmp(s, "RNCP", 4) == 0)
        s += 4;
    return strlen(s) <= 6 && is_digits(s);
}

/* A decimal amount: digits, optionally a point and 1 or 2 decimals ("3250.00"). */
static bool
is_decimal(const char *s)
{
    size_t n = strspn(s, "0123456789");
    if (n == 0)
        return false;
    if (s[n] == '\0')
        return true;
    size_t d = strspn(s + n + 1, "0123456789");
    return s[n] == '.' && d >= 1 && d <= 2 && s[n + 1 + d] == '\0';
}

/* INSEE commune code: 2 digits or 2A/2B, then 3 digits. */
static bool
is_insee_commune(const char *s)
{
    bool dept = digits_n(s, 2) || (s[0] == '2' && (s[1] == 'A' || s[1] == 'B'));
    return dept && strlen(s) == 5 && digits_n(s + 2, 3);
}

static bool
is_etatdosrsa(const char *s)
{
    return s[0] >= '0' && s[0] <= '6' && s[1] == '\0';
}

/* Plausible shape only: local@domain.tld, no spaces, the domain of letters, digits,
 * hyphens and inner dots. Deliverability is not ours to judge. */
static bool
is_email(const char *s)
{
    const char *at = strchr(s, '@');
    if (at == NULL || at == s || strchr(at + 1, '@') != NULL || strchr(s, ' ') != NULL)
        return false;
    const char *dom = at + 1;
    size_t n = strlen(dom);
    if (n < 3 || dom[0] == '.' || dom[n - 1] == '.' || strstr(dom, "..") || !strchr(dom, '.'))
        return false;
    return strspn(dom, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == n;
}

/* SIRET check digit: Luhn over the 14 digits, except La Poste's establishments
 * (SIREN 356000000), whose digits must add up to a multiple of 5. */
static bool
siret_checks(const char *s)
{
    unsigned luhn = 0, plain = 0;
    for (int i = 0; i < PT_SIRET_LEN; i++) {
        unsigned d = (unsigned)(s[PT_SIRET_LEN - 1 - i] - '0');
        plain += d;
        if (i % 2 == 1)
            d = d * 2 > 9 ? d * 2 - 9 : d * 2;
        luhn += d;
    }
    if (luhn % 10 == 0)
        return true;
    return strncmp(s, "356000000", 9) == 0 && plain % 5 == 0;
}

static bool
is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

typedef enum date_status { DATE_OK, DATE_SHAPE, DATE_YEAR, DATE_CALENDAR } date_status_t;

/* Parses "YYYY-MM-DD" into the comparable integer YYYYMMDD. */
static date_status_t
date_parse(const char *s, int *ymd)
{
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-' || !digits_n(s, 4) || !digits_n(s + 5, 2) ||
        !digits_n(s + 8, 2))
        return DATE_SHAPE;
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int m = (s[5] - '0') * 10 + (s[6] - '0');
    int d = (s[8] - '0') * 10 + (s[9] - '0');
    if (y < PT_DATE_YEAR_MIN || y > PT_DATE_YEAR_MAX)
        return DATE_YEAR;
    if (m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
        return DATE_CALENDAR;
    *ymd = y * 10000 + m * 100 + d;
    return DATE_OK;
}

bool
validate_is_date(const char *s)
{
    int ymd;
    return s != NULL && date_parse(s, &ymd) == DATE_OK;
}

/* ---- the rule table ---- */

typedef enum fmt {
    FMT_NONE,
    FMT_MESSAGE_ID,
    FMT_PARTNER_ID,
    FMT_DATE,
    FMT_BIRTH_DATE,
    FMT_NIR,
    FMT_DIGITS,
    FMT_DIGITS_EXACT, /* exactly `max` digits */
    FMT_ALNUM,
    FMT_SIRET,
    FMT_EMAIL,
    FMT_ROME,
    FMT_NSF,
    FMT_RNCP,
    FMT_DECIMAL,
    FMT_INSEE_COMMUNE,
    FMT_ETATDOSRSA,
} fmt_t;

enum {
    RULE_REQUIRED = 1,  /* string non-empty, enum not 0, message present, list not empty */
    RULE_MULTILINE = 2, /* the string may hold tabs and line breaks */
    RULE_RANGE = 4,     /* uint32: min <= value <= max */
    RULE_ELEMENT = 8,   /* set by the walk on list elements, which may never be empty */
    RULE_TAB = 16,      /* single-line, but the string may hold tabs */
};

typedef struct field_rule {
    const ProtobufCMessageDescriptor *msg;
    const char *field;
    unsigned flags;
    fmt_t fmt;
    uint32_t min, max;  /* strings: max code points; uint32 with RULE_RANGE: value range */
    uint32_t max_count; /* repeated fields: max elements */
} field_rule_t;

#define D(type) &ptibus__v1__##type##__descriptor
#define STR(type, field, max, flags, fmt)                                                          \
    {                                                                                              \
        D(type), #field, flags, fmt, 0, max, 0                                                     \
    }
#define LIST(type, field, max, count, fmt)                                                         \
    {                                                                                              \
        D(type), #field, 0, fmt, 0, max, count                                                     \
    }
#define NUM(type, field, min, max)                                                                 \
    {                                                                                              \
        D(type), #field, RULE_RANGE, FMT_NONE, min, max, 0                                         \
    }
#define REQ(type, field)                                                                           \
    {                                                                                              \
        D(type), #field, RULE_REQUIRED, FMT_NONE, 0, 0, 0                                          \
    }
#define ML RULE_MULTILINE
#define DATE(type, field, flags) STR(type, field, 10, flags, FMT_DATE)

static const field_rule_t field_rules[] = {
    STR(envelope, message_id, PT_MESSAGE_ID_MAX, RULE_REQUIRED, FMT_MESSAGE_ID),
    STR(envelope, correlation_id, PT_MESSAGE_ID_MAX, 0, FMT_MESSAGE_ID),
    STR(envelope, sender, PT_PARTNER_ID_MAX, 0, FMT_PARTNER_ID),
    LIST(envelope, recipients, PT_PARTNER_ID_MAX, PT_RECIPIENTS_MAX, FMT_PARTNER_ID),
    REQ(envelope, created_at),
    STR(envelope, territory, PT_TERRITORY_MAX, 0, FMT_NONE),

    STR(person_ref, nir, PT_NIR_LEN + PT_NIR_KEY_LEN, 0, FMT_NIR),
    STR(person_ref, birth_date, 10, 0, FMT_BIRTH_DATE),
    STR(person_ref, last_name, PT_NAME_MAX, 0, FMT_NONE),
    STR(person_ref, birth_name, PT_NAME_MAX, 0, FMT_NONE),
    STR(person_ref, first_names, PT_FIRST_NAMES_MAX, 0, FMT_NONE),
    STR(person_ref, payer_office, PT_PAYER_OFFICE_LEN, 0, FMT_DIGITS_EXACT),
    STR(person_ref, file_number, PT_FILE_NUMBER_MAX, 0, FMT_DIGITS),
    STR(person_ref, france_travail_id, PT_FT_ID_MAX, 0, FMT_ALNUM),
    STR(person_ref, departement_id, PT_ID_MAX, 0, FMT_NONE),
    STR(person_ref, france_travail_uid, PT_FT_UID_MAX, 0, FMT_NONE),
    STR(agent, name, PT_ORG_NAME_MAX, 0, FMT_NONE),
    STR(agent, email, PT_EMAIL_MAX, 0, FMT_EMAIL),
    REQ(org_ref, kind),
    STR(org_ref, siret, PT_SIRET_LEN, 0, FMT_SIRET),
    STR(org_ref, name, PT_ORG_NAME_MAX, 0, FMT_NONE),
    STR(org_ref, partner_id, PT_PARTNER_ID_MAX, 0, FMT_PARTNER_ID),

    DATE(orientation_refusal, refused_on, RULE_REQUIRED),
    STR(orientation_refusal, reason, PT_FREE_TEXT_MAX, ML, FMT_NONE),
    STR(orientation, orientation_id, PT_ID_MAX, RULE_REQUIRED, FMT_NONE),
    NUM(orientation, version, 1, PT_VERSION_MAX),
    REQ(orientation, person),
    STR(orientation, category_code, 16, 0, FMT_NONE),
    REQ(orientation, status),
    DATE(orientation, proposed_on, 0),
    DATE(orientation, decided_on, 0),
    DATE(orientation, starts_on, 0),
    DATE(orientation, ends_on, 0),
    STR(reorientation_request, request_id, PT_ID_MAX, RULE_REQUIRED, FMT_NONE),
    STR(reorientation_request, orientation_id, PT_ID_MAX, RULE_REQUIRED, FMT_NONE),
    REQ(reorientation_request, person),
    REQ(reorientation_request, requested_category),
    STR(reorientation_request, reason, PT_FREE_TEXT_MAX, ML, FMT_NONE),
    DATE(reorientation_request, requested_on, 0),
    STR(reorientation_answer, request_id, PT_ID_MAX, RULE_REQUIRED, FMT_NONE),
    REQ(reorientation_answer, decision),
    DATE(reorientation_answer, decided_on, 0),
    STR(reorientation_answer, reason, PT_FREE_TEXT_MAX, ML, FMT_NONE),
    STR(reorientation_answer, new_orientation_id, PT_ID_MAX, 0, FMT_NONE),

    REQ(target_service, kind),
    STR(target_service, category, PT_LABEL_MAX, 0, FMT_NONE),
    STR(target_service, training_action_ref, PT_OFFER_ID_MAX, 0, FMT_NONE),
    STR(referral, referral_id, PT_ID_MAX, RULE_REQUIRED, FMT_NONE),
    REQ(referral, person),
    REQ(referral, prescriber_org),
    REQ(referral, target_org),
    REQ(referral, target_service),
    STR(referral, reason, PT_FREE_TEXT_MAX, ML, FMT_NONE),
    DATE(referral, available_from, 0),
    STR(referral_status, referral_id, PT_ID_MAX, RULE_REQUIRED, FMT_NONE),
    REQ(referral_status, state),
    STR(referral_status, reason, PT_FREE_TEXT_MAX, ML, FMT_NONE),
    DATE(referral_status, effective_on, 0),

    STR(sanction, sanction_id, PT_ID_MAX, RULE_REQUIRED, FMT_NONE),
    REQ(sanction, person),
    NUM(sanction, household_size, 0, PT_HOUSEHOLD_MAX),
    REQ(sanction, legal_ground),
    REQ(sanction, measure),
    NUM(sanction, stage, PT_SANCTION_STAGE_MIN, PT_SANCTION_STAGE_MAX),
    DATE(sanction, starts_on, 0),
    DATE(sanction, ends_on, 0),
    DATE(sanction, notified_on, 0),
    DATE(sanction, observations_deadline, 0),
    STR(sanction, team_opinion, PT_FREE_TEXT_MAX, ML, FMT_NONE),
    REQ(sanction, phase),

    STR(funder, funder_code, 3, RULE_REQUIRED, FMT_DIGITS),
    NUM(funder, funded_seats, 0, PT_FUNDED_SEATS_MAX),
    STR(training_offer, offer_id, PT_OFFER_ID_MAX, RULE_REQUIRED, FMT_NONE),
    REQ(training_offer, operation),
    STR(training_offer, formation_number, PT_ID_MAX, 0, FMT_NONE),
    STR(training_offer, action_number, PT_ID_MAX, 0, FMT_NONE),
    STR(training_offer, session_number, PT_ID_MAX, 0, FMT_NONE),
    STR(training_offer, title, PT_LABEL_MAX, 0, FMT_NONE),
    STR(training_offer, objective, PT_LONG_TEXT_MAX, ML, FMT_NONE),
    LIST(training_offer, formacode, 5, PT_CODES_MAX, FMT_DIGITS),
    LIST(training_offer, rome_codes, 5, PT_CODES_MAX, FMT_ROME),
    LIST(training_offer, nsf_codes, 4, PT_CODES_MAX, FMT_NSF),
    LIST(training_offer, rncp_codes, 10, PT_CODES_MAX, FMT_RNCP),
    STR(training_offer, entry_level_code, 16, 0, FMT_NONE),
    STR(training_offer, exit_level_code, 16, 0, FMT_NONE),
    STR(training_offer, insee_commune, 5, 0, FMT_INSEE_COMMUNE),
    STR(training_offer, rhythm, PT_FREE_TEXT_MAX, ML, FMT_NONE),
    LIST(training_offer, target_public_codes, 16, PT_CODES_MAX, FMT_NONE),
    NUM(training_offer, total_hours, 0, PT_TOTAL_HOURS_MAX),
    STR(training_offer, total_price_eur, 16, 0, FMT_DECIMAL),
    LIST(training_offer, funders, 0, PT_FUNDERS_MAX, FMT_NONE),
    DATE(training_offer, starts_on, 0),
    DATE(training_offer, ends_on, 0),
    STR(training_offer, registration_address, PT_FREE_TEXT_MAX, ML, FMT_NONE),
    STR(training_offer, lheo_version, 8, 0, FMT_NONE),

    STR(beneficiary_event, event_id, PT_ID_MAX, RULE_REQUIRED, FMT_NONE),
    REQ(beneficiary_event, kind),
    REQ(beneficiary_event, person),
    STR(beneficiary_event, file_state_code, 1, 0, FMT_ETATDOSRSA),
    DATE(beneficiary_event, reference_date, 0),
    DATE(beneficiary_event, claim_date, 0),
    STR(beneficiary_event, closure_reason_code, 8, 0, FMT_NONE),
    STR(beneficiary_event, suspension_reason_code, 8, 0, FMT_NONE),
    STR(beneficiary_event, postal_code, 5, 0, FMT_DIGITS_EXACT),
    STR(beneficiary_event, insee_commune, 5, 0, FMT_INSEE_COMMUNE),
    NUM(beneficiary_event, household_size, 0, PT_HOUSEHOLD_MAX),

    /* Protocol frames whose text reaches logs, the journal and receipts. */
    STR(hello, client_name, PT_CLIENT_NAME_MAX, 0, FMT_NONE),
    STR(hello, software_version, PT_SOFTWARE_VERSION_MAX, 0, FMT_NONE),
    STR(deliver_ack, reason, PT_ACK_REASON_MAX, RULE_TAB, FMT_NONE),
    STR(follow_up_event, event_id, PT_ID_MAX, RULE_REQUIRED, FMT_NONE),
    REQ(follow_up_event, kind),
    REQ(follow_up_event, person),
    DATE(follow_up_event, occurred_on, 0),
    STR(follow_up_event, source_code, 8, 0, FMT_NONE),
    STR(follow_up_event, reason, PT_FREE_TEXT_MAX, ML, FMT_NONE),
    STR(follow_up_event, modality_code, 16, 0, FMT_NONE),
};

/* What a field without an entry gets: bounded, single-line, optional. */
static const field_rule_t default_rule = {
    NULL, NULL, 0, FMT_NONE, 0, PT_STRING_DEFAULT_MAX, PT_REPEATED_DEFAULT_MAX};

static const field_rule_t *
rule_find(const ProtobufCMessageDescriptor *msg, const char *field)
{
    for (size_t i = 0; i < COUNT_OF(field_rules); i++)
        if (field_rules[i].msg == msg && strcmp(field_rules[i].field, field) == 0)
            return &field_rules[i];
    return NULL;
}

bool
validate_has_rule(const ProtobufCMessageDescriptor *msg, const char *field)
{
    return rule_find(msg, field) != NULL;
}

/* The walk looks a rule up for every field of every message: an index by message
 * descriptor and field position, derived once from the constant table (it is as
 * read-only as the table afterwards), replaces a scan of the table with strcmp. */
#define RULE_INDEX_MESSAGES 32
#define RULE_INDEX_FIELDS 48

typedef struct rule_index {
    const ProtobufCMessageDescriptor *msg;
    const field_rule_t *by_field[RULE_INDEX_FIELDS];
} rule_index_t;

static rule_index_t rule_index[RULE_INDEX_MESSAGES];
static size_t rule_index_count;
static pthread_once_t rule_index_once = PTHREAD_ONCE_INIT;

static rule_index_t *
rule_index_slot(const ProtobufCMessageDescriptor *msg, bool add)
{
    for (size_t i = 0; i < rule_index_count; i++)
        if (rule_index[i].msg == msg)
            return &rule_index[i];
    if (!add || rule_index_count == RULE_INDEX_MESSAGES)
        return NULL;
    rule_index[rule_index_count].msg = msg;
    return &rule_index[rule_index_count++];
}

static void
rule_index_build(void)
{
    for (size_t i = 0; i < COUNT_OF(field_rules); i++) {
        const field_rule_t *r = &field_rules[i];
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(r->msg, r->field);
        rule_index_t *slot = rule_index_slot(r->msg, true);
        size_t pos = f ? (size_t)(f - r->msg->fields) : RULE_INDEX_FIELDS;
        /* The table and the schema are both constants: a mismatch is a programmer error. */
        assert(slot != NULL && pos < RULE_INDEX_FIELDS);
        if (slot != NULL && pos < RULE_INDEX_FIELDS)
            slot->by_field[pos] = r;
    }
}

/* The rules of msg's fields (by field position), or NULL when it has none. */
static const rule_index_t *
rules_of(const ProtobufCMessageDescriptor *msg)
{
    pthread_once(&rule_index_once, rule_index_build);
    return rule_index_slot(msg, false);
}

static const field_rule_t *
rule_at(const rule_index_t *slot, const ProtobufCMessageDescriptor *msg,
        const ProtobufCFieldDescriptor *f)
{
    size_t pos = (size_t)(f - msg->fields);
    return slot && pos < RULE_INDEX_FIELDS ? slot->by_field[pos] : NULL;
}

static const field_rule_t *
rule_of(const ProtobufCMessageDescriptor *msg, const ProtobufCFieldDescriptor *f)
{
    return rule_at(rules_of(msg), msg, f);
}

/* ---- field checks ---- */

static bool
is_empty(const char *s)
{
    return s == NULL || s[0] == '\0';
}

/* Text fields: no control character but tab in single-line text (RULE_TAB), tab and
 * line breaks in multi-line text. */
static bool
is_control(uint32_t cp, unsigned flags)
{
    if ((flags & (RULE_TAB | RULE_MULTILINE)) && cp == '\t')
        return false;
    if ((flags & RULE_MULTILINE) && (cp == '\n' || cp == '\r'))
        return false;
    return utf8_is_control(cp);
}

/* Whether the 8 bytes at p are all printable ASCII (0x20-0x7e): no high bit, no byte
 * below 0x20 (the high bit of (v - 0x20) & ~v per byte, exact once no high bit is set),
 * no 0x7f (a zero byte of v ^ 0x7f). */
static bool
all_printable8(const char *p)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t v;
    memcpy(&v, p, sizeof v);
    if (v & high)
        return false;
    uint64_t del = v ^ (ones * 0x7f);
    return (((v - ones * 0x20) & ~v & high) | ((del - ones) & ~del & high)) == 0;
}

/* Checks encoding and characters; counts code points into *count. */
static int
check_text(vctx_t *c, const char *s, unsigned flags, size_t *count)
{
    const char *p = s;
    size_t left = strlen(s), n = 0;
    while (left > 0) {
        if (left >= 8 && all_printable8(p)) {
            p += 8, left -= 8, n += 8;
            continue;
        }
        if ((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f) {
            p++, left--, n++; /* printable ASCII, most of any text: one code point, allowed */
            continue;
        }
        uint32_t cp;
        int len = utf8_decode(p, left, &cp);
        if (len == 0)
            return fail(c, NULL, "is not valid UTF-8");
        if (is_control(cp, flags))
            return fail(c, NULL, "contains a control character (U+%04X)", (unsigned)cp);
        p += len;
        left -= (size_t)len;
        n++;
    }
    *count = n;
    return 0;
}

static int
check_date_text(vctx_t *c, const char *s, const field_rule_t *r)
{
    (void)r;
    int ymd;
    switch (date_parse(s, &ymd)) {
    case DATE_OK:
        return 0;
    case DATE_YEAR:
        return fail(c, NULL, "year must be between %d and %d", PT_DATE_YEAR_MIN, PT_DATE_YEAR_MAX);
    case DATE_CALENDAR:
        return fail(c, NULL, "is not a calendar date");
    default:
        return fail(c, NULL, "must be a date YYYY-MM-DD");
    }
}

/* Today as YYYYMMDD in UTC, plus one day: French civil dates run up to 2 hours ahead
 * of UTC, so a person born today in France may be born "tomorrow" in UTC. */
static int
tomorrow_ymd(void)
{
    time_t t = time(NULL) + 24 * 60 * 60;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL)
        return PT_DATE_YEAR_MAX * 10000 + 1231;
    return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

static int
check_birth_date(vctx_t *c, const char *s, const field_rule_t *r)
{
    TRY(check_date_text(c, s, r));
    int ymd = 0;
    date_parse(s, &ymd);
    if (ymd > tomorrow_ymd())
        return fail(c, NULL, "is in the future");
    return 0;
}

static int
check_nir(vctx_t *c, const char *s, const field_rule_t *r)
{
    (void)r;
    if (nir_is_valid(s))
        return 0;
    vpath_t p; /* the path only for the error: nir_validate says what is wrong */
    path_render(c, NULL, &p);
    return nir_validate(s, p.s, c->err);
}

static int
check_digits_exact(vctx_t *c, const char *s, const field_rule_t *r)
{
    if (strlen(s) != r->max || !is_digits(s))
        return fail(c, NULL, "must be exactly %u digits", (unsigned)r->max);
    return 0;
}

static int
check_siret(vctx_t *c, const char *s, const field_rule_t *r)
{
    TRY(check_digits_exact(c, s, r));
    if (!siret_checks(s))
        return fail(c, NULL, "fails the SIRET check digit (Luhn)");
    return 0;
}

/* One entry per format: a predicate and its message, or a checker of its own; and what
 * the generated JSON Schemas say of it (validate_field_info): its name and the shape as
 * a regular expression (ECMA-262 and POSIX ERE alike; a check a pattern cannot express,
 * a NIR key or a SIRET check digit, is left to the code). test_validate checks each
 * pattern against its predicate on samples, so that the two cannot drift apart. */
static const struct fmt_check {
    bool (*ok)(const char *s);
    const char *msg;
    int (*check)(vctx_t *c, const char *s, const field_rule_t *r);
    const char *name, *pattern;
} fmt_checks[] = {
    [FMT_NONE] = {NULL, NULL, NULL, NULL, NULL},
    [FMT_MESSAGE_ID] = {is_message_id, "must be printable ASCII without spaces (0x21-0x7e)", NULL,
                        "message id", "^[!-~]+$"},
    [FMT_PARTNER_ID] = {validate_is_partner_id, "must be 1 to 32 of a-z, 0-9 and _", NULL,
                        "partner id", "^[a-z0-9_]{1,32}$"},
    [FMT_DATE] = {NULL, NULL, check_date_text, "date",
                  "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"},
    [FMT_BIRTH_DATE] = {NULL, NULL, check_birth_date, "date, not in the future",
                        "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"},
    [FMT_NIR] = {NULL, NULL, check_nir, "NIR (13 characters, or 15 with its key)",
                 "^[1-478][0-9]{4}([0-9]{2}|2A|2B)[0-9]{6}([0-9]{2})?$"},
    [FMT_DIGITS] = {is_digits, "must be digits only", NULL, "digits", "^[0-9]+$"},
    [FMT_DIGITS_EXACT] = {NULL, NULL, check_digits_exact, "digits, exactly maxLength", "^[0-9]+$"},
    [FMT_ALNUM] = {is_alnum_text, "must be letters and digits only", NULL, "letters and digits",
                   "^[A-Za-z0-9]+$"},
    [FMT_SIRET] = {NULL, NULL, check_siret, "SIRET (14 digits, Luhn check digit)", "^[0-9]{14}$"},
    [FMT_EMAIL] = {is_email, "is not a plausible e-mail address", NULL, "e-mail address",
                   "^[^@ ]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)+$"},
    [FMT_ROME] = {is_rome, "must be a capital letter and 4 digits, like M1607", NULL, "ROME code",
                  "^[A-Z][0-9]{4}$"},
    [FMT_NSF] = {is_nsf, "must be 1 to 3 digits and an optional letter, like 330t", NULL,
                 "NSF code", "^[0-9]{1,3}[A-Za-z]?$"},
    [FMT_RNCP] = {is_rncp, "must be up to 6 digits, optionally prefixed RNCP", NULL, "RNCP code",
                  "^(RNCP)?[0-9]{1,6}$"},
    [FMT_DECIMAL] = {is_decimal, "must be a decimal amount like 3250.00", NULL, "decimal amount",
                     "^[0-9]+(\\.[0-9]{1,2})?$"},
    [FMT_INSEE_COMMUNE] = {is_insee_commune, "must be an INSEE commune code (5 characters)", NULL,
                           "INSEE commune code", "^([0-9]{2}|2A|2B)[0-9]{3}$"},
    [FMT_ETATDOSRSA] = {is_etatdosrsa, "must be an ETATDOSRSA code from 0 to 6", NULL,
                        "ETATDOSRSA code", "^[0-6]$"},
};

static int
check_string(vctx_t *c, const field_rule_t *r, const char *s)
{
    if (is_empty(s)) {
        if (r->flags & RULE_ELEMENT)
            return fail(c, NULL, "is empty");
        return (r->flags & RULE_REQUIRED) ? fail(c, NULL, "is required") : 0;
    }
    size_t n = 0;
    TRY(check_text(c, s, r->flags, &n));
    if (n > r->max)
        return fail(c, NULL, "is %zu characters long, maximum %u", n, (unsigned)r->max);
    const struct fmt_check *f = &fmt_checks[r->fmt];
    if (f->check != NULL)
        return f->check(c, s, r);
    if (f->ok != NULL && !f->ok(s))
        return fail(c, NULL, "%s", f->msg);
    return 0;
}

static int
check_enum(vctx_t *c, const ProtobufCFieldDescriptor *f, const field_rule_t *r, int v)
{
    const ProtobufCEnumDescriptor *ed = f->descriptor;
    if (v == 0 && (r->flags & RULE_REQUIRED))
        return fail(c, NULL, "is required");
    if (protobuf_c_enum_descriptor_get_value(ed, v) == NULL) {
        char names[PT_ERROR_MSG_MAX / 2];
        pjson_enum_names(ed, names, sizeof names);
        return fail(c, NULL, "%d is not a defined %s value (expected one of %s)", v, ed->short_name,
                    names);
    }
    return 0;
}

static int
check_range(vctx_t *c, const char *field, uint32_t v, uint32_t min, uint32_t max)
{
    if (v < min)
        return fail(c, field, "%u is below %u", (unsigned)v, (unsigned)min);
    if (v > max)
        return fail(c, field, "%u is above %u", (unsigned)v, (unsigned)max);
    return 0;
}

static int walk_message(vctx_t *c, const ProtobufCMessage *m);

static int
check_value(vctx_t *c, const ProtobufCFieldDescriptor *f, const field_rule_t *r, const void *p)
{
    const ProtobufCMessage *sub;
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        return check_string(c, r, *(char *const *)p);
    case PROTOBUF_C_TYPE_ENUM:
        return check_enum(c, f, r, *(const int *)p);
    case PROTOBUF_C_TYPE_UINT32:
        return (r->flags & RULE_RANGE) ? check_range(c, NULL, *(const uint32_t *)p, r->min, r->max)
                                       : 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        sub = *(ProtobufCMessage *const *)p;
        if (sub != NULL)
            return walk_message(c, sub);
        if (r->flags & RULE_ELEMENT)
            return fail(c, NULL, "is empty");
        return (r->flags & RULE_REQUIRED) ? fail(c, NULL, "is required") : 0;
    default:
        return 0; /* bools and timestamps' integers: left to the family rules */
    }
}

static size_t
element_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_UINT32:
        return sizeof(uint32_t);
    default:
        return 0;
    }
}

static int
check_repeated(vctx_t *c, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
               const field_rule_t *r)
{
    size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
    const char *elems = *(char *const *)((const char *)m + f->offset);
    if (n == 0)
        return (r->flags & RULE_REQUIRED) ? fail(c, NULL, "is required") : 0;
    if (n > r->max_count)
        return fail(c, NULL, "has %zu elements, maximum %u", n, (unsigned)r->max_count);
    size_t size = element_size(f->type);
    field_rule_t er = *r;
    er.flags |= RULE_ELEMENT;
    for (size_t i = 0; size != 0 && i < n; i++) {
        size_t old = path_push_index(c, i);
        int rc = check_value(c, f, &er, elems + i * size);
        path_pop(c, old);
        TRY(rc);
    }
    return 0;
}

/* ---- rules of the shared blocks, run after their fields ---- */

/* NIR sex digit: 1, 3, 7 male; 2, 4, 8 female. */
static int
check_sex_matches_nir(vctx_t *c, const Ptibus__V1__PersonRef *p)
{
    if (is_empty(p->nir) || p->sex == PTIBUS__V1__SEX__SEX_UNSPECIFIED)
        return 0;
    bool male = strchr("137", p->nir[0]) != NULL;
    if (male != (p->sex == PTIBUS__V1__SEX__SEX_MALE))
        return fail(c, "sex", "does not match the nir's sex digit");
    return 0;
}

static int
hook_person(vctx_t *c, const ProtobufCMessage *m)
{
    const Ptibus__V1__PersonRef *p = (const Ptibus__V1__PersonRef *)m;
    bool has_file = !is_empty(p->file_number);
    if (has_file && p->payer == PTIBUS__V1__PAYER__PAYER_UNSPECIFIED)
        return fail(c, "payer", "is required with fileNumber");
    if (is_empty(p->nir) && !has_file && is_empty(p->france_travail_id) &&
        is_empty(p->departement_id) && is_empty(p->france_travail_uid))
        return fail(c, NULL,
                    "needs an identifier: nir, payer and fileNumber, franceTravailId, "
                    "franceTravailUid or departementId");
    return check_sex_matches_nir(c, p);
}

static const struct block_hook {
    const ProtobufCMessageDescriptor *msg;
    int (*check)(vctx_t *c, const ProtobufCMessage *m);
} block_hooks[] = {
    {D(person_ref), hook_person},
};

static bool
in_active_oneof(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
        return true;
    return *(const uint32_t *)((const char *)m + f->quantifier_offset) == f->id;
}

/* Applies the rule table to every field of m, depth first in field-number order,
 * then m's block hook. The schema has no recursion, so the depth is bounded. */
static int
walk_message(vctx_t *c, const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const rule_index_t *rules = rules_of(d);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!in_active_oneof(m, f))
            continue;
        const field_rule_t *r = rule_at(rules, d, f);
        size_t old = path_push(c, f->name);
        int rc = f->label == PROTOBUF_C_LABEL_REPEATED
                     ? check_repeated(c, m, f, r ? r : &default_rule)
                     : check_value(c, f, r ? r : &default_rule, (const char *)m + f->offset);
        path_pop(c, old);
        TRY(rc);
    }
    for (size_t i = 0; i < COUNT_OF(block_hooks); i++)
        if (block_hooks[i].msg == d)
            return block_hooks[i].check(c, m);
    return 0;
}

/* ---- cross-field rules of each family, run after the walk ---- */

/* Whether field `name` of m holds a value: non-empty string, non-zero enum or number,
 * present message, non-empty list. */
static bool
field_is_set(const ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    const char *p = (const char *)m;
    if (f == NULL)
        return false;
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return *(const size_t *)(p + f->quantifier_offset) != 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        return !is_empty(*(char *const *)(p + f->offset));
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(void *const *)(p + f->offset) != NULL;
    case PROTOBUF_C_TYPE_ENUM:
        return *(const int *)(p + f->offset) != 0;
    case PROTOBUF_C_TYPE_UINT32:
        return *(const uint32_t *)(p + f->offset) != 0;
    default:
        return true;
    }
}

/* Fails on the first of the NULL-terminated names that m leaves unset. */
static int
require_fields(vctx_t *c, const ProtobufCMessage *m, const char *const *names, const char *why)
{
    for (; *names != NULL; names++)
        if (!field_is_set(m, *names))
            return fail(c, *names, "is required %s", why);
    return 0;
}

/* Dates already passed the field rules; an unset one imposes nothing. */
static int
check_order(vctx_t *c, const char *first_name, const char *first, const char *second_name,
            const char *second)
{
    int a, b;
    if (is_empty(first) || is_empty(second) || date_parse(first, &a) != DATE_OK ||
        date_parse(second, &b) != DATE_OK)
        return 0;
    if (b >= a)
        return 0;
    char first_json[64];
    pjson_path_from_proto(first_name, first_json, sizeof first_json);
    return fail(c, second_name, "is before %s", first_json);
}

static int
family_orientation(vctx_t *c, const ProtobufCMessage *m)
{
    static const char *const when_oriented[] = {"category", "referent_org", NULL};
    const Ptibus__V1__Orientation *o = (const Ptibus__V1__Orientation *)m;
    if (o->status == PTIBUS__V1__ORIENTATION_STATUS__ORIENTATION_STATUS_ORIENTED)
        TRY(require_fields(c, m, when_oriented, "when status is ORIENTED"));
    TRY(check_order(c, "proposed_on", o->proposed_on, "decided_on", o->decided_on));
    return check_order(c, "starts_on", o->starts_on, "ends_on", o->ends_on);
}

static int
family_referral(vctx_t *c, const ProtobufCMessage *m)
{
    const Ptibus__V1__Referral *r = (const Ptibus__V1__Referral *)m;
    if (r->target_org != NULL && is_empty(r->target_org->partner_id) &&
        is_empty(r->target_org->name))
        return fail(c, "target_org", "needs a partnerId or a name");
    if (r->target_service != NULL &&
        r->target_service->kind == PTIBUS__V1__SERVICE_KIND__SERVICE_KIND_TRAINING &&
        is_empty(r->target_service->training_action_ref))
        return fail(c, "target_service.training_action_ref", "is required when kind is TRAINING");
    return 0;
}

static int
family_referral_status(vctx_t *c, const ProtobufCMessage *m)
{
    const Ptibus__V1__ReferralStatus *s = (const Ptibus__V1__ReferralStatus *)m;
    if (s->state == PTIBUS__V1__REFERRAL_STATE__REFERRAL_STATE_REFUSED && is_empty(s->reason))
        return fail(c, "reason", "is required when state is REFUSED");
    return 0;
}

/* Suspension and suppression carry a rate and a duration; a lifted or cancelled
 * measure may repeat them, within the same bounds. A decision is routed by the payer. */
static int
family_sanction(vctx_t *c, const ProtobufCMessage *m)
{
    const Ptibus__V1__Sanction *s = (const Ptibus__V1__Sanction *)m;
    bool penalty =
        s->measure == PTIBUS__V1__SANCTION_MEASURE__SANCTION_MEASURE_SUSPENSION_REMOBILISATION ||
        s->measure == PTIBUS__V1__SANCTION_MEASURE__SANCTION_MEASURE_SUPPRESSION;
    if (penalty || s->rate_percent != 0)
        TRY(check_range(c, "rate_percent", s->rate_percent, PT_SANCTION_RATE_MIN,
                        PT_SANCTION_RATE_MAX));
    if (penalty || s->duration_months != 0)
        TRY(check_range(c, "duration_months", s->duration_months, PT_SANCTION_MONTHS_MIN,
                        PT_SANCTION_MONTHS_MAX));
    TRY(check_order(c, "starts_on", s->starts_on, "ends_on", s->ends_on));
    TRY(check_order(c, "notified_on", s->notified_on, "observations_deadline",
                    s->observations_deadline));
    if (s->phase == PTIBUS__V1__SANCTION_PHASE__SANCTION_PHASE_DECISION && s->person != NULL &&
        s->person->payer != PTIBUS__V1__PAYER__PAYER_CAF &&
        s->person->payer != PTIBUS__V1__PAYER__PAYER_MSA)
        return fail(c, "person.payer",
                    "must be CAF or MSA for a DECISION (it routes the sanction)");
    return 0;
}

static int
family_training_offer(vctx_t *c, const ProtobufCMessage *m)
{
    static const char *const for_upsert[] = {"title", "starts_on", "ends_on", "recruitment_state",
                                             NULL};
    const Ptibus__V1__TrainingOffer *t = (const Ptibus__V1__TrainingOffer *)m;
    if (t->operation == PTIBUS__V1__OFFER_OPERATION__OFFER_OPERATION_UPSERT)
        TRY(require_fields(c, m, for_upsert, "for an UPSERT"));
    return check_order(c, "starts_on", t->starts_on, "ends_on", t->ends_on);
}

/* RsaFileState values are the ETATDOSRSA codes plus one. */
static int
family_beneficiary_event(vctx_t *c, const ProtobufCMessage *m)
{
    const Ptibus__V1__BeneficiaryEvent *e = (const Ptibus__V1__BeneficiaryEvent *)m;
    bool has_code = !is_empty(e->file_state_code);
    if (e->kind == PTIBUS__V1__BENEFICIARY_EVENT_KIND__BENEFICIARY_EVENT_KIND_FILE_STATE_CHANGED &&
        e->file_state == 0 && !has_code)
        return fail(c, "file_state", "is required when kind is FILE_STATE_CHANGED");
    if (has_code && e->file_state != 0 && e->file_state_code[0] - '0' + 1 != (int)e->file_state) {
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
            &ptibus__v1__rsa_file_state__descriptor, e->file_state);
        return fail(c, "file_state_code", "\"%c\" does not match fileState %s (code \"%d\")",
                    e->file_state_code[0], v ? v->name : "?", (int)e->file_state - 1);
    }
    return 0;
}

/* The families, keyed by the envelope's body case; `name` is that case's field name. */
static const struct family {
    Ptibus__V1__Envelope__BodyCase body_case;
    const char *name;
    int (*check)(vctx_t *c, const ProtobufCMessage *m); /* NULL: field rules only */
} families[] = {
    {PTIBUS__V1__ENVELOPE__BODY_ORIENTATION, "orientation", family_orientation},
    {PTIBUS__V1__ENVELOPE__BODY_REORIENTATION_REQUEST, "reorientation_request", NULL},
    {PTIBUS__V1__ENVELOPE__BODY_REORIENTATION_ANSWER, "reorientation_answer", NULL},
    {PTIBUS__V1__ENVELOPE__BODY_REFERRAL, "referral", family_referral},
    {PTIBUS__V1__ENVELOPE__BODY_REFERRAL_STATUS, "referral_status", family_referral_status},
    {PTIBUS__V1__ENVELOPE__BODY_SANCTION, "sanction", family_sanction},
    {PTIBUS__V1__ENVELOPE__BODY_TRAINING_OFFER, "training_offer", family_training_offer},
    {PTIBUS__V1__ENVELOPE__BODY_BENEFICIARY_EVENT, "beneficiary_event", family_beneficiary_event},
    {PTIBUS__V1__ENVELOPE__BODY_FOLLOW_UP_EVENT, "follow_up_event", NULL},
};

static const struct family *
family_find(Ptibus__V1__Envelope__BodyCase body_case)
{
    for (size_t i = 0; i < COUNT_OF(families); i++)
        if (families[i].body_case == body_case)
            return &families[i];
    return NULL;
}

static int
family_run(vctx_t *c, const struct family *fam, const ProtobufCMessage *m)
{
    if (fam->check == NULL)
        return 0;
    size_t old = path_push(c, fam->name);
    int rc = fam->check(c, m);
    path_pop(c, old);
    return rc;
}

/* ---- entry points ---- */

static const ProtobufCMessage *
envelope_body(const Ptibus__V1__Envelope *env)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
        &ptibus__v1__envelope__descriptor, (unsigned)env->body_case);
    if (env->body_case == PTIBUS__V1__ENVELOPE__BODY__NOT_SET || f == NULL ||
        !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
        return NULL;
    return *(ProtobufCMessage *const *)((const char *)env + f->offset);
}

static int
check_created_at(vctx_t *c, const Google__Protobuf__Timestamp *t)
{
    if (t->seconds < PT_CREATED_AT_MIN)
        return fail(c, "created_at.seconds", "%lld is before 2000-01-01T00:00:00Z",
                    (long long)t->seconds);
    if (t->seconds >= PT_CREATED_AT_MAX)
        return fail(c, "created_at.seconds", "%lld is not before 2100-01-01T00:00:00Z",
                    (long long)t->seconds);
    if (t->nanos < 0 || t->nanos > PT_NANOS_MAX)
        return fail(c, "created_at.nanos", "%d is outside 0..%d", (int)t->nanos, PT_NANOS_MAX);
    return 0;
}

int
validate_envelope(const Ptibus__V1__Envelope *env, pt_error_t *err)
{
    vctx_t c;
    ctx_init(&c, err, "");
    if (env == NULL)
        return pt_error_set(err, PT_EINVALID, "envelope", "is missing");
    TRY(walk_message(&c, &env->base));
    TRY(check_created_at(&c, env->created_at));
    const struct family *fam = family_find(env->body_case);
    const ProtobufCMessage *body = envelope_body(env);
    if (fam == NULL || body == NULL)
        return fail(&c, "body",
                    "is required: one of orientation, reorientationRequest, "
                    "reorientationAnswer, referral, referralStatus, sanction, "
                    "trainingOffer, beneficiaryEvent, followUpEvent");
    return family_run(&c, fam, body);
}

static int
validate_family(Ptibus__V1__Envelope__BodyCase body_case, const ProtobufCMessage *m,
                pt_error_t *err)
{
    const struct family *fam = family_find(body_case);
    vctx_t c;
    ctx_init(&c, err, "");
    if (m == NULL)
        return fail(&c, fam->name, "is missing");
    size_t old = path_push(&c, fam->name);
    int rc = walk_message(&c, m);
    path_pop(&c, old);
    TRY(rc);
    return family_run(&c, fam, m);
}

static int
validate_block(const char *name, const ProtobufCMessage *m, pt_error_t *err)
{
    vctx_t c;
    ctx_init(&c, err, name);
    if (m == NULL)
        return fail(&c, NULL, "is missing");
    return walk_message(&c, m);
}

#define BASE(m) ((m) ? &(m)->base : NULL)

int
validate_orientation(const Ptibus__V1__Orientation *m, pt_error_t *err)
{
    return validate_family(PTIBUS__V1__ENVELOPE__BODY_ORIENTATION, BASE(m), err);
}

int
validate_reorientation_request(const Ptibus__V1__ReorientationRequest *m, pt_error_t *err)
{
    return validate_family(PTIBUS__V1__ENVELOPE__BODY_REORIENTATION_REQUEST, BASE(m), err);
}

int
validate_reorientation_answer(const Ptibus__V1__ReorientationAnswer *m, pt_error_t *err)
{
    return validate_family(PTIBUS__V1__ENVELOPE__BODY_REORIENTATION_ANSWER, BASE(m), err);
}

int
validate_referral(const Ptibus__V1__Referral *m, pt_error_t *err)
{
    return validate_family(PTIBUS__V1__ENVELOPE__BODY_REFERRAL, BASE(m), err);
}

int
validate_referral_status(const Ptibus__V1__ReferralStatus *m, pt_error_t *err)
{
    return validate_family(PTIBUS__V1__ENVELOPE__BODY_REFERRAL_STATUS, BASE(m), err);
}

int
validate_sanction(const Ptibus__V1__Sanction *m, pt_error_t *err)
{
    return validate_family(PTIBUS__V1__ENVELOPE__BODY_SANCTION, BASE(m), err);
}

int
validate_training_offer(const Ptibus__V1__TrainingOffer *m, pt_error_t *err)
{
    return validate_family(PTIBUS__V1__ENVELOPE__BODY_TRAINING_OFFER, BASE(m), err);
}

int
validate_beneficiary_event(const Ptibus__V1__BeneficiaryEvent *m, pt_error_t *err)
{
    return validate_family(PTIBUS__V1__ENVELOPE__BODY_BENEFICIARY_EVENT, BASE(m), err);
}

int
validate_follow_up_event(const Ptibus__V1__FollowUpEvent *m, pt_error_t *err)
{
    return validate_family(PTIBUS__V1__ENVELOPE__BODY_FOLLOW_UP_EVENT, BASE(m), err);
}

int
validate_person(const Ptibus__V1__PersonRef *m, pt_error_t *err)
{
    return validate_block("person", BASE(m), err);
}

int
validate_org(const Ptibus__V1__OrgRef *m, pt_error_t *err)
{
    return validate_block("org", BASE(m), err);
}

int
validate_hello(const Ptibus__V1__Hello *m, pt_error_t *err)
{
    return validate_block("hello", BASE(m), err);
}

int
validate_deliver_ack(const Ptibus__V1__DeliverAck *m, pt_error_t *err)
{
    return validate_block("deliver_ack", BASE(m), err);
}

void
validate_field_info(const ProtobufCMessageDescriptor *msg, const ProtobufCFieldDescriptor *f,
                    validate_field_info_t *out)
{
    const field_rule_t *r = rule_of(msg, f);
    const field_rule_t *rule = r ? r : &default_rule;
    const struct fmt_check *fc = &fmt_checks[rule->fmt];
    bool is_string = f->type == PROTOBUF_C_TYPE_STRING;
    *out = (validate_field_info_t){
        .required = (rule->flags & RULE_REQUIRED) || ((rule->flags & RULE_RANGE) && rule->min > 0 &&
                                                      f->label != PROTOBUF_C_LABEL_REPEATED),
        .multiline = (rule->flags & RULE_MULTILINE) != 0,
        .tabs = (rule->flags & (RULE_MULTILINE | RULE_TAB)) != 0,
        .format = fc->name,
        .pattern = fc->pattern,
        .max_length = is_string ? rule->max : 0,
        .exact_length = is_string && (rule->fmt == FMT_DIGITS_EXACT || rule->fmt == FMT_SIRET),
        .has_range = (rule->flags & RULE_RANGE) != 0,
        .min = rule->min,
        .max = rule->max,
        .max_count = f->label == PROTOBUF_C_LABEL_REPEATED ? rule->max_count : 0,
        .has_rule = r != NULL,
    };
}

bool
validate_format_matches(const ProtobufCMessageDescriptor *msg, const char *field, const char *s)
{
    const field_rule_t *r = rule_find(msg, field);
    if (r == NULL || r->fmt == FMT_NONE)
        return true;
    vctx_t c;
    pt_error_t err;
    ctx_init(&c, &err, "");
    const struct fmt_check *fc = &fmt_checks[r->fmt];
    if (fc->check != NULL)
        return fc->check(&c, s, r) == 0;
    return fc->ok(s);
}

uint32_t
validate_max_count(const ProtobufCMessageDescriptor *msg, const ProtobufCFieldDescriptor *f)
{
    const field_rule_t *r = rule_of(msg, f);
    return r ? r->max_count : 0;
}

const Ptibus__V1__PersonRef *
validate_envelope_person(const Ptibus__V1__Envelope *env)
{
    const ProtobufCMessage *body = env ? envelope_body(env) : NULL;
    if (body == NULL)
        return NULL;
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(body->descriptor, "person");
    if (f == NULL || f->type != PROTOBUF_C_TYPE_MESSAGE || f->descriptor != D(person_ref))
        return NULL;
    return *(Ptibus__V1__PersonRef *const *)((const char *)body + f->offset);
}
