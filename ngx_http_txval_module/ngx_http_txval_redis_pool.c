
/*
 * txval: the Redis pool and its routing.
 *
 * Per worker (hung off the conf: rcf->pool_state) and per Redis node, up
 * to `pool` connections are shared by all requests: an operation's
 * commands are pipelined on the connection whose write is already due
 * this round, else on the least loaded one, else on a new one while the
 * node has room. After a failed connect a node fails fast for a short
 * while instead of reconnecting on every request; the next request after
 * that reconnects, so the pool heals by itself.
 *
 * Which node serves an operation is the mode's (ngx_http_txval_redis_
 * mode_t): one server (here), Sentinel's master (_redis_sentinel.c) or
 * the node of the key's slot (_redis_cluster.c). When the map (the
 * master, the slots) is not known, operations wait for it: it is asked
 * for once a second, and at once when a node fails. Nothing here
 * resolves a name: every address is numeric (resolved by the
 * configuration, by _redis_dns.c, or announced by Sentinel or Cluster).
 */


#include "ngx_http_txval_redis_int.h"
#include "ngx_http_txval_metrics.h"


static ngx_http_txval_redis_pool_t *ngx_http_txval_redis_pool_get(void);
static ngx_http_txval_redis_node_t *ngx_http_txval_redis_single_route(
    ngx_http_txval_redis_pool_t *pool, ngx_http_txval_redis_op_t *op);
static void ngx_http_txval_redis_finish(ngx_http_txval_redis_op_t *op);
static ngx_http_txval_redis_conn_t *ngx_http_txval_redis_get(
    ngx_http_txval_redis_pool_t *pool, ngx_http_txval_redis_node_t *node,
    ngx_http_txval_redis_op_t *op);
static void ngx_http_txval_redis_tick(ngx_event_t *ev);


/* one server: no map, no question */
static ngx_http_txval_redis_mode_t  ngx_http_txval_redis_single_mode = {
    "server",
    ngx_http_txval_redis_single_route,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL
};


