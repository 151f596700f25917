
/*
 * txval: readiness (txval_status), for a load balancer or a Kubernetes
 * probe.
 *
 * The worker that takes the probe asks each configured backend, the way a
 * transaction would and at the same time: a PING to Redis, the lookup
 * query (with empty parameters) to Postgres, each on a pooled connection,
 * made if there is none, within the backend's own timeouts. A backend that
 * answers is up. The answer is 503 when a backend that a location failing
 * closed needs is down (the node should be drained), else 200; a backend
 * that only fail-open locations need shows as down in the body only.
 *
 *   {"status":"ready","worker":1234,"backends":{"redis":{"state":"up",
 *    "nodes":[{"address":"10.0.0.5:6379","state":"up"}]},
 *    "postgres":{"state":"down","error":"timeout","required":true}}}
 *
 * Redis' nodes (a server, the sentinels and their master, a cluster's
 * masters) are listed with what this worker knows of them.
 *
 * With a lookup cache listening for notifications, its listener is shown
 * too ("lookup_listener":{"state":"up"}): while it is down the cache is
 * bypassed and Postgres asked, so it never makes the answer a 503.
 */


#include "ngx_http_txval_module.h"
#include "ngx_http_txval_redis.h"
#include "ngx_http_txval_pg.h"
#include "ngx_http_txval_lookup.h"


#define NGX_HTTP_TXVAL_STATUS_BODY_MAX  512
#define NGX_HTTP_TXVAL_STATUS_NODES     64      /* listed at most */
#define NGX_HTTP_TXVAL_STATUS_NODE_MAX  (NGX_SOCKADDR_STRLEN + 64)


typedef enum {
    NGX_HTTP_TXVAL_PROBE_NONE = 0,      /* not configured */
    NGX_HTTP_TXVAL_PROBE_WAITING,
    NGX_HTTP_TXVAL_PROBE_UP,
    NGX_HTTP_TXVAL_PROBE_ERROR,
    NGX_HTTP_TXVAL_PROBE_TIMEOUT
} ngx_http_txval_probe_e;


typedef struct {
    ngx_http_request_t             *request;
    ngx_http_txval_redis_op_t      *redis_op;
    ngx_http_txval_pg_op_t         *pg_op;
    ngx_http_txval_probe_e          redis;
    ngx_http_txval_probe_e          pg;
    ngx_uint_t                      pending;
} ngx_http_txval_status_ctx_t;


static void ngx_http_txval_status_redis(ngx_http_txval_status_ctx_t *ctx);
static void ngx_http_txval_status_redis_done(ngx_http_txval_redis_op_t *op);
static void ngx_http_txval_status_pg(ngx_http_txval_status_ctx_t *ctx);
static void ngx_http_txval_status_pg_done(ngx_http_txval_pg_op_t *op);
static void ngx_http_txval_status_probed(ngx_http_txval_status_ctx_t *ctx);
static ngx_int_t ngx_http_txval_status_send(ngx_http_request_t *r,
    ngx_http_txval_status_ctx_t *ctx);
static u_char *ngx_http_txval_status_backend(u_char *p, const char *name,
    ngx_http_txval_probe_e state, ngx_uint_t required, ngx_uint_t comma);
static u_char *ngx_http_txval_status_nodes(u_char *p,
    ngx_http_txval_redis_node_state_t *nodes, ngx_uint_t n);
static void ngx_http_txval_status_abandon(void *data);


ngx_int_t
ngx_http_txval_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_pool_cleanup_t           *cln;
    ngx_http_txval_status_ctx_t  *ctx;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_txval_status_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_txval_status_abandon;
    cln->data = ctx;

    ctx->request = r;
    ctx->pending = 1;       /* held until every probe is started */

    ngx_http_txval_status_redis(ctx);
    ngx_http_txval_status_pg(ctx);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "txval status: %ui probes", ctx->pending - 1);

    if (--ctx->pending == 0) {
        return ngx_http_txval_status_send(r, ctx);
    }

    r->main->count++;

    return NGX_DONE;
}


/* PING, on a pooled connection (made if need be) */

