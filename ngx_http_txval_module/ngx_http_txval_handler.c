
/*
 * txval: a transaction's path, top to bottom.
 *
 *   ngx_http_txval_handler (verdict mode; gate mode: ngx_http_txval_gate.c)
 *   -> ngx_http_txval_start: method and content type, read the body
 *   -> ngx_http_txval_body_handler: a replay of the very same bytes?
 *      else parse (ngx_http_txval_txn.c)
 *   -> ngx_http_txval_validate: the verdict cache (shm), then Redis
 *      (ngx_http_txval_store.c), each leaving a mark while this id is
 *      validated
 *   -> ngx_http_txval_lookups: the rules' facts, all at once (Postgres and
 *      the lookup cache, Redis' velocity count)
 *   -> ngx_http_txval_evaluate: the rules (ngx_http_txval_rules.c), the
 *      verdict stored
 *   -> ngx_http_txval_finish: marks released, metrics, then the answer
 *      (ngx_http_txval_send; behind the Redis writes it made, if any:
 *      ngx_http_txval_answer) or, in gate mode, on to the content handler
 *
 * Every path ends in ngx_http_txval_finish().
 */


#include "ngx_http_txval_module.h"
#include "ngx_http_txval_cache.h"
#include "ngx_http_txval_lookup.h"
#include "ngx_http_txval_metrics.h"
#include "ngx_http_txval_prometheus.h"
#include "ngx_http_txval_record.h"


/* an error code's status and fixed detail; its name is prometheus.c's */

typedef struct {
    ngx_uint_t                  status;
    const char                 *detail;
} ngx_http_txval_error_info_t;


static ngx_http_txval_error_e ngx_http_txval_check_request(ngx_http_request_t
    *r);
