/* Unit tests of common/keys: generation, read-back, permission refusal, bad files. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <zmq.h>

#include "keys.h"
#include "testutil.h"

typedef struct fixture {
    char *dir;
    char path[4096];
} fixture_t;

static int
setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->dir = tu_tmpdir("keys");
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture_t *f = *state;
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

static const char *
in_dir(fixture_t *f, const char *name)
{
    snprintf(f->path, sizeof f->path, "%s/%s", f->dir, name);
    return f->path;
}

static mode_t
file_mode(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static void
test_curve_generate(void **state)
{
    fixture_t *f = *state;
    pt_error_t err;
    assert_int_equal(keys_curve_generate(f->dir, "broker", &err), 0);
    uint8_t sk[32], pk[32];
    char sk_path[4096];
    snprintf(sk_path, sizeof sk_path, "%s", in_dir(f, "broker.key"));
    assert_int_equal(file_mode(sk_path), 0600);
    assert_int_equal(file_mode(in_dir(f, "broker.pub")), 0644);
    assert_int_equal(keys_read(sk_path, sk, sizeof sk, true, &err), 0);
    assert_int_equal(keys_read(in_dir(f, "broker.pub"), pk, sizeof pk, false, &err), 0);
    /* The public key is the one derived from the secret key. */
    char sk_z85[41], pk_z85[41], derived[41];
    zmq_z85_encode(sk_z85, sk, 32);
    zmq_z85_encode(pk_z85, pk, 32);
    assert_int_equal(zmq_curve_public(derived, sk_z85), 0);
    assert_string_equal(derived, pk_z85);
    /* The file is one line of 40 characters and a newline. */
    uint8_t *text;
    size_t len;
    assert_int_equal(tu_read_file(in_dir(f, "broker.pub"), &text, &len), 0);
    assert_int_equal(len, 41);
    assert_int_equal(text[40], '\n');
    uint8_t pk2[32];
    text[40] = '\0';
    assert_int_equal(keys_curve_public_from_z85((char *)text, pk2, &err), 0);
    assert_memory_equal(pk, pk2, 32);
    free(text);
    /* No temporary file left behind; no overwrite of an existing key. */
    assert_int_equal(access(in_dir(f, "broker.key.tmp"), F_OK), -1);
    assert_int_equal(keys_curve_generate(f->dir, "broker", &err), -EEXIST);
    assert_non_null(strstr(err.msg, "broker.key: already exists"));
}

static void
test_sign_generate(void **state)
{
    fixture_t *f = *state;
    pt_error_t err;
    assert_int_equal(keys_sign_generate(f->dir, "broker", &err), 0);
    uint8_t sk[64], pk[32];
    assert_int_equal(keys_read(in_dir(f, "broker.sign"), sk, sizeof sk, true, &err), 0);
    assert_int_equal(file_mode(f->path), 0600);
    assert_int_equal(keys_read(in_dir(f, "broker.sign.pub"), pk, sizeof pk, false, &err), 0);
    assert_int_equal(file_mode(f->path), 0644);
    /* A signature made with the secret verifies with the public key. */
    uint8_t sig[crypto_sign_BYTES];
    const uint8_t msg[] = "checkpoint";
    crypto_sign_detached(sig, NULL, msg, sizeof msg, sk);
    assert_int_equal(crypto_sign_verify_detached(sig, msg, sizeof msg, pk), 0);
    /* 80 characters in the secret file. */
    uint8_t *text;
    size_t len;
    assert_int_equal(tu_read_file(in_dir(f, "broker.sign"), &text, &len), 0);
    assert_int_equal(len, 81);
    free(text);
}

static void
test_hmac_generate(void **state)
{
    fixture_t *f = *state;
    pt_error_t err;
    assert_int_equal(keys_hmac_generate(f->dir, "person_index", &err), 0);
    uint8_t k[32], zero[32] = {0};
    assert_int_equal(keys_read(in_dir(f, "person_index.hmac"), k, sizeof k, true, &err), 0);
    assert_int_equal(file_mode(f->path), 0600);
    assert_memory_not_equal(k, zero, 32);
}

