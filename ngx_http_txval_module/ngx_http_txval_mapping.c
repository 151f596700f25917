
/*
 * txval: where the transaction's fields are read, and the id namespace.
 *
 * txval_field FIELD SOURCE: SOURCE is a JSON pointer into the body
 * (compiled when the configuration is read, ngx_http_txval_txn.c) or a
 * value with variables, evaluated per request; inherited field by field.
 * txval_amount_format, txval_currency_case (enums, in module.c's table)
 * say how the amount and the currency found are read. txval_namespace: a
 * name that keeps the ids of one API apart from another's, in the cache
 * zone and in Redis.
 *
 * The merge builds one mapping per level that changes something and
 * shares the level above's otherwise; a request evaluates only the
 * variables its mapping reads (ngx_http_txval_mapping_request()).
 */


#include "ngx_http_txval_module.h"


static ngx_http_txval_fields_t *ngx_http_txval_fields_create(
    ngx_conf_t *cf);
static char *ngx_http_txval_field_value(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_txval_fields_t *fields, ngx_int_t n, ngx_str_t *source);


/* txval_field FIELD SOURCE; */

char *
ngx_http_txval_field(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_txval_loc_conf_t *tlcf = conf;

    ngx_int_t                 n;
    ngx_str_t                *value;
    const char               *why;
    ngx_http_txval_fields_t  *fields;

    value = cf->args->elts;

    n = ngx_http_txval_mapping_field(value[1].data, value[1].len);

    if (n < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown field \"%V\" in \"%V\" directive, "
                           "it must be id, amount, currency, merchant_id, "
                           "card_token, card_bin or country",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (tlcf->fields == NULL) {
        tlcf->fields = ngx_http_txval_fields_create(cf);
        if (tlcf->fields == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    fields = tlcf->fields;

    if (fields->set & (1 << n)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate field \"%V\" in \"%V\" directive",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (value[2].len && value[2].data[0] == '/') {

        if (ngx_http_txval_mapping_pointer(&fields->map, n, value[2].data,
                                           value[2].len, &why)
            != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid JSON pointer \"%V\" in \"%V\" "
                               "directive, %s", &value[2], &cmd->name, why);
            return NGX_CONF_ERROR;
        }

    } else if (ngx_http_txval_field_value(cf, cmd, fields, n, &value[2])
               != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    fields->set |= 1 << n;

    return NGX_CONF_OK;
}


/*
 * A source that is not a pointer: a value with variables, or a constant.
 * A constant with a '/' in it is taken for a pointer that lost its
 * leading '/' (no field's value may hold one); another constant must
 * have its field's form.
 */

static char *
ngx_http_txval_field_value(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_txval_fields_t *fields, ngx_int_t n, ngx_str_t *source)
{
    const char                        *why;
    ngx_http_compile_complex_value_t   ccv;

    if (ngx_http_script_variables_count(source) == 0) {

        if (ngx_strlchr(source->data, source->data + source->len, '/')) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid JSON pointer \"%V\" in \"%V\" "
                               "directive, it must start with \"/\"",
                               source, &cmd->name);
            return NGX_CONF_ERROR;
        }

        if (source->len == 0) {
            if (n <= NGX_HTTP_TXVAL_FIELD_CARD_TOKEN) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid value \"\" in \"%V\" directive, "
                                   "%s is required", &cmd->name,
                                   ngx_http_txval_field_name(n));
                return NGX_CONF_ERROR;
            }

            /* an optional field that is never read */

        } else if (ngx_http_txval_mapping_check(n, source->data,
                                                source->len, &why)
                   != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"%V\" directive, "
                               "%s %s", source, &cmd->name,
                               ngx_http_txval_field_name(n), why);
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_http_txval_mapping_value(&fields->map, n, source->data,
                                     source->len, &why)
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, %s",
                           source, &cmd->name, why);
        return NGX_CONF_ERROR;
    }

    fields->values[n] = ngx_palloc(cf->pool,
                                   sizeof(ngx_http_complex_value_t));
    if (fields->values[n] == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = source;
    ccv.complex_value = fields->values[n];

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* txval_namespace NAME; 1 to 32 of A-Z a-z 0-9 _ - */

char *
ngx_http_txval_namespace(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_txval_loc_conf_t *tlcf = conf;

    u_char      c;
    ngx_uint_t  i;
    ngx_str_t  *value;

    if (tlcf->ns.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 0; i < value[1].len; i++) {
        c = value[1].data[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || (c >= '0' && c <= '9') || c == '_' || c == '-'))
        {
            break;
        }
    }

    if (value[1].len == 0 || value[1].len > NGX_HTTP_TXVAL_NAMESPACE_MAX
        || i < value[1].len)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, "
                           "it must be 1 to %d characters from "
                           "A-Z a-z 0-9 _ -", &value[1], &cmd->name,
                           NGX_HTTP_TXVAL_NAMESPACE_MAX);
        return NGX_CONF_ERROR;
    }

    tlcf->ns = value[1];

    return NGX_CONF_OK;
}


