/* Unit tests of broker/bconfig: the annotated deploy/broker.yaml loads (with key
 * files generated into a temporary copy), defaults, look-ups, and every rejection
 * with its file, line and key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "bconfig.h"
#include "keys.h"
#include "testutil.h"

#define KEY_A "R2zk+4+4q[+FV7XsIsJ03n3]-iB^o!+kkpc08I/u"
#define KEY_B "l(QeH<[Slbz]s9}+WTWTup8WHRYSew.9@6W3g)f("
#define KEY_C "fxx8aYC$%5FRx?WfFBUcph#pAH6xN}+${Z)jW=4*"

/* Lines 1-6 of every case. */
#define HEAD                                                                                       \
    "journal:\n"                                                                                   \
    "  dir: j\n"                                                                                   \
    "keys:\n"                                                                                      \
    "  server_secret: k/s.key\n"                                                                   \
    "  signing_secret: /etc/ptibus/s.sign\n"                                                       \
    "  person_index_hmac: k/p.hmac\n"

/* Lines 7-13. */
#define PARTNERS                                                                                   \
    "partners:\n"                                                                                  \
    "  - id: caf\n"                                                                                \
    "    public_key: \"" KEY_A "\"\n"                                                              \
    "    may_send: [beneficiary_event]\n"                                                          \
    "  - id: departement\n"                                                                        \
    "    public_key: \"" KEY_B "\"\n"                                                              \
    "    may_send: [orientation, sanction]\n"

static bconfig_t *
load_ok(const char *text, const char *name)
{
    bconfig_t *cfg = NULL;
    pt_error_t err;
    if (bconfig_load_buffer(text, strlen(text), name, &cfg, &err) != 0)
        fail_msg("load failed: %s", err.msg);
    return cfg;
}

static void
test_retention(void **state)
{
    (void)state;
    bconfig_t *cfg = load_ok(HEAD PARTNERS "retention:\n"
                                           "  audit: 1825d\n"
                                           "  payloads:\n"
                                           "    sanction: 730d\n"
                                           "    training_offer: 2s\n"
                                           "    default: 365d\n",
                             "/srv/ptibus/b.yaml");
    assert_int_equal(cfg->audit_retention_ms, 1825ULL * 86400000);
    assert_int_equal(cfg->n_retention, 3);
    assert_string_equal(cfg->retention[0].msg_type, "sanction");
    assert_int_equal(cfg->retention[0].keep_ms, 730ULL * 86400000);
    assert_string_equal(cfg->retention[1].msg_type, "training_offer");
    assert_int_equal(cfg->retention[1].keep_ms, 2000);
    assert_null(cfg->retention[2].msg_type);
    assert_int_equal(cfg->retention[2].keep_ms, 365ULL * 86400000);
    bconfig_destroy(&cfg);
    cfg = load_ok(HEAD PARTNERS "retention:\n  payloads:\n    default: forever\n", "b.yaml");
    assert_int_equal(cfg->retention[0].keep_ms, 0);
    assert_int_equal(cfg->audit_retention_ms, 0);
    bconfig_destroy(&cfg);
    cfg = load_ok(HEAD PARTNERS, "/srv/ptibus/b.yaml");
    assert_int_equal(cfg->n_retention, 0); /* no policy: everything kept */
    assert_int_equal(cfg->audit_retention_ms, 0);
    bconfig_destroy(&cfg);
}

static void
test_minimal_and_defaults(void **state)
{
    (void)state;
    bconfig_t *cfg = load_ok(HEAD PARTNERS, "/srv/ptibus/b.yaml");
    assert_string_equal(cfg->path, "/srv/ptibus/b.yaml");
    assert_string_equal(cfg->listen, "tcp://127.0.0.1:7400");
    assert_null(cfg->admin_listen);
    assert_null(cfg->metrics_listen);
    assert_string_equal(cfg->journal_dir, "/srv/ptibus/j");
    assert_string_equal(cfg->server_secret_key_file, "/srv/ptibus/k/s.key");
    assert_string_equal(cfg->signing_key_file, "/etc/ptibus/s.sign");
    assert_string_equal(cfg->hmac_key_file, "/srv/ptibus/k/p.hmac");
    assert_int_equal(cfg->journal_map_initial, 64 << 20);
    assert_int_equal(cfg->journal_map_max, 16ULL << 30);
    assert_int_equal(cfg->checkpoint_interval_ms, 60000);
    assert_int_equal(cfg->max_message_size, 262144);
    assert_int_equal(cfg->heartbeat_interval_ms, 5000);
    assert_int_equal(cfg->ack_timeout_ms, 30000);
    assert_int_equal(cfg->max_attempts, 10);
    assert_int_equal(cfg->max_batch, 1024);
    assert_false(cfg->unsafe_ack_before_fsync);
    assert_false(cfg->journal_wait_for_lock);
    assert_int_equal(cfg->n_admin_keys, 0);
    assert_int_equal(cfg->n_partners, 2);
    const bconfig_partner_t *caf = bconfig_partner_by_id(cfg, "caf");
    assert_non_null(caf);
    assert_string_equal(caf->name, "caf"); /* the name defaults to the id */
    assert_true(bconfig_may_send(caf, "beneficiary_event"));
    assert_false(bconfig_may_send(caf, "sanction"));
    uint8_t key[32];
    pt_error_t err;
    assert_int_equal(keys_curve_public_from_z85(KEY_B, key, &err), 0);
    assert_ptr_equal(bconfig_partner_by_key(cfg, key), bconfig_partner_by_id(cfg, "departement"));
    assert_int_equal(keys_curve_public_from_z85(KEY_C, key, &err), 0);
    assert_null(bconfig_partner_by_key(cfg, key));
    assert_null(bconfig_partner_by_id(cfg, "msa"));
    bconfig_destroy(&cfg);
    assert_null(cfg);
    bconfig_destroy(&cfg);
}

