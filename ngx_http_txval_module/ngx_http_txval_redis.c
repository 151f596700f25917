
/*
 * txval: non-blocking Redis.
 *
 * hiredis' async context is driven by nginx: its socket is wrapped in an
 * ngx_connection_t, hiredis' addRead/delRead/addWrite/delWrite/cleanup
 * hooks map to nginx events (level-triggered, as hiredis reads once per
 * call), and every deadline is an nginx timer. Nothing here blocks: the
 * address is numeric (resolved when the configuration is read), connect is
 * hiredis' non-blocking one, AUTH and SELECT are pipelined ahead of the
 * first command of each new connection.
 *
 * Per worker, up to `pool` connections are shared by all requests: commands
 * are pipelined on the least loaded connection and answered in order. Each
 * connection keeps its operations in order with their deadlines; when the
 * oldest one passes its deadline the connection is closed (never reused)
 * and every operation on it fails. A connection that errors is closed the
 * same way. After a failed connect the pool fails fast for a short while
 * instead of reconnecting on every request; the next request after that
 * reconnects, so the pool heals by itself when Redis is back.
 */


#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_txval_redis.h"
#include "ngx_http_txval_metrics.h"


#define NGX_HTTP_TXVAL_REDIS_BACKOFF   200      /* ms of failing fast */
#define NGX_HTTP_TXVAL_REDIS_MAX_OPS   1024     /* per connection */


typedef struct {
    ngx_queue_t                     queue;      /* in the pool */
    redisAsyncContext              *ac;
    ngx_connection_t               *c;
    ngx_event_t                     timer;
    ngx_queue_t                     ops;
    ngx_uint_t                      nops;
    ngx_msec_t                      connect_deadline;
    unsigned                        connected:1;
    unsigned                        timedout:1;
    unsigned                        closing:1;
} ngx_http_txval_redis_conn_t;


typedef struct {
    ngx_http_txval_redis_conf_t    *conf;
    ngx_queue_t                     conns;
    ngx_uint_t                      nconns;
    ngx_msec_t                      down_until;
    ngx_log_t                      *log;
    unsigned                        exiting:1;
} ngx_http_txval_redis_pool_t;


static ngx_http_txval_redis_conn_t *ngx_http_txval_redis_get(
    ngx_http_txval_redis_pool_t *pool);
static ngx_http_txval_redis_conn_t *ngx_http_txval_redis_connect(
    ngx_http_txval_redis_pool_t *pool);
static void ngx_http_txval_redis_close(ngx_http_txval_redis_conn_t *rc,
    ngx_uint_t timedout);
static void ngx_http_txval_redis_arm(ngx_http_txval_redis_conn_t *rc);
static void ngx_http_txval_redis_timer(ngx_event_t *ev);
static void ngx_http_txval_redis_read(ngx_event_t *ev);
static void ngx_http_txval_redis_write(ngx_event_t *ev);
static void ngx_http_txval_redis_connected(const redisAsyncContext *ac,
    int status);
static void ngx_http_txval_redis_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_txval_redis_setup_reply(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_http_txval_redis_add_read(void *data);
static void ngx_http_txval_redis_del_read(void *data);
static void ngx_http_txval_redis_add_write(void *data);
static void ngx_http_txval_redis_del_write(void *data);
static void ngx_http_txval_redis_cleanup(void *data);
static void ngx_http_txval_redis_publish(void);


static ngx_http_txval_redis_pool_t  ngx_http_txval_redis_pool;


ngx_int_t
ngx_http_txval_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_txval_redis_conf_t *rcf)
{
    ngx_http_txval_redis_pool_t  *pool = &ngx_http_txval_redis_pool;

    ngx_queue_init(&pool->conns);
    pool->conf = rcf;
    pool->nconns = 0;
    pool->down_until = 0;
    pool->log = cycle->log;

    return NGX_OK;
}


void
ngx_http_txval_redis_exit_process(void)
{
    ngx_queue_t                  *q;
    ngx_http_txval_redis_conn_t  *rc;
    ngx_http_txval_redis_pool_t  *pool = &ngx_http_txval_redis_pool;

    if (pool->conf == NULL) {
        return;
    }

    /* the requests are gone: no operation reports back */
    pool->exiting = 1;

    while (!ngx_queue_empty(&pool->conns)) {
        q = ngx_queue_head(&pool->conns);
        rc = ngx_queue_data(q, ngx_http_txval_redis_conn_t, queue);
        ngx_http_txval_redis_close(rc, 0);
    }

    pool->conf = NULL;
}


