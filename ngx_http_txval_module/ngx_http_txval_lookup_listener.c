
/*
 * txval: the lookup cache's listener (txval_lookup_cache ...
 * notify=CHANNEL): the LISTEN connection that keeps the zone of
 * _lookup.c true.
 *
 * One connection per nginx instance LISTENs on the channel; triggers send
 * "<table>:<key>" (optionally "@<µs since the epoch>" after it, the
 * trigger's clock, for the lag histogram) or "*". Ownership lives in the
 * zone: the owner's pid and a heartbeat. Every worker ticks every 100 ms;
 * the owner beats, the others take over when the owner is gone (its pid
 * is dead, or it has not beaten for a second) or belongs to an older
 * configuration (a reload), one candidate at a time. The zone is used
 * only while its owner's listener is up and beats ("usable"); when the
 * listener is lost it is not, and lookups go to Postgres. A listener that
 * (re)starts empties the zone (a new generation) once its LISTEN
 * succeeded, then marks it usable. On a reload the new worker takes over
 * while the old one still listens (on the same channel); the old one then
 * sends a last query and, once answered (every notification up to then
 * received), leaves: no notification can fall between the two, and the
 * zone is not emptied. If the old one cannot confirm, the zone is
 * emptied. An owner told to exit stays (the hold) until a worker of the
 * new configuration takes over, or lets go after a while.
 *
 * The worker's side (ngx_http_txval_listener_t) hangs off the conf,
 * lc->listener, made in init_process; the connection is libpq's, wrapped
 * in an nginx connection as the Postgres pool does (_pg.c).
 */


#include "ngx_http_txval_lookup_int.h"


/* the listener's clock, ms */
#define NGX_HTTP_TXVAL_LOOKUP_TICK     100      /* every worker */
#define NGX_HTTP_TXVAL_LOOKUP_PING     1000     /* a query, to know it lives */
#define NGX_HTTP_TXVAL_LOOKUP_RETIRE   3000     /* an old owner confirms */
#define NGX_HTTP_TXVAL_LOOKUP_HOLD     10000    /* an exiting owner waits */
#define NGX_HTTP_TXVAL_LOOKUP_BACKOFF  200      /* first retry, then x2 */
#define NGX_HTTP_TXVAL_LOOKUP_BACKOFF_MAX  1000


static void ngx_http_txval_listener_tick(ngx_event_t *ev);
static void ngx_http_txval_listener_connect(ngx_http_txval_listener_t *ls);
static void ngx_http_txval_listener_handler(ngx_event_t *ev);
static void ngx_http_txval_listener_poll(ngx_http_txval_listener_t *ls);
static ngx_int_t ngx_http_txval_listener_command(
    ngx_http_txval_listener_t *ls, const char *sql);
static void ngx_http_txval_listener_read(ngx_http_txval_listener_t *ls);
static void ngx_http_txval_listener_answered(ngx_http_txval_listener_t *ls,
    ngx_uint_t ok);
static void ngx_http_txval_listener_listening(ngx_http_txval_listener_t *ls);
static void ngx_http_txval_listener_notify(ngx_http_txval_listener_t *ls,
    const char *payload);
static void ngx_http_txval_listener_timer(ngx_event_t *ev);
static void ngx_http_txval_listener_hold(ngx_event_t *ev);
static void ngx_http_txval_listener_lost(ngx_http_txval_listener_t *ls,
    const char *why);
static void ngx_http_txval_listener_close(ngx_http_txval_listener_t *ls);
static void ngx_http_txval_listener_release(ngx_http_txval_listener_t *ls);
static ngx_uint_t ngx_http_txval_listener_alive(ngx_pid_t pid);
static void ngx_http_txval_listener_notice(void *arg, const char *message);


