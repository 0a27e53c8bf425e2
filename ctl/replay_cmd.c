/* replay_cmd: replay by filter: the journal is read here (read-only) for the RECEIVED
 * records that match and that the routes gave the recipient (with --force, also those
 * they did not give it: the broker journals the flag), and their seqs go to the
 * broker's admin socket in slices of at most 1000, each a short request, so that a
 * replay of any size never holds the broker's loop. Each slice is journaled by the
 * broker (operator, seqs, reason, filter); --dry-run lists what would go and sends
 * nothing. */
#include "ctl.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "jquery.h"
#include "ptibus/v1/admin.pb-c.h"
#include "utf8.h"

#define REPLAY_SLICE 1000 /* seqs per request: the broker's limit (admin.proto) */

typedef struct replay_ctx {
    const ctl_t *c;
    const char *to, *reason;
    bool force;
    char filter[201];
    uint64_t slice[REPLAY_SLICE];
    size_t n;
    uint64_t replayed, slices;
    int rc; /* the first failure's exit code */
} replay_ctx_t;

/* Sends the slice; the broker skips what is still queued for the recipient. */
static int
replay_flush(replay_ctx_t *r)
{
    if (r->n == 0 || r->rc != 0)
        return r->rc;
    Ptibus__V1__AdminRequest q = PTIBUS__V1__ADMIN_REQUEST__INIT;
    Ptibus__V1__ReplayRequest rp = PTIBUS__V1__REPLAY_REQUEST__INIT;
    rp.recipient = (char *)r->to;
    rp.reason = (char *)r->reason;
    rp.filter = r->filter;
    rp.seqs = r->slice;
    rp.n_seqs = r->n;
    rp.force = r->force;
    q.request_id = "ptibusctl";
    q.kind_case = PTIBUS__V1__ADMIN_REQUEST__KIND_REPLAY;
    q.replay = &rp;
    Ptibus__V1__AdminResponse *resp;
    r->rc = admin_call(r->c, &q, &resp);
    if (r->rc == 0) {
        r->replayed += resp->replayed;
        r->slices++;
        codec_free((ProtobufCMessage **)&resp);
    }
    r->n = 0;
    return r->rc;
}

static int
replay_row(const jq_row_t *row, void *arg)
{
    replay_ctx_t *r = arg;
    r->slice[r->n++] = row->v->seq;
    return r->n == REPLAY_SLICE && replay_flush(r) != 0;
}

/* The selection as typed, for the ADMIN records (at most 200 bytes, one line). */
static void
replay_filter_text(replay_ctx_t *r, int argc, char **argv)
{
    char buf[1024];
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 1; i < argc && off + 2 < sizeof buf; i++) {
        if (strcmp(argv[i], "--reason") == 0) {
            i++; /* in the record already */
            continue;
        }
        off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s", off ? " " : "", argv[i]);
    }
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    utf8_truncate(r->filter, sizeof r->filter, buf, 200);
    if (strlen(r->filter) > 200)
        r->filter[200] = '\0';
}

static int
replay_check(const ctl_t *c, const jq_filter_t *f, const char *reason, bool dry_run)
{
    if (f->to == NULL)
        return ctl_error(c, CTL_USAGE, "--to PARTNER is required: the recipient to deliver to");
    if (!f->since && !f->until && !f->from && !f->type && !f->message_id && !f->correlation_id &&
        !f->seq_from && !f->seq_to)
        return ctl_error(c, CTL_USAGE,
                         "give at least one of --since, --until, --from, --type, "
                         "--message-id, --correlation-id, --seq-from, --seq-to");
    if (f->kind && f->kind != PT_REC_RECEIVED)
        return ctl_error(c, CTL_USAGE, "--kind: a replay selects RECEIVED messages");
    if (!dry_run && (reason == NULL || reason[0] == '\0'))
        return ctl_error(c, CTL_USAGE,
                         "--reason TEXT is required (why: an incident or ticket "
                         "number; it is journaled)");
    return 0;
}

static int
count_row(const jq_row_t *row, void *arg)
{
    (void)row;
    (void)arg;
    return 0;
}

