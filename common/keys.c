/* keys: Z85 key files, written atomically and read with a permission check. */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <zmq.h>

#include "atomicfile.h"

/* The Z85 alphabet (ZeroMQ RFC 32); zmq_z85_decode does not check every byte. */
static const char z85_chars[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                ".-:+=^!/*?&<>()[]{}@%$#";

static bool
z85_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || strchr(z85_chars, s[i]) == NULL)
            return false;
    return true;
}

static int
write_key(const char *path, const uint8_t *key, size_t len, mode_t mode, pt_error_t *err)
{
    char text[PT_KEY_Z85_MAX + 2];
    if (len == 0 || len % 4 != 0 || len > PT_SIGN_SK_LEN)
        return pt_error_set(err, PT_EINVALID, path, "a key of %zu bytes cannot be stored", len);
    if (zmq_z85_encode(text, key, len) == NULL)
        return pt_error_set(err, PT_EINTERNAL, path, "Z85 encoding failed");
    size_t n = len / 4 * 5;
    text[n] = '\n';
    int rc = atomicfile_write(path, text, n + 1, mode, err);
    sodium_memzero(text, sizeof text);
    return rc;
}

int
keys_write_secret(const char *path, const uint8_t *key, size_t len, pt_error_t *err)
{
    return write_key(path, key, len, 0600, err);
}

int
keys_write_public(const char *path, const uint8_t *key, size_t len, pt_error_t *err)
{
    return write_key(path, key, len, 0644, err);
}

/* The folder of path, opened: it must not be writable by group or others, who could
 * otherwise swap the key file for theirs. base receives the last component. */
static int
open_parent(const char *path, const char **base, pt_error_t *err)
{
    char dir[4096] = ".";
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
    if (slash != NULL) {
        size_t dl = slash == path ? 1 : (size_t)(slash - path); /* "/x" is in "/" */
        if (dl >= sizeof dir)
            return pt_error_set(err, -ENAMETOOLONG, path, "path too long");
        memcpy(dir, path, dl);
        dir[dl] = '\0';
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return pt_error_set(err, -errno, path, "cannot open the key file's folder: %s",
                            strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(dfd, &st) != 0)
        rc = pt_error_set(err, -errno, path, "cannot stat the folder: %s", strerror(errno));
    else if ((st.st_mode & 022) != 0)
        rc = pt_error_set(err, PT_EDENIED, path,
                          "the key file's folder %s has mode %04o, writable by group or others; "
                          "fix it with: chmod go-w %s",
                          dir, (unsigned)(st.st_mode & 07777), dir);
    if (rc != 0) {
        close(dfd);
        return rc;
    }
    return dfd;
}

/* The checks on the opened file (fstat: no race with the path). */
static int
check_opened(int fd, const char *path, bool secret, pt_error_t *err)
{
    struct stat st;
    uid_t euid = geteuid();
    if (fstat(fd, &st) != 0)
        return pt_error_set(err, -errno, path, "cannot stat: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return pt_error_set(err, PT_EMALFORMED, path, "not a regular file");
    if (st.st_uid != euid && st.st_uid != 0)
        return pt_error_set(err, PT_EDENIED, path,
                            "key file owned by uid %u, not by this process's user (uid %u) nor "
                            "root; fix it with: chown %u %s",
                            (unsigned)st.st_uid, (unsigned)euid, (unsigned)euid, path);
    if (secret && (st.st_mode & 077) != 0)
        return pt_error_set(err, PT_EDENIED, path,
                            "secret key file has mode %04o, readable or writable by group or "
                            "others; fix it with: chmod 600 %s",
                            (unsigned)(st.st_mode & 07777), path);
    return 0;
}

/* Opens path for reading and checks it: not a symbolic link, a regular file owned by
 * the euid or root, in a folder others cannot write, private if secret. */
static int
open_checked(const char *path, bool secret, pt_error_t *err)
{
    const char *base;
    int dfd = open_parent(path, &base, err);
    if (dfd < 0)
        return dfd;
    int fd = openat(dfd, base, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY);
    int e = errno;
    close(dfd);
    if (fd < 0 && e == ELOOP)
        return pt_error_set(err, PT_EDENIED, path,
                            "is a symbolic link; key files are read only from the file itself "
                            "(point the configuration at the real file)");
    if (fd < 0)
        return pt_error_set(err, -e, path, "cannot open the key file: %s", strerror(e));
    int rc = check_opened(fd, path, secret, err);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    return fd;
}

/* Reads the file's one line (a trailing "\n" or "\r\n" is dropped) into text. */
static int
read_line(int fd, const char *path, char *text, size_t size, size_t *len, pt_error_t *err)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, text + n, size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return pt_error_set(err, -errno, path, "read error: %s", strerror(errno));
        if (r == 0 || (n += (size_t)r) == size)
            break;
    }
    if (n == size)
        return pt_error_set(err, PT_EMALFORMED, path, "too long for a key file");
    if (n > 0 && text[n - 1] == '\n')
        n--;
    if (n > 0 && text[n - 1] == '\r')
        n--;
    text[n] = '\0';
    *len = n;
    return 0;
}