ngx_http_txval_redis_op_t *
ngx_http_txval_redis_op(ngx_log_t *log)
{
    ngx_http_txval_redis_op_t  *op;

    op = ngx_calloc(sizeof(ngx_http_txval_redis_op_t), log);

    return op;
}


ngx_int_t
ngx_http_txval_redis_send(ngx_http_txval_redis_conf_t *rcf,
    ngx_http_txval_redis_op_t *op, ngx_uint_t ncmds, int *argc,
    const char ***argv, size_t **argvlen)
{
    ngx_uint_t                    i;
    ngx_http_txval_redis_conn_t  *rc;
    ngx_http_txval_redis_pool_t  *pool = &ngx_http_txval_redis_pool;

    op->status = NGX_HTTP_TXVAL_REDIS_ERROR;

    if (pool->conf == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_txval_redis_get(pool);
    if (rc == NULL) {
        ngx_http_txval_metrics_backend(NGX_HTTP_TXVAL_M_REDIS,
                                       NGX_HTTP_TXVAL_REDIS_ERROR);
        return NGX_ERROR;
    }

    for (i = 0; i < ncmds; i++) {
        if (redisAsyncCommandArgv(rc->ac, ngx_http_txval_redis_reply, op,
                                  argc[i], argv[i], argvlen[i])
            != REDIS_OK)
        {
            /* only a connection being torn down or out of memory refuses */

            if (i == 0) {
                return NGX_ERROR;
            }

            /* the replies already queued will come back; wait for them */
            break;
        }
    }

    op->conn = rc;
    op->pending = i;
    op->status = NGX_HTTP_TXVAL_REDIS_OK;
    op->deadline = ngx_current_msec + rcf->timeout;

    if (!rc->connected) {
        op->deadline = rc->connect_deadline + rcf->timeout;
    }

    ngx_queue_insert_tail(&rc->ops, &op->queue);
    rc->nops++;

    if (rc->nops == 1) {
        ngx_http_txval_redis_arm(rc);
        ngx_http_txval_redis_publish();
    }

    return NGX_OK;
}


void
ngx_http_txval_redis_pool_counts(ngx_uint_t *busy, ngx_uint_t *idle,
    ngx_uint_t *connecting)
{
    ngx_queue_t                  *q;
    ngx_http_txval_redis_conn_t  *rc;
    ngx_http_txval_redis_pool_t  *pool = &ngx_http_txval_redis_pool;

    *busy = 0;
    *idle = 0;
    *connecting = 0;

    if (pool->conf == NULL) {
        return;
    }

    for (q = ngx_queue_head(&pool->conns);
         q != ngx_queue_sentinel(&pool->conns);
         q = ngx_queue_next(q))
    {
        rc = ngx_queue_data(q, ngx_http_txval_redis_conn_t, queue);

        if (!rc->connected) {
            (*connecting)++;

        } else if (rc->nops) {
            (*busy)++;

        } else {
            (*idle)++;
        }
    }
}


/* the least loaded connection; a new one while the pool has room */

static ngx_http_txval_redis_conn_t *
ngx_http_txval_redis_get(ngx_http_txval_redis_pool_t *pool)
{
    ngx_queue_t                  *q;
    ngx_http_txval_redis_conn_t  *rc, *best;

    best = NULL;

    for (q = ngx_queue_head(&pool->conns);
         q != ngx_queue_sentinel(&pool->conns);
         q = ngx_queue_next(q))
    {
        rc = ngx_queue_data(q, ngx_http_txval_redis_conn_t, queue);

        if (best == NULL || rc->nops < best->nops) {
            best = rc;
        }
    }

    if ((best == NULL || best->nops > 0)
        && pool->nconns < pool->conf->pool
        && (ngx_msec_int_t) (pool->down_until - ngx_current_msec) <= 0)
    {
        rc = ngx_http_txval_redis_connect(pool);
        if (rc) {
            return rc;
        }
    }

    if (best == NULL || best->nops >= NGX_HTTP_TXVAL_REDIS_MAX_OPS) {
        return NULL;
    }

    return best;
}


static ngx_http_txval_redis_conn_t *
ngx_http_txval_redis_connect(ngx_http_txval_redis_pool_t *pool)
{
    int                           argc;
    size_t                        argvlen[2];
    const char                   *argv[2];
    u_char                        db[NGX_INT_T_LEN];
    redisAsyncContext            *ac;
    ngx_connection_t             *c;
    ngx_http_txval_redis_conf_t  *rcf;
    ngx_http_txval_redis_conn_t  *rc;

    rcf = pool->conf;

    if (rcf->port) {
        ac = redisAsyncConnect((char *) rcf->host.data, (int) rcf->port);

    } else {
        ac = redisAsyncConnectUnix((char *) rcf->path.data);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "txval: redis %V: out of memory", &rcf->addr_text);
        return NULL;
    }

    if (ac->err) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "txval: redis %V: connect failed: %s",
                      &rcf->addr_text, ac->errstr);
        redisAsyncFree(ac);
        pool->down_until = ngx_current_msec + NGX_HTTP_TXVAL_REDIS_BACKOFF;
        return NULL;
    }

    rc = ngx_calloc(sizeof(ngx_http_txval_redis_conn_t), pool->log);
    if (rc == NULL) {
        redisAsyncFree(ac);
        return NULL;
    }

    c = ngx_get_connection(ac->c.fd, pool->log);
    if (c == NULL) {
        ngx_free(rc);
        redisAsyncFree(ac);
        return NULL;
    }

    c->data = rc;
    c->read->handler = ngx_http_txval_redis_read;
    c->write->handler = ngx_http_txval_redis_write;
    c->read->log = pool->log;
    c->write->log = pool->log;

    rc->ac = ac;
    rc->c = c;
    ngx_queue_init(&rc->ops);

    rc->timer.handler = ngx_http_txval_redis_timer;
    rc->timer.data = rc;
    rc->timer.log = pool->log;
    rc->timer.cancelable = 1;     /* see ngx_http_txval_redis_arm() */

    ac->data = rc;
    ac->ev.data = rc;
    ac->ev.addRead = ngx_http_txval_redis_add_read;
    ac->ev.delRead = ngx_http_txval_redis_del_read;
    ac->ev.addWrite = ngx_http_txval_redis_add_write;
    ac->ev.delWrite = ngx_http_txval_redis_del_write;
    ac->ev.cleanup = ngx_http_txval_redis_cleanup;

    ngx_queue_insert_tail(&pool->conns, &rc->queue);
    pool->nconns++;

    rc->connect_deadline = ngx_current_msec + rcf->connect_timeout;
    ngx_add_timer(&rc->timer, rcf->connect_timeout);

    /* waits for the first write event: the connect's outcome */
    redisAsyncSetConnectCallback(ac, ngx_http_txval_redis_connected);

    /* once per new connection, ahead of everything else on it */

    if (rcf->password.len) {
        argv[0] = "AUTH";
        argvlen[0] = 4;
        argv[1] = (const char *) rcf->password.data;
        argvlen[1] = rcf->password.len;
        argc = 2;

        redisAsyncCommandArgv(ac, ngx_http_txval_redis_setup_reply, rc,
                              argc, argv, argvlen);
    }

    if (rcf->db) {
        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = (const char *) db;
        argvlen[1] = ngx_sprintf(db, "%ui", rcf->db) - db;
        argc = 2;

        redisAsyncCommandArgv(ac, ngx_http_txval_redis_setup_reply, rc,
                              argc, argv, argvlen);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "txval: redis connecting, fd:%d", c->fd);

    return rc;
}