static void ngx_http_txval_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_txval_replay(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static void ngx_http_txval_validate(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static void ngx_http_txval_token(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static void ngx_http_txval_evaluate(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static void ngx_http_txval_answer(ngx_event_t *ev);
static void ngx_http_txval_release(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static void ngx_http_txval_abandon(void *data);


static ngx_http_txval_error_info_t  ngx_http_txval_errors[] = {
    { NGX_HTTP_OK, NULL },
    { NGX_HTTP_NOT_ALLOWED, "only POST is accepted" },
    { NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
      "the Content-Type must be application/json" },
    { NGX_HTTP_BAD_REQUEST, NULL },                         /* invalid_json */
    { NGX_HTTP_BAD_REQUEST, NULL },                        /* invalid_field */
    { NGX_HTTP_BAD_REQUEST, NULL },                     /* pan_not_accepted */
    { NGX_HTTP_CONFLICT,
      "this id was already used for a transaction with different content" },
    { NGX_HTTP_CONFLICT,
      "a transaction with this id is being validated, retry later" },
    { NGX_HTTP_SERVICE_UNAVAILABLE,
      "a backend this transaction needs is unavailable, retry later" }
};


ngx_int_t
ngx_http_txval_handler(ngx_http_request_t *r)
{
    ngx_int_t              rc;
    ngx_http_txval_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_txval_module);

    if (ctx && ctx->done) {
        /* validated already (a gate around it, a subrequest's main) */
        return ngx_http_txval_send(r, ctx);
    }

    rc = ngx_http_txval_start(r, 0, &ctx);

    if (rc == NGX_DECLINED) {
        return ngx_http_txval_send(r, ctx);
    }

    /* the body handler answers */
    return (rc == NGX_OK) ? NGX_DONE : rc;
}


/*
 * What both modes do first: refuse a wrong method or content type
 * (NGX_DECLINED, ctx done), or start reading the body (NGX_OK; the body
 * handler may have run already), or fail (an HTTP status).
 */

ngx_int_t
ngx_http_txval_start(ngx_http_request_t *r, ngx_uint_t gate,
    ngx_http_txval_ctx_t **pctx)
{
    ngx_int_t              rc;
    ngx_http_txval_ctx_t  *ctx;

    ctx = ngx_http_txval_create_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    *pctx = ctx;
    ctx->gate = gate;
    ctx->dry_run = ngx_http_txval_dry_run_for(r);

    ctx->error = ngx_http_txval_check_request(r);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "txval start: gate:%ui error:%d", gate, ctx->error);

    if (ctx->error != NGX_HTTP_TXVAL_ERR_NONE) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        ctx->done = 1;
        ngx_http_txval_metrics_request(ctx);

        return NGX_DECLINED;
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_txval_body_handler);

    return (rc >= NGX_HTTP_SPECIAL_RESPONSE) ? rc : NGX_OK;
}


ngx_http_txval_ctx_t *
ngx_http_txval_create_ctx(ngx_http_request_t *r)
{
    ngx_http_txval_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_txval_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    ctx->request = r;

    ngx_http_set_ctx(r, ctx, ngx_http_txval_module);

    return ctx;
}


/*
 * A subrequest is checked on its main request's method (an SSI include is
 * a GET of a POST), and its own headers (the main request's, or what Lua
 * or njs gave it).
 */

static ngx_http_txval_error_e
ngx_http_txval_check_request(ngx_http_request_t *r)
{
    u_char     *p, *last;
    ngx_str_t  *type;

    if (r->main->method != NGX_HTTP_POST) {
        return NGX_HTTP_TXVAL_ERR_METHOD;
    }

    if (r->headers_in.content_type == NULL) {
        return NGX_HTTP_TXVAL_ERR_MEDIA_TYPE;
    }

    /* "application/json", then the end, parameters or white space */

    type = &r->headers_in.content_type->value;
    p = type->data;
    last = p + type->len;

    if ((size_t) (last - p) < sizeof("application/json") - 1
        || ngx_strncasecmp(p, (u_char *) "application/json",
                           sizeof("application/json") - 1) != 0)
    {
        return NGX_HTTP_TXVAL_ERR_MEDIA_TYPE;
    }

    p += sizeof("application/json") - 1;

    if (p < last && *p != ';' && *p != ' ' && *p != '\t') {
        return NGX_HTTP_TXVAL_ERR_MEDIA_TYPE;
    }

    return NGX_HTTP_TXVAL_ERR_NONE;
}


static void
ngx_http_txval_body_handler(ngx_http_request_t *r)
{
    u_char                      *data;
    size_t                       len;
    ngx_http_txval_ctx_t        *ctx;
    ngx_http_txval_main_conf_t  *tmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_txval_module);
    tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

    /*
     * $txval_time and the duration histogram start here: the client's
     * upload is nginx's to time ($request_time), the validation is ours
     */

    (void) clock_gettime(CLOCK_MONOTONIC, &ctx->start);

    /* a subrequest's: what its upstream gets, not the main request's */

    if (ngx_http_txval_body_bytes(r, &data, &len) != NGX_OK) {
        goto failed;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "txval body: %uz bytes", len);

    ctx->body = data;
    ctx->body_len = len;

    if (ngx_http_txval_mapping_request(r, ctx) != NGX_OK) {
        goto failed;
    }

    if (ctx->gate && r == r->main) {
        /*
         * While the backends are asked, a client that goes away is
         * noticed (as upstream does): its request is finalized, its
         * operations detached, and it never reaches the content handler.
         */
        r->read_event_handler = ngx_http_test_reading;
    }

    if (tmcf->cache && ngx_http_txval_replay(r, ctx) == NGX_OK) {
        return;
    }

    switch (ngx_http_txval_txn_parse(data, len, ctx->map, ctx->values,
                                     &ctx->txn, &ctx->parse_error))
    {
    case NGX_HTTP_TXVAL_PARSE_OK:
        ctx->parsed = 1;
        ctx->fields = 1;
        ngx_http_txval_validate(r, ctx);
        return;

    case NGX_HTTP_TXVAL_PARSE_INVALID_JSON:
        ctx->error = NGX_HTTP_TXVAL_ERR_INVALID_JSON;
        break;

    case NGX_HTTP_TXVAL_PARSE_INVALID_FIELD:
        ctx->error = NGX_HTTP_TXVAL_ERR_INVALID_FIELD;
        break;

    default: /* NGX_HTTP_TXVAL_PARSE_PAN */
        ctx->error = NGX_HTTP_TXVAL_ERR_PAN;
        break;
    }

    ngx_http_txval_finish(r, ctx);
    return;

failed:

    if (ctx->gate && !ctx->waiting) {
        /* still inside the phase handler, which answers */
        ctx->failed = 1;
        return;
    }

    ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
}


/*
 * The replay of a body of the very same bytes (and values from variables,
 * under the same mapping) as one with a verdict in the cache zone (a
 * client's retry): that verdict, without parsing the body. Bytes that
 * differ in any way take the full path (parse, fingerprint), which finds
 * the same verdict for the same content.
 */

static ngx_int_t
ngx_http_txval_replay(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
{
    size_t                       id_len;
    const u_char                *id;
    ngx_http_txval_record_t      rec;
    ngx_http_txval_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

    if (ngx_http_txval_txn_peek_id(ctx->body, ctx->body_len, ctx->map,
                                   ctx->values, &id, &id_len)
        != 0)
    {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "txval replay: no id to guess, parsing");
        return NGX_DECLINED;
    }

    if (ngx_http_txval_cache_replay(tmcf->cache, ctx->ns, id, id_len,
                                    ngx_http_txval_raw(r, ctx), &rec)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "txval replay: the same bytes, answered from shm");

    ngx_memcpy(ctx->txn.id, id, id_len);
    ctx->txn.id[id_len] = '\0';
    ctx->txn.id_len = (uint8_t) id_len;
    ngx_memcpy(ctx->txn.fingerprint, rec.fingerprint,
               NGX_HTTP_TXVAL_DIGEST_LEN);
    ctx->parsed = 1;

    ctx->result.reasons = rec.reasons;
    ctx->result.risk_score = rec.risk_score;
    ctx->source = NGX_HTTP_TXVAL_SOURCE_SHM;

    ngx_http_txval_finish(r, ctx);

    return NGX_OK;
}


/*
 * the keyed hash of the body and the values from variables, made when
 * first needed (a replay, a store)
 */

uint64_t *
ngx_http_txval_raw(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
{
    ngx_http_txval_main_conf_t  *tmcf;

    if (!ctx->hashed) {
        tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

        ngx_http_txval_cache_raw(tmcf->cache, ctx->body, ctx->body_len,
                                 ctx->map, ctx->values, ctx->raw);
        ctx->hashed = 1;
    }

    return ctx->raw;
}


/*
 * Not a replay: the verdict caches, then the backends. A miss in the zone
 * leaves a mark there, a miss in Redis leaves one in Redis (SET NX GET, in
 * the lookup's round trip): the same id arriving meanwhile, on any worker
 * or host, is told it is in progress.
 */

static void
ngx_http_txval_validate(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_http_txval_record_t      rec;
    ngx_http_txval_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

    if (tmcf->cache || tmcf->redis) {
        if (ngx_http_txval_watch(r, ctx) != NGX_OK) {
            /* out of memory: no mark could be released, so none is made */
            ctx->error = NGX_HTTP_TXVAL_ERR_BACKEND;
            ngx_http_txval_finish(r, ctx);
            return;
        }

        ngx_http_txval_token(r, ctx);
    }

    if (tmcf->cache) {
        rc = ngx_http_txval_cache_lookup(tmcf->cache, ctx->ns, &ctx->txn,
                                         &rec, ctx->token[1],
                                         r->connection->log);

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "txval shm lookup: %i", rc);

        switch (rc) {

        case NGX_OK:
            ctx->result.reasons = rec.reasons;
            ctx->result.risk_score = rec.risk_score;
            ctx->source = NGX_HTTP_TXVAL_SOURCE_SHM;
            ngx_http_txval_finish(r, ctx);
            return;

        case NGX_BUSY:
            ctx->error = NGX_HTTP_TXVAL_ERR_CONFLICT;
            ngx_http_txval_finish(r, ctx);
            return;

        case NGX_AGAIN:
            ctx->error = NGX_HTTP_TXVAL_ERR_IN_PROGRESS;
            ngx_http_txval_finish(r, ctx);
            return;

        case NGX_DECLINED:
            ctx->marked = 1;
            break;

        default: /* NGX_ABORT: no room for a mark */
            break;
        }
    }

    if (tmcf->redis) {
        if (ngx_http_txval_verdict_get(r, ctx) == NGX_OK) {
            return;     /* ngx_http_txval_verdict_got() goes on */
        }

        ngx_http_txval_metrics_redis_lookup(NGX_HTTP_TXVAL_M_ERROR);
    }

    ngx_http_txval_lookups(r, ctx);
}


/*
 * The token that names this request's marks: unique on this host (pid and
 * a counter) and across hosts (the worker's random nonce).
 */

static void
ngx_http_txval_token(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
{
    ngx_http_txval_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

    ctx->token[0] = tmcf->nonce;
    ctx->token[1] = (uint64_t) ngx_pid << 32 | ++tmcf->seq;
}


/* not a replay: ask the backends what the rules need, all at once */

void
ngx_http_txval_lookups(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
{
    ngx_http_txval_loc_conf_t   *tlcf;
    ngx_http_txval_main_conf_t  *tmcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_txval_module);
    tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

    ctx->pending = 1;       /* held until every lookup is started */

    if (tmcf->pg) {
        switch (ngx_http_txval_facts_lookup(r, ctx)) {

        case NGX_OK:
            ctx->pending++;
            break;

        case NGX_DONE:
            /* the lookup cache had it all */
            break;

        default:
            ngx_http_txval_backend_failed(r, ctx, NGX_HTTP_TXVAL_M_POSTGRES);
        }
    }

    /*
     * failing closed already (Postgres could not even be asked): the
     * answer is 503 whatever Redis says, and a refused transaction must
     * not count toward the card's velocity
     */

    /*
     * and when Redis has just timed out this request's lookup, its
     * velocity rule is not tried again: it would wait for the same
     * timeout a second time (an error reply, such as WRONGTYPE for a key
     * of another type, says nothing of the next command)
     */

    if (tlcf->velocity_count > 0 && ctx->error == NGX_HTTP_TXVAL_ERR_NONE) {
        if (!ctx->redis_failed
            && ngx_http_txval_velocity_count(r, ctx) == NGX_OK)
        {
            ctx->pending++;

        } else {
            ngx_http_txval_backend_failed(r, ctx, NGX_HTTP_TXVAL_M_REDIS);
        }
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "txval lookups: %ui in flight", ctx->pending - 1);

    ngx_http_txval_lookup_done(r, ctx);
}


void
ngx_http_txval_lookup_done(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
{
    if (--ctx->pending) {
        return;
    }

    if (ctx->error != NGX_HTTP_TXVAL_ERR_NONE) {
        ngx_http_txval_finish(r, ctx);
        return;
    }

    ngx_http_txval_evaluate(r, ctx);
}


/*
 * A rule's backend failed: 503 when failing closed, else skip the rule,
 * and say so (the verdict, $txval_degraded, X-Txval-Degraded, a counter)
 */

void
ngx_http_txval_backend_failed(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx, ngx_uint_t backend)
{
    ngx_http_txval_loc_conf_t  *tlcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_txval_module);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "txval backend %ui failed, fail mode %ui",
                   backend, tlcf->fail_mode);

    if (tlcf->fail_mode == NGX_HTTP_TXVAL_FAIL_OPEN) {
        ctx->degraded = 1;
        ngx_http_txval_metrics_degraded(backend);

    } else {
        ctx->error = NGX_HTTP_TXVAL_ERR_BACKEND;
    }
}


/*
 * All facts are in: apply the rules, remember the verdict, answer. A
 * verdict some other request stored first for the same content is the
 * one given: one id, one verdict.
 */

static void
ngx_http_txval_evaluate(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_http_txval_record_t      rec;
    ngx_http_txval_loc_conf_t   *tlcf;
    ngx_http_txval_main_conf_t  *tmcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_txval_module);
    tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

    ngx_http_txval_rules_eval(&ctx->txn, &tlcf->policy, &ctx->facts,
                              &ctx->result);

    ctx->source = NGX_HTTP_TXVAL_SOURCE_COMPUTED;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "txval evaluated: reasons:%uD score:%uD degraded:%d",
                   ctx->result.reasons, ctx->result.risk_score,
                   ctx->degraded);

    if (ctx->degraded) {
        /* cached nowhere: the marks are released by finish */
        ngx_http_txval_finish(r, ctx);
        return;
    }

    ngx_memcpy(rec.fingerprint, ctx->txn.fingerprint,
               NGX_HTTP_TXVAL_DIGEST_LEN);
    rec.reasons = (uint16_t) ctx->result.reasons;
    rec.risk_score = (uint8_t) ctx->result.risk_score;

    if (tmcf->cache) {
        rc = ngx_http_txval_cache_store(tmcf->cache, ctx->ns, &ctx->txn,
                                        &rec, ngx_http_txval_raw(r, ctx),
                                        r->connection->log);

        if (rc == NGX_BUSY) {
            /* a concurrent request with this id and other content won */
            ctx->error = NGX_HTTP_TXVAL_ERR_CONFLICT;
            ngx_http_txval_finish(r, ctx);
            return;
        }

        ctx->marked = 0;

        if (rc == NGX_DONE) {
            ctx->result.reasons = rec.reasons;
            ctx->result.risk_score = rec.risk_score;
        }
    }

    if (tmcf->redis) {
        ngx_http_txval_verdict_put(r, ctx, &rec);
    }

    ngx_http_txval_finish(r, ctx);
}