static int
decode_key(const char *path, const char *text, size_t n, uint8_t *key, size_t len, pt_error_t *err)
{
    size_t want = len / 4 * 5;
    if (n != want)
        return pt_error_set(err, PT_EMALFORMED, path,
                            "expected %zu Z85 characters (a %zu-byte key), found %zu", want, len,
                            n);
    if (!z85_valid(text, n) || zmq_z85_decode(key, text) == NULL)
        return pt_error_set(err, PT_EMALFORMED, path, "not valid Z85 text");
    return 0;
}

int
keys_read(const char *path, uint8_t *key, size_t len, bool secret, pt_error_t *err)
{
    char text[PT_KEY_Z85_MAX + 8];
    size_t n = 0;
    if (len == 0 || len % 4 != 0 || len > PT_SIGN_SK_LEN)
        return pt_error_set(err, PT_EINVALID, path, "a key of %zu bytes cannot be stored", len);
    int fd = open_checked(path, secret, err);
    if (fd < 0)
        return fd;
    int rc = read_line(fd, path, text, sizeof text - 1, &n, err);
    close(fd);
    if (rc == 0)
        rc = decode_key(path, text, n, key, len, err);
    sodium_memzero(text, sizeof text);
    return rc;
}

int
keys_secret_load(const char *path, size_t len, uint8_t **out, pt_error_t *err)
{
    *out = NULL;
    if (sodium_init() < 0)
        return pt_error_set(err, PT_EINTERNAL, path, "sodium_init failed");
    uint8_t *k = sodium_malloc(len ? len : 1);
    if (k == NULL)
        return pt_error_set(err, -ENOMEM, path, "cannot allocate guarded memory for the key");
    int rc = keys_read(path, k, len, true, err);
    if (rc == 0 && sodium_mprotect_readonly(k) != 0)
        rc = pt_error_set(err, -errno, path, "cannot make the key read-only: %s", strerror(errno));
    if (rc != 0) {
        sodium_free(k); /* zeroes it first */
        return rc;
    }
    *out = k;
    return 0;
}

void
keys_secret_free(uint8_t **key)
{
    if (key == NULL || *key == NULL)
        return;
    sodium_free(*key); /* makes it writable, zeroes it, unmaps it with its guard pages */
    *key = NULL;
}

int
keys_protect_process(pt_error_t *err)
{
    struct rlimit none = {0, 0};
    if (setrlimit(RLIMIT_CORE, &none) != 0)
        return pt_error_set(err, -errno, "process", "setrlimit(RLIMIT_CORE, 0): %s",
                            strerror(errno));
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        return pt_error_set(err, -errno, "process", "prctl(PR_SET_DUMPABLE, 0): %s",
                            strerror(errno));
    return 0;
}

