/* Unit tests of libptibus/validate: one valid message of every family, then each rule
 * broken once, asserting the exact "path: what is wrong" text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <regex.h>

#include "codec.h"
#include "pjson.h"
#include "testutil.h"
#include "validate.h"

#define NCODES 20
#define NFUNDERS 10
#define NRECIPIENTS 40

/* Every message of every family, valid, wired together on the heap. */
typedef struct fx {
    pt_error_t err;
    Ptibus__V1__Envelope env;
    Google__Protobuf__Timestamp ts;
    Ptibus__V1__PersonRef person;
    Ptibus__V1__Agent agent;
    Ptibus__V1__OrgRef ft, cd, provider;
    Ptibus__V1__Orientation orientation;
    Ptibus__V1__OrientationRefusal refusal;
    Ptibus__V1__ReorientationRequest rreq;
    Ptibus__V1__ReorientationAnswer rans;
    Ptibus__V1__TargetService service;
    Ptibus__V1__Referral referral;
    Ptibus__V1__ReferralStatus rstatus;
    Ptibus__V1__Sanction sanction;
    Ptibus__V1__Funder funders[NFUNDERS];
    Ptibus__V1__Funder *funder_ptrs[NFUNDERS];
    char *formacode[NCODES], *rome[NCODES], *nsf[NCODES], *rncp[NCODES], *publics[NCODES];
    Ptibus__V1__TrainingOffer offer;
    Ptibus__V1__BeneficiaryEvent event;
    char *recipients[NRECIPIENTS];
    char big[8192];
} fx_t;

static void
fill_person_and_orgs(fx_t *f)
{
    f->person = (Ptibus__V1__PersonRef)PTIBUS__V1__PERSON_REF__INIT;
    f->person.nir = "255081416802538";
    f->person.birth_date = "1955-08-14";
    f->person.last_name = "Lefèvre";
    f->person.first_names = "Marie Anne";
    f->person.sex = PTIBUS__V1__SEX__SEX_FEMALE;
    f->person.payer = PTIBUS__V1__PAYER__PAYER_CAF;
    f->person.payer_office = "551";
    f->person.file_number = "1234567";
    f->person.role = PTIBUS__V1__PERSON_ROLE__PERSON_ROLE_DEM;
    f->agent = (Ptibus__V1__Agent)PTIBUS__V1__AGENT__INIT;
    f->agent.name = "Agent Référent";
    f->agent.email = "referent@francetravail.fr";
    f->ft = (Ptibus__V1__OrgRef)PTIBUS__V1__ORG_REF__INIT;
    f->ft.kind = PTIBUS__V1__ORG_KIND__ORG_KIND_FT;
    f->ft.siret = "73282932000074";
    f->ft.name = "France Travail Verdun";
    f->ft.agent = &f->agent;
    f->ft.partner_id = "pole_emploi";
    f->cd = (Ptibus__V1__OrgRef)PTIBUS__V1__ORG_REF__INIT;
    f->cd.kind = PTIBUS__V1__ORG_KIND__ORG_KIND_CD;
    f->cd.name = "Département de la Meuse";
    f->cd.partner_id = "departement";
    f->provider = (Ptibus__V1__OrgRef)PTIBUS__V1__ORG_REF__INIT;
    f->provider.kind = PTIBUS__V1__ORG_KIND__ORG_KIND_OTHER;
    f->provider.name = "AFPA Meuse";
}

static void
fill_orientations(fx_t *f)
{
    Ptibus__V1__Orientation *o = &f->orientation;
    *o = (Ptibus__V1__Orientation)PTIBUS__V1__ORIENTATION__INIT;
    o->orientation_id = "or-1";
    o->version = 1;
    o->person = &f->person;
    o->category = PTIBUS__V1__ORIENTATION_CATEGORY__ORIENTATION_CATEGORY_PRO;
    o->category_code = "PP";
    o->referent_org = &f->ft;
    o->deciding_org = &f->cd;
    o->status = PTIBUS__V1__ORIENTATION_STATUS__ORIENTATION_STATUS_ORIENTED;
    o->origin = PTIBUS__V1__ORIENTATION_ORIGIN__ORIENTATION_ORIGIN_MANUAL;
    o->proposed_on = "2025-01-05";
    o->decided_on = "2025-01-10";
    o->starts_on = "2025-01-15";
    f->refusal = (Ptibus__V1__OrientationRefusal)PTIBUS__V1__ORIENTATION_REFUSAL__INIT;
    f->refusal.refused_on = "2025-01-20";
    f->refusal.reason = "Souhaite un accompagnement social";
    f->rreq = (Ptibus__V1__ReorientationRequest)PTIBUS__V1__REORIENTATION_REQUEST__INIT;
    f->rreq.request_id = "rr-1";
    f->rreq.orientation_id = "or-1";
    f->rreq.person = &f->person;
    f->rreq.requested_category = PTIBUS__V1__ORIENTATION_CATEGORY__ORIENTATION_CATEGORY_SOCIAL;
    f->rreq.reason = "Freins de santé\nà lever d'abord";
    f->rreq.requesting_org = &f->ft;
    f->rreq.requested_on = "2025-03-01";
    f->rans = (Ptibus__V1__ReorientationAnswer)PTIBUS__V1__REORIENTATION_ANSWER__INIT;
    f->rans.request_id = "rr-1";
    f->rans.decision = PTIBUS__V1__REORIENTATION_DECISION__REORIENTATION_DECISION_ACCEPTED;
    f->rans.decided_on = "2025-03-10";
    f->rans.new_orientation_id = "or-2";
}

static void
fill_referrals(fx_t *f)
{
    f->service = (Ptibus__V1__TargetService)PTIBUS__V1__TARGET_SERVICE__INIT;
    f->service.kind = PTIBUS__V1__SERVICE_KIND__SERVICE_KIND_ACCOMPANIMENT;
    f->service.category = "accompagnement global";
    Ptibus__V1__Referral *r = &f->referral;
    *r = (Ptibus__V1__Referral)PTIBUS__V1__REFERRAL__INIT;
    r->referral_id = "ref-1";
    r->person = &f->person;
    r->prescriber_org = &f->cd;
    r->target_org = &f->ft;
    r->target_service = &f->service;
    r->reason = "Accompagnement\r\nrenforcé\tvers l'emploi";
    r->available_from = "2025-02-01";
    r->contact_preference = PTIBUS__V1__CONTACT_PREFERENCE__CONTACT_PREFERENCE_PHONE;
    f->rstatus = (Ptibus__V1__ReferralStatus)PTIBUS__V1__REFERRAL_STATUS__INIT;
    f->rstatus.referral_id = "ref-1";
    f->rstatus.state = PTIBUS__V1__REFERRAL_STATE__REFERRAL_STATE_ACCEPTED;
    f->rstatus.effective_on = "2025-02-03";
    f->rstatus.reporting_org = &f->ft;
}

static void
fill_sanction(fx_t *f)
{
    Ptibus__V1__Sanction *s = &f->sanction;
    *s = (Ptibus__V1__Sanction)PTIBUS__V1__SANCTION__INIT;
    s->sanction_id = "s-1";
    s->person = &f->person;
    s->household_size = 3;
    s->legal_ground = PTIBUS__V1__LEGAL_GROUND__LEGAL_GROUND_NON_COMPLIANCE;
    s->measure = PTIBUS__V1__SANCTION_MEASURE__SANCTION_MEASURE_SUSPENSION_REMOBILISATION;
    s->stage = 1;
    s->rate_percent = 50;
    s->duration_months = 2;
    s->starts_on = "2025-04-01";
    s->ends_on = "2025-05-31";
    s->proposed_by = &f->ft;
    s->decided_by = &f->cd;
    s->notified_on = "2025-03-01";
    s->observations_deadline = "2025-03-11";
    s->team_opinion = "Avis favorable de l'équipe pluridisciplinaire";
    s->phase = PTIBUS__V1__SANCTION_PHASE__SANCTION_PHASE_PROPOSAL;
}

static void
fill_offer(fx_t *f)
{
    Ptibus__V1__TrainingOffer *t = &f->offer;
    *t = (Ptibus__V1__TrainingOffer)PTIBUS__V1__TRAINING_OFFER__INIT;
    for (size_t i = 0; i < NCODES; i++) {
        f->formacode[i] = "42752";
        f->rome[i] = "G1602";
        f->nsf[i] = "221t";
        f->rncp[i] = "RNCP34567";
        f->publics[i] = "81";
    }
    for (size_t i = 0; i < NFUNDERS; i++) {
        f->funders[i] = (Ptibus__V1__Funder)PTIBUS__V1__FUNDER__INIT;
        f->funders[i].funder_code = i % 2 ? "10" : "2";
        f->funders[i].funded_seats = 12;
        f->funder_ptrs[i] = &f->funders[i];
    }
    t->offer_id = "F0001/A0001/S0001";
    t->operation = PTIBUS__V1__OFFER_OPERATION__OFFER_OPERATION_UPSERT;
    t->formation_number = "F0001";
    t->action_number = "A0001";
    t->session_number = "S0001";
    t->title = "Titre professionnel cuisinier";
    t->objective = "Préparer et cuisiner.\nDresser les plats.";
    t->n_formacode = t->n_rome_codes = t->n_nsf_codes = t->n_rncp_codes = 1;
    t->n_target_public_codes = 1;
    t->formacode = f->formacode;
    t->rome_codes = f->rome;
    t->nsf_codes = f->nsf;
    t->rncp_codes = f->rncp;
    t->target_public_codes = f->publics;
    t->certifying = 1;
    t->provider = &f->provider;
    t->entry_level_code = "0";
    t->exit_level_code = "3";
    t->insee_commune = "55545";
    t->rhythm = "Temps plein";
    t->total_hours = 600;
    t->total_price_eur = "3250.00";
    t->n_funders = 2;
    t->funders = f->funder_ptrs;
    t->starts_on = "2025-09-01";
    t->ends_on = "2026-03-31";
    t->registration_address = "1 rue de la Gare\n55100 Verdun";
    t->recruitment_state = PTIBUS__V1__RECRUITMENT_STATE__RECRUITMENT_STATE_OPEN;
    t->lheo_version = "2.3";
}

