
/*
 * txval: non-blocking Redis.
 *
 * hiredis' async context is driven by nginx: its socket is wrapped in an
 * ngx_connection_t, hiredis' addRead/delRead/addWrite/delWrite/cleanup
 * hooks map to nginx events (level-triggered, as hiredis reads once per
 * call), and every deadline is an nginx timer. Nothing here blocks: every
 * address is numeric (configured, or announced by Sentinel or the
 * Cluster), connect is hiredis' non-blocking one, AUTH and SELECT are
 * pipelined ahead of the first command of each new connection.
 *
 * Per worker and per Redis node, up to `pool` connections are shared by
 * all requests: commands are pipelined on the least loaded connection and
 * answered in order. Each connection keeps its operations in order with
 * their deadlines; when the oldest one passes its deadline the connection
 * is closed (never reused) and every operation on it fails. A connection
 * that errors is closed the same way. After a failed connect a node fails
 * fast for a short while instead of reconnecting on every request; the
 * next request after that reconnects, so the pool heals by itself.
 *
 * Which node serves a command:
 *
 * - one server: that one;
 * - Sentinel: the master the sentinels name (SENTINEL
 *   get-master-addr-by-name), asked once a second, and at once when the
 *   master fails a connection or a command, or answers READONLY. While the
 *   master is being asked for, operations wait for the answer. A new
 *   master takes the new operations; the old one's connections close as
 *   soon as they are idle.
 * - Cluster: the node of the key's slot, from CLUSTER SLOTS (asked once a
 *   second, and at once on MOVED or a failing node); a slot nobody is known
 *   to serve goes to a configured node. MOVED and ASK are followed (at
 *   most NGX_HTTP_TXVAL_REDIS_REDIRECTS times per operation).
 */


#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_txval_redis.h"
#include "ngx_http_txval_slot.h"
#include "ngx_http_txval_metrics.h"


#define NGX_HTTP_TXVAL_REDIS_BACKOFF    200     /* ms of failing fast */
#define NGX_HTTP_TXVAL_REDIS_MAX_OPS    1024    /* per connection */
#define NGX_HTTP_TXVAL_REDIS_BATCH      64      /* ops joining one write */
#define NGX_HTTP_TXVAL_REDIS_REFRESH    1000    /* ms between map askings */
#define NGX_HTTP_TXVAL_REDIS_MIN_ASK    100     /* ms, at least, between */
#define NGX_HTTP_TXVAL_REDIS_REDIRECTS  3
#define NGX_HTTP_TXVAL_REDIS_NODES_MAX  256


typedef struct {
    ngx_queue_t                     queue;      /* in the pool */
    ngx_queue_t                     conns;
    ngx_uint_t                      nconns;
    ngx_uint_t                      max;        /* connections at most */
    ngx_uint_t                      holds;      /* in use up the stack */
    ngx_msec_t                      down_until;
    ngx_int_t                       port;       /* 0: unix socket */
    ngx_str_t                       text;       /* host:port, for logs */
    u_char                          host[NGX_SOCKADDR_STRLEN + 1];
    unsigned                        control:1;  /* a sentinel */
    unsigned                        seed:1;     /* configured: kept */
    unsigned                        retired:1;  /* freed once unused */
    unsigned                        used:1;
} ngx_http_txval_redis_node_t;


typedef struct {
    ngx_queue_t                     queue;      /* in its node */
    ngx_http_txval_redis_node_t    *node;
    redisAsyncContext              *ac;
    ngx_connection_t               *c;
    ngx_event_t                     timer;
    ngx_queue_t                     ops;
    ngx_uint_t                      nops;
    ngx_msec_t                      connect_deadline;
    unsigned                        connected:1;
    unsigned                        timedout:1;
    unsigned                        closing:1;
} ngx_http_txval_redis_conn_t;


typedef struct {
    ngx_http_txval_redis_conf_t    *conf;
    ngx_log_t                      *log;
    ngx_queue_t                     nodes;
    ngx_uint_t                      nnodes;
    ngx_http_txval_redis_node_t   **seeds;      /* conf->addrs' nodes */

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
} ngx_http_txval_redis_pool_t;


static ngx_int_t ngx_http_txval_redis_dispatch(
    ngx_http_txval_redis_pool_t *pool, ngx_http_txval_redis_op_t *op,
    ngx_http_txval_redis_node_t *node);
static void ngx_http_txval_redis_finish(ngx_http_txval_redis_op_t *op);
static ngx_http_txval_redis_node_t *ngx_http_txval_redis_route(
    ngx_http_txval_redis_pool_t *pool, ngx_http_txval_redis_op_t *op);
static ngx_http_txval_redis_node_t *ngx_http_txval_redis_fallback(
    ngx_http_txval_redis_pool_t *pool);
static ngx_uint_t ngx_http_txval_redis_retry(
    ngx_http_txval_redis_pool_t *pool);
static void ngx_http_txval_redis_op_free(ngx_http_txval_redis_op_t *op);
static ngx_http_txval_redis_node_t *ngx_http_txval_redis_node(
    ngx_http_txval_redis_pool_t *pool, u_char *host, size_t len,
    ngx_int_t port);
static ngx_uint_t ngx_http_txval_redis_numeric(u_char *host, size_t len);
static ngx_http_txval_redis_node_t *ngx_http_txval_redis_nth(
    ngx_http_txval_redis_pool_t *pool, ngx_uint_t n);
static void ngx_http_txval_redis_retire(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_node_t *node);
static void ngx_http_txval_redis_release(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_node_t *node);
static void ngx_http_txval_redis_failed(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_node_t *node);
static void ngx_http_txval_redis_ask(ngx_http_txval_redis_pool_t *pool);
static void ngx_http_txval_redis_tick(ngx_event_t *ev);
static void ngx_http_txval_redis_master_parse(ngx_http_txval_redis_op_t *op,
    void *r);
static void ngx_http_txval_redis_master_got(ngx_http_txval_redis_op_t *op);
static void ngx_http_txval_redis_slots_parse(ngx_http_txval_redis_op_t *op,
    void *r);
static void ngx_http_txval_redis_slots_got(ngx_http_txval_redis_op_t *op);
static void ngx_http_txval_redis_flush(ngx_http_txval_redis_pool_t *pool);
static ngx_http_txval_redis_conn_t *ngx_http_txval_redis_get(
    ngx_http_txval_redis_pool_t *pool, ngx_http_txval_redis_node_t *node);
static ngx_http_txval_redis_conn_t *ngx_http_txval_redis_connect(
    ngx_http_txval_redis_pool_t *pool, ngx_http_txval_redis_node_t *node);
static void ngx_http_txval_redis_close(ngx_http_txval_redis_conn_t *rc,
    ngx_uint_t timedout);
static void ngx_http_txval_redis_arm(ngx_http_txval_redis_conn_t *rc);
static void ngx_http_txval_redis_timer(ngx_event_t *ev);
static void ngx_http_txval_redis_read(ngx_event_t *ev);
static void ngx_http_txval_redis_write(ngx_event_t *ev);
static void ngx_http_txval_redis_connected(const redisAsyncContext *ac,
    int status);
