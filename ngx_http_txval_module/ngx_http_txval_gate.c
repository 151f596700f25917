
/*
 * txval: gate mode (txval_gate), in the precontent phase.
 *
 * The gate decides whether a request reaches the location's content
 * handler: approved (or let through by dry run), it goes on with the
 * X-Txval-* headers txval sets, after one scan that drops any the client
 * sent; anything else is answered by txval, as in verdict mode. Here too:
 * subrequests that take their main request's outcome, and dry run's
 * switch.
 */


#include "ngx_http_txval_module.h"
#include "ngx_http_txval_prometheus.h"


static ngx_int_t ngx_http_txval_follow_main(ngx_http_request_t *r);
static void ngx_http_txval_outcome(ngx_http_txval_ctx_t *ctx,
    ngx_http_txval_ctx_t *from);
static ngx_int_t ngx_http_txval_gate_verdict(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static ngx_int_t ngx_http_txval_upstream_headers(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx);
static ngx_int_t ngx_http_txval_is_ours(ngx_table_elt_t *h);
static ngx_table_elt_t *ngx_http_txval_header_next(ngx_list_part_t **part,
    ngx_uint_t *i);
static ngx_int_t ngx_http_txval_push_header(ngx_list_t *headers,
    ngx_str_t *key, u_char *value, size_t len);


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
    ctx->dry_run = ngx_http_txval_dry_run_for(r);

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

void
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
    ngx_uint_t        i, ci, ours, copying;
    const char       *s;
    ngx_list_t        old, *list;
    ngx_list_part_t  *part, *cpart;
    ngx_table_elt_t  *h, *ch, *nh;

    static ngx_str_t  verdict_key = ngx_string("X-Txval-Verdict");
    static ngx_str_t  score_key = ngx_string("X-Txval-Risk-Score");
    static ngx_str_t  source_key = ngx_string("X-Txval-Source");
    static ngx_str_t  degraded_key = ngx_string("X-Txval-Degraded");
    static ngx_str_t  dry_run_key = ngx_string("X-Txval-Dry-Run");
    static ngx_str_t  reasons_key = ngx_string("X-Txval-Reasons");
    static ngx_str_t  error_key = ngx_string("X-Txval-Error");

    /*
     * One walk over the headers: nothing is copied until one has to go;
     * then a new list is made (upstream modules copy the whole list; it
     * is built in place, as a list points into itself), with the headers
     * before that one, and the walk goes on into it. A subrequest's list
     * shares its parts with the main request's: it is always copied.
     */

    list = &r->headers_in.headers;
    old = *list;
    copying = 0;

    part = &old.part;
    i = 0;

    while ((h = ngx_http_txval_header_next(&part, &i)) != NULL) {

        ours = ngx_http_txval_is_ours(h);

        if (!copying && (ours || r != r->main)) {

            if (ngx_list_init(list, r->pool, 20, sizeof(ngx_table_elt_t))
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            /* the headers before this one */

            cpart = &old.part;
            ci = 0;

            while ((ch = ngx_http_txval_header_next(&cpart, &ci)) != h) {
                nh = ngx_list_push(list);
                if (nh == NULL) {
                    return NGX_ERROR;
                }

                *nh = *ch;
            }

            copying = 1;
        }

        if (copying && !ours) {
            nh = ngx_list_push(list);
            if (nh == NULL) {
                return NGX_ERROR;
            }

            *nh = *h;
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


/* the header after (*part, *i) in a list, and moves on; NULL at its end */

static ngx_table_elt_t *
ngx_http_txval_header_next(ngx_list_part_t **part, ngx_uint_t *i)
{
    ngx_table_elt_t  *h;

    while (*i >= (*part)->nelts) {
        if ((*part)->next == NULL) {
            return NULL;
        }

        *part = (*part)->next;
        *i = 0;
    }

    h = (*part)->elts;

    return &h[(*i)++];
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


/*
 * What dry run lets through: a declined verdict, a conflict, a copy in
 * progress, a backend failure. A malformed request (405, 415, 400) is
 * refused all the same.
 */

ngx_uint_t
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

ngx_uint_t
ngx_http_txval_dry_run_for(ngx_http_request_t *r)
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
