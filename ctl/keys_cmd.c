/* keys_cmd: key files: keygen (CURVE pairs, the journal's signing key, the person-index
 * HMAC key) and fingerprint (a public key's name as the broker logs it). */
#include "ctl.h"

#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "keys.h"

/* keygen --dir DIR --kind curve|sign|hmac NAME */
int
cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                         {"kind", required_argument, NULL, 'k'},
                                         {NULL, 0, NULL, 0}};
    const char *dir = ".", *kind = "curve";
    int c;
    while ((c = getopt_long(argc, argv, "d:k:", opts, NULL)) != -1) {
        if (c == 'd')
            dir = optarg;
        else if (c == 'k')
            kind = optarg;
        else
            return 2;
    }
    if (optind + 1 != argc)
        return 2;
    const char *name = argv[optind];
    pt_error_t err;
    int rc;
    if (strcmp(kind, "curve") == 0)
        rc = keys_curve_generate(dir, name, &err);
    else if (strcmp(kind, "sign") == 0)
        rc = keys_sign_generate(dir, name, &err);
    else if (strcmp(kind, "hmac") == 0)
        rc = keys_hmac_generate(dir, name, &err);
    else {
        fprintf(stderr, "ptibusctl: keygen: --kind %s is not curve, sign or hmac\n", kind);
        return 2;
    }
    return rc == 0 ? 0 : fail(&err);
}

/* fingerprint FILE.pub: the name the broker's log gives a public key ("key ..."). */
int
cmd_fingerprint(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-')
        return 2;
    uint8_t pk[PT_KEY_LEN];
    char fp[PT_FINGERPRINT_LEN + 1];
    pt_error_t err;
    if (keys_read(argv[1], pk, PT_KEY_LEN, false, &err) != 0)
        return fail(&err);
    keys_fingerprint(pk, fp);
    printf("%s\n", fp);
    return 0;
}