void
ngx_http_txval_finish(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
{
    struct timespec  now;

    (void) clock_gettime(CLOCK_MONOTONIC, &now);

    ctx->elapsed_ns = (uint64_t) (now.tv_sec - ctx->start.tv_sec) * 1000000000
                      + now.tv_nsec - ctx->start.tv_nsec;
    ctx->done = 1;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "txval finish: error:%d source:%d",
                   ctx->error, ctx->source);

    if (ctx->facts.velocity && ctx->error != NGX_HTTP_TXVAL_ERR_NONE) {
        ngx_http_txval_velocity_uncount(r, ctx);
    }

    ngx_http_txval_release(r, ctx);

    ngx_http_txval_metrics_request(ctx);

    if (ctx->waiters) {
        ngx_http_txval_wake(ctx);
    }

    if (!ctx->gate) {
        if (ctx->told && ngx_http_txval_watch(r, ctx) == NGX_OK) {
            /*
             * What was told Redis (the verdict, a mark dropped) is
             * written this round, by a posted event: the answer is
             * posted after it, so that a client holding the answer
             * finds the same in Redis, from any host.
             */
            ctx->answer.handler = ngx_http_txval_answer;
            ctx->answer.data = ctx;
            ctx->answer.log = r->connection->log;
            ngx_post_event(&ctx->answer, &ngx_posted_events);
            return;
        }

        ngx_http_finalize_request(r, ngx_http_txval_send(r, ctx));
        return;
    }

    if (r == r->main) {
        r->read_event_handler = ngx_http_block_reading;
    }

    if (!ctx->waiting) {
        return;     /* still inside the phase handler, which goes on */
    }

    ctx->waiting = 0;

    r->write_event_handler = ngx_http_core_run_phases;

    if (r != r->main) {
        (void) ngx_http_post_request(r, NULL);
        return;
    }

    ngx_http_core_run_phases(r);
}


