
/*
 * txval: the configured Redis host names, resolved again at run time.
 *
 * A name written in txval_redis (the server, the sentinels, the cluster's
 * seeds) is resolved when the configuration is read. When the http
 * block has a `resolver`, each worker resolves it again through nginx's
 * non-blocking resolver (cached for the answer's TTL, or `valid=`) once
 * a second, and at once when the node fails a connect or a command. A
 * new address is used by new connections at once; the connections to the
 * old one finish what they carry and close. A name that did not resolve
 * when the configuration was read is accepted when a resolver is
 * configured: the node fails fast until it resolves.
 */


#include "ngx_http_txval_redis_int.h"


static void ngx_http_txval_redis_dns_tick(ngx_event_t *ev);
static void ngx_http_txval_redis_dns_start(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_node_t *node);
static void ngx_http_txval_redis_dns_done(ngx_resolver_ctx_t *ctx);


ngx_int_t
ngx_http_txval_redis_dns_init(ngx_http_txval_redis_pool_t *pool,
    ngx_cycle_t *cycle)
{
    ngx_uint_t                    i, named;
    ngx_resolver_t               *r;
    ngx_http_core_loc_conf_t     *clcf = pool->conf->clcf;
    ngx_http_txval_redis_addr_t  *addr;

    if (clcf == NULL) {
        return NGX_OK;
    }

    r = clcf->resolver;

    if (r == NULL || r == NGX_CONF_UNSET_PTR || r->connections.nelts == 0) {
        return NGX_OK;
    }

    addr = pool->conf->addrs.elts;
    named = 0;

    for (i = 0; i < pool->conf->addrs.nelts; i++) {
        named |= addr[i].named;
    }

    if (!named) {
        return NGX_OK;
    }

    pool->resolver = r;
    pool->resolver_timeout = (clcf->resolver_timeout == NGX_CONF_UNSET_MSEC)
                             ? 30000 : clcf->resolver_timeout;

    pool->resolve.handler = ngx_http_txval_redis_dns_tick;
    pool->resolve.data = pool;
    pool->resolve.log = cycle->log;
    pool->resolve.cancelable = 1;

    ngx_add_timer(&pool->resolve, 1);

    return NGX_OK;
}


/* a named node failed: resolved again now */

void
ngx_http_txval_redis_dns_now(ngx_http_txval_redis_pool_t *pool)
{
    if (pool->resolver == NULL || pool->exiting) {
        return;
    }

    if (pool->resolve.timer_set) {
        ngx_del_timer(&pool->resolve);
    }

    ngx_post_event(&pool->resolve, &ngx_posted_events);
}


void
ngx_http_txval_redis_dns_exit(ngx_http_txval_redis_pool_t *pool)
{
    ngx_uint_t                    i;
    ngx_resolver_ctx_t           *ctx;
    ngx_http_txval_redis_node_t  *node;

    if (pool->resolver == NULL) {
        return;
    }

    if (pool->resolve.timer_set) {
        ngx_del_timer(&pool->resolve);
    }

    if (pool->resolve.posted) {
        ngx_delete_posted_event(&pool->resolve);
    }

    for (i = 0; i < pool->conf->addrs.nelts; i++) {
        node = pool->seeds[i];

        if (node->resolving) {
            ctx = node->resolving;
            node->resolving = NULL;
            ngx_resolve_name_done(ctx);
        }
    }
}


static void
ngx_http_txval_redis_dns_tick(ngx_event_t *ev)
{
    ngx_uint_t                    i;
    ngx_http_txval_redis_node_t  *node;
    ngx_http_txval_redis_pool_t  *pool = ev->data;

    if (pool->exiting) {
        return;
    }

    for (i = 0; i < pool->conf->addrs.nelts; i++) {
        node = pool->seeds[i];

        if (node->addr->named && node->resolving == NULL) {
            ngx_http_txval_redis_dns_start(pool, node);
        }
    }

    if (!ev->timer_set) {
        ngx_add_timer(ev, NGX_HTTP_TXVAL_REDIS_RESOLVE);
    }
}