/*
 * The level's mapping: the level above's when this one changes nothing,
 * else a new one, each field from this level's txval_field or else from
 * the level above. The http level's own settings are not merged (it has
 * no level above): its fields are read as they were set.
 */

char *
ngx_http_txval_merge_mapping(ngx_conf_t *cf, ngx_http_txval_loc_conf_t *prev,
    ngx_http_txval_loc_conf_t *conf)
{
    ngx_uint_t                n;
    ngx_http_txval_fields_t  *fields, *from;

    ngx_conf_merge_uint_value(conf->amount_format, prev->amount_format,
                              NGX_HTTP_TXVAL_AMOUNT_MINOR);
    ngx_conf_merge_uint_value(conf->currency_case, prev->currency_case,
                              NGX_HTTP_TXVAL_CASE_UPPER);
    ngx_conf_merge_str_value(conf->ns, prev->ns, "");

    from = prev->mapping ? prev->mapping : prev->fields;

    if (conf->fields == NULL) {

        if (from == NULL
            && conf->amount_format == NGX_HTTP_TXVAL_AMOUNT_MINOR
            && conf->currency_case == NGX_HTTP_TXVAL_CASE_UPPER)
        {
            conf->mapping = NULL;       /* the default */
            return NGX_CONF_OK;
        }

        if (from && from == prev->mapping
            && from->map.amount_format == conf->amount_format
            && from->map.currency_case == conf->currency_case)
        {
            conf->mapping = from;
            return NGX_CONF_OK;
        }

        conf->fields = ngx_http_txval_fields_create(cf);
        if (conf->fields == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    fields = conf->fields;

    for (n = 0; from && n < NGX_HTTP_TXVAL_NFIELDS; n++) {
        if (!(fields->set & (1 << n))) {
            fields->map.fields[n] = from->map.fields[n];
            fields->values[n] = from->values[n];
        }
    }

    fields->map.amount_format = (uint8_t) conf->amount_format;
    fields->map.currency_case = (uint8_t) conf->currency_case;

    ngx_http_txval_mapping_done(&fields->map);

    conf->mapping = fields;

    return NGX_CONF_OK;
}


static ngx_http_txval_fields_t *
ngx_http_txval_fields_create(ngx_conf_t *cf)
{
    ngx_http_txval_fields_t  *fields;

    fields = ngx_pcalloc(cf->pool, sizeof(ngx_http_txval_fields_t));
    if (fields == NULL) {
        return NULL;
    }

    ngx_http_txval_mapping_init(&fields->map);

    return fields;
}


/*
 * A request's mapping, namespace and the values its variables supply
 * (an empty value is a missing field). Never logged: a header may hold
 * anything.
 */

ngx_int_t
ngx_http_txval_mapping_request(ngx_http_request_t *r,
    ngx_http_txval_ctx_t *ctx)
{
    ngx_str_t                   value;
    ngx_uint_t                  n;
    ngx_http_txval_fields_t    *mapping;
    ngx_http_txval_loc_conf_t  *tlcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_txval_module);

    ctx->ns = tlcf->ns.len ? &tlcf->ns : NULL;
    mapping = tlcf->mapping;

    if (mapping == NULL) {
        ctx->map = NULL;
        return NGX_OK;
    }

    ctx->map = &mapping->map;

    for (n = 0; n < NGX_HTTP_TXVAL_NFIELDS; n++) {

        if (!(mapping->map.values & (1 << n))) {
            continue;
        }

        if (ngx_http_complex_value(r, mapping->values[n], &value) != NGX_OK) {
            return NGX_ERROR;
        }

        ctx->values[n].data = value.data;
        ctx->values[n].len = value.len;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "txval mapping: values:%uD tag:%uL namespace:\"%V\"",
                   (uint32_t) mapping->map.values, mapping->map.tag,
                   &tlcf->ns);

    return NGX_OK;
}
