
/*
 * txval: Redis Sentinel.
 *
 * The master is the one the sentinels name (SENTINEL
 * get-master-addr-by-name), asked once a second, and at once when the
 * master fails a connection or a command, or answers READONLY. While the
 * master is being asked for, operations wait for the answer. A new
 * master takes the new operations; the old one's connections close as
 * soon as they are idle. Sentinels are asked one question at a time (one
 * connection each), with sentinel_user and sentinel_password if set, over
 * TLS like the nodes when tls=on.
 */


#include "ngx_http_txval_redis_int.h"


static ngx_http_txval_redis_node_t *ngx_http_txval_redis_sentinel_route(
    ngx_http_txval_redis_pool_t *pool, ngx_http_txval_redis_op_t *op);
static ngx_int_t ngx_http_txval_redis_sentinel_question(
    ngx_http_txval_redis_pool_t *pool, ngx_http_txval_redis_op_t *op);
static ngx_uint_t ngx_http_txval_redis_sentinel_askable(
    ngx_http_txval_redis_pool_t *pool);
static ngx_http_txval_redis_node_t *ngx_http_txval_redis_sentinel_nth(
    ngx_http_txval_redis_pool_t *pool, ngx_uint_t n);
static ngx_uint_t ngx_http_txval_redis_sentinel_refused(
    ngx_http_txval_redis_pool_t *pool, ngx_http_txval_redis_op_t *op,
    ngx_uint_t cmd, ngx_http_txval_redis_conn_t *rc, redisReply *reply);
static void ngx_http_txval_redis_sentinel_failed(
    ngx_http_txval_redis_pool_t *pool, ngx_http_txval_redis_node_t *node);
static void ngx_http_txval_redis_master_parse(ngx_http_txval_redis_op_t *op,
    void *r);
static void ngx_http_txval_redis_master_got(ngx_http_txval_redis_op_t *op);


ngx_http_txval_redis_mode_t  ngx_http_txval_redis_sentinel_mode = {
    "sentinel",
    ngx_http_txval_redis_sentinel_route,
    NULL,
    ngx_http_txval_redis_sentinel_question,
    ngx_http_txval_redis_sentinel_askable,
    ngx_http_txval_redis_sentinel_nth,
    ngx_http_txval_redis_sentinel_refused,
    ngx_http_txval_redis_sentinel_failed
};


static ngx_http_txval_redis_node_t *
ngx_http_txval_redis_sentinel_route(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_op_t *op)
{
    return pool->master;
}


static ngx_int_t
ngx_http_txval_redis_sentinel_question(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_op_t *op)
{
    int          len;
    size_t       argvlen[3];
    const char  *argv[3];

    argv[0] = "SENTINEL";
    argvlen[0] = 8;
    argv[1] = "get-master-addr-by-name";
    argvlen[1] = 23;
    argv[2] = (const char *) pool->conf->master.data;
    argvlen[2] = pool->conf->master.len;

    len = redisFormatCommandArgv(&op->cmd[0], 3, argv, argvlen);
    if (len < 0) {
        return NGX_ERROR;
    }

    op->cmd_len[0] = len;
    op->parse = ngx_http_txval_redis_master_parse;
    op->done = ngx_http_txval_redis_master_got;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_txval_redis_sentinel_askable(ngx_http_txval_redis_pool_t *pool)
{
    return pool->conf->addrs.nelts;
}


static ngx_http_txval_redis_node_t *
ngx_http_txval_redis_sentinel_nth(ngx_http_txval_redis_pool_t *pool,
    ngx_uint_t n)
{
    return pool->seeds[n];
}


/* READONLY: a master that is one no more */

static ngx_uint_t
ngx_http_txval_redis_sentinel_refused(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_op_t *op, ngx_uint_t cmd,
    ngx_http_txval_redis_conn_t *rc, redisReply *reply)
{
    if (reply->len >= 8 && ngx_strncmp(reply->str, "READONLY", 8) == 0) {
        ngx_http_txval_redis_failed(pool, rc->node);
    }

    return 0;
}


static void
ngx_http_txval_redis_sentinel_failed(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_node_t *node)
{
    if (node == pool->master) {
        /* the next operations wait for what the sentinels say */
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                       "txval: redis master %V failed, asking the sentinels",
                       &node->text);

        pool->master = NULL;
        pool->asked = 0;
        ngx_http_txval_redis_ask(pool);
    }
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
