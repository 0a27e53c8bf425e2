/* Security tests of input handling (issue 10, items 4 to 6), on a real ptibusd:
 *  - log injection: a Hello whose client_name carries a line feed, a forged log line
 *    and ESC sequences is refused, and no line of the broker's log is forged;
 *  - a DeliverAck reason with controls is refused; a valid one that holds personal
 *    data stays out of the log (its length is logged), is cut by code point so that
 *    the Receipt decodes with a strict proto3 decoder (python3-protobuf when present),
 *    and `ptibusctl journal list` prints it escaped;
 *  - a journal written before this validation (a reason with a forged line and ESC
 *    sequences) is printed escaped by `ptibusctl journal list`;
 *  - a binary Envelope with a field unknown to PersonRef (a NIR hidden there) is
 *    refused INVALID naming the field number. */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <zmq.h>

#include "codec.h"
#include "daemon.h"
#include "journal.h"
#include "keys.h"
#include "samples.h"
#include "testutil.h"
#include "utf8.h"

#define TIMEOUT_MS 5000

/* A forged log line, a terminal title and a screen clear, as a partner would send them. */
#define FORGED_LINE "2026-12-01T00:00:00.000Z ptibusd[1] E [broker.forged] partner=departement"
#define EVIL_NAME "caf\n" FORGED_LINE "\x1b]0;owned\x07\x1b[2J"
/* Stands for personal data in a reason: it must never reach the log. */
#define PERSONAL "Mme TIFOUR\tSophie"

typedef struct fx {
    td_net_t net;
    client_t *caf, *dep;
} fx_t;

static int
setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    td_net_options_t o = {.ack_timeout = "30s"};
    td_net_init(&f->net, "injection", &o);
    if (td_broker_start(&f->net) != 0)
        return -1;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *f = *state;
    client_close(&f->caf);
    client_close(&f->dep);
    td_net_fini(&f->net);
    free(f);
    return 0;
}

/* Receives frames until one of `kind` comes; returns it (caller frees) and, when raw is
 * given, its bytes exactly as the broker sent them (caller frees). */
static Ptibus__V1__Frame *
recv_kind(client_t *c, Ptibus__V1__Frame__KindCase kind, uint8_t **raw, size_t *raw_len)
{
    int64_t deadline = tu_now_ms() + TIMEOUT_MS;
    while (tu_now_ms() < deadline) {
        zmq_pollitem_t it = {.socket = client_socket(c), .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 200) != 1)
            continue;
        zmq_msg_t m;
        zmq_msg_init(&m);
        assert_true(zmq_msg_recv(&m, client_socket(c), 0) >= 0);
        ProtobufCMessage *fr = NULL;
        pt_error_t err;
        assert_int_equal(codec_unpack_lenient(&ptibus__v1__frame__descriptor, zmq_msg_data(&m),
                                              zmq_msg_size(&m), 1 << 22, &fr, &err),
                         0);
        if (((Ptibus__V1__Frame *)fr)->kind_case == kind) {
            if (raw) {
                *raw_len = zmq_msg_size(&m);
                *raw = malloc(*raw_len);
                memcpy(*raw, zmq_msg_data(&m), *raw_len);
            }
            zmq_msg_close(&m);
            return (Ptibus__V1__Frame *)fr;
        }
        codec_free(&fr);
        zmq_msg_close(&m);
    }
    fail_msg("no frame of kind %d within %d ms", (int)kind, TIMEOUT_MS);
    return NULL;
}

static void
send_frame(client_t *c, Ptibus__V1__Frame *f)
{
    pt_error_t err;
    assert_int_equal(client_send(c, f, &err), 0);
}

static void
send_hello(client_t *c, const char *name, const char *version, uint32_t credit)
{
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Hello h = PTIBUS__V1__HELLO__INIT;
    h.protocol_version = 1;
    h.client_name = (char *)name;
    h.software_version = (char *)version;
    h.initial_credit = credit;
    f.kind_case = PTIBUS__V1__FRAME__KIND_HELLO;
    f.hello = &h;
    send_frame(c, &f);
}

