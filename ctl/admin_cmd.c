/* admin_cmd: a running broker's admin socket: stats, dead letters, requeue, replay (an
 * administrator's key; actions need a reason and are journaled by the broker). */
#include "ctl.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "admin_client.h"
#include "codec.h"
#include "keys.h"
#include "ptibus/v1/admin.pb-c.h"

#define ADMIN_SEQS_MAX 64 /* --seq values in one requeue request */

/* ---- admin socket commands ---- */

typedef struct admin_args {
    publish_opts_t conn;
    const char *recipient;
    uint64_t from, to;
    const char *message_id;
    const char *reason;
    bool all;
    uint64_t seqs[ADMIN_SEQS_MAX];
    size_t n_seqs;
} admin_args_t;

static int
admin_parse(int argc, char **argv, admin_args_t *a)
{
    static const struct option opts[] = {
        {"endpoint", required_argument, NULL, 'e'},  {"server-key", required_argument, NULL, 's'},
        {"key", required_argument, NULL, 'k'},       {"pub", required_argument, NULL, 'p'},
        {"recipient", required_argument, NULL, 'r'}, {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},        {"message-id", required_argument, NULL, 'm'},
        {"reason", required_argument, NULL, 'R'},    {"all", no_argument, NULL, 'a'},
        {"seq", required_argument, NULL, 'S'},       {NULL, 0, NULL, 0}};
    int c;
    a->conn.timeout_ms = 10000;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            a->conn.endpoint = optarg;
            break;
        case 's':
            a->conn.server_pub = optarg;
            break;
        case 'k':
            a->conn.key = optarg;
            break;
        case 'p':
            a->conn.pub = optarg;
            break;
        case 'r':
            a->recipient = optarg;
            break;
        case 'f':
            if (!args_u64("--from", optarg, 1, UINT64_MAX, &a->from))
                return CTL_USAGE;
            break;
        case 't':
            if (!args_u64("--to", optarg, 1, UINT64_MAX, &a->to))
                return CTL_USAGE;
            break;
        case 'm':
            a->message_id = optarg;
            break;
        case 'R':
            a->reason = optarg;
            break;
        case 'a':
            a->all = true;
            break;
        case 'S':
            if (a->n_seqs == ADMIN_SEQS_MAX) {
                fprintf(stderr, "ptibusctl: --seq: at most %d seqs in one request (use --all)\n",
                        ADMIN_SEQS_MAX);
                return CTL_USAGE;
            }
            if (!args_u64("--seq", optarg, 1, UINT64_MAX, &a->seqs[a->n_seqs++]))
                return CTL_USAGE;
            break;
        default:
            return 2;
        }
    }
    return a->conn.endpoint && a->conn.server_pub && a->conn.key && a->conn.pub && optind == argc
               ? 0
               : 2;
}

/* Sends one request on the admin socket and waits for its response. */
static int
admin_call(const admin_args_t *a, const Ptibus__V1__AdminRequest *q,
           Ptibus__V1__AdminResponse **out)
{
    uint8_t spk[PT_KEY_LEN], sk[PT_KEY_LEN], pk[PT_KEY_LEN];
    pt_error_t err;
    int rc = conn_read_keys(&a->conn, spk, sk, pk, &err);
    admin_client_options_t o = {.endpoint = a->conn.endpoint,
                                .server_pk = spk,
                                .client_sk = sk,
                                .client_pk = pk,
                                .timeout_ms = a->conn.timeout_ms};
    if (rc == 0)
        rc = admin_client_call(&o, q, out, &err);
    sodium_memzero(sk, sizeof sk);
    if (rc != 0)
        return fail(&err);
    if (!(*out)->ok) {
        fprintf(stderr, "ptibusctl: refused: %s\n", esc((*out)->error));
        codec_free((ProtobufCMessage **)out);
        return 1;
    }
    return 0;
}

static void
print_stats(const Ptibus__V1__BrokerStats *st)
{
    printf("last_seq %" PRIu64 "  accepted %" PRIu64 "  rejected %" PRIu64 "  duplicates %" PRIu64
           "  batches %" PRIu64 "\njournal %" PRIu64 " bytes used of %" PRIu64
           " mapped (max %" PRIu64 ")\n",
           st->last_seq, st->accepted, st->rejected, st->duplicates, st->batches,
           st->journal_bytes_used, st->journal_map_bytes, st->journal_max_bytes);
    printf("%-14s %-7s %7s %9s %8s %11s %10s %9s %5s\n", "partner", "online", "credit", "in_flight",
           "retrying", "queue_depth", "delivered", "acked", "dead");
    for (size_t i = 0; i < st->n_partners; i++) {
        const Ptibus__V1__PartnerStats *p = st->partners[i];
        printf("%-14s %-7s %7u %9u %8u %11" PRIu64 " %10" PRIu64 " %9" PRIu64 " %5" PRIu64 "\n",
               p->partner, p->online ? "yes" : "no", p->window, p->in_flight, p->retrying,
               p->queue_depth, p->delivered, p->acknowledged, p->dead_lettered);
    }
}