static void
test_refuses_open_secret(void **state)
{
    fixture_t *f = *state;
    pt_error_t err;
    uint8_t k[32] = {1, 2, 3};
    const char *path = in_dir(f, "x.key");
    assert_int_equal(keys_write_secret(path, k, sizeof k, &err), 0);
    assert_int_equal(chmod(path, 0644), 0);
    uint8_t out[32];
    assert_int_equal(keys_read(path, out, sizeof out, true, &err), PT_EDENIED);
    char want[9000];
    snprintf(want, sizeof want,
             "%s: secret key file has mode 0644, readable or writable by group or others; fix "
             "it with: chmod 600 %s",
             path, path);
    assert_string_equal(err.msg, want);
    assert_int_equal(chmod(path, 0620), 0); /* group-writable is refused too */
    assert_int_equal(keys_read(path, out, sizeof out, true, &err), PT_EDENIED);
    /* As a public file it is fine; after chmod 600 the secret reads. */
    assert_int_equal(keys_read(path, out, sizeof out, false, &err), 0);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(keys_read(path, out, sizeof out, true, &err), 0);
    assert_memory_equal(out, k, sizeof k);
}

/* A key file reached through a symbolic link is refused: whoever can plant a link
 * could make the broker use a key of their choosing, or read a file of theirs. */
static void
test_refuses_symlink(void **state)
{
    fixture_t *f = *state;
    pt_error_t err;
    uint8_t k[32] = {7}, out[32];
    char real[4096];
    snprintf(real, sizeof real, "%s", in_dir(f, "real.key"));
    assert_int_equal(keys_write_secret(real, k, sizeof k, &err), 0);
    assert_int_equal(symlink(real, in_dir(f, "link.key")), 0);
    assert_int_equal(keys_read(f->path, out, sizeof out, true, &err), PT_EDENIED);
    assert_non_null(strstr(err.msg, "link.key: is a symbolic link"));
    assert_int_equal(keys_read(f->path, out, sizeof out, false, &err), PT_EDENIED);
    assert_int_equal(keys_read(real, out, sizeof out, true, &err), 0);
}

/* A key file owned by another user is refused (root may own it). */
static void
test_refuses_other_owner(void **state)
{
    fixture_t *f = *state;
    pt_error_t err;
    uint8_t k[32] = {7}, out[32];
    if (geteuid() != 0)
        skip(); /* only root can give a file away */
    const char *path = in_dir(f, "theirs.key");
    assert_int_equal(keys_write_secret(path, k, sizeof k, &err), 0);
    assert_int_equal(chown(path, 65534, 65534), 0); /* nobody */
    assert_int_equal(keys_read(path, out, sizeof out, true, &err), PT_EDENIED);
    assert_non_null(strstr(err.msg, "theirs.key: key file owned by uid 65534"));
    assert_non_null(strstr(err.msg, "chown 0"));
    assert_int_equal(keys_read(path, out, sizeof out, false, &err), PT_EDENIED);
    assert_int_equal(chown(path, 0, 0), 0);
    assert_int_equal(keys_read(path, out, sizeof out, true, &err), 0);
}

/* A key in a folder that group or others can write is refused: they could rename
 * another file over it. */
static void
test_refuses_writable_folder(void **state)
{
    fixture_t *f = *state;
    pt_error_t err;
    uint8_t k[32] = {7}, out[32];
    const char *path = in_dir(f, "k.key");
    assert_int_equal(keys_write_secret(path, k, sizeof k, &err), 0);
    assert_int_equal(chmod(f->dir, 0770), 0);
    assert_int_equal(keys_read(path, out, sizeof out, true, &err), PT_EDENIED);
    assert_non_null(strstr(err.msg, "has mode 0770, writable by group or others; fix it with: "
                                    "chmod go-w"));
    assert_int_equal(chmod(f->dir, 0757), 0);
    assert_int_equal(keys_read(path, out, sizeof out, false, &err), PT_EDENIED);
    assert_int_equal(chmod(f->dir, 0755), 0);
    assert_int_equal(keys_read(path, out, sizeof out, true, &err), 0);
}

