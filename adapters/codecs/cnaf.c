/* cnaf: a household (InfosFoyerRSA) is gathered into fixed-size fields by one table of
 * element paths (relative to Racine), checked, turned into its events, validated as a
 * whole, and only then handed over: a household goes whole or is one record error. */
#include "cnaf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "nir.h"
#include "validate.h"

#define REL_MAX 256
#define FIELD_MAX 200 /* bytes of one value, in UTF-8 (NOM is 28 windows-1252 characters) */
#define HH "InfosFoyerRSA/"
#define PERS HH "Personne/"

typedef char fld_t[FIELD_MAX];

typedef struct cperson {
    fld_t nom, nomnai, prenom, dtnai, typedtnai, nir, sexe, idassedic, topdd;
    fld_t natprest, rolepers; /* of the Prestations being read */
    fld_t role;               /* ROLEPERS of the Prestations whose NATPREST is RSA */
} cperson_t;

typedef struct household {
    fld_t fonorg, numorg, matricule, dtdemrsa, etat, moticlo, motisusvers, motisusdro;
    fld_t codepos, numcom;
    unsigned addresses; /* Adresse blocks seen: only the first gives the address */
    bool anomaly;
    cperson_t *p;
    size_t np;
    unsigned long line;
    pt_record_error_t err; /* err.msg[0] != 0: the household is refused */
} household_t;

typedef struct cctx {
    xml_safe_t *x;
    pt_record_fn fn;
    void *fn_ctx;
    pt_codec_outcome_t *out;
    fld_t dtref, nbtot, nbtotano;
    char rel[REL_MAX];
    size_t rel_n;                         /* strlen(rel) */
    size_t rel_len[PT_XML_MAX_DEPTH + 1]; /* rel_n before each open element */
    /* The field table's entry of each open element (NULL: none), found when it opens. */
    const struct field *field_at[PT_XML_MAX_DEPTH + 1];
    char text[FIELD_MAX];
    size_t text_len;
    bool text_over;
    bool in_household;
    household_t h;
    cperson_t *persons; /* PT_CNAF_MAX_PERSONS, h.p while a household is open */
    uint64_t index, households, anomalies;
} cctx_t;

enum owner { O_FLOW, O_HOUSEHOLD, O_PERSON };

typedef struct field {
    const char *rel;
    size_t len; /* strlen(rel) */
    enum owner owner;
    size_t off;
} field_t;

#define F(f) offsetof(cctx_t, f)
#define H(f) offsetof(household_t, f)
#define P(f) offsetof(cperson_t, f)

#define FLD(rel, ...)                                                                              \
    {                                                                                              \
        rel, sizeof(rel) - 1, __VA_ARGS__                                                          \
    }