static void
fill_event(fx_t *f)
{
    Ptibus__V1__BeneficiaryEvent *e = &f->event;
    *e = (Ptibus__V1__BeneficiaryEvent)PTIBUS__V1__BENEFICIARY_EVENT__INIT;
    e->event_id = "be-1";
    e->kind = PTIBUS__V1__BENEFICIARY_EVENT_KIND__BENEFICIARY_EVENT_KIND_FILE_STATE_CHANGED;
    e->person = &f->person;
    e->file_state = PTIBUS__V1__RSA_FILE_STATE__RSA_FILE_STATE_OPEN_PAID;
    e->file_state_code = "2";
    e->droits_et_devoirs = 1;
    e->reference_date = "2025-01-31";
    e->claim_date = "2024-12-15";
    e->postal_code = "55100";
    e->insee_commune = "55545";
    e->household_size = 2;
}

/* Points the envelope's body at the fixture's message of that case. */
static void
set_body(fx_t *f, Ptibus__V1__Envelope__BodyCase body_case)
{
    Ptibus__V1__Envelope *e = &f->env;
    e->body_case = body_case;
    switch (body_case) {
    case PTIBUS__V1__ENVELOPE__BODY_ORIENTATION:
        e->orientation = &f->orientation;
        break;
    case PTIBUS__V1__ENVELOPE__BODY_REORIENTATION_REQUEST:
        e->reorientation_request = &f->rreq;
        break;
    case PTIBUS__V1__ENVELOPE__BODY_REORIENTATION_ANSWER:
        e->reorientation_answer = &f->rans;
        break;
    case PTIBUS__V1__ENVELOPE__BODY_REFERRAL:
        e->referral = &f->referral;
        break;
    case PTIBUS__V1__ENVELOPE__BODY_REFERRAL_STATUS:
        e->referral_status = &f->rstatus;
        break;
    case PTIBUS__V1__ENVELOPE__BODY_SANCTION:
        e->sanction = &f->sanction;
        break;
    case PTIBUS__V1__ENVELOPE__BODY_TRAINING_OFFER:
        e->training_offer = &f->offer;
        break;
    case PTIBUS__V1__ENVELOPE__BODY_BENEFICIARY_EVENT:
        e->beneficiary_event = &f->event;
        break;
    default:
        break;
    }
}

static int
setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fill_person_and_orgs(f);
    fill_orientations(f);
    fill_referrals(f);
    fill_sanction(f);
    fill_offer(f);
    fill_event(f);
    f->ts = (Google__Protobuf__Timestamp)GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    f->ts.seconds = 1735689600; /* 2025-01-01T00:00:00Z */
    f->ts.nanos = 500;
    for (size_t i = 0; i < NRECIPIENTS; i++)
        f->recipients[i] = "caf";
    f->env = (Ptibus__V1__Envelope)PTIBUS__V1__ENVELOPE__INIT;
    f->env.message_id = "msg-0001";
    f->env.n_recipients = 1;
    f->env.recipients = f->recipients;
    f->env.created_at = &f->ts;
    f->env.territory = "nord_meusien";
    set_body(f, PTIBUS__V1__ENVELOPE__BODY_SANCTION);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    free(*state);
    return 0;
}

/* A string of n copies of unit, in the fixture's scratch buffer. */
static char *
repeat(fx_t *f, const char *unit, size_t n)
{
    size_t u = strlen(unit);
    assert_true(n * u < sizeof f->big);
    for (size_t i = 0; i < n; i++)
        memcpy(f->big + i * u, unit, u);
    f->big[n * u] = '\0';
    return f->big;
}

/* rc must be PT_EINVALID and the error exactly `want` ("path: what"), its path the
 * text before the first ": ". A macro, so that a failure names the caller's line. */
#define EXPECT_INVALID(f, call, want)                                                              \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        assert_string_equal((f)->err.msg, want);                                                   \
        assert_int_equal(rc_, PT_EINVALID);                                                        \
        assert_int_equal((f)->err.code, PT_EINVALID);                                              \
        const char *sep_ = strstr(want, ": ");                                                     \
        assert_non_null(sep_);                                                                     \
        assert_int_equal(strlen((f)->err.path), (size_t)(sep_ - (want)));                          \
        assert_memory_equal((f)->err.path, want, strlen((f)->err.path));                           \
    } while (0)

#define EXPECT_VALID(f, call)                                                                      \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        assert_string_equal((f)->err.msg, "");                                                     \
        assert_int_equal(rc_, 0);                                                                  \
    } while (0)

#define ENV(f) validate_envelope(&(f)->env, &(f)->err)

static const Ptibus__V1__Envelope__BodyCase all_cases[] = {
    PTIBUS__V1__ENVELOPE__BODY_ORIENTATION,
    PTIBUS__V1__ENVELOPE__BODY_REORIENTATION_REQUEST,
    PTIBUS__V1__ENVELOPE__BODY_REORIENTATION_ANSWER,
    PTIBUS__V1__ENVELOPE__BODY_REFERRAL,
    PTIBUS__V1__ENVELOPE__BODY_REFERRAL_STATUS,
    PTIBUS__V1__ENVELOPE__BODY_SANCTION,
    PTIBUS__V1__ENVELOPE__BODY_TRAINING_OFFER,
    PTIBUS__V1__ENVELOPE__BODY_BENEFICIARY_EVENT,
};

static void
test_every_family_valid(void **state)
{
    fx_t *f = *state;
    for (size_t i = 0; i < sizeof all_cases / sizeof all_cases[0]; i++) {
        set_body(f, all_cases[i]);
        EXPECT_VALID(f, ENV(f));
    }
    EXPECT_VALID(f, validate_orientation(&f->orientation, &f->err));
    EXPECT_VALID(f, validate_reorientation_request(&f->rreq, &f->err));
    EXPECT_VALID(f, validate_reorientation_answer(&f->rans, &f->err));
    EXPECT_VALID(f, validate_referral(&f->referral, &f->err));
    EXPECT_VALID(f, validate_referral_status(&f->rstatus, &f->err));
    EXPECT_VALID(f, validate_sanction(&f->sanction, &f->err));
    EXPECT_VALID(f, validate_training_offer(&f->offer, &f->err));
    EXPECT_VALID(f, validate_beneficiary_event(&f->event, &f->err));
    EXPECT_VALID(f, validate_person(&f->person, &f->err));
    EXPECT_VALID(f, validate_org(&f->ft, &f->err));
    EXPECT_INVALID(f, validate_sanction(NULL, &f->err), "sanction: is missing");
    EXPECT_INVALID(f, validate_person(NULL, &f->err), "person: is missing");
    EXPECT_INVALID(f, validate_envelope(NULL, &f->err), "envelope: is missing");
}

/* Each family's errors, through the envelope, start with its body case name. */
static void
test_envelope_paths_name_the_family(void **state)
{
    fx_t *f = *state;
    f->orientation.orientation_id = "";
    f->rreq.request_id = "";
    f->rans.request_id = "";
    f->referral.referral_id = "";
    f->rstatus.referral_id = "";
    f->sanction.sanction_id = "";
    f->offer.offer_id = "";
    f->event.event_id = "";
    static const char *const want[] = {
        "orientation.orientationId: is required",     "reorientationRequest.requestId: is required",
        "reorientationAnswer.requestId: is required", "referral.referralId: is required",
        "referralStatus.referralId: is required",     "sanction.sanctionId: is required",
        "trainingOffer.offerId: is required",         "beneficiaryEvent.eventId: is required",
    };
    for (size_t i = 0; i < sizeof all_cases / sizeof all_cases[0]; i++) {
        set_body(f, all_cases[i]);
        EXPECT_INVALID(f, ENV(f), want[i]);
        char family[64];
        pjson_path_from_proto(codec_envelope_type(&f->env), family, sizeof family);
        assert_memory_equal(f->err.path, family, strlen(family));
    }
}

static void
test_envelope_ids(void **state)
{
    fx_t *f = *state;
    f->env.message_id = "";
    EXPECT_INVALID(f, ENV(f), "messageId: is required");
    f->env.message_id = "msg 1";
    EXPECT_INVALID(f, ENV(f), "messageId: must be printable ASCII without spaces (0x21-0x7e)");
    f->env.message_id = "msg-é";
    EXPECT_INVALID(f, ENV(f), "messageId: must be printable ASCII without spaces (0x21-0x7e)");
    f->env.message_id = repeat(f, "a", 65);
    EXPECT_INVALID(f, ENV(f), "messageId: is 65 characters long, maximum 64");
    f->env.message_id = repeat(f, "~", 64);
    EXPECT_VALID(f, ENV(f));
    f->env.message_id = "m-1";
    f->env.correlation_id = "corr\t1";
    EXPECT_INVALID(f, ENV(f), "correlationId: contains a control character (U+0009)");
    f->env.correlation_id = "corr 1";
    EXPECT_INVALID(f, ENV(f), "correlationId: must be printable ASCII without spaces (0x21-0x7e)");
    f->env.correlation_id = "!\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~";
    EXPECT_VALID(f, ENV(f));
    f->env.sender = "CAF";
    EXPECT_INVALID(f, ENV(f), "sender: must be 1 to 32 of a-z, 0-9 and _");
    f->env.sender = "caf";
    EXPECT_VALID(f, ENV(f));
}

static void
test_envelope_recipients_and_territory(void **state)
{
    fx_t *f = *state;
    f->env.n_recipients = PT_RECIPIENTS_MAX;
    EXPECT_VALID(f, ENV(f));
    f->env.n_recipients = PT_RECIPIENTS_MAX + 1;
    EXPECT_INVALID(f, ENV(f), "recipients: has 33 elements, maximum 32");
    f->env.n_recipients = 3;
    f->recipients[1] = "Pole-Emploi";
    EXPECT_INVALID(f, ENV(f), "recipients[1]: must be 1 to 32 of a-z, 0-9 and _");
    f->recipients[1] = repeat(f, "a", 33);
    EXPECT_INVALID(f, ENV(f), "recipients[1]: is 33 characters long, maximum 32");
    f->recipients[1] = "abcdefghijklmnopqrstuvwxyz_01234";
    f->recipients[2] = "";
    EXPECT_INVALID(f, ENV(f), "recipients[2]: is empty");
    f->recipients[2] = "ml_nord";
    EXPECT_VALID(f, ENV(f));
    f->env.territory = repeat(f, "t", 65);
    EXPECT_INVALID(f, ENV(f), "territory: is 65 characters long, maximum 64");
    f->env.territory = "200066918";
    EXPECT_VALID(f, ENV(f));
}

