/* pt_limits: the sizes that several modules share, in one place (named pt_limits.h so
 * that it never shadows the C library's <limits.h>). The validator enforces the text
 * ones; the others size fixed buffers. */
#ifndef PT_PT_LIMITS_H
#define PT_PT_LIMITS_H

/* message_id, correlation_id: printable ASCII 0x21-0x7e, at most this many. */
#define PT_MESSAGE_ID_MAX 64

/* Partner ids: [a-z0-9_]{1,32}. */
#define PT_PARTNER_ID_MAX 32

/* Recipients of one message (an envelope's list, routed, journaled). */
#define PT_RECIPIENTS_MAX 32

/* A ZeroMQ ROUTER routing id: libzmq's own are 5 bytes, a peer-chosen one at most 255. */
#define PT_RID_MAX 256

/* Key lengths: CURVE keys, Ed25519 public keys and HMAC keys; Ed25519 secret keys
 * (libsodium's layout: seed || public key). */
#define PT_KEY_LEN 32
#define PT_SIGN_SK_LEN 64

#endif
