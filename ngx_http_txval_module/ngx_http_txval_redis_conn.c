
/*
 * txval: one Redis connection, nginx's own.
 *
 * Connected with ngx_event_connect_peer (non-blocking, numeric addresses
 * only), driven by nginx's read and write events and one timer, wrapped
 * in ngx_ssl when tls=on (ngx_http_txval_redis_tls.c), like an
 * upstream's. hiredis is only the codec:
 * commands come formatted (redisFormatCommandArgv), replies are read with
 * a redisReader.
 *
 * States (ngx_http_txval_redis_state_e):
 *
 *     CONNECTING --> HANDSHAKE (tls=on) --> READY --> CLOSED
 *          \______________\__________________\_______/
 *
 * Commands are appended to the connection's output buffer in any state.
 * A READY connection writes them once per event loop round: the first
 * command of a round posts the write event, and the commands queued
 * until it runs go in one send() (so one write, no epoll_ctl, per round;
 * the sockets are edge-triggered). Before READY they wait: AUTH (with an
 * ACL user or not) and SELECT are put ahead of everything else on a new
 * connection, and their replies are read first.
 *
 * Replies come in the order of the commands: each one goes to the oldest
 * operation on the connection (an ASKING reply is skipped). One timer
 * covers the connection: the connect and handshake deadline, then the
 * oldest operation's deadline, then, idle, its idle deadline. A deadline
 * passed closes the connection (never reused) and fails every operation
 * on it; so does an error. A handler that closes its own connection
 * leaves the memory to be freed as it returns (rc->handling).
 */


#include "ngx_http_txval_redis_int.h"


static void ngx_http_txval_redis_timer(ngx_event_t *ev);
static void ngx_http_txval_redis_connected(ngx_http_txval_redis_conn_t *rc);
static ngx_int_t ngx_http_txval_redis_test_connect(ngx_connection_t *c);
static void ngx_http_txval_redis_send_out(ngx_http_txval_redis_conn_t *rc);
static void ngx_http_txval_redis_recv_in(ngx_http_txval_redis_conn_t *rc);
static void ngx_http_txval_redis_deliver(ngx_http_txval_redis_conn_t *rc,
    redisReply *reply);
static ngx_int_t ngx_http_txval_redis_append(ngx_http_txval_redis_conn_t *rc,
    size_t len);
static ngx_int_t ngx_http_txval_redis_setup(ngx_http_txval_redis_conn_t *rc);
static void ngx_http_txval_redis_free(ngx_http_txval_redis_conn_t *rc);


static char  ngx_http_txval_redis_asking_cmd[] = "*1\r\n$6\r\nASKING\r\n";