static const field_t fields[] = {
    FLD("IdentificationFlux/DTREF", O_FLOW, F(dtref)),
    FLD("TransmissionFlux/NBTOTDOSRSATRANSM", O_FLOW, F(nbtot)),
    FLD("TransmissionFlux/NBTOTDOSRSATRANSMANO", O_FLOW, F(nbtotano)),
    FLD(HH "IdentificationRSA/Organisme/FONORG", O_HOUSEHOLD, H(fonorg)),
    FLD(HH "IdentificationRSA/Organisme/NUMORG", O_HOUSEHOLD, H(numorg)),
    FLD(HH "IdentificationRSA/Organisme/MATRICULE", O_HOUSEHOLD, H(matricule)),
    FLD(HH "IdentificationRSA/DemandeRSA/DTDEMRSA", O_HOUSEHOLD, H(dtdemrsa)),
    FLD(HH "PrestationRSA/SituationDossierRSA/EtatDossierRSA/ETATDOSRSA", O_HOUSEHOLD, H(etat)),
    FLD(HH "PrestationRSA/SituationDossierRSA/FinDroit/MOTICLORSA", O_HOUSEHOLD, H(moticlo)),
    FLD(HH "PrestationRSA/SituationDossierRSA/SuspensionVersement/MOTISUSVERSRSA", O_HOUSEHOLD,
        H(motisusvers)),
    FLD(HH "PrestationRSA/SituationDossierRSA/SuspensionDroit/MOTISUSDRORSA", O_HOUSEHOLD,
        H(motisusdro)),
    FLD(HH "DonneesAdministratives/Adresse/AdresseDetailleeFrance/CODEPOS", O_HOUSEHOLD,
        H(codepos)),
    FLD(HH "DonneesAdministratives/Adresse/AdresseDetailleeFrance/NUMCOM", O_HOUSEHOLD, H(numcom)),
    FLD(PERS "Identification/NOM", O_PERSON, P(nom)),
    FLD(PERS "Identification/NOMNAI", O_PERSON, P(nomnai)),
    FLD(PERS "Identification/PRENOM", O_PERSON, P(prenom)),
    FLD(PERS "Identification/DTNAI", O_PERSON, P(dtnai)),
    FLD(PERS "Identification/TYPEDTNAI", O_PERSON, P(typedtnai)),
    FLD(PERS "Identification/NIR", O_PERSON, P(nir)),
    FLD(PERS "Identification/SEXE", O_PERSON, P(sexe)),
    FLD(PERS "Prestations/NATPREST", O_PERSON, P(natprest)),
    FLD(PERS "Prestations/ROLEPERS", O_PERSON, P(rolepers)),
    FLD(PERS "DossierPoleEmploi/IDASSEDIC", O_PERSON, P(idassedic)),
    FLD(PERS "MontantCalculDroitRSAPersonne/TOPPERSDRODEVORSA", O_PERSON, P(topdd)),
};

static int
fatal(cctx_t *c, int code, const char *msg)
{
    pt_record_error_t *e = &c->out->error;
    e->line = xml_safe_line(c->x);
    snprintf(e->where, sizeof e->where, "%s", xml_safe_path(c->x));
    snprintf(e->msg, sizeof e->msg, "line %lu: %s", e->line, msg);
    return code;
}

/* The first problem of the household; later ones are not reported. */
static void
household_error(cctx_t *c, const char *msg)
{
    pt_record_error_t *e = &c->h.err;
    if (e->msg[0] != '\0')
        return;
    e->line = xml_safe_line(c->x);
    snprintf(e->where, sizeof e->where, "%s", xml_safe_path(c->x));
    snprintf(e->msg, sizeof e->msg, "line %lu: %s", e->line, msg);
}

/* Forgets the household; the persons it used are zeroed for the next one (the persons
 * buffer, 72 KiB, is allocated once per flow: zeroing all of it per household cost more
 * than reading the household). */
static void
household_reset(cctx_t *c)
{
    if (c->h.p != NULL)
        memset(c->h.p, 0, c->h.np * sizeof *c->h.p);
    memset(&c->h, 0, sizeof c->h);
}

static int
open_household(cctx_t *c, unsigned long line)
{
    household_reset(c);
    if (c->persons == NULL &&
        (c->persons = calloc(PT_CNAF_MAX_PERSONS, sizeof *c->persons)) == NULL)
        return -ENOMEM;
    c->h.p = c->persons;
    c->h.line = line;
    c->in_household = true;
    c->households++;
    return 0;
}

/* The field table's entry for the element at rel, or NULL. */
static const field_t *
find_field(const char *rel, size_t len)
{
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (fields[i].len == len && memcmp(fields[i].rel, rel, len) == 0)
            return &fields[i];
    return NULL;
}

static bool
rel_is(const cctx_t *c, const char *rel, size_t len)
{
    return c->rel_n == len && memcmp(c->rel, rel, len) == 0;
}

#define REL_IS(c, lit) rel_is(c, lit, sizeof(lit) - 1)

/* Appends "/name" (or "name" at the top) to rel, truncated to REL_MAX - 1 bytes (too long
 * to be a field: it then matches nothing). */
static void
rel_push(cctx_t *c, const xml_safe_node_t *n)
{
    size_t len = c->rel_n, room = REL_MAX - 1 - len, nl = strlen(n->name);
    c->rel_len[n->depth] = len;
    char *p = c->rel + len;
    if (len > 0 && room > 0)
        *p++ = '/', room--;
    if (nl > room)
        nl = room;
    memcpy(p, n->name, nl);
    p[nl] = '\0';
    c->rel_n = (size_t)(p + nl - c->rel);
    c->field_at[n->depth] = find_field(c->rel, c->rel_n);
}