static int
cmd_admin(int argc, char **argv, Ptibus__V1__AdminRequest__KindCase kind)
{
    admin_args_t a = {0};
    if (admin_parse(argc, argv, &a) != 0)
        return 2;
    bool changes = kind == PTIBUS__V1__ADMIN_REQUEST__KIND_DEAD_LETTER_REQUEUE ||
                   kind == PTIBUS__V1__ADMIN_REQUEST__KIND_REPLAY;
    if (changes && (a.reason == NULL || a.reason[0] == '\0')) {
        fprintf(stderr, "ptibusctl: --reason TEXT is required (why: an incident or ticket "
                        "number; it is journaled)\n");
        return 2;
    }
    Ptibus__V1__AdminRequest q = PTIBUS__V1__ADMIN_REQUEST__INIT;
    Ptibus__V1__StatsRequest st = PTIBUS__V1__STATS_REQUEST__INIT;
    Ptibus__V1__DeadLetterListRequest dl = PTIBUS__V1__DEAD_LETTER_LIST_REQUEST__INIT;
    Ptibus__V1__DeadLetterRequeueRequest rq = PTIBUS__V1__DEAD_LETTER_REQUEUE_REQUEST__INIT;
    Ptibus__V1__ReplayRequest rp = PTIBUS__V1__REPLAY_REQUEST__INIT;
    q.request_id = "ptibusctl";
    q.kind_case = kind;
    q.stats = &st; /* the oneof shares storage: set the member of `kind` below */
    if (kind == PTIBUS__V1__ADMIN_REQUEST__KIND_DEAD_LETTER_LIST) {
        dl.recipient = (char *)(a.recipient ? a.recipient : "");
        q.dead_letter_list = &dl;
    } else if (kind == PTIBUS__V1__ADMIN_REQUEST__KIND_DEAD_LETTER_REQUEUE) {
        rq.recipient = (char *)(a.recipient ? a.recipient : "");
        rq.all = a.all;
        rq.n_seqs = a.n_seqs;
        rq.seqs = a.seqs;
        rq.reason = (char *)a.reason;
        q.dead_letter_requeue = &rq;
    } else if (kind == PTIBUS__V1__ADMIN_REQUEST__KIND_REPLAY) {
        rp.recipient = (char *)(a.recipient ? a.recipient : "");
        rp.from_seq = a.from;
        rp.to_seq = a.to;
        rp.message_id = (char *)(a.message_id ? a.message_id : "");
        rp.reason = (char *)(a.reason ? a.reason : "");
        q.replay = &rp;
    }
    Ptibus__V1__AdminResponse *r;
    int rc = admin_call(&a, &q, &r);
    if (rc != 0)
        return rc;
    if (r->kind_case == PTIBUS__V1__ADMIN_RESPONSE__KIND_STATS)
        print_stats(r->stats);
    else if (r->kind_case == PTIBUS__V1__ADMIN_RESPONSE__KIND_DEAD_LETTERS)
        for (size_t i = 0; i < r->dead_letters->n_items; i++) {
            const Ptibus__V1__DeadLetter *d = r->dead_letters->items[i];
            printf("%s\t%" PRIu64 "\t%s\t%s\tfrom %s\tattempts %u\n", esc(d->recipient), d->seq,
                   esc(d->message_type), esc(d->message_id), esc(d->sender), d->attempts);
        }
    else if (r->kind_case == PTIBUS__V1__ADMIN_RESPONSE__KIND_REQUEUED)
        printf("requeued %u\n", r->requeued);
    else if (r->kind_case == PTIBUS__V1__ADMIN_RESPONSE__KIND_REPLAYED)
        printf("replayed %u\n", r->replayed);
    codec_free((ProtobufCMessage **)&r);
    return 0;
}

int
cmd_stats(int argc, char **argv)
{
    return cmd_admin(argc, argv, PTIBUS__V1__ADMIN_REQUEST__KIND_STATS);
}

int
cmd_dead_letters(int argc, char **argv)
{
    return cmd_admin(argc, argv, PTIBUS__V1__ADMIN_REQUEST__KIND_DEAD_LETTER_LIST);
}

int
cmd_requeue(int argc, char **argv)
{
    return cmd_admin(argc, argv, PTIBUS__V1__ADMIN_REQUEST__KIND_DEAD_LETTER_REQUEUE);
}

int
cmd_replay(int argc, char **argv)
{
    return cmd_admin(argc, argv, PTIBUS__V1__ADMIN_REQUEST__KIND_REPLAY);
}
