/* lheo: a formation is gathered whole (its organisme-formation-responsable comes after
 * its actions), then each of its sessions is merged with its action's and formation's
 * fields into one TrainingOffer, validated, diffed and handed over. Text fields are
 * dispatched by their path relative to the formation, through one table. */
#include "lheo.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate.h"

#define REL_MAX 512       /* path relative to the formation, for the field table */
#define FORMATION_DEPTH 2 /* lheo(0) > offres(1) > formation(2) */

enum level { L_FORMATION, L_ACTION, L_SESSION };

typedef struct lerr {
    unsigned long line;
    char msg[200];
} lerr_t;

typedef struct lsession {
    Ptibus__V1__TrainingOffer *m;
    unsigned long line;
    lerr_t err;
    bool after_cp; /* the last registration address part was the postal code */
} lsession_t;

typedef struct laction {
    Ptibus__V1__TrainingOffer *m;
    unsigned long line;
    lerr_t err;
    lsession_t *s;
    size_t ns, cap;
    bool has_insee; /* only the first lieu-de-formation gives the commune */
} laction_t;

typedef struct lformation {
    Ptibus__V1__TrainingOffer *m;
    Ptibus__V1__OrgRef *provider;
    unsigned long line;
    lerr_t err;
    laction_t *a;
    size_t na, cap, sessions;
    char *raison; /* raison-sociale, the provider's name when nom-organisme is absent */
} lformation_t;

typedef struct lctx {
    xml_safe_t *x;
    lheo_diff_t *diff;
    pt_record_fn fn;
    void *fn_ctx;
    pt_codec_outcome_t *out;
    const char *ns;
    const char *version;
    lformation_t f;
    bool in_formation;
    bool in_offres;
    char rel[REL_MAX];
    size_t rel_n;                         /* strlen(rel) */
    size_t rel_len[PT_XML_MAX_DEPTH + 2]; /* rel_n before each open element */
    /* The field table's entry of each open element (NULL: not a mapped field), found once
     * when it opens; the text of an element without one is not gathered. */
    const struct field *field_at[PT_XML_MAX_DEPTH + 2];
    char *text;
    size_t text_len, text_cap;
    uint64_t index;
} lctx_t;

/* Field setters. */
typedef struct field field_t;
typedef void (*setter_fn)(lctx_t *c, void *target, const field_t *f, const char *text, lerr_t *e);

struct field {
    const char *rel;
    size_t len; /* strlen(rel) */
    enum level level;
    setter_fn set;
    size_t off;  /* of the field (a char * or a repeated field's array) */
    size_t noff; /* of a repeated field's count */
};

static char *
dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

static void
err_set(lctx_t *c, lerr_t *e, const char *fmt, const char *what)
{
    if (e->msg[0] != '\0')
        return;
    e->line = xml_safe_line(c->x);
    snprintf(e->msg, sizeof e->msg, fmt, what);
}

static void
replace_str(char **p, const char *v)
{
    if (*p != NULL && *p != protobuf_c_empty_string)
        free(*p);
    *p = dup_or_empty(v);
}

static void
set_str(lctx_t *c, void *t, const field_t *fd, const char *text, lerr_t *e)
{
    size_t off = fd->off;
    (void)c, (void)t, (void)e, (void)off;
    replace_str((char **)((char *)t + off), text);
}

static void
add_str(lctx_t *c, void *t, const field_t *fd, const char *text, lerr_t *e)
{
    size_t off = fd->off;
    (void)c, (void)t, (void)e, (void)off;
    char ***arr = (char ***)((char *)t + off);
    size_t *n = (size_t *)((char *)t + fd->noff);
    char **grown = realloc(*arr, (*n + 1) * sizeof **arr);
    if (grown == NULL)
        return err_set(c, e, "%s", "out of memory");
    *arr = grown;
    if ((grown[*n] = strdup(text)) != NULL)
        (*n)++;
}

static bool
parse_uint(const char *s, unsigned long max, uint32_t *out)
{
    if (*s == '\0' || strlen(s) > 10)
        return false;
    unsigned long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (unsigned long)(*s - '0');
    }
    if (v > max)
        return false;
    *out = (uint32_t)v;
    return true;
}

