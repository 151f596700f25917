
/*
 * txval: what a transaction asks the backends, named for what it does.
 *
 *   ngx_http_txval_verdict_get      Redis: the verdict for this id, or
 *                                   this request's mark (SET NX GET)
 *   ngx_http_txval_verdict_put      Redis: the verdict replaces the mark
 *   ngx_http_txval_verdict_release  Redis: the mark dropped, no verdict
 *   ngx_http_txval_velocity_count   Redis: INCR and EXPIRE of the card's
 *                                   count in this window
 *   ngx_http_txval_velocity_uncount Redis: DECR, the request refused
 *   ngx_http_txval_facts_lookup     merchant, card and BIN: the lookup
 *                                   cache, then Postgres for the rest
 *
 * Operations that report to a request are detached by its pool cleanup
 * if it goes away first (ngx_http_txval_watch); the others are told and
 * not waited for. Keys are built by ngx_http_txval_verdict_key and
 * ngx_http_txval_velocity_key only.
 */


#include "ngx_http_txval_module.h"
#include "ngx_http_txval_cache.h"
#include "ngx_http_txval_redis.h"
#include "ngx_http_txval_pg.h"
#include "ngx_http_txval_lookup.h"
#include "ngx_http_txval_metrics.h"
#include "ngx_http_txval_record.h"


static ngx_http_txval_ctx_t *ngx_http_txval_store_answered(
    ngx_http_txval_redis_op_t *op);
static void ngx_http_txval_verdict_got(ngx_http_txval_redis_op_t *op);
static size_t ngx_http_txval_verdict_key(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx, u_char *key);
static void ngx_http_txval_velocity_counted(ngx_http_txval_redis_op_t *op);
static size_t ngx_http_txval_velocity_key(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx, u_char *key);
static void ngx_http_txval_store_tell(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx, int argc, const char **argv, size_t *argvlen);
static ngx_http_txval_redis_op_t *ngx_http_txval_store_start(
    ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx,
    ngx_http_txval_redis_done_pt done);
static void ngx_http_txval_facts_looked_up(ngx_http_txval_pg_op_t *op);


/*
 * Redis: the verdict replaces what this request saw there and may replace
 * (its own mark, or a value that was not a verdict), or nothing, or a key
 * of another type; never a value it did not see, such as a verdict
 * another host stored first, or another request's mark. KEYS[1] the
 * verdict key, ARGV[1] the verdict, ARGV[2] its ttl (s), ARGV[3] the
 * value seen.
 */

static const char  ngx_http_txval_store_script[] =
    "local t = redis.call('TYPE', KEYS[1]).ok "
    "if t == 'string' and redis.call('GET', KEYS[1]) ~= ARGV[3] then "
    "return 0 end "
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return 1";

/* Redis: a mark is dropped by the request that holds it, ARGV[1] */

static const char  ngx_http_txval_release_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('DEL', KEYS[1]) end return 0";


/*
 * SET {prefix}v:{id} p;<token> NX GET PX <mark ttl>: the verdict if there
 * is one, else this request's mark, in one round trip (Redis 7)
 */

