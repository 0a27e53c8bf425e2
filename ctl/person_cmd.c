/* person_cmd: the data-subject access report (GDPR art. 15): every flow the journal
 * holds about one person, found through the person index (HMAC of the NIR: the NIR is
 * never stored), with who sent what to whom, when, and whether it was acknowledged.
 * A read of personal data: the broker records it first (the NIR itself is neither
 * journaled nor logged: the record names the index key's first 8 bytes). */
#include "ctl.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "jquery.h"
#include "keys.h"
#include "nir.h"

typedef struct person_args {
    const char *nir, *reason;
} person_args_t;

static int
person_opt(ctl_t *c, int code, const char *v, void *arg)
{
    person_args_t *a = arg;
    if (code == 'n')
        a->nir = v;
    else if (code == 'r')
        a->reason = v;
    else if (code == 'k')
        c->over.person_key = v;
    else
        return CTL_USAGE;
    return 0;
}

/* --nir -: the NIR from standard input (so that it is not in the process list). */
static int
person_nir(const ctl_t *c, const char *arg, char out[PT_NIR_NORM_SIZE])
{
    char line[64] = "";
    pt_error_t err;
    if (strcmp(arg, "-") == 0) {
        if (fgets(line, sizeof line, stdin) == NULL)
            return ctl_error(c, CTL_USAGE, "--nir -: nothing on standard input");
        line[strcspn(line, "\r\n")] = '\0';
        arg = line;
    }
    int rc = nir_normalise(arg, out, &err);
    sodium_memzero(line, sizeof line);
    /* Nothing of the number, not even what its key should be, reaches the terminal. */
    return rc == 0 ? 0
                   : ctl_error(c, CTL_USAGE,
                               "--nir: not a valid NIR (13 characters, or 15 with "
                               "a matching key; spaces and dots allowed)");
}

static const out_col_t person_cols[] = {
    {"time", 24, false},   {"sender", 12, false},     {"recipient", 12, false},
    {"type", 20, false},   {"message_id", 36, false}, {"seq", 7, true},
    {"status", 13, false}, {"status_time", 0, false},
};
#define N_PERSON_COLS (sizeof person_cols / sizeof person_cols[0])

/* Where one recipient stands: the last ACKNOWLEDGED or DEAD_LETTERED record of the
 * message for it (a later REPLAYED or DELIVERED makes it pending again). */
typedef struct status_scan {
    uint64_t ref;
    const char *to;
    const char *status;
    int64_t when;
} status_scan_t;

static int
status_row(const jq_row_t *r, void *arg)
{
    status_scan_t *s = arg;
    const journal_view_t *v = r->v;
    if (v->ref_seq != s->ref || strcmp(r->recipient, s->to) != 0)
        return 0;
    if (v->kind == PT_REC_ACKNOWLEDGED)
        s->status = "acknowledged", s->when = v->time_ms;
    else if (v->kind == PT_REC_DEAD_LETTERED)
        s->status = "dead-lettered", s->when = v->time_ms;
    else if (v->kind == PT_REC_DROPPED)
        s->status = "dropped", s->when = v->time_ms;
    else if (v->kind == PT_REC_DELIVERED || v->kind == PT_REC_REPLAYED)
        s->status = "pending", s->when = 0;
    return 0;
}

typedef struct person_ctx {
    journal_t *j;
    out_t *o;
    uint64_t flows;
} person_ctx_t;

static void
person_flow(person_ctx_t *p, const journal_view_t *v, const char *to)
{
    status_scan_t s = {.ref = v->seq, .to = to, .status = "pending"};
    jq_filter_t f = {.message_id = v->message_id, .from = v->partner};
    uint64_t n;
    pt_error_t err;
    if (jq_run(p->j, &f, status_row, &s, &n, &err) != 0)
        s.status = "unknown";
    char when[40], seq[24], st[40] = "";
    out_time(v->time_ms, when, sizeof when);
    snprintf(seq, sizeof seq, "%" PRIu64, v->seq);
    if (s.when)
        out_time(s.when, st, sizeof st);
    const char *row[] = {when, v->partner, to, v->msg_type, v->message_id, seq, s.status, st};
    out_row(p->o, row);
    p->flows++;
}

static int
person_visit(person_ctx_t *p, const uint64_t *seqs, size_t n, pt_error_t *err)
{
    uint8_t *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        journal_view_t v;
        if ((rc = journal_get(p->j, seqs[i], &v, &buf, &cap, err)) != 0)
            break;
        /* v borrows buf, which the reads of person_flow do not touch. */
        if (v.n_recipients == 0)
            person_flow(p, &v, "");
        for (size_t k = 0; k < v.n_recipients; k++)
            person_flow(p, &v, v.recipients[k]);
    }
    free(buf);
    return rc;
}