static void
set_flag01(lctx_t *c, void *t, const field_t *fd, const char *text, lerr_t *e)
{
    size_t off = fd->off;
    (void)c, (void)t, (void)e, (void)off;
    if (strcmp(text, "0") != 0 && strcmp(text, "1") != 0)
        return err_set(c, e, "%s: must be 0 or 1",
                       off == offsetof(Ptibus__V1__TrainingOffer, certifying)
                           ? "certifiante"
                           : "modalites-entrees-sorties");
    *(protobuf_c_boolean *)((char *)t + off) = text[0] == '1';
}

static void
set_hours(lctx_t *c, void *t, const field_t *fd, const char *text, lerr_t *e)
{
    size_t off = fd->off;
    (void)c, (void)t, (void)e, (void)off;
    if (!parse_uint(text, UINT32_MAX, (uint32_t *)((char *)t + off)))
        err_set(c, e, "%s: must be a whole number of hours", "nombre-heures-total");
}

/* prix-total-TTC: a decimal with a dot or a comma ("3250,00" is common). */
static void
set_price(lctx_t *c, void *t, const field_t *fd, const char *text, lerr_t *e)
{
    size_t off = fd->off;
    (void)c, (void)t, (void)e, (void)off;
    char buf[32];
    snprintf(buf, sizeof buf, "%s", text);
    char *comma = strchr(buf, ',');
    if (comma != NULL)
        *comma = '.';
    replace_str((char **)((char *)t + off), buf);
}

/* AAAAMMJJ -> YYYY-MM-DD; placeholders like 00000000 fail validation later with the
 * field's name. */
static void
set_date(lctx_t *c, void *t, const field_t *fd, const char *text, lerr_t *e)
{
    size_t off = fd->off;
    (void)c, (void)t, (void)e, (void)off;
    char buf[16];
    if (strlen(text) != 8 || strspn(text, "0123456789") != 8)
        return err_set(c, e, "%s: must be a date AAAAMMJJ",
                       off == offsetof(Ptibus__V1__TrainingOffer, starts_on) ? "periode/debut"
                                                                             : "periode/fin");
    memcpy(buf, text, 4), memcpy(buf + 5, text + 4, 2), memcpy(buf + 8, text + 6, 2);
    buf[4] = buf[7] = '-', buf[10] = '\0';
    replace_str((char **)((char *)t + off), buf);
}

static void
set_state(lctx_t *c, void *t, const field_t *fd, const char *text, lerr_t *e)
{
    size_t off = fd->off;
    (void)c, (void)t, (void)e, (void)off;
    if (strlen(text) != 1 || text[0] < '1' || text[0] > '3')
        return err_set(c, e, "%s: must be 1, 2 or 3", "etat-recrutement");
    *(Ptibus__V1__RecruitmentState *)((char *)t + off) =
        (Ptibus__V1__RecruitmentState)(text[0] - '0');
}

static Ptibus__V1__Funder *
last_funder(Ptibus__V1__TrainingOffer *a)
{
    return a->n_funders > 0 ? a->funders[a->n_funders - 1] : NULL;
}

static void
set_funder_code(lctx_t *c, void *t, const field_t *fd, const char *text, lerr_t *e)
{
    size_t off = fd->off;
    (void)c, (void)t, (void)e, (void)off;
    Ptibus__V1__Funder *f = last_funder(t);
    if (f != NULL)
        replace_str(&f->funder_code, text);
}

/* Seats per funder, never added across funders; a funder without a count is fine. */
static void
set_funder_seats(lctx_t *c, void *t, const field_t *fd, const char *text, lerr_t *e)
{
    size_t off = fd->off;
    (void)c, (void)t, (void)e, (void)off;
    Ptibus__V1__Funder *f = last_funder(t);
    if (f != NULL && !parse_uint(text, UINT32_MAX, &f->funded_seats))
        err_set(c, e, "%s: must be a whole number", "organisme-financeur/nb-places-financees");
}

static void
set_insee(lctx_t *c, void *t, const field_t *fd, const char *text, lerr_t *e)
{
    size_t off = fd->off;
    (void)c, (void)t, (void)e, (void)off;
    laction_t *a = &c->f.a[c->f.na - 1];
    if (a->has_insee)
        return;
    a->has_insee = true;
    replace_str((char **)((char *)t + off), text);
}

