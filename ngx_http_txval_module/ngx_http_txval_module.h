
/*
 * txval: configuration, per-request context and the functions the
 * module's files share.
 */


#ifndef _NGX_HTTP_TXVAL_MODULE_H_INCLUDED_
#define _NGX_HTTP_TXVAL_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_txval_txn.h"
#include "ngx_http_txval_rules.h"
#include "ngx_http_txval_output.h"


#define NGX_HTTP_TXVAL_VERSION      "0.1.0"    /* packaging/VERSION */


#define NGX_HTTP_TXVAL_OFF          0
#define NGX_HTTP_TXVAL_VERDICT      1


typedef enum {
    NGX_HTTP_TXVAL_SOURCE_COMPUTED = 0,
    NGX_HTTP_TXVAL_SOURCE_SHM,
    NGX_HTTP_TXVAL_SOURCE_REDIS
} ngx_http_txval_source_e;


typedef enum {
    NGX_HTTP_TXVAL_ERR_NONE = 0,
    NGX_HTTP_TXVAL_ERR_METHOD,
    NGX_HTTP_TXVAL_ERR_MEDIA_TYPE,
    NGX_HTTP_TXVAL_ERR_INVALID_JSON,
    NGX_HTTP_TXVAL_ERR_INVALID_FIELD,
    NGX_HTTP_TXVAL_ERR_PAN,
    NGX_HTTP_TXVAL_ERR_CONFLICT,
    NGX_HTTP_TXVAL_ERR_IN_PROGRESS,
    NGX_HTTP_TXVAL_ERR_BACKEND
} ngx_http_txval_error_e;


#define NGX_HTTP_TXVAL_TTL_DEFAULT  (10 * 60 * 1000)

/*
 * How long the mark of a transaction being validated holds its id (shm
 * and Redis) if its request never replaces or releases it: far above the
 * longest validation the backend timeouts allow, short enough for a
 * client's retry after a crashed worker or host.
 */
#define NGX_HTTP_TXVAL_PENDING_TTL  5000

/* txval_namespace: 1 to 32 of A-Z a-z 0-9 _ - */
#define NGX_HTTP_TXVAL_NAMESPACE_MAX  32

/*
 * the longest Redis key: prefix (<= 64), "vel:", token, ":", window;
 * longer than a verdict key, prefix "ns:" namespace ":v:" id
 */
#define NGX_HTTP_TXVAL_PREFIX_MAX   64
#define NGX_HTTP_TXVAL_KEY_MAX      (NGX_HTTP_TXVAL_PREFIX_MAX + 4         \
                                     + NGX_HTTP_TXVAL_TOKEN_MAX + 1        \
                                     + NGX_TIME_T_LEN)

#define NGX_HTTP_TXVAL_FAIL_CLOSED  0
#define NGX_HTTP_TXVAL_FAIL_OPEN    1


typedef struct ngx_http_txval_cache_s  ngx_http_txval_cache_t;
typedef struct ngx_http_txval_redis_op_s  ngx_http_txval_redis_op_t;
typedef struct ngx_http_txval_redis_conf_s  ngx_http_txval_redis_conf_t;
typedef struct ngx_http_txval_pg_op_s  ngx_http_txval_pg_op_t;
typedef struct ngx_http_txval_pg_conf_s  ngx_http_txval_pg_conf_t;
typedef struct ngx_http_txval_lookup_s  ngx_http_txval_lookup_t;


/*
 * what a lookup saw of the lookup cache: whether a store may follow, and
 * the rows' hashes (the store's too)
 */
typedef struct {
    uint64_t                    gen;            /* flush generation */
    uint64_t                    seq;            /* invalidations so far */
    uint32_t                    hm, hc, hb[3];  /* merchant, card, BINs */
    unsigned                    usable:1;
} ngx_http_txval_lookup_stamp_t;