ngx_int_t
ngx_http_txval_lookup_init_process(ngx_cycle_t *cycle,
    ngx_http_txval_lookup_t *lc, ngx_http_txval_pg_conf_t *pcf)
{
    u_char                     *p;
    ngx_http_txval_listener_t  *ls;

    if (lc->channel.len == 0 || pcf == NULL) {
        return NGX_OK;
    }

    /* the worker's own, hung off the conf */

    ls = ngx_pcalloc(cycle->pool, sizeof(ngx_http_txval_listener_t));
    p = ngx_pnalloc(cycle->pool, sizeof("LISTEN \"\"") + lc->channel.len);

    if (ls == NULL || p == NULL) {
        return NGX_ERROR;
    }

    lc->listener = ls;

    ls->lc = lc;
    ls->pcf = pcf;
    ls->log = cycle->log;
    ls->backoff = NGX_HTTP_TXVAL_LOOKUP_BACKOFF;

    ngx_sprintf(p, "LISTEN \"%V\"%Z", &lc->channel);
    ls->listen_sql = (char *) p;
    ls->channel = ngx_crc32_short(lc->channel.data, lc->channel.len);

    ngx_shmtx_lock(&lc->shpool->mutex);
    ls->cgen = lc->sh->cgen;
    ngx_shmtx_unlock(&lc->shpool->mutex);

    ls->tick.handler = ngx_http_txval_listener_tick;
    ls->tick.data = ls;
    ls->tick.log = cycle->log;
    /*
     * the tick keeps an exiting worker only while it owns the listener,
     * so that it can hand it over (see ngx_http_txval_listener_tick())
     */
    ls->tick.cancelable = 1;

    ls->timer.handler = ngx_http_txval_listener_timer;
    ls->timer.data = ls;
    ls->timer.log = cycle->log;
    ls->timer.cancelable = 1;

    ls->hold.handler = ngx_http_txval_listener_hold;
    ls->hold.data = ls;
    ls->hold.log = cycle->log;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ls->log, 0,
                   "txval lookup listener: ticking, configuration %ui",
                   ls->cgen);

    /* the first look at once: a new worker may be the one to listen */
    ngx_add_timer(&ls->tick, 1);

    return NGX_OK;
}


void
ngx_http_txval_lookup_exit_process(ngx_http_txval_lookup_t *lc)
{
    ngx_http_txval_listener_t  *ls;

    ls = lc->listener;

    if (ls == NULL || ls->lc == NULL) {
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ls->log, 0,
                   "txval lookup listener: the worker exits");

    ngx_http_txval_listener_release(ls);
    ngx_http_txval_listener_close(ls);

    if (ls->tick.timer_set) {
        ngx_del_timer(&ls->tick);
    }

    if (ls->hold.timer_set) {
        ngx_del_timer(&ls->hold);
    }

    ls->lc = NULL;
}


/*
 * Every NGX_HTTP_TXVAL_LOOKUP_TICK ms in every worker: the owner beats,
 * pings and reconnects; an old owner that was replaced confirms and
 * leaves; another worker becomes the candidate when the owner is gone
 * or of an older configuration.
 */

