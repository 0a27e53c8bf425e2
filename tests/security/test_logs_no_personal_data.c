/* No NIR, name or payload in any log (issue 15): a full run through the real daemons —
 * ptibusd and three adapters at debug level — with the demo's sample messages POSTed
 * (good ones, an invalid one, types the sender may not send), a CNAF flow with a bad
 * record dropped in the CAF's inbox, deliveries to outboxes; then every log, every
 * file report and every HTTP error answer is searched for each NIR (with and without
 * its key), each name and each file number of the inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>
#include <jansson.h>

#include "adapter.h"
#include "daemon.h"
#include "samples.h"
#include "testutil.h"

#define MAX_SECRETS 512
#define MAX_TEXTS 64

typedef struct secrets {
    char *v[MAX_SECRETS];
    size_t n;
} secrets_t;

typedef struct texts {
    char *name[MAX_TEXTS];
    char *text[MAX_TEXTS];
    size_t n;
} texts_t;

static void
add_secret(secrets_t *s, const char *v, size_t len)
{
    if (len < 4 || s->n == MAX_SECRETS) /* a short value would match anything */
        return;
    s->v[s->n++] = strndup(v, len);
}

/* A NIR, and its 13 digits without the key. */
static void
add_nir(secrets_t *s, const char *nir)
{
    add_secret(s, nir, strlen(nir));
    if (strlen(nir) == 15)
        add_secret(s, nir, 13);
}

/* The person fields of every object in a JSON document. */
static void
collect_json(secrets_t *s, json_t *v)
{
    const char *key;
    json_t *x;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach(v, key, x)
        {
            const char *str = json_string_value(x);
            if (str != NULL && strcmp(key, "nir") == 0)
                add_nir(s, str);
            else if (str != NULL &&
                     (strcmp(key, "lastName") == 0 || strcmp(key, "firstNames") == 0 ||
                      strcmp(key, "birthName") == 0 || strcmp(key, "usageName") == 0))
                add_secret(s, str, strlen(str));
            else
                collect_json(s, x);
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x) collect_json(s, x);
    }
}

/* The values of <TAG>...</TAG> in an XML text. */
static void
collect_xml(secrets_t *s, const char *xml, const char *tag)
{
    char open[32];
    snprintf(open, sizeof open, "<%s>", tag);
    for (const char *p = strstr(xml, open); p != NULL; p = strstr(p + 1, open)) {
        const char *v = p + strlen(open), *end = strchr(v, '<');
        if (end != NULL && strcmp(tag, "NIR") == 0) {
            char nir[32];
            snprintf(nir, sizeof nir, "%.*s", (int)(end - v), v);
            add_nir(s, nir);
        } else if (end != NULL) {
            add_secret(s, v, (size_t)(end - v));
        }
    }
}

static void
keep_text(texts_t *t, const char *name, char *text)
{
    if (text == NULL || t->n == MAX_TEXTS) {
        free(text);
        return;
    }
    t->name[t->n] = strdup(name);
    t->text[t->n++] = text;
}

static void
keep_file(texts_t *t, const char *path)
{
    uint8_t *text = NULL;
    size_t len = 0;
    if (tu_read_file(path, &text, &len) == 0)
        keep_text(t, path, (char *)text);
}

/* Every report and error file in a folder. */
static void
keep_reports(texts_t *t, const char *dir)
{
    DIR *d = opendir(dir);
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;) {
        if (strstr(e->d_name, ".report.json") == NULL && strstr(e->d_name, ".error.json") == NULL)
            continue;
        char path[4700];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        keep_file(t, path);
    }
    if (d != NULL)
        closedir(d);
}

/* POSTs every demo sample through the Département's adapter (the broker refuses those
 * the Département may not send), keeping the answers. */
static void
post_samples(td_adapter_t *a, secrets_t *s, texts_t *t)
{
    char dir[4300];
    snprintf(dir, sizeof dir, "%s/deploy/demo/messages", PT_SOURCE_DIR);
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strstr(e->d_name, ".json") == NULL)
            continue;
        char path[4700];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        uint8_t *body = NULL;
        size_t len = 0;
        assert_int_equal(tu_read_file(path, &body, &len), 0);
        json_t *doc = json_loadb((const char *)body, len, 0, NULL);
        collect_json(s, doc);
        json_decref(doc);
        char *answer = NULL;
        td_adapter_http_h(a, "POST", "/v1/messages", (const char *)body, len, "Prefer: wait=5",
                          &answer);
        keep_text(t, e->d_name, answer);
        free(body);
    }
    closedir(d);
}

