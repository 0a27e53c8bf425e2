/* ptibusctl: the ptibus administration command. It generates key files, publishes JSON
 * envelopes and receives deliveries as a partner (for the demo and for partner
 * integration checks), prints a public key's fingerprint as the broker logs it, lists
 * and verifies a journal's files, and talks to a running broker's admin socket (stats,
 * dead letters, requeue, replay). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "admin_client.h"
#include "client.h"
#include "codec.h"
#include "journal.h"
#include "keys.h"
#include "log.h"
#include "pjson.h"
#include "utf8.h"
#include "ptibus/v1/admin.pb-c.h"

typedef int (*command_fn)(int argc, char **argv);

typedef struct command {
    const char *name;
    command_fn run;
    const char *usage;
} command_t;

static int
fail(const pt_error_t *err)
{
    fprintf(stderr, "ptibusctl: %s\n", err->msg);
    return 1;
}

/* keygen --dir DIR --kind curve|sign|hmac NAME */
static int
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
static int
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

typedef struct publish_opts {
    const char *endpoint;
    const char *server_pub;
    const char *key;
    const char *pub;
    int timeout_ms;
} publish_opts_t;

/* Reads the broker's public key and this side's key pair; sk is wiped by the caller. */
static int
conn_read_keys(const publish_opts_t *o, uint8_t spk[PT_KEY_LEN], uint8_t sk[PT_KEY_LEN],
               uint8_t pk[PT_KEY_LEN], pt_error_t *err)
{
    int rc = keys_read(o->server_pub, spk, PT_KEY_LEN, false, err);
    if (rc == 0)
        rc = keys_read(o->key, sk, PT_KEY_LEN, true, err);
    if (rc == 0)
        rc = keys_read(o->pub, pk, PT_KEY_LEN, false, err);
    return rc;
}

static int
publish_connect(const publish_opts_t *o, client_t **c, pt_error_t *err)
{
    uint8_t spk[PT_KEY_LEN], sk[PT_KEY_LEN], pk[PT_KEY_LEN];
    int rc = conn_read_keys(o, spk, sk, pk, err);
    client_options_t co = {.endpoint = o->endpoint,
                           .server_pk = spk,
                           .client_sk = sk,
                           .client_pk = pk,
                           .client_name = "ptibusctl"};
    if (rc == 0)
        rc = client_open(&co, c, err);
    sodium_memzero(sk, sizeof sk);
    return rc;
}

/* Text that a partner wrote or chose (message ids, reasons, even from an older journal),
 * escaped for the terminal (utf8_escape: no line break, tab or escape sequence can
 * reach it, so a line cannot be forged nor the operator's screen driven). Each call
 * uses the next of a few static buffers, so one printf can take several. */
#define ESC_SLOTS 6
#define ESC_MAX 8192

static const char *
esc(const char *s)
{
    static char bufs[ESC_SLOTS][ESC_MAX];
    static unsigned next;
    char *out = bufs[next++ % ESC_SLOTS];
    s = s ? s : "";
    utf8_escape(out, ESC_MAX, s, strlen(s));
    return out;
}

/* Publishes one JSON envelope file; prints one line with the broker's answer. */
static int
publish_file(client_t *c, const char *path, int timeout_ms)
{
    pt_error_t err;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "ptibusctl: %s: %s\n", path, strerror(errno));
        return 1;
    }
    char *text = malloc(PT_MAX_MESSAGE_SIZE * 4);
    size_t len = text ? fread(text, 1, PT_MAX_MESSAGE_SIZE * 4, f) : 0;
    fclose(f);
    ProtobufCMessage *m = NULL;
    int rc = pjson_parse(&ptibus__v1__envelope__descriptor, text, len, PT_MAX_MESSAGE_SIZE * 4, &m,
                         &err);
    free(text);
    if (rc != 0) {
        fprintf(stderr, "ptibusctl: %s: %s\n", path, err.msg);
        return 1;
    }
    client_result_t res;
    rc = client_publish(c, (Ptibus__V1__Envelope *)m, timeout_ms, &res, &err);
    const char *mid = ((Ptibus__V1__Envelope *)m)->message_id;
    if (rc != 0)
        fprintf(stderr, "ptibusctl: %s: %s: %s\n", path, mid, err.msg);
    else if (res.nack_code == 0)
        printf("%s: %s accepted, seq %" PRIu64 "%s\n", path, mid, res.seq,
               res.duplicate ? " (duplicate)" : "");
    else
        printf(
            "%s: %s refused (%s): %s\n", path, mid,
            protobuf_c_enum_descriptor_get_value(&ptibus__v1__nack_code__descriptor, res.nack_code)
                ->name,
            esc(res.reason));
    codec_free(&m);
    return rc != 0 ? 1 : 0;
}