static void
ngx_http_txval_listener_tick(ngx_event_t *ev)
{
    ngx_http_txval_listener_t *ls = ev->data;

    ngx_msec_t                   now;
    ngx_uint_t                   takeover, connect, retire, vacant, candidate;
    ngx_http_txval_lookup_t     *lc;
    ngx_http_txval_lookup_sh_t  *sh;

    lc = ls->lc;
    sh = lc->sh;
    now = ngx_current_msec;

    takeover = 0;
    connect = 0;
    retire = 0;
    candidate = 0;

    ngx_shmtx_lock(&lc->shpool->mutex);

    if (sh->owner == ngx_pid) {
        sh->heartbeat = now;
        ls->owner = 1;

        if (ls->state == NGX_HTTP_TXVAL_LISTENER_IDLE
            && (ngx_msec_int_t) (now - ls->retry_at) >= 0
            && !ngx_exiting)
        {
            connect = 1;
        }

    } else {
        if (ls->owner && ls->state == NGX_HTTP_TXVAL_LISTENER_UP) {
            /* taken over: confirm, then leave */
            retire = !ls->retiring;
        }

        ls->owner = 0;

        vacant = (sh->owner == 0
                  || !ngx_http_txval_listener_alive(sh->owner)
                  || (ngx_msec_int_t) (now - sh->heartbeat)
                     >= NGX_HTTP_TXVAL_LOOKUP_STALE);

        if (vacant && sh->usable) {
            /* nobody listens: notifications may be missed from now on */
            ngx_log_error(NGX_LOG_WARN, ls->log, 0,
                          "txval: lookup cache: the listening worker %P "
                          "is gone, the cache is bypassed until another "
                          "listens", sh->owner);
            sh->usable = 0;
        }

        takeover = (vacant || sh->owner_cgen < ls->cgen)
                   && !ngx_exiting && !ls->retiring && !retire;

        if (takeover
            && (sh->candidate == 0 || sh->candidate == ngx_pid
                || !ngx_http_txval_listener_alive(sh->candidate)
                || (ngx_msec_int_t) (now - sh->candidate_at)
                   >= NGX_HTTP_TXVAL_LOOKUP_STALE))
        {
            candidate = (sh->candidate != ngx_pid);
            sh->candidate = ngx_pid;
            sh->candidate_at = now;

            if (ls->state == NGX_HTTP_TXVAL_LISTENER_IDLE
                && (ngx_msec_int_t) (now - ls->retry_at) >= 0)
            {
                connect = 1;
            }
        }
    }

    /* an old owner that never confirmed: what it missed is unknown */

    if (sh->retiring
        && (!ngx_http_txval_listener_alive(sh->retiring)
            || (ngx_msec_int_t) (now - sh->retiring_at)
               >= NGX_HTTP_TXVAL_LOOKUP_RETIRE))
    {
        ngx_log_error(NGX_LOG_WARN, ls->log, 0,
                      "txval: lookup cache: the worker %P that listened "
                      "before did not confirm, emptying the cache",
                      sh->retiring);
        ngx_http_txval_lookup_flush_locked(lc);
        sh->retiring = 0;
    }

    ngx_shmtx_unlock(&lc->shpool->mutex);

    if (candidate) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ls->log, 0,
                       "txval lookup listener: candidate to take over");
    }

    if (retire) {
        ngx_log_error(NGX_LOG_NOTICE, ls->log, 0,
                      "txval: lookup cache: another worker listens now, "
                      "this one confirms and stops");
        ls->retiring = 1;
        ls->ping_at = now;
    }

    if (connect) {
        ngx_http_txval_listener_connect(ls);
    }

    /* a ping while up: the connection lives, answers come */

    if (ls->state == NGX_HTTP_TXVAL_LISTENER_UP && !ls->busy
        && (ngx_msec_int_t) (now - ls->ping_at) >= 0)
    {
        if (ngx_http_txval_listener_command(ls, "SELECT 1") != NGX_OK) {
            ngx_http_txval_listener_lost(ls, "send failed");
        }
    }

    /*
     * an owner's tick is not cancelable: when the worker is told to exit,
     * it runs once more and hands the listener over (or lets it go)
     * before the worker exits
     */
    ev->cancelable = !(ls->owner || ls->retiring);

    if (ls->lc && !ev->timer_set) {
        ngx_add_timer(ev, NGX_HTTP_TXVAL_LOOKUP_TICK);
    }

    /* an exiting owner stays until another takes over, or a while */

    if (ngx_exiting && ls->owner && !ls->holding) {
        ls->holding = 1;

        ngx_shmtx_lock(&lc->shpool->mutex);

        if (sh->cgen > ls->cgen && sh->cgen_notify) {
            ls->hold_until = now + NGX_HTTP_TXVAL_LOOKUP_HOLD;
            ngx_add_timer(&ls->hold, NGX_HTTP_TXVAL_LOOKUP_TICK);
            ngx_shmtx_unlock(&lc->shpool->mutex);

            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ls->log, 0,
                           "txval lookup listener: exiting, holds it for "
                           "the new configuration");
            return;
        }

        ngx_shmtx_unlock(&lc->shpool->mutex);

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ls->log, 0,
                       "txval lookup listener: exiting, lets it go");

        ngx_http_txval_listener_release(ls);
        ngx_http_txval_listener_close(ls);
        ev->cancelable = 1;
    }
}


/* the exiting owner: handed over (then it confirms), or it lets go */