ngx_int_t
ngx_http_txval_verdict_get(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
{
    int                           argc;
    u_char                        key[NGX_HTTP_TXVAL_KEY_MAX];
    u_char                        mark[NGX_HTTP_TXVAL_PENDING_LEN];
    u_char                        px[NGX_INT_T_LEN];
    size_t                        argvlen[7], *lens;
    const char                   *argv[7], **args;
    ngx_http_txval_redis_op_t    *op;
    ngx_http_txval_main_conf_t   *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

    op = ngx_http_txval_store_start(r, ctx, ngx_http_txval_verdict_got);
    if (op == NULL) {
        return NGX_ERROR;
    }

    argv[0] = "SET";
    argvlen[0] = 3;
    argv[1] = (const char *) key;
    argvlen[1] = ngx_http_txval_verdict_key(r, ctx, key);
    argv[2] = (const char *) mark;
    argvlen[2] = ngx_http_txval_pending_encode(mark, sizeof(mark),
                                               ctx->token);
    argv[3] = "NX";
    argvlen[3] = 2;
    argv[4] = "GET";
    argvlen[4] = 3;
    argv[5] = "PX";
    argvlen[5] = 2;
    argv[6] = (const char *) px;
    argvlen[6] = ngx_sprintf(px, "%ui", (ngx_uint_t) NGX_HTTP_TXVAL_PENDING_TTL)
                 - px;
    argc = 7;
    args = argv;
    lens = argvlen;

    if (ngx_http_txval_redis_send(tmcf->redis, op, 1, &argc, &args, &lens)
        != NGX_OK)
    {
        ctx->redis_op = NULL;
        ngx_free(op);
        return NGX_ERROR;
    }

    /* from here on the mark may be there, even if no answer comes */
    ctx->claimed = 1;
    ctx->claim_at = ngx_current_msec;

    return NGX_OK;
}


/* a Redis operation's answer is in: the request it reports to, timed */

static ngx_http_txval_ctx_t *
ngx_http_txval_store_answered(ngx_http_txval_redis_op_t *op)
{
    ngx_http_txval_ctx_t  *ctx;

    ctx = op->data;
    ctx->redis_op = NULL;

    ngx_http_txval_metrics_backend_duration(NGX_HTTP_TXVAL_M_REDIS,
                                        ngx_http_txval_ns() - ctx->redis_at);

    return ctx;
}


static void
ngx_http_txval_verdict_got(ngx_http_txval_redis_op_t *op)
{
    ngx_connection_t            *c;
    ngx_http_request_t          *r;
    ngx_http_txval_ctx_t        *ctx;
    ngx_http_txval_record_t      rec;
    ngx_http_txval_main_conf_t  *tmcf;

    ctx = ngx_http_txval_store_answered(op);
    r = ctx->request;
    c = r->connection;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "txval redis claim: status:%d nil:%d",
                   op->status, op->nil);

    if (op->status != NGX_HTTP_TXVAL_REDIS_OK) {
        /* a failed lookup is a miss (the mark may or may not be there) */
        ctx->redis_failed = (op->status == NGX_HTTP_TXVAL_REDIS_TIMEOUT);
        ngx_http_txval_metrics_redis_lookup(NGX_HTTP_TXVAL_M_ERROR);
        goto lookups;
    }

    if (op->nil) {
        /* not known: the mark is this request's */
        ctx->owns_mark = 1;
        ngx_http_txval_metrics_redis_lookup(NGX_HTTP_TXVAL_M_MISS);
        goto lookups;
    }

    /* the key was there: nothing was written */

    ctx->claimed = 0;

    if (op->value_len <= NGX_HTTP_TXVAL_REDIS_VALUE_MAX
        && ngx_http_txval_is_pending(op->value, op->value_len))
    {
        ngx_http_txval_metrics_redis_lookup(NGX_HTTP_TXVAL_M_IN_PROGRESS);
        ctx->error = NGX_HTTP_TXVAL_ERR_IN_PROGRESS;
        goto done;
    }

    if (op->value_len > NGX_HTTP_TXVAL_REDIS_VALUE_MAX
        || ngx_http_txval_record_decode(op->value, op->value_len, &rec) != 0)
    {
        /*
         * not a verdict of this version: a miss, and the verdict computed
         * replaces it. A record of the older format ("1;", until it
         * expires) is expected after an upgrade; anything else is worth a
         * line.
         */
        if (op->value_len < 2 || op->value[0] != '1' || op->value[1] != ';')
        {
            ngx_log_error(NGX_LOG_WARN, c->log, 0,
                          "txval: redis holds a corrupt verdict for this id, "
                          "recomputing");
        }

        if (op->value_len <= NGX_HTTP_TXVAL_REDIS_VALUE_MAX) {
            /* what the verdict may replace (a longer value stays) */
            ctx->seen = ngx_pnalloc(r->pool, op->value_len + 1);

            if (ctx->seen) {
                ctx->seen_len = op->value_len;
                ngx_memcpy(ctx->seen, op->value, op->value_len);
            }
        }

        ngx_http_txval_metrics_redis_lookup(NGX_HTTP_TXVAL_M_MISS);
        goto lookups;
    }

    if (ngx_memcmp(rec.fingerprint, ctx->txn.fingerprint,
                   NGX_HTTP_TXVAL_DIGEST_LEN) != 0)
    {
        ngx_http_txval_metrics_redis_lookup(NGX_HTTP_TXVAL_M_CONFLICT);
        ctx->error = NGX_HTTP_TXVAL_ERR_CONFLICT;
        goto done;
    }

    ngx_http_txval_metrics_redis_lookup(NGX_HTTP_TXVAL_M_HIT);

    ctx->result.reasons = rec.reasons;
    ctx->result.risk_score = rec.risk_score;
    ctx->source = NGX_HTTP_TXVAL_SOURCE_REDIS;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

    if (tmcf->cache
        && ngx_http_txval_cache_store(tmcf->cache, ctx->ns, &ctx->txn, &rec,
                                      ngx_http_txval_raw(r, ctx), c->log)
           == NGX_OK)
    {
        ctx->marked = 0;    /* the verdict replaced the mark */
    }

done:

    ngx_http_txval_finish(r, ctx);
    ngx_http_run_posted_requests(c);
    return;

lookups:

    ngx_http_txval_lookups(r, ctx);
    ngx_http_run_posted_requests(c);
}


