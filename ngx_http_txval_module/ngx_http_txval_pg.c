
/*
 * txval: non-blocking Postgres.
 *
 * libpq's async API driven by nginx: PQconnectStartParams, then
 * PQconnectPoll on the socket's read/write events (level-triggered, and
 * the socket may change between polls when libpq tries the next host),
 * PQsetnonblocking. A ready connection goes into pipeline mode: the
 * lookup statement is prepared (PQsendPrepare, never the blocking
 * PQprepare) and lookups are sent without waiting for the answers to the
 * ones before. The lookups started in one turn of the event loop on a
 * connection go out together: each is queued with PQsendQueryPrepared,
 * and a posted event ends the batch with one PQpipelineSync (one write).
 * Answers come back in order: each lookup's result and a NULL, then the
 * batch's PGRES_PIPELINE_SYNC.
 *
 * A lookup that fails (a statement timeout) fails alone: the lookups of
 * its batch that the server then skipped (PGRES_PIPELINE_ABORTED) are
 * sent again. Each lookup has its own deadline: past it, its requester is
 * told, and its answer, when it comes, is read and dropped. A connection
 * is closed only when the server, with lookups outstanding, sends nothing
 * for longer than its statement_timeout (which txval sets to twice the
 * timeout) plus the timeout: libpq 15 has no non-blocking cancel, and the
 * server ends a stuck statement itself. Host names are resolved when the
 * configuration is read (hostaddr=), so libpq never resolves in a worker.
 * With several servers (target_session_attrs), libpq tries them in turn
 * within PQconnectPoll; one that times out is passed over by the next
 * connections.
 *
 * Per worker, up to `pool` connections. A lookup joins the batch being
 * built this turn on a connection, else takes an idle connection, else a
 * new one while the pool has room, else the connection with the fewest
 * lookups in flight; it waits (at most its timeout) only while every
 * connection is connecting or has NGX_HTTP_TXVAL_PG_DEPTH in flight.
 */


#include <libpq-fe.h>

#include "ngx_http_txval_pg.h"
#include "ngx_http_txval_metrics.h"


#define NGX_HTTP_TXVAL_PG_BACKOFF     200       /* ms of failing fast */
#define NGX_HTTP_TXVAL_PG_MAX_WAIT    4096      /* lookups in the queue */
#define NGX_HTTP_TXVAL_PG_DEPTH       64        /* in flight per connection */
#define NGX_HTTP_TXVAL_PG_BATCH       32        /* lookups per sync */
#define NGX_HTTP_TXVAL_PG_STMT        "txval_lookup"
#define NGX_HTTP_TXVAL_PG_NPARAMS     6
#define NGX_HTTP_TXVAL_PG_NFIELDS     7


/*
 * One round trip: the parts asked for (a NULL parameter asks for nothing:
 * no row matches it). Columns: the merchant is active (NULL: no row), its
 * cap, whether the transaction's currency is one of its currencies (the
 * server's answer, as before), the currencies themselves (for a lookup
 * cache entry); the card is blocked (NULL: no row), its country; the BIN
 * prefixes of $4, $5, $6 that are blocked (bits 1, 2, 4).
 */
static const char  ngx_http_txval_pg_sql[] =
    "SELECT m.status = 'active', m.max_amount,"
    " (m.currencies IS NULL OR cardinality(m.currencies) = 0"
    "  OR $2::text = ANY (m.currencies)),"
    " m.currencies,"
    " c.status IN ('blocked', 'lost', 'stolen'), c.country,"
    " (SELECT coalesce(bit_or(CASE b.bin WHEN $4::text THEN 1"
    "                                    WHEN $5::text THEN 2 ELSE 4 END), 0)"
    "  FROM blocked_bins b WHERE b.bin IN ($4::text, $5::text, $6::text))"
    " FROM (VALUES (1)) AS one (x)"
    " LEFT JOIN merchants m ON m.id = $1::text"
    " LEFT JOIN cards c ON c.token = $3::text";


typedef enum {
    NGX_HTTP_TXVAL_PG_CONNECTING = 0,
    NGX_HTTP_TXVAL_PG_READY
} ngx_http_txval_pg_state_e;


struct ngx_http_txval_pg_conn_s {
    ngx_queue_t                     queue;      /* in the pool */
    ngx_http_txval_pg_pool_t       *pool;
    PGconn                         *pg;
    ngx_connection_t               *c;
    ngx_event_t                     timer;      /* connect; no answer */
    ngx_event_t                     sync;       /* posted: ends the batch */
    ngx_queue_t                     ops;        /* sent first, in order */
    ngx_uint_t                      nops;
    ngx_uint_t                      batch;      /* sent, not synced yet */
    ngx_uint_t                      syncs;      /* their answers to come */
    ngx_uint_t                      first;      /* conf->values[first] */
    ngx_http_txval_pg_state_e       state;
    unsigned                        preparing:1;    /* its answer first */
    unsigned                        prepare_failed:1;
    unsigned                        started:1;  /* the head's answer is */
    unsigned                        broken:1;   /* a send failed */
};


struct ngx_http_txval_pg_pool_s {
    ngx_http_txval_pg_conf_t       *conf;
    ngx_queue_t                     conns;
    ngx_uint_t                      nconns;
    ngx_queue_t                     waiting;
    ngx_uint_t                      nwaiting;
    ngx_msec_t                      down_until;
    ngx_uint_t                      first;      /* server to start with */
    ngx_log_t                      *log;
    unsigned                        exiting:1;
};


static ngx_http_txval_pg_conn_t *ngx_http_txval_pg_connect(
    ngx_http_txval_pg_pool_t *pool);
