
/*
 * txval: the request state machine.
 *
 *   check method and content type -> read the body -> parse and validate
 *   -> shm cache -> (backends) -> rules -> store -> respond
 *
 * Every path ends in ngx_http_txval_finish(), which answers the client.
 */


#include "ngx_http_txval_module.h"
#include "ngx_http_txval_cache.h"
#include "ngx_http_txval_redis.h"
#include "ngx_http_txval_pg.h"
#include "ngx_http_txval_lookup.h"
#include "ngx_http_txval_metrics.h"
#include "ngx_http_txval_prometheus.h"


typedef struct {
    ngx_uint_t                  status;
    const char                 *name;
    const char                 *detail;
} ngx_http_txval_error_info_t;


static ngx_int_t ngx_http_txval_start(ngx_http_request_t *r,
    ngx_uint_t gate, ngx_http_txval_ctx_t **pctx);
static ngx_http_txval_error_e ngx_http_txval_check_request(
    ngx_http_request_t *r);
static void ngx_http_txval_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_txval_replay(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static uint64_t *ngx_http_txval_raw(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static void ngx_http_txval_token(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static uint64_t ngx_http_txval_ns(void);
static void ngx_http_txval_validate(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static void ngx_http_txval_lookups(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static void ngx_http_txval_lookup_done(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static void ngx_http_txval_evaluate(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static ngx_int_t ngx_http_txval_redis_claim(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static void ngx_http_txval_redis_claimed(ngx_http_txval_redis_op_t *op);
static ngx_int_t ngx_http_txval_redis_velocity(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static void ngx_http_txval_redis_counted(ngx_http_txval_redis_op_t *op);
static void ngx_http_txval_redis_store(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx, ngx_http_txval_record_t *rec);
static void ngx_http_txval_redis_release(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static size_t ngx_http_txval_verdict_key(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx, u_char *key);
static size_t ngx_http_txval_velocity_key(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx, u_char *key);
static void ngx_http_txval_redis_uncount(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static void ngx_http_txval_redis_tell(ngx_http_request_t *r, int argc,
    const char **argv, size_t *argvlen);
static void ngx_http_txval_release(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static ngx_http_txval_redis_op_t *ngx_http_txval_redis_start(
    ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx,
    ngx_http_txval_redis_done_pt done);
static ngx_int_t ngx_http_txval_pg_lookup(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static void ngx_http_txval_pg_looked_up(ngx_http_txval_pg_op_t *op);
static ngx_int_t ngx_http_txval_watch(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static void ngx_http_txval_abandon(void *data);
static void ngx_http_txval_backend_failed(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx, ngx_uint_t backend);
static void ngx_http_txval_finish(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static ngx_int_t ngx_http_txval_send(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static ngx_int_t ngx_http_txval_gate_verdict(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static ngx_int_t ngx_http_txval_follow_main(ngx_http_request_t *r);
static void ngx_http_txval_outcome(ngx_http_txval_ctx_t *ctx,
    ngx_http_txval_ctx_t *from);
static void ngx_http_txval_wake(ngx_http_txval_ctx_t *ctx);
static ngx_int_t ngx_http_txval_is_ours(ngx_table_elt_t *h);
static ngx_uint_t ngx_http_txval_refusable(ngx_http_txval_ctx_t *ctx);
static ngx_uint_t ngx_http_txval_dry_run(ngx_http_request_t *r);
static ngx_int_t ngx_http_txval_upstream_headers(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static ngx_int_t ngx_http_txval_push_header(ngx_list_t *headers,
    ngx_str_t *key, u_char *value, size_t len);
static ngx_int_t ngx_http_txval_add_header(ngx_http_request_t *r,
    const char *name, const char *value);
static ngx_http_txval_ctx_t *ngx_http_txval_create_ctx(
    ngx_http_request_t *r);


static ngx_http_txval_error_info_t  ngx_http_txval_errors[] = {
    { NGX_HTTP_OK, NULL, NULL },
    { NGX_HTTP_NOT_ALLOWED, "method_not_allowed",
      "only POST is accepted" },
    { NGX_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
      "the Content-Type must be application/json" },
    { NGX_HTTP_BAD_REQUEST, "invalid_json", NULL },
    { NGX_HTTP_BAD_REQUEST, "invalid_field", NULL },
    { NGX_HTTP_BAD_REQUEST, "pan_not_accepted", NULL },
    { NGX_HTTP_CONFLICT, "idempotency_conflict",
      "this id was already used for a transaction with different content" },
    { NGX_HTTP_CONFLICT, "idempotency_in_progress",
      "a transaction with this id is being validated, retry later" },
    { NGX_HTTP_SERVICE_UNAVAILABLE, "backend_unavailable",
      "a backend this transaction needs is unavailable, retry later" }
};


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

static ngx_int_t
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
    ctx->dry_run = ngx_http_txval_dry_run(r);

    (void) clock_gettime(CLOCK_MONOTONIC, &ctx->start);

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


/*
 * Gate mode, in the precontent phase. The body is read here (as
 * auth_request and access_by_lua do): while the validation waits for the
 * body or a backend, the phase handler returns NGX_DONE and
 * ngx_http_txval_finish() resumes the phases. An approved request goes on
 * to the location's content handler with its body untouched; any other
 * outcome is answered here, exactly as in verdict mode.
 *
 * The gate is inherited (nested locations, "if" and "limit_except"
 * blocks) and holds for every request that reaches the phase: internal
 * redirects start anew (nginx clears the module's context); a subrequest
 * is validated on the body it carries, which is what its upstream gets:
 * the main request's (mirror, SSI), none (auth_request), or one of its own
 * (Lua, njs, the echo module). One that carries the main request's body
 * takes the main request's outcome when txval validated it.
 */

ngx_int_t
ngx_http_txval_gate_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_http_txval_ctx_t       *ctx;
    ngx_http_txval_loc_conf_t  *tlcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_txval_module);

    /*
     * Verdict mode's content handler validates; but an "if" or
     * "limit_except" block of a "txval" location that has a content
     * handler of its own (proxy_pass) does not get it, so the gate a
     * "txval" location inherits still holds there.
     */

    if (!tlcf->gate || r->content_handler == ngx_http_txval_handler) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_txval_module);

    if (ctx) {
        /* phases run again: still waiting, or done */
        return ctx->done ? ngx_http_txval_gate_verdict(r, ctx) : NGX_DONE;
    }

    if (r != r->main
        && r->request_body != NULL
        && r->request_body == r->main->request_body
        && ngx_http_get_module_ctx(r->main, ngx_http_txval_module))
    {
        return ngx_http_txval_follow_main(r);
    }

    rc = ngx_http_txval_start(r, 1, &ctx);

    if (rc == NGX_OK) {
        /*
         * Give back the hold the body read took now, as
         * ngx_http_mirror_module does: when reading the rest of the body
         * fails (413, 400), nginx finalizes the request itself and must
         * then be able to close it.
         */
        r->main->count--;

        if (ctx->failed) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (rc == NGX_DECLINED || (rc == NGX_OK && ctx->done)) {
        /* refused early, or the body was there and nothing had to wait */
        return ngx_http_txval_gate_verdict(r, ctx);
    }

    if (rc != NGX_OK) {
        return rc;
    }

    ctx->waiting = 1;

    return NGX_DONE;
}


/*
 * A subrequest with the body of a main request txval validates or
 * validated: the same body, so the same outcome; it waits for it if need
 * be.
 */

static ngx_int_t
ngx_http_txval_follow_main(ngx_http_request_t *r)
{
    ngx_http_txval_ctx_t  *ctx, *mctx;

    mctx = ngx_http_get_module_ctx(r->main, ngx_http_txval_module);

    ctx = ngx_http_txval_create_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->gate = 1;
    ctx->dry_run = ngx_http_txval_dry_run(r);

    if (mctx->done) {
        ngx_http_txval_outcome(ctx, mctx);
        return ngx_http_txval_gate_verdict(r, ctx);
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "txval subrequest waits for the main request");

    ctx->waiting = 1;
    ctx->next = mctx->waiters;
    mctx->waiters = ctx;

    return NGX_DONE;
}


/* what a subrequest takes of its main request's validation */

static void
ngx_http_txval_outcome(ngx_http_txval_ctx_t *ctx, ngx_http_txval_ctx_t *from)
{
    ctx->txn = from->txn;
    ctx->result = from->result;
    ctx->parse_error = from->parse_error;

    if (from->parse_error.detail == from->parse_error.buf) {
        ctx->parse_error.detail = ctx->parse_error.buf;
    }

    ctx->error = from->error;
    ctx->source = from->source;
    ctx->elapsed_ns = from->elapsed_ns;
    ctx->parsed = from->parsed;
    ctx->fields = from->fields;
    ctx->body = from->body;
    ctx->body_len = from->body_len;
    ctx->map = from->map;
    ctx->ns = from->ns;
    ngx_memcpy(ctx->values, from->values, sizeof(ctx->values));
    ctx->degraded = from->degraded;
    ctx->done = 1;
}


/* the main request is done: its waiting subrequests go on */

static void
ngx_http_txval_wake(ngx_http_txval_ctx_t *ctx)
{
    ngx_http_request_t    *sr;
    ngx_http_txval_ctx_t  *w;

    for (w = ctx->waiters; w; w = w->next) {
        ngx_http_txval_outcome(w, ctx);
        w->waiting = 0;

        sr = w->request;
        sr->write_event_handler = ngx_http_core_run_phases;
        (void) ngx_http_post_request(sr, NULL);
    }

    ctx->waiters = NULL;
}


/* approved: on to the content handler; anything else: answered here */

static ngx_int_t
ngx_http_txval_gate_verdict(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
{
    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "txval gate: error:%d reasons:%uD",
                   ctx->error, ctx->result.reasons);

    if ((ctx->error == NGX_HTTP_TXVAL_ERR_NONE && ctx->result.reasons == 0)
        || (ctx->dry_run && ngx_http_txval_refusable(ctx)))
    {
        if (ngx_http_txval_upstream_headers(r, ctx) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_DECLINED;
    }

    ngx_http_finalize_request(r, ngx_http_txval_send(r, ctx));

    return NGX_DONE;
}


/*
 * The upstream sees X-Txval-Verdict, X-Txval-Risk-Score, X-Txval-Source
 * (and X-Txval-Degraded) from us only: any X-Txval-* the client sent is
 * dropped. The list is built anew when there is one to drop, and always
 * for a subrequest, whose list shares its parts with the main request's.
 */

static ngx_int_t
ngx_http_txval_upstream_headers(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx)
{
    u_char           *p;
    size_t            len;
    ngx_uint_t        i, rebuild;
    const char       *s;
    ngx_list_t        old, *list;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *nh;

    static ngx_str_t  verdict_key = ngx_string("X-Txval-Verdict");
    static ngx_str_t  score_key = ngx_string("X-Txval-Risk-Score");
    static ngx_str_t  source_key = ngx_string("X-Txval-Source");
    static ngx_str_t  degraded_key = ngx_string("X-Txval-Degraded");
    static ngx_str_t  dry_run_key = ngx_string("X-Txval-Dry-Run");
    static ngx_str_t  reasons_key = ngx_string("X-Txval-Reasons");
    static ngx_str_t  error_key = ngx_string("X-Txval-Error");

    rebuild = (r != r->main);
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; !rebuild; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        rebuild = ngx_http_txval_is_ours(&h[i]);
    }

    list = &r->headers_in.headers;

    if (rebuild) {
        /*
         * A new list without them (upstream modules copy the whole list),
         * built in place: a list points into itself, so it is not copied.
         */

        old = *list;

        if (ngx_list_init(list, r->pool, 20, sizeof(ngx_table_elt_t))
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        part = &old.part;
        h = part->elts;

        for (i = 0; /* void */ ; i++) {

            if (i >= part->nelts) {
                if (part->next == NULL) {
                    break;
                }

                part = part->next;
                h = part->elts;
                i = 0;
            }

            if (ngx_http_txval_is_ours(&h[i])) {
                continue;
            }

            nh = ngx_list_push(list);
            if (nh == NULL) {
                return NGX_ERROR;
            }

            *nh = h[i];
        }
    }

    /* the (would-be) verdict */

    s = ngx_http_txval_verdict_name(ctx);

    if (ngx_http_txval_push_header(list, &verdict_key, (u_char *) s,
                                   ngx_strlen(s)) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->error != NGX_HTTP_TXVAL_ERR_NONE) {
        /* dry run: what would have been refused, and why */
        s = ngx_http_txval_error_name(ctx->error);

        if (ngx_http_txval_push_header(list, &error_key, (u_char *) s,
                                       ngx_strlen(s)) != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else {
        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        len = ngx_sprintf(p, "%uD", ctx->result.risk_score) - p;
        s = ngx_http_txval_source_name(ctx->source);

        if (ngx_http_txval_push_header(list, &score_key, p, len) != NGX_OK
            || ngx_http_txval_push_header(list, &source_key, (u_char *) s,
                                          ngx_strlen(s)) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ctx->result.reasons && ctx->error == NGX_HTTP_TXVAL_ERR_NONE) {
        p = ngx_pnalloc(r->pool, NGX_HTTP_TXVAL_BODY_MAX);
        if (p == NULL) {
            return NGX_ERROR;
        }

        len = ngx_http_txval_reasons_list(p, NGX_HTTP_TXVAL_BODY_MAX,
                                          ctx->result.reasons, ',', 0);

        if (ngx_http_txval_push_header(list, &reasons_key, p, len) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ctx->degraded
        && ngx_http_txval_push_header(list, &degraded_key, (u_char *) "true",
                                      sizeof("true") - 1) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->dry_run
        && ngx_http_txval_push_header(list, &dry_run_key, (u_char *) "1", 1)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * What dry run lets through: a declined verdict, a conflict, a copy in
 * progress, a backend failure. A malformed request (405, 415, 400) is
 * refused all the same.
 */

static ngx_uint_t
ngx_http_txval_refusable(ngx_http_txval_ctx_t *ctx)
{
    switch (ctx->error) {

    case NGX_HTTP_TXVAL_ERR_NONE:
        return ctx->result.reasons != 0;

    case NGX_HTTP_TXVAL_ERR_CONFLICT:
    case NGX_HTTP_TXVAL_ERR_IN_PROGRESS:
    case NGX_HTTP_TXVAL_ERR_BACKEND:
        return 1;

    default:
        return 0;
    }
}


/* txval_dry_run: on, off, or a value that is not empty and not "0" */

static ngx_uint_t
ngx_http_txval_dry_run(ngx_http_request_t *r)
{
    ngx_str_t                   value;
    ngx_http_txval_loc_conf_t  *tlcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_txval_module);

    if (tlcf->dry_run_value == NULL) {
        return tlcf->dry_run == 1;
    }

    if (ngx_http_complex_value(r, tlcf->dry_run_value, &value) != NGX_OK) {
        return 0;
    }

    return value.len != 0 && !(value.len == 1 && value.data[0] == '0');
}


/*
 * X-Txval-*, in any case, and with "_" for "-": with underscores_in_headers
 * on, X_Txval_Verdict reaches the upstream, and CGI-style backends
 * (FastCGI, uwsgi, SCGI, WSGI) read it as X-Txval-Verdict.
 */

static ngx_int_t
ngx_http_txval_is_ours(ngx_table_elt_t *h)
{
    u_char      c;
    ngx_uint_t  i;

    static u_char  prefix[] = "x-txval-";

    if (h->key.len < sizeof(prefix) - 1) {
        return 0;
    }

    for (i = 0; i < sizeof(prefix) - 1; i++) {
        c = ngx_tolower(h->key.data[i]);

        if (c != prefix[i] && !(c == '_' && prefix[i] == '-')) {
            return 0;
        }
    }

    return 1;
}


static ngx_int_t
ngx_http_txval_push_header(ngx_list_t *headers, ngx_str_t *key,
    u_char *value, size_t len)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->key = *key;
    h->value.data = value;
    h->value.len = len;

    h->lowcase_key = ngx_pnalloc(headers->pool, key->len);
    if (h->lowcase_key == NULL) {
        return NGX_ERROR;
    }

    h->hash = ngx_hash_strlow(h->lowcase_key, key->data, key->len);
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


static ngx_http_txval_ctx_t *
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

    (void) clock_gettime(CLOCK_MONOTONIC, &ctx->start);

    /* a subrequest's: what its upstream gets, not the main request's */

    if (ngx_http_txval_body_bytes(r, &data, &len) != NGX_OK) {

        if (ctx->gate && !ctx->waiting) {
            /* still inside the phase handler, which answers */
            ctx->failed = 1;
            return;
        }

        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "txval body: %uz bytes", len);

    ctx->body = data;
    ctx->body_len = len;

    if (ngx_http_txval_mapping_request(r, ctx) != NGX_OK) {

        if (ctx->gate && !ctx->waiting) {
            ctx->failed = 1;
            return;
        }

        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
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

static uint64_t *
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


/* a monotonic clock, in nanoseconds */

static uint64_t
ngx_http_txval_ns(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
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
        if (ngx_http_txval_redis_claim(r, ctx) == NGX_OK) {
            return;     /* ngx_http_txval_redis_claimed() goes on */
        }

        ngx_http_txval_metrics_redis_lookup(NGX_HTTP_TXVAL_M_ERROR);
    }

    ngx_http_txval_lookups(r, ctx);
}


/* not a replay: ask the backends what the rules need, all at once */

static void
ngx_http_txval_lookups(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
{
    ngx_http_txval_loc_conf_t   *tlcf;
    ngx_http_txval_main_conf_t  *tmcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_txval_module);
    tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

    ctx->pending = 1;       /* held until every lookup is started */

    if (tmcf->pg) {
        switch (ngx_http_txval_pg_lookup(r, ctx)) {

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
            && ngx_http_txval_redis_velocity(r, ctx) == NGX_OK)
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


static void
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

static void
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
 * SET {prefix}v:{id} p;<token> NX GET PX <mark ttl>: the verdict if there
 * is one, else this request's mark, in one round trip (Redis 7)
 */

static ngx_int_t
ngx_http_txval_redis_claim(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
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

    op = ngx_http_txval_redis_start(r, ctx, ngx_http_txval_redis_claimed);
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

    return NGX_OK;
}


static void
ngx_http_txval_redis_claimed(ngx_http_txval_redis_op_t *op)
{
    ngx_connection_t            *c;
    ngx_http_request_t          *r;
    ngx_http_txval_ctx_t        *ctx;
    ngx_http_txval_record_t      rec;
    ngx_http_txval_main_conf_t  *tmcf;

    ctx = op->data;
    ctx->redis_op = NULL;
    r = ctx->request;
    c = r->connection;

    ngx_http_txval_metrics_backend_duration(NGX_HTTP_TXVAL_M_REDIS,
                                        ngx_http_txval_ns() - ctx->redis_at);

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
        || !ngx_http_txval_record_decode(op->value, op->value_len, &rec))
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


/* INCR and EXPIRE {prefix}vel:{card_token}:{window}, one round trip */

static ngx_int_t
ngx_http_txval_redis_velocity(ngx_http_request_t *r,
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

    op = ngx_http_txval_redis_start(r, ctx, ngx_http_txval_redis_counted);
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
ngx_http_txval_redis_counted(ngx_http_txval_redis_op_t *op)
{
    ngx_connection_t      *c;
    ngx_http_request_t    *r;
    ngx_http_txval_ctx_t  *ctx;

    ctx = op->data;
    ctx->redis_op = NULL;
    r = ctx->request;
    c = r->connection;

    ngx_http_txval_metrics_backend_duration(NGX_HTTP_TXVAL_M_REDIS,
                                        ngx_http_txval_ns() - ctx->redis_at);

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


/*
 * DECR of a velocity count this request made, when the request ends
 * refused after all (503, 409): only transactions with a verdict count.
 */

static void
ngx_http_txval_redis_uncount(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
{
    u_char       key[NGX_HTTP_TXVAL_KEY_MAX];
    size_t       argvlen[2];
    const char  *argv[2];

    ctx->facts.velocity = 0;

    argv[0] = "DECR";
    argvlen[0] = 4;
    argv[1] = (const char *) key;
    argvlen[1] = ngx_http_txval_velocity_key(r, ctx, key);

    ngx_http_txval_redis_tell(r, 2, argv, argvlen);
}


/* the verdict replaces this request's mark in Redis (a script) */

static void
ngx_http_txval_redis_store(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx,
    ngx_http_txval_record_t *rec)
{
    u_char                       key[NGX_HTTP_TXVAL_KEY_MAX];
    u_char                       val[64], ttl[NGX_TIME_T_LEN];
    u_char                       mark[NGX_HTTP_TXVAL_PENDING_LEN];
    size_t                       argvlen[7];
    ngx_msec_t                   ms;
    const char                  *argv[7];
    ngx_http_txval_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

    ms = tmcf->cache ? tmcf->cache->ttl : NGX_HTTP_TXVAL_TTL_DEFAULT;

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = ngx_http_txval_store_script;
    argvlen[1] = sizeof(ngx_http_txval_store_script) - 1;
    argv[2] = "1";
    argvlen[2] = 1;
    argv[3] = (const char *) key;
    argvlen[3] = ngx_http_txval_verdict_key(r, ctx, key);
    argv[4] = (const char *) val;
    argvlen[4] = ngx_http_txval_record_encode(val, sizeof(val), rec);
    argv[5] = (const char *) ttl;
    argvlen[5] = ngx_sprintf(ttl, "%M", (ms + 999) / 1000) - ttl;

    if (ctx->seen) {
        argv[6] = (const char *) ctx->seen;
        argvlen[6] = ctx->seen_len;

    } else {
        argv[6] = (const char *) mark;
        argvlen[6] = ngx_http_txval_pending_encode(mark, sizeof(mark),
                                                   ctx->token);
    }

    ngx_http_txval_redis_tell(r, 7, argv, argvlen);

    ctx->claimed = 0;
}


/* this request's mark in Redis is dropped, if it is still there */

static void
ngx_http_txval_redis_release(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
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

    ngx_http_txval_redis_tell(r, 5, argv, argvlen);

    ctx->claimed = 0;
}


/* one command that nobody waits for */

static void
ngx_http_txval_redis_tell(ngx_http_request_t *r, int argc, const char **argv,
    size_t *argvlen)
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
    }
}


/*
 * An operation that reports to this request. If the request goes away
 * first, its pool cleanup detaches the operation, which then completes
 * without telling anyone.
 */

static ngx_http_txval_redis_op_t *
ngx_http_txval_redis_start(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx,
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

static ngx_int_t
ngx_http_txval_pg_lookup(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
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

    op->done = ngx_http_txval_pg_looked_up;
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
ngx_http_txval_pg_looked_up(ngx_http_txval_pg_op_t *op)
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
 * Once per request: if it goes away with operations in flight, they are
 * detached, and the marks it holds are released.
 */

static ngx_int_t
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

    if (ctx->redis_op) {
        ctx->redis_op->data = NULL;
        ctx->redis_op = NULL;
    }

    if (ctx->pg_op) {
        ngx_http_txval_pg_abandon(ctx->pg_op);
        ctx->pg_op = NULL;
    }

    if (!ctx->done) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                       "txval abandoned before its verdict");

        if (ctx->facts.velocity) {
            ngx_http_txval_redis_uncount(ctx->request, ctx);
        }
    }

    ngx_http_txval_release(ctx->request, ctx);
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
        ngx_http_txval_redis_release(r, ctx);
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
        ngx_http_txval_redis_store(r, ctx, &rec);
    }

    ngx_http_txval_finish(r, ctx);
}


static void
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
        ngx_http_txval_redis_uncount(r, ctx);
    }

    ngx_http_txval_release(r, ctx);

    ngx_http_txval_metrics_request(ctx);

    if (ctx->waiters) {
        ngx_http_txval_wake(ctx);
    }

    if (!ctx->gate) {
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


static ngx_int_t
ngx_http_txval_send(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
{
    size_t                        len;
    unsigned                      flags;
    ngx_int_t                     rc;
    ngx_uint_t                    dry_run;
    ngx_buf_t                    *b;
    ngx_chain_t                   out;
    const char                   *verdict, *field, *id, *detail;
    ngx_http_txval_loc_conf_t    *tlcf;
    ngx_http_txval_error_info_t  *e;

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
                      dry_run ? "dry run, would refuse" : "refused", e->name,
                      field ? " field " : "", field ? field : "");

        len = ngx_http_txval_error_json(b->pos, NGX_HTTP_TXVAL_BODY_MAX,
                                        e->name, field, id, detail,
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
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_int_t
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
