/* Unit tests of broker/router over the real deploy/broker.yaml (copied into a temporary
 * directory with generated key files): every message family reaches its recipients and
 * no one else, explicit recipients narrow, and each refusal names its field. A second
 * configuration written here exercises conditions on strings, booleans and integers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <glob.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "bconfig.h"
#include "codec.h"
#include "keys.h"
#include "pjson.h"
#include "router.h"
#include "samples.h"
#include "testutil.h"
#include "validate.h"

#define MAX_RCPT 32

typedef struct fixture {
    bconfig_t *cfg;
    router_t *router;
} fixture_t;

static int
setup_deploy(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    char path[4096];
    pt_error_t err;
    char *dir = tu_deploy_example("router", path, sizeof path);
    if (bconfig_load(path, &fx->cfg, &err) != 0)
        fail_msg("%s", err.msg);
    if (router_new(fx->cfg, &fx->router, &err) != 0)
        fail_msg("%s", err.msg);
    tu_rmtree(dir);
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    fixture_t *fx = *state;
    router_destroy(&fx->router);
    assert_null(fx->router);
    router_destroy(&fx->router);
    bconfig_destroy(&fx->cfg);
    free(fx);
    return 0;
}

/* The messages already accepted and routed to the replier, for to_correlated_sender
 * (the broker's look-up over the journal is tested in tests/security). */
static int
fake_lookup(void *arg, uint64_t seq, const char *message_id, char *sender, size_t cap)
{
    static const struct {
        uint64_t seq;
        const char *message_id, *sender;
    } journal[] = {
        {101, "REF-DEP-1", "departement"},
        {102, "REF-ML-1", "ml_nord"},
        {103, "REQ-FT-1", "pole_emploi"},
        {104, "OLD-1", "cap_emploi"}, /* no longer configured */
        {105, "SAME-1", "departement"},
        {106, "SAME-1", "ml_nord"}, /* two senders chose the same id */
    };
    int *calls = arg;
    const char *found = NULL;
    (*calls)++;
    if (strcmp(message_id, "BROKEN") == 0)
        return PT_ECORRUPT;
    for (size_t i = 0; i < sizeof journal / sizeof journal[0]; i++) {
        bool id_ok = strcmp(journal[i].message_id, message_id) == 0;
        if (seq != 0 && journal[i].seq == seq && (message_id[0] == '\0' || id_ok))
            found = journal[i].sender;
        else if (seq == 0 && id_ok && found != NULL)
            return PT_EINVALID;
        else if (seq == 0 && id_ok)
            found = journal[i].sender;
    }
    if (found == NULL)
        return PT_ENOTFOUND;
    snprintf(sender, cap, "%s", found);
    return 0;
}

/* Resolves a valid envelope and checks the recipients are exactly `want` (sorted,
 * NULL-terminated). */
static void
expect(const fixture_t *fx, const char *sender, const td_sample_t *s, const char *const *want)
{
    const char *out[MAX_RCPT];
    size_t n = 99;
    int calls = 0;
    pt_error_t err;
    if (validate_envelope(&s->env, &err) != 0)
        fail_msg("sample is invalid: %s", err.msg);
    int rc =
        router_resolve(fx->router, sender, &s->env, fake_lookup, &calls, out, MAX_RCPT, &n, &err);
    if (rc != 0)
        fail_msg("%s: %s", s->message_id, err.msg);
    size_t k = 0;
    for (; want[k]; k++) {
        if (k >= n)
            fail_msg("%s: %zu recipients, expected %s next", s->message_id, n, want[k]);
        assert_string_equal(out[k], want[k]);
        /* Borrowed from the configuration, not from the message. */
        assert_ptr_equal(out[k], bconfig_partner_by_id(fx->cfg, want[k])->id);
    }
    if (k != n)
        fail_msg("%s: %zu recipients, expected %zu (extra: %s)", s->message_id, n, k, out[k]);
}

