
/*
 * txval: metrics (txval_metrics).
 *
 * Counters live in a small zone of their own ("txval_metrics"), updated
 * with atomic adds, so that every worker's work is counted once and a
 * reload keeps them. Pool gauges are per worker: each worker keeps its
 * own slot current and a scrape adds up the slots of the running workers.
 * A scrape reads a fixed set of numbers: its cost does not grow with
 * traffic.
 */


#include "ngx_http_txval_metrics.h"
#include "ngx_http_txval_cache.h"
#include "ngx_http_txval_lookup.h"


#define NGX_HTTP_TXVAL_METRICS_SIZE  (256 * 1024)


typedef struct {
    size_t                      size;       /* of this layout */
    ngx_atomic_t                requests[NGX_HTTP_TXVAL_VERDICTS];
    ngx_atomic_t                reasons[NGX_HTTP_TXVAL_NREASONS];
    ngx_atomic_t                redis_lookups[NGX_HTTP_TXVAL_LOOKUPS];
    ngx_atomic_t                backend[NGX_HTTP_TXVAL_BACKENDS]
                                       [NGX_HTTP_TXVAL_RESULTS];
    ngx_atomic_t                degraded[NGX_HTTP_TXVAL_BACKENDS];
    ngx_atomic_t                errors[NGX_HTTP_TXVAL_ERRORS];
    ngx_atomic_t                dry_run[NGX_HTTP_TXVAL_VERDICTS];
    ngx_atomic_t                duration[NGX_HTTP_TXVAL_BUCKETS + 1];
    ngx_atomic_t                duration_sum_ns;
    ngx_atomic_t                backend_duration[NGX_HTTP_TXVAL_BACKENDS]
                                        [NGX_HTTP_TXVAL_BUCKETS + 1];
    ngx_atomic_t                backend_duration_sum_ns
                                        [NGX_HTTP_TXVAL_BACKENDS];
    ngx_atomic_t                pools[NGX_MAX_PROCESSES]
                                     [NGX_HTTP_TXVAL_BACKENDS]
                                     [NGX_HTTP_TXVAL_POOL_STATES];
} ngx_http_txval_metrics_sh_t;


static ngx_int_t ngx_http_txval_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_txval_metrics_handler(ngx_http_request_t *r);


static ngx_http_txval_metrics_sh_t  *ngx_http_txval_metrics_sh;

/* the zone's own tag: a cache zone of the same name is refused by nginx */
static ngx_uint_t  ngx_http_txval_metrics_tag;


ngx_int_t
ngx_http_txval_metrics_zone(ngx_conf_t *cf)
{
    ngx_str_t        name = ngx_string("txval_metrics");
    ngx_shm_zone_t  *shm_zone;

    shm_zone = ngx_shared_memory_add(cf, &name, NGX_HTTP_TXVAL_METRICS_SIZE,
                                     &ngx_http_txval_metrics_tag);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_txval_metrics_init_zone;
    shm_zone->data = (void *) 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_txval_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t  *shpool;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if ((data != NULL || shm_zone->shm.exists) && shpool->data != NULL
        && ((ngx_http_txval_metrics_sh_t *) shpool->data)->size
           == sizeof(ngx_http_txval_metrics_sh_t))
    {
        /* a reload: the counters go on */
        ngx_http_txval_metrics_sh = shpool->data;
        return NGX_OK;
    }

    /* new, or made by a module of another layout (an upgrade): anew */

    ngx_http_txval_metrics_sh = ngx_slab_calloc(shpool,
                                       sizeof(ngx_http_txval_metrics_sh_t));
    if (ngx_http_txval_metrics_sh == NULL) {
        return NGX_ERROR;
    }

    ngx_http_txval_metrics_sh->size = sizeof(ngx_http_txval_metrics_sh_t);
    shpool->data = ngx_http_txval_metrics_sh;

    return NGX_OK;
}


