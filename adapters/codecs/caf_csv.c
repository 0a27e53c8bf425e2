/* caf_csv: each message is flattened into one array of 24 column strings (and back) by a
 * pair of functions per family; enums are written as their value names without the
 * enum's prefix ("SUSPENSION_REMOBILISATION"), through protobuf-c's descriptors. */
#include "caf_csv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "csv_table.h"
#include "validate.h"

const char *const caf_csv_header[PT_CAF_CSV_COLUMNS] = {"type",
                                                        "id",
                                                        "payeur",
                                                        "numorg",
                                                        "matricule",
                                                        "nir",
                                                        "nom",
                                                        "nom_naissance",
                                                        "prenoms",
                                                        "date_naissance",
                                                        "sexe",
                                                        "role",
                                                        "foyer",
                                                        "decision",
                                                        "code",
                                                        "statut",
                                                        "etape",
                                                        "taux",
                                                        "duree_mois",
                                                        "debut",
                                                        "fin",
                                                        "date_decision",
                                                        "organisme_type",
                                                        "organisme"};

enum {
    K_TYPE,
    K_ID,
    K_PAYER,
    K_NUMORG,
    K_MATRICULE,
    K_NIR,
    K_NOM,
    K_NOMNAI,
    K_PRENOMS,
    K_DTNAI,
    K_SEXE,
    K_ROLE,
    K_FOYER,
    K_DECISION,
    K_CODE,
    K_STATUT,
    K_ETAPE,
    K_TAUX,
    K_DUREE,
    K_DEBUT,
    K_FIN,
    K_DATE_DECISION,
    K_ORG_KIND,
    K_ORG
};

/* ---- enums by their short names ---- */

static size_t
prefix_len(const ProtobufCEnumDescriptor *d)
{
    /* value 0 is always <PREFIX>UNSPECIFIED */
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, 0);
    return v ? strlen(v->name) - strlen("UNSPECIFIED") : 0;
}

static const char *
enum_short(const ProtobufCEnumDescriptor *d, int value)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
    return v == NULL || value == 0 ? "" : v->name + prefix_len(d);
}

/* The value of short name s, 0 when s is "", -1 when unknown. */
static int
enum_parse(const ProtobufCEnumDescriptor *d, const char *s)
{
    if (s[0] == '\0')
        return 0;
    size_t p = prefix_len(d);
    for (unsigned i = 0; i < d->n_values; i++)
        if (d->values[i].value != 0 && strcasecmp(d->values[i].name + p, s) == 0)
            return d->values[i].value;
    return -1;
}

/* ---- encode ---- */

typedef struct row_buf {
    const char *col[PT_CAF_CSV_COLUMNS];
    char num[5][12];
} row_buf_t;

static const char *
num(row_buf_t *b, int slot, uint32_t v, bool keep_zero)
{
    if (v == 0 && !keep_zero)
        return "";
    snprintf(b->num[slot], sizeof b->num[slot], "%u", v);
    return b->num[slot];
}

static void
put_person(row_buf_t *b, const Ptibus__V1__PersonRef *p)
{
    if (p == NULL)
        return;
    b->col[K_PAYER] = enum_short(&ptibus__v1__payer__descriptor, p->payer);
    b->col[K_NUMORG] = p->payer_office;
    b->col[K_MATRICULE] = p->file_number;
    b->col[K_NIR] = p->nir;
    b->col[K_NOM] = p->last_name;
    b->col[K_NOMNAI] = p->birth_name;
    b->col[K_PRENOMS] = p->first_names;
    b->col[K_DTNAI] = p->birth_date;
    b->col[K_SEXE] = p->sex == PTIBUS__V1__SEX__SEX_MALE     ? "1"
                     : p->sex == PTIBUS__V1__SEX__SEX_FEMALE ? "2"
                                                             : "";
    b->col[K_ROLE] = enum_short(&ptibus__v1__person_role__descriptor, p->role);
}

static void
put_org(row_buf_t *b, const Ptibus__V1__OrgRef *o)
{
    if (o == NULL)
        return;
    b->col[K_ORG_KIND] = enum_short(&ptibus__v1__org_kind__descriptor, o->kind);
    b->col[K_ORG] = o->name;
}

