
/*
 * txval: the lookup cache (txval_lookup_cache NAME:SIZE [ttl=TIME]
 * [notify=CHANNEL]).
 *
 * The zone. One for all workers, in the style of the verdict cache: a
 * red-black tree keyed by a hash of (kind, key), an LRU queue, an expiry
 * time per entry, and entries of one size (256 bytes: room for the
 * longest key and a merchant's currencies), so that a full zone evicts
 * from the LRU tail and never fragments. An entry is a merchant row, a
 * card row or one prefix (6, 7 or 8 digits) of a BIN, found or not: the
 * absence of a row is a fact too (a negative entry). A merchant keeps its
 * currencies (at most NGX_HTTP_TXVAL_CURRENCIES_MAX well-formed codes; a
 * longer list is never kept), not the answer for one currency.
 *
 * Staying true. Each entry carries the flush generation it was written
 * in; a flush (a "*" notification, the listener coming back) moves the
 * generation on, and older entries count as absent (they are dropped as
 * they are met, and from the LRU tail). A lookup records the generation
 * and the count of invalidations it saw; the rows Postgres then gives are
 * stored only if no flush came meanwhile and no invalidation named their
 * key (the last NGX_HTTP_TXVAL_LOOKUP_RECENT invalidations are kept; more
 * than that meanwhile and nothing is stored): a row read before a change
 * never outlives the notification of that change.
 *
 * The listener (notify=). One connection per nginx instance LISTENs on
 * the channel; triggers send "<table>:<key>" (optionally "@<µs since the
 * epoch>" after it, the trigger's clock, for the lag histogram) or "*".
 * Ownership lives in the zone: the owner's pid and a heartbeat. Every
 * worker ticks every 100 ms; the owner beats, the others take over when
 * the owner is gone (its pid is dead, or it has not beaten for a second)
 * or belongs to an older configuration (a reload), one candidate at a
 * time. The zone is used only while its owner's listener is up and beats
 * ("usable"); when the listener is lost it is not, and lookups go to
 * Postgres. A listener that (re)starts empties the zone (a new
 * generation) once its LISTEN succeeded, then marks it usable. On a
 * reload the new worker takes over while the old one still listens (on
 * the same channel); the old one then sends a last query and, once
 * answered (every notification up to then received), leaves: no
 * notification can fall between the two, and the zone is not emptied. If
 * the old one cannot confirm, the zone is emptied.
 *
 * ttl bounds how long an entry is trusted either way; without notify=, it
 * is the only bound.
 */


#include <sys/time.h>

#include "ngx_http_txval_lookup.h"
#include "ngx_http_txval_pg.h"


#define NGX_HTTP_TXVAL_LOOKUP_NODE     256      /* bytes, one slab class */
#define NGX_HTTP_TXVAL_LOOKUP_RECENT   64       /* invalidations kept */

#define NGX_HTTP_TXVAL_LOOKUP_MERCHANT 1
#define NGX_HTTP_TXVAL_LOOKUP_CARD     2
#define NGX_HTTP_TXVAL_LOOKUP_BIN      3

/* entry flags */
#define NGX_HTTP_TXVAL_LOOKUP_FOUND    0x01
#define NGX_HTTP_TXVAL_LOOKUP_ACTIVE   0x02     /* merchant: active */
#define NGX_HTTP_TXVAL_LOOKUP_BLOCKED  0x02     /* card: blocked */
#define NGX_HTTP_TXVAL_LOOKUP_HAS_MAX  0x04
#define NGX_HTTP_TXVAL_LOOKUP_LIMITED  0x08     /* currencies listed */
#define NGX_HTTP_TXVAL_LOOKUP_COUNTRY  0x10

/* the listener's clock, ms */
#define NGX_HTTP_TXVAL_LOOKUP_TICK     100      /* every worker */
#define NGX_HTTP_TXVAL_LOOKUP_STALE    1000     /* an owner that did not beat */
#define NGX_HTTP_TXVAL_LOOKUP_PING     1000     /* a query, to know it lives */
#define NGX_HTTP_TXVAL_LOOKUP_RETIRE   3000     /* an old owner confirms */
#define NGX_HTTP_TXVAL_LOOKUP_HOLD     10000    /* an exiting owner waits */
#define NGX_HTTP_TXVAL_LOOKUP_BACKOFF  200      /* first retry, then x2 */
#define NGX_HTTP_TXVAL_LOOKUP_BACKOFF_MAX  1000


typedef struct {
    ngx_rbtree_node_t           node;       /* key: crc32 of kind, key */
    ngx_queue_t                 queue;      /* LRU, newest at the head */
    ngx_msec_t                  expires;
    uint64_t                    gen;
    int64_t                     max;
    uint8_t                     kind;
    uint8_t                     key_len;
    uint8_t                     flags;
    uint8_t                     ncurrencies;

    /* the key, then a merchant's currencies or a card's country */
    u_char                      data[NGX_HTTP_TXVAL_LOOKUP_NODE - 84];
} ngx_http_txval_lookup_node_t;