static void ngx_http_txval_redis_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_txval_redis_setup_reply(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_http_txval_redis_add_read(void *data);
static void ngx_http_txval_redis_del_read(void *data);
static void ngx_http_txval_redis_add_write(void *data);
static void ngx_http_txval_redis_del_write(void *data);
static void ngx_http_txval_redis_cleanup(void *data);
static ngx_uint_t ngx_http_txval_redis_refused(
    ngx_http_txval_redis_pool_t *pool, ngx_http_txval_redis_op_t *op,
    ngx_http_txval_redis_conn_t *rc, redisReply *reply);
static void ngx_http_txval_redis_lost(ngx_http_txval_redis_conn_t *rc);
static void ngx_http_txval_redis_publish(void);
static char *ngx_http_txval_redis_address(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_txval_redis_conf_t *rcf, ngx_str_t *text, in_port_t port);


static ngx_http_txval_redis_pool_t  ngx_http_txval_redis_pool;
static ngx_uint_t                   ngx_http_txval_redis_writing;

static char  ngx_http_txval_redis_asking[] = "*1\r\n$6\r\nASKING\r\n";


ngx_int_t
ngx_http_txval_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_txval_redis_conf_t *rcf)
{
    ngx_uint_t                    i;
    ngx_http_txval_redis_addr_t  *addr;
    ngx_http_txval_redis_node_t  *node;
    ngx_http_txval_redis_pool_t  *pool = &ngx_http_txval_redis_pool;

    ngx_memzero(pool, sizeof(ngx_http_txval_redis_pool_t));

    ngx_queue_init(&pool->nodes);
    ngx_queue_init(&pool->waiting);
    pool->conf = rcf;
    pool->log = cycle->log;

    pool->seeds = ngx_alloc(rcf->addrs.nelts * sizeof(void *), cycle->log);
    if (pool->seeds == NULL) {
        return NGX_ERROR;
    }

    addr = rcf->addrs.elts;

    for (i = 0; i < rcf->addrs.nelts; i++) {
        node = ngx_http_txval_redis_node(pool, addr[i].host.data,
                                         addr[i].host.len, addr[i].port);
        if (node == NULL) {
            return NGX_ERROR;
        }

        node->seed = 1;
        pool->seeds[i] = node;

        if (rcf->mode == NGX_HTTP_TXVAL_REDIS_SENTINEL) {
            /* a sentinel answers one question at a time */
            node->control = 1;
            node->max = 1;
        }
    }

    switch (rcf->mode) {

    case NGX_HTTP_TXVAL_REDIS_SINGLE:
        pool->master = pool->seeds[0];
        return NGX_OK;

    case NGX_HTTP_TXVAL_REDIS_CLUSTER:
        pool->slots = ngx_calloc(2 * NGX_HTTP_TXVAL_SLOTS * sizeof(void *),
                                 cycle->log);
        if (pool->slots == NULL) {
            return NGX_ERROR;
        }

        pool->reading = pool->slots + NGX_HTTP_TXVAL_SLOTS;
        break;

    default: /* NGX_HTTP_TXVAL_REDIS_SENTINEL */
        break;
    }

    /* the map is asked for as soon as the worker runs, then every second */

    pool->tick.handler = ngx_http_txval_redis_tick;
    pool->tick.data = pool;
    pool->tick.log = cycle->log;
    pool->tick.cancelable = 1;

    ngx_add_timer(&pool->tick, 1);

    return NGX_OK;
}


void
ngx_http_txval_redis_exit_process(void)
{
    ngx_queue_t                  *q;
    ngx_http_txval_redis_op_t    *op;
    ngx_http_txval_redis_node_t  *node;
    ngx_http_txval_redis_conn_t  *rc;
    ngx_http_txval_redis_pool_t  *pool = &ngx_http_txval_redis_pool;

    if (pool->conf == NULL) {
        return;
    }

    /* the requests are gone: no operation reports back */
    pool->exiting = 1;

    if (pool->tick.timer_set) {
        ngx_del_timer(&pool->tick);
    }

    while (!ngx_queue_empty(&pool->waiting)) {
        q = ngx_queue_head(&pool->waiting);
        op = ngx_queue_data(q, ngx_http_txval_redis_op_t, queue);
        ngx_queue_remove(q);
        ngx_http_txval_redis_op_free(op);
    }

    while (!ngx_queue_empty(&pool->nodes)) {
        q = ngx_queue_head(&pool->nodes);
        node = ngx_queue_data(q, ngx_http_txval_redis_node_t, queue);

        while (!ngx_queue_empty(&node->conns)) {
            q = ngx_queue_head(&node->conns);
            rc = ngx_queue_data(q, ngx_http_txval_redis_conn_t, queue);
            ngx_http_txval_redis_close(rc, 0);
        }

        ngx_queue_remove(&node->queue);
        ngx_free(node);
    }

    ngx_free(pool->seeds);
    ngx_free(pool->slots);

    pool->conf = NULL;
}


ngx_http_txval_redis_op_t *
ngx_http_txval_redis_op(ngx_log_t *log)
{
    ngx_http_txval_redis_op_t  *op;

    op = ngx_calloc(sizeof(ngx_http_txval_redis_op_t), log);

    return op;
}


ngx_int_t
ngx_http_txval_redis_send(ngx_http_txval_redis_conf_t *rcf,
    ngx_http_txval_redis_op_t *op, ngx_uint_t ncmds, int *argc,
    const char ***argv, size_t **argvlen)
{
    int                           len;
    ngx_uint_t                    i;
    ngx_http_txval_redis_node_t  *node;
    ngx_http_txval_redis_pool_t  *pool = &ngx_http_txval_redis_pool;

    op->status = NGX_HTTP_TXVAL_REDIS_ERROR;

    if (pool->conf == NULL || ncmds > NGX_HTTP_TXVAL_REDIS_CMDS_MAX) {
        return NGX_ERROR;
    }

    /* formatted once: a redirected or waiting operation is sent later */

    for (i = 0; i < ncmds; i++) {
        len = redisFormatCommandArgv(&op->cmd[i], argc[i], argv[i],
                                     argvlen[i]);
        if (len < 0) {
            /* out of memory: the op stays the caller's, its commands go */
            goto failed;
        }

        op->cmd_len[i] = len;
        op->ncmds++;
    }

    op->status = NGX_HTTP_TXVAL_REDIS_OK;

    if (rcf->mode == NGX_HTTP_TXVAL_REDIS_CLUSTER) {
        op->slot = ngx_http_txval_slot((u_char *) argv[0][1], argvlen[0][1]);
    }

    node = ngx_http_txval_redis_route(pool, op);

    if (node == NULL && rcf->mode != NGX_HTTP_TXVAL_REDIS_SINGLE) {

        if (rcf->mode == NGX_HTTP_TXVAL_REDIS_SENTINEL || !pool->mapped) {
            /* no master, no map at all: asked for now, whenever last */
            pool->asked = 0;
        }

        ngx_http_txval_redis_ask(pool);

        if (pool->asking) {
            /* until the sentinels name the master, or the slots are known */
            ngx_queue_insert_tail(&pool->waiting, &op->queue);
            return NGX_OK;
        }

        node = ngx_http_txval_redis_fallback(pool);
    }

    if (node && ngx_http_txval_redis_dispatch(pool, op, node) == NGX_OK) {
        return NGX_OK;
    }

failed:

    op->status = NGX_HTTP_TXVAL_REDIS_ERROR;
    ngx_http_txval_metrics_backend(NGX_HTTP_TXVAL_M_REDIS,
                                   NGX_HTTP_TXVAL_REDIS_ERROR);

    for (i = 0; i < op->ncmds; i++) {
        redisFreeCommand(op->cmd[i]);
        op->cmd[i] = NULL;
    }

    op->ncmds = 0;

    return NGX_ERROR;
}


/* the node an operation goes to; NULL: the map does not say yet */

static ngx_http_txval_redis_node_t *
ngx_http_txval_redis_route(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_op_t *op)
{
    if (pool->conf->mode == NGX_HTTP_TXVAL_REDIS_CLUSTER) {
        return pool->slots[op->slot];
    }

    return pool->master;
}


/*
 * Cluster, a slot of no known node: a configured node that is not failing
 * (it redirects with MOVED). Sentinel: none.
 */

static ngx_http_txval_redis_node_t *
ngx_http_txval_redis_fallback(ngx_http_txval_redis_pool_t *pool)
{
    ngx_uint_t                    i, n;
    ngx_http_txval_redis_node_t  *node;

    if (pool->conf->mode != NGX_HTTP_TXVAL_REDIS_CLUSTER) {
        return NULL;
    }

    n = pool->conf->addrs.nelts;

    for (i = 0; i < n; i++) {
        node = pool->seeds[(pool->next + i) % n];

        if ((ngx_msec_int_t) (node->down_until - ngx_current_msec) <= 0) {
            return node;
        }
    }

    return NULL;
}


/* the operation's commands on a connection to the node */

