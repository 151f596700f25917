
/*
 * txval: the txval_redis directive.
 *
 *   txval_redis ADDRESS | sentinel=ADDRESS[,...] master=NAME
 *               | cluster=ADDRESS[,...]
 *               [db=N] [user=U] [password=P | password_file=F]
 *               [sentinel_user=U] [sentinel_password=P]
 *               [prefix=S] [pool=N]
 *               [connect_timeout=T] [timeout=T] [idle_timeout=T]
 *               [tls=on] [tls_verify=on|off] [tls_name=NAME]
 *               [tls_trusted_certificate=F]
 *               [tls_certificate=F tls_certificate_key=F];
 *
 * Steps: parse_params (each "name=value"), build_addrs (the address
 * lists), check (what goes together), tls (the client TLS context). A
 * secret (password=, sentinel_password=, password_file='s content), or
 * the value of a parameter we do not know (a mistyped password=), never
 * reaches a message: those name the parameter only. A host name
 * is resolved here (ngx_parse_url); at run time only through nginx's
 * resolver (ngx_http_txval_redis_dns.c).
 */


#include "ngx_http_txval_redis_int.h"


static char *ngx_http_txval_redis_parse_params(ngx_conf_t *cf,
    ngx_command_t *cmd, ngx_http_txval_redis_conf_t *rcf, ngx_str_t **list);
static char *ngx_http_txval_redis_build_addrs(ngx_conf_t *cf,
    ngx_command_t *cmd, ngx_http_txval_redis_conf_t *rcf, ngx_str_t *list);
static char *ngx_http_txval_redis_check(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_txval_redis_conf_t *rcf);
static char *ngx_http_txval_redis_address(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_txval_redis_conf_t *rcf, ngx_str_t *text, in_port_t port);
static char *ngx_http_txval_redis_password_file(ngx_conf_t *cf,
    ngx_command_t *cmd, ngx_str_t *file, ngx_str_t *password);
static char *ngx_http_txval_redis_tls(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_txval_redis_conf_t *rcf);
static void ngx_http_txval_redis_conf_cleanup(void *data);


#define ngx_http_txval_redis_is(name, len, lit)                             \
    ((len) == sizeof(lit) - 1 && ngx_strncmp(name, lit, len) == 0)