/* one slab class: the entry is exactly NGX_HTTP_TXVAL_LOOKUP_NODE bytes */
typedef char  ngx_http_txval_lookup_node_size_check[
    (sizeof(ngx_http_txval_lookup_node_t) == NGX_HTTP_TXVAL_LOOKUP_NODE
     && NGX_HTTP_TXVAL_MERCHANT_MAX + 3 * NGX_HTTP_TXVAL_CURRENCIES_MAX
        <= NGX_HTTP_TXVAL_LOOKUP_NODE - 84
     && NGX_HTTP_TXVAL_TOKEN_MAX + 2 <= NGX_HTTP_TXVAL_LOOKUP_NODE - 84)
    ? 1 : -1];


/* the zone's layout: a reload keeps a zone only when it matches */
#define NGX_HTTP_TXVAL_LOOKUP_LAYOUT                                         \
    ((uint32_t) (0x74790000 + (sizeof(ngx_http_txval_lookup_node_t) << 12)  \
                 + sizeof(ngx_http_txval_lookup_sh_t)))


struct ngx_http_txval_lookup_sh_s {
    uint32_t                    layout;     /* first, in every version */
    ngx_rbtree_t                rbtree;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 lru;
    ngx_http_txval_lookup_stats_t  stats;

    uint64_t                    gen;        /* flush generation */
    uint64_t                    seq;        /* invalidations */
    uint32_t                    recent[NGX_HTTP_TXVAL_LOOKUP_RECENT];

    /* the listener */
    ngx_uint_t                  usable;     /* its owner listens */
    ngx_msec_t                  heartbeat;  /* its owner's last beat */
    ngx_pid_t                   owner;
    ngx_uint_t                  owner_cgen;
    uint32_t                    owner_channel;  /* crc32 of its channel */
    ngx_pid_t                   candidate;  /* connecting to take over */
    ngx_msec_t                  candidate_at;
    ngx_pid_t                   retiring;   /* the old owner, to confirm */
    ngx_msec_t                  retiring_at;

    /* the configuration generation: one more per configuration read */
    ngx_uint_t                  cgen;
    ngx_uint_t                  cgen_notify;    /* that one has notify= */
};


typedef enum {
    NGX_HTTP_TXVAL_LISTENER_IDLE = 0,
    NGX_HTTP_TXVAL_LISTENER_CONNECTING,
    NGX_HTTP_TXVAL_LISTENER_LISTENING,      /* LISTEN sent */
    NGX_HTTP_TXVAL_LISTENER_UP
} ngx_http_txval_listener_state_e;


/* this worker's side of the listener */
typedef struct {
    ngx_http_txval_lookup_t    *lc;
    ngx_http_txval_pg_conf_t   *pcf;
    ngx_log_t                  *log;
    PGconn                     *pg;
    ngx_connection_t           *c;
    ngx_http_txval_listener_state_e  state;
    ngx_event_t                 tick;       /* every worker */
    ngx_event_t                 timer;      /* connect, LISTEN, ping */
    ngx_event_t                 hold;       /* an exiting owner's wait */
    ngx_msec_t                  retry_at;
    ngx_msec_t                  backoff;
    ngx_msec_t                  ping_at;
    ngx_msec_t                  hold_until;
    ngx_uint_t                  cgen;
    uint32_t                    channel;    /* crc32 of the channel */
    char                       *listen_sql;
    unsigned                    busy:1;     /* a command's answer is due */
    unsigned                    owner:1;    /* what the zone said, last */
    unsigned                    retiring:1; /* handed over: a last ping */
    unsigned                    final:1;    /* ... sent after that */
    unsigned                    holding:1;
} ngx_http_txval_listener_t;


static ngx_int_t ngx_http_txval_lookup_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_txval_lookup_resized(ngx_shm_zone_t *shm_zone);
static uint32_t ngx_http_txval_lookup_hash(ngx_uint_t kind, const u_char *key,
    size_t len);
static ngx_http_txval_lookup_node_t *ngx_http_txval_lookup_find(
    ngx_http_txval_lookup_t *lc, ngx_uint_t kind, const u_char *key,
    size_t len, uint32_t hash);
static ngx_http_txval_lookup_node_t *ngx_http_txval_lookup_live(
    ngx_http_txval_lookup_t *lc, ngx_uint_t kind, const u_char *key,
    size_t len, uint32_t hash);
static void ngx_http_txval_lookup_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static void ngx_http_txval_lookup_delete(ngx_http_txval_lookup_t *lc,
    ngx_http_txval_lookup_node_t *ln);
static ngx_uint_t ngx_http_txval_lookup_is_live(ngx_http_txval_lookup_t *lc,
    ngx_http_txval_lookup_node_t *ln);
static void ngx_http_txval_lookup_sweep(ngx_http_txval_lookup_t *lc,
    ngx_uint_t n);
static ngx_http_txval_lookup_node_t *ngx_http_txval_lookup_store(
    ngx_http_txval_lookup_t *lc, ngx_uint_t kind, const u_char *key,
    size_t len, uint32_t hash, uint64_t seq);