/*
 * Closes a connection for good: hiredis fails every pending command (our
 * operations see it as an error, or a timeout) and calls the cleanup hook,
 * which gives the nginx connection back.
 */

static void
ngx_http_txval_redis_close(ngx_http_txval_redis_conn_t *rc,
    ngx_uint_t timedout)
{
    ngx_http_txval_redis_pool_t  *pool = &ngx_http_txval_redis_pool;

    if (rc->ac == NULL || rc->closing) {
        return;
    }

    /* no new operation may pick this connection from now on */
    ngx_queue_remove(&rc->queue);
    ngx_queue_init(&rc->queue);
    pool->nconns--;

    rc->closing = 1;
    rc->timedout = timedout;

    /* the cleanup hook frees rc; hiredis may defer it past a callback */
    redisAsyncFree(rc->ac);
}


static void
ngx_http_txval_redis_arm(ngx_http_txval_redis_conn_t *rc)
{
    ngx_msec_t                    deadline;
    ngx_queue_t                  *q;
    ngx_msec_int_t                left;
    ngx_http_txval_redis_op_t    *op;
    ngx_http_txval_redis_pool_t  *pool = &ngx_http_txval_redis_pool;

    if (!ngx_queue_empty(&rc->ops)) {
        q = ngx_queue_head(&rc->ops);
        op = ngx_queue_data(q, ngx_http_txval_redis_op_t, queue);
        deadline = op->deadline;

    } else if (rc->connected) {
        deadline = ngx_current_msec + pool->conf->idle_timeout;

    } else {
        deadline = rc->connect_deadline;
    }

    if (!rc->connected
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

    ngx_add_timer(&rc->timer, left > 0 ? (ngx_msec_t) left : 1);
}


static void
ngx_http_txval_redis_timer(ngx_event_t *ev)
{
    ngx_http_txval_redis_conn_t  *rc = ev->data;
    ngx_http_txval_redis_pool_t  *pool = &ngx_http_txval_redis_pool;

    if (!rc->connected) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "txval: redis %V: connect timed out",
                      &pool->conf->addr_text);
        pool->down_until = ngx_current_msec + NGX_HTTP_TXVAL_REDIS_BACKOFF;
        ngx_http_txval_redis_close(rc, 1);
        return;
    }

    if (rc->nops) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "txval: redis %V: command timed out, "
                      "closing the connection", &pool->conf->addr_text);
        ngx_http_txval_redis_close(rc, 1);
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "txval: redis idle connection closed");

    ngx_http_txval_redis_close(rc, 0);
}


