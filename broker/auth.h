/* auth: the broker's ZAP handler (ZeroMQ RFC 27). It maps each client's CURVE public
 * key to a partner id (domain PT_ZAP_DOMAIN_PARTNERS) or to an administrator (domain
 * PT_ZAP_DOMAIN_ADMIN), and refuses everything else: unknown keys, a partner key on
 * the admin socket, NULL and PLAIN mechanisms. Refusals are logged with the key's
 * fingerprint, never a secret. The ZAP User-Id it returns is the partner id, which
 * the broker reads back from every message (the only trusted sender identity). */
#ifndef PT_AUTH_H
#define PT_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "bconfig.h"
#include "err.h"

#define PT_ZAP_DOMAIN_PARTNERS "ptibus-partners"
#define PT_ZAP_DOMAIN_ADMIN "ptibus-admin"
/* User-Id of administrators: "admin:" + their name in admin.keys (bconfig_t.admin_names:
 * unique; for a key given in the deprecated inline form, the hex of BLAKE2b-256 of the
 * key, the whole digest, not the 64-bit fingerprint of the logs): ADMIN records name
 * who acted. */
#define PT_ADMIN_USER_PREFIX "admin:"
#define PT_ADMIN_ID_BYTES 32
#define PT_ADMIN_USER_MAX (sizeof PT_ADMIN_USER_PREFIX + 2 * PT_ADMIN_ID_BYTES)
/* (PT_ADMIN_NAME_MAX <= 2 * PT_ADMIN_ID_BYTES: a name fits too.) */

typedef struct auth auth_t;

/* Binds the ZAP endpoint in zctx. cfg is borrowed for the handler's lifetime.
 * Caller owns *out; close with auth_close(). Must be opened before any CURVE socket
 * of the context binds. */
int auth_open(void *zctx, const bconfig_t *cfg, auth_t **out, pt_error_t *err);

/* Closes the ZAP socket; accepts NULL; sets *a to NULL. */
void auth_close(auth_t **a);

/* Reload: prepare allocates the per-partner state for n_partners (returns 0 or
 * -ENOMEM, nothing changed); once the config's partners are swapped (cfg, borrowed,
 * holds the new ones), commit moves each kept partner's state by from (new index ->
 * old index, -1: new partner), or with from NULL drops what prepare made. From then on
 * ZAP knows only the new partners' keys. */
int auth_reload_prepare(auth_t *a, size_t n_partners);
void auth_reload_commit(auth_t *a, const ptrdiff_t *from);

/* The ZAP REP socket, for an event loop to poll. */
void *auth_socket(auth_t *a);

/* Answers every pending ZAP request without blocking. Returns the number handled. */
int auth_handle(auth_t *a);

/* Watches sock's handshakes (zmq_socket_monitor): failures that never reach the ZAP
 * handler — a client without CURVE (NULL or PLAIN), a wrong server key — are logged and
 * counted as refusals. name labels the socket in logs ("partners", "admin"). At most
 * PT_AUTH_MAX_WATCH sockets. */
#define PT_AUTH_MAX_WATCH 2
int auth_watch(auth_t *a, void *zctx, void *sock, const char *name, pt_error_t *err);

/* The i-th monitor socket (NULL past the last). */
void *auth_monitor_socket(auth_t *a, int i);

/* Logs every pending handshake event of the i-th monitor, without blocking. */
void auth_handle_events(auth_t *a, int i);

/* Counters for metrics. */
uint64_t auth_refused_count(const auth_t *a);
uint64_t auth_accepted_count(const auth_t *a);

#endif
