/* report: aggregation and output of the partnership evaluation (see report.h). */
#include "report.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HIST_BUCKETS 320 /* 0..15 ms exact, then 8 per power of two up to 2^40 ms */
#define NAME_MAX_ 40
#define TERR_MAX 64

typedef struct hist {
    uint32_t b[HIST_BUCKETS];
    uint64_t n;
    int64_t max;
} hist_t;

typedef struct flow {
    char month[8], territory[TERR_MAX], sender[NAME_MAX_], recipient[NAME_MAX_], type[NAME_MAX_];
    char reason[64]; /* refusals only */
    uint64_t messages, acked, dead, refused;
    hist_t *h; /* flows only */
} flow_t;

typedef struct backlog {
    char recipient[NAME_MAX_];
    uint64_t depth;
    int64_t oldest_ms;
} backlog_t;

/* A growable array of groups with an open-addressing index on their key. */
typedef struct groups {
    flow_t *v;
    size_t n, cap;
    uint32_t *slot; /* index + 1; 0 = empty */
    size_t nslots;
} groups_t;

struct report {
    groups_t flows, refusals;
    hist_t all; /* every acknowledged delay, for the distribution chart */
    backlog_t *backlog;
    size_t n_backlog;
    bool oom;
};

/* ---- histogram ---- */

static int
bucket_of(int64_t ms)
{
    if (ms < 16)
        return ms < 0 ? 0 : (int)ms;
    int e = 63 - __builtin_clzll((unsigned long long)ms); /* >= 4 */
    int idx = 16 + (e - 4) * 8 + (int)((ms >> (e - 3)) & 7);
    return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

static int64_t
bucket_upper(int idx)
{
    if (idx < 16)
        return idx;
    int e = (idx - 16) / 8 + 4, sub = (idx - 16) % 8;
    return ((int64_t)(8 + sub) << (e - 3)) + ((int64_t)1 << (e - 3)) - 1;
}

static void
hist_add(hist_t *h, int64_t ms)
{
    h->b[bucket_of(ms)]++;
    h->n++;
    if (ms > h->max)
        h->max = ms;
}

/* The q-quantile: the upper bound of its bucket (never above the maximum); -1 = none. */
static int64_t
hist_quantile(const hist_t *h, double q)
{
    if (h == NULL || h->n == 0)
        return -1;
    uint64_t rank = (uint64_t)(q * (double)h->n + 0.999999), seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++)
        if ((seen += h->b[i]) >= (rank ? rank : 1))
            return bucket_upper(i) < h->max ? bucket_upper(i) : h->max;
    return h->max;
}

/* ---- groups ---- */

static uint64_t
key_hash(const flow_t *k)
{
    const char *parts[] = {k->month, k->territory, k->sender, k->recipient, k->type, k->reason};
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < 6; i++) {
        for (const char *p = parts[i]; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL;
    }
    return h;
}

static bool
key_eq(const flow_t *a, const flow_t *b)
{
    return strcmp(a->month, b->month) == 0 && strcmp(a->territory, b->territory) == 0 &&
           strcmp(a->sender, b->sender) == 0 && strcmp(a->recipient, b->recipient) == 0 &&
           strcmp(a->type, b->type) == 0 && strcmp(a->reason, b->reason) == 0;
}

static int
groups_rehash(groups_t *g)
{
    size_t ns = g->nslots ? g->nslots * 2 : 1024;
    uint32_t *s = calloc(ns, sizeof *s);
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < g->n; i++) {
        size_t k = key_hash(&g->v[i]) & (ns - 1);
        while (s[k])
            k = (k + 1) & (ns - 1);
        s[k] = (uint32_t)i + 1;
    }
    free(g->slot);
    g->slot = s;
    g->nslots = ns;
    return 0;
}

