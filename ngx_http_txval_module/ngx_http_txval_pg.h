
/*
 * txval: non-blocking Postgres (libpq's async API on nginx's event loop),
 * with a per-worker pool of connections.
 */


#ifndef _NGX_HTTP_TXVAL_PG_H_INCLUDED_
#define _NGX_HTTP_TXVAL_PG_H_INCLUDED_


#include <libpq-fe.h>

#include "ngx_http_txval_module.h"


typedef struct ngx_http_txval_pg_conn_s  ngx_http_txval_pg_conn_t;
typedef struct ngx_http_txval_pg_pool_s  ngx_http_txval_pg_pool_t;


typedef enum {
    NGX_HTTP_TXVAL_PG_OK = 0,
    NGX_HTTP_TXVAL_PG_ERROR,
    NGX_HTTP_TXVAL_PG_TIMEOUT
} ngx_http_txval_pg_status_e;


typedef void (*ngx_http_txval_pg_done_pt)(ngx_http_txval_pg_op_t *op);


/*
 * One lookup: the parts in `want` (merchant, card, BIN prefixes) in one
 * execution of the prepared query. Lookups share connections: each is
 * sent after the others on a connection (pipeline mode) and has its own
 * deadline.
 */
struct ngx_http_txval_pg_op_s {
    ngx_queue_t                     queue;      /* waiting, or in flight */
    ngx_event_t                     wait;       /* its deadline */
    ngx_http_txval_pg_conn_t       *conn;       /* NULL: waiting */

    ngx_uint_t                      want;

    /* the parameters, NUL-terminated */
    char                            merchant_id[NGX_HTTP_TXVAL_MERCHANT_MAX
                                                + 1];
    char                            currency[4];
    char                            card_token[NGX_HTTP_TXVAL_TOKEN_MAX + 1];
    char                            card_bin[NGX_HTTP_TXVAL_BIN_MAX + 1];

    ngx_http_txval_pg_status_e      status;
    ngx_http_txval_rows_t           rows;       /* the parts asked for */

    ngx_http_txval_pg_done_pt       done;
    void                           *data;       /* NULL: nobody waits */

    unsigned                        sent:1;     /* on the wire */
    unsigned                        got_row:1;
    unsigned                        reported:1; /* done() was called */
    unsigned                        retry:1;    /* skipped: send again */
    unsigned                        keep:1;     /* for the lookup cache:
                                                   the currencies listed */
};


/* one server of the conninfo's list, a host name's address each */
typedef struct {
    ngx_str_t                       host;       /* as written */
    ngx_str_t                       addr;       /* hostaddr; "": a socket */
    ngx_str_t                       port;       /* "": one port for all */
} ngx_http_txval_pg_host_t;


struct ngx_http_txval_pg_conf_s {
    ngx_http_txval_pg_pool_t       *pool_state; /* the worker's own */

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
 * Runs the lookup on a pooled connection, after the lookups already in
 * flight there, or when one is ready (a wait bounded by the timeout).
 * op->done is called once, later; NGX_ERROR: nothing could be started
 * (the pool is failing fast).
 */
ngx_int_t ngx_http_txval_pg_send(ngx_http_txval_pg_op_t *op);

/* detaches an operation from a request that goes away */
void ngx_http_txval_pg_abandon(ngx_http_txval_pg_op_t *op);

/* the parts of a transaction's lookup: all of them, and the parameters */
void ngx_http_txval_pg_params(ngx_http_txval_pg_op_t *op,
    ngx_http_txval_txn_t *txn);

/* the connection parameters new connections use now */
void ngx_http_txval_pg_conninfo(const char *const **keywords,
    const char *const **values);

/*
 * libpq's socket as an nginx connection whose events go to handler (the
 * lookup cache's listener uses these too): wrapped after each
 * PQconnectPoll, unwrapped before the next and before PQfinish.
 */
ngx_int_t ngx_http_txval_pg_socket(PGconn *pg, ngx_connection_t **cp,
    ngx_event_handler_pt handler, void *data, ngx_log_t *log);
void ngx_http_txval_pg_unsocket(PGconn *pg, ngx_connection_t **cp);
void ngx_http_txval_pg_socket_events(ngx_connection_t *c, ngx_uint_t read,
    ngx_uint_t write);

/*
 * a connect begun made nginx's (notices logged, non-blocking, its socket
 * waiting for writing), then each of its steps: NGX_AGAIN, NGX_OK
 * (connected) or NGX_ERROR
 */
ngx_int_t ngx_http_txval_pg_connect_start(PGconn *pg, ngx_connection_t **cp,
    ngx_event_handler_pt handler, void *data, ngx_log_t *log,
    PQnoticeProcessor notice);
ngx_int_t ngx_http_txval_pg_connect_poll(PGconn *pg, ngx_connection_t **cp,
    ngx_event_handler_pt handler, void *data, ngx_log_t *log);

/* PQflush, then the events: NGX_OK, NGX_AGAIN (more to send), NGX_ERROR */
ngx_int_t ngx_http_txval_pg_socket_flush(PGconn *pg, ngx_connection_t *c);

/* a server's notice, at warn, its trailing newline off; who: "" or a name */
void ngx_http_txval_pg_log_notice(ngx_log_t *log, const char *who,
    const char *message);

/*
 * this worker's connections, for metrics: busy (lookups in flight), idle
 * and connecting
 */
void ngx_http_txval_pg_pool_counts(ngx_uint_t *busy, ngx_uint_t *idle,
    ngx_uint_t *connecting);


#endif /* _NGX_HTTP_TXVAL_PG_H_INCLUDED_ */
