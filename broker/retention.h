/* retention: applies the retention of the configuration to the journal in the
 * background: payloads (retention.payloads, journal_expire_payloads) and records
 * (retention.audit, journal_segment_expire: the oldest records moved out behind a
 * signed anchor). One bounded step of each per call, in write transactions of their
 * own, which the broker runs between loop turns (on the delivery tick) so that ingest
 * never waits long for them. Owns the rules built from the configuration and the
 * retention metrics' series. */
#ifndef PT_RETENTION_H
#define PT_RETENTION_H

#include <stdint.h>

#include "bconfig.h"
#include "err.h"
#include "journal.h"
#include "metrics.h"

/* Records examined per step, at most (one commit of a few ms). */
#define PT_RETENTION_STEP 1024

typedef struct retention retention_t;

/* A retention for cfg's policy over j (both borrowed for its life), counting into m
 * (may be NULL). *out is NULL when the policy keeps every payload forever (nothing to
 * do). Returns 0 or -ENOMEM. Caller owns *out; free with retention_destroy(). */
int retention_new(const bconfig_t *cfg, journal_t *j, metrics_t *m, retention_t **out,
                  pt_error_t *err);

/* Frees r and sets *r to NULL; accepts NULL. */
void retention_destroy(retention_t **r);

/* Runs one step of each when due at now_mono_ms (while the last one found more to do,
 * after four times as long as it took, so that a large expiry takes at most a fifth of the
 * loop; else once a second for payloads and once a minute for records; 10 s after a
 * failure). No batch may be open. Logs what it
 * expired and every payload held because its message is still queued or dead-lettered
 * (by seq, never a payload). Accepts NULL (no policy). */
void retention_step(retention_t *r, int64_t now_mono_ms);

/* Sets the held-payloads gauge (committed state). Accepts NULL. */
void retention_publish(retention_t *r);

#endif