static ngx_int_t
ngx_http_txval_redis_dispatch(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_op_t *op, ngx_http_txval_redis_node_t *node)
{
    ngx_uint_t                    i;
    ngx_http_txval_redis_conn_t  *rc;

    rc = ngx_http_txval_redis_get(pool, node);
    if (rc == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < op->ncmds; i++) {

        if (op->ask) {
            /* its reply, OK, is of no interest: a failure fails the next */
            (void) redisAsyncFormattedCommand(rc->ac, NULL, NULL,
                                        ngx_http_txval_redis_asking,
                                        sizeof(ngx_http_txval_redis_asking)
                                        - 1);
        }

        if (redisAsyncFormattedCommand(rc->ac, ngx_http_txval_redis_reply,
                                       op, op->cmd[i], op->cmd_len[i])
            != REDIS_OK)
        {
            /* only a connection being torn down or out of memory refuses */

            if (i == 0) {
                return NGX_ERROR;
            }

            /* the replies already queued will come back; wait for them */
            break;
        }
    }

    op->ask = 0;
    op->conn = rc;
    op->pending = i;
    op->deadline = ngx_current_msec + pool->conf->timeout;

    if (!rc->connected) {
        op->deadline = rc->connect_deadline + pool->conf->timeout;
    }

    ngx_queue_insert_tail(&rc->ops, &op->queue);
    rc->nops++;

    if (rc->nops == 1) {
        ngx_http_txval_redis_arm(rc);
        ngx_http_txval_redis_publish();
    }

    return NGX_OK;
}


/* every reply is in, or none will come: tell whoever waits */

static void
ngx_http_txval_redis_finish(ngx_http_txval_redis_op_t *op)
{
    ngx_http_txval_redis_pool_t  *pool = &ngx_http_txval_redis_pool;

    if (!op->control) {
        ngx_http_txval_metrics_backend(NGX_HTTP_TXVAL_M_REDIS, op->status);
    }

    if (op->data && !pool->exiting) {
        op->done(op);
    }

    ngx_http_txval_redis_op_free(op);
}


static void
ngx_http_txval_redis_op_free(ngx_http_txval_redis_op_t *op)
{
    ngx_uint_t  i;

    for (i = 0; i < op->ncmds; i++) {
        redisFreeCommand(op->cmd[i]);
    }

    ngx_free(op);
}


void
ngx_http_txval_redis_pool_counts(ngx_uint_t *busy, ngx_uint_t *idle,
    ngx_uint_t *connecting)
{
    ngx_queue_t                  *q, *cq;
    ngx_http_txval_redis_node_t  *node;
    ngx_http_txval_redis_conn_t  *rc;
    ngx_http_txval_redis_pool_t  *pool = &ngx_http_txval_redis_pool;

    *busy = 0;
    *idle = 0;
    *connecting = 0;

    if (pool->conf == NULL) {
        return;
    }

    for (q = ngx_queue_head(&pool->nodes);
         q != ngx_queue_sentinel(&pool->nodes);
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_txval_redis_node_t, queue);

        for (cq = ngx_queue_head(&node->conns);
             cq != ngx_queue_sentinel(&node->conns);
             cq = ngx_queue_next(cq))
        {
            rc = ngx_queue_data(cq, ngx_http_txval_redis_conn_t, queue);

            if (!rc->connected) {
                (*connecting)++;

            } else if (rc->nops) {
                (*busy)++;

            } else {
                (*idle)++;
            }
        }
    }
}


/* an IPv4 or IPv6 address: hiredis would resolve a name, and block */

static ngx_uint_t
ngx_http_txval_redis_numeric(u_char *host, size_t len)
{
#if (NGX_HAVE_INET6)
    struct in6_addr  a6;

    if (ngx_inet6_addr(host, len, a6.s6_addr) == NGX_OK) {
        return 1;
    }
#endif

    return ngx_inet_addr(host, len) != INADDR_NONE;
}


/* the node at host:port, a new one if none is yet */

static ngx_http_txval_redis_node_t *
ngx_http_txval_redis_node(ngx_http_txval_redis_pool_t *pool, u_char *host,
    size_t len, ngx_int_t port)
{
    u_char                       *p;
    ngx_queue_t                  *q;
    ngx_http_txval_redis_node_t  *node;

    for (q = ngx_queue_head(&pool->nodes);
         q != ngx_queue_sentinel(&pool->nodes);
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_txval_redis_node_t, queue);

        if (node->port == port && !node->control
            && ngx_strlen(node->host) == len
            && ngx_strncmp(node->host, host, len) == 0)
        {
            node->retired = 0;
            return node;
        }
    }

    if (len > NGX_SOCKADDR_STRLEN
        || pool->nnodes >= NGX_HTTP_TXVAL_REDIS_NODES_MAX)
    {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "txval: redis: too many nodes, or too long an address");
        return NULL;
    }

    /* room for "[host]:port" in text, after the host */
    node = ngx_calloc(sizeof(ngx_http_txval_redis_node_t)
                      + len + sizeof("[]:65535") - 1, pool->log);
    if (node == NULL) {
        return NULL;
    }

    ngx_memcpy(node->host, host, len);
    node->host[len] = '\0';
    node->port = port;
    node->max = pool->conf->pool;
    ngx_queue_init(&node->conns);

    node->text.data = (u_char *) (node + 1);

    if (port == 0) {
        p = ngx_sprintf(node->text.data, "unix:%*s", len, host);

    } else if (ngx_strlchr(host, host + len, ':')) {
        p = ngx_sprintf(node->text.data, "[%*s]:%i", len, host, port);

    } else {
        p = ngx_sprintf(node->text.data, "%*s:%i", len, host, port);
    }

    node->text.len = p - node->text.data;

    ngx_queue_insert_tail(&pool->nodes, &node->queue);
    pool->nnodes++;

    return node;
}


/* no new operation goes to the node; it goes once its last one is done */

static void
ngx_http_txval_redis_retire(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_node_t *node)
{
    ngx_queue_t                  *q, *next;
    ngx_http_txval_redis_conn_t  *rc;

    if (node->seed) {
        return;
    }

    /* (not retired yet: closing its last connection must not free it) */

    for (q = ngx_queue_head(&node->conns);
         q != ngx_queue_sentinel(&node->conns);
         q = next)
    {
        next = ngx_queue_next(q);
        rc = ngx_queue_data(q, ngx_http_txval_redis_conn_t, queue);

        if (rc->nops == 0) {
            ngx_http_txval_redis_close(rc, 0);
        }
    }

    node->retired = 1;

    ngx_http_txval_redis_release(pool, node);
}


static void
ngx_http_txval_redis_release(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_node_t *node)
{
    if (node->retired && node->nconns == 0 && node->holds == 0
        && !pool->exiting)
    {
        ngx_queue_remove(&node->queue);
        pool->nnodes--;
        ngx_free(node);
    }
}


/* a node failed a connection or a command: is the map still right? */

static void
ngx_http_txval_redis_failed(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_node_t *node)
{
    if (pool->exiting || node->control) {
        return;
    }

    switch (pool->conf->mode) {

    case NGX_HTTP_TXVAL_REDIS_SENTINEL:
        if (node == pool->master) {
            /* the next operations wait for what the sentinels say */
            pool->master = NULL;
            pool->asked = 0;
            ngx_http_txval_redis_ask(pool);
        }

        break;

    case NGX_HTTP_TXVAL_REDIS_CLUSTER:
        ngx_http_txval_redis_ask(pool);
        break;

    default:
        break;
    }
}


/*
 * Asks for the map: Sentinel's master or Cluster's slots, one question at
 * a time, not more than every NGX_HTTP_TXVAL_REDIS_MIN_ASK ms (the tick
 * asks again later), to the next node that can be had.
 */