static int
on_start(cctx_t *c, const xml_safe_node_t *n)
{
    c->text_len = 0;
    c->text_over = false;
    if (n->depth == 0) {
        if (strcmp(n->name, "Racine") != 0 || n->ns[0] != '\0')
            return fatal(c, PT_EMALFORMED,
                         "the root element must be Racine, without a namespace (vrsb0801.xsd)");
        c->rel_len[0] = 0;
        c->field_at[0] = NULL;
        return 0;
    }
    rel_push(c, n);
    if (REL_IS(c, "InfosFoyerRSA"))
        return open_household(c, n->line);
    if (!c->in_household)
        return 0;
    if (REL_IS(c, HH "Personne")) {
        if (c->h.np == PT_CNAF_MAX_PERSONS)
            household_error(c, "the household has more than 30 persons");
        else
            c->h.np++;
    } else if (REL_IS(c, HH "Anomalie")) {
        c->h.anomaly = true;
    } else if (REL_IS(c, HH "DonneesAdministratives/Adresse")) {
        c->h.addresses++;
    }
    return 0;
}

static void
on_text(cctx_t *c, const xml_safe_node_t *n)
{
    if (c->text_len + n->value_len >= FIELD_MAX) {
        c->text_over = true;
        return;
    }
    memcpy(c->text + c->text_len, n->value, n->value_len);
    c->text_len += n->value_len;
    c->text[c->text_len] = '\0';
}