static void
send_cannot_process(client_t *c, uint64_t seq, const char *reason)
{
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__DeliverAck a = PTIBUS__V1__DELIVER_ACK__INIT;
    a.seq = seq;
    a.status = PTIBUS__V1__DELIVER_ACK_STATUS__DELIVER_ACK_STATUS_CANNOT_PROCESS;
    a.reason = (char *)reason;
    f.kind_case = PTIBUS__V1__FRAME__KIND_DELIVER_ACK;
    f.deliver_ack = &a;
    send_frame(c, &f);
}

static void
expect_nack(client_t *c, int code, const char *field_path)
{
    Ptibus__V1__Frame *fr = recv_kind(c, PTIBUS__V1__FRAME__KIND_NACK, NULL, NULL);
    assert_int_equal(fr->nack->code, code);
    assert_string_equal(fr->nack->field_path, field_path);
    assert_true(utf8_valid(fr->nack->reason));
    codec_free((ProtobufCMessage **)&fr);
}

/* The broker's whole log (caller frees). */
static char *
read_log(fx_t *f)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/broker.log", f->net.dir);
    uint8_t *text;
    size_t len;
    assert_int_equal(tu_read_file(path, &text, &len), 0);
    return (char *)text;
}

/* Every line of the log is one of the logger's: it starts with its timestamp, holds no
 * control byte, and no line starts with the forged one. */
static void
expect_clean_log(fx_t *f)
{
    char *log = read_log(f);
    for (char *line = log; *line; line = strchr(line, '\n') + 1) {
        char *end = strchr(line, '\n');
        assert_non_null(end);
        assert_memory_equal(line, "20", 2);
        assert_false(strncmp(line, FORGED_LINE, 20) == 0);
        for (char *p = line; p < end; p++)
            assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
    }
    assert_true(utf8_valid(log));
    free(log);
}

/* Runs `ptibusctl journal list --format tsv` on the stopped broker's journal (caller frees). */
static char *
journal_list(fx_t *f)
{
    char cmd[9000], out[4400];
    snprintf(out, sizeof out, "%s/journal-list.txt", f->net.dir);
    snprintf(cmd, sizeof cmd, "'%s' journal list --format tsv --journal '%s' > '%s'",
             PT_PTIBUSCTL_PATH, f->net.journal_dir, out);
    assert_int_equal(system(cmd), 0);
    uint8_t *text;
    size_t len;
    assert_int_equal(tu_read_file(out, &text, &len), 0);
    return (char *)text;
}

/* The line of `text` that contains `needle`, copied into line. */
static void
line_with(const char *text, const char *needle, char *line, size_t cap)
{
    const char *hit = strstr(text, needle);
    assert_non_null(hit);
    const char *start = hit;
    while (start > text && start[-1] != '\n')
        start--;
    const char *end = strchr(hit, '\n');
    size_t n = end ? (size_t)(end - start) : strlen(start);
    assert_true(n < cap);
    memcpy(line, start, n);
    line[n] = '\0';
}

static size_t
count_char(const char *s, char ch)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == ch;
    return n;
}

static void
test_hello_injection(void **state)
{
    fx_t *f = *state;
    assert_int_equal(td_client_open(&f->net, "caf", true, &f->caf), 0);
    send_hello(f->caf, EVIL_NAME, "1.0", 0);
    expect_nack(f->caf, PTIBUS__V1__NACK_CODE__NACK_CODE_INVALID, "hello.clientName");
    send_hello(f->caf, "caf", "1.0\x1b[2J", 0);
    expect_nack(f->caf, PTIBUS__V1__NACK_CODE__NACK_CODE_INVALID, "hello.softwareVersion");
    /* Valid text that looks like a journald priority: logged, never at a line start. */
    send_hello(f->caf, "<3>caf", "<3>1.0", 0);
    Ptibus__V1__Frame *w = recv_kind(f->caf, PTIBUS__V1__FRAME__KIND_WELCOME, NULL, NULL);
    codec_free((ProtobufCMessage **)&w);
    assert_true(td_log_contains(&f->net, "client=<3>caf version=<3>1.0"));
    assert_true(td_log_contains(&f->net, "hello.clientName: contains a control character"));
    expect_clean_log(f);
}