static void
ngx_http_txval_redis_ask(ngx_http_txval_redis_pool_t *pool)
{
    int                           len;
    size_t                        argvlen[3];
    ngx_uint_t                    i, n;
    const char                   *argv[3];
    ngx_http_txval_redis_op_t    *op;
    ngx_http_txval_redis_node_t  *node;
    ngx_http_txval_redis_conf_t  *rcf = pool->conf;

    if (pool->asking || pool->exiting
        || (pool->asked
            && (ngx_msec_int_t) (ngx_current_msec - pool->asked)
               < NGX_HTTP_TXVAL_REDIS_MIN_ASK))
    {
        return;
    }

    op = ngx_http_txval_redis_op(pool->log);
    if (op == NULL) {
        goto failed;
    }

    op->control = 1;
    op->data = pool;

    if (rcf->mode == NGX_HTTP_TXVAL_REDIS_SENTINEL) {
        argv[0] = "SENTINEL";
        argvlen[0] = 8;
        argv[1] = "get-master-addr-by-name";
        argvlen[1] = 23;
        argv[2] = (const char *) rcf->master.data;
        argvlen[2] = rcf->master.len;
        len = redisFormatCommandArgv(&op->cmd[0], 3, argv, argvlen);

        op->parse = ngx_http_txval_redis_master_parse;
        op->done = ngx_http_txval_redis_master_got;

    } else {
        argv[0] = "CLUSTER";
        argvlen[0] = 7;
        argv[1] = "SLOTS";
        argvlen[1] = 5;
        len = redisFormatCommandArgv(&op->cmd[0], 2, argv, argvlen);

        op->parse = ngx_http_txval_redis_slots_parse;
        op->done = ngx_http_txval_redis_slots_got;
    }

    if (len < 0) {
        ngx_free(op);
        goto failed;
    }

    op->cmd_len[0] = len;
    op->ncmds = 1;
    op->status = NGX_HTTP_TXVAL_REDIS_OK;

    pool->asked = ngx_current_msec;

    /* the sentinels, or the configured nodes, then the cluster's others */

    n = (rcf->mode == NGX_HTTP_TXVAL_REDIS_SENTINEL) ? rcf->addrs.nelts
                                                   : pool->nnodes;

    for (i = 0; i < n; i++, pool->next++) {

        if (rcf->mode == NGX_HTTP_TXVAL_REDIS_SENTINEL) {
            node = pool->seeds[pool->next % n];

        } else {
            node = ngx_http_txval_redis_nth(pool, pool->next % n);

            if (node->retired) {
                continue;
            }
        }

        pool->asking = op;

        if (ngx_http_txval_redis_dispatch(pool, op, node) == NGX_OK) {
            return;
        }

        pool->asking = NULL;
    }

    ngx_http_txval_redis_op_free(op);

failed:

    ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                  "txval: redis: no %s could be asked",
                  rcf->mode == NGX_HTTP_TXVAL_REDIS_SENTINEL
                  ? "sentinel" : "cluster node");

    ngx_http_txval_redis_flush(pool);
}


static ngx_http_txval_redis_node_t *
ngx_http_txval_redis_nth(ngx_http_txval_redis_pool_t *pool, ngx_uint_t n)
{
    ngx_queue_t  *q;

    for (q = ngx_queue_head(&pool->nodes);
         n && q != ngx_queue_last(&pool->nodes);
         n--)
    {
        q = ngx_queue_next(q);
    }

    return ngx_queue_data(q, ngx_http_txval_redis_node_t, queue);
}


/* the operations waiting for the map go where it says, or fail */

static void
ngx_http_txval_redis_flush(ngx_http_txval_redis_pool_t *pool)
{
    ngx_queue_t                  *q;
    ngx_http_txval_redis_op_t    *op;
    ngx_http_txval_redis_node_t  *node;

    /*
     * a failed operation's requests may send again, and come back here:
     * the loop that runs already takes their operations
     */

    if (pool->flushing) {
        return;
    }

    pool->flushing = 1;

    while (!ngx_queue_empty(&pool->waiting)) {
        q = ngx_queue_head(&pool->waiting);
        op = ngx_queue_data(q, ngx_http_txval_redis_op_t, queue);

        node = ngx_http_txval_redis_route(pool, op);

        if (node == NULL && pool->asking) {
            /* asked again meanwhile: the rest waits for that answer */
            break;
        }

        ngx_queue_remove(q);

        if (node == NULL) {
            node = ngx_http_txval_redis_fallback(pool);
        }

        if (node && ngx_http_txval_redis_dispatch(pool, op, node) == NGX_OK) {
            continue;
        }

        op->status = NGX_HTTP_TXVAL_REDIS_ERROR;
        ngx_http_txval_redis_finish(op);
    }

    pool->flushing = 0;
}


static void
ngx_http_txval_redis_tick(ngx_event_t *ev)
{
    ngx_http_txval_redis_pool_t  *pool = ev->data;

    if (pool->exiting) {
        return;
    }

    ngx_http_txval_redis_ask(pool);

    ngx_add_timer(ev, NGX_HTTP_TXVAL_REDIS_REFRESH);
}


/* SENTINEL get-master-addr-by-name: [ip, port], or nil */

static void
ngx_http_txval_redis_master_parse(ngx_http_txval_redis_op_t *op, void *r)
{
    u_char      *p;
    redisReply  *reply = r, *ip, *port;

    if (reply->type == REDIS_REPLY_NIL) {
        op->nil = 1;
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        op->status = NGX_HTTP_TXVAL_REDIS_ERROR;
        return;
    }

    ip = reply->element[0];
    port = reply->element[1];

    if (ip->type != REDIS_REPLY_STRING || port->type != REDIS_REPLY_STRING
        || ip->len == 0 || port->len == 0
        || ip->len + port->len + 1 > NGX_HTTP_TXVAL_REDIS_VALUE_MAX)
    {
        op->status = NGX_HTTP_TXVAL_REDIS_ERROR;
        return;
    }

    /* "ip port" */
    p = ngx_cpymem(op->value, ip->str, ip->len);
    *p++ = ' ';
    p = ngx_cpymem(p, port->str, port->len);
    op->value_len = p - op->value;
}


static void
ngx_http_txval_redis_master_got(ngx_http_txval_redis_op_t *op)
{
    u_char                       *sp;
    ngx_int_t                     port;
    ngx_http_txval_redis_node_t  *node, *old;
    ngx_http_txval_redis_pool_t  *pool = op->data;

    pool->asking = NULL;

    if (op->status != NGX_HTTP_TXVAL_REDIS_OK || op->nil) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "txval: redis: sentinel %V %s master \"%V\"",
                      &pool->seeds[pool->next % pool->conf->addrs.nelts]
                           ->text,
                      op->nil ? "does not know" : "failed to name",
                      &pool->conf->master);

        /* the next question goes to the next sentinel: now, if asked for */
        pool->next++;

        if (ngx_http_txval_redis_retry(pool)) {
            return;
        }

        goto done;
    }

    sp = ngx_strlchr(op->value, op->value + op->value_len, ' ');
    port = ngx_atoi(sp + 1, op->value + op->value_len - sp - 1);

    if (port < 1 || port > 65535
        || !ngx_http_txval_redis_numeric(op->value, sp - op->value))
    {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "txval: redis: sentinels name master \"%V\" "
                      "at \"%*s\", not a numeric address",
                      &pool->conf->master, op->value_len, op->value);
        goto done;
    }

    node = ngx_http_txval_redis_node(pool, op->value, sp - op->value, port);
    if (node == NULL) {
        goto done;
    }

    old = pool->master;
    pool->master = node;

    if (node != pool->master_was) {
        ngx_log_error(NGX_LOG_NOTICE, pool->log, 0,
                      "txval: redis: master \"%V\" is %V",
                      &pool->conf->master, &node->text);
    }

    /* the last master, failed or not, if no longer named, is left */

    if (old && old != node) {
        ngx_http_txval_redis_retire(pool, old);
    }

    if (pool->master_was && pool->master_was != node
        && pool->master_was != old)
    {
        ngx_http_txval_redis_retire(pool, pool->master_was);
    }

    pool->master_was = node;
    pool->tries = 0;

done:

    ngx_http_txval_redis_flush(pool);
}


/*
 * CLUSTER SLOTS: [[start, end, [ip, port, ...], replicas...], ...], read
 * into pool->reading. An empty ip is the node that answered.
 */

