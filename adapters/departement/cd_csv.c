/* cd_csv: the header is matched once against a table of labels (a `*` and the case do
 * not matter), giving each known column its index; each row is then read through that
 * map into one Orientation, validated and handed over. */
#include "cd_csv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "csv_table.h"
#include "validate.h"

enum col {
    C_SI_ID,
    C_DECISION_ID,
    C_VERSION,
    C_NIR,
    C_PRENOM,
    C_NOM,
    C_DTNAI,
    C_PAYER,
    C_FILE,
    C_OFFICE,
    C_FT_ID,
    C_CATEGORY,
    C_ORG,
    C_ORG_KIND,
    C_ORG_PARTNER,
    C_DECIDED,
    C_STARTS,
    C_ENDS,
    C_TERRITORY,
    C_COUNT
};

static const struct column {
    const char *label;
    const char *alias;
    bool required;
} columns[C_COUNT] = {
    [C_SI_ID] = {"Identifiant dans le SI", NULL, true},
    [C_DECISION_ID] = {"Identifiant décision", NULL, true},
    [C_VERSION] = {"Version", NULL, false},
    [C_NIR] = {"NIR", NULL, false},
    [C_PRENOM] = {"Prénom", NULL, true},
    [C_NOM] = {"Nom", NULL, true},
    [C_DTNAI] = {"Date de naissance", NULL, true},
    [C_PAYER] = {"Organisme payeur", NULL, false},
    [C_FILE] = {"Numéro allocataire CAF/MSA", NULL, false},
    [C_OFFICE] = {"Numéro d'organisme", NULL, false},
    [C_FT_ID] = {"Identifiant Pôle emploi", "Identifiant France Travail", false},
    [C_CATEGORY] = {"Orientation", NULL, true},
    [C_ORG] = {"Structure référente", NULL, true},
    [C_ORG_KIND] = {"Type de structure", NULL, true},
    [C_ORG_PARTNER] = {"Identifiant partenaire de la structure", NULL, false},
    [C_DECIDED] = {"Date de décision", NULL, true},
    [C_STARTS] = {"Date de début", NULL, false},
    [C_ENDS] = {"Date de fin", NULL, false},
    [C_TERRITORY] = {"Territoire", NULL, false},
};

typedef struct cdctx {
    pt_record_fn fn;
    void *fn_ctx;
    pt_codec_outcome_t *out;
    uint64_t index;
    unsigned long line;
    int at[C_COUNT]; /* the file's column of each known column, or -1 */
    size_t ncols;    /* fields in the header */
} cdctx_t;

bool
cd_csv_date(const char *in, char out[11])
{
    out[0] = '\0';
    if (in[0] == '\0')
        return true;
    if (strlen(in) != 10)
        return false;
    if (in[4] == '-' && in[7] == '-')
        snprintf(out, 11, "%s", in);
    else if ((in[2] == '/' && in[5] == '/') || (in[2] == '-' && in[5] == '-'))
        snprintf(out, 11, "%.4s-%.2s-%.2s", in + 6, in + 3, in);
    if (!validate_is_date(out)) {
        out[0] = '\0';
        return false;
    }
    return true;
}

/* "Prénom*" and " prénom " both name the column "Prénom". */
static bool
label_is(const char *field, const char *label)
{
    if (label == NULL)
        return false;
    while (*field == ' ')
        field++;
    size_t n = strlen(field);
    while (n > 0 && (field[n - 1] == ' ' || field[n - 1] == '*'))
        n--;
    return n == strlen(label) && strncasecmp(field, label, n) == 0;
}

static int
map_header(cdctx_t *c, const csv_row_t *row)
{
    c->ncols = row->n;
    for (int k = 0; k < C_COUNT; k++) {
        c->at[k] = -1;
        for (size_t i = 0; i < row->n && c->at[k] < 0; i++)
            if (label_is(row->fields[i], columns[k].label) ||
                label_is(row->fields[i], columns[k].alias))
                c->at[k] = (int)i;
        if (c->at[k] < 0 && columns[k].required) {
            c->out->error.line = row->line;
            snprintf(c->out->error.where, sizeof c->out->error.where, "%s", columns[k].label);
            snprintf(c->out->error.msg, sizeof c->out->error.msg,
                     "line %lu: the required column \"%s*\" is missing", row->line,
                     columns[k].label);
            return PT_EMALFORMED;
        }
    }
    return 0;
}

static const char *
get(const cdctx_t *c, const csv_row_t *row, enum col k)
{
    int i = c->at[k];
    if (i < 0 || (size_t)i >= row->n)
        return "";
    char *s = row->fields[i];
    while (*s == ' ')
        s++;
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == ' ')
        s[--n] = '\0';
    return s;
}

static int
hand_over(cdctx_t *c, const Ptibus__V1__Envelope *env, const pt_record_error_t *e)
{
    pt_record_t rec = {c->index++, c->line, env, e};
    if (env != NULL)
        c->out->records++;
    else
        c->out->errors++;
    return c->fn(c->fn_ctx, &rec);
}