/* Resolves and expects a refusal with this code, field path and message. */
static void
expect_refused(const fixture_t *fx, const char *sender, const td_sample_t *s,
               router_lookup_fn lookup, int code, const char *path, const char *msg)
{
    const char *out[MAX_RCPT];
    size_t n = 99;
    int calls = 0;
    pt_error_t err;
    pt_error_clear(&err);
    int rc = router_resolve(fx->router, sender, &s->env, lookup, &calls, out, MAX_RCPT, &n, &err);
    if (rc != code || strcmp(err.msg, msg) != 0)
        fail_msg("%s: rc %d, got\n  %s\nwanted %d\n  %s", s->message_id, rc, err.msg, code, msg);
    assert_string_equal(err.path, path);
    assert_int_equal(n, 0);
    /* Without an error object: the same code. */
    assert_int_equal(
        router_resolve(fx->router, sender, &s->env, lookup, &calls, out, MAX_RCPT, &n, NULL), rc);
}

static void
test_sanction_decision_goes_to_the_payer_only(void **state)
{
    fixture_t *fx = *state;
    td_sample_t s;
    td_sample_sanction(&s, "SAN-1", PTIBUS__V1__PAYER__PAYER_CAF);
    expect(fx, "departement", &s, (const char *[]){"caf", "pole_emploi", NULL});
    td_sample_sanction(&s, "SAN-2", PTIBUS__V1__PAYER__PAYER_MSA);
    expect(fx, "departement", &s, (const char *[]){"msa", "pole_emploi", NULL});
    /* An MSA household's decision never reaches the CAF, even when asked for. */
    char *caf[] = {"caf"};
    s.env.n_recipients = 1;
    s.env.recipients = caf;
    expect_refused(fx, "departement", &s, fake_lookup, PT_EDENIED, "recipients[0]",
                   "recipients[0]: caf is not a recipient the routes allow for sanction");
}

static void
test_sanction_proposal_goes_to_the_departement(void **state)
{
    fixture_t *fx = *state;
    td_sample_t s;
    td_sample_sanction(&s, "SAN-3", PTIBUS__V1__PAYER__PAYER_CAF);
    s.sanction.phase = PTIBUS__V1__SANCTION_PHASE__SANCTION_PHASE_PROPOSAL;
    expect(fx, "pole_emploi", &s, (const char *[]){"departement", NULL});
    /* No rule matches a phase nobody routes. */
    s.sanction.phase = PTIBUS__V1__SANCTION_PHASE__SANCTION_PHASE_UNSPECIFIED;
    expect_refused(fx, "pole_emploi", &s, fake_lookup, PT_EDENIED, "sanction",
                   "sanction: no route delivers this message");
}

static void
test_orientation(void **state)
{
    fixture_t *fx = *state;
    td_sample_t s;
    /* The référent is France Travail, already a fixed recipient: listed once. */
    td_sample_orientation(&s, "ORI-1");
    expect(fx, "departement", &s, (const char *[]){"caf", "pole_emploi", NULL});
    s.org_a.partner_id = "ml_sud";
    s.person.payer = PTIBUS__V1__PAYER__PAYER_MSA;
    expect(fx, "departement", &s, (const char *[]){"ml_sud", "msa", "pole_emploi", NULL});
    /* A référent outside the bus adds nothing. */
    s.org_a.partner_id = "";
    expect(fx, "departement", &s, (const char *[]){"msa", "pole_emploi", NULL});
    s.orientation.referent_org = NULL;
    s.orientation.status = PTIBUS__V1__ORIENTATION_STATUS__ORIENTATION_STATUS_PENDING;
    s.person.payer = PTIBUS__V1__PAYER__PAYER_UNSPECIFIED;
    s.person.file_number = "";
    expect(fx, "departement", &s, (const char *[]){"pole_emploi", NULL});
    /* Decided by France Travail by delegation (Loi pour le plein emploi, 2023): the
     * Département receives it; France Travail, the sender, does not. */
    td_sample_orientation(&s, "ORI-2");
    expect(fx, "pole_emploi", &s, (const char *[]){"caf", "departement", NULL});
    assert_true(bconfig_may_send(bconfig_partner_by_id(fx->cfg, "pole_emploi"), "orientation"));
    assert_false(bconfig_may_send(bconfig_partner_by_id(fx->cfg, "ml_nord"), "orientation"));
}