char *
ngx_http_txval_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_txval_main_conf_t *tmcf = conf;

    char                         *rv;
    ngx_str_t                    *list;
    ngx_pool_cleanup_t           *cln;
    ngx_http_txval_redis_conf_t  *rcf;

    if (tmcf->redis) {
        return "is duplicate";
    }

    rcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_txval_redis_conf_t));
    if (rcf == NULL) {
        return NGX_CONF_ERROR;
    }

    /* the secrets are wiped when the configuration goes */
    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_txval_redis_conf_cleanup;
    cln->data = rcf;

    if (ngx_array_init(&rcf->addrs, cf->pool, 1,
                       sizeof(ngx_http_txval_redis_addr_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&rcf->prefix, "txval:");
    rcf->pool = 16;
    rcf->connect_timeout = 100;
    rcf->timeout = 50;
    rcf->idle_timeout = 60000;
    rcf->tls_verify = 1;
    rcf->clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    rv = ngx_http_txval_redis_parse_params(cf, cmd, rcf, &list);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    rv = ngx_http_txval_redis_build_addrs(cf, cmd, rcf, list);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    rv = ngx_http_txval_redis_check(cf, cmd, rcf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (rcf->tls) {
        rv = ngx_http_txval_redis_tls(cf, cmd, rcf);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    tmcf->redis = rcf;

    return NGX_CONF_OK;
}


static char *
ngx_http_txval_redis_parse_params(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_txval_redis_conf_t *rcf, ngx_str_t **list)
{
    u_char      *p, *name;
    size_t       len;
    ngx_int_t    n;
    ngx_str_t   *value, s, *str, file;
    ngx_uint_t   i;
    ngx_msec_t  *ms;
    ngx_flag_t  *flag;

    value = cf->args->elts;

    *list = NULL;
    file.len = 0;
    i = 1;

    if (ngx_strlchr(value[1].data, value[1].data + value[1].len, '=')
        == NULL)
    {
        /* one server */
        if (ngx_http_txval_redis_address(cf, cmd, rcf, &value[1], 6379)
            != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }

        i = 2;
    }

    for ( /* void */ ; i < cf->args->nelts; i++) {

        name = value[i].data;
        p = ngx_strlchr(name, name + value[i].len, '=');

        if (p == NULL) {
            /* a bare word: as likely a secret as anything, never shown */
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter %ui (not name=value) in "
                               "\"%V\" directive", i, &cmd->name);
            return NGX_CONF_ERROR;
        }

        len = p - name;
        s.data = p + 1;
        s.len = name + value[i].len - s.data;

        str = NULL;
        ms = NULL;
        flag = NULL;

        if (ngx_http_txval_redis_is(name, len, "sentinel")
            || ngx_http_txval_redis_is(name, len, "cluster"))
        {
            if (rcf->addrs.nelts || *list) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"%V\" directive takes one of an "
                                   "address, sentinel= and cluster=",
                                   &cmd->name);
                return NGX_CONF_ERROR;
            }

            rcf->mode = (len == 8) ? NGX_HTTP_TXVAL_REDIS_SENTINEL
                                   : NGX_HTTP_TXVAL_REDIS_CLUSTER;
            *list = &value[i];
            continue;
        }

        if (ngx_http_txval_redis_is(name, len, "master")) {
            if (s.len == 0 || s.len > 128) {
                goto invalid;
            }

            rcf->master = s;
            continue;
        }

        if (ngx_http_txval_redis_is(name, len, "db")) {
            n = ngx_atoi(s.data, s.len);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            rcf->db = n;
            continue;
        }

        if (ngx_http_txval_redis_is(name, len, "pool")) {
            n = ngx_atoi(s.data, s.len);
            if (n == NGX_ERROR || n < 1 || n > 1024) {
                goto invalid;
            }

            rcf->pool = n;
            continue;
        }

        if (ngx_http_txval_redis_is(name, len, "prefix")) {
            if (s.len > NGX_HTTP_TXVAL_PREFIX_MAX) {
                goto invalid;
            }

            rcf->prefix = s;
            continue;
        }

        if (ngx_http_txval_redis_is(name, len, "password_file")) {
            if (s.len == 0) {
                goto invalid;
            }

            file = s;
            continue;
        }

        if (ngx_http_txval_redis_is(name, len, "user")) {
            str = &rcf->user;

        } else if (ngx_http_txval_redis_is(name, len, "password")) {
            str = &rcf->password;

        } else if (ngx_http_txval_redis_is(name, len, "sentinel_user")) {
            str = &rcf->sentinel_user;

        } else if (ngx_http_txval_redis_is(name, len, "sentinel_password")) {
            str = &rcf->sentinel_password;

        } else if (ngx_http_txval_redis_is(name, len, "tls_name")) {
            str = &rcf->tls_name;

        } else if (ngx_http_txval_redis_is(name, len,
                                           "tls_trusted_certificate"))
        {
            str = &rcf->tls_trusted_certificate;

        } else if (ngx_http_txval_redis_is(name, len, "tls_certificate")) {
            str = &rcf->tls_certificate;

        } else if (ngx_http_txval_redis_is(name, len,
                                           "tls_certificate_key"))
        {
            str = &rcf->tls_certificate_key;

        } else if (ngx_http_txval_redis_is(name, len, "connect_timeout")) {
            ms = &rcf->connect_timeout;

        } else if (ngx_http_txval_redis_is(name, len, "timeout")) {
            ms = &rcf->timeout;

        } else if (ngx_http_txval_redis_is(name, len, "idle_timeout")) {
            ms = &rcf->idle_timeout;

        } else if (ngx_http_txval_redis_is(name, len, "tls")) {
            flag = &rcf->tls;

        } else if (ngx_http_txval_redis_is(name, len, "tls_verify")) {
            flag = &rcf->tls_verify;

        } else {
            /* its name only: the value of a mistyped key may be secret */
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown parameter \"%*s=\" in \"%V\" "
                               "directive", len, name, &cmd->name);
            return NGX_CONF_ERROR;
        }

        if (str) {
            if (s.len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "empty %*s in \"%V\" directive",
                                   len, name, &cmd->name);
                return NGX_CONF_ERROR;
            }

            *str = s;   /* NUL-terminated: the end of the word */
            continue;
        }

        if (flag) {
            if (ngx_http_txval_redis_is(s.data, s.len, "on")) {
                *flag = 1;

            } else if (ngx_http_txval_redis_is(s.data, s.len, "off")) {
                *flag = 0;

            } else {
                goto invalid;
            }

            continue;
        }

        n = ngx_parse_time(&s, 0);
        if (n == NGX_ERROR || n == 0) {
            goto invalid;
        }

        *ms = (ngx_msec_t) n;
    }

    if (file.len) {
        if (rcf->password.len) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" directive takes password= or "
                               "password_file=, not both", &cmd->name);
            return NGX_CONF_ERROR;
        }

        return ngx_http_txval_redis_password_file(cf, cmd, &file,
                                                  &rcf->password);
    }

    return NGX_CONF_OK;