ngx_http_txval_redis_conn_t *
ngx_http_txval_redis_connect(ngx_http_txval_redis_pool_t *pool,
    ngx_http_txval_redis_node_t *node)
{
    ngx_int_t                     rv;
    ngx_connection_t             *c;
    ngx_peer_connection_t         pc;
    ngx_http_txval_redis_conf_t  *rcf = pool->conf;
    ngx_http_txval_redis_conn_t  *rc;

    if (node->socklen == 0) {
        /* a name not resolved yet */
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "txval: redis %V: no address yet", &node->text);
        node->down_until = ngx_current_msec + NGX_HTTP_TXVAL_REDIS_BACKOFF;
        return NULL;
    }

    rc = ngx_calloc(sizeof(ngx_http_txval_redis_conn_t), pool->log);
    if (rc == NULL) {
        return NULL;
    }

    rc->reader = redisReaderCreate();
    if (rc->reader == NULL) {
        ngx_free(rc);
        return NULL;
    }

    rc->node = node;
    rc->generation = node->generation;
    ngx_queue_init(&rc->ops);

    if (ngx_http_txval_redis_setup(rc) != NGX_OK) {
        goto failed;
    }

    ngx_memzero(&pc, sizeof(ngx_peer_connection_t));

    pc.sockaddr = &node->sockaddr.sockaddr;
    pc.socklen = node->socklen;
    pc.name = &node->text;
    pc.get = ngx_event_get_peer;
    pc.log = pool->log;
    pc.log_error = NGX_ERROR_ERR;

    rv = ngx_event_connect_peer(&pc);

    if (rv == NGX_ERROR || rv == NGX_BUSY || rv == NGX_DECLINED) {
        /* ngx_event_connect_peer() said why */
        if (pc.connection) {
            ngx_close_connection(pc.connection);
        }

        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "txval: redis %V: connect failed", &node->text);

        node->down_until = ngx_current_msec + NGX_HTTP_TXVAL_REDIS_BACKOFF;
        node->up = 0;
        goto failed;
    }

    c = pc.connection;
    c->data = rc;
    c->read->handler = ngx_http_txval_redis_handler;
    c->write->handler = ngx_http_txval_redis_handler;

    if (rcf->tls) {
        /* ngx_ssl keeps its connection state in the connection's pool */
        c->pool = ngx_create_pool(1024, pool->log);
        if (c->pool == NULL) {
            ngx_close_connection(c);
            goto failed;
        }
    }

    rc->c = c;
    rc->state = NGX_HTTP_TXVAL_REDIS_CONNECTING;

    rc->timer.handler = ngx_http_txval_redis_timer;
    rc->timer.data = rc;
    rc->timer.log = pool->log;
    rc->timer.cancelable = 1;     /* see ngx_http_txval_redis_arm() */

    ngx_queue_insert_tail(&node->conns, &rc->queue);
    node->nconns++;

    rc->connect_deadline = ngx_current_msec + rcf->connect_timeout;
    ngx_add_timer(&rc->timer, rcf->connect_timeout);

    if (rv == NGX_OK) {
        /* (a unix socket) goes on from the write handler, not from here */
        ngx_post_event(c->write, &ngx_posted_events);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "txval: redis %V connecting, fd:%d", &node->text, c->fd);

    return rc;

failed:

    ngx_free(rc->out);
    redisReaderFree(rc->reader);
    ngx_free(rc);

    return NULL;
}


/* AUTH [user] password, SELECT db: ahead of everything on the connection */

static ngx_int_t
ngx_http_txval_redis_setup(ngx_http_txval_redis_conn_t *rc)
{
    int                           argc, len;
    char                         *cmd;
    size_t                        argvlen[3];
    u_char                        db[NGX_INT_T_LEN];
    ngx_str_t                    *user, *password;
    const char                   *argv[3];
    ngx_http_txval_redis_node_t  *node = rc->node;
    ngx_http_txval_redis_conf_t  *rcf = node->pool->conf;

    user = node->control ? &rcf->sentinel_user : &rcf->user;
    password = node->control ? &rcf->sentinel_password : &rcf->password;

    if (password->len) {
        argc = 0;
        argv[argc] = "AUTH";
        argvlen[argc++] = 4;

        if (user->len) {
            argv[argc] = (const char *) user->data;
            argvlen[argc++] = user->len;
        }

        argv[argc] = (const char *) password->data;
        argvlen[argc++] = password->len;

        len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
        if (len < 0) {
            return NGX_ERROR;
        }

        if (ngx_http_txval_redis_append(rc, len) != NGX_OK) {
            redisFreeCommand(cmd);
            return NGX_ERROR;
        }

        rc->out_len = ngx_cpymem(rc->out + rc->out_len, cmd, len) - rc->out;
        ngx_explicit_memzero(cmd, len);
        redisFreeCommand(cmd);
        rc->setup++;
    }

    if (rcf->db && !node->control) {
        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = (const char *) db;
        argvlen[1] = ngx_sprintf(db, "%ui", rcf->db) - db;

        len = redisFormatCommandArgv(&cmd, 2, argv, argvlen);
        if (len < 0) {
            return NGX_ERROR;
        }

        if (ngx_http_txval_redis_append(rc, len) != NGX_OK) {
            redisFreeCommand(cmd);
            return NGX_ERROR;
        }

        rc->out_len = ngx_cpymem(rc->out + rc->out_len, cmd, len) - rc->out;
        redisFreeCommand(cmd);
        rc->setup++;
    }

    return NGX_OK;
}


