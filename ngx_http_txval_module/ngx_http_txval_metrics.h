
/*
 * txval: metrics, counted in a shared zone so that a scrape sees every
 * worker's work, and kept across reloads.
 */


#ifndef _NGX_HTTP_TXVAL_METRICS_H_INCLUDED_
#define _NGX_HTTP_TXVAL_METRICS_H_INCLUDED_


#include "ngx_http_txval_module.h"
#include "ngx_http_txval_prometheus.h"


#define NGX_HTTP_TXVAL_M_REDIS      0
#define NGX_HTTP_TXVAL_M_POSTGRES   1

#define NGX_HTTP_TXVAL_M_HIT        0
#define NGX_HTTP_TXVAL_M_MISS       1
#define NGX_HTTP_TXVAL_M_CONFLICT   2
#define NGX_HTTP_TXVAL_M_ERROR      3
#define NGX_HTTP_TXVAL_M_IN_PROGRESS  4


ngx_int_t ngx_http_txval_metrics_zone(ngx_conf_t *cf);
char *ngx_http_txval_metrics_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

void ngx_http_txval_metrics_init_process(void);
void ngx_http_txval_metrics_request(ngx_http_txval_ctx_t *ctx);
void ngx_http_txval_metrics_redis_lookup(ngx_uint_t result);
/* the round trip of a Redis command batch or a Postgres query */
void ngx_http_txval_metrics_backend_duration(ngx_uint_t backend,
    uint64_t ns);
/* a rule skipped under fail-open: its backend failed */
void ngx_http_txval_metrics_degraded(ngx_uint_t backend);
/* result: ngx_http_txval_redis_status_e or ngx_http_txval_pg_status_e */
void ngx_http_txval_metrics_backend(ngx_uint_t backend, ngx_uint_t result);
/* this worker's pool connections by state */
void ngx_http_txval_metrics_pool(ngx_uint_t backend, ngx_uint_t busy,
    ngx_uint_t idle, ngx_uint_t connecting);


#endif /* _NGX_HTTP_TXVAL_METRICS_H_INCLUDED_ */
