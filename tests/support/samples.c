/* samples: valid messages of each family for tests. */
#include "samples.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static void
sample_base(td_sample_t *s, const char *id)
{
    memset(s, 0, sizeof *s);
    Ptibus__V1__Envelope env = PTIBUS__V1__ENVELOPE__INIT;
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    Ptibus__V1__PersonRef person = PTIBUS__V1__PERSON_REF__INIT;
    Ptibus__V1__OrgRef org = PTIBUS__V1__ORG_REF__INIT;
    s->env = env;
    s->created_at = ts;
    s->created_at.seconds = 1795000000; /* fixed: a resend is byte-identical */
    s->person = person;
    s->org_a = org;
    s->org_b = org;
    snprintf(s->message_id, sizeof s->message_id, "%s", id);
    s->env.message_id = s->message_id;
    s->env.created_at = &s->created_at;
    s->env.territory = "nord_meusien";
    s->person.nir = "285057800608441";
    s->person.birth_date = "1985-05-12";
    s->person.last_name = "Tifour";
    s->person.first_names = "Sophie";
    s->person.sex = PTIBUS__V1__SEX__SEX_FEMALE;
    s->person.payer = PTIBUS__V1__PAYER__PAYER_CAF;
    s->person.payer_office = "521";
    s->person.file_number = "1234567";
    s->person.role = PTIBUS__V1__PERSON_ROLE__PERSON_ROLE_DEM;
}

void
td_sample_sanction(td_sample_t *s, const char *id, Ptibus__V1__Payer payer)
{
    sample_base(s, id);
    Ptibus__V1__Sanction x = PTIBUS__V1__SANCTION__INIT;
    s->sanction = x;
    s->person.payer = payer;
    s->org_a.kind = PTIBUS__V1__ORG_KIND__ORG_KIND_FT;
    s->org_a.name = "France Travail Verdun";
    s->org_b.kind = PTIBUS__V1__ORG_KIND__ORG_KIND_CD;
    s->org_b.name = "Conseil départemental de la Meuse";
    s->sanction.sanction_id = "SAN-2026-0042";
    s->sanction.person = &s->person;
    s->sanction.household_size = 2;
    s->sanction.legal_ground = PTIBUS__V1__LEGAL_GROUND__LEGAL_GROUND_NON_COMPLIANCE;
    s->sanction.measure = PTIBUS__V1__SANCTION_MEASURE__SANCTION_MEASURE_SUSPENSION_REMOBILISATION;
    s->sanction.stage = 1;
    s->sanction.rate_percent = 30;
    s->sanction.duration_months = 1;
    s->sanction.starts_on = "2026-12-01";
    s->sanction.ends_on = "2026-12-31";
    s->sanction.proposed_by = &s->org_a;
    s->sanction.decided_by = &s->org_b;
    s->sanction.notified_on = "2026-11-10";
    s->sanction.observations_deadline = "2026-11-20";
    s->sanction.phase = PTIBUS__V1__SANCTION_PHASE__SANCTION_PHASE_DECISION;
    s->env.body_case = PTIBUS__V1__ENVELOPE__BODY_SANCTION;
    s->env.sanction = &s->sanction;
}