static void
test_referral_goes_to_the_named_target(void **state)
{
    fixture_t *fx = *state;
    td_sample_t s;
    td_sample_referral(&s, "REF-1", "ml_nord");
    expect(fx, "departement", &s, (const char *[]){"ml_nord", NULL});
    td_sample_referral(&s, "REF-2", "region");
    expect(fx, "pole_emploi", &s, (const char *[]){"region", NULL});
    td_sample_referral(&s, "REF-3", "xyz");
    expect_refused(fx, "departement", &s, fake_lookup, PT_EDENIED, "referral.targetOrg.partnerId",
                   "referral.targetOrg.partnerId: unknown partner \"xyz\"");
    /* A partner outside the rule's allow-list: a referral never reaches a payer. */
    td_sample_referral(&s, "REF-6", "caf");
    expect_refused(fx, "ml_nord", &s, fake_lookup, PT_EDENIED, "referral.targetOrg.partnerId",
                   "referral.targetOrg.partnerId: \"caf\" is not a recipient this route "
                   "allows for referral");
    td_sample_referral(&s, "REF-7", "msa");
    expect_refused(fx, "departement", &s, fake_lookup, PT_EDENIED, "referral.targetOrg.partnerId",
                   "referral.targetOrg.partnerId: \"msa\" is not a recipient this route "
                   "allows for referral");
    /* Nor an orientation a payer named as its référent (it gets it by payer only). */
    td_sample_orientation(&s, "ORI-9");
    s.org_a.partner_id = "msa";
    expect_refused(fx, "departement", &s, fake_lookup, PT_EDENIED,
                   "orientation.referentOrg.partnerId",
                   "orientation.referentOrg.partnerId: \"msa\" is not a recipient this route "
                   "allows for orientation");
    /* A target that is not a partner (no partner_id: an organisation that is not on the
     * bus): the refusal names the field that should have named it. Or the sender itself. */
    td_sample_referral(&s, "REF-4", "");
    expect_refused(fx, "departement", &s, fake_lookup, PT_EDENIED, "referral.targetOrg.partnerId",
                   "referral.targetOrg.partnerId: is empty: refused because targetOrg has no "
                   "partnerId, and no other route delivers this message (an organisation that "
                   "is not on the bus cannot receive it)");
    td_sample_referral(&s, "REF-5", "ml_nord");
    expect_refused(fx, "ml_nord", &s, fake_lookup, PT_EDENIED, "referral",
                   "referral: no route delivers this message");
}

static void
test_explicit_recipients(void **state)
{
    fixture_t *fx = *state;
    td_sample_t s;
    char *one[] = {"ml_nord"}, *two[] = {"ml_nord", "ml_sud"};
    td_sample_referral(&s, "REF-6", "ml_nord");
    s.env.recipients = one;
    s.env.n_recipients = 1;
    expect(fx, "departement", &s, (const char *[]){"ml_nord", NULL});
    s.env.recipients = two;
    s.env.n_recipients = 2;
    expect_refused(fx, "departement", &s, fake_lookup, PT_EDENIED, "recipients[1]",
                   "recipients[1]: ml_sud is not a recipient the routes allow for referral");

    /* A broadcast narrowed to two subscribers, in sorted order. */
    char *some[] = {"ml_sud", "caf"}, *self[] = {"region"};
    td_sample_training_offer(&s, "OFF-2");
    s.env.recipients = some;
    s.env.n_recipients = 2;
    expect(fx, "region", &s, (const char *[]){"caf", "ml_sud", NULL});
    s.env.recipients = self;
    s.env.n_recipients = 1;
    expect_refused(fx, "region", &s, fake_lookup, PT_EDENIED, "recipients[0]",
                   "recipients[0]: region is not a recipient the routes allow for "
                   "training_offer");
}

static void
test_training_offer_broadcast(void **state)
{
    fixture_t *fx = *state;
    td_sample_t s;
    td_sample_training_offer(&s, "OFF-1");
    expect(fx, "region", &s,
           (const char *[]){"caf", "departement", "ml_nord", "ml_sud", "msa", "pole_emploi", NULL});
    /* The caller's array is the limit. */
    const char *out[3];
    size_t n = 99;
    pt_error_t err;
    assert_int_equal(router_resolve(fx->router, "region", &s.env, NULL, NULL, out, 3, &n, &err),
                     PT_ETOOLARGE);
    assert_string_equal(err.msg, "trainingOffer: the routes give more than 3 recipients");
    assert_int_equal(n, 0);
}