ngx_int_t
ngx_http_txval_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_txval_redis_conf_t *rcf)
{
    ngx_uint_t                    i;
    ngx_http_txval_redis_addr_t  *addr;
    ngx_http_txval_redis_node_t  *node;
    ngx_http_txval_redis_pool_t  *pool;

    pool = ngx_calloc(sizeof(ngx_http_txval_redis_pool_t), cycle->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    rcf->pool_state = pool;

    ngx_queue_init(&pool->nodes);
    ngx_queue_init(&pool->waiting);
    pool->conf = rcf;
    pool->log = cycle->log;

    switch (rcf->mode) {

    case NGX_HTTP_TXVAL_REDIS_SENTINEL:
        pool->mode = &ngx_http_txval_redis_sentinel_mode;
        break;

    case NGX_HTTP_TXVAL_REDIS_CLUSTER:
        pool->mode = &ngx_http_txval_redis_cluster_mode;

        pool->slots = ngx_calloc(2 * NGX_HTTP_TXVAL_SLOTS * sizeof(void *),
                                 cycle->log);
        if (pool->slots == NULL) {
            return NGX_ERROR;
        }

        pool->reading = pool->slots + NGX_HTTP_TXVAL_SLOTS;
        break;

    default:
        pool->mode = &ngx_http_txval_redis_single_mode;
        break;
    }

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
        node->addr = &addr[i];
        pool->seeds[i] = node;

        if (addr[i].socklen) {
            ngx_http_txval_redis_set_addr(node, &addr[i].sockaddr.sockaddr,
                                          addr[i].socklen);

        } else {
            /* a name to be resolved */
            node->text.len = ngx_min(addr[i].text.len, NGX_SOCKADDR_STRLEN);
            ngx_memcpy(node->text_data, addr[i].text.data, node->text.len);
        }

        if (rcf->mode == NGX_HTTP_TXVAL_REDIS_SENTINEL) {
            /* a sentinel answers one question at a time */
            node->control = 1;
            node->max = 1;
        }
    }

    if (ngx_http_txval_redis_dns_init(pool, cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (pool->mode->question == NULL) {
        pool->master = pool->seeds[0];
        return NGX_OK;
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
    ngx_http_txval_redis_pool_t  *pool;

    pool = ngx_http_txval_redis_pool_get();
    if (pool == NULL) {
        return;
    }

    /* the requests are gone: no operation reports back */
    pool->exiting = 1;

    if (pool->tick.timer_set) {
        ngx_del_timer(&pool->tick);
    }

    ngx_http_txval_redis_dns_exit(pool);

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

#if (NGX_SSL)
        if (node->session) {
            ngx_ssl_free_session(node->session);
        }
#endif

        ngx_queue_remove(&node->queue);
        ngx_free(node);
    }

    ngx_free(pool->seeds);
    ngx_free(pool->slots);

    pool->conf->pool_state = NULL;
    ngx_free(pool);
}


/* the worker's pool, from the running configuration */

static ngx_http_txval_redis_pool_t *
ngx_http_txval_redis_pool_get(void)
{
    ngx_http_txval_main_conf_t  *tmcf;

    tmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_txval_module);

    if (tmcf == NULL || tmcf->redis == NULL) {
        return NULL;
    }

    return tmcf->redis->pool_state;
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
    ngx_http_txval_redis_pool_t  *pool = rcf->pool_state;

    op->status = NGX_HTTP_TXVAL_REDIS_ERROR;

    if (pool == NULL || ncmds == 0 || ncmds > NGX_HTTP_TXVAL_REDIS_CMDS_MAX
        || (rcf->mode == NGX_HTTP_TXVAL_REDIS_CLUSTER && op->key == NULL
            && argc[0] < 2))
    {
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
        op->slot = op->key
                   ? ngx_http_txval_slot(op->key, op->key_len)
                   : ngx_http_txval_slot((u_char *) argv[0][1],
                                         argvlen[0][1]);
    }

    op->key = NULL;

    node = pool->mode->route(pool, op);

    if (node == NULL && pool->mode->question) {

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

        node = pool->mode->fallback ? pool->mode->fallback(pool) : NULL;
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


static ngx_http_txval_redis_node_t *
ngx_http_txval_redis_single_route(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_op_t *op)
{
    return pool->master;
}


/* the operation's commands on a connection to the node */

ngx_int_t
ngx_http_txval_redis_dispatch(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_op_t *op, ngx_http_txval_redis_node_t *node)
{
    ngx_http_txval_redis_conn_t  *rc;

    rc = ngx_http_txval_redis_get(pool, node, op);
    if (rc == NULL) {
        return NGX_ERROR;
    }

    op->deadline = ngx_current_msec + pool->conf->timeout;

    if (rc->state != NGX_HTTP_TXVAL_REDIS_READY) {
        op->deadline = rc->connect_deadline + pool->conf->timeout;
    }

    if (ngx_http_txval_redis_write_op(rc, op) != NGX_OK) {
        return NGX_ERROR;
    }

    if (rc->nops == 1) {
        ngx_http_txval_redis_arm(rc);
        ngx_http_txval_redis_publish(pool);
    }

    return NGX_OK;
}


/*
 * The least loaded connection; a new one while the node has room. A
 * command nobody waits for (a verdict stored, a mark dropped) goes on a
 * ready connection if there is one: written this round, so before the
 * answer its request posts behind it (ngx_http_txval_finish).
 */

static ngx_http_txval_redis_conn_t *
ngx_http_txval_redis_get(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_node_t *node, ngx_http_txval_redis_op_t *op)
{
    ngx_queue_t                  *q;
    ngx_http_txval_redis_conn_t  *rc, *best, *ready;

    best = NULL;
    ready = NULL;

    for (q = ngx_queue_head(&node->conns);
         q != ngx_queue_sentinel(&node->conns);
         q = ngx_queue_next(q))
    {
        rc = ngx_queue_data(q, ngx_http_txval_redis_conn_t, queue);

        if (rc->generation != node->generation) {
            /* to the node's old address: finishes what it has */
            continue;
        }

        if (rc->c->write->posted && rc->nops < NGX_HTTP_TXVAL_REDIS_BATCH) {
            /* commands already wait to be written on it: one write */
            return rc;
        }

        if (best == NULL || rc->nops < best->nops) {
            best = rc;
        }

        if (rc->state == NGX_HTTP_TXVAL_REDIS_READY
            && (ready == NULL || rc->nops < ready->nops))
        {
            ready = rc;
        }
    }

    if (op->data == NULL && !op->control
        && ready && ready->nops < NGX_HTTP_TXVAL_REDIS_MAX_OPS)
    {
        return ready;
    }

    if ((best == NULL || best->nops > 0)
        && node->nconns < node->max
        && (ngx_msec_int_t) (node->down_until - ngx_current_msec) <= 0)
    {
        rc = ngx_http_txval_redis_connect(pool, node);
        if (rc) {
            ngx_http_txval_redis_publish(pool);
            return rc;
        }

        if ((ngx_msec_int_t) (node->down_until - ngx_current_msec) > 0) {
            ngx_http_txval_redis_failed(pool, node);
        }
    }

    if (best == NULL || best->nops >= NGX_HTTP_TXVAL_REDIS_MAX_OPS) {
        return NULL;
    }

    return best;
}


/*
 * A reply to the operation's command cmd (0: the first). The first
 * command's reply is the operation's value; an error reply to any fails
 * it, unless the mode follows it (MOVED, ASK).
 */

void
ngx_http_txval_redis_reply(ngx_http_txval_redis_op_t *op, ngx_uint_t cmd,
    redisReply *reply)
{
    ngx_http_txval_redis_pool_t  *pool = op->conn->node->pool;

    if (op->parse) {
        if (reply->type == REDIS_REPLY_ERROR) {
            op->status = NGX_HTTP_TXVAL_REDIS_ERROR;

        } else if (op->status == NGX_HTTP_TXVAL_REDIS_OK) {
            op->parse(op, reply);
        }

        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        if (pool->mode->refused
            && pool->mode->refused(pool, op, cmd, op->conn, reply))
        {
            return;
        }

        op->status = NGX_HTTP_TXVAL_REDIS_ERROR;
        return;
    }

    if (cmd != 0) {
        return;
    }

    switch (reply->type) {

    case REDIS_REPLY_NIL:
        op->nil = 1;
        break;

    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        op->value_len = reply->len;

        if (reply->len <= NGX_HTTP_TXVAL_REDIS_VALUE_MAX) {
            ngx_memcpy(op->value, reply->str, reply->len);
        }

        break;

    case REDIS_REPLY_INTEGER:
        op->integer = reply->integer;
        break;

    default:
        break;
    }
}


/* every reply is in, or none will come: follow a redirection, or finish */

void
ngx_http_txval_redis_complete(ngx_http_txval_redis_op_t *op)
{
    ngx_http_txval_redis_node_t  *node;
    ngx_http_txval_redis_pool_t  *pool;

    pool = ngx_http_txval_redis_pool_get();

    if (op->redirected && op->status == NGX_HTTP_TXVAL_REDIS_OK
        && pool && !pool->exiting)
    {
        op->redirected = 0;
        op->redirects++;

        /* what the redirected reply said is not the outcome */
        op->nil = 0;
        op->integer = 0;
        op->value_len = 0;

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


/* tell whoever waits */

static void
ngx_http_txval_redis_finish(ngx_http_txval_redis_op_t *op)
{
    ngx_http_txval_redis_pool_t  *pool;

    pool = ngx_http_txval_redis_pool_get();

    if (!op->control) {
        ngx_http_txval_metrics_backend(NGX_HTTP_TXVAL_M_REDIS, op->status);
    }

    if (op->data && pool && !pool->exiting) {
        op->done(op);
    }

    ngx_http_txval_redis_op_free(op);
}


void
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
    ngx_http_txval_redis_pool_t  *pool;

    *busy = 0;
    *idle = 0;
    *connecting = 0;

    pool = ngx_http_txval_redis_pool_get();
    if (pool == NULL) {
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

            if (rc->state != NGX_HTTP_TXVAL_REDIS_READY) {
                (*connecting)++;

            } else if (rc->nops) {
                (*busy)++;

            } else {
                (*idle)++;
            }
        }
    }
}


void
ngx_http_txval_redis_publish(ngx_http_txval_redis_pool_t *pool)
{
    ngx_uint_t  busy, idle, connecting;

    if (pool->exiting) {
        return;
    }

    ngx_http_txval_redis_pool_counts(&busy, &idle, &connecting);
    ngx_http_txval_metrics_pool(NGX_HTTP_TXVAL_M_REDIS, busy, idle,
                                connecting);
}


ngx_uint_t
ngx_http_txval_redis_nodes(ngx_http_txval_redis_node_state_t *st,
    ngx_uint_t n)
{
    ngx_uint_t                    i;
    ngx_queue_t                  *q, *cq;
    ngx_http_txval_redis_node_t  *node;
    ngx_http_txval_redis_conn_t  *rc;
    ngx_http_txval_redis_pool_t  *pool;

    pool = ngx_http_txval_redis_pool_get();
    if (pool == NULL) {
        return 0;
    }

    i = 0;

    for (q = ngx_queue_head(&pool->nodes);
         q != ngx_queue_sentinel(&pool->nodes) && i < n;
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_txval_redis_node_t, queue);

        if (node->retired || (!node->seed && !node->used
                              && node != pool->master))
        {
            continue;
        }

        st[i].text = node->text;
        st[i].sentinel = node->control;
        st[i].up = node->up;

        for (cq = ngx_queue_head(&node->conns);
             cq != ngx_queue_sentinel(&node->conns);
             cq = ngx_queue_next(cq))
        {
            rc = ngx_queue_data(cq, ngx_http_txval_redis_conn_t, queue);

            if (rc->state == NGX_HTTP_TXVAL_REDIS_READY) {
                st[i].up = 1;
            }
        }

        i++;
    }

    return i;
}


/* an IPv4 or IPv6 address: nothing to resolve */

ngx_uint_t
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


/* the node at host:port (numeric, or a unix path), a new one if none is */

ngx_http_txval_redis_node_t *
ngx_http_txval_redis_node(ngx_http_txval_redis_pool_t *pool, u_char *host,
    size_t len, ngx_int_t port)
{
    ngx_queue_t                  *q;
    ngx_http_txval_redis_node_t  *node;

    for (q = ngx_queue_head(&pool->nodes);
         q != ngx_queue_sentinel(&pool->nodes);
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_txval_redis_node_t, queue);

        if (node->port == port && !node->control && node->socklen
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

    node = ngx_calloc(sizeof(ngx_http_txval_redis_node_t), pool->log);
    if (node == NULL) {
        return NULL;
    }

    node->pool = pool;
    node->port = port;
    node->max = pool->conf->pool;
    ngx_queue_init(&node->conns);

    if (len) {
        /* (none: a name not resolved yet) */
        ngx_memcpy(node->host, host, len);
    }

    node->host[len] = '\0';

    node->text.data = node->text_data;
    node->text.len = ngx_sprintf(node->text_data, "%*s:%i", len, host, port)
                     - node->text_data;

    if (port && ngx_http_txval_redis_numeric(host, len)) {
        ngx_memzero(&node->sockaddr, sizeof(ngx_sockaddr_t));

#if (NGX_HAVE_INET6)
        if (ngx_inet6_addr(host, len, node->sockaddr.sockaddr_in6.sin6_addr
                                      .s6_addr)
            == NGX_OK)
        {
            node->sockaddr.sockaddr_in6.sin6_family = AF_INET6;
            node->socklen = sizeof(struct sockaddr_in6);

        } else
#endif
        {
            node->sockaddr.sockaddr_in.sin_family = AF_INET;
            node->sockaddr.sockaddr_in.sin_addr.s_addr = ngx_inet_addr(host,
                                                                       len);
            node->socklen = sizeof(struct sockaddr_in);
        }

        ngx_inet_set_port(&node->sockaddr.sockaddr, (in_port_t) port);
        ngx_http_txval_redis_set_addr(node, &node->sockaddr.sockaddr,
                                      node->socklen);
    }

    ngx_queue_insert_tail(&pool->nodes, &node->queue);
    pool->nnodes++;

    return node;
}


/* no new operation goes to the node; it goes once its last one is done */

void
ngx_http_txval_redis_retire(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_node_t *node)
{
    ngx_queue_t                  *q, *next;
    ngx_http_txval_redis_conn_t  *rc;

    if (node->seed) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "txval: redis %V retired", &node->text);

    /* (not retired yet: closing its last connection must not free it) */

    node->holds++;

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

    node->holds--;
    node->retired = 1;

    ngx_http_txval_redis_release(pool, node);
}


void
ngx_http_txval_redis_release(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_node_t *node)
{
    if (node->retired && node->nconns == 0 && node->holds == 0
        && !pool->exiting)
    {
#if (NGX_SSL)
        if (node->session) {
            ngx_ssl_free_session(node->session);
        }
#endif

        ngx_queue_remove(&node->queue);
        pool->nnodes--;
        ngx_free(node);
    }
}


/* a node failed a connection or a command: is the map still right? */

void
ngx_http_txval_redis_failed(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_node_t *node)
{
    if (pool->exiting) {
        return;
    }

    if (node->addr && node->addr->named) {
        /* a container may have come back elsewhere */
        ngx_http_txval_redis_dns_now(pool);
    }

    if (node->control || pool->mode->failed == NULL) {
        return;
    }

    pool->mode->failed(pool, node);
}


/*
 * Asks for the map: Sentinel's master or Cluster's slots, one question at
 * a time, not more than every NGX_HTTP_TXVAL_REDIS_MIN_ASK ms (the tick
 * asks again later), to the next node that can be had.
 */

void
ngx_http_txval_redis_ask(ngx_http_txval_redis_pool_t *pool)
{
    ngx_uint_t                    i, n;
    ngx_http_txval_redis_op_t    *op;
    ngx_http_txval_redis_node_t  *node;

    if (pool->asking || pool->exiting || pool->mode->question == NULL
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

    if (pool->mode->question(pool, op) != NGX_OK) {
        ngx_free(op);
        goto failed;
    }

    op->ncmds = 1;
    op->status = NGX_HTTP_TXVAL_REDIS_OK;

    pool->asked = ngx_current_msec;

    n = pool->mode->askable(pool);

    for (i = 0; i < n; i++, pool->next++) {
        node = pool->mode->nth(pool, pool->next % n);

        if (node == NULL) {
            continue;
        }

        pool->asking = op;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                       "txval: redis asking %V for the map", &node->text);

        if (ngx_http_txval_redis_dispatch(pool, op, node) == NGX_OK) {
            return;
        }

        pool->asking = NULL;
    }

    ngx_http_txval_redis_op_free(op);

failed:

    ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                  "txval: redis: no %s could be asked", pool->mode->asked);

    ngx_http_txval_redis_flush(pool);
}


/*
 * The map could not be had from one node while operations wait for it: the
 * next node is asked at once, each at most once in a row. 1: asked.
 */

ngx_uint_t
ngx_http_txval_redis_retry(ngx_http_txval_redis_pool_t *pool)
{
    ngx_uint_t  n;

    n = pool->mode->askable(pool);

    if (ngx_queue_empty(&pool->waiting) || ++pool->tries >= n) {
        pool->tries = 0;
        return 0;
    }

    pool->asked = 0;
    ngx_http_txval_redis_ask(pool);

    return pool->asking != NULL;
}


/* the operations waiting for the map go where it says, or fail */

void
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

        node = pool->mode->route(pool, op);

        if (node == NULL && pool->asking) {
            /* asked again meanwhile: the rest waits for that answer */
            break;
        }

        ngx_queue_remove(q);

        if (node == NULL && pool->mode->fallback) {
            node = pool->mode->fallback(pool);
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
