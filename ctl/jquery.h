/* jquery: the journal queries of ptibusctl: a filter on the audit fields, run in
 * read-only transactions, streaming (nothing of the journal is kept but a small cache
 * of senders), through an index when the filter allows it, a scan otherwise; and each
 * record's sender and recipient resolved (a delivery record names its recipient, its
 * sender is that of the RECEIVED record it refers to). */
#ifndef PT_JQUERY_H
#define PT_JQUERY_H

#include <stdbool.h>
#include <stdint.h>

#include "journal.h"

#define JQ_TERRITORY_MAX 64

typedef struct jq_filter {
    int64_t since, until; /* Unix ms, since <= time < until; 0 = unbounded */
    const char *from;     /* sender */
    const char *to;       /* recipient (of a RECEIVED record: one of its routed recipients) */
    const char *type, *message_id, *correlation_id;
    journal_kind_t kind;       /* 0 = any */
    uint64_t seq_from, seq_to; /* 0 = unbounded */
    uint64_t limit;            /* matches at most; 0 = all */
    bool scan;                 /* never an index (to check the indexes against a scan) */
    const char *territory;     /* the envelope's territory (of the RECEIVED record) */
    bool with_territory;       /* fill jq_row_t.territory for every record */
} jq_filter_t;

/* A matching record: the view (borrowed for the call) and its two parties. */
typedef struct jq_row {
    const journal_view_t *v;
    const char *sender;    /* "" when unknown */
    const char *recipient; /* RECEIVED: its recipients joined with ","; "" for none */
    int64_t origin_ms;     /* delivery kinds: the time of the RECEIVED record; else 0 */
    /* The envelope's territory: for delivery kinds always, for RECEIVED and REJECTED
     * records with with_territory or a territory filter; else NULL. Partner text. */
    const char *territory;
} jq_row_t;

typedef int (*jq_fn)(const jq_row_t *row, void *arg);

/* How jq_run will read: "message-id index", "partner index", or "scan". */
const char *jq_plan(const jq_filter_t *f);

/* Calls fn for each record matching f, in sequence order; fn returns nonzero to stop.
 * *matched counts the calls. Returns 0 or a negative code with err filled. */
int jq_run(journal_t *j, const jq_filter_t *f, jq_fn fn, void *arg, uint64_t *matched,
           pt_error_t *err);

/* Parses a kind name ("RECEIVED", case-insensitive, or "DEAD-LETTERED"); 0 if unknown. */
journal_kind_t jq_kind(const char *name);

/* Whether a delivery kind: its partner is the recipient, its sender the ref's. */
bool jq_delivery_kind(journal_kind_t k);

/* The envelope's territory (header field 6) read from a RECEIVED or REJECTED record's
 * bytes without decoding the rest; "" when absent or unreadable. */
void jq_territory(const journal_view_t *v, char *out, size_t cap);

/* The first seq whose record is at or after time_ms, by binary search on the journal's
 * times (they follow its sequence, the broker's clock); last + 1 when none. */
uint64_t jq_seq_at(journal_t *j, int64_t time_ms);

/* Opens the journal read-only (prints the error); 0 or CTL_FAILED. */
int jq_open(const char *dir, journal_t **j);

#endif