typedef struct {
    ngx_http_txval_cache_t     *cache;          /* txval_cache_zone */
    ngx_http_txval_redis_conf_t  *redis;        /* txval_redis */
    ngx_http_txval_pg_conf_t   *pg;             /* txval_postgres */
    ngx_http_txval_lookup_t    *lookup;         /* txval_lookup_cache */

    /* what the locations failing closed need (txval_status) */
    unsigned                    closed_pg:1;
    unsigned                    closed_redis:1;

    /* this worker's: the tokens that name a request's marks */
    uint64_t                    nonce;          /* random, per worker */
    uint32_t                    seq;
} ngx_http_txval_main_conf_t;


/*
 * txval_field, txval_amount_format, txval_currency_case: the mapping, and
 * the variables that supply its FROM_VALUE fields
 */
typedef struct {
    ngx_http_txval_mapping_t    map;
    ngx_http_complex_value_t   *values[NGX_HTTP_TXVAL_NFIELDS];
    ngx_uint_t                  set;            /* fields set at its level */
} ngx_http_txval_fields_t;


typedef struct {
    ngx_uint_t                  mode;           /* "txval": VERDICT */
    ngx_flag_t                  gate;           /* txval_gate, inherited */
    ngx_flag_t                  dry_run;        /* txval_dry_run on|off */
    ngx_http_complex_value_t   *dry_run_value;  /* ... or a variable */
    ngx_array_t                *limits;         /* ngx_http_txval_limit_t */
    ngx_uint_t                  risk_threshold;
    ngx_uint_t                  decline_status;
    ngx_uint_t                  fail_mode;
    ngx_int_t                   velocity_count;
    time_t                      velocity_window;
    ngx_http_txval_fields_t    *fields;         /* txval_field, this level */
    ngx_uint_t                  amount_format;
    ngx_uint_t                  currency_case;
    ngx_str_t                   ns;             /* txval_namespace */

    ngx_http_txval_policy_t     policy;         /* built at merge */
    ngx_http_txval_fields_t    *mapping;        /* merged; NULL: default */
} ngx_http_txval_loc_conf_t;


typedef struct ngx_http_txval_ctx_s  ngx_http_txval_ctx_t;

struct ngx_http_txval_ctx_s {
    ngx_http_request_t         *request;

    ngx_http_txval_txn_t        txn;
    ngx_http_txval_facts_t      facts;
    ngx_http_txval_rows_t       rows;           /* the lookup cache's part */
    ngx_http_txval_result_t     result;
    ngx_http_txval_parse_error_t  parse_error;

    ngx_http_txval_error_e      error;
    ngx_http_txval_source_e     source;

    struct timespec             start;
    uint64_t                    elapsed_ns;

    ngx_http_txval_redis_op_t  *redis_op;       /* in flight */
    ngx_http_txval_pg_op_t     *pg_op;          /* in flight */
    ngx_uint_t                  pending;        /* lookups in flight */
    time_t                      velocity_at;    /* its window, counted */
    uint64_t                    redis_at;       /* sent, ns (monotonic) */
    ngx_msec_t                  claim_at;       /* the mark's SET sent */
    uint64_t                    pg_at;
    ngx_http_txval_lookup_stamp_t  stamp;       /* the lookup cache's */
    u_char                     *body;           /* in one piece */
    size_t                      body_len;
    const ngx_http_txval_mapping_t  *map;       /* NULL: the default */
    ngx_str_t                  *ns;             /* NULL: no namespace */
    ngx_http_txval_value_t      values[NGX_HTTP_TXVAL_NFIELDS];
    uint64_t                    raw[2];         /* the body's keyed hash */
    uint64_t                    token[2];       /* names this request's marks */
    u_char                     *seen;           /* in Redis, not a verdict */
    size_t                      seen_len;

    ngx_event_t                 answer;         /* the answer, posted */

    /* subrequests that wait for this (main) request's outcome */
    ngx_http_txval_ctx_t       *waiters;
    ngx_http_txval_ctx_t       *next;

