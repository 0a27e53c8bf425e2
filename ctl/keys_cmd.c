/* keys_cmd: key files: keygen (CURVE pairs, the journal's signing key, the person-index
 * HMAC key), saying what it wrote, and fingerprint (a public key's name as the broker
 * logs it, so both sides can compare). */
#include "ctl.h"

#include <getopt.h>
#include <string.h>

#include "keys.h"
#include "validate.h"

typedef struct keygen_args {
    const char *dir, *kind;
} keygen_args_t;

static int
keygen_opt(ctl_t *c, int code, const char *v, void *arg)
{
    (void)c;
    keygen_args_t *a = arg;
    if (code == 'd')
        a->dir = v;
    else if (code == 'k')
        a->kind = v;
    else
        return CTL_USAGE;
    return 0;
}

/* What keygen wrote: the files, and a public key's fingerprint. */
static int
keygen_report(const char *dir, const char *name, const char *kind)
{
    char pub[4200];
    if (strcmp(kind, "hmac") == 0) {
        printf("wrote %s/%s.hmac (secret, 0600)\n", dir, name);
        return CTL_OK;
    }
    bool curve = strcmp(kind, "curve") == 0;
    snprintf(pub, sizeof pub, "%s/%s%s", dir, name, curve ? ".pub" : ".sign.pub");
    printf("wrote %s/%s%s (secret, 0600) and %s (public)\n", dir, name, curve ? ".key" : ".sign",
           pub);
    if (!curve)
        return CTL_OK;
    uint8_t pk[PT_KEY_LEN];
    char fp[PT_FINGERPRINT_LEN + 1];
    pt_error_t err;
    if (keys_read(pub, pk, PT_KEY_LEN, false, &err) != 0)
        return fail(&err);
    keys_fingerprint(pk, fp);
    printf("fingerprint %s\n", fp);
    return CTL_OK;
}

/* keygen [--dir DIR] [--kind curve|sign|hmac] NAME */
int
cmd_keygen(ctl_t *c, int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                         {"kind", required_argument, NULL, 'k'},
                                         CTL_COMMON_OPTS,
                                         {NULL, 0, NULL, 0}};
    keygen_args_t a = {.dir = ".", .kind = "curve"};
    int rc = ctl_parse(c, argc, argv, opts, keygen_opt, &a);
    if (rc != 0)
        return rc;
    if (optind + 1 != argc)
        return CTL_USAGE;
    const char *name = argv[optind];
    if (!validate_is_partner_id(name))
        return ctl_error(c, CTL_USAGE,
                         "\"%.40s\" is not a valid name: 1 to 32 of a-z, 0-9 and _ (a partner "
                         "id, as in broker.yaml)",
                         name);
    pt_error_t err;
    if (strcmp(a.kind, "curve") == 0)
        rc = keys_curve_generate(a.dir, name, &err);
    else if (strcmp(a.kind, "sign") == 0)
        rc = keys_sign_generate(a.dir, name, &err);
    else if (strcmp(a.kind, "hmac") == 0)
        rc = keys_hmac_generate(a.dir, name, &err);
    else
        return ctl_error(c, CTL_USAGE, "--kind %.20s is not curve, sign or hmac", a.kind);
    return rc == 0 ? keygen_report(a.dir, name, a.kind) : fail(&err);
}

/* fingerprint FILE.pub: the name the broker's log gives a public key ("key ..."). */
int
cmd_fingerprint(ctl_t *c, int argc, char **argv)
{
    static const struct option opts[] = {CTL_COMMON_OPTS, {NULL, 0, NULL, 0}};
    int rc = ctl_parse(c, argc, argv, opts, NULL, NULL);
    if (rc != 0)
        return rc;
    if (optind + 1 != argc)
        return CTL_USAGE;
    uint8_t pk[PT_KEY_LEN];
    char fp[PT_FINGERPRINT_LEN + 1];
    pt_error_t err;
    if (keys_read(argv[optind], pk, PT_KEY_LEN, false, &err) != 0)
        return fail(&err);
    keys_fingerprint(pk, fp);
    printf("%s\n", fp);
    return CTL_OK;
}