static void
ngx_http_txval_status_redis(ngx_http_txval_status_ctx_t *ctx)
{
    int                           argc;
    size_t                        argvlen[2], *lens;
    const char                   *argv[2], **args;
    ngx_http_request_t           *r;
    ngx_http_txval_redis_op_t    *op;
    ngx_http_txval_main_conf_t   *tmcf;

    r = ctx->request;
    tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

    if (tmcf->redis == NULL) {
        return;
    }

    ctx->redis = NGX_HTTP_TXVAL_PROBE_ERROR;

    op = ngx_http_txval_redis_op(r->connection->log);
    if (op == NULL) {
        return;
    }

    op->done = ngx_http_txval_status_redis_done;
    op->data = ctx;

    /* PING's message is its "key" (Redis Cluster: some master answers) */
    argv[0] = "PING";
    argvlen[0] = 4;
    argv[1] = "txval:status";
    argvlen[1] = sizeof("txval:status") - 1;
    argc = 2;
    args = argv;
    lens = argvlen;

    if (ngx_http_txval_redis_send(tmcf->redis, op, 1, &argc, &args, &lens)
        != NGX_OK)
    {
        ngx_free(op);
        return;
    }

    ctx->redis = NGX_HTTP_TXVAL_PROBE_WAITING;
    ctx->redis_op = op;
    ctx->pending++;
}


static void
ngx_http_txval_status_redis_done(ngx_http_txval_redis_op_t *op)
{
    ngx_http_txval_status_ctx_t  *ctx = op->data;

    ctx->redis_op = NULL;

    switch (op->status) {

    case NGX_HTTP_TXVAL_REDIS_OK:
        ctx->redis = NGX_HTTP_TXVAL_PROBE_UP;
        break;

    case NGX_HTTP_TXVAL_REDIS_TIMEOUT:
        ctx->redis = NGX_HTTP_TXVAL_PROBE_TIMEOUT;
        break;

    default:
        ctx->redis = NGX_HTTP_TXVAL_PROBE_ERROR;
        break;
    }

    ngx_http_txval_status_probed(ctx);
}


/* the lookup query, with empty parameters: a round trip, no row */

static void
ngx_http_txval_status_pg(ngx_http_txval_status_ctx_t *ctx)
{
    ngx_http_request_t          *r;
    ngx_http_txval_pg_op_t      *op;
    ngx_http_txval_main_conf_t  *tmcf;

    r = ctx->request;
    tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

    if (tmcf->pg == NULL) {
        return;
    }

    ctx->pg = NGX_HTTP_TXVAL_PROBE_ERROR;

    op = ngx_http_txval_pg_op(r->connection->log);
    if (op == NULL) {
        return;
    }

    /* empty parameters: a merchant and a card that are not there */
    op->want = NGX_HTTP_TXVAL_ROW_MERCHANT | NGX_HTTP_TXVAL_ROW_CARD;
    op->currency[0] = '\0';
    op->done = ngx_http_txval_status_pg_done;
    op->data = ctx;

    if (ngx_http_txval_pg_send(op) != NGX_OK) {
        ngx_free(op);
        return;
    }

    ctx->pg = NGX_HTTP_TXVAL_PROBE_WAITING;
    ctx->pg_op = op;
    ctx->pending++;
}


static void
ngx_http_txval_status_pg_done(ngx_http_txval_pg_op_t *op)
{
    ngx_http_txval_status_ctx_t  *ctx = op->data;

    ctx->pg_op = NULL;

    switch (op->status) {

    case NGX_HTTP_TXVAL_PG_OK:
        ctx->pg = NGX_HTTP_TXVAL_PROBE_UP;
        break;

    case NGX_HTTP_TXVAL_PG_TIMEOUT:
        ctx->pg = NGX_HTTP_TXVAL_PROBE_TIMEOUT;
        break;

    default:
        ctx->pg = NGX_HTTP_TXVAL_PROBE_ERROR;
        break;
    }

    ngx_http_txval_status_probed(ctx);
}