/* publish --endpoint E --server-key broker.pub --key me.key --pub me.pub FILE.json... */
static int
cmd_publish(int argc, char **argv)
{
    static const struct option opts[] = {{"endpoint", required_argument, NULL, 'e'},
                                         {"server-key", required_argument, NULL, 's'},
                                         {"key", required_argument, NULL, 'k'},
                                         {"pub", required_argument, NULL, 'p'},
                                         {NULL, 0, NULL, 0}};
    publish_opts_t o = {.endpoint = "tcp://127.0.0.1:7400", .timeout_ms = 10000};
    int c;
    while ((c = getopt_long(argc, argv, "e:s:k:p:", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            o.endpoint = optarg;
            break;
        case 's':
            o.server_pub = optarg;
            break;
        case 'k':
            o.key = optarg;
            break;
        case 'p':
            o.pub = optarg;
            break;
        default:
            return 2;
        }
    }
    if (!o.server_pub || !o.key || !o.pub || optind >= argc)
        return 2;
    client_t *cl;
    pt_error_t err;
    if (publish_connect(&o, &cl, &err) != 0)
        return fail(&err);
    int rc = 0;
    for (int i = optind; i < argc; i++)
        rc |= publish_file(cl, argv[i], o.timeout_ms);
    client_close(&cl);
    return rc;
}

static int
open_journal_ro(const char *dir, journal_t **j)
{
    journal_options_t o = {.dir = dir, .read_only = true};
    pt_error_t err;
    if (journal_open(&o, j, &err) != 0)
        return fail(&err);
    return 0;
}

static void
format_time(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03dZ", (int)(ms % 1000));
}

/* One line per record: never the payload (personal data), only the audit fields. */
static int
print_record(const journal_view_t *v, void *arg)
{
    (void)arg;
    char when[40];
    format_time(v->time_ms, when, sizeof when);
    printf("%" PRIu64 "\t%s\t%-12s\t%-12s\t%-20s\t%s", v->seq, when, journal_kind_name(v->kind),
           esc(v->partner), v->msg_type[0] ? esc(v->msg_type) : "-",
           v->message_id[0] ? esc(v->message_id) : "-");
    if (v->ref_seq)
        printf("\tref=%" PRIu64, v->ref_seq);
    if (v->reason && v->reason[0])
        printf("\t%s", esc(v->reason));
    putchar('\n');
    return 0;
}

/* max_unsigned NULL: --max-unsigned-tail is refused (journal-list). */
static int
journal_args(int argc, char **argv, const char **dir, uint64_t *from, uint64_t *to,
             const char **pub, uint64_t *max_unsigned)
{
    static const struct option opts[] = {{"journal", required_argument, NULL, 'j'},
                                         {"from", required_argument, NULL, 'f'},
                                         {"to", required_argument, NULL, 't'},
                                         {"pubkey", required_argument, NULL, 'p'},
                                         {"max-unsigned-tail", required_argument, NULL, 'u'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "j:f:t:p:", opts, NULL)) != -1) {
        switch (c) {
        case 'u':
            if (max_unsigned == NULL)
                return 2;
            *max_unsigned = strtoull(optarg, NULL, 10);
            break;
        case 'j':
            *dir = optarg;
            break;
        case 'f':
            *from = strtoull(optarg, NULL, 10);
            break;
        case 't':
            *to = strtoull(optarg, NULL, 10);
            break;
        case 'p':
            *pub = optarg;
            break;
        default:
            return 2;
        }
    }
    return *dir && optind == argc ? 0 : 2;
}