/* Prints the Receipt's bytes to a strict proto3 decoder (python3-protobuf, which
 * refuses a string that is not UTF-8); skipped when the generated module is absent. */
static void
strict_decode(fx_t *f, const uint8_t *raw, size_t len)
{
    char path[4400], cmd[9000], probe[4400];
    snprintf(probe, sizeof probe, "%s/ptibus/v1/protocol_pb2.py", PT_PY_GEN_DIR);
    struct stat st;
    if (stat(PT_TEST_PYTHON, &st) != 0 || stat(probe, &st) != 0) {
        print_message("python3-protobuf or its generated module absent: strict decode skipped\n");
        return;
    }
    snprintf(path, sizeof path, "%s/receipt.bin", f->net.dir);
    assert_int_equal(tu_write_file(path, raw, len), 0);
    snprintf(cmd, sizeof cmd,
             "'%s' -c \"import sys; sys.path.insert(0, sys.argv[1]); "
             "from ptibus.v1 import protocol_pb2 as p; "
             "fr = p.Frame.FromString(open(sys.argv[2], 'rb').read()); "
             "sys.exit(0 if fr.WhichOneof('kind') == 'receipt' else 3)\" '%s' '%s' 2>&1",
             PT_TEST_PYTHON, PT_PY_GEN_DIR, path);
    assert_int_equal(system(cmd), 0);
}

/* A reason of 255 bytes and then three-byte characters: cut at 256 bytes, the first of
 * them would be split. */
static void
long_reason(char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "%s ", PERSONAL);
    while (n < 255)
        out[n++] = 'a';
    for (int i = 0; i < 20; i++, n += 3)
        memcpy(out + n, "\xe2\x82\xac", 3);
    out[n] = '\0';
    assert_true(n < cap);
}

static void
test_ack_reason_injection(void **state)
{
    fx_t *f = *state;
    assert_int_equal(td_client_session(&f->net, "caf", 0, &f->caf), 0);
    assert_int_equal(td_client_session(&f->net, "departement", 8, &f->dep), 0);
    td_sample_t s;
    td_sample_beneficiary_event(&s, "inj-0001");
    client_result_t res;
    pt_error_t err;
    assert_int_equal(client_publish(f->caf, &s.env, TIMEOUT_MS, &res, &err), 0);
    assert_int_equal(res.nack_code, 0);
    Ptibus__V1__Frame *d = recv_kind(f->dep, PTIBUS__V1__FRAME__KIND_DELIVER, NULL, NULL);
    uint64_t seq = d->deliver->seq;
    codec_free((ProtobufCMessage **)&d);

    send_cannot_process(f->dep, seq, "bad\n" FORGED_LINE "\x1b[31m");
    expect_nack(f->dep, PTIBUS__V1__NACK_CODE__NACK_CODE_INVALID, "deliverAck.reason");
    char reason[512];
    long_reason(reason, sizeof reason);
    send_cannot_process(f->dep, seq, reason);

    uint8_t *raw;
    size_t raw_len;
    Ptibus__V1__Frame *r = recv_kind(f->caf, PTIBUS__V1__FRAME__KIND_RECEIPT, &raw, &raw_len);
    assert_int_equal(r->receipt->kind, PTIBUS__V1__RECEIPT_KIND__RECEIPT_KIND_DEAD_LETTERED);
    assert_true(utf8_valid(r->receipt->reason));
    assert_non_null(strstr(r->receipt->reason, "cannot process it: " PERSONAL " aaa"));
    assert_non_null(strstr(r->receipt->reason, "a\xe2\x82\xac"));
    strict_decode(f, raw, raw_len);
    free(raw);
    codec_free((ProtobufCMessage **)&r);

    char said[64];
    snprintf(said, sizeof said, "reason of %zu bytes", strlen(reason));
    assert_true(td_log_contains(&f->net, said));
    assert_false(td_log_contains(&f->net, "TIFOUR"));
    assert_false(td_log_contains(&f->net, "broker.forged"));
    expect_clean_log(f);

    assert_int_equal(td_broker_stop(&f->net), 0);
    char *list = journal_list(f), line[2048];
    line_with(list, "DEAD_LETTERED", line, sizeof line);
    assert_non_null(strstr(line, "Mme TIFOUR\\tSophie aaa"));
    assert_true(utf8_valid(line));
    /* seq, time, kind, sender, recipient, type, message id, correlation id, attempt, ref
     * and the reason: its tab escaped. */
    assert_int_equal(count_char(line, '\t'), 10);
    free(list);
}