static void
ngx_http_txval_redis_slots_parse(ngx_http_txval_redis_op_t *op, void *r)
{
    u_char                       *host;
    size_t                        len;
    ngx_uint_t                    i, s;
    redisReply                   *reply = r, *range, *master;
    ngx_http_txval_redis_node_t  *node;
    ngx_http_txval_redis_conn_t  *rc = op->conn;
    ngx_http_txval_redis_pool_t  *pool = &ngx_http_txval_redis_pool;

    if (reply->type != REDIS_REPLY_ARRAY || rc == NULL) {
        goto invalid;
    }

    ngx_memzero(pool->reading, NGX_HTTP_TXVAL_SLOTS * sizeof(void *));

    for (i = 0; i < reply->elements; i++) {
        range = reply->element[i];

        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3
            || range->element[0]->type != REDIS_REPLY_INTEGER
            || range->element[1]->type != REDIS_REPLY_INTEGER
            || range->element[2]->type != REDIS_REPLY_ARRAY)
        {
            goto invalid;
        }

        master = range->element[2];

        if (master->elements < 2
            || master->element[0]->type != REDIS_REPLY_STRING
            || master->element[1]->type != REDIS_REPLY_INTEGER
            || range->element[0]->integer < 0
            || range->element[0]->integer > range->element[1]->integer
            || range->element[1]->integer >= NGX_HTTP_TXVAL_SLOTS
            || master->element[1]->integer < 1
            || master->element[1]->integer > 65535)
        {
            goto invalid;
        }

        host = (u_char *) master->element[0]->str;
        len = master->element[0]->len;

        if (len == 1 && host[0] == '?') {
            /* no known endpoint: these slots go by MOVED */
            continue;
        }

        if (len == 0) {
            /* the node that answered */
            host = rc->node->host;
            len = ngx_strlen(host);

        } else if (!ngx_http_txval_redis_numeric(host, len)) {
            ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                          "txval: redis: CLUSTER SLOTS names \"%*s\", not "
                          "a numeric address (cluster-preferred-endpoint-"
                          "type must be ip)", len, host);
            goto invalid;
        }

        node = ngx_http_txval_redis_node(pool, host, len,
                                         master->element[1]->integer);
        if (node == NULL) {
            goto invalid;
        }

        for (s = range->element[0]->integer;
             s <= (ngx_uint_t) range->element[1]->integer;
             s++)
        {
            pool->reading[s] = node;
        }
    }

    return;

invalid:

    op->status = NGX_HTTP_TXVAL_REDIS_ERROR;
}


static void
ngx_http_txval_redis_slots_got(ngx_http_txval_redis_op_t *op)
{
    ngx_uint_t                    s;
    ngx_queue_t                  *q, *next;
    ngx_http_txval_redis_node_t  *node;
    ngx_http_txval_redis_pool_t  *pool = op->data;

    pool->asking = NULL;

    if (op->status == NGX_HTTP_TXVAL_REDIS_OK) {
        ngx_memcpy(pool->slots, pool->reading,
                   NGX_HTTP_TXVAL_SLOTS * sizeof(void *));
        pool->mapped = 1;
        pool->tries = 0;

    } else {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "txval: redis: CLUSTER SLOTS failed");
        pool->next++;

        if (ngx_http_txval_redis_retry(pool)) {
            return;
        }
    }

    /* the nodes no slot names any more are left */

    for (q = ngx_queue_head(&pool->nodes);
         q != ngx_queue_sentinel(&pool->nodes);
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_txval_redis_node_t, queue);
        node->used = 0;
    }

    for (s = 0; s < NGX_HTTP_TXVAL_SLOTS; s++) {
        if (pool->slots[s]) {
            pool->slots[s]->used = 1;
        }
    }

    for (q = ngx_queue_head(&pool->nodes);
         q != ngx_queue_sentinel(&pool->nodes);
         q = next)
    {
        next = ngx_queue_next(q);
        node = ngx_queue_data(q, ngx_http_txval_redis_node_t, queue);

        if (!node->used && !node->retired) {
            ngx_http_txval_redis_retire(pool, node);
        }
    }

    ngx_http_txval_redis_flush(pool);
}


/*
 * The map could not be had from one node while operations wait for it: the
 * next node is asked at once, each at most once in a row. 1: asked.
 */

static ngx_uint_t
ngx_http_txval_redis_retry(ngx_http_txval_redis_pool_t *pool)
{
    ngx_uint_t  n;

    n = (pool->conf->mode == NGX_HTTP_TXVAL_REDIS_SENTINEL)
        ? pool->conf->addrs.nelts : pool->nnodes;

    if (ngx_queue_empty(&pool->waiting) || ++pool->tries >= n) {
        pool->tries = 0;
        return 0;
    }

    pool->asked = 0;
    ngx_http_txval_redis_ask(pool);

    return pool->asking != NULL;
}


/* the least loaded connection; a new one while the node has room */

static ngx_http_txval_redis_conn_t *
ngx_http_txval_redis_get(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_node_t *node)
{
    ngx_queue_t                  *q;
    ngx_http_txval_redis_conn_t  *rc, *best;

    best = NULL;

    for (q = ngx_queue_head(&node->conns);
         q != ngx_queue_sentinel(&node->conns);
         q = ngx_queue_next(q))
    {
        rc = ngx_queue_data(q, ngx_http_txval_redis_conn_t, queue);

        if (rc->c->write->posted
            && rc->nops < NGX_HTTP_TXVAL_REDIS_BATCH)
        {
            /* commands already wait to be written on it: one write */
            return rc;
        }

        if (best == NULL || rc->nops < best->nops) {
            best = rc;
        }
    }

    if ((best == NULL || best->nops > 0)
        && node->nconns < node->max
        && (ngx_msec_int_t) (node->down_until - ngx_current_msec) <= 0)
    {
        rc = ngx_http_txval_redis_connect(pool, node);
        if (rc) {
            return rc;
        }
    }

    if (best == NULL || best->nops >= NGX_HTTP_TXVAL_REDIS_MAX_OPS) {
        return NULL;
    }

    return best;
}


static ngx_http_txval_redis_conn_t *
ngx_http_txval_redis_connect(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_node_t *node)
{
    int                           argc;
    size_t                        argvlen[2];
    const char                   *argv[2];
    u_char                        db[NGX_INT_T_LEN];
    redisAsyncContext            *ac;
    ngx_connection_t             *c;
    ngx_http_txval_redis_conf_t  *rcf;
    ngx_http_txval_redis_conn_t  *rc;

    rcf = pool->conf;

    if (node->port) {
        ac = redisAsyncConnect((char *) node->host, (int) node->port);

    } else {
        ac = redisAsyncConnectUnix((char *) node->host);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "txval: redis %V: out of memory", &node->text);
        return NULL;
    }

    if (ac->err) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "txval: redis %V: connect failed: %s",
                      &node->text, ac->errstr);
        redisAsyncFree(ac);
        node->down_until = ngx_current_msec + NGX_HTTP_TXVAL_REDIS_BACKOFF;
        ngx_http_txval_redis_failed(pool, node);
        return NULL;
    }

    rc = ngx_calloc(sizeof(ngx_http_txval_redis_conn_t), pool->log);
    if (rc == NULL) {
        redisAsyncFree(ac);
        return NULL;
    }

    c = ngx_get_connection(ac->c.fd, pool->log);
    if (c == NULL) {
        ngx_free(rc);
        redisAsyncFree(ac);
        return NULL;
    }

    c->data = rc;
    c->read->handler = ngx_http_txval_redis_read;
    c->write->handler = ngx_http_txval_redis_write;
    c->read->log = pool->log;
    c->write->log = pool->log;

    rc->node = node;
    rc->ac = ac;
    rc->c = c;
    ngx_queue_init(&rc->ops);

    rc->timer.handler = ngx_http_txval_redis_timer;
    rc->timer.data = rc;
    rc->timer.log = pool->log;
    rc->timer.cancelable = 1;     /* see ngx_http_txval_redis_arm() */

    ac->data = rc;
    ac->ev.data = rc;
    ac->ev.addRead = ngx_http_txval_redis_add_read;
    ac->ev.delRead = ngx_http_txval_redis_del_read;
    ac->ev.addWrite = ngx_http_txval_redis_add_write;
    ac->ev.delWrite = ngx_http_txval_redis_del_write;
    ac->ev.cleanup = ngx_http_txval_redis_cleanup;

    ngx_queue_insert_tail(&node->conns, &rc->queue);
    node->nconns++;

    rc->connect_deadline = ngx_current_msec + rcf->connect_timeout;
    ngx_add_timer(&rc->timer, rcf->connect_timeout);

    /* waits for the first write event: the connect's outcome */
    redisAsyncSetConnectCallback(ac, ngx_http_txval_redis_connected);

    /* once per new connection, ahead of everything else on it */

    if (rcf->password.len && !node->control) {
        argv[0] = "AUTH";
        argvlen[0] = 4;
        argv[1] = (const char *) rcf->password.data;
        argvlen[1] = rcf->password.len;
        argc = 2;

        redisAsyncCommandArgv(ac, ngx_http_txval_redis_setup_reply, rc,
                              argc, argv, argvlen);
    }

    if (rcf->db && !node->control) {
        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = (const char *) db;
        argvlen[1] = ngx_sprintf(db, "%ui", rcf->db) - db;
        argc = 2;

        redisAsyncCommandArgv(ac, ngx_http_txval_redis_setup_reply, rc,
                              argc, argv, argvlen);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "txval: redis %V connecting, fd:%d", &node->text, c->fd);

    return rc;
}


