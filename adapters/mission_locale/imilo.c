/* imilo: the whole file is parsed by jansson (16 MiB at most), checked for depth, then
 * walked: each prescription and each return is one record built in stack storage whose
 * strings borrow from the jansson tree. French code words map to the contract's enums
 * through small tables, used both ways by the decoder and the encoder. */
#include "imilo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "validate.h"

typedef struct word {
    const char *word;
    int value;
} word_t;

static const word_t services[] = {
    {"ACCOMPAGNEMENT", PTIBUS__V1__SERVICE_KIND__SERVICE_KIND_ACCOMPANIMENT},
    {"FORMATION", PTIBUS__V1__SERVICE_KIND__SERVICE_KIND_TRAINING},
    {"ATELIER", PTIBUS__V1__SERVICE_KIND__SERVICE_KIND_WORKSHOP},
    {"AIDE_FINANCIERE", PTIBUS__V1__SERVICE_KIND__SERVICE_KIND_FINANCIAL_AID},
    {"AIDE_MATERIELLE", PTIBUS__V1__SERVICE_KIND__SERVICE_KIND_MATERIAL_AID},
    {"INFORMATION", PTIBUS__V1__SERVICE_KIND__SERVICE_KIND_INFORMATION},
    {"EMPLOI", PTIBUS__V1__SERVICE_KIND__SERVICE_KIND_JOB},
    {NULL, 0}};

static const word_t contacts[] = {
    {"TELEPHONE", PTIBUS__V1__CONTACT_PREFERENCE__CONTACT_PREFERENCE_PHONE},
    {"COURRIEL", PTIBUS__V1__CONTACT_PREFERENCE__CONTACT_PREFERENCE_EMAIL},
    {"COURRIER", PTIBUS__V1__CONTACT_PREFERENCE__CONTACT_PREFERENCE_MAIL},
    {"PRESENTIEL", PTIBUS__V1__CONTACT_PREFERENCE__CONTACT_PREFERENCE_IN_PERSON},
    {NULL, 0}};

static const word_t states[] = {
    {"RECUE", PTIBUS__V1__REFERRAL_STATE__REFERRAL_STATE_RECEIVED},
    {"ACCEPTEE", PTIBUS__V1__REFERRAL_STATE__REFERRAL_STATE_ACCEPTED},
    {"REFUSEE", PTIBUS__V1__REFERRAL_STATE__REFERRAL_STATE_REFUSED},
    {"COMMENCEE", PTIBUS__V1__REFERRAL_STATE__REFERRAL_STATE_STARTED},
    {"TERMINEE", PTIBUS__V1__REFERRAL_STATE__REFERRAL_STATE_COMPLETED},
    {"ABANDONNEE", PTIBUS__V1__REFERRAL_STATE__REFERRAL_STATE_ABANDONED},
    {"EXPIREE", PTIBUS__V1__REFERRAL_STATE__REFERRAL_STATE_EXPIRED},
    {NULL, 0}};

static const word_t kinds[] = {{"FT", PTIBUS__V1__ORG_KIND__ORG_KIND_FT},
                               {"ML", PTIBUS__V1__ORG_KIND__ORG_KIND_ML},
                               {"CD", PTIBUS__V1__ORG_KIND__ORG_KIND_CD},
                               {"CAF", PTIBUS__V1__ORG_KIND__ORG_KIND_CAF},
                               {"MSA", PTIBUS__V1__ORG_KIND__ORG_KIND_MSA},
                               {"CAP_EMPLOI", PTIBUS__V1__ORG_KIND__ORG_KIND_CAP_EMPLOI},
                               {"PLIE", PTIBUS__V1__ORG_KIND__ORG_KIND_PLIE},
                               {"CCAS", PTIBUS__V1__ORG_KIND__ORG_KIND_CCAS},
                               {"SIAE", PTIBUS__V1__ORG_KIND__ORG_KIND_SIAE},
                               {"REGION", PTIBUS__V1__ORG_KIND__ORG_KIND_REGION},
                               {"OTHER", PTIBUS__V1__ORG_KIND__ORG_KIND_OTHER},
                               {NULL, 0}};

static int
word_value(const word_t *t, const char *w)
{
    for (; t->word != NULL; t++)
        if (strcmp(t->word, w) == 0)
            return t->value;
    return 0;
}