/* Nothing the routes gave the recipient matched: whether the filter matches messages
 * they did not give it, so that the refusal says why and how (--force). */
static int
replay_unrouted(const ctl_t *c, journal_t *j, const jq_filter_t *f)
{
    jq_filter_t g = *f;
    uint64_t n = 0;
    pt_error_t err;
    g.to = NULL;
    if (jq_run(j, &g, count_row, NULL, &n, &err) != 0)
        return fail(&err);
    if (n == 0)
        return ctl_error(c, CTL_NOMATCH, "no message routed to %s matches the filter", esc(f->to));
    return ctl_error(c, CTL_NOMATCH,
                     "no message routed to %s matches the filter: %" PRIu64 " messages match, "
                     "but the routes did not give them to %s, and a replay goes only to a "
                     "message's recipients; to send them anyway (e.g. a partner that took over "
                     "another's cases), add --force (journaled as a forced replay)",
                     esc(f->to), n, esc(f->to));
}

/* The outcome, once the selection ran (and, unless a dry run, its slices were sent). */
static int
replay_done(const ctl_t *c, journal_t *j, const jq_filter_t *f, const replay_ctx_t *r,
            uint64_t matched, bool dry_run)
{
    if (matched == 0)
        return r->force ? ctl_error(c, CTL_NOMATCH, "no message matches the filter")
                        : replay_unrouted(c, j, f);
    if (dry_run) {
        fprintf(stderr,
                "ptibusctl: %s: dry run: %" PRIu64 " messages would be replayed to %s%s "
                "(those still queued for it are skipped); nothing was sent\n",
                c->name, matched, esc(r->to), r->force ? " (forced)" : "");
        return CTL_OK;
    }
    if (r->replayed == 0)
        return ctl_error(c, CTL_NOMATCH,
                         "nothing replayed: the %" PRIu64 " matching messages "
                         "are all still queued for %s",
                         matched, esc(r->to));
    printf("replayed %" PRIu64 " of %" PRIu64 " matching messages to %s%s (%" PRIu64
           " requests; the others are still queued for it)\n",
           r->replayed, matched, esc(r->to), r->force ? ", forced" : "", r->slices);
    return CTL_OK;
}

/* replay --to PARTNER [journal filters] --reason TEXT [--force] [--dry-run] */
int
cmd_replay(ctl_t *c, int argc, char **argv)
{
    jq_filter_t f = {0};
    const char *reason = NULL;
    bool dry_run = false, force = false;
    journal_extra_t x = {.reason = &reason, .dry_run = &dry_run, .force = &force};
    int rc = journal_filter_parse(c, argc, argv, &f, &x);
    if (rc == 0)
        rc = replay_check(c, &f, reason, dry_run);
    if (rc == 0)
        rc = dry_run ? journal_settings(c) : admin_settings(c);
    if (rc == 0 && !dry_run)
        rc = journal_settings(c);
    journal_t *j = NULL;
    if (rc != 0 || (rc = jq_open(c->set.journal, &j)) != 0)
        return rc;
    f.kind = PT_REC_RECEIVED; /* with f.to: only what the routes gave the recipient */
    replay_ctx_t r = {.c = c, .to = f.to, .reason = reason, .force = force};
    replay_filter_text(&r, argc, argv);
    jq_filter_t sel = f;
    if (force)
        sel.to = NULL; /* every matching message, whoever the routes gave it to */
    uint64_t matched = 0;
    pt_error_t err;
    out_t o;
    if (dry_run)
        out_begin(&o, c->fmt, journal_list_cols, JOURNAL_LIST_COLS);
    rc = jq_run(j, &sel, dry_run ? journal_list_row : replay_row, dry_run ? (void *)&o : &r,
                &matched, &err);
    if (dry_run)
        out_end(&o);
    if (rc != 0)
        rc = fail(&err);
    else if (!dry_run && replay_flush(&r) != 0)
        rc = ctl_error(c, r.rc, "stopped after %" PRIu64 " slices, %" PRIu64 " replayed", r.slices,
                       r.replayed);
    else
        rc = replay_done(c, j, &f, &r, matched, dry_run);
    journal_close(&j);
    return rc;
}