/* Appends one DEAD_LETTERED record, as a broker before this change could write it, to
 * the stopped broker's journal. */
static void
append_old_dead_letter(fx_t *f, const char *message_id, uint64_t ref_seq, const char *reason)
{
    char hmac_path[4300], sign_path[4300];
    uint8_t hmac[32], sign[64];
    pt_error_t err;
    snprintf(hmac_path, sizeof hmac_path, "%s/keys/person-index.hmac", f->net.dir);
    assert_int_equal(keys_read(hmac_path, hmac, 32, true, &err), 0);
    /* Signed like the broker signs, so that the broker reopens the journal afterwards. */
    snprintf(sign_path, sizeof sign_path, "%s/keys/journal.sign", f->net.dir);
    assert_int_equal(keys_read(sign_path, sign, 64, true, &err), 0);
    journal_options_t o = {.dir = f->net.journal_dir, .hmac_key = hmac, .sign_sk = sign};
    journal_t *j;
    journal_txn_t *t;
    assert_int_equal(journal_open(&o, &j, &err), 0);
    assert_int_equal(journal_begin(j, &t, &err), 0);
    journal_record_t rec = {.kind = PT_REC_DEAD_LETTERED,
                            .partner = "departement",
                            .msg_type = "beneficiary_event",
                            .message_id = message_id,
                            .correlation_id = "",
                            .ref_seq = ref_seq,
                            .reason = reason};
    uint64_t seq;
    assert_int_equal(journal_append(t, &rec, &seq, &err), 0);
    assert_int_equal(journal_commit(&t, &err), 0);
    journal_close(&j);
}

/* A journal written before the broker validated reasons holds whatever a recipient
 * sent: journal list must still print one escaped line per record. */
static void
test_journal_list_escapes(void **state)
{
    fx_t *f = *state;
    assert_int_equal(td_broker_stop(&f->net), 0);
    append_old_dead_letter(f, "old-0001", 1,
                           "recipient cannot process it: x\n" FORGED_LINE
                           "\x1b]0;owned\x07\x1b[2J\xc2\x9b\xe2\x82");
    char *list = journal_list(f), line[2048];
    line_with(list, "DEAD_LETTERED", line, sizeof line);
    assert_non_null(strstr(line, "cannot process it: x\\n" FORGED_LINE
                                 "\\x1b]0;owned\\x07\\x1b[2J\\u009b\\xe2\\x82"));
    for (const char *p = list; *p; p++)
        assert_true((unsigned char)*p >= 0x20 || *p == '\n' || *p == '\t');
    assert_true(utf8_valid(list));
    assert_null(strstr(list, "\n" FORGED_LINE));
    free(list);
}

/* A reason that an older broker cut at 256 bytes, inside a character: the Receipt sent
 * again on ReceiptRequest carries its valid prefix, and strict decoders take it. */