static void
ngx_http_txval_listener_hold(ngx_event_t *ev)
{
    ngx_http_txval_listener_t *ls = ev->data;

    if (ls->lc == NULL) {
        return;
    }

    if (ls->retiring || ls->state == NGX_HTTP_TXVAL_LISTENER_IDLE) {
        /* confirming (the ping's timer holds the worker), or done */
        return;
    }

    if (!ls->owner) {
        /* the tick saw the takeover */
        ngx_add_timer(ev, NGX_HTTP_TXVAL_LOOKUP_TICK);
        return;
    }

    if ((ngx_msec_int_t) (ngx_current_msec - ls->hold_until) >= 0) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ls->log, 0,
                       "txval lookup listener: nobody took over, "
                       "lets it go");

        ngx_http_txval_listener_release(ls);
        ngx_http_txval_listener_close(ls);
        ls->tick.cancelable = 1;
        return;
    }

    ngx_add_timer(ev, NGX_HTTP_TXVAL_LOOKUP_TICK);
}


static void
ngx_http_txval_listener_connect(ngx_http_txval_listener_t *ls)
{
    PGconn             *pg;
    const char *const  *keywords, *const *values;

    ngx_http_txval_pg_conninfo(&keywords, &values);

    pg = PQconnectStartParams(keywords, values, 0);

    if (pg == NULL) {
        ngx_log_error(NGX_LOG_ERR, ls->log, 0,
                      "txval: lookup cache: out of memory");
        return;
    }

    ls->pg = pg;

    if (ngx_http_txval_pg_connect_start(pg, &ls->c,
                                        ngx_http_txval_listener_handler, ls,
                                        ls->log,
                                        ngx_http_txval_listener_notice)
        != NGX_OK)
    {
        ngx_http_txval_listener_lost(ls, "connect failed");
        return;
    }

    ls->state = NGX_HTTP_TXVAL_LISTENER_CONNECTING;
    ls->busy = 0;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ls->log, 0,
                   "txval lookup listener: connecting");

    /* a connect may take the whole timeout: the worker waits for it */
    ls->timer.cancelable = 0;
    ngx_add_timer(&ls->timer, ls->pcf->timeout);
}


static void
ngx_http_txval_listener_handler(ngx_event_t *ev)
{
    ngx_connection_t           *c = ev->data;
    ngx_http_txval_listener_t  *ls = c->data;

    if (ls->state == NGX_HTTP_TXVAL_LISTENER_CONNECTING) {
        ngx_http_txval_listener_poll(ls);
        return;
    }

    if (ev->write) {
        if (ngx_http_txval_pg_socket_flush(ls->pg, ls->c) == NGX_ERROR) {
            ngx_http_txval_listener_lost(ls, "send failed");
        }

        return;
    }

    ngx_http_txval_listener_read(ls);
}


static void
ngx_http_txval_listener_poll(ngx_http_txval_listener_t *ls)
{
    ngx_int_t  rc;

    rc = ngx_http_txval_pg_connect_poll(ls->pg, &ls->c,
                                        ngx_http_txval_listener_handler, ls,
                                        ls->log);

    if (rc == NGX_AGAIN) {
        return;
    }

    if (rc == NGX_ERROR) {
        ngx_http_txval_listener_lost(ls, "connect failed");
        return;
    }

    ngx_del_timer(&ls->timer);

    ls->state = NGX_HTTP_TXVAL_LISTENER_LISTENING;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ls->log, 0,
                   "txval lookup listener: connected, LISTEN sent");

    if (ngx_http_txval_listener_command(ls, ls->listen_sql) != NGX_OK) {
        ngx_http_txval_listener_lost(ls, "LISTEN failed");
    }
}


/* one command at a time: LISTEN, then pings; its answer has a deadline */

static ngx_int_t
ngx_http_txval_listener_command(ngx_http_txval_listener_t *ls,
    const char *sql)
{
    ngx_msec_t  timeout;

    if (!PQsendQuery(ls->pg, sql)) {
        return NGX_ERROR;
    }

    ls->busy = 1;
    ls->final = ls->retiring;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ls->log, 0,
                   "txval lookup listener: sent \"%s\"%s", sql,
                   ls->final ? ", the last" : "");

    timeout = ngx_max(2 * ls->pcf->timeout, NGX_HTTP_TXVAL_LOOKUP_PING);

    /* a retiring owner's last answer keeps its worker until it comes */
    ls->timer.cancelable = !ls->retiring;

    if (ls->timer.timer_set) {
        ngx_del_timer(&ls->timer);
    }

    ngx_add_timer(&ls->timer, timeout);

    if (ngx_http_txval_pg_socket_flush(ls->pg, ls->c) == NGX_ERROR) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* notifications, and the answer to the command, as they come */