static void
set_provider(lctx_t *c, void *t, const field_t *fd, const char *text, lerr_t *e)
{
    size_t off = fd->off;
    (void)c, (void)t, (void)e, (void)off;
    replace_str((char **)((char *)c->f.provider + off), text);
}

static void
set_raison(lctx_t *c, void *t, const field_t *fd, const char *text, lerr_t *e)
{
    size_t off = fd->off;
    (void)c, (void)t, (void)e, (void)off;
    free(c->f.raison);
    c->f.raison = strdup(text);
}

/* Registration address: lines joined by ", ", then "postal code city". */
static void
add_address(lctx_t *c, void *t, const field_t *fd, const char *text, lerr_t *e)
{
    size_t off = fd->off;
    (void)c, (void)t, (void)e, (void)off;
    lsession_t *s = &c->f.a[c->f.na - 1].s[c->f.a[c->f.na - 1].ns - 1];
    char **p = (char **)((char *)t + off);
    bool is_cp = strstr(c->rel, "/codepostal") != NULL;
    const char *sep = **p == '\0' ? "" : s->after_cp ? " " : ", ";
    size_t np = strlen(*p), ns = strlen(sep), nt = strlen(text);
    char *joined = malloc(np + ns + nt + 1);
    if (joined == NULL)
        return err_set(c, e, "%s", "out of memory");
    memcpy(joined, *p, np), memcpy(joined + np, sep, ns), memcpy(joined + np + ns, text, nt + 1);
    if (*p != protobuf_c_empty_string)
        free(*p);
    *p = joined;
    s->after_cp = is_cp;
}

#define TO(f) offsetof(Ptibus__V1__TrainingOffer, f)
#define TON(f) offsetof(Ptibus__V1__TrainingOffer, n_##f)
#define ORG(f) offsetof(Ptibus__V1__OrgRef, f)
#define ADDR "action/session/adresse-inscription/adresse/"

#define F(rel, ...)                                                                                \
    {                                                                                              \
        rel, sizeof(rel) - 1, __VA_ARGS__                                                          \
    }

static const field_t fields[] = {
    F("intitule-formation", L_FORMATION, set_str, TO(title), 0),
    F("objectif-formation", L_FORMATION, set_str, TO(objective), 0),
    F("domaine-formation/code-FORMACODE", L_FORMATION, add_str, TO(formacode), TON(formacode)),
    F("domaine-formation/code-ROME", L_FORMATION, add_str, TO(rome_codes), TON(rome_codes)),
    F("domaine-formation/code-NSF", L_FORMATION, add_str, TO(nsf_codes), TON(nsf_codes)),
    F("certifiante", L_FORMATION, set_flag01, TO(certifying), 0),
    F("certification/code-RNCP", L_FORMATION, add_str, TO(rncp_codes), TON(rncp_codes)),
    F("code-niveau-entree", L_FORMATION, set_str, TO(entry_level_code), 0),
    F("code-niveau-sortie", L_FORMATION, set_str, TO(exit_level_code), 0),
    F("organisme-formation-responsable/SIRET-organisme-formation/SIRET", L_FORMATION, set_provider,
      ORG(siret), 0),
    F("organisme-formation-responsable/nom-organisme", L_FORMATION, set_provider, ORG(name), 0),
    F("organisme-formation-responsable/raison-sociale", L_FORMATION, set_raison, 0, 0),
    F("action/rythme-formation", L_ACTION, set_str, TO(rhythm), 0),
    F("action/code-public-vise", L_ACTION, add_str, TO(target_public_codes),
      TON(target_public_codes)),
    F("action/modalites-entrees-sorties", L_ACTION, set_flag01, TO(permanent_entry), 0),
    F("action/nombre-heures-total", L_ACTION, set_hours, TO(total_hours), 0),
    F("action/prix-total-TTC", L_ACTION, set_price, TO(total_price_eur), 0),
    F("action/lieu-de-formation/coordonnees/adresse/code-INSEE-commune", L_ACTION, set_insee,
      TO(insee_commune), 0),
    F("action/organisme-financeur/code-financeur", L_ACTION, set_funder_code, 0, 0),
    F("action/organisme-financeur/nb-places-financees", L_ACTION, set_funder_seats, 0, 0),
    F("action/session/periode/debut", L_SESSION, set_date, TO(starts_on), 0),
    F("action/session/periode/fin", L_SESSION, set_date, TO(ends_on), 0),
    F(ADDR "ligne", L_SESSION, add_address, TO(registration_address), 0),
    F(ADDR "codepostal", L_SESSION, add_address, TO(registration_address), 0),
    F(ADDR "ville", L_SESSION, add_address, TO(registration_address), 0),
    F("action/session/etat-recrutement", L_SESSION, set_state, TO(recruitment_state), 0),
};