static int
row_error(cdctx_t *c, int k, const char *msg)
{
    pt_record_error_t e = {.line = c->line};
    snprintf(e.where, sizeof e.where, "%s", k >= 0 ? columns[k].label : "");
    if (k >= 0)
        snprintf(e.msg, sizeof e.msg, "line %lu: %s: %s", c->line, columns[k].label, msg);
    else
        snprintf(e.msg, sizeof e.msg, "line %lu: %s", c->line, msg);
    return hand_over(c, NULL, &e);
}

static const struct {
    const char *label, *cnaf, *name;
    Ptibus__V1__OrientationCategory category;
} categories[] = {
    {"social", "PS", "SOCIAL", PTIBUS__V1__ORIENTATION_CATEGORY__ORIENTATION_CATEGORY_SOCIAL},
    {"professionnel", "PP", "PRO", PTIBUS__V1__ORIENTATION_CATEGORY__ORIENTATION_CATEGORY_PRO},
    {"socio-professionnel", "AS", "SOCIO_PRO",
     PTIBUS__V1__ORIENTATION_CATEGORY__ORIENTATION_CATEGORY_SOCIO_PRO},
};

static int
category_of(const char *s)
{
    for (size_t i = 0; i < sizeof categories / sizeof categories[0]; i++)
        if (strcasecmp(s, categories[i].label) == 0 || strcasecmp(s, categories[i].cnaf) == 0 ||
            strcasecmp(s, categories[i].name) == 0)
            return (int)i;
    return -1;
}

/* The organisation kinds by their short proto names (FT, ML, CD, CAP_EMPLOI...). */
static Ptibus__V1__OrgKind
kind_of(const char *s)
{
    const ProtobufCEnumDescriptor *d = &ptibus__v1__org_kind__descriptor;
    for (unsigned i = 0; i < d->n_values; i++)
        if (d->values[i].value != 0 && strcasecmp(d->values[i].name + strlen("ORG_KIND_"), s) == 0)
            return (Ptibus__V1__OrgKind)d->values[i].value;
    return PTIBUS__V1__ORG_KIND__ORG_KIND_UNSPECIFIED;
}

/* Everything a row points to; strings borrowed from the row. */
typedef struct cdmsg {
    Ptibus__V1__Envelope env;
    Ptibus__V1__Orientation o;
    Ptibus__V1__PersonRef p;
    Ptibus__V1__OrgRef referent, decider;
    char birth[11], decided[11], starts[11], ends[11];
} cdmsg_t;

/* The dates of the row; returns the failing column or -1. */
static int
row_dates(const cdctx_t *c, const csv_row_t *row, cdmsg_t *m)
{
    static const enum col cols[] = {C_DTNAI, C_DECIDED, C_STARTS, C_ENDS};
    char *outs[] = {m->birth, m->decided, m->starts, m->ends};
    for (size_t i = 0; i < 4; i++)
        if (!cd_csv_date(get(c, row, cols[i]), outs[i]))
            return (int)cols[i];
    return -1;
}

static void
person(const cdctx_t *c, const csv_row_t *row, cdmsg_t *m)
{
    Ptibus__V1__PersonRef *p = &m->p;
    ptibus__v1__person_ref__init(p);
    p->departement_id = (char *)get(c, row, C_SI_ID);
    p->nir = (char *)get(c, row, C_NIR);
    p->first_names = (char *)get(c, row, C_PRENOM);
    p->last_name = (char *)get(c, row, C_NOM);
    p->birth_date = m->birth;
    p->file_number = (char *)get(c, row, C_FILE);
    p->payer_office = (char *)get(c, row, C_OFFICE);
    p->france_travail_id = (char *)get(c, row, C_FT_ID);
    const char *payer = get(c, row, C_PAYER);
    p->payer = strcasecmp(payer, "CAF") == 0   ? PTIBUS__V1__PAYER__PAYER_CAF
               : strcasecmp(payer, "MSA") == 0 ? PTIBUS__V1__PAYER__PAYER_MSA
                                               : PTIBUS__V1__PAYER__PAYER_UNSPECIFIED;
}

/* What a row needs beyond the contract's rules; on success *cat, *kind and *version are
 * set. Returns 0, or the (non-negative) column that is wrong with *what. */
