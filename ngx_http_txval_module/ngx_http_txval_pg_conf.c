
/*
 * txval: the txval_postgres directive and its connection string.
 *
 *   txval_postgres "conninfo" [pool=N] [timeout=T];
 *
 * The conninfo is parsed by libpq (PQconninfoParse) and rewritten for the
 * workers, in named steps:
 *
 *   ngx_http_txval_pg_conf_params   pool=, timeout=
 *   ngx_http_txval_pg_parse         libpq's parse; its message, which may
 *                                   quote a password, is never echoed
 *   ngx_http_txval_pg_options       every option but the servers', checked
 *                                   (target_session_attrs) and copied
 *   ngx_http_txval_pg_servers       host, hostaddr, port: one server per
 *                                   address, host names resolved now, so
 *                                   that libpq never resolves in a worker
 *   ngx_http_txval_pg_statement_timeout  a server-side bound on a query
 *                                   nobody waits for any more
 *   ngx_http_txval_pg_server_lists  a keyword/value list per server to
 *                                   start with (libpq tries them in turn)
 *
 * libpq's parse result is freed on one path, whatever step fails.
 */


#include <libpq-fe.h>

#include "ngx_http_txval_pg.h"


/* the conninfo being rewritten */
typedef struct {
    const char                    **kw;
    const char                    **vals;
    ngx_uint_t                      n;          /* set so far */
    const char                     *hosts;
    const char                     *hostaddrs;
    const char                     *ports;
    ngx_uint_t                      each_port;  /* a port per host */
} ngx_http_txval_pg_ci_t;


static char *ngx_http_txval_pg_conf_params(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_txval_pg_conf_t *pcf);
static PQconninfoOption *ngx_http_txval_pg_parse(ngx_conf_t *cf,
    ngx_command_t *cmd, ngx_str_t *conninfo);
static char *ngx_http_txval_pg_options(ngx_conf_t *cf, ngx_command_t *cmd,
    PQconninfoOption *opts, ngx_http_txval_pg_ci_t *ci);
static char *ngx_http_txval_pg_servers(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_txval_pg_conf_t *pcf, const char *hosts, const char *hostaddrs,
    const char *ports, ngx_uint_t *each_port);
static char *ngx_http_txval_pg_statement_timeout(ngx_conf_t *cf,
    ngx_http_txval_pg_conf_t *pcf, ngx_http_txval_pg_ci_t *ci);
static char *ngx_http_txval_pg_server_lists(ngx_conf_t *cf,
    ngx_http_txval_pg_conf_t *pcf, ngx_http_txval_pg_ci_t *ci);
static ngx_int_t ngx_http_txval_pg_split(ngx_conf_t *cf, const char *list,
    ngx_array_t *a);
static const char *ngx_http_txval_pg_join(ngx_conf_t *cf,
    ngx_http_txval_pg_conf_t *pcf, ngx_uint_t first, size_t field);
static char *ngx_http_txval_pg_strdup(ngx_conf_t *cf, const char *s);
static const char *ngx_http_txval_pg_unquote(ngx_conf_t *cf,
    const char *msg);


/*
 * txval_postgres "conninfo" [pool=N] [timeout=T]: the conninfo's options
 * (libpq's keyword/value pairs, or a URI, with multi-host lists) become a
 * keyword/value list for PQconnectStartParams, with an address for every
 * server.
 */

char *
ngx_http_txval_pg_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_txval_main_conf_t *tmcf = conf;

    char                      *rv;
    ngx_str_t                 *value;
    PQconninfoOption          *opts;
    ngx_http_txval_pg_ci_t     ci;
    ngx_http_txval_pg_conf_t  *pcf;

    if (tmcf->pg) {
        return "is duplicate";
    }

    pcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_txval_pg_conf_t));
    if (pcf == NULL) {
        return NGX_CONF_ERROR;
    }

    pcf->pool = 8;
    pcf->timeout = 200;

    rv = ngx_http_txval_pg_conf_params(cf, cmd, pcf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    value = cf->args->elts;

    opts = ngx_http_txval_pg_parse(cf, cmd, &value[1]);
    if (opts == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ci, sizeof(ngx_http_txval_pg_ci_t));

    rv = ngx_http_txval_pg_options(cf, cmd, opts, &ci);

    if (rv == NGX_CONF_OK) {
        rv = ngx_http_txval_pg_servers(cf, cmd, pcf, ci.hosts, ci.hostaddrs,
                                       ci.ports, &ci.each_port);
    }

    if (rv == NGX_CONF_OK) {
        rv = ngx_http_txval_pg_statement_timeout(cf, pcf, &ci);
    }

    if (rv == NGX_CONF_OK) {
        rv = ngx_http_txval_pg_server_lists(cf, pcf, &ci);
    }

    /* the one cleanup: the lists hold copies, not libpq's strings */
    PQconninfoFree(opts);

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    tmcf->pg = pcf;

    return NGX_CONF_OK;
}