void
td_sample_orientation(td_sample_t *s, const char *id)
{
    sample_base(s, id);
    Ptibus__V1__Orientation x = PTIBUS__V1__ORIENTATION__INIT;
    s->orientation = x;
    s->org_a.kind = PTIBUS__V1__ORG_KIND__ORG_KIND_FT;
    s->org_a.name = "France Travail Bar-le-Duc";
    s->org_a.partner_id = "pole_emploi";
    s->org_b.kind = PTIBUS__V1__ORG_KIND__ORG_KIND_CD;
    s->org_b.name = "Conseil départemental de la Meuse";
    s->orientation.orientation_id = "ORI-2026-0007";
    s->orientation.version = 1;
    s->orientation.person = &s->person;
    s->orientation.category = PTIBUS__V1__ORIENTATION_CATEGORY__ORIENTATION_CATEGORY_PRO;
    s->orientation.category_code = "PP";
    s->orientation.referent_org = &s->org_a;
    s->orientation.deciding_org = &s->org_b;
    s->orientation.status = PTIBUS__V1__ORIENTATION_STATUS__ORIENTATION_STATUS_ORIENTED;
    s->orientation.origin = PTIBUS__V1__ORIENTATION_ORIGIN__ORIENTATION_ORIGIN_MANUAL;
    s->orientation.proposed_on = "2026-10-01";
    s->orientation.decided_on = "2026-10-15";
    s->orientation.starts_on = "2026-11-01";
    s->env.body_case = PTIBUS__V1__ENVELOPE__BODY_ORIENTATION;
    s->env.orientation = &s->orientation;
}

void
td_sample_referral(td_sample_t *s, const char *id, const char *target_partner)
{
    sample_base(s, id);
    Ptibus__V1__Referral x = PTIBUS__V1__REFERRAL__INIT;
    Ptibus__V1__TargetService svc = PTIBUS__V1__TARGET_SERVICE__INIT;
    s->referral = x;
    s->service = svc;
    s->org_a.kind = PTIBUS__V1__ORG_KIND__ORG_KIND_CD;
    s->org_a.name = "Conseil départemental de la Meuse";
    s->org_b.kind = PTIBUS__V1__ORG_KIND__ORG_KIND_ML;
    s->org_b.name = "Mission Locale du Nord Meusien";
    s->org_b.partner_id = (char *)target_partner;
    s->service.kind = PTIBUS__V1__SERVICE_KIND__SERVICE_KIND_ACCOMPANIMENT;
    s->service.category = "accompagnement global";
    s->referral.referral_id = "PRE-2026-0100";
    s->referral.person = &s->person;
    s->referral.prescriber_org = &s->org_a;
    s->referral.target_org = &s->org_b;
    s->referral.target_service = &s->service;
    s->referral.reason = "Accompagnement vers l'emploi";
    s->referral.available_from = "2026-12-01";
    s->referral.contact_preference = PTIBUS__V1__CONTACT_PREFERENCE__CONTACT_PREFERENCE_PHONE;
    s->env.body_case = PTIBUS__V1__ENVELOPE__BODY_REFERRAL;
    s->env.referral = &s->referral;
}

void
td_sample_referral_status(td_sample_t *s, const char *id, const char *correlation_id)
{
    sample_base(s, id);
    Ptibus__V1__ReferralStatus x = PTIBUS__V1__REFERRAL_STATUS__INIT;
    s->referral_status = x;
    s->env.correlation_id = (char *)correlation_id;
    s->referral_status.referral_id = "PRE-2026-0100";
    s->referral_status.state = PTIBUS__V1__REFERRAL_STATE__REFERRAL_STATE_ACCEPTED;
    s->referral_status.effective_on = "2026-12-02";
    s->env.body_case = PTIBUS__V1__ENVELOPE__BODY_REFERRAL_STATUS;
    s->env.referral_status = &s->referral_status;
}