static void
ngx_http_txval_status_probed(ngx_http_txval_status_ctx_t *ctx)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    if (--ctx->pending) {
        return;
    }

    r = ctx->request;
    c = r->connection;

    ngx_http_finalize_request(r, ngx_http_txval_status_send(r, ctx));
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_txval_status_send(ngx_http_request_t *r,
    ngx_http_txval_status_ctx_t *ctx)
{
    u_char                             *p;
    ngx_buf_t                          *b;
    ngx_uint_t                          ready, n;
    ngx_http_txval_main_conf_t         *tmcf;
    ngx_http_txval_redis_node_state_t  *nodes;

    static ngx_str_t  json = ngx_string("application/json");

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

    ready = (!tmcf->closed_redis || ctx->redis == NGX_HTTP_TXVAL_PROBE_UP)
            && (!tmcf->closed_pg || ctx->pg == NGX_HTTP_TXVAL_PROBE_UP);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "txval status: redis:%d pg:%d ready:%ui",
                   ctx->redis, ctx->pg, ready);

    n = 0;
    nodes = NULL;

    if (ctx->redis != NGX_HTTP_TXVAL_PROBE_NONE) {
        nodes = ngx_palloc(r->pool, NGX_HTTP_TXVAL_STATUS_NODES
                              * sizeof(ngx_http_txval_redis_node_state_t));
        if (nodes == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        n = ngx_http_txval_redis_nodes(nodes, NGX_HTTP_TXVAL_STATUS_NODES);
    }

    b = ngx_create_temp_buf(r->pool, NGX_HTTP_TXVAL_STATUS_BODY_MAX
                                     + n * NGX_HTTP_TXVAL_STATUS_NODE_MAX);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(b->pos, "{\"status\":\"%s\",\"worker\":%P,"
                    "\"backends\":{", ready ? "ready" : "not_ready", ngx_pid);
    p = ngx_http_txval_status_backend(p, "redis", ctx->redis,
                                      tmcf->closed_redis, 0);

    if (n) {
        /* into the redis object, before its closing brace */
        p = ngx_http_txval_status_nodes(p - 1, nodes, n);
    }

    p = ngx_http_txval_status_backend(p, "postgres", ctx->pg,
                                      tmcf->closed_pg,
                                      ctx->redis != NGX_HTTP_TXVAL_PROBE_NONE);

    if (tmcf->lookup && tmcf->lookup->channel.len) {
        /* the cache is bypassed while it is down: never a 503 */
        p = ngx_sprintf(p, "%s\"lookup_listener\":{\"state\":\"%s\"}",
                        (ctx->redis != NGX_HTTP_TXVAL_PROBE_NONE
                         || ctx->pg != NGX_HTTP_TXVAL_PROBE_NONE) ? "," : "",
                        ngx_http_txval_lookup_usable(tmcf->lookup)
                        ? "up" : "down");
    }

    p = ngx_cpymem(p, "}}\n", 3);

    b->last = p;

    if (ngx_http_txval_add_header(r, "Cache-Control", "no-store") != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_txval_send_buf(r, ready ? NGX_HTTP_OK
                                            : NGX_HTTP_SERVICE_UNAVAILABLE,
                                   &json, b);
}


/* "name":{"state":"up|down"[,"error":"error|timeout"][,"required":true]} */

static u_char *
ngx_http_txval_status_backend(u_char *p, const char *name,
    ngx_http_txval_probe_e state, ngx_uint_t required, ngx_uint_t comma)
{
    if (state == NGX_HTTP_TXVAL_PROBE_NONE) {
        return p;
    }

    p = ngx_sprintf(p, "%s\"%s\":{\"state\":\"%s\"", comma ? "," : "", name,
                    state == NGX_HTTP_TXVAL_PROBE_UP ? "up" : "down");

    if (state == NGX_HTTP_TXVAL_PROBE_TIMEOUT) {
        p = ngx_cpymem(p, ",\"error\":\"timeout\"", 18);

    } else if (state != NGX_HTTP_TXVAL_PROBE_UP) {
        p = ngx_cpymem(p, ",\"error\":\"error\"", 16);
    }

    if (required) {
        p = ngx_cpymem(p, ",\"required\":true", 16);
    }

    *p++ = '}';

    return p;
}


/* ,"nodes":[{"address":"…","state":"up"[,"sentinel":true]},…]} */

static u_char *
ngx_http_txval_status_nodes(u_char *p,
    ngx_http_txval_redis_node_state_t *nodes, ngx_uint_t n)
{
    size_t      len;
    ngx_uint_t  i;

    p = ngx_cpymem(p, ",\"nodes\":[", 10);

    for (i = 0; i < n; i++) {
        /* an address is printable and has no quote: no escaping */
        len = ngx_min(nodes[i].text.len, NGX_SOCKADDR_STRLEN);

        p = ngx_sprintf(p, "%s{\"address\":\"%*s\",\"state\":\"%s\"%s}",
                        i ? "," : "", len, nodes[i].text.data,
                        nodes[i].up ? "up" : "down",
                        nodes[i].sentinel ? ",\"sentinel\":true" : "");
    }

    return ngx_cpymem(p, "]}", 2);
}


/* the probe's request went away first: its operations complete unheard */

static void
ngx_http_txval_status_abandon(void *data)
{
    ngx_http_txval_status_ctx_t  *ctx = data;

    ngx_http_txval_detach(&ctx->redis_op, &ctx->pg_op);
}