static int
check_row(const cdctx_t *c, const csv_row_t *row, cdmsg_t *m, int *cat, Ptibus__V1__OrgKind *kind,
          uint32_t *version, const char **what)
{
    for (int k = 0; k < C_COUNT; k++) /* missing trailing fields are empty ones */
        if (columns[k].required && get(c, row, (enum col)k)[0] == '\0')
            return *what = "is required", k;
    int bad = row_dates(c, row, m);
    if (bad >= 0)
        return *what = "must be a date YYYY-MM-DD, DD/MM/YYYY or DD-MM-YYYY", bad;
    const char *payer = get(c, row, C_PAYER);
    if (payer[0] && strcasecmp(payer, "CAF") != 0 && strcasecmp(payer, "MSA") != 0)
        return *what = "must be CAF or MSA", C_PAYER;
    if ((*cat = category_of(get(c, row, C_CATEGORY))) < 0)
        return *what = "must be social, professionnel or socio-professionnel (or PS, PP, AS)",
               C_CATEGORY;
    if ((*kind = kind_of(get(c, row, C_ORG_KIND))) == PTIBUS__V1__ORG_KIND__ORG_KIND_UNSPECIFIED)
        return *what = "must be FT, ML, CD, CAF, MSA, CAP_EMPLOI, PLIE, CCAS, SIAE, REGION or "
                       "OTHER",
               C_ORG_KIND;
    const char *v = get(c, row, C_VERSION);
    char *end = NULL;
    unsigned long n = v[0] ? strtoul(v, &end, 10) : 1;
    if (v[0] && (*end != '\0' || v[0] == '-' || n < 1 || n > PT_VERSION_MAX))
        return *what = "must be a whole number from 1 to 10000", C_VERSION;
    *version = (uint32_t)n;
    return -1;
}

static void
build(const cdctx_t *c, const csv_row_t *row, cdmsg_t *m, int cat, Ptibus__V1__OrgKind kind,
      uint32_t version)
{
    person(c, row, m);
    ptibus__v1__org_ref__init(&m->referent);
    ptibus__v1__org_ref__init(&m->decider);
    m->referent.kind = kind;
    m->referent.name = (char *)get(c, row, C_ORG);
    m->referent.partner_id = (char *)get(c, row, C_ORG_PARTNER);
    m->decider.kind = PTIBUS__V1__ORG_KIND__ORG_KIND_CD;
    Ptibus__V1__Orientation *o = &m->o;
    ptibus__v1__orientation__init(o);
    o->orientation_id = (char *)get(c, row, C_DECISION_ID);
    o->version = version;
    o->person = &m->p;
    o->category = categories[cat].category;
    o->category_code = (char *)categories[cat].cnaf;
    o->referent_org = &m->referent;
    o->deciding_org = &m->decider;
    o->status = PTIBUS__V1__ORIENTATION_STATUS__ORIENTATION_STATUS_ORIENTED;
    o->origin = PTIBUS__V1__ORIENTATION_ORIGIN__ORIENTATION_ORIGIN_MANUAL;
    o->decided_on = m->decided, o->starts_on = m->starts, o->ends_on = m->ends;
    ptibus__v1__envelope__init(&m->env);
    m->env.territory = (char *)get(c, row, C_TERRITORY);
    m->env.body_case = PTIBUS__V1__ENVELOPE__BODY_ORIENTATION;
    m->env.orientation = o;
}

static int
on_row(cdctx_t *c, const csv_row_t *row)
{
    c->line = row->line;
    if (row->n > c->ncols) {
        char msg[80];
        snprintf(msg, sizeof msg, "%zu fields where the header has %zu", row->n, c->ncols);
        return row_error(c, -1, msg);
    }
    cdmsg_t m;
    int cat;
    Ptibus__V1__OrgKind kind;
    uint32_t version;
    const char *what;
    int bad = check_row(c, row, &m, &cat, &kind, &version, &what);
    if (bad >= 0)
        return row_error(c, bad, what);
    build(c, row, &m, cat, kind, version);
    pt_error_t err;
    if (validate_orientation(m.env.orientation, &err) != 0)
        return row_error(c, -1, err.msg);
    return hand_over(c, &m.env, NULL);
}

static int
cd_header(void *ctx, const csv_row_t *row, pt_codec_outcome_t *out)
{
    (void)out; /* map_header fills it through the context */
    return map_header(ctx, row);
}

static int
cd_row(void *ctx, const csv_row_t *row)
{
    return on_row(ctx, row);
}

int
cd_csv_decode(csv_reader_t *r, pt_record_fn fn, void *ctx, pt_codec_outcome_t *outcome)
{
    cdctx_t c = {.fn = fn, .fn_ctx = ctx, .out = outcome};
    return csv_table_decode(r, cd_header, cd_row, &c, outcome);
}

static int
cd_csv_codec_decode(const pt_codec_config_t *cfg, const pt_codec_source_t *src, pt_record_fn fn,
                    void *ctx, pt_codec_outcome_t *outcome)
{
    (void)cfg;
    return csv_table_run(src, NULL, cd_csv_decode, fn, ctx, outcome);
}

static const char *const cd_csv_patterns[] = {"*.csv", "*.CSV", NULL};

const pt_codec_ops_t cd_csv_codec = {
    .name = "cd_orientation_csv",
    .patterns = cd_csv_patterns,
    .decode = cd_csv_codec_decode,
    .encode = NULL,
};
