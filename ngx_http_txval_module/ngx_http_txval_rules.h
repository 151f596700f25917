
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

/* the reason's name as SPEC spells it, or NULL */
const char *ngx_http_txval_reason_name(unsigned reason);


#endif /* _NGX_HTTP_TXVAL_RULES_H_INCLUDED_ */