static const char *
word_of(const word_t *t, int value)
{
    for (; t->word != NULL; t++)
        if (t->value == value)
            return t->word;
    return NULL;
}

/* ---- reading helpers: every problem is "<path>.<key>: what" ---- */

typedef struct ictx {
    pt_record_fn fn;
    void *fn_ctx;
    pt_codec_outcome_t *out;
    uint64_t index;
    char path[PT_ERROR_PATH_MAX];
    char bad[PT_ERROR_MSG_MAX]; /* the first problem of the current record */
} ictx_t;

static void
bad(ictx_t *c, const char *key, const char *what)
{
    if (c->bad[0] == '\0')
        snprintf(c->bad, sizeof c->bad, "%s%s%.60s: %.300s", c->path, key ? "." : "",
                 key ? key : "", what);
}

/* The string at obj[key] ("" when absent or null); a non-string is a problem. */
static const char *
str(ictx_t *c, const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return "";
    if (!json_is_string(v)) {
        bad(c, key, "must be a string");
        return "";
    }
    return json_string_value(v);
}

static const json_t *
object(ictx_t *c, const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (v != NULL && !json_is_object(v) && !json_is_null(v))
        bad(c, key, "must be an object");
    return json_is_object(v) ? v : NULL;
}

static int
word(ictx_t *c, const json_t *obj, const char *key, const word_t *t, const char *list)
{
    const char *w = str(c, obj, key);
    int v = w[0] ? word_value(t, w) : 0;
    if (w[0] && v == 0) {
        char what[200];
        snprintf(what, sizeof what, "must be one of %s", list);
        bad(c, key, what);
    }
    return v;
}

static void
org(ictx_t *c, const json_t *o, Ptibus__V1__OrgRef *r, Ptibus__V1__OrgKind default_kind)
{
    ptibus__v1__org_ref__init(r);
    r->kind = default_kind;
    if (o == NULL)
        return;
    int k = word(c, o, "type", kinds,
                 "FT, ML, CD, CAF, MSA, CAP_EMPLOI, PLIE, CCAS, SIAE, REGION, "
                 "OTHER");
    if (k != 0)
        r->kind = (Ptibus__V1__OrgKind)k;
    r->name = (char *)str(c, o, "nom");
    r->siret = (char *)str(c, o, "siret");
    r->partner_id = (char *)str(c, o, "partenaire");
}

static int
hand_over(ictx_t *c, const Ptibus__V1__Envelope *env)
{
    pt_record_error_t e = {.line = 0};
    pt_record_t rec = {c->index++, 0, NULL, NULL};
    if (c->bad[0] != '\0') {
        snprintf(e.where, sizeof e.where, "%s", c->path);
        snprintf(e.msg, sizeof e.msg, "%s", c->bad);
        rec.error = &e;
        c->out->errors++;
    } else {
        rec.env = env;
        c->out->records++;
    }
    return c->fn(c->fn_ctx, &rec);
}

/* ---- dossiers and prescriptions → Referral ---- */

typedef struct rmsg {
    Ptibus__V1__Envelope env;
    Ptibus__V1__Referral r;
    Ptibus__V1__PersonRef p;
    Ptibus__V1__OrgRef prescriber, target;
    Ptibus__V1__Agent agent;
    Ptibus__V1__TargetService svc;
} rmsg_t;

static void
person(ictx_t *c, const json_t *jeune, Ptibus__V1__PersonRef *p)
{
    ptibus__v1__person_ref__init(p);
    p->nir = (char *)str(c, jeune, "nir");
    p->last_name = (char *)str(c, jeune, "nom");
    p->first_names = (char *)str(c, jeune, "prenom");
    p->birth_date = (char *)str(c, jeune, "dateNaissance");
    p->france_travail_id = (char *)str(c, jeune, "idFranceTravail");
}