/* room for len more bytes in the output buffer */

static ngx_int_t
ngx_http_txval_redis_append(ngx_http_txval_redis_conn_t *rc, size_t len)
{
    u_char  *p;
    size_t   size;

    if (rc->out_sent && rc->out_sent == rc->out_len) {
        rc->out_sent = 0;
        rc->out_len = 0;
    }

    if (rc->out_len + len <= rc->out_size) {
        return NGX_OK;
    }

    size = ngx_max(rc->out_size * 2, 1024);

    while (size < rc->out_len + len) {
        size *= 2;
    }

    p = ngx_alloc(size, rc->node->pool->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (rc->out) {
        ngx_memcpy(p, rc->out, rc->out_len);
        ngx_explicit_memzero(rc->out, rc->out_size);
        ngx_free(rc->out);
    }

    rc->out = p;
    rc->out_size = size;

    return NGX_OK;
}


/*
 * The operation's commands (each after ASKING if it was redirected so)
 * into the output buffer, all or none; written this event loop round.
 */

ngx_int_t
ngx_http_txval_redis_write_op(ngx_http_txval_redis_conn_t *rc,
    ngx_http_txval_redis_op_t *op)
{
    u_char      *p;
    size_t       len;
    ngx_uint_t   i;

    len = 0;

    for (i = 0; i < op->ncmds; i++) {
        len += op->cmd_len[i];

        if (op->ask) {
            len += sizeof(ngx_http_txval_redis_asking_cmd) - 1;
        }
    }

    if (ngx_http_txval_redis_append(rc, len) != NGX_OK) {
        return NGX_ERROR;
    }

    p = rc->out + rc->out_len;

    for (i = 0; i < op->ncmds; i++) {
        if (op->ask) {
            p = ngx_cpymem(p, ngx_http_txval_redis_asking_cmd,
                           sizeof(ngx_http_txval_redis_asking_cmd) - 1);
        }

        p = ngx_cpymem(p, op->cmd[i], op->cmd_len[i]);
    }

    rc->out_len = p - rc->out;

    op->asking = op->ask;
    op->ask = 0;
    op->replied = 0;
    op->pending = op->asking ? 2 * op->ncmds : op->ncmds;
    op->conn = rc;

    ngx_queue_insert_tail(&rc->ops, &op->queue);
    rc->nops++;

    if (rc->state == NGX_HTTP_TXVAL_REDIS_READY && !rc->c->write->posted) {
        ngx_post_event(rc->c->write, &ngx_posted_events);
    }

    return NGX_OK;
}


/*
 * Both events of a connection: while connecting, either says the connect
 * is done (a refused one shows on both); then writes go out, replies
 * come in.
 */

void
ngx_http_txval_redis_handler(ngx_event_t *ev)
{
    ngx_connection_t             *c = ev->data;
    ngx_http_txval_redis_conn_t  *rc = c->data;

    rc->handling++;

    switch (rc->state) {

    case NGX_HTTP_TXVAL_REDIS_CONNECTING:
        ngx_http_txval_redis_connected(rc);
        break;

    case NGX_HTTP_TXVAL_REDIS_READY:
        if (ev->write) {
            ngx_http_txval_redis_send_out(rc);

        } else {
            ngx_http_txval_redis_recv_in(rc);
        }

        break;

    default:
        break;
    }

    ngx_http_txval_redis_unwind(rc);
}


/* a handler returns: a connection it closed is freed now */

void
ngx_http_txval_redis_unwind(ngx_http_txval_redis_conn_t *rc)
{
    if (--rc->handling == 0 && rc->state == NGX_HTTP_TXVAL_REDIS_CLOSED) {
        ngx_http_txval_redis_free(rc);
    }
}


static ngx_int_t
ngx_http_txval_redis_test_connect(ngx_connection_t *c)
{
    int        err;
    socklen_t  len;

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        ngx_log_error(NGX_LOG_ERR, c->log, err, "txval: redis %V: connect "
                      "failed", &((ngx_http_txval_redis_conn_t *) c->data)
                                  ->node->text);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the TCP connect is done, one way or the other */

static void
ngx_http_txval_redis_connected(ngx_http_txval_redis_conn_t *rc)
{
    ngx_connection_t             *c = rc->c;
    ngx_http_txval_redis_node_t  *node = rc->node;

    if (ngx_http_txval_redis_test_connect(c) != NGX_OK) {
        ngx_http_txval_redis_close(rc, NGX_HTTP_TXVAL_REDIS_CLOSE_FAILED
                                       |NGX_HTTP_TXVAL_REDIS_CLOSE_BACKOFF);
        return;
    }

    if (node->pool->conf->tls) {
        ngx_http_txval_redis_tls_start(rc);
        return;
    }

    ngx_http_txval_redis_ready(rc);
}


void
ngx_http_txval_redis_ready(ngx_http_txval_redis_conn_t *rc)
{
    ngx_connection_t             *c = rc->c;
    ngx_http_txval_redis_node_t  *node = rc->node;

    rc->state = NGX_HTTP_TXVAL_REDIS_READY;
    node->up = 1;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "txval: redis %V ready, fd:%d", &node->text, c->fd);

    ngx_http_txval_redis_arm(rc);
    ngx_http_txval_redis_publish(node->pool);

    if (rc->out_len > rc->out_sent) {
        ngx_post_event(c->write, &ngx_posted_events);
    }
}


/* writes what is queued; the rest when the socket can take it */

static void
ngx_http_txval_redis_send_out(ngx_http_txval_redis_conn_t *rc)
{
    ssize_t            n;
    ngx_connection_t  *c = rc->c;

    if (rc->out_len == 0) {
        /* nothing waits to be written: a write event after the write */
        return;
    }

    while (rc->out_sent < rc->out_len) {
        n = c->send(c, rc->out + rc->out_sent, rc->out_len - rc->out_sent);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                /* the rest could never be written: its operations fail */
                ngx_http_txval_redis_close(rc,
                                           NGX_HTTP_TXVAL_REDIS_CLOSE_FAILED);
            }

            return;
        }

        if (n == NGX_ERROR) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "txval: redis %V: connection lost: send failed",
                          &rc->node->text);
            ngx_http_txval_redis_close(rc, NGX_HTTP_TXVAL_REDIS_CLOSE_FAILED);
            return;
        }

        rc->out_sent += n;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "txval: redis %V sent %uz bytes",
                   &rc->node->text, rc->out_len);

    rc->out_sent = 0;
    rc->out_len = 0;
}


