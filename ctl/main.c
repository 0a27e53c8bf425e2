/* ptibusctl: the ptibus command for administrators and auditors: `noun verb` commands
 * that query the journal (read-only, safe while the broker runs), act through the
 * broker's admin socket, and act as a partner for the demo and integration checks.
 * Settings come from the config file (settings.c); every command has --help; the
 * former one-word spellings are kept as aliases (docs/ptibusctl.md). */
#include "ctl.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "log.h"

static const command_t commands[] = {
    {"journal", "list", cmd_journal_list,
     "[--since T] [--until T] [--from PARTNER] [--to PARTNER] [--type TYPE] [--kind KIND] "
     "[--message-id ID] [--correlation-id ID] [--territory X] [--seq-from N] [--seq-to M] [--limit "
     "N] "
     "[--scan] "
     "[--journal DIR]",
     "Lists journal records (audit fields, never a payload), oldest first, streaming.\n"
     "T is RFC 3339 (2026-12-01T10:00:00Z) or a date (2026-12-01: --until includes it).\n"
     "--message-id, --from with --kind RECEIVED|REJECTED and --to with a delivery kind use\n"
     "the indexes; --scan forces a scan."},
    {"journal", "show", cmd_journal_show,
     "SEQ|MESSAGE_ID --reason TEXT [--sender P] [--journal DIR]",
     "Shows the record(s) and the message decoded to proto3 JSON: personal data, so the read\n"
     "is first recorded by the broker (operator, command, reason), or nothing is shown."},
    {"journal", "verify", cmd_journal_verify,
     "[--pubkey SIGN.pub]... [--from SEQ] [--to SEQ] [--max-unsigned-tail N] [--progress] "
     "[--journal DIR]",
     "Verifies the hash chain, the signed linked checkpoints and the state databases.\n"
     "After a rotation of the signing key give --pubkey once per key: each checkpoint\n"
     "verifies with any one of them, and the output says which key signed which range."},
    {"trace", NULL, cmd_trace, "MESSAGE_ID [--sender P] [--journal DIR]",
     "The life of a message in time order: received or refused, routed, each delivery\n"
     "attempt, acknowledgements with their delay, dead letters, replays, status replies;\n"
     "and what is still pending."},
    {"person", NULL, cmd_person,
     "--nir NIR|- --reason TEXT [--person-key FILE] [--format table|csv|json|html]",
     "The data-subject access report (GDPR art. 15): every flow about this person, from\n"
     "the person index; recorded by the broker first. --nir - reads the NIR from stdin\n"
     "(so that it is not in the process list); --format html writes a self-contained page."},
    {"report", NULL, cmd_report,
     "[--since T] [--until T] [--territory X] [--format table|tsv|csv|json|html]",
     "The partnership evaluation of the messages received in the period: flows per month,\n"
     "territory, sender, recipient and type, acknowledgement rate, delivery delay p50/p95/max,\n"
     "refusals by reason, dead letters, backlog now; html: one self-contained page."},
    {"export", NULL, cmd_export,
     "[journal list filters] [--format json|jsonl|csv|tsv] [--with-payloads --reason TEXT]",
     "Streams the audit fields of the matching records for analysis elsewhere (JSON Lines by\n"
     "default); --with-payloads adds each message as proto3 JSON, recorded by the broker\n"
     "first (personal data)."},
    {"backup", NULL, cmd_backup, "--to DIR [--pubkey SIGN.pub] [--journal DIR]",
     "A consistent copy of the journal while the broker runs, into a new folder (0700, the\n"
     "file 0600), verified after the copy."},
    {"stats", NULL, cmd_stats, "[--admin E] [--server-key B.pub] [--key A.key --pub A.pub]",
     "Live state of the running broker: partners, queues, journal use."},
    {"deadletters", "list", cmd_deadletters_list, "[--to PARTNER] [--admin E ...]",
     "Lists dead letters: recipient, seq, message, sender, attempts, when."},
    {"deadletters", "requeue", cmd_deadletters_requeue,
     "--to PARTNER (--all | --seq N...) --reason TEXT [--admin E ...]",
     "Puts dead letters back in their recipient's queue (journaled with the reason)."},
    {"deadletters", "drop", cmd_deadletters_drop,
     "[--to PARTNER] (--all | --seq N...) --reason TEXT [--admin E ...]",
     "Removes dead letters for good (no requeue finds them again); each is journaled as a\n"
     "DROPPED record (trace shows it), the action as ADMIN records naming the seqs."},
    {"replay", NULL, cmd_replay,
     "--to PARTNER [--since T] [--until T] [--from P] [--type TYPE] [--message-id ID] "
     "[--correlation-id ID] [--seq-from N] [--seq-to M] --reason TEXT [--force] [--dry-run]",
     "Delivers the matching journaled messages again to PARTNER, only those the routes gave\n"
     "it (--force: also the others, journaled as forced), flagged as replays, in slices of\n"
     "1000 (each journaled with the reason and the filter); --dry-run lists them and sends\n"
     "nothing."},
    {"keygen", NULL, cmd_keygen, "[--dir DIR] [--kind curve|sign|hmac] NAME",
     "Generates a key pair (curve, sign) or a secret (hmac) and says what it wrote."},
    {"fingerprint", NULL, cmd_fingerprint, "FILE.pub",
     "Prints the fingerprint of a public key, as the broker logs it."},
    {"partner", "add", cmd_partner_add,
     "ID --public-key FILE.pub [--may-send TYPE]... [--subscribe TYPE]... [--keys-dir DIR] "
     "[--replace] [--to FILE]",
     "Checks a partner's id and public key (a secret key refused), prints its fingerprint,\n"
     "copies it to DIR/ID.pub (default /etc/ptibus/keys; a different key there only with\n"
     "--replace, the rotation) and writes the broker.yaml fragment to add, check and reload."},
    {"publish", NULL, cmd_publish, "[--as NAME | --key K --pub P] [--endpoint E] FILE.json...",
     "Publishes proto3-JSON envelopes as a partner; exit 4 on a final refusal, 5 on a\n"
     "retryable one."},
    {"receive", NULL, cmd_receive,
     "[--as NAME | --key K --pub P] [--endpoint E] [--count N] [--wait SECONDS] [--to DIR] "
     "[--no-ack | --refuse REASON]",
     "Receives deliveries as a partner and acknowledges them; --to DIR writes each envelope\n"
     "there (SEQ.json, atomically) before acknowledging it; --no-ack and --refuse exercise\n"
     "redelivery and dead letters. Grants only the credit --count asks."},
    {"archive", NULL, cmd_archive, "--until TIME --to DIR [--journal DIR]",
     "Writes the oldest records, up to the last signed checkpoint at or before TIME, to a\n"
     "self-contained archive (a journal of its own, read by journal list/verify --journal)."},
    {"archive-verify", NULL, cmd_archive_verify, "--archive DIR [--pubkey SIGN.pub] [--live DIR]",
     "Verifies an archive alone and, with --live, as the predecessor of the live journal."},
    {"compact", NULL, cmd_compact, "--to DIR [--journal DIR]",
     "Writes a compacted copy of the journal (the space of expired payloads given back)."},
    {"erase", NULL, cmd_erase, "--nir NIR|- --reason TEXT [--force]",
     "Erases the payloads of every message about one person, through the broker (GDPR\n"
     "art. 17): hashes and audit fields stay, the erasure is journaled without the NIR."},
    {"config", "show", cmd_config_show, "",
     "Prints the settings in effect (config file, then options) and where they come from."},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

/* Former spellings, kept working: the command they name, and options renamed. */
typedef struct alias {
    const char *old, *noun, *verb;
    const char *renames[6]; /* pairs: old option, new option */
} alias_t;

static const alias_t aliases[] = {
    {"journal-list", "journal", "list", {"--from", "--seq-from", "--to", "--seq-to"}},
    {"journal-verify", "journal", "verify", {NULL}},
    {"dead-letters", "deadletters", "list", {"--recipient", "--to"}},
    {"requeue", "deadletters", "requeue", {"--recipient", "--to"}},
};

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: ptibusctl [--config FILE] COMMAND [options]   (ptibusctl COMMAND --help)\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  ptibusctl %s%s%s %s\n", commands[i].noun, commands[i].verb ? " " : "",
                commands[i].verb ? commands[i].verb : "", commands[i].usage);
    fprintf(out, "exit codes: 0 done, 1 failed, 2 usage, 3 nothing matched, 4 refused, "
                 "5 retry later, 6 journal does not verify, 7 read not recorded\n");
}