static void ngx_http_txval_pg_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_txval_pg_poll(ngx_http_txval_pg_conn_t *pc);
static ngx_int_t ngx_http_txval_pg_ready(ngx_http_txval_pg_conn_t *pc);
static ngx_int_t ngx_http_txval_pg_results(ngx_http_txval_pg_conn_t *pc);
static ngx_uint_t ngx_http_txval_pg_expecting(ngx_http_txval_pg_conn_t *pc);
static void ngx_http_txval_pg_answered(ngx_http_txval_pg_conn_t *pc);
static ngx_int_t ngx_http_txval_pg_flush(ngx_http_txval_pg_conn_t *pc);
static void ngx_http_txval_pg_attach(ngx_http_txval_pg_conn_t *pc,
    ngx_http_txval_pg_op_t *op);
static ngx_int_t ngx_http_txval_pg_query(ngx_http_txval_pg_conn_t *pc,
    ngx_http_txval_pg_op_t *op);
static void ngx_http_txval_pg_sync_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_txval_pg_sync(ngx_http_txval_pg_conn_t *pc);
static void ngx_http_txval_pg_row(ngx_http_txval_pg_op_t *op,
    PGresult *res);
static void ngx_http_txval_pg_watch(ngx_http_txval_pg_conn_t *pc);
static void ngx_http_txval_pg_close(ngx_http_txval_pg_conn_t *pc,
    ngx_http_txval_pg_status_e status, const char *why);
static void ngx_http_txval_pg_report(ngx_http_txval_pg_op_t *op,
    ngx_http_txval_pg_status_e status);
static void ngx_http_txval_pg_free(ngx_http_txval_pg_op_t *op);
static void ngx_http_txval_pg_timer(ngx_event_t *ev);
static void ngx_http_txval_pg_connect_timeout(ngx_http_txval_pg_conn_t *pc);
static void ngx_http_txval_pg_deadline(ngx_event_t *ev);
static void ngx_http_txval_pg_log_error(ngx_http_txval_pg_conn_t *pc,
    const char *what);
static void ngx_http_txval_pg_publish(void);
static ngx_int_t ngx_http_txval_pg_take_waiting(
    ngx_http_txval_pg_conn_t *pc);
static void ngx_http_txval_pg_unqueue(ngx_http_txval_pg_op_t *op);
static void ngx_http_txval_pg_notice(void *arg, const char *message);
static ngx_uint_t ngx_http_txval_pg_is(ngx_str_t *s, const char *v);


/*
 * The worker's pool hangs off the configuration (txval_postgres), made in
 * init_process; NULL in a process that has none (no txval_postgres, or
 * the master, a cache manager).
 */

static ngx_http_txval_pg_pool_t *
ngx_http_txval_pg_pool_of(void)
{
    ngx_http_txval_main_conf_t  *tmcf;

    tmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_txval_module);

    return (tmcf && tmcf->pg) ? tmcf->pg->pool_state : NULL;
}


ngx_int_t
ngx_http_txval_pg_init_process(ngx_cycle_t *cycle,
    ngx_http_txval_pg_conf_t *pcf)
{
    ngx_http_txval_pg_pool_t  *pool;

    pool = ngx_pcalloc(cycle->pool, sizeof(ngx_http_txval_pg_pool_t));
    if (pool == NULL) {
        return NGX_ERROR;
    }

    pcf->pool_state = pool;

    ngx_queue_init(&pool->conns);
    ngx_queue_init(&pool->waiting);
    pool->conf = pcf;
    pool->log = cycle->log;
    pool->first = 0;

    return NGX_OK;
}


void
ngx_http_txval_pg_exit_process(void)
{
    ngx_queue_t               *q;
    ngx_http_txval_pg_op_t    *op;
    ngx_http_txval_pg_pool_t  *pool = ngx_http_txval_pg_pool_of();

    if (pool == NULL || pool->conf == NULL) {
        return;
    }

    pool->exiting = 1;

    while (!ngx_queue_empty(&pool->waiting)) {
        q = ngx_queue_head(&pool->waiting);
        op = ngx_queue_data(q, ngx_http_txval_pg_op_t, queue);
        ngx_http_txval_pg_unqueue(op);
        ngx_http_txval_pg_report(op, NGX_HTTP_TXVAL_PG_ERROR);
        ngx_http_txval_pg_free(op);
    }

    while (!ngx_queue_empty(&pool->conns)) {
        q = ngx_queue_head(&pool->conns);
        ngx_http_txval_pg_close(ngx_queue_data(q, ngx_http_txval_pg_conn_t,
                                               queue),
                                NGX_HTTP_TXVAL_PG_ERROR, NULL);
    }

    pool->conf = NULL;
}


ngx_http_txval_pg_op_t *
ngx_http_txval_pg_op(ngx_log_t *log)
{
    return ngx_calloc(sizeof(ngx_http_txval_pg_op_t), log);
}


void
ngx_http_txval_pg_params(ngx_http_txval_pg_op_t *op,
    ngx_http_txval_txn_t *txn)
{
    op->want = ngx_http_txval_rows_wanted(txn);

    ngx_memcpy(op->merchant_id, txn->merchant_id, txn->merchant_id_len + 1);
    ngx_memcpy(op->currency, txn->currency, 4);
    ngx_memcpy(op->card_token, txn->card_token, txn->card_token_len + 1);
    ngx_memcpy(op->card_bin, txn->card_bin, txn->card_bin_len + 1);
}


void
ngx_http_txval_pg_conninfo(const char *const **keywords,
    const char *const **values)
{
    ngx_http_txval_pg_pool_t  *pool = ngx_http_txval_pg_pool_of();

    *keywords = pool->conf->keywords;
    *values = pool->conf->values[pool->first];
}