/* keys.previous_signing_public: retired signing keys' public files, resolved; at most 8;
 * absent by default. */
static void
test_previous_signing_keys(void **state)
{
    (void)state;
    bconfig_t *cfg = load_ok(HEAD PARTNERS, "/srv/ptibus/b.yaml");
    assert_int_equal(cfg->n_prev_sign_pub, 0);
    bconfig_destroy(&cfg);
    cfg = load_ok(
        HEAD "  previous_signing_public: [k/old.sign.pub, /etc/ptibus/older.sign.pub]\n" PARTNERS,
        "/srv/ptibus/b.yaml");
    assert_int_equal(cfg->n_prev_sign_pub, 2);
    assert_string_equal(cfg->prev_sign_pub_files[0], "/srv/ptibus/k/old.sign.pub");
    assert_string_equal(cfg->prev_sign_pub_files[1], "/etc/ptibus/older.sign.pub");
    bconfig_destroy(&cfg);
    const char *nine = HEAD "  previous_signing_public: [a, b, c, d, e, f, g, h, i]\n" PARTNERS;
    pt_error_t err;
    assert_int_equal(bconfig_load_buffer(nine, strlen(nine), "b.yaml", &cfg, &err), PT_ECONFIG);
    assert_non_null(strstr(err.msg, "b.yaml:7: keys.previous_signing_public: more than 8 keys"));
    assert_null(cfg);
}

static void
test_all_keys_set(void **state)
{
    (void)state;
    bconfig_t *cfg = load_ok("listen: ipc:///tmp/p.sock\n"
                             "admin:\n"
                             "  listen: tcp://127.0.0.1:7401\n"
                             "  keys: [\"" KEY_C "\"]\n"
                             "metrics: {listen: \"[::1]:9400\"}\n"
                             "journal:\n"
                             "  dir: /var/lib/j\n"
                             "  initial_size: 1GiB\n"
                             "  max_size: 2GiB\n"
                             "  checkpoint_interval: 2min\n"
                             "  unsafe_ack_before_fsync: true\n"
                             "  wait_for_lock: true\n"
                             "keys: {server_secret: a, signing_secret: b, person_index_hmac: c}\n"
                             "limits: {max_message_size: 1MiB, max_batch: 10, "
                             "heartbeat_interval: 500ms}\n"
                             "delivery: {ack_timeout: 2s, max_attempts: 4, backoff_initial: 50ms, "
                             "backoff_max: 1min}\n" PARTNERS,
                             "b.yaml");
    assert_string_equal(cfg->listen, "ipc:///tmp/p.sock");
    assert_string_equal(cfg->admin_listen, "tcp://127.0.0.1:7401");
    assert_string_equal(cfg->metrics_listen, "[::1]:9400");
    assert_int_equal(cfg->journal_map_initial, 1ULL << 30);
    assert_int_equal(cfg->journal_map_max, 2ULL << 30);
    assert_int_equal(cfg->checkpoint_interval_ms, 120000);
    assert_true(cfg->unsafe_ack_before_fsync);
    assert_true(cfg->journal_wait_for_lock);
    assert_string_equal(cfg->server_secret_key_file, "./a");
    assert_int_equal(cfg->max_message_size, 1 << 20);
    assert_int_equal(cfg->max_batch, 10);
    assert_int_equal(cfg->heartbeat_interval_ms, 500);
    assert_int_equal(cfg->ack_timeout_ms, 2000);
    assert_int_equal(cfg->max_attempts, 4);
    assert_int_equal(cfg->backoff_initial_ms, 50);
    assert_int_equal(cfg->backoff_max_ms, 60000);
    assert_int_equal(cfg->n_admin_keys, 1);
    uint8_t key[32];
    pt_error_t err;
    assert_int_equal(keys_curve_public_from_z85(KEY_C, key, &err), 0);
    assert_memory_equal(cfg->admin_keys[0], key, 32);
    /* The deprecated inline form: named by the key's whole BLAKE2b-256. */
    assert_int_equal(strlen(cfg->admin_names[0]), 64);
    bconfig_destroy(&cfg);
}

/* Named administrators: inline key or key file; ADMIN records use the names; a name
 * given twice is refused; a renamed administrator needs a restart, like a new key. */
static void
test_admin_names(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("bconfig");
    char path[4096], yaml[8192];
    pt_error_t err;
    assert_int_equal(keys_curve_generate(dir, "dpo", &err), 0);
    snprintf(yaml, sizeof yaml, "%s",
             HEAD PARTNERS "admin:\n  keys:\n    - name: exploitation\n      public_key: \"" KEY_C
                           "\"\n    - {name: dpo@cd55.fr, public_key_file: dpo.pub}\n");
    snprintf(path, sizeof path, "%s/b.yaml", dir);
    bconfig_t *cfg = load_ok(yaml, path);
    assert_int_equal(cfg->n_admin_keys, 2);
    assert_string_equal(cfg->admin_names[0], "exploitation");
    assert_string_equal(cfg->admin_names[1], "dpo@cd55.fr");
    uint8_t pk[32];
    snprintf(path, sizeof path, "%s/dpo.pub", dir);
    assert_int_equal(keys_read(path, pk, sizeof pk, false, &err), 0);
    assert_memory_equal(cfg->admin_keys[1], pk, 32);
    snprintf(yaml, sizeof yaml, "%s",
             HEAD PARTNERS "admin:\n  keys:\n    - {name: ops, public_key: \"" KEY_C "\"}\n"
                           "    - {name: ops, public_key_file: dpo.pub}\n");
    snprintf(path, sizeof path, "%s/b.yaml", dir);
    bconfig_t *bad = NULL;
    assert_int_not_equal(bconfig_load_buffer(yaml, strlen(yaml), path, &bad, &err), 0);
    assert_non_null(strstr(err.msg, "administrator name \"ops\" is given twice (admin.keys[0])"));
    snprintf(yaml, sizeof yaml, "%s",
             HEAD PARTNERS "admin:\n  keys:\n    - {name: operations, public_key: \"" KEY_C
                           "\"}\n    - {name: dpo@cd55.fr, public_key_file: dpo.pub}\n");
    bconfig_t *renamed = load_ok(yaml, path);
    char keys[256];
    bconfig_restart_keys(cfg, renamed, keys, sizeof keys);
    assert_string_equal(keys, "admin.keys");
    bconfig_restart_keys(cfg, cfg, keys, sizeof keys);
    assert_string_equal(keys, "");
    bconfig_destroy(&renamed);
    bconfig_destroy(&cfg);
    tu_rmtree(dir);
}

