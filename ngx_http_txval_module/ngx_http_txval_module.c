
/*
 * txval: directives, configuration and the module definition.
 */


#include <sys/random.h>

#include "ngx_http_txval_module.h"
#include "ngx_http_txval_cache.h"
#include "ngx_http_txval_redis.h"
#include "ngx_http_txval_pg.h"
#include "ngx_http_txval_lookup.h"
#include "ngx_http_txval_metrics.h"


static ngx_int_t ngx_http_txval_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_txval_postconfiguration(ngx_conf_t *cf);
static char *ngx_http_txval_gate(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_http_txval_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_txval_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_txval_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_txval_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_txval(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_txval_amount_limit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_txval_enum(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_txval_bounded_num(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_txval_velocity(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_txval_dry_run(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_txval_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_txval_init_process(ngx_cycle_t *cycle);
static void ngx_http_txval_exit_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_txval_parse_amount(ngx_conf_t *cf,
    ngx_str_t *value, int64_t *amount);


/* a velocity count that fits the rules' unsigned int */
#define NGX_HTTP_TXVAL_VELOCITY_MAX  2147483647


typedef struct {
    ngx_uint_t                  min;
    ngx_uint_t                  max;
} ngx_http_txval_bounds_t;


static ngx_http_txval_bounds_t  ngx_http_txval_threshold_bounds = { 0, 100 };
static ngx_http_txval_bounds_t  ngx_http_txval_status_bounds = { 400, 599 };


static ngx_conf_enum_t  ngx_http_txval_fail_modes[] = {
    { ngx_string("closed"), NGX_HTTP_TXVAL_FAIL_CLOSED },
    { ngx_string("open"), NGX_HTTP_TXVAL_FAIL_OPEN },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_txval_amount_formats[] = {
    { ngx_string("minor"), NGX_HTTP_TXVAL_AMOUNT_MINOR },
    { ngx_string("decimal"), NGX_HTTP_TXVAL_AMOUNT_DECIMAL },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_txval_currency_cases[] = {
    { ngx_string("upper"), NGX_HTTP_TXVAL_CASE_UPPER },
    { ngx_string("any"), NGX_HTTP_TXVAL_CASE_ANY },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_txval_commands[] = {

    { ngx_string("txval"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_txval,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("txval_gate"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_txval_gate,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("txval_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_txval_metrics_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("txval_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_txval_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("txval_dry_run"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_txval_dry_run,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("txval_cache_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_txval_cache_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("txval_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_txval_redis_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("txval_lookup_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE123,
      ngx_http_txval_lookup_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("txval_postgres"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_txval_pg_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("txval_fail_mode"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_txval_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_txval_loc_conf_t, fail_mode),
      &ngx_http_txval_fail_modes },

    { ngx_string("txval_velocity"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_txval_velocity,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("txval_amount_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE3,
      ngx_http_txval_amount_limit,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("txval_risk_threshold"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_txval_bounded_num,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_txval_loc_conf_t, risk_threshold),
      &ngx_http_txval_threshold_bounds },

    { ngx_string("txval_decline_status"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_txval_bounded_num,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_txval_loc_conf_t, decline_status),
      &ngx_http_txval_status_bounds },

    { ngx_string("txval_field"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_txval_field,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("txval_amount_format"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_txval_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_txval_loc_conf_t, amount_format),
      &ngx_http_txval_amount_formats },

    { ngx_string("txval_currency_case"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_txval_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_txval_loc_conf_t, currency_case),
      &ngx_http_txval_currency_cases },

    { ngx_string("txval_namespace"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_txval_namespace,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_txval_module_ctx = {
    ngx_http_txval_preconfiguration,       /* preconfiguration */
    ngx_http_txval_postconfiguration,      /* postconfiguration */

    ngx_http_txval_create_main_conf,       /* create main configuration */
    ngx_http_txval_init_main_conf,         /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_txval_create_loc_conf,        /* create location configuration */
    ngx_http_txval_merge_loc_conf          /* merge location configuration */
};


ngx_module_t  ngx_http_txval_module = {
    NGX_MODULE_V1,
    &ngx_http_txval_module_ctx,            /* module context */
    ngx_http_txval_commands,               /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_txval_init_process,           /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_txval_exit_process,           /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_txval_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_txval_add_variables(cf);
}


/*
 * Gate mode validates in the precontent phase: after access (auth_request,
 * allow/deny, whatever "satisfy" says) and before the content handler,
 * which no access decision can skip.
 */

static ngx_int_t
ngx_http_txval_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_handler_pt         *h;
    ngx_http_core_main_conf_t   *cmcf;
    ngx_http_txval_main_conf_t  *tmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_txval_gate_handler;

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_txval_module);

    if (tmcf->redis
        && ngx_http_txval_redis_postconf(cf, tmcf->redis) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_txval_metrics_zone(cf);
}


static void *
ngx_http_txval_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_txval_main_conf_t  *tmcf;

    tmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_txval_main_conf_t));
    if (tmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     tmcf->cache = NULL;
     */

    return tmcf;
}


static char *
ngx_http_txval_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_txval_main_conf_t *tmcf = conf;

    ngx_uint_t  i;

    if (tmcf->lookup == NULL) {
        return NGX_CONF_OK;
    }

    if (tmcf->pg == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"txval_lookup_cache\" needs \"txval_postgres\"");
        return NGX_CONF_ERROR;
    }

    if (tmcf->lookup->channel.len == 0) {
        return NGX_CONF_OK;
    }

    /*
     * notifications come from the primary; rows read from a replica may
     * be older than a notification already handled
     */

    for (i = 0; tmcf->pg->keywords[i]; i++) {
        if (ngx_strcmp(tmcf->pg->keywords[i], "target_session_attrs") == 0
            && (ngx_strcmp(tmcf->pg->values[0][i], "standby") == 0
                || ngx_strcmp(tmcf->pg->values[0][i], "prefer-standby") == 0
                || ngx_strcmp(tmcf->pg->values[0][i], "read-only") == 0))
        {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "\"txval_lookup_cache ... notify=\" with "
                               "target_session_attrs=%s: LISTEN needs the "
                               "primary, and rows read from a replica may "
                               "be kept up to the ttl after a change",
                               tmcf->pg->values[0][i]);
        }
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_txval_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_txval_loc_conf_t  *tlcf;

    tlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_txval_loc_conf_t));
    if (tlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     tlcf->mode = NGX_HTTP_TXVAL_OFF;
     *     tlcf->policy = { 0 };
     *     tlcf->fields = NULL;
     *     tlcf->ns = { 0, NULL };
     *     tlcf->mapping = NULL;
     */

    tlcf->gate = NGX_CONF_UNSET;
    tlcf->dry_run = NGX_CONF_UNSET;
    tlcf->limits = NGX_CONF_UNSET_PTR;
    tlcf->risk_threshold = NGX_CONF_UNSET_UINT;
    tlcf->decline_status = NGX_CONF_UNSET_UINT;
    tlcf->fail_mode = NGX_CONF_UNSET_UINT;
    tlcf->velocity_count = NGX_CONF_UNSET;
    tlcf->velocity_window = NGX_CONF_UNSET;
    tlcf->amount_format = NGX_CONF_UNSET_UINT;
    tlcf->currency_case = NGX_CONF_UNSET_UINT;

    return tlcf;
}


static char *
ngx_http_txval_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_txval_loc_conf_t *prev = parent;
    ngx_http_txval_loc_conf_t *conf = child;

    ngx_http_txval_main_conf_t  *tmcf;

    /*
     * The gate is inherited, like auth_request: by nested locations and by
     * the "if" and "limit_except" blocks of a gated location, unless they
     * say "txval_gate off". Where the content handler is verdict mode's
     * ("txval"), the gate leaves the validation to it (see
     * ngx_http_txval_gate_handler()).
     */

    ngx_conf_merge_value(conf->gate, prev->gate, 0);

    if (conf->dry_run == NGX_CONF_UNSET && conf->dry_run_value == NULL) {
        conf->dry_run = prev->dry_run;
        conf->dry_run_value = prev->dry_run_value;
    }

    if (conf->dry_run == NGX_CONF_UNSET) {
        conf->dry_run = 0;
    }

    /* a level that sets txval_amount_limit replaces the inherited list */
    ngx_conf_merge_ptr_value(conf->limits, prev->limits, NULL);
    ngx_conf_merge_uint_value(conf->risk_threshold, prev->risk_threshold, 70);
    ngx_conf_merge_uint_value(conf->decline_status, prev->decline_status,
                              402);

    ngx_conf_merge_uint_value(conf->fail_mode, prev->fail_mode,
                              NGX_HTTP_TXVAL_FAIL_CLOSED);

    if (conf->velocity_count == NGX_CONF_UNSET) {
        conf->velocity_count = prev->velocity_count;
        conf->velocity_window = prev->velocity_window;
    }

    if (conf->velocity_count == NGX_CONF_UNSET) {
        conf->velocity_count = 0;
        conf->velocity_window = 0;
    }

    if (conf->velocity_count > 0) {
        tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_txval_module);

        if (tmcf->redis == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"txval_velocity\" needs \"txval_redis\"");
            return NGX_CONF_ERROR;
        }
    }

    conf->policy.velocity_count = (unsigned) conf->velocity_count;

    if (conf->limits) {
        conf->policy.limits = conf->limits->elts;
        conf->policy.nlimits = conf->limits->nelts;
    }

    conf->policy.risk_threshold = conf->risk_threshold;

    if (ngx_http_txval_merge_mapping(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    /*
     * readiness (txval_status): the backends that a location failing
     * closed needs; a Redis cache lookup alone is never a 503
     */

    if ((conf->mode == NGX_HTTP_TXVAL_VERDICT || conf->gate == 1)
        && conf->fail_mode == NGX_HTTP_TXVAL_FAIL_CLOSED
        && !(conf->dry_run == 1 && conf->dry_run_value == NULL))
    {
        /* (a location always in dry run refuses nothing: not counted) */

        tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_txval_module);

        tmcf->closed_pg |= (tmcf->pg != NULL);
        tmcf->closed_redis |= (conf->velocity_count > 0);
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_txval(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_txval_loc_conf_t *tlcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (tlcf->mode == NGX_HTTP_TXVAL_VERDICT) {
        return "is duplicate";
    }

    if (tlcf->gate == 1) {
        return "cannot be used with \"txval_gate\" in one location";
    }

    tlcf->mode = NGX_HTTP_TXVAL_VERDICT;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_txval_handler;

    return NGX_CONF_OK;
}


/* txval_gate [on | off]; */

static char *
ngx_http_txval_gate(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_txval_loc_conf_t *tlcf = conf;

    ngx_str_t  *value;

    if (tlcf->gate != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 1 || ngx_strcmp(value[1].data, "on") == 0) {
        tlcf->gate = 1;

    } else if (ngx_strcmp(value[1].data, "off") == 0) {
        tlcf->gate = 0;
        return NGX_CONF_OK;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, "
                           "it must be \"on\" or \"off\"",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (tlcf->mode == NGX_HTTP_TXVAL_VERDICT) {
        return "cannot be used with \"txval\" in one location";
    }

    return NGX_CONF_OK;
}


/* txval_velocity COUNT WINDOW; or txval_velocity off; */

static char *
ngx_http_txval_velocity(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_txval_loc_conf_t *tlcf = conf;

    time_t      window;
    ngx_int_t   count;
    ngx_str_t  *value;

    if (tlcf->velocity_count != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2) {
        if (ngx_strcmp(value[1].data, "off") != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"%V\" directive, "
                               "it must be COUNT WINDOW or off",
                               &value[1], &cmd->name);
            return NGX_CONF_ERROR;
        }

        tlcf->velocity_count = 0;
        tlcf->velocity_window = 0;
        return NGX_CONF_OK;
    }

    count = ngx_atoi(value[1].data, value[1].len);

    if (count == NGX_ERROR || count < 1
        || count > NGX_HTTP_TXVAL_VELOCITY_MAX)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, "
                           "the count must be a number from 1 to %d",
                           &value[1], &cmd->name,
                           NGX_HTTP_TXVAL_VELOCITY_MAX);
        return NGX_CONF_ERROR;
    }

    window = ngx_parse_time(&value[2], 1);

    if (window == (time_t) NGX_ERROR || window < 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, "
                           "the window must be a time of at least 1s",
                           &value[2], &cmd->name);
        return NGX_CONF_ERROR;
    }

    tlcf->velocity_count = count;
    tlcf->velocity_window = window;

    return NGX_CONF_OK;
}


/* txval_dry_run on | off | $variable; */

static char *
ngx_http_txval_dry_run(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_txval_loc_conf_t *tlcf = conf;

    ngx_str_t                         *value;
    ngx_http_compile_complex_value_t   ccv;

    if (tlcf->dry_run != NGX_CONF_UNSET || tlcf->dry_run_value) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "on") == 0) {
        tlcf->dry_run = 1;
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "off") == 0) {
        tlcf->dry_run = 0;
        return NGX_CONF_OK;
    }

    if (ngx_http_script_variables_count(&value[1]) == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, "
                           "it must be \"on\", \"off\" or a value with "
                           "variables", &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    tlcf->dry_run_value = ngx_palloc(cf->pool,
                                     sizeof(ngx_http_complex_value_t));
    if (tlcf->dry_run_value == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = tlcf->dry_run_value;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_txval_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_txval_status_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_txval_init_process(ngx_cycle_t *cycle)
{
    ngx_http_txval_main_conf_t  *tmcf;

    ngx_http_txval_metrics_init_process();

    tmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_txval_module);

    if (tmcf == NULL
        || (ngx_process != NGX_PROCESS_WORKER
            && ngx_process != NGX_PROCESS_SINGLE))
    {
        /* a cache manager or loader: no requests, no backends */
        return NGX_OK;
    }

    ngx_http_txval_random(cycle->log, (u_char *) &tmcf->nonce,
                          sizeof(tmcf->nonce));

    if (tmcf->redis
        && ngx_http_txval_redis_init_process(cycle, tmcf->redis) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (tmcf->pg
        && ngx_http_txval_pg_init_process(cycle, tmcf->pg) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* after the pool: the listener connects as the pool does */

    if (tmcf->lookup
        && ngx_http_txval_lookup_init_process(cycle, tmcf->lookup, tmcf->pg)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_txval_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_txval_main_conf_t  *tmcf;

    tmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_txval_module);

    ngx_http_txval_redis_exit_process();

    if (tmcf && tmcf->lookup) {
        ngx_http_txval_lookup_exit_process(tmcf->lookup);
    }

    ngx_http_txval_pg_exit_process();
}


/* txval_amount_limit CUR MIN MAX; */

static char *
ngx_http_txval_amount_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_txval_loc_conf_t *tlcf = conf;

    ngx_str_t               *value;
    ngx_uint_t               i;
    ngx_http_txval_limit_t  *limit, *l;

    value = cf->args->elts;

    if (tlcf->limits == NGX_CONF_UNSET_PTR) {
        tlcf->limits = ngx_array_create(cf->pool, 4,
                                        sizeof(ngx_http_txval_limit_t));
        if (tlcf->limits == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (value[1].len != 3
        || value[1].data[0] < 'A' || value[1].data[0] > 'Z'
        || value[1].data[1] < 'A' || value[1].data[1] > 'Z'
        || value[1].data[2] < 'A' || value[1].data[2] > 'Z')
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid currency \"%V\" in \"%V\" directive, "
                           "it must be 3 uppercase letters (ISO 4217)",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    l = tlcf->limits->elts;

    for (i = 0; i < tlcf->limits->nelts; i++) {
        if (ngx_strncmp(l[i].currency, value[1].data, 3) == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate currency \"%V\" in \"%V\" directive",
                               &value[1], &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    limit = ngx_array_push(tlcf->limits);
    if (limit == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(limit->currency, value[1].data, 3);
    limit->currency[3] = '\0';

    if (ngx_http_txval_parse_amount(cf, &value[2], &limit->min) != NGX_OK
        || ngx_http_txval_parse_amount(cf, &value[3], &limit->max) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (limit->min > limit->max) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, "
                           "min \"%V\" is above max \"%V\"",
                           &value[3], &cmd->name, &value[2], &value[3]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_txval_parse_amount(ngx_conf_t *cf, ngx_str_t *value,
    int64_t *amount)
{
    off_t       n;
    ngx_str_t  *name;

    n = ngx_atoof(value->data, value->len);

    if (n == NGX_ERROR || n < 1 || n > NGX_HTTP_TXVAL_AMOUNT_MAX) {
        name = &((ngx_str_t *) cf->args->elts)[0];
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, "
                           "an amount must be an integer from 1 to "
                           "9007199254740991 (minor units)",
                           value, name);
        return NGX_ERROR;
    }

    *amount = n;

    return NGX_OK;
}


/*
 * ngx_conf_set_enum_slot() that names the values allowed when it refuses
 * one: "it must be "minor" or "decimal""
 */

static char *
ngx_http_txval_enum(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    u_char           *q, *last;
    ngx_str_t        *value;
    ngx_uint_t       *field, i;
    ngx_conf_enum_t  *e;
    u_char            must[NGX_MAX_CONF_ERRSTR];

    field = (ngx_uint_t *) (p + cmd->offset);

    if (*field != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    e = cmd->post;

    for (i = 0; e[i].name.len; i++) {
        if (e[i].name.len == value[1].len
            && ngx_strcmp(e[i].name.data, value[1].data) == 0)
        {
            *field = e[i].value;
            return NGX_CONF_OK;
        }
    }

    q = must;
    last = must + sizeof(must);

    for (i = 0; e[i].name.len; i++) {
        q = ngx_slprintf(q, last, "%s\"%V\"",
                         i == 0 ? "" : e[i + 1].name.len ? ", " : " or ",
                         &e[i].name);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\" directive, "
                       "it must be %*s",
                       &value[1], &cmd->name, q - must, must);

    return NGX_CONF_ERROR;
}


/* a number within the bounds in cmd->post, naming the value when not */

static char *
ngx_http_txval_bounded_num(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_int_t                 n;
    ngx_str_t                *value;
    ngx_uint_t               *field;
    ngx_http_txval_bounds_t  *bounds;

    field = (ngx_uint_t *) (p + cmd->offset);

    if (*field != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    bounds = cmd->post;

    n = ngx_atoi(value[1].data, value[1].len);

    if (n == NGX_ERROR
        || (ngx_uint_t) n < bounds->min || (ngx_uint_t) n > bounds->max)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, "
                           "it must be a number from %ui to %ui",
                           &value[1], &cmd->name, bounds->min, bounds->max);
        return NGX_CONF_ERROR;
    }

    *field = n;

    return NGX_CONF_OK;
}


/*
 * Random bytes from the kernel (getrandom(2) does not block once the pool
 * is initialised, which it is long before nginx runs); the clock and pid
 * if it fails.
 */

void
ngx_http_txval_random(ngx_log_t *log, u_char *buf, size_t len)
{
    size_t   i;
    ssize_t  n;

    n = getrandom(buf, len, GRND_NONBLOCK);

    if (n == (ssize_t) len) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, log, ngx_errno,
                  "txval: getrandom() failed, using a weaker seed");

    for (i = 0; i < len; i++) {
        buf[i] = (u_char) (ngx_random() ^ ngx_time() ^ (ngx_pid >> (i % 4)));
    }
}


/*
 * The zone of a "NAME:SIZE ..." directive (txval_cache_zone,
 * txval_lookup_cache), added with the module's tag, its init and data;
 * NULL when refused, said why.
 */

ngx_shm_zone_t *
ngx_http_txval_zone_add(ngx_conf_t *cf, ngx_command_t *cmd, ngx_str_t *value,
    ngx_shm_zone_init_pt init, void *data)
{
    u_char          *p;
    ssize_t          size;
    ngx_str_t        name, s;
    ngx_shm_zone_t  *shm_zone;

    p = (u_char *) ngx_strlchr(value->data, value->data + value->len, ':');

    if (p == NULL || p == value->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, "
                           "it must be NAME:SIZE", value, &cmd->name);
        return NULL;
    }

    name.data = value->data;
    name.len = p - value->data;

    s.data = p + 1;
    s.len = value->data + value->len - s.data;

    size = ngx_parse_size(&s);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\" in \"%V\" directive",
                           value, &cmd->name);
        return NULL;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small in \"%V\" directive, "
                           "the minimum is %uzk",
                           value, &cmd->name, 8 * ngx_pagesize / 1024);
        return NULL;
    }

    shm_zone = ngx_shared_memory_add(cf, &name, size, &ngx_http_txval_module);
    if (shm_zone == NULL) {
        return NULL;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already used", &name);
        return NULL;
    }

    shm_zone->init = init;
    shm_zone->data = data;

    return shm_zone;
}


/*
 * nginx gives a zone whose size changed on reload a new, empty segment:
 * the reload is refused instead of silently dropping every entry.
 */

ngx_int_t
ngx_http_txval_zone_resized(ngx_shm_zone_t *shm_zone, const char *directive)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_shm_zone_t   *ozone;

    part = &((ngx_cycle_t *) ngx_cycle)->shared_memory.part;
    ozone = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NGX_OK;
            }

            part = part->next;
            ozone = part->elts;
            i = 0;
        }

        if (ozone[i].tag != shm_zone->tag
            || ozone[i].shm.name.len != shm_zone->shm.name.len
            || ngx_strncmp(ozone[i].shm.name.data, shm_zone->shm.name.data,
                           shm_zone->shm.name.len) != 0)
        {
            continue;
        }

        if (ozone[i].shm.size == shm_zone->shm.size) {
            return NGX_OK;
        }

        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "%s \"%V\" cannot change its size from %uz to %uz "
                      "on reload: restart nginx, or give the zone a new name",
                      directive, &shm_zone->shm.name, ozone[i].shm.size,
                      shm_zone->shm.size);
        return NGX_ERROR;
    }
}


/*
 * The shared part of a zone (its first field, a uint32_t, is its
 * layout): the one kept across a reload or by the master (NGX_DONE), if
 * its layout matches, or a new one, zeroed, with its layout and a log
 * context that names the zone (NGX_OK); NGX_ERROR, said why.
 */

ngx_int_t
ngx_http_txval_zone_init(ngx_shm_zone_t *shm_zone, void *old, size_t size,
    uint32_t layout, const char *directive, void **sh)
{
    size_t            len;
    uint32_t         *l;
    ngx_slab_pool_t  *shpool;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (old || shm_zone->shm.exists) {
        /* the same size (see ngx_http_txval_zone_resized): kept */
        l = shpool->data;

        if (*l != layout) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "%s \"%V\" was made by another version of txval: "
                          "restart nginx, or give the zone a new name",
                          directive, &shm_zone->shm.name);
            return NGX_ERROR;
        }

        *sh = l;
        return NGX_DONE;
    }

    if (ngx_http_txval_zone_resized(shm_zone, directive) != NGX_OK) {
        return NGX_ERROR;
    }

    l = ngx_slab_calloc(shpool, size);
    if (l == NULL) {
        return NGX_ERROR;
    }

    *l = layout;
    shpool->data = l;
    *sh = l;

    len = sizeof(" in  \"\"") + ngx_strlen(directive) + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in %s \"%V\"%Z", directive,
                &shm_zone->shm.name);

    /* a full zone evicts: running out of room is not worth a log line */
    shpool->log_nomem = 0;

    return NGX_OK;
}