/* pool=N (1-1024), timeout=T */

static char *
ngx_http_txval_pg_conf_params(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_txval_pg_conf_t *pcf)
{
    ngx_int_t    n;
    ngx_str_t   *value, s;
    ngx_uint_t   i;

    value = cf->args->elts;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "pool=", 5) == 0) {
            n = ngx_atoi(value[i].data + 5, value[i].len - 5);
            if (n == NGX_ERROR || n < 1 || n > 1024) {
                goto invalid;
            }

            pcf->pool = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            n = ngx_parse_time(&s, 0);
            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }

            pcf->timeout = (ngx_msec_t) n;
            continue;
        }

        goto invalid;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"%V\" directive",
                       &value[i], &cmd->name);
    return NGX_CONF_ERROR;
}


/* libpq's parse of the conninfo; NULL: refused, and said so */

static PQconninfoOption *
ngx_http_txval_pg_parse(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *conninfo)
{
    char              *ci, *errmsg;
    const char        *why;
    PQconninfoOption  *opts;

    ci = (char *) ngx_pnalloc(cf->pool, conninfo->len + 1);
    if (ci == NULL) {
        return NULL;
    }

    (void) ngx_cpystrn((u_char *) ci, conninfo->data, conninfo->len + 1);

    errmsg = NULL;
    opts = PQconninfoParse(ci, &errmsg);

    if (opts == NULL) {
        /*
         * libpq's message may quote a part of the string, even the whole
         * URI with its password: only its words are kept
         */
        why = errmsg ? ngx_http_txval_pg_unquote(cf, errmsg) : NULL;

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid connection string in \"%V\" directive: "
                           "%s", &cmd->name, why ? why : "out of memory");
    }

    if (errmsg) {
        PQfreemem(errmsg);
    }

    return opts;
}


/*
 * The options that are set, but the servers' (host, hostaddr, port: kept
 * aside), copied into lists with room for host, hostaddr, port, options
 * and the terminating NULL; target_session_attrs checked now, which libpq
 * would refuse at every connect, in the workers.
 */