/*
 * Closes a connection for good: hiredis fails every pending command (our
 * operations see it as an error, or a timeout) and calls the cleanup hook,
 * which gives the nginx connection back.
 */

static void
ngx_http_txval_redis_close(ngx_http_txval_redis_conn_t *rc,
    ngx_uint_t timedout)
{
    ngx_http_txval_redis_node_t  *node = rc->node;

    if (rc->ac == NULL || rc->closing) {
        return;
    }

    /* no new operation may pick this connection from now on */
    ngx_queue_remove(&rc->queue);
    ngx_queue_init(&rc->queue);
    node->nconns--;

    rc->closing = 1;
    rc->timedout = timedout;

    /*
     * the cleanup hook frees rc; hiredis may defer it past a callback, or
     * run the pending callbacks now, which may retire the node: it is
     * held until they are done
     */
    node->holds++;
    redisAsyncFree(rc->ac);
    node->holds--;

    ngx_http_txval_redis_release(&ngx_http_txval_redis_pool, node);
}


static void
ngx_http_txval_redis_arm(ngx_http_txval_redis_conn_t *rc)
{
    ngx_msec_t                    deadline;
    ngx_queue_t                  *q;
    ngx_msec_int_t                left;
    ngx_http_txval_redis_op_t    *op;
    ngx_http_txval_redis_pool_t  *pool = &ngx_http_txval_redis_pool;

    if (!ngx_queue_empty(&rc->ops)) {
        q = ngx_queue_head(&rc->ops);
        op = ngx_queue_data(q, ngx_http_txval_redis_op_t, queue);
        deadline = op->deadline;

    } else if (rc->connected) {
        deadline = ngx_current_msec + pool->conf->idle_timeout;

    } else {
        deadline = rc->connect_deadline;
    }

    if (!rc->connected
        && (ngx_msec_int_t) (rc->connect_deadline - deadline) < 0)
    {
        deadline = rc->connect_deadline;
    }

    left = (ngx_msec_int_t) (deadline - ngx_current_msec);

    /*
     * requests waiting on this connection hold up a graceful exit (reload,
     * quit) until they are answered; an idle connection does not
     */
    rc->timer.cancelable = ngx_queue_empty(&rc->ops) ? 1 : 0;

    if (left <= 0) {
        left = 1;
    }

    /* an earlier deadline than the timer's (a later one: see the timer) */
    if (rc->timer.timer_set
        && (ngx_msec_int_t) (ngx_current_msec + left - rc->timer.timer.key)
           < 0)
    {
        ngx_del_timer(&rc->timer);
    }

    ngx_add_timer(&rc->timer, (ngx_msec_t) left);
}


static void
ngx_http_txval_redis_timer(ngx_event_t *ev)
{
    ngx_http_txval_redis_conn_t  *rc = ev->data;
    ngx_http_txval_redis_node_t  *node = rc->node;
    ngx_http_txval_redis_pool_t  *pool = &ngx_http_txval_redis_pool;

    ngx_queue_t                  *q;
    ngx_msec_int_t                left;
    ngx_http_txval_redis_op_t    *op;

    /*
     * nginx moves a timer only by more than NGX_TIMER_LAZY_DELAY: this may
     * come before the deadline; if so, it is set again
     */

    if (!rc->connected) {
        left = (ngx_msec_int_t) (rc->connect_deadline - ngx_current_msec);

    } else if (rc->nops) {
        q = ngx_queue_head(&rc->ops);
        op = ngx_queue_data(q, ngx_http_txval_redis_op_t, queue);
        left = (ngx_msec_int_t) (op->deadline - ngx_current_msec);

    } else {
        left = 0;
    }

    if (left > 0) {
        ngx_add_timer(&rc->timer, (ngx_msec_t) left);
        return;
    }

    if (!rc->connected || rc->nops) {

        if (!rc->connected) {
            ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                          "txval: redis %V: connect timed out", &node->text);
            node->down_until = ngx_current_msec
                               + NGX_HTTP_TXVAL_REDIS_BACKOFF;

        } else {
            ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                          "txval: redis %V: command timed out, "
                          "closing the connection", &node->text);
        }

        /* closed first: no new operation may pick it */
        node->holds++;
        ngx_http_txval_redis_close(rc, 1);
        ngx_http_txval_redis_failed(pool, node);
        node->holds--;
        ngx_http_txval_redis_release(pool, node);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "txval: redis %V idle connection closed", &node->text);

    ngx_http_txval_redis_close(rc, 0);
}


static void
ngx_http_txval_redis_read(ngx_event_t *ev)
{
    ngx_connection_t             *c = ev->data;
    ngx_http_txval_redis_conn_t  *rc = c->data;

    redisAsyncHandleRead(rc->ac);
}


static void
ngx_http_txval_redis_write(ngx_event_t *ev)
{
    ngx_connection_t             *c = ev->data;
    ngx_http_txval_redis_conn_t  *rc = c->data;

    /* (rc may be gone when this returns) */
    ngx_http_txval_redis_writing = 1;
    redisAsyncHandleWrite(rc->ac);
    ngx_http_txval_redis_writing = 0;
}


static void
ngx_http_txval_redis_connected(const redisAsyncContext *ac, int status)
{
    ngx_http_txval_redis_conn_t  *rc = ac->data;
    ngx_http_txval_redis_node_t  *node = rc->node;
    ngx_http_txval_redis_pool_t  *pool = &ngx_http_txval_redis_pool;

    if (status != REDIS_OK) {
        /* hiredis frees the context right after this: see the cleanup */
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "txval: redis %V: connect failed: %s", &node->text,
                      ac->errstr ? ac->errstr : "unknown error");
        node->down_until = ngx_current_msec + NGX_HTTP_TXVAL_REDIS_BACKOFF;

        ngx_queue_remove(&rc->queue);
        ngx_queue_init(&rc->queue);
        node->nconns--;
        rc->closing = 1;

        node->holds++;
        ngx_http_txval_redis_failed(pool, node);
        node->holds--;
        ngx_http_txval_redis_release(pool, node);
        return;
    }

    rc->connected = 1;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "txval: redis %V connected, fd:%d",
                   &node->text, rc->c->fd);

    ngx_http_txval_redis_publish();

    ngx_http_txval_redis_arm(rc);
}


/* AUTH and SELECT: a refusal makes the connection useless */

static void
ngx_http_txval_redis_setup_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                   *reply = r;
    ngx_http_txval_redis_conn_t  *rc = privdata;
    ngx_http_txval_redis_pool_t  *pool = &ngx_http_txval_redis_pool;

    if (reply == NULL || reply->type != REDIS_REPLY_ERROR || rc->closing) {
        return;
    }

    /* the message names the command, never the password */
    ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                  "txval: redis %V: connection setup refused: %*s",
                  &rc->node->text,
                  (size_t) ngx_min(reply->len, 128), reply->str);

    rc->node->down_until = ngx_current_msec + NGX_HTTP_TXVAL_REDIS_BACKOFF;

    if (rc->ac) {
        ngx_http_txval_redis_close(rc, 0);
    }
}