static void
ngx_http_txval_listener_read(ngx_http_txval_listener_t *ls)
{
    PGnotify        *n;
    PGresult        *res;
    ngx_uint_t       ok;
    ExecStatusType   st;

    if (PQconsumeInput(ls->pg) == 0 || PQstatus(ls->pg) == CONNECTION_BAD) {
        ngx_http_txval_listener_lost(ls, "connection lost");
        return;
    }

    for ( ;; ) {
        n = PQnotifies(ls->pg);
        if (n == NULL) {
            break;
        }

        ngx_http_txval_listener_notify(ls, n->extra);
        PQfreemem(n);
    }

    ok = 1;

    while (ls->busy && !PQisBusy(ls->pg)) {
        res = PQgetResult(ls->pg);

        if (res == NULL) {
            ngx_http_txval_listener_answered(ls, ok);
            return;
        }

        st = PQresultStatus(res);

        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            ngx_log_error(NGX_LOG_ERR, ls->log, 0,
                          "txval: lookup cache: %s failed: %s",
                          ls->state == NGX_HTTP_TXVAL_LISTENER_LISTENING
                          ? "LISTEN" : "a ping",
                          PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                          ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                          : "no message");
            ok = 0;
        }

        PQclear(res);
    }
}


static void
ngx_http_txval_listener_answered(ngx_http_txval_listener_t *ls,
    ngx_uint_t ok)
{
    ngx_http_txval_lookup_t  *lc;

    lc = ls->lc;
    ls->busy = 0;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ls->log, 0,
                   "txval lookup listener: answered, %s",
                   ok ? "ok" : "failed");

    if (ls->timer.timer_set) {
        ngx_del_timer(&ls->timer);
    }

    if (!ok) {
        ngx_http_txval_listener_lost(ls, NULL);
        return;
    }

    ls->backoff = NGX_HTTP_TXVAL_LOOKUP_BACKOFF;

    if (ls->state == NGX_HTTP_TXVAL_LISTENER_LISTENING) {
        ngx_http_txval_listener_listening(ls);
        return;
    }

    ls->ping_at = ngx_current_msec + NGX_HTTP_TXVAL_LOOKUP_PING;

    if (ls->retiring && !ls->final) {
        /* a ping sent before the handover proves nothing: one more */

        if (ngx_http_txval_listener_command(ls, "SELECT 1") != NGX_OK) {
            ngx_http_txval_listener_lost(ls, "send failed");
        }

        return;
    }

    if (ls->retiring) {
        /* every notification up to now is in: the new owner had them */

        ngx_shmtx_lock(&lc->shpool->mutex);

        if (lc->sh->retiring == ngx_pid) {
            lc->sh->retiring = 0;
        }

        ngx_shmtx_unlock(&lc->shpool->mutex);

        ngx_log_error(NGX_LOG_NOTICE, ls->log, 0,
                      "txval: lookup cache: handed over, stopped "
                      "listening");

        ls->retiring = 0;
        ngx_http_txval_listener_close(ls);
    }
}


/*
 * LISTEN succeeded: this worker owns the listener. Taken over from a
 * listening owner, nothing can have been missed (that one confirms);
 * else the zone is emptied before it is used.
 */