/* The group of key k (added when new, with a histogram when hist); NULL on no memory. */
static flow_t *
groups_get(groups_t *g, const flow_t *k, bool hist)
{
    if ((g->n + 1) * 2 > g->nslots && groups_rehash(g) != 0)
        return NULL;
    size_t i = key_hash(k) & (g->nslots - 1);
    for (; g->slot[i]; i = (i + 1) & (g->nslots - 1))
        if (key_eq(&g->v[g->slot[i] - 1], k))
            return &g->v[g->slot[i] - 1];
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 256;
        flow_t *v = realloc(g->v, cap * sizeof *v);
        if (v == NULL)
            return NULL;
        g->v = v;
        g->cap = cap;
    }
    flow_t *f = &g->v[g->n];
    *f = *k;
    f->h = hist ? calloc(1, sizeof *f->h) : NULL;
    if (hist && f->h == NULL)
        return NULL;
    g->slot[i] = (uint32_t)++g->n;
    return f;
}

static void
groups_fini(groups_t *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->v[i].h);
    free(g->v);
    free(g->slot);
}

report_t *
report_new(void)
{
    return calloc(1, sizeof(report_t));
}

void
report_destroy(report_t **rp)
{
    report_t *r = rp ? *rp : NULL;
    if (r == NULL)
        return;
    groups_fini(&r->flows);
    groups_fini(&r->refusals);
    free(r->backlog);
    free(r);
    *rp = NULL;
}

static void
make_key(flow_t *k, int64_t t, const char *terr, const char *sender, const char *recipient,
         const char *type, const char *reason)
{
    time_t s = (time_t)(t / 1000);
    struct tm tm;
    memset(k, 0, sizeof *k);
    if (gmtime_r(&s, &tm))
        strftime(k->month, sizeof k->month, "%Y-%m", &tm);
    snprintf(k->territory, sizeof k->territory, "%s", terr ? terr : "");
    snprintf(k->sender, sizeof k->sender, "%s", sender ? sender : "");
    snprintf(k->recipient, sizeof k->recipient, "%s", recipient ? recipient : "");
    snprintf(k->type, sizeof k->type, "%s", type ? type : "");
    snprintf(k->reason, sizeof k->reason, "%s", reason ? reason : "");
}

void
report_received(report_t *r, int64_t t, const char *territory, const char *sender,
                const char *recipient, const char *type)
{
    flow_t k, *g;
    make_key(&k, t, territory, sender, recipient, type, NULL);
    if ((g = groups_get(&r->flows, &k, true)) == NULL)
        r->oom = true;
    else
        g->messages++;
}

void
report_outcome(report_t *r, int64_t received_ms, const char *territory, const char *sender,
               const char *recipient, const char *type, bool acked, int64_t delay_ms)
{
    flow_t k, *g;
    make_key(&k, received_ms, territory, sender, recipient, type, NULL);
    if ((g = groups_get(&r->flows, &k, true)) == NULL) {
        r->oom = true;
        return;
    }
    if (!acked) {
        g->dead++;
        return;
    }
    g->acked++;
    hist_add(g->h, delay_ms);
    hist_add(&r->all, delay_ms);
}

void
report_refused(report_t *r, int64_t t, const char *territory, const char *sender, const char *type,
               const char *reason)
{
    flow_t k, *g;
    make_key(&k, t, territory, sender, NULL, type, reason);
    if ((g = groups_get(&r->refusals, &k, false)) == NULL)
        r->oom = true;
    else
        g->refused++;
}

