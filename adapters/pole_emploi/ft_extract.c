/* ft_extract: the header is mapped once (the columns this codec reads, by name); each row
 * gives one FollowUpEvent built in stack storage, validated and handed over. */
#include "ft_extract.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "csv_table.h"
#include "validate.h"

enum col {
    X_UID,
    X_CIVILITE,
    X_NOM,
    X_PRENOM,
    X_DTNAI,
    X_STRUCT,
    X_REF_NOM,
    X_REF_PRENOM,
    X_REF_MAIL,
    X_MODALITE,
    X_STRUCT_SUIVI,
    X_SUIVI_DEBUT,
    X_COUNT
};

static const char *const names[X_COUNT] = {
    [X_UID] = "identifiant_unique_de",
    [X_CIVILITE] = "civilite",
    [X_NOM] = "nom",
    [X_PRENOM] = "prenom",
    [X_DTNAI] = "date_naissance",
    [X_STRUCT] = "struct_principale",
    [X_REF_NOM] = "referent_nom",
    [X_REF_PRENOM] = "referent_prenom",
    [X_REF_MAIL] = "referent_mail",
    [X_MODALITE] = "modalite_accompagnement",
    [X_STRUCT_SUIVI] = "struct_suivi",
    [X_SUIVI_DEBUT] = "suivi_debut",
};

typedef struct xctx {
    pt_record_fn fn;
    void *fn_ctx;
    pt_codec_outcome_t *out;
    uint64_t index;
    unsigned long line;
    int at[X_COUNT];
    size_t ncols;
} xctx_t;

static int
hand_over(xctx_t *c, const Ptibus__V1__Envelope *env, const pt_record_error_t *e)
{
    pt_record_t rec = {c->index++, c->line, env, e};
    if (env != NULL)
        c->out->records++;
    else
        c->out->errors++;
    return c->fn(c->fn_ctx, &rec);
}

static int
row_error(xctx_t *c, int k, const char *msg)
{
    pt_record_error_t e = {.line = c->line};
    snprintf(e.where, sizeof e.where, "%s", k >= 0 ? names[k] : "");
    if (k >= 0)
        snprintf(e.msg, sizeof e.msg, "line %lu: %s: %s", c->line, names[k], msg);
    else
        snprintf(e.msg, sizeof e.msg, "line %lu: %s", c->line, msg);
    return hand_over(c, NULL, &e);
}

/* A field, "" for the literal NULL. */
static const char *
get(const xctx_t *c, const csv_row_t *row, enum col k)
{
    const char *s = row->fields[c->at[k]];
    return strcmp(s, "NULL") == 0 ? "" : s;
}

/* "YYYY-MM-DD 00:00:00.0" (or "YYYY-MM-DD") -> "YYYY-MM-DD"; "" stays "". */
static bool
day_of(const char *in, char out[11])
{
    out[0] = '\0';
    if (in[0] == '\0')
        return true;
    size_t n = strlen(in);
    if (n != 10 && (n < 11 || in[10] != ' '))
        return false;
    snprintf(out, 11, "%.10s", in);
    return validate_is_date(out);
}

static int
map_header(xctx_t *c, const csv_row_t *row)
{
    c->ncols = row->n;
    for (int k = 0; k < X_COUNT; k++) {
        c->at[k] = -1;
        for (size_t i = 0; i < row->n && c->at[k] < 0; i++)
            if (strcmp(row->fields[i], names[k]) == 0)
                c->at[k] = (int)i;
        if (c->at[k] < 0) {
            c->out->error.line = row->line;
            snprintf(c->out->error.where, sizeof c->out->error.where, "%s", names[k]);
            snprintf(c->out->error.msg, sizeof c->out->error.msg,
                     "line %lu: the column %s is missing", row->line, names[k]);
            return PT_EMALFORMED;
        }
    }
    return 0;
}

typedef struct xmsg {
    Ptibus__V1__Envelope env;
    Ptibus__V1__FollowUpEvent ev;
    Ptibus__V1__PersonRef p;
    Ptibus__V1__OrgRef reporter, referent;
    Ptibus__V1__Agent agent;
    char birth[11], since[11], agent_name[160], id[33];
} xmsg_t;

static void
event_id(const csv_row_t *row, char out[33])
{
    crypto_generichash_state st;
    uint8_t d[16];
    crypto_generichash_init(&st, NULL, 0, sizeof d);
    crypto_generichash_update(&st, (const uint8_t *)"ft_extract", 11);
    for (size_t i = 0; i < row->n; i++)
        crypto_generichash_update(&st, (const uint8_t *)row->fields[i], strlen(row->fields[i]) + 1);
    crypto_generichash_final(&st, d, sizeof d);
    sodium_bin2hex(out, 33, d, sizeof d);
}

