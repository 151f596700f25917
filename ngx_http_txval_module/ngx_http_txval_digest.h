
/*
 * txval: the transaction's digests.
 *
 * Pure C, no nginx types: the content fingerprint that idempotency
 * compares (a SHA-256: no key, every host computes the same), and the
 * keyed hash of a request's bytes that confirms a replay before it is
 * parsed (SipHash-2-4, 128 bits), usable from unit tests and fuzzers.
 */


#ifndef _NGX_HTTP_TXVAL_DIGEST_H_INCLUDED_
#define _NGX_HTTP_TXVAL_DIGEST_H_INCLUDED_


#include "ngx_http_txval_txn.h"


/* SipHash-2-4, fed in pieces */
typedef struct {
    uint64_t                 v0, v1, v2, v3;
    uint64_t                 total;
    size_t                   nbuf;
    unsigned char            buf[8];
} ngx_http_txval_siphash_t;


/*
 * The first 128 bits of a SHA-256 over every content field of the
 * transaction, each field length-prefixed: two transactions with the same
 * fingerprint have the same content unless someone finds a SHA-256
 * collision on 128 bits (2^64 work), and no key is needed, so that every
 * host computes the same one.
 */
void ngx_http_txval_txn_fingerprint(const ngx_http_txval_txn_t *txn,
    unsigned char *fp);

/*
 * The keyed hash of a request as the mapping reads it: the body's bytes,
 * then each supplied value after its length, then the mapping's tag. Two
 * requests with the same hash read the same fields.
 */
void ngx_http_txval_txn_raw(const unsigned char *key,
    const unsigned char *buf, size_t len,
    const ngx_http_txval_mapping_t *map,
    const ngx_http_txval_value_t *values, uint64_t raw[2]);

void ngx_http_txval_siphash_init(ngx_http_txval_siphash_t *s,
    const unsigned char *key);
void ngx_http_txval_siphash_update(ngx_http_txval_siphash_t *s,
    const unsigned char *in, size_t len);
void ngx_http_txval_siphash_final(ngx_http_txval_siphash_t *s,
    uint64_t out[2]);

/* SipHash-2-4 with its 128-bit output, of len bytes under a 16-byte key */
void ngx_http_txval_siphash128(const unsigned char *key,
    const unsigned char *in, size_t len, uint64_t out[2]);


#endif /* _NGX_HTTP_TXVAL_DIGEST_H_INCLUDED_ */