static int
prescription(ictx_t *c, const json_t *ml, const json_t *jeune, const json_t *pr)
{
    rmsg_t m;
    c->bad[0] = '\0';
    if (!json_is_object(pr))
        bad(c, NULL, "must be an object");
    person(c, jeune, &m.p);
    org(c, ml, &m.prescriber, PTIBUS__V1__ORG_KIND__ORG_KIND_ML);
    const json_t *adv = object(c, pr, "conseiller");
    ptibus__v1__agent__init(&m.agent);
    if (adv != NULL) {
        m.agent.name = (char *)str(c, adv, "nom");
        m.agent.email = (char *)str(c, adv, "courriel");
        m.prescriber.agent = &m.agent;
    }
    org(c, object(c, pr, "structure"), &m.target, PTIBUS__V1__ORG_KIND__ORG_KIND_UNSPECIFIED);
    ptibus__v1__target_service__init(&m.svc);
    const json_t *svc = object(c, pr, "service");
    if (svc != NULL) {
        m.svc.kind = (Ptibus__V1__ServiceKind)word(
            c, svc, "type", services,
            "ACCOMPAGNEMENT, FORMATION, ATELIER, AIDE_FINANCIERE, AIDE_MATERIELLE, INFORMATION, "
            "EMPLOI");
        m.svc.category = (char *)str(c, svc, "categorie");
        m.svc.training_action_ref = (char *)str(c, svc, "actionFormation");
    }
    ptibus__v1__referral__init(&m.r);
    m.r.referral_id = (char *)str(c, pr, "id");
    m.r.person = &m.p;
    m.r.prescriber_org = &m.prescriber;
    m.r.target_org = object(c, pr, "structure") ? &m.target : NULL;
    m.r.target_service = svc ? &m.svc : NULL;
    m.r.reason = (char *)str(c, pr, "motif");
    m.r.available_from = (char *)str(c, pr, "disponibleLe");
    m.r.contact_preference = (Ptibus__V1__ContactPreference)word(
        c, pr, "contact", contacts, "TELEPHONE, COURRIEL, COURRIER, PRESENTIEL");
    pt_error_t err;
    if (c->bad[0] == '\0' && validate_referral(&m.r, &err) != 0)
        bad(c, NULL, err.msg);
    ptibus__v1__envelope__init(&m.env);
    m.env.body_case = PTIBUS__V1__ENVELOPE__BODY_REFERRAL;
    m.env.referral = &m.r;
    return hand_over(c, &m.env);
}

static int
dossier(ictx_t *c, const json_t *ml, const json_t *d, size_t i)
{
    char base[48];
    snprintf(base, sizeof base, "$.dossiers[%zu]", i);
    snprintf(c->path, sizeof c->path, "%s", base);
    c->bad[0] = '\0';
    const json_t *jeune = json_is_object(d) ? object(c, d, "jeune") : NULL;
    const json_t *prs = json_is_object(d) ? json_object_get(d, "prescriptions") : NULL;
    if (!json_is_object(d))
        bad(c, NULL, "must be an object");
    else if (jeune == NULL)
        bad(c, "jeune", "is required (an object)");
    else if (!json_is_array(prs))
        bad(c, "prescriptions", "is required (an array)");
    if (c->bad[0] != '\0')
        return hand_over(c, NULL);
    for (size_t j = 0; j < json_array_size(prs); j++) {
        snprintf(c->path, sizeof c->path, "%s.prescriptions[%zu]", base, j);
        int rc = prescription(c, ml, jeune, json_array_get(prs, j));
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- returns → ReferralStatus ---- */

static int
retour(ictx_t *c, const json_t *r, size_t i)
{
    snprintf(c->path, sizeof c->path, "$.retours[%zu]", i);
    c->bad[0] = '\0';
    if (!json_is_object(r))
        bad(c, NULL, "must be an object");
    Ptibus__V1__ReferralStatus s = PTIBUS__V1__REFERRAL_STATUS__INIT;
    Ptibus__V1__OrgRef o;
    s.referral_id = (char *)str(c, r, "idPrescription");
    s.state = (Ptibus__V1__ReferralState)word(
        c, r, "statut", states,
        "RECUE, ACCEPTEE, REFUSEE, COMMENCEE, TERMINEE, ABANDONNEE, EXPIREE");
    s.effective_on = (char *)str(c, r, "date");
    s.reason = (char *)str(c, r, "motif");
    const json_t *st = object(c, r, "structure");
    org(c, st, &o, PTIBUS__V1__ORG_KIND__ORG_KIND_UNSPECIFIED);
    s.reporting_org = st ? &o : NULL;
    pt_error_t err;
    if (c->bad[0] == '\0' && validate_referral_status(&s, &err) != 0)
        bad(c, NULL, err.msg);
    Ptibus__V1__Envelope env = PTIBUS__V1__ENVELOPE__INIT;
    env.body_case = PTIBUS__V1__ENVELOPE__BODY_REFERRAL_STATUS;
    env.referral_status = &s;
    return hand_over(c, &env);
}

/* ---- the file ---- */

static bool
depth_ok(const json_t *v, int depth)
{
    if (depth > PT_IMILO_MAX_DEPTH)
        return false;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if (!depth_ok(json_array_get(v, i), depth + 1))
                return false;
    } else if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) if (!depth_ok(x, depth + 1)) return false;
    }
    return true;
}

