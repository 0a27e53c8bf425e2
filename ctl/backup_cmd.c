/* backup_cmd: a consistent copy of the journal while the broker runs (journal_copy:
 * LMDB's compacting copy in one read transaction) into a new folder 0700 with its file
 * 0600 from the start — the documented mdb_copy procedure failed on a missing folder
 * and left a world-readable copy of personal data — then the copy verified as journal
 * verify does (chain, checkpoints with the signing key when configured, state). */
#include "ctl.h"

#include <getopt.h>
#include <inttypes.h>

#include "jquery.h"
#include "keys.h"

typedef struct backup_args {
    const char *to, *pub;
} backup_args_t;

static int
backup_opt(ctl_t *c, int code, const char *v, void *arg)
{
    (void)c;
    backup_args_t *a = arg;
    if (code == 't')
        a->to = v;
    else if (code == 'p')
        a->pub = v;
    else
        return CTL_USAGE;
    return 0;
}

/* Verifies the copy: 0, or CTL_CORRUPT / CTL_FAILED with the error printed. */
static int
backup_verify(const ctl_t *c, const char *dir, const char *pub, uint64_t *last)
{
    uint8_t pk[32];
    pt_error_t err;
    if (pub && keys_read(pub, pk, PT_KEY_LEN, false, &err) != 0)
        return fail(&err);
    journal_t *j;
    int rc = jq_open(dir, &j);
    if (rc != 0)
        return rc;
    journal_verify_options_t o = {
        .pk = pub ? pk : NULL, .max_unsigned = PT_JOURNAL_UNSIGNED_MAX, .check_state = true};
    journal_verify_report_t rep;
    uint64_t bad = 0;
    *last = journal_last_seq(j);
    rc = *last == 0 ? 0 : journal_verify_ex(j, &o, &rep, &bad, &err);
    journal_close(&j);
    if (rc != 0)
        return ctl_error(c, CTL_CORRUPT, "the copy does not verify at record %" PRIu64 ": %s", bad,
                         err.msg);
    return 0;
}

/* backup --to DIR [--pubkey SIGN.pub] [--journal DIR] */
int
cmd_backup(ctl_t *c, int argc, char **argv)
{
    static const struct option opts[] = {{"to", required_argument, NULL, 't'},
                                         {"pubkey", required_argument, NULL, 'p'},
                                         CTL_COMMON_OPTS,
                                         CTL_CONN_OPTS,
                                         {NULL, 0, NULL, 0}};
    backup_args_t a = {0};
    int rc = ctl_parse(c, argc, argv, opts, backup_opt, &a);
    if (rc == 0 && (optind != argc || a.to == NULL))
        rc = CTL_USAGE;
    if (rc == 0)
        rc = journal_settings(c);
    journal_t *j = NULL;
    if (rc != 0 || (rc = jq_open(c->set.journal, &j)) != 0)
        return rc;
    pt_error_t err;
    rc = journal_copy(j, a.to, &err) == 0 ? 0 : fail(&err);
    journal_close(&j);
    uint64_t last = 0;
    const char *pub = a.pub ? a.pub : c->set.sign_pub;
    if (rc == 0)
        rc = backup_verify(c, a.to, pub, &last);
    if (rc == 0)
        printf("backup %s: records 1..%" PRIu64 " copied and verified%s (folder 0700, "
               "data.mdb 0600)\n",
               a.to, last, pub ? ", checkpoints signed" : " (signatures not checked: no --pubkey)");
    return rc;
}
