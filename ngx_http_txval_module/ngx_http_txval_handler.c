
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


typedef struct {
    ngx_uint_t                  status;
    const char                 *name;
    const char                 *detail;
} ngx_http_txval_error_info_t;


static ngx_http_txval_error_e ngx_http_txval_check_request(
    ngx_http_request_t *r);
static void ngx_http_txval_body_handler(ngx_http_request_t *r);
static void ngx_http_txval_validate(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static void ngx_http_txval_evaluate(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static void ngx_http_txval_finish(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static ngx_int_t ngx_http_txval_send(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
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
    { NGX_HTTP_SERVICE_UNAVAILABLE, "backend_unavailable",
      "a backend this transaction needs is unavailable, retry later" }
};


ngx_int_t
ngx_http_txval_handler(ngx_http_request_t *r)
{
    ngx_int_t              rc;
    ngx_http_txval_ctx_t  *ctx;

    ctx = ngx_http_txval_create_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->error = ngx_http_txval_check_request(r);

    if (ctx->error != NGX_HTTP_TXVAL_ERR_NONE) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        ctx->done = 1;

        return ngx_http_txval_send(r, ctx);
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_txval_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
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


static ngx_http_txval_error_e
ngx_http_txval_check_request(ngx_http_request_t *r)
{
    u_char     *p, *last;
    ngx_str_t  *type;

    if (r->method != NGX_HTTP_POST) {
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
    u_char                *data;
    size_t                 len;
    ngx_http_txval_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_txval_module);

    (void) clock_gettime(CLOCK_MONOTONIC, &ctx->start);

    if (ngx_http_txval_body_bytes(r, &data, &len) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    switch (ngx_http_txval_txn_parse(data, len, &ctx->txn,
                                     &ctx->parse_error))
    {
    case NGX_HTTP_TXVAL_PARSE_OK:
        ctx->parsed = 1;
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


static void
ngx_http_txval_validate(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_http_txval_record_t      rec;
    ngx_http_txval_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

    if (tmcf->cache) {
        rc = ngx_http_txval_cache_lookup(tmcf->cache, &ctx->txn, &rec);

        if (rc == NGX_OK) {
            ctx->result.reasons = rec.reasons;
            ctx->result.risk_score = rec.risk_score;
            ctx->source = NGX_HTTP_TXVAL_SOURCE_SHM;
            ngx_http_txval_finish(r, ctx);
            return;
        }

        if (rc == NGX_BUSY) {
            ctx->error = NGX_HTTP_TXVAL_ERR_CONFLICT;
            ngx_http_txval_finish(r, ctx);
            return;
        }
    }

    ngx_http_txval_evaluate(r, ctx);
}


/* all facts are in: apply the rules, remember the verdict, answer */

static void
ngx_http_txval_evaluate(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
{
    ngx_http_txval_record_t      rec;
    ngx_http_txval_loc_conf_t   *tlcf;
    ngx_http_txval_main_conf_t  *tmcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_txval_module);
    tmcf = ngx_http_get_module_main_conf(r, ngx_http_txval_module);

    ngx_http_txval_rules_eval(&ctx->txn, &tlcf->policy, &ctx->facts,
                              &ctx->result);

    ctx->source = NGX_HTTP_TXVAL_SOURCE_COMPUTED;

    if (tmcf->cache && !ctx->degraded) {
        rec.fingerprint = ctx->txn.fingerprint;
        rec.reasons = (uint16_t) ctx->result.reasons;
        rec.risk_score = (uint8_t) ctx->result.risk_score;

        ngx_http_txval_cache_store(tmcf->cache, &ctx->txn, &rec,
                                   r->connection->log);
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

    ngx_http_finalize_request(r, ngx_http_txval_send(r, ctx));
}


static ngx_int_t
ngx_http_txval_send(ngx_http_request_t *r, ngx_http_txval_ctx_t *ctx)
{
    size_t                        len;
    ngx_int_t                     rc;
    ngx_buf_t                    *b;
    ngx_chain_t                   out;
    const char                   *verdict, *field, *id, *detail;
    ngx_http_txval_loc_conf_t    *tlcf;
    ngx_http_txval_error_info_t  *e;

    b = ngx_create_temp_buf(r->pool, NGX_HTTP_TXVAL_BODY_MAX);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->error == NGX_HTTP_TXVAL_ERR_NONE) {
        tlcf = ngx_http_get_module_loc_conf(r, ngx_http_txval_module);

        len = ngx_http_txval_verdict_json(b->pos, NGX_HTTP_TXVAL_BODY_MAX,
                                          ctx->txn.id, ctx->txn.id_len,
                                          &ctx->result,
                                          ngx_http_txval_source_name(
                                                                ctx->source),
                                          ctx->degraded);

        verdict = ngx_http_txval_verdict_name(ctx);

        r->headers_out.status = ctx->result.reasons ? tlcf->decline_status
                                                    : NGX_HTTP_OK;

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

        case NGX_HTTP_TXVAL_ERR_BACKEND:
            if (ngx_http_txval_add_header(r, "Retry-After", "1") != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
            break;

        default:
            break;
        }

        /* one line, at info level; never a value from the body */

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "txval: refused: %s%s%s", e->name,
                      field ? " field " : "", field ? field : "");

        len = ngx_http_txval_error_json(b->pos, NGX_HTTP_TXVAL_BODY_MAX,
                                        e->name, field, id, detail);

        r->headers_out.status = e->status;
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
