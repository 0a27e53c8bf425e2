/* retention: the background payload and segment expiry of the broker (retention.h). */
#include "retention.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "broker_metrics.h"
#include "clock.h"
#include "log.h"

#define RETENTION_IDLE_MS 1000   /* between steps once nothing more is due */
#define RETENTION_RETRY_MS 10000 /* after a failed step (a full journal) */
#define RETENTION_DUTY 4         /* a step with more due is followed by 4x its time idle */
#define SEGMENT_IDLE_MS 60000    /* between segment steps once nothing is due (or audit/2) */

struct retention {
    journal_t *journal;
    journal_retention_rule_t *rules;
    size_t n_rules;
    int64_t next_ms;         /* no payload step before this (monotonic) */
    int64_t audit_ms;        /* retention.audit; 0 = records kept forever */
    int64_t segment_next_ms; /* no segment step before this (monotonic) */
    metrics_series_t *m_expired;
    metrics_series_t *m_held;
};

static bool
keeps_everything(const bconfig_t *cfg)
{
    for (size_t i = 0; i < cfg->n_retention; i++)
        if (cfg->retention[i].keep_ms != 0)
            return false;
    return true;
}

int
retention_new(const bconfig_t *cfg, journal_t *j, metrics_t *m, retention_t **out, pt_error_t *err)
{
    *out = NULL;
    if (keeps_everything(cfg) && cfg->audit_retention_ms == 0)
        return 0;
    retention_t *r = calloc(1, sizeof *r);
    if (r == NULL || (r->rules = calloc(cfg->n_retention + 1, sizeof *r->rules)) == NULL) {
        free(r);
        return pt_error_set(err, -ENOMEM, "retention", "out of memory");
    }
    for (size_t i = 0; i < cfg->n_retention; i++)
        r->rules[i] = (journal_retention_rule_t){cfg->retention[i].msg_type,
                                                 (int64_t)cfg->retention[i].keep_ms};
    r->n_rules = cfg->n_retention;
    r->audit_ms = (int64_t)cfg->audit_retention_ms;
    r->journal = j;
    if (m != NULL) {
        r->m_expired = metrics_series(metrics_find(m, PT_METRIC_PAYLOADS_EXPIRED), NULL);
        r->m_held = metrics_series(metrics_find(m, PT_METRIC_PAYLOADS_HELD), NULL);
    }
    *out = r;
    return 0;
}

void
retention_destroy(retention_t **rp)
{
    if (rp == NULL || *rp == NULL)
        return;
    free((*rp)->rules);
    free(*rp);
    *rp = NULL;
}

static void
report(retention_t *r, const journal_expiry_report_t *rep)
{
    if (rep->expired > 0) {
        pt_log_info("retention.expired", "%zu payloads expired (%zu records examined)",
                    rep->expired, rep->examined);
        if (r->m_expired != NULL)
            metrics_add(r->m_expired, (double)rep->expired);
    }
    if (rep->held > 0)
        pt_log_warn("retention.held",
                    "%zu due payloads kept: still queued or dead-lettered (last record %" PRIu64
                    "); removed once acknowledged",
                    rep->held, rep->held_seq);
}

/* Moves the records older than retention.audit out of the live journal, one bounded
 * step behind a new signed anchor (journal_segment_expire). */
static void
segment_step(retention_t *r, int64_t now_mono_ms)
{
    journal_txn_t *t;
    journal_segment_report_t rep = {0};
    pt_error_t err;
    int rc = journal_begin(r->journal, &t, &err);
    if (rc == 0 && (rc = journal_segment_expire(t, pt_clock_wall_ms() - r->audit_ms,
                                                PT_RETENTION_STEP, &rep, &err)) != 0)
        journal_abort(&t);
    else if (rc == 0)
        rc = journal_commit(&t, &err);
    if (rc != 0) {
        r->segment_next_ms = now_mono_ms + RETENTION_RETRY_MS;
        pt_log_error("retention.segment", "%s (next try in %d s)", err.msg,
                     RETENTION_RETRY_MS / 1000);
        return;
    }
    int64_t idle = r->audit_ms / 2 < SEGMENT_IDLE_MS ? r->audit_ms / 2 : SEGMENT_IDLE_MS;
    r->segment_next_ms = rep.more ? now_mono_ms : now_mono_ms + idle;
    if (rep.moved > 0)
        pt_log_notice("retention.segment",
                      "records %" PRIu64 "..%" PRIu64 " moved out of the live journal "
                      "(retention.audit); signed anchor at %" PRIu64,
                      rep.first, rep.anchor, rep.anchor);
}

void
retention_step(retention_t *r, int64_t now_mono_ms)
{
    if (r != NULL && r->audit_ms > 0 && now_mono_ms >= r->segment_next_ms)
        segment_step(r, now_mono_ms);
    if (r == NULL || r->n_rules == 0 || now_mono_ms < r->next_ms)
        return;
    journal_txn_t *t;
    journal_expiry_report_t rep = {0};
    pt_error_t err;
    int rc = journal_begin(r->journal, &t, &err);
    if (rc == 0 && (rc = journal_expire_payloads(t, r->rules, r->n_rules, pt_clock_wall_ms(),
                                                 PT_RETENTION_STEP, &rep, &err)) != 0)
        journal_abort(&t);
    else if (rc == 0)
        rc = journal_commit(&t, &err);
    if (rc != 0) {
        r->next_ms = now_mono_ms + RETENTION_RETRY_MS;
        pt_log_error("retention.step", "%s (next try in %d s)", err.msg, RETENTION_RETRY_MS / 1000);
        return;
    }
    /* While more is due, the next step waits RETENTION_DUTY times as long as this one
     * took: a large expiry takes at most 1 / (1 + RETENTION_DUTY) of the loop, and ingest
     * keeps the rest (bench R1: back to back, it halved windowed ingest). */
    int64_t took = pt_clock_mono_ms() - now_mono_ms;
    r->next_ms = rep.more ? now_mono_ms + (took > 0 ? took : 0) * (RETENTION_DUTY + 1)
                          : now_mono_ms + RETENTION_IDLE_MS;
    report(r, &rep);
}

void
retention_publish(retention_t *r)
{
    if (r != NULL && r->m_held != NULL)
        metrics_set(r->m_held, (double)journal_expiry_held(r->journal));
}
