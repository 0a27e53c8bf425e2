/* zpart: the "one ZeroMQ message part carries one frame" rule (docs/protocol.md) on the
 * receiving side. A peer may send a message of several parts; ZeroMQ delivers all its
 * parts at once, so what follows the first part is already here and is drained without
 * blocking, never with a blocking receive that would swallow the next peer's message.
 * Owns nothing: it works on the caller's socket and message. */
#ifndef PT_ZPART_H
#define PT_ZPART_H

#include <stddef.h>

#include <zmq.h>

/* Receives and discards the parts that follow msg (the last part received from sock),
 * without blocking. Returns how many parts were discarded (0 when msg was the last). */
size_t zpart_drain(void *sock, zmq_msg_t *msg);

#endif
