
/*
 * txval: Redis Cluster.
 *
 * An operation goes to the node of its key's slot (the key's CRC16, in
 * ngx_http_txval_slot.c, the pure C half of this file, unit-tested),
 * from CLUSTER SLOTS: asked once a second, and at once on MOVED or a
 * failing node. A slot nobody is known to serve goes to a configured
 * node (which answers MOVED). MOVED and ASK are followed (at most
 * NGX_HTTP_TXVAL_REDIS_REDIRECTS times per operation), only while the
 * first command of the operation has not gone through. Addresses the
 * cluster announces must be numeric (cluster-preferred-endpoint-type ip):
 * a worker resolves no name.
 */


#include "ngx_http_txval_redis_int.h"


static ngx_http_txval_redis_node_t *ngx_http_txval_redis_cluster_route(
    ngx_http_txval_redis_pool_t *pool, ngx_http_txval_redis_op_t *op);
static ngx_http_txval_redis_node_t *ngx_http_txval_redis_cluster_fallback(
    ngx_http_txval_redis_pool_t *pool);
static ngx_int_t ngx_http_txval_redis_cluster_question(
    ngx_http_txval_redis_pool_t *pool, ngx_http_txval_redis_op_t *op);
static ngx_uint_t ngx_http_txval_redis_cluster_askable(
    ngx_http_txval_redis_pool_t *pool);
static ngx_http_txval_redis_node_t *ngx_http_txval_redis_cluster_nth(
    ngx_http_txval_redis_pool_t *pool, ngx_uint_t n);
static ngx_uint_t ngx_http_txval_redis_cluster_refused(
    ngx_http_txval_redis_pool_t *pool, ngx_http_txval_redis_op_t *op,
    ngx_uint_t cmd, ngx_http_txval_redis_conn_t *rc, redisReply *reply);
static void ngx_http_txval_redis_cluster_failed(
    ngx_http_txval_redis_pool_t *pool, ngx_http_txval_redis_node_t *node);
static void ngx_http_txval_redis_slots_parse(ngx_http_txval_redis_op_t *op,
    void *r);
static void ngx_http_txval_redis_slots_got(ngx_http_txval_redis_op_t *op);


ngx_http_txval_redis_mode_t  ngx_http_txval_redis_cluster_mode = {
    "cluster node",
    ngx_http_txval_redis_cluster_route,
    ngx_http_txval_redis_cluster_fallback,
    ngx_http_txval_redis_cluster_question,
    ngx_http_txval_redis_cluster_askable,
    ngx_http_txval_redis_cluster_nth,
    ngx_http_txval_redis_cluster_refused,
    ngx_http_txval_redis_cluster_failed
};


static ngx_http_txval_redis_node_t *
ngx_http_txval_redis_cluster_route(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_op_t *op)
{
    return pool->slots[op->slot];
}


/* a slot of no known node: a configured node that is not failing */

static ngx_http_txval_redis_node_t *
ngx_http_txval_redis_cluster_fallback(ngx_http_txval_redis_pool_t *pool)
{
    ngx_uint_t                    i, n;
    ngx_http_txval_redis_node_t  *node;

    n = pool->conf->addrs.nelts;

    for (i = 0; i < n; i++) {
        node = pool->seeds[(pool->next + i) % n];

        if ((ngx_msec_int_t) (node->down_until - ngx_current_msec) <= 0) {
            return node;
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_txval_redis_cluster_question(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_op_t *op)
{
    int          len;
    size_t       argvlen[2];
    const char  *argv[2];

    argv[0] = "CLUSTER";
    argvlen[0] = 7;
    argv[1] = "SLOTS";
    argvlen[1] = 5;

    len = redisFormatCommandArgv(&op->cmd[0], 2, argv, argvlen);
    if (len < 0) {
        return NGX_ERROR;
    }

    op->cmd_len[0] = len;
    op->parse = ngx_http_txval_redis_slots_parse;
    op->done = ngx_http_txval_redis_slots_got;

    return NGX_OK;
}


/* the configured nodes, then the cluster's others */

static ngx_uint_t
ngx_http_txval_redis_cluster_askable(ngx_http_txval_redis_pool_t *pool)
{
    return pool->nnodes;
}


static ngx_http_txval_redis_node_t *
ngx_http_txval_redis_cluster_nth(ngx_http_txval_redis_pool_t *pool,
    ngx_uint_t n)
{
    ngx_queue_t                  *q;
    ngx_http_txval_redis_node_t  *node;

    for (q = ngx_queue_head(&pool->nodes);
         n && q != ngx_queue_last(&pool->nodes);
         n--)
    {
        q = ngx_queue_next(q);
    }

    node = ngx_queue_data(q, ngx_http_txval_redis_node_t, queue);

    return node->retired ? NULL : node;
}


/*
 * MOVED or ASK: the operation goes to that node once all its replies are
 * in; CLUSTERDOWN: the map is asked for again. 1: a redirection.
 */

static ngx_uint_t
ngx_http_txval_redis_cluster_refused(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_op_t *op, ngx_uint_t cmd,
    ngx_http_txval_redis_conn_t *rc, redisReply *reply)
{
    ngx_http_txval_redirect_t  *rd = &op->redirect;

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

    if (cmd != 0 && !op->redirected) {
        /* the first command went through: again, it would count twice */
        return 0;
    }

    if (op->redirects >= NGX_HTTP_TXVAL_REDIS_REDIRECTS) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "txval: redis %V: too many redirections",
                      &rc->node->text);
        return 0;
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "txval: redis %V: %s %ui to %s",
                   &rc->node->text, rd->ask ? "ASK" : "MOVED",
                   (ngx_uint_t) rd->slot, rd->host);

    if (!rd->ask) {
        /* the map is stale */
        ngx_http_txval_redis_ask(pool);
    }

    op->redirected = 1;

    return 1;
}


static void
ngx_http_txval_redis_cluster_failed(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_node_t *node)
{
    ngx_http_txval_redis_ask(pool);
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
    ngx_http_txval_redis_pool_t  *pool = op->data;

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

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                       "txval: redis cluster slots read");

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
