
/*
 * txval: non-blocking Redis on nginx's own connections (the event loop,
 * its timers, ngx_ssl for TLS; hiredis only formats commands and reads
 * replies), with a per-worker pool of connections per Redis node: one
 * server, the master that Sentinel names, or the masters of a Redis
 * Cluster.
 *
 * Files: ngx_http_txval_redis_pool.c (this interface, the pool, routing),
 * _redis_conn.c (a connection: connect, batching, replies), _redis_tls.c
 * (its TLS), _redis_sentinel.c, _redis_cluster.c (the two topologies),
 * _redis_dns.c (run-time resolving), _redis_conf.c (the directive);
 * their shared types in ngx_http_txval_redis_int.h.
 */


#ifndef _NGX_HTTP_TXVAL_REDIS_H_INCLUDED_
#define _NGX_HTTP_TXVAL_REDIS_H_INCLUDED_


#include "ngx_http_txval_module.h"
#include "ngx_http_txval_slot.h"


#define NGX_HTTP_TXVAL_REDIS_VALUE_MAX  128
#define NGX_HTTP_TXVAL_REDIS_CMDS_MAX   2        /* commands per operation */

#define NGX_HTTP_TXVAL_REDIS_SINGLE     0
#define NGX_HTTP_TXVAL_REDIS_SENTINEL   1
#define NGX_HTTP_TXVAL_REDIS_CLUSTER    2


typedef struct ngx_http_txval_redis_conn_s  ngx_http_txval_redis_conn_t;
typedef struct ngx_http_txval_redis_pool_s  ngx_http_txval_redis_pool_t;


typedef enum {
    NGX_HTTP_TXVAL_REDIS_OK = 0,
    NGX_HTTP_TXVAL_REDIS_ERROR,
    NGX_HTTP_TXVAL_REDIS_TIMEOUT
} ngx_http_txval_redis_status_e;


typedef void (*ngx_http_txval_redis_done_pt)(ngx_http_txval_redis_op_t *op);
typedef void (*ngx_http_txval_redis_parse_pt)(ngx_http_txval_redis_op_t *op,
    void *reply);


struct ngx_http_txval_redis_op_s {
    ngx_queue_t                     queue;      /* in its connection */
    ngx_http_txval_redis_conn_t    *conn;       /* NULL: on none */
    ngx_msec_t                      deadline;
    ngx_uint_t                      pending;    /* replies still due */

    /*
     * The routing key (Redis Cluster: the node of its slot), set by the
     * caller before ngx_http_txval_redis_send(), read only there; NULL:
     * the first command's second word ("GET key", "INCR key").
     */
    u_char                         *key;
    size_t                          key_len;

    /*
     * The outcome: status ERROR if any command got an error reply (or
     * none came); nil, integer, value from the FIRST command's reply (a
     * nil, an integer, a bulk or simple string).
     */
    ngx_http_txval_redis_status_e   status;
    unsigned                        nil:1;
    long long                       integer;
    size_t                          value_len;  /* > MAX: too long */
    u_char                          value[NGX_HTTP_TXVAL_REDIS_VALUE_MAX];

    ngx_http_txval_redis_done_pt    done;
    void                           *data;       /* NULL: nobody waits */

    /* the rest is the pool's own */

    ngx_http_txval_redis_parse_pt   parse;      /* a control command's */
    ngx_uint_t                      ncmds;
    ngx_uint_t                      replied;    /* replies read, this try */
    char                           *cmd[NGX_HTTP_TXVAL_REDIS_CMDS_MAX];
    size_t                          cmd_len[NGX_HTTP_TXVAL_REDIS_CMDS_MAX];
    ngx_uint_t                      slot;       /* cluster: of the key */
    ngx_uint_t                      redirects;
    ngx_http_txval_redirect_t       redirect;   /* cluster: MOVED, ASK */
    unsigned                        redirected:1;
    unsigned                        ask:1;      /* ASKING first */
    unsigned                        asking:1;   /* sent with ASKING */
    unsigned                        control:1;  /* not a request's */
};