static ngx_uint_t ngx_http_txval_lookup_usable_locked(
    ngx_http_txval_lookup_t *lc);
static void ngx_http_txval_lookup_flush_locked(ngx_http_txval_lookup_t *lc);
static void ngx_http_txval_lookup_invalidate(ngx_http_txval_lookup_t *lc,
    ngx_uint_t kind, const u_char *key, size_t len, int64_t at_us);

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


static ngx_http_txval_listener_t  ngx_http_txval_listener;


/* txval_lookup_cache NAME:SIZE [ttl=TIME] [notify=CHANNEL]; */

char *
ngx_http_txval_lookup_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_txval_main_conf_t *tmcf = conf;

    u_char                   *p;
    ssize_t                   size;
    ngx_int_t                 ttl;
    ngx_str_t                *value, name, s, channel;
    ngx_uint_t                i, j;
    ngx_shm_zone_t           *shm_zone;
    ngx_http_txval_lookup_t  *lc;

    if (tmcf->lookup) {
        return "is duplicate";
    }

    value = cf->args->elts;

    p = (u_char *) ngx_strchr(value[1].data, ':');

    if (p == NULL || p == value[1].data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, "
                           "it must be NAME:SIZE", &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    name.data = value[1].data;
    name.len = p - value[1].data;

    s.data = p + 1;
    s.len = value[1].data + value[1].len - s.data;

    size = ngx_parse_size(&s);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\" in \"%V\" directive",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small in \"%V\" directive, "
                           "the minimum is %uzk",
                           &value[1], &cmd->name, 8 * ngx_pagesize / 1024);
        return NGX_CONF_ERROR;
    }

    ttl = 60 * 1000;
    ngx_str_null(&channel);

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "ttl=", 4) == 0) {
            s.data = value[i].data + 4;
            s.len = value[i].len - 4;

            ttl = ngx_parse_time(&s, 0);

            if (ttl == NGX_ERROR || ttl < 1000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid value \"%V\" in \"%V\" "
                                   "directive, ttl must be a time of at "
                                   "least 1s", &value[i], &cmd->name);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "notify=", 7) == 0) {
            channel.data = value[i].data + 7;
            channel.len = value[i].len - 7;

            /* a plain identifier: it goes into LISTEN "..." as it is */

            for (j = 0; j < channel.len; j++) {
                if (!((channel.data[j] >= 'a' && channel.data[j] <= 'z')
                      || (channel.data[j] >= 'A' && channel.data[j] <= 'Z')
                      || (channel.data[j] >= '0' && channel.data[j] <= '9')
                      || channel.data[j] == '_'))
                {
                    break;
                }
            }

            if (channel.len == 0 || channel.len > 63 || j < channel.len) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid value \"%V\" in \"%V\" "
                                   "directive, the channel must be 1-63 "
                                   "characters of A-Z a-z 0-9 _",
                                   &value[i], &cmd->name);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\" directive",
                           &value[i], &cmd->name);
        return NGX_CONF_ERROR;
    }

    lc = ngx_pcalloc(cf->pool, sizeof(ngx_http_txval_lookup_t));
    if (lc == NULL) {
        return NGX_CONF_ERROR;
    }

    shm_zone = ngx_shared_memory_add(cf, &name, size, &ngx_http_txval_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already used", &name);
        return NGX_CONF_ERROR;
    }

    lc->shm_zone = shm_zone;
    lc->ttl = (ngx_msec_t) ttl;
    lc->channel = channel;

    shm_zone->init = ngx_http_txval_lookup_init_zone;
    shm_zone->data = lc;

    tmcf->lookup = lc;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_txval_lookup_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_txval_lookup_t  *olc = data;

    size_t                    len;
    ngx_http_txval_lookup_t  *lc;

    lc = shm_zone->data;

    lc->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (olc || shm_zone->shm.exists) {
        /* reload with the same size: keep the entries */
        lc->sh = lc->shpool->data;

        if (lc->sh->layout != NGX_HTTP_TXVAL_LOOKUP_LAYOUT) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "txval_lookup_cache \"%V\" was made by another "
                          "version of txval: restart nginx, or give the "
                          "zone a new name", &shm_zone->shm.name);
            return NGX_ERROR;
        }

        /* the workers of this configuration take the listener over */
        ngx_shmtx_lock(&lc->shpool->mutex);
        lc->sh->cgen++;
        lc->sh->cgen_notify = (lc->channel.len != 0);
        ngx_shmtx_unlock(&lc->shpool->mutex);

        return NGX_OK;
    }

    if (ngx_http_txval_lookup_resized(shm_zone) != NGX_OK) {
        return NGX_ERROR;
    }

    lc->sh = ngx_slab_calloc(lc->shpool, sizeof(ngx_http_txval_lookup_sh_t));
    if (lc->sh == NULL) {
        return NGX_ERROR;
    }

    lc->sh->layout = NGX_HTTP_TXVAL_LOOKUP_LAYOUT;
    lc->sh->cgen = 1;
    lc->sh->cgen_notify = (lc->channel.len != 0);
    lc->shpool->data = lc->sh;

    ngx_rbtree_init(&lc->sh->rbtree, &lc->sh->sentinel,
                    ngx_http_txval_lookup_rbtree_insert);
    ngx_queue_init(&lc->sh->lru);

    len = sizeof(" in txval_lookup_cache \"\"") + shm_zone->shm.name.len;

    lc->shpool->log_ctx = ngx_slab_alloc(lc->shpool, len);
    if (lc->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(lc->shpool->log_ctx, " in txval_lookup_cache \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone evicts: running out of room is not worth a log line */
    lc->shpool->log_nomem = 0;

    return NGX_OK;
}


/* a zone whose size changed would come back empty: the reload is refused */

static ngx_int_t
ngx_http_txval_lookup_resized(ngx_shm_zone_t *shm_zone)
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
                      "txval_lookup_cache \"%V\" cannot change its size "
                      "from %uz to %uz on reload: restart nginx, or give "
                      "the zone a new name", &shm_zone->shm.name,
                      ozone[i].shm.size, shm_zone->shm.size);
        return NGX_ERROR;
    }
}


