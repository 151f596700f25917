
/*
 * txval: Redis Cluster's key slots and redirections.
 *
 * Pure C, no nginx types.
 */


#ifndef _NGX_HTTP_TXVAL_SLOT_H_INCLUDED_
#define _NGX_HTTP_TXVAL_SLOT_H_INCLUDED_


#include <stddef.h>


#define NGX_HTTP_TXVAL_SLOTS         16384
#define NGX_HTTP_TXVAL_HOST_MAX      64       /* numeric address, NUL */


typedef struct {
    unsigned    slot;
    unsigned    port;
    int         ask;                           /* ASK, else MOVED */
    char        host[NGX_HTTP_TXVAL_HOST_MAX];
} ngx_http_txval_redirect_t;


/* the slot of a key: CRC16 (XMODEM) of the key or of its {hash tag} */
unsigned ngx_http_txval_slot(const unsigned char *key, size_t len);

/*
 * An error reply "MOVED <slot> <ip>:<port>" or "ASK <slot> <ip>:<port>":
 * 0 and *rd filled in, -1 for any other error or a malformed one.
 */
int ngx_http_txval_redirect(const char *err, size_t len,
    ngx_http_txval_redirect_t *rd);


#endif /* _NGX_HTTP_TXVAL_SLOT_H_INCLUDED_ */