static void
ngx_http_txval_redis_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply                   *reply = r;
    ngx_http_txval_redis_op_t    *op = privdata;
    ngx_http_txval_redis_conn_t  *rc;
    ngx_http_txval_redis_node_t  *node;
    ngx_http_txval_redis_pool_t  *pool = &ngx_http_txval_redis_pool;

    rc = op->conn;      /* NULL: the connection is gone (see the cleanup) */

    if (reply == NULL && rc && rc->c && !rc->closing) {
        ngx_http_txval_redis_lost(rc);
    }

    if (reply == NULL) {
        if (op->status == NGX_HTTP_TXVAL_REDIS_OK) {
            op->status = (rc && rc->timedout) ? NGX_HTTP_TXVAL_REDIS_TIMEOUT
                                              : NGX_HTTP_TXVAL_REDIS_ERROR;
        }

    } else if (op->parse) {
        if (reply->type == REDIS_REPLY_ERROR) {
            op->status = NGX_HTTP_TXVAL_REDIS_ERROR;

        } else if (op->status == NGX_HTTP_TXVAL_REDIS_OK) {
            op->parse(op, reply);
        }

    } else {
        switch (reply->type) {

        case REDIS_REPLY_ERROR:
            if (rc && ngx_http_txval_redis_refused(pool, op, rc, reply)) {
                break;
            }

            op->status = NGX_HTTP_TXVAL_REDIS_ERROR;
            break;

        case REDIS_REPLY_NIL:
            op->nil = 1;
            break;

        case REDIS_REPLY_STRING:
            op->value_len = reply->len;

            if (reply->len <= NGX_HTTP_TXVAL_REDIS_VALUE_MAX) {
                ngx_memcpy(op->value, reply->str, reply->len);
            }

            break;

        case REDIS_REPLY_INTEGER:
            if (op->pending && op->integer == 0) {
                op->integer = reply->integer;
            }
            break;

        default:
            break;
        }
    }

    if (--op->pending) {
        return;
    }

    /* every reply is in */

    if (rc) {
        ngx_queue_remove(&op->queue);
        rc->nops--;
    }

    if (rc && rc->c && !rc->closing) {
        node = rc->node;

        if (rc->nops == 0 && node->retired) {
            ngx_http_txval_redis_close(rc, 0);

        } else {
            ngx_http_txval_redis_arm(rc);

            if (rc->nops == 0) {
                ngx_http_txval_redis_publish();
            }
        }
    }

    if (op->redirected && op->status == NGX_HTTP_TXVAL_REDIS_OK
        && !pool->exiting)
    {
        op->redirected = 0;
        op->redirects++;

        node = ngx_http_txval_redis_node(pool, (u_char *) op->redirect.host,
                                         ngx_strlen(op->redirect.host),
                                         op->redirect.port);

        if (!op->redirect.ask && node) {
            /* the slot has moved for good */
            pool->slots[op->redirect.slot] = node;
        }

        op->ask = op->redirect.ask;

        if (node && ngx_http_txval_redis_dispatch(pool, op, node) == NGX_OK) {
            return;
        }

        op->status = NGX_HTTP_TXVAL_REDIS_ERROR;
    }

    ngx_http_txval_redis_finish(op);
}


/*
 * An error reply that is not the command's: MOVED or ASK (the operation
 * goes to that node once all its replies are in), READONLY from a master
 * that is one no more, CLUSTERDOWN. 1: a redirection, followed later.
 */

static ngx_uint_t
ngx_http_txval_redis_refused(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_op_t *op, ngx_http_txval_redis_conn_t *rc,
    redisReply *reply)
{
    ngx_http_txval_redirect_t  *rd = &op->redirect;

    switch (pool->conf->mode) {

    case NGX_HTTP_TXVAL_REDIS_CLUSTER:
        if (ngx_http_txval_redirect(reply->str, reply->len, rd) != 0) {
            if (reply->len >= 11
                && ngx_strncmp(reply->str, "CLUSTERDOWN", 11) == 0)
            {
                ngx_http_txval_redis_ask(pool);
            }

            return 0;
        }

        if (!ngx_http_txval_redis_numeric((u_char *) rd->host,
                                          ngx_strlen(rd->host)))
        {
            return 0;
        }

        if (op->pending != op->ncmds && !op->redirected) {
            /* the first command went through: again, it would count twice */
            return 0;
        }

        if (op->redirects >= NGX_HTTP_TXVAL_REDIS_REDIRECTS) {
            ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                          "txval: redis %V: too many redirections",
                          &rc->node->text);
            return 0;
        }

        if (!rd->ask) {
            /* the map is stale */
            ngx_http_txval_redis_ask(pool);
        }

        op->redirected = 1;

        return 1;

    case NGX_HTTP_TXVAL_REDIS_SENTINEL:
        if (reply->len >= 8 && ngx_strncmp(reply->str, "READONLY", 8) == 0) {
            ngx_http_txval_redis_failed(pool, rc->node);
        }

        return 0;

    default:
        return 0;
    }
}


/*
 * hiredis found the connection broken (a read or write error, EOF): it
 * fails the pending commands, then frees the context. From the first
 * failed command on, no new operation may pick the connection.
 */

static void
ngx_http_txval_redis_lost(ngx_http_txval_redis_conn_t *rc)
{
    ngx_http_txval_redis_node_t  *node = rc->node;
    ngx_http_txval_redis_pool_t  *pool = &ngx_http_txval_redis_pool;

    ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                  "txval: redis %V: connection lost: %s", &node->text,
                  rc->ac->errstr ? rc->ac->errstr : "closed");

    ngx_queue_remove(&rc->queue);
    ngx_queue_init(&rc->queue);
    node->nconns--;
    rc->closing = 1;

    node->holds++;
    ngx_http_txval_redis_failed(pool, node);
    node->holds--;
    ngx_http_txval_redis_release(pool, node);
}


/* the hiredis event hooks */

