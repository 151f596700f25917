
/*
 * txval: the Redis client's own interface between its files.
 *
 * A pool (per worker, hung off the conf) has nodes; a node (an address)
 * has connections; a connection has the operations sent on it, in the
 * order their replies come. What differs between one server, Sentinel
 * and Cluster is in a small table of operations (ngx_http_txval_redis_
 * mode_t), one per mode, in _redis_pool.c, _redis_sentinel.c and
 * _redis_cluster.c.
 */


#ifndef _NGX_HTTP_TXVAL_REDIS_INT_H_INCLUDED_
#define _NGX_HTTP_TXVAL_REDIS_INT_H_INCLUDED_


#include <hiredis/hiredis.h>

#include "ngx_http_txval_redis.h"


#define NGX_HTTP_TXVAL_REDIS_BACKOFF    200     /* ms of failing fast */
#define NGX_HTTP_TXVAL_REDIS_MAX_OPS    1024    /* per connection */
#define NGX_HTTP_TXVAL_REDIS_BATCH      64      /* ops joining one write */
#define NGX_HTTP_TXVAL_REDIS_REFRESH    1000    /* ms between map askings */
#define NGX_HTTP_TXVAL_REDIS_MIN_ASK    100     /* ms, at least, between */
#define NGX_HTTP_TXVAL_REDIS_REDIRECTS  3
#define NGX_HTTP_TXVAL_REDIS_NODES_MAX  256
#define NGX_HTTP_TXVAL_REDIS_RESOLVE    1000    /* ms between resolvings */

/* how a connection is closed (flags) */
#define NGX_HTTP_TXVAL_REDIS_CLOSE_TIMEDOUT  0x01    /* ops: TIMEOUT */
#define NGX_HTTP_TXVAL_REDIS_CLOSE_FAILED    0x02    /* is the map right? */
#define NGX_HTTP_TXVAL_REDIS_CLOSE_BACKOFF   0x04    /* node fails fast */


typedef struct ngx_http_txval_redis_node_s  ngx_http_txval_redis_node_t;


typedef enum {
    NGX_HTTP_TXVAL_REDIS_CONNECTING = 0,    /* TCP connect under way */
    NGX_HTTP_TXVAL_REDIS_HANDSHAKE,         /* TLS handshake */
    NGX_HTTP_TXVAL_REDIS_READY,             /* commands go and come */
    NGX_HTTP_TXVAL_REDIS_CLOSED             /* freed once unwound */
} ngx_http_txval_redis_state_e;


struct ngx_http_txval_redis_node_s {
    ngx_queue_t                     queue;      /* in the pool */
    ngx_http_txval_redis_pool_t    *pool;
    ngx_queue_t                     conns;
    ngx_uint_t                      nconns;
    ngx_uint_t                      max;        /* connections at most */
    ngx_uint_t                      holds;      /* in use up the stack */
    ngx_uint_t                      generation; /* of its address */
    ngx_msec_t                      down_until;
    ngx_int_t                       port;       /* 0: unix socket */
    ngx_http_txval_redis_addr_t    *addr;       /* a seed's, configured */
    ngx_resolver_ctx_t             *resolving;
#if (NGX_SSL)
    ngx_ssl_session_t              *session;    /* reused on reconnect */
#endif
    socklen_t                       socklen;    /* 0: no address yet */
    ngx_sockaddr_t                  sockaddr;
    ngx_str_t                       text;       /* host:port, for logs */
    u_char                          text_data[NGX_SOCKADDR_STRLEN];
    u_char                          host[NGX_SOCKADDR_STRLEN + 1];
    unsigned                        control:1;  /* a sentinel */
    unsigned                        seed:1;     /* configured: kept */
    unsigned                        retired:1;  /* freed once unused */
    unsigned                        used:1;
    unsigned                        up:1;       /* the last connect */
};


struct ngx_http_txval_redis_conn_s {
    ngx_queue_t                     queue;      /* in its node */
    ngx_http_txval_redis_node_t    *node;
    ngx_connection_t               *c;
    redisReader                    *reader;
    ngx_event_t                     timer;
    ngx_queue_t                     ops;
    ngx_uint_t                      nops;
    ngx_uint_t                      setup;      /* AUTH, SELECT replies due */
    ngx_uint_t                      generation; /* of the node's address */
    ngx_uint_t                      handling;   /* in its handlers */
    ngx_msec_t                      connect_deadline;
    ngx_msec_t                      idle_deadline;

    u_char                         *out;        /* commands to write */
    size_t                          out_len;
    size_t                          out_sent;
    size_t                          out_size;

    ngx_http_txval_redis_state_e    state;
    unsigned                        timedout:1;
};


typedef struct {
    const char                     *asked;      /* what answers the map */

    /* the node an operation goes to; NULL: the map does not say yet */
    ngx_http_txval_redis_node_t  *(*route)(ngx_http_txval_redis_pool_t *pool,
                                     ngx_http_txval_redis_op_t *op);

    /* a node for an operation the map cannot place; NULL: none */
    ngx_http_txval_redis_node_t  *(*fallback)(
                                     ngx_http_txval_redis_pool_t *pool);

    /* formats the map's question into op (NULL: no map); 0 or -1 */
    ngx_int_t                     (*question)(
                                     ngx_http_txval_redis_pool_t *pool,
                                     ngx_http_txval_redis_op_t *op);

    /* how many nodes may be asked, and the nth of them */
    ngx_uint_t                    (*askable)(
                                     ngx_http_txval_redis_pool_t *pool);
    ngx_http_txval_redis_node_t  *(*nth)(ngx_http_txval_redis_pool_t *pool,
                                     ngx_uint_t n);

    /* an error reply not the command's (MOVED...); 1: followed later */
    ngx_uint_t                    (*refused)(
                                     ngx_http_txval_redis_pool_t *pool,
                                     ngx_http_txval_redis_op_t *op,
                                     ngx_uint_t cmd,
                                     ngx_http_txval_redis_conn_t *rc,
                                     redisReply *reply);

    /* a node failed a connection or a command */
    void                          (*failed)(
                                     ngx_http_txval_redis_pool_t *pool,
                                     ngx_http_txval_redis_node_t *node);
} ngx_http_txval_redis_mode_t;