int
report_backlog(report_t *r, journal_t *j, pt_error_t *err)
{
    for (size_t i = 0; i < r->flows.n; i++) {
        const char *to = r->flows.v[i].recipient;
        bool seen = false;
        for (size_t k = 0; k < r->n_backlog && !seen; k++)
            seen = strcmp(r->backlog[k].recipient, to) == 0;
        if (seen)
            continue;
        backlog_t *b = realloc(r->backlog, (r->n_backlog + 1) * sizeof *b);
        if (b == NULL)
            return pt_error_set(err, -ENOMEM, "report", "out of memory");
        r->backlog = b;
        b = &r->backlog[r->n_backlog++];
        memset(b, 0, sizeof *b);
        snprintf(b->recipient, sizeof b->recipient, "%s", to);
        int rc = journal_queue_stats(j, to, &b->depth, &b->oldest_ms, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- rows ---- */

/* The union columns: a row of each section fills its own. */
enum {
    C_SECTION,
    C_MONTH,
    C_TERRITORY,
    C_SENDER,
    C_RECIPIENT,
    C_TYPE,
    C_REASON,
    C_MESSAGES,
    C_ACKED,
    C_ACK_RATE,
    C_DEAD,
    C_P50,
    C_P95,
    C_MAX,
    C_REFUSED,
    C_DEPTH,
    C_OLDEST,
    N_COLS
};

static const out_col_t cols[N_COLS] = {
    {"section", 8, false},      {"month", 7, false},         {"territory", 12, false},
    {"sender", 12, false},      {"recipient", 12, false},    {"type", 18, false},
    {"reason", 24, false},      {"messages", 8, true},       {"acknowledged", 12, true},
    {"ack_rate", 8, true},      {"dead_lettered", 13, true}, {"delay_p50_ms", 12, true},
    {"delay_p95_ms", 12, true}, {"delay_max_ms", 12, true},  {"refused", 7, true},
    {"queue_depth", 11, true},  {"oldest_queued", 0, false},
};

#define CELL 72
typedef char cells_t[N_COLS][CELL];

static void
num(char *c, int64_t v)
{
    if (v >= 0)
        snprintf(c, CELL, "%" PRId64, v);
}

static void
flow_cells(const flow_t *g, cells_t c)
{
    memset(c, 0, sizeof(cells_t));
    snprintf(c[C_SECTION], CELL, "flow");
    snprintf(c[C_MONTH], CELL, "%s", g->month);
    snprintf(c[C_TERRITORY], CELL, "%s", g->territory);
    snprintf(c[C_SENDER], CELL, "%s", g->sender);
    snprintf(c[C_RECIPIENT], CELL, "%s", g->recipient);
    snprintf(c[C_TYPE], CELL, "%s", g->type);
    /* A message acknowledged again after a replay counts once. */
    uint64_t acked = g->acked < g->messages ? g->acked : g->messages;
    num(c[C_MESSAGES], (int64_t)g->messages);
    num(c[C_ACKED], (int64_t)acked);
    if (g->messages)
        snprintf(c[C_ACK_RATE], CELL, "%.3f", (double)acked / (double)g->messages);
    num(c[C_DEAD], (int64_t)g->dead);
    num(c[C_P50], hist_quantile(g->h, 0.50));
    num(c[C_P95], hist_quantile(g->h, 0.95));
    num(c[C_MAX], g->h && g->h->n ? g->h->max : -1);
}

static void
refusal_cells(const flow_t *g, cells_t c)
{
    memset(c, 0, sizeof(cells_t));
    snprintf(c[C_SECTION], CELL, "refusal");
    snprintf(c[C_MONTH], CELL, "%s", g->month);
    snprintf(c[C_TERRITORY], CELL, "%s", g->territory);
    snprintf(c[C_SENDER], CELL, "%s", g->sender);
    snprintf(c[C_TYPE], CELL, "%s", g->type);
    snprintf(c[C_REASON], CELL, "%s", g->reason);
    num(c[C_REFUSED], (int64_t)g->refused);
}

static void
backlog_cells(const backlog_t *b, cells_t c)
{
    memset(c, 0, sizeof(cells_t));
    snprintf(c[C_SECTION], CELL, "backlog");
    snprintf(c[C_RECIPIENT], CELL, "%s", b->recipient);
    num(c[C_DEPTH], (int64_t)b->depth);
    if (b->depth && b->oldest_ms > 0)
        out_time(b->oldest_ms, c[C_OLDEST], CELL);
}

static int
flow_cmp(const void *x, const void *y)
{
    const flow_t *a = x, *b = y;
    int d = strcmp(a->month, b->month);
    if (d == 0)
        d = strcmp(a->territory, b->territory);
    if (d == 0)
        d = strcmp(a->sender, b->sender);
    if (d == 0)
        d = strcmp(a->recipient, b->recipient);
    if (d == 0)
        d = strcmp(a->type, b->type);
    return d ? d : strcmp(a->reason, b->reason);
}

/* The groups sorted (a copy of the pointers' order: the index stays valid). */
static flow_t *
sorted(const groups_t *g)
{
    flow_t *v = malloc((g->n ? g->n : 1) * sizeof *v);
    if (v == NULL)
        return NULL;
    if (g->n)
        memcpy(v, g->v, g->n * sizeof *v);
    qsort(v, g->n, sizeof *v, flow_cmp);
    return v;
}

static void
emit_all(out_t *o, cells_t c)
{
    const char *vals[N_COLS];
    for (size_t i = 0; i < N_COLS; i++)
        vals[i] = c[i];
    out_row(o, vals);
}

void
report_rows(const report_t *r, ctl_format_t fmt)
{
    out_t o;
    cells_t c;
    flow_t *fl = sorted(&r->flows), *rf = sorted(&r->refusals);
    out_begin(&o, fmt, cols, N_COLS);
    for (size_t i = 0; fl && i < r->flows.n; i++)
        flow_cells(&fl[i], c), emit_all(&o, c);
    for (size_t i = 0; rf && i < r->refusals.n; i++)
        refusal_cells(&rf[i], c), emit_all(&o, c);
    for (size_t i = 0; i < r->n_backlog; i++)
        backlog_cells(&r->backlog[i], c), emit_all(&o, c);
    out_end(&o);
    free(fl);
    free(rf);
    if (r->oom)
        fprintf(stderr, "ptibusctl: report: out of memory: some groups are missing\n");
}

/* ---- the page ---- */

static void
html_text(FILE *f, const char *s)
{
    out_html_text(f, s);
}

/* One section's table: the columns of pick, in the page's own <table>. */
static void
html_table(FILE *f, const char *id, const int *pick, size_t n, cells_t *rows, size_t nrows)
{
    fprintf(f, "<table id=\"%s\">\n<thead><tr>", id);
    for (size_t k = 0; k < n; k++) {
        fputs("<th>", f);
        html_text(f, cols[pick[k]].name);
        fputs("</th>", f);
    }
    fputs("</tr></thead>\n<tbody>\n", f);
    for (size_t i = 0; i < nrows; i++) {
        fputs("<tr>", f);
        for (size_t k = 0; k < n; k++) {
            fputs(cols[pick[k]].number ? "<td class=\"n\">" : "<td>", f);
            html_text(f, rows[i][pick[k]]);
            fputs("</td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</tbody>\n</table>\n", f);
}

/* Messages per month: a bar chart. */
static void
svg_months(FILE *f, const flow_t *fl, size_t n)
{
    char months[64][8];
    uint64_t count[64] = {0}, top = 1;
    size_t nm = 0;
    for (size_t i = 0; i < n; i++) {
        size_t m = 0;
        while (m < nm && strcmp(months[m], fl[i].month) != 0)
            m++;
        if (m == nm && nm < 64)
            snprintf(months[nm++], 8, "%s", fl[i].month);
        if (m < nm && (count[m] += fl[i].messages) > top)
            top = count[m];
    }
    int w = 60, hmax = 160, width = (int)(nm ? nm : 1) * w + 40;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "role=\"img\" aria-label=\"messages per month\">\n",
            width, hmax + 56);
    for (size_t m = 0; m < nm; m++) {
        int h = (int)((double)count[m] / (double)top * hmax);
        int x = 30 + (int)m * w;
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#3b6ea5\"/>", x,
                hmax + 10 - h, w - 16, h);
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\">%" PRIu64 "</text>", x, hmax + 6 - h,
                count[m]);
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\">%s</text>\n", x, hmax + 26, months[m]);
    }
    fputs("</svg>\n", f);
}

/* The sender x recipient matrix: cells shaded by their number of messages. */
static void
svg_matrix(FILE *f, const flow_t *fl, size_t n)
{
    char names[32][NAME_MAX_];
    size_t nn = 0;
    for (size_t i = 0; i < n; i++)
        for (int side = 0; side < 2; side++) {
            const char *p = side ? fl[i].recipient : fl[i].sender;
            size_t k = 0;
            while (k < nn && strcmp(names[k], p) != 0)
                k++;
            if (k == nn && nn < 32)
                snprintf(names[nn++], NAME_MAX_, "%s", p);
        }
    uint64_t m[32][32] = {{0}}, top = 1;
    for (size_t i = 0; i < n; i++) {
        size_t s = 0, r = 0;
        while (s < nn && strcmp(names[s], fl[i].sender) != 0)
            s++;
        while (r < nn && strcmp(names[r], fl[i].recipient) != 0)
            r++;
        if (s < nn && r < nn && (m[s][r] += fl[i].messages) > top)
            top = m[s][r];
    }
    int cell = 48, left = 110, topm = 100;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "role=\"img\" aria-label=\"sender by recipient\">\n",
            left + (int)nn * cell + 10, topm + (int)nn * cell + 10);
    for (size_t k = 0; k < nn; k++) {
        fprintf(f, "<text x=\"4\" y=\"%d\" font-size=\"11\">", topm + (int)k * cell + cell / 2);
        html_text(f, names[k]);
        fprintf(f, "</text><text font-size=\"11\" transform=\"translate(%d,%d) rotate(-60)\">",
                left + (int)k * cell + cell / 2, topm - 6);
        html_text(f, names[k]);
        fputs("</text>\n", f);
    }
    for (size_t s = 0; s < nn; s++)
        for (size_t r = 0; r < nn; r++) {
            int shade = m[s][r] ? 40 + (int)(200.0 * (double)m[s][r] / (double)top) : 0;
            fprintf(f,
                    "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                    "fill=\"rgb(%d,%d,255)\" stroke=\"#ccc\"/>",
                    left + (int)r * cell, topm + (int)s * cell, cell, cell, 255 - shade,
                    255 - shade);
            if (m[s][r])
                fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\">%" PRIu64 "</text>",
                        left + (int)r * cell + 6, topm + (int)s * cell + cell / 2 + 4, m[s][r]);
            fputc('\n', f);
        }
    fputs("</svg>\n<p class=\"meta\">Rows: the sender; columns: the recipient; cells: the "
          "messages of the period (darker: more).</p>\n",
          f);
}