static void
test_envelope_created_at_and_body(void **state)
{
    fx_t *f = *state;
    f->ts.seconds = 946684799;
    EXPECT_INVALID(f, ENV(f), "createdAt.seconds: 946684799 is before 2000-01-01T00:00:00Z");
    f->ts.seconds = PT_CREATED_AT_MIN;
    EXPECT_VALID(f, ENV(f));
    f->ts.seconds = PT_CREATED_AT_MAX;
    EXPECT_INVALID(f, ENV(f), "createdAt.seconds: 4102444800 is not before 2100-01-01T00:00:00Z");
    f->ts.seconds = PT_CREATED_AT_MAX - 1;
    f->ts.nanos = PT_NANOS_MAX;
    EXPECT_VALID(f, ENV(f));
    f->ts.nanos = -1;
    EXPECT_INVALID(f, ENV(f), "createdAt.nanos: -1 is outside 0..999999999");
    f->ts.nanos = 1000000000;
    EXPECT_INVALID(f, ENV(f), "createdAt.nanos: 1000000000 is outside 0..999999999");
    f->ts.nanos = 0;
    f->env.created_at = NULL;
    EXPECT_INVALID(f, ENV(f), "createdAt: is required");
    f->env.created_at = &f->ts;
    f->env.body_case = PTIBUS__V1__ENVELOPE__BODY__NOT_SET;
    EXPECT_INVALID(f, ENV(f),
                   "body: is required: one of orientation, reorientationRequest, "
                   "reorientationAnswer, referral, referralStatus, sanction, trainingOffer, "
                   "beneficiaryEvent, followUpEvent");
    f->env.body_case = PTIBUS__V1__ENVELOPE__BODY_REFERRAL;
    f->env.referral = NULL;
    EXPECT_INVALID(f, ENV(f),
                   "body: is required: one of orientation, reorientationRequest, "
                   "reorientationAnswer, referral, referralStatus, sanction, trainingOffer, "
                   "beneficiaryEvent, followUpEvent");
}

static void
test_text_encoding(void **state)
{
    fx_t *f = *state;
    f->env.territory = "\xc3\x28";
    EXPECT_INVALID(f, ENV(f), "territory: is not valid UTF-8");
    f->env.territory = "\xc0\xaf"; /* overlong "/" */
    EXPECT_INVALID(f, ENV(f), "territory: is not valid UTF-8");
    f->env.territory = "\xed\xa0\x80"; /* a surrogate */
    EXPECT_INVALID(f, ENV(f), "territory: is not valid UTF-8");
    f->env.territory = "\xf4\x90\x80\x80"; /* above U+10FFFF */
    EXPECT_INVALID(f, ENV(f), "territory: is not valid UTF-8");
    f->env.territory = "abc\xe2\x82"; /* truncated */
    EXPECT_INVALID(f, ENV(f), "territory: is not valid UTF-8");
    f->env.territory = "nord\xc2\x85meusien"; /* C1 control NEL */
    EXPECT_INVALID(f, ENV(f), "territory: contains a control character (U+0085)");
    f->env.territory = "nord\x7fmeusien";
    EXPECT_INVALID(f, ENV(f), "territory: contains a control character (U+007F)");
    f->env.territory = "Côtes de Meuse \xf0\x9f\x8c\xb3";
    EXPECT_VALID(f, ENV(f));
    /* Single-line text refuses line breaks that multi-line text accepts. */
    f->person.last_name = "Le\nFèvre";
    EXPECT_INVALID(f, ENV(f), "sanction.person.lastName: contains a control character (U+000A)");
    f->person.last_name = "Lefèvre";
    f->sanction.team_opinion = "Ligne 1\nLigne 2\r\n\tfin";
    EXPECT_VALID(f, ENV(f));
    f->sanction.team_opinion = "bip\a";
    EXPECT_INVALID(f, ENV(f), "sanction.teamOpinion: contains a control character (U+0007)");
}

static void
test_person_identifiers(void **state)
{
    fx_t *f = *state;
    Ptibus__V1__PersonRef *p = &f->person;
    p->nir = "";
    EXPECT_VALID(f, validate_person(p, &f->err)); /* payer + file_number */
    p->payer = PTIBUS__V1__PAYER__PAYER_UNSPECIFIED;
    EXPECT_INVALID(f, validate_person(p, &f->err), "person.payer: is required with fileNumber");
    p->file_number = "";
    EXPECT_INVALID(f, validate_person(p, &f->err),
                   "person: needs an identifier: nir, payer and fileNumber, franceTravailId, "
                   "franceTravailUid or departementId");
    p->france_travail_id = "1234567A";
    EXPECT_VALID(f, validate_person(p, &f->err));
    p->france_travail_id = "";
    p->france_travail_uid = "71288a46-3c4d-4372-9298-c32936d7e76d";
    EXPECT_VALID(f, validate_person(p, &f->err));
    p->france_travail_uid = "";
    p->departement_id = "CD55-000123";
    EXPECT_VALID(f, validate_person(p, &f->err));
    p->departement_id = "";
    p->nir = "2550814168025";
    EXPECT_VALID(f, validate_person(p, &f->err));
    p->nir = "255081416802537";
    EXPECT_INVALID(f, validate_person(p, &f->err),
                   "person.nir: key 37 does not match, expected 38");
    p->nir = "2550814168025380";
    EXPECT_INVALID(f, validate_person(p, &f->err), "person.nir: is 16 characters long, maximum 15");
    p->nir = "2 55 08 14 168 025";
    EXPECT_INVALID(f, validate_person(p, &f->err), "person.nir: is 18 characters long, maximum 15");
    p->nir = "25508141680";
    EXPECT_INVALID(f, validate_person(p, &f->err),
                   "person.nir: has 11 characters, expected 13 or 15");
    p->nir = "255081416802538";
    p->sex = PTIBUS__V1__SEX__SEX_MALE;
    EXPECT_INVALID(f, validate_person(p, &f->err),
                   "person.sex: does not match the nir's sex digit");
    p->sex = PTIBUS__V1__SEX__SEX_UNSPECIFIED;
    EXPECT_VALID(f, validate_person(p, &f->err));
    /* Through a family, the same rule reports the full path. */
    p->nir = "255081416802537";
    EXPECT_INVALID(f, ENV(f), "sanction.person.nir: key 37 does not match, expected 38");
}

