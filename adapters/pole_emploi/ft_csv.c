/* ft_csv: one row is parsed into a small struct of normalised fields, then dispatched by
 * its code through one table to the builder of its message family, validated with the
 * broker's rules and handed over. */
#include "ft_csv.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "nir.h"
#include "csv_table.h"
#include "validate.h"

static const char *const header[PT_FT_CSV_COLUMNS] = {
    "nir", "identifiant", "nom", "prenom", "date_naissance", "date", "code", "motif"};

enum { C_NIR, C_ID, C_NOM, C_PRENOM, C_DTNAI, C_DATE, C_CODE, C_MOTIF };

typedef struct ftrow {
    char nir[PT_NIR_NORM_SIZE];
    char birth[11], date[11];
    const char *id, *nom, *prenom, *code, *motif;
    unsigned long line;
    char event_id[33];
} ftrow_t;

typedef struct ftctx {
    pt_record_fn fn;
    void *fn_ctx;
    pt_codec_outcome_t *out;
    uint64_t index;
} ftctx_t;

static int
hand_over(ftctx_t *c, unsigned long line, const Ptibus__V1__Envelope *env,
          const pt_record_error_t *e)
{
    pt_record_t rec = {c->index++, line, env, e};
    if (env != NULL)
        c->out->records++;
    else
        c->out->errors++;
    return c->fn(c->fn_ctx, &rec);
}

static int
row_error(ftctx_t *c, unsigned long line, const char *column, const char *msg)
{
    pt_record_error_t e = {.line = line};
    snprintf(e.where, sizeof e.where, "%s", column ? column : "");
    if (column != NULL && strncmp(msg, column, strlen(column)) != 0)
        snprintf(e.msg, sizeof e.msg, "line %lu: %s: %s", line, column, msg);
    else
        snprintf(e.msg, sizeof e.msg, "line %lu: %s", line, msg);
    return hand_over(c, line, NULL, &e);
}

/* Leading and trailing spaces of a field are not data. */
static char *
trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/* DD/MM/YYYY -> YYYY-MM-DD (a real date); "" stays "". */
static bool
parse_date(const char *in, char out[11])
{
    out[0] = '\0';
    if (in[0] == '\0')
        return true;
    if (strlen(in) != 10 || in[2] != '/' || in[5] != '/')
        return false;
    snprintf(out, 11, "%.4s-%.2s-%.2s", in + 6, in + 3, in);
    if (!validate_is_date(out)) {
        out[0] = '\0';
        return false;
    }
    return true;
}

/* A stable id that names nobody: BLAKE2b-128 of the row's fields, in hex. */
static void
row_id(char **f, size_t n, char out[33])
{
    crypto_generichash_state st;
    uint8_t d[16];
    crypto_generichash_init(&st, NULL, 0, sizeof d);
    crypto_generichash_update(&st, (const uint8_t *)"ft_csv", 7);
    for (size_t i = 0; i < n; i++)
        crypto_generichash_update(&st, (const uint8_t *)f[i], strlen(f[i]) + 1);
    crypto_generichash_final(&st, d, sizeof d);
    sodium_bin2hex(out, 33, d, sizeof d);
}

static bool
header_ok(const csv_row_t *row)
{
    if (row->n != PT_FT_CSV_COLUMNS)
        return false;
    for (size_t i = 0; i < PT_FT_CSV_COLUMNS; i++)
        if (strcasecmp(trim(row->fields[i]), header[i]) != 0)
            return false;
    return true;
}

