/* curve: CURVE roles on ZeroMQ sockets (see curve.h). */
#include "curve.h"

#include <stdint.h>
#include <string.h>

#include <zmq.h>

static int
fail(pt_error_t *err, const char *what)
{
    int e = zmq_errno();
    return pt_error_set(err, -e, what, "%s", zmq_strerror(e));
}

int
curve_server_setup(void *sock, const uint8_t sk[PT_KEY_LEN], const char *zap_domain,
                   int handshake_ms, pt_error_t *err)
{
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sk, PT_KEY_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, zap_domain, strlen(zap_domain)) != 0 ||
        zmq_setsockopt(sock, ZMQ_HANDSHAKE_IVL, &handshake_ms, sizeof handshake_ms) != 0)
        return fail(err, "zmq_setsockopt(CURVE server)");
    return 0;
}

int
curve_client_setup(void *sock, const uint8_t server_pk[PT_KEY_LEN],
                   const uint8_t client_pk[PT_KEY_LEN], const uint8_t client_sk[PT_KEY_LEN],
                   pt_error_t *err)
{
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_pk, PT_KEY_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, client_pk, PT_KEY_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, client_sk, PT_KEY_LEN) != 0)
        return fail(err, "zmq_setsockopt(CURVE client)");
    return 0;
}
