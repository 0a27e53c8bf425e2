/* erase_cmd: `erase` asks a running broker (its admin socket, an administrator's key)
 * to erase the payloads of every journaled message about one person (docs/journal.md,
 * "Erasure"). The NIR is sent to the broker only, never printed; `--nir -` reads it
 * from standard input, so that it is in neither the process list nor a shell history. */
#include "ctl.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "admin_client.h"
#include "codec.h"
#include "ptibus/v1/admin.pb-c.h"

typedef struct erase_args {
    publish_opts_t conn;
    const char *nir;
    const char *reason;
    bool force;
} erase_args_t;

static int
erase_parse(int argc, char **argv, erase_args_t *a)
{
    static const struct option opts[] = {
        {"endpoint", required_argument, NULL, 'e'}, {"server-key", required_argument, NULL, 's'},
        {"key", required_argument, NULL, 'k'},      {"pub", required_argument, NULL, 'p'},
        {"nir", required_argument, NULL, 'n'},      {"reason", required_argument, NULL, 'R'},
        {"force", no_argument, NULL, 'f'},          {NULL, 0, NULL, 0}};
    const char **dest[] = {['e'] = &a->conn.endpoint, ['s'] = &a->conn.server_pub,
                           ['k'] = &a->conn.key,      ['p'] = &a->conn.pub,
                           ['n'] = &a->nir,           ['R'] = &a->reason};
    int c;
    a->conn.timeout_ms = 30000;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'f')
            a->force = true;
        else if (c > 0 && (size_t)c < sizeof dest / sizeof *dest && dest[c] != NULL)
            *dest[c] = optarg;
        else
            return CTL_USAGE;
    }
    if (optind != argc || !a->conn.endpoint || !a->conn.server_pub || !a->conn.key ||
        !a->conn.pub || !a->nir || !a->reason)
        return CTL_USAGE;
    return CTL_OK;
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

/* erase ADMIN_CONN --nir NIR|- --reason TEXT [--force] */
int
cmd_erase(int argc, char **argv)
{
    erase_args_t a = {0};
    char nir[64];
    if (erase_parse(argc, argv, &a) != CTL_OK)
        return CTL_USAGE;
    if (!read_nir(a.nir, nir, sizeof nir)) {
        fprintf(stderr, "ptibusctl: --nir -: nothing on standard input\n");
        return CTL_USAGE;
    }
    Ptibus__V1__AdminRequest q = PTIBUS__V1__ADMIN_REQUEST__INIT;
    Ptibus__V1__EraseRequest er = PTIBUS__V1__ERASE_REQUEST__INIT;
    er.nir = nir;
    er.reason = (char *)a.reason;
    er.force = a.force;
    q.request_id = "erase";
    q.kind_case = PTIBUS__V1__ADMIN_REQUEST__KIND_ERASE;
    q.erase = &er;
    uint8_t spk[PT_KEY_LEN], sk[PT_KEY_LEN], pk[PT_KEY_LEN];
    pt_error_t err;
    Ptibus__V1__AdminResponse *r = NULL;
    int rc = conn_read_keys(&a.conn, spk, sk, pk, &err);
    admin_client_options_t o = {.endpoint = a.conn.endpoint,
                                .server_pk = spk,
                                .client_sk = sk,
                                .client_pk = pk,
                                .timeout_ms = a.conn.timeout_ms};
    if (rc == 0)
        rc = admin_client_call(&o, &q, &r, &err);
    sodium_memzero(sk, sizeof sk);
    sodium_memzero(nir, sizeof nir);
    if (rc != 0)
        return fail(&err);
    rc = r->ok ? CTL_OK : CTL_FAILED;
    if (r->ok)
        printf("erased %u payloads (the broker journaled the erasure)\n", r->erased);
    else
        fprintf(stderr, "ptibusctl: refused: %s\n", esc(r->error));
    codec_free((ProtobufCMessage **)&r);
    return rc;
}