struct ngx_http_txval_redis_pool_s {
    ngx_http_txval_redis_conf_t    *conf;
    ngx_http_txval_redis_mode_t    *mode;
    ngx_log_t                      *log;
    ngx_queue_t                     nodes;
    ngx_uint_t                      nnodes;
    ngx_http_txval_redis_node_t   **seeds;      /* conf->addrs' nodes */
    ngx_resolver_t                 *resolver;   /* NULL: none */
    ngx_msec_t                      resolver_timeout;
    ngx_event_t                     resolve;

    /* one server: seeds[0]; Sentinel: the master named, NULL: unknown */
    ngx_http_txval_redis_node_t    *master;
    ngx_http_txval_redis_node_t    *master_was;  /* the last one named */

    /* Cluster: the node of each slot, and the map being read */
    ngx_http_txval_redis_node_t   **slots;
    ngx_http_txval_redis_node_t   **reading;

    /* the map (master or slots) asked for; the operations waiting on it */
    ngx_event_t                     tick;
    ngx_http_txval_redis_op_t      *asking;
    ngx_msec_t                      asked;
    ngx_uint_t                      next;       /* which node to ask */
    ngx_uint_t                      tries;      /* failed in a row */
    ngx_uint_t                      mapped;     /* the slots were read */
    ngx_uint_t                      flushing;
    ngx_queue_t                     waiting;

    unsigned                        exiting:1;
};


extern ngx_http_txval_redis_mode_t  ngx_http_txval_redis_sentinel_mode;
extern ngx_http_txval_redis_mode_t  ngx_http_txval_redis_cluster_mode;


/* ngx_http_txval_redis_pool.c */
ngx_http_txval_redis_node_t *ngx_http_txval_redis_node(
    ngx_http_txval_redis_pool_t *pool, u_char *host, size_t len,
    ngx_int_t port);
ngx_uint_t ngx_http_txval_redis_numeric(u_char *host, size_t len);
ngx_int_t ngx_http_txval_redis_dispatch(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_op_t *op, ngx_http_txval_redis_node_t *node);
void ngx_http_txval_redis_reply(ngx_http_txval_redis_op_t *op,
    ngx_uint_t cmd, redisReply *reply);
void ngx_http_txval_redis_complete(ngx_http_txval_redis_op_t *op);
void ngx_http_txval_redis_retire(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_node_t *node);
void ngx_http_txval_redis_release(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_node_t *node);
void ngx_http_txval_redis_failed(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_node_t *node);
void ngx_http_txval_redis_ask(ngx_http_txval_redis_pool_t *pool);
ngx_uint_t ngx_http_txval_redis_retry(ngx_http_txval_redis_pool_t *pool);
void ngx_http_txval_redis_flush(ngx_http_txval_redis_pool_t *pool);
void ngx_http_txval_redis_publish(ngx_http_txval_redis_pool_t *pool);
void ngx_http_txval_redis_op_free(ngx_http_txval_redis_op_t *op);

/* ngx_http_txval_redis_conn.c */
ngx_http_txval_redis_conn_t *ngx_http_txval_redis_connect(
    ngx_http_txval_redis_pool_t *pool, ngx_http_txval_redis_node_t *node);
ngx_int_t ngx_http_txval_redis_write_op(ngx_http_txval_redis_conn_t *rc,
    ngx_http_txval_redis_op_t *op);
void ngx_http_txval_redis_close(ngx_http_txval_redis_conn_t *rc,
    ngx_uint_t how);
void ngx_http_txval_redis_arm(ngx_http_txval_redis_conn_t *rc);
void ngx_http_txval_redis_idle(ngx_http_txval_redis_conn_t *rc);
void ngx_http_txval_redis_ready(ngx_http_txval_redis_conn_t *rc);
void ngx_http_txval_redis_unwind(ngx_http_txval_redis_conn_t *rc);
void ngx_http_txval_redis_handler(ngx_event_t *ev);

/* ngx_http_txval_redis_tls.c */
void ngx_http_txval_redis_tls_start(ngx_http_txval_redis_conn_t *rc);

/* ngx_http_txval_redis_dns.c */
ngx_int_t ngx_http_txval_redis_dns_init(ngx_http_txval_redis_pool_t *pool,
    ngx_cycle_t *cycle);
void ngx_http_txval_redis_dns_now(ngx_http_txval_redis_pool_t *pool);
void ngx_http_txval_redis_dns_exit(ngx_http_txval_redis_pool_t *pool);
void ngx_http_txval_redis_set_addr(ngx_http_txval_redis_node_t *node,
    struct sockaddr *sa, socklen_t socklen);


#endif /* _NGX_HTTP_TXVAL_REDIS_INT_H_INCLUDED_ */