static const command_t *
find(const char *noun, const char *verb, bool *verb_used)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(commands[i].noun, noun) != 0)
            continue;
        *verb_used = commands[i].verb != NULL;
        if (commands[i].verb == NULL || (verb && strcmp(commands[i].verb, verb) == 0))
            return &commands[i];
    }
    return NULL;
}

/* Rewrites an alias's argv in place: argv[0] becomes the verb's slot. */
static const command_t *
unalias(int argc, char **argv)
{
    for (size_t i = 0; i < sizeof aliases / sizeof *aliases; i++) {
        const alias_t *a = &aliases[i];
        if (strcmp(argv[0], a->old) != 0)
            continue;
        for (int k = 1; k < argc; k++)
            for (size_t r = 0; r + 1 < 6 && a->renames[r]; r += 2)
                if (strcmp(argv[k], a->renames[r]) == 0)
                    argv[k] = (char *)a->renames[r + 1];
        bool v;
        return find(a->noun, a->verb, &v);
    }
    return NULL;
}

static int
run(ctl_t *c, const command_t *cmd, int argc, char **argv)
{
    char name[64];
    snprintf(name, sizeof name, "%s%s%s", cmd->noun, cmd->verb ? " " : "",
             cmd->verb ? cmd->verb : "");
    c->name = name;
    c->usage = cmd->usage;
    c->help = cmd->help;
    c->timeout_ms = 10000;
    int rc = cmd->run(c, argc, argv);
    if (rc == CTL_USAGE)
        fprintf(stderr, "usage: ptibusctl %s %s\n", name, cmd->usage);
    return rc < 0 ? CTL_OK : rc;
}