static int refuse(pt_codec_outcome_t *out, int code, unsigned long line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
refuse(pt_codec_outcome_t *out, int code, unsigned long line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    out->error.line = line;
    vsnprintf(out->error.msg, sizeof out->error.msg, fmt, ap);
    va_end(ap);
    return code;
}

/* jansson's own texts may quote the input ("near 'Dupont'"): only its code and position
 * are used. */
static int
parse_error(pt_codec_outcome_t *out, const json_error_t *e)
{
    const char *what;
    switch (json_error_code(e)) {
    case json_error_invalid_utf8:
        return refuse(out, PT_EMALFORMED, (unsigned long)e->line, "offset %d: invalid UTF-8",
                      e->position);
    case json_error_duplicate_key:
        what = "a key appears twice in an object";
        break;
    case json_error_numeric_overflow:
        what = "an integer is out of range";
        break;
    case json_error_premature_end_of_input:
        what = "the file ends too early (truncated?)";
        break;
    case json_error_null_character:
        what = "a NUL character";
        break;
    default:
        what = "malformed JSON";
        break;
    }
    return refuse(out, PT_EMALFORMED, (unsigned long)e->line, "line %d, column %d: %s", e->line,
                  e->column, what);
}

static int
walk(ictx_t *c, const json_t *root)
{
    const json_t *ml = json_object_get(root, "missionLocale");
    const json_t *ds = json_object_get(root, "dossiers"), *rs = json_object_get(root, "retours");
    const json_t *ver = json_object_get(root, "version");
    if (ver != NULL && !(json_is_integer(ver) && json_integer_value(ver) == 1))
        return refuse(c->out, PT_EVERSION, 0, "$.version: only version 1 is known");
    if ((ds != NULL && !json_is_array(ds)) || (rs != NULL && !json_is_array(rs)) ||
        (ml != NULL && !json_is_object(ml)))
        return refuse(c->out, PT_EMALFORMED, 0,
                      "$: dossiers and retours must be arrays, missionLocale an object");
    int rc = 0;
    for (size_t i = 0; i < json_array_size(ds) && rc >= 0; i++)
        rc = dossier(c, ml, json_array_get(ds, i), i);
    for (size_t i = 0; i < json_array_size(rs) && rc >= 0; i++)
        rc = retour(c, json_array_get(rs, i), i);
    return rc < 0 ? rc : 0;
}

int
imilo_decode(const char *buf, size_t len, pt_record_fn fn, void *ctx, pt_codec_outcome_t *outcome)
{
    memset(outcome, 0, sizeof *outcome);
    if (len > PT_IMILO_MAX_FILE)
        return refuse(outcome, PT_ETOOLARGE, 0, "the file is over %d bytes", PT_IMILO_MAX_FILE);
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) /* Windows tools write a BOM */
        buf += 3, len -= 3;
    json_error_t e;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &e);
    if (root == NULL)
        return parse_error(outcome, &e);
    int rc;
    if (!json_is_object(root))
        rc = refuse(outcome, PT_EMALFORMED, 1, "$: must be an object");
    else if (!depth_ok(root, 0))
        rc = refuse(outcome, PT_ETOOLARGE, 0, "$: nested deeper than %d", PT_IMILO_MAX_DEPTH);
    else {
        ictx_t c = {.fn = fn, .fn_ctx = ctx, .out = outcome};
        rc = walk(&c, root);
    }
    json_decref(root);
    return rc;
}