unsigned
ngx_http_txval_lookup_get(ngx_http_txval_lookup_t *lc,
    ngx_http_txval_txn_t *txn, ngx_http_txval_rows_t *rows,
    ngx_http_txval_lookup_stamp_t *stamp)
{
    u_char                         *p;
    unsigned                        want;
    uint32_t                        hm, hc, hb[3];
    ngx_uint_t                      len;
    ngx_http_txval_card_row_t      *c;
    ngx_http_txval_merchant_row_t  *m;
    ngx_http_txval_lookup_node_t   *ln;

    want = ngx_http_txval_rows_wanted(txn);

    /* the hashes first: the lock is held for the tree only */

    hm = ngx_http_txval_lookup_hash(NGX_HTTP_TXVAL_LOOKUP_MERCHANT,
                                    (u_char *) txn->merchant_id,
                                    txn->merchant_id_len);
    hc = ngx_http_txval_lookup_hash(NGX_HTTP_TXVAL_LOOKUP_CARD,
                                    (u_char *) txn->card_token,
                                    txn->card_token_len);

    for (len = NGX_HTTP_TXVAL_BIN_MIN; len <= txn->card_bin_len; len++) {
        hb[len - NGX_HTTP_TXVAL_BIN_MIN] =
            ngx_http_txval_lookup_hash(NGX_HTTP_TXVAL_LOOKUP_BIN,
                                       (u_char *) txn->card_bin, len);
    }

    ngx_shmtx_lock(&lc->shpool->mutex);

    stamp->gen = lc->sh->gen;
    stamp->seq = lc->sh->seq;
    stamp->usable = ngx_http_txval_lookup_usable_locked(lc);

    if (!stamp->usable) {
        /* nobody listens: Postgres for everything, nothing kept */
        lc->sh->stats.misses++;
        ngx_shmtx_unlock(&lc->shpool->mutex);
        return want;
    }

    ln = ngx_http_txval_lookup_live(lc, NGX_HTTP_TXVAL_LOOKUP_MERCHANT,
                                    (u_char *) txn->merchant_id,
                                    txn->merchant_id_len, hm);
    if (ln) {
        m = &rows->merchant;
        ngx_memzero(m, sizeof(ngx_http_txval_merchant_row_t));

        m->found = (ln->flags & NGX_HTTP_TXVAL_LOOKUP_FOUND) != 0;
        m->active = (ln->flags & NGX_HTTP_TXVAL_LOOKUP_ACTIVE) != 0;
        m->has_max = (ln->flags & NGX_HTTP_TXVAL_LOOKUP_HAS_MAX) != 0;
        m->restricted = (ln->flags & NGX_HTTP_TXVAL_LOOKUP_LIMITED) != 0;
        m->listed = 1;
        m->max = ln->max;
        m->ncurrencies = ln->ncurrencies;
        ngx_memcpy(m->currencies, ln->data + ln->key_len,
                   3 * ln->ncurrencies);
        m->currency_allowed = ngx_http_txval_currency_allowed(m,
                                                             txn->currency);

        rows->have |= NGX_HTTP_TXVAL_ROW_MERCHANT;
        want &= ~NGX_HTTP_TXVAL_ROW_MERCHANT;
    }

    ln = ngx_http_txval_lookup_live(lc, NGX_HTTP_TXVAL_LOOKUP_CARD,
                                    (u_char *) txn->card_token,
                                    txn->card_token_len, hc);
    if (ln) {
        c = &rows->card;
        ngx_memzero(c, sizeof(ngx_http_txval_card_row_t));

        c->found = (ln->flags & NGX_HTTP_TXVAL_LOOKUP_FOUND) != 0;
        c->blocked = (ln->flags & NGX_HTTP_TXVAL_LOOKUP_BLOCKED) != 0;

        if (ln->flags & NGX_HTTP_TXVAL_LOOKUP_COUNTRY) {
            p = ln->data + ln->key_len;
            c->country[0] = p[0];
            c->country[1] = p[1];
        }

        rows->have |= NGX_HTTP_TXVAL_ROW_CARD;
        want &= ~NGX_HTTP_TXVAL_ROW_CARD;
    }

    for (len = NGX_HTTP_TXVAL_BIN_MIN; len <= txn->card_bin_len; len++) {
        ln = ngx_http_txval_lookup_live(lc, NGX_HTTP_TXVAL_LOOKUP_BIN,
                                        (u_char *) txn->card_bin, len,
                                        hb[len - NGX_HTTP_TXVAL_BIN_MIN]);
        if (ln) {
            if (ln->flags & NGX_HTTP_TXVAL_LOOKUP_FOUND) {
                rows->bins |= NGX_HTTP_TXVAL_ROW_BIN(len);
            }

            rows->have |= NGX_HTTP_TXVAL_ROW_BIN(len);
            want &= ~NGX_HTTP_TXVAL_ROW_BIN(len);
        }
    }

    if (want) {
        lc->sh->stats.misses++;

    } else {
        lc->sh->stats.hits++;
    }

    ngx_shmtx_unlock(&lc->shpool->mutex);

    return want;
}


