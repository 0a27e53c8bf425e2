/* samples: valid messages of each family, built in caller-owned storage, for the
 * integration tests and benchmarks. The people are fictitious; the NIRs are made up
 * but have valid keys. */
#ifndef PT_SAMPLES_H
#define PT_SAMPLES_H

#include "ptibus/v1/envelope.pb-c.h"

typedef struct td_sample {
    Ptibus__V1__Envelope env;
    Google__Protobuf__Timestamp created_at;
    Ptibus__V1__PersonRef person;
    Ptibus__V1__OrgRef org_a;
    Ptibus__V1__OrgRef org_b;
    Ptibus__V1__Sanction sanction;
    Ptibus__V1__Orientation orientation;
    Ptibus__V1__Referral referral;
    Ptibus__V1__TargetService service;
    Ptibus__V1__ReferralStatus referral_status;
    Ptibus__V1__TrainingOffer offer;
    Ptibus__V1__BeneficiaryEvent event;
    Ptibus__V1__ReorientationRequest reorientation_request;
    Ptibus__V1__ReorientationAnswer reorientation_answer;
    char message_id[65];
    char *recipients[4];
} td_sample_t;

/* Each fills s with a complete valid envelope whose message_id is id. Pointers in
 * s->env point into s: keep s alive while the envelope is used. */
void td_sample_sanction(td_sample_t *s, const char *id, Ptibus__V1__Payer payer);
void td_sample_orientation(td_sample_t *s, const char *id);
void td_sample_referral(td_sample_t *s, const char *id, const char *target_partner);
void td_sample_referral_status(td_sample_t *s, const char *id, const char *correlation_id);
void td_sample_training_offer(td_sample_t *s, const char *id);
void td_sample_beneficiary_event(td_sample_t *s, const char *id);
void td_sample_reorientation_request(td_sample_t *s, const char *id);
/* The answer carries correlation_id (the request's message_id). */
void td_sample_reorientation_answer(td_sample_t *s, const char *id, const char *correlation_id);

#endif
