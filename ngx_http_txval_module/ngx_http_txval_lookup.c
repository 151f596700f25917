
/*
 * txval: the lookup cache (txval_lookup_cache NAME:SIZE [ttl=TIME]
 * [notify=CHANNEL]): the directive and the zone, what the request path
 * and the metrics use. The LISTEN connection that keeps it true is in
 * _lookup_listener.c; what both share in _lookup_int.h.
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
 * With notify=, the zone is used only while its listener is up and its
 * owner beats ("usable", kept in the zone by the listener); else lookups
 * go to Postgres. ttl bounds how long an entry is trusted either way;
 * without notify=, it is the only bound.
 */


#include <sys/time.h>

#include "ngx_http_txval_lookup_int.h"


static ngx_int_t ngx_http_txval_lookup_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static uint32_t ngx_http_txval_lookup_hash(ngx_uint_t kind, const u_char *key,
    size_t len);
static void ngx_http_txval_lookup_hashes(ngx_http_txval_txn_t *txn,
    uint32_t *hm, uint32_t *hc, uint32_t *hb);
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


/* txval_lookup_cache NAME:SIZE [ttl=TIME] [notify=CHANNEL]; */

char *
ngx_http_txval_lookup_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_txval_main_conf_t *tmcf = conf;

    ngx_int_t                 ttl;
    ngx_str_t                *value, s, channel;
    ngx_uint_t                i, j;
    ngx_http_txval_lookup_t  *lc;

    if (tmcf->lookup) {
        return "is duplicate";
    }

    value = cf->args->elts;

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

    lc->ttl = (ngx_msec_t) ttl;
    lc->channel = channel;
    lc->shm_zone = ngx_http_txval_zone_add(cf, cmd, &value[1],
                                           ngx_http_txval_lookup_init_zone,
                                           lc);
    if (lc->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    tmcf->lookup = lc;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_txval_lookup_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_int_t                 rc;
    ngx_http_txval_lookup_t  *lc;

    lc = shm_zone->data;
    lc->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    rc = ngx_http_txval_zone_init(shm_zone, data,
                                  sizeof(ngx_http_txval_lookup_sh_t),
                                  NGX_HTTP_TXVAL_LOOKUP_LAYOUT,
                                  "txval_lookup_cache", (void **) &lc->sh);

    if (rc == NGX_DONE) {
        /* kept across a reload: this configuration's workers take over */
        ngx_shmtx_lock(&lc->shpool->mutex);
        lc->sh->cgen++;
        lc->sh->cgen_notify = (lc->channel.len != 0);
        ngx_shmtx_unlock(&lc->shpool->mutex);

        return NGX_OK;
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    lc->sh->cgen = 1;
    lc->sh->cgen_notify = (lc->channel.len != 0);

    ngx_rbtree_init(&lc->sh->rbtree, &lc->sh->sentinel,
                    ngx_http_txval_lookup_rbtree_insert);
    ngx_queue_init(&lc->sh->lru);

    return NGX_OK;
}


unsigned
ngx_http_txval_lookup_get(ngx_http_txval_lookup_t *lc,
    ngx_http_txval_txn_t *txn, ngx_http_txval_rows_t *rows,
    ngx_http_txval_lookup_stamp_t *stamp)
{
    u_char                         *p;
    unsigned                        want;
    uint32_t                       *hb;
    ngx_uint_t                      len;
    ngx_http_txval_card_row_t      *c;
    ngx_http_txval_merchant_row_t  *m;
    ngx_http_txval_lookup_node_t   *ln;

    want = ngx_http_txval_rows_wanted(txn);

    /* the hashes first: the lock is held for the tree only */

    hb = stamp->hb;     /* kept for the store: lookup_put() */
    ngx_http_txval_lookup_hashes(txn, &stamp->hm, &stamp->hc, hb);

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
                                    txn->merchant_id_len, stamp->hm);
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
                                    txn->card_token_len, stamp->hc);
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
    uint32_t                       *hb;
    ngx_uint_t                      len;
    ngx_http_txval_card_row_t      *c;
    ngx_http_txval_merchant_row_t  *m;
    ngx_http_txval_lookup_node_t   *ln;

    if (!stamp->usable) {
        return;
    }

    hb = stamp->hb;

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
                                         txn->merchant_id_len, stamp->hm,
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
                                         txn->card_token_len, stamp->hc,
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


/* the hashes of a transaction's rows: merchant, card, BIN prefixes */

static void
ngx_http_txval_lookup_hashes(ngx_http_txval_txn_t *txn, uint32_t *hm,
    uint32_t *hc, uint32_t *hb)
{
    size_t  len;

    *hm = ngx_http_txval_lookup_hash(NGX_HTTP_TXVAL_LOOKUP_MERCHANT,
                                     (u_char *) txn->merchant_id,
                                     txn->merchant_id_len);
    *hc = ngx_http_txval_lookup_hash(NGX_HTTP_TXVAL_LOOKUP_CARD,
                                     (u_char *) txn->card_token,
                                     txn->card_token_len);

    for (len = NGX_HTTP_TXVAL_BIN_MIN; len <= txn->card_bin_len; len++) {
        hb[len - NGX_HTTP_TXVAL_BIN_MIN] =
            ngx_http_txval_lookup_hash(NGX_HTTP_TXVAL_LOOKUP_BIN,
                                       (u_char *) txn->card_bin, len);
    }
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

void
ngx_http_txval_lookup_flush_locked(ngx_http_txval_lookup_t *lc)
{
    lc->sh->gen++;
    lc->sh->stats.flushed++;
    lc->sh->stats.entries = 0;
}


/* a notification: the key's entry goes, and stores read before it too */

void
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
