/* keys: key files of ptibus (CURVE key pairs, Ed25519 signing keys, HMAC keys).
 * A key file holds one line of Z85 text (32 bytes -> 40 chars, 64 bytes -> 80 chars)
 * and a newline. Secret files are written 0600 and refused when group or others may
 * read or write them; every write is atomic (tmp created O_EXCL|O_NOFOLLOW, fsync,
 * rename, fsync dir). Secrets the daemon keeps live in guarded memory. Key
 * bytes are never logged: use keys_fingerprint() to name a public key. */
#ifndef PT_KEYS_H
#define PT_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pt_limits.h"
#include "err.h"

#define PT_KEY_Z85_MAX 80 /* Z85 text of the longest key */
#define PT_FINGERPRINT_LEN 16

/* Writes key (len a multiple of 4, at most 64) as Z85 to path, atomically; the
 * secret variant with mode 0600, the public one 0644. Replaces an existing file.
 * Returns 0, -errno or PT_EINVALID, filling err with the path. */
int keys_write_secret(const char *path, const uint8_t *key, size_t len, pt_error_t *err);
int keys_write_public(const char *path, const uint8_t *key, size_t len, pt_error_t *err);

/* Reads a key of exactly len bytes from path into key. The file is opened without
 * following a symbolic link (PT_EDENIED), must be owned by the effective uid or root
 * and sit in a folder that group and others cannot write (PT_EDENIED, saying what to
 * chown or chmod); with secret, a file that group or others may access is refused
 * (PT_EDENIED, saying the mode and "chmod 600"). All checks are made on the opened fd.
 * A file that is not regular, too long, of the wrong length or not Z85 is
 * PT_EMALFORMED, with the path. */
int keys_read(const char *path, uint8_t *key, size_t len, bool secret, pt_error_t *err);

/* Reads a secret key of len bytes (as keys_read with secret) into memory from
 * sodium_malloc(): guard pages around it, locked out of swap where RLIMIT_MEMLOCK
 * allows, left out of core dumps (MADV_DONTDUMP), then made read-only. Nothing of the
 * key is left on the stack. Caller owns *out; free with keys_secret_free(). */
int keys_secret_load(const char *path, size_t len, uint8_t **out, pt_error_t *err);

/* Zeroes and frees a key from keys_secret_load(); accepts NULL, sets *key to NULL. */
void keys_secret_free(uint8_t **key);

/* Before any secret is read: no core dump (RLIMIT_CORE 0, soft and hard) and not
 * dumpable (PR_SET_DUMPABLE 0: no core, no ptrace attach or /proc/PID/mem read by
 * processes of the same uid without CAP_SYS_PTRACE, /proc/PID files owned by root).
 * Returns 0 or -errno. */
int keys_protect_process(pt_error_t *err);

/* Creates DIR/NAME.key (CURVE secret, 0600) and DIR/NAME.pub (public, 0644). Refuses
 * (-EEXIST) to overwrite an existing key file. */
int keys_curve_generate(const char *dir, const char *name, pt_error_t *err);

/* Creates DIR/NAME.sign (64-byte Ed25519 secret, 0600) and DIR/NAME.sign.pub. */
int keys_sign_generate(const char *dir, const char *name, pt_error_t *err);

/* Creates DIR/NAME.hmac (32 random bytes, 0600). */
int keys_hmac_generate(const char *dir, const char *name, pt_error_t *err);

/* Hex of the first 8 bytes of BLAKE2b(pk): a short name for a public key in logs. */
void keys_fingerprint(const uint8_t pk[PT_KEY_LEN], char out[PT_FINGERPRINT_LEN + 1]);

/* Decodes a 40-character Z85 CURVE public key. PT_EMALFORMED otherwise. */
int keys_curve_public_from_z85(const char *z85, uint8_t out[PT_KEY_LEN], pt_error_t *err);

#endif