static void
test_old_receipt_resent_valid(void **state)
{
    fx_t *f = *state;
    assert_int_equal(td_client_session(&f->net, "caf", 0, &f->caf), 0);
    td_sample_t s;
    td_sample_beneficiary_event(&s, "inj-old");
    client_result_t res;
    pt_error_t err;
    assert_int_equal(client_publish(f->caf, &s.env, TIMEOUT_MS, &res, &err), 0);
    assert_int_equal(res.nack_code, 0);
    client_close(&f->caf);
    assert_int_equal(td_broker_stop(&f->net), 0);
    append_old_dead_letter(f, "inj-old", res.seq, "recipient cannot process it: trop \xe2\x82");
    assert_int_equal(td_broker_start(&f->net), 0);
    assert_int_equal(td_client_session(&f->net, "caf", 0, &f->caf), 0);
    assert_int_equal(client_receipt_request(f->caf, "inj-old", &err), 0);
    uint8_t *raw;
    size_t raw_len;
    Ptibus__V1__Frame *r = recv_kind(f->caf, PTIBUS__V1__FRAME__KIND_RECEIPT, &raw, &raw_len);
    assert_string_equal(r->receipt->reason, "recipient cannot process it: trop ");
    strict_decode(f, raw, raw_len);
    free(raw);
    codec_free((ProtobufCMessage **)&r);
}

/* Appends field `field` (length-delimited) to a wire buffer. */
static void
put_bytes(uint8_t *b, size_t *n, uint32_t field, const void *data, size_t len)
{
    uint64_t v = (uint64_t)field << 3 | 2;
    for (int k = 0; k < 2; k++, v = len) {
        do {
            b[(*n)++] = (uint8_t)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
            v >>= 7;
        } while (v);
    }
    memcpy(b + *n, data, len);
    *n += len;
}

static void
test_unknown_field_in_person(void **state)
{
    fx_t *f = *state;
    assert_int_equal(td_client_session(&f->net, "caf", 0, &f->caf), 0);
    static uint8_t person[4096], event[8192], env[16384];
    size_t np = 0, ne = 0, nv = 0;
    const char nir[] = "184127645108946";
    td_sample_t s;
    td_sample_beneficiary_event(&s, "inj-unknown");
    /* beneficiary_event.person: departement_id only, and a NIR in field 99. */
    s.person.nir = "";
    s.person.departement_id = "d-77";
    np = protobuf_c_message_pack(&s.person.base, person);
    put_bytes(person, &np, 99, nir, strlen(nir));
    s.event.person = NULL;
    ne = protobuf_c_message_pack(&s.event.base, event);
    put_bytes(event, &ne, 3, person, np);
    s.env.body_case = PTIBUS__V1__ENVELOPE__BODY__NOT_SET;
    nv = protobuf_c_message_pack(&s.env.base, env);
    put_bytes(env, &nv, PTIBUS__V1__ENVELOPE__BODY_BENEFICIARY_EVENT, event, ne);
    pt_error_t err;
    assert_int_equal(client_publish_bytes(f->caf, "inj-unknown", env, nv, &err), 0);
    Ptibus__V1__Frame *fr = recv_kind(f->caf, PTIBUS__V1__FRAME__KIND_NACK, NULL, NULL);
    assert_int_equal(fr->nack->code, PTIBUS__V1__NACK_CODE__NACK_CODE_INVALID);
    assert_string_equal(fr->nack->field_path, "beneficiaryEvent.person.#99");
    assert_non_null(strstr(fr->nack->reason, "unknown field number 99 of ptibus.v1.PersonRef"));
    codec_free((ProtobufCMessage **)&fr);
    assert_false(td_log_contains(&f->net, nir));
    /* The same envelope without the hidden field is accepted. */
    td_sample_beneficiary_event(&s, "inj-known");
    client_result_t res;
    assert_int_equal(client_publish(f->caf, &s.env, TIMEOUT_MS, &res, &err), 0);
    assert_int_equal(res.nack_code, 0);
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_hello_injection),         T(test_ack_reason_injection),
        T(test_journal_list_escapes),    T(test_old_receipt_resent_valid),
        T(test_unknown_field_in_person),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