static void
test_answers_go_back_to_the_sender(void **state)
{
    fixture_t *fx = *state;
    td_sample_t s;
    td_sample_referral_status(&s, "ST-1", "REF-DEP-1");
    expect(fx, "ml_nord", &s, (const char *[]){"departement", NULL});
    /* The Département follows every referral: it receives the statuses too. */
    td_sample_referral_status(&s, "ST-2", "REF-ML-1");
    expect(fx, "region", &s, (const char *[]){"departement", "ml_nord", NULL});
    td_sample_reorientation_request(&s, "REQ-1");
    expect(fx, "ml_nord", &s, (const char *[]){"departement", NULL});
    td_sample_reorientation_answer(&s, "ANS-1", "REQ-FT-1");
    expect(fx, "departement", &s, (const char *[]){"pole_emploi", NULL});
    /* An answer by another partner (France Travail deciding by delegation) reaches the
     * Département as well as the one who asked. */
    td_sample_reorientation_answer(&s, "ANS-2", "REF-ML-1");
    expect(fx, "pole_emploi", &s, (const char *[]){"departement", "ml_nord", NULL});
}

/* correlation_seq names the message exactly, even when its id is shared. */
static void
test_correlation_by_seq(void **state)
{
    fixture_t *fx = *state;
    td_sample_t s;
    td_sample_referral_status(&s, "ST-20", "SAME-1");
    s.env.correlation_seq = 106;
    expect(fx, "region", &s, (const char *[]){"departement", "ml_nord", NULL});
    s.env.correlation_seq = 105;
    expect(fx, "region", &s, (const char *[]){"departement", NULL});
    /* The seq alone is enough. */
    td_sample_referral_status(&s, "ST-21", "");
    s.env.correlation_seq = 102;
    expect(fx, "region", &s, (const char *[]){"departement", "ml_nord", NULL});
}

static void
test_correlation_refusals(void **state)
{
    fixture_t *fx = *state;
    td_sample_t s;
    td_sample_referral_status(&s, "ST-3", "");
    expect_refused(fx, "ml_nord", &s, fake_lookup, PT_EDENIED, "correlationId",
                   "correlationId: is empty; a referral_status goes back to the sender of the "
                   "message it answers");
    td_sample_referral_status(&s, "ST-4", "NEVER-SEEN");
    expect_refused(fx, "ml_nord", &s, fake_lookup, PT_EDENIED, "correlationId",
                   "correlationId: no accepted message has this messageId");
    expect_refused(fx, "ml_nord", &s, NULL, PT_EDENIED, "correlationId",
                   "correlationId: no accepted message has this messageId");
    td_sample_referral_status(&s, "ST-5", "OLD-1");
    expect_refused(fx, "ml_nord", &s, fake_lookup, PT_EDENIED, "correlationId",
                   "correlationId: the sender of the message it answers, \"cap_emploi\", is "
                   "not a partner");
    /* A failing look-up is not a refusal: its own code comes back. */
    td_sample_referral_status(&s, "ST-6", "BROKEN");
    expect_refused(fx, "ml_nord", &s, fake_lookup, PT_ECORRUPT, "correlationId",
                   "correlationId: cannot look up the message it answers: integrity check "
                   "failed");
    /* An id that two senders used is never guessed. */
    td_sample_referral_status(&s, "ST-8", "SAME-1");
    expect_refused(fx, "region", &s, fake_lookup, PT_EINVALID, "correlationId",
                   "correlationId: ambiguous correlation id: messages of several senders "
                   "routed to you have this messageId; set correlationSeq to the Deliver's "
                   "seq");
    /* By seq: one that the replier never received, or whose message_id is not the
     * correlation_id, is refused in the same words (no oracle). */
    td_sample_referral_status(&s, "ST-9", "");
    s.env.correlation_seq = 999;
    expect_refused(fx, "region", &s, fake_lookup, PT_EDENIED, "correlationSeq",
                   "correlationSeq: no accepted message with this seq (and correlationId, "
                   "when set) was routed to you");
    td_sample_referral_status(&s, "ST-10", "REF-ML-1");
    s.env.correlation_seq = 101;
    expect_refused(fx, "region", &s, fake_lookup, PT_EDENIED, "correlationSeq",
                   "correlationSeq: no accepted message with this seq (and correlationId, "
                   "when set) was routed to you");
    td_sample_referral_status(&s, "ST-11", "");
    s.env.correlation_seq = 104;
    expect_refused(fx, "region", &s, fake_lookup, PT_EDENIED, "correlationSeq",
                   "correlationSeq: the sender of the message it answers, \"cap_emploi\", is "
                   "not a partner");
    /* Answering one's own message reaches no one (the Département, which receives every
     * status, answering its own referral). */
    td_sample_referral_status(&s, "ST-7", "REF-DEP-1");
    expect_refused(fx, "departement", &s, fake_lookup, PT_EDENIED, "referralStatus",
                   "referralStatus: no route delivers this message");
}

