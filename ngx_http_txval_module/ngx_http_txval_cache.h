
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
    uint64_t                    in_progress;
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
 * Entries are per namespace (ns, NULL: none) and id.
 *
 * NGX_OK: a verdict for this id and content, in rec;
 * NGX_BUSY: this id is known with other content;
 * NGX_AGAIN: this id is being validated (a mark, not expired);
 * NGX_DECLINED: not known; a mark held by owner is left for it;
 * NGX_ABORT: not known, and no room for a mark.
 */
ngx_int_t ngx_http_txval_cache_lookup(ngx_http_txval_cache_t *cache,
    ngx_str_t *ns, ngx_http_txval_txn_t *txn, ngx_http_txval_record_t *rec,
    uint64_t owner, ngx_log_t *log);

/*
 * NGX_OK: the verdict of a body of exactly these bytes and values (raw,
 * from ngx_http_txval_cache_raw()) and this id, in rec; else NGX_DECLINED.
 */
ngx_int_t ngx_http_txval_cache_replay(ngx_http_txval_cache_t *cache,
    ngx_str_t *ns, const u_char *id, size_t len, const uint64_t raw[2],
    ngx_http_txval_record_t *rec);

/*
 * a keyed 128-bit hash of a request body and of the values its mapping
 * takes from variables (ngx_http_txval_txn_raw())
 */
void ngx_http_txval_cache_raw(ngx_http_txval_cache_t *cache,
    const u_char *body, size_t len, const ngx_http_txval_mapping_t *map,
    const ngx_http_txval_value_t *values, uint64_t raw[2]);

/*
 * The verdict in rec replaces the id's mark (or is added). NGX_DONE: a
 * verdict for the same content was stored meanwhile, and stays: it is in
 * rec now; NGX_BUSY: meanwhile the id was stored with other content.
 */
ngx_int_t ngx_http_txval_cache_store(ngx_http_txval_cache_t *cache,
    ngx_str_t *ns, ngx_http_txval_txn_t *txn, ngx_http_txval_record_t *rec,
    const uint64_t raw[2], ngx_log_t *log);

/* drops the id's mark if owner still holds it */
void ngx_http_txval_cache_release(ngx_http_txval_cache_t *cache,
    ngx_str_t *ns, ngx_http_txval_txn_t *txn, uint64_t owner);

/* a consistent copy of the counters, and the bytes used and in all */
void ngx_http_txval_cache_stats(ngx_http_txval_cache_t *cache,
    ngx_http_txval_cache_stats_t *stats, size_t *used, size_t *total);


#endif /* _NGX_HTTP_TXVAL_CACHE_H_INCLUDED_ */