static char *
ngx_http_txval_pg_options(ngx_conf_t *cf, ngx_command_t *cmd,
    PQconninfoOption *opts, ngx_http_txval_pg_ci_t *ci)
{
    ngx_uint_t         i, nopts;
    PQconninfoOption  *o;

    static const char  *attrs[] = { "any", "read-write", "read-only",
                                    "primary", "standby", "prefer-standby",
                                    NULL };

    nopts = 0;

    for (o = opts; o->keyword; o++) {
        if (o->val == NULL) {
            continue;
        }

        if (ngx_strcmp(o->keyword, "host") == 0) {
            ci->hosts = o->val;
            continue;
        }

        if (ngx_strcmp(o->keyword, "hostaddr") == 0) {
            ci->hostaddrs = o->val;
            continue;
        }

        if (ngx_strcmp(o->keyword, "port") == 0) {
            ci->ports = o->val;
            continue;
        }

        if (ngx_strcmp(o->keyword, "target_session_attrs") == 0) {

            for (i = 0; attrs[i]; i++) {
                if (ngx_strcmp(o->val, attrs[i]) == 0) {
                    break;
                }
            }

            if (attrs[i] == NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid target_session_attrs \"%s\" in "
                                   "\"%V\" directive", o->val, &cmd->name);
                return NGX_CONF_ERROR;
            }
        }

        nopts++;
    }

    ci->kw = ngx_pcalloc(cf->pool, (nopts + 5) * sizeof(char *));
    ci->vals = ngx_pcalloc(cf->pool, (nopts + 5) * sizeof(char *));
    if (ci->kw == NULL || ci->vals == NULL) {
        return NGX_CONF_ERROR;
    }

    for (o = opts; o->keyword; o++) {
        if (o->val == NULL
            || ngx_strcmp(o->keyword, "host") == 0
            || ngx_strcmp(o->keyword, "hostaddr") == 0
            || ngx_strcmp(o->keyword, "port") == 0)
        {
            continue;
        }

        ci->kw[ci->n] = ngx_http_txval_pg_strdup(cf, o->keyword);
        ci->vals[ci->n] = ngx_http_txval_pg_strdup(cf, o->val);

        if (ci->kw[ci->n] == NULL || ci->vals[ci->n] == NULL) {
            return NGX_CONF_ERROR;
        }

        ci->n++;
    }

    /* the servers' strings are libpq's: copied before it frees them */

    ci->hosts = ci->hosts ? ngx_http_txval_pg_strdup(cf, ci->hosts) : NULL;
    ci->hostaddrs = ci->hostaddrs
                    ? ngx_http_txval_pg_strdup(cf, ci->hostaddrs) : NULL;
    ci->ports = ci->ports ? ngx_http_txval_pg_strdup(cf, ci->ports) : NULL;

    return NGX_CONF_OK;
}


/*
 * A query we gave up on must not go on holding a backend: the server ends
 * it shortly after our timeout (a stalled table would otherwise pile up a
 * backend per timed-out request), by "-c statement_timeout=" twice the
 * timeout, added to the options.
 */