static void
test_person_birth_date(void **state)
{
    fx_t *f = *state;
    Ptibus__V1__PersonRef *p = &f->person;
    static const struct {
        const char *date, *want;
    } cases[] = {
        {"2023-02-29", "person.birthDate: is not a calendar date"},
        {"1900-02-29", "person.birthDate: is not a calendar date"},
        {"2024-04-31", "person.birthDate: is not a calendar date"},
        {"2024-13-01", "person.birthDate: is not a calendar date"},
        {"2024-00-10", "person.birthDate: is not a calendar date"},
        {"2024-01-00", "person.birthDate: is not a calendar date"},
        {"24-01-01", "person.birthDate: must be a date YYYY-MM-DD"},
        {"2024/01/01", "person.birthDate: must be a date YYYY-MM-DD"},
        {"2024-1-01", "person.birthDate: must be a date YYYY-MM-DD"},
        {"1850-01-01", "person.birthDate: year must be between 1900 and 2199"},
        {"2199-12-31", "person.birthDate: is in the future"},
        {"20240101", "person.birthDate: must be a date YYYY-MM-DD"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        p->birth_date = (char *)cases[i].date;
        EXPECT_INVALID(f, validate_person(p, &f->err), cases[i].want);
    }
    static const char *const good[] = {"2024-02-29", "2000-02-29", "1900-01-01", "1999-12-31"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        p->birth_date = (char *)good[i];
        EXPECT_VALID(f, validate_person(p, &f->err));
    }
    assert_true(validate_is_date("2096-02-29"));
    assert_false(validate_is_date("2100-02-29"));
    assert_false(validate_is_date(NULL));
}

static void
test_person_fields(void **state)
{
    fx_t *f = *state;
    Ptibus__V1__PersonRef *p = &f->person;
    p->last_name = repeat(f, "é", 64); /* 128 bytes, 64 characters */
    EXPECT_VALID(f, validate_person(p, &f->err));
    p->last_name = repeat(f, "a", 65);
    EXPECT_INVALID(f, validate_person(p, &f->err),
                   "person.lastName: is 65 characters long, maximum 64");
    p->last_name = "Martin";
    p->birth_name = repeat(f, "b", 65);
    EXPECT_INVALID(f, validate_person(p, &f->err),
                   "person.birthName: is 65 characters long, maximum 64");
    p->birth_name = "";
    p->first_names = repeat(f, "c", 129);
    EXPECT_INVALID(f, validate_person(p, &f->err),
                   "person.firstNames: is 129 characters long, maximum 128");
    p->first_names = repeat(f, "c", 128);
    EXPECT_VALID(f, validate_person(p, &f->err));
    p->payer_office = "52";
    EXPECT_INVALID(f, validate_person(p, &f->err), "person.payerOffice: must be exactly 3 digits");
    p->payer_office = "52A";
    EXPECT_INVALID(f, validate_person(p, &f->err), "person.payerOffice: must be exactly 3 digits");
    p->payer_office = "5210";
    EXPECT_INVALID(f, validate_person(p, &f->err),
                   "person.payerOffice: is 4 characters long, maximum 3");
    p->payer_office = "521";
    p->file_number = "1234567890123456";
    EXPECT_INVALID(f, validate_person(p, &f->err),
                   "person.fileNumber: is 16 characters long, maximum 15");
    p->file_number = "12A45";
    EXPECT_INVALID(f, validate_person(p, &f->err), "person.fileNumber: must be digits only");
    p->file_number = "123456789012345";
    p->france_travail_id = "123456789012";
    EXPECT_INVALID(f, validate_person(p, &f->err),
                   "person.franceTravailId: is 12 characters long, maximum 11");
    p->france_travail_id = "1234-567";
    EXPECT_INVALID(f, validate_person(p, &f->err),
                   "person.franceTravailId: must be letters and digits only");
    p->france_travail_id = "1234567890A";
    p->departement_id = repeat(f, "d", 65);
    EXPECT_INVALID(f, validate_person(p, &f->err),
                   "person.departementId: is 65 characters long, maximum 64");
    p->departement_id = "";
    EXPECT_VALID(f, validate_person(p, &f->err));
}

static void
test_person_enums(void **state)
{
    fx_t *f = *state;
    Ptibus__V1__PersonRef *p = &f->person;
    p->sex = (Ptibus__V1__Sex)3;
    EXPECT_INVALID(
        f, validate_person(p, &f->err),
        "person.sex: 3 is not a defined Sex value (expected one of SEX_MALE, SEX_FEMALE)");
    p->sex = PTIBUS__V1__SEX__SEX_FEMALE;
    p->payer = (Ptibus__V1__Payer)-1;
    EXPECT_INVALID(
        f, validate_person(p, &f->err),
        "person.payer: -1 is not a defined Payer value (expected one of PAYER_CAF, PAYER_MSA)");
    p->payer = PTIBUS__V1__PAYER__PAYER_MSA;
    p->role = (Ptibus__V1__PersonRole)5;
    EXPECT_INVALID(f, validate_person(p, &f->err),
                   "person.role: 5 is not a defined PersonRole value (expected one of "
                   "PERSON_ROLE_DEM, PERSON_ROLE_CJT, PERSON_ROLE_ENF, PERSON_ROLE_AUT)");
    p->role = PTIBUS__V1__PERSON_ROLE__PERSON_ROLE_AUT;
    EXPECT_VALID(f, validate_person(p, &f->err));
}

static void
test_org(void **state)
{
    fx_t *f = *state;
    Ptibus__V1__OrgRef *o = &f->ft;
    o->kind = PTIBUS__V1__ORG_KIND__ORG_KIND_UNSPECIFIED;
    EXPECT_INVALID(f, validate_org(o, &f->err), "org.kind: is required");
    o->kind = (Ptibus__V1__OrgKind)12;
    EXPECT_INVALID(f, validate_org(o, &f->err),
                   "org.kind: 12 is not a defined OrgKind value (expected one of ORG_KIND_FT, "
                   "ORG_KIND_ML, ORG_KIND_CD, ORG_KIND_CAF, ORG_KIND_MSA, ORG_KIND_CAP_EMPLOI, "
                   "ORG_KIND_PLIE, ORG_KIND_CCAS, ORG_KIND_SIAE, ORG_KIND_REGION, ORG_KIND_OTHER)");
    o->kind = PTIBUS__V1__ORG_KIND__ORG_KIND_OTHER;
    o->siret = "7328293200007";
    EXPECT_INVALID(f, validate_org(o, &f->err), "org.siret: must be exactly 14 digits");
    o->siret = "7328293200007A";
    EXPECT_INVALID(f, validate_org(o, &f->err), "org.siret: must be exactly 14 digits");
    o->siret = "73282932000075";
    EXPECT_INVALID(f, validate_org(o, &f->err), "org.siret: fails the SIRET check digit (Luhn)");
    o->siret = "35600000009090"; /* La Poste, digit sum not a multiple of 5 */
    EXPECT_INVALID(f, validate_org(o, &f->err), "org.siret: fails the SIRET check digit (Luhn)");
    static const char *const good[] = {"73282932000074", "44306184100047", "35600000000048",
                                       "35600000009075"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        o->siret = (char *)good[i];
        EXPECT_VALID(f, validate_org(o, &f->err));
    }
    o->name = repeat(f, "n", 129);
    EXPECT_INVALID(f, validate_org(o, &f->err), "org.name: is 129 characters long, maximum 128");
    o->name = "Mission Locale";
    o->partner_id = "ml nord";
    EXPECT_INVALID(f, validate_org(o, &f->err), "org.partnerId: must be 1 to 32 of a-z, 0-9 and _");
    o->partner_id = "ml_nord";
    EXPECT_VALID(f, validate_org(o, &f->err));
}

static void
test_org_agent(void **state)
{
    fx_t *f = *state;
    static const char *const bad[] = {"nobody",  "a@b",     "@b.fr",   "a@@b.fr",  "a b@c.fr",
                                      "a@.b.fr", "a@b.fr.", "a@b..fr", "a@b_c.fr", "a@b@c.fr"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f->agent.email = (char *)bad[i];
        EXPECT_INVALID(f, validate_org(&f->ft, &f->err),
                       "org.agent.email: is not a plausible e-mail address");
    }
    static const char *const good[] = {"a@b.fr", "prenom.nom+rsa@meuse-insertion.gouv.fr"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        f->agent.email = (char *)good[i];
        EXPECT_VALID(f, validate_org(&f->ft, &f->err));
    }
    f->agent.name = repeat(f, "x", 129);
    EXPECT_INVALID(f, validate_org(&f->ft, &f->err),
                   "org.agent.name: is 129 characters long, maximum 128");
    /* Nested in a family. */
    f->agent.name = "";
    f->agent.email = "x";
    EXPECT_INVALID(f, ENV(f), "sanction.proposedBy.agent.email: is not a plausible e-mail address");
}

#define SAN(f) validate_sanction(&(f)->sanction, &(f)->err)

static void
test_sanction_amounts(void **state)
{
    fx_t *f = *state;
    Ptibus__V1__Sanction *s = &f->sanction;
    s->rate_percent = 120;
    EXPECT_INVALID(f, SAN(f), "sanction.ratePercent: 120 is above 100");
    EXPECT_INVALID(f, ENV(f), "sanction.ratePercent: 120 is above 100");
    assert_string_equal(f->err.path, "sanction.ratePercent");
    s->rate_percent = 29;
    EXPECT_INVALID(f, SAN(f), "sanction.ratePercent: 29 is below 30");
    s->rate_percent = 30;
    EXPECT_VALID(f, SAN(f));
    s->rate_percent = 100;
    s->measure = PTIBUS__V1__SANCTION_MEASURE__SANCTION_MEASURE_SUPPRESSION;
    EXPECT_VALID(f, SAN(f));
    s->rate_percent = 0;
    EXPECT_INVALID(f, SAN(f), "sanction.ratePercent: 0 is below 30");
    s->rate_percent = 100;
    s->duration_months = 5;
    EXPECT_INVALID(f, SAN(f), "sanction.durationMonths: 5 is above 4");
    s->duration_months = 0;
    EXPECT_INVALID(f, SAN(f), "sanction.durationMonths: 0 is below 1");
    s->duration_months = 4;
    EXPECT_VALID(f, SAN(f));
    /* A lifted or cancelled measure needs no rate; one it repeats stays in bounds. */
    s->measure = PTIBUS__V1__SANCTION_MEASURE__SANCTION_MEASURE_LIFTED;
    s->rate_percent = 0;
    s->duration_months = 0;
    EXPECT_VALID(f, SAN(f));
    s->measure = PTIBUS__V1__SANCTION_MEASURE__SANCTION_MEASURE_CANCELLED;
    s->rate_percent = 150;
    EXPECT_INVALID(f, SAN(f), "sanction.ratePercent: 150 is above 100");
    s->rate_percent = 0;
    s->duration_months = 6;
    EXPECT_INVALID(f, SAN(f), "sanction.durationMonths: 6 is above 4");
    s->duration_months = 0;
    s->stage = 0;
    EXPECT_INVALID(f, SAN(f), "sanction.stage: 0 is below 1");
    s->stage = 11;
    EXPECT_INVALID(f, SAN(f), "sanction.stage: 11 is above 10");
    s->stage = 2;
    s->household_size = 31;
    EXPECT_INVALID(f, SAN(f), "sanction.householdSize: 31 is above 30");
    s->household_size = 0;
    EXPECT_VALID(f, SAN(f));
}

static void
test_sanction_required(void **state)
{
    fx_t *f = *state;
    Ptibus__V1__Sanction *s = &f->sanction;
    s->sanction_id = "";
    EXPECT_INVALID(f, SAN(f), "sanction.sanctionId: is required");
    s->sanction_id = "s-1";
    s->person = NULL;
    EXPECT_INVALID(f, SAN(f), "sanction.person: is required");
    s->person = &f->person;
    s->legal_ground = 0;
    EXPECT_INVALID(f, SAN(f), "sanction.legalGround: is required");
    s->legal_ground = (Ptibus__V1__LegalGround)6;
    EXPECT_INVALID(
        f, SAN(f),
        "sanction.legalGround: 6 is not a defined LegalGround value (expected one of "
        "LEGAL_GROUND_REFUSAL_OF_COMMITMENT_CONTRACT, LEGAL_GROUND_NON_COMPLIANCE, "
        "LEGAL_GROUND_PERSISTENCE, LEGAL_GROUND_REPETITION, LEGAL_GROUND_REFUSAL_OF_CONTROL)");
    s->legal_ground = PTIBUS__V1__LEGAL_GROUND__LEGAL_GROUND_REFUSAL_OF_CONTROL;
    s->measure = 0;
    EXPECT_INVALID(f, SAN(f), "sanction.measure: is required");
    s->measure = (Ptibus__V1__SanctionMeasure)99;
    EXPECT_INVALID(f, SAN(f),
                   "sanction.measure: 99 is not a defined SanctionMeasure value (expected one of "
                   "SANCTION_MEASURE_SUSPENSION_REMOBILISATION, SANCTION_MEASURE_SUPPRESSION, "
                   "SANCTION_MEASURE_LIFTED, SANCTION_MEASURE_CANCELLED)");
    s->measure = PTIBUS__V1__SANCTION_MEASURE__SANCTION_MEASURE_SUPPRESSION;
    s->phase = 0;
    EXPECT_INVALID(f, SAN(f), "sanction.phase: is required");
    s->phase = PTIBUS__V1__SANCTION_PHASE__SANCTION_PHASE_PROPOSAL;
    f->ft.kind = 0;
    EXPECT_INVALID(f, SAN(f), "sanction.proposedBy.kind: is required");
    f->ft.kind = PTIBUS__V1__ORG_KIND__ORG_KIND_FT;
    s->team_opinion = repeat(f, "o", PT_FREE_TEXT_MAX + 1);
    EXPECT_INVALID(f, SAN(f), "sanction.teamOpinion: is 2001 characters long, maximum 2000");
}

static void
test_sanction_dates_and_payer(void **state)
{
    fx_t *f = *state;
    Ptibus__V1__Sanction *s = &f->sanction;
    s->starts_on = "2025-02-30";
    EXPECT_INVALID(f, SAN(f), "sanction.startsOn: is not a calendar date");
    s->starts_on = "2025-06-01";
    EXPECT_INVALID(f, SAN(f), "sanction.endsOn: is before startsOn");
    s->ends_on = "2025-06-01";
    EXPECT_VALID(f, SAN(f));
    s->ends_on = "";
    EXPECT_VALID(f, SAN(f));
    s->observations_deadline = "2025-02-28";
    EXPECT_INVALID(f, SAN(f), "sanction.observationsDeadline: is before notifiedOn");
    s->observations_deadline = "2025-03-11";
    s->notified_on = "2025-13-01";
    EXPECT_INVALID(f, SAN(f), "sanction.notifiedOn: is not a calendar date");
    s->notified_on = "2025-03-01";
    /* A decision is routed by the payer: CAF or MSA, nothing else. */
    s->phase = PTIBUS__V1__SANCTION_PHASE__SANCTION_PHASE_DECISION;
    EXPECT_VALID(f, SAN(f));
    f->person.payer = PTIBUS__V1__PAYER__PAYER_MSA;
    EXPECT_VALID(f, SAN(f));
    f->person.payer = PTIBUS__V1__PAYER__PAYER_UNSPECIFIED;
    f->person.file_number = "";
    EXPECT_INVALID(f, SAN(f),
                   "sanction.person.payer: must be CAF or MSA for a DECISION (it routes the "
                   "sanction)");
    EXPECT_INVALID(f, ENV(f),
                   "sanction.person.payer: must be CAF or MSA for a DECISION (it routes the "
                   "sanction)");
    s->phase = PTIBUS__V1__SANCTION_PHASE__SANCTION_PHASE_PROPOSAL;
    EXPECT_VALID(f, SAN(f));
}

#define ORI(f) validate_orientation(&(f)->orientation, &(f)->err)

static void
test_orientation(void **state)
{
    fx_t *f = *state;
    Ptibus__V1__Orientation *o = &f->orientation;
    o->version = 0;
    EXPECT_INVALID(f, ORI(f), "orientation.version: 0 is below 1");
    o->version = 3;
    o->person = NULL;
    EXPECT_INVALID(f, ORI(f), "orientation.person: is required");
    o->person = &f->person;
    o->status = 0;
    EXPECT_INVALID(f, ORI(f), "orientation.status: is required");
    o->status = PTIBUS__V1__ORIENTATION_STATUS__ORIENTATION_STATUS_ORIENTED;
    o->category = 0;
    EXPECT_INVALID(f, ORI(f), "orientation.category: is required when status is ORIENTED");
    o->category = (Ptibus__V1__OrientationCategory)4;
    EXPECT_INVALID(
        f, ORI(f),
        "orientation.category: 4 is not a defined OrientationCategory value (expected one of "
        "ORIENTATION_CATEGORY_SOCIAL, ORIENTATION_CATEGORY_PRO, ORIENTATION_CATEGORY_SOCIO_PRO)");
    o->category = PTIBUS__V1__ORIENTATION_CATEGORY__ORIENTATION_CATEGORY_SOCIO_PRO;
    o->referent_org = NULL;
    EXPECT_INVALID(f, ORI(f), "orientation.referentOrg: is required when status is ORIENTED");
    o->status = PTIBUS__V1__ORIENTATION_STATUS__ORIENTATION_STATUS_PENDING;
    o->category = 0;
    EXPECT_VALID(f, ORI(f));
    o->origin = (Ptibus__V1__OrientationOrigin)5;
    EXPECT_INVALID(f, ORI(f),
                   "orientation.origin: 5 is not a defined OrientationOrigin value (expected one "
                   "of ORIENTATION_ORIGIN_MANUAL, ORIENTATION_ORIGIN_COHORT, "
                   "ORIENTATION_ORIGIN_REORIENTATION, ORIENTATION_ORIGIN_MOVE)");
    o->origin = PTIBUS__V1__ORIENTATION_ORIGIN__ORIENTATION_ORIGIN_MOVE;
    o->decided_on = "2025-01-04";
    EXPECT_INVALID(f, ORI(f), "orientation.decidedOn: is before proposedOn");
    o->decided_on = "2025-01-05";
    o->ends_on = "2025-01-14";
    EXPECT_INVALID(f, ORI(f), "orientation.endsOn: is before startsOn");
    o->ends_on = "2026-01-14";
    o->proposed_on = "2025-1-5";
    EXPECT_INVALID(f, ORI(f), "orientation.proposedOn: must be a date YYYY-MM-DD");
    o->proposed_on = "";
    EXPECT_VALID(f, ORI(f));
    o->refusal = &f->refusal;
    EXPECT_VALID(f, ORI(f));
    f->refusal.refused_on = "";
    EXPECT_INVALID(f, ORI(f), "orientation.refusal.refusedOn: is required");
    f->refusal.refused_on = "2025/01/20";
    EXPECT_INVALID(f, ORI(f), "orientation.refusal.refusedOn: must be a date YYYY-MM-DD");
    f->refusal.refused_on = "2025-01-20";
    f->refusal.reason = repeat(f, "r", 2001);
    EXPECT_INVALID(f, ORI(f), "orientation.refusal.reason: is 2001 characters long, maximum 2000");
    f->refusal.reason = "";
    o->category_code = repeat(f, "c", 17);
    EXPECT_INVALID(f, ORI(f), "orientation.categoryCode: is 17 characters long, maximum 16");
    o->category_code = "AS";
    o->orientation_id = repeat(f, "i", 65);
    EXPECT_INVALID(f, ORI(f), "orientation.orientationId: is 65 characters long, maximum 64");
    o->orientation_id = "or-9";
    f->person.birth_date = "1955-02-29";
    EXPECT_INVALID(f, ORI(f), "orientation.person.birthDate: is not a calendar date");
}

static void
test_reorientation(void **state)
{
    fx_t *f = *state;
    Ptibus__V1__ReorientationRequest *q = &f->rreq;
    q->orientation_id = "";
    EXPECT_INVALID(f, validate_reorientation_request(q, &f->err),
                   "reorientationRequest.orientationId: is required");
    q->orientation_id = "or-1";
    q->person = NULL;
    EXPECT_INVALID(f, validate_reorientation_request(q, &f->err),
                   "reorientationRequest.person: is required");
    q->person = &f->person;
    q->requested_category = 0;
    EXPECT_INVALID(f, validate_reorientation_request(q, &f->err),
                   "reorientationRequest.requestedCategory: is required");
    q->requested_category = PTIBUS__V1__ORIENTATION_CATEGORY__ORIENTATION_CATEGORY_SOCIAL;
    q->requested_on = "2025-02-29";
    EXPECT_INVALID(f, validate_reorientation_request(q, &f->err),
                   "reorientationRequest.requestedOn: is not a calendar date");
    q->requested_on = "2024-02-29";
    q->reason = repeat(f, "\n", 2001);
    EXPECT_INVALID(f, validate_reorientation_request(q, &f->err),
                   "reorientationRequest.reason: is 2001 characters long, maximum 2000");
    q->reason = "";
    EXPECT_VALID(f, validate_reorientation_request(q, &f->err));

    Ptibus__V1__ReorientationAnswer *a = &f->rans;
    a->decision = 0;
    EXPECT_INVALID(f, validate_reorientation_answer(a, &f->err),
                   "reorientationAnswer.decision: is required");
    a->decision = (Ptibus__V1__ReorientationDecision)3;
    EXPECT_INVALID(
        f, validate_reorientation_answer(a, &f->err),
        "reorientationAnswer.decision: 3 is not a defined ReorientationDecision value (expected "
        "one of REORIENTATION_DECISION_ACCEPTED, REORIENTATION_DECISION_DENIED)");
    a->decision = PTIBUS__V1__REORIENTATION_DECISION__REORIENTATION_DECISION_DENIED;
    a->decided_on = "10/03/2025";
    EXPECT_INVALID(f, validate_reorientation_answer(a, &f->err),
                   "reorientationAnswer.decidedOn: must be a date YYYY-MM-DD");
    a->decided_on = "2025-03-10";
    a->new_orientation_id = repeat(f, "n", 65);
    EXPECT_INVALID(f, validate_reorientation_answer(a, &f->err),
                   "reorientationAnswer.newOrientationId: is 65 characters long, maximum 64");
    a->new_orientation_id = "";
    EXPECT_VALID(f, validate_reorientation_answer(a, &f->err));
}

#define REF(f) validate_referral(&(f)->referral, &(f)->err)

static void
test_referral(void **state)
{
    fx_t *f = *state;
    Ptibus__V1__Referral *r = &f->referral;
    r->person = NULL;
    EXPECT_INVALID(f, REF(f), "referral.person: is required");
    r->person = &f->person;
    /* Paths and names in a message are the JSON names the partner wrote. */
    r->available_from = "2024-02-30";
    EXPECT_INVALID(f, REF(f), "referral.availableFrom: is not a calendar date");
    assert_string_equal(f->err.path, "referral.availableFrom");
    r->available_from = "";
    r->prescriber_org = NULL;
    EXPECT_INVALID(f, REF(f), "referral.prescriberOrg: is required");
    r->prescriber_org = &f->cd;
    r->target_org = NULL;
    EXPECT_INVALID(f, REF(f), "referral.targetOrg: is required");
    r->target_org = &f->provider;
    r->target_service = NULL;
    EXPECT_INVALID(f, REF(f), "referral.targetService: is required");
    r->target_service = &f->service;
    EXPECT_VALID(f, REF(f)); /* provider: kind and name, no partner id */
    f->provider.name = "";
    EXPECT_INVALID(f, REF(f), "referral.targetOrg: needs a partnerId or a name");
    f->provider.partner_id = "siae_verdun";
    EXPECT_VALID(f, REF(f));
    f->provider.kind = 0;
    EXPECT_INVALID(f, REF(f), "referral.targetOrg.kind: is required");
    f->provider.kind = PTIBUS__V1__ORG_KIND__ORG_KIND_SIAE;
    f->service.kind = 0;
    EXPECT_INVALID(f, REF(f), "referral.targetService.kind: is required");
    f->service.kind = PTIBUS__V1__SERVICE_KIND__SERVICE_KIND_TRAINING;
    EXPECT_INVALID(f, REF(f),
                   "referral.targetService.trainingActionRef: is required when kind is "
                   "TRAINING");
    f->service.training_action_ref = "F0001/A0001/S0001";
    EXPECT_VALID(f, REF(f));
    r->reason = repeat(f, "é", 2001);
    EXPECT_INVALID(f, REF(f), "referral.reason: is 2001 characters long, maximum 2000");
    r->reason = repeat(f, "é\n", 1000);
    EXPECT_VALID(f, REF(f));
    r->available_from = "2025-02-31";
    EXPECT_INVALID(f, REF(f), "referral.availableFrom: is not a calendar date");
    r->available_from = "";
    r->contact_preference = (Ptibus__V1__ContactPreference)9;
    EXPECT_INVALID(f, REF(f),
                   "referral.contactPreference: 9 is not a defined ContactPreference value "
                   "(expected one of CONTACT_PREFERENCE_PHONE, CONTACT_PREFERENCE_EMAIL, "
                   "CONTACT_PREFERENCE_MAIL, CONTACT_PREFERENCE_IN_PERSON)");
}

static void
test_referral_status(void **state)
{
    fx_t *f = *state;
    Ptibus__V1__ReferralStatus *s = &f->rstatus;
    s->state = 0;
    EXPECT_INVALID(f, validate_referral_status(s, &f->err), "referralStatus.state: is required");
    s->state = PTIBUS__V1__REFERRAL_STATE__REFERRAL_STATE_REFUSED;
    EXPECT_INVALID(f, validate_referral_status(s, &f->err),
                   "referralStatus.reason: is required when state is REFUSED");
    s->reason = "Places complètes";
    EXPECT_VALID(f, validate_referral_status(s, &f->err));
    s->effective_on = "2025-02-3";
    EXPECT_INVALID(f, validate_referral_status(s, &f->err),
                   "referralStatus.effectiveOn: must be a date YYYY-MM-DD");
    s->effective_on = "";
    s->state = (Ptibus__V1__ReferralState)8;
    EXPECT_INVALID(f, validate_referral_status(s, &f->err),
                   "referralStatus.state: 8 is not a defined ReferralState value (expected one of "
                   "REFERRAL_STATE_RECEIVED, REFERRAL_STATE_ACCEPTED, REFERRAL_STATE_REFUSED, "
                   "REFERRAL_STATE_STARTED, REFERRAL_STATE_COMPLETED, REFERRAL_STATE_ABANDONED, "
                   "REFERRAL_STATE_EXPIRED)");
    s->state = PTIBUS__V1__REFERRAL_STATE__REFERRAL_STATE_EXPIRED;
    s->reason = "";
    EXPECT_VALID(f, validate_referral_status(s, &f->err));
}

#define OFFER(f) validate_training_offer(&(f)->offer, &(f)->err)

static void
test_training_offer_required(void **state)
{
    fx_t *f = *state;
    Ptibus__V1__TrainingOffer *t = &f->offer;
    t->operation = 0;
    EXPECT_INVALID(f, OFFER(f), "trainingOffer.operation: is required");
    t->operation = PTIBUS__V1__OFFER_OPERATION__OFFER_OPERATION_UPSERT;
    t->title = "";
    EXPECT_INVALID(f, OFFER(f), "trainingOffer.title: is required for an UPSERT");
    t->title = repeat(f, "t", 256);
    EXPECT_INVALID(f, OFFER(f), "trainingOffer.title: is 256 characters long, maximum 255");
    t->title = "Cuisinier";
    t->starts_on = "";
    EXPECT_INVALID(f, OFFER(f), "trainingOffer.startsOn: is required for an UPSERT");
    t->starts_on = "2025-09-01";
    t->ends_on = "";
    EXPECT_INVALID(f, OFFER(f), "trainingOffer.endsOn: is required for an UPSERT");
    t->ends_on = "2025-08-31";
    EXPECT_INVALID(f, OFFER(f), "trainingOffer.endsOn: is before startsOn");
    t->ends_on = "2025-09-01";
    t->recruitment_state = 0;
    EXPECT_INVALID(f, OFFER(f), "trainingOffer.recruitmentState: is required for an UPSERT");
    t->recruitment_state = (Ptibus__V1__RecruitmentState)4;
    EXPECT_INVALID(
        f, OFFER(f),
        "trainingOffer.recruitmentState: 4 is not a defined RecruitmentState value (expected one "
        "of RECRUITMENT_STATE_OPEN, RECRUITMENT_STATE_CLOSED, RECRUITMENT_STATE_SUSPENDED)");
    /* A withdrawal needs only its id. */
    Ptibus__V1__TrainingOffer w = PTIBUS__V1__TRAINING_OFFER__INIT;
    w.offer_id = "F0001/A0001/S0001";
    w.operation = PTIBUS__V1__OFFER_OPERATION__OFFER_OPERATION_WITHDRAW;
    EXPECT_VALID(f, validate_training_offer(&w, &f->err));
    w.operation = PTIBUS__V1__OFFER_OPERATION__OFFER_OPERATION_UPSERT;
    EXPECT_INVALID(f, validate_training_offer(&w, &f->err),
                   "trainingOffer.title: is required for an UPSERT");
    t->recruitment_state = PTIBUS__V1__RECRUITMENT_STATE__RECRUITMENT_STATE_SUSPENDED;
    t->total_hours = PT_TOTAL_HOURS_MAX + 1;
    EXPECT_INVALID(f, OFFER(f), "trainingOffer.totalHours: 10001 is above 10000");
    t->total_hours = 35;
    t->offer_id = repeat(f, "o", 129);
    EXPECT_INVALID(f, OFFER(f), "trainingOffer.offerId: is 129 characters long, maximum 128");
}

/* One code list and one bad value: the element's path and the list's message. */
static void
expect_code(fx_t *f, char **list, const char *value, const char *want)
{
    list[1] = (char *)value;
    if (want == NULL)
        EXPECT_VALID(f, OFFER(f));
    else
        EXPECT_INVALID(f, OFFER(f), want);
    list[1] = list[0];
}

static void
test_training_offer_codes(void **state)
{
    fx_t *f = *state;
    Ptibus__V1__TrainingOffer *t = &f->offer;
    t->n_formacode = t->n_rome_codes = t->n_nsf_codes = t->n_rncp_codes = 2;
    expect_code(f, f->formacode, "123456",
                "trainingOffer.formacode[1]: is 6 characters long, maximum 5");
    expect_code(f, f->formacode, "12a", "trainingOffer.formacode[1]: must be digits only");
    expect_code(f, f->formacode, "", "trainingOffer.formacode[1]: is empty");
    expect_code(f, f->formacode, "31", NULL);
    expect_code(f, f->rome, "m1607",
                "trainingOffer.romeCodes[1]: must be a capital letter and 4 digits, like M1607");
    expect_code(f, f->rome, "M160",
                "trainingOffer.romeCodes[1]: must be a capital letter and 4 digits, like M1607");
    expect_code(f, f->rome, "11607",
                "trainingOffer.romeCodes[1]: must be a capital letter and 4 digits, like M1607");
    expect_code(f, f->rome, "M1607", NULL);
    static const char nsf_msg[] =
        "trainingOffer.nsfCodes[1]: must be 1 to 3 digits and an optional letter, like 330t";
    expect_code(f, f->nsf, "3301", nsf_msg);
    expect_code(f, f->nsf, "33tt", nsf_msg);
    expect_code(f, f->nsf, "t", nsf_msg);
    expect_code(f, f->nsf, "330T", NULL);
    expect_code(f, f->nsf, "31", NULL);
    expect_code(f, f->nsf, "31234", "trainingOffer.nsfCodes[1]: is 5 characters long, maximum 4");
    static const char rncp_msg[] =
        "trainingOffer.rncpCodes[1]: must be up to 6 digits, optionally prefixed RNCP";
    expect_code(f, f->rncp, "RNCPX", rncp_msg);
    expect_code(f, f->rncp, "RNCP", rncp_msg);
    expect_code(f, f->rncp, "1234567", rncp_msg);
    expect_code(f, f->rncp, "34567", NULL);
    t->n_formacode = PT_CODES_MAX + 1;
    EXPECT_INVALID(f, OFFER(f), "trainingOffer.formacode: has 17 elements, maximum 16");
    t->n_formacode = PT_CODES_MAX;
    EXPECT_VALID(f, OFFER(f));
    t->insee_commune = "2A004";
    EXPECT_VALID(f, OFFER(f));
    t->insee_commune = "2C004";
    EXPECT_INVALID(f, OFFER(f),
                   "trainingOffer.inseeCommune: must be an INSEE commune code (5 characters)");
    t->insee_commune = "5554";
    EXPECT_INVALID(f, OFFER(f),
                   "trainingOffer.inseeCommune: must be an INSEE commune code (5 characters)");
}

static void
test_training_offer_price_and_funders(void **state)
{
    fx_t *f = *state;
    Ptibus__V1__TrainingOffer *t = &f->offer;
    static const char *const good[] = {"3250.00", "3250", "0.5", "12.34"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        t->total_price_eur = (char *)good[i];
        EXPECT_VALID(f, OFFER(f));
    }
    static const char *const bad[] = {"3,250.00", "12.345", "-5", ".5", "5.", "1e3", "3250,00"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t->total_price_eur = (char *)bad[i];
        EXPECT_INVALID(f, OFFER(f),
                       "trainingOffer.totalPriceEur: must be a decimal amount like 3250.00");
    }
    t->total_price_eur = "";
    t->n_funders = PT_FUNDERS_MAX;
    EXPECT_VALID(f, OFFER(f));
    t->n_funders = PT_FUNDERS_MAX + 1;
    EXPECT_INVALID(f, OFFER(f), "trainingOffer.funders: has 9 elements, maximum 8");
    t->n_funders = 3;
    f->funders[2].funder_code = "";
    EXPECT_INVALID(f, OFFER(f), "trainingOffer.funders[2].funderCode: is required");
    f->funders[2].funder_code = "1x";
    EXPECT_INVALID(f, OFFER(f), "trainingOffer.funders[2].funderCode: must be digits only");
    f->funders[2].funder_code = "1234";
    EXPECT_INVALID(f, OFFER(f),
                   "trainingOffer.funders[2].funderCode: is 4 characters long, maximum 3");
    f->funders[2].funder_code = "16";
    f->funders[2].funded_seats = PT_FUNDED_SEATS_MAX + 1;
    EXPECT_INVALID(f, OFFER(f), "trainingOffer.funders[2].fundedSeats: 10001 is above 10000");
    f->funders[2].funded_seats = 0;
    f->funder_ptrs[1] = NULL;
    EXPECT_INVALID(f, OFFER(f), "trainingOffer.funders[1]: is empty");
    f->funder_ptrs[1] = &f->funders[1];
    f->provider.siret = "12345678901234";
    EXPECT_INVALID(f, OFFER(f), "trainingOffer.provider.siret: fails the SIRET check digit (Luhn)");
}

#define EVT(f) validate_beneficiary_event(&(f)->event, &(f)->err)

static void
test_beneficiary_event(void **state)
{
    fx_t *f = *state;
    Ptibus__V1__BeneficiaryEvent *e = &f->event;
    e->kind = 0;
    EXPECT_INVALID(f, EVT(f), "beneficiaryEvent.kind: is required");
    e->kind = PTIBUS__V1__BENEFICIARY_EVENT_KIND__BENEFICIARY_EVENT_KIND_FILE_STATE_CHANGED;
    e->person = NULL;
    EXPECT_INVALID(f, EVT(f), "beneficiaryEvent.person: is required");
    e->person = &f->person;
    e->file_state_code = "3";
    EXPECT_INVALID(f, EVT(f),
                   "beneficiaryEvent.fileStateCode: \"3\" does not match fileState "
                   "RSA_FILE_STATE_OPEN_PAID (code \"2\")");
    /* Every state agrees with exactly its own code. */
    for (int st = 1; st <= 7; st++) {
        char code[2] = {(char)('0' + st - 1), '\0'};
        e->file_state = (Ptibus__V1__RsaFileState)st;
        e->file_state_code = code;
        EXPECT_VALID(f, EVT(f));
    }
    e->file_state_code = "7";
    EXPECT_INVALID(f, EVT(f),
                   "beneficiaryEvent.fileStateCode: must be an ETATDOSRSA code from 0 to 6");
    e->file_state_code = "10";
    EXPECT_INVALID(f, EVT(f), "beneficiaryEvent.fileStateCode: is 2 characters long, maximum 1");
    e->file_state = (Ptibus__V1__RsaFileState)8;
    e->file_state_code = "";
    EXPECT_INVALID(
        f, EVT(f),
        "beneficiaryEvent.fileState: 8 is not a defined RsaFileState value (expected one of "
        "RSA_FILE_STATE_AWAITING_DECISION, RSA_FILE_STATE_REFUSED, RSA_FILE_STATE_OPEN_PAID, "
        "RSA_FILE_STATE_OPEN_SUSPENDED, RSA_FILE_STATE_PAYMENT_SUSPENDED, RSA_FILE_STATE_CLOSED, "
        "RSA_FILE_STATE_CLOSED_EARLIER)");
    e->file_state = 0;
    EXPECT_INVALID(f, EVT(f),
                   "beneficiaryEvent.fileState: is required when kind is FILE_STATE_CHANGED");
    e->file_state_code = "0";
    EXPECT_VALID(f, EVT(f));
    e->kind = PTIBUS__V1__BENEFICIARY_EVENT_KIND__BENEFICIARY_EVENT_KIND_DROITS_ET_DEVOIRS;
    e->file_state_code = "";
    EXPECT_VALID(f, EVT(f));
    e->postal_code = "5510";
    EXPECT_INVALID(f, EVT(f), "beneficiaryEvent.postalCode: must be exactly 5 digits");
    e->postal_code = "55100";
    e->reference_date = "2025-02-29";
    EXPECT_INVALID(f, EVT(f), "beneficiaryEvent.referenceDate: is not a calendar date");
    e->reference_date = "";
    e->claim_date = "2024-2-1";
    EXPECT_INVALID(f, EVT(f), "beneficiaryEvent.claimDate: must be a date YYYY-MM-DD");
    e->claim_date = "";
    e->household_size = 31;
    EXPECT_INVALID(f, EVT(f), "beneficiaryEvent.householdSize: 31 is above 30");
    e->household_size = 1;
    e->closure_reason_code = repeat(f, "c", 9);
    EXPECT_INVALID(f, EVT(f),
                   "beneficiaryEvent.closureReasonCode: is 9 characters long, maximum 8");
}

static void
test_envelope_person(void **state)
{
    fx_t *f = *state;
    static const bool has_person[] = {true, true, false, true, false, true, false, true};
    for (size_t i = 0; i < sizeof all_cases / sizeof all_cases[0]; i++) {
        set_body(f, all_cases[i]);
        assert_ptr_equal(validate_envelope_person(&f->env), has_person[i] ? &f->person : NULL);
    }
    f->env.body_case = PTIBUS__V1__ENVELOPE__BODY__NOT_SET;
    assert_null(validate_envelope_person(&f->env));
    assert_null(validate_envelope_person(NULL));
    set_body(f, PTIBUS__V1__ENVELOPE__BODY_SANCTION);
    f->sanction.person = NULL;
    assert_null(validate_envelope_person(&f->env));
}

/* Values that only arrive over the wire: an undefined enum number or a field numbered
 * 0 decode fine and must be refused by validation. */
static void
test_decoded_wire_quirks(void **state)
{
    fx_t *f = *state;
    f->sanction.measure = (Ptibus__V1__SanctionMeasure)42;
    uint8_t *buf;
    size_t len;
    assert_int_equal(codec_pack(&f->env.base, PT_MAX_MESSAGE_SIZE, &buf, &len, &f->err), 0);
    ProtobufCMessage *m;
    assert_int_equal(
        codec_unpack(&ptibus__v1__envelope__descriptor, buf, len, PT_MAX_MESSAGE_SIZE, &m, &f->err),
        0);
    EXPECT_INVALID(f, validate_envelope((Ptibus__V1__Envelope *)m, &f->err),
                   "sanction.measure: 42 is not a defined SanctionMeasure value (expected one of "
                   "SANCTION_MEASURE_SUSPENSION_REMOBILISATION, SANCTION_MEASURE_SUPPRESSION, "
                   "SANCTION_MEASURE_LIFTED, SANCTION_MEASURE_CANCELLED)");
    codec_free(&m);
    free(buf);

    /* Field number 0 in a two-byte tag: protobuf-c would decode it as an unknown field
     * that it cannot re-encode; codec_unpack refuses it before validation. */
    f->sanction.measure = PTIBUS__V1__SANCTION_MEASURE__SANCTION_MEASURE_SUPPRESSION;
    assert_int_equal(codec_pack(&f->env.base, PT_MAX_MESSAGE_SIZE, &buf, &len, &f->err), 0);
    uint8_t *bad = malloc(len + 3);
    assert_non_null(bad);
    memcpy(bad, buf, len);
    memcpy(bad + len, "\x82\x00\x00", 3);
    assert_int_equal(codec_unpack(&ptibus__v1__envelope__descriptor, bad, len + 3,
                                  PT_MAX_MESSAGE_SIZE, &m, &f->err),
                     PT_EMALFORMED);
    assert_null(m);
    EXPECT_VALID(f, ENV(f));
    free(bad);
    free(buf);
}

static void
check_rules_of(const ProtobufCMessageDescriptor *d, int depth)
{
    assert_true(depth < 8);
    if (strncmp(d->name, "google.", 7) == 0)
        return;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        if (fd->type == PROTOBUF_C_TYPE_STRING || fd->label == PROTOBUF_C_LABEL_REPEATED) {
            if (!validate_has_rule(d, fd->name))
                fail_msg("%s.%s has no entry in the rule table", d->name, fd->name);
        }
        if (fd->type == PROTOBUF_C_TYPE_MESSAGE)
            check_rules_of(fd->descriptor, depth + 1);
    }
}

