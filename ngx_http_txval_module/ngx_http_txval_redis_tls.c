
/*
 * txval: TLS on a Redis connection (tls=on), with nginx's ngx_ssl, like
 * an upstream's proxy_ssl: TLS 1.2 or 1.3; SNI (tls_name, or the host
 * name written; never an address); the certificate chain checked
 * against tls_trusted_certificate (or the system's CAs) and its name
 * against tls_name or the host written (an address: its IP SAN), unless
 * tls_verify=off; a client certificate when tls_certificate is set. A
 * check that fails closes the connection (fail closed) with a line in
 * the error log. Each node keeps its last session, for the next connect
 * (TLS 1.3: the ticket that comes after the handshake).
 */


#include "ngx_http_txval_redis_int.h"


#if (NGX_SSL)

static void ngx_http_txval_redis_handshaked(ngx_connection_t *c);
static ngx_int_t ngx_http_txval_redis_verify(ngx_http_txval_redis_conn_t *rc);
static void ngx_http_txval_redis_save_session(ngx_connection_t *c);


/* after the TCP connect: the handshake */

void
ngx_http_txval_redis_tls_start(ngx_http_txval_redis_conn_t *rc)
{
    ngx_int_t                     rv;
    ngx_str_t                    *name;
    ngx_connection_t             *c = rc->c;
    ngx_http_txval_redis_node_t  *node = rc->node;
    ngx_http_txval_redis_conf_t  *rcf = node->pool->conf;

    if (ngx_ssl_create_connection(rcf->ssl, c, NGX_SSL_CLIENT)
        != NGX_OK)
    {
        ngx_http_txval_redis_close(rc, NGX_HTTP_TXVAL_REDIS_CLOSE_FAILED);
        return;
    }

    name = rcf->tls_name.len ? &rcf->tls_name
           : (node->addr ? &node->addr->name : NULL);

    if (name && name->len
        && !ngx_http_txval_redis_numeric(name->data, name->len))
    {
        /* SNI: a host name, never an address (RFC 6066) */
        if (SSL_set_tlsext_host_name(c->ssl->connection,
                                     (char *) name->data)
            == 0)
        {
            ngx_ssl_error(NGX_LOG_ERR, c->log, 0,
                          "SSL_set_tlsext_host_name(\"%V\") failed",
                          name);
            ngx_http_txval_redis_close(rc,
                                       NGX_HTTP_TXVAL_REDIS_CLOSE_FAILED);
            return;
        }
    }

    if (node->session
        && ngx_ssl_set_session(c, node->session) != NGX_OK)
    {
        ngx_http_txval_redis_close(rc, NGX_HTTP_TXVAL_REDIS_CLOSE_FAILED);
        return;
    }

    c->ssl->save_session = ngx_http_txval_redis_save_session;

    rc->state = NGX_HTTP_TXVAL_REDIS_HANDSHAKE;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "txval: redis %V TLS handshake, session:%p",
                   &node->text, node->session);

    rv = ngx_ssl_handshake(c);

    if (rv == NGX_AGAIN) {
        c->ssl->handler = ngx_http_txval_redis_handshaked;
        return;
    }

    ngx_http_txval_redis_handshaked(c);
    return;
}


static void
ngx_http_txval_redis_handshaked(ngx_connection_t *c)
{
    ngx_http_txval_redis_conn_t  *rc = c->data;
    ngx_http_txval_redis_node_t  *node = rc->node;

    rc->handling++;

    if (!c->ssl->handshaked) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "txval: redis %V: TLS handshake failed", &node->text);
        ngx_http_txval_redis_close(rc, NGX_HTTP_TXVAL_REDIS_CLOSE_FAILED
                                       |NGX_HTTP_TXVAL_REDIS_CLOSE_BACKOFF);
        goto done;
    }

    if (ngx_http_txval_redis_verify(rc) != NGX_OK) {
        ngx_http_txval_redis_close(rc, NGX_HTTP_TXVAL_REDIS_CLOSE_FAILED
                                       |NGX_HTTP_TXVAL_REDIS_CLOSE_BACKOFF);
        goto done;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "txval: redis %V TLS handshake done, reused:%d",
                   &node->text, SSL_session_reused(c->ssl->connection));

    c->read->handler = ngx_http_txval_redis_handler;
    c->write->handler = ngx_http_txval_redis_handler;

    ngx_http_txval_redis_ready(rc);

done:

    ngx_http_txval_redis_unwind(rc);
}


/* the chain to tls_trusted_certificate, and the name; fail closed */

static ngx_int_t
ngx_http_txval_redis_verify(ngx_http_txval_redis_conn_t *rc)
{
    long                          err;
    X509                         *cert;
    ngx_str_t                     name;
    ngx_int_t                     rv;
    ngx_connection_t             *c = rc->c;
    ngx_http_txval_redis_node_t  *node = rc->node;
    ngx_http_txval_redis_conf_t  *rcf = node->pool->conf;

    if (!rcf->tls_verify) {
        return NGX_OK;
    }

    err = SSL_get_verify_result(c->ssl->connection);

    if (err != X509_V_OK) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "txval: redis %V: TLS certificate verify error: "
                      "(%l:%s)", &node->text, err,
                      X509_verify_cert_error_string(err));
        return NGX_ERROR;
    }

    if (rcf->tls_name.len) {
        name = rcf->tls_name;

    } else if (node->addr) {
        name = node->addr->name;

    } else {
        /* a node Sentinel or the Cluster named: by its address */
        name.data = node->host;
        name.len = ngx_strlen(node->host);
    }

    if (ngx_http_txval_redis_numeric(name.data, name.len)) {
        cert = SSL_get_peer_certificate(c->ssl->connection);
        rv = (cert && X509_check_ip_asc(cert, (char *) name.data, 0) == 1)
             ? NGX_OK : NGX_ERROR;
        if (cert) {
            X509_free(cert);
        }

    } else {
        rv = ngx_ssl_check_host(c, &name);
    }

    if (rv != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "txval: redis %V: TLS certificate does not match "
                      "\"%V\"", &node->text, &name);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* a new session (TLS 1.3: after the handshake): the node's next connect */

static void
ngx_http_txval_redis_save_session(ngx_connection_t *c)
{
    ngx_ssl_session_t            *session;
    ngx_http_txval_redis_conn_t  *rc = c->data;
    ngx_http_txval_redis_node_t  *node = rc->node;

    session = ngx_ssl_get_session(c);
    if (session == NULL) {
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "txval: redis %V TLS session saved: %p",
                   &node->text, session);

    if (node->session) {
        ngx_ssl_free_session(node->session);
    }

    node->session = session;
}


#else

void
ngx_http_txval_redis_tls_start(ngx_http_txval_redis_conn_t *rc)
{
    ngx_http_txval_redis_close(rc, NGX_HTTP_TXVAL_REDIS_CLOSE_FAILED);
}

#endif