/* The delivery delays: counts per power of two of milliseconds. */
static void
svg_delays(FILE *f, const hist_t *h)
{
    uint64_t bins[42] = {0}, top = 1;
    int nb = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        int64_t up = bucket_upper(i);
        int b = up < 1 ? 0 : 64 - __builtin_clzll((unsigned long long)up);
        if (b > 41)
            b = 41;
        if ((bins[b] += h->b[i]) > top)
            top = bins[b];
        if (h->b[i] && b + 1 > nb)
            nb = b + 1;
    }
    int w = 34, hmax = 140;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "role=\"img\" aria-label=\"delivery delay distribution\">\n",
            40 + (nb ? nb : 1) * w, hmax + 56);
    for (int b = 0; b < nb; b++) {
        int hh = (int)((double)bins[b] / (double)top * hmax), x = 20 + b * w;
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#6a9f58\"/>", x,
                hmax + 10 - hh, w - 6, hh);
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\">%" PRIu64 "</text>", x, hmax + 6 - hh,
                bins[b]);
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"9\">&lt;%" PRId64 "</text>\n", x, hmax + 26,
                b == 0 ? (int64_t)1 : (int64_t)1 << b);
    }
    fputs("</svg>\n<p class=\"meta\">Delay from reception to acknowledgement, in ms "
          "(bars: messages acknowledged in less than the value shown and at least half "
          "of it).</p>\n",
          f);
}