invalid:

    /* (never a secret's: those are only checked for being empty) */
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"%V\" directive",
                       &value[i], &cmd->name);
    return NGX_CONF_ERROR;
}


/*
 * The password is the file's first line (a final CR LF or LF dropped).
 * Read now, with the configuration; never shown.
 */

static char *
ngx_http_txval_redis_password_file(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *name, ngx_str_t *password)
{
    u_char           *p, *last;
    off_t             size;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_str_t         file;
    ngx_file_info_t   fi;

    file = *name;

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(file.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &file);
        return NGX_CONF_ERROR;
    }

    p = NULL;
    size = 0;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", &file);
        goto failed;
    }

    size = ngx_file_size(&fi);

    if (size == 0 || size > 4096) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" in \"%V\" directive: a password file "
                           "holds 1 to 4096 bytes", &file, &cmd->name);
        goto failed;
    }

    p = ngx_pnalloc(cf->pool, size + 1);
    if (p == NULL) {
        goto failed;
    }

    n = ngx_read_fd(fd, p, size);

    if (n != size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_read_fd_n " \"%V\" failed", &file);
        goto failed;
    }

    last = ngx_strlchr(p, p + n, LF);
    if (last == NULL) {
        last = p + n;
    }

    if (last > p && last[-1] == CR) {
        last--;
    }

    if (last == p) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" in \"%V\" directive: an empty password",
                           &file, &cmd->name);
        goto failed;
    }

    /* the rest of the file is no business of ours, nor of the heap's */
    ngx_explicit_memzero(last, p + n - last);
    *last = '\0';

    password->data = p;
    password->len = last - p;

    ngx_close_file(fd);

    return NGX_CONF_OK;