static void
ngx_http_txval_listener_listening(ngx_http_txval_listener_t *ls)
{
    ngx_msec_t                   now;
    ngx_uint_t                   seamless;
    ngx_http_txval_lookup_t     *lc;
    ngx_http_txval_lookup_sh_t  *sh;

    lc = ls->lc;
    sh = lc->sh;
    now = ngx_current_msec;

    ngx_shmtx_lock(&lc->shpool->mutex);

    if (sh->owner != ngx_pid && sh->candidate != ngx_pid) {
        /* another worker took it meanwhile */
        ngx_shmtx_unlock(&lc->shpool->mutex);

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ls->log, 0,
                       "txval lookup listener: another worker took it");

        ngx_http_txval_listener_close(ls);
        return;
    }

    if (sh->candidate == ngx_pid) {
        sh->candidate = 0;
    }

    seamless = (sh->owner != 0 && sh->owner != ngx_pid
                && sh->owner_channel == ls->channel
                && ngx_http_txval_listener_alive(sh->owner)
                && sh->usable
                && (ngx_msec_int_t) (now - sh->heartbeat)
                   < NGX_HTTP_TXVAL_LOOKUP_STALE
                && sh->retiring == 0);

    if (seamless) {
        sh->retiring = sh->owner;
        sh->retiring_at = now;

    } else {
        ngx_http_txval_lookup_flush_locked(lc);
    }

    sh->owner = ngx_pid;
    sh->owner_cgen = ls->cgen;
    sh->owner_channel = ls->channel;
    sh->heartbeat = now;
    sh->usable = 1;

    ngx_shmtx_unlock(&lc->shpool->mutex);

    ls->owner = 1;
    ls->state = NGX_HTTP_TXVAL_LISTENER_UP;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ls->log, 0,
                   "txval lookup listener: up, the zone is usable");
    ls->ping_at = now + NGX_HTTP_TXVAL_LOOKUP_PING;

    ngx_log_error(NGX_LOG_NOTICE, ls->log, 0,
                  "txval: lookup cache: listening on channel \"%V\"%s",
                  &lc->channel,
                  seamless ? ", taken over from the worker before"
                           : ", the cache was emptied");
}


/*
 * "<table>:<key>", "*", either with "@<µs since the epoch>" after it:
 * the named entry goes, or all of them
 */

static void
ngx_http_txval_listener_notify(ngx_http_txval_listener_t *ls,
    const char *payload)
{
    size_t                    len, klen;
    int64_t                   at;
    ngx_uint_t                kind;
    const char               *p, *key, *last;
    ngx_http_txval_lookup_t  *lc;

    lc = ls->lc;
    len = ngx_strlen(payload);
    last = payload + len;
    at = 0;

    /* the trigger's clock: the digits after the last '@' */

    for (p = last; p > payload && p[-1] >= '0' && p[-1] <= '9'; p--) {
        /* void */
    }

    if (p > payload && p < last && p[-1] == '@') {
        at = ngx_atoof((u_char *) p, last - p);
        last = p - 1;
    }

    len = last - payload;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ls->log, 0,
                   "txval lookup listener: notification \"%*s\"",
                   len, payload);

    if (len == 1 && payload[0] == '*') {
        ngx_shmtx_lock(&lc->shpool->mutex);
        ngx_http_txval_lookup_flush_locked(lc);
        ngx_shmtx_unlock(&lc->shpool->mutex);
        return;
    }

    key = (const char *) ngx_strlchr((u_char *) payload, (u_char *) last,
                                     ':');

    if (key == NULL) {
        return;
    }

    klen = last - key - 1;

    if (klen == 0 || klen > NGX_HTTP_TXVAL_TOKEN_MAX) {
        /* no key txval looks up */
        return;
    }

    if (key - payload == 9 && ngx_strncmp(payload, "merchants", 9) == 0) {
        kind = NGX_HTTP_TXVAL_LOOKUP_MERCHANT;

    } else if (key - payload == 5 && ngx_strncmp(payload, "cards", 5) == 0) {
        kind = NGX_HTTP_TXVAL_LOOKUP_CARD;

    } else if (key - payload == 12
               && ngx_strncmp(payload, "blocked_bins", 12) == 0)
    {
        kind = NGX_HTTP_TXVAL_LOOKUP_BIN;

    } else {
        return;
    }

    ngx_http_txval_lookup_invalidate(lc, kind, (u_char *) key + 1, klen, at);
}


static void
ngx_http_txval_listener_timer(ngx_event_t *ev)
{
    ngx_http_txval_listener_t *ls = ev->data;

    ngx_http_txval_listener_lost(ls,
                                 ls->state == NGX_HTTP_TXVAL_LISTENER_CONNECTING
                                 ? "connect timed out" : "no answer in time");
}