/* reads what came, and hands out every whole reply */

static void
ngx_http_txval_redis_recv_in(ngx_http_txval_redis_conn_t *rc)
{
    void              *reply;
    ssize_t            n;
    ngx_uint_t         level;
    ngx_connection_t  *c = rc->c;
    u_char             buf[16384];

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            level = rc->nops ? NGX_LOG_ERR : NGX_LOG_INFO;
            ngx_log_error(level, c->log, 0,
                          "txval: redis %V: connection lost: %s",
                          &rc->node->text, n == 0 ? "closed" : "read failed");
            ngx_http_txval_redis_close(rc, NGX_HTTP_TXVAL_REDIS_CLOSE_FAILED);
            return;
        }

        if (redisReaderFeed(rc->reader, (char *) buf, n) != REDIS_OK) {
            goto invalid;
        }

        for ( ;; ) {
            if (redisReaderGetReply(rc->reader, &reply) != REDIS_OK) {
                goto invalid;
            }

            if (reply == NULL) {
                break;
            }

            ngx_http_txval_redis_deliver(rc, reply);
            freeReplyObject(reply);

            if (rc->state == NGX_HTTP_TXVAL_REDIS_CLOSED) {
                return;
            }
        }

        if (!c->read->ready) {
            break;
        }
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_http_txval_redis_close(rc, NGX_HTTP_TXVAL_REDIS_CLOSE_FAILED);
    }

    return;