    unsigned                    hashed:1;       /* raw is known */
    unsigned                    parsed:1;       /* id known */
    unsigned                    fields:1;       /* every field known */
    unsigned                    cleanup_set:1;
    unsigned                    gate:1;
    unsigned                    waiting:1;
    unsigned                    done:1;
    unsigned                    degraded:1;
    unsigned                    failed:1;
    unsigned                    dry_run:1;      /* refuses nothing */
    unsigned                    marked:1;       /* holds a mark in shm */
    unsigned                    claimed:1;      /* may hold one in Redis */
    unsigned                    redis_failed:1; /* its lookup timed out */
    unsigned                    owns_mark:1;    /* set it in Redis (NX) */
    unsigned                    told:1;         /* Redis told, not waited */
};


extern ngx_module_t  ngx_http_txval_module;


/* ngx_http_txval_handler.c: the request's path */
ngx_int_t ngx_http_txval_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_txval_start(ngx_http_request_t *r, ngx_uint_t gate,
    ngx_http_txval_ctx_t **pctx);
ngx_http_txval_ctx_t *ngx_http_txval_create_ctx(ngx_http_request_t *r);
uint64_t *ngx_http_txval_raw(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
void ngx_http_txval_lookups(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx);
void ngx_http_txval_lookup_done(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
void ngx_http_txval_backend_failed(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx, ngx_uint_t backend);
void ngx_http_txval_finish(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx);
ngx_int_t ngx_http_txval_watch(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
ngx_int_t ngx_http_txval_send(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
ngx_int_t ngx_http_txval_send_buf(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_buf_t *b);
ngx_int_t ngx_http_txval_add_header(ngx_http_request_t *r, const char *name,
    const char *value);
uint64_t ngx_http_txval_ns(void);

/* ngx_http_txval_gate.c: gate mode, dry run */
ngx_int_t ngx_http_txval_gate_handler(ngx_http_request_t *r);
void ngx_http_txval_wake(ngx_http_txval_ctx_t *ctx);
ngx_uint_t ngx_http_txval_refusable(ngx_http_txval_ctx_t *ctx);
ngx_uint_t ngx_http_txval_dry_run_for(ngx_http_request_t *r);

/* ngx_http_txval_store.c: what a request asks Redis and Postgres */
ngx_int_t ngx_http_txval_verdict_get(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
void ngx_http_txval_verdict_put(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx, ngx_http_txval_record_t *rec);
void ngx_http_txval_verdict_release(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
ngx_int_t ngx_http_txval_velocity_count(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
void ngx_http_txval_velocity_uncount(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
ngx_int_t ngx_http_txval_facts_lookup(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
void ngx_http_txval_detach(ngx_http_txval_redis_op_t **rop,
    ngx_http_txval_pg_op_t **pop);

/* ngx_http_txval_body.c */
ngx_int_t ngx_http_txval_body_bytes(ngx_http_request_t *r, u_char **data,
    size_t *len);

/* ngx_http_txval_mapping.c */
char *ngx_http_txval_field(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_txval_namespace(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_txval_merge_mapping(ngx_conf_t *cf,
    ngx_http_txval_loc_conf_t *prev, ngx_http_txval_loc_conf_t *conf);
ngx_int_t ngx_http_txval_mapping_request(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);

/* ngx_http_txval_status.c */
ngx_int_t ngx_http_txval_status_handler(ngx_http_request_t *r);

/* ngx_http_txval_module.c */
void ngx_http_txval_random(ngx_log_t *log, u_char *buf, size_t len);
ngx_shm_zone_t *ngx_http_txval_zone_add(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *value, ngx_shm_zone_init_pt init, void *data);
ngx_int_t ngx_http_txval_zone_resized(ngx_shm_zone_t *shm_zone,
    const char *directive);
ngx_int_t ngx_http_txval_zone_init(ngx_shm_zone_t *shm_zone, void *old,
    size_t size, uint32_t layout, const char *directive, void **sh);

/* ngx_http_txval_variables.c */
ngx_int_t ngx_http_txval_add_variables(ngx_conf_t *cf);

const char *ngx_http_txval_source_name(ngx_http_txval_source_e source);
const char *ngx_http_txval_verdict_name(ngx_http_txval_ctx_t *ctx);


#endif /* _NGX_HTTP_TXVAL_MODULE_H_INCLUDED_ */
