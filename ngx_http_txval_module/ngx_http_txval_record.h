
/*
 * txval: a verdict as the caches keep it, and the mark of a transaction
 * being validated, as Redis holds them.
 *
 * Pure C, no nginx types: unit-tested and fuzzed. The writers fill a
 * caller's buffer and return the length written (0 if it did not fit);
 * the reader returns 0, or -1 for anything but a record.
 */


#ifndef _NGX_HTTP_TXVAL_RECORD_H_INCLUDED_
#define _NGX_HTTP_TXVAL_RECORD_H_INCLUDED_


#include "ngx_http_txval_rules.h"


/* "2;" + 4 hex digits + ";" + 3 digits + ";" + 32 hex digits */
#define NGX_HTTP_TXVAL_RECORD_MAX   (2 + 4 + 1 + 3 + 1                       \
                                     + 2 * NGX_HTTP_TXVAL_DIGEST_LEN)

/* "p;" + 32 hex digits */
#define NGX_HTTP_TXVAL_PENDING_LEN  (2 + 32)


/*
 * "2;<reasons hex>;<score>;<fingerprint as 32 hex digits>". A foreign
 * value, or a record of the older format ("1;...", a 64-bit fingerprint
 * that is no longer trusted), does not decode: a cache miss, never a
 * match.
 */
size_t ngx_http_txval_record_encode(unsigned char *buf, size_t size,
    const ngx_http_txval_record_t *rec);
int ngx_http_txval_record_decode(const unsigned char *buf, size_t len,
    ngx_http_txval_record_t *rec);

/* "p;<token as 32 hex digits>": the token names the request, any host */
size_t ngx_http_txval_pending_encode(unsigned char *buf, size_t size,
    const uint64_t token[2]);
int ngx_http_txval_is_pending(const unsigned char *buf, size_t len);


#endif /* _NGX_HTTP_TXVAL_RECORD_H_INCLUDED_ */
