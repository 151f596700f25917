
/*
 * txval: the Prometheus text exposition (format 0.0.4) of a snapshot of
 * the module's metrics.
 *
 * Pure C, no nginx types: fuzzable and unit-testable.
 */


#ifndef _NGX_HTTP_TXVAL_PROMETHEUS_H_INCLUDED_
#define _NGX_HTTP_TXVAL_PROMETHEUS_H_INCLUDED_


#include "ngx_http_txval_rules.h"


#define NGX_HTTP_TXVAL_VERDICTS      3      /* approved, declined, error */
#define NGX_HTTP_TXVAL_LAYERS        2      /* shm, redis */
#define NGX_HTTP_TXVAL_LOOKUPS       5      /* hit, miss, conflict, error,
                                               in_progress */
#define NGX_HTTP_TXVAL_BACKENDS      2      /* redis, postgres */
#define NGX_HTTP_TXVAL_RESULTS       3      /* ok, error, timeout */
#define NGX_HTTP_TXVAL_POOL_STATES   3      /* busy, idle, connecting */
#define NGX_HTTP_TXVAL_BUCKETS       13     /* 100us .. 1s, then +Inf */
#define NGX_HTTP_TXVAL_ERRORS        8      /* the error codes, SPEC's order */
#define NGX_HTTP_TXVAL_LOOKUP_RESULTS  4    /* hit, miss, invalidated,
                                               flushed */


/* a histogram: per bucket, not cumulative; the last one is above 1 s */
typedef struct {
    uint64_t   buckets[NGX_HTTP_TXVAL_BUCKETS + 1];
    uint64_t   sum_ns;
} ngx_http_txval_histogram_t;


typedef struct {
    uint64_t   requests[NGX_HTTP_TXVAL_VERDICTS];
    uint64_t   reasons[NGX_HTTP_TXVAL_NREASONS];
    uint64_t   lookups[NGX_HTTP_TXVAL_LAYERS][NGX_HTTP_TXVAL_LOOKUPS];
    uint64_t   backend[NGX_HTTP_TXVAL_BACKENDS][NGX_HTTP_TXVAL_RESULTS];
    uint64_t   degraded[NGX_HTTP_TXVAL_BACKENDS];
    uint64_t   errors[NGX_HTTP_TXVAL_ERRORS];
    uint64_t   dry_run[NGX_HTTP_TXVAL_VERDICTS];

    ngx_http_txval_histogram_t  duration;
    ngx_http_txval_histogram_t  backend_duration[NGX_HTTP_TXVAL_BACKENDS];

    const char                 *version;        /* txval_build_info */
    const char                 *nginx;

    unsigned   cache:1;             /* a cache zone is configured */
    uint64_t   cache_entries;
    uint64_t   cache_bytes_used;
    uint64_t   cache_bytes_total;
    uint64_t   cache_evictions;

    uint64_t   pools[NGX_HTTP_TXVAL_BACKENDS][NGX_HTTP_TXVAL_POOL_STATES];

    /* the lookup cache (txval_lookup_cache) */
    uint64_t   lookup_results[NGX_HTTP_TXVAL_LOOKUP_RESULTS];
    unsigned   lookup_notify:1;     /* a listener: lookup_listener_up */
    uint64_t   lookup_listener_up;
    uint64_t   lookup_entries;
    uint64_t   lookup_bytes_used;
    uint64_t   lookup_bytes_total;
    uint64_t   lookup_evictions;
    ngx_http_txval_histogram_t  lookup_lag;
} ngx_http_txval_snapshot_t;


/* the upper bounds of the duration buckets, in nanoseconds */
extern const uint64_t  ngx_http_txval_bucket_ns[NGX_HTTP_TXVAL_BUCKETS];

/* the bucket of a duration */
unsigned ngx_http_txval_bucket(uint64_t ns);

/* the name of an error code, 1 .. NGX_HTTP_TXVAL_ERRORS (0: none) */
const char *ngx_http_txval_error_name(unsigned error);

/* writes the exposition; returns its length, 0 if size was too small */
size_t ngx_http_txval_prometheus(unsigned char *buf, size_t size,
    const ngx_http_txval_snapshot_t *s);

/* enough for every metric */
#define NGX_HTTP_TXVAL_PROMETHEUS_MAX  20480


#endif /* _NGX_HTTP_TXVAL_PROMETHEUS_H_INCLUDED_ */