ngx_int_t
ngx_http_txval_pg_send(ngx_http_txval_pg_op_t *op)
{
    ngx_queue_t               *q;
    ngx_http_txval_pg_conn_t  *pc, *open, *idle, *least, *connecting;
    ngx_http_txval_pg_pool_t  *pool = ngx_http_txval_pg_pool_of();

    op->status = NGX_HTTP_TXVAL_PG_ERROR;

    if (pool == NULL || pool->conf == NULL) {
        return NGX_ERROR;
    }

    open = NULL;
    idle = NULL;
    least = NULL;
    connecting = NULL;

    for (q = ngx_queue_head(&pool->conns);
         q != ngx_queue_sentinel(&pool->conns);
         q = ngx_queue_next(q))
    {
        pc = ngx_queue_data(q, ngx_http_txval_pg_conn_t, queue);

        if (pc->nops >= NGX_HTTP_TXVAL_PG_DEPTH) {
            continue;
        }

        if (pc->state == NGX_HTTP_TXVAL_PG_CONNECTING) {
            if (connecting == NULL) {
                connecting = pc;
            }

            continue;
        }

        if (pc->batch) {
            /* a batch being built this turn: one write for all */
            open = pc;
            break;
        }

        if (pc->nops == 0 && idle == NULL) {
            idle = pc;
        }

        if (least == NULL || pc->nops < least->nops) {
            least = pc;
        }
    }

    pc = open ? open : idle;

    if (pc == NULL
        && pool->nconns < pool->conf->pool
        && (ngx_msec_int_t) (pool->down_until - ngx_current_msec) <= 0)
    {
        pc = ngx_http_txval_pg_connect(pool);
    }

    if (pc == NULL) {
        pc = least ? least : connecting;
    }

    if (pc) {
        ngx_http_txval_pg_attach(pc, op);

        if (pc->state == NGX_HTTP_TXVAL_PG_READY
            && ngx_http_txval_pg_query(pc, op) != NGX_OK)
        {
            /*
             * never report before returning: fail it here; the connection
             * is closed from its own handler (this may run inside a
             * report of one of its lookups)
             */
            ngx_queue_remove(&op->queue);
            pc->nops--;
            op->conn = NULL;
            ngx_del_timer(&op->wait);
            pc->broken = 1;
            ngx_post_event(pc->c->read, &ngx_posted_events);
            return NGX_ERROR;
        }

        /* the pool's gauges: when its answers come */
        return NGX_OK;
    }

    if (pool->nconns == 0 || pool->nwaiting >= NGX_HTTP_TXVAL_PG_MAX_WAIT) {
        ngx_http_txval_metrics_backend(NGX_HTTP_TXVAL_M_POSTGRES,
                                       NGX_HTTP_TXVAL_PG_ERROR);
        return NGX_ERROR;
    }

    /* wait for room, at most the timeout */

    ngx_queue_insert_tail(&pool->waiting, &op->queue);
    pool->nwaiting++;

    op->wait.handler = ngx_http_txval_pg_deadline;
    op->wait.data = op;
    op->wait.log = pool->log;
    ngx_add_timer(&op->wait, pool->conf->timeout);

    return NGX_OK;
}


void
ngx_http_txval_pg_abandon(ngx_http_txval_pg_op_t *op)
{
    ngx_http_txval_pg_conn_t  *pc;

    pc = op->conn;

    if (pc == NULL) {
        /* still waiting: nothing was sent, just forget it */
        ngx_http_txval_pg_unqueue(op);
        ngx_http_txval_pg_free(op);
        return;
    }

    if (!op->sent) {
        /* on a connection still connecting: never sent */
        ngx_queue_remove(&op->queue);
        pc->nops--;
        ngx_http_txval_pg_free(op);
        return;
    }

    /* in flight: its answer is read, and dropped */
    op->data = NULL;
}


void
ngx_http_txval_pg_pool_counts(ngx_uint_t *busy, ngx_uint_t *idle,
    ngx_uint_t *connecting)
{
    ngx_queue_t               *q;
    ngx_http_txval_pg_conn_t  *pc;
    ngx_http_txval_pg_pool_t  *pool = ngx_http_txval_pg_pool_of();

    *busy = 0;
    *idle = 0;
    *connecting = 0;

    if (pool == NULL || pool->conf == NULL) {
        return;
    }

    for (q = ngx_queue_head(&pool->conns);
         q != ngx_queue_sentinel(&pool->conns);
         q = ngx_queue_next(q))
    {
        pc = ngx_queue_data(q, ngx_http_txval_pg_conn_t, queue);

        if (pc->state == NGX_HTTP_TXVAL_PG_CONNECTING) {
            (*connecting)++;

        } else if (pc->nops) {
            (*busy)++;

        } else {
            (*idle)++;
        }
    }
}


static ngx_http_txval_pg_conn_t *
ngx_http_txval_pg_connect(ngx_http_txval_pg_pool_t *pool)
{
    PGconn                    *pg;
    ngx_http_txval_pg_conn_t  *pc;

    pg = PQconnectStartParams(pool->conf->keywords,
                              pool->conf->values[pool->first], 0);

    if (pg == NULL) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "txval: postgres: out of memory");
        return NULL;
    }

    pc = ngx_calloc(sizeof(ngx_http_txval_pg_conn_t), pool->log);
    if (pc == NULL) {
        PQfinish(pg);
        return NULL;
    }

    pc->pg = pg;
    pc->pool = pool;
    pc->state = NGX_HTTP_TXVAL_PG_CONNECTING;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "txval postgres conn %p: connecting, server %ui first",
                   pc, pool->first);
    pc->first = pool->first;
    ngx_queue_init(&pc->ops);

    pc->timer.handler = ngx_http_txval_pg_timer;
    pc->timer.data = pc;
    pc->timer.log = pool->log;
    /* armed only while connecting or waiting for answers */
    pc->timer.cancelable = 0;

    pc->sync.handler = ngx_http_txval_pg_sync_handler;
    pc->sync.data = pc;
    pc->sync.log = pool->log;

    if (ngx_http_txval_pg_connect_start(pg, &pc->c, ngx_http_txval_pg_handler,
                                        pc, pool->log,
                                        ngx_http_txval_pg_notice)
        != NGX_OK)
    {
        ngx_http_txval_pg_log_error(pc, "connect failed");
        pool->down_until = ngx_current_msec + NGX_HTTP_TXVAL_PG_BACKOFF;
        PQfinish(pg);
        ngx_free(pc);
        return NULL;
    }

    ngx_queue_insert_tail(&pool->conns, &pc->queue);
    pool->nconns++;

    ngx_add_timer(&pc->timer, pool->conf->timeout);

    ngx_http_txval_pg_publish();

    return pc;
}


