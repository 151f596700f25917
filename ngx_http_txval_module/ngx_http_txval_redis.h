
/*
 * txval: non-blocking Redis (hiredis' async API on nginx's event loop),
 * with a per-worker pool of connections per Redis node: one server, the
 * master that Sentinel names, or the masters of a Redis Cluster.
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
    void                           *conn;
    ngx_msec_t                      deadline;
    ngx_uint_t                      pending;    /* replies still due */

    ngx_http_txval_redis_status_e   status;
    unsigned                        nil:1;      /* GET: no such key */
    long long                       integer;    /* the first integer */
    size_t                          value_len;  /* > MAX: too long */
    u_char                          value[NGX_HTTP_TXVAL_REDIS_VALUE_MAX];

    ngx_http_txval_redis_done_pt    done;
    void                           *data;       /* NULL: nobody waits */

    /* the rest is the pool's own */

    ngx_http_txval_redis_parse_pt   parse;      /* a control command's */
    ngx_uint_t                      ncmds;
    char                           *cmd[NGX_HTTP_TXVAL_REDIS_CMDS_MAX];
    size_t                          cmd_len[NGX_HTTP_TXVAL_REDIS_CMDS_MAX];
    ngx_uint_t                      slot;       /* cluster: of the key */
    ngx_uint_t                      redirects;
    ngx_http_txval_redirect_t       redirect;   /* cluster: MOVED, ASK */
    unsigned                        redirected:1;
    unsigned                        ask:1;      /* ASKING first */
    unsigned                        control:1;  /* not a request's */
};


typedef struct {
    ngx_str_t                       host;       /* numeric or unix path */
    ngx_int_t                       port;       /* 0: unix socket */
    ngx_str_t                       text;       /* for logs */
} ngx_http_txval_redis_addr_t;


struct ngx_http_txval_redis_conf_s {
    ngx_uint_t                      mode;       /* SINGLE, SENTINEL, ... */
    ngx_array_t                     addrs;      /* server, sentinels, seeds */
    ngx_str_t                       master;     /* sentinel: master's name */
    ngx_uint_t                      db;
    ngx_str_t                       password;
    ngx_str_t                       prefix;
    ngx_uint_t                      pool;
    ngx_msec_t                      connect_timeout;
    ngx_msec_t                      timeout;
    ngx_msec_t                      idle_timeout;
};


char *ngx_http_txval_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
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
 * All the commands of one operation address one key, their second word
 * (Redis Cluster sends them to the node serving that key's slot).
 */
ngx_int_t ngx_http_txval_redis_send(ngx_http_txval_redis_conf_t *rcf,
    ngx_http_txval_redis_op_t *op, ngx_uint_t ncmds, int *argc,
    const char ***argv, size_t **argvlen);

ngx_http_txval_redis_op_t *ngx_http_txval_redis_op(ngx_log_t *log);

/* per-worker connection counts, for metrics: connected, connecting */
void ngx_http_txval_redis_pool_counts(ngx_uint_t *busy, ngx_uint_t *idle,
    ngx_uint_t *connecting);


#endif /* _NGX_HTTP_TXVAL_REDIS_H_INCLUDED_ */
