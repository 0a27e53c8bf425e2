/* ptibusd: the ptibus broker daemon. Runs in the foreground (systemd Type=notify). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "bconfig.h"
#include "broker.h"
#include "journal.h"
#include "keys.h"
#include "log.h"

static void
usage(FILE *out)
{
    fprintf(out, "usage: ptibusd --config FILE [--check-config] [--standby] [--log-level LEVEL]\n"
                 "       ptibusd --version\n"
                 "Runs the ptibus broker in the foreground. --check-config loads and checks\n"
                 "the configuration and the key files it names, then exits. --standby (or\n"
                 "journal.wait_for_lock: true) waits for the journal's lock while another\n"
                 "broker holds it, and takes over when that one stops.\n");
}

/* Loads each secret key into guarded memory and frees it (zeroed) at once: nothing of
 * a key stays on the stack or in the heap after the check. */
static int
check_keys(const bconfig_t *cfg, pt_error_t *err)
{
    const struct {
        const char *path;
        size_t len;
    } secrets[] = {{cfg->server_secret_key_file, PT_KEY_LEN},
                   {cfg->signing_key_file, PT_SIGN_SK_LEN},
                   {cfg->hmac_key_file, PT_KEY_LEN}};
    for (size_t i = 0; i < sizeof secrets / sizeof *secrets; i++) {
        uint8_t *k;
        int rc = keys_secret_load(secrets[i].path, secrets[i].len, &k, err);
        keys_secret_free(&k);
        if (rc != 0)
            return rc;
    }
    uint8_t pk[PT_KEY_LEN];
    for (size_t i = 0; i < cfg->n_prev_sign_pub; i++) {
        int rc = keys_read(cfg->prev_sign_pub_files[i], pk, PT_KEY_LEN, false, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* The journal folder a broker would open: see journal_check_dir. */
static int
check_journal(const bconfig_t *cfg, pt_error_t *err)
{
    long holder = 0;
    int rc = journal_check_dir(cfg->journal_dir, cfg->journal_wait_for_lock, &holder, err);
    if (rc == 0 && holder != 0)
        printf("%s: in use by pid %ld: this broker is a standby and will wait for it\n",
               cfg->journal_dir, holder);
    return rc;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check-config", no_argument, NULL, 'k'},
                                         {"standby", no_argument, NULL, 's'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL;
    int check = 0, standby = 0, level = -1, c;
    while ((c = getopt_long(argc, argv, "c:l:Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 's':
            standby = 1;
            break;
        case 'l':
            level = pt_log_level_parse(optarg);
            if (level < 0) {
                fprintf(stderr, "ptibusd: --log-level: %s is not error|warn|info|debug\n", optarg);
                return 2;
            }
            break;
        case 'V':
            printf("ptibusd %s\n", PTIBUS_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (config == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    pt_log_init("ptibusd", level);
    bconfig_t *cfg;
    pt_error_t err;
    if (keys_protect_process(&err) != 0) {
        fprintf(stderr, "ptibusd: %s\n", err.msg);
        return 1;
    }
    if (bconfig_load(config, &cfg, &err) != 0) {
        fprintf(stderr, "ptibusd: %s\n", err.msg);
        return 1;
    }
    if (standby)
        cfg->journal_wait_for_lock = true;
    if (check && (check_keys(cfg, &err) != 0 || check_journal(cfg, &err) != 0)) {
        fprintf(stderr, "ptibusd: %s\n", err.msg);
        bconfig_destroy(&cfg);
        return 1;
    }
    if (check) {
        printf("%s: configuration OK (%zu partners)\n", config, cfg->n_partners);
        bconfig_destroy(&cfg);
        return 0;
    }
    broker_t *b;
    if (broker_new(cfg, &b, &err) != 0) {
        pt_log_error("broker.start", "%s", err.msg);
        bconfig_destroy(&cfg);
        return 1;
    }
    int rc = broker_run(b);
    broker_destroy(&b);
    pt_log_info("broker.stopped", "stopped");
    return rc == 0 ? 0 : 1;
}
