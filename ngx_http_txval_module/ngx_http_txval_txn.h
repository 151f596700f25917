
/*
 * txval: the transaction, parsed and validated.
 *
 * Pure C, no nginx types and no I/O: the parser, the field rules and the
 * content fingerprint, usable from unit tests and fuzzers.
 */


#ifndef _NGX_HTTP_TXVAL_TXN_H_INCLUDED_
#define _NGX_HTTP_TXVAL_TXN_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define NGX_HTTP_TXVAL_ID_MAX          64
#define NGX_HTTP_TXVAL_MERCHANT_MAX    64
#define NGX_HTTP_TXVAL_TOKEN_MAX       128
#define NGX_HTTP_TXVAL_BIN_MIN         6
#define NGX_HTTP_TXVAL_BIN_MAX         8
#define NGX_HTTP_TXVAL_AMOUNT_MAX      9007199254740991LL

/* a content fingerprint: the first 128 bits of a SHA-256 */
#define NGX_HTTP_TXVAL_DIGEST_LEN      16


typedef enum {
    NGX_HTTP_TXVAL_PARSE_OK = 0,
    NGX_HTTP_TXVAL_PARSE_INVALID_JSON,
    NGX_HTTP_TXVAL_PARSE_INVALID_FIELD,
    NGX_HTTP_TXVAL_PARSE_PAN
} ngx_http_txval_parse_rc_e;


typedef struct {
    int64_t                  amount;
    unsigned char            fingerprint[NGX_HTTP_TXVAL_DIGEST_LEN];

    uint8_t                  id_len;
    uint8_t                  merchant_id_len;
    uint8_t                  card_token_len;
    uint8_t                  card_bin_len;       /* 0: absent */

    char                     id[NGX_HTTP_TXVAL_ID_MAX + 1];
    char                     merchant_id[NGX_HTTP_TXVAL_MERCHANT_MAX + 1];
    char                     card_token[NGX_HTTP_TXVAL_TOKEN_MAX + 1];
    char                     card_bin[NGX_HTTP_TXVAL_BIN_MAX + 1];
    char                     currency[4];
    char                     country[3];         /* "": absent */
} ngx_http_txval_txn_t;


typedef struct {
    const char              *field;     /* INVALID_FIELD: the field's name */
    const char              *detail;    /* a sentence for the client */
} ngx_http_txval_parse_error_t;


/*
 * Parses and validates a request body (len bytes, not NUL-terminated).
 * On success fills txn, including its content fingerprint.
 */
ngx_http_txval_parse_rc_e ngx_http_txval_txn_parse(const unsigned char *buf,
    size_t len, ngx_http_txval_txn_t *txn, ngx_http_txval_parse_error_t *err);

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
 * A guess at the id, without parsing: the value of the first "id" key,
 * if it is a plain string of 1 to NGX_HTTP_TXVAL_ID_MAX characters with
 * no escape. 0: found. Only as good as a guess: a replay of the very same
 * bytes (see ngx_http_txval_siphash()) is what confirms it.
 */
int ngx_http_txval_txn_peek_id(const unsigned char *buf, size_t len,
    const unsigned char **id, size_t *id_len);

/* SipHash-2-4 with its 128-bit output, of len bytes under a 16-byte key */
void ngx_http_txval_siphash128(const unsigned char *key,
    const unsigned char *in, size_t len, uint64_t out[2]);


#endif /* _NGX_HTTP_TXVAL_TXN_H_INCLUDED_ */