static void
ngx_http_txval_answer(ngx_event_t *ev)
{
    ngx_connection_t      *c;
    ngx_http_request_t    *r;
    ngx_http_txval_ctx_t  *ctx = ev->data;

    r = ctx->request;
    c = r->connection;

    ngx_http_finalize_request(r, ngx_http_txval_send(r, ctx));
    ngx_http_run_posted_requests(c);
}


/* the marks this request holds and no verdict replaced */

static void
ngx_http_txval_release(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
{
    ngx_http_txval_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

    if (ctx->marked) {
        ngx_http_txval_cache_release(tmcf->cache, ctx->ns, &ctx->txn,
                                     ctx->token[1]);
        ctx->marked = 0;
    }

    if (ctx->claimed) {
        ngx_http_txval_verdict_release(r, ctx);
    }
}


/*
 * Once per request: if it goes away with operations in flight, they are
 * detached, and the marks it holds are released.
 */

ngx_int_t
ngx_http_txval_watch(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
{
    ngx_pool_cleanup_t  *cln;

    if (ctx->cleanup_set) {
        return NGX_OK;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_txval_abandon;
    cln->data = ctx;
    ctx->cleanup_set = 1;

    return NGX_OK;
}


static void
ngx_http_txval_abandon(void *data)
{
    ngx_http_txval_ctx_t  *ctx = data;

    if (ctx->answer.posted) {
        ngx_delete_posted_event(&ctx->answer);
    }

    ngx_http_txval_detach(&ctx->redis_op, &ctx->pg_op);

    if (!ctx->done) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                       "txval abandoned before its verdict");

        if (ctx->facts.velocity) {
            ngx_http_txval_velocity_uncount(ctx->request, ctx);
        }
    }

    ngx_http_txval_release(ctx->request, ctx);
}


ngx_int_t
ngx_http_txval_send(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
{
    size_t                        len;
    unsigned                      flags;
    ngx_uint_t                    dry_run;
    ngx_buf_t                    *b;
    const char                   *verdict, *name, *field, *id, *detail;
    ngx_http_txval_loc_conf_t    *tlcf;
    ngx_http_txval_error_info_t  *e;

    static ngx_str_t  json = ngx_string("application/json");

    b = ngx_create_temp_buf(r->pool, NGX_HTTP_TXVAL_BODY_MAX);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    dry_run = ctx->dry_run && ngx_http_txval_refusable(ctx);
    flags = ctx->dry_run ? NGX_HTTP_TXVAL_OUT_DRY_RUN : 0;

    if (ctx->dry_run
        && (ngx_http_txval_add_header(r, "X-Txval-Dry-Run", "1") != NGX_OK))
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->error == NGX_HTTP_TXVAL_ERR_NONE) {
        tlcf = ngx_http_get_module_loc_conf(r, ngx_http_txval_module);

        if (ctx->degraded) {
            flags |= NGX_HTTP_TXVAL_OUT_DEGRADED;
        }

        len = ngx_http_txval_verdict_json(b->pos, NGX_HTTP_TXVAL_BODY_MAX,
                                          ctx->txn.id, ctx->txn.id_len,
                                          &ctx->result,
                                          ngx_http_txval_source_name(
                                                                ctx->source),
                                          flags);

        verdict = ngx_http_txval_verdict_name(ctx);

        r->headers_out.status = (ctx->result.reasons && !dry_run)
                                ? tlcf->decline_status : NGX_HTTP_OK;

        if (ngx_http_txval_add_header(r, "X-Txval-Verdict", verdict)
               != NGX_OK
            || ngx_http_txval_add_header(r, "X-Txval-Source",
                                 ngx_http_txval_source_name(ctx->source))
               != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else {
        e = &ngx_http_txval_errors[ctx->error];
        name = ngx_http_txval_error_name(ctx->error);

        field = NULL;
        id = NULL;
        detail = e->detail;

        switch (ctx->error) {

        case NGX_HTTP_TXVAL_ERR_INVALID_FIELD:
            field = ctx->parse_error.field;
            /* fall through */

        case NGX_HTTP_TXVAL_ERR_INVALID_JSON:
        case NGX_HTTP_TXVAL_ERR_PAN:
            detail = ctx->parse_error.detail;
            break;

        case NGX_HTTP_TXVAL_ERR_CONFLICT:
            id = ctx->txn.id;
            break;

        case NGX_HTTP_TXVAL_ERR_METHOD:
            if (ngx_http_txval_add_header(r, "Allow", "POST") != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
            break;

        case NGX_HTTP_TXVAL_ERR_IN_PROGRESS:
            id = ctx->txn.id;
            /* fall through */

        case NGX_HTTP_TXVAL_ERR_BACKEND:
            if (!dry_run
                && ngx_http_txval_add_header(r, "Retry-After", "1") != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
            break;

        default:
            break;
        }

        /* one line, at info level; never a value from the body */

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "txval: %s: %s%s%s",
                      dry_run ? "dry run, would refuse" : "refused", name,
                      field ? " field " : "", field ? field : "");

        len = ngx_http_txval_error_json(b->pos, NGX_HTTP_TXVAL_BODY_MAX,
                                        name, field, id, detail,
                                        dry_run ? NGX_HTTP_TXVAL_OUT_DRY_RUN
                                                : 0);

        r->headers_out.status = dry_run ? NGX_HTTP_OK : e->status;

        if (dry_run
            && ngx_http_txval_add_header(r, "X-Txval-Verdict", "error")
               != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    b->last = b->pos + len;

    return ngx_http_txval_send_buf(r, r->headers_out.status, &json, b);
}


/* a body in one buffer, with its status and content type */

ngx_int_t
ngx_http_txval_send_buf(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_buf_t *b)
{
    ngx_int_t    rc;
    ngx_chain_t  out;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_txval_add_header(ngx_http_request_t *r, const char *name,
    const char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value.data = (u_char *) value;
    h->value.len = ngx_strlen(value);
    h->lowcase_key = NULL;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


/* a monotonic clock, in nanoseconds */

uint64_t
ngx_http_txval_ns(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}