static void
test_beneficiary_event_and_no_body(void **state)
{
    fixture_t *fx = *state;
    td_sample_t s;
    td_sample_beneficiary_event(&s, "EV-1");
    expect(fx, "caf", &s, (const char *[]){"departement", NULL});
    expect(fx, "msa", &s, (const char *[]){"departement", NULL});
    s.env.body_case = PTIBUS__V1__ENVELOPE__BODY__NOT_SET;
    expect_refused(fx, "caf", &s, fake_lookup, PT_EINVALID, "envelope",
                   "envelope: the message has no body");
}

/* ---- conditions on every kind of field, with a configuration written here ---- */

#define KEY_A "R2zk+4+4q[+FV7XsIsJ03n3]-iB^o!+kkpc08I/u"
#define KEY_B "l(QeH<[Slbz]s9}+WTWTup8WHRYSew.9@6W3g)f("
#define KEY_C "fxx8aYC$%5FRx?WfFBUcph#pAH6xN}+${Z)jW=4*"

static const char conditions_yaml[] =
    "journal: {dir: j}\n"
    "keys: {server_secret: a, signing_secret: b, person_index_hmac: c}\n"
    "partners:\n"
    "  - {id: a, public_key: \"" KEY_A "\", subscribe: [training_offer]}\n"
    "  - {id: b, public_key: \"" KEY_B "\"}\n"
    "  - {id: c, public_key: \"" KEY_C "\"}\n"
    "routes:\n"
    "  - type: training_offer\n"
    "    when: {field: certifying, equals: true}\n"
    "    to: [a]\n"
    "  - type: training_offer\n"
    "    when: {field: total_hours, in: [100, 840]}\n"
    "    to: [b]\n"
    "  - type: training_offer\n"
    "    when: {field: provider.siret, equals: \"73282932000074\"}\n"
    "    to_subscribers: true\n"
    "  - type: training_offer\n"
    "    by_field: {field: recruitment_state, map: {RECRUITMENT_STATE_CLOSED: c}}\n"
    "  - type: sanction\n"
    "    by_field: {field: stage, map: {\"2\": c}}\n";

static int
setup_conditions(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    pt_error_t err;
    if (bconfig_load_buffer(conditions_yaml, strlen(conditions_yaml), "c.yaml", &fx->cfg, &err) !=
        0)
        fail_msg("%s", err.msg);
    if (router_new(fx->cfg, &fx->router, &err) != 0)
        fail_msg("%s", err.msg);
    *state = fx;
    return 0;
}

static void
test_conditions(void **state)
{
    fixture_t *fx = *state;
    td_sample_t s;
    td_sample_training_offer(&s, "OFF-3"); /* certifying, 840 hours, AFPA's SIRET, open */
    expect(fx, "x", &s, (const char *[]){"a", "b", NULL});
    s.offer.certifying = 0;
    expect(fx, "x", &s, (const char *[]){"a", "b", NULL}); /* a still subscribes */
    s.org_a.siret = "";
    expect(fx, "x", &s, (const char *[]){"b", NULL});
    s.offer.total_hours = 100;
    s.offer.recruitment_state = PTIBUS__V1__RECRUITMENT_STATE__RECRUITMENT_STATE_CLOSED;
    expect(fx, "x", &s, (const char *[]){"b", "c", NULL});
    s.offer.total_hours = 101;
    s.offer.provider = NULL; /* a missing message reads as defaults */
    expect(fx, "x", &s, (const char *[]){"c", NULL});
    s.offer.certifying = 1;
    expect(fx, "c", &s, (const char *[]){"a", NULL}); /* never the sender */
    td_sample_sanction(&s, "SAN-4", PTIBUS__V1__PAYER__PAYER_CAF);
    s.sanction.stage = 2;
    expect(fx, "x", &s, (const char *[]){"c", NULL});
    s.sanction.stage = 1;
    expect_refused(fx, "x", &s, NULL, PT_EDENIED, "sanction",
                   "sanction: no route delivers this message");
}

