/* zpart: drains the extra parts of a ZeroMQ message without blocking (see zpart.h). */
#include "zpart.h"

#include <stdbool.h>

size_t
zpart_drain(void *sock, zmq_msg_t *msg)
{
    size_t n = 0;
    bool more = zmq_msg_more(msg);
    while (more) {
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        /* Parts of one message arrive together: a failure here means there is none. */
        if (zmq_msg_recv(&extra, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&extra);
            break;
        }
        more = zmq_msg_more(&extra);
        zmq_msg_close(&extra);
        n++;
    }
    return n;
}