invalid:

    ngx_log_error(NGX_LOG_ERR, c->log, 0,
                  "txval: redis %V: invalid reply: %s", &rc->node->text,
                  rc->reader->errstr);
    ngx_http_txval_redis_close(rc, NGX_HTTP_TXVAL_REDIS_CLOSE_FAILED);
}


/* one reply: to the connection's setup, or to its oldest operation */

static void
ngx_http_txval_redis_deliver(ngx_http_txval_redis_conn_t *rc,
    redisReply *reply)
{
    ngx_uint_t                    cmd;
    ngx_queue_t                  *q;
    ngx_http_txval_redis_op_t    *op;
    ngx_http_txval_redis_node_t  *node = rc->node;

    if (rc->setup) {
        rc->setup--;

        if (reply->type != REDIS_REPLY_ERROR) {
            return;
        }

        /* the message is Redis', never the password */
        ngx_log_error(NGX_LOG_ERR, rc->c->log, 0,
                      "txval: redis %V: connection setup refused: %*s",
                      &node->text, (size_t) ngx_min(reply->len, 128),
                      reply->str);

        ngx_http_txval_redis_close(rc, NGX_HTTP_TXVAL_REDIS_CLOSE_BACKOFF);
        return;
    }

    if (ngx_queue_empty(&rc->ops)) {
        ngx_log_error(NGX_LOG_ERR, rc->c->log, 0,
                      "txval: redis %V: a reply nobody asked for",
                      &node->text);
        ngx_http_txval_redis_close(rc, NGX_HTTP_TXVAL_REDIS_CLOSE_FAILED);
        return;
    }

    q = ngx_queue_head(&rc->ops);
    op = ngx_queue_data(q, ngx_http_txval_redis_op_t, queue);

    cmd = op->replied++;

    if (op->asking) {
        if (cmd % 2 == 0) {
            /* ASKING's OK; were it refused, the command's reply tells */
            op->pending--;
            return;
        }

        cmd /= 2;
    }

    ngx_http_txval_redis_reply(op, cmd, reply);

    if (--op->pending) {
        return;
    }

    /* every reply is in */

    ngx_queue_remove(&op->queue);
    rc->nops--;
    op->conn = NULL;

    ngx_http_txval_redis_idle(rc);

    ngx_http_txval_redis_complete(op);
}


/* an operation is off the connection: sets its timer, or closes it */

void
ngx_http_txval_redis_idle(ngx_http_txval_redis_conn_t *rc)
{
    ngx_http_txval_redis_node_t  *node = rc->node;

    if (rc->state == NGX_HTTP_TXVAL_REDIS_CLOSED) {
        return;
    }

    if (rc->nops == 0
        && (node->retired || rc->generation != node->generation))
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rc->c->log, 0,
                       "txval: redis %V connection of a node left, closed",
                       &node->text);
        ngx_http_txval_redis_close(rc, 0);
        return;
    }

    ngx_http_txval_redis_arm(rc);

    if (rc->nops == 0) {
        ngx_http_txval_redis_publish(node->pool);
    }
}


/*
 * Closes a connection for good: every operation on it fails (TIMEOUT or
 * ERROR), the node may fail fast for a while and the map be asked again
 * (how). The memory goes now, or when the handler running on it returns.
 */

