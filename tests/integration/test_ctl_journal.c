/* ptibusctl's queries and their audit, on the real binaries: a real ptibusd carries a
 * few flows (accepted, refused with a reused id, delivered and acknowledged, pending),
 * then `ptibusctl` reads its settings from a config file and: each `journal list`
 * filter returns exactly its records (the index answer equals the scan's), every
 * format is clean, `trace` separates senders and says what is pending, and `journal
 * show` shows a message only after the broker has journaled the read (with the broker
 * stopped it refuses, exit 7, and prints nothing of the message). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>
#include <libxml/HTMLparser.h>
#include <libxml/tree.h>

#include "daemon.h"
#include "samples.h"
#include "testutil.h"

#define TIMEOUT_MS 5000
#define OUT_MAX (256 * 1024)

typedef struct fx {
    td_net_t net;
    char conf[4400];
    char out[OUT_MAX];
    char err[OUT_MAX];
} fx_t;

static fx_t *g;

/* Runs ptibusctl with PTIBUS_CONFIG set to the test's config; stdout into f->out,
 * stderr into f->err; returns the exit code. */
static int
ctl(fx_t *f, const char *fmt, ...)
{
    char args[4096], cmd[16384], errpath[4400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(errpath, sizeof errpath, "%s/ctl.err", f->net.dir);
    snprintf(cmd, sizeof cmd, "PTIBUS_CONFIG='%s' '%s' %s 2>'%s'", f->conf, PT_PTIBUSCTL_PATH, args,
             errpath);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(f->out, 1, sizeof f->out - 1, p);
    f->out[n] = '\0';
    int st = pclose(p);
    uint8_t *e = NULL;
    size_t elen = 0;
    f->err[0] = '\0';
    if (tu_read_file(errpath, &e, &elen) == 0) {
        snprintf(f->err, sizeof f->err, "%.*s", (int)elen, (char *)e);
        free(e);
    }
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (rc != 0)
        print_message("ptibusctl %s: exit %d: %s", args, rc, f->err);
    return rc;
}

static size_t
count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static size_t
count_of(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void
write_config(fx_t *f)
{
    char text[8192];
    snprintf(f->conf, sizeof f->conf, "%s/ptibusctl.yaml", f->net.dir);
    snprintf(text, sizeof text,
             "# written by test_ctl_journal: relative file names are relative to this file\n"
             "broker:\n  endpoint: \"%s\"\n  admin: \"%s\"\n  public_key: keys/broker.pub\n"
             "journal:\n  dir: \"%s\"\n  sign_public_key: keys/journal.sign.pub\n"
             "  person_index_key: keys/person-index.hmac\n"
             "operator:\n  name: test-dpo\n  key: keys/admin.key\n  public_key: keys/admin.pub\n"
             "partners:\n  keys_dir: keys\n",
             f->net.endpoint, f->net.admin_endpoint, f->net.journal_dir);
    assert_int_equal(tu_write_file(f->conf, text, strlen(text)), 0);
}

static void
publish(client_t *c, Ptibus__V1__Envelope *env, int want_nack)
{
    client_result_t r;
    pt_error_t err;
    assert_int_equal(client_publish(c, env, TIMEOUT_MS, &r, &err), 0);
    assert_int_equal(r.nack_code, want_nack);
}

/* Takes n deliveries on c and acknowledges each. */
static void
take(client_t *c, int n)
{
    pt_error_t err;
    int64_t deadline = tu_now_ms() + TIMEOUT_MS;
    while (n > 0 && tu_now_ms() < deadline) {
        Ptibus__V1__Frame *fr;
        if (client_recv(c, 200, &fr, &err) != 0)
            continue;
        if (fr->kind_case == PTIBUS__V1__FRAME__KIND_DELIVER) {
            assert_int_equal(client_deliver_ack(c, fr->deliver->seq, true, NULL, &err), 0);
            n--;
        }
        codec_free((ProtobufCMessage **)&fr);
    }
    assert_int_equal(n, 0);
    Ptibus__V1__Frame *fr;
    if (client_recv(c, 300, &fr, &err) == 0) /* the acks leave */
        codec_free((ProtobufCMessage **)&fr);
}

/* The flows: departement sends an orientation (to pole_emploi and caf), a sanction
 * decision (pole_emploi, msa) and a referral (ml_nord); pole_emploi sends a referral
 * refused by the routes with the orientation's id; caf, pole_emploi and ml_nord take
 * and acknowledge theirs, msa never connects (its sanction stays pending); ml_nord
 * answers the referral with a status (departement does not take it). */
static void
make_flows(fx_t *f)
{
    client_t *cd, *pe, *caf, *ml;
    assert_int_equal(td_client_session(&f->net, "departement", 0, &cd), 0);
    assert_int_equal(td_client_session(&f->net, "pole_emploi", 16, &pe), 0);
    assert_int_equal(td_client_session(&f->net, "caf", 16, &caf), 0);
    assert_int_equal(td_client_session(&f->net, "ml_nord", 16, &ml), 0);
    td_sample_t s;
    td_sample_orientation(&s, "ori-1");
    publish(cd, &s.env, 0);
    td_sample_sanction(&s, "san-msa-1", PTIBUS__V1__PAYER__PAYER_MSA);
    publish(cd, &s.env, 0);
    td_sample_referral(&s, "ref-1", "ml_nord");
    publish(cd, &s.env, 0);
    td_sample_referral(&s, "ori-1", "nobody");
    publish(pe, &s.env, PTIBUS__V1__NACK_CODE__NACK_CODE_NOT_ALLOWED);
    take(caf, 1);
    take(pe, 2);
    take(ml, 1);
    td_sample_referral_status(&s, "ref-1-accepted", "ref-1"); /* to departement, pending */
    publish(ml, &s.env, 0);
    client_close(&cd);
    client_close(&pe);
    client_close(&caf);
    client_close(&ml);
}

static int
group_setup(void **state)
{
    g = calloc(1, sizeof *g);
    td_net_options_t o = {.admin_name = "test-admin"};
    td_net_init(&g->net, "ctljournal", &o);
    if (td_broker_start(&g->net) != 0)
        return -1;
    write_config(g);
    make_flows(g);
    *state = g;
    return 0;
}

static int
group_teardown(void **state)
{
    fx_t *f = *state;
    td_net_fini(&f->net);
    free(f);
    return 0;
}

/* The JSON Lines of one list, and the same list by a scan: equal, n rows. */
static void
expect_list(fx_t *f, const char *filter, size_t n)
{
    static char indexed[OUT_MAX];
    assert_int_equal(ctl(f, "journal list --format json %s", filter), 0);
    snprintf(indexed, sizeof indexed, "%s", f->out);
    if (count_lines(indexed) != n)
        print_message("journal list %s:\n%s", filter, indexed);
    assert_int_equal(count_lines(indexed), n);
    assert_int_equal(ctl(f, "journal list --format json --scan %s", filter), 0);
    assert_string_equal(indexed, f->out);
}

static void
test_list_filters(void **state)
{
    fx_t *f = *state;
    /* 5 publishes: 4 RECEIVED, 1 REJECTED; 6 routed deliveries, 4 acknowledged. */
    expect_list(f, "--kind RECEIVED", 4);
    expect_list(f, "--kind rejected", 1);
    expect_list(f, "--from departement --kind RECEIVED", 3);
    expect_list(f, "--from pole_emploi --kind RECEIVED", 0);
    expect_list(f, "--from pole_emploi --kind REJECTED", 1);
    expect_list(f, "--to caf --kind ACKNOWLEDGED", 1);
    expect_list(f, "--to msa --kind ACKNOWLEDGED", 0);
    expect_list(f, "--to msa --kind RECEIVED", 1); /* routed to msa, never delivered */
    expect_list(f, "--message-id ori-1 --kind RECEIVED", 1);
    expect_list(f, "--message-id ori-1 --from pole_emploi", 1);
    expect_list(f, "--message-id ori-1 --to caf --kind DELIVERED", 1);
    expect_list(f, "--message-id no-such-id", 0);
    expect_list(f, "--type sanction --kind RECEIVED", 1);
    expect_list(f, "--kind ACKNOWLEDGED", 4);
    expect_list(f, "--until 2001-01-01", 0);
    expect_list(f, "--since 2001-01-01 --kind RECEIVED --limit 2", 2);
    expect_list(f, "--correlation-id ref-1", 1);
    expect_list(f, "--from ml_nord --kind RECEIVED --type referral_status", 1);
    expect_list(f, "--since 2099-01-01T00:00:00+01:00", 0);
    /* Every record of the orientation's id: both senders' records, one sender column
     * each, and a recipient column for the deliveries. */
    assert_int_equal(ctl(f, "journal list --format json --message-id ori-1"), 0);
    assert_int_equal(count_of(f->out, "\"sender\":\"pole_emploi\""), 1);
    assert_true(count_of(f->out, "\"sender\":\"departement\"") >= 5);
    assert_non_null(strstr(f->out, "\"kind\":\"DELIVERED\",\"sender\":\"departement\","
                                   "\"recipient\":\"caf\""));
    assert_null(strstr(f->out, "\"payload"));
}

static void
test_list_formats_and_errors(void **state)
{
    fx_t *f = *state;
    assert_int_equal(ctl(f, "journal list --kind RECEIVED"), 0);
    assert_true(strncmp(f->out, "seq ", 4) == 0); /* the header */
    assert_int_equal(count_lines(f->out), 5);
    assert_int_equal(ctl(f, "journal list --format csv --kind RECEIVED"), 0);
    const char *header = "seq,time,kind,sender,recipient,type,message_id,correlation_id,attempt,"
                         "ref_seq,reason\n";
    assert_true(strncmp(f->out, header, strlen(header)) == 0);
    assert_non_null(strstr(f->out, ",RECEIVED,departement,\"caf,pole_emploi\",orientation,ori-1,"));
    assert_int_equal(ctl(f, "journal list --format tsv --kind RECEIVED --limit 1"), 0);
    assert_int_equal(count_of(f->out, "\t"), 2 * 10);
    assert_int_equal(ctl(f, "journal list --format xml"), 2);
    assert_non_null(strstr(f->err, "--format xml is not table, tsv, csv, json or html"));
    assert_int_equal(ctl(f, "journal list --since 2026-12-02 --until 2026-12-01"), 2);
    assert_non_null(strstr(f->err, "the range is empty"));
    assert_int_equal(ctl(f, "journal list --since yesterday"), 2);
    assert_non_null(strstr(f->err, "not an RFC 3339 time"));
    assert_int_equal(ctl(f, "journal list --kind SENT"), 2);
    assert_int_equal(ctl(f, "journal list --journal /nonexistent/j"), 1);
    assert_int_equal(ctl(f, "journal list --help"), 0);
    assert_non_null(strstr(f->out, "usage: ptibusctl journal list"));
    /* The former spelling still works, with its seq range. */
    assert_int_equal(ctl(f, "journal-list --from 1 --to 2 --format json"), 0);
    assert_int_equal(count_lines(f->out), 2);
}

static void
test_config(void **state)
{
    fx_t *f = *state;
    assert_int_equal(ctl(f, "config show --format tsv"), 0);
    assert_non_null(strstr(f->out, "operator.name\ttest-dpo\n"));
    char want[4400];
    snprintf(want, sizeof want, "broker.public_key\t%s/keys/broker.pub\n", f->net.dir);
    assert_non_null(strstr(f->out, want)); /* relative to the config file */
    assert_int_equal(ctl(f, "--config /nonexistent.yaml journal list"), 1);
    assert_non_null(strstr(f->err, "/nonexistent.yaml"));
    assert_int_equal(ctl(f, "journal list --config /nonexistent.yaml"), 1);
    char bad[4400];
    snprintf(bad, sizeof bad, "%s/bad.yaml", f->net.dir);
    assert_int_equal(tu_write_file(bad, "journal:\n  dri: x\n", 18), 0);
    assert_int_equal(ctl(f, "--config '%s' journal list", bad), 1);
    assert_non_null(strstr(f->err, "dri"));
    /* Options override the file. */
    assert_int_equal(ctl(f, "config show --format tsv --journal /elsewhere"), 0);
    assert_non_null(strstr(f->out, "journal.dir\t/elsewhere\n"));
    /* The admin socket from the config alone: no key option in daily use. */
    assert_int_equal(ctl(f, "stats --format csv"), 0);
    assert_non_null(strstr(f->out, "partner,online,credit"));
    /* The former key options still work without a config file. */
    assert_int_equal(
        ctl(f,
            "--config /dev/null stats --endpoint '%s' --server-key '%s/keys/broker.pub' "
            "--key '%s/keys/admin.key' --pub '%s/keys/admin.pub'",
            f->net.admin_endpoint, f->net.dir, f->net.dir, f->net.dir),
        0);
    assert_int_equal(ctl(f, "journal-verify"), 0);
    assert_int_equal(ctl(f, "journal verify --progress"), 0);
    assert_non_null(strstr(f->out, "checkpoints signed, linked and covering the head"));
    assert_non_null(strstr(f->err, "journal verify: records 1 of "));
    assert_non_null(strstr(f->err, "journal verify: state "));
    assert_non_null(strstr(f->out, "unsigned tail: 0 records after the last checkpoint"));
    /* Another signing key: the journal does not verify with it, and it says so. */
    assert_int_equal(ctl(f, "keygen --dir '%s' --kind sign other", f->net.dir), 0);
    assert_non_null(strstr(f->out, "other.sign.pub (public)"));
    assert_int_equal(ctl(f, "journal verify --pubkey '%s/other.sign.pub'", f->net.dir), 6);
    assert_non_null(strstr(f->err,
                           "the signature does not verify with this key: forged, or not the "
                           "journal's signing public key"));
}

static void
test_trace(void **state)
{
    fx_t *f = *state;
    assert_int_equal(ctl(f, "trace ori-1 --format json"), 0);
    assert_non_null(strstr(f->out, "\"event\":\"RECEIVED\""));
    assert_non_null(strstr(f->out, "\"event\":\"REJECTED\""));
    assert_non_null(strstr(f->err, "several senders used this message id"));
    assert_int_equal(count_of(f->out, "\"event\":\"ACKNOWLEDGED\""), 2);
    assert_non_null(strstr(f->out, "\"delay_ms\":"));
    assert_null(strstr(f->out, "PENDING"));
    assert_int_equal(ctl(f, "trace ori-1 --sender departement --format json"), 0);
    assert_null(strstr(f->out, "REJECTED"));
    assert_int_equal(ctl(f, "trace san-msa-1"), 0);
    assert_non_null(strstr(f->out, "not yet acknowledged by msa, 0 attempts, never delivered"));
    assert_null(strstr(f->out, "acknowledged by pole_emploi,"));
    /* A referral's trace has its status reply, and says it is pending at departement. */
    assert_int_equal(ctl(f, "trace ref-1 --format json"), 0);
    assert_non_null(strstr(f->out, "\"detail\":\"reply: referral_status, routed to departement\""));
    assert_non_null(strstr(f->out, "not yet acknowledged by departement, 0 attempts"));
    assert_null(strstr(f->err, "several senders"));
    assert_int_equal(ctl(f, "trace no-such-id"), 3);
    assert_non_null(strstr(f->err, "no record of message id no-such-id"));
}

/* The text of a node's children, into buf. */
static void
node_text(xmlNode *n, char *buf, size_t cap)
{
    xmlChar *t = xmlNodeGetContent(n);
    snprintf(buf, cap, "%s", t ? (const char *)t : "");
    xmlFree(t);
}

static xmlNode *
find_id(xmlNode *n, const char *id)
{
    for (; n; n = n->next) {
        xmlChar *v = n->type == XML_ELEMENT_NODE ? xmlGetProp(n, (const xmlChar *)"id") : NULL;
        bool hit = v && strcmp((const char *)v, id) == 0;
        xmlFree(v);
        if (hit)
            return n;
        xmlNode *c = find_id(n->children, id);
        if (c)
            return c;
    }
    return NULL;
}

/* The tbody of the page's table id. */
static xmlNode *
table_body(htmlDocPtr doc, const char *id)
{
    xmlNode *table = find_id(xmlDocGetRootElement(doc), id), *tbody = NULL;
    assert_non_null(table);
    for (xmlNode *n = table->children; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, "tbody") == 0)
            tbody = n;
    assert_non_null(tbody);
    return tbody;
}

/* Each row of the page's flows table (12 cells) or refusals table (6), as the csv writes
 * it; returns the rows seen. */
static size_t
html_rows_in_csv(const char *html, const char *csv, const char *id)
{
    htmlDocPtr doc = htmlReadMemory(html, (int)strlen(html), "report.html", "UTF-8",
                                    HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET);
    assert_non_null(doc);
    bool flows = strcmp(id, "flows") == 0;
    size_t rows = 0;
    for (xmlNode *tr = table_body(doc, id)->children; tr; tr = tr->next) {
        if (tr->type != XML_ELEMENT_NODE)
            continue;
        char cell[12][128], line[2048];
        int k = 0;
        for (xmlNode *td = tr->children; td && k < 12; td = td->next)
            if (td->type == XML_ELEMENT_NODE)
                node_text(td, cell[k++], sizeof cell[0]);
        assert_int_equal(k, flows ? 12 : 6);
        /* flows: month, territory, sender, recipient, type, messages, acknowledged,
         * ack_rate, dead_lettered, p50, p95, max (the csv has the reason, empty, after
         * the type); refusals: month, territory, sender, type, reason, refused. */
        if (flows)
            snprintf(line, sizeof line, "\nflow,%s,%s,%s,%s,%s,,%s,%s,%s,%s,%s,%s,%s,", cell[0],
                     cell[1], cell[2], cell[3], cell[4], cell[5], cell[6], cell[7], cell[8],
                     cell[9], cell[10], cell[11]);
        else
            snprintf(line, sizeof line, "\nrefusal,%s,%s,%s,,%s,%s,,,,,,,,%s,,\n", cell[0], cell[1],
                     cell[2], cell[3], cell[4], cell[5]);
        if (strstr(csv, line) == NULL)
            print_message("html row not in the csv: %s\n%s", line + 1, csv);
        assert_non_null(strstr(csv, line));
        rows++;
    }
    xmlFreeDoc(doc);
    return rows;
}

/* The partnership report: the flows of the period with their outcomes, the refusals,
 * the backlog; the html page parses and its numbers are the csv's. */
static void
test_report(void **state)
{
    fx_t *f = *state;
    static char csv[OUT_MAX];
    assert_int_equal(ctl(f, "report --format csv"), 0);
    snprintf(csv, sizeof csv, "%s", f->out);
    assert_int_equal(count_of(csv, "\nflow,"), 6);
    assert_int_equal(count_of(csv, "\nrefusal,"), 1);
    /* A refusal's bytes are not journaled: its territory is in the reason's tag. */
    char want[200], month[8];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(month, sizeof month, "%Y-%m", &tm);
    snprintf(want, sizeof want,
             "\nrefusal,%s,nord_meusien,pole_emploi,,referral,referral.targetOrg.", month);
    assert_non_null(strstr(csv, want));
    assert_null(strstr(csv, "[territory")); /* the tag is not part of the reason */
    assert_non_null(strstr(csv, ",nord_meusien,departement,msa,sanction,,1,0,0.000,0,,,,"));
    assert_non_null(strstr(csv, ",nord_meusien,departement,caf,orientation,,1,1,1.000,0,"));
    assert_non_null(strstr(csv, "\nbacklog,,,,msa,,,,,,,,,,,1,"));
    assert_int_equal(ctl(f, "report --format html"), 0);
    assert_null(strstr(f->out, "<script"));
    assert_null(strstr(f->out, "src="));
    assert_null(strstr(f->out, "<link"));
    assert_int_equal(count_of(f->out, "<svg "), 3);
    assert_int_equal(html_rows_in_csv(f->out, csv, "flows"), 6);
    assert_int_equal(html_rows_in_csv(f->out, csv, "refusals"), 1);
    assert_non_null(strstr(f->out, "<dd id=\"total-flows\">6</dd>"));
    assert_int_equal(ctl(f, "report --territory nowhere --format csv"), 0);
    assert_int_equal(count_of(f->out, "\nflow,"), 0);
    assert_int_equal(count_of(f->out, "\nrefusal,"), 0);
    assert_int_equal(ctl(f, "report --territory nord_meusien --format csv"), 0);
    assert_int_equal(count_of(f->out, "\nflow,"), 6);
    assert_int_equal(count_of(f->out, "\nrefusal,"), 1);
    assert_int_equal(ctl(f, "report --territory nord_meusien --format html"), 0);
    assert_int_equal(html_rows_in_csv(f->out, csv, "refusals"), 1);
    assert_int_equal(ctl(f, "report --territory nord_meusien"), 0); /* the table */
    assert_non_null(strstr(f->out, "refusal  "));
    assert_non_null(strstr(f->out, "nord_meusien pole_emploi"));
    assert_int_equal(ctl(f, "journal list --territory nord_meusien --kind REJECTED --format json"),
                     0);
    assert_int_equal(count_lines(f->out), 1);
    assert_int_equal(ctl(f, "report --since 2099-01-01 --format json"), 0);
    assert_null(strstr(f->out, "\"section\":\"flow\""));
    assert_int_equal(ctl(f, "report --since 2026-12-02 --until 2026-12-01"), 2);
}

/* Replay by filter reaches only what the routes gave the named recipient, is journaled
 * with the filter and shows in trace; a dry run sends nothing. */
static void
test_replay_by_filter(void **state)
{
    fx_t *f = *state;
    assert_int_equal(ctl(f, "replay --to pole_emploi --reason t-2"), 2);       /* no filter */
    assert_int_equal(ctl(f, "replay --from departement --reason t-2"), 2);     /* no --to */
    assert_int_equal(ctl(f, "replay --to pole_emploi --from departement"), 2); /* no reason */
    assert_int_equal(ctl(f, "journal list --kind ADMIN --format json"), 0);
    size_t admins = count_lines(f->out);
    assert_int_equal(ctl(f, "replay --to pole_emploi --from departement --dry-run --format json"),
                     0);
    assert_int_equal(count_lines(f->out), 2); /* ori-1, san-msa-1; not ref-1 (ml_nord's) */
    assert_non_null(strstr(f->out, "\"message_id\":\"ori-1\""));
    assert_non_null(strstr(f->out, "\"message_id\":\"san-msa-1\""));
    assert_non_null(strstr(f->err, "nothing was sent"));
    assert_int_equal(ctl(f, "journal list --kind ADMIN --format json"), 0);
    assert_int_equal(count_lines(f->out), admins);
    assert_int_equal(ctl(f, "replay --to ml_nord --type sanction --reason t-2"), 3);
    assert_non_null(strstr(f->err, "no message routed to ml_nord matches the filter: 1 messages "
                                   "match, but the routes did not give them to ml_nord"));
    assert_non_null(strstr(f->err, "add --force"));
    assert_int_equal(ctl(f, "replay --to ml_nord --type sanction --force --dry-run --format json"),
                     0);
    assert_int_equal(count_lines(f->out), 1);
    assert_non_null(strstr(f->out, "\"message_id\":\"san-msa-1\""));
    assert_int_equal(ctl(f, "journal list --kind REPLAYED --format json"), 0);
    assert_string_equal(f->out, ""); /* neither the refusal nor the dry run sent anything */
    assert_int_equal(ctl(f, "replay --to ml_nord --type sanction --force --reason 'ml took over'"),
                     0);
    assert_non_null(strstr(f->out, "replayed 1 of 1 matching messages to ml_nord, forced"));
    assert_int_equal(ctl(f, "journal list --kind ADMIN --format json"), 0);
    assert_non_null(strstr(f->out, "replayed 1 messages to ml_nord (forced: 1 of them not routed "
                                   "to it); reason: ml took over; filter: --to ml_nord --type "
                                   "sanction --force; seqs (part 1): "));
    assert_int_equal(ctl(f, "journal list --kind REPLAYED --to ml_nord --format json"), 0);
    assert_int_equal(count_lines(f->out), 1);
    assert_non_null(strstr(f->out, "forced replay by "));
    assert_int_equal(ctl(f, "trace san-msa-1 --format json"), 0);
    assert_non_null(strstr(f->out, "not yet acknowledged by ml_nord, 0 attempts"));
    assert_int_equal(
        ctl(f, "replay --to pole_emploi --since 2001-01-01 --type sanction --reason 'CAF lost it'"),
        0);
    assert_non_null(strstr(f->out, "replayed 1 of 1 matching messages to pole_emploi"));
    assert_int_equal(ctl(f, "journal list --kind REPLAYED --to pole_emploi --format json"), 0);
    assert_int_equal(count_lines(f->out), 1);
    assert_non_null(strstr(f->out, "\"sender\":\"departement\",\"recipient\":\"pole_emploi\","
                                   "\"type\":\"sanction\",\"message_id\":\"san-msa-1\""));
    assert_int_equal(ctl(f, "journal list --kind ADMIN --format json"), 0);
    assert_non_null(strstr(f->out, "replayed 1 messages to pole_emploi; reason: CAF lost it; "
                                   "filter: --to pole_emploi --since 2001-01-01 --type sanction; "
                                   "seqs (part 1): "));
    assert_int_equal(ctl(f, "trace san-msa-1 --format json"), 0);
    assert_non_null(strstr(f->out, "\"event\":\"REPLAYED\""));
    assert_non_null(strstr(f->out, "not yet acknowledged by pole_emploi"));
}

static void
test_admin_exit_codes(void **state)
{
    fx_t *f = *state;
    assert_int_equal(ctl(f, "deadletters list"), 0);
    assert_non_null(strstr(f->out, "(none)"));
    assert_int_equal(ctl(f, "deadletters requeue --to caf --seq 99"), 2); /* no reason */
    assert_int_equal(ctl(f, "deadletters requeue --to caf --seq 99 --reason t-1"), 3);
    assert_non_null(strstr(f->err, "nothing requeued"));
    assert_int_equal(ctl(f, "replay --to caf --message-id no-such-id --reason t-1"), 3);
    assert_int_equal(ctl(f, "replay --to msa --message-id ori-1 --reason t-1"), 3);
    assert_int_equal(ctl(f, "replay --to caf --message-id ori-1 --reason t-1"), 0);
    assert_non_null(strstr(f->out, "replayed 1 of 1 matching messages to caf"));
    assert_int_equal(ctl(f, "replay --to caf --message-id ori-1 --reason t-1"), 3);
    assert_non_null(strstr(f->err, "all still queued for caf"));
    assert_int_equal(ctl(f, "dead-letters --recipient caf"), 0); /* former spelling */
    char path[4400];
    snprintf(path, sizeof path, "%s/refused.json", f->net.dir);
    const char *env = "{\"messageId\":\"x-1\",\"referral\":{}}";
    assert_int_equal(tu_write_file(path, env, strlen(env)), 0);
    assert_int_equal(ctl(f, "publish --as departement --format json '%s'", path), 4);
    assert_non_null(strstr(f->out, "\"result\":\"refused\""));
}

/* The audited read: shown only after the broker journaled it; the journal names the
 * command, the operator and the reason. */
static void
test_show_is_journaled(void **state)
{
    fx_t *f = *state;
    assert_int_equal(ctl(f, "journal show ori-1 --sender departement"), 2);
    assert_non_null(strstr(f->err, "--reason TEXT is required"));
    assert_int_equal(ctl(f, "journal show no-such-id --reason 'DPO request 7'"), 3);
    assert_int_equal(ctl(f, "journal show ori-1 --sender departement --reason 'DPO request 7' "
                            "--format json"),
                     0);
    assert_non_null(strstr(f->out, "\"message\":{\"messageId\":\"ori-1\""));
    assert_non_null(strstr(f->out, "\"person\""));
    assert_non_null(strstr(f->err, "this read is journaled as ADMIN record"));
    assert_int_equal(ctl(f, "journal list --kind ADMIN --format json"), 0);
    assert_non_null(strstr(f->out, "personal-data read: journal show ori-1 --sender departement; "
                                   "operator: test-dpo; reason: DPO request 7"));
    /* The administrator by the name the broker's config gives its key. */
    assert_non_null(strstr(f->out, "\"kind\":\"ADMIN\",\"sender\":\"admin:test-admin\""));
    assert_true(td_log_count(&f->net, "admin:test-admin: personal-data read (ADMIN record seq ") >
                0);
}

/* backup: a verified copy while the broker runs, private from the start. */
static void
test_backup(void **state)
{
    fx_t *f = *state;
    char dir[4400], file[4500];
    snprintf(dir, sizeof dir, "%s/backup-1", f->net.dir);
    assert_int_equal(ctl(f, "backup --to '%s'", dir), 0);
    assert_non_null(strstr(f->out, "copied and verified, checkpoints signed"));
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(file, sizeof file, "%s/data.mdb", dir);
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(ctl(f, "journal verify --journal '%s'", dir), 0);
    assert_int_equal(ctl(f, "journal list --journal '%s' --kind RECEIVED --format json", dir), 0);
    assert_int_equal(count_lines(f->out), 4);
    assert_int_equal(ctl(f, "backup --to '%s'", dir), 1); /* not empty */
    assert_non_null(strstr(f->err, "not empty"));
    assert_int_equal(ctl(f, "backup --to '%s/no/such/parent'", f->net.dir), 1);
    assert_int_equal(ctl(f, "backup"), 2);
}

/* export: the rows of journal list; with payloads, recorded first. */
static void
test_export(void **state)
{
    fx_t *f = *state;
    static char list[OUT_MAX];
    assert_int_equal(ctl(f, "journal list --format json --kind RECEIVED"), 0);
    snprintf(list, sizeof list, "%s", f->out);
    assert_int_equal(ctl(f, "export --kind RECEIVED"), 0); /* JSON Lines by default */
    assert_string_equal(f->out, list);
    assert_null(strstr(f->out, "\"message\""));
    assert_int_equal(ctl(f, "export --kind RECEIVED --format jsonl"), 0);
    assert_string_equal(f->out, list);
    assert_int_equal(ctl(f, "export --with-payloads --kind RECEIVED"), 2); /* no reason */
    assert_int_equal(ctl(f, "export --reason x --kind RECEIVED"), 2);
    assert_int_equal(ctl(f, "export --with-payloads --kind RECEIVED --from departement "
                            "--reason 'study 2026-3'"),
                     0);
    assert_int_equal(count_lines(f->out), 3);
    assert_int_equal(count_of(f->out, ",\"message\":{\"messageId\":"), 3);
    assert_non_null(strstr(f->err, "this export is journaled as ADMIN record"));
    assert_int_equal(ctl(f, "export --with-payloads --message-id ori-1 --format csv --reason r-1"),
                     0);
    assert_non_null(strstr(f->out, ",reason,message\n"));
    assert_int_equal(ctl(f, "journal list --kind ADMIN --format json"), 0);
    assert_non_null(strstr(f->out, "personal-data read: export --with-payloads --kind RECEIVED "
                                   "--from departement; operator: test-dpo; reason: study 2026-3"));
}

/* With no broker to record the read, nothing of the message is shown. */
static void
test_show_refused_unrecorded(void **state)
{
    fx_t *f = *state;
    assert_int_equal(td_broker_stop(&f->net), 0);
    int rc = ctl(f, "journal show ori-1 --reason 'DPO request 8' --format json");
    assert_int_equal(rc, 7);
    assert_non_null(strstr(f->err, "nothing shown: the read could not be recorded"));
    assert_null(strstr(f->out, "messageId"));
    assert_null(strstr(f->out, "person"));
    assert_string_equal(f->out, "");
    rc = ctl(f, "export --with-payloads --kind RECEIVED --reason 'DPO request 8'");
    assert_int_equal(rc, 7);
    assert_string_equal(f->out, "");
    rc = ctl(f, "person --nir 285057800608441 --reason 'DPO request 8' --format json");
    assert_int_equal(td_broker_start(&f->net), 0);
    assert_int_equal(rc, 7);
    assert_non_null(strstr(f->err, "nothing shown: the read could not be recorded"));
    assert_string_equal(f->out, "");
}

/* The person report: every flow of the samples' NIR (three messages, five flows),
 * nothing of another NIR; the NIR itself is in no output and no journal record. */
static void
test_person_report(void **state)
{
    fx_t *f = *state;
    assert_int_equal(ctl(f, "person --nir 285057800608441"), 2);            /* no reason */
    assert_int_equal(ctl(f, "person --nir 285057800608442 --reason r"), 2); /* bad key */
    assert_null(strstr(f->err, "28505780060844"));
    assert_int_equal(ctl(f, "person --nir 285057800608441 --reason 'art. 15 request 3' "
                            "--format json"),
                     0);
    assert_int_equal(count_lines(f->out), 5);
    assert_int_equal(count_of(f->out, "\"status\":\"acknowledged\""), 4);
    assert_non_null(strstr(f->out, "\"sender\":\"departement\",\"recipient\":\"msa\","
                                   "\"type\":\"sanction\",\"message_id\":\"san-msa-1\""));
    assert_non_null(strstr(f->out, "\"status\":\"pending\""));
    assert_null(strstr(f->out, "28505780060844"));
    /* The same from standard input, as a page for the DPO. */
    char in[4400];
    snprintf(in, sizeof in, "%s/nir.txt", f->net.dir);
    assert_int_equal(tu_write_file(in, "2 85 05 78 006 084 41\n", 22), 0);
    assert_int_equal(ctl(f, "person --nir - --reason 'art. 15 request 3' --format html < '%s'", in),
                     0);
    assert_non_null(strstr(f->out, "<!DOCTYPE html>"));
    assert_int_equal(count_of(f->out, "<tr><td>"), 5);
    assert_null(strstr(f->out, "<script"));
    assert_int_equal(ctl(f, "person --nir 185057800608491 --reason 'art. 15 request 4' "
                            "--format json"),
                     0);
    assert_string_equal(f->out, "");
    assert_int_equal(ctl(f, "journal list --kind ADMIN --format json"), 0);
    assert_int_equal(count_of(f->out, "person report, person index key "), 3);
    assert_non_null(strstr(f->out, "reason: art. 15 request 4"));
    assert_null(strstr(f->out, "28505780060844"));
    assert_null(strstr(f->out, "18505780060849"));
}

/* receive keeps each envelope in a folder before acknowledging it; --no-ack leaves it
 * to be delivered again, --refuse dead-letters it; requeue brings it back, all in trace. */
static void
test_receive_modes(void **state)
{
    fx_t *f = *state;
    char dir[4400], path[4500];
    snprintf(dir, sizeof dir, "%s/inbox", f->net.dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(ctl(f, "receive --as msa --to '%s' --count 1 --wait 5", dir), 0);
    assert_non_null(strstr(f->out, "msa: 1 messages received and acknowledged"));
    assert_int_equal(ctl(f, "journal list --message-id san-msa-1 --to msa --kind RECEIVED "
                            "--format tsv"),
                     0);
    char *tab = strchr(f->out, '\n'); /* the header */
    assert_non_null(tab);
    snprintf(path, sizeof path, "%s/%lu.json", dir, strtoul(tab + 1, NULL, 10));
    uint8_t *text;
    size_t len;
    assert_int_equal(tu_read_file(path, &text, &len), 0);
    assert_non_null(strstr((char *)text, "\"messageId\":\"san-msa-1\""));
    free(text);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* ori-1 was replayed to caf (test_admin_exit_codes): not acknowledged, then refused. */
    assert_int_equal(ctl(f, "receive --as caf --no-ack --count 1 --wait 5"), 0);
    assert_non_null(strstr(f->out, "caf: 1 messages received, none acknowledged"));
    /* The closed connection left it in flight: it comes again after the ack timeout. */
    assert_int_equal(ctl(f, "receive --as caf --refuse 'cannot map it' --count 1 --wait 4"), 0);
    assert_non_null(strstr(f->out, "(redelivery)"));
    assert_int_equal(ctl(f, "deadletters list --to caf --format csv"), 0);
    assert_non_null(strstr(f->out, ",orientation,ori-1,departement,"));
    assert_int_equal(ctl(f, "deadletters requeue --to caf --all --reason 'mapping fixed'"), 0);
    assert_non_null(strstr(f->out, "requeued 1 dead letters of caf"));
    assert_int_equal(ctl(f, "trace ori-1 --sender departement --format json"), 0);
    assert_non_null(strstr(f->out, "\"event\":\"DEAD_LETTERED\""));
    assert_non_null(strstr(f->out, "not yet acknowledged by caf"));
    assert_int_equal(ctl(f, "receive --as caf --refuse x --no-ack"), 2);
}

/* The second column (the seq) of the first data line of deadletters list's tsv. */
static unsigned long
first_seq(const char *tsv)
{
    const char *nl = strchr(tsv, '\n'), *tab = nl ? strchr(nl, '\t') : NULL;
    return tab ? strtoul(tab + 1, NULL, 10) : 0;
}

/* deadletters drop: through the broker, reason required, journaled with the seqs;
 * the dropped letter leaves the queue for good (requeue cannot find it), trace shows
 * it, and the journal's state databases still verify. */
static void
test_deadletters_drop(void **state)
{
    fx_t *f = *state;
    /* ori-1, requeued to caf by test_receive_modes, refused again: a dead letter. */
    assert_int_equal(ctl(f, "receive --as caf --refuse 'still wrong' --count 1 --wait 5"), 0);
    assert_int_equal(ctl(f, "deadletters list --to caf --format tsv"), 0);
    unsigned long seq = first_seq(f->out);
    assert_true(seq > 0);
    assert_int_equal(ctl(f, "deadletters drop --to caf --seq %lu", seq), 2); /* no reason */
    assert_non_null(strstr(f->err, "--reason TEXT is required"));
    assert_int_equal(ctl(f, "deadletters drop --to caf --reason r"), 2); /* no --seq/--all */
    assert_int_equal(ctl(f, "deadletters drop --to caf --seq 99999 --reason 'ticket 9'"), 3);
    assert_non_null(strstr(f->err, "nothing dropped: no such dead letter of caf"));
    assert_int_equal(ctl(f, "deadletters drop --to nobody --all --reason 'ticket 9'"), 4);
    assert_int_equal(ctl(f, "deadletters drop --seq %lu --reason 'ticket 9'", seq), 0);
    assert_non_null(strstr(f->out, "dropped 1 dead letters of any recipient for good"));
    char want[200];
    snprintf(want, sizeof want,
             "dropped 1 dead letters of every recipient; reason: ticket 9; seqs (part 1): %lu\"",
             seq);
    assert_int_equal(ctl(f, "journal list --kind ADMIN --format json"), 0);
    assert_non_null(strstr(f->out, want));
    assert_int_equal(ctl(f, "journal list --kind dropped --to caf --format json"), 0);
    assert_int_equal(count_lines(f->out), 1);
    assert_non_null(strstr(f->out, "\"recipient\":\"caf\",\"type\":\"orientation\","
                                   "\"message_id\":\"ori-1\""));
    /* Gone for good: neither listed nor requeued; dropping it again matches nothing. */
    assert_int_equal(ctl(f, "deadletters list --to caf --format csv"), 0);
    assert_null(strstr(f->out, "ori-1"));
    assert_int_equal(ctl(f, "deadletters requeue --to caf --seq %lu --reason 'ticket 9'", seq), 3);
    assert_int_equal(ctl(f, "deadletters drop --to caf --all --reason 'ticket 9'"), 3);
    assert_int_equal(ctl(f, "trace ori-1 --sender departement --format json"), 0);
    assert_non_null(strstr(f->out, "\"event\":\"DROPPED\""));
    assert_non_null(strstr(f->out, "\"detail\":\"dropped by admin:test-admin: ticket 9\"}"));
    assert_null(strstr(f->out, "not yet acknowledged by caf"));
    /* The state databases agree with the records (a DROPPED record ends the entry). */
    assert_int_equal(ctl(f, "journal verify"), 0);
}

/* A JSON number after "key": in s (0 when absent). */
static double
json_num(const char *s, const char *key)
{
    char k[80];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(s, k);
    return p ? strtod(p + strlen(k), NULL) : 0;
}

/* stats: rates over the broker's window, the journal's used, free and reclaimable
 * space; human units in the table (no raw byte count), raw numbers in JSON. */
static void
test_stats(void **state)
{
    fx_t *f = *state;
    client_t *caf;
    td_sample_t s;
    assert_int_equal(td_client_session(&f->net, "caf", 0, &caf), 0);
    td_sample_beneficiary_event(&s, "be-stats-1");
    publish(caf, &s.env, 0);
    client_close(&caf);
    assert_int_equal(ctl(f, "stats --format json"), 0);
    char *nl = strchr(f->out, '\n');
    assert_non_null(nl);
    *nl = '\0'; /* the broker's line */
    double window = json_num(f->out, "rate_window_ms"), in = json_num(f->out, "rate_in_msgs_per_s");
    double used = json_num(f->out, "journal_bytes_used");
    assert_true(window >= 1000 && window <= 61000);
    assert_true(in > 0);
    assert_true(in * window / 1000 < 1000); /* a handful of messages in the window */
    assert_true(json_num(f->out, "journal_file_bytes") >= used);
    assert_non_null(strstr(f->out, "\"journal_bytes_free\":"));
    assert_non_null(strstr(f->out, "\"journal_bytes_reclaimable\":"));
    assert_non_null(strstr(nl + 1, "\"partner\":\"caf\""));
    char raw[32];
    snprintf(raw, sizeof raw, "%.0f", used);
    assert_int_equal(ctl(f, "stats"), 0);
    assert_non_null(strstr(f->out, "rates over the last "));
    assert_non_null(strstr(f->out, " msgs/s, out "));
    assert_non_null(strstr(f->out, "iB used of "));
    assert_non_null(strstr(f->out, "reclaimable by ptibusctl compact"));
    assert_null(strstr(f->out, raw)); /* never raw bytes in the table */
    assert_non_null(strstr(f->out, "oldest_age"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_filters),
        cmocka_unit_test(test_list_formats_and_errors),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_trace),
        cmocka_unit_test(test_show_is_journaled),
        cmocka_unit_test(test_export),
        cmocka_unit_test(test_backup),
        cmocka_unit_test(test_show_refused_unrecorded),
        cmocka_unit_test(test_person_report),
        cmocka_unit_test(test_report),
        cmocka_unit_test(test_replay_by_filter),
        cmocka_unit_test(test_admin_exit_codes),
        cmocka_unit_test(test_receive_modes),
        cmocka_unit_test(test_deadletters_drop),
        cmocka_unit_test(test_stats),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