static void
html_head(FILE *f, const char *reason, uint64_t audit)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<title>ptibus: data-subject access report</title>\n<style>\n"
          "body{font-family:sans-serif;margin:2em;color:#222}"
          "table{border-collapse:collapse;font-size:90%}"
          "th,td{border:1px solid #bbb;padding:4px 8px;text-align:left}"
          "th{background:#eee}td{white-space:nowrap}td.n{text-align:right}p.meta{color:#555}\n"
          "</style></head><body>\n<h1>Data-subject access report (GDPR art. 15)</h1>\n"
          "<p>Every flow of the ptibus integration bus that concerned this person: which "
          "institution sent which kind of message to which institution, when, and whether "
          "the recipient acknowledged it. The content of the messages is not shown.</p>\n",
          f);
    fprintf(f,
            "<p class=\"meta\">Produced by ptibusctl %s; this read is recorded in the "
            "journal (ADMIN record %" PRIu64 "), reason: ",
            PTIBUS_VERSION, audit);
    out_html_text(f, reason);
    fputs("</p>\n", f);
}

/* Opens the journal with the person index's key, counts nothing: the read is
 * recorded first, whatever it finds. */
static int
person_open(ctl_t *c, journal_t **j)
{
    uint8_t *key = NULL;
    pt_error_t err;
    if (!ctl_need(c, c->set.person_key, "--person-key FILE", "journal.person_index_key"))
        return CTL_USAGE;
    if (keys_secret_load(c->set.person_key, 32, &key, &err) != 0)
        return fail(&err);
    journal_options_t o = {.dir = c->set.journal, .read_only = true, .hmac_key = key};
    int rc = journal_open(&o, j, &err) == 0 ? 0 : fail(&err);
    keys_secret_free(&key);
    return rc;
}

/* The audit record names the index key's first 8 bytes: who was looked up, for one
 * who holds the key, and nothing for anyone else. */
static void
person_what(const ctl_t *c, const char *nir, char *what, size_t cap)
{
    uint8_t *key = NULL, mac[crypto_auth_hmacsha256_BYTES];
    pt_error_t err;
    char hex[17] = "?";
    if (keys_secret_load(c->set.person_key, 32, &key, &err) == 0) {
        crypto_auth_hmacsha256(mac, (const uint8_t *)nir, strlen(nir), key);
        sodium_bin2hex(hex, sizeof hex, mac, 8);
    }
    keys_secret_free(&key);
    snprintf(what, cap, "person report, person index key %s...", hex);
}

/* The report itself, once the read is recorded. */
static int
person_report(const ctl_t *c, journal_t *j, const char *nir, const char *reason, uint64_t audit)
{
    uint64_t *seqs = NULL;
    size_t n = 0;
    pt_error_t err;
    if (journal_find_person(j, nir, &seqs, &n, &err) != 0)
        return fail(&err);
    out_t o;
    person_ctx_t p = {.j = j, .o = &o};
    if (c->fmt == CTL_FMT_HTML)
        html_head(stdout, reason, audit);
    out_begin(&o, c->fmt, person_cols, N_PERSON_COLS);
    int rc = person_visit(&p, seqs, n, &err);
    out_end(&o);
    free(seqs);
    if (c->fmt == CTL_FMT_HTML)
        printf("<p>%zu messages, %" PRIu64 " flows (one per recipient).</p>\n</body></html>\n", n,
               p.flows);
    fprintf(stderr,
            "ptibusctl: %s: %zu messages about this person, %" PRIu64
            " flows; this read is journaled as ADMIN record %" PRIu64 "\n",
            c->name, n, p.flows, audit);
    return rc == 0 ? CTL_OK : fail(&err);
}

/* person --nir NIR|- --reason TEXT [--person-key FILE] */
int
cmd_person(ctl_t *c, int argc, char **argv)
{
    static const struct option opts[] = {{"nir", required_argument, NULL, 'n'},
                                         {"reason", required_argument, NULL, 'r'},
                                         {"person-key", required_argument, NULL, 'k'},
                                         CTL_COMMON_OPTS,
                                         CTL_CONN_OPTS,
                                         {NULL, 0, NULL, 0}};
    person_args_t a = {0};
    char nir[PT_NIR_NORM_SIZE] = "", what[120];
    int rc = ctl_parse(c, argc, argv, opts, person_opt, &a);
    if (rc == 0 && (optind != argc || a.nir == NULL))
        rc = CTL_USAGE;
    if (rc == 0 && (a.reason == NULL || a.reason[0] == '\0'))
        rc = ctl_error(c, CTL_USAGE,
                       "--reason TEXT is required: the read of personal data is "
                       "journaled with it");
    if (rc == 0)
        rc = person_nir(c, a.nir, nir);
    if (rc == 0 && (rc = journal_settings(c)) == 0)
        rc = admin_settings(c);
    journal_t *j = NULL;
    if (rc == 0)
        rc = person_open(c, &j);
    uint64_t audit = 0;
    if (rc == 0) {
        person_what(c, nir, what, sizeof what);
        if ((rc = admin_audit_read(c, what, a.reason, &audit)) != 0) {
            fprintf(stderr,
                    "ptibusctl: %s: nothing shown: the read could not be recorded by "
                    "the broker\n",
                    c->name);
            rc = rc == CTL_USAGE ? rc : CTL_UNAUDITED;
        }
    }
    if (rc == 0)
        rc = person_report(c, j, nir, a.reason, audit);
    sodium_memzero(nir, sizeof nir);
    journal_close(&j);
    return rc;
}