static char *
ngx_http_txval_pg_statement_timeout(ngx_conf_t *cf,
    ngx_http_txval_pg_conf_t *pcf, ngx_http_txval_pg_ci_t *ci)
{
    u_char      *p;
    size_t       len;
    ngx_uint_t   i;

    for (i = 0; i < ci->n; i++) {
        if (ngx_strcmp(ci->kw[i], "options") == 0) {
            break;
        }
    }

    len = (i < ci->n) ? ngx_strlen(ci->vals[i]) : 0;

    p = ngx_pnalloc(cf->pool, len + sizeof(" -c statement_timeout=ms")
                              + NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    if (i < ci->n) {
        (void) ngx_sprintf(p, "%s -c statement_timeout=%Mms%Z", ci->vals[i],
                           2 * pcf->timeout);
        ci->vals[i] = (char *) p;

    } else {
        (void) ngx_sprintf(p, "-c statement_timeout=%Mms%Z",
                           2 * pcf->timeout);
        ci->kw[ci->n] = "options";
        ci->vals[ci->n] = (char *) p;
        ci->n++;
    }

    return NGX_CONF_OK;
}


/*
 * The servers, last in the lists: a list per server to start with, that
 * differ by the order of their hosts, hostaddrs and ports (index 0 is
 * never theirs: "options" comes first).
 */

static char *
ngx_http_txval_pg_server_lists(ngx_conf_t *cf, ngx_http_txval_pg_conf_t *pcf,
    ngx_http_txval_pg_ci_t *ci)
{
    ngx_uint_t    i, k, m, ihost, iaddr, iport;
    const char  **v;

    k = ci->n;
    ihost = 0;
    iaddr = 0;
    iport = 0;

    if (pcf->nhosts && ci->hosts) {
        ci->kw[k] = "host";
        ihost = k++;
    }

    for (i = 0; i < pcf->nhosts; i++) {
        if (pcf->hosts[i].addr.len) {
            ci->kw[k] = "hostaddr";
            iaddr = k++;
            break;
        }
    }

    if (ci->ports) {
        ci->kw[k] = "port";
        ci->vals[k] = ci->ports;

        if (ci->each_port) {
            iport = k;
        }

        k++;
    }

    ci->kw[k] = NULL;
    ci->vals[k] = NULL;

    m = (pcf->nhosts > 1) ? pcf->nhosts : 1;

    pcf->values = ngx_palloc(cf->pool, m * sizeof(const char **));
    if (pcf->values == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < m; i++) {

        if (i == 0) {
            v = ci->vals;

        } else {
            v = ngx_palloc(cf->pool, (k + 1) * sizeof(char *));
            if (v == NULL) {
                return NGX_CONF_ERROR;
            }

            ngx_memcpy(v, ci->vals, (k + 1) * sizeof(char *));
        }

        if (ihost) {
            v[ihost] = ngx_http_txval_pg_join(cf, pcf, i,
                           offsetof(ngx_http_txval_pg_host_t, host));
        }

        if (iaddr) {
            v[iaddr] = ngx_http_txval_pg_join(cf, pcf, i,
                           offsetof(ngx_http_txval_pg_host_t, addr));
        }

        if (iport) {
            v[iport] = ngx_http_txval_pg_join(cf, pcf, i,
                           offsetof(ngx_http_txval_pg_host_t, port));
        }

        if ((ihost && v[ihost] == NULL) || (iaddr && v[iaddr] == NULL)
            || (iport && v[iport] == NULL))
        {
            return NGX_CONF_ERROR;
        }

        pcf->values[i] = v;
    }

    pcf->keywords = ci->kw;

    return NGX_CONF_OK;
}


/*
 * The conninfo's servers, as libpq pairs them: hosts (or hostaddrs
 * alone) give the count, hostaddrs must match it, ports too or be one
 * port for all. Without hostaddr, a host that is neither a socket
 * directory nor empty is resolved, a server per address.
 */

static char *
ngx_http_txval_pg_servers(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_txval_pg_conf_t *pcf, const char *hosts, const char *hostaddrs,
    const char *ports, ngx_uint_t *each_port)
{
    u_char                    *p;
    ngx_str_t                 *h, *a, *pt, port, empty;
    ngx_url_t                  u;
    ngx_uint_t                 i, j, n;
    ngx_array_t                hl, al, pl, servers;
    ngx_http_txval_pg_host_t  *srv;

    ngx_str_null(&empty);

    if (ngx_http_txval_pg_split(cf, hosts, &hl) != NGX_OK
        || ngx_http_txval_pg_split(cf, hostaddrs, &al) != NGX_OK
        || ngx_http_txval_pg_split(cf, ports, &pl) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    h = hl.elts;
    a = al.elts;
    pt = pl.elts;

    n = hosts ? hl.nelts : al.nelts;

    if (hosts && hostaddrs && al.nelts != n) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "could not match %ui host addresses to %ui hosts "
                           "in \"%V\" directive", al.nelts, n, &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (pl.nelts > 1 && pl.nelts != (n ? n : 1)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "could not match %ui port numbers to %ui hosts "
                           "in \"%V\" directive", pl.nelts, n ? n : 1,
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    *each_port = (pl.nelts > 1);

    if (n == 0) {
        /* libpq's default server: a socket */
        return NGX_CONF_OK;
    }

    if (ngx_array_init(&servers, cf->pool, n,
                       sizeof(ngx_http_txval_pg_host_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < n; i++) {

        port = *each_port ? pt[i] : empty;

        if (hostaddrs || h[i].len == 0 || h[i].data[0] == '/'
            || h[i].data[0] == '@')
        {
            /* an address given, or a unix socket */

            srv = ngx_array_push(&servers);
            if (srv == NULL) {
                return NGX_CONF_ERROR;
            }

            srv->host = hosts ? h[i] : empty;
            srv->addr = hostaddrs ? a[i] : empty;
            srv->port = port;
            continue;
        }

        ngx_memzero(&u, sizeof(ngx_url_t));

        if (ngx_strlchr(h[i].data, h[i].data + h[i].len, ':')
            && h[i].data[0] != '[')
        {
            /* an IPv6 address: ngx_parse_url() wants it in brackets */

            p = ngx_pnalloc(cf->pool, h[i].len + 2);
            if (p == NULL) {
                return NGX_CONF_ERROR;
            }

            u.url.data = p;
            *p++ = '[';
            p = ngx_cpymem(p, h[i].data, h[i].len);
            *p++ = ']';
            u.url.len = p - u.url.data;

        } else {
            u.url = h[i];
        }

        u.default_port = 5432;
        u.no_port = 1;

        if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "host \"%V\" in \"%V\" directive "
                               "could not be resolved", &h[i], &cmd->name);
            return NGX_CONF_ERROR;
        }

        for (j = 0; j < u.naddrs; j++) {
            srv = ngx_array_push(&servers);
            if (srv == NULL) {
                return NGX_CONF_ERROR;
            }

            srv->host = h[i];
            srv->port = port;

            srv->addr.data = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN);
            if (srv->addr.data == NULL) {
                return NGX_CONF_ERROR;
            }

            srv->addr.len = ngx_sock_ntop(u.addrs[j].sockaddr,
                                          u.addrs[j].socklen,
                                          srv->addr.data,
                                          NGX_SOCKADDR_STRLEN, 0);
        }
    }

    pcf->hosts = servers.elts;
    pcf->nhosts = servers.nelts;

    return NGX_CONF_OK;
}


/* a comma list, split as libpq does (empty items kept); NULL: none */

static ngx_int_t
ngx_http_txval_pg_split(ngx_conf_t *cf, const char *list, ngx_array_t *a)
{
    u_char     *p, *start, *last;
    ngx_str_t  *item;

    if (ngx_array_init(a, cf->pool, 4, sizeof(ngx_str_t)) != NGX_OK) {
        return NGX_ERROR;
    }

    if (list == NULL) {
        return NGX_OK;
    }

    start = (u_char *) ngx_http_txval_pg_strdup(cf, list);
    if (start == NULL) {
        return NGX_ERROR;
    }

    last = start + ngx_strlen(start);

    for ( ;; ) {
        p = ngx_strlchr(start, last, ',');
        if (p == NULL) {
            p = last;
        }

        item = ngx_array_push(a);
        if (item == NULL) {
            return NGX_ERROR;
        }

        item->data = start;
        item->len = p - start;

        if (p == last) {
            return NGX_OK;
        }

        start = p + 1;
    }
}


/* one field of every server, the first-th first, comma-separated */

static const char *
ngx_http_txval_pg_join(ngx_conf_t *cf, ngx_http_txval_pg_conf_t *pcf,
    ngx_uint_t first, size_t field)
{
    u_char      *p, *s;
    size_t       len;
    ngx_str_t   *f;
    ngx_uint_t   i;

    len = 0;

    for (i = 0; i < pcf->nhosts; i++) {
        f = (ngx_str_t *) ((u_char *) &pcf->hosts[i] + field);
        len += f->len + 1;
    }

    s = ngx_pnalloc(cf->pool, len + 1);
    if (s == NULL) {
        return NULL;
    }

    p = s;

    for (i = 0; i < pcf->nhosts; i++) {
        f = (ngx_str_t *) ((u_char *) &pcf->hosts[(first + i) % pcf->nhosts]
                           + field);
        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, f->data, f->len);
    }

    *p = '\0';

    return (const char *) s;
}


static char *
ngx_http_txval_pg_strdup(ngx_conf_t *cf, const char *s)
{
    char    *p;
    size_t   len;

    len = ngx_strlen(s) + 1;

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, s, len);

    return p;
}


/*
 * A libpq message with what it quotes replaced by "...", and without its
 * newline: libpq quotes the text it could not parse, which may be a
 * password. NULL when out of memory.
 */

static const char *
ngx_http_txval_pg_unquote(ngx_conf_t *cf, const char *msg)
{
    char        *out, *q;
    const char  *p;
    ngx_uint_t   quoted;

    /* at worst every byte is a quote, which takes 4 */
    out = ngx_pnalloc(cf->pool, 4 * ngx_strlen(msg) + 2);
    if (out == NULL) {
        return NULL;
    }

    quoted = 0;

    for (p = msg, q = out; *p; p++) {

        if (*p == '"') {
            if (quoted) {
                *q++ = '"';

            } else {
                q = (char *) ngx_cpymem(q, "\"...", 4);
            }

            quoted = !quoted;
            continue;
        }

        if (!quoted && *p != '\n') {
            *q++ = *p;
        }
    }

    if (quoted) {
        *q++ = '"';
    }

    *q = '\0';

    return out;
}