/* ---- encoder: statuses back to the Mission Locale ---- */

static int
set_str(json_t *o, const char *key, const char *v)
{
    if (v == NULL || v[0] == '\0')
        return 0;
    return json_object_set_new(o, key, json_string(v)) == 0 ? 0 : -ENOMEM;
}

static json_t *
status_json(const Ptibus__V1__ReferralStatus *s)
{
    json_t *o = json_object();
    int rc = o ? 0 : -ENOMEM;
    if (rc == 0)
        rc = set_str(o, "idPrescription", s->referral_id);
    if (rc == 0)
        rc = set_str(o, "statut", word_of(states, s->state));
    if (rc == 0)
        rc = set_str(o, "date", s->effective_on);
    if (rc == 0)
        rc = set_str(o, "motif", s->reason);
    if (rc == 0 && s->reporting_org != NULL) {
        json_t *st = json_object();
        const Ptibus__V1__OrgRef *r = s->reporting_org;
        rc = st ? json_object_set_new(o, "structure", st) : -ENOMEM;
        if (rc == 0)
            rc = set_str(st, "type", word_of(kinds, r->kind));
        if (rc == 0)
            rc = set_str(st, "nom", r->name);
        if (rc == 0)
            rc = set_str(st, "siret", r->siret);
        if (rc == 0)
            rc = set_str(st, "partenaire", r->partner_id);
    }
    if (rc != 0)
        json_decref(o);
    return rc == 0 ? o : NULL;
}

static int
imilo_encode(const pt_codec_config_t *cfg, const Ptibus__V1__Envelope *const *envs, size_t count,
             pt_write_fn write, void *ctx, pt_error_t *err)
{
    (void)cfg;
    for (size_t i = 0; i < count; i++)
        if (envs[i]->body_case != PTIBUS__V1__ENVELOPE__BODY_REFERRAL_STATUS)
            return pt_error_set(err, PT_EINVALID, NULL,
                                "envelope %zu: only referral statuses have an i-milo form", i);
    json_t *root = json_pack("{s:i, s:[]}", "version", 1, "retours");
    json_t *list = root ? json_object_get(root, "retours") : NULL;
    int rc = list ? 0 : -ENOMEM;
    for (size_t i = 0; i < count && rc == 0; i++) {
        json_t *s = status_json(envs[i]->referral_status);
        rc = s && json_array_append_new(list, s) == 0 ? 0 : -ENOMEM;
    }
    char *text = rc == 0 ? json_dumps(root, JSON_INDENT(2)) : NULL;
    if (rc == 0 && text == NULL)
        rc = -ENOMEM;
    if (rc == 0)
        rc = write(ctx, text, strlen(text));
    if (rc == -ENOMEM)
        pt_error_set(err, rc, NULL, "out of memory");
    free(text);
    json_decref(root);
    return rc;
}

static int
imilo_codec_decode(const pt_codec_config_t *cfg, const pt_codec_source_t *src, pt_record_fn fn,
                   void *ctx, pt_codec_outcome_t *outcome)
{
    (void)cfg;
    memset(outcome, 0, sizeof *outcome);
    size_t cap = 64 * 1024, len = 0;
    char *buf = malloc(cap);
    int rc = buf ? 0 : -ENOMEM;
    while (rc == 0) {
        if (len == cap && cap <= PT_IMILO_MAX_FILE) {
            char *b = realloc(buf, cap * 2);
            if (b == NULL) {
                rc = -ENOMEM;
                break;
            }
            buf = b, cap *= 2;
        }
        if (len == cap) {
            rc = refuse(outcome, PT_ETOOLARGE, 0, "the file is over %d bytes", PT_IMILO_MAX_FILE);
            break;
        }
        ssize_t n = read(src->fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = refuse(outcome, -EIO, 0, "read error: %s", strerror(errno));
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    if (rc == 0)
        rc = imilo_decode(buf, len, fn, ctx, outcome);
    free(buf);
    return rc;
}

static const char *const imilo_patterns[] = {"*.json", "*.JSON", NULL};

const pt_codec_ops_t imilo_codec = {
    .name = "imilo",
    .patterns = imilo_patterns,
    .decode = imilo_codec_decode,
    .encode = imilo_encode,
};