failed:

    if (p) {
        ngx_explicit_memzero(p, size);
    }

    ngx_close_file(fd);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_txval_redis_build_addrs(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_txval_redis_conf_t *rcf, ngx_str_t *list)
{
    u_char     *p, *comma;
    ngx_str_t   s;

    if (list == NULL) {
        return NGX_CONF_OK;
    }

    /* sentinel=a,b,... or cluster=a,b,... */

    s.data = list->data + (rcf->mode == NGX_HTTP_TXVAL_REDIS_SENTINEL
                           ? 9 : 8);
    p = list->data + list->len;

    while (s.data <= p) {
        comma = ngx_strlchr(s.data, p, ',');
        s.len = (comma ? comma : p) - s.data;

        if (s.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "empty address in \"%V\" of the \"%V\" "
                               "directive", list, &cmd->name);
            return NGX_CONF_ERROR;
        }

        if (ngx_http_txval_redis_address(cf, cmd, rcf, &s,
                               rcf->mode == NGX_HTTP_TXVAL_REDIS_SENTINEL
                               ? 26379 : 6379)
            != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }

        s.data += s.len + 1;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_txval_redis_check(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_txval_redis_conf_t *rcf)
{
    if (rcf->addrs.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" directive needs an address, sentinel= or "
                           "cluster=", &cmd->name);
        return NGX_CONF_ERROR;
    }

    if ((rcf->mode == NGX_HTTP_TXVAL_REDIS_SENTINEL) != (rcf->master.len != 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" directive: master= goes with sentinel=, "
                           "and only with it", &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (rcf->mode == NGX_HTTP_TXVAL_REDIS_CLUSTER && rcf->db) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" directive: a Redis Cluster has no db=",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if ((rcf->user.len && rcf->password.len == 0)
        || (rcf->sentinel_user.len && rcf->sentinel_password.len == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" directive: a user goes with a password",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (rcf->mode != NGX_HTTP_TXVAL_REDIS_SENTINEL
        && (rcf->sentinel_user.len || rcf->sentinel_password.len))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" directive: sentinel_user= and "
                           "sentinel_password= go with sentinel=",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (!rcf->tls
        && (rcf->tls_name.len || rcf->tls_trusted_certificate.len
            || rcf->tls_certificate.len || rcf->tls_certificate_key.len))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" directive: tls_* parameters need tls=on",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if ((rcf->tls_certificate.len == 0)
        != (rcf->tls_certificate_key.len == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" directive: tls_certificate= and "
                           "tls_certificate_key= go together", &cmd->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * host:port (resolved now; numeric from then on, or again through the
 * resolver) or unix:/path
 */

static char *
ngx_http_txval_redis_address(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_txval_redis_conf_t *rcf, ngx_str_t *text, in_port_t port)
{
    size_t                        len;
    ngx_url_t                     u;
    ngx_http_txval_redis_addr_t  *addr;

    addr = ngx_array_push(&rcf->addrs);
    if (addr == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(addr, sizeof(ngx_http_txval_redis_addr_t));

    addr->text = *text;

    if (text->len >= 5 && ngx_strncmp(text->data, "unix:", 5) == 0) {
        if (rcf->mode != NGX_HTTP_TXVAL_REDIS_SINGLE || text->len == 5) {
            goto invalid;
        }

        ngx_memzero(&u, sizeof(ngx_url_t));
        u.url = *text;

        if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
            goto invalid;
        }

        addr->host.len = text->len - 5;
        addr->host.data = ngx_pnalloc(cf->pool, addr->host.len + 1);
        if (addr->host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(addr->host.data, text->data + 5, addr->host.len);
        addr->host.data[addr->host.len] = '\0';
        addr->name = addr->host;
        addr->port = 0;
        addr->socklen = u.addrs[0].socklen;
        ngx_memcpy(&addr->sockaddr, u.addrs[0].sockaddr, addr->socklen);

        return NGX_CONF_OK;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = *text;
    u.default_port = port;
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.family == AF_UNIX
        || u.host.len == 0)
    {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"%V\" of the \"%V\" directive",
                               u.err, text, &cmd->name);
            return NGX_CONF_ERROR;
        }

        goto invalid;
    }

    addr->port = u.port;

    /* the name as written, for the resolver, SNI and the name check */
    addr->name.len = u.host.len;
    addr->name.data = ngx_pnalloc(cf->pool, u.host.len + 1);
    if (addr->name.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(addr->name.data, u.host.data, u.host.len);
    addr->name.data[u.host.len] = '\0';

    if (u.host.len > 2 && u.host.data[0] == '[') {
        /* [::1]: the brackets are not the name's */
        addr->name.data++;
        addr->name.len -= 2;
        addr->name.data[addr->name.len] = '\0';
    }

    addr->named = !ngx_http_txval_redis_numeric(addr->name.data,
                                                addr->name.len);

    /* resolved now (a name the resolver may find later is left so) */

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = *text;
    u.default_port = port;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        if (addr->named) {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "\"%V\" directive: host \"%V\" not found "
                               "now; it needs a \"resolver\"",
                               &cmd->name, &addr->name);
            return NGX_CONF_OK;
        }

        goto invalid;
    }

    addr->socklen = u.addrs[0].socklen;
    ngx_memcpy(&addr->sockaddr, u.addrs[0].sockaddr, addr->socklen);

    len = NGX_SOCKADDR_STRLEN;
    addr->host.data = ngx_pnalloc(cf->pool, len + 1);
    if (addr->host.data == NULL) {
        return NGX_CONF_ERROR;
    }

    addr->host.len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen,
                                   addr->host.data, len, 0);
    addr->host.data[addr->host.len] = '\0';

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid address \"%V\" in \"%V\" directive, "
                       "it must be host:port%s", text, &cmd->name,
                       rcf->mode == NGX_HTTP_TXVAL_REDIS_SINGLE
                       ? " or unix:/path" : "");
    return NGX_CONF_ERROR;
}


/* after the http block: a name not found needs the resolver */

ngx_int_t
ngx_http_txval_redis_postconf(ngx_conf_t *cf,
    ngx_http_txval_redis_conf_t *rcf)
{
    ngx_uint_t                    i;
    ngx_resolver_t               *r;
    ngx_http_core_loc_conf_t     *clcf = rcf->clcf;
    ngx_http_txval_redis_addr_t  *addr;

    r = clcf->resolver;

    if (r != NULL && r != NGX_CONF_UNSET_PTR && r->connections.nelts) {
        return NGX_OK;
    }

    addr = rcf->addrs.elts;

    for (i = 0; i < rcf->addrs.nelts; i++) {
        if (addr[i].port && addr[i].socklen == 0) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "txval_redis: host not found in \"%V\", and no "
                          "\"resolver\" in the http block", &addr[i].text);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* TLS 1.2 and 1.3 to every node, as a client */

static char *
ngx_http_txval_redis_tls(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_txval_redis_conf_t *rcf)
{
#if (NGX_SSL)
    ngx_str_t            ciphers;
    ngx_pool_cleanup_t  *cln;

    rcf->ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (rcf->ssl == NULL) {
        return NGX_CONF_ERROR;
    }

    rcf->ssl->log = cf->log;

    if (ngx_ssl_create(rcf->ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(rcf->ssl);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = rcf->ssl;

    ngx_str_set(&ciphers, "DEFAULT");

    if (ngx_ssl_ciphers(cf, rcf->ssl, &ciphers, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (rcf->tls_certificate.len) {
        if (ngx_ssl_certificate(cf, rcf->ssl, &rcf->tls_certificate,
                                &rcf->tls_certificate_key, NULL)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    if (rcf->tls_verify) {
        if (rcf->tls_trusted_certificate.len) {
            if (ngx_ssl_trusted_certificate(cf, rcf->ssl,
                                            &rcf->tls_trusted_certificate,
                                            9)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

        } else if (SSL_CTX_set_default_verify_paths(rcf->ssl->ctx) != 1) {
            ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                          "SSL_CTX_set_default_verify_paths() failed");
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_ssl_client_session_cache(cf, rcf->ssl, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

#else

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" directive: tls=on needs nginx built with "
                       "OpenSSL", &cmd->name);
    return NGX_CONF_ERROR;

#endif
}


static void
ngx_http_txval_redis_conf_cleanup(void *data)
{
    ngx_http_txval_redis_conf_t  *rcf = data;

    if (rcf->password.len) {
        ngx_explicit_memzero(rcf->password.data, rcf->password.len);
    }

    if (rcf->sentinel_password.len) {
        ngx_explicit_memzero(rcf->sentinel_password.data,
                             rcf->sentinel_password.len);
    }
}