static void
ngx_http_txval_redis_add_read(void *data)
{
    ngx_http_txval_redis_conn_t  *rc = data;

    if (rc->c && !rc->c->read->active) {
        (void) ngx_add_event(rc->c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_txval_redis_del_read(void *data)
{
    ngx_http_txval_redis_conn_t  *rc = data;

    if (rc->c && rc->c->read->active) {
        (void) ngx_del_event(rc->c->read, NGX_READ_EVENT, 0);
    }
}


/*
 * Commands were queued: on a connected socket they are written once the
 * events at hand are handled (a posted event), together with whatever else
 * is queued meanwhile, with no epoll_ctl() for a write event that is
 * almost always ready. Only a socket that would block, or is connecting,
 * waits for a real write event.
 */

static void
ngx_http_txval_redis_add_write(void *data)
{
    ngx_http_txval_redis_conn_t  *rc = data;

    if (rc->c == NULL) {
        return;
    }

    if (rc->connected && !ngx_http_txval_redis_writing) {
        if (!rc->c->write->posted) {
            ngx_post_event(rc->c->write, &ngx_posted_events);
        }

        return;
    }

    if (!rc->c->write->active) {
        (void) ngx_add_event(rc->c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_txval_redis_del_write(void *data)
{
    ngx_http_txval_redis_conn_t  *rc = data;

    if (rc->c && rc->c->write->active) {
        (void) ngx_del_event(rc->c->write, NGX_WRITE_EVENT, 0);
    }
}


/*
 * hiredis is freeing the context (and will close the socket itself): every
 * pending callback has run. Give back the nginx connection and the timer,
 * and free our connection. May be called more than once.
 */

static void
ngx_http_txval_redis_cleanup(void *data)
{
    ngx_http_txval_redis_conn_t  *rc = data;

    ngx_queue_t                  *q;
    ngx_connection_t             *c;
    ngx_http_txval_redis_op_t    *op;

    if (rc->c == NULL) {
        return;
    }

    c = rc->c;
    rc->c = NULL;

    /*
     * hiredis 0.14 runs the pending callbacks before this hook, hiredis 1.x
     * after it: operations still queued here lose their connection, and
     * their callbacks then complete them without it.
     */

    while (!ngx_queue_empty(&rc->ops)) {
        q = ngx_queue_head(&rc->ops);
        op = ngx_queue_data(q, ngx_http_txval_redis_op_t, queue);

        ngx_queue_remove(q);
        op->conn = NULL;

        if (op->status == NGX_HTTP_TXVAL_REDIS_OK) {
            op->status = rc->timedout ? NGX_HTTP_TXVAL_REDIS_TIMEOUT
                                      : NGX_HTTP_TXVAL_REDIS_ERROR;
        }
    }

    rc->nops = 0;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    /* the socket is hiredis' to close: stale events must see it gone */
    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);

    if (rc->timer.timer_set) {
        ngx_del_timer(&rc->timer);
    }

    if (!rc->closing) {
        /* a failure hiredis found itself, with no command pending */
        ngx_http_txval_redis_lost(rc);
    }

    rc->ac = NULL;

    ngx_free(rc);

    ngx_http_txval_redis_publish();
}


static void
ngx_http_txval_redis_publish(void)
{
    ngx_uint_t  busy, idle, connecting;

    ngx_http_txval_redis_pool_counts(&busy, &idle, &connecting);
    ngx_http_txval_metrics_pool(NGX_HTTP_TXVAL_M_REDIS, busy, idle,
                                connecting);
}


/*
 * txval_redis ADDRESS | sentinel=ADDRESS[,...] master=NAME
 *             | cluster=ADDRESS[,...]
 *             [db=N] [password=P] [prefix=S] [pool=N]
 *             [connect_timeout=T] [timeout=T] [idle_timeout=T];
 *
 * A host name is resolved here, once, so that no worker ever resolves.
 */

char *
ngx_http_txval_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_txval_main_conf_t *tmcf = conf;

    u_char                       *p;
    size_t                        len;
    ngx_int_t                     n;
    ngx_str_t                    *value, s, *list;
    ngx_uint_t                    i;
    ngx_msec_t                   *ms;
    ngx_http_txval_redis_conf_t  *rcf;

    if (tmcf->redis) {
        return "is duplicate";
    }

    rcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_txval_redis_conf_t));
    if (rcf == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_array_init(&rcf->addrs, cf->pool, 1,
                       sizeof(ngx_http_txval_redis_addr_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    ngx_str_set(&rcf->prefix, "txval:");
    rcf->pool = 16;
    rcf->connect_timeout = 100;
    rcf->timeout = 50;
    rcf->idle_timeout = 60000;

    list = NULL;
    i = 1;

    if (ngx_strlchr(value[1].data, value[1].data + value[1].len, '=')
        == NULL)
    {
        /* one server */
        if (ngx_http_txval_redis_address(cf, cmd, rcf, &value[1], 6379)
            != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }

        i = 2;
    }

    for ( /* void */ ; i < cf->args->nelts; i++) {

        p = (u_char *) ngx_strchr(value[i].data, '=');

        if (p == NULL) {
            goto invalid;
        }

        s.data = p + 1;
        s.len = value[i].data + value[i].len - s.data;
        len = p - value[i].data;

        if ((len == 8 && ngx_strncmp(value[i].data, "sentinel", 8) == 0)
            || (len == 7 && ngx_strncmp(value[i].data, "cluster", 7) == 0))
        {
            if (rcf->addrs.nelts || list) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"%V\" directive takes one of an "
                                   "address, sentinel= and cluster=",
                                   &cmd->name);
                return NGX_CONF_ERROR;
            }

            rcf->mode = (len == 8) ? NGX_HTTP_TXVAL_REDIS_SENTINEL
                                   : NGX_HTTP_TXVAL_REDIS_CLUSTER;
            list = &value[i];
            continue;
        }

        if (len == 6 && ngx_strncmp(value[i].data, "master", 6) == 0) {
            if (s.len == 0 || s.len > 128) {
                goto invalid;
            }

            rcf->master = s;
            continue;
        }

        if (len == 2 && ngx_strncmp(value[i].data, "db", 2) == 0) {
            n = ngx_atoi(s.data, s.len);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            rcf->db = n;
            continue;
        }

        if (len == 8 && ngx_strncmp(value[i].data, "password", 8) == 0) {
            if (s.len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "empty password in \"%V\" directive",
                                   &cmd->name);
                return NGX_CONF_ERROR;
            }

            rcf->password = s;
            continue;
        }

        if (len == 6 && ngx_strncmp(value[i].data, "prefix", 6) == 0) {
            if (s.len > NGX_HTTP_TXVAL_PREFIX_MAX) {
                goto invalid;
            }

            rcf->prefix = s;
            continue;
        }

        if (len == 4 && ngx_strncmp(value[i].data, "pool", 4) == 0) {
            n = ngx_atoi(s.data, s.len);
            if (n == NGX_ERROR || n < 1 || n > 1024) {
                goto invalid;
            }

            rcf->pool = n;
            continue;
        }

        if (len == 15
            && ngx_strncmp(value[i].data, "connect_timeout", 15) == 0)
        {
            ms = &rcf->connect_timeout;

        } else if (len == 7 && ngx_strncmp(value[i].data, "timeout", 7) == 0) {
            ms = &rcf->timeout;

        } else if (len == 12
                   && ngx_strncmp(value[i].data, "idle_timeout", 12) == 0)
        {
            ms = &rcf->idle_timeout;

        } else {
            goto invalid;
        }

        n = ngx_parse_time(&s, 0);
        if (n == NGX_ERROR || n == 0) {
            goto invalid;
        }

        *ms = (ngx_msec_t) n;
    }

    if (list) {
        /* sentinel=a,b,... or cluster=a,b,... */

        s.data = list->data + (rcf->mode == NGX_HTTP_TXVAL_REDIS_SENTINEL
                               ? 9 : 8);
        p = list->data + list->len;

        while (s.data <= p) {
            s.len = ngx_strlchr(s.data, p, ',')
                    ? (size_t) (ngx_strlchr(s.data, p, ',') - s.data)
                    : (size_t) (p - s.data);

            if (s.len == 0
                || ngx_http_txval_redis_address(cf, cmd, rcf, &s,
                               rcf->mode == NGX_HTTP_TXVAL_REDIS_SENTINEL
                               ? 26379 : 6379)
                   != NGX_CONF_OK)
            {
                if (s.len == 0) {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "empty address in \"%V\" of the "
                                       "\"%V\" directive", list, &cmd->name);
                }

                return NGX_CONF_ERROR;
            }

            s.data += s.len + 1;
        }
    }

    if (rcf->addrs.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" directive needs an address, sentinel= or "
                           "cluster=", &cmd->name);
        return NGX_CONF_ERROR;
    }

    if ((rcf->mode == NGX_HTTP_TXVAL_REDIS_SENTINEL) != (rcf->master.len != 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" directive: master= goes with sentinel=, "
                           "and only with it", &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (rcf->mode == NGX_HTTP_TXVAL_REDIS_CLUSTER && rcf->db) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" directive: a Redis Cluster has no db=",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    tmcf->redis = rcf;

    return NGX_CONF_OK;

invalid:

    /* a password= parameter is never invalid: its value is not shown */
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"%V\" directive",
                       &value[i], &cmd->name);
    return NGX_CONF_ERROR;
}


/* host:port (resolved now, numeric from then on) or unix:/path */

static char *
ngx_http_txval_redis_address(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_txval_redis_conf_t *rcf, ngx_str_t *text, in_port_t port)
{
    size_t                        len;
    ngx_url_t                     u;
    ngx_http_txval_redis_addr_t  *addr;

    addr = ngx_array_push(&rcf->addrs);
    if (addr == NULL) {
        return NGX_CONF_ERROR;
    }

    addr->text = *text;

    if (text->len >= 5 && ngx_strncmp(text->data, "unix:", 5) == 0) {
        if (rcf->mode != NGX_HTTP_TXVAL_REDIS_SINGLE || text->len == 5) {
            goto invalid;
        }

        addr->host.len = text->len - 5;
        addr->host.data = ngx_pnalloc(cf->pool, addr->host.len + 1);
        if (addr->host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(addr->host.data, text->data + 5, addr->host.len);
        addr->host.data[addr->host.len] = '\0';
        addr->port = 0;

        return NGX_CONF_OK;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = *text;
    u.default_port = port;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0
        || u.family == AF_UNIX)
    {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"%V\" of the \"%V\" directive",
                               u.err, text, &cmd->name);
            return NGX_CONF_ERROR;
        }

        goto invalid;
    }

    len = NGX_SOCKADDR_STRLEN;
    addr->host.data = ngx_pnalloc(cf->pool, len + 1);
    if (addr->host.data == NULL) {
        return NGX_CONF_ERROR;
    }

    addr->host.len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen,
                                   addr->host.data, len, 0);
    addr->host.data[addr->host.len] = '\0';
    addr->port = u.port;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid address \"%V\" in \"%V\" directive, "
                       "it must be host:port%s", text, &cmd->name,
                       rcf->mode == NGX_HTTP_TXVAL_REDIS_SINGLE
                       ? " or unix:/path" : "");
    return NGX_CONF_ERROR;
}