static Ptibus__V1__TrainingOffer *
offer_new(void)
{
    Ptibus__V1__TrainingOffer *m = malloc(sizeof *m);
    if (m != NULL)
        ptibus__v1__training_offer__init(m);
    return m;
}

static void
offer_free(Ptibus__V1__TrainingOffer **m)
{
    if (*m != NULL)
        protobuf_c_message_free_unpacked(&(*m)->base, NULL);
    *m = NULL;
}

static void
formation_fini(lformation_t *f)
{
    for (size_t i = 0; i < f->na; i++) {
        for (size_t j = 0; j < f->a[i].ns; j++)
            offer_free(&f->a[i].s[j].m);
        free(f->a[i].s);
        offer_free(&f->a[i].m);
    }
    free(f->a);
    if (f->m == NULL && f->provider != NULL)
        protobuf_c_message_free_unpacked(&f->provider->base, NULL);
    offer_free(&f->m); /* frees the provider it holds */
    free(f->raison);
    memset(f, 0, sizeof *f);
}

static int
fatal(lctx_t *c, int code, const char *fmt, const char *what)
{
    pt_record_error_t *e = &c->out->error;
    e->line = xml_safe_line(c->x);
    snprintf(e->where, sizeof e->where, "%s", xml_safe_path(c->x));
    snprintf(e->msg, sizeof e->msg, fmt, what);
    return code;
}

/* The numero attribute of the element just opened, into *field ("" when absent). */
static void
take_numero(lctx_t *c, Ptibus__V1__TrainingOffer *m, size_t off)
{
    const char *v = xml_safe_attr(c->x, "numero");
    replace_str((char **)((char *)m + off), v ? v : "");
}

static int
open_formation(lctx_t *c, unsigned long line)
{
    lformation_t *f = &c->f;
    f->m = offer_new();
    f->provider = malloc(sizeof *f->provider);
    if (f->m == NULL || f->provider == NULL)
        return -ENOMEM;
    ptibus__v1__org_ref__init(f->provider);
    f->provider->kind = PTIBUS__V1__ORG_KIND__ORG_KIND_OTHER;
    f->m->provider = f->provider;
    f->line = line;
    take_numero(c, f->m, TO(formation_number));
    c->in_formation = true;
    return 0;
}

static int
open_action(lctx_t *c, unsigned long line)
{
    lformation_t *f = &c->f;
    if (f->na == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 4;
        laction_t *a = realloc(f->a, cap * sizeof *a);
        if (a == NULL)
            return -ENOMEM;
        f->a = a, f->cap = cap;
    }
    laction_t *a = &f->a[f->na];
    memset(a, 0, sizeof *a);
    if ((a->m = offer_new()) == NULL)
        return -ENOMEM;
    f->na++;
    a->line = line;
    take_numero(c, a->m, TO(action_number));
    return 0;
}

static int
open_session(lctx_t *c, unsigned long line)
{
    laction_t *a = &c->f.a[c->f.na - 1];
    if (++c->f.sessions > PT_LHEO_MAX_SESSIONS)
        return fatal(c, PT_ETOOLARGE, "a formation holds more than %s sessions", "10000");
    if (a->ns == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 4;
        lsession_t *s = realloc(a->s, cap * sizeof *s);
        if (s == NULL)
            return -ENOMEM;
        a->s = s, a->cap = cap;
    }
    lsession_t *s = &a->s[a->ns];
    memset(s, 0, sizeof *s);
    if ((s->m = offer_new()) == NULL)
        return -ENOMEM;
    a->ns++;
    s->line = line;
    take_numero(c, s->m, TO(session_number));
    return 0;
}