static void
ngx_http_txval_redis_read(ngx_event_t *ev)
{
    ngx_connection_t             *c = ev->data;
    ngx_http_txval_redis_conn_t  *rc = c->data;

    redisAsyncHandleRead(rc->ac);
}


static void
ngx_http_txval_redis_write(ngx_event_t *ev)
{
    ngx_connection_t             *c = ev->data;
    ngx_http_txval_redis_conn_t  *rc = c->data;

    redisAsyncHandleWrite(rc->ac);
}


static void
ngx_http_txval_redis_connected(const redisAsyncContext *ac, int status)
{
    ngx_http_txval_redis_conn_t  *rc = ac->data;
    ngx_http_txval_redis_pool_t  *pool = &ngx_http_txval_redis_pool;

    if (status != REDIS_OK) {
        /* hiredis frees the context right after this: see the cleanup */
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "txval: redis %V: connect failed: %s",
                      &pool->conf->addr_text,
                      ac->errstr ? ac->errstr : "unknown error");
        pool->down_until = ngx_current_msec + NGX_HTTP_TXVAL_REDIS_BACKOFF;

        ngx_queue_remove(&rc->queue);
        ngx_queue_init(&rc->queue);
        pool->nconns--;
        rc->closing = 1;
        return;
    }

    rc->connected = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "txval: redis connected, fd:%d", rc->c->fd);

    ngx_http_txval_redis_publish();

    ngx_http_txval_redis_arm(rc);
}


/* AUTH and SELECT: a refusal makes the connection useless */

static void
ngx_http_txval_redis_setup_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                   *reply = r;
    ngx_http_txval_redis_conn_t  *rc = privdata;
    ngx_http_txval_redis_pool_t  *pool = &ngx_http_txval_redis_pool;

    if (reply == NULL || reply->type != REDIS_REPLY_ERROR) {
        return;
    }

    /* the message names the command, never the password */
    ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                  "txval: redis %V: connection setup refused: %*s",
                  &pool->conf->addr_text,
                  (size_t) ngx_min(reply->len, 128), reply->str);

    pool->down_until = ngx_current_msec + NGX_HTTP_TXVAL_REDIS_BACKOFF;

    if (rc->ac) {
        ngx_http_txval_redis_close(rc, 0);
    }
}