/*
 * A connect begun (PQconnectStartParams) made nginx's: libpq's notices to
 * the log (it would print them to stderr), non-blocking, its socket an
 * nginx connection waiting for writing, as if PQconnectPoll had asked.
 */

ngx_int_t
ngx_http_txval_pg_connect_start(PGconn *pg, ngx_connection_t **cp,
    ngx_event_handler_pt handler, void *data, ngx_log_t *log,
    PQnoticeProcessor notice)
{
    PQsetNoticeProcessor(pg, notice, data);

    if (PQstatus(pg) == CONNECTION_BAD
        || PQsetnonblocking(pg, 1) != 0
        || ngx_http_txval_pg_socket(pg, cp, handler, data, log) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_txval_pg_socket_events(*cp, 0, 1);

    return NGX_OK;
}


/*
 * One step of a connect. With several hosts, or a retry, libpq closes its
 * socket and opens another, which often gets the same number: comparing
 * numbers cannot tell, and the closed socket took its epoll registration
 * with it. So the events come off before every poll (the socket is still
 * open then) and go on again for whatever socket libpq has after it.
 * NGX_AGAIN: waiting for the events PQconnectPoll asked for; NGX_OK:
 * connected; NGX_ERROR: failed.
 */

ngx_int_t
ngx_http_txval_pg_connect_poll(PGconn *pg, ngx_connection_t **cp,
    ngx_event_handler_pt handler, void *data, ngx_log_t *log)
{
    PostgresPollingStatusType  st;

    ngx_http_txval_pg_unsocket(pg, cp);

    st = PQconnectPoll(pg);

    if (st != PGRES_POLLING_FAILED
        && ngx_http_txval_pg_socket(pg, cp, handler, data, log) != NGX_OK)
    {
        st = PGRES_POLLING_FAILED;
    }

    switch (st) {

    case PGRES_POLLING_READING:
        ngx_http_txval_pg_socket_events(*cp, 1, 0);
        return NGX_AGAIN;

    case PGRES_POLLING_WRITING:
        ngx_http_txval_pg_socket_events(*cp, 0, 1);
        return NGX_AGAIN;

    case PGRES_POLLING_OK:
        return NGX_OK;

    default: /* PGRES_POLLING_FAILED */
        return NGX_ERROR;
    }
}


ngx_int_t
ngx_http_txval_pg_socket(PGconn *pg, ngx_connection_t **cp,
    ngx_event_handler_pt handler, void *data, ngx_log_t *log)
{
    int                fd;
    ngx_connection_t  *c;

    fd = PQsocket(pg);

    if (fd == -1) {
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = data;
    c->read->handler = handler;
    c->write->handler = handler;
    c->read->log = log;
    c->write->log = log;

    *cp = c;

    return NGX_OK;
}


/* gives back the ngx_connection_t; the socket stays libpq's to close */

void
ngx_http_txval_pg_unsocket(PGconn *pg, ngx_connection_t **cp)
{
    ngx_uint_t         flags;
    ngx_connection_t  *c;

    c = *cp;

    if (c == NULL) {
        return;
    }

    *cp = NULL;

    /*
     * libpq closes its socket itself when it finds the connection broken
     * (PQconsumeInput at EOF): the kernel dropped the events with it
     */

    flags = (PQsocket(pg) == c->fd) ? 0 : NGX_CLOSE_EVENT;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, flags);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, flags);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);
}


void
ngx_http_txval_pg_socket_events(ngx_connection_t *c, ngx_uint_t read,
    ngx_uint_t write)
{
    if (read && !c->read->active) {
        (void) ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);

    } else if (!read && c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if (write && !c->write->active) {
        (void) ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);

    } else if (!write && c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }
}


/*
 * What libpq holds, sent as far as the socket takes it: then reading
 * always, and writing while some is left (NGX_AGAIN); NGX_ERROR: failed.
 */

ngx_int_t
ngx_http_txval_pg_socket_flush(PGconn *pg, ngx_connection_t *c)
{
    switch (PQflush(pg)) {

    case 0:
        ngx_http_txval_pg_socket_events(c, 1, 0);
        return NGX_OK;

    case 1:
        ngx_http_txval_pg_socket_events(c, 1, 1);
        return NGX_AGAIN;

    default:
        return NGX_ERROR;
    }
}


static void
ngx_http_txval_pg_handler(ngx_event_t *ev)
{
    ngx_connection_t          *c = ev->data;
    ngx_http_txval_pg_conn_t  *pc = c->data;

    if (pc->state == NGX_HTTP_TXVAL_PG_CONNECTING) {
        (void) ngx_http_txval_pg_poll(pc);
        return;
    }

    if (pc->broken) {
        ngx_http_txval_pg_close(pc, NGX_HTTP_TXVAL_PG_ERROR, "send failed");
        return;
    }

    if (ev->write) {
        (void) ngx_http_txval_pg_flush(pc);
        return;
    }

    (void) ngx_http_txval_pg_results(pc);
}


static ngx_int_t
ngx_http_txval_pg_poll(ngx_http_txval_pg_conn_t *pc)
{
    ngx_int_t  rc;

    rc = ngx_http_txval_pg_connect_poll(pc->pg, &pc->c,
                                        ngx_http_txval_pg_handler, pc,
                                        pc->pool->log);

    if (rc == NGX_AGAIN) {
        return NGX_AGAIN;
    }

    if (rc == NGX_ERROR) {
        pc->pool->down_until = ngx_current_msec + NGX_HTTP_TXVAL_PG_BACKOFF;
        ngx_http_txval_pg_close(pc, NGX_HTTP_TXVAL_PG_ERROR,
                                "connect failed");
        return NGX_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->c->log, 0,
                   "txval: postgres connected, fd:%d", pc->c->fd);

    return ngx_http_txval_pg_ready(pc);
}