static int
open_funder(lctx_t *c)
{
    Ptibus__V1__TrainingOffer *a = c->f.a[c->f.na - 1].m;
    Ptibus__V1__Funder **grown = realloc(a->funders, (a->n_funders + 1) * sizeof *grown);
    if (grown == NULL)
        return -ENOMEM;
    a->funders = grown;
    if ((grown[a->n_funders] = malloc(sizeof **grown)) == NULL)
        return -ENOMEM;
    ptibus__v1__funder__init(grown[a->n_funders++]);
    return 0;
}

/* Relative path bookkeeping: rel is the path below the formation, "" at the formation. */
/* The field table's entry for the element at rel, or NULL. */
#define FIELD_COUNT (sizeof fields / sizeof fields[0])
#define FIELD_LEN_MAX 96 /* longer than any entry's rel (checked when the index is built) */

/* The entries by length: by_len[len] is the first entry of that length plus one (0:
 * none), next[i] the following one of the same length plus one. Built once. */
_Static_assert(FIELD_COUNT < UINT8_MAX, "field indexes are bytes");
static uint8_t field_by_len[FIELD_LEN_MAX + 1], field_next[FIELD_COUNT];
static pthread_once_t field_index_once = PTHREAD_ONCE_INIT;

static void
field_index_build(void)
{
    for (size_t i = FIELD_COUNT; i-- > 0;) {
        assert(fields[i].len <= FIELD_LEN_MAX); /* a constant table */
        if (fields[i].len > FIELD_LEN_MAX)
            continue;
        field_next[i] = field_by_len[fields[i].len];
        field_by_len[fields[i].len] = (uint8_t)(i + 1);
    }
}

static const field_t *
find_field(const char *rel, size_t len)
{
    if (len > FIELD_LEN_MAX)
        return NULL;
    pthread_once(&field_index_once, field_index_build);
    for (unsigned i = field_by_len[len]; i != 0; i = field_next[i - 1])
        if (memcmp(fields[i - 1].rel, rel, len) == 0)
            return &fields[i - 1];
    return NULL;
}

static void
rel_push(lctx_t *c, const xml_safe_node_t *n)
{
    size_t len = c->rel_n, nl = strlen(n->name);
    c->rel_len[n->depth] = len;
    c->field_at[n->depth] = NULL;
    if (n->depth <= FORMATION_DEPTH)
        return;
    bool foreign = strcmp(n->ns, c->ns) != 0;
    if (len + nl + 3 > REL_MAX) { /* too long to be a mapped field: mark it never to match */
        if (len + 3 <= REL_MAX)
            memcpy(c->rel + len, "/~", 3), c->rel_n = len + 2;
        return;
    }
    char *p = c->rel + len;
    if (len > 0)
        *p++ = '/';
    if (foreign)
        *p++ = '~';
    memcpy(p, n->name, nl + 1);
    c->rel_n = (size_t)(p - c->rel) + nl;
    c->field_at[n->depth] = find_field(c->rel, c->rel_n);
}

static void
rel_pop(lctx_t *c, const xml_safe_node_t *n)
{
    c->rel_n = c->rel_len[n->depth];
    c->rel[c->rel_n] = '\0';
}

static bool
rel_is(const lctx_t *c, const char *rel, size_t len)
{
    return c->rel_n == len && memcmp(c->rel, rel, len) == 0;
}

#define REL_IS(c, lit) rel_is(c, lit, sizeof(lit) - 1)