int
keys_curve_public_from_z85(const char *z85, uint8_t out[PT_KEY_LEN], pt_error_t *err)
{
    size_t n = strnlen(z85, PT_KEY_Z85_MAX + 1);
    if (n != 40)
        return pt_error_set(err, PT_EMALFORMED, NULL,
                            "a CURVE public key is 40 Z85 characters, found %zu", n);
    if (!z85_valid(z85, n) || zmq_z85_decode(out, z85) == NULL)
        return pt_error_set(err, PT_EMALFORMED, NULL, "not valid Z85 text");
    return 0;
}

void
keys_fingerprint(const uint8_t pk[PT_KEY_LEN], char out[PT_FINGERPRINT_LEN + 1])
{
    uint8_t h[PT_FINGERPRINT_LEN / 2];
    /* BLAKE2b works before sodium_init() (reference implementation). */
    crypto_generichash(h, sizeof h, pk, PT_KEY_LEN, NULL, 0);
    sodium_bin2hex(out, PT_FINGERPRINT_LEN + 1, h, sizeof h);
}

/* DIR/NAME<suffix>, refusing to overwrite an existing file. */
static int
key_path(const char *dir, const char *name, const char *suffix, char *buf, size_t size,
         pt_error_t *err)
{
    if ((size_t)snprintf(buf, size, "%s/%s%s", dir, name, suffix) >= size)
        return pt_error_set(err, -ENAMETOOLONG, dir, "path too long");
    if (access(buf, F_OK) == 0)
        return pt_error_set(err, -EEXIST, buf,
                            "already exists; remove it first if you mean to replace the key");
    return 0;
}

/* Writes a secret and (when pk != NULL) a public key file beside it. */
static int
write_pair(const char *dir, const char *name, const char *sk_suffix, const uint8_t *sk,
           size_t sk_len, const char *pk_suffix, const uint8_t *pk, pt_error_t *err)
{
    char sk_path[4096], pk_path[4096];
    int rc = key_path(dir, name, sk_suffix, sk_path, sizeof sk_path, err);
    if (rc == 0 && pk != NULL)
        rc = key_path(dir, name, pk_suffix, pk_path, sizeof pk_path, err);
    if (rc == 0)
        rc = keys_write_secret(sk_path, sk, sk_len, err);
    if (rc == 0 && pk != NULL)
        rc = keys_write_public(pk_path, pk, PT_KEY_LEN, err);
    return rc;
}

int
keys_curve_generate(const char *dir, const char *name, pt_error_t *err)
{
    char pk_z85[41], sk_z85[41];
    uint8_t pk[PT_KEY_LEN], sk[PT_KEY_LEN];
    int rc = 0;
    if (zmq_curve_keypair(pk_z85, sk_z85) != 0 || zmq_z85_decode(pk, pk_z85) == NULL ||
        zmq_z85_decode(sk, sk_z85) == NULL)
        rc = pt_error_set(err, PT_EINTERNAL, name, "zmq_curve_keypair failed: %s",
                          zmq_strerror(zmq_errno()));
    if (rc == 0)
        rc = write_pair(dir, name, ".key", sk, sizeof sk, ".pub", pk, err);
    sodium_memzero(sk_z85, sizeof sk_z85);
    sodium_memzero(sk, sizeof sk);
    return rc;
}

int
keys_sign_generate(const char *dir, const char *name, pt_error_t *err)
{
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    if (sodium_init() < 0)
        return pt_error_set(err, PT_EINTERNAL, name, "sodium_init failed");
    crypto_sign_keypair(pk, sk);
    int rc = write_pair(dir, name, ".sign", sk, sizeof sk, ".sign.pub", pk, err);
    sodium_memzero(sk, sizeof sk);
    return rc;
}

int
keys_hmac_generate(const char *dir, const char *name, pt_error_t *err)
{
    uint8_t key[PT_KEY_LEN];
    if (sodium_init() < 0)
        return pt_error_set(err, PT_EINTERNAL, name, "sodium_init failed");
    randombytes_buf(key, sizeof key);
    int rc = write_pair(dir, name, ".hmac", key, sizeof key, NULL, NULL, err);
    sodium_memzero(key, sizeof key);
    return rc;
}