/* Every string and list reachable from the Envelope has an explicit bound. */
static void
test_rule_table_is_complete(void **state)
{
    (void)state;
    check_rules_of(&ptibus__v1__envelope__descriptor, 0);
    assert_false(validate_has_rule(&ptibus__v1__envelope__descriptor, "nope"));
    assert_true(validate_is_partner_id("ml_nord"));
    assert_false(validate_is_partner_id(""));
    assert_false(validate_is_partner_id("ML_NORD"));
    assert_false(validate_is_partner_id("abcdefghijklmnopqrstuvwxyz0123456"));
    assert_false(validate_is_partner_id(NULL));
}

/* Packs one valid envelope per family; with PT_WRITE_FUZZ_SEEDS=<dir> writes them there
 * as the fuzz_envelope seed corpus. Also checks that the committed seeds still decode
 * and validate, so the corpus follows the rules. */
static void
test_fuzz_seeds(void **state)
{
    fx_t *f = *state;
    const char *out_dir = getenv("PT_WRITE_FUZZ_SEEDS");
    for (size_t i = 0; i < sizeof all_cases / sizeof all_cases[0]; i++) {
        set_body(f, all_cases[i]);
        uint8_t *buf;
        size_t len;
        assert_int_equal(codec_pack(&f->env.base, PT_MAX_MESSAGE_SIZE, &buf, &len, &f->err), 0);
        char path[4096];
        if (out_dir != NULL) {
            snprintf(path, sizeof path, "%s/seed-%s.bin", out_dir, codec_envelope_type(&f->env));
            assert_int_equal(tu_write_file(path, buf, len), 0);
        }
        free(buf);
        snprintf(path, sizeof path, "%s/fuzz_envelope/seed-%s.bin", PT_FUZZ_CORPUS_DIR,
                 codec_envelope_type(&f->env));
        uint8_t *seed;
        assert_int_equal(tu_read_file(path, &seed, &len), 0);
        ProtobufCMessage *m;
        assert_int_equal(codec_unpack(&ptibus__v1__envelope__descriptor, seed, len,
                                      PT_MAX_MESSAGE_SIZE, &m, &f->err),
                         0);
        EXPECT_VALID(f, validate_envelope((Ptibus__V1__Envelope *)m, &f->err));
        codec_free(&m);
        free(seed);
    }
}