/* journal-list --journal DIR [--from N] [--to M] */
static int
cmd_journal_list(int argc, char **argv)
{
    const char *dir = NULL, *pub = NULL;
    uint64_t from = 1, to = 0;
    if (journal_args(argc, argv, &dir, &from, &to, &pub, NULL) != 0)
        return 2;
    journal_t *j;
    if (open_journal_ro(dir, &j) != 0)
        return 1;
    pt_error_t err;
    int rc = journal_scan(j, from, to, print_record, NULL, &err);
    journal_close(&j);
    return rc == 0 ? 0 : fail(&err);
}

static void
format_utc(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "%lld ms", (long long)ms);
}

/* What was checked, success or not: an auditor reads the counts, not just "intact". */
static void
print_verify_report(const journal_verify_report_t *r, bool signed_, uint64_t max_unsigned)
{
    char when[40];
    printf("records checked: %" PRIu64 "..%" PRIu64 "\n", r->first, r->last);
    if (r->last_ckpt_seq != 0) {
        format_utc(r->last_ckpt_ms, when, sizeof when);
        printf("checkpoints checked: %" PRIu64 " (%" PRIu64 " old-format, not linked), last at "
               "seq %" PRIu64 " signed %s\n",
               r->checkpoints, r->old_checkpoints, r->last_ckpt_seq, when);
    } else {
        printf("checkpoints checked: 0\n");
    }
    printf("unsigned tail: %" PRIu64 " records after the last checkpoint (allowed %" PRIu64 "%s)\n",
           r->unsigned_tail, max_unsigned, signed_ ? "" : ", not enforced without --pubkey");
    if (!signed_)
        printf("signatures: NOT checked (no --pubkey)\n");
    if (r->state_checked)
        printf("state: queue, dead-letter, dedup, by_msgid and by_partner match the records\n");
}

/* journal-verify --journal DIR [--pubkey broker.sign.pub] [--from N] [--to M]
 *                [--max-unsigned-tail N] */
static int
cmd_journal_verify(int argc, char **argv)
{
    const char *dir = NULL, *pub = NULL;
    uint64_t from = 0, to = 0, bad = 0, max_unsigned = PT_JOURNAL_UNSIGNED_MAX;
    if (journal_args(argc, argv, &dir, &from, &to, &pub, &max_unsigned) != 0)
        return 2;
    uint8_t pk[32];
    pt_error_t err;
    if (pub && keys_read(pub, pk, 32, false, &err) != 0)
        return fail(&err);
    journal_t *j;
    if (open_journal_ro(dir, &j) != 0)
        return 1;
    journal_verify_options_t o = {.first = from,
                                  .last = to,
                                  .pk = pub ? pk : NULL,
                                  .max_unsigned = max_unsigned,
                                  .check_state = true};
    journal_verify_report_t rep;
    int rc = journal_verify_ex(j, &o, &rep, &bad, &err);
    journal_close(&j);
    print_verify_report(&rep, pub != NULL, max_unsigned);
    if (rc != 0) {
        fprintf(stderr, "ptibusctl: journal verify FAILED at record %" PRIu64 ": %s\n", bad,
                err.msg);
        return 1;
    }
    printf("journal %s: records %" PRIu64 "..%" PRIu64 " intact%s\n", dir, rep.first, rep.last,
           pub ? ", checkpoints signed, linked and covering the head" : "");
    return 0;
}

/* Prints one delivery (audit fields only) and acknowledges it. */
static void
receive_deliver(client_t *c, const Ptibus__V1__Deliver *d)
{
    ProtobufCMessage *m = NULL;
    pt_error_t err;
    const char *type = "?";
    if (codec_unpack(&ptibus__v1__envelope__descriptor, d->envelope.data, d->envelope.len,
                     PT_MAX_MESSAGE_SIZE * 4, &m, &err) == 0)
        type = codec_envelope_type((Ptibus__V1__Envelope *)m);
    printf("deliver seq %" PRIu64 " attempt %u%s%s: %s %s from %s\n", d->seq, d->attempt,
           d->redelivery ? " (redelivery)" : "", d->replay ? " (replay)" : "", type ? type : "?",
           esc(d->message_id), esc(d->sender));
    codec_free(&m);
    if (client_deliver_ack(c, d->seq, true, NULL, &err) != 0)
        fprintf(stderr, "ptibusctl: ack %" PRIu64 ": %s\n", d->seq, err.msg);
}