static int
on_start(lctx_t *c, const xml_safe_node_t *n)
{
    c->text_len = 0;
    if (n->depth == 0) {
        if (strcmp(n->name, "lheo") != 0 ||
            (strcmp(n->ns, PT_LHEO_NS_22) != 0 && strcmp(n->ns, PT_LHEO_NS_23) != 0))
            return fatal(c, PT_EMALFORMED,
                         "the root element must be lheo in the namespace " PT_LHEO_NS_22
                         " or " PT_LHEO_NS_23 "%s",
                         "");
        c->ns = strcmp(n->ns, PT_LHEO_NS_22) == 0 ? PT_LHEO_NS_22 : PT_LHEO_NS_23;
        c->version = strcmp(c->ns, PT_LHEO_NS_22) == 0 ? "2.2" : "2.3";
    }
    rel_push(c, n);
    if (n->depth == 1)
        c->in_offres = strcmp(n->name, "offres") == 0 && strcmp(n->ns, c->ns) == 0;
    if (n->depth == FORMATION_DEPTH && c->in_offres && strcmp(n->name, "formation") == 0 &&
        strcmp(n->ns, c->ns) == 0)
        return open_formation(c, n->line);
    if (!c->in_formation)
        return 0;
    if (REL_IS(c, "action"))
        return open_action(c, n->line);
    if (REL_IS(c, "action/session"))
        return open_session(c, n->line);
    if (REL_IS(c, "action/organisme-financeur"))
        return open_funder(c);
    return 0;
}

static int
on_text(lctx_t *c, const xml_safe_node_t *n)
{
    /* a text node's depth is its element's plus one */
    if (!c->in_formation || n->depth == 0 || c->field_at[n->depth - 1] == NULL)
        return 0;
    if (c->text_len + n->value_len + 1 > c->text_cap) {
        size_t cap = (c->text_len + n->value_len + 1) * 2;
        char *t = realloc(c->text, cap);
        if (t == NULL)
            return -ENOMEM;
        c->text = t, c->text_cap = cap;
    }
    memcpy(c->text + c->text_len, n->value, n->value_len);
    c->text_len += n->value_len;
    c->text[c->text_len] = '\0';
    return 0;
}