/* Hello and DeliverAck: the partner-written text that the broker logs, journals and
 * forwards in receipts is validated like the envelope's text fields. */
static void
test_frame_text(void **state)
{
    fx_t *f = *state;
    Ptibus__V1__Hello h = PTIBUS__V1__HELLO__INIT;
    h.protocol_version = 1;
    h.client_name = "ptibus-adapter-caf";
    h.software_version = "1.2.0";
    EXPECT_VALID(f, validate_hello(&h, &f->err));
    h.client_name = "caf\n2026-12-01T00:00:00.000Z ptibusd[1] E [broker.forged] x";
    EXPECT_INVALID(f, validate_hello(&h, &f->err),
                   "hello.clientName: contains a control character (U+000A)");
    h.client_name = "caf\x1b]0;owned\x07";
    EXPECT_INVALID(f, validate_hello(&h, &f->err),
                   "hello.clientName: contains a control character (U+001B)");
    h.client_name = "caf\tx";
    EXPECT_INVALID(f, validate_hello(&h, &f->err),
                   "hello.clientName: contains a control character (U+0009)");
    h.client_name = "caf";
    h.software_version = "1.0\xff";
    EXPECT_INVALID(f, validate_hello(&h, &f->err), "hello.softwareVersion: is not valid UTF-8");
    h.software_version = repeat(f, "9", PT_SOFTWARE_VERSION_MAX + 1);
    EXPECT_INVALID(f, validate_hello(&h, &f->err),
                   "hello.softwareVersion: is 65 characters long, maximum 64");

    Ptibus__V1__DeliverAck a = PTIBUS__V1__DELIVER_ACK__INIT;
    a.seq = 7;
    a.status = PTIBUS__V1__DELIVER_ACK_STATUS__DELIVER_ACK_STATUS_CANNOT_PROCESS;
    a.reason = "schéma\tinconnu: champ <3> absent";
    EXPECT_VALID(f, validate_deliver_ack(&a, &f->err));
    a.reason = "bad\r\n<3>forged";
    EXPECT_INVALID(f, validate_deliver_ack(&a, &f->err),
                   "deliverAck.reason: contains a control character (U+000D)");
    a.reason = "bad \xc2\x9b"
               "31m"; /* C1 CSI */
    EXPECT_INVALID(f, validate_deliver_ack(&a, &f->err),
                   "deliverAck.reason: contains a control character (U+009B)");
    a.reason = "cut \xc3";
    EXPECT_INVALID(f, validate_deliver_ack(&a, &f->err), "deliverAck.reason: is not valid UTF-8");
    a.reason = repeat(f, "é", PT_ACK_REASON_MAX + 1);
    EXPECT_INVALID(f, validate_deliver_ack(&a, &f->err),
                   "deliverAck.reason: is 2001 characters long, maximum 2000");
    EXPECT_INVALID(f, validate_deliver_ack(NULL, &f->err), "deliverAck: is missing");
}