/* Global options before the command: --config FILE, --version, --help. */
static int
dispatch(ctl_t *c, int argc, char **argv)
{
    int i = 1;
    while (i < argc && strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
        c->config_path = argv[i + 1];
        c->config_given = true;
        i += 2;
    }
    if (i >= argc || strcmp(argv[i], "--help") == 0) {
        usage(i >= argc ? stderr : stdout);
        return i >= argc ? CTL_USAGE : CTL_OK;
    }
    if (strcmp(argv[i], "--version") == 0) {
        printf("ptibusctl %s\n", PTIBUS_VERSION);
        return CTL_OK;
    }
    bool verb_used = false;
    const command_t *cmd = unalias(argc - i, argv + i);
    if (cmd == NULL)
        cmd = find(argv[i], i + 1 < argc ? argv[i + 1] : NULL, &verb_used);
    if (cmd == NULL) {
        fprintf(stderr, "ptibusctl: unknown command %s%s%s\n", argv[i],
                verb_used && i + 1 < argc ? " " : "", verb_used && i + 1 < argc ? argv[i + 1] : "");
        usage(stderr);
        return CTL_USAGE;
    }
    int skip = verb_used ? 1 : 0; /* the command's argv[0] is its last word */
    return run(c, cmd, argc - i - skip, argv + i + skip);
}

int
main(int argc, char **argv)
{
    pt_log_init("ptibusctl", PT_LOG_WARN);
    if (sodium_init() < 0)
        return CTL_FAILED;
    ctl_t c = {0};
    int rc = dispatch(&c, argc, argv);
    ctl_fini(&c);
    return rc;
}