/*
 * Connected: pipeline mode, the statement prepared (once per connection),
 * and the lookups that waited for the connection sent right behind it, in
 * the same write.
 */

static ngx_int_t
ngx_http_txval_pg_ready(ngx_http_txval_pg_conn_t *pc)
{
    ngx_queue_t             *q;
    ngx_http_txval_pg_op_t  *op;

    ngx_del_timer(&pc->timer);

    if (!PQenterPipelineMode(pc->pg)
        || !PQsendPrepare(pc->pg, NGX_HTTP_TXVAL_PG_STMT,
                          ngx_http_txval_pg_sql, NGX_HTTP_TXVAL_PG_NPARAMS,
                          NULL))
    {
        ngx_http_txval_pg_close(pc, NGX_HTTP_TXVAL_PG_ERROR,
                                "prepare failed");
        return NGX_ERROR;
    }

    pc->state = NGX_HTTP_TXVAL_PG_READY;
    pc->preparing = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->pool->log, 0,
                   "txval postgres conn %p: ready, pipeline mode", pc);

    /* in the order they came: answers come back in the order sent */

    for (q = ngx_queue_head(&pc->ops);
         q != ngx_queue_sentinel(&pc->ops);
         q = ngx_queue_next(q))
    {
        op = ngx_queue_data(q, ngx_http_txval_pg_op_t, queue);

        if (ngx_http_txval_pg_query(pc, op) != NGX_OK) {
            ngx_http_txval_pg_close(pc, NGX_HTTP_TXVAL_PG_ERROR,
                                    "send failed");
            return NGX_ERROR;
        }
    }

    if (ngx_http_txval_pg_take_waiting(pc) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the prepare alone, or with them: one sync, one write */

    if (pc->batch == 0) {
        pc->batch = 1;
    }

    if (pc->sync.posted) {
        ngx_delete_posted_event(&pc->sync);
    }

    if (ngx_http_txval_pg_sync(pc) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_txval_pg_publish();

    return NGX_OK;
}


/* sends what libpq holds; reads always */

static ngx_int_t
ngx_http_txval_pg_flush(ngx_http_txval_pg_conn_t *pc)
{
    ngx_int_t  rc;

    rc = ngx_http_txval_pg_socket_flush(pc->pg, pc->c);

    if (rc == NGX_ERROR) {
        ngx_http_txval_pg_close(pc, NGX_HTTP_TXVAL_PG_ERROR, "send failed");
    }

    return rc;
}


/*
 * The answers that are in, in order: the prepare's, then each lookup's
 * (its result, then a NULL), and a PGRES_PIPELINE_SYNC after each batch.
 */

static ngx_int_t
ngx_http_txval_pg_results(ngx_http_txval_pg_conn_t *pc)
{
    PGresult                *res;
    ngx_queue_t             *q;
    ExecStatusType           st;
    ngx_http_txval_pg_op_t  *op;

    if (PQconsumeInput(pc->pg) == 0 || PQstatus(pc->pg) == CONNECTION_BAD) {
        ngx_http_txval_pg_close(pc, NGX_HTTP_TXVAL_PG_ERROR,
                                "connection lost");
        return NGX_ERROR;
    }

    for ( ;; ) {

        if (!ngx_http_txval_pg_expecting(pc)) {
            /* nothing is expected (an idle connection: a notice) */
            break;
        }

        if (PQisBusy(pc->pg)) {
            break;
        }

        res = PQgetResult(pc->pg);

        if (res == NULL) {

            if (!pc->started) {
                /* not an answer's end: nothing more is in yet */
                break;
            }

            pc->started = 0;

            if (pc->preparing) {
                pc->preparing = 0;

                if (pc->prepare_failed) {
                    ngx_http_txval_pg_close(pc, NGX_HTTP_TXVAL_PG_ERROR,
                                            NULL);
                    return NGX_ERROR;
                }

                continue;
            }

            q = ngx_queue_head(&pc->ops);
            op = ngx_queue_data(q, ngx_http_txval_pg_op_t, queue);

            ngx_queue_remove(q);
            pc->nops--;

            ngx_http_txval_pg_answered(pc);

            if (op->retry && !op->reported) {
                /* skipped after another lookup's error: once more */
                op->retry = 0;
                op->sent = 0;
                ngx_queue_insert_tail(&pc->ops, &op->queue);
                pc->nops++;

                if (ngx_http_txval_pg_query(pc, op) != NGX_OK) {
                    ngx_http_txval_pg_close(pc, NGX_HTTP_TXVAL_PG_ERROR,
                                            "send failed");
                    return NGX_ERROR;
                }

                continue;
            }

            ngx_http_txval_pg_report(op, op->got_row ? NGX_HTTP_TXVAL_PG_OK
                                                     : NGX_HTTP_TXVAL_PG_ERROR);
            ngx_http_txval_pg_free(op);
            continue;
        }

        st = PQresultStatus(res);

        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            pc->syncs--;
            ngx_http_txval_pg_answered(pc);
            continue;
        }

        pc->started = 1;

        if (pc->preparing) {
            if (st != PGRES_COMMAND_OK) {
                ngx_http_txval_pg_log_error(pc, "prepare failed");
                pc->prepare_failed = 1;
            }

            PQclear(res);
            continue;
        }

        q = ngx_queue_head(&pc->ops);
        op = ngx_queue_data(q, ngx_http_txval_pg_op_t, queue);

        switch (st) {

        case PGRES_TUPLES_OK:
            if (PQntuples(res) == 1
                && PQnfields(res) == NGX_HTTP_TXVAL_PG_NFIELDS)
            {
                ngx_http_txval_pg_row(op, res);
                op->got_row = 1;
            }

            break;

        case PGRES_PIPELINE_ABORTED:
            op->retry = 1;
            break;

        default:
            if (!op->reported) {
                ngx_http_txval_pg_log_error(pc, "query failed");
            }
        }

        PQclear(res);
    }

    ngx_http_txval_pg_watch(pc);
    ngx_http_txval_pg_publish();

    return ngx_http_txval_pg_take_waiting(pc);
}