#define D(type) &ptibus__v1__##type##__descriptor

/* The JSON Schemas (tools/schemagen) publish each format's pattern from the rule table:
 * whatever validate accepts, the pattern must match, and the shapes listed as wrong
 * both refuse. A pattern may be looser than the code (a calendar date, a NIR key, a
 * SIRET check digit are the code's): those samples are listed as `looser`. */
static void
expect_pattern(const ProtobufCMessageDescriptor *msg, const char *field, const char *const *good,
               const char *const *bad, const char *const *looser)
{
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field_by_name(msg, field);
    assert_non_null(fd);
    validate_field_info_t in;
    validate_field_info(msg, fd, &in);
    assert_non_null(in.pattern);
    regex_t re;
    assert_int_equal(regcomp(&re, in.pattern, REG_EXTENDED | REG_NOSUB), 0);
    for (; good && *good; good++)
        if (!validate_format_matches(msg, field, *good) || regexec(&re, *good, 0, NULL, 0) != 0)
            fail_msg("%s.%s: \"%s\" should pass both the code and %s", msg->name, field, *good,
                     in.pattern);
    for (; bad && *bad; bad++)
        if (validate_format_matches(msg, field, *bad) || regexec(&re, *bad, 0, NULL, 0) == 0)
            fail_msg("%s.%s: \"%s\" should fail both the code and %s", msg->name, field, *bad,
                     in.pattern);
    for (; looser && *looser; looser++)
        if (validate_format_matches(msg, field, *looser) || regexec(&re, *looser, 0, NULL, 0) != 0)
            fail_msg("%s.%s: \"%s\" should match %s but fail the code", msg->name, field, *looser,
                     in.pattern);
    regfree(&re);
}

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

