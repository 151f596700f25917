
/*
 * txval: non-blocking Postgres (libpq's async API on nginx's event loop),
 * with a per-worker pool of connections.
 */


#ifndef _NGX_HTTP_TXVAL_PG_H_INCLUDED_
#define _NGX_HTTP_TXVAL_PG_H_INCLUDED_


#include "ngx_http_txval_module.h"


typedef enum {
    NGX_HTTP_TXVAL_PG_OK = 0,
    NGX_HTTP_TXVAL_PG_ERROR,
    NGX_HTTP_TXVAL_PG_TIMEOUT
} ngx_http_txval_pg_status_e;


typedef void (*ngx_http_txval_pg_done_pt)(ngx_http_txval_pg_op_t *op);


/* one lookup: merchant, card and BIN in one prepared query */
struct ngx_http_txval_pg_op_s {
    ngx_queue_t                     queue;      /* waiting for a conn */
    ngx_event_t                     wait;       /* bounded wait */
    void                           *conn;

    /* the parameters, NUL-terminated */
    char                            merchant_id[NGX_HTTP_TXVAL_MERCHANT_MAX
                                                + 1];
    char                            currency[4];
    char                            card_token[NGX_HTTP_TXVAL_TOKEN_MAX + 1];
    char                            card_bin[NGX_HTTP_TXVAL_BIN_MAX + 1];

    ngx_http_txval_pg_status_e      status;
    ngx_http_txval_facts_t          facts;      /* the pg part */

    ngx_http_txval_pg_done_pt       done;
    void                           *data;       /* NULL: nobody waits */
};


/* one server of the conninfo's list, a host name's address each */
typedef struct {
    ngx_str_t                       host;       /* as written */
    ngx_str_t                       addr;       /* hostaddr; "": a socket */
    ngx_str_t                       port;       /* "": one port for all */
} ngx_http_txval_pg_host_t;


struct ngx_http_txval_pg_conf_s {
    const char                    **keywords;

    /*
     * values[i]: the list of servers starting with the i-th (nhosts of
     * them, or one when the list has at most one server): after a server
     * timed out, new connections start with the next one
     */
    const char                   ***values;
    ngx_http_txval_pg_host_t       *hosts;
    ngx_uint_t                      nhosts;

    ngx_uint_t                      pool;
    ngx_msec_t                      timeout;
};


char *ngx_http_txval_pg_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_txval_pg_init_process(ngx_cycle_t *cycle,
    ngx_http_txval_pg_conf_t *pcf);
void ngx_http_txval_pg_exit_process(void);

ngx_http_txval_pg_op_t *ngx_http_txval_pg_op(ngx_log_t *log);

/*
 * Runs the lookup on a pooled connection, now or when one is free (a wait
 * bounded by the timeout). op->done is called once, later; NGX_ERROR:
 * nothing could be started (the pool is failing fast).
 */
ngx_int_t ngx_http_txval_pg_send(ngx_http_txval_pg_op_t *op);

/* detaches an operation from a request that goes away */
void ngx_http_txval_pg_abandon(ngx_http_txval_pg_op_t *op);

void ngx_http_txval_pg_pool_counts(ngx_uint_t *busy, ngx_uint_t *idle,
    ngx_uint_t *connecting);


#endif /* _NGX_HTTP_TXVAL_PG_H_INCLUDED_ */