/* whether an answer is due: the prepare's, a lookup's, a sync's */

static ngx_uint_t
ngx_http_txval_pg_expecting(ngx_http_txval_pg_conn_t *pc)
{
    ngx_http_txval_pg_op_t  *op;

    if (pc->preparing || pc->syncs) {
        return 1;
    }

    if (ngx_queue_empty(&pc->ops)) {
        return 0;
    }

    op = ngx_queue_data(ngx_queue_head(&pc->ops), ngx_http_txval_pg_op_t,
                        queue);

    return op->sent;
}


/* an answer came: the server is alive, its deadline starts again */

static void
ngx_http_txval_pg_answered(ngx_http_txval_pg_conn_t *pc)
{
    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }
}


/*
 * While answers are expected, the server must send something within its
 * statement_timeout (2 x timeout) plus the timeout, or the connection is
 * given up.
 */

static void
ngx_http_txval_pg_watch(ngx_http_txval_pg_conn_t *pc)
{
    ngx_msec_t  timeout;

    if (!ngx_http_txval_pg_expecting(pc)) {
        if (pc->timer.timer_set) {
            ngx_del_timer(&pc->timer);
        }

        return;
    }

    if (!pc->timer.timer_set) {
        timeout = pc->pool->conf->timeout;
        ngx_add_timer(&pc->timer, 3 * timeout);
    }
}


/* op joins the connection's lookups, with its deadline */

static void
ngx_http_txval_pg_attach(ngx_http_txval_pg_conn_t *pc,
    ngx_http_txval_pg_op_t *op)
{
    ngx_queue_insert_tail(&pc->ops, &op->queue);
    pc->nops++;
    op->conn = pc;

    op->wait.handler = ngx_http_txval_pg_deadline;
    op->wait.data = op;
    op->wait.log = pc->pool->log;

    if (!op->wait.timer_set) {
        ngx_add_timer(&op->wait, pc->pool->conf->timeout);
    }
}


/*
 * Queues op's lookup on a ready connection (libpq buffers it); the batch
 * is synced and written at the end of this turn of the event loop, or now
 * when it is full. NGX_ERROR: the connection is broken.
 */

static ngx_int_t
ngx_http_txval_pg_query(ngx_http_txval_pg_conn_t *pc,
    ngx_http_txval_pg_op_t *op)
{
    char         bins[3][NGX_HTTP_TXVAL_BIN_MAX + 1];
    ngx_uint_t   len;
    const char  *params[NGX_HTTP_TXVAL_PG_NPARAMS];

    params[0] = (op->want & NGX_HTTP_TXVAL_ROW_MERCHANT)
                ? op->merchant_id : NULL;
    params[1] = op->currency;
    params[2] = (op->want & NGX_HTTP_TXVAL_ROW_CARD) ? op->card_token : NULL;

    for (len = 6; len <= 8; len++) {
        if (op->want & NGX_HTTP_TXVAL_ROW_BIN(len)) {
            ngx_memcpy(bins[len - 6], op->card_bin, len);
            bins[len - 6][len] = '\0';
            params[3 + len - 6] = bins[len - 6];

        } else {
            params[3 + len - 6] = NULL;
        }
    }

    if (!PQsendQueryPrepared(pc->pg, NGX_HTTP_TXVAL_PG_STMT,
                             NGX_HTTP_TXVAL_PG_NPARAMS, params, NULL, NULL, 0))
    {
        return NGX_ERROR;
    }

    op->sent = 1;
    op->got_row = 0;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pc->c->log, 0,
                   "txval: postgres lookup sent, want:%ui in flight:%ui",
                   op->want, pc->nops);

    if (++pc->batch >= NGX_HTTP_TXVAL_PG_BATCH) {
        if (pc->sync.posted) {
            ngx_delete_posted_event(&pc->sync);
        }

        return ngx_http_txval_pg_sync(pc);
    }

    if (!pc->sync.posted) {
        ngx_post_event(&pc->sync, &ngx_posted_events);
    }

    return NGX_OK;
}


static void
ngx_http_txval_pg_sync_handler(ngx_event_t *ev)
{
    ngx_http_txval_pg_conn_t  *pc = ev->data;

    (void) ngx_http_txval_pg_sync(pc);
}


/* the batch's end: one PQpipelineSync, which writes it all */

static ngx_int_t
ngx_http_txval_pg_sync(ngx_http_txval_pg_conn_t *pc)
{
    if (pc->batch == 0) {
        return NGX_OK;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->c->log, 0,
                   "txval: postgres batch of %ui sent", pc->batch);

    pc->batch = 0;

    if (!PQpipelineSync(pc->pg)) {
        ngx_http_txval_pg_close(pc, NGX_HTTP_TXVAL_PG_ERROR, "send failed");
        return NGX_ERROR;
    }

    pc->syncs++;

    ngx_http_txval_pg_watch(pc);

    return ngx_http_txval_pg_flush(pc);
}


/*
 * merchant active, m.max_amount, currency allowed, m.currencies, card
 * blocked, c.country, the blocked BIN prefixes: the parts op asked for
 */