static void
ngx_http_txval_redis_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply                   *reply = r;
    ngx_http_txval_redis_op_t    *op = privdata;
    ngx_http_txval_redis_conn_t  *rc;

    rc = op->conn;      /* NULL: the connection is gone (see the cleanup) */

    if (reply == NULL) {
        if (op->status == NGX_HTTP_TXVAL_REDIS_OK) {
            op->status = (rc && rc->timedout) ? NGX_HTTP_TXVAL_REDIS_TIMEOUT
                                              : NGX_HTTP_TXVAL_REDIS_ERROR;
        }

    } else {
        switch (reply->type) {

        case REDIS_REPLY_ERROR:
            op->status = NGX_HTTP_TXVAL_REDIS_ERROR;
            break;

        case REDIS_REPLY_NIL:
            op->nil = 1;
            break;

        case REDIS_REPLY_STRING:
            op->value_len = reply->len;

            if (reply->len <= NGX_HTTP_TXVAL_REDIS_VALUE_MAX) {
                ngx_memcpy(op->value, reply->str, reply->len);
            }

            break;

        case REDIS_REPLY_INTEGER:
            if (op->pending && op->integer == 0) {
                op->integer = reply->integer;
            }
            break;

        default:
            break;
        }
    }

    if (--op->pending) {
        return;
    }

    /* every reply is in */

    ngx_http_txval_metrics_backend(NGX_HTTP_TXVAL_M_REDIS, op->status);

    if (rc) {
        ngx_queue_remove(&op->queue);
        rc->nops--;
    }

    if (rc && rc->c && !rc->closing) {
        ngx_http_txval_redis_arm(rc);

        if (rc->nops == 0) {
            ngx_http_txval_redis_publish();
        }
    }

    if (op->data && !ngx_http_txval_redis_pool.exiting) {
        op->done(op);
    }

    ngx_free(op);
}


/* the hiredis event hooks */