void
td_sample_training_offer(td_sample_t *s, const char *id)
{
    static char *formacode[] = {"22403"};
    static char *rome[] = {"F1703"};
    sample_base(s, id);
    Ptibus__V1__TrainingOffer x = PTIBUS__V1__TRAINING_OFFER__INIT;
    s->offer = x;
    s->org_a.kind = PTIBUS__V1__ORG_KIND__ORG_KIND_OTHER;
    s->org_a.name = "AFPA Commercy";
    s->org_a.siret = "73282932000074";
    s->offer.offer_id = "F-001/A-01/S-01";
    s->offer.operation = PTIBUS__V1__OFFER_OPERATION__OFFER_OPERATION_UPSERT;
    s->offer.formation_number = "F-001";
    s->offer.action_number = "A-01";
    s->offer.session_number = "S-01";
    s->offer.title = "Maçon du bâti ancien";
    s->offer.n_formacode = 1;
    s->offer.formacode = formacode;
    s->offer.n_rome_codes = 1;
    s->offer.rome_codes = rome;
    s->offer.certifying = 1;
    s->offer.provider = &s->org_a;
    s->offer.insee_commune = "55122";
    s->offer.total_hours = 840;
    s->offer.total_price_eur = "6250.00";
    s->offer.starts_on = "2027-01-11";
    s->offer.ends_on = "2027-07-02";
    s->offer.recruitment_state = PTIBUS__V1__RECRUITMENT_STATE__RECRUITMENT_STATE_OPEN;
    s->offer.lheo_version = "2.3";
    s->env.body_case = PTIBUS__V1__ENVELOPE__BODY_TRAINING_OFFER;
    s->env.training_offer = &s->offer;
}

void
td_sample_beneficiary_event(td_sample_t *s, const char *id)
{
    sample_base(s, id);
    Ptibus__V1__BeneficiaryEvent x = PTIBUS__V1__BENEFICIARY_EVENT__INIT;
    s->event = x;
    s->event.event_id = "CAF-521-20260228-0001";
    s->event.kind = PTIBUS__V1__BENEFICIARY_EVENT_KIND__BENEFICIARY_EVENT_KIND_DROITS_ET_DEVOIRS;
    s->event.person = &s->person;
    s->event.file_state = PTIBUS__V1__RSA_FILE_STATE__RSA_FILE_STATE_OPEN_PAID;
    s->event.file_state_code = "2";
    s->event.droits_et_devoirs = 1;
    s->event.reference_date = "2026-02-28";
    s->env.body_case = PTIBUS__V1__ENVELOPE__BODY_BENEFICIARY_EVENT;
    s->env.beneficiary_event = &s->event;
}

void
td_sample_reorientation_request(td_sample_t *s, const char *id)
{
    sample_base(s, id);
    Ptibus__V1__ReorientationRequest x = PTIBUS__V1__REORIENTATION_REQUEST__INIT;
    s->reorientation_request = x;
    s->org_a.kind = PTIBUS__V1__ORG_KIND__ORG_KIND_ML;
    s->org_a.name = "Mission Locale du Nord Meusien";
    s->org_a.partner_id = "ml_nord";
    s->reorientation_request.request_id = "REQ-2026-0003";
    s->reorientation_request.orientation_id = "ORI-2026-0007";
    s->reorientation_request.person = &s->person;
    s->reorientation_request.requested_category =
        PTIBUS__V1__ORIENTATION_CATEGORY__ORIENTATION_CATEGORY_SOCIO_PRO;
    s->reorientation_request.reason = "Besoin d'un accompagnement social";
    s->reorientation_request.requesting_org = &s->org_a;
    s->reorientation_request.requested_on = "2026-11-20";
    s->env.body_case = PTIBUS__V1__ENVELOPE__BODY_REORIENTATION_REQUEST;
    s->env.reorientation_request = &s->reorientation_request;
}

void
td_sample_reorientation_answer(td_sample_t *s, const char *id, const char *correlation_id)
{
    sample_base(s, id);
    Ptibus__V1__ReorientationAnswer x = PTIBUS__V1__REORIENTATION_ANSWER__INIT;
    s->reorientation_answer = x;
    s->env.correlation_id = (char *)correlation_id;
    s->reorientation_answer.request_id = "REQ-2026-0003";
    s->reorientation_answer.decision =
        PTIBUS__V1__REORIENTATION_DECISION__REORIENTATION_DECISION_ACCEPTED;
    s->reorientation_answer.decided_on = "2026-12-01";
    s->reorientation_answer.new_orientation_id = "ORI-2026-0008";
    s->env.body_case = PTIBUS__V1__ENVELOPE__BODY_REORIENTATION_ANSWER;
    s->env.reorientation_answer = &s->reorientation_answer;
}