static void
html_intro(FILE *f, const report_t *r, const report_period_t *p)
{
    char since[40] = "the first record", until[40] = "now";
    if (p->since)
        out_time(p->since, since, sizeof since);
    if (p->until)
        out_time(p->until, until, sizeof until);
    uint64_t msgs = 0, acked = 0, dead = 0, refused = 0, backlog = 0;
    for (size_t i = 0; i < r->flows.n; i++) {
        const flow_t *g = &r->flows.v[i];
        msgs += g->messages, dead += g->dead;
        acked += g->acked < g->messages ? g->acked : g->messages;
    }
    for (size_t i = 0; i < r->refusals.n; i++)
        refused += r->refusals.v[i].refused;
    for (size_t i = 0; i < r->n_backlog; i++)
        backlog += r->backlog[i].depth;
    fputs(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        "<title>ptibus: partnership evaluation</title>\n<style>\n"
        "body{font-family:sans-serif;margin:2em;color:#222;max-width:80em}"
        "table{border-collapse:collapse;font-size:85%;margin-bottom:1.5em}"
        "th,td{border:1px solid #bbb;padding:3px 7px;text-align:left}"
        "th{background:#eee}td{white-space:nowrap}td.n{text-align:right}p.meta{color:#555}"
        "dl{display:grid;grid-template-columns:max-content auto;gap:2px 1em}dt{font-weight:bold}\n"
        "</style></head><body>\n<h1>Partnership evaluation</h1>\n<p>",
        f);
    fprintf(f, "Messages received from %s to %s", since, until);
    if (p->territory) {
        fputs(", territory ", f);
        html_text(f, p->territory);
    }
    fprintf(f,
            ".</p>\n<dl><dt>flows (message × recipient)</dt><dd id=\"total-flows\">%" PRIu64
            "</dd><dt>acknowledged</dt><dd id=\"total-acked\">%" PRIu64 " (%.1f%%)</dd>"
            "<dt>dead letters</dt><dd>%" PRIu64 "</dd><dt>refused messages</dt><dd>%" PRIu64
            "</dd><dt>backlog now</dt><dd>%" PRIu64 "</dd></dl>\n",
            msgs, acked, msgs ? 100.0 * (double)acked / (double)msgs : 0.0, dead, refused, backlog);
}