void
ngx_http_txval_metrics_request(ngx_http_txval_ctx_t *ctx)
{
    unsigned                      i, verdict;
    ngx_http_txval_metrics_sh_t  *m = ngx_http_txval_metrics_sh;

    if (m == NULL) {
        return;
    }

    if (ctx->error != NGX_HTTP_TXVAL_ERR_NONE) {
        verdict = 2;
        (void) ngx_atomic_fetch_add(&m->errors[ctx->error - 1], 1);

    } else if (ctx->result.reasons) {
        verdict = 1;

        for (i = 0; i < NGX_HTTP_TXVAL_NREASONS; i++) {
            if (ctx->result.reasons & (1u << i)) {
                (void) ngx_atomic_fetch_add(&m->reasons[i], 1);
            }
        }

    } else {
        verdict = 0;
    }

    (void) ngx_atomic_fetch_add(&m->requests[verdict], 1);
    (void) ngx_atomic_fetch_add(
                     &m->duration[ngx_http_txval_bucket(ctx->elapsed_ns)], 1);
    (void) ngx_atomic_fetch_add(&m->duration_sum_ns, ctx->elapsed_ns);

    if (ctx->dry_run) {
        (void) ngx_atomic_fetch_add(&m->dry_run[verdict], 1);
    }
}