static void
ngx_http_txval_pg_row(ngx_http_txval_pg_op_t *op, PGresult *res)
{
    ngx_int_t                       bins;
    ngx_uint_t                      len;
    ngx_http_txval_rows_t          *rows;
    ngx_http_txval_card_row_t      *c;
    ngx_http_txval_merchant_row_t  *m;

    rows = &op->rows;
    ngx_memzero(rows, sizeof(ngx_http_txval_rows_t));

    rows->have = op->want;

    m = &rows->merchant;

    if ((op->want & NGX_HTTP_TXVAL_ROW_MERCHANT) && !PQgetisnull(res, 0, 0)) {
        m->found = 1;
        m->active = (PQgetvalue(res, 0, 0)[0] == 't');

        if (!PQgetisnull(res, 0, 1)) {
            m->has_max = 1;
            m->max = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        }

        m->currency_allowed = (PQgetvalue(res, 0, 2)[0] == 't');
        m->listed = 1;

        if (!op->keep) {
            /* nobody keeps the row: the server's answer is enough */
            m->listed = 0;

        } else if (!PQgetisnull(res, 0, 3)
                   && ngx_http_txval_currencies_parse(PQgetvalue(res, 0, 3),
                                                      PQgetlength(res, 0, 3),
                                                      m)
                      != 0)
        {
            /* not understood: this row is not kept */
            m->restricted = 1;
            m->listed = 0;
        }
    }

    c = &rows->card;

    if ((op->want & NGX_HTTP_TXVAL_ROW_CARD) && !PQgetisnull(res, 0, 4)) {
        c->found = 1;
        c->blocked = (PQgetvalue(res, 0, 4)[0] == 't');

        if (!PQgetisnull(res, 0, 5) && PQgetlength(res, 0, 5) == 2) {
            ngx_memcpy(c->country, PQgetvalue(res, 0, 5), 2);
            c->country[2] = '\0';
        }
    }

    bins = ngx_atoi((u_char *) PQgetvalue(res, 0, 6), PQgetlength(res, 0, 6));

    for (len = 6; len <= 8; len++) {
        if ((op->want & NGX_HTTP_TXVAL_ROW_BIN(len))
            && bins != NGX_ERROR && (bins & (1 << (len - 6))))
        {
            rows->bins |= NGX_HTTP_TXVAL_ROW_BIN(len);
        }
    }
}


/*
 * Closes a connection for good and fails its lookups (those not told
 * already); a lookup waiting for room gets a new connection when the pool
 * may connect.
 */

static void
ngx_http_txval_pg_close(ngx_http_txval_pg_conn_t *pc,
    ngx_http_txval_pg_status_e status, const char *why)
{
    ngx_queue_t               *q;
    ngx_http_txval_pg_op_t    *op;
    ngx_http_txval_pg_conn_t  *npc;
    ngx_http_txval_pg_pool_t  *pool = ngx_http_txval_pg_pool_of();

    if (why) {
        ngx_http_txval_pg_log_error(pc, why);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "txval postgres conn %p: closed, status:%d, %ui in flight",
                   pc, status, pc->nops);

    ngx_queue_remove(&pc->queue);
    pool->nconns--;

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    if (pc->sync.posted) {
        ngx_delete_posted_event(&pc->sync);
    }

    ngx_http_txval_pg_unsocket(pc->pg, &pc->c);

    /* non-blocking: the terminate message is sent if it can be */
    PQfinish(pc->pg);
    pc->pg = NULL;

    /*
     * one at a time from the head: a requester told may abandon another
     * lookup of this connection meanwhile
     */

    while (!ngx_queue_empty(&pc->ops)) {
        q = ngx_queue_head(&pc->ops);
        op = ngx_queue_data(q, ngx_http_txval_pg_op_t, queue);

        ngx_queue_remove(q);
        pc->nops--;

        ngx_http_txval_pg_report(op, status);
        ngx_http_txval_pg_free(op);
    }

    ngx_free(pc);

    ngx_http_txval_pg_publish();

    if (pool->exiting || ngx_queue_empty(&pool->waiting)
        || (ngx_msec_int_t) (pool->down_until - ngx_current_msec) > 0)
    {
        return;
    }

    npc = ngx_http_txval_pg_connect(pool);

    if (npc) {
        (void) ngx_http_txval_pg_take_waiting(npc);
    }
}


/*
 * Lookups waiting for room, oldest first, become the connection's.
 * NGX_ERROR: the connection broke, and is closed.
 */

