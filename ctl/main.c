/* ptibusctl: the ptibus administration command. It generates key files, publishes JSON
 * envelopes and receives deliveries as a partner (for the demo and for partner
 * integration checks), prints a public key's fingerprint as the broker logs it, lists
 * and verifies a journal's files, and talks to a running broker's admin socket (stats,
 * dead letters, requeue, replay). */
#include "ctl.h"

#include <string.h>

#include <sodium.h>

#include "log.h"

#define ADMIN_CONN "--endpoint E --server-key BROKER.pub --key ADMIN.key --pub ADMIN.pub"

static const command_t commands[] = {
    {"stats", cmd_stats, "stats " ADMIN_CONN},
    {"dead-letters", cmd_dead_letters, "dead-letters " ADMIN_CONN " [--recipient R]"},
    {"requeue", cmd_requeue,
     "requeue " ADMIN_CONN " --recipient R (--all | --seq N...) --reason TEXT"},
    {"replay", cmd_replay,
     "replay " ADMIN_CONN " --recipient R (--from N [--to M] | --message-id ID) --reason TEXT"},
    {"keygen", cmd_keygen, "keygen [--dir DIR] [--kind curve|sign|hmac] NAME"},
    {"fingerprint", cmd_fingerprint, "fingerprint FILE.pub"},
    {"publish", cmd_publish,
     "publish --endpoint E --server-key BROKER.pub --key ME.key --pub ME.pub FILE.json..."},
    {"receive", cmd_receive,
     "receive --endpoint E --server-key BROKER.pub --key ME.key --pub ME.pub [--count N] "
     "[--wait SECONDS]"},
    {"journal-list", cmd_journal_list, "journal-list --journal DIR [--from N] [--to M]"},
    {"journal-verify", cmd_journal_verify,
     "journal-verify --journal DIR [--pubkey SIGN.pub] [--from N] [--to M] "
     "[--max-unsigned-tail N]"},
    {"archive", cmd_archive, "archive --journal DIR --until TIME --to DIR"},
    {"compact", cmd_compact, "compact --journal DIR --to DIR"},
    {"erase", cmd_erase, "erase " ADMIN_CONN " --nir NIR|- --reason TEXT [--force]"},
    {"archive-verify", cmd_archive_verify,
     "archive-verify --archive DIR --pubkey SIGN.pub [--journal LIVE]"},
};

static void
usage(FILE *out)
{
    fprintf(out, "usage: ptibusctl COMMAND [options]\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  ptibusctl %s\n", commands[i].usage);
}

int
main(int argc, char **argv)
{
    pt_log_init("ptibusctl", PT_LOG_WARN);
    if (sodium_init() < 0)
        return 1;
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        int rc = commands[i].run(argc - 1, argv + 1);
        if (rc == 2)
            fprintf(stderr, "usage: ptibusctl %s\n", commands[i].usage);
        return rc;
    }
    fprintf(stderr, "ptibusctl: unknown command %s\n", argv[1]);
    usage(stderr);
    return 2;
}