/* receive --endpoint E --server-key B.pub --key ME.key --pub ME.pub [--count N] [--wait S] */
static int
cmd_receive(int argc, char **argv)
{
    static const struct option opts[] = {{"endpoint", required_argument, NULL, 'e'},
                                         {"server-key", required_argument, NULL, 's'},
                                         {"key", required_argument, NULL, 'k'},
                                         {"pub", required_argument, NULL, 'p'},
                                         {"count", required_argument, NULL, 'n'},
                                         {"wait", required_argument, NULL, 'w'},
                                         {NULL, 0, NULL, 0}};
    publish_opts_t o = {.endpoint = "tcp://127.0.0.1:7400"};
    long count = -1, wait_s = 3;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'e')
            o.endpoint = optarg;
        else if (c == 's')
            o.server_pub = optarg;
        else if (c == 'k')
            o.key = optarg;
        else if (c == 'p')
            o.pub = optarg;
        else if (c == 'n')
            count = strtol(optarg, NULL, 10);
        else if (c == 'w')
            wait_s = strtol(optarg, NULL, 10);
        else
            return 2;
    }
    if (!o.server_pub || !o.key || !o.pub || optind != argc)
        return 2;
    client_t *cl;
    pt_error_t err;
    char who[64];
    if (publish_connect(&o, &cl, &err) != 0 || client_hello(cl, 5000, who, sizeof who, &err) != 0 ||
        client_credit(cl, 256, &err) != 0)
        return fail(&err);
    long got = 0;
    Ptibus__V1__Frame *f;
    while ((count < 0 || got < count) && client_recv(cl, (int)wait_s * 1000, &f, &err) == 0) {
        if (f->kind_case == PTIBUS__V1__FRAME__KIND_DELIVER) {
            receive_deliver(cl, f->deliver);
            got++;
        } else if (f->kind_case == PTIBUS__V1__FRAME__KIND_RECEIPT) {
            printf("receipt: %s %s by %s%s%s\n", esc(f->receipt->message_id),
                   f->receipt->kind == PTIBUS__V1__RECEIPT_KIND__RECEIPT_KIND_ACKNOWLEDGED
                       ? "acknowledged"
                       : "dead-lettered",
                   esc(f->receipt->recipient), f->receipt->reason[0] ? ": " : "",
                   esc(f->receipt->reason));
        }
        codec_free((ProtobufCMessage **)&f);
    }
    /* Give the last acknowledgements time to leave before the socket closes. */
    client_recv(cl, 200, &f, &err);
    codec_free((ProtobufCMessage **)&f);
    client_close(&cl);
    printf("%s: %ld messages received and acknowledged\n", who, got);
    return 0;
}

/* ---- admin socket commands ---- */

typedef struct admin_args {
    publish_opts_t conn;
    const char *recipient;
    uint64_t from, to;
    const char *message_id;
    const char *reason;
    bool all;
    uint64_t seqs[64];
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
            a->from = strtoull(optarg, NULL, 10);
            break;
        case 't':
            a->to = strtoull(optarg, NULL, 10);
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
            if (a->n_seqs < 64)
                a->seqs[a->n_seqs++] = strtoull(optarg, NULL, 10);
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

static int
cmd_stats(int argc, char **argv)
{
    return cmd_admin(argc, argv, PTIBUS__V1__ADMIN_REQUEST__KIND_STATS);
}

static int
cmd_dead_letters(int argc, char **argv)
{
    return cmd_admin(argc, argv, PTIBUS__V1__ADMIN_REQUEST__KIND_DEAD_LETTER_LIST);
}

static int
cmd_requeue(int argc, char **argv)
{
    return cmd_admin(argc, argv, PTIBUS__V1__ADMIN_REQUEST__KIND_DEAD_LETTER_REQUEUE);
}

static int
cmd_replay(int argc, char **argv)
{
    return cmd_admin(argc, argv, PTIBUS__V1__ADMIN_REQUEST__KIND_REPLAY);
}

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
