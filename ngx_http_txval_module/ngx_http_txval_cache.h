
/*
 * txval: the shared-memory verdict cache (txval_cache_zone).
 */


#ifndef _NGX_HTTP_TXVAL_CACHE_H_INCLUDED_
#define _NGX_HTTP_TXVAL_CACHE_H_INCLUDED_


#include "ngx_http_txval_module.h"


/* counters kept in the zone, so every worker's work is counted once */
typedef struct {
    uint64_t                    hits;
    uint64_t                    misses;
    uint64_t                    conflicts;
    uint64_t                    expired;
    uint64_t                    evictions;
    uint64_t                    entries;
} ngx_http_txval_cache_stats_t;


struct ngx_http_txval_cache_s {
    ngx_shm_zone_t             *shm_zone;
    ngx_msec_t                  ttl;
    struct ngx_http_txval_cache_sh_s  *sh;
    ngx_slab_pool_t            *shpool;
};


char *ngx_http_txval_cache_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/*
 * NGX_OK: a verdict for this id and content, in rec;
 * NGX_BUSY: this id is known with other content;
 * NGX_DECLINED: not known.
 */
ngx_int_t ngx_http_txval_cache_lookup(ngx_http_txval_cache_t *cache,
    ngx_http_txval_txn_t *txn, ngx_http_txval_record_t *rec);

/*
 * NGX_OK: the verdict of a body of exactly these bytes (raw, from
 * ngx_http_txval_cache_raw()) and this id, in rec; else NGX_DECLINED.
 */
ngx_int_t ngx_http_txval_cache_replay(ngx_http_txval_cache_t *cache,
    const u_char *id, size_t len, uint64_t raw, ngx_http_txval_record_t *rec);

/* a keyed hash of a request body */
uint64_t ngx_http_txval_cache_raw(ngx_http_txval_cache_t *cache,
    const u_char *body, size_t len);

/* NGX_BUSY: meanwhile the id was stored with other content */
ngx_int_t ngx_http_txval_cache_store(ngx_http_txval_cache_t *cache,
    ngx_http_txval_txn_t *txn, ngx_http_txval_record_t *rec, uint64_t raw,
    ngx_log_t *log);

/* a consistent copy of the counters, and the bytes used and in all */
void ngx_http_txval_cache_stats(ngx_http_txval_cache_t *cache,
    ngx_http_txval_cache_stats_t *stats, size_t *used, size_t *total);


#endif /* _NGX_HTTP_TXVAL_CACHE_H_INCLUDED_ */