static void
put_sanction(row_buf_t *b, const Ptibus__V1__Sanction *s)
{
    b->col[K_TYPE] = "SANCTION";
    b->col[K_ID] = s->sanction_id;
    put_person(b, s->person);
    b->col[K_FOYER] = num(b, 0, s->household_size, false);
    b->col[K_DECISION] = enum_short(&ptibus__v1__sanction_measure__descriptor, s->measure);
    b->col[K_CODE] = enum_short(&ptibus__v1__legal_ground__descriptor, s->legal_ground);
    b->col[K_STATUT] = enum_short(&ptibus__v1__sanction_phase__descriptor, s->phase);
    b->col[K_ETAPE] = num(b, 1, s->stage, false);
    b->col[K_TAUX] = num(b, 2, s->rate_percent, false);
    b->col[K_DUREE] = num(b, 3, s->duration_months, false);
    b->col[K_DEBUT] = s->starts_on;
    b->col[K_FIN] = s->ends_on;
    b->col[K_DATE_DECISION] = s->notified_on;
    put_org(b, s->decided_by);
}

static void
put_orientation(row_buf_t *b, const Ptibus__V1__Orientation *o)
{
    b->col[K_TYPE] = "ORIENTATION";
    b->col[K_ID] = o->orientation_id;
    put_person(b, o->person);
    b->col[K_DECISION] = enum_short(&ptibus__v1__orientation_category__descriptor, o->category);
    b->col[K_CODE] = o->category_code;
    b->col[K_STATUT] = enum_short(&ptibus__v1__orientation_status__descriptor, o->status);
    b->col[K_ETAPE] = num(b, 1, o->version, false);
    b->col[K_DEBUT] = o->starts_on;
    b->col[K_FIN] = o->ends_on;
    b->col[K_DATE_DECISION] = o->decided_on;
    put_org(b, o->referent_org);
}

static int
caf_csv_encode(const pt_codec_config_t *cfg, const Ptibus__V1__Envelope *const *envs, size_t count,
               pt_write_fn write, void *ctx, pt_error_t *err)
{
    csv_writer_t w;
    int rc = csv_writer_init(&w, ';', cfg ? cfg->encoding : NULL, write, ctx, err);
    if (rc == 0)
        rc = csv_write_row(&w, caf_csv_header, PT_CAF_CSV_COLUMNS, err);
    for (size_t i = 0; i < count && rc == 0; i++) {
        row_buf_t b;
        for (size_t k = 0; k < PT_CAF_CSV_COLUMNS; k++)
            b.col[k] = "";
        if (envs[i]->body_case == PTIBUS__V1__ENVELOPE__BODY_SANCTION)
            put_sanction(&b, envs[i]->sanction);
        else if (envs[i]->body_case == PTIBUS__V1__ENVELOPE__BODY_ORIENTATION)
            put_orientation(&b, envs[i]->orientation);
        else
            return pt_error_set(err, PT_EINVALID, NULL,
                                "envelope %zu: only sanctions and orientations have a CAF/MSA "
                                "CSV form",
                                i);
        rc = csv_write_row(&w, b.col, PT_CAF_CSV_COLUMNS, err);
        if (rc == PT_EINVALID) {
            char what[PT_ERROR_MSG_MAX];
            snprintf(what, sizeof what, "%s", err->msg);
            pt_error_set(err, rc, NULL, "envelope %zu: %s", i, what);
        }
    }
    return rc;
}

/* ---- decode ---- */

typedef struct cctx {
    pt_record_fn fn;
    void *fn_ctx;
    pt_codec_outcome_t *out;
    uint64_t index;
    unsigned long line;
} cctx_t;

typedef struct msgs {
    Ptibus__V1__PersonRef person;
    Ptibus__V1__OrgRef org;
    Ptibus__V1__Sanction sanction;
    Ptibus__V1__Orientation orientation;
    Ptibus__V1__Envelope env;
} msgs_t;

static int
hand_over(cctx_t *c, const Ptibus__V1__Envelope *env, const pt_record_error_t *e)
{
    pt_record_t rec = {c->index++, c->line, env, e};
    if (env != NULL)
        c->out->records++;
    else
        c->out->errors++;
    return c->fn(c->fn_ctx, &rec);
}

static int
row_error(cctx_t *c, int column, const char *msg)
{
    pt_record_error_t e = {.line = c->line};
    const char *col = column >= 0 ? caf_csv_header[column] : "";
    snprintf(e.where, sizeof e.where, "%s", col);
    if (column >= 0)
        snprintf(e.msg, sizeof e.msg, "line %lu: %s: %s", c->line, col, msg);
    else
        snprintf(e.msg, sizeof e.msg, "line %lu: %s", c->line, msg);
    return hand_over(c, NULL, &e);
}