void
ngx_http_txval_lookup_put(ngx_http_txval_lookup_t *lc,
    ngx_http_txval_txn_t *txn, ngx_http_txval_rows_t *rows,
    ngx_http_txval_lookup_stamp_t *stamp)
{
    uint32_t                        hm, hc, hb[3];
    ngx_uint_t                      len;
    ngx_http_txval_card_row_t      *c;
    ngx_http_txval_merchant_row_t  *m;
    ngx_http_txval_lookup_node_t   *ln;

    if (!stamp->usable) {
        return;
    }

    hm = ngx_http_txval_lookup_hash(NGX_HTTP_TXVAL_LOOKUP_MERCHANT,
                                    (u_char *) txn->merchant_id,
                                    txn->merchant_id_len);
    hc = ngx_http_txval_lookup_hash(NGX_HTTP_TXVAL_LOOKUP_CARD,
                                    (u_char *) txn->card_token,
                                    txn->card_token_len);

    for (len = NGX_HTTP_TXVAL_BIN_MIN; len <= txn->card_bin_len; len++) {
        hb[len - NGX_HTTP_TXVAL_BIN_MIN] =
            ngx_http_txval_lookup_hash(NGX_HTTP_TXVAL_LOOKUP_BIN,
                                       (u_char *) txn->card_bin, len);
    }

    ngx_shmtx_lock(&lc->shpool->mutex);

    if (lc->sh->gen != stamp->gen
        || !ngx_http_txval_lookup_usable_locked(lc))
    {
        /* emptied meanwhile: what was read before may be stale */
        ngx_shmtx_unlock(&lc->shpool->mutex);
        return;
    }

    ngx_http_txval_lookup_sweep(lc, 4);

    m = &rows->merchant;

    if ((rows->have & NGX_HTTP_TXVAL_ROW_MERCHANT)
        && (!m->found || m->listed))
    {
        ln = ngx_http_txval_lookup_store(lc, NGX_HTTP_TXVAL_LOOKUP_MERCHANT,
                                         (u_char *) txn->merchant_id,
                                         txn->merchant_id_len, hm,
                                         stamp->seq);
        if (ln) {
            ln->flags = (m->found ? NGX_HTTP_TXVAL_LOOKUP_FOUND : 0)
                        | (m->active ? NGX_HTTP_TXVAL_LOOKUP_ACTIVE : 0)
                        | (m->has_max ? NGX_HTTP_TXVAL_LOOKUP_HAS_MAX : 0)
                        | (m->restricted ? NGX_HTTP_TXVAL_LOOKUP_LIMITED : 0);
            ln->max = m->max;
            ln->ncurrencies = (uint8_t) m->ncurrencies;
            ngx_memcpy(ln->data + ln->key_len, m->currencies,
                       3 * m->ncurrencies);
        }
    }

    c = &rows->card;

    if (rows->have & NGX_HTTP_TXVAL_ROW_CARD) {
        ln = ngx_http_txval_lookup_store(lc, NGX_HTTP_TXVAL_LOOKUP_CARD,
                                         (u_char *) txn->card_token,
                                         txn->card_token_len, hc,
                                         stamp->seq);
        if (ln) {
            ln->flags = (c->found ? NGX_HTTP_TXVAL_LOOKUP_FOUND : 0)
                        | (c->blocked ? NGX_HTTP_TXVAL_LOOKUP_BLOCKED : 0)
                        | (c->country[0] ? NGX_HTTP_TXVAL_LOOKUP_COUNTRY : 0);
            ln->data[ln->key_len] = c->country[0];
            ln->data[ln->key_len + 1] = c->country[1];
        }
    }

    for (len = NGX_HTTP_TXVAL_BIN_MIN; len <= txn->card_bin_len; len++) {
        if (!(rows->have & NGX_HTTP_TXVAL_ROW_BIN(len))) {
            continue;
        }

        ln = ngx_http_txval_lookup_store(lc, NGX_HTTP_TXVAL_LOOKUP_BIN,
                                         (u_char *) txn->card_bin, len,
                                         hb[len - NGX_HTTP_TXVAL_BIN_MIN],
                                         stamp->seq);
        if (ln) {
            ln->flags = (rows->bins & NGX_HTTP_TXVAL_ROW_BIN(len))
                        ? NGX_HTTP_TXVAL_LOOKUP_FOUND : 0;
        }
    }

    ngx_shmtx_unlock(&lc->shpool->mutex);
}