static void
build(const xctx_t *c, const csv_row_t *row, xmsg_t *m)
{
    ptibus__v1__person_ref__init(&m->p);
    m->p.france_travail_uid = (char *)get(c, row, X_UID);
    m->p.last_name = (char *)get(c, row, X_NOM);
    m->p.first_names = (char *)get(c, row, X_PRENOM);
    m->p.birth_date = m->birth;
    const char *civ = get(c, row, X_CIVILITE);
    m->p.sex = strcmp(civ, "MME") == 0  ? PTIBUS__V1__SEX__SEX_FEMALE
               : strcmp(civ, "M.") == 0 ? PTIBUS__V1__SEX__SEX_MALE
                                        : PTIBUS__V1__SEX__SEX_UNSPECIFIED;
    ptibus__v1__org_ref__init(&m->reporter);
    m->reporter.kind = PTIBUS__V1__ORG_KIND__ORG_KIND_FT;
    m->reporter.name = (char *)get(c, row, X_STRUCT);
    ptibus__v1__org_ref__init(&m->referent);
    ptibus__v1__agent__init(&m->agent);
    m->referent.kind = PTIBUS__V1__ORG_KIND__ORG_KIND_FT;
    m->referent.name = (char *)get(c, row, X_STRUCT_SUIVI);
    const char *rp = get(c, row, X_REF_PRENOM), *rn = get(c, row, X_REF_NOM);
    snprintf(m->agent_name, sizeof m->agent_name, "%s%s%s", rp, rp[0] && rn[0] ? " " : "", rn);
    m->agent.name = m->agent_name;
    m->agent.email = (char *)get(c, row, X_REF_MAIL);
    if (m->agent_name[0] || m->agent.email[0])
        m->referent.agent = &m->agent;
    ptibus__v1__follow_up_event__init(&m->ev);
    event_id(row, m->id);
    m->ev.event_id = m->id;
    m->ev.kind = PTIBUS__V1__FOLLOW_UP_KIND__FOLLOW_UP_KIND_SITUATION;
    m->ev.person = &m->p;
    m->ev.occurred_on = m->since;
    m->ev.modality_code = (char *)get(c, row, X_MODALITE);
    m->ev.reported_by = &m->reporter;
    m->ev.referent = &m->referent;
    ptibus__v1__envelope__init(&m->env);
    m->env.body_case = PTIBUS__V1__ENVELOPE__BODY_FOLLOW_UP_EVENT;
    m->env.follow_up_event = &m->ev;
}

static int
on_row(xctx_t *c, const csv_row_t *row)
{
    c->line = row->line;
    if (row->n != c->ncols) {
        char msg[80];
        snprintf(msg, sizeof msg, "%zu fields where the header has %zu", row->n, c->ncols);
        return row_error(c, -1, msg);
    }
    xmsg_t m;
    if (!day_of(get(c, row, X_DTNAI), m.birth))
        return row_error(c, X_DTNAI, "must be a date YYYY-MM-DD 00:00:00.0");
    if (!day_of(get(c, row, X_SUIVI_DEBUT), m.since))
        return row_error(c, X_SUIVI_DEBUT, "must be a date YYYY-MM-DD 00:00:00.0");
    if (get(c, row, X_UID)[0] == '\0')
        return row_error(c, X_UID, "is required (it identifies the person)");
    build(c, row, &m);
    pt_error_t err;
    if (validate_follow_up_event(&m.ev, &err) != 0)
        return row_error(c, -1, err.msg);
    return hand_over(c, &m.env, NULL);
}

static int
fx_header(void *ctx, const csv_row_t *row, pt_codec_outcome_t *out)
{
    (void)out; /* map_header fills it through the context */
    return map_header(ctx, row);
}

static int
fx_row(void *ctx, const csv_row_t *row)
{
    return on_row(ctx, row);
}

int
ft_extract_decode(csv_reader_t *r, pt_record_fn fn, void *ctx, pt_codec_outcome_t *outcome)
{
    xctx_t c = {.fn = fn, .fn_ctx = ctx, .out = outcome};
    return csv_table_decode(r, fx_header, fx_row, &c, outcome);
}

static int
ft_extract_codec_decode(const pt_codec_config_t *cfg, const pt_codec_source_t *src, pt_record_fn fn,
                        void *ctx, pt_codec_outcome_t *outcome)
{
    (void)cfg;
    return csv_table_run(src, NULL, ft_extract_decode, fn, ctx, outcome);
}

static const char *const ft_extract_patterns[] = {"*.csv", "*.CSV", NULL};

const pt_codec_ops_t ft_extract_codec = {
    .name = "ft_extract",
    .patterns = ft_extract_patterns,
    .decode = ft_extract_codec_decode,
    .encode = NULL,
};
