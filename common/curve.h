/* curve: the one place where ZeroMQ sockets get their CURVE role: the broker's ROUTER
 * sockets as servers (secret key, ZAP domain, a bounded handshake) and the clients'
 * DEALER sockets (the broker's public key, their own pair). Owns nothing: it sets
 * options on the caller's socket before it binds or connects. */
#ifndef PT_CURVE_H
#define PT_CURVE_H

#include <stdint.h>

#include "err.h"
#include "pt_limits.h"

/* A CURVE server on sock: secret key sk, ZAP domain (the ZAP handler decides who gets
 * in), and handshake_ms for an accepted connection to finish its handshake. */
int curve_server_setup(void *sock, const uint8_t sk[PT_KEY_LEN], const char *zap_domain,
                       int handshake_ms, pt_error_t *err);

/* A CURVE client on sock: the server's public key and this side's key pair. */
int curve_client_setup(void *sock, const uint8_t server_pk[PT_KEY_LEN],
                       const uint8_t client_pk[PT_KEY_LEN], const uint8_t client_sk[PT_KEY_LEN],
                       pt_error_t *err);

#endif