ngx_uint_t
ngx_http_txval_lookup_usable(ngx_http_txval_lookup_t *lc)
{
    ngx_uint_t  usable;

    ngx_shmtx_lock(&lc->shpool->mutex);
    usable = ngx_http_txval_lookup_usable_locked(lc);
    ngx_shmtx_unlock(&lc->shpool->mutex);

    return usable;
}


void
ngx_http_txval_lookup_stats(ngx_http_txval_lookup_t *lc,
    ngx_http_txval_lookup_stats_t *stats, size_t *used, size_t *total)
{
    size_t  pages;

    pages = (lc->shpool->end - lc->shpool->start) >> ngx_pagesize_shift;

    ngx_shmtx_lock(&lc->shpool->mutex);

    *stats = lc->sh->stats;
    *used = (pages - lc->shpool->pfree) << ngx_pagesize_shift;

    ngx_shmtx_unlock(&lc->shpool->mutex);

    *total = lc->shm_zone->shm.size;
}


/* without notify=, always; with it, while its owner listens and beats */

static ngx_uint_t
ngx_http_txval_lookup_usable_locked(ngx_http_txval_lookup_t *lc)
{
    if (lc->channel.len == 0) {
        return 1;
    }

    return lc->sh->usable
           && (ngx_msec_int_t) (ngx_current_msec - lc->sh->heartbeat)
              < NGX_HTTP_TXVAL_LOOKUP_STALE;
}


static uint32_t
ngx_http_txval_lookup_hash(ngx_uint_t kind, const u_char *key, size_t len)
{
    u_char    k;
    uint32_t  hash;

    k = (u_char) kind;

    ngx_crc32_init(hash);
    ngx_crc32_update(&hash, &k, 1);
    ngx_crc32_update(&hash, (u_char *) key, len);
    ngx_crc32_final(hash);

    return hash;
}