/* The text of the element that ends, without surrounding white space. */
static const char *
trimmed_text(lctx_t *c)
{
    if (c->text == NULL || c->text_len == 0)
        return "";
    char *s = c->text, *e = c->text + c->text_len;
    while (s < e && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        e--;
    *e = '\0';
    return s;
}

static void
dispatch_field(lctx_t *c, unsigned depth)
{
    const field_t *f = c->field_at[depth];
    if (f == NULL || c->text_len == 0) /* an empty element sets nothing */
        return;
    lformation_t *fo = &c->f;
    laction_t *a = fo->na ? &fo->a[fo->na - 1] : NULL;
    lsession_t *s = a && a->ns ? &a->s[a->ns - 1] : NULL;
    const char *text = trimmed_text(c);
    if (f->level == L_FORMATION)
        f->set(c, fo->m, f, text, &fo->err);
    else if (f->level == L_ACTION && a != NULL)
        f->set(c, a->m, f, text, &a->err);
    else if (f->level == L_SESSION && s != NULL)
        f->set(c, s->m, f, text, &s->err);
}

static int emit_formation(lctx_t *c);

static int
on_end(lctx_t *c, const xml_safe_node_t *n)
{
    int rc = 0;
    if (c->in_formation && n->depth > FORMATION_DEPTH)
        dispatch_field(c, n->depth);
    if (c->in_formation && n->depth == FORMATION_DEPTH) {
        rc = emit_formation(c);
        formation_fini(&c->f);
        c->in_formation = false;
    }
    rel_pop(c, n);
    c->text_len = 0;
    return rc;
}

static int
hand_over(lctx_t *c, unsigned long line, const Ptibus__V1__TrainingOffer *t,
          const pt_record_error_t *e)
{
    Ptibus__V1__Envelope env = PTIBUS__V1__ENVELOPE__INIT;
    pt_record_t rec = {c->index++, line, NULL, e};
    if (t != NULL) {
        env.body_case = PTIBUS__V1__ENVELOPE__BODY_TRAINING_OFFER;
        env.training_offer = (Ptibus__V1__TrainingOffer *)t;
        rec.env = &env;
        c->out->records++;
    } else {
        c->out->errors++;
    }
    return c->fn(c->fn_ctx, &rec);
}

static int
record_error(lctx_t *c, const char *where, unsigned long line, const char *msg)
{
    pt_record_error_t e = {.line = line};
    snprintf(e.where, sizeof e.where, "%.*s", (int)sizeof e.where - 1, where);
    snprintf(e.msg, sizeof e.msg, "line %lu: %s", line, msg);
    return hand_over(c, line, NULL, &e);
}

/* The session's own fields, then its action's, then its formation's (shallow: the
 * merged offer borrows every pointer). */
static void
merge(Ptibus__V1__TrainingOffer *o, const lformation_t *f, const laction_t *a, const lsession_t *s,
      const char *version)
{
    *o = *s->m;
    const Ptibus__V1__TrainingOffer *am = a->m, *fm = f->m;
    o->operation = PTIBUS__V1__OFFER_OPERATION__OFFER_OPERATION_UPSERT;
    o->action_number = am->action_number;
    o->insee_commune = am->insee_commune;
    o->rhythm = am->rhythm;
    o->n_target_public_codes = am->n_target_public_codes;
    o->target_public_codes = am->target_public_codes;
    o->permanent_entry = am->permanent_entry;
    o->total_hours = am->total_hours;
    o->total_price_eur = am->total_price_eur;
    o->n_funders = am->n_funders;
    o->funders = am->funders;
    o->formation_number = fm->formation_number;
    o->title = fm->title;
    o->objective = fm->objective;
    o->n_formacode = fm->n_formacode, o->formacode = fm->formacode;
    o->n_rome_codes = fm->n_rome_codes, o->rome_codes = fm->rome_codes;
    o->n_nsf_codes = fm->n_nsf_codes, o->nsf_codes = fm->nsf_codes;
    o->certifying = fm->certifying;
    o->n_rncp_codes = fm->n_rncp_codes, o->rncp_codes = fm->rncp_codes;
    o->provider = fm->provider;
    o->entry_level_code = fm->entry_level_code;
    o->exit_level_code = fm->exit_level_code;
    o->lheo_version = (char *)version;
}

static bool
numero_ok(const char *n)
{
    return n[0] != '\0' && strchr(n, '/') == NULL;
}

/* The first error of the formation, its action or the session, else "". */
static const lerr_t *
first_error(const lformation_t *f, const laction_t *a, const lsession_t *s)
{
    if (f->err.msg[0])
        return &f->err;
    if (a->err.msg[0])
        return &a->err;
    if (s->err.msg[0])
        return &s->err;
    return NULL;
}

/* A bad session, named by its numero attributes (formatted only then). */
static int
session_error(lctx_t *c, const laction_t *a, const lsession_t *s, unsigned long line,
              const char *msg)
{
    char where[256];
    snprintf(where, sizeof where,
             "formation[@numero='%.40s']/action[@numero='%.30s']/session[@numero='%.30s']",
             c->f.m->formation_number, a->m->action_number, s->m->session_number);
    return record_error(c, where, line, msg);
}

/* "<formation>/<action>/<session>" into key (PT_OFFER_ID_MAX + 2 bytes); false when it
 * would be over PT_OFFER_ID_MAX characters. */
static bool
session_key(char *key, const char *fn, const char *an, const char *sn)
{
    size_t lf = strlen(fn), la = strlen(an), ls = strlen(sn);
    if (lf + la + ls + 2 > PT_OFFER_ID_MAX)
        return false;
    memcpy(key, fn, lf);
    key[lf] = '/';
    memcpy(key + lf + 1, an, la);
    key[lf + 1 + la] = '/';
    memcpy(key + lf + la + 2, sn, ls + 1);
    return true;
}

static int
emit_session(lctx_t *c, const laction_t *a, const lsession_t *s)
{
    const lformation_t *f = &c->f;
    char key[PT_OFFER_ID_MAX + 2];
    const char *fn = f->m->formation_number, *an = a->m->action_number, *sn = s->m->session_number;
    if (!numero_ok(fn) || !numero_ok(an) || !numero_ok(sn))
        return session_error(c, a, s, s->line,
                             "formation, action and session each need a numero attribute "
                             "without '/' (they identify the session)");
    if (!session_key(key, fn, an, sn))
        return session_error(c, a, s, s->line, "the session key is over 128 characters");
    const lerr_t *le = first_error(f, a, s);
    if (le != NULL) {
        lheo_diff_keep(c->diff, key);
        return session_error(c, a, s, le->line, le->msg);
    }
    Ptibus__V1__TrainingOffer o;
    merge(&o, f, a, s, c->version);
    o.offer_id = key;
    pt_error_t err;
    if (validate_training_offer(&o, &err) != 0) {
        lheo_diff_keep(c->diff, key);
        return session_error(c, a, s, s->line, err.msg);
    }
    bool publish = true;
    int rc = lheo_diff_offer(c->diff, &o, &publish, &err);
    if (rc == PT_EINVALID)
        return session_error(c, a, s, s->line, err.msg);
    if (rc < 0 || !publish)
        return rc;
    return hand_over(c, s->line, &o, NULL);
}

static int
emit_formation(lctx_t *c)
{
    lformation_t *f = &c->f;
    if (f->provider->name[0] == '\0' && f->raison != NULL)
        replace_str(&f->provider->name, f->raison);
    int rc = 0;
    for (size_t i = 0; i < f->na && rc == 0; i++)
        for (size_t j = 0; j < f->a[i].ns && rc == 0; j++)
            rc = emit_session(c, &f->a[i], &f->a[i].s[j]);
    return rc;
}

static int
emit_withdrawal(void *ctx, const char *key)
{
    lctx_t *c = ctx;
    Ptibus__V1__TrainingOffer o = PTIBUS__V1__TRAINING_OFFER__INIT;
    char parts[PT_OFFER_ID_MAX + 2];
    snprintf(parts, sizeof parts, "%s", key);
    char *a = strchr(parts, '/'), *s = a ? strchr(a + 1, '/') : NULL;
    if (a != NULL && s != NULL) {
        *a++ = '\0', *s++ = '\0';
        o.formation_number = parts, o.action_number = a, o.session_number = s;
    }
    o.offer_id = (char *)key;
    o.operation = PTIBUS__V1__OFFER_OPERATION__OFFER_OPERATION_WITHDRAW;
    o.lheo_version = (char *)c->version;
    return hand_over(c, 0, &o, NULL);
}

static int
decode_events(lctx_t *c)
{
    xml_safe_node_t n;
    pt_error_t err;
    int rc;
    while ((rc = xml_safe_next(c->x, &n, &err)) == 1) {
        if (n.depth > PT_XML_MAX_DEPTH)
            return fatal(c, PT_ETOOLARGE, "elements nested deeper than %s", "64");
        if (n.kind == XML_SAFE_START)
            rc = on_start(c, &n);
        else if (n.kind == XML_SAFE_TEXT)
            rc = on_text(c, &n);
        else
            rc = on_end(c, &n);
        if (rc < 0)
            return rc;
    }
    if (rc < 0)
        xml_safe_record_error(c->x, &err, &c->out->error);
    return rc;
}

int
lheo_decode(xml_safe_t *x, lheo_store_t *store, pt_record_fn fn, void *ctx,
            pt_codec_outcome_t *outcome)
{
    memset(outcome, 0, sizeof *outcome);
    lctx_t c = {.x = x, .fn = fn, .fn_ctx = ctx, .out = outcome, .ns = "", .version = ""};
    int rc = lheo_diff_new(&c.diff, store);
    if (rc == 0)
        rc = decode_events(&c);
    if (rc == 0 && c.version[0] == '\0')
        rc = fatal(&c, PT_EMALFORMED, "no lheo root element%s", "");
    if (rc == 0)
        rc = lheo_diff_withdrawals(c.diff, emit_withdrawal, &c);
    if (rc == 0)
        rc = lheo_diff_commit(c.diff);
    if (rc == -ENOMEM && outcome->error.msg[0] == '\0')
        fatal(&c, rc, "out of memory%s", "");
    formation_fini(&c.f);
    lheo_diff_destroy(&c.diff);
    free(c.text);
    return rc;
}

static int
lheo_codec_decode(const pt_codec_config_t *cfg, const pt_codec_source_t *src, pt_record_fn fn,
                  void *ctx, pt_codec_outcome_t *outcome)
{
    xml_safe_t *x;
    int rc = xml_safe_open_source(&x, src, cfg, outcome);
    if (rc < 0)
        return rc;
    rc = lheo_decode(x, cfg ? cfg->state : NULL, fn, ctx, outcome);
    xml_safe_close(&x);
    return rc;
}

static const char *const lheo_patterns[] = {"*.xml", "*.XML", NULL};

const pt_codec_ops_t lheo_codec = {
    .name = "lheo",
    .patterns = lheo_patterns,
    .decode = lheo_codec_decode,
    .encode = NULL,
};