/* Values are padded ("CG ", "00000001"): trimmed on both sides. */
static const char *
trimmed(cctx_t *c)
{
    char *s = c->text, *e = c->text + c->text_len;
    *e = '\0';
    while (s < e && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        *--e = '\0';
    return s;
}

static cperson_t *
cur_person(cctx_t *c)
{
    return c->h.np > 0 ? &c->h.p[c->h.np - 1] : NULL;
}

/* A NIR is checked where it is read, so the error names its element; the message never
 * holds the NIR. */
static void
check_nir(cctx_t *c, cperson_t *p)
{
    char norm[PT_NIR_NORM_SIZE];
    pt_error_t err;
    if (p->nir[0] == '\0')
        return;
    if (nir_normalise(p->nir, norm, &err) != 0) {
        p->nir[0] = '\0';
        return household_error(c, err.msg);
    }
    snprintf(p->nir, sizeof p->nir, "%s", norm);
}

static void
on_person_end(cctx_t *c)
{
    cperson_t *p = cur_person(c);
    if (p == NULL)
        return;
    if (REL_IS(c, PERS "Prestations")) {
        if (strcmp(p->natprest, "RSA") == 0)
            snprintf(p->role, sizeof p->role, "%s", p->rolepers);
        p->natprest[0] = p->rolepers[0] = '\0';
    } else if (REL_IS(c, PERS "Identification/NIR")) {
        check_nir(c, p);
    }
}

static void
store_field(cctx_t *c, unsigned depth)
{
    const field_t *f = c->field_at[depth];
    if (f == NULL)
        return;
    char *dst = NULL;
    if (f->owner == O_FLOW)
        dst = (char *)c + f->off;
    else if (f->owner == O_HOUSEHOLD && c->in_household &&
             (c->h.addresses <= 1 || strstr(f->rel, "/Adresse/") == NULL))
        dst = (char *)&c->h + f->off;
    else if (f->owner == O_PERSON && c->in_household && cur_person(c) != NULL)
        dst = (char *)cur_person(c) + f->off;
    if (dst == NULL)
        return;
    if (c->text_over)
        return household_error(c, "the value is longer than 200 bytes");
    const char *t = trimmed(c); /* shorter than FIELD_MAX: on_text keeps it so */
    memmove(dst, t, strlen(t) + 1);
}

static int emit_household(cctx_t *c);

static int
on_end(cctx_t *c, const xml_safe_node_t *n)
{
    int rc = 0;
    if (n->depth == 0)
        return 0;
    store_field(c, n->depth);
    if (c->in_household)
        on_person_end(c);
    if (REL_IS(c, "InfosFoyerRSA")) {
        rc = emit_household(c);
        household_reset(c);
        c->in_household = false;
    }
    c->rel_n = c->rel_len[n->depth];
    c->rel[c->rel_n] = '\0';
    c->text_len = 0;
    return rc;
}

/* The events of one household, built in caller storage (all strings borrowed from h). */
typedef struct events {
    Ptibus__V1__BeneficiaryEvent ev[PT_CNAF_MAX_PERSONS + 1];
    Ptibus__V1__PersonRef person[PT_CNAF_MAX_PERSONS];
    char ids[PT_CNAF_MAX_PERSONS + 1][33];
    size_t n;
} events_t;

static const struct {
    const char *code;
    Ptibus__V1__PersonRole role;
} roles[] = {{"DEM", PTIBUS__V1__PERSON_ROLE__PERSON_ROLE_DEM},
             {"CJT", PTIBUS__V1__PERSON_ROLE__PERSON_ROLE_CJT},
             {"ENF", PTIBUS__V1__PERSON_ROLE__PERSON_ROLE_ENF},
             {"AUT", PTIBUS__V1__PERSON_ROLE__PERSON_ROLE_AUT}};

static Ptibus__V1__PersonRole
role_of(const char *code)
{
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (strcmp(code, roles[i].code) == 0)
            return roles[i].role;
    return PTIBUS__V1__PERSON_ROLE__PERSON_ROLE_UNSPECIFIED;
}

/* A birth date that is not a real date is passed on only when TYPEDTNAI says it is a
 * normal one (N): then it is an error; partial dates of other types are left out. */
static void
person_ref(const household_t *h, cperson_t *p, Ptibus__V1__Payer payer, Ptibus__V1__PersonRef *r)
{
    ptibus__v1__person_ref__init(r);
    r->nir = p->nir;
    if (validate_is_date(p->dtnai) || strcmp(p->typedtnai, "N") == 0 || p->typedtnai[0] == 0)
        r->birth_date = p->dtnai;
    r->last_name = p->nom;
    r->birth_name = p->nomnai;
    r->first_names = p->prenom;
    r->sex = strcmp(p->sexe, "1") == 0   ? PTIBUS__V1__SEX__SEX_MALE
             : strcmp(p->sexe, "2") == 0 ? PTIBUS__V1__SEX__SEX_FEMALE
                                         : PTIBUS__V1__SEX__SEX_UNSPECIFIED;
    r->payer = payer;
    r->payer_office = (char *)h->numorg;
    r->file_number = (char *)h->matricule;
    r->role = role_of(p->role);
    r->france_travail_id = p->idassedic;
}

/* A stable event id that names nobody: BLAKE2b-128 of the household's file, the flow's
 * reference date, the event kind and the person's rank, in hex. */
static void
event_id(const cctx_t *c, int kind, size_t rank, char out[33])
{
    char in[256];
    uint8_t d[16];
    int n = snprintf(in, sizeof in, "cnaf|%s|%s|%s|%s|%d|%zu", c->h.fonorg, c->h.numorg,
                     c->h.matricule, c->dtref, kind, rank);
    crypto_generichash(d, sizeof d, (const uint8_t *)in, (size_t)n, NULL, 0);
    sodium_bin2hex(out, 33, d, sizeof d);
}

static Ptibus__V1__RsaFileState
file_state(const char *code)
{
    if (strlen(code) != 1 || code[0] < '0' || code[0] > '6')
        return PTIBUS__V1__RSA_FILE_STATE__RSA_FILE_STATE_UNSPECIFIED;
    return (Ptibus__V1__RsaFileState)(code[0] - '0' + 1);
}

static void
event_common(cctx_t *c, Ptibus__V1__BeneficiaryEvent *e)
{
    household_t *h = &c->h;
    ptibus__v1__beneficiary_event__init(e);
    e->file_state = file_state(h->etat);
    e->file_state_code = h->etat;
    e->reference_date = c->dtref;
    e->claim_date = h->dtdemrsa;
    e->closure_reason_code = h->moticlo;
    /* a suspended right (3) has its own reason; a suspended payment (4) another */
    e->suspension_reason_code = strcmp(h->etat, "3") == 0 && h->motisusdro[0] ? h->motisusdro
                                : h->motisusvers[0]                           ? h->motisusvers
                                                                              : h->motisusdro;
    e->postal_code = h->codepos;
    e->insee_commune = h->numcom;
    e->household_size = (uint32_t)h->np;
}

/* The claimant (role DEM in the RSA Prestations), else the first person. */
static size_t
claimant(const household_t *h)
{
    for (size_t i = 0; i < h->np; i++)
        if (strcmp(h->p[i].role, "DEM") == 0)
            return i;
    return 0;
}

static void
build_events(cctx_t *c, Ptibus__V1__Payer payer, events_t *ev)
{
    household_t *h = &c->h;
    for (size_t i = 0; i < h->np; i++)
        person_ref(h, &h->p[i], payer, &ev->person[i]);
    Ptibus__V1__BeneficiaryEvent *e = &ev->ev[0];
    event_common(c, e);
    e->kind = strcmp(h->etat, "0") == 0
                  ? PTIBUS__V1__BENEFICIARY_EVENT_KIND__BENEFICIARY_EVENT_KIND_NEW_CLAIM
                  : PTIBUS__V1__BENEFICIARY_EVENT_KIND__BENEFICIARY_EVENT_KIND_FILE_STATE_CHANGED;
    size_t dem = claimant(h);
    e->person = &ev->person[dem];
    e->droits_et_devoirs = strcmp(h->p[dem].topdd, "1") == 0;
    event_id(c, e->kind, dem, ev->ids[0]);
    e->event_id = ev->ids[0];
    ev->n = 1;
    for (size_t i = 0; i < h->np; i++) {
        if (strcmp(h->p[i].topdd, "1") != 0)
            continue;
        e = &ev->ev[ev->n];
        event_common(c, e);
        e->kind = PTIBUS__V1__BENEFICIARY_EVENT_KIND__BENEFICIARY_EVENT_KIND_DROITS_ET_DEVOIRS;
        e->person = &ev->person[i];
        e->droits_et_devoirs = true;
        event_id(c, e->kind, i, ev->ids[ev->n]);
        e->event_id = ev->ids[ev->n++];
    }
}

static int
hand_over(cctx_t *c, const Ptibus__V1__BeneficiaryEvent *e, const pt_record_error_t *err)
{
    Ptibus__V1__Envelope env = PTIBUS__V1__ENVELOPE__INIT;
    pt_record_t rec = {c->index++, c->h.line, NULL, err};
    if (e != NULL) {
        env.body_case = PTIBUS__V1__ENVELOPE__BODY_BENEFICIARY_EVENT;
        env.beneficiary_event = (Ptibus__V1__BeneficiaryEvent *)e;
        rec.env = &env;
        c->out->records++;
    } else {
        c->out->errors++;
    }
    return c->fn(c->fn_ctx, &rec);
}

static int
refuse_household(cctx_t *c, const char *where, const char *msg)
{
    pt_record_error_t e = {.line = c->h.line};
    snprintf(e.where, sizeof e.where, "%s", where);
    snprintf(e.msg, sizeof e.msg, "line %lu: %s", c->h.line, msg);
    return hand_over(c, NULL, &e);
}

static int
emit_household(cctx_t *c)
{
    household_t *h = &c->h;
    char where[64];
    if (c->households > 1) /* positions as xml_safe writes them: none for the first */
        snprintf(where, sizeof where, "/Racine/InfosFoyerRSA[%llu]",
                 (unsigned long long)c->households);
    else
        snprintf(where, sizeof where, "/Racine/InfosFoyerRSA");
    if (h->anomaly)
        c->anomalies++;
    if (h->err.msg[0] != '\0')
        return hand_over(c, NULL, &h->err);
    if (h->np == 0)
        return refuse_household(c, where, "the household has no Personne");
    Ptibus__V1__Payer payer = strcmp(h->fonorg, "CAF") == 0 ? PTIBUS__V1__PAYER__PAYER_CAF
                              : strcmp(h->fonorg, "MSA") == 0
                                  ? PTIBUS__V1__PAYER__PAYER_MSA
                                  : PTIBUS__V1__PAYER__PAYER_UNSPECIFIED;
    if (payer == PTIBUS__V1__PAYER__PAYER_UNSPECIFIED)
        return refuse_household(c, where, "IdentificationRSA/Organisme/FONORG must be CAF or MSA");
    events_t *ev = malloc(sizeof *ev);
    if (ev == NULL)
        return -ENOMEM;
    build_events(c, payer, ev);
    pt_error_t err;
    bool valid = true;
    for (size_t i = 0; i < ev->n && valid; i++)
        valid = validate_beneficiary_event(&ev->ev[i], &err) == 0;
    /* a household goes whole or is one error: none of its events after a refusal */
    int rc = valid ? 0 : refuse_household(c, where, err.msg);
    for (size_t i = 0; i < ev->n && rc == 0 && valid; i++)
        rc = hand_over(c, &ev->ev[i], NULL);
    free(ev);
    return rc;
}

/* Counts announced by TransmissionFlux, checked against what the file holds. */
static void
check_counts(cctx_t *c)
{
    pt_record_error_t *w = &c->out->warning;
    char *end;
    unsigned long long tot = strtoull(c->nbtot, &end, 10);
    if (c->nbtot[0] == '\0' || *end != '\0')
        snprintf(w->msg, sizeof w->msg,
                 "TransmissionFlux/NBTOTDOSRSATRANSM is missing or not a number");
    else if (tot != c->households)
        snprintf(
            w->msg, sizeof w->msg,
            "TransmissionFlux/NBTOTDOSRSATRANSM announces %llu households, the file holds %llu",
            tot, (unsigned long long)c->households);
    else if (c->nbtotano[0] != '\0' && strtoull(c->nbtotano, &end, 10) != c->anomalies)
        snprintf(w->msg, sizeof w->msg,
                 "TransmissionFlux/NBTOTDOSRSATRANSMANO announces %s households with an anomaly, "
                 "the file holds %llu",
                 c->nbtotano, (unsigned long long)c->anomalies);
    if (w->msg[0] != '\0')
        snprintf(w->where, sizeof w->where, "/Racine/TransmissionFlux");
}

int
cnaf_decode(xml_safe_t *x, pt_record_fn fn, void *ctx, pt_codec_outcome_t *outcome)
{
    memset(outcome, 0, sizeof *outcome);
    cctx_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    *c = (cctx_t){.x = x, .fn = fn, .fn_ctx = ctx, .out = outcome};
    xml_safe_node_t n;
    pt_error_t err;
    int rc;
    while ((rc = xml_safe_next(x, &n, &err)) == 1) {
        if (n.depth >= PT_XML_MAX_DEPTH)
            rc = fatal(c, PT_ETOOLARGE, "elements nested too deep");
        else if (n.kind == XML_SAFE_START)
            rc = on_start(c, &n);
        else if (n.kind == XML_SAFE_TEXT)
            on_text(c, &n), rc = 0;
        else
            rc = on_end(c, &n);
        if (rc < 0)
            break;
    }
    if (rc < 0 && outcome->error.msg[0] == '\0' && err.code == rc)
        xml_safe_record_error(x, &err, &outcome->error);
    else if (rc == -ENOMEM)
        fatal(c, rc, "out of memory");
    if (rc == 0)
        check_counts(c);
    household_reset(c);
    free(c->persons);
    free(c);
    return rc;
}

static int
cnaf_codec_decode(const pt_codec_config_t *cfg, const pt_codec_source_t *src, pt_record_fn fn,
                  void *ctx, pt_codec_outcome_t *outcome)
{
    xml_safe_t *x;
    int rc = xml_safe_open_source(&x, src, cfg, outcome);
    if (rc < 0)
        return rc;
    rc = cnaf_decode(x, fn, ctx, outcome);
    xml_safe_close(&x);
    return rc;
}

static const char *const cnaf_patterns[] = {"*.xml", "*.XML", NULL};

const pt_codec_ops_t cnaf_codec = {
    .name = "cnaf_rsa",
    .patterns = cnaf_patterns,
    .decode = cnaf_codec_decode,
    .encode = NULL,
};