static void
test_schema_patterns_match_the_code(void **state)
{
    (void)state;
    expect_pattern(D(envelope), "message_id", L("m-1", "A~!"), L("a b", "\xc3\xa9t\xc3\xa9"), NULL);
    expect_pattern(D(envelope), "sender", L("ml_nord", "caf"),
                   L("ML", "a-b", "abcdefghijabcdefghijabcdefghijabc"), NULL);
    expect_pattern(D(referral), "available_from", L("2024-02-29", "1999-12-31"),
                   L("2024-1-01", "24-01-01", "2024/01/01", "2024-13-01"),
                   L("2023-02-29", "2024-04-31", "1850-01-01"));
    expect_pattern(D(person_ref), "nir", L("1850555029123", "185052A029123"),
                   L("9850555029123", "18505550291", "185055502912A"), L("1851355029123"));
    expect_pattern(D(person_ref), "file_number", L("0123", "9"), L("12a", "-1"), NULL);
    expect_pattern(D(person_ref), "payer_office", L("123"), L("12a"), NULL);
    expect_pattern(D(person_ref), "france_travail_id", L("4567891A"), L("4567-891", "a b"), NULL);
    expect_pattern(D(org_ref), "siret", L("73282932000074"), L("7328293200007", "7328293200007a"),
                   L("73282932000075"));
    expect_pattern(D(org_ref), "partner_id", L("region"), L("Region"), NULL);
    expect_pattern(D(agent), "email", L("a.b@example.org", "x@mail.example.fr"),
                   L("a@b", "a b@example.org", "a@@example.org", "@example.org"), NULL);
    expect_pattern(D(training_offer), "rome_codes", L("M1607"), L("m1607", "M160"), NULL);
    expect_pattern(D(training_offer), "nsf_codes", L("31", "330t", "1"), L("3300", "t", "33tt"),
                   NULL);
    expect_pattern(D(training_offer), "rncp_codes", L("RNCP34567", "34567"),
                   L("RNCP", "rncp1", "1234567"), NULL);
    expect_pattern(D(training_offer), "total_price_eur", L("3250.00", "12", "0.5"),
                   L("3250.", "1,5", "1.234", ".5"), NULL);
    expect_pattern(D(training_offer), "insee_commune", L("55029", "2A004"), L("5502", "2C004"),
                   NULL);
    expect_pattern(D(beneficiary_event), "file_state_code", L("0", "6"), L("7", "a"), NULL);
}

/* Required-or-not in the schemas is the rule table's (one table, read by both). */
static void
test_field_info(void **state)
{
    (void)state;
    validate_field_info_t in;
#define INFO(type, field)                                                                          \
    validate_field_info(D(type), protobuf_c_message_descriptor_get_field_by_name(D(type), field),  \
                        &in)
    INFO(envelope, "message_id");
    assert_true(in.required);
    assert_int_equal(in.max_length, PT_MESSAGE_ID_MAX);
    INFO(referral, "available_from");
    assert_false(in.required);
    assert_string_equal(in.format, "date");
    INFO(referral, "reason");
    assert_true(in.multiline);
    assert_false(in.required);
    INFO(orientation, "version");
    assert_true(in.required); /* 1..10000: 0 (absent) is refused */
    assert_true(in.has_range);
    assert_int_equal(in.min, 1);
    INFO(sanction, "household_size");
    assert_false(in.required);
    INFO(training_offer, "formacode");
    assert_int_equal(in.max_count, PT_CODES_MAX);
    assert_int_equal(in.max_length, 5);
    INFO(training_offer, "certifying"); /* no entry: the defaults */
    assert_false(in.has_rule);
    assert_false(in.required);
    INFO(person_ref, "payer_office");
    assert_true(in.exact_length);
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_every_family_valid),
        T(test_envelope_paths_name_the_family),
        T(test_envelope_ids),
        T(test_envelope_recipients_and_territory),
        T(test_envelope_created_at_and_body),
        T(test_text_encoding),
        T(test_person_identifiers),
        T(test_person_birth_date),
        T(test_person_fields),
        T(test_person_enums),
        T(test_org),
        T(test_org_agent),
        T(test_sanction_amounts),
        T(test_sanction_required),
        T(test_sanction_dates_and_payer),
        T(test_orientation),
        T(test_reorientation),
        T(test_referral),
        T(test_referral_status),
        T(test_training_offer_required),
        T(test_training_offer_codes),
        T(test_training_offer_price_and_funders),
        T(test_beneficiary_event),
        T(test_envelope_person),
        T(test_decoded_wire_quirks),
        T(test_rule_table_is_complete),
        T(test_fuzz_seeds),
        T(test_frame_text),
        cmocka_unit_test(test_schema_patterns_match_the_code),
        cmocka_unit_test(test_field_info),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