/* the verdict replaces this request's mark in Redis (a script) */

void
ngx_http_txval_verdict_put(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx,
    ngx_http_txval_record_t *rec)
{
    u_char                       key[NGX_HTTP_TXVAL_KEY_MAX];
    u_char                       val[NGX_HTTP_TXVAL_RECORD_MAX];
    u_char                       ttl[NGX_TIME_T_LEN];
    u_char                       mark[NGX_HTTP_TXVAL_PENDING_LEN];
    size_t                       argvlen[7], len, klen, tlen;
    ngx_msec_t                   ms;
    const char                  *argv[7];
    ngx_http_txval_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

    ms = tmcf->cache ? tmcf->cache->ttl : NGX_HTTP_TXVAL_TTL_DEFAULT;

    len = ngx_http_txval_record_encode(val, sizeof(val), rec);
    klen = ngx_http_txval_verdict_key(r, ctx, key);
    tlen = ngx_sprintf(ttl, "%M", (ms + 999) / 1000) - ttl;

    ctx->claimed = 0;

    if (ctx->owns_mark
        && ngx_current_msec - ctx->claim_at < NGX_HTTP_TXVAL_PENDING_TTL / 2)
    {
        /*
         * The key holds this request's mark: it set it (NX) less than
         * half its life ago, and nobody replaces another's mark but by
         * the script below. A plain SET over it, only if it is there
         * (XX), costs Redis no script.
         */

        argv[0] = "SET";
        argvlen[0] = 3;
        argv[1] = (const char *) key;
        argvlen[1] = klen;
        argv[2] = (const char *) val;
        argvlen[2] = len;
        argv[3] = "XX";
        argvlen[3] = 2;
        argv[4] = "EX";
        argvlen[4] = 2;
        argv[5] = (const char *) ttl;
        argvlen[5] = tlen;

        ngx_http_txval_store_tell(r, ctx, 6, argv, argvlen);
        return;
    }

    /* a value seen that may go, or a mark held long: the script decides */

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = ngx_http_txval_store_script;
    argvlen[1] = sizeof(ngx_http_txval_store_script) - 1;
    argv[2] = "1";
    argvlen[2] = 1;
    argv[3] = (const char *) key;
    argvlen[3] = klen;
    argv[4] = (const char *) val;
    argvlen[4] = len;
    argv[5] = (const char *) ttl;
    argvlen[5] = tlen;

    if (ctx->seen) {
        argv[6] = (const char *) ctx->seen;
        argvlen[6] = ctx->seen_len;

    } else {
        argv[6] = (const char *) mark;
        argvlen[6] = ngx_http_txval_pending_encode(mark, sizeof(mark),
                                                   ctx->token);
    }

    ngx_http_txval_store_tell(r, ctx, 7, argv, argvlen);
}


/* this request's mark in Redis is dropped, if it is still there */

