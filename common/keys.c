/* keys: Z85 key files, written atomically and read with a permission check. */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <zmq.h>

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
fsync_dir_of(const char *path)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return -ENOMEM;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

static int
write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Writes text to path.tmp with mode, fsyncs, renames over path and fsyncs the dir. */
static int
write_atomic(const char *path, const char *text, size_t len, mode_t mode, pt_error_t *err)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return pt_error_set(err, -ENAMETOOLONG, path, "path too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return pt_error_set(err, -errno, tmp, "cannot create: %s", strerror(errno));
    int rc = fchmod(fd, mode) == 0 ? 0 : -errno; /* the umask must not widen or narrow it */
    if (rc == 0)
        rc = write_all(fd, text, len);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc == 0)
        rc = fsync_dir_of(path);
    if (rc != 0) {
        unlink(tmp);
        return pt_error_set(err, rc, path, "cannot write the key file: %s", strerror(-rc));
    }
    return 0;
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
    int rc = write_atomic(path, text, n + 1, mode, err);
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

/* Opens path for reading and checks it: a regular file, private if secret. */
static int
open_checked(const char *path, bool secret, pt_error_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return pt_error_set(err, -errno, path, "cannot open the key file: %s", strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = pt_error_set(err, -errno, path, "cannot stat: %s", strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = pt_error_set(err, PT_EMALFORMED, path, "not a regular file");
    else if (secret && (st.st_mode & 077) != 0)
        rc = pt_error_set(err, PT_EDENIED, path,
                          "secret key file has mode %04o, readable or writable by group or "
                          "others; fix it with: chmod 600 %s",
                          (unsigned)(st.st_mode & 07777), path);
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
