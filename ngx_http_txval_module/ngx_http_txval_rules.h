
/*
 * txval: the rules, the risk score and the verdict.
 *
 * Pure C, no nginx types and no I/O. Inputs: the parsed transaction, the
 * policy from the configuration, and the facts the backends supplied
 * (plain structs). Output: the reasons (a bit set, in SPEC order) and the
 * risk score.
 */


#ifndef _NGX_HTTP_TXVAL_RULES_H_INCLUDED_
#define _NGX_HTTP_TXVAL_RULES_H_INCLUDED_


#include "ngx_http_txval_txn.h"


/* the reasons, in the order a verdict lists them */
typedef enum {
    NGX_HTTP_TXVAL_CURRENCY_NOT_SUPPORTED = 0,
    NGX_HTTP_TXVAL_AMOUNT_OUT_OF_RANGE,
    NGX_HTTP_TXVAL_MERCHANT_UNKNOWN,
    NGX_HTTP_TXVAL_MERCHANT_INACTIVE,
    NGX_HTTP_TXVAL_MERCHANT_LIMIT_EXCEEDED,
    NGX_HTTP_TXVAL_CURRENCY_NOT_ALLOWED,
    NGX_HTTP_TXVAL_CARD_BLOCKED,
    NGX_HTTP_TXVAL_BIN_BLOCKED,
    NGX_HTTP_TXVAL_VELOCITY_EXCEEDED,
    NGX_HTTP_TXVAL_RISK_TOO_HIGH,
    NGX_HTTP_TXVAL_NREASONS
} ngx_http_txval_reason_e;

#define NGX_HTTP_TXVAL_REASONS_ALL   ((1u << NGX_HTTP_TXVAL_NREASONS) - 1)


typedef struct {
    char                     currency[4];
    int64_t                  min;
    int64_t                  max;
} ngx_http_txval_limit_t;


typedef struct {
    const ngx_http_txval_limit_t  *limits;
    size_t                         nlimits;
    unsigned                       risk_threshold;   /* 0-100 */
    unsigned                       velocity_count;   /* 0: velocity off */
} ngx_http_txval_policy_t;


/* what the backends told; a part whose flag is 0 did not apply */
typedef struct {
    unsigned                 pg:1;               /* Postgres facts known */
    unsigned                 merchant_found:1;
    unsigned                 merchant_active:1;
    unsigned                 merchant_has_max:1;
    unsigned                 currency_allowed:1;
    unsigned                 card_found:1;
    unsigned                 card_blocked:1;
    unsigned                 bin_blocked:1;

    unsigned                 velocity:1;         /* velocity count known */

    int64_t                  merchant_max;
    uint64_t                 velocity_count;     /* this one included */
    char                     card_country[3];    /* "": unknown */
} ngx_http_txval_facts_t;


/* the parts of a Postgres lookup: the rows asked for, or known */
#define NGX_HTTP_TXVAL_ROW_MERCHANT    0x01u
#define NGX_HTTP_TXVAL_ROW_CARD        0x02u
#define NGX_HTTP_TXVAL_ROW_BIN6        0x04u     /* the BIN's first 6 digits */
#define NGX_HTTP_TXVAL_ROW_BIN7        0x08u
#define NGX_HTTP_TXVAL_ROW_BIN8        0x10u
#define NGX_HTTP_TXVAL_ROW_BINS        0x1cu
#define NGX_HTTP_TXVAL_ROW_BIN(len)    (NGX_HTTP_TXVAL_ROW_BIN6 << ((len) - 6))

/* the most currencies of a merchant a lookup cache entry holds */
#define NGX_HTTP_TXVAL_CURRENCIES_MAX  32


/*
 * What Postgres holds about a merchant, a card and the prefixes of a BIN,
 * as the rules read it. A merchant row keeps its currencies, not whether
 * the transaction's is one of them, so that one row serves every
 * transaction of that merchant (currency_allowed is the asking
 * transaction's).
 */
typedef struct {
    unsigned                 found:1;
    unsigned                 active:1;
    unsigned                 has_max:1;
    unsigned                 restricted:1;       /* a non-empty list */
    unsigned                 listed:1;           /* all of it below */
    unsigned                 currency_allowed:1;
    unsigned                 ncurrencies;
    int64_t                  max;

    /* the well-formed codes (3 uppercase letters), sorted, no repeats */
    char                     currencies[NGX_HTTP_TXVAL_CURRENCIES_MAX * 3];
} ngx_http_txval_merchant_row_t;


typedef struct {
    unsigned                 found:1;
    unsigned                 blocked:1;          /* blocked, lost, stolen */
    char                     country[3];         /* "": none */
} ngx_http_txval_card_row_t;


typedef struct {
    unsigned                 have;               /* NGX_HTTP_TXVAL_ROW_* */
    unsigned                 bins;               /* the blocked prefixes */
    ngx_http_txval_merchant_row_t  merchant;
    ngx_http_txval_card_row_t      card;
} ngx_http_txval_rows_t;


typedef struct {
    uint32_t                 reasons;            /* 1 << reason */
    uint32_t                 risk_score;         /* 0-100 */
} ngx_http_txval_result_t;


/* what a cache (shm or Redis) keeps of a verdict */
typedef struct {
    unsigned char            fingerprint[NGX_HTTP_TXVAL_DIGEST_LEN];
    uint16_t                 reasons;
    uint8_t                  risk_score;
} ngx_http_txval_record_t;


void ngx_http_txval_rules_eval(const ngx_http_txval_txn_t *txn,
    const ngx_http_txval_policy_t *policy,
    const ngx_http_txval_facts_t *facts, ngx_http_txval_result_t *result);

/*
 * The parts of the rows a transaction's rules read: the merchant, the
 * card, and a BIN prefix of each length from 6 to the BIN's.
 */
unsigned ngx_http_txval_rows_wanted(const ngx_http_txval_txn_t *txn);

/* the parts from has, copied into into */
void ngx_http_txval_rows_merge(ngx_http_txval_rows_t *into,
    const ngx_http_txval_rows_t *from);

/* the Postgres facts of a transaction, from rows that have every part */
void ngx_http_txval_rows_facts(const ngx_http_txval_txn_t *txn,
    const ngx_http_txval_rows_t *rows, ngx_http_txval_facts_t *facts);

/*
 * A text[] as Postgres writes it ("{USD,EUR}", "[0:1]={...}", quoted
 * elements...) into the merchant's list: restricted when it has an
 * element, listed when its well-formed codes fit the row. 0, or -1 when
 * it is not an array literal.
 */
int ngx_http_txval_currencies_parse(const char *text, size_t len,
    ngx_http_txval_merchant_row_t *m);

/* whether the merchant row allows this currency (3 uppercase letters) */
int ngx_http_txval_currency_allowed(const ngx_http_txval_merchant_row_t *m,
    const char *currency);

/* the reason's name as SPEC spells it, or NULL */
const char *ngx_http_txval_reason_name(unsigned reason);


#endif /* _NGX_HTTP_TXVAL_RULES_H_INCLUDED_ */