typedef struct {
    ngx_str_t                       text;       /* as written */
    ngx_str_t                       host;       /* numeric, or unix path */
    ngx_str_t                       name;       /* host as written */
    ngx_int_t                       port;       /* 0: unix socket */
    socklen_t                       socklen;    /* 0: not resolved yet */
    ngx_sockaddr_t                  sockaddr;
    unsigned                        named:1;    /* a name, not numeric */
} ngx_http_txval_redis_addr_t;


struct ngx_http_txval_redis_conf_s {
    ngx_uint_t                      mode;       /* SINGLE, SENTINEL, ... */
    ngx_array_t                     addrs;      /* server, sentinels, seeds */
    ngx_str_t                       master;     /* sentinel: master's name */
    ngx_uint_t                      db;
    ngx_str_t                       user;
    ngx_str_t                       password;
    ngx_str_t                       sentinel_user;
    ngx_str_t                       sentinel_password;
    ngx_str_t                       prefix;
    ngx_uint_t                      pool;
    ngx_msec_t                      connect_timeout;
    ngx_msec_t                      timeout;
    ngx_msec_t                      idle_timeout;

    ngx_flag_t                      tls;
    ngx_flag_t                      tls_verify;
    ngx_str_t                       tls_name;   /* empty: the host */
    ngx_str_t                       tls_trusted_certificate;
    ngx_str_t                       tls_certificate;
    ngx_str_t                       tls_certificate_key;
#if (NGX_SSL)
    ngx_ssl_t                      *ssl;
#endif

    void                           *clcf;       /* http{}'s: its resolver */

    ngx_http_txval_redis_pool_t    *pool_state; /* the worker's own */
};


/* the state of a node, for readiness */
typedef struct {
    ngx_str_t                       text;       /* its address */
    unsigned                        sentinel:1;
    unsigned                        up:1;       /* connected, or was */
} ngx_http_txval_redis_node_state_t;


char *ngx_http_txval_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_txval_redis_postconf(ngx_conf_t *cf,
    ngx_http_txval_redis_conf_t *rcf);
ngx_int_t ngx_http_txval_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_txval_redis_conf_t *rcf);
void ngx_http_txval_redis_exit_process(void);

/*
 * Sends ncmds commands (pipelined, one round trip) on a pooled connection.
 * op->done is called once, when every reply is in or the commands failed;
 * not before this function returns. NGX_ERROR: nothing was sent (no
 * connection could be had), op->status says why; the op is the caller's
 * to free.
 *
 * All the commands of one operation address one key (Redis Cluster sends
 * them to the node serving that key's slot): op->key if set, else the
 * first command's second word. "EVAL script 1 key ..." needs op->key.
 */
ngx_int_t ngx_http_txval_redis_send(ngx_http_txval_redis_conf_t *rcf,
    ngx_http_txval_redis_op_t *op, ngx_uint_t ncmds, int *argc,
    const char ***argv, size_t **argvlen);

ngx_http_txval_redis_op_t *ngx_http_txval_redis_op(ngx_log_t *log);

/*
 * this worker's connections, for metrics: busy (commands in flight), idle
 * and connecting
 */
void ngx_http_txval_redis_pool_counts(ngx_uint_t *busy, ngx_uint_t *idle,
    ngx_uint_t *connecting);

/*
 * Readiness, per worker: fills at most n entries, one per configured node
 * or sentinel and per node in use (Sentinel's master, Cluster's masters),
 * and returns how many. up: it has a connection ready, or its last
 * connect succeeded. The texts are valid until the worker next waits
 * for events.
 */
ngx_uint_t ngx_http_txval_redis_nodes(ngx_http_txval_redis_node_state_t *st,
    ngx_uint_t n);


#endif /* _NGX_HTTP_TXVAL_REDIS_H_INCLUDED_ */