/* ---- the demo's sample messages (deploy/demo/messages/NN-<sender>-<what>.json) ---- */

/* What deploy/broker.yaml does with each sample, published in file order as deploy/demo.sh
 * does: its recipients (sorted), or the refusal expected. A sample missing here fails. */
static const struct demo_expect {
    const char *file;
    const char *refused; /* "validation", "acl", or NULL */
    const char *rcpt[8];
} demo_expect[] = {
    {"01-departement-orientation.json", NULL, {"caf", "pole_emploi"}},
    {"02-caf-beneficiary-event.json", NULL, {"departement"}},
    {"03-region-training-offer.json",
     NULL,
     {"caf", "departement", "ml_nord", "ml_sud", "msa", "pole_emploi"}},
    {"04-ml_nord-referral.json", NULL, {"region"}},
    {"05-departement-sanction.json", NULL, {"msa", "pole_emploi"}},
    {"06-departement-invalid-sanction.json", "validation", {NULL}},
    {"07-caf-not-allowed-sanction.json", "acl", {NULL}},
    {"08-ml_nord-reorientation-request.json", NULL, {"departement"}},
    {"09-departement-reorientation-answer.json", NULL, {"ml_nord"}},
    {"10-region-referral-status.json", NULL, {"departement", "ml_nord"}},
    {"11-pole_emploi-follow-up-event.json", NULL, {"departement"}},
    {"12-pole_emploi-orientation-delegated.json", NULL, {"caf", "departement"}},
    {"13-pole_emploi-sanction-proposal.json", NULL, {"departement"}},
};

#define DEMO_MAX 32

/* The samples accepted so far, for the correlation look-up: id, sender, recipients. */
typedef struct demo_journal {
    const char *replier;
    size_t n;
    struct {
        char id[PT_MESSAGE_ID_MAX + 1], sender[PT_PARTNER_ID_MAX + 1];
        const char *rcpt[MAX_RCPT];
        size_t n_rcpt;
    } msgs[DEMO_MAX];
} demo_journal_t;

static int
demo_lookup(void *arg, uint64_t seq, const char *message_id, char *sender, size_t cap)
{
    demo_journal_t *j = arg;
    (void)seq;
    for (size_t i = 0; i < j->n; i++)
        for (size_t k = 0; k < j->msgs[i].n_rcpt; k++)
            if (strcmp(j->msgs[i].id, message_id) == 0 &&
                strcmp(j->msgs[i].rcpt[k], j->replier) == 0) {
                snprintf(sender, cap, "%s", j->msgs[i].sender);
                return 0;
            }
    return PT_ENOTFOUND;
}

static const struct demo_expect *
demo_expected(const char *file)
{
    for (size_t i = 0; i < sizeof demo_expect / sizeof demo_expect[0]; i++)
        if (strcmp(demo_expect[i].file, file) == 0)
            return &demo_expect[i];
    fail_msg("%s: a sample this test does not know: add what it should do", file);
    return NULL;
}