/* Fills r from the row; returns the failing column (and *what), or NULL. */
static const char *
parse_row(const csv_row_t *row, ftrow_t *r, const char **what, pt_error_t *err)
{
    char **f = row->fields;
    for (size_t i = 0; i < PT_FT_CSV_COLUMNS; i++)
        f[i] = trim(f[i]);
    r->nir[0] = '\0';
    if (f[C_NIR][0] != '\0' && nir_normalise(f[C_NIR], r->nir, err) != 0)
        return *what = err->msg, header[C_NIR];
    if (!parse_date(f[C_DTNAI], r->birth))
        return *what = "must be a date DD/MM/YYYY", header[C_DTNAI];
    if (f[C_DATE][0] == '\0' || !parse_date(f[C_DATE], r->date))
        return *what = "must be a date DD/MM/YYYY", header[C_DATE];
    for (char *p = f[C_CODE]; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    r->id = f[C_ID], r->nom = f[C_NOM], r->prenom = f[C_PRENOM];
    r->code = f[C_CODE], r->motif = f[C_MOTIF];
    r->line = row->line;
    row_id(f, PT_FT_CSV_COLUMNS, r->event_id);
    return NULL;
}

static void
person_of(const ftrow_t *r, Ptibus__V1__PersonRef *p)
{
    ptibus__v1__person_ref__init(p);
    p->nir = (char *)r->nir;
    p->france_travail_id = (char *)r->id; /* text: leading zeros kept */
    p->last_name = (char *)r->nom;
    p->first_names = (char *)r->prenom;
    p->birth_date = (char *)r->birth;
}

static const struct {
    const char *code;
    Ptibus__V1__FollowUpKind kind;
} follow_ups[] = {
    {"ACC", PTIBUS__V1__FOLLOW_UP_KIND__FOLLOW_UP_KIND_ACCOMPANIMENT_STARTED},
    {"INS", PTIBUS__V1__FOLLOW_UP_KIND__FOLLOW_UP_KIND_REGISTERED},
    {"REP", PTIBUS__V1__FOLLOW_UP_KIND__FOLLOW_UP_KIND_BACK_TO_WORK},
    {"RAD", PTIBUS__V1__FOLLOW_UP_KIND__FOLLOW_UP_KIND_STRUCK_OFF},
};

static int
emit_follow_up(ftctx_t *c, const ftrow_t *r, Ptibus__V1__FollowUpKind kind)
{
    Ptibus__V1__PersonRef person;
    Ptibus__V1__OrgRef ft = PTIBUS__V1__ORG_REF__INIT;
    Ptibus__V1__FollowUpEvent ev = PTIBUS__V1__FOLLOW_UP_EVENT__INIT;
    person_of(r, &person);
    ft.kind = PTIBUS__V1__ORG_KIND__ORG_KIND_FT;
    ev.event_id = (char *)r->event_id;
    ev.kind = kind;
    ev.person = &person;
    ev.occurred_on = (char *)r->date;
    ev.source_code = (char *)r->code;
    ev.reason = (char *)r->motif;
    ev.reported_by = &ft;
    pt_error_t err;
    if (validate_follow_up_event(&ev, &err) != 0)
        return row_error(c, r->line, NULL, err.msg);
    Ptibus__V1__Envelope env = PTIBUS__V1__ENVELOPE__INIT;
    env.body_case = PTIBUS__V1__ENVELOPE__BODY_FOLLOW_UP_EVENT;
    env.follow_up_event = &ev;
    return hand_over(c, r->line, &env, NULL);
}

/* A PSA's motif starts with the legal ground's code (docs/formats/ft_csv.md). */
static const struct {
    const char *code;
    Ptibus__V1__LegalGround ground;
} grounds[] = {
    {"REFUS_CER", PTIBUS__V1__LEGAL_GROUND__LEGAL_GROUND_REFUSAL_OF_COMMITMENT_CONTRACT},
    {"MANQUEMENT", PTIBUS__V1__LEGAL_GROUND__LEGAL_GROUND_NON_COMPLIANCE},
    {"PERSISTANCE", PTIBUS__V1__LEGAL_GROUND__LEGAL_GROUND_PERSISTENCE},
    {"REITERATION", PTIBUS__V1__LEGAL_GROUND__LEGAL_GROUND_REPETITION},
    {"REFUS_CONTROLE", PTIBUS__V1__LEGAL_GROUND__LEGAL_GROUND_REFUSAL_OF_CONTROL},
};

static Ptibus__V1__LegalGround
ground_of(const char *motif)
{
    for (size_t i = 0; i < sizeof grounds / sizeof grounds[0]; i++) {
        size_t n = strlen(grounds[i].code);
        if (strncasecmp(motif, grounds[i].code, n) == 0 &&
            (motif[n] == '\0' || strchr(" :-", motif[n]) != NULL))
            return grounds[i].ground;
    }
    return PTIBUS__V1__LEGAL_GROUND__LEGAL_GROUND_UNSPECIFIED;
}

/* A proposal of the first measure the law provides (suspension-remobilisation, stage 1,
 * at its minimum rate and duration): the Département decides the actual measure. */
static int
emit_sanction(ftctx_t *c, const ftrow_t *r)
{
    Ptibus__V1__PersonRef person;
    Ptibus__V1__OrgRef ft = PTIBUS__V1__ORG_REF__INIT;
    Ptibus__V1__Sanction s = PTIBUS__V1__SANCTION__INIT;
    person_of(r, &person);
    ft.kind = PTIBUS__V1__ORG_KIND__ORG_KIND_FT;
    s.sanction_id = (char *)r->event_id;
    s.person = &person;
    s.phase = PTIBUS__V1__SANCTION_PHASE__SANCTION_PHASE_PROPOSAL;
    s.legal_ground = ground_of(r->motif);
    if (s.legal_ground == PTIBUS__V1__LEGAL_GROUND__LEGAL_GROUND_UNSPECIFIED)
        return row_error(c, r->line, header[C_MOTIF],
                         "a PSA must start with its legal ground: REFUS_CER, MANQUEMENT, "
                         "PERSISTANCE, REITERATION or REFUS_CONTROLE");
    s.measure = PTIBUS__V1__SANCTION_MEASURE__SANCTION_MEASURE_SUSPENSION_REMOBILISATION;
    s.stage = 1;
    s.rate_percent = PT_SANCTION_RATE_MIN;
    s.duration_months = PT_SANCTION_MONTHS_MIN;
    s.starts_on = (char *)r->date;
    s.proposed_by = &ft;
    pt_error_t err;
    if (validate_sanction(&s, &err) != 0)
        return row_error(c, r->line, NULL, err.msg);
    Ptibus__V1__Envelope env = PTIBUS__V1__ENVELOPE__INIT;
    env.body_case = PTIBUS__V1__ENVELOPE__BODY_SANCTION;
    env.sanction = &s;
    return hand_over(c, r->line, &env, NULL);
}

static int
on_row(ftctx_t *c, const csv_row_t *row)
{
    if (row->n != PT_FT_CSV_COLUMNS) {
        char msg[96];
        snprintf(msg, sizeof msg, "%zu fields where the header has %d", row->n, PT_FT_CSV_COLUMNS);
        return row_error(c, row->line, NULL, msg);
    }
    ftrow_t r;
    const char *what = NULL;
    pt_error_t err;
    const char *col = parse_row(row, &r, &what, &err);
    if (col != NULL)
        return row_error(c, row->line, col, what);
    if (strcmp(r.code, "PSA") == 0)
        return emit_sanction(c, &r);
    for (size_t i = 0; i < sizeof follow_ups / sizeof follow_ups[0]; i++)
        if (strcmp(r.code, follow_ups[i].code) == 0)
            return emit_follow_up(c, &r, follow_ups[i].kind);
    return row_error(c, row->line, header[C_CODE], "must be ACC, INS, PSA, REP or RAD");
}

static int
refuse(pt_codec_outcome_t *out, unsigned long line, const char *msg)
{
    out->error.line = line;
    snprintf(out->error.msg, sizeof out->error.msg, "%s", msg);
    return PT_EMALFORMED;
}

static int
ft_header(void *ctx, const csv_row_t *row, pt_codec_outcome_t *out)
{
    (void)ctx;
    if (!header_ok(row))
        return refuse(out, row->line,
                      "line 1: the header must be "
                      "nir;identifiant;nom;prenom;date_naissance;date;code;motif");
    return 0;
}

static int
ft_row(void *ctx, const csv_row_t *row)
{
    return on_row(ctx, row);
}

int
ft_csv_decode(csv_reader_t *r, pt_record_fn fn, void *ctx, pt_codec_outcome_t *outcome)
{
    ftctx_t c = {fn, ctx, outcome, 0};
    return csv_table_decode(r, ft_header, ft_row, &c, outcome);
}

static int
ft_csv_codec_decode(const pt_codec_config_t *cfg, const pt_codec_source_t *src, pt_record_fn fn,
                    void *ctx, pt_codec_outcome_t *outcome)
{
    (void)cfg;
    return csv_table_run(src, NULL, ft_csv_decode, fn, ctx, outcome);
}

static const char *const ft_csv_patterns[] = {"*.csv", "*.CSV", NULL};

const pt_codec_ops_t ft_csv_codec = {
    .name = "ft_csv",
    .patterns = ft_csv_patterns,
    .decode = ft_csv_codec_decode,
    .encode = NULL,
};
