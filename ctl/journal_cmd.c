/* journal_cmd: reading a journal's files (read-only, the broker may be running):
 * journal-list (audit fields, never a payload) and journal-verify (chain, signed linked
 * checkpoints, the state databases). */
#include "ctl.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "journal.h"
#include "keys.h"

static int
open_journal_ro(const char *dir, journal_t **j)
{
    journal_options_t o = {.dir = dir, .read_only = true};
    pt_error_t err;
    if (journal_open(&o, j, &err) != 0)
        return fail(&err);
    return 0;
}

static void
format_time(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03dZ", (int)(ms % 1000));
}

/* One line per record: never the payload (personal data), only the audit fields. */
static int
print_record(const journal_view_t *v, void *arg)
{
    (void)arg;
    char when[40];
    format_time(v->time_ms, when, sizeof when);
    printf("%" PRIu64 "\t%s\t%-12s\t%-12s\t%-20s\t%s", v->seq, when, journal_kind_name(v->kind),
           esc(v->partner), v->msg_type[0] ? esc(v->msg_type) : "-",
           v->message_id[0] ? esc(v->message_id) : "-");
    if (v->ref_seq)
        printf("\tref=%" PRIu64, v->ref_seq);
    if (v->reason && v->reason[0])
        printf("\t%s", esc(v->reason));
    if (v->payload_state == PT_PAYLOAD_EXPIRED || v->payload_state == PT_PAYLOAD_ERASED)
        printf("\tpayload=%s", journal_payload_name(v->payload_state));
    putchar('\n');
    return 0;
}

/* max_unsigned NULL: --max-unsigned-tail is refused (journal-list). */
static int
journal_args(int argc, char **argv, const char **dir, uint64_t *from, uint64_t *to,
             const char **pub, uint64_t *max_unsigned)
{
    static const struct option opts[] = {{"journal", required_argument, NULL, 'j'},
                                         {"from", required_argument, NULL, 'f'},
                                         {"to", required_argument, NULL, 't'},
                                         {"pubkey", required_argument, NULL, 'p'},
                                         {"max-unsigned-tail", required_argument, NULL, 'u'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "j:f:t:p:", opts, NULL)) != -1) {
        switch (c) {
        case 'u':
            if (max_unsigned == NULL)
                return 2;
            if (!args_u64("--max-unsigned-tail", optarg, 0, UINT64_MAX, max_unsigned))
                return CTL_USAGE;
            break;
        case 'j':
            *dir = optarg;
            break;
        case 'f':
            if (!args_u64("--from", optarg, 1, UINT64_MAX, from))
                return CTL_USAGE;
            break;
        case 't':
            if (!args_u64("--to", optarg, 1, UINT64_MAX, to))
                return CTL_USAGE;
            break;
        case 'p':
            *pub = optarg;
            break;
        default:
            return 2;
        }
    }
    return *dir && optind == argc ? 0 : 2;
}

/* journal-list --journal DIR [--from N] [--to M] */
int
cmd_journal_list(int argc, char **argv)
{
    const char *dir = NULL, *pub = NULL;
    uint64_t from = 1, to = 0;
    if (journal_args(argc, argv, &dir, &from, &to, &pub, NULL) != 0)
        return 2;
    journal_t *j;
    if (open_journal_ro(dir, &j) != 0)
        return 1;
    pt_error_t err;
    int rc = journal_scan(j, from, to, print_record, NULL, &err);
    journal_close(&j);
    return rc == 0 ? 0 : fail(&err);
}

static void
format_utc(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "%lld ms", (long long)ms);
}

/* What was checked, success or not: an auditor reads the counts, not just "intact". */
static void
print_verify_report(const journal_verify_report_t *r, bool signed_, uint64_t max_unsigned)
{
    char when[40];
    printf("records checked: %" PRIu64 "..%" PRIu64 "\n", r->first, r->last);
    if (r->anchor_seq != 0)
        printf("anchor: records 1..%" PRIu64 " moved out (retention.audit); verified from the "
               "signed anchor%s\n",
               r->anchor_seq, signed_ ? "" : " (signature NOT checked)");
    if (r->last_ckpt_seq != 0) {
        format_utc(r->last_ckpt_ms, when, sizeof when);
        printf("checkpoints checked: %" PRIu64 " (%" PRIu64 " old-format, not linked), last at "
               "seq %" PRIu64 " signed %s\n",
               r->checkpoints, r->old_checkpoints, r->last_ckpt_seq, when);
    } else {
        printf("checkpoints checked: 0\n");
    }
    printf("unsigned tail: %" PRIu64 " records after the last checkpoint (allowed %" PRIu64 "%s)\n",
           r->unsigned_tail, max_unsigned, signed_ ? "" : ", not enforced without --pubkey");
    if (!signed_)
        printf("signatures: NOT checked (no --pubkey)\n");
    if (r->state_checked)
        printf("state: queue, dead-letter, dedup, by_msgid and by_partner match the records\n");
}

/* journal-verify --journal DIR [--pubkey broker.sign.pub] [--from N] [--to M]
 *                [--max-unsigned-tail N] */
int
cmd_journal_verify(int argc, char **argv)
{
    const char *dir = NULL, *pub = NULL;
    uint64_t from = 0, to = 0, bad = 0, max_unsigned = PT_JOURNAL_UNSIGNED_MAX;
    if (journal_args(argc, argv, &dir, &from, &to, &pub, &max_unsigned) != 0)
        return 2;
    uint8_t pk[32];
    pt_error_t err;
    if (pub && keys_read(pub, pk, PT_KEY_LEN, false, &err) != 0)
        return fail(&err);
    journal_t *j;
    if (open_journal_ro(dir, &j) != 0)
        return 1;
    journal_verify_options_t o = {.first = from,
                                  .last = to,
                                  .pk = pub ? pk : NULL,
                                  .max_unsigned = max_unsigned,
                                  .check_state = true};
    journal_verify_report_t rep;
    int rc = journal_verify_ex(j, &o, &rep, &bad, &err);
    journal_close(&j);
    print_verify_report(&rep, pub != NULL, max_unsigned);
    if (rc != 0) {
        fprintf(stderr, "ptibusctl: journal verify FAILED at record %" PRIu64 ": %s\n", bad,
                err.msg);
        return 1;
    }
    printf("journal %s: records %" PRIu64 "..%" PRIu64 " intact%s\n", dir, rep.first, rep.last,
           pub ? ", checkpoints signed, linked and covering the head" : "");
    return 0;
}