static void
ngx_http_txval_redis_add_read(void *data)
{
    ngx_http_txval_redis_conn_t  *rc = data;

    if (rc->c && !rc->c->read->active) {
        (void) ngx_add_event(rc->c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_txval_redis_del_read(void *data)
{
    ngx_http_txval_redis_conn_t  *rc = data;

    if (rc->c && rc->c->read->active) {
        (void) ngx_del_event(rc->c->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_http_txval_redis_add_write(void *data)
{
    ngx_http_txval_redis_conn_t  *rc = data;

    if (rc->c && !rc->c->write->active) {
        (void) ngx_add_event(rc->c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_txval_redis_del_write(void *data)
{
    ngx_http_txval_redis_conn_t  *rc = data;

    if (rc->c && rc->c->write->active) {
        (void) ngx_del_event(rc->c->write, NGX_WRITE_EVENT, 0);
    }
}


/*
 * hiredis is freeing the context (and will close the socket itself): every
 * pending callback has run. Give back the nginx connection and the timer,
 * and free our connection. May be called more than once.
 */

static void
ngx_http_txval_redis_cleanup(void *data)
{
    ngx_http_txval_redis_conn_t  *rc = data;
    ngx_http_txval_redis_pool_t  *pool = &ngx_http_txval_redis_pool;

    ngx_queue_t                *q;
    ngx_connection_t           *c;
    ngx_http_txval_redis_op_t  *op;

    if (rc->c == NULL) {
        return;
    }

    c = rc->c;
    rc->c = NULL;

    /*
     * hiredis 0.14 runs the pending callbacks before this hook, hiredis 1.x
     * after it: operations still queued here lose their connection, and
     * their callbacks then complete them without it.
     */

    while (!ngx_queue_empty(&rc->ops)) {
        q = ngx_queue_head(&rc->ops);
        op = ngx_queue_data(q, ngx_http_txval_redis_op_t, queue);

        ngx_queue_remove(q);
        op->conn = NULL;

        if (op->status == NGX_HTTP_TXVAL_REDIS_OK) {
            op->status = rc->timedout ? NGX_HTTP_TXVAL_REDIS_TIMEOUT
                                      : NGX_HTTP_TXVAL_REDIS_ERROR;
        }
    }

    rc->nops = 0;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    /* the socket is hiredis' to close: stale events must see it gone */
    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);

    if (rc->timer.timer_set) {
        ngx_del_timer(&rc->timer);
    }

    if (!rc->closing) {
        /* a failure hiredis found itself: it frees the context now */
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "txval: redis %V: connection lost: %s",
                      &pool->conf->addr_text,
                      rc->ac->errstr ? rc->ac->errstr : "closed");
        ngx_queue_remove(&rc->queue);
        pool->nconns--;
    }

    rc->ac = NULL;

    ngx_free(rc);

    ngx_http_txval_redis_publish();
}


static void
ngx_http_txval_redis_publish(void)
{
    ngx_uint_t  busy, idle, connecting;

    ngx_http_txval_redis_pool_counts(&busy, &idle, &connecting);
    ngx_http_txval_metrics_pool(NGX_HTTP_TXVAL_M_REDIS, busy, idle,
                                connecting);
}


/*
 * txval_redis ADDRESS [db=N] [password=P] [prefix=S] [pool=N]
 *             [connect_timeout=T] [timeout=T] [idle_timeout=T];
 *
 * A host name is resolved here, once, so that no worker ever resolves.
 */

char *
ngx_http_txval_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_txval_main_conf_t *tmcf = conf;

    u_char                       *p;
    size_t                        len;
    ngx_int_t                     n;
    ngx_str_t                    *value, s;
    ngx_url_t                     u;
    ngx_uint_t                    i;
    ngx_msec_t                   *ms;
    ngx_http_txval_redis_conf_t  *rcf;

    if (tmcf->redis) {
        return "is duplicate";
    }

    rcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_txval_redis_conf_t));
    if (rcf == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    rcf->addr_text = value[1];
    ngx_str_set(&rcf->prefix, "txval:");
    rcf->pool = 16;
    rcf->connect_timeout = 100;
    rcf->timeout = 50;
    rcf->idle_timeout = 60000;

    if (ngx_strncmp(value[1].data, "unix:", 5) == 0) {
        if (value[1].len <= 5) {
            goto invalid_address;
        }

        rcf->path.len = value[1].len - 5;
        rcf->path.data = ngx_pnalloc(cf->pool, rcf->path.len + 1);
        if (rcf->path.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(rcf->path.data, value[1].data + 5, rcf->path.len);
        rcf->path.data[rcf->path.len] = '\0';

    } else {
        ngx_memzero(&u, sizeof(ngx_url_t));

        u.url = value[1];
        u.default_port = 6379;

        if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
            if (u.err) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "%s in \"%V\" of the \"%V\" directive",
                                   u.err, &value[1], &cmd->name);
                return NGX_CONF_ERROR;
            }

            goto invalid_address;
        }

        len = NGX_SOCKADDR_STRLEN;
        rcf->host.data = ngx_pnalloc(cf->pool, len + 1);
        if (rcf->host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        rcf->host.len = ngx_sock_ntop(u.addrs[0].sockaddr,
                                      u.addrs[0].socklen,
                                      rcf->host.data, len, 0);
        rcf->host.data[rcf->host.len] = '\0';
        rcf->port = u.port;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        p = (u_char *) ngx_strchr(value[i].data, '=');

        if (p == NULL) {
            goto invalid;
        }

        s.data = p + 1;
        s.len = value[i].data + value[i].len - s.data;
        len = p - value[i].data;

        if (len == 2 && ngx_strncmp(value[i].data, "db", 2) == 0) {
            n = ngx_atoi(s.data, s.len);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            rcf->db = n;
            continue;
        }

        if (len == 8 && ngx_strncmp(value[i].data, "password", 8) == 0) {
            if (s.len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "empty password in \"%V\" directive",
                                   &cmd->name);
                return NGX_CONF_ERROR;
            }

            rcf->password = s;
            continue;
        }

        if (len == 6 && ngx_strncmp(value[i].data, "prefix", 6) == 0) {
            if (s.len > NGX_HTTP_TXVAL_PREFIX_MAX) {
                goto invalid;
            }

            rcf->prefix = s;
            continue;
        }

        if (len == 4 && ngx_strncmp(value[i].data, "pool", 4) == 0) {
            n = ngx_atoi(s.data, s.len);
            if (n == NGX_ERROR || n < 1 || n > 1024) {
                goto invalid;
            }

            rcf->pool = n;
            continue;
        }

        if (len == 15
            && ngx_strncmp(value[i].data, "connect_timeout", 15) == 0)
        {
            ms = &rcf->connect_timeout;

        } else if (len == 7 && ngx_strncmp(value[i].data, "timeout", 7) == 0) {
            ms = &rcf->timeout;

        } else if (len == 12
                   && ngx_strncmp(value[i].data, "idle_timeout", 12) == 0)
        {
            ms = &rcf->idle_timeout;

        } else {
            goto invalid;
        }

        n = ngx_parse_time(&s, 0);
        if (n == NGX_ERROR || n == 0) {
            goto invalid;
        }

        *ms = (ngx_msec_t) n;
    }

    tmcf->redis = rcf;

    return NGX_CONF_OK;

invalid_address:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid address \"%V\" in \"%V\" directive, "
                       "it must be host:port or unix:/path",
                       &value[1], &cmd->name);
    return NGX_CONF_ERROR;

invalid:

    /* a password= parameter is never invalid: its value is not shown */
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"%V\" directive",
                       &value[i], &cmd->name);
    return NGX_CONF_ERROR;
}
