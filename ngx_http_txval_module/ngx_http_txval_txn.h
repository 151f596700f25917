
/*
 * txval: the transaction, parsed and validated.
 *
 * Pure C, no nginx types and no I/O: the field mapping (where each field
 * is read: a JSON pointer into the body, or a value the caller supplies),
 * the parser and field rules, amounts scaled by the ISO 4217 exponent of
 * their currency, and the replay path's id guess (the digests: in
 * ngx_http_txval_digest.h), usable from unit tests and fuzzers.
 */


#ifndef _NGX_HTTP_TXVAL_TXN_H_INCLUDED_
#define _NGX_HTTP_TXVAL_TXN_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "ngx_http_txval_json.h"


#define NGX_HTTP_TXVAL_ID_MAX          64
#define NGX_HTTP_TXVAL_MERCHANT_MAX    64
#define NGX_HTTP_TXVAL_TOKEN_MAX       128
#define NGX_HTTP_TXVAL_BIN_MIN         6
#define NGX_HTTP_TXVAL_BIN_MAX         8
#define NGX_HTTP_TXVAL_AMOUNT_MAX      9007199254740991LL

/* a content fingerprint: the first 128 bits of a SHA-256 */
#define NGX_HTTP_TXVAL_DIGEST_LEN      16

/* a source as configured (for error details), and a detail */
#define NGX_HTTP_TXVAL_SOURCE_MAX      256
#define NGX_HTTP_TXVAL_DETAIL_MAX      512


typedef enum {
    NGX_HTTP_TXVAL_PARSE_OK = 0,
    NGX_HTTP_TXVAL_PARSE_INVALID_JSON,
    NGX_HTTP_TXVAL_PARSE_INVALID_FIELD,
    NGX_HTTP_TXVAL_PARSE_PAN
} ngx_http_txval_parse_rc_e;


/* the transaction's fields, in the order their errors are reported */
typedef enum {
    NGX_HTTP_TXVAL_FIELD_ID = 0,
    NGX_HTTP_TXVAL_FIELD_AMOUNT,
    NGX_HTTP_TXVAL_FIELD_CURRENCY,
    NGX_HTTP_TXVAL_FIELD_MERCHANT_ID,
    NGX_HTTP_TXVAL_FIELD_CARD_TOKEN,
    NGX_HTTP_TXVAL_FIELD_CARD_BIN,
    NGX_HTTP_TXVAL_FIELD_COUNTRY,
    NGX_HTTP_TXVAL_NFIELDS
} ngx_http_txval_field_e;


/* where a field is read */
typedef enum {
    NGX_HTTP_TXVAL_FROM_DEFAULT = 0,    /* the top-level key of its name */
    NGX_HTTP_TXVAL_FROM_POINTER,        /* a JSON pointer */
    NGX_HTTP_TXVAL_FROM_VALUE           /* a value the caller supplies */
} ngx_http_txval_from_e;


#define NGX_HTTP_TXVAL_AMOUNT_MINOR    0    /* txval_amount_format */
#define NGX_HTTP_TXVAL_AMOUNT_DECIMAL  1

#define NGX_HTTP_TXVAL_CASE_UPPER      0    /* txval_currency_case */
#define NGX_HTTP_TXVAL_CASE_ANY        1


typedef struct {
    uint8_t                      from;       /* ngx_http_txval_from_e */
    uint16_t                     text_len;
    ngx_http_txval_json_path_t   path;       /* DEFAULT, POINTER */
    char                         text[NGX_HTTP_TXVAL_SOURCE_MAX + 1];
} ngx_http_txval_source_t;


typedef struct {
    ngx_http_txval_source_t      fields[NGX_HTTP_TXVAL_NFIELDS];
    uint8_t                      amount_format;
    uint8_t                      currency_case;
    uint8_t                      values;     /* a bit per FROM_VALUE field */
    uint64_t                     tag;        /* names it in body hashes */
} ngx_http_txval_mapping_t;


/* a FROM_VALUE field's value for one request (len 0: missing) */
typedef struct {
    const unsigned char         *data;
    size_t                       len;
} ngx_http_txval_value_t;


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
    const char              *detail;    /* a sentence for the client: a
                                           static string, or buf */
    char                     buf[NGX_HTTP_TXVAL_DETAIL_MAX];
} ngx_http_txval_parse_error_t;


/*
 * The mapping: ngx_http_txval_mapping_init() makes the default (each
 * field at the top-level key of its name, minor units, uppercase
 * currencies); _pointer() and _value() set one field's source, 0 or -1
 * with *why; _done() is called once all are set. A NULL mapping anywhere
 * below is the default.
 */
void ngx_http_txval_mapping_init(ngx_http_txval_mapping_t *map);
int ngx_http_txval_mapping_field(const unsigned char *name, size_t len);
const char *ngx_http_txval_field_name(int field);
int ngx_http_txval_mapping_pointer(ngx_http_txval_mapping_t *map,
    int field, const unsigned char *text, size_t len, const char **why);
int ngx_http_txval_mapping_value(ngx_http_txval_mapping_t *map, int field,
    const unsigned char *text, size_t len, const char **why);
void ngx_http_txval_mapping_done(ngx_http_txval_mapping_t *map);

/*
 * A constant for a field (a FROM_VALUE source without variables), checked
 * when the configuration is read: 0, or -1 with *why, the rule it breaks
 * (a currency's case and a decimal amount's scale are checked per
 * request, with the mapping's settings).
 */
int ngx_http_txval_mapping_check(int field, const unsigned char *data,
    size_t len, const char **why);

/*
 * Parses and validates a request body (len bytes, not NUL-terminated),
 * reading each field where map says; values[] holds the FROM_VALUE
 * fields' values (may be NULL when there are none). On success fills txn,
 * including its content fingerprint.
 */
ngx_http_txval_parse_rc_e ngx_http_txval_txn_parse(const unsigned char *buf,
    size_t len, const ngx_http_txval_mapping_t *map,
    const ngx_http_txval_value_t *values, ngx_http_txval_txn_t *txn,
    ngx_http_txval_parse_error_t *err);

/*
 * A guess at the id, without parsing: the id's value when it is supplied,
 * else the value of the first key named like the last token of its
 * pointer ("id" by default), if it is a plain string of 1 to
 * NGX_HTTP_TXVAL_ID_MAX characters with no escape. 0: found. Only as good
 * as a guess: a replay of the very same bytes and values (see
 * ngx_http_txval_txn_raw()) is what confirms it.
 */
int ngx_http_txval_txn_peek_id(const unsigned char *buf, size_t len,
    const ngx_http_txval_mapping_t *map,
    const ngx_http_txval_value_t *values, const unsigned char **id,
    size_t *id_len);

/*
 * An amount written as a JSON number (the text, len bytes), in minor
 * units: exponent < 0, the number itself, which must be integral; else
 * major units scaled by 10^exponent, with at most exponent decimals as
 * written. 0 and *amount (1 to NGX_HTTP_TXVAL_AMOUNT_MAX), or -1.
 * Integers only, exactly.
 */
int ngx_http_txval_amount_value(const unsigned char *num, size_t len,
    int exponent, int64_t *amount);

/* the ISO 4217 minor unit exponent of a currency (3 uppercase), or -1 */
int ngx_http_txval_currency_exponent(const char *code);


#endif /* _NGX_HTTP_TXVAL_TXN_H_INCLUDED_ */