void
ngx_http_txval_verdict_release(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
{
    u_char       key[NGX_HTTP_TXVAL_KEY_MAX];
    u_char       mark[NGX_HTTP_TXVAL_PENDING_LEN];
    size_t       argvlen[5];
    const char  *argv[5];

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = ngx_http_txval_release_script;
    argvlen[1] = sizeof(ngx_http_txval_release_script) - 1;
    argv[2] = "1";
    argvlen[2] = 1;
    argv[3] = (const char *) key;
    argvlen[3] = ngx_http_txval_verdict_key(r, ctx, key);
    argv[4] = (const char *) mark;
    argvlen[4] = ngx_http_txval_pending_encode(mark, sizeof(mark),
                                               ctx->token);

    ngx_http_txval_store_tell(r, ctx, 5, argv, argvlen);

    ctx->claimed = 0;
}


/*
 * {prefix}v:{id}, or in a namespace {prefix}ns:{namespace}:v:{id}: never
 * the same key ("v:" and "ns:" differ in their first byte, and a
 * namespace holds no ':')
 */

static size_t
ngx_http_txval_verdict_key(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx,
    u_char *key)
{
    u_char                      *p;
    ngx_http_txval_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

    p = ngx_cpymem(key, tmcf->redis->prefix.data, tmcf->redis->prefix.len);

    if (ctx->ns) {
        p = ngx_cpymem(p, "ns:", 3);
        p = ngx_cpymem(p, ctx->ns->data, ctx->ns->len);
        *p++ = ':';
    }

    p = ngx_cpymem(p, "v:", 2);
    p = ngx_cpymem(p, ctx->txn.id, ctx->txn.id_len);

    return p - key;
}


/* INCR and EXPIRE {prefix}vel:{card_token}:{window}, one round trip */

ngx_int_t
ngx_http_txval_velocity_count(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx)
{
    int                           argc[2];
    u_char                        key[NGX_HTTP_TXVAL_KEY_MAX];
    u_char                        ttl[NGX_TIME_T_LEN];
    size_t                        len, incr_len[2], expire_len[3], *lens[2];
    const char                   *incr[2], *expire[3], **args[2];
    ngx_http_txval_redis_op_t    *op;
    ngx_http_txval_loc_conf_t    *tlcf;
    ngx_http_txval_main_conf_t   *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);
    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_txval_module);

    op = ngx_http_txval_store_start(r, ctx, ngx_http_txval_velocity_counted);
    if (op == NULL) {
        return NGX_ERROR;
    }

    ctx->velocity_at = ngx_time() / tlcf->velocity_window;
    len = ngx_http_txval_velocity_key(r, ctx, key);

    incr[0] = "INCR";
    incr_len[0] = 4;
    incr[1] = (const char *) key;
    incr_len[1] = len;

    expire[0] = "EXPIRE";
    expire_len[0] = 6;
    expire[1] = (const char *) key;
    expire_len[1] = len;
    expire[2] = (const char *) ttl;
    expire_len[2] = ngx_sprintf(ttl, "%T", tlcf->velocity_window) - ttl;

    argc[0] = 2;
    argc[1] = 3;
    args[0] = incr;
    args[1] = expire;
    lens[0] = incr_len;
    lens[1] = expire_len;

    if (ngx_http_txval_redis_send(tmcf->redis, op, 2, argc, args, lens)
        != NGX_OK)
    {
        ctx->redis_op = NULL;
        ngx_free(op);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_txval_velocity_counted(ngx_http_txval_redis_op_t *op)
{
    ngx_connection_t      *c;
    ngx_http_request_t    *r;
    ngx_http_txval_ctx_t  *ctx;

    ctx = ngx_http_txval_store_answered(op);
    r = ctx->request;
    c = r->connection;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "txval redis velocity: status:%d count:%L",
                   op->status, op->integer);

    if (op->status == NGX_HTTP_TXVAL_REDIS_OK && op->integer > 0) {
        ctx->facts.velocity = 1;
        ctx->facts.velocity_count = (uint64_t) op->integer;

    } else {
        ngx_http_txval_backend_failed(r, ctx, NGX_HTTP_TXVAL_M_REDIS);
    }

    ngx_http_txval_lookup_done(r, ctx);
    ngx_http_run_posted_requests(c);
}


/*
 * DECR of a velocity count this request made, when the request ends
 * refused after all (503, 409): only transactions with a verdict count.
 */

void
ngx_http_txval_velocity_uncount(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx)
{
    u_char       key[NGX_HTTP_TXVAL_KEY_MAX];
    size_t       argvlen[2];
    const char  *argv[2];

    ctx->facts.velocity = 0;

    argv[0] = "DECR";
    argvlen[0] = 4;
    argv[1] = (const char *) key;
    argvlen[1] = ngx_http_txval_velocity_key(r, ctx, key);

    ngx_http_txval_store_tell(r, ctx, 2, argv, argvlen);
}


/* {prefix}vel:{card_token}:{window} */

static size_t
ngx_http_txval_velocity_key(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx,
    u_char *key)
{
    u_char                      *p;
    ngx_http_txval_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

    p = ngx_cpymem(key, tmcf->redis->prefix.data, tmcf->redis->prefix.len);
    p = ngx_cpymem(p, "vel:", 4);
    p = ngx_cpymem(p, ctx->txn.card_token, ctx->txn.card_token_len);
    p = ngx_sprintf(p, ":%T", ctx->velocity_at);

    return p - key;
}


/* one command that nobody waits for */

