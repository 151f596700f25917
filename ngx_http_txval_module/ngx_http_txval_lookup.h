
/*
 * txval: the lookup cache (txval_lookup_cache): the Postgres rows the
 * rules read, and their absence, in a shared-memory zone, kept true by
 * LISTEN/NOTIFY.
 */


#ifndef _NGX_HTTP_TXVAL_LOOKUP_H_INCLUDED_
#define _NGX_HTTP_TXVAL_LOOKUP_H_INCLUDED_


#include "ngx_http_txval_module.h"
#include "ngx_http_txval_prometheus.h"


/* counters kept in the zone: every worker's work counted once */
typedef struct {
    uint64_t                    hits;           /* no query at all */
    uint64_t                    misses;         /* a query, for a part */
    uint64_t                    invalidated;    /* entries a NOTIFY dropped */
    uint64_t                    flushed;        /* times emptied */
    uint64_t                    evictions;
    uint64_t                    entries;        /* of this generation */

    /* notification lag: the trigger's clock to the drop, per bucket */
    uint64_t                    lag[NGX_HTTP_TXVAL_BUCKETS + 1];
    uint64_t                    lag_sum_ns;
} ngx_http_txval_lookup_stats_t;


typedef struct ngx_http_txval_lookup_sh_s  ngx_http_txval_lookup_sh_t;
typedef struct ngx_http_txval_listener_s  ngx_http_txval_listener_t;

struct ngx_http_txval_lookup_s {
    ngx_shm_zone_t             *shm_zone;
    ngx_msec_t                  ttl;
    ngx_str_t                   channel;        /* notify=; "": none */
    ngx_http_txval_lookup_sh_t *sh;
    ngx_slab_pool_t            *shpool;
    ngx_http_txval_listener_t  *listener;       /* the worker's own */
};


char *ngx_http_txval_lookup_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* the listener (notify=) of the worker that owns it, or takes it over */
ngx_int_t ngx_http_txval_lookup_init_process(ngx_cycle_t *cycle,
    ngx_http_txval_lookup_t *lc, ngx_http_txval_pg_conf_t *pcf);
void ngx_http_txval_lookup_exit_process(ngx_http_txval_lookup_t *lc);

/*
 * The rows of txn's lookup that the zone holds, into rows (rows->have
 * tells which); returns the parts Postgres must be asked for, 0 for a
 * hit. stamp is for ngx_http_txval_lookup_put() of the same txn (it holds
 * the rows' hashes).
 */
unsigned ngx_http_txval_lookup_get(ngx_http_txval_lookup_t *lc,
    ngx_http_txval_txn_t *txn, ngx_http_txval_rows_t *rows,
    ngx_http_txval_lookup_stamp_t *stamp);

/*
 * Stores the rows Postgres gave for txn's lookup, except those that may
 * have changed since stamp (a notification or a flush came meanwhile):
 * the stamp ngx_http_txval_lookup_get() gave for the same txn.
 */
void ngx_http_txval_lookup_put(ngx_http_txval_lookup_t *lc,
    ngx_http_txval_txn_t *txn, ngx_http_txval_rows_t *rows,
    ngx_http_txval_lookup_stamp_t *stamp);

/* whether the zone is used: always without notify=, else while listened */
ngx_uint_t ngx_http_txval_lookup_usable(ngx_http_txval_lookup_t *lc);

/* a consistent copy of the counters, and the bytes used and in all */
void ngx_http_txval_lookup_stats(ngx_http_txval_lookup_t *lc,
    ngx_http_txval_lookup_stats_t *stats, size_t *used, size_t *total);


#endif /* _NGX_HTTP_TXVAL_LOOKUP_H_INCLUDED_ */