/*
 * The connection failed or was lost: closed, a new one later; the zone is
 * not used meanwhile (notifications may be missed), and a retiring owner
 * that could not confirm empties it.
 */

static void
ngx_http_txval_listener_lost(ngx_http_txval_listener_t *ls, const char *why)
{
    char                     *msg, *nl;
    size_t                    len;
    ngx_uint_t                level;
    ngx_http_txval_lookup_t  *lc;

    lc = ls->lc;
    level = (ls->state == NGX_HTTP_TXVAL_LISTENER_UP) ? NGX_LOG_ERR
                                                      : NGX_LOG_WARN;

    if (why) {
        msg = ls->pg ? PQerrorMessage(ls->pg) : "";
        nl = strchr(msg, '\n');
        len = nl ? (size_t) (nl - msg) : ngx_strlen(msg);

        ngx_log_error(level, ls->log, 0,
                      "txval: lookup cache: listener %s%s%*s%s", why,
                      len ? ": " : "", len, msg,
                      ls->owner && !ls->retiring
                      ? ", the cache is bypassed until it is back" : "");
    }

    ngx_shmtx_lock(&lc->shpool->mutex);

    if (lc->sh->owner == ngx_pid) {
        lc->sh->usable = 0;
    }

    if (ls->retiring && lc->sh->retiring == ngx_pid) {
        ngx_http_txval_lookup_flush_locked(lc);
        lc->sh->retiring = 0;
    }

    if (lc->sh->candidate == ngx_pid) {
        lc->sh->candidate = 0;
    }

    ngx_shmtx_unlock(&lc->shpool->mutex);

    ls->retiring = 0;

    ngx_http_txval_listener_close(ls);

    ls->retry_at = ngx_current_msec + ls->backoff;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ls->log, 0,
                   "txval lookup listener: lost, again in %M ms",
                   ls->backoff);

    ls->backoff = ngx_min(2 * ls->backoff, NGX_HTTP_TXVAL_LOOKUP_BACKOFF_MAX);
}


static void
ngx_http_txval_listener_close(ngx_http_txval_listener_t *ls)
{
    if (ls->timer.timer_set) {
        ngx_del_timer(&ls->timer);
    }

    if (ls->pg) {
        ngx_http_txval_pg_unsocket(ls->pg, &ls->c);
        PQfinish(ls->pg);
        ls->pg = NULL;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ls->log, 0,
                   "txval lookup listener: closed (was %d)", ls->state);

    ls->state = NGX_HTTP_TXVAL_LISTENER_IDLE;
    ls->busy = 0;
}


/* this worker leaves: whatever it held in the zone is let go */

static void
ngx_http_txval_listener_release(ngx_http_txval_listener_t *ls)
{
    ngx_http_txval_lookup_t     *lc;
    ngx_http_txval_lookup_sh_t  *sh;

    lc = ls->lc;
    sh = lc->sh;

    ngx_shmtx_lock(&lc->shpool->mutex);

    if (sh->owner == ngx_pid) {
        sh->owner = 0;
        sh->usable = 0;
    }

    if (sh->candidate == ngx_pid) {
        sh->candidate = 0;
    }

    if (sh->retiring == ngx_pid) {
        /* it could not confirm */
        ngx_http_txval_lookup_flush_locked(lc);
        sh->retiring = 0;
    }

    ngx_shmtx_unlock(&lc->shpool->mutex);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ls->log, 0,
                   "txval lookup listener: released (owner: %ui)",
                   (ngx_uint_t) ls->owner);

    ls->owner = 0;
    ls->retiring = 0;
}


static ngx_uint_t
ngx_http_txval_listener_alive(ngx_pid_t pid)
{
    if (pid == ngx_pid) {
        return 1;
    }

    return kill(pid, 0) == 0 || ngx_errno == NGX_EPERM;
}


static void
ngx_http_txval_listener_notice(void *arg, const char *message)
{
    ngx_http_txval_listener_t *ls = arg;

    ngx_http_txval_pg_log_notice(ls->log, "lookup cache: ", message);
}