/* Decimal uint32 ("" is 0); false when it is not one. */
static bool
parse_u32(const char *s, uint32_t *out)
{
    unsigned long long v = 0;
    *out = 0;
    if (strlen(s) > 10)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (unsigned)(*s - '0');
    }
    if (v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* The enum columns of a row: column, descriptor, destination. */
typedef struct enum_col {
    int column;
    const ProtobufCEnumDescriptor *desc;
    int *dst;
} enum_col_t;

static int
parse_enums(cctx_t *c, char **f, const enum_col_t *cols, size_t n, bool *bad)
{
    for (size_t i = 0; i < n; i++) {
        int v = enum_parse(cols[i].desc, f[cols[i].column]);
        if (v < 0) {
            *bad = true;
            return row_error(c, cols[i].column, "is not one of the documented values");
        }
        *cols[i].dst = v;
    }
    return 0;
}

static int
parse_person(cctx_t *c, char **f, msgs_t *m, bool *bad)
{
    Ptibus__V1__PersonRef *p = &m->person;
    ptibus__v1__person_ref__init(p);
    ptibus__v1__org_ref__init(&m->org);
    p->payer_office = f[K_NUMORG];
    p->file_number = f[K_MATRICULE];
    p->nir = f[K_NIR];
    p->last_name = f[K_NOM];
    p->birth_name = f[K_NOMNAI];
    p->first_names = f[K_PRENOMS];
    p->birth_date = f[K_DTNAI];
    if (strcmp(f[K_SEXE], "1") != 0 && strcmp(f[K_SEXE], "2") != 0 && f[K_SEXE][0] != '\0') {
        *bad = true;
        return row_error(c, K_SEXE, "must be 1, 2 or empty");
    }
    p->sex = f[K_SEXE][0] == '1'   ? PTIBUS__V1__SEX__SEX_MALE
             : f[K_SEXE][0] == '2' ? PTIBUS__V1__SEX__SEX_FEMALE
                                   : PTIBUS__V1__SEX__SEX_UNSPECIFIED;
    m->org.name = f[K_ORG];
    const enum_col_t cols[] = {
        {K_PAYER, &ptibus__v1__payer__descriptor, (int *)&p->payer},
        {K_ROLE, &ptibus__v1__person_role__descriptor, (int *)&p->role},
        {K_ORG_KIND, &ptibus__v1__org_kind__descriptor, (int *)&m->org.kind},
    };
    return parse_enums(c, f, cols, sizeof cols / sizeof cols[0], bad);
}

static int
numbers(cctx_t *c, char **f, const int *columns, uint32_t *const *dst, size_t n, bool *bad)
{
    for (size_t i = 0; i < n; i++)
        if (!parse_u32(f[columns[i]], dst[i])) {
            *bad = true;
            return row_error(c, columns[i], "must be a whole number");
        }
    return 0;
}

static int
parse_sanction(cctx_t *c, char **f, msgs_t *m, bool *bad)
{
    Ptibus__V1__Sanction *s = &m->sanction;
    ptibus__v1__sanction__init(s);
    s->sanction_id = f[K_ID];
    s->person = &m->person;
    s->starts_on = f[K_DEBUT];
    s->ends_on = f[K_FIN];
    s->notified_on = f[K_DATE_DECISION];
    s->decided_by = f[K_ORG][0] || f[K_ORG_KIND][0] ? &m->org : NULL;
    const enum_col_t cols[] = {
        {K_DECISION, &ptibus__v1__sanction_measure__descriptor, (int *)&s->measure},
        {K_CODE, &ptibus__v1__legal_ground__descriptor, (int *)&s->legal_ground},
        {K_STATUT, &ptibus__v1__sanction_phase__descriptor, (int *)&s->phase},
    };
    int rc = parse_enums(c, f, cols, sizeof cols / sizeof cols[0], bad);
    const int ncols[] = {K_FOYER, K_ETAPE, K_TAUX, K_DUREE};
    uint32_t *const ndst[] = {&s->household_size, &s->stage, &s->rate_percent, &s->duration_months};
    if (rc == 0 && !*bad)
        rc = numbers(c, f, ncols, ndst, 4, bad);
    m->env.body_case = PTIBUS__V1__ENVELOPE__BODY_SANCTION;
    m->env.sanction = s;
    return rc;
}

static int
parse_orientation(cctx_t *c, char **f, msgs_t *m, bool *bad)
{
    Ptibus__V1__Orientation *o = &m->orientation;
    ptibus__v1__orientation__init(o);
    o->orientation_id = f[K_ID];
    o->person = &m->person;
    o->category_code = f[K_CODE];
    o->starts_on = f[K_DEBUT];
    o->ends_on = f[K_FIN];
    o->decided_on = f[K_DATE_DECISION];
    o->referent_org = f[K_ORG][0] || f[K_ORG_KIND][0] ? &m->org : NULL;
    const enum_col_t cols[] = {
        {K_DECISION, &ptibus__v1__orientation_category__descriptor, (int *)&o->category},
        {K_STATUT, &ptibus__v1__orientation_status__descriptor, (int *)&o->status},
    };
    int rc = parse_enums(c, f, cols, sizeof cols / sizeof cols[0], bad);
    const int ncols[] = {K_ETAPE};
    uint32_t *const ndst[] = {&o->version};
    if (rc == 0 && !*bad)
        rc = numbers(c, f, ncols, ndst, 1, bad);
    m->env.body_case = PTIBUS__V1__ENVELOPE__BODY_ORIENTATION;
    m->env.orientation = o;
    return rc;
}

static int
on_row(cctx_t *c, const csv_row_t *row)
{
    c->line = row->line;
    if (row->n != PT_CAF_CSV_COLUMNS) {
        char msg[80];
        snprintf(msg, sizeof msg, "%zu fields where the header has %d", row->n, PT_CAF_CSV_COLUMNS);
        return row_error(c, -1, msg);
    }
    msgs_t m;
    ptibus__v1__envelope__init(&m.env);
    bool bad = false;
    int rc = parse_person(c, row->fields, &m, &bad);
    bool sanction = strcmp(row->fields[K_TYPE], "SANCTION") == 0;
    if (rc == 0 && !bad && !sanction && strcmp(row->fields[K_TYPE], "ORIENTATION") != 0)
        return row_error(c, K_TYPE, "must be SANCTION or ORIENTATION");
    if (rc == 0 && !bad)
        rc = sanction ? parse_sanction(c, row->fields, &m, &bad)
                      : parse_orientation(c, row->fields, &m, &bad);
    if (rc != 0 || bad)
        return rc;
    pt_error_t err;
    rc = sanction ? validate_sanction(m.env.sanction, &err)
                  : validate_orientation(m.env.orientation, &err);
    if (rc != 0)
        return row_error(c, -1, err.msg);
    return hand_over(c, &m.env, NULL);
}

static bool
header_ok(const csv_row_t *row)
{
    if (row->n != PT_CAF_CSV_COLUMNS)
        return false;
    for (size_t i = 0; i < PT_CAF_CSV_COLUMNS; i++)
        if (strcasecmp(row->fields[i], caf_csv_header[i]) != 0)
            return false;
    return true;
}

static int
caf_header(void *ctx, const csv_row_t *row, pt_codec_outcome_t *out)
{
    (void)ctx;
    if (header_ok(row))
        return 0;
    out->error.line = 1;
    snprintf(out->error.msg, sizeof out->error.msg,
             "line 1: the header must be the %d columns of docs/formats/caf_csv.md",
             PT_CAF_CSV_COLUMNS);
    return PT_EMALFORMED;
}

static int
caf_row(void *ctx, const csv_row_t *row)
{
    return on_row(ctx, row);
}

int
caf_csv_decode(csv_reader_t *r, pt_record_fn fn, void *ctx, pt_codec_outcome_t *outcome)
{
    cctx_t c = {fn, ctx, outcome, 0, 1};
    return csv_table_decode(r, caf_header, caf_row, &c, outcome);
}

static int
caf_csv_codec_decode(const pt_codec_config_t *cfg, const pt_codec_source_t *src, pt_record_fn fn,
                     void *ctx, pt_codec_outcome_t *outcome)
{
    csv_options_t o = {0};
    if (cfg != NULL && cfg->encoding != NULL && strcasecmp(cfg->encoding, "windows-1252") == 0)
        o.encoding = CSV_WINDOWS_1252;
    return csv_table_run(src, &o, caf_csv_decode, fn, ctx, outcome);
}

static const char *const caf_csv_patterns[] = {"*.csv", "*.CSV", NULL};

const pt_codec_ops_t caf_csv_codec = {
    .name = "caf_csv",
    .patterns = caf_csv_patterns,
    .decode = caf_csv_codec_decode,
    .encode = caf_csv_encode,
};