static void
test_no_personal_data_in_any_log(void **state)
{
    (void)state;
    static secrets_t s;
    static texts_t t;
    td_net_t net;
    td_net_options_t no = {.ack_timeout = "5s"};
    td_net_init(&net, "nolog", &no);
    assert_int_equal(td_broker_start(&net), 0);
    static td_adapter_t d, p, c;
    td_adapter_init(&d, &net, "departement", NULL);
    td_adapter_init(&p, &net, "pole_emploi", NULL);
    td_adapter_options_t co = {.codecs = "[cnaf_rsa, json]"};
    td_adapter_init(&c, &net, "caf", &co);
    assert_int_equal(td_adapter_start(&d), 0);
    assert_int_equal(td_adapter_start(&p), 0);
    assert_int_equal(td_adapter_start(&c), 0);
    assert_true(td_adapter_wait_ready(&d, 10000));
    /* the sample person, in a good message and in one with a wrong NIR key */
    td_sample_t smp;
    td_sample_orientation(&smp, "nolog-ori-1");
    add_nir(&s, smp.person.nir);
    add_secret(&s, smp.person.last_name, strlen(smp.person.last_name));
    assert_int_equal(td_adapter_post_env(&d, &smp.env, NULL), 202);
    td_sample_orientation(&smp, "nolog-ori-bad-nir");
    smp.person.nir = "285057800608442";
    add_nir(&s, smp.person.nir);
    char *answer = NULL;
    assert_int_equal(td_adapter_post_env(&d, &smp.env, &answer), 400);
    keep_text(&t, "bad NIR answer", answer);
    post_samples(&d, &s, &t);
    /* a CNAF flow with NIRs and file numbers, one record bad */
    char path[4400];
    snprintf(path, sizeof path, "%s/tests/fixtures/cnaf/flux-1252.xml", PT_SOURCE_DIR);
    uint8_t *xml = NULL;
    size_t len = 0;
    assert_int_equal(tu_read_file(path, &xml, &len), 0);
    collect_xml(&s, (const char *)xml, "NIR");
    collect_xml(&s, (const char *)xml, "MATRICULE");
    td_adapter_drop(&c, "flux.xml", xml, len);
    free(xml);
    td_outbox_wait(&d, 6, 20000); /* the CAF's events reach the Département */
    td_outbox_wait(&p, 1, 20000);
    assert_int_equal(td_adapter_stop(&c), 0);
    assert_int_equal(td_adapter_stop(&p), 0);
    assert_int_equal(td_adapter_stop(&d), 0);
    assert_int_equal(td_broker_stop(&net), 0);
    snprintf(path, sizeof path, "%s/broker.log", net.dir);
    keep_file(&t, path);
    td_adapter_t *all[] = {&d, &p, &c};
    for (size_t i = 0; i < 3; i++) {
        keep_file(&t, all[i]->log);
        snprintf(path, sizeof path, "%s/done", all[i]->inbox);
        keep_reports(&t, path);
        snprintf(path, sizeof path, "%s/failed", all[i]->inbox);
        keep_reports(&t, path);
    }
    print_message("%zu personal values searched in %zu logs, reports and answers\n", s.n, t.n);
    assert_true(s.n >= 10 && t.n >= 8);
    for (size_t i = 0; i < t.n; i++)
        for (size_t k = 0; k < s.n; k++)
            if (strstr(t.text[i], s.v[k]) != NULL)
                fail_msg("%s holds a personal value (%zu characters, starting %.2s)", t.name[i],
                         strlen(s.v[k]), s.v[k]);
    for (size_t i = 0; i < t.n; i++)
        free(t.name[i]), free(t.text[i]);
    for (size_t k = 0; k < s.n; k++)
        free(s.v[k]);
    td_net_fini(&net);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_personal_data_in_any_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