static void
assert_file_is(const char *path, const char *text)
{
    uint8_t *got;
    size_t len;
    assert_int_equal(tu_read_file(path, &got, &len), 0);
    assert_int_equal(len, strlen(text));
    assert_memory_equal(got, text, len);
    free(got);
}

/* A link planted at x.tmp (symbolic or hard) is never written through: the write
 * succeeds, the file the link points to keeps its content and mode. */
static void
test_tmp_link_not_followed(void **state)
{
    fixture_t *f = *state;
    pt_error_t err;
    uint8_t k[32] = {9}, out[32];
    char victim[4096], key[4096];
    snprintf(victim, sizeof victim, "%s", in_dir(f, "victim.txt"));
    snprintf(key, sizeof key, "%s", in_dir(f, "x.key"));
    assert_int_equal(tu_write_file(victim, "VICTIM\n", 7), 0);
    assert_int_equal(chmod(victim, 0644), 0);
    assert_int_equal(symlink(victim, in_dir(f, "x.key.tmp")), 0);
    assert_int_equal(keys_write_secret(key, k, sizeof k, &err), 0);
    assert_file_is(victim, "VICTIM\n");
    assert_int_equal(keys_read(key, out, sizeof out, true, &err), 0);
    assert_memory_equal(out, k, sizeof k);
    assert_int_equal(access(in_dir(f, "x.key.tmp"), F_OK), -1);
    /* A hard link: the old code truncated and wrote the victim, and made it 0600. */
    assert_int_equal(link(victim, in_dir(f, "x.key.tmp")), 0);
    assert_int_equal(keys_write_secret(key, k, sizeof k, &err), 0);
    assert_file_is(victim, "VICTIM\n");
    assert_int_equal(file_mode(victim), 0644);
}

/* keys_secret_load: the key as keys_read gives it, in memory that is read-only (a
 * write kills a forked child with SIGSEGV). */
static void
test_secret_load(void **state)
{
    fixture_t *f = *state;
    pt_error_t err;
    uint8_t k[64], *s = NULL;
    for (size_t i = 0; i < sizeof k; i++)
        k[i] = (uint8_t)i;
    const char *path = in_dir(f, "s.sign");
    assert_int_equal(keys_write_secret(path, k, sizeof k, &err), 0);
    assert_int_equal(keys_secret_load(path, sizeof k, &s, &err), 0);
    assert_memory_equal(s, k, sizeof k);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL); /* not cmocka's handler */
        ((volatile uint8_t *)s)[0] = 1;
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSEGV);
    keys_secret_free(&s);
    assert_null(s);
    keys_secret_free(&s); /* NULL is fine */
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(keys_secret_load(path, sizeof k, &s, &err), PT_EDENIED);
    assert_null(s);
}