/* Validates, checks the sender's ACL and routes one sample; records it when accepted. */
static void
demo_one(const fixture_t *fx, const char *path, demo_journal_t *j)
{
    const char *file = strrchr(path, '/') + 1;
    const struct demo_expect *want = demo_expected(file);
    char sender[PT_PARTNER_ID_MAX + 1];
    const char *dash = strchr(file, '-') + 1; /* as deploy/demo.sh: cut -d- -f2 */
    snprintf(sender, sizeof sender, "%.*s", (int)strcspn(dash, "-"), dash);
    const bconfig_partner_t *p = bconfig_partner_by_id(fx->cfg, sender);
    if (p == NULL)
        fail_msg("%s: sender %s is not a partner of deploy/broker.yaml", file, sender);
    ProtobufCMessage *m = NULL;
    pt_error_t err;
    if (pjson_parse_file(&ptibus__v1__envelope__descriptor, path, PT_MAX_MESSAGE_SIZE, &m, &err))
        fail_msg("%s: %s", file, err.msg);
    Ptibus__V1__Envelope *env = (Ptibus__V1__Envelope *)m;
    int vrc = validate_envelope(env, &err);
    if ((vrc != 0) != (want->refused && strcmp(want->refused, "validation") == 0))
        fail_msg("%s: validation %s", file, vrc ? err.msg : "passed");
    bool may = bconfig_may_send(p, codec_envelope_type(env));
    if (vrc == 0 && may != !(want->refused && strcmp(want->refused, "acl") == 0))
        fail_msg("%s: %s %s send %s", file, sender, may ? "may" : "may not",
                 codec_envelope_type(env));
    if (want->refused == NULL) {
        const char *out[MAX_RCPT];
        size_t n = 0, k = 0;
        j->replier = sender;
        if (router_resolve(fx->router, sender, env, demo_lookup, j, out, MAX_RCPT, &n, &err))
            fail_msg("%s: %s", file, err.msg);
        for (; want->rcpt[k]; k++)
            if (k >= n || strcmp(out[k], want->rcpt[k]) != 0)
                fail_msg("%s: recipient %zu is %s, expected %s", file, k, k < n ? out[k] : "none",
                         want->rcpt[k]);
        if (k != n)
            fail_msg("%s: %zu recipients, expected %zu", file, n, k);
        assert_true(j->n < DEMO_MAX);
        snprintf(j->msgs[j->n].id, sizeof j->msgs[j->n].id, "%s", env->message_id);
        snprintf(j->msgs[j->n].sender, sizeof j->msgs[j->n].sender, "%s", sender);
        memcpy(j->msgs[j->n].rcpt, out, n * sizeof out[0]);
        j->msgs[j->n++].n_rcpt = n;
    }
    codec_free(&m);
}

/* Every sample of deploy/demo/messages is valid for validate_envelope (but the one meant
 * to be refused), allowed to its sender (but the one meant not to be) and routed to
 * exactly the expected partners; every message type has a sample. */
static void
test_demo_samples(void **state)
{
    fixture_t *fx = *state;
    glob_t g;
    assert_int_equal(glob(PT_SOURCE_DIR "/deploy/demo/messages/*.json", 0, NULL, &g), 0);
    demo_journal_t *j = calloc(1, sizeof *j);
    bool seen[64] = {false};
    for (size_t i = 0; i < g.gl_pathc; i++) {
        demo_one(fx, g.gl_pathv[i], j);
        ProtobufCMessage *m = NULL;
        pt_error_t err;
        assert_int_equal(pjson_parse_file(&ptibus__v1__envelope__descriptor, g.gl_pathv[i],
                                          PT_MAX_MESSAGE_SIZE, &m, &err),
                         0);
        seen[((Ptibus__V1__Envelope *)m)->body_case % 64] = true;
        codec_free(&m);
    }
    const ProtobufCMessageDescriptor *ed = &ptibus__v1__envelope__descriptor;
    for (unsigned i = 0; i < ed->n_fields; i++)
        if ((ed->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && !seen[ed->fields[i].id % 64])
            fail_msg("no sample of %s in deploy/demo/messages", ed->fields[i].name);
    assert_int_equal(g.gl_pathc, sizeof demo_expect / sizeof demo_expect[0]);
    free(j);
    globfree(&g);
}

int
main(void)
{
    const struct CMUnitTest deploy[] = {
        cmocka_unit_test(test_sanction_decision_goes_to_the_payer_only),
        cmocka_unit_test(test_sanction_proposal_goes_to_the_departement),
        cmocka_unit_test(test_orientation),
        cmocka_unit_test(test_referral_goes_to_the_named_target),
        cmocka_unit_test(test_explicit_recipients),
        cmocka_unit_test(test_training_offer_broadcast),
        cmocka_unit_test(test_answers_go_back_to_the_sender),
        cmocka_unit_test(test_correlation_refusals),
        cmocka_unit_test(test_correlation_by_seq),
        cmocka_unit_test(test_beneficiary_event_and_no_body),
        cmocka_unit_test(test_demo_samples),
    };
    const struct CMUnitTest conditions[] = {
        cmocka_unit_test(test_conditions),
    };
    int failed = cmocka_run_group_tests_name("deploy/broker.yaml", deploy, setup_deploy, teardown);
    return failed +
           cmocka_run_group_tests_name("conditions", conditions, setup_conditions, teardown);
}