static void
ngx_http_txval_store_tell(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx,
    int argc, const char **argv, size_t *argvlen)
{
    ngx_http_txval_redis_op_t   *op;
    ngx_http_txval_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

    op = ngx_http_txval_redis_op(ngx_cycle->log);
    if (op == NULL) {
        return;
    }

    if (argc > 3 && argvlen[0] == 4 && ngx_strncmp(argv[0], "EVAL", 4) == 0) {
        /* EVAL script 1 key ...: Redis Cluster routes by the key */
        op->key = (u_char *) argv[3];
        op->key_len = argvlen[3];
    }

    if (ngx_http_txval_redis_send(tmcf->redis, op, 1, &argc, &argv, &argvlen)
        != NGX_OK)
    {
        ngx_free(op);
        return;
    }

    /* the answer waits for this write (ngx_http_txval_finish) */
    ctx->told = 1;
}


/*
 * An operation that reports to this request. If the request goes away
 * first, its pool cleanup detaches the operation, which then completes
 * without telling anyone.
 */

static ngx_http_txval_redis_op_t *
ngx_http_txval_store_start(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx,
    ngx_http_txval_redis_done_pt done)
{
    ngx_http_txval_redis_op_t  *op;

    if (ngx_http_txval_watch(r, ctx) != NGX_OK) {
        return NULL;
    }

    op = ngx_http_txval_redis_op(r->connection->log);
    if (op == NULL) {
        return NULL;
    }

    op->done = done;
    op->data = ctx;
    ctx->redis_op = op;
    ctx->redis_at = ngx_http_txval_ns();

    return op;
}


/*
 * Merchant, card and BIN: what the lookup cache holds (NGX_DONE: all of
 * it), and the rest from Postgres in one round trip (NGX_OK: sent).
 */

ngx_int_t
ngx_http_txval_facts_lookup(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
{
    unsigned                     want;
    ngx_http_txval_pg_op_t      *op;
    ngx_http_txval_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

    if (tmcf->lookup) {
        want = ngx_http_txval_lookup_get(tmcf->lookup, &ctx->txn,
                                         &ctx->rows, &ctx->stamp);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "txval lookup cache: have:%ui want:%ui",
                       (ngx_uint_t) ctx->rows.have, (ngx_uint_t) want);

        if (want == 0) {
            ngx_http_txval_rows_facts(&ctx->txn, &ctx->rows, &ctx->facts);
            return NGX_DONE;
        }

    } else {
        want = ngx_http_txval_rows_wanted(&ctx->txn);
    }

    if (ngx_http_txval_watch(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    op = ngx_http_txval_pg_op(r->connection->log);
    if (op == NULL) {
        return NGX_ERROR;
    }

    ngx_http_txval_pg_params(op, &ctx->txn);
    op->want = want;
    op->keep = (tmcf->lookup != NULL);

    op->done = ngx_http_txval_facts_looked_up;
    op->data = ctx;

    if (ngx_http_txval_pg_send(op) != NGX_OK) {
        ngx_free(op);
        return NGX_ERROR;
    }

    ctx->pg_op = op;
    ctx->pg_at = ngx_http_txval_ns();

    return NGX_OK;
}


static void
ngx_http_txval_facts_looked_up(ngx_http_txval_pg_op_t *op)
{
    ngx_connection_t            *c;
    ngx_http_request_t          *r;
    ngx_http_txval_ctx_t        *ctx;
    ngx_http_txval_main_conf_t  *tmcf;

    ctx = op->data;
    ctx->pg_op = NULL;
    r = ctx->request;
    c = r->connection;

    ngx_http_txval_metrics_backend_duration(NGX_HTTP_TXVAL_M_POSTGRES,
                                            ngx_http_txval_ns() - ctx->pg_at);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "txval postgres lookup: status:%d", op->status);

    if (op->status == NGX_HTTP_TXVAL_PG_OK) {
        tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

        if (tmcf->lookup) {
            ngx_http_txval_lookup_put(tmcf->lookup, &ctx->txn, &op->rows,
                                      &ctx->stamp);
        }

        ngx_http_txval_rows_merge(&ctx->rows, &op->rows);
        ngx_http_txval_rows_facts(&ctx->txn, &ctx->rows, &ctx->facts);

    } else {
        ngx_http_txval_backend_failed(r, ctx, NGX_HTTP_TXVAL_M_POSTGRES);
    }

    ngx_http_txval_lookup_done(r, ctx);
    ngx_http_run_posted_requests(c);
}


/*
 * A requester that goes away (its pool cleanup): its operations in flight
 * complete without telling it (Redis), or are dropped (Postgres).
 */

void
ngx_http_txval_detach(ngx_http_txval_redis_op_t **rop,
    ngx_http_txval_pg_op_t **pop)
{
    if (*rop) {
        (*rop)->data = NULL;
        *rop = NULL;
    }

    if (*pop) {
        ngx_http_txval_pg_abandon(*pop);
        *pop = NULL;
    }
}
