/* archive_cmd: the offline journal tools besides journal list and journal verify.
 * `compact` writes a compacted copy of a journal (LMDB's mdb_copy -c). `archive` writes
 * the live journal's oldest records, up to a signed checkpoint at or before a time, to a
 * self-contained archive (a journal environment of its own, docs/journal.md
 * "Archives"); `archive-verify` verifies an archive alone and, with --live (or
 * --journal), as the
 * predecessor of the live journal. Both open the live journal read-only; the journal
 * folder and the signing key come from the config (journal.dir, journal.sign_public_key)
 * or --journal / --pubkey. An archive is read by journal list and journal verify like
 * any journal (--journal ARCHIVE). */
#include "ctl.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "journal.h"
#include "keys.h"

enum { OPT_UNTIL = 1, OPT_TO, OPT_ARCHIVE, OPT_PUBKEY, OPT_LIVE };

typedef struct arch_args {
    const char *until, *to, *archive, *pubkey, *live;
} arch_args_t;

static int
arch_opt(ctl_t *c, int code, const char *v, void *arg)
{
    arch_args_t *a = arg;
    (void)c;
    const char **dest[] = {[OPT_UNTIL] = &a->until,
                           [OPT_TO] = &a->to,
                           [OPT_ARCHIVE] = &a->archive,
                           [OPT_PUBKEY] = &a->pubkey,
                           [OPT_LIVE] = &a->live};
    if (code <= 0 || (size_t)code >= sizeof dest / sizeof *dest)
        return CTL_USAGE;
    *dest[code] = v;
    return 0;
}

static int
arch_parse(ctl_t *c, int argc, char **argv, arch_args_t *a)
{
    static const struct option opts[] = {{"until", required_argument, NULL, OPT_UNTIL},
                                         {"to", required_argument, NULL, OPT_TO},
                                         {"archive", required_argument, NULL, OPT_ARCHIVE},
                                         {"pubkey", required_argument, NULL, OPT_PUBKEY},
                                         {"live", required_argument, NULL, OPT_LIVE},
                                         CTL_COMMON_OPTS,
                                         CTL_CONN_OPTS,
                                         {NULL, 0, NULL, 0}};
    int rc = ctl_parse(c, argc, argv, opts, arch_opt, a);
    if (rc == 0 && optind != argc)
        rc = ctl_error(c, CTL_USAGE, "unexpected argument \"%.40s\"", argv[optind]);
    return rc;
}

static int
open_ro(const char *dir, journal_t **j)
{
    journal_options_t o = {.dir = dir, .read_only = true};
    pt_error_t err;
    return journal_open(&o, j, &err) == 0 ? 0 : fail(&err);
}

/* archive --until T --to DIR [--journal DIR] */
int
cmd_archive(ctl_t *c, int argc, char **argv)
{
    arch_args_t a = {0};
    int64_t ms = 0;
    int rc = arch_parse(c, argc, argv, &a);
    if (rc == 0 && (a.until == NULL || a.to == NULL))
        rc = ctl_error(c, CTL_USAGE, "give --until TIME and --to DIR");
    if (rc == 0 && !args_time("--until", a.until, true, &ms))
        rc = CTL_USAGE;
    if (rc == 0)
        rc = journal_settings(c);
    if (rc != 0)
        return rc < 0 ? CTL_OK : rc;
    journal_t *j;
    if (open_ro(c->set.journal, &j) != 0)
        return CTL_FAILED;
    journal_archive_report_t rep;
    pt_error_t err;
    rc = journal_archive(j, ms, a.to, &rep, &err);
    journal_close(&j);
    if (rc != 0)
        return fail(&err);
    printf("archived records %" PRIu64 "..%" PRIu64
           " to %s (up to the signed checkpoint at %" PRIu64 ")\n",
           rep.first, rep.last, a.to, rep.last);
    return CTL_OK;
}

static int
verify_one(const char *what, journal_t *j, const uint8_t *pk)
{
    journal_verify_options_t o = {.pk = pk, .check_state = true};
    journal_verify_report_t rep;
    uint64_t bad;
    pt_error_t err;
    if (journal_verify_ex(j, &o, &rep, &bad, &err) != 0) {
        fprintf(stderr, "ptibusctl: %s verify FAILED at record %" PRIu64 ": %s\n", what, bad,
                err.msg);
        return CTL_CORRUPT;
    }
    printf("%s: records %" PRIu64 "..%" PRIu64 " intact, %" PRIu64
           " checkpoints signed and linked%s\n",
           what, rep.first, rep.last, rep.checkpoints,
           rep.anchor_seq ? ", from the signed anchor" : "");
    return CTL_OK;
}

/* archive-verify --archive DIR [--pubkey SIGN.pub] [--live DIR | --journal DIR] */
int
cmd_archive_verify(ctl_t *c, int argc, char **argv)
{
    arch_args_t a = {0};
    int rc = arch_parse(c, argc, argv, &a);
    if (rc == 0 && a.archive == NULL)
        rc = ctl_error(c, CTL_USAGE, "give --archive DIR");
    if (rc == 0)
        rc = ctl_load(c);
    const char *pub = a.pubkey ? a.pubkey : c->set.sign_pub;
    if (a.live == NULL) /* the live journal only when named: --live, or --journal */
        a.live = c->over.journal;
    if (rc == 0 && !ctl_need(c, pub, "--pubkey SIGN.pub", "journal.sign_public_key"))
        rc = CTL_USAGE;
    if (rc != 0)
        return rc < 0 ? CTL_OK : rc;
    uint8_t pk[32];
    pt_error_t err;
    journal_t *ar = NULL, *l = NULL;
    if (keys_read(pub, pk, PT_KEY_LEN, false, &err) != 0)
        return fail(&err);
    if (open_ro(a.archive, &ar) != 0)
        return CTL_FAILED;
    rc = journal_is_archive(ar)
             ? verify_one("archive", ar, pk)
             : (fprintf(stderr, "ptibusctl: %s: not an archive\n", a.archive), CTL_FAILED);
    if (rc == CTL_OK && a.live != NULL && (rc = open_ro(a.live, &l)) == CTL_OK)
        rc = verify_one("live journal", l, pk);
    if (rc == CTL_OK && l != NULL && journal_archive_chains(ar, l, &err) != 0)
        rc = fail(&err);
    else if (rc == CTL_OK && l != NULL)
        printf("chained: the archive is the predecessor of the live journal (first live record "
               "%" PRIu64 ")\n",
               journal_first_seq(l));
    journal_close(&ar);
    journal_close(&l);
    return rc;
}

/* compact --to DIR [--journal DIR] */
int
cmd_compact(ctl_t *c, int argc, char **argv)
{
    arch_args_t a = {0};
    int rc = arch_parse(c, argc, argv, &a);
    if (rc == 0 && a.to == NULL)
        rc = ctl_error(c, CTL_USAGE, "give --to DIR");
    if (rc == 0)
        rc = journal_settings(c);
    if (rc != 0)
        return rc < 0 ? CTL_OK : rc;
    journal_t *j;
    journal_space_t before;
    pt_error_t err;
    if (open_ro(c->set.journal, &j) != 0)
        return CTL_FAILED;
    rc = journal_space(j, &before, &err);
    if (rc == 0)
        rc = journal_copy(j, a.to, &err);
    journal_close(&j);
    if (rc != 0)
        return fail(&err);
    printf("compacted copy of %s in %s: the file had %zu bytes, %zu reclaimable\n", c->set.journal,
           a.to, before.file_bytes, before.reclaimable_bytes);
    return CTL_OK;
}