static void
ngx_http_txval_redis_dns_start(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_node_t *node)
{
    ngx_resolver_ctx_t  *ctx;

    ctx = ngx_resolve_start(pool->resolver, NULL);
    if (ctx == NULL || ctx == NGX_NO_RESOLVER) {
        return;
    }

    ctx->name = node->addr->name;
    ctx->handler = ngx_http_txval_redis_dns_done;
    ctx->data = node;
    ctx->timeout = pool->resolver_timeout;
    ctx->cancelable = 1;    /* a graceful exit does not wait for it */

    node->resolving = ctx;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "txval: redis resolving \"%V\"", &ctx->name);

    if (ngx_resolve_name(ctx) != NGX_OK) {
        /* (the context is freed) */
        node->resolving = NULL;
    }
}


static void
ngx_http_txval_redis_dns_done(ngx_resolver_ctx_t *ctx)
{
    ngx_uint_t                    i;
    ngx_sockaddr_t                sa;
    ngx_queue_t                  *q, *next;
    ngx_http_txval_redis_conn_t  *rc;
    ngx_http_txval_redis_node_t  *node = ctx->data;
    ngx_http_txval_redis_pool_t  *pool = node->pool;

    node->resolving = NULL;

    if (ctx->state || ctx->naddrs == 0) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "txval: redis: \"%V\" could not be resolved (%i: %s)",
                      &ctx->name, ctx->state,
                      ngx_resolver_strerror(ctx->state));
        goto done;
    }

    /* the address in use, while it is still one of the answers */

    for (i = 0; i < ctx->naddrs; i++) {
        if (ctx->addrs[i].socklen != node->socklen) {
            continue;
        }

        ngx_memcpy(&sa, ctx->addrs[i].sockaddr, ctx->addrs[i].socklen);
        ngx_inet_set_port(&sa.sockaddr, (in_port_t) node->port);

        if (ngx_cmp_sockaddr(&sa.sockaddr, node->socklen,
                             &node->sockaddr.sockaddr, node->socklen, 1)
            == NGX_OK)
        {
            goto done;
        }
    }

    ngx_memcpy(&sa, ctx->addrs[0].sockaddr, ctx->addrs[0].socklen);
    ngx_inet_set_port(&sa.sockaddr, (in_port_t) node->port);

    ngx_http_txval_redis_set_addr(node, &sa.sockaddr, ctx->addrs[0].socklen);

    ngx_log_error(NGX_LOG_NOTICE, pool->log, 0,
                  "txval: redis: \"%V\" is now %V", &ctx->name, &node->text);

    /* the new address is tried at once, the old one's idle connections go */

    node->down_until = ngx_current_msec;

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

    if (node == pool->master) {
        ngx_http_txval_redis_flush(pool);
    }

done:

    ngx_resolve_name_done(ctx);
}


/* the node's address (and its texts) is now sa */

void
ngx_http_txval_redis_set_addr(ngx_http_txval_redis_node_t *node,
    struct sockaddr *sa, socklen_t socklen)
{
    size_t  len;

    if (sa != &node->sockaddr.sockaddr) {
        ngx_memcpy(&node->sockaddr, sa, socklen);
        node->generation++;
    }

    node->socklen = socklen;

    node->text.data = node->text_data;
    node->text.len = ngx_sock_ntop(&node->sockaddr.sockaddr, socklen,
                                   node->text_data, NGX_SOCKADDR_STRLEN, 1);

    if (sa->sa_family == AF_UNIX) {
        return;
    }

    len = ngx_sock_ntop(&node->sockaddr.sockaddr, socklen, node->host,
                        NGX_SOCKADDR_STRLEN, 0);
    node->host[len] = '\0';
}