void
report_html(const report_t *r, const report_period_t *p, FILE *f)
{
    static const int flow_pick[] = {C_MONTH, C_TERRITORY, C_SENDER, C_RECIPIENT, C_TYPE, C_MESSAGES,
                                    C_ACKED, C_ACK_RATE,  C_DEAD,   C_P50,       C_P95,  C_MAX};
    static const int ref_pick[] = {C_MONTH, C_TERRITORY, C_SENDER, C_TYPE, C_REASON, C_REFUSED};
    static const int back_pick[] = {C_RECIPIENT, C_DEPTH, C_OLDEST};
    flow_t *fl = sorted(&r->flows), *rf = sorted(&r->refusals);
    size_t nmax = r->flows.n + r->refusals.n + r->n_backlog + 1;
    cells_t *rows = calloc(nmax, sizeof *rows);
    if (fl == NULL || rf == NULL || rows == NULL) {
        fprintf(stderr, "ptibusctl: report: out of memory\n");
        free(fl), free(rf), free(rows);
        return;
    }
    html_intro(f, r, p);
    fputs("<h2>Messages per month</h2>\n", f);
    svg_months(f, fl, r->flows.n);
    fputs("<h2>Who sends to whom</h2>\n", f);
    svg_matrix(f, fl, r->flows.n);
    fputs("<h2>Delivery delay</h2>\n", f);
    svg_delays(f, &r->all);
    fputs("<h2>Flows</h2>\n", f);
    for (size_t i = 0; i < r->flows.n; i++)
        flow_cells(&fl[i], rows[i]);
    html_table(f, "flows", flow_pick, sizeof flow_pick / sizeof *flow_pick, rows, r->flows.n);
    fputs("<h2>Refusals</h2>\n", f);
    for (size_t i = 0; i < r->refusals.n; i++)
        refusal_cells(&rf[i], rows[i]);
    html_table(f, "refusals", ref_pick, sizeof ref_pick / sizeof *ref_pick, rows, r->refusals.n);
    fputs("<h2>Backlog now</h2>\n", f);
    for (size_t i = 0; i < r->n_backlog; i++)
        backlog_cells(&r->backlog[i], rows[i]);
    html_table(f, "backlog", back_pick, sizeof back_pick / sizeof *back_pick, rows, r->n_backlog);
    fprintf(f,
            "<p class=\"meta\">ptibusctl %s report: audit fields of the journal only (no "
            "personal data). Delays are within 1/8 of their value (histogram buckets). The "
            "same numbers: ptibusctl report --format csv.</p>\n</body></html>\n",
            PTIBUS_VERSION);
    free(fl);
    free(rf);
    free(rows);
}