void
ngx_http_txval_redis_close(ngx_http_txval_redis_conn_t *rc, ngx_uint_t how)
{
    ngx_queue_t                   ops, *q;
    ngx_pool_t                   *cpool;
    ngx_connection_t             *c;
    ngx_http_txval_redis_op_t    *op;
    ngx_http_txval_redis_node_t  *node = rc->node;
    ngx_http_txval_redis_pool_t  *pool = node->pool;

    if (rc->state == NGX_HTTP_TXVAL_REDIS_CLOSED) {
        return;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "txval: redis %V closed, state:%d, ops:%ui",
                   &node->text, rc->state, rc->nops);

    if (how & NGX_HTTP_TXVAL_REDIS_CLOSE_BACKOFF) {
        node->down_until = ngx_current_msec + NGX_HTTP_TXVAL_REDIS_BACKOFF;
    }

    if (rc->state != NGX_HTTP_TXVAL_REDIS_READY
        && (how & NGX_HTTP_TXVAL_REDIS_CLOSE_FAILED))
    {
        node->up = 0;
    }

    rc->state = NGX_HTTP_TXVAL_REDIS_CLOSED;
    rc->timedout = (how & NGX_HTTP_TXVAL_REDIS_CLOSE_TIMEDOUT) ? 1 : 0;

    /* no new operation may pick this connection from now on */
    ngx_queue_remove(&rc->queue);
    node->nconns--;

    if (rc->timer.timer_set) {
        ngx_del_timer(&rc->timer);
    }

    c = rc->c;
    rc->c = NULL;
    cpool = c->pool;

#if (NGX_SSL)
    if (c->ssl) {
        /* no close_notify wait: the socket goes now */
        c->ssl->no_wait_shutdown = 1;
        c->ssl->no_send_shutdown = 1;
        (void) ngx_ssl_shutdown(c);
    }
#endif

    ngx_close_connection(c);

    if (cpool) {
        ngx_destroy_pool(cpool);
    }

    /* the operations fail; their requests may send again, elsewhere */

    node->holds++;

    ngx_queue_init(&ops);

    if (!ngx_queue_empty(&rc->ops)) {
        ngx_queue_add(&ops, &rc->ops);
        ngx_queue_init(&rc->ops);
    }

    rc->nops = 0;

    if (how & NGX_HTTP_TXVAL_REDIS_CLOSE_FAILED) {
        ngx_http_txval_redis_failed(pool, node);
    }

    while (!ngx_queue_empty(&ops)) {
        q = ngx_queue_head(&ops);
        op = ngx_queue_data(q, ngx_http_txval_redis_op_t, queue);
        ngx_queue_remove(q);

        op->conn = NULL;

        if (op->status == NGX_HTTP_TXVAL_REDIS_OK || op->redirected) {
            op->redirected = 0;
            op->status = rc->timedout ? NGX_HTTP_TXVAL_REDIS_TIMEOUT
                                      : NGX_HTTP_TXVAL_REDIS_ERROR;
        }

        ngx_http_txval_redis_complete(op);
    }

    node->holds--;

    ngx_http_txval_redis_publish(pool);
    ngx_http_txval_redis_release(pool, node);

    if (rc->handling == 0) {
        ngx_http_txval_redis_free(rc);
    }
}


static void
ngx_http_txval_redis_free(ngx_http_txval_redis_conn_t *rc)
{
    if (rc->out) {
        /* AUTH went through it */
        ngx_explicit_memzero(rc->out, rc->out_size);
        ngx_free(rc->out);
    }

    redisReaderFree(rc->reader);
    ngx_free(rc);
}


/* the timer at the connection's next deadline */

