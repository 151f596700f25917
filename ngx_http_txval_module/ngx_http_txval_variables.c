
/*
 * txval: the $txval_* variables, for log_format, add_header and
 * proxy_set_header.
 */


#include "ngx_http_txval_module.h"
#include "ngx_http_txval_prometheus.h"


static ngx_int_t ngx_http_txval_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_uint_t ngx_http_txval_fields(ngx_http_txval_ctx_t *ctx);


typedef enum {
    NGX_HTTP_TXVAL_VAR_VERDICT = 0,
    NGX_HTTP_TXVAL_VAR_REASONS,
    NGX_HTTP_TXVAL_VAR_RISK_SCORE,
    NGX_HTTP_TXVAL_VAR_SOURCE,
    NGX_HTTP_TXVAL_VAR_ID,
    NGX_HTTP_TXVAL_VAR_TIME,
    NGX_HTTP_TXVAL_VAR_DEGRADED,
    NGX_HTTP_TXVAL_VAR_ERROR,
    NGX_HTTP_TXVAL_VAR_DRY_RUN,
    NGX_HTTP_TXVAL_VAR_MERCHANT_ID,
    NGX_HTTP_TXVAL_VAR_CURRENCY,
    NGX_HTTP_TXVAL_VAR_AMOUNT
} ngx_http_txval_var_e;


static ngx_http_variable_t  ngx_http_txval_vars[] = {

    { ngx_string("txval_verdict"), NULL, ngx_http_txval_variable,
      NGX_HTTP_TXVAL_VAR_VERDICT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("txval_reasons"), NULL, ngx_http_txval_variable,
      NGX_HTTP_TXVAL_VAR_REASONS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("txval_risk_score"), NULL, ngx_http_txval_variable,
      NGX_HTTP_TXVAL_VAR_RISK_SCORE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("txval_source"), NULL, ngx_http_txval_variable,
      NGX_HTTP_TXVAL_VAR_SOURCE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("txval_id"), NULL, ngx_http_txval_variable,
      NGX_HTTP_TXVAL_VAR_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("txval_time"), NULL, ngx_http_txval_variable,
      NGX_HTTP_TXVAL_VAR_TIME, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("txval_degraded"), NULL, ngx_http_txval_variable,
      NGX_HTTP_TXVAL_VAR_DEGRADED, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("txval_error"), NULL, ngx_http_txval_variable,
      NGX_HTTP_TXVAL_VAR_ERROR, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("txval_dry_run"), NULL, ngx_http_txval_variable,
      NGX_HTTP_TXVAL_VAR_DRY_RUN, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("txval_merchant_id"), NULL, ngx_http_txval_variable,
      NGX_HTTP_TXVAL_VAR_MERCHANT_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("txval_currency"), NULL, ngx_http_txval_variable,
      NGX_HTTP_TXVAL_VAR_CURRENCY, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("txval_amount"), NULL, ngx_http_txval_variable,
      NGX_HTTP_TXVAL_VAR_AMOUNT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static const char  *ngx_http_txval_sources[] = {
    "computed",
    "shm",
    "redis"
};


ngx_int_t
ngx_http_txval_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_txval_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


const char *
ngx_http_txval_source_name(ngx_http_txval_source_e source)
{
    return ngx_http_txval_sources[source];
}


const char *
ngx_http_txval_verdict_name(ngx_http_txval_ctx_t *ctx)
{
    if (ctx->error != NGX_HTTP_TXVAL_ERR_NONE) {
        return "error";
    }

    return ctx->result.reasons ? "declined" : "approved";
}


static ngx_int_t
ngx_http_txval_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char                *p;
    size_t                 len;
    const char            *s;
    ngx_http_txval_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_txval_module);

    if (ctx == NULL || !ctx->done) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = NULL;
    p = NULL;
    len = 0;

    switch (data) {

    case NGX_HTTP_TXVAL_VAR_VERDICT:
        s = ngx_http_txval_verdict_name(ctx);
        break;

    case NGX_HTTP_TXVAL_VAR_REASONS:
        if (ctx->error != NGX_HTTP_TXVAL_ERR_NONE) {
            s = "";
            break;
        }

        p = ngx_pnalloc(r->pool, NGX_HTTP_TXVAL_BODY_MAX);
        if (p == NULL) {
            return NGX_ERROR;
        }

        len = ngx_http_txval_reasons_list(p, NGX_HTTP_TXVAL_BODY_MAX,
                                          ctx->result.reasons, ',', 0);
        break;

    case NGX_HTTP_TXVAL_VAR_RISK_SCORE:
        if (ctx->error != NGX_HTTP_TXVAL_ERR_NONE) {
            s = "";
            break;
        }

        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        len = ngx_sprintf(p, "%uD", ctx->result.risk_score) - p;
        break;

    case NGX_HTTP_TXVAL_VAR_SOURCE:
        s = (ctx->error != NGX_HTTP_TXVAL_ERR_NONE)
            ? "" : ngx_http_txval_source_name(ctx->source);
        break;

    case NGX_HTTP_TXVAL_VAR_ID:
        s = ctx->parsed ? ctx->txn.id : "";
        break;

    case NGX_HTTP_TXVAL_VAR_DEGRADED:
        s = ctx->degraded ? "1" : "";
        break;

    case NGX_HTTP_TXVAL_VAR_ERROR:
        s = ngx_http_txval_error_name(ctx->error);
        break;

    case NGX_HTTP_TXVAL_VAR_DRY_RUN:
        s = ctx->dry_run ? "1" : "";
        break;

    case NGX_HTTP_TXVAL_VAR_MERCHANT_ID:
        s = ngx_http_txval_fields(ctx) ? ctx->txn.merchant_id : "";
        break;

    case NGX_HTTP_TXVAL_VAR_CURRENCY:
        s = ngx_http_txval_fields(ctx) ? ctx->txn.currency : "";
        break;

    case NGX_HTTP_TXVAL_VAR_AMOUNT:
        if (!ngx_http_txval_fields(ctx)) {
            s = "";
            break;
        }

        p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        len = ngx_sprintf(p, "%L", (int64_t) ctx->txn.amount) - p;
        break;

    default: /* NGX_HTTP_TXVAL_VAR_TIME */
        p = ngx_pnalloc(r->pool, NGX_INT64_LEN + 4);
        if (p == NULL) {
            return NGX_ERROR;
        }

        /* milliseconds with microseconds, e.g. 0.412 */
        len = ngx_sprintf(p, "%uL.%03uL", ctx->elapsed_ns / 1000000,
                          ctx->elapsed_ns / 1000 % 1000) - p;
        break;
    }

    if (s) {
        p = (u_char *) s;
        len = ngx_strlen(s);
    }

    v->data = p;
    v->len = len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * The transaction's fields, for the decision log: known when the body was
 * parsed; a replay of the very same bytes, answered without parsing, is
 * parsed here, when a log asks for them.
 */

static ngx_uint_t
ngx_http_txval_fields(ngx_http_txval_ctx_t *ctx)
{
    ngx_http_txval_parse_error_t  err;

    if (ctx->fields) {
        return 1;
    }

    if (!ctx->parsed || ctx->body == NULL) {
        return 0;
    }

    if (ngx_http_txval_txn_parse(ctx->body, ctx->body_len, ctx->map,
                                 ctx->values, &ctx->txn, &err)
        != NGX_HTTP_TXVAL_PARSE_OK)
    {
        return 0;
    }

    ctx->fields = 1;

    return 1;
}