static ngx_int_t
ngx_http_txval_pg_take_waiting(ngx_http_txval_pg_conn_t *pc)
{
    ngx_queue_t               *q;
    ngx_http_txval_pg_op_t    *op;
    ngx_http_txval_pg_pool_t  *pool = ngx_http_txval_pg_pool_of();

    while (!ngx_queue_empty(&pool->waiting)
           && pc->nops < NGX_HTTP_TXVAL_PG_DEPTH)
    {
        q = ngx_queue_head(&pool->waiting);
        op = ngx_queue_data(q, ngx_http_txval_pg_op_t, queue);

        ngx_queue_remove(&op->queue);
        pool->nwaiting--;

        /* its deadline runs on */
        ngx_http_txval_pg_attach(pc, op);

        if (pc->state == NGX_HTTP_TXVAL_PG_READY
            && ngx_http_txval_pg_query(pc, op) != NGX_OK)
        {
            ngx_http_txval_pg_close(pc, NGX_HTTP_TXVAL_PG_ERROR,
                                    "send failed");
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_txval_pg_unqueue(ngx_http_txval_pg_op_t *op)
{
    ngx_queue_remove(&op->queue);
    ngx_http_txval_pg_pool_of()->nwaiting--;
}


/* tells the requester, once; the operation itself may live on */

static void
ngx_http_txval_pg_report(ngx_http_txval_pg_op_t *op,
    ngx_http_txval_pg_status_e status)
{
    ngx_http_txval_pg_pool_t  *pool = ngx_http_txval_pg_pool_of();

    if (op->reported) {
        return;
    }

    op->reported = 1;
    op->status = status;

    if (op->wait.timer_set) {
        ngx_del_timer(&op->wait);
    }

    ngx_http_txval_metrics_backend(NGX_HTTP_TXVAL_M_POSTGRES, status);

    if (op->data && !pool->exiting) {
        op->done(op);
    }
}


static void
ngx_http_txval_pg_free(ngx_http_txval_pg_op_t *op)
{
    if (op->wait.timer_set) {
        ngx_del_timer(&op->wait);
    }

    ngx_free(op);
}


static void
ngx_http_txval_pg_notice(void *arg, const char *message)
{
    ngx_http_txval_pg_conn_t *pc = arg;

    ngx_http_txval_pg_log_notice(pc->pool->log, "", message);
}


void
ngx_http_txval_pg_log_notice(ngx_log_t *log, const char *who,
    const char *message)
{
    size_t  len;

    len = ngx_strlen(message);

    while (len && (message[len - 1] == '\n' || message[len - 1] == '\r')) {
        len--;
    }

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "txval: %spostgres says: %*s", who, len, message);
}


static void
ngx_http_txval_pg_publish(void)
{
    ngx_uint_t  busy, idle, connecting;

    ngx_http_txval_pg_pool_counts(&busy, &idle, &connecting);
    ngx_http_txval_metrics_pool(NGX_HTTP_TXVAL_M_POSTGRES, busy, idle,
                                connecting);
}


static void
ngx_http_txval_pg_timer(ngx_event_t *ev)
{
    ngx_http_txval_pg_conn_t  *pc = ev->data;

    if (pc->state == NGX_HTTP_TXVAL_PG_CONNECTING) {
        pc->pool->down_until = ngx_current_msec
                                            + NGX_HTTP_TXVAL_PG_BACKOFF;
        ngx_http_txval_pg_connect_timeout(pc);
        ngx_http_txval_pg_close(pc, NGX_HTTP_TXVAL_PG_TIMEOUT, NULL);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, pc->pool->log, 0,
                  "txval: postgres: no answer for %Mms, closing the "
                  "connection", 3 * pc->pool->conf->timeout);

    ngx_http_txval_pg_close(pc, NGX_HTTP_TXVAL_PG_TIMEOUT, NULL);
}


/*
 * A server that neither answers nor refuses (a host gone from the
 * network, a server that hangs) keeps libpq on it: in non-blocking mode
 * libpq goes on to the next server of a list only when one fails, never
 * on a timeout (connect_timeout is PQconnectdb's). So after a server
 * timed out, new connections start with the one after it.
 */

static void
ngx_http_txval_pg_connect_timeout(ngx_http_txval_pg_conn_t *pc)
{
    char                      *host, *addr, *port, *v;
    ngx_str_t                 *s;
    ngx_uint_t                 i, k;
    ngx_http_txval_pg_host_t  *h;
    ngx_http_txval_pg_pool_t  *pool = ngx_http_txval_pg_pool_of();

    host = PQhost(pc->pg);
    addr = PQhostaddr(pc->pg);
    port = PQport(pc->pg);

    host = host ? host : "";
    addr = addr ? addr : "";
    port = port ? port : "";

    /* the server being tried, in the order this connection tries them */

    h = NULL;
    i = 0;

    for (k = 0; k < pool->conf->nhosts; k++) {
        i = (pc->first + k) % pool->conf->nhosts;
        h = &pool->conf->hosts[i];

        /* libpq tells the address it tries, or the socket's directory */

        if (h->addr.len) {
            s = &h->addr;
            v = addr;

        } else {
            s = &h->host;
            v = host;
        }

        if (ngx_http_txval_pg_is(s, v)
            && (h->port.len == 0 || ngx_http_txval_pg_is(&h->port, port)))
        {
            break;
        }

        h = NULL;
    }

    if (h == NULL || pool->conf->nhosts < 2) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "txval: postgres: connect timed out: server at "
                      "\"%s\", port %s", host, port);
        return;
    }

    pool->first = (i + 1) % pool->conf->nhosts;
    h = &pool->conf->hosts[pool->first];

    ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                  "txval: postgres: connect timed out: server at \"%s\", "
                  "port %s; new connections start with \"%V\"%s%V",
                  host, port, h->host.len ? &h->host : &h->addr,
                  h->port.len ? ", port " : "", &h->port);
}


/*
 * libpq's message on one line: a line per server tried (several with a
 * list), without the indented hints; never the conninfo
 */

static void
ngx_http_txval_pg_log_error(ngx_http_txval_pg_conn_t *pc, const char *what)
{
    char    *msg, *nl;
    u_char  *p, *last;
    size_t   len;
    u_char   buf[NGX_MAX_ERROR_STR / 2];

    p = buf;
    last = buf + sizeof(buf);

    for (msg = PQerrorMessage(pc->pg); *msg; msg += len) {
        nl = strchr(msg, '\n');
        len = nl ? (size_t) (nl - msg) + 1 : ngx_strlen(msg);

        if (msg[0] == '\t' || msg[0] == '\n') {
            continue;
        }

        p = ngx_slprintf(p, last, "%s%*s", p == buf ? "" : "; ",
                         nl ? len - 1 : len, msg);
    }

    ngx_log_error(NGX_LOG_ERR, pc->pool->log, 0,
                  "txval: postgres: %s%s%*s", what, p == buf ? "" : ": ",
                  p - buf, buf);
}


/*
 * A lookup's deadline: its requester is told now. A lookup in flight
 * stays on its connection, whose other lookups go on; its answer, when
 * it comes, is dropped.
 */

static void
ngx_http_txval_pg_deadline(ngx_event_t *ev)
{
    ngx_http_txval_pg_op_t    *op = ev->data;
    ngx_http_txval_pg_conn_t  *pc;

    pc = op->conn;

    if (pc == NULL) {
        /* waited for room in vain */
        ngx_http_txval_pg_unqueue(op);
        ngx_http_txval_pg_report(op, NGX_HTTP_TXVAL_PG_TIMEOUT);
        ngx_http_txval_pg_free(op);
        return;
    }

    if (!op->sent) {
        /* its connection is still connecting */
        ngx_queue_remove(&op->queue);
        pc->nops--;
        ngx_http_txval_pg_report(op, NGX_HTTP_TXVAL_PG_TIMEOUT);
        ngx_http_txval_pg_free(op);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, pc->pool->log, 0,
                  "txval: postgres: query timed out");

    ngx_http_txval_pg_report(op, NGX_HTTP_TXVAL_PG_TIMEOUT);
}


static ngx_uint_t
ngx_http_txval_pg_is(ngx_str_t *s, const char *v)
{
    return s->len == ngx_strlen(v)
           && ngx_strncmp(s->data, v, s->len) == 0;
}
