/* report: the partnership evaluation's numbers, aggregated in memory bounded by the
 * number of groups (month, territory, sender, recipient, type), each with a delay
 * histogram (8 buckets per power of two: percentiles within 1/8 of their value), and
 * their output: rows in the union columns (table, tsv, csv, json) or one
 * self-contained HTML page with inline SVG charts and the same numbers. */
#ifndef PT_REPORT_H
#define PT_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ctl.h"
#include "journal.h"

typedef struct report report_t;

typedef struct report_period {
    int64_t since, until; /* 0 = open */
    const char *territory;
} report_period_t;

/* Caller owns the result; free with report_destroy(). NULL when out of memory. */
report_t *report_new(void);
void report_destroy(report_t **r);

/* A message received at t, routed to recipient. */
void report_received(report_t *r, int64_t t, const char *territory, const char *sender,
                     const char *recipient, const char *type);

/* Its acknowledgement (acked) or dead letter, delay_ms after its reception. */
void report_outcome(report_t *r, int64_t received_ms, const char *territory, const char *sender,
                    const char *recipient, const char *type, bool acked, int64_t delay_ms);

/* A refused message (reason: the part that names the field or the rule). */
void report_refused(report_t *r, int64_t t, const char *territory, const char *sender,
                    const char *type, const char *reason);

/* Reads the queues of the recipients seen: depth and oldest entry now. */
int report_backlog(report_t *r, journal_t *j, pt_error_t *err);

/* The rows (sections flow, refusal, backlog) in fmt (not html). */
void report_rows(const report_t *r, ctl_format_t fmt);

/* The page for a comité de pilotage: no script, no external resource. */
void report_html(const report_t *r, const report_period_t *p, FILE *f);

#endif