/* keys_protect_process, in a forked child: not dumpable, no core. */
static void
test_protect_process(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        pt_error_t err;
        struct rlimit rl;
        if (keys_protect_process(&err) != 0 || getrlimit(RLIMIT_CORE, &rl) != 0)
            _exit(10);
        if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
            _exit(11);
        _exit(rl.rlim_cur == 0 && rl.rlim_max == 0 ? 0 : 12);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void
write_text(fixture_t *f, const char *name, const char *text)
{
    assert_int_equal(tu_write_file(in_dir(f, name), text, strlen(text)), 0);
}

static void
test_bad_files(void **state)
{
    fixture_t *f = *state;
    pt_error_t err;
    uint8_t k[32];
    write_text(f, "short.pub", "abc\n");
    assert_int_equal(keys_read(f->path, k, sizeof k, false, &err), PT_EMALFORMED);
    assert_non_null(strstr(err.msg, "short.pub: expected 40 Z85 characters (a 32-byte key), "
                                    "found 3"));
    /* 40 characters, one of them (a quote) outside the Z85 alphabet. */
    write_text(f, "bad.pub", "\"2zk+4+4q[+FV7XsIsJ03n3]-iB^o!+kkpc08I/u\n");
    assert_int_equal(keys_read(f->path, k, sizeof k, false, &err), PT_EMALFORMED);
    assert_non_null(strstr(err.msg, "bad.pub: not valid Z85 text"));
    write_text(f, "crlf.pub", "R2zk+4+4q[+FV7XsIsJ03n3]-iB^o!+kkpc08I/u\r\n");
    assert_int_equal(keys_read(f->path, k, sizeof k, false, &err), 0);
    /* A 32-byte key where a 64-byte one is expected. */
    assert_int_equal(keys_read(f->path, (uint8_t[64]){0}, 64, false, &err), PT_EMALFORMED);
    assert_non_null(strstr(err.msg, "expected 80 Z85 characters"));
    char big[300];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    write_text(f, "long.pub", big);
    assert_int_equal(keys_read(f->path, k, sizeof k, false, &err), PT_EMALFORMED);
    assert_non_null(strstr(err.msg, "too long"));
    assert_int_equal(keys_read(in_dir(f, "none.pub"), k, sizeof k, false, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "none.pub: cannot open the key file"));
    assert_int_equal(mkdir(in_dir(f, "sub.pub"), 0700), 0);
    assert_int_equal(keys_read(f->path, k, sizeof k, false, &err), PT_EMALFORMED);
    assert_non_null(strstr(err.msg, "not a regular file"));
    assert_int_equal(keys_curve_public_from_z85("short", k, &err), PT_EMALFORMED);
    assert_string_equal(err.msg, "a CURVE public key is 40 Z85 characters, found 5");
    assert_int_equal(
        keys_curve_public_from_z85("R2zk+4+4q[+FV7XsIsJ03n3]-iB^o!+kkpc08I/\"", k, &err),
        PT_EMALFORMED);
}

static void
test_write_replaces_atomically(void **state)
{
    fixture_t *f = *state;
    pt_error_t err;
    uint8_t a[32], b[32], out[32];
    memset(a, 0xaa, sizeof a);
    memset(b, 0xbb, sizeof b);
    const char *path = in_dir(f, "k.pub");
    assert_int_equal(keys_write_public(path, a, sizeof a, &err), 0);
    assert_int_equal(keys_write_public(path, b, sizeof b, &err), 0);
    assert_int_equal(keys_read(path, out, sizeof out, false, &err), 0);
    assert_memory_equal(out, b, sizeof b);
    assert_int_equal(keys_write_public(path, a, 30, &err), PT_EINVALID);
    assert_int_equal(keys_write_public(in_dir(f, "no/such/dir.pub"), a, 32, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "dir.pub.tmp: cannot create"));
}

static void
test_fingerprint(void **state)
{
    (void)state;
    uint8_t pk[32] = {0}, pk2[32] = {1};
    char fp[17], fp2[17];
    keys_fingerprint(pk, fp);
    keys_fingerprint(pk2, fp2);
    assert_int_equal(strlen(fp), 16);
    assert_int_equal(strspn(fp, "0123456789abcdef"), 16);
    assert_string_not_equal(fp, fp2);
    /* It is the start of BLAKE2b-64 of the key. */
    uint8_t h[8];
    char hex[17];
    crypto_generichash(h, sizeof h, pk, sizeof pk, NULL, 0);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    assert_string_equal(fp, hex);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_curve_generate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_generate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hmac_generate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_open_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_other_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_writable_folder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tmp_link_not_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protect_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_replaces_atomically, setup, teardown),
        cmocka_unit_test(test_fingerprint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