void
ngx_http_txval_redis_arm(ngx_http_txval_redis_conn_t *rc)
{
    ngx_msec_t                    deadline;
    ngx_queue_t                  *q;
    ngx_msec_int_t                left;
    ngx_http_txval_redis_op_t    *op;
    ngx_http_txval_redis_conf_t  *rcf = rc->node->pool->conf;

    if (!ngx_queue_empty(&rc->ops)) {
        q = ngx_queue_head(&rc->ops);
        op = ngx_queue_data(q, ngx_http_txval_redis_op_t, queue);
        deadline = op->deadline;

    } else if (rc->state == NGX_HTTP_TXVAL_REDIS_READY) {
        rc->idle_deadline = ngx_current_msec + rcf->idle_timeout;
        deadline = rc->idle_deadline;

    } else {
        deadline = rc->connect_deadline;
    }

    if (rc->state != NGX_HTTP_TXVAL_REDIS_READY
        && (ngx_msec_int_t) (rc->connect_deadline - deadline) < 0)
    {
        deadline = rc->connect_deadline;
    }

    left = (ngx_msec_int_t) (deadline - ngx_current_msec);

    /*
     * requests waiting on this connection hold up a graceful exit (reload,
     * quit) until they are answered; an idle connection does not
     */
    rc->timer.cancelable = ngx_queue_empty(&rc->ops) ? 1 : 0;

    if (left <= 0) {
        left = 1;
    }

    /*
     * nginx keeps a set timer that is off by less than
     * NGX_TIMER_LAZY_DELAY: an earlier deadline than the timer's is set
     * anew; a later one is checked when the timer fires
     */
    if (rc->timer.timer_set
        && (ngx_msec_int_t) (ngx_current_msec + left - rc->timer.timer.key)
           < 0)
    {
        ngx_del_timer(&rc->timer);
    }

    ngx_add_timer(&rc->timer, (ngx_msec_t) left);
}


static void
ngx_http_txval_redis_timer(ngx_event_t *ev)
{
    ngx_http_txval_redis_conn_t  *rc = ev->data;

    ngx_queue_t                  *q;
    ngx_msec_int_t                left;
    ngx_http_txval_redis_op_t    *op;
    ngx_http_txval_redis_node_t  *node = rc->node;

    /* (the timer may fire before the deadline: see above) */

    if (rc->state != NGX_HTTP_TXVAL_REDIS_READY) {
        left = (ngx_msec_int_t) (rc->connect_deadline - ngx_current_msec);

    } else if (rc->nops) {
        q = ngx_queue_head(&rc->ops);
        op = ngx_queue_data(q, ngx_http_txval_redis_op_t, queue);
        left = (ngx_msec_int_t) (op->deadline - ngx_current_msec);

    } else {
        left = (ngx_msec_int_t) (rc->idle_deadline - ngx_current_msec);
    }

    if (left > 0) {
        ngx_add_timer(&rc->timer, (ngx_msec_t) left);
        return;
    }

    rc->handling++;

    if (rc->state != NGX_HTTP_TXVAL_REDIS_READY) {
        ngx_log_error(NGX_LOG_ERR, node->pool->log, 0,
                      "txval: redis %V: %s timed out", &node->text,
                      rc->state == NGX_HTTP_TXVAL_REDIS_HANDSHAKE
                      ? "TLS handshake" : "connect");

        ngx_http_txval_redis_close(rc, NGX_HTTP_TXVAL_REDIS_CLOSE_TIMEDOUT
                                       |NGX_HTTP_TXVAL_REDIS_CLOSE_FAILED
                                       |NGX_HTTP_TXVAL_REDIS_CLOSE_BACKOFF);

    } else if (rc->nops) {
        ngx_log_error(NGX_LOG_ERR, node->pool->log, 0,
                      "txval: redis %V: command timed out, "
                      "closing the connection", &node->text);

        ngx_http_txval_redis_close(rc, NGX_HTTP_TXVAL_REDIS_CLOSE_TIMEDOUT
                                       |NGX_HTTP_TXVAL_REDIS_CLOSE_FAILED);

    } else {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, node->pool->log, 0,
                       "txval: redis %V idle connection closed",
                       &node->text);

        ngx_http_txval_redis_close(rc, 0);
    }

    ngx_http_txval_redis_unwind(rc);
}