/* Copies deploy/broker.yaml into a temp dir and generates every key it names. */
static void
test_deploy_example(void **state)
{
    (void)state;
    const char *const *partners = tu_deploy_partners;
    char path[4096], keydir[4000];
    pt_error_t err;
    char *dir = tu_deploy_example("bconfig", path, sizeof path);
    snprintf(keydir, sizeof keydir, "%.3900s/keys", dir);

    bconfig_t *cfg = NULL;
    if (bconfig_load(path, &cfg, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(cfg->n_partners, 7);
    assert_string_equal(cfg->listen, "tcp://127.0.0.1:7400");
    assert_string_equal(cfg->admin_listen, "ipc:///run/ptibus/admin.sock");
    assert_string_equal(cfg->metrics_listen, "127.0.0.1:9400");
    assert_string_equal(cfg->journal_dir, "/var/lib/ptibus/journal");
    assert_int_equal(cfg->n_admin_keys, 1);
    assert_string_equal(cfg->admin_names[0], "exploitation");
    char want[4200];
    snprintf(want, sizeof want, "%s/keys/broker.sign", dir);
    assert_string_equal(cfg->signing_key_file, want);
    for (size_t i = 0; partners[i]; i++) {
        uint8_t pk[32];
        snprintf(want, sizeof want, "%s/%s.pub", keydir, partners[i]);
        assert_int_equal(keys_read(want, pk, sizeof pk, false, &err), 0);
        const bconfig_partner_t *p = bconfig_partner_by_key(cfg, pk);
        assert_non_null(p);
        assert_string_equal(p->id, partners[i]);
    }
    const bconfig_partner_t *d = bconfig_partner_by_id(cfg, "departement");
    assert_true(bconfig_may_send(d, "orientation"));
    assert_true(bconfig_may_send(d, "reorientation_answer"));
    assert_false(bconfig_may_send(d, "training_offer"));
    assert_true(bconfig_may_send(bconfig_partner_by_id(cfg, "region"), "training_offer"));
    assert_true(bconfig_may_send(bconfig_partner_by_id(cfg, "ml_sud"), "reorientation_request"));
    assert_false(bconfig_may_send(bconfig_partner_by_id(cfg, "caf"), "sanction"));
    /* Everyone but the Région subscribes to training offers; routes are checked in
     * test_router. */
    for (size_t i = 0; partners[i]; i++) {
        const bconfig_partner_t *p = bconfig_partner_by_id(cfg, partners[i]);
        assert_int_equal(bconfig_subscribes(p, "training_offer"), strcmp(p->id, "region") != 0);
        assert_false(bconfig_subscribes(p, "sanction"));
    }
    assert_int_equal(cfg->n_routes, 10);
    bconfig_destroy(&cfg);

    /* A missing partner key file is named with the line that refers to it. */
    snprintf(want, sizeof want, "%s/msa.pub", keydir);
    assert_int_equal(remove(want), 0);
    assert_int_not_equal(bconfig_load(path, &cfg, &err), 0);
    assert_null(cfg);
    /* The line is found in the example itself, which may grow. */
    uint8_t *yaml;
    size_t ylen;
    assert_int_equal(tu_read_file(path, &yaml, &ylen), 0);
    const char *at = strstr((char *)yaml, "public_key_file: keys/msa.pub");
    assert_non_null(at);
    unsigned line = 1;
    for (const char *q = (char *)yaml; q < at; q++)
        line += *q == '\n';
    free(yaml);
    snprintf(want, sizeof want, "broker.yaml:%u: partners[3].public_key_file: ", line);
    assert_non_null(strstr(err.msg, want));
    assert_non_null(strstr(err.msg, "keys/msa.pub: cannot open the key file"));
    tu_rmtree(dir);
}

typedef struct reject_case {
    const char *text;
    const char *msg; /* the exact error message */
} reject_case_t;

static const reject_case_t rejects[] = {
    {"", "b.yaml: the configuration is empty"},
    {"- a\n", "b.yaml:1: expected a mapping (key: value), found a list"},
    {"journal:\n  max_size: 1GiB\n", "b.yaml:2: journal.dir: missing required key"},
    {"journal: {dir: j}\n" PARTNERS, "b.yaml:1: keys: missing required key"},
    {HEAD, "b.yaml:1: partners: missing required key"},
    {HEAD "partners: []\n", "b.yaml:7: partners: no partner is configured"},
    {"journal:\n  dir: j\n  max_size: 12 potatoes\n",
     "b.yaml:3: journal.max_size: \"12 potatoes\" is not a size (use 512MiB, 2GiB...)"},
    {"journal:\n  dir: j\n  initial_size: 4GiB\n  max_size: 2GiB\n",
     "b.yaml:3: journal.initial_size: the initial size is larger than max_size"},
    {"journal:\n  dir: j\n  checkpoint_interval: 60\n",
     "b.yaml:3: journal.checkpoint_interval: \"60\" is not a duration (use 500ms, 5s, 2min, 1h)"},
    {"journal:\n  dir: j\n  unsafe_ack_before_fsync: maybe\n",
     "b.yaml:3: journal.unsafe_ack_before_fsync: \"maybe\" is not a boolean (use true or false)"},
    {"journal:\n  dir: j\n  sync: false\n",
     "b.yaml:3: journal.sync: unknown key (expected one of: dir, initial_size, max_size, "
     "checkpoint_interval, unsafe_ack_before_fsync, wait_for_lock)"},
    {"listen: 127.0.0.1:7400\n",
     "b.yaml:1: listen: \"127.0.0.1:7400\" is not a ZeroMQ endpoint (tcp://HOST:PORT, "
     "ipc://PATH)"},
    {HEAD "limits:\n  max_message_size: 32MiB\n",
     "b.yaml:8: limits.max_message_size: \"32MiB\" is out of range (1KiB..16MiB)"},
    {HEAD "limits:\n  max_batch: 0\n",
     "b.yaml:8: limits.max_batch: \"0\" is out of range (1..65536)"},
    {HEAD "metrics:\n  listen: localhost\n",
     "b.yaml:8: metrics.listen: \"localhost\" is not IPV4:PORT or [IPV6]:PORT (e.g. "
     "127.0.0.1:9400)"},
    {HEAD "metrics:\n  listen: 127.0.0.1:99999\n",
     "b.yaml:8: metrics.listen: \"127.0.0.1:99999\" is not IPV4:PORT or [IPV6]:PORT (e.g. "
     "127.0.0.1:9400)"},
    /* The HTTP server binds numeric addresses only: the loader must not accept more. */
    {HEAD "metrics:\n  listen: localhost:9400\n",
     "b.yaml:8: metrics.listen: \"localhost:9400\" is not IPV4:PORT or [IPV6]:PORT (e.g. "
     "127.0.0.1:9400)"},
    {HEAD "keys2: {}\n",
     "b.yaml:7: keys2: unknown key (expected one of: listen, journal, keys, limits, delivery, "
     "metrics, partners, admin, routes, retention)"},
    {HEAD PARTNERS "retention:\n  payloads:\n    sanctions: 730d\n",
     "b.yaml:16: retention.payloads.sanctions: \"sanctions\" is not a message type (valid: "
     "orientation, reorientation_request, reorientation_answer, referral, referral_status, "
     "sanction, training_offer, beneficiary_event, follow_up_event)"},
    {HEAD PARTNERS "retention:\n  payloads:\n    sanction: 2 years\n",
     "b.yaml:16: retention.payloads.sanction: \"2 years\" is not a duration (use 500ms, 5s, 2min, "
     "1h)"},
    {HEAD PARTNERS "retention:\n  payloads:\n    sanction: 500ms\n",
     "b.yaml:16: retention.payloads.sanction: \"500ms\" is out of range (1s..36500d)"},
    {HEAD PARTNERS "retention:\n  audit: 365d\n  payloads:\n    default: 90d\n    sanction: 730d\n",
     "b.yaml:18: retention.payloads.sanction: longer than retention.audit: a payload cannot "
     "outlive its record"},
    {HEAD PARTNERS "retention:\n  audit: 365d\n  payloads:\n    sanction: forever\n",
     "b.yaml:17: retention.payloads.sanction: longer than retention.audit: a payload cannot "
     "outlive its record"},
    {HEAD PARTNERS "retention:\n  records: 5y\n",
     "b.yaml:15: retention.records: unknown key (expected one of: payloads, audit)"},
    {HEAD "delivery:\n  ack_timeout: 5\n",
     "b.yaml:8: delivery.ack_timeout: \"5\" is not a duration (use 500ms, 5s, 2min, 1h)"},
    {HEAD "delivery:\n  max_attempts: 0\n",
     "b.yaml:8: delivery.max_attempts: \"0\" is out of range (1..1000)"},
    {HEAD "delivery:\n  backoff_initial: 10s\n  backoff_max: 1s\n",
     "b.yaml:9: delivery.backoff_max: is shorter than backoff_initial"},
    {HEAD "delivery:\n  retries: 3\n",
     "b.yaml:8: delivery.retries: unknown key (expected one of: ack_timeout, max_attempts, "
     "backoff_initial, backoff_max, max_in_flight, max_in_flight_bytes)"},
    {HEAD "delivery:\n  max_in_flight: 0\n",
     "b.yaml:8: delivery.max_in_flight: \"0\" is out of range (1..65536)"},
    {HEAD "partners:\n  - id: CAF\n    public_key: \"" KEY_A "\"\n",
     "b.yaml:8: partners[0].id: \"CAF\" is not a valid partner id (1 to 32 of a-z, 0-9 and _)"},
    {HEAD "partners:\n  - name: x\n    public_key: \"" KEY_A "\"\n",
     "b.yaml:8: partners[0].id: missing required key"},
    {HEAD "partners:\n  - id: caf\n    publickey: \"" KEY_A "\"\n",
     "b.yaml:9: partners[0].publickey: unknown key (expected one of: id, name, public_key, "
     "public_key_file, may_send, subscribe)"},
    {HEAD "partners:\n  - id: caf\n    may_send: []\n",
     "b.yaml:8: partners[0]: missing public_key or public_key_file"},
    {HEAD "partners:\n  - id: caf\n    public_key: \"" KEY_A "\"\n    public_key_file: k.pub\n",
     "b.yaml:10: partners[0].public_key_file: give either public_key or public_key_file, not "
     "both"},
    {HEAD "partners:\n  - id: caf\n    public_key: \"abc\"\n",
     "b.yaml:9: partners[0].public_key: a CURVE public key is 40 Z85 characters, found 3"},
    {HEAD "partners:\n  - id: caf\n    public_key: \"" KEY_A "\"\n  - id: caf\n"
          "    public_key: \"" KEY_B "\"\n",
     "b.yaml:10: partners[1].id: duplicate partner id \"caf\" (partners[0] has it already)"},
    {HEAD "partners:\n  - id: caf\n    public_key: \"" KEY_A "\"\n  - id: msa\n"
          "    public_key: \"" KEY_A "\"\n",
     "b.yaml:11: partners[1].public_key: same public key as partner \"caf\" (line 9)"},
    {HEAD "partners:\n  - id: caf\n    public_key: \"" KEY_A "\"\n    may_send: [sanctions]\n",
     "b.yaml:10: partners[0].may_send[0]: \"sanctions\" is not a message type (valid: "
     "orientation, reorientation_request, reorientation_answer, referral, referral_status, "
     "sanction, training_offer, beneficiary_event, follow_up_event)"},
    {HEAD "partners:\n  - id: caf\n    public_key: \"" KEY_A "\"\n    may_send:\n"
          "      - referral\n      - referral\n",
     "b.yaml:12: partners[0].may_send[1]: \"referral\" is listed twice"},
    {HEAD "partners:\n  - id: caf\n    public_key: \"" KEY_A "\"\n    may_send: referral\n",
     "b.yaml:10: partners[0].may_send: expected a list, found a single value"},
    {HEAD PARTNERS "admin:\n  keys: [\"" KEY_B "\"]\n",
     "b.yaml:15: admin.keys[0]: this admin key is also the key of partner \"departement\"; an "
     "administrator needs a key of its own"},
    {HEAD PARTNERS "admin:\n  keys:\n    - \"" KEY_C "\"\n    - \"" KEY_C "\"\n",
     "b.yaml:17: admin.keys[1]: the same admin key is listed twice"},
    {HEAD PARTNERS "admin:\n  listen: ipc:///run/a.sock\n",
     "b.yaml:15: admin: admin.listen is set but no admin key is listed in admin.keys"},
    {HEAD PARTNERS "admin:\n  keys: [\"not a key\"]\n",
     "b.yaml:15: admin.keys[0]: a CURVE public key is 40 Z85 characters, found 9"},
    {HEAD PARTNERS "admin:\n  keys:\n    - {name: \"marie dupont\", public_key: \"" KEY_C "\"}\n",
     "b.yaml:16: admin.keys[0].name: \"marie dupont\" is not a valid administrator name (1 to 64 "
     "of A-Z, a-z, 0-9, '.', '_', '-', '@')"},
    {HEAD PARTNERS "admin:\n  keys:\n    - {public_key: \"" KEY_C "\"}\n",
     "b.yaml:16: admin.keys[0].name: missing required key"},
    {HEAD PARTNERS "admin:\n  keys:\n    - {name: ops}\n",
     "b.yaml:16: admin.keys[0]: missing public_key or public_key_file"},
    {HEAD PARTNERS "admin:\n  keys:\n    - {name: ops, key: x}\n",
     "b.yaml:16: admin.keys[0].key: unknown key (expected one of: name, public_key, "
     "public_key_file)"},
    {HEAD PARTNERS "admin:\n  keys:\n    - {name: ops, public_key: \"" KEY_C "\"}\n"
                   "    - {name: ops, public_key: \"" KEY_C "\"}\n",
     "b.yaml:17: admin.keys[1]: the same admin key is listed twice"},
    {HEAD PARTNERS "admin:\n  keys:\n    - {name: ops, public_key: \"" KEY_C "\"}\n"
                   "    - {name: ops, public_key_file: /nonexistent/a.pub}\n",
     "b.yaml:17: admin.keys[1].public_key_file: /nonexistent/a.pub: cannot open the key file's "
     "folder: No such file or directory"},
    {HEAD PARTNERS "journal: {dir: k}\n", "b.yaml:14: journal: duplicate key (first given on "
                                          "line 1)"},
    {"journal: [\n", "b.yaml:2:1: YAML syntax error: did not find expected node content while "
                     "parsing a flow node"},
};

/* Line 14; the first rule starts on line 15. */
#define ROUTES HEAD PARTNERS "routes:\n"

/* Rules for the types the PARTNERS may send (the loader wants each type routed). */
#define BASE_RULES                                                                                 \
    "  - type: beneficiary_event\n"                                                                \
    "    to: [departement]\n"                                                                      \
    "  - type: orientation\n"                                                                      \
    "    to: [caf]\n"                                                                              \
    "  - type: sanction\n"                                                                         \
    "    to: [caf]\n"

#define TYPES                                                                                      \
    "orientation, reorientation_request, reorientation_answer, referral, referral_status, "        \
    "sanction, training_offer, beneficiary_event, follow_up_event"

static const reject_case_t route_rejects[] = {
    {ROUTES "  - type: sanctions\n    to: [caf]\n",
     "b.yaml:15: routes[0].type: \"sanctions\" is not a message type (valid: " TYPES ")"},
    {ROUTES "  - to: [caf]\n", "b.yaml:15: routes[0].type: missing required key"},
    {ROUTES "  - type: sanction\n    too: [caf]\n",
     "b.yaml:16: routes[0].too: unknown key (expected one of: type, when, to, to_field, by_field, "
     "to_subscribers, to_correlated_sender)"},
    {ROUTES "  - sanction\n", "b.yaml:15: routes[0]: expected a mapping (key: value), found a "
                              "single value"},
    {ROUTES "  - type: sanction\n    when: {field: phase2, equals: X}\n    to: [caf]\n",
     "b.yaml:16: routes[0].when.field: \"phase2\" is not a field of sanction: ptibus.v1.Sanction "
     "has no field \"phase2\""},
    {ROUTES "  - type: sanction\n    by_field: {field: person.payr, map: {PAYER_CAF: caf}}\n",
     "b.yaml:16: routes[0].by_field.field: \"person.payr\" is not a field of sanction: "
     "ptibus.v1.PersonRef has no field \"payr\""},
    {ROUTES "  - type: sanction\n    when: {field: phase.x, equals: X}\n    to: [caf]\n",
     "b.yaml:16: routes[0].when.field: \"phase.x\": phase is not a message"},
    {ROUTES "  - type: sanction\n    when: {field: person..payer, equals: X}\n    to: [caf]\n",
     "b.yaml:16: routes[0].when.field: \"person..payer\" is not a field path (names separated by "
     "dots, e.g. person.payer)"},
    {ROUTES "  - type: sanction\n    when: {field: person.payer.a.b, equals: X}\n",
     "b.yaml:16: routes[0].when.field: \"person.payer.a.b\": payer is not a message"},
    {ROUTES "  - type: referral\n    to_field: {field: target_org, allow: [caf]}\n",
     "b.yaml:16: routes[0].to_field.field: \"target_org\" is of type message; routes compare "
     "enums, strings, booleans and integers"},
    {ROUTES "  - type: referral\n    to_field: {field: person.payer, allow: [caf]}\n",
     "b.yaml:16: routes[0].to_field.field: \"person.payer\" is of type enum; to_field needs a "
     "string field holding a partner id"},
    {ROUTES "  - type: training_offer\n    to_field: {field: formacode, allow: [caf]}\n",
     "b.yaml:16: routes[0].to_field.field: \"formacode\": formacode is a list; a route needs a "
     "single value"},
    /* The allow-list is required: a to_field alone would reach every partner. */
    {ROUTES "  - type: referral\n    to_field: target_org.partner_id\n",
     "b.yaml:16: routes[0].to_field: needs a map {field: PATH, allow: [partner, ...]}: the "
     "partners that field may name"},
    {ROUTES "  - type: referral\n    to_field: {field: target_org.partner_id}\n",
     "b.yaml:16: routes[0].to_field.allow: missing required key"},
    {ROUTES "  - type: referral\n    to_field: {field: target_org.partner_id, allow: []}\n",
     "b.yaml:16: routes[0].to_field.allow: the list is empty (name the partners this field may "
     "address)"},
    {ROUTES "  - type: referral\n    to_field: {field: target_org.partner_id, allow: caf}\n",
     "b.yaml:16: routes[0].to_field.allow: expected a list, found a single value"},
    {ROUTES "  - type: referral\n    to_field:\n      field: target_org.partner_id\n"
            "      allow:\n        - caf\n        - cafe\n",
     "b.yaml:20: routes[0].to_field.allow[1]: \"cafe\" is not a configured partner (partners: "
     "caf, departement)"},
    {ROUTES "  - type: referral\n    to_field: {field: target_org.partner_id, allow: [caf, caf]}\n",
     "b.yaml:16: routes[0].to_field.allow[1]: \"caf\" is listed twice"},
    {ROUTES "  - type: referral\n    to_field: {allow: [caf]}\n",
     "b.yaml:16: routes[0].to_field.field: missing required key"},
    {ROUTES "  - type: referral\n    to_field: {field: target_org.partner_id, to: [caf]}\n",
     "b.yaml:16: routes[0].to_field.to: unknown key (expected one of: field, allow)"},
    {ROUTES "  - type: sanction\n    by_field:\n      field: person.payer\n"
            "      map: {PAYER_CAF: caf, PAYER_XYZ: departement}\n",
     "b.yaml:18: routes[0].by_field.map: \"PAYER_XYZ\" is not a value of ptibus.v1.Payer "
     "(PAYER_UNSPECIFIED, PAYER_CAF, PAYER_MSA)"},
    {ROUTES "  - type: sanction\n    by_field:\n      field: person.payer\n"
            "      map:\n        PAYER_CAF: caf\n        PAYER_MSA: msa\n",
     "b.yaml:20: routes[0].by_field.map.PAYER_MSA: \"msa\" is not a configured partner "
     "(partners: caf, departement)"},
    {ROUTES "  - type: sanction\n    by_field: {field: person.payer}\n",
     "b.yaml:16: routes[0].by_field.map: missing required key"},
    {ROUTES "  - type: sanction\n    by_field: {field: person.payer, map: {}}\n",
     "b.yaml:16: routes[0].by_field.map: the map is empty"},
    {ROUTES "  - type: sanction\n    by_field: {field: stage, map: {\"1\": caf, \"01\": caf}}\n",
     "b.yaml:16: routes[0].by_field.map: \"01\" is the same value as line 16"},
    {ROUTES "  - type: sanction\n    when: {field: phase, equals: PROPOSAL}\n    to: [caf]\n",
     "b.yaml:16: routes[0].when.equals: \"PROPOSAL\" is not a value of ptibus.v1.SanctionPhase "
     "(SANCTION_PHASE_UNSPECIFIED, SANCTION_PHASE_PROPOSAL, SANCTION_PHASE_DECISION)"},
    {ROUTES "  - type: sanction\n    when:\n      field: phase\n      in:\n"
            "        - SANCTION_PHASE_PROPOSAL\n        - 2\n    to: [caf]\n",
     "b.yaml:20: routes[0].when.in[1]: \"2\" is not a value of ptibus.v1.SanctionPhase "
     "(SANCTION_PHASE_UNSPECIFIED, SANCTION_PHASE_PROPOSAL, SANCTION_PHASE_DECISION)"},
    {ROUTES "  - type: sanction\n    when: {field: phase, in: []}\n    to: [caf]\n",
     "b.yaml:16: routes[0].when.in: the list is empty"},
    {ROUTES "  - type: sanction\n    when: {field: phase}\n    to: [caf]\n",
     "b.yaml:16: routes[0].when: needs equals or in"},
    {ROUTES "  - type: sanction\n    when: {field: stage, equals: 1, in: [2]}\n    to: [caf]\n",
     "b.yaml:16: routes[0].when.in: give either equals or in, not both"},
    {ROUTES "  - type: sanction\n    when: {equals: 1}\n    to: [caf]\n",
     "b.yaml:16: routes[0].when.field: missing required key"},
    {ROUTES "  - type: sanction\n    when: {field: stage, equals: -1}\n    to: [caf]\n",
     "b.yaml:16: routes[0].when.equals: \"-1\" is not a uint32"},
    {ROUTES "  - type: sanction\n    when: {field: stage, equals: 4294967296}\n    to: [caf]\n",
     "b.yaml:16: routes[0].when.equals: \"4294967296\" is not a uint32"},
    {ROUTES "  - type: training_offer\n    when: {field: certifying, equals: yes}\n"
            "    to: [caf]\n",
     "b.yaml:16: routes[0].when.equals: \"yes\" is not a boolean (use true or false)"},
    {ROUTES "  - type: sanction\n    to: [caf, cafe]\n",
     "b.yaml:16: routes[0].to[1]: \"cafe\" is not a configured partner (partners: caf, "
     "departement)"},
    {ROUTES "  - type: sanction\n    to: [caf, caf]\n",
     "b.yaml:16: routes[0].to[1]: \"caf\" is listed twice"},
    {ROUTES "  - type: sanction\n    to: caf\n",
     "b.yaml:16: routes[0].to: expected a list, found a single value"},
    {ROUTES "  - type: sanction\n    to_subscribers: false\n",
     "b.yaml:15: routes[0]: the rule names no recipient (give to, to_field, by_field, "
     "to_subscribers or to_correlated_sender)"},
    {ROUTES "  - type: sanction\n    to_correlated_sender: yes\n",
     "b.yaml:16: routes[0].to_correlated_sender: \"yes\" is not a boolean (use true or false)"},
    {ROUTES BASE_RULES "  - type: referral\n    to_field: {field: \"\", allow: [caf]}\n",
     "b.yaml:22: routes[3].to_field.field: the field path is empty"},
    /* Cross-checks of the partners' lists against the rules. */
    {ROUTES "  - type: orientation\n    to: [caf]\n  - type: sanction\n    to: [caf]\n",
     "b.yaml:10: partners[0].may_send[0]: no route delivers beneficiary_event messages (add a "
     "rule with type: beneficiary_event to routes)"},
    {ROUTES "  - type: beneficiary_event\n    to: [departement]\n  - type: sanction\n"
            "    to: [caf]\n",
     "b.yaml:13: partners[1].may_send[0]: no route delivers orientation messages (add a rule "
     "with type: orientation to routes)"},
    {HEAD "partners:\n  - id: caf\n    public_key: \"" KEY_A
          "\"\n    subscribe: [training_offer]\n",
     "b.yaml:10: partners[0].subscribe[0]: no route delivers training_offer messages to "
     "subscribers (add a rule with type: training_offer and to_subscribers: true to routes)"},
    {HEAD "partners:\n  - id: caf\n    public_key: \"" KEY_A "\"\n    subscribe: [trainings]\n",
     "b.yaml:10: partners[0].subscribe[0]: \"trainings\" is not a message type (valid: " TYPES ")"},
    {HEAD "partners:\n  - id: caf\n    public_key: \"" KEY_A "\"\n"
          "    subscribe: [training_offer, training_offer]\n",
     "b.yaml:10: partners[0].subscribe[1]: \"training_offer\" is listed twice"},
    {ROUTES "  - type: sanction\n    to: [caf]\n  - type: orientation\n    to: [caf]\n"
            "  - type: sanction\n    by_field: {field: person.payr, map: {PAYER_CAF: caf}}\n",
     "b.yaml:20: routes[2].by_field.field: \"person.payr\" is not a field of sanction: "
     "ptibus.v1.PersonRef has no field \"payr\""},
};

static void
check_rejects(const reject_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bconfig_t *cfg = NULL;
        pt_error_t err;
        pt_error_clear(&err);
        const char *text = cases[i].text;
        int rc = bconfig_load_buffer(text, strlen(text), "b.yaml", &cfg, &err);
        if (rc == 0 || strcmp(err.msg, cases[i].msg) != 0)
            fail_msg("case %zu: rc %d, got\n  %s\nwanted\n  %s", i, rc, err.msg, cases[i].msg);
        assert_int_equal(rc, PT_ECONFIG);
        assert_null(cfg);
        /* The error object is optional: the same failure without one. */
        assert_int_equal(bconfig_load_buffer(text, strlen(text), "b.yaml", &cfg, NULL), rc);
        assert_null(cfg);
    }
}

static void
test_route_rejections(void **state)
{
    (void)state;
    check_rejects(route_rejects, sizeof route_rejects / sizeof route_rejects[0]);
}

static void
test_rejections(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rejects / sizeof rejects[0]; i++) {
        bconfig_t *cfg = NULL;
        pt_error_t err;
        pt_error_clear(&err);
        const char *text = rejects[i].text;
        int rc = bconfig_load_buffer(text, strlen(text), "b.yaml", &cfg, &err);
        if (rc == 0 || strcmp(err.msg, rejects[i].msg) != 0)
            fail_msg("case %zu: rc %d, got\n  %s\nwanted\n  %s", i, rc, err.msg, rejects[i].msg);
        assert_null(cfg);
        /* The error object is optional: the same failure without one. */
        assert_int_equal(bconfig_load_buffer(text, strlen(text), "b.yaml", &cfg, NULL), rc);
        assert_null(cfg);
    }
}

