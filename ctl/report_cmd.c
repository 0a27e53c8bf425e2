/* report_cmd: the partnership evaluation for the comité de pilotage: over the messages
 * received in a period, the flows per month, territory, sender, recipient and type
 * (messages, acknowledged, acknowledgement rate, dead letters, delivery delay p50, p95
 * and max), the refusals per month, territory (the tag the broker adds to a refusal's
 * reason: the refused bytes are not stored), sender, type and reason, and the backlog
 * per recipient now. One streaming
 * scan from the period's first seq; memory is bounded by the number of groups (a
 * delay histogram each), not by the journal. Audit fields and the envelope's territory
 * only: no personal data. */
#include "ctl.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "jquery.h"
#include "report.h"

typedef struct report_args {
    jq_filter_t f;
} report_args_t;

enum { OPT_SINCE = 1, OPT_UNTIL, OPT_TERRITORY };

static int
report_opt(ctl_t *c, int code, const char *v, void *arg)
{
    (void)c;
    report_args_t *a = arg;
    if (code == OPT_SINCE)
        return args_time("--since", v, false, &a->f.since) ? 0 : CTL_USAGE;
    if (code == OPT_UNTIL)
        return args_time("--until", v, true, &a->f.until) ? 0 : CTL_USAGE;
    if (code == OPT_TERRITORY) {
        a->f.territory = v;
        return 0;
    }
    return CTL_USAGE;
}

static bool
in_period(const jq_filter_t *f, int64_t t)
{
    return (f->since == 0 || t >= f->since) && (f->until == 0 || t < f->until);
}

/* "-ABC: what" -> the part before the first ':' (the field or the rule), at most 60. */
static void
reason_head(const char *reason, char *out, size_t cap)
{
    const char *tag = reason ? strstr(reason, CODEC_TERRITORY_TAG) : NULL;
    size_t n = reason ? strcspn(reason, ":") : 0;
    if (tag && (size_t)(tag - reason) < n)
        n = (size_t)(tag - reason); /* the territory tag is not part of the reason */
    if (n > 60)
        n = 60;
    snprintf(out, cap, "%.*s", (int)n, reason ? reason : "");
}

typedef struct report_ctx {
    const jq_filter_t *f;
    report_t *r;
} report_ctx_t;

static int
report_row(const jq_row_t *row, void *arg)
{
    report_ctx_t *x = arg;
    const journal_view_t *v = row->v;
    const char *terr = row->territory ? row->territory : "";
    if (x->f->territory && strcmp(terr, x->f->territory) != 0)
        return 0;
    if (v->kind == PT_REC_RECEIVED && in_period(x->f, v->time_ms)) {
        for (size_t i = 0; i < v->n_recipients; i++)
            report_received(x->r, v->time_ms, terr, v->partner, v->recipients[i], v->msg_type);
    } else if (v->kind == PT_REC_REJECTED && in_period(x->f, v->time_ms)) {
        char head[64];
        reason_head(v->reason, head, sizeof head);
        report_refused(x->r, v->time_ms, terr, v->partner, v->msg_type, head);
    } else if ((v->kind == PT_REC_ACKNOWLEDGED || v->kind == PT_REC_DEAD_LETTERED) &&
               row->origin_ms && in_period(x->f, row->origin_ms)) {
        report_outcome(x->r, row->origin_ms, terr, row->sender, row->recipient, v->msg_type,
                       v->kind == PT_REC_ACKNOWLEDGED, v->time_ms - row->origin_ms);
    }
    return 0;
}

static int
report_scan(ctl_t *c, journal_t *j, const jq_filter_t *period, report_t *r)
{
    /* No filter in f but the start: the period applies to the RECEIVED records, and
     * their outcomes may come later. */
    jq_filter_t f = {.seq_from = period->since ? jq_seq_at(j, period->since) : 0,
                     .with_territory = true};
    report_ctx_t x = {.f = period, .r = r};
    uint64_t n;
    pt_error_t err;
    if (f.seq_from > journal_last_seq(j))
        return 0;
    if (jq_run(j, &f, report_row, &x, &n, &err) != 0)
        return fail(&err);
    (void)c;
    return report_backlog(r, j, &err) == 0 ? 0 : fail(&err);
}

/* report [--since T] [--until T] [--territory X] [--format table|tsv|csv|json|html] */
int
cmd_report(ctl_t *c, int argc, char **argv)
{
    static const struct option opts[] = {{"since", required_argument, NULL, OPT_SINCE},
                                         {"until", required_argument, NULL, OPT_UNTIL},
                                         {"territory", required_argument, NULL, OPT_TERRITORY},
                                         CTL_COMMON_OPTS,
                                         CTL_CONN_OPTS,
                                         {NULL, 0, NULL, 0}};
    report_args_t a = {0};
    int rc = ctl_parse(c, argc, argv, opts, report_opt, &a);
    if (rc == 0 && optind != argc)
        rc = CTL_USAGE;
    if (rc == 0 && a.f.since && a.f.until && a.f.since >= a.f.until)
        rc = ctl_error(c, CTL_USAGE, "--since is not before --until: the period is empty");
    if (rc == 0)
        rc = journal_settings(c);
    journal_t *j = NULL;
    if (rc != 0 || (rc = jq_open(c->set.journal, &j)) != 0)
        return rc;
    report_t *r = report_new();
    if (r == NULL) {
        journal_close(&j);
        return ctl_error(c, CTL_FAILED, "out of memory");
    }
    rc = report_scan(c, j, &a.f, r);
    journal_close(&j);
    if (rc == 0) {
        report_period_t p = {.since = a.f.since, .until = a.f.until, .territory = a.f.territory};
        if (c->fmt == CTL_FMT_HTML)
            report_html(r, &p, stdout);
        else
            report_rows(r, c->fmt);
    }
    report_destroy(&r);
    return rc;
}
