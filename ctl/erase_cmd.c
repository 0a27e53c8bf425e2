/* erase_cmd: `erase` asks a running broker (its admin socket, the operator's key) to
 * erase the payloads of every journaled message about one person (docs/journal.md,
 * "Erasure"). The NIR is sent to the broker only, never printed; `--nir -` reads it
 * from standard input, so that it is in neither the process list nor a shell history. */
#include "ctl.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "codec.h"
#include "ptibus/v1/admin.pb-c.h"

enum { OPT_NIR = 1, OPT_REASON, OPT_FORCE };

typedef struct erase_args {
    const char *nir;
    const char *reason;
    bool force;
} erase_args_t;

static int
erase_opt(ctl_t *c, int code, const char *v, void *arg)
{
    erase_args_t *a = arg;
    (void)c;
    if (code == OPT_NIR)
        a->nir = v;
    else if (code == OPT_REASON)
        a->reason = v;
    else if (code == OPT_FORCE)
        a->force = true;
    else
        return CTL_USAGE;
    return 0;
}

/* The NIR from the argument, or one line of standard input for "-". */
static bool
read_nir(const char *arg, char *out, size_t cap)
{
    if (strcmp(arg, "-") != 0) {
        snprintf(out, cap, "%s", arg);
        return true;
    }
    if (fgets(out, (int)cap, stdin) == NULL)
        return false;
    out[strcspn(out, "\r\n")] = '\0';
    return true;
}

static int
erase_parse(ctl_t *c, int argc, char **argv, erase_args_t *a)
{
    static const struct option opts[] = {{"nir", required_argument, NULL, OPT_NIR},
                                         {"reason", required_argument, NULL, OPT_REASON},
                                         {"force", no_argument, NULL, OPT_FORCE},
                                         CTL_COMMON_OPTS,
                                         CTL_CONN_OPTS,
                                         {NULL, 0, NULL, 0}};
    int rc = ctl_parse(c, argc, argv, opts, erase_opt, a);
    if (rc == 0 && optind != argc)
        rc = ctl_error(c, CTL_USAGE, "unexpected argument \"%.40s\"", argv[optind]);
    if (rc == 0 && (a->nir == NULL || a->reason == NULL))
        rc = ctl_error(c, CTL_USAGE, "give --nir NIR|- and --reason TEXT");
    return rc;
}

/* erase --nir NIR|- --reason TEXT [--force] */
int
cmd_erase(ctl_t *c, int argc, char **argv)
{
    erase_args_t a = {0};
    char nir[64];
    int rc = erase_parse(c, argc, argv, &a);
    if (rc == 0)
        rc = admin_settings(c);
    if (rc != 0)
        return rc < 0 ? CTL_OK : rc;
    if (!read_nir(a.nir, nir, sizeof nir))
        return ctl_error(c, CTL_USAGE, "--nir -: nothing on standard input");
    Ptibus__V1__AdminRequest q = PTIBUS__V1__ADMIN_REQUEST__INIT;
    Ptibus__V1__EraseRequest er = PTIBUS__V1__ERASE_REQUEST__INIT;
    er.nir = nir;
    er.reason = (char *)a.reason;
    er.force = a.force;
    q.request_id = "ptibusctl";
    q.kind_case = PTIBUS__V1__ADMIN_REQUEST__KIND_ERASE;
    q.erase = &er;
    Ptibus__V1__AdminResponse *r = NULL;
    rc = admin_call(c, &q, &r);
    sodium_memzero(nir, sizeof nir);
    if (rc != 0)
        return rc;
    uint32_t n = r->erased;
    codec_free((ProtobufCMessage **)&r);
    if (n == 0)
        return ctl_error(c, CTL_NOMATCH,
                         "nothing erased: no stored payload about this person (none in the "
                         "journal, or already erased)");
    printf("erased %u payloads (the broker journaled the erasure)\n", n);
    return CTL_OK;
}
