/* Integration tests of `ptibusctl partner add` against a real ptibusd: a good key is
 * installed and its fragment, added to broker.yaml and reloaded (SIGHUP), lets the new
 * partner connect; a secret key file, a bad id and a different key already installed
 * (without --replace) are refused and nothing is written; the rotation of a partner's
 * key (--replace, reload) keeps its queue: the partner connecting with the new key gets
 * the messages queued for it, the old key is refused. And the rotation of the journal's
 * signing key: checkpoints signed by key A, then after a restart by key B, verify with
 * both public keys (journal verify --pubkey twice, saying which key signed which
 * checkpoints) and not with B alone (naming the first checkpoint A signed). */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "codec.h"
#include "daemon.h"
#include "samples.h"
#include "testutil.h"

#define TIMEOUT_MS 5000
#define REFUSED_MS 1500 /* how long a client refused by ZAP waits for its Welcome */

typedef struct fixture {
    td_net_t net;
} fixture_t;

static int
setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    td_net_init(&f->net, "ctlpartner", NULL);
    if (td_broker_start(&f->net) != 0)
        return -1;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture_t *f = *state;
    td_net_fini(&f->net);
    free(f);
    return 0;
}

/* Runs ptibusctl with args formatted (shell-quoted by the caller); returns its exit
 * code and fills out with its stdout and stderr. */