/* Every kind of target and condition compiles into the rule table. */
static void
test_routes_compiled(void **state)
{
    (void)state;
    bconfig_t *cfg = load_ok(ROUTES BASE_RULES /* rules 0-2, lines 15-20 */
                             "  - type: sanction\n"
                             "    when: {field: person.payer, in: [PAYER_CAF, PAYER_MSA]}\n"
                             "    to_field: {field: decided_by.partner_id, allow: "
                             "[departement, caf]}\n"
                             "    by_field: {field: person.payer, map: {PAYER_CAF: caf}}\n"
                             "  - type: training_offer\n"
                             "    when: {field: certifying, equals: true}\n"
                             "    to_subscribers: true\n"
                             "  - type: referral_status\n"
                             "    when: {field: reporting_org.name, equals: \"AFPA\"}\n"
                             "    to_correlated_sender: true\n"
                             "  - type: sanction\n"
                             "    by_field: {field: stage, map: {\"2\": departement}}\n",
                             "b.yaml");
    assert_int_equal(cfg->n_routes, 7);
    const bconfig_route_t *r = &cfg->routes[3];
    assert_int_equal(r->line, 21);
    assert_int_equal(r->body, PTIBUS__V1__ENVELOPE__BODY_SANCTION);
    assert_string_equal(r->when.path, "sanction.person.payer");
    assert_int_equal(r->when.depth, 2);
    assert_string_equal(r->when.chain[1]->name, "payer");
    assert_int_equal(r->n_when_values, 2);
    assert_int_equal(r->when_values[0].num, PTIBUS__V1__PAYER__PAYER_CAF);
    assert_int_equal(r->when_values[1].num, PTIBUS__V1__PAYER__PAYER_MSA);
    assert_string_equal(r->to_field.path, "sanction.decided_by.partner_id");
    assert_int_equal(r->n_to_field_allow, 2);
    assert_int_equal(r->to_field_allow[0], 1); /* departement */
    assert_int_equal(r->to_field_allow[1], 0); /* caf */
    assert_int_equal(r->n_by_map, 1);
    assert_int_equal(r->by_map[0].partner, 0); /* caf */
    assert_false(r->to_subscribers);
    assert_int_equal(cfg->routes[0].n_to, 1);
    assert_int_equal(cfg->routes[0].to[0], 1); /* departement */
    assert_int_equal(cfg->routes[0].when.depth, 0);
    r = &cfg->routes[4];
    assert_true(r->to_subscribers);
    assert_int_equal(r->when_values[0].num, 1);
    r = &cfg->routes[5];
    assert_true(r->to_correlated_sender);
    assert_string_equal(r->when_values[0].str, "AFPA");
    assert_int_equal(cfg->routes[6].by_map[0].value.num, 2);
    assert_int_equal(cfg->routes[6].by_map[0].partner, 1);
    bconfig_destroy(&cfg);

    /* Without routes: no rule, and may_send needs none (routes are optional). */
    cfg = load_ok(HEAD PARTNERS, "b.yaml");
    assert_int_equal(cfg->n_routes, 0);
    assert_null(cfg->routes);
    bconfig_destroy(&cfg);
}