void
ngx_http_txval_metrics_backend_duration(ngx_uint_t backend, uint64_t ns)
{
    ngx_http_txval_metrics_sh_t  *m = ngx_http_txval_metrics_sh;

    if (m == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(
                     &m->backend_duration[backend][ngx_http_txval_bucket(ns)],
                     1);
    (void) ngx_atomic_fetch_add(&m->backend_duration_sum_ns[backend], ns);
}


void
ngx_http_txval_metrics_redis_lookup(ngx_uint_t result)
{
    if (ngx_http_txval_metrics_sh) {
        (void) ngx_atomic_fetch_add(
                         &ngx_http_txval_metrics_sh->redis_lookups[result], 1);
    }
}


void
ngx_http_txval_metrics_degraded(ngx_uint_t backend)
{
    if (ngx_http_txval_metrics_sh) {
        (void) ngx_atomic_fetch_add(
                             &ngx_http_txval_metrics_sh->degraded[backend], 1);
    }
}


void
ngx_http_txval_metrics_backend(ngx_uint_t backend, ngx_uint_t result)
{
    if (ngx_http_txval_metrics_sh) {
        (void) ngx_atomic_fetch_add(
                       &ngx_http_txval_metrics_sh->backend[backend][result], 1);
    }
}


void
ngx_http_txval_metrics_pool(ngx_uint_t backend, ngx_uint_t busy,
    ngx_uint_t idle, ngx_uint_t connecting)
{
    ngx_atomic_t  *slot;

    if (ngx_http_txval_metrics_sh == NULL || ngx_worker >= NGX_MAX_PROCESSES
        || ngx_exiting || ngx_quit || ngx_terminate)
    {
        return;
    }

    slot = ngx_http_txval_metrics_sh->pools[ngx_worker][backend];

    slot[0] = busy;
    slot[1] = idle;
    slot[2] = connecting;
}


void
ngx_http_txval_metrics_init_process(void)
{
    ngx_uint_t  i, j;

    if (ngx_http_txval_metrics_sh == NULL || ngx_worker >= NGX_MAX_PROCESSES) {
        return;
    }

    for (i = 0; i < NGX_HTTP_TXVAL_BACKENDS; i++) {
        for (j = 0; j < NGX_HTTP_TXVAL_POOL_STATES; j++) {
            ngx_http_txval_metrics_sh->pools[ngx_worker][i][j] = 0;
        }
    }
}


/* txval_metrics; */

char *
ngx_http_txval_metrics_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_txval_metrics_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_txval_metrics_handler(ngx_http_request_t *r)
{
    size_t                         used, total;
    ngx_int_t                      rc;
    ngx_buf_t                     *b;
    ngx_uint_t                     i, j, k, workers;
    ngx_core_conf_t               *ccf;
    ngx_http_txval_snapshot_t      s;
    ngx_http_txval_cache_stats_t   stats;
    ngx_http_txval_lookup_stats_t  lstats;
    ngx_http_txval_main_conf_t    *tmcf;
    ngx_http_txval_metrics_sh_t   *m = ngx_http_txval_metrics_sh;

    static ngx_str_t  text =
                       ngx_string("text/plain; version=0.0.4; charset=utf-8");

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (m == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(&s, sizeof(ngx_http_txval_snapshot_t));

    for (i = 0; i < NGX_HTTP_TXVAL_VERDICTS; i++) {
        s.requests[i] = m->requests[i];
    }

    for (i = 0; i < NGX_HTTP_TXVAL_NREASONS; i++) {
        s.reasons[i] = m->reasons[i];
    }

    for (i = 0; i < NGX_HTTP_TXVAL_LOOKUPS; i++) {
        s.lookups[1][i] = m->redis_lookups[i];
    }

    for (i = 0; i < NGX_HTTP_TXVAL_BACKENDS; i++) {
        for (j = 0; j < NGX_HTTP_TXVAL_RESULTS; j++) {
            s.backend[i][j] = m->backend[i][j];
        }
    }

    for (i = 0; i < NGX_HTTP_TXVAL_BACKENDS; i++) {
        s.degraded[i] = m->degraded[i];

        for (j = 0; j <= NGX_HTTP_TXVAL_BUCKETS; j++) {
            s.backend_duration[i].buckets[j] = m->backend_duration[i][j];
        }

        s.backend_duration[i].sum_ns = m->backend_duration_sum_ns[i];
    }

    for (i = 0; i < NGX_HTTP_TXVAL_ERRORS; i++) {
        s.errors[i] = m->errors[i];
    }

    for (i = 0; i < NGX_HTTP_TXVAL_VERDICTS; i++) {
        s.dry_run[i] = m->dry_run[i];
    }

    for (i = 0; i <= NGX_HTTP_TXVAL_BUCKETS; i++) {
        s.duration.buckets[i] = m->duration[i];
    }

    s.duration.sum_ns = m->duration_sum_ns;

    s.version = NGX_HTTP_TXVAL_VERSION;
    s.nginx = NGINX_VERSION;

    ccf = (ngx_core_conf_t *) ngx_get_conf(ngx_cycle->conf_ctx,
                                           ngx_core_module);
    workers = ngx_min((ngx_uint_t) ccf->worker_processes, NGX_MAX_PROCESSES);

    if (ngx_process == NGX_PROCESS_SINGLE) {
        workers = 1;
    }

    for (k = 0; k < workers; k++) {
        for (i = 0; i < NGX_HTTP_TXVAL_BACKENDS; i++) {
            for (j = 0; j < NGX_HTTP_TXVAL_POOL_STATES; j++) {
                s.pools[i][j] += m->pools[k][i][j];
            }
        }
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

    if (tmcf->cache) {
        ngx_http_txval_cache_stats(tmcf->cache, &stats, &used, &total);

        s.cache = 1;
        s.lookups[0][0] = stats.hits;
        s.lookups[0][1] = stats.misses;
        s.lookups[0][2] = stats.conflicts;
        s.lookups[0][4] = stats.in_progress;
        s.cache_entries = stats.entries;
        s.cache_bytes_used = used;
        s.cache_bytes_total = total;
        s.cache_evictions = stats.evictions;
    }

    if (tmcf->lookup) {
        ngx_http_txval_lookup_stats(tmcf->lookup, &lstats, &used, &total);

        s.lookup_results[0] = lstats.hits;
        s.lookup_results[1] = lstats.misses;
        s.lookup_results[2] = lstats.invalidated;
        s.lookup_results[3] = lstats.flushed;
        s.lookup_entries = lstats.entries;
        s.lookup_bytes_used = used;
        s.lookup_bytes_total = total;
        s.lookup_evictions = lstats.evictions;

        for (i = 0; i <= NGX_HTTP_TXVAL_BUCKETS; i++) {
            s.lookup_lag.buckets[i] = lstats.lag[i];
        }

        s.lookup_lag.sum_ns = lstats.lag_sum_ns;

        s.lookup_notify = (tmcf->lookup->channel.len != 0);
        s.lookup_listener_up = s.lookup_notify
                               && ngx_http_txval_lookup_usable(tmcf->lookup);
    }

    b = ngx_create_temp_buf(r->pool, NGX_HTTP_TXVAL_PROMETHEUS_MAX);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = b->pos + ngx_http_txval_prometheus(b->pos,
                                           NGX_HTTP_TXVAL_PROMETHEUS_MAX, &s);

    return ngx_http_txval_send_buf(r, NGX_HTTP_OK, &text, b);
}
