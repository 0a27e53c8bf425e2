/* pt_limits: sizes shared by several modules, in one place (named pt_limits.h so that it
 * never shadows the C library's <limits.h>). */
#ifndef PT_PT_LIMITS_H
#define PT_PT_LIMITS_H

/* A ZeroMQ ROUTER routing id: libzmq's own are 5 bytes, a peer-chosen one at most 255. */
#define PT_RID_MAX 256

/* Recipients of one message (routed and journaled). */
#define PT_MAX_RECIPIENTS 32

#endif