static void
test_public_key_file_relative(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("bconfig");
    char path[4096], yaml[8192];
    pt_error_t err;
    assert_int_equal(keys_curve_generate(dir, "caf", &err), 0);
    snprintf(yaml, sizeof yaml, HEAD "partners:\n  - id: caf\n    public_key_file: caf.pub\n");
    snprintf(path, sizeof path, "%s/b.yaml", dir);
    bconfig_t *cfg = load_ok(yaml, path);
    uint8_t pk[32];
    snprintf(path, sizeof path, "%s/caf.pub", dir);
    assert_int_equal(keys_read(path, pk, sizeof pk, false, &err), 0);
    assert_memory_equal(cfg->partners[0].public_key, pk, 32);
    assert_int_equal(cfg->partners[0].n_may_send, 0);
    bconfig_destroy(&cfg);
    tu_rmtree(dir);
}

/* Reload: the keys that need a restart are named; partners and routes are what the
 * swap moves, and the partner map says where each kept partner was. */
static void
test_reload_restart_keys_and_swap(void **state)
{
    (void)state;
    bconfig_t *live = load_ok(HEAD PARTNERS, "/srv/ptibus/b.yaml");
    bconfig_t *same = load_ok(HEAD PARTNERS "  - id: msa\n    public_key: \"" KEY_C "\"\n"
                                            "    may_send: [beneficiary_event]\n",
                              "/srv/ptibus/b.yaml");
    char keys[256];
    bconfig_restart_keys(live, same, keys, sizeof keys);
    assert_string_equal(keys, ""); /* a partner more: reloadable */
    bconfig_t *other = load_ok("listen: \"tcp://127.0.0.1:7401\"\n"
                               "limits:\n  max_batch: 10\n" HEAD PARTNERS,
                               "/srv/ptibus/b.yaml");
    bconfig_restart_keys(live, other, keys, sizeof keys);
    assert_string_equal(keys, "listen, limits.max_batch");
    bconfig_restart_keys(live, other, keys, 8); /* cut, still terminated */
    assert_string_equal(keys, "listen,");

    /* same: caf, departement, msa; live: caf, departement. */
    ptrdiff_t *from = NULL;
    assert_int_equal(bconfig_partner_map(live, same, &from), 0);
    assert_int_equal(from[0], 0);
    assert_int_equal(from[1], 1);
    assert_int_equal(from[2], -1);
    free(from);
    bconfig_swap_reloadable(live, same);
    assert_int_equal(live->n_partners, 3);
    assert_non_null(bconfig_partner_by_id(live, "msa"));
    assert_int_equal(same->n_partners, 2);
    assert_null(bconfig_partner_by_id(same, "msa"));
    assert_string_equal(live->listen, "tcp://127.0.0.1:7400"); /* the rest stays */
    bconfig_destroy(&same);
    bconfig_destroy(&other);
    bconfig_destroy(&live);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_and_defaults),
        cmocka_unit_test(test_all_keys_set),
        cmocka_unit_test(test_previous_signing_keys),
        cmocka_unit_test(test_deploy_example),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_public_key_file_relative),
        cmocka_unit_test(test_admin_names),
        cmocka_unit_test(test_route_rejections),
        cmocka_unit_test(test_routes_compiled),
        cmocka_unit_test(test_reload_restart_keys_and_swap),
        cmocka_unit_test(test_retention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
