/* archive_cmd: the offline journal tools besides journal-list and journal-verify.
 * `compact` writes a compacted copy of a journal (LMDB's mdb_copy -c). `archive` writes the live
 * journal's oldest records, up to a signed checkpoint at or before a time, to a self-contained
 * archive (a journal environment of its own, docs/journal.md "Archives"); `archive-verify` verifies
 * an archive alone and, with --journal, as the predecessor of the live journal. Both open the live
 * journal read-only. An archive is read by journal-list and journal-verify like any
 * journal. */
#include "ctl.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "journal.h"
#include "keys.h"

/* "2026-01-31", "2026-01-31T12:00:00Z" (UTC) or Unix milliseconds. */
static bool
parse_until(const char *s, int64_t *ms)
{
    struct tm tm = {0};
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (end == NULL || *end != '\0') {
        memset(&tm, 0, sizeof tm);
        end = strptime(s, "%Y-%m-%d", &tm);
    }
    if (end != NULL && *end == '\0') {
        *ms = (int64_t)timegm(&tm) * 1000 + (end - s <= 10 ? 86400000 - 1 : 999);
        return true;
    }
    uint64_t v;
    if (!args_u64("--until", s, 0, INT64_MAX, &v))
        return false;
    *ms = (int64_t)v;
    return true;
}

static int
open_ro(const char *dir, journal_t **j)
{
    journal_options_t o = {.dir = dir, .read_only = true};
    pt_error_t err;
    return journal_open(&o, j, &err) == 0 ? 0 : fail(&err);
}

/* archive --journal DIR --until T --to DIR */
int
cmd_archive(int argc, char **argv)
{
    static const struct option opts[] = {{"journal", required_argument, NULL, 'j'},
                                         {"until", required_argument, NULL, 'u'},
                                         {"to", required_argument, NULL, 't'},
                                         {NULL, 0, NULL, 0}};
    const char *dir = NULL, *until = NULL, *to = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'j')
            dir = optarg;
        else if (c == 'u')
            until = optarg;
        else if (c == 't')
            to = optarg;
        else
            return CTL_USAGE;
    }
    int64_t ms;
    if (dir == NULL || until == NULL || to == NULL || optind != argc || !parse_until(until, &ms))
        return CTL_USAGE;
    journal_t *j;
    if (open_ro(dir, &j) != 0)
        return CTL_FAILED;
    journal_archive_report_t rep;
    pt_error_t err;
    int rc = journal_archive(j, ms, to, &rep, &err);
    journal_close(&j);
    if (rc != 0)
        return fail(&err);
    printf("archived records %" PRIu64 "..%" PRIu64
           " to %s (up to the signed checkpoint at %" PRIu64 ")\n",
           rep.first, rep.last, to, rep.last);
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
        return CTL_FAILED;
    }
    printf("%s: records %" PRIu64 "..%" PRIu64 " intact, %" PRIu64
           " checkpoints signed and linked%s\n",
           what, rep.first, rep.last, rep.checkpoints,
           rep.anchor_seq ? ", from the signed anchor" : "");
    return CTL_OK;
}

/* archive-verify --archive DIR --pubkey SIGN.pub [--journal LIVE] */
int
cmd_archive_verify(int argc, char **argv)
{
    static const struct option opts[] = {{"archive", required_argument, NULL, 'a'},
                                         {"pubkey", required_argument, NULL, 'p'},
                                         {"journal", required_argument, NULL, 'j'},
                                         {NULL, 0, NULL, 0}};
    const char *adir = NULL, *pub = NULL, *live = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'a')
            adir = optarg;
        else if (c == 'p')
            pub = optarg;
        else if (c == 'j')
            live = optarg;
        else
            return CTL_USAGE;
    }
    if (adir == NULL || pub == NULL || optind != argc)
        return CTL_USAGE;
    uint8_t pk[32];
    pt_error_t err;
    journal_t *a = NULL, *l = NULL;
    if (keys_read(pub, pk, PT_KEY_LEN, false, &err) != 0)
        return fail(&err);
    if (open_ro(adir, &a) != 0)
        return CTL_FAILED;
    int rc = journal_is_archive(a)
                 ? verify_one("archive", a, pk)
                 : (fprintf(stderr, "ptibusctl: %s: not an archive\n", adir), CTL_FAILED);
    if (rc == CTL_OK && live != NULL && (rc = open_ro(live, &l)) == CTL_OK)
        rc = verify_one("live journal", l, pk);
    if (rc == CTL_OK && l != NULL && journal_archive_chains(a, l, &err) != 0)
        rc = fail(&err);
    else if (rc == CTL_OK && l != NULL)
        printf("chained: the archive is the predecessor of the live journal (first live record "
               "%" PRIu64 ")\n",
               journal_first_seq(l));
    journal_close(&a);
    journal_close(&l);
    return rc;
}

/* compact --journal DIR --to DIR */
int
cmd_compact(int argc, char **argv)
{
    static const struct option opts[] = {{"journal", required_argument, NULL, 'j'},
                                         {"to", required_argument, NULL, 't'},
                                         {NULL, 0, NULL, 0}};
    const char *dir = NULL, *to = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'j')
            dir = optarg;
        else if (c == 't')
            to = optarg;
        else
            return CTL_USAGE;
    }
    if (dir == NULL || to == NULL || optind != argc)
        return CTL_USAGE;
    journal_t *j;
    journal_space_t before;
    pt_error_t err;
    if (open_ro(dir, &j) != 0)
        return CTL_FAILED;
    int rc = journal_space(j, &before, &err);
    if (rc == 0)
        rc = journal_compact(j, to, &err);
    journal_close(&j);
    if (rc != 0)
        return fail(&err);
    printf("compacted copy of %s in %s: the file had %zu bytes, %zu reclaimable\n", dir, to,
           before.file_bytes, before.reclaimable_bytes);
    return CTL_OK;
}