static int
ctl(char *out, size_t cap, const char *fmt, ...)
{
    char args[8192], cmd[8400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", PT_PTIBUSCTL_PATH, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
path_in(const fixture_t *f, char *buf, size_t cap, const char *rel)
{
    snprintf(buf, cap, "%s/%s", f->net.dir, rel);
}

static bool
exists(const fixture_t *f, const char *rel)
{
    char p[4300];
    struct stat st;
    path_in(f, p, sizeof p, rel);
    return stat(p, &st) == 0;
}

/* Copies a file of the test folder (the copy 0600, as tu_write_file writes). */
static void
copy_in(const fixture_t *f, const char *from, const char *to)
{
    char a[4300], b[4300];
    uint8_t *text;
    size_t len;
    path_in(f, a, sizeof a, from);
    path_in(f, b, sizeof b, to);
    assert_int_equal(tu_read_file(a, &text, &len), 0);
    assert_int_equal(tu_write_file(b, text, len), 0);
    free(text);
}

/* broker.yaml with the fragment file inserted at the end of the partners list. */
static void
add_fragment(fixture_t *f, const char *fragment_rel)
{
    char p[4300];
    uint8_t *text, *frag;
    size_t len, flen;
    path_in(f, p, sizeof p, fragment_rel);
    assert_int_equal(tu_read_file(p, &frag, &flen), 0);
    assert_int_equal(tu_read_file(f->net.config, &text, &len), 0);
    char *out = calloc(1, len + flen + 1);
    assert_non_null(out);
    const char *routes = strstr((char *)text, "\nroutes:");
    assert_non_null(routes);
    size_t head = (size_t)(routes - (char *)text) + 1;
    memcpy(out, text, head);
    memcpy(out + head, frag, flen);
    memcpy(out + head + flen, text + head, len - head);
    assert_int_equal(tu_write_file(f->net.config, out, len + flen), 0);
    free(out);
    free(frag);
    free(text);
}

/* SIGHUP, then waits for the log line that says how the reload ended. */
static void
reload(fixture_t *f, const char *expect_in_log)
{
    assert_int_equal(kill(f->net.pid, SIGHUP), 0);
    for (int i = 0; i < 100 && !td_log_contains(&f->net, expect_in_log); i++)
        usleep(50 * 1000);
    if (!td_log_contains(&f->net, expect_in_log))
        fail_msg("no \"%s\" in the broker's log after SIGHUP", expect_in_log);
}

/* Whether the key pair keys/<keyname>.{key,pub} gets a Welcome naming partner. */
static bool
welcomed(fixture_t *f, const char *keyname, const char *partner)
{
    client_t *c = NULL;
    assert_int_equal(td_client_open(&f->net, keyname, true, &c), 0);
    char who[64];
    pt_error_t err;
    bool ok = client_hello(c, REFUSED_MS, who, sizeof who, &err) == 0;
    if (ok)
        assert_string_equal(who, partner);
    client_close(&c);
    return ok;
}

/* Checks, installs, and the fragment reloaded lets the new partner connect. */
static void
test_add_then_reload_connects(void **state)
{
    fixture_t *f = *state;
    char out[8192];
    /* The partner's public key as it arrived (its pair stays in keys/ for the client). */
    char dir[4300];
    copy_in(f, "keys/intruder.pub", "incoming.pub");
    path_in(f, dir, sizeof dir, "incoming.pub");
    assert_int_equal(chmod(dir, 0644), 0);
    assert_false(welcomed(f, "intruder", "intruder"));
    assert_int_equal(ctl(out, sizeof out,
                         "partner add intruder --public-key '%s/incoming.pub' --may-send "
                         "beneficiary_event --keys-dir '%s/installed' --to '%s/frag.yaml'",
                         f->net.dir, f->net.dir, f->net.dir),
                     1); /* no such folder yet */
    path_in(f, dir, sizeof dir, "installed");
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(ctl(out, sizeof out,
                         "partner add intruder --public-key '%s/incoming.pub' --may-send "
                         "beneficiary_event --keys-dir '%s' --to '%s/frag.yaml'",
                         f->net.dir, dir, f->net.dir),
                     0);
    assert_non_null(strstr(out, "key fingerprint"));
    assert_true(exists(f, "installed/intruder.pub"));
    uint8_t *frag;
    size_t flen;
    path_in(f, dir, sizeof dir, "frag.yaml");
    assert_int_equal(tu_read_file(dir, &frag, &flen), 0);
    assert_non_null(strstr((char *)frag, "ptibusd --check-config"));
    assert_non_null(strstr((char *)frag, "systemctl reload ptibusd"));
    assert_non_null(strstr((char *)frag, "  - id: intruder\n"));
    free(frag);
    add_fragment(f, "frag.yaml");
    reload(f, "configuration reloaded: 7 partners (were 6)");
    assert_true(welcomed(f, "intruder", "intruder"));
}

/* What must not be installed is refused, and nothing is written. */
static void
test_refusals(void **state)
{
    fixture_t *f = *state;
    char out[8192], dir[4300];
    path_in(f, dir, sizeof dir, "installed");
    assert_int_equal(mkdir(dir, 0755), 0);
    /* A secret key file, by its name, or by its mode when renamed .pub. */
    assert_int_equal(ctl(out, sizeof out,
                         "partner add caf --public-key '%s/keys/caf.key' "
                         "--keys-dir '%s'",
                         f->net.dir, dir),
                     4);
    assert_non_null(strstr(out, "secret key"));
    copy_in(f, "keys/caf.key", "renamed.pub");
    assert_int_equal(ctl(out, sizeof out,
                         "partner add caf --public-key '%s/renamed.pub' --keys-dir '%s'",
                         f->net.dir, dir),
                     4);
    assert_non_null(strstr(out, "secret key"));
    assert_false(exists(f, "installed/caf.pub"));
    /* A bad id, a bad type. */
    assert_int_equal(ctl(out, sizeof out,
                         "partner add 'Caf-2' --public-key '%s/keys/caf.pub' --keys-dir '%s'",
                         f->net.dir, dir),
                     2);
    assert_non_null(strstr(out, "not a valid partner id"));
    assert_int_equal(ctl(out, sizeof out,
                         "partner add caf2 --public-key '%s/keys/caf.pub' --keys-dir '%s' "
                         "--subscribe no_such_type",
                         f->net.dir, dir),
                     2);
    assert_non_null(strstr(out, "is not a message type"));
    assert_false(exists(f, "installed/caf2.pub"));
    /* Not a key at all. */
    assert_int_equal(ctl(out, sizeof out, "partner add caf2 --public-key '%s' --keys-dir '%s'",
                         f->net.config, dir),
                     1);
    /* A different key already installed under this id: kept without --replace. */
    assert_int_equal(ctl(out, sizeof out,
                         "partner add caf --public-key '%s/keys/caf.pub' --keys-dir '%s'",
                         f->net.dir, dir),
                     0);
    assert_int_equal(ctl(out, sizeof out,
                         "partner add caf --public-key '%s/keys/msa.pub' --keys-dir '%s'",
                         f->net.dir, dir),
                     4);
    assert_non_null(strstr(out, "--replace"));
    uint8_t *a, *b;
    size_t la, lb;
    char p[4400];
    snprintf(p, sizeof p, "%s/caf.pub", dir);
    assert_int_equal(tu_read_file(p, &a, &la), 0);
    snprintf(p, sizeof p, "%s/keys/caf.pub", f->net.dir);
    assert_int_equal(tu_read_file(p, &b, &lb), 0);
    assert_true(la == lb && memcmp(a, b, la) == 0);
    free(a);
    free(b);
}

/* Waits for the Deliver of message_id on c and acknowledges it. */
static void
expect_delivery(client_t *c, const char *message_id)
{
    int64_t until = tu_now_ms() + TIMEOUT_MS;
    pt_error_t err;
    while (tu_now_ms() < until) {
        Ptibus__V1__Frame *fr = NULL;
        if (client_recv(c, 200, &fr, &err) != 0 || fr == NULL)
            continue;
        bool found = fr->kind_case == PTIBUS__V1__FRAME__KIND_DELIVER &&
                     strcmp(fr->deliver->message_id, message_id) == 0;
        if (found)
            assert_int_equal(client_deliver_ack(c, fr->deliver->seq, true, NULL, &err), 0);
        codec_free((ProtobufCMessage **)&fr);
        if (found)
            return;
    }
    fail_msg("no delivery of %s", message_id);
}

/* Rotation: caf's messages are queued while it is away; its new key installed with
 * --replace and reloaded, caf connecting with the new key gets them; the old is refused. */
static void
test_rotation_keeps_queue(void **state)
{
    fixture_t *f = *state;
    char out[8192], site[4300], keys[4300];
    client_t *region = NULL;
    assert_int_equal(td_client_session(&f->net, "region", 16, &region), 0);
    td_sample_t s;
    td_sample_training_offer(&s, "rot-offer-1");
    client_result_t res;
    pt_error_t err;
    assert_int_equal(client_publish(region, &s.env, TIMEOUT_MS, &res, &err), 0);
    assert_int_equal(res.nack_code, 0);
    client_close(&region);
    /* The old pair kept as caf_old (for the client), caf's new pair made at its site. */
    copy_in(f, "keys/caf.key", "keys/caf_old.key");
    copy_in(f, "keys/caf.pub", "keys/caf_old.pub");
    path_in(f, site, sizeof site, "site");
    path_in(f, keys, sizeof keys, "keys");
    assert_int_equal(mkdir(site, 0700), 0);
    assert_int_equal(ctl(out, sizeof out, "keygen --dir '%s' caf", site), 0);
    assert_int_equal(ctl(out, sizeof out,
                         "partner add caf --public-key '%s/caf.pub' "
                         "--keys-dir '%s'",
                         site, keys),
                     4);
    assert_int_equal(ctl(out, sizeof out,
                         "partner add caf --public-key '%s/caf.pub' --keys-dir '%s' --replace",
                         site, keys),
                     0);
    assert_non_null(strstr(out, "replaced"));
    copy_in(f, "site/caf.key", "keys/caf.key"); /* the client side of caf's new pair */
    reload(f, "configuration reloaded: 6 partners (were 6)");
    assert_false(welcomed(f, "caf_old", "caf"));
    client_t *caf = NULL;
    assert_int_equal(td_client_session(&f->net, "caf", 16, &caf), 0);
    expect_delivery(caf, "rot-offer-1");
    client_close(&caf);
    assert_int_equal(td_broker_stop(&f->net), 0);
}

/* Publishes one training offer as region. */
static void
publish_offer(fixture_t *f, const char *id)
{
    client_t *region = NULL;
    assert_int_equal(td_client_session(&f->net, "region", 16, &region), 0);
    td_sample_t s;
    td_sample_training_offer(&s, id);
    client_result_t res;
    pt_error_t err;
    assert_int_equal(client_publish(region, &s.env, TIMEOUT_MS, &res, &err), 0);
    assert_int_equal(res.nack_code, 0);
    client_close(&region);
}

/* broker.yaml with its signing key replaced by keys/<name>.sign, and (retired not NULL)
 * the retired key's public half listed in keys.previous_signing_public. */
static void
use_signing_key(fixture_t *f, const char *name, const char *retired)
{
    uint8_t *text;
    size_t len;
    char key[256];
    td_net_configure(&f->net, NULL);
    assert_int_equal(tu_read_file(f->net.config, &text, &len), 0);
    char *at = strstr((char *)text, "signing_secret: keys/journal.sign\n");
    assert_non_null(at);
    int n = snprintf(key, sizeof key, "signing_secret: keys/%s.sign\n", name);
    if (retired != NULL)
        snprintf(key + n, sizeof key - (size_t)n, "  previous_signing_public: [keys/%s.sign.pub]\n",
                 retired);
    char *out = calloc(1, len + sizeof key);
    assert_non_null(out);
    memcpy(out, text, (size_t)(at - (char *)text));
    strcat(out, key);
    strcat(out, at + strlen("signing_secret: keys/journal.sign\n"));
    assert_int_equal(tu_write_file(f->net.config, out, strlen(out)), 0);
    free(out);
    free(text);
}

static void
test_signing_key_rotation(void **state)
{
    fixture_t *f = *state;
    char out[8192], keys[4300];
    path_in(f, keys, sizeof keys, "keys");
    publish_offer(f, "sk-offer-1");
    assert_int_equal(td_broker_stop(&f->net), 0);
    /* The rotation: a new signing key, broker.yaml pointed at it, the old .pub kept. */
    assert_int_equal(ctl(out, sizeof out, "keygen --dir '%s' --kind sign journal_b", keys), 0);
    /* Without the old public key listed, the broker refuses to resume the journal (its
     * last checkpoint does not verify with the new key); with it, it resumes. */
    use_signing_key(f, "journal_b", NULL);
    assert_int_not_equal(td_broker_start(&f->net), 0);
    assert_true(td_log_contains(&f->net, "bad signature"));
    use_signing_key(f, "journal_b", "journal");
    assert_int_equal(td_broker_start(&f->net), 0);
    publish_offer(f, "sk-offer-2");
    assert_int_equal(td_broker_stop(&f->net), 0);

    assert_int_equal(ctl(out, sizeof out,
                         "journal verify --journal '%s' --pubkey '%s/journal.sign.pub' "
                         "--pubkey '%s/journal_b.sign.pub'",
                         f->net.journal_dir, keys, keys),
                     0);
    /* Two ranges, A's first: "signed by key FP (FILE): checkpoints at seq X..Y (N)". */
    char *a = strstr(out, "signed by key ");
    assert_non_null(a);
    char *b = strstr(a + 1, "signed by key ");
    assert_non_null(b);
    assert_null(strstr(b + 1, "signed by key "));
    assert_non_null(strstr(a, "journal.sign.pub): checkpoints at seq "));
    assert_non_null(strstr(b, "journal_b.sign.pub): checkpoints at seq "));
    unsigned long long first_a = 0;
    assert_int_equal(sscanf(strstr(a, "at seq ") + 7, "%llu", &first_a), 1);
    assert_non_null(strstr(out, "intact"));

    assert_int_equal(ctl(out, sizeof out,
                         "journal verify --journal '%s' --pubkey '%s/journal_b.sign.pub'",
                         f->net.journal_dir, keys),
                     6);
    char expect[128];
    snprintf(expect, sizeof expect, "FAILED at record %llu: checkpoint %llu: ", first_a, first_a);
    if (strstr(out, expect) == NULL)
        fail_msg("no \"%s\" in:\n%s", expect, out);
    /* A alone fails too: B's checkpoints do not verify with it. */
    assert_int_equal(ctl(out, sizeof out,
                         "journal verify --journal '%s' --pubkey '%s/journal.sign.pub'",
                         f->net.journal_dir, keys),
                     6);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_then_reload_connects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_keeps_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signing_key_rotation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