static ngx_http_txval_lookup_node_t *
ngx_http_txval_lookup_find(ngx_http_txval_lookup_t *lc, ngx_uint_t kind,
    const u_char *key, size_t len, uint32_t hash)
{
    ngx_int_t                      rc;
    ngx_rbtree_node_t             *node, *sentinel;
    ngx_http_txval_lookup_node_t  *ln;

    node = lc->sh->rbtree.root;
    sentinel = lc->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        /* hash == node->key */

        ln = (ngx_http_txval_lookup_node_t *) node;

        rc = (ngx_int_t) kind - (ngx_int_t) ln->kind;

        if (rc == 0) {
            rc = ngx_memn2cmp((u_char *) key, ln->data, len, ln->key_len);
        }

        if (rc == 0) {
            return ln;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/* an entry of this generation, not expired, moved to the LRU head */

static ngx_http_txval_lookup_node_t *
ngx_http_txval_lookup_live(ngx_http_txval_lookup_t *lc, ngx_uint_t kind,
    const u_char *key, size_t len, uint32_t hash)
{
    ngx_http_txval_lookup_node_t  *ln;

    ln = ngx_http_txval_lookup_find(lc, kind, key, len, hash);
    if (ln == NULL) {
        return NULL;
    }

    if (!ngx_http_txval_lookup_is_live(lc, ln)) {
        ngx_http_txval_lookup_delete(lc, ln);
        return NULL;
    }

    ngx_queue_remove(&ln->queue);
    ngx_queue_insert_head(&lc->sh->lru, &ln->queue);

    return ln;
}


static ngx_uint_t
ngx_http_txval_lookup_is_live(ngx_http_txval_lookup_t *lc,
    ngx_http_txval_lookup_node_t *ln)
{
    return ln->gen == lc->sh->gen
           && (ngx_msec_int_t) (ln->expires - ngx_current_msec) > 0;
}


static void
ngx_http_txval_lookup_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_int_t                       rc;
    ngx_rbtree_node_t             **p;
    ngx_http_txval_lookup_node_t   *ln, *lnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */

            ln = (ngx_http_txval_lookup_node_t *) node;
            lnt = (ngx_http_txval_lookup_node_t *) temp;

            rc = (ngx_int_t) ln->kind - (ngx_int_t) lnt->kind;

            if (rc == 0) {
                rc = ngx_memn2cmp(ln->data, lnt->data, ln->key_len,
                                  lnt->key_len);
            }

            p = (rc < 0) ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static void
ngx_http_txval_lookup_delete(ngx_http_txval_lookup_t *lc,
    ngx_http_txval_lookup_node_t *ln)
{
    if (ln->gen == lc->sh->gen) {
        lc->sh->stats.entries--;
    }

    ngx_queue_remove(&ln->queue);
    ngx_rbtree_delete(&lc->sh->rbtree, &ln->node);
    ngx_slab_free_locked(lc->shpool, ln);
}


/* drops up to n expired or emptied entries from the LRU tail; locked */

static void
ngx_http_txval_lookup_sweep(ngx_http_txval_lookup_t *lc, ngx_uint_t n)
{
    ngx_queue_t                   *q;
    ngx_http_txval_lookup_node_t  *ln;

    while (n-- && !ngx_queue_empty(&lc->sh->lru)) {

        q = ngx_queue_last(&lc->sh->lru);
        ln = ngx_queue_data(q, ngx_http_txval_lookup_node_t, queue);

        if (ngx_http_txval_lookup_is_live(lc, ln)) {
            return;
        }

        ngx_http_txval_lookup_delete(lc, ln);
    }
}


/*
 * The entry to write for this key, at the head of the LRU, with a new
 * expiry time and this generation; NULL when the key was invalidated
 * since seq (what was read may be stale), or when there is no room even
 * with an empty LRU. Locked.
 */

static ngx_http_txval_lookup_node_t *
ngx_http_txval_lookup_store(ngx_http_txval_lookup_t *lc, ngx_uint_t kind,
    const u_char *key, size_t len, uint32_t hash, uint64_t seq)
{
    uint64_t                       i;
    ngx_queue_t                   *q;
    ngx_http_txval_lookup_node_t  *ln, *old;
    ngx_http_txval_lookup_sh_t    *sh;

    sh = lc->sh;

    if (sh->seq - seq > NGX_HTTP_TXVAL_LOOKUP_RECENT) {
        /* more invalidations meanwhile than remembered */
        return NULL;
    }

    for (i = seq + 1; i <= sh->seq; i++) {
        if (sh->recent[i % NGX_HTTP_TXVAL_LOOKUP_RECENT] == hash) {
            return NULL;
        }
    }

    old = ngx_http_txval_lookup_find(lc, kind, key, len, hash);

    if (old) {
        ngx_http_txval_lookup_delete(lc, old);
    }

    for ( ;; ) {
        ln = ngx_slab_alloc_locked(lc->shpool,
                                   sizeof(ngx_http_txval_lookup_node_t));
        if (ln) {
            break;
        }

        if (ngx_queue_empty(&sh->lru)) {
            return NULL;
        }

        q = ngx_queue_last(&sh->lru);
        old = ngx_queue_data(q, ngx_http_txval_lookup_node_t, queue);

        if (ngx_http_txval_lookup_is_live(lc, old)) {
            sh->stats.evictions++;
        }

        ngx_http_txval_lookup_delete(lc, old);
    }

    ngx_memzero(ln, sizeof(ngx_http_txval_lookup_node_t));

    ln->node.key = hash;
    ln->kind = (uint8_t) kind;
    ln->key_len = (uint8_t) len;
    ngx_memcpy(ln->data, key, len);
    ln->gen = sh->gen;
    ln->expires = ngx_current_msec + lc->ttl;

    ngx_rbtree_insert(&sh->rbtree, &ln->node);
    ngx_queue_insert_head(&sh->lru, &ln->queue);
    sh->stats.entries++;

    return ln;
}


/* every entry goes: a new generation; locked */

static void
ngx_http_txval_lookup_flush_locked(ngx_http_txval_lookup_t *lc)
{
    lc->sh->gen++;
    lc->sh->stats.flushed++;
    lc->sh->stats.entries = 0;
}


/* a notification: the key's entry goes, and stores read before it too */

static void
ngx_http_txval_lookup_invalidate(ngx_http_txval_lookup_t *lc,
    ngx_uint_t kind, const u_char *key, size_t len, int64_t at_us)
{
    uint32_t                       hash;
    uint64_t                       lag;
    struct timeval                 tv;
    ngx_http_txval_lookup_sh_t    *sh;
    ngx_http_txval_lookup_node_t  *ln;

    sh = lc->sh;
    hash = ngx_http_txval_lookup_hash(kind, key, len);

    ngx_shmtx_lock(&lc->shpool->mutex);

    sh->seq++;
    sh->recent[sh->seq % NGX_HTTP_TXVAL_LOOKUP_RECENT] = hash;

    ln = ngx_http_txval_lookup_find(lc, kind, key, len, hash);

    if (ln) {
        if (ngx_http_txval_lookup_is_live(lc, ln)) {
            sh->stats.invalidated++;
        }

        ngx_http_txval_lookup_delete(lc, ln);
    }

    if (at_us > 0) {
        /* the trigger's clock to now (both this host's, in the tests) */
        ngx_gettimeofday(&tv);

        lag = (uint64_t) tv.tv_sec * 1000000 + tv.tv_usec;
        lag = (lag > (uint64_t) at_us) ? (lag - (uint64_t) at_us) * 1000 : 0;

        sh->stats.lag[ngx_http_txval_bucket(lag)]++;
        sh->stats.lag_sum_ns += lag;
    }

    ngx_shmtx_unlock(&lc->shpool->mutex);
}


/* --- the listener ------------------------------------------------------ */


ngx_int_t
ngx_http_txval_lookup_init_process(ngx_cycle_t *cycle,
    ngx_http_txval_lookup_t *lc, ngx_http_txval_pg_conf_t *pcf)
{
    u_char                     *p;
    ngx_http_txval_listener_t  *ls = &ngx_http_txval_listener;

    if (lc->channel.len == 0 || pcf == NULL) {
        return NGX_OK;
    }

    ngx_memzero(ls, sizeof(ngx_http_txval_listener_t));

    ls->lc = lc;
    ls->pcf = pcf;
    ls->log = cycle->log;
    ls->backoff = NGX_HTTP_TXVAL_LOOKUP_BACKOFF;

    p = ngx_pnalloc(cycle->pool, sizeof("LISTEN \"\"") + lc->channel.len);
    if (p == NULL) {
        return NGX_ERROR;
    }

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

    /* the first look at once: a new worker may be the one to listen */
    ngx_add_timer(&ls->tick, 1);

    return NGX_OK;
}


void
ngx_http_txval_lookup_exit_process(void)
{
    ngx_http_txval_listener_t  *ls = &ngx_http_txval_listener;

    if (ls->lc == NULL) {
        return;
    }

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
    ngx_uint_t                   takeover, connect, retire, vacant;
    ngx_http_txval_lookup_sh_t  *sh;
    ngx_http_txval_lookup_t     *lc;

    lc = ls->lc;
    sh = lc->sh;
    now = ngx_current_msec;

    takeover = 0;
    connect = 0;
    retire = 0;

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
            return;
        }

        ngx_shmtx_unlock(&lc->shpool->mutex);

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

    PQsetNoticeProcessor(pg, ngx_http_txval_listener_notice, ls);

    if (PQstatus(pg) == CONNECTION_BAD || PQsetnonblocking(pg, 1) != 0) {
        ls->pg = pg;
        ngx_http_txval_listener_lost(ls, "connect failed");
        return;
    }

    ls->pg = pg;

    if (ngx_http_txval_pg_socket(pg, &ls->c, ngx_http_txval_listener_handler,
                                 ls, ls->log)
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

    /* as if PQconnectPoll had asked for writing */
    ngx_http_txval_pg_socket_events(ls->c, 0, 1);
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
        switch (PQflush(ls->pg)) {
        case 0:
            ngx_http_txval_pg_socket_events(ls->c, 1, 0);
            return;
        case 1:
            return;
        default:
            ngx_http_txval_listener_lost(ls, "send failed");
            return;
        }
    }

    ngx_http_txval_listener_read(ls);
}


static void
ngx_http_txval_listener_poll(ngx_http_txval_listener_t *ls)
{
    PostgresPollingStatusType  st;

    /* as the pool does: the events off before each poll, on after */

    ngx_http_txval_pg_unsocket(ls->pg, &ls->c);

    st = PQconnectPoll(ls->pg);

    if (st != PGRES_POLLING_FAILED
        && ngx_http_txval_pg_socket(ls->pg, &ls->c,
                                    ngx_http_txval_listener_handler, ls,
                                    ls->log)
           != NGX_OK)
    {
        st = PGRES_POLLING_FAILED;
    }

    switch (st) {

    case PGRES_POLLING_READING:
        ngx_http_txval_pg_socket_events(ls->c, 1, 0);
        return;

    case PGRES_POLLING_WRITING:
        ngx_http_txval_pg_socket_events(ls->c, 0, 1);
        return;

    case PGRES_POLLING_OK:
        break;

    default: /* PGRES_POLLING_FAILED */
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

    timeout = ngx_max(2 * ls->pcf->timeout, NGX_HTTP_TXVAL_LOOKUP_PING);

    /* a retiring owner's last answer keeps its worker until it comes */
    ls->timer.cancelable = !ls->retiring;

    if (ls->timer.timer_set) {
        ngx_del_timer(&ls->timer);
    }

    ngx_add_timer(&ls->timer, timeout);

    switch (PQflush(ls->pg)) {
    case 0:
        ngx_http_txval_pg_socket_events(ls->c, 1, 0);
        return NGX_OK;
    case 1:
        ngx_http_txval_pg_socket_events(ls->c, 1, 1);
        return NGX_OK;
    default:
        return NGX_ERROR;
    }
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

    size_t  len;

    len = ngx_strlen(message);

    while (len && (message[len - 1] == '\n' || message[len - 1] == '\r')) {
        len--;
    }

    ngx_log_error(NGX_LOG_WARN, ls->log, 0,
                  "txval: lookup cache: postgres says: %*s", len, message);
}
